//! plugin-template: a daily welcome-back bonus. The first moment a stakeholder has on a (UTC)
//! day earns 5 `xp`; the others earn nothing from this plugin.
//!
//! Start here: change the handler, the state and the tests; `cargo test` runs them natively,
//! `bash scripts/build-plugins.sh` builds `plugins/dist/<crate>.wasm`, and
//! `plaudit plugin check` / `plaudit score --plugin` try the module for real.

use plaudit_sdk::plugin::{Definition, Effects, Moment, Need};
use serde::{Deserialize, Serialize};

/// What the plugin remembers per stakeholder (saved by the host between calls).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The last day (days since 1970-01-01, UTC) this stakeholder earned the bonus.
    last_day: Option<i64>,
}

const BONUS: i64 = 5;

fn on_moment(m: &Moment, state: &mut State, out: &mut Effects) {
    let day = m.at().div_euclid(86_400);
    if state.last_day != Some(day) {
        state.last_day = Some(day);
        out.award("xp", BONUS);
    }
}

pub const PLUGIN: Definition<State> = Definition {
    name: "plugin-template",
    version: env!("CARGO_PKG_VERSION"),
    needs: &[Need::State],
    handler: on_moment,
};

plaudit_sdk::plugin!(PLUGIN);

#[cfg(test)]
mod tests {
    use super::*;
    use plaudit_sdk::plugin::testing::{Harness, TestMoment, What};

    const DAY: i64 = 86_400;

    #[test]
    fn the_first_moment_of_a_day_earns_the_bonus_once() {
        let mut h = Harness::new(&PLUGIN);
        let day_one = DAY * 20_000;
        let effects = h
            .score(&[
                TestMoment::new("ann", "meetup").at(day_one),
                TestMoment::new("ann", "answer").at(day_one + 60),
                TestMoment::new("bob", "answer").at(day_one + 120),
            ])
            .expect("the call succeeds");
        let awarded: Vec<(usize, &str)> = effects.iter().map(|e| (e.moment, e.stakeholder.as_str())).collect();
        assert_eq!(awarded, [(0, "ann"), (2, "bob")]);
        assert_eq!(effects[0].what, What::Award { currency: "xp".into(), amount: BONUS });
    }

    #[test]
    fn the_bonus_comes_back_the_next_day_across_calls() {
        let mut h = Harness::new(&PLUGIN);
        let day_one = DAY * 20_000;
        assert_eq!(h.score(&[TestMoment::new("ann", "meetup").at(day_one)]).expect("call").len(), 1);
        assert_eq!(h.score(&[TestMoment::new("ann", "meetup").at(day_one + 3600)]).expect("call").len(), 0);
        assert_eq!(h.score(&[TestMoment::new("ann", "meetup").at(day_one + DAY)]).expect("call").len(), 1);
        assert_eq!(h.state("ann"), Some(State { last_day: Some(20_001) }));
    }
}
