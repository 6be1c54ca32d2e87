//! Placement: which live node of a cluster should own each organisation.
//!
//! **Rendezvous hashing with a load cap.** Each organisation ranks the nodes by a hash of
//! (organisation, node) — the first 8 bytes of SHA-256 of `org`, a zero byte, `node` — and
//! goes to the first node in its ranking that holds fewer than the cap, taking the
//! organisations in name order. The cap is a quarter above an even share:
//! `ceil(5 * organisations / (4 * nodes))`. So every node computes the same placement from the
//! same organisations and nodes, with no coordination; a node joining or leaving moves about
//! its share of organisations and few others (those the cap had pushed off their first
//! choice); and no node gets more than a quarter above its share, however the hashes fall.
//!
//! **Owns** that rule only: a pure function. **Must not touch** leases or the store (the
//! cluster's upkeep, `crate::http::cluster`, acts on the placement).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Organisation `org`'s score for `node`: the higher, the more it prefers it.
fn score(org: &str, node: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(org.as_bytes());
    hash.update([0]);
    hash.update(node.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The most organisations one of `nodes` nodes owns: a quarter above an even share.
pub fn cap(orgs: usize, nodes: usize) -> usize {
    if nodes == 0 {
        return 0;
    }
    (5 * orgs).div_ceil(4 * nodes).max(1)
}

/// The node each of `orgs` should be owned by, among `nodes` (none if `nodes` is empty).
/// The result depends only on the two sets, not on their order.
pub fn place<'a>(orgs: &[&'a str], nodes: &[&'a str]) -> BTreeMap<&'a str, &'a str> {
    let mut placed = BTreeMap::new();
    let mut nodes: Vec<&str> = nodes.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    if nodes.is_empty() {
        return placed;
    }
    let mut orgs: Vec<&str> = orgs.to_vec();
    orgs.sort_unstable();
    orgs.dedup();
    let cap = cap(orgs.len(), nodes.len());
    let mut load = vec![0usize; nodes.len()];
    for org in orgs {
        let mut ranking: Vec<(u64, usize)> = nodes.iter().enumerate().map(|(i, n)| (score(org, n), i)).collect();
        ranking.sort_unstable_by(|a, b| b.cmp(a));
        // The cap times the nodes is at least the organisations: one always has room.
        let Some(&(_, i)) = ranking.iter().find(|(_, i)| load[*i] < cap) else { continue };
        load[i] += 1;
        placed.insert(org, nodes[i]);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn every_organisation_is_placed_on_one_node_and_none_above_the_cap() {
        for (orgs, nodes) in [(1, 1), (1, 3), (2, 3), (10, 3), (100, 3), (1000, 7), (7, 2)] {
            let (o, n) = (names("org-", orgs), names("node-", nodes));
            let placed = place(&refs(&o), &refs(&n));
            assert_eq!(placed.len(), orgs);
            for node in &n {
                let owned = placed.values().filter(|v| **v == node).count();
                assert!(owned <= cap(orgs, nodes), "{node} owns {owned} of {orgs} over {nodes} nodes");
            }
        }
    }

    #[test]
    fn placement_depends_on_the_sets_not_their_order() {
        let (o, n) = (names("org-", 50), names("node-", 4));
        let mut o2 = refs(&o);
        o2.reverse();
        let mut n2 = refs(&n);
        n2.rotate_left(1);
        assert_eq!(place(&refs(&o), &refs(&n)), place(&o2, &n2));
    }

    #[test]
    fn a_node_joining_moves_about_its_share_and_leaving_gives_them_back() {
        let o = names("org-", 300);
        let three = names("node-", 3);
        let four = names("node-", 4);
        let before = place(&refs(&o), &refs(&three));
        let after = place(&refs(&o), &refs(&four));
        let moved = o.iter().filter(|org| before[org.as_str()] != after[org.as_str()]).count();
        // A quarter of them should move to the newcomer; the cap moves a few more.
        assert!((60..=120).contains(&moved), "{moved} of 300 moved");
        assert!(after.values().filter(|n| **n == "node-3").count() >= 60);
        assert_eq!(place(&refs(&o), &refs(&three)), before, "leaving again restores the placement");
    }

    #[test]
    fn no_nodes_no_placement() {
        assert!(place(&["acme"], &[]).is_empty());
    }
}
