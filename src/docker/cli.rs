//! [`CliCompose`]: the real adapter. [`Applier`] runs the Compose v2 CLI; [`Engine`] is the
//! Engine API client ([`DockerEngine`]) it holds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::engine::{DockerEngine, EngineConfig};
use super::run::{self, Output};
use super::version::ComposeVersion;
use super::wait::{WaitSettings, check_services};
use super::{
    Applier, Container, Engine, Error, EventStream, ImagePins, Project, RenderedModel, Result,
    UpOptions, argv, override_file, parse,
};
use crate::manifest::PullPolicy;

/// Settings of the real adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliConfig {
    /// The `docker` program (default `docker` on `PATH`).
    pub docker: PathBuf,
    /// The standalone Compose program tried when the plugin is absent (default `docker-compose`).
    pub standalone: PathBuf,
    /// Where override files are written (e.g. `<state-dir>/<env>/`); created 0700 when missing.
    pub override_dir: PathBuf,
    /// Limit of short commands (`config`, `version`) and of one Engine API request.
    pub command_timeout: Duration,
    /// Limit of `pull`.
    pub pull_timeout: Duration,
    /// Limit of `up` itself (readiness has its own deadline).
    pub up_timeout: Duration,
    /// Longest pause between readiness observations when no container event arrives.
    pub safety_poll: Duration,
    /// Log lines shown per failed service.
    pub log_lines: usize,
    /// Where the `docker-compose` plugin binary is looked for, to run it directly (one process
    /// per Compose command instead of three). Only when `docker` is the default program.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where the answer of `compose version` is cached (keyed by the program file); `None`
    /// asks every time.
    pub version_cache: Option<PathBuf>,
    /// Where rendered models are kept between processes ([`super::render_cache`]); `None`
    /// renders every time.
    pub render_cache: Option<PathBuf>,
}

impl CliConfig {
    /// Defaults: `docker`, 60s commands, 10 min pull and up, readiness driven by container
    /// events with a 1 s safety poll, 20 log lines.
    pub fn new(override_dir: impl Into<PathBuf>) -> CliConfig {
        CliConfig {
            docker: "docker".into(),
            standalone: "docker-compose".into(),
            override_dir: override_dir.into(),
            command_timeout: Duration::from_secs(60),
            pull_timeout: Duration::from_secs(600),
            up_timeout: Duration::from_secs(600),
            safety_poll: Duration::from_secs(1),
            log_lines: 20,
            plugin_dirs: super::plugin::default_plugin_dirs(),
            version_cache: None,
            render_cache: None,
        }
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            request_timeout: self.command_timeout,
            wait: WaitSettings {
                safety_poll: self.safety_poll,
                log_lines: self.log_lines,
            },
        }
    }
}

/// The real adapter: runs `docker compose` (or a v2 `docker-compose`) to apply, and talks to
/// the Engine API to observe.
#[derive(Debug, Clone)]
pub struct CliCompose {
    config: CliConfig,
    invocation: argv::Invocation,
    version: ComposeVersion,
    engine: DockerEngine,
}

impl CliCompose {
    /// Finds Compose v2+: the `docker compose` plugin, else a standalone `docker-compose`
    /// reporting v2 or later. Compose v1 is refused with [`Error::ComposeV1`]. The Engine API
    /// client is set up without IO (the daemon may come up later).
    pub async fn detect(config: CliConfig) -> Result<CliCompose> {
        let t = config.command_timeout;
        let engine = DockerEngine::connect(config.engine_config())?;
        let mut tried = Vec::new();
        // The plugin binary itself, run directly, when `docker` is the default program (a
        // configured one may be a wrapper that must see every call).
        let direct = (config.docker == Path::new("docker"))
            .then(|| super::plugin::find_plugin(&config.plugin_dirs))
            .flatten();
        let cache = config.version_cache.clone();
        for invocation in direct.map(argv::Invocation::standalone).into_iter().chain([
            argv::Invocation::plugin(&config.docker),
            argv::Invocation::standalone(&config.standalone),
        ]) {
            if invocation.prefix.is_empty()
                && let Some(cache) = &cache
                && let Some(version) = super::plugin::cached_version(cache, &invocation.program)
            {
                return Ok(CliCompose {
                    config,
                    invocation,
                    version,
                    engine,
                });
            }
            let args = invocation.args(argv::version());
            let shown = argv::display(&invocation.program, &args);
            match run::run(&invocation.program, &args, t).await {
                Ok(out) => match ComposeVersion::parse(&out.stdout) {
                    Some(v) if v.is_v2_or_later() => {
                        if let Some(cache) = &cache
                            && invocation.prefix.is_empty()
                        {
                            super::plugin::remember_version(cache, &invocation.program, &v);
                        }
                        return Ok(CliCompose {
                            config,
                            invocation,
                            version: v,
                            engine,
                        });
                    }
                    Some(v) => {
                        return Err(Error::ComposeV1 {
                            found: format!("`{shown}` reports {}", v.raw),
                        });
                    }
                    None => tried.push(format!("`{shown}` printed {:?}", out.stdout.trim())),
                },
                Err(e) => tried.push(e.to_string().replace('\n', " ")),
            }
        }
        Err(Error::NotFound {
            detail: tried.join("; "),
        })
    }

    /// An adapter with a known invocation and version (no detection).
    pub fn with_version(
        config: CliConfig,
        invocation: argv::Invocation,
        version: ComposeVersion,
    ) -> Result<CliCompose> {
        let engine = DockerEngine::connect(config.engine_config())?;
        Ok(CliCompose {
            config,
            invocation,
            version,
            engine,
        })
    }

    /// The Engine API client.
    pub fn engine(&self) -> &DockerEngine {
        &self.engine
    }

    /// How Compose is run (the plugin binary directly, `docker compose`, or a standalone).
    pub fn invocation(&self) -> &argv::Invocation {
        &self.invocation
    }

    /// The Compose version found.
    pub fn version(&self) -> &ComposeVersion {
        &self.version
    }

    /// The settings.
    pub fn settings(&self) -> &CliConfig {
        &self.config
    }

    /// The override file of `project`.
    pub fn override_path(&self, project: &Project) -> PathBuf {
        override_file::path_for(&self.config.override_dir, &project.name)
    }

    /// `compose config` of `project`, parsed (its text kept as the model's source).
    async fn render(&self, project: &Project) -> Result<RenderedModel> {
        let out = self
            .compose(argv::config(project), self.config.command_timeout)
            .await?;
        parse::config(&out.stdout)
    }

    async fn compose(&self, args: Vec<OsString>, timeout: Duration) -> Result<Output> {
        let args = self.invocation.args(args);
        run::run(&self.invocation.program, &args, timeout).await
    }

    /// `down -v --remove-orphans` for tests and operators (the agent never calls it).
    pub async fn down(&self, project: &Project) -> Result<()> {
        self.compose(argv::down(project), self.config.up_timeout)
            .await
            .map(|_| ())
    }

    /// Writes the override for `pins` (checked against the base `model`) and returns its path,
    /// or `None` when there is nothing to pin.
    async fn write_override(
        &self,
        project: &Project,
        pins: &ImagePins,
        model: &RenderedModel,
    ) -> Result<Option<PathBuf>> {
        if pins.is_empty() {
            return Ok(None);
        }
        if override_file::needs_reset(pins, model) && !self.version.supports_reset_tag() {
            return Err(Error::Unsupported {
                feature: "pinning a service that has `build:` (`build: !reset null`)",
                needs: "2.24.0",
                found: self.version.raw.clone(),
            });
        }
        let text = override_file::render(&project.name, pins, model)?;
        let path = self.override_path(project);
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || override_file::write_atomic(&write_path, &text))
            .await
            .map_err(|e| Error::Override {
                path: path.clone(),
                source: std::io::Error::other(e),
            })??;
        Ok(Some(path))
    }
}

impl Applier for CliCompose {
    async fn config(&self, project: &Project) -> Result<RenderedModel> {
        let Some(cache) = &self.config.render_cache else {
            return self.render(project).await;
        };
        // Stamped before rendering: an edit during the render makes the key stale, not lost.
        let stamp = super::inputs::InputStamp::of(&super::inputs::inputs(project));
        let key = super::render_cache::key(project, &stamp, self.version());
        if let Some(model) = super::render_cache::load(cache, &project.name, &key) {
            return Ok(model);
        }
        let model = self.render(project).await?;
        if let Some(text) = model.source()
            && let Err(error) = super::render_cache::store(cache, &project.name, &key, text)
        {
            tracing::warn!(error = %crate::error_chain(&error), "cannot keep the rendered model");
        }
        Ok(model)
    }

    async fn pull_with_policy(
        &self,
        project: &Project,
        model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        policy: PullPolicy,
    ) -> Result<()> {
        let wanted: Vec<String> = services
            .iter()
            .filter(|s| {
                pins.get(*s)
                    .is_some_and(|image| !image.starts_with("sha256:"))
            })
            .cloned()
            .collect();
        if policy == PullPolicy::Never || wanted.is_empty() {
            return Ok(());
        }
        check_services(project, &wanted, model)?;
        let override_path = self.write_override(project, pins, model).await?;
        if let Some(args) = argv::pull(
            project,
            override_path.as_deref(),
            &wanted,
            policy,
            self.version.supports_pull_policy(),
        ) {
            self.compose(args, self.config.pull_timeout).await?;
        }
        Ok(())
    }

    async fn up(
        &self,
        project: &Project,
        model: &RenderedModel,
        pins: &ImagePins,
        services: &[String],
        options: &UpOptions,
    ) -> Result<()> {
        if services.is_empty() {
            return Err(Error::Invalid(format!(
                "`up` of project {:?} with no services",
                project.name
            )));
        }
        check_services(project, services, model)?;
        let override_path = self.write_override(project, pins, model).await?;
        self.compose(
            argv::up(project, override_path.as_deref(), services, options),
            self.config.up_timeout,
        )
        .await?;
        Ok(())
    }

    async fn take_down(&self, project_name: &str) -> Result<()> {
        self.compose(argv::take_down(project_name), self.config.up_timeout)
            .await
            .map(|_| ())
    }
}

/// Observation goes to the Engine API client.
impl Engine for CliCompose {
    async fn ps(&self, project: &Project) -> Result<Vec<Container>> {
        self.engine.ps(project).await
    }

    async fn ps_all(&self) -> Result<Vec<Container>> {
        self.engine.ps_all().await
    }

    async fn logs_tail(&self, project: &Project, service: &str, lines: usize) -> Result<String> {
        self.engine.logs_tail(project, service, lines).await
    }

    async fn leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        self.engine.leftovers(project).await
    }

    async fn remove_leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        self.engine.remove_leftovers(project).await
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        self.engine.image_id(reference).await
    }

    async fn events(&self, project: Option<&str>) -> Result<EventStream> {
        self.engine.events(project).await
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
        self.engine
            .wait_ready_with(project, model, services, timeout, min_ready, progress)
            .await
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
