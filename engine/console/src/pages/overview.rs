//! Overview: the organisation's goals week by week against their targets, and its activity per
//! week (stakeholders, moments by kind, team and channel, points, badges, completions).
//!
//! Reads `insights/goals` and `insights/activity` (totals, and by kind, team and channel).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::{f, s};
use crate::Console;
use crate::api::org_path;
use crate::chart::{Series, bars, bars_to, lines};
use crate::layout::{self, Nav};

/// The groups drawn in a chart by kind, team or channel: the busiest, the rest summed.
const GROUPS_DRAWN: usize = 6;

/// `GET /console/`: the overview, or the sign-in form for someone not signed in.
pub async fn page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(session) = console.sessions.find(&headers) else {
        return super::sign_in::page(StatusCode::OK, None, "");
    };
    let api = &console.api;
    let (goals, activity, by_kind, by_team, by_channel) = tokio::join!(
        api.get(&session, org_path(&session, "insights/goals")),
        api.get(&session, org_path(&session, "insights/activity")),
        api.get(&session, org_path(&session, "insights/activity?by=kind")),
        api.get(&session, org_path(&session, "insights/activity?by=team")),
        api.get(&session, org_path(&session, "insights/activity?by=channel")),
    );
    let (goals, activity, by_kind, by_team, by_channel) = match (goals, activity, by_kind, by_team, by_channel) {
        (Ok(g), Ok(a), Ok(k), Ok(t), Ok(c)) => (g, a, k, t, c),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (_, _, _, Err(e), _) | (.., Err(e)) => {
            return layout::failed(&session, Nav::Overview, "Overview", &e);
        }
    };
    let body = html! {
        p.lede { "Weeks " (s(&activity["from"])) " to " (s(&activity["to"])) " (the organisation's weeks, Monday first)." }
        section aria-labelledby="goals-h" {
            h2 #goals-h { "Goals" }
            (goals_section(&goals))
        }
        section aria-labelledby="activity-h" {
            h2 #activity-h { "Activity" }
            (activity_section(&activity))
        }
        section aria-labelledby="groups-h" {
            h2 #groups-h { "Moments by kind, team and channel" }
            div.grid {
                (grouped("by-kind", "Moments by kind", &by_kind))
                (grouped("by-team", "Moments by team", &by_team))
                (grouped("by-channel", "Moments by channel", &by_channel))
            }
        }
    };
    layout::page(&session, Nav::Overview, "Overview", body)
}

fn weeks(v: &Value) -> Vec<&Value> {
    v["weeks"].as_array().map(|w| w.iter().collect()).unwrap_or_default()
}

fn labels(weeks: &[&Value]) -> Vec<String> {
    weeks.iter().map(|w| s(&w["week"]).to_string()).collect()
}

fn goals_section(goals: &Value) -> Markup {
    let list = goals["goals"].as_array().cloned().unwrap_or_default();
    html! {
        @if list.is_empty() {
            p { "No goals yet: add " code { "[[goal]]" } " sections to the rule set to track them here." }
        }
        div.grid {
            @for (i, goal) in list.iter().enumerate() {
                @let weeks = weeks(goal);
                @let met = weeks.iter().filter(|w| w["met"].as_bool() == Some(true)).count();
                div.card {
                    (bars_to(
                        &format!("goal-{i}"),
                        &format!("{} (target {} a week; met {} of {} weeks)", s(&goal["name"]), layout::num(f(&goal["target"])), met, weeks.len()),
                        &labels(&weeks),
                        &[Series::new("actual", weeks.iter().map(|w| f(&w["actual"])).collect())],
                        Some(f(&goal["target"])),
                    ))
                }
            }
        }
    }
}

fn activity_section(activity: &Value) -> Markup {
    let weeks = weeks(activity);
    let labels = labels(&weeks);
    let column = |name: &str| weeks.iter().map(|w| f(&w[name])).collect::<Vec<_>>();
    let currencies: Vec<String> =
        weeks.first().and_then(|w| w["points"].as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let points: Vec<Series> =
        currencies.iter().map(|c| Series::new(c.clone(), weeks.iter().map(|w| f(&w["points"][c])).collect())).collect();
    html! {
        div.grid {
            div.card { (lines("stakeholders", "Stakeholders active and new each week", &labels, &[
                Series::new("active", column("active")),
                Series::new("new", column("new_stakeholders")),
            ])) }
            div.card { (lines("moments", "Moments each week", &labels, &[Series::new("moments", column("moments"))])) }
            div.card { (lines("points", "Points awarded each week, by currency", &labels, &points)) }
            div.card { (bars("awards", "Badges and challenge completions each week", &labels, &[
                Series::new("badges", column("badges")),
                Series::new("completions", column("completions")),
            ])) }
        }
    }
}

/// A chart of moments per week by group: the busiest groups over the period, the rest as
/// "other".
fn grouped(id: &str, title: &str, activity: &Value) -> Markup {
    let weeks = weeks(activity);
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for w in &weeks {
        for g in w["groups"].as_array().into_iter().flatten() {
            *totals.entry(s(&g["name"]).to_string()).or_default() += f(&g["moments"]);
        }
    }
    let mut names: Vec<(String, f64)> = totals.into_iter().collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let drawn: Vec<String> = names.iter().take(GROUPS_DRAWN).map(|(n, _)| n.clone()).collect();
    let moments_of = |w: &Value, name: &str| {
        w["groups"].as_array().into_iter().flatten().find(|g| s(&g["name"]) == name).map_or(0.0, |g| f(&g["moments"]))
    };
    let mut series: Vec<Series> =
        drawn.iter().map(|n| Series::new(n.clone(), weeks.iter().map(|w| moments_of(w, n)).collect())).collect();
    if names.len() > GROUPS_DRAWN {
        let other = weeks
            .iter()
            .map(|w| (f(&w["moments"]) - drawn.iter().map(|n| moments_of(w, n)).sum::<f64>()).max(0.0))
            .collect();
        series.push(Series::new("other", other));
    }
    html! { div.card { (lines(id, title, &labels(&weeks), &series)) } }
}
