//! Signing in with an organisation's own key, and out.
//!
//! The key must be the organisation's own (the one that may change its rule set): the console
//! asks the API for the organisation's keys with it, which only that key may read. A wrong key,
//! a scoped key or an unknown organisation are refused alike, without saying which.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Change, Form};
use crate::Console;
use crate::layout;

/// The sign-in form, with what went wrong last time if anything.
pub fn form(problem: Option<&str>, org: &str) -> Markup {
    html! {
        p { "Sign in with your organisation's own key, the one that may publish its rules." }
        @if let Some(problem) = problem { p.error role="alert" #problem { (problem) } }
        form.signin method="post" action="/console/sign-in" {
            label for="org" { "Organisation" }
            input #org name="org" type="text" required autocomplete="organization" value=(org)
                aria-describedby=[problem.map(|_| "problem")];
            label for="key" { "Key" }
            input #key name="key" type="password" required autocomplete="current-password";
            button type="submit" { "Sign in" }
        }
    }
}

pub fn page(status: StatusCode, problem: Option<&str>, org: &str) -> Response {
    layout::bare(status, "Sign in", form(problem, org))
}

/// `POST /console/sign-in`: `org` and `key`.
pub async fn post(State(console): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    if !crate::session::same_origin(&headers) {
        return layout::error_page(StatusCode::FORBIDDEN, "Refused", "This sign-in came from another site.");
    }
    let form = Form::parse(&body);
    let org = form.get("org").unwrap_or("").trim().to_string();
    let key = form.get("key").unwrap_or("").trim().to_string();
    if org.is_empty() || key.is_empty() {
        return page(StatusCode::BAD_REQUEST, Some("Give the organisation and its key."), &org);
    }
    let path = format!("/v1/orgs/{}/keys", crate::api::enc(&org));
    let (status, _) = console.api.call(&key, axum::http::Method::GET, &path, None).await;
    match status {
        200 => {}
        401 | 403 | 404 => {
            let problem = "That is not this organisation's own key (a scoped key cannot sign in here).";
            return page(StatusCode::UNAUTHORIZED, Some(problem), &org);
        }
        _ => {
            let problem =
                format!("The organisation cannot be reached now (the API answered {status}): try again shortly.");
            return page(StatusCode::SERVICE_UNAVAILABLE, Some(&problem), &org);
        }
    }
    match console.sessions.start(&org, &key, crate::session::https(&headers)) {
        Ok((_, cookie)) => ([(header::SET_COOKIE, cookie)], Redirect::to("/console/")).into_response(),
        Err(e) => layout::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Cannot sign in", &e.to_string()),
    }
}

/// `POST /console/sign-out`.
pub async fn sign_out(State(console): State<Arc<Console>>, Change { session, .. }: Change) -> Response {
    let cookie = console.sessions.end(&session);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/")).into_response()
}
