//! `GET /metrics`: Prometheus text exposition of what the server did: requests by route and
//! status class with a latency histogram, records accepted and duplicated, store commit times,
//! the time organisations spent in each step of ingestion (check, commit, score, render),
//! and each organisation's plugin calls and failures.

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
    pub ingest: std::sync::Arc<crate::log::IngestTimes>,
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

    /// The exposition text; `plugins` are (organisation, plugin, calls, failed calls, moments).
    pub fn render(&self, plugins: &[(String, String, u64, u64, u64)]) -> String {
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
        for (bound, count) in crate::log::COMMIT_BUCKETS.iter().zip(&counts) {
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
        for (step, seconds) in crate::log::INGEST_STEPS.iter().zip(self.ingest.steps()) {
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
        out
    }
}
