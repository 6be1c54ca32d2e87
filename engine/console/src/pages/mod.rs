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

    /// Every value of field `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// The refusal of a change (a form `POST`) that does not carry the session's CSRF token or comes
/// from another origin (`403`, with a page that says so); `None` for one that may go on.
pub fn refusal(session: &Session, headers: &HeaderMap, form: &Form) -> Option<Response> {
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
