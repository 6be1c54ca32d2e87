//! The API's error body: `{"error": {"code": "...", "message": "...", "field": "..."}}` with
//! the right status (docs/design.md, the HTTP contract).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer. `field` names the offending field when there is one (`moments[3].at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds to wait before trying again (`Retry-After`), for `429`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }

    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API key: send `Authorization: Bearer <key>`",
        )
    }

    /// `429`: over the key's request rate; try again in `retry_after` seconds.
    pub fn too_many_requests(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("over this key's request rate; try again in {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// `503`: organisation `org` is still opening (its log is being replayed) after `so_far`.
    pub fn opening(org: &str, so_far: std::time::Duration) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "opening",
            format!(
                "organisation {org} is opening (its log is being replayed, {} ms so far); try again shortly",
                so_far.as_millis()
            ),
        );
        e.retry_after = Some(1);
        e
    }

    /// `503`: organisation `org` could not be opened, for `why` (the server's log has more);
    /// the server serves the others.
    pub fn unavailable(org: &str, why: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("organisation {org} could not be opened: {why}"),
        );
        e.retry_after = Some(60);
        e
    }

    /// `503`: the organisation is moving between nodes of the cluster, or being opened again
    /// (`why`); try again in a second, on any node.
    pub fn moving(why: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "moving",
            format!("{why}: the organisation is moving or reopening; try again shortly (any node)"),
        );
        e.retry_after = Some(1);
        e
    }

    /// `503`: the store cannot be reached (`why`); nothing of the request was stored, unless
    /// a retry meets its moments as duplicates.
    pub fn store_unavailable(why: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!(
                "the store cannot be reached ({why}); try again shortly: moments already stored are met as duplicates"
            ),
        );
        e.retry_after = Some(2);
        e
    }

    /// `503`: organisation `org` has `limit` requests being served already.
    pub fn busy(org: &str, limit: usize) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "organisation {org} has {limit} requests being served (limits.in_flight_per_org); try again shortly"
            ),
        );
        e.retry_after = Some(1);
        e
    }

    /// A store's error: `503` if the store cannot be reached or the organisation moved,
    /// `500` otherwise.
    pub fn from_store(e: &plaudit_store::StoreError) -> ApiError {
        match e {
            plaudit_store::StoreError::Unavailable { .. } => ApiError::store_unavailable(&e.to_string()),
            plaudit_store::StoreError::Fenced { .. } => ApiError::moving(&e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.code, message: &self.message, field: self.field.as_deref() } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<crate::organisation::OrgError> for ApiError {
    fn from(e: crate::organisation::OrgError) -> ApiError {
        ApiError::from(&e)
    }
}

/// The one conversion of an organisation's error to the API's: what the client is told, with
/// the status that fits (a store that failed is the server's fault; nothing was changed).
impl From<&crate::organisation::OrgError> for ApiError {
    fn from(e: &crate::organisation::OrgError) -> ApiError {
        use crate::organisation::OrgError;
        match e {
            OrgError::Rules(rules) => {
                let problems = rules.problems();
                let error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules", e.to_string());
                match problems.first() {
                    Some((path, _)) if !path.is_empty() => error.field(path.clone()),
                    _ => error,
                }
            }
            OrgError::Plugin { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", e.to_string()),
            OrgError::Missing(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            OrgError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            OrgError::Store(plaudit_store::StoreError::Unavailable { .. }) => {
                ApiError::store_unavailable(&e.to_string())
            }
            OrgError::Store(plaudit_store::StoreError::Fenced { .. }) => ApiError::moving(&e.to_string()),
            OrgError::Halted { .. } | OrgError::CommitLost(_) | OrgError::Erasure(_) => {
                ApiError::internal(e.to_string())
            }
            OrgError::Store(_)
            | OrgError::Diverged { .. }
            | OrgError::Sandbox(_)
            | OrgError::BadChange { .. }
            | OrgError::Snapshot { .. } => ApiError::internal(format!("nothing was changed: {e}")),
        }
    }
}

impl From<super::CreateError> for ApiError {
    fn from(e: super::CreateError) -> ApiError {
        use super::CreateError;
        match e {
            CreateError::Id { .. } => ApiError::bad_request("invalid_id", e.to_string()).field("id"),
            CreateError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()).field("id"),
            CreateError::Log(log) => {
                let mut error = ApiError::from(log);
                // The request names `timezone` and `name`; the rule set names them under
                // `organisation`.
                if let Some(field) = error.field.as_deref().and_then(|f| f.strip_prefix("organisation.")) {
                    error.field = Some(field.to_string());
                }
                error
            }
            CreateError::Io(_) | CreateError::Random(_) => ApiError::internal(e.to_string()),
        }
    }
}
