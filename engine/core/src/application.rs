//! How the rule set in force is applied to history ([`Mode`]): named by the journal's effects
//! (`history:v3:additive`), the log's changes and the API, applied by
//! [`crate::retroactive`].

use serde::{Deserialize, Serialize};

/// How the rule set in force is applied to history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Additive,
    Rebase,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Additive => "additive",
            Mode::Rebase => "rebase",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "additive" => Ok(Mode::Additive),
            "rebase" => Ok(Mode::Rebase),
            other => Err(format!("{other:?} is not a mode: additive or rebase")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
