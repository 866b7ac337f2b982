//! Record: record-deployment in the broker for each pending record, oldest first; a failure
//! stays in the outbox and holds back every younger record. Also the outbox drain.

use std::time::Duration;

use tracing::warn;

use super::super::outcome::{RecordItem, RecordStatus};
use super::super::run::Run;
use super::super::{Brokers, Context, Error, Result};
use crate::broker::{Broker, Candidate};
use crate::error_chain;
use crate::events::PipelineEvent;
use crate::manifest::Environment;
use crate::state::PendingRecord;

impl<C, B: Brokers, S> Run<'_, C, B, S> {
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
                    "not sent: waits for the older record of {} {}",
                    head.pacticipant, head.version
                );
                let mut waiting = record.clone();
                waiting.last_error = Some(message.clone());
                waiting.next_attempt_at = head.next_attempt_at;
                if let Err(error) = ctx.state.outbox_update(env.name(), &waiting) {
                    warn!(environment = env.name(), error = %error_chain(&error), "cannot update the outbox entry");
                }
                items.push(RecordItem {
                    candidate,
                    status: RecordStatus::Failed,
                    error: Some(message),
                });
                continue;
            }
            let result = client
                .record_deployment(
                    &record.broker_environment,
                    &candidate,
                    record.application_instance.as_deref(),
                )
                .await;
            let item = match result {
                Ok(()) => {
                    if let Err(error) = ctx.state.outbox_remove(env.name(), &record.id) {
                        warn!(environment = env.name(), error = %error_chain(&error), "recorded, but the outbox entry could not be removed");
                    }
                    RecordItem {
                        candidate,
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
                        status: RecordStatus::Failed,
                        error: Some(message),
                    }
                }
            };
            self.emit(PipelineEvent::RecordAttempted {
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
    let broker = env.manifest.spec.broker.as_ref();
    PendingRecord::new(
        env.name(),
        &env.generation,
        broker.map(|b| b.environment.as_str()).unwrap_or_default(),
        &candidate.pacticipant,
        &candidate.version,
        broker.and_then(|b| b.application_instance.as_deref()),
        ctx.clock.now(),
    )
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
