//! Feed tokens: short-lived credentials for the effects feed that a page can put in a URL, since
//! a browser's `EventSource` sends no `Authorization` header. `POST /v1/orgs/{org}/effects/tokens`
//! with a key that may read the feed gives one; `GET /v1/orgs/{org}/effects?token=...` takes it
//! in place of that key, and sees what the key sees (a `stakeholder` key: its own effects).
//!
//! **Owns** the token's form, its signature and its checks. **Must not touch** what a key may
//! do ([`super::keys`] says) or the feed itself.
//!
//! A token is `ft_<grant>_<expiry>_<signature>`: the grant is `own` (the organisation's own key)
//! or a scoped key's id, the expiry Unix seconds, the signature HMAC-SHA256 over the
//! organisation, grant and expiry, keyed by the SHA-256 of the organisation's own key. So a
//! token holds no secret, any restart (or any node) can check it, a new organisation key voids
//! every token, and a revoked scoped key's tokens are refused with it. Checked when the feed is
//! opened: a stream already open goes on until the client leaves.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::keys::Grant;
use super::{constant_time_eq, hex, unhex32};

/// How long a token lives when not asked otherwise, and the bounds of what may be asked.
pub const DEFAULT_TTL_SECONDS: u64 = 600;
pub const MIN_TTL_SECONDS: u64 = 30;
pub const MAX_TTL_SECONDS: u64 = 3600;

/// What a token was made for, as it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims<'a> {
    /// `None`: the organisation's own key; else a scoped key's id.
    pub key: Option<&'a str>,
    /// Unix seconds after which it is refused.
    pub expires: u64,
}

/// Why a token is refused (all answered `401`, the message saying which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a feed token: ask POST .../effects/tokens for one")]
    Malformed,
    #[error("this feed token has expired: ask POST .../effects/tokens for a new one")]
    Expired,
    #[error("this feed token is not valid for this organisation (or its key changed)")]
    BadSignature,
}

/// The token for `claims` of organisation `org`, signed with `secret` (its own key's hash).
pub fn sign(org: &str, claims: &Claims<'_>, secret: &[u8; 32]) -> String {
    let grant = claims.key.unwrap_or("own");
    format!("ft_{grant}_{}_{}", claims.expires, hex(&mac(org, grant, claims.expires, secret)))
}

/// The claims of `token` for organisation `org`, if `secret` signed it and it has not expired
/// at `now` (Unix seconds).
pub fn verify<'t>(org: &str, token: &'t str, secret: &[u8; 32], now: u64) -> Result<Claims<'t>, TokenError> {
    let mut parts = token.strip_prefix("ft_").ok_or(TokenError::Malformed)?.split('_');
    let (Some(grant), Some(expires), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    let valid_grant = grant == "own" || (!grant.is_empty() && grant.bytes().all(|b| b.is_ascii_hexdigit()));
    let signature = unhex32(signature).filter(|_| valid_grant).ok_or(TokenError::Malformed)?;
    if !constant_time_eq(&mac(org, grant, expires, secret), &signature) {
        return Err(TokenError::BadSignature);
    }
    if expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(Claims { key: (grant != "own").then_some(grant), expires })
}

fn mac(org: &str, grant: &str, expires: u64, secret: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("plaudit feed token\n{org}\n{grant}\n{expires}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// The claims a grant gives a token.
pub(crate) fn claims_of(grant: &Grant, expires: u64) -> Claims<'_> {
    Claims { key: grant.key_id(), expires }
}

/// `POST /v1/orgs/{org}/effects/tokens`'s body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Whole seconds (`600`, or `600.0`, which JSON Schema counts as an integer too).
    #[serde(default, deserialize_with = "super::whole_or_null")]
    pub ttl_seconds: Option<u64>,
}

impl NewToken {
    /// The lifetime asked (or the default), if within the bounds.
    pub fn ttl(&self) -> Option<u64> {
        let ttl = self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl).then_some(ttl)
    }
}

/// A new feed token.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    pub token: String,
    /// Unix seconds.
    pub expires: u64,
    /// The stream's address with the token, relative to the server: give it to `EventSource`.
    pub stream: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn a_token_verifies_for_its_organisation_until_it_expires() {
        let claims = Claims { key: Some("ab12"), expires: 1_000 };
        let token = sign("acme", &claims, &SECRET);
        assert_eq!(verify("acme", &token, &SECRET, 999), Ok(claims));
        assert_eq!(verify("acme", &token, &SECRET, 1_000), Err(TokenError::Expired));
        assert_eq!(verify("beta", &token, &SECRET, 1), Err(TokenError::BadSignature));
        assert_eq!(verify("acme", &token, &[8; 32], 1), Err(TokenError::BadSignature), "a new org key voids it");
        let own = sign("acme", &Claims { key: None, expires: 5 }, &SECRET);
        assert_eq!(verify("acme", &own, &SECRET, 1), Ok(Claims { key: None, expires: 5 }));
    }

    #[test]
    fn a_lifetime_is_whole_seconds_within_bounds_however_the_number_is_written() {
        let ttl = |json: &str| serde_json::from_str::<NewToken>(json).ok().and_then(|t| t.ttl());
        assert_eq!(ttl("{}"), Some(DEFAULT_TTL_SECONDS));
        assert_eq!(ttl(r#"{"ttl_seconds": null}"#), Some(DEFAULT_TTL_SECONDS));
        assert_eq!(ttl(r#"{"ttl_seconds": 60}"#), Some(60));
        assert_eq!(ttl(r#"{"ttl_seconds": 216.0}"#), Some(216));
        for refused in ["29", "3601", "60.5", "-60", "1e30"] {
            assert_eq!(ttl(&format!(r#"{{"ttl_seconds": {refused}}}"#)), None, "{refused}");
        }
    }

    #[test]
    fn an_altered_token_is_refused_whatever_was_changed() {
        let token = sign("acme", &Claims { key: Some("ab12"), expires: 1_000 }, &SECRET);
        let longer = token.replace("_1000_", "_9999_");
        let other_key = token.replace("ab12", "ab13");
        let as_own = token.replace("ab12", "own");
        for altered in [longer, other_key, as_own] {
            assert_eq!(verify("acme", &altered, &SECRET, 1), Err(TokenError::BadSignature), "{altered}");
        }
        for malformed in ["", "ft_", "sk_ab_1_00", "ft_own_x_00", "ft_own_5", "ft_zz_5_00", &format!("{token}_x")] {
            assert_eq!(verify("acme", malformed, &SECRET, 1), Err(TokenError::Malformed), "{malformed}");
        }
    }
}
