//! The reconcile of a manual environment whose change the planner held
//! ([`Action::OutOfSync`](crate::plan::Action)): nothing is applied; the broker is asked about
//! the held releases, read-only (`pipeline::verify`: can-i-deploy, nothing recorded), when the
//! gate's backoff allows it, and `status::transition` writes `OutOfSync` with the plan and the
//! answer.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::docker::Compose;
use crate::error_chain;
use crate::manifest::Environment;
use crate::pipeline::{self, Brokers, Context};
use crate::plan::GateQuestion;
use crate::state::EnvironmentStatus;
use crate::status::{Cause, GateCheck, transition};

/// Asks the broker when `gate` says so and writes the phase into `status`; returns when to look
/// again (the gate's backoff, or `gateRetry.max` to refresh a "yes").
pub(super) async fn check<C: Compose, B: Brokers, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    status: &mut EnvironmentStatus,
    reason: &str,
    gate: GateQuestion,
    now: SystemTime,
) -> Option<Duration> {
    let verified = match gate {
        GateQuestion::Ask => Some(pipeline::verify(ctx, env, None).await),
        GateQuestion::NotNeeded | GateQuestion::Wait { .. } => None,
    };
    let check = match (&verified, gate) {
        (Some(Ok(report)), _) => {
            info!(
                deployable = report.gate_passed(),
                "manual sync: asked the broker (read-only)"
            );
            GateCheck::Answered(report)
        }
        (Some(Err(error)), _) => {
            warn!(error = %error_chain(error), "manual sync: the broker could not be asked");
            GateCheck::Failed(error)
        }
        (None, GateQuestion::Wait { .. }) => GateCheck::Kept,
        (None, _) => GateCheck::NotNeeded,
    };
    transition(
        status,
        Cause::OutOfSync {
            env,
            reason,
            gate: check,
        },
        now,
    )
}
