//! [`DockerEngine`]: the real [`Engine`] on the Docker Engine API over the socket (bollard).
//!
//! Observing a project costs one `GET /containers/json` (label filter), plus one
//! `GET /containers/{id}/json` per container the list answer does not describe fully (see
//! [`needs_inspect`]), run concurrently. The API version is negotiated down to the engine's
//! (20.10 speaks 1.41) on first use, and again after a failure, so the daemon may start after
//! c2quay. No process is spawned here.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{
    EventsOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt, future};
use tokio::sync::Mutex;

use super::argv::{CONFIG_HASH_LABEL, ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL};
use super::events::event_from_message;
use super::parse::is_leftover_name;
use super::wait::{self, WaitSettings};
use super::{
    Container, ContainerState, Engine, Error, EventStream, Health, Project, RenderedModel, Result,
    run,
};

/// Settings of the Engine API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Limit of one request (not of the events stream, which stays open).
    pub request_timeout: Duration,
    /// The readiness loop's settings (safety poll, log lines of failed services).
    pub wait: WaitSettings,
}

impl Default for EngineConfig {
    /// 60 s requests, [`WaitSettings::default`].
    fn default() -> EngineConfig {
        EngineConfig {
            request_timeout: Duration::from_secs(60),
            wait: WaitSettings::default(),
        }
    }
}

/// The Docker Engine API client. Clones share the connection pool and the negotiated version.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    /// The client after version negotiation; `None` until the daemon answered once.
    negotiated: std::sync::Arc<Mutex<Option<Docker>>>,
    config: EngineConfig,
}

impl DockerEngine {
    /// A client for `DOCKER_HOST` (unix socket, or tcp/http), else `/var/run/docker.sock`.
    /// Does no IO: the daemon may be down now and come up later.
    ///
    /// The client itself is made on first use, so a daemon whose socket does not exist yet
    /// (Docker stopped, or starting after the agent) is an error of that call, reported as
    /// `c2quay_docker_up 0`, not a failure to start.
    pub fn connect(config: EngineConfig) -> Result<DockerEngine> {
        Ok(DockerEngine {
            negotiated: Default::default(),
            config,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &EngineConfig {
        &self.config
    }

    /// The client with a negotiated API version (negotiates on first use).
    pub(super) async fn client(&self) -> Result<Docker> {
        let mut slot = self.negotiated.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = Docker::connect_with_defaults()
            .map_err(|e| Error::engine("connect to the Docker daemon", e))?
            .with_timeout(self.config.request_timeout)
            .negotiate_version()
            .await
            .map_err(|e| Error::engine("negotiate the API version (GET /version)", e))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the negotiated client after a connection failure (the daemon may have been
    /// replaced by another version).
    async fn forget_on_failure(&self, error: &Error) {
        if error.is_transient() {
            *self.negotiated.lock().await = None;
        }
    }

    /// Compose containers (one-off `run` containers excluded) of `project`, or of every
    /// project, fully described.
    async fn containers(&self, project: Option<&str>) -> Result<Vec<Container>> {
        let result = self.containers_once(project).await;
        if let Err(e) = &result {
            self.forget_on_failure(e).await;
        }
        result
    }

    async fn containers_once(&self, project: Option<&str>) -> Result<Vec<Container>> {
        let docker = self.client().await?;
        let listed = docker
            .list_containers(Some(list_options(project)))
            .await
            .map_err(|e| Error::engine(list_what(project), e))?;
        let fetches = listed.iter().map(container_from_summary).map(|c| {
            let docker = docker.clone();
            async move {
                if !needs_inspect(&c) {
                    return Ok(Some(c));
                }
                match docker
                    .inspect_container(&c.id, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(inspected) => Ok(Some(merge_inspect(c, &inspected))),
                    Err(e) => {
                        let e = Error::engine(format!("inspect container {}", c.name), e);
                        // Removed between the list and the inspect: gone, not an error.
                        if e.is_no_such_container() {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    }
                }
            }
        });
        let found = future::try_join_all(fetches).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The readiness loop with this engine's settings.
    pub async fn wait_ready_with(
        &self,
        project: &Project,
        model: &RenderedModel,
        services: &[String],
        timeout: Duration,
        min_ready: Duration,
        progress: wait::Progress<'_>,
    ) -> Result<Vec<Container>> {
        let settings = &self.config.wait;
        wait::wait_ready(
            self,
            project,
            model,
            services,
            timeout,
            min_ready,
            (settings, progress),
        )
        .await
    }
}

impl Engine for DockerEngine {
    async fn ps(&self, project: &Project) -> Result<Vec<Container>> {
        self.containers(Some(&project.name)).await
    }

    async fn ps_all(&self) -> Result<Vec<Container>> {
        self.containers(None).await
    }

    async fn logs_tail(&self, project: &Project, service: &str, lines: usize) -> Result<String> {
        let docker = self.client().await?;
        let mut mine: Vec<Container> = self
            .containers(Some(&project.name))
            .await?
            .into_iter()
            .filter(|c| c.service == service && !is_leftover_name(&c.name))
            .collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = String::new();
        for c in &mine {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            };
            let chunks: Vec<_> = docker
                .logs(&c.id, Some(options))
                .try_collect()
                .await
                .map_err(|e| Error::engine(format!("logs of container {}", c.name), e))?;
            let text: String = chunks.iter().map(ToString::to_string).collect();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if mine.len() > 1 {
                    out.push_str(&c.name);
                    out.push_str(" | ");
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        Ok(run::tail(&out, lines))
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        let docker = self.client().await?;
        match docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(Error::engine(format!("inspect image {reference}"), e)),
        }
    }

    async fn leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        let all = self.containers(Some(&project.name)).await?;
        Ok(all
            .into_iter()
            .filter(|c| is_leftover_name(&c.name))
            .collect())
    }

    async fn remove_leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        let found = self.leftovers(project).await?;
        if found.is_empty() {
            return Ok(found);
        }
        let docker = self.client().await?;
        let removals = found.iter().map(|c| {
            let docker = docker.clone();
            async move {
                let options = RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                match docker.remove_container(&c.id, Some(options)).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let e = Error::engine(format!("remove container {}", c.name), e);
                        if e.is_no_such_container() {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }
                }
            }
        });
        future::try_join_all(removals).await?;
        Ok(found)
    }

    async fn events(&self, project: Option<&str>) -> Result<EventStream> {
        let docker = self.client().await?;
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let options = EventsOptions {
            // From now, even before the request reaches the daemon: an event that happens
            // between this call and the stream's first poll is replayed, not lost.
            since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
            until: None,
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("label".to_string(), vec![label_filter(project)]),
            ])),
        };
        let what = match project {
            Some(p) => format!("events of project {p:?}"),
            None => "events of Compose containers".to_string(),
        };
        let stream = docker.events(Some(options)).filter_map(move |item| {
            future::ready(match item {
                Ok(message) => event_from_message(&message).map(Ok),
                Err(e) => Some(Err(Error::engine(what.clone(), e))),
            })
        });
        Ok(Box::pin(stream))
    }

    async fn wait_ready(
        &self,
        project: &Project,
        model: &RenderedModel,
        services: &[String],
        timeout: Duration,
        min_ready: Duration,
        progress: wait::Progress<'_>,
    ) -> Result<Vec<Container>> {
        self.wait_ready_with(project, model, services, timeout, min_ready, progress)
            .await
    }
}

/// `label=com.docker.compose.project[=<name>]`.
fn label_filter(project: Option<&str>) -> String {
    match project {
        Some(name) => format!("{PROJECT_LABEL}={name}"),
        None => PROJECT_LABEL.to_string(),
    }
}

fn list_what(project: Option<&str>) -> String {
    match project {
        Some(p) => format!("list containers of project {p:?} (GET /containers/json)"),
        None => "list Compose containers (GET /containers/json)".to_string(),
    }
}

/// The list request: every state, the project's label, no one-off (`compose run`) containers.
pub fn list_options(project: Option<&str>) -> ListContainersOptions {
    ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![label_filter(project), format!("{ONEOFF_LABEL}=False")],
        )])),
        ..Default::default()
    }
}

/// A [`Container`] from one entry of the list answer (pure). Health and exit code come from
/// the `Status` text (`Up 3 seconds (healthy)`, `Exited (1) 2 seconds ago`), which API 1.41
/// gives in place of a health field; the restart policy and OOM flag are left empty (only
/// inspect has them, see [`needs_inspect`]).
pub fn container_from_summary(summary: &ContainerSummary) -> Container {
    let empty = HashMap::new();
    let labels = summary.labels.as_ref().unwrap_or(&empty);
    let status = summary.status.as_deref().unwrap_or_default();
    let state = (summary.state)
        .map(|s| ContainerState::from(s.to_string().as_str()))
        .unwrap_or_default();
    Container {
        id: summary.id.clone().unwrap_or_default(),
        name: summary
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        project: labels.get(PROJECT_LABEL).cloned().unwrap_or_default(),
        service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
        image: summary.image.clone().unwrap_or_default(),
        image_id: summary.image_id.clone().unwrap_or_default(),
        health: health_of_status(status),
        exit_code: exit_code_of_status(status).unwrap_or(0),
        state,
        restart_policy: String::new(),
        oom_killed: false,
        config_hash: labels.get(CONFIG_HASH_LABEL).cloned().unwrap_or_default(),
    }
}

/// Whether the list answer leaves out something a decision needs: a container that is not
/// running (its restart policy, OOM flag and exact exit code decide drift), or one whose image
/// shows as an id (the tag it was created from moved, and the list then names the id).
pub fn needs_inspect(c: &Container) -> bool {
    !c.state.is_running() || c.image.is_empty() || c.image.starts_with("sha256:")
}

/// The health in a `Status` text (`Up 3 seconds (healthy)`).
pub fn health_of_status(status: &str) -> Health {
    if status.ends_with("(healthy)") {
        Health::Healthy
    } else if status.ends_with("(unhealthy)") {
        Health::Unhealthy
    } else if status.ends_with("(health: starting)") {
        Health::Starting
    } else {
        Health::None
    }
}

/// The exit code in an `Exited (N) ...` / `Restarting (N) ...` status text.
pub fn exit_code_of_status(status: &str) -> Option<i64> {
    let rest = status
        .strip_prefix("Exited (")
        .or_else(|| status.strip_prefix("Restarting ("))?;
    rest.split_once(')')?.0.parse().ok()
}

/// Fills `c` with what inspect knows (pure): the image reference it was created from, state,
/// exit code, health, restart policy, OOM flag, labels.
pub fn merge_inspect(mut c: Container, inspected: &ContainerInspectResponse) -> Container {
    if let Some(id) = &inspected.id {
        c.id = id.clone();
    }
    if let Some(image_id) = inspected.image.as_ref().filter(|i| !i.is_empty()) {
        c.image_id = image_id.clone();
    }
    if let Some(name) = inspected.name.as_ref().filter(|n| !n.is_empty()) {
        c.name = name.trim_start_matches('/').to_string();
    }
    if let Some(config) = &inspected.config {
        if let Some(image) = config.image.as_ref().filter(|i| !i.is_empty()) {
            c.image = image.clone();
        }
        if let Some(labels) = &config.labels {
            if let Some(p) = labels.get(PROJECT_LABEL) {
                c.project = p.clone();
            }
            if let Some(s) = labels.get(SERVICE_LABEL) {
                c.service = s.clone();
            }
        }
    }
    if let Some(state) = &inspected.state {
        if let Some(status) = state.status {
            c.state = ContainerState::from(status.to_string().as_str());
        }
        c.exit_code = state.exit_code.unwrap_or(0);
        c.oom_killed = state.oom_killed.unwrap_or(false);
        c.health = state
            .health
            .as_ref()
            .and_then(|h| h.status)
            .map(|s| Health::from(s.to_string().as_str()))
            .unwrap_or_default();
    }
    if let Some(policy) = inspected
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|p| p.name)
    {
        c.restart_policy = policy.to_string();
    }
    c
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
