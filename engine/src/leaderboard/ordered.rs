//! STAND-IN, replaced by the ranking helper's module.
use std::collections::{BTreeMap, BTreeSet};
#[derive(Debug, Clone, Default)]
pub struct OrderedIndex<K: Ord + Copy> {
    s: BTreeSet<K>,
}
impl<K: Ord + Copy> OrderedIndex<K> {
    pub fn insert(&mut self, k: K) -> bool {
        self.s.insert(k)
    }
    pub fn remove(&mut self, k: &K) -> bool {
        self.s.remove(k)
    }
    pub fn len(&self) -> usize {
        self.s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.s.is_empty()
    }
    pub fn rank(&self, k: &K) -> Option<usize> {
        self.s.contains(k).then(|| self.s.range(..*k).count())
    }
    pub fn position_of_first_not_less(&self, k: &K) -> usize {
        self.s.range(..*k).count()
    }
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = K> + '_ {
        self.s.iter().copied().skip(start)
    }
}
#[derive(Debug, Clone, Default)]
pub struct DistinctCounter<S: Ord + Copy> {
    m: BTreeMap<S, usize>,
}
impl<S: Ord + Copy> DistinctCounter<S> {
    pub fn add(&mut self, s: S) {
        *self.m.entry(s).or_default() += 1
    }
    pub fn remove(&mut self, s: S) {
        if let Some(c) = self.m.get_mut(&s) {
            *c -= 1;
            if *c == 0 {
                self.m.remove(&s);
            }
        }
    }
    pub fn distinct_less_than(&self, s: &S) -> usize {
        self.m.range(..*s).count()
    }
}
