//! The audit log: one JSON line per pipeline step in `envs/<name>/audit.jsonl`.
//!
//! Appends are `O_APPEND` + one `write` per line + fsync, under a short `flock` of the log so
//! two processes never interleave or rotate over each other. Past [`AUDIT_ROTATE_BYTES`] the
//! log moves to `audit.jsonl.1` (replacing the previous one) and a new log starts.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::StateDir;
use super::atomic::{FILE_MODE, sync_dir};
use super::error::{Error, Result};

/// Size beyond which the audit log is rotated.
pub const AUDIT_ROTATE_BYTES: u64 = 5 * 1024 * 1024;

/// One step of one operation, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// When it happened.
    #[serde(with = "super::clock::rfc3339")]
    pub ts: SystemTime,
    /// Environment name.
    pub environment: String,
    /// Generation being worked on, when known.
    pub generation: Option<String>,
    /// The commit of the desired checkout being worked on, when it is a git work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Step name (`reconcile`, `gate`, `pull`, `up`, `readiness`, `smoke`, `record`, `rollback`, ...).
    pub step: String,
    /// Outcome (`started`, `succeeded`, `failed`, `skipped`, ...).
    pub outcome: String,
    /// Details for a human.
    pub message: String,
    /// The process that wrote the line.
    pub pid: u32,
}

impl AuditEvent {
    /// An event of this process at `ts`, with no generation.
    pub fn new(
        ts: SystemTime,
        environment: &str,
        step: &str,
        outcome: &str,
        message: &str,
    ) -> Self {
        AuditEvent {
            ts,
            environment: environment.to_string(),
            generation: None,
            revision: None,
            step: step.to_string(),
            outcome: outcome.to_string(),
            message: message.to_string(),
            pid: std::process::id(),
        }
    }

    /// Sets the generation.
    pub fn with_generation(mut self, generation: impl Into<String>) -> Self {
        self.generation = Some(generation.into());
        self
    }
}

impl StateDir {
    /// Appends `event` to the audit log of `env` (one line, fsynced), rotating it when it is
    /// larger than [`AUDIT_ROTATE_BYTES`].
    pub fn append_audit(&self, env: &str, event: &AuditEvent) -> Result<()> {
        self.ensure_env(env)?;
        let path = self.audit_file(env);
        let mut line = serde_json::to_vec(event).map_err(|source| Error::Serialize {
            path: path.clone(),
            source,
        })?;
        line.push(b'\n');
        let mut file = open_current_locked(&path)?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        if size > AUDIT_ROTATE_BYTES {
            let rotated = rotated_path(&path);
            std::fs::rename(&path, &rotated).map_err(|e| Error::io("rotate", &path, e))?;
            sync_dir(parent(&path))?;
            file = open_current_locked(&path)?;
        }
        let size_before = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        if let Err(error) = file.write_all(&line) {
            // A full disk can take part of the line: cut it off, or every later line would be
            // glued to half a line and the log would no longer parse.
            let _ = file.set_len(size_before);
            return Err(Error::io("append to", &path, error));
        }
        file.sync_data().map_err(|e| Error::io("fsync", &path, e))
    }

    /// Appends an event stamped with this state directory's clock.
    pub fn audit(
        &self,
        env: &str,
        generation: Option<&str>,
        step: &str,
        outcome: &str,
        message: &str,
    ) -> Result<()> {
        let mut event = AuditEvent::new(self.clock().now(), env, step, outcome, message);
        event.generation = generation.map(str::to_string);
        self.append_audit(env, &event)
    }

    /// Every event of `env`, oldest first (the rotated log, then the current one). A line that
    /// does not parse is [`Error::Corrupt`] with the file and line number.
    pub fn read_audit(&self, env: &str) -> Result<Vec<AuditEvent>> {
        self.validate_env_name(env)?;
        let path = self.audit_file(env);
        let mut events = Vec::new();
        for p in [rotated_path(&path), path] {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &p, e)),
            };
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let event = serde_json::from_str(line).map_err(|source| Error::Corrupt {
                    path: p.clone(),
                    line: Some(i + 1),
                    field: None,
                    source,
                })?;
                events.push(event);
            }
        }
        Ok(events)
    }
}

/// Audit lines that leave a generation failed: `(step, outcome)`. A deploy that rolled back or
/// whose rollback failed (`result`), `c2quay rollback` (`rollback succeeded`, which holds the
/// generation it restored from), a recovery that rolled back or failed (`recover`).
const FAILED: [(&str, &str); 5] = [
    ("result", "rolled_back"),
    ("result", "rollback_failed"),
    ("rollback", "succeeded"),
    ("recover", "rolled_back"),
    ("recover", "failed"),
];

/// Audit lines after which no generation is failed: a deploy that ended applied (`result`), a
/// recovery that finished one (`recover`), as `status::status_after` clears it, `c2quay retry`,
/// and an apply the host refused (`result host_blocked`: its rollback is not a failed release).
const APPLIED: [(&str, &str); 7] = [
    ("result", "host_blocked"),
    ("result", "deployed"),
    ("result", "up_to_date"),
    ("result", "record_failed"),
    ("recover", "resumed"),
    ("recover", "finished"),
    ("retry", "requested"),
];

impl StateDir {
    /// The generation the audit log of `env` leaves failed: the one of the last failure line
    /// ([`FAILED`]) with no applied line ([`APPLIED`]) after it. Read leniently (a line that
    /// does not parse is skipped and counted in a warning): this is what keeps a known-bad
    /// release held when the status file itself was unreadable.
    pub fn failed_generation_in_audit(&self, env: &str) -> Option<String> {
        self.validate_env_name(env).ok()?;
        let path = self.audit_file(env);
        let mut failed = None;
        let mut skipped = 0usize;
        for p in [rotated_path(&path), path] {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Ok(event) = serde_json::from_str::<AuditEvent>(line) else {
                    skipped += 1;
                    continue;
                };
                let key = (event.step.as_str(), event.outcome.as_str());
                if FAILED.contains(&key) && event.generation.is_some() {
                    failed = event.generation;
                } else if APPLIED.contains(&key) {
                    failed = None;
                }
            }
        }
        if skipped > 0 {
            tracing::warn!(
                environment = env,
                skipped,
                "audit lines that do not parse were skipped while looking for a failed generation"
            );
        }
        failed
    }
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Opens the log for appending and locks it, retrying when another process rotated it between
/// our open and our lock (then our handle points at the rotated file).
fn open_current_locked(path: &Path) -> Result<File> {
    loop {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        FileExt::lock_exclusive(&file).map_err(|e| Error::io("lock", path, e))?;
        let ours = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        match std::fs::metadata(path) {
            Ok(current) if current.ino() == ours.ino() && current.dev() == ours.dev() => {
                file.set_permissions(Permissions::from_mode(FILE_MODE))
                    .map_err(|e| Error::io("chmod", path, e))?;
                return Ok(file);
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        crate::state::test_state_dir(1_767_323_045)
    }

    #[test]
    fn appends_lines_that_read_back_in_order() {
        let (_d, s) = state();
        assert_eq!(s.read_audit("shop").unwrap(), vec![]);
        s.audit("shop", Some("g1"), "gate", "succeeded", "deployable")
            .unwrap();
        s.append_audit(
            "shop",
            &AuditEvent::new(UNIX_EPOCH, "shop", "up", "failed", "exit 1").with_generation("g1"),
        )
        .unwrap();
        let events = s.read_audit("shop").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].step, "gate");
        assert_eq!(events[0].pid, std::process::id());
        assert_eq!(events[1].generation.as_deref(), Some("g1"));
        let text = std::fs::read_to_string(s.audit_file("shop")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["ts"], "2026-01-02T03:04:05.000Z");
        for key in [
            "environment",
            "generation",
            "step",
            "outcome",
            "message",
            "pid",
        ] {
            assert!(first.get(key).is_some(), "{key} in {first}");
        }
        let mode = std::fs::metadata(s.audit_file("shop"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn rotates_past_the_size_limit_and_reads_both() {
        let (_d, s) = state();
        s.audit("shop", None, "first", "succeeded", "").unwrap();
        // Grow the log past the limit with a blank (skipped) line rather than 5 MiB of events.
        let mut padded = std::fs::read(s.audit_file("shop")).unwrap();
        padded.resize(AUDIT_ROTATE_BYTES as usize + 1, b' ');
        padded.push(b'\n');
        std::fs::write(s.audit_file("shop"), &padded).unwrap();
        s.audit("shop", None, "second", "succeeded", "").unwrap();
        assert!(rotated_path(&s.audit_file("shop")).exists());
        assert!(std::fs::metadata(s.audit_file("shop")).unwrap().len() < 1024);
        let steps: Vec<_> = s
            .read_audit("shop")
            .unwrap()
            .into_iter()
            .map(|e| e.step)
            .collect();
        assert_eq!(steps, ["first", "second"]);
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let (_d, s) = state();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        s.audit(
                            "shop",
                            None,
                            &format!("t{t}"),
                            "succeeded",
                            &"x".repeat(i * 100),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.read_audit("shop").unwrap().len(), 100);
    }

    #[test]
    fn the_failed_generation_is_the_last_failure_not_followed_by_a_deploy() {
        let (_d, s) = state();
        assert_eq!(s.failed_generation_in_audit("shop"), None);
        let line = |g: &str, step: &str, outcome: &str| {
            s.audit("shop", Some(g), step, outcome, "").unwrap();
        };
        line("g1", "result", "deployed");
        line("g2", "smoke", "failed");
        line("g2", "rollback", "succeeded");
        line("g2", "result", "rolled_back");
        line("g2", "result", "up_to_date_is_not_an_outcome");
        assert_eq!(s.failed_generation_in_audit("shop").as_deref(), Some("g2"));
        // A torn line is skipped, not the end of the search.
        let mut f = OpenOptions::new()
            .append(true)
            .open(s.audit_file("shop"))
            .unwrap();
        f.write_all(b"{\"ts\":\"2026\n").unwrap();
        assert_eq!(s.failed_generation_in_audit("shop").as_deref(), Some("g2"));
        line("g3", "result", "deployed");
        assert_eq!(s.failed_generation_in_audit("shop"), None);
        line("g4", "recover", "rolled_back");
        assert_eq!(s.failed_generation_in_audit("shop").as_deref(), Some("g4"));
        line("g4", "retry", "requested");
        assert_eq!(s.failed_generation_in_audit("shop"), None);
        line("g4", "result", "rollback_failed");
        let rebuilt = s.rebuilt_status("shop");
        assert_eq!(rebuilt.failed_generation.as_deref(), Some("g4"));
        assert_eq!(rebuilt.phase, crate::state::Phase::Pending);
    }

    #[test]
    fn a_torn_line_is_reported_with_file_and_line() {
        let (_d, s) = state();
        s.audit("shop", None, "gate", "succeeded", "").unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(s.audit_file("shop"))
            .unwrap();
        f.write_all(b"{\"ts\":\"2026\n").unwrap();
        let err = s.read_audit("shop").unwrap_err();
        assert_eq!(err.kind(), "corrupt");
        assert!(err.to_string().contains("audit.jsonl:2"), "{err}");
    }
}
