//! Champions: who engages most over the last weeks (top), who rises and who falls against the
//! window before, and the connectors (the most teams met), each with a trend line; filtered by
//! team and kind; a name opens the stakeholder.
//!
//! Reads `insights/champions`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{f, s};
use crate::Console;
use crate::api::{enc, org_path};
use crate::chart::sparkline;
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    team: String,
    #[serde(default)]
    kind: String,
}

/// `GET /console/champions?team=&kind=`.
pub async fn page(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let Filter { team, kind } = super::query(raw);
    let mut query = vec!["limit=15".to_string()];
    if !team.is_empty() {
        query.push(format!("team={}", enc(&team)));
    }
    if !kind.is_empty() {
        query.push(format!("kind={}", enc(&kind)));
    }
    let path = org_path(&session, &format!("insights/champions?{}", query.join("&")));
    let found = console.api.get(&session, &path).await;
    let body = html! {
        form.filter method="get" action="/console/champions" role="search" {
            label for="team" { "Team" }
            input #team name="team" type="text" value=(team) placeholder="every team";
            label for="kind" { "Kind" }
            input #kind name="kind" type="text" value=(kind) placeholder="every kind";
            button type="submit" { "Filter" }
        }
        @match &found {
            Err(e) => (layout::failure(e)),
            Ok(c) => {
                p.lede { "Weeks " (s(&c["from"])) " to " (s(&c["to"])) ", against the same number of weeks before." }
                div.grid {
                    (list("top", "Top", "The most engaged", &c["top"]))
                    (list("rising", "Rising", "Up the most against the weeks before", &c["rising"]))
                    (list("falling", "Falling", "Down the most against the weeks before", &c["falling"]))
                    (list("connectors", "Connectors", "Meeting the most teams", &c["connectors"]))
                }
            }
        }
    };
    layout::page(&session, Nav::Champions, "Champions", body)
}

fn list(id: &str, title: &str, what: &str, rows: &Value) -> Markup {
    let rows = rows.as_array().cloned().unwrap_or_default();
    html! {
        section.card aria-labelledby=(format!("{id}-h")) {
            h2 id=(format!("{id}-h")) { (title) }
            @if rows.is_empty() { p { "Nobody yet." } } @else {
                div.scroll {
                    table id=(id) {
                        caption.visually-hidden { (what) }
                        thead { tr {
                            th scope="col" { "Stakeholder" } th scope="col" { "Team" }
                            th scope="col" class="n" { "Score" } th scope="col" class="n" { "Before" }
                            th scope="col" class="n" { "Teams" } th scope="col" { "Trend" }
                        } }
                        tbody {
                            @for r in &rows {
                                @let who = s(&r["stakeholder"]);
                                @let trend: Vec<f64> = r["trend"].as_array().map(|t| t.iter().map(f).collect()).unwrap_or_default();
                                tr data-stakeholder=(who) {
                                    th scope="row" { a href={"/console/stakeholders/" (enc(who))} { (who) } }
                                    td { (s(&r["team"])) }
                                    td.n data-value=(f(&r["score"])) { (num(f(&r["score"]))) }
                                    td.n { (num(f(&r["previous_score"]))) }
                                    td.n { (num(f(&r["teams"]))) }
                                    td { (sparkline(&trend, &format!("{who}'s moments week by week: {}", trend.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", ")))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
