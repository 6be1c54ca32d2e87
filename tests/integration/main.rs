//! Integration tests of the engine, one module per feature: a real world through the library
//! API, the real server in process through its router (`app`), or the real binary (`cli`,
//! `server` and what needs a socket: restarts, SIGTERM, streams, connections, load).

mod app;
mod badges;
mod bounds;
mod browsers;
mod caps_and_guard;
mod challenges;
mod cli;
mod conflicts;
mod connections;
mod determinism;
mod durability;
mod erasure;
mod grouping;
mod http;
mod insights;
mod keys;
mod leaderboards;
mod outliers;
mod people;
mod plugins;
mod publish;
mod quotas;
mod retraction;
mod retroactive;
mod rules;
mod ruleset;
mod server;
mod simulate;
mod snapshots;
mod store_postgres;
mod streaks;
mod team_boards;
mod tenancy;

/// The `plaudit` binary cargo built for these tests.
pub fn plaudit_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_plaudit"))
}
