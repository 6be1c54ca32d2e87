//! Order-statistic containers for leaderboards.
//!
//! This module owns two in-memory structures and nothing else (no I/O, no
//! knowledge of scores, entities or pages):
//!
//! * [`OrderedIndex`] — a sorted set of unique keys answering positional
//!   queries: the rank (0-based position) of a key, the key at a position,
//!   the number of keys below an arbitrary probe, and ascending iteration
//!   from a position. Leaderboards use it for "top page", "rank of X" and
//!   "around me" queries, with cheap remove + insert when a score changes.
//! * [`DistinctCounter`] — a multiset of scores answering "how many distinct
//!   scores are strictly below `s`", which is what dense ranking needs.
//!
//! # Design
//!
//! [`OrderedIndex`] is a list of sorted blocks, in the style of Python's
//! `sortedcontainers.SortedList`: keys live in `Vec<Vec<K>>`, every block
//! is non-empty and holds between roughly `load / 2` and `2 * load` keys,
//! and all keys of block `b` are below all keys of block `b + 1`. A
//! parallel vector holds each block's maximum, so locating the block of a
//! key is one binary search over a small, cache-resident slice, followed
//! by a binary search inside the block.
//!
//! Positions come from a Fenwick tree over the block lengths: the number of
//! keys before block `b` is an `O(log blocks)` prefix sum, and the block
//! holding position `i` is an `O(log blocks)` descent. An insert or remove
//! that does not change the block structure updates the tree in place; a
//! split (block longer than `2 * load`), a merge (block shorter than
//! `load / 2`) or the removal of an empty block rebuilds the tree in
//! `O(blocks)`, which happens at most once every `~load / 2` updates.
//!
//! Ordering is ascending. A leaderboard that shows the highest score first
//! stores keys such as `(Reverse(score), entity)` or `(-score, entity)`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::Hash;

/// Default target block length; blocks split above `2 * load` keys.
const DEFAULT_LOAD: usize = 256;

/// Fenwick (binary indexed) tree over block lengths, 0-indexed storage.
///
/// `tree[i]` holds the sum of lengths of blocks `(i & (i + 1))..=i`.
#[derive(Clone, Debug, Default)]
struct Fenwick {
    tree: Vec<usize>,
    /// Largest power of two `<= tree.len()`, or 0 when empty.
    top: usize,
}

impl Fenwick {
    /// Replaces the tree with one built over `lens` in `O(n)`.
    fn rebuild(&mut self, lens: impl Iterator<Item = usize>) {
        self.tree.clear();
        self.tree.extend(lens);
        let n = self.tree.len();
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                self.tree[parent] += self.tree[i];
            }
        }
        self.top = if n == 0 { 0 } else { 1 << n.ilog2() };
    }

    fn clear(&mut self) {
        self.tree.clear();
        self.top = 0;
    }

    /// Adds one to the length of block `i`.
    fn increment(&mut self, mut i: usize) {
        while let Some(slot) = self.tree.get_mut(i) {
            *slot += 1;
            i |= i + 1;
        }
    }

    /// Subtracts one from the length of block `i` (which must be non-zero).
    fn decrement(&mut self, mut i: usize) {
        while let Some(slot) = self.tree.get_mut(i) {
            *slot -= 1;
            i |= i + 1;
        }
    }

    /// Total length of blocks `0..end`.
    fn prefix(&self, mut end: usize) -> usize {
        let mut sum = 0;
        while end > 0 {
            sum += self.tree[end - 1];
            end &= end - 1;
        }
        sum
    }

    /// Returns `(block, offset)` such that position `rank` is element
    /// `offset` of `block`, i.e. the largest `block` with
    /// `prefix(block) <= rank` and `offset = rank - prefix(block)`.
    fn find(&self, rank: usize) -> (usize, usize) {
        let n = self.tree.len();
        let mut pos = 0;
        let mut rem = rank;
        let mut step = self.top;
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= rem {
                pos = next;
                rem -= self.tree[next - 1];
            }
            step >>= 1;
        }
        (pos, rem)
    }
}

/// A sorted set of unique keys with `O(log n)` rank and select.
///
/// Keys are kept in ascending [`Ord`] order. Duplicate keys are rejected,
/// so callers that rank entities by score make keys unique by appending an
/// entity id, e.g. `(score, entity_id)`.
///
/// | operation | cost |
/// |---|---|
/// | [`insert`](Self::insert), [`remove`](Self::remove) | `O(log n + load)` amortised (an in-block shift) |
/// | [`rank`](Self::rank), [`position_of_first_not_less`](Self::position_of_first_not_less), [`nth`](Self::nth) | `O(log n)` |
/// | [`iter_from`](Self::iter_from) | `O(log n)` to start, `O(1)` per item |
pub struct OrderedIndex<K> {
    /// Sorted, non-empty blocks; concatenated they are the sorted contents.
    blocks: Vec<Vec<K>>,
    /// `maxes[b]` is the last (largest) key of `blocks[b]`.
    maxes: Vec<K>,
    /// Prefix sums of block lengths.
    tree: Fenwick,
    /// Total number of keys.
    len: usize,
    /// Target block length.
    load: usize,
}

impl<K: Ord + Copy> OrderedIndex<K> {
    /// Creates an empty index with the default block load (512).
    pub fn new() -> Self {
        Self::with_load(DEFAULT_LOAD)
    }

    /// Creates an empty index whose blocks hold about `load` keys
    /// (split above `2 * load`, merged below `load / 2`).
    ///
    /// Small loads exercise splitting and merging in tests; larger loads
    /// trade cheaper lookups for longer in-block shifts. `load` is clamped
    /// to at least 1.
    pub fn with_load(load: usize) -> Self {
        Self { blocks: Vec::new(), maxes: Vec::new(), tree: Fenwick::default(), len: 0, load: load.max(1) }
    }

    /// Number of keys in the index.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every key, keeping the configured load.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.maxes.clear();
        self.tree.clear();
        self.len = 0;
    }

    /// Inserts `key`; returns `false` (and changes nothing) if it was
    /// already present.
    pub fn insert(&mut self, key: K) -> bool {
        let Some(last) = self.blocks.len().checked_sub(1) else {
            let mut block = Vec::with_capacity(self.block_capacity());
            block.push(key);
            self.blocks.push(block);
            self.maxes.push(key);
            self.len = 1;
            self.rebuild_tree();
            return true;
        };
        // First block whose maximum is >= key; a key above every maximum
        // is appended to the last block.
        let b = self.maxes.partition_point(|m| *m < key).min(last);
        let block = &mut self.blocks[b];
        let pos = match block.binary_search(&key) {
            Ok(_) => return false,
            Err(pos) => pos,
        };
        block.insert(pos, key);
        if pos + 1 == block.len() {
            self.maxes[b] = key;
        }
        self.len += 1;
        if block.len() > 2 * self.load {
            self.split(b);
            self.rebuild_tree();
        } else {
            self.tree.increment(b);
        }
        true
    }

    /// Removes `key`; returns `false` if it was not present.
    pub fn remove(&mut self, key: &K) -> bool {
        let block_count = self.blocks.len();
        let b = self.maxes.partition_point(|m| m < key);
        let Some(block) = self.blocks.get_mut(b) else {
            return false;
        };
        let Ok(pos) = block.binary_search(key) else {
            return false;
        };
        block.remove(pos);
        self.len -= 1;
        let remaining = block.len();
        if remaining == 0 || (remaining < self.load / 2 && block_count > 1) {
            self.rebalance(b);
            self.rebuild_tree();
        } else {
            if pos == remaining {
                // `remaining > 0` here, so `pos - 1` is the new last key.
                self.maxes[b] = block[pos - 1];
            }
            self.tree.decrement(b);
        }
        true
    }

    /// Replaces `old` with `new` (a score change); equivalent to
    /// `remove(old)` then `insert(new)`, but when `new` belongs in the same
    /// block as `old` (typical for small score deltas) it only rotates the
    /// keys between the two positions and leaves the prefix counts alone.
    ///
    /// Returns `false` and changes nothing if `old` is absent or `new` is
    /// already present as a different key.
    pub fn replace(&mut self, old: &K, new: K) -> bool {
        let last = self.blocks.len().saturating_sub(1);
        let b = self.maxes.partition_point(|m| m < old);
        let Some(block) = self.blocks.get_mut(b) else {
            return false;
        };
        let Ok(from) = block.binary_search(old) else {
            return false;
        };
        let above_previous = b == 0 || self.maxes[b - 1] < new;
        let below_next = b == last || new <= self.maxes[b];
        if !(above_previous && below_next) {
            self.remove(old);
            if self.insert(new) {
                return true;
            }
            // `new` was already present: undo the removal.
            self.insert(*old);
            return false;
        }
        match block.binary_search(&new) {
            Ok(to) => return to == from,
            Err(to) if to > from => {
                // Positions `from + 1..to` shift down by one.
                block[from..to].rotate_left(1);
                block[to - 1] = new;
            }
            Err(to) => {
                // Positions `to..from` shift up by one.
                block[to..=from].rotate_right(1);
                block[to] = new;
            }
        }
        if let Some(&max) = block.last() {
            self.maxes[b] = max;
        }
        true
    }

    /// Removes every key of `remove` and inserts every key of `insert`, in one pass over the
    /// blocks: a batch of updates (a leaderboard brought up to date) costs one merge per block
    /// it touches instead of two searches and a shift per key. Both slices must be sorted
    /// ascending without duplicates; a key in both is removed, then inserted again. Keys of
    /// `remove` that are absent are ignored, and so are keys of `insert` already present.
    pub fn apply(&mut self, remove: &[K], insert: &[K]) {
        debug_assert!(remove.is_sorted() && insert.is_sorted());
        if remove.is_empty() && insert.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.blocks);
        let last = old.len().saturating_sub(1);
        let (mut r, mut i) = (0, 0);
        let mut out: Vec<Vec<K>> = Vec::with_capacity(old.len() + insert.len() / self.load + 1);
        // Merges go into `scratch`, which then trades places with the block merged: no
        // allocation per block.
        let mut scratch = Vec::new();
        for (b, mut block) in old.into_iter().enumerate() {
            // The updates that fall in this block: up to its maximum (everything left, for the
            // last block).
            let r_end = if b == last { remove.len() } else { r + remove[r..].partition_point(|k| *k <= self.maxes[b]) };
            let i_end = if b == last { insert.len() } else { i + insert[i..].partition_point(|k| *k <= self.maxes[b]) };
            if r == r_end && i == i_end {
                out.push(block);
                continue;
            }
            merge(&block, &remove[r..r_end], &insert[i..i_end], &mut scratch);
            (r, i) = (r_end, i_end);
            std::mem::swap(&mut block, &mut scratch);
            self.push_chunks(&mut out, block);
        }
        if self.maxes.is_empty() && !insert.is_empty() {
            self.push_chunks(&mut out, insert.to_vec());
        }
        // Short blocks join their successor (splitting again if that makes one too long).
        let mut blocks: Vec<Vec<K>> = Vec::with_capacity(out.len());
        for block in out {
            match blocks.last_mut() {
                Some(prev) if prev.len() < self.load / 2 || block.len() < self.load / 2 => {
                    prev.extend_from_slice(&block);
                    if prev.len() > 2 * self.load {
                        let tail = prev.split_off(prev.len() / 2);
                        blocks.push(tail);
                    }
                }
                _ => blocks.push(block),
            }
        }
        self.maxes = blocks.iter().filter_map(|b| b.last().copied()).collect();
        self.len = blocks.iter().map(Vec::len).sum();
        self.blocks = blocks;
        self.rebuild_tree();
    }

    /// Appends `keys` to `out`: as one block if it is not too long, else as blocks of about
    /// `load` keys.
    fn push_chunks(&self, out: &mut Vec<Vec<K>>, keys: Vec<K>) {
        if keys.len() <= 2 * self.load {
            if !keys.is_empty() {
                out.push(keys);
            }
            return;
        }
        let size = keys.len().div_ceil(keys.len().div_ceil(self.load));
        out.extend(keys.chunks(size).map(<[K]>::to_vec));
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        self.rank(key).is_some()
    }

    /// 0-based position of `key` in ascending order, or `None` if absent.
    pub fn rank(&self, key: &K) -> Option<usize> {
        let b = self.maxes.partition_point(|m| m < key);
        let pos = self.blocks.get(b)?.binary_search(key).ok()?;
        Some(self.tree.prefix(b) + pos)
    }

    /// Number of keys strictly less than `key` (the "lower bound"
    /// position), whether or not `key` itself is present. Equals
    /// [`rank`](Self::rank) when it is.
    pub fn position_of_first_not_less(&self, key: &K) -> usize {
        let b = self.maxes.partition_point(|m| m < key);
        match self.blocks.get(b) {
            Some(block) => self.tree.prefix(b) + block.partition_point(|k| k < key),
            None => self.len,
        }
    }

    /// The key at 0-based position `i` in ascending order, or `None` if
    /// `i >= len()`.
    pub fn nth(&self, i: usize) -> Option<K> {
        if i >= self.len {
            return None;
        }
        let (b, offset) = self.tree.find(i);
        self.blocks.get(b)?.get(offset).copied()
    }

    /// Keys in ascending order starting at 0-based position `start`
    /// (empty if `start >= len()`). Use `.take(n)` for a page.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = K> + '_ {
        let (b, offset) = if start < self.len { self.tree.find(start) } else { (self.blocks.len(), 0) };
        let head: &[K] = self.blocks.get(b).and_then(|block| block.get(offset..)).unwrap_or_default();
        let rest = self.blocks.get(b + 1..).unwrap_or_default();
        head.iter().chain(rest.iter().flatten()).copied()
    }

    /// All keys in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = K> + '_ {
        self.iter_from(0)
    }

    /// Capacity reserved for a new block: a full block plus the one key
    /// that triggers a split, so blocks never reallocate.
    fn block_capacity(&self) -> usize {
        2 * self.load + 1
    }

    fn rebuild_tree(&mut self) {
        self.tree.rebuild(self.blocks.iter().map(Vec::len));
    }

    /// Splits `blocks[b]` in half. Does not touch the Fenwick tree.
    fn split(&mut self, b: usize) {
        let mut tail = Vec::with_capacity(self.block_capacity());
        let block = &mut self.blocks[b];
        let half = block.len() / 2;
        tail.extend_from_slice(&block[half..]);
        block.truncate(half);
        let (Some(&left_max), Some(&right_max)) = (block.last(), tail.last()) else {
            // Only reached for blocks of length < 2, which never split.
            return;
        };
        self.maxes[b] = left_max;
        self.maxes.insert(b + 1, right_max);
        self.blocks.insert(b + 1, tail);
    }

    /// Restores the block invariants after `blocks[b]` became empty or
    /// shorter than `load / 2`: drops it if empty, otherwise merges it
    /// with a neighbour (re-splitting if the result is too long). Does not
    /// touch the Fenwick tree.
    fn rebalance(&mut self, b: usize) {
        if self.blocks[b].is_empty() {
            self.blocks.remove(b);
            self.maxes.remove(b);
            return;
        }
        if self.blocks.len() < 2 {
            if let Some(&max) = self.blocks[b].last() {
                self.maxes[b] = max;
            }
            return;
        }
        let (left, right) = if b == 0 { (0, 1) } else { (b - 1, b) };
        let moved = self.blocks.remove(right);
        self.maxes.remove(right);
        let merged = &mut self.blocks[left];
        merged.extend_from_slice(&moved);
        if let Some(&max) = merged.last() {
            self.maxes[left] = max;
        }
        if merged.len() > 2 * self.load {
            self.split(left);
        }
    }
}

/// `block` without the keys of `remove`, with the keys of `insert` (all three sorted), into
/// `out` (cleared first).
fn merge<K: Ord + Copy>(block: &[K], remove: &[K], insert: &[K], out: &mut Vec<K>) {
    out.clear();
    out.reserve(block.len() + insert.len());
    let mut removed = remove.iter().peekable();
    let mut added = insert.iter().peekable();
    for &k in block {
        while removed.next_if(|r| **r < k).is_some() {}
        let gone = removed.next_if(|r| **r == k).is_some();
        while let Some(&a) = added.next_if(|a| **a < k) {
            out.push(a);
        }
        if added.next_if(|a| **a == k).is_some() || !gone {
            out.push(k);
        }
    }
    out.extend(added.copied());
}

impl<K: Ord + Copy> Default for OrderedIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone> Clone for OrderedIndex<K> {
    fn clone(&self) -> Self {
        Self {
            blocks: self.blocks.clone(),
            maxes: self.maxes.clone(),
            tree: self.tree.clone(),
            len: self.len,
            load: self.load,
        }
    }
}

impl<K> fmt::Debug for OrderedIndex<K> {
    /// Summary only (length, block count, load); keys are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderedIndex")
            .field("len", &self.len)
            .field("blocks", &self.blocks.len())
            .field("load", &self.load)
            .finish()
    }
}

/// A multiset of scores that counts distinct scores below a probe, for
/// dense ranking (tied scores share a rank, the next score is one higher).
///
/// Distinct scores live in an [`OrderedIndex`]; multiplicities live in a
/// hash map, so a score enters the index on its first [`add`](Self::add)
/// and leaves it when its last copy is [`remove`](Self::remove)d.
pub struct DistinctCounter<S> {
    distinct: OrderedIndex<S>,
    counts: HashMap<S, usize>,
    total: usize,
}

impl<S: Ord + Copy + Hash> DistinctCounter<S> {
    /// Creates an empty counter.
    pub fn new() -> Self {
        Self::with_load(DEFAULT_LOAD)
    }

    /// Creates an empty counter whose distinct-score index uses blocks of
    /// about `load` keys (see [`OrderedIndex::with_load`]).
    pub fn with_load(load: usize) -> Self {
        Self { distinct: OrderedIndex::with_load(load), counts: HashMap::new(), total: 0 }
    }

    /// Adds one occurrence of `score`.
    pub fn add(&mut self, score: S) {
        match self.counts.entry(score) {
            Entry::Occupied(mut entry) => *entry.get_mut() += 1,
            Entry::Vacant(entry) => {
                entry.insert(1);
                self.distinct.insert(score);
            }
        }
        self.total += 1;
    }

    /// Removes one occurrence of `score`, dropping the score once its
    /// multiplicity reaches zero. Returns `false` if `score` was absent.
    pub fn remove(&mut self, score: S) -> bool {
        let Entry::Occupied(mut entry) = self.counts.entry(score) else {
            return false;
        };
        if *entry.get() > 1 {
            *entry.get_mut() -= 1;
        } else {
            entry.remove();
            self.distinct.remove(&score);
        }
        self.total -= 1;
        true
    }

    /// Number of distinct scores strictly less than `score`; the 0-based
    /// dense rank of `score` in ascending order.
    pub fn distinct_less_than(&self, score: &S) -> usize {
        self.distinct.position_of_first_not_less(score)
    }

    /// Number of distinct scores present.
    pub fn distinct_len(&self) -> usize {
        self.distinct.len()
    }

    /// How many times `score` is present (0 if absent).
    pub fn multiplicity(&self, score: &S) -> usize {
        self.counts.get(score).copied().unwrap_or(0)
    }

    /// Total number of occurrences, counting duplicates.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether no score is present.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Removes every score.
    pub fn clear(&mut self) {
        self.distinct.clear();
        self.counts.clear();
        self.total = 0;
    }
}

impl<S: Ord + Copy + Hash> Default for DistinctCounter<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone> Clone for DistinctCounter<S> {
    fn clone(&self) -> Self {
        Self { distinct: self.distinct.clone(), counts: self.counts.clone(), total: self.total }
    }
}

impl<S> fmt::Debug for DistinctCounter<S> {
    /// Summary only (total and distinct counts); scores are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctCounter").field("len", &self.total).field("distinct", &self.distinct.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Insert(i32),
        Remove(i32),
        Replace(i32, i32),
    }

    /// Inserts and removes over a small key range, biased so the set grows
    /// in the first half and shrinks in the second: this forces splits,
    /// merges and empty-block removal at small loads.
    fn ops(key_range: i32, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
        let step = (key_range / 20).max(1);
        prop::collection::vec((0..key_range, 0u8..12, -step..=step), 0..max_len).prop_map(move |raw| {
            let half = raw.len() / 2;
            raw.into_iter()
                .enumerate()
                .map(|(i, (key, roll, delta))| {
                    let insert_odds = if i < half { 8 } else { 2 };
                    if roll >= 10 {
                        Op::Replace(key, (key + delta).rem_euclid(key_range))
                    } else if roll < insert_odds {
                        Op::Insert(key)
                    } else {
                        Op::Remove(key)
                    }
                })
                .collect()
        })
    }

    /// Structural invariants the public API relies on.
    fn assert_invariants<K: Ord + Copy + fmt::Debug>(index: &OrderedIndex<K>) {
        assert_eq!(index.blocks.len(), index.maxes.len());
        assert_eq!(index.blocks.iter().map(Vec::len).sum::<usize>(), index.len);
        let mut previous: Option<K> = None;
        for (b, block) in index.blocks.iter().enumerate() {
            assert!(!block.is_empty(), "block {b} is empty");
            assert!(block.len() <= 2 * index.load, "block {b} too long");
            assert_eq!(block.last(), Some(&index.maxes[b]), "stale max {b}");
            for &key in block {
                assert!(previous < Some(key), "keys out of order at block {b}");
                previous = Some(key);
            }
            let before: usize = index.blocks[..b].iter().map(Vec::len).sum();
            assert_eq!(index.tree.prefix(b), before, "prefix of block {b}");
        }
    }

    fn assert_matches_model(index: &OrderedIndex<i32>, model: &BTreeSet<i32>, probes: &[i32]) {
        assert_invariants(index);
        let sorted: Vec<i32> = model.iter().copied().collect();
        assert_eq!(index.len(), sorted.len());
        assert_eq!(index.is_empty(), sorted.is_empty());
        assert_eq!(index.iter().collect::<Vec<_>>(), sorted);
        for (i, key) in sorted.iter().enumerate() {
            assert_eq!(index.rank(key), Some(i));
            assert_eq!(index.nth(i), Some(*key));
        }
        assert_eq!(index.nth(sorted.len()), None);
        for start in [0, 1, sorted.len() / 3, sorted.len() / 2, sorted.len(), sorted.len() + 5] {
            let expected: Vec<i32> = sorted.iter().skip(start).copied().collect();
            assert_eq!(index.iter_from(start).collect::<Vec<_>>(), expected);
        }
        for probe in probes {
            let below = model.range(..probe).count();
            assert_eq!(index.position_of_first_not_less(probe), below);
            assert_eq!(index.rank(probe), model.contains(probe).then_some(below));
            assert_eq!(index.contains(probe), model.contains(probe));
        }
    }

    fn assert_counter_matches_model(counter: &DistinctCounter<i32>, model: &BTreeMap<i32, usize>, probes: &[i32]) {
        assert_eq!(counter.len(), model.values().sum::<usize>());
        for probe in probes {
            assert_eq!(counter.distinct_less_than(probe), model.range(..probe).count());
            assert_eq!(counter.multiplicity(probe), model.get(probe).copied().unwrap_or(0));
        }
    }

    proptest! {
        #[test]
        fn ordered_index_matches_btreeset_model(
            load in 1usize..8,
            ops in ops(400, 3000),
            probes in prop::collection::vec(-5i32..405, 0..40),
        ) {
            let mut index = OrderedIndex::with_load(load);
            let mut model = BTreeSet::new();
            for (step, op) in ops.iter().enumerate() {
                match *op {
                    Op::Insert(key) => prop_assert_eq!(index.insert(key), model.insert(key)),
                    Op::Remove(key) => prop_assert_eq!(index.remove(&key), model.remove(&key)),
                    Op::Replace(old, new) => {
                        let allowed = model.contains(&old) && (old == new || !model.contains(&new));
                        if allowed {
                            model.remove(&old);
                            model.insert(new);
                        }
                        prop_assert_eq!(index.replace(&old, new), allowed);
                    }
                }
                prop_assert_eq!(index.len(), model.len());
                if step % 97 == 0 {
                    assert_matches_model(&index, &model, &probes);
                }
            }
            assert_matches_model(&index, &model, &probes);
        }

        #[test]
        fn ordered_index_apply_of_sorted_batches_matches_btreeset_model(
            load in 1usize..8,
            batches in prop::collection::vec(
                (prop::collection::btree_set(0i32..500, 0..80), prop::collection::btree_set(0i32..500, 0..120)),
                1..25,
            ),
            probes in prop::collection::vec(-5i32..505, 0..40),
        ) {
            let mut index = OrderedIndex::with_load(load);
            let mut model = BTreeSet::new();
            for (remove, insert) in &batches {
                let remove: Vec<i32> = remove.iter().copied().collect();
                let insert: Vec<i32> = insert.iter().copied().collect();
                index.apply(&remove, &insert);
                for k in &remove {
                    model.remove(k);
                }
                model.extend(insert.iter().copied());
                assert_matches_model(&index, &model, &probes);
            }
        }

        #[test]
        fn ordered_index_drains_to_empty_in_any_order(
            load in 1usize..6,
            (keys, order) in prop::collection::btree_set(any::<i32>(), 0..600)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>())
                .prop_shuffle()
                .prop_flat_map(|keys| (Just(keys.clone()), Just(keys).prop_shuffle())),
        ) {
            let mut index = OrderedIndex::with_load(load);
            let mut model = BTreeSet::new();
            for &key in &keys {
                prop_assert!(index.insert(key));
                model.insert(key);
            }
            assert_matches_model(&index, &model, &keys[..keys.len().min(20)]);
            for (step, key) in order.iter().enumerate() {
                prop_assert!(index.remove(key));
                prop_assert!(!index.remove(key));
                model.remove(key);
                if step % 50 == 0 {
                    assert_matches_model(&index, &model, &[]);
                }
            }
            prop_assert!(index.is_empty());
            prop_assert!(index.blocks.is_empty());
            assert_matches_model(&index, &model, &[0]);
        }

        #[test]
        fn distinct_counter_matches_btreemap_model(
            load in 1usize..6,
            ops in ops(60, 1500),
            probes in prop::collection::vec(-2i32..62, 1..30),
        ) {
            let mut counter = DistinctCounter::with_load(load);
            let mut model: BTreeMap<i32, usize> = BTreeMap::new();
            for (step, op) in ops.iter().enumerate() {
                match *op {
                    Op::Insert(score) => {
                        counter.add(score);
                        *model.entry(score).or_insert(0) += 1;
                    }
                    Op::Remove(score) => {
                        let present = match model.get_mut(&score) {
                            Some(count) if *count > 1 => { *count -= 1; true }
                            Some(_) => { model.remove(&score); true }
                            None => false,
                        };
                        prop_assert_eq!(counter.remove(score), present);
                    }
                    Op::Replace(..) => {}
                }
                prop_assert_eq!(counter.distinct_len(), model.len());
                if step % 7 == 0 {
                    assert_counter_matches_model(&counter, &model, &probes);
                }
            }
            assert_counter_matches_model(&counter, &model, &probes);
            assert_invariants(&counter.distinct);
            prop_assert_eq!(counter.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn small_load_splits_then_merges_and_drops_blocks() {
        let mut index = OrderedIndex::with_load(4);
        for key in (0..1000).rev() {
            assert!(index.insert(key));
        }
        assert!(index.blocks.len() >= 1000 / 8, "inserts should split blocks");
        assert_invariants(&index);
        for key in (0..1000).filter(|k| k % 10 != 0) {
            assert!(index.remove(&key));
        }
        assert_invariants(&index);
        assert!(index.blocks.len() <= 100 / 2 + 1, "removals should merge blocks");
        let expected: Vec<i32> = (0..1000).step_by(10).collect();
        assert_eq!(index.iter().collect::<Vec<_>>(), expected);
        assert_eq!(index.rank(&500), Some(50));
        assert_eq!(index.nth(99), Some(990));
    }

    #[test]
    fn tuple_keys_rank_ties_by_entity_id() {
        let mut index = OrderedIndex::new();
        for (score, entity) in [(10i64, 3u64), (5, 1), (10, 1), (7, 2)] {
            assert!(index.insert((std::cmp::Reverse(score), entity)));
        }
        assert!(!index.insert((std::cmp::Reverse(7), 2)));
        let page: Vec<u64> = index.iter_from(0).take(3).map(|(_, entity)| entity).collect();
        assert_eq!(page, vec![1, 3, 2]);
        assert_eq!(index.rank(&(std::cmp::Reverse(5), 1)), Some(3));
        assert_eq!(index.position_of_first_not_less(&(std::cmp::Reverse(8), 0)), 2);
    }

    #[test]
    fn clear_empties_and_index_is_reusable() {
        let mut index = OrderedIndex::with_load(2);
        for key in 0..50 {
            index.insert(key);
        }
        let copy = index.clone();
        index.clear();
        assert!(index.is_empty());
        assert_eq!(index.nth(0), None);
        assert_eq!(index.iter_from(0).count(), 0);
        assert_eq!(index.position_of_first_not_less(&10), 0);
        assert!(index.insert(7));
        assert_eq!(index.rank(&7), Some(0));
        assert_eq!(copy.len(), 50);
        assert!(format!("{copy:?}").starts_with("OrderedIndex { len: 50, blocks: "));
    }

    #[test]
    fn dense_rank_counts_each_tied_score_once() {
        let mut counter = DistinctCounter::default();
        for score in [100, 90, 90, 80, 100] {
            counter.add(score);
        }
        assert_eq!(counter.distinct_len(), 3);
        assert_eq!(counter.distinct_less_than(&100), 2);
        assert_eq!(counter.distinct_less_than(&95), 2);
        assert!(counter.remove(90));
        assert_eq!(counter.distinct_less_than(&100), 2);
        assert!(counter.remove(90));
        assert_eq!(counter.distinct_less_than(&100), 1);
        assert!(!counter.remove(90));
        counter.clear();
        assert!(counter.is_empty());
    }
}
