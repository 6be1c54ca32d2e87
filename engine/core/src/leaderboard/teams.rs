//! Team boards: leaderboards that rank teams by their members' values, summed or averaged.
//!
//! **Owns** [`TeamBoard`]: per team, the aggregate of its members' published entries (their
//! sum, how many they are, the sequences that set them) and the ranking of the teams. It keeps
//! nothing of its own that is not a function of the published entries: [`super::publish`]
//! decides which entry counts in which team (the team the stakeholder's profile had when the
//! entry was published, exactly as for the per-team rankings) and hands each move here, so a
//! replay, a snapshot restore or a rule-set publication, which all publish the entries afresh,
//! end in the same rankings as the live world.
//!
//! **Must not touch** stakeholders' entries, the stakeholder rankings or the publish queue:
//! those are `leaderboard/mod.rs`'s.
//!
//! A team's value on the board:
//!
//! - its **members** are the stakeholders of that team with a nonzero value on the board (in the
//!   window shown, for a windowed board);
//! - `sum`: their values added up (clamped to the `i64` range);
//! - `average`: that sum divided by the number of members, rounded to the nearest integer,
//!   halves away from zero (`7 / 2` is 4, `-7 / 2` is -4);
//! - a team whose value is 0 is not on the board, as for a stakeholder.
//!
//! Teams are ranked highest value first; among equal values, the team whose latest member
//! change is the earlier ranks first (the highest sequence among its members' entries, the
//! stakeholder boards' "reached it first"), then by the team's symbol, an order fixed per
//! organisation. Ranks follow the board's tie policy as on a stakeholder board.
//!
//! Lazy as the rest of publishing: moves only update the aggregates and mark the team;
//! [`TeamBoard::commit`] re-ranks the marked teams once per publish, in one sorted merge.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{Key, Ranking, key};
use crate::ruleset::program::{TeamValue, Ties};

/// One team's aggregate on a team board.
#[derive(Debug, Clone, Default)]
pub struct Team {
    /// The members' values added up (an `i128`, so no number of members can overflow it).
    sum: i128,
    /// Members with a nonzero value on the board.
    pub members: u32,
    /// The sequences of the members' entries, with how many entries have each: the highest is
    /// the team's tie-break.
    seqs: BTreeMap<u64, u32>,
    /// The team's key in the ranking, if it is on the board.
    pub published: Option<Key>,
    /// Changed since the last commit (and listed in [`TeamBoard::dirty`]).
    dirty: bool,
}

impl Team {
    /// The team's value under `how` (0 with no members).
    pub fn value(&self, how: TeamValue) -> i64 {
        let v = match how {
            TeamValue::Sum => self.sum,
            TeamValue::Average if self.members == 0 => 0,
            TeamValue::Average => {
                let n = i128::from(self.members);
                let (q, r) = (self.sum / n, self.sum % n);
                // Truncation went toward zero; a remainder of half or more rounds away from it.
                if 2 * r.abs() >= n { q + self.sum.signum() } else { q }
            }
        };
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The sequence of the latest change among the members' entries.
    fn latest(&self) -> u64 {
        self.seqs.last_key_value().map_or(0, |(s, _)| *s)
    }
}

/// The live state of a team board: each team's aggregate and the ranking of teams, keyed
/// `(-value, latest member sequence, team symbol)`.
#[derive(Debug, Clone)]
pub struct TeamBoard {
    pub how: TeamValue,
    pub ranking: Ranking,
    pub teams: FxHashMap<u32, Team>,
    /// Teams changed since the last commit, each once.
    dirty: Vec<u32>,
}

impl TeamBoard {
    pub fn new(how: TeamValue, ties: Ties) -> TeamBoard {
        TeamBoard { how, ranking: Ranking::new(ties), teams: FxHashMap::default(), dirty: Vec::new() }
    }

    /// A member's entry of `value`, set at record `seq`, joins `team`'s aggregate.
    pub fn add(&mut self, team: u32, value: i64, seq: u64) {
        let t = self.teams.entry(team).or_default();
        t.sum += i128::from(value);
        t.members += 1;
        *t.seqs.entry(seq).or_insert(0) += 1;
        if !std::mem::replace(&mut t.dirty, true) {
            self.dirty.push(team);
        }
    }

    /// A member's entry of `value`, set at record `seq`, leaves `team`'s aggregate (it was
    /// added before with the same figures).
    pub fn remove(&mut self, team: u32, value: i64, seq: u64) {
        let Some(t) = self.teams.get_mut(&team) else { return };
        t.sum -= i128::from(value);
        t.members = t.members.saturating_sub(1);
        if let Some(n) = t.seqs.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                t.seqs.remove(&seq);
            }
        }
        if !std::mem::replace(&mut t.dirty, true) {
            self.dirty.push(team);
        }
    }

    /// Re-ranks the teams whose aggregate changed since the last commit; teams left without
    /// members are forgotten.
    pub fn commit(&mut self) {
        for team in self.dirty.drain(..) {
            let Some(t) = self.teams.get_mut(&team) else { continue };
            t.dirty = false;
            let value = t.value(self.how);
            let new = (t.members > 0 && value != 0).then(|| key(value, t.latest(), team));
            self.ranking.update(t.published, new);
            t.published = new;
            if t.members == 0 {
                self.teams.remove(&team);
            }
        }
        self.ranking.commit();
    }

    /// The team `team`'s aggregate, if it has members on the board.
    pub fn team(&self, team: u32) -> Option<&Team> {
        self.teams.get(&team)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(values: &[i64]) -> Team {
        let mut b = TeamBoard::new(TeamValue::Sum, Ties::Shared);
        for (i, v) in values.iter().enumerate() {
            b.add(7, *v, i as u64 + 1);
        }
        b.commit();
        b.teams.remove(&7).unwrap_or_default()
    }

    #[test]
    fn average_rounds_to_the_nearest_integer_halves_away_from_zero() {
        assert_eq!(team(&[3, 4]).value(TeamValue::Average), 4);
        assert_eq!(team(&[-3, -4]).value(TeamValue::Average), -4);
        assert_eq!(team(&[1, 1, 2]).value(TeamValue::Average), 1);
        assert_eq!(team(&[1, 2, 2]).value(TeamValue::Average), 2);
        assert_eq!(team(&[10, -9, 1]).value(TeamValue::Average), 1);
        assert_eq!(team(&[]).value(TeamValue::Average), 0);
    }

    #[test]
    fn sum_is_clamped_to_the_i64_range() {
        assert_eq!(team(&[i64::MAX, i64::MAX]).value(TeamValue::Sum), i64::MAX);
        assert_eq!(team(&[i64::MAX, i64::MAX]).value(TeamValue::Average), i64::MAX);
    }

    #[test]
    fn removing_every_member_forgets_the_team_and_takes_it_off_the_board() {
        let mut b = TeamBoard::new(TeamValue::Sum, Ties::Shared);
        b.add(1, 5, 3);
        b.add(1, 6, 4);
        b.commit();
        assert_eq!(b.ranking.index.len(), 1);
        b.remove(1, 5, 3);
        b.remove(1, 6, 4);
        b.commit();
        assert_eq!(b.ranking.index.len(), 0);
        assert!(b.team(1).is_none());
    }

    #[test]
    fn the_tie_break_is_the_latest_member_sequence_and_follows_removals() {
        let mut b = TeamBoard::new(TeamValue::Sum, Ties::FirstCome);
        b.add(1, 5, 3);
        b.add(1, 5, 9);
        b.commit();
        assert_eq!(b.team(1).and_then(|t| t.published), Some(key(10, 9, 1)));
        b.remove(1, 5, 9);
        b.add(1, 5, 2);
        b.commit();
        assert_eq!(b.team(1).and_then(|t| t.published), Some(key(10, 3, 1)));
    }
}

/// Team boards through the library API: scoring, publishing and the reads together.
#[cfg(test)]
mod world_tests {
    use plaudit_sdk::{Moment, Record, Retraction, Stakeholder};

    use crate::OrgWorld;
    use crate::reads::{PageQuery, ReadError};
    use crate::ruleset::parse_toml;

    const MONDAY: &str = "2026-03-02T10:00:00Z";
    const NEXT_MONDAY: &str = "2026-03-09T10:00:00Z";

    fn rules(boards: &str) -> String {
        format!(
            r#"
[organisation]
id = "t"
timezone = "UTC"

[[currency]]
id = "xp"

[[rule]]
id = "points"
award = [{{ to = "actor", currency = "xp", value_factor = 1.0 }}]

{boards}"#
        )
    }

    fn board(how: &str, ties: &str, window: &str) -> String {
        format!(
            "[[leaderboard]]\nid = \"teams\"\nmetric = \"xp\"\nteams = \"{how}\"\nties = \"{ties}\"\nwindow = \"{window}\"\n"
        )
    }

    fn world_of(text: &str) -> OrgWorld {
        let doc = parse_toml(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        OrgWorld::from_doc(&doc, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn world(how: &str, ties: &str, window: &str) -> OrgWorld {
        world_of(&rules(&board(how, ties, window)))
    }

    fn member(id: &str, team: Option<&str>) -> Record {
        Record::Profile(Stakeholder {
            id: id.to_string(),
            kind: "employee".to_string(),
            team: team.map(str::to_string),
            name: None,
            attrs: Default::default(),
        })
    }

    fn moment(id: &str, who: &str, value: i64, at: &str) -> Record {
        Record::Moment(Moment {
            id: id.to_string(),
            stakeholder: who.to_string(),
            counterpart: None,
            kind: "post".to_string(),
            channel: "forum".to_string(),
            at: at.to_string(),
            value: Some(value as f64),
            attrs: Default::default(),
        })
    }

    fn retract(id: &str) -> Record {
        Record::Retract(Retraction { retract: id.to_string(), reason: None })
    }

    fn run(w: &mut OrgWorld, records: Vec<Record>) {
        let outcome = w.ingest(records);
        assert!(outcome.rejected.is_empty(), "rejected: {:?}", outcome.rejected);
        w.clear_effects();
    }

    /// Profiles for `members` (stakeholder, team), then one moment each of `value` on `at`.
    fn give(w: &mut OrgWorld, members: &[(&str, Option<&str>, i64)], at: &str) {
        let n = w.last_seq().0;
        let mut records: Vec<Record> = members.iter().map(|(who, team, _)| member(who, *team)).collect();
        records.extend(members.iter().enumerate().map(|(i, (who, _, v))| moment(&format!("g{n}-{i}"), who, *v, at)));
        run(w, records);
    }

    /// The page's rows as (rank, team, value, members).
    fn rows_of(w: &mut OrgWorld, board: &str, q: PageQuery) -> Vec<(usize, String, i64, u32)> {
        let q = PageQuery { limit: if q.limit == 0 { 100 } else { q.limit }, ..q };
        let page = w.leaderboard(board, &q).unwrap_or_else(|e| panic!("{e}"));
        assert!(page.rows.stakeholders().is_empty(), "a team board has team rows only");
        page.rows.teams().iter().map(|r| (r.rank, r.team.clone(), r.value, r.members)).collect()
    }

    fn rows(w: &mut OrgWorld) -> Vec<(usize, String, i64, u32)> {
        rows_of(w, "teams", PageQuery::default())
    }

    fn expect(rows: &[(usize, &str, i64, u32)]) -> Vec<(usize, String, i64, u32)> {
        rows.iter().map(|(r, t, v, n)| (*r, t.to_string(), *v, *n)).collect()
    }

    #[test]
    fn sum_board_ranks_teams_by_their_members_total_and_leaves_out_stakeholders_without_a_team() {
        let mut w = world("sum", "shared", "all");
        give(
            &mut w,
            &[("a", Some("red"), 10), ("b", Some("red"), 5), ("c", Some("blue"), 20), ("d", None, 100)],
            MONDAY,
        );
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 20, 1), (2, "red", 15, 2)]));
        let page = w.leaderboard("teams", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
        assert_eq!((page.teams, page.total), (Some("sum"), 2));
        let json = serde_json::to_value(&page).expect("serializes");
        assert_eq!(json["rows"][0], serde_json::json!({"rank": 1, "team": "blue", "value": 20, "members": 1}));
    }

    #[test]
    fn average_board_divides_by_members_with_a_nonzero_value_rounding_halves_away_from_zero() {
        let mut w = world("average", "shared", "all");
        // red: (10 + 5) / 2 = 7.5 -> 8; green: e's 3 alone, f went back to 0 and does not count.
        give(&mut w, &[("a", Some("red"), 10), ("b", Some("red"), 5), ("c", Some("blue"), 20)], MONDAY);
        give(&mut w, &[("e", Some("green"), 3), ("f", Some("green"), 4)], MONDAY);
        give(&mut w, &[("f", Some("green"), -4)], MONDAY);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 20, 1), (2, "red", 8, 2), (3, "green", 3, 1)]));
        // A team whose average rounds to 0 is not on the board: 1 / 3.
        give(&mut w, &[("x", Some("grey"), 1), ("y", Some("grey"), 1), ("z", Some("grey"), -1)], MONDAY);
        assert_eq!(rows(&mut w).len(), 3);
    }

    /// Teams of 20, 10, 10 and 5, where B reaches 10 before C.
    fn tied(ties: &str) -> Vec<(usize, String, i64, u32)> {
        let mut w = world("sum", ties, "all");
        give(
            &mut w,
            &[("a1", Some("A"), 15), ("b1", Some("B"), 10), ("c1", Some("C"), 4), ("d1", Some("D"), 5)],
            MONDAY,
        );
        give(&mut w, &[("c2", Some("C"), 6), ("a2", Some("A"), 5)], MONDAY);
        rows(&mut w)
    }

    #[test]
    fn shared_ties_between_teams_skip_ranks_after_a_tie() {
        assert_eq!(tied("shared"), expect(&[(1, "A", 20, 2), (2, "B", 10, 1), (2, "C", 10, 2), (4, "D", 5, 1)]));
    }

    #[test]
    fn dense_ties_between_teams_do_not_skip_ranks() {
        assert_eq!(tied("dense"), expect(&[(1, "A", 20, 2), (2, "B", 10, 1), (2, "C", 10, 2), (3, "D", 5, 1)]));
    }

    #[test]
    fn first_come_ties_go_to_the_team_whose_latest_member_change_is_earlier() {
        assert_eq!(tied("first_come"), expect(&[(1, "A", 20, 2), (2, "B", 10, 1), (3, "C", 10, 2), (4, "D", 5, 1)]));
    }

    fn five_teams() -> OrgWorld {
        let mut w = world("sum", "shared", "all");
        give(
            &mut w,
            &[
                ("a", Some("t1"), 50),
                ("b", Some("t2"), 40),
                ("c", Some("t3"), 30),
                ("d", Some("t4"), 20),
                ("e", Some("t5"), 10),
            ],
            MONDAY,
        );
        w
    }

    #[test]
    fn team_board_pages_from_an_offset() {
        let mut w = five_teams();
        let page = rows_of(&mut w, "teams", PageQuery { offset: 2, limit: 2, ..PageQuery::default() });
        assert_eq!(page, expect(&[(3, "t3", 30, 1), (4, "t4", 20, 1)]));
        assert!(rows_of(&mut w, "teams", PageQuery { offset: 9, limit: 2, ..PageQuery::default() }).is_empty());
    }

    #[test]
    fn around_a_team_centres_the_page_on_that_team() {
        let mut w = five_teams();
        let q = PageQuery { around: Some("t4".into()), limit: 3, ..PageQuery::default() };
        assert_eq!(rows_of(&mut w, "teams", q), expect(&[(3, "t3", 30, 1), (4, "t4", 20, 1), (5, "t5", 10, 1)]));
        let q = |t: &str| PageQuery { around: Some(t.into()), limit: 3, ..PageQuery::default() };
        assert_eq!(w.leaderboard("teams", &q("nobody")), Err(ReadError::TeamNotRanked("nobody".into())));
        // A stakeholder's id is not a team.
        assert_eq!(w.leaderboard("teams", &q("a")), Err(ReadError::TeamNotRanked("a".into())));
        let within = PageQuery { team: Some("t1".into()), limit: 3, ..PageQuery::default() };
        assert_eq!(w.leaderboard("teams", &within), Err(ReadError::TeamOfTeamBoard("teams".into())));
    }

    #[test]
    fn windowed_team_board_starts_empty_in_each_new_window() {
        let mut w = world("sum", "shared", "week");
        give(&mut w, &[("a", Some("red"), 10), ("b", Some("blue"), 5)], MONDAY);
        assert_eq!(rows(&mut w), expect(&[(1, "red", 10, 1), (2, "blue", 5, 1)]));
        give(&mut w, &[("b", Some("blue"), 2)], NEXT_MONDAY);
        let page = w.leaderboard("teams", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
        assert_eq!(page.window.as_deref(), Some("2026-03-09"));
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 2, 1)]));
        // A late moment (last week) changes nothing on this week's board.
        give(&mut w, &[("a", Some("red"), 7)], MONDAY);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 2, 1)]));
        give(&mut w, &[("a", Some("red"), 3)], NEXT_MONDAY);
        assert_eq!(rows(&mut w), expect(&[(1, "red", 3, 1), (2, "blue", 2, 1)]));
    }

    #[test]
    fn a_member_changing_team_moves_their_value_to_the_new_team() {
        let mut w = world("sum", "shared", "all");
        give(&mut w, &[("a", Some("red"), 10), ("b", Some("red"), 5), ("c", Some("blue"), 7)], MONDAY);
        assert_eq!(rows(&mut w), expect(&[(1, "red", 15, 2), (2, "blue", 7, 1)]));
        // A profile change alone, no moment: a's 10 goes with them.
        run(&mut w, vec![member("a", Some("blue"))]);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 17, 2), (2, "red", 5, 1)]));
        // Leaving every team takes the value off every team.
        run(&mut w, vec![member("b", None)]);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 17, 2)]));
    }

    #[test]
    fn a_retraction_lowers_the_team_value() {
        let mut w = world("sum", "shared", "all");
        run(&mut w, vec![member("a", Some("red")), member("b", Some("red")), member("c", Some("blue"))]);
        run(&mut w, vec![moment("m1", "a", 10, MONDAY), moment("m2", "b", 5, MONDAY), moment("m3", "c", 12, MONDAY)]);
        assert_eq!(rows(&mut w), expect(&[(1, "red", 15, 2), (2, "blue", 12, 1)]));
        run(&mut w, vec![retract("m1")]);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 12, 1), (2, "red", 5, 1)]));
        run(&mut w, vec![retract("m2")]);
        assert_eq!(rows(&mut w), expect(&[(1, "blue", 12, 1)]));
    }

    #[test]
    fn a_stakeholder_board_is_unchanged_by_the_team_field_being_absent() {
        let mut w = world_of(&rules("[[leaderboard]]\nid = \"xp\"\nmetric = \"xp\"\n"));
        give(&mut w, &[("a", Some("red"), 10)], MONDAY);
        let page = w.leaderboard("xp", &PageQuery { limit: 10, ..PageQuery::default() }).expect("board");
        assert_eq!(page.teams, None);
        assert!(page.rows.teams().is_empty());
        assert_eq!(page.rows.stakeholders()[0].stakeholder, "a");
        let json = serde_json::to_value(&page).expect("serializes");
        assert!(json.get("teams").is_none());
        assert_eq!(json["rows"][0], serde_json::json!({"rank": 1, "stakeholder": "a", "value": 10}));
    }

    #[test]
    fn teams_field_is_validated_with_its_path() {
        let err = parse_toml(&rules("[[leaderboard]]\nid = \"x\"\nmetric = \"xp\"\nteams = \"median\"\n"), "t.toml")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("leaderboard[0].teams") && err.contains("unknown variant `median`"), "{err}");
    }

    /// Records touching every path: team changes, a stakeholder leaving teams, retractions,
    /// negative values, two weeks.
    fn mixed_records() -> Vec<Record> {
        let teams = ["red", "blue", "green", "grey"];
        let mut out = Vec::new();
        for i in 0..40usize {
            out.push(member(&format!("s{i}"), (i % 5 != 4).then(|| teams[i % 4])));
        }
        for i in 0..400usize {
            let who = format!("s{}", (i * 7 + i / 3) % 40);
            let at = if i < 250 { MONDAY } else { NEXT_MONDAY };
            out.push(moment(&format!("m{i}"), &who, (i as i64 % 13) - 3, at));
            if i % 37 == 36 {
                out.push(retract(&format!("m{}", i - 20)));
            }
            if i % 53 == 52 {
                let s = (i / 53) % 40;
                out.push(member(&format!("s{s}"), Some(teams[(s + i) % 4])));
            }
        }
        out
    }

    const BOARDS: &str = r#"
[[leaderboard]]
id = "sum"
metric = "xp"
teams = "sum"

[[leaderboard]]
id = "average"
metric = "xp"
teams = "average"
ties = "dense"

[[leaderboard]]
id = "weekly"
metric = "xp"
teams = "sum"
window = "week"
ties = "first_come"
"#;

    fn pages(w: &mut OrgWorld) -> String {
        let q = PageQuery { limit: 100, ..PageQuery::default() };
        let pages: Vec<_> = ["sum", "average", "weekly"].iter().map(|b| w.leaderboard(b, &q).expect("board")).collect();
        serde_json::to_string(&pages).expect("serializes")
    }

    #[test]
    fn team_boards_are_the_same_whatever_the_batch_sizes_and_reads_in_between() {
        let records = mixed_records();
        let mut one = world_of(&rules(BOARDS));
        run(&mut one, records.clone());
        let expected = pages(&mut one);
        assert!(expected.contains("\"members\""), "{expected}");
        for size in [1, 7, 64] {
            let mut w = world_of(&rules(BOARDS));
            for (i, chunk) in records.chunks(size).enumerate() {
                run(&mut w, chunk.to_vec());
                if i % 5 == 0 {
                    pages(&mut w);
                }
            }
            assert_eq!(pages(&mut w), expected, "batches of {size}");
        }
    }

    #[test]
    fn team_boards_after_a_snapshot_restore_equal_the_live_ones() {
        let records = mixed_records();
        let text = rules(BOARDS);
        let doc = parse_toml(&text, "t.toml").expect("parses");
        let (first, rest) = records.split_at(260);
        let mut live = world_of(&text);
        run(&mut live, first.to_vec());
        pages(&mut live);
        let mut restored = OrgWorld::restore(live.snapshot(), &doc, &mut |_| None).expect("restores");
        assert_eq!(pages(&mut restored), pages(&mut live), "right after the restore");
        run(&mut live, rest.to_vec());
        run(&mut restored, rest.to_vec());
        assert_eq!(pages(&mut restored), pages(&mut live), "scoring on");
        // And both are the boards of a world that published everything once, at the end.
        let mut once = world_of(&text);
        run(&mut once, records);
        assert_eq!(pages(&mut live), pages(&mut once));
    }

    #[test]
    fn team_boards_carried_over_by_a_rule_set_publication_equal_the_live_ones() {
        let records = mixed_records();
        let (first, rest) = records.split_at(200);
        let mut live = world_of(&rules(BOARDS));
        run(&mut live, records.clone());
        let expected = pages(&mut live);
        // The same boards (one given a display name), plus a new all-time team board, filled at
        // publication from the values stakeholders have.
        let extra = "[[leaderboard]]\nid = \"late\"\nmetric = \"xp\"\nteams = \"sum\"\n";
        let v2 = format!("{}\n{extra}", BOARDS.replace("id = \"sum\"", "id = \"sum\"\nname = \"Sum\""));
        let mut published = world_of(&rules(BOARDS));
        run(&mut published, first.to_vec());
        pages(&mut published);
        let doc = parse_toml(&rules(&v2), "t.toml").expect("parses");
        published.publish_rules(&doc, "t.toml").expect("publishes");
        run(&mut published, rest.to_vec());
        assert_eq!(pages(&mut published), expected);
        // The new board holds the same teams, values and members as the one carried over.
        let strip = |w: &mut OrgWorld, b: &str| {
            let page = w.leaderboard(b, &PageQuery { limit: 100, ..PageQuery::default() }).expect("board");
            let mut rows: Vec<_> = page.rows.teams().iter().map(|r| (r.team.clone(), r.value, r.members)).collect();
            rows.sort();
            rows
        };
        assert_eq!(strip(&mut published, "late"), strip(&mut published, "sum"));
    }
}
