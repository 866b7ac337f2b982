//! `c2quay sync`: one fetch + fast-forward of the desired checkout (what the shipped
//! `c2quay-desired-sync.timer` runs, and what `c2quay agent --git-sync` runs in its loop).

use std::path::PathBuf;
use std::time::Duration;

use crate::error_chain;
use crate::git::sync::{self, SyncRecord, SyncResult};

/// The exit codes of `c2quay sync`.
pub const SYNC_EXIT_CODES: &str = "\
Exit codes:
  0   the checkout is at its upstream (fast-forwarded, or already up to date)
  1   the sync failed: not a git work tree, detached HEAD, no upstream, the fetch failed (network, credentials), git missing
  2   usage error
  10  refused: the work tree has uncommitted changes (nothing fetched or merged)
  11  refused: the branch has diverged from its upstream (not a fast-forward; nothing merged)";

/// Arguments of `c2quay sync`.
#[derive(Debug, clap::Args)]
#[command(after_help = SYNC_EXIT_CODES)]
pub struct SyncArgs {
    /// The desired directory: a git checkout (or a directory inside one).
    #[arg(long, env = "C2QUAY_DESIRED", default_value = "/etc/c2quay/desired")]
    pub desired: PathBuf,
    /// How long the fetch may take before it is killed.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The agent's state directory: when given, the outcome is kept there (`git-sync.json`),
    /// and the agent exports it as its `c2quay_git_sync_*` series (the sync alert).
    #[arg(long, env = "C2QUAY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Writes the [`SyncRecord`] of this sync into `state_dir` (a warning when it cannot).
fn keep_record(state_dir: &std::path::Path, result: SyncResult) {
    let path = state_dir.join(sync::RECORD_FILE);
    let previous: Option<SyncRecord> =
        (std::fs::read_to_string(&path).ok()).and_then(|text| serde_json::from_str(&text).ok());
    let record = SyncRecord::after(previous.as_ref(), result, std::time::SystemTime::now());
    if let Err(error) = crate::state::atomic::write_json_atomic(&path, &record) {
        eprintln!(
            "warning: the sync's record for the agent: {}",
            error_chain(&error)
        );
    }
}

/// The exit code of a sync that ended with `result`.
pub fn exit_code(result: SyncResult) -> i32 {
    match result {
        SyncResult::FastForwarded | SyncResult::UpToDate => 0,
        SyncResult::Failed => 1,
        SyncResult::Dirty => 10,
        SyncResult::Diverged => 11,
    }
}

/// Runs `sync`.
pub async fn run(args: SyncArgs) -> i32 {
    let synced = sync::sync(&args.desired, args.timeout).await;
    if let Some(state_dir) = &args.state_dir {
        let result = match &synced {
            Ok(synced) => synced.result,
            Err(error) => SyncResult::of_error(error),
        };
        keep_record(state_dir, result);
    }
    match synced {
        Ok(synced) => {
            let to = synced.to.as_ref().map(ToString::to_string);
            let to = to.as_deref().unwrap_or("(no commit)");
            match synced.result {
                SyncResult::FastForwarded => {
                    let from = synced.from.as_ref().map(ToString::to_string);
                    println!(
                        "{}: fast-forwarded to {to} (from {}, upstream {})",
                        args.desired.display(),
                        from.as_deref().unwrap_or("(no commit)"),
                        synced.upstream
                    );
                }
                _ => println!(
                    "{}: up to date at {to} (upstream {})",
                    args.desired.display(),
                    synced.upstream
                ),
            }
            0
        }
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            exit_code(SyncResult::of_error(&error))
        }
    }
}
