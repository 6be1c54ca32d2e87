//! Helpers for the integration tests: build a world from a rule-set snippet, make moments
//! tersely, run records and pick effects apart.

use plaudit_core::OrgWorld;
use plaudit_core::intern::Interner;
use plaudit_core::ruleset::{compile::compile, parse_toml};
use plaudit_sdk::{Effect, EffectKind, Moment, Record, Retraction, Stakeholder, Value};

/// What the test servers take besides their own configuration: moments of any date within a
/// century (the tests post moments of 2026-03 and of far futures, which a server's default
/// window of 90 days back and 5 minutes ahead refuses) and records as fast as they come. The
/// tests of those limits set them per organisation (`PUT /v1/orgs/{org}/limits`).
pub const PERMISSIVE: &str = "\n[moments]\nmax_age_seconds = 3155760000\nmax_ahead_seconds = 3155760000\n\n\
     [quotas]\nrecords_per_second = 100000000\nrecords_burst = 1000000000\n";

/// [`PERMISSIVE`] as a server configuration's values.
pub fn permissive(config: &mut plaudit_server::http::ServerConfig) {
    config.moments.max_age_seconds = 3_155_760_000;
    config.moments.max_ahead_seconds = 3_155_760_000;
    config.quotas.records_per_second = 100_000_000;
    config.quotas.records_burst = 1_000_000_000;
}

/// The `[organisation]` and currencies every snippet starts from: Amsterdam time, so that
/// windows are tested away from UTC.
pub const HEADER: &str = r#"
[organisation]
id = "test"
timezone = "Europe/Amsterdam"
seed = 7

[[currency]]
id = "xp"

[[currency]]
id = "coins"
"#;

/// A world for `HEADER` + `rules`. Panics with the validation message if the rules are bad.
pub fn world(rules: &str) -> OrgWorld {
    world_from(&format!("{HEADER}\n{rules}"))
}

/// A world for a whole rule-set text.
pub fn world_from(text: &str) -> OrgWorld {
    let doc = parse_toml(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut vocab = Interner::new();
    let program = compile(&doc, &mut vocab, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    OrgWorld::new(program, vocab)
}

/// The validation error for `HEADER` + `rules`, as text.
pub fn rules_error(rules: &str) -> String {
    let text = format!("{HEADER}\n{rules}");
    match parse_toml(&text, "test.toml") {
        Err(e) => e.to_string(),
        Ok(doc) => match compile(&doc, &mut Interner::new(), "test.toml") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("rules were accepted:\n{rules}"),
        },
    }
}

/// A moment by `who` of `kind` on `channel` at `at` (RFC 3339).
pub fn m(id: &str, who: &str, kind: &str, channel: &str, at: &str) -> Moment {
    Moment {
        id: id.to_string(),
        stakeholder: who.to_string(),
        counterpart: None,
        kind: kind.to_string(),
        channel: channel.to_string(),
        at: at.to_string(),
        value: None,
        attrs: Default::default(),
    }
}

/// Builder-style additions to a moment.
pub trait MomentExt {
    fn with(self, counterpart: &str) -> Moment;
    fn value(self, v: f64) -> Moment;
    fn attr(self, name: &str, v: Value) -> Moment;
}

impl MomentExt for Moment {
    fn with(mut self, counterpart: &str) -> Moment {
        self.counterpart = Some(counterpart.to_string());
        self
    }
    fn value(mut self, v: f64) -> Moment {
        self.value = Some(v);
        self
    }
    fn attr(mut self, name: &str, v: Value) -> Moment {
        self.attrs.insert(name.to_string(), v);
        self
    }
}

pub fn profile(id: &str, kind: &str, team: &str) -> Record {
    Record::Profile(Stakeholder {
        id: id.to_string(),
        kind: kind.to_string(),
        team: Some(team.to_string()),
        name: None,
        attrs: Default::default(),
    })
}

pub fn retract(id: &str) -> Record {
    Record::Retract(Retraction { retract: id.to_string(), reason: None })
}

/// Scores `moments` (one batch) and returns the effects.
pub fn score(w: &mut OrgWorld, moments: Vec<Moment>) -> Vec<Effect> {
    run(w, moments.into_iter().map(Record::Moment).collect())
}

/// Runs `records` (one batch) and returns the effects. Panics if any record is rejected.
pub fn run(w: &mut OrgWorld, records: Vec<Record>) -> Vec<Effect> {
    let outcome = w.ingest(records);
    assert!(outcome.rejected.is_empty(), "rejected: {:?}", outcome.rejected);
    w.drain_effects()
}

/// Total points of `currency` awarded to `who` in `effects` (revocations subtract).
pub fn points(effects: &[Effect], who: &str, currency: &str) -> i64 {
    effects
        .iter()
        .filter(|e| e.stakeholder == who)
        .map(|e| match &e.kind {
            EffectKind::PointsAwarded { currency: c, amount, .. } if c == currency => *amount,
            EffectKind::PointsRevoked { currency: c, amount, .. } if c == currency => -*amount,
            _ => 0,
        })
        .sum()
}

/// `who`'s balance of `currency` now.
pub fn balance(w: &mut OrgWorld, who: &str, currency: &str) -> i64 {
    w.profile(who).and_then(|p| p.currencies.get(currency).copied()).unwrap_or(0)
}

/// The badges (with tier) that `effects` granted to `who`, in order.
pub fn badges(effects: &[Effect], who: &str) -> Vec<String> {
    effects
        .iter()
        .filter(|e| e.stakeholder == who)
        .filter_map(|e| match &e.kind {
            EffectKind::BadgeEarned { badge, tier: Some(t), .. } => Some(format!("{badge}:{t}")),
            EffectKind::BadgeEarned { badge, tier: None, count } => Some(format!("{badge}#{count}")),
            _ => None,
        })
        .collect()
}

/// The moment ids of the effects of a given `type` tag, in order.
pub fn moments_of(effects: &[Effect], ty: &str) -> Vec<String> {
    of_type(effects, ty).iter().map(|e| e.moment.clone()).collect()
}

/// Effects of a given `type` tag (`points_awarded`, `streak_broken`...).
pub fn of_type<'a>(effects: &'a [Effect], ty: &str) -> Vec<&'a Effect> {
    effects
        .iter()
        .filter(|e| serde_json::to_value(&e.kind).ok().and_then(|v| v.get("type").cloned()) == Some(ty.into()))
        .collect()
}

/// The repository's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// An example plugin built by `scripts/build-plugins.sh`: `plugins/dist/<crate>.wasm`.
pub fn example_plugin(crate_name: &str) -> Vec<u8> {
    let path = repo_root().join("plugins/dist").join(format!("{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; build the example plugins first: bash scripts/build-plugins.sh", path.display())
    })
}

/// A hostile fixture from `tests/fixtures/plugins/` (`name.wat`, or `name.wasm` as is).
pub fn hostile_fixture(name: &str) -> Vec<u8> {
    let dir = repo_root().join("tests/fixtures/plugins");
    let wat = dir.join(format!("{name}.wat"));
    if wat.exists() {
        let text = std::fs::read_to_string(&wat).unwrap_or_else(|e| panic!("{}: {e}", wat.display()));
        return wat::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", wat.display()));
    }
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}

/// A fresh, empty scratch directory `NAME-PID` under the system's temp dir (what an earlier
/// run left there removed). The tests remove it when they pass.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// What a [`FaultyStore`] does besides, or instead of, its real store (by default nothing).
pub trait Fault: Send + Sync + std::fmt::Debug {
    /// Runs before each append: an `Err` fails it, nothing stored (it may also write to the
    /// real store first, as a second writer would).
    fn before_append(
        &self,
        _inner: &dyn plaudit_store::Store,
        _org: &plaudit_core::ids::OrgId,
        _received: i64,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// The answer in the real store's place, if any (`None`: the real store answers).
    fn latest_snapshot(
        &self,
        _inner: &dyn plaudit_store::Store,
        _org: &plaudit_core::ids::OrgId,
    ) -> Option<StoreResult<Option<Snapshot>>> {
        None
    }
}

type StoreResult<T> = Result<T, plaudit_store::StoreError>;

/// A stored snapshot: the last record it holds, and its bytes.
pub type Snapshot = (plaudit_core::ids::Seq, Vec<u8>);

/// A real store that misbehaves where its [`Fault`] says, and passes every other call on.
#[derive(Debug)]
pub struct FaultyStore<F> {
    pub inner: std::sync::Arc<dyn plaudit_store::Store>,
    pub fault: F,
}

mod faulty {
    use plaudit_core::ids::{OrgId, Seq};
    use plaudit_sdk::Record;
    use plaudit_store::{Change, LoggedChange, OrgTable, Segment, Store};

    use super::{Fault, FaultyStore, Snapshot, StoreResult};

    impl<F: Fault> Store for FaultyStore<F> {
        fn append(&self, org: &OrgId, records: &[Record], received: i64) -> StoreResult<Seq> {
            self.fault.before_append(self.inner.as_ref(), org, received)?;
            self.inner.append(org, records, received)
        }
        fn read_segments(&self, org: &OrgId, after: Seq, limit: usize) -> StoreResult<Vec<Segment>> {
            self.inner.read_segments(org, after, limit)
        }
        fn last_seq(&self, org: &OrgId) -> StoreResult<Seq> {
            self.inner.last_seq(org)
        }
        fn append_change(&self, org: &OrgId, after: Seq, c: &Change, m: Option<&[u8]>) -> StoreResult<u64> {
            self.inner.append_change(org, after, c, m)
        }
        fn create_org(&self, org: &OrgId, key: Option<[u8; 32]>, first: &Change) -> StoreResult<()> {
            self.inner.create_org(org, key, first)
        }
        fn org_key(&self, org: &OrgId) -> StoreResult<Option<[u8; 32]>> {
            self.inner.org_key(org)
        }
        fn set_org_key(&self, org: &OrgId, key: [u8; 32]) -> StoreResult<()> {
            self.inner.set_org_key(org, key)
        }
        fn organisations(&self) -> StoreResult<Vec<OrgId>> {
            self.inner.organisations()
        }
        fn org_records(&self, org: &OrgId, table: OrgTable) -> StoreResult<Vec<(String, Vec<u8>)>> {
            self.inner.org_records(org, table)
        }
        fn set_org_record(&self, org: &OrgId, table: OrgTable, name: &str, bytes: Option<&[u8]>) -> StoreResult<bool> {
            self.inner.set_org_record(org, table, name, bytes)
        }
        fn changes(&self, org: &OrgId) -> StoreResult<Vec<LoggedChange>> {
            self.inner.changes(org)
        }
        fn module(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
            self.inner.module(hash)
        }
        fn put_snapshot(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> StoreResult<()> {
            self.inner.put_snapshot(org, seq, bytes)
        }
        fn latest_snapshot(&self, org: &OrgId) -> StoreResult<Option<Snapshot>> {
            self.fault.latest_snapshot(self.inner.as_ref(), org).unwrap_or_else(|| self.inner.latest_snapshot(org))
        }

        fn stored_bytes(&self, org: &OrgId) -> StoreResult<u64> {
            self.inner.stored_bytes(org)
        }

        fn erase(&self, org: &OrgId, subject: &str, pseudonym: &str) -> StoreResult<plaudit_store::Erasure> {
            self.inner.erase(org, subject, pseudonym)
        }
    }
}

/// A scratch folder (see [`scratch_dir`]) holding a store, `plaudit.redb`; removed when
/// dropped.
#[derive(Debug)]
pub struct ScratchStore(pub std::path::PathBuf);

impl ScratchStore {
    pub fn new(name: &str) -> ScratchStore {
        ScratchStore(scratch_dir(name))
    }

    /// The store, opened now (again, after an earlier handle was dropped: a restart).
    pub fn store(&self) -> std::sync::Arc<dyn plaudit_store::Store> {
        std::sync::Arc::new(plaudit_store::RedbStore::open(self.0.join("plaudit.redb")).expect("the store opens"))
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plugin module, as WebAssembly text compiled to binary, that speaks the ABI and answers
/// every call with the same `output` (encoded with the SDK's wire format), after spinning
/// `spin.1` loop turns when the call's input is over `spin.0` bytes (a call of more than one
/// moment, say). Its manifest names it `name`. A hostile or odd plugin in a few lines: an
/// output that awards moment 0 depends on how moments were grouped into calls.
pub fn fixed_output_plugin(
    name: &str,
    output: &plaudit_sdk::plugin::wire::Output,
    spin: Option<(u32, u32)>,
) -> Vec<u8> {
    use plaudit_sdk::plugin::wire::{self, ABI_VERSION, Manifest};
    let manifest = Manifest { abi: ABI_VERSION, name: name.to_string(), version: "1".to_string(), context: vec![] };
    let manifest = wire::encode(&manifest).expect("the manifest encodes");
    let output = wire::encode(output).expect("the output encodes");
    let escaped = |bytes: &[u8]| bytes.iter().map(|b| format!("\\{b:02x}")).collect::<String>();
    let (spin_over, turns) = spin.unwrap_or((u32::MAX, 0));
    let out_at = 64 + manifest.len();
    let text = format!(
        r#"(module
  (import "plaudit" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 64) "{manifest}")
  (data (i32.const {out_at}) "{output}")
  (global $heap (mut i32) (i32.const 65536))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "manifest") (result i64) (call $pack (i32.const 64) (i32.const {manifest_len})))
  (func (export "score") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)
    (if (i32.gt_u (local.get $len) (i32.const {spin_over}))
      (then
        (local.set $n (i32.const {turns}))
        (block $done
          (loop $spin
            (br_if $done (i32.eqz (local.get $n)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $spin)))))
    (call $pack (i32.const {out_at}) (i32.const {output_len})))
)"#,
        manifest = escaped(&manifest),
        output = escaped(&output),
        manifest_len = manifest.len(),
        output_len = output.len(),
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("the fixed-output plugin does not assemble: {e}\n{text}"))
}

/// An output that awards `amount` of `currency` to the actor of the call's first moment.
pub fn award_first(currency: &str, amount: i64) -> plaudit_sdk::plugin::wire::Output {
    use plaudit_sdk::plugin::wire::{EffectOut, OP_AWARD, Output, TO_ACTOR};
    let effect = EffectOut {
        moment: 0,
        to: TO_ACTOR,
        op: OP_AWARD,
        name: currency.to_string(),
        amount,
        data: Default::default(),
    };
    Output { effects: vec![effect], ..Output::default() }
}
