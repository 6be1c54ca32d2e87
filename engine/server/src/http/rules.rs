//! `PUT /v1/orgs/{org}/rules`, `GET /v1/orgs/{org}/rules` and
//! `POST /v1/orgs/{org}/rules/simulate`: community managers publish a rule set (TOML, or its
//! JSON equivalent), read the one in force, and preview a candidate against history.
//!
//! **Owns** the media types and the answers. Publishing is the log step's
//! ([`crate::organisation::Organisation::publish_rules`]), run on the organisation's worker; the what-if
//! ([`crate::organisation::what_if`]) runs as one of the organisation's background jobs over the store
//! ([`super::budget::Jobs`]: queued, one at a time, within a memory bound), so the organisation
//! keeps serving moments while it runs. `POST /v1/orgs/{org}/rules/apply` likewise replays the
//! history under the rule set as a job ([`crate::organisation::rebuild`]); the worker only catches that
//! up and merges it ([`crate::organisation::Organisation::apply_rebuilt_history`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::keys::Need;
use super::{Admitted, AppState};
use plaudit_core::application::Mode;
use plaudit_core::ids::OrgId;
use plaudit_core::ruleset::Format;

/// Most stakeholders listed in a what-if's `details` when the request does not say.
pub const SIMULATE_DETAILS: usize = 100;
/// Most stakeholders a what-if lists.
pub const MAX_SIMULATE_DETAILS: usize = 10_000;

/// A rule-set body: its format from `Content-Type`, its text UTF-8.
fn rules_body(headers: &HeaderMap, body: &Bytes) -> Result<(String, Format), ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let format = match essence.as_str() {
        "application/toml" | "text/toml" | "text/x-toml" => Format::Toml,
        "application/json" => Format::Json,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {media:?}: send a rule set as application/toml or application/json"),
            ));
        }
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request("invalid_rules", format!("the rule set is not UTF-8: {e}")))?;
    Ok((text.to_string(), format))
}

/// The answer to a publication.
#[derive(Debug, Serialize, Deserialize)]
pub struct Published {
    pub version: u64,
    /// The rule set is in force for records after this sequence number.
    pub after: u64,
}

pub async fn put_rules(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Published>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Manage)?;
    let (text, format) = rules_body(&headers, &body)?;
    let published = org
        .worker
        .run(move |d| d.publish_rules(&text, format).map(|p| Published { version: p.version, after: p.after.0 }))
        .await??;
    Ok(Json(published))
}

pub async fn get_rules(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let org = state.authorise(&org, &headers, Need::Read)?;
    let rules = org.worker.run(|d| d.rules().clone()).await?;
    rule_set_answer(&headers, rules.text, rules.format, rules.version)
}

/// A rule set's text as published by default; the other form, converted, when `Accept` prefers
/// it; its version in `plaudit-rules-version`.
fn rule_set_answer(headers: &HeaderMap, text: String, stored: Format, version: u64) -> Result<Response, ApiError> {
    let other = match stored {
        Format::Toml => Format::Json,
        Format::Json => Format::Toml,
    };
    let wanted = super::accept::choose(headers, &[stored.media_type(), other.media_type()])?;
    let (text, format) = if wanted == stored.media_type() { (text, stored) } else { (convert(&text, stored)?, other) };
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    h.insert("plaudit-rules-version", HeaderValue::from(version));
    Ok(response)
}

/// One published version of the rule set.
#[derive(Debug, Serialize)]
pub struct VersionView {
    /// 1 for the rule set the organisation was created with, then one more a publication.
    pub version: u64,
    /// In force for records after this sequence number (until the next version).
    pub after: u64,
    /// As published: `toml` or `json`.
    pub format: &'static str,
    /// Its text's length in bytes, as published.
    pub bytes: usize,
}

/// `GET /v1/orgs/{org}/rules/versions`'s answer: every version, oldest first.
#[derive(Debug, Serialize)]
pub struct Versions {
    pub versions: Vec<VersionView>,
    /// The version in force.
    pub current: u64,
}

/// The published rule sets of organisation `org`, oldest first, each with its version and its
/// change (read from the log of changes, which keeps every one).
async fn published(state: &AppState, org: &str) -> Result<Vec<(u64, plaudit_store::LoggedChange)>, ApiError> {
    let changes = state.with_store(org, |store, org| store.changes(org)).await?;
    let rules = changes.into_iter().filter(|c| matches!(c.change, plaudit_store::Change::Rules { .. }));
    Ok((1..).zip(rules).collect())
}

/// `GET /v1/orgs/{org}/rules/versions`: every version of the rule set, oldest first.
pub async fn get_versions(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Versions>, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let current = admitted.worker.run(|d| d.rules().version).await?;
    let versions = published(&state, &org)
        .await?
        .into_iter()
        .filter_map(|(version, logged)| match logged.change {
            plaudit_store::Change::Rules { text, format } => {
                let format = if format == Format::Toml { "toml" } else { "json" };
                Some(VersionView { version, after: logged.after.0, format, bytes: text.len() })
            }
            _ => None,
        })
        .collect();
    Ok(Json(Versions { versions, current }))
}

/// `GET /v1/orgs/{org}/rules/versions/{version}`: that version's text, negotiated like the rule
/// set in force (to publish it again is a rollback).
pub async fn get_version(
    State(state): State<Arc<AppState>>,
    UrlPath((org, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    drop(admitted);
    let wanted: u64 = version.parse().map_err(|_| {
        ApiError::bad_request("invalid_path", format!("{version:?} is not a version (1, 2, ...)")).field("version")
    })?;
    let found = published(&state, &org).await?.into_iter().find(|(v, _)| *v == wanted);
    match found.map(|(_, logged)| logged.change) {
        Some(plaudit_store::Change::Rules { text, format }) => rule_set_answer(&headers, text, format, wanted),
        _ => Err(ApiError::not_found(&format!("version {wanted} of the rule set"))),
    }
}

/// A rule set's text in the other format: TOML as JSON (a date-time as its RFC 3339 text), or
/// JSON as TOML (`406` if it holds what TOML cannot: a `null`).
fn convert(text: &str, from: Format) -> Result<String, ApiError> {
    let unconvertible = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!("the rule set cannot be given in the other format ({e}); ask for {}", from.media_type()),
        )
    };
    match from {
        Format::Toml => {
            let value: toml::Value = toml::from_str(text).map_err(|e| unconvertible(&e))?;
            serde_json::to_string_pretty(&json_of(value)).map_err(|e| unconvertible(&e))
        }
        Format::Json => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| unconvertible(&e))?;
            toml::to_string_pretty(&value).map_err(|e| unconvertible(&e))
        }
    }
}

fn json_of(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.into_iter().map(json_of).collect()),
        toml::Value::Table(table) => J::Object(table.into_iter().map(|(k, v)| (k, json_of(v))).collect()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateParams {
    /// Most stakeholders to list in `details` (largest change first).
    limit: Option<usize>,
    /// What applying the candidate to history would do: `rebase` (the default: the candidate
    /// in force from the start) or `additive`.
    mode: Option<Mode>,
}

fn check_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(SIMULATE_DETAILS);
    if limit > MAX_SIMULATE_DETAILS {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be at most {MAX_SIMULATE_DETAILS}"))
            .field("limit"));
    }
    Ok(limit)
}

/// The size of `handle`'s history: stakeholders and records, for a job's memory estimate.
async fn history_size(handle: &Admitted) -> Result<(usize, u64), ApiError> {
    handle.worker.run(|d| (d.world().stakeholders(), d.world().last_seq().0)).await
}

/// The what-if of `text` over `org`'s log, as a job of the organisation's (see
/// [`super::budget::Jobs`]): it replays the whole log twice (three times for `additive`).
async fn preview(
    state: &AppState,
    handle: &Admitted,
    org: &str,
    text: String,
    format: Format,
    mode: Mode,
    limit: usize,
) -> Result<plaudit_core::simulate::Diff, ApiError> {
    let id = OrgId::parse(org).map_err(|e| ApiError::not_found(&format!("organisation: {e}")))?;
    let store = Arc::clone(state.store());
    let (stakeholders, records) = history_size(handle).await?;
    let worlds = if mode == Mode::Additive { 3 } else { 2 };
    let memory = super::budget::replay_mb(worlds, stakeholders, records);
    let job = move || crate::organisation::what_if(store, &id, &text, format, mode);
    let mut diff = state.jobs.run(org, "the what-if", memory, job).await??;
    diff.details.truncate(limit);
    Ok(diff)
}

pub async fn post_simulate(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<SimulateParams>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Json<plaudit_core::simulate::Diff>, ApiError> {
    let handle = state.authorise(&org, &headers, Need::Manage)?;
    let Query(params) = params.map_err(super::invalid_query)?;
    let limit = check_limit(params.limit)?;
    let (text, format) = rules_body(&headers, &body)?;
    Ok(Json(preview(&state, &handle, &org, text, format, params.mode.unwrap_or(Mode::Rebase), limit).await?))
}

/// `POST /v1/orgs/{org}/rules/apply`: apply the rule set in force to history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    pub mode: Mode,
    /// The version in force, as the caller previewed it: a newer one is refused (409).
    #[serde(deserialize_with = "super::whole")]
    pub version: u64,
    /// Only answer what the application would do (the what-if diff), changing nothing.
    #[serde(default)]
    pub preview: bool,
    /// With `preview`: most stakeholders to list in `details`.
    #[serde(default, deserialize_with = "super::whole_or_null")]
    pub limit: Option<u64>,
}

/// The answer to an application (or, with `preview`, the diff).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ApplyAnswer {
    Applied(crate::organisation::Applied),
    Preview(Box<plaudit_core::simulate::Diff>),
}

pub async fn post_apply(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ApplyAnswer>, ApiError> {
    let handle = state.authorise(&org, &headers, Need::Manage)?;
    let body: ApplyBody = super::json_body(&body)?;
    let limit =
        check_limit(body.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX))).map_err(|e| e.field("limit"))?;
    let mode = body.mode;
    let version = body.version;
    let stale = move |now: u64| {
        ApiError::new(
            StatusCode::CONFLICT,
            "version_mismatch",
            format!("version {version} is not the rule set in force: version {now} is; preview it and apply that"),
        )
        .field("version")
    };
    if body.preview {
        let rules = handle.worker.run(|d| d.rules().clone()).await?;
        if rules.version != version {
            return Err(stale(rules.version));
        }
        let diff = preview(&state, &handle, &org, rules.text, rules.format, mode, limit).await?;
        return Ok(Json(ApplyAnswer::Preview(Box::new(diff))));
    }
    // The replay under the rule set runs on a blocking thread while the organisation goes on;
    // its worker then catches it up with what came meanwhile and merges it.
    let plan = handle
        .worker
        .run(move |d| match d.rules().version {
            now if now != version => Err(stale(now)),
            _ => Ok(d.rebuild_plan()),
        })
        .await??;
    let (stakeholders, records) = history_size(&handle).await?;
    let memory = super::budget::replay_mb(1, stakeholders, records);
    let job = move || crate::organisation::rebuild(plan);
    let rebuilt = state.jobs.run(&org, "the replay under the rule set", memory, job).await??;
    let applied = handle
        .worker
        .run(move |d| match d.rules().version {
            now if now != version => Err(stale(now)),
            _ => d.apply_rebuilt_history(rebuilt, mode).map_err(ApiError::from),
        })
        .await??;
    Ok(Json(ApplyAnswer::Applied(applied)))
}
