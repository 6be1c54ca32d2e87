//! The log step: a batch is checked, appended durably to the organisation's log, and only then
//! scored, so that what was acknowledged is exactly what the world holds, and a restart
//! rebuilds the world by replaying the log.
//!
//! **Owns** [`Durable`]: one organisation's [`OrgWorld`] together with its [`Store`]. Ingestion
//! goes: [`OrgWorld::check`] every record (nothing refused reaches the log) -> one
//! [`Store::append`] for the batch (one group commit; moment ids deduplicated durably) -> the
//! appended records, and only those, scored by [`OrgWorld::ingest`]. Recovery ([`Durable::open`])
//! replays the log from the start through the same `ingest`.
//!
//! **Must not touch** the passes or the store's encoding; it sequences the two.
//!
//! Invariant: the world's sequence numbers are the log's. Every appended record is accepted by
//! the world (the check said so), so both count the same records in the same order; a
//! mismatch is reported as [`LogError::Diverged`], never papered over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plaudit_sdk::Record;

use crate::ids::{OrgId, Seq};
use crate::store::{Store, StoreError};
use crate::world::{Earlier, OrgWorld, Outcome, RecordError, Verdict};

/// Records read from the log per replayed batch.
const REPLAY_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The world did not accept what the log holds: a bug, reported rather than hidden.
    #[error("organisation {org}: the world and the log disagree at sequence {seq}: {detail}")]
    Diverged { org: OrgId, seq: Seq, detail: String },
}

/// How a replay went.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    pub records: u64,
    pub elapsed: Duration,
}

/// One organisation's world, backed by its durable log.
pub struct Durable {
    org: OrgId,
    world: OrgWorld,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").field("org", &self.org).field("world", &self.world).finish_non_exhaustive()
    }
}

impl Durable {
    /// `world` (fresh, with the organisation's rule set) brought up to date with `org`'s log.
    pub fn open(store: Arc<dyn Store>, org: OrgId, world: OrgWorld) -> Result<(Durable, Replayed), LogError> {
        let mut durable = Durable { org, world, store };
        let started = Instant::now();
        let mut after = durable.world.last_seq();
        let mut records = 0;
        loop {
            let page = durable.store.read(&durable.org, after, REPLAY_BATCH)?;
            let Some(&(last, _)) = page.last() else { break };
            let n = page.len();
            let outcome = durable.world.ingest(page.into_iter().map(|(_, r)| r));
            durable.world.clear_effects();
            durable.agree(&outcome, n, last)?;
            records += n as u64;
            after = last;
        }
        Ok((durable, Replayed { records, elapsed: started.elapsed() }))
    }

    pub fn world(&self) -> &OrgWorld {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut OrgWorld {
        &mut self.world
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// Checks, appends and scores `records`. On `Ok`, the accepted records are durable and
    /// scored (their effects wait in the journal); on `Err`, nothing of the batch was stored or
    /// scored, and the caller may retry it whole.
    pub fn ingest(&mut self, records: Vec<Record>) -> Result<Outcome, LogError> {
        let mut outcome = Outcome::default();
        let mut earlier = Earlier::default();
        let mut keep = Vec::with_capacity(records.len());
        for (index, record) in records.into_iter().enumerate() {
            match self.world.check(&record, &earlier) {
                Ok(Verdict::Accept) => {
                    match &record {
                        Record::Moment(m) => earlier.moments.insert(m.id.clone()),
                        Record::Retract(r) => earlier.retractions.insert(r.retract.clone()),
                        Record::Profile(_) => false,
                    };
                    keep.push(record);
                }
                Ok(Verdict::Duplicate) => outcome.duplicates += 1,
                Err((field, message)) => outcome.rejected.push(RecordError { index, field, message }),
            }
        }
        if keep.is_empty() {
            return Ok(outcome);
        }
        let appended = self.store.append(&self.org, &keep)?;
        outcome.duplicates += appended.duplicates.len();
        let Some(&(last, _)) = appended.accepted.last() else { return Ok(outcome) };
        let n = appended.accepted.len();
        let mut keep: Vec<Option<Record>> = keep.into_iter().map(Some).collect();
        let stored = appended.accepted.iter().filter_map(|&(_, i)| keep.get_mut(i).and_then(Option::take));
        let scored = self.world.ingest(stored);
        self.agree(&scored, n, last)?;
        outcome.accepted += scored.accepted;
        outcome.effects = scored.effects;
        Ok(outcome)
    }

    /// The world accepted all `n` records the log holds up to `last`.
    fn agree(&self, outcome: &Outcome, n: usize, last: Seq) -> Result<(), LogError> {
        let seq = self.world.last_seq();
        if outcome.accepted == n && outcome.rejected.is_empty() && seq == last {
            return Ok(());
        }
        Err(LogError::Diverged {
            org: self.org.clone(),
            seq: last,
            detail: format!(
                "{n} records logged, {} accepted, {} duplicates, rejected {:?}; the world is at {}",
                outcome.accepted, outcome.duplicates, outcome.rejected, seq.0
            ),
        })
    }
}
