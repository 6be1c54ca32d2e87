//! The effects journal: compact records of what scoring produced, in the order produced, and
//! their rendering into the public [`plaudit_sdk::Effect`] shape.

use bevy_ecs::prelude::*;
use plaudit_sdk::{Effect, EffectKind};
use serde::{Deserialize, Serialize};

use crate::batch::{AwardSource, GuardReason};
use crate::calendar::Period;
use crate::ruleset::program::{ChallengeWindow, CurrencyIx, Program};

/// What produced an effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Rule(u16),
    Badge(u16),
    Level,
    Streak(u16),
    Challenge(u16),
    Guard,
    Retraction,
    /// An erasure of the stakeholder ([`crate::OrgWorld::erase`]).
    Erasure,
    /// The organisation's plugin in this slot.
    Plugin(u16),
    /// Rule-set `version` applied to history (see [`crate::retroactive`]).
    History {
        version: u32,
        mode: crate::application::Mode,
    },
}

impl From<AwardSource> for Source {
    fn from(s: AwardSource) -> Source {
        match s {
            AwardSource::Rule(r) => Source::Rule(r),
            AwardSource::Plugin(p) => Source::Plugin(p),
        }
    }
}

/// The moment of an effect that no single moment caused (a rebase's balance correction, a badge
/// a rebase takes back): rendered as the application's name.
pub const NO_MOMENT: u32 = u32::MAX;

/// An effect, compactly.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Points {
        currency: CurrencyIx,
        amount: i64,
        balance: i64,
    },
    /// `reason` is set when a plugin held the award back; otherwise it was its rule's cap.
    Withheld {
        currency: CurrencyIx,
        amount: i64,
        reason: Option<Box<str>>,
    },
    Revoked {
        currency: CurrencyIx,
        amount: i64,
        balance: i64,
    },
    Badge {
        badge: u16,
        tier: Option<u8>,
        count: u32,
    },
    BadgeRevoked {
        badge: u16,
        tier: Option<u8>,
    },
    Level {
        index: u32,
    },
    StreakExtended {
        streak: u16,
        length: u32,
    },
    StreakBroken {
        streak: u16,
        length: u32,
    },
    /// A retraction recounted the streak: `length` is what it is now.
    StreakShortened {
        streak: u16,
        length: u32,
    },
    ChallengeProgressed {
        challenge: u16,
        window: i32,
        progress: u32,
        goal: u32,
    },
    ChallengeCompleted {
        challenge: u16,
        window: i32,
    },
    /// A retraction left the window no longer completed.
    ChallengeRevoked {
        challenge: u16,
        window: i32,
    },
    Guarded(GuardReason),
    /// The stakeholder was erased: they are known by their pseudonym (their id now) only.
    Erased,
    /// A plugin's own effect: its name and data.
    Custom(Box<(String, plaudit_sdk::Attrs)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct EffectRec {
    pub seq: u64,
    /// The moment's id in the history's interner.
    pub moment: u32,
    /// The stakeholder's id in the directory's interner.
    pub stakeholder: u32,
    pub source: Source,
    pub kind: Kind,
}

/// Effects of the current batch. Drained by the caller after every batch.
#[derive(Resource, Debug)]
pub struct Journal {
    /// The effects kept since the caller last drained them, in order.
    pub(crate) records: Vec<EffectRec>,
    /// Effects produced so far, kept or not: what a batch produced is the difference.
    pub(crate) produced: u64,
    /// Whether effects are kept: a replay that only counts them (a restart, a rebuild) does
    /// not write them out to drop them again.
    pub(crate) keep: bool,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal { records: Vec::new(), produced: 0, keep: true }
    }
}

impl Journal {
    #[inline]
    pub fn push(&mut self, effect: EffectRec) {
        self.produced += 1;
        if self.keep {
            self.records.push(effect);
        }
    }

    pub fn extend(&mut self, effects: Vec<EffectRec>) {
        self.produced += effects.len() as u64;
        if self.keep {
            self.records.extend(effects);
        }
    }
}

/// Everything rendering needs to name things.
pub struct Names<'a> {
    pub program: &'a Program,
    pub moment: &'a dyn Fn(u32) -> &'a str,
    pub stakeholder: &'a dyn Fn(u32) -> &'a str,
    /// The name of the plugin in a slot.
    pub plugin: &'a dyn Fn(u16) -> &'a str,
}

impl std::fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Names")
    }
}

/// The start of challenge `c`'s window `w`, as a date.
pub fn window_label(p: &Program, c: u16, w: i32) -> String {
    match p.challenges[c as usize].window {
        ChallengeWindow::Recurring(win) => match win.period() {
            Some(period) => p.calendar.period_label(period, w),
            None => p.calendar.period_label(Period::Day, w),
        },
        ChallengeWindow::Fixed { from, .. } => {
            let day = p.calendar.period_index(Period::Day, from);
            p.calendar.period_label(Period::Day, day)
        }
    }
}

/// Renders one effect for people and product teams.
pub fn render(e: &EffectRec, n: &Names<'_>) -> Effect {
    let p = n.program;
    let cur = |c: CurrencyIx| p.currencies[c as usize].id.clone();
    let badge = |b: u16| &p.badges[b as usize];
    let tier_name = |b: u16, t: Option<u8>| match (&badge(b).shape, t) {
        (crate::ruleset::program::BadgeShape::Tiers(tiers), Some(t)) => Some(tiers[t as usize].name.clone()),
        _ => None,
    };
    let source = match e.source {
        Source::Rule(r) => p.rules[r as usize].id.clone(),
        Source::Badge(b) => badge(b).id.clone(),
        Source::Level => "level".to_string(),
        Source::Streak(s) => p.streaks[s as usize].id.clone(),
        Source::Challenge(c) => p.challenges[c as usize].id.clone(),
        Source::Guard => "guard".to_string(),
        Source::Retraction => "retraction".to_string(),
        Source::Erasure => "erasure".to_string(),
        Source::Plugin(slot) => (n.plugin)(slot).to_string(),
        Source::History { version, mode } => format!("history:v{version}:{mode}"),
    };
    let kind = match e.kind.clone() {
        Kind::Points { currency, amount, balance } => {
            EffectKind::PointsAwarded { currency: cur(currency), amount, balance }
        }
        Kind::Withheld { currency, amount, reason: Some(reason) } => {
            EffectKind::PointsWithheld { currency: cur(currency), amount, reason: reason.into() }
        }
        Kind::Withheld { currency, amount, reason: None } => {
            let reason = match e.source {
                Source::Rule(r) => match p.rules[r as usize].cap {
                    Some(c) => format!("cap of rule {:?} per {}", p.rules[r as usize].id, c.per.name()),
                    None => "cap".to_string(),
                },
                _ => "cap".to_string(),
            };
            EffectKind::PointsWithheld { currency: cur(currency), amount, reason }
        }
        Kind::Revoked { currency, amount, balance } => {
            EffectKind::PointsRevoked { currency: cur(currency), amount, balance }
        }
        Kind::Badge { badge: b, tier, count } => {
            EffectKind::BadgeEarned { badge: badge(b).id.clone(), tier: tier_name(b, tier), count }
        }
        Kind::BadgeRevoked { badge: b, tier } => {
            EffectKind::BadgeRevoked { badge: badge(b).id.clone(), tier: tier_name(b, tier) }
        }
        Kind::Level { index } => {
            let name = p.levels.as_ref().map(|l| l.steps[index as usize].0.clone()).unwrap_or_default();
            EffectKind::LevelReached { level: name, index }
        }
        Kind::StreakExtended { streak, length } => {
            EffectKind::StreakExtended { streak: p.streaks[streak as usize].id.clone(), length }
        }
        Kind::StreakBroken { streak, length } => {
            EffectKind::StreakBroken { streak: p.streaks[streak as usize].id.clone(), length }
        }
        Kind::StreakShortened { streak, length } => {
            EffectKind::StreakShortened { streak: p.streaks[streak as usize].id.clone(), length }
        }
        Kind::ChallengeRevoked { challenge, window } => EffectKind::ChallengeRevoked {
            challenge: p.challenges[challenge as usize].id.clone(),
            window: window_label(p, challenge, window),
        },
        Kind::ChallengeProgressed { challenge, window, progress, goal } => EffectKind::ChallengeProgressed {
            challenge: p.challenges[challenge as usize].id.clone(),
            window: window_label(p, challenge, window),
            progress,
            goal,
        },
        Kind::ChallengeCompleted { challenge, window } => EffectKind::ChallengeCompleted {
            challenge: p.challenges[challenge as usize].id.clone(),
            window: window_label(p, challenge, window),
        },
        Kind::Guarded(reason) => EffectKind::Guarded { reason: reason.describe().to_string() },
        Kind::Erased => EffectKind::StakeholderErased { pseudonym: (n.stakeholder)(e.stakeholder).to_string() },
        Kind::Custom(custom) => {
            let (name, data) = *custom;
            EffectKind::Custom { name, data }
        }
    };
    Effect {
        moment: if e.moment == NO_MOMENT { source.clone() } else { (n.moment)(e.moment).to_string() },
        stakeholder: (n.stakeholder)(e.stakeholder).to_string(),
        source,
        kind,
    }
}

/// An effect numbered as the organisation's feed numbers it: what the feed, its stream, webhooks
/// and the answers to moments show, and what a snapshot keeps of the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    /// Its number in the organisation's feed, from 1: the cursor, and the id webhook receivers
    /// deduplicate on.
    pub id: u64,
    /// The sequence number of the record (moment, retraction) that caused it.
    pub seq: u64,
    #[serde(flatten)]
    pub effect: Effect,
}
