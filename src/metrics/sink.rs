//! [`Metrics`] as an [`EventSink`]: pipeline events become counters and histograms.

use super::{GateResult, Metrics, Outcome};
use crate::events::{EventSink, PipelineEvent, Scope};

impl EventSink for Metrics {
    fn emit(&self, scope: &Scope, event: &PipelineEvent) {
        let env = scope.environment.as_str();
        let outcome = |ok: bool| {
            if ok {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            }
        };
        match event {
            PipelineEvent::StepFinished { step, elapsed, .. } => {
                self.observe_step(env, *step, *elapsed)
            }
            PipelineEvent::GateAnswered { verdicts, .. } => {
                for verdict in verdicts {
                    self.observe_gate_check(env, GateResult::of(*verdict));
                }
            }
            PipelineEvent::RecordAttempted { recorded, .. } => {
                self.observe_record(env, outcome(*recorded))
            }
            PipelineEvent::RollbackDone { succeeded, .. } => {
                self.observe_rollback(env, outcome(*succeeded))
            }
            PipelineEvent::Recovered { result, .. } => self.observe_recovery(env, *result),
            PipelineEvent::Planned { .. }
            | PipelineEvent::GateError { .. }
            | PipelineEvent::LeftoversRemoved { .. }
            | PipelineEvent::StepStarted { .. }
            | PipelineEvent::ReadinessWaiting { .. }
            | PipelineEvent::Finished { .. } => {}
        }
    }
}
