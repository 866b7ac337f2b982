//! Issue 19, item 8: every command ends quietly when its stdout is closed (`c2quay status |
//! head -1`): killed by SIGPIPE as coreutils are (`src/main.rs` says why), never a panic with
//! exit 101 and a backtrace.
//!
//! The pipe's read end is closed before the command starts, so its first write fails with
//! EPIPE every time (no race with a reader that closes "soon").

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use c2quay::state::{EnvironmentStatus, StateDir};

/// A pipe whose read end is already closed: its write end, to give a child as stdout.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created by pipe(2) and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// Runs `c2quay args` with stdout closed; returns a description of how it ended, and stderr.
fn run_closed(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .expect("run c2quay");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state_with_statuses(root: &Path) -> StateDir {
    let state = StateDir::open(root).expect("state dir");
    for i in 0..50 {
        let mut status = EnvironmentStatus::new(&format!("env{i:02}"));
        status.message = "x".repeat(200);
        state
            .write_status(status.name.as_str(), &status)
            .expect("status");
    }
    state
}

#[test]
fn every_printing_command_ends_quietly_by_sigpipe_when_stdout_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    let _state = state_with_statuses(&root);
    let root = root.to_str().expect("utf-8 path");
    let desired = dir.path().join("desired");
    std::fs::create_dir(&desired).expect("desired dir");
    let desired = desired.to_str().expect("utf-8 path");
    let cases: [&[&str]; 6] = [
        &["status", "--state-dir", root],
        &["status", "--state-dir", root, "-o", "json"],
        &["status", "env07", "--state-dir", root],
        &["schema"],
        &["validate", "--allow-empty", desired],
        &["--help"],
    ];
    let mut problems = Vec::new();
    for args in cases {
        let (status, stderr) = run_closed(args);
        let quiet = !stderr.contains("panicked")
            && !stderr.contains("Broken pipe")
            && !stderr.contains("stack backtrace");
        // Killed by SIGPIPE (the shell's 141), or exit 0 where the output fit in before the
        // failure could be seen (never here: the read end is closed before the start).
        let sigpipe = status.signal() == Some(libc::SIGPIPE);
        if !(quiet && (sigpipe || status.code() == Some(0))) {
            problems.push(format!("c2quay {args:?}: {status:?}, stderr:\n{stderr}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_closed_stdout_does_not_hide_errors_on_stderr() {
    let (status, stderr) = run_closed(&["status", "missing", "--state-dir", "/nonexistent/c2q"]);
    assert_eq!(status.code(), Some(1), "{status:?}: {stderr}");
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
