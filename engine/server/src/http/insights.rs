//! `GET /v1/orgs/{org}/insights/...`: what a community manager reads (activity per week,
//! bridges between teams, champions, who went quiet, a challenge over its windows, goals), as
//! JSON or, for spreadsheets, CSV (`Accept: text/csv`).
//!
//! **Owns** the query parameters, the media-type choice and the CSV layout of each read. The
//! numbers are the core's ([`plaudit_core::insights::reads`]), computed on the organisation's
//! worker. **Must not touch** the world other than through that reader.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::keys::Need;
use super::{Admitted, AppState, invalid_query};
use plaudit_core::insights::reads::{By, InsightsError, PeopleFilter, Reader};

/// What an insights read answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Json,
    Csv,
}

/// The media type `Accept` prefers among JSON and CSV (JSON when it does not say); `406` when
/// it accepts neither.
pub fn negotiate(headers: &HeaderMap) -> Result<Media, ApiError> {
    match super::accept::choose(headers, &["application/json", "text/csv"])? {
        "text/csv" => Ok(Media::Csv),
        _ => Ok(Media::Json),
    }
}

fn insights_error(e: InsightsError) -> ApiError {
    match e {
        InsightsError::Invalid { field, message } => ApiError::bad_request("invalid_query", message).field(field),
        InsightsError::UnknownChallenge(id) => ApiError::not_found(&format!("challenge {id:?}")),
        InsightsError::UnknownStakeholder(id) => ApiError::not_found(&format!("stakeholder {id:?}")),
    }
}

/// Answers `body` as JSON, or as the CSV `csv` writes.
pub(super) fn answer<T: Serialize>(media: Media, body: &T, csv: impl FnOnce(&T) -> String) -> Response {
    match media {
        Media::Json => axum::Json(body).into_response(),
        Media::Csv => {
            let mut r = csv(body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            r
        }
    }
}

/// Runs `read` against the admitted organisation's insights on its worker.
pub(super) async fn read<T: Send + 'static>(
    org: Admitted,
    read: impl FnOnce(&mut Reader) -> Result<T, InsightsError> + Send + 'static,
) -> Result<T, ApiError> {
    org.worker.run(move |d| d.world_mut().insights(read)).await?.map_err(insights_error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    by: Option<By>,
}

pub async fn get_activity(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let a = read(admitted, move |r| r.activity(p.from.as_deref(), p.to.as_deref(), p.by)).await?;
    Ok(answer(media, &a, |a| {
        let mut out = String::new();
        match a.by {
            Some(by) => {
                let by = serde_json::to_value(by).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                line(&mut out, &["week", &by, "active", "moments"]);
                for w in &a.weeks {
                    for g in w.groups.iter().flatten() {
                        line(&mut out, &[&w.week, &cell(&g.name), &g.active.to_string(), &g.moments.to_string()]);
                    }
                }
            }
            None => {
                let currencies: Vec<&String> = a.weeks.first().map(|w| w.points.keys().collect()).unwrap_or_default();
                let mut head = vec!["week", "active", "moments", "new_stakeholders", "badges", "completions"]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>();
                head.extend(currencies.iter().map(|c| cell(&format!("points_{c}"))));
                line(&mut out, &head.iter().map(String::as_str).collect::<Vec<_>>());
                for w in &a.weeks {
                    let mut row = vec![
                        w.week.clone(),
                        w.active.to_string(),
                        w.moments.to_string(),
                        w.new_stakeholders.to_string(),
                        w.badges.to_string(),
                        w.completions.to_string(),
                    ];
                    row.extend(currencies.iter().map(|c| w.points.get(*c).copied().unwrap_or(0).to_string()));
                    line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>());
                }
            }
        }
        out
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeekParams {
    week: Option<String>,
}

pub async fn get_bridges(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<WeekParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let b = read(admitted, move |r| r.bridges(p.week.as_deref())).await?;
    Ok(answer(media, &b, |b| {
        let mut out = String::new();
        line(&mut out, &["week", "team", "counterpart_team", "moments", "actors", "counterparts", "new"]);
        for r in &b.matrix {
            line(
                &mut out,
                &[
                    &b.week,
                    &cell(&r.team),
                    &cell(&r.counterpart_team),
                    &r.moments.to_string(),
                    &r.actors.to_string(),
                    &r.counterparts.to_string(),
                    &r.new.to_string(),
                ],
            );
        }
        out
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleParams {
    team: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    week: Option<String>,
}

impl From<PeopleParams> for PeopleFilter {
    fn from(p: PeopleParams) -> PeopleFilter {
        PeopleFilter { team: p.team, kind: p.kind, limit: p.limit, week: p.week }
    }
}

pub async fn get_champions(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<PeopleParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let filter = PeopleFilter::from(p);
    let c = read(admitted, move |r| r.champions(&filter)).await?;
    Ok(answer(media, &c, |c| {
        let mut out = String::new();
        line(
            &mut out,
            &[
                "list",
                "rank",
                "stakeholder",
                "kind",
                "team",
                "score",
                "previous_score",
                "moments",
                "counterparts",
                "teams",
                "channels",
            ],
        );
        for (list, rows) in
            [("top", &c.top), ("rising", &c.rising), ("falling", &c.falling), ("connectors", &c.connectors)]
        {
            for (i, r) in rows.iter().enumerate() {
                line(
                    &mut out,
                    &[
                        list,
                        &(i + 1).to_string(),
                        &cell(&r.stakeholder),
                        &cell(r.kind.as_deref().unwrap_or("")),
                        &cell(r.team.as_deref().unwrap_or("")),
                        &r.score.to_string(),
                        &r.previous_score.to_string(),
                        &r.moments.to_string(),
                        &r.counterparts.to_string(),
                        &r.teams.to_string(),
                        &r.channels.to_string(),
                    ],
                );
            }
        }
        out
    }))
}

pub async fn get_quiet(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<PeopleParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let filter = PeopleFilter::from(p);
    let q = read(admitted, move |r| r.quiet(&filter)).await?;
    Ok(answer(media, &q, |q| {
        let mut out = String::new();
        line(&mut out, &["stakeholder", "kind", "team", "weeks_active", "last_moment"]);
        for r in &q.stakeholders {
            line(
                &mut out,
                &[
                    &cell(&r.stakeholder),
                    &cell(r.kind.as_deref().unwrap_or("")),
                    &cell(r.team.as_deref().unwrap_or("")),
                    &r.weeks_active.to_string(),
                    &r.last_moment,
                ],
            );
        }
        out
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitParams {
    limit: Option<usize>,
}

pub async fn get_challenge(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<LimitParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let c = read(admitted, move |r| r.challenge(&id, p.limit)).await?;
    Ok(answer(media, &c, |c| {
        let mut out = String::new();
        line(
            &mut out,
            &["challenge", "window", "goal", "participants", "progressing", "halfway", "completed", "completion_rate"],
        );
        for w in &c.windows {
            line(
                &mut out,
                &[
                    &cell(&c.challenge),
                    &w.window,
                    &w.goal.to_string(),
                    &w.participants.to_string(),
                    &w.progressing.to_string(),
                    &w.halfway.to_string(),
                    &w.completed.to_string(),
                    &w.completion_rate.to_string(),
                ],
            );
        }
        out
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalParams {
    from: Option<String>,
    to: Option<String>,
}

pub async fn get_goals(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<GoalParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let g = read(admitted, move |r| r.goals(p.from.as_deref(), p.to.as_deref())).await?;
    Ok(answer(media, &g, |g| {
        let mut out = String::new();
        line(&mut out, &["goal", "name", "measure", "target", "week", "actual", "met"]);
        for goal in &g.goals {
            for w in &goal.weeks {
                line(
                    &mut out,
                    &[
                        &cell(&goal.goal),
                        &cell(&goal.name),
                        goal.measure,
                        &goal.target.to_string(),
                        &w.week,
                        &w.actual.to_string(),
                        &w.met.to_string(),
                    ],
                );
            }
        }
        out
    }))
}

/// A text cell a spreadsheet will not run as a formula: one that starts like a formula gets a
/// leading apostrophe (OWASP's advice on CSV injection).
pub(super) fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() }
}

/// Writes one CSV record (RFC 4180: fields with a comma, quote or line break quoted, quotes
/// doubled; CRLF line ends).
pub(super) fn line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", f.replace('"', "\"\""));
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("a header value"));
        h
    }

    #[test]
    fn accept_chooses_json_or_csv_by_preference_and_refuses_what_it_cannot_give() {
        assert_eq!(negotiate(&HeaderMap::new()), Ok(Media::Json));
        assert_eq!(negotiate(&accept("text/csv")), Ok(Media::Csv));
        assert_eq!(negotiate(&accept("application/json, text/csv")), Ok(Media::Json));
        assert_eq!(negotiate(&accept("application/json;q=0.5, text/csv")), Ok(Media::Csv));
        assert_eq!(negotiate(&accept("*/*")), Ok(Media::Json));
        assert_eq!(negotiate(&accept("text/*, */*;q=0.1")), Ok(Media::Csv));
        assert_eq!(
            negotiate(&accept("text/csv;q=0")).map_err(|e| e.status),
            Err(axum::http::StatusCode::NOT_ACCEPTABLE)
        );
        assert_eq!(negotiate(&accept("image/png")).map_err(|e| e.status), Err(StatusCode::NOT_ACCEPTABLE));
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        let mut out = String::new();
        line(&mut out, &["a", "b,c", "say \"hi\"", &cell("=SUM(A1)"), &cell("-1")]);
        assert_eq!(out, "a,\"b,c\",\"say \"\"hi\"\"\",'=SUM(A1),'-1\r\n");
    }
}
