//! The closed sets of label values: phases, steps and results.
//!
//! Every label value c2quay exports comes from here or is an environment name, an HTTP
//! method or an HTTP status code.

/// The phases an environment can be in, as exported in the `phase` label of
/// `c2quay_environment_phase`. The same spelling as in `c2quay status`.
pub const PHASES: &[&str] = &[
    "Pending",
    "Ready",
    "Progressing",
    "GateBlocked",
    "Degraded",
    "RolledBack",
    "Drifted",
    "Invalid",
    "Suspended",
    "Orphaned",
    "Unknown",
    "HostBlocked",
    "OutOfSync",
];

/// One step of the reconcile pipeline, the `step` label of `c2quay_step_duration_seconds`:
/// the pipeline's own [`StepName`](crate::events::StepName).
pub use crate::events::StepName as Step;

/// What recovery of an interrupted operation did, the `result` label of
/// `c2quay_recoveries_total`: the pipeline's own
/// [`RecoveryResult`](crate::events::RecoveryResult).
pub use crate::events::RecoveryResult;

/// How one reconcile ended, the `result` label of `c2quay_reconcile_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Nothing to do: the environment already runs what is desired.
    Noop,
    /// A new generation was deployed and passed its smoke checks.
    Deployed,
    /// Drift was repaired by re-applying the recorded versions.
    Healed,
    /// The broker did not (yet) allow the deploy; nothing changed on the host.
    GateBlocked,
    /// The deploy failed and was rolled back.
    RolledBack,
    /// The reconcile failed (broker, compose or state error) without a rollback.
    Failed,
    /// Nothing was attempted: the environment is suspended, its manifest is invalid, or
    /// `policy.sync: manual` holds its change.
    Skipped,
}

impl ReconcileResult {
    /// Every result.
    pub const ALL: &[ReconcileResult] = &[
        ReconcileResult::Noop,
        ReconcileResult::Deployed,
        ReconcileResult::Healed,
        ReconcileResult::GateBlocked,
        ReconcileResult::RolledBack,
        ReconcileResult::Failed,
        ReconcileResult::Skipped,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Noop => "noop",
            ReconcileResult::Deployed => "deployed",
            ReconcileResult::Healed => "healed",
            ReconcileResult::GateBlocked => "gate_blocked",
            ReconcileResult::RolledBack => "rolled_back",
            ReconcileResult::Failed => "failed",
            ReconcileResult::Skipped => "skipped",
        }
    }

    /// Whether the environment was converged at the end of this reconcile.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            ReconcileResult::Noop | ReconcileResult::Deployed | ReconcileResult::Healed
        )
    }
}

/// The broker's answer to one can-i-deploy check, the `result` label of
/// `c2quay_gate_checks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateResult {
    /// `deployable: true`.
    Deployable,
    /// `deployable: false`.
    NotDeployable,
    /// `deployable: null` (verification pending).
    Unknown,
    /// The broker could not be asked (transport error, 5xx, garbage).
    Error,
}

impl GateResult {
    /// The label of a broker verdict.
    pub fn of(verdict: crate::broker::Verdict) -> GateResult {
        match verdict {
            crate::broker::Verdict::Deployable => GateResult::Deployable,
            crate::broker::Verdict::NotDeployable => GateResult::NotDeployable,
            crate::broker::Verdict::Unknown => GateResult::Unknown,
        }
    }

    /// Every result.
    pub const ALL: &[GateResult] = &[
        GateResult::Deployable,
        GateResult::NotDeployable,
        GateResult::Unknown,
        GateResult::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GateResult::Deployable => "deployable",
            GateResult::NotDeployable => "not_deployable",
            GateResult::Unknown => "unknown",
            GateResult::Error => "error",
        }
    }
}

/// The end of one attempt: a rollback or a record-deployment, the `result` label of
/// `c2quay_rollbacks_total` and `c2quay_records_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It failed (a record is retried later from the outbox).
    Failed,
}

impl Outcome {
    /// Both outcomes.
    pub const ALL: &[Outcome] = &[Outcome::Succeeded, Outcome::Failed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}
