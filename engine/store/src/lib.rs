//! The durable store: each organisation's ordered log of accepted records, its changes, and
//! world snapshots, behind the [`Store`] trait; every stored byte layout ([`format`]); the
//! embedded backend ([`RedbStore`]).
//!
//! [`Store`] is the storage trait; scoring code depends on it only. [`RedbStore`] is the
//! embedded default; [`PgStore`] keeps the same bytes in PostgreSQL (the shared system of
//! record once organisations are sharded over engine nodes); [`open_store`] opens the one a
//! setting names.
//!
//! # Model
//!
//! - Every record appended gets the next [`Seq`] in that organisation's log, from 1, without
//!   gaps. Moments, profiles and retractions all get one.
//! - The store appends what it is given: deciding what is accepted (a moment id seen before is
//!   a duplicate, also across restarts) is the log step's, against the world's history, which a
//!   restart rebuilds from the log itself. So the log needs no index of its own beside the
//!   records: an append writes only at the log's end.
//! - Organisations are independent: the same moment id in two organisations is two moments, and
//!   no read crosses organisations.
//! - Records are stored as MessagePack with named fields (`rmp_serde::to_vec_named`), so that
//!   data written by one version reads back in the next.
//!
//! # Durability
//!
//! [`Store::append`] returns only once the records are durable (fsync'd). One call is one
//! transaction, hence one group commit: either every record of the call is in the log or none
//! is. A crash at any instant therefore loses no acknowledged record; and since the world's
//! history of moment ids is rebuilt from exactly the records the log holds, a client retrying
//! after a crash meets its moment as a duplicate.
//!
//! # Changes
//!
//! Besides records, an organisation's log holds its **changes**: a rule-set version published,
//! a plugin installed or removed. Each is stored with the sequence of the last record before it
//! (`after`), so that a replay applies it at the same point in the stream of records, and with
//! its own number (from 1). Changes take no record sequence: the chance draws of later moments,
//! seeded from their sequence, stay what they were. Plugin modules are stored once each, by the
//! SHA-256 of their bytes, in the same transaction as the change that installs them.
//!
//! Snapshots carry a 64-bit checksum (their length and a CRC-32 of the sequence and the bytes);
//! a snapshot whose
//! bytes do not match is refused with [`StoreError::CorruptSnapshot`] rather than handed back.

mod admit;
#[cfg(test)]
pub(crate) mod conformance;
mod erasure;
pub mod format;
mod lease;
mod postgres;
mod redb;

use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::plugins::CallId;
use plaudit_sdk::Record;
use serde::{Deserialize, Serialize};

pub use self::erasure::{Erasure, pseudonymise};
pub use self::format::module_hash;
pub use self::lease::{Lease, Leases, NodeSeen};
pub use self::postgres::{PgStore, is_postgres_url, redacted};
pub use self::redb::RedbStore;

/// The store `setting` names: a PostgreSQL database by its URL (`postgres://...`, [`PgStore`]),
/// or, for `None` (or an empty setting), the embedded store in the file `embedded`
/// ([`RedbStore`]). The server's `store` setting and `PLAUDIT_STORE` name it; the CLI reads
/// `PLAUDIT_STORE`.
pub fn open_store(setting: Option<&str>, embedded: &std::path::Path) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match setting.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) if is_postgres_url(url) => Ok(std::sync::Arc::new(PgStore::open(url)?)),
        Some(other) => Err(StoreError::Open {
            path: redacted(other).into(),
            source: "a store is named by a postgres:// URL (or left unset for the embedded one)".into(),
        }),
        None => Ok(std::sync::Arc::new(RedbStore::open(embedded)?)),
    }
}

/// A boxed backend error, so that no backend's error type leaks into the trait.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created.
    #[error("cannot open the store at {path}: {source}")]
    Open { path: std::path::PathBuf, source: BackendError },
    /// The store is of a format this build does not read.
    #[error("cannot open the store at {path}: {message}")]
    Version { path: std::path::PathBuf, message: String },
    /// The backend failed (IO, a transaction that could not commit...). `op` names the store
    /// operation. Nothing of that operation was made durable.
    #[error("store {op} failed: {source}")]
    Backend { op: &'static str, source: BackendError },
    /// A record could not be encoded.
    #[error("cannot encode a record for organisation {org}: {source}")]
    Encode { org: OrgId, source: rmp_serde::encode::Error },
    /// A stored record could not be decoded.
    #[error("cannot decode record {seq} of organisation {org}: {source}")]
    Decode { org: OrgId, seq: Seq, source: rmp_serde::decode::Error },
    /// The store file is damaged in a way the backend could not report as an error (redb panics
    /// on some damaged pages); the operation did nothing. Restore the file from a backup.
    #[error("the store file is damaged ({op}): {message}")]
    Damaged { op: &'static str, message: String },
    /// A stored snapshot does not match its checksum.
    #[error("the snapshot of organisation {org} at sequence {seq} is corrupt (checksum mismatch)")]
    CorruptSnapshot { org: OrgId, seq: Seq },
    /// A change was offered at a position the log cannot take it at.
    #[error("cannot record a change of organisation {org} after sequence {after}: {reason}")]
    ChangeOutOfOrder { org: OrgId, after: Seq, reason: String },
    /// A stored change could not be decoded.
    #[error("cannot decode change {number} of organisation {org}: {source}")]
    DecodeChange { org: OrgId, number: u64, source: rmp_serde::decode::Error },
    /// A change installs a module the store does not hold.
    #[error("organisation {org}: change {number} installs module {module}, which the store does not hold")]
    MissingModule { org: OrgId, number: u64, module: String },
    /// [`Store::create_org`] for an organisation that exists.
    #[error("organisation {0} exists already")]
    OrgExists(OrgId),
    /// [`Store::set_org_key`] for an organisation that does not exist.
    #[error("organisation {0} does not exist")]
    NoSuchOrg(OrgId),
    /// A write to `org`'s log from a cluster node that does not hold its lease (it lost it, or
    /// never took it): nothing was written. The node no longer owns the organisation.
    #[error("organisation {org} is owned by another node now: this node's write was refused (fenced)")]
    Fenced { org: OrgId },
    /// The backend cannot be reached (down, restarting, the connection lost): nothing of the
    /// operation was made durable, unless it was a commit whose answer was lost, which a
    /// reread of the log tells. Worth retrying once it is back.
    #[error("store {op} failed: the store is unavailable: {source}")]
    Unavailable { op: &'static str, source: BackendError },
    /// A snapshot was offered for a sequence the log has not reached.
    #[error("cannot store a snapshot of organisation {org} at sequence {seq}: the log ends at {last}")]
    SnapshotBeyondLog { org: OrgId, seq: Seq, last: Seq },
}

/// How an organisation's scoring changed, between two records of its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A rule set, as published (its text and format), in force from the next record.
    Rules { text: String, format: plaudit_core::ruleset::Format },
    /// The module whose SHA-256 (hex) is `module` installed as plugin `name`, replacing one of
    /// that name.
    InstallPlugin { name: String, module: String },
    /// Plugin `name` removed, with its saved state.
    RemovePlugin { name: String },
    /// The rule set in force applied to the history up to here, in `mode` (see
    /// [`plaudit_core::retroactive`]). `timeouts`: the plugin calls of that application's replay
    /// that passed the wall-clock backstop (by plugin), which a replay of the change fails
    /// again instead of running.
    History {
        mode: plaudit_core::application::Mode,
        #[serde(default)]
        timeouts: Vec<(String, Vec<CallId>)>,
    },
    /// Moments (sequence numbers, all up to here) whose single-moment call to plugin `name`
    /// passed the wall-clock backstop when first scored, as earlier builds recorded it: a replay
    /// fails every call holding one of them without running it. Read, no longer written.
    PluginTimeouts { name: String, seqs: Vec<u64> },
    /// Calls to plugin `name` (each its first moment's sequence number and its number of
    /// moments, all up to here) that passed the wall-clock backstop when first scored, every
    /// one of them, also those whose halves were then retried: a replay, which makes exactly
    /// the same calls ([`Segment`]), fails these again instead of running them, so that it
    /// never depends on the clock and never costs more than the live scoring did.
    PluginCallsTimedOut { name: String, calls: Vec<CallId> },
    /// A stakeholder erased: every record before this change that named them now names
    /// `pseudonym` ([`Store::erase`]), and from here on they are on no leaderboard and given
    /// nothing ([`plaudit_core::OrgWorld::erase`]). Holds no personal data.
    Erased { pseudonym: String },
}

/// A change as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    /// Its number among the organisation's changes, from 1.
    pub number: u64,
    /// The sequence of the last record before it (`Seq(0)`: before every record).
    pub after: Seq,
    pub change: Change,
}

/// The records of one append, as the log holds them: one group commit, which was scored as one
/// batch when it arrived. A replay scores each segment as such a batch again (several at once,
/// split where they were), so that plugins are called with exactly the moments they were called
/// with live, whatever a plugin makes of how moments are grouped into calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// The sequence of its first record.
    pub first: Seq,
    /// When the server received its records (Unix milliseconds), as the append was given it;
    /// `None` for segments written before it was kept. Scoring dates a moment no later than a
    /// little after it ([`plaudit_core::bounds::FUTURE_SLACK`]), the same on every replay.
    pub received: Option<i64>,
    pub records: Vec<Record>,
}

impl Segment {
    /// The sequence of its last record.
    pub fn last(&self) -> Seq {
        Seq(self.first.0 + self.records.len() as u64 - 1)
    }
}

/// Durable per-organisation storage: the record log, its changes, and snapshots.
///
/// Implementations are shared between threads (one worker per organisation, reads from
/// anywhere); calls for one organisation are expected to come from its single writer, but an
/// implementation must stay correct if they do not.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Appends `records` to `org`'s log, in order, with the sequences after its last, as one
    /// [`Segment`] received at `received` (Unix milliseconds), and returns the last record's
    /// sequence (the log's end; unchanged for no records). Returns once the records are
    /// durable; the whole call is one atomic commit: on any error (a record that cannot be
    /// encoded, IO) nothing of the call is stored and no sequence is used.
    fn append(&self, org: &OrgId, records: &[Record], received: i64) -> Result<Seq, StoreError>;

    /// Whole segments of `org`'s log after record `after`, in order, from the one holding record
    /// `after + 1` until they hold at least `limit` records (or the log ends): at least one
    /// segment, however large, unless the log ends at `after`. A segment that record `after + 1`
    /// is not the first of comes cut to start there.
    fn read_segments(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<Segment>, StoreError>;

    /// Up to `limit` records of `org`'s log with a sequence greater than `after`, in order. Pass
    /// `Seq(0)` to read from the start; page by passing the last sequence returned.
    fn read(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<(Seq, Record)>, StoreError> {
        let mut out = Vec::new();
        for segment in self.read_segments(org, after, limit)? {
            let first = segment.first.0;
            out.extend((first..).map(Seq).zip(segment.records).take(limit - out.len()));
        }
        Ok(out)
    }

    /// The sequence of `org`'s last record, `Seq(0)` if its log is empty.
    fn last_seq(&self, org: &OrgId) -> Result<Seq, StoreError>;

    /// Records `change` in `org`'s log after record `after`, durably, and returns its number.
    /// `after` must not be before the last change's, nor beyond the log's end. `module` is the
    /// plugin module a [`Change::InstallPlugin`] names (stored once, by hash, in the same
    /// commit); a module whose hash is not the change's is refused.
    fn append_change(&self, org: &OrgId, after: Seq, change: &Change, module: Option<&[u8]>)
    -> Result<u64, StoreError>;

    /// Every change of `org`, in order.
    fn changes(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError>;

    /// The module stored under `hash` ([`module_hash`]).
    fn module(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores a snapshot of `org`'s world as of `seq` (it reflects records `1..=seq`) and drops
    /// older ones. A snapshot older than the one kept is ignored. Durable on return.
    fn put_snapshot(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError>;

    /// How many bytes the store holds for `org`: its log (segments and changes, and the plugin
    /// modules it installed) as encoded, and its newest snapshot; not the store's own overhead
    /// (pages, indexes), nor its keys and settings. Cheap: kept up to date by every append.
    fn stored_bytes(&self, org: &OrgId) -> Result<u64, StoreError>;

    /// The newest snapshot of `org` and its sequence, checked against its checksum.
    fn latest_snapshot(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError>;

    /// Creates organisation `org` in one durable commit: its first change (its first rule set)
    /// and, if given, the SHA-256 of its API key. Either both are stored or neither is, so a
    /// crash never leaves half an organisation. Fails with [`StoreError::OrgExists`] if `org`
    /// has a change already.
    fn create_org(&self, org: &OrgId, key_hash: Option<[u8; 32]>, first: &Change) -> Result<(), StoreError>;

    /// The SHA-256 of `org`'s API key, if it has one.
    fn org_key(&self, org: &OrgId) -> Result<Option<[u8; 32]>, StoreError>;

    /// Sets the SHA-256 of `org`'s API key (a new key, or one adopted from an earlier build's
    /// key file), durably. `org` must exist.
    fn set_org_key(&self, org: &OrgId, key_hash: [u8; 32]) -> Result<(), StoreError>;

    /// Every organisation of the store (those with a change), sorted.
    fn organisations(&self) -> Result<Vec<OrgId>, StoreError>;

    /// The records of `org` in `table`: by name, each with its bytes, whose layout is the
    /// server's (the store keeps bytes).
    fn org_records(&self, org: &OrgId, table: OrgTable) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Erases stakeholder `subject` of `org` from everything the store holds, durably and at
    /// once: every record of the log naming them is rewritten to name `pseudonym` (their
    /// profiles without name and attributes, [`pseudonymise`]) and a [`Change::Erased`] is
    /// appended, in one commit; the organisation's snapshots are dropped; and no byte of the
    /// store's files holds what was rewritten when this returns (the embedded store rewrites
    /// its files). A crash after the commit leaves it to the next open to complete; before
    /// it, nothing happened. The caller names the subject only if the log names them.
    fn erase(&self, org: &OrgId, subject: &str, pseudonym: &str) -> Result<Erasure, StoreError>;

    /// The leases of the cluster this store was opened as a node of ([`PgStore::open_node`]);
    /// `None` for a store of one server.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// Stores record `name` of `org` in `table` with `bytes`, or deletes it (`None`), durably;
    /// whether it was there before. `org` must exist.
    fn set_org_record(
        &self,
        org: &OrgId,
        table: OrgTable,
        name: &str,
        bytes: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
}

/// The tables of small records an organisation keeps beside its log, each by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgTable {
    /// Keys besides the organisation's own, each with what it may do (by key id).
    ScopedKeys,
    /// Settings of the organisation's API, such as the origins allowed to call it from a browser.
    Settings,
}
