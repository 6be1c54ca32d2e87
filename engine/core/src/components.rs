//! A stakeholder's state: one bevy component, [`Scorecard`], on its entity, and the cold
//! profile fields ([`Details`]) in a component of their own.
//!
//! Everything scoring keeps about a stakeholder is one component, so that a pass's lookup of a
//! stakeholder is one table row (two cache lines, with one change tick) rather than a row and a
//! tick in seven columns: the scoring loop is bound by those cache misses. Each part is still
//! owned (written) by one pass; the table below is the contract:
//!
//! | part of [`Scorecard`] | written by | what |
//! |---|---|---|
//! | [`Identity`], and [`Details`] | `world` (resolve) | external id, kind, team; name, attributes |
//! | [`GuardState`] | `guard` | last scored moment, moments in the current guard window |
//! | [`Caps`], [`Seen`] | `rules` | cap counters per rule; counterparts, channels, teams met |
//! | [`Wallet`], [`Tally`] | `effects` | balances; metrics, streaks, badges, level, challenges |
//! | [`Standing`] | `effects` (pending) and `leaderboard` (published) | leaderboard entries |
//!
//! Everything that grows is sparse and sorted, empty (and unallocated) until used: most
//! stakeholders in a skewed population have few moments, and memory per stakeholder is a
//! budgeted figure (docs/design.md, the figures). The collections keep their length inline, so that a pass
//! can prefetch their elements, and a binary search start, without first loading a heap header
//! (which measured 15 % of scoring throughput): `Wallet`, `Caps`, `Tally` and `Standing` are
//! boxed slices grown by exactly one (16 bytes inline; most hold a few entries), `Seen` a
//! `Vec` while it is small.

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ids::Sym;
use crate::keyset::KeySet;

/// Who a stakeholder is. `ext` is its id in the directory's interner.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity {
    pub ext: u32,
    pub kind: Sym,
    pub team: Sym,
}

/// Profile fields only some stakeholders have.
#[derive(Component, Clone, Debug, Default)]
pub struct Details {
    pub name: Option<Box<str>>,
    pub attrs: plaudit_sdk::Attrs,
}

/// Balances, one per currency; empty until the first award.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Wallet(pub Box<[i64]>);

impl Wallet {
    pub fn balance(&self, c: u8) -> i64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }

    /// Adds `amount` to the balance of `c`, within [`crate::bounds::MAX_BALANCE`]: returns the
    /// part given (all of it unless the bound held some back) and the new balance.
    pub fn credit(&mut self, currencies: usize, c: u8, amount: i64) -> (i64, i64) {
        if self.0.is_empty() {
            self.0 = vec![0; currencies].into_boxed_slice();
        }
        let b = &mut self.0[c as usize];
        let (given, new) = crate::bounds::credit(*b, amount);
        *b = new;
        (given, new)
    }
}

/// The cheat guard's memory of a stakeholder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardState {
    /// Hash of (kind, channel, counterpart) of the last scored watched moment, and its time.
    pub last_key: u32,
    pub last_at: i64,
    /// The guard window the count belongs to.
    pub window: i32,
    pub count: u32,
}

impl Default for GuardState {
    fn default() -> Self {
        GuardState { last_key: 0, last_at: i64::MIN, window: 0, count: 0 }
    }
}

/// Cap counters of one capped rule for one stakeholder, in the window `period`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSlot {
    pub rule: u16,
    pub period: i32,
    pub times: u32,
    pub points: i64,
}

/// Cap counters, sorted by rule slot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Caps(pub Box<[CapSlot]>);

impl Caps {
    /// The counters of `rule` in `period`, reset if they belonged to an older window. A late
    /// moment (of a window before the current one) counts against the current window: windows
    /// never move backwards, so a late moment cannot reopen an allowance.
    pub fn slot(&mut self, rule: u16, period: i32) -> &mut CapSlot {
        let i = match self.0.binary_search_by_key(&rule, |s| s.rule) {
            Ok(i) => i,
            Err(i) => {
                insert_at(&mut self.0, i, CapSlot { rule, period, times: 0, points: 0 });
                i
            }
        };
        let s = &mut self.0[i];
        if period > s.period {
            *s = CapSlot { rule, period, times: 0, points: 0 };
        }
        s
    }
}

/// What a stakeholder has met, as keys `tag << 32 | id`: a small sorted `Vec` while it is
/// small (most stakeholders), a hash set once it grows (the very active few, who meet
/// thousands of counterparts), so that an insert never costs more than O(log n).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Seen {
    #[default]
    Empty,
    Small(Vec<u64>),
    Large(Box<Large>),
}

/// A large [`Seen`]: what was met for good in a [`KeySet`] (whose lookups the rules pass
/// prefetches), and what was met within challenge windows apart, sorted, so that a window's end
/// clears a few keys instead of scanning thousands of counterparts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Large {
    met: KeySet,
    /// Keys with a challenge window's tag ([`seen_tag::is_window`]), sorted.
    windows: Vec<u64>,
}

impl Large {
    fn of(keys: impl IntoIterator<Item = u64>) -> Large {
        let mut large = Large::default();
        for key in keys {
            large.insert(key);
        }
        large
    }

    fn insert(&mut self, key: u64) -> bool {
        if !seen_tag::is_window((key >> 32) as u32) {
            return self.met.insert(key);
        }
        match self.windows.binary_search(&key) {
            Ok(_) => false,
            Err(i) => {
                self.windows.insert(i, key);
                true
            }
        }
    }

    fn contains(&self, key: u64) -> bool {
        if seen_tag::is_window((key >> 32) as u32) {
            self.windows.binary_search(&key).is_ok()
        } else {
            self.met.contains(key)
        }
    }

    fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.met.iter().chain(self.windows.iter().copied())
    }
}

/// The tags of [`Seen`] keys.
pub mod seen_tag {
    pub const COUNTERPART: u32 = 1;
    pub const CHANNEL: u32 = 2;
    /// Teams other than the actor's own, met through a counterpart.
    pub const TEAM: u32 = 3;
    /// Distinct teams met within challenge `c`'s current window: `CHALLENGE_TEAMS + 2 * c`.
    pub const CHALLENGE_TEAMS: u32 = 0x100;
    /// Distinct counterparts within challenge `c`'s window: `CHALLENGE_TEAMS + 2 * c + 1`.
    pub const CHALLENGE_COUNTERPARTS: u32 = 0x101;

    /// Whether `tag` is one of a challenge window's (cleared when the window ends).
    #[inline]
    pub fn is_window(tag: u32) -> bool {
        tag >= CHALLENGE_TEAMS
    }

    /// The key of `id` under `tag`.
    #[inline]
    pub fn key(tag: u32, id: u32) -> u64 {
        (u64::from(tag) << 32) | u64::from(id)
    }
}

impl Seen {
    /// Past this many keys the set moves to a hash set.
    const SMALL_MAX: usize = 32;

    /// Inserts `(tag, id)`; true if it was new.
    pub fn insert(&mut self, tag: u32, id: u32) -> bool {
        let key = seen_tag::key(tag, id);
        match self {
            Seen::Empty => {
                *self = Seen::Small(vec![key]);
                true
            }
            Seen::Small(v) => match v.binary_search(&key) {
                Ok(_) => false,
                Err(_) if v.len() >= Self::SMALL_MAX => {
                    let mut large = Large::of(v.iter().copied());
                    large.insert(key);
                    *self = Seen::Large(Box::new(large));
                    true
                }
                Err(i) => {
                    v.reserve_exact(1);
                    v.insert(i, key);
                    true
                }
            },
            Seen::Large(large) => large.insert(key),
        }
    }

    /// Starts loading what looking up each `(tag, id)` of `keys` will read: a small set's first
    /// lines (once for all), or for a large set the table line where each probe begins.
    #[inline]
    pub fn prefetch(&self, keys: &[(u32, u32)]) {
        match self {
            Seen::Empty => {}
            Seen::Small(v) => crate::prefetch::prefetch_items(v),
            Seen::Large(large) => {
                for &(tag, id) in keys {
                    match seen_tag::is_window(tag) {
                        true => crate::prefetch::prefetch_items(&large.windows),
                        false => large.met.prefetch(seen_tag::key(tag, id)),
                    }
                }
            }
        }
    }

    pub fn contains(&self, tag: u32, id: u32) -> bool {
        let key = seen_tag::key(tag, id);
        match self {
            Seen::Empty => false,
            Seen::Small(v) => v.binary_search(&key).is_ok(),
            Seen::Large(large) => large.contains(key),
        }
    }

    /// Forgets every key with `tag` (a challenge window ended).
    pub fn clear_tag(&mut self, tag: u32) {
        let keep = |k: &u64| (k >> 32) as u32 != tag;
        match self {
            Seen::Empty => {}
            Seen::Small(v) => v.retain(keep),
            Seen::Large(large) if seen_tag::is_window(tag) => large.windows.retain(keep),
            Seen::Large(large) => large.met.retain(|k| keep(&k)),
        }
    }

    /// Rewrites every key's tag through `f`, dropping the keys it maps to `None` (a rule-set
    /// version renumbered or removed challenges).
    pub fn remap(&mut self, f: impl Fn(u32) -> Option<u32>) {
        let keys: Vec<u64> = match self {
            Seen::Empty => return,
            Seen::Small(v) => std::mem::take(v),
            Seen::Large(large) => large.keys().collect(),
        };
        *self = Seen::Empty;
        for key in keys {
            if let Some(tag) = f((key >> 32) as u32) {
                self.insert(tag, key as u32);
            }
        }
    }

    /// Every key, sorted (for a snapshot).
    pub fn keys(&self) -> Vec<u64> {
        match self {
            Seen::Empty => Vec::new(),
            Seen::Small(v) => v.clone(),
            Seen::Large(large) => {
                let mut keys: Vec<u64> = large.keys().collect();
                keys.sort_unstable();
                keys
            }
        }
    }

    /// The set holding `keys` (as [`Seen::keys`] gave them).
    pub fn from_keys(mut keys: Vec<u64>) -> Seen {
        keys.sort_unstable();
        keys.dedup();
        match keys.len() {
            0 => Seen::Empty,
            n if n <= Self::SMALL_MAX => Seen::Small(keys),
            _ => Seen::Large(Box::new(Large::of(keys))),
        }
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Seen::Empty => 0,
            Seen::Small(v) => v.capacity() * 8,
            Seen::Large(large) => size_of::<Large>() + large.met.capacity() * 8 + large.windows.capacity() * 8,
        }
    }
}

/// One entry of a stakeholder's [`Tally`]: what `a` and `b` mean depends on the key's tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub key: u32,
    pub a: i32,
    pub b: i64,
}

/// Slot keys: `tag << 16 | index`.
pub mod tally_key {
    /// A metric's value: `b` = value.
    pub const METRIC: u32 = 1 << 16;
    /// A streak: `a` = last active period, `b` = length | best << 32.
    pub const STREAK: u32 = 2 << 16;
    /// A badge: `b` = tiers earned (tiered), times earned (repeatable, granted) or 1 (one-off).
    pub const BADGE: u32 = 3 << 16;
    /// The level: `b` = level index + 1.
    pub const LEVEL: u32 = 4 << 16;
    /// An individual challenge: `a` = window, `b` = moments | completed << 62.
    pub const CHALLENGE: u32 = 5 << 16;
    /// Distinct counts in an individual challenge's window: `a` = teams, `b` = counterparts.
    pub const CHALLENGE_DISTINCT: u32 = 6 << 16;
    /// Team challenge contribution: `b` = the generation of the team window last contributed to.
    pub const TEAM_CONTRIBUTION: u32 = 7 << 16;
}

/// Metrics, streaks, badges, level and challenge progress, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tally(pub Box<[Slot]>);

impl Tally {
    pub fn get(&self, key: u32) -> Option<Slot> {
        self.0.binary_search_by_key(&key, |s| s.key).ok().map(|i| self.0[i])
    }

    pub fn value(&self, key: u32) -> i64 {
        self.get(key).map_or(0, |s| s.b)
    }

    /// Empties slot `key` (as if never made).
    pub fn remove(&mut self, key: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&key, |s| s.key) {
            let mut slots = std::mem::take(&mut self.0).into_vec();
            slots.remove(i);
            self.0 = slots.into_boxed_slice();
        }
    }

    pub fn slot(&mut self, key: u32) -> &mut Slot {
        let i = match self.0.binary_search_by_key(&key, |s| s.key) {
            Ok(i) => i,
            Err(i) => {
                insert_at(&mut self.0, i, Slot { key, a: 0, b: 0 });
                i
            }
        };
        &mut self.0[i]
    }
}

/// A stakeholder's entry on one leaderboard: the value to publish and the value published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub board: u16,
    /// Window of `value` (0 for all-time boards).
    pub window: i32,
    pub value: i64,
    /// Sequence of the record that set `value`: ties go to whoever got there first.
    pub seq: u64,
    /// What the board holds now (see [`Entry::published`]): plain fields rather than an
    /// `Option` of a tuple, 48 bytes an entry instead of 64. `pub_seq == 0` means nothing is
    /// published (sequences start at 1).
    pub pub_window: i32,
    pub pub_value: i64,
    pub pub_seq: u64,
    /// The team ranking it was published in.
    pub published_team: Sym,
}

impl Entry {
    /// What the board holds now: (window, value, seq), if anything.
    pub fn published(&self) -> Option<(i32, i64, u64)> {
        (self.pub_seq != 0).then_some((self.pub_window, self.pub_value, self.pub_seq))
    }

    pub fn set_published(&mut self, p: Option<(i32, i64, u64)>) {
        (self.pub_window, self.pub_value, self.pub_seq) = p.unwrap_or((0, 0, 0));
    }
}

/// Leaderboard entries, sorted by board.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Standing {
    pub entries: Box<[Entry]>,
}

impl Standing {
    pub fn entry(&mut self, board: u16) -> &mut Entry {
        let i = match self.entries.binary_search_by_key(&board, |e| e.board) {
            Ok(i) => i,
            Err(i) => {
                insert_at(&mut self.entries, i, Entry { board, ..Entry::default() });
                i
            }
        };
        &mut self.entries[i]
    }

    pub fn get(&self, board: u16) -> Option<&Entry> {
        self.entries.binary_search_by_key(&board, |e| e.board).ok().map(|i| &self.entries[i])
    }
}

/// Inserts `x` at `i` of a boxed slice, growing it by exactly one: the sorted collections of
/// a stakeholder's state hold no spare room (most hold a few entries), and their length stays
/// inline, so that a pass can prefetch their elements without first loading a heap header.
fn insert_at<T>(b: &mut Box<[T]>, i: usize, x: T) {
    let mut v = std::mem::take(b).into_vec();
    v.reserve_exact(1);
    v.insert(i, x);
    *b = v.into_boxed_slice();
}

/// Everything scoring keeps about a stakeholder (see the module's table for who writes what).
///
/// Two cache lines, aligned to them so that a row of bevy's table never straddles a third: the
/// first holds what the guard and rules passes read (`guard`, `caps`, `seen`), the second what
/// the effects pass and the leaderboards add (`wallet`, `tally`, `standing`, `identity`).
#[derive(Component, Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct Scorecard {
    pub guard: GuardState,
    pub caps: Caps,
    pub seen: Seen,
    pub wallet: Wallet,
    pub tally: Tally,
    pub standing: Standing,
    pub identity: Identity,
}

const _: () = assert!(size_of::<Scorecard>() == 128, "a scorecard is two cache lines");
const _: () = assert!(std::mem::offset_of!(Scorecard, wallet) == 64, "the effects pass's part starts a line");

impl Scorecard {
    /// A new stakeholder's: nothing earned, nothing met.
    pub fn new(identity: Identity) -> Scorecard {
        Scorecard { identity, ..Scorecard::default() }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Seen, seen_tag};

    /// Tags as the passes use them: counterparts, channels, teams, and two challenges' windows.
    fn tag() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(seen_tag::COUNTERPART),
            Just(seen_tag::CHANNEL),
            Just(seen_tag::TEAM),
            Just(seen_tag::CHALLENGE_TEAMS),
            Just(seen_tag::CHALLENGE_COUNTERPARTS + 2),
        ]
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u32),
        Clear(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            9 => (tag(), 0u32..200).prop_map(|(t, id)| Op::Insert(t, id)),
            1 => tag().prop_map(Op::Clear),
        ]
    }

    proptest! {
        /// Whatever its representation (a sorted vector, a hash set with the challenge windows
        /// apart), a `Seen` answers as a plain set of keys does, and its keys survive a snapshot.
        #[test]
        fn seen_behaves_as_a_set_of_keys_through_growth_and_window_clears(ops in proptest::collection::vec(op(), 0..400)) {
            let mut seen = Seen::default();
            let mut model = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(tag, id) => {
                        let key = seen_tag::key(tag, id);
                        prop_assert_eq!(seen.insert(tag, id), model.insert(key));
                        prop_assert!(seen.contains(tag, id));
                    }
                    Op::Clear(tag) => {
                        seen.clear_tag(tag);
                        model.retain(|k| (k >> 32) as u32 != tag);
                    }
                }
            }
            let keys: Vec<u64> = model.into_iter().collect();
            prop_assert_eq!(&seen.keys(), &keys);
            prop_assert_eq!(Seen::from_keys(keys.clone()).keys(), keys);
        }
    }
}
