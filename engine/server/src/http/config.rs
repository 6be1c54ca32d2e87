//! The server's configuration: a TOML file (`plaudit serve --config FILE`), environment
//! variables over it, command-line flags over both.
//!
//! ```toml
//! data = "data"                  # the data directory (PLAUDIT_DATA)
//! store = "postgres://user:password@host:5432/plaudit"  # the log's store (PLAUDIT_STORE): a PostgreSQL
//!                                # database; unset, the embedded store in the data directory (plaudit.redb).
//!                                # Webhooks and everything else stay in the data directory either way.
//! listen = "127.0.0.1:8080"      # the address to serve on (PLAUDIT_LISTEN)
//! admin_key = "..."              # allows POST /v1/orgs (PLAUDIT_ADMIN_KEY); none: creation is off
//! effects_kept = 100000          # effects kept per organisation for the feed and its stream
//! snapshot_every = 1000000       # records between snapshots of an organisation (0: never)
//! log = "info"                   # what to log, as a tracing filter: "info", "plaudit_server=debug" (PLAUDIT_LOG)
//! log_format = "text"            # or "json": one JSON object a line, on stderr
//!
//! [rate_limit]                   # per API key; omit the section for no limit
//! requests_per_second = 2000
//! burst = 4000
//!
//! webhook_hosts = []             # hosts webhooks may reach although internal (dev, tests); PLAUDIT_WEBHOOK_HOSTS="a,b"
//!
//! [limits]                       # what no tenant may take from the others; these are the defaults
//! connections = 4096             # open connections (also at most the file limit less 128)
//! header_timeout_ms = 10000      # a new connection's first request head, or one begun, to arrive whole
//! body_timeout_ms = 30000        # the longest pause while a body arrives
//! idle_timeout_ms = 60000        # a kept-alive connection waiting for its next request
//! request_timeout_ms = 60000     # to answer a request, its body included (event streams, what-ifs excepted)
//! in_flight_per_org = 256        # one organisation's requests being served at once
//! jobs = 2                       # what-ifs, applications to history and plugin compiles running at once
//! jobs_waiting_per_org = 4       # one organisation's jobs waiting their turn (one runs at a time)
//! job_memory_mb = 4096           # memory the running jobs may hold together (estimated)
//! webhook_deliveries = 64        # webhook posts under way at once, all organisations together
//!
//! [quotas]                       # each organisation's, unless the admin sets its own (PUT /v1/orgs/{org}/limits); the defaults
//! records_per_second = 10000     # records (moments, profiles, retractions) taken a second: 429 quota_exceeded with Retry-After beyond
//! records_burst = 20000          # records taken at once after a quiet spell (at least 1000, a batch's most)
//! stakeholders = 10000000        # stakeholders held: a record creating one beyond is refused alone (quota_exceeded)
//! stored_bytes = 68719476736     # bytes its log and newest snapshot take in the store (64 GiB): writes answer 507 beyond
//!
//! [cluster]                      # several nodes on one PostgreSQL store; omit the section for one server
//! node = "n1"                    # this node's name, unique in the cluster (PLAUDIT_NODE: setting it turns clustering on)
//! advertise = "http://10.0.0.5:8080"  # how the other nodes reach this one (PLAUDIT_ADVERTISE); default http://<listen>
//! lease_ms = 3000                # an organisation's lease: a dead owner's organisations move after this (PLAUDIT_LEASE_MS)
//!
//! [moments]                      # the dates a moment may have when it arrives over HTTP (never checked on replay or import)
//! max_age_seconds = 7776000      # how old (90 days) before the server's clock at receipt: older is 422 too_old naming `at`
//! max_ahead_seconds = 300        # how far ahead of it (5 minutes): later is 422 too_far_ahead naming `at`
//! ```
//!
//! **Owns** reading and checking the configuration; unknown keys are refused, naming the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Per-key request rate: a token bucket refilled at `requests_per_second`, holding `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
}

/// What no tenant may take from the others: connections and their timeouts, requests in flight,
/// background jobs (what-ifs, applications to history, plugin compiles) and their memory,
/// webhook deliveries. Each has a default and a ceiling (checked at start), a clear refusal when
/// reached, and a line in `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub connections: usize,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub in_flight_per_org: usize,
    pub jobs: usize,
    pub jobs_waiting_per_org: usize,
    pub job_memory_mb: usize,
    pub webhook_deliveries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 4096,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 60_000,
            in_flight_per_org: 256,
            jobs: 2,
            jobs_waiting_per_org: 4,
            job_memory_mb: 4096,
            webhook_deliveries: 64,
        }
    }
}

impl Limits {
    /// Each limit within its range (name, value, least, most).
    fn check(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 10] = [
            ("connections", self.connections as u64, 16, 1_000_000),
            ("header_timeout_ms", self.header_timeout_ms, 100, 600_000),
            ("body_timeout_ms", self.body_timeout_ms, 100, 3_600_000),
            ("idle_timeout_ms", self.idle_timeout_ms, 100, 3_600_000),
            ("request_timeout_ms", self.request_timeout_ms, 100, 3_600_000),
            ("in_flight_per_org", self.in_flight_per_org as u64, 1, 1_000_000),
            ("jobs", self.jobs as u64, 1, 256),
            ("jobs_waiting_per_org", self.jobs_waiting_per_org as u64, 0, 1024),
            ("job_memory_mb", self.job_memory_mb as u64, 64, 1 << 20),
            ("webhook_deliveries", self.webhook_deliveries as u64, 1, 400),
        ];
        for (name, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return Err(format!("limits.{name}: must be {least} to {most}, got {value}"));
            }
        }
        Ok(())
    }
}

/// What each organisation may hold and send, unless the admin sets its own values
/// (`crate::http::quotas`): the server-wide defaults of the `[quotas]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub records_per_second: u64,
    pub records_burst: u64,
    pub stakeholders: u64,
    pub stored_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { records_per_second: 10_000, records_burst: 20_000, stakeholders: 10_000_000, stored_bytes: 64 << 30 }
    }
}

/// The dates a moment arriving over HTTP may have, around the server's clock when it is
/// received: the server-wide defaults of the `[moments]` section (per organisation:
/// `crate::http::quotas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Moments {
    pub max_age_seconds: u64,
    pub max_ahead_seconds: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { max_age_seconds: 90 * 86_400, max_ahead_seconds: 300 }
    }
}

/// Several `plaudit serve` nodes sharing one PostgreSQL store (`crate::http::cluster`): this
/// node's name, the address the others reach it at, the leases' time to live.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    pub node: String,
    /// `http://host:port`; empty: `http://` and the address served on.
    pub advertise: String,
    pub lease_ms: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster { node: String::new(), advertise: String::new(), lease_ms: 3_000 }
    }
}

/// Records between snapshots when not configured: at replay speed, a restart then replays at
/// most a few seconds of log.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000_000;

/// Everything `plaudit serve` needs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub data: PathBuf,
    /// The store of the logs: a `postgres://` URL, or `None` for the embedded store in `data`.
    pub store: Option<String>,
    pub listen: String,
    pub admin_key: Option<String>,
    pub effects_kept: usize,
    /// Records an organisation accepts between two snapshots of its world; 0 for none.
    pub snapshot_every: u64,
    pub rate_limit: Option<RateLimit>,
    pub limits: Limits,
    pub quotas: Quotas,
    pub moments: Moments,
    /// Set (a node name) to run as a node of a cluster; `None`: one server.
    pub cluster: Option<Cluster>,
    /// Hosts webhooks may be delivered to although they resolve to a loopback, private,
    /// link-local or otherwise internal address (refused by default): for development and
    /// tests, say `["127.0.0.1", "localhost"]`.
    pub webhook_hosts: Vec<String>,
    /// A `tracing` filter directive (the binary, which sets up the logs, checks it).
    pub log: String,
    pub log_format: LogFormat,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data: PathBuf::from("data"),
            store: None,
            listen: "127.0.0.1:8080".to_string(),
            admin_key: None,
            effects_kept: crate::feed::DEFAULT_CAPACITY,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            rate_limit: None,
            limits: Limits::default(),
            quotas: Quotas::default(),
            moments: Moments::default(),
            cluster: None,
            webhook_hosts: Vec::new(),
            log: "info".to_string(),
            log_format: LogFormat::Text,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ServerConfig {
    /// The file at `path` (defaults if `None`), then the environment (`env` looks a variable
    /// up: `std::env::var` in the binary), checked.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<ServerConfig, ConfigError> {
        let origin = path.map_or_else(|| PathBuf::from("(defaults)"), Path::to_path_buf);
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                let de = toml::Deserializer::parse(&text)
                    .map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
                serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("{}: {}", e.path(), e.inner().message()),
                })?
            }
            None => ServerConfig::default(),
        };
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(data) = var("PLAUDIT_DATA") {
            config.data = PathBuf::from(data);
        }
        if let Some(store) = var("PLAUDIT_STORE") {
            config.store = Some(store);
        }
        if let Some(listen) = var("PLAUDIT_LISTEN") {
            config.listen = listen;
        }
        if let Some(key) = var("PLAUDIT_ADMIN_KEY") {
            config.admin_key = Some(key);
        }
        if let Some(log) = var("PLAUDIT_LOG") {
            config.log = log;
        }
        if let Some(node) = var("PLAUDIT_NODE") {
            config.cluster.get_or_insert_with(Cluster::default).node = node;
        }
        if let Some(advertise) = var("PLAUDIT_ADVERTISE") {
            config.cluster.get_or_insert_with(Cluster::default).advertise = advertise;
        }
        if let Some(lease) = var("PLAUDIT_LEASE_MS") {
            let lease = lease.trim().parse().map_err(|_| ConfigError::Invalid {
                path: origin.clone(),
                message: format!("PLAUDIT_LEASE_MS: {lease:?} is no number of milliseconds"),
            })?;
            config.cluster.get_or_insert_with(Cluster::default).lease_ms = lease;
        }
        if let Some(hosts) = var("PLAUDIT_WEBHOOK_HOSTS") {
            config.webhook_hosts = hosts.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
        }
        config.check().map_err(|message| ConfigError::Invalid { path: origin, message })?;
        Ok(config)
    }

    /// The values no server can run with.
    pub fn check(&self) -> Result<(), String> {
        if let Some(store) = &self.store
            && !plaudit_store::is_postgres_url(store.trim())
        {
            return Err(format!("store: {:?} is no postgres:// URL", plaudit_store::redacted(store)));
        }
        if let Some(cluster) = &self.cluster {
            cluster.check(self.store.as_deref())?;
        }
        if self.admin_key.as_ref().is_some_and(|k| k.trim().len() < 16) {
            return Err("admin_key: at least 16 characters".to_string());
        }
        if self.effects_kept == 0 {
            return Err("effects_kept: at least 1".to_string());
        }
        if let Some(r) = self.rate_limit
            && (!(r.requests_per_second > 0.0 && r.requests_per_second.is_finite()) || r.burst == 0)
        {
            return Err("rate_limit: requests_per_second must be positive and burst at least 1".to_string());
        }
        super::quotas::Values::defaults(self).check().map_err(|(field, why)| match field.strip_prefix("moment_") {
            Some(key) => format!("moments.{key}: {why}"),
            None => format!("quotas.{field}: {why}"),
        })?;
        self.limits.check()
    }
}

impl Cluster {
    /// A node name (what an organisation id may be: letters, digits, `-`, `_`), a PostgreSQL
    /// store, an `http://` address, a lease of 500 ms to 10 minutes.
    fn check(&self, store: Option<&str>) -> Result<(), String> {
        if self.node.is_empty() {
            return Err("cluster.node: a node of a cluster needs a name (PLAUDIT_NODE); without one, \
                 leave out [cluster], PLAUDIT_ADVERTISE and PLAUDIT_LEASE_MS"
                .into());
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.node.is_empty() || self.node.len() > 64 || !self.node.chars().all(name_ok) {
            return Err(format!("cluster.node: {:?} must be 1 to 64 letters, digits, - or _", self.node));
        }
        if store.is_none() {
            return Err("cluster: the nodes of a cluster share a PostgreSQL store: set store (PLAUDIT_STORE)".into());
        }
        if !self.advertise.is_empty() && !self.advertise.starts_with("http://") {
            return Err(format!("cluster.advertise: {:?} must be an http:// address", self.advertise));
        }
        if !(500..=600_000).contains(&self.lease_ms) {
            return Err(format!("cluster.lease_ms: must be 500 to 600000, got {}", self.lease_ms));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("plaudit-config-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn the_file_sets_values_and_the_environment_overrides_them() {
        let path = file(
            "listen = \"0.0.0.0:9000\"\nadmin_key = \"from-the-file-0123\"\n[rate_limit]\nrequests_per_second = 5.0\nburst = 10\n",
        );
        let config =
            ServerConfig::load(Some(&path), |v| (v == "PLAUDIT_ADMIN_KEY").then(|| "from-the-env-0123".into()))
                .expect("loads");
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.admin_key.as_deref(), Some("from-the-env-0123"));
        assert_eq!(config.rate_limit, Some(RateLimit { requests_per_second: 5.0, burst: 10 }));
        assert_eq!(config.effects_kept, crate::feed::DEFAULT_CAPACITY);
        let _ = std::fs::remove_file(path);
    }

    /// An environment of `pairs`.
    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |v: &str| pairs.iter().find(|(k, _)| *k == v).map(|(_, x)| x.to_string())
    }

    #[test]
    fn a_cluster_node_needs_a_name_a_postgresql_store_and_a_sane_lease() {
        let store = ("PLAUDIT_STORE", "postgres://u@127.0.0.1/plaudit");
        let node = ServerConfig::load(None, env(&[store, ("PLAUDIT_NODE", "n1"), ("PLAUDIT_LEASE_MS", "2000")]))
            .expect("a node");
        let cluster = node.cluster.expect("clustered");
        assert_eq!((cluster.node.as_str(), cluster.lease_ms, cluster.advertise.as_str()), ("n1", 2000, ""));
        let refused = |pairs: &[(&str, &str)], field: &str| {
            let err = ServerConfig::load(None, env(pairs)).expect_err("refused").to_string();
            assert!(err.contains(field), "{err}");
        };
        refused(&[store, ("PLAUDIT_LEASE_MS", "2000")], "cluster.node");
        refused(&[("PLAUDIT_NODE", "n1")], "PostgreSQL store");
        refused(&[store, ("PLAUDIT_NODE", "n 1")], "cluster.node");
        refused(&[store, ("PLAUDIT_NODE", "n1"), ("PLAUDIT_LEASE_MS", "100")], "cluster.lease_ms");
        refused(&[store, ("PLAUDIT_NODE", "n1"), ("PLAUDIT_LEASE_MS", "soon")], "PLAUDIT_LEASE_MS");
        refused(&[store, ("PLAUDIT_NODE", "n1"), ("PLAUDIT_ADVERTISE", "10.0.0.1:80")], "cluster.advertise");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_naming_them() {
        let path = file("listn = \"x\"\n");
        let err = ServerConfig::load(Some(&path), |_| None).expect_err("unknown key").to_string();
        assert!(err.contains("listn"), "{err}");
        let _ = std::fs::remove_file(path);
        let path = file("admin_key = \"short\"\n");
        let err = ServerConfig::load(Some(&path), |_| None).expect_err("short key").to_string();
        assert!(err.contains("admin_key"), "{err}");
        let _ = std::fs::remove_file(path);
        let err = ServerConfig::load(None, |v| (v == "PLAUDIT_ADMIN_KEY").then(|| "short".into()))
            .expect_err("short key from the environment")
            .to_string();
        assert!(err.contains("admin_key"), "{err}");
    }
}
