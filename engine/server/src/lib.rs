//! Plaudit's server: the durable organisation and everything that serves it over HTTP.
//!
//! A moment's path through this crate, after [`http`] has parsed and authenticated it:
//! [`http::worker`] hands it to the organisation's own thread, where [`organisation`] (the log
//! step) resolves it in the world, appends the accepted records to the store in one group
//! commit while the world scores them, and only then answers; the effects go to the
//! organisation's [`feed`], which readers page through, follow live, and [`webhooks`] deliver.
//!
//! - [`organisation`]: [`organisation::Organisation`], one organisation's world with its store:
//!   ingestion, recovery (snapshot + replay), snapshots, rule-set and plugin changes, what-if.
//! - [`feed`]: the numbered effects, kept in memory for readers.
//! - [`webhooks`]: subscriptions and their at-least-once, signed delivery.
//! - [`datadir`]: a data directory's layout, shared with the CLI.
//! - [`http`]: routes, keys, limits and budgets, the accept loop, the JSON error body.
//!
//! **Depends on** `plaudit-core` (scoring, no IO) and `plaudit-store` (durability); nothing
//! below imports this crate. **Must not** score anything itself: every number a reader sees
//! comes from the world, through the organisation's thread.

pub mod datadir;
pub mod feed;
pub mod http;
pub mod organisation;
pub mod placement;
pub mod webhooks;
