//! What one organisation may take of what the server's organisations share, so that no
//! organisation's load, plugin or what-if can make another's calls fail.
//!
//! **Owns** the server's budgets (their limits are [`super::config::Limits`]'s):
//!
//! - requests in flight per organisation ([`InFlight`]): past its limit an organisation's next
//!   request is answered `503 busy` with `Retry-After`, while the others are served;
//! - background jobs ([`Jobs`]): what-ifs, applications to history and plugin compiles run on
//!   blocking threads, replaying whole logs or compiling modules. They are queued per
//!   organisation (one running at a time, a few waiting, `429 too_many_jobs` beyond), run a
//!   few at a time engine-wide, and hold an estimate of their memory against a bound: a job
//!   waits until its memory is free, and one larger than the whole bound is refused (`503
//!   job_too_large`, naming the setting);
//! - webhook deliveries ([`Jobs::delivery_slots`]): posts run on blocking threads too; a few dozen
//!   at once engine-wide, each organisation's one at a time.
//!
//! The sandbox's own budgets (instance slots, one compile at a time) are
//! [`plaudit_sandbox`]'s. **Must not touch** organisations' state: it only admits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use super::config::Limits;
use super::error::ApiError;

/// Bytes of memory a what-if's world holds per stakeholder and per record of its history, for
/// the estimate a job holds against the bound (measured: about 400 B a stakeholder and 100 B a
/// moment live; rounded up for the replay's buffers).
const BYTES_PER_STAKEHOLDER: usize = 600;
const BYTES_PER_RECORD: usize = 150;

/// Memory a module's compilation holds, per byte of wasm (Cranelift measured 30 to 140 for
/// ordinary and huge-function modules; some modules need several hundred).
const COMPILE_BYTES_PER_BYTE: usize = 600;

/// The memory estimate, in MiB, of a job over a history of `stakeholders` and `records` that
/// builds `worlds` worlds (a what-if builds two or three, an application to history one).
pub fn replay_mb(worlds: usize, stakeholders: usize, records: u64) -> usize {
    let bytes = stakeholders
        .saturating_mul(BYTES_PER_STAKEHOLDER)
        .saturating_add(usize::try_from(records).unwrap_or(usize::MAX).saturating_mul(BYTES_PER_RECORD));
    worlds.saturating_mul(bytes.div_ceil(1 << 20)).max(1)
}

/// The memory estimate, in MiB, of compiling a module of `len` bytes.
pub fn compile_mb(len: usize) -> usize {
    len.saturating_mul(COMPILE_BYTES_PER_BYTE).div_ceil(1 << 20).max(1)
}

/// One organisation's requests in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicUsize,
    /// Requests refused for being over the limit.
    pub refused: AtomicU64,
}

impl InFlight {
    /// Counts a request in, unless `limit` are in flight already (then counts the refusal).
    /// Each `true` is to be matched by one [`InFlight::leave`].
    pub fn enter(&self, limit: usize) -> bool {
        let before = self.now.fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            self.now.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Counts a request out.
    pub fn leave(&self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }
}

/// One organisation's place in the job queue.
#[derive(Debug)]
struct Queue {
    /// One job of the organisation runs at a time.
    turn: Arc<Semaphore>,
    /// Jobs waiting for the turn.
    waiting: AtomicUsize,
}

/// The server's background jobs and webhook deliveries (see the module's documentation).
#[derive(Debug)]
pub struct Jobs {
    limits: Limits,
    running: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    deliveries: Arc<Semaphore>,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    /// Jobs refused for a full queue, and for being larger than the memory bound.
    pub refused_queue_full: AtomicU64,
    pub refused_too_large: AtomicU64,
}

/// What [`Jobs::usage`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsUsage {
    pub running: usize,
    pub running_limit: usize,
    pub memory_mb: usize,
    pub memory_limit_mb: usize,
    pub deliveries: usize,
    pub deliveries_limit: usize,
    /// Jobs waiting, by organisation (those with any).
    pub waiting: Vec<(String, usize)>,
}

impl Jobs {
    pub fn new(limits: Limits) -> Jobs {
        Jobs {
            limits,
            running: Arc::new(Semaphore::new(limits.jobs)),
            memory: Arc::new(Semaphore::new(limits.job_memory_mb)),
            deliveries: Arc::new(Semaphore::new(limits.webhook_deliveries)),
            queues: Mutex::new(HashMap::new()),
            refused_queue_full: AtomicU64::new(0),
            refused_too_large: AtomicU64::new(0),
        }
    }

    fn queue(&self, org: &str) -> Arc<Queue> {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = queues
            .entry(org.to_string())
            .or_insert_with(|| Arc::new(Queue { turn: Arc::new(Semaphore::new(1)), waiting: AtomicUsize::new(0) }));
        Arc::clone(queue)
    }

    /// Runs `job` (`what` it is, for errors) on a blocking thread when organisation `org`'s turn
    /// comes, a place is free engine-wide and `memory_mb` of the bound is: the organisation's
    /// earlier jobs first, one at a time. Refused at once if the organisation has its limit of
    /// jobs waiting (`429`) or the job is larger than the whole bound (`503`).
    pub async fn run<T: Send + 'static>(
        &self,
        org: &str,
        what: &str,
        memory_mb: usize,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if memory_mb > self.limits.job_memory_mb {
            self.refused_too_large.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "job_too_large",
                format!(
                    "{what} would hold about {memory_mb} MiB, more than this server gives all its jobs together \
                     (limits.job_memory_mb = {}): ask its operator to raise it",
                    self.limits.job_memory_mb
                ),
            ));
        }
        let queue = self.queue(org);
        let waiting = queue.waiting.fetch_add(1, Ordering::AcqRel);
        let busy = queue.turn.available_permits() == 0;
        if busy && waiting >= self.limits.jobs_waiting_per_org {
            queue.waiting.fetch_sub(1, Ordering::AcqRel);
            self.refused_queue_full.fetch_add(1, Ordering::Relaxed);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_jobs",
                format!(
                    "{what}: this organisation has {} jobs waiting behind the one running (what-ifs, applications \
                     to history, plugin compiles); try again when they are done",
                    self.limits.jobs_waiting_per_org
                ),
            );
            e.retry_after = Some(5);
            return Err(e);
        }
        let closed = |_| ApiError::internal("the server is shutting down");
        let turn = Arc::clone(&queue.turn).acquire_owned().await;
        queue.waiting.fetch_sub(1, Ordering::AcqRel);
        let turn = turn.map_err(closed)?;
        let place = Arc::clone(&self.running).acquire_owned().await.map_err(closed)?;
        let mb = u32::try_from(memory_mb).unwrap_or(u32::MAX);
        let memory = Arc::clone(&self.memory).acquire_many_owned(mb).await.map_err(closed)?;
        let done = tokio::task::spawn_blocking(move || {
            let out = job();
            drop((memory, place, turn));
            out
        })
        .await;
        done.map_err(|e| ApiError::internal(format!("{what} failed: {e}")))
    }

    /// The places webhook batches are delivered from (see the module's documentation).
    pub fn delivery_slots(&self) -> Arc<Semaphore> {
        Arc::clone(&self.deliveries)
    }

    /// What the jobs hold now.
    pub fn usage(&self) -> JobsUsage {
        let queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut waiting: Vec<(String, usize)> = queues
            .iter()
            .map(|(org, q)| (org.clone(), q.waiting.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        waiting.sort();
        JobsUsage {
            running: self.limits.jobs - self.running.available_permits(),
            running_limit: self.limits.jobs,
            memory_mb: self.limits.job_memory_mb - self.memory.available_permits(),
            memory_limit_mb: self.limits.job_memory_mb,
            deliveries: self.limits.webhook_deliveries - self.deliveries.available_permits(),
            deliveries_limit: self.limits.webhook_deliveries,
            waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(waiting: usize, memory: usize) -> Jobs {
        Jobs::new(Limits { jobs: 2, jobs_waiting_per_org: waiting, job_memory_mb: memory, ..Limits::default() })
    }

    #[test]
    fn requests_in_flight_are_counted_up_to_the_limit_and_given_back() {
        let in_flight = InFlight::default();
        assert!(in_flight.enter(2) && in_flight.enter(2));
        assert!(!in_flight.enter(2), "the third waits for nothing: it is refused");
        in_flight.leave();
        assert!(in_flight.enter(2));
        assert_eq!((in_flight.now(), in_flight.refused.load(Ordering::Relaxed)), (2, 1));
    }

    #[tokio::test]
    async fn one_job_runs_at_a_time_per_organisation_and_a_full_queue_is_refused_with_429() {
        let jobs = Arc::new(jobs(1, 1024));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(tokio::sync::Notify::new());
        let signal = Arc::clone(&started);
        let first = tokio::spawn({
            let jobs = Arc::clone(&jobs);
            async move {
                jobs.run("acme", "a what-if", 10, move || {
                    signal.notify_one();
                    hold.recv().ok()
                })
                .await
            }
        });
        started.notified().await;
        let second = tokio::spawn({
            let jobs = Arc::clone(&jobs);
            async move { jobs.run("acme", "a what-if", 10, || 2).await }
        });
        // The second waits for acme's turn; a third finds the queue full.
        while jobs.usage().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        let third = jobs.run("acme", "a what-if", 10, || 3).await.expect_err("the queue is full");
        assert_eq!(
            (third.status, third.code, third.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_jobs", Some(5))
        );
        // Another organisation is not held by acme's queue.
        assert_eq!(jobs.run("beta", "a what-if", 10, || 4).await.expect("runs"), 4);
        release.send(()).expect("the first job waits");
        assert!(first.await.expect("joins").is_ok());
        assert_eq!(second.await.expect("joins").expect("runs after the first"), 2);
    }

    #[tokio::test]
    async fn a_job_larger_than_the_whole_bound_is_refused_and_others_wait_for_memory() {
        let jobs = jobs(4, 100);
        let big = jobs.run("acme", "a what-if", 101, || ()).await.expect_err("too large");
        assert_eq!((big.status, big.code), (StatusCode::SERVICE_UNAVAILABLE, "job_too_large"));
        assert!(big.message.contains("job_memory_mb"), "{}", big.message);
        assert_eq!(jobs.run("acme", "a what-if", 100, || 1).await.expect("fits exactly"), 1);
        assert_eq!(jobs.usage().memory_mb, 0, "given back");
        assert_eq!(replay_mb(2, 1_000_000, 10_000_000), 2 * 2003);
        assert_eq!(compile_mb(4 << 20), 2400);
    }
}
