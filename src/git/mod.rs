//! The desired directory as a git work tree: the commit it is at ([`Revision`], read once per
//! load of the desired set; [`head_commit`], the same commit read from the files, for
//! `version: { from: git }`) and the one-shot sync ([`sync::sync`]: fetch, then fast-forward
//! only, refusing a dirty or diverged checkout).
//!
//! `git` itself runs through the crate's one child-process runner (`docker::run`: process
//! group, `PR_SET_PDEATHSIG`, timeout), never a git library: every GitOps host has `git`, and
//! the library that could replace it (`gix`) is a very large dependency for two reads and a
//! fast-forward. The children get no terminal prompt (`GIT_TERMINAL_PROMPT=0`), no optional
//! index lock (`GIT_OPTIONAL_LOCKS=0`: the agent's checkout may be read-only) and no
//! inherited `GIT_DIR`-style redirection; every message taken from git's output has the
//! credentials of remote URLs stripped ([`redact_userinfo`]).
//!
//! **Invariant:** only this module names `git` as a program.

mod head;
pub mod sync;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::docker::run::{ChildEnv, Output, run_raw_with_env};

pub use head::head_commit;

/// How long a local git command (no network) may take.
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors from git.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `git` could not be started, or did not finish in time.
    #[error("cannot run git in {}", dir.display())]
    Unavailable {
        /// The directory.
        dir: PathBuf,
        /// The runner's error.
        #[source]
        source: crate::docker::Error,
    },
    /// A git command failed.
    #[error("`git {command}` failed in {}: {detail}", dir.display())]
    Failed {
        /// The directory.
        dir: PathBuf,
        /// The git subcommand and its arguments.
        command: String,
        /// The last lines of its output, credentials stripped.
        detail: String,
    },
    /// The directory is not inside a git work tree.
    #[error("{} is not inside a git work tree", dir.display())]
    NotAWorkTree {
        /// The directory.
        dir: PathBuf,
    },
    /// HEAD is detached: there is no branch to fast-forward.
    #[error("{} has a detached HEAD: no branch to fast-forward; check out the branch to follow (`git -C {} switch main`)", dir.display(), dir.display())]
    Detached {
        /// The directory.
        dir: PathBuf,
    },
    /// The branch has no upstream to fetch and fast-forward from.
    #[error("branch {branch} of {} has no upstream; set one (`git -C {} branch --set-upstream-to origin/{branch}`)", dir.display(), dir.display())]
    NoUpstream {
        /// The directory.
        dir: PathBuf,
        /// The branch.
        branch: String,
    },
    /// The work tree has uncommitted changes: a sync would deploy (or lose) them.
    #[error("refusing to sync {} (branch {branch}): the work tree has uncommitted changes ({}); commit, stash or discard them", dir.display(), files.join(", "))]
    Dirty {
        /// The directory.
        dir: PathBuf,
        /// The branch.
        branch: String,
        /// Up to five changed paths, relative to the work tree.
        files: Vec<String>,
    },
    /// The branch has commits its upstream does not: not a fast-forward.
    #[error("refusing to sync {} (branch {branch}): it has diverged from {upstream} ({ahead} local commit(s) not upstream, {behind} upstream not merged); only fast-forwards are applied: reset the checkout to {upstream} if the upstream history is the one to deploy", dir.display())]
    Diverged {
        /// The directory.
        dir: PathBuf,
        /// The branch.
        branch: String,
        /// The upstream (`origin/main`).
        upstream: String,
        /// Commits on the branch only.
        ahead: u64,
        /// Commits on the upstream only.
        behind: u64,
    },
    /// HEAD could not be read from the git directory's files ([`head_commit`]).
    #[error("cannot read the commit of {}: {detail}", dir.display())]
    Unreadable {
        /// The directory.
        dir: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Git's output could not be understood.
    #[error("cannot understand `git {command}` in {}: {detail}", dir.display())]
    Parse {
        /// The directory.
        dir: PathBuf,
        /// The git subcommand.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// A bounded label for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::Failed { .. } => "failed",
            Error::NotAWorkTree { .. } => "not_a_work_tree",
            Error::Detached { .. } => "detached",
            Error::NoUpstream { .. } => "no_upstream",
            Error::Dirty { .. } => "dirty",
            Error::Diverged { .. } => "diverged",
            Error::Unreadable { .. } => "unreadable",
            Error::Parse { .. } => "parse",
        }
    }

    /// Whether trying again later may succeed (the network, a git server, a lock).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Failed { .. })
    }
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The commit a checkout is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The branch checked out; `None` for a detached HEAD.
    pub branch: Option<String>,
    /// The commit's full object name (40 hex digits, 64 in a SHA-256 repository).
    pub sha: String,
    /// The commit's committer time.
    pub committed_at: Option<SystemTime>,
}

impl std::fmt::Display for Revision {
    /// `main@sha1:<40 hex>` (Flux's form), `sha1:<hex>` for a detached HEAD; `sha256:` in a
    /// SHA-256 repository.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithm = if self.sha.len() == 64 {
            "sha256"
        } else {
            "sha1"
        };
        match &self.branch {
            Some(branch) => write!(f, "{branch}@{algorithm}:{}", self.sha),
            None => write!(f, "{algorithm}:{}", self.sha),
        }
    }
}

/// The git directory of the work tree holding `dir`: the nearest `.git` directory (or the
/// directory a `.git` file points to, as in a linked work tree) in `dir` or above it; `None`
/// when there is none. Reads a few file names only, so a directory that is not in a work tree
/// costs no process.
pub fn find_git_dir(dir: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(dir).ok()?;
    for candidate in start.ancestors() {
        let dot_git = candidate.join(".git");
        let Ok(meta) = std::fs::metadata(&dot_git) else {
            continue;
        };
        if meta.is_dir() {
            return Some(dot_git);
        }
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let pointed = text.strip_prefix("gitdir:")?.trim();
        return Some(candidate.join(pointed));
    }
    None
}

/// What changes when HEAD moves (a commit, a fast-forward, a checkout): the size and
/// modification time of `HEAD` and of its reflog (`logs/HEAD`) in `git_dir`. Compared by the
/// agent's resync, which reloads the desired set (and reads the revision again) when it
/// differs.
pub fn head_stamp(git_dir: &Path) -> Vec<(u64, Option<SystemTime>)> {
    ["HEAD", "logs/HEAD"]
        .iter()
        .map(|name| match std::fs::metadata(git_dir.join(name)) {
            Ok(meta) => (meta.len(), meta.modified().ok()),
            Err(_) => (0, None),
        })
        .collect()
}

/// The commit the work tree holding `dir` is at; `Ok(None)` when `dir` is not in a work tree
/// or the branch has no commit yet.
pub async fn read_revision(dir: &Path) -> Result<Option<Revision>> {
    if find_git_dir(dir).is_none() {
        return Ok(None);
    }
    let head = git(
        dir,
        &["rev-parse", "--symbolic-full-name", "HEAD"],
        LOCAL_TIMEOUT,
    )
    .await?;
    if !head.success() {
        if unborn(&head.stderr) {
            return Ok(None);
        }
        return Err(failed(dir, "rev-parse --symbolic-full-name HEAD", &head));
    }
    let log = git(
        dir,
        &["log", "-1", "--format=%H %ct", "HEAD"],
        LOCAL_TIMEOUT,
    )
    .await?;
    if !log.success() {
        if unborn(&log.stderr) {
            return Ok(None);
        }
        return Err(failed(dir, "log -1", &log));
    }
    parse_revision(&head.stdout, &log.stdout)
        .map(Some)
        .map_err(|detail| Error::Parse {
            dir: dir.to_path_buf(),
            command: "log -1 --format=%H %ct".into(),
            detail,
        })
}

/// The revision from the output of `git rev-parse --symbolic-full-name HEAD` (`refs/heads/main`,
/// or `HEAD` when detached) and of `git log -1 --format='%H %ct'`. Pure.
pub fn parse_revision(symbolic_head: &str, log: &str) -> Result<Revision, String> {
    let head = symbolic_head.trim();
    let branch = head
        .strip_prefix("refs/heads/")
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    let mut words = log.split_whitespace();
    let sha = words.next().unwrap_or_default();
    if !matches!(sha.len(), 40 | 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{:?} is not a commit's object name", log.trim()));
    }
    let committed_at = words
        .next()
        .and_then(|t| t.parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    Ok(Revision {
        branch,
        sha: sha.to_ascii_lowercase(),
        committed_at,
    })
}

/// Whether git's stderr says the branch has no commit yet.
fn unborn(stderr: &str) -> bool {
    stderr.contains("does not have any commits yet") || stderr.contains("ambiguous argument 'HEAD'")
}

/// `text` with the credentials of every URL removed: `https://user:token@host/x` becomes
/// `https://host/x`. Git prints remote URLs in errors (`unable to access '...'`); c2quay never
/// lets one with credentials into a log, a status file or a metric. Pure.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "'\"<>`".contains(c)
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(userinfo_end) => out.push_str(&authority[userinfo_end + 1..]),
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Runs `git -C dir args` with c2quay's git environment (see the module doc); returns its
/// output whatever the exit code.
async fn git(dir: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    let mut argv: Vec<OsString> = vec!["-C".into(), dir.as_os_str().to_owned()];
    argv.extend(args.iter().map(OsString::from));
    let env = child_env();
    run_raw_with_env(Path::new("git"), &argv, ChildEnv::Only(&env), timeout)
        .await
        .map_err(|source| Error::Unavailable {
            dir: dir.to_path_buf(),
            source,
        })
}

/// The environment of a git child: c2quay's own (its UTF-8 variables), without the variables
/// that would point git at another repository, plus no prompt, no optional locks and plain
/// English messages.
fn child_env() -> Vec<(String, String)> {
    const DROPPED: [&str; 5] = [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
    ];
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "GIT_TERMINAL_PROMPT" | "GIT_OPTIONAL_LOCKS" | "LC_ALL"
            )
        })
        .collect();
    env.push(("GIT_TERMINAL_PROMPT".into(), "0".into()));
    env.push(("GIT_OPTIONAL_LOCKS".into(), "0".into()));
    env.push(("LC_ALL".into(), "C".into()));
    env
}

/// The `Failed` error of a git command, its output's tail with credentials stripped.
fn failed(dir: &Path, command: &str, out: &Output) -> Error {
    let source = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let tail = crate::docker::run::tail(source, 5);
    let detail = match out.code {
        Some(code) if tail.is_empty() => format!("exit code {code}"),
        Some(code) => format!("exit code {code}: {}", redact_userinfo(&tail)),
        None => "killed by a signal".to_string(),
    };
    Error::Failed {
        dir: dir.to_path_buf(),
        command: command.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_revision_is_branch_at_sha1_or_just_the_sha_when_detached() {
        let on_main = parse_revision("refs/heads/main\n", &format!("{SHA} 1700000000\n")).unwrap();
        assert_eq!(on_main.to_string(), format!("main@sha1:{SHA}"));
        assert_eq!(
            on_main.committed_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        let detached = parse_revision("HEAD\n", &format!("{SHA} 1700000000\n")).unwrap();
        assert_eq!(detached.to_string(), format!("sha1:{SHA}"));
        let nested = parse_revision("refs/heads/hosts/web-1", &format!("{SHA} 1")).unwrap();
        assert_eq!(nested.branch.as_deref(), Some("hosts/web-1"));
        let sha256 = "a".repeat(64);
        let long = parse_revision("refs/heads/main", &format!("{sha256} 1")).unwrap();
        assert_eq!(long.to_string(), format!("main@sha256:{sha256}"));
    }

    #[test]
    fn output_that_is_not_a_commit_is_an_error() {
        assert!(parse_revision("refs/heads/main", "").is_err());
        assert!(parse_revision("refs/heads/main", "fatal: bad 1").is_err());
        assert!(parse_revision("refs/heads/main", &format!("{}zz 1", &SHA[..38])).is_err());
    }

    #[test]
    fn credentials_in_urls_are_stripped_and_everything_else_kept() {
        assert_eq!(
            redact_userinfo(
                "fatal: unable to access 'https://ci:s3cr3t@git.example.com/desired.git/': 403"
            ),
            "fatal: unable to access 'https://git.example.com/desired.git/': 403"
        );
        assert_eq!(
            redact_userinfo("ssh://git@host:22/x and http://tok@h"),
            "ssh://host:22/x and http://h"
        );
        let plain = "fatal: 'origin' does not appear to be a git repository (git@host:x.git)";
        assert_eq!(redact_userinfo(plain), plain);
        assert_eq!(redact_userinfo("no url"), "no url");
    }

    #[test]
    fn a_directory_outside_any_work_tree_has_no_git_dir() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("desired");
        std::fs::create_dir_all(&inner).unwrap();
        // /tmp is not in a work tree on a test machine; a `.git` above it would be found.
        if find_git_dir(dir.path()).is_none() {
            assert_eq!(find_git_dir(&inner), None);
        }
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        assert_eq!(
            find_git_dir(&inner),
            Some(std::fs::canonicalize(dir.path()).unwrap().join(".git"))
        );
    }

    /// Runs git in `dir` for a test, through the module's own runner; panics on failure.
    async fn run_git(dir: &Path, args: &[&str]) -> String {
        let out = git(dir, args, LOCAL_TIMEOUT).await.unwrap();
        assert!(out.success(), "git {args:?}: {}", out.stderr);
        out.stdout.trim().to_string()
    }

    #[tokio::test]
    async fn the_revision_of_a_checkout_names_its_branch_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        assert_eq!(
            read_revision(&work).await.unwrap(),
            None,
            "not a work tree yet"
        );
        run_git(&work, &["init", "--quiet", "--initial-branch=main"]).await;
        assert_eq!(read_revision(&work).await.unwrap(), None, "no commit yet");
        std::fs::write(work.join("shop.yaml"), "a: 1\n").unwrap();
        run_git(&work, &["add", "shop.yaml"]).await;
        let identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"];
        let commit = [&identity[..], &["commit", "--quiet", "-m", "one"]].concat();
        run_git(&work, &commit).await;
        let sha = run_git(&work, &["rev-parse", "HEAD"]).await;
        let revision = read_revision(&work).await.unwrap().unwrap();
        assert_eq!(revision.to_string(), format!("main@sha1:{sha}"));
        assert!(revision.committed_at.is_some());
        run_git(&work, &["checkout", "--quiet", "--detach"]).await;
        let detached = read_revision(&work).await.unwrap().unwrap();
        assert_eq!(detached.to_string(), format!("sha1:{sha}"));
    }

    #[test]
    fn a_git_file_points_at_the_linked_work_tree_s_git_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".git"),
            "gitdir: /srv/repo/.git/worktrees/w\n",
        )
        .unwrap();
        assert_eq!(
            find_git_dir(dir.path()),
            Some(PathBuf::from("/srv/repo/.git/worktrees/w"))
        );
    }
}
