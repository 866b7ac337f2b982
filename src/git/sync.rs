//! The one-shot sync of the desired checkout: `git fetch`, then `git merge --ff-only` of the
//! branch's upstream. A dirty work tree (what the agent would deploy is not what is committed)
//! and a diverged branch (local commits the upstream does not have: a force-push, or a commit
//! made on the host) are refused with an error naming the directory and the branch; nothing is
//! merged, reset or stashed. `c2quay sync` and `c2quay agent --git-sync` both run [`sync`].

use std::path::Path;
use std::time::Duration;

use super::{Error, LOCAL_TIMEOUT, Result, Revision, failed, find_git_dir, git, read_revision};

/// How a sync ended, the `result` label of `c2quay_git_sync_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncResult {
    /// The branch moved forward to its upstream.
    FastForwarded,
    /// The branch already was at its upstream.
    UpToDate,
    /// Refused: the work tree has uncommitted changes.
    Dirty,
    /// Refused: the branch and its upstream have diverged.
    Diverged,
    /// Anything else: the fetch failed (network, credentials), no upstream, git missing, ...
    Failed,
}

impl SyncResult {
    /// Every result, for metric initialisation.
    pub const ALL: [SyncResult; 5] = [
        SyncResult::FastForwarded,
        SyncResult::UpToDate,
        SyncResult::Dirty,
        SyncResult::Diverged,
        SyncResult::Failed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncResult::FastForwarded => "fast_forwarded",
            SyncResult::UpToDate => "up_to_date",
            SyncResult::Dirty => "dirty",
            SyncResult::Diverged => "diverged",
            SyncResult::Failed => "failed",
        }
    }

    /// Whether the checkout is at its upstream after the sync.
    pub fn succeeded(self) -> bool {
        matches!(self, SyncResult::FastForwarded | SyncResult::UpToDate)
    }

    /// The result of a sync that ended with `error`.
    pub fn of_error(error: &Error) -> SyncResult {
        match error {
            Error::Dirty { .. } => SyncResult::Dirty,
            Error::Diverged { .. } => SyncResult::Diverged,
            _ => SyncResult::Failed,
        }
    }
}

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Fast-forwarded or already up to date.
    pub result: SyncResult,
    /// The revision before the sync.
    pub from: Option<Revision>,
    /// The revision after it.
    pub to: Option<Revision>,
    /// The upstream followed (`origin/main`).
    pub upstream: String,
}

/// What to do once the work tree's changes and the counts of commits on either side are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to merge.
    UpToDate,
    /// Merge the upstream, a fast-forward.
    FastForward,
    /// Refuse: uncommitted changes.
    RefuseDirty,
    /// Refuse: local commits the upstream does not have.
    RefuseDiverged,
}

/// Decides a sync from the changed paths of the work tree and the commits only on the branch
/// (`ahead`) and only on its upstream (`behind`). Pure.
pub fn decide(dirty: &[String], ahead: u64, behind: u64) -> Decision {
    if !dirty.is_empty() {
        Decision::RefuseDirty
    } else if ahead > 0 {
        Decision::RefuseDiverged
    } else if behind == 0 {
        Decision::UpToDate
    } else {
        Decision::FastForward
    }
}

/// The paths of `git status --porcelain` output (`XY path`, `XY old -> new`). Pure.
pub fn parse_status(porcelain: &str) -> Vec<String> {
    porcelain
        .lines()
        .filter(|l| l.len() > 3)
        .map(|l| {
            let path = &l[3..];
            path.rsplit(" -> ").next().unwrap_or(path).to_string()
        })
        .collect()
}

/// `(ahead, behind)` from `git rev-list --left-right --count HEAD...@{upstream}`. Pure.
pub fn parse_counts(output: &str) -> Option<(u64, u64)> {
    let mut words = output.split_whitespace();
    let ahead = words.next()?.parse().ok()?;
    let behind = words.next()?.parse().ok()?;
    Some((ahead, behind))
}

/// Fetches the upstream of the branch checked out in `dir` and fast-forwards to it. The fetch
/// may take `fetch_timeout`; every other command is local and bounded by [`LOCAL_TIMEOUT`].
pub async fn sync(dir: &Path, fetch_timeout: Duration) -> Result<Synced> {
    if find_git_dir(dir).is_none() {
        return Err(Error::NotAWorkTree {
            dir: dir.to_path_buf(),
        });
    }
    let branch = current_branch(dir).await?;
    let upstream = upstream_of(dir, &branch).await?;
    let status = git(dir, &["status", "--porcelain"], LOCAL_TIMEOUT).await?;
    if !status.success() {
        return Err(failed(dir, "status --porcelain", &status));
    }
    let dirty = parse_status(&status.stdout);
    if decide(&dirty, 0, 0) == Decision::RefuseDirty {
        return Err(Error::Dirty {
            dir: dir.to_path_buf(),
            branch,
            files: dirty.into_iter().take(5).collect(),
        });
    }
    let from = read_revision(dir).await?;
    let fetch = git(dir, &["fetch", "--quiet", "--no-tags"], fetch_timeout).await?;
    if !fetch.success() {
        return Err(failed(dir, "fetch", &fetch));
    }
    let range = "HEAD...@{upstream}";
    let counted = git(
        dir,
        &["rev-list", "--left-right", "--count", range],
        LOCAL_TIMEOUT,
    )
    .await?;
    if !counted.success() {
        return Err(failed(dir, "rev-list --left-right --count", &counted));
    }
    let (ahead, behind) = parse_counts(&counted.stdout).ok_or_else(|| Error::Parse {
        dir: dir.to_path_buf(),
        command: "rev-list --left-right --count".into(),
        detail: format!("{:?} is not two counts", counted.stdout.trim()),
    })?;
    let result = match decide(&[], ahead, behind) {
        Decision::UpToDate => SyncResult::UpToDate,
        Decision::FastForward => {
            let merged = git(
                dir,
                &["merge", "--ff-only", "--quiet", "@{upstream}"],
                LOCAL_TIMEOUT,
            )
            .await?;
            if !merged.success() {
                return Err(failed(dir, "merge --ff-only", &merged));
            }
            SyncResult::FastForwarded
        }
        Decision::RefuseDiverged | Decision::RefuseDirty => {
            return Err(Error::Diverged {
                dir: dir.to_path_buf(),
                branch,
                upstream,
                ahead,
                behind,
            });
        }
    };
    let to = read_revision(dir).await?;
    Ok(Synced {
        result,
        from,
        to,
        upstream,
    })
}

/// The branch checked out in `dir`.
async fn current_branch(dir: &Path) -> Result<String> {
    let out = git(
        dir,
        &["symbolic-ref", "--quiet", "--short", "HEAD"],
        LOCAL_TIMEOUT,
    )
    .await?;
    match out.code {
        Some(0) => Ok(out.stdout.trim().to_string()),
        // `--quiet`: exit 1 without a message means HEAD is not a symbolic ref.
        Some(1) => Err(Error::Detached {
            dir: dir.to_path_buf(),
        }),
        _ => Err(failed(dir, "symbolic-ref HEAD", &out)),
    }
}

/// The upstream of `branch` (`origin/main`).
async fn upstream_of(dir: &Path, branch: &str) -> Result<String> {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--abbrev-ref",
            "--symbolic-full-name",
            "@{upstream}",
        ],
        LOCAL_TIMEOUT,
    )
    .await?;
    let upstream = out.stdout.trim();
    if out.success() && !upstream.is_empty() {
        Ok(upstream.to_string())
    } else {
        Err(Error::NoUpstream {
            dir: dir.to_path_buf(),
            branch: branch.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_fast_forwards_only_a_clean_branch_that_is_behind() {
        let clean: &[String] = &[];
        let dirty = ["web.yaml".to_string()];
        assert_eq!(decide(clean, 0, 0), Decision::UpToDate);
        assert_eq!(decide(clean, 0, 3), Decision::FastForward);
        assert_eq!(decide(clean, 1, 0), Decision::RefuseDiverged);
        assert_eq!(decide(clean, 2, 5), Decision::RefuseDiverged);
        assert_eq!(decide(&dirty, 0, 3), Decision::RefuseDirty);
        assert_eq!(decide(&dirty, 2, 5), Decision::RefuseDirty);
    }

    #[test]
    fn porcelain_status_gives_the_changed_paths() {
        let out = " M shop.yaml\n?? new.yaml\nR  old.yaml -> renamed.yaml\n";
        assert_eq!(parse_status(out), ["shop.yaml", "new.yaml", "renamed.yaml"]);
        assert!(parse_status("").is_empty());
    }

    #[test]
    fn left_right_counts_are_ahead_then_behind() {
        assert_eq!(parse_counts("1\t4\n"), Some((1, 4)));
        assert_eq!(parse_counts("0 0"), Some((0, 0)));
        assert_eq!(parse_counts("fatal"), None);
    }

    #[test]
    fn every_error_has_a_closed_sync_result() {
        let dir = std::path::PathBuf::from("/d");
        let dirty = Error::Dirty {
            dir: dir.clone(),
            branch: "main".into(),
            files: vec!["a.yaml".into()],
        };
        assert_eq!(SyncResult::of_error(&dirty), SyncResult::Dirty);
        let message = dirty.to_string();
        assert!(
            message.contains("/d") && message.contains("main"),
            "{message}"
        );
        let detached = Error::Detached { dir };
        assert_eq!(SyncResult::of_error(&detached), SyncResult::Failed);
        assert!(SyncResult::UpToDate.succeeded() && !SyncResult::Diverged.succeeded());
    }
}

/// What the last `c2quay sync` did, kept in the state directory (`git-sync.json`) so that an
/// agent that does not sync itself (the shipped timer does) exports the same
/// `c2quay_git_sync_*` series and the sync alert can fire. Advisory, like the audit log: a
/// file that does not parse is ignored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// When the sync ended.
    #[serde(with = "crate::state::clock::rfc3339")]
    pub at: std::time::SystemTime,
    /// [`SyncResult::as_str`] of it.
    pub result: String,
    /// When a sync last left the checkout at its upstream (this one, or an earlier one).
    #[serde(default, with = "crate::state::clock::rfc3339_opt")]
    pub last_success_at: Option<std::time::SystemTime>,
}

/// The name of the record in the state directory.
pub const RECORD_FILE: &str = "git-sync.json";

impl SyncRecord {
    /// The record of a sync that ended at `at` with `result`, after `previous`.
    pub fn after(
        previous: Option<&SyncRecord>,
        result: SyncResult,
        at: std::time::SystemTime,
    ) -> Self {
        let last_success_at = match result.succeeded() {
            true => Some(at),
            false => previous.and_then(|p| p.last_success_at),
        };
        SyncRecord {
            at,
            result: result.as_str().to_string(),
            last_success_at,
        }
    }

    /// The result as the enum (`Failed` for a word this version does not know).
    pub fn sync_result(&self) -> SyncResult {
        (SyncResult::ALL.into_iter())
            .find(|r| r.as_str() == self.result)
            .unwrap_or(SyncResult::Failed)
    }
}
