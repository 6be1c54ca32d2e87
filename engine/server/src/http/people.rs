//! `GET /v1/orgs/{org}/stakeholders` (a listing by team and kind) and
//! `GET /v1/orgs/{org}/stakeholders/{id}/effects` (one stakeholder's history, newest first), as
//! JSON or CSV, paged with a cursor (`after`, the previous page's `next`).
//!
//! **Owns** their query parameters and CSV layouts. The rows are the core's
//! ([`plaudit_core::insights::people`]), read on the organisation's worker. **Must not touch**
//! the world other than through that reader.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::insights::{answer, cell, line, negotiate, read};
use super::keys::Need;
use super::{AppState, invalid_query};
use plaudit_core::insights::people::{Gain, PeopleQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    team: Option<String>,
    kind: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn get_stakeholders(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Read)?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let q = PeopleQuery { team: p.team, kind: p.kind, after: p.after, limit: p.limit };
    let page = read(admitted, move |r| r.stakeholders(&q)).await?;
    Ok(answer(media, &page, |page| {
        let currencies: Vec<&str> =
            page.stakeholders.first().map(|s| s.currencies.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut out = String::new();
        let mut head: Vec<String> = ["stakeholder", "name", "kind", "team", "level"].map(String::from).into();
        head.extend(currencies.iter().map(|c| cell(c)));
        line(&mut out, &head.iter().map(String::as_str).collect::<Vec<_>>());
        for s in &page.stakeholders {
            let mut fields = vec![
                cell(&s.stakeholder),
                cell(s.name.as_deref().unwrap_or("")),
                cell(s.kind.as_deref().unwrap_or("")),
                cell(s.team.as_deref().unwrap_or("")),
                cell(s.level.as_deref().unwrap_or("")),
            ];
            fields.extend(currencies.iter().map(|c| s.currencies.get(*c).copied().unwrap_or(0).to_string()));
            line(&mut out, &fields.iter().map(String::as_str).collect::<Vec<_>>());
        }
        out
    }))
}

/// `GET /v1/orgs/{org}/stakeholders/{id}/export`: everything held about the stakeholder, as one
/// JSON document (a download).
/// The answer to an erasure.
#[derive(Debug, serde::Serialize)]
pub struct ErasedView {
    /// The id erased (the caller's; nothing stored names it any more).
    pub erased: String,
    /// Who they are now in the moments others keep.
    pub pseudonym: String,
    /// Records of the log rewritten.
    pub records: u64,
    /// Scoped keys of theirs revoked.
    pub keys_revoked: usize,
    pub took_ms: u64,
}

/// `DELETE /v1/orgs/{org}/stakeholders/{id}`: erases the stakeholder (the organisation's own
/// key). Their scoped keys are revoked first, then the organisation erases them
/// ([`crate::organisation::erasure`]); answered once no byte of the data directory holds them.
pub async fn delete_stakeholder(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<ErasedView>, ApiError> {
    let (admitted, access) = state.authorise_manage(&org, &headers)?;
    let known = id.clone();
    if !admitted.worker.run(move |d| d.world().knows(&known)).await? {
        return Err(ApiError::not_found(&format!("stakeholder {id:?}")));
    }
    // Their keys go first (refused from now on), so that the erasure's scrub takes their
    // records' bytes too.
    let revoked = access.keys.remove_of(&id);
    for key in &revoked {
        state.set_org_record(&org, plaudit_store::OrgTable::ScopedKeys, key, None).await?;
    }
    let erased = admitted
        .worker
        .erase(id.clone())
        .await?
        .map_err(|e| ApiError::from(&e))?
        .ok_or_else(|| ApiError::not_found(&format!("stakeholder {id:?}")))?;
    Ok(axum::Json(ErasedView {
        erased: id,
        pseudonym: erased.pseudonym,
        records: erased.records,
        keys_revoked: revoked.len(),
        took_ms: erased.took.as_millis() as u64,
    }))
}

pub async fn get_export(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let admitted = state.authorise(&org, &headers, Need::Stakeholder(&id))?;
    let wanted = id.clone();
    let held = admitted
        .worker
        .run(move |d| d.export_state(&wanted))
        .await??
        .ok_or_else(|| ApiError::not_found(&format!("stakeholder {id:?}")))?;
    drop(admitted);
    let export =
        state.with_store(&org, move |store, org| crate::organisation::export::assemble(store, org, &id, held)).await?;
    let name = format!(
        "attachment; filename=\"{}-{}.json\"",
        org,
        export.stakeholder.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_")
    );
    let mut response = axum::Json(export).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&name) {
        response.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn get_stakeholder_effects(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let admitted = state.authorise(&org, &headers, Need::Stakeholder(&id))?;
    let Query(p) = params.map_err(invalid_query)?;
    let media = negotiate(&headers)?;
    let page = read(admitted, move |r| r.history_of(&id, p.after.as_deref(), p.limit)).await?;
    Ok(answer(media, &page, |page| {
        let mut out = String::new();
        line(
            &mut out,
            &[
                "moment",
                "at",
                "moment_kind",
                "retracted",
                "type",
                "currency",
                "amount",
                "badge",
                "tier",
                "level",
                "challenge",
                "window",
                "source",
                "source_type",
                "description",
            ],
        );
        for r in &page.effects {
            // type, currency, amount, badge, tier, level, challenge, window
            let gain: [String; 8] = match &r.gain {
                Gain::PointsAwarded { currency, amount } => [
                    "points_awarded".into(),
                    cell(currency),
                    amount.to_string(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ],
                Gain::BadgeEarned { badge, tier } => [
                    "badge_earned".into(),
                    "".into(),
                    "".into(),
                    cell(badge),
                    cell(tier.as_deref().unwrap_or("")),
                    "".into(),
                    "".into(),
                    "".into(),
                ],
                Gain::LevelReached { level, index: _ } => [
                    "level_reached".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    cell(level),
                    "".into(),
                    "".into(),
                ],
                Gain::ChallengeCompleted { challenge, window } => [
                    "challenge_completed".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    cell(challenge),
                    cell(window),
                ],
            };
            let head = [
                cell(&r.moment),
                r.at.clone().unwrap_or_default(),
                cell(r.moment_kind.as_deref().unwrap_or("")),
                r.retracted.to_string(),
            ];
            let tail = [cell(&r.source), r.source_type.to_string(), cell(r.description.as_deref().unwrap_or(""))];
            let fields: Vec<&str> = head.iter().chain(&gain).chain(&tail).map(String::as_str).collect();
            line(&mut out, &fields);
        }
        out
    }))
}
