//! Moments files: JSON lines, each a contact moment, a `{"profile": {...}}` record or a
//! `{"retract": "moment-id"}` record. Errors name the line.

use std::io::BufRead;

use plaudit_sdk::moment::{ProfileRecord, Retraction};
use plaudit_sdk::{Moment, Record};

/// A line that is not a record.
#[derive(Debug, thiserror::Error)]
pub enum ReadRecordError {
    #[error("line {line}: {source}")]
    Parse {
        line: usize,
        #[source]
        source: ParseRecordError,
    },
    #[error("line {line}: cannot read: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Why a line (or a request's item) is not a record: the field it is about, if any, as a path
/// (`at`, `profile.team`), and serde's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseRecordError {
    pub field: Option<String>,
    pub message: String,
    /// Not JSON at all (rather than JSON that is no record).
    pub syntax: bool,
}

/// The field serde names in backquotes in a message about a field (`unknown field `chanel``,
/// `missing field `at``), if it names one.
pub fn named_field(message: &str) -> Option<&str> {
    let rest = message.split_once("field `")?.1;
    rest.split_once('`').map(|(field, _)| field)
}

/// `line` as a `T`, or the field it fails at.
///
/// Read by plain serde first: tracking the path costs about a tenth of the HTTP ingest's CPU
/// (`serde_path_to_error` wraps every value's visitor), and only a refusal needs it, so a line
/// that fails is read again with the path tracked.
fn parse<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, ParseRecordError> {
    serde_json::from_str(line).or_else(|_| parse_tracked(line))
}

/// [`parse`]'s slow path: the error with the field it names.
#[cold]
fn parse_tracked<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, ParseRecordError> {
    let mut de = serde_json::Deserializer::from_str(line);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let syntax = inner.is_syntax() || inner.is_eof();
        // A missing field is named in the message, under the path of its object; the path of
        // anything else (an unknown field too) ends at it.
        let named = named_field(&message).filter(|_| message.contains("missing field"));
        let field = match (path.as_str(), named) {
            _ if syntax => None,
            (".", None) => None,
            (".", Some(name)) => Some(name.to_string()),
            (path, Some(name)) => Some(format!("{path}.{name}")),
            (path, None) => Some(path.to_string()),
        };
        ParseRecordError { field, message, syntax }
    })?;
    // Nothing but whitespace after the record.
    de.end().map_err(|e| ParseRecordError { field: None, message: e.to_string(), syntax: true })?;
    Ok(value)
}

/// Parses one line. Which record it is follows from its keys: `profile`, `retract`, or a moment.
pub fn parse_record(line: &str) -> Result<Record, ParseRecordError> {
    // The first key tells the record apart (whitespace allowed): `{ "profile": ...}`.
    let first_key = line.trim_start().strip_prefix('{').map_or("", str::trim_start);
    if first_key.starts_with("\"profile\"") {
        return parse::<ProfileRecord>(line).map(|p| Record::Profile(p.profile));
    }
    if first_key.starts_with("\"retract\"") {
        return parse::<Retraction>(line).map(Record::Retract);
    }
    // Not the usual key order: a moment, unless the object has a `retract` or `profile` key
    // (JSON objects are unordered, so the first key is only a fast path).
    parse::<Moment>(line).map(Record::Moment).or_else(|moment_error| {
        let keys = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok();
        match keys {
            Some(k) if k.contains_key("retract") => parse::<Retraction>(line).map(Record::Retract),
            Some(k) if k.contains_key("profile") => parse::<ProfileRecord>(line).map(|p| Record::Profile(p.profile)),
            _ => Err(moment_error),
        }
    })
}

/// Iterates over the records of a JSON-lines stream, skipping blank lines; each item carries
/// its 1-based line number.
pub fn records<R: BufRead>(reader: R) -> impl Iterator<Item = Result<(usize, Record), ReadRecordError>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let line_no = i + 1;
        match line {
            Err(source) => Some(Err(ReadRecordError::Io { line: line_no, source })),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(
                parse_record(&l)
                    .map(|r| (line_no, r))
                    .map_err(|source| ReadRecordError::Parse { line: line_no, source }),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_shape_is_recognised() {
        let m = r#"{"id":"m1","stakeholder":"ann","kind":"answer","channel":"forum","at":"2026-03-02T10:00:00Z"}"#;
        assert!(matches!(parse_record(m), Ok(Record::Moment(_))));
        assert!(matches!(parse_record(r#"{"profile":{"id":"ann","team":"sales"}}"#), Ok(Record::Profile(_))));
        assert!(matches!(parse_record(r#"{"retract":"m1"}"#), Ok(Record::Retract(_))));
        assert!(matches!(parse_record(r#" { "profile" : {"id":"ann"}}"#), Ok(Record::Profile(_))));
        // Whatever the key order.
        assert!(matches!(parse_record(r#"{"reason":"spam","retract":"m1"}"#), Ok(Record::Retract(_))));
        let e = parse_record(r#"{"reason":"spam","retract":"m1","x":1}"#);
        let e = e.expect_err("a retraction's own error");
        assert_eq!((e.field.as_deref(), e.message.contains("unknown field `x`")), (Some("x"), true));
    }

    #[test]
    fn unknown_fields_and_missing_fields_are_named() {
        let e = parse_record(
            r#"{"id":"m1","stakeholder":"ann","kind":"x","channel":"y","at":"2026-03-02T10:00:00Z","colour":1}"#,
        );
        assert_eq!(e.expect_err("unknown").field.as_deref(), Some("colour"));
        let e = parse_record(r#"{"id":"m1","kind":"x","channel":"y","at":"2026-03-02T10:00:00Z"}"#);
        assert_eq!(e.expect_err("missing").field.as_deref(), Some("stakeholder"));
        let e = parse_record(r#"{"profile":{"id":"ann","team":7}}"#).expect_err("a number for a team");
        assert_eq!(e.field.as_deref(), Some("profile.team"), "{e}");
        let e = parse_record(r#"{"id":"m1","stakeholder":"ann","kind":"x","channel":"y","at":"t","value":"big"}"#);
        assert_eq!(e.expect_err("a text for a value").field.as_deref(), Some("value"));
        let e = parse_record("{not json").expect_err("not json");
        assert!(e.syntax && e.field.is_none(), "{e:?}");
    }

    #[test]
    fn line_numbers_count_blank_lines() {
        let text = "\n{\"retract\":\"a\"}\nnot json\n";
        let items: Vec<_> = records(text.as_bytes()).collect();
        assert!(matches!(items[0], Ok((2, _))));
        assert!(matches!(&items[1], Err(ReadRecordError::Parse { line: 3, .. })));
    }
}
