//! Effects: what scoring produced, each tied to the moment that caused it and naming the rule,
//! badge, level, streak or challenge that produced it, so a person can be told why.

use serde::{Deserialize, Serialize};

use crate::value::Attrs;

/// One effect of scoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The id of the moment (or retraction) that caused this effect.
    pub moment: String,
    /// The stakeholder the effect is for.
    pub stakeholder: String,
    /// The name of the rule, badge, level, streak, challenge or plugin that produced it.
    pub source: String,
    #[serde(flatten)]
    pub kind: EffectKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectKind {
    /// Points were added to a currency; `balance` is the total afterwards.
    PointsAwarded { currency: String, amount: i64, balance: i64 },
    /// A rule matched but its award was held back by the rule's cap.
    PointsWithheld { currency: String, amount: i64, reason: String },
    /// Points were taken back because the moment that earned them was retracted.
    PointsRevoked { currency: String, amount: i64, balance: i64 },
    /// A badge (or a badge tier) was earned; `count` is how often it has been earned.
    BadgeEarned {
        badge: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        count: u32,
    },
    /// A badge was taken back because the moment that earned it was retracted.
    BadgeRevoked {
        badge: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
    },
    /// A level was reached (`index` 0 is the first level).
    LevelReached { level: String, index: u32 },
    /// A streak grew to `length` periods.
    StreakExtended { streak: String, length: u32 },
    /// A streak of `length` periods ended.
    StreakBroken { streak: String, length: u32 },
    /// A retraction took a moment out of the streak: `length` is what it is now.
    StreakShortened { streak: String, length: u32 },
    /// A challenge advanced in the window that starts at `window`.
    ChallengeProgressed { challenge: String, window: String, progress: u32, goal: u32 },
    /// A challenge was completed in the window that starts at `window`.
    ChallengeCompleted { challenge: String, window: String },
    /// A retraction left the window no longer completed: its reward and badge were taken back.
    ChallengeRevoked { challenge: String, window: String },
    /// The cheat guard held the moment back: it was accepted and scores nothing.
    Guarded { reason: String },
    /// The stakeholder was erased (GDPR article 17): downstream systems holding data about
    /// them should erase it too. `stakeholder` names them as they were known when the effect
    /// was delivered live; Plaudit itself now knows them only as `pseudonym`, which stands in
    /// for them in the moments others keep.
    StakeholderErased { pseudonym: String },
    /// A plugin's own effect.
    Custom {
        name: String,
        #[serde(default, skip_serializing_if = "Attrs::is_empty")]
        data: Attrs,
    },
}
