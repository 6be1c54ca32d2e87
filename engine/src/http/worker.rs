//! One thread per organisation owns its [`Durable`] world; request handlers send it jobs and
//! await the answers. The async runtime never touches a `World` and never blocks on scoring or
//! on an fsync; an organisation's requests are served in arrival order.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::error::ApiError;
use crate::log::Durable;

type Job = Box<dyn FnOnce(&mut Durable) + Send>;

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
        std::thread::Builder::new().name(name).spawn(move || {
            let mut durable = durable;
            while let Ok(job) = queue.recv() {
                job(&mut durable);
            }
        })?;
        Ok(Worker { jobs })
    }

    /// Runs `f` on the organisation's thread and returns its answer.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Durable) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |durable| {
            let _ = tx.send(f(durable));
        });
        self.jobs.send(job).map_err(|_| ApiError::internal("the organisation's worker has stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the organisation's worker failed on this request"))
    }
}
