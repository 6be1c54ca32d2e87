//! Durability end to end, through the real binary: moments acknowledged by `plaudit import`
//! survive SIGKILL at any instant (snapshots are taken as it goes, so restarts restore one and
//! replay the tail) and count exactly once, however often the client resends.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use plaudit_tests::{example_plugin, repo_root, scratch_dir};

use crate::plaudit_bin;

fn plaudit() -> Command {
    let mut c = Command::new(plaudit_bin());
    c.current_dir(repo_root());
    c
}

/// A small xorshift: the kill schedule is random but reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs one `plaudit import --ack` fed with `lines[from..]`; kills it with SIGKILL after
/// `kill_after` acks (plus a random pause, to land mid-batch) unless `None`. Returns the highest
/// line number acknowledged (1-based, as in the file), if any.
fn import_run(data: &Path, lines: &[String], from: usize, kill_after: Option<(usize, u64)>) -> Option<usize> {
    let mut child = plaudit()
        .args(["import", "--data"])
        .arg(data)
        .args(["--org", "acme", "--rules", "rules/acme.toml", "--batch", "40", "--snapshot-every", "100", "--ack", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plaudit import starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let sent: Vec<String> = lines[from..].to_vec();
    let writer = std::thread::spawn(move || {
        for line in sent {
            if writeln!(stdin, "{line}").is_err() {
                return; // killed
            }
        }
    });
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut acked = None;
    for (n, line) in stdout.lines().enumerate() {
        let Ok(line) = line else { break };
        let line_no: usize = line.strip_prefix("ack ").and_then(|l| l.parse().ok()).expect("an ack line");
        // The child numbers the lines it read from 1; they start at `from` in the file.
        acked = Some(from + line_no);
        if let Some((after, pause_ms)) = kill_after
            && n + 1 >= after
        {
            std::thread::sleep(Duration::from_millis(pause_ms));
            child.kill().expect("SIGKILL");
            break;
        }
    }
    let status = child.wait().expect("the child ends");
    let _ = writer.join();
    if kill_after.is_none() {
        assert!(status.success(), "the last import finishes cleanly");
    }
    acked
}

#[test]
fn acknowledged_moments_survive_sigkill_and_count_exactly_once() {
    let data = std::env::temp_dir().join(format!("plaudit-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let moments = data.with_extension("jsonl");
    let generated =
        plaudit().args(["gen", "--stakeholders", "300", "--moments", "4000", "--seed", "3"]).output().expect("gen");
    assert!(generated.status.success());
    std::fs::write(&moments, &generated.stdout).expect("write the moments");
    let lines: Vec<String> = String::from_utf8(generated.stdout).expect("utf-8").lines().map(str::to_string).collect();

    let mut rng = Rng(0x5eed_2026);
    let mut acked: usize = 0; // lines 1..=acked are durable
    let mut kills = 0;
    while kills < 12 && acked < lines.len() {
        // Resend some acknowledged lines too, as a client unsure of its last batch would.
        let from = acked.saturating_sub(rng.below(60) as usize);
        let kill = (1 + rng.below(8) as usize, rng.below(25));
        if let Some(got) = import_run(&data, &lines, from, Some(kill)) {
            assert!(got >= acked || got >= from, "acks only move forward");
            acked = acked.max(got);
        }
        kills += 1;
    }
    assert!(kills >= 5, "the import was killed several times ({kills})");
    let last = import_run(&data, &lines, acked.saturating_sub(25), None);
    assert_eq!(last, Some(lines.len()), "everything is acknowledged in the end");

    // The latest snapshot and the log after it, and the log replayed from scratch, both give
    // exactly the state of scoring the file once.
    let replay =
        plaudit().args(["replay", "--data"]).arg(&data).args(["--org", "acme", "--summary"]).output().expect("replay");
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(String::from_utf8_lossy(&replay.stderr).contains("after the snapshot at"), "a snapshot was restored");
    let from_start = plaudit()
        .args(["replay", "--from-start", "--data"])
        .arg(&data)
        .args(["--org", "acme", "--summary"])
        .output()
        .expect("replay");
    assert!(from_start.status.success(), "{}", String::from_utf8_lossy(&from_start.stderr));
    assert!(from_start.stdout == replay.stdout, "the snapshot and the whole log agree");
    let once =
        plaudit().args(["score", "--rules", "rules/acme.toml", "--summary"]).arg(&moments).output().expect("score");
    assert!(once.status.success());
    let (replayed, scored): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&replay.stdout).expect("replay summary"),
        serde_json::from_slice(&once.stdout).expect("score summary"),
    );
    // Compared stakeholder by stakeholder, so that a failure names who differs.
    assert_eq!(replayed["stakeholders"], scored["stakeholders"]);
    let (r, s) = (replayed["profiles"].as_array().expect("profiles"), scored["profiles"].as_array().expect("profiles"));
    assert_eq!(r.len(), s.len());
    for (a, b) in r.iter().zip(s) {
        assert_eq!(a, b, "every acknowledged moment counted exactly once");
    }
    assert!(replayed == scored, "leaderboards and challenges too");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&moments);
}

#[test]
fn duplicates_within_a_batch_across_batches_and_across_a_restart_score_once() {
    use plaudit_core::ids::OrgId;
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::Record;
    use plaudit_server::organisation::Organisation;
    use plaudit_store::{RedbStore, Store};
    use plaudit_tests::{m, retract};
    use std::sync::Arc;

    let dir = scratch_dir("plaudit-dups");
    let rules = repo_root().join("rules/acme.toml");
    let text = std::fs::read_to_string(&rules).expect("rules");
    let acme = OrgId::parse("acme").expect("org id");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
    Organisation::create(store, acme.clone(), &text, Format::Toml).expect("created");
    let open = || {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
        Organisation::open(store, acme.clone()).expect("replays")
    };
    // Meetups an hour apart: past the guard's minimum gap; the rule's cap is 3 a day.
    let meetup = |id: &str| {
        let hour = 8 + id.bytes().next().map_or(0, |b| b - b'a');
        Record::Moment(m(id, "ann", "meetup", "event", &format!("2026-03-02T{hour:02}:00:00Z")))
    };
    let xp =
        |d: &mut Organisation| d.world_mut().profile("ann").and_then(|p| p.currencies.get("xp").copied()).unwrap_or(0);

    let (mut d, _) = open();
    let first = d.ingest(vec![meetup("a"), meetup("a"), meetup("b")]).expect("ingest");
    assert_eq!((first.accepted, first.duplicates), (2, 1), "within a batch");
    let second = d.ingest(vec![meetup("b"), meetup("c")]).expect("ingest");
    assert_eq!((second.accepted, second.duplicates), (1, 1), "across batches");
    let bad = d.ingest(vec![retract("nope"), meetup("d")]).expect("ingest");
    assert_eq!((bad.accepted, bad.rejected.len()), (1, 1), "a bad record is refused alone and never logged");
    let before = xp(&mut d);
    drop(d);

    let (mut d, replayed) = open();
    assert_eq!(replayed.records, 4, "a, b, c, d");
    assert_eq!(xp(&mut d), before, "the same state after the restart");
    let third = d.ingest(vec![meetup("a"), meetup("d"), retract("c"), retract("c")]).expect("ingest");
    assert_eq!((third.accepted, third.duplicates), (1, 3), "across a restart, and a retraction once");
    assert!(xp(&mut d) < before, "the retraction took back what c earned");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replay_lives_through_the_same_rule_set_versions_and_plugin_changes_at_the_same_records() {
    use plaudit_core::application::Mode;
    use plaudit_core::ids::OrgId;
    use plaudit_core::ruleset::Format;
    use plaudit_core::workload::{Spec, Workload};
    use plaudit_sdk::Record;
    use plaudit_server::organisation::{Organisation, what_if};
    use plaudit_store::{RedbStore, Store};
    use std::sync::Arc;

    let dir = scratch_dir("plaudit-versions");
    let v1 = std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules");
    let v2 = v1.replace("amount = 20 }]", "amount = 45 }]");
    assert_ne!(v1, v2);
    let records: Vec<Record> =
        Workload::new(Spec { stakeholders: 150, moments: 1200, days: 30, ..Spec::default() }).records().collect();
    let acme = OrgId::parse("acme").expect("org id");
    let summary = |d: &mut Organisation| serde_json::to_string(&d.world_mut().summary(1000)).expect("summary");

    let live = {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
        let mut d = Organisation::create(store, acme.clone(), &v1, Format::Toml).expect("created");
        let (a, rest) = records.split_at(400);
        let (b, c) = rest.split_at(400);
        d.ingest(a.to_vec()).expect("ingest");
        assert_eq!(d.publish_rules(&v2, Format::Toml).expect("v2").version, 2);
        d.install_plugin("bridge", &example_plugin("bridge_builder")).expect("installs");
        for chunk in b.chunks(150) {
            d.ingest(chunk.to_vec()).expect("ingest");
        }
        assert!(d.world().plugin("bridge").is_some_and(|s| s.moments > 0), "the plugin scored");
        assert!(d.remove_plugin("bridge").expect("removes"));
        d.ingest(c.to_vec()).expect("ingest");
        summary(&mut d)
    };
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
    let (mut d, replayed) = Organisation::open(Arc::clone(&store), acme.clone()).expect("replays");
    assert_eq!(replayed.records as usize, d.world().last_seq().0 as usize);
    assert_eq!((d.rules().version, d.rules().text.as_str()), (2, v2.as_str()));
    assert!(d.installed().is_empty(), "the removal was replayed");
    assert!(summary(&mut d) == live, "the replayed state equals the live one, bit for bit");

    // What-if against the versions lived through: v2 from the start raises xp, and the
    // candidate that equals what was in force at the end changes less than v1 from the start.
    let with_v2 = what_if(Arc::clone(&store), &acme, &v2, Format::Toml, Mode::Rebase).expect("what-if");
    let with_v1 = what_if(Arc::clone(&store), &acme, &v1, Format::Toml, Mode::Rebase).expect("what-if");
    assert_eq!(with_v2.records, replayed.records as usize);
    let (xp_v2, xp_v1) = (with_v2.totals["xp"], with_v1.totals["xp"]);
    assert_eq!(xp_v2.0, xp_v1.0, "the same history on the current side");
    assert!(xp_v2.1 > xp_v2.0 && xp_v1.1 < xp_v1.0, "v2 from the start gives more, v1 less: {xp_v2:?} {xp_v1:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plugin_calls_that_passed_the_wall_clock_backstop_are_recorded_and_replay_the_same() {
    use plaudit_core::ids::OrgId;
    use plaudit_core::plugins::PluginState;
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::Record;
    use plaudit_server::organisation::Organisation;
    use plaudit_store::{Change, RedbStore, Store};
    use std::sync::Arc;

    let dir = scratch_dir("plaudit-timeouts");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
    let org = OrgId::parse("test").expect("org id");
    // The most fuel there is, and the shortest backstop: the clock stops the calls first.
    let rules = format!(
        "{}\n[plugins]\nfuel = 1000000000\nwall_clock_ms = 10\n\n[[rule]]\nid = \"answer\"\nmatch = {{ kind = [\"answer\"] }}\naward = [{{ to = \"actor\", currency = \"xp\", amount = 10 }}]\n",
        plaudit_tests::HEADER
    );
    let mut d = Organisation::create(Arc::clone(&store), org.clone(), &rules, Format::Toml).expect("created");
    d.install_plugin("slow", &plaudit_tests::hostile_fixture("slow")).expect("installs");
    for i in 0..3 {
        let moment = plaudit_tests::m(&format!("m{i}"), "ann", "answer", "forum", "2026-03-02T10:00:00Z");
        d.ingest(vec![Record::Moment(moment)]).expect("ingest");
    }
    let live = d.world().plugin("slow").expect("status");
    assert_eq!((live.state, live.failed_calls), (PluginState::Disabled, 3), "{live:?}");
    assert!(live.last_failure.as_ref().is_some_and(|f| f.reason.contains("wall-clock")), "{live:?}");
    let recorded: Vec<(u64, u32)> = store
        .changes(&org)
        .expect("changes")
        .into_iter()
        .filter_map(|c| match c.change {
            Change::PluginCallsTimedOut { name, calls } if name == "slow" => Some(calls),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(recorded, vec![(1, 1), (2, 1), (3, 1)], "each timed-out call is in the log");
    drop(d);

    // Replayed without the backstop, the calls would finish and the plugin stay active: the
    // record makes them fail again, without running.
    let (mut d, _) = Organisation::open_from_start(Arc::clone(&store), org).expect("replays");
    let replayed = d.world().plugin("slow").expect("status");
    assert_eq!((replayed.state, replayed.failed_calls), (PluginState::Disabled, 3), "{replayed:?}");
    assert_eq!(plaudit_tests::balance(d.world_mut(), "ann", "xp"), 30, "the native rules scored all the same");
    drop((d, store));
    let _ = std::fs::remove_dir_all(&dir);
}

mod the_log_holds_what_the_world_accepted {
    //! A group's records are resolved by the world, and only those it accepted are stored, in
    //! order: otherwise the world's sequence numbers drift from the log's. So a replay of the
    //! log gives the live world, and each request of a group is told what one batch of its
    //! own, sent after the requests before it, would have been told.

    use std::sync::Arc;

    use plaudit_core::ids::OrgId;
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::{Record, Stakeholder};
    use plaudit_server::organisation::Organisation;
    use plaudit_store::{RedbStore, Store};
    use plaudit_tests::{m, repo_root, retract, scratch_dir};
    use proptest::prelude::*;

    fn durable(dir: &std::path::Path) -> (Organisation, Arc<dyn Store>) {
        let text = std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules");
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
        let acme = OrgId::parse("acme").expect("id");
        (Organisation::create(Arc::clone(&store), acme, &text, Format::Toml).expect("created"), store)
    }

    fn summary(d: &mut Organisation) -> String {
        serde_json::to_string(&d.world_mut().summary(100)).expect("summary")
    }

    /// Ingests each group in one go, and the same requests one by one elsewhere.
    fn assert_agree(groups: Vec<Vec<Vec<Record>>>) {
        // Tests run in parallel: each call has directories of its own.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (grouped, apart) =
            (scratch_dir(&format!("plaudit-grouped-{call}")), scratch_dir(&format!("plaudit-apart-{call}")));
        let (mut d, store) = durable(&grouped);
        let (mut one_by_one, _) = durable(&apart);
        for group in groups {
            let (outcomes, _) = d.ingest_group(group.clone(), false).expect("a group");
            let alone: Vec<_> = group.into_iter().map(|r| one_by_one.ingest(r).expect("a request")).collect();
            assert_eq!(outcomes, alone, "each request is told what it would be told alone");
        }
        let (live, logged) = (summary(&mut d), d.world().last_seq());
        assert!(live == summary(&mut one_by_one), "the same state both ways");
        drop(d);
        let (mut replayed, _) =
            Organisation::open_from_start(store, OrgId::parse("acme").expect("id")).expect("replays");
        assert_eq!(replayed.world().last_seq(), logged, "the log holds what the world accepted");
        assert!(summary(&mut replayed) == live, "and replays to the live world");
        let _ = (std::fs::remove_dir_all(grouped), std::fs::remove_dir_all(apart));
    }

    fn profile(id: &str, kind: &str, team: Option<&str>, name: Option<&str>) -> Record {
        let mut s = Stakeholder::new(id);
        s.kind = kind.to_string();
        s.team = team.map(str::to_string);
        s.name = name.map(str::to_string);
        Record::Profile(s)
    }

    #[test]
    fn a_profile_resent_within_a_batch_is_a_duplicate() {
        // What the API fuzz sent: a profile with attributes, then the same id twice without.
        let mut with_attrs = Stakeholder::new("ľ");
        with_attrs.attrs.insert("w".to_string(), plaudit_sdk::Value::Bool(true));
        let bare = Record::Profile(Stakeholder::new("ľ"));
        assert_agree(vec![vec![vec![Record::Profile(with_attrs), bare.clone()], vec![bare]]]);
    }

    #[test]
    fn a_default_profile_after_a_moment_that_created_the_stakeholder_is_a_duplicate() {
        let moment = Record::Moment(m("m1", "ann", "meetup", "event", "2026-03-02T08:00:00Z"));
        assert_agree(vec![vec![vec![moment], vec![Record::Profile(Stakeholder::new("ann"))]]]);
    }

    fn record() -> impl Strategy<Value = Record> {
        let id = prop::sample::select(vec!["ann", "bob", "cy"]);
        let moment = (0..6u8, id.clone(), prop::option::of(id.clone()), 0..4u8).prop_map(|(n, who, with, hour)| {
            let mut mo = m(&format!("m{n}"), who, "meetup", "event", &format!("2026-03-02T{:02}:00:00Z", 8 + hour));
            mo.counterpart = with.filter(|c| *c != who).map(str::to_string);
            Record::Moment(mo)
        });
        let bad = Just(Record::Moment(m("bad", "ann", "meetup", "event", "yesterday")));
        let kind = prop::sample::select(vec![plaudit_sdk::stakeholder::DEFAULT_KIND, "employee"]);
        let team = prop::option::of(prop::sample::select(vec!["sales", "support"]));
        let name = prop::option::of(Just("Ann"));
        let profile = (id, kind, team, name).prop_map(|(id, kind, team, name)| profile(id, kind, team, name));
        let retraction = (0..7u8).prop_map(|n| retract(&format!("m{n}")));
        prop_oneof![3 => moment, 3 => profile, 1 => retraction, 1 => bad]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_group_stores_exactly_what_the_world_accepted_and_tells_each_request_its_own(
            groups in prop::collection::vec(prop::collection::vec(prop::collection::vec(record(), 0..6), 1..4), 1..4),
        ) {
            assert_agree(groups);
        }
    }
}

mod faults {
    //! What the log step does when the store misbehaves under it: a world that disagrees with
    //! what the log has just recorded stops taking writes; a commit that fails after its group
    //! was scored leaves the world as the log has it.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use plaudit_core::application::Mode;
    use plaudit_core::ids::{OrgId, Seq};
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::Record;
    use plaudit_server::organisation::{OrgError, Organisation};
    use plaudit_store::{RedbStore, Store, StoreError};
    use plaudit_tests::{Fault, FaultyStore, m, repo_root, scratch_dir};

    /// Faults injected once when told to: a second writer slips one record in before the next
    /// append (`interloper`: the world then disagrees with what the log recorded), or the next
    /// append fails without storing anything (`failing`).
    #[derive(Debug, Default)]
    struct Faults {
        interloper: AtomicBool,
        failing: AtomicBool,
    }

    impl Fault for Faults {
        fn before_append(&self, inner: &dyn Store, org: &OrgId, received: i64) -> Result<(), StoreError> {
            if self.failing.swap(false, Ordering::Relaxed) {
                return Err(StoreError::Backend { op: "append", source: "the disk is full".into() });
            }
            if self.interloper.swap(false, Ordering::Relaxed) {
                let foreign = m("foreign", "zed", "meetup", "event", "2026-03-02T07:00:00Z");
                inner.append(org, &[Record::Moment(foreign)], received)?;
            }
            Ok(())
        }
    }

    type Faulty = FaultyStore<Faults>;

    /// Organisation acme, created over a [`Faulty`] store in `dir`; and its rule set.
    fn acme_over_faulty(dir: &std::path::Path) -> (Organisation, Arc<Faulty>, String) {
        let text = std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules");
        let inner = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
        let store = Arc::new(Faulty { inner, fault: Faults::default() });
        let org = OrgId::parse("acme").expect("id");
        let d = Organisation::create(Arc::clone(&store) as Arc<dyn Store>, org, &text, Format::Toml).expect("created");
        (d, store, text)
    }

    #[test]
    fn a_world_that_disagrees_with_what_the_log_recorded_halts_writes_and_keeps_reads() {
        let dir = scratch_dir("plaudit-halt");
        let (mut d, store, text) = acme_over_faulty(&dir);
        let meetup = |id: &str| Record::Moment(m(id, "ann", "meetup", "event", "2026-03-02T08:00:00Z"));
        d.ingest(vec![meetup("a")]).expect("a normal batch");

        store.fault.interloper.store(true, Ordering::Relaxed);
        let halted = |e: &OrgError| matches!(e, OrgError::Halted { .. });
        let e = d.ingest(vec![meetup("b")]).expect_err("the world took one record, the log holds two");
        assert!(halted(&e), "halted, not {e}");
        assert!(e.to_string().contains("takes no more writes"), "{e}");
        let logged = store.last_seq(d.org()).expect("last seq");

        let e = d.ingest(vec![meetup("c")]).expect_err("writes are refused");
        assert!(halted(&e), "{e}");
        assert!(halted(&d.publish_rules(&text, Format::Toml).expect_err("a rule set too")));
        assert!(halted(&d.apply_to_history(Mode::Additive).expect_err("an application to history too")));
        assert_eq!(store.last_seq(d.org()).expect("last seq"), logged, "nothing more was recorded");
        assert_eq!(store.changes(d.org()).expect("changes").len(), 1, "no change either");
        assert!(d.world_mut().profile("ann").is_some(), "reads go on");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_commit_that_fails_after_its_group_was_scored_leaves_the_world_and_the_feed_as_the_log_has_them() {
        let dir = scratch_dir("plaudit-failed-commit");
        let (mut d, store, _) = acme_over_faulty(&dir);
        d.start_feed(1000);
        let meetup = |id: &str, who: &str| Record::Moment(m(id, who, "meetup", "event", "2026-03-02T08:00:00Z"));
        d.ingest(vec![meetup("a", "ann")]).expect("a normal batch");
        let before = serde_json::to_string(&d.world_mut().summary(100)).expect("summary");
        let fed = d.feed().expect("feed").latest();
        assert!(fed > 0, "the first meetup earned something");

        store.fault.failing.store(true, Ordering::Relaxed);
        let group = vec![vec![meetup("b", "ann")], vec![meetup("c", "bob")]];
        let e = d.ingest_group(group.clone(), true).expect_err("the commit fails");
        assert!(matches!(e, OrgError::Store(StoreError::Backend { .. })), "the store's error, not {e}");
        assert_eq!(store.last_seq(d.org()).expect("last seq"), Seq(1), "nothing of the group was stored");
        assert_eq!(d.world().last_seq(), Seq(1), "nor is anything of it in the world");
        assert!(d.world_mut().profile("bob").is_none(), "bob came only with the failed group");
        let after = serde_json::to_string(&d.world_mut().summary(100)).expect("summary");
        assert!(after == before, "the world is as the log has it");
        assert_eq!(d.feed().expect("the feed stays").latest(), fed, "no effect of the group was fed");

        let (outcomes, effects) = d.ingest_group(group, true).expect("the same group again goes in");
        assert_eq!(outcomes.iter().map(|o| (o.accepted, o.duplicates)).collect::<Vec<_>>(), [(1, 0), (1, 0)]);
        let numbered = effects.iter().map(Vec::len).sum::<usize>() as u64;
        assert_eq!(d.feed().expect("feed").latest(), fed + numbered, "its effects are numbered after the first's");
        let live = serde_json::to_string(&d.world_mut().summary(100)).expect("summary");
        drop(d);
        let (mut replayed, _) =
            Organisation::open_from_start(store, OrgId::parse("acme").expect("id")).expect("replays");
        assert!(serde_json::to_string(&replayed.world_mut().summary(100)).expect("summary") == live, "bit for bit");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_replay_of_many_pages_read_ahead_on_another_thread_gives_the_live_state_and_effect_count() {
    use plaudit_core::ids::OrgId;
    use plaudit_core::ruleset::Format;
    use plaudit_core::workload::{Spec, Workload};
    use plaudit_sdk::Record;
    use plaudit_server::organisation::Organisation;
    use plaudit_store::{RedbStore, Store};
    use std::sync::Arc;

    let dir = scratch_dir("plaudit-pages");
    let text = std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules");
    // More than three pages of the replay (4096 records each), and a page cut short.
    let records: Vec<Record> =
        Workload::new(Spec { stakeholders: 500, moments: 12_800, days: 20, ..Spec::default() }).records().collect();
    assert!(records.len() > 3 * 4096);
    let acme = OrgId::parse("acme").expect("org id");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store opens"));
    let mut d = Organisation::create(Arc::clone(&store), acme.clone(), &text, Format::Toml).expect("created");
    for chunk in records.chunks(1000) {
        d.ingest(chunk.to_vec()).expect("ingest");
    }
    let live = serde_json::to_string(&d.world_mut().summary(1000)).expect("summary");
    let logged = d.world().last_seq().0;
    let effects = d.effects_produced();
    assert!(effects > logged, "several effects a moment");
    drop(d);
    // Counting the effects (a restart) and keeping them for a feed give the same count.
    let (mut again, replayed) = Organisation::open_from_start(Arc::clone(&store), acme.clone()).expect("replays");
    assert_eq!(replayed.records, logged);
    assert!(serde_json::to_string(&again.world_mut().summary(1000)).expect("summary") == live, "bit for bit");
    assert_eq!(again.effects_produced(), effects, "counted, not kept");
    assert!(again.world_mut().take_effect_records().is_empty(), "none kept");
    drop(again);
    let (fed, _) = Organisation::open_with_feed(store, acme, 100).expect("replays");
    assert_eq!(fed.effects_produced(), effects);
    assert_eq!(fed.feed().map(|f| f.latest()), Some(effects), "the feed numbers on from the same count");
    let _ = std::fs::remove_dir_all(&dir);
}
