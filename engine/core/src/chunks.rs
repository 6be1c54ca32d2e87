//! Append-only sequences in blocks of a fixed number of items, full blocks frozen behind an
//! `Arc`: what lets a snapshot hold the world's history (moment ids, what each moment earned)
//! and its string tables without copying them.
//!
//! **Owns** [`Chunked`], the block layout (item `i` is item `i % BLOCK` of block
//! `i / BLOCK`) and when a block freezes. **Must not touch** what the items mean: the interner
//! and the history that use it decide that, and the snapshot decides how shared blocks are
//! written out.
//!
//! The world appends to the open block; once it holds [`BLOCK`] items the next append freezes
//! it (a move, not a copy). [`Chunked::share`] hands out the frozen blocks and a copy of the open
//! one, so taking a snapshot costs at most a block, whatever the history's length. Writing to
//! a frozen block ([`Chunked::block_mut`], say a retraction) copies it only while a snapshot
//! taken before still holds it.

use std::sync::Arc;

/// Items in a block, a power of two: a frozen block of moments with what they earned is about
/// a megabyte, and the open block a snapshot copies is at most that.
pub const BLOCK: usize = 1 << BLOCK_BITS;
const BLOCK_BITS: u32 = 14;

/// The block of item `i` and its place in it.
#[inline]
pub fn split(i: usize) -> (usize, usize) {
    (i >> BLOCK_BITS, i & (BLOCK - 1))
}

/// A block of items.
pub trait Block: Clone + Default {
    /// How many it holds.
    fn items(&self) -> usize;

    /// The block to open once this one is full: empty, with room for about what this one
    /// holds (the next most likely holds as much), so that appends do not grow it step by step.
    fn next(&self) -> Self {
        Self::default()
    }

    /// Gives back spare room, as the block freezes: it holds what it holds for good.
    fn freeze(&mut self) {}
}

/// Blocks of [`BLOCK`] items each, all frozen but the last, open one.
#[derive(Clone, Debug, Default)]
pub struct Chunked<B> {
    frozen: Vec<Arc<B>>,
    open: B,
}

impl<B: Block> Chunked<B> {
    /// Items in all blocks.
    pub fn len(&self) -> usize {
        self.frozen.len() * BLOCK + self.open.items()
    }

    pub fn is_empty(&self) -> bool {
        self.frozen.is_empty() && self.open.items() == 0
    }

    /// Block `k`, if there is one.
    #[inline]
    pub fn block(&self, k: usize) -> Option<&B> {
        match self.frozen.get(k) {
            Some(b) => Some(b),
            None => (k == self.frozen.len()).then_some(&self.open),
        }
    }

    /// Block `k` to write to; a frozen one that a snapshot still holds is copied first.
    #[inline]
    pub fn block_mut(&mut self, k: usize) -> Option<&mut B> {
        if k == self.frozen.len() {
            return Some(&mut self.open);
        }
        self.frozen.get_mut(k).map(Arc::make_mut)
    }

    /// The block the next item goes to: the open one, frozen first if it is full.
    #[inline]
    pub fn open(&mut self) -> &mut B {
        if self.open.items() >= BLOCK {
            let next = self.open.next();
            let mut full = std::mem::replace(&mut self.open, next);
            full.freeze();
            self.frozen.push(Arc::new(full));
        }
        &mut self.open
    }

    /// Every block, in order.
    pub fn blocks(&self) -> impl Iterator<Item = &B> {
        self.frozen.iter().map(|b| &**b).chain(std::iter::once(&self.open))
    }

    /// Every block to write to, in order (frozen ones a snapshot holds are copied).
    pub fn blocks_mut(&mut self) -> impl Iterator<Item = &mut B> {
        self.frozen.iter_mut().map(Arc::make_mut).chain(std::iter::once(&mut self.open))
    }

    /// The blocks as they are now, for a snapshot: the frozen ones shared, the open one copied.
    pub fn share(&self) -> Vec<Arc<B>> {
        let mut blocks = Vec::with_capacity(self.frozen.len() + 1);
        blocks.extend(self.frozen.iter().cloned());
        blocks.push(Arc::new(self.open.clone()));
        blocks
    }

    /// The sequence of `blocks`, as [`Chunked::share`] gave them (every one but the last full);
    /// `None` if they are not laid out so.
    pub fn from_blocks(mut blocks: Vec<Arc<B>>) -> Option<Chunked<B>> {
        let open = blocks.pop().map(|b| Arc::try_unwrap(b).unwrap_or_else(|b| (*b).clone())).unwrap_or_default();
        if blocks.iter().any(|b| b.items() != BLOCK) || open.items() > BLOCK {
            return None;
        }
        Some(Chunked { frozen: blocks, open })
    }
}

impl<T: Clone> Block for Vec<T> {
    fn items(&self) -> usize {
        Vec::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(c: &mut Chunked<Vec<u32>>, n: u32) {
        c.open().push(n);
    }

    fn items(c: &Chunked<Vec<u32>>) -> Vec<u32> {
        c.blocks().flatten().copied().collect()
    }

    #[test]
    fn items_land_in_full_blocks_and_are_found_by_index() {
        let mut c = Chunked::<Vec<u32>>::default();
        for n in 0..(2 * BLOCK + 5) as u32 {
            push(&mut c, n);
        }
        assert_eq!(c.len(), 2 * BLOCK + 5);
        assert_eq!(c.blocks().map(Vec::len).collect::<Vec<_>>(), [BLOCK, BLOCK, 5]);
        for i in [0, BLOCK - 1, BLOCK, 2 * BLOCK + 4] {
            let (k, at) = split(i);
            assert_eq!(c.block(k).map(|b| b[at]), Some(i as u32));
        }
        assert!(c.block(3).is_none());
    }

    #[test]
    fn a_shared_block_is_copied_on_write_and_the_share_keeps_what_it_saw() {
        let mut c = Chunked::<Vec<u32>>::default();
        for n in 0..(BLOCK + 3) as u32 {
            push(&mut c, n);
        }
        let shared = c.share();
        let before: Vec<u32> = shared.iter().flat_map(|b| b.iter().copied()).collect();
        if let Some(b) = c.block_mut(0) {
            b[7] = u32::MAX;
        }
        push(&mut c, 99);
        assert_eq!(shared.iter().flat_map(|b| b.iter().copied()).collect::<Vec<_>>(), before, "the share is unchanged");
        assert_eq!(items(&c)[7], u32::MAX);
        assert_eq!(c.len(), BLOCK + 4);
        drop(shared);
        let frozen = Arc::as_ptr(&c.share()[0]);
        if let Some(b) = c.block_mut(0) {
            b[8] = 1;
        }
        assert_eq!(Arc::as_ptr(&c.share()[0]), frozen, "nobody else held it: written in place");
    }

    #[test]
    fn blocks_round_trip_and_a_bad_layout_is_refused() {
        let mut c = Chunked::<Vec<u32>>::default();
        for n in 0..(BLOCK + 3) as u32 {
            push(&mut c, n);
        }
        let back = Chunked::from_blocks(c.share()).expect("laid out by share");
        assert_eq!(items(&back), items(&c));
        assert!(Chunked::<Vec<u32>>::from_blocks(vec![Arc::new(vec![1]), Arc::new(vec![2])]).is_none());
        assert!(Chunked::<Vec<u32>>::from_blocks(Vec::new()).is_some_and(|c| c.is_empty()));
    }
}
