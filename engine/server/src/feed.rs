//! The effects feed: every effect an organisation's scoring produced, in order, each with a
//! stable number, the most recent ones kept in memory for readers who page through them
//! (`GET .../effects?after=N`), follow them live (Server-Sent Events) or deliver them
//! (webhooks).
//!
//! **Owns** [`Feed`]: a bounded ring of rendered effects and a watch channel that wakes
//! followers when effects arrive. The log step ([`crate::organisation::Organisation`]) is its only writer:
//! it numbers effects as scoring produces them, from 1, the same way on every replay (effects
//! are a pure function of the log), so a number names the same effect across restarts and a
//! reader's cursor survives them. **Must not touch** the world or the store; readers never
//! wait for the writer longer than a copy of the page they read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use plaudit_core::journal::FeedItem;
use plaudit_sdk::Effect;
use tokio::sync::watch;

/// Effects kept per organisation when not configured.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The most effects one read looks at when it takes only some (a stakeholder's own): the
/// feed's lock is held that long at most.
pub const SCAN: usize = 10_000;

/// A read of effects no longer kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("effects after {after} are no longer kept: the oldest kept is {oldest}; read from `after={}`", oldest - 1)]
pub struct Gone {
    pub after: u64,
    pub oldest: u64,
}

#[derive(Debug)]
struct Ring {
    items: VecDeque<Arc<FeedItem>>,
    capacity: usize,
    /// The number the next effect gets.
    next: u64,
}

/// An organisation's effects feed. Shared (`Arc`) between its writer and its readers.
#[derive(Debug)]
pub struct Feed {
    ring: Mutex<Ring>,
    /// The number of the last effect produced.
    latest: watch::Sender<u64>,
}

impl Feed {
    /// A feed keeping the last `capacity` effects (at least 1).
    pub fn new(capacity: usize) -> Feed {
        let capacity = capacity.max(1);
        let ring = Ring { items: VecDeque::with_capacity(capacity.min(4096)), capacity, next: 1 };
        Feed { ring: Mutex::new(ring), latest: watch::Sender::new(0) }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A writer that panicked mid-push left whole items behind: the ring stays readable.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends effects, in order, each with the sequence of its record; wakes followers.
    pub fn push(&self, effects: impl IntoIterator<Item = (u64, Effect)>) {
        let next = self.latest() + 1;
        let items = (next..).zip(effects).map(|(id, (seq, effect))| Arc::new(FeedItem { id, seq, effect }));
        self.push_numbered(items);
    }

    /// Appends effects numbered by the writer (the next is `latest() + 1`, and so on), in
    /// order; wakes followers. The ring's oldest items make room, dropped once it is unlocked.
    pub fn push_numbered(&self, items: impl IntoIterator<Item = Arc<FeedItem>>) {
        let mut ring = self.ring();
        let mut evicted = Vec::new();
        for item in items {
            debug_assert_eq!(item.id, ring.next, "effects are numbered on from the feed's latest");
            ring.next = item.id + 1;
            if ring.items.len() == ring.capacity {
                evicted.extend(ring.items.pop_front());
            }
            ring.items.push_back(item);
        }
        let last = ring.next - 1;
        drop(ring);
        drop(evicted);
        self.latest.send_if_modified(|l| std::mem::replace(l, last) != last);
    }

    /// The kept effects for stakeholder `from` name `to` instead (an erasure).
    pub fn rename(&self, from: &str, to: &str) {
        let mut ring = self.ring();
        for item in ring.items.iter_mut().filter(|i| i.effect.stakeholder == from) {
            let mut renamed = FeedItem::clone(item);
            renamed.effect.stakeholder = to.to_string();
            *item = Arc::new(renamed);
        }
    }

    /// Counts `n` effects that are not kept (older than what a replay renders): the effects
    /// kept so far go too, since the ones kept follow each other without a gap.
    pub fn skip(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut ring = self.ring();
        ring.next += n;
        ring.items.clear();
        let last = ring.next - 1;
        drop(ring);
        self.latest.send_if_modified(|l| std::mem::replace(l, last) != last);
    }

    /// The number of the last effect produced (0 if none).
    pub fn latest(&self) -> u64 {
        self.ring().next - 1
    }

    /// The number of the oldest effect kept (`latest + 1` when none is).
    pub fn oldest(&self) -> u64 {
        let ring = self.ring();
        ring.items.front().map_or(ring.next, |i| i.id)
    }

    /// Up to `limit` effects numbered after `after`, oldest first; `after: None` starts at the
    /// oldest kept. [`Gone`] if some of the effects after `after` are no longer kept.
    pub fn after(&self, after: Option<u64>, limit: usize) -> Result<Vec<Arc<FeedItem>>, Gone> {
        self.after_where(after, limit, |_| true).map(|(items, _)| items)
    }

    /// [`Feed::after`] for the effects `keep` takes, looking at [`SCAN`] effects at most (or
    /// `limit`, if more), with
    /// the number of the last effect looked at (the cursor to go on from, which passes the
    /// effects not taken; `after` itself if there was none to look at).
    pub fn after_where(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: impl Fn(&FeedItem) -> bool,
    ) -> Result<(Vec<Arc<FeedItem>>, u64), Gone> {
        let ring = self.ring();
        let oldest = ring.items.front().map_or(ring.next, |i| i.id);
        let after = match after {
            None => oldest.saturating_sub(1),
            Some(a) if a.saturating_add(1) < oldest => return Err(Gone { after: a, oldest }),
            Some(a) => a,
        };
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(oldest)).unwrap_or(usize::MAX);
        let mut taken = Vec::new();
        let mut last = after;
        for item in ring.items.iter().skip(skip).take(SCAN.max(limit)) {
            if taken.len() == limit {
                break;
            }
            last = item.id;
            if keep(item) {
                taken.push(Arc::clone(item));
            }
        }
        Ok((taken, last))
    }

    /// A receiver that wakes whenever effects arrive (it holds the latest number).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use plaudit_sdk::EffectKind;

    use super::*;

    fn effect(n: i64) -> Effect {
        Effect {
            moment: format!("m{n}"),
            stakeholder: "ann".into(),
            source: "rule".into(),
            kind: EffectKind::PointsAwarded { currency: "xp".into(), amount: n, balance: n },
        }
    }

    fn ids(items: &[Arc<FeedItem>]) -> Vec<u64> {
        items.iter().map(|i| i.id).collect()
    }

    #[test]
    fn effects_are_numbered_from_one_and_paged_by_cursor() {
        let feed = Feed::new(10);
        feed.push((1..=5).map(|n| (n as u64, effect(n))));
        assert_eq!(feed.latest(), 5);
        assert_eq!(ids(&feed.after(None, 2).expect("kept")), vec![1, 2]);
        assert_eq!(ids(&feed.after(Some(2), 2).expect("kept")), vec![3, 4]);
        assert_eq!(ids(&feed.after(Some(4), 10).expect("kept")), vec![5]);
        assert!(feed.after(Some(5), 10).expect("kept").is_empty(), "nothing new yet");
        assert!(feed.after(Some(99), 10).expect("kept").is_empty(), "a cursor ahead waits");
        assert!(feed.after(Some(u64::MAX), 10).expect("kept").is_empty(), "however far ahead");
        assert_eq!(feed.after(Some(2), 1).expect("kept")[0].effect, effect(3));
    }

    #[test]
    fn past_capacity_the_oldest_go_and_a_cursor_before_them_is_gone() {
        let feed = Feed::new(3);
        feed.push((1..=5).map(|n| (n as u64, effect(n))));
        assert_eq!(ids(&feed.after(None, 10).expect("kept")), vec![3, 4, 5]);
        assert_eq!(ids(&feed.after(Some(2), 10).expect("kept")), vec![3, 4, 5], "exactly at the edge");
        let gone = feed.after(Some(1), 10).expect_err("effect 2 is gone");
        assert_eq!(gone, Gone { after: 1, oldest: 3 });
        assert!(gone.to_string().contains("after=2"), "{gone}");
    }

    #[test]
    fn skipped_effects_keep_their_numbers_and_are_not_kept() {
        let feed = Feed::new(10);
        feed.push([(1, effect(1))]);
        feed.skip(4);
        feed.push([(9, effect(6))]);
        assert_eq!(feed.latest(), 6);
        assert_eq!(feed.oldest(), 6);
        assert_eq!(ids(&feed.after(Some(5), 10).expect("kept")), vec![6]);
        assert!(feed.after(Some(1), 10).is_err());
    }

    #[test]
    fn a_filtered_read_takes_what_it_keeps_and_its_cursor_passes_the_rest() {
        let feed = Feed::new(100);
        feed.push((1..=10).map(|n| (n as u64, effect(n))));
        let even = |i: &FeedItem| i.id.is_multiple_of(2);
        let (items, last) = feed.after_where(None, 2, even).expect("kept");
        assert_eq!((ids(&items), last), (vec![2, 4], 4));
        let (items, last) = feed.after_where(Some(last), 10, even).expect("kept");
        assert_eq!((ids(&items), last), (vec![6, 8, 10], 10));
        let (items, last) = feed.after_where(Some(10), 10, even).expect("kept");
        assert_eq!((ids(&items), last), (vec![], 10), "nothing to look at: the cursor stays");
        let (items, last) = feed.after_where(Some(4), 10, |_| false).expect("kept");
        assert_eq!((ids(&items), last), (vec![], 10), "none taken: the cursor still passes them");
    }

    #[test]
    fn a_filtered_read_looks_at_a_bounded_number_of_effects() {
        let feed = Feed::new(SCAN + 10);
        feed.push((1..=SCAN as u64 + 10).map(|n| (n, effect(n as i64))));
        let (items, last) = feed.after_where(None, 5, |i| i.id > SCAN as u64).expect("kept");
        assert!(items.is_empty());
        assert_eq!(last, SCAN as u64, "stops after SCAN effects, and says where");
        let (items, _) = feed.after_where(Some(last), 5, |i| i.id > SCAN as u64).expect("kept");
        assert_eq!(items.len(), 5);
    }

    #[test]
    fn followers_wake_when_effects_arrive() {
        let feed = Feed::new(10);
        let mut rx = feed.subscribe();
        assert!(!rx.has_changed().expect("open"));
        feed.push([(1, effect(1))]);
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), 1);
        feed.push(std::iter::empty());
        assert!(!rx.has_changed().expect("open"), "nothing new, no wake-up");
    }
}
