//! The console: the community manager's web UI at `/console/`, HTML rendered on the server over
//! the HTTP API of the same process, with no script and nothing fetched from another site.
//!
//! **Owns** the console's pages ([`pages`]), its sessions and CSRF tokens ([`session`]), its
//! security headers, charts ([`chart`]), page shell ([`layout`]) and embedded stylesheet.
//! **Must not touch** the engine or the store: every number a page shows comes from the HTTP
//! API, called in process with the signed-in organisation's key ([`api`]), so the console shows
//! exactly what the API answers and is refused whatever the key may not do. Nothing here is
//! imported by the server; the binary mounts the console beside the API ([`mount`]).
//!
//! A moment's path does not pass here: the console reads insights, profiles, boards and the rule
//! set, and changes the rule set (what-if, publish, roll back, apply to history) through the same
//! routes a product team calls.

pub mod api;
pub mod chart;
pub mod layout;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

/// What every console handler shares: the API to call and the sessions.
#[derive(Debug)]
pub struct Console {
    pub api: api::Api,
    pub sessions: session::Sessions,
}

/// The stylesheet, embedded when the binary is built.
const CSS: &str = include_str!("../assets/console.css");

/// The API router with the console mounted beside it at `/console/`: its pages call `api` in
/// process.
pub fn mount(api: Router) -> Router {
    let console = Arc::new(Console { api: api::Api::new(api.clone()), sessions: session::Sessions::new() });
    api.merge(router(console))
}

/// The console's routes, each answer with the console's security headers.
fn router(console: Arc<Console>) -> Router {
    use pages::*;
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(overview::page))
        .route("/console/sign-in", post(sign_in::post))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/champions", get(champions::page))
        .route("/console/audit", get(audit::page))
        .route("/console/challenges", get(challenges::page))
        .route("/console/tune", get(tune::page))
        .route("/console/tune/preview", post(tune::preview))
        .route("/console/tune/publish", post(tune::publish))
        .route("/console/versions", get(versions::page))
        .route("/console/versions/republish", post(versions::republish))
        .route("/console/versions/apply", post(versions::apply))
        .route("/console/stakeholders/{id}", get(stakeholder::page))
        .route("/console/stakeholders/{id}/export", get(stakeholder::export))
        .route("/console/leaderboards", get(leaderboards::page))
        .route("/console/plugins", get(plugins::page))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/{*rest}", get(not_found))
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(console)
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
        .into_response()
}

async fn not_found() -> Response {
    layout::error_page(axum::http::StatusCode::NOT_FOUND, "No such page", "The console has no page here.")
}

/// The content security policy: this origin's stylesheet, no script, no frames, forms only
/// back here.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it a browser sends `Origin: null` with a form, which the
    // same-origin check of changes would refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
