//! A data directory's layout, in one place for the server and the CLI:
//!
//! ```text
//! DIR/plaudit.redb            every organisation's log (records, rule-set versions, plugin
//!                             changes and modules) (redb)
//! DIR/plaudit.snapshots.redb  their latest snapshots: a cache of the log (redb)
//! DIR/orgs/ORG/               one folder per organisation
//! DIR/orgs/ORG/key.sha256     hex SHA-256 of its API key (the server's)
//! DIR/orgs/ORG/webhooks.json  its webhook subscriptions, with their delivery cursors
//! ```
//!
//! Data directories written before rule sets were versioned in the log kept the rule set in
//! `orgs/ORG/rules.toml`; [`DataDir::open_org`] adopts such a file as version 1 of the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ids::{OrgId, Seq};
use crate::log::{Durable, LogError, Replayed};
use crate::store::{Change, Store};

/// Paths inside a data directory. Creates nothing.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir(root.into())
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The store file shared by the organisations.
    pub fn store(&self) -> PathBuf {
        self.0.join("plaudit.redb")
    }

    /// The folder holding one folder per organisation.
    pub fn orgs(&self) -> PathBuf {
        self.0.join("orgs")
    }

    pub fn org(&self, org: &OrgId) -> PathBuf {
        self.orgs().join(org.as_str())
    }

    /// Where a data directory of an earlier version kept the rule set.
    pub fn legacy_rules(&self, org: &OrgId) -> PathBuf {
        self.org(org).join("rules.toml")
    }

    /// Opens `org` from its log, `None` if it has no rule set there (a folder left by a creation
    /// that did not finish), with an effects feed of `feed` effects if given. A legacy
    /// `rules.toml` is first recorded as the log's first rule set, in force from the start, and
    /// then removed. The latest snapshot is restored first, unless `from_start`.
    pub fn open_org(
        &self,
        store: &Arc<dyn Store>,
        org: &OrgId,
        feed: Option<usize>,
        from_start: bool,
    ) -> Result<Option<(Durable, Replayed)>, LogError> {
        let legacy = self.legacy_rules(org);
        if !Durable::exists(store.as_ref(), org)? {
            let Ok(text) = std::fs::read_to_string(&legacy) else { return Ok(None) };
            let change = Change::Rules { text, format: crate::ruleset::Format::Toml };
            store.append_change(org, Seq(0), &change, None)?;
        }
        let opened = match (feed, from_start) {
            (Some(capacity), _) => Durable::open_with_feed(Arc::clone(store), org.clone(), capacity)?,
            (None, false) => Durable::open(Arc::clone(store), org.clone())?,
            (None, true) => Durable::open_from_start(Arc::clone(store), org.clone())?,
        };
        if legacy.exists() {
            // Recorded in the log: the file would only go stale.
            let _ = std::fs::remove_file(&legacy);
        }
        Ok(Some(opened))
    }

    /// The organisation's webhook subscriptions and their delivery cursors.
    pub fn webhooks(&self, org: &OrgId) -> PathBuf {
        self.org(org).join("webhooks.json")
    }

    pub fn key_hash(&self, org: &OrgId) -> PathBuf {
        self.org(org).join("key.sha256")
    }

    /// The organisations that have a folder, sorted; folders whose name is no organisation id
    /// are returned as errors, by path.
    pub fn organisations(&self) -> std::io::Result<Vec<Result<OrgId, PathBuf>>> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(self.orgs()) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        dirs.sort();
        Ok(dirs
            .into_iter()
            .map(|dir| {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                OrgId::parse(&name).map_err(|_| dir)
            })
            .collect())
    }
}
