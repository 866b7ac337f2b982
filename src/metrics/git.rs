//! The desired checkout as git sees it: `c2quay_git_sync_total{result}`,
//! `c2quay_git_sync_last_success_timestamp_seconds` (both only when this agent syncs, with
//! `--git-sync`) and `c2quay_desired_revision_timestamp_seconds` (when the desired directory is
//! a git work tree). Series without labels that appear only once set, so an agent that does not
//! sync exports none and the sync alert cannot fire for it.

use std::time::SystemTime;

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::register::{counter, gauge};
use super::{Metrics, Result, unix_seconds};
use crate::git::sync::SyncResult;

/// The label values of the series without labels.
const NO_LABELS: &[&str] = &[];

/// The three git series.
#[derive(Debug)]
pub(super) struct GitMetrics {
    sync_total: IntCounterVec,
    sync_last_success: IntGaugeVec,
    revision_timestamp: IntGaugeVec,
}

impl GitMetrics {
    /// Creates and registers them, with no series yet.
    pub(super) fn register(registry: &Registry) -> Result<GitMetrics> {
        Ok(GitMetrics {
            sync_total: counter(
                registry,
                "git_sync_total",
                "Syncs of the desired checkout by --git-sync (fetch + fast-forward), by result (fast_forwarded, up_to_date, dirty, diverged, failed).",
                &["result"],
            )?,
            sync_last_success: gauge(
                registry,
                "git_sync_last_success_timestamp_seconds",
                "Unix time of the last sync that left the desired checkout at its upstream; 0 until the first since the agent started.",
                &[],
            )?,
            revision_timestamp: gauge(
                registry,
                "desired_revision_timestamp_seconds",
                "Commit time of the desired checkout's HEAD at the last load of the desired directory.",
                &[],
            )?,
        })
    }
}

impl Metrics {
    /// Creates the sync series (every result at 0, the last success at 0): this agent syncs.
    pub fn init_git_sync(&self) {
        for result in SyncResult::ALL {
            self.git.sync_total.with_label_values(&[result.as_str()]);
        }
        self.git
            .sync_last_success
            .with_label_values(NO_LABELS)
            .set(0);
    }

    /// Counts one sync; a successful one (at its upstream after it) sets the last success.
    pub fn observe_git_sync(&self, result: SyncResult, at: SystemTime) {
        self.git
            .sync_total
            .with_label_values(&[result.as_str()])
            .inc();
        if result.succeeded() {
            self.git
                .sync_last_success
                .with_label_values(NO_LABELS)
                .set(unix_seconds(at));
        }
    }

    /// Sets the time of the last successful sync (from the record `c2quay sync` keeps).
    pub fn set_git_sync_last_success(&self, at: SystemTime) {
        self.git
            .sync_last_success
            .with_label_values(NO_LABELS)
            .set(unix_seconds(at));
    }

    /// Sets the commit time of the desired checkout's HEAD.
    pub fn set_desired_revision_time(&self, committed_at: SystemTime) {
        self.git
            .revision_timestamp
            .with_label_values(NO_LABELS)
            .set(unix_seconds(committed_at));
    }
}
