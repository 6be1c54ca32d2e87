//! Sessions: signing in with an organisation's own key, and what proves it afterwards.
//!
//! **Owns** the sessions (in memory: a session ends when the server stops, and the manager signs
//! in again), their cookie and their CSRF tokens. **Must not touch** what the key may do: the
//! API decides that on every call.
//!
//! The key is kept here, server side, never in a page or a URL. The browser holds a cookie
//! naming its session: a random id and an HMAC of it under a secret drawn at start (so a
//! guessed or altered id is refused before it is looked up), `HttpOnly`, `SameSite=Strict`,
//! `Path=/console`, `Max-Age` the session's life, `Secure` behind a proxy that ends TLS. Every
//! change is a form `POST` carrying the session's CSRF token, compared in constant time; a
//! `POST` from another origin (its `Origin`) is refused as well.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "plaudit_console";
/// How long a session lasts from sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// A signed-in manager.
#[derive(Clone, Debug)]
pub struct Session {
    id: [u8; 16],
    /// The organisation signed in to.
    pub org: String,
    /// Its own key, for the API calls made on this session's behalf.
    pub key: String,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

/// The sessions of this server.
#[derive(Debug)]
pub struct Sessions {
    secret: [u8; 32],
    live: Mutex<HashMap<[u8; 16], Session>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new()
    }
}

impl Sessions {
    /// No sessions yet, and a fresh secret to sign their cookies with.
    pub fn new() -> Sessions {
        let mut secret = [0u8; 32];
        // Without randomness nobody can sign in (every cookie fails its check); say so.
        if let Err(e) = getrandom::fill(&mut secret) {
            tracing::error!(error = %e, "no randomness for the console's cookie secret: sign-in will fail");
        }
        Sessions { secret, live: Mutex::new(HashMap::new()) }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Session>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `org` with `key`, and its cookie (`Secure` if `https`).
    pub fn start(&self, org: &str, key: &str, https: bool) -> Result<(Session, HeaderValue), getrandom::Error> {
        let mut id = [0u8; 16];
        let mut csrf = [0u8; 16];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut csrf)?;
        let session = Session {
            id,
            org: org.to_string(),
            key: key.to_string(),
            csrf: hex(&csrf),
            expires: Instant::now() + LIFETIME,
        };
        let mut live = self.live();
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.values().min_by_key(|s| s.expires).map(|s| s.id)
        {
            live.remove(&oldest);
        }
        live.insert(id, session.clone());
        let value = format!("{}.{}", hex(&id), hex(&self.sign(&id)));
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        );
        let cookie = HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""));
        Ok((session, cookie))
    }

    /// The live session the request's cookie names, if its signature holds.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = self.cookie_id(headers)?;
        let live = self.live();
        live.get(&id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends `session` (sign-out); returns the cookie that clears it in the browser.
    pub fn end(&self, session: &Session) -> HeaderValue {
        self.live().remove(&session.id);
        HeaderValue::from_static("plaudit_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    fn cookie_id(&self, headers: &HeaderMap) -> Option<[u8; 16]> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))?;
        let (id, mac) = value.split_once('.')?;
        let id: [u8; 16] = unhex(id)?.try_into().ok()?;
        let mac: [u8; 32] = unhex(mac)?.try_into().ok()?;
        equal(&mac, &self.sign(&id)).then_some(id)
    }

    fn sign(&self, id: &[u8; 16]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(b"plaudit console session\n");
        mac.update(id);
        mac.finalize().into_bytes().into()
    }
}

impl Session {
    /// Whether a form's `csrf` field is this session's token.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| equal(g.as_bytes(), self.csrf.as_bytes()))
    }
}

/// Whether a `POST` comes from this console's own pages: no `Origin`, or one naming the host
/// the request was sent to (browsers send `Origin` on every `POST`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let bare = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && bare.eq_ignore_ascii_case(host)
}

/// Whether the request reached us over TLS (ended by a proxy that says so).
pub fn https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A handler's signed-in session; without one, the request goes to the sign-in page.
#[derive(Debug)]
pub struct SignedIn(pub Session);

impl FromRequestParts<std::sync::Arc<crate::Console>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &std::sync::Arc<crate::Console>,
    ) -> Result<Self, Self::Rejection> {
        console.sessions.find(&parts.headers).map(SignedIn).ok_or_else(|| Redirect::to("/console/").into_response())
    }
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).expect("a header"));
        h
    }

    #[test]
    fn a_session_is_found_by_its_signed_cookie_and_gone_after_sign_out() {
        let sessions = Sessions::new();
        let (session, cookie) = sessions.start("acme", "pk_x", false).expect("randomness");
        let cookie = cookie.to_str().expect("ascii");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "not over plain HTTP");
        assert!(!cookie.contains("pk_x"), "the key stays on the server");
        let pair = cookie.split(';').next().expect("name=value");
        let found = sessions.find(&with_cookie(&format!("other=1; {pair}"))).expect("found");
        assert_eq!((found.org.as_str(), found.key.as_str()), ("acme", "pk_x"));
        sessions.end(&session);
        assert!(sessions.find(&with_cookie(pair)).is_none(), "signed out");
    }

    #[test]
    fn an_altered_or_foreign_cookie_names_no_session() {
        let sessions = Sessions::new();
        let (_, cookie) = sessions.start("acme", "pk_x", true).expect("randomness");
        let cookie = cookie.to_str().expect("ascii").to_string();
        assert!(cookie.contains("; Secure"));
        let pair = cookie.split(';').next().expect("name=value").to_string();
        let (name_id, mac) = pair.split_once('.').expect("id.mac");
        let flipped = format!("{name_id}.{}{}", if mac.starts_with('0') { "1" } else { "0" }, &mac[1..]);
        assert!(sessions.find(&with_cookie(&flipped)).is_none(), "altered signature");
        let other = Sessions::new();
        assert!(other.find(&with_cookie(&pair)).is_none(), "another server's secret");
        assert!(sessions.find(&with_cookie("plaudit_console=zz.zz")).is_none());
    }

    #[test]
    fn a_form_needs_its_sessions_token() {
        let sessions = Sessions::new();
        let (session, _) = sessions.start("acme", "pk_x", false).expect("randomness");
        assert!(session.csrf_ok(Some(&session.csrf.clone())));
        assert!(!session.csrf_ok(None));
        assert!(!session.csrf_ok(Some("0000")));
    }

    #[test]
    fn a_post_from_another_origin_is_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no Origin: a form from an older browser, or curl");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }
}
