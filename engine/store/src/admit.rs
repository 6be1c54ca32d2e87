//! What a change must satisfy to be logged, whatever the backend: the one set of checks both
//! stores make inside their write transaction, before storing it.
//!
//! **Owns** those checks. **Must not touch** storage: the backend reads what they need (the
//! log's end, the previous change) and does what they ask of the module.

use plaudit_core::ids::Seq;

use crate::Change;

/// What a change asks of the backend's module table once admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ModuleNeed<'a> {
    /// Nothing: the change installs no plugin.
    None,
    /// Store `bytes` under `hash` (once: a module stored already stays) and count them.
    Store { hash: &'a str, bytes: &'a [u8] },
    /// The module `hash` must be stored already ([`not_stored`] otherwise).
    Stored(&'a str),
}

/// Whether `change`, with `module`, may be logged after record `after` of a log that ends at
/// `end` and whose last change was logged after `previous_after`; why not, for
/// [`crate::StoreError::ChangeOutOfOrder`].
pub(crate) fn admit_change<'a>(
    end: u64,
    previous_after: Option<u64>,
    after: Seq,
    change: &'a Change,
    module: Option<&'a [u8]>,
) -> Result<ModuleNeed<'a>, String> {
    if after.0 > end {
        return Err(format!("the log ends at {end}"));
    }
    if let Some(previous) = previous_after.filter(|&p| p > after.0) {
        return Err(format!("the previous change is after sequence {previous}"));
    }
    match (change, module) {
        (Change::InstallPlugin { module: hash, .. }, Some(bytes)) if crate::module_hash(bytes) != *hash => {
            Err(format!("the module's bytes do not hash to {hash}"))
        }
        (Change::InstallPlugin { module: hash, .. }, Some(bytes)) => Ok(ModuleNeed::Store { hash, bytes }),
        (Change::InstallPlugin { module: hash, .. }, None) => Ok(ModuleNeed::Stored(hash)),
        (_, Some(_)) => Err("only a plugin installation carries a module".to_string()),
        (_, None) => Ok(ModuleNeed::None),
    }
}

/// Why a change naming module `hash` is refused when the store does not hold it.
pub(crate) fn not_stored(hash: &str) -> String {
    format!("module {hash} is not stored and was not given")
}
