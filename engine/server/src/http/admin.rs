//! `POST /v1/orgs`: creating an organisation, with the admin key.
//!
//! **Owns** the request body and the starter rule set a new organisation gets (its
//! `[organisation]` section and one currency, `points`), which the community manager then
//! replaces with `PUT /v1/orgs/{org}/rules`. **Must not touch** the store: creation is
//! [`AppState::create_org`]'s.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use plaudit_core::ruleset::Format;

/// The body of `POST /v1/orgs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// IANA time zone; UTC when omitted.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Seeds chance rewards; a random one when omitted.
    #[serde(default, deserialize_with = "super::whole_or_null")]
    pub seed: Option<u64>,
}

/// The answer: the key is shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
    pub key: String,
    /// The version of the starter rule set (1).
    pub rules_version: u64,
}

#[derive(Serialize)]
struct Starter<'a> {
    organisation: StarterOrg<'a>,
    currency: [StarterCurrency; 1],
}

#[derive(Serialize)]
struct StarterOrg<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    timezone: &'a str,
    seed: u64,
}

#[derive(Serialize)]
struct StarterCurrency {
    id: &'static str,
    name: &'static str,
}

/// The starter rule set of `new`, as TOML.
pub fn starter_rules(new: &NewOrg, seed: u64) -> Result<String, toml::ser::Error> {
    toml::to_string(&Starter {
        organisation: StarterOrg {
            id: &new.id,
            name: new.name.as_deref(),
            timezone: new.timezone.as_deref().unwrap_or("UTC"),
            seed,
        },
        currency: [StarterCurrency { id: "points", name: "Points" }],
    })
}

pub async fn post_orgs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    state.authorise_admin(&headers)?;
    let new: NewOrg = super::json_body(&body)?;
    let seed = match new.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness for a seed: {e}")))?;
            u64::from_le_bytes(bytes)
        }
    };
    let rules = starter_rules(&new, seed).map_err(|e| ApiError::internal(format!("starter rule set: {e}")))?;
    let id = new.id.clone();
    let creating = Arc::clone(&state);
    let key = tokio::task::spawn_blocking(move || creating.create_org(&id, &rules, Format::Toml))
        .await
        .map_err(|e| ApiError::internal(format!("organisation creation failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(Created { id: new.id, key, rules_version: 1 })))
}
