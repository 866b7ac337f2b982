//! The per-environment lock: an exclusive `flock` (fs4) on `envs/<name>/lock`.
//!
//! It keeps the agent and manual `c2quay deploy` / `rollback` runs from touching one environment
//! at the same time. The holder writes who it is into the lock file so a contender can name it.
//! The kernel releases the lock when the holder's file is closed or the process dies, so a lock
//! file left by a crashed process is harmless.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::StateDir;
use super::atomic::FILE_MODE;
use super::error::{Error, Result};

/// How often a contended lock is tried again.
pub const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Who holds an environment lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockHolder {
    /// The holder's process id.
    pub pid: u32,
    /// When the holder acquired the lock.
    #[serde(with = "super::clock::rfc3339")]
    pub started_at: SystemTime,
    /// What the holder runs: `deploy`, `rollback`, `agent`, ...
    pub command: String,
}

/// A held environment lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct EnvLock {
    file: File,
    path: PathBuf,
    environment: String,
    holder: LockHolder,
}

impl EnvLock {
    /// The environment this lock guards.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this process wrote into the lock file.
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        // Clear the holder record while still holding the lock; closing the file releases it.
        let _ = self.file.set_len(0);
    }
}

impl StateDir {
    /// Takes the exclusive lock of environment `name` for `command` (`deploy`, `agent`, ...).
    ///
    /// When another process holds it, tries again every [`LOCK_POLL_INTERVAL`] until `wait` has
    /// elapsed, then fails with [`Error::Locked`] naming the holder's pid, command and start time.
    /// Blocks the thread: from async code use [`lock_environment_async`](Self::lock_environment_async).
    pub fn lock_environment(&self, name: &str, command: &str, wait: Duration) -> Result<EnvLock> {
        self.check_owner()?;
        let (file, path) = self.open_lock_file(name)?;
        let deadline = Instant::now() + wait;
        loop {
            if try_lock(&file, &path)? {
                return self.claim(file, path, name, command);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(locked(name, &path, wait));
            }
            std::thread::sleep(LOCK_POLL_INTERVAL.min(deadline - now));
        }
    }

    /// Async version of [`lock_environment`](Self::lock_environment): polls with
    /// `tokio::time::sleep`, never blocking a runtime worker.
    pub async fn lock_environment_async(
        &self,
        name: &str,
        command: &str,
        wait: Duration,
    ) -> Result<EnvLock> {
        let (file, path) = self.open_lock_file(name)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if try_lock(&file, &path)? {
                return self.claim(file, path, name, command);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(locked(name, &path, wait));
            }
            tokio::time::sleep(LOCK_POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// Reads who holds (or last held) the lock of `name`, without locking. `None` when the lock
    /// file is missing, empty or unreadable.
    pub fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>> {
        self.validate_env_name(name)?;
        Ok(read_holder(&self.lock_file(name)))
    }

    fn open_lock_file(&self, name: &str) -> Result<(File, PathBuf)> {
        self.ensure_env(name)?;
        let path = self.lock_file(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        Ok((file, path))
    }

    fn claim(&self, mut file: File, path: PathBuf, name: &str, command: &str) -> Result<EnvLock> {
        let holder = LockHolder {
            pid: std::process::id(),
            started_at: self.clock().now(),
            command: command.to_string(),
        };
        let json = serde_json::to_vec(&holder).map_err(|source| Error::Serialize {
            path: path.clone(),
            source,
        })?;
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_permissions(Permissions::from_mode(FILE_MODE))?;
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&json)?;
            f.sync_data()
        };
        write(&mut file).map_err(|e| Error::io("write holder into lock file", &path, e))?;
        Ok(EnvLock {
            file,
            path,
            environment: name.to_string(),
            holder,
        })
    }
}

fn try_lock(file: &File, path: &Path) -> Result<bool> {
    FileExt::try_lock_exclusive(file).map_err(|e| Error::io("lock", path, e))
}

fn locked(name: &str, path: &Path, waited: Duration) -> Error {
    Error::Locked {
        environment: name.to_string(),
        path: path.to_path_buf(),
        waited,
        holder: read_holder(path).map(Box::new),
    }
}

fn read_holder(path: &Path) -> Option<LockHolder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {

    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        crate::state::test_state_dir(1_767_323_045)
    }

    #[test]
    fn second_lock_fails_after_wait_naming_the_holder() {
        let (_d, s) = state();
        let held = s.lock_environment("shop", "agent", Duration::ZERO).unwrap();
        assert_eq!(held.holder().pid, std::process::id());
        let start = Instant::now();
        let err = s
            .lock_environment("shop", "deploy", Duration::from_millis(300))
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(err.kind(), "locked");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(
            msg.contains("`c2quay agent`") && msg.contains("2026-01-02T03:04:05.000Z"),
            "{msg}"
        );
        assert!(msg.contains("envs/shop/lock"), "{msg}");
        assert_eq!(s.lock_holder("shop").unwrap().unwrap().command, "agent");
    }

    #[test]
    fn lock_is_released_on_drop_and_per_environment() {
        let (_d, s) = state();
        let a = s
            .lock_environment("shop", "deploy", Duration::ZERO)
            .unwrap();
        let _other = s
            .lock_environment("blog", "deploy", Duration::ZERO)
            .unwrap();
        drop(a);
        assert_eq!(
            s.lock_holder("shop").unwrap(),
            None,
            "holder cleared on release"
        );
        let again = s
            .lock_environment("shop", "deploy", Duration::ZERO)
            .unwrap();
        assert_eq!(again.environment(), "shop");
        let mode = std::fs::metadata(again.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn waiter_gets_the_lock_when_released_within_the_wait() {
        let (_d, s) = state();
        let held = s.lock_environment("shop", "agent", Duration::ZERO).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        let got = s
            .lock_environment("shop", "deploy", Duration::from_secs(5))
            .unwrap();
        assert_eq!(got.holder().command, "deploy");
        t.join().unwrap();
    }

    #[tokio::test]
    async fn async_lock_waits_then_fails_naming_the_holder() {
        let (_d, s) = state();
        let _held = s
            .lock_environment_async("shop", "agent", Duration::ZERO)
            .await
            .unwrap();
        let err = s
            .lock_environment_async("shop", "deploy", Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Locked { holder: Some(h), .. } if h.command == "agent"),
            "{err}"
        );
    }

    #[test]
    fn bad_environment_name_is_refused() {
        let (_d, s) = state();
        let err = s
            .lock_environment("../etc", "deploy", Duration::ZERO)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid");
    }
}
