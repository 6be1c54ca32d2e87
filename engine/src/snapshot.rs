//! Snapshots of a world: everything an [`OrgWorld`] holds between batches, as plain data that
//! serde encodes (MessagePack, see [`crate::log`]), and the world rebuilt from it.
//!
//! **Owns** the snapshot's shape ([`WorldSnapshot`]) and the two conversions. **Must not touch**
//! the store or the log: the log step decides when to take one and where it goes.
//!
//! What is in it: the vocabulary, the directory, every stakeholder's state (profile, guard,
//! caps, what it met, balances, tallies, leaderboard entries), the history (moment ids, what
//! each earned, retractions), team challenge progress, and each plugin's saved states and
//! status. What is not: the compiled rule set (the log step recompiles the version in force
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
    CapSlot, Caps, Details, Entry, GuardState, Identity, Seen, Slot, StakeholderBundle, Standing, Tally, Wallet,
};
use crate::effects::{TeamChallenges, TeamProgress};
use crate::history::{Earned, History, LedgerEntry, MomentInfo};
use crate::ids::Sym;
use crate::intern::Interner;
use crate::leaderboard::PublishQueue;
use crate::plugins::{Loaded, PluginStatus, Plugins};
use crate::world::{DirEntry, Directory, OrgWorld, Vocab};

/// The version of [`WorldSnapshot`]'s shape. A snapshot of another version is not read (the
/// log is replayed instead).
pub const FORMAT: u32 = 1;

/// An interner's strings: concatenated, and where each ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Strings {
    pub text: String,
    pub ends: Vec<u32>,
}

/// One stakeholder, by directory number: kind, team, name and attributes, guard state
/// `(last_key, last_at, window, count)`, caps `(rule, period, times, points)`, keys met,
/// balances, tally slots `(key, a, b)` and leaderboard entries `(board, window, value, seq)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(clippy::type_complexity)]
pub struct Person(
    pub u32,
    pub u32,
    pub Option<(Option<String>, Attrs)>,
    pub (u32, i64, i32, u32),
    pub Vec<(u16, i32, u32, i64)>,
    pub Vec<u64>,
    pub Vec<i64>,
    pub Vec<(u32, i32, i64)>,
    pub Vec<(u16, i32, i64, u64)>,
);

/// What a moment earned for a stakeholder: `(moment, who, tag, index, value)`, tag 0 for points
/// (index = currency, value = amount), 1 for a badge (index = badge, value = tier or -1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Earning(pub u32, pub u32, pub u8, pub u16, pub i64);

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
    /// By moment: `(ledger start, ledger length, retracted)`.
    pub moment_info: Vec<(u32, u32, bool)>,
    pub ledger: Vec<Earning>,
    pub teams: Vec<TeamRow>,
    pub team_generations: u64,
    pub plugins: Vec<PluginRow>,
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

fn strings(i: &Interner) -> Strings {
    let (text, ends) = i.parts();
    Strings { text: text.to_string(), ends: ends.to_vec() }
}

fn interner(s: Strings, what: &str) -> Result<Interner, RestoreError> {
    Interner::from_parts(s.text, s.ends).ok_or_else(|| RestoreError::Inconsistent(format!("{what}: bad string table")))
}

impl OrgWorld {
    /// The world as data, for [`OrgWorld::restore`]. Call between batches, with the journal
    /// drained (pending effects are not part of a snapshot).
    pub fn snapshot(&self) -> WorldSnapshot {
        let w = self.world();
        let dir = w.resource::<Directory>();
        let history = w.resource::<History>();
        let ext_of = |e: Entity| w.get::<Identity>(e).map_or(u32::MAX, |id| id.ext);
        let people = dir
            .entries
            .iter()
            .map(|entry| {
                let e = entry.entity;
                let guard = w.get::<GuardState>(e).copied().unwrap_or_default();
                Person(
                    entry.kind.0,
                    entry.team.0,
                    w.get::<Details>(e).map(|d| (d.name.as_deref().map(str::to_string), d.attrs.clone())),
                    (guard.last_key, guard.last_at, guard.window, guard.count),
                    w.get::<Caps>(e)
                        .map_or(Vec::new(), |c| c.0.iter().map(|s| (s.rule, s.period, s.times, s.points)).collect()),
                    w.get::<Seen>(e).map_or(Vec::new(), Seen::keys),
                    w.get::<Wallet>(e).map_or(Vec::new(), |wallet| wallet.0.to_vec()),
                    w.get::<Tally>(e).map_or(Vec::new(), |t| t.0.iter().map(|s| (s.key, s.a, s.b)).collect()),
                    w.get::<Standing>(e).map_or(Vec::new(), |s| {
                        s.entries.iter().map(|x| (x.board, x.window, x.value, x.seq)).collect()
                    }),
                )
            })
            .collect();
        let ledger = history
            .ledger
            .iter()
            .map(|l| match l.earned {
                Earned::Points { currency, amount } => Earning(l.moment, ext_of(l.entity), 0, currency.into(), amount),
                Earned::Badge { badge, tier } => {
                    Earning(l.moment, ext_of(l.entity), 1, badge, tier.map_or(-1, i64::from))
                }
            })
            .collect();
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
            vocab: strings(&w.resource::<Vocab>().0),
            stakeholders: strings(&dir.ids),
            people,
            moments: strings(&history.ids),
            moment_info: history.info.iter().map(|i| (i.ledger_start, i.ledger_len, i.retracted)).collect(),
            ledger,
            teams: team_rows,
            team_generations: teams.generations,
            plugins,
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
        let mut entries = Vec::with_capacity(n);
        let mut queue = Vec::new();
        for (ext, p) in s.people.into_iter().enumerate() {
            let (kind, team) = (sym(p.0)?, sym(p.1)?);
            let mut bundle = StakeholderBundle::new(Identity { ext: ext as u32, kind, team });
            bundle.guard = GuardState { last_key: p.3.0, last_at: p.3.1, window: p.3.2, count: p.3.3 };
            bundle.caps = Caps(
                p.4.into_iter().map(|(rule, period, times, points)| CapSlot { rule, period, times, points }).collect(),
            );
            bundle.seen = Seen::from_keys(p.5);
            bundle.wallet = Wallet(p.6.into_iter().collect());
            bundle.tally = Tally(p.7.into_iter().map(|(key, a, b)| Slot { key, a, b }).collect());
            let on_boards = !p.8.is_empty();
            bundle.standing = Standing {
                entries: p
                    .8
                    .into_iter()
                    .map(|(board, window, value, seq)| Entry { board, window, value, seq, ..Entry::default() })
                    .collect(),
            };
            let mut spawned = w.spawn(bundle);
            if let Some((name, attrs)) = p.2 {
                spawned.insert(Details { name: name.map(Into::into), attrs });
            }
            let entity = spawned.id();
            if on_boards {
                queue.push(entity);
            }
            entries.push(DirEntry { entity, kind, team });
        }
        let entity = |ext: u32| {
            entries.get(ext as usize).map(|e| e.entity).ok_or_else(|| bad(format!("stakeholder {ext} unknown")))
        };
        let mut ledger = Vec::with_capacity(s.ledger.len());
        for Earning(moment, who, tag, index, value) in s.ledger {
            if moment as usize >= m {
                return Err(bad(format!("ledger entry of moment {moment} unknown")));
            }
            let earned = match tag {
                0 => Earned::Points {
                    currency: u8::try_from(index).map_err(|_| bad("currency index".into()))?,
                    amount: value,
                },
                _ => Earned::Badge { badge: index, tier: u8::try_from(value).ok() },
            };
            ledger.push(LedgerEntry { moment, entity: entity(who)?, earned });
        }
        let info: Vec<MomentInfo> = s
            .moment_info
            .into_iter()
            .map(|(ledger_start, ledger_len, retracted)| MomentInfo { ledger_start, ledger_len, retracted })
            .collect();
        if info.iter().any(|i| i.ledger_start as usize + i.ledger_len as usize > ledger.len()) {
            return Err(bad("a moment's ledger range is beyond the ledger".to_string()));
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
        let mut publish = w.resource_mut::<PublishQueue>();
        queue.into_iter().for_each(|e| publish.push(e));
        *w.resource_mut::<TeamChallenges>() = TeamChallenges { progress, generations: s.team_generations };
        *w.resource_mut::<History>() = History { ids: moments, info, ledger, last_seq: s.seq, latest_at: s.latest_at };
        *w.resource_mut::<Directory>() = Directory { ids, entries };
        Ok(world)
    }
}

/// A snapshot (or anything holding one) as named MessagePack: maps with field names at every
/// level but the bulk tuples, so a later version can still read it.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// The value [`encode`] wrote.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}
