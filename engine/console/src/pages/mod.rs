//! The console's pages, one module each, and what they share: form bodies, checks on changes.
//!
//! **Owns** each page's reads (API routes), layout and forms. **Must not touch** sessions'
//! internals or the API's router: [`crate::session`] and [`crate::api`] do.

pub mod audit;
pub mod challenges;
pub mod champions;
pub mod leaderboards;
pub mod overview;
pub mod plugins;
pub mod sign_in;
pub mod stakeholder;
pub mod tune;
pub mod versions;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::layout;
use crate::session::Session;

/// A form body's fields, in order (a name may come more than once).
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A change a signed-in manager sends: a form `POST` carrying the session's CSRF token, from the
/// console's own pages. Anything else is refused before the handler runs: to the sign-in page
/// without a session, `403` without the token or from another site.
#[derive(Debug)]
pub struct Change {
    pub session: Session,
    pub form: Form,
}

impl axum::extract::FromRequest<std::sync::Arc<crate::Console>> for Change {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        console: &std::sync::Arc<crate::Console>,
    ) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let crate::session::SignedIn(session) =
            <crate::session::SignedIn as axum::extract::FromRequestParts<_>>::from_request_parts(&mut parts, console)
                .await?;
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|_| layout::error_page(StatusCode::PAYLOAD_TOO_LARGE, "Refused", "This form is too large."))?;
        let form = Form::parse(&bytes);
        match refusal(&session, &parts.headers, &form) {
            Some(refused) => Err(refused),
            None => Ok(Change { session, form }),
        }
    }
}

/// The refusal of a change (a form `POST`) that does not carry the session's CSRF token or comes
/// from another origin (`403`, with a page that says so); `None` for one that may go on.
fn refusal(session: &Session, headers: &HeaderMap, form: &Form) -> Option<Response> {
    if !crate::session::same_origin(headers) {
        return Some(layout::error_page(StatusCode::FORBIDDEN, "Refused", "This change came from another site."));
    }
    if !session.csrf_ok(form.get("csrf")) {
        return Some(layout::error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form has expired or was not sent from the console: reload the page and try again.",
        ));
    }
    None
}

/// A page's query parameters; what cannot be read is left at its default (a page shows its
/// default view rather than an error for a hand-edited address).
pub fn query<T: Default + serde::de::DeserializeOwned>(raw: Option<String>) -> T {
    raw.and_then(|q| serde_urlencoded::from_str(&q).ok()).unwrap_or_default()
}

/// A JSON number as `f64` (0 when absent).
pub fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// A JSON string as `&str` ("" when absent).
pub fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}
