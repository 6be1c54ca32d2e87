//! The cluster: several `plaudit serve` nodes on one PostgreSQL store, each organisation owned
//! by one node at a time, any node answering any request.
//!
//! **Owns** this node's part: its heartbeat, the leases it holds ([`plaudit_store::Leases`]:
//! every write to an organisation's log is fenced by its lease's epoch, in the store), acting
//! on the placement ([`crate::placement`]: taking the organisations placed here whose lease is
//! free, handing off those placed elsewhere), forwarding the requests of organisations owned
//! elsewhere to their owner ([`forward`]), `GET /v1/cluster` ([`get_cluster`]), and the
//! **upkeep thread**, which also reopens, in a cluster or not, an organisation whose world was
//! lost ([`crate::organisation::Organisation::lost`]: the store out of reach when the world
//! had to be brought back to the log). **Must not touch** an organisation's world (its worker
//! does) or the log (the store fences it).
//!
//! # The upkeep, every tick (a tenth of the lease, at most a second)
//!
//! 1. Heartbeat (this node alive, and its address), then renew every lease held. What the
//!    renewal did not return was taken by another node: the organisation is dropped here at
//!    once, writing nothing (its writes are fenced anyway). A node that could not renew for
//!    a whole lease answers `503` for its organisations rather than serve what may be stale.
//! 2. Read the live nodes (seen within a lease, not leaving) and the leases, place every
//!    organisation, and act: one placed here whose lease is free (never taken, expired,
//!    released) is taken and opened (its snapshot, then its log's tail); one held here but
//!    placed on another live node is handed off: its worker closed (a last snapshot, so the
//!    next owner replays little), then its lease released, which the next owner takes at its
//!    next tick. A node joining or leaving thus moves organisations with no coordination
//!    beyond the leases.
//!
//! # Failover
//!
//! When an owner dies, its leases expire within the lease time; the node each organisation
//! is now placed on takes it at its next tick and opens it from the store. Nothing
//! acknowledged is lost (an append is acknowledged only once committed) and nothing is
//! counted twice (the world's history of moment ids is rebuilt from the log: a client's retry
//! of an unacknowledged request meets its moments as duplicates). A paused owner that wakes up
//! cannot write: its next write is refused by the fence, its world dropped.
//!
//! # Forwarding
//!
//! A request for `/v1/orgs/{org}/...` that this node does not serve is sent on to the owner
//! the last tick saw (the header `x-plaudit-forwarded` marks it, and a node never forwards a
//! forwarded request again), streamed both ways; an organisation between owners answers `503`
//! with `Retry-After: 1`. Every answer names the node that made it in `x-plaudit-node`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use plaudit_core::ids::OrgId;
use plaudit_store::{Lease, NodeSeen, StoreError};
use serde::Serialize;

use super::error::ApiError;
use super::{AppState, OrgState};

/// The header a forwarded request carries: the name of the node that forwarded it.
pub const FORWARDED: &str = "x-plaudit-forwarded";
/// The header every answer of a node of a cluster carries: the node that made it.
pub const NODE: &str = "x-plaudit-node";

/// This node of the cluster: what it is, what it last saw, how it forwards.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) node: String,
    /// How the other nodes reach this one.
    pub(crate) address: String,
    pub(crate) ttl: Duration,
    /// The nodes, leases and placement the last tick saw.
    view: RwLock<View>,
    /// When the leases were last renewed.
    confirmed: Mutex<Option<Instant>>,
    /// Set once the node stops: it takes nothing more and hands everything off.
    leaving: AtomicBool,
    client: Client<HttpConnector, Body>,
    pub(crate) forwarded: AtomicU64,
    pub(crate) renewals_failed: AtomicU64,
    pub(crate) taken: AtomicU64,
    pub(crate) handed_off: AtomicU64,
    pub(crate) lost: AtomicU64,
}

/// What the last tick saw.
#[derive(Debug, Default)]
struct View {
    nodes: Vec<NodeSeen>,
    leases: Vec<Lease>,
    placement: BTreeMap<String, String>,
}

impl Cluster {
    pub(crate) fn new(node: String, address: String, ttl: Duration) -> Cluster {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Cluster {
            node,
            address,
            ttl,
            view: RwLock::new(View::default()),
            confirmed: Mutex::new(None),
            leaving: AtomicBool::new(false),
            client,
            forwarded: AtomicU64::new(0),
            renewals_failed: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            handed_off: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    /// Time between two ticks of the upkeep: a tenth of the lease, so that a dead owner's
    /// organisations are taken at most a tenth after its leases expire.
    pub(crate) fn tick(&self) -> Duration {
        (self.ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Whether the leases were renewed within a lease time: what this node serves is its own.
    fn confirmed(&self) -> bool {
        self.confirmed.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address of the live owner of `org` other than this node, as the last tick saw it.
    fn owner(&self, org: &str) -> Option<String> {
        let view = self.view();
        let lease = view.leases.iter().find(|l| l.org.as_str() == org && l.live())?;
        if lease.node == self.node {
            return None;
        }
        view.nodes.iter().find(|n| n.node == lease.node).map(|n| n.address.clone())
    }

    /// Resolves once the last tick no longer sees `address` as `org`'s live owner (it died, is
    /// paused past its lease, or handed the organisation on).
    async fn owner_gone(&self, org: &str, address: &str) {
        loop {
            tokio::time::sleep(self.tick()).await;
            if self.owner(org).as_deref() != Some(address) {
                return;
            }
        }
    }

    /// Sends `request` for `org` on to the node at `address` and hands its answer back,
    /// streamed. Given up (`503`) after `timeout`, or as soon as that node is no longer the
    /// owner: a request never waits on a paused node once another has taken over.
    async fn proxy(&self, org: &str, address: &str, request: Request, timeout: Duration) -> Response {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("{address}{path}").parse() else {
            return ApiError::internal(format!("cannot forward to {address}{path}")).into_response();
        };
        parts.uri = uri;
        parts.version = axum::http::Version::HTTP_11;
        for hop in [header::HOST, header::CONNECTION, header::TRANSFER_ENCODING, header::TE, header::UPGRADE] {
            parts.headers.remove(hop);
        }
        parts.headers.remove("keep-alive");
        if let Ok(node) = HeaderValue::from_str(&self.node) {
            parts.headers.insert(FORWARDED, node);
        }
        let answer = tokio::time::timeout(timeout, self.client.request(Request::from_parts(parts, body)));
        tokio::select! {
            answered = answer => match answered {
                Ok(Ok(response)) => {
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                    response.map(Body::new)
                }
                Ok(Err(e)) => ApiError::moving(&format!("the organisation's owner ({address}) did not answer: {e}"))
                    .into_response(),
                Err(_) => ApiError::moving(&format!(
                    "the organisation's owner ({address}) did not answer within {} ms",
                    timeout.as_millis()
                ))
                .into_response(),
            },
            () = self.owner_gone(org, address) => ApiError::moving(&format!(
                "{address} no longer owns the organisation; its next owner answers a retry"
            ))
            .into_response(),
        }
    }
}

/// The organisation a path names, for `/v1/orgs/{org}/...` (not `/v1/orgs` itself).
fn org_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/orgs/")?;
    let org = rest.split('/').next()?;
    (!org.is_empty()).then_some(org)
}

/// Where a request goes.
enum Route {
    Here,
    To(String),
    Wait(&'static str),
}

fn route(state: &AppState, cluster: &Cluster, org: &str, forwarded: bool) -> Route {
    let here = state.orgs().get(org).map(|e| e.state.clone());
    match here {
        Some(OrgState::Open(_) | OrgState::Opening(_) | OrgState::Failed(_)) if cluster.confirmed() => Route::Here,
        Some(OrgState::Open(_) | OrgState::Opening(_) | OrgState::Failed(_)) => {
            Route::Wait("this node cannot reach the store to confirm it still owns the organisation")
        }
        Some(OrgState::Moving) => Route::Wait("the organisation is moving to another node"),
        Some(OrgState::Elsewhere) | None => match (forwarded, cluster.owner(org)) {
            (false, Some(address)) => Route::To(address),
            // Not one this node knows of, nor any other: refused like a wrong key (401).
            (_, _) if here.is_none() => Route::Here,
            _ => Route::Wait("the organisation is between owners (another node takes it within the lease time)"),
        },
    }
}

/// The outermost layer of a node's router: requests of organisations owned elsewhere are
/// forwarded, every answer says which node made it. A server of one node passes through.
pub(crate) async fn forward(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(cluster) = &state.cluster else { return next.run(request).await };
    let forwarded = request.headers().contains_key(FORWARDED);
    let path = request.uri().path().to_string();
    let mut response = match org_of(&path).map(|org| route(&state, cluster, org, forwarded)) {
        None | Some(Route::Here) => next.run(request).await,
        Some(Route::To(address)) => {
            let timeout =
                if path.contains("/rules/simulate") || path.contains("/rules/apply") || path.contains("/plugins/") {
                    Duration::from_secs(30 * 60)
                } else {
                    Duration::from_millis(state.limits.request_timeout_ms) + Duration::from_secs(1)
                };
            cluster.proxy(org_of(&path).unwrap_or_default(), &address, request, timeout).await
        }
        Some(Route::Wait(why)) => ApiError::moving(why).into_response(),
    };
    if !response.headers().contains_key(NODE)
        && let Ok(node) = HeaderValue::from_str(&cluster.node)
    {
        response.headers_mut().insert(NODE, node);
    }
    response
}

/// Starts the upkeep thread, once: it reopens lost organisations and, in a cluster, ticks.
pub(crate) fn start_upkeep(state: &Arc<AppState>) {
    let Some(reopened) = state.reopen_queue.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
    let weak = Arc::downgrade(state);
    let spawned = std::thread::Builder::new().name("upkeep".into()).spawn(move || upkeep(&weak, &reopened));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the upkeep thread: lost organisations are not reopened");
    }
}

fn upkeep(weak: &Weak<AppState>, reopened: &std::sync::mpsc::Receiver<String>) {
    let tick = weak.upgrade().and_then(|s| s.cluster.as_ref().map(Cluster::tick)).unwrap_or(Duration::from_secs(1));
    // Organisations to open again, and when next to try.
    let mut retry: BTreeMap<String, Instant> = BTreeMap::new();
    let mut last_tick: Option<Instant> = None;
    loop {
        let wait = last_tick.map_or(Duration::ZERO, |t| tick.saturating_sub(t.elapsed()));
        let message = reopened.recv_timeout(wait.max(Duration::from_millis(10)));
        // Until the server is gone: while it stops, its requests drain under leases still
        // renewed, and then it hands everything off ([`AppState::leave`]), taking nothing more.
        let Some(state) = weak.upgrade() else { return };
        match message {
            Ok(name) => {
                retry.insert(name, Instant::now());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let due: Vec<String> = retry.iter().filter(|(_, at)| **at <= Instant::now()).map(|(n, _)| n.clone()).collect();
        for name in due {
            retry.remove(&name);
            if state.reopen(&name) {
                retry.insert(name, Instant::now() + Duration::from_secs(1));
            }
        }
        if let Some(cluster) = &state.cluster
            && last_tick.is_none_or(|t| t.elapsed() >= tick)
        {
            last_tick = Some(Instant::now());
            if let Err(e) = state.tick(cluster) {
                cluster.renewals_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(node = %cluster.node, error = %e, "cluster upkeep: the store did not answer; trying again next tick");
            }
        } else if state.cluster.is_none() {
            last_tick = Some(Instant::now());
        }
    }
}

/// Waits for `future` on the server's runtime from a thread of its own.
fn wait<F: std::future::Future>(state: &AppState, future: F) -> Option<F::Output> {
    match state.runtime.get() {
        Some(runtime) => Some(runtime.block_on(future)),
        None => tokio::runtime::Builder::new_current_thread().enable_all().build().ok().map(|r| r.block_on(future)),
    }
}

impl AppState {
    /// One tick of this node's upkeep (see the module's docs).
    fn tick(self: &Arc<Self>, cluster: &Cluster) -> Result<(), StoreError> {
        let Some(leases) = self.store.leases() else { return Ok(()) };
        let leaving = cluster.leaving.load(Ordering::SeqCst);
        leases.heartbeat(&cluster.address, leaving)?;
        leases.renew()?;
        *cluster.confirmed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let served: Vec<String> = self
            .orgs()
            .iter()
            .filter(|(_, e)| matches!(e.state, OrgState::Open(_) | OrgState::Opening(_) | OrgState::Failed(_)))
            .map(|(n, _)| n.clone())
            .collect();
        // Read after what is served: an organisation created here meanwhile holds its lease
        // before it is served, so it is never taken for a lost one.
        let held: BTreeSet<String> = leases.held().into_iter().map(|(org, _)| org.to_string()).collect();
        for name in served.iter().filter(|n| !held.contains(*n)) {
            self.lose(cluster, name);
        }
        if leaving {
            return Ok(());
        }
        let nodes = leases.nodes()?;
        let all = leases.leases()?;
        let orgs: Vec<String> = self.store.organisations()?.iter().map(|o| o.to_string()).collect();
        let ttl_ms = cluster.ttl.as_millis() as u64;
        let mut live: Vec<&str> =
            nodes.iter().filter(|n| !n.leaving && n.seen_ms_ago < ttl_ms).map(|n| n.node.as_str()).collect();
        if !live.contains(&cluster.node.as_str()) {
            live.push(&cluster.node);
        }
        let names: Vec<&str> = orgs.iter().map(String::as_str).collect();
        let placement = crate::placement::place(&names, &live);
        self.know(&orgs);
        let by_org: HashMap<&str, &Lease> = all.iter().map(|l| (l.org.as_str(), l)).collect();
        for org in &orgs {
            let Some(&target) = placement.get(org.as_str()) else { continue };
            if held.contains(org) {
                if target != cluster.node {
                    self.hand_off(cluster, org);
                }
            } else if target == cluster.node && by_org.get(org.as_str()).is_none_or(|l| !l.live()) {
                let Ok(id) = OrgId::parse(org) else { continue };
                if leases.acquire(&id)?.is_some() {
                    cluster.taken.fetch_add(1, Ordering::Relaxed);
                    self.take(org);
                }
            }
        }
        let placement = placement.into_iter().map(|(o, n)| (o.to_string(), n.to_string())).collect();
        *cluster.view.write().unwrap_or_else(PoisonError::into_inner) = View { nodes, leases: all, placement };
        Ok(())
    }

    /// Entries, served elsewhere, for the organisations of the store this node did not know.
    fn know(&self, orgs: &[String]) {
        let unknown: Vec<String> = {
            let known = self.orgs();
            orgs.iter().filter(|o| !known.contains_key(*o)).cloned().collect()
        };
        if unknown.is_empty() {
            return;
        }
        // Their keys read now, as a node starting reads them: one this node takes later is then
        // answered 503 while it opens, not 401 for want of its key.
        let read: Vec<_> = unknown.into_iter().map(|org| (self.reloaded(&org).unwrap_or_default(), org)).collect();
        let mut known = self.orgs_mut();
        for ((key_hash, access), org) in read {
            known.entry(org).or_insert_with(|| super::OrgEntry { key_hash, access, state: OrgState::Elsewhere });
        }
    }

    /// Opens `org`, whose lease this node just took, on a thread of its own.
    fn take(self: &Arc<Self>, org: &str) {
        if let Some(entry) = self.orgs_mut().get_mut(org) {
            entry.state = OrgState::Opening(Instant::now());
        }
        tracing::info!(org, "organisation taken: opening it here");
        let (state, name) = (Arc::clone(self), org.to_string());
        let spawned = std::thread::Builder::new().name(format!("open-{org}")).spawn(move || {
            if state.open_one(&name) {
                // The store is out of reach: the upkeep tries again.
                let _ = state.reopen_tx.send(name);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread to open an organisation");
        }
    }

    /// Hands `org`, served here, off to the node it is placed on: its worker closed (a last
    /// snapshot), then its lease released. Only from serving (or failed): one opening or
    /// moving is left to its next tick.
    fn hand_off(self: &Arc<Self>, cluster: &Cluster, org: &str) {
        let previous = {
            let mut orgs = self.orgs_mut();
            let Some(entry) = orgs.get_mut(org) else { return };
            match &entry.state {
                OrgState::Open(_) | OrgState::Failed(_) => std::mem::replace(&mut entry.state, OrgState::Moving),
                _ => return,
            }
        };
        cluster.handed_off.fetch_add(1, Ordering::Relaxed);
        tracing::info!(org, "organisation placed on another node: handing it off");
        let (state, name) = (Arc::clone(self), org.to_string());
        let spawned = std::thread::Builder::new().name(format!("hand-off-{org}")).spawn(move || {
            if let OrgState::Open(served) = previous
                && let Some(Err(e)) = wait(&state, served.worker.close())
            {
                tracing::warn!(org = %name, error = %e.message, "closing the organisation before handing it off");
            }
            if let (Some(leases), Ok(id)) = (state.store.leases(), OrgId::parse(&name))
                && let Err(e) = leases.release(&id)
            {
                tracing::warn!(org = %name, error = %e, "releasing the lease: it expires by itself");
            }
            if let Some(entry) = state.orgs_mut().get_mut(&name) {
                entry.state = OrgState::Elsewhere;
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread to hand an organisation off");
        }
    }

    /// Drops `org`, whose lease another node took: its worker stopped without writing.
    fn lose(&self, cluster: &Cluster, org: &str) {
        let previous = match self.orgs_mut().get_mut(org) {
            Some(entry) => std::mem::replace(&mut entry.state, OrgState::Elsewhere),
            None => return,
        };
        cluster.lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(org, "organisation lost: another node holds its lease now; dropped here");
        if let OrgState::Open(served) = previous
            && let Some(runtime) = self.runtime.get()
        {
            runtime.spawn(async move {
                let _ = served.worker.abandon().await;
            });
        }
    }

    /// The node leaving: it takes nothing more, and every organisation it serves is closed
    /// (a last snapshot) and its lease released, one by one, for the other nodes to take.
    pub(crate) async fn leave(&self) {
        let Some(cluster) = &self.cluster else { return };
        cluster.leaving.store(true, Ordering::SeqCst);
        let store = Arc::clone(&self.store);
        let address = cluster.address.clone();
        let said = tokio::task::spawn_blocking(move || store.leases().map(|l| l.heartbeat(&address, true))).await;
        if let Ok(Some(Err(e))) = said {
            tracing::warn!(error = %e, "cannot say this node is leaving: its leases expire by themselves");
        }
        for (name, served) in self.open_orgs() {
            if let Some(entry) = self.orgs_mut().get_mut(&name) {
                entry.state = OrgState::Moving;
            }
            if let Err(e) = served.worker.close().await {
                tracing::warn!(org = %name, error = %e.message, "closing the organisation");
            }
            self.release(&name).await;
        }
        // Those that failed to open, or are opening: released too (an opening one's worker is
        // fenced out once released).
        let held: Vec<String> =
            self.store.leases().map(|l| l.held().into_iter().map(|(o, _)| o.to_string()).collect()).unwrap_or_default();
        for name in held {
            self.release(&name).await;
        }
    }

    async fn release(&self, name: &str) {
        let store = Arc::clone(&self.store);
        let Ok(org) = OrgId::parse(name) else { return };
        let released = tokio::task::spawn_blocking(move || store.leases().map(|l| l.release(&org))).await;
        if let Ok(Some(Err(e))) = released {
            tracing::warn!(org = name, error = %e, "releasing the lease: it expires by itself");
        }
        if let Some(entry) = self.orgs_mut().get_mut(name) {
            entry.state = OrgState::Elsewhere;
        }
    }
}

/// `GET /v1/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    node: String,
    lease_ms: u64,
    nodes: Vec<NodeView>,
    leases: Vec<LeaseView>,
    placement: Vec<Placed>,
}

#[derive(Debug, Serialize)]
struct NodeView {
    node: String,
    address: String,
    live: bool,
    leaving: bool,
    seen_ms_ago: u64,
    /// Organisations whose live lease it holds.
    owns: usize,
}

#[derive(Debug, Serialize)]
struct LeaseView {
    org: String,
    node: String,
    epoch: u64,
    expires_in_ms: i64,
}

#[derive(Debug, Serialize)]
struct Placed {
    org: String,
    node: String,
}

/// `GET /v1/cluster` (admin key): the nodes, the leases (read from the store now) and the
/// placement this node last acted on.
pub async fn get_cluster(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<axum::Json<ClusterView>, ApiError> {
    state.authorise_admin(&headers)?;
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_clustered",
            "this server is no node of a cluster ([cluster] node, PLAUDIT_NODE, is unset)",
        ));
    };
    let store = Arc::clone(&state.store);
    let read = tokio::task::spawn_blocking(move || match store.leases() {
        Some(l) => Ok((l.nodes()?, l.leases()?)),
        None => Ok((Vec::new(), Vec::new())),
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e: StoreError| ApiError::from_store(&e))?;
    let (nodes, leases) = read;
    let ttl_ms = cluster.ttl.as_millis() as u64;
    let nodes = nodes
        .into_iter()
        .map(|n| NodeView {
            owns: leases.iter().filter(|l| l.live() && l.node == n.node).count(),
            live: !n.leaving && n.seen_ms_ago < ttl_ms,
            node: n.node,
            address: n.address,
            leaving: n.leaving,
            seen_ms_ago: n.seen_ms_ago,
        })
        .collect();
    let leases = leases
        .into_iter()
        .map(|l| LeaseView { org: l.org.to_string(), node: l.node, epoch: l.epoch, expires_in_ms: l.expires_in_ms })
        .collect();
    let placement =
        cluster.view().placement.iter().map(|(org, node)| Placed { org: org.clone(), node: node.clone() }).collect();
    Ok(axum::Json(ClusterView { node: cluster.node.clone(), lease_ms: ttl_ms, nodes, leases, placement }))
}

/// The cluster's lines of `/metrics`.
pub(crate) fn render_metrics(cluster: &Cluster, owned: usize, out: &mut String) {
    use std::fmt::Write;
    let counters = [
        (
            "plaudit_cluster_forwarded_total",
            "Requests forwarded to the owner of their organisation.",
            &cluster.forwarded,
        ),
        (
            "plaudit_cluster_upkeep_failures_total",
            "Ticks whose heartbeat or renewal the store did not answer.",
            &cluster.renewals_failed,
        ),
        ("plaudit_cluster_taken_total", "Leases taken: organisations this node began to serve.", &cluster.taken),
        (
            "plaudit_cluster_handed_off_total",
            "Organisations handed off to the node they are placed on.",
            &cluster.handed_off,
        ),
        ("plaudit_cluster_lost_total", "Organisations dropped because another node took their lease.", &cluster.lost),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{}\"}} {}",
            cluster.node,
            value.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP plaudit_cluster_leases_held Leases this node holds.\n# TYPE plaudit_cluster_leases_held gauge\nplaudit_cluster_leases_held{{node=\"{}\"}} {owned}",
        cluster.node
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_organisations_own_paths_are_routed() {
        assert_eq!(org_of("/v1/orgs/acme/moments"), Some("acme"));
        assert_eq!(org_of("/v1/orgs/acme"), Some("acme"));
        assert_eq!(org_of("/v1/orgs"), None);
        assert_eq!(org_of("/v1/orgs/"), None);
        assert_eq!(org_of("/v1/cluster"), None);
        assert_eq!(org_of("/healthz"), None);
    }
}
