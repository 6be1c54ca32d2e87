//! One moment dated far in the future captures no windowed state. Moments are scored no later
//! than a little after the instant the server received them (`bounds::FUTURE_SLACK`), which the
//! log keeps with them, so that one outlier does not move the weekly boards, a streak, a
//! challenge window or the guard's gaps to its date for good, and a replay dates it the same.

use std::sync::Arc;

use plaudit_core::ids::OrgId;
use plaudit_core::reads::PageQuery;
use plaudit_core::ruleset::Format;
use plaudit_sdk::Record;
use plaudit_server::organisation::Organisation;
use plaudit_store::{RedbStore, Store};
use plaudit_tests::*;

const RULES: &str = r#"
[[rule]]
id = "meetup"
match = { kind = ["meetup"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[streak]]
id = "daily"
period = "day"
match = { kind = ["meetup"] }

[[leaderboard]]
id = "weekly"
name = "This week"
metric = "xp"
window = "week"
"#;

/// The server's clock in this test: Wednesday 2026-03-04, 12:00 UTC (Unix milliseconds).
fn wednesday_noon() -> i64 {
    1_772_625_600_000
}

fn weekly(d: &mut Organisation) -> Vec<(String, i64)> {
    let q = PageQuery { team: None, around: None, offset: 0, limit: 10 };
    let page = d.world_mut().leaderboard("weekly", &q).expect("the board");
    page.rows.stakeholders().iter().map(|r| (r.stakeholder.clone(), r.value)).collect()
}

#[test]
fn a_moment_dated_in_2999_counts_as_of_now_and_current_moments_still_show_on_the_weekly_board() {
    let dir = scratch_dir("plaudit-outliers");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("plaudit.redb")).expect("store"));
    let org = OrgId::parse("test").expect("id");
    let mut d = Organisation::create(Arc::clone(&store), org.clone(), &format!("{HEADER}\n{RULES}"), Format::Toml)
        .expect("created");
    d.set_clock(wednesday_noon);
    let outlier = m("far", "zed", "meetup", "event", "2999-01-01T00:00:00Z");
    d.ingest(vec![Record::Moment(outlier)]).expect("ingests");
    let current: Vec<Record> = (0..3)
        .map(|i| Record::Moment(m(&format!("now{i}"), "ann", "meetup", "event", &format!("2026-03-04T11:0{i}:00Z"))))
        .collect();
    d.ingest(current).expect("ingests");
    let board = weekly(&mut d);
    assert_eq!(board, vec![("ann".to_string(), 30), ("zed".to_string(), 10)], "both in this week's board");
    // The outlier's actor scores today's moments as current ones, not as late ones.
    d.ingest(vec![Record::Moment(m("zed-now", "zed", "meetup", "event", "2026-03-04T11:30:00Z"))]).expect("ingests");
    let zed = d.world_mut().profile("zed").expect("zed");
    assert_eq!(zed.currencies.get("xp"), Some(&20));
    assert_eq!(weekly(&mut d)[0], ("ann".to_string(), 30));
    assert!(weekly(&mut d).contains(&("zed".to_string(), 20)), "the late-looking moment counted: {:?}", weekly(&mut d));
    let live = serde_json::to_string(&d.world_mut().summary(10)).expect("summary");
    drop(d);
    let (mut replayed, _) = Organisation::open_from_start(store, org).expect("replays");
    assert_eq!(serde_json::to_string(&replayed.world_mut().summary(10)).expect("summary"), live, "dated the same");
    drop(replayed);
    let _ = std::fs::remove_dir_all(&dir);
}
