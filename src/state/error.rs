//! The state directory's error type: every variant names the file (or environment) involved.
//!
//! `kind()` is a bounded label for metrics (`io`, `full`, `permissions`, `corrupt`, `newer_schema`,
//! `locked`, `invalid`); the cause is exposed as `source()` and never repeated in the message.

use std::path::PathBuf;
use std::time::Duration;

use super::lock::LockHolder;

/// Errors from reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file or directory failed.
    #[error("state directory: cannot {op} {path}")]
    Io {
        /// What was being done (`create`, `write`, `rename`, `read`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The disk (or quota) is full; the previous version of the file is intact.
    #[error(
        "state directory: disk full, cannot {op} {path} (the previous version of the file is intact; free space and retry)"
    )]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file being written.
        path: PathBuf,
        /// The I/O error (ENOSPC or EDQUOT).
        #[source]
        source: std::io::Error,
    },
    /// The state directory is writable by group or others.
    #[error(
        "state directory {path} has mode {mode:04o}, writable by group or others; fix it with: chmod 700 {path}"
    )]
    Permissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The state directory belongs to another user than the one running this command: files
    /// it wrote would be unreadable by the directory's owner (the agent).
    #[error(
        "state directory {path} belongs to uid {owner}{}, but this command runs as uid {user}{}: files it writes would be unreadable by the agent; run it as the owner (sudo -u {} c2quay ...)",
        owner_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
        user_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
        owner_name.clone().unwrap_or_else(|| format!("'#{owner}'"))
    )]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The owner's user name, when known.
        owner_name: Option<String>,
        /// The uid running this command.
        user: u32,
        /// Its user name, when known.
        user_name: Option<String>,
    },
    /// A JSON file is truncated, is not valid JSON, or has a field of the wrong shape.
    #[error("state file {path}{} is corrupt ({}); it was left in place: inspect it, then remove or move it aside", line.map(|l| format!(":{l}")).unwrap_or_default(), field.as_ref().map(|f| format!("field `{f}`")).unwrap_or_else(|| "truncated or not valid JSON".to_string()))]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, for JSON-lines files.
        line: Option<usize>,
        /// The field whose value does not fit (`releases.web.image`), when the JSON parsed.
        field: Option<Box<str>>,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A file written by a newer c2quay (a downgrade): left exactly as it is, and so is the
    /// environment, until the newer c2quay runs again or an operator moves the file aside.
    #[error(
        "state file {path} has schemaVersion {found}, but this c2quay supports {supported} at most: it was written by a newer c2quay (a downgrade?); the file and its environment are left untouched: run the newer c2quay again, or move the file aside to have it rebuilt"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The newest version this binary reads ([`super::schema::SCHEMA_VERSION`]).
        supported: u32,
    },
    /// Another process holds the environment lock and did not release it in time.
    #[error("environment {environment} is locked by {} (lock file {path}); gave up after {}", holder_text(holder), humantime::format_duration(*waited))]
    Locked {
        /// The environment.
        environment: String,
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
        /// Who holds it, as written in the lock file (None when unreadable).
        holder: Option<Box<LockHolder>>,
    },
    /// A name or label that cannot be used as a file name.
    #[error("invalid {what} {value:?} for a state file name: {rule}")]
    InvalidName {
        /// What the value is (`environment name`, `label`, `record id`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A value could not be serialized to JSON.
    #[error("state directory: cannot serialize {path} to JSON")]
    Serialize {
        /// The file that was to be written.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// An intent step was updated but no intent is open.
    #[error("no open intent in {path} to update")]
    NoIntent {
        /// The intent file that is missing.
        path: PathBuf,
    },
}

/// The state module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn holder_text(holder: &Option<Box<LockHolder>>) -> String {
    match holder {
        Some(h) => format!(
            "pid {} (`c2quay {}`, started {})",
            h.pid,
            h.command,
            humantime::format_rfc3339_millis(h.started_at)
        ),
        None => {
            "another process (holder unknown: the lock file is empty or unreadable)".to_string()
        }
    }
}

impl Error {
    /// Builds an I/O error, turning ENOSPC/EDQUOT into [`Error::DiskFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_disk_full_io(&source) {
            Error::DiskFull { op, path, source }
        } else {
            Error::Io { op, path, source }
        }
    }

    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::DiskFull { .. } => "full",
            Error::Permissions { .. } | Error::ForeignOwner { .. } => "permissions",
            Error::Corrupt { .. } => "corrupt",
            Error::NewerSchema { .. } => "newer_schema",
            Error::Locked { .. } => "locked",
            Error::InvalidName { .. } | Error::Serialize { .. } | Error::NoIntent { .. } => {
                "invalid"
            }
        }
    }

    /// Whether retrying later may succeed (a held lock, a full disk, a passing I/O error).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::DiskFull { .. } | Error::Locked { .. }
        )
    }

    /// Whether the disk (or quota) was full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull { .. })
    }

    /// Whether this is a missing file or directory.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The file or directory the error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::DiskFull { path, .. }
            | Error::Permissions { path, .. }
            | Error::ForeignOwner { path, .. }
            | Error::Corrupt { path, .. }
            | Error::NewerSchema { path, .. }
            | Error::Locked { path, .. }
            | Error::Serialize { path, .. }
            | Error::NoIntent { path } => Some(path),
            Error::InvalidName { .. } => None,
        }
    }
}

fn is_disk_full_io(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_disk_full_with_kind_full() {
        let e = Error::io(
            "write",
            "/s/status.json",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(e.is_disk_full());
        assert_eq!(e.kind(), "full");
        assert!(e.to_string().contains("disk full"), "{e}");
        assert!(e.to_string().contains("/s/status.json"), "{e}");
    }

    #[test]
    fn other_io_errors_stay_io() {
        let e = Error::io(
            "read",
            "/s/x",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), "io");
        assert!(e.is_not_found());
        assert!(!e.is_disk_full());
        assert_eq!(e.path(), Some(std::path::Path::new("/s/x")));
    }

    #[test]
    fn error_stays_small_enough_to_embed_in_other_errors() {
        // Callers wrap it with an environment name; clippy's `result_large_err` starts at 128 bytes.
        assert!(
            std::mem::size_of::<Error>() <= 80,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn permissions_message_says_how_to_fix() {
        let e = Error::Permissions {
            path: "/var/lib/c2quay".into(),
            mode: 0o777,
        };
        assert_eq!(
            e.to_string(),
            "state directory /var/lib/c2quay has mode 0777, writable by group or others; fix it with: chmod 700 /var/lib/c2quay"
        );
        assert_eq!(e.kind(), "permissions");
        assert!(!e.is_transient());
    }
}
