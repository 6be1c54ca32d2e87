//! [`RedbStore`]: the embedded default [`Store`], on [redb](https://www.redb.org).
//!
//! Why redb: it is pure Rust (no C toolchain, builds wherever the engine builds) and crash-safe
//! by construction: copy-on-write B-trees, so a commit never overwrites live pages, and
//! checksummed commit slots, so after a crash the database opens at the last commit that fully
//! reached the disk. A write transaction committed with its default durability
//! (`Durability::Immediate`) is fsync'd before `commit` returns, which is the guarantee
//! [`Store::append`] needs. Writers are serialized (one write transaction at a time); readers
//! see a consistent snapshot and never block writers.
//!
//! Layout, tables keyed by organisation first so that organisations never mix:
//!
//! | table        | key                 | value                                   |
//! |--------------|---------------------|-----------------------------------------|
//! | `segments`   | (org, first seq)    | the records of one append, in order: each a u32 (LE) length, then its MessagePack with names |
//! | `segment_received` | (org, first seq) | when the server received that append's records (Unix ms) |
//! | `last_seq`   | org                 | the org's last seq                      |
//! | `changes`    | (org, number)       | MessagePack of (after, change)          |
//! | `modules`    | SHA-256 (hex)       | the module's bytes                      |
//! | `org_keys`   | org                 | SHA-256 of its API key (32 bytes)       |
//! | `org_log_bytes` | org              | bytes of its segments, changes and the modules it installed |
//!
//! and, in a file of their own beside it ([`snapshots_path`]), so that storing one never holds
//! the log's one write transaction:
//!
//! | table            | key                       | value                                   |
//! |------------------|---------------------------|-----------------------------------------|
//! | `snapshot_parts` | (org, generation, part)   | up to [`PART_BYTES`] of a snapshot's bytes |
//! | `snapshot_index` | org                       | (generation, seq, parts, checksum) of the newest |
//!
//! An append is one insert, at the end of its organisation's `segments` (and its `last_seq`): a
//! group commit touches a few pages however large the log and however many records it holds,
//! and a read decodes whole segments in order.
//!
//! A snapshot is written in parts of [`PART_BYTES`], each in a durable commit of its own, then
//! made the newest by a small commit of its index entry, which also drops the parts of every
//! other generation: only the newest snapshot per organisation is kept. So the disk never has
//! tens of megabytes to flush at once, and a log commit's fsync queues behind one part at most.
//! A crash before the index commit leaves the previous snapshot in place (its parts are dropped
//! only with the index entry that replaces it); the parts it left are dropped by the next write.
//! The checksum ([`snapshot_checksum`]) covers the whole snapshot, checked on read.
//!
//! The file records its format version (`meta`, see [`crate::format`]); a file of an unknown
//! version, or of a pre-release layout, is refused at open, saying so.

use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard};

use ::redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use plaudit_sdk::Record;

use plaudit_core::ids::{OrgId, Seq};

use crate::admit::{ModuleNeed, admit_change, not_stored};
use crate::format::{
    FORMAT_VERSION, check_version, decode_change, decode_segment, encode_change, encode_segment, snapshot_checksum,
};
use crate::{Change, Erasure, LoggedChange, OrgTable, Segment, Store, StoreError};

/// (org, first seq) -> the records of one append (see the module's layout).
const SEGMENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("segments");
/// (org, first seq) -> when the segment's records were received (Unix milliseconds). Segments
/// of earlier builds have none.
const SEGMENT_RECEIVED: TableDefinition<(&str, u64), i64> = TableDefinition::new("segment_received");
/// (org, generation, part) -> the part's bytes (see the module's layout).
const SNAPSHOT_PARTS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("snapshot_parts");
/// org -> (generation, seq, parts, checksum) of its newest snapshot.
const SNAPSHOT_INDEX: TableDefinition<&str, (u64, u64, u32, u64)> = TableDefinition::new("snapshot_index");
const LAST_SEQ: TableDefinition<&str, u64> = TableDefinition::new("last_seq");
/// (org, change number) -> MessagePack of (after, change).
const CHANGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("changes");
/// org -> the bytes its log holds: its segments, its changes and the modules it installed (a
/// module counts for each organisation that installs it, although it is stored once). Kept in
/// the same commit as what it counts; computed once at open for a store written before it was.
const LOG_BYTES: TableDefinition<&str, u64> = TableDefinition::new("org_log_bytes");
/// Module SHA-256 (hex) -> module bytes.
const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");
/// org -> SHA-256 of its API key.
const ORG_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("org_keys");
/// (organisation, key id) -> the scoped key's record (the server's layout).
const SCOPED_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("scoped_keys");
/// (organisation, setting) -> the setting's value (the server's layout).
const SETTINGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("org_settings");
/// The table that keeps `table`'s records.
fn org_table(table: OrgTable) -> TableDefinition<'static, (&'static str, &'static str), &'static [u8]> {
    match table {
        OrgTable::ScopedKeys => SCOPED_KEYS,
        OrgTable::Settings => SETTINGS,
    }
}
/// "format" -> the store's format version ([`FORMAT_VERSION`]).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// org -> the change number of an erasure committed but not yet completed (its snapshots
/// dropped, the files scrubbed): what the next open completes after a crash.
const ERASING: TableDefinition<&str, u64> = TableDefinition::new("erasing");
/// Tables of pre-release layouts: a file with records in one is refused; the first released
/// build still created `log` empty, which opening drops.
const PRE_RELEASE_LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");

/// The size of a snapshot's parts, each written and fsync'd in a commit of its own: small
/// enough that a log commit waiting on the disk behind one takes a few milliseconds more at
/// most, large enough that the commits' own cost stays small beside the bytes.
pub const PART_BYTES: usize = 1 << 20;

/// The embedded store: one redb file holding every organisation served by this node.
#[derive(Debug)]
pub struct RedbStore {
    /// Where the log's file is (the snapshots' is beside it).
    path: std::path::PathBuf,
    /// Behind a lock that every transaction holds for reading: an erasure's scrub
    /// ([`RedbStore::scrub`]) takes it for writing to swap in a rewritten file.
    db: RwLock<Database>,
    /// The snapshots, in a file of their own beside the log's ([`snapshots_path`]): storing
    /// one (hundreds of MB for a large organisation) never holds the log's one write
    /// transaction, so commits go on meanwhile. Losing this file loses only a cache.
    snapshots: RwLock<Database>,
    /// Held while a snapshot is written, part by part: one writer at a time, so that the
    /// generation a write picks stays its own.
    snapshot_writer: std::sync::Mutex<()>,
}

/// Where the snapshots of the store at `path` are: `plaudit.redb` -> `plaudit.snapshots.redb`.
pub fn snapshots_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("snapshots.redb")
}

/// Maps a redb error to [`StoreError::Backend`], naming the store operation.
trait Ctx<T> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Ctx<T> for Result<T, E> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend { op, source: Box::new(e) })
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating the file (not its directory) if it does not exist.
    /// A database left by a crash is recovered to its last durable commit. Fails if another
    /// process (or another `RedbStore` in this one) has the file open.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref();
        contained("open", || Self::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<RedbStore, StoreError> {
        let open_err = |e: ::redb::Error| StoreError::Open { path: path.to_path_buf(), source: Box::new(e) };
        let refused = |message: String| StoreError::Version { path: path.to_path_buf(), message };
        let db = Database::create(path).map_err(|e| open_err(e.into()))?;
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        {
            let tables: Vec<String> =
                txn.list_tables().map_err(|e| open_err(e.into()))?.map(|t| t.name().to_string()).collect();
            let has = |name: &str| tables.iter().any(|t| t == name);
            let pre_release = |name: &str| {
                refused(format!("it holds a `{name}` table, of a pre-release store layout this build does not read"))
            };
            if has("log") {
                if !txn
                    .open_table(PRE_RELEASE_LOG)
                    .map_err(|e| open_err(e.into()))?
                    .is_empty()
                    .map_err(|e| open_err(e.into()))?
                {
                    return Err(pre_release("log"));
                }
                txn.delete_table(PRE_RELEASE_LOG).map_err(|e| open_err(e.into()))?;
            }
            if has("moment_ids") {
                return Err(pre_release("moment_ids"));
            }
            if has("snapshots") {
                return Err(pre_release("snapshots"));
            }
            // Create the tables up front, so that readers never meet a missing table.
            txn.open_table(SEGMENTS).map_err(|e| open_err(e.into()))?;
            txn.open_table(SEGMENT_RECEIVED).map_err(|e| open_err(e.into()))?;
            txn.open_table(LAST_SEQ).map_err(|e| open_err(e.into()))?;
            txn.open_table(CHANGES).map_err(|e| open_err(e.into()))?;
            txn.open_table(MODULES).map_err(|e| open_err(e.into()))?;
            txn.open_table(ORG_KEYS).map_err(|e| open_err(e.into()))?;
            txn.open_table(SCOPED_KEYS).map_err(|e| open_err(e.into()))?;
            txn.open_table(SETTINGS).map_err(|e| open_err(e.into()))?;
            txn.open_table(ERASING).map_err(|e| open_err(e.into()))?;
            count_log_bytes(&txn).map_err(open_err)?;
            let mut meta = txn.open_table(META).map_err(|e| open_err(e.into()))?;
            // A new store, or one written before versions were kept (the same layout): this one.
            let found = meta.get("format").map_err(|e| open_err(e.into()))?.map(|g| g.value());
            match found {
                Some(version) => check_version(version).map_err(refused)?,
                None => {
                    meta.insert("format", FORMAT_VERSION).map_err(|e| open_err(e.into()))?;
                }
            }
        }
        txn.commit().map_err(|e| open_err(e.into()))?;
        let snapshots_at = snapshots_path(path);
        let snap_err = |e: ::redb::Error| StoreError::Open { path: snapshots_at.clone(), source: Box::new(e) };
        let snapshots = Database::create(&snapshots_at).map_err(|e| snap_err(e.into()))?;
        let created = snapshots.begin_write().map_err(|e| snap_err(e.into()))?;
        created.open_table(SNAPSHOT_INDEX).map_err(|e| snap_err(e.into()))?;
        created.open_table(SNAPSHOT_PARTS).map_err(|e| snap_err(e.into()))?;
        created.commit().map_err(|e| snap_err(e.into()))?;
        let store = RedbStore {
            path: path.to_path_buf(),
            db: RwLock::new(db),
            snapshots: RwLock::new(snapshots),
            snapshot_writer: std::sync::Mutex::new(()),
        };
        // An erasure acknowledged (or committed) before a crash is completed before anything
        // is read: its snapshots dropped, both files scrubbed.
        store.finish_erasures().map_err(|e| StoreError::Open { path: path.to_path_buf(), source: Box::new(e) })?;
        Ok(store)
    }

    /// The log's database, for one transaction.
    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The snapshots' database, for one transaction.
    fn snapshots(&self) -> RwLockReadGuard<'_, Database> {
        self.snapshots.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RedbStore {
    fn append_unguarded(&self, org: &OrgId, records: &[Record], received: i64) -> Result<Seq, StoreError> {
        const OP: &str = "append";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        let seq = {
            let mut segments = txn.open_table(SEGMENTS).ctx(OP)?;
            let mut last = txn.open_table(LAST_SEQ).ctx(OP)?;
            let start = last.get(o).ctx(OP)?.map_or(0, |g| g.value());
            let segment = encode_segment(org, records)?;
            let seq = start + records.len() as u64;
            if seq != start {
                segments.insert((o, start + 1), segment.as_slice()).ctx(OP)?;
                add_log_bytes(&txn, o, segment.len()).ctx(OP)?;
                txn.open_table(SEGMENT_RECEIVED).ctx(OP)?.insert((o, start + 1), received).ctx(OP)?;
                last.insert(o, seq).ctx(OP)?;
            }
            seq
        };
        if records.is_empty() {
            txn.abort().ctx(OP)?;
        } else {
            // Durability::Immediate (the default): fsync'd when this returns.
            txn.commit().ctx(OP)?;
        }
        Ok(Seq(seq))
    }

    fn read_segments_unguarded(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<Segment>, StoreError> {
        const OP: &str = "read";
        let o = org.as_str();
        let mut out: Vec<Segment> = Vec::new();
        if after.0 == u64::MAX {
            return Ok(out);
        }
        let limit = limit.max(1);
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let segments = txn.open_table(SEGMENTS).ctx(OP)?;
        let received = txn.open_table(SEGMENT_RECEIVED).ctx(OP)?;
        // The segment holding record `after + 1`, if it is not the first of one, then those after.
        let first = match segments.range((o, 0)..=(o, after.0 + 1)).ctx(OP)?.next_back() {
            Some(entry) => entry.ctx(OP)?.0.value().1,
            None => 0,
        };
        let mut held = 0;
        for entry in segments.range((o, first)..=(o, u64::MAX)).ctx(OP)? {
            let (key, value) = entry.ctx(OP)?;
            let start = key.value().1;
            let records = decode_segment(org, start, after.0, value.value())?;
            held += records.len();
            if !records.is_empty() {
                let received = received.get((o, start)).ctx(OP)?.map(|g| g.value());
                out.push(Segment { first: Seq(start.max(after.0 + 1)), received, records });
            }
            if held >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn last_seq_unguarded(&self, org: &OrgId) -> Result<Seq, StoreError> {
        const OP: &str = "last_seq";
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let last = txn.open_table(LAST_SEQ).ctx(OP)?;
        Ok(Seq(last.get(org.as_str()).ctx(OP)?.map_or(0, |g| g.value())))
    }

    fn append_change_unguarded(
        &self,
        org: &OrgId,
        after: Seq,
        change: &Change,
        module: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "append_change";
        let o = org.as_str();
        let refuse = |reason: String| StoreError::ChangeOutOfOrder { org: org.clone(), after, reason };
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        let number = {
            let last = txn.open_table(LAST_SEQ).ctx(OP)?;
            let end = last.get(o).ctx(OP)?.map_or(0, |g| g.value());
            let mut changes = txn.open_table(CHANGES).ctx(OP)?;
            let previous = match changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next_back() {
                Some(entry) => {
                    let (key, value) = entry.ctx(OP)?;
                    let number = key.value().1;
                    let (prev_after, _) = decode_change(org, number, value.value())?;
                    Some((number, prev_after.0))
                }
                None => None,
            };
            match admit_change(end, previous.map(|p| p.1), after, change, module).map_err(refuse)? {
                ModuleNeed::Store { hash, bytes } => {
                    let mut modules = txn.open_table(MODULES).ctx(OP)?;
                    if modules.get(hash).ctx(OP)?.is_none() {
                        modules.insert(hash, bytes).ctx(OP)?;
                    }
                    add_log_bytes(&txn, o, bytes.len()).ctx(OP)?;
                }
                ModuleNeed::Stored(hash) => {
                    if txn.open_table(MODULES).ctx(OP)?.get(hash).ctx(OP)?.is_none() {
                        return Err(refuse(not_stored(hash)));
                    }
                }
                ModuleNeed::None => {}
            }
            let number = previous.map_or(1, |(n, _)| n + 1);
            let bytes = encode_change(org, after, change)?;
            changes.insert((o, number), bytes.as_slice()).ctx(OP)?;
            add_log_bytes(&txn, o, bytes.len()).ctx(OP)?;
            number
        };
        txn.commit().ctx(OP)?;
        Ok(number)
    }

    fn changes_unguarded(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError> {
        const OP: &str = "changes";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let changes = txn.open_table(CHANGES).ctx(OP)?;
        let mut out = Vec::new();
        for entry in changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)? {
            let (key, value) = entry.ctx(OP)?;
            let number = key.value().1;
            let (after, change) = decode_change(org, number, value.value())?;
            out.push(LoggedChange { number, after, change });
        }
        Ok(out)
    }

    fn create_org_unguarded(&self, org: &OrgId, key: Option<[u8; 32]>, first: &Change) -> Result<(), StoreError> {
        const OP: &str = "create_org";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        {
            let mut changes = txn.open_table(CHANGES).ctx(OP)?;
            let exists = changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next().is_some()
                || txn.open_table(LAST_SEQ).ctx(OP)?.get(o).ctx(OP)?.is_some();
            if exists {
                return Err(StoreError::OrgExists(org.clone()));
            }
            if matches!(first, Change::InstallPlugin { .. }) {
                return Err(StoreError::ChangeOutOfOrder {
                    org: org.clone(),
                    after: Seq(0),
                    reason: "an organisation begins with a rule set".to_string(),
                });
            }
            let bytes = encode_change(org, Seq(0), first)?;
            changes.insert((o, 1), bytes.as_slice()).ctx(OP)?;
            txn.open_table(LOG_BYTES).ctx(OP)?.insert(o, bytes.len() as u64).ctx(OP)?;
            if let Some(key) = key {
                txn.open_table(ORG_KEYS).ctx(OP)?.insert(o, &key[..]).ctx(OP)?;
            }
        }
        txn.commit().ctx(OP)
    }

    fn org_key_unguarded(&self, org: &OrgId) -> Result<Option<[u8; 32]>, StoreError> {
        const OP: &str = "org_key";
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let keys = txn.open_table(ORG_KEYS).ctx(OP)?;
        let key = keys.get(org.as_str()).ctx(OP)?;
        Ok(key.and_then(|k| <[u8; 32]>::try_from(k.value()).ok()))
    }

    fn set_org_key_unguarded(&self, org: &OrgId, key: [u8; 32]) -> Result<(), StoreError> {
        const OP: &str = "set_org_key";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        {
            if txn.open_table(CHANGES).ctx(OP)?.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next().is_none() {
                return Err(StoreError::NoSuchOrg(org.clone()));
            }
            txn.open_table(ORG_KEYS).ctx(OP)?.insert(o, &key[..]).ctx(OP)?;
        }
        txn.commit().ctx(OP)
    }

    fn org_records_unguarded(&self, org: &OrgId, table: OrgTable) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        const OP: &str = "org_records";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let keys = txn.open_table(org_table(table)).ctx(OP)?;
        let mut out = Vec::new();
        for row in keys.range((o, "")..).ctx(OP)? {
            let (k, v) = row.ctx(OP)?;
            let (owner, id) = k.value();
            if owner != o {
                break;
            }
            out.push((id.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn set_org_record_unguarded(
        &self,
        org: &OrgId,
        table: OrgTable,
        id: &str,
        record: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_org_record";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        let existed = {
            if txn.open_table(CHANGES).ctx(OP)?.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next().is_none() {
                return Err(StoreError::NoSuchOrg(org.clone()));
            }
            let mut keys = txn.open_table(org_table(table)).ctx(OP)?;
            match record {
                Some(bytes) => keys.insert((o, id), bytes).ctx(OP)?.is_some(),
                None => keys.remove((o, id)).ctx(OP)?.is_some(),
            }
        };
        txn.commit().ctx(OP)?;
        Ok(existed)
    }

    fn organisations_unguarded(&self) -> Result<Vec<OrgId>, StoreError> {
        const OP: &str = "organisations";
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let changes = txn.open_table(CHANGES).ctx(OP)?;
        let mut out: Vec<OrgId> = Vec::new();
        // Change 1 of each organisation: one range over the table, skipping from one
        // organisation's first key to the next organisation.
        let mut from = String::new();
        loop {
            let next = changes.range((from.as_str(), 0)..).ctx(OP)?.next();
            let Some(entry) = next else { break };
            let name = entry.ctx(OP)?.0.value().0.to_string();
            // A name that is no organisation id was never written by Plaudit: skipped.
            if let Ok(org) = OrgId::parse(&name) {
                out.push(org);
            }
            // The smallest string after every key of `name`: `name` followed by a NUL.
            from = format!("{name}\0");
        }
        Ok(out)
    }

    fn module_unguarded(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "module";
        let db = self.db();
        let txn = db.begin_read().ctx(OP)?;
        let modules = txn.open_table(MODULES).ctx(OP)?;
        Ok(modules.get(hash).ctx(OP)?.map(|g| g.value().to_vec()))
    }

    fn put_snapshot_unguarded(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_snapshot_checked(org, seq, snapshot_checksum(seq, bytes), bytes)
    }

    fn stored_bytes_unguarded(&self, org: &OrgId) -> Result<u64, StoreError> {
        const OP: &str = "stored_bytes";
        let o = org.as_str();
        let log = {
            let db = self.db();
            let txn = db.begin_read().ctx(OP)?;
            let counted = txn.open_table(LOG_BYTES).ctx(OP)?;
            counted.get(o).ctx(OP)?.map_or(0, |g| g.value())
        };
        let snapshots = self.snapshots();
        let txn = snapshots.begin_read().ctx(OP)?;
        let index = txn.open_table(SNAPSHOT_INDEX).ctx(OP)?;
        let snapshot = index.get(o).ctx(OP)?.map_or(0, |g| {
            let (_, _, parts, checksum) = g.value();
            snapshot_len(parts, checksum >> 32)
        });
        Ok(log.saturating_add(snapshot))
    }

    fn latest_snapshot_unguarded(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        const OP: &str = "latest_snapshot";
        let o = org.as_str();
        let snapshots = self.snapshots();
        let txn = snapshots.begin_read().ctx(OP)?;
        let index = txn.open_table(SNAPSHOT_INDEX).ctx(OP)?;
        let Some((generation, seq, count, checksum)) = index.get(o).ctx(OP)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let seq = Seq(seq);
        let corrupt = || StoreError::CorruptSnapshot { org: org.clone(), seq };
        let parts = txn.open_table(SNAPSHOT_PARTS).ctx(OP)?;
        // The length the checksum names, bounded by what the parts can hold.
        let len = ((checksum >> 32) as usize).min(count as usize * PART_BYTES);
        let mut bytes = Vec::with_capacity(len);
        let mut read = 0u32;
        for entry in parts.range((o, generation, 0)..=(o, generation, u32::MAX)).ctx(OP)? {
            let (key, value) = entry.ctx(OP)?;
            if key.value().2 != read {
                return Err(corrupt());
            }
            bytes.extend_from_slice(value.value());
            read += 1;
        }
        if read != count || checksum != snapshot_checksum(seq, &bytes) {
            return Err(corrupt());
        }
        Ok(Some((seq, bytes)))
    }
}

impl Store for RedbStore {
    fn append(&self, org: &OrgId, records: &[Record], received: i64) -> Result<Seq, StoreError> {
        contained("append", || self.append_unguarded(org, records, received))
    }

    fn read_segments(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<Segment>, StoreError> {
        contained("read", || self.read_segments_unguarded(org, after, limit))
    }

    fn last_seq(&self, org: &OrgId) -> Result<Seq, StoreError> {
        contained("last_seq", || self.last_seq_unguarded(org))
    }

    fn append_change(
        &self,
        org: &OrgId,
        after: Seq,
        change: &Change,
        module: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        contained("append_change", || self.append_change_unguarded(org, after, change, module))
    }

    fn changes(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError> {
        contained("changes", || self.changes_unguarded(org))
    }

    fn module(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        contained("module", || self.module_unguarded(hash))
    }

    fn put_snapshot(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError> {
        contained("put_snapshot", || self.put_snapshot_unguarded(org, seq, bytes))
    }

    fn create_org(&self, org: &OrgId, key_hash: Option<[u8; 32]>, first: &Change) -> Result<(), StoreError> {
        contained("create_org", || self.create_org_unguarded(org, key_hash, first))
    }

    fn org_key(&self, org: &OrgId) -> Result<Option<[u8; 32]>, StoreError> {
        contained("org_key", || self.org_key_unguarded(org))
    }

    fn set_org_key(&self, org: &OrgId, key_hash: [u8; 32]) -> Result<(), StoreError> {
        contained("set_org_key", || self.set_org_key_unguarded(org, key_hash))
    }

    fn organisations(&self) -> Result<Vec<OrgId>, StoreError> {
        contained("organisations", || self.organisations_unguarded())
    }

    fn org_records(&self, org: &OrgId, table: OrgTable) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        contained("org_records", || self.org_records_unguarded(org, table))
    }

    fn set_org_record(
        &self,
        org: &OrgId,
        table: OrgTable,
        name: &str,
        bytes: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        contained("set_org_record", || self.set_org_record_unguarded(org, table, name, bytes))
    }

    fn erase(&self, org: &OrgId, subject: &str, pseudonym: &str) -> Result<Erasure, StoreError> {
        contained("erase", || self.erase_unguarded(org, subject, pseudonym))
    }

    fn stored_bytes(&self, org: &OrgId) -> Result<u64, StoreError> {
        contained("stored_bytes", || self.stored_bytes_unguarded(org))
    }

    fn latest_snapshot(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        contained("latest_snapshot", || self.latest_snapshot_unguarded(org))
    }
}

/// Runs a store operation, turning a panic inside redb into [`StoreError::Damaged`]: redb
/// 4.6 panics on some damaged pages (an invalid page type byte, say) instead of returning an
/// error, and a damaged file must fail the operation, not the process.
fn contained<T>(op: &'static str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string());
        Err(StoreError::Damaged { op, message })
    })
}

impl RedbStore {
    /// Stores `bytes` as `org`'s snapshot at `seq` under `checksum` (which the reader checks),
    /// part by part (see the module's layout), keeping only the newest snapshot.
    pub(crate) fn put_snapshot_checked(
        &self,
        org: &OrgId,
        seq: Seq,
        checksum: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        const OP: &str = "put_snapshot";
        let o = org.as_str();
        // The log only grows: checked now, still true when this commits.
        let last = self.last_seq_unguarded(org)?;
        if seq > last {
            return Err(StoreError::SnapshotBeyondLog { org: org.clone(), seq, last });
        }
        let count = u32::try_from(bytes.len().div_ceil(PART_BYTES)).map_err(|_| StoreError::Encode {
            org: org.clone(),
            source: rmp_serde::encode::Error::Syntax(format!("a snapshot of {} bytes", bytes.len())),
        })?;
        let _writing = self.snapshot_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = {
            let snapshots = self.snapshots();
            let txn = snapshots.begin_read().ctx(OP)?;
            let index = txn.open_table(SNAPSHOT_INDEX).ctx(OP)?;
            index.get(o).ctx(OP)?.map(|g| g.value())
        };
        if live.is_some_and(|(_, newest, _, _)| newest > seq.0) {
            // An older snapshot than the one kept: nothing to do.
            return Ok(());
        }
        let live = live.map_or(0, |(generation, ..)| generation);
        let generation = live + 1;
        for (i, part) in bytes.chunks(PART_BYTES).enumerate() {
            let snapshots = self.snapshots();
            let txn = snapshots.begin_write().ctx(OP)?;
            {
                let mut parts = txn.open_table(SNAPSHOT_PARTS).ctx(OP)?;
                if i == 0 {
                    // What a write cut short by a crash left.
                    keep_only(&mut parts, o, live).ctx(OP)?;
                }
                parts.insert((o, generation, i as u32), part).ctx(OP)?;
            }
            // Durability::Immediate: this part is on the disk before the next is written.
            txn.commit().ctx(OP)?;
        }
        let snapshots = self.snapshots();
        let txn = snapshots.begin_write().ctx(OP)?;
        {
            let mut index = txn.open_table(SNAPSHOT_INDEX).ctx(OP)?;
            index.insert(o, (generation, seq.0, count, checksum)).ctx(OP)?;
            let mut parts = txn.open_table(SNAPSHOT_PARTS).ctx(OP)?;
            keep_only(&mut parts, o, generation).ctx(OP)?;
        }
        txn.commit().ctx(OP)
    }
}

impl RedbStore {
    fn erase_unguarded(&self, org: &OrgId, subject: &str, pseudonym: &str) -> Result<Erasure, StoreError> {
        const OP: &str = "erase";
        let o = org.as_str();
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        let mut erasure = Erasure::default();
        {
            let mut segments = txn.open_table(SEGMENTS).ctx(OP)?;
            let mut rewritten: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut delta: i64 = 0;
            let mut profiles = 0;
            for entry in segments.range((o, 0)..=(o, u64::MAX)).ctx(OP)? {
                let (key, value) = entry.ctx(OP)?;
                let first = key.value().1;
                let mut records = decode_segment(org, first, 0, value.value())?;
                let n = crate::pseudonymise(&mut records, subject, pseudonym, &mut profiles);
                if n > 0 {
                    erasure.records += n;
                    let bytes = encode_segment(org, &records)?;
                    delta += bytes.len() as i64 - value.value().len() as i64;
                    rewritten.push((first, bytes));
                }
            }
            for (first, bytes) in &rewritten {
                segments.insert((o, *first), bytes.as_slice()).ctx(OP)?;
            }
            let after = txn.open_table(LAST_SEQ).ctx(OP)?.get(o).ctx(OP)?.map_or(0, |g| g.value());
            let mut changes = txn.open_table(CHANGES).ctx(OP)?;
            let last = changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next_back().transpose().ctx(OP)?;
            erasure.change = last.map_or(0, |(key, _)| key.value().1) + 1;
            let change = encode_change(org, Seq(after), &Change::Erased { pseudonym: pseudonym.to_string() })?;
            changes.insert((o, erasure.change), change.as_slice()).ctx(OP)?;
            delta += change.len() as i64;
            let mut counted = txn.open_table(LOG_BYTES).ctx(OP)?;
            let held = counted.get(o).ctx(OP)?.map_or(0, |g| g.value());
            counted.insert(o, held.saturating_add_signed(delta)).ctx(OP)?;
            txn.open_table(ERASING).ctx(OP)?.insert(o, erasure.change).ctx(OP)?;
        }
        txn.commit().ctx(OP)?;
        drop(db);
        self.finish_erasures()?;
        Ok(erasure)
    }

    /// Completes the erasures committed: drops the organisations' snapshots (a snapshot holds
    /// what the log held before), then rewrites both files with what they hold now
    /// ([`RedbStore::scrub`]), then forgets the erasures.
    fn finish_erasures(&self) -> Result<(), StoreError> {
        const OP: &str = "erase";
        let pending: Vec<String> = {
            let db = self.db();
            let txn = db.begin_read().ctx(OP)?;
            let erasing = txn.open_table(ERASING).ctx(OP)?;
            erasing.iter().ctx(OP)?.map(|e| e.map(|(k, _)| k.value().to_string())).collect::<Result<_, _>>().ctx(OP)?
        };
        if pending.is_empty() {
            return Ok(());
        }
        {
            let _writing = self.snapshot_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let snapshots = self.snapshots();
            let txn = snapshots.begin_write().ctx(OP)?;
            {
                let mut index = txn.open_table(SNAPSHOT_INDEX).ctx(OP)?;
                let mut parts = txn.open_table(SNAPSHOT_PARTS).ctx(OP)?;
                for o in &pending {
                    index.remove(o.as_str()).ctx(OP)?;
                    parts.retain_in((o.as_str(), 0, 0)..=(o.as_str(), u64::MAX, u32::MAX), |_, _| false).ctx(OP)?;
                }
            }
            txn.commit().ctx(OP)?;
        }
        self.scrub()?;
        let db = self.db();
        let txn = db.begin_write().ctx(OP)?;
        {
            let mut erasing = txn.open_table(ERASING).ctx(OP)?;
            for o in &pending {
                erasing.remove(o.as_str()).ctx(OP)?;
            }
        }
        txn.commit().ctx(OP)
    }

    /// Rewrites both files with what they hold now, each into a new file renamed over the old:
    /// the pages an erasure freed (redb does not overwrite a page it frees) are in no file any
    /// more. Every transaction waits meanwhile; what is being written finishes first.
    fn scrub(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *db = rewrite_file(&self.path, &db, &LOG_TABLES, copy_log)?;
        drop(db);
        let _writing = self.snapshot_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut snapshots = self.snapshots.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *snapshots = rewrite_file(&snapshots_path(&self.path), &snapshots, &SNAPSHOT_TABLES, copy_snapshots)?;
        Ok(())
    }
}

/// Copies every table of `from` into `to`, each whole.
macro_rules! copy_tables {
    ($from:expr, $to:expr, $($table:expr),+ $(,)?) => {{
        $(
            {
                let from = $from.open_table($table)?;
                let mut to = $to.open_table($table)?;
                for entry in from.iter()? {
                    let (key, value) = entry?;
                    to.insert(key.value(), value.value())?;
                }
            }
        )+
        Ok(())
    }};
}

/// The log file's tables, by name: a scrub copies these, and refuses a file with another.
const LOG_TABLES: [&str; 11] = [
    "segments",
    "segment_received",
    "last_seq",
    "changes",
    "org_log_bytes",
    "modules",
    "org_keys",
    "scoped_keys",
    "org_settings",
    "meta",
    "erasing",
];

fn copy_log(from: &::redb::ReadTransaction, to: &::redb::WriteTransaction) -> Result<(), ::redb::Error> {
    copy_tables!(
        from,
        to,
        SEGMENTS,
        SEGMENT_RECEIVED,
        LAST_SEQ,
        CHANGES,
        LOG_BYTES,
        MODULES,
        ORG_KEYS,
        SCOPED_KEYS,
        SETTINGS,
        META,
        ERASING
    )
}

/// The snapshot file's tables, by name.
const SNAPSHOT_TABLES: [&str; 2] = ["snapshot_index", "snapshot_parts"];

fn copy_snapshots(from: &::redb::ReadTransaction, to: &::redb::WriteTransaction) -> Result<(), ::redb::Error> {
    copy_tables!(from, to, SNAPSHOT_INDEX, SNAPSHOT_PARTS)
}

/// `path` rewritten with what `db` (open on it) holds, through `copy` (which copies the tables
/// `known`; a file with another table is refused, so that nothing is left behind unsaid): a new file beside it,
/// committed (fsync'd), then renamed over it, the folder fsync'd. A crash leaves the old file
/// whole (and a partial new one, which the next rewrite replaces).
fn rewrite_file(
    path: &Path,
    db: &Database,
    known: &[&str],
    copy: fn(&::redb::ReadTransaction, &::redb::WriteTransaction) -> Result<(), ::redb::Error>,
) -> Result<Database, StoreError> {
    const OP: &str = "scrub";
    let fresh_path = path.with_extension("scrub");
    match std::fs::remove_file(&fresh_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).ctx(OP),
        _ => {}
    }
    let fresh = Database::create(&fresh_path).ctx(OP)?;
    {
        let from = db.begin_read().ctx(OP)?;
        let tables: Vec<String> = from.list_tables().ctx(OP)?.map(|t| t.name().to_string()).collect();
        if let Some(unknown) = tables.iter().find(|t| !known.contains(&t.as_str())) {
            return Err(StoreError::Damaged {
                op: OP,
                message: format!("table {unknown:?} of {} is not one this build copies", path.display()),
            });
        }
        let to = fresh.begin_write().ctx(OP)?;
        copy(&from, &to).ctx(OP)?;
        to.commit().ctx(OP)?;
    }
    std::fs::rename(&fresh_path, path).ctx(OP)?;
    if let Some(folder) = path.parent() {
        let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
        std::fs::File::open(folder).and_then(|f| f.sync_all()).ctx(OP)?;
    }
    Ok(fresh)
}

/// Adds `bytes` to what `org`'s log holds ([`LOG_BYTES`]), in the write transaction `txn`.
fn add_log_bytes(txn: &::redb::WriteTransaction, org: &str, bytes: usize) -> Result<(), ::redb::Error> {
    let mut counted = txn.open_table(LOG_BYTES)?;
    let held = counted.get(org)?.map_or(0, |g| g.value());
    counted.insert(org, held.saturating_add(bytes as u64))?;
    Ok(())
}

/// Counts, once, the log bytes of every organisation a store written before [`LOG_BYTES`] was
/// kept holds (its segments, changes and installed modules), in the open's transaction.
fn count_log_bytes(txn: &::redb::WriteTransaction) -> Result<(), ::redb::Error> {
    let mut counted = txn.open_table(LOG_BYTES)?;
    let changes = txn.open_table(CHANGES)?;
    let segments = txn.open_table(SEGMENTS)?;
    let modules = txn.open_table(MODULES)?;
    // Every organisation has a change (its first rule set): one pass over the changes finds them.
    let mut missing: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for entry in changes.iter()? {
        let (key, value) = entry?;
        let org = key.value().0;
        if counted.get(org)?.is_some() {
            continue;
        }
        let mut bytes = value.value().len() as u64;
        let installed = OrgId::parse(org).ok().and_then(|id| match decode_change(&id, 0, value.value()) {
            Ok((_, Change::InstallPlugin { module, .. })) => Some(module),
            _ => None,
        });
        if let Some(module) = installed
            && let Some(stored) = modules.get(module.as_str())?
        {
            bytes += stored.value().len() as u64;
        }
        *missing.entry(org.to_string()).or_default() += bytes;
    }
    for (org, bytes) in &mut missing {
        for entry in segments.range((org.as_str(), 0)..=(org.as_str(), u64::MAX))? {
            *bytes += entry?.1.value().len() as u64;
        }
    }
    for (org, bytes) in missing {
        counted.insert(org.as_str(), bytes)?;
    }
    Ok(())
}

/// The length of a snapshot of `parts` parts whose checksum names `len32` (its length's low 32
/// bits): the one length of those parts' range with those bits.
fn snapshot_len(parts: u32, len32: u64) -> u64 {
    let Some(full) = u64::from(parts).checked_sub(1) else { return 0 };
    let base = full * PART_BYTES as u64;
    base + (len32.wrapping_sub(base) & 0xFFFF_FFFF)
}

/// Drops every snapshot part of `org` but those of `generation`.
fn keep_only(
    parts: &mut ::redb::Table<(&str, u64, u32), &[u8]>,
    org: &str,
    generation: u64,
) -> Result<(), ::redb::StorageError> {
    parts.retain_in((org, 0, 0)..=(org, u64::MAX, u32::MAX), |(_, g, _), _| g == generation)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    use ::redb::ReadableTableMetadata;
    use plaudit_sdk::{Attrs, Stakeholder, Value};

    use super::*;
    use crate::conformance::{moment, org, retract, rules};
    use crate::module_hash;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!("plaudit-store-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let dir = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("plaudit.redb")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn profile(id: &str) -> Record {
        Record::Profile(Stakeholder {
            id: id.into(),
            kind: "customer".into(),
            team: Some("sales".into()),
            name: None,
            attrs: Attrs::new(),
        })
    }

    fn open(dir: &TempDir) -> RedbStore {
        RedbStore::open(dir.db()).expect("open store")
    }

    /// Whether any file of `dir` holds `needle`.
    fn any_file_holds(dir: &TempDir, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir.0).expect("the folder") {
            let path = entry.expect("an entry").path();
            let bytes = std::fs::read(&path).expect("a file");
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn an_erasure_rewrites_the_log_drops_the_snapshots_and_leaves_no_byte_of_the_subject_in_any_file() {
        let dir = TempDir::new();
        let store = open(&dir);
        let (acme, other) = (org("acme"), org("other"));
        let subject = "zz-subject-5d1e";
        let mut named = Stakeholder::new(subject);
        named.name = Some("Zelda Quux-Unique".into());
        named.attrs.insert("phone".into(), Value::Text("555-UNIQUE-0199".into()));
        let with = |id: &str, who: &str, counterpart: Option<&str>| {
            let Record::Moment(mut m) = moment(id) else { unreachable!() };
            (m.stakeholder, m.counterpart) = (who.into(), counterpart.map(str::to_string));
            Record::Moment(m)
        };
        let first = vec![Record::Profile(named), with("m1", subject, None), with("m2", "ann", Some(subject))];
        store.create_org(&acme, None, &rules("r")).expect("created");
        store.append(&acme, &first, 0).expect("append");
        store.append(&acme, &[with("m3", "ann", Some("bob"))], 0).expect("append");
        store.create_org(&other, None, &rules("r")).expect("created");
        store.append(&other, &[with("o1", subject, None)], 0).expect("another organisation's");
        store.put_snapshot(&acme, Seq(4), format!("snapshot naming {subject}").as_bytes()).expect("a snapshot");
        let before = store.read(&acme, Seq(0), 100).expect("read");
        for needle in [subject, "Zelda Quux-Unique", "555-UNIQUE-0199"] {
            assert!(!any_file_holds(&dir, needle.as_bytes()).is_empty(), "{needle} is stored before");
        }

        let erasure = store.erase(&acme, subject, "erased-00ff").expect("erased");
        assert_eq!(erasure, Erasure { records: 3, change: 2 });
        let after = store.read(&acme, Seq(0), 100).expect("read");
        let mut expected = before.clone();
        let mut records: Vec<Record> = expected.iter().map(|(_, r)| r.clone()).collect();
        crate::pseudonymise(&mut records, subject, "erased-00ff", &mut 0);
        expected.iter_mut().zip(records).for_each(|(e, r)| e.1 = r);
        assert_eq!(after, expected, "the same records, naming the pseudonym");
        let changes = store.changes(&acme).expect("changes");
        assert_eq!(changes[1].change, Change::Erased { pseudonym: "erased-00ff".into() });
        assert_eq!(changes[1].after, Seq(4));
        assert!(store.latest_snapshot(&acme).expect("read").is_none(), "the snapshot is dropped");
        assert_eq!(store.read(&other, Seq(0), 10).expect("read").len(), 1, "another organisation is its own");
        drop(store);
        // The other organisation still names its own stakeholder of that id: only acme's go.
        let store = open(&dir);
        for needle in ["Zelda Quux-Unique", "555-UNIQUE-0199"] {
            assert_eq!(any_file_holds(&dir, needle.as_bytes()), Vec::<PathBuf>::new(), "{needle}");
        }
        store.erase(&other, subject, "erased-0100").expect("erased");
        assert_eq!(any_file_holds(&dir, subject.as_bytes()), Vec::<PathBuf>::new(), "no file names them");
        assert_eq!(store.read(&acme, Seq(0), 100).expect("read"), after, "and the store reads as before");
    }

    #[test]
    fn appended_records_read_back_in_order_with_consecutive_seqs() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        let first = vec![profile("ann"), moment("m1"), moment("m2")];
        let second = vec![retract("m1"), moment("m3")];

        assert_eq!(store.append(&acme, &first, 0).expect("append"), Seq(3));
        assert_eq!(store.append(&acme, &second, 0).expect("append"), Seq(5));

        let read = store.read(&acme, Seq(0), usize::MAX).expect("read");
        let expected: Vec<(Seq, Record)> =
            first.into_iter().chain(second).enumerate().map(|(i, r)| (Seq(i as u64 + 1), r)).collect();
        assert_eq!(read, expected);
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(5));
    }

    #[test]
    fn segments_read_back_whole_with_when_they_were_received() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            store.append(&acme, &[moment("a"), moment("b"), moment("c")], 1_000).expect("append");
            store.append(&acme, &[moment("d")], 2_000).expect("append");
            store.append(&acme, &[moment("e"), moment("f")], 3_000).expect("append");
        }
        let store = open(&dir);
        let shape = |segments: Vec<Segment>| -> Vec<(u64, Option<i64>, usize)> {
            segments.iter().map(|s| (s.first.0, s.received, s.records.len())).collect()
        };
        // Whole segments until they hold the limit: never a segment cut at the end.
        assert_eq!(shape(store.read_segments(&acme, Seq(0), 1).expect("read")), [(1, Some(1_000), 3)]);
        assert_eq!(
            shape(store.read_segments(&acme, Seq(0), 4).expect("read")),
            [(1, Some(1_000), 3), (4, Some(2_000), 1)]
        );
        assert_eq!(
            shape(store.read_segments(&acme, Seq(3), 2).expect("read")),
            [(4, Some(2_000), 1), (5, Some(3_000), 2)]
        );
        // From the middle of one: its tail.
        assert_eq!(shape(store.read_segments(&acme, Seq(1), 100).expect("read")).first(), Some(&(2, Some(1_000), 2)));
        assert!(store.read_segments(&acme, Seq(6), 100).expect("read").is_empty());
        let last = store.read_segments(&acme, Seq(4), 100).expect("read");
        assert_eq!((last[0].last(), last[0].records[1].clone()), (Seq(6), moment("f")));
    }

    #[test]
    fn an_organisation_is_created_whole_with_its_key_listed_and_never_twice() {
        let dir = TempDir::new();
        let (acme, acme2, beta) = (org("acme"), org("acme-2"), org("beta"));
        {
            let store = open(&dir);
            store.create_org(&beta, None, &rules("b")).expect("beta");
            store.create_org(&acme, Some([7; 32]), &rules("a")).expect("acme");
            store.create_org(&acme2, Some([9; 32]), &rules("a2")).expect("acme-2");
            let again = store.create_org(&acme, Some([8; 32]), &rules("x")).expect_err("exists");
            assert!(matches!(again, StoreError::OrgExists(ref o) if o == &acme), "{again}");
            let plugin = Change::InstallPlugin { name: "p".into(), module: module_hash(b"w") };
            assert!(store.create_org(&org("gamma"), None, &plugin).is_err(), "an organisation begins with rules");
        }
        let store = open(&dir);
        assert_eq!(store.organisations().expect("listed"), vec![acme.clone(), acme2.clone(), beta.clone()]);
        assert_eq!(store.org_key(&acme).expect("key"), Some([7; 32]), "the key of acme, not acme-2's");
        assert_eq!(store.org_key(&beta).expect("key"), None);
        assert_eq!(store.changes(&acme).expect("changes")[0].change, rules("a"), "unchanged by the refused creation");
        store.set_org_key(&beta, [1; 32]).expect("adopted");
        assert_eq!(store.org_key(&beta).expect("key"), Some([1; 32]));
        assert!(matches!(store.set_org_key(&org("nobody"), [1; 32]), Err(StoreError::NoSuchOrg(_))));
    }

    #[test]
    fn a_store_records_its_format_and_one_of_another_format_or_layout_is_refused_saying_so() {
        let dir = TempDir::new();
        drop(open(&dir));
        {
            let db = Database::create(dir.db()).expect("opens");
            let txn = db.begin_read().expect("reads");
            let meta = txn.open_table(META).expect("the meta table");
            assert_eq!(meta.get("format").expect("read").map(|g| g.value()), Some(FORMAT_VERSION));
        }
        drop(open(&dir)); // reopens: the same format
        {
            let db = Database::create(dir.db()).expect("opens");
            let txn = db.begin_write().expect("writes");
            txn.open_table(META).expect("table").insert("format", FORMAT_VERSION + 1).expect("insert");
            txn.commit().expect("commit");
        }
        let err = RedbStore::open(dir.db()).expect_err("a newer format");
        assert!(matches!(err, StoreError::Version { .. }) && err.to_string().contains("newer Plaudit"), "{err}");
        let old = TempDir::new();
        {
            let db = Database::create(old.db()).expect("creates");
            let txn = db.begin_write().expect("writes");
            txn.open_table(PRE_RELEASE_LOG).expect("table").insert(("acme", 1), &[0u8][..]).expect("insert");
            txn.commit().expect("commit");
        }
        let err = RedbStore::open(old.db()).expect_err("a pre-release layout");
        assert!(err.to_string().contains("pre-release"), "{err}");
        // As the first released build left it: an empty `log` table, dropped.
        let first = TempDir::new();
        {
            let db = Database::create(first.db()).expect("creates");
            let txn = db.begin_write().expect("writes");
            txn.open_table(PRE_RELEASE_LOG).expect("table");
            txn.commit().expect("commit");
        }
        drop(open(&first));
        let db = Database::create(first.db()).expect("opens");
        let txn = db.begin_read().expect("reads");
        assert!(txn.list_tables().expect("tables").all(|t| t.name() != "log"), "dropped");
    }

    #[test]
    fn empty_org_has_no_records_no_seq_and_no_snapshot() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(0));
        assert!(store.read(&acme, Seq(0), 10).expect("read").is_empty());
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), None);
        assert_eq!(store.append(&acme, &[], 0).expect("append"), Seq(0));
    }

    #[test]
    fn the_store_appends_what_it_is_given_deduplication_is_the_log_steps() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        // The same moment id twice, profiles and retractions alike: each gets a sequence.
        let records = [moment("x"), moment("x"), profile("x"), profile("x"), retract("x")];
        assert_eq!(store.append(&acme, &records, 0).expect("append"), Seq(5));
        assert_eq!(store.read(&acme, Seq(0), 100).expect("read").len(), 5);
    }

    fn part_keys(store: &RedbStore, org: &str) -> Vec<(u64, u32)> {
        let txn = store.snapshots().begin_read().expect("read txn");
        let parts = txn.open_table(SNAPSHOT_PARTS).expect("table");
        let range = parts.range((org, 0, 0)..=(org, u64::MAX, u32::MAX)).expect("range");
        range
            .map(|e| {
                let (_, g, p) = e.expect("entry").0.value();
                (g, p)
            })
            .collect()
    }

    #[test]
    fn storing_a_snapshot_does_not_hold_the_log() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a")], 0).expect("append");
        // A snapshot's write transaction open: the log still commits.
        let writing = store.snapshots().begin_write().expect("snapshot write");
        assert_eq!(store.append(&acme, &[moment("b")], 0).expect("append meanwhile"), Seq(2));
        drop(writing);
    }

    #[test]
    fn organisations_are_isolated() {
        let dir = TempDir::new();
        let store = open(&dir);
        // "acme" is a prefix of "acme-2": keys must not run into each other.
        let (a, b) = (org("acme"), org("acme-2"));
        assert_eq!(store.append(&a, &[moment("same"), moment("only-a")], 0).expect("append"), Seq(2));
        assert_eq!(store.append(&b, &[moment("same")], 0).expect("append"), Seq(1));

        assert_eq!(
            store.read(&a, Seq(0), 100).expect("read"),
            vec![(Seq(1), moment("same")), (Seq(2), moment("only-a"))]
        );
        assert_eq!(store.read(&b, Seq(0), 100).expect("read"), vec![(Seq(1), moment("same"))]);
        assert_eq!(store.last_seq(&a).expect("last_seq"), Seq(2));
        assert_eq!(store.last_seq(&b).expect("last_seq"), Seq(1));
        assert!(store.read(&org("acm"), Seq(0), 100).expect("read").is_empty());

        store.put_snapshot(&a, Seq(2), b"world a").expect("snapshot");
        assert_eq!(store.latest_snapshot(&b).expect("snapshot"), None);
    }

    #[test]
    fn last_seq_and_records_survive_reopen() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
            store.append(&acme, &[retract("a")], 0).expect("append");
        }
        let store = open(&dir);
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(3));
        assert_eq!(store.read(&acme, Seq(2), 10).expect("read"), vec![(Seq(3), retract("a"))]);
        assert_eq!(store.append(&acme, &[moment("c")], 0).expect("append"), Seq(4));
    }

    #[test]
    fn read_with_after_and_limit_pages_through_the_log() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        let records: Vec<Record> = (0..10).map(|i| moment(&format!("m{i}"))).collect();
        store.append(&acme, &records, 0).expect("append");

        let mut after = Seq(0);
        let mut pages = Vec::new();
        loop {
            let page = store.read(&acme, after, 3).expect("read");
            let Some(&(last, _)) = page.last() else { break };
            pages.push(page.iter().map(|(s, _)| s.0).collect::<Vec<_>>());
            after = last;
        }
        assert_eq!(pages, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]]);
        assert_eq!(
            store.read(&acme, Seq(4), 2).expect("read"),
            vec![(Seq(5), records[4].clone()), (Seq(6), records[5].clone())]
        );
        assert!(store.read(&acme, Seq(0), 0).expect("read").is_empty());
        assert!(store.read(&acme, Seq(10), 5).expect("read").is_empty());
        assert!(store.read(&acme, Seq(u64::MAX), 5).expect("read").is_empty());
    }

    #[test]
    fn snapshot_round_trips_and_only_the_newest_is_kept() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            let records: Vec<Record> = (0..5).map(|i| moment(&format!("m{i}"))).collect();
            store.append(&acme, &records, 0).expect("append");
            store.put_snapshot(&acme, Seq(2), b"at two").expect("snapshot");
            assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(2), b"at two".to_vec())));
            store.put_snapshot(&acme, Seq(5), b"").expect("snapshot");
            // Older than the one kept: ignored.
            store.put_snapshot(&acme, Seq(3), b"at three").expect("snapshot");
        }
        let store = open(&dir);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(5), Vec::new())));
        let txn = store.snapshots().begin_read().expect("read txn");
        assert_eq!(txn.open_table(SNAPSHOT_INDEX).expect("table").len().expect("len"), 1);
        assert_eq!(txn.open_table(SNAPSHOT_PARTS).expect("table").len().expect("len"), 0, "an empty one has no part");
    }

    #[test]
    fn a_large_snapshot_is_written_in_parts_and_replacing_it_drops_the_old_parts() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
        let first: Vec<u8> = (0..3 * PART_BYTES).map(|i| (i % 253) as u8).collect();
        store.put_snapshot(&acme, Seq(1), &first).expect("snapshot");
        assert_eq!(part_keys(&store, "acme"), vec![(1, 0), (1, 1), (1, 2)]);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(1), first)));
        // The same sequence again (a rule change logged after it, say): a new generation.
        let second: Vec<u8> = (0..PART_BYTES + 1).map(|i| (i % 7) as u8).collect();
        store.put_snapshot(&acme, Seq(1), &second).expect("snapshot");
        assert_eq!(part_keys(&store, "acme"), vec![(2, 0), (2, 1)]);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(1), second)));
    }

    #[test]
    fn a_snapshot_cut_short_by_a_crash_leaves_the_previous_one_and_its_parts_go_with_the_next_write() {
        let dir = TempDir::new();
        let acme = org("acme");
        let kept: Vec<u8> = (0..PART_BYTES + 10).map(|i| (i % 11) as u8).collect();
        {
            let store = open(&dir);
            store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
            store.put_snapshot(&acme, Seq(1), &kept).expect("snapshot");
            // What a crash after two parts of the next one leaves: its parts, not its index entry.
            for part in 0..2 {
                let txn = store.snapshots().begin_write().expect("write");
                let mut parts = txn.open_table(SNAPSHOT_PARTS).expect("table");
                parts.insert(("acme", 2, part), &[9u8; 100][..]).expect("insert");
                drop(parts);
                txn.commit().expect("commit");
            }
        }
        let store = open(&dir);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(1), kept)));
        store.put_snapshot(&acme, Seq(2), b"next").expect("snapshot");
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(2), b"next".to_vec())));
        assert_eq!(part_keys(&store, "acme"), vec![(2, 0)], "the cut one's parts and the old ones are gone");
    }

    #[test]
    fn snapshot_beyond_the_log_is_refused() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a")], 0).expect("append");
        let err = store.put_snapshot(&acme, Seq(2), b"future").expect_err("beyond the log");
        assert!(matches!(err, StoreError::SnapshotBeyondLog { seq: Seq(2), last: Seq(1), .. }), "{err}");
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), None);
    }

    #[test]
    fn corrupted_snapshot_is_refused_with_corrupt_snapshot() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
        store.put_snapshot(&acme, Seq(2), b"a world").expect("snapshot");

        let corrupt = |store: &RedbStore| {
            let err = store.latest_snapshot(&acme).expect_err("corrupt");
            assert!(matches!(&err, StoreError::CorruptSnapshot { org, seq: Seq(2) } if org == &acme), "{err}");
            assert!(err.to_string().contains("acme"), "{err}");
        };
        // One byte flipped, with the checksum of what was meant.
        store
            .put_snapshot_checked(&acme, Seq(2), snapshot_checksum(Seq(2), b"a world"), b"a wprld")
            .expect("raw write");
        corrupt(&store);
        // A part missing from the middle of a large one (1), or its last part (2).
        let big = vec![7u8; 2 * PART_BYTES + 1];
        for missing in [1, 2] {
            store.put_snapshot(&acme, Seq(2), &big).expect("snapshot");
            let generation = part_keys(&store, "acme")[0].0;
            let txn = store.snapshots().begin_write().expect("write");
            txn.open_table(SNAPSHOT_PARTS).expect("table").remove(("acme", generation, missing)).expect("remove");
            txn.commit().expect("commit");
            corrupt(&store);
        }
    }

    #[test]
    fn torn_or_damaged_tail_is_recovered_to_a_prefix_or_refused_never_silently_wrong() {
        let acme = org("acme");
        let written: Vec<Record> = (0..300).map(|i| moment(&format!("m{i}"))).collect();
        let pristine = {
            let dir = TempDir::new();
            let store = open(&dir);
            for chunk in written.chunks(10) {
                store.append(&acme, chunk, 0).expect("append");
            }
            drop(store);
            std::fs::read(dir.db()).expect("read the file")
        };
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let damages: Vec<(&str, Damage)> = vec![
            ("last byte cut", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 1))),
            ("last 4 kB cut", Box::new(|b: &mut Vec<u8>| b.truncate(b.len().saturating_sub(4096)))),
            ("half cut", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2))),
            (
                "tail zeroed",
                Box::new(|b: &mut Vec<u8>| {
                    let n = b.len();
                    b[n - 4096..].fill(0);
                }),
            ),
            (
                "tail scrambled",
                Box::new(|b: &mut Vec<u8>| {
                    let n = b.len();
                    for (i, x) in b[n - 8192..].iter_mut().enumerate() {
                        *x = (i as u8).wrapping_mul(31) ^ 0x5a;
                    }
                }),
            ),
        ];
        for (what, damage) in damages {
            let dir = TempDir::new();
            let mut bytes = pristine.clone();
            damage(&mut bytes);
            std::fs::write(dir.db(), &bytes).expect("write the damaged file");
            match RedbStore::open(dir.db()) {
                Err(e) => {
                    let message = e.to_string();
                    let clear = message.contains("cannot open the store at") || message.contains("is damaged");
                    assert!(clear, "{what}: {message}");
                }
                Ok(store) => match store.read(&acme, Seq(0), usize::MAX) {
                    Err(e) => assert!(!e.to_string().is_empty(), "{what}"),
                    Ok(read) => {
                        assert!(read.len() <= written.len(), "{what}");
                        for (i, (seq, record)) in read.iter().enumerate() {
                            assert_eq!(*seq, Seq(i as u64 + 1), "{what}");
                            assert_eq!(record, &written[i], "{what}: record {i} is what was written");
                        }
                    }
                },
            }
        }
    }

    #[test]
    fn second_open_of_the_same_file_fails_cleanly() {
        let dir = TempDir::new();
        let _store = open(&dir);
        let err = RedbStore::open(dir.db()).expect_err("file is locked");
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
    }

    #[test]
    fn store_is_usable_as_a_trait_object() {
        let dir = TempDir::new();
        let store: Box<dyn Store> = Box::new(open(&dir));
        assert_eq!(store.append(&org("acme"), &[moment("a")], 0).expect("append"), Seq(1));
    }

    #[test]
    fn org_records_are_kept_per_organisation_and_table_and_survive_reopen() {
        let dir = TempDir::new();
        let (acme, beta) = (org("acme"), org("beta"));
        {
            let store = open(&dir);
            assert!(
                matches!(
                    store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"x")),
                    Err(StoreError::NoSuchOrg(_))
                ),
                "an organisation must exist first"
            );
            store.create_org(&acme, None, &rules("a")).expect("acme");
            store.create_org(&beta, None, &rules("b")).expect("beta");
            assert!(!store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"one")).expect("set"));
            assert!(store.set_org_record(&acme, OrgTable::Settings, "cors", Some(b"two")).expect("replace"));
            store.set_org_record(&acme, OrgTable::ScopedKeys, "k1", Some(b"key")).expect("key");
            store.set_org_record(&beta, OrgTable::Settings, "cors", Some(b"beta's")).expect("beta");
        }
        let store = open(&dir);
        let records = |o: &OrgId, t| store.org_records(o, t).expect("read");
        assert_eq!(records(&acme, OrgTable::Settings), vec![("cors".to_string(), b"two".to_vec())]);
        assert_eq!(records(&acme, OrgTable::ScopedKeys), vec![("k1".to_string(), b"key".to_vec())]);
        assert_eq!(records(&beta, OrgTable::Settings), vec![("cors".to_string(), b"beta's".to_vec())]);
        assert!(records(&beta, OrgTable::ScopedKeys).is_empty());
        assert!(store.set_org_record(&acme, OrgTable::Settings, "cors", None).expect("delete"));
        assert!(records(&acme, OrgTable::Settings).is_empty());
    }

    #[test]
    fn stored_bytes_count_the_log_and_the_newest_snapshot_and_are_recounted_for_an_older_store() {
        let dir = TempDir::new();
        let (acme, beta) = (org("acme"), org("beta"));
        let counted = {
            let store = open(&dir);
            store.create_org(&acme, None, &rules("a = 1")).expect("acme");
            store.create_org(&beta, None, &rules("b = 1")).expect("beta");
            let created = store.stored_bytes(&acme).expect("bytes");
            assert!(created > 0, "its first rule set");
            store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
            let appended = store.stored_bytes(&acme).expect("bytes");
            assert!(appended > created + 20, "{created} then {appended}");
            assert_eq!(store.stored_bytes(&beta).expect("bytes"), store.stored_bytes(&beta).expect("bytes"));
            let snapshot = vec![7u8; PART_BYTES + 10];
            store.put_snapshot(&acme, Seq(2), &snapshot).expect("snapshot");
            assert_eq!(store.stored_bytes(&acme).expect("bytes"), appended + snapshot.len() as u64);
            store.put_snapshot(&acme, Seq(2), &snapshot[..100]).expect("a smaller one replaces it");
            assert_eq!(store.stored_bytes(&acme).expect("bytes"), appended + 100);
            (store.stored_bytes(&acme).expect("bytes"), store.stored_bytes(&beta).expect("bytes"))
        };
        {
            // A store written before the count was kept: the table is missing.
            let db = Database::create(dir.db()).expect("opens");
            let txn = db.begin_write().expect("a write");
            txn.delete_table(LOG_BYTES).expect("dropped");
            txn.commit().expect("commits");
        }
        let store = open(&dir);
        assert_eq!((store.stored_bytes(&acme).expect("bytes"), store.stored_bytes(&beta).expect("bytes")), counted);
        assert_eq!(snapshot_len(0, 0), 0);
        assert_eq!(snapshot_len(5000, (5000 * PART_BYTES as u64 - 3) & 0xFFFF_FFFF), 5000 * PART_BYTES as u64 - 3);
    }

    #[test]
    fn changes_are_numbered_kept_in_order_and_survive_reopen() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            assert_eq!(store.append_change(&acme, Seq(0), &rules("v1"), None).expect("v1"), 1);
            store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
            let install = Change::InstallPlugin { name: "p".into(), module: module_hash(b"wasm") };
            assert_eq!(store.append_change(&acme, Seq(2), &install, Some(b"wasm")).expect("install"), 2);
            assert_eq!(store.append_change(&acme, Seq(2), &rules("v2"), None).expect("v2"), 3);
        }
        let store = open(&dir);
        let changes = store.changes(&acme).expect("changes");
        let got: Vec<(u64, u64)> = changes.iter().map(|c| (c.number, c.after.0)).collect();
        assert_eq!(got, vec![(1, 0), (2, 2), (3, 2)]);
        assert_eq!(changes[2].change, rules("v2"));
        assert_eq!(store.module(&module_hash(b"wasm")).expect("module").as_deref(), Some(&b"wasm"[..]));
        assert!(store.changes(&org("other")).expect("changes").is_empty(), "organisations are isolated");
    }

    #[test]
    fn a_change_out_of_order_or_with_a_wrong_module_is_refused_and_stores_nothing() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a"), moment("b")], 0).expect("append");
        let beyond = store.append_change(&acme, Seq(3), &rules("v1"), None).expect_err("beyond the log");
        assert!(matches!(beyond, StoreError::ChangeOutOfOrder { after: Seq(3), .. }), "{beyond}");
        store.append_change(&acme, Seq(2), &rules("v1"), None).expect("v1");
        let back = store.append_change(&acme, Seq(1), &rules("v2"), None).expect_err("before the last change");
        assert!(matches!(back, StoreError::ChangeOutOfOrder { .. }), "{back}");
        let install = Change::InstallPlugin { name: "p".into(), module: module_hash(b"wasm") };
        let wrong = store.append_change(&acme, Seq(2), &install, Some(b"other")).expect_err("hash mismatch");
        assert!(wrong.to_string().contains("do not hash"), "{wrong}");
        let missing = store.append_change(&acme, Seq(2), &install, None).expect_err("no module");
        assert!(missing.to_string().contains("not stored"), "{missing}");
        assert_eq!(store.changes(&acme).expect("changes").len(), 1);
        assert_eq!(store.module(&module_hash(b"other")).expect("module"), None);
    }
}
