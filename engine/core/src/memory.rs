//! Memory accounting: what an organisation's world holds, by part, for the memory-per-stakeholder
//! figure (`cargo run --release -p plaudit-benches --bin memory`). Reads only; not for the hot path.

use crate::history::History;
use crate::leaderboard::Boards;
use crate::team::TeamChallenges;
use bevy_ecs::entity::Entity;

use crate::components::{Details, Identity, Scorecard};
use crate::resources::{DirEntry, Directory};
use crate::world::OrgWorld;

/// What one part of a stakeholder's state costs, summed over all stakeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentBytes {
    pub name: &'static str,
    /// `size_of` the part times the entities that have it: its share of bevy's table rows
    /// (bevy's own per-entity bookkeeping and change ticks are not included).
    pub inline: usize,
    /// Heap capacity held by the component's collections.
    pub heap: usize,
    /// Heap allocations (non-empty collections); each also costs the allocator's overhead.
    pub allocations: usize,
}

/// Bytes held by an [`OrgWorld`], by part, counted from the capacities of its collections; for
/// the "resident memory per stakeholder" figure (`cargo run --release -p plaudit-benches --bin
/// memory`). Allocator overhead, bevy's bookkeeping and freed-but-retained memory are not
/// counted: compare with the process's resident size to see those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub stakeholders: usize,
    /// Moment-id interner, per-moment info and the award ledger ([`History`]): it grows with
    /// the moments, not the stakeholders, and is left out of the per-stakeholder figure.
    /// Counted by length, not capacity: the spare capacity of these large vectors is address
    /// space the process has not touched, so it is not resident.
    pub history_bytes: usize,
    /// The same with the spare capacity: what history has reserved.
    pub history_capacity_bytes: usize,
    /// What insights recorded ([`crate::insights`]): a fact per moment, weekly totals, challenge
    /// windows, and the week views reads derived. Like history, it grows with the moments (and
    /// the reads), not the stakeholders: left out of the per-stakeholder figure.
    pub insights_bytes: usize,
    /// Stakeholder-id interner and directory entries ([`Directory`]).
    pub directory_bytes: usize,
    /// The parts of the [`Scorecard`] component in field order, its padding, then the
    /// [`Details`] component (whose attributes are not counted).
    pub components: Vec<ComponentBytes>,
    /// Keys in every leaderboard ranking, overall and per team.
    pub leaderboard_keys: usize,
    /// `leaderboard_keys` times the size of a key (plus dense boards' distinct values): a lower
    /// bound, as the rankings' blocks keep room to grow.
    pub leaderboard_bytes: usize,
    /// Team challenge progress, contributor lists included.
    pub team_challenge_bytes: usize,
}

impl MemoryReport {
    /// Everything counted but history and insights: what the per-stakeholder figure is about.
    pub fn state_bytes(&self) -> usize {
        let components: usize = self.components.iter().map(|c| c.inline + c.heap).sum();
        self.directory_bytes + components + self.leaderboard_bytes + self.team_challenge_bytes
    }
}

impl OrgWorld {
    /// Counts the bytes held by the world's stakeholder state and history (see
    /// [`MemoryReport`]). Walks every stakeholder: not for the hot path.
    pub fn memory(&self) -> MemoryReport {
        use crate::components::{CapSlot, Caps, Entry, GuardState, Seen, Slot, Standing, Tally, Wallet};

        fn add(c: &mut ComponentBytes, heap: usize) {
            c.heap += heap;
            c.allocations += usize::from(heap > 0);
        }

        let w = self.world();
        let history = w.resource::<History>();
        let (moments_used, moments_held) = history.bytes();
        let history_bytes = history.ids.used_bytes() + moments_used;
        let history_capacity_bytes = history.ids.heap_bytes() + moments_held;
        let dir = w.resource::<Directory>();
        let directory_bytes = dir.ids.heap_bytes() + dir.entries.capacity() * size_of::<DirEntry>();

        let parts = [
            ("Identity", size_of::<Identity>()),
            ("GuardState", size_of::<GuardState>()),
            ("Caps", size_of::<Caps>()),
            ("Seen", size_of::<Seen>()),
            ("Wallet", size_of::<Wallet>()),
            ("Tally", size_of::<Tally>()),
            ("Standing", size_of::<Standing>()),
        ];
        let padding = size_of::<Scorecard>() - parts.iter().map(|(_, n)| n).sum::<usize>();
        let mut components: Vec<ComponentBytes> = parts
            .into_iter()
            .chain([("Scorecard padding", padding), ("Details", size_of::<Details>())])
            .map(|(name, inline)| ComponentBytes { name, inline, heap: 0, allocations: 0 })
            .collect();
        let details_ix = components.len() - 1;
        let (mut entities, mut with_details) = (0, 0);
        if let Some(mut q) = w.try_query::<(&Scorecard, Option<&Details>)>() {
            for (card, details) in q.iter(w) {
                entities += 1;
                add(&mut components[2], card.caps.0.len() * size_of::<CapSlot>());
                add(&mut components[3], card.seen.heap_bytes());
                add(&mut components[4], card.wallet.0.len() * size_of::<i64>());
                add(&mut components[5], card.tally.0.len() * size_of::<Slot>());
                add(&mut components[6], card.standing.entries.len() * size_of::<Entry>());
                if let Some(d) = details {
                    with_details += 1;
                    add(&mut components[details_ix], d.name.as_ref().map_or(0, |n| n.len()));
                }
            }
        }
        for (i, c) in components.iter_mut().enumerate() {
            c.inline *= if i == details_ix { with_details } else { entities };
        }

        let boards = w.resource::<Boards>();
        let rankings = || boards.0.iter().flat_map(|b| std::iter::once(&b.all).chain(b.teams.values()));
        let leaderboard_keys: usize = rankings().map(|r| r.index.len()).sum();
        // A dense board's distinct values: a key in an index and a count in a hash map.
        let distinct: usize = rankings().filter_map(|r| r.distinct.as_ref()).map(|d| d.distinct_len()).sum();
        let teams = w.resource::<TeamChallenges>();
        let team_challenge_bytes = teams.progress.capacity()
            * (size_of::<(u16, u32)>() + size_of::<crate::team::TeamProgress>())
            + teams.progress.values().map(|p| p.contributors.capacity() * size_of::<Entity>()).sum::<usize>();

        MemoryReport {
            stakeholders: dir.entries.len(),
            history_bytes,
            history_capacity_bytes,
            insights_bytes: w.resource::<crate::insights::Insights>().bytes(),
            directory_bytes,
            components,
            leaderboard_keys,
            leaderboard_bytes: leaderboard_keys * size_of::<crate::leaderboard::Key>() + distinct * (8 + 16 + 1),
            team_challenge_bytes,
        }
    }
}
