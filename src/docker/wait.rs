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
    Container, ContainerEvent, Engine, Error, EventStream, Health, Project, RenderedModel, Result,
    ServiceFailure,
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

/// Told what readiness still waits for: (service, state) in service order, and how long it
/// has waited. Called when that changes, and at most every [`PROGRESS_EVERY`] otherwise.
pub type Progress<'a> = &'a (dyn Fn(&[(String, String)], Duration) + Send + Sync);

/// A [`Progress`] that listens to nothing.
pub fn no_progress(_waiting: &[(String, String)], _waited: Duration) {}

/// How often an unchanged wait is reported to [`Progress`].
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Waits until every service in `services` is ready, failed, or `timeout` passes, and returns
/// the project's containers as last observed. On failure the error is [`Error::NotReady`]
/// naming each service, its state and its last log lines.
///
/// When a service has no healthcheck (and is not a job), "running" alone proves little: the
/// verdict must then hold for `min_ready` after it is first reached (Kubernetes'
/// `minReadySeconds`), and any service's container that dies, is re-created or stops being
/// ready inside that window fails readiness. With healthchecks everywhere, or a zero
/// `min_ready`, the first ready verdict is the answer.
pub async fn wait_ready<E: Engine + ?Sized>(
    engine: &E,
    project: &Project,
    model: &RenderedModel,
    services: &[String],
    timeout: Duration,
    min_ready: Duration,
    (settings, progress): (&WaitSettings, Progress<'_>),
) -> Result<Vec<Container>> {
    check_services(project, services, model)?;
    let start = Instant::now();
    let mut reported: Option<(Vec<(String, String)>, Instant)> = None;
    let deadline = start + timeout;
    let window = min_ready;
    // Subscribe first: a change between the observation and the subscription is not missed.
    let mut events = match engine.events(Some(&project.name)).await {
        Ok(stream) => Some(stream),
        Err(error) => {
            debug!(project = %project.name, %error, "no container events; polling instead");
            None
        }
    };
    // Set when every service was first ready: since when, and which containers ran then.
    let mut stable: Option<(Instant, Vec<String>)> = None;
    loop {
        let containers = engine.ps(project).await?;
        let verdict = evaluate(services, &containers, model);
        let list = match (verdict, &stable) {
            (ReadinessVerdict::Ready, None)
                if window.is_zero() || !needs_window(services, model, &containers) =>
            {
                return Ok(containers);
            }
            (ReadinessVerdict::Ready, None) => {
                stable = Some((Instant::now(), running_ids(services, &containers)));
                Vec::new()
            }
            (ReadinessVerdict::Ready, Some((since, ids))) => {
                if running_ids(services, &containers) != *ids {
                    let list = unstable(services, "re-created", window);
                    return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
                }
                if since.elapsed() >= window {
                    return Ok(containers);
                }
                Vec::new()
            }
            (ReadinessVerdict::Failed(list), _) => {
                return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
            }
            (ReadinessVerdict::Waiting(list), Some(_)) => {
                // It was ready and is not any more: not stable.
                let list = list
                    .into_iter()
                    .map(|(s, state)| {
                        (
                            s,
                            format!("{state}, within policy.minReady ({window:?}) of being ready"),
                        )
                    })
                    .collect();
                return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
            }
            (ReadinessVerdict::Waiting(list), None) => {
                let due = match &reported {
                    Some((last, at)) => *last != list || at.elapsed() >= PROGRESS_EVERY,
                    None => true,
                };
                if due {
                    progress(&list, start.elapsed());
                    reported = Some((list.clone(), Instant::now()));
                }
                list
            }
        };
        let now = Instant::now();
        let pause = match &stable {
            Some((since, _)) => window.saturating_sub(since.elapsed()),
            None if now >= deadline => {
                return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
            }
            None => deadline - now,
        };
        let seen = next_change(&mut events, settings.safety_poll.min(pause)).await;
        if stable.is_some()
            && let Some(died) = seen
                .iter()
                .find(|e| e.action == "die" && services.contains(&e.service))
        {
            let list = vec![(
                died.service.clone(),
                format!("died within policy.minReady ({window:?}) of being ready"),
            )];
            return Err(not_ready(engine, project, list, start.elapsed(), settings).await);
        }
    }
}

/// Whether some service of `services` is neither a job nor health-checked (by its Compose
/// file, or by its image: its containers report a health status): only those need the
/// stability window.
fn needs_window(services: &[String], model: &RenderedModel, containers: &[Container]) -> bool {
    services.iter().any(|service| {
        let Some(m) = model.get(service) else {
            return false;
        };
        let image_checked = containers
            .iter()
            .filter(|c| c.service == *service && c.state.is_running())
            .all(|c| c.health != Health::None);
        !m.job && !m.has_healthcheck && !image_checked
    })
}

/// The ids of the running containers of `services`, sorted.
fn running_ids(services: &[String], containers: &[Container]) -> Vec<String> {
    let mut ids: Vec<String> = containers
        .iter()
        .filter(|c| c.state.is_running() && services.contains(&c.service))
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    ids
}

fn unstable(services: &[String], what: &str, window: Duration) -> Vec<(String, String)> {
    services
        .iter()
        .map(|s| {
            (
                s.clone(),
                format!("{what} within policy.minReady ({window:?}) of being ready"),
            )
        })
        .collect()
}

/// Returns the events that arrived (draining the others already there) or nothing when
/// `pause` passes first. A failed or ended stream is dropped: the loop goes on with the
/// safety poll alone.
async fn next_change(events: &mut Option<EventStream>, pause: Duration) -> Vec<ContainerEvent> {
    let Some(stream) = events.as_mut() else {
        tokio::time::sleep(pause).await;
        return Vec::new();
    };
    match tokio::time::timeout(pause, stream.next()).await {
        Err(_) => Vec::new(),
        Ok(Some(Ok(first))) => {
            // A recreate sends a burst (kill, die, destroy, create, start): one observation.
            let mut seen = vec![first];
            while let Some(Some(Ok(event))) = stream.next().now_or_never() {
                seen.push(event);
            }
            seen
        }
        Ok(Some(Err(error))) => {
            debug!(%error, "container events failed; polling instead");
            *events = None;
            Vec::new()
        }
        Ok(None) => {
            debug!("container events ended; polling instead");
            *events = None;
            Vec::new()
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
