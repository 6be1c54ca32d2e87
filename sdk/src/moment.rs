//! A contact moment, and the records an input stream of moments may carry.

use serde::{Deserialize, Serialize};

use crate::stakeholder::Stakeholder;
use crate::value::Attrs;

/// A contact moment: something a stakeholder did, possibly with a counterpart.
///
/// `id` is the client's idempotency key: the same id twice is scored once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moment {
    pub id: String,
    /// The actor's stakeholder id.
    pub stakeholder: String,
    /// The other party, if any; a rule may reward it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<String>,
    /// What happened: meetup, answer, referral, post, introduction...
    pub kind: String,
    /// Where it happened: forum, email, event, chat...
    pub channel: String,
    /// When it happened, RFC 3339 with an offset (`2026-03-01T09:30:00Z`).
    pub at: String,
    /// An optional number (a rating, an amount, a duration...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Attrs::is_empty")]
    pub attrs: Attrs,
}

/// Withdraws an earlier moment: a compensating entry reverses what it earned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retraction {
    /// The id of the moment to retract.
    pub retract: String,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A profile record in a moments stream: `{"profile": {"id": "ann", "team": "sales"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRecord {
    pub profile: Stakeholder,
}

/// One line of a moments file (JSON lines): a moment, a stakeholder profile, or a retraction.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Moment(Moment),
    Profile(Stakeholder),
    Retract(Retraction),
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Moment(m) => m.serialize(s),
            Record::Profile(p) => ProfileRecord { profile: p.clone() }.serialize(s),
            Record::Retract(r) => r.serialize(s),
        }
    }
}
