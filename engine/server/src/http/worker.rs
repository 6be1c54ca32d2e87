//! One thread per organisation owns its [`Organisation`] world; request handlers send it jobs and
//! await the answers. The async runtime never touches a `World` and never blocks on scoring or
//! on an fsync; an organisation's requests are served in arrival order.
//!
//! Group commit: when moment batches queue up behind one another (many clients, small
//! requests), the worker takes all that are waiting, up to [`GROUP_RECORDS`] records, and
//! stores them in one commit, so one fsync acknowledges them all. The commit runs on the
//! organisation's commit thread while the worker scores the group; the group is answered, and
//! the next job taken, once it is in ([`Organisation::ingest_group`]).
//!
//! Snapshots: once an organisation has accepted `snapshot_every` records since its last
//! snapshot, the worker copies its world out between two batches ([`Organisation::capture`]) and a
//! thread of its own encodes and stores it while the worker goes on scoring; one such write at
//! a time. [`Worker::close`] waits for it and takes a last snapshot, so a clean stop restarts
//! without replaying.

use std::sync::mpsc;
use std::thread::JoinHandle;

use plaudit_sdk::Record;
use tokio::sync::oneshot;

use super::error::ApiError;
use crate::organisation::{GroupEffects, Organisation};
use plaudit_core::Outcome;

/// Most records stored in one group commit.
pub const GROUP_RECORDS: usize = 10_000;

/// What a moments request gets back.
/// What a moments request gets back: its outcome and effects, or why nothing of its group was
/// stored (shared by every request of the group).
pub type Ingested = Result<(Outcome, GroupEffects), std::sync::Arc<crate::organisation::OrgError>>;

enum Job {
    /// A batch of records; the effects are rendered when `effects` is set.
    Ingest {
        records: Vec<Record>,
        effects: bool,
        reply: oneshot::Sender<Ingested>,
    },
    Run(Box<dyn FnOnce(&mut Organisation) + Send>),
    /// Erase a stakeholder, once no snapshot taken before is still being written (it would
    /// store what the erasure removes); then a snapshot of the world without them.
    Erase(Box<dyn FnOnce(&mut Organisation) + Send>),
    /// Finish the snapshot being written, take a last one, then answer.
    Close(oneshot::Sender<()>),
    /// Stop at once, writing nothing (another node owns the organisation now), then answer.
    Abandon(oneshot::Sender<()>),
}

/// Called once, from the worker's thread, when the worker stopped because its world was
/// lost ([`Organisation::lost`]): the organisation is to be opened again from its log.
pub type OnLost = Box<dyn FnOnce() + Send>;

/// A handle on an organisation's worker thread.
#[derive(Debug, Clone)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread that owns `durable` until every handle is dropped, snapshotting it
    /// every `snapshot_every` records (0: never). If its world is lost, the worker stops
    /// (the jobs still queued are refused) and calls `on_lost`.
    pub fn start(durable: Organisation, snapshot_every: u64, on_lost: Option<OnLost>) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let name = format!("org-{}", durable.org());
        let snapshots = Snapshots { every: snapshot_every, writing: None };
        std::thread::Builder::new().name(name).spawn(move || {
            let stopped = work(durable, &queue, snapshots);
            // The queue goes first, so that whoever `on_lost` wakes finds this worker stopped
            // (`Worker::stopped`), never a live one to leave be.
            drop(queue);
            if stopped == Stopped::Lost
                && let Some(on_lost) = on_lost
            {
                on_lost();
            }
        })?;
        Ok(Worker { jobs })
    }

    /// Stops the worker at once, after the jobs queued before, writing nothing more (no last
    /// snapshot): for an organisation another node owns now.
    pub async fn abandon(&self) -> Result<(), ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Abandon(reply), rx).await
    }

    /// Waits for the snapshot being written, if any, and takes a last one if records came
    /// since (when snapshots are on), then stops the worker and lets go of the organisation
    /// before answering. For a clean stop: later jobs are refused.
    pub async fn close(&self) -> Result<(), ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Close(reply), rx).await
    }

    /// Runs `f` on the organisation's thread and returns its answer.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Organisation) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |durable| {
            let _ = tx.send(f(durable));
        }));
        self.send(job, rx).await
    }

    /// Erases stakeholder `subject` ([`Organisation::erase`]).
    pub async fn erase(
        &self,
        subject: String,
    ) -> Result<Result<Option<crate::organisation::erasure::Erased>, crate::organisation::OrgError>, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Erase(Box::new(move |durable| {
            let _ = tx.send(durable.erase(&subject));
        }));
        self.send(job, rx).await
    }

    /// Stores and scores `records` (in a group commit with whatever else is waiting).
    pub async fn ingest(&self, records: Vec<Record>, effects: bool) -> Result<Ingested, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Ingest { records, effects, reply }, rx).await
    }

    /// Whether the worker stopped (its world lost, closed, abandoned): its queue is gone, so
    /// a job sent now is refused.
    pub fn stopped(&self) -> bool {
        self.jobs.send(Job::Run(Box::new(|_| {}))).is_err()
    }

    /// A worker stops when its organisation closes, moves to another node or must be opened
    /// again: a request it did not answer is worth retrying (`503`, and nothing of it was
    /// done unless its moments are met as duplicates), except one that met a panic (`500`).
    async fn send<R>(&self, job: Job, rx: oneshot::Receiver<R>) -> Result<R, ApiError> {
        self.jobs.send(job).map_err(|_| ApiError::moving("the organisation's worker has stopped"))?;
        match rx.await {
            Ok(answer) => Ok(answer),
            // Unanswered because the worker stopped (its world lost, closed, abandoned) with the
            // job still queued: its queue is gone, so a job sent now is refused too.
            Err(_) if self.stopped() => Err(ApiError::moving("the organisation's worker stopped before this request")),
            Err(_) => Err(ApiError::internal("the organisation's worker failed on this request")),
        }
    }
}

/// The worker's snapshot policy and the write in flight.
struct Snapshots {
    every: u64,
    writing: Option<JoinHandle<()>>,
}

impl Snapshots {
    /// Starts a snapshot if `every` records came since the last and none is being written.
    fn maybe(&mut self, durable: &mut Organisation) {
        if self.every == 0 || durable.since_snapshot() < self.every {
            return;
        }
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        self.wait();
        let capture = durable.capture();
        let store = std::sync::Arc::clone(durable.store());
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-{}", durable.org()))
            .spawn(move || log_snapshot(capture.store(store.as_ref())));
        match spawned {
            Ok(handle) => self.writing = Some(handle),
            Err(e) => tracing::warn!(org = %durable.org(), error = %e, "cannot start a snapshot thread"),
        }
    }

    fn wait(&mut self) {
        if let Some(handle) = self.writing.take() {
            let _ = handle.join();
        }
    }

    /// The stop: the write in flight finished, then a last snapshot if anything is new.
    fn close(&mut self, durable: &mut Organisation) {
        self.wait();
        if self.every > 0 && durable.since_snapshot() > 0 {
            log_snapshot(durable.snapshot());
        }
    }
}

fn log_snapshot(stored: Result<crate::organisation::Snapshotted, crate::organisation::OrgError>) {
    match stored {
        Ok(s) => tracing::info!(
            seq = s.seq.0,
            stakeholders = s.stakeholders,
            bytes = s.bytes,
            capture_ms = s.capture.as_millis() as u64,
            write_ms = s.write.as_millis() as u64,
            "snapshot stored"
        ),
        Err(e) => tracing::warn!(error = %e, "snapshot failed; the log still holds everything"),
    }
}

/// Why a worker stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stopped {
    /// Closed, abandoned, or every handle dropped.
    Done,
    /// Its world was lost ([`Organisation::lost`]).
    Lost,
}

fn work(mut durable: Organisation, queue: &mpsc::Receiver<Job>, mut snapshots: Snapshots) -> Stopped {
    let mut next = None;
    loop {
        if durable.lost() {
            snapshots.wait();
            return Stopped::Lost;
        }
        let job = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => {
                    snapshots.wait();
                    return Stopped::Done;
                }
            },
        };
        match job {
            Job::Run(f) => guarded(&mut durable, f),
            Job::Erase(f) => {
                snapshots.wait();
                guarded(&mut durable, f);
                snapshots.maybe(&mut durable);
            }
            Job::Close(reply) => {
                // The organisation (its store handle with it) is gone before the answer: a
                // server opened on the same data right after this one closed finds it free.
                snapshots.close(&mut durable);
                drop(durable);
                let _ = reply.send(());
                return Stopped::Done;
            }
            Job::Abandon(reply) => {
                snapshots.wait();
                drop(durable);
                let _ = reply.send(());
                return Stopped::Done;
            }
            Job::Ingest { records, effects, reply } => {
                let mut total = records.len();
                let mut group: Vec<Waiting> = vec![(records, effects, reply)];
                while total < GROUP_RECORDS {
                    match queue.try_recv() {
                        Ok(Job::Ingest { records, effects, reply }) => {
                            total += records.len();
                            group.push((records, effects, reply));
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                guarded(&mut durable, |durable| commit(durable, group));
                snapshots.maybe(&mut durable);
            }
        }
    }
}

/// Runs `job` on the organisation; if it panics, says so and rebuilds the world from the log
/// (the panic may have left it half-changed), so that the organisation goes on serving. The
/// requests of the job that met the panic are answered `500` (their reply is dropped); what
/// they stored is in the log, and in the world rebuilt from it.
fn guarded(durable: &mut Organisation, job: impl FnOnce(&mut Organisation)) {
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(durable))) else { return };
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    tracing::error!(org = %durable.org(), panic = %what, "a job panicked: the world is rebuilt from the log");
    durable.recover();
}

/// A waiting moments request: its records, whether it wants its effects, where to answer.
type Waiting = (Vec<Record>, bool, oneshot::Sender<Ingested>);

fn commit(durable: &mut Organisation, group: Vec<Waiting>) {
    let render = group.iter().any(|(_, effects, _)| *effects);
    let mut requests = Vec::with_capacity(group.len());
    let mut rest = Vec::with_capacity(group.len());
    for (records, effects, reply) in group {
        requests.push(records);
        rest.push((effects, reply));
    }
    match durable.ingest_group(requests, render) {
        Ok((outcomes, effects)) => {
            for ((outcome, effects), (wanted, reply)) in outcomes.into_iter().zip(effects).zip(rest) {
                let effects = if wanted { effects } else { Vec::new() };
                let _ = reply.send(Ok((outcome, effects)));
            }
        }
        Err(e) => {
            let e = std::sync::Arc::new(e);
            for (_, reply) in rest {
                let _ = reply.send(Err(std::sync::Arc::clone(&e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use plaudit_core::ids::{OrgId, Seq};
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::Moment;
    use plaudit_store::{Change, Erasure, LoggedChange, OrgTable, RedbStore, Segment, Store, StoreError};

    use super::*;

    const RULES: &str = "[organisation]\nid = \"acme\"\ntimezone = \"UTC\"\n\n[[currency]]\nid = \"xp\"\n\n\
                         [[rule]]\nid = \"any\"\naward = [{ to = \"actor\", currency = \"xp\", amount = 1 }]\n";

    fn moment(id: &str) -> Record {
        Record::Moment(Moment {
            id: id.into(),
            stakeholder: "ann".into(),
            counterpart: None,
            kind: "post".into(),
            channel: "forum".into(),
            at: "2026-03-02T10:00:00Z".into(),
            value: None,
            attrs: plaudit_sdk::Attrs::new(),
        })
    }

    /// A store that can be cut off: every call answers [`StoreError::Unavailable`] while
    /// `down` is set, as a PostgreSQL restarting does.
    #[derive(Debug)]
    struct Flaky {
        inner: RedbStore,
        down: std::sync::atomic::AtomicBool,
    }

    impl Flaky {
        fn up(&self, op: &'static str) -> Result<(), StoreError> {
            match self.down.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err(StoreError::Unavailable { op, source: "cut off".into() }),
                false => Ok(()),
            }
        }
    }

    impl Store for Flaky {
        fn append(&self, org: &OrgId, records: &[Record], received: i64) -> Result<Seq, StoreError> {
            self.up("append")?;
            self.inner.append(org, records, received)
        }
        fn read_segments(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<Segment>, StoreError> {
            self.up("read")?;
            self.inner.read_segments(org, after, limit)
        }
        fn last_seq(&self, org: &OrgId) -> Result<Seq, StoreError> {
            self.up("last_seq")?;
            self.inner.last_seq(org)
        }
        fn append_change(
            &self,
            org: &OrgId,
            after: Seq,
            change: &Change,
            module: Option<&[u8]>,
        ) -> Result<u64, StoreError> {
            self.up("append_change")?;
            self.inner.append_change(org, after, change, module)
        }
        fn changes(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError> {
            self.up("changes")?;
            self.inner.changes(org)
        }
        fn module(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.up("module")?;
            self.inner.module(hash)
        }
        fn put_snapshot(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError> {
            self.up("put_snapshot")?;
            self.inner.put_snapshot(org, seq, bytes)
        }
        fn stored_bytes(&self, org: &OrgId) -> Result<u64, StoreError> {
            self.up("stored_bytes")?;
            self.inner.stored_bytes(org)
        }
        fn latest_snapshot(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
            self.up("latest_snapshot")?;
            self.inner.latest_snapshot(org)
        }
        fn create_org(&self, org: &OrgId, key_hash: Option<[u8; 32]>, first: &Change) -> Result<(), StoreError> {
            self.up("create_org")?;
            self.inner.create_org(org, key_hash, first)
        }
        fn org_key(&self, org: &OrgId) -> Result<Option<[u8; 32]>, StoreError> {
            self.up("org_key")?;
            self.inner.org_key(org)
        }
        fn set_org_key(&self, org: &OrgId, key_hash: [u8; 32]) -> Result<(), StoreError> {
            self.up("set_org_key")?;
            self.inner.set_org_key(org, key_hash)
        }
        fn organisations(&self) -> Result<Vec<OrgId>, StoreError> {
            self.up("organisations")?;
            self.inner.organisations()
        }
        fn org_records(&self, org: &OrgId, table: OrgTable) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.up("org_records")?;
            self.inner.org_records(org, table)
        }
        fn erase(&self, org: &OrgId, subject: &str, pseudonym: &str) -> Result<Erasure, StoreError> {
            self.up("erase")?;
            self.inner.erase(org, subject, pseudonym)
        }
        fn set_org_record(
            &self,
            org: &OrgId,
            table: OrgTable,
            name: &str,
            bytes: Option<&[u8]>,
        ) -> Result<bool, StoreError> {
            self.up("set_org_record")?;
            self.inner.set_org_record(org, table, name, bytes)
        }
    }

    #[test]
    fn a_world_lost_with_the_store_out_of_reach_stops_its_worker_before_asking_for_a_reopen() {
        let dir = std::env::temp_dir().join(format!("plaudit-worker-lost-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let inner = RedbStore::open(dir.join("plaudit.redb")).expect("a store");
        let flaky = Arc::new(Flaky { inner, down: false.into() });
        let store: Arc<dyn Store> = Arc::clone(&flaky) as Arc<dyn Store>;
        let org = OrgId::parse("acme").expect("an id");
        let durable = Organisation::create(store, org, RULES, Format::Toml).expect("created");
        // The reopen a lost world asks for sees, as the upkeep does, whether the worker stopped.
        let handle: Arc<std::sync::OnceLock<Worker>> = Arc::default();
        let (told, asked) = std::sync::mpsc::channel();
        let seen = Arc::clone(&handle);
        let on_lost: OnLost = Box::new(move || {
            let _ = told.send(seen.get().map(Worker::stopped));
        });
        let worker = Worker::start(durable, 0, Some(on_lost)).expect("a worker");
        let _ = handle.set(worker.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        runtime.block_on(async {
            let (outcome, _) = worker.ingest(vec![moment("m1")], false).await.expect("answered").expect("stored");
            assert_eq!(outcome.accepted, 1);
            flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
            let refused = worker.ingest(vec![moment("m2")], false).await.expect("answered");
            let e = refused.expect_err("the store is out of reach");
            assert_eq!(ApiError::from(e.as_ref()).status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        });
        let stopped = asked.recv_timeout(std::time::Duration::from_secs(10)).expect("a reopen asked for");
        assert_eq!(stopped, Some(true), "the worker had stopped when it asked");
        let after = runtime.block_on(worker.run(|d| d.world().last_seq()));
        assert_eq!(after.map_err(|e| e.status), Err(axum::http::StatusCode::SERVICE_UNAVAILABLE));
        drop(worker);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_job_that_panics_is_refused_and_the_organisation_goes_on_from_its_log() {
        let dir = std::env::temp_dir().join(format!("plaudit-worker-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("a store"));
        let org = OrgId::parse("acme").expect("an id");
        let durable = Organisation::create(store, org, RULES, Format::Toml).expect("created");
        let worker = Worker::start(durable, 0, None).expect("a worker");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        runtime.block_on(async {
            let (outcome, _) = worker.ingest(vec![moment("m1")], false).await.expect("answered").expect("stored");
            assert_eq!(outcome.accepted, 1);
            // A job that stores a moment, then panics with the world half-way through a change.
            let failed = worker
                .run(|d| {
                    let _ = d.ingest(vec![moment("m2")]);
                    d.world_mut().insights(|_| ());
                    panic!("a bug");
                })
                .await;
            assert!(failed.is_err(), "the request that met the panic is refused");
            // The worker goes on, its world rebuilt from the log: m2 went in before the panic.
            let last = worker.run(|d| d.world().last_seq()).await.expect("still serving");
            assert_eq!(last, Seq(2));
            let balance =
                worker.run(|d| d.world_mut().profile("ann").map(|p| p.currencies["xp"])).await.expect("a read");
            assert_eq!(balance, Some(2));
            let (outcome, _) = worker.ingest(vec![moment("m3")], false).await.expect("answered").expect("stored");
            assert_eq!(outcome.accepted, 1);
        });
        drop(worker);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
