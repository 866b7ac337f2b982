//! [`transition`]: the one place that decides an environment's phase. Every cause of a status
//! change (a plan that needs no work, a deploy's outcome, a deploy that could not start, a heal,
//! an invalid or removed manifest) is a [`Cause`]; the agent and the CLI only say what happened.

use std::time::{Duration, SystemTime};

use super::{block_gate, clear_gate_block, status_after};
use crate::error_chain;
use crate::manifest::Environment;
use crate::pipeline::{self, DeployReport, Outcome};
use crate::plan::{self, Action};
use crate::state::{ConditionStatus, ConditionType, EnvironmentStatus, Phase};

/// When the agent looks again after a transient error (Docker or the state directory).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(15);

/// Why an environment's status changes.
#[derive(Debug)]
pub enum Cause<'a> {
    /// The manifest does not parse or validate.
    Invalid {
        /// The problems, for a human.
        message: &'a str,
    },
    /// The manifest was removed.
    Orphaned {
        /// Environment name.
        environment: &'a str,
        /// Its Compose project, when the last applied manifest is known.
        project: Option<&'a str>,
    },
    /// The manifest was removed and its project pruned (`policy.prune: onRemove`).
    Pruned {
        /// Environment name.
        environment: &'a str,
        /// The Compose project taken down.
        project: &'a str,
        /// Undeployment records still waiting in the outbox.
        pending_records: usize,
        /// Why the prune failed, if it did (the containers may still run).
        error: Option<&'a str>,
    },
    /// Another live agent claims the environment's Compose project: this one stands back.
    ClaimedElsewhere {
        /// The Compose project.
        project: &'a str,
        /// Who claims it, as its claim says.
        owner: &'a str,
    },
    /// `spec.suspend` is true, or `c2quay suspend` holds this generation.
    Suspended,
    /// `c2quay resume` ended a local suspension: the agent reconciles at its next pass.
    Resumed,
    /// The planner's action, for actions that run no flow (everything but `Deploy` and `Heal`).
    Planned {
        /// The action.
        action: &'a Action,
        /// The plan's reason.
        reason: &'a str,
    },
    /// `policy.sync` is manual and the planner held a change ([`Action::OutOfSync`]): nothing
    /// is applied; `gate` is what the broker said about the held releases, read-only.
    OutOfSync {
        /// The environment.
        env: &'a Environment,
        /// The plan's reason (what differs).
        reason: &'a str,
        /// The read-only gate check of this reconcile.
        gate: GateCheck<'a>,
    },
    /// A deploy starts.
    Progressing {
        /// The plan's reason.
        reason: &'a str,
    },
    /// A deploy of `env` ended with `report`.
    DeployEnded {
        /// The environment.
        env: &'a Environment,
        /// Its report.
        report: &'a DeployReport,
    },
    /// A deploy of `env` could not start.
    DeployNotStarted {
        /// The environment.
        env: &'a Environment,
        /// Why.
        error: &'a pipeline::Error,
    },
    /// A heal of `services` ended with `report`.
    HealEnded {
        /// The services healed.
        services: &'a [String],
        /// Its report.
        report: &'a DeployReport,
    },
    /// `c2quay rollback` restored `restored` and holds the environment's generation.
    RolledBackByHand {
        /// The environment.
        env: &'a Environment,
        /// The releases restored, for a human (`web 1, api 7`).
        restored: &'a str,
        /// Why the smoke checks failed after the restore, if they did.
        smoke_failed: Option<&'a str>,
    },
    /// The Docker engine did not answer the observation: what runs is not known.
    DockerUnreachable {
        /// The error chain.
        message: &'a str,
    },
    /// A step failed transiently (recover, render, heal); the phase stays.
    TransientError {
        /// The step.
        step: &'a str,
        /// The error chain.
        message: &'a str,
    },
}

/// The read-only gate check of a manual environment's reconcile ([`Cause::OutOfSync`]).
#[derive(Debug)]
pub enum GateCheck<'a> {
    /// Nothing to ask: no gated release is held, or there is no broker.
    NotNeeded,
    /// The gate's backoff: not asked again yet; the last answer (the `Gated` condition) stands.
    Kept,
    /// The broker answered (`pipeline::verify`'s report).
    Answered(&'a DeployReport),
    /// The broker could not be asked.
    Failed(&'a pipeline::Error),
}

/// Applies `cause` to `status`: phase, message, conditions, failed generation, gate backoff.
/// Returns when to look again if nothing else triggers a reconcile, if ever. Pure.
pub fn transition(
    status: &mut EnvironmentStatus,
    cause: Cause<'_>,
    now: SystemTime,
) -> Option<Duration> {
    match cause {
        Cause::Invalid { message } => {
            status.phase = Phase::Invalid;
            status.message = message.to_string();
            None
        }
        Cause::Orphaned {
            environment,
            project,
        } => {
            status.phase = Phase::Orphaned;
            status.message = format!(
                "the manifest of {environment} was removed: no longer managed; its containers keep running. \
                 To take it down: docker compose -p {} down (volumes are kept without -v)",
                project.unwrap_or("<project, see the last snapshot under the state directory>")
            );
            None
        }
        Cause::Pruned {
            environment,
            project,
            pending_records,
            error,
        } => {
            status.phase = Phase::Orphaned;
            let removed =
                format!("the manifest of {environment} was removed (policy.prune onRemove)");
            status.message = match (error, pending_records) {
                (Some(error), _) => {
                    format!("{removed}: taking project {project} down failed, retrying: {error}")
                }
                (None, 0) => format!(
                    "{removed}: project {project} taken down (volumes kept), undeployments recorded"
                ),
                (None, n) => format!(
                    "{removed}: project {project} taken down (volumes kept); {n} undeployment record(s) wait in the outbox"
                ),
            };
            None
        }
        Cause::ClaimedElsewhere { project, owner } => {
            status.phase = Phase::Pending;
            status.message = format!(
                "Compose project {project} is managed by {owner}: this agent stands back until \
                 that agent stops (or is started with --take-over)"
            );
            Some(TRANSIENT_RETRY)
        }
        Cause::Suspended => {
            status.phase = Phase::Suspended;
            status.message = match &status.suspended {
                Some(s) => format!(
                    "{}; observing only until `c2quay resume {}` or a manifest change",
                    s.describe(),
                    status.name
                ),
                None => "spec.suspend is true: observing only".into(),
            };
            None
        }
        Cause::Resumed => {
            status.phase = Phase::Pending;
            status.message = "resumed: the agent reconciles it at its next pass".into();
            None
        }
        Cause::Planned { action, reason } => planned(status, action, reason, now),
        Cause::OutOfSync { env, reason, gate } => out_of_sync(status, env, reason, gate, now),
        Cause::Progressing { reason } => {
            status.phase = Phase::Progressing;
            status.message = reason.to_string();
            None
        }
        Cause::DeployEnded { env, report } => status_after(status, env, report, now),
        Cause::DeployNotStarted { env, error } => not_started(status, env, error, now),
        Cause::HealEnded { services, report } => {
            if report.outcome == Outcome::Deployed {
                status.phase = Phase::Ready;
                status.message = format!("healed {}", services.join(", "));
                None
            } else {
                status.phase = Phase::Degraded;
                status.message = match report.outcome.failure() {
                    Some(failure) => {
                        format!("heal of {} failed: {}", services.join(", "), failure.error)
                    }
                    None => format!(
                        "heal of {} ended {}",
                        services.join(", "),
                        report.outcome.name()
                    ),
                };
                Some(TRANSIENT_RETRY)
            }
        }
        Cause::RolledBackByHand {
            env,
            restored,
            smoke_failed,
        } => {
            let held = format!(
                "generation {} is held until a new commit or `c2quay retry {}`",
                env.generation,
                env.name()
            );
            let (phase, reason, message) = match smoke_failed {
                None => (
                    Phase::RolledBack,
                    "RolledBackByHand",
                    format!("rolled back by hand (c2quay rollback) to {restored}; {held}"),
                ),
                Some(why) => (
                    Phase::Degraded,
                    "SmokeFailed",
                    format!(
                        "rolled back by hand (c2quay rollback) to {restored}, but the smoke checks failed: {why}; {held}"
                    ),
                ),
            };
            status.phase = phase;
            status.message = message.clone();
            status.observed_generation = Some(env.generation.clone());
            status.set_condition(
                ConditionType::Applied,
                ConditionStatus::False,
                "RolledBackByHand",
                &message,
                now,
            );
            let smoke = match smoke_failed {
                None => ConditionStatus::True,
                Some(_) => ConditionStatus::False,
            };
            status.set_condition(ConditionType::SmokePassed, smoke, reason, &message, now);
            None
        }
        Cause::DockerUnreachable { message } => {
            status.phase = Phase::Unknown;
            status.message = format!(
                "the Docker engine does not answer, so what runs is not known (nothing was changed): {message}"
            );
            status.set_condition(
                ConditionType::DockerReachable,
                ConditionStatus::False,
                "DockerUnreachable",
                message,
                now,
            );
            Some(TRANSIENT_RETRY)
        }
        Cause::TransientError { step, message } => {
            status.message = format!("{step}: {message}");
            Some(TRANSIENT_RETRY)
        }
    }
}

fn planned(
    status: &mut EnvironmentStatus,
    action: &Action,
    reason: &str,
    now: SystemTime,
) -> Option<Duration> {
    match action {
        Action::Noop => {
            status.phase = Phase::Ready;
            status.message = reason.to_string();
            None
        }
        Action::ReportDrift { .. } => {
            status.phase = Phase::Drifted;
            status.message = reason.to_string();
            None
        }
        Action::HealCapReached { .. } => {
            status.phase = Phase::Degraded;
            status.message = reason.to_string();
            Some(plan::HEAL_WINDOW)
        }
        Action::WaitForHost { next_attempt_at } => {
            status.phase = Phase::HostBlocked;
            Some(next_attempt_at.duration_since(now).unwrap_or_default())
        }
        Action::WaitForGate { next_check_at } => {
            status.phase = Phase::GateBlocked;
            Some(next_check_at.duration_since(now).unwrap_or_default())
        }
        Action::AwaitChange => {
            status.phase = Phase::RolledBack;
            // Keep why the generation failed next to "waiting for a new commit".
            let why = (status.condition(ConditionType::Applied))
                .filter(|c| c.status == ConditionStatus::False)
                .map(|c| c.message.clone());
            status.message = match why {
                Some(why) if !reason.contains(&why) => format!("{reason}: {why}"),
                _ => reason.to_string(),
            };
            None
        }
        Action::Suspended => {
            status.phase = Phase::Suspended;
            if let Some(s) = &status.suspended {
                status.message = format!("{}; {reason}", s.describe());
            }
            None
        }
        Action::Invalid => {
            status.phase = Phase::Invalid;
            None
        }
        Action::OutOfSync { .. } => {
            // Said with the gate's answer by `Cause::OutOfSync`; without it, the plan alone.
            status.phase = Phase::OutOfSync;
            status.message = reason.to_string();
            None
        }
        // These run a flow; their end is `DeployEnded` / `HealEnded`.
        Action::Deploy { .. } | Action::Heal { .. } => None,
    }
}

/// [`Cause::OutOfSync`]: phase `OutOfSync`, the plan and the broker's answer in the message,
/// the answer in `Gated`; a "no" or a broker error backs off with `policy.gateRetry` (the
/// returned delay), a "yes" is asked again after `gateRetry.max` (it may turn into a "no").
fn out_of_sync(
    status: &mut EnvironmentStatus,
    env: &Environment,
    reason: &str,
    gate: GateCheck<'_>,
    now: SystemTime,
) -> Option<Duration> {
    status.phase = Phase::OutOfSync;
    let (answer, delay) = match gate {
        GateCheck::NotNeeded => {
            clear_gate_block(status);
            (None, None)
        }
        GateCheck::Kept => {
            let last = (status.condition(ConditionType::Gated))
                .map(|c| format!("the broker's last answer: {}", c.message));
            let next = status.next_gate_check_at;
            let next_in = next.map(|at| at.duration_since(now).unwrap_or_default());
            let asked_again =
                next.map(|at| format!("asked again at {}", humantime::format_rfc3339_seconds(at)));
            let said = [last, asked_again].into_iter().flatten();
            (Some(said.collect::<Vec<_>>().join("; ")), next_in)
        }
        GateCheck::Answered(report) if report.gate_passed() => {
            clear_gate_block(status);
            let said = format!(
                "the broker says deployable: {}",
                report.gate_reasons_or_ok().join(" / ")
            );
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::True,
                "Deployable",
                &said,
                now,
            );
            (
                Some(said),
                Some(env.manifest.spec.policy.gate_retry.max.get()),
            )
        }
        GateCheck::Answered(report) => {
            let reasons = report.gate_reasons().join(" / ");
            let delay = block_gate(status, env, now);
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::False,
                "GateBlocked",
                &reasons,
                now,
            );
            let said = format!(
                "the broker says not deployable (yet): {reasons}; asked again in {}",
                humantime::format_duration(delay)
            );
            (Some(said), Some(delay))
        }
        GateCheck::Failed(error) => {
            let message = error_chain(error);
            let delay = block_gate(status, env, now);
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::Unknown,
                "BrokerError",
                &message,
                now,
            );
            let said = format!(
                "the broker could not be asked: {message}; asked again in {}",
                humantime::format_duration(delay)
            );
            (Some(said), Some(delay))
        }
    };
    status.message = match answer {
        Some(answer) if !answer.is_empty() => format!("{reason}; {answer}"),
        _ => reason.to_string(),
    };
    delay
}

fn not_started(
    status: &mut EnvironmentStatus,
    env: &Environment,
    error: &pipeline::Error,
    now: SystemTime,
) -> Option<Duration> {
    let message = error_chain(error);
    match error {
        pipeline::Error::Gate { .. } => {
            // The broker could not answer: no gate ever passes on an error.
            status.phase = Phase::GateBlocked;
            status.message = format!("broker unreachable or refused: {message}");
            let delay = block_gate(status, env, now);
            status.set_condition(
                ConditionType::Gated,
                ConditionStatus::Unknown,
                "BrokerError",
                &message,
                now,
            );
            Some(delay)
        }
        _ if error.is_transient() => {
            status.message = message;
            Some(TRANSIENT_RETRY)
        }
        _ => {
            status.phase = Phase::Degraded;
            status.message = message;
            None
        }
    }
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
