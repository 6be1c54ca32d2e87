//! A stakeholder: profile, balances, level, badges, streaks, challenges and ranks, and the
//! history of what they received and why.
//!
//! Reads `stakeholders/{id}` and `stakeholders/{id}/effects`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{f, s};
use crate::Console;
use crate::api::{enc, org_path};
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    after: String,
}

/// `GET /console/stakeholders/{id}?after=`.
pub async fn page(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let after = super::query::<Params>(raw).after;
    let history_path = match after.as_str() {
        "" => format!("stakeholders/{}/effects?limit=50", enc(&id)),
        a => format!("stakeholders/{}/effects?limit=50&after={}", enc(&id), enc(a)),
    };
    let (profile, history) = tokio::join!(
        console.api.get(&session, org_path(&session, &format!("stakeholders/{}", enc(&id)))),
        console.api.get(&session, org_path(&session, &history_path)),
    );
    let title = format!("Stakeholder {id}");
    let profile = match profile {
        Ok(p) => p,
        Err(e) => return layout::failed(&session, Nav::None, &title, &e),
    };
    let body = html! {
        p { a href={"/console/stakeholders/" (enc(&id)) "/export"} download { "Download everything held about " (id) } " (a JSON document: for a data subject's request)" }
        (card(&profile))
        section aria-labelledby="history-h" {
            h2 #history-h { "What they received, and why" }
            @match &history {
                Err(e) => (layout::failure(e)),
                Ok(h) => (history_table(&id, h)),
            }
        }
    };
    layout::page(&session, Nav::None, &title, body)
}

/// `GET /console/stakeholders/{id}/export`: everything held about them, as the API's export
/// document, downloaded (for a data subject's request).
pub async fn export(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    use axum::response::IntoResponse;
    match console.api.get(&session, org_path(&session, &format!("stakeholders/{}/export", enc(&id)))).await {
        Err(e) => layout::failed(&session, Nav::None, &format!("Stakeholder {id}"), &e),
        Ok(document) => {
            let name = format!("attachment; filename=\"{}-{}.json\"", enc(&session.org), enc(&id));
            let mut response = axum::Json(document).into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&name) {
                response.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, value);
            }
            response
        }
    }
}

fn card(p: &Value) -> Markup {
    let map = |v: &Value| v.as_object().cloned().unwrap_or_default();
    html! {
        dl.profile {
            dt { "Name" } dd { (p["name"].as_str().unwrap_or("—")) }
            dt { "Kind" } dd { (s(&p["kind"])) }
            dt { "Team" } dd { (p["team"].as_str().unwrap_or("—")) }
            dt { "Level" } dd { (p["level"]["name"].as_str().unwrap_or("—")) }
        }
        div.grid {
            section.card aria-labelledby="balances-h" {
                h2 #balances-h { "Balances" }
                table #balances { tbody { @for (c, v) in map(&p["currencies"]) { tr { th scope="row" { (c) } td.n data-value=(f(&v)) { (num(f(&v))) } } } } }
            }
            section.card aria-labelledby="ranks-h" {
                h2 #ranks-h { "Ranks" }
                table { tbody { @for (b, v) in map(&p["ranks"]) { tr { th scope="row" { a href={"/console/leaderboards?board=" (enc(&b))} { (b) } } td.n { (num(f(&v))) } } } } }
            }
            section.card aria-labelledby="badges-h" {
                h2 #badges-h { "Badges" }
                ul { @for b in p["badges"].as_array().into_iter().flatten() {
                    li { (s(&b["name"])) @if let Some(t) = b["tier"].as_str() { " (" (t) ")" } @if f(&b["count"]) > 1.0 { " ×" (num(f(&b["count"]))) } }
                } }
            }
            section.card aria-labelledby="streaks-h" {
                h2 #streaks-h { "Streaks" }
                ul { @for st in p["streaks"].as_array().into_iter().flatten() {
                    li { (s(&st["streak"])) ": " (num(f(&st["length"]))) " (best " (num(f(&st["best"]))) ", last " (s(&st["last"])) ")" }
                } }
            }
            section.card aria-labelledby="challenges-h" {
                h2 #challenges-h { "Challenges" }
                ul { @for c in p["challenges"].as_array().into_iter().flatten() {
                    li { (s(&c["challenge"])) " " (s(&c["window"])) ": " (num(f(&c["moments"]))) " of " (num(f(&c["goal"])))
                        @if c["completed"].as_bool() == Some(true) { " — completed" } }
                } }
            }
        }
    }
}

fn what(e: &Value) -> String {
    match s(&e["type"]) {
        "points_awarded" | "points_revoked" => format!("{:+} {}", f(&e["amount"]), s(&e["currency"])),
        "badge_earned" | "badge_revoked" => {
            format!("badge {}{}", s(&e["badge"]), e["tier"].as_str().map(|t| format!(" ({t})")).unwrap_or_default())
        }
        "level_reached" => format!("level {}", s(&e["level"])),
        "challenge_completed" => format!("completed {} ({})", s(&e["challenge"]), s(&e["window"])),
        "challenge_revoked" => format!("no longer completed: {} ({})", s(&e["challenge"]), s(&e["window"])),
        "streak_shortened" => format!("streak {} now {}", s(&e["streak"]), f(&e["length"])),
        other => other.replace('_', " "),
    }
}

fn history_table(id: &str, h: &Value) -> Markup {
    let rows = h["effects"].as_array().cloned().unwrap_or_default();
    html! {
        @if rows.is_empty() { p { "Nothing yet." } } @else {
            div.scroll {
                table #history {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Moment" } th scope="col" { "Received" }
                        th scope="col" { "From" } th scope="col" { "Why" } } }
                    tbody {
                        @for e in &rows {
                            tr.retracted[e["retracted"].as_bool() == Some(true)] {
                                td { time datetime=(s(&e["at"])) { (s(&e["at"]).replace('T', " ").trim_end_matches('Z')) } }
                                td { (s(&e["moment"])) " (" (s(&e["moment_kind"])) ")" @if e["retracted"].as_bool() == Some(true) { " — retracted" } }
                                td { (what(e)) }
                                td { (s(&e["source_type"])) " " code { (s(&e["source"])) } }
                                td { (e["description"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = h["next"].as_str() {
                p { a href={"/console/stakeholders/" (enc(id)) "?after=" (enc(next))} { "Older" } }
            }
        }
    }
}
