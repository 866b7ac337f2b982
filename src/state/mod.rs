//! The state directory: everything c2quay remembers about the environments it manages.
//!
//! Owns the on-disk layout, atomic writes, the environment lock, status, the intent journal,
//! the record outbox, snapshots, reports and the audit log. It does not decide anything (that is
//! `plan`) and does not talk to Docker or the broker.
//!
//! # Layout
//!
//! ```text
//! <root>/                      0700, refused when writable by group or others
//!   envs/<name>/               0700, one per environment
//!     lock                     flock target; holds {"pid","startedAt","command"} while held
//!     status.json              EnvironmentStatus
//!     intent.json              Intent, present only while a deploy/rollback/heal is in flight
//!     override.compose.yaml    the pinning override passed to `docker compose -f`
//!     audit.jsonl(.1)          one JSON line per step; rotated at 5 MiB
//!     outbox/<id>.json         PendingRecord, one per deployment still to record
//!     snapshots/<ts>-<label>.json   pre / post / post-rollback (last 20 of each label)
//!     reports/<ts>-<kind>.json      deploy / rollback (last 20 of each kind)
//! ```
//!
//! Every file is written with mode 0600 through [`atomic::write_atomic`] (or appended with
//! fsync for the audit log); every timestamp comes from the [`Clock`] given to [`StateDir`].
//! Status, intent, outbox entries, snapshots and reports carry a `schemaVersion` and are read
//! through [`schema`]: older versions migrate, a newer one is refused and left untouched.

pub mod atomic;
pub mod audit;
pub mod clock;
pub mod error;
pub mod journal;
pub mod lock;
pub mod outbox;
pub mod records;
pub mod schema;
pub mod status;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use atomic::{quarantine, read_json, read_json_opt, write_atomic, write_json_atomic};
pub use audit::{AUDIT_ROTATE_BYTES, AuditEvent};
#[cfg(any(test, feature = "test-support"))]
pub use clock::FixedClock;
pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use journal::{Intent, Operation, Step};
pub use lock::{EnvLock, LockHolder};
pub use outbox::{PendingRecord, RecordKind, record_id};
pub use records::KEEP_PER_KIND;
pub use schema::SCHEMA_VERSION;
pub use status::{
    Condition, ConditionStatus, ConditionType, EnvironmentStatus, HISTORY_LIMIT, HistoryEntry,
    HostBlock, Phase, Release, Suspension,
};

/// A handle on an opened state directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    clock: Arc<dyn Clock>,
}

impl StateDir {
    /// Opens (creating with mode 0700 when missing) the state directory at `root`, with the
    /// system clock. Refuses a directory writable by group or others.
    pub fn open(root: &Path) -> Result<StateDir> {
        Self::open_with_clock(root, Arc::new(SystemClock))
    }

    /// Like [`open`](Self::open), with the clock used for every timestamp written.
    pub fn open_with_clock(root: &Path, clock: Arc<dyn Clock>) -> Result<StateDir> {
        atomic::create_dir_private(root)?;
        check_private(root)?;
        let state = StateDir {
            root: root.to_path_buf(),
            clock,
        };
        atomic::create_dir_private(&state.envs_dir())?;
        Ok(state)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The clock every timestamp comes from.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// `<root>/envs`.
    pub fn envs_dir(&self) -> PathBuf {
        self.root.join("envs")
    }

    /// `<root>/envs/<name>`. Path helpers do not validate `name`; every operation does.
    pub fn env_dir(&self, name: &str) -> PathBuf {
        self.envs_dir().join(name)
    }

    /// The lock file of an environment.
    pub fn lock_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("lock")
    }

    /// The status file of an environment.
    pub fn status_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("status.json")
    }

    /// The intent (journal) file of an environment.
    pub fn intent_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("intent.json")
    }

    /// The Compose override file that pins images for an environment.
    pub fn override_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("override.compose.yaml")
    }

    /// The rendered Compose model (`compose config --format json`) of the last successful
    /// deploy: what a rollback of a configuration change re-applies. Like every state file it
    /// is 0600 in a 0700 directory (it holds the services' environment values, as Docker's own
    /// container store does) and is never printed, logged or served.
    pub fn applied_model_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("applied-model.json")
    }

    /// Writes [`StateDir::applied_model_file`] atomically.
    pub fn write_applied_model(&self, name: &str, text: &str) -> Result<()> {
        self.ensure_env(name)?;
        atomic::write_atomic(&self.applied_model_file(name), text.as_bytes(), 0o600)
    }

    /// The manifest of the last successful deploy, as loaded (JSON): what the agent still
    /// knows of an environment whose manifest was removed (`policy.prune`, the project, the
    /// broker to record its undeployment in). Removed once a prune is complete.
    pub fn applied_manifest_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("applied-manifest.json")
    }

    /// Writes [`StateDir::applied_manifest_file`] atomically.
    pub fn write_applied_manifest(&self, name: &str, text: &str) -> Result<()> {
        self.ensure_env(name)?;
        atomic::write_atomic(&self.applied_manifest_file(name), text.as_bytes(), 0o600)
    }

    /// The audit log of an environment (its rotated predecessor has a `.1` suffix).
    pub fn audit_file(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("audit.jsonl")
    }

    /// The directory of pending broker records.
    pub fn outbox_dir(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("outbox")
    }

    /// The directory of container snapshots.
    pub fn snapshots_dir(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("snapshots")
    }

    /// The directory of deploy and rollback reports.
    pub fn reports_dir(&self, name: &str) -> PathBuf {
        self.env_dir(name).join("reports")
    }

    /// Validates `name` and creates its environment directory (0700); returns the directory.
    pub fn ensure_env(&self, name: &str) -> Result<PathBuf> {
        self.validate_env_name(name)?;
        self.check_owner()?;
        let dir = self.env_dir(name);
        atomic::create_dir_private(&dir)?;
        Ok(dir)
    }

    /// Names of the environments that have a directory here, sorted.
    pub fn list_environments(&self) -> Result<Vec<String>> {
        let dir = self.envs_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let Some(name) = entry.file_name().to_str()
                && is_dir
                && valid_name(name)
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Moves a corrupt state file aside to `<name>.corrupt-<unix-ts>` (see [`atomic::quarantine`]).
    pub fn quarantine(&self, path: &Path) -> Result<PathBuf> {
        atomic::quarantine(path, self.clock.now())
    }

    fn validate_env_name(&self, name: &str) -> Result<()> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(Error::InvalidName {
                what: "environment name",
                value: name.to_string(),
                rule: "1-128 characters from [A-Za-z0-9._-], starting with a letter or digit",
            })
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl StateDir {
    /// Refuses to write into a state directory another user owns (like git's "dubious
    /// ownership"): `sudo c2quay deploy` on the agent's directory would leave root-owned 0600
    /// files the agent can no longer read. Reading needs no such check.
    pub fn check_owner(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.root).map_err(|e| Error::io("stat", &self.root, e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = unsafe { libc::geteuid() };
        if meta.uid() == user {
            return Ok(());
        }
        Err(Error::ForeignOwner {
            path: self.root.clone(),
            owner: meta.uid(),
            owner_name: user_name(meta.uid()),
            user,
            user_name: user_name(user),
        })
    }
}

/// The name `/etc/passwd` gives `uid`, if any.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

fn check_private(root: &Path) -> Result<()> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io("stat", root, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::Permissions {
            path: root.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// A state directory in a fresh temp dir with its clock fixed at `unix_secs` (unit tests).
#[cfg(test)]
pub(crate) fn test_state_dir(unix_secs: u64) -> (tempfile::TempDir, StateDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = StateDir::open_with_clock(
        &dir.path().join("state"),
        Arc::new(FixedClock::at_unix(unix_secs)),
    )
    .expect("state dir");
    (dir, state)
}

#[cfg(test)]
mod tests;
