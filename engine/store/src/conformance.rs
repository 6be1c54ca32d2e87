//! The behaviour every [`Store`] must have, run against each backend: the embedded store always,
//! PostgreSQL when `PLAUDIT_TEST_POSTGRES` names a server (`scripts/lib/postgres.sh` starts one;
//! `scripts/test.sh` does), each test in a database of its own so that tests run in parallel.
//! Without it the PostgreSQL runs print why they skipped and pass.
//!
//! **Owns** nothing but tests; **must not touch** a database it did not create.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use plaudit_core::ids::{OrgId, Seq};
use plaudit_sdk::{Attrs, Moment, Retraction, Stakeholder, Value};

use crate::format::{module_hash, snapshot_checksum};
use crate::{Change, Erasure, OrgTable, PgStore, Record, RedbStore, Segment, Store, StoreError};

/// Where a test's store lives: opened (again) on demand, removed when dropped.
trait Place {
    type S: Store + 'static;
    fn open(&self) -> Self::S;
    /// Stores a snapshot under a checksum that may not be its own.
    fn put_raw_snapshot(store: &Self::S, org: &OrgId, seq: Seq, checksum: u64, bytes: &[u8]);
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh folder holding an embedded store.
struct RedbPlace(std::path::PathBuf);

impl RedbPlace {
    fn new() -> RedbPlace {
        let name = format!("plaudit-conformance-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        RedbPlace(dir)
    }
}

impl Drop for RedbPlace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Place for RedbPlace {
    type S = RedbStore;
    fn open(&self) -> RedbStore {
        RedbStore::open(self.0.join("plaudit.redb")).expect("the store opens")
    }
    fn put_raw_snapshot(store: &RedbStore, org: &OrgId, seq: Seq, checksum: u64, bytes: &[u8]) {
        store.put_snapshot_checked(org, seq, checksum, bytes).expect("a raw write");
    }
}

/// A fresh database on the test server, dropped when done.
pub(crate) struct PgPlace {
    admin: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

/// Runs each of `sqls` (one statement each: some may not run in a transaction) on the server
/// `url` names, on a runtime of its own.
pub(crate) fn pg_admin(url: &str, sqls: &[&str]) -> Result<(), tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        let mut done = Ok(());
        for sql in sqls {
            done = client.batch_execute(sql).await;
            if done.is_err() {
                break;
            }
        }
        drop(client);
        let _ = task.await;
        done
    })
}

impl PgPlace {
    /// A fresh database, or `None` (saying why) without a test server.
    pub(crate) fn new(test: &str) -> Option<PgPlace> {
        let Some(admin) = std::env::var("PLAUDIT_TEST_POSTGRES").ok().filter(|u| !u.is_empty()) else {
            eprintln!("{test}: skipped on PostgreSQL: PLAUDIT_TEST_POSTGRES is not set (scripts/test.sh starts one)");
            return None;
        };
        let name = format!("plaudit_t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        pg_admin(&admin, &[&format!("DROP DATABASE IF EXISTS {name}"), &format!("CREATE DATABASE {name}")])
            .expect("a test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(PgPlace { admin, name, url })
    }
}

impl Drop for PgPlace {
    fn drop(&mut self) {
        let _ = pg_admin(&self.admin, &[&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)]);
    }
}

impl Place for PgPlace {
    type S = PgStore;
    fn open(&self) -> PgStore {
        PgStore::open(&self.url).expect("the store opens")
    }
    fn put_raw_snapshot(store: &PgStore, org: &OrgId, seq: Seq, checksum: u64, bytes: &[u8]) {
        store.put_snapshot_checked(org, seq, checksum, bytes).expect("a raw write");
    }
}

/// Defines test `$name` running `$body` (a generic fn over a [`Place`]) against both stores.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn redb() {
                super::$body(&super::RedbPlace::new());
            }
            #[test]
            fn postgres() {
                if let Some(place) = super::PgPlace::new(stringify!($name)) {
                    super::$body(&place);
                }
            }
        }
    };
}

// Fixtures, shared with the embedded store's own tests (`redb.rs`).

pub(crate) fn org(s: &str) -> OrgId {
    OrgId::parse(s).expect("valid org id")
}

/// A moment with a value and an attribute of each type, for round trips.
pub(crate) fn moment(id: &str) -> Record {
    let mut attrs = Attrs::new();
    attrs.insert("flag".into(), Value::Bool(true));
    attrs.insert("n".into(), Value::Int(3));
    attrs.insert("x".into(), Value::Float(2.0));
    attrs.insert("t".into(), Value::Text("hi".into()));
    Record::Moment(Moment {
        id: id.into(),
        stakeholder: "ann".into(),
        counterpart: Some("bob".into()),
        kind: "answer".into(),
        channel: "forum".into(),
        at: "2026-03-01T09:30:00Z".into(),
        value: Some(4.5),
        attrs,
    })
}

pub(crate) fn retract(id: &str) -> Record {
    Record::Retract(Retraction { retract: id.into(), reason: Some("typo".into()) })
}

pub(crate) fn rules(text: &str) -> Change {
    Change::Rules { text: text.to_string(), format: plaudit_core::ruleset::Format::Toml }
}

both!(append_and_read, append_and_read);
fn append_and_read<P: Place>(place: &P) {
    let acme = org("acme");
    {
        let store = place.open();
        assert_eq!(store.last_seq(&acme).expect("last"), Seq(0));
        assert_eq!(store.append(&acme, &[], 0).expect("nothing"), Seq(0));
        assert!(store.read(&acme, Seq(0), 10).expect("read").is_empty());
        assert_eq!(store.append(&acme, &[moment("a"), moment("b"), moment("c")], 1_000).expect("append"), Seq(3));
        assert_eq!(store.append(&acme, &[retract("a")], 2_000).expect("append"), Seq(4));
        assert_eq!(store.append(&acme, &[moment("e"), moment("f")], 3_000).expect("append"), Seq(6));
    }
    let store = place.open();
    assert_eq!(store.last_seq(&acme).expect("last"), Seq(6));
    let shape = |segments: Vec<Segment>| -> Vec<(u64, Option<i64>, usize)> {
        segments.iter().map(|s| (s.first.0, s.received, s.records.len())).collect()
    };
    assert_eq!(shape(store.read_segments(&acme, Seq(0), 1).expect("read")), [(1, Some(1_000), 3)]);
    assert_eq!(shape(store.read_segments(&acme, Seq(0), 4).expect("read")), [(1, Some(1_000), 3), (4, Some(2_000), 1)]);
    assert_eq!(shape(store.read_segments(&acme, Seq(1), 100).expect("read"))[0], (2, Some(1_000), 2));
    assert!(store.read_segments(&acme, Seq(6), 100).expect("read").is_empty());
    assert_eq!(store.read(&acme, Seq(3), 1).expect("read"), vec![(Seq(4), retract("a"))]);
    let mut after = Seq(0);
    let mut pages = Vec::new();
    loop {
        let page = store.read(&acme, after, 4).expect("read");
        let Some(&(last, _)) = page.last() else { break };
        pages.push(page.iter().map(|(s, _)| s.0).collect::<Vec<_>>());
        after = last;
    }
    assert_eq!(pages, vec![vec![1, 2, 3, 4], vec![5, 6]]);
    assert!(store.read(&acme, Seq(0), 0).expect("read").is_empty());
    assert!(store.read(&acme, Seq(u64::MAX), 5).expect("read").is_empty());
    // "acme" is a prefix of "acme-2": organisations never mix.
    let other = org("acme-2");
    assert_eq!(store.append(&other, &[moment("a")], 0).expect("append"), Seq(1));
    assert_eq!(store.read(&other, Seq(0), 10).expect("read"), vec![(Seq(1), moment("a"))]);
    assert!(store.read(&org("acm"), Seq(0), 10).expect("read").is_empty());
    // More segments than one query reads.
    let many = org("many");
    for i in 0..600 {
        store.append(&many, &[moment(&format!("m{i}"))], i).expect("append");
    }
    let all = store.read(&many, Seq(0), usize::MAX).expect("read");
    assert_eq!(all.len(), 600);
    assert!(all.iter().enumerate().all(|(i, (s, r))| s.0 == i as u64 + 1 && *r == moment(&format!("m{i}"))));
}

both!(concurrent_appends_get_consecutive_sequences, concurrent_appends);
fn concurrent_appends<P: Place>(place: &P) {
    let store = Arc::new(place.open());
    let acme = org("acme");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            let acme = acme.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    store.append(&acme, &[moment(&format!("t{t}-{i}")), moment("x")], 0).expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a writer");
    }
    assert_eq!(store.last_seq(&acme).expect("last"), Seq(8 * 20 * 2));
    let segments = store.read_segments(&acme, Seq(0), usize::MAX).expect("read");
    assert_eq!(segments.len(), 160);
    let mut next = 1;
    for s in &segments {
        assert_eq!((s.first.0, s.records.len()), (next, 2), "no gap, no overlap");
        next += 2;
    }
}

both!(changes_and_modules, changes_and_modules);
fn changes_and_modules<P: Place>(place: &P) {
    let acme = org("acme");
    {
        let store = place.open();
        assert_eq!(store.append_change(&acme, Seq(0), &rules("v1"), None).expect("v1"), 1);
        store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
        let beyond = store.append_change(&acme, Seq(3), &rules("x"), None).expect_err("beyond the log");
        assert!(matches!(beyond, StoreError::ChangeOutOfOrder { after: Seq(3), .. }), "{beyond}");
        let install = Change::InstallPlugin { name: "p".into(), module: module_hash(b"wasm") };
        let wrong = store.append_change(&acme, Seq(2), &install, Some(b"other")).expect_err("hash");
        assert!(wrong.to_string().contains("do not hash"), "{wrong}");
        let missing = store.append_change(&acme, Seq(2), &install, None).expect_err("no module");
        assert!(missing.to_string().contains("not stored"), "{missing}");
        let carried = store.append_change(&acme, Seq(2), &rules("x"), Some(b"wasm")).expect_err("carries one");
        assert!(matches!(carried, StoreError::ChangeOutOfOrder { .. }), "{carried}");
        assert_eq!(store.append_change(&acme, Seq(2), &install, Some(b"wasm")).expect("install"), 2);
        assert_eq!(store.append_change(&acme, Seq(2), &install, None).expect("again, stored"), 3);
        assert_eq!(store.append_change(&acme, Seq(2), &rules("v2"), None).expect("v2"), 4);
        let back = store.append_change(&acme, Seq(1), &rules("v3"), None).expect_err("before the last");
        assert!(matches!(back, StoreError::ChangeOutOfOrder { .. }), "{back}");
    }
    let store = place.open();
    let changes = store.changes(&acme).expect("changes");
    let got: Vec<(u64, u64)> = changes.iter().map(|c| (c.number, c.after.0)).collect();
    assert_eq!(got, vec![(1, 0), (2, 2), (3, 2), (4, 2)]);
    assert_eq!(changes[3].change, rules("v2"));
    assert_eq!(store.module(&module_hash(b"wasm")).expect("module").as_deref(), Some(&b"wasm"[..]));
    assert_eq!(store.module(&module_hash(b"other")).expect("module"), None);
    assert!(store.changes(&org("other")).expect("changes").is_empty());
}

both!(organisations_keys_and_records, organisations_keys_and_records);
fn organisations_keys_and_records<P: Place>(place: &P) {
    let (acme, acme2, beta) = (org("acme"), org("acme-2"), org("beta"));
    {
        let store = place.open();
        assert!(matches!(
            store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"x")),
            Err(StoreError::NoSuchOrg(_))
        ));
        store.create_org(&beta, None, &rules("b")).expect("beta");
        store.create_org(&acme, Some([7; 32]), &rules("a")).expect("acme");
        store.create_org(&acme2, Some([9; 32]), &rules("a2")).expect("acme-2");
        let again = store.create_org(&acme, Some([8; 32]), &rules("x")).expect_err("exists");
        assert!(matches!(again, StoreError::OrgExists(ref o) if o == &acme), "{again}");
        let plugin = Change::InstallPlugin { name: "p".into(), module: module_hash(b"w") };
        assert!(store.create_org(&org("gamma"), None, &plugin).is_err(), "an organisation begins with rules");
        store.append(&org("delta"), &[moment("a")], 0).expect("records without a change");
        assert!(matches!(store.create_org(&org("delta"), None, &rules("d")), Err(StoreError::OrgExists(_))));
        assert!(!store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"one")).expect("set"));
        assert!(store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"two")).expect("replace"));
        store.set_org_record(&acme, OrgTable::ScopedKeys, "k1", Some(b"key")).expect("key");
        store.set_org_record(&beta, OrgTable::Settings, "cors", Some(b"beta's")).expect("beta");
    }
    let store = place.open();
    assert_eq!(store.organisations().expect("listed"), vec![acme.clone(), acme2.clone(), beta.clone()]);
    assert_eq!(store.org_key(&acme).expect("key"), Some([7; 32]));
    assert_eq!(store.org_key(&beta).expect("key"), None);
    assert_eq!(store.changes(&acme).expect("changes")[0].change, rules("a"), "unchanged by the refused creation");
    store.set_org_key(&beta, [1; 32]).expect("adopted");
    assert_eq!(store.org_key(&beta).expect("key"), Some([1; 32]));
    assert!(matches!(store.set_org_key(&org("nobody"), [1; 32]), Err(StoreError::NoSuchOrg(_))));
    let records = |o: &OrgId, t| store.org_records(o, t).expect("read");
    assert_eq!(records(&acme, OrgTable::Settings), vec![("cors".to_string(), b"two".to_vec())]);
    assert_eq!(records(&acme, OrgTable::ScopedKeys), vec![("k1".to_string(), b"key".to_vec())]);
    assert_eq!(records(&beta, OrgTable::Settings), vec![("cors".to_string(), b"beta's".to_vec())]);
    assert!(records(&beta, OrgTable::ScopedKeys).is_empty());
    assert!(store.set_org_record(&acme, OrgTable::Settings, "cors", None).expect("delete"));
    assert!(!store.set_org_record(&acme, OrgTable::Settings, "cors", None).expect("gone"));
    assert!(records(&acme, OrgTable::Settings).is_empty());
}

both!(settings_by_name_side_by_side, settings_by_name);
/// An organisation's settings are records by name in one table: the server keeps its browser
/// origins (`cors`), its limits (`limits`) and its webhook subscriptions with their delivery
/// cursors (`webhooks`: a few kilobytes, written again after every delivered batch) there.
/// Writing one again and again leaves the others as they were, and a reopened store reads the
/// last write.
fn settings_by_name<P: Place>(place: &P) {
    let acme = org("acme");
    let webhooks = |cursor: u64| {
        let mut bytes = format!("{{\"hooks\":{{\"crm\":{{\"cursor\":{cursor}}}}}}}").into_bytes();
        bytes.resize(16 * 1024, b' ');
        bytes
    };
    {
        let store = place.open();
        store.create_org(&acme, None, &rules("a")).expect("acme");
        store.create_org(&org("beta"), None, &rules("b")).expect("beta");
        store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"origins")).expect("cors");
        store.set_org_record(&acme, OrgTable::Settings, "limits", Some(b"limits")).expect("limits");
        store.set_org_record(&org("beta"), OrgTable::Settings, "webhooks", Some(b"beta's")).expect("beta's");
        for cursor in 0..40 {
            let existed =
                store.set_org_record(&acme, OrgTable::Settings, "webhooks", Some(&webhooks(cursor))).expect("written");
            assert_eq!(existed, cursor > 0);
        }
        assert_eq!(
            store.stored_bytes(&acme).expect("bytes"),
            store.stored_bytes(&org("beta")).expect("bytes"),
            "settings do not count as the organisation's stored bytes (its quota): the same rule set's length"
        );
    }
    let store = place.open();
    let named = |name: &str, bytes: &[u8]| (name.to_string(), bytes.to_vec());
    assert_eq!(
        store.org_records(&acme, OrgTable::Settings).expect("settings"),
        vec![named("cors", b"origins"), named("limits", b"limits"), named("webhooks", &webhooks(39))]
    );
    assert_eq!(
        store.org_records(&org("beta"), OrgTable::Settings).expect("settings"),
        vec![named("webhooks", b"beta's")]
    );
    assert!(store.org_records(&acme, OrgTable::ScopedKeys).expect("keys").is_empty());
}

both!(snapshots_newest_only_and_checked, snapshots);
fn snapshots<P: Place>(place: &P) {
    let acme = org("acme");
    {
        let store = place.open();
        assert_eq!(store.latest_snapshot(&acme).expect("none"), None);
        store.append(&acme, &(0..5).map(|i| moment(&format!("m{i}"))).collect::<Vec<_>>(), 0).expect("append");
        let beyond = store.put_snapshot(&acme, Seq(6), b"future").expect_err("beyond the log");
        assert!(matches!(beyond, StoreError::SnapshotBeyondLog { seq: Seq(6), last: Seq(5), .. }), "{beyond}");
        store.put_snapshot(&acme, Seq(2), b"at two").expect("snapshot");
        assert_eq!(store.latest_snapshot(&acme).expect("read"), Some((Seq(2), b"at two".to_vec())));
        store.put_snapshot(&acme, Seq(5), b"").expect("snapshot");
        store.put_snapshot(&acme, Seq(3), b"at three").expect("older: ignored");
        assert_eq!(store.latest_snapshot(&org("acme-2")).expect("none"), None);
    }
    let store = place.open();
    assert_eq!(store.latest_snapshot(&acme).expect("read"), Some((Seq(5), Vec::new())));
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    store.put_snapshot(&acme, Seq(5), &big).expect("a large one, the same sequence");
    assert_eq!(store.latest_snapshot(&acme).expect("read"), Some((Seq(5), big)));
    P::put_raw_snapshot(&store, &acme, Seq(5), snapshot_checksum(Seq(5), b"a world"), b"a wprld");
    let err = store.latest_snapshot(&acme).expect_err("corrupt");
    assert!(matches!(&err, StoreError::CorruptSnapshot { seq: Seq(5), .. }), "{err}");
}

both!(stored_bytes_count_the_log_and_the_newest_snapshot, stored_bytes);
fn stored_bytes<P: Place>(place: &P) {
    let store = place.open();
    let (acme, beta) = (org("acme"), org("beta"));
    store.create_org(&acme, None, &rules("a = 1")).expect("acme");
    store.create_org(&beta, None, &rules("b = 1")).expect("beta");
    let created = store.stored_bytes(&acme).expect("bytes");
    assert!(created > 0);
    store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
    let appended = store.stored_bytes(&acme).expect("bytes");
    assert!(appended > created + 20, "{created} then {appended}");
    let install = Change::InstallPlugin { name: "p".into(), module: module_hash(&[1; 1000]) };
    store.append_change(&acme, Seq(2), &install, Some(&[1; 1000])).expect("install");
    let installed = store.stored_bytes(&acme).expect("bytes");
    assert!(installed > appended + 1000, "{appended} then {installed}");
    store.put_snapshot(&acme, Seq(2), &[7; 5000]).expect("snapshot");
    assert_eq!(store.stored_bytes(&acme).expect("bytes"), installed + 5000);
    store.put_snapshot(&acme, Seq(2), &[7; 100]).expect("a smaller one replaces it");
    assert_eq!(store.stored_bytes(&acme).expect("bytes"), installed + 100);
    assert_eq!(store.stored_bytes(&org("nobody")).expect("bytes"), 0);
}

both!(erasure_rewrites_the_log_and_drops_the_snapshot, erasure);
fn erasure<P: Place>(place: &P) {
    let store = place.open();
    let (acme, other) = (org("acme"), org("other"));
    let subject = "zz-subject-5d1e";
    let mut named = Stakeholder::new(subject);
    named.name = Some("Zelda Quux-Unique".into());
    named.attrs.insert("phone".into(), Value::Text("555-UNIQUE-0199".into()));
    let with = |id: &str, who: &str, counterpart: Option<&str>| {
        let Record::Moment(mut m) = moment(id) else { unreachable!() };
        (m.stakeholder, m.counterpart) = (who.into(), counterpart.map(str::to_string));
        Record::Moment(m)
    };
    store.create_org(&acme, None, &rules("r")).expect("created");
    store
        .append(&acme, &[Record::Profile(named), with("m1", subject, None), with("m2", "ann", Some(subject))], 0)
        .expect("append");
    store.append(&acme, &[with("m3", "ann", Some("bob"))], 0).expect("append");
    store.create_org(&other, None, &rules("r")).expect("created");
    store.append(&other, &[with("o1", subject, None)], 0).expect("another organisation's");
    store.put_snapshot(&acme, Seq(4), subject.as_bytes()).expect("a snapshot");
    let before = store.read(&acme, Seq(0), 100).expect("read");
    let bytes_before = store.stored_bytes(&acme).expect("bytes");

    let erasure = store.erase(&acme, subject, "erased-00ff").expect("erased");
    assert_eq!(erasure, Erasure { records: 3, change: 2 });
    let mut records: Vec<Record> = before.iter().map(|(_, r)| r.clone()).collect();
    crate::pseudonymise(&mut records, subject, "erased-00ff", &mut 0);
    let expected: Vec<(Seq, Record)> = before.iter().map(|(s, _)| *s).zip(records).collect();
    drop(store);
    let store = place.open();
    assert_eq!(store.read(&acme, Seq(0), 100).expect("read"), expected, "the same records, naming the pseudonym");
    let changes = store.changes(&acme).expect("changes");
    assert_eq!((changes[1].after, &changes[1].change), (Seq(4), &Change::Erased { pseudonym: "erased-00ff".into() }));
    assert!(store.latest_snapshot(&acme).expect("read").is_none(), "the snapshot is dropped");
    assert!(store.stored_bytes(&acme).expect("bytes") < bytes_before, "the snapshot's bytes and the name's go");
    assert_eq!(
        store.read(&other, Seq(0), 10).expect("read")[0].1,
        with("o1", subject, None),
        "another organisation's own"
    );
    assert_eq!(store.append(&acme, &[moment("m4")], 0).expect("the log goes on"), Seq(5));
}

both!(a_store_of_a_newer_version_is_refused_saying_so, newer_version);
fn newer_version<P: Place + 'static>(place: &P) {
    drop(place.open());
    let any: &dyn std::any::Any = place;
    let err = if let Some(pg) = any.downcast_ref::<PgPlace>() {
        pg_admin(&pg.url, &["INSERT INTO schema_version (version) VALUES (99)"]).expect("a newer schema");
        PgStore::open(&pg.url).expect_err("a newer schema")
    } else if let Some(redb) = any.downcast_ref::<RedbPlace>() {
        let db = ::redb::Database::create(redb.0.join("plaudit.redb")).expect("opens");
        let txn = db.begin_write().expect("writes");
        let meta: ::redb::TableDefinition<&str, u64> = ::redb::TableDefinition::new("meta");
        txn.open_table(meta).expect("table").insert("format", 99).expect("insert");
        txn.commit().expect("commit");
        drop(db);
        RedbStore::open(redb.0.join("plaudit.redb")).expect_err("a newer format")
    } else {
        unreachable!("a place of the two stores")
    };
    assert!(matches!(err, StoreError::Version { .. }) && err.to_string().contains("newer Plaudit"), "{err}");
}
