//! Plaudit's scoring engine.
//!
//! A contact moment's path through this crate, one module per step:
//!
//! - [`http`]: the HTTP API: routes, keys, limits, one worker thread per organisation.
//! - [`log`]: the log step: resolve, append durably (group commit) while scoring, answer once
//!   durable; replay on open.
//! - [`ruleset`]: the declarative rule-set format, its validation, and the compiled [`Program`].
//! - [`world`]: one organisation's bevy `World` and the library API ([`OrgWorld`]): resolve a
//!   batch ([`resolve`]: checks, interning, new stakeholders, windows), run the scoring
//!   schedule, hand out effects.
//! - [`guard`] -> [`rules`] -> [`plugins`] -> [`effects`] -> [`leaderboard`]: the scoring
//!   passes, as systems run in that order over a batch ([`world::Pass`]).
//! - [`journal`]: the effects produced, and their rendering to [`plaudit_sdk::Effect`];
//!   [`feed`]: the recent effects, numbered, for the effects feed, its stream and
//!   [`webhooks`] (signed, at-least-once delivery to product teams' URLs).
//! - [`reads`]: profiles, leaderboard pages, challenge status.
//! - [`publish`]: a new rule-set version, going forward: state carried over by id;
//!   [`retroactive`]: the rule set in force applied to history (additive or rebase).
//! - [`simulate`]: what-if: the same records under the current and a candidate rule set, compared.
//! - [`input`]: moments files (JSON lines), [`workload`]: the synthetic workload generator.
//! - [`plugins`]: WebAssembly rule plugins: the sandbox, the per-organisation registry, the pass.
//! - [`store`]: the durable store (record log, changes, snapshots) behind a trait;
//!   [`datadir`]: where a data directory keeps it, and each organisation's files.
//!
//! Supporting: [`bounds`] (the bounds every number a moment can reach is kept within),
//! [`components`] (stakeholder state and who owns it), [`batch`] (buffers shared by
//! the passes), [`history`] (ids and the award ledger), [`calendar`] (days, weeks, months in
//! the organisation's time zone), [`matcher`], [`intern`], [`keyset`], [`ids`], [`prefetch`]; [`allocator`]
//! (the binaries' allocator).

pub mod allocator;
pub mod batch;
pub mod bounds;
pub mod calendar;
pub mod chunks;
pub mod components;
pub mod datadir;
pub mod effects;
pub mod feed;
pub mod guard;
pub mod history;
pub mod http;
pub mod ids;
pub mod input;
pub mod intern;
pub mod journal;
pub mod keyset;
pub mod leaderboard;
pub mod log;
pub mod matcher;
pub mod memory;
pub mod plugins;
pub mod prefetch;
pub mod publish;
pub mod reads;
pub mod resolve;
pub mod retroactive;
pub mod rules;
pub mod ruleset;
pub mod simulate;
pub mod snapshot;
pub mod store;
pub mod webhooks;
pub mod workload;
pub mod world;

pub use memory::MemoryReport;
pub use ruleset::Program;
pub use world::{OrgWorld, Outcome, RecordError};
