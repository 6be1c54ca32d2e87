//! Leaderboards: tie policies, per-team rankings, around-me, windows, and the incrementally
//! maintained ranking against a full sort.

use plaudit_core::OrgWorld;
use plaudit_core::reads::PageQuery;
use plaudit_tests::*;
use proptest::prelude::*;

fn rules(ties: &str, window: &str) -> String {
    format!(
        r#"
[[rule]]
id = "points"
award = [{{ to = "actor", currency = "xp", value_factor = 1.0 }}]

[[leaderboard]]
id = "board"
metric = "xp"
ties = "{ties}"
window = "{window}"
"#
    )
}

/// Gives each (stakeholder, amount) in order, one moment each, on 2 March.
fn give(w: &mut OrgWorld, awards: &[(&str, i64)]) {
    let n = w.last_seq().0;
    let moments = awards
        .iter()
        .enumerate()
        .map(|(i, (who, v))| {
            m(&format!("g{}", n as usize + i), who, "post", "forum", "2026-03-02T10:00:00Z").value(*v as f64)
        })
        .collect();
    score(w, moments);
}

fn page(w: &mut OrgWorld, q: PageQuery) -> Vec<(usize, String, i64)> {
    let p = w.leaderboard("board", &PageQuery { limit: if q.limit == 0 { 100 } else { q.limit }, ..q }).expect("board");
    p.rows.stakeholders().iter().map(|r| (r.rank, r.stakeholder.clone(), r.value)).collect()
}

fn ranks(w: &mut OrgWorld) -> Vec<(usize, String)> {
    page(w, PageQuery::default()).into_iter().map(|(r, s, _)| (r, s)).collect()
}

fn pairs(v: &[(usize, &str)]) -> Vec<(usize, String)> {
    v.iter().map(|(r, s)| (*r, s.to_string())).collect()
}

const TIES: [(&str, i64); 4] = [("a", 10), ("b", 20), ("c", 10), ("d", 5)];

#[test]
fn shared_ties_skip_ranks_after_a_tie() {
    let mut w = world(&rules("shared", "all"));
    give(&mut w, &TIES);
    assert_eq!(ranks(&mut w), pairs(&[(1, "b"), (2, "a"), (2, "c"), (4, "d")]));
}

#[test]
fn dense_ties_do_not_skip_ranks() {
    let mut w = world(&rules("dense", "all"));
    give(&mut w, &TIES);
    assert_eq!(ranks(&mut w), pairs(&[(1, "b"), (2, "a"), (2, "c"), (3, "d")]));
}

#[test]
fn first_come_ties_go_to_whoever_reached_the_score_first() {
    let mut w = world(&rules("first_come", "all"));
    give(&mut w, &[("c", 10), ("a", 10), ("b", 20), ("d", 5)]);
    assert_eq!(ranks(&mut w), pairs(&[(1, "b"), (2, "c"), (3, "a"), (4, "d")]));
    // c goes up and falls back to 10: now it reached 10 after a
    give(&mut w, &[("c", 5), ("c", -5)]);
    assert_eq!(ranks(&mut w), pairs(&[(1, "b"), (2, "a"), (3, "c"), (4, "d")]));
}

#[test]
fn updates_move_entries_and_zero_leaves_the_board() {
    let mut w = world(&rules("shared", "all"));
    give(&mut w, &TIES);
    give(&mut w, &[("d", 100), ("b", -20)]);
    assert_eq!(ranks(&mut w), pairs(&[(1, "d"), (2, "a"), (2, "c")]));
    assert_eq!(w.leaderboard("board", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board").total, 3);
}

#[test]
fn team_rankings_rank_within_the_team() {
    let mut w = world(&rules("shared", "all"));
    run(
        &mut w,
        vec![profile("a", "employee", "sales"), profile("b", "employee", "hr"), profile("c", "employee", "sales")],
    );
    give(&mut w, &[("a", 10), ("b", 20), ("c", 30)]);
    let sales = page(&mut w, PageQuery { team: Some("sales".into()), ..PageQuery::default() });
    assert_eq!(sales, [(1, "c".to_string(), 30), (2, "a".to_string(), 10)]);
    // b moves to sales: it leaves hr's ranking and joins sales'
    run(&mut w, vec![profile("b", "employee", "sales")]);
    give(&mut w, &[("b", 1)]);
    let sales = page(&mut w, PageQuery { team: Some("sales".into()), ..PageQuery::default() });
    assert_eq!(sales.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
    assert!(page(&mut w, PageQuery { team: Some("hr".into()), ..PageQuery::default() }).is_empty());
    assert!(page(&mut w, PageQuery { team: Some("nobody".into()), ..PageQuery::default() }).is_empty());
}

#[test]
fn a_team_change_alone_moves_the_entries_to_the_new_teams_ranking() {
    let mut w = world(&rules("shared", "all"));
    run(&mut w, vec![profile("a", "employee", "sales"), profile("b", "employee", "hr")]);
    give(&mut w, &[("a", 10), ("b", 20)]);
    assert_eq!(page(&mut w, PageQuery { team: Some("hr".into()), ..PageQuery::default() }).len(), 1);
    run(&mut w, vec![profile("b", "employee", "sales")]);
    let sales = page(&mut w, PageQuery { team: Some("sales".into()), ..PageQuery::default() });
    assert_eq!(sales, [(1, "b".to_string(), 20), (2, "a".to_string(), 10)]);
    assert!(page(&mut w, PageQuery { team: Some("hr".into()), ..PageQuery::default() }).is_empty());
}

#[test]
fn around_me_centres_the_page_on_the_stakeholder() {
    let mut w = world(&rules("first_come", "all"));
    let awards: Vec<(String, i64)> = (0..20).map(|i| (format!("p{i:02}"), 100 - i)).collect();
    let refs: Vec<(&str, i64)> = awards.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    give(&mut w, &refs);
    let rows = page(&mut w, PageQuery { around: Some("p10".into()), limit: 5, ..PageQuery::default() });
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [9, 10, 11, 12, 13]);
    assert_eq!(rows[2].1, "p10");
    let err = w.leaderboard("board", &PageQuery { around: Some("ghost".into()), limit: 5, ..PageQuery::default() });
    assert!(err.is_err());
}

#[test]
fn windowed_board_starts_empty_each_week() {
    let mut w = world(&rules("shared", "week"));
    score(&mut w, vec![m("1", "a", "post", "forum", "2026-03-06T10:00:00Z").value(50.0)]);
    score(&mut w, vec![m("2", "b", "post", "forum", "2026-03-09T10:00:00Z").value(5.0)]);
    let p = w.leaderboard("board", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
    assert_eq!(p.window.as_deref(), Some("2026-03-09"));
    assert_eq!(p.rows.stakeholders().iter().map(|r| (r.stakeholder.as_str(), r.value)).collect::<Vec<_>>(), [("b", 5)]);
    score(&mut w, vec![m("3", "a", "post", "forum", "2026-03-10T10:00:00Z").value(7.0)]);
    let p = w.leaderboard("board", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
    assert_eq!(
        p.rows.stakeholders().iter().map(|r| (r.stakeholder.as_str(), r.value)).collect::<Vec<_>>(),
        [("a", 7), ("b", 5)]
    );
}

/// Ranks from a full sort of the balances, under each tie policy.
fn expected_ranks(values: &[i64], ties: &str) -> Vec<usize> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match ties {
            "shared" => 1 + values.iter().filter(|x| *x > v).count(),
            "dense" => {
                let mut higher: Vec<i64> = values.iter().copied().filter(|x| x > v).collect();
                higher.dedup();
                1 + higher.len()
            }
            _ => i + 1,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_ranking_equals_a_full_sort(
        ties in prop::sample::select(vec!["shared", "dense", "first_come"]),
        batches in prop::collection::vec(prop::collection::vec((0usize..30, -20i64..40), 1..40), 1..8),
    ) {
        let mut w = world(&rules(ties, "all"));
        for batch in &batches {
            let named: Vec<(String, i64)> = batch.iter().map(|(s, v)| (format!("s{s}"), *v)).collect();
            let refs: Vec<(&str, i64)> = named.iter().map(|(s, v)| (s.as_str(), *v)).collect();
            give(&mut w, &refs);
        }
        let rows = page(&mut w, PageQuery { limit: 1000, ..PageQuery::default() });
        // Everyone with a non-zero balance is on the board, in value order.
        let mut balances: Vec<(String, i64)> = (0..30)
            .map(|s| format!("s{s}"))
            .filter_map(|s| w.profile(&s).map(|p| (s, p.currencies["xp"])))
            .filter(|(_, v)| *v != 0)
            .collect();
        balances.sort_by_key(|b| std::cmp::Reverse(b.1));
        let values: Vec<i64> = rows.iter().map(|r| r.2).collect();
        prop_assert_eq!(&values, &balances.iter().map(|b| b.1).collect::<Vec<_>>());
        let mut on_board: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let mut expected: Vec<&str> = balances.iter().map(|b| b.0.as_str()).collect();
        on_board.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(on_board, expected);
        for r in &rows {
            prop_assert_eq!(w.profile(&r.1).map(|p| p.currencies["xp"]), Some(r.2));
        }
        prop_assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), expected_ranks(&values, ties));
    }
}

#[test]
fn late_moment_does_not_wipe_this_weeks_points() {
    let mut w = world(&rules("shared", "week"));
    score(&mut w, vec![m("1", "a", "post", "forum", "2026-03-10T10:00:00Z").value(50.0)]);
    score(&mut w, vec![m("2", "a", "post", "forum", "2026-03-06T10:00:00Z").value(5.0)]);
    let p = w.leaderboard("board", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
    assert_eq!(
        p.rows.stakeholders().iter().map(|r| (r.stakeholder.as_str(), r.value)).collect::<Vec<_>>(),
        [("a", 50)]
    );
}

/// Every page a product could show: each board overall and per team, and everyone's ranks.
fn every_page(w: &mut OrgWorld, teams: &[String], people: &[String]) -> String {
    let boards: Vec<String> = w.program().leaderboards.iter().map(|b| b.id.clone()).collect();
    let mut out = Vec::new();
    for board in &boards {
        for team in std::iter::once(None).chain(teams.iter().map(Some)) {
            let q = PageQuery { team: team.cloned(), limit: 1000, ..PageQuery::default() };
            out.push(serde_json::to_string(&w.leaderboard(board, &q).expect("board")).expect("page"));
        }
    }
    for who in people {
        out.push(format!("{who}: {:?}", w.profile(who).map(|p| p.ranks)));
    }
    out.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Publishing is lazy: rankings read after every batch and rankings read once at the end
    /// are the same, on every board (all-time, weekly, each tie policy) and in every team.
    #[test]
    fn rankings_do_not_depend_on_when_they_are_read(seed in 0u64..1000, batch in 1usize..400) {
        use plaudit_core::workload::{Spec, Workload};
        let path = plaudit_tests::repo_root().join("rules/acme.toml");
        let workload = Workload::new(Spec { stakeholders: 120, moments: 3000, seed, days: 20, ..Spec::default() });
        let records: Vec<plaudit_sdk::Record> = workload.records().collect();
        let teams: Vec<String> = workload.profiles().filter_map(|p| p.team).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let people: Vec<String> = (0..120).map(Workload::stakeholder_id).collect();
        let mut eager = OrgWorld::from_rules_file(&path).expect("acme");
        let mut lazy = OrgWorld::from_rules_file(&path).expect("acme");
        for chunk in records.chunks(batch) {
            eager.ingest(chunk.to_vec());
            every_page(&mut eager, &teams, &people[..3]);
            lazy.ingest(chunk.to_vec());
        }
        prop_assert_eq!(every_page(&mut eager, &teams, &people), every_page(&mut lazy, &teams, &people));
    }
}
