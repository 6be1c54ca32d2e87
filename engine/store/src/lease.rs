//! Leases: which node of a cluster owns each organisation, fenced by an epoch.
//!
//! Several `plaudit serve` nodes can share one PostgreSQL store ([`crate::PgStore`]). Each
//! organisation is then owned by one node at a time, through a lease: a row naming the node,
//! the process (its incarnation), an **epoch**, and when it expires. A node takes a free lease
//! ([`Leases::acquire`], which makes the epoch one more than the last holder's), keeps it by
//! renewing every lease it holds at once ([`Leases::renew`]) and gives it up when it hands
//! the organisation on ([`Leases::release`]). A lease not renewed within its time to live is
//! free for another node to take.
//!
//! **Fencing.** A store a node joined ([`crate::PgStore::open_node`]) refuses every write to an
//! organisation's log (records, changes, snapshots, erasures) unless this process holds the
//! organisation's lease at the epoch it took it with, checked in the write's own transaction
//! and holding the lease row until it commits: so a node that lost its lease (paused past it,
//! cut off, slow) can never write again, whatever its clock says. Its next write is refused
//! with [`crate::StoreError::Fenced`], and the node drops the organisation. A taker takes
//! the lease only once no write under it is under way (a dead owner's last statement may still
//! commit; `NOWAIT`, and the next tick tries again), so it reads a log no fenced write can
//! still add to. Every time is the database's `clock_timestamp()`, never a transaction's start,
//! which a statement waiting on a lock would leave behind.
//!
//! **Owns** the lease and node rows' meaning. **Must not touch** placement (which node should
//! own what: the server's) or the log.

use std::time::Duration;

use plaudit_core::ids::OrgId;

use crate::StoreError;

/// A node of the cluster as the store last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSeen {
    /// Its name, unique in the cluster.
    pub node: String,
    /// How the other nodes reach it (`http://host:port`).
    pub address: String,
    /// How long ago it last said it was alive, by the database's clock (milliseconds).
    pub seen_ms_ago: u64,
    /// Whether it is leaving: it hands its organisations on and takes none.
    pub leaving: bool,
}

/// A lease as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub org: OrgId,
    /// The node holding it (or that last held it, once it expired).
    pub node: String,
    /// The fencing token: one more each time the lease changes hands.
    pub epoch: u64,
    /// Milliseconds until it expires, by the database's clock; zero or less: expired, free.
    pub expires_in_ms: i64,
}

impl Lease {
    /// Whether it is still held.
    pub fn live(&self) -> bool {
        self.expires_in_ms > 0
    }
}

/// What a cluster node does with leases. Given by [`crate::Store::leases`] once the store was
/// opened as a node of a cluster.
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// This node's name.
    fn node(&self) -> &str;

    /// Says this node is alive (and reachable at `address`), or leaving; registers it the
    /// first time.
    fn heartbeat(&self, address: &str, leaving: bool) -> Result<(), StoreError>;

    /// Every node the store knows, by name.
    fn nodes(&self) -> Result<Vec<NodeSeen>, StoreError>;

    /// Every lease, by organisation.
    fn leases(&self) -> Result<Vec<Lease>, StoreError>;

    /// How long a lease lasts unless renewed.
    fn ttl(&self) -> Duration;

    /// Takes `org`'s lease for [`Leases::ttl`] if it is free (never taken, expired, or
    /// released), and returns its new epoch; `None` if another node holds it. From then on
    /// this process may write to `org`'s log, until it loses or releases the lease.
    fn acquire(&self, org: &OrgId) -> Result<Option<u64>, StoreError>;

    /// Extends every lease this process holds by [`Leases::ttl`], and returns those it still
    /// holds, with their epochs. One it held that is not among them was taken by another
    /// node: its writes are refused from now on (the store forgets it). A lease of this
    /// process that expired but that no other node took is renewed: nobody else wrote.
    fn renew(&self) -> Result<Vec<(OrgId, u64)>, StoreError>;

    /// Gives up `org`'s lease (it expires now), if this process holds it; its writes to
    /// `org` are refused from now on.
    fn release(&self, org: &OrgId) -> Result<(), StoreError>;

    /// The leases this process holds, by its own account (no round trip).
    fn held(&self) -> Vec<(OrgId, u64)>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use plaudit_core::ids::Seq;

    use crate::conformance::{PgPlace, moment, org, rules};
    use crate::{PgStore, Store, StoreError};

    fn node(place: &PgPlace, name: &str, ttl_ms: u64) -> PgStore {
        PgStore::open_node(&place.url, name, Duration::from_millis(ttl_ms)).expect("the store opens as a node")
    }

    fn fenced<T: std::fmt::Debug>(done: Result<T, StoreError>) -> bool {
        matches!(done, Err(StoreError::Fenced { .. }))
    }

    #[test]
    fn a_node_writes_only_to_the_organisations_whose_lease_it_holds() {
        let Some(place) = PgPlace::new("lease_writes") else { return };
        let (a, b) = (node(&place, "a", 60_000), node(&place, "b", 60_000));
        let acme = org("acme");
        a.create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        assert_eq!(a.leases().map(|l| l.held()), Some(vec![(acme.clone(), 1)]), "the creator owns it");
        assert_eq!(a.append(&acme, &[moment("m1")], 0).expect("the owner writes"), Seq(1));
        assert!(fenced(b.append(&acme, &[moment("m2")], 0)), "a node without the lease is refused");
        assert_eq!(b.leases().expect("a node").acquire(&acme).expect("asks"), None, "a live lease is not taken");
        assert!(fenced(b.put_snapshot(&acme, Seq(1), b"x")));
        assert!(fenced(b.append_change(&acme, Seq(1), &rules("[currencies]\n"), None)));
        assert_eq!(b.last_seq(&acme).expect("reads"), Seq(1), "nothing of the refused writes was stored");
    }

    #[test]
    fn a_lease_taken_over_fences_its_former_holder_out_for_good() {
        let Some(place) = PgPlace::new("lease_takeover") else { return };
        let (a, b) = (node(&place, "a", 300), node(&place, "b", 60_000));
        let acme = org("acme");
        a.create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        a.append(&acme, &[moment("m1")], 0).expect("the owner writes");
        std::thread::sleep(Duration::from_millis(400));
        let lb = b.leases().expect("a node");
        assert_eq!(lb.acquire(&acme).expect("asks"), Some(2), "an expired lease is taken, one epoch on");
        assert_eq!(b.append(&acme, &[moment("m2")], 0).expect("the new owner writes"), Seq(2));
        // The former holder, as if it woke from a pause: its writes are refused, its renewal
        // says it holds nothing, and it stays out.
        assert!(fenced(a.append(&acme, &[moment("m3")], 0)));
        let la = a.leases().expect("a node");
        assert_eq!(la.renew().expect("renews"), vec![]);
        assert!(fenced(a.append(&acme, &[moment("m3")], 0)));
        assert_eq!(b.last_seq(&acme).expect("reads"), Seq(2));
        let lease = lb.leases().expect("lists").into_iter().find(|l| l.org == acme).expect("a lease");
        assert_eq!((lease.node.as_str(), lease.epoch, lease.live()), ("b", 2, true));
    }

    #[test]
    fn renewal_keeps_a_lease_released_ones_are_free_to_take() {
        let Some(place) = PgPlace::new("lease_renew") else { return };
        let (a, b) = (node(&place, "a", 300), node(&place, "b", 60_000));
        let (la, lb) = (a.leases().expect("a node"), b.leases().expect("a node"));
        let acme = org("acme");
        a.create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(la.renew().expect("renews"), vec![(acme.clone(), 1)]);
        }
        assert_eq!(lb.acquire(&acme).expect("asks"), None, "renewed: still held");
        la.release(&acme).expect("released");
        assert!(fenced(a.append(&acme, &[moment("m1")], 0)), "released: no more writes");
        assert_eq!(lb.acquire(&acme).expect("asks"), Some(2));
        la.heartbeat("http://127.0.0.1:1", false).expect("a heartbeat");
        lb.heartbeat("http://127.0.0.1:2", true).expect("a heartbeat");
        let nodes = la.nodes().expect("lists");
        let seen: Vec<(&str, bool)> = nodes.iter().map(|n| (n.node.as_str(), n.leaving)).collect();
        assert_eq!(seen, [("a", false), ("b", true)]);
    }

    #[test]
    fn of_nodes_taking_a_free_lease_at_once_exactly_one_gets_it() {
        let Some(place) = PgPlace::new("lease_race") else { return };
        let nodes: Vec<PgStore> = (0..3).map(|i| node(&place, &format!("n{i}"), 150)).collect();
        let acme = org("acme");
        nodes[0].create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        for round in 0..30 {
            std::thread::sleep(Duration::from_millis(200));
            let barrier = std::sync::Barrier::new(nodes.len());
            let taken: Vec<Option<u64>> = std::thread::scope(|s| {
                let handles: Vec<_> = nodes
                    .iter()
                    .map(|n| {
                        let (barrier, acme) = (&barrier, &acme);
                        s.spawn(move || {
                            barrier.wait();
                            n.leases().expect("a node").acquire(acme).expect("asks")
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("joins")).collect()
            });
            let winners = taken.iter().filter(|t| t.is_some()).count();
            assert_eq!(winners, 1, "round {round}: {taken:?}");
        }
    }

    #[test]
    fn an_expired_lease_is_not_taken_while_a_write_under_it_is_under_way() {
        let Some(place) = PgPlace::new("lease_zombie") else { return };
        let (a, b) = (node(&place, "a", 150), node(&place, "b", 60_000));
        let acme = org("acme");
        a.create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        // A statement of the dead owner still running, holding the lease row as a fenced write
        // does: its own connection, its transaction left open.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let writer = runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&place.url, tokio_postgres::NoTls).await.expect("connects");
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN; SELECT 1 FROM leases WHERE org = 'acme' FOR KEY SHARE")
                .await
                .expect("holds the row");
            client
        });
        std::thread::sleep(Duration::from_millis(250));
        let lb = b.leases().expect("a node");
        let started = std::time::Instant::now();
        assert_eq!(lb.acquire(&acme).expect("asks"), None, "not while the write may still commit");
        assert!(started.elapsed() < Duration::from_secs(5), "and without waiting for it");
        drop(writer);
        drop(runtime);
        let mut taken = None;
        for _ in 0..50 {
            taken = lb.acquire(&acme).expect("asks");
            if taken.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(taken, Some(2), "once it ended");
    }

    #[test]
    fn a_store_of_one_server_is_not_fenced() {
        let Some(place) = PgPlace::new("lease_none") else { return };
        let store = PgStore::open(&place.url).expect("opens");
        assert!(store.leases().is_none());
        let acme = org("acme");
        store.create_org(&acme, None, &rules("[currencies]\nxp = {}\n")).expect("created");
        assert_eq!(store.append(&acme, &[moment("m1")], 0).expect("writes"), Seq(1));
    }
}
