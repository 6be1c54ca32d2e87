//! The HTTP API end to end: the server in process through its router where no socket is needed
//! (`App`), the real `plaudit serve` on a free loopback port where one is (restarts, SIGTERM,
//! streams: `Server`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;

use plaudit_tests::scratch_dir;
use serde_json::{Value, json};

use plaudit_server::http::ServerConfig;

use crate::app::App;
use crate::server::Server;

fn moment(id: &str, who: &str, with: &str) -> Value {
    json!({"id": id, "stakeholder": who, "counterpart": with, "kind": "meetup", "channel": "event", "at": "2026-03-02T10:00:00Z"})
}

#[test]
fn moments_in_effects_out_profiles_and_leaderboards_read_back_and_survive_a_restart() {
    let data = std::env::temp_dir().join(format!("plaudit-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let batch = json!([{"profile": {"id": "ann", "kind": "employee", "team": "sales"}}, moment("m1", "ann", "bob")]);
    let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string());
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["duplicates"].as_u64()), (Some(2), Some(0)));
    let effects = body["effects"].as_array().expect("effects for a small batch");
    assert!(effects.iter().any(|e| e["type"] == "points_awarded" && e["stakeholder"] == "ann"), "{body}");

    // The same moment again is a duplicate, and scores nothing.
    let (status, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("m1", "ann", "bob").to_string());
    assert_eq!((status, body["accepted"].as_u64(), body["duplicates"].as_u64()), (200, Some(0), Some(1)), "{body}");

    let (status, profile) = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "");
    assert_eq!(status, 200);
    let xp = profile["currencies"]["xp"].clone();
    assert!(xp.as_i64().is_some_and(|x| x > 0), "{profile}");
    let (status, page) = server.request("GET", "/v1/orgs/acme/leaderboards/xp?limit=5", Some(&key), "");
    assert_eq!((status, page["rows"][0]["stakeholder"].as_str()), (200, Some("ann")), "{page}");
    let (status, challenges) = server.request("GET", "/v1/orgs/acme/challenges", Some(&key), "");
    assert!(status == 200 && challenges.as_array().is_some_and(|c| !c.is_empty()), "{challenges}");

    let (status, metrics) = server.request("GET", "/metrics", None, "");
    let metrics = metrics.as_str().expect("text").to_string();
    assert_eq!(status, 200);
    for line in [
        "plaudit_http_requests_total{route=\"/v1/orgs/{org}/moments\",status=\"2xx\"} 2",
        "plaudit_records_accepted_total 2",
        "plaudit_records_duplicate_total 1",
        "plaudit_store_commit_seconds_count 1",
        "plaudit_http_request_seconds_count{route=\"/v1/orgs/{org}/leaderboards/{board}\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for step in ["resolve", "commit", "score", "render"] {
        let prefix = format!("plaudit_ingest_seconds_total{{step=\"{step}\"}} ");
        let seconds = metrics.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::parse::<f64>);
        assert!(matches!(seconds, Some(Ok(s)) if s > 0.0), "{step}: some time spent, in\n{metrics}");
    }

    // After a restart (SIGKILL: nothing flushed on the way out), the state is the same.
    drop(server);
    let server = Server::start(&data);
    assert!(server.keys.is_empty(), "keys are printed once, at creation");
    let (_, again) = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "");
    assert_eq!(again["currencies"]["xp"], xp);
    let (_, dup) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("m1", "ann", "bob").to_string());
    assert_eq!(dup["duplicates"].as_u64(), Some(1), "idempotent across a restart");

    // `effects=false`: the counts alone, and the effects in the feed all the same.
    let (status, body) = server.request(
        "POST",
        "/v1/orgs/acme/moments?effects=false",
        Some(&key),
        &moment("m2", "ann", "cy").to_string(),
    );
    assert_eq!((status, body["accepted"].as_u64()), (201, Some(1)), "{body}");
    assert!(body.get("effects").is_none(), "no effects asked for, none answered: {body}");
    let (status, feed) = server.request("GET", "/v1/orgs/acme/effects?limit=1000", Some(&key), "");
    let in_feed = feed["effects"].as_array().into_iter().flatten().filter(|e| e["moment"] == "m2").count();
    assert!(status == 200 && in_feed > 0, "m2's effects are in the feed: {feed}");
    let (_, body) = server.request(
        "POST",
        "/v1/orgs/acme/moments?effects=true",
        Some(&key),
        &moment("m3", "ann", "cy").to_string(),
    );
    assert!(body["effects"].as_array().is_some_and(|e| !e.is_empty()), "effects=true is the default: {body}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_profile_is_put_durably_created_then_updated_and_bad_ones_name_their_field() {
    let data = std::env::temp_dir().join(format!("plaudit-http-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let path = "/v1/orgs/acme/stakeholders/zoe";
    let (status, body) =
        server.request("PUT", path, Some(&key), r#"{"kind": "partner", "team": "partners", "name": "Zoe"}"#);
    assert_eq!(
        (status, body["kind"].as_str(), body["team"].as_str()),
        (201, Some("partner"), Some("partners")),
        "{body}"
    );
    let (status, body) = server.request("PUT", path, Some(&key), r#"{"kind": "employee", "team": "sales"}"#);
    assert_eq!((status, body["team"].as_str()), (200, Some("sales")), "updated: {body}");
    let (status, body) = server.request("PUT", path, Some(&key), r#"{"kind": "employee", "tem": "sales"}"#);
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("tem")), "{body}");
    let (status, body) = server.request("PUT", path, Some(&key), r#"{"kind": ""}"#);
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("kind")), "{body}");
    let (status, _) = server.request("PUT", path, Some("pk_wrong"), r#"{"kind": "employee"}"#);
    assert_eq!(status, 401);
    // Organisation: the profile is there after a restart.
    drop(server);
    let server = Server::start(&data);
    let (status, body) = server.request("GET", path, Some(&key), "");
    assert_eq!((status, body["team"].as_str()), (200, Some("sales")), "{body}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn bad_requests_get_a_clear_error_naming_the_field() {
    let data = std::env::temp_dir().join(format!("plaudit-http-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let post = |body: &str, key: Option<&str>| server.request("POST", "/v1/orgs/acme/moments", key, body);
    let error =
        |v: &Value| (v["error"]["code"].as_str().map(str::to_string), v["error"]["field"].as_str().map(str::to_string));

    for malformed in ["{not json", r#"[{"id":"x"},"#, r#"{"retract":"m1"} {"retract":"m2"}"#, "  "] {
        let (status, body) = post(malformed, Some(&key));
        assert_eq!((status, error(&body).0.as_deref()), (400, Some("malformed_json")), "{malformed}: {body}");
    }
    let (status, body) = post(r#" [{"retract":"nope"}, {"retract":"m1","colour":1}]"#, Some(&key));
    assert_eq!((status, error(&body)), (400, (Some("invalid_record".into()), Some("[1].colour".into()))), "{body}");
    let long_team = format!("/v1/orgs/acme/leaderboards/xp?team={}", "t".repeat(65));
    let (status, body) = server.request("GET", &long_team, Some(&key), "");
    assert_eq!((status, error(&body).1.as_deref()), (400, Some("team")), "{body}");
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/xp?around=a%01b", Some(&key), "");
    assert_eq!((status, error(&body).1.as_deref()), (400, Some("around")), "{body}");
    let (status, body) = post(
        r#"{"id":"x","stakeholder":"ann","kind":"meetup","chanel":"event","at":"2026-03-02T10:00:00Z"}"#,
        Some(&key),
    );
    assert_eq!((status, error(&body)), (400, (Some("invalid_record".into()), Some("chanel".into()))), "{body}");
    let (status, body) =
        post(r#"[{"id":"x","stakeholder":"ann","kind":"meetup","channel":"event","at":"yesterday"}]"#, Some(&key));
    assert_eq!((status, error(&body)), (422, (Some("invalid_record".into()), Some("[0].at".into()))), "{body}");
    let (status, body) = post(
        r#"{"id":"","stakeholder":"ann","kind":"meetup","channel":"event","at":"2026-03-02T10:00:00Z"}"#,
        Some(&key),
    );
    assert_eq!((status, error(&body).1.as_deref()), (422, Some("[0].id")), "{body}");
    let huge: Vec<Value> = (0..1001).map(|i| moment(&format!("h{i}"), "ann", "bob")).collect();
    let (status, body) = post(&Value::Array(huge).to_string(), Some(&key));
    assert_eq!((status, error(&body).0.as_deref()), (413, Some("batch_too_large")), "{body}");
    // (A body over the 4 MB limit: `http::tests`, in process, where no connection reset can
    // race the 413.)

    let (status, body) = post(&moment("k1", "ann", "bob").to_string(), None);
    assert_eq!((status, error(&body).0.as_deref()), (401, Some("unauthorized")), "{body}");
    let (status, _) = post(&moment("k1", "ann", "bob").to_string(), Some("pk_wrong"));
    assert_eq!(status, 401);
    let other = server.key("riverside").to_string();
    let (status, _) = post(&moment("k1", "ann", "bob").to_string(), Some(&other));
    assert_eq!(status, 401, "another organisation's key reaches nothing here");
    // An unknown organisation looks exactly like a wrong key: names cannot be enumerated.
    let (status, unknown) = server.request("GET", "/v1/orgs/nobody/challenges", Some(&key), "");
    let (_, wrong) = server.request("GET", "/v1/orgs/acme/challenges", Some("pk_wrong"), "");
    assert_eq!((status, &unknown), (401, &wrong));
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/nope", Some(&key), "");
    assert_eq!((status, error(&body).0.as_deref()), (404, Some("not_found")), "{body}");
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/xp?limit=0", Some(&key), "");
    assert_eq!((status, error(&body).1.as_deref()), (400, Some("limit")), "{body}");
    // A query refused by its type or its name names the parameter.
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/xp?limit=ten", Some(&key), "");
    assert_eq!((status, error(&body)), (400, (Some("invalid_query".into()), Some("limit".into()))), "{body}");
    for (query, field) in [("effects=maybe", "effects"), ("effect=false", "effect")] {
        let path = format!("/v1/orgs/acme/moments?{query}");
        let (status, body) = server.request("POST", &path, Some(&key), &moment("q1", "ann", "bob").to_string());
        assert_eq!(
            (status, error(&body)),
            (400, (Some("invalid_query".into()), Some(field.into()))),
            "{query}: {body}"
        );
    }
    let (status, body) = server.request("GET", "/v1/orgs/acme/stakeholders/nobody", Some(&key), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.request("GET", "/healthz", None, "");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
    assert!(body.get("detail").is_none(), "names are for the admin only: {body}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn concurrent_requests_share_commits_but_each_gets_its_own_answer() {
    let data = std::env::temp_dir().join(format!("plaudit-http-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (server, key) = (&server, &key);
                s.spawn(move || {
                    let id = format!("c{i}");
                    let body = moment(&id, &format!("p{i}"), "hub").to_string();
                    let (status, answer) = server.request("POST", "/v1/orgs/acme/moments", Some(key), &body);
                    assert_eq!((status, answer["accepted"].as_u64()), (201, Some(1)), "{answer}");
                    let effects = answer["effects"].as_array().expect("effects");
                    assert!(!effects.is_empty(), "{answer}");
                    assert!(
                        effects.iter().all(|e| e["moment"] == id.as_str()),
                        "only this request's effects: {answer}"
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a client thread");
        }
    });
    let (_, hub) = server.request("GET", "/v1/orgs/acme/stakeholders/hub", Some(&key), "");
    assert!(hub["currencies"]["karma"].as_i64().is_some_and(|k| k > 0), "{hub}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Every operation the description lists is served (not axum's bare fallback), and every route
/// the server answers is described: a request to an undescribed path gets the bare fallback.
#[test]
fn the_served_openapi_description_matches_the_routes() {
    let data = std::env::temp_dir().join(format!("plaudit-http-openapi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let (status, spec) = server.request("GET", "/openapi.json", None, "");
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    let described: Vec<&str> = paths.keys().map(String::as_str).collect();
    let mut routes = vec![
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/orgs",
        "/v1/cluster",
        "/v1/orgs/{org}/rules",
        "/v1/orgs/{org}/rules/simulate",
        "/v1/orgs/{org}/rules/apply",
        "/v1/orgs/{org}/rules/versions",
        "/v1/orgs/{org}/rules/versions/{version}",
        "/v1/orgs/{org}/plugins",
        "/v1/orgs/{org}/plugins/{name}",
        "/v1/orgs/{org}/moments",
        "/v1/orgs/{org}/effects",
        "/v1/orgs/{org}/effects/tokens",
        "/v1/orgs/{org}/cors",
        "/v1/orgs/{org}/limits",
        "/v1/orgs/{org}/webhooks",
        "/v1/orgs/{org}/webhooks/{name}",
        "/v1/orgs/{org}/keys",
        "/v1/orgs/{org}/keys/{id}",
        "/v1/orgs/{org}/stakeholders",
        "/v1/orgs/{org}/stakeholders/{id}",
        "/v1/orgs/{org}/stakeholders/{id}/effects",
        "/v1/orgs/{org}/stakeholders/{id}/export",
        "/v1/orgs/{org}/leaderboards/{board}",
        "/v1/orgs/{org}/challenges",
        "/v1/orgs/{org}/insights/activity",
        "/v1/orgs/{org}/insights/bridges",
        "/v1/orgs/{org}/insights/champions",
        "/v1/orgs/{org}/insights/quiet",
        "/v1/orgs/{org}/insights/challenges/{id}",
        "/v1/orgs/{org}/insights/goals",
    ];
    let mut sorted = described.clone();
    sorted.sort_unstable();
    routes.sort_unstable();
    assert_eq!(sorted, routes, "every route served is described, and only those");
    let bare_fallback = |status: u16, body: &Value| {
        (status, body["error"]["code"].as_str()) == (404, Some("no_route"))
            || (status, body["error"]["code"].as_str()) == (405, Some("method_not_allowed"))
    };
    for (path, operations) in paths {
        let concrete = path
            .replace("{org}", "acme")
            .replace("{id}", "ann")
            .replace("{board}", "xp")
            .replace("{name}", "bridge")
            .replace("{version}", "1");
        for (method, operation) in operations.as_object().expect("operations") {
            let body = if method == "post" || method == "put" {
                moment("openapi-1", "ann", "bob").to_string()
            } else {
                String::new()
            };
            let (status, answer) = server.request(&method.to_uppercase(), &concrete, Some(&key), &body);
            assert!(!bare_fallback(status, &answer), "{method} {path}: {status}");
            let described = operation["responses"].as_object().expect("responses");
            assert!(described.contains_key(&status.to_string()), "{method} {path} answered {status}, not described");
        }
    }
    let (status, answer) = server.request("GET", "/v1/orgs/acme/nowhere", Some(&key), "");
    assert!(bare_fallback(status, &answer), "undescribed paths are not served: {status} {answer}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn unknown_routes_and_methods_answer_the_json_error_body_with_allow() {
    let data = scratch_dir("plaudit-http-fallbacks");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    for (method, path) in [("GET", "/nowhere"), ("POST", "/v1/orgs/acme/nowhere"), ("GET", "/v1/orgs/acme/moments/x")] {
        let (status, head, body) = server.send(method, path, Some(&key), "application/json", b"");
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("no_route")), "{method} {path}: {body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(path)), "{body}");
    }
    for (method, path, allow) in [
        ("DELETE", "/v1/orgs/acme/stakeholders/ann/effects", "get"),
        ("GET", "/v1/orgs/acme/moments", "post"),
        ("PATCH", "/v1/orgs/acme/rules", "get"),
    ] {
        let (status, head, body) = server.send(method, path, Some(&key), "application/json", b"");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}: {body}"
        );
        assert!(head.lines().any(|l| l.starts_with("allow:") && l.contains(allow)), "{method} {path}: {head}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

const ADMIN: &str = "admin-secret-for-tests";

/// A rule set for organisation `org`: answers earn `amount` points.
fn answers_earn(org: &str, amount: i64) -> String {
    format!(
        "[organisation]\nid = \"{org}\"\ntimezone = \"Europe/Paris\"\n\n[[currency]]\nid = \"points\"\n\n\
         [[rule]]\nid = \"answer\"\nmatch = {{ kind = [\"answer\"] }}\n\
         award = [{{ to = \"actor\", currency = \"points\", amount = {amount} }}]\n"
    )
}

fn answer(id: &str, who: &str) -> String {
    json!({"id": id, "stakeholder": who, "kind": "answer", "channel": "forum", "at": "2026-03-02T10:00:00Z"})
        .to_string()
}

#[test]
fn the_admin_creates_an_organisation_whose_key_reaches_only_it() {
    let data = std::env::temp_dir().join(format!("plaudit-http-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start_with(&data, Some(ADMIN));
    let acme = server.key("acme").to_string();
    let body = json!({"id": "globex", "name": "Globex", "timezone": "Europe/Paris"}).to_string();
    assert_eq!(server.request("POST", "/v1/orgs", None, &body).0, 401);
    assert_eq!(server.request("POST", "/v1/orgs", Some(&acme), &body).0, 401, "an organisation key is no admin key");
    let (status, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &body);
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["id"].as_str(), created["rules_version"].as_u64()), (Some("globex"), Some(1)));
    let key = created["key"].as_str().expect("a key, shown once").to_string();

    let (status, again) = server.request("POST", "/v1/orgs", Some(ADMIN), &body);
    assert_eq!(
        (status, again["error"]["code"].as_str(), again["error"]["field"].as_str()),
        (409, Some("exists"), Some("id"))
    );
    let bad_zone = json!({"id": "initech", "timezone": "Mars/Olympus"}).to_string();
    let (status, err) = server.request("POST", "/v1/orgs", Some(ADMIN), &bad_zone);
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("timezone")), "{err}");
    let unknown = json!({"id": "initech", "colour": "red"}).to_string();
    let (status, err) = server.request("POST", "/v1/orgs", Some(ADMIN), &unknown);
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("colour")), "{err}");
    let bad_id = json!({"id": "../etc"}).to_string();
    let (status, err) = server.request("POST", "/v1/orgs", Some(ADMIN), &bad_id);
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("id")), "{err}");

    // The new key reaches its organisation, and only it.
    let (status, head, rules) = server.send("GET", "/v1/orgs/globex/rules", Some(&key), "application/json", b"");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/toml") && head.contains("plaudit-rules-version: 1"), "{head}");
    assert!(rules.as_str().is_some_and(|t| t.contains("id = \"globex\"") && t.contains("Europe/Paris")), "{rules}");
    assert_eq!(server.request("GET", "/v1/orgs/acme/challenges", Some(&key), "").0, 401);
    assert_eq!(server.request("GET", "/v1/orgs/globex/challenges", Some(&acme), "").0, 401);
    drop(server);

    // Without an admin key, creation is refused as such; the created organisation is served.
    let server = Server::start_with(&data, None);
    let (status, err) = server.request("POST", "/v1/orgs", Some(ADMIN), &body);
    assert_eq!((status, err["error"]["code"].as_str()), (403, Some("admin_disabled")));
    assert_eq!(server.request("GET", "/v1/orgs/globex/challenges", Some(&key), "").0, 200);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_published_rule_set_scores_the_next_moments_is_versioned_and_survives_a_restart() {
    let data = std::env::temp_dir().join(format!("plaudit-http-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start_with(&data, Some(ADMIN));
    let (_, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &json!({"id": "globex"}).to_string());
    let key = created["key"].as_str().expect("key").to_string();
    let put = |server: &Server, media: &str, text: &str| {
        server.send("PUT", "/v1/orgs/globex/rules", Some(&key), media, text.as_bytes())
    };

    // The starter rule set is in UTC; a rule set in another zone is refused, naming the field.
    let (status, _, err) = put(&server, "application/toml", &answers_earn("globex", 10));
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("organisation.timezone")), "{err}");
    let utc = |amount| answers_earn("globex", amount).replace("Europe/Paris", "UTC");
    let (status, _, published) = put(&server, "application/toml", &utc(10));
    assert_eq!((status, published["version"].as_u64(), published["after"].as_u64()), (200, Some(2), Some(0)));
    let (status, body) = server.request("POST", "/v1/orgs/globex/moments", Some(&key), &answer("a1", "ann"));
    assert_eq!((status, body["effects"][0]["amount"].as_i64()), (201, Some(10)), "{body}");

    // Errors name the field path; a wrong media type is a 415; nothing is published.
    let (status, _, err) = put(
        &server,
        "application/toml",
        &utc(10).replace("currency = \"points\", amount", "currency = \"gold\", amount"),
    );
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_rules")), "{err}");
    assert!(err["error"]["field"].as_str().is_some_and(|f| f.starts_with("rule[0].award")), "{err}");
    let (status, _, err) = put(&server, "application/toml", "[organisation\nid=");
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_rules")), "{err}");
    assert_eq!(put(&server, "text/plain", &utc(10)).0, 415);

    // The JSON form publishes too; the next moment scores under it, the earlier keeps its points.
    let doc: toml::Value = toml::from_str(&utc(25)).expect("toml");
    let (status, _, published) = put(&server, "application/json", &serde_json::to_string(&doc).expect("json"));
    assert_eq!(
        (status, published["version"].as_u64(), published["after"].as_u64()),
        (200, Some(3), Some(1)),
        "{published}"
    );
    let (_, body) = server.request("POST", "/v1/orgs/globex/moments", Some(&key), &answer("a2", "ann"));
    assert_eq!(body["effects"][0]["amount"].as_i64(), Some(25), "{body}");

    // What-if: 40 a moment from the start, against the versions lived through (10 then 25).
    let (status, _, diff) = server.send(
        "POST",
        "/v1/orgs/globex/rules/simulate?limit=5",
        Some(&key),
        "application/toml",
        utc(40).as_bytes(),
    );
    assert_eq!(status, 200, "{diff}");
    assert_eq!((diff["records"].as_u64(), diff["totals"]["points"].clone()), (Some(2), json!([35, 80])), "{diff}");
    assert_eq!(diff["details"][0]["id"], "ann");

    drop(server);
    let server = Server::start_with(&data, None);
    let (_, head, rules) = server.send("GET", "/v1/orgs/globex/rules", Some(&key), "application/json", b"");
    assert!(head.contains("plaudit-rules-version: 3") && head.contains("application/json"), "{head}");
    assert!(rules["rule"][0]["award"][0]["amount"] == 25, "{rules}");
    let (_, profile) = server.request("GET", "/v1/orgs/globex/stakeholders/ann", Some(&key), "");
    assert_eq!(profile["currencies"]["points"], 35, "the replay lived through the same versions: {profile}");
    let (_, body) = server.request("POST", "/v1/orgs/globex/moments", Some(&key), &answer("a3", "ann"));
    assert_eq!(body["effects"][0]["amount"].as_i64(), Some(25), "{body}");

    // Applying version 3 to history: previewed, then done; a stale version or a bad mode is
    // refused naming the field. 10 + 25 + 25 lived; 25 each from the start.
    let apply = |body: &str| server.request("POST", "/v1/orgs/globex/rules/apply", Some(&key), body);
    let (status, err) = apply(r#"{"mode":"rebase","version":2}"#);
    assert_eq!(
        (status, err["error"]["code"].as_str(), err["error"]["field"].as_str()),
        (409, Some("version_mismatch"), Some("version")),
        "{err}"
    );
    let (status, err) = apply(r#"{"mode":"sideways","version":3}"#);
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("mode")), "{err}");
    let (status, diff) = apply(r#"{"mode":"additive","version":3,"preview":true,"limit":5.0}"#);
    assert_eq!((status, diff["totals"]["points"].clone()), (200, json!([60, 75])), "{diff}");
    let (status, applied) = apply(r#"{"mode":"additive","version":3.0}"#);
    assert_eq!(
        (status, applied["mode"].as_str(), applied["after"].as_u64(), applied["effects"].as_u64()),
        (200, Some("additive"), Some(3), Some(1)),
        "{applied}"
    );
    let (_, profile) = server.request("GET", "/v1/orgs/globex/stakeholders/ann", Some(&key), "");
    assert_eq!(profile["currencies"]["points"], 75, "{profile}");
    let (_, feed) = server.request("GET", "/v1/orgs/globex/effects?limit=100", Some(&key), "");
    let grant = feed["effects"].as_array().and_then(|i| i.last()).expect("a grant");
    assert_eq!(
        (grant["moment"].as_str(), grant["source"].as_str()),
        (Some("a1"), Some("history:v3:additive")),
        "{feed}"
    );
    drop(server);
    let server = Server::start_with(&data, None);
    let (_, profile) = server.request("GET", "/v1/orgs/globex/stakeholders/ann", Some(&key), "");
    assert_eq!(profile["currencies"]["points"], 75, "the application is replayed: {profile}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_demo_installs_the_example_plugins_in_acme() {
    let data = std::env::temp_dir().join(format!("plaudit-http-demo-plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start_args(&data, None, &[]);
    let key = server.key("acme").to_string();
    let (status, list) = server.request("GET", "/v1/orgs/acme/plugins", Some(&key), "");
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list.as_array().expect("a list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["bridge-builder", "burst-guard", "story-echo"], "every example but the template: {list}");
    let other = server.key("riverside").to_string();
    let (_, list) = server.request("GET", "/v1/orgs/riverside/plugins", Some(&other), "");
    assert_eq!(list, json!([]), "only acme gets them");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn plugins_upload_hot_report_their_status_survive_a_restart_and_are_removed() {
    let data = std::env::temp_dir().join(format!("plaudit-http-plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let wasm = plaudit_tests::example_plugin("bridge_builder");
    let path = "/v1/orgs/acme/plugins/bridge";
    assert_eq!(server.send("PUT", path, Some(&key), "text/plain", &wasm).0, 415);
    for media in ["application/wasm", "application/octet-stream"] {
        let (status, _, err) = server.send("PUT", path, Some(&key), media, b"\0asm garbage");
        assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_plugin")), "{media}: {err}");
    }
    let (status, _, view) =
        server.send("PUT", "/v1/orgs/acme/plugins/Bad%20Name", Some(&key), "application/wasm", &wasm);
    assert_eq!(status, 422, "{view}");
    assert_eq!(server.request("GET", path, Some(&key), "").0, 404, "nothing was installed");

    let (status, _, view) = server.send("PUT", path, Some(&key), "application/wasm", &wasm);
    assert_eq!((status, view["state"].as_str(), view["installs"].as_u64()), (201, Some("active"), Some(1)), "{view}");
    assert_eq!(view["module"].as_str().map(str::len), Some(64), "{view}");
    assert!(view["limits"]["fuel"].as_u64().is_some_and(|f| f > 0), "{view}");
    let batch = json!([
        {"profile": {"id": "ann", "kind": "employee", "team": "sales"}},
        {"profile": {"id": "bob", "kind": "employee", "team": "finance"}},
        moment("p1", "ann", "bob"),
    ]);
    let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string());
    assert_eq!(status, 201, "{body}");
    let from_plugin =
        |body: &Value| body["effects"].as_array().map_or(0, |e| e.iter().filter(|e| e["source"] == "bridge").count());
    assert!(from_plugin(&body) > 0, "the plugin scored the next moment: {body}");
    let (_, listed) = server.request("GET", "/v1/orgs/acme/plugins", Some(&key), "");
    assert_eq!(listed[0]["name"], "bridge", "{listed}");
    drop(server);

    let server = Server::start(&data);
    let (status, view) = server.request("GET", path, Some(&key), "");
    assert_eq!((status, view["state"].as_str()), (200, Some("active")), "installed from the log: {view}");
    assert_eq!(server.request("DELETE", path, Some(&key), "").0, 204);
    assert_eq!(server.request("DELETE", path, Some(&key), "").0, 404);
    let (_, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("p2", "ann", "carl").to_string());
    assert_eq!(from_plugin(&body), 0, "{body}");
    drop(server);
    let server = Server::start(&data);
    assert_eq!(server.request("GET", path, Some(&key), "").0, 404, "the removal is in the log");
    let _ = std::fs::remove_dir_all(&data);
}

/// Reads Server-Sent Events from `stream` until `wanted` effect events came (or the stream
/// ends); returns each event's id and data.
fn read_events(stream: &mut BufReader<TcpStream>, wanted: usize) -> Vec<(u64, Value)> {
    let mut events = Vec::new();
    let (mut id, mut data, mut kind) = (None, String::new(), String::new());
    let mut line = String::new();
    while events.len() < wanted {
        line.clear();
        if stream.read_line(&mut line).expect("reads") == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            data.push_str(v);
        } else if let Some(v) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
            kind = v.trim().to_string();
        } else if l.is_empty() && !data.is_empty() {
            if kind == "effect" {
                events.push((id.expect("an effect event has an id"), serde_json::from_str(&data).expect("json data")));
            }
            (id, data, kind) = (None, String::new(), String::new());
        }
    }
    events
}

#[test]
fn the_effects_feed_pages_by_cursor_streams_live_and_carries_on_across_a_restart() {
    let data = std::env::temp_dir().join(format!("plaudit-http-feed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let (_, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("f1", "ann", "bob").to_string());
    let first = body["effects"].as_array().expect("effects").len() as u64;
    assert!(first > 0, "{body}");

    let (status, page) = server.request("GET", "/v1/orgs/acme/effects?after=0&limit=2", Some(&key), "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["effects"][0]["id"], 1);
    assert_eq!(page["effects"][0]["moment"], "f1");
    assert_eq!((page["next"].as_u64(), page["latest"].as_u64()), (Some(2.min(first)), Some(first)), "{page}");
    let (_, all) = server.request("GET", "/v1/orgs/acme/effects", Some(&key), "");
    assert_eq!(all["effects"].as_array().map(Vec::len), Some(first as usize));
    let numbered: Vec<Value> = body["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let mut x = x.clone();
            x["id"] = json!(i + 1);
            x["seq"] = all["effects"][i]["seq"].clone();
            x
        })
        .collect();
    assert_eq!(all["effects"], Value::Array(numbered), "the feed holds what the answer said, numbered");
    let (status, err) = server.request("GET", "/v1/orgs/acme/effects?limit=0", Some(&key), "");
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("limit")));

    // A follower gets what comes next, live.
    let mut follower = TcpStream::connect(&server.addr).expect("connects");
    write!(
        follower,
        "GET /v1/orgs/acme/effects HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("sends");
    let mut follower = BufReader::new(follower);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        follower.read_line(&mut line).expect("head");
        head.push_str(&line);
    }
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    let (_, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("f2", "ann", "carl").to_string());
    let second = body["effects"].as_array().expect("effects").len();
    let events = read_events(&mut follower, second);
    assert_eq!(events.len(), second);
    assert_eq!(events[0].0, first + 1, "numbered after the first moment's effects");
    assert!(events.iter().all(|(_, e)| e["moment"] == "f2"), "{events:?}");
    drop(server);

    // After a restart the numbers carry on, and the replay refilled the feed.
    let server = Server::start(&data);
    let (_, again) = server.request("GET", "/v1/orgs/acme/effects?after=0&limit=1000", Some(&key), "");
    assert_eq!(again["latest"].as_u64(), Some(first + second as u64), "{again}");
    assert_eq!(again["effects"][0]["moment"], "f1");
    let (_, body) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("f3", "bob", "carl").to_string());
    let (_, after) =
        server.request("GET", &format!("/v1/orgs/acme/effects?after={}", first + second as u64), Some(&key), "");
    assert_eq!(after["effects"].as_array().map(Vec::len), body["effects"].as_array().map(Vec::len), "{after}");
    assert!(after["effects"].as_array().is_some_and(|e| e.iter().all(|x| x["moment"] == "f3")), "{after}");

    // A browser's EventSource reconnects to its first URL (`?after=0`) with the last id it saw:
    // the header wins, so the stream resumes after it rather than from the start.
    let seen = first + second as u64;
    let mut browser = TcpStream::connect(&server.addr).expect("connects");
    write!(
        browser,
        "GET /v1/orgs/acme/effects?after=0 HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\nLast-Event-ID: {seen}\r\n\r\n"
    )
    .expect("sends");
    let mut browser = BufReader::new(browser);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        browser.read_line(&mut line).expect("head");
        head.push_str(&line);
    }
    let resumed = read_events(&mut browser, 1);
    assert_eq!(resumed[0].0, seen + 1, "resumed after Last-Event-ID, not after=0");
    assert_eq!(resumed[0].1["moment"], "f3");
    // A Last-Event-ID that is no event's id is refused, naming the header.
    let (status, _, err) = {
        let mut raw = TcpStream::connect(&server.addr).expect("connects");
        write!(
            raw,
            "GET /v1/orgs/acme/effects HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\nLast-Event-ID: soon\r\nConnection: close\r\n\r\n"
        )
        .expect("sends");
        let mut text = String::new();
        raw.read_to_string(&mut text).expect("an answer");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, head.to_string(), serde_json::from_str::<Value>(body).unwrap_or(Value::Null))
    };
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("Last-Event-ID")), "{err}");
    drop(server);

    // A server keeping fewer effects answers 410 for a cursor it no longer covers.
    let config = data.join("plaudit.toml");
    std::fs::write(&config, "effects_kept = 2\n").expect("config");
    let server =
        Server::start_args(&data, None, &["--no-demo-plugins", "--config", config.to_str().expect("utf-8 path")]);
    let (status, err) = server.request("GET", "/v1/orgs/acme/effects?after=0", Some(&key), "");
    assert_eq!(
        (status, err["error"]["code"].as_str(), err["error"]["field"].as_str()),
        (410, Some("gone"), Some("after")),
        "{err}"
    );
    let (status, page) = server.request("GET", "/v1/orgs/acme/effects", Some(&key), "");
    assert_eq!((status, page["effects"].as_array().map(Vec::len)), (200, Some(2)), "{page}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn sigterm_ends_streams_answers_what_is_in_flight_and_exits_zero_losing_nothing() {
    let data = std::env::temp_dir().join(format!("plaudit-http-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut server = Server::start(&data);
    let key = server.key("acme").to_string();
    let addr = server.addr.clone();

    // A follower that never leaves on its own.
    let mut follower = TcpStream::connect(&addr).expect("connects");
    write!(
        follower,
        "GET /v1/orgs/acme/effects HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("sends");

    // Clients sending batches until the server stops answering; each remembers what was
    // acknowledged, and tells how many batches were.
    let (acks, acked_batches) = std::sync::mpsc::channel::<()>();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, key, acks) = (addr.clone(), key.clone(), acks.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for b in 0.. {
                    let ids: Vec<String> = (0..20).map(|i| format!("t{c}-{b}-{i}")).collect();
                    let batch: Vec<Value> = ids.iter().map(|id| moment(id, &format!("s{c}"), "bob")).collect();
                    let body = Value::Array(batch).to_string();
                    let Ok(mut stream) = TcpStream::connect(&addr) else { break };
                    let request = format!(
                        "POST /v1/orgs/acme/moments HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(request.as_bytes()).is_err() {
                        break;
                    }
                    let mut response = String::new();
                    if stream.read_to_string(&mut response).is_err() || !response.starts_with("HTTP/1.1 201") {
                        break;
                    }
                    acked.extend(ids);
                    let _ = acks.send(());
                }
                acked
            })
        })
        .collect();
    // Under load: the signal comes once a few batches were acknowledged, while more are sent.
    for _ in 0..8 {
        acked_batches.recv_timeout(std::time::Duration::from_secs(10)).expect("batches are acknowledged");
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waits") {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the server did not stop after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a clean exit");
    let mut rest = String::new();
    let _ = follower.read_to_string(&mut rest); // the stream ended: this returns
    let acked: Vec<String> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    assert!(acked.len() >= 20, "some batches were acknowledged before the signal");
    drop(server);

    // Every acknowledged moment is in the log: sent again (the same content: client `c` sent
    // `tc-b-i` as s{c} with bob), each is a duplicate.
    let server = Server::start(&data);
    for chunk in acked.chunks(500) {
        let actor = |id: &str| format!("s{}", id[1..].split('-').next().unwrap_or_default());
        let batch: Vec<Value> = chunk.iter().map(|id| moment(id, &actor(id), "bob")).collect();
        let (status, body) =
            server.request("POST", "/v1/orgs/acme/moments", Some(&key), &Value::Array(batch).to_string());
        assert_eq!((status, body["accepted"].as_u64()), (200, Some(0)), "{body}");
        assert_eq!(body["duplicates"].as_u64(), Some(chunk.len() as u64));
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_key_over_its_request_rate_gets_429_with_retry_after_and_other_keys_do_not_notice() {
    let data = scratch_dir("plaudit-http-rate");
    let rate_limit = Some(plaudit_server::http::config::RateLimit { requests_per_second: 0.2, burst: 3 });
    let server = App::start_with(ServerConfig { data: data.clone(), rate_limit, ..ServerConfig::default() });
    let (acme, riverside) = (server.key("acme").to_string(), server.key("riverside").to_string());
    for _ in 0..3 {
        assert_eq!(server.request("GET", "/v1/orgs/acme/wrong-key-does-not-count", Some("pk_wrong"), "").0, 404);
        assert_eq!(server.request("GET", "/v1/orgs/acme/challenges", Some("pk_wrong"), "").0, 401);
    }
    for _ in 0..3 {
        assert_eq!(server.request("GET", "/v1/orgs/acme/challenges", Some(&acme), "").0, 200);
    }
    let (status, head, err) = server.send("GET", "/v1/orgs/acme/challenges", Some(&acme), "application/json", b"");
    assert_eq!((status, err["error"]["code"].as_str()), (429, Some("rate_limited")), "{err}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert_eq!(server.request("GET", "/v1/orgs/riverside/challenges", Some(&riverside), "").0, 200);
    let _ = std::fs::remove_dir_all(&data);
}

/// A webhook receiver on a free loopback port: answers `500` to the first `fail_first`
/// requests and `200` after; hands each request's headers and body over a channel.
pub(crate) fn receiver(fail_first: usize) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if n < fail_first { "500 Internal Server Error" } else { "200 OK" };
            let mut stream = reader.into_inner();
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send((head, String::from_utf8_lossy(&body).into_owned())).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// A configuration file beside `data` that lets webhooks reach loopback receivers (refused by
/// default); returns its path.
fn allow_loopback_webhooks(data: &std::path::Path) -> String {
    let path = data.with_extension("toml");
    std::fs::write(&path, "webhook_hosts = [\"127.0.0.1\", \"localhost\"]\n").expect("the configuration");
    path.display().to_string()
}

/// A webhook reaches only public addresses unless the server names the host: an internal
/// address is refused at subscription (an IP literal) or at the connection (a name, checked on
/// the addresses it resolves to at each delivery, so DNS rebinding does not pass either).
#[test]
fn webhooks_refuse_internal_targets_by_default() {
    let data = scratch_dir("plaudit-http-hooks-ssrf");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let (url, deliveries) = receiver(0);
    let put =
        |url: &str| server.request("PUT", "/v1/orgs/acme/webhooks/crm", Some(&key), &json!({"url": url}).to_string());
    for internal in [url.as_str(), "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", "http://0.0.0.0:9/"]
    {
        let (status, body) = put(internal);
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some("url")), "{internal}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("internal")), "{body}");
    }
    // (IPv6 literals are refused by the URL's pattern already.)
    assert_eq!(put("http://[::1]:9/x").0, 400);
    let by_name = url.replace("127.0.0.1", "localhost");
    assert_eq!(put(&by_name).0, 201, "a name is checked when it is resolved");
    server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("s1", "ann", "bob").to_string());
    let mut error = Value::Null;
    for _ in 0..200 {
        let (_, views) = server.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "");
        error = views[0]["last_error"].clone();
        if !error.is_null() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(error.as_str().is_some_and(|e| e.contains("internal addresses only")), "{error}");
    assert!(deliveries.try_recv().is_err(), "nothing reached the receiver");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// A receiver down across a clean restart misses nothing: the effects it was behind on survive
/// the restart (the snapshot a clean stop takes keeps the feed), and it gets them after.
#[test]
fn a_webhook_behind_across_a_clean_restart_misses_nothing() {
    let data = scratch_dir("plaudit-http-hooks-restart");
    let config = allow_loopback_webhooks(&data);
    let args = ["--no-demo-plugins", "--config", config.as_str()];
    let server = Server::start_args(&data, None, &args);
    let key = server.key("acme").to_string();
    // Down: it refuses the first batches it is sent.
    let (url, deliveries) = receiver(3);
    let (status, _) = server.request("PUT", "/v1/orgs/acme/webhooks/crm", Some(&key), &json!({"url": url}).to_string());
    assert_eq!(status, 201);
    for i in 0..12 {
        server.request(
            "POST",
            "/v1/orgs/acme/moments",
            Some(&key),
            &moment(&format!("r{i}"), "ann", "bob").to_string(),
        );
    }
    let timeout = std::time::Duration::from_secs(10);
    deliveries.recv_timeout(timeout).expect("a first attempt, refused");
    let latest = server.request("GET", "/v1/orgs/acme/effects?limit=1", Some(&key), "").1["latest"].as_u64();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let mut server = server;
    server.child.wait().expect("a clean stop");
    drop(server);
    let server = Server::start_args(&data, None, &args);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < latest.unwrap_or(0) as usize {
        let (_, body) = deliveries.recv_timeout(timeout).expect("deliveries resume after the restart");
        let body: Value = serde_json::from_str(&body).expect("json");
        seen.extend(body["effects"].as_array().expect("effects").iter().filter_map(|e| e["id"].as_u64()));
    }
    assert_eq!(seen.iter().next(), Some(&1), "from the first effect on");
    let (_, views) = server.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "");
    assert_eq!(views[0]["missed"], 0, "{views}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// Checks `head`'s `Plaudit-Signature` over the raw `body` with `secret`.
fn signed_by(head: &str, body: &str, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(line) = head.lines().find(|l| l.to_ascii_lowercase().starts_with("plaudit-signature:")) else {
        return false;
    };
    let value = line.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
    let (Some(t), Some(v1)) =
        (value.split(',').find_map(|p| p.strip_prefix("t=")), value.split(',').find_map(|p| p.strip_prefix("v1=")))
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

#[test]
fn webhooks_deliver_chosen_effects_signed_retry_after_a_failure_and_resume_after_a_restart() {
    let data = std::env::temp_dir().join(format!("plaudit-http-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let config = allow_loopback_webhooks(&data);
    let server = Server::start_args(&data, None, &["--no-demo-plugins", "--config", &config]);
    let key = server.key("acme").to_string();
    let (url, deliveries) = receiver(1);
    let body = json!({"url": url, "types": ["points_awarded"]}).to_string();
    let (status, bad) =
        server.request("PUT", "/v1/orgs/acme/webhooks/crm", Some(&key), &json!({"url": "nope"}).to_string());
    assert_eq!((status, bad["error"]["field"].as_str()), (400, Some("url")), "{bad}");
    let (status, hook) = server.request("PUT", "/v1/orgs/acme/webhooks/crm", Some(&key), &body);
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().expect("a secret, shown once").to_string();

    let (_, answer) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("w1", "ann", "bob").to_string());
    let awarded: Vec<&Value> =
        answer["effects"].as_array().expect("effects").iter().filter(|e| e["type"] == "points_awarded").collect();
    assert!(!awarded.is_empty(), "{answer}");
    let timeout = std::time::Duration::from_secs(20);
    let (head1, first) = deliveries.recv_timeout(timeout).expect("a first attempt");
    let (head2, second) = deliveries.recv_timeout(timeout).expect("a retry after the 500");
    assert_eq!(first, second, "the same batch again: at least once");
    assert!(signed_by(&head1, &first, &secret) && signed_by(&head2, &second, &secret), "{head1}");
    assert!(!signed_by(&head1, &first, "another-secret-123"));
    let second: Value = serde_json::from_str(&second).expect("json");
    assert_eq!((second["organisation"].as_str(), second["webhook"].as_str()), (Some("acme"), Some("crm")));
    let effects = second["effects"].as_array().expect("effects");
    assert_eq!(effects.len(), awarded.len(), "only the chosen type: {second}");
    assert!(effects.iter().all(|e| e["type"] == "points_awarded" && e["moment"] == "w1" && e["id"].is_u64()));

    let (_, views) = server.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "");
    let last_id = effects.last().and_then(|e| e["id"].as_u64()).expect("id");
    let deadline = std::time::Instant::now() + timeout;
    let mut views = views;
    while views[0]["cursor"].as_u64() < Some(last_id) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        views = server.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "").1;
    }
    assert!(views[0]["cursor"].as_u64() >= Some(last_id), "{views}");
    assert_eq!((views[0]["failed_attempts"].as_u64(), views[0]["delivered_batches"].as_u64()), (Some(1), Some(1)));
    assert!(views[0].get("secret").is_none(), "the secret is never shown again");
    drop(server);

    // After a restart delivery carries on from the saved cursor: only new effects come.
    let server = Server::start_args(&data, None, &["--no-demo-plugins", "--config", &config]);
    server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("w2", "bob", "carl").to_string());
    let (_, next) = deliveries.recv_timeout(timeout).expect("a delivery after the restart");
    let next: Value = serde_json::from_str(&next).expect("json");
    let ids: Vec<u64> = next["effects"].as_array().expect("effects").iter().filter_map(|e| e["id"].as_u64()).collect();
    assert!(ids.iter().all(|&id| id > last_id), "{next}");
    assert!(next["effects"].as_array().is_some_and(|e| e.iter().all(|x| x["moment"] == "w2")), "{next}");
    assert_eq!(server.request("DELETE", "/v1/orgs/acme/webhooks/crm", Some(&key), "").0, 204);
    assert_eq!(server.request("DELETE", "/v1/orgs/acme/webhooks/crm", Some(&key), "").0, 404);
    let _ = std::fs::remove_dir_all(&data);
}

/// An upgraded server keeps the subscriptions an earlier build kept in its data directory
/// (`orgs/ORG/webhooks.json`): opening the organisation adopts them into the store, cursor and
/// secret included, and sets the file aside.
#[test]
fn webhooks_an_earlier_build_kept_in_the_data_directory_are_adopted_into_the_store() {
    use plaudit_store::{OrgTable, RedbStore, Store};
    let data = scratch_dir("plaudit-http-hooks-adopt");
    let key = App::start(&data).key("acme").to_string();
    // As an earlier build left it: the file, nothing in the store.
    let file = data.join("orgs/acme/webhooks.json");
    std::fs::create_dir_all(file.parent().expect("a folder")).expect("orgs/acme");
    let hook = json!({"url": "http://127.0.0.1:9/hook", "types": ["badge_earned"], "secret": "a-secret-of-16-chars",
        "cursor": 3, "missed": 1});
    std::fs::write(&file, serde_json::to_vec_pretty(&json!({"hooks": {"crm": hook}})).expect("json")).expect("file");
    let app = App::start(&data);
    let (status, views) = app.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "");
    assert_eq!(status, 200, "{views}");
    let view = &views[0];
    assert_eq!(
        (&view["name"], &view["url"], &view["types"], &view["cursor"], &view["missed"]),
        (&json!("crm"), &hook["url"], &hook["types"], &json!(3), &json!(1)),
        "{views}"
    );
    assert!(!file.exists() && file.with_extension("json.adopted").exists(), "the file set aside");
    drop(app);
    let store = RedbStore::open(data.join("plaudit.redb")).expect("the store");
    let acme = plaudit_core::ids::OrgId::parse("acme").expect("an id");
    let settings = store.org_records(&acme, OrgTable::Settings).expect("settings");
    let (_, stored) = settings.iter().find(|(name, _)| name == "webhooks").expect("kept in the store");
    let stored: Value = serde_json::from_slice(stored).expect("json");
    assert_eq!(stored["hooks"]["crm"], hook, "with its secret and cursor");
    drop(store);
    // Restarted again: from the store (the file is not read again).
    let app = App::start(&data);
    assert_eq!(app.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "").1[0]["cursor"], 3);
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_rule_set_is_read_in_the_format_accept_asks_for() {
    let data = scratch_dir("plaudit-http-rules-accept");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let get = |accept: &str| server.send_with("GET", "/v1/orgs/acme/rules", Some(&key), &[("accept", accept)], b"");
    let toml_text = std::fs::read_to_string(plaudit_tests::repo_root().join("rules/acme.toml")).expect("acme");
    let from_toml: Value = {
        let doc: toml::Value = toml::from_str(&toml_text).expect("toml");
        serde_json::to_value(doc).expect("as json")
    };
    // Published as TOML: TOML by default and for */*, JSON when asked (the same document).
    for accept in ["*/*", "application/toml", "application/*"] {
        let (status, head, body) = get(accept);
        assert_eq!(status, 200, "{accept}");
        assert!(head.contains("content-type: application/toml"), "{accept}: {head}");
        assert_eq!(body.as_str(), Some(toml_text.as_str()), "{accept}: as published");
    }
    let (status, head, json) = get("application/json");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json") && head.contains("plaudit-rules-version: 1"), "{head}");
    assert_eq!(json, from_toml, "the same document");
    let (status, _, err) = get("text/html");
    assert_eq!((status, err["error"]["code"].as_str()), (406, Some("not_acceptable")), "{err}");

    // Published back as JSON: JSON by default, TOML when asked, and both the same rule set.
    let (status, _, published) =
        server.send("PUT", "/v1/orgs/acme/rules", Some(&key), "application/json", json.to_string().as_bytes());
    assert_eq!(status, 200, "{published}");
    let (_, head, again) = get("*/*");
    assert!(head.contains("content-type: application/json") && head.contains("plaudit-rules-version: 2"), "{head}");
    assert_eq!(again, from_toml);
    let (status, head, toml_again) = get("application/toml");
    assert!(status == 200 && head.contains("content-type: application/toml"), "{head}");
    let reparsed: toml::Value = toml::from_str(toml_again.as_str().expect("text")).expect("TOML");
    assert_eq!(serde_json::to_value(reparsed).expect("json"), from_toml);

    // Every version is kept and read back as published, or converted like the one in force.
    let (status, versions) = server.request("GET", "/v1/orgs/acme/rules/versions", Some(&key), "");
    assert_eq!(status, 200, "{versions}");
    assert_eq!(versions["current"], 2);
    let listed: Vec<(u64, &str)> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_u64().unwrap_or(0), v["format"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(listed, vec![(1, "toml"), (2, "json")]);
    assert_eq!(versions["versions"][0]["bytes"].as_u64(), Some(toml_text.len() as u64));
    let version = |n: &str, accept: &str| {
        server.send_with("GET", &format!("/v1/orgs/acme/rules/versions/{n}"), Some(&key), &[("accept", accept)], b"")
    };
    let (status, head, first) = version("1", "*/*");
    assert!(status == 200 && head.contains("plaudit-rules-version: 1"), "{head}");
    assert_eq!(first.as_str(), Some(toml_text.as_str()), "version 1 as published");
    assert_eq!(version("1", "application/json").2, from_toml);
    assert_eq!(version("9", "*/*").0, 404);
    let (status, _, err) = version("one", "*/*");
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("version")), "{err}");
    // Publishing an earlier version again is a rollback: a new version with its text.
    let (status, _, _) =
        server.send("PUT", "/v1/orgs/acme/rules", Some(&key), "application/toml", toml_text.as_bytes());
    assert_eq!(status, 200);
    let (_, versions) = server.request("GET", "/v1/orgs/acme/rules/versions", Some(&key), "");
    assert_eq!((versions["current"].as_u64(), versions["versions"].as_array().map(Vec::len)), (Some(3), Some(3)));
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_description_names_each_operation_for_generated_clients_and_the_server_asked() {
    let data = scratch_dir("plaudit-http-openapi-names");
    let server = App::start(&data);
    let (status, _, spec) = server.send_with("GET", "/openapi.json", None, &[("host", "plaudit.test:9000")], b"");
    assert_eq!(status, 200);
    assert_eq!(spec["servers"], serde_json::json!([{"url": "http://plaudit.test:9000"}]));
    let proxied = [("host", "api.plaudit.test"), ("x-forwarded-proto", "https")];
    let (_, _, behind) = server.send_with("GET", "/openapi.json", None, &proxied, b"");
    assert_eq!(behind["servers"], serde_json::json!([{"url": "https://api.plaudit.test"}]));
    let tags: Vec<&str> = spec["tags"].as_array().expect("tags").iter().filter_map(|t| t["name"].as_str()).collect();
    let mut ids = Vec::new();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for (method, op) in operations.as_object().expect("operations") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{id}"
            );
            ids.push(id.to_string());
            let op_tags = op["tags"].as_array().unwrap_or_else(|| panic!("{method} {path}: no tags"));
            assert!(
                op_tags.iter().all(|t| t.as_str().is_some_and(|t| tags.contains(&t))),
                "{method} {path}: {op_tags:?}"
            );
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operationIds are unique");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compresses");
    encoder.finish().expect("compresses")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("gzip");
    out
}

#[test]
fn answers_are_gzipped_for_clients_that_accept_it_and_gzipped_bodies_are_taken() {
    let data = scratch_dir("plaudit-http-gzip");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    // A gzipped batch of 200 moments is taken as the plain one would be.
    let batch: Vec<Value> = (0..200).map(|i| moment(&format!("z{i}"), &format!("s{}", i % 20), "bob")).collect();
    let plain = Value::Array(batch).to_string();
    let (status, _, body) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &gzip(plain.as_bytes()),
    );
    assert_eq!((status, body["accepted"].as_u64()), (201, Some(200)), "{body}");
    // The feed, gzipped when asked, is the same JSON; and much smaller.
    let path = "/v1/orgs/acme/effects?after=0&limit=1000";
    let (status, head, zipped) = server.exchange("GET", path, Some(&key), &[("accept-encoding", "gzip")], b"");
    assert!(status == 200 && head.contains("content-encoding: gzip"), "{head}");
    let (_, head, unzipped) = server.exchange("GET", path, Some(&key), &[], b"");
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(gunzip(&zipped), unzipped);
    assert!(zipped.len() * 5 < unzipped.len(), "{} bytes gzipped against {}", zipped.len(), unzipped.len());
    // A body that is not gzip, sent as gzip, is refused; one that inflates past the limit too.
    let (status, _, _) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        plain.as_bytes(),
    );
    assert_eq!(status, 400, "not gzip");
    let (status, _, err) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        plain.as_bytes(),
    );
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("unreadable_body")),
        "JSON, like every error: {err}"
    );
    let (status, _, err) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "br")],
        plain.as_bytes(),
    );
    assert_eq!((status, err["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{err}");
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let (status, _, _) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &bomb,
    );
    assert_eq!(status, 413, "8 MB of spaces in {} bytes", bomb.len());
    let (_, _, err) = server.send_with(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &bomb,
    );
    assert!(err["error"]["code"].is_string(), "{err}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_feed_is_a_page_or_a_stream_as_accept_prefers() {
    let data = scratch_dir("plaudit-http-feed-accept");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let get = |accept: &str| server.send_with("GET", "/v1/orgs/acme/effects", Some(&key), &[("accept", accept)], b"");
    for accept in ["*/*", "application/json", "text/event-stream;q=0, application/json"] {
        let (status, head, page) = get(accept);
        assert!(status == 200 && head.contains("content-type: application/json"), "{accept}: {head}");
        assert!(page["latest"].is_u64(), "{accept}: {page}");
    }
    let (status, _, err) = get("text/html");
    assert_eq!((status, err["error"]["code"].as_str()), (406, Some("not_acceptable")), "{err}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
