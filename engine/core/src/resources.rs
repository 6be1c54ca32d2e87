//! The organisation-wide state the passes read besides the stakeholders' scorecards: the
//! compiled rule set ([`ProgramRes`]), the vocabulary of kinds, channels and teams ([`Vocab`]),
//! and the directory of stakeholder ids ([`Directory`]).
//!
//! **Owns** those resource types. Resolving a batch ([`crate::resolve`]) fills the vocabulary
//! and the directory; publishing a rule set ([`crate::publish`]) replaces the program.

use std::sync::Arc;

use bevy_ecs::prelude::*;

use crate::ids::Sym;
use crate::intern::Interner;
use crate::ruleset::program::Program;

/// The compiled rule set the passes read.
#[derive(Resource, Debug, Clone)]
pub struct ProgramRes(pub Arc<Program>);

/// The organisation's vocabulary: kinds, channels, teams, stakeholder kinds.
#[derive(Resource, Debug, Default, Clone)]
pub struct Vocab(pub Interner);

/// Stakeholder ids <-> entities. Kind and team are kept here too (a copy of the
/// [`Identity`](crate::components::Identity) in each scorecard), so that resolving a moment
/// reads one entry instead of the entity's components.
#[derive(Resource, Debug, Default)]
pub struct Directory {
    pub ids: Interner,
    /// Indexed by the id's number in `ids`.
    pub entries: Vec<DirEntry>,
    /// Stakeholders erased ([`crate::OrgWorld::erase`]), by number: on no leaderboard, no
    /// profile, nothing a retraction gives or takes.
    pub erased: rustc_hash::FxHashSet<u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct DirEntry {
    pub entity: Entity,
    pub kind: Sym,
    pub team: Sym,
}

impl Directory {
    pub fn get(&self, id: &str) -> Option<Entity> {
        self.ids.get(id).map(|i| self.entries[i as usize].entity)
    }

    /// Whether stakeholder number `no` was erased.
    #[inline]
    pub fn is_erased(&self, no: u32) -> bool {
        !self.erased.is_empty() && self.erased.contains(&no)
    }
}
