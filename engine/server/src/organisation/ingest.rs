//! Ingestion and the group commit: a group of requests resolved by the world, handed to the
//! organisation's commit thread, scored and rendered while it commits, and answered once it is
//! in ([`Organisation::ingest_group`]); if the commit fails, the world is rebuilt from the log.
//!
//! **Owns** the steps of ingestion and their timing ([`IngestTimes`]), the commit thread, and
//! the live record of plugin calls the wall-clock backstop stopped.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use plaudit_sdk::Record;

use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::journal::FeedItem;
use plaudit_core::{Arrival, Outcome};
use plaudit_store::{Change, Store, StoreError};

use super::*;

/// Upper bounds of the commit-time buckets, in seconds.
pub const COMMIT_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/// The steps of ingesting a batch or a group, as [`IngestTimes::steps`] counts their time.
pub const INGEST_STEPS: [&str; 4] = ["resolve", "commit", "score", "render"];

/// How long ingestion takes, for the server's metrics: each commit (a durable `Store::append`
/// of a batch or a group) in a histogram, and the time the world spent in each of
/// [`INGEST_STEPS`] (resolving the records: checks, duplicates, ids; waiting for their commit,
/// which runs while they are scored and rendered, once that is done; scoring them; rendering
/// their effects for the answers and the feed). Shared by every organisation's [`Organisation`].
#[derive(Debug, Default)]
pub struct IngestTimes {
    /// Per bucket (not cumulative), then over the last bound.
    buckets: [std::sync::atomic::AtomicU64; COMMIT_BUCKETS.len() + 1],
    micros: std::sync::atomic::AtomicU64,
    /// Nanoseconds per step of [`INGEST_STEPS`].
    steps: [std::sync::atomic::AtomicU64; INGEST_STEPS.len()],
}

impl IngestTimes {
    /// Seconds spent in each of [`INGEST_STEPS`], in that order.
    pub fn steps(&self) -> [f64; INGEST_STEPS.len()] {
        self.steps.each_ref().map(|n| n.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9)
    }

    /// Adds the time of each step of one ingestion, in the order of [`INGEST_STEPS`].
    fn record_steps(&self, took: [Duration; INGEST_STEPS.len()]) {
        for (step, took) in self.steps.iter().zip(took) {
            step.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records one commit's time in the histogram.
    pub fn record(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let secs = took.as_secs_f64();
        let i = COMMIT_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(COMMIT_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Cumulative counts per bucket (the last is the total) and the sum in seconds.
    pub fn cumulative(&self) -> (Vec<u64>, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut total = 0;
        let counts = self.buckets.iter().map(|b| {
            total += b.load(Relaxed);
            total
        });
        (counts.collect(), self.micros.load(Relaxed) as f64 / 1e6)
    }
}

/// One request's effects in a group ([`Organisation::ingest_group`]), as the feed numbers them
/// and shares them.
pub type GroupEffects = Vec<Arc<FeedItem>>;

/// A group of requests resolved ([`Organisation::stage`]): what each request got so far.
#[derive(Debug)]
struct Staged {
    outcomes: Vec<Outcome>,
    /// The last sequence number of each request's accepted records, and the request.
    ends: Vec<(u64, usize)>,
    /// When the group was received (Unix milliseconds), stored with it.
    received: i64,
    /// The time of each of [`INGEST_STEPS`] so far.
    took: [Duration; INGEST_STEPS.len()],
}

/// A staged group scored ([`Organisation::score`]), its effects not yet rendered.
#[derive(Debug)]
struct Scored {
    outcomes: Vec<Outcome>,
    /// The last sequence number of each request's records, and the request.
    ends: Vec<(u64, usize)>,
    records: Vec<plaudit_core::journal::EffectRec>,
    took: [Duration; INGEST_STEPS.len()],
}

/// A scored group's effects rendered ([`Organisation::render`]), waiting for its commit.
#[derive(Debug)]
struct Rendered {
    outcomes: Vec<Outcome>,
    /// Per request, when asked for.
    effects: Vec<GroupEffects>,
    /// For the feed.
    fed: Vec<Arc<FeedItem>>,
    took: [Duration; INGEST_STEPS.len()],
}

/// A group's records stored.
#[derive(Debug)]
struct Committed {
    /// The last one's sequence.
    last: Seq,
    /// How long the world waited for the commit once it had scored and rendered the group.
    waited: Duration,
}

/// A commit [`Organisation::start_commit`] started.
enum Commit {
    /// Under way on the commit thread.
    Running,
    /// Done in line.
    Done(Result<Committed, OrgError>),
}

/// Commits staged records to an organisation's log.
#[derive(Debug, Clone)]
struct Committer {
    store: Arc<dyn Store>,
    org: OrgId,
    times: Option<Arc<IngestTimes>>,
    /// Where the bytes the store holds for the organisation go after a commit.
    stored: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// When that count was last read: at most every [`STORED_REFRESH`].
    counted: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// How often a commit reads back the bytes the store holds (the storage quota's count): a read
/// after every commit delayed each answer (-8 % for four clients waiting on their own commits);
/// a quota reached is seen this much later at most.
const STORED_REFRESH: Duration = Duration::from_millis(250);

impl Committer {
    /// `records` appended in one durable commit. On `Err` nothing was stored.
    fn commit(&self, records: &[Record], received: i64) -> Result<Committed, OrgError> {
        let started = Instant::now();
        let last = self.store.append(&self.org, records, received)?;
        if let Some(times) = &self.times {
            times.record(started.elapsed());
        }
        if let Some(stored) = &self.stored {
            let mut counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if counted.is_none_or(|at| at.elapsed() >= STORED_REFRESH) {
                *counted = Some(Instant::now());
                // A count kept by the append: one small read. Failing it only leaves the last count.
                if let Ok(bytes) = self.store.stored_bytes(&self.org) {
                    stored.store(bytes, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        Ok(Committed { last, waited: Duration::ZERO })
    }
}

/// An organisation's commit thread: it commits the groups [`Organisation::ingest_group`] hands it,
/// one at a time, while the world scores them. Dropping it stops the thread and waits for it,
/// so that the store is let go of with the [`Organisation`].
#[derive(Debug)]
pub(super) struct CommitThread {
    groups: Option<mpsc::Sender<(Arc<Vec<Record>>, i64)>>,
    committed: mpsc::Receiver<Result<Committed, OrgError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CommitThread {
    fn start(committer: Committer) -> std::io::Result<CommitThread> {
        let (groups, inbox) = mpsc::channel::<(Arc<Vec<Record>>, i64)>();
        let (outbox, committed) = mpsc::channel();
        let thread = std::thread::Builder::new().name(format!("commit-{}", committer.org)).spawn(move || {
            for (records, received) in inbox {
                let done = committer.commit(&records, received);
                // Let go of once stored (the world holds them until its next batch).
                drop(records);
                if outbox.send(done).is_err() {
                    return;
                }
            }
        })?;
        Ok(CommitThread { groups: Some(groups), committed, thread: Some(thread) })
    }

    /// Hands `records`, received at `received`, over; false if the thread has stopped.
    fn send(&self, records: &Arc<Vec<Record>>, received: i64) -> bool {
        self.groups.as_ref().is_some_and(|g| g.send((Arc::clone(records), received)).is_ok())
    }
}

impl Drop for CommitThread {
    fn drop(&mut self) {
        drop(self.groups.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Organisation {
    /// Checks, appends and scores `records`. On `Ok`, the accepted records are durable and
    /// scored (their effects are counted, not kept: [`Organisation::ingest_group`] renders them); on
    /// `Err`, nothing of the batch was stored or scored, and the caller may retry it whole.
    pub fn ingest(&mut self, records: Vec<Record>) -> Result<Outcome, OrgError> {
        let (mut outcomes, _) = self.ingest_group(vec![records], false)?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// [`Organisation::ingest`] for several requests at once, in order, with one commit for all of
    /// them (the group commit of a busy server). Each request gets its own outcome and, with
    /// `render`, its own effects (numbered and shared as in the feed); on `Err` nothing of any
    /// of them was stored or scored.
    ///
    /// The steps: the records resolved by the world ([`Organisation::stage`]: checked, duplicates
    /// dropped, ids and sequence numbers given); the accepted ones handed to the commit thread,
    /// which appends them in one durable commit while the world scores them
    /// ([`Organisation::score`]) and renders their effects ([`Organisation::render`]); then, once the
    /// commit is in, the effects fed and the outcomes returned ([`Organisation::confirm`]). So the
    /// world is ahead of the log only inside this call, and nothing of the group leaves it (an
    /// answer, the feed, a read between two calls) before its records are durable. If the
    /// commit fails, the world is rebuilt from the log ([`Organisation::rewind`]).
    pub fn ingest_group(
        &mut self,
        requests: Vec<Vec<Record>>,
        render: bool,
    ) -> Result<(Vec<Outcome>, Vec<GroupEffects>), OrgError> {
        let (staged, keep) = self.stage(requests)?;
        if keep.is_empty() {
            self.record_steps(staged.took);
            let n = staged.outcomes.len();
            return Ok((staged.outcomes, vec![Vec::new(); n]));
        }
        let commit = self.start_commit(&keep, staged.received);
        drop(keep);
        if let Commit::Done(Err(e)) = commit {
            self.rewind_after(&e);
            return Err(e);
        }
        let scored = self.score(staged);
        let rendered = self.render(scored, render);
        let committed = self.finish_commit(commit);
        self.confirm(rendered, committed)
    }

    /// The first step: the group's records resolved by the world, in order (see
    /// [`OrgWorld::resolve`]): what each request got, and the records to store.
    fn stage(&mut self, requests: Vec<Vec<Record>>) -> Result<(Staged, Arc<Vec<Record>>), OrgError> {
        self.writable()?;
        let started = Instant::now();
        // Request r's records are records[starts[r]..starts[r + 1]].
        let mut starts = Vec::with_capacity(requests.len() + 1);
        let mut records = Vec::with_capacity(requests.iter().map(Vec::len).sum());
        for request in requests {
            starts.push(records.len());
            records.extend(request);
        }
        starts.push(records.len());
        let records = Arc::new(records);
        let after = self.world.last_seq();
        // The one reading of the clock that scoring depends on: kept with the records in the
        // log, so that a replay dates their moments the same way.
        let received = (self.clock)();
        let arrival = Arrival { start: 0, received: Some(received) };
        let resolved = self.world.resolve_admitted(Arc::clone(&records), &[arrival], self.admission);
        let mut outcomes = vec![Outcome::default(); starts.len() - 1];
        let mut ends = Vec::new();
        let mut seq = after.0;
        for (r, outcome) in outcomes.iter_mut().enumerate() {
            let (from, to) = (starts[r], starts[r + 1]);
            outcome.accepted = resolved.accepted[from..to].iter().filter(|a| **a).count();
            outcome.duplicates = to - from - outcome.accepted;
            seq += outcome.accepted as u64;
            if outcome.accepted > 0 {
                ends.push((seq, r));
            }
        }
        for mut e in resolved.outcome.rejected {
            let r = starts.partition_point(|&s| s <= e.index) - 1;
            e.index -= starts[r];
            outcomes[r].duplicates -= 1;
            outcomes[r].rejected.push(e);
        }
        let keep = if resolved.outcome.accepted == records.len() {
            records
        } else {
            let accepted = records.iter().zip(&resolved.accepted).filter(|(_, a)| **a);
            Arc::new(accepted.map(|(record, _)| record.clone()).collect())
        };
        let mut took = [Duration::ZERO; INGEST_STEPS.len()];
        took[0] = started.elapsed();
        Ok((Staged { outcomes, ends, received, took }, keep))
    }

    /// Hands `records` to the commit thread (started on the first call), or, if it cannot
    /// run, commits them here and now.
    fn start_commit(&mut self, records: &Arc<Vec<Record>>, received: i64) -> Commit {
        let committer = Committer {
            store: Arc::clone(&self.store),
            org: self.org.clone(),
            times: self.ingest_times.clone(),
            stored: self.stored.clone(),
            counted: Arc::default(),
        };
        if self.commits.is_none() {
            match CommitThread::start(committer.clone()) {
                Ok(thread) => self.commits = Some(thread),
                Err(e) => {
                    tracing::warn!(org = %self.org, error = %e, "cannot start a commit thread: committing before scoring")
                }
            }
        }
        match &self.commits {
            Some(thread) if thread.send(records, received) => Commit::Running,
            _ => {
                self.commits = None;
                Commit::Done(committer.commit(records, received))
            }
        }
    }

    /// Waits for the commit `commit` started, if it is still under way.
    fn finish_commit(&mut self, commit: Commit) -> Result<Committed, OrgError> {
        match commit {
            Commit::Done(done) => done,
            Commit::Running => {
                let started = Instant::now();
                let done = self.commits.as_ref().and_then(|t| t.committed.recv().ok());
                let mut committed = done.unwrap_or_else(|| {
                    self.commits = None;
                    Err(OrgError::CommitLost(self.org.clone()))
                })?;
                committed.waited = started.elapsed();
                Ok(committed)
            }
        }
    }

    /// The second step, while the commit is under way: the staged records scored.
    fn score(&mut self, staged: Staged) -> Scored {
        let Staged { outcomes, ends, received: _, mut took } = staged;
        let started = Instant::now();
        self.effects += self.world.score_resolved() as u64;
        let records = self.world.take_effect_records();
        took[2] = started.elapsed();
        Scored { outcomes, ends, records, took }
    }

    /// The third step, while the commit may still be under way: the effects of a scored group
    /// counted per request, and rendered once each (numbered as the feed numbers them), for
    /// the requests (with `render`) and for the feed.
    fn render(&mut self, scored: Scored, render: bool) -> Rendered {
        let started = Instant::now();
        let Scored { mut outcomes, ends, records, mut took } = scored;
        let mut effects = vec![Vec::new(); outcomes.len()];
        let feed = self.feed.is_some();
        let mut fed = Vec::with_capacity(if feed { records.len() } else { 0 });
        let first = self.effects + 1 - records.len() as u64;
        for (id, rec) in (first..).zip(&records) {
            let r = ends.iter().find(|(end, _)| rec.seq <= *end).map_or(outcomes.len() - 1, |&(_, r)| r);
            outcomes[r].effects += 1;
            if !(render || feed) {
                continue;
            }
            let item = Arc::new(FeedItem { id, seq: rec.seq, effect: self.world.render(rec) });
            if render {
                effects[r].push(Arc::clone(&item));
            }
            if feed {
                fed.push(item);
            }
        }
        took[3] = started.elapsed();
        Rendered { outcomes, effects, fed, took }
    }

    /// The last step, once the commit is done: if it went in, the group's effects fed and its
    /// outcomes returned; if not, the world rebuilt from the log.
    fn confirm(
        &mut self,
        rendered: Rendered,
        committed: Result<Committed, OrgError>,
    ) -> Result<(Vec<Outcome>, Vec<GroupEffects>), OrgError> {
        let Rendered { outcomes, effects, fed, mut took } = rendered;
        let committed = match committed {
            Ok(committed) => committed,
            Err(e) => {
                self.rewind_after(&e);
                return Err(e);
            }
        };
        took[1] = committed.waited;
        let scored = self.world.last_seq();
        if committed.last != scored {
            let detail = format!("the world scored up to {}, the log stored up to {}", scored.0, committed.last.0);
            return Err(self.halt(OrgError::Diverged { org: self.org.clone(), seq: committed.last, detail }));
        }
        self.record_timeouts(committed.last)?;
        if let Some(feed) = &self.feed {
            feed.push_numbered(fed);
        }
        self.record_steps(took);
        Ok((outcomes, effects))
    }

    /// After a failed commit under a group already scored: the world goes back to what the log
    /// holds (its latest snapshot, and the records after it replayed), keeping the feed and
    /// the timers. If even that fails, the organisation is halted: its log is intact, and a
    /// restart replays it.
    /// Rebuilds the world from the log, keeping the feed and the commit thread: after a job
    /// panicked, whatever it left half-changed is gone.
    pub fn recover(&mut self) {
        self.rewind();
    }

    /// After a commit that failed with `e`: the world rebuilt from the log, unless the
    /// organisation is another node's now (the commit was fenced), in which case this world
    /// is lost.
    fn rewind_after(&mut self, e: &OrgError) {
        if matches!(e, OrgError::Store(StoreError::Fenced { .. })) {
            tracing::warn!(org = %self.org, "another node owns the organisation now: dropping it here");
            self.lost = true;
            return;
        }
        self.rewind();
    }

    fn rewind(&mut self) {
        match Organisation::open(Arc::clone(&self.store), self.org.clone()) {
            Ok((mut fresh, _)) => {
                if let Some(feed) = &self.feed {
                    // A commit reported failed that went in after all: its effects are counted.
                    let missed = fresh.effects.saturating_sub(feed.latest());
                    if missed > 0 {
                        feed.skip(missed);
                    }
                }
                (fresh.feed, fresh.ingest_times, fresh.commits, fresh.clock) =
                    (self.feed.take(), self.ingest_times.take(), self.commits.take(), self.clock);
                (fresh.admission, fresh.stored) = (self.admission, self.stored.take());
                *self = fresh;
            }
            Err(OrgError::Store(e @ (StoreError::Unavailable { .. } | StoreError::Fenced { .. }))) => {
                // Not a disagreement: the log is intact, and it is opened again once the
                // store answers (by this node if it still owns the organisation).
                tracing::warn!(org = %self.org, error = %e, "cannot bring the world back to the log now: dropping it, to open it again");
                self.lost = true;
            }
            Err(e) => {
                self.halt(e);
            }
        }
    }

    fn record_steps(&self, took: [Duration; INGEST_STEPS.len()]) {
        if let Some(times) = &self.ingest_times {
            times.record_steps(took);
        }
    }

    /// Records in the log the plugin calls of the batch ending at `last` that passed the
    /// wall-clock backstop (see [`Change::PluginCallsTimedOut`]). A crash before this lands
    /// loses only that: the replay then runs those calls again, without the backstop (bounded
    /// by their fuel); the group they belong to was never answered.
    fn record_timeouts(&mut self, last: Seq) -> Result<(), OrgError> {
        for (name, calls) in self.world.take_plugin_timeouts() {
            tracing::warn!(org = %self.org, plugin = %name, calls = calls.len(), "plugin calls passed the wall-clock backstop: recorded in the log");
            let change = Change::PluginCallsTimedOut { name, calls };
            self.changes = self.store.append_change(&self.org, last, &change, None)?;
        }
        Ok(())
    }
}
