//! What-if: run the same records through the current rule set and a candidate, in two scratch
//! worlds, and report what would change for people: currency deltas, badges gained and lost,
//! levels, ranks on every leaderboard, challenge completions.
//!
//! Owns only the comparison; the worlds are ordinary [`OrgWorld`]s fed through `ingest`, so the
//! preview is exactly what publishing the candidate and replaying would give. Where the records
//! come from (a moments file today, the organisation's log later) is the caller's business.

use std::collections::{BTreeMap, BTreeSet};

use plaudit_sdk::{EffectKind, Record};
use serde::Serialize;

use crate::reads::Profile;
use crate::world::OrgWorld;

/// What would change for one stakeholder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StakeholderDiff {
    pub id: String,
    /// Currency -> (current, candidate), for currencies whose balance differs.
    pub currencies: BTreeMap<String, (i64, i64)>,
    /// Badge -> (current, candidate) standing ("silver" for a tier, "x3" for a count), for
    /// badges that differ; `None` is "not earned".
    pub badges: BTreeMap<String, (Option<String>, Option<String>)>,
    /// (current, candidate) level names, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<(Option<String>, Option<String>)>,
    /// Board -> (current rank, candidate rank), when they differ.
    pub ranks: BTreeMap<String, (Option<usize>, Option<usize>)>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub records: usize,
    pub stakeholders: usize,
    /// Stakeholders with any difference.
    pub changed: usize,
    /// Currency -> (total current, total candidate), over everyone.
    pub totals: BTreeMap<String, (i64, i64)>,
    /// Badges earned under the candidate only, under the current rules only, or differently
    /// (another tier or count) under both.
    pub badges_gained: usize,
    pub badges_lost: usize,
    pub badges_changed: usize,
    pub level_changes: usize,
    pub rank_changes: usize,
    /// Challenge -> (completions current, completions candidate), over the whole history.
    pub completions: BTreeMap<String, (u64, u64)>,
    /// Everyone with a difference, largest total currency change first.
    pub details: Vec<StakeholderDiff>,
}

/// Runs `records` through both worlds (fresh ones: pass them empty) in batches of `batch`, and
/// compares the results. Records either world refuses are counted in neither.
pub fn simulate<I: IntoIterator<Item = Record>>(
    current: &mut OrgWorld,
    candidate: &mut OrgWorld,
    records: I,
    batch: usize,
) -> Diff {
    let mut done = Vec::with_capacity(batch.max(1));
    let mut count = 0;
    let mut completions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut run = |chunk: &mut Vec<Record>, completions: &mut BTreeMap<String, (u64, u64)>| {
        for (world, side) in [(&mut *current, 0), (&mut *candidate, 1)] {
            world.ingest(chunk.iter().cloned());
            for e in world.drain_effects() {
                if let EffectKind::ChallengeCompleted { challenge, .. } = e.kind {
                    let c = completions.entry(challenge).or_default();
                    if side == 0 { c.0 += 1 } else { c.1 += 1 }
                }
            }
        }
        chunk.clear();
    };
    for r in records {
        count += 1;
        done.push(r);
        if done.len() >= batch.max(1) {
            run(&mut done, &mut completions);
        }
    }
    run(&mut done, &mut completions);
    let mut d = compare(current, candidate);
    d.records = count;
    d.completions = completions;
    d
}

/// Compares two worlds that scored the same records.
pub fn compare(current: &mut OrgWorld, candidate: &mut OrgWorld) -> Diff {
    let mut d = Diff {
        records: 0,
        stakeholders: current.stakeholders(),
        changed: 0,
        totals: BTreeMap::new(),
        badges_gained: 0,
        badges_lost: 0,
        badges_changed: 0,
        level_changes: 0,
        rank_changes: 0,
        completions: BTreeMap::new(),
        details: Vec::new(),
    };
    for id in current.stakeholder_ids() {
        let (Some(a), Some(b)) = (current.profile(&id), candidate.profile(&id)) else { continue };
        for (c, v) in &a.currencies {
            d.totals.entry(c.clone()).or_default().0 += v;
        }
        for (c, v) in &b.currencies {
            d.totals.entry(c.clone()).or_default().1 += v;
        }
        let s = stakeholder_diff(&a, &b);
        if s.currencies.is_empty() && s.badges.is_empty() && s.level.is_none() && s.ranks.is_empty() {
            continue;
        }
        d.changed += 1;
        for (before, after) in s.badges.values() {
            match (before, after) {
                (None, Some(_)) => d.badges_gained += 1,
                (Some(_), None) => d.badges_lost += 1,
                _ => d.badges_changed += 1,
            }
        }
        d.level_changes += usize::from(s.level.is_some());
        d.rank_changes += s.ranks.len();
        d.details.push(s);
    }
    let weight = |s: &StakeholderDiff| s.currencies.values().map(|(a, b)| (b - a).unsigned_abs()).sum::<u64>();
    d.details.sort_by(|x, y| weight(y).cmp(&weight(x)).then_with(|| x.id.cmp(&y.id)));
    d
}

/// Badge -> its standing: the tier's name, or `x<count>`.
fn badge_standing(p: &Profile) -> BTreeMap<&str, String> {
    p.badges.iter().map(|b| (b.badge.as_str(), b.tier.clone().unwrap_or_else(|| format!("x{}", b.count)))).collect()
}

fn stakeholder_diff(a: &Profile, b: &Profile) -> StakeholderDiff {
    let names: BTreeSet<&String> = a.currencies.keys().chain(b.currencies.keys()).collect();
    let currencies = names
        .into_iter()
        .filter_map(|c| {
            let (x, y) = (a.currencies.get(c).copied().unwrap_or(0), b.currencies.get(c).copied().unwrap_or(0));
            (x != y).then(|| (c.clone(), (x, y)))
        })
        .collect();
    let (ba, bb) = (badge_standing(a), badge_standing(b));
    let ids: BTreeSet<&&str> = ba.keys().chain(bb.keys()).collect();
    let badges = ids
        .into_iter()
        .filter_map(|id| {
            let (x, y) = (ba.get(*id).cloned(), bb.get(*id).cloned());
            (x != y).then(|| (id.to_string(), (x, y)))
        })
        .collect();
    let level_a = a.level.as_ref().map(|l| l.name.clone());
    let level_b = b.level.as_ref().map(|l| l.name.clone());
    let boards: BTreeSet<&String> = a.ranks.keys().chain(b.ranks.keys()).collect();
    let ranks = boards
        .into_iter()
        .filter_map(|board| {
            let (x, y) = (a.ranks.get(board).copied(), b.ranks.get(board).copied());
            (x != y).then(|| (board.clone(), (x, y)))
        })
        .collect();
    StakeholderDiff {
        id: a.id.clone(),
        currencies,
        badges,
        level: (level_a != level_b).then_some((level_a, level_b)),
        ranks,
    }
}
