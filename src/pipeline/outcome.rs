//! The result of one deploy: the outcome (which drives exit codes and status) and its report.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::StepFailure;
use crate::broker::{Candidate, GateAnswer};
use crate::events::StepName;
use crate::state::RecordKind;

/// How one deploy ended. Each variant maps to one exit code of `c2quay deploy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Nothing differs from what runs; nothing was done.
    UpToDate,
    /// Dry run: the plan was printed, nothing changed.
    DryRun,
    /// Deployed, smoke-tested and recorded.
    Deployed,
    /// The broker said no (or unknown); nothing on the host was touched.
    GateBlocked,
    /// Apply or smoke failed and the previous images run again.
    RolledBack {
        /// The step that failed and why.
        #[serde(flatten)]
        failure: StepFailure,
    },
    /// Apply or smoke failed and the rollback failed too, or was off / dry-run.
    RollbackFailed {
        /// The step that failed and why.
        #[serde(flatten)]
        failure: StepFailure,
        /// Why the previous images do not run again.
        rollback: String,
    },
    /// Deployed and healthy, but some broker records failed (they wait in the outbox).
    RecordFailed,
}

impl Outcome {
    /// The failed step and why, for the outcomes of a failed flow.
    pub fn failure(&self) -> Option<&StepFailure> {
        match self {
            Outcome::RolledBack { failure } | Outcome::RollbackFailed { failure, .. } => {
                Some(failure)
            }
            _ => None,
        }
    }

    /// The exit code of `c2quay deploy` for this outcome (documented in `--help` and the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::UpToDate | Outcome::DryRun | Outcome::Deployed => 0,
            Outcome::GateBlocked => 3,
            Outcome::RolledBack { .. } => 4,
            Outcome::RollbackFailed { .. } => 5,
            Outcome::RecordFailed => 6,
        }
    }

    /// A short stable name for logs, metrics and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::UpToDate => "up_to_date",
            Outcome::DryRun => "dry_run",
            Outcome::Deployed => "deployed",
            Outcome::GateBlocked => "gate_blocked",
            // The host refused the apply: retried, not a failed release.
            Outcome::RolledBack { failure } | Outcome::RollbackFailed { failure, .. }
                if failure.host.is_some() =>
            {
                "host_blocked"
            }
            Outcome::RolledBack { .. } => "rolled_back",
            Outcome::RollbackFailed { .. } => "rollback_failed",
            Outcome::RecordFailed => "record_failed",
        }
    }
}

/// Timing of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTiming {
    /// The step.
    pub step: StepName,
    /// Milliseconds.
    pub millis: u64,
    /// `ok` or `failed`.
    pub result: String,
}

/// Whether one broker record was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordStatus {
    /// The broker accepted it (for an undeployment: the pacticipant is no longer currently
    /// deployed there, whether this call undeployed it or it already was not).
    Recorded,
    /// The broker refused or was unreachable; it waits in the outbox.
    Failed,
    /// Not attempted (an earlier step failed).
    NotAttempted,
}

/// One broker record of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordItem {
    /// Pacticipant and version.
    #[serde(flatten)]
    pub candidate: Candidate,
    /// A deployment or an undeployment (reports from before undeployments: deployment).
    #[serde(default)]
    pub kind: RecordKind,
    /// What happened.
    pub status: RecordStatus,
    /// The error, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The JSON deploy report written next to the snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    /// Environment name.
    pub environment: String,
    /// Manifest generation.
    pub generation: String,
    /// The plan's reason.
    pub plan: String,
    /// Changed services.
    pub changed: Vec<String>,
    /// The hash of the rendered Compose model deployed ([`crate::plan::model_hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    /// Gate answers in service order (one for all-or-nothing), with the candidates asked.
    pub gate: Vec<GateEntry>,
    /// Step timings in order.
    pub steps: Vec<StepTiming>,
    /// Records itemised.
    pub records: Vec<RecordItem>,
    /// The outcome.
    pub outcome: Outcome,
    /// Pre-deploy snapshot.
    pub pre_snapshot: Option<PathBuf>,
    /// Post-deploy (or post-rollback) snapshot.
    pub post_snapshot: Option<PathBuf>,
    /// The rollback report, when a rollback ran.
    pub rollback_report: Option<PathBuf>,
    /// This report's own path (set after writing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_path: Option<PathBuf>,
    /// Lines for an operator: what to run next (printed on failure).
    pub hints: Vec<String>,
    /// Services whose new release the gate held back (per service: the rest went ahead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// Changed services left as they run because `--service` did not name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// One gate question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateEntry {
    /// The candidates asked in this query.
    pub candidates: Vec<Candidate>,
    /// The broker's answer.
    pub answer: GateAnswer,
}

impl GateEntry {
    /// The candidates asked, as `pacticipant version` joined by commas.
    pub fn who(&self) -> String {
        self.candidates
            .iter()
            .map(|c| format!("{} {}", c.pacticipant, c.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl DeployReport {
    /// A report with nothing done yet.
    pub fn new(environment: &str, generation: &str) -> Self {
        DeployReport {
            environment: environment.to_string(),
            generation: generation.to_string(),
            plan: String::new(),
            changed: Vec::new(),
            model_hash: None,
            gate: Vec::new(),
            steps: Vec::new(),
            records: Vec::new(),
            outcome: Outcome::UpToDate,
            pre_snapshot: None,
            post_snapshot: None,
            rollback_report: None,
            report_path: None,
            hints: Vec::new(),
            waiting: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// True when every gate answer is `Deployable`.
    pub fn gate_passed(&self) -> bool {
        self.gate
            .iter()
            .all(|entry| entry.answer.verdict == crate::broker::Verdict::Deployable)
    }

    /// One line per gate answer, deployable or not (for `c2quay plan`).
    pub fn gate_reasons_or_ok(&self) -> Vec<String> {
        self.gate
            .iter()
            .map(|entry| {
                let who = entry.who();
                format!(
                    "{who}: {:?}: {}",
                    entry.answer.verdict,
                    entry.answer.reason.replace('\n', " / ")
                )
            })
            .collect()
    }

    /// The gate's reasons, one line per answer that was not `Deployable`.
    pub fn gate_reasons(&self) -> Vec<String> {
        self.gate
            .iter()
            .filter(|entry| entry.answer.verdict != crate::broker::Verdict::Deployable)
            .map(|entry| {
                let who = entry.who();
                format!(
                    "{who}: {:?} ({} ok, {} failed, {} unknown): {}",
                    entry.answer.verdict,
                    entry.answer.success,
                    entry.answer.failed,
                    entry.answer.unknown,
                    entry.answer.reason.replace('\n', " / ")
                )
            })
            .collect()
    }
}
