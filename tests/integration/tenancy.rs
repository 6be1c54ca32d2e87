//! One tenant never hurts another, at the server's level: organisations open independently
//! at start (a slow or damaged one holds nobody), a damaged one is reported and skipped, and
//! an unknown organisation looks exactly like a wrong key.

use std::sync::Arc;

use plaudit_core::ids::OrgId;
use plaudit_store::{Change, RedbStore, Store};
use plaudit_tests::{award_first, fixed_output_plugin, scratch_dir};
use serde_json::{Value, json};

use plaudit_server::http::ServerConfig;

use crate::app::App;
use crate::server::Server;

const ADMIN: &str = "admin-key-for-the-tenancy-tests";

fn moment(id: &str, who: &str) -> String {
    json!({"id": id, "stakeholder": who, "kind": "meetup", "channel": "event", "at": "2026-03-02T10:00:00Z"})
        .to_string()
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[test]
fn a_damaged_organisation_is_reported_and_skipped_and_the_others_are_served() {
    let data = scratch_dir("plaudit-tenancy-damaged");
    let (acme, broken_key) = {
        let server = Server::start_with(&data, Some(ADMIN));
        (server.key("acme").to_string(), "pk_broken-but-known")
    };
    // A log this build refuses (what damage or a downgrade looks like), and folders under
    // `orgs/` that name no organisation of the store.
    {
        let store = RedbStore::open(data.join("plaudit.redb")).expect("the store opens");
        let broken = OrgId::parse("broken").expect("id");
        let key = plaudit_server::http::key_hash(broken_key);
        store
            .create_org(
                &broken,
                Some(key),
                &Change::Rules { text: "[organisation\nid = ".into(), format: plaudit_core::ruleset::Format::Toml },
            )
            .expect("created");
    }
    std::fs::create_dir_all(data.join("orgs/Not An Id!")).expect("a stray folder");
    std::fs::create_dir_all(data.join("orgs/ghost")).expect("a folder of no organisation");
    std::fs::write(data.join("orgs/ghost/key.sha256"), "").expect("an empty key file");

    let server = Server::start_with(&data, Some(ADMIN));
    assert_eq!(server.request("POST", "/v1/orgs/acme/moments", Some(&acme), &moment("m1", "ann")).0, 201);
    let (status, body) = server.request("GET", "/v1/orgs/broken/challenges", Some(broken_key), "");
    assert_eq!((status, code(&body)), (503, Some("unavailable")), "{body}");
    let (status, health) = server.request("GET", "/healthz", None, "");
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    assert_eq!(health["organisations"]["unavailable"], 1, "{health}");
    assert!(health.get("detail").is_none(), "{health}");
    let (_, health) = server.request("GET", "/healthz", Some(ADMIN), "");
    let unavailable = &health["detail"]["unavailable"];
    assert_eq!(unavailable[0]["org"], "broken", "{health}");
    assert!(unavailable[0]["error"].as_str().is_some_and(|why| why.contains("rule set")), "{health}");
    // The unknown organisation and the wrong key look alike; so does a known one's wrong key.
    let (s1, b1) = server.request("GET", "/v1/orgs/ghost/challenges", Some("pk_x"), "");
    let (s2, b2) = server.request("GET", "/v1/orgs/broken/challenges", Some("pk_x"), "");
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, 401);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// A tenant whose plugin works long on every call (within its fuel, under a generous wall
/// clock) makes its own replay long, and only its own: at restart the server answers at once,
/// the other organisations are served while it is still opening (`503` with `Retry-After`),
/// and it is served once open, with everything it had.
#[test]
fn a_server_holding_a_hostile_organisation_restarts_and_serves_the_others_while_it_opens() {
    let data = scratch_dir("plaudit-tenancy-restart");
    let (acme, hostile) = {
        let server = Server::start_with(&data, Some(ADMIN));
        let (status, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &json!({"id": "hostile"}).to_string());
        assert_eq!(status, 201, "{created}");
        let key = created["key"].as_str().expect("a key").to_string();
        let rules = r#"
[organisation]
id = "hostile"
[[currency]]
id = "points"
[plugins]
fuel = 1000000000
wall_clock_ms = 20000
"#;
        let (status, _, body) =
            server.send("PUT", "/v1/orgs/hostile/rules", Some(&key), "application/toml", rules.as_bytes());
        assert_eq!(status, 200, "{body}");
        // About 0.2 s of plugin work a call, on every call.
        let wasm = fixed_output_plugin("spinner", &award_first("points", 1), Some((0, 40_000_000)));
        let (status, _, body) =
            server.send("PUT", "/v1/orgs/hostile/plugins/spinner", Some(&key), "application/wasm", &wasm);
        assert_eq!(status, 201, "{body}");
        for i in 0..12 {
            let (status, body) =
                server.request("POST", "/v1/orgs/hostile/moments", Some(&key), &moment(&format!("h{i}"), "hal"));
            assert_eq!(status, 201, "{body}");
        }
        let acme = server.key("acme").to_string();
        assert_eq!(server.request("POST", "/v1/orgs/acme/moments", Some(&acme), &moment("a1", "ann")).0, 201);
        (acme, key)
        // Killed here (SIGKILL): no snapshot on the way out, so the restart replays the log.
    };
    let server = Server::start_args_unwaited(&data, Some(ADMIN), &[]);
    // Served while the hostile organisation still opens.
    let mut served = None;
    for _ in 0..2000 {
        let (status, body) = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&acme), "");
        if status == 200 {
            served = Some(body);
            break;
        }
        assert_eq!((status, code(&body)), (503, Some("opening")), "{body}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let ann = served.expect("acme is served");
    assert_eq!(ann["currencies"]["xp"].as_i64().map(|xp| xp > 0), Some(true), "{ann}");
    let (status, head, body) =
        server.send("GET", "/v1/orgs/hostile/stakeholders/hal", Some(&hostile), "application/json", b"");
    assert_eq!((status, code(&body)), (503, Some("opening")), "acme was served first: {body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let (_, health) = server.request("GET", "/healthz", Some(ADMIN), "");
    assert_eq!(health["status"], "starting", "{health}");
    assert_eq!(health["detail"]["opening"][0]["org"], "hostile", "{health}");
    server.wait_open();
    let (status, hal) = server.request("GET", "/v1/orgs/hostile/stakeholders/hal", Some(&hostile), "");
    assert_eq!((status, hal["currencies"]["points"].as_i64()), (200, Some(12)), "{hal}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// Creating an organisation stores its key with its first rule set in one commit: after a
/// restart it is there whole, and no key file is left beside the store for a crash to tear.
#[test]
fn an_organisation_is_created_with_its_key_in_one_commit_and_served_after_a_restart() {
    let data = scratch_dir("plaudit-tenancy-create");
    let key = {
        let server = Server::start_with(&data, Some(ADMIN));
        let (status, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &json!({"id": "globex"}).to_string());
        assert_eq!(status, 201, "{created}");
        created["key"].as_str().expect("a key").to_string()
    };
    assert!(!data.join("orgs/globex/key.sha256").exists(), "the key is in the store");
    {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(data.join("plaudit.redb")).expect("opens"));
        let globex = OrgId::parse("globex").expect("id");
        assert_eq!(store.org_key(&globex).expect("read"), Some(plaudit_server::http::key_hash(&key)));
    }
    let server = Server::start_with(&data, None);
    assert_eq!(server.request("GET", "/v1/orgs/globex/challenges", Some(&key), "").0, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// More plugin calls at once than the engine has instance slots: every one succeeds (a call
/// waits for a free slot instead of failing), so one organisation's what-ifs or load never
/// makes another's plugin fail.
#[test]
fn more_plugin_calls_at_once_than_instance_slots_all_succeed() {
    use plaudit_core::plugins::{Limits, PluginHost};
    use plaudit_sandbox::POOL_SLOTS;
    let host = PluginHost::shared(&Limits::default()).expect("the sandbox starts");
    // A little work on every call, so that the calls overlap.
    let wasm = fixed_output_plugin("busy", &plaudit_sdk::plugin::wire::Output::default(), Some((0, 200_000)));
    let plugin = Arc::new(plaudit_core::plugins::load(&host, "busy", &wasm, Limits::default()).expect("loads"));
    let threads: Vec<_> = (0..POOL_SLOTS as usize + 44)
        .map(|_| {
            let plugin = Arc::clone(&plugin);
            std::thread::spawn(move || plugin.plugin().call(&[0x93, 0x90, 0x90, 0x90], &[]).map(|_| ()))
        })
        .collect();
    let failures: Vec<String> =
        threads.into_iter().filter_map(|t| t.join().expect("joins").err()).map(|e| e.to_string()).collect();
    assert!(failures.is_empty(), "{} calls failed: {:?}", failures.len(), failures.first());
}

/// A tenant's what-ifs are queued: one runs, a few wait, the rest are refused `429` with
/// `Retry-After`; another organisation keeps scoring meanwhile. (Its plugin works about half a
/// second a call, so that a what-if lasts long enough for the others to arrive while it runs.)
#[test]
fn what_ifs_are_queued_per_organisation_and_refused_past_the_queue() {
    let data = scratch_dir("plaudit-tenancy-what-ifs");
    let server =
        App::start_with(ServerConfig { data: data.clone(), admin_key: Some(ADMIN.into()), ..ServerConfig::default() });
    let riverside = server.key("riverside").to_string();
    let (_, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &json!({"id": "slow"}).to_string());
    let key = created["key"].as_str().expect("a key").to_string();
    let rules = "[organisation]\nid = \"slow\"\n[[currency]]\nid = \"points\"\n[plugins]\nfuel = 1000000000\nwall_clock_ms = 20000\n";
    assert_eq!(server.send("PUT", "/v1/orgs/slow/rules", Some(&key), "application/toml", rules.as_bytes()).0, 200);
    let wasm = fixed_output_plugin("spinner", &award_first("points", 1), Some((0, 100_000_000)));
    assert_eq!(server.send("PUT", "/v1/orgs/slow/plugins/spinner", Some(&key), "application/wasm", &wasm).0, 201);
    let batch: Vec<Value> = (0..600)
        .map(|i| json!({"id": format!("w{i}"), "stakeholder": format!("s{}", i % 97), "kind": "meetup", "channel": "event", "at": "2026-03-02T10:00:00Z"}))
        .collect();
    let (status, _) = server.request("POST", "/v1/orgs/slow/moments", Some(&key), &Value::Array(batch).to_string());
    assert_eq!(status, 201);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..12)
            .map(|_| {
                let (server, key) = (&server, &key);
                s.spawn(move || {
                    let toml = "application/toml";
                    let (status, head, body) =
                        server.send("POST", "/v1/orgs/slow/rules/simulate", Some(key), toml, rules.as_bytes());
                    (status, format!("{head}\n{body}"))
                })
            })
            .collect();
        // Meanwhile another organisation scores.
        let (status, body) =
            server.request("POST", "/v1/orgs/riverside/moments", Some(&riverside), &moment("r1", "ann"));
        assert_eq!(status, 201, "{body}");
        asks.into_iter().map(|a| a.join().expect("joins")).collect()
    });
    let refused: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s == 429).collect();
    let done = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(done + refused.len(), 12, "each what-if ran or was refused: {answers:?}");
    assert!(done >= 5 && !refused.is_empty(), "one ran and four waited; the others were refused: {done} done");
    for (_, text) in &refused {
        assert!(text.contains("retry-after: 5") && text.contains("too_many_jobs"), "{text}");
    }
    let (_, _, metrics) = server.send("GET", "/metrics", None, "text/plain", b"");
    let refused_total = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("plaudit_jobs_refused_total{reason=\"queue_full\"} "))
        .and_then(|v| v.parse::<usize>().ok());
    assert_eq!(refused_total, Some(refused.len()));
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

/// A tenant cannot install more plugins than its limit, nor raise its module limit past the
/// ceiling; an upload up to the ceiling reaches the module check (not the body limit), and a
/// plugin's long error text and manifest are cut or refused rather than kept whole.
#[test]
fn plugin_counts_sizes_and_texts_are_bounded() {
    use plaudit_sdk::plugin::wire::Output;
    let data = scratch_dir("plaudit-tenancy-plugins");
    let server =
        App::start_with(ServerConfig { data: data.clone(), admin_key: Some(ADMIN.into()), ..ServerConfig::default() });
    let (_, created) = server.request("POST", "/v1/orgs", Some(ADMIN), &json!({"id": "lots"}).to_string());
    let key = created["key"].as_str().expect("a key").to_string();
    let put_rules = |plugins: &str| {
        let rules = format!("[organisation]\nid = \"lots\"\n[[currency]]\nid = \"points\"\n[plugins]\n{plugins}\n");
        server.send("PUT", "/v1/orgs/lots/rules", Some(&key), "application/toml", rules.as_bytes())
    };
    let (status, _, body) = put_rules("module_kb = 5000");
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("plugins.module_kb")), "{body}");
    let (status, _, body) = put_rules("installed = 33");
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("plugins.installed")), "{body}");
    assert_eq!(put_rules("installed = 2\nmodule_kb = 4096").0, 200);
    let put = |name: &str, wasm: &[u8]| {
        server.send("PUT", &format!("/v1/orgs/lots/plugins/{name}"), Some(&key), "application/wasm", wasm)
    };
    let quiet = fixed_output_plugin("quiet", &Output::default(), None);
    assert_eq!(put("one", &quiet).0, 201);
    assert_eq!(put("two", &quiet).0, 201);
    let (status, _, body) = put("three", &quiet);
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_plugin")), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("installed")), "{body}");
    assert_eq!(put("one", &quiet).0, 200, "replacing one is no new install");
    // A module of 4 MB and a bit is no body-limit 413: the module check refuses it, saying why.
    let mut big = quiet.clone();
    big.resize(4 * 1024 * 1024 + 10, 0);
    let (status, _, body) = put("big", &big);
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("limit")), "{body}");
    // A manifest of 9 kB of name is refused.
    let long_name = fixed_output_plugin(&"n".repeat(9000), &Output::default(), None);
    assert_eq!(put("two", &long_name).0, 422);
    // An error text of 19 kB is kept cut to 1 KiB.
    let loud = fixed_output_plugin("loud", &Output { error: Some("e".repeat(19_000)), ..Output::default() }, None);
    assert_eq!(put("two", &loud).0, 200);
    let (status, _) = server.request("POST", "/v1/orgs/lots/moments", Some(&key), &moment("m1", "ann"));
    assert_eq!(status, 201);
    let (_, status) = server.request("GET", "/v1/orgs/lots/plugins/two", Some(&key), "");
    let reason = status["last_failure"]["reason"].as_str().expect("a failure");
    assert!(reason.len() <= 1024 && reason.ends_with('…'), "{} bytes", reason.len());
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
