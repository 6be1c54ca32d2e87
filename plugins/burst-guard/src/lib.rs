//! **burst-guard**: holds back native awards from bursts of activity that look scripted.
//!
//! A person does not log six contact moments in a minute; a script farming points does. When
//! a moment makes the actor's count of moments within [`WINDOW_SECS`] seconds exceed
//! [`LIMIT`], and the native rules award something for it, the plugin
//! - withholds the moment's native awards ([`Effects::withhold`]), with the reason
//!   `burst: <n> moments within 60 s`, and
//! - emits a custom effect `burst_suspected` with data `{moments: <n>}`, for review,
//!
//! where `n` counts this moment and the actor's others in the window. "Within the window"
//! means less than 60 s apart: moments at 0, 12, 24, 36, 48 and 59 s are a burst, the same
//! with the last at 60 s are not. The first five moments of a burst keep their awards; every
//! later one inside the window loses them, until the actor slows down.
//!
//! Every moment counts towards a burst, awarded or not, but only a moment with native awards
//! ([`Moment::native_awards`], to the actor or the counterpart) is withheld or reported: with
//! nothing to hold back there is nothing to do. The plugin never awards anything itself.
//!
//! Timestamps are the moments' own (`at`); one dated out of order is compared with the
//! actor's recent moments either side of it, so a clock running behind cannot hide a burst.
//!
//! Context: [`Need::Awards`] and [`Need::State`]. State per stakeholder: [`Recent`], the
//! timestamps of their moments in the last window, at most [`MAX_KEPT`] (so `n` saturates
//! there).

use plaudit_sdk::plugin::{Definition, Effects, Moment, Need};
use plaudit_sdk::value::{Attrs, Value};
use serde::{Deserialize, Serialize};

/// The length of the window, in seconds.
pub const WINDOW_SECS: i64 = 60;

/// The most moments allowed within a window; one more is a burst.
pub const LIMIT: usize = 5;

/// The most timestamps kept per stakeholder (the oldest go first).
pub const MAX_KEPT: usize = 64;

/// The timestamps (Unix seconds) of a stakeholder's recent moments, in the order they came.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub at: Vec<i64>,
}

impl Recent {
    /// Records a moment at `now`, forgets those no longer within the window of it, and returns
    /// how many are (this one included).
    pub fn record(&mut self, now: i64) -> usize {
        self.at.retain(|&t| t.abs_diff(now) < WINDOW_SECS as u64);
        if self.at.len() >= MAX_KEPT {
            let excess = self.at.len() + 1 - MAX_KEPT;
            self.at.drain(..excess);
        }
        self.at.push(now);
        self.at.len()
    }
}

fn on_moment(m: &Moment, state: &mut Recent, out: &mut Effects) {
    let moments = state.record(m.at());
    if moments <= LIMIT || m.native_awards().next().is_none() {
        return;
    }
    out.withhold(&format!("burst: {} moments within {} s", moments, WINDOW_SECS));
    let mut data = Attrs::new();
    data.insert("moments".to_string(), Value::Int(moments as i64));
    out.custom("burst_suspected", data);
}

pub const PLUGIN: Definition<Recent> =
    Definition { name: "burst-guard", version: "1.0.0", needs: &[Need::Awards, Need::State], handler: on_moment };

plaudit_sdk::plugin!(PLUGIN);

#[cfg(test)]
mod tests {
    use super::*;
    use plaudit_sdk::plugin::testing::{Emitted, Harness, TestMoment, What};
    use plaudit_sdk::plugin::To;

    const T0: i64 = 1_773_100_800;

    /// A moment by `actor` at `T0 + secs` with a native award of 10 xp.
    fn awarded(actor: &str, secs: i64) -> TestMoment {
        TestMoment::new(actor, "forum_post").at(T0 + secs).award("xp", 10)
    }

    fn suspected(moment: usize, who: &str, moments: i64) -> Vec<Emitted> {
        let mut data = Attrs::new();
        data.insert("moments".to_string(), Value::Int(moments));
        let reason = format!("burst: {} moments within 60 s", moments);
        vec![
            Emitted { moment, stakeholder: who.into(), what: What::Withhold { reason } },
            Emitted { moment, stakeholder: who.into(), what: What::Custom { name: "burst_suspected".into(), data } },
        ]
    }

    #[test]
    fn five_moments_in_a_minute_pass_the_sixth_is_withheld_and_reported() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = [0, 5, 10, 20, 30, 59].iter().map(|&s| awarded("ann", s)).collect();
        assert_eq!(h.score(&moments).unwrap(), suspected(5, "ann", 6));
    }

    #[test]
    fn every_further_moment_in_the_window_is_withheld_with_its_count() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..8).map(|s| awarded("ann", s)).collect();
        let mut expected = suspected(5, "ann", 6);
        expected.extend(suspected(6, "ann", 7));
        expected.extend(suspected(7, "ann", 8));
        assert_eq!(h.score(&moments).unwrap(), expected);
    }

    #[test]
    fn moments_60_seconds_apart_are_not_in_one_window() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..=5).map(|i| awarded("ann", 12 * i)).collect();
        assert_eq!(h.score(&moments).unwrap(), vec![], "0 to 60 s spans a full minute");
        assert_eq!(h.state("ann").unwrap().at.len(), 5, "the moment at 0 s has left the window");
    }

    #[test]
    fn a_steady_pace_never_trips_the_guard() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..100).map(|i| awarded("ann", 12 * i)).collect();
        assert_eq!(h.score(&moments).unwrap(), vec![]);
    }

    #[test]
    fn slowing_down_ends_the_burst() {
        let mut h = Harness::new(&PLUGIN);
        let burst: Vec<TestMoment> = (0..6).map(|s| awarded("ann", s)).collect();
        assert_eq!(h.score(&burst).unwrap().len(), 2);
        assert_eq!(h.score(&[awarded("ann", 5 + WINDOW_SECS)]).unwrap(), vec![]);
        assert_eq!(h.state("ann").unwrap().at, vec![T0 + 5 + WINDOW_SECS]);
    }

    #[test]
    fn moments_without_native_awards_count_but_are_not_withheld() {
        let mut h = Harness::new(&PLUGIN);
        let mut moments: Vec<TestMoment> = (0..6).map(|s| TestMoment::new("ann", "view").at(T0 + s)).collect();
        assert_eq!(h.score(&moments).unwrap(), vec![], "nothing to hold back");
        // ... but they made the burst that the next awarded moment is part of.
        moments.clear();
        moments.push(awarded("ann", 6));
        assert_eq!(h.score(&moments).unwrap(), suspected(0, "ann", 7));
    }

    #[test]
    fn a_native_award_to_the_counterpart_alone_is_withheld_too() {
        let mut h = Harness::new(&PLUGIN);
        let mut moments: Vec<TestMoment> = (0..5).map(|s| awarded("ann", s)).collect();
        let mut thanked = TestMoment::new("ann", "thanks").counterpart("bob").at(T0 + 5);
        thanked.awards.push((To::Counterpart, "kudos".into(), 3));
        moments.push(thanked);
        assert_eq!(h.score(&moments).unwrap(), suspected(5, "ann", 6));
    }

    #[test]
    fn bursts_are_counted_per_stakeholder() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..10).map(|s| awarded(if s % 2 == 0 { "ann" } else { "bob" }, s)).collect();
        assert_eq!(h.score(&moments).unwrap(), vec![]);
    }

    #[test]
    fn a_back_dated_moment_inside_a_burst_is_still_caught() {
        let mut h = Harness::new(&PLUGIN);
        let mut moments: Vec<TestMoment> = (0..5).map(|s| awarded("ann", 30 + s)).collect();
        moments.push(awarded("ann", 0));
        assert_eq!(h.score(&moments).unwrap(), suspected(5, "ann", 6));
    }

    #[test]
    fn state_is_bounded_and_the_count_saturates() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..100).map(|_| awarded("ann", 0)).collect();
        let effects = h.score(&moments).unwrap();
        assert_eq!(effects[effects.len() - 2..], suspected(99, "ann", MAX_KEPT as i64)[..]);
        assert_eq!(h.state("ann").unwrap().at.len(), MAX_KEPT);
        assert_eq!(h.score(&[awarded("ann", 1)]).unwrap(), suspected(0, "ann", MAX_KEPT as i64));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let mut state = Recent::default();
        assert_eq!(state.record(i64::MAX), 1);
        assert_eq!(state.record(i64::MAX), 2);
        assert_eq!(state.record(i64::MIN), 1);
        assert_eq!(state.record(i64::MIN + 10), 2);
    }

    #[test]
    fn splitting_moments_across_calls_changes_nothing() {
        let moments: Vec<TestMoment> =
            [0, 1, 2, 3, 4, 5, 6, 100, 101].iter().map(|&s| awarded(if s == 3 { "bob" } else { "ann" }, s)).collect();
        let together = Harness::new(&PLUGIN).score(&moments).unwrap();
        assert_eq!(together.len(), 2, "ann's sixth moment in the window, at 6 s");
        let mut h = Harness::new(&PLUGIN);
        let mut apart = Vec::new();
        for (i, m) in moments.iter().enumerate() {
            apart.extend(h.score(std::slice::from_ref(m)).unwrap().into_iter().map(|e| Emitted { moment: i, ..e }));
        }
        assert_eq!(together, apart);
    }

    #[test]
    fn manifest_declares_awards_and_state_only() {
        assert_eq!(PLUGIN.manifest().context, vec!["awards".to_string(), "state".to_string()]);
    }
}
