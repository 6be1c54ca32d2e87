//! Challenges: each challenge's current window (its funnel: taking part, on the way, halfway,
//! completed) and its completion rate over past windows.
//!
//! Reads `challenges` and `insights/challenges/{id}`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::{f, s};
use crate::Console;
use crate::api::{enc, org_path};
use crate::chart::{Series, bars, lines};
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

/// `GET /console/challenges`.
pub async fn page(State(console): State<Arc<Console>>, SignedIn(session): SignedIn) -> Response {
    let list = match console.api.get(&session, org_path(&session, "challenges")).await {
        Ok(list) => list.as_array().cloned().unwrap_or_default(),
        Err(e) => return layout::failed(&session, Nav::Challenges, "Challenges", &e),
    };
    let reads = list.iter().map(|c| {
        let path = org_path(&session, &format!("insights/challenges/{}", enc(s(&c["id"]))));
        let api = &console.api;
        let session = &session;
        async move { api.get(session, &path).await }
    });
    let insights = futures_util::future::join_all(reads).await;
    let body = html! {
        p.lede { "Change a goal, window or match on " a href="/console/tune" { "Tune" } ", with a preview on the real history first." }
        @if list.is_empty() { p { "No challenges in the rule set." } }
        @for (i, (c, insight)) in list.iter().zip(&insights).enumerate() {
            section.card aria-labelledby=(format!("challenge-{i}-h")) data-challenge=(s(&c["id"])) {
                h2 id=(format!("challenge-{i}-h")) { (s(&c["name"])) }
                p {
                    code { (s(&c["id"])) } " · " (s(&c["scope"])) " · every " (s(&c["window"])) " · " (s(&c["status"]))
                    @if let Some(d) = c["description"].as_str() { br; (d) }
                }
                p { "Goal: " (goal(&c["goal"])) }
                @match insight {
                    Err(e) => (layout::failure(e)),
                    Ok(v) => (windows(i, v)),
                }
            }
        }
    };
    layout::page(&session, Nav::Challenges, "Challenges", body)
}

/// A challenge's goal in words.
pub fn goal(g: &Value) -> String {
    let mut parts = vec![format!("{} moments", num(f(&g["moments"])))];
    if f(&g["distinct_teams"]) > 0.0 {
        parts.push(format!("with {} other teams", num(f(&g["distinct_teams"]))));
    }
    if f(&g["distinct_counterparts"]) > 0.0 {
        parts.push(format!("with {} different people", num(f(&g["distinct_counterparts"]))));
    }
    parts.join(", ")
}

fn windows(i: usize, insight: &Value) -> Markup {
    // Newest first from the API; oldest first on a time axis.
    let mut windows: Vec<&Value> = insight["windows"].as_array().map(|w| w.iter().collect()).unwrap_or_default();
    let current = windows.first().copied();
    windows.reverse();
    let labels: Vec<String> = windows.iter().map(|w| s(&w["window"]).to_string()).collect();
    html! {
        @match current {
            None => p { "No window has begun yet." },
            Some(w) => {
                (bars(&format!("funnel-{i}"), &format!("Window {}: from taking part to completed", s(&w["window"])),
                    &["taking part", "on the way", "halfway", "completed"].map(String::from),
                    &[Series::new("stakeholders", vec![f(&w["participants"]), f(&w["progressing"]), f(&w["halfway"]), f(&w["completed"])])]))
                @if windows.len() > 1 {
                    (lines(&format!("rate-{i}"), "Completion rate over the windows (%)", &labels,
                        &[Series::new("completed, % of those taking part", windows.iter().map(|w| f(&w["completion_rate"])).collect())]))
                }
            }
        }
    }
}
