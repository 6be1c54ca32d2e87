//! Team challenges' progress: per (challenge, team), the current window's moments, whether it
//! was completed, and who contributed ([`TeamChallenges`]).
//!
//! **Owns** the resource; the effects pass writes it, publishing carries it over, snapshots and
//! reads read it.

use bevy_ecs::prelude::*;
use rustc_hash::FxHashMap;

/// Progress of team challenges, per (challenge, team).
#[derive(Resource, Debug, Default)]
pub struct TeamChallenges {
    pub progress: FxHashMap<(u16, u32), TeamProgress>,
    /// Counts team windows started, to tell a window's contributors from an earlier one's.
    pub generations: u64,
}

#[derive(Clone, Debug, Default)]
pub struct TeamProgress {
    pub window: i32,
    pub moments: u32,
    pub completed: bool,
    /// Members who contributed in this window: each gets the reward on completion.
    pub contributors: Vec<Entity>,
    /// Which window start this is (see [`TeamChallenges::generations`]).
    pub generation: u64,
}
