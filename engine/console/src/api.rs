//! The HTTP API, called in process: each page's numbers come from the routes a product team
//! calls, with the session's key, through the same router (limits, keys, errors included).
//!
//! **Owns** building those requests and reading their answers. **Must not touch** what they
//! mean: pages do.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::session::Session;

/// The most bytes of an answer read (a page of 1000 stakeholders' history is far less).
const MAX_ANSWER: usize = 32 << 20;

/// The API's router, for calls in process.
#[derive(Clone, Debug)]
pub struct Api {
    router: Router,
}

/// An answer that was not a success, as the API's error body says it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// The field it names (`challenge[0].goal.moments`), if any.
    pub field: Option<String>,
}

impl Failure {
    fn from_answer(status: u16, body: &Value) -> Failure {
        let e = &body["error"];
        Failure {
            status,
            code: e["code"].as_str().unwrap_or("error").to_string(),
            message: e["message"].as_str().map_or_else(|| body.to_string(), str::to_string),
            field: e["field"].as_str().map(str::to_string),
        }
    }
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    /// Calls `method path` with `key`, sending `body` as JSON if any; the status and the answer
    /// (JSON, or the text as a string).
    pub async fn call(&self, key: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let Ok(request) = request.body(body) else {
            return (400, serde_json::json!({"error": {"code": "bad_path", "message": format!("not a path: {path}")}}));
        };
        let Ok(response) = self.router.clone().oneshot(request).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER).await.unwrap_or_default();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// `GET path` for `session`: the answer, or why not.
    pub async fn get(&self, session: &Session, path: impl Into<String>) -> Result<Value, Failure> {
        self.send(session, Method::GET, path, None).await
    }

    /// `method path` with a JSON body for `session`: the answer, or why not.
    pub async fn send(
        &self,
        session: &Session,
        method: Method,
        path: impl Into<String>,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let (status, value) = self.call(&session.key, method, &path.into(), body).await;
        if (200..300).contains(&status) { Ok(value) } else { Err(Failure::from_answer(status, &value)) }
    }
}

/// `text` as one path segment or query value (RFC 3986 unreserved characters kept).
pub fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of organisation `org`'s route `rest` (`insights/goals`).
pub fn org_path(session: &Session, rest: &str) -> String {
    format!("/v1/orgs/{}/{rest}", enc(&session.org))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded_and_plain_ones_kept() {
        assert_eq!(enc("s1088"), "s1088");
        assert_eq!(enc("ann smith/2"), "ann%20smith%2F2");
        assert_eq!(enc("é"), "%C3%A9");
    }
}
