//! Team boards over HTTP: a rule set publishing `[[leaderboard]]`s with `teams = "sum"` and
//! `teams = "average"`, their pages (team rows, `around` a team), the errors, a retraction, and
//! the same pages after a restart replays the log.

use serde_json::{Value, json};

use crate::app::App;
use plaudit_tests::scratch_dir;

const TEAM_BOARDS: &str = r#"
[[leaderboard]]
id = "team-hours"
name = "Hours by team"
metric = "hours"
teams = "sum"

[[leaderboard]]
id = "team-hours-average"
metric = "hours"
teams = "average"
ties = "dense"
"#;

fn riverside_with_team_boards() -> String {
    let text = std::fs::read_to_string(plaudit_tests::repo_root().join("rules/riverside.toml")).expect("riverside");
    format!("{text}\n{TEAM_BOARDS}")
}

fn shift(id: &str, who: &str, hours: u32) -> Value {
    json!({"id": id, "stakeholder": who, "kind": "shift", "channel": "library", "at": "2026-03-02T15:00:00Z", "value": hours})
}

fn profile(id: &str, team: Option<&str>) -> Value {
    match team {
        Some(team) => json!({"profile": {"id": id, "kind": "community", "team": team}}),
        None => json!({"profile": {"id": id, "kind": "community"}}),
    }
}

/// The page's rows as (rank, team, value, members).
fn team_rows(page: &Value) -> Vec<(u64, String, i64, u64)> {
    let rows = page["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            assert!(r.get("stakeholder").is_none(), "{r}");
            let text = r["team"].as_str().unwrap_or_default().to_string();
            (
                r["rank"].as_u64().unwrap_or(0),
                text,
                r["value"].as_i64().unwrap_or(0),
                r["members"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn expect(rows: &[(u64, &str, i64, u64)]) -> Vec<(u64, String, i64, u64)> {
    rows.iter().map(|(r, t, v, n)| (*r, t.to_string(), *v, *n)).collect()
}

#[test]
fn team_boards_rank_teams_over_http_and_survive_a_restart() {
    let data = scratch_dir("plaudit-team-boards");
    let server = App::start(&data);
    let key = server.key("riverside").to_string();
    let get = |server: &App, query: &str| {
        server.request("GET", &format!("/v1/orgs/riverside/leaderboards/{query}"), Some(&key), "")
    };

    // A syntax error in the new field names its path; nothing is published.
    let bad = riverside_with_team_boards().replace("teams = \"sum\"", "teams = \"median\"");
    let (status, _, err) =
        server.send("PUT", "/v1/orgs/riverside/rules", Some(&key), "application/toml", bad.as_bytes());
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_rules")), "{err}");
    assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("leaderboard[2].teams")), "{err}");
    let text = riverside_with_team_boards();
    let (status, _, published) =
        server.send("PUT", "/v1/orgs/riverside/rules", Some(&key), "application/toml", text.as_bytes());
    assert_eq!(status, 200, "{published}");

    // red: ann 8 + bob 3; blue: cat 5 + dan 4 (+ eve, who has no hours); zed has no team.
    let mut records: Vec<Value> =
        [("ann", Some("red")), ("bob", Some("red")), ("cat", Some("blue")), ("dan", Some("blue"))]
            .iter()
            .chain(&[("eve", Some("blue")), ("zed", None)])
            .map(|(id, team)| profile(id, *team))
            .collect();
    records.extend([
        shift("s1", "ann", 8),
        shift("s2", "bob", 3),
        shift("s3", "cat", 5),
        shift("s4", "dan", 4),
        shift("s5", "zed", 12),
    ]);
    let (status, body) =
        server.request("POST", "/v1/orgs/riverside/moments", Some(&key), &Value::Array(records).to_string());
    assert_eq!(status, 201, "{body}");

    let (status, page) = get(&server, "team-hours?limit=10");
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["teams"].as_str(), page["total"].as_u64()), (Some("sum"), Some(2)), "{page}");
    assert_eq!(team_rows(&page), expect(&[(1, "red", 11, 2), (2, "blue", 9, 2)]));
    // The average: red 11 / 2 = 5.5 -> 6, blue 9 / 2 = 4.5 -> 5 (eve has no hours: not a member).
    let (_, average) = get(&server, "team-hours-average");
    assert_eq!(team_rows(&average), expect(&[(1, "red", 6, 2), (2, "blue", 5, 2)]));
    // Around a team; paging.
    let (_, around) = get(&server, "team-hours?around=blue&limit=1");
    assert_eq!(team_rows(&around), expect(&[(2, "blue", 9, 2)]));
    let (_, second) = get(&server, "team-hours?offset=1&limit=5");
    assert_eq!(team_rows(&second), expect(&[(2, "blue", 9, 2)]));
    // A stakeholder board keeps its rows.
    let (_, hours) = get(&server, "hours?limit=1");
    assert_eq!(hours["rows"][0], json!({"rank": 1, "stakeholder": "zed", "value": 12}), "{hours}");
    assert!(hours.get("teams").is_none(), "{hours}");

    // Errors: a team that is not on the board, a per-team ranking of a team board.
    let (status, err) = get(&server, "team-hours?around=green");
    assert_eq!((status, err["error"]["field"].as_str()), (404, Some("around")), "{err}");
    let (status, err) = get(&server, "team-hours?team=red");
    assert_eq!(
        (status, err["error"]["code"].as_str(), err["error"]["field"].as_str()),
        (400, Some("invalid_query"), Some("team")),
        "{err}"
    );

    // A retraction lowers the team's value: ann's 8 hours go, red falls below blue.
    let (status, body) =
        server.request("POST", "/v1/orgs/riverside/moments", Some(&key), &json!({"retract": "s1"}).to_string());
    assert_eq!(status, 201, "{body}");
    let (_, page) = get(&server, "team-hours?limit=10");
    assert_eq!(team_rows(&page), expect(&[(1, "blue", 9, 2), (2, "red", 3, 1)]));
    let before = (page, get(&server, "team-hours-average").1);
    drop(server);

    // Replayed from the log (rule-set publication included), the pages are the same.
    let server = App::start(&data);
    assert_eq!((get(&server, "team-hours?limit=10").1, get(&server, "team-hours-average").1), before);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
