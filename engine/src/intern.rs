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

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::chunks::{BLOCK, Block, Chunked, split};
use crate::prefetch::prefetch;

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
        Interner { strings: Chunked::default(), slots: vec![0; 16], bits: 4 }
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

    /// Starts loading the slot a lookup of a string with this hash reads first.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.slots[self.home(hash)]);
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
        let slot = self.slots[self.home(hash)];
        (slot != 0 && slot >> 32 == hash >> 32).then(|| (slot as u32).wrapping_sub(1))
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

    /// Ok(id) if `s` is interned, else Err(the empty slot where it would go).
    #[inline]
    fn find(&self, s: &str, hash: u64) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            let id = (slot as u32).wrapping_sub(1);
            if slot >> 32 == hash >> 32 && self.bytes(id) == Some(s.as_bytes()) {
                return Ok(id);
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
        let free = match self.find(s, hash) {
            Ok(id) => return (id, false),
            Err(free) => free,
        };
        let id = u32::try_from(self.len()).ok().filter(|&id| id < u32::MAX).expect("fewer than 2^32 - 1 strings");
        let block = self.strings.open();
        block.text.push_str(s);
        block.ends.push(u32::try_from(block.text.len()).expect("a block of strings under 4 GiB"));
        self.slots[free] = (hash >> 32 << 32) | u64::from(id + 1);
        if self.len() * 4 > self.slots.len() * 3 {
            self.grow();
        }
        (id, true)
    }

    /// Makes room for `more` strings beyond those held, so that interning them does not grow
    /// the table step by step (a replay knows how many records come).
    pub fn reserve(&mut self, more: usize) {
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

    /// Doubles the table. Slots carry the top 32 bits of their hash, which is all the index
    /// needs, so no string is read.
    fn grow(&mut self) {
        self.rehash(self.bits + 1);
    }

    /// The table at `2^bits` slots.
    fn rehash(&mut self, bits: u32) {
        assert!(bits <= 32, "interner table over 2^32 slots");
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
            + self.slots.capacity() * 8
    }

    /// Bytes in use: like [`Interner::heap_bytes`] but without the arena's and the ends' spare
    /// capacity, which a large interner has never touched (so it is not resident).
    pub fn used_bytes(&self) -> usize {
        self.strings.blocks().map(|b| b.text.len() + b.ends.len() * 4).sum::<usize>() + self.slots.capacity() * 8
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
