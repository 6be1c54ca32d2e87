//! `GET /metrics`: Prometheus text exposition of what the server did: requests by route and
//! status class with a latency histogram, records accepted and duplicated, store commit times,
//! the time organisations spent in each step of ingestion (check, commit, score, render),
//! each organisation's plugin calls and failures, and every limit that keeps one tenant from
//! hurting another, with its use and its refusals ([`Gauges`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Debug, Default)]
struct Route {
    /// Requests by status class (2xx, 4xx, 5xx, other).
    by_class: [u64; 4],
    /// Cumulative per bucket, then +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    seconds: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Route>>,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    /// Every organisation's commits and ingestion steps.
    pub ingest: std::sync::Arc<crate::organisation::IngestTimes>,
}

impl Metrics {
    /// Records one request to `route` that answered `status` after `took`.
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = routes.entry(route.to_string()).or_default();
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => 3,
        };
        r.by_class[class] += 1;
        let secs = took.as_secs_f64();
        r.seconds += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                r.buckets[i] += 1;
            }
        }
        r.buckets[BUCKETS.len()] += 1;
    }

    /// The exposition text, with the gauges read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let plugins = &gauges.plugins;
        let mut out = String::new();
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP plaudit_http_requests_total HTTP requests by route and status class.\n");
        out.push_str("# TYPE plaudit_http_requests_total counter\n");
        for (route, r) in routes.iter() {
            for (i, class) in ["2xx", "4xx", "5xx", "other"].iter().enumerate() {
                if r.by_class[i] > 0 {
                    let _ = writeln!(
                        out,
                        "plaudit_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {}",
                        r.by_class[i]
                    );
                }
            }
        }
        out.push_str("# HELP plaudit_http_request_seconds Time to answer, by route.\n");
        out.push_str("# TYPE plaudit_http_request_seconds histogram\n");
        for (route, r) in routes.iter() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "plaudit_http_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    r.buckets[i]
                );
            }
            let total = r.buckets[BUCKETS.len()];
            let _ = writeln!(out, "plaudit_http_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}");
            let _ = writeln!(out, "plaudit_http_request_seconds_sum{{route=\"{route}\"}} {}", r.seconds);
            let _ = writeln!(out, "plaudit_http_request_seconds_count{{route=\"{route}\"}} {total}");
        }
        drop(routes);
        family(
            &mut out,
            "plaudit_records_accepted_total",
            "counter",
            "Records stored and scored.",
            one(self.accepted.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "plaudit_records_duplicate_total",
            "counter",
            "Records that were duplicates (moment ids seen before, unchanged profiles).",
            one(self.duplicates.load(Ordering::Relaxed)),
        );
        out.push_str(
            "# HELP plaudit_store_commit_seconds Time of each durable commit of records to the log (fsync included).\n",
        );
        out.push_str("# TYPE plaudit_store_commit_seconds histogram\n");
        let (counts, sum) = self.ingest.cumulative();
        for (bound, count) in crate::organisation::COMMIT_BUCKETS.iter().zip(&counts) {
            let _ = writeln!(out, "plaudit_store_commit_seconds_bucket{{le=\"{bound}\"}} {count}");
        }
        let total = counts.last().copied().unwrap_or(0);
        let _ = writeln!(out, "plaudit_store_commit_seconds_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "plaudit_store_commit_seconds_sum {sum}");
        let _ = writeln!(out, "plaudit_store_commit_seconds_count {total}");
        out.push_str(
            "# HELP plaudit_ingest_seconds_total Time organisations' workers spent ingesting records, by step \
             (resolve: checks, duplicates, ids; commit: waiting for their commit, which runs while they are scored; \
             score; render).\n",
        );
        out.push_str("# TYPE plaudit_ingest_seconds_total counter\n");
        for (step, seconds) in crate::organisation::INGEST_STEPS.iter().zip(self.ingest.steps()) {
            let _ = writeln!(out, "plaudit_ingest_seconds_total{{step=\"{step}\"}} {seconds}");
        }
        out.push_str("# HELP plaudit_plugin_calls_total Plugin calls, by organisation, plugin and result.\n");
        out.push_str("# TYPE plaudit_plugin_calls_total counter\n");
        for (org, plugin, calls, failed, _) in plugins {
            let ok = calls.saturating_sub(*failed);
            let _ = writeln!(out, "plaudit_plugin_calls_total{{org=\"{org}\",plugin=\"{plugin}\",result=\"ok\"}} {ok}");
            let _ = writeln!(
                out,
                "plaudit_plugin_calls_total{{org=\"{org}\",plugin=\"{plugin}\",result=\"failed\"}} {failed}"
            );
        }
        out.push_str("# HELP plaudit_plugin_moments_total Moments handled by plugin calls that succeeded.\n");
        out.push_str("# TYPE plaudit_plugin_moments_total counter\n");
        for (org, plugin, _, _, moments) in plugins {
            let _ = writeln!(out, "plaudit_plugin_moments_total{{org=\"{org}\",plugin=\"{plugin}\"}} {moments}");
        }
        gauges.render_limits(&mut out);
        gauges.render_quotas(&mut out);
        out
    }
}

/// What is held now, read when `/metrics` is asked for.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (organisation, plugin, calls, failed calls, moments).
    pub plugins: Vec<(String, String, u64, u64, u64)>,
    /// Organisations open, opening, unavailable.
    pub organisations: (usize, usize, usize),
    /// Per organisation: requests in flight and requests refused for being over the limit.
    pub in_flight: Vec<(String, usize, u64)>,
    pub in_flight_limit: usize,
    /// (organisation, webhook, effects it missed: its receiver was away longer than the feed
    /// keeps them).
    pub webhooks_missed: Vec<(String, String, u64)>,
    pub jobs: super::budget::JobsUsage,
    /// Jobs refused for a full queue, for being larger than the memory bound.
    pub jobs_refused: (u64, u64),
    pub sandbox: plaudit_sandbox::SandboxUsage,
    /// Connections open, their limit, and connections refused at the limit.
    pub connections: (usize, usize, u64),
    /// Each open organisation's quotas, their use and refusals.
    pub quotas: Vec<OrgQuotaGauges>,
}

/// One organisation's quotas for `/metrics`.
#[derive(Debug, Default)]
pub struct OrgQuotaGauges {
    pub org: String,
    pub limits: super::quotas::Values,
    /// Stakeholders held (`None`: its worker did not answer).
    pub stakeholders: Option<u64>,
    pub stored_bytes: u64,
    /// Per [`super::quotas::Quota::ALL`].
    pub refused: [u64; 4],
}

impl Gauges {
    fn render_quotas(&self, out: &mut String) {
        let labels = |org: &str, quota: &str| format!("{{org=\"{org}\",quota=\"{quota}\"}}");
        family(
            out,
            "plaudit_quota_limit",
            "gauge",
            "Each organisation's quotas in force (PUT /v1/orgs/{org}/limits, or the [quotas] defaults).",
            self.quotas.iter().flat_map(|q| {
                [
                    ("records_per_second", q.limits.records_per_second),
                    ("records_burst", q.limits.records_burst),
                    ("stakeholders", q.limits.stakeholders),
                    ("stored_bytes", q.limits.stored_bytes),
                    ("moment_max_age_seconds", q.limits.moment_max_age_seconds),
                    ("moment_max_ahead_seconds", q.limits.moment_max_ahead_seconds),
                ]
                .map(|(quota, n)| (labels(&q.org, quota), n))
            }),
        );
        family(
            out,
            "plaudit_quota_used",
            "gauge",
            "What each organisation holds of its quotas: stakeholders, bytes its log and newest snapshot take.",
            self.quotas.iter().flat_map(|q| {
                let stakeholders = q.stakeholders.map(|n| (labels(&q.org, "stakeholders"), n));
                stakeholders.into_iter().chain([(labels(&q.org, "stored_bytes"), q.stored_bytes)])
            }),
        );
        family(
            out,
            "plaudit_quota_refused_total",
            "counter",
            "Refusals per organisation and quota: requests (records_per_second 429, stored_bytes 507), records (stakeholders, moment_dates).",
            self.quotas.iter().flat_map(|q| {
                super::quotas::Quota::ALL.map(|quota| (labels(&q.org, quota.name()), q.refused[quota as usize]))
            }),
        );
    }

    fn render_limits(&self, out: &mut String) {
        let (open, opening, unavailable) = self.organisations;
        family(
            out,
            "plaudit_organisations",
            "gauge",
            "Organisations by state: open, opening (their log being replayed), unavailable (could not be opened).",
            [("open", open), ("opening", opening), ("unavailable", unavailable)]
                .map(|(state, n)| (format!("{{state=\"{state}\"}}"), n)),
        );
        let (connections, limit, refused) = self.connections;
        family(out, "plaudit_connections_open", "gauge", "HTTP connections open.", one(connections));
        family(
            out,
            "plaudit_connections_limit",
            "gauge",
            "Most HTTP connections open at once (limits.connections).",
            one(limit),
        );
        family(
            out,
            "plaudit_connections_refused_total",
            "counter",
            "Connections closed at once for the limit.",
            one(refused),
        );
        family(
            out,
            "plaudit_requests_in_flight",
            "gauge",
            "Requests being served, by organisation.",
            self.in_flight.iter().map(|(org, n, _)| (by_org(org), n)),
        );
        family(
            out,
            "plaudit_requests_in_flight_limit",
            "gauge",
            "Most requests of one organisation served at once (limits.in_flight_per_org).",
            one(self.in_flight_limit),
        );
        family(
            out,
            "plaudit_requests_busy_total",
            "counter",
            "Requests refused 503 busy, by organisation.",
            self.in_flight.iter().map(|(org, _, refused)| (by_org(org), refused)),
        );
        let j = &self.jobs;
        family(
            out,
            "plaudit_jobs_running",
            "gauge",
            "Background jobs running (what-ifs, applications to history, plugin compiles).",
            one(j.running),
        );
        family(
            out,
            "plaudit_jobs_limit",
            "gauge",
            "Most background jobs running at once (limits.jobs).",
            one(j.running_limit),
        );
        family(
            out,
            "plaudit_jobs_memory_mib",
            "gauge",
            "Memory the running jobs hold, as estimated.",
            one(j.memory_mb),
        );
        family(
            out,
            "plaudit_jobs_memory_limit_mib",
            "gauge",
            "Memory the running jobs may hold together (limits.job_memory_mb).",
            one(j.memory_limit_mb),
        );
        family(
            out,
            "plaudit_jobs_waiting",
            "gauge",
            "Background jobs waiting their organisation's turn.",
            j.waiting.iter().map(|(org, n)| (by_org(org), n)),
        );
        let (full, large) = self.jobs_refused;
        family(
            out,
            "plaudit_jobs_refused_total",
            "counter",
            "Background jobs refused: a full queue (429), larger than the memory bound (503).",
            [("queue_full", full), ("too_large", large)].map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n)),
        );
        family(out, "plaudit_webhook_deliveries", "gauge", "Webhook batches being posted.", one(j.deliveries));
        family(
            out,
            "plaudit_webhook_deliveries_limit",
            "gauge",
            "Most webhook batches posted at once (limits.webhook_deliveries).",
            one(j.deliveries_limit),
        );
        family(
            out,
            "plaudit_webhook_missed_effects_total",
            "counter",
            "Effects a webhook never got: its receiver was away longer than the feed keeps effects.",
            self.webhooks_missed
                .iter()
                .map(|(org, hook, missed)| (format!("{{org=\"{org}\",webhook=\"{hook}\"}}"), missed)),
        );
        let s = &self.sandbox;
        family(
            out,
            "plaudit_plugin_instances",
            "gauge",
            "Plugin instances running (calls under way).",
            one(s.instances),
        );
        family(
            out,
            "plaudit_plugin_instances_limit",
            "gauge",
            "Most plugin instances at once; a call waits for a free one.",
            one(s.instance_capacity),
        );
        family(out, "plaudit_plugin_compiles", "gauge", "Plugin modules being compiled.", one(s.compiling));
        family(
            out,
            "plaudit_plugin_compiles_limit",
            "gauge",
            "Most modules compiled at once; a compile waits its turn.",
            one(s.compile_capacity),
        );
    }
}

/// One metric family: its HELP and TYPE lines, then a sample per (labels, value).
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A family's one sample, without labels.
fn one<V: std::fmt::Display>(value: V) -> [(String, V); 1] {
    [(String::new(), value)]
}

/// The labels of an organisation's sample.
fn by_org(org: &str) -> String {
    format!("{{org=\"{org}\"}}")
}
