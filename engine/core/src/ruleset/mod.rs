//! Rule sets: the declarative format community managers edit ([`format`]), its validation and
//! compilation ([`compile`]) into the [`Program`] the scoring passes run ([`program`]).
//!
//! Owns: parsing TOML and JSON rule sets, every validation message. Does not touch a world or
//! any stakeholder state.

pub mod compile;
pub mod format;
pub mod program;

use std::path::Path;

pub use format::RuleSetDoc;
pub use program::Program;

use crate::intern::Interner;

/// Why a rule set was refused. Every problem names the field path.
#[derive(Debug, thiserror::Error)]
pub enum RuleSetError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{origin}:{}{}{message}",
        line.map(|l| format!("{l}: ")).unwrap_or_else(|| " ".to_string()),
        if path.is_empty() { String::new() } else { format!("{path}: ") }
    )]
    Syntax {
        origin: String,
        /// 1-based line, where the parser knows it.
        line: Option<usize>,
        path: String,
        message: String,
    },
    #[error("{origin}: {}", problems.iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        origin: String,
        /// (field path, what is wrong), in document order.
        problems: Vec<(String, String)>,
    },
}

impl RuleSetError {
    /// (field path, message) pairs, for APIs that report each problem separately.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            RuleSetError::Read { source, .. } => vec![(String::new(), source.to_string())],
            RuleSetError::Syntax { path, message, .. } => vec![(path.clone(), message.clone())],
            RuleSetError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

/// Parses a TOML rule set; `origin` names it in errors (a file name, "request body"...).
pub fn parse_toml(text: &str, origin: &str) -> Result<RuleSetDoc, RuleSetError> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_from_toml(text, origin, String::new(), &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        syntax_from_toml(text, origin, path, &inner)
    })
}

fn syntax_from_toml(text: &str, origin: &str, path: String, e: &toml::de::Error) -> RuleSetError {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    RuleSetError::Syntax {
        origin: origin.to_string(),
        line,
        path: if path == "." { String::new() } else { path },
        message: e.message().to_string(),
    }
}

/// Parses the JSON form of a rule set (the same shape as the TOML).
pub fn parse_json(text: &str, origin: &str) -> Result<RuleSetDoc, RuleSetError> {
    // serde would take an array for the document, section by section: only an object is one.
    if text.trim_start().starts_with('[') {
        return Err(RuleSetError::Syntax {
            origin: origin.to_string(),
            line: Some(1),
            path: String::new(),
            message: "a rule set is a JSON object, not an array".to_string(),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path == "." { String::new() } else { path };
        RuleSetError::Syntax { origin: origin.to_string(), line: Some(inner.line()), path, message: inner.to_string() }
    })
}

/// The two forms of a rule set: the TOML community managers edit, and its JSON equivalent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// The media type of the format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Toml => "application/toml",
            Format::Json => "application/json",
        }
    }
}

/// Parses a rule set in `format`.
pub fn parse(text: &str, format: Format, origin: &str) -> Result<RuleSetDoc, RuleSetError> {
    match format {
        Format::Toml => parse_toml(text, origin),
        Format::Json => parse_json(text, origin),
    }
}

/// Reads, parses and compiles a TOML rule-set file.
pub fn load(path: &Path, vocab: &mut Interner) -> Result<(RuleSetDoc, Program), RuleSetError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RuleSetError::Read { origin: origin.clone(), source })?;
    let doc = parse_toml(&text, &origin)?;
    let program = compile::compile(&doc, vocab, &origin)?;
    Ok((doc, program))
}
