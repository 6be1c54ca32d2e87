//! Streaks by day and by week in the organisation's time zone, across DST, with grace.

use plaudit_sdk::EffectKind;
use plaudit_tests::*;

fn lengths(fx: &[plaudit_sdk::Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match &e.kind {
            EffectKind::StreakExtended { length, .. } => Some(format!("{}+{length}", e.moment)),
            EffectKind::StreakBroken { length, .. } => Some(format!("{}x{length}", e.moment)),
            _ => None,
        })
        .collect()
}

#[test]
fn daily_streak_counts_local_days_across_the_dst_change() {
    let mut w = world("[[streak]]\nid = \"daily\"\nperiod = \"day\"\n");
    let fx = score(
        &mut w,
        vec![
            // 28 March, 23:30 local (CET, UTC+1)
            m("a", "ann", "post", "forum", "2026-03-28T22:30:00Z"),
            // 29 March, 00:30 local: the next local day although only an hour later
            m("b", "ann", "post", "forum", "2026-03-28T23:30:00Z"),
            // 29 March, 23:30 local (CEST, UTC+2): still the 29th
            m("c", "ann", "post", "forum", "2026-03-29T21:30:00Z"),
            // 30 March, 00:30 local
            m("d", "ann", "post", "forum", "2026-03-29T22:30:00Z"),
        ],
    );
    assert_eq!(lengths(&fx), ["a+1", "b+2", "d+3"]);
}

#[test]
fn missing_a_day_breaks_the_streak_unless_grace_covers_it() {
    let moments = || {
        vec![
            m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("2", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
            m("3", "ann", "post", "forum", "2026-03-05T10:00:00Z"),
            m("4", "ann", "post", "forum", "2026-03-08T10:00:00Z"),
        ]
    };
    let fx = score(&mut world("[[streak]]\nid = \"daily\"\nperiod = \"day\"\n"), moments());
    assert_eq!(lengths(&fx), ["1+1", "2+2", "3x2", "3+1", "4x1", "4+1"]);
    let fx = score(&mut world("[[streak]]\nid = \"daily\"\nperiod = \"day\"\ngrace = 1\n"), moments());
    assert_eq!(lengths(&fx), ["1+1", "2+2", "3+3", "4x3", "4+1"]);
}

#[test]
fn weekly_streak_runs_monday_to_sunday_in_local_time() {
    let mut w = world("[[streak]]\nid = \"weekly\"\nperiod = \"week\"\nmatch = { kind = [\"answer\"] }\n");
    let fx = score(
        &mut w,
        vec![
            // Sunday 8 March 23:59 local, then Monday 9 March 00:00 local: consecutive weeks
            m("sun", "ann", "answer", "forum", "2026-03-08T22:59:00Z"),
            m("mon", "ann", "answer", "forum", "2026-03-08T23:00:00Z"),
            m("post", "ann", "post", "forum", "2026-03-17T10:00:00Z"),
            m("next", "ann", "answer", "forum", "2026-03-16T10:00:00Z"),
        ],
    );
    assert_eq!(lengths(&fx), ["sun+1", "mon+2", "next+3"]);
    let p = w.profile("ann").expect("ann");
    assert_eq!((p.streaks[0].length, p.streaks[0].best, p.streaks[0].last.as_str()), (3, 3, "2026-03-16"));
}

#[test]
fn late_moments_of_an_earlier_period_do_not_touch_the_streak() {
    let mut w = world("[[streak]]\nid = \"daily\"\nperiod = \"day\"\n");
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "post", "forum", "2026-03-05T10:00:00Z"),
            m("late", "ann", "post", "forum", "2026-03-01T10:00:00Z"),
        ],
    );
    assert_eq!(lengths(&fx), ["1+1"]);
}

#[test]
fn a_lapsed_streak_reads_as_broken_before_the_persons_next_moment_and_keeps_its_best() {
    let mut w = world("[[streak]]\nid = \"daily\"\nperiod = \"day\"\ngrace = 1\n");
    score(
        &mut w,
        vec![
            m("a1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("a2", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
            m("a3", "ann", "post", "forum", "2026-03-04T10:00:00Z"),
        ],
    );
    let run = |w: &mut plaudit_core::OrgWorld| {
        let p = w.profile("ann").expect("ann");
        (p.streaks[0].length, p.streaks[0].best)
    };
    assert_eq!(run(&mut w), (3, 3));
    // The organisation's clock is its latest moment: bob's. One day missed is within the grace.
    score(&mut w, vec![m("b1", "bob", "post", "forum", "2026-03-06T10:00:00Z")]);
    assert_eq!(run(&mut w), (3, 3), "5 March missed, grace 1: still running on the 6th");
    // Two days missed: ann's next moment would break it, so it reads broken now.
    score(&mut w, vec![m("b2", "bob", "post", "forum", "2026-03-07T10:00:00Z")]);
    assert_eq!(run(&mut w), (0, 3), "lapsed as of the 7th; the best stays");
    // Her next moment starts a new run (and says the old one broke), as before.
    let fx = score(&mut w, vec![m("a4", "ann", "post", "forum", "2026-03-07T12:00:00Z")]);
    assert_eq!(lengths(&fx), ["a4x3", "a4+1"]);
    assert_eq!(run(&mut w), (1, 3));
}

#[test]
fn a_lapsed_streak_leaves_its_board_as_the_clock_passes_and_a_replay_agrees() {
    let rules = "[[streak]]\nid = \"daily\"\nperiod = \"day\"\n\n[[leaderboard]]\nid = \"runs\"\nmetric = \"daily\"\n";
    let moments = [
        vec![
            m("a1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("a2", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
            m("b1", "bob", "post", "forum", "2026-03-03T11:00:00Z"),
        ],
        // The clock reaches the 5th: ann's run (last the 3rd, no grace) has lapsed, bob's too.
        vec![m("c1", "carl", "post", "forum", "2026-03-05T10:00:00Z")],
        vec![m("b2", "bob", "post", "forum", "2026-03-05T12:00:00Z")],
    ];
    let board = |w: &mut plaudit_core::OrgWorld| -> Vec<(String, i64)> {
        let page =
            w.leaderboard("runs", &plaudit_core::reads::PageQuery { limit: 10, ..Default::default() }).expect("board");
        page.rows.stakeholders().iter().map(|r| (r.stakeholder.clone(), r.value)).collect()
    };
    let mut live = world(rules);
    score(&mut live, moments[0].clone());
    assert_eq!(board(&mut live), vec![("ann".to_string(), 2), ("bob".to_string(), 1)]);
    score(&mut live, moments[1].clone());
    assert_eq!(
        board(&mut live),
        vec![("carl".to_string(), 1)],
        "lapsed runs leave the board without a moment of theirs"
    );
    score(&mut live, moments[2].clone());
    assert_eq!(
        board(&mut live),
        vec![("carl".to_string(), 1), ("bob".to_string(), 1)],
        "who got there first ranks first"
    );
    // Scored in one batch, the same records end in the same board.
    let mut once = world(rules);
    score(&mut once, moments.concat());
    assert_eq!(board(&mut once), board(&mut live));
}
