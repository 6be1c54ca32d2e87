//! String interning without an allocation per string: every string lives in one growing arena,
//! and an open-addressing table maps it to a dense id.
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

use rustc_hash::FxBuildHasher;

use crate::prefetch::prefetch;

/// An append-only set of strings, each with a dense `u32` id in insertion order.
#[derive(Clone)]
pub struct Interner {
    arena: String,
    /// `ends[i]` is where string `i` ends in the arena; it starts where `i - 1` ends.
    ends: Vec<u32>,
    /// `hash >> 32 << 32 | (id + 1)`, or 0 for an empty slot. A power of two long, at most
    /// three quarters full; a string's first slot is given by the top bits of its hash.
    slots: Vec<u64>,
    /// `log2(slots.len())`.
    bits: u32,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner { arena: String::new(), ends: Vec::new(), slots: vec![0; 16], bits: 4 }
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.len()).field("bytes", &self.arena.len()).finish()
    }
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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
        if let Some(end) = self.ends.get(id as usize) {
            let start = if id == 0 { 0 } else { self.ends[id as usize - 1] as usize };
            if let Some(text) = self.arena.as_bytes().get(start..*end as usize).and_then(|t| t.first()) {
                prefetch(text);
            }
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

    /// Ok(id) if `s` is interned, else Err(the empty slot where it would go).
    fn find(&self, s: &str, hash: u64) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            let id = (slot as u32).wrapping_sub(1);
            if slot >> 32 == hash >> 32 && resolve(&self.arena, &self.ends, id) == s {
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
        let id = u32::try_from(self.ends.len()).ok().filter(|&id| id < u32::MAX).expect("fewer than 2^32 - 1 strings");
        self.arena.push_str(s);
        self.ends.push(u32::try_from(self.arena.len()).expect("interned text under 4 GiB"));
        self.slots[free] = (hash >> 32 << 32) | u64::from(id + 1);
        if self.ends.len() * 4 > self.slots.len() * 3 {
            self.grow();
        }
        (id, true)
    }

    /// Doubles the table. Slots carry the top 32 bits of their hash, which is all the index
    /// needs, so no string is read.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.bits += 1;
        assert!(self.bits <= 32, "interner table over 2^32 slots");
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

    /// The strings, concatenated in id order, and where each ends: all an interner is, for a
    /// snapshot. [`Interner::from_parts`] rebuilds it.
    pub fn parts(&self) -> (&str, &[u32]) {
        (&self.arena, &self.ends)
    }

    /// The interner [`Interner::parts`] described; `None` if `ends` does not cut `text` into
    /// strings (not rising, past its end, or inside a character).
    pub fn from_parts(text: String, ends: Vec<u32>) -> Option<Interner> {
        let mut start = 0;
        for &end in &ends {
            let end = end as usize;
            if end < start || end > text.len() || !text.is_char_boundary(end) {
                return None;
            }
            start = end;
        }
        let mut interner =
            Interner { arena: String::new(), ends: Vec::with_capacity(ends.len()), ..Interner::default() };
        while interner.slots.len() * 3 < ends.len() * 4 {
            interner.bits += 1;
            interner.slots = vec![0; 1 << interner.bits];
        }
        interner.arena = text;
        let mask = interner.slots.len() - 1;
        // In chunks: hash a chunk and prefetch its slots, then fill them, so that the slots'
        // cache misses overlap instead of coming one after the other.
        let mut hashes = Vec::with_capacity(64);
        for (chunk, block) in ends.chunks(64).enumerate() {
            hashes.clear();
            for &end in block {
                let start = interner.ends.last().copied().unwrap_or(0) as usize;
                let hash = Self::hash(&interner.arena[start..end as usize]);
                interner.prefetch(hash);
                hashes.push(hash);
                interner.ends.push(end);
            }
            for (k, &hash) in hashes.iter().enumerate() {
                let mut i = interner.home(hash);
                while interner.slots[i] != 0 {
                    i = (i + 1) & mask;
                }
                interner.slots[i] = (hash >> 32 << 32) | ((chunk * 64 + k) as u64 + 1);
            }
        }
        if interner.ends.len() * 4 > interner.slots.len() * 3 {
            interner.grow();
        }
        Some(interner)
    }

    /// The string with id `id`. Panics if `id` was not handed out by this interner.
    pub fn resolve(&self, id: u32) -> &str {
        resolve(&self.arena, &self.ends, id)
    }

    /// The string with id `id`, if it was handed out by this interner.
    pub fn try_resolve(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.ends.len()).then(|| resolve(&self.arena, &self.ends, id))
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.ends.capacity() * 4 + self.slots.capacity() * 8
    }

    /// Bytes in use: like [`Interner::heap_bytes`] but without the arena's and the ends' spare
    /// capacity, which a large interner has never touched (so it is not resident).
    pub fn used_bytes(&self) -> usize {
        self.arena.len() + self.ends.len() * 4 + self.slots.capacity() * 8
    }
}

fn resolve<'a>(arena: &'a str, ends: &[u32], id: u32) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &arena[start..ends[i] as usize]
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
    fn from_parts_rebuilds_the_same_interner_and_refuses_bad_cuts() {
        let mut i = Interner::new();
        for n in 0..1000 {
            i.intern(&format!("s{n}é"));
        }
        let (text, ends) = i.parts();
        let mut back = Interner::from_parts(text.to_string(), ends.to_vec()).expect("valid parts");
        for n in 0..1000 {
            assert_eq!(back.get(&format!("s{n}é")), Some(n));
        }
        assert_eq!(back.intern("new"), (1000, true));
        assert!(Interner::from_parts("abc".into(), vec![2, 1]).is_none());
        assert!(Interner::from_parts("abc".into(), vec![4]).is_none());
        assert!(Interner::from_parts("é".into(), vec![1]).is_none());
        assert!(Interner::from_parts(String::new(), vec![]).is_some_and(|i| i.is_empty()));
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
