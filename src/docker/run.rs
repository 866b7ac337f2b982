//! The one child-process runner of the crate (`docker compose`, and the smoke `exec` check):
//! `tokio::process`, stdout and stderr read concurrently, every call under a timeout, the whole
//! process group killed on timeout or when the caller drops the future.
//!
//! `docker compose` runs the Compose plugin as a child of the `docker` CLI, so killing only the
//! direct child would orphan the plugin: each command gets its own process group and the guard
//! kills the group. Every child also dies with c2quay (`PR_SET_PDEATHSIG`).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::argv::display;
use super::{Error, Result};

/// Lines of stderr kept in error messages.
pub const TAIL_LINES: usize = 20;

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The last `n` non-empty lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Builds the `Failed` error of a command that exited non-zero.
pub fn failed(command: String, out: &Output) -> Error {
    let source = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let stderr_tail = tail(source, TAIL_LINES);
    Error::Failed {
        command,
        status: match out.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        },
        stderr_tail: if stderr_tail.is_empty() {
            "(no output)".to_string()
        } else {
            stderr_tail
        },
    }
}

/// Kills the child's process group when dropped while armed.
struct GroupGuard {
    pgid: Option<i32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take()
            && pgid > 0
        {
            // SAFETY: kill(2) with a negative pid signals the process group we created; it has
            // no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Makes the child die (SIGKILL) when the thread that spawned it dies, so a `kill -9` of c2quay
/// leaves no `docker compose up` running behind the restarted agent's back. The `docker` CLI
/// takes its Compose plugin with it. Commands are spawned from the runtime's worker threads,
/// which live as long as the process.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Spawns, retrying briefly on `ETXTBSY` (a program file just written while another thread forked).
async fn spawn(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The environment of a child.
#[derive(Debug, Clone, Copy)]
pub enum ChildEnv<'a> {
    /// c2quay's own environment.
    Inherit,
    /// Only these variables (nothing inherited).
    Only(&'a [(String, String)]),
}

/// Runs `program args` and returns its output whatever the exit code. Errors only when the
/// program cannot be started or does not finish within `timeout` (then it is killed).
pub async fn run_raw(program: &Path, args: &[OsString], timeout: Duration) -> Result<Output> {
    run_raw_with_env(program, args, ChildEnv::Inherit, timeout).await
}

/// [`run_raw`] with the child's environment given.
pub async fn run_raw_with_env(
    program: &Path,
    args: &[OsString],
    env: ChildEnv<'_>,
    timeout: Duration,
) -> Result<Output> {
    let command = display(program, args);
    let mut cmd = tokio::process::Command::new(program);
    if let ChildEnv::Only(vars) = env {
        cmd.env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    die_with_parent(&mut cmd);
    let child = spawn(&mut cmd).await.map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    // `wait_with_output` reads stdout and stderr concurrently, so neither pipe can fill up.
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            // Finished normally: nothing to kill.
            guard.pgid = None;
            Ok(Output {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                code: out.status.code(),
            })
        }
        Ok(Err(source)) => Err(Error::Spawn { command, source }),
        Err(_) => {
            // Kills the group now (the leader is also killed by `kill_on_drop`).
            drop(guard);
            Err(Error::Timeout { command, timeout })
        }
    }
}

/// Runs `program args` and fails with the command, exit code and stderr tail unless it exits 0.
pub async fn run(program: &Path, args: &[OsString], timeout: Duration) -> Result<Output> {
    let out = run_raw(program, args, timeout).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(failed(display(program, args), &out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    #[tokio::test]
    async fn failure_shows_command_code_and_stderr_tail() {
        let script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3";
        let err = run(Path::new("sh"), &sh(script), Duration::from_secs(10))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "failed");
        assert!(msg.contains("`sh -c 'for i in"), "{msg}");
        assert!(msg.contains("exit code 3"), "{msg}");
        assert!(
            msg.contains("line30") && msg.contains("line11") && !msg.contains("line10\n"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn captures_large_stdout_and_stderr_without_deadlock() {
        let script =
            "head -c 300000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2";
        let out = run(Path::new("sh"), &sh(script), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 300000);
        assert_eq!(out.stderr.len(), 300000);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The grandchild would write the marker after 2s unless its group is killed.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let err = run(Path::new("sh"), &sh(&script), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = run(
            Path::new("/nonexistent/docker"),
            &[],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), "spawn");
        assert!(err.to_string().contains("/nonexistent/docker"));
    }

    #[tokio::test]
    async fn a_given_environment_replaces_the_inherited_one() {
        let env = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("ONLY".to_string(), "this".to_string()),
        ];
        let out = run_raw_with_env(
            Path::new("sh"),
            &sh("env | cut -d= -f1 | sort | tr '\\n' ' '"),
            ChildEnv::Only(&env),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        // `sh` itself may add PWD; nothing of c2quay's own environment (HOME, CARGO_*) leaks.
        let names: Vec<&str> = out
            .stdout
            .split_whitespace()
            .filter(|n| *n != "PWD")
            .collect();
        assert_eq!(names, ["ONLY", "PATH"], "{}", out.stdout);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
    }
}
