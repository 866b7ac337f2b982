//! An environment whose manifest was removed: `Orphaned`, and pruned first when its last
//! applied manifest asked for `policy.prune: onRemove`.

use std::sync::Arc;
use std::time::Duration;

use crate::docker::Compose;
use crate::error_chain;
use crate::pipeline::{self, Brokers, Context};
use crate::smoke::Smoke;
use crate::state::{EnvLock, EnvironmentStatus};
use crate::status::{Cause, TRANSIENT_RETRY, transition};

/// A status without a manifest: `Orphaned`, after a prune when the last applied manifest asked
/// for `policy.prune: onRemove`. Returns (action, reason, result, requeue).
pub(super) async fn orphaned<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    name: &str,
    status: &mut EnvironmentStatus,
    lock: &EnvLock,
) -> (String, String, String, Option<Duration>) {
    let Some(saved) = pipeline::prunable_environment(&ctx.state, name) else {
        transition(
            status,
            Cause::Orphaned { environment: name },
            ctx.clock.now(),
        );
        let message = status.message.clone();
        return ("orphaned".into(), message, "orphaned".into(), None);
    };
    let (result, requeue) = match pipeline::prune(ctx, &saved, lock).await {
        Ok(report) => {
            // The prune forgot the releases in the status file; this copy is written last.
            status.releases.clear();
            status.configs.clear();
            let pending =
                (report.records.iter()).filter(|r| r.status != pipeline::RecordStatus::Recorded);
            let pending = pending.count();
            let cause = Cause::Pruned {
                environment: name,
                project: &report.project,
                pending_records: pending,
                error: None,
            };
            transition(status, cause, ctx.clock.now());
            let requeue = (pending > 0).then(|| pipeline::record_retry_delay(1));
            ("pruned", requeue)
        }
        Err(error) => {
            let message = error_chain(&error);
            let cause = Cause::Pruned {
                environment: name,
                project: &saved.project,
                pending_records: 0,
                error: Some(&message),
            };
            transition(status, cause, ctx.clock.now());
            ("prune_failed", Some(TRANSIENT_RETRY))
        }
    };
    let message = status.message.clone();
    ("prune".into(), message, result.into(), requeue)
}
