//! Erasure (GDPR article 17): after `DELETE /v1/orgs/{org}/stakeholders/{id}` no file of the
//! data directory holds the stakeholder's id, name or attribute values, they are on no
//! leaderboard, the others keep what they earned, a restart (a replay) gives the live state, and
//! the feed says so. A server killed with SIGKILL in the middle of an erasure, over and over,
//! comes back with it complete or not begun, and complete whenever it was acknowledged.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::app::App;
use crate::server::Server;
use plaudit_server::http::ServerConfig;
use plaudit_tests::scratch_dir;

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if std::fs::read(&path).expect("a file").windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}

/// The status of a `DELETE` of `path`, `None` if the server went away before answering.
fn delete_status(addr: &str, path: &str, key: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let head = format!(
        "DELETE {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

fn moment(id: &str, who: &str, with: Option<&str>, kind: &str) -> Value {
    let mut m = json!({"id": id, "stakeholder": who, "kind": kind, "channel": "event", "at": "2026-03-02T10:00:00Z"});
    if let Some(with) = with {
        m["counterpart"] = json!(with);
    }
    m
}

const SUBJECT: &str = "zq-erase-7e1f";
const NAME: &str = "Zelda Quux-Uniquename";
const PHONE: &str = "555-0199-UNIQ";

/// What readers see of everyone but the subject: profiles, boards, challenges.
fn others(server: &App, key: &str) -> Value {
    let get = |path: &str| server.request("GET", path, Some(key), "").1;
    let profiles: Vec<Value> = ["ann", "bob", "cy"]
        .iter()
        .map(|id| {
            let mut p = get(&format!("/v1/orgs/acme/stakeholders/{id}"));
            p.as_object_mut().map(|p| p.remove("ranks"));
            p
        })
        .collect();
    // Boards as (stakeholder, value) rows of the others: ranks move when the subject leaves.
    let boards: Vec<Value> = ["xp", "karma-weekly", "connectors"]
        .iter()
        .map(|b| {
            let page = get(&format!("/v1/orgs/acme/leaderboards/{b}"));
            let rows = page["rows"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> = rows
                .iter()
                .filter(|r| r["stakeholder"] != SUBJECT)
                .map(|r| json!([r["stakeholder"], r["value"]]))
                .collect();
            json!({"board": b, "window": page["window"], "rows": rows})
        })
        .collect();
    json!({"profiles": profiles, "boards": boards, "challenges": get("/v1/orgs/acme/challenges")})
}

#[test]
fn an_erased_stakeholder_leaves_no_byte_in_the_data_directory_and_the_others_keep_what_they_earned() {
    let data = scratch_dir("plaudit-erasure");
    let config = ServerConfig { data: data.clone(), snapshot_every: 4, ..ServerConfig::default() };
    let server = App::start_with(config.clone());
    let key = server.key("acme").to_string();
    let profile = json!({"kind": "customer", "team": "sales", "name": NAME, "attrs": {"phone": PHONE}});
    let (status, body) =
        server.request("PUT", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), &profile.to_string());
    assert!(status == 200 || status == 201, "{body}");
    let batch = json!([
        moment("e1", SUBJECT, Some("ann"), "meetup"),
        moment("e2", "ann", Some(SUBJECT), "meetup"),
        moment("e3", "bob", Some("ann"), "meetup"),
        moment("e4", SUBJECT, None, "answer"),
        moment("e5", "cy", Some(SUBJECT), "answer"),
        moment("e6", "ann", Some("bob"), "answer"),
    ]);
    let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &batch.to_string());
    assert_eq!(status, 201, "{body}");
    let scoped = json!({"name": "their own", "scope": "stakeholder", "stakeholder": SUBJECT});
    let (status, body) = server.request("POST", "/v1/orgs/acme/keys", Some(&key), &scoped.to_string());
    assert_eq!(status, 201, "{body}");
    let their_key = body["key"].as_str().expect("a key").to_string();
    // More moments, so that snapshots are taken with the subject in them.
    for i in 0..3 {
        let more = json!([
            moment(&format!("f{i}"), "bob", Some(SUBJECT), "meetup"),
            moment(&format!("g{i}"), "ann", None, "answer")
        ]);
        assert_eq!(server.request("POST", "/v1/orgs/acme/moments", Some(&key), &more.to_string()).0, 201);
    }
    let before = others(&server, &key);
    for needle in [SUBJECT, NAME, PHONE] {
        assert!(!files_holding(&data, needle).is_empty(), "{needle} is stored before the erasure");
    }

    let (status, erased) = server.request("DELETE", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), "");
    assert_eq!(status, 200, "{erased}");
    let pseudonym = erased["pseudonym"].as_str().expect("a pseudonym").to_string();
    assert!(pseudonym.starts_with("erased-"), "{erased}");
    assert_eq!((erased["records"].as_u64(), erased["keys_revoked"].as_u64()), (Some(8), Some(1)), "{erased}");

    // Nothing of them is stored; they are on no board; the others keep what they earned.
    for needle in [SUBJECT, NAME, PHONE] {
        assert_eq!(files_holding(&data, needle), Vec::<PathBuf>::new(), "{needle} after the erasure");
    }
    assert_eq!(server.request("GET", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), "").0, 404);
    assert_eq!(server.request("GET", &format!("/v1/orgs/acme/stakeholders/{pseudonym}"), Some(&key), "").0, 404);
    for path in [
        format!("/v1/orgs/acme/stakeholders/{pseudonym}/effects"),
        format!("/v1/orgs/acme/stakeholders/{SUBJECT}/export"),
    ] {
        assert_eq!(server.request("GET", &path, Some(&key), "").0, 404, "{path}");
    }
    let listing = server.request("GET", "/v1/orgs/acme/stakeholders?limit=1000", Some(&key), "").1.to_string();
    assert!(!listing.contains(SUBJECT) && !listing.contains(&pseudonym), "listed nowhere: {listing}");
    assert_eq!(
        server.request("GET", "/v1/orgs/acme/leaderboards/xp", Some(&their_key), "").0,
        401,
        "their key is revoked"
    );
    let after = others(&server, &key);
    assert_eq!(after, before, "the others' profiles, boards and challenges are as they were");
    for board in after["boards"].as_array().expect("boards") {
        let text = board.to_string();
        assert!(!text.contains(SUBJECT) && !text.contains(&pseudonym), "{text}");
    }
    // The feed tells downstream systems whom to erase, once; its other effects name the pseudonym.
    let (_, feed) = server.request("GET", "/v1/orgs/acme/effects?limit=1000", Some(&key), "");
    let items = feed["effects"].as_array().expect("effects");
    let erasures: Vec<&Value> = items.iter().filter(|e| e["type"] == "stakeholder_erased").collect();
    assert_eq!(erasures.len(), 1, "{feed}");
    assert_eq!(
        (erasures[0]["stakeholder"].as_str(), erasures[0]["pseudonym"].as_str()),
        (Some(SUBJECT), Some(pseudonym.as_str()))
    );
    assert!(items.iter().filter(|e| e["type"] != "stakeholder_erased").all(|e| e["stakeholder"] != SUBJECT), "{feed}");
    assert!(items.iter().any(|e| e["stakeholder"] == pseudonym.as_str()), "their earlier effects name the pseudonym");
    let (status, _) = server.request("DELETE", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), "");
    assert_eq!(status, 404, "erased once");
    // The organisation goes on: more moments, with the others; a what-if and an application
    // to history replay the rewritten log against the live world.
    let later = json!([moment("l1", "ann", Some("bob"), "meetup"), moment("l2", "cy", None, "answer")]);
    let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &later.to_string());
    assert_eq!(status, 201, "{body}");
    let rules = std::fs::read(plaudit_tests::repo_root().join("rules/acme.toml")).expect("acme's rules");
    let (status, _, diff) = server.send("POST", "/v1/orgs/acme/rules/simulate", Some(&key), "application/toml", &rules);
    assert_eq!(status, 200, "{diff}");
    let (_, current) = server.request("GET", "/v1/orgs/acme/rules/versions", Some(&key), "");
    let version = current["versions"].as_array().and_then(|v| v.last()).map(|v| v["version"].clone());
    let apply = json!({"mode": "additive", "version": version});
    let (status, applied) = server.request("POST", "/v1/orgs/acme/rules/apply", Some(&key), &apply.to_string());
    assert_eq!(status, 200, "{applied}");
    let (status, body) = server.request(
        "POST",
        "/v1/orgs/acme/moments",
        Some(&key),
        &json!([moment("l3", "bob", None, "answer")]).to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let live = others(&server, &key);

    // A restart replays the log: the same state, and still nothing of them anywhere.
    drop(server);
    let server = App::start_with(config);
    assert_eq!(others(&server, &key), live, "replay equals live");
    for needle in [SUBJECT, NAME, PHONE] {
        assert_eq!(files_holding(&data, needle), Vec::<PathBuf>::new(), "{needle} after a restart");
    }
    // The same id sent again is someone new.
    let again = json!([moment("h1", SUBJECT, None, "answer")]);
    assert_eq!(server.request("POST", "/v1/orgs/acme/moments", Some(&key), &again.to_string()).0, 201);
    let (status, fresh) = server.request("GET", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), "");
    assert_eq!((status, fresh["name"].as_str()), (200, None), "{fresh}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_server_killed_during_an_erasure_comes_back_with_it_complete_or_not_begun_and_complete_once_acknowledged() {
    let data = scratch_dir("plaudit-erasure-kill");
    let mut server = Server::start(&data);
    let key = server.key("acme").to_string();
    let (mut completed, mut not_begun) = (0, 0);
    for round in 0..20u64 {
        let subject = format!("zq-kill-{round}-a9c3");
        let name = format!("Kill Round {round} Uniquename");
        let profile = json!({"kind": "customer", "name": name});
        let (status, body) =
            server.request("PUT", &format!("/v1/orgs/acme/stakeholders/{subject}"), Some(&key), &profile.to_string());
        assert!(status == 200 || status == 201, "{body}");
        let batch: Vec<Value> =
            (0..5).map(|i| moment(&format!("k{round}-{i}"), &subject, Some("ann"), "meetup")).collect();
        let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &json!(batch).to_string());
        assert_eq!(status, 201, "round {round}: {body}");
        let ann_before =
            server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "").1["currencies"].clone();

        // The erasure is asked for; the server is killed after a delay that sweeps its course.
        let (addr, k, s) = (server.addr.clone(), key.clone(), subject.clone());
        let asked = std::thread::spawn(move || delete_status(&addr, &format!("/v1/orgs/acme/stakeholders/{s}"), &k));
        std::thread::sleep(std::time::Duration::from_micros(round * 1500 % 24_000));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("killed");
        let acknowledged = asked.join().expect("the request's thread") == Some(200);

        server = Server::start(&data);
        let (status, _) = server.request("GET", &format!("/v1/orgs/acme/stakeholders/{subject}"), Some(&key), "");
        let held: Vec<PathBuf> =
            [subject.as_str(), name.as_str()].iter().flat_map(|n| files_holding(&data, n)).collect();
        match status {
            404 => {
                completed += 1;
                assert_eq!(held, Vec::<PathBuf>::new(), "round {round}: erased, yet stored");
            }
            200 => {
                not_begun += 1;
                assert!(!acknowledged, "round {round}: acknowledged, yet not erased");
                assert!(!held.is_empty(), "round {round}: not erased, yet gone from the files");
            }
            other => panic!("round {round}: {other}"),
        }
        let ann = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "").1["currencies"].clone();
        assert_eq!(ann, ann_before, "round {round}: the others keep what they earned");
    }
    eprintln!("{completed} erasures complete, {not_begun} not begun after a SIGKILL");
    // The sweep of delays both interrupts erasures and lets some through.
    assert!(completed > 0, "no erasure completed in {} rounds", completed + not_begun);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn plaudit_erase_erases_from_a_data_directory_and_says_so_once() {
    let data = scratch_dir("plaudit-erasure-cli");
    let file = data.with_extension("jsonl");
    let records = [
        json!({"profile": {"id": SUBJECT, "kind": "customer", "name": NAME, "attrs": {"phone": PHONE}}}),
        moment("c1", SUBJECT, Some("ann"), "meetup"),
        moment("c2", "ann", Some(SUBJECT), "answer"),
        moment("c3", "ann", Some("bob"), "meetup"),
    ];
    std::fs::write(&file, records.iter().map(|r| format!("{r}\n")).collect::<String>()).expect("the records");
    let plaudit = |args: &[&str]| {
        std::process::Command::new(crate::plaudit_bin())
            .current_dir(plaudit_tests::repo_root())
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .expect("plaudit runs")
    };
    let file_arg = file.display().to_string();
    let out = plaudit(&["import", "--org", "acme", "--rules", "rules/acme.toml", &file_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let erase = ["erase", "--org", "acme", "--stakeholder", SUBJECT];
    let out = plaudit(&erase);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pseudonym = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(pseudonym.starts_with("erased-"), "{pseudonym}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 records of the log now name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [SUBJECT, NAME, PHONE] {
        assert_eq!(files_holding(&data, needle), Vec::<PathBuf>::new(), "{needle}");
    }
    let out = plaudit(&erase);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no stakeholder {SUBJECT:?}")));
    let _ = (std::fs::remove_dir_all(&data), std::fs::remove_file(&file));
}

#[test]
fn an_erasure_that_makes_their_profiles_alike_still_replays_to_what_was_accepted() {
    // Profiles that differed only in name or attributes, and one that only added a name to the
    // stakeholder a moment had created: all accepted live, all alike once rewritten.
    let data = scratch_dir("plaudit-erasure-alike");
    let config = ServerConfig { data: data.clone(), ..ServerConfig::default() };
    let server = App::start_with(config.clone());
    let key = server.key("acme").to_string();
    let path = format!("/v1/orgs/acme/stakeholders/{SUBJECT}");
    let post = |server: &App, body: Value| {
        let (status, body) = server.request("POST", "/v1/orgs/acme/moments", Some(&key), &body.to_string());
        assert_eq!(status, 201, "{body}");
    };
    post(&server, json!([moment("a1", SUBJECT, Some("ann"), "meetup")]));
    for profile in [json!({"name": NAME}), json!({"name": "Another Name"}), json!({"attrs": {"phone": PHONE}})] {
        let (status, body) = server.request("PUT", &path, Some(&key), &profile.to_string());
        assert!(status == 200 || status == 201, "{body}");
    }
    post(&server, json!([moment("a2", "ann", Some(SUBJECT), "answer")]));
    let (status, body) = server.request("DELETE", &path, Some(&key), "");
    assert_eq!((status, body["records"].as_u64()), (200, Some(5)), "{body}");
    // The organisation still takes writes (its world is the replay of the rewritten log)...
    post(&server, json!([moment("a3", "ann", Some("bob"), "meetup")]));
    let live = others(&server, &key);
    drop(server);
    // ...and a restart replays it to the same state.
    let server = App::start_with(config);
    assert_eq!(others(&server, &key), live);
    post(&server, json!([moment("a4", "bob", None, "answer")]));
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_erasure_right_after_an_application_to_history_is_not_in_that_applications_replay() {
    // The API fuzzer's case: moments, an application to history, an erasure at the same log
    // position. A replay rebuilds the application's history as it was when it was made,
    // without the erasure logged after it; before, it took the erasure in twice, and the
    // organisation's effects were counted one short (a panic at its next write).
    let data = scratch_dir("plaudit-erasure-after-apply");
    let config = ServerConfig { data: data.clone(), ..ServerConfig::default() };
    let server = App::start_with(config.clone());
    let key = server.key("acme").to_string();
    let post = |server: &App, id: &str, who: &str| {
        let (status, body) = server.request(
            "POST",
            "/v1/orgs/acme/moments",
            Some(&key),
            &json!([moment(id, who, None, "answer")]).to_string(),
        );
        assert_eq!(status, 201, "{body}");
    };
    post(&server, "p1", SUBJECT);
    post(&server, "p2", "ann");
    for mode in ["rebase", "additive"] {
        let apply = json!({"mode": mode, "version": 1});
        let (status, body) = server.request("POST", "/v1/orgs/acme/rules/apply", Some(&key), &apply.to_string());
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.request("DELETE", &format!("/v1/orgs/acme/stakeholders/{SUBJECT}"), Some(&key), "");
    assert_eq!(status, 200, "{body}");
    // Applications after it replay the history with it, the earlier ones without.
    for mode in ["rebase", "additive"] {
        let apply = json!({"mode": mode, "version": 1});
        let (status, body) = server.request("POST", "/v1/orgs/acme/rules/apply", Some(&key), &apply.to_string());
        assert_eq!(status, 200, "{body}");
    }
    post(&server, "p3", "bob");
    let (_, feed) = server.request("GET", "/v1/orgs/acme/effects?limit=1000", Some(&key), "");
    let live = others(&server, &key);
    drop(server);
    let server = App::start_with(config);
    assert_eq!(others(&server, &key), live, "replay equals live");
    post(&server, "p4", "cy");
    let (_, again) = server.request("GET", "/v1/orgs/acme/effects?limit=1000", Some(&key), "");
    // The feed numbers on without a gap, across the erasure and the restart.
    let ids = |feed: &Value| -> Vec<u64> {
        feed["effects"].as_array().expect("effects").iter().filter_map(|e| e["id"].as_u64()).collect()
    };
    let (before, after) = (ids(&feed), ids(&again));
    assert_eq!(after, (1..=after.len() as u64).collect::<Vec<_>>(), "{again}");
    assert!(after.starts_with(&before) && after.len() > before.len(), "{again}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_erasure_between_an_applications_replay_and_its_merge_makes_the_application_replay_again() {
    // An application to history replays the log off the organisation's thread, then merges;
    // an erasure committed in between rewrote what it replayed. Before, the merge found the
    // erased id missing from the live world and halted the organisation's writes.
    use plaudit_core::application::Mode;
    use plaudit_core::ids::OrgId;
    use plaudit_core::ruleset::Format;
    use plaudit_server::organisation::{Organisation, rebuild};
    let dir = plaudit_tests::ScratchStore::new("plaudit-erasure-mid-application");
    let acme = OrgId::parse("acme").expect("an id");
    let text = std::fs::read_to_string(plaudit_tests::repo_root().join("rules/acme.toml")).expect("acme's rules");
    let mut d = Organisation::create(dir.store(), acme.clone(), &text, Format::Toml).expect("created");
    let record = |id: &str, who: &str| {
        plaudit_sdk::Record::Moment(plaudit_tests::m(id, who, "meetup", "event", "2026-03-02T10:00:00Z"))
    };
    d.ingest(vec![record("r1", SUBJECT), record("r2", "bob")]).expect("ingests");
    for mode in [Mode::Rebase, Mode::Additive] {
        let planned = rebuild(d.rebuild_plan()).expect("replayed");
        if mode == Mode::Rebase {
            assert!(d.erase(SUBJECT).expect("erased").is_some());
        }
        d.apply_rebuilt_history(planned, mode).expect("applied, not halted");
        d.ingest(vec![record(&format!("after-{mode}"), "cy")]).expect("the organisation still takes writes");
    }
    let live = serde_json::to_string(&d.world_mut().summary(100)).expect("a summary");
    drop(d);
    let (mut replayed, _) = Organisation::open_from_start(dir.store(), acme).expect("replays");
    assert_eq!(
        serde_json::to_string(&replayed.world_mut().summary(100)).expect("a summary"),
        live,
        "replay equals live"
    );
}
