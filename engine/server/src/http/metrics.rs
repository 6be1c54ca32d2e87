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
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        };
        counter(
            &mut out,
            "plaudit_records_accepted_total",
            "Records stored and scored.",
            self.accepted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "plaudit_records_duplicate_total",
            "Records that were duplicates (moment ids seen before, unchanged profiles).",
            self.duplicates.load(Ordering::Relaxed),
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
}

impl Gauges {
    fn render_limits(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str, lines: &[(String, String)]| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for (labels, value) in lines {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |value: usize| vec![(String::new(), value.to_string())];
        let (open, opening, unavailable) = self.organisations;
        gauge(
            out,
            "plaudit_organisations",
            "Organisations by state: open, opening (their log being replayed), unavailable (could not be opened).",
            &[
                ("{state=\"open\"}".into(), open.to_string()),
                ("{state=\"opening\"}".into(), opening.to_string()),
                ("{state=\"unavailable\"}".into(), unavailable.to_string()),
            ],
        );
        let (connections, limit, refused) = self.connections;
        gauge(out, "plaudit_connections_open", "HTTP connections open.", &one(connections));
        gauge(
            out,
            "plaudit_connections_limit",
            "Most HTTP connections open at once (limits.connections).",
            &one(limit),
        );
        let _ = write!(
            out,
            "# HELP plaudit_connections_refused_total Connections closed at once for the limit.\n# TYPE plaudit_connections_refused_total counter\nplaudit_connections_refused_total {refused}\n"
        );
        let by_org =
            |rows: &[(String, usize, u64)], pick: fn(&(String, usize, u64)) -> String| -> Vec<(String, String)> {
                rows.iter().map(|r| (format!("{{org=\"{}\"}}", r.0), pick(r))).collect()
            };
        gauge(
            out,
            "plaudit_requests_in_flight",
            "Requests being served, by organisation.",
            &by_org(&self.in_flight, |r| r.1.to_string()),
        );
        gauge(
            out,
            "plaudit_requests_in_flight_limit",
            "Most requests of one organisation served at once (limits.in_flight_per_org).",
            &one(self.in_flight_limit),
        );
        let _ = write!(
            out,
            "# HELP plaudit_requests_busy_total Requests refused 503 busy, by organisation.\n# TYPE plaudit_requests_busy_total counter\n"
        );
        for (org, _, refused) in &self.in_flight {
            let _ = writeln!(out, "plaudit_requests_busy_total{{org=\"{org}\"}} {refused}");
        }
        let j = &self.jobs;
        gauge(
            out,
            "plaudit_jobs_running",
            "Background jobs running (what-ifs, applications to history, plugin compiles).",
            &one(j.running),
        );
        gauge(out, "plaudit_jobs_limit", "Most background jobs running at once (limits.jobs).", &one(j.running_limit));
        gauge(out, "plaudit_jobs_memory_mib", "Memory the running jobs hold, as estimated.", &one(j.memory_mb));
        gauge(
            out,
            "plaudit_jobs_memory_limit_mib",
            "Memory the running jobs may hold together (limits.job_memory_mb).",
            &one(j.memory_limit_mb),
        );
        let waiting: Vec<(String, String)> =
            j.waiting.iter().map(|(org, n)| (format!("{{org=\"{org}\"}}"), n.to_string())).collect();
        gauge(out, "plaudit_jobs_waiting", "Background jobs waiting their organisation's turn.", &waiting);
        let (full, large) = self.jobs_refused;
        let _ = write!(
            out,
            "# HELP plaudit_jobs_refused_total Background jobs refused: a full queue (429), larger than the memory bound (503).\n# TYPE plaudit_jobs_refused_total counter\nplaudit_jobs_refused_total{{reason=\"queue_full\"}} {full}\nplaudit_jobs_refused_total{{reason=\"too_large\"}} {large}\n"
        );
        gauge(out, "plaudit_webhook_deliveries", "Webhook batches being posted.", &one(j.deliveries));
        gauge(
            out,
            "plaudit_webhook_deliveries_limit",
            "Most webhook batches posted at once (limits.webhook_deliveries).",
            &one(j.deliveries_limit),
        );
        let _ = write!(
            out,
            "# HELP plaudit_webhook_missed_effects_total Effects a webhook never got: its receiver was away longer than the feed keeps effects.\n# TYPE plaudit_webhook_missed_effects_total counter\n"
        );
        for (org, hook, missed) in &self.webhooks_missed {
            let _ = writeln!(out, "plaudit_webhook_missed_effects_total{{org=\"{org}\",webhook=\"{hook}\"}} {missed}");
        }
        let s = &self.sandbox;
        gauge(out, "plaudit_plugin_instances", "Plugin instances running (calls under way).", &one(s.instances));
        gauge(
            out,
            "plaudit_plugin_instances_limit",
            "Most plugin instances at once; a call waits for a free one.",
            &one(s.instance_capacity),
        );
        gauge(out, "plaudit_plugin_compiles", "Plugin modules being compiled.", &one(s.compiling));
        gauge(
            out,
            "plaudit_plugin_compiles_limit",
            "Most modules compiled at once; a compile waits its turn.",
            &one(s.compile_capacity),
        );
    }
}
