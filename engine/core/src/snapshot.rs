//! Snapshots of a world: everything an [`OrgWorld`] holds between batches, as plain data that
//! serde encodes (MessagePack: `plaudit_store::format`), and the world rebuilt from it.
//!
//! **Owns** the snapshot's shape ([`WorldSnapshot`]) and the two conversions. **Must not touch**
//! the store or the log: the log step decides when to take one and where it goes.
//!
//! What is in it: the vocabulary, the directory, every stakeholder's state (profile, guard,
//! caps, what it met, balances, tallies, leaderboard entries), the history (moment ids, what
//! each earned, retractions), team challenge progress, each plugin's saved states and
//! status, and what insights recorded (a fact per moment, weekly totals, challenge windows). What is not: the compiled rule set (the log step recompiles the version in force
//! against the restored vocabulary, which gives the same program) and the rankings, which are
//! a function of the entries and are rebuilt by publishing every entry on the first read.
//! Stakeholders are named by their directory number throughout, never by entity, so a
//! restored world spawns its entities afresh.
//!
//! Bulk items are tuples, which MessagePack writes as arrays even in the named encoding: the
//! snapshot of a million stakeholders stays compact and quick to read.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use plaudit_sdk::Attrs;
use serde::{Deserialize, Serialize};

use crate::components::{
    CapSlot, Caps, Details, Entry, GuardState, Identity, Scorecard, Seen, Slot, Standing, Tally, Wallet,
};
use crate::fingerprint::Fingerprint;
use crate::history::{Earned, History, LedgerEntry, MomentInfo, Moments, Origin, Origins, VOID};
use crate::ids::Sym;
use crate::insights::{Insights, InsightsRows};
use crate::intern::{Interner, Text};
use crate::leaderboard::PublishQueue;
use crate::plugins::{Loaded, PluginStatus, Plugins};
use crate::resources::{DirEntry, Directory, Vocab};
use crate::team::{TeamChallenges, TeamProgress};
use crate::world::OrgWorld;

/// The version of [`WorldSnapshot`]'s shape. A snapshot of another version is not read (the
/// log is replayed instead).
pub const FORMAT: u32 = 5;

/// A string table: an interner's blocks, the full ones shared with the world it was taken from
/// (see [`Interner::share`]). Written as one string, the strings concatenated (`text`), and
/// where each ends in it (`ends`); read back cut into blocks again.
#[derive(Clone, Debug, PartialEq)]
pub struct Strings(pub Vec<Arc<Text>>);

impl Serialize for Strings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let text: String = self.0.iter().map(|b| b.as_str()).collect();
        let mut st = s.serialize_struct("Strings", 2)?;
        st.serialize_field("text", &text)?;
        st.serialize_field("ends", &Ends(&self.0))?;
        st.end()
    }
}

/// Where each string of the blocks ends in their concatenation.
struct Ends<'a>(&'a [Arc<Text>]);

impl Serialize for Ends<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.0.iter().map(|b| b.ends().len()).sum()))?;
        let mut base = 0u64;
        for block in self.0 {
            for &end in block.ends() {
                let end = u32::try_from(base + u64::from(end)).map_err(|_| S::Error::custom("strings over 4 GiB"))?;
                seq.serialize_element(&end)?;
            }
            base += block.as_str().len() as u64;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            text: String,
            ends: Vec<u32>,
        }
        let w = Wire::deserialize(d)?;
        Interner::blocks_of(&w.text, &w.ends).map(Strings).ok_or_else(|| serde::de::Error::custom("bad string table"))
    }
}

/// By moment, `(entries in the ledger, retracted)`: the history's blocks, the full ones shared
/// with the world it was taken from. A moment's entries in [`LedgerRows`] follow the previous
/// moment's.
#[derive(Clone, Debug)]
pub struct MomentRows(pub Vec<Arc<Moments>>);

impl MomentRows {
    /// The moments of the history.
    pub fn len(&self) -> usize {
        self.0.iter().map(|b| b.info().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| b.info().is_empty())
    }

    fn rows(&self) -> impl Iterator<Item = (u32, bool, u64, u64, u64)> + '_ {
        self.0
            .iter()
            .flat_map(|b| b.info())
            .map(|i| (i.ledger_len, i.retracted, i.print.content, i.print.fields, i.activity))
    }
}

impl PartialEq for MomentRows {
    fn eq(&self, other: &Self) -> bool {
        self.rows().eq(other.rows())
    }
}

impl Serialize for MomentRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ExactLen(self.len(), self.rows()))
    }
}

impl<'de> Deserialize<'de> for MomentRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<(u32, bool, u64, u64, u64)>::deserialize(d)?;
        let info = rows.into_iter().map(|(ledger_len, retracted, content, fields, activity)| MomentInfo {
            ledger_start: 0,
            ledger_len,
            retracted,
            print: Fingerprint { content, fields },
            activity,
        });
        Ok(MomentRows(vec![Arc::new(Moments::loose(info.collect(), Vec::new()))]))
    }
}

/// What each moment earned, moment after moment, each entry written as an [`Earning`]: the
/// history's blocks, as [`MomentRows`] holds them.
#[derive(Clone, Debug)]
pub struct LedgerRows(pub Vec<Arc<Moments>>);

impl LedgerRows {
    fn len(&self) -> usize {
        self.0.iter().map(|b| b.ledger().len()).sum()
    }

    fn entries(&self) -> impl Iterator<Item = &LedgerEntry> {
        self.0.iter().flat_map(|b| b.ledger())
    }
}

impl PartialEq for LedgerRows {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl Serialize for LedgerRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let earning = |l: &LedgerEntry| {
            let (tag, index, value) = match l.earned {
                Earned::Points { currency, amount } => (0, currency.into(), amount),
                Earned::Badge { badge, tier } => (1, badge, tier.map_or(-1, i64::from)),
                Earned::Level { index } => (2, 0, index.into()),
                Earned::Completed { window } => (3, 0, window.into()),
            };
            Earning(l.stakeholder, tag | if l.completion { COMPLETION } else { 0 }, index, value, l.origin)
        };
        s.collect_seq(ExactLen(self.len(), self.entries().map(earning)))
    }
}

impl<'de> Deserialize<'de> for LedgerRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<Earning>::deserialize(d)?;
        let mut ledger = Vec::with_capacity(rows.len());
        let out_of_range = |what: &str| serde::de::Error::custom(format!("{what} out of range"));
        for Earning(stakeholder, tag, index, value, origin) in rows {
            let completion = tag & COMPLETION != 0;
            let earned = match tag & !COMPLETION {
                0 => Earned::Points {
                    currency: u8::try_from(index).map_err(|_| out_of_range("currency index"))?,
                    amount: value,
                },
                1 => Earned::Badge { badge: index, tier: u8::try_from(value).ok() },
                2 => Earned::Level { index: u32::try_from(value).map_err(|_| out_of_range("level index"))? },
                3 => Earned::Completed { window: i32::try_from(value).map_err(|_| out_of_range("challenge window"))? },
                _ => return Err(serde::de::Error::custom(format!("unknown ledger entry tag {tag}"))),
            };
            ledger.push(LedgerEntry { stakeholder, origin, completion, earned });
        }
        Ok(LedgerRows(vec![Arc::new(Moments::loose(Vec::new(), ledger))]))
    }
}

/// Added to an [`Earning`]'s tag for an entry given by a challenge's completion.
const COMPLETION: u8 = 0x10;

/// An iterator that says its length, so that serde writes the sequence's length up front.
struct ExactLen<I>(usize, I);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.1.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0, Some(self.0))
    }
}

/// One stakeholder, by directory number: kind, team, name and attributes, then the parts of its
/// [`Scorecard`] as they are (decoded straight into them, see `tuple_serde!`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person(
    pub u32,
    pub u32,
    pub Option<(Option<String>, Attrs)>,
    pub GuardState,
    pub Caps,
    pub Seen,
    pub Wallet,
    pub Tally,
    pub Standing,
);

/// Serde for a struct as a tuple of some of its fields: MessagePack writes an array, without
/// field names, for items there are millions of. Fields left out take their default.
macro_rules! tuple_serde {
    ($ty:ty { $($field:ident: $fty:ty),* } $(, $rest:tt)?) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ($(&self.$field,)*).serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let ($($field,)*) = <($($fty,)*)>::deserialize(d)?;
                Ok(Self { $($field,)* $(..$rest::default())? })
            }
        }
    };
}

tuple_serde!(GuardState { last_key: u32, last_at: i64, window: i32, count: u32 });
tuple_serde!(CapSlot { rule: u16, period: i32, times: u32, points: i64 });
tuple_serde!(Slot { key: u32, a: i32, b: i64 });
// What was published is the rankings', which a restore rebuilds: not in a snapshot.
tuple_serde!(Entry { board: u16, window: i32, value: i64, seq: u64 }, Entry);

/// What a stakeholder met, as its sorted keys.
impl Serialize for Seen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.keys().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u64>::deserialize(d).map(Seen::from_keys)
    }
}

/// What a moment earned for a stakeholder: `(who, tag, index, value, origin)`, tag 0 for
/// points (index = currency, value = amount), 1 for a badge (index = badge, value = tier or
/// -1), 2 for a level (value = its index), 3 for a challenge window completed (value = the
/// window); origin indexes [`WorldSnapshot::origins`]. The ledger lists them moment after
/// moment, so the moment is implied (see [`WorldSnapshot::moment_info`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Earning(pub u32, pub u8, pub u16, pub i64, pub u16);

/// A team's progress in a team challenge: `(challenge, team, window, moments, completed,
/// contributors, generation)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamRow(pub u16, pub u32, pub i32, pub u32, pub bool, pub Vec<u32>, pub u64);

/// A plugin slot, in install order: its saved states by stakeholder number and its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginRow {
    pub name: String,
    pub states: Vec<(u32, serde_bytes::ByteBuf)>,
    pub status: PluginStatus,
}

/// A world, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldSnapshot {
    pub format: u32,
    /// The sequence of the last record the world holds.
    pub seq: u64,
    pub latest_at: Option<i64>,
    pub vocab: Strings,
    pub stakeholders: Strings,
    /// By directory number.
    pub people: Vec<Person>,
    pub moments: Strings,
    pub moment_info: MomentRows,
    pub ledger: LedgerRows,
    /// What gave the ledger's entries, by index.
    pub origins: Vec<Origin>,
    pub teams: Vec<TeamRow>,
    pub team_generations: u64,
    pub plugins: Vec<PluginRow>,
    /// What insights recorded ([`crate::insights`]): a fact per moment, weekly totals,
    /// challenge windows.
    pub insights: InsightsRows,
    /// Stakeholders erased, by directory number, sorted (none in a snapshot written before
    /// erasures were kept).
    #[serde(default)]
    pub erased: Vec<u32>,
}

/// Why a snapshot cannot be restored (it was written by a different version, or it is
/// damaged in a way its checksum did not catch). The log can still be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot format {found}, this version reads {FORMAT}")]
    Format { found: u32 },
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

fn interner(s: Strings, what: &str) -> Result<Interner, RestoreError> {
    Interner::from_blocks(s.0).ok_or_else(|| RestoreError::Inconsistent(format!("{what}: bad string table")))
}

impl OrgWorld {
    /// The world as data, for [`OrgWorld::restore`]. Call between batches, with the journal
    /// drained (pending effects are not part of a snapshot).
    pub fn snapshot(&self) -> WorldSnapshot {
        let w = self.world();
        let dir = w.resource::<Directory>();
        let history = w.resource::<History>();
        // Entity -> directory number, for the team rows' contributors (a few per team).
        let ext_of = |e: Entity| w.get::<Scorecard>(e).map_or(u32::MAX, |c| c.identity.ext);
        // In table order (one pass over the rows), then put in directory order.
        let mut people: Vec<Option<Person>> = vec![None; dir.entries.len()];
        if let Some(mut q) = w.try_query::<(&Scorecard, Option<&Details>)>() {
            for (card, details) in q.iter(w) {
                let id = card.identity;
                if let Some(slot) = people.get_mut(id.ext as usize) {
                    *slot = Some(person(id.kind, id.team, card, details));
                }
            }
        }
        // Every stakeholder has a scorecard (spawned with it); should one not,
        // it is taken by entity, so a snapshot never leaves anyone out.
        let people = people
            .into_iter()
            .zip(&dir.entries)
            .map(|(person, entry)| person.unwrap_or_else(|| person_by_entity(w, entry)))
            .collect();
        // History only grows: its full blocks are shared, not copied (see [`crate::chunks`]).
        let moments = history.share();
        let teams = w.resource::<TeamChallenges>();
        let mut team_rows: Vec<TeamRow> = teams
            .progress
            .iter()
            .map(|(&(challenge, team), p)| {
                TeamRow(
                    challenge,
                    team,
                    p.window,
                    p.moments,
                    p.completed,
                    p.contributors.iter().map(|&e| ext_of(e)).collect(),
                    p.generation,
                )
            })
            .collect();
        team_rows.sort_by_key(|r| (r.0, r.1));
        let plugins = w
            .resource::<Plugins>()
            .slots
            .iter()
            .map(|slot| {
                let mut states: Vec<(u32, serde_bytes::ByteBuf)> =
                    slot.states.iter().map(|(&who, s)| (who, serde_bytes::ByteBuf::from(s.clone()))).collect();
                states.sort_by_key(|s| s.0);
                PluginRow { name: slot.status.name.clone(), states, status: slot.status.clone() }
            })
            .collect();
        WorldSnapshot {
            format: FORMAT,
            seq: history.last_seq,
            latest_at: history.latest_at,
            vocab: Strings(w.resource::<Vocab>().0.share()),
            stakeholders: Strings(dir.ids.share()),
            people,
            moments: Strings(history.ids.share()),
            moment_info: MomentRows(moments.clone()),
            ledger: LedgerRows(moments),
            origins: history.origins.names().to_vec(),
            teams: team_rows,
            team_generations: teams.generations,
            plugins,
            insights: w.resource::<Insights>().share(),
            erased: {
                let mut erased: Vec<u32> = dir.erased.iter().copied().collect();
                erased.sort_unstable();
                erased
            },
        }
    }

    /// The world `snapshot` describes, scoring under `doc` (the rule set in force when it was
    /// taken, compiled here against the restored vocabulary). `module` gives each plugin slot's
    /// module by name, `None` for a removed plugin.
    pub fn restore(
        snapshot: WorldSnapshot,
        doc: &crate::ruleset::RuleSetDoc,
        module: &mut dyn FnMut(&str) -> Option<Arc<Loaded>>,
    ) -> Result<OrgWorld, RestoreError> {
        let s = snapshot;
        if s.format != FORMAT {
            return Err(RestoreError::Format { found: s.format });
        }
        let bad = |what: String| RestoreError::Inconsistent(what);
        let mut vocab = interner(s.vocab, "vocabulary")?;
        let program = crate::ruleset::compile::compile(doc, &mut vocab, "rule set")
            .map_err(|e| bad(format!("the rule set in force does not compile: {e}")))?;
        let ids = interner(s.stakeholders, "stakeholders")?;
        let moments = interner(s.moments, "moment ids")?;
        let (n, m) = (ids.len(), moments.len());
        if s.people.len() != n || s.moment_info.len() != m {
            return Err(bad(format!(
                "{} people for {n} stakeholders, {} infos for {m} moments",
                s.people.len(),
                s.moment_info.len()
            )));
        }
        let vocab_len = vocab.len();
        let sym = |x: u32| -> Result<Sym, RestoreError> {
            if x == Sym::NONE.0 || (x as usize) < vocab_len {
                Ok(Sym(x))
            } else {
                Err(bad(format!("symbol {x} beyond the vocabulary")))
            }
        };
        let mut world = OrgWorld::new(program, vocab);
        let w = world.world_mut();
        // Spawned in one batch (bevy reserves the rows once), profiles' details added after.
        let mut bundles = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut details = Vec::new();
        let mut on_boards = Vec::new();
        for (ext, Person(kind, team, profile, guard, caps, seen, wallet, tally, standing)) in
            s.people.into_iter().enumerate()
        {
            let (kind, team) = (sym(kind)?, sym(team)?);
            kinds.push((kind, team));
            if !standing.entries.is_empty() {
                on_boards.push(ext);
            }
            let identity = Identity { ext: ext as u32, kind, team };
            let bundle = Scorecard { identity, guard, caps, seen, wallet, tally, standing };
            if let Some((name, attrs)) = profile {
                details.push((ext, Details { name: name.map(Into::into), attrs }));
            }
            bundles.push(bundle);
        }
        let entries: Vec<DirEntry> =
            w.spawn_batch(bundles).zip(kinds).map(|(entity, (kind, team))| DirEntry { entity, kind, team }).collect();
        for (ext, d) in details {
            w.entity_mut(entries[ext].entity).insert(d);
        }
        let queue: Vec<Entity> = on_boards.into_iter().map(|ext| entries[ext].entity).collect();
        let entity = |ext: u32| {
            entries.get(ext as usize).map(|e| e.entity).ok_or_else(|| bad(format!("stakeholder {ext} unknown")))
        };
        let counted: u64 = s.moment_info.rows().map(|(len, ..)| u64::from(len)).sum();
        if counted != s.ledger.len() as u64 {
            return Err(bad(format!("{} ledger entries, {counted} counted by moment", s.ledger.len())));
        }
        let mut history = History::default();
        (history.ids, history.last_seq, history.latest_at) = (moments, s.seq, s.latest_at);
        if let Some(l) = s.ledger.entries().find(|l| l.stakeholder as usize >= n && l.stakeholder != VOID) {
            return Err(bad(format!("stakeholder {} unknown", l.stakeholder)));
        }
        if let Some(l) = s.ledger.entries().find(|l| l.origin as usize >= s.origins.len()) {
            return Err(bad(format!("origin {} unknown", l.origin)));
        }
        history.origins = Origins::restore(s.origins);
        let mut ledger = s.ledger.entries().copied();
        for (len, retracted, content, fields, activity) in s.moment_info.rows() {
            let earned = ledger.by_ref().take(len as usize);
            history.restore_moment(retracted, Fingerprint { content, fields }, activity, earned);
        }
        let mut progress = rustc_hash::FxHashMap::default();
        for TeamRow(challenge, team, window, moments, completed, contributors, generation) in s.teams {
            let contributors = contributors.into_iter().map(&entity).collect::<Result<_, _>>()?;
            progress.insert((challenge, team), TeamProgress { window, moments, completed, contributors, generation });
        }
        {
            let mut plugins = w.resource_mut::<Plugins>();
            for row in s.plugins {
                let loaded =
                    if row.status.state == crate::plugins::PluginState::Removed { None } else { module(&row.name) };
                let states = row.states.into_iter().map(|(who, b)| (who, b.into_vec())).collect();
                plugins.restore_slot(loaded, states, row.status);
            }
        }
        if s.insights.facts.0.iter().map(|b| b.len()).sum::<usize>() > m {
            return Err(bad(format!("insights hold more facts than the {m} moments")));
        }
        let insights = Insights::restore(s.insights).ok_or_else(|| bad("insights: bad blocks".to_string()))?;
        w.insert_resource(insights);
        let mut publish = w.resource_mut::<PublishQueue>();
        queue.into_iter().for_each(|e| publish.push(e));
        *w.resource_mut::<TeamChallenges>() = TeamChallenges { progress, generations: s.team_generations };
        *w.resource_mut::<History>() = history;
        if let Some(no) = s.erased.iter().find(|&&no| no as usize >= entries.len()) {
            return Err(bad(format!("erased stakeholder {no} unknown")));
        }
        let erased = s.erased.into_iter().collect();
        *w.resource_mut::<Directory>() = Directory { ids, entries, erased };
        Ok(world)
    }
}

/// A stakeholder's row, read by entity.
fn person_by_entity(w: &World, entry: &DirEntry) -> Person {
    let none = Scorecard::default();
    let card = w.get::<Scorecard>(entry.entity).unwrap_or(&none);
    person(entry.kind, entry.team, card, w.get::<Details>(entry.entity))
}

/// A stakeholder as a snapshot holds it: its scorecard as it is, but for what the leaderboards
/// published (a restore rebuilds the rankings).
fn person(kind: Sym, team: Sym, card: &Scorecard, details: Option<&Details>) -> Person {
    let entries = card.standing.entries.iter();
    Person(
        kind.0,
        team.0,
        details.map(|d| (d.name.as_deref().map(str::to_string), d.attrs.clone())),
        card.guard,
        card.caps.clone(),
        card.seen.clone(),
        card.wallet.clone(),
        card.tally.clone(),
        Standing {
            entries: entries
                .map(|x| Entry { board: x.board, window: x.window, value: x.value, seq: x.seq, ..Entry::default() })
                .collect(),
        },
    )
}
