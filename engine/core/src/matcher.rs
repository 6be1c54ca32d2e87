//! Evaluating a compiled [`Matcher`] against a resolved moment. Shared by the guard, the rules,
//! metrics, streaks and challenges, so "which moments does this apply to" means one thing.

use plaudit_sdk::{Attrs, Value};

use crate::batch::{MomentRec, first};
use crate::ids::Sym;
use crate::ruleset::program::{AttrCond, First, Matcher};

fn allows(set: &[Sym], s: Sym) -> bool {
    set.is_empty() || set.contains(&s)
}

impl Matcher {
    /// Does the moment match? `attrs` are the moment's attributes. Always inlined: most
    /// matchers fail on their first set, and a call costs more than that test.
    #[inline(always)]
    pub fn matches(&self, m: &MomentRec, attrs: &Attrs) -> bool {
        allows(&self.kind, m.kind)
            && allows(&self.channel, m.channel)
            && allows(&self.stakeholder_kind, m.actor_kind)
            && allows(&self.team, m.actor_team)
            && self.matches_counterpart(m)
            && self.first.is_none_or(|f| {
                let bit = match f {
                    First::Counterpart => first::COUNTERPART,
                    First::Channel => first::CHANNEL,
                    First::Team => first::TEAM,
                };
                m.first & bit != 0
            })
            && self.value.is_none_or(|(lo, hi)| m.value.is_some_and(|v| v >= lo && v <= hi))
            && self.attrs.iter().all(|(name, cond)| attrs.get(name).is_some_and(|v| cond.holds(v)))
    }

    fn matches_counterpart(&self, m: &MomentRec) -> bool {
        let has = m.counterpart.is_some();
        if self.has_counterpart.is_some_and(|want| want != has) {
            return false;
        }
        let allows_counterpart = |set: &[Sym], s: Sym| set.is_empty() || (has && set.contains(&s));
        if !allows_counterpart(&self.counterpart_kind, m.counterpart_kind)
            || !allows_counterpart(&self.counterpart_team, m.counterpart_team)
        {
            return false;
        }
        match self.cross_team {
            None => true,
            Some(cross) => {
                has && !m.actor_team.is_none()
                    && !m.counterpart_team.is_none()
                    && (m.actor_team != m.counterpart_team) == cross
            }
        }
    }
}

impl AttrCond {
    pub fn holds(&self, v: &Value) -> bool {
        match self {
            AttrCond::Equals(want) => values_equal(want, v),
            AttrCond::OneOf(options) => options.iter().any(|o| values_equal(o, v)),
            AttrCond::Range(lo, hi) => v.as_f64().is_some_and(|x| x >= *lo && x <= *hi),
        }
    }
}

/// Equality where `3` equals `3.0`.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}
