//! A stakeholder profile as a client sends it (`PUT .../stakeholders/{id}`, or a `profile`
//! record in a moments file).

use serde::{Deserialize, Serialize};

use crate::value::Attrs;

/// A person or party taking part: a customer, an employee, a partner...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stakeholder {
    /// The client's id for this stakeholder (1 to 128 characters, no control characters).
    pub id: String,
    /// customer, employee, partner, supplier, contractor, community, or a custom kind.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Team or department, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Display name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Attrs::is_empty")]
    pub attrs: Attrs,
}

impl Stakeholder {
    /// The profile a stakeholder has when it is first seen in a moment: kind
    /// [`DEFAULT_KIND`], no team, no name, no attributes.
    pub fn new(id: impl Into<String>) -> Stakeholder {
        Stakeholder { id: id.into(), kind: default_kind(), team: None, name: None, attrs: Attrs::default() }
    }
}

/// The kind a stakeholder gets when it is first seen in a moment without a profile.
pub const DEFAULT_KIND: &str = "community";

fn default_kind() -> String {
    DEFAULT_KIND.to_string()
}
