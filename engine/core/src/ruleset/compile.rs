//! Validation and compilation: [`RuleSetDoc`] -> [`Program`].
//!
//! Every check that the syntax cannot express lives here (unique ids, references between
//! sections, ranges, time stamps, time zone), and every error names the field path, such as
//! `rule[3].award[0].currency`, so a community manager can find it.

use rustc_hash::FxHashSet;

use super::RuleSetError;
use super::format::*;
use super::program::*;
use crate::calendar::{Calendar, Period, parse_rfc3339};
use crate::ids::Sym;
use crate::intern::Interner;

/// The most currencies a rule set may define (wallets are small fixed arrays).
pub const MAX_CURRENCIES: usize = 16;
/// The most entries in each list section (rules, badges, metrics, ...).
pub const MAX_ITEMS: usize = 1024;

struct Ctx<'a> {
    vocab: &'a mut Interner,
    errors: Vec<(String, String)>,
}

impl Ctx<'_> {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((path.into(), msg.into()));
    }

    fn syms(&mut self, names: &[String]) -> Box<[Sym]> {
        names.iter().map(|n| Sym(self.vocab.intern(n).0)).collect()
    }

    fn time(&mut self, path: String, s: &str) -> i64 {
        match parse_rfc3339(s) {
            Ok(t) => t,
            Err(e) => {
                self.err(path, e.to_string());
                0
            }
        }
    }

    fn unique_ids<'d>(&mut self, section: &str, ids: impl Iterator<Item = &'d str>) {
        let mut seen = FxHashSet::default();
        for (i, id) in ids.enumerate() {
            if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
                self.err(format!("{section}[{i}].id"), "must be 1 to 64 characters, no control characters");
            }
            if !seen.insert(id) {
                self.err(format!("{section}[{i}].id"), format!("duplicate id {id:?}"));
            }
        }
    }

    fn matcher(&mut self, path: &str, m: &MatchDoc, allow_first: bool) -> Matcher {
        if m.first.is_some() && !allow_first {
            self.err(format!("{path}.first"), "only rules, metrics, streaks and challenges may use `first`");
        }
        let value = m.value.map(|r| self.range(&format!("{path}.value"), r));
        let attrs = m
            .attrs
            .iter()
            .map(|(name, c)| {
                let cond = match c {
                    AttrCondDoc::Range(r) => {
                        let (lo, hi) = self.range(&format!("{path}.attrs.{name}"), *r);
                        AttrCond::Range(lo, hi)
                    }
                    AttrCondDoc::OneOf(o) => AttrCond::OneOf(o.one_of.clone()),
                    AttrCondDoc::Equals(v) => AttrCond::Equals(v.clone()),
                };
                (name.clone(), cond)
            })
            .collect();
        Matcher {
            kind: self.syms(&m.kind),
            channel: self.syms(&m.channel),
            stakeholder_kind: self.syms(&m.stakeholder_kind),
            team: self.syms(&m.team),
            counterpart_kind: self.syms(&m.counterpart_kind),
            counterpart_team: self.syms(&m.counterpart_team),
            has_counterpart: m.has_counterpart,
            cross_team: m.cross_team,
            first: m.first.map(|f| match f {
                FirstDoc::Counterpart => First::Counterpart,
                FirstDoc::Channel => First::Channel,
                FirstDoc::Team => First::Team,
            }),
            value,
            attrs,
        }
    }

    fn range(&mut self, path: &str, r: RangeDoc) -> (f64, f64) {
        let lo = r.min.unwrap_or(f64::NEG_INFINITY);
        let hi = r.max.unwrap_or(f64::INFINITY);
        if r.min.is_none() && r.max.is_none() {
            self.err(path, "give `min`, `max` or both");
        } else if lo.is_nan() || hi.is_nan() || lo > hi {
            self.err(path, format!("`min` ({lo}) must not be above `max` ({hi})"));
        }
        (lo, hi)
    }

    fn rewards(&mut self, path: &str, rs: &[RewardDoc], currencies: &[Currency]) -> Vec<Reward> {
        rs.iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let c = self.currency(&format!("{path}[{i}].currency"), &r.currency, currencies)?;
                if r.amount == 0 || r.amount.unsigned_abs() > 1_000_000_000 {
                    self.err(format!("{path}[{i}].amount"), "must be non-zero and at most 10^9 in size");
                }
                Some(Reward { currency: c, amount: r.amount })
            })
            .collect()
    }

    fn currency(&mut self, path: &str, id: &str, currencies: &[Currency]) -> Option<CurrencyIx> {
        match currencies.iter().position(|c| c.id == id) {
            Some(i) => Some(i as CurrencyIx),
            None => {
                let known: Vec<&str> = currencies.iter().map(|c| c.id.as_str()).collect();
                self.err(path, format!("unknown currency {id:?} (defined: {})", known.join(", ")));
                None
            }
        }
    }
}

/// Whether every moment `m` matches has a counterpart.
fn requires_counterpart(m: &MatchDoc) -> bool {
    m.has_counterpart == Some(true)
        || m.cross_team.is_some()
        || !m.counterpart_kind.is_empty()
        || !m.counterpart_team.is_empty()
        || matches!(m.first, Some(FirstDoc::Counterpart | FirstDoc::Team))
}

fn window(w: WindowDoc) -> Window {
    match w {
        WindowDoc::Hour => Window::Hour,
        WindowDoc::Day => Window::Day,
        WindowDoc::Week => Window::Week,
        WindowDoc::Month => Window::Month,
    }
}

/// Validates `doc` and compiles it, interning its vocabulary into `vocab`.
pub fn compile(doc: &RuleSetDoc, vocab: &mut Interner, origin: &str) -> Result<Program, RuleSetError> {
    let mut cx = Ctx { vocab, errors: Vec::new() };
    let org = &doc.organisation;
    if let Err(e) = crate::ids::OrgId::parse(&org.id) {
        cx.err("organisation.id", e.to_string());
    }
    let calendar = match Calendar::new(&org.timezone) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.err("organisation.timezone", e.to_string());
            None
        }
    };
    for (section, len) in [
        ("currency", doc.currencies.len()),
        ("rule", doc.rules.len()),
        ("campaign", doc.campaigns.len()),
        ("metric", doc.metrics.len()),
        ("streak", doc.streaks.len()),
        ("badge", doc.badges.len()),
        ("challenge", doc.challenges.len()),
        ("leaderboard", doc.leaderboards.len()),
    ] {
        if len > MAX_ITEMS {
            cx.err(section, format!("at most {MAX_ITEMS} entries, got {len}"));
        }
    }
    if doc.currencies.is_empty() {
        cx.err("currency", "define at least one currency");
    }
    if doc.currencies.len() > MAX_CURRENCIES {
        cx.err("currency", format!("at most {MAX_CURRENCIES} currencies, got {}", doc.currencies.len()));
    }
    cx.unique_ids("currency", doc.currencies.iter().map(|c| c.id.as_str()));
    cx.unique_ids("rule", doc.rules.iter().map(|c| c.id.as_str()));
    cx.unique_ids("campaign", doc.campaigns.iter().map(|c| c.id.as_str()));
    cx.unique_ids("badge", doc.badges.iter().map(|c| c.id.as_str()));
    cx.unique_ids("challenge", doc.challenges.iter().map(|c| c.id.as_str()));
    cx.unique_ids("leaderboard", doc.leaderboards.iter().map(|c| c.id.as_str()));
    // Currencies, metrics and streaks share one namespace: badges and boards name them.
    cx.unique_ids(
        "currency/metric/streak",
        doc.currencies
            .iter()
            .map(|c| c.id.as_str())
            .chain(doc.metrics.iter().map(|m| m.id.as_str()))
            .chain(doc.streaks.iter().map(|s| s.id.as_str())),
    );

    let currencies: Vec<Currency> = doc
        .currencies
        .iter()
        .map(|c| Currency { id: c.id.clone(), name: c.name.clone().unwrap_or_else(|| c.id.clone()) })
        .collect();

    let plugin_limits = plugin_limits(&mut cx, doc.plugins.as_ref());
    let insights = insight_settings(&mut cx, doc.insights.as_ref());
    cx.unique_ids("goal", doc.goals.iter().map(|g| g.id.as_str()));
    let goals = goals(&mut cx, doc);
    let guard = doc.guard.as_ref().map(|g| {
        let max_moments = match (g.max_moments, g.per) {
            (Some(n), Some(per)) if n > 0 => Some((n, window(per))),
            (Some(_), Some(_)) => {
                cx.err("guard.max_moments", "must be at least 1");
                None
            }
            (Some(_), None) => {
                cx.err("guard.per", "`max_moments` needs a window: hour, day, week or month");
                None
            }
            (None, Some(_)) => {
                cx.err("guard.max_moments", "`per` needs `max_moments`");
                None
            }
            (None, None) => None,
        };
        if max_moments.is_none() && g.min_gap_seconds.is_none() {
            cx.err("guard", "give `max_moments` with `per`, or `min_gap_seconds`, or both");
        }
        Guard { matcher: cx.matcher("guard.match", &g.matches, false), max_moments, min_gap_seconds: g.min_gap_seconds }
    });

    let mut campaigns_by_rule: Vec<Vec<Campaign>> = vec![Vec::new(); doc.rules.len()];
    for (i, c) in doc.campaigns.iter().enumerate() {
        let p = format!("campaign[{i}]");
        let from = cx.time(format!("{p}.from"), &c.from);
        let until = cx.time(format!("{p}.until"), &c.until);
        if from >= until {
            cx.err(format!("{p}.until"), "must be after `from`");
        }
        if !(c.multiplier.is_finite() && c.multiplier > 0.0 && c.multiplier <= 100.0) {
            cx.err(format!("{p}.multiplier"), "must be above 0 and at most 100");
        }
        let campaign = Campaign { from, until, multiplier: c.multiplier };
        if c.rules.is_empty() {
            campaigns_by_rule.iter_mut().for_each(|v| v.push(campaign));
        }
        for (j, r) in c.rules.iter().enumerate() {
            match doc.rules.iter().position(|x| &x.id == r) {
                Some(ix) => campaigns_by_rule[ix].push(campaign),
                None => cx.err(format!("{p}.rules[{j}]"), format!("unknown rule {r:?}")),
            }
        }
    }

    let mut capped_rules = 0u16;
    let mut rules = Vec::with_capacity(doc.rules.len());
    for (i, r) in doc.rules.iter().enumerate() {
        let p = format!("rule[{i}]");
        let matcher = cx.matcher(&format!("{p}.match"), &r.matches, true);
        if r.award.is_empty() {
            cx.err(format!("{p}.award"), "a rule needs at least one award");
        }
        let mut awards = Vec::new();
        for (j, a) in r.award.iter().enumerate() {
            let ap = format!("{p}.award[{j}]");
            let currency = cx.currency(&format!("{ap}.currency"), &a.currency, &currencies);
            if a.amount.is_none() && a.value_factor.is_none() {
                cx.err(format!("{ap}.amount"), "give `amount`, `value_factor` or both");
            }
            if a.amount.is_some_and(|x| x.unsigned_abs() > 1_000_000_000) {
                cx.err(format!("{ap}.amount"), "must be at most 10^9 in size");
            }
            if a.value_factor.is_some_and(|f| !f.is_finite() || f.abs() > 1e6) {
                cx.err(format!("{ap}.value_factor"), "must be a finite number of at most 10^6 in size");
            }
            if a.to == TargetDoc::Counterpart && !requires_counterpart(&r.matches) {
                cx.err(
                    format!("{ap}.to"),
                    "awards to the counterpart need a match that requires one (`has_counterpart = true`, `cross_team`, `counterpart_kind`, `counterpart_team`, or `first` = counterpart or team)",
                );
            }
            if let Some(currency) = currency {
                awards.push(AwardDef {
                    to: if a.to == TargetDoc::Actor { Target::Actor } else { Target::Counterpart },
                    currency,
                    amount: a.amount.unwrap_or(0),
                    value_factor: a.value_factor.unwrap_or(0.0),
                });
            }
        }
        let cap = r.cap.as_ref().map(|c| {
            if c.times.is_none() && c.points.is_none() {
                cx.err(format!("{p}.cap"), "give `times`, `points` or both");
            }
            if c.times == Some(0) || c.points.is_some_and(|x| x <= 0) {
                cx.err(format!("{p}.cap"), "limits must be at least 1");
            }
            Cap { times: c.times, points: c.points, per: window(c.per) }
        });
        let cap_slot = capped_rules;
        if cap.is_some() {
            capped_rules += 1;
        }
        if let Some(ch) = r.chance
            && !(ch > 0.0 && ch <= 1.0)
        {
            cx.err(format!("{p}.chance"), "must be above 0 and at most 1");
        }
        // Actor's awards first, each target's in the order given: the order they are applied in.
        awards.sort_by_key(|a| a.to == Target::Counterpart);
        rules.push(Rule {
            id: r.id.clone(),
            id_hash: r.id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)),
            description: r.description.clone(),
            matcher,
            awards,
            cap,
            cap_slot,
            chance: r.chance,
            campaigns: std::mem::take(&mut campaigns_by_rule[i]),
            paused: r.paused,
        });
    }

    let mut metrics = Vec::new();
    for (i, m) in doc.metrics.iter().enumerate() {
        let p = format!("metric[{i}]");
        let kind = match (&m.count, m.distinct) {
            (Some(c), None) => MetricKind::Count(cx.matcher(&format!("{p}.count"), c, true)),
            (None, Some(d)) => MetricKind::Distinct(match d {
                DistinctDoc::Counterparts => Distinct::Counterparts,
                DistinctDoc::Teams => Distinct::Teams,
                DistinctDoc::Channels => Distinct::Channels,
            }),
            _ => {
                cx.err(&p, "give exactly one of `count` or `distinct`");
                MetricKind::Distinct(Distinct::Channels)
            }
        };
        metrics.push(Metric { id: m.id.clone(), description: m.description.clone(), kind });
    }

    let mut streaks = Vec::new();
    for (i, s) in doc.streaks.iter().enumerate() {
        let p = format!("streak[{i}]");
        if s.grace > 30 {
            cx.err(format!("{p}.grace"), "at most 30 periods");
        }
        streaks.push(Streak {
            id: s.id.clone(),
            description: s.description.clone(),
            period: match s.period {
                StreakPeriodDoc::Day => Period::Day,
                StreakPeriodDoc::Week => Period::Week,
            },
            grace: s.grace,
            matcher: cx.matcher(&format!("{p}.match"), &s.matches, true),
        });
    }

    let metric_ref = |cx: &mut Ctx, path: String, name: &str| -> Option<MetricRef> {
        if let Some(c) = currencies.iter().position(|c| c.id == name) {
            return Some(MetricRef::Currency(c as CurrencyIx));
        }
        if let Some(m) = doc.metrics.iter().position(|m| m.id == name) {
            return Some(MetricRef::Metric(m as u16));
        }
        if let Some(s) = doc.streaks.iter().position(|s| s.id == name) {
            return Some(MetricRef::Streak(s as u16));
        }
        cx.err(path, format!("unknown metric {name:?}: name a currency, a metric or a streak"));
        None
    };

    let mut badges = Vec::new();
    for (i, b) in doc.badges.iter().enumerate() {
        let p = format!("badge[{i}]");
        let metric = b.metric.as_ref().and_then(|m| metric_ref(&mut cx, format!("{p}.metric"), m));
        let shapes =
            usize::from(b.threshold.is_some()) + usize::from(!b.tiers.is_empty()) + usize::from(b.every.is_some());
        let shape = match (b.threshold, b.tiers.is_empty(), b.every) {
            _ if b.metric.is_none() && shapes > 0 => {
                cx.err(&p, "a badge without `metric` is granted by challenges and takes no threshold, tiers or every");
                BadgeShape::Granted
            }
            _ if b.metric.is_none() => BadgeShape::Granted,
            _ if shapes != 1 => {
                cx.err(&p, "give exactly one of `threshold` (one-off), `tiers` (tiered) or `every` (repeatable)");
                BadgeShape::Granted
            }
            (Some(t), _, _) => BadgeShape::Once(t),
            (_, _, Some(e)) => {
                if e <= 0 {
                    cx.err(format!("{p}.every"), "must be at least 1");
                }
                BadgeShape::Every(e.max(1))
            }
            _ => {
                let mut tiers = Vec::new();
                for (j, t) in b.tiers.iter().enumerate() {
                    if j > 0 && t.at <= b.tiers[j - 1].at {
                        cx.err(format!("{p}.tiers[{j}].at"), "tiers must rise: each `at` above the one before");
                    }
                    let reward = cx.rewards(&format!("{p}.tiers[{j}].reward"), &t.reward, &currencies);
                    tiers.push(Tier { name: t.name.clone(), at: t.at, reward });
                }
                if tiers.len() > 16 {
                    cx.err(format!("{p}.tiers"), "at most 16 tiers");
                }
                BadgeShape::Tiers(tiers)
            }
        };
        if matches!(shape, BadgeShape::Tiers(_)) && !b.reward.is_empty() {
            cx.err(format!("{p}.reward"), "a tiered badge takes rewards per tier (`tiers[].reward`)");
        }
        let reward = cx.rewards(&format!("{p}.reward"), &b.reward, &currencies);
        // A repeatable badge on a currency that rewards the same currency would feed itself.
        if let (Some(MetricRef::Currency(c)), BadgeShape::Every(_)) = (metric, &shape)
            && reward.iter().any(|r| r.currency == c && r.amount > 0)
        {
            cx.err(format!("{p}.reward"), "a repeatable badge must not reward the currency it counts");
        }
        badges.push(Badge {
            id: b.id.clone(),
            name: b.name.clone().unwrap_or_else(|| b.id.clone()),
            metric,
            shape,
            reward,
        });
    }

    let levels = doc.levels.as_ref().and_then(|l| {
        let c = cx.currency("levels.currency", &l.currency, &currencies)?;
        if l.steps.is_empty() {
            cx.err("levels.steps", "give at least one level");
        }
        for (j, s) in l.steps.iter().enumerate() {
            if j > 0 && s.at <= l.steps[j - 1].at {
                cx.err(format!("levels.steps[{j}].at"), "levels must rise: each `at` above the one before");
            }
        }
        Some(Levels { currency: c, steps: l.steps.iter().map(|s| (s.name.clone(), s.at)).collect() })
    });

    let mut challenges = Vec::new();
    for (i, c) in doc.challenges.iter().enumerate() {
        let p = format!("challenge[{i}]");
        let window = match (c.window, &c.from, &c.until) {
            (Some(w), None, None) => ChallengeWindow::Recurring(window(w)),
            (None, Some(f), Some(u)) => {
                let from = cx.time(format!("{p}.from"), f);
                let until = cx.time(format!("{p}.until"), u);
                if from >= until {
                    cx.err(format!("{p}.until"), "must be after `from`");
                }
                ChallengeWindow::Fixed { from, until }
            }
            _ => {
                cx.err(&p, "give either `window` (day, week, month) or both `from` and `until`");
                ChallengeWindow::Fixed { from: 0, until: 0 }
            }
        };
        if c.window == Some(WindowDoc::Hour) {
            cx.err(format!("{p}.window"), "challenges run by day, week or month");
        }
        let goal = Goal {
            moments: c.goal.moments.unwrap_or(0),
            distinct_teams: c.goal.distinct_teams.unwrap_or(0),
            distinct_counterparts: c.goal.distinct_counterparts.unwrap_or(0),
        };
        if goal.moments == 0 && goal.distinct_teams == 0 && goal.distinct_counterparts == 0 {
            cx.err(
                format!("{p}.goal"),
                "give at least one of `moments`, `distinct_teams`, `distinct_counterparts` above 0",
            );
        }
        if c.scope == ScopeDoc::Team && (goal.distinct_teams > 0 || goal.distinct_counterparts > 0) {
            cx.err(format!("{p}.goal"), "team challenges count `moments` only");
        }
        let badge = c.badge.as_ref().and_then(|b| match doc.badges.iter().position(|x| &x.id == b) {
            Some(ix) if doc.badges[ix].metric.is_none() => Some(ix as u16),
            Some(_) => {
                cx.err(
                    format!("{p}.badge"),
                    format!("badge {b:?} has a metric; a challenge grants only badges without one"),
                );
                None
            }
            None => {
                cx.err(format!("{p}.badge"), format!("unknown badge {b:?}"));
                None
            }
        });
        challenges.push(Challenge {
            id: c.id.clone(),
            name: c.name.clone().unwrap_or_else(|| c.id.clone()),
            description: c.description.clone(),
            window,
            team: c.scope == ScopeDoc::Team,
            matcher: cx.matcher(&format!("{p}.match"), &c.matches, true),
            goal,
            reward: cx.rewards(&format!("{p}.reward"), &c.reward, &currencies),
            badge,
            paused: c.paused,
        });
    }

    let mut leaderboards = Vec::new();
    for (i, b) in doc.leaderboards.iter().enumerate() {
        let p = format!("leaderboard[{i}]");
        let Some(metric) = metric_ref(&mut cx, format!("{p}.metric"), &b.metric) else { continue };
        leaderboards.push(Leaderboard {
            id: b.id.clone(),
            name: b.name.clone().unwrap_or_else(|| b.id.clone()),
            metric,
            window: match b.window {
                BoardWindowDoc::All => None,
                BoardWindowDoc::Day => Some(Period::Day),
                BoardWindowDoc::Week => Some(Period::Week),
                BoardWindowDoc::Month => Some(Period::Month),
            },
            ties: match b.ties {
                TiesDoc::Shared => Ties::Shared,
                TiesDoc::Dense => Ties::Dense,
                TiesDoc::FirstCome => Ties::FirstCome,
            },
            teams: b.teams.map(|t| match t {
                TeamsDoc::Sum => TeamValue::Sum,
                TeamsDoc::Average => TeamValue::Average,
            }),
        });
    }

    if !cx.errors.is_empty() {
        return Err(RuleSetError::Invalid { origin: origin.to_string(), problems: cx.errors });
    }
    let Some(calendar) = calendar else { unreachable!("a bad time zone was reported above") };

    let mut w = Watchers {
        badges_by_currency: vec![Vec::new(); currencies.len()],
        badges_by_metric: vec![Vec::new(); metrics.len()],
        badges_by_streak: vec![Vec::new(); streaks.len()],
        boards_by_currency: vec![Vec::new(); currencies.len()],
        boards_by_metric: vec![Vec::new(); metrics.len()],
        boards_by_streak: vec![Vec::new(); streaks.len()],
    };
    for (i, b) in badges.iter().enumerate() {
        match b.metric {
            Some(MetricRef::Currency(c)) => w.badges_by_currency[c as usize].push(i as u16),
            Some(MetricRef::Metric(m)) => w.badges_by_metric[m as usize].push(i as u16),
            Some(MetricRef::Streak(s)) => w.badges_by_streak[s as usize].push(i as u16),
            None => {}
        }
    }
    for (i, b) in leaderboards.iter().enumerate() {
        match b.metric {
            MetricRef::Currency(c) => w.boards_by_currency[c as usize].push(i as u16),
            MetricRef::Metric(m) => w.boards_by_metric[m as usize].push(i as u16),
            MetricRef::Streak(s) => w.boards_by_streak[s as usize].push(i as u16),
        }
    }
    let uses_first = |m: &Matcher| m.first.is_some();
    let tracks_seen = rules.iter().any(|r| uses_first(&r.matcher))
        || metrics.iter().any(|m| {
            matches!(&m.kind, MetricKind::Distinct(_)) || matches!(&m.kind, MetricKind::Count(x) if uses_first(x))
        })
        || streaks.iter().any(|s| uses_first(&s.matcher))
        || challenges.iter().any(|c| uses_first(&c.matcher));
    let rules_by_kind = ByKind::new(rules.iter().map(|r| Some(&r.matcher)));
    let metrics_by_kind = ByKind::new(metrics.iter().map(|m| match &m.kind {
        MetricKind::Count(matcher) => Some(matcher),
        MetricKind::Distinct(_) => None,
    }));
    let streaks_by_kind = ByKind::new(streaks.iter().map(|s| Some(&s.matcher)));
    let challenges_by_kind = ByKind::new(challenges.iter().map(|c| Some(&c.matcher)));

    Ok(Program {
        org_id: org.id.clone(),
        org_name: org.name.clone().unwrap_or_else(|| org.id.clone()),
        timezone: org.timezone.clone(),
        calendar,
        seed: org.seed,
        currencies,
        guard,
        plugin_limits,
        insights,
        goals,
        rules,
        capped_rules,
        metrics,
        streaks,
        badges,
        levels,
        challenges,
        leaderboards,
        watchers: w,
        tracks_seen,
        rules_by_kind,
        metrics_by_kind,
        streaks_by_kind,
        challenges_by_kind,
    })
}

/// Most plugins an organisation may have installed at once (`[plugins] installed`).
pub const MAX_INSTALLED: usize = 32;

/// The `[plugins]` limits over the sandbox's defaults, each within a range that keeps the host safe.
fn plugin_limits(cx: &mut Ctx, doc: Option<&super::format::PluginLimitsDoc>) -> plaudit_sandbox::Limits {
    let mut limits = plaudit_sandbox::Limits::default();
    let Some(doc) = doc else { return limits };
    let mut check = |field: &str, value: Option<u64>, range: std::ops::RangeInclusive<u64>, scale: u64| {
        let v = value?;
        if range.contains(&v) {
            Some(v * scale)
        } else {
            cx.err(format!("plugins.{field}"), format!("must be {} to {}, got {v}", range.start(), range.end()));
            None
        }
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = check("fuel", doc.fuel, 10_000..=1_000_000_000, 1) {
        limits.fuel = v;
    }
    if let Some(v) = check("memory_mb", doc.memory_mb.map(u64::from), 1..=256, 1 << 20) {
        limits.memory_bytes = size(v);
    }
    if let Some(v) = check("installed", doc.installed.map(u64::from), 1..=MAX_INSTALLED as u64, 1) {
        limits.installed = size(v);
    }
    // Compiling takes tens to hundreds of bytes of memory per byte of wasm: 4 MB at most (what
    // the upload route's body limit lets through).
    if let Some(v) = check("module_kb", doc.module_kb.map(u64::from), 1..=4096, 1 << 10) {
        limits.module_bytes = size(v);
    }
    if let Some(v) = check("input_kb", doc.input_kb.map(u64::from), 1..=4096, 1 << 10) {
        limits.input_bytes = size(v);
    }
    if let Some(v) = check("output_kb", doc.output_kb.map(u64::from), 1..=1024, 1 << 10) {
        limits.output_bytes = size(v);
    }
    if let Some(v) = check("log_bytes", doc.log_bytes.map(u64::from), 0..=65_536, 1) {
        limits.log_bytes = size(v);
    }
    if let Some(v) = check("wall_clock_ms", doc.wall_clock_ms.map(u64::from), 10..=60_000, 1) {
        limits.wall_clock = std::time::Duration::from_millis(v);
    }
    limits
}

/// `[insights]` over its defaults.
fn insight_settings(cx: &mut Ctx, doc: Option<&InsightsDoc>) -> InsightSettings {
    let mut s = InsightSettings::default();
    let Some(doc) = doc else { return s };
    if let Some(w) = doc.champion_weeks {
        if (1..=26).contains(&w) {
            s.champion_weeks = w;
        } else {
            cx.err("insights.champion_weeks", format!("must be 1 to 26, got {w}"));
        }
    }
    if let Some(k) = doc.quiet_min_weeks {
        if (1..=8).contains(&k) {
            s.quiet_min_weeks = k;
        } else {
            cx.err("insights.quiet_min_weeks", format!("must be 1 to 8, got {k}"));
        }
    }
    if let Some(w) = &doc.weights {
        for (field, value, to) in [
            ("moments", w.moments, &mut s.weights.moments),
            ("counterparts", w.counterparts, &mut s.weights.counterparts),
            ("teams", w.teams, &mut s.weights.teams),
            ("channels", w.channels, &mut s.weights.channels),
        ] {
            match value {
                Some(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => *to = v,
                Some(v) => cx.err(format!("insights.weights.{field}"), format!("must be 0 to 1000, got {v}")),
                None => {}
            }
        }
    }
    s
}

/// `[[goal]]`s: each measure with the filters it takes, and nothing else.
fn goals(cx: &mut Ctx, doc: &RuleSetDoc) -> Vec<GoalDef> {
    if doc.goals.len() > MAX_ITEMS {
        cx.err("goal", format!("at most {MAX_ITEMS} entries, got {}", doc.goals.len()));
    }
    let mut out = Vec::with_capacity(doc.goals.len());
    for (i, g) in doc.goals.iter().enumerate() {
        let p = format!("goal[{i}]");
        if !(g.target.is_finite() && g.target >= 0.0) {
            cx.err(format!("{p}.target"), "must be a number, 0 or more");
        } else if g.measure == MeasureDoc::CompletionRate && g.target > 100.0 {
            cx.err(format!("{p}.target"), "a completion rate is a percentage: 0 to 100");
        }
        let filters: [(&str, &Option<String>); 6] = [
            ("kind", &g.kind),
            ("stakeholder_kind", &g.stakeholder_kind),
            ("team", &g.team),
            ("channel", &g.channel),
            ("currency", &g.currency),
            ("challenge", &g.challenge),
        ];
        let allowed: &[&str] = match g.measure {
            MeasureDoc::ActiveStakeholders => &["stakeholder_kind", "team"],
            MeasureDoc::Moments => &["kind", "stakeholder_kind", "team", "channel"],
            MeasureDoc::CrossTeamMoments => &["kind"],
            MeasureDoc::Points => &["currency"],
            MeasureDoc::CompletionRate => &["challenge"],
            MeasureDoc::NewStakeholders | MeasureDoc::Badges | MeasureDoc::Completions => &[],
        };
        for (field, value) in filters {
            match value {
                Some(_) if !allowed.contains(&field) => {
                    cx.err(format!("{p}.{field}"), "does not apply to this goal's measure");
                }
                Some(v) if v.is_empty() || v.len() > 64 => {
                    cx.err(format!("{p}.{field}"), "must be 1 to 64 characters");
                }
                _ => {}
            }
        }
        let text = |v: &Option<String>| v.clone();
        let measure = match g.measure {
            MeasureDoc::ActiveStakeholders => {
                Measure::ActiveStakeholders { stakeholder_kind: text(&g.stakeholder_kind), team: text(&g.team) }
            }
            MeasureDoc::Moments => Measure::Moments {
                kind: text(&g.kind),
                stakeholder_kind: text(&g.stakeholder_kind),
                team: text(&g.team),
                channel: text(&g.channel),
            },
            MeasureDoc::CrossTeamMoments => Measure::CrossTeamMoments { kind: text(&g.kind) },
            MeasureDoc::NewStakeholders => Measure::NewStakeholders,
            MeasureDoc::Badges => Measure::Badges,
            MeasureDoc::Completions => Measure::Completions,
            MeasureDoc::Points => match &g.currency {
                Some(c) if doc.currencies.iter().any(|x| &x.id == c) => Measure::Points { currency: c.clone() },
                Some(c) => {
                    cx.err(format!("{p}.currency"), format!("unknown currency {c:?}"));
                    Measure::Points { currency: c.clone() }
                }
                None => {
                    cx.err(format!("{p}.currency"), "measure \"points\" needs a currency");
                    Measure::Points { currency: String::new() }
                }
            },
            MeasureDoc::CompletionRate => match &g.challenge {
                Some(c) if doc.challenges.iter().any(|x| &x.id == c) => {
                    Measure::CompletionRate { challenge: c.clone() }
                }
                Some(c) => {
                    cx.err(format!("{p}.challenge"), format!("unknown challenge {c:?}"));
                    Measure::CompletionRate { challenge: c.clone() }
                }
                None => {
                    cx.err(format!("{p}.challenge"), "measure \"completion_rate\" needs a challenge");
                    Measure::CompletionRate { challenge: String::new() }
                }
            },
        };
        let name = g.name.clone().unwrap_or_else(|| g.id.clone());
        out.push(GoalDef { id: g.id.clone(), name, measure, target: g.target });
    }
    out
}
