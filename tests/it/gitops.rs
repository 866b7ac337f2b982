//! Issue 15 items 1 and 2, without Docker: the desired directory as a git checkout. The real
//! binary against local repositories only (`git init --bare`, clone, commit, push; no network):
//! the revision in status, and `c2quay sync` (fast-forward, dirty and diverged refusals, exit
//! codes) and the agent's `--git-sync` metric for a failing sync.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A bare "server" repository and checkouts of it, under one temp directory.
struct Remote {
    root: tempfile::TempDir,
    bare: PathBuf,
}

impl Remote {
    /// A bare repository with one commit on `main` (`README`).
    fn new() -> Remote {
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
    fn clone_to(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        git(
            self.root.path(),
            &["clone", "--quiet", path(&self.bare), path(&dir)],
        );
        dir
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs git in `dir`; panics with its output on failure; returns stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
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

fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// `c2quay args`: (exit code, stdout, stderr).
fn c2quay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("C2QUAY_DESIRED")
        .env_remove("C2QUAY_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run c2quay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_agent_s_status_and_history_carry_the_commit_it_saw() {
    let remote = Remote::new();
    let work = remote.clone_to("work");
    // A manifest that does not validate: the agent reconciles it without Docker.
    std::fs::write(
        work.join("shop.yaml"),
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\nspec: {}\n",
    )
    .expect("manifest");
    let sha = commit_all(&work, "shop, broken");
    let state = remote.root.path().join("state");
    let nowhere = format!("unix://{}", remote.root.path().join("no.sock").display());
    let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["agent", "--once", "--no-http", "--desired", path(&work)])
        .args(["--state-dir", path(&state)])
        .env("DOCKER_HOST", &nowhere)
        .env_remove("C2QUAY_DESIRED")
        .stdin(Stdio::null())
        .output()
        .expect("agent --once");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (code, stdout, stderr) =
        c2quay(&["status", "shop", "-o", "json", "--state-dir", path(&state)]);
    assert_eq!(code, 0, "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["phase"], "Invalid", "{status}");
    let revision = format!("main@sha1:{sha}");
    assert_eq!(status["observedRevision"], revision.as_str(), "{status}");
    assert!(
        status.get("appliedRevision").is_none(),
        "nothing applied: {status}"
    );
    let last = status["history"].as_array().and_then(|h| h.last()).cloned();
    assert_eq!(
        last.expect("a history entry")["revision"],
        revision.as_str()
    );
    let (_, text, _) = c2quay(&["status", "shop", "--state-dir", path(&state)]);
    assert!(
        text.contains(&format!("observed revision: {revision}")),
        "{text}"
    );
}
