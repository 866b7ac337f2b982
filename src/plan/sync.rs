//! `policy.sync: manual`: the planner holds a change of desired state until someone asks for it
//! ([`super::plan_requested`]: `c2quay deploy` or the trigger endpoint), heals the drift of the
//! applied release meanwhile (healing is not a new release), and says whether the broker is to
//! be asked about the held releases now, read-only, with the gate's backoff.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Action, AppliedState, Changes, Plan, drift_plan, drifted_services, model_hash};
use crate::docker::{Container, RenderedModel};
use crate::manifest::{Environment, SyncMode};

/// Whether the reconcile of a manual environment asks the broker about its held releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "question", rename_all = "camelCase")]
pub enum GateQuestion {
    /// Nothing to ask: no gated release changed (a configuration change alone), or no broker.
    NotNeeded,
    /// Ask now (read-only: `can-i-deploy`, nothing recorded).
    Ask,
    /// The gate's backoff (`policy.gateRetry`) after a "no": the last answer stands until then.
    Wait {
        /// When the broker may be asked again.
        #[serde(rename = "nextCheckAt")]
        next_check_at: SystemTime,
    },
}

/// The plan of a manual environment whose desired state differs (`changes`, described by
/// `details`), or `None` when the change is not held: the environment syncs automatically, or
/// an apply someone asked for was refused by the host and is retried with the host's backoff
/// (the request still stands).
pub(super) fn hold(
    env: &Environment,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
    changes: &Changes,
    details: &[String],
    now: SystemTime,
) -> Option<Plan> {
    if env.manifest.spec.policy.sync != SyncMode::Manual {
        return None;
    }
    let generation = env.generation.as_str();
    if let Some(block) = &applied.host_blocked
        && block.generation == generation
        && match (rendered, &block.model) {
            (Some(model), Some(refused)) => model_hash(model) == *refused,
            _ => true,
        }
    {
        return None;
    }
    let pending = format!("generation {generation} ({})", details.join("; "));
    // Only what c2quay applied can drift; a service the held change removes is left to it.
    let drifted: Vec<_> = drifted_services(env, rendered, applied, observed)
        .into_iter()
        .filter(|(s, _)| applied.releases.contains_key(s) || applied.configs.contains_key(s))
        .filter(|(s, _)| !changes.removed.contains(s))
        .collect();
    if !drifted.is_empty() {
        let context = format!(
            "policy.sync is manual and {pending} waits to be applied; the applied release drifted"
        );
        // A heal renders the Compose files as they are now: for a service whose configuration
        // changed, that would apply the held change.
        let hold = (drifted.iter())
            .find(|(s, _)| changes.configs.contains_key(s))
            .map(|(s, _)| {
                format!(
                    "not healing: re-creating {s} would apply its held configuration change; \
                     `c2quay deploy {}` applies the whole generation",
                    env.name()
                )
            });
        return Some(drift_plan(
            env,
            applied,
            &drifted,
            now,
            &context,
            hold.as_deref(),
        ));
    }
    let gated = env.gated_services();
    let gate = match &applied.gate_blocked {
        _ if env.manifest.spec.broker.is_none() => GateQuestion::NotNeeded,
        _ if !changes.releases.iter().any(|s| gated.contains(s)) => GateQuestion::NotNeeded,
        Some(block) if block.generation == generation && now < block.next_check_at => {
            GateQuestion::Wait {
                next_check_at: block.next_check_at,
            }
        }
        _ => GateQuestion::Ask,
    };
    Some(Plan {
        action: Action::OutOfSync {
            changed: changes.services(),
            removed: changes.removed.clone(),
            gate,
        },
        reason: format!(
            "policy.sync is manual: {pending} is not applied until `c2quay deploy {}` or the \
             trigger endpoint asks",
            env.name()
        ),
    })
}
