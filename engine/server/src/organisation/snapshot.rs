//! Snapshots: the organisation copied out between two batches ([`Organisation::capture`]), then
//! encoded and stored on any thread ([`Capture::store`]). A snapshot is a cache of the log,
//! never the record.

use std::time::{Duration, Instant};

use plaudit_core::ids::{OrgId, Seq};
use plaudit_store::Store;
use plaudit_store::format::Snapshot;

use super::*;

/// A snapshot taken from a world, not yet encoded or stored (see [`Organisation::capture`]).
pub struct Capture {
    org: OrgId,
    stored: Snapshot,
    /// How long taking it held the world.
    pub took: Duration,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("org", &self.org).field("seq", &self.stored.world.seq).finish_non_exhaustive()
    }
}

/// A stored snapshot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshotted {
    /// The last record it holds.
    pub seq: Seq,
    pub stakeholders: usize,
    pub moments: usize,
    pub bytes: usize,
    /// Taking it (the world held), then encoding and storing it (the world free).
    pub capture: Duration,
    pub write: Duration,
}

impl Capture {
    /// Encodes the snapshot and stores it, durably; the store keeps only the newest.
    pub fn store(self, store: &dyn Store) -> Result<Snapshotted, OrgError> {
        let started = Instant::now();
        let bytes = plaudit_store::format::encode_snapshot(&self.stored)
            .map_err(|e| OrgError::Snapshot { org: self.org.clone(), detail: format!("cannot encode: {e}") })?;
        let seq = Seq(self.stored.world.seq);
        store.put_snapshot(&self.org, seq, &bytes)?;
        Ok(Snapshotted {
            seq,
            stakeholders: self.stored.world.people.len(),
            moments: self.stored.world.moment_info.len(),
            bytes: bytes.len(),
            capture: self.took,
            write: started.elapsed(),
        })
    }
}

/// A feed item as a snapshot keeps it: a `stakeholder_erased` effect names the pseudonym, not
/// the erased id it was delivered with (nothing stored names an erased stakeholder).
fn at_rest(item: std::sync::Arc<plaudit_core::journal::FeedItem>) -> std::sync::Arc<plaudit_core::journal::FeedItem> {
    match &item.effect.kind {
        plaudit_sdk::EffectKind::StakeholderErased { pseudonym } if item.effect.stakeholder != *pseudonym => {
            let mut kept = plaudit_core::journal::FeedItem::clone(&item);
            kept.effect.stakeholder = pseudonym.clone();
            std::sync::Arc::new(kept)
        }
        _ => item,
    }
}

impl Organisation {
    /// Takes a snapshot of the organisation as it is now (between batches): the world copied
    /// out, with what the log step knows. It holds the world only for the copy; encoding and
    /// storing it ([`Capture::store`]) can happen on another thread while scoring goes on.
    pub fn capture(&mut self) -> Capture {
        let started = Instant::now();
        self.snapshotted = self.world.last_seq();
        self.snapshot_due = false;
        let world = self.world.snapshot();
        let stored = Snapshot {
            version: plaudit_store::format::SNAPSHOT_VERSION,
            org: self.org.to_string(),
            rules_version: self.rules.version,
            rules_text: self.rules.text.clone(),
            rules_format: self.rules.format,
            rules_after: self.rules.after.0,
            changes: self.changes,
            plugins: self.plugins.iter().map(|(n, i)| (n.clone(), i.module.clone(), i.after.0)).collect(),
            effects: self.effects,
            feed: self
                .feed
                .as_ref()
                .map(|f| f.after(None, usize::MAX).unwrap_or_default().into_iter().map(at_rest).collect())
                .unwrap_or_default(),
            world,
        };
        Capture { org: self.org.clone(), stored, took: started.elapsed() }
    }

    /// [`Organisation::capture`] and [`Capture::store`] in one go.
    pub fn snapshot(&mut self) -> Result<Snapshotted, OrgError> {
        self.capture().store(self.store.as_ref())
    }

    /// Records accepted since the latest snapshot taken or restored; `u64::MAX` once an
    /// application to history came after it (a snapshot then saves a replay's replay).
    pub fn since_snapshot(&self) -> u64 {
        if self.snapshot_due {
            return u64::MAX;
        }
        self.world.last_seq().0.saturating_sub(self.snapshotted.0)
    }
}
