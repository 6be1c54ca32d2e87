//! A set of `u64` keys in one open-addressed table (linear probing), whose slot for a key can
//! be prefetched before the key is looked up.
//!
//! It holds what a very active stakeholder has met ([`crate::components::Seen`]): thousands of
//! keys, looked up at random by every moment, so a lookup is usually a cache miss. A general
//! hash set cannot say where a key's probe starts, so the rules pass could not start that miss
//! ahead of time and waited on it (8 % of the scoring loop's cycles, in `hashbrown`'s
//! insert). Here a probe starts at [`KeySet::prefetch`]'s line and, at most three quarters
//! full, usually ends in it.
//!
//! **Owns** nothing but its keys; it knows nothing of what they mean.

use crate::prefetch::prefetch;

/// Fibonacci hashing: the top bits of `key * 2^64 / phi` spread consecutive ids evenly.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The smallest table, in slots.
const MIN_SLOTS: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// A power of two long (or empty), at most three quarters full. 0 marks an empty slot;
    /// the key 0 itself is kept in `zero`.
    slots: Box<[u64]>,
    /// `64 - log2(slots.len())`: a key's first slot is its spread hash shifted right by it.
    shift: u32,
    len: usize,
    zero: bool,
}

impl KeySet {
    pub fn new() -> KeySet {
        KeySet::default()
    }

    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots allocated (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(SPREAD) >> self.shift) as usize
    }

    /// Starts loading the line where a lookup of `key` begins.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        if let Some(slot) = self.slots.get(self.home(key)) {
            prefetch(slot);
        }
    }

    /// Where `key` is, or the empty slot where it would go. The table is never full.
    #[inline]
    fn find(&self, key: u64) -> (usize, bool) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            match self.slots[i] {
                0 => return (i, false),
                k if k == key => return (i, true),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub fn contains(&self, key: u64) -> bool {
        match key {
            0 => self.zero,
            _ if self.slots.is_empty() => false,
            _ => self.find(key).1,
        }
    }

    /// Adds `key`; true if it was not there.
    pub fn insert(&mut self, key: u64) -> bool {
        if key == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let (i, found) = self.find(key);
        if !found {
            self.slots[i] = key;
            self.len += 1;
        }
        !found
    }

    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; slots].into_boxed_slice());
        self.shift = 64 - slots.trailing_zeros();
        for key in old.iter().copied().filter(|&k| k != 0) {
            let (i, _) = self.find(key);
            self.slots[i] = key;
        }
    }

    /// Keeps only the keys `keep` is true of.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let kept: Vec<u64> = self.iter().filter(|&k| keep(k)).collect();
        *self = kept.into_iter().collect();
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let zero = self.zero.then_some(0);
        zero.into_iter().chain(self.slots.iter().copied().filter(|&k| k != 0))
    }
}

impl FromIterator<u64> for KeySet {
    fn from_iter<I: IntoIterator<Item = u64>>(keys: I) -> KeySet {
        let mut set = KeySet::new();
        for key in keys {
            set.insert(key);
        }
        set
    }
}

/// The same keys, wherever the order they came in put them.
impl PartialEq for KeySet {
    fn eq(&self, other: &KeySet) -> bool {
        self.len() == other.len() && self.iter().all(|k| other.contains(k))
    }
}

impl Eq for KeySet {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::KeySet;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Contains(u64),
        RetainOdd,
    }

    /// Keys as `Seen` makes them (a small tag over an id), plus 0 and the extremes.
    fn key() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => (1u64..4, 0u64..300).prop_map(|(tag, id)| tag << 32 | id),
            1 => Just(0u64),
            1 => Just(u64::MAX),
            1 => any::<u64>(),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            10 => key().prop_map(Op::Insert),
            5 => key().prop_map(Op::Contains),
            1 => Just(Op::RetainOdd),
        ]
    }

    proptest! {
        /// Through growth and retains, the table answers as a plain set does.
        #[test]
        fn a_key_set_answers_as_a_plain_set(ops in prop::collection::vec(op(), 0..600)) {
            let (mut set, mut model) = (KeySet::new(), BTreeSet::new());
            for op in ops {
                match op {
                    Op::Insert(k) => prop_assert_eq!(set.insert(k), model.insert(k)),
                    Op::Contains(k) => prop_assert_eq!(set.contains(k), model.contains(&k)),
                    Op::RetainOdd => {
                        set.retain(|k| k % 2 == 1);
                        model.retain(|k| k % 2 == 1);
                    }
                }
                prop_assert_eq!(set.len(), model.len());
                // At most three quarters full (the key 0 is kept apart).
                prop_assert!(set.capacity() == 0 || set.len().saturating_sub(1) * 4 <= set.capacity() * 3);
            }
            let mut keys: Vec<u64> = set.iter().collect();
            keys.sort_unstable();
            prop_assert_eq!(keys, model.iter().copied().collect::<Vec<_>>());
        }

        /// Equality is of the keys, not of where the order of insertion put them.
        #[test]
        fn sets_of_the_same_keys_are_equal_whatever_the_order(keys in prop::collection::vec(key(), 0..200)) {
            let forward: KeySet = keys.iter().copied().collect();
            let backward: KeySet = keys.iter().rev().copied().collect();
            prop_assert_eq!(&forward, &backward);
            let mut fewer = forward.clone();
            if let Some(&k) = keys.first() {
                fewer.retain(|x| x != k);
                prop_assert_ne!(&fewer, &forward);
            }
        }
    }

    #[test]
    fn an_empty_set_holds_nothing_and_allocates_nothing() {
        let set = KeySet::new();
        assert!(!set.contains(0) && !set.contains(7));
        set.prefetch(7);
        assert_eq!((set.len(), set.capacity()), (0, 0));
    }
}
