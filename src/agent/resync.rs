//! The resync's cheap pass: which environments need a reconcile, from one observation of every
//! container, the status files and the cached rendered models (no process per environment).

use super::models::Models;
use super::{DesiredEnv, DesiredSet};
use crate::docker::Container;
use crate::pipeline::{self, Context};
use crate::plan::{self, Action, Desired};
use crate::state::Phase;

/// Environments whose plan is not `Noop` given one observation of all containers, plus those
/// with an unseen generation, pending records or an open intent. Used by the resync: no
/// process per environment.
pub fn needing_reconcile<C, B, S>(
    ctx: &Context<C, B, S>,
    desired: &DesiredSet,
    models: &Models,
    containers: &[Container],
) -> Vec<String> {
    let now = ctx.clock.now();
    let mut names = Vec::new();
    for (name, entry) in &desired.entries {
        let status = ctx.state.read_status(name).ok().flatten();
        let needs = match entry {
            DesiredEnv::Invalid { .. } => status
                .as_ref()
                .map(|s| s.phase != Phase::Invalid)
                .unwrap_or(true),
            DesiredEnv::Valid(env) => {
                let Some(status) = status else {
                    names.push(name.clone());
                    continue;
                };
                // A Compose input file changed since the last render: render and plan again.
                let Some(model) = models.fresh(name, &pipeline::project_of(env)) else {
                    names.push(name.clone());
                    continue;
                };
                let observed: Vec<Container> = containers
                    .iter()
                    .filter(|c| c.project == env.project)
                    .cloned()
                    .collect();
                let applied = pipeline::applied_state_of(&status);
                let plan = plan::plan(Desired::Valid(env), Some(&model), &applied, &observed, now);
                let phase_matches = match plan.action {
                    Action::Noop => status.phase == Phase::Ready,
                    Action::AwaitChange => {
                        status.phase == Phase::RolledBack || status.phase == Phase::Degraded
                    }
                    Action::ReportDrift { .. } => status.phase == Phase::Drifted,
                    Action::Suspended => status.phase == Phase::Suspended,
                    // A timer is already set for these (the gate backoff, the heal window):
                    // reconciling on every resync would only spawn `docker compose ps`.
                    Action::WaitForGate { .. } => status.phase == Phase::GateBlocked,
                    Action::HealCapReached { .. } => status.phase == Phase::Degraded,
                    _ => false,
                };
                // A change the agent has not seen (made while it was down, or a missed file
                // event): reconciling records it as observed, even when the plan is `Noop`.
                let unseen = status.observed_generation.as_deref() != Some(env.generation.as_str());
                !phase_matches
                    || unseen
                    || status.pending_records > 0
                    || matches!(ctx.state.read_intent(name), Ok(Some(_)))
            }
        };
        if needs {
            names.push(name.clone());
        }
    }
    names
}
