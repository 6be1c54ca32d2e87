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
//! | `last_seq`   | org                 | the org's last seq                      |
//! | `changes`    | (org, number)       | MessagePack of (after, change)          |
//! | `modules`    | SHA-256 (hex)       | the module's bytes                      |
//!
//! and, in a file of their own beside it ([`snapshots_path`]), so that storing one never holds
//! the log's one write transaction:
//!
//! | table        | key                 | value                                   |
//! |--------------|---------------------|-----------------------------------------|
//! | `snapshots`  | (org, seq)          | checksum (LE, see `snapshot_checksum`) ++ bytes |
//!
//! An append is one insert, at the end of its organisation's `segments` (and its `last_seq`): a
//! group commit touches a few pages however large the log and however many records it holds,
//! and a read decodes whole segments in order. Only the newest snapshot per organisation is
//! kept.
//!
//! Files written by earlier builds hold their records one per entry in a `log` table, keyed by
//! (org, seq); they are read from there, and new appends go to `segments` after them. They
//! also have a `moment_ids` table (an index the world's history made redundant), which opening
//! one drops, and their snapshots in the log's file, which opening one moves to the snapshots'
//! file.

use std::path::Path;

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use plaudit_sdk::Record;

use super::{
    Change, LoggedChange, Store, StoreError, decode_record, encode_record_into, module_hash, snapshot_checksum,
};
use crate::ids::{OrgId, Seq};

/// (org, first seq) -> the records of one append (see the module's layout).
const SEGMENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("segments");
/// The records of files written by earlier builds, one per entry: read, never written.
const OLD_LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
/// The moment-id index of files written by earlier builds: dropped on open.
const OLD_MOMENT_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("moment_ids");
const SNAPSHOTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("snapshots");
const LAST_SEQ: TableDefinition<&str, u64> = TableDefinition::new("last_seq");
/// (org, change number) -> MessagePack of (after, change).
const CHANGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("changes");
/// Module SHA-256 (hex) -> module bytes.
const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");

/// Bytes of the checksum in front of a stored snapshot.
const CHECKSUM_LEN: usize = 8;

/// The embedded store: one redb file holding every organisation served by this node.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    /// The snapshots, in a file of their own beside the log's ([`snapshots_path`]): storing
    /// one (hundreds of MB for a large organisation) never holds the log's one write
    /// transaction, so commits go on meanwhile. Losing this file loses only a cache.
    snapshots: Database,
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
        let db = Database::create(path).map_err(|e| open_err(e.into()))?;
        // Create the tables up front, so that readers never meet a missing table.
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        {
            txn.open_table(SEGMENTS).map_err(|e| open_err(e.into()))?;
            txn.open_table(OLD_LOG).map_err(|e| open_err(e.into()))?;
            txn.open_table(LAST_SEQ).map_err(|e| open_err(e.into()))?;
            txn.open_table(CHANGES).map_err(|e| open_err(e.into()))?;
            txn.open_table(MODULES).map_err(|e| open_err(e.into()))?;
        }
        txn.delete_table(OLD_MOMENT_IDS).map_err(|e| open_err(e.into()))?;
        let snapshots_at = snapshots_path(path);
        let snap_err = |e: ::redb::Error| StoreError::Open { path: snapshots_at.clone(), source: Box::new(e) };
        let snapshots = Database::create(&snapshots_at).map_err(|e| snap_err(e.into()))?;
        let moved = snapshots.begin_write().map_err(|e| snap_err(e.into()))?;
        {
            // Files of earlier builds kept the snapshots with the log: moved here once.
            let mut to = moved.open_table(SNAPSHOTS).map_err(|e| snap_err(e.into()))?;
            let from = txn.open_table(SNAPSHOTS).map_err(|e| open_err(e.into()))?;
            for entry in from.iter().map_err(|e| open_err(e.into()))? {
                let (key, value) = entry.map_err(|e| open_err(e.into()))?;
                let (org, seq) = key.value();
                to.insert((org, seq), value.value()).map_err(|e| snap_err(e.into()))?;
            }
        }
        // The copy is durable before the original goes.
        moved.commit().map_err(|e| snap_err(e.into()))?;
        txn.delete_table(SNAPSHOTS).map_err(|e| open_err(e.into()))?;
        txn.commit().map_err(|e| open_err(e.into()))?;
        Ok(RedbStore { db, snapshots })
    }
}

impl RedbStore {
    fn append_unguarded(&self, org: &OrgId, records: &[Record]) -> Result<Seq, StoreError> {
        const OP: &str = "append";
        let o = org.as_str();
        let txn = self.db.begin_write().ctx(OP)?;
        let seq = {
            let mut segments = txn.open_table(SEGMENTS).ctx(OP)?;
            let mut last = txn.open_table(LAST_SEQ).ctx(OP)?;
            let start = last.get(o).ctx(OP)?.map_or(0, |g| g.value());
            let mut segment = Vec::new();
            for record in records {
                // Each record after its length, written once it is known.
                let at = segment.len();
                segment.extend_from_slice(&[0; 4]);
                encode_record_into(org, record, &mut segment)?;
                let len = segment.len() - at - 4;
                let len = u32::try_from(len).map_err(|_| StoreError::Encode {
                    org: org.clone(),
                    source: rmp_serde::encode::Error::Syntax(format!("a record of {len} bytes")),
                })?;
                segment[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            let seq = start + records.len() as u64;
            if seq != start {
                segments.insert((o, start + 1), segment.as_slice()).ctx(OP)?;
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

    fn read_unguarded(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<(Seq, Record)>, StoreError> {
        const OP: &str = "read";
        let o = org.as_str();
        let mut out = Vec::new();
        if limit == 0 || after.0 == u64::MAX {
            return Ok(out);
        }
        let txn = self.db.begin_read().ctx(OP)?;
        let old = txn.open_table(OLD_LOG).ctx(OP)?;
        for entry in old.range((o, after.0 + 1)..=(o, u64::MAX)).ctx(OP)?.take(limit) {
            let (key, value) = entry.ctx(OP)?;
            let seq = Seq(key.value().1);
            out.push((seq, decode_record(org, seq, value.value())?));
        }
        let from = out.last().map_or(after.0, |&(seq, _)| seq.0);
        if out.len() == limit {
            return Ok(out);
        }
        let segments = txn.open_table(SEGMENTS).ctx(OP)?;
        // The segment holding record `from + 1`, if it is not the first of one, then those after.
        let first = match segments.range((o, 0)..=(o, from + 1)).ctx(OP)?.next_back() {
            Some(entry) => entry.ctx(OP)?.0.value().1,
            None => 0,
        };
        for entry in segments.range((o, first)..=(o, u64::MAX)).ctx(OP)? {
            let (key, value) = entry.ctx(OP)?;
            let mut seq = key.value().1;
            let mut bytes = value.value();
            while !bytes.is_empty() {
                let torn = || StoreError::Damaged {
                    op: OP,
                    message: format!("organisation {org}: segment at {} is cut short", key.value().1),
                };
                let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(torn)?;
                let len = u32::from_le_bytes(*len) as usize;
                let record = rest.get(..len).ok_or_else(torn)?;
                bytes = &rest[len..];
                if seq > from {
                    out.push((Seq(seq), decode_record(org, Seq(seq), record)?));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
                seq += 1;
            }
        }
        Ok(out)
    }

    fn last_seq_unguarded(&self, org: &OrgId) -> Result<Seq, StoreError> {
        const OP: &str = "last_seq";
        let txn = self.db.begin_read().ctx(OP)?;
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
        let txn = self.db.begin_write().ctx(OP)?;
        let number = {
            let last = txn.open_table(LAST_SEQ).ctx(OP)?;
            let end = last.get(o).ctx(OP)?.map_or(0, |g| g.value());
            if after.0 > end {
                return Err(refuse(format!("the log ends at {end}")));
            }
            let mut changes = txn.open_table(CHANGES).ctx(OP)?;
            let previous = match changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next_back() {
                Some(entry) => {
                    let (key, value) = entry.ctx(OP)?;
                    let number = key.value().1;
                    let (prev_after, _): (u64, Change) = rmp_serde::from_slice(value.value())
                        .map_err(|source| StoreError::DecodeChange { org: org.clone(), number, source })?;
                    Some((number, prev_after))
                }
                None => None,
            };
            if let Some((_, prev_after)) = previous
                && prev_after > after.0
            {
                return Err(refuse(format!("the previous change is after sequence {prev_after}")));
            }
            match (change, module) {
                (Change::InstallPlugin { module: hash, .. }, Some(bytes)) => {
                    if module_hash(bytes) != *hash {
                        return Err(refuse(format!("the module's bytes do not hash to {hash}")));
                    }
                    let mut modules = txn.open_table(MODULES).ctx(OP)?;
                    if modules.get(hash.as_str()).ctx(OP)?.is_none() {
                        modules.insert(hash.as_str(), bytes).ctx(OP)?;
                    }
                }
                (Change::InstallPlugin { module: hash, .. }, None) => {
                    let modules = txn.open_table(MODULES).ctx(OP)?;
                    if modules.get(hash.as_str()).ctx(OP)?.is_none() {
                        return Err(refuse(format!("module {hash} is not stored and was not given")));
                    }
                }
                (_, Some(_)) => return Err(refuse("only a plugin installation carries a module".to_string())),
                (_, None) => {}
            }
            let number = previous.map_or(1, |(n, _)| n + 1);
            let bytes = rmp_serde::to_vec_named(&(after.0, change))
                .map_err(|source| StoreError::Encode { org: org.clone(), source })?;
            changes.insert((o, number), bytes.as_slice()).ctx(OP)?;
            number
        };
        txn.commit().ctx(OP)?;
        Ok(number)
    }

    fn changes_unguarded(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError> {
        const OP: &str = "changes";
        let o = org.as_str();
        let txn = self.db.begin_read().ctx(OP)?;
        let changes = txn.open_table(CHANGES).ctx(OP)?;
        let mut out = Vec::new();
        for entry in changes.range((o, 0)..=(o, u64::MAX)).ctx(OP)? {
            let (key, value) = entry.ctx(OP)?;
            let number = key.value().1;
            let (after, change): (u64, Change) = rmp_serde::from_slice(value.value())
                .map_err(|source| StoreError::DecodeChange { org: org.clone(), number, source })?;
            out.push(LoggedChange { number, after: Seq(after), change });
        }
        Ok(out)
    }

    fn module_unguarded(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "module";
        let txn = self.db.begin_read().ctx(OP)?;
        let modules = txn.open_table(MODULES).ctx(OP)?;
        Ok(modules.get(hash).ctx(OP)?.map(|g| g.value().to_vec()))
    }

    fn put_snapshot_unguarded(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError> {
        let mut stored = Vec::with_capacity(CHECKSUM_LEN + bytes.len());
        stored.extend_from_slice(&snapshot_checksum(seq, bytes).to_le_bytes());
        stored.extend_from_slice(bytes);
        self.put_snapshot_raw(org, seq, &stored)
    }

    fn latest_snapshot_unguarded(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        const OP: &str = "latest_snapshot";
        let o = org.as_str();
        let txn = self.snapshots.begin_read().ctx(OP)?;
        let snapshots = txn.open_table(SNAPSHOTS).ctx(OP)?;
        let Some(entry) = snapshots.range((o, 0)..=(o, u64::MAX)).ctx(OP)?.next_back() else {
            return Ok(None);
        };
        let (key, value) = entry.ctx(OP)?;
        let seq = Seq(key.value().1);
        let stored = value.value();
        let corrupt = || StoreError::CorruptSnapshot { org: org.clone(), seq };
        let (sum, bytes) = stored.split_first_chunk::<CHECKSUM_LEN>().ok_or_else(corrupt)?;
        if u64::from_le_bytes(*sum) != snapshot_checksum(seq, bytes) {
            return Err(corrupt());
        }
        Ok(Some((seq, bytes.to_vec())))
    }
}

impl Store for RedbStore {
    fn append(&self, org: &OrgId, records: &[Record]) -> Result<Seq, StoreError> {
        contained("append", || self.append_unguarded(org, records))
    }

    fn read(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<(Seq, Record)>, StoreError> {
        contained("read", || self.read_unguarded(org, after, limit))
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
    /// Stores `stored` (checksum and bytes, already framed) as `org`'s snapshot at `seq`, keeping
    /// only the newest snapshot.
    fn put_snapshot_raw(&self, org: &OrgId, seq: Seq, stored: &[u8]) -> Result<(), StoreError> {
        const OP: &str = "put_snapshot";
        let o = org.as_str();
        // The log only grows: checked now, still true when this commits.
        let last = self.last_seq_unguarded(org)?;
        if seq > last {
            return Err(StoreError::SnapshotBeyondLog { org: org.clone(), seq, last });
        }
        let txn = self.snapshots.begin_write().ctx(OP)?;
        {
            let mut snapshots = txn.open_table(SNAPSHOTS).ctx(OP)?;
            let mut kept = Vec::new();
            for entry in snapshots.range((o, 0)..=(o, u64::MAX)).ctx(OP)? {
                kept.push(entry.ctx(OP)?.0.value().1);
            }
            if kept.last().is_some_and(|&newest| newest > seq.0) {
                // An older snapshot than the one kept: nothing to do.
                return Ok(());
            }
            snapshots.insert((o, seq.0), stored).ctx(OP)?;
            for old in kept.into_iter().filter(|&s| s != seq.0) {
                snapshots.remove((o, old)).ctx(OP)?;
            }
        }
        txn.commit().ctx(OP)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    use ::redb::ReadableTableMetadata;
    use plaudit_sdk::{Attrs, Moment, Retraction, Stakeholder, Value};

    use super::*;

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

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).expect("valid org id")
    }

    fn moment(id: &str) -> Record {
        let mut attrs = Attrs::new();
        attrs.insert("flag".into(), Value::Bool(true));
        attrs.insert("n".into(), Value::Int(3));
        attrs.insert("x".into(), Value::Float(2.0));
        attrs.insert("t".into(), Value::Text("hi".into()));
        Record::Moment(Moment {
            id: id.into(),
            stakeholder: "ann".into(),
            counterpart: Some("bob".into()),
            kind: "answer".into(),
            channel: "forum".into(),
            at: "2026-03-01T09:30:00Z".into(),
            value: Some(4.5),
            attrs,
        })
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

    fn retract(id: &str) -> Record {
        Record::Retract(Retraction { retract: id.into(), reason: Some("typo".into()) })
    }

    fn open(dir: &TempDir) -> RedbStore {
        RedbStore::open(dir.db()).expect("open store")
    }

    #[test]
    fn appended_records_read_back_in_order_with_consecutive_seqs() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        let first = vec![profile("ann"), moment("m1"), moment("m2")];
        let second = vec![retract("m1"), moment("m3")];

        assert_eq!(store.append(&acme, &first).expect("append"), Seq(3));
        assert_eq!(store.append(&acme, &second).expect("append"), Seq(5));

        let read = store.read(&acme, Seq(0), usize::MAX).expect("read");
        let expected: Vec<(Seq, Record)> =
            first.into_iter().chain(second).enumerate().map(|(i, r)| (Seq(i as u64 + 1), r)).collect();
        assert_eq!(read, expected);
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(5));
    }

    #[test]
    fn empty_org_has_no_records_no_seq_and_no_snapshot() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(0));
        assert!(store.read(&acme, Seq(0), 10).expect("read").is_empty());
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), None);
        assert_eq!(store.append(&acme, &[]).expect("append"), Seq(0));
    }

    #[test]
    fn the_store_appends_what_it_is_given_deduplication_is_the_log_steps() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        // The same moment id twice, profiles and retractions alike: each gets a sequence.
        let records = [moment("x"), moment("x"), profile("x"), profile("x"), retract("x")];
        assert_eq!(store.append(&acme, &records).expect("append"), Seq(5));
        assert_eq!(store.read(&acme, Seq(0), 100).expect("read").len(), 5);
    }

    #[test]
    fn opening_a_file_of_an_earlier_build_drops_its_moment_id_index() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            store.append(&acme, &[moment("a")]).expect("append");
            let txn = store.db.begin_write().expect("write");
            txn.open_table(OLD_MOMENT_IDS).expect("table").insert(("acme", "a"), 1).expect("insert");
            txn.commit().expect("commit");
        }
        let store = open(&dir);
        let txn = store.db.begin_read().expect("read");
        assert!(txn.open_table(OLD_MOMENT_IDS).is_err(), "the index is gone");
        assert_eq!(store.read(&acme, Seq(0), 10).expect("the log is kept").len(), 1);
    }

    #[test]
    fn a_file_of_an_earlier_build_reads_its_records_then_the_segments_appended_after_them() {
        let dir = TempDir::new();
        let acme = org("acme");
        let old = [moment("a"), profile("ann"), moment("b")];
        {
            let store = open(&dir);
            // What an earlier build wrote: one entry a record, and its last seq.
            let txn = store.db.begin_write().expect("write");
            {
                let mut log = txn.open_table(OLD_LOG).expect("table");
                let mut buf = Vec::new();
                for (i, record) in old.iter().enumerate() {
                    buf.clear();
                    encode_record_into(&acme, record, &mut buf).expect("encodes");
                    log.insert(("acme", i as u64 + 1), buf.as_slice()).expect("insert");
                }
                txn.open_table(LAST_SEQ).expect("table").insert("acme", 3).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let store = open(&dir);
        assert_eq!(store.append(&acme, &[moment("c"), retract("a")]).expect("append"), Seq(5));
        assert_eq!(store.append(&acme, &[moment("d")]).expect("append"), Seq(6));
        let all = store.read(&acme, Seq(0), 100).expect("read");
        let expected: Vec<Record> = old.into_iter().chain([moment("c"), retract("a"), moment("d")]).collect();
        assert_eq!(all.iter().map(|(s, _)| s.0).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(all.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), expected);
        // Pages across the two tables and from inside a segment.
        for (after, limit, seqs) in [(1, 3, vec![2, 3, 4]), (4, 1, vec![5]), (4, 10, vec![5, 6]), (6, 10, vec![])] {
            let page = store.read(&acme, Seq(after), limit).expect("read");
            assert_eq!(page.iter().map(|(s, _)| s.0).collect::<Vec<_>>(), seqs, "after {after}, limit {limit}");
        }
    }

    #[test]
    fn snapshots_of_an_earlier_build_kept_with_the_log_move_to_their_own_file() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            store.append(&acme, &[moment("a"), moment("b")]).expect("append");
            // Where an earlier build kept it: in the log's file.
            let mut stored = snapshot_checksum(Seq(2), b"a world").to_le_bytes().to_vec();
            stored.extend_from_slice(b"a world");
            let txn = store.db.begin_write().expect("write");
            txn.open_table(SNAPSHOTS).expect("table").insert(("acme", 2), stored.as_slice()).expect("insert");
            txn.commit().expect("commit");
        }
        let store = open(&dir);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(2), b"a world".to_vec())));
        let txn = store.db.begin_read().expect("read");
        assert!(txn.open_table(SNAPSHOTS).is_err(), "gone from the log's file");
        drop(txn);
        drop(store);
        let store = open(&dir);
        assert_eq!(store.latest_snapshot(&acme).expect("kept"), Some((Seq(2), b"a world".to_vec())));
    }

    #[test]
    fn storing_a_snapshot_does_not_hold_the_log() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a")]).expect("append");
        // A snapshot's write transaction open: the log still commits.
        let writing = store.snapshots.begin_write().expect("snapshot write");
        assert_eq!(store.append(&acme, &[moment("b")]).expect("append meanwhile"), Seq(2));
        drop(writing);
    }

    #[test]
    fn organisations_are_isolated() {
        let dir = TempDir::new();
        let store = open(&dir);
        // "acme" is a prefix of "acme-2": keys must not run into each other.
        let (a, b) = (org("acme"), org("acme-2"));
        assert_eq!(store.append(&a, &[moment("same"), moment("only-a")]).expect("append"), Seq(2));
        assert_eq!(store.append(&b, &[moment("same")]).expect("append"), Seq(1));

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
            store.append(&acme, &[moment("a"), moment("b")]).expect("append");
            store.append(&acme, &[retract("a")]).expect("append");
        }
        let store = open(&dir);
        assert_eq!(store.last_seq(&acme).expect("last_seq"), Seq(3));
        assert_eq!(store.read(&acme, Seq(2), 10).expect("read"), vec![(Seq(3), retract("a"))]);
        assert_eq!(store.append(&acme, &[moment("c")]).expect("append"), Seq(4));
    }

    #[test]
    fn read_with_after_and_limit_pages_through_the_log() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        let records: Vec<Record> = (0..10).map(|i| moment(&format!("m{i}"))).collect();
        store.append(&acme, &records).expect("append");

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
            store.append(&acme, &records).expect("append");
            store.put_snapshot(&acme, Seq(2), b"at two").expect("snapshot");
            assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(2), b"at two".to_vec())));
            store.put_snapshot(&acme, Seq(5), b"").expect("snapshot");
            // Older than the one kept: ignored.
            store.put_snapshot(&acme, Seq(3), b"at three").expect("snapshot");
        }
        let store = open(&dir);
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), Some((Seq(5), Vec::new())));
        let txn = store.snapshots.begin_read().expect("read txn");
        let table = txn.open_table(SNAPSHOTS).expect("table");
        assert_eq!(table.len().expect("len"), 1);
    }

    #[test]
    fn snapshot_beyond_the_log_is_refused() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a")]).expect("append");
        let err = store.put_snapshot(&acme, Seq(2), b"future").expect_err("beyond the log");
        assert!(matches!(err, StoreError::SnapshotBeyondLog { seq: Seq(2), last: Seq(1), .. }), "{err}");
        assert_eq!(store.latest_snapshot(&acme).expect("snapshot"), None);
    }

    #[test]
    fn corrupted_snapshot_is_refused_with_corrupt_snapshot() {
        let dir = TempDir::new();
        let store = open(&dir);
        let acme = org("acme");
        store.append(&acme, &[moment("a"), moment("b")]).expect("append");
        store.put_snapshot(&acme, Seq(2), b"a world").expect("snapshot");

        // Flip one payload byte in the stored value with a raw write.
        let mut stored = {
            let txn = store.snapshots.begin_read().expect("read txn");
            let table = txn.open_table(SNAPSHOTS).expect("table");
            table.get(("acme", 2)).expect("get").expect("stored snapshot").value().to_vec()
        };
        stored[CHECKSUM_LEN] ^= 0x01;
        store.put_snapshot_raw(&acme, Seq(2), &stored).expect("raw write");

        let err = store.latest_snapshot(&acme).expect_err("corrupt");
        assert!(matches!(&err, StoreError::CorruptSnapshot { org, seq: Seq(2) } if org == &acme), "{err}");
        assert!(err.to_string().contains("acme"), "{err}");

        // Too short to hold a checksum: corrupt too.
        store.put_snapshot_raw(&acme, Seq(2), &[1, 2, 3]).expect("raw write");
        assert!(matches!(store.latest_snapshot(&acme), Err(StoreError::CorruptSnapshot { seq: Seq(2), .. })));
    }

    /// A torn or damaged file (a crash mid-write, a disk losing its tail) either opens with a
    /// prefix of what was committed, or is refused with an error naming the file: never
    /// different records.
    #[test]
    fn torn_or_damaged_tail_is_recovered_to_a_prefix_or_refused_never_silently_wrong() {
        let acme = org("acme");
        let written: Vec<Record> = (0..300).map(|i| moment(&format!("m{i}"))).collect();
        let pristine = {
            let dir = TempDir::new();
            let store = open(&dir);
            for chunk in written.chunks(10) {
                store.append(&acme, chunk).expect("append");
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
        assert_eq!(store.append(&org("acme"), &[moment("a")]).expect("append"), Seq(1));
    }

    fn rules(text: &str) -> Change {
        Change::Rules { text: text.to_string(), format: crate::ruleset::Format::Toml }
    }

    #[test]
    fn changes_are_numbered_kept_in_order_and_survive_reopen() {
        let dir = TempDir::new();
        let acme = org("acme");
        {
            let store = open(&dir);
            assert_eq!(store.append_change(&acme, Seq(0), &rules("v1"), None).expect("v1"), 1);
            store.append(&acme, &[moment("a"), moment("b")]).expect("append");
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
        store.append(&acme, &[moment("a"), moment("b")]).expect("append");
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
