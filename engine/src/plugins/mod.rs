//! WebAssembly rule plugins: the sandbox host (DESIGN.md section 5).
//!
//! **Owns:** the shared `wasmtime::Engine`, the `plaudit` host imports (`log`, `random`), plugin
//! validation and compilation ([`PluginHost::compile`]), and running one call in a fresh,
//! limited store ([`Plugin::call`]): fuel, memory, stack, input, output and log caps, each
//! failure mapped to a typed [`PluginFailure`] an author can act on.
//!
//! **Must not touch:** bevy, the scoring passes, the journal or any organisation state, and
//! (later) axum. It moves opaque byte buffers in and out of a guest; encoding moments into those
//! buffers and turning the output into awards is the job of the plugins pass that calls it.
//! No WASI: a plugin sees no clock, files, network or entropy, only what the host hands it.

pub mod sandbox;

pub use sandbox::{CallOutput, Limits, Plugin, PluginError, PluginFailure, PluginHost};
