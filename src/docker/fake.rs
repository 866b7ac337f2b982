//! [`FakeCompose`]: test support. A stateful in-memory Compose project that implements
//! [`Engine`] and [`Applier`]: `up` runs the pinned images, every change is sent as a
//! [`ContainerEvent`], `wait_ready` is the real event-driven loop ([`super::wait`]) judging
//! with the real [`evaluate`](super::evaluate), and failures can be injected. Always compiled
//! so integration tests and the pipeline's tests can use it; nothing in the agent constructs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

use futures_util::stream;
use tokio::sync::broadcast;

use super::wait::{self, WaitSettings};
use super::{
    Applier, Container, ContainerEvent, Engine, Error, EventStream, ImagePins, Project,
    RenderedModel, RenderedService, Result, UpOptions,
};
use crate::manifest::PullPolicy;

/// The fake's state, shared by clones.
#[derive(Debug, Default)]
struct State {
    project: String,
    model: RenderedModel,
    containers: BTreeMap<String, Container>,
    leftovers: Vec<Container>,
    unhealthy: BTreeSet<String>,
    crashing: BTreeSet<String>,
    fail_next_up: Option<String>,
    fail_next_pull: Option<String>,
    calls: Vec<String>,
    moved_tags: BTreeMap<String, String>,
    next_id: u64,
    events: EventHub,
}

/// The fake's event bus (what the Engine API's `/events` is to the real adapter).
#[derive(Debug)]
struct EventHub(broadcast::Sender<ContainerEvent>);

impl Default for EventHub {
    fn default() -> EventHub {
        EventHub(broadcast::channel(1024).0)
    }
}

/// A stateful fake Compose project (test support). Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeCompose {
    state: Arc<Mutex<State>>,
}

/// The fake image id of an image reference (an id stays itself).
pub fn fake_image_id(image: &str) -> String {
    if image.starts_with("sha256:") {
        return image.to_string();
    }
    format!("sha256:{}", hex::encode(Sha256::digest(image.as_bytes())))
}

impl FakeCompose {
    /// An empty project named `project`.
    pub fn new(project: &str) -> FakeCompose {
        let fake = FakeCompose::default();
        fake.lock().project = project.to_string();
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's result.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a long-running service (restart `unless-stopped`) to the model, running `image`.
    pub fn with_service(self, service: &str, image: &str) -> FakeCompose {
        self.define(
            service,
            RenderedService {
                image: Some(image.to_string()),
                has_build: false,
                restart: Some("unless-stopped".into()),
                has_healthcheck: false,
                ..Default::default()
            },
        );
        self.set_running(service, image);
        self
    }

    /// Adds or replaces a service in the rendered model (nothing starts).
    pub fn define(&self, service: &str, rendered: RenderedService) {
        self.lock().model.insert(service.to_string(), rendered);
    }

    /// Sets a service's configuration in the model (the `config` JSON of `services.<name>`,
    /// image aside): the next `up` of the service re-creates its container, as Compose does
    /// when the config hash changes. Nothing restarts now.
    pub fn configure(&self, service: &str, config: serde_json::Value) {
        let mut s = self.lock();
        if let Some(m) = s.model.get_mut(service) {
            m.config = super::ServiceConfig::of(&config);
        }
    }

    /// Moves the tag `reference` to another image (a CI rebuild of `:stable`): new containers
    /// from it run `image_id`; those already running keep the image they had.
    pub fn move_tag(&self, reference: &str, image_id: &str) {
        (self.lock().moved_tags).insert(reference.to_string(), image_id.to_string());
    }

    /// Removes a service from the model; its container keeps running (an orphan).
    pub fn remove_service(&self, service: &str) {
        self.lock().model.remove(service);
    }

    /// Re-creates a service's container with another configuration, same image (as if someone
    /// ran `docker compose up` by hand with another environment).
    pub fn hand_edit(&self, service: &str) {
        let mut s = self.lock();
        if let Some(image) = s.containers.get(service).map(|c| c.image.clone()) {
            s.replace(service, &image);
            if let Some(c) = s.containers.get_mut(service) {
                c.config_hash = format!("hand-edited-{}", c.config_hash);
            }
        }
    }

    /// Runs `image` for `service` now (as if someone ran `up` outside c2quay).
    pub fn set_running(&self, service: &str, image: &str) {
        let mut s = self.lock();
        s.replace(service, image);
    }

    /// Sets the state of a service's container (e.g. `exited` with `exit_code`), simulating drift.
    pub fn set_state(&self, service: &str, state: &str, exit_code: i64) {
        let mut s = self.lock();
        if let Some(c) = s.containers.get_mut(service) {
            c.state = state.into();
            c.exit_code = exit_code;
            let c = c.clone();
            s.emit(&c, if state == "running" { "start" } else { "die" }, None);
        }
    }

    /// Sets the health of a service's container (`starting`, `healthy`, `unhealthy`) and sends
    /// its `health_status` event, as the engine does when a healthcheck changes its verdict.
    pub fn set_health(&self, service: &str, health: &str) {
        let mut s = self.lock();
        if let Some(c) = s.containers.get_mut(service) {
            c.health = health.into();
            let c = c.clone();
            s.emit(&c, "health_status", Some(health));
        }
    }

    /// Removes a service's container (it vanished).
    pub fn remove_container(&self, service: &str) {
        let mut s = self.lock();
        if let Some(c) = s.containers.remove(service) {
            s.emit(&c, "destroy", None);
        }
    }

    /// Containers started from `image` from now on report `unhealthy`.
    pub fn make_unhealthy(&self, image: &str) {
        self.lock().unhealthy.insert(image.to_string());
    }

    /// Containers started from `image` from now on exit with code 1.
    pub fn make_crashing(&self, image: &str) {
        self.lock().crashing.insert(image.to_string());
    }

    /// The next `up` fails with `message` and changes nothing.
    pub fn fail_next_up(&self, message: &str) {
        self.lock().fail_next_up = Some(message.to_string());
    }

    /// The next `pull` fails with `message`.
    pub fn fail_next_pull(&self, message: &str) {
        self.lock().fail_next_pull = Some(message.to_string());
    }

    /// Adds a leftover container (`<12 hex>_<project>-<service>-1`) of `service`.
    pub fn add_leftover(&self, service: &str) {
        let mut s = self.lock();
        let image = s
            .model
            .get(service)
            .and_then(|m| m.image.clone())
            .unwrap_or_default();
        let mut c = s.start(service, &image);
        c.state = "exited".into();
        c.name = format!("{}_{}", &c.id[..12], c.name);
        s.leftovers.push(c);
    }

    /// Every call so far, e.g. `up web,worker pins=web=x:2`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The image reference a service runs now.
    pub fn running_image(&self, service: &str) -> Option<String> {
        self.lock().containers.get(service).map(|c| c.image.clone())
    }

    /// The current containers (service order).
    pub fn containers(&self) -> Vec<Container> {
        self.lock().containers.values().cloned().collect()
    }
}

impl State {
    /// Starts a new container of `service` from `image` in place of the old one, sending the
    /// events a recreate sends.
    fn replace(&mut self, service: &str, image: &str) {
        if let Some(old) = self.containers.remove(service) {
            self.emit(&old, "destroy", None);
        }
        let c = self.start(service, image);
        self.emit(&c, "create", None);
        self.emit(&c, "start", None);
        self.containers.insert(service.to_string(), c);
    }

    /// What Compose's `config-hash` label would be for `service` run from `image` with the
    /// current model: it changes with the image and with the service's configuration.
    fn compose_hash(&self, service: &str, image: &str) -> String {
        let config = self
            .model
            .get(service)
            .map(|m| m.config.hash.as_str())
            .unwrap_or_default();
        let mut hex = hex::encode(Sha256::digest(format!("{image}|{config}").as_bytes()));
        hex.truncate(64);
        hex
    }

    fn emit(&self, c: &Container, action: &str, health: Option<&str>) {
        // No subscriber is fine: nobody is waiting.
        let _ = self.events.0.send(ContainerEvent {
            project: c.project.clone(),
            service: c.service.clone(),
            container_id: c.id.clone(),
            action: action.to_string(),
            health: health.map(str::to_string),
        });
    }

    fn start(&mut self, service: &str, image: &str) -> Container {
        self.next_id += 1;
        let id = format!("{:012x}{:052x}", self.next_id, self.next_id);
        let has_healthcheck = self.model.get(service).is_some_and(|m| m.has_healthcheck);
        let crashing = self.crashing.contains(image);
        let health = if self.unhealthy.contains(image) {
            "unhealthy"
        } else if has_healthcheck && !crashing {
            "healthy"
        } else {
            ""
        };
        Container {
            id,
            name: format!("{}-{service}-1", self.project),
            project: self.project.clone(),
            service: service.to_string(),
            image: image.to_string(),
            image_id: self
                .moved_tags
                .get(image)
                .cloned()
                .unwrap_or_else(|| fake_image_id(image)),
            state: if crashing { "exited" } else { "running" }.into(),
            health: health.into(),
            exit_code: if crashing { 1 } else { 0 },
            restart_policy: String::new(),
            oom_killed: false,
            config_hash: self.compose_hash(service, image),
        }
    }

    fn check(&self, services: &[String]) -> Result<()> {
        match services.iter().find(|s| !self.model.contains_key(*s)) {
            Some(s) => Err(Error::MissingService {
                project: self.project.clone(),
                service: s.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn pins_text(pins: &ImagePins) -> String {
    pins.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Applier for FakeCompose {
    async fn config(&self, _project: &Project) -> Result<RenderedModel> {
        let mut s = self.lock();
        s.calls.push("config".into());
        Ok(s.model.clone())
    }

    async fn pull_with_policy(
        &self,
        _project: &Project,
        _model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        policy: PullPolicy,
    ) -> Result<()> {
        let mut s = self.lock();
        s.calls.push(format!(
            "pull {} policy={policy:?} pins={}",
            services.join(","),
            pins_text(pins)
        ));
        s.check(services)?;
        if policy == PullPolicy::Never {
            return Ok(());
        }
        match s.fail_next_pull.take() {
            Some(message) => Err(Error::Failed {
                command: format!("docker compose pull {}", services.join(" ")),
                status: "exit code 18".into(),
                stderr_tail: message,
            }),
            None => Ok(()),
        }
    }

    async fn up(
        &self,
        _project: &Project,
        _model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        options: &UpOptions,
    ) -> Result<()> {
        let mut s = self.lock();
        s.calls.push(format!(
            "up {} pins={}{}",
            services.join(","),
            pins_text(pins),
            if options.force_recreate {
                " force-recreate"
            } else {
                ""
            }
        ));
        if services.is_empty() {
            return Err(Error::Invalid("`up` with no services".into()));
        }
        s.check(services)?;
        if let Some(message) = s.fail_next_up.take() {
            return Err(Error::Failed {
                command: format!("docker compose up -d {}", services.join(" ")),
                status: "exit code 1".into(),
                stderr_tail: message,
            });
        }
        for service in services {
            let image = pins
                .get(service)
                .cloned()
                .or_else(|| s.model.get(service).and_then(|m| m.image.clone()))
                .unwrap_or_default();
            let wanted_hash = s.compose_hash(service, &image);
            let unchanged = s.containers.get(service).is_some_and(|c| {
                c.image == image && c.state.is_running() && c.config_hash == wanted_hash
            });
            if !unchanged || options.force_recreate {
                s.replace(service, &image);
            }
        }
        if options.remove_orphans {
            let orphans: Vec<String> = s
                .containers
                .keys()
                .filter(|service| !s.model.contains_key(*service))
                .cloned()
                .collect();
            for service in orphans {
                if let Some(old) = s.containers.remove(&service) {
                    s.emit(&old, "destroy", None);
                }
            }
        }
        Ok(())
    }

    async fn take_down(&self, project_name: &str) -> Result<()> {
        let mut s = self.lock();
        s.calls.push(format!("down {project_name}"));
        let services: Vec<String> = s.containers.keys().cloned().collect();
        for service in services {
            if let Some(old) = s.containers.remove(&service) {
                s.emit(&old, "destroy", None);
            }
        }
        Ok(())
    }
}

impl Engine for FakeCompose {
    async fn ps(&self, _project: &Project) -> Result<Vec<Container>> {
        let mut s = self.lock();
        s.calls.push("ps".into());
        Ok(s.containers.values().chain(&s.leftovers).cloned().collect())
    }

    async fn ps_all(&self) -> Result<Vec<Container>> {
        let mut s = self.lock();
        s.calls.push("ps_all".into());
        Ok(s.containers.values().chain(&s.leftovers).cloned().collect())
    }

    async fn logs_tail(&self, _project: &Project, service: &str, _lines: usize) -> Result<String> {
        self.lock().calls.push(format!("logs {service}"));
        Ok(format!("fake logs of {service}"))
    }

    async fn leftovers(&self, _project: &Project) -> Result<Vec<Container>> {
        let mut s = self.lock();
        s.calls.push("leftovers".into());
        Ok(s.leftovers.clone())
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        let s = self.lock();
        Ok(Some(
            s.moved_tags
                .get(reference)
                .cloned()
                .unwrap_or_else(|| fake_image_id(reference)),
        ))
    }

    async fn remove_leftovers(&self, _project: &Project) -> Result<Vec<Container>> {
        let mut s = self.lock();
        s.calls.push("remove_leftovers".into());
        Ok(std::mem::take(&mut s.leftovers))
    }

    async fn events(&self, project: Option<&str>) -> Result<EventStream> {
        let project = project.map(str::to_string);
        let rx = self.lock().events.0.subscribe();
        let events = stream::unfold(rx, move |mut rx| {
            let project = project.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(e) if project.as_ref().is_none_or(|p| *p == e.project) => {
                            return Some((Ok(e), rx));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Box::pin(events))
    }

    async fn wait_ready(
        &self,
        project: &Project,
        model: &RenderedModel,
        services: &[String],
        timeout: Duration,
        min_ready: Duration,
        progress: super::Progress<'_>,
    ) -> Result<Vec<Container>> {
        self.lock()
            .calls
            .push(format!("wait_ready {}", services.join(",")));
        wait::wait_ready(
            self,
            project,
            model,
            services,
            timeout,
            min_ready,
            (&WaitSettings::default(), progress),
        )
        .await
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
