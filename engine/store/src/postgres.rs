//! [`PgStore`]: the [`Store`] on PostgreSQL (15 or later), for a store shared beyond one data
//! directory. It holds the same bytes as the embedded store ([`crate::format`]) in tables that
//! mirror its tables (`migrations/0001_initial.sql` says what each holds).
//!
//! **Owns** its schema (created and versioned here: `migrations/*.sql`, applied in order at
//! open in one transaction, recorded in `schema_version`; a database of a newer version is
//! refused, saying so), its pool of connections and their runtime. **Must not touch** any table
//! it did not create, nor decide what is accepted: like [`crate::RedbStore`] it appends what it
//! is given.
//!
//! # Client
//!
//! `tokio-postgres` on a small multi-threaded runtime of the store's own, which drives the
//! connections; a call blocks its own thread on the client's future with a minimal executor
//! ([`block_on`]). Not the synchronous `postgres` crate: it blocks on a runtime of its own with
//! tokio's `block_on`, which panics when called from an async runtime's thread, and nothing in
//! the trait forbids a caller from being on one (the server calls the store from blocking
//! threads, but a stray call from a handler must cost latency, not a panic). Connections are
//! pooled ([`Pool`]): at most [`MAX_CONNECTIONS`], opened on demand, a broken one dropped.
//!
//! # Durability and concurrency
//!
//! Every connection sets `synchronous_commit = on` (checked at open): a commit returns once
//! PostgreSQL has flushed it to its WAL, so an append is acknowledged only once durable (given
//! the server runs with `fsync` on). An append is one statement, hence one transaction: it
//! advances the organisation's `last_seq` row (an upsert, which holds the row's lock until the
//! commit, as `SELECT ... FOR UPDATE` would, and also for an organisation's first append, which
//! has no row to lock yet), stores the segment at the sequences it reserved and counts its
//! bytes. Writes that depend on the log's end (changes, erasures, creation) take the same row
//! lock first ([`LOCK_ORG`]), so concurrent callers never interleave.
//!
//! # Erasure
//!
//! [`Store::erase`] rewrites the segments naming the subject, appends the
//! [`Change::Erased`] and drops the organisation's snapshot in one transaction, then runs
//! `VACUUM` on the tables that held the old rows (outside a transaction, as PostgreSQL
//! requires). On PostgreSQL "no byte" means: no row, live or dead, holds what was rewritten once
//! this returns; the freed space of the pages, the WAL not yet recycled, replicas' and backups'
//! copies may still hold it until overwritten (docs/erasure.md). An erasure committed whose
//! `VACUUM` did not run (a crash) is marked in `erasing` and completed by the next open.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake};

use plaudit_core::ids::{OrgId, Seq};
use plaudit_sdk::Record;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use crate::admit::{ModuleNeed, admit_change, not_stored};
use crate::format::{check_version, decode_change, decode_segment, encode_change, encode_segment, snapshot_checksum};
use crate::{Change, Erasure, Lease, Leases, LoggedChange, NodeSeen, OrgTable, Segment, Store, StoreError};

/// The schema's migrations, in order: migration `i` (from 0) makes schema version `i + 1`.
const MIGRATIONS: [&str; 2] =
    [include_str!("../migrations/0001_initial.sql"), include_str!("../migrations/0002_cluster.sql")];

/// The most connections the store opens to PostgreSQL at once; a call waits for one beyond.
pub const MAX_CONNECTIONS: usize = 16;

/// Segments read in one query while reading the log.
const SEGMENTS_A_QUERY: i64 = 256;

/// Takes organisation `$1`'s write lock (its `last_seq` row, created at 0 if missing) until the
/// transaction ends, and returns its log's end.
const LOCK_ORG: &str = "INSERT INTO last_seq AS l (org, seq) VALUES ($1, 0) \
     ON CONFLICT (org) DO UPDATE SET seq = l.seq RETURNING l.seq";

/// A segment as stored: its first sequence, when it was received, its bytes.
type StoredSegment = (u64, Option<i64>, Vec<u8>);

/// The key of the advisory lock that serializes migrations between processes opening at once.
const MIGRATION_LOCK: i64 = 0x706c_6175_6469_7401;

/// The PostgreSQL store: one database (or schema, by the connection's `search_path`) holding
/// every organisation.
pub struct PgStore {
    /// The URL, its password hidden, for messages.
    url: String,
    pool: Pool,
    /// Drives the connections; shut down (without waiting) when the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Set when opened as a node of a cluster: every write to a log is fenced.
    node: Option<Node>,
}

/// This process as a node of a cluster: its name, its incarnation, and the leases it holds
/// (organisation -> epoch), which its writes are fenced by.
#[derive(Debug)]
struct Node {
    name: String,
    incarnation: i64,
    ttl: std::time::Duration,
    fences: std::sync::RwLock<std::collections::HashMap<String, i64>>,
}

impl Node {
    fn fences(&self) -> std::sync::RwLockReadGuard<'_, std::collections::HashMap<String, i64>> {
        self.fences.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn fences_mut(&self) -> std::sync::RwLockWriteGuard<'_, std::collections::HashMap<String, i64>> {
        self.fences.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a client error says the database cannot be reached now (connection refused or
/// lost, the server shutting down or starting up) rather than that the operation is wrong.
fn unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let Some(e) = error.downcast_ref::<tokio_postgres::Error>() else { return false };
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        // Class 08: connection exceptions; 57P01..57P03: shutting down, crashed, starting up.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    // No code: unreachable if the connection's IO failed (refused, reset).
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The connections first (each ends its task), then the runtime, without blocking:
        // dropping a runtime from an async context would panic.
        self.pool.state().idle.clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether `spec` (a store setting) names a PostgreSQL database.
pub fn is_postgres_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// `url` with its password, if any, replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Maps a backend error to [`StoreError::Backend`], naming the store operation.
trait Ctx<T> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Ctx<T> for Result<T, E> {
    fn ctx(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| {
            if unreachable(&e) {
                StoreError::Unavailable { op, source: Box::new(e) }
            } else {
                StoreError::Backend { op, source: Box::new(e) }
            }
        })
    }
}

/// A value of the store's that PostgreSQL keeps as a `bigint`.
fn big(op: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend { op, source: format!("{value} is beyond a bigint").into() })
}

/// A `bigint` read back as the store's value (never negative as written).
fn unbig(op: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Backend { op, source: format!("the database holds {value} where a count is").into() })
}

/// The table that keeps `table`'s records (a fixed name: never from input).
fn org_table(table: OrgTable) -> &'static str {
    match table {
        OrgTable::ScopedKeys => "scoped_keys",
        OrgTable::Settings => "org_settings",
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// without TLS: a loopback or private network), applies the migrations it lacks, refuses
    /// a database of a newer schema or store format, checks that commits are synchronous, and
    /// completes an erasure a crash interrupted.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redacted(url);
        let path = std::path::PathBuf::from(&shown);
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open { path: path.clone(), source: e };
        let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| open_err(Box::new(e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plaudit-postgres")
            .enable_all()
            .build()
            .map_err(|e| open_err(Box::new(e)))?;
        let store = PgStore {
            url: shown.clone(),
            pool: Pool::new(config, runtime.handle().clone()),
            runtime: Some(runtime),
            node: None,
        };
        store.migrate().map_err(|e| match e {
            StoreError::Backend { source, .. } => open_err(source),
            other => other,
        })?;
        store.finish_erasures().map_err(|e| open_err(Box::new(e)))?;
        Ok(store)
    }

    /// [`PgStore::open`], as node `name` of a cluster whose leases last `ttl`: every write to an
    /// organisation's log is then fenced by the organisation's lease ([`crate::lease`]), which
    /// this process must hold ([`Store::leases`]); creating an organisation takes its lease.
    pub fn open_node(url: &str, name: &str, ttl: std::time::Duration) -> Result<PgStore, StoreError> {
        let mut store = PgStore::open(url)?;
        // A process's own number, so that a node restarted under its name is a new holder.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let incarnation =
            (now.as_nanos() as i64).wrapping_mul(31).wrapping_add(i64::from(std::process::id())) & i64::MAX;
        store.node = Some(Node { name: name.to_string(), incarnation, ttl, fences: Default::default() });
        Ok(store)
    }

    /// The epoch `org`'s writes are fenced by: `None` for a store of one server; for a node,
    /// the epoch of the lease it holds, or [`StoreError::Fenced`] if it holds none.
    fn fence(&self, org: &OrgId) -> Result<Option<i64>, StoreError> {
        match &self.node {
            None => Ok(None),
            Some(node) => match node.fences().get(org.as_str()) {
                Some(epoch) => Ok(Some(*epoch)),
                None => Err(StoreError::Fenced { org: org.clone() }),
            },
        }
    }

    /// In `client`'s transaction: checks that this process still holds `org`'s lease at
    /// `epoch` (if fenced), and holds the lease row until the transaction ends, so that no
    /// other node takes it before this write commits.
    async fn check_fence(
        &self,
        client: &impl GenericClient,
        org: &OrgId,
        epoch: Option<i64>,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let (Some(epoch), Some(node)) = (epoch, &self.node) else { return Ok(()) };
        let held = client
            .query_opt(
                "SELECT 1 FROM leases WHERE org = $1 AND node = $2 AND incarnation = $3 AND epoch = $4 FOR KEY SHARE",
                &[&org.as_str(), &node.name, &node.incarnation, &epoch],
            )
            .await
            .ctx(op)?;
        match held {
            Some(_) => Ok(()),
            None => Err(self.fenced(org)),
        }
    }

    /// [`StoreError::Fenced`] for `org`, which this process no longer holds: forgotten.
    fn fenced(&self, org: &OrgId) -> StoreError {
        if let Some(node) = &self.node {
            node.fences_mut().remove(org.as_str());
        }
        StoreError::Fenced { org: org.clone() }
    }

    /// Applies the migrations the database lacks, in one transaction, under a lock that
    /// serializes processes opening at once; checks the versions and `synchronous_commit`.
    fn migrate(&self) -> Result<(), StoreError> {
        const OP: &str = "open";
        let refused = |message: String| StoreError::Version { path: self.url.clone().into(), message };
        let mut conn = self.pool.get()?;
        block_on(async {
            let sync: String = conn.query_one("SHOW synchronous_commit", &[]).await.ctx(OP)?.get(0);
            if sync != "on" {
                return Err(StoreError::Backend {
                    op: OP,
                    source: format!("synchronous_commit is {sync:?}; the store needs \"on\"").into(),
                });
            }
            let txn = conn.transaction().await.ctx(OP)?;
            txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.ctx(OP)?;
            txn.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version \
                 (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .ctx(OP)?;
            let found: i32 =
                txn.query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[]).await.ctx(OP)?.get(0);
            let known = MIGRATIONS.len() as i32;
            if found > known {
                return Err(refused(format!(
                    "it was written by a newer Plaudit (schema version {found}; this build knows up to {known}): run that version, or a newer one"
                )));
            }
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
                txn.batch_execute(migration).await.ctx(OP)?;
                txn.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(i as i32 + 1)]).await.ctx(OP)?;
            }
            let format: Option<i64> =
                txn.query_opt("SELECT value FROM meta WHERE name = 'format'", &[]).await.ctx(OP)?.map(|row| row.get(0));
            let format = format.ok_or_else(|| refused("it records no store format".to_string()))?;
            check_version(unbig(OP, format)?).map_err(refused)?;
            txn.commit().await.ctx(OP)
        })
    }

    /// Completes the erasures committed but not vacuumed: `VACUUM`s the tables that held what
    /// they rewrote, then forgets them.
    fn finish_erasures(&self) -> Result<(), StoreError> {
        const OP: &str = "erase";
        let conn = self.pool.get()?;
        block_on(async {
            let pending: Vec<String> =
                conn.query("SELECT org FROM erasing", &[]).await.ctx(OP)?.iter().map(|r| r.get(0)).collect();
            if pending.is_empty() {
                return Ok(());
            }
            // Outside a transaction (VACUUM cannot run in one): the dead rows of the segments
            // rewritten and of the snapshots dropped are removed, their space freed.
            conn.batch_execute("VACUUM segments, snapshots, changes, org_log_bytes").await.ctx(OP)?;
            conn.execute("DELETE FROM erasing WHERE org = ANY($1)", &[&pending]).await.ctx(OP)?;
            Ok(())
        })
    }

    /// Whether `org` has a change (exists), in `client`'s transaction.
    async fn exists(client: &impl GenericClient, org: &str, op: &'static str) -> Result<bool, StoreError> {
        Ok(client.query_opt("SELECT 1 FROM changes WHERE org = $1 LIMIT 1", &[&org]).await.ctx(op)?.is_some())
    }

    /// Adds `bytes` (may be negative) to what `org`'s log holds, in `client`'s transaction.
    async fn add_log_bytes(
        client: &impl GenericClient,
        org: &str,
        bytes: i64,
        op: &'static str,
    ) -> Result<(), StoreError> {
        client
            .execute(
                "INSERT INTO org_log_bytes AS c (org, bytes) VALUES ($1, GREATEST($2::bigint, 0)) \
                 ON CONFLICT (org) DO UPDATE SET bytes = GREATEST(c.bytes + $2::bigint, 0)",
                &[&org, &bytes],
            )
            .await
            .ctx(op)?;
        Ok(())
    }

    /// Up to `count` segments of `org` beginning from `from` to `until`, in order.
    fn read_page(
        &self,
        org: &OrgId,
        from: i64,
        until: i64,
        count: i64,
        op: &'static str,
    ) -> Result<Vec<StoredSegment>, StoreError> {
        let conn = self.pool.get()?;
        let rows = block_on(conn.query(
            "SELECT first_seq, received, bytes FROM segments WHERE org = $1 AND first_seq >= $2 \
             AND first_seq <= $4 ORDER BY first_seq LIMIT $3",
            &[&org.as_str(), &from, &count, &until],
        ))
        .ctx(op)?;
        rows.iter().map(|r| Ok((unbig(op, r.get(0))?, r.get(1), r.get(2)))).collect()
    }
}

impl Store for PgStore {
    fn leases(&self) -> Option<&dyn Leases> {
        self.node.as_ref().map(|_| self as &dyn Leases)
    }

    fn append(&self, org: &OrgId, records: &[Record], received: i64) -> Result<Seq, StoreError> {
        const OP: &str = "append";
        if records.is_empty() {
            return self.last_seq(org);
        }
        let epoch = self.fence(org)?;
        let segment = encode_segment(org, records)?;
        let n = big(OP, records.len() as u64)?;
        let conn = self.pool.get()?;
        // One statement, one transaction: the log's end advanced (its row locked until the
        // commit), the segment stored at the sequences reserved, its bytes counted.
        // Two statements rather than one with the fence made optional: folded into one
        // (`$5 IS NULL OR EXISTS (fence)`), a server of one node's batches measured 1-20 %
        // slower in an interleaved A/B.
        let row = match (epoch, &self.node) {
            (Some(epoch), Some(node)) => {
                // Fenced: all of it only if this process holds the lease at its epoch, whose
                // row stays locked (KEY SHARE: renewals go on, a taker waits) until the commit.
                let row = block_on(conn.query_opt(
                    "WITH fence AS ( \
                         SELECT 1 FROM leases WHERE org = $1 AND node = $5 AND incarnation = $6 AND epoch = $7 \
                         FOR KEY SHARE \
                     ), next AS ( \
                         INSERT INTO last_seq AS l (org, seq) SELECT $1, $2 FROM fence \
                         ON CONFLICT (org) DO UPDATE SET seq = l.seq + EXCLUDED.seq RETURNING l.seq \
                     ), stored AS ( \
                         INSERT INTO segments (org, first_seq, received, bytes) \
                         SELECT $1, next.seq - $2 + 1, $3, $4 FROM next \
                     ), counted AS ( \
                         INSERT INTO org_log_bytes AS c (org, bytes) SELECT $1, octet_length($4) FROM next \
                         ON CONFLICT (org) DO UPDATE SET bytes = c.bytes + EXCLUDED.bytes \
                     ) SELECT seq FROM next",
                    &[&org.as_str(), &n, &received, &segment, &node.name, &node.incarnation, &epoch],
                ))
                .ctx(OP)?;
                row.ok_or_else(|| self.fenced(org))?
            }
            _ => block_on(conn.query_one(
                "WITH next AS ( \
                     INSERT INTO last_seq AS l (org, seq) VALUES ($1, $2) \
                     ON CONFLICT (org) DO UPDATE SET seq = l.seq + EXCLUDED.seq RETURNING l.seq \
                 ), stored AS ( \
                     INSERT INTO segments (org, first_seq, received, bytes) \
                     SELECT $1, next.seq - $2 + 1, $3, $4 FROM next \
                 ), counted AS ( \
                     INSERT INTO org_log_bytes AS c (org, bytes) VALUES ($1, octet_length($4)) \
                     ON CONFLICT (org) DO UPDATE SET bytes = c.bytes + EXCLUDED.bytes \
                 ) SELECT seq FROM next",
                &[&org.as_str(), &n, &received, &segment],
            ))
            .ctx(OP)?,
        };
        Ok(Seq(unbig(OP, row.get(0))?))
    }

    fn read_segments(&self, org: &OrgId, after: Seq, limit: usize) -> Result<Vec<Segment>, StoreError> {
        const OP: &str = "read";
        let mut out: Vec<Segment> = Vec::new();
        // Beyond any sequence a bigint holds: the log ends before.
        let Ok(next) = i64::try_from(after.0.saturating_add(1)) else { return Ok(out) };
        if after.0 == u64::MAX {
            return Ok(out);
        }
        let limit = limit.max(1);
        let first: Option<i64> = {
            let conn = self.pool.get()?;
            block_on(conn.query_one(
                "SELECT max(first_seq) FROM segments WHERE org = $1 AND first_seq <= $2",
                &[&org.as_str(), &next],
            ))
            .ctx(OP)?
            .get(0)
        };
        let mut from = first.unwrap_or(0);
        // The segments holding records `after + 1 ..= after + limit` all begin at or before
        // `after + limit`: no query reads beyond them (a replay asks for a few thousand records
        // at a time, far fewer than a page of large segments holds).
        let until = i64::try_from(after.0.saturating_add(limit as u64)).unwrap_or(i64::MAX);
        let mut held = 0;
        loop {
            let page = self.read_page(org, from, until, SEGMENTS_A_QUERY, OP)?;
            let full = page.len() as i64 == SEGMENTS_A_QUERY;
            for (start, received, bytes) in page {
                let records = decode_segment(org, start, after.0, &bytes)?;
                held += records.len();
                if !records.is_empty() {
                    out.push(Segment { first: Seq(start.max(after.0 + 1)), received, records });
                }
                if held >= limit {
                    return Ok(out);
                }
                from = big(OP, start)? + 1;
            }
            if !full {
                return Ok(out);
            }
        }
    }

    fn last_seq(&self, org: &OrgId) -> Result<Seq, StoreError> {
        const OP: &str = "last_seq";
        let conn = self.pool.get()?;
        let row = block_on(conn.query_opt("SELECT seq FROM last_seq WHERE org = $1", &[&org.as_str()])).ctx(OP)?;
        Ok(Seq(row.map_or(Ok(0), |r| unbig(OP, r.get(0)))?))
    }

    fn append_change(
        &self,
        org: &OrgId,
        after: Seq,
        change: &Change,
        module: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "append_change";
        let o = org.as_str();
        let refuse = |reason: String| StoreError::ChangeOutOfOrder { org: org.clone(), after, reason };
        let epoch = self.fence(org)?;
        let bytes = encode_change(org, after, change)?;
        let mut conn = self.pool.get()?;
        block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            self.check_fence(&txn, org, epoch, OP).await?;
            let end = unbig(OP, txn.query_one(LOCK_ORG, &[&o]).await.ctx(OP)?.get(0))?;
            let previous = txn
                .query_opt("SELECT number, bytes FROM changes WHERE org = $1 ORDER BY number DESC LIMIT 1", &[&o])
                .await
                .ctx(OP)?;
            let previous = match previous {
                Some(row) => {
                    let number = unbig(OP, row.get(0))?;
                    let (prev_after, _) = decode_change(org, number, row.get(1))?;
                    Some((number, prev_after.0))
                }
                None => None,
            };
            match admit_change(end, previous.map(|p| p.1), after, change, module).map_err(refuse)? {
                ModuleNeed::Store { hash, bytes } => {
                    txn.execute(
                        "INSERT INTO modules (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                        &[&hash, &bytes],
                    )
                    .await
                    .ctx(OP)?;
                    Self::add_log_bytes(&txn, o, big(OP, bytes.len() as u64)?, OP).await?;
                }
                ModuleNeed::Stored(hash) => {
                    if txn.query_opt("SELECT 1 FROM modules WHERE hash = $1", &[&hash]).await.ctx(OP)?.is_none() {
                        return Err(refuse(not_stored(hash)));
                    }
                }
                ModuleNeed::None => {}
            }
            let number = previous.map_or(1, |(n, _)| n + 1);
            txn.execute(
                "INSERT INTO changes (org, number, bytes) VALUES ($1, $2, $3)",
                &[&o, &big(OP, number)?, &bytes],
            )
            .await
            .ctx(OP)?;
            Self::add_log_bytes(&txn, o, big(OP, bytes.len() as u64)?, OP).await?;
            txn.commit().await.ctx(OP)?;
            Ok(number)
        })
    }

    fn changes(&self, org: &OrgId) -> Result<Vec<LoggedChange>, StoreError> {
        const OP: &str = "changes";
        let conn = self.pool.get()?;
        let rows =
            block_on(conn.query("SELECT number, bytes FROM changes WHERE org = $1 ORDER BY number", &[&org.as_str()]))
                .ctx(OP)?;
        rows.iter()
            .map(|row| {
                let number = unbig(OP, row.get(0))?;
                let (after, change) = decode_change(org, number, row.get(1))?;
                Ok(LoggedChange { number, after, change })
            })
            .collect()
    }

    fn module(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "module";
        let conn = self.pool.get()?;
        let row = block_on(conn.query_opt("SELECT bytes FROM modules WHERE hash = $1", &[&hash])).ctx(OP)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put_snapshot(&self, org: &OrgId, seq: Seq, bytes: &[u8]) -> Result<(), StoreError> {
        const OP: &str = "put_snapshot";
        // The log only grows: checked now, still true when this commits.
        let last = self.last_seq(org)?;
        if seq > last {
            return Err(StoreError::SnapshotBeyondLog { org: org.clone(), seq, last });
        }
        self.put_snapshot_checked(org, seq, snapshot_checksum(seq, bytes), bytes).map_err(|e| match e {
            StoreError::Backend { source, .. } => StoreError::Backend { op: OP, source },
            other => other,
        })
    }

    fn stored_bytes(&self, org: &OrgId) -> Result<u64, StoreError> {
        const OP: &str = "stored_bytes";
        let conn = self.pool.get()?;
        let row = block_on(conn.query_one(
            "SELECT COALESCE((SELECT bytes FROM org_log_bytes WHERE org = $1), 0) \
                  + COALESCE((SELECT octet_length(bytes) FROM snapshots WHERE org = $1), 0)",
            &[&org.as_str()],
        ))
        .ctx(OP)?;
        let bytes: i64 = row.try_get::<_, i64>(0).or_else(|_| row.try_get::<_, i32>(0).map(i64::from)).ctx(OP)?;
        unbig(OP, bytes)
    }

    fn latest_snapshot(&self, org: &OrgId) -> Result<Option<(Seq, Vec<u8>)>, StoreError> {
        const OP: &str = "latest_snapshot";
        let conn = self.pool.get()?;
        let row =
            block_on(conn.query_opt("SELECT seq, checksum, bytes FROM snapshots WHERE org = $1", &[&org.as_str()]))
                .ctx(OP)?;
        let Some(row) = row else { return Ok(None) };
        let seq = Seq(unbig(OP, row.get(0))?);
        let checksum = row.get::<_, i64>(1) as u64;
        let bytes: Vec<u8> = row.get(2);
        if checksum != snapshot_checksum(seq, &bytes) {
            return Err(StoreError::CorruptSnapshot { org: org.clone(), seq });
        }
        Ok(Some((seq, bytes)))
    }

    fn create_org(&self, org: &OrgId, key_hash: Option<[u8; 32]>, first: &Change) -> Result<(), StoreError> {
        const OP: &str = "create_org";
        let o = org.as_str();
        if matches!(first, Change::InstallPlugin { .. }) {
            return Err(StoreError::ChangeOutOfOrder {
                org: org.clone(),
                after: Seq(0),
                reason: "an organisation begins with a rule set".to_string(),
            });
        }
        let bytes = encode_change(org, Seq(0), first)?;
        let mut conn = self.pool.get()?;
        block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            let end: i64 = txn.query_one(LOCK_ORG, &[&o]).await.ctx(OP)?.get(0);
            if end > 0 || Self::exists(&txn, o, OP).await? {
                return Err(StoreError::OrgExists(org.clone()));
            }
            // A node creating an organisation owns it: its lease taken in the same commit.
            let epoch = match &self.node {
                Some(node) => Some(
                    txn.query_one(
                        "INSERT INTO leases AS l (org, node, incarnation, epoch, expires) \
                         VALUES ($1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond') \
                         ON CONFLICT (org) DO UPDATE SET node = EXCLUDED.node, incarnation = EXCLUDED.incarnation, \
                         epoch = l.epoch + 1, expires = EXCLUDED.expires RETURNING epoch",
                        &[&o, &node.name, &node.incarnation, &(node.ttl.as_millis() as f64)],
                    )
                    .await
                    .ctx(OP)?
                    .get::<_, i64>(0),
                ),
                None => None,
            };
            txn.execute("INSERT INTO changes (org, number, bytes) VALUES ($1, 1, $2)", &[&o, &bytes]).await.ctx(OP)?;
            txn.execute(
                "INSERT INTO org_log_bytes (org, bytes) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET bytes = $2",
                &[&o, &big(OP, bytes.len() as u64)?],
            )
            .await
            .ctx(OP)?;
            if let Some(key) = key_hash {
                txn.execute(
                    "INSERT INTO org_keys (org, key_hash) VALUES ($1, $2) \
                     ON CONFLICT (org) DO UPDATE SET key_hash = $2",
                    &[&o, &&key[..]],
                )
                .await
                .ctx(OP)?;
            }
            txn.commit().await.ctx(OP)?;
            if let (Some(node), Some(epoch)) = (&self.node, epoch) {
                node.fences_mut().insert(o.to_string(), epoch);
            }
            Ok(())
        })
    }

    fn org_key(&self, org: &OrgId) -> Result<Option<[u8; 32]>, StoreError> {
        const OP: &str = "org_key";
        let conn = self.pool.get()?;
        let row = block_on(conn.query_opt("SELECT key_hash FROM org_keys WHERE org = $1", &[&org.as_str()])).ctx(OP)?;
        Ok(row.and_then(|r| <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok()))
    }

    fn set_org_key(&self, org: &OrgId, key_hash: [u8; 32]) -> Result<(), StoreError> {
        const OP: &str = "set_org_key";
        let o = org.as_str();
        let mut conn = self.pool.get()?;
        block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            if !Self::exists(&txn, o, OP).await? {
                return Err(StoreError::NoSuchOrg(org.clone()));
            }
            txn.execute(
                "INSERT INTO org_keys (org, key_hash) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET key_hash = $2",
                &[&o, &&key_hash[..]],
            )
            .await
            .ctx(OP)?;
            txn.commit().await.ctx(OP)
        })
    }

    fn organisations(&self) -> Result<Vec<OrgId>, StoreError> {
        const OP: &str = "organisations";
        let conn = self.pool.get()?;
        let rows = block_on(conn.query("SELECT DISTINCT org FROM changes ORDER BY org", &[])).ctx(OP)?;
        // A name that is no organisation id was never written by Plaudit: skipped.
        let mut out: Vec<OrgId> = rows.iter().filter_map(|r: &Row| OrgId::parse(r.get::<_, &str>(0)).ok()).collect();
        out.sort();
        Ok(out)
    }

    fn org_records(&self, org: &OrgId, table: OrgTable) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        const OP: &str = "org_records";
        let conn = self.pool.get()?;
        let sql = format!("SELECT name, bytes FROM {} WHERE org = $1 ORDER BY name", org_table(table));
        let rows = block_on(conn.query(&sql, &[&org.as_str()])).ctx(OP)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn erase(&self, org: &OrgId, subject: &str, pseudonym: &str) -> Result<Erasure, StoreError> {
        const OP: &str = "erase";
        let o = org.as_str();
        let epoch = self.fence(org)?;
        let mut conn = self.pool.get()?;
        let erasure = block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            self.check_fence(&txn, org, epoch, OP).await?;
            // The organisation's writes wait until this commits: no segment is appended
            // between the rewrite and the change.
            let end = unbig(OP, txn.query_one(LOCK_ORG, &[&o]).await.ctx(OP)?.get(0))?;
            let mut erasure = Erasure::default();
            let mut delta: i64 = 0;
            let mut rewritten: Vec<(i64, Vec<u8>)> = Vec::new();
            // Their profiles are numbered in log order, as the embedded store numbers them.
            let mut profiles = 0;
            let statement =
                txn.prepare("SELECT first_seq, bytes FROM segments WHERE org = $1 ORDER BY first_seq").await.ctx(OP)?;
            let params: [&(dyn ToSql + Sync); 1] = [&o];
            let portal = txn.bind(&statement, &params).await.ctx(OP)?;
            loop {
                let rows = txn.query_portal(&portal, 256).await.ctx(OP)?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    let first: i64 = row.get(0);
                    let bytes: &[u8] = row.get(1);
                    let mut records = decode_segment(org, unbig(OP, first)?, 0, bytes)?;
                    let n = crate::pseudonymise(&mut records, subject, pseudonym, &mut profiles);
                    if n > 0 {
                        erasure.records += n;
                        let fresh = encode_segment(org, &records)?;
                        delta += fresh.len() as i64 - bytes.len() as i64;
                        rewritten.push((first, fresh));
                    }
                }
            }
            for (first, bytes) in &rewritten {
                txn.execute("UPDATE segments SET bytes = $3 WHERE org = $1 AND first_seq = $2", &[&o, first, bytes])
                    .await
                    .ctx(OP)?;
            }
            let last: Option<i64> =
                txn.query_one("SELECT max(number) FROM changes WHERE org = $1", &[&o]).await.ctx(OP)?.get(0);
            erasure.change = unbig(OP, last.unwrap_or(0))? + 1;
            let change = encode_change(org, Seq(end), &Change::Erased { pseudonym: pseudonym.to_string() })?;
            let number = big(OP, erasure.change)?;
            txn.execute("INSERT INTO changes (org, number, bytes) VALUES ($1, $2, $3)", &[&o, &number, &change])
                .await
                .ctx(OP)?;
            delta += change.len() as i64;
            Self::add_log_bytes(&txn, o, delta, OP).await?;
            txn.execute("DELETE FROM snapshots WHERE org = $1", &[&o]).await.ctx(OP)?;
            txn.execute(
                "INSERT INTO erasing (org, change) VALUES ($1, $2) ON CONFLICT (org) DO UPDATE SET change = $2",
                &[&o, &number],
            )
            .await
            .ctx(OP)?;
            txn.commit().await.ctx(OP)?;
            Ok::<_, StoreError>(erasure)
        })?;
        drop(conn);
        self.finish_erasures()?;
        Ok(erasure)
    }

    fn set_org_record(
        &self,
        org: &OrgId,
        table: OrgTable,
        name: &str,
        bytes: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_org_record";
        let o = org.as_str();
        let t = org_table(table);
        let mut conn = self.pool.get()?;
        block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            if !Self::exists(&txn, o, OP).await? {
                return Err(StoreError::NoSuchOrg(org.clone()));
            }
            let existed = match bytes {
                Some(bytes) => {
                    let before = txn
                        .query_opt(&format!("SELECT 1 FROM {t} WHERE org = $1 AND name = $2 FOR UPDATE"), &[&o, &name])
                        .await
                        .ctx(OP)?;
                    txn.execute(
                        &format!(
                            "INSERT INTO {t} (org, name, bytes) VALUES ($1, $2, $3) \
                             ON CONFLICT (org, name) DO UPDATE SET bytes = $3"
                        ),
                        &[&o, &name, &bytes],
                    )
                    .await
                    .ctx(OP)?;
                    before.is_some()
                }
                None => {
                    txn.execute(&format!("DELETE FROM {t} WHERE org = $1 AND name = $2"), &[&o, &name]).await.ctx(OP)?
                        > 0
                }
            };
            txn.commit().await.ctx(OP)?;
            Ok(existed)
        })
    }
}

impl PgStore {
    /// Stores `bytes` as `org`'s snapshot at `seq` under `checksum` (which the reader checks),
    /// unless a newer one is kept: one row per organisation, replaced.
    pub(crate) fn put_snapshot_checked(
        &self,
        org: &OrgId,
        seq: Seq,
        checksum: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        const OP: &str = "put_snapshot";
        let epoch = self.fence(org)?;
        let mut conn = self.pool.get()?;
        block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            txn.execute(
                "INSERT INTO snapshots AS s (org, seq, checksum, bytes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org) DO UPDATE SET seq = EXCLUDED.seq, checksum = EXCLUDED.checksum, bytes = EXCLUDED.bytes \
                 WHERE s.seq <= EXCLUDED.seq",
                &[&org.as_str(), &big(OP, seq.0)?, &(checksum as i64), &bytes],
            )
            .await
            .ctx(OP)?;
            // Checked last, just before the commit: a snapshot is hundreds of megabytes, whose
            // upload must not hold the lease row (a taker waits for it), as a dead owner's
            // unfinished one would until PostgreSQL noticed.
            self.check_fence(&txn, org, epoch, OP).await?;
            txn.commit().await.ctx(OP)
        })
    }
}

impl Leases for PgStore {
    fn node(&self) -> &str {
        self.node.as_ref().map_or("", |n| n.name.as_str())
    }

    fn ttl(&self) -> std::time::Duration {
        self.node.as_ref().map_or(std::time::Duration::ZERO, |n| n.ttl)
    }

    fn heartbeat(&self, address: &str, leaving: bool) -> Result<(), StoreError> {
        const OP: &str = "heartbeat";
        let Some(node) = &self.node else { return Ok(()) };
        let conn = self.pool.get()?;
        block_on(conn.execute(
            "INSERT INTO nodes (node, address, incarnation, seen, leaving) VALUES ($1, $2, $3, clock_timestamp(), $4) \
             ON CONFLICT (node) DO UPDATE SET address = $2, incarnation = $3, seen = clock_timestamp(), leaving = $4",
            &[&node.name, &address, &node.incarnation, &leaving],
        ))
        .ctx(OP)?;
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError> {
        const OP: &str = "nodes";
        let conn = self.pool.get()?;
        let rows = block_on(conn.query(
            "SELECT node, address, GREATEST(0, (extract(epoch FROM clock_timestamp() - seen) * 1000))::bigint, leaving \
             FROM nodes ORDER BY node",
            &[],
        ))
        .ctx(OP)?;
        rows.iter()
            .map(|r| {
                Ok(NodeSeen { node: r.get(0), address: r.get(1), seen_ms_ago: unbig(OP, r.get(2))?, leaving: r.get(3) })
            })
            .collect()
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        const OP: &str = "leases";
        let conn = self.pool.get()?;
        let rows = block_on(conn.query(
            "SELECT org, node, epoch, (extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint FROM leases ORDER BY org",
            &[],
        ))
        .ctx(OP)?;
        rows.iter()
            .filter_map(|r| {
                // A row of an organisation id this build refuses is nobody's to take.
                let org = OrgId::parse(r.get::<_, &str>(0)).ok()?;
                Some(unbig(OP, r.get(2)).map(|epoch| Lease { org, node: r.get(1), epoch, expires_in_ms: r.get(3) }))
            })
            .collect()
    }

    fn acquire(&self, org: &OrgId) -> Result<Option<u64>, StoreError> {
        const OP: &str = "acquire";
        let Some(node) = &self.node else { return Ok(None) };
        let ttl = node.ttl.as_millis() as f64;
        let mut conn = self.pool.get()?;
        let epoch = block_on(async {
            let txn = conn.transaction().await.ctx(OP)?;
            // FOR UPDATE: only once no write fenced by the lease as it is (they hold it in KEY
            // SHARE) is under way, so that the log read after this is the whole log. NOWAIT: one
            // still under way (a dead owner's last statement, which may yet commit) leaves the
            // lease for the next tick, rather than hold up this node's renewals behind it.
            let current = match txn
                .query_opt(
                    "SELECT expires <= clock_timestamp() FROM leases WHERE org = $1 FOR UPDATE NOWAIT",
                    &[&org.as_str()],
                )
                .await
            {
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                    return Ok(None);
                }
                other => other.ctx(OP)?,
            };
            let taken = match current {
                Some(row) if !row.get::<_, bool>(0) => None,
                Some(_) => txn
                    .query_opt(
                        "UPDATE leases SET node = $2, incarnation = $3, epoch = epoch + 1, \
                         expires = clock_timestamp() + $4 * interval '1 millisecond' WHERE org = $1 RETURNING epoch",
                        &[&org.as_str(), &node.name, &node.incarnation, &ttl],
                    )
                    .await
                    .ctx(OP)?,
                None => txn
                    .query_opt(
                        "INSERT INTO leases (org, node, incarnation, epoch, expires) \
                         VALUES ($1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond') \
                         ON CONFLICT (org) DO NOTHING RETURNING epoch",
                        &[&org.as_str(), &node.name, &node.incarnation, &ttl],
                    )
                    .await
                    .ctx(OP)?,
            };
            txn.commit().await.ctx(OP)?;
            Ok::<_, StoreError>(taken.map(|row| row.get::<_, i64>(0)))
        })?;
        if let Some(epoch) = epoch {
            node.fences_mut().insert(org.to_string(), epoch);
        }
        epoch.map(|e| unbig(OP, e)).transpose()
    }

    fn renew(&self) -> Result<Vec<(OrgId, u64)>, StoreError> {
        const OP: &str = "renew";
        let Some(node) = &self.node else { return Ok(Vec::new()) };
        let (orgs, epochs): (Vec<String>, Vec<i64>) = node.fences().iter().map(|(o, e)| (o.clone(), *e)).unzip();
        let conn = self.pool.get()?;
        let rows = block_on(conn.query(
            "UPDATE leases AS l SET expires = clock_timestamp() + $3 * interval '1 millisecond' \
             FROM unnest($4::text[], $5::bigint[]) AS h (org, epoch) \
             WHERE l.org = h.org AND l.epoch = h.epoch AND l.node = $1 AND l.incarnation = $2 \
             RETURNING l.org, l.epoch",
            &[&node.name, &node.incarnation, &(node.ttl.as_millis() as f64), &orgs, &epochs],
        ))
        .ctx(OP)?;
        let renewed: std::collections::HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let asked: std::collections::HashMap<String, i64> = orgs.into_iter().zip(epochs).collect();
        let mut fences = node.fences_mut();
        // Held at the epoch taken, or lost: another node took it since. One taken while this
        // renewal ran was not asked about, and is kept.
        fences.retain(|org, epoch| asked.get(org) != Some(epoch) || renewed.get(org) == Some(epoch));
        let mut held = Vec::with_capacity(fences.len());
        for (org, epoch) in fences.iter() {
            if let Ok(id) = OrgId::parse(org) {
                held.push((id, unbig(OP, *epoch)?));
            }
        }
        held.sort();
        Ok(held)
    }

    fn release(&self, org: &OrgId) -> Result<(), StoreError> {
        const OP: &str = "release";
        let Some(node) = &self.node else { return Ok(()) };
        let Some(epoch) = node.fences_mut().remove(org.as_str()) else { return Ok(()) };
        let conn = self.pool.get()?;
        block_on(conn.execute(
            "UPDATE leases SET expires = clock_timestamp() WHERE org = $1 AND node = $2 AND incarnation = $3 AND epoch = $4",
            &[&org.as_str(), &node.name, &node.incarnation, &epoch],
        ))
        .ctx(OP)?;
        Ok(())
    }

    fn held(&self) -> Vec<(OrgId, u64)> {
        let Some(node) = &self.node else { return Vec::new() };
        let mut held: Vec<(OrgId, u64)> = node
            .fences()
            .iter()
            .filter_map(|(org, epoch)| Some((OrgId::parse(org).ok()?, u64::try_from(*epoch).ok()?)))
            .collect();
        held.sort();
        held
    }
}

/// Runs `future` to its end on this thread, parking it while the future waits: the
/// connections' IO runs on the store's runtime, so this needs none, and works on any thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = std::pin::pin!(future);
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A pool of connections: idle ones reused, at most [`MAX_CONNECTIONS`] open, a caller waiting
/// for one beyond; a connection that broke is dropped when given back.
struct Pool {
    config: tokio_postgres::Config,
    runtime: tokio::runtime::Handle,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

/// A connection taken from the pool, given back when dropped.
struct Conn<'a> {
    pool: &'a Pool,
    /// `Some` until dropped.
    client: Option<Client>,
}

impl Pool {
    fn new(config: tokio_postgres::Config, runtime: tokio::runtime::Handle) -> Pool {
        Pool { config, runtime, state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }), freed: Condvar::new() }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, or a new one while fewer than [`MAX_CONNECTIONS`] are open.
    fn get(&self) -> Result<Conn<'_>, StoreError> {
        let mut state = self.state();
        loop {
            if let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Conn { pool: self, client: Some(client) });
            }
            if state.open < MAX_CONNECTIONS {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Conn { pool: self, client: Some(client) }),
                    Err(e) => {
                        self.state().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.freed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A new connection, its task spawned on the store's runtime, commits synchronous.
    fn connect(&self) -> Result<Client, StoreError> {
        const OP: &str = "connect";
        let config = self.config.clone();
        let connecting = self.runtime.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                // Ends when the client is dropped or the server goes away; the pool then sees
                // the client closed.
                let _ = connection.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = block_on(connecting).ctx(OP)?.ctx(OP)?;
        block_on(client.batch_execute("SET synchronous_commit = on")).ctx(OP)?;
        Ok(client)
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a connection is held until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection is held until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.state();
        match self.client.take() {
            Some(client) if !client.is_closed() => state.idle.push(client),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
