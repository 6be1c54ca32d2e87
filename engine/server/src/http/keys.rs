//! Scoped keys: besides an organisation's own key, which may do everything, keys it creates
//! and revokes, each allowed one scope — `ingest` (send moments and profiles), `read` (every
//! read), or `stakeholder` (one stakeholder's own profile and history, and the boards and
//! challenges everyone sees: a key a browser or an app may hold). `POST`, `GET` and `DELETE
//! /v1/orgs/{org}/keys[/{id}]`, with the organisation's own key.
//!
//! **Owns** the scopes, what each allows ([`Need`]), the keys' records (stored through
//! [`plaudit_store::Store::set_org_record`], only each key's SHA-256 kept) and their last use.
//! **Must not touch** the organisations' worlds: a key is checked before a request reaches one.
//!
//! A key is `sk_<id>_<secret>`: the id (public, in listings) finds the record, the secret's
//! hash is compared in constant time. A revoked key is refused from the next request on. The
//! last use of each key is kept in memory and written with the record when the server closes
//! (a crash loses the uses since the start).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{AppState, constant_time_eq, hex, key_hash, unhex32};
use plaudit_core::ids::OrgId;
use plaudit_store::{OrgTable, Store};

/// What a key may do, besides an organisation's own key (which may do everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send moments, profiles and retractions.
    Ingest,
    /// Every read: profiles, boards, challenges, the feed, insights, histories, the rule set.
    Read,
    /// One stakeholder's own profile and history, and the boards and challenges.
    Stakeholder,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Stakeholder => "stakeholder",
        }
    }
}

/// What a request needs of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Change what the organisation is: its rules, plugins, webhooks, keys (its own key only).
    Manage,
    /// Send moments and profiles.
    Ingest,
    /// Read anything.
    Read,
    /// Read what is about this stakeholder (their profile, their history).
    Stakeholder(&'a str),
    /// Read what every participant sees (boards, challenges).
    Public,
    /// Read the feed: every effect, or a `stakeholder` key's own ([`Grant::feed_of`]).
    Feed,
}

impl Need<'_> {
    fn describe(self) -> String {
        match self {
            Need::Manage => "the organisation's own key".to_string(),
            Need::Ingest => "a key with scope ingest".to_string(),
            Need::Read => "a key with scope read".to_string(),
            Need::Stakeholder(id) => format!("a key with scope read, or stakeholder {id:?}'s own"),
            Need::Public | Need::Feed => "a key with scope read or stakeholder".to_string(),
        }
    }
}

/// A scoped key as stored: never the key itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub name: String,
    pub scope: Scope,
    /// For scope `stakeholder`: whose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stakeholder: Option<String>,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// Unix seconds.
    pub created: i64,
    #[serde(default)]
    pub last_used: Option<i64>,
}

/// Deletes from the store the keys of `org` scoped to stakeholder `subject` (an erasure, by
/// the command line; the server also forgets them, [`Keys::remove_of`]); their ids.
pub fn revoke_stored(store: &dyn Store, org: &OrgId, subject: &str) -> Result<Vec<String>, plaudit_store::StoreError> {
    let mut revoked = Vec::new();
    for (id, bytes) in store.org_records(org, OrgTable::ScopedKeys)? {
        let theirs =
            serde_json::from_slice::<KeyRecord>(&bytes).is_ok_and(|r| r.stakeholder.as_deref() == Some(subject));
        if theirs {
            store.set_org_record(org, OrgTable::ScopedKeys, &id, None)?;
            revoked.push(id);
        }
    }
    Ok(revoked)
}

/// A scoped key in memory: its record, its hash, its last use.
#[derive(Debug)]
pub(crate) struct Entry {
    id: String,
    record: KeyRecord,
    hash: [u8; 32],
    /// Unix seconds; 0 for never.
    last_used: AtomicI64,
}

impl Entry {
    fn allows(&self, need: Need<'_>) -> bool {
        match (self.record.scope, need) {
            (_, Need::Manage) => false,
            (Scope::Ingest, Need::Ingest) => true,
            (Scope::Read, Need::Read | Need::Stakeholder(_) | Need::Public | Need::Feed) => true,
            (Scope::Stakeholder, Need::Public | Need::Feed) => true,
            (Scope::Stakeholder, Need::Stakeholder(id)) => self.record.stakeholder.as_deref() == Some(id),
            _ => false,
        }
    }
}

/// An organisation's scoped keys, by id.
#[derive(Debug, Default)]
pub struct Keys {
    by_id: RwLock<HashMap<String, Arc<Entry>>>,
}

/// What a key was found to be.
#[derive(Clone, Debug)]
pub(crate) enum Grant {
    /// The organisation's own key.
    Own,
    Scoped(Arc<Entry>),
}

impl Keys {
    /// The keys `store` holds for `org` (a record it cannot read is skipped, and said).
    pub fn load(store: &dyn Store, org: &OrgId) -> Result<Keys, plaudit_store::StoreError> {
        let mut by_id = HashMap::new();
        for (id, bytes) in store.org_records(org, OrgTable::ScopedKeys)? {
            match serde_json::from_slice::<KeyRecord>(&bytes) {
                Ok(record) => {
                    let Some(hash) = unhex32(&record.hash) else { continue };
                    let last_used = AtomicI64::new(record.last_used.unwrap_or(0));
                    by_id.insert(id.clone(), Arc::new(Entry { id, record, hash, last_used }));
                }
                Err(e) => {
                    tracing::warn!(org = %org, key = %id, error = %e, "a scoped key's record is unreadable: refused")
                }
            }
        }
        Ok(Keys { by_id: RwLock::new(by_id) })
    }

    /// The scoped key with id `id`, if there is one (a feed token names its key so).
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.by_id.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    /// The scoped key `given` (whose SHA-256 is `hash`) is, if it is one of these (compared in
    /// constant time).
    pub(crate) fn find(&self, given: &str, hash: &[u8; 32]) -> Option<Arc<Entry>> {
        let rest = given.strip_prefix("sk_")?;
        let (id, _) = rest.split_once('_')?;
        let entry = self.get(id)?;
        constant_time_eq(&entry.hash, hash).then_some(entry)
    }

    fn insert(&self, id: String, entry: Arc<Entry>) {
        self.by_id.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, entry);
    }

    fn remove(&self, id: &str) -> bool {
        self.by_id.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id).is_some()
    }

    /// Removes the keys scoped to stakeholder `subject` (an erasure); their ids.
    pub(crate) fn remove_of(&self, subject: &str) -> Vec<String> {
        let mut keys = self.by_id.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let theirs: Vec<String> = keys
            .iter()
            .filter(|(_, e)| e.record.stakeholder.as_deref() == Some(subject))
            .map(|(id, _)| id.clone())
            .collect();
        theirs.iter().for_each(|id| drop(keys.remove(id)));
        theirs
    }

    fn listing(&self) -> Vec<KeyView> {
        let keys = self.by_id.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<KeyView> = keys.iter().map(|(id, e)| KeyView::of(id, e)).collect();
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        out
    }

    /// Writes each key's last use to the store, for those used since loaded.
    pub fn save_uses(&self, store: &dyn Store, org: &OrgId) {
        let keys: Vec<(String, Arc<Entry>)> = self
            .by_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(i, e)| (i.clone(), Arc::clone(e)))
            .collect();
        for (id, e) in keys {
            let used = e.last_used.load(Ordering::Relaxed);
            if used == 0 || e.record.last_used == Some(used) {
                continue;
            }
            let record = KeyRecord { last_used: Some(used), ..e.record.clone() };
            let stored = serde_json::to_vec(&record).map_err(|e| e.to_string()).and_then(|bytes| {
                store.set_org_record(org, OrgTable::ScopedKeys, &id, Some(&bytes)).map_err(|e| e.to_string())
            });
            if let Err(error) = stored {
                tracing::warn!(org = %org, key = %id, error, "a key's last use was not saved");
            }
        }
    }
}

impl Grant {
    /// The scoped key's id (`None`: the organisation's own key).
    pub(crate) fn key_id(&self) -> Option<&str> {
        match self {
            Grant::Own => None,
            Grant::Scoped(e) => Some(&e.id),
        }
    }

    /// Whose effects this key reads in the feed: `None` for all of them (its own key, `read`),
    /// a stakeholder's for a `stakeholder` key.
    pub(crate) fn feed_of(&self) -> Option<&str> {
        match self {
            Grant::Scoped(e) if e.record.scope == Scope::Stakeholder => e.record.stakeholder.as_deref(),
            _ => None,
        }
    }

    /// Whether this key may do what `need` says; `403 forbidden` naming both if not.
    pub(crate) fn check(&self, need: Need<'_>) -> Result<(), ApiError> {
        match self {
            Grant::Own => Ok(()),
            Grant::Scoped(e) => {
                if !e.allows(need) {
                    let scope = match (&e.record.scope, &e.record.stakeholder) {
                        (Scope::Stakeholder, Some(who)) => format!("stakeholder {who:?}"),
                        (scope, _) => scope.as_str().to_string(),
                    };
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("this key's scope is {scope}: this needs {}", need.describe()),
                    ));
                }
                e.last_used.store(now(), Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// Whether `c` is white space as JSON Schema's patterns (ECMAScript's `\s`) read it.
fn blank(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stakeholder: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of its last accepted request; absent if never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
}

impl KeyView {
    fn of(id: &str, e: &Entry) -> KeyView {
        let used = e.last_used.load(Ordering::Relaxed);
        KeyView {
            id: id.to_string(),
            name: e.record.name.clone(),
            scope: e.record.scope,
            stakeholder: e.record.stakeholder.clone(),
            created: e.record.created,
            last_used: (used != 0).then_some(used),
        }
    }
}

/// The body of `POST .../keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scope: Scope,
    #[serde(default)]
    stakeholder: Option<String>,
}

/// The answer to `POST .../keys`: the key, shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

pub async fn post_key(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let (admitted, access) = state.authorise_manage(&org, &headers)?;
    drop(admitted);
    let new: NewKey = super::json_body(&body)?;
    // As the description says (`pattern: \S`, as JSON Schema reads it): 1 to 100 characters,
    // not all of them blank. Kept as given.
    let name = new.name;
    if !name.chars().any(|c| !blank(c)) || name.chars().count() > 100 {
        return Err(
            ApiError::bad_request("invalid_body", "a key's name is 1 to 100 characters, not all blank").field("name")
        );
    }
    match (new.scope, &new.stakeholder) {
        (Scope::Stakeholder, None) => {
            return Err(
                ApiError::bad_request("invalid_body", "scope stakeholder names whose key it is").field("stakeholder")
            );
        }
        (Scope::Stakeholder, Some(who)) if who.is_empty() || who.chars().count() > 256 => {
            return Err(
                ApiError::bad_request("invalid_body", "a stakeholder id is 1 to 256 characters").field("stakeholder")
            );
        }
        (Scope::Ingest | Scope::Read, Some(_)) => {
            return Err(ApiError::bad_request("invalid_body", "only scope stakeholder names a stakeholder")
                .field("stakeholder"));
        }
        _ => {}
    }
    let mut id = [0u8; 6];
    let mut secret = [0u8; 20];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| ApiError::internal(format!("no randomness for a key: {e}")))?;
    let id = hex(&id);
    let key = format!("sk_{id}_{}", hex(&secret));
    let hash = key_hash(&key);
    let record = KeyRecord {
        name,
        scope: new.scope,
        stakeholder: new.stakeholder,
        hash: hex(&hash),
        created: now(),
        last_used: None,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    state.set_org_record(&org, OrgTable::ScopedKeys, &id, Some(bytes)).await?;
    let entry = Arc::new(Entry { id: id.clone(), record, hash, last_used: AtomicI64::new(0) });
    let view = KeyView::of(&id, &entry);
    access.keys.insert(id, entry);
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view })))
}

#[derive(Debug, Serialize)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<KeyList>, ApiError> {
    let (_admitted, access) = state.authorise_manage(&org, &headers)?;
    Ok(Json(KeyList { keys: access.keys.listing() }))
}

pub async fn delete_key(
    State(state): State<Arc<AppState>>,
    UrlPath((org, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (admitted, access) = state.authorise_manage(&org, &headers)?;
    drop(admitted);
    // Refused from now on, before the store says so.
    if !access.keys.remove(&id) {
        return Err(ApiError::not_found(&format!("key {id:?}")));
    }
    state.set_org_record(&org, OrgTable::ScopedKeys, &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scope: Scope, stakeholder: Option<&str>) -> Entry {
        let record = KeyRecord {
            name: "k".into(),
            scope,
            stakeholder: stakeholder.map(Into::into),
            hash: String::new(),
            created: 0,
            last_used: None,
        };
        Entry { id: "k1".into(), record, hash: [0; 32], last_used: AtomicI64::new(0) }
    }

    #[test]
    fn each_scope_allows_what_it_says_and_nothing_manages_but_the_organisations_own_key() {
        let ingest = entry(Scope::Ingest, None);
        let read = entry(Scope::Read, None);
        let ann = entry(Scope::Stakeholder, Some("ann"));
        let cases = [
            (Need::Manage, [false, false, false]),
            (Need::Ingest, [true, false, false]),
            (Need::Read, [false, true, false]),
            (Need::Stakeholder("ann"), [false, true, true]),
            (Need::Stakeholder("bob"), [false, true, false]),
            (Need::Public, [false, true, true]),
            (Need::Feed, [false, true, true]),
        ];
        for (need, allowed) in cases {
            assert_eq!([ingest.allows(need), read.allows(need), ann.allows(need)], allowed, "{need:?}");
        }
    }

    #[test]
    fn a_stakeholder_key_reads_its_own_effects_and_other_keys_read_them_all() {
        assert_eq!(Grant::Scoped(Arc::new(entry(Scope::Stakeholder, Some("ann")))).feed_of(), Some("ann"));
        assert_eq!(Grant::Scoped(Arc::new(entry(Scope::Read, None))).feed_of(), None);
        assert_eq!(Grant::Own.feed_of(), None);
    }

    #[test]
    fn a_name_is_blank_only_as_json_schema_patterns_read_white_space() {
        let named = |n: &str| n.chars().any(|c| !blank(c));
        assert!(!named("") && !named("  \t") && !named("\u{3000}"));
        assert!(named("crm") && named(" crm "));
        assert!(named("\u{85}"), "NEL is not white space to ECMAScript's \\s, which the description's pattern uses");
    }

    #[test]
    fn a_hash_reads_back_from_its_hex() {
        let h = key_hash("sk_abc_def");
        assert_eq!(unhex32(&hex(&h)), Some(h));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&hex(&h[..31])), None);
    }
}
