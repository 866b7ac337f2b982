//! [`AuditSink`]: pipeline events as lines of the environment's audit log
//! (`envs/<name>/audit.jsonl`), in the `step outcome message` shape operators and tests read.

use std::sync::Arc;

use tracing::warn;

use super::{EventSink, PipelineEvent, Scope};
use crate::state::{AuditEvent, Clock, StateDir};

/// Appends one audit line per event that an operator reads (step ends of the apply steps, plan,
/// gate, leftovers, rollback, result). A failed append only warns: the log is advisory.
#[derive(Clone)]
pub struct AuditSink {
    state: StateDir,
    clock: Arc<dyn Clock>,
}

impl AuditSink {
    /// A sink writing under `state`, stamped by `clock`.
    pub fn new(state: StateDir, clock: Arc<dyn Clock>) -> AuditSink {
        AuditSink { state, clock }
    }
}

/// The `(step, outcome, message)` audit line of `event`, or `None` when it has none.
fn audit_line(event: &PipelineEvent) -> Option<(&'static str, String, String)> {
    Some(match event {
        PipelineEvent::StepFinished { step, failure, .. } if step.is_apply_step() => {
            match failure {
                None => (step.as_str(), "ok".into(), String::new()),
                Some(cause) => (step.as_str(), "failed".into(), cause.clone()),
            }
        }
        PipelineEvent::StepFinished { .. }
        | PipelineEvent::RecordAttempted { .. }
        | PipelineEvent::StepStarted { .. }
        | PipelineEvent::ReadinessWaiting { .. } => return None,
        PipelineEvent::Planned { plan } => ("plan", "ok".into(), plan.clone()),
        PipelineEvent::GateAnswered {
            blocked_reasons, ..
        } if blocked_reasons.is_empty() => ("gate", "ok".into(), "broker says deployable".into()),
        PipelineEvent::GateAnswered {
            blocked_reasons, ..
        } => ("gate", "blocked".into(), blocked_reasons.join("; ")),
        PipelineEvent::GateError { error } => ("gate", "error".into(), error.clone()),
        PipelineEvent::LeftoversRemoved { names } => {
            ("leftovers", "removed".into(), names.join(", "))
        }
        PipelineEvent::RollbackDone { result, cause, .. } => {
            ("rollback", result.clone(), cause.clone())
        }
        PipelineEvent::Recovered {
            result, message, ..
        } => ("recover", result.as_str().into(), message.clone()),
        PipelineEvent::Finished { outcome, plan } => ("result", outcome.to_string(), plan.clone()),
    })
}

impl EventSink for AuditSink {
    fn emit(&self, scope: &Scope, event: &PipelineEvent) {
        let Some((step, outcome, message)) = audit_line(event) else {
            return;
        };
        // A recovery is about the interrupted operation's generation, which may no longer be
        // the desired one the run is scoped to: the line names the generation it rolled back
        // (what a rebuilt status holds as failed, `StateDir::failed_generation_in_audit`).
        let generation = match event {
            PipelineEvent::Recovered { generation, .. } => generation,
            _ => &scope.generation,
        };
        let line = AuditEvent::new(
            self.clock.now(),
            &scope.environment,
            step,
            &outcome,
            &message,
        )
        .with_generation(generation.clone());
        let line = AuditEvent {
            revision: scope.revision.clone(),
            ..line
        };
        if let Err(error) = self.state.append_audit(&scope.environment, &line) {
            warn!(environment = %scope.environment, error = %crate::error_chain(&error), "cannot append to the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::StepName;
    use std::time::Duration;

    #[test]
    fn apply_steps_write_ok_or_failed_with_the_cause() {
        let ok = PipelineEvent::StepFinished {
            step: StepName::Up,
            elapsed: Duration::from_millis(5),
            failure: None,
        };
        assert_eq!(audit_line(&ok), Some(("up", "ok".into(), String::new())));
        let failed = PipelineEvent::StepFinished {
            step: StepName::Smoke,
            elapsed: Duration::ZERO,
            failure: Some("smoke check \"home\" failed".into()),
        };
        assert_eq!(
            audit_line(&failed),
            Some((
                "smoke",
                "failed".into(),
                "smoke check \"home\" failed".into()
            ))
        );
    }

    #[test]
    fn snapshot_timings_and_record_attempts_write_no_line() {
        let snapshot = PipelineEvent::StepFinished {
            step: StepName::Snapshot,
            elapsed: Duration::ZERO,
            failure: None,
        };
        assert_eq!(audit_line(&snapshot), None);
        let record = PipelineEvent::RecordAttempted {
            kind: crate::state::RecordKind::Deployment,
            pacticipant: "web".into(),
            version: "2".into(),
            recorded: true,
        };
        assert_eq!(audit_line(&record), None);
    }

    #[test]
    fn a_recovery_line_names_the_interrupted_generation() {
        let (_d, state) = crate::state::test_state_dir(0);
        let sink = AuditSink::new(
            state.clone(),
            Arc::new(crate::state::FixedClock::at_unix(0)),
        );
        let scope = Scope {
            environment: "shop".into(),
            generation: "desired".into(),
            revision: None,
        };
        sink.emit(
            &scope,
            &PipelineEvent::Recovered {
                result: super::super::RecoveryResult::RolledBack,
                generation: "interrupted".into(),
                step: StepName::Up,
                message: "rolled back".into(),
            },
        );
        sink.emit(
            &scope,
            &PipelineEvent::Planned {
                plan: "web 1 -> 2".into(),
            },
        );
        let lines = state.read_audit("shop").unwrap();
        let generations: Vec<_> = lines.iter().map(|l| l.generation.as_deref()).collect();
        assert_eq!(generations, [Some("interrupted"), Some("desired")]);
    }

    #[test]
    fn a_blocked_gate_joins_its_reasons() {
        let blocked = PipelineEvent::GateAnswered {
            verdicts: vec![crate::broker::Verdict::NotDeployable],
            blocked_reasons: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            audit_line(&blocked),
            Some(("gate", "blocked".into(), "a; b".into()))
        );
    }
}
