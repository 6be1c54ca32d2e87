//! Caps per rule, per stakeholder, per window (at the boundary, in local time), and the cheat
//! guard (rate per window, minimum gap between identical moments).

use plaudit_sdk::EffectKind;
use plaudit_tests::*;

/// One point for the first post of each local day.
const ONE_POST_A_DAY: &str = r#"
[[rule]]
id = "post"
award = [{ to = "actor", currency = "xp", amount = 1 }]
cap = { times = 1, per = "day" }
"#;

#[test]
fn times_cap_allows_exactly_n_per_local_day_and_reports_the_rest_withheld() {
    let mut w = world(
        r#"
[[rule]]
id = "post"
match = { kind = ["post"] }
award = [{ to = "actor", currency = "xp", amount = 3 }]
cap = { times = 2, per = "day" }
"#,
    );
    // Amsterdam is UTC+1 on 2 March: the local day ends at 23:00Z.
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "post", "forum", "2026-03-02T08:00:00Z"),
            m("2", "ann", "post", "forum", "2026-03-02T09:00:00Z"),
            m("3", "ann", "post", "forum", "2026-03-02T22:59:59Z"),
            m("4", "ann", "post", "forum", "2026-03-02T23:00:00Z"),
            m("5", "bob", "post", "forum", "2026-03-02T09:30:00Z"),
        ],
    );
    assert_eq!(points(&fx, "ann", "xp"), 9);
    assert_eq!(points(&fx, "bob", "xp"), 3, "caps are per stakeholder");
    let withheld = of_type(&fx, "points_withheld");
    assert_eq!(withheld.len(), 1);
    assert_eq!(withheld[0].moment, "3");
    assert!(
        matches!(&withheld[0].kind, EffectKind::PointsWithheld { amount: 3, reason, .. } if reason.contains("per day"))
    );
}

#[test]
fn points_cap_grants_the_remainder_then_nothing() {
    let mut w = world(
        r#"
[[rule]]
id = "post"
award = [{ to = "actor", currency = "xp", amount = 4 }]
cap = { points = 10, per = "week" }
"#,
    );
    let fx = score(
        &mut w,
        (0..4).map(|i| m(&format!("{i}"), "ann", "post", "forum", &format!("2026-03-0{}T10:00:00Z", i + 2))).collect(),
    );
    let awarded: Vec<i64> = of_type(&fx, "points_awarded")
        .iter()
        .map(|e| if let EffectKind::PointsAwarded { amount, .. } = e.kind { amount } else { 0 })
        .collect();
    assert_eq!(awarded, [4, 4, 2]);
    assert_eq!(of_type(&fx, "points_withheld").len(), 2);
    // Monday 9 March starts a new week.
    let fx = score(&mut w, vec![m("next", "ann", "post", "forum", "2026-03-09T00:30:00+01:00")]);
    assert_eq!(points(&fx, "ann", "xp"), 4);
}

#[test]
fn cap_window_follows_the_local_day_across_the_spring_dst_change() {
    let mut w = world(ONE_POST_A_DAY);
    // 29 March 2026 in Amsterdam has 23 hours: 28 Mar 23:00Z to 29 Mar 22:00Z.
    let fx = score(
        &mut w,
        vec![
            m("a", "ann", "post", "forum", "2026-03-28T22:59:59Z"),
            m("b", "ann", "post", "forum", "2026-03-28T23:00:00Z"),
            m("c", "ann", "post", "forum", "2026-03-29T21:59:59Z"),
            m("d", "ann", "post", "forum", "2026-03-29T22:00:00Z"),
        ],
    );
    let scored = moments_of(&fx, "points_awarded");
    assert_eq!(scored, ["a", "b", "d"]);
}

#[test]
fn guard_holds_back_moments_beyond_the_rate_and_scores_nothing_for_them() {
    let mut w = world(
        r#"
[guard]
max_moments = 3
per = "hour"

[[rule]]
id = "post"
award = [{ to = "actor", currency = "xp", amount = 1 }]
"#,
    );
    let fx = score(
        &mut w,
        (0..5).map(|i| m(&format!("{i}"), "ann", "post", "forum", &format!("2026-03-02T10:0{i}:00Z"))).collect(),
    );
    assert_eq!(points(&fx, "ann", "xp"), 3);
    let guarded = moments_of(&fx, "guarded");
    assert_eq!(guarded, ["3", "4"]);
    let fx = score(&mut w, vec![m("later", "ann", "post", "forum", "2026-03-02T11:00:00Z")]);
    assert_eq!(points(&fx, "ann", "xp"), 1, "a new hour, a new allowance");
}

#[test]
fn guard_min_gap_applies_to_identical_moments_only() {
    let mut w = world(
        r#"
[guard]
min_gap_seconds = 60

[[rule]]
id = "post"
award = [{ to = "actor", currency = "xp", amount = 1 }]
"#,
    );
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("2", "ann", "post", "forum", "2026-03-02T10:00:59Z"),
            m("3", "ann", "post", "chat", "2026-03-02T10:00:59Z"),
            m("4", "ann", "post", "chat", "2026-03-02T10:02:00Z"),
        ],
    );
    let guarded = moments_of(&fx, "guarded");
    assert_eq!(guarded, ["2"]);
    assert_eq!(points(&fx, "ann", "xp"), 3);
}

#[test]
fn late_moment_counts_against_the_current_window_and_cannot_reopen_a_cap() {
    let mut w = world(ONE_POST_A_DAY);
    let fx = score(
        &mut w,
        vec![
            m("3rd", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
            m("late-2nd", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("3rd-again", "ann", "post", "forum", "2026-03-03T11:00:00Z"),
        ],
    );
    let scored = moments_of(&fx, "points_awarded");
    assert_eq!(scored, ["3rd"]);
}
