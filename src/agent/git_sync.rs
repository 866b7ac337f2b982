//! `c2quay agent --git-sync <interval>`: the agent keeps its desired checkout at its upstream
//! itself, with the same fetch + fast-forward as `c2quay sync` ([`crate::git::sync::sync`]).
//!
//! The sync runs in a task of its own, one at a time, never in the main loop: a slow git server
//! delays only the next sync (the fetch is killed after [`SYNC_TIMEOUT`]). Each sync counts in
//! `c2quay_git_sync_total{result}`; one that leaves the checkout at its upstream sets
//! `c2quay_git_sync_last_success_timestamp_seconds`. A fast-forward reloads the desired set
//! ([`Event::DesiredChanged`]), even when it changed no manifest, so the new revision is read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Event;
use crate::git::sync::{SyncRecord, SyncResult, sync};
use crate::metrics::Metrics;
use crate::state::Clock;

/// How long one fetch may take before it is killed.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// How often an agent that does not sync itself looks at the record `c2quay sync` keeps.
const RECORD_POLL: Duration = Duration::from_secs(15);

/// For an agent without `--git-sync`: follows the [`SyncRecord`] that `c2quay sync` (the
/// shipped timer) keeps in the state directory, and exports it as the same series, so the sync
/// alert fires for a failing timer too. No record, no series.
pub fn follow_record(state_dir: PathBuf, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let path = state_dir.join(crate::git::sync::RECORD_FILE);
        let mut seen: Option<SyncRecord> = None;
        loop {
            let record: Option<SyncRecord> = (tokio::fs::read_to_string(&path).await.ok())
                .and_then(|text| serde_json::from_str(&text).ok());
            if let Some(record) = record.filter(|r| Some(r) != seen.as_ref()) {
                if seen.is_none() {
                    metrics.init_git_sync();
                }
                metrics.observe_git_sync(record.sync_result(), record.at);
                if let Some(at) = record.last_success_at {
                    metrics.set_git_sync_last_success(at);
                }
                seen = Some(record);
            }
            tokio::time::sleep(RECORD_POLL).await;
        }
    });
}

/// Starts the sync task: a sync at once, then one every `interval` after the previous ended.
pub fn start(
    dir: PathBuf,
    interval: Duration,
    metrics: Option<Arc<Metrics>>,
    clock: Arc<dyn Clock>,
    tx: mpsc::UnboundedSender<Event>,
) {
    if let Some(metrics) = &metrics {
        metrics.init_git_sync();
    }
    tokio::spawn(async move {
        loop {
            let result = match sync(&dir, SYNC_TIMEOUT).await {
                Ok(synced) => {
                    let to = synced.to.as_ref().map(ToString::to_string);
                    if synced.result == SyncResult::FastForwarded {
                        info!(dir = %dir.display(), revision = ?to, upstream = %synced.upstream, "desired checkout fast-forwarded");
                        let _ = tx.send(Event::DesiredChanged);
                    }
                    synced.result
                }
                Err(error) => {
                    warn!(dir = %dir.display(), kind = error.kind(), error = %crate::error_chain(&error), "desired checkout sync failed");
                    SyncResult::of_error(&error)
                }
            };
            if let Some(metrics) = &metrics {
                metrics.observe_git_sync(result, clock.now());
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
}
