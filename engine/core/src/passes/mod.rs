//! The scoring passes, as bevy systems run over a batch a chunk at a time, in the order of
//! [`Pass`]: [`warm`] (start loading the chunk's scorecards), [`guard`] (the cheat guard),
//! [`rules`] (the declarative rules), [`plugins`] (WebAssembly rule plugins), [`effects`]
//! (balances, badges, levels, metrics, streaks, challenges; its step for a retraction is
//! [`effects::retraction`]). The leaderboards'
//! publishing is a schedule of its own ([`Publishing`], see [`crate::leaderboard`]).
//!
//! **Owns** the order of the passes. Each pass owns the parts of the scorecard the table in
//! [`crate::components`] gives it; none does IO or touches the world outside a system.

pub mod effects;
pub mod guard;
pub mod plugins;
pub mod rules;
pub mod warm;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleLabel;

/// The scoring passes, in the order they run over a batch.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    Guard,
    Rules,
    Plugins,
    Effects,
}

/// The schedule of the scoring passes, run over every batch.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scoring;

/// The schedule that publishes queued leaderboard entries, run before a read of the rankings.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Publishing;
