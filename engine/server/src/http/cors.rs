//! Calls from browsers on other origins (CORS): the origins each organisation allows, set with
//! its own key (`GET` and `PUT /v1/orgs/{org}/cors`), and the layer that answers browsers'
//! preflights and marks the answers they may read.
//!
//! **Owns** each organisation's allowed origins (kept as JSON in the store's settings under
//! `cors`, read when the server opens the organisation) and the CORS headers. **Must not
//! touch** keys or worlds: CORS only tells a browser which answers a page may read; every
//! request is still admitted by its key like any other.
//!
//! Only `/v1/orgs/{org}/...` is served cross-origin, to the origins that organisation lists
//! (`*`: any). A preflight from an origin not listed gets no CORS headers, so the browser stops
//! there. Keys travel in `Authorization` (or a feed token in the URL), never in cookies: CORS
//! answers never allow credentials.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header, request};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use super::error::ApiError;
use plaudit_core::ids::OrgId;
use plaudit_store::{OrgTable, Store};

/// The name of the setting that keeps the origins.
const SETTING: &str = "cors";
/// The most origins an organisation may list.
pub const MAX_ORIGINS: usize = 50;
/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins an organisation allows, as set (each `scheme://host[:port]`, or `*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSetting {
    pub origins: Vec<String>,
}

/// One organisation's allowed origins, shared by its requests.
#[derive(Debug, Default)]
pub struct Origins(RwLock<CorsSetting>);

impl Origins {
    /// The origins `org` has set (none if it never set any).
    pub fn load(store: &dyn Store, org: &OrgId) -> Result<Origins, plaudit_store::StoreError> {
        let mut setting = CorsSetting::default();
        for (name, bytes) in store.org_records(org, OrgTable::Settings)? {
            if name != SETTING {
                continue;
            }
            match serde_json::from_slice(&bytes) {
                Ok(found) => setting = found,
                // Written by this module only: unreadable means a newer layout. Allow nothing.
                Err(e) => tracing::warn!(org = %org, error = %e, "unreadable CORS setting: no origin allowed"),
            }
        }
        Ok(Origins(RwLock::new(setting)))
    }

    /// Whether a page from `origin` may read this organisation's answers.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let setting = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        setting.origins.iter().any(|o| o == "*" || o.as_bytes().eq_ignore_ascii_case(origin))
    }

    fn get(&self) -> CorsSetting {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, setting: CorsSetting) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = setting;
    }
}

/// The layer answering preflights and marking answers for the origins their organisation allows.
/// Outermost, so that a preflight is answered before routing, limits and keys.
pub fn layer(state: Arc<AppState>) -> CorsLayer {
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &request::Parts| {
        org_of(parts.uri.path()).is_some_and(|org| state.cors_allows(org, origin.as_bytes()))
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::ACCEPT,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER, header::ALLOW])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// The organisation a path `/v1/orgs/{org}/...` is about.
fn org_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/orgs/")?;
    let org = rest.split('/').next()?;
    (!org.is_empty()).then_some(org)
}

/// Checks and normalises origins as set: `scheme://host[:port]` with scheme `http` or `https`,
/// no path, user or query (what browsers send in `Origin`), lowercased; or `*` alone.
fn check(mut setting: CorsSetting) -> Result<CorsSetting, ApiError> {
    let bad = |i: usize, why: String| {
        ApiError::bad_request("invalid_body", format!("origins[{i}]: {why}")).field(format!("origins[{i}]"))
    };
    if setting.origins.len() > MAX_ORIGINS {
        return Err(ApiError::bad_request("invalid_body", format!("at most {MAX_ORIGINS} origins")).field("origins"));
    }
    for (i, origin) in setting.origins.iter_mut().enumerate() {
        if origin == "*" {
            continue;
        }
        let uri: axum::http::Uri = origin
            .parse()
            .map_err(|_| bad(i, format!("{origin:?} is not an origin such as \"https://app.example.com\"")))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let Some(authority) = uri.authority().filter(|a| !a.as_str().contains('@')) else {
            return Err(bad(i, format!("{origin:?} has no host (or has a user): write \"https://host[:port]\"")));
        };
        if scheme != "http" && scheme != "https" {
            return Err(bad(i, format!("{origin:?}: an origin's scheme is http or https")));
        }
        let normal = format!("{scheme}://{}", authority.as_str().to_ascii_lowercase());
        if origin.trim_end_matches('/').to_ascii_lowercase() != normal || uri.query().is_some() {
            return Err(bad(i, format!("{origin:?} has a path or query: an origin is \"{normal}\"")));
        }
        *origin = normal;
    }
    if setting.origins.len() > 1 && setting.origins.iter().any(|o| o == "*") {
        return Err(ApiError::bad_request("invalid_body", "\"*\" allows every origin: list it alone").field("origins"));
    }
    setting.origins.sort();
    setting.origins.dedup();
    Ok(setting)
}

/// `GET /v1/orgs/{org}/cors`: the origins allowed.
pub async fn get_cors(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<CorsSetting>, ApiError> {
    let (_admitted, parts) = state.authorise_manage(&org, &headers)?;
    Ok(Json(parts.cors.get()))
}

/// `PUT /v1/orgs/{org}/cors`: replaces the origins allowed (an empty list: none), durably, in
/// force from the next request.
pub async fn put_cors(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<CorsSetting>, ApiError> {
    let (admitted, parts) = state.authorise_manage(&org, &headers)?;
    drop(admitted);
    let setting = check(super::json_body(&body)?)?;
    let bytes = serde_json::to_vec(&setting).map_err(|e| ApiError::internal(e.to_string()))?;
    state.set_org_record(&org, OrgTable::Settings, SETTING, Some(bytes)).await?;
    parts.cors.set(setting.clone());
    Ok(Json(setting))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(origins: &[&str]) -> Result<Vec<String>, String> {
        check(CorsSetting { origins: origins.iter().map(|o| o.to_string()).collect() })
            .map(|s| s.origins)
            .map_err(|e| format!("{} {}", e.field.unwrap_or_default(), e.message))
    }

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        assert_eq!(
            checked(&["HTTPS://App.Example.com", "http://localhost:5173", "https://app.example.com/"]),
            Ok(vec!["http://localhost:5173".to_string(), "https://app.example.com".to_string()])
        );
        assert_eq!(checked(&["*"]), Ok(vec!["*".to_string()]));
        assert_eq!(checked(&[]), Ok(vec![]));
    }

    #[test]
    fn what_is_not_an_origin_is_refused_naming_its_place() {
        for bad in [
            "app.example.com",
            "ftp://example.com",
            "https://example.com/app",
            "https://user@example.com",
            "https://example.com?x=1",
            "null",
            "",
        ] {
            let refused = checked(&["https://ok.example", bad]).expect_err(bad);
            assert!(refused.contains("origins[1]"), "{bad}: {refused}");
        }
        assert!(checked(&["*", "https://a.example"]).is_err(), "* with others is ambiguous");
    }

    #[test]
    fn an_allowed_origin_matches_whatever_its_case_and_nothing_else_does() {
        let origins = Origins(RwLock::new(CorsSetting { origins: vec!["https://app.example.com".into()] }));
        assert!(origins.allows(b"https://app.example.com"));
        assert!(origins.allows(b"https://APP.example.com"));
        assert!(!origins.allows(b"https://app.example.com.evil.test"));
        assert!(!origins.allows(b"http://app.example.com"));
        assert!(!Origins::default().allows(b"https://app.example.com"));
    }

    #[test]
    fn only_organisation_paths_are_served_cross_origin() {
        assert_eq!(org_of("/v1/orgs/acme/moments"), Some("acme"));
        assert_eq!(org_of("/v1/orgs/acme"), Some("acme"));
        assert_eq!(org_of("/v1/orgs/"), None);
        assert_eq!(org_of("/metrics"), None);
        assert_eq!(org_of("/v1/orgs"), None);
    }
}
