//! The stakeholders' listing and a stakeholder's history over HTTP: filters and paging, the
//! history newest first with what gave each gain (longer than the effects feed keeps), CSV,
//! errors, another organisation's key, and the same answers after a restart replays the log.

use plaudit_server::http::ServerConfig;
use serde_json::{Value, json};

use crate::app::App;
use plaudit_tests::scratch_dir;

fn profile(id: &str, kind: &str, team: &str) -> Value {
    json!({"profile": {"id": id, "kind": kind, "team": team}})
}

fn shift(id: &str, who: &str, day: u32, hours: u32) -> Value {
    json!({"id": id, "stakeholder": who, "kind": "shift", "channel": "library",
           "at": format!("2026-03-{day:02}T15:00:00Z"), "value": hours})
}

/// Riverside with ann, bob (community, team red) and sam (employee, team blue); ann works 12
/// one-hour shifts on 12 days, bob one shift of 3 hours; ann's 3rd shift is retracted.
fn riverside(server: &App, key: &str) {
    let mut records = vec![
        profile("ann", "community", "red"),
        profile("bob", "community", "red"),
        profile("sam", "employee", "blue"),
    ];
    records.extend((1..=12).map(|d| shift(&format!("a{d}"), "ann", d, 1)));
    records.push(shift("b1", "bob", 2, 3));
    records.push(json!({"retract": "a3"}));
    let (status, body) =
        server.request("POST", "/v1/orgs/riverside/moments", Some(key), &Value::Array(records).to_string());
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_history_is_every_gain_newest_first_with_its_rule_and_outlives_the_feed_and_a_restart() {
    let data = scratch_dir("plaudit-people-history");
    // A feed of 5 effects: the history reads the ledger, not the feed.
    let config = || ServerConfig { data: data.clone(), effects_kept: 5, ..ServerConfig::default() };
    let server = App::start_with(config());
    let key = server.key("riverside").to_string();
    riverside(&server, &key);
    let get = |server: &App, path: &str| server.request("GET", &format!("/v1/orgs/riverside/{path}"), Some(&key), "");

    // ann: 12 shifts of 1 hour (rule `shift`); the first reaches level Helper, the 10th earns
    // `dedicated` bronze (at 10 hours). The retraction of a3 afterwards takes its hour back
    // (a10's badge stays: a3 did not grant it). Newest first; within a moment, the latest first.
    let (status, page) = get(&server, "stakeholders/ann/effects?limit=3");
    assert_eq!(status, 200, "{page}");
    let rows = page["effects"].as_array().expect("effects");
    let brief: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let what = match r["type"].as_str() {
                Some("points_awarded") => format!("{} {}", r["amount"], r["currency"].as_str().unwrap_or("")),
                Some("badge_earned") => format!("{} {}", r["badge"].as_str().unwrap_or(""), r["tier"]),
                other => format!("{other:?}"),
            };
            (r["moment"].as_str().unwrap_or("").to_string(), what, r["source"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let s = |m: &str, w: &str, src: &str| (m.to_string(), w.to_string(), src.to_string());
    assert_eq!(
        brief,
        [s("a12", "1 hours", "shift"), s("a11", "1 hours", "shift"), s("a10", "dedicated \"bronze\"", "dedicated")]
    );
    assert_eq!(rows[0]["description"], "A volunteer shift: hours from the moment's value", "{page}");
    assert_eq!(rows[0]["source_type"], "rule");
    assert_eq!(rows[2]["description"], "Dedicated volunteer", "a badge is described by its name");
    assert_eq!(
        (rows[0]["at"].as_str(), rows[0]["moment_kind"].as_str()),
        (Some("2026-03-12T15:00:00Z"), Some("shift"))
    );

    // Page by page to the end: every shift is there, the retracted one marked.
    let mut all = rows.clone();
    let mut next = page["next"].as_str().map(str::to_string);
    while let Some(after) = next {
        let (status, page) = get(&server, &format!("stakeholders/ann/effects?limit=3&after={after}"));
        assert_eq!(status, 200, "{page}");
        all.extend(page["effects"].as_array().cloned().unwrap_or_default());
        next = page["next"].as_str().map(str::to_string);
    }
    let moments: Vec<&str> =
        all.iter().filter(|r| r["type"] == "points_awarded").filter_map(|r| r["moment"].as_str()).collect();
    let expected: Vec<String> = (1..=12).rev().map(|d| format!("a{d}")).collect();
    assert_eq!(moments, expected, "every shift, more than the feed's 5 effects");
    // a1's gains, newest first: the level its hour reached, then the hour.
    let level = &all[all.len() - 2];
    assert_eq!(
        (level["type"].as_str(), level["level"].as_str(), level["moment"].as_str()),
        (Some("level_reached"), Some("Helper"), Some("a1"))
    );
    let retracted: Vec<&str> =
        all.iter().filter(|r| r["retracted"] == true).filter_map(|r| r["moment"].as_str()).collect();
    assert_eq!(retracted, ["a3"]);
    let (_, whole) = get(&server, "stakeholders/ann/effects?limit=1000");
    assert_eq!(whole["effects"].as_array().map(Vec::len), Some(14), "12 hours, a level, a badge");
    assert!(whole["next"].is_null(), "{whole}");

    // CSV: a header and a record per entry.
    let csv = csv_get(&server, &key, "/v1/orgs/riverside/stakeholders/ann/effects?limit=2");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("moment,at,moment_kind,retracted,type,currency,amount"), "{csv}");
    assert!(lines[2].starts_with("a11,2026-03-11T15:00:00Z,shift,false,points_awarded,hours,1,"), "{csv}");

    // The same after a restart, which replays the log (or restores a snapshot).
    drop(server);
    let server = App::start_with(config());
    assert_eq!(get(&server, "stakeholders/ann/effects?limit=1000").1, whole);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

fn csv_get(server: &App, key: &str, path: &str) -> String {
    let (status, head, body) = server.send_with("GET", path, Some(key), &[("accept", "text/csv")], b"");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: text/csv"), "{head}");
    body.as_str().map(str::to_string).unwrap_or_default()
}

#[test]
fn stakeholders_are_listed_by_team_and_kind_page_by_page() {
    let data = scratch_dir("plaudit-people-listing");
    let server = App::start(&data);
    let key = server.key("riverside").to_string();
    riverside(&server, &key);
    let get = |path: &str| server.request("GET", &format!("/v1/orgs/riverside/{path}"), Some(&key), "");

    let (status, page) = get("stakeholders?team=red&limit=1");
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["total"].as_u64(), page["next"].as_str()), (Some(2), Some("ann")), "{page}");
    let ann = &page["stakeholders"][0];
    // 11 hours kept (12 shifts, one retracted): level Helper (Regular is at 25).
    assert_eq!(
        (ann["stakeholder"].as_str(), ann["kind"].as_str(), ann["currencies"]["hours"].as_i64(), ann["level"].as_str()),
        (Some("ann"), Some("community"), Some(11), Some("Helper")),
        "{page}"
    );
    let (_, second) = get("stakeholders?team=red&limit=1&after=ann");
    assert_eq!(second["stakeholders"][0]["stakeholder"], "bob");
    assert!(second["next"].is_null(), "{second}");
    let (_, staff) = get("stakeholders?kind=employee");
    assert_eq!((staff["total"].as_u64(), staff["stakeholders"][0]["stakeholder"].as_str()), (Some(1), Some("sam")));
    let (_, nobody) = get("stakeholders?team=green");
    assert_eq!((nobody["total"].as_u64(), nobody["stakeholders"].as_array().map(Vec::len)), (Some(0), Some(0)));

    let csv = csv_get(&server, &key, "/v1/orgs/riverside/stakeholders?team=red");
    assert_eq!(
        csv,
        "stakeholder,name,kind,team,level,hours,thanks\r\nann,,community,red,Helper,11,0\r\nbob,,community,red,Helper,3,0\r\n"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn people_reads_name_what_is_wrong_and_refuse_another_organisations_key() {
    let data = scratch_dir("plaudit-people-errors");
    let server = App::start(&data);
    let key = server.key("riverside").to_string();
    riverside(&server, &key);
    let get = |path: &str, key: &str| server.request("GET", &format!("/v1/orgs/riverside/{path}"), Some(key), "");
    for (path, field) in [
        ("stakeholders?limit=0", "limit"),
        ("stakeholders?limit=1001", "limit"),
        ("stakeholders?after=nobody", "after"),
        ("stakeholders?colour=red", "colour"),
        ("stakeholders/ann/effects?after=12", "after"),
        ("stakeholders/ann/effects?limit=many", "limit"),
    ] {
        let (status, err) = get(path, &key);
        assert_eq!(
            (status, err["error"]["code"].as_str(), err["error"]["field"].as_str()),
            (400, Some("invalid_query"), Some(field)),
            "{path}: {err}"
        );
    }
    let (status, err) = get("stakeholders/zed/effects", &key);
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_found")), "{err}");
    let acme = server.key("acme").to_string();
    for path in ["stakeholders", "stakeholders/ann/effects"] {
        let (status, err) = get(path, &acme);
        assert_eq!(status, 401, "{path}: {err}");
    }
    let (status, _, _) =
        server.send_with("GET", "/v1/orgs/riverside/stakeholders", Some(&key), &[("accept", "application/xml")], b"");
    assert_eq!(status, 406);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_export_holds_every_record_naming_the_stakeholder_their_gains_and_state_over_http_and_the_cli() {
    let data = scratch_dir("plaudit-people-export");
    let server = App::start(&data);
    let key = server.key("acme").to_string();
    let records = json!([
        {"profile": {"id": "ann", "kind": "employee", "team": "sales", "name": "Ann Exportable"}},
        {"id": "x1", "stakeholder": "ann", "counterpart": "bob", "kind": "meetup", "channel": "event", "at": "2026-03-02T10:00:00Z"},
        {"id": "x2", "stakeholder": "bob", "counterpart": "ann", "kind": "answer", "channel": "forum", "at": "2026-03-02T11:00:00Z"},
        {"id": "x3", "stakeholder": "carl", "counterpart": "dave", "kind": "answer", "channel": "forum", "at": "2026-03-02T12:00:00Z"},
        {"id": "x4", "stakeholder": "ann", "kind": "referral", "channel": "email", "at": "2026-03-03T09:00:00Z"},
        {"retract": "x4", "reason": "a test"},
        {"retract": "x3"}
    ]);
    assert_eq!(server.request("POST", "/v1/orgs/acme/moments", Some(&key), &records.to_string()).0, 201);

    let (status, head, export) = server.send_with("GET", "/v1/orgs/acme/stakeholders/ann/export", Some(&key), &[], b"");
    assert_eq!(status, 200, "{export}");
    assert!(head.contains("content-disposition: attachment; filename=\"acme-ann.json\""), "{head}");
    let got: Vec<(&str, &str, Option<bool>)> = export["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let what = r["record"]["id"].as_str().or(r["record"]["retract"].as_str()).unwrap_or("profile");
            (r["role"].as_str().unwrap_or(""), what, r["retracted"].as_bool())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("profile", "profile", None),
            ("actor", "x1", Some(false)),
            ("counterpart", "x2", Some(false)),
            ("actor", "x4", Some(true)),
            ("retraction", "x4", None),
        ],
        "every record naming ann, and nothing of carl's and dave's"
    );
    assert_eq!(export["records"][0]["record"]["profile"]["name"], "Ann Exportable");
    let (_, profile) = server.request("GET", "/v1/orgs/acme/stakeholders/ann", Some(&key), "");
    assert_eq!(export["profile"], profile, "the current state");
    let (_, history) = server.request("GET", "/v1/orgs/acme/stakeholders/ann/effects?limit=1000", Some(&key), "");
    assert_eq!(export["effects"], history["effects"], "every gain, with what gave it");
    assert!(!history["effects"].as_array().expect("effects").is_empty());

    // Ann's own key may export her; bob's may not; nobody is not found.
    let key_of = |who: &str| {
        let body = json!({"name": who, "scope": "stakeholder", "stakeholder": who}).to_string();
        server.request("POST", "/v1/orgs/acme/keys", Some(&key), &body).1["key"].as_str().expect("key").to_string()
    };
    let (ann, bob) = (key_of("ann"), key_of("bob"));
    assert_eq!(server.request("GET", "/v1/orgs/acme/stakeholders/ann/export", Some(&ann), "").0, 200);
    assert_eq!(server.request("GET", "/v1/orgs/acme/stakeholders/ann/export", Some(&bob), "").0, 403);
    assert_eq!(server.request("GET", "/v1/orgs/acme/stakeholders/nobody/export", Some(&key), "").0, 404);
    drop(server);

    // The command line gives the same document from the data directory.
    let out = std::process::Command::new(crate::plaudit_bin())
        .args(["export", "--org", "acme", "--stakeholder", "ann", "--data"])
        .arg(&data)
        .output()
        .expect("plaudit export runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(from_cli, export);
    let out = std::process::Command::new(crate::plaudit_bin())
        .args(["export", "--org", "acme", "--stakeholder", "nobody", "--data"])
        .arg(&data)
        .output()
        .expect("plaudit export runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stakeholder \"nobody\""));
    let _ = std::fs::remove_dir_all(&data);
}
