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

use plaudit_sdk::{Effect, Record};

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
    /// scored (their effects are counted, not kept: [`Durable::ingest_group`] renders them); on
    /// `Err`, nothing of the batch was stored or scored, and the caller may retry it whole.
    pub fn ingest(&mut self, records: Vec<Record>) -> Result<Outcome, LogError> {
        let (mut outcomes, _) = self.ingest_group(vec![records], false)?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// [`Durable::ingest`] for several requests at once, in order, with one commit for all of
    /// them (the group commit of a busy server). Each request gets its own outcome and, with
    /// `render`, its own effects; on `Err` nothing of any of them was stored.
    pub fn ingest_group(
        &mut self,
        requests: Vec<Vec<Record>>,
        render: bool,
    ) -> Result<(Vec<Outcome>, Vec<Vec<Effect>>), LogError> {
        let mut outcomes = vec![Outcome::default(); requests.len()];
        let mut earlier = Earlier::default();
        // The records to store, and the request each came from.
        let mut keep = Vec::new();
        let mut owner = Vec::new();
        for (r, records) in requests.into_iter().enumerate() {
            for (index, record) in records.into_iter().enumerate() {
                match self.world.check(&record, &earlier) {
                    Ok(Verdict::Accept) => {
                        match &record {
                            Record::Moment(m) => earlier.moments.insert(m.id.clone()),
                            Record::Retract(x) => earlier.retractions.insert(x.retract.clone()),
                            Record::Profile(_) => false,
                        };
                        keep.push(record);
                        owner.push(r);
                    }
                    Ok(Verdict::Duplicate) => outcomes[r].duplicates += 1,
                    Err((field, message)) => outcomes[r].rejected.push(RecordError { index, field, message }),
                }
            }
        }
        let mut effects = vec![Vec::new(); outcomes.len()];
        if keep.is_empty() {
            return Ok((outcomes, effects));
        }
        let appended = self.store.append(&self.org, &keep)?;
        for &i in &appended.duplicates {
            outcomes[owner[i]].duplicates += 1;
        }
        let Some(&(last, _)) = appended.accepted.last() else { return Ok((outcomes, effects)) };
        // The last sequence number of each request's records.
        let mut ends: Vec<(u64, usize)> = Vec::new();
        for &(seq, i) in &appended.accepted {
            outcomes[owner[i]].accepted += 1;
            match ends.last_mut() {
                Some(end) if end.1 == owner[i] => end.0 = seq.0,
                _ => ends.push((seq.0, owner[i])),
            }
        }
        let n = appended.accepted.len();
        let mut keep: Vec<Option<Record>> = keep.into_iter().map(Some).collect();
        let stored = appended.accepted.iter().filter_map(|&(_, i)| keep.get_mut(i).and_then(Option::take));
        let scored = self.world.ingest(stored);
        self.agree(&scored, n, last)?;
        let records = self.world.take_effect_records();
        for rec in &records {
            let r = ends.iter().find(|(end, _)| rec.seq <= *end).map_or(outcomes.len() - 1, |&(_, r)| r);
            outcomes[r].effects += 1;
            if render {
                effects[r].push(self.world.render(rec));
            }
        }
        Ok((outcomes, effects))
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
