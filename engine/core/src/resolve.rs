//! The first step inside a world: records in, a resolved [`Batch`] out. Checks every field,
//! drops duplicates (moment ids seen before, profiles that change nothing, retractions of
//! moments already retracted), interns ids and vocabulary, creates stakeholders on first
//! sight, applies profiles, and computes each moment's hour, day, week and month.
//!
//! **Owns** record checks ([`check_moment`], [`check_profile`]), what a live arrival admits
//! ([`Admission`]: the dates it takes, the stakeholders it may create) and the directory,
//! vocabulary and moment-id side of [`History`]. **Must not touch** scoring state (the passes own it) or
//! the log.
//!
//! Lookups are the cost here: a moment id, an actor and a counterpart are each a hash table
//! probe, and in a large organisation their slots are rarely in cache. So [`Resolver::run`]
//! hashes the whole batch first and prefetches what a record [`AHEAD`] places on will probe
//! (its id's slot, its stakeholders' slots, then their directory entries and texts), so the
//! misses of later records overlap the work on earlier ones.

use bevy_ecs::prelude::*;
use plaudit_sdk::{Moment, Record, Stakeholder};
use rustc_hash::FxHashSet;

use crate::batch::{Action, Batch, MomentRec};
use crate::calendar::{PeriodCache, parse_rfc3339};
use crate::components::{Details, Identity, Scorecard};
use crate::fingerprint::Fingerprint;
use crate::history::{Accepted, History};
use crate::ids::{Sym, check_external_id};
use crate::intern::Interner;
use crate::leaderboard::PublishQueue;
use crate::prefetch::prefetch;
use crate::resources::{DirEntry, Directory, Vocab};
use crate::ruleset::program::{Program, Window};

/// How many records ahead lookups are prefetched: far enough for a miss to land, near enough
/// that what it brought is still in cache.
const AHEAD: usize = 16;

/// A moment's fields, checked; its time in Unix seconds.
pub fn check_moment(m: &Moment) -> Result<i64, RecordFault> {
    check_external_id(&m.id).map_err(|e| ("id", e.to_string()))?;
    check_external_id(&m.stakeholder).map_err(|e| ("stakeholder", e.to_string()))?;
    if let Some(cp) = &m.counterpart {
        check_external_id(cp).map_err(|e| ("counterpart", e.to_string()))?;
        if *cp == m.stakeholder {
            return Err(("counterpart", "must differ from `stakeholder`".to_string()));
        }
    }
    for (field, s) in [("kind", &m.kind), ("channel", &m.channel)] {
        if !name_length_ok(s) {
            return Err((field, "must be 1 to 64 characters".to_string()));
        }
    }
    if m.value.is_some_and(|v| !v.is_finite() || v.abs() > crate::bounds::MAX_VALUE) {
        return Err(("value", "must be a finite number of at most 10^12 in size".to_string()));
    }
    if m.attrs.len() > 32 {
        return Err(("attrs", "at most 32 attributes".to_string()));
    }
    parse_rfc3339(&m.at).map_err(|e| ("at", e.to_string()))
}

pub fn check_profile(s: &Stakeholder) -> Result<(), RecordFault> {
    check_external_id(&s.id).map_err(|e| ("id", e.to_string()))?;
    if !name_length_ok(&s.kind) {
        return Err(("kind", "must be 1 to 64 characters".to_string()));
    }
    if s.team.as_deref().is_some_and(|t| !name_length_ok(t)) {
        return Err(("team", "must be 1 to 64 characters".to_string()));
    }
    if s.attrs.len() > 32 {
        return Err(("attrs", "at most 32 attributes".to_string()));
    }
    Ok(())
}

/// A kind, channel or team: 1 to 64 characters (what the API description's `maxLength` says).
pub(crate) fn name_length_ok(s: &str) -> bool {
    !s.is_empty() && (s.len() <= 64 || s.chars().count() <= 64)
}

/// Whether `s` says nothing new about a stakeholder the world knows. Such a profile record is
/// a duplicate: a client resending a profile changes no sequence number, hence no chance draw.
fn profile_unchanged(world: &World, dir: &Directory, vocab: &Vocab, s: &Stakeholder) -> bool {
    let Some(entry) = dir.ids.get(&s.id).map(|i| dir.entries[i as usize]) else { return false };
    let sym = |text: &str| vocab.0.get(text).map(Sym);
    let team = match &s.team {
        Some(t) => sym(t),
        None => Some(Sym::NONE),
    };
    if sym(&s.kind) != Some(entry.kind) || team != Some(entry.team) {
        return false;
    }
    match world.get::<Details>(entry.entity) {
        Some(d) => d.name.as_deref() == s.name.as_deref() && d.attrs == s.attrs,
        None => s.name.is_none() && s.attrs.is_empty(),
    }
}

/// A refused record's field and why.
pub type RecordFault = (&'static str, String);

/// The code of a record refused for what it holds.
pub const INVALID_RECORD: &str = "invalid_record";
/// The code of a moment whose id was accepted before with other content.
pub const ID_CONFLICT: &str = "id_conflict";
/// The code of a moment dated further back than its arrival admits ([`Admission::max_age`]).
pub const TOO_OLD: &str = "too_old";
/// The code of a moment dated further ahead than its arrival admits ([`Admission::max_ahead`]).
pub const TOO_FAR_AHEAD: &str = "too_far_ahead";
/// The code of a record that would create a stakeholder beyond [`Admission::stakeholders`].
pub const QUOTA_EXCEEDED: &str = "quota_exceeded";

/// What a live arrival admits besides well-formed records: the organisation's limits as the
/// server holds them when the records are received. Each is checked only if set, and only
/// against arrivals with a known `received` instant; the default admits everything, which is
/// what a replay and `plaudit import` (loading history) use, so that every record the log
/// holds is scored again whatever the limits are now. Refused records never reach the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// How far back, in seconds before the arrival was received, a moment may be dated
    /// (inclusive); older is refused as [`TOO_OLD`], naming `at`.
    pub max_age: Option<i64>,
    /// How far ahead, in seconds after the arrival was received, a moment may be dated
    /// (inclusive); later is refused as [`TOO_FAR_AHEAD`], naming `at`.
    pub max_ahead: Option<i64>,
    /// How many stakeholders the organisation may hold: a record that would create one beyond
    /// is refused as [`QUOTA_EXCEEDED`], naming `stakeholder`, `counterpart` or `id`.
    pub stakeholders: Option<usize>,
}

/// The dates a live arrival admits: Unix seconds, both ends included.
#[derive(Clone, Copy, Debug)]
struct DateWindow {
    oldest: Option<(i64, i64)>,
    latest: Option<(i64, i64)>,
}

impl DateWindow {
    /// The window of an arrival received at `received` (Unix milliseconds), if it has one.
    fn of(admission: &Admission, received: Option<i64>) -> Option<DateWindow> {
        let now = received?.div_euclid(1000);
        let oldest = admission.max_age.map(|age| (now.saturating_sub(age), age));
        let latest = admission.max_ahead.map(|ahead| (now.saturating_add(ahead), ahead));
        (oldest.is_some() || latest.is_some()).then_some(DateWindow { oldest, latest })
    }

    /// Why a moment dated `at` is outside, if it is.
    fn refuse(&self, at: i64) -> Option<Fault> {
        if let Some((oldest, age)) = self.oldest.filter(|(oldest, _)| at < *oldest) {
            return Some(Fault {
                code: TOO_OLD,
                field: "at",
                message: format!(
                    "dated {} s before the server received it; this organisation takes moments at most {age} s old \
                     (its `moment_max_age_seconds`; `plaudit import` loads older history)",
                    oldest - at + age
                ),
            });
        }
        if let Some((latest, ahead)) = self.latest.filter(|(latest, _)| at > *latest) {
            return Some(Fault {
                code: TOO_FAR_AHEAD,
                field: "at",
                message: format!(
                    "dated {} s after the server received it; this organisation takes moments at most {ahead} s ahead \
                     of its clock (its `moment_max_ahead_seconds`)",
                    at - latest + ahead
                ),
            });
        }
        None
    }
}

/// Why the resolver refuses a record: its code, the field it names, the message.
#[derive(Debug)]
struct Fault {
    code: &'static str,
    field: &'static str,
    message: String,
}

impl From<RecordFault> for Fault {
    fn from((field, message): RecordFault) -> Fault {
        Fault { code: INVALID_RECORD, field, message }
    }
}

/// Records that arrived together: a live batch (one request, or the group commit of several),
/// which the log keeps as one segment (`plaudit_store::Segment`). Scoring calls plugins with
/// moments of one arrival only, in calls of at most [`crate::batch::CHUNK`] records counted from the
/// arrival's first, so that a replay, which scores several segments as one batch, makes
/// exactly the calls the live scoring made; and it dates a moment no later than a little after
/// the arrival was received ([`crate::bounds::horizon`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// Index of its first record in the batch.
    pub start: usize,
    /// When it was received (Unix milliseconds), if known.
    pub received: Option<i64>,
}

/// What [`crate::OrgWorld::resolve`] made of a batch's records.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Accepted, duplicates and refused, counted (no effects yet).
    pub outcome: Outcome,
    /// Per record, in order: accepted (to be stored and scored).
    pub accepted: Vec<bool>,
}

/// Why a record was refused. Nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index}: {field}: {message}")]
pub struct RecordError {
    /// Index of the record in the batch.
    pub index: usize,
    /// [`INVALID_RECORD`] or [`ID_CONFLICT`].
    pub code: &'static str,
    /// The offending field (`at`, `stakeholder`, `retract`...).
    pub field: &'static str,
    pub message: String,
}

/// What became of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Moments, profiles and retractions accepted and scored.
    pub accepted: usize,
    /// Moments whose id was seen before, and retractions of moments already retracted.
    pub duplicates: usize,
    pub rejected: Vec<RecordError>,
    /// Effects produced (waiting in the journal).
    pub effects: usize,
}

/// A record refused for the stakeholder it would create beyond the quota of `most`.
fn quota_fault(field: &'static str, most: usize) -> Fault {
    Fault {
        code: QUOTA_EXCEEDED,
        field,
        message: format!(
            "this organisation holds its quota of {most} stakeholders: a new one is refused until the \
             administrator raises it (`stakeholders` in PUT /v1/orgs/{{org}}/limits)"
        ),
    }
}

/// Resolves one batch, holding the resources it writes for the whole batch.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub world: &'a mut World,
    pub history: &'a mut History,
    pub dir: &'a mut Directory,
    pub vocab: &'a mut Vocab,
    pub program: &'a Program,
    pub periods: &'a mut PeriodCache,
    /// What live arrivals admit (the default for a replay: everything).
    pub admission: Admission,
}

/// The hashes of a moment's id, actor and counterpart (0: none).
type Hashes = [u64; 3];

impl Resolver<'_> {
    /// Resolves `records`, which came as `arrivals`, into `batch` (cleared first), noting what
    /// became of each in `resolved`. A moment's [`MomentRec::input`] is its index in `records`;
    /// its time is at most its arrival's [`crate::bounds::horizon`].
    pub(crate) fn run(&mut self, records: &[Record], arrivals: &[Arrival], batch: &mut Batch, resolved: &mut Resolved) {
        let outcome = &mut resolved.outcome;
        batch.records.clear();
        batch.arrivals.clear();
        let mut arrivals = arrivals.iter().peekable();
        let mut horizon = None;
        let mut window = None;
        let hashes: Vec<Hashes> = records
            .iter()
            .map(|r| match r {
                Record::Moment(m) => [
                    Interner::hash(&m.id),
                    Interner::hash(&m.stakeholder),
                    m.counterpart.as_deref().map_or(0, Interner::hash),
                ],
                _ => [0; 3],
            })
            .collect();
        let mut retracting = FxHashSet::default();
        for (index, record) in records.iter().enumerate() {
            if let Some(h) = hashes.get(index + AHEAD) {
                self.prefetch_slots(h);
            }
            if let Some(h) = hashes.get(index + AHEAD / 2) {
                self.prefetch_entries(h);
            }
            while let Some(arrival) = arrivals.next_if(|a| a.start <= index) {
                batch.arrivals.push(batch.records.len() as u32);
                horizon = crate::bounds::horizon(arrival.received);
                window = DateWindow::of(&self.admission, arrival.received);
            }
            let fate = match record {
                Record::Moment(m) => self.moment(m, index as u32, &hashes[index], horizon, window.as_ref(), batch),
                Record::Profile(s) => self.profile(s),
                Record::Retract(r) => self.retraction(&r.retract, batch, &mut retracting).map_err(Fault::from),
            };
            resolved.accepted.push(matches!(fate, Ok(true)));
            match fate {
                Ok(true) => outcome.accepted += 1,
                Ok(false) => outcome.duplicates += 1,
                Err(Fault { code, field, message }) => {
                    outcome.rejected.push(RecordError { index, code, field, message })
                }
            }
        }
    }

    /// First stage: the table slots the record's lookups start at.
    fn prefetch_slots(&self, h: &Hashes) {
        if h[0] != 0 {
            self.history.ids.prefetch(h[0]);
        }
        for &s in &h[1..] {
            if s != 0 {
                self.dir.ids.prefetch(s);
            }
        }
    }

    /// Second stage (the slots have arrived): the stakeholders' texts, compared to confirm the
    /// match, and their directory entries.
    fn prefetch_entries(&self, h: &Hashes) {
        for &s in &h[1..] {
            if let Some(id) = (s != 0).then(|| self.dir.ids.peek(s)).flatten() {
                self.dir.ids.prefetch_text(id);
                if let Some(entry) = self.dir.entries.get(id as usize) {
                    prefetch(entry);
                }
            }
        }
    }

    fn moment(
        &mut self,
        m: &Moment,
        input: u32,
        h: &Hashes,
        horizon: Option<i64>,
        window: Option<&DateWindow>,
        batch: &mut Batch,
    ) -> Result<bool, Fault> {
        let at = check_moment(m)?;
        if let Some(fault) = window.and_then(|w| w.refuse(at)) {
            // A moment accepted before is still a duplicate (or a conflict) however old it is now.
            if self.history.ids.get_hashed(&m.id, h[0]).is_none() {
                return Err(fault);
            }
        }
        if let Some(most) = self.admission.stakeholders
            // Far from the quota (the usual case), one comparison.
            && self.dir.entries.len() + 2 > most
        {
            let new = |id: &str, hash: u64| usize::from(self.dir.ids.get_hashed(id, hash).is_none());
            let adds = new(&m.stakeholder, h[1]) + m.counterpart.as_deref().map_or(0, |c| new(c, h[2]));
            if self.dir.entries.len() + adds > most && self.history.ids.get_hashed(&m.id, h[0]).is_none() {
                let field = if new(&m.stakeholder, h[1]) == 1 { "stakeholder" } else { "counterpart" };
                return Err(quota_fault(field, most));
            }
        }
        let print = Fingerprint::with_ids(m, at, h[1], h[2]);
        let at = horizon.map_or(at, |h| at.min(h));
        let moment = match self.history.accept_hashed(&m.id, h[0], print) {
            Accepted::New(moment) => moment,
            Accepted::Duplicate => return Ok(false),
            Accepted::Conflict(field) => {
                let differs = field.map_or_else(|| "its content".to_string(), |f| format!("`{f}`"));
                return Err(Fault {
                    code: ID_CONFLICT,
                    field: field.unwrap_or("id"),
                    message: format!(
                        "a moment with id {:?} was accepted before with other content ({differs} differs): \
                         a moment's id must name one moment; give this one an id of its own",
                        m.id
                    ),
                });
            }
        };
        let (actor_no, a) = self.stakeholder(&m.stakeholder, h[1]);
        let c = m.counterpart.as_deref().map(|c| self.stakeholder(c, h[2]));
        let kind = Sym(self.vocab.0.intern(&m.kind).0);
        let channel = Sym(self.vocab.0.intern(&m.channel).0);
        let cal = &self.program.calendar;
        let windows = Window::ALL.map(|w| match w.period() {
            None => at.div_euclid(3600) as i32,
            Some(p) => self.periods.index(cal, p, at),
        });
        let history = &mut *self.history;
        history.last_seq += 1;
        history.latest_at = Some(history.latest_at.map_or(at, |t| t.max(at)));
        batch.records.push(MomentRec {
            seq: history.last_seq,
            moment,
            input,
            action: Action::Score,
            actor: a.entity,
            counterpart: c.map(|(_, c)| c.entity),
            actor_no,
            counterpart_no: c.map(|(no, _)| no),
            kind,
            channel,
            actor_kind: a.kind,
            actor_team: a.team,
            counterpart_kind: c.map_or(Sym::NONE, |(_, c)| c.kind),
            counterpart_team: c.map_or(Sym::NONE, |(_, c)| c.team),
            at,
            windows,
            value: m.value,
            first: 0,
        });
        Ok(true)
    }

    fn retraction(
        &mut self,
        target: &str,
        batch: &mut Batch,
        retracting: &mut FxHashSet<u32>,
    ) -> Result<bool, RecordFault> {
        let Some(moment) = self.history.ids.get(target) else {
            return Err(("retract", format!("no moment with id {target:?} was accepted")));
        };
        if self.history.retracted(moment) || !retracting.insert(moment) {
            return Ok(false);
        }
        self.history.last_seq += 1;
        batch.records.push(MomentRec::retraction(self.history.last_seq, moment));
        Ok(true)
    }

    /// Stakeholder `id` (whose hash is `hash`) and its number, created (kind `community`, no
    /// team) if new.
    fn stakeholder(&mut self, id: &str, hash: u64) -> (u32, DirEntry) {
        let (ext, new) = self.dir.ids.intern_hashed(id, hash);
        if !new {
            return (ext, self.dir.entries[ext as usize]);
        }
        let kind = Sym(self.vocab.0.intern(plaudit_sdk::stakeholder::DEFAULT_KIND).0);
        let entity = self.world.spawn(Scorecard::new(Identity { ext, kind, team: Sym::NONE })).id();
        let entry = DirEntry { entity, kind, team: Sym::NONE };
        self.dir.entries.push(entry);
        (ext, entry)
    }

    /// Creates or updates a stakeholder's profile (a `profile` record; records are the only way
    /// in, so every change has a sequence number). Moments already scored keep the kind and
    /// team they were scored with.
    fn profile(&mut self, s: &Stakeholder) -> Result<bool, Fault> {
        check_profile(s)?;
        if profile_unchanged(self.world, self.dir, self.vocab, s) {
            return Ok(false);
        }
        if let Some(most) = self.admission.stakeholders
            && self.dir.entries.len() >= most
            && self.dir.ids.get(&s.id).is_none()
        {
            return Err(quota_fault("id", most));
        }
        let (ext, entry) = self.stakeholder(&s.id, Interner::hash(&s.id));
        let kind = Sym(self.vocab.0.intern(&s.kind).0);
        let team = s.team.as_deref().map_or(Sym::NONE, |t| Sym(self.vocab.0.intern(t).0));
        let slot = &mut self.dir.entries[ext as usize];
        (slot.kind, slot.team) = (kind, team);
        let mut entity = self.world.entity_mut(entry.entity);
        if let Some(mut card) = entity.get_mut::<Scorecard>() {
            card.identity.kind = kind;
            card.identity.team = team;
        }
        if s.name.is_some() || !s.attrs.is_empty() {
            entity.insert(Details { name: s.name.as_deref().map(Into::into), attrs: s.attrs.clone() });
        } else {
            entity.remove::<Details>();
        }
        if team != entry.team {
            // Its leaderboard entries move to the new team's rankings.
            self.world.resource_mut::<PublishQueue>().push(entry.entity);
        }
        self.history.last_seq += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use plaudit_sdk::Record;

    use super::*;
    use crate::OrgWorld;

    /// 2026-12-07T12:00:00Z, in Unix milliseconds: when the test's arrivals are received.
    const RECEIVED: i64 = 1_796_644_800_000;

    fn world() -> OrgWorld {
        let rules = "[organisation]\nid = \"t\"\ntimezone = \"UTC\"\n[[currency]]\nid = \"xp\"\n";
        OrgWorld::from_doc(&crate::ruleset::parse_toml(rules, "t").expect("parses"), "t").expect("compiles")
    }

    fn moment(id: &str, who: &str, with: Option<&str>, at: &str) -> Record {
        let with = with.map_or(String::new(), |c| format!(r#","counterpart":"{c}""#));
        let json = format!(r#"{{"id":"{id}","stakeholder":"{who}"{with},"kind":"k","channel":"c","at":"{at}"}}"#);
        crate::input::parse_record(&json).expect("a record")
    }

    fn live(w: &mut OrgWorld, records: Vec<Record>, admission: Admission) -> Resolved {
        let arrival = Arrival { start: 0, received: Some(RECEIVED) };
        let resolved = w.resolve_admitted(Arc::new(records), &[arrival], admission);
        w.score_resolved();
        resolved
    }

    fn codes(resolved: &Resolved) -> Vec<(usize, &'static str, &'static str)> {
        resolved.outcome.rejected.iter().map(|e| (e.index, e.code, e.field)).collect()
    }

    #[test]
    fn moments_outside_the_window_are_refused_alone_and_its_bounds_are_admitted() {
        let mut w = world();
        let window = Admission { max_age: Some(86_400), max_ahead: Some(300), stakeholders: None };
        let resolved = live(
            &mut w,
            vec![
                moment("old", "a", None, "2026-12-06T11:59:59Z"),
                moment("oldest", "a", None, "2026-12-06T12:00:00Z"),
                moment("latest", "a", None, "2026-12-07T12:05:00Z"),
                moment("ahead", "a", None, "2026-12-07T12:05:01Z"),
            ],
            window,
        );
        assert_eq!(codes(&resolved), vec![(0, TOO_OLD, "at"), (3, TOO_FAR_AHEAD, "at")]);
        assert_eq!(resolved.accepted, vec![false, true, true, false]);
        assert!(resolved.outcome.rejected[0].message.contains("86400 s old"), "{:?}", resolved.outcome.rejected[0]);
    }

    #[test]
    fn a_replay_or_an_import_admits_whatever_the_window() {
        let mut w = world();
        let resolved = live(&mut w, vec![moment("old", "a", None, "2020-01-01T00:00:00Z")], Admission::default());
        assert_eq!(resolved.outcome.accepted, 1);
        let window = Admission { max_age: Some(60), ..Admission::default() };
        let arrival = Arrival { start: 0, received: None };
        let old = vec![moment("older", "a", None, "2019-01-01T00:00:00Z")];
        let resolved = w.resolve_admitted(Arc::new(old), &[arrival], window);
        assert_eq!(resolved.outcome.accepted, 1, "an arrival received at no known instant has no window");
    }

    #[test]
    fn a_moment_accepted_before_is_a_duplicate_however_old_it_is_now() {
        let mut w = world();
        live(&mut w, vec![moment("m", "a", None, "2026-12-01T00:00:00Z")], Admission::default());
        let window = Admission { max_age: Some(60), ..Admission::default() };
        let resolved = live(&mut w, vec![moment("m", "a", None, "2026-12-01T00:00:00Z")], window);
        assert_eq!((resolved.outcome.duplicates, codes(&resolved)), (1, vec![]));
    }

    #[test]
    fn a_record_creating_a_stakeholder_beyond_the_quota_is_refused_and_known_ones_go_on() {
        let mut w = world();
        let quota = Admission { stakeholders: Some(3), ..Admission::default() };
        let at = "2026-12-07T11:00:00Z";
        let resolved = live(
            &mut w,
            vec![
                moment("1", "a", Some("b"), at),
                moment("2", "c", Some("d"), at),
                moment("3", "a", Some("d"), at),
                moment("4", "c", None, at),
                moment("5", "a", Some("c"), at),
                moment("6", "a", Some("b"), at),
            ],
            quota,
        );
        let refused = [
            (1, QUOTA_EXCEEDED, "stakeholder"),
            (3, QUOTA_EXCEEDED, "stakeholder"),
            (4, QUOTA_EXCEEDED, "counterpart"),
        ];
        assert_eq!(codes(&resolved), refused);
        assert_eq!(w.stakeholders(), 3);
        assert_eq!(resolved.outcome.accepted, 3);
        let profile = crate::input::parse_record(r#"{"profile":{"id":"e","kind":"customer"}}"#);
        let resolved = live(&mut w, vec![profile.expect("a profile")], quota);
        assert_eq!(codes(&resolved), vec![(0, QUOTA_EXCEEDED, "id")]);
    }
}
