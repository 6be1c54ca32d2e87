//! Plaudit's shared vocabulary: what a contact moment, a stakeholder and an effect look like on
//! the wire, for the engine, for product teams' tooling, and for rule plugins.
//!
//! This crate does no IO and pulls in nothing heavier than serde: it builds with rustc 1.63 for
//! `wasm32-unknown-unknown`, so plugins can use the very same types as the host.
//!
//! - [`moment`]: a contact moment and the other records an input stream may carry.
//! - [`stakeholder`]: a stakeholder profile as clients send it.
//! - [`effect`]: what scoring produced, each tied to the moment that caused it.
//! - [`value`]: the small attribute values moments, stakeholders and effects carry.
//! - [`plugin`]: writing a rule plugin: the handler API, the [`plugin!`] export macro, the
//!   native test harness, and the ABI's wire format.

pub mod effect;
pub mod moment;
pub mod plugin;
pub mod stakeholder;
pub mod value;

pub use effect::{Effect, EffectKind};
pub use moment::{Moment, Record, Retraction};
pub use stakeholder::Stakeholder;
pub use value::{Attrs, Value};
