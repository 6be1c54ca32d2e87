//! What-if: the same records under the current and a candidate rule set, compared.

use plaudit_core::simulate::simulate;
use plaudit_sdk::Record;
use plaudit_tests::*;

const CURRENT: &str = r#"
[[rule]]
id = "answer"
match = { kind = ["answer"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[badge]]
id = "thirty"
metric = "xp"
threshold = 30

[[challenge]]
id = "daily"
window = "day"
match = { kind = ["answer"] }
goal = { moments = 3 }

[[leaderboard]]
id = "xp"
metric = "xp"
"#;

fn history() -> Vec<Record> {
    let mut r = Vec::new();
    for (i, who) in ["ann", "ann", "bob", "bob", "bob", "cid"].iter().enumerate() {
        r.push(Record::Moment(m(&format!("{i}"), who, "answer", "forum", "2026-03-02T10:00:00Z")));
    }
    r
}

#[test]
fn the_same_rules_change_nothing() {
    let d = simulate(&mut world(CURRENT), &mut world(CURRENT), history(), 4);
    assert_eq!((d.records, d.stakeholders, d.changed), (6, 3, 0));
    assert!(d.details.is_empty());
    assert_eq!(d.totals["xp"], (60, 60));
    assert_eq!(d.completions["daily"], (1, 1));
}

#[test]
fn a_richer_rule_shows_points_badges_ranks_and_completions_per_person() {
    let candidate =
        CURRENT.replace("amount = 10", "amount = 15").replace("goal = { moments = 3 }", "goal = { moments = 2 }");
    let d = simulate(&mut world(CURRENT), &mut world(&candidate), history(), 4);
    assert_eq!(d.totals["xp"], (60, 90));
    assert_eq!(d.changed, 3);
    assert_eq!(d.completions["daily"], (1, 2), "ann completes too with a goal of 2");
    let ann = d.details.iter().find(|s| s.id == "ann").expect("ann changed");
    assert_eq!(ann.currencies["xp"], (20, 30));
    assert_eq!(ann.badges["thirty"], (None, Some("x1".to_string())), "30 xp only under the candidate");
    assert_eq!(d.badges_gained, 1);
    // bob first either way; ann stays second; cid 10 -> 15 keeps third: ranks do not change
    assert_eq!(d.rank_changes, 0);
    assert_eq!(d.details[0].id, "bob", "largest change first");
}

#[test]
fn a_removed_rule_shows_losses() {
    let candidate = CURRENT.replace("threshold = 30", "threshold = 40");
    let d = simulate(&mut world(CURRENT), &mut world(&candidate), history(), 100);
    let bob = d.details.iter().find(|s| s.id == "bob").expect("bob changed");
    assert_eq!(bob.badges["thirty"], (Some("x1".to_string()), None));
    assert_eq!(d.badges_lost, 1);
    assert_eq!(d.totals["xp"], (60, 60));
}
