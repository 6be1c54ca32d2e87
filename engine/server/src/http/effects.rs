//! `GET /v1/orgs/{org}/effects`: the effects feed, paged by cursor (`?after=N&limit=`), or,
//! with `Accept: text/event-stream`, followed live as Server-Sent Events (each event's `id` is
//! the effect's number, so a client that reconnects with `Last-Event-ID` misses nothing the
//! feed still keeps; the header wins over `?after=`, which a browser's `EventSource` resends
//! unchanged). A browser's `EventSource`, which cannot send `Authorization`, gives a feed token
//! instead (`?token=`, from `POST .../effects/tokens`: [`super::tokens`]). A `stakeholder` key
//! (or its token) reads that stakeholder's own effects only; the cursor still passes the others.
//!
//! **Owns** the page, the stream and the tokens' route. Reads go straight to the organisation's
//! [`Feed`](crate::feed::Feed), never through its worker: following the feed costs scoring
//! nothing.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::AppState;
use super::error::ApiError;
use super::tokens::{self, CreatedToken, NewToken};
use crate::feed::{Feed, Gone};
use plaudit_core::journal::FeedItem;

/// Effects in a page when the request does not say.
pub const DEFAULT_PAGE: usize = 100;
/// Most effects in a page.
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    after: Option<u64>,
    limit: Option<usize>,
    /// A feed token, in place of a key.
    token: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Serialize)]
pub struct FeedPage {
    pub effects: Vec<Arc<FeedItem>>,
    /// The cursor for the next page: the last effect looked at (or the one asked for). For a
    /// `stakeholder` key it passes the effects of others, so a page may hold fewer than `limit`
    /// while there are more: read on until `next` is `latest`.
    pub next: u64,
    /// The number of the last effect produced so far.
    pub latest: u64,
}

/// `410 gone`, naming where the cursor came from (`after`, or `Last-Event-ID`).
fn gone(field: &'static str) -> impl Fn(Gone) -> ApiError {
    move |g| ApiError::new(StatusCode::GONE, "gone", g.to_string()).field(field)
}

pub async fn get_effects(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    params: Result<Query<FeedParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(super::invalid_query)?;
    let (org, grant) = state.authorise_feed(&org, &headers, p.token.as_deref())?;
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be 1 to {MAX_PAGE}")).field("limit"));
    }
    let feed = Arc::clone(&org.feed);
    let only: Option<Arc<str>> = grant.feed_of().map(Arc::from);
    // Pages by default; the stream when `Accept` prefers it (`text/event-stream;q=0` is a no).
    let streaming = super::accept::choose(&headers, &["application/json", "text/event-stream"])? == "text/event-stream";
    // A reconnecting `EventSource` sends its original URL (with its `after`) and the last event
    // it saw: that one wins. A header that is not an event's number is refused, not ignored (it
    // would silently replay from `after`); a page, which has its cursor, checks it the same way.
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::bad_request("invalid_header", "Last-Event-ID must be an event's id (a number)")
                .field("Last-Event-ID")
        })?),
    };
    if streaming {
        let after = match resume.or(p.after) {
            Some(after) => after,
            // A new follower starts with what comes next.
            None => feed.latest(),
        };
        feed.after(Some(after), 1).map_err(gone(if resume.is_some() { "Last-Event-ID" } else { "after" }))?;
        return Ok(follow(feed, after, only, state.closing()).into_response());
    }
    let (effects, next) = feed.after_where(p.after, limit, keeps(only.as_deref())).map_err(gone("after"))?;
    Ok(Json(FeedPage { effects, next, latest: feed.latest() }).into_response())
}

/// What a reader takes of the feed: everything, or one stakeholder's effects.
fn keeps(only: Option<&str>) -> impl Fn(&FeedItem) -> bool + '_ {
    move |item| only.is_none_or(|who| item.effect.stakeholder == who)
}

/// `POST /v1/orgs/{org}/effects/tokens`: a feed token standing for the key that asks, which
/// must be one that may read the feed.
pub async fn post_token(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (admitted, grant) = state.authorise_feed(&org, &headers, None)?;
    drop(admitted);
    // No body: the defaults. A body must be JSON (one of blanks is not, and is refused).
    let asked: NewToken = if body.is_empty() { NewToken::default() } else { super::json_body(&body)? };
    let ttl = asked.ttl().ok_or_else(|| {
        let bounds =
            format!("ttl_seconds is {} to {} (whole seconds)", tokens::MIN_TTL_SECONDS, tokens::MAX_TTL_SECONDS);
        ApiError::bad_request("invalid_body", bounds).field("ttl_seconds")
    })?;
    let (token, expires) = state.feed_token(&org, &grant, ttl)?;
    let stream = format!("/v1/orgs/{org}/effects?token={token}");
    Ok((StatusCode::CREATED, Json(CreatedToken { token, expires, stream })))
}

/// Where a follower is.
struct Follower {
    feed: Arc<Feed>,
    /// The one stakeholder whose effects it follows, if only one's.
    only: Option<Arc<str>>,
    wake: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    last: u64,
    pending: VecDeque<Arc<FeedItem>>,
    done: bool,
}

/// The live stream of effects after `after`, until the client leaves, the feed drops effects
/// it has not sent (a `gone` event, then the end) or the server shuts down.
fn follow(
    feed: Arc<Feed>,
    after: u64,
    only: Option<Arc<str>>,
    closing: watch::Receiver<bool>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let wake = feed.subscribe();
    let start = Follower { feed, only, wake, closing, last: after, pending: VecDeque::new(), done: false };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            if let Some(item) = f.pending.pop_front() {
                f.last = item.id;
                let event =
                    Event::default().id(item.id.to_string()).event("effect").json_data(&*item).unwrap_or_else(|e| {
                        Event::default().comment(format!("effect {} not serialisable: {e}", item.id))
                    });
                return Some((Ok(event), f));
            }
            match f.feed.after_where(Some(f.last), MAX_PAGE, keeps(f.only.as_deref())) {
                Ok((items, _)) if !items.is_empty() => f.pending.extend(items),
                // Looked past others' effects: on from there.
                Ok((_, last)) if last > f.last => f.last = last,
                Ok(_) => {
                    f.wake.borrow_and_update();
                    tokio::select! {
                        changed = f.wake.changed() => if changed.is_err() { return None },
                        _ = f.closing.changed() => return None,
                    }
                }
                Err(g) => {
                    f.done = true;
                    return Some((Ok(Event::default().event("gone").data(g.to_string())), f));
                }
            }
        }
    });
    // A comment line every 15 s keeps proxies from closing a quiet stream.
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}
