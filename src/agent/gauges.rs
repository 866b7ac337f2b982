//! The agent's per-environment gauges after a reconcile, from the status it wrote.

use std::time::{Duration, SystemTime};

use crate::metrics::{Metrics, ReconcileResult};
use crate::state::{ConditionStatus, ConditionType, EnvironmentStatus, Phase};

/// Sets the gauges of environment `name` after one reconcile that ended with `result` in
/// `elapsed` and wrote `status`; `written` says whether the status file was written (a status
/// the agent cannot write is not Ready, whatever the phase says).
pub(super) fn export(
    metrics: &Metrics,
    name: &str,
    status: &EnvironmentStatus,
    result: ReconcileResult,
    elapsed: Duration,
    written: bool,
    now: SystemTime,
) {
    metrics.observe_reconcile(name, result, elapsed);
    metrics.set_phase(name, status.phase.as_str());
    metrics.set_pending_records(name, status.pending_records);
    let gated = status.condition(ConditionType::Gated);
    // A manual environment whose held release the broker refuses counts as blocked too.
    let refused = status.phase == Phase::OutOfSync
        && gated.is_some_and(|c| c.status != ConditionStatus::True);
    let blocked_since = (status.phase == Phase::GateBlocked || refused)
        .then(|| gated.map(|c| c.last_transition_time))
        .flatten();
    metrics.set_gate_blocked_since(name, blocked_since);
    metrics.set_drift_detected(name, status.phase == Phase::Drifted);
    let host = (status.host_block.as_ref())
        .filter(|_| status.phase == Phase::HostBlocked)
        .map(|block| block.cause);
    metrics.set_host_blocked(name, host);
    metrics.set_manifest_errors(name, usize::from(status.phase == Phase::Invalid));
    if status.phase == Phase::Ready && written {
        metrics.set_last_success(name, now);
    }
    metrics.set_state_error(name, !written);
}
