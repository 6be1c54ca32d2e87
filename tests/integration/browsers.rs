//! What browsers and proxies need of the API: CORS for the origins an organisation allows (set
//! with its own key, kept across restarts, checked per organisation), the effects stream opened
//! with a feed token in the URL (what `EventSource` can send) and filtered to a `stakeholder`
//! key's own effects, and HTTP/2 for clients that speak it without TLS (h2c).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::app::App;
use crate::server::Server;
use plaudit_tests::scratch_dir;

fn moment(id: &str, who: &str, with: &str) -> Value {
    json!({"id": id, "stakeholder": who, "counterpart": with, "kind": "answer", "channel": "forum",
           "at": "2026-03-02T10:00:00Z"})
}

/// The value of header `name` in a lowercased response head, if there.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::trim))
}

/// A preflight as a browser sends it before a `GET` with `Authorization`.
fn preflight(server: &App, path: &str, origin: &str) -> (u16, String) {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let (status, head, _) = server.send_with("OPTIONS", path, None, &headers, b"");
    (status, head)
}

#[test]
fn an_organisation_allows_the_origins_it_lists_and_no_others_across_a_restart() {
    let data = scratch_dir("plaudit-cors");
    let app = App::start(&data);
    let own = app.key("acme").to_string();
    assert_eq!(
        app.request("POST", "/v1/orgs/acme/moments", Some(&own), &moment("c1", "ann", "bob").to_string()).0,
        201
    );
    let (status, none) = app.request("GET", "/v1/orgs/acme/cors", Some(&own), "");
    assert_eq!((status, none), (200, json!({"origins": []})), "none until set");
    let (status, _) = preflight(&app, "/v1/orgs/acme/stakeholders/ann", "https://app.example.com");
    assert!((200..300).contains(&status));

    // Origins are checked and normalised; a bad one is named by its place.
    let (status, err) = app.request(
        "PUT",
        "/v1/orgs/acme/cors",
        Some(&own),
        &json!({"origins": ["https://app.example.com", "app.example.com/x"]}).to_string(),
    );
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("origins[1]")), "{err}");
    let (status, set) = app.request(
        "PUT",
        "/v1/orgs/acme/cors",
        Some(&own),
        &json!({"origins": ["https://App.Example.com", "http://localhost:5173"]}).to_string(),
    );
    assert_eq!(status, 200, "{set}");
    assert_eq!(set, json!({"origins": ["http://localhost:5173", "https://app.example.com"]}));

    // Setting them takes the organisation's own key.
    let (status, created) =
        app.request("POST", "/v1/orgs/acme/keys", Some(&own), &json!({"name": "web", "scope": "read"}).to_string());
    assert_eq!(status, 201);
    let read = created["key"].as_str().expect("a key").to_string();
    assert_eq!(app.request("PUT", "/v1/orgs/acme/cors", Some(&read), r#"{"origins": ["*"]}"#).0, 403);
    assert_eq!(app.request("GET", "/v1/orgs/acme/cors", Some(&read), "").0, 403);

    let check = |app: &App| {
        // An allowed origin's preflight is answered with what it may send, for how long.
        let (status, head) = preflight(app, "/v1/orgs/acme/stakeholders/ann", "https://app.example.com");
        assert!((200..300).contains(&status), "{head}");
        assert_eq!(header(&head, "access-control-allow-origin"), Some("https://app.example.com"), "{head}");
        let methods = header(&head, "access-control-allow-methods").unwrap_or("");
        assert!(methods.contains("get") && methods.contains("post"), "{head}");
        assert!(header(&head, "access-control-allow-headers").unwrap_or("").contains("authorization"), "{head}");
        assert!(header(&head, "access-control-max-age").is_some(), "{head}");
        assert_eq!(header(&head, "access-control-allow-credentials"), None, "keys, never cookies");
        // Its real request may be read, errors included (a page must see why it was refused).
        let origin = [("origin", "https://app.example.com")];
        let (status, head, _) = app.send_with("GET", "/v1/orgs/acme/stakeholders/ann", Some(&read), &origin, b"");
        assert_eq!(status, 200);
        assert_eq!(header(&head, "access-control-allow-origin"), Some("https://app.example.com"), "{head}");
        assert!(head.lines().any(|l| l.starts_with("vary:") && l.contains("origin")), "{head}");
        let (status, head, _) = app.send_with("GET", "/v1/orgs/acme/stakeholders/ann", None, &origin, b"");
        assert_eq!(status, 401);
        assert_eq!(header(&head, "access-control-allow-origin"), Some("https://app.example.com"), "{head}");
        // Another origin, or another organisation, gets no CORS header: the browser stops.
        let (_, head) = preflight(app, "/v1/orgs/acme/stakeholders/ann", "https://evil.example");
        assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
        let (_, head) = preflight(app, "/v1/orgs/riverside/stakeholders/ann", "https://app.example.com");
        assert_eq!(header(&head, "access-control-allow-origin"), None, "riverside allows none: {head}");
        let (_, head) = preflight(app, "/metrics", "https://app.example.com");
        assert_eq!(header(&head, "access-control-allow-origin"), None, "only organisations' routes: {head}");
    };
    check(&app);
    drop(app);
    let app = App::start(&data);
    check(&app);
    // An empty list allows none again.
    assert_eq!(app.request("PUT", "/v1/orgs/acme/cors", Some(&own), r#"{"origins": []}"#).0, 200);
    let (_, head) = preflight(&app, "/v1/orgs/acme/stakeholders/ann", "https://app.example.com");
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Opens the effects stream as a browser's `EventSource` does: a plain `GET` of `path`, no
/// `Authorization`; returns the status and, if it is `200`, the stream after its head.
fn open_stream(server: &Server, path: &str) -> (u16, BufReader<TcpStream>) {
    let mut stream = TcpStream::connect(&server.addr).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nOrigin: http://localhost:5173\r\n\r\n"
    )
    .expect("sends");
    let mut stream = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        if stream.read_line(&mut line).expect("head") == 0 {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, stream)
}

/// The next `effect` event's data on `stream`.
fn next_effect(stream: &mut BufReader<TcpStream>) -> Value {
    let (mut data, mut kind) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(stream.read_line(&mut line).expect("reads") > 0, "the stream ended");
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if let Some(v) = l.strip_prefix("event:") {
            kind = v.trim().to_string();
        } else if l.is_empty() && !data.is_empty() {
            if kind == "effect" {
                return serde_json::from_str(&data).expect("json data");
            }
            (data, kind) = (String::new(), String::new());
        }
    }
}

#[test]
fn a_feed_token_opens_the_stream_without_a_header_and_a_stakeholder_sees_only_their_own_effects() {
    let data = scratch_dir("plaudit-feed-token");
    let server = Server::start(&data);
    let own = server.key("acme").to_string();
    let key = |body: Value| {
        let (status, created) = server.request("POST", "/v1/orgs/acme/keys", Some(&own), &body.to_string());
        assert_eq!(status, 201, "{created}");
        (created["id"].as_str().expect("id").to_string(), created["key"].as_str().expect("key").to_string())
    };
    let (ann_id, ann) = key(json!({"name": "ann's app", "scope": "stakeholder", "stakeholder": "ann"}));
    let (_, read) = key(json!({"name": "wallboard", "scope": "read"}));
    let (_, ingest) = key(json!({"name": "crm", "scope": "ingest"}));

    // A key that may read the feed gets a token; one that may not is refused.
    let (status, token) = server.request("POST", "/v1/orgs/acme/effects/tokens", Some(&ann), "");
    assert_eq!(status, 201, "{token}");
    let stream_path = token["stream"].as_str().expect("the stream's address").to_string();
    assert!(stream_path.starts_with("/v1/orgs/acme/effects?token=ft_"), "{token}");
    assert!(token["expires"].as_u64().is_some(), "{token}");
    assert_eq!(server.request("POST", "/v1/orgs/acme/effects/tokens", Some(&ingest), "").0, 403);
    assert_eq!(server.request("POST", "/v1/orgs/acme/effects/tokens", None, "").0, 401);
    let (status, err) =
        server.request("POST", "/v1/orgs/acme/effects/tokens", Some(&read), r#"{"ttl_seconds": 86400}"#);
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("ttl_seconds")), "{err}");
    // A body is JSON or absent: blanks, or anything else, are refused, not taken for none.
    for bad in [" ", "\n", "ttl", "[]"] {
        let (status, err) = server.request("POST", "/v1/orgs/acme/effects/tokens", Some(&read), bad);
        assert_eq!(status, 400, "{bad:?}: {err}");
    }
    let (status, wall) = server.request("POST", "/v1/orgs/acme/effects/tokens", Some(&read), r#"{"ttl_seconds": 60}"#);
    assert_eq!(status, 201, "{wall}");

    // Ann's stream carries her effects only; the wallboard's carries everyone's.
    let (status, mut ann_stream) = open_stream(&server, &stream_path);
    assert_eq!(status, 200);
    let (status, mut wall_stream) = open_stream(&server, wall["stream"].as_str().expect("stream"));
    assert_eq!(status, 200);
    for (i, who) in ["bob", "carl", "ann"].iter().enumerate() {
        let (status, _) = server.request(
            "POST",
            "/v1/orgs/acme/moments",
            Some(&ingest),
            &moment(&format!("t{i}"), who, "dave").to_string(),
        );
        assert_eq!(status, 201);
    }
    let first = next_effect(&mut ann_stream);
    assert_eq!((first["stakeholder"].as_str(), first["moment"].as_str()), (Some("ann"), Some("t2")), "{first}");
    assert_eq!(next_effect(&mut wall_stream)["moment"], "t0", "the wallboard sees bob's first");

    // A page read with the token (or ann's key) holds her effects only; its cursor passes the rest.
    let token_value = stream_path.rsplit('=').next().expect("token");
    let (status, page) = server.request("GET", &format!("/v1/orgs/acme/effects?token={token_value}"), None, "");
    assert_eq!(status, 200, "{page}");
    let effects = page["effects"].as_array().expect("effects");
    assert!(!effects.is_empty() && effects.iter().all(|e| e["stakeholder"] == "ann"), "{page}");
    assert_eq!(page["next"], page["latest"], "{page}");
    let (_, by_key) = server.request("GET", "/v1/orgs/acme/effects", Some(&ann), "");
    assert_eq!(by_key["effects"], page["effects"]);

    // Altered, or of a revoked key: refused, naming the token.
    let altered = stream_path.replace(&ann_id, "000000000000");
    let (status, _) = open_stream(&server, &altered);
    assert_eq!(status, 401);
    assert_eq!(server.request("GET", "/v1/orgs/riverside/effects?token=x", None, "").0, 401);
    assert_eq!(server.request("DELETE", &format!("/v1/orgs/acme/keys/{ann_id}"), Some(&own), "").0, 204);
    let (status, err) = server.request("GET", &stream_path, None, "");
    assert_eq!((status, err["error"]["field"].as_str()), (401, Some("token")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap_or("").contains("revoked"), "{err}");
    // A token opens the feed and nothing else.
    let wall_token = wall["token"].as_str().expect("token");
    assert_ne!(server.request("GET", &format!("/v1/orgs/acme/stakeholders/ann?token={wall_token}"), None, "").0, 200);
    drop(server);
    // Tokens are checked against the organisation's key, not the process: they outlive a restart.
    let server = Server::start(&data);
    let (status, _) = server.request("GET", &format!("/v1/orgs/acme/effects?token={wall_token}"), None, "");
    assert_eq!(status, 200);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn clients_speaking_http2_without_tls_are_answered_in_http2() {
    let data = scratch_dir("plaudit-h2c");
    let server = Server::start(&data);
    let key = server.key("acme").to_string();
    assert_eq!(
        server.request("POST", "/v1/orgs/acme/moments", Some(&key), &moment("h1", "ann", "bob").to_string()).0,
        201
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (status, version, body) = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&server.addr).await.expect("connects");
        let (client, connection) = h2::client::handshake(tcp).await.expect("an HTTP/2 handshake (prior knowledge)");
        tokio::spawn(connection);
        let mut client = client.ready().await.expect("ready");
        let request = axum::http::Request::get(format!("http://{}/v1/orgs/acme/stakeholders/ann", server.addr))
            .header("authorization", format!("Bearer {key}"))
            .body(())
            .expect("a request");
        let (response, _) = client.send_request(request, true).expect("sent");
        let response = response.await.expect("an answer");
        let (status, version) = (response.status().as_u16(), response.version());
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("a chunk");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (status, version, bytes)
    });
    assert_eq!(version, axum::http::Version::HTTP_2);
    assert_eq!(status, 200);
    let profile: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(profile["id"], "ann", "{profile}");
    // HTTP/1.1 clients on the same port are unaffected.
    let mut plain = TcpStream::connect(&server.addr).expect("connects");
    write!(plain, "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("sends");
    let mut text = String::new();
    plain.read_to_string(&mut text).expect("reads");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let _ = std::fs::remove_dir_all(&data);
}
