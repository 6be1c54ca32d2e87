//! The server on the PostgreSQL store (`store = "postgres://..."`): moments taken, a restart
//! from its snapshots, a replay from the log alone, the same boards each time, and nothing of
//! the log in the data directory; webhooks moving with their organisation to a node with a data
//! directory of its own. Runs when `PLAUDIT_TEST_POSTGRES` names a server
//! (`scripts/test.sh` starts one, `scripts/lib/postgres.sh`), in a database of its own; says
//! that it skipped otherwise. The store's own behaviour on both backends is
//! `engine/store/src/conformance.rs`.

use plaudit_server::http::ServerConfig;
use plaudit_tests::scratch_dir;
use serde_json::{Value, json};

use crate::app::App;

/// Runs `sqls` one by one (some may not run in a transaction) on the server at `url`.
fn admin(url: &str, sqls: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connects");
        let task = tokio::spawn(connection);
        for sql in sqls {
            client.batch_execute(sql).await.expect(sql);
        }
        drop(client);
        let _ = task.await;
    });
}

/// A database of the test's own on the test server, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn new(test: &str) -> Option<Database> {
        let Some(admin_url) = std::env::var("PLAUDIT_TEST_POSTGRES").ok().filter(|u| !u.is_empty()) else {
            eprintln!("{test}: skipped: PLAUDIT_TEST_POSTGRES is not set (scripts/test.sh starts a PostgreSQL)");
            return None;
        };
        let name = format!("plaudit_it{}_{}", std::process::id(), test.len());
        admin(&admin_url, &[&format!("DROP DATABASE IF EXISTS {name}"), &format!("CREATE DATABASE {name}")]);
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Database { admin: admin_url, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = &self.name;
        admin(&self.admin, &[&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]);
    }
}

fn moment(id: &str, who: &str, kind: &str) -> Value {
    json!({"id": id, "stakeholder": who, "kind": kind, "channel": "event", "at": "2026-03-02T10:00:00Z"})
}

/// What a reader sees of acme: its boards and a stakeholder.
fn seen(app: &App, key: &str) -> Value {
    let get = |path: &str| {
        let (status, body) = app.request("GET", path, Some(key), "");
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    json!({"xp": get("/v1/orgs/acme/leaderboards/xp"), "ann": get("/v1/orgs/acme/stakeholders/ann")})
}

#[test]
fn the_server_on_postgresql_takes_moments_restarts_and_replays_to_the_same_boards() {
    let Some(db) = Database::new("the_server_on_postgresql") else { return };
    let data = scratch_dir("plaudit-on-postgres");
    let config =
        ServerConfig { data: data.clone(), store: Some(db.url.clone()), snapshot_every: 4, ..ServerConfig::default() };
    let (key, before) = {
        let app = App::start_with(config.clone());
        let key = app.key("acme").to_string();
        for i in 0..5 {
            let batch = json!([
                moment(&format!("a{i}"), "ann", "answer"),
                moment(&format!("b{i}"), "bob", "meetup"),
                moment(&format!("c{i}"), "ann", "meetup"),
            ]);
            let (status, body) = app.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string());
            assert_eq!(status, 201, "{body}");
        }
        let seen = seen(&app, &key);
        (key, seen)
    };
    assert!(!data.join("plaudit.redb").exists(), "the log is in PostgreSQL, not in the data directory");

    // A restart: from the newest snapshot, then the log after it.
    let app = App::start_with(config.clone());
    assert_eq!(seen(&app, &key), before, "the same after a restart");
    let batch = json!([moment("d1", "bob", "answer")]);
    assert_eq!(app.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string()).0, 201);
    let after = seen(&app, &key);
    assert_ne!(after, before, "bob's answer counts");
    drop(app);

    // A replay of the whole log: no snapshot left.
    admin(&db.url, &["DELETE FROM snapshots"]);
    let app = App::start_with(config);
    assert_eq!(seen(&app, &key), after, "the same from the log alone");
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

/// Webhook subscriptions live in the store with their organisation: a node with a data
/// directory of its own that takes acme over (a failover, a move) finds them and resumes
/// delivery from the cursor the first node stored, sending none of what was delivered before.
#[test]
fn webhooks_move_with_their_organisation_to_a_node_with_another_data_directory() {
    use plaudit_store::{OrgTable, Store};
    let Some(db) = Database::new("webhooks_move_with_their_organisation") else { return };
    let (first, second) = (scratch_dir("plaudit-pg-hooks-first"), scratch_dir("plaudit-pg-hooks-second"));
    let node = |data: &std::path::Path| ServerConfig {
        data: data.to_path_buf(),
        store: Some(db.url.clone()),
        webhook_hosts: vec!["127.0.0.1".into()],
        ..ServerConfig::default()
    };
    let (url, deliveries) = crate::http::receiver(0);
    let timeout = std::time::Duration::from_secs(30);
    let ids = |body: &str| -> Vec<u64> {
        let body: Value = serde_json::from_str(body).expect("json");
        body["effects"].as_array().expect("effects").iter().filter_map(|e| e["id"].as_u64()).collect()
    };
    let (key, delivered) = {
        let app = App::start_with(node(&first));
        let key = app.key("acme").to_string();
        let (status, hook) =
            app.request("PUT", "/v1/orgs/acme/webhooks/crm", Some(&key), &json!({"url": url}).to_string());
        assert_eq!(status, 201, "{hook}");
        let batch = json!([moment("w1", "ann", "meetup")]);
        assert_eq!(app.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string()).0, 201);
        let (_, body) = deliveries.recv_timeout(timeout).expect("a delivery");
        let delivered = *ids(&body).last().expect("effects");
        // Stored before the next batch: wait for the store to say so.
        let store = plaudit_store::PgStore::open(&db.url).expect("the store");
        let acme = plaudit_core::ids::OrgId::parse("acme").expect("an id");
        let stored_cursor = || {
            let settings = store.org_records(&acme, OrgTable::Settings).expect("settings");
            let (_, bytes) = settings.into_iter().find(|(n, _)| n == "webhooks")?;
            serde_json::from_slice::<Value>(&bytes).ok()?["hooks"]["crm"]["cursor"].as_u64()
        };
        let deadline = std::time::Instant::now() + timeout;
        while stored_cursor() != Some(delivered) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(stored_cursor(), Some(delivered), "the cursor is in the store");
        (key, delivered)
    };
    assert!(!first.join("orgs/acme").exists(), "nothing of the webhooks in the first node's data directory");

    let app = App::start_with(node(&second));
    let (_, views) = app.request("GET", "/v1/orgs/acme/webhooks", Some(&key), "");
    assert_eq!((views[0]["name"].as_str(), views[0]["cursor"].as_u64()), (Some("crm"), Some(delivered)), "{views}");
    let batch = json!([moment("w2", "bob", "meetup")]);
    assert_eq!(app.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string()).0, 201);
    let (_, body) = deliveries.recv_timeout(timeout).expect("a delivery from the second node");
    assert!(ids(&body).iter().all(|&id| id > delivered), "only what was not delivered: {body}");
    assert!(body.contains("\"w2\"") && !body.contains("\"w1\""), "{body}");
    drop(app);
    let _ = std::fs::remove_dir_all(&first);
    let _ = std::fs::remove_dir_all(&second);
}
