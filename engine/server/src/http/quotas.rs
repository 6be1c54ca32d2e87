//! Each organisation's limits (`GET` and `PUT /v1/orgs/{org}/limits`): the dates a moment may
//! have when it arrives, and its quotas: records a second, stakeholders held, bytes stored.
//!
//! **Owns** the limits document (kept as JSON in the store's settings under `limits`, read when
//! the server opens the organisation; the values the admin did not set are the configuration's
//! `[quotas]` and `[moments]`), the records-a-second bucket of each organisation, the storage
//! check, and the refusals counted per quota for `/metrics`. **Must not touch** worlds or the
//! log: the dates and the stakeholders quota are checked where records are resolved
//! (`plaudit_core::resolve::Admission`, handed to the organisation's worker), so that only
//! accepted records are logged and a replay, which admits everything, stays the same.
//!
//! | quota | refusal |
//! |---|---|
//! | `records_per_second`, `records_burst` | the request, `429 quota_exceeded` with `Retry-After`, field `records_per_second` |
//! | `stakeholders` | each record that would create one beyond, alone (`quota_exceeded`, field `stakeholder`, `counterpart` or `id`); every record of a request so refused: `403 quota_exceeded` |
//! | `stored_bytes` | writes (moments, profiles), `507 quota_exceeded`, field `stored_bytes`; reads go on |
//! | `moment_max_age_seconds`, `moment_max_ahead_seconds` | each moment dated outside, alone (`too_old`, `too_far_ahead`, field `at`); every record so refused: `422` |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{AppState, ServerConfig};
use plaudit_core::Admission;
use plaudit_core::ids::OrgId;
use plaudit_core::resolve::{QUOTA_EXCEEDED, RecordError, TOO_FAR_AHEAD, TOO_OLD};
use plaudit_store::{OrgTable, Store};

/// The name of the setting that keeps an organisation's limits.
const SETTING: &str = "limits";
/// The code of a refusal for a quota.
pub const CODE: &str = QUOTA_EXCEEDED;

/// The limits an organisation's admin set: each absent (or `null`) is the server's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSetting {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub moment_max_age_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub moment_max_ahead_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub stakeholders: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub records_per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub records_burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::whole_or_null")]
    pub stored_bytes: Option<u64>,
}

/// The limits in force for an organisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Values {
    pub moment_max_age_seconds: u64,
    pub moment_max_ahead_seconds: u64,
    pub stakeholders: u64,
    pub records_per_second: u64,
    pub records_burst: u64,
    pub stored_bytes: u64,
}

/// A hundred years, the furthest a moment's date may be allowed from the clock.
const CENTURY: u64 = 3_155_760_000;

impl Values {
    /// The configuration's defaults.
    pub fn defaults(config: &ServerConfig) -> Values {
        Values {
            moment_max_age_seconds: config.moments.max_age_seconds,
            moment_max_ahead_seconds: config.moments.max_ahead_seconds,
            stakeholders: config.quotas.stakeholders,
            records_per_second: config.quotas.records_per_second,
            records_burst: config.quotas.records_burst,
            stored_bytes: config.quotas.stored_bytes,
        }
    }

    /// These, with what `set` sets instead.
    pub fn over(self, set: &LimitsSetting) -> Values {
        Values {
            moment_max_age_seconds: set.moment_max_age_seconds.unwrap_or(self.moment_max_age_seconds),
            moment_max_ahead_seconds: set.moment_max_ahead_seconds.unwrap_or(self.moment_max_ahead_seconds),
            stakeholders: set.stakeholders.unwrap_or(self.stakeholders),
            records_per_second: set.records_per_second.unwrap_or(self.records_per_second),
            records_burst: set.records_burst.unwrap_or(self.records_burst),
            stored_bytes: set.stored_bytes.unwrap_or(self.stored_bytes),
        }
    }

    /// Each value within its range: the field and why not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("moment_max_age_seconds", self.moment_max_age_seconds, 60, CENTURY),
            ("moment_max_ahead_seconds", self.moment_max_ahead_seconds, 0, CENTURY),
            ("stakeholders", self.stakeholders, 1, u64::from(u32::MAX)),
            ("records_per_second", self.records_per_second, 1, 100_000_000),
            // A batch of the most records a request carries must be able to pass.
            ("records_burst", self.records_burst, super::MAX_BATCH as u64, 1_000_000_000),
            ("stored_bytes", self.stored_bytes, 1 << 20, 1 << 60),
        ];
        for (name, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return Err((name, format!("must be {least} to {most}, got {value}")));
            }
        }
        Ok(())
    }

    /// What the organisation's worker admits of live records.
    pub fn admission(&self) -> Admission {
        let seconds = |s: u64| Some(i64::try_from(s).unwrap_or(i64::MAX));
        Admission {
            max_age: seconds(self.moment_max_age_seconds),
            max_ahead: seconds(self.moment_max_ahead_seconds),
            stakeholders: Some(usize::try_from(self.stakeholders).unwrap_or(usize::MAX)),
        }
    }
}

/// The quotas, as `/metrics` and the refusal counts name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    RecordsPerSecond,
    Stakeholders,
    StoredBytes,
    /// A moment dated outside the window (`moment_max_age_seconds`, `moment_max_ahead_seconds`).
    MomentDates,
}

impl Quota {
    pub const ALL: [Quota; 4] = [Quota::RecordsPerSecond, Quota::Stakeholders, Quota::StoredBytes, Quota::MomentDates];

    pub fn name(self) -> &'static str {
        match self {
            Quota::RecordsPerSecond => "records_per_second",
            Quota::Stakeholders => "stakeholders",
            Quota::StoredBytes => "stored_bytes",
            Quota::MomentDates => "moment_dates",
        }
    }
}

/// One organisation's limits as served: what is set and in force, its records bucket, the
/// bytes its store holds (read back by its commit thread at most every 250 ms), and its refusals.
#[derive(Debug)]
pub struct OrgQuotas {
    set: RwLock<(LimitsSetting, Values)>,
    /// Records that may be taken now.
    bucket: super::bucket::Tokens,
    pub(crate) stored: Arc<AtomicU64>,
    /// Per [`Quota::ALL`]: requests (records a second, bytes) or records (stakeholders, dates) refused.
    refused: [AtomicU64; 4],
}

impl OrgQuotas {
    /// An organisation's limits: `defaults` with what it set.
    pub fn new(set: LimitsSetting, defaults: Values) -> OrgQuotas {
        let values = defaults.over(&set);
        OrgQuotas {
            bucket: super::bucket::Tokens::full(values.records_burst as f64),
            set: RwLock::new((set, values)),
            stored: Arc::default(),
            refused: Default::default(),
        }
    }

    /// The limits `org` set (none if it never set any) over `defaults`. One whose values no
    /// longer fit the ranges, or that cannot be read (a newer layout), is left aside: the
    /// defaults apply, and the log says so.
    pub fn load(store: &dyn Store, org: &OrgId, defaults: Values) -> Result<OrgQuotas, plaudit_store::StoreError> {
        let mut set = LimitsSetting::default();
        for (name, bytes) in store.org_records(org, OrgTable::Settings)? {
            if name != SETTING {
                continue;
            }
            match serde_json::from_slice::<LimitsSetting>(&bytes) {
                Ok(found) if defaults.over(&found).check().is_ok() => set = found,
                Ok(_) => tracing::warn!(org = %org, "limits out of range with this configuration: the defaults apply"),
                Err(e) => tracing::warn!(org = %org, error = %e, "unreadable limits: the defaults apply"),
            }
        }
        Ok(OrgQuotas::new(set, defaults))
    }

    /// The limits in force.
    pub fn values(&self) -> Values {
        self.set.read().unwrap_or_else(std::sync::PoisonError::into_inner).1
    }

    fn setting(&self) -> LimitsSetting {
        self.set.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone()
    }

    fn replace(&self, set: LimitsSetting, values: Values) {
        *self.set.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (set, values);
        self.bucket.cap(values.records_burst as f64);
    }

    /// Admits a write of `records` records at `now`: `507` if the store holds the organisation's
    /// quota of bytes or more, `429` with `Retry-After` if its bucket has not `records` records
    /// left (nothing is taken then).
    pub fn admit(&self, records: usize, now: Instant) -> Result<(), ApiError> {
        let values = self.values();
        let stored = self.stored.load(Ordering::Relaxed);
        if stored >= values.stored_bytes {
            self.refused(Quota::StoredBytes, 1);
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                CODE,
                format!(
                    "this organisation stores {stored} bytes, its quota is {}: writes are refused until the \
                     administrator raises it (`stored_bytes` in PUT /v1/orgs/{{org}}/limits); reads go on",
                    values.stored_bytes
                ),
            )
            .field(Quota::StoredBytes.name()));
        }
        let rate = values.records_per_second as f64;
        let Err(wait) = self.bucket.take(records as f64, rate, values.records_burst as f64, now) else {
            return Ok(());
        };
        self.refused(Quota::RecordsPerSecond, 1);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            CODE,
            format!(
                "{records} records over this organisation's quota of {} records a second (burst {}); \
                 try again in {wait} s",
                values.records_per_second, values.records_burst
            ),
        )
        .field(Quota::RecordsPerSecond.name());
        error.retry_after = Some(wait);
        Err(error)
    }

    /// Counts the records refused for a quota or for their dates among `rejected`.
    pub fn count(&self, rejected: &[RecordError]) {
        for e in rejected {
            match e.code {
                QUOTA_EXCEEDED => self.refused(Quota::Stakeholders, 1),
                TOO_OLD | TOO_FAR_AHEAD => self.refused(Quota::MomentDates, 1),
                _ => {}
            }
        }
    }

    fn refused(&self, quota: Quota, n: u64) {
        self.refused[quota as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Refusals per [`Quota::ALL`].
    pub fn refusals(&self) -> [u64; 4] {
        self.refused.each_ref().map(|n| n.load(Ordering::Relaxed))
    }

    /// The records the bucket holds now.
    fn available(&self, now: Instant) -> u64 {
        let values = self.values();
        self.bucket.available(values.records_per_second as f64, values.records_burst as f64, now) as u64
    }
}

/// The answer of `GET` and `PUT .../limits`: the limits in force, what the admin set of them,
/// and how much of each the organisation uses.
#[derive(Debug, Serialize)]
pub struct LimitsView {
    pub limits: Values,
    pub set: LimitsSetting,
    pub usage: Usage,
    /// Refusals since the server started, per quota.
    pub refused: Refusals,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub stakeholders: u64,
    pub stored_bytes: u64,
    /// Records the organisation may send at once now (its bucket).
    pub records_available: u64,
}

#[derive(Debug, Serialize)]
pub struct Refusals {
    /// Requests refused `429` for the records a second.
    pub records_per_second: u64,
    /// Records refused for creating a stakeholder beyond the quota.
    pub stakeholders: u64,
    /// Writes refused `507`.
    pub stored_bytes: u64,
    /// Moments refused for their date (`too_old`, `too_far_ahead`).
    pub moment_dates: u64,
}

/// The view of `org`'s limits.
async fn view(org: &super::Org) -> Result<LimitsView, ApiError> {
    let stakeholders = org.worker.run(|d| d.world().stakeholders()).await? as u64;
    let q = &org.quotas;
    let [records_per_second, stakeholders_refused, stored_bytes, moment_dates] = q.refusals();
    Ok(LimitsView {
        limits: q.values(),
        set: q.setting(),
        usage: Usage {
            stakeholders,
            stored_bytes: q.stored.load(Ordering::Relaxed),
            records_available: q.available(Instant::now()),
        },
        refused: Refusals { records_per_second, stakeholders: stakeholders_refused, stored_bytes, moment_dates },
    })
}

/// `GET /v1/orgs/{org}/limits`: its limits, with the organisation's own key or the admin's.
pub async fn get_limits(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<LimitsView>, ApiError> {
    if state.is_admin(&headers) {
        state.authorise_admin(&headers)?;
        let open = state.open_org(&org).ok_or_else(|| ApiError::not_found(&format!("open organisation {org:?}")))?;
        return Ok(Json(view(&open).await?));
    }
    let (admitted, _) = state.authorise_manage(&org, &headers)?;
    Ok(Json(view(&admitted).await?))
}

/// `PUT /v1/orgs/{org}/limits`, with the admin key: replaces what the organisation's limits set
/// (a value absent or `null`: the server's default), durably, in force from the next request.
pub async fn put_limits(
    State(state): State<Arc<AppState>>,
    UrlPath(org): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LimitsView>, ApiError> {
    state.authorise_admin(&headers)?;
    let open = state.open_org(&org).ok_or_else(|| ApiError::not_found(&format!("open organisation {org:?}")))?;
    let set: LimitsSetting = super::json_body(&body)?;
    let values = state.quota_defaults.over(&set);
    values
        .check()
        .map_err(|(field, why)| ApiError::bad_request("invalid_body", format!("{field}: {why}")).field(field))?;
    let bytes = serde_json::to_vec(&set).map_err(|e| ApiError::internal(e.to_string()))?;
    state.set_org_record(&org, OrgTable::Settings, SETTING, Some(bytes)).await?;
    open.quotas.replace(set, values);
    let admission = values.admission();
    open.worker.run(move |d| d.set_admission(admission)).await?;
    Ok(Json(view(&open).await?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn values() -> Values {
        Values::defaults(&ServerConfig::default())
    }

    #[test]
    fn the_defaults_are_in_range_and_each_setting_overrides_its_own() {
        let defaults = values();
        assert_eq!(defaults.check(), Ok(()));
        assert_eq!((defaults.moment_max_age_seconds, defaults.moment_max_ahead_seconds), (90 * 86_400, 300));
        let set = LimitsSetting { stakeholders: Some(5), ..LimitsSetting::default() };
        let over = defaults.over(&set);
        assert_eq!((over.stakeholders, over.records_per_second), (5, defaults.records_per_second));
        let admission = over.admission();
        assert_eq!((admission.stakeholders, admission.max_ahead), (Some(5), Some(300)));
    }

    #[test]
    fn values_out_of_range_are_refused_naming_the_field() {
        let bad = |set: LimitsSetting| values().over(&set).check().map_err(|(field, _)| field);
        assert_eq!(bad(LimitsSetting { records_burst: Some(999), ..LimitsSetting::default() }), Err("records_burst"));
        assert_eq!(bad(LimitsSetting { stakeholders: Some(0), ..LimitsSetting::default() }), Err("stakeholders"));
        assert_eq!(
            bad(LimitsSetting { moment_max_age_seconds: Some(59), ..LimitsSetting::default() }),
            Err("moment_max_age_seconds")
        );
        let json = br#"{"stakeholders": -1}"#;
        let refused = super::super::json_body::<LimitsSetting>(json).expect_err("negative");
        assert_eq!(refused.field.as_deref(), Some("stakeholders"));
        let refused = super::super::json_body::<LimitsSetting>(br#"{"stakeholder": 1}"#).expect_err("unknown");
        assert!(refused.message.contains("stakeholder"), "{}", refused.message);
    }

    #[test]
    fn a_batch_takes_a_token_per_record_and_waits_for_the_refill_saying_how_long() {
        let set =
            LimitsSetting { records_per_second: Some(1000), records_burst: Some(1500), ..LimitsSetting::default() };
        let quotas = OrgQuotas::new(set, values());
        let t0 = Instant::now() + Duration::from_millis(1);
        assert_eq!(quotas.admit(1000, t0), Ok(()));
        let refused = quotas.admit(1000, t0).expect_err("500 left");
        assert_eq!((refused.status, refused.code, refused.retry_after), (StatusCode::TOO_MANY_REQUESTS, CODE, Some(1)));
        assert_eq!(refused.field.as_deref(), Some("records_per_second"));
        assert_eq!(quotas.admit(500, t0), Ok(()), "a refusal takes nothing");
        assert_eq!(quotas.admit(1000, t0 + Duration::from_secs(1)), Ok(()), "refilled at 1000 a second");
        assert_eq!(quotas.refusals(), [1, 0, 0, 0]);
    }

    #[test]
    fn past_the_stored_bytes_writes_are_refused_with_507() {
        let set = LimitsSetting { stored_bytes: Some(1 << 20), ..LimitsSetting::default() };
        let quotas = OrgQuotas::new(set, values());
        quotas.stored.store((1 << 20) - 1, Ordering::Relaxed);
        assert_eq!(quotas.admit(1, Instant::now()), Ok(()));
        quotas.stored.store(1 << 20, Ordering::Relaxed);
        let refused = quotas.admit(1, Instant::now()).expect_err("at the quota");
        assert_eq!(
            (refused.status, refused.field.as_deref()),
            (StatusCode::INSUFFICIENT_STORAGE, Some("stored_bytes"))
        );
        assert_eq!(quotas.refusals(), [0, 0, 1, 0]);
    }
}
