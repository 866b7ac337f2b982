//! One agent per Compose project on a host. An agent started with `--claims-dir` (the shipped
//! unit sets `/run/lock/c2quay`: the host's world-writable lock directory, so agents of
//! different users and state directories see each other's claims) claims each project it
//! manages with an exclusive `flock` on `<claims dir>/<project>.lock` and holds it for its
//! lifetime. The file names its holder (pid,
//! state directory, since when). A lock, not a lease with a timer: the kernel releases it the
//! moment its holder dies, so a claim never outlives its agent and never needs renewing, and
//! no clock is trusted. Container labels were the other candidate; they would change every
//! service's configuration (a recreate of everything on upgrade) and cannot be taken back
//! atomically.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The claims directory the shipped systemd unit sets.
pub const UNIT_CLAIMS_DIR: &str = "/run/lock/c2quay";

/// The projects this agent claimed (their lock files stay open, so the locks stay held).
#[derive(Debug)]
pub struct Claims {
    /// `None`: claims are off (no `--claims-dir`).
    dir: Option<PathBuf>,
    /// Who this agent is, as written into its lock files.
    holder: String,
    /// Ignore live foreign claims (`--take-over`).
    take_over: bool,
    held: Mutex<HashMap<String, File>>,
}

impl Claims {
    /// Claims in `dir` for the agent described by `holder`; `take_over` manages projects even
    /// when another agent claims them.
    pub fn new(dir: Option<PathBuf>, holder: String, take_over: bool) -> Claims {
        Claims {
            dir,
            holder,
            take_over,
            held: Mutex::default(),
        }
    }

    /// Claims `project` (already held: nothing to do). `Err` names the live foreign holder;
    /// with `--take-over` a foreign claim is only warned about. A claims directory that cannot
    /// be used is warned about and manages the project anyway (no worse than before claims).
    pub fn claim(&self, project: &str) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.contains_key(project) {
            return Ok(());
        }
        let path = dir.join(format!("{project}.lock"));
        let file = match open_lock(dir, &path) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot use the claims directory; managing the project unclaimed");
                return Ok(());
            }
        };
        // SAFETY: flock on a file descriptor we own.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let owner = holder_of(&path);
            if self.take_over {
                tracing::warn!(project, owner = %owner, "another agent claims this project; taking over (--take-over)");
                return Ok(());
            }
            return Err(owner);
        }
        let mut file = file;
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", self.holder);
        held.insert(project.to_string(), file);
        Ok(())
    }
}

fn open_lock(dir: &Path, path: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        // Another user's lock file: a read-only descriptor takes a flock too.
        .or_else(|_| File::open(path))
}

/// What a lock file says of its holder (`another agent` when unreadable).
fn holder_of(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        _ => format!("another agent (see {})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_claimed_by_a_live_holder_is_refused_naming_it_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let at = || Some(dir.path().to_path_buf());
        let first = Claims::new(at(), "pid 1, state /a".into(), false);
        let second = Claims::new(at(), "pid 2, state /b".into(), false);
        let taker = Claims::new(at(), "pid 3, state /c".into(), true);
        let off = Claims::new(None, "pid 4".into(), false);

        first.claim("shop").unwrap();
        first.claim("shop").unwrap();
        assert_eq!(second.claim("shop"), Err("pid 1, state /a".to_string()));
        assert_eq!(taker.claim("shop"), Ok(()), "--take-over manages it anyway");
        assert_eq!(off.claim("shop"), Ok(()), "no claims dir: claims are off");
        second.claim("other").unwrap();

        drop(first);
        assert_eq!(second.claim("shop"), Ok(()), "released with its holder");
    }
}
