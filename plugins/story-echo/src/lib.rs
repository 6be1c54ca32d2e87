//! **story-echo**: diminishing returns for sharing the corporate story.
//!
//! Sharing the story is worth rewarding; sharing it forty times an afternoon is not. Each
//! moment of kind `share` earns `xp` by its rank among the actor's shares of the same UTC day
//! (the first share of the day is share 0):
//!
//! | share of the day | 0  | 1 | 2 | 3 | 4 | 5 to 9 | 10 and later |
//! |------------------|----|---|---|---|---|--------|--------------|
//! | xp               | 16 | 8 | 4 | 2 | 1 | 1      | nothing      |
//!
//! That is `max(1, 16 >> n)` for the first [`PAID_SHARES`] shares: the first share is worth a
//! lot, a handful more still count for something, and a day is worth at most 36 xp however
//! much is shared. The counter starts again on the next UTC day (days are `at` divided by
//! 86 400, rounded down, so midnight UTC belongs to the new day).
//!
//! A share dated on a day before the one being counted (a late or back-dated moment) counts
//! against the current day rather than reopening its own: back-dating cannot buy a fresh curve.
//!
//! Other kinds earn nothing and leave the counter alone. The kind is compared exactly.
//!
//! Context: [`Need::State`]. State per stakeholder: [`Echo`], the day being counted and the
//! shares counted on it.

use plaudit_sdk::plugin::{Definition, Effects, Moment, Need};
use serde::{Deserialize, Serialize};

/// The moment kind this plugin rewards.
pub const SHARE: &str = "share";

/// What the first share of a day earns, in `xp`; each later one earns half the one before, but
/// at least 1.
pub const FIRST_SHARE_XP: i64 = 16;

/// Shares per UTC day that earn anything at all.
pub const PAID_SHARES: u32 = 10;

const SECONDS_PER_DAY: i64 = 86_400;

/// A stakeholder's share counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The UTC day being counted, in days since 1970-01-01.
    pub day: i64,
    /// Shares counted on `day` (saturating).
    pub shares: u32,
}

/// What the `n`-th share of a day earns (`n` from 0).
pub fn share_xp(n: u32) -> i64 {
    if n >= PAID_SHARES {
        0
    } else {
        (FIRST_SHARE_XP >> n).max(1)
    }
}

fn on_moment(m: &Moment, state: &mut Echo, out: &mut Effects) {
    if m.kind() != SHARE {
        return;
    }
    let day = m.at().div_euclid(SECONDS_PER_DAY);
    if day > state.day {
        *state = Echo { day, shares: 0 };
    }
    let xp = share_xp(state.shares);
    state.shares = state.shares.saturating_add(1);
    if xp > 0 {
        out.award("xp", xp);
    }
}

pub const PLUGIN: Definition<Echo> =
    Definition { name: "story-echo", version: "1.0.0", needs: &[Need::State], handler: on_moment };

plaudit_sdk::plugin!(PLUGIN);

#[cfg(test)]
mod tests {
    use super::*;
    use plaudit_sdk::plugin::testing::{Emitted, Harness, TestMoment, What};

    /// 2026-03-10T00:00:00Z.
    const DAY_START: i64 = 1_773_100_800;

    fn share(actor: &str, at: i64) -> TestMoment {
        TestMoment::new(actor, SHARE).at(at)
    }

    /// The xp of each effect, in order (every effect of this plugin is an xp award).
    fn xp(effects: &[Emitted]) -> Vec<i64> {
        effects
            .iter()
            .map(|e| match &e.what {
                What::Award { currency, amount } if currency == "xp" => *amount,
                other => panic!("unexpected effect {:?}", other),
            })
            .collect()
    }

    #[test]
    fn the_curve_halves_from_16_to_a_floor_of_1_and_stops_after_ten_shares() {
        let expected = [16, 8, 4, 2, 1, 1, 1, 1, 1, 1, 0, 0];
        assert_eq!((0..12).map(share_xp).collect::<Vec<_>>(), expected);
        assert_eq!(share_xp(u32::MAX), 0);
        assert_eq!(expected.iter().sum::<i64>(), 36, "the daily maximum the docs promise");
    }

    #[test]
    fn shares_on_one_day_earn_less_and_less_then_nothing() {
        let mut h = Harness::new(&PLUGIN);
        let moments: Vec<TestMoment> = (0..12).map(|i| share("ann", DAY_START + 60 * i)).collect();
        let effects = h.score(&moments).unwrap();
        assert_eq!(xp(&effects), vec![16, 8, 4, 2, 1, 1, 1, 1, 1, 1]);
        assert!(effects.iter().all(|e| e.stakeholder == "ann" && e.moment < 10));
        assert_eq!(h.state("ann").unwrap(), Echo { day: DAY_START / SECONDS_PER_DAY, shares: 12 });
    }

    #[test]
    fn a_new_utc_day_starts_the_curve_again_at_midnight() {
        let mut h = Harness::new(&PLUGIN);
        let effects = h
            .score(&[
                share("ann", DAY_START + 10),
                share("ann", DAY_START + SECONDS_PER_DAY - 1),
                share("ann", DAY_START + SECONDS_PER_DAY),
                share("ann", DAY_START + 3 * SECONDS_PER_DAY + 5),
            ])
            .unwrap();
        assert_eq!(xp(&effects), vec![16, 8, 16, 16]);
    }

    #[test]
    fn each_stakeholder_has_their_own_curve() {
        let mut h = Harness::new(&PLUGIN);
        let effects =
            h.score(&[share("ann", DAY_START), share("bob", DAY_START + 1), share("ann", DAY_START + 2)]).unwrap();
        assert_eq!(xp(&effects), vec![16, 16, 8]);
        assert_eq!(effects.iter().map(|e| e.stakeholder.as_str()).collect::<Vec<_>>(), ["ann", "bob", "ann"]);
    }

    #[test]
    fn other_kinds_earn_nothing_and_do_not_count() {
        let mut h = Harness::new(&PLUGIN);
        let effects = h
            .score(&[
                TestMoment::new("ann", "meetup").at(DAY_START),
                TestMoment::new("ann", "Share").at(DAY_START + 1),
                share("ann", DAY_START + 2),
            ])
            .unwrap();
        assert_eq!(effects.len(), 1);
        assert_eq!(effects[0].moment, 2);
        assert_eq!(xp(&effects), vec![16]);
    }

    #[test]
    fn a_back_dated_share_counts_against_the_current_day() {
        let mut h = Harness::new(&PLUGIN);
        let today = DAY_START + SECONDS_PER_DAY;
        let effects = h.score(&[share("ann", today), share("ann", DAY_START + 5), share("ann", today + 5)]).unwrap();
        assert_eq!(xp(&effects), vec![16, 8, 4]);
        assert_eq!(h.state("ann").unwrap().day, today / SECONDS_PER_DAY);
    }

    #[test]
    fn the_counter_survives_between_calls() {
        let mut h = Harness::new(&PLUGIN);
        assert_eq!(xp(&h.score(&[share("ann", DAY_START)]).unwrap()), vec![16]);
        assert_eq!(xp(&h.score(&[share("ann", DAY_START + 60)]).unwrap()), vec![8]);
        assert_eq!(xp(&h.score(&[share("ann", DAY_START + SECONDS_PER_DAY)]).unwrap()), vec![16]);
    }
}
