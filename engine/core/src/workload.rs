//! A synthetic, reproducible workload: a stakeholder population (kinds, teams) and a stream of
//! contact moments whose actors and counterparts follow a Zipf law (a few very active people,
//! a long tail), with realistic kinds, channels, values and attributes, in time order.
//!
//! Used by the bench, the tests and `plaudit gen`. The same spec and seed give the same
//! records, byte for byte.

use plaudit_sdk::{Attrs, Moment, Record, Stakeholder, Value};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub stakeholders: usize,
    pub moments: usize,
    pub seed: u64,
    /// Unix seconds of the first moment.
    pub start: i64,
    /// Days the moments spread over.
    pub days: u32,
    /// Zipf exponent of actor activity (1.0 is classic Zipf).
    pub skew: f64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            stakeholders: 1000,
            moments: 10_000,
            seed: 1,
            start: 1_772_323_200, // 2026-03-01T00:00:00Z
            days: 28,
            skew: 1.0,
        }
    }
}

const DEPARTMENTS: [&str; 8] =
    ["sales", "support", "engineering", "marketing", "finance", "hr", "operations", "product"];
const REGIONS: [&str; 3] = ["emea", "amer", "apac"];

/// (kind, channels, weight, counterpart probability)
const KINDS: [(&str, &[&str], u32, f64); 8] = [
    ("answer", &["forum", "chat", "email"], 30, 0.8),
    ("post", &["forum"], 20, 0.1),
    ("meetup", &["event"], 12, 0.6),
    ("share", &["social"], 12, 0.0),
    ("introduction", &["chat", "email", "event"], 8, 1.0),
    ("review", &["forum", "web"], 7, 0.0),
    ("referral", &["email", "web"], 5, 0.7),
    ("feedback", &["event", "email"], 6, 0.3),
];

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..n.max(1))
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                acc
            })
            .collect();
        let total = acc;
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl rand::Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The workload: profiles first, then moments.
#[derive(Debug, Clone)]
pub struct Workload {
    spec: Spec,
    zipf: Zipf,
    /// A permutation so that the most active stakeholders are spread over kinds and teams.
    order: Vec<u32>,
}

impl Workload {
    pub fn new(spec: Spec) -> Workload {
        let n = spec.stakeholders.max(2);
        let mut rng = Pcg64Mcg::seed_from_u64(spec.seed ^ 0x5EED);
        let mut order: Vec<u32> = (0..n as u32).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        Workload { zipf: Zipf::new(n, spec.skew), order, spec: Spec { stakeholders: n, ..spec } }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn stakeholder_id(i: usize) -> String {
        format!("s{i}")
    }

    /// The profile of stakeholder `i`: its kind and team follow from `i`.
    pub fn profile(&self, i: usize) -> Stakeholder {
        let mut rng = Pcg64Mcg::seed_from_u64(self.spec.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let roll: u32 = rng.random_range(0..100);
        let (kind, team) = match roll {
            0..40 => ("customer", format!("customers-{}", REGIONS[rng.random_range(0..REGIONS.len())])),
            40..70 => ("employee", DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string()),
            70..82 => ("partner", "partners".to_string()),
            82..90 => ("supplier", "suppliers".to_string()),
            90..95 => ("contractor", DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string()),
            _ => ("community", "community".to_string()),
        };
        Stakeholder {
            id: Self::stakeholder_id(i),
            kind: kind.to_string(),
            team: Some(team),
            name: None,
            attrs: Attrs::new(),
        }
    }

    pub fn profiles(&self) -> impl Iterator<Item = Stakeholder> + '_ {
        (0..self.spec.stakeholders).map(|i| self.profile(i))
    }

    /// Moments `from..to` of the stream (each one depends only on its index).
    pub fn moments(&self, from: usize, to: usize) -> impl Iterator<Item = Moment> + '_ {
        (from..to).map(|i| self.moment(i))
    }

    /// Moment `i` of the stream. Times rise with `i`; ids are `m{i}`.
    pub fn moment(&self, i: usize) -> Moment {
        let spec = &self.spec;
        let mut rng = Pcg64Mcg::seed_from_u64(spec.seed.wrapping_add((i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)));
        let actor = self.order[self.zipf.sample(&mut rng)] as usize;
        let total: u32 = KINDS.iter().map(|k| k.2).sum();
        let mut pick = rng.random_range(0..total);
        let &(kind, channels, _, cp_chance) = KINDS
            .iter()
            .find(|k| {
                if pick < k.2 {
                    true
                } else {
                    pick -= k.2;
                    false
                }
            })
            .unwrap_or(&KINDS[0]);
        let channel = channels[rng.random_range(0..channels.len())];
        let counterpart = rng.random_bool(cp_chance).then(|| {
            let mut c = self.order[self.zipf.sample(&mut rng)] as usize;
            if c == actor {
                c = (c + 1) % spec.stakeholders;
            }
            Self::stakeholder_id(c)
        });
        let span = i64::from(spec.days.max(1)) * 86_400;
        let at = spec.start + (i as i64 * span) / spec.moments.max(1) as i64;
        let mut attrs = Attrs::new();
        let mut value = None;
        match kind {
            "answer" => {
                attrs.insert("accepted".to_string(), Value::Bool(rng.random_bool(0.3)));
                if rng.random_bool(0.5) {
                    value = Some(f64::from(rng.random_range(1..=5u8)));
                }
            }
            "review" => {
                attrs.insert("words".to_string(), Value::Int(rng.random_range(20..600)));
            }
            _ => {}
        }
        Moment {
            id: format!("m{i}"),
            stakeholder: Self::stakeholder_id(actor),
            counterpart,
            kind: kind.to_string(),
            channel: channel.to_string(),
            at: format_rfc3339(at),
            value,
            attrs,
        }
    }

    /// Every record: the profiles, then the moments.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.profiles().map(Record::Profile).chain(self.moments(0, self.spec.moments).map(Record::Moment))
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::calendar::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records() {
        let a = Workload::new(Spec { stakeholders: 50, moments: 200, ..Spec::default() });
        let b = Workload::new(Spec { stakeholders: 50, moments: 200, ..Spec::default() });
        assert_eq!(a.records().collect::<Vec<_>>(), b.records().collect::<Vec<_>>());
    }

    #[test]
    fn actors_are_skewed() {
        let w = Workload::new(Spec { stakeholders: 1000, moments: 20_000, ..Spec::default() });
        let mut counts = std::collections::HashMap::<String, usize>::new();
        for m in w.moments(0, 20_000) {
            *counts.entry(m.stakeholder).or_default() += 1;
        }
        let mut v: Vec<usize> = counts.into_values().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        // Zipf(1) over 1000: the top stakeholder has ~13% of the moments, the top 10 ~39%.
        assert!(v[0] > 20_000 / 20, "top actor has {}", v[0]);
        assert!(v[..10].iter().sum::<usize>() > 20_000 / 4);
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_772_323_200), "2026-03-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
