//! Newtypes for the ids that travel through the engine.
//!
//! External ids (a stakeholder's id, a moment's id) are the client's strings; inside a world they
//! are interned to dense integers. A bevy `Entity` is an internal handle and never leaves the
//! world: effects and reads name stakeholders by their external id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An interned string: a kind, channel, team, stakeholder kind or attribute name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym(pub u32);

impl Default for Sym {
    /// [`Sym::NONE`].
    fn default() -> Sym {
        Sym::NONE
    }
}

impl Sym {
    /// "No value" (a stakeholder without a team, a moment without a counterpart).
    pub const NONE: Sym = Sym(u32::MAX);

    pub fn is_none(self) -> bool {
        self == Sym::NONE
    }
}

/// The position of an accepted record in its organisation's log, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An organisation's id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`, so that it is safe in
/// paths, URLs and file names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("may only contain a-z, 0-9, '-' and '_' (found {found:?})")]
    BadChar { found: char },
    #[error("must not contain control characters")]
    Control,
}

impl OrgId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<OrgId, ParseIdError> {
        if s.is_empty() {
            return Err(ParseIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseIdError::TooLong { max: Self::MAX_LEN, len: s.len() });
        }
        if let Some(found) =
            s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(ParseIdError::BadChar { found });
        }
        Ok(OrgId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = ParseIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrgId::parse(&s)
    }
}

impl From<OrgId> for String {
    fn from(id: OrgId) -> String {
        id.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a client-supplied external id (a stakeholder's or a moment's): 1 to 128 characters, no
/// control characters. Any other character is allowed; ids are data, never paths.
pub fn check_external_id(s: &str) -> Result<(), ParseIdError> {
    const MAX: usize = 128;
    if s.is_empty() {
        return Err(ParseIdError::Empty);
    }
    // Characters, not bytes: what a JSON Schema's `maxLength` counts.
    if s.len() > MAX && s.chars().count() > MAX {
        return Err(ParseIdError::TooLong { max: MAX, len: s.chars().count() });
    }
    if has_control(s) {
        return Err(ParseIdError::Control);
    }
    Ok(())
}

/// `s.chars().any(char::is_control)`, over bytes: the control characters are U+0000-U+001F,
/// U+007F, and U+0080-U+009F, which UTF-8 writes as `C2 80` to `C2 9F`.
fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    // Nearly every id is printable ASCII: one pass with no early exit, which the compiler turns
    // into vector code, settles it.
    if b.iter().fold(true, |printable, &c| printable & (0x20..0x7F).contains(&c)) {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| c < 0x20 || c == 0x7F || (c == 0xC2 && b.get(i + 1).is_some_and(|n| *n <= 0x9F)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn control_scan_over_bytes_equals_the_char_definition(s in "\\PC{0,8}[\\x00-\\x{a0}]?\\PC{0,8}") {
            prop_assert_eq!(has_control(&s), s.chars().any(char::is_control));
        }
    }

    #[test]
    fn c1_controls_and_their_neighbours() {
        assert!(has_control("a\u{80}b") && has_control("\u{9f}") && has_control("x\u{7f}"));
        assert!(!has_control("\u{a0}") && !has_control("é") && !has_control("ü\u{100}"));
    }
}
