//! The HTTP API (DESIGN section 6) on axum: product teams send moments and read profiles,
//! leaderboards and challenges.
//!
//! **Owns** the routes, authentication (per-organisation keys, stored as SHA-256 hashes and
//! compared in constant time), request limits and the JSON error body ([`error`]). Each
//! organisation's world lives on its own thread ([`worker`]); handlers only parse, check keys,
//! and hand jobs over. **Must not touch** a `World` directly or block the async runtime.
//!
//! The data directory's layout (shared with `plaudit import`) is [`crate::datadir`]'s.
//!
//! Served so far: `POST /v1/orgs/{org}/moments`, `GET /v1/orgs/{org}/stakeholders/{id}`,
//! `GET /v1/orgs/{org}/leaderboards/{board}`, `GET /v1/orgs/{org}/challenges`, `GET /healthz`,
//! `GET /metrics` (Prometheus text), `GET /openapi.json` (described in `openapi.json`).

pub mod error;
pub mod metrics;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use plaudit_sdk::{Effect, Record};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::error::ApiError;
use self::worker::Worker;
use crate::OrgWorld;
use crate::datadir::DataDir;
use crate::ids::OrgId;
use crate::log::Durable;
use crate::reads::{PageQuery, ReadError};
use crate::store::{RedbStore, Store};

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Most records in one `POST .../moments`.
pub const MAX_BATCH: usize = 1000;
/// Batches up to this size get their effects in the response.
pub const EFFECTS_IN_RESPONSE: usize = 100;
/// Most leaderboard rows in one page.
pub const MAX_PAGE: usize = 500;

/// What the server needs to know about an organisation.
#[derive(Debug)]
struct Org {
    key_hash: [u8; 32],
    worker: Worker,
}

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    orgs: HashMap<String, Org>,
    metrics: metrics::Metrics,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn data_error(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Data { path: path.to_path_buf(), message: message.into() }
}

/// The SHA-256 of a key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal without an early exit, so the time taken says nothing about where keys differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates organisation `org` in `data` from a rule-set file, with a fresh key, which is
/// returned (only its hash is kept). Fails if the organisation exists.
pub fn create_org(data: &Path, rules: &Path) -> Result<(OrgId, String), ServeError> {
    let data = DataDir::new(data);
    let world = OrgWorld::from_rules_file(rules).map_err(|e| data_error(rules, e.to_string()))?;
    let org = OrgId::parse(&world.program().org_id).map_err(|e| data_error(rules, e.to_string()))?;
    let dir = data.org(&org);
    if dir.exists() {
        return Err(data_error(&dir, "the organisation exists already"));
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(rules, data.rules(&org))?;
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret).map_err(|e| data_error(&dir, format!("no randomness for a key: {e}")))?;
    let key = format!("pk_{}", hex(&secret));
    std::fs::write(data.key_hash(&org), hex(&key_hash(&key)) + "\n")?;
    Ok((org, key))
}

/// Opens every organisation in `data` (replaying its log) and starts its worker.
pub fn open(data: &Path) -> Result<AppState, ServeError> {
    let data = DataDir::new(data);
    std::fs::create_dir_all(data.orgs())?;
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(data.store())?);
    let mut orgs = HashMap::new();
    for org in data.organisations()? {
        let org = org.map_err(|dir| data_error(&dir, "not an organisation id"))?;
        let name = org.as_str().to_string();
        let key_file = data.key_hash(&org);
        let key_hash = std::fs::read_to_string(&key_file)
            .ok()
            .and_then(|t| unhex(&t))
            .ok_or_else(|| data_error(&key_file, "missing, or not a hex SHA-256"))?;
        let rules = data.rules(&org);
        let world = OrgWorld::from_rules_file(&rules).map_err(|e| data_error(&rules, e.to_string()))?;
        let (durable, _) = Durable::open(Arc::clone(&store), org, world)?;
        orgs.insert(name, Org { key_hash, worker: Worker::start(durable)? });
    }
    Ok(AppState { orgs, metrics: metrics::Metrics::default() })
}

impl AppState {
    pub fn organisations(&self) -> impl Iterator<Item = &str> {
        self.orgs.keys().map(String::as_str)
    }

    /// The organisation `org`, if `headers` carry its key. Unknown organisations and wrong keys
    /// look alike from outside (404 vs 401 would tell which organisations exist).
    fn authorise(&self, org: &str, headers: &HeaderMap) -> Result<&Org, ApiError> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let hash = key_hash(given.trim());
        match self.orgs.get(org) {
            Some(o) if constant_time_eq(&o.key_hash, &hash) => Ok(o),
            Some(_) => Err(ApiError::unauthorized()),
            None => Err(ApiError::not_found(&format!("organisation {org:?}"))),
        }
    }
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/orgs/{org}/moments", post(post_moments))
        .route("/v1/orgs/{org}/stakeholders/{id}", get(get_profile))
        .route("/v1/orgs/{org}/leaderboards/{board}", get(get_leaderboard))
        .route("/v1/orgs/{org}/challenges", get(get_challenges))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn get_metrics(State(state): State<Arc<AppState>>) -> ([(header::HeaderName, &'static str); 1], String) {
    let mut plugins = Vec::new();
    let mut orgs: Vec<(&String, &Org)> = state.orgs.iter().collect();
    orgs.sort_by_key(|(name, _)| *name);
    for (name, org) in orgs {
        if let Ok(statuses) = org.worker.run(|d| d.world().plugins()).await {
            for s in statuses {
                plugins.push((name.clone(), s.name, s.calls, s.failed_calls, s.moments));
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&plugins))
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The OpenAPI description of the routes served (kept beside this file; a test checks it
/// against the running server).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The answer to `POST .../moments`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ingested {
    pub accepted: usize,
    pub duplicates: usize,
    /// The effects of the batch, when it had at most [`EFFECTS_IN_RESPONSE`] records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<Vec<Effect>>,
}

/// One record or an array of them, each a JSON object as in a moments file.
fn parse_records(body: &[u8]) -> Result<Vec<Record>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not JSON: {e}")))?;
    let (items, array) = match value {
        serde_json::Value::Array(items) => (items, true),
        other => (vec![other], false),
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
            let at = if array { format!("[{i}]") } else { String::new() };
            let line = item.to_string();
            crate::input::parse_record(&line).map_err(|message| {
                let error = ApiError::bad_request("invalid_record", format!("record{at}: {message}"));
                match field_of(&message) {
                    Some(field) if at.is_empty() => error.field(field),
                    Some(field) => error.field(format!("{at}.{field}")),
                    None if at.is_empty() => error,
                    None => error.field(at),
                }
            })
        })
        .collect()
}

/// The field a record's parse error is about: serde names it in backquotes (`unknown field
/// `chanel``, `missing field `at``).
fn field_of(message: &str) -> Option<&str> {
    let rest = message.split_once("field `")?.1;
    rest.split_once('`').map(|(field, _)| field)
}

async fn post_moments(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let org = state.authorise(&org, &headers)?;
    let records = parse_records(&body)?;
    let n = records.len();
    let (outcome, effects) = org.worker.ingest(records, n <= EFFECTS_IN_RESPONSE).await?.map_err(ApiError::internal)?;
    state.metrics.accepted.fetch_add(outcome.accepted as u64, std::sync::atomic::Ordering::Relaxed);
    state.metrics.duplicates.fetch_add(outcome.duplicates as u64, std::sync::atomic::Ordering::Relaxed);
    if let Some(e) = outcome.rejected.first() {
        // A refused record is refused alone; the rest is durable. Say which and why.
        let message = format!(
            "record [{}]: {}: {} ({} accepted, {} refused)",
            e.index,
            e.field,
            e.message,
            outcome.accepted,
            outcome.rejected.len()
        );
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_record", message)
            .field(format!("[{}].{}", e.index, e.field)));
    }
    let effects = (n <= EFFECTS_IN_RESPONSE).then_some(effects);
    let status = if outcome.accepted > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Ingested { accepted: outcome.accepted, duplicates: outcome.duplicates, effects })))
}

async fn get_profile(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<crate::reads::Profile>, ApiError> {
    let org = state.authorise(&org, &headers)?;
    let wanted = id.clone();
    org.worker
        .run(move |d| d.world().profile(&wanted))
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
) -> Result<Json<crate::reads::Page>, ApiError> {
    let org = state.authorise(&org, &headers)?;
    let Query(p) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = p.limit.unwrap_or(10);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be 1 to {MAX_PAGE}")).field("limit"));
    }
    let q = PageQuery { team: p.team, around: p.around, offset: p.offset, limit };
    let page = org.worker.run(move |d| d.world().leaderboard(&board, &q)).await?;
    page.map(Json).map_err(|e| {
        let error = ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string());
        match e {
            ReadError::UnknownBoard(_) => error,
            ReadError::UnknownStakeholder(_) | ReadError::NotRanked(_) => error.field("around"),
        }
    })
}

async fn get_challenges(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<crate::reads::ChallengeView>>, ApiError> {
    let org = state.authorise(&org, &headers)?;
    Ok(Json(org.worker.run(|d| d.world().challenges()).await?))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn empty() -> Arc<AppState> {
        Arc::new(AppState { orgs: HashMap::new(), metrics: metrics::Metrics::default() })
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let request = Request::post("/v1/orgs/acme/moments").body(Body::from(body)).expect("a request");
        let response = router(empty()).oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn keys_compare_by_hash_in_constant_time() {
        let stored = key_hash("pk_right");
        assert!(constant_time_eq(&stored, &key_hash("pk_right")));
        assert!(!constant_time_eq(&stored, &key_hash("pk_wrong")));
        assert_eq!(unhex(&hex(&stored)), Some(stored));
        assert_eq!(unhex("not hex"), None);
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(field_of("unknown field `chanel`, expected one of"), Some("chanel"));
        assert_eq!(field_of("missing field `at` at line 1"), Some("at"));
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }
}
