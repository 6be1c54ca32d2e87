//! Erasing a stakeholder (GDPR article 17): afterwards no byte of the data directory holds
//! their id, name or attributes, they are on no leaderboard, and the others keep what they
//! earned, with them named by a pseudonym. The design and its costs: `docs/erasure.md`.
//!
//! **Owns** the sequence, on the organisation's thread: the store first (every record naming
//! them rewritten to the pseudonym and a [`Change::Erased`] appended in one commit, their
//! snapshots dropped, its files scrubbed: [`Store::erase`]), then the world rebuilt by
//! replaying that log, which applies the change where it was recorded, so the live world is by
//! construction what a replay gives. The feed's kept effects are renamed, and one
//! `stakeholder_erased` effect naming them goes to the feed, its stream and webhooks, so that
//! downstream systems can erase them too (a snapshot keeps it under the pseudonym).
//! **Must not touch** the scoring: [`OrgWorld::erase`] is the world's part.

use std::time::{Duration, Instant};

use plaudit_sdk::{Effect, EffectKind};

use super::{OrgError, Organisation};

/// What an erasure did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erased {
    /// Who the erased stakeholder is now, in the moments others keep.
    pub pseudonym: String,
    /// Records of the log rewritten.
    pub records: u64,
    pub took: Duration,
}

/// A pseudonym: random, so that it says nothing of whom it stands for.
fn pseudonym() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(format!("erased-{:016x}", u64::from_le_bytes(bytes)))
}

/// The `stakeholder_erased` effect as the live feed delivers it: naming the subject.
pub fn erased_effect(subject: &str, pseudonym: &str) -> Effect {
    Effect {
        moment: "erasure".to_string(),
        stakeholder: subject.to_string(),
        source: "erasure".to_string(),
        kind: EffectKind::StakeholderErased { pseudonym: pseudonym.to_string() },
    }
}

impl Organisation {
    /// Erases stakeholder `subject` (see the module's documentation); `None` if the
    /// organisation knows no stakeholder of that id (or they were erased already).
    pub fn erase(&mut self, subject: &str) -> Result<Option<Erased>, OrgError> {
        self.writable()?;
        if !self.world.knows(subject) {
            return Ok(None);
        }
        let started = Instant::now();
        let pseudonym = pseudonym().map_err(|e| OrgError::Erasure(format!("no randomness for a pseudonym: {e}")))?;
        let erasure = match self.store.erase(&self.org, subject, &pseudonym) {
            Ok(erasure) => erasure,
            Err(e) => {
                // The store's commit is all or nothing, and what follows it the next open
                // completes: the world follows the log, whichever it holds.
                self.recover();
                return Err(OrgError::Erasure(format!(
                    "{e} (if its commit went in, the next start of the server completes it)"
                )));
            }
        };
        if let Some(feed) = &self.feed {
            feed.rename(subject, &pseudonym);
            feed.push([(self.world.last_seq().0, erased_effect(subject, &pseudonym))]);
        }
        // The world rebuilt from the log as it is now: the replay meets the change where it was
        // recorded and counts its effect, the one just fed.
        self.recover();
        self.writable()?;
        self.snapshot_due = true;
        tracing::info!(org = %self.org, records = erasure.records, change = erasure.change, "stakeholder erased");
        Ok(Some(Erased { pseudonym, records: erasure.records, took: started.elapsed() }))
    }
}
