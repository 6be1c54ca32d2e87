//! One thread per organisation owns its [`Durable`] world; request handlers send it jobs and
//! await the answers. The async runtime never touches a `World` and never blocks on scoring or
//! on an fsync; an organisation's requests are served in arrival order.
//!
//! Group commit: when moment batches queue up behind one another (many clients, small
//! requests), the worker takes all that are waiting, up to [`GROUP_RECORDS`] records, and
//! stores them in one commit, so one fsync acknowledges them all.

use std::sync::mpsc;

use plaudit_sdk::{Effect, Record};
use tokio::sync::oneshot;

use super::error::ApiError;
use crate::log::Durable;
use crate::world::Outcome;

/// Most records stored in one group commit.
pub const GROUP_RECORDS: usize = 10_000;

/// What a moments request gets back.
pub type Ingested = Result<(Outcome, Vec<Effect>), String>;

enum Job {
    /// A batch of records; the effects are rendered when `effects` is set.
    Ingest {
        records: Vec<Record>,
        effects: bool,
        reply: oneshot::Sender<Ingested>,
    },
    Run(Box<dyn FnOnce(&mut Durable) + Send>),
}

/// A handle on an organisation's worker thread.
#[derive(Debug, Clone)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread that owns `durable` until every handle is dropped.
    pub fn start(durable: Durable) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let name = format!("org-{}", durable.org());
        std::thread::Builder::new().name(name).spawn(move || work(durable, &queue))?;
        Ok(Worker { jobs })
    }

    /// Runs `f` on the organisation's thread and returns its answer.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Durable) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |durable| {
            let _ = tx.send(f(durable));
        }));
        self.send(job, rx).await
    }

    /// Stores and scores `records` (in a group commit with whatever else is waiting).
    pub async fn ingest(&self, records: Vec<Record>, effects: bool) -> Result<Ingested, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Ingest { records, effects, reply }, rx).await
    }

    async fn send<R>(&self, job: Job, rx: oneshot::Receiver<R>) -> Result<R, ApiError> {
        self.jobs.send(job).map_err(|_| ApiError::internal("the organisation's worker has stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the organisation's worker failed on this request"))
    }
}

fn work(mut durable: Durable, queue: &mpsc::Receiver<Job>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Run(f) => f(&mut durable),
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
                commit(&mut durable, group);
            }
        }
    }
}

/// A waiting moments request: its records, whether it wants its effects, where to answer.
type Waiting = (Vec<Record>, bool, oneshot::Sender<Ingested>);

fn commit(durable: &mut Durable, group: Vec<Waiting>) {
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
            let message = format!("nothing was stored: {e}");
            for (_, reply) in rest {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}
