//! What the pipeline tells the world: the closed [`StepName`] vocabulary, the [`PipelineEvent`]
//! enum and the [`EventSink`] port.
//!
//! The pipeline emits events and knows nothing of who listens. Metrics
//! ([`crate::metrics::Metrics`]), the audit log ([`AuditSink`]) and the log ([`LogSink`]) are
//! sinks; a notification channel is one more. [`Events`] fans one event out to every sink.
//!
//! **Invariant:** a sink never fails the pipeline: it logs its own problems and returns.

mod audit;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

pub use audit::AuditSink;

use crate::broker::Verdict;

/// One step of a pipeline flow. Serialised (reports, status, audit, metric labels) as its
/// lower-case name, the strings earlier versions wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepName {
    /// Observing the project: rendered model and containers.
    Snapshot,
    /// The pure planner.
    Plan,
    /// can-i-deploy against the broker.
    Gate,
    /// `docker compose pull`.
    Pull,
    /// `docker compose up -d`.
    Up,
    /// Waiting for containers to be running and healthy.
    Readiness,
    /// Smoke checks.
    Smoke,
    /// Readiness's last observation compared with the pins.
    Verify,
    /// record-deployment in the broker.
    Record,
    /// Restoring the images that ran before.
    Rollback,
    /// Re-applying the applied release of drifted services.
    Heal,
}

impl StepName {
    /// Every step, in pipeline order.
    pub const ALL: &[StepName] = &[
        StepName::Snapshot,
        StepName::Plan,
        StepName::Gate,
        StepName::Pull,
        StepName::Up,
        StepName::Readiness,
        StepName::Smoke,
        StepName::Verify,
        StepName::Record,
        StepName::Rollback,
        StepName::Heal,
    ];

    /// The name as written in reports, the audit log and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Snapshot => "snapshot",
            StepName::Plan => "plan",
            StepName::Gate => "gate",
            StepName::Pull => "pull",
            StepName::Up => "up",
            StepName::Readiness => "readiness",
            StepName::Smoke => "smoke",
            StepName::Verify => "verify",
            StepName::Record => "record",
            StepName::Rollback => "rollback",
            StepName::Heal => "heal",
        }
    }

    /// Whether the step changes or checks the host as part of applying a release (its end is
    /// an audit line of its own); the others have richer events of their own.
    pub fn is_apply_step(self) -> bool {
        matches!(
            self,
            StepName::Pull
                | StepName::Up
                | StepName::Readiness
                | StepName::Smoke
                | StepName::Verify
        )
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What recovery of an interrupted operation did after a restart, the `result` label of
/// `c2quay_recoveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecoveryResult {
    /// An interrupted deploy was resumed and its release passed.
    Resumed,
    /// An interrupted deploy past smoke was finished (records, applied release).
    Finished,
    /// The interrupted operation ended rolled back (a failed release, an interrupted rollback,
    /// the resume bound, a generation no longer desired).
    RolledBack,
    /// Recovery could not make the host consistent.
    Failed,
}

impl RecoveryResult {
    /// Every result.
    pub const ALL: &[RecoveryResult] = &[
        RecoveryResult::Resumed,
        RecoveryResult::Finished,
        RecoveryResult::RolledBack,
        RecoveryResult::Failed,
    ];

    /// The label value (also the audit line's outcome).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryResult::Resumed => "resumed",
            RecoveryResult::Finished => "finished",
            RecoveryResult::RolledBack => "rolled_back",
            RecoveryResult::Failed => "failed",
        }
    }
}

/// Which run of which environment an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Environment name.
    pub environment: String,
    /// Manifest generation being worked on.
    pub generation: String,
    /// The commit of the desired checkout it comes from (`main@sha1:<hex>`), when known.
    pub revision: Option<String>,
}

/// Something that happened in a pipeline flow.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEvent {
    /// A step starts.
    StepStarted {
        /// The step.
        step: StepName,
    },
    /// Readiness is still waiting for some services (sent when what it waits for changes,
    /// and at most every few seconds otherwise).
    ReadinessWaiting {
        /// (service, state as seen, e.g. `running (health: starting)`), in service order.
        waiting: Vec<(String, String)>,
        /// How long readiness has waited so far.
        waited: Duration,
        /// Its timeout.
        timeout: Duration,
    },
    /// A step ended; `failure` says why it failed.
    StepFinished {
        /// The step.
        step: StepName,
        /// How long it took.
        elapsed: Duration,
        /// `None` when it succeeded.
        failure: Option<String>,
    },
    /// The plan of a deploy.
    Planned {
        /// What the deploy will do, for a human.
        plan: String,
    },
    /// The broker answered the gate.
    GateAnswered {
        /// One verdict per query, in order.
        verdicts: Vec<Verdict>,
        /// Why the gate is blocked (empty: it passed).
        blocked_reasons: Vec<String>,
    },
    /// The broker could not be asked; nothing changed.
    GateError {
        /// The error chain.
        error: String,
    },
    /// Leftover containers of an interrupted recreate were removed.
    LeftoversRemoved {
        /// Their names.
        names: Vec<String>,
    },
    /// One record-deployment or record-undeployment was tried.
    RecordAttempted {
        /// Deployment or undeployment.
        kind: crate::state::RecordKind,
        /// Pacticipant.
        pacticipant: String,
        /// Version (for an undeployment: the one that ran until the service was removed).
        version: String,
        /// Whether the broker accepted it.
        recorded: bool,
    },
    /// A rollback ran (or was skipped by policy).
    RollbackDone {
        /// What happened, as in the rollback report.
        result: String,
        /// Whether the previous images run again.
        succeeded: bool,
        /// Why the rollback was needed.
        cause: String,
    },
    /// An interrupted operation was recovered after a restart.
    Recovered {
        /// What recovery did.
        result: RecoveryResult,
        /// The generation the interrupted operation worked on.
        generation: String,
        /// The step it was interrupted in.
        step: StepName,
        /// What happened, for a human ("resumed an interrupted deploy of generation ...").
        message: String,
    },
    /// A flow ended.
    Finished {
        /// The outcome's stable name (`deployed`, `rolled_back`, ...).
        outcome: &'static str,
        /// The plan it carried out.
        plan: String,
    },
}

/// A listener of pipeline events. Implementations must not block for long and never fail.
pub trait EventSink: Send + Sync {
    /// Takes one event of the run `scope`.
    fn emit(&self, scope: &Scope, event: &PipelineEvent);
}

/// Every sink of a context; emitting sends the event to each, in order.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl Events {
    /// No sinks: events go nowhere.
    pub fn none() -> Events {
        Events::default()
    }

    /// Adds a sink.
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Events {
        self.sinks.push(sink);
        self
    }

    /// Sends `event` to every sink.
    pub fn emit(&self, scope: &Scope, event: &PipelineEvent) {
        for sink in &self.sinks {
            sink.emit(scope, event);
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Events({} sinks)", self.sinks.len())
    }
}

/// Writes step ends to the log (`tracing`, level info).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

impl EventSink for LogSink {
    fn emit(&self, scope: &Scope, event: &PipelineEvent) {
        if let PipelineEvent::StepFinished {
            step,
            elapsed,
            failure,
        } = event
        {
            info!(environment = %scope.environment, generation = %scope.generation, step = step.as_str(), ok = failure.is_none(), millis = elapsed.as_millis() as u64, "step done");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<PipelineEvent>>);

    impl EventSink for Recorder {
        fn emit(&self, _scope: &Scope, event: &PipelineEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn step_names_serialise_as_the_strings_reports_always_had() {
        for step in StepName::ALL {
            let json = serde_json::to_string(step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.as_str()));
            let back: StepName = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, step);
        }
    }

    #[test]
    fn every_sink_gets_every_event_in_order() {
        let first = Arc::new(Recorder::default());
        let second = Arc::new(Recorder::default());
        let events = Events::none().with(first.clone()).with(second.clone());
        let scope = Scope {
            environment: "shop".into(),
            generation: "g1".into(),
            revision: None,
        };
        let planned = PipelineEvent::Planned { plan: "p".into() };
        let finished = PipelineEvent::Finished {
            outcome: "deployed",
            plan: "p".into(),
        };
        events.emit(&scope, &planned);
        events.emit(&scope, &finished);
        for sink in [first, second] {
            assert_eq!(
                *sink.0.lock().unwrap(),
                vec![planned.clone(), finished.clone()]
            );
        }
    }
}
