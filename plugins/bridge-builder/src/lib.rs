//! **bridge-builder**: rewards reaching across the organisation.
//!
//! The first time a stakeholder has a moment with a counterpart from a team other than their
//! own, and they have not bridged to that team before, they earn a one-off bonus of
//! [`BONUS`] `xp`, and a custom effect `bridge_built` with data `{team: <the other team>}`
//! (for feeds and notifications).
//!
//! Nothing happens when:
//! - the moment has no counterpart, or either team is missing (or empty);
//! - both are on the same team;
//! - the actor has bridged to that team before (whatever the direction: what counts is the
//!   counterpart's team, as seen from the actor);
//! - the actor has already bridged to [`MAX_TEAMS`] teams: the state is bounded, and rather
//!   than forget old teams (which would let them be bridged, and paid, again) the bonus stops.
//!   That is a lifetime ceiling of `MAX_TEAMS * BONUS` xp per stakeholder.
//!
//! Team names are compared exactly (`"Ops"` and `"ops"` are two teams).
//!
//! Context: [`Need::Teams`] and [`Need::State`]. State per stakeholder: [`Bridged`], the teams
//! already bridged to, in the order they were first reached, as 64-bit hashes of their names:
//! the state is decoded and encoded on every call that has the stakeholder in it, and numbers
//! cost a fraction of strings (measured: 18.6 k fuel a moment with names on the 100k-stakeholder
//! bench workload). A collision among 64 teams has a chance of about 1 in 10^16.

use plaudit_sdk::plugin::{Definition, Effects, Moment, Need};
use plaudit_sdk::value::{Attrs, Value};
use serde::{Deserialize, Serialize};

/// The one-off bonus per newly bridged team, in `xp`.
pub const BONUS: i64 = 25;

/// The most teams remembered per stakeholder; past it, no more bonuses.
pub const MAX_TEAMS: usize = 64;

/// The teams a stakeholder has already bridged to, oldest first (at most [`MAX_TEAMS`]), as
/// [`team_key`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridged {
    pub teams: Vec<u64>,
}

/// A team's key in the state: the FNV-1a hash of its name.
pub fn team_key(team: &str) -> u64 {
    team.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn on_moment(m: &Moment, state: &mut Bridged, out: &mut Effects) {
    if m.counterpart().is_none() {
        return;
    }
    let (mine, theirs) = match (m.actor_team(), m.counterpart_team()) {
        (Some(mine), Some(theirs)) if !mine.is_empty() && !theirs.is_empty() => (mine, theirs),
        _ => return,
    };
    let key = team_key(theirs);
    if mine == theirs || state.teams.len() >= MAX_TEAMS || state.teams.contains(&key) {
        return;
    }
    state.teams.push(key);
    out.award("xp", BONUS);
    let mut data = Attrs::new();
    data.insert("team".to_string(), Value::Text(theirs.to_string()));
    out.custom("bridge_built", data);
}

pub const PLUGIN: Definition<Bridged> =
    Definition { name: "bridge-builder", version: "1.0.0", needs: &[Need::Teams, Need::State], handler: on_moment };

plaudit_sdk::plugin!(PLUGIN);

#[cfg(test)]
mod tests {
    use super::*;
    use plaudit_sdk::plugin::testing::{Emitted, Harness, TestMoment, What};

    fn meetup(actor: &str, counterpart: &str, teams: (&str, &str)) -> TestMoment {
        TestMoment::new(actor, "meetup").counterpart(counterpart).teams(teams.0, teams.1)
    }

    fn bonus(moment: usize, who: &str, team: &str) -> Vec<Emitted> {
        let mut data = Attrs::new();
        data.insert("team".to_string(), Value::Text(team.to_string()));
        vec![
            Emitted { moment, stakeholder: who.into(), what: What::Award { currency: "xp".into(), amount: BONUS } },
            Emitted { moment, stakeholder: who.into(), what: What::Custom { name: "bridge_built".into(), data } },
        ]
    }

    #[test]
    fn first_moment_with_another_team_earns_the_bonus_and_a_bridge_built_effect() {
        let mut h = Harness::new(&PLUGIN);
        let effects = h.score(&[meetup("ann", "bob", ("sales", "ops"))]).unwrap();
        assert_eq!(effects, bonus(0, "ann", "ops"));
        assert_eq!(h.state("ann").unwrap().teams, vec![team_key("ops")]);
    }

    #[test]
    fn a_team_already_bridged_earns_nothing_even_through_someone_else() {
        let mut h = Harness::new(&PLUGIN);
        h.score(&[meetup("ann", "bob", ("sales", "ops"))]).unwrap();
        assert_eq!(h.score(&[meetup("ann", "bob", ("sales", "ops"))]).unwrap(), vec![]);
        assert_eq!(h.score(&[meetup("ann", "cy", ("sales", "ops"))]).unwrap(), vec![]);
    }

    #[test]
    fn each_new_team_earns_its_own_bonus() {
        let mut h = Harness::new(&PLUGIN);
        let effects =
            h.score(&[meetup("ann", "bob", ("sales", "ops")), meetup("ann", "dee", ("sales", "legal"))]).unwrap();
        let mut expected = bonus(0, "ann", "ops");
        expected.extend(bonus(1, "ann", "legal"));
        assert_eq!(effects, expected);
    }

    #[test]
    fn bridges_are_per_stakeholder_and_seen_from_the_actor() {
        let mut h = Harness::new(&PLUGIN);
        h.score(&[meetup("ann", "bob", ("sales", "ops"))]).unwrap();
        // Bob reaching back to sales is his own first bridge; ann's bridge to ops is not his.
        assert_eq!(h.score(&[meetup("bob", "ann", ("ops", "sales"))]).unwrap(), bonus(0, "bob", "sales"));
        assert_eq!(h.score(&[meetup("cy", "bob", ("sales", "ops"))]).unwrap(), bonus(0, "cy", "ops"));
    }

    #[test]
    fn same_team_earns_nothing_and_keeps_no_state() {
        let mut h = Harness::new(&PLUGIN);
        assert_eq!(h.score(&[meetup("ann", "bob", ("sales", "sales"))]).unwrap(), vec![]);
        assert_eq!(h.state("ann"), None);
    }

    #[test]
    fn missing_or_empty_teams_or_no_counterpart_earn_nothing() {
        let mut h = Harness::new(&PLUGIN);
        let mut only_actor_team = TestMoment::new("ann", "meetup").counterpart("bob");
        only_actor_team.actor_team = Some("sales".into());
        let moments = [
            TestMoment::new("ann", "meetup").counterpart("bob"),
            only_actor_team,
            meetup("ann", "bob", ("sales", "")),
            meetup("ann", "bob", ("", "ops")),
            TestMoment::new("ann", "meetup").teams("sales", "ops"),
        ];
        assert_eq!(h.score(&moments).unwrap(), vec![]);
        assert_eq!(h.state("ann"), None);
    }

    #[test]
    fn team_names_are_compared_exactly() {
        let mut h = Harness::new(&PLUGIN);
        h.score(&[meetup("ann", "bob", ("sales", "ops"))]).unwrap();
        assert_eq!(h.score(&[meetup("ann", "bob", ("sales", "Ops"))]).unwrap(), bonus(0, "ann", "Ops"));
    }

    #[test]
    fn bonuses_stop_once_max_teams_are_bridged() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> =
            (0..=MAX_TEAMS).map(|i| meetup("ann", "bob", ("sales", &format!("team-{}", i)))).collect();
        let effects = h.score(&moments).unwrap();
        let awards = effects.iter().filter(|e| matches!(e.what, What::Award { .. })).count();
        assert_eq!(awards, MAX_TEAMS);
        assert!(effects.iter().all(|e| e.moment < MAX_TEAMS), "the team past the limit earns nothing");
        let state = h.state("ann").unwrap();
        assert_eq!(state.teams.len(), MAX_TEAMS);
        assert_eq!(state.teams[0], team_key("team-0"), "the oldest bridges are kept, so none can be paid twice");
        // Still nothing later, in another call, for a new team or an old one.
        assert_eq!(h.score(&[meetup("ann", "bob", ("sales", "late"))]).unwrap(), vec![]);
        assert_eq!(h.score(&[meetup("ann", "bob", ("sales", "team-0"))]).unwrap(), vec![]);
    }

    #[test]
    fn splitting_moments_across_calls_changes_nothing() {
        let moments = [
            meetup("ann", "bob", ("sales", "ops")),
            meetup("bob", "ann", ("ops", "sales")),
            meetup("ann", "cy", ("sales", "ops")),
            meetup("ann", "dee", ("sales", "legal")),
        ];
        let together = Harness::new(&PLUGIN).score(&moments).unwrap();
        let mut h = Harness::new(&PLUGIN);
        let mut apart = Vec::new();
        for (i, m) in moments.iter().enumerate() {
            apart.extend(h.score(std::slice::from_ref(m)).unwrap().into_iter().map(|e| Emitted { moment: i, ..e }));
        }
        assert_eq!(together, apart);
    }

    #[test]
    fn manifest_declares_teams_and_state() {
        let manifest = PLUGIN.manifest();
        assert_eq!(manifest.name, "bridge-builder");
        assert_eq!(manifest.context, vec!["teams".to_string(), "state".to_string()]);
    }
}
