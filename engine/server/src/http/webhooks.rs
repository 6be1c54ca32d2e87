//! `PUT` and `DELETE /v1/orgs/{org}/webhooks/{name}`, `GET /v1/orgs/{org}/webhooks`: product
//! teams subscribe a URL to chosen effect types. The subscription and its delivery are
//! [`crate::webhooks`]'s; this module owns the bodies.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::keys::Need;
use crate::webhooks::{HookError, HookView};

/// The body of `PUT .../webhooks/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    pub url: String,
    /// Effect types to deliver; all when omitted or empty.
    #[serde(default)]
    pub types: Vec<String>,
    /// The signing secret (at least 16 characters); one is made when omitted.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The answer: the secret is shown here only.
#[derive(Debug, Serialize)]
pub struct Subscribed {
    pub name: String,
    pub url: String,
    pub types: Vec<String>,
    pub secret: String,
    /// Delivery starts after this effect (the latest when the subscription was made).
    pub cursor: u64,
}

fn hook_error(e: HookError) -> ApiError {
    match e {
        HookError::Invalid { field, .. } => ApiError::bad_request("invalid_webhook", e.to_string()).field(field),
        HookError::Full => ApiError::new(StatusCode::CONFLICT, "limit_reached", e.to_string()).field("name"),
        HookError::Save { .. } => ApiError::internal(e.to_string()),
    }
}

pub async fn put_webhook(
    State(state): State<Arc<AppState>>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Subscribed>), ApiError> {
    let org = state.authorise(&org, &headers, Need::Manage)?;
    let new: NewHook = super::json_body(&body)?;
    let existed = org.hooks.views().iter().any(|h| h.name == name);
    let (hooks, latest) = (Arc::clone(&org.hooks), org.feed.latest());
    let (hook_name, url, types) = (name.clone(), new.url.clone(), new.types.clone());
    let targets = Arc::clone(&state.webhook_targets);
    let secret = tokio::task::spawn_blocking(move || hooks.put(&hook_name, &url, types, new.secret, latest, &targets))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(hook_error)?;
    let cursor = org.hooks.views().iter().find(|h| h.name == name).map_or(latest, |h| h.cursor);
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(Subscribed { name, url: new.url, types: new.types, secret, cursor })))
}

pub async fn list_webhooks(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<HookView>>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Manage)?;
    Ok(Json(org.hooks.views()))
}

pub async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let org = state.authorise(&org, &headers, Need::Manage)?;
    let hooks = Arc::clone(&org.hooks);
    let wanted = name.clone();
    let removed = tokio::task::spawn_blocking(move || hooks.remove(&wanted))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(hook_error)?;
    if removed { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found(&format!("webhook {name:?}"))) }
}
