//! Gate: can-i-deploy for the candidates, one query for an all-or-nothing set of 2+, else one
//! per candidate. Asking never changes the host.

use super::super::outcome::GateEntry;
use super::super::run::Run;
use super::super::{Brokers, Context, Error, Result};
use crate::broker::{Broker, Candidate, GateMode};
use crate::error_chain;
use crate::events::{PipelineEvent, StepName};
use crate::manifest::{BrokerSpec, Environment};

/// Asks the broker about `candidates`. Entries come back in the candidates' order.
pub(in crate::pipeline) async fn ask_gate<C, B: Brokers, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    spec: &BrokerSpec,
    candidates: &[Candidate],
) -> Result<Vec<GateEntry>> {
    let gate_error = |source| Error::Gate {
        environment: env.name().to_string(),
        source,
    };
    let client = ctx.brokers.client(spec).map_err(gate_error)?;
    let mode = if spec.all_or_nothing && candidates.len() >= 2 {
        GateMode::AllOrNothing
    } else {
        GateMode::PerService
    };
    let answers = client
        .can_i_deploy(&spec.environment, candidates, mode)
        .await
        .map_err(gate_error)?;
    Ok(match mode {
        GateMode::AllOrNothing => answers
            .into_iter()
            .map(|answer| GateEntry {
                candidates: candidates.to_vec(),
                answer,
            })
            .collect(),
        GateMode::PerService => candidates
            .iter()
            .zip(answers)
            .map(|(candidate, answer)| GateEntry {
                candidates: vec![candidate.clone()],
                answer,
            })
            .collect(),
    })
}

impl<C, B: Brokers, S> Run<'_, C, B, S> {
    /// The gate step of a deploy: asks, puts the answers in the report and emits them.
    /// `Ok(true)` when every answer is deployable; `Err` when the broker could not be asked.
    pub(in crate::pipeline) async fn gate(
        &mut self,
        spec: &BrokerSpec,
        candidates: &[Candidate],
    ) -> Result<bool> {
        let started = self.start_step(StepName::Gate);
        match ask_gate(self.ctx, self.env, spec, candidates).await {
            Ok(entries) => self.report.gate = entries,
            Err(error) => {
                let message = error_chain(&error);
                self.end_step(StepName::Gate, started, Some(&message));
                self.emit(PipelineEvent::GateError { error: message });
                return Err(error);
            }
        }
        let passed = self.report.gate_passed();
        let blocked_reasons = if passed {
            Vec::new()
        } else {
            self.report.gate_reasons()
        };
        self.end_step(StepName::Gate, started, (!passed).then_some("blocked"));
        self.emit(PipelineEvent::GateAnswered {
            verdicts: self.report.gate.iter().map(|e| e.answer.verdict).collect(),
            blocked_reasons,
        });
        Ok(passed)
    }
}
