//! String interning without an allocation per string: every string lives in one growing arena,
//! and a hash table maps it to a dense id.
//!
//! Used for the vocabulary (kinds, channels, teams...), for stakeholder ids and for moment ids,
//! so that the hot path compares integers and a million ids cost a few bytes each beyond their
//! text.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// An append-only set of strings, each with a dense `u32` id in insertion order.
#[derive(Default, Clone)]
pub struct Interner {
    arena: String,
    /// `ends[i]` is where string `i` ends in the arena; it starts where `i - 1` ends.
    ends: Vec<u32>,
    table: HashTable<u32>,
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

    fn hash(s: &str) -> u64 {
        FxBuildHasher.hash_one(s)
    }

    /// The id of `s`, if it was interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        let h = Self::hash(s);
        self.table.find(h, |&id| self.resolve(id) == s).copied()
    }

    /// The id of `s`, interning it if new. Returns `(id, true)` when it was new.
    pub fn intern(&mut self, s: &str) -> (u32, bool) {
        let h = Self::hash(s);
        if let Some(&id) = self.table.find(h, |&id| resolve(&self.arena, &self.ends, id) == s) {
            return (id, false);
        }
        let id = u32::try_from(self.ends.len()).expect("fewer than 2^32 interned strings");
        self.arena.push_str(s);
        self.ends.push(u32::try_from(self.arena.len()).expect("interned text under 4 GiB"));
        let (arena, ends) = (&self.arena, &self.ends);
        self.table.insert_unique(h, id, |&other| Self::hash(resolve(arena, ends, other)));
        (id, true)
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
        self.arena.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5
    }

    /// Bytes in use: like [`Interner::heap_bytes`] but without the arena's and the ends' spare
    /// capacity, which a large interner has never touched (so it is not resident).
    pub fn used_bytes(&self) -> usize {
        self.arena.len() + self.ends.len() * 4 + self.table.capacity() * 5
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
    }
}
