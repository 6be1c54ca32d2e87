//! The HTTP API (docs/design.md, the HTTP contract) on axum: product teams send moments and read profiles,
//! leaderboards and challenges.
//!
//! **Owns** the routes, authentication (per-organisation keys, stored as SHA-256 hashes and
//! compared in constant time), request limits and the JSON error body ([`error`]). Each
//! organisation's world lives on its own thread ([`worker`]); handlers only parse, check keys,
//! and hand jobs over. **Must not touch** a `World` directly or block the async runtime.
//!
//! The data directory's layout (shared with `plaudit import`) is [`crate::datadir`]'s.
//!
//! Served: `POST /v1/orgs` ([`admin`]), rule sets and the what-if ([`rules`]), plugins
//! ([`plugins`]), `POST /v1/orgs/{org}/moments`, `GET /v1/orgs/{org}/stakeholders/{id}`,
//! `GET /v1/orgs/{org}/leaderboards/{board}`, `GET /v1/orgs/{org}/challenges`, insights
//! ([`insights`]), the stakeholders' listing and histories ([`people`]), `GET /healthz`,
//! `GET /metrics` (Prometheus text), `GET /openapi.json` (described in `openapi.json`).

pub mod accept;
pub mod admin;
pub mod bucket;
pub mod budget;
pub mod cluster;
pub mod config;
pub mod cors;
pub mod effects;
pub mod error;
pub mod insights;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod people;
pub mod plugins;
pub mod quotas;
pub mod rules;
pub mod serve;
pub mod tokens;
pub mod webhooks;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use plaudit_sdk::Record;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::config::ServerConfig;
use self::error::ApiError;
pub use self::serve::serve;
use self::worker::Worker;
use crate::datadir::DataDir;
use keys::Need;
use plaudit_core::ids::OrgId;
use plaudit_core::journal::FeedItem;
use plaudit_core::reads::{PageQuery, ReadError};
use plaudit_core::ruleset::Format;
use plaudit_store::Store;

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Most records in one `POST .../moments`.
pub const MAX_BATCH: usize = 1000;
/// Batches up to this size get their effects in the response.
pub const EFFECTS_IN_RESPONSE: usize = 100;
/// Most leaderboard rows in one page.
pub const MAX_PAGE: usize = 500;

/// An open organisation, as the server serves it.
#[derive(Debug)]
pub(crate) struct Org {
    pub(crate) worker: Worker,
    pub(crate) feed: Arc<crate::feed::Feed>,
    /// The key's request rate, if limited.
    bucket: Option<limit::Bucket>,
    pub(crate) hooks: Arc<crate::webhooks::Hooks>,
    /// Whether its webhook delivery task runs.
    delivering: std::sync::atomic::AtomicBool,
    /// Its requests being served.
    in_flight: budget::InFlight,
    /// Its limits: moments' dates, records a second, stakeholders, bytes stored.
    pub(crate) quotas: Arc<quotas::OrgQuotas>,
}

/// An open organisation a request was admitted to: counted in its requests in flight until
/// dropped ([`AppState::authorise`]).
#[derive(Debug)]
pub(crate) struct Admitted(Arc<Org>);

impl std::ops::Deref for Admitted {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.0
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.leave();
    }
}

/// Where an organisation the server knows is. Organisations open independently, each on a
/// thread of its own, so that one slow or damaged organisation never holds the server or
/// another organisation: the server answers those that are open, `503` (with `Retry-After`)
/// for one still opening, and `503` for one that could not be opened.
#[derive(Debug, Clone)]
pub(crate) enum OrgState {
    /// Its log is being replayed, since then.
    Opening(std::time::Instant),
    Open(Arc<Org>),
    /// It could not be opened (damaged data, a log this build refuses): why. Reported at start
    /// and in `/healthz`; the others are served.
    Failed(Arc<str>),
    /// In a cluster: owned by another node, or by none for the moment ([`cluster`]).
    Elsewhere,
    /// In a cluster: being handed off to another node.
    Moving,
}

/// An organisation the server knows: the SHA-256 of its key (none for one created by
/// `plaudit import`, until `plaudit key` gives it one) and where it is.
#[derive(Debug, Clone)]
pub(crate) struct OrgEntry {
    key_hash: Option<[u8; 32]>,
    /// Its scoped keys ([`keys`]) and allowed origins ([`cors`]).
    access: Access,
    pub(crate) state: OrgState,
}

/// What an organisation says about who may call it, besides its own key: its scoped keys and
/// the origins allowed to call it from a browser. Changed with its own key.
#[derive(Clone, Debug, Default)]
pub(crate) struct Access {
    pub(crate) keys: Arc<keys::Keys>,
    pub(crate) cors: Arc<cors::Origins>,
}

impl OrgEntry {
    /// What `given` is to this organisation: its own key, one of its scoped keys, or neither.
    fn grant(&self, given: &str) -> Option<keys::Grant> {
        let hash = key_hash(given);
        let known = self.key_hash.unwrap_or([0xFF; 32]);
        if constant_time_eq(&known, &hash) && self.key_hash.is_some() {
            return Some(keys::Grant::Own);
        }
        self.access.keys.find(given, &hash).map(keys::Grant::Scoped)
    }

    /// The key feed token `token` stands for, if this organisation signed it, it has not
    /// expired and its key is not revoked; `401` saying which if not.
    fn token_grant(&self, org: &str, token: &str) -> Result<keys::Grant, ApiError> {
        let refused = |message: String| {
            let mut error = ApiError::unauthorized();
            error.message = message;
            error.field = Some("token".into());
            error
        };
        let secret = self.key_hash.ok_or_else(ApiError::unauthorized)?;
        let claims = tokens::verify(org, token, &secret, unix_now()).map_err(|e| refused(e.to_string()))?;
        match claims.key {
            None => Ok(keys::Grant::Own),
            Some(id) => self
                .access
                .keys
                .get(id)
                .map(keys::Grant::Scoped)
                .ok_or_else(|| refused("this feed token's key has been revoked".into())),
        }
    }
}

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    data: DataDir,
    store: Arc<dyn Store>,
    orgs: RwLock<HashMap<String, OrgEntry>>,
    /// SHA-256 of the admin key; `None`: organisations cannot be created over HTTP.
    admin: Option<[u8; 32]>,
    /// Held while an organisation is created, so that two creations of one id cannot race.
    creating: Mutex<()>,
    /// Effects kept per organisation for the feed.
    effects_kept: usize,
    snapshot_every: u64,
    rate_limit: Option<config::RateLimit>,
    admin_bucket: Option<limit::Bucket>,
    /// Each organisation's limits where its admin set none.
    pub(crate) quota_defaults: quotas::Values,
    /// Set when the server shuts down: live streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// The runtime serving requests, once [`serve`] runs: organisations opened after it start
    /// their webhook delivery there.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    limits: config::Limits,
    /// The connections open.
    connections: serve::Connections,
    /// What-ifs, applications to history, plugin compiles, webhook deliveries.
    pub(crate) jobs: budget::Jobs,
    /// Where webhooks may be delivered.
    pub(crate) webhook_targets: Arc<crate::webhooks::Targets>,
    metrics: metrics::Metrics,
    /// This node of a cluster; `None` for a server of one node.
    cluster: Option<cluster::Cluster>,
    /// Organisations whose world was lost, to open again ([`cluster::start_upkeep`]).
    reopen_tx: std::sync::mpsc::Sender<String>,
    /// Its receiving end, until the upkeep thread takes it.
    reopen_queue: Mutex<Option<std::sync::mpsc::Receiver<String>>>,
    /// The organisations being opened now ([`AppState::open_one`]): never two opens of one.
    opening_now: Mutex<std::collections::BTreeSet<String>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] plaudit_store::StoreError),
    #[error(transparent)]
    Log(#[from] crate::organisation::OrgError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why an organisation could not be created. Nothing of it was kept.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("organisation id {id:?}: {message}")]
    Id { id: String, message: String },
    #[error("organisation {0} exists already")]
    Exists(String),
    #[error(transparent)]
    Log(#[from] crate::organisation::OrgError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no randomness for a key: {0}")]
    Random(String),
}

/// Why an organisation was not opened.
#[derive(Debug)]
enum NotOpened {
    /// The store could not be reached: worth trying again.
    Unreachable(String),
    /// Anything else: the organisation is unavailable until the server restarts.
    Failed(String),
}

impl From<crate::organisation::OrgError> for NotOpened {
    fn from(e: crate::organisation::OrgError) -> NotOpened {
        match e {
            crate::organisation::OrgError::Store(plaudit_store::StoreError::Unavailable { .. }) => {
                NotOpened::Unreachable(e.to_string())
            }
            other => NotOpened::Failed(other.to_string()),
        }
    }
}

/// The SHA-256 of a key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The 32 bytes `text` spells in hex (64 digits), if it does.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let bytes: Vec<u8> =
        (0..64).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// A fresh API key: `pk_` and 48 hex digits of OS randomness.
pub fn new_key() -> Result<String, CreateError> {
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret).map_err(|e| CreateError::Random(e.to_string()))?;
    Ok(format!("pk_{}", hex(&secret)))
}

/// Equal without an early exit, so the time taken says nothing about where keys differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

/// The server over the configured data directory: its store opened and every organisation
/// listed with its key, none opened yet ([`AppState::open_organisations`] opens them, each
/// on its own). Fails only if the store itself cannot be opened; a damaged organisation is
/// reported and skipped.
pub fn open(config: &ServerConfig) -> Result<AppState, ServeError> {
    let data = DataDir::new(&config.data);
    std::fs::create_dir_all(data.orgs())?;
    let (store, cluster): (Arc<dyn Store>, _) = match (&config.cluster, config.store.as_deref()) {
        (Some(c), Some(url)) => {
            let ttl = std::time::Duration::from_millis(c.lease_ms);
            let advertise = match c.advertise.trim() {
                "" => format!("http://{}", config.listen),
                given => given.trim_end_matches('/').to_string(),
            };
            let store = Arc::new(plaudit_store::PgStore::open_node(url, &c.node, ttl)?);
            (store, Some(cluster::Cluster::new(c.node.clone(), advertise, ttl)))
        }
        _ => (data.open_store(config.store.as_deref())?, None),
    };
    for (path, problem) in data.adopt_legacy(&store)? {
        tracing::warn!(path = %path.display(), problem, "left alone");
    }
    let mut orgs = HashMap::new();
    let now = std::time::Instant::now();
    for org in store.organisations()? {
        let (key_hash, access) = who_may_call(store.as_ref(), &org)?;
        if key_hash.is_none() {
            tracing::warn!(org = %org, "no API key: give it one with `plaudit key`; its requests are refused meanwhile");
        }
        // A node of a cluster opens only the organisations it takes the lease of.
        let state = if cluster.is_some() { OrgState::Elsewhere } else { OrgState::Opening(now) };
        orgs.insert(org.to_string(), OrgEntry { key_hash, access, state });
    }
    let (reopen_tx, reopen_queue) = std::sync::mpsc::channel();
    Ok(AppState {
        data,
        store,
        orgs: RwLock::new(orgs),
        admin: config.admin_key.as_deref().map(key_hash),
        creating: Mutex::new(()),
        effects_kept: config.effects_kept,
        snapshot_every: config.snapshot_every,
        rate_limit: config.rate_limit,
        admin_bucket: config.rate_limit.map(limit::Bucket::new),
        quota_defaults: quotas::Values::defaults(config),
        closing: tokio::sync::watch::Sender::new(false),
        runtime: std::sync::OnceLock::new(),
        limits: config.limits,
        connections: serve::Connections::new(config.limits.connections),
        jobs: budget::Jobs::new(config.limits),
        webhook_targets: Arc::new(crate::webhooks::Targets::new(config.webhook_hosts.clone())),
        metrics: metrics::Metrics::default(),
        cluster,
        reopen_tx,
        reopen_queue: Mutex::new(Some(reopen_queue)),
        opening_now: Mutex::default(),
    })
}

/// What the store says about who may call organisation `org`: the SHA-256 of its own key, its
/// scoped keys and allowed origins.
fn who_may_call(store: &dyn Store, org: &OrgId) -> Result<(Option<[u8; 32]>, Access), plaudit_store::StoreError> {
    let access =
        Access { keys: Arc::new(keys::Keys::load(store, org)?), cors: Arc::new(cors::Origins::load(store, org)?) };
    Ok((store.org_key(org)?, access))
}

impl Org {
    /// Starts the worker of an organisation opened with its feed.
    fn start(
        mut durable: crate::organisation::Organisation,
        rate: Option<config::RateLimit>,
        snapshot_every: u64,
        hooks: crate::webhooks::Hooks,
        metrics: &metrics::Metrics,
        quotas: quotas::OrgQuotas,
        on_lost: worker::OnLost,
    ) -> std::io::Result<Org> {
        durable.time_ingest(Arc::clone(&metrics.ingest));
        durable.set_admission(quotas.values().admission());
        durable.track_stored(Arc::clone(&quotas.stored)).map_err(std::io::Error::other)?;
        let feed = match durable.feed() {
            Some(feed) => Arc::clone(feed),
            None => durable.start_feed(crate::feed::DEFAULT_CAPACITY),
        };
        Ok(Org {
            worker: Worker::start(durable, snapshot_every, Some(on_lost))?,
            feed,
            bucket: rate.map(limit::Bucket::new),
            hooks: Arc::new(hooks),
            delivering: std::sync::atomic::AtomicBool::new(false),
            in_flight: budget::InFlight::default(),
            quotas: Arc::new(quotas),
        })
    }

    /// Starts the organisation's webhook delivery on `runtime`, once.
    fn deliver(
        &self,
        name: &str,
        runtime: &tokio::runtime::Handle,
        delivering: crate::webhooks::Delivering,
        closing: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.delivering.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let task = crate::webhooks::deliver(
            name.to_string(),
            Arc::clone(&self.hooks),
            Arc::clone(&self.feed),
            delivering,
            closing,
        );
        runtime.spawn(task);
    }
}

impl AppState {
    /// The organisations served (open ones), sorted.
    pub fn organisations(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.orgs().iter().filter(|(_, e)| matches!(e.state, OrgState::Open(_))).map(|(n, _)| n.clone()).collect();
        names.sort_unstable();
        names
    }

    /// Every organisation the server knows (open, opening or unavailable), sorted.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self.orgs().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// How many organisations are open, opening and unavailable.
    pub fn counts(&self) -> (usize, usize, usize) {
        let orgs = self.orgs();
        let count = |f: fn(&OrgState) -> bool| orgs.values().filter(|e| f(&e.state)).count();
        (
            count(|s| matches!(s, OrgState::Open(_))),
            count(|s| matches!(s, OrgState::Opening(_))),
            count(|s| matches!(s, OrgState::Failed(_))),
        )
    }

    /// Opens every organisation still to open, each on a thread of its own (its log replayed
    /// from its latest snapshot), and returns at once. Each is served as soon as it is open; one
    /// that cannot be opened is reported and marked unavailable (one the store could not be
    /// reached for is tried again every second). Starts the upkeep thread ([`cluster`]): a node
    /// of a cluster opens the organisations it takes the leases of there.
    pub fn open_organisations(self: &Arc<Self>) {
        cluster::start_upkeep(self);
        let opening: Vec<String> = self
            .orgs()
            .iter()
            .filter(|(_, e)| matches!(e.state, OrgState::Opening(_)))
            .map(|(n, _)| n.clone())
            .collect();
        for name in opening {
            let state = Arc::clone(self);
            let spawned = std::thread::Builder::new().name(format!("open-{name}")).spawn(move || {
                if state.open_one(&name) {
                    let _ = state.reopen_tx.send(name);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a thread to open an organisation");
            }
        }
    }

    /// Opens `name` here and now: what [`AppState::open_organisations`] runs for each. Returns
    /// whether to try again: the store could not be reached (the organisation stays opening).
    pub fn open_one(&self, name: &str) -> bool {
        // One open at a time: a reopen queued before the organisation was taken again, say,
        // finds it being opened and leaves it.
        let opening = || self.opening_now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !opening().insert(name.to_string()) {
            return false;
        }
        let retry = self.open_now(name);
        opening().remove(name);
        retry
    }

    fn open_now(&self, name: &str) -> bool {
        let started = std::time::Instant::now();
        let opened =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start_org(name))).unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(NotOpened::Failed(format!("opening it failed unexpectedly: {message}")))
            });
        let (state, retry) = match opened {
            Ok(org) => {
                tracing::info!(org = name, ms = started.elapsed().as_millis() as u64, "organisation open");
                if let Some(runtime) = self.runtime.get() {
                    org.deliver(name, runtime, self.delivering(), self.closing());
                }
                (OrgState::Open(org), false)
            }
            Err(NotOpened::Unreachable(why)) => {
                tracing::warn!(org = name, error = %why, "the store cannot be reached: opening the organisation again in a second");
                (OrgState::Opening(started), true)
            }
            Err(NotOpened::Failed(why)) => {
                tracing::error!(org = name, error = %why, "organisation unavailable: the others are served");
                (OrgState::Failed(why.into()), false)
            }
        };
        let mut orgs = self.orgs_mut();
        let Some(entry) = orgs.get_mut(name) else { return false };
        // Dropped while it opened (another node took it over): left dropped.
        if !matches!(entry.state, OrgState::Opening(_)) {
            drop(orgs);
            if let (OrgState::Open(org), Some(runtime)) = (state, self.runtime.get()) {
                runtime.spawn(async move {
                    let _ = org.worker.abandon().await;
                });
            }
            return false;
        }
        if let OrgState::Open(_) = state
            && let Some((key_hash, access)) = self.reloaded(name)
        {
            (entry.key_hash, entry.access) = (key_hash, access);
        }
        entry.state = state;
        retry
    }

    /// What a node of a cluster reads again when it takes an organisation: its key, scoped keys
    /// and origins, which the node that owned it may have changed. `None` for one server (its
    /// entries are current) or when they cannot be read (the entry is kept).
    fn reloaded(&self, name: &str) -> Option<(Option<[u8; 32]>, Access)> {
        self.cluster.as_ref()?;
        let org = OrgId::parse(name).ok()?;
        who_may_call(self.store.as_ref(), &org)
            .map_err(|e| tracing::warn!(org = name, error = %e, "cannot read its keys again"))
            .ok()
    }

    /// Opens `name` again after its world was lost: whether to try again later.
    fn reopen(&self, name: &str) -> bool {
        if let (Some(leases), Ok(org)) = (self.store.leases(), OrgId::parse(name))
            && !leases.held().iter().any(|(held, _)| *held == org)
        {
            if let Some(entry) = self.orgs_mut().get_mut(name) {
                entry.state = OrgState::Elsewhere;
            }
            return false;
        }
        match self.orgs_mut().get_mut(name) {
            // Opened again since its world was lost (a reopen queued before it was lost and
            // taken back, say): that world is current.
            Some(entry) if matches!(&entry.state, OrgState::Open(org) if !org.worker.stopped()) => return false,
            Some(entry) if !matches!(entry.state, OrgState::Elsewhere | OrgState::Moving) => {
                if !matches!(entry.state, OrgState::Opening(_)) {
                    entry.state = OrgState::Opening(std::time::Instant::now());
                }
            }
            _ => return false,
        }
        tracing::info!(org = name, "opening the organisation again from its log");
        self.open_one(name)
    }

    /// Opens organisation `name` from its log and starts its worker.
    fn start_org(&self, name: &str) -> Result<Arc<Org>, NotOpened> {
        let failed = |e: &dyn std::fmt::Display| NotOpened::Failed(e.to_string());
        let org = OrgId::parse(name).map_err(|e| failed(&e))?;
        let (durable, replayed) = self
            .data
            .open_org(&self.store, &org, Some(self.effects_kept), false)
            .map_err(NotOpened::from)?
            .ok_or_else(|| NotOpened::Failed("it has no rule set in the log".to_string()))?;
        tracing::debug!(
            org = %org,
            records = replayed.records,
            replay_ms = replayed.elapsed.as_millis() as u64,
            rules_version = durable.rules().version,
            "organisation replayed"
        );
        let hooks = crate::webhooks::Hooks::load(Arc::clone(&self.store), &org, &self.data.webhooks(&org))
            .map_err(NotOpened::Failed)?;
        let quotas = quotas::OrgQuotas::load(self.store.as_ref(), &org, self.quota_defaults)
            .map_err(|e| NotOpened::from(crate::organisation::OrgError::Store(e)))?;
        let org =
            Org::start(durable, self.rate_limit, self.snapshot_every, hooks, &self.metrics, quotas, self.on_lost(name))
                .map_err(|e| NotOpened::Failed(format!("cannot start its worker: {e}")))?;
        Ok(Arc::new(org))
    }

    /// What a worker of organisation `name` calls when its world is lost: the upkeep opens it
    /// again.
    fn on_lost(&self, name: &str) -> worker::OnLost {
        let (tx, name) = (self.reopen_tx.clone(), name.to_string());
        Box::new(move || {
            let _ = tx.send(name);
        })
    }

    /// Starts, on the current runtime, what runs beside the requests: each open organisation's
    /// webhook delivery (and, as they open, the others'). [`serve`] calls it; a test driving
    /// the router in process calls it too.
    pub async fn start_background(self: &Arc<Self>) {
        let runtime = self.runtime.get_or_init(tokio::runtime::Handle::current);
        for (name, org) in self.open_orgs() {
            org.deliver(&name, runtime, self.delivering(), self.closing());
        }
    }

    /// After the last request: every organisation's snapshot written, and a last one taken of
    /// those that accepted records since theirs, so the next start replays little.
    pub async fn close(&self) {
        // A node of a cluster hands every organisation off (closed, lease released) first.
        self.leave().await;
        let workers: Vec<(String, Worker)> = self.open_orgs().into_iter().map(|(n, o)| (n, o.worker.clone())).collect();
        for (name, worker) in workers {
            if let Err(e) = worker.close().await {
                tracing::warn!(org = %name, error = %e.message, "closing the organisation");
            }
        }
        // The scoped keys' last uses, kept in memory while serving.
        let keys: Vec<(String, Arc<keys::Keys>)> =
            self.orgs().iter().map(|(name, e)| (name.clone(), Arc::clone(&e.access.keys))).collect();
        let store = Arc::clone(&self.store);
        let saved = tokio::task::spawn_blocking(move || {
            for (name, keys) in keys {
                if let Ok(org) = OrgId::parse(&name) {
                    keys.save_uses(store.as_ref(), &org);
                }
            }
        });
        if let Err(e) = saved.await {
            tracing::warn!(error = %e, "saving the keys' last uses");
        }
    }

    /// Installs `wasm` as plugin `name` of organisation `org`, as `PUT .../plugins/{name}` does
    /// (for `plaudit serve --demo`, which has no key to present).
    pub async fn install_plugin(&self, org: &str, name: &str, wasm: Vec<u8>) -> Result<(), ApiError> {
        let handle = self.open_org(org).ok_or_else(|| ApiError::not_found(&format!("organisation {org:?}")))?;
        let name = name.to_string();
        handle.worker.run(move |d| d.install_plugin(&name, &wasm).map(|_| ())).await??;
        Ok(())
    }

    fn orgs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, OrgEntry>> {
        // A handler that panicked while holding the lock left the map intact: inserts are whole.
        self.orgs.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn orgs_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, OrgEntry>> {
        self.orgs.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Organisation `name`, if it is open.
    pub(crate) fn open_org(&self, name: &str) -> Option<Arc<Org>> {
        match &self.orgs().get(name)?.state {
            OrgState::Open(org) => Some(Arc::clone(org)),
            _ => None,
        }
    }

    /// The open organisations, sorted by name.
    pub(crate) fn open_orgs(&self) -> Vec<(String, Arc<Org>)> {
        let mut open: Vec<(String, Arc<Org>)> = self
            .orgs()
            .iter()
            .filter_map(|(n, e)| match &e.state {
                OrgState::Open(o) => Some((n.clone(), Arc::clone(o))),
                _ => None,
            })
            .collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open
    }

    /// Creates organisation `id` with its first rule set and a fresh key, which is returned
    /// (only its hash is kept, in the same commit as the rule set), and starts serving it.
    /// Blocking: it commits to the store.
    pub fn create_org(&self, id: &str, rules: &str, format: Format) -> Result<String, CreateError> {
        let org = OrgId::parse(id).map_err(|e| CreateError::Id { id: id.to_string(), message: e.to_string() })?;
        let _creating = self.creating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.orgs().contains_key(id) {
            return Err(CreateError::Exists(id.to_string()));
        }
        let key = new_key()?;
        let hash = key_hash(&key);
        let mut durable = match crate::organisation::Organisation::create_with_key(
            Arc::clone(&self.store),
            org,
            Some(hash),
            rules,
            format,
        ) {
            Err(crate::organisation::OrgError::Exists(_)) => return Err(CreateError::Exists(id.to_string())),
            created => created?,
        };
        durable.start_feed(self.effects_kept);
        let hooks =
            crate::webhooks::Hooks::load(Arc::clone(&self.store), durable.org(), &self.data.webhooks(durable.org()))
                .map_err(std::io::Error::other)?;
        let quotas = quotas::OrgQuotas::new(quotas::LimitsSetting::default(), self.quota_defaults);
        let entry = Arc::new(Org::start(
            durable,
            self.rate_limit,
            self.snapshot_every,
            hooks,
            &self.metrics,
            quotas,
            self.on_lost(id),
        )?);
        if let Some(runtime) = self.runtime.get() {
            entry.deliver(id, runtime, self.delivering(), self.closing());
        }
        tracing::info!(org = id, "organisation created");
        let entry = OrgEntry { key_hash: Some(hash), access: Access::default(), state: OrgState::Open(entry) };
        self.orgs_mut().insert(id.to_string(), entry);
        Ok(key)
    }

    /// The organisation `org`, if `headers` carry its key and it is open. An unknown
    /// organisation is refused exactly like a wrong key (`401`, after the same work), so that
    /// organisation names cannot be enumerated; one still opening answers `503` with
    /// `Retry-After`, one that could not be opened `503`.
    pub(crate) fn authorise(&self, org: &str, headers: &HeaderMap, need: keys::Need<'_>) -> Result<Admitted, ApiError> {
        self.authorise_entry(org, headers, need).map(|(admitted, _)| admitted)
    }

    /// [`AppState::authorise`] for changing who may call the organisation (its own key), with
    /// what says so.
    pub(crate) fn authorise_manage(&self, org: &str, headers: &HeaderMap) -> Result<(Admitted, Access), ApiError> {
        self.authorise_entry(org, headers, keys::Need::Manage)
    }

    /// Whether organisation `org` lets pages from `origin` read its answers.
    pub(crate) fn cors_allows(&self, org: &str, origin: &[u8]) -> bool {
        self.orgs().get(org).is_some_and(|e| e.access.cors.allows(origin))
    }

    /// Runs `job` with the store of organisation `org` off the runtime's threads (the store's
    /// calls block); its error is a `503` if the store is out of reach, otherwise (or if the
    /// job fails) a `500`.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        org: &str,
        job: impl FnOnce(&dyn Store, &OrgId) -> Result<T, plaudit_store::StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let org = OrgId::parse(org).map_err(|e| ApiError::internal(e.to_string()))?;
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || job(store.as_ref(), &org))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::from_store(&e))
    }

    /// Stores record `name` of organisation `org` in `table` (or deletes it); whether it was
    /// there before.
    pub(crate) async fn set_org_record(
        &self,
        org: &str,
        table: plaudit_store::OrgTable,
        name: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<bool, ApiError> {
        let name = name.to_string();
        self.with_store(org, move |store, org| store.set_org_record(org, table, &name, bytes.as_deref())).await
    }

    /// Admits a request with a key of organisation `org` that allows `need`: `401` for no key of
    /// it (an unknown organisation looks the same), `403` for a key whose scope does not allow it.
    fn authorise_entry(
        &self,
        org: &str,
        headers: &HeaderMap,
        need: keys::Need<'_>,
    ) -> Result<(Admitted, Access), ApiError> {
        let given = bearer(headers).ok_or_else(ApiError::unauthorized)?;
        self.admit(org, need, |e| e.grant(given).ok_or_else(ApiError::unauthorized)).map(|(a, access, _)| (a, access))
    }

    /// Admits a read of the feed with a feed token ([`tokens`]), which a browser's `EventSource`
    /// can send in the URL, or else a key (`Authorization`, as everywhere).
    pub(crate) fn authorise_feed(
        &self,
        org: &str,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<(Admitted, keys::Grant), ApiError> {
        let need = keys::Need::Feed;
        // A token given is the credential, checked even beside a key: never silently ignored.
        let (admitted, _, grant) = match (token, bearer(headers)) {
            (Some(token), _) => self.admit(org, need, |e| e.token_grant(org, token))?,
            (None, Some(given)) => self.admit(org, need, |e| e.grant(given).ok_or_else(ApiError::unauthorized))?,
            (None, None) => return Err(ApiError::unauthorized()),
        };
        Ok((admitted, grant))
    }

    /// A feed token for `grant` of organisation `org`, living `ttl` seconds.
    pub(crate) fn feed_token(&self, org: &str, grant: &keys::Grant, ttl: u64) -> Result<(String, u64), ApiError> {
        let secret = self.orgs().get(org).and_then(|e| e.key_hash).ok_or_else(ApiError::unauthorized)?;
        let expires = unix_now().saturating_add(ttl);
        Ok((tokens::sign(org, &tokens::claims_of(grant, expires), &secret), expires))
    }

    /// Admits a request to organisation `org` whose credential `find` resolves, if it allows
    /// `need`; counts it in the organisation's rate and requests in flight.
    fn admit(
        &self,
        org: &str,
        need: keys::Need<'_>,
        find: impl FnOnce(&OrgEntry) -> Result<keys::Grant, ApiError>,
    ) -> Result<(Admitted, Access, keys::Grant), ApiError> {
        let entry = self.orgs().get(org).cloned().ok_or_else(ApiError::unauthorized)?;
        let grant = find(&entry)?;
        grant.check(need)?;
        let access = entry.access.clone();
        let admitted = match entry.state {
            OrgState::Open(o) => {
                if let Some(bucket) = &o.bucket {
                    bucket.take(std::time::Instant::now()).map_err(ApiError::too_many_requests)?;
                }
                if !o.in_flight.enter(self.limits.in_flight_per_org) {
                    return Err(ApiError::busy(org, self.limits.in_flight_per_org));
                }
                Admitted(o)
            }
            OrgState::Opening(since) => return Err(ApiError::opening(org, since.elapsed())),
            OrgState::Failed(why) => return Err(ApiError::unavailable(org, &why)),
            // The cluster's layer forwards these; one met here moved since ([`cluster`]).
            OrgState::Elsewhere | OrgState::Moving => {
                return Err(ApiError::moving(&format!("organisation {org} is not served by this node now")));
            }
        };
        Ok((admitted, access, grant))
    }

    /// Whether `headers` carry the admin key (not counted in its rate: [`AppState::authorise_admin`]).
    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        match (&self.admin, bearer(headers)) {
            (Some(admin), Some(given)) => constant_time_eq(admin, &key_hash(given)),
            _ => false,
        }
    }

    /// Whether `headers` carry the admin key.
    pub(crate) fn authorise_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(admin) = &self.admin else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "this server has no admin key: start it with PLAUDIT_ADMIN_KEY set",
            ));
        };
        let given = bearer(headers).ok_or_else(ApiError::unauthorized)?;
        if !constant_time_eq(admin, &key_hash(given)) {
            return Err(ApiError::unauthorized());
        }
        match &self.admin_bucket {
            Some(bucket) => bucket.take(std::time::Instant::now()).map_err(ApiError::too_many_requests),
            None => Ok(()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What webhook deliveries share: places to post from, and where they may post.
    fn delivering(&self) -> crate::webhooks::Delivering {
        crate::webhooks::Delivering { slots: self.jobs.delivery_slots(), targets: Arc::clone(&self.webhook_targets) }
    }

    /// A receiver that turns `true` when the server shuts down.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

/// The router over `state`.
///
/// Every request is answered within `limits.request_timeout_ms` (`408`, JSON), except those
/// that run as background jobs (what-ifs, applications to history, plugin uploads), which
/// take what their replay or compile takes, bounded by the jobs' own limits; a body's pauses
/// are bounded by `limits.body_timeout_ms`.
pub fn router(state: Arc<AppState>) -> Router {
    let jobs = Router::new()
        .route("/v1/orgs/{org}/rules/simulate", post(rules::post_simulate))
        .route("/v1/orgs/{org}/rules/apply", post(rules::post_apply))
        .route(
            "/v1/orgs/{org}/plugins/{name}",
            get(plugins::get_plugin)
                .put(plugins::put_plugin)
                .layer(DefaultBodyLimit::max(plaudit_sandbox::MAX_MODULE_BYTES + (64 << 10)))
                .delete(plugins::delete_plugin),
        );
    let body_timeout = std::time::Duration::from_millis(state.limits.body_timeout_ms);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/orgs", post(admin::post_orgs))
        .route("/v1/cluster", get(cluster::get_cluster))
        .route("/v1/orgs/{org}/rules", get(rules::get_rules).put(rules::put_rules))
        .route("/v1/orgs/{org}/rules/versions", get(rules::get_versions))
        .route("/v1/orgs/{org}/rules/versions/{version}", get(rules::get_version))
        .route("/v1/orgs/{org}/plugins", get(plugins::list_plugins))
        .route("/v1/orgs/{org}/moments", post(post_moments))
        .route("/v1/orgs/{org}/effects", get(effects::get_effects))
        .route("/v1/orgs/{org}/effects/tokens", post(effects::post_token))
        .route("/v1/orgs/{org}/webhooks", get(webhooks::list_webhooks))
        .route("/v1/orgs/{org}/keys", get(keys::list_keys).post(keys::post_key))
        .route("/v1/orgs/{org}/keys/{id}", axum::routing::delete(keys::delete_key))
        .route("/v1/orgs/{org}/cors", get(cors::get_cors).put(cors::put_cors))
        .route("/v1/orgs/{org}/limits", get(quotas::get_limits).put(quotas::put_limits))
        .route(
            "/v1/orgs/{org}/webhooks/{name}",
            axum::routing::put(webhooks::put_webhook).delete(webhooks::delete_webhook),
        )
        .route("/v1/orgs/{org}/stakeholders", get(people::get_stakeholders))
        .route("/v1/orgs/{org}/stakeholders/{id}", get(get_profile).put(put_profile).delete(people::delete_stakeholder))
        .route("/v1/orgs/{org}/stakeholders/{id}/effects", get(people::get_stakeholder_effects))
        .route("/v1/orgs/{org}/stakeholders/{id}/export", get(people::get_export))
        .route("/v1/orgs/{org}/leaderboards/{board}", get(get_leaderboard))
        .route("/v1/orgs/{org}/challenges", get(get_challenges))
        .route("/v1/orgs/{org}/insights/activity", get(insights::get_activity))
        .route("/v1/orgs/{org}/insights/bridges", get(insights::get_bridges))
        .route("/v1/orgs/{org}/insights/champions", get(insights::get_champions))
        .route("/v1/orgs/{org}/insights/quiet", get(insights::get_quiet))
        .route("/v1/orgs/{org}/insights/challenges/{id}", get(insights::get_challenge))
        .route("/v1/orgs/{org}/insights/goals", get(insights::get_goals))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), request_timeout))
        .merge(jobs)
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), track))
        .method_not_allowed_fallback(wrong_method)
        .fallback(no_route)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // gzip both ways: answers for clients that accept it (not event streams, nor bodies
        // of 32 bytes or fewer), request bodies sent with `Content-Encoding: gzip` (the body
        // limit applies to what they inflate to).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(axum::middleware::map_response(json_errors))
        .layer(cors::layer(Arc::clone(&state)))
        // Outermost: a request of an organisation another node owns goes there untouched.
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), cluster::forward))
        .with_state(state)
}

/// Errors the framework and its layers answer before a handler runs (a body that cannot be
/// read or inflated, a `Content-Encoding` not taken, a body over the limit) in the API's error
/// body like every other: their text becomes the message.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let retry = response.headers().get(header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::BAD_REQUEST => "unreadable_body",
        s if s.is_server_error() => "internal",
        _ => "refused",
    };
    let message = match (text.is_empty(), status) {
        (true, StatusCode::UNSUPPORTED_MEDIA_TYPE) => {
            "this Content-Encoding is not taken: send gzip or none".to_string()
        }
        (true, s) => s.canonical_reason().unwrap_or("refused").to_string(),
        (false, _) => text,
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in [(header::ALLOW, allow), (header::RETRY_AFTER, retry)] {
        if let Some(value) = value {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

/// `404 no_route` for a path no route serves, in the API's error body like every other error.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("no route {method} {}: /openapi.json lists them", uri.path());
    ApiError::new(StatusCode::NOT_FOUND, "no_route", message)
}

/// `405 method_not_allowed` for a method a route does not serve (`Allow` names those it does).
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not served at {}: `Allow` names the methods that are", uri.path()),
    )
}

/// Answers `408 timeout` for a request not answered within `limits.request_timeout_ms` (its
/// body included; an event stream's body, sent after its answer began, is not counted).
async fn request_timeout(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = std::time::Duration::from_millis(state.limits.request_timeout_ms);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request was not answered within {} ms (its body included)", limit.as_millis()),
        )
        .into_response(),
    }
}

/// Counts every request to a known route, with its status and time, for `/metrics`.
async fn track(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unknown".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let (status, took) = (response.status().as_u16(), started.elapsed());
    state.metrics.request(&route, status, took);
    if status >= 500 {
        tracing::warn!(%method, route, status, micros = took.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, route, status, micros = took.as_micros() as u64, "request");
    }
    response
}

async fn get_metrics(State(state): State<Arc<AppState>>) -> ([(header::HeaderName, &'static str); 1], String) {
    let mut gauges = metrics::Gauges {
        organisations: state.counts(),
        in_flight_limit: state.limits.in_flight_per_org,
        jobs: state.jobs.usage(),
        jobs_refused: (
            state.jobs.refused_queue_full.load(std::sync::atomic::Ordering::Relaxed),
            state.jobs.refused_too_large.load(std::sync::atomic::Ordering::Relaxed),
        ),
        sandbox: plaudit_sandbox::usage(),
        connections: state.connections.usage(),
        ..metrics::Gauges::default()
    };
    for (name, org) in state.open_orgs() {
        let refused = org.in_flight.refused.load(std::sync::atomic::Ordering::Relaxed);
        gauges.in_flight.push((name.clone(), org.in_flight.now(), refused));
        for hook in org.hooks.views() {
            gauges.webhooks_missed.push((name.clone(), hook.name, hook.missed));
        }
        let mut stakeholders = None;
        if let Ok((statuses, held)) = org.worker.run(|d| (d.world().plugins(), d.world().stakeholders())).await {
            for s in statuses {
                gauges.plugins.push((name.clone(), s.name, s.calls, s.failed_calls, s.moments));
            }
            stakeholders = Some(held as u64);
        }
        gauges.quotas.push(metrics::OrgQuotaGauges {
            org: name.clone(),
            limits: org.quotas.values(),
            stakeholders,
            stored_bytes: org.quotas.stored.load(std::sync::atomic::Ordering::Relaxed),
            refused: org.quotas.refusals(),
        });
    }
    let mut text = state.metrics.render(&gauges);
    if let Some(cluster) = &state.cluster {
        cluster::render_metrics(cluster, state.store.leases().map_or(0, |l| l.held().len()), &mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The answer to `GET /healthz`.
#[derive(Debug, Serialize)]
struct Health {
    /// `ok` once every organisation is open; `starting` while some are opening; `degraded` if
    /// some could not be opened (the others are served either way).
    status: &'static str,
    organisations: HealthCounts,
    /// With the admin key only (names are not for everyone): the organisations still opening
    /// and those that could not be opened, with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<HealthDetail>,
}

#[derive(Debug, Serialize)]
struct HealthCounts {
    open: usize,
    opening: usize,
    unavailable: usize,
}

#[derive(Debug, Serialize)]
struct HealthDetail {
    opening: Vec<Opening>,
    unavailable: Vec<Unavailable>,
}

/// An organisation still opening, and for how many milliseconds so far.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct Opening {
    org: String,
    ms: u64,
}

/// An organisation that could not be opened, and why.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct Unavailable {
    org: String,
    error: String,
}

/// Liveness: the server answers. Its body says how many organisations are open, still
/// opening, or could not be opened, and, to the admin, which.
async fn healthz(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Json<Health> {
    let (open, opening, unavailable) = state.counts();
    let status = match (opening, unavailable) {
        (0, 0) => "ok",
        (_, 0) => "starting",
        _ => "degraded",
    };
    let detail = (bearer(&headers).is_some() && state.authorise_admin(&headers).is_ok()).then(|| {
        let orgs = state.orgs();
        let mut detail = HealthDetail { opening: Vec::new(), unavailable: Vec::new() };
        for (name, entry) in orgs.iter() {
            match &entry.state {
                OrgState::Opening(since) => {
                    detail.opening.push(Opening { org: name.clone(), ms: since.elapsed().as_millis() as u64 })
                }
                OrgState::Failed(why) => {
                    detail.unavailable.push(Unavailable { org: name.clone(), error: why.to_string() })
                }
                OrgState::Open(_) | OrgState::Elsewhere | OrgState::Moving => {}
            }
        }
        detail.opening.sort();
        detail.unavailable.sort();
        detail
    });
    Json(Health { status, organisations: HealthCounts { open, opening, unavailable }, detail })
}

/// The OpenAPI description of the routes served (kept beside this file; a test checks it
/// against the running server), less the rule set's schemas ([`RULE_SET_SCHEMAS`]).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The rule set's JSON Schemas (`RuleSet` and the types it uses), derived from the rule set's
/// own types (a test checks them, and writes them with `PLAUDIT_BLESS=1`).
pub const RULE_SET_SCHEMAS: &str = include_str!("rule-set.schema.json");

/// The whole description: [`OPENAPI`] with [`RULE_SET_SCHEMAS`] among its schemas.
pub fn description() -> &'static serde_json::Value {
    static SPEC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let mut spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let rule_set: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(RULE_SET_SCHEMAS).unwrap_or_default();
        if let Some(schemas) = spec["components"]["schemas"].as_object_mut() {
            schemas.extend(rule_set);
        }
        spec
    })
}

/// The description, its `servers` naming the address the request came to (its `Host`, and
/// `X-Forwarded-Proto: https` behind a proxy that ends TLS), so that a client generated from it
/// calls this server.
async fn openapi(headers: HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    let mut spec = description().clone();
    if let Some(host) = host {
        // Behind a proxy that ends TLS, the scheme the client used.
        let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
            Some(p) if p.trim().eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        spec["servers"] = serde_json::json!([{ "url": format!("{scheme}://{host}") }]);
    }
    axum::Json(spec).into_response()
}

/// The answer to `POST .../moments`.
#[derive(Debug, Serialize)]
pub struct Ingested {
    pub accepted: usize,
    pub duplicates: usize,
    /// The records refused, each alone (the rest of the batch is stored): absent when none was.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refused>,
    /// The effects of the batch, when it had at most [`EFFECTS_IN_RESPONSE`] records: the
    /// feed's items, shared with it, written as effects.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "effects_only")]
    pub effects: Option<Vec<Arc<FeedItem>>>,
}

/// A record of a batch that was refused, and why; nothing of it was applied.
#[derive(Debug, Serialize)]
pub struct Refused {
    /// Its place in the batch.
    pub index: usize,
    /// `invalid_record`, or `id_conflict` (the id of a moment accepted before with other content).
    pub code: &'static str,
    /// The field it names, with the record's place (`[3].at`).
    pub field: String,
    pub message: String,
}

/// Feed items written as their effects alone (the moments route's answer names no feed number).
fn effects_only<S: serde::Serializer>(items: &Option<Vec<Arc<FeedItem>>>, s: S) -> Result<S::Ok, S::Error> {
    let effects = items.iter().flatten().map(|item| &item.effect);
    s.collect_seq(effects)
}

/// For whole-number fields of JSON bodies: a JSON integer, also written with no fraction
/// (`3.0`: JSON Schema's `integer`, which the API description promises, allows it).
pub(crate) fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number of 0 or more")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<u64, E> {
            // `u64::MAX as f64` is 2^64, one past the largest u64: excluded.
            if f.fract() == 0.0 && (0.0..u64::MAX as f64).contains(&f) {
                Ok(f as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(f), &self))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// [`whole`], or `null` / absent.
pub(crate) fn whole_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// A JSON body of type `T`; a refusal names the field (`timezone`, `seed`).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde would take an array for a struct, field by field: only an object is one.
    match body.trim_ascii_start().first() {
        Some(b'{') => {}
        Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
            return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
        }
        _ => {}
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() { "malformed_json" } else { "invalid_body" };
        let error = ApiError::bad_request(code, inner.to_string());
        let field = if path == "." {
            plaudit_core::input::named_field(&inner.to_string()).map(str::to_string)
        } else {
            Some(path)
        };
        match field {
            Some(f) => error.field(f),
            None => error,
        }
    })
}

/// One record or an array of them, each a JSON object as in a moments file. The body is
/// scanned once for its items, which are then read straight into records: no JSON tree is
/// built on the way.
fn parse_records(body: &[u8]) -> Result<Vec<Record>, ApiError> {
    use serde_json::value::RawValue;
    let malformed =
        |e: serde_json::Error| ApiError::bad_request("malformed_json", format!("the body is not JSON: {e}"));
    let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let items: Vec<&RawValue> = if array {
        serde_json::from_slice(body).map_err(malformed)?
    } else {
        vec![serde_json::from_slice(body).map_err(malformed)?]
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} records; at most {MAX_BATCH} a request", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            plaudit_core::input::parse_record(item.get()).map_err(|e| {
                let at = if array { format!("[{i}]") } else { String::new() };
                let error = ApiError::bad_request("invalid_record", format!("record{at}: {}", e.message));
                match (e.field, at.is_empty()) {
                    (Some(field), true) => error.field(field),
                    (Some(field), false) => error.field(format!("{at}.{field}")),
                    (None, true) => error,
                    (None, false) => error.field(at),
                }
            })
        })
        .collect()
}

/// A refused query string as a 400 `invalid_query` naming the parameter: axum's message is
/// `Failed to deserialize query string: limit: invalid digit found in string` for a bad value
/// and `... unknown field `lmit`, expected ...` for an unknown one.
pub(crate) fn invalid_query(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let message = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    let named = message
        .split_once(": ")
        .map(|(path, _)| path)
        .filter(|path| !path.is_empty() && path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let error = ApiError::bad_request("invalid_query", message);
    match named.or_else(|| plaudit_core::input::named_field(message)) {
        Some(field) => error.field(field),
        None => error,
    }
}

/// The query of `POST .../moments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentsParams {
    /// `false`: answer the counts alone, even for a small batch (the effects still reach the
    /// feed, its stream and the webhooks). Senders that read effects elsewhere save the
    /// answer's rendering and bytes.
    effects: Option<bool>,
}

async fn post_moments(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<MomentsParams>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let org = state.authorise(&org, &headers, Need::Ingest)?;
    let Query(params) = params.map_err(invalid_query)?;
    let records = parse_records(&body)?;
    org.quotas.admit(records.len(), std::time::Instant::now())?;
    let answer_effects = params.effects != Some(false) && records.len() <= EFFECTS_IN_RESPONSE;
    let (outcome, effects) = org.worker.ingest(records, answer_effects).await?.map_err(|e| ApiError::from(&*e))?;
    org.quotas.count(&outcome.rejected);
    state.metrics.accepted.fetch_add(outcome.accepted as u64, std::sync::atomic::Ordering::Relaxed);
    state.metrics.duplicates.fetch_add(outcome.duplicates as u64, std::sync::atomic::Ordering::Relaxed);
    let refused: Vec<Refused> = outcome
        .rejected
        .iter()
        .map(|e| Refused {
            index: e.index,
            code: e.code,
            field: format!("[{}].{}", e.index, e.field),
            message: e.message.clone(),
        })
        .collect();
    // Refused whole (nothing stored, nothing already held): a 4xx naming the first refusal,
    // 409 if every one is an id conflict, 403 if every one would pass the stakeholders quota.
    if let Some(first) = refused.first().filter(|_| outcome.accepted == 0 && outcome.duplicates == 0) {
        let all = |code: &str| refused.iter().all(|r| r.code == code);
        let status = if all(plaudit_core::resolve::ID_CONFLICT) {
            StatusCode::CONFLICT
        } else if all(quotas::CODE) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let message = match refused.len() {
            1 => format!("record {}: {}", first.field, first.message),
            n => format!("every record was refused ({n}); the first, {}: {}", first.field, first.message),
        };
        return Err(ApiError::new(status, first.code, message).field(first.field.clone()));
    }
    // Otherwise what was accepted is durable and scored: said, with every refusal.
    let effects = answer_effects.then_some(effects);
    let status = if outcome.accepted > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Ingested { accepted: outcome.accepted, duplicates: outcome.duplicates, refused, effects })))
}

/// The body of `PUT .../stakeholders/{id}`: a profile without its id (the path has it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    #[serde(default = "default_kind")]
    kind: String,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    attrs: plaudit_sdk::Attrs,
}

fn default_kind() -> String {
    plaudit_sdk::stakeholder::DEFAULT_KIND.to_string()
}

/// Creates or updates a stakeholder's profile: a `profile` record, durable like any other, in
/// force from the next moment. Answers the profile, `201` if the stakeholder is new.
async fn put_profile(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<plaudit_core::reads::Profile>), ApiError> {
    let org = state.authorise(&org, &headers, Need::Ingest)?;
    let b: ProfileBody = json_body(&body)?;
    org.quotas.admit(1, std::time::Instant::now())?;
    let record = Record::Profile(plaudit_sdk::Stakeholder {
        id: id.clone(),
        kind: b.kind,
        team: b.team,
        name: b.name,
        attrs: b.attrs,
    });
    let wanted = id.clone();
    let (existed, ingested) = org
        .worker
        .run(move |d| {
            let existed = d.world().has_stakeholder(&wanted);
            let ingested = d.ingest(vec![record]).map(|outcome| (outcome, d.world_mut().profile(&wanted)));
            (existed, ingested)
        })
        .await?;
    let (outcome, profile) = ingested?;
    org.quotas.count(&outcome.rejected);
    if let Some(e) = outcome.rejected.first().filter(|e| e.code == quotas::CODE) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, quotas::CODE, e.message.clone()).field(e.field));
    }
    if let Some(e) = outcome.rejected.first() {
        let field = if e.field == "id" { "id".to_string() } else { e.field.to_string() };
        return Err(ApiError::bad_request("invalid_profile", format!("{}: {}", e.field, e.message)).field(field));
    }
    let profile =
        profile.ok_or_else(|| ApiError::internal(format!("stakeholder {id:?} was stored but is not in the world")))?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(profile)))
}

async fn get_profile(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<plaudit_core::reads::Profile>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Stakeholder(&id))?;
    let wanted = id.clone();
    org.worker
        .run(move |d| d.world_mut().profile(&wanted))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(&format!("stakeholder {id:?}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    team: Option<String>,
    around: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn get_leaderboard(
    State(state): State<Arc<AppState>>,
    UrlPath((org, board)): UrlPath<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<plaudit_core::reads::Page>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Public)?;
    let Query(p) = params.map_err(invalid_query)?;
    let limit = p.limit.unwrap_or(10);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be 1 to {MAX_PAGE}")).field("limit"));
    }
    // As the description says: 1 to 64 characters for a team, 1 to 128 for a stakeholder id,
    // no control characters in the id.
    let within = |s: &str, most: usize| !s.is_empty() && s.chars().count() <= most;
    if p.team.as_deref().is_some_and(|t| !within(t, 64)) {
        return Err(ApiError::bad_request("invalid_query", "team must be 1 to 64 characters").field("team"));
    }
    if p.around.as_deref().is_some_and(|a| !within(a, 128) || a.chars().any(|c| c.is_control())) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "around must be a stakeholder id: 1 to 128 characters, no control characters",
        )
        .field("around"));
    }
    let q = PageQuery { team: p.team, around: p.around, offset: p.offset, limit };
    let page = org.worker.run(move |d| d.world_mut().leaderboard(&board, &q)).await?;
    page.map(Json).map_err(|e| {
        let error = ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string());
        match e {
            ReadError::UnknownBoard(_) => error,
            ReadError::UnknownStakeholder(_) | ReadError::NotRanked(_) | ReadError::TeamNotRanked(_) => {
                error.field("around")
            }
            ReadError::TeamOfTeamBoard(_) => ApiError::bad_request("invalid_query", e.to_string()).field("team"),
        }
    })
}

async fn get_challenges(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<plaudit_core::reads::ChallengeView>>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Public)?;
    Ok(Json(org.worker.run(|d| d.world().challenges()).await?))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// The rule set's schemas as its types give them: `RuleSet` and each type it uses, by the
    /// names the description's `components.schemas` gives them.
    fn rule_set_schemas() -> serde_json::Map<String, serde_json::Value> {
        let settings = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| s.definitions_path = "/components/schemas/".into());
        let root = settings.into_generator().into_root_schema_for::<plaudit_core::ruleset::RuleSetDoc>();
        let mut root = serde_json::to_value(root).expect("a schema is JSON");
        let object = root.as_object_mut().expect("an object");
        // The types it uses are put where the definitions path says: the description's place.
        let defs = object
            .remove("components")
            .and_then(|c| c.get("schemas").and_then(|d| d.as_object().cloned()))
            .unwrap_or_default();
        object.remove("$schema");
        object.remove("title");
        let mut schemas = serde_json::Map::new();
        schemas.insert("RuleSet".into(), root);
        schemas.extend(defs);
        for schema in schemas.values_mut() {
            enum_of_documented_values(schema);
        }
        schemas
    }

    /// An enum whose values have doc comments comes out as a `oneOf` of `const`s, which
    /// generators handle badly (openapi-python-client tries the first alone): as an `enum`, the
    /// values' docs joined into its description.
    fn enum_of_documented_values(schema: &mut serde_json::Value) {
        let Some(options) = schema.get("oneOf").and_then(|o| o.as_array()) else { return };
        let consts: Option<Vec<(serde_json::Value, String)>> = options
            .iter()
            .map(|o| {
                let value = o.get("const").filter(|c| c.is_string())?.clone();
                let doc = o.get("description").and_then(|d| d.as_str()).unwrap_or("").to_string();
                Some((value, doc))
            })
            .collect();
        let Some(consts) = consts else { return };
        let docs: Vec<String> = consts.iter().map(|(v, d)| format!("`{}`: {d}", v.as_str().unwrap_or(""))).collect();
        let mut replaced = serde_json::json!({
            "type": "string",
            "enum": consts.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
            "description": docs.join("; "),
        });
        if let Some(own) = schema.get("description").and_then(|d| d.as_str()) {
            replaced["description"] = format!("{own} {}", replaced["description"].as_str().unwrap_or("")).into();
        }
        *schema = replaced;
    }

    /// The description's rule-set schemas are derived from the rule set's own types, so a field
    /// added to the rule set is described (and typed in generated clients) or this fails.
    /// `PLAUDIT_BLESS=1 cargo test -p plaudit-server rule_set_schema` writes them.
    #[test]
    fn the_rule_set_schema_in_the_description_is_the_one_its_types_give() {
        let expected = rule_set_schemas();
        let kept: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(RULE_SET_SCHEMAS).expect("rule-set.schema.json is JSON");
        if kept != expected {
            if std::env::var_os("PLAUDIT_BLESS").is_some() {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/rule-set.schema.json");
                let text = serde_json::to_string_pretty(&expected).expect("JSON") + "\n";
                std::fs::write(&path, text).expect("the schemas are written");
                return;
            }
            panic!(
                "the rule-set schemas differ from the types': run PLAUDIT_BLESS=1 cargo test -p plaudit-server rule_set_schema"
            );
        }
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).expect("the description is JSON");
        let schemas = spec["components"]["schemas"].as_object().expect("schemas");
        let clash: Vec<&String> = expected.keys().filter(|k| schemas.contains_key(*k)).collect();
        assert!(clash.is_empty(), "openapi.json must not define the rule set's schemas itself: {clash:?}");
        assert!(description()["components"]["schemas"]["RuleSet"]["properties"]["rule"].is_object());
    }

    /// A server state over an empty data directory, and that directory (to remove after).
    fn empty() -> (Arc<AppState>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("plaudit-http-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = ServerConfig { data: dir.clone(), ..ServerConfig::default() };
        (Arc::new(open(&config).expect("an empty data directory opens")), dir)
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let request = Request::post("/v1/orgs/acme/moments").body(Body::from(body)).expect("a request");
        let (state, dir) = empty();
        let response = router(state).oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_compare_by_hash_in_constant_time() {
        let stored = key_hash("pk_right");
        assert!(constant_time_eq(&stored, &key_hash("pk_right")));
        assert!(!constant_time_eq(&stored, &key_hash("pk_wrong")));
        assert_eq!(crate::datadir::unhex32(&hex(&stored)), Some(stored));
        assert_eq!(crate::datadir::unhex32("not hex"), None);
    }

    #[test]
    fn whole_numbers_may_be_written_with_no_fraction_and_nothing_else() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "whole")]
            n: u64,
            #[serde(default, deserialize_with = "whole_or_null")]
            m: Option<u64>,
        }
        let n = |json: &str| json_body::<Body>(json.as_bytes()).map(|b| (b.n, b.m)).map_err(|e| (e.message, e.field));
        assert_eq!(n(r#"{"n": 3}"#), Ok((3, None)));
        assert_eq!(n(r#"{"n": 3.0, "m": 5.0}"#), Ok((3, Some(5))));
        assert_eq!(n(r#"{"n": 3, "m": null}"#), Ok((3, None)));
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1, "m": -2.0}"#,
            r#"{"n": 18446744073709551616}"#,
            r#"{"n": 1e30}"#,
        ] {
            let (message, field) = n(bad).expect_err(bad);
            assert!(message.contains("a whole number of 0 or more"), "{bad}: {message}");
            assert!(field.is_some(), "{bad}: the field is named");
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(plaudit_core::input::named_field("unknown field `chanel`, expected one of"), Some("chanel"));
        assert_eq!(plaudit_core::input::named_field("missing field `at` at line 1"), Some("at"));
        assert_eq!(plaudit_core::input::named_field("expected value at line 1 column 1"), None);
    }
}
