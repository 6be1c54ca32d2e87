//! The server on the PostgreSQL store (`store = "postgres://..."`): moments taken, a restart
//! from its snapshots, a replay from the log alone, the same boards each time, and nothing of
//! the log in the data directory. Runs when `PLAUDIT_TEST_POSTGRES` names a server
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
