//! String interning without an allocation per string: strings live concatenated in blocks of a
//! fixed number of them ([`crate::chunks`]), and an open-addressing table maps each to a dense
//! id. Full blocks are frozen, so a snapshot shares them instead of copying them.
//!
//! Used for the vocabulary (kinds, channels, teams...), for stakeholder ids and for moment ids,
//! so that the hot path compares integers and a million ids cost a few bytes each beyond their
//! text.
//!
//! The table is this module's own (linear probing over `u64` slots) rather than a general hash
//! map because the batch passes need two things a map does not give: the hash computed once and
//! carried (see [`Interner::hash`]), and the slot's address ahead of time, to prefetch it while
//! earlier records are scored ([`Interner::prefetch`]). A slot holds the top 32 bits of the
//! string's hash and its id, so a lookup compares strings only when those bits match, and the
//! table grows without rehashing a single string.
//!
//! It grows a step at a time: a full table moves into one twice its size `MOVE_STEP` slots
//! every `MOVE_EVERY` calls of [`Interner::intern_hashed`], while lookups read both.
//! **Invariant:** no insert does more than one step of a move (or frees the old table when a
//! move ends), so the moment ids' table, which only ever grows, never stalls the organisation's
//! worker for a whole rehash. `intern_growth` in the benches measures the longest insert; the
//! figures are in docs/performance.md.

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::chunks::{BLOCK, Block, Chunked, split};
use crate::prefetch::prefetch;

/// Slots of the table before moved into the new one at a time while the table grows: about
/// 2 ms of work. Smaller steps cost the scoring loop more: 32 slots with every insert made
/// `hot_loop` 5 % slower, 2^15 every 2^10 calls 1-3 %; this step is within noise of a rehash
/// at once.
/// (Tests take small steps, at the same rate, so that small tables grow step by step too.)
const MOVE_STEP: usize = if cfg!(test) { 64 } else { 1 << 17 };

/// Calls of [`Interner::intern_hashed`] (inserts or not) between two steps. Growth starts at
/// three quarters full and the next one at three quarters of twice the size, so 32 slots a call
/// end the move long before the next growth.
const MOVE_EVERY: u32 = if cfg!(test) { 2 } else { 1 << 12 };

/// An append-only set of strings, each with a dense `u32` id in insertion order.
#[derive(Clone)]
pub struct Interner {
    /// The strings, [`BLOCK`] to a block: a snapshot shares the full ones (see
    /// [`Interner::share`]).
    strings: Chunked<Text>,
    /// `hash >> 32 << 32 | (id + 1)`, or 0 for an empty slot. A power of two long, at most
    /// three quarters full; a string's first slot is given by the top bits of its hash.
    slots: Vec<u64>,
    /// `log2(slots.len())`.
    bits: u32,
    /// While the table grows, the table before: its slots from `moved` on are not in `slots`
    /// yet. Empty otherwise. Never written: a string is either moved already or found here.
    old: Vec<u64>,
    /// `log2(old.len())`.
    old_bits: u32,
    moved: usize,
    /// Calls of [`Interner::intern_hashed`] while the table grows, to space the moves.
    calls: u32,
}

/// A block of strings: their text, concatenated, and where each ends in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Text {
    text: String,
    ends: Vec<u32>,
}

impl Block for Text {
    fn items(&self) -> usize {
        self.ends.len()
    }

    fn next(&self) -> Text {
        // An eighth more than the last block's text: ids are mostly of one length.
        let text = self.text.len() + self.text.len() / 8;
        Text { text: String::with_capacity(text), ends: Vec::with_capacity(BLOCK) }
    }

    fn freeze(&mut self) {
        self.text.shrink_to_fit();
    }
}

impl Text {
    /// The block's strings, concatenated.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where each string ends in [`Text::as_str`].
    pub fn ends(&self) -> &[u32] {
        &self.ends
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        let (start, end) = self.span(i)?;
        self.text.get(start..end)
    }

    /// Where string `i` is in the block's text.
    #[inline]
    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(before) => self.ends[before] as usize,
            None => 0,
        };
        Some((start, end))
    }

    /// Whether `ends` cuts `text` into strings (rising, within it, on character boundaries).
    fn cuts(text: &str, ends: &[u32]) -> bool {
        let mut start = 0;
        ends.iter().all(|&end| {
            let end = end as usize;
            let ok = end >= start && end <= text.len() && text.is_char_boundary(end);
            start = end;
            ok
        })
    }
}

impl Default for Interner {
    fn default() -> Interner {
        Interner {
            strings: Chunked::default(),
            slots: vec![0; 16],
            bits: 4,
            old: Vec::new(),
            old_bits: 0,
            moved: 0,
            calls: 0,
        }
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: usize = self.strings.blocks().map(|b| b.text.len()).sum();
        f.debug_struct("Interner").field("len", &self.len()).field("bytes", &bytes).finish()
    }
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The hash every lookup of `s` starts from; compute it once and pass it to the `_hashed`
    /// methods when a string is looked up more than once (prefetched, then interned).
    pub fn hash(s: &str) -> u64 {
        let h = FxBuildHasher.hash_one(s);
        // Fx mixes the low bits best; the table indexes by the top ones.
        (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }

    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.bits)) as usize
    }

    /// Where a lookup of `hash` starts in the table before, while the table grows.
    fn old_home(&self, hash: u64) -> Option<usize> {
        (!self.old.is_empty()).then(|| (hash >> (64 - self.old_bits)) as usize)
    }

    /// Starts loading the slot a lookup of a string with this hash reads first (in both
    /// tables while the table grows).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.slots[self.home(hash)]);
        if let Some(i) = self.old_home(hash) {
            prefetch(&self.old[i]);
        }
    }

    /// Starts loading the text of string `id` (what a lookup that finds it compares).
    #[inline]
    pub fn prefetch_text(&self, id: u32) {
        if let Some(text) = self.bytes(id).and_then(|t| t.first()) {
            prefetch(text);
        }
    }

    /// The id found in the first slot a lookup of `hash` reads, if that slot holds a string
    /// whose hash starts the same (a guess, for prefetching what comes after the lookup).
    #[inline]
    pub fn peek(&self, hash: u64) -> Option<u32> {
        let matches = |slot: u64| (slot != 0 && slot >> 32 == hash >> 32).then(|| (slot as u32).wrapping_sub(1));
        match self.old_home(hash) {
            None => matches(self.slots[self.home(hash)]),
            Some(old) => matches(self.slots[self.home(hash)]).or_else(|| matches(self.old[old])),
        }
    }

    /// The id of `s`, if it was interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.get_hashed(s, Self::hash(s))
    }

    /// [`Interner::get`] with `hash == Interner::hash(s)`.
    pub fn get_hashed(&self, s: &str, hash: u64) -> Option<u32> {
        self.find(s, hash).ok()
    }

    /// The bytes of string `id` (a lookup compares them: no character boundary to check).
    #[inline]
    fn bytes(&self, id: u32) -> Option<&[u8]> {
        let (k, i) = split(id as usize);
        let block = self.strings.block(k)?;
        let (start, end) = block.span(i)?;
        block.text.as_bytes().get(start..end)
    }

    /// Ok(id) if `s` is interned, else Err(the empty slot of `slots` where it would go).
    #[inline(always)]
    fn find(&self, s: &str, hash: u64) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return match self.old.is_empty() {
                    true => Err(i),
                    false => self.find_old(s, hash).ok_or(i),
                };
            }
            let id = (slot as u32).wrapping_sub(1);
            if slot >> 32 == hash >> 32 && self.bytes(id) == Some(s.as_bytes()) {
                return Ok(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `s` in the table before, while the table grows (a string not moved yet).
    #[inline(never)]
    fn find_old(&self, s: &str, hash: u64) -> Option<u32> {
        let mut i = self.old_home(hash)?;
        let mask = self.old.len() - 1;
        loop {
            let slot = *self.old.get(i)?;
            if slot == 0 {
                return None;
            }
            let id = (slot as u32).wrapping_sub(1);
            if slot >> 32 == hash >> 32 && self.bytes(id) == Some(s.as_bytes()) {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `s`, interning it if new. Returns `(id, true)` when it was new.
    pub fn intern(&mut self, s: &str) -> (u32, bool) {
        self.intern_hashed(s, Self::hash(s))
    }

    /// [`Interner::intern`] with `hash == Interner::hash(s)`.
    pub fn intern_hashed(&mut self, s: &str, hash: u64) -> (u32, bool) {
        let interned = match self.find(s, hash) {
            Ok(id) => (id, false),
            Err(free) => {
                let id =
                    u32::try_from(self.len()).ok().filter(|&id| id < u32::MAX).expect("fewer than 2^32 - 1 strings");
                let block = self.strings.open();
                block.text.push_str(s);
                block.ends.push(u32::try_from(block.text.len()).expect("a block of strings under 4 GiB"));
                self.slots[free] = (hash >> 32 << 32) | u64::from(id + 1);
                (id, true)
            }
        };
        // Every call moves the growth on, not only inserts: a table that stops growing
        // (stakeholders all known) still finishes its move, and its lookups read one table.
        if !self.old.is_empty() {
            self.calls = self.calls.wrapping_add(1);
            if self.calls.is_multiple_of(MOVE_EVERY) {
                self.move_slots(MOVE_STEP);
            }
        }
        if interned.1 && self.len() * 4 > self.slots.len() * 3 {
            self.grow();
        }
        interned
    }

    /// Makes room for `more` strings beyond those held, so that interning them does not grow
    /// the table step by step (a replay knows how many records come).
    pub fn reserve(&mut self, more: usize) {
        self.move_slots(usize::MAX);
        let bits = Interner::bits_for(self.len().saturating_add(more));
        if bits > self.bits {
            self.rehash(bits);
        }
    }

    /// The table size (as a power of two) that holds `n` strings at most three quarters full.
    fn bits_for(n: usize) -> u32 {
        let mut bits = 0;
        while bits < 32 && n.saturating_mul(4) > (1usize << bits) * 3 {
            bits += 1;
        }
        bits
    }

    /// Starts doubling the table: inserts go to one twice the size, and the slots of this one
    /// follow them, [`MOVE_STEP`] at a time. Slots carry the top 32 bits of their hash,
    /// which is all the index needs, so no string is read.
    fn grow(&mut self) {
        // Never still moving (see MOVE_EVERY); if it were, the move ends first.
        self.move_slots(usize::MAX);
        assert!(self.bits < 32, "interner table over 2^32 slots");
        self.old = std::mem::replace(&mut self.slots, vec![0; 1 << (self.bits + 1)]);
        (self.old_bits, self.bits, self.moved) = (self.bits, self.bits + 1, 0);
        self.move_slots(MOVE_STEP);
    }

    /// Moves up to `n` more slots of the table before into the new one; drops it once all
    /// have moved.
    #[inline(never)]
    fn move_slots(&mut self, n: usize) {
        if self.old.is_empty() {
            return;
        }
        let end = self.moved.saturating_add(n).min(self.old.len());
        let mask = self.slots.len() - 1;
        for &slot in &self.old[self.moved..end] {
            if slot != 0 {
                let mut i = (slot >> (64 - self.bits)) as usize;
                while self.slots[i] != 0 {
                    i = (i + 1) & mask;
                }
                self.slots[i] = slot;
            }
        }
        self.moved = end;
        if end == self.old.len() {
            (self.old, self.moved) = (Vec::new(), 0);
        }
    }

    /// The table at `2^bits` slots, at once (nothing is moving).
    fn rehash(&mut self, bits: u32) {
        assert!(bits <= 32, "interner table over 2^32 slots");
        debug_assert!(self.old.is_empty(), "a rehash while the table grows");
        let old = std::mem::take(&mut self.slots);
        self.bits = bits;
        self.slots = vec![0; 1 << self.bits];
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut i = self.home(slot);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }

    /// The strings in blocks, as they are now: all an interner is, for a snapshot. Full blocks
    /// are shared, not copied. [`Interner::from_blocks`] rebuilds it.
    pub fn share(&self) -> Vec<Arc<Text>> {
        self.strings.share()
    }

    /// The interner [`Interner::share`] gave the blocks of; `None` if they are not laid out as
    /// it lays them out (every block but the last full). Each block is cut into strings by
    /// construction: only `share` and [`Interner::blocks_of`] make them.
    pub fn from_blocks(blocks: Vec<Arc<Text>>) -> Option<Interner> {
        let strings = Chunked::from_blocks(blocks)?;
        let mut interner = Interner { strings, ..Interner::default() };
        interner.bits = interner.bits.max(Interner::bits_for(interner.len()));
        interner.slots = vec![0; 1 << interner.bits];
        let mask = interner.slots.len() - 1;
        // In runs: hash a run and prefetch its slots, then fill them, so that the slots'
        // cache misses overlap instead of coming one after the other.
        let mut hashes = Vec::with_capacity(64);
        let mut id = 0u64;
        for block in interner.strings.blocks() {
            for start in (0..block.ends.len()).step_by(64) {
                hashes.clear();
                for i in start..(start + 64).min(block.ends.len()) {
                    let hash = Self::hash(block.get(i).unwrap_or_default());
                    prefetch(&interner.slots[(hash >> (64 - interner.bits)) as usize]);
                    hashes.push(hash);
                }
                for &hash in &hashes {
                    id += 1;
                    let mut i = (hash >> (64 - interner.bits)) as usize;
                    while interner.slots[i] != 0 {
                        i = (i + 1) & mask;
                    }
                    interner.slots[i] = (hash >> 32 << 32) | id;
                }
            }
        }
        if interner.len() * 4 > interner.slots.len() * 3 {
            interner.grow();
        }
        Some(interner)
    }

    /// Cuts strings concatenated in id order, `ends` saying where each ends, into the blocks
    /// [`Interner::from_blocks`] takes; `None` if `ends` does not cut `text` into strings
    /// (not rising, past its end, or inside a character).
    pub fn blocks_of(text: &str, ends: &[u32]) -> Option<Vec<Arc<Text>>> {
        if !Text::cuts(text, ends) {
            return None;
        }
        let mut blocks = Vec::with_capacity(ends.len() / BLOCK + 1);
        let mut start = 0usize;
        for run in ends.chunks(BLOCK) {
            let end = run.last().map_or(start, |&e| e as usize);
            let base = start as u32;
            blocks.push(Arc::new(Text {
                text: text[start..end].to_string(),
                ends: run.iter().map(|e| e - base).collect(),
            }));
            start = end;
        }
        if blocks.is_empty() {
            blocks.push(Arc::new(Text::default()));
        }
        Some(blocks)
    }

    /// The string with id `id`. Panics if `id` was not handed out by this interner.
    pub fn resolve(&self, id: u32) -> &str {
        self.try_resolve(id).unwrap_or_else(|| panic!("string {id} of {} was not handed out", self.len()))
    }

    /// The string with id `id`, if it was handed out by this interner.
    #[inline]
    pub fn try_resolve(&self, id: u32) -> Option<&str> {
        let (k, i) = split(id as usize);
        self.strings.block(k)?.get(i)
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.strings.blocks().map(|b| b.text.capacity() + b.ends.capacity() * 4).sum::<usize>()
            + (self.slots.capacity() + self.old.capacity()) * 8
    }

    /// Bytes in use: like [`Interner::heap_bytes`] but without the arena's and the ends' spare
    /// capacity, which a large interner has never touched (so it is not resident).
    pub fn used_bytes(&self) -> usize {
        self.strings.blocks().map(|b| b.text.len() + b.ends.len() * 4).sum::<usize>()
            + (self.slots.capacity() + self.old.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_dense_stable_ids_and_resolves_back() {
        let mut i = Interner::new();
        assert_eq!(i.intern("meetup"), (0, true));
        assert_eq!(i.intern("forum"), (1, true));
        assert_eq!(i.intern("meetup"), (0, false));
        assert_eq!(i.intern(""), (2, true));
        assert_eq!(i.resolve(1), "forum");
        assert_eq!(i.resolve(2), "");
        assert_eq!(i.get("forum"), Some(1));
        assert_eq!(i.get("chat"), None);
    }

    #[test]
    fn many_strings_survive_table_growth() {
        let mut i = Interner::new();
        for n in 0..10_000 {
            assert_eq!(i.intern(&format!("s{n}")).0, n);
        }
        for n in 0..10_000 {
            assert_eq!(i.get(&format!("s{n}")), Some(n));
            assert_eq!(i.resolve(n), format!("s{n}"));
        }
        assert_eq!(i.get("s10000"), None);
    }

    #[test]
    fn room_reserved_ahead_is_enough_for_what_comes_and_keeps_what_was_there() {
        let mut i = Interner::new();
        for n in 0..100 {
            i.intern(&format!("s{n}"));
        }
        i.reserve(40_000);
        let bits = i.bits;
        assert!((1usize << bits) * 3 >= 40_100 * 4, "room for 40 100 at three quarters full");
        for n in 0..100 {
            assert_eq!(i.get(&format!("s{n}")), Some(n), "kept across the rehash");
        }
        for n in 100..40_100 {
            assert_eq!(i.intern(&format!("s{n}")), (n, true));
        }
        assert_eq!(i.bits, bits, "no growth on the way");
        assert_eq!(i.get("s40099"), Some(40_099));
        i.reserve(0);
        assert_eq!(i.bits, bits, "reserving nothing more changes nothing");
    }

    #[test]
    fn shared_blocks_rebuild_the_same_interner_and_bad_cuts_are_refused() {
        let mut i = Interner::new();
        let n = (2 * BLOCK + 10) as u32;
        for k in 0..n {
            i.intern(&format!("s{k}é"));
        }
        let mut back = Interner::from_blocks(i.share()).expect("valid blocks");
        // The same strings, concatenated, cut into blocks anew.
        let text: String = i.share().iter().map(|b| b.as_str()).collect();
        let mut ends = Vec::new();
        let mut at = 0;
        for b in i.share() {
            ends.extend(b.ends().iter().map(|e| e + at));
            at += b.as_str().len() as u32;
        }
        let again = Interner::from_blocks(Interner::blocks_of(&text, &ends).expect("valid cut")).expect("valid blocks");
        for k in 0..n {
            assert_eq!(back.get(&format!("s{k}é")), Some(k));
            assert_eq!(again.resolve(k), format!("s{k}é"));
        }
        assert_eq!(back.intern("new"), (n, true));
        assert!(Interner::blocks_of("abc", &[2, 1]).is_none());
        assert!(Interner::blocks_of("abc", &[4]).is_none());
        assert!(Interner::blocks_of("é", &[1]).is_none());
        assert!(Interner::blocks_of("", &[]).and_then(Interner::from_blocks).is_some_and(|i| i.is_empty()));
        let short = Arc::new(Text { text: "ab".into(), ends: vec![1, 2] });
        assert!(Interner::from_blocks(vec![Arc::clone(&short), short]).is_none(), "a block but the last is short");
    }

    #[test]
    fn a_growing_table_finds_every_string_while_its_slots_move() {
        let mut i = Interner::new();
        let mut moving = 0;
        for n in 0..50_000u32 {
            assert_eq!(i.intern(&format!("m{n}")), (n, true));
            if !i.old.is_empty() {
                moving += 1;
                // Strings still only in the table before, and those already moved.
                for k in [0, n / 2, n] {
                    assert_eq!(i.get(&format!("m{k}")), Some(k), "m{k} after m{n}");
                    assert_eq!(i.intern(&format!("m{k}")), (k, false));
                }
                assert_eq!(i.get(&format!("m{}", n + 1)), None);
            }
        }
        assert!(moving > 1000, "the test saw the table grow step by step ({moving} inserts)");
        // Strings until the next growth starts; then no more come, only lookups, and they
        // finish the move.
        let mut n = i.len() as u32;
        while i.old.is_empty() {
            i.intern(&format!("m{n}"));
            n += 1;
        }
        for k in (0..n).cycle().take(i.old.len()) {
            assert_eq!(i.intern(&format!("m{k}")), (k, false));
        }
        assert!(i.old.is_empty(), "lookups alone end the move");
        let n = i.len() as u32;
        i.reserve(1_000_000);
        assert!(i.old.is_empty(), "reserving ends the move");
        assert!((0..n).all(|k| i.get(&format!("m{k}")) == Some(k)));
    }

    proptest::proptest! {
        /// Through growths (step by step), reserves and snapshot rebuilds, the interner answers
        /// as a map from strings to the order they came in.
        #[test]
        fn an_interner_answers_as_a_map_of_first_arrivals(
            ops in proptest::collection::vec((0u32..3000, 0u8..40), 0..4000),
        ) {
            let mut i = Interner::new();
            let mut model: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
            for (key, what) in ops {
                let s = format!("k{key}");
                match what {
                    0 => i.reserve(key as usize),
                    1 => i = Interner::from_blocks(i.share()).expect("its own blocks"),
                    2..=9 => proptest::prop_assert_eq!(i.get(&s), model.get(&s).copied()),
                    _ => {
                        let next = model.len() as u32;
                        let id = *model.entry(s.clone()).or_insert(next);
                        proptest::prop_assert_eq!(i.intern(&s), (id, id == next));
                    }
                }
            }
            for (s, &id) in &model {
                proptest::prop_assert_eq!(i.get(s), Some(id));
                proptest::prop_assert_eq!(i.resolve(id), s.as_str());
            }
        }
    }

    #[test]
    fn strings_whose_hashes_share_their_top_bits_are_told_apart() {
        // Hashes forced equal: every lookup then compares the text.
        let mut i = Interner::new();
        let h = 0xDEAD_BEEF_0000_0000;
        assert_eq!(i.intern_hashed("a", h), (0, true));
        assert_eq!(i.intern_hashed("b", h), (1, true));
        assert_eq!(i.intern_hashed("a", h), (0, false));
        assert_eq!(i.get_hashed("b", h), Some(1));
        assert_eq!(i.get_hashed("c", h), None);
        assert_eq!(i.peek(h), Some(0));
    }
}
