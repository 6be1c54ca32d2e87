//! The bounds every number a moment can reach is kept within, in one place.
//!
//! Scoring adds numbers that come from outside: a moment's `value`, a rule's `value_factor`, the
//! product of campaign multipliers, a plugin's award. In a release build an `i64` that passes
//! its range wraps, silently, so nothing here is left to chance:
//!
//! - a moment's `value` is refused beyond [`MAX_VALUE`] in size (the record is refused, naming
//!   `value`);
//! - an award is at most [`MAX_AWARD`] in size: a rule's award computed beyond it gives the
//!   bound and reports the rest as withheld ([`split_award`]); a plugin's award beyond it fails
//!   the plugin's call;
//! - a balance stays within [`MAX_BALANCE`]: an award that would take it past gives what fits
//!   and reports the rest as withheld ([`credit`]); a retraction or a correction stops at the
//!   bound;
//! - a moment is scored no later than [`FUTURE_SLACK`] after its records were received
//!   ([`horizon`]), so that no outlier captures windowed state;
//! - counters (moments in a challenge window, a team's progress, cap firings, badge counts)
//!   saturate at their type's maximum rather than wrap, and sums of changes (windowed
//!   leaderboard values) saturate likewise ([`sum`]).
//!
//! **Owns** those constants and the arithmetic that keeps them. **Must not touch** scoring
//! state itself: the passes call these functions on the numbers they hold.

/// Largest size of a moment's `value`. Beyond it a value is most likely an integration bug
/// (a timestamp in nanoseconds, a float parsed wrongly); it is refused, not scored.
pub const MAX_VALUE: f64 = 1e12;

/// Largest size of one award, in points: a rule's, a reward's, a plugin's.
pub const MAX_AWARD: i64 = 1_000_000_000;

/// Largest size of a balance.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

/// How far ahead of the instant its records were received (the log keeps it) a moment may be
/// dated for scoring, in seconds. A moment dated later is scored as of that instant plus this
/// slack: one moment dated 2999-01-01 would otherwise move every windowed state it touches
/// (weekly boards, streaks, challenge windows, the guard's gaps) to 2999 for good, and every
/// current moment after it would count as late. The same on every replay, since the log keeps
/// the instant.
pub const FUTURE_SLACK: i64 = 300;

/// The latest time (Unix seconds) a moment of records received at `received` (Unix
/// milliseconds) is scored at; `None` (received at no known instant: the library scoring a
/// file, a segment of an earlier build) leaves times as they are.
pub fn horizon(received: Option<i64>) -> Option<i64> {
    received.map(|ms| ms.div_euclid(1000).saturating_add(FUTURE_SLACK))
}

/// `amount` cut to [`MAX_AWARD`] in size: the part given and the part beyond the bound (0 when
/// it is within).
#[inline]
pub fn split_award(amount: i64) -> (i64, i64) {
    let given = amount.clamp(-MAX_AWARD, MAX_AWARD);
    // Both have the same sign and `given` is the smaller in size: no overflow.
    (given, amount - given)
}

/// `balance` plus `amount`, kept within [`MAX_BALANCE`] in size: the part of `amount` given and
/// the new balance. With a balance within the bound and an amount of at most [`MAX_AWARD`]
/// nothing overflows, and any `i64` is handled.
#[inline]
pub fn credit(balance: i64, amount: i64) -> (i64, i64) {
    let new = balance.saturating_add(amount).clamp(-MAX_BALANCE, MAX_BALANCE);
    // `new` and `balance` are within the bound: their difference fits.
    (new - balance, new)
}

/// A running sum (a windowed leaderboard value) moved by `delta`, saturating.
#[inline]
pub fn sum(total: i64, delta: i64) -> i64 {
    total.saturating_add(delta)
}

/// What the reason of a withheld award says when [`split_award`] or [`credit`] held part of it.
pub fn withheld_reason(what: Bound) -> &'static str {
    match what {
        Bound::Award => "beyond the bound of 10^9 points an award",
        Bound::Balance => "the balance would pass its bound of 10^15 points",
    }
}

/// Which bound held part of an award back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Award,
    Balance,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn split_award_gives_at_most_the_bound_and_the_parts_add_up(amount in any::<i64>()) {
            let (given, over) = split_award(amount);
            prop_assert!(given.unsigned_abs() <= MAX_AWARD as u64);
            prop_assert_eq!(i128::from(given) + i128::from(over), i128::from(amount));
            prop_assert!(over == 0 || over.signum() == amount.signum());
        }

        #[test]
        fn credit_keeps_the_balance_within_its_bound_and_says_what_it_gave(
            balance in -MAX_BALANCE..=MAX_BALANCE,
            amount in any::<i64>(),
        ) {
            let (given, new) = credit(balance, amount);
            prop_assert!(new.unsigned_abs() <= MAX_BALANCE as u64);
            prop_assert_eq!(i128::from(balance) + i128::from(given), i128::from(new));
            let exact = i128::from(balance) + i128::from(amount);
            if exact.unsigned_abs() <= MAX_BALANCE as u128 {
                prop_assert_eq!(given, amount);
            } else {
                prop_assert_eq!(i128::from(new), exact.clamp(-i128::from(MAX_BALANCE), i128::from(MAX_BALANCE)));
            }
        }
    }

    #[test]
    fn the_extremes_of_i64_stay_within_the_bounds() {
        assert_eq!(split_award(i64::MIN), (-MAX_AWARD, i64::MIN + MAX_AWARD));
        assert_eq!(split_award(i64::MAX), (MAX_AWARD, i64::MAX - MAX_AWARD));
        assert_eq!(credit(MAX_BALANCE, i64::MAX), (0, MAX_BALANCE));
        assert_eq!(credit(-MAX_BALANCE, i64::MIN), (0, -MAX_BALANCE));
        assert_eq!(credit(0, i64::MIN), (-MAX_BALANCE, -MAX_BALANCE));
        assert_eq!(sum(i64::MAX, 1), i64::MAX);
    }
}
