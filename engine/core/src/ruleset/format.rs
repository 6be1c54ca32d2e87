//! The rule-set document as community managers write it (TOML, or the same shape in JSON).
//!
//! This module owns the *syntax* only: field names, types, defaults, and the rejection of unknown
//! fields. Meaning (references between sections, ranges, consistency) is checked in
//! [`super::compile`]. Every field is documented in `rules/README.md`; keep the two in step.

use std::collections::BTreeMap;

use plaudit_sdk::Value;
use serde::{Deserialize, Serialize};

/// A whole rule set: one organisation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "RuleSet"))]
#[serde(deny_unknown_fields)]
pub struct RuleSetDoc {
    pub organisation: OrganisationDoc,
    #[serde(default, rename = "currency")]
    pub currencies: Vec<CurrencyDoc>,
    #[serde(default)]
    pub guard: Option<GuardDoc>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDoc>,
    #[serde(default, rename = "campaign")]
    pub campaigns: Vec<CampaignDoc>,
    #[serde(default, rename = "metric")]
    pub metrics: Vec<MetricDoc>,
    #[serde(default, rename = "streak")]
    pub streaks: Vec<StreakDoc>,
    #[serde(default, rename = "badge")]
    pub badges: Vec<BadgeDoc>,
    #[serde(default)]
    pub levels: Option<LevelsDoc>,
    #[serde(default, rename = "challenge")]
    pub challenges: Vec<ChallengeDoc>,
    #[serde(default, rename = "leaderboard")]
    pub leaderboards: Vec<LeaderboardDoc>,
    /// Sandbox limits for the organisation's rule plugins; the sandbox's defaults where omitted.
    #[serde(default)]
    pub plugins: Option<PluginLimitsDoc>,
    /// How insights score engagement and find who went quiet; defaults where omitted.
    #[serde(default)]
    pub insights: Option<InsightsDoc>,
    /// Targets a community manager tracks week by week.
    #[serde(default, rename = "goal")]
    pub goals: Vec<WeeklyGoalDoc>,
}

/// `[insights]`: the engagement score's window and weights, and the gone-quiet threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InsightsDoc {
    /// Weeks of the trailing window champions are scored over.
    #[serde(default)]
    pub champion_weeks: Option<u32>,
    /// Weeks active, of the 8 before the last 2, that make someone who went quiet worth a call.
    #[serde(default)]
    pub quiet_min_weeks: Option<u32>,
    #[serde(default)]
    pub weights: Option<WeightsDoc>,
}

/// `[insights.weights]`: the engagement score is the weighted sum of these over the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WeightsDoc {
    #[serde(default)]
    pub moments: Option<f64>,
    #[serde(default)]
    pub counterparts: Option<f64>,
    #[serde(default)]
    pub teams: Option<f64>,
    #[serde(default)]
    pub channels: Option<f64>,
}

/// What a goal measures each week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MeasureDoc {
    ActiveStakeholders,
    Moments,
    CrossTeamMoments,
    NewStakeholders,
    Points,
    Badges,
    Completions,
    CompletionRate,
}

/// `[[goal]]`: a weekly target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WeeklyGoalDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub measure: MeasureDoc,
    /// Per week; a percentage for `completion_rate`.
    pub target: f64,
    /// Moment kind (`moments`, `cross_team_moments`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Stakeholder kind (`active_stakeholders`, `moments`).
    #[serde(default)]
    pub stakeholder_kind: Option<String>,
    /// Team (`active_stakeholders`, `moments`).
    #[serde(default)]
    pub team: Option<String>,
    /// Channel (`moments`).
    #[serde(default)]
    pub channel: Option<String>,
    /// Currency (`points`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Challenge (`completion_rate`).
    #[serde(default)]
    pub challenge: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsDoc {
    /// Plugins installed at once.
    #[serde(default)]
    pub installed: Option<u32>,
    /// Fuel (about one unit per wasm instruction) a call may use.
    #[serde(default)]
    pub fuel: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u32>,
    #[serde(default)]
    pub module_kb: Option<u32>,
    #[serde(default)]
    pub input_kb: Option<u32>,
    #[serde(default)]
    pub output_kb: Option<u32>,
    #[serde(default)]
    pub log_bytes: Option<u32>,
    /// Wall-clock backstop per call.
    #[serde(default)]
    pub wall_clock_ms: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OrganisationDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// IANA time zone: days, weeks and months are counted in it.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Seeds chance rewards; with the moment sequence it makes them reproducible.
    #[serde(default)]
    pub seed: u64,
}

fn utc() -> String {
    "UTC".to_string()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CurrencyDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Windows for caps, the cheat guard and recurring challenges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WindowDoc {
    Hour,
    Day,
    Week,
    Month,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GuardDoc {
    /// Which moments the guard watches (all when absent).
    #[serde(default, rename = "match")]
    pub matches: MatchDoc,
    /// At most this many watched moments per stakeholder per `per` window score.
    #[serde(default)]
    pub max_moments: Option<u32>,
    #[serde(default)]
    pub per: Option<WindowDoc>,
    /// An identical moment (same kind, channel, counterpart) scores only this long after the last.
    #[serde(default)]
    pub min_gap_seconds: Option<u32>,
}

/// Which moments something applies to. Every field narrows; an absent field matches anything.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchDoc {
    #[serde(default)]
    pub kind: Vec<String>,
    #[serde(default)]
    pub channel: Vec<String>,
    /// The actor's stakeholder kind.
    #[serde(default)]
    pub stakeholder_kind: Vec<String>,
    /// The actor's team.
    #[serde(default)]
    pub team: Vec<String>,
    #[serde(default)]
    pub counterpart_kind: Vec<String>,
    #[serde(default)]
    pub counterpart_team: Vec<String>,
    #[serde(default)]
    pub has_counterpart: Option<bool>,
    /// true: actor and counterpart are in different teams (both known); false: the same team.
    #[serde(default)]
    pub cross_team: Option<bool>,
    /// Only the actor's first moment with this counterpart / on this channel / with this team.
    #[serde(default)]
    pub first: Option<FirstDoc>,
    #[serde(default)]
    pub value: Option<RangeDoc>,
    #[serde(default)]
    pub attrs: BTreeMap<String, AttrCondDoc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FirstDoc {
    Counterpart,
    Channel,
    Team,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RangeDoc {
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// How an attribute value ([`Value`], which the SDK defines without a schema) is described.
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[schemars(rename = "AttrValue", untagged)]
#[allow(dead_code)] // only its schema is used
enum ScalarSchema {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// An attribute condition: a value to equal, or a table with `min`/`max`, or `in`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum AttrCondDoc {
    Range(RangeDoc),
    OneOf(OneOfDoc),
    Equals(#[cfg_attr(feature = "schema", schemars(with = "ScalarSchema"))] Value),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OneOfDoc {
    #[serde(rename = "in")]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<ScalarSchema>"))]
    pub one_of: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetDoc {
    Actor,
    Counterpart,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AwardDoc {
    pub to: TargetDoc,
    pub currency: String,
    /// Fixed points.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Points per unit of the moment's `value` (added to `amount`, rounded down).
    #[serde(default)]
    pub value_factor: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CapDoc {
    /// At most this many awards per stakeholder per window.
    #[serde(default)]
    pub times: Option<u32>,
    /// At most this many points (all the rule's currencies together) per stakeholder per window.
    #[serde(default)]
    pub points: Option<i64>,
    pub per: WindowDoc,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: MatchDoc,
    pub award: Vec<AwardDoc>,
    #[serde(default)]
    pub cap: Option<CapDoc>,
    /// Probability in (0, 1] that the rule fires on a matching moment.
    #[serde(default)]
    pub chance: Option<f64>,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignDoc {
    pub id: String,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub until: String,
    pub multiplier: f64,
    /// The rules it multiplies (all when empty).
    #[serde(default)]
    pub rules: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DistinctDoc {
    Counterparts,
    Teams,
    Channels,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricDoc {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Counts the actor's moments that match.
    #[serde(default)]
    pub count: Option<MatchDoc>,
    /// Counts the distinct counterparts / their teams / channels of the actor's moments.
    #[serde(default)]
    pub distinct: Option<DistinctDoc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StreakPeriodDoc {
    Day,
    Week,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StreakDoc {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    pub period: StreakPeriodDoc,
    /// Periods that may be missed without breaking the streak (a freeze).
    #[serde(default)]
    pub grace: u32,
    #[serde(default, rename = "match")]
    pub matches: MatchDoc,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RewardDoc {
    pub currency: String,
    pub amount: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TierDoc {
    pub name: String,
    pub at: i64,
    #[serde(default)]
    pub reward: Vec<RewardDoc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BadgeDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A currency, a metric or a streak id. Absent for a badge that only challenges grant.
    #[serde(default)]
    pub metric: Option<String>,
    /// One-off: earned once when the metric reaches it.
    #[serde(default)]
    pub threshold: Option<i64>,
    /// Tiered: each tier earned once, in order.
    #[serde(default)]
    pub tiers: Vec<TierDoc>,
    /// Repeatable: earned again at every multiple.
    #[serde(default)]
    pub every: Option<i64>,
    /// Reward for a one-off or repeatable badge (tiers carry their own).
    #[serde(default)]
    pub reward: Vec<RewardDoc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LevelDoc {
    pub name: String,
    pub at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LevelsDoc {
    pub currency: String,
    pub steps: Vec<LevelDoc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScopeDoc {
    #[default]
    Individual,
    Team,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GoalDoc {
    #[serde(default)]
    pub moments: Option<u32>,
    /// Distinct teams other than the actor's own, among counterparts.
    #[serde(default)]
    pub distinct_teams: Option<u32>,
    #[serde(default)]
    pub distinct_counterparts: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Recurring window (day, week, month); or give `from`/`until` for a time-boxed challenge.
    #[serde(default)]
    pub window: Option<WindowDoc>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub scope: ScopeDoc,
    #[serde(default, rename = "match")]
    pub matches: MatchDoc,
    pub goal: GoalDoc,
    #[serde(default)]
    pub reward: Vec<RewardDoc>,
    /// A badge granted on completion.
    #[serde(default)]
    pub badge: Option<String>,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TiesDoc {
    /// 1, 2, 2, 4
    #[default]
    Shared,
    /// 1, 2, 2, 3
    Dense,
    /// 1, 2, 3, 4: whoever reached the score first ranks first.
    FirstCome,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BoardWindowDoc {
    #[default]
    All,
    Day,
    Week,
    Month,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaderboardDoc {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A currency or a metric id.
    pub metric: String,
    #[serde(default)]
    pub window: BoardWindowDoc,
    #[serde(default)]
    pub ties: TiesDoc,
    /// Rank teams instead of stakeholders, by the members' values summed or averaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<TeamsDoc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TeamsDoc {
    Sum,
    Average,
}
