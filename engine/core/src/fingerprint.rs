//! A moment's fingerprint: what its content hashes to, kept beside its id so that the same id
//! sent again with other content is told apart from a resend (an integration that reuses ids
//! would otherwise lose moments without anyone being told).
//!
//! **Owns** the hashing of a moment's fields. **Must not touch** the history: it keeps the
//! fingerprints ([`crate::history::History`]), the resolver compares them
//! ([`crate::resolve`]).
//!
//! Two parts: `content`, a 64-bit hash of every field (what decides a conflict; each mixing
//! step is a bijection, so content that differs in one field never hashes alike), and `fields`,
//! one byte of each field's own hash (what names the first field that differs; a byte that
//! happens to match only makes the name less precise). The time is compared as the instant it
//! names (`...Z` and `...+00:00` are the same moment); attributes in their (sorted) order.

use std::hash::{BuildHasher, Hasher};

use crate::intern::Interner;

use plaudit_sdk::{Moment, Value};
use rustc_hash::FxBuildHasher;

/// The fields a fingerprint covers, in the order a difference is named.
pub const FIELDS: [&str; 7] = ["stakeholder", "counterpart", "kind", "channel", "at", "value", "attrs"];

const MIX: u64 = 0x517c_c1b7_2722_0a95;

/// A moment's content, hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub content: u64,
    pub fields: u64,
}

fn finish(h: u64) -> u64 {
    // Fx leaves its best bits low; the byte kept of each field is the top one (as the interner's
    // hash of a string does: `Interner::hash(s) == finish(fx(s))`).
    (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

fn value(h: &mut impl Hasher, v: &Value) {
    match v {
        Value::Bool(b) => {
            h.write_u8(1);
            h.write_u8(u8::from(*b));
        }
        Value::Int(i) => {
            h.write_u8(2);
            h.write_i64(*i);
        }
        Value::Float(f) => {
            h.write_u8(3);
            h.write_u64(f.to_bits());
        }
        Value::Text(t) => {
            h.write_u8(4);
            h.write(t.as_bytes());
            h.write_u8(0xff);
        }
    }
}

impl Fingerprint {
    /// The fingerprint of `m`, whose time is `at` (Unix seconds, as checked).
    pub fn of(m: &Moment, at: i64) -> Fingerprint {
        let counterpart = m.counterpart.as_deref().map_or(0, Interner::hash);
        Fingerprint::with_ids(m, at, Interner::hash(&m.stakeholder), counterpart)
    }

    /// [`Fingerprint::of`] given the [`Interner::hash`]es of the actor's and the counterpart's
    /// ids (0 for none), which the resolver has already.
    pub fn with_ids(m: &Moment, at: i64, actor: u64, counterpart: u64) -> Fingerprint {
        let value_hash = {
            let mut h = FxBuildHasher.build_hasher();
            match m.value {
                None => h.write_u8(0),
                Some(v) => {
                    h.write_u8(1);
                    h.write_u64(v.to_bits());
                }
            }
            h.finish()
        };
        let attrs = {
            let mut h = FxBuildHasher.build_hasher();
            for (k, v) in m.attrs.iter() {
                h.write(k.as_bytes());
                h.write_u8(0xff);
                value(&mut h, v);
            }
            h.finish()
        };
        let parts = [
            actor,
            counterpart,
            Interner::hash(&m.kind),
            Interner::hash(&m.channel),
            finish(at as u64),
            finish(value_hash),
            finish(attrs),
        ];
        let mut content = 0u64;
        let mut fields = 0u64;
        for (i, part) in parts.into_iter().enumerate() {
            content = (content.rotate_left(5) ^ part).wrapping_mul(MIX);
            fields |= (part >> 56) << (8 * i);
        }
        Fingerprint { content, fields }
    }

    /// The first field of [`FIELDS`] in which `self` and `other` differ, as far as their bytes
    /// tell (`None` when only the content says they differ, or when they do not).
    pub fn first_difference(&self, other: &Fingerprint) -> Option<&'static str> {
        let diff = self.fields ^ other.fields;
        (0..FIELDS.len()).find(|i| (diff >> (8 * i)) & 0xff != 0).map(|i| FIELDS[i])
    }
}

#[cfg(test)]
mod tests {
    use plaudit_sdk::Attrs;

    use super::*;

    fn moment() -> Moment {
        let mut attrs = Attrs::new();
        attrs.insert("rating".into(), Value::Int(5));
        Moment {
            id: "m1".into(),
            stakeholder: "ann".into(),
            counterpart: Some("bob".into()),
            kind: "answer".into(),
            channel: "forum".into(),
            at: "2026-03-02T10:00:00Z".into(),
            value: Some(2.5),
            attrs,
        }
    }

    #[test]
    fn the_same_content_has_the_same_fingerprint_whatever_the_id() {
        let a = moment();
        let b = Moment { id: "m2".into(), ..moment() };
        assert_eq!(Fingerprint::of(&a, 100), Fingerprint::of(&b, 100));
    }

    #[test]
    fn a_change_in_any_field_changes_the_content_and_names_that_field() {
        let base = Fingerprint::of(&moment(), 100);
        let mut attrs = Attrs::new();
        attrs.insert("rating".into(), Value::Int(4));
        let changed: [(&str, Moment, i64); 8] = [
            ("stakeholder", Moment { stakeholder: "ann2".into(), ..moment() }, 100),
            ("counterpart", Moment { counterpart: None, ..moment() }, 100),
            ("kind", Moment { kind: "meetup".into(), ..moment() }, 100),
            ("channel", Moment { channel: "email".into(), ..moment() }, 100),
            ("at", moment(), 101),
            ("value", Moment { value: None, ..moment() }, 100),
            ("value", Moment { value: Some(2.0), ..moment() }, 100),
            ("attrs", Moment { attrs, ..moment() }, 100),
        ];
        for (field, m, at) in changed {
            let other = Fingerprint::of(&m, at);
            assert_ne!(other.content, base.content, "{field}");
            assert_eq!(base.first_difference(&other), Some(field), "{field}");
        }
        assert_eq!(base.first_difference(&base), None);
    }
}
