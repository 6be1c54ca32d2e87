//! Plugins: each of the organisation's rule plugins, its state, calls, failures with their
//! reason and log, and the fuel it used per moment.
//!
//! Reads `plugins` and `plugins/{name}`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{f, s};
use crate::Console;
use crate::api::org_path;
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

/// `GET /console/plugins`.
pub async fn page(State(console): State<Arc<Console>>, SignedIn(session): SignedIn) -> Response {
    let list = match console.api.get(&session, org_path(&session, "plugins")).await {
        Ok(l) => l.as_array().cloned().unwrap_or_default(),
        Err(e) => return layout::failed(&session, Nav::Plugins, "Plugins", &e),
    };
    let body = html! {
        @if list.is_empty() { p { "No plugins installed. Rule authors build them with the SDK (see the guide) and install them with " code { "PUT /v1/orgs/{org}/plugins/{name}" } "." } }
        div.scroll {
            @if !list.is_empty() {
                table #plugins {
                    thead { tr {
                        th scope="col" { "Plugin" } th scope="col" { "Version" } th scope="col" { "State" }
                        th scope="col" class="n" { "Calls" } th scope="col" class="n" { "Failed" }
                        th scope="col" class="n" { "Fuel a moment" } th scope="col" class="n" { "Fuel limit" }
                    } }
                    tbody {
                        @for p in &list {
                            @let moments = f(&p["moments"]);
                            tr data-plugin=(s(&p["name"])) {
                                th scope="row" { (s(&p["name"])) }
                                td { (s(&p["version"])) }
                                td { (s(&p["state"])) }
                                td.n { (num(f(&p["calls"]))) }
                                td.n { (num(f(&p["failed_calls"]))) }
                                td.n { @if moments > 0.0 { (num((f(&p["fuel_used"]) / moments).round())) } @else { "—" } }
                                td.n { (num(f(&p["limits"]["fuel"]))) }
                            }
                        }
                    }
                }
            }
        }
        @for p in list.iter().filter(|p| !p["last_failure"].is_null()) {
            section.card aria-labelledby={"failure-" (s(&p["name"]))} {
                h2 id={"failure-" (s(&p["name"]))} { (s(&p["name"])) ": last failure" }
                p { "Moments " (num(f(&p["last_failure"]["first_seq"]))) " to " (num(f(&p["last_failure"]["last_seq"])))
                    " (" (num(f(&p["last_failure"]["moments"]))) " in the call): " (s(&p["last_failure"]["reason"])) }
                @if !s(&p["last_failure"]["logs"]).is_empty() { pre { (s(&p["last_failure"]["logs"])) } }
            }
        }
    };
    layout::page(&session, Nav::Plugins, "Plugins", body)
}
