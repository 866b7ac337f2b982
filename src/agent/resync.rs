//! The resync's cheap pass: which environments need a reconcile, from one observation of every
//! container, the status files and the cached rendered models (no process per environment).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::models::Models;
use super::{DesiredEnv, DesiredSet};
use crate::docker::Container;
use crate::pipeline::{self, Context};
use crate::plan::{self, Action, AppliedState, Desired};
use crate::state::{EnvironmentStatus, Phase, StateDir};

/// The status files as last parsed, by environment, keyed by the file's size, mtime and inode
/// (every write is a rename, so a new status is a new inode): a no-op resync stats each status
/// file instead of parsing it again, and reuses the planner's view of it. It also remembers
/// which environments' last reconcile could not read or write their status: the next resync
/// reconciles those again, so a state file that is readable again is noticed at once.
#[derive(Debug, Default)]
pub struct StatusCache {
    entries: Mutex<HashMap<String, (FileStamp, Arc<CachedStatus>)>>,
    failing: Mutex<std::collections::BTreeSet<String>>,
}

/// One parsed status file and the applied state the planner reads from it.
#[derive(Debug)]
pub struct CachedStatus {
    /// The status as written.
    pub status: EnvironmentStatus,
    /// [`pipeline::applied_state_of`] of it.
    pub applied: AppliedState,
}

/// Size, mtime and inode of a status file.
type FileStamp = (u64, SystemTime, u64);

impl StatusCache {
    /// Notes whether the last reconcile of `name` could read and write its status.
    pub fn set_failing(&self, name: &str, failing: bool) {
        let mut set = self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failing {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }

    /// Whether the last reconcile of `name` could not read or write its status.
    pub fn is_failing(&self, name: &str) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name)
    }

    /// The status of `name` (`None`: none, or unreadable; the reconcile reports those).
    pub fn get(&self, state: &StateDir, name: &str) -> Option<Arc<CachedStatus>> {
        let meta = std::fs::metadata(state.status_file(name)).ok()?;
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.ino(),
        );
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cached, status)) = entries.get(name)
            && *cached == stamp
        {
            return Some(status.clone());
        }
        let status = state.read_status(name).ok().flatten()?;
        let cached = Arc::new(CachedStatus {
            applied: pipeline::applied_state_of(&status),
            status,
        });
        entries.insert(name.to_string(), (stamp, cached.clone()));
        Some(cached)
    }
}

/// Environments whose plan is not `Noop` given one observation of all containers, plus those
/// with an unseen generation, pending records or an open intent. Used by the resync: no
/// process per environment.
pub fn needing_reconcile<C, B, S>(
    ctx: &Context<C, B, S>,
    desired: &DesiredSet,
    models: &Models,
    statuses: &StatusCache,
    mut containers: Vec<Container>,
) -> Vec<String> {
    let now = ctx.clock.now();
    let mut names = Vec::new();
    // Grouped by project without a copy: sorted, then one slice per project.
    containers.sort_by(|a, b| a.project.cmp(&b.project));
    let mut by_project: HashMap<&str, &[Container]> = HashMap::new();
    for group in containers.chunk_by(|a, b| a.project == b.project) {
        by_project.insert(group[0].project.as_str(), group);
    }
    for (name, entry) in &desired.entries {
        if statuses.is_failing(name) {
            names.push(name.clone());
            continue;
        }
        let cached = statuses.get(&ctx.state, name);
        let needs = match entry {
            DesiredEnv::Invalid { .. } => cached
                .as_ref()
                .map(|c| c.status.phase != Phase::Invalid)
                .unwrap_or(true),
            DesiredEnv::Valid(env) => {
                let Some(cached) = cached else {
                    names.push(name.clone());
                    continue;
                };
                let (status, applied) = (&cached.status, &cached.applied);
                // A Compose input file changed since the last render: render and plan again.
                let Some(model) = models.fresh(name, &pipeline::project_of(env)) else {
                    names.push(name.clone());
                    continue;
                };
                let observed: &[Container] =
                    by_project.get(env.project.as_str()).copied().unwrap_or(&[]);
                let plan = plan::plan(Desired::Valid(env), Some(&model), applied, observed, now);
                let phase_matches = match plan.action {
                    Action::Noop => status.phase == Phase::Ready,
                    Action::AwaitChange => {
                        status.phase == Phase::RolledBack || status.phase == Phase::Degraded
                    }
                    Action::ReportDrift { .. } => status.phase == Phase::Drifted,
                    Action::Suspended => status.phase == Phase::Suspended,
                    // A timer is already set for these (the gate backoff, the heal window):
                    // reconciling on every resync would only spawn `docker compose ps`.
                    Action::WaitForGate { .. } => status.phase == Phase::GateBlocked,
                    Action::WaitForHost { .. } => status.phase == Phase::HostBlocked,
                    Action::HealCapReached { .. } => status.phase == Phase::Degraded,
                    // Held by `policy.sync: manual`; the gate's backoff has its own timer.
                    Action::OutOfSync { .. } => status.phase == Phase::OutOfSync,
                    _ => false,
                };
                // A change the agent has not seen (made while it was down, or a missed file
                // event): reconciling records it as observed, even when the plan is `Noop`.
                let unseen = status.observed_generation.as_deref() != Some(env.generation.as_str());
                !phase_matches
                    || unseen
                    || status.pending_records > 0
                    || matches!(ctx.state.read_intent(name), Ok(Some(_)))
            }
        };
        if needs {
            names.push(name.clone());
        }
    }
    names
}

/// With Docker unreachable: the valid environments whose status does not say `Unknown` yet,
/// so that one reconcile each marks them (none is left claiming `Ready` while nothing can be
/// observed); those already `Unknown` wait for Docker to answer again.
pub fn not_yet_unknown<C, B, S>(
    ctx: &Context<C, B, S>,
    desired: &DesiredSet,
    statuses: &StatusCache,
) -> Vec<String> {
    desired
        .entries
        .iter()
        .filter(|(_, entry)| matches!(entry, DesiredEnv::Valid(_)))
        .filter(|(name, _)| {
            statuses
                .get(&ctx.state, name)
                .is_none_or(|cached| cached.status.phase != Phase::Unknown)
        })
        .map(|(name, _)| name.clone())
        .collect()
}
