//! Record: record-deployment (or record-undeployment, for a service removed from the
//! environment) in the broker for each pending record, oldest first; a failure stays in the
//! outbox and holds back every younger record, whatever its kind. Also the outbox drain.

use std::time::Duration;

use tracing::{info, warn};

use super::super::outcome::{RecordItem, RecordStatus};
use super::super::run::Run;
use super::super::{Brokers, Context, Error, Result};
use crate::broker::{Broker, Candidate, UndeployOutcome};
use crate::error_chain;
use crate::events::PipelineEvent;
use crate::manifest::Environment;
use crate::state::{PendingRecord, RecordKind};

impl<C, B: Brokers, S> Run<'_, C, B, S> {
    /// Sends the whole outbox of the run's environment, oldest first, now (whatever the retry
    /// times); [`Run::record`] of it. Empty when nothing is pending.
    pub(in crate::pipeline) async fn record_outbox(&mut self) -> Result<Vec<RecordItem>> {
        let name = self.env.name();
        let (queued, _) = self
            .ctx
            .state
            .outbox_list(name)
            .map_err(|source| Error::State {
                environment: name.to_string(),
                source,
            })?;
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.record(&queued).await)
    }

    /// Records every one of `records`; failures stay in the outbox. Items in input order.
    pub(in crate::pipeline) async fn record(
        &mut self,
        records: &[PendingRecord],
    ) -> Vec<RecordItem> {
        let (ctx, env) = (self.ctx, self.env);
        let mut items = Vec::new();
        let Some(spec) = &env.manifest.spec.broker else {
            return items;
        };
        let client = match ctx.brokers.client(spec) {
            Ok(client) => client,
            Err(error) => {
                let message = error_chain(&error);
                return records
                    .iter()
                    .map(|r| RecordItem {
                        candidate: candidate_of(r),
                        kind: r.kind,
                        status: RecordStatus::Failed,
                        error: Some(message.clone()),
                    })
                    .collect();
            }
        };
        // Set by the first failure: later records wait for it (they must not overtake it).
        let mut pending_head: Option<PendingRecord> = None;
        for record in records {
            let candidate = candidate_of(record);
            if let Some(head) = &pending_head {
                let message = format!(
                    "not sent: waits for the older {} record of {} {}",
                    head.kind.as_str(),
                    head.pacticipant,
                    head.version
                );
                let mut waiting = record.clone();
                waiting.last_error = Some(message.clone());
                waiting.next_attempt_at = head.next_attempt_at;
                if let Err(error) = ctx.state.outbox_update(env.name(), &waiting) {
                    warn!(environment = env.name(), error = %error_chain(&error), "cannot update the outbox entry");
                }
                items.push(RecordItem {
                    candidate,
                    kind: record.kind,
                    status: RecordStatus::Failed,
                    error: Some(message),
                });
                continue;
            }
            let instance = record.application_instance.as_deref();
            let result = match record.kind {
                RecordKind::Deployment => {
                    client
                        .record_deployment(&record.broker_environment, &candidate, instance)
                        .await
                }
                RecordKind::Undeployment => client
                    .record_undeployment(&record.broker_environment, &record.pacticipant, instance)
                    .await
                    .map(|outcome| log_undeployment(env.name(), record, &outcome)),
            };
            let item = match result {
                Ok(()) => {
                    if let Err(error) = ctx.state.outbox_remove(env.name(), &record.id) {
                        warn!(environment = env.name(), error = %error_chain(&error), "recorded, but the outbox entry could not be removed");
                    }
                    RecordItem {
                        candidate,
                        kind: record.kind,
                        status: RecordStatus::Recorded,
                        error: None,
                    }
                }
                Err(error) => {
                    let message = error_chain(&error);
                    let mut failed = record.clone();
                    let delay = record_retry_delay(failed.attempts + 1);
                    failed.record_failure(&message, ctx.clock.now(), delay);
                    if let Err(error) = ctx.state.outbox_update(env.name(), &failed) {
                        warn!(environment = env.name(), error = %error_chain(&error), "cannot update the outbox entry");
                    }
                    pending_head = Some(failed);
                    RecordItem {
                        candidate,
                        kind: record.kind,
                        status: RecordStatus::Failed,
                        error: Some(message),
                    }
                }
            };
            self.emit(PipelineEvent::RecordAttempted {
                kind: item.kind,
                pacticipant: item.candidate.pacticipant.clone(),
                version: item.candidate.version.clone(),
                recorded: item.status == RecordStatus::Recorded,
            });
            items.push(item);
        }
        items
    }
}

/// The outbox entry for `candidate` of a deploy of `env` now.
pub(in crate::pipeline) fn pending_record<C, B, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
    candidate: &Candidate,
) -> PendingRecord {
    pending_record_of(RecordKind::Deployment, ctx, env, candidate)
}

/// The outbox entry of `kind` for `candidate` of a deploy of `env` now: for an undeployment,
/// `candidate` is the service removed from `env` and the version it last ran.
pub(in crate::pipeline) fn pending_record_of<C, B, S>(
    kind: RecordKind,
    ctx: &Context<C, B, S>,
    env: &Environment,
    candidate: &Candidate,
) -> PendingRecord {
    let broker = env.manifest.spec.broker.as_ref();
    let new = match kind {
        RecordKind::Deployment => PendingRecord::new,
        RecordKind::Undeployment => PendingRecord::undeployment,
    };
    new(
        env.name(),
        &env.generation,
        broker.map(|b| b.environment.as_str()).unwrap_or_default(),
        &candidate.pacticipant,
        &candidate.version,
        broker.and_then(|b| b.application_instance.as_deref()),
        ctx.clock.now(),
    )
}

/// The undeployments to record for `services` of `env`: those applied with a version, under
/// the pacticipant they were recorded as.
pub(in crate::pipeline) fn undeployments(
    env: &Environment,
    applied: &crate::plan::AppliedState,
    services: &[String],
) -> Vec<Candidate> {
    services
        .iter()
        .filter_map(|service| {
            let release = applied.releases.get(service)?;
            Some(Candidate {
                pacticipant: (release.pacticipant.clone())
                    .unwrap_or_else(|| env.pacticipant(service)),
                version: release.version.clone()?,
            })
        })
        .collect()
}

/// Logs what an accepted undeployment found: nothing currently deployed is success (a retry
/// after a lost answer, or a version never recorded), but worth a line.
fn log_undeployment(environment: &str, record: &PendingRecord, outcome: &UndeployOutcome) {
    match outcome {
        UndeployOutcome::Undeployed { versions } => info!(
            environment,
            pacticipant = %record.pacticipant,
            versions = %versions.join(", "),
            "undeployment recorded in the broker"
        ),
        UndeployOutcome::NothingDeployed => info!(
            environment,
            pacticipant = %record.pacticipant,
            "undeployment: the broker had nothing of it currently deployed"
        ),
    }
}

fn candidate_of(record: &PendingRecord) -> Candidate {
    Candidate {
        pacticipant: record.pacticipant.clone(),
        version: record.version.clone(),
    }
}

/// Tries the pending records of the environment, oldest first, once the oldest one's retry
/// time has come; stops at the first failure.
pub async fn drain_outbox<C, B: Brokers, S>(
    ctx: &Context<C, B, S>,
    env: &Environment,
) -> Result<Vec<RecordItem>> {
    let name = env.name();
    let (pending, problems) = ctx.state.outbox_list(name).map_err(|source| Error::State {
        environment: name.to_string(),
        source,
    })?;
    for problem in problems {
        warn!(environment = name, error = %error_chain(&problem), "unreadable outbox entry kept for inspection");
    }
    // Oldest first, and only once the oldest is due: a younger record never overtakes an older
    // one (`record` stops sending at the first failure).
    match pending.first() {
        Some(oldest) if oldest.is_due(ctx.clock.now()) => {
            Ok(Run::new(ctx, env).record(&pending).await)
        }
        _ => Ok(Vec::new()),
    }
}

/// Delay before the next record attempt: 2s, 4s, 8s ... capped at 5 minutes.
pub fn record_retry_delay(attempts: u32) -> Duration {
    let seconds = 2u64.saturating_pow(attempts.min(16)).min(300);
    Duration::from_secs(seconds)
}
