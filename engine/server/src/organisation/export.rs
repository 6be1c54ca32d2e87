//! Export: everything Plaudit holds about one stakeholder, as one document (what GDPR's
//! articles 15 and 20 ask a controller to give): their profile and current state, every record
//! of the log that names them (the moments they took part in, as actor or counterpart, their
//! profile records, retractions of those moments), and every gain of their ledger with what gave
//! it.
//!
//! **Owns** the export's assembly and layout. **Must not touch** anything: an export changes
//! nothing, and reads the log through the store only.
//!
//! The world's part (profile, ledger) is read on the organisation's worker, the log's part away
//! from it, up to the sequence number the world's part is as of: the two agree, and scoring goes
//! on meanwhile.

use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::insights::people::HistoryRow;
use plaudit_core::reads::Profile;
use plaudit_sdk::Record;
use plaudit_store::{Store, StoreError};
use serde::Serialize;

use super::{OrgError, Organisation};

/// Records read from the log at a time.
const PAGE: usize = 4096;
/// Ledger entries read at a time.
const HISTORY_PAGE: usize = 1000;

/// Everything held about one stakeholder.
#[derive(Debug, Serialize)]
pub struct Export {
    pub organisation: String,
    pub stakeholder: String,
    /// The log's sequence number this export is as of.
    pub as_of: u64,
    /// Their current state: balances, level, badges, streaks, challenges, ranks.
    pub profile: Profile,
    /// Every record of the log naming them, in order.
    pub records: Vec<LoggedRecord>,
    /// Every gain of their ledger, newest first, with what gave it.
    pub effects: Vec<HistoryRow>,
}

/// A record of the log, with its place and why it is in an export.
#[derive(Debug, Serialize)]
pub struct LoggedRecord {
    pub seq: u64,
    /// `actor` or `counterpart` for a moment, `profile`, `retraction`.
    pub role: &'static str,
    /// For a moment: whether it was retracted later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracted: Option<bool>,
    pub record: Record,
}

/// The world's part of an export.
#[derive(Debug)]
pub struct Held {
    pub profile: Profile,
    pub effects: Vec<HistoryRow>,
    pub as_of: Seq,
}

impl Organisation {
    /// What the world holds about stakeholder `id` (`None` if it knows no such stakeholder), and
    /// the log position it is as of.
    pub fn export_state(&mut self, id: &str) -> Result<Option<Held>, OrgError> {
        let as_of = self.world().last_seq();
        let Some(profile) = self.world_mut().profile(id) else { return Ok(None) };
        let mut effects = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.world_mut().insights(|r| r.history_of(id, after.as_deref(), Some(HISTORY_PAGE)));
            let Ok(page) = page else { break };
            effects.extend(page.effects);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(Some(Held { profile, effects, as_of }))
    }
}

/// The records of `org`'s log up to `until` that name stakeholder `id`, in order: moments they
/// took part in, their profile records, and retractions of those moments (each moment marked
/// retracted or not).
pub fn records_of(store: &dyn Store, org: &OrgId, id: &str, until: Seq) -> Result<Vec<LoggedRecord>, StoreError> {
    let mut out: Vec<LoggedRecord> = Vec::new();
    // Their moments: id -> index in `out`.
    let mut theirs: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut after = Seq(0);
    while after < until {
        let page = store.read(org, after, PAGE)?;
        let Some(last) = page.last().map(|(s, _)| *s) else { break };
        for (seq, record) in page {
            if seq > until {
                break;
            }
            let role = match &record {
                Record::Moment(m) if m.stakeholder == id => "actor",
                Record::Moment(m) if m.counterpart.as_deref() == Some(id) => "counterpart",
                Record::Profile(p) if p.id == id => "profile",
                Record::Retract(r) => {
                    if let Some(&i) = theirs.get(&r.retract) {
                        if let Some(moment) = out.get_mut(i) {
                            moment.retracted = Some(true);
                        }
                        out.push(LoggedRecord { seq: seq.0, role: "retraction", retracted: None, record });
                    }
                    continue;
                }
                _ => continue,
            };
            if let Record::Moment(m) = &record {
                theirs.entry(m.id.clone()).or_insert(out.len());
            }
            let retracted = matches!(record, Record::Moment(_)).then_some(false);
            out.push(LoggedRecord { seq: seq.0, role, retracted, record });
        }
        after = last;
    }
    Ok(out)
}

/// The whole export: `held` (from the worker) with the log's records up to where it is as of.
pub fn assemble(store: &dyn Store, org: &OrgId, id: &str, held: Held) -> Result<Export, StoreError> {
    let records = records_of(store, org, id, held.as_of)?;
    Ok(Export {
        organisation: org.to_string(),
        stakeholder: id.to_string(),
        as_of: held.as_of.0,
        profile: held.profile,
        records,
        effects: held.effects,
    })
}
