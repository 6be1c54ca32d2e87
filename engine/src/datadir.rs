//! A data directory's layout, in one place for the server and the CLI:
//!
//! ```text
//! DIR/plaudit.redb            every organisation's log and moment-id index (redb)
//! DIR/orgs/ORG/rules.toml     the organisation's rule set
//! DIR/orgs/ORG/key.sha256     hex SHA-256 of its API key (the server's)
//! ```

use std::path::{Path, PathBuf};

use crate::ids::OrgId;

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

    pub fn rules(&self, org: &OrgId) -> PathBuf {
        self.org(org).join("rules.toml")
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
