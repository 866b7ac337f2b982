//! An environment whose manifest was removed: `Orphaned`, and pruned first when its last
//! applied manifest asked for `policy.prune: onRemove`.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::{DesiredEnv, Shared};
use crate::docker::Compose;
use crate::error_chain;
use crate::manifest::{Environment, PruneMode};
use crate::pipeline::{self, Brokers, Context};
use crate::smoke::Smoke;
use crate::state::{EnvLock, EnvironmentStatus, PendingRecord};
use crate::status::{Cause, TRANSIENT_RETRY, transition};

/// A status without a manifest: `Orphaned`, after a prune when the last applied manifest asked
/// for `policy.prune: onRemove`. Returns (action, reason, result, requeue).
pub(super) async fn orphaned<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    name: &str,
    status: &mut EnvironmentStatus,
    lock: &EnvLock,
) -> (String, String, String, Option<Duration>) {
    let saved = match pipeline::saved_environment(&ctx.state, name) {
        Some(env) if env.manifest.spec.policy.prune == PruneMode::OnRemove => env,
        saved => {
            let project = saved.as_ref().map(|env| env.project.as_str());
            transition(
                status,
                Cause::Orphaned {
                    environment: name,
                    project,
                },
                ctx.clock.now(),
            );
            let requeue = match &saved {
                Some(saved) => send_pending(ctx, shared, saved, status).await,
                None => None,
            };
            // Nothing pending and no journal left to recover: a renamed manifest's old name goes.
            if let Some(saved) = &saved
                && requeue.is_none()
                && !ctx.state.intent_file(name).exists()
                && let Some(owner) = renamed_to(shared, saved)
            {
                return forget(ctx, name, &owner, &saved.project);
            }
            let message = status.message.clone();
            return ("orphaned".into(), message, "orphaned".into(), requeue);
        }
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

/// Sends the pending records of the removed environment `saved` (issue 19: a renamed or
/// deleted manifest never strands a record), dropping those another desired environment
/// records now; says in `status` what is left. Returns when to try again, if ever.
async fn send_pending<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Arc<Context<C, B, S>>,
    shared: &Arc<Shared>,
    saved: &Environment,
    status: &mut EnvironmentStatus,
) -> Option<Duration> {
    let desired = super::read(&shared.desired).clone();
    let superseded = |record: &PendingRecord| {
        desired.entries.values().any(|entry| match entry {
            DesiredEnv::Valid(env) => env.name() != saved.name() && records_there(env, record),
            DesiredEnv::Invalid { .. } => false,
        })
    };
    match pipeline::send_orphan_records(ctx, saved, superseded).await {
        Ok(records) => {
            status.pending_records = records.pending;
            if !records.superseded.is_empty() {
                let dropped: Vec<String> = (records.superseded.iter())
                    .map(|r| format!("{} {}", r.pacticipant, r.version))
                    .collect();
                status.message = format!(
                    "{}; dropped the pending record(s) of {} (another environment records them now)",
                    status.message,
                    dropped.join(", ")
                );
            }
            if records.pending == 0 {
                return None;
            }
            status.message = format!(
                "{}; {} broker record(s) pending, retried",
                status.message, records.pending
            );
            Some(pipeline::record_retry_delay(1))
        }
        Err(error) => {
            warn!(error = %error_chain(&error), "cannot send the pending records of a removed manifest");
            Some(TRANSIENT_RETRY)
        }
    }
}

/// Whether `env` gates and records `record`'s pacticipant into the same broker environment.
fn records_there(env: &Environment, record: &PendingRecord) -> bool {
    let Some(broker) = &env.manifest.spec.broker else {
        return false;
    };
    broker.environment == record.broker_environment
        && (env.gated_services().iter()).any(|s| env.pacticipant(s) == record.pacticipant)
}

/// The result of a reconcile that forgot its environment ([`forget`]): nothing is written.
pub(super) const FORGOTTEN: &str = "forgotten";

/// The desired environment that now owns `saved`'s Compose project under another name (a
/// renamed manifest), if any.
fn renamed_to(shared: &Arc<Shared>, saved: &Environment) -> Option<String> {
    let desired = super::read(&shared.desired);
    desired.entries.values().find_map(|entry| match entry {
        DesiredEnv::Valid(env) if env.name() != saved.name() && env.project == saved.project => {
            Some(env.name().to_string())
        }
        _ => None,
    })
}

/// Forgets the removed environment `name` whose project `owner` now manages and which has
/// nothing pending (issue 19: a renamed manifest leaves no `Orphaned` ghost): its status and
/// saved manifest go; its audit log, reports and snapshots stay for the record. The caller
/// writes nothing more for it ([`FORGOTTEN`]).
fn forget<C, B, S>(
    ctx: &Arc<Context<C, B, S>>,
    name: &str,
    owner: &str,
    project: &str,
) -> (String, String, String, Option<Duration>) {
    let message = format!(
        "the manifest of {name} was removed and environment {owner} manages project {project} now, \
         with nothing pending: forgot {name} (its audit log and reports stay)"
    );
    if let Err(error) = (ctx.state).audit(name, None, "orphan", "forgotten", &message) {
        warn!(error = %error_chain(&error), "cannot write the audit line");
    }
    for file in [
        ctx.state.applied_manifest_file(name),
        ctx.state.applied_model_file(name),
        ctx.state.status_file(name),
    ] {
        if let Err(error) = std::fs::remove_file(&file)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            warn!(file = %file.display(), %error, "cannot remove a file of a forgotten environment");
        }
    }
    tracing::info!(owner, project, "{message}");
    ("forget".into(), message, FORGOTTEN.into(), None)
}
