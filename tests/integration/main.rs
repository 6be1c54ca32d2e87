//! Integration tests of the engine, one module per feature; each drives a real world through
//! the library API (and `cli` the real binary).

mod badges;
mod bounds;
mod caps_and_guard;
mod challenges;
mod cli;
mod connections;
mod determinism;
mod durability;
mod grouping;
mod http;
mod leaderboards;
mod outliers;
mod plugins;
mod publish;
mod retroactive;
mod rules;
mod ruleset;
mod server;
mod simulate;
mod snapshots;
mod streaks;
mod tenancy;
