//! Leaderboards: each board of the rule set, windowed, by team, teams ranked, with a search for
//! a person (the page of the board around them).
//!
//! Reads the rule set (its boards) and `leaderboards/{board}`.

use std::sync::Arc;

use axum::extract::State;
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
    board: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    around: String,
}

/// `GET /console/leaderboards?board=&team=&around=`.
pub async fn page(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let p: Params = super::query(raw);
    let rules = match console.api.get(&session, org_path(&session, "rules")).await {
        Ok(r) => r,
        Err(e) => return layout::failed(&session, Nav::Leaderboards, "Leaderboards", &e),
    };
    let boards: Vec<Value> = rules["leaderboard"].as_array().cloned().unwrap_or_default();
    let board = if p.board.is_empty() {
        boards.first().map(|b| s(&b["id"]).to_string()).unwrap_or_default()
    } else {
        p.board.clone()
    };
    let mut query = vec!["limit=50".to_string()];
    for (name, value) in [("team", &p.team), ("around", &p.around)] {
        if !value.is_empty() {
            query.push(format!("{name}={}", enc(value)));
        }
    }
    let page_read = if board.is_empty() {
        None
    } else {
        Some(
            console
                .api
                .get(&session, org_path(&session, &format!("leaderboards/{}?{}", enc(&board), query.join("&"))))
                .await,
        )
    };
    let body = html! {
        form.filter method="get" action="/console/leaderboards" role="search" {
            label for="board" { "Board" }
            select #board name="board" {
                @for b in &boards {
                    option value=(s(&b["id"])) selected[s(&b["id"]) == board] { (b["name"].as_str().unwrap_or(s(&b["id"]))) }
                }
            }
            label for="team" { "Team" }
            input #team name="team" type="text" value=(p.team) placeholder="everyone";
            label for="around" { "Find a person" }
            input #around name="around" type="search" value=(p.around) placeholder="stakeholder id";
            button type="submit" { "Show" }
        }
        @match &page_read {
            None => p { "The rule set has no leaderboards." },
            Some(Err(e)) => (layout::failure(e)),
            Some(Ok(b)) => (ranking(b, &p.around)),
        }
    };
    layout::page(&session, Nav::Leaderboards, "Leaderboards", body)
}

fn ranking(b: &Value, around: &str) -> Markup {
    let rows = b["rows"].as_array().cloned().unwrap_or_default();
    let teams = b.get("teams").is_some();
    html! {
        p {
            code { (s(&b["board"])) } ": " (s(&b["metric"]))
            @if let Some(w) = b["window"].as_str() { ", window " (w) }
            @if let Some(t) = b["team"].as_str() { ", team " (t) }
            @if teams { ", teams ranked (" (s(&b["teams"])) ")" }
            ", ties " (s(&b["ties"])) "; " (num(f(&b["total"]))) " ranked."
        }
        div.scroll {
            table #board {
                thead { tr { th scope="col" class="n" { "Rank" } th scope="col" { @if teams { "Team" } @else { "Stakeholder" } } th scope="col" class="n" { "Value" } } }
                tbody {
                    @for r in &rows {
                        @let who = r["stakeholder"].as_str().or(r["team"].as_str()).unwrap_or("");
                        tr.found[!around.is_empty() && who == around] {
                            td.n { (num(f(&r["rank"]))) }
                            th scope="row" {
                                @if teams { (who) } @else { a href={"/console/stakeholders/" (enc(who))} { (who) } }
                            }
                            td.n data-value=(f(&r["value"])) { (num(f(&r["value"]))) }
                        }
                    }
                }
            }
        }
    }
}
