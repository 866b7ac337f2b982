//! The pending records of an environment as its status shows them: the count and the
//! `Recorded` condition, refreshed on every reconcile from the outbox.

use std::time::Duration;

use tracing::warn;

use crate::manifest::Environment;
use crate::pipeline::{Context, error_chain};
use crate::state::{ConditionStatus, ConditionType, EnvironmentStatus};

/// Updates the pending-record count and the `Recorded` condition; returns when to retry.
pub(super) fn refresh_pending<C, B, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    status: &mut EnvironmentStatus,
) -> Option<Duration> {
    let (pending, unreadable) = match ctx.state.outbox_list(env.name()) {
        Ok(listed) => listed,
        Err(error) => (Vec::new(), vec![error]),
    };
    status.pending_records = pending.len();
    let now = ctx.clock.now();
    if !unreadable.is_empty() {
        // A record we cannot read may be missing from the broker: never claim "Recorded".
        let files = unreadable
            .iter()
            .map(|e| error_chain(e))
            .collect::<Vec<_>>()
            .join("; ");
        warn!(environment = env.name(), problems = %files, "unreadable outbox entries");
        status.set_condition(
            ConditionType::Recorded,
            ConditionStatus::Unknown,
            "OutboxEntryUnreadable",
            &files,
            now,
        );
    } else if pending.is_empty() {
        if status.applied_generation.is_some() && env.manifest.spec.broker.is_some() {
            status.set_condition(
                ConditionType::Recorded,
                ConditionStatus::True,
                "Recorded",
                "every deployment is recorded in the broker",
                now,
            );
        }
        return None;
    }
    if pending.is_empty() {
        return None;
    }
    let message = pending
        .iter()
        .map(|r| {
            format!(
                "{} {} ({} attempts{})",
                r.pacticipant,
                r.version,
                r.attempts,
                r.last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    status.set_condition(
        ConditionType::Recorded,
        ConditionStatus::False,
        "RecordPending",
        &message,
        now,
    );
    pending
        .iter()
        .map(|r| {
            r.next_attempt_at
                .and_then(|at| at.duration_since(now).ok())
                .unwrap_or(Duration::from_secs(1))
        })
        .min()
}
