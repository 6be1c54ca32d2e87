//! Plaudit's scoring core: one organisation's world and everything that scores in it, with no
//! IO. A contact moment's path through this crate, one module per step:
//!
//! - [`resolve`]: records in, checked and resolved (ids interned, stakeholders created, windows
//!   computed) into the [`batch`];
//! - [`passes`]: the scoring passes over the batch, as bevy systems in order: [`passes::warm`],
//!   [`passes::guard`], [`passes::rules`], [`passes::plugins`], [`passes::effects`];
//! - [`journal`]: the effects produced, and their rendering to [`plaudit_sdk::Effect`];
//! - [`leaderboard`]: the rankings, published lazily before a read;
//! - [`reads`]: profiles, leaderboard pages, challenge status.
//!
//! [`world`] holds it together: [`OrgWorld`] owns one organisation's bevy `World` and the
//! schedules, and is the library API (`ingest`, `drain_effects`, `profile`, `leaderboard`...).
//! Around it: [`ruleset`] (the declarative rule-set format, its validation, the compiled
//! [`Program`]), [`publish`] (a new rule-set version going forward), [`retroactive`] (the rule
//! set in force applied to history, in an [`application::Mode`]), [`simulate`] (what-if: two
//! worlds compared), [`snapshot`] (a world as plain data, and back), [`plugins`] (an
//! organisation's plugin registry over [`plaudit_sandbox`]).
//!
//! State: [`components`] (a stakeholder's scorecard, and which pass writes which part),
//! [`resources`] (the program, vocabulary and directory), [`history`] (moment ids and the
//! award ledger), [`team`] (team challenges' progress). Supporting: [`bounds`] (the bounds every
//! number a moment can reach is kept within), [`calendar`] (days, weeks and months in the
//! organisation's time zone), [`ids`], [`intern`], [`keyset`], [`chunks`], [`matcher`],
//! [`prefetch`], [`input`] (JSON-lines records), [`workload`] (the synthetic workload),
//! [`memory`] (resident memory per part of the world).
//!
//! **Architecture invariant:** nothing here does IO, reads the clock or OS entropy, or
//! depends on a store or a server: state is a function of the rule set and the records.

pub mod application;
pub mod batch;
pub mod bounds;
pub mod calendar;
pub mod chunks;
pub mod components;
pub mod fingerprint;
pub mod history;
pub mod ids;
pub mod input;
pub mod insights;
pub mod intern;
pub mod journal;
pub mod keyset;
pub mod leaderboard;
pub mod matcher;
pub mod memory;
pub mod passes;
pub mod plugins;
pub mod prefetch;
pub mod publish;
pub mod reads;
pub mod resolve;
pub mod resources;
pub mod retroactive;
pub mod ruleset;
pub mod simulate;
pub mod snapshot;
pub mod team;
pub mod workload;
pub mod world;

pub use memory::MemoryReport;
pub use resolve::{Admission, Arrival, Outcome, RecordError};
pub use ruleset::Program;
pub use world::OrgWorld;
