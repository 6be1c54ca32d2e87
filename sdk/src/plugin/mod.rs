//! Writing a rule plugin: a handler called once per scored moment, after the native rules,
//! whose effects (points, withheld points, badges, custom effects) go through the same
//! balances, levels, badges and leaderboards as the native ones.
//!
//! A plugin is a [`Definition`]: a name, a version, the [`Need`]s it declares (the host sends
//! only those), a per-stakeholder state type, and a handler. [`crate::plugin!`] exports it with
//! the ABI hidden; [`testing::Harness`] runs it natively under `cargo test`, through the same
//! encode/decode path the host uses, so no wasm toolchain is needed to test a plugin.
//!
//! # Example: a bonus for the first moment with someone from another team
//!
//! ```
//! use plaudit_sdk::plugin::{Definition, Effects, Moment, Need};
//! use serde::{Deserialize, Serialize};
//!
//! /// The teams this stakeholder has already bridged to.
//! #[derive(Default, Serialize, Deserialize)]
//! pub struct Bridged {
//!     teams: Vec<String>,
//! }
//!
//! fn on_moment(m: &Moment, state: &mut Bridged, out: &mut Effects) {
//!     if let (Some(mine), Some(theirs)) = (m.actor_team(), m.counterpart_team()) {
//!         if mine != theirs && !state.teams.iter().any(|t| t == theirs) {
//!             state.teams.push(theirs.to_string());
//!             out.award("xp", 25);
//!         }
//!     }
//! }
//!
//! pub const PLUGIN: Definition<Bridged> = Definition {
//!     name: "bridge-builder",
//!     version: "1.0.0",
//!     needs: &[Need::Teams, Need::State],
//!     handler: on_moment,
//! };
//!
//! // In the plugin crate (a `cdylib`), this exports `alloc`, `score` and `manifest`:
//! plaudit_sdk::plugin!(PLUGIN);
//!
//! // And its tests, on the host:
//! use plaudit_sdk::plugin::testing::{Harness, TestMoment, What};
//! let mut h = Harness::new(&PLUGIN);
//! let first = h.score(&[TestMoment::new("ann", "meetup").counterpart("bob").teams("sales", "ops")]).unwrap();
//! assert_eq!(first[0].what, What::Award { currency: "xp".into(), amount: 25 });
//! let again = h.score(&[TestMoment::new("ann", "meetup").counterpart("cy").teams("sales", "ops")]).unwrap();
//! assert!(again.is_empty(), "ops was bridged already");
//! ```
//!
//! # Rules of the road
//! - Keep state only in the handler's `state` argument: the host saves it per stakeholder. A
//!   fresh sandbox runs every call, so anything else is gone, and results must not depend on
//!   how moments were split into calls.
//! - Draw randomness only from [`random`]: it is seeded per moment, so a replay draws the same.
//! - A panic fails the call: its moments keep their native scoring, and the panic message is
//!   in the failure report. A plugin that keeps failing is disabled until it is replaced.

pub mod wire;

#[doc(hidden)]
pub mod guest;
// Plays the host natively; on wasm32 the real host does, and `guest` has no emulation to drive.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

use crate::value::Attrs;
use wire::{EffectOut, Input, MomentIn, OP_AWARD, OP_BADGE, OP_CUSTOM, OP_WITHHOLD, TO_ACTOR, TO_COUNTERPART};

/// Context a plugin may declare it needs. What is not declared is not sent (and costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The actor's and the counterpart's teams ([`Moment::actor_team`], ...).
    Teams,
    /// What the native rules award for the moment ([`Moment::native_awards`]).
    Awards,
    /// The plugin's own per-stakeholder state, saved by the host between calls.
    State,
}

impl Need {
    pub const ALL: [Need; 3] = [Need::Teams, Need::Awards, Need::State];

    /// The name in a [`wire::Manifest`].
    pub fn name(self) -> &'static str {
        match self {
            Need::Teams => "teams",
            Need::Awards => "awards",
            Need::State => "state",
        }
    }

    pub fn from_name(name: &str) -> Option<Need> {
        Need::ALL.iter().copied().find(|n| n.name() == name)
    }
}

/// A plugin: what [`crate::plugin!`] exports and [`testing::Harness`] runs.
pub struct Definition<S: 'static> {
    /// Shown in effects (`source`) and failure reports.
    pub name: &'static str,
    pub version: &'static str,
    pub needs: &'static [Need],
    /// Called for every scored moment, in order, with the actor's state.
    pub handler: fn(&Moment<'_>, &mut S, &mut Effects),
}

impl<S> Definition<S> {
    pub fn manifest(&self) -> wire::Manifest {
        wire::Manifest {
            abi: wire::ABI_VERSION,
            name: self.name.to_string(),
            version: self.version.to_string(),
            context: self.needs.iter().map(|n| n.name().to_string()).collect(),
        }
    }

    pub fn needs(&self, need: Need) -> bool {
        self.needs.contains(&need)
    }
}

/// Who an effect or a native award is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Actor,
    Counterpart,
}

/// A native award of the moment ([`Need::Awards`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeAward<'a> {
    pub to: To,
    pub currency: &'a str,
    pub amount: i64,
}

/// A scored moment, as the handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Moment<'a> {
    m: &'a MomentIn,
    dict: &'a [String],
}

impl<'a> Moment<'a> {
    pub(crate) fn new(m: &'a MomentIn, input: &'a Input) -> Moment<'a> {
        Moment { m, dict: &input.dict }
    }

    fn text(&self, i: u32) -> &'a str {
        self.dict.get(i as usize).map_or("", |s| s.as_str())
    }

    /// The moment's sequence number in the organisation's log.
    pub fn seq(&self) -> u64 {
        self.m.seq
    }

    /// The actor's stakeholder number (stable within the organisation).
    pub fn actor(&self) -> u32 {
        self.m.actor
    }

    pub fn counterpart(&self) -> Option<u32> {
        self.m.counterpart
    }

    pub fn kind(&self) -> &'a str {
        self.text(self.m.kind)
    }

    pub fn channel(&self) -> &'a str {
        self.text(self.m.channel)
    }

    /// When it happened, in Unix seconds.
    pub fn at(&self) -> i64 {
        self.m.at
    }

    pub fn value(&self) -> Option<f64> {
        self.m.value
    }

    /// The actor's team ([`Need::Teams`]).
    pub fn actor_team(&self) -> Option<&'a str> {
        self.m.actor_team.map(|t| self.text(t))
    }

    /// The counterpart's team ([`Need::Teams`]).
    pub fn counterpart_team(&self) -> Option<&'a str> {
        self.m.counterpart_team.map(|t| self.text(t))
    }

    /// What the native rules award for this moment ([`Need::Awards`]).
    pub fn native_awards(&self) -> impl Iterator<Item = NativeAward<'a>> + 'a {
        let dict = self.dict;
        self.m.awards.iter().map(move |&(to, currency, amount)| NativeAward {
            to: if to == TO_COUNTERPART { To::Counterpart } else { To::Actor },
            currency: dict.get(currency as usize).map_or("", |s| s.as_str()),
            amount,
        })
    }

    /// The sum of the native awards of `currency` to the actor.
    pub fn native_points(&self, currency: &str) -> i64 {
        self.native_awards().filter(|a| a.to == To::Actor && a.currency == currency).map(|a| a.amount).sum()
    }
}

/// What the handler asks for, on the moment it is handling.
#[derive(Debug, Default)]
pub struct Effects {
    pub(crate) out: Vec<EffectOut>,
    pub(crate) moment: u32,
}

impl Effects {
    fn push(&mut self, to: u8, op: u8, name: &str, amount: i64, data: Attrs) {
        self.out.push(EffectOut { moment: self.moment, to, op, name: name.to_string(), amount, data });
    }

    /// Awards `amount` points of `currency` to the actor (negative: a penalty).
    pub fn award(&mut self, currency: &str, amount: i64) {
        self.push(TO_ACTOR, OP_AWARD, currency, amount, Attrs::new());
    }

    /// Awards `amount` points of `currency` to the counterpart (ignored by the host if the
    /// moment has none).
    pub fn award_counterpart(&mut self, currency: &str, amount: i64) {
        self.push(TO_COUNTERPART, OP_AWARD, currency, amount, Attrs::new());
    }

    /// Holds back everything the native rules award for this moment; `reason` is reported.
    pub fn withhold(&mut self, reason: &str) {
        self.push(TO_ACTOR, OP_WITHHOLD, reason, 0, Attrs::new());
    }

    /// Grants the actor a badge of the rule set that has no metric of its own.
    pub fn badge(&mut self, badge: &str) {
        self.push(TO_ACTOR, OP_BADGE, badge, 0, Attrs::new());
    }

    /// Emits a custom effect for the actor, delivered with the other effects.
    pub fn custom(&mut self, name: &str, data: Attrs) {
        self.push(TO_ACTOR, OP_CUSTOM, name, 0, data);
    }
}

/// A random number from the current moment's own stream (seeded by the organisation's seed
/// and the moment's sequence number).
pub fn random() -> u64 {
    guest::random()
}

/// A uniform draw in `0..n` (`n > 0`).
pub fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Lemire's multiply-shift: no modulo bias worth caring about at these sizes.
    ((random() as u128 * n as u128) >> 64) as u64
}

/// Logs a line, kept with the call (up to the log limit) and shown when a call fails.
pub fn log(text: &str) {
    guest::log(text)
}

/// Exports a [`Definition`] as a plugin module: `alloc`, `score` and `manifest`. Compiles to
/// nothing off wasm32, so the same crate builds natively for its tests.
#[macro_export]
macro_rules! plugin {
    ($definition:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[export_name = "alloc"]
        pub extern "C" fn __plaudit_alloc(len: i32) -> i32 {
            $crate::plugin::guest::alloc(len)
        }

        #[cfg(target_arch = "wasm32")]
        #[export_name = "score"]
        pub extern "C" fn __plaudit_score(ptr: i32, len: i32) -> i64 {
            $crate::plugin::guest::score(&$definition, ptr, len)
        }

        #[cfg(target_arch = "wasm32")]
        #[export_name = "manifest"]
        pub extern "C" fn __plaudit_manifest() -> i64 {
            $crate::plugin::guest::manifest(&$definition)
        }
    };
}
