//! What an erasure does to records, whatever the backend: every record naming the erased
//! stakeholder is rewritten to name their pseudonym instead, and their profile loses its name
//! and attributes (each keeps only its number among their profiles, [`PROFILE_NUMBER`]). Kinds and teams stay (others' scoring and insights were computed with them,
//! and a replay must compute the same); so do moments' own attributes and ids, which are the
//! product team's data about the moment, not about the person (docs/erasure.md).
//!
//! **Owns** that rewrite and [`Erasure`], the report. **Must not touch** storage: the backend
//! reads, rewrites and stores the records in one commit ([`crate::Store::erase`]).

use plaudit_sdk::Record;

/// What an erasure did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erasure {
    /// Records rewritten (moments naming the stakeholder as actor or counterpart, their
    /// profiles).
    pub records: u64,
    /// The number of the change that records the erasure in the organisation's log.
    pub change: u64,
}

/// The attribute a rewritten profile keeps in place of the person's: its number among their
/// profiles. Two profiles that differed only in name or attributes would otherwise become
/// equal, and a replay would count the second as a duplicate (taking no sequence number),
/// where the live scoring had accepted it.
pub const PROFILE_NUMBER: &str = "erased_profile";

/// Rewrites the records of `records` that name `subject` to name `pseudonym`, replacing the
/// names and attributes of `subject`'s profiles (each numbered on from `profiles`, which it
/// advances: see [`PROFILE_NUMBER`]); how many it rewrote.
pub fn pseudonymise(records: &mut [Record], subject: &str, pseudonym: &str, profiles: &mut i64) -> u64 {
    let mut rewritten = 0;
    for record in records {
        let changed = match record {
            Record::Moment(m) => {
                let mut changed = false;
                if m.stakeholder == subject {
                    m.stakeholder = pseudonym.to_string();
                    changed = true;
                }
                if m.counterpart.as_deref() == Some(subject) {
                    m.counterpart = Some(pseudonym.to_string());
                    changed = true;
                }
                changed
            }
            Record::Profile(s) if s.id == subject => {
                s.id = pseudonym.to_string();
                s.name = None;
                s.attrs = Default::default();
                s.attrs.insert(PROFILE_NUMBER.to_string(), plaudit_sdk::Value::Int(*profiles));
                *profiles += 1;
                true
            }
            Record::Profile(_) | Record::Retract(_) => false,
        };
        rewritten += u64::from(changed);
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use plaudit_sdk::{Moment, Retraction, Stakeholder, Value};

    use super::*;

    #[test]
    fn every_record_naming_the_subject_names_the_pseudonym_and_their_profile_loses_name_and_attributes() {
        let moment = |id: &str, who: &str, with: Option<&str>| {
            Record::Moment(Moment {
                id: id.into(),
                stakeholder: who.into(),
                counterpart: with.map(str::to_string),
                kind: "meetup".into(),
                channel: "event".into(),
                at: "2026-03-02T10:00:00Z".into(),
                value: None,
                attrs: Default::default(),
            })
        };
        let mut profile = Stakeholder::new("zoe");
        profile.name = Some("Zoë Zed".into());
        profile.team = Some("sales".into());
        profile.attrs.insert("phone".into(), Value::Text("555-0199".into()));
        let mut records = vec![
            moment("m1", "zoe", None),
            moment("m2", "ann", Some("zoe")),
            moment("m3", "ann", Some("bob")),
            Record::Profile(profile),
            Record::Profile(Stakeholder::new("bob")),
            Record::Retract(Retraction { retract: "m1".into(), reason: None }),
        ];
        let untouched = records[2].clone();
        let mut profiles = 0;
        assert_eq!(pseudonymise(&mut records, "zoe", "erased-1", &mut profiles), 3);
        let Record::Moment(m1) = &records[0] else { unreachable!() };
        let Record::Moment(m2) = &records[1] else { unreachable!() };
        assert_eq!((m1.stakeholder.as_str(), m2.counterpart.as_deref()), ("erased-1", Some("erased-1")));
        assert_eq!(records[2], untouched);
        let Record::Profile(p) = &records[3] else { unreachable!() };
        assert_eq!((p.id.as_str(), &p.name, p.team.as_deref()), ("erased-1", &None, Some("sales")));
        assert_eq!(p.attrs.len(), 1, "only its number among their profiles");
        assert_eq!(p.attrs.get(PROFILE_NUMBER), Some(&Value::Int(0)));
        assert_eq!(pseudonymise(&mut records, "zoe", "erased-1", &mut profiles), 0, "nothing names them any more");
    }
}
