//! The prune flow (`policy.prune: onRemove`): the project of a removed manifest is taken down
//! (`down --remove-orphans`, volumes kept) and the undeployment of its gated releases is
//! recorded in the broker through the outbox. The agent knows the environment only from what
//! the last successful deploy saved ([`save_manifest`]): the manifest itself is gone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::super::run::Run;
use super::super::steps::record::{pending_record_of, undeployments};
use super::super::{Brokers, Context, Error, RecordItem, RecordStatus, Result};
use crate::docker::Compose;
use crate::error_chain;
use crate::manifest::{Environment, Manifest, PruneMode};
use crate::smoke::Smoke;
use crate::state::{self, EnvLock, PendingRecord, RecordKind, StateDir};

/// What the state directory keeps of the manifest of the last successful deploy.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SavedManifest {
    source: PathBuf,
    project: String,
    compose_directory: PathBuf,
    compose_files: Vec<PathBuf>,
    generation: String,
    manifest: Manifest,
}

/// Saves `env` as loaded ([`StateDir::applied_manifest_file`]), for a prune after its manifest
/// is removed.
pub(in crate::pipeline) fn save_manifest(
    state: &StateDir,
    env: &Environment,
) -> std::result::Result<(), state::Error> {
    let saved = SavedManifest {
        source: env.source.clone(),
        project: env.project.clone(),
        compose_directory: env.compose_directory.clone(),
        compose_files: env.compose_files.clone(),
        generation: env.generation.clone(),
        manifest: env.manifest.clone(),
    };
    let text = serde_json::to_string_pretty(&saved).map_err(|source| state::Error::Serialize {
        path: state.applied_manifest_file(env.name()),
        source,
    })?;
    state.write_applied_manifest(env.name(), &text)
}

/// The environment `name` as its last successful deploy saved it (its manifest may be gone).
/// `None` when nothing was saved, or when the saved copy is unreadable (warned: the
/// environment is then only `Orphaned`, its containers left running, its records kept).
pub fn saved_environment(state: &StateDir, name: &str) -> Option<Environment> {
    let path = state.applied_manifest_file(name);
    let text = std::fs::read_to_string(&path).ok()?;
    let saved: SavedManifest = match serde_json::from_str(&text) {
        Ok(saved) => saved,
        Err(error) => {
            warn!(path = %path.display(), %error, "unreadable saved manifest: not pruning");
            return None;
        }
    };
    Some(Environment {
        source: saved.source,
        manifest: saved.manifest,
        project: saved.project,
        compose_directory: saved.compose_directory,
        compose_files: saved.compose_files,
        generation: saved.generation,
        warnings: Vec::new(),
    })
}

/// [`saved_environment`] when that manifest asked for `policy.prune: onRemove`.
pub fn prunable_environment(state: &StateDir, name: &str) -> Option<Environment> {
    saved_environment(state, name)
        .filter(|env| env.manifest.spec.policy.prune == PruneMode::OnRemove)
}

/// What became of a removed environment's pending records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrphanRecords {
    /// The records sent (oldest first), when the oldest was due.
    pub sent: Vec<RecordItem>,
    /// Records dropped because another environment now records the same pacticipant there.
    pub superseded: Vec<PendingRecord>,
    /// Records still pending.
    pub pending: usize,
}

/// Sends the pending records of the removed environment `env` (from [`saved_environment`]),
/// whatever happened to its manifest: a record is never lost because the file was renamed or
/// deleted. A record that `superseded` says another environment records now (a renamed
/// manifest deploys and records the same pacticipant again) is dropped with an audit line
/// instead: sent late, it would make the broker call an older version current.
pub async fn send_orphan_records<C, B: Brokers, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    superseded: impl Fn(&PendingRecord) -> bool,
) -> Result<OrphanRecords> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let (pending, _) = ctx.state.outbox_list(&name).map_err(state_err)?;
    let mut out = OrphanRecords::default();
    let mut rest = Vec::new();
    for record in pending {
        if superseded(&record) {
            ctx.state
                .outbox_remove(&name, &record.id)
                .map_err(state_err)?;
            let message = format!(
                "dropped the pending record of {} {} in {}: the manifest was removed and another environment records {} there now",
                record.pacticipant, record.version, record.broker_environment, record.pacticipant
            );
            if let Err(error) = (ctx.state).audit(
                &name,
                Some(&record.generation),
                "record",
                "superseded",
                &message,
            ) {
                warn!(environment = %name, error = %error_chain(&error), "cannot write the audit line");
            }
            out.superseded.push(record);
        } else {
            rest.push(record);
        }
    }
    if rest
        .first()
        .is_some_and(|oldest| oldest.is_due(ctx.clock.now()))
    {
        out.sent = Run::new(ctx, env).record(&rest).await;
    }
    out.pending = ctx.state.outbox_list(&name).map_err(state_err)?.0.len();
    Ok(out)
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// The Compose project taken down.
    pub project: String,
    /// The undeployment records sent (the whole outbox, oldest first).
    pub records: Vec<RecordItem>,
}

impl PruneReport {
    /// True when every record reached the broker: nothing is left to do.
    pub fn complete(&self) -> bool {
        self.records
            .iter()
            .all(|r| r.status == RecordStatus::Recorded)
    }
}

/// Prunes the removed environment `env` (from [`prunable_environment`]) under its lock: queues
/// the undeployment of every applied gated release, takes the project down, sends the outbox.
/// Idempotent: the releases are forgotten once queued, and a project already down stays so.
/// When every record is accepted the saved manifest is removed: the environment is then only
/// `Orphaned` with nothing running.
pub async fn prune<C: Compose, B: Brokers, S: Smoke>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    lock: &EnvLock,
) -> Result<PruneReport> {
    let name = env.name().to_string();
    let state_err = |source| Error::State {
        environment: name.clone(),
        source,
    };
    let applied = super::super::try_applied_state(&ctx.state, &name).map_err(state_err)?;
    for candidate in &undeployments(env, &applied, &env.gated_services()) {
        let record = pending_record_of(RecordKind::Undeployment, ctx, env, candidate);
        ctx.state.outbox_put(&name, &record).map_err(state_err)?;
    }
    crate::status::update(&ctx.state, lock, |status| {
        status.releases.clear();
        status.configs.clear();
    })
    .map_err(state_err)?;
    ctx.compose
        .take_down(&env.project)
        .await
        .map_err(|source| Error::Prune {
            environment: name.clone(),
            project: env.project.clone(),
            source,
        })?;
    let records = Run::new(ctx, env).record_outbox().await?;
    let report = PruneReport {
        project: env.project.clone(),
        records,
    };
    if report.complete()
        && let Err(error) = std::fs::remove_file(ctx.state.applied_manifest_file(&name))
    {
        warn!(environment = %name, error = %error_chain(&error), "cannot remove the saved manifest");
    }
    Ok(report)
}
