//! The pure planner: (desired manifest, applied state, observed containers, now) -> one action.
//!
//! **Architecture Invariant:** this module does no IO, is not async and never reads the clock:
//! `now` is given. Every [`Plan`] carries a human-readable reason, so "why did it redeploy?" is
//! always answerable from the logs and the status history.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::docker::{Container, ContainerState, Health, RenderedModel};
use crate::manifest::{Environment, RollbackMode};

mod applied;
mod changes;
pub mod diff;
mod drift;
mod sync;

pub use changes::{Changes, ConfigChange, changes, model_hash};
pub use drift::Drift;
pub use sync::GateQuestion;

/// How many heals are allowed inside [`HEAL_WINDOW`] before the environment is `Degraded`.
pub const MAX_HEALS_PER_WINDOW: usize = 5;
/// The sliding window of the heal cap.
pub const HEAL_WINDOW: Duration = Duration::from_secs(10 * 60);

pub use applied::{AppliedConfig, AppliedRelease, AppliedState, GateBlock, HostBlocked};

/// The desired side of a plan: a valid environment, or why its manifest is invalid.
#[derive(Debug, Clone, Copy)]
pub enum Desired<'a> {
    /// The manifest loaded and validated.
    Valid(&'a Environment),
    /// The manifest is broken; the message names file, line and field.
    Invalid(&'a str),
}

/// One action for one reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Everything runs as applied; nothing to do.
    Noop,
    /// Gate, apply, smoke and record these changed services.
    Deploy {
        /// Services whose desired release or configuration differs from what runs.
        changed: Vec<String>,
        /// Services to stop and remove: gone from the rendered model.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<String>,
    },
    /// Re-apply the applied release of these drifted services (no gate, no record).
    Heal {
        /// Drifted services.
        services: Vec<String>,
    },
    /// Drift found but self-heal is off: report only.
    ReportDrift {
        /// Drifted services.
        services: Vec<String>,
    },
    /// Drift found but the heal cap is reached: report `Degraded`.
    HealCapReached {
        /// Drifted services.
        services: Vec<String>,
    },
    /// The host refused this generation's apply; wait until the next attempt.
    WaitForHost {
        /// When the apply is tried again.
        next_attempt_at: SystemTime,
    },
    /// The gate was blocked for this generation; wait until the next check.
    WaitForGate {
        /// When the broker may be asked again.
        next_check_at: SystemTime,
    },
    /// This generation failed and was rolled back; wait for a new commit or `c2quay retry`.
    AwaitChange,
    /// `policy.sync` is manual and the desired state differs from what was applied: nothing is
    /// applied until `c2quay deploy` or the trigger endpoint asks ([`plan_requested`]).
    OutOfSync {
        /// Services whose desired release or configuration differs from what runs.
        changed: Vec<String>,
        /// Services gone from the rendered model.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<String>,
        /// Whether to ask the broker (read-only) about the changed releases now.
        gate: GateQuestion,
    },
    /// `spec.suspend` is set: observe only.
    Suspended,
    /// The manifest is invalid: change nothing.
    Invalid,
}

impl Action {
    /// A short stable name for logs, audit lines and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Noop => "noop",
            Action::Deploy { .. } => "deploy",
            Action::Heal { .. } => "heal",
            Action::ReportDrift { .. } => "report-drift",
            Action::HealCapReached { .. } => "heal-cap-reached",
            Action::WaitForGate { .. } => "wait-for-gate",
            Action::WaitForHost { .. } => "wait-for-host",
            Action::AwaitChange => "await-change",
            Action::OutOfSync { .. } => "out-of-sync",
            Action::Suspended => "suspended",
            Action::Invalid => "invalid",
        }
    }
}

/// An action with the reason it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// Why, in one sentence an operator can act on.
    pub reason: String,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action.name(), self.reason)
    }
}

/// Decides the one action for this reconcile. Pure: same inputs, same plan.
///
/// `rendered` is the environment's rendered Compose model; without it (`None`) configuration
/// changes are not looked for, only releases and what runs.
pub fn plan(
    desired: Desired<'_>,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
    now: SystemTime,
) -> Plan {
    plan_with(desired, rendered, applied, observed, now, false)
}

/// [`plan`] for a reconcile someone asked for (the trigger endpoint): what `policy.sync:
/// manual` holds and what the gate's and the host's backoff delay is deployed now. A failed
/// generation, a suspension and drift are decided as by [`plan`].
pub fn plan_requested(
    desired: Desired<'_>,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
    now: SystemTime,
) -> Plan {
    plan_with(desired, rendered, applied, observed, now, true)
}

fn plan_with(
    desired: Desired<'_>,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
    now: SystemTime,
    requested: bool,
) -> Plan {
    let env = match desired {
        Desired::Invalid(message) => {
            return Plan {
                action: Action::Invalid,
                reason: format!("manifest invalid, running services untouched: {message}"),
            };
        }
        Desired::Valid(env) => env,
    };
    if env.manifest.spec.suspend {
        return Plan {
            action: Action::Suspended,
            reason: "spec.suspend is true: observing only".to_string(),
        };
    }
    let generation = env.generation.as_str();
    if applied.suspended_generation.as_deref() == Some(generation) {
        return Plan {
            action: Action::Suspended,
            reason: "suspended with c2quay suspend: observing only until c2quay resume or a \
                     manifest change"
                .to_string(),
        };
    }
    let same_model = match (rendered, &applied.failed_model) {
        (Some(model), Some(failed)) => model_hash(model) == *failed,
        _ => true,
    };
    if applied.failed_generation.as_deref() == Some(generation) && same_model {
        // The applied release must still run: a rollback that did not complete (a port taken,
        // the daemon restarted) or a container lost since is drift, not "rolled back".
        // With `policy.rollback` off or dry-run the failed images stay by design: report only,
        // a heal would be the rollback the operator declined.
        let drifted = drifted_services(env, rendered, applied, observed);
        if !drifted.is_empty() {
            let hold = (env.manifest.spec.policy.rollback != RollbackMode::On)
                .then_some("policy.rollback is not on, not healing");
            return drift_plan(
                env,
                applied,
                &drifted,
                now,
                &format!("generation {generation} failed and the applied release does not run"),
                hold,
            );
        }
        return Plan {
            action: Action::AwaitChange,
            reason: format!(
                "generation {generation} failed and was rolled back; waiting for a new commit or `c2quay retry {}`",
                env.name()
            ),
        };
    }
    let changes = changes(env, rendered, applied, observed);
    if !changes.is_empty() {
        if let Some(block) = &applied.host_blocked
            && block.generation == generation
            && match (rendered, &block.model) {
                (Some(model), Some(refused)) => model_hash(model) == *refused,
                _ => true,
            }
            && now < block.next_attempt_at
            && !requested
        {
            return Plan {
                action: Action::WaitForHost {
                    next_attempt_at: block.next_attempt_at,
                },
                reason: format!(
                    "the host refused generation {generation} ({}); next attempt at {}",
                    block.cause.as_str(),
                    humantime::format_rfc3339_seconds(block.next_attempt_at)
                ),
            };
        }
        let mut details: Vec<String> = changes
            .releases
            .iter()
            .map(|service| describe_change(env, applied, observed, service))
            .collect();
        details.extend(
            changes
                .configs
                .iter()
                .map(|(service, change)| format!("{service}: {change}")),
        );
        details.extend(changes.removed.iter().map(|s| format!("{s}: removed")));
        // `policy.sync: manual` holds the change (the gate is asked read-only, with its own
        // backoff); the drift of the applied release is still healed.
        if !requested
            && let Some(held) =
                sync::hold(env, rendered, applied, observed, &changes, &details, now)
        {
            return held;
        }
        if let Some(block) = &applied.gate_blocked
            && !changes.releases.is_empty()
            && block.generation == generation
            && now < block.next_check_at
            && !requested
        {
            return Plan {
                action: Action::WaitForGate {
                    next_check_at: block.next_check_at,
                },
                reason: format!(
                    "gate blocked for generation {generation}; next check at {}",
                    humantime::format_rfc3339_seconds(block.next_check_at)
                ),
            };
        }
        return Plan {
            action: Action::Deploy {
                changed: changes.services(),
                removed: changes.removed,
            },
            reason: format!("generation {generation}: {}", details.join("; ")),
        };
    }
    let drifted = drifted_services(env, rendered, applied, observed);
    if drifted.is_empty() {
        return Plan {
            action: Action::Noop,
            reason: format!("generation {generation} is applied and every service runs as applied"),
        };
    }
    drift_plan(env, applied, &drifted, now, "drift", None)
}

/// Heal, report or give up on `drifted` services per `policy.selfHeal` and the heal cap; the
/// reason starts with `context`. A `hold` (why not to heal) reports only, whatever `selfHeal`
/// says.
fn drift_plan(
    env: &Environment,
    applied: &AppliedState,
    drifted: &[(String, Drift)],
    now: SystemTime,
    context: &str,
    hold: Option<&str>,
) -> Plan {
    let services: Vec<String> = drifted.iter().map(|(s, _)| s.clone()).collect();
    let details = drifted
        .iter()
        .map(|(service, drift)| format!("{service}: {drift}"))
        .collect::<Vec<_>>()
        .join("; ");
    if !env.manifest.spec.policy.self_heal {
        return Plan {
            action: Action::ReportDrift { services },
            reason: format!("{context} ({details}); policy.selfHeal is false"),
        };
    }
    if let Some(hold) = hold {
        return Plan {
            action: Action::ReportDrift { services },
            reason: format!("{context} ({details}); {hold}"),
        };
    }
    let recent = recent_heals(&applied.heals, now);
    if recent >= MAX_HEALS_PER_WINDOW {
        return Plan {
            action: Action::HealCapReached { services },
            reason: format!(
                "{context} ({details}); {recent} heals in the last {}, not healing again",
                humantime::format_duration(HEAL_WINDOW)
            ),
        };
    }
    Plan {
        action: Action::Heal { services },
        reason: format!("{context} ({details}); re-applying the applied release"),
    }
}

/// Services whose desired release differs from the applied one, in name order: a change of
/// desired state, never of what runs.
///
/// A pinned service changes when its desired image differs from the image applied (when nothing
/// was applied yet: from the image its container runs, so a release already running is adopted
/// and recorded, not re-created); a gated service also changes when its desired version differs
/// from the applied version. A container that runs another image than was applied (a hotfix run
/// by hand) is drift ([`drifted_services`]), healed or reported per `selfHeal`: never a new
/// release that would be gated and recorded again.
pub fn changed_services(
    env: &Environment,
    applied: &AppliedState,
    observed: &[Container],
) -> Vec<String> {
    let mut changed = Vec::new();
    for (service, spec) in &env.manifest.spec.services {
        let applied_release = applied.releases.get(service);
        let version_changed = spec.version.is_some()
            && env.gated_services().contains(service)
            && applied_release.and_then(|r| r.version.as_deref()) != env.version(service);
        let image_changed = match env.pinned_image(service) {
            Some(desired_image) if !spec.gate_only => match applied_release {
                Some(release) if !release.image.is_empty() => release.image != desired_image,
                _ => {
                    running_container(observed, service).map(|c| c.image.as_str())
                        != Some(desired_image.as_str())
                }
            },
            _ => false,
        };
        if version_changed || image_changed {
            changed.push(service.clone());
        }
    }
    changed
}

/// Services that drifted from the applied release, with the kind of drift, in name order. A
/// container that is not running is drift unless its service is a job ([`is_job`]) that
/// exited 0.
pub fn drifted_services(
    env: &Environment,
    rendered: Option<&RenderedModel>,
    applied: &AppliedState,
    observed: &[Container],
) -> Vec<(String, Drift)> {
    let mut drifted = Vec::new();
    // The manifest's services that run here, and every other service c2quay applied.
    let mut services: Vec<&String> = env
        .manifest
        .spec
        .services
        .iter()
        .filter(|(_, spec)| !spec.gate_only)
        .map(|(service, _)| service)
        .chain(applied.configs.keys())
        .collect();
    services.sort();
    services.dedup();
    for service in services {
        let rendered_service = rendered.and_then(|m| m.get(service));
        if rendered_service.is_some_and(|r| r.wanted_replicas() == 0) {
            continue;
        }
        let Some(container) = running_container(observed, service) else {
            drifted.push((service.clone(), Drift::Missing));
            continue;
        };
        if !container.state.is_running() {
            // A job that finished is not drift; any other service that exited 0 was stopped
            // (`docker stop` of a server that exits 0 on SIGTERM) or never served.
            if container.state == ContainerState::Exited
                && container.exit_code == 0
                && is_job(env, rendered, service)
            {
                continue;
            }
            let state = match container.state {
                _ if container.oom_killed => {
                    format!("{} ({}, OOM-killed)", container.state, container.exit_code)
                }
                ContainerState::Exited | ContainerState::Restarting | ContainerState::Dead => {
                    format!("{} ({})", container.state, container.exit_code)
                }
                other => other.to_string(),
            };
            drifted.push((service.clone(), Drift::NotRunning(state)));
            continue;
        }
        if container.health == Health::Unhealthy {
            drifted.push((service.clone(), Drift::Unhealthy));
            continue;
        }
        if let Some(wanted) = rendered_service.map(|r| r.wanted_replicas()) {
            let running = observed
                .iter()
                .filter(|c| c.service == *service && c.state.is_running())
                .filter(|c| !crate::docker::parse::is_leftover_name(&c.name))
                .count();
            if running < wanted as usize {
                drifted.push((service.clone(), Drift::Replicas { running, wanted }));
                continue;
            }
        }
        if let Some(release) = applied.releases.get(service)
            && !release.image.is_empty()
            && match &release.image_id {
                Some(id) => *id != container.image_id,
                None => release.image != container.image,
            }
        {
            // The same reference on both sides: a moved tag; name the ids.
            let (applied_image, running_image) = if release.image == container.image {
                let short = |id: &str| {
                    id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>()
                };
                (
                    format!(
                        "{} ({})",
                        release.image,
                        short(release.image_id.as_deref().unwrap_or_default())
                    ),
                    format!("{} ({})", container.image, short(&container.image_id)),
                )
            } else {
                (release.image.clone(), container.image.clone())
            };
            drifted.push((
                service.clone(),
                Drift::OtherImage {
                    applied: applied_image,
                    running: running_image,
                },
            ));
            continue;
        }
        if let Some(applied_hash) = applied
            .configs
            .get(service)
            .and_then(|c| c.compose_hash.as_deref())
            && !container.config_hash.is_empty()
            && container.config_hash != applied_hash
        {
            drifted.push((service.clone(), Drift::OtherConfig));
        }
    }
    drifted
}

/// Whether `service` is a one-shot job: the manifest says `job: true`, or the rendered model
/// marks it (another service waits for it with `condition: service_completed_successfully`);
/// never a service with a healthcheck or a published port.
pub fn is_job(env: &Environment, rendered: Option<&RenderedModel>, service: &str) -> bool {
    let declared = (env.manifest.spec.services.get(service)).is_some_and(|s| s.job);
    match rendered.and_then(|model| model.get(service)) {
        Some(r) => r.job || (declared && !r.has_healthcheck && !r.has_ports),
        None => declared,
    }
}

/// How many heals happened within [`HEAL_WINDOW`] before `now`.
pub fn recent_heals(heals: &[SystemTime], now: SystemTime) -> usize {
    heals
        .iter()
        .filter(|at| {
            now.duration_since(**at)
                .map(|age| age < HEAL_WINDOW)
                .unwrap_or(true)
        })
        .count()
}

/// The delay before the `n`th gate re-check (n starts at 1): initial * 2^(n-1), capped at max.
pub fn gate_retry_delay(initial: Duration, max: Duration, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
    initial.saturating_mul(factor).min(max)
}

/// The container of `service` that stands for it: a running one when several exist (e.g.
/// leftovers of a recreate), else any.
pub fn running_container<'a>(observed: &'a [Container], service: &str) -> Option<&'a Container> {
    observed
        .iter()
        .filter(|c| c.service == service)
        .max_by_key(|c| c.state.is_running())
}

fn describe_change(
    env: &Environment,
    applied: &AppliedState,
    observed: &[Container],
    service: &str,
) -> String {
    let spec = &env.manifest.spec.services[service];
    let running = running_container(observed, service).map(|c| c.image.clone());
    let applied_version = applied
        .releases
        .get(service)
        .and_then(|r| r.version.clone());
    match (env.pinned_image(service), env.version(service)) {
        (Some(image), Some(version)) if !spec.gate_only => format!(
            "{service} {} -> {version} ({} -> {image})",
            applied_version.as_deref().unwrap_or("none"),
            running.as_deref().unwrap_or("not running"),
        ),
        (Some(image), None) => format!(
            "{service} {} -> {image}",
            running.as_deref().unwrap_or("not running")
        ),
        (_, Some(version)) => format!(
            "{service} {} -> {version} (gate only)",
            applied_version.as_deref().unwrap_or("none")
        ),
        (None, None) => format!("{service} changed"),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod config_tests;

#[cfg(test)]
mod drift_tests;

#[cfg(test)]
mod wait_tests;

#[cfg(test)]
mod sync_tests;
