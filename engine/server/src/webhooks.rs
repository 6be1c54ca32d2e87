//! Webhooks: an organisation's effects delivered to the URLs its product team registered, for
//! the effect types each chose, at least once, signed.
//!
//! **Owns** the subscriptions ([`Hooks`], kept in the store with the organisation, as its setting
//! `webhooks`, with each subscription's delivery cursor), the signature, and the delivery loop
//! ([`deliver`]), one async task per organisation that reads the organisation's [`Feed`] and
//! posts on a blocking thread. **Must not touch** the world or the log: a webhook sees exactly
//! what the feed holds.
//!
//! # Where subscriptions live
//!
//! In the store, beside the organisation's keys and other settings ([`OrgTable::Settings`],
//! [`SETTING`]): one JSON record holding every subscription with its cursor, written whole, so
//! that the node serving an organisation (after a restart, a failover or a move to another node
//! with a data directory of its own) finds them and resumes each delivery from its stored
//! cursor. Earlier builds kept them in the data directory (`orgs/ORG/webhooks.json`): [`Hooks::load`]
//! adopts such a file into the store when the store has none, and renames it
//! `webhooks.json.adopted`. Every store call blocks: [`Hooks::load`], [`Hooks::put`] and
//! [`Hooks::remove`] run on blocking threads, and the delivery loop writes its progress on one.
//! One node serves an organisation at a time: the record is written whole, so two nodes
//! delivering for the same organisation at once would overwrite each other's changes.
//!
//! # Delivery
//!
//! Effects go out in order, in batches of up to [`BATCH`], as
//! `{"organisation", "webhook", "effects": [{"id", "seq", ...effect}]}`. A subscription's cursor
//! (the number of the last effect it has dealt with) moves only after a `2xx` answer, and is
//! written to the store before the next batch; a restart, or the organisation's move to another
//! node, resends at most the batch in flight, so receivers deduplicate on the effects' `id`. A
//! failed delivery (no answer within [`TIMEOUT`], or not `2xx`) is retried with exponential
//! backoff, from 1 s to [`MAX_BACKOFF`]. If a receiver stays away longer than the feed keeps
//! effects, the ones it missed are counted in `missed` and the delivery resumes at the oldest
//! kept.
//!
//! The cursor is written on every delivery, not batched: with the PostgreSQL store that is one
//! round trip and commit (a few milliseconds, a few kilobytes at most) per batch of up to
//! [`BATCH`] effects, each of which has just cost an HTTP post to the receiver, one at a time per
//! organisation and at most `webhook_deliveries` at once engine-wide; so the store's writes never
//! outnumber the posts. Batching them would save little and widen what a move or a crash resends
//! beyond the batch in flight. A cursor moved past effects of no chosen type (nothing posted) is
//! not written on its own: it is written with the next delivery, and otherwise those effects are
//! looked at again (and skipped again) after a restart.
//!
//! # Targets
//!
//! A webhook reaches only public addresses ([`Targets`]): a URL whose host is, or resolves to, a
//! loopback, private, link-local (cloud metadata), shared, reserved or otherwise internal
//! address is refused, so that the server never becomes a tenant's proxy into its own network.
//! The check is made on the addresses the delivery actually connects to, at each delivery (the
//! resolver hands the connection only the addresses that pass), so a name that later resolves
//! elsewhere (DNS rebinding) does not pass either; an IP literal is refused at subscription
//! already. Only `http` and `https`, no proxy, and redirects are not followed (a `3xx` is a
//! failed delivery). The server's `webhook_hosts` setting names hosts allowed anyway, for
//! development and tests.
//!
//! # Signature
//!
//! `Plaudit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
//! receiver recomputes it over the raw body with the subscription's secret and refuses a
//! timestamp too far from its clock (replays).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Notify, watch};

use crate::feed::Feed;
use plaudit_core::ids::OrgId;
use plaudit_core::journal::FeedItem;
use plaudit_store::{OrgTable, Store, StoreError};

/// The name of the organisation's setting ([`OrgTable::Settings`]) that keeps its subscriptions.
pub const SETTING: &str = "webhooks";

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

/// Where webhooks may be delivered: public addresses, and the hosts the server names.
#[derive(Debug, Default)]
pub struct Targets {
    /// Hosts allowed whatever they resolve to, lowercase.
    allowed: Vec<String>,
}

impl Targets {
    pub fn new(allowed: Vec<String>) -> Targets {
        Targets { allowed: allowed.into_iter().map(|h| h.to_ascii_lowercase()).collect() }
    }

    /// Whether `host` (as written in a URL) is allowed whatever it resolves to.
    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed.contains(&host)
    }

    /// Why a URL's host is refused before any delivery: an internal IP literal not allowed.
    fn check_literal(&self, host: &str) -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<std::net::IpAddr>() {
            Ok(ip) if internal(ip) && !self.allows_host(host) => Err(format!(
                "{host} is an internal address (loopback, private, link-local or reserved): webhooks reach public addresses only"
            )),
            _ => Ok(()),
        }
    }
}

/// Whether `ip` is an address no webhook may reach by default: loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, documentation, benchmarking or reserved,
/// for IPv4, IPv6, and IPv4 addresses written as IPv6.
pub fn internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..=127).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..=19).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
                || first == 0x2002
        }
    }
}

/// What deliveries share across organisations.
#[derive(Debug, Clone)]
pub struct Delivering {
    /// Places to post from: a post runs on a blocking thread, so their number is bounded
    /// engine-wide; each organisation posts one batch at a time.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub targets: Arc<Targets>,
}

/// Resolves a delivery's host and keeps only the addresses [`Targets`] allows, so that the
/// connection can only be made to those.
#[derive(Debug)]
struct Guarded {
    targets: Arc<Targets>,
    inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for Guarded {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let found = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or_default();
        if self.targets.allows_host(host) {
            return Ok(found);
        }
        let mut kept = self.inner.empty();
        for addr in found.iter().filter(|a| !internal(a.ip())) {
            kept.push(*addr);
        }
        if kept.is_empty() {
            let addrs: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refused: {host} resolves to internal addresses only ({}); webhooks reach public addresses only",
                    addrs.join(", ")
                ),
            )));
        }
        Ok(kept)
    }
}

/// The agent deliveries post with: a global timeout, no proxy, no redirect followed, every
/// address checked ([`Guarded`]).
fn agent(targets: Arc<Targets>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .proxy(None)
        .http_status_as_error(false)
        .build();
    let resolver = Guarded { targets, inner: ureq::unversioned::resolver::DefaultResolver::default() };
    ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), resolver)
}

/// The effect types a subscription may choose (the `type` of an effect).
pub const EFFECT_TYPES: [&str; 15] = [
    "points_awarded",
    "points_withheld",
    "points_revoked",
    "badge_earned",
    "badge_revoked",
    "level_reached",
    "streak_extended",
    "streak_broken",
    "streak_shortened",
    "challenge_progressed",
    "challenge_completed",
    "challenge_revoked",
    "guarded",
    "stakeholder_erased",
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
    #[error("cannot save the webhooks of organisation {org}: {source}")]
    Save { org: OrgId, source: StoreError },
}

fn invalid(field: &'static str, message: impl Into<String>) -> HookError {
    HookError::Invalid { field, message: message.into() }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    store: Arc<dyn Store>,
    org: OrgId,
    /// Held for an instant at a time, never across a store call.
    state: Mutex<State>,
    /// Held across each write to the store (on blocking threads only), so that writes go out one
    /// at a time, each of the subscriptions as they are when it starts.
    writing: Mutex<()>,
    changed: Notify,
}

impl Hooks {
    /// The subscriptions of `org` kept in `store` (none if it has none). Blocking. If the store
    /// has none and `legacy` (the file in the data directory where earlier builds kept them)
    /// exists, its subscriptions are written to the store and the file renamed
    /// `webhooks.json.adopted`; a file beside subscriptions the store has already is stale and
    /// set aside the same way, unread.
    pub fn load(store: Arc<dyn Store>, org: &OrgId, legacy: &Path) -> Result<Hooks, String> {
        let fail = |e: StoreError| format!("its webhooks: {e}");
        let stored = store.org_records(org, OrgTable::Settings).map_err(fail)?.into_iter().find(|(n, _)| n == SETTING);
        let kept = match stored {
            Some((_, bytes)) => {
                // Written by this module only: unreadable means a newer layout. Refuse to open
                // rather than write over it.
                let kept = serde_json::from_slice(&bytes).map_err(|e| format!("its webhooks in the store: {e}"))?;
                if legacy.exists() {
                    tracing::warn!(org = %org, file = %legacy.display(), "a webhooks file beside the subscriptions in the store: set aside, unread");
                    set_aside(legacy)?;
                }
                kept
            }
            None => match std::fs::read(legacy) {
                Ok(bytes) => {
                    let kept: Kept =
                        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", legacy.display()))?;
                    let bytes = serde_json::to_vec(&kept).map_err(|e| e.to_string())?;
                    store.set_org_record(org, OrgTable::Settings, SETTING, Some(&bytes)).map_err(fail)?;
                    set_aside(legacy)?;
                    tracing::info!(org = %org, webhooks = kept.hooks.len(), file = %legacy.display(), "webhooks adopted into the store");
                    kept
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kept::default(),
                Err(e) => return Err(format!("{}: {e}", legacy.display())),
            },
        };
        Ok(Hooks {
            store,
            org: org.clone(),
            state: Mutex::new(State { kept, ..State::default() }),
            writing: Mutex::new(()),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `kept` to the store, durably (blocking; with [`Hooks::writing`] held). An empty
    /// set is written too: were the record deleted, a stale file could be adopted again.
    fn write(&self, kept: &Kept) -> Result<(), HookError> {
        let save = |source| HookError::Save { org: self.org.clone(), source };
        let bytes = serde_json::to_vec(kept)
            .map_err(|e| save(StoreError::Backend { op: "encode webhooks", source: Box::new(e) }))?;
        self.store.set_org_record(&self.org, OrgTable::Settings, SETTING, Some(&bytes)).map_err(save)?;
        Ok(())
    }

    /// Changes the subscriptions with `change`, writes them to the store and only then makes them
    /// those in force; what `change` answers, or why it refused, or why the write failed
    /// (nothing changed then). Blocking.
    fn update<T>(&self, change: impl FnOnce(&mut Kept) -> Result<T, HookError>) -> Result<T, HookError> {
        let _writing = self.writing();
        let before = self.state().kept.clone();
        let mut kept = before.clone();
        let answer = change(&mut kept)?;
        if kept == before {
            return Ok(answer);
        }
        self.write(&kept)?;
        let mut state = self.state();
        // Meanwhile the delivery can only have moved cursors forward (and counted what was
        // missed), in memory: keep that.
        for (name, hook) in &mut kept.hooks {
            if let Some(now) = state.kept.hooks.get(name) {
                hook.cursor = hook.cursor.max(now.cursor);
                hook.missed = hook.missed.max(now.missed);
            }
        }
        state.kept = kept;
        Ok(answer)
    }

    /// Moves subscription `name`'s cursor to `through` (and counts `missed`) after a delivery
    /// to `url`, unless it was replaced or removed meanwhile: written to the store, then in force,
    /// so that a listing never shows a cursor the store does not have. In force also if the
    /// write failed (said in the answer), so that the batch is not posted again and again: the
    /// next delivery's write carries it. Blocking.
    fn delivered(&self, name: &str, url: &str, through: u64, missed: u64) -> Result<(), HookError> {
        let _writing = self.writing();
        let advance = |kept: &mut Kept| match kept.hooks.get_mut(name).filter(|h| h.url == url) {
            Some(h) => {
                h.cursor = h.cursor.max(through);
                h.missed += missed;
                true
            }
            None => false,
        };
        let mut kept = self.state().kept.clone();
        if !advance(&mut kept) {
            return Ok(());
        }
        let written = self.write(&kept);
        // Nothing else changed the subscriptions meanwhile: each change holds `writing`, and
        // the delivery task itself is waiting for this.
        advance(&mut self.state().kept);
        written
    }

    /// Creates or replaces subscription `name`; a new one starts after `latest` (effects from
    /// now on), a replaced one keeps its cursor (and its secret, unless given one). Returns the
    /// secret.
    pub fn put(
        &self,
        name: &str,
        url: &str,
        types: Vec<String>,
        secret: Option<String>,
        latest: u64,
        targets: &Targets,
    ) -> Result<String, HookError> {
        check_name(name)?;
        check_url(url).map_err(|why| invalid("url", format!("{url:?}: {why}")))?;
        let parsed: ureq::http::Uri = url.parse().map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(invalid("url", format!("{url:?}: an absolute http:// or https:// URL")));
        }
        targets.check_literal(parsed.host().unwrap_or_default()).map_err(|why| invalid("url", why))?;
        for t in &types {
            if !EFFECT_TYPES.contains(&t.as_str()) {
                return Err(invalid("types", format!("{t:?} is no effect type; one of {}", EFFECT_TYPES.join(", "))));
            }
        }
        if secret.as_ref().is_some_and(|s| s.chars().count() < 16) {
            return Err(invalid("secret", "at least 16 characters"));
        }
        let secret = self.update(|kept| {
            if !kept.hooks.contains_key(name) && kept.hooks.len() >= MAX_HOOKS {
                return Err(HookError::Full);
            }
            // A replaced subscription keeps its secret unless given one: changing its types must
            // not silently break its receiver's verification.
            let secret = match secret.or_else(|| kept.hooks.get(name).map(|h| h.secret.clone())) {
                Some(s) => s,
                None => {
                    let mut bytes = [0u8; 24];
                    getrandom::fill(&mut bytes).map_err(|e| invalid("secret", format!("no randomness: {e}")))?;
                    format!("whsec_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
                }
            };
            let (cursor, missed) = kept.hooks.get(name).map_or((latest, 0), |h| (h.cursor, h.missed));
            let hook = Hook { url: url.to_string(), types, secret: secret.clone(), cursor, missed };
            kept.hooks.insert(name.to_string(), hook);
            Ok(secret)
        })?;
        let mut state = self.state();
        state.health.remove(name);
        state.due.remove(name);
        drop(state);
        self.changed.notify_one();
        Ok(secret)
    }

    /// Removes subscription `name`; false if there is none.
    pub fn remove(&self, name: &str) -> Result<bool, HookError> {
        if !self.state().kept.hooks.contains_key(name) {
            return Ok(false);
        }
        // Another removal may have come first meanwhile: then it was not this one's.
        if !self.update(|kept| Ok(kept.hooks.remove(name).is_some()))? {
            return Ok(false);
        }
        let mut state = self.state();
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

/// Renames `legacy` (a webhooks file of an earlier build) `webhooks.json.adopted`, so that it is
/// never read again.
fn set_aside(legacy: &Path) -> Result<(), String> {
    let aside = legacy.with_extension("json.adopted");
    std::fs::rename(legacy, &aside)
        .map_err(|e| format!("cannot rename {} to {}: {e}", legacy.display(), aside.display()))
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

/// Posts one batch; `Err` says why it was not accepted (anything but a `2xx` answer: a
/// redirect is not followed).
fn post(agent: &ureq::Agent, org: &str, job: &Job) -> Result<(), String> {
    let body = Delivery { organisation: org, webhook: &job.name, effects: job.items.iter().map(|i| &**i).collect() };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let t = unix_now();
    let answer = agent
        .post(&job.hook.url)
        .header("Content-Type", "application/json")
        .header("Plaudit-Signature", signature(&job.hook.secret, t, &body))
        .header("Plaudit-Webhook", &job.name)
        .send(&body[..])
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!("answered {status}: redirects are not followed"))
    } else {
        Err(format!("answered {status}"))
    }
}

/// Delivers `org`'s effects to its subscriptions until `closing` turns true.
pub async fn deliver(
    org: String,
    hooks: Arc<Hooks>,
    feed: Arc<Feed>,
    delivering: Delivering,
    mut closing: watch::Receiver<bool>,
) {
    let agent = agent(Arc::clone(&delivering.targets));
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
                    if missed > 0 {
                        tracing::warn!(org = %org, webhook = %name, missed, "webhook receiver away longer than the feed keeps effects: effects skipped");
                    }
                    hook.cursor = through;
                    hook.missed += missed;
                } else if !items.is_empty() {
                    jobs.push(Job { name: name.clone(), hook: hook.clone(), through, items, missed });
                }
            }
            jobs
        };
        for job in &jobs {
            if job.missed > 0 {
                tracing::warn!(org = %org, webhook = %job.name, missed = job.missed, "webhook receiver away longer than the feed keeps effects: effects skipped");
            }
            let (name, agent) = (org.clone(), agent.clone());
            let sent = job.clone();
            let Ok(place) = Arc::clone(&delivering.slots).acquire_owned().await else { return };
            let result = tokio::task::spawn_blocking(move || {
                let posted = post(&agent, &name, &sent);
                drop(place);
                posted
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let posted = result.is_ok();
            {
                let mut state = hooks.state();
                let health = state.health.entry(job.name.clone()).or_default();
                match result {
                    Ok(()) => {
                        health.delivered_batches += 1;
                        health.consecutive_failures = 0;
                        health.retry_at = None;
                        state.due.remove(&job.name);
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
            if posted {
                // The cursor in the store before the next batch, written on a blocking thread.
                let (saving, name, url) = (Arc::clone(&hooks), job.name.clone(), job.hook.url.clone());
                let (through, missed) = (job.through, job.missed);
                let saved = tokio::task::spawn_blocking(move || {
                    saving.delivered(&name, &url, through, missed).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                if let Err(e) = saved {
                    tracing::warn!(org = %org, webhook = %job.name, error = %e, "a webhook's delivery cursor was not saved");
                    hooks.state().health.entry(job.name.clone()).or_default().last_error = Some(e);
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

    /// A fresh folder (a node's data directory) with an embedded store holding organisation
    /// `acme`; the folder is removed when dropped.
    struct Place {
        dir: std::path::PathBuf,
        store: Arc<dyn Store>,
        org: OrgId,
    }

    impl Place {
        fn new(test: &str) -> Place {
            let dir = std::env::temp_dir().join(format!("plaudit-hooks-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a directory");
            let store: Arc<dyn Store> =
                Arc::new(plaudit_store::RedbStore::open(dir.join("plaudit.redb")).expect("a store"));
            let org = OrgId::parse("acme").expect("an id");
            let rules =
                plaudit_store::Change::Rules { text: String::new(), format: plaudit_core::ruleset::Format::Toml };
            store.create_org(&org, None, &rules).expect("acme");
            Place { dir, store, org }
        }

        /// Where an earlier build kept acme's subscriptions.
        fn legacy(&self) -> std::path::PathBuf {
            self.dir.join("orgs/acme/webhooks.json")
        }

        fn load(&self) -> Result<Hooks, String> {
            Hooks::load(Arc::clone(&self.store), &self.org, &self.legacy())
        }

        /// The subscriptions as the store holds them.
        fn stored(&self) -> Option<Kept> {
            let records = self.store.org_records(&self.org, OrgTable::Settings).expect("read");
            records.into_iter().find(|(n, _)| n == SETTING).map(|(_, b)| serde_json::from_slice(&b).expect("json"))
        }
    }

    impl Drop for Place {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn subscriptions_are_checked_kept_in_the_store_and_keep_their_cursor_when_replaced() {
        let place = Place::new("kept");
        let hooks = place.load().expect("loads");
        let open = Targets::new(vec!["127.0.0.1".into()]);
        let bad = hooks.put("crm", "ftp://x", vec![], None, 0, &open).expect_err("scheme");
        assert!(matches!(bad, HookError::Invalid { field: "url", .. }), "{bad}");
        let bad = hooks.put("crm", "http://x/", vec!["badge".into()], None, 0, &open).expect_err("type");
        assert!(matches!(bad, HookError::Invalid { field: "types", .. }), "{bad}");
        let bad = hooks.put("Bad Name", "http://x/", vec![], None, 0, &open).expect_err("name");
        assert!(matches!(bad, HookError::Invalid { field: "name", .. }), "{bad}");
        assert_eq!(place.stored(), None, "nothing written for a refusal");
        let secret =
            hooks.put("crm", "http://127.0.0.1:9/hook", vec!["badge_earned".into()], None, 7, &open).expect("put");
        assert!(secret.starts_with("whsec_") && secret.len() > 20);
        assert_eq!(hooks.views()[0].cursor, 7, "starts after the latest effect");
        hooks
            .put("crm", "http://127.0.0.1:9/other", vec![], Some("a-secret-of-16-chars".into()), 99, &open)
            .expect("put");
        let again = place.load().expect("loads");
        let views = again.views();
        assert_eq!((views[0].url.as_str(), views[0].cursor), ("http://127.0.0.1:9/other", 7));
        // Replaced without a secret: it keeps the one it had (its receiver still verifies).
        let kept = again.put("crm", "http://127.0.0.1:9/other", vec!["level_reached".into()], None, 99, &open);
        assert_eq!(kept.expect("put"), "a-secret-of-16-chars");
        let fresh = again.put("new", "http://127.0.0.1:9/x", vec![], None, 99, &open).expect("put");
        assert!(fresh.starts_with("whsec_"), "a new one gets a fresh secret");
        assert_eq!(place.stored().map(|k| k.hooks.len()), Some(2));
        assert!(again.remove("new").expect("removes"));
        assert!(again.remove("crm").expect("removes"));
        assert!(!again.remove("crm").expect("removes"));
        assert!(place.load().expect("loads").views().is_empty());
        assert_eq!(place.stored(), Some(Kept::default()), "none kept: an empty set, not no record");
        assert!(!place.dir.join("orgs").exists(), "nothing in the data directory");
    }

    #[test]
    fn an_earlier_builds_webhooks_file_is_adopted_into_the_store_once() {
        let place = Place::new("adopt");
        let hook = |url: &str, cursor| Hook {
            url: url.into(),
            types: vec!["badge_earned".into()],
            secret: "a-secret-of-16-chars".into(),
            cursor,
            missed: 2,
        };
        let file = Kept { hooks: BTreeMap::from([("crm".to_string(), hook("http://127.0.0.1:9/crm", 41))]) };
        std::fs::create_dir_all(place.legacy().parent().expect("a folder")).expect("orgs/acme");
        std::fs::write(place.legacy(), serde_json::to_vec_pretty(&file).expect("json")).expect("the file");
        let hooks = place.load().expect("loads");
        let views = hooks.views();
        assert_eq!((views[0].name.as_str(), views[0].cursor, views[0].missed), ("crm", 41, 2));
        assert_eq!(place.stored(), Some(file.clone()), "in the store now");
        let aside = place.legacy().with_extension("json.adopted");
        assert!(!place.legacy().exists() && aside.exists(), "the file renamed, never read again");
        drop(hooks);

        // Removed later: a file beside the store's set (an old copy put back) is not adopted.
        let hooks = place.load().expect("loads");
        assert!(hooks.remove("crm").expect("removes"));
        std::fs::rename(&aside, place.legacy()).expect("put back");
        assert!(place.load().expect("loads").views().is_empty(), "the store's set wins");
        assert!(!place.legacy().exists(), "the stale file set aside");
        assert_eq!(place.stored(), Some(Kept::default()));

        // A file that cannot be read is not adopted: the organisation does not open on it.
        let place = Place::new("adopt-bad");
        std::fs::create_dir_all(place.legacy().parent().expect("a folder")).expect("orgs/acme");
        std::fs::write(place.legacy(), b"{not json").expect("the file");
        let refused = place.load().expect_err("unreadable");
        assert!(refused.contains("webhooks.json"), "{refused}");
        assert_eq!(place.stored(), None);
        assert!(place.legacy().exists(), "left for the operator");
    }

    #[test]
    fn delivery_writes_each_cursor_to_the_store_and_another_node_resumes_from_it() {
        use std::io::{Read, Write};
        let place = Place::new("deliver");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("an address");
        let (tx, bodies) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as much body as it announces.
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            let _ = tx.send(body.to_string());
                            break;
                        }
                    }
                }
            }
        });
        let effect = |n: i64| plaudit_sdk::Effect {
            moment: format!("m{n}"),
            stakeholder: "ann".into(),
            source: "rule".into(),
            kind: plaudit_sdk::EffectKind::PointsAwarded { currency: "xp".into(), amount: n, balance: n },
        };
        let hooks = Arc::new(place.load().expect("loads"));
        let open = Arc::new(Targets::new(vec!["127.0.0.1".into()]));
        hooks.put("crm", &format!("http://{addr}/hook"), vec![], None, 0, &open).expect("put");
        let feed = Arc::new(Feed::new(100));
        feed.push((1..=3).map(|n| (n as u64, effect(n))));
        let delivering = Delivering { slots: Arc::new(tokio::sync::Semaphore::new(1)), targets: open };
        let (close, closing) = watch::channel(false);
        // Its own thread drives the delivery while this one waits.
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        let task = runtime.spawn(deliver("acme".into(), Arc::clone(&hooks), feed, delivering, closing));
        let cursor = || place.stored().and_then(|k| k.hooks.get("crm").map(|h| h.cursor));
        let body = bodies.recv_timeout(Duration::from_secs(20)).expect("a delivery");
        assert!(body.contains("\"id\":3"), "{body}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while hooks.views()[0].cursor != 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Shown only once written: a listing never shows a cursor the store does not have.
        assert_eq!(cursor(), Some(3), "the cursor is in the store");
        let _ = close.send(true);
        runtime.block_on(task).expect("the delivery ends");
        // Another node (its own data directory, the same store) takes the organisation over.
        let other =
            Hooks::load(Arc::clone(&place.store), &place.org, &std::env::temp_dir().join("nowhere/webhooks.json"))
                .expect("loads");
        assert_eq!(other.views()[0].cursor, 3, "resumes after what was delivered");
    }

    #[test]
    fn internal_addresses_are_refused_unless_named_and_public_ones_pass() {
        let internal_ones = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "ff02::1",
        ];
        for ip in internal_ones {
            assert!(internal(ip.parse().expect(ip)), "{ip} is internal");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "100.128.0.1", "172.32.0.1"] {
            assert!(!internal(ip.parse().expect(ip)), "{ip} is public");
        }
        let none = Targets::default();
        assert!(none.check_literal("127.0.0.1").is_err());
        assert!(none.check_literal("[::1]").is_err());
        assert!(none.check_literal("example.com").is_ok(), "names are checked at each delivery");
        let named = Targets::new(vec!["LocalHost".into(), "127.0.0.1".into()]);
        assert!(named.check_literal("127.0.0.1").is_ok() && named.allows_host("localhost"));
    }

    #[test]
    fn a_delivery_to_a_name_that_resolves_internally_is_refused_at_the_connection() {
        let agent = agent(Arc::new(Targets::default()));
        // `localhost` resolves to loopback: refused by the resolver, before any connection.
        let err = agent.post("http://localhost:9/hook").send(&b"{}"[..]).expect_err("refused");
        assert!(err.to_string().contains("internal addresses only"), "{err}");
    }

    #[test]
    fn a_redirect_is_not_followed_it_fails_the_delivery() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("an address");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("a connection");
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let moved = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(moved.as_bytes()).expect("answers");
        });
        let agent = agent(Arc::new(Targets::new(vec!["127.0.0.1".into()])));
        let hook =
            Hook { url: format!("http://{addr}/hook"), types: vec![], secret: "s".repeat(16), cursor: 0, missed: 0 };
        let job = Job { name: "crm".into(), hook, through: 1, items: Vec::new(), missed: 0 };
        let err = post(&agent, "acme", &job).expect_err("not delivered");
        assert!(err.contains("302") && err.contains("redirects are not followed"), "{err}");
        server.join().expect("the receiver ends");
    }
}
