//! Scoped keys over HTTP: created with the organisation's own key and shown once, each scope
//! allowed and refused where it should be, a revoked key refused at once, the keys and their
//! last use kept across a restart, another organisation's key refused.

use serde_json::{Value, json};

use crate::app::App;
use plaudit_tests::scratch_dir;

fn moment(id: &str, who: &str, with: &str) -> Value {
    json!({"id": id, "stakeholder": who, "counterpart": with, "kind": "answer", "channel": "forum",
           "at": "2026-03-02T10:00:00Z"})
}

/// Creates a key on acme; returns (id, key).
fn create(server: &App, own: &str, body: Value) -> (String, String) {
    let (status, created) = server.request("POST", "/v1/orgs/acme/keys", Some(own), &body.to_string());
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("the key, shown once").to_string();
    let id = created["id"].as_str().expect("its id").to_string();
    assert!(key.starts_with(&format!("sk_{id}_")), "{created}");
    (id, key)
}

#[test]
fn each_scope_is_allowed_what_it_says_and_refused_the_rest_with_403() {
    let data = scratch_dir("plaudit-keys-scopes");
    let server = App::start(&data);
    let own = server.key("acme").to_string();
    let (_, ingest) = create(&server, &own, json!({"name": "shop backend", "scope": "ingest"}));
    let (_, read) = create(&server, &own, json!({"name": "dashboard", "scope": "read"}));
    let (_, ann) = create(&server, &own, json!({"name": "ann's app", "scope": "stakeholder", "stakeholder": "ann"}));
    let batch = Value::Array(vec![moment("k1", "ann", "bob"), moment("k2", "bob", "ann")]).to_string();

    // (method, path, body, [own, ingest, read, ann]) -> allowed?
    let cases: [(&str, &str, &str, [bool; 4]); 13] = [
        ("POST", "/v1/orgs/acme/moments", &batch, [true, true, false, false]),
        ("GET", "/v1/orgs/acme/stakeholders/ann", "", [true, false, true, true]),
        ("GET", "/v1/orgs/acme/stakeholders/bob", "", [true, false, true, false]),
        ("GET", "/v1/orgs/acme/stakeholders/ann/effects", "", [true, false, true, true]),
        ("GET", "/v1/orgs/acme/stakeholders/bob/effects", "", [true, false, true, false]),
        ("GET", "/v1/orgs/acme/leaderboards/xp", "", [true, false, true, true]),
        ("GET", "/v1/orgs/acme/challenges", "", [true, false, true, true]),
        ("GET", "/v1/orgs/acme/effects", "", [true, false, true, true]),
        ("GET", "/v1/orgs/acme/insights/activity", "", [true, false, true, false]),
        ("GET", "/v1/orgs/acme/stakeholders", "", [true, false, true, false]),
        ("GET", "/v1/orgs/acme/rules", "", [true, false, true, false]),
        ("GET", "/v1/orgs/acme/keys", "", [true, false, false, false]),
        ("GET", "/v1/orgs/acme/webhooks", "", [true, false, false, false]),
    ];
    for (method, path, body, allowed) in cases {
        for (key, ok, who) in [
            (&own, allowed[0], "own"),
            (&ingest, allowed[1], "ingest"),
            (&read, allowed[2], "read"),
            (&ann, allowed[3], "ann"),
        ] {
            let (status, answer) = server.request(method, path, Some(key), body);
            if ok {
                assert!((200..300).contains(&status), "{who}: {method} {path}: {status} {answer}");
            } else {
                assert_eq!(
                    (status, answer["error"]["code"].as_str()),
                    (403, Some("forbidden")),
                    "{who}: {method} {path}: {answer}"
                );
            }
        }
    }
    // A refusal says what the key may do and what was needed.
    let (_, err) = server.request("GET", "/v1/orgs/acme/stakeholders/bob", Some(&ann), "");
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("stakeholder \"ann\"") && message.contains("bob"), "{message}");
    // Publishing rules, installing plugins, making keys: the organisation's own key only.
    let (status, _) =
        server.request("POST", "/v1/orgs/acme/keys", Some(&read), &json!({"name": "x", "scope": "read"}).to_string());
    assert_eq!(status, 403);
    let (status, _, _) = server.send("PUT", "/v1/orgs/acme/rules", Some(&read), "application/toml", b"x");
    assert_eq!(status, 403);
    // Another organisation's keys, own or scoped, are nobody here.
    let (status, _) = server.request("GET", "/v1/orgs/riverside/challenges", Some(&read), "");
    assert_eq!(status, 401);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn keys_are_listed_without_their_secret_revoked_at_once_and_kept_across_a_restart() {
    let data = scratch_dir("plaudit-keys-lifecycle");
    let server = App::start(&data);
    let own = server.key("acme").to_string();
    let (read_id, read) = create(&server, &own, json!({"name": "dashboard", "scope": "read"}));
    let (ingest_id, ingest) = create(&server, &own, json!({"name": "shop", "scope": "ingest"}));
    let (status, _) = server.request("GET", "/v1/orgs/acme/challenges", Some(&read), "");
    assert_eq!(status, 200);

    let (status, list) = server.request("GET", "/v1/orgs/acme/keys", Some(&own), "");
    assert_eq!(status, 200, "{list}");
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&read) && !text.contains(&ingest) && !text.contains("hash"), "no secret: {text}");
    let listed = |id: &str| keys.iter().find(|k| k["id"] == id).cloned().expect("listed");
    assert_eq!(
        (listed(&read_id)["name"].as_str(), listed(&read_id)["scope"].as_str()),
        (Some("dashboard"), Some("read"))
    );
    assert!(listed(&read_id)["last_used"].as_i64().is_some(), "used: {list}");
    assert!(listed(&ingest_id).get("last_used").is_none(), "never used: {list}");

    // Bad requests name the field.
    for (body, field) in [
        (json!({"name": "x", "scope": "stakeholder"}), "stakeholder"),
        (json!({"name": "x", "scope": "read", "stakeholder": "ann"}), "stakeholder"),
        (json!({"name": "", "scope": "read"}), "name"),
        (json!({"name": "x", "scope": "admin"}), "scope"),
    ] {
        let (status, err) = server.request("POST", "/v1/orgs/acme/keys", Some(&own), &body.to_string());
        assert_eq!((status, err["error"]["field"].as_str()), (400, Some(field)), "{body}: {err}");
    }

    // Revoked: refused from the next request on; a second revocation finds nothing.
    let (status, _) = server.request("DELETE", &format!("/v1/orgs/acme/keys/{read_id}"), Some(&own), "");
    assert_eq!(status, 204);
    let (status, _) = server.request("GET", "/v1/orgs/acme/challenges", Some(&read), "");
    assert_eq!(status, 401);
    let (status, _) = server.request("DELETE", &format!("/v1/orgs/acme/keys/{read_id}"), Some(&own), "");
    assert_eq!(status, 404);
    // A key with the right id and a wrong secret is no key.
    let forged = format!("sk_{ingest_id}_{}", "0".repeat(40));
    let (status, _) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&forged), &moment("f1", "ann", "bob").to_string());
    assert_eq!(status, 401);
    let (status, _) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&ingest), &moment("i1", "ann", "bob").to_string());
    assert_eq!(status, 201);
    drop(server);

    // After a restart: the ingest key works, the revoked one does not, last uses were kept.
    let server = App::start(&data);
    let (status, _) =
        server.request("POST", "/v1/orgs/acme/moments", Some(&ingest), &moment("i2", "ann", "bob").to_string());
    assert_eq!(status, 201);
    let (status, _) = server.request("GET", "/v1/orgs/acme/challenges", Some(&read), "");
    assert_eq!(status, 401);
    let (_, list) = server.request("GET", "/v1/orgs/acme/keys", Some(&own), "");
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{list}");
    assert!(keys[0]["last_used"].as_i64().is_some(), "{list}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
