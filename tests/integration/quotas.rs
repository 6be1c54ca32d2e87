//! Each organisation's limits (`/v1/orgs/{org}/limits`): the dates a moment may have when it
//! arrives, records a second, stakeholders and bytes stored; set by the admin, in force from
//! the next request, kept across restarts, and one organisation at its limits never slows or
//! refuses another.

use plaudit_server::http::ServerConfig;
use plaudit_tests::scratch_dir;
use serde_json::{Value, json};

use crate::app::App;

const ADMIN: &str = "quotas-admin-key-0123456789";

fn start(data: &std::path::Path) -> App {
    App::start_with(ServerConfig { data: data.to_path_buf(), admin_key: Some(ADMIN.into()), ..ServerConfig::default() })
}

/// Now, in Unix seconds.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

fn moment(id: &str, who: &str, with: Option<&str>, at: i64) -> Value {
    let mut m = json!({"id": id, "stakeholder": who, "kind": "meetup", "channel": "event", "at": plaudit_core::calendar::format_rfc3339(at)});
    if let Some(with) = with {
        m["counterpart"] = with.into();
    }
    m
}

fn set_limits(app: &App, org: &str, limits: Value) -> Value {
    let (status, body) = app.request("PUT", &format!("/v1/orgs/{org}/limits"), Some(ADMIN), &limits.to_string());
    assert_eq!(status, 200, "{body}");
    body
}

fn post(app: &App, org: &str, key: &str, records: &Value) -> (u16, String, Value) {
    let path = format!("/v1/orgs/{org}/moments?effects=false");
    app.send("POST", &path, Some(key), "application/json", records.to_string().as_bytes())
}

#[test]
fn moments_dated_outside_the_window_are_refused_naming_at_and_the_rest_of_the_batch_is_stored() {
    let data = scratch_dir("plaudit-quotas-window");
    let app = start(&data);
    let key = app.key("acme").to_string();
    set_limits(&app, "acme", json!({"moment_max_age_seconds": 86_400, "moment_max_ahead_seconds": 300}));
    let t = now();
    let batch = json!([
        moment("w-old", "ann", None, t - 86_400 - 3600),
        moment("w-near-oldest", "ann", None, t - 86_400 + 60),
        moment("w-now", "ann", None, t),
        moment("w-near-latest", "ann", None, t + 240),
        moment("w-ahead", "ann", None, t + 3600),
    ]);
    let (status, _, body) = post(&app, "acme", &key, &batch);
    assert_eq!((status, &body["accepted"]), (201, &json!(3)), "{body}");
    let refused: Vec<(u64, &str, &str)> = body["refused"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|r| {
            (r["index"].as_u64().unwrap_or(99), r["code"].as_str().unwrap_or(""), r["field"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(refused, vec![(0, "too_old", "[0].at"), (4, "too_far_ahead", "[4].at")], "{body}");
    assert!(body["refused"][0]["message"].as_str().is_some_and(|m| m.contains("86400 s old")), "{body}");

    // A batch refused whole keeps its 4xx, naming `at`.
    let (status, _, body) = post(&app, "acme", &key, &json!([moment("w-old-2", "ann", None, t - 90 * 86_400)]));
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (422, Some("too_old"), Some("[0].at"))
    );

    // A changed setting applies to the next request; the refused moment was never stored.
    set_limits(&app, "acme", json!({"moment_max_age_seconds": 365 * 86_400}));
    let (status, _, body) = post(&app, "acme", &key, &json!([moment("w-old-2", "ann", None, t - 90 * 86_400)]));
    assert_eq!((status, &body["accepted"]), (201, &json!(1)), "{body}");

    // The setting is kept across a restart, and the log holds only what was accepted.
    drop(app);
    let app = start(&data);
    let (status, limits) = app.request("GET", "/v1/orgs/acme/limits", Some(&key), "");
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["set"], json!({"moment_max_age_seconds": 365 * 86_400}), "{limits}");
    assert_eq!(limits["limits"]["moment_max_ahead_seconds"], json!(3_155_760_000u64), "the test server's default");
    let (_, body) = app.request("GET", "/v1/orgs/acme/stakeholders/ann/export", Some(&key), "");
    let ids: Vec<&str> =
        body["records"].as_array().map_or(vec![], |r| r.iter().filter_map(|r| r["record"]["id"].as_str()).collect());
    assert_eq!(ids, vec!["w-near-oldest", "w-now", "w-near-latest", "w-old-2"], "{body}");
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn limits_are_set_by_the_admin_read_by_the_organisation_and_checked_naming_the_field() {
    let data = scratch_dir("plaudit-quotas-admin");
    let app = start(&data);
    let key = app.key("acme").to_string();
    let (status, body) = app.request("PUT", "/v1/orgs/acme/limits", Some(&key), r#"{"stakeholders": 5}"#);
    assert_eq!(status, 401, "the organisation's own key does not set its limits: {body}");
    let (status, body) = app.request("GET", "/v1/orgs/acme/limits", Some(ADMIN), "");
    assert_eq!((status, &body["set"]), (200, &json!({})), "{body}");
    for (bad, field) in [
        (r#"{"records_burst": 10}"#, "records_burst"),
        (r#"{"stakeholders": 0}"#, "stakeholders"),
        (r#"{"stored_bytes": -1}"#, "stored_bytes"),
        (r#"{"stakeholder": 3}"#, "stakeholder"),
    ] {
        let (status, body) = app.request("PUT", "/v1/orgs/acme/limits", Some(ADMIN), bad);
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some(field)), "{bad}: {body}");
    }
    let (status, _) = app.request("PUT", "/v1/orgs/nobody/limits", Some(ADMIN), "{}");
    assert_eq!(status, 404);
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_record_creating_a_stakeholder_beyond_the_quota_is_refused_and_the_others_are_stored() {
    let data = scratch_dir("plaudit-quotas-stakeholders");
    let app = start(&data);
    let key = app.key("acme").to_string();
    set_limits(&app, "acme", json!({"stakeholders": 2}));
    let t = now();
    let (status, _, body) = post(&app, "acme", &key, &json!([moment("s1", "ann", Some("bob"), t)]));
    assert_eq!(status, 201, "{body}");
    let batch = json!([moment("s2", "ann", Some("bob"), t), moment("s3", "cat", None, t)]);
    let (status, _, body) = post(&app, "acme", &key, &batch);
    assert_eq!((status, &body["accepted"]), (201, &json!(1)), "{body}");
    assert_eq!(
        (&body["refused"][0]["code"], &body["refused"][0]["field"]),
        (&json!("quota_exceeded"), &json!("[1].stakeholder")),
        "{body}"
    );
    let (status, _, body) = post(&app, "acme", &key, &json!([moment("s4", "ann", Some("dan"), t)]));
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("quota_exceeded")), "{body}");
    assert_eq!(body["error"]["field"].as_str(), Some("[0].counterpart"), "{body}");
    let (status, body) = app.request("PUT", "/v1/orgs/acme/stakeholders/eve", Some(&key), r#"{"kind": "customer"}"#);
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("quota_exceeded")), "{body}");
    let (status, body) = app.request("PUT", "/v1/orgs/acme/stakeholders/ann", Some(&key), r#"{"kind": "customer"}"#);
    assert_eq!(status, 200, "a known stakeholder's profile still changes: {body}");
    let (_, limits) = app.request("GET", "/v1/orgs/acme/limits", Some(&key), "");
    assert_eq!(
        (&limits["usage"]["stakeholders"], &limits["refused"]["stakeholders"]),
        (&json!(2), &json!(3)),
        "{limits}"
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

/// One organisation at its limits (records a second, then bytes stored) while another keeps
/// its throughput: every request of the other succeeds meanwhile. No timing is asserted.
#[test]
fn one_organisation_at_its_limits_while_another_keeps_its_throughput() {
    let data = scratch_dir("plaudit-quotas-tenants");
    let app = start(&data);
    let (acme, riverside) = (app.key("acme").to_string(), app.key("riverside").to_string());
    set_limits(&app, "acme", json!({"records_per_second": 1, "records_burst": 1000}));
    let t = now();
    let batch = |org: &str, n: usize, from: usize| {
        Value::Array(
            (from..from + n).map(|i| moment(&format!("{org}-{i}"), &format!("s{}", i % 50), None, t)).collect(),
        )
    };
    let (status, _, body) = post(&app, "acme", &acme, &batch("acme", 1000, 0));
    assert_eq!(status, 201, "the burst: {body}");
    let (mut refused, mut other) = (0, 0);
    for round in 0..20 {
        let (status, head, body) = post(&app, "acme", &acme, &batch("acme", 100, 1000 + round * 100));
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{body}");
        assert_eq!(body["error"]["field"].as_str(), Some("records_per_second"));
        assert!(head.contains("retry-after: "), "{head}");
        refused += 1;
        let (status, _, body) = post(&app, "riverside", &riverside, &batch("riverside", 100, round * 100));
        assert_eq!((status, &body["accepted"]), (201, &json!(100)), "{body}");
        other += 100;
    }
    assert_eq!((refused, other), (20, 2000));

    // Past its bytes: writes refused 507, reads go on, and the other organisation writes on.
    set_limits(&app, "acme", json!({"stored_bytes": 1 << 20}));
    let mut stored = 0;
    let mut full = None;
    for round in 0..40 {
        let (status, _, body) = post(&app, "acme", &acme, &batch("acme-b", 1000, round * 1000));
        if status == 507 {
            full = Some(body);
            break;
        }
        assert_eq!(status, 201, "{body}");
        stored += 1;
    }
    let full = full.expect("a megabyte of records fills the quota");
    assert!(stored > 0);
    assert_eq!(
        (full["error"]["code"].as_str(), full["error"]["field"].as_str()),
        (Some("quota_exceeded"), Some("stored_bytes"))
    );
    let (status, _) = app.request("GET", "/v1/orgs/acme/stakeholders/s1", Some(&acme), "");
    assert_eq!(status, 200, "reads go on");
    let (status, _, body) = post(&app, "riverside", &riverside, &batch("riverside", 100, 5000));
    assert_eq!(status, 201, "{body}");

    let (_, limits) = app.request("GET", "/v1/orgs/acme/limits", Some(&acme), "");
    assert!(limits["usage"]["stored_bytes"].as_u64() >= Some(1 << 20), "{limits}");
    assert_eq!(limits["refused"]["records_per_second"], json!(20), "{limits}");
    let (_, _, metrics) = app.send("GET", "/metrics", None, "text/plain", b"");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "plaudit_quota_refused_total{org=\"acme\",quota=\"records_per_second\"} 20",
        "plaudit_quota_refused_total{org=\"acme\",quota=\"stored_bytes\"} 1",
        "plaudit_quota_refused_total{org=\"riverside\",quota=\"records_per_second\"} 0",
        "plaudit_quota_limit{org=\"acme\",quota=\"stored_bytes\"} 1048576",
        "plaudit_quota_used{org=\"acme\",quota=\"stakeholders\"} 50",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics");
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}
