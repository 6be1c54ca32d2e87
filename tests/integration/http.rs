//! The HTTP API end to end: the real `plaudit serve` on a free loopback port, driven over TCP
//! with plain HTTP/1.1 requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use plaudit_tests::{plaudit_bin, repo_root};
use serde_json::{Value, json};

/// A running server and what it printed at start.
struct Server {
    child: Child,
    addr: String,
    keys: Vec<(String, String)>,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let mut child = Command::new(plaudit_bin())
            .current_dir(repo_root())
            .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("plaudit serve starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut keys = Vec::new();
        let addr = loop {
            let line = lines.next().expect("the server says where it listens").expect("utf-8");
            if let Some(rest) = line.strip_prefix("demo: organisation ") {
                let org = rest.split(' ').next().expect("org").to_string();
                keys.push((org, rest.rsplit(' ').next().expect("key").to_string()));
            }
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.split(' ').next().expect("address").to_string();
            }
        };
        Server { child, addr, keys }
    }

    fn key(&self, org: &str) -> &str {
        &self.keys.iter().find(|(o, _)| o == org).expect("a demo organisation").1
    }

    /// Sends a request and returns the status and the body as JSON (or as a string).
    fn request(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("sends");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reads");
        let status: u16 = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        let text = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(text).unwrap_or(Value::String(text.to_string())))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        "plaudit_http_request_seconds_count{route=\"/v1/orgs/{org}/leaderboards/{board}\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // After a restart (SIGKILL: nothing flushed on the way out), the state is the same.
    drop(server);
    let server = Server::start(&data);
    assert!(server.keys.is_empty(), "keys are printed once, at creation");
    let (_, again) = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "");
    assert_eq!(again["currencies"]["xp"], xp);
    let (_, dup) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("m1", "ann", "bob").to_string());
    assert_eq!(dup["duplicates"].as_u64(), Some(1), "idempotent across a restart");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn bad_requests_get_a_clear_error_naming_the_field() {
    let data = std::env::temp_dir().join(format!("plaudit-http-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let post = |body: &str, key: Option<&str>| server.request("POST", "/v1/orgs/acme/moments", key, body);
    let error =
        |v: &Value| (v["error"]["code"].as_str().map(str::to_string), v["error"]["field"].as_str().map(str::to_string));

    let (status, body) = post("{not json", Some(&key));
    assert_eq!((status, error(&body).0.as_deref()), (400, Some("malformed_json")), "{body}");
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
    let (status, _) = server.request("GET", "/v1/orgs/nobody/challenges", Some(&key), "");
    assert_eq!(status, 404);
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/nope", Some(&key), "");
    assert_eq!((status, error(&body).0.as_deref()), (404, Some("not_found")), "{body}");
    let (status, body) = server.request("GET", "/v1/orgs/acme/leaderboards/xp?limit=0", Some(&key), "");
    assert_eq!((status, error(&body).1.as_deref()), (400, Some("limit")), "{body}");
    let (status, body) = server.request("GET", "/v1/orgs/acme/stakeholders/nobody", Some(&key), "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.request("GET", "/healthz", None, "");
    assert_eq!((status, body.as_str()), (200, Some("ok\n")));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn concurrent_requests_share_commits_but_each_gets_its_own_answer() {
    let data = std::env::temp_dir().join(format!("plaudit-http-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
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
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    let (status, spec) = server.request("GET", "/openapi.json", None, "");
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 7, "{:?}", paths.keys().collect::<Vec<_>>());
    let bare_fallback =
        |status: u16, body: &Value| (status == 404 || status == 405) && body == &Value::String(String::new());
    for (path, operations) in paths {
        let concrete = path.replace("{org}", "acme").replace("{id}", "ann").replace("{board}", "xp");
        for (method, operation) in operations.as_object().expect("operations") {
            let body = if method == "post" { moment("openapi-1", "ann", "bob").to_string() } else { String::new() };
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
