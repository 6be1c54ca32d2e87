//! Moments files: JSON lines, each a contact moment, a `{"profile": {...}}` record or a
//! `{"retract": "moment-id"}` record. Errors name the line.

use std::io::BufRead;

use plaudit_sdk::moment::{ProfileRecord, Retraction};
use plaudit_sdk::{Moment, Record};

/// A line that is not a record.
#[derive(Debug, thiserror::Error)]
pub enum ReadRecordError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("line {line}: cannot read: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Parses one line. Which record it is follows from its keys: `profile`, `retract`, or a moment.
pub fn parse_record(line: &str) -> Result<Record, String> {
    // The first key tells the record apart (whitespace allowed): `{ "profile": ...}`.
    let first_key = line.trim_start().strip_prefix('{').map_or("", str::trim_start);
    if first_key.starts_with("\"profile\"") {
        return serde_json::from_str::<ProfileRecord>(line)
            .map(|p| Record::Profile(p.profile))
            .map_err(|e| e.to_string());
    }
    if first_key.starts_with("\"retract\"") {
        return serde_json::from_str::<Retraction>(line).map(Record::Retract).map_err(|e| e.to_string());
    }
    // Not the usual key order: a moment, unless the object has a `retract` or `profile` key
    // (JSON objects are unordered, so the first key is only a fast path).
    serde_json::from_str::<Moment>(line).map(Record::Moment).or_else(|moment_error| {
        let keys = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok();
        match keys {
            Some(k) if k.contains_key("retract") => {
                serde_json::from_str::<Retraction>(line).map(Record::Retract).map_err(|e| e.to_string())
            }
            Some(k) if k.contains_key("profile") => serde_json::from_str::<ProfileRecord>(line)
                .map(|p| Record::Profile(p.profile))
                .map_err(|e| e.to_string()),
            _ => Err(moment_error.to_string()),
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
                    .map_err(|message| ReadRecordError::Parse { line: line_no, message }),
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
        assert!(e.is_err_and(|e| e.contains("unknown field `x`")), "a retraction's own error");
    }

    #[test]
    fn unknown_fields_and_missing_fields_are_named() {
        let e = parse_record(
            r#"{"id":"m1","stakeholder":"ann","kind":"x","channel":"y","at":"2026-03-02T10:00:00Z","colour":1}"#,
        );
        assert!(e.is_err_and(|e| e.contains("unknown field `colour`")));
        let e = parse_record(r#"{"id":"m1","kind":"x","channel":"y","at":"2026-03-02T10:00:00Z"}"#);
        assert!(e.is_err_and(|e| e.contains("missing field `stakeholder`")));
    }

    #[test]
    fn line_numbers_count_blank_lines() {
        let text = "\n{\"retract\":\"a\"}\nnot json\n";
        let items: Vec<_> = records(text.as_bytes()).collect();
        assert!(matches!(items[0], Ok((2, _))));
        assert!(matches!(&items[1], Err(ReadRecordError::Parse { line: 3, .. })));
    }
}
