//! A data directory's layout, in one place for the server and the CLI:
//!
//! ```text
//! DIR/plaudit.redb            every organisation's log (records, rule-set versions, plugin
//!                             changes and modules), the SHA-256 of its API key, its scoped
//!                             keys and settings (webhook subscriptions among them) (redb)
//! DIR/plaudit.snapshots.redb  their latest snapshots: a cache of the log (redb)
//! ```
//!
//! With the PostgreSQL store, all of that is in the database, so that a node with a data
//! directory of its own can serve any organisation. Earlier builds kept the webhook
//! subscriptions in `orgs/ORG/webhooks.json` ([`DataDir::webhooks`]): opening the organisation
//! adopts that file into the store ([`crate::webhooks::Hooks::load`]).
//!
//! The organisations are those of the store: an organisation is created in one commit, its
//! first rule set with its key, so none exists by halves. The first released build kept the key
//! in `orgs/ORG/key.sha256` (written without an fsync, before the log's commit);
//! [`DataDir::adopt_legacy`] moves it into the store. A folder under `orgs/` that names no
//! organisation of the store is reported and left alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::organisation::{OrgError, Organisation, Replayed};
use plaudit_core::ids::OrgId;
use plaudit_store::Store;

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

    /// Opens the store `setting` names (the server's `store`, `PLAUDIT_STORE`): a PostgreSQL
    /// database by its URL, or, unset, the embedded store in this directory ([`DataDir::store`]).
    /// The server and the CLI open theirs here; everything else stays in the directory.
    pub fn open_store(
        &self,
        setting: Option<&str>,
    ) -> Result<std::sync::Arc<dyn plaudit_store::Store>, plaudit_store::StoreError> {
        plaudit_store::open_store(setting, &self.store())
    }

    /// The folder holding one folder per organisation.
    pub fn orgs(&self) -> PathBuf {
        self.0.join("orgs")
    }

    pub fn org(&self, org: &OrgId) -> PathBuf {
        self.orgs().join(org.as_str())
    }

    /// Opens `org` from its log, `None` if it has no rule set there (it was never created),
    /// with an effects feed of `feed` effects if given. The latest snapshot is restored first,
    /// unless `from_start`.
    pub fn open_org(
        &self,
        store: &Arc<dyn Store>,
        org: &OrgId,
        feed: Option<usize>,
        from_start: bool,
    ) -> Result<Option<(Organisation, Replayed)>, OrgError> {
        let opened = match (feed, from_start) {
            (Some(capacity), _) => Organisation::open_with_feed(Arc::clone(store), org.clone(), capacity),
            (None, false) => Organisation::open(Arc::clone(store), org.clone()),
            (None, true) => Organisation::open_from_start(Arc::clone(store), org.clone()),
        };
        match opened {
            Ok(opened) => Ok(Some(opened)),
            Err(OrgError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves what the first released build kept beside the store into it: a `key.sha256` of an
    /// organisation the store holds no key for becomes its key. Returns the problems met (a
    /// folder that names no organisation, a key file that is empty or not hex, damage after a
    /// power loss): each is the folder's alone, never fatal to the others.
    pub fn adopt_legacy(&self, store: &Arc<dyn Store>) -> Result<Vec<(PathBuf, String)>, OrgError> {
        let mut problems = Vec::new();
        let folders = match self.folders() {
            Ok(folders) => folders,
            Err(e) => return Ok(vec![(self.orgs(), format!("cannot list: {e}"))]),
        };
        for found in folders {
            let org = match found {
                Ok(org) => org,
                Err(dir) => {
                    problems.push((dir, "not an organisation id: left alone".to_string()));
                    continue;
                }
            };
            if !Organisation::exists(store.as_ref(), &org)? {
                problems.push((
                    self.org(&org),
                    "no organisation of the store (a creation that did not finish?): left alone".to_string(),
                ));
                continue;
            }
            let key_file = self.org(&org).join("key.sha256");
            if store.org_key(&org)?.is_some() || !key_file.exists() {
                continue;
            }
            match std::fs::read_to_string(&key_file).ok().and_then(|t| unhex32(&t)) {
                Some(hash) => {
                    store.set_org_key(&org, hash)?;
                    let _ = std::fs::remove_file(&key_file);
                }
                None => {
                    problems.push((key_file, "empty or not a hex SHA-256: the organisation has no key".to_string()))
                }
            }
        }
        Ok(problems)
    }

    /// Where earlier builds kept the organisation's webhook subscriptions and their delivery
    /// cursors, now in the store: adopted into it, then renamed `webhooks.json.adopted`, when the
    /// organisation is opened ([`crate::webhooks::Hooks::load`]).
    pub fn webhooks(&self, org: &OrgId) -> PathBuf {
        self.org(org).join("webhooks.json")
    }

    /// The folders under `orgs/`, sorted; those whose name is no organisation id are returned
    /// as errors, by path.
    fn folders(&self) -> std::io::Result<Vec<Result<OrgId, PathBuf>>> {
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

/// The 32 bytes a 64-digit hex text (whitespace around it aside) spells, if it does.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
