//! Environment status: phase, conditions, releases and a bounded reconcile history.
//!
//! Written atomically to `envs/<name>/status.json` after every reconcile; read by `c2quay
//! status` (with the agent stopped too), the HTTP API and the planner (applied generation and
//! releases are the "applied state").

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::StateDir;
use super::error::{Error, Result};
use super::schema::{read_versioned_opt, write_versioned};

/// How many reconciles [`EnvironmentStatus::history`] keeps.
pub const HISTORY_LIMIT: usize = 10;

/// Where an environment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Never reconciled yet.
    Pending,
    /// The applied generation runs and is ready.
    Ready,
    /// A deploy, rollback or heal is in flight.
    Progressing,
    /// The broker does not (yet) allow the desired generation; nothing on the host changed.
    GateBlocked,
    /// Running, but not as applied, and healing gave up (heal cap reached).
    Degraded,
    /// The desired generation failed and was rolled back; waits for a new generation or a retry.
    RolledBack,
    /// The containers differ from what was applied and self-heal is off.
    Drifted,
    /// The manifest does not parse or validate; running services are untouched.
    Invalid,
    /// The manifest asks c2quay to leave the environment alone.
    Suspended,
    /// The manifest was removed; containers keep running unmanaged.
    Orphaned,
    /// The agent cannot observe the environment now (the Docker engine does not answer): what
    /// runs is not known, so it is not Ready. The `DockerReachable` condition says why.
    Unknown,
    /// The host refused the desired generation's apply (address pools, disk, daemon, a port
    /// held outside the project); the previous release was restored and the same generation is
    /// tried again with backoff. Not a failed release.
    HostBlocked,
    /// What runs serves, but not all of the desired generation is applied: a
    /// `c2quay deploy --service` applied some services and the rest still wait.
    OutOfSync,
}

impl Phase {
    /// Every phase, for one-hot metrics.
    pub const ALL: [Phase; 13] = [
        Phase::Pending,
        Phase::Ready,
        Phase::Progressing,
        Phase::GateBlocked,
        Phase::Degraded,
        Phase::RolledBack,
        Phase::Drifted,
        Phase::Invalid,
        Phase::Suspended,
        Phase::Orphaned,
        Phase::Unknown,
        Phase::HostBlocked,
        Phase::OutOfSync,
    ];

    /// The phase's name as written in status files and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Ready => "Ready",
            Phase::Progressing => "Progressing",
            Phase::GateBlocked => "GateBlocked",
            Phase::Degraded => "Degraded",
            Phase::RolledBack => "RolledBack",
            Phase::Drifted => "Drifted",
            Phase::Invalid => "Invalid",
            Phase::Suspended => "Suspended",
            Phase::Orphaned => "Orphaned",
            Phase::Unknown => "Unknown",
            Phase::HostBlocked => "HostBlocked",
            Phase::OutOfSync => "OutOfSync",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The aspects of an environment that conditions report on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    /// The broker allows the desired generation.
    Gated,
    /// The desired generation runs on the host.
    Applied,
    /// The smoke checks of the applied generation passed.
    SmokePassed,
    /// Every deployment is recorded in the broker (no pending records).
    Recorded,
    /// The phase is `Ready`; otherwise the reason is the phase. Refreshed on every write, so
    /// it never contradicts the phase.
    Ready,
    /// The Docker engine answered the environment's last observation.
    DockerReachable,
}

/// Kubernetes-style condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (e.g. the broker could not answer).
    Unknown,
}

/// One condition with its reason and the time its status last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which aspect.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason (`NotDeployable`, `BrokerUnavailable`, ...).
    pub reason: String,
    /// A human-readable message.
    pub message: String,
    /// When `status` last changed.
    #[serde(with = "super::clock::rfc3339")]
    pub last_transition_time: SystemTime,
}

/// What runs for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The release identity recorded in the broker, when the service is gated.
    pub version: Option<String>,
    /// The pinned image reference.
    pub image: String,
    /// The image id the container ran when last observed.
    pub image_id: Option<String>,
    /// The broker's pacticipant name, when gated (kept so an undeployment can be recorded after
    /// the service left the manifest). Absent in older status files: the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacticipant: Option<String>,
}

/// One reconcile in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When the reconcile started.
    #[serde(with = "super::clock::rfc3339")]
    pub at: SystemTime,
    /// The generation it worked on.
    pub generation: Option<String>,
    /// The commit of the desired checkout it worked on, when it is a git work tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The planner's action (`noop`, `deploy`, `heal`, ...).
    pub action: String,
    /// Why the planner chose it.
    pub reason: String,
    /// The outcome (`succeeded`, `gateBlocked`, `rolledBack`, ...).
    pub result: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// The status of one environment.
///
/// Every field but `name` and `phase` defaults when missing, so a file written before a field
/// existed loads (see [`super::schema`]); a field added later must default too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Environment name.
    pub name: String,
    /// Current phase.
    pub phase: Phase,
    /// One line saying why the environment is in this phase.
    #[serde(default)]
    pub message: String,
    /// Generation of the manifest last seen.
    pub observed_generation: Option<String>,
    /// Generation last applied successfully.
    pub applied_generation: Option<String>,
    /// The commit of the desired checkout the last reconcile saw (`main@sha1:<hex>`; absent
    /// when the desired directory is not a git work tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_revision: Option<String>,
    /// The commit of the desired checkout whose manifest is applied: the one of the last
    /// successful deploy, or of a later reconcile that found that generation still desired
    /// and running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Generation that failed and was rolled back (not retried until it changes or `retry`).
    pub failed_generation: Option<String>,
    /// The hash of that failed deploy's rendered Compose model: a change of the Compose files
    /// alone is retried too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_model: Option<String>,
    /// Conditions, at most one per type.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Service -> what runs (the applied state the planner compares against).
    #[serde(default)]
    pub releases: BTreeMap<String, Release>,
    /// Service -> the configuration applied (hashes only: values may be secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, crate::plan::AppliedConfig>,
    /// When the last reconcile ended.
    #[serde(default, with = "super::clock::rfc3339_opt")]
    pub last_reconcile_at: Option<SystemTime>,
    /// The last reconcile's result.
    pub last_result: Option<String>,
    /// The last reconcile's action.
    pub last_action: Option<String>,
    /// Records waiting in the outbox.
    #[serde(default)]
    pub pending_records: usize,
    /// Consecutive blocked gate checks (for backoff); 0 when not blocked.
    #[serde(default)]
    pub gate_checks: u32,
    /// When the gate may be asked again.
    #[serde(default, with = "super::clock::rfc3339_opt")]
    pub next_gate_check_at: Option<SystemTime>,
    /// The generation whose gate is blocked (a new generation resets the backoff).
    #[serde(default)]
    pub gate_blocked_generation: Option<String>,
    /// Times of recent heals (for the heal cap).
    #[serde(default, with = "super::clock::rfc3339_vec")]
    pub heals: Vec<SystemTime>,
    /// The last [`HISTORY_LIMIT`] reconciles, oldest first.
    #[serde(default)]
    pub history: VecDeque<HistoryEntry>,
    /// Set while the host refuses the desired generation's apply: what refused and when the
    /// apply is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_block: Option<HostBlock>,
    /// Set by `c2quay suspend`: the agent only observes this environment until
    /// `c2quay resume` or a manifest of another generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
}

/// A local suspension (`c2quay suspend`): who, when, why, and the generation it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// The manifest's generation when suspended: another generation ends the suspension.
    pub generation: String,
    /// When it was suspended.
    #[serde(with = "super::clock::rfc3339")]
    pub at: SystemTime,
    /// Who suspended it (the user name, or `uid N`).
    pub by: String,
    /// Why, as given with `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Suspension {
    /// One line for status messages: who, when and why.
    pub fn describe(&self) -> String {
        let at = humantime::format_rfc3339_seconds(self.at);
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        format!("suspended by {} at {at}{why}", self.by)
    }
}

/// The host refused an apply of `generation`: retried with backoff, never marked failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostBlock {
    /// The generation refused.
    pub generation: String,
    /// The rendered model's hash of that apply (a Compose change is another release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    /// What refused it.
    pub cause: crate::docker::HostCause,
    /// Consecutive refusals (for backoff).
    pub attempts: u32,
    /// When the apply is tried again.
    #[serde(with = "super::clock::rfc3339")]
    pub next_attempt_at: SystemTime,
}

impl EnvironmentStatus {
    /// The status of an environment that was never reconciled: `Pending`, nothing applied.
    pub fn new(name: &str) -> Self {
        EnvironmentStatus {
            name: name.to_string(),
            phase: Phase::Pending,
            message: "not reconciled yet".to_string(),
            observed_generation: None,
            applied_generation: None,
            observed_revision: None,
            applied_revision: None,
            failed_generation: None,
            failed_model: None,
            conditions: Vec::new(),
            releases: BTreeMap::new(),
            configs: BTreeMap::new(),
            last_reconcile_at: None,
            last_result: None,
            last_action: None,
            pending_records: 0,
            gate_checks: 0,
            next_gate_check_at: None,
            gate_blocked_generation: None,
            heals: Vec::new(),
            history: VecDeque::new(),
            host_block: None,
            suspended: None,
        }
    }

    /// Sets a condition. `last_transition_time` becomes `now` only when the status changes (or
    /// the condition is new); reason and message always take the new values.
    pub fn set_condition(
        &mut self,
        type_: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        now: SystemTime,
    ) {
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.status = status;
                    c.last_transition_time = now;
                }
                c.reason = reason.to_string();
                c.message = message.to_string();
            }
            None => self.conditions.push(Condition {
                type_,
                status,
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time: now,
            }),
        }
    }

    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Appends a reconcile to the history, dropping the oldest beyond [`HISTORY_LIMIT`].
    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LIMIT {
            self.history.pop_front();
        }
    }
}

impl StateDir {
    /// Writes the status of `env` atomically (0600). A failure leaves the previous file intact.
    pub fn write_status(&self, env: &str, status: &EnvironmentStatus) -> Result<()> {
        self.ensure_env(env)?;
        write_versioned(&self.status_file(env), status)
    }

    /// The status of `env`; `None` when never written. An older schema is migrated; a corrupt
    /// file is [`Error::Corrupt`] naming it (and the field), one from a newer c2quay is
    /// [`Error::NewerSchema`]; either is left in place.
    pub fn read_status(&self, env: &str) -> Result<Option<EnvironmentStatus>> {
        self.validate_env_name(env)?;
        read_versioned_opt(&self.status_file(env))
    }

    /// The status to start from after `env`'s unreadable status file was moved aside: a new
    /// one, except that a generation the audit log records as failed (and not deployed since)
    /// stays failed, so the known-bad release is not deployed again
    /// ([`StateDir::failed_generation_in_audit`]).
    pub fn rebuilt_status(&self, env: &str) -> EnvironmentStatus {
        let mut status = EnvironmentStatus::new(env);
        if let Some(failed) = self.failed_generation_in_audit(env) {
            tracing::warn!(
                environment = env,
                generation = %failed,
                "the audit log records generation {failed} as failed: it stays failed in the rebuilt status (`c2quay retry {env}` tries it again)"
            );
            status.failed_generation = Some(failed);
        }
        status
    }

    /// Every environment's status, by name, plus the ones that could not be read.
    /// Environments with a directory but no status file are skipped.
    pub fn list_statuses(&self) -> (Vec<EnvironmentStatus>, Vec<Error>) {
        let names = match self.list_environments() {
            Ok(n) => n,
            Err(e) => return (Vec::new(), vec![e]),
        };
        let mut statuses = Vec::new();
        let mut errors = Vec::new();
        for name in names {
            match self.read_status(&name) {
                Ok(Some(s)) => statuses.push(s),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (statuses, errors)
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
