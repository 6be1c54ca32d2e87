//! `PUT`, `GET` and `DELETE /v1/orgs/{org}/plugins/{name}`, and `GET /v1/orgs/{org}/plugins`:
//! rule authors upload a WebAssembly module, read its status (calls, failures with reasons,
//! limits), and remove it.
//!
//! **Owns** the media type and the status view. Installation is the log step's
//! ([`crate::organisation::Organisation::install_plugin`]: compiled, its manifest checked, recorded in the log
//! with its module, then hot-swapped between two batches) and runs on the organisation's
//! worker. The module is compiled first as one of the organisation's background jobs
//! ([`super::budget::Jobs`]), into the sandbox host's cache, so the organisation's other
//! requests do not wait for the compiler: the worker's install then takes it from the cache.
//! The route takes bodies up to the largest module any organisation may allow
//! ([`plaudit_sandbox::MAX_MODULE_BYTES`]), the others up to
//! [`super::MAX_BODY_BYTES`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::keys::Need;
use crate::organisation::Organisation;
use plaudit_core::plugins::{PluginHost, PluginStatus};

/// A plugin's status, with its module and limits.
#[derive(Debug, Serialize)]
pub struct PluginView {
    #[serde(flatten)]
    pub status: PluginStatus,
    /// SHA-256 (hex) of the installed module.
    pub module: String,
    /// The log position it took effect after.
    pub installed_after: u64,
    pub limits: LimitsView,
}

/// The sandbox limits a plugin runs under (the rule set's `[plugins]` section).
#[derive(Debug, Serialize)]
pub struct LimitsView {
    pub fuel: u64,
    pub memory_bytes: usize,
    pub module_bytes: usize,
    pub input_bytes: usize,
    pub output_bytes: usize,
    pub wall_clock_ms: u128,
}

fn view(d: &Organisation, name: &str) -> Option<PluginView> {
    let installed = d.installed().get(name)?;
    let status = d.world().plugin(name)?;
    let l = &d.world().program().plugin_limits;
    Some(PluginView {
        status,
        module: installed.module.clone(),
        installed_after: installed.after.0,
        limits: LimitsView {
            fuel: l.fuel,
            memory_bytes: l.memory_bytes,
            module_bytes: l.module_bytes,
            input_bytes: l.input_bytes,
            output_bytes: l.output_bytes,
            wall_clock_ms: l.wall_clock.as_millis(),
        },
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(&format!("plugin {name:?}"))
}

pub async fn put_plugin(
    State(state): State<Arc<AppState>>,
    UrlPath((org_name, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let org = state.authorise(&org_name, &headers, Need::Manage)?;
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // `application/octet-stream` too: what generic clients (generated ones) send for bytes.
    let media = media.split(';').next().unwrap_or("").trim();
    if !["application/wasm", "application/octet-stream"].iter().any(|m| media.eq_ignore_ascii_case(m)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {media:?}: send the module as application/wasm (or application/octet-stream)"),
        ));
    }
    // Compile away from the worker (about 0.4 s for the example plugins), under the limits in
    // force now. Its result is not the answer: the install below checks the module again and
    // reports any problem, and compiles it itself should the limits have changed meanwhile.
    let limits = org.worker.run(|d| d.world().program().plugin_limits.clone()).await?;
    let wasm = body.clone();
    let compile = move || PluginHost::shared(&limits).and_then(|h| h.precompile(&wasm, &limits));
    let memory = super::budget::compile_mb(body.len());
    if let Err(e) = state.jobs.run(&org_name, "compiling the module", memory, compile).await? {
        tracing::debug!(plugin = %name, error = %e, "precompiling refused; the install will say why");
    }
    let plugin = name.clone();
    let (replaced, view) = org
        .worker
        .run(move |d| {
            let replaced = d.installed().contains_key(&plugin);
            d.install_plugin(&plugin, &body)?;
            Ok::<_, crate::organisation::OrgError>((replaced, view(d, &plugin)))
        })
        .await??;
    let view = view.ok_or_else(|| not_found(&name))?;
    Ok((if replaced { StatusCode::OK } else { StatusCode::CREATED }, Json(view)))
}

pub async fn get_plugin(
    State(state): State<Arc<AppState>>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<PluginView>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Read)?;
    let wanted = name.clone();
    org.worker.run(move |d| view(d, &wanted)).await?.map(Json).ok_or_else(|| not_found(&name))
}

pub async fn list_plugins(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<PluginView>>, ApiError> {
    let org = state.authorise(&org, &headers, Need::Read)?;
    let views = org.worker.run(|d| d.installed().keys().filter_map(|n| view(d, n)).collect()).await?;
    Ok(Json(views))
}

pub async fn delete_plugin(
    State(state): State<Arc<AppState>>,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let org = state.authorise(&org, &headers, Need::Manage)?;
    let wanted = name.clone();
    if org.worker.run(move |d| d.remove_plugin(&wanted)).await?? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
