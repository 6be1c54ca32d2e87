//! Webhooks: an organisation's effects delivered to the URLs its product team registered, for
//! the effect types each chose, at least once, signed.
//!
//! **Owns** the subscriptions ([`Hooks`], kept in `orgs/ORG/webhooks.json` with each
//! subscription's delivery cursor), the signature, and the delivery loop ([`deliver`]), one
//! async task per organisation that reads the organisation's [`Feed`] and posts on a blocking
//! thread. **Must not touch** the world or the log: a webhook sees exactly what the feed holds.
//!
//! # Delivery
//!
//! Effects go out in order, in batches of up to [`BATCH`], as
//! `{"organisation", "webhook", "effects": [{"id", "seq", ...effect}]}`. A subscription's cursor
//! (the number of the last effect it has dealt with) moves only after a `2xx` answer, and is
//! saved before the next batch; a restart resends at most the batch in flight, so receivers
//! deduplicate on the effects' `id`. A failed delivery (no answer within [`TIMEOUT`], or not
//! `2xx`) is retried with exponential backoff, from 1 s to [`MAX_BACKOFF`]. If a receiver stays
//! away longer than the feed keeps effects, the ones it missed are counted in `missed` and the
//! delivery resumes at the oldest kept.
//!
//! # Signature
//!
//! `Plaudit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
//! receiver recomputes it over the raw body with the subscription's secret and refuses a
//! timestamp too far from its clock (replays).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Notify, watch};

use crate::feed::{Feed, FeedItem};

/// Effects in one delivery.
pub const BATCH: usize = 100;
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most subscriptions per organisation.
pub const MAX_HOOKS: usize = 32;

/// A webhook URL as the API description's pattern has it: `http://` or `https://`, a host of
/// letters, digits, dots and dashes, an optional port (1 to 65535), then a path, query or
/// fragment of URI characters.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err("the host may only hold letters, digits, `.` and `-`");
    }
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u32>().map_or(true, |p| !(1..=65535).contains(&p)))
    {
        return Err("the port must be 1 to 65535");
    }
    if !tail.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~:/?#@!$&'()*+,;=%-".contains(&b)) {
        return Err("the path, query and fragment may only hold URI characters");
    }
    Ok(())
}

/// The effect types a subscription may choose (the `type` of an effect).
pub const EFFECT_TYPES: [&str; 12] = [
    "points_awarded",
    "points_withheld",
    "points_revoked",
    "badge_earned",
    "badge_revoked",
    "level_reached",
    "streak_extended",
    "streak_broken",
    "challenge_progressed",
    "challenge_completed",
    "guarded",
    "custom",
];

/// One subscription, as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub url: String,
    /// Effect types delivered; empty: all.
    pub types: Vec<String>,
    pub secret: String,
    /// The number of the last effect dealt with (delivered, or not of a chosen type).
    pub cursor: u64,
    /// Effects the feed dropped before they could be delivered.
    #[serde(default)]
    pub missed: u64,
}

/// How a subscription's delivery goes (not kept across restarts).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Health {
    pub delivered_batches: u64,
    pub failed_attempts: u64,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Unix seconds of the next attempt, while backing off.
    pub retry_at: Option<u64>,
}

/// A subscription as shown (without its secret).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HookView {
    pub name: String,
    pub url: String,
    pub types: Vec<String>,
    pub cursor: u64,
    pub missed: u64,
    #[serde(flatten)]
    pub health: Health,
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The organisation has as many webhooks as it may.
    #[error("at most {MAX_HOOKS} webhooks an organisation: remove one first")]
    Full,
    #[error("cannot save the webhooks in {path}: {source}")]
    Save { path: PathBuf, source: std::io::Error },
}

fn invalid(field: &'static str, message: impl Into<String>) -> HookError {
    HookError::Invalid { field, message: message.into() }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    hooks: BTreeMap<String, Hook>,
}

#[derive(Debug, Default)]
struct State {
    kept: Kept,
    health: BTreeMap<String, Health>,
    /// When each backing-off subscription may try again.
    due: BTreeMap<String, tokio::time::Instant>,
}

/// An organisation's subscriptions, shared by the routes and the delivery task.
#[derive(Debug)]
pub struct Hooks {
    path: PathBuf,
    state: Mutex<State>,
    changed: Notify,
}

impl Hooks {
    /// The subscriptions kept at `path` (none if the file does not exist).
    pub fn load(path: PathBuf) -> Result<Hooks, String> {
        let kept = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kept::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Hooks { path, state: Mutex::new(State { kept, ..State::default() }), changed: Notify::new() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the subscriptions: a temporary file, fsync'd, renamed over the old one.
    fn save(&self, kept: &Kept) -> Result<(), HookError> {
        let save = |source| HookError::Save { path: self.path.clone(), source };
        let bytes = serde_json::to_vec_pretty(kept).map_err(|e| save(std::io::Error::other(e)))?;
        if let Some(folder) = self.path.parent() {
            std::fs::create_dir_all(folder).map_err(save)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp).map_err(save)?;
            file.write_all(&bytes).map_err(save)?;
            file.sync_all().map_err(save)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(save)
    }

    /// Creates or replaces subscription `name`; a new one starts after `latest` (effects from
    /// now on), a replaced one keeps its cursor. Returns the secret.
    pub fn put(
        &self,
        name: &str,
        url: &str,
        types: Vec<String>,
        secret: Option<String>,
        latest: u64,
    ) -> Result<String, HookError> {
        check_name(name)?;
        check_url(url).map_err(|why| invalid("url", format!("{url:?}: {why}")))?;
        let parsed: ureq::http::Uri = url.parse().map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(invalid("url", format!("{url:?}: an absolute http:// or https:// URL")));
        }
        for t in &types {
            if !EFFECT_TYPES.contains(&t.as_str()) {
                return Err(invalid("types", format!("{t:?} is no effect type; one of {}", EFFECT_TYPES.join(", "))));
            }
        }
        let secret = match secret {
            Some(s) if s.chars().count() < 16 => return Err(invalid("secret", "at least 16 characters")),
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 24];
                getrandom::fill(&mut bytes).map_err(|e| invalid("secret", format!("no randomness: {e}")))?;
                format!("whsec_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let mut state = self.state();
        if !state.kept.hooks.contains_key(name) && state.kept.hooks.len() >= MAX_HOOKS {
            return Err(HookError::Full);
        }
        let (cursor, missed) = state.kept.hooks.get(name).map_or((latest, 0), |h| (h.cursor, h.missed));
        let hook = Hook { url: url.to_string(), types, secret: secret.clone(), cursor, missed };
        let mut kept = Kept { hooks: state.kept.hooks.clone() };
        kept.hooks.insert(name.to_string(), hook);
        self.save(&kept)?;
        state.kept = kept;
        state.health.remove(name);
        state.due.remove(name);
        drop(state);
        self.changed.notify_one();
        Ok(secret)
    }

    /// Removes subscription `name`; false if there is none.
    pub fn remove(&self, name: &str) -> Result<bool, HookError> {
        let mut state = self.state();
        if !state.kept.hooks.contains_key(name) {
            return Ok(false);
        }
        let mut kept = Kept { hooks: state.kept.hooks.clone() };
        kept.hooks.remove(name);
        self.save(&kept)?;
        state.kept = kept;
        state.health.remove(name);
        state.due.remove(name);
        Ok(true)
    }

    /// The subscriptions, by name.
    pub fn views(&self) -> Vec<HookView> {
        let state = self.state();
        state
            .kept
            .hooks
            .iter()
            .map(|(name, h)| HookView {
                name: name.clone(),
                url: h.url.clone(),
                types: h.types.clone(),
                cursor: h.cursor,
                missed: h.missed,
                health: state.health.get(name).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// A webhook name: 1 to 64 lowercase letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), HookError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(invalid("name", format!("{name:?}: 1 to 64 lowercase letters, digits, `-` and `_`"))) }
}

/// The `Plaudit-Signature` of `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(e) => unreachable!("HMAC accepts every key length: {e}"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[derive(Serialize)]
struct Delivery<'a> {
    organisation: &'a str,
    webhook: &'a str,
    effects: Vec<&'a FeedItem>,
}

/// What one round found to do for a subscription.
#[derive(Clone)]
struct Job {
    name: String,
    hook: Hook,
    /// The cursor once this batch is dealt with.
    through: u64,
    items: Vec<Arc<FeedItem>>,
    missed: u64,
}

/// The next batch of `hook`, if any: effects after its cursor of its types.
fn next_batch(feed: &Feed, hook: &Hook) -> (Vec<Arc<FeedItem>>, u64, u64) {
    let (page, missed) = match feed.after(Some(hook.cursor), 10 * BATCH) {
        Ok(page) => (page, 0),
        Err(gone) => (feed.after(None, 10 * BATCH).unwrap_or_default(), gone.oldest - 1 - hook.cursor),
    };
    let mut through = hook.cursor + missed;
    let mut items = Vec::new();
    for item in page {
        let ty = serde_json::to_value(&item.effect.kind).ok().and_then(|v| v.get("type").cloned());
        let wanted = hook.types.is_empty()
            || ty.as_ref().and_then(|t| t.as_str()).is_some_and(|t| hook.types.iter().any(|x| x == t));
        if wanted {
            if items.len() == BATCH {
                break;
            }
            items.push(item.clone());
        }
        through = item.id;
    }
    (items, through, missed)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Posts one batch; `Err` says why it was not accepted.
fn post(agent: &ureq::Agent, org: &str, job: &Job) -> Result<(), String> {
    let body = Delivery { organisation: org, webhook: &job.name, effects: job.items.iter().map(|i| &**i).collect() };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let t = unix_now();
    agent
        .post(&job.hook.url)
        .header("Content-Type", "application/json")
        .header("Plaudit-Signature", signature(&job.hook.secret, t, &body))
        .header("Plaudit-Webhook", &job.name)
        .send(&body[..])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Delivers `org`'s effects to its subscriptions until `closing` turns true.
pub async fn deliver(org: String, hooks: Arc<Hooks>, feed: Arc<Feed>, mut closing: watch::Receiver<bool>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).build().into();
    let mut wake = feed.subscribe();
    loop {
        wake.borrow_and_update();
        let now = tokio::time::Instant::now();
        let jobs: Vec<Job> = {
            let mut state = hooks.state();
            let due = state.due.clone();
            let mut jobs = Vec::new();
            for (name, hook) in &mut state.kept.hooks {
                if due.get(name).is_some_and(|at| *at > now) {
                    continue;
                }
                let (items, through, missed) = next_batch(&feed, hook);
                if items.is_empty() && through > hook.cursor {
                    // Nothing of its types: move past, saved with the next delivery.
                    hook.cursor = through;
                    hook.missed += missed;
                } else if !items.is_empty() {
                    jobs.push(Job { name: name.clone(), hook: hook.clone(), through, items, missed });
                }
            }
            jobs
        };
        for job in &jobs {
            let (name, agent) = (org.clone(), agent.clone());
            let sent = job.clone();
            let result = tokio::task::spawn_blocking(move || post(&agent, &name, &sent))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let mut state = hooks.state();
            let health = state.health.entry(job.name.clone()).or_default();
            match result {
                Ok(()) => {
                    health.delivered_batches += 1;
                    health.consecutive_failures = 0;
                    health.retry_at = None;
                    state.due.remove(&job.name);
                    let mut kept = Kept { hooks: state.kept.hooks.clone() };
                    // The subscription may have been replaced or removed meanwhile.
                    if let Some(h) = kept.hooks.get_mut(&job.name).filter(|h| h.url == job.hook.url) {
                        h.cursor = h.cursor.max(job.through);
                        h.missed += job.missed;
                        if let Err(e) = hooks.save(&kept) {
                            state.health.entry(job.name.clone()).or_default().last_error = Some(e.to_string());
                        }
                        state.kept = kept;
                    }
                }
                Err(e) => {
                    health.failed_attempts += 1;
                    health.consecutive_failures += 1;
                    // 1 s, 2 s, 4 s... up to MAX_BACKOFF.
                    let backoff =
                        Duration::from_secs(1u64 << (health.consecutive_failures - 1).min(16)).min(MAX_BACKOFF);
                    tracing::warn!(org = %org, webhook = %job.name, error = %e, retry_in_s = backoff.as_secs(), "webhook delivery failed");
                    health.last_error = Some(e);
                    health.retry_at = Some(unix_now() + backoff.as_secs());
                    state.due.insert(job.name.clone(), tokio::time::Instant::now() + backoff);
                }
            }
        }
        if !jobs.is_empty() {
            continue;
        }
        let next_due = hooks.state().due.values().min().copied();
        let sleep = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            () = hooks.changed.notified() => {}
            () = sleep => {}
            _ = closing.changed() => return,
        }
        if *closing.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 framing: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Ours signs "<t>.<body>".
        let sig = signature("Jefe", 12, b"body");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"12.body");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("t=12,v1={hex}"));
    }

    #[test]
    fn subscriptions_are_checked_kept_on_disk_and_keep_their_cursor_when_replaced() {
        let path = std::env::temp_dir().join(format!("plaudit-hooks-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let hooks = Hooks::load(path.clone()).expect("loads");
        let bad = hooks.put("crm", "ftp://x", vec![], None, 0).expect_err("scheme");
        assert!(matches!(bad, HookError::Invalid { field: "url", .. }), "{bad}");
        let bad = hooks.put("crm", "http://x/", vec!["badge".into()], None, 0).expect_err("type");
        assert!(matches!(bad, HookError::Invalid { field: "types", .. }), "{bad}");
        let bad = hooks.put("Bad Name", "http://x/", vec![], None, 0).expect_err("name");
        assert!(matches!(bad, HookError::Invalid { field: "name", .. }), "{bad}");
        let secret = hooks.put("crm", "http://127.0.0.1:9/hook", vec!["badge_earned".into()], None, 7).expect("put");
        assert!(secret.starts_with("whsec_") && secret.len() > 20);
        assert_eq!(hooks.views()[0].cursor, 7, "starts after the latest effect");
        hooks.put("crm", "http://127.0.0.1:9/other", vec![], Some("a-secret-of-16-chars".into()), 99).expect("put");
        let again = Hooks::load(path.clone()).expect("loads");
        let views = again.views();
        assert_eq!((views[0].url.as_str(), views[0].cursor), ("http://127.0.0.1:9/other", 7));
        assert!(again.remove("crm").expect("removes"));
        assert!(!again.remove("crm").expect("removes"));
        assert!(Hooks::load(path.clone()).expect("loads").views().is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
