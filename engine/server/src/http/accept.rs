//! Content negotiation: which of the media types a route offers the request's `Accept`
//! prefers (RFC 9110, 12.5.1), or `406 not_acceptable` naming what is offered.
//!
//! **Owns** the reading of `Accept`. **Must not touch** what is answered: handlers render.

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;

/// The offered type `Accept` prefers: the highest `q`, then the most specific range that
/// names it (`type/subtype`, then `type/*`, then `*/*`), then the first offered. Without an
/// `Accept`, the first offered.
pub fn choose<'a>(headers: &HeaderMap, offered: &[&'a str]) -> Result<&'a str, ApiError> {
    let Some(first) = offered.first() else { return Err(not_acceptable("", offered)) };
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(first) };
    // (q, specificity, the offer's rank: earlier is better)
    let mut best: Option<(f32, u8, usize)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q =
            parts.filter_map(|p| p.trim().strip_prefix("q=")).find_map(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        for (rank, offer) in offered.iter().enumerate() {
            let main = offer.split('/').next().unwrap_or("");
            let specific = if media == *offer {
                2
            } else if media.strip_suffix("/*").is_some_and(|m| m == main) {
                1
            } else if media == "*/*" {
                0
            } else {
                continue;
            };
            let better =
                best.is_none_or(|(bq, bs, br)| q > bq || (q == bq && (specific > bs || (specific == bs && rank < br))));
            if better {
                best = Some((q, specific, rank));
            }
        }
    }
    best.map(|(_, _, rank)| offered[rank]).ok_or_else(|| not_acceptable(accept, offered))
}

fn not_acceptable(accept: &str, offered: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        format!("Accept {accept:?}: this is served as {}", offered.join(" or ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().expect("a header value"));
        h
    }

    #[test]
    fn the_highest_q_then_the_most_specific_range_then_the_first_offered_wins() {
        let offered = ["application/toml", "application/json"];
        assert_eq!(choose(&HeaderMap::new(), &offered), Ok("application/toml"));
        assert_eq!(choose(&accept("application/json"), &offered), Ok("application/json"));
        assert_eq!(choose(&accept("*/*"), &offered), Ok("application/toml"));
        assert_eq!(choose(&accept("application/*"), &offered), Ok("application/toml"));
        assert_eq!(choose(&accept("application/*, application/json"), &offered), Ok("application/json"));
        assert_eq!(choose(&accept("application/toml;q=0.5, application/json"), &offered), Ok("application/json"));
        assert_eq!(choose(&accept("application/json;q=0, */*"), &offered), Ok("application/toml"));
        let refused = choose(&accept("text/html"), &offered).expect_err("neither");
        assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
        assert!(refused.message.contains("application/toml or application/json"), "{}", refused.message);
        assert!(choose(&accept("application/json;q=0"), &offered).is_err());
    }
}
