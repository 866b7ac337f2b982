//! The readiness loop, generic over [`Engine`]: shared by the real adapter and the fake.
//!
//! It subscribes to the project's container events before it looks, observes once, then
//! observes again only when an event for the project arrives (a health status, a start, a
//! death) or, for events lost on the way, after a slow safety poll. The pure
//! [`evaluate`] decides after each observation; the deadline turns "still waiting" into
//! [`Error::NotReady`].

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tracing::debug;

use super::readiness::{ReadinessVerdict, evaluate};
use super::{
    Container, Engine, Error, EventStream, Project, RenderedModel, Result, ServiceFailure,
};

/// Settings of the readiness loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSettings {
    /// Longest pause between two observations when no event arrives (events can be lost,
    /// e.g. while the daemon restarts).
    pub safety_poll: Duration,
    /// Log lines shown per failed service.
    pub log_lines: usize,
}

impl Default for WaitSettings {
    /// A 1 s safety poll, 20 log lines.
    fn default() -> WaitSettings {
        WaitSettings {
            safety_poll: Duration::from_secs(1),
            log_lines: 20,
        }
    }
}

/// Waits until every service in `services` is ready, failed, or `timeout` passes, and returns
/// the project's containers as last observed. On failure the error is [`Error::NotReady`]
/// naming each service, its state and its last log lines.
pub async fn wait_ready<E: Engine + ?Sized>(
    engine: &E,
    project: &Project,
    model: &RenderedModel,
    services: &[String],
    timeout: Duration,
    settings: &WaitSettings,
) -> Result<Vec<Container>> {
    check_services(project, services, model)?;
    let start = Instant::now();
    let deadline = start + timeout;
    // Subscribe first: a change between the observation and the subscription is not missed.
    let mut events = match engine.events(Some(&project.name)).await {
        Ok(stream) => Some(stream),
        Err(error) => {
            debug!(project = %project.name, %error, "no container events; polling instead");
            None
        }
    };
    loop {
        let containers = engine.ps(project).await?;
        let list = match evaluate(services, &containers, model) {
            ReadinessVerdict::Ready => return Ok(containers),
            ReadinessVerdict::Failed(list) => {
                return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
            }
            ReadinessVerdict::Waiting(list) => list,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
        }
        next_change(&mut events, settings.safety_poll.min(deadline - now)).await;
    }
}

/// Returns when an event arrives (draining the others already there) or `pause` passes.
/// A failed or ended stream is dropped: the loop goes on with the safety poll alone.
async fn next_change(events: &mut Option<EventStream>, pause: Duration) {
    let Some(stream) = events.as_mut() else {
        tokio::time::sleep(pause).await;
        return;
    };
    match tokio::time::timeout(pause, stream.next()).await {
        Err(_) => {}
        Ok(Some(Ok(_))) => {
            // A recreate sends a burst (kill, die, destroy, create, start): one observation.
            while let Some(Some(Ok(_))) = stream.next().now_or_never() {}
        }
        Ok(Some(Err(error))) => {
            debug!(%error, "container events failed; polling instead");
            *events = None;
        }
        Ok(None) => {
            debug!("container events ended; polling instead");
            *events = None;
        }
    }
}

/// Fails with [`Error::MissingService`] when a service is not in the rendered model.
pub fn check_services(project: &Project, services: &[String], model: &RenderedModel) -> Result<()> {
    match services.iter().find(|s| !model.contains_key(*s)) {
        Some(s) => Err(Error::MissingService {
            project: project.name.clone(),
            service: s.clone(),
        }),
        None => Ok(()),
    }
}

/// The [`Error::NotReady`] of `list` ((service, state) pairs), with each service's last logs.
async fn not_ready<E: Engine + ?Sized>(
    engine: &E,
    project: &Project,
    list: Vec<(String, String)>,
    waited: Duration,
    settings: &WaitSettings,
) -> Error {
    let mut failures = Vec::new();
    for (service, state) in list {
        let logs = match engine
            .logs_tail(project, &service, settings.log_lines)
            .await
        {
            Ok(l) => l,
            Err(e) => format!(
                "(logs unavailable: {})",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
        failures.push(ServiceFailure {
            service,
            state,
            logs,
        });
    }
    Error::NotReady {
        project: project.name.clone(),
        waited,
        failures,
    }
}
