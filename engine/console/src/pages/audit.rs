//! Audit: who engages where. A team by week heatmap of moments; the bridges between teams for a
//! chosen week as a matrix, new bridges marked; the channel mix; who has gone quiet, each with
//! their last moment.
//!
//! Reads `insights/activity?by=team`, `insights/activity?by=channel`, `insights/bridges` and
//! `insights/quiet`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{f, s};
use crate::Console;
use crate::api::{enc, org_path};
use crate::chart::{Series, bars, heat};
use crate::layout::{self, Nav, num};
use crate::session::SignedIn;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    week: String,
}

/// `GET /console/audit?week=`.
pub async fn page(
    State(console): State<Arc<Console>>,
    SignedIn(session): SignedIn,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let week = super::query::<Params>(raw).week;
    let bridges_path = if week.is_empty() {
        org_path(&session, "insights/bridges")
    } else {
        org_path(&session, &format!("insights/bridges?week={}", enc(&week)))
    };
    let api = &console.api;
    let (teams, channels, bridges, quiet) = tokio::join!(
        api.get(&session, org_path(&session, "insights/activity?by=team")),
        api.get(&session, org_path(&session, "insights/activity?by=channel")),
        api.get(&session, &bridges_path),
        api.get(&session, org_path(&session, "insights/quiet?limit=50")),
    );
    let (teams, channels, quiet) = match (teams, channels, quiet) {
        (Ok(t), Ok(c), Ok(q)) => (t, c, q),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return layout::failed(&session, Nav::Audit, "Audit", &e),
    };
    let weeks: Vec<String> =
        teams["weeks"].as_array().into_iter().flatten().map(|w| s(&w["week"]).to_string()).collect();
    let body = html! {
        section aria-labelledby="heat-h" {
            h2 #heat-h { "Moments by team and week" }
            (heatmap(&teams))
        }
        section aria-labelledby="bridges-h" {
            h2 #bridges-h { "Bridges between teams" }
            form.filter method="get" action="/console/audit" {
                label for="week" { "Week" }
                select #week name="week" {
                    @for w in weeks.iter().rev() {
                        @let chosen = bridges.as_ref().ok().is_some_and(|b| s(&b["week"]) == w);
                        option value=(w) selected[chosen] { (w) }
                    }
                }
                button type="submit" { "Show" }
            }
            @match &bridges {
                Err(e) => (layout::failure(e)),
                Ok(b) => (matrix(b)),
            }
        }
        section aria-labelledby="channels-h" {
            h2 #channels-h { "Channel mix" }
            (channel_mix(&channels))
        }
        section aria-labelledby="quiet-h" {
            h2 #quiet-h { "Gone quiet" }
            (quiet_list(&quiet))
        }
    };
    layout::page(&session, Nav::Audit, "Audit", body)
}

/// Teams down, weeks across, each cell the team's moments that week, shaded.
fn heatmap(activity: &Value) -> Markup {
    let weeks: Vec<&Value> = activity["weeks"].as_array().map(|w| w.iter().collect()).unwrap_or_default();
    let mut cells: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
    for (i, w) in weeks.iter().enumerate() {
        for g in w["groups"].as_array().into_iter().flatten() {
            cells.entry(s(&g["name"]).to_string()).or_default().insert(i, f(&g["moments"]));
        }
    }
    let max = cells.values().flat_map(|row| row.values().copied()).fold(0.0, f64::max);
    html! {
        @if cells.is_empty() { p { "No moments yet." } } @else {
            div.scroll {
                table #heatmap .heatmap {
                    caption.visually-hidden { "Moments by team (rows) and week (columns)" }
                    thead { tr { th scope="col" { "Team" } @for w in &weeks { th scope="col" { (short(s(&w["week"]))) } } } }
                    tbody {
                        @for (team, row) in &cells {
                            tr data-team=(team) {
                                th scope="row" { (team) }
                                @for i in 0..weeks.len() {
                                    @let v = row.get(&i).copied().unwrap_or(0.0);
                                    td class=(heat(v, max)) data-week=(s(&weeks[i]["week"])) data-value=(v) { (num(v)) }
                                }
                            }
                        }
                    }
                }
            }
            p.legend-note { "Darker is more moments; the largest cell has " (num(max)) "." }
        }
    }
}

/// `2026-03-02` as `03-02`: the year is in the page's lede.
fn short(week: &str) -> &str {
    week.get(5..).unwrap_or(week)
}

/// Teams (who acted) down, counterpart teams across; a new bridge is marked.
fn matrix(bridges: &Value) -> Markup {
    let rows = bridges["matrix"].as_array().cloned().unwrap_or_default();
    let teams: BTreeSet<&str> = rows.iter().map(|r| s(&r["team"])).collect();
    let counterparts: BTreeSet<&str> = rows.iter().map(|r| s(&r["counterpart_team"])).collect();
    let at = |t: &str, c: &str| rows.iter().find(|r| s(&r["team"]) == t && s(&r["counterpart_team"]) == c);
    let max = rows.iter().map(|r| f(&r["moments"])).fold(0.0, f64::max);
    let new = rows.iter().filter(|r| r["new"].as_bool() == Some(true)).count();
    html! {
        p { "Week of " (s(&bridges["week"])) ": " (rows.len()) " pairs of teams met, " (new) " of them for the first time (marked ★)." }
        @if rows.is_empty() { p { "No moments between teams that week." } } @else {
            div.scroll {
                table #bridges .heatmap {
                    caption.visually-hidden { "Moments between teams: the acting team down, the counterpart's team across" }
                    thead { tr { th scope="col" { "Team \\ with" } @for c in &counterparts { th scope="col" { (c) } } } }
                    tbody {
                        @for t in &teams {
                            tr data-team=(t) {
                                th scope="row" { (t) }
                                @for c in &counterparts {
                                    @match at(t, c) {
                                        None => td.heat-0 data-counterpart=(c) data-value="0" { "" },
                                        Some(r) => {
                                            @let is_new = r["new"].as_bool() == Some(true);
                                            td class=(heat(f(&r["moments"]), max)) data-counterpart=(c)
                                                data-value=(f(&r["moments"])) data-new=(is_new) {
                                                (num(f(&r["moments"])))
                                                @if is_new { " " span aria-label="new bridge" { "★" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Moments per channel over the period.
fn channel_mix(activity: &Value) -> Markup {
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for w in activity["weeks"].as_array().into_iter().flatten() {
        for g in w["groups"].as_array().into_iter().flatten() {
            *totals.entry(s(&g["name"]).to_string()).or_default() += f(&g["moments"]);
        }
    }
    let mut channels: Vec<(String, f64)> = totals.into_iter().collect();
    channels.sort_by(|a, b| b.1.total_cmp(&a.1));
    let labels: Vec<String> = channels.iter().map(|(c, _)| c.clone()).collect();
    let values: Vec<f64> = channels.iter().map(|(_, v)| *v).collect();
    html! { div.card { (bars("channels", "Moments by channel over the weeks shown", &labels, &[Series::new("moments", values)])) } }
}

fn quiet_list(quiet: &Value) -> Markup {
    let rows = quiet["stakeholders"].as_array().cloned().unwrap_or_default();
    html! {
        p { "Active in at least " (f(&quiet["min_weeks"])) " of the 8 weeks before the last two, and not since (as of the week of " (s(&quiet["week"])) ")." }
        @if rows.is_empty() { p { "Nobody has gone quiet." } } @else {
            div.scroll {
                table #quiet {
                    thead { tr { th scope="col" { "Stakeholder" } th scope="col" { "Team" } th scope="col" { "Kind" }
                        th scope="col" class="n" { "Weeks active" } th scope="col" { "Last moment" } } }
                    tbody {
                        @for r in &rows {
                            @let who = s(&r["stakeholder"]);
                            tr data-stakeholder=(who) {
                                th scope="row" { a href={"/console/stakeholders/" (enc(who))} { (who) } }
                                td { (s(&r["team"])) } td { (s(&r["kind"])) }
                                td.n { (num(f(&r["weeks_active"]))) }
                                td { time datetime=(s(&r["last_moment"])) { (s(&r["last_moment"]).replace('T', " ").trim_end_matches('Z')) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
