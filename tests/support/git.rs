//! Local git repositories for the GitOps tests (issue 15): a bare "server" repository and
//! clones of it, committed to and pushed with the `git` CLI, never over a network. The
//! commands ignore the machine's and the user's git configuration.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A bare "server" repository and checkouts of it, under one temp directory.
pub struct Remote {
    pub root: tempfile::TempDir,
    pub bare: PathBuf,
}

impl Remote {
    /// A bare repository with one commit on `main` (`README`).
    pub fn new() -> Remote {
        let root = tempfile::tempdir().expect("tempdir");
        let bare = root.path().join("desired.git");
        git(
            root.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                path(&bare),
            ],
        );
        let remote = Remote { root, bare };
        let seed = remote.clone_to("seed");
        std::fs::write(seed.join("README"), "desired state\n").expect("README");
        commit_all(&seed, "seed");
        git(&seed, &["push", "--quiet", "origin", "main"]);
        remote
    }

    /// A new clone of `main` named `name`.
    pub fn clone_to(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        self.clone_into(&dir);
        dir
    }

    /// A new clone of `main` at `dir` (which must not exist yet).
    pub fn clone_into(&self, dir: &Path) {
        git(
            self.root.path(),
            &["clone", "--quiet", path(&self.bare), path(dir)],
        );
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs git in `dir`; panics with its output on failure; returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=c2quay test",
            "-c",
            "user.email=test@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Whether `dir` or a directory above it holds a `.git` (then it is inside a work tree).
pub fn git_dir_above(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).expect("canonical path");
    dir.ancestors().any(|d| d.join(".git").exists())
}
