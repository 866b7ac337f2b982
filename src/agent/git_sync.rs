//! `c2quay agent --git-sync <interval>`: the agent keeps its desired checkout at its upstream
//! itself, with the same fetch + fast-forward as `c2quay sync` ([`crate::git::sync::sync`]).
//!
//! The sync runs in a task of its own, one at a time, never in the main loop: a slow git server
//! delays only the next sync (the fetch is killed after [`SYNC_TIMEOUT`]). Each sync counts in
//! `c2quay_git_sync_total{result}`; one that leaves the checkout at its upstream sets
//! `c2quay_git_sync_last_success_timestamp_seconds`. A fast-forward reloads the desired set
//! ([`Event::DesiredChanged`]), even when it changed no manifest, so the new revision is read.
//!
//! The trigger endpoint asks for a sync now through a [`GitSyncHandle`] and waits for its end:
//! requests that arrive while a sync runs are answered together by the next one (a sync that
//! started before a request may have missed the push it is about).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
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

/// What a sync asked for through a [`GitSyncHandle`] ended with.
#[derive(Debug, Clone)]
pub struct SyncAnswer {
    /// The result.
    pub result: SyncResult,
    /// For a human: the revision reached, or why the sync failed (credentials redacted).
    pub message: String,
}

impl SyncAnswer {
    /// Whether the checkout is at its upstream now.
    pub fn ok(&self) -> bool {
        matches!(
            self.result,
            SyncResult::FastForwarded | SyncResult::UpToDate
        )
    }
}

/// Asks the sync task for a sync now.
#[derive(Debug, Clone)]
pub struct GitSyncHandle {
    requests: mpsc::UnboundedSender<oneshot::Sender<SyncAnswer>>,
}

impl GitSyncHandle {
    /// Runs a sync that starts after this call and returns how it ended; after a
    /// fast-forward, its [`Event::DesiredChanged`] is sent before this returns. `None` when the
    /// sync task is gone.
    pub async fn sync_now(&self) -> Option<SyncAnswer> {
        let (answer, answered) = oneshot::channel();
        self.requests.send(answer).ok()?;
        answered.await.ok()
    }
}

/// Starts the sync task: a sync at once, then one every `interval` after the previous ended,
/// or as soon as the returned handle asks.
pub fn start(
    dir: PathBuf,
    interval: Duration,
    metrics: Option<Arc<Metrics>>,
    clock: Arc<dyn Clock>,
    tx: mpsc::UnboundedSender<Event>,
) -> GitSyncHandle {
    if let Some(metrics) = &metrics {
        metrics.init_git_sync();
    }
    let (requests, mut requested) = mpsc::unbounded_channel::<oneshot::Sender<SyncAnswer>>();
    tokio::spawn(async move {
        let mut waiting = Vec::new();
        loop {
            let answer = match sync(&dir, SYNC_TIMEOUT).await {
                Ok(synced) => {
                    let to = synced.to.as_ref().map(ToString::to_string);
                    if synced.result == SyncResult::FastForwarded {
                        info!(dir = %dir.display(), revision = ?to, upstream = %synced.upstream, "desired checkout fast-forwarded");
                        let _ = tx.send(Event::DesiredChanged);
                    }
                    SyncAnswer {
                        result: synced.result,
                        message: format!(
                            "{} at {} ({})",
                            synced.result.as_str(),
                            to.as_deref().unwrap_or("an unknown revision"),
                            synced.upstream
                        ),
                    }
                }
                Err(error) => {
                    warn!(dir = %dir.display(), kind = error.kind(), error = %crate::error_chain(&error), "desired checkout sync failed");
                    SyncAnswer {
                        result: SyncResult::of_error(&error),
                        message: crate::error_chain(&error),
                    }
                }
            };
            if let Some(metrics) = &metrics {
                metrics.observe_git_sync(answer.result, clock.now());
            }
            for waiter in waiting.drain(..) {
                let _ = oneshot::Sender::send(waiter, answer.clone());
            }
            if tx.is_closed() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                Some(waiter) = requested.recv() => waiting.push(waiter),
            }
            while let Ok(waiter) = requested.try_recv() {
                waiting.push(waiter);
            }
        }
    });
    GitSyncHandle { requests }
}
