//! [`CliCompose`]: the real [`Compose`] implementation over the `docker` CLI and Compose v2.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::readiness::{ReadinessVerdict, evaluate};
use super::run::{self, Output};
use super::version::ComposeVersion;
use super::{
    Compose, Container, Error, ImagePins, Project, RenderedModel, Result, ServiceFailure,
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
    /// Limit of short commands (`config`, `ps`, `inspect`, `logs`, `rm`, `version`).
    pub command_timeout: Duration,
    /// Limit of `pull`.
    pub pull_timeout: Duration,
    /// Limit of `up` itself (readiness has its own deadline).
    pub up_timeout: Duration,
    /// Pause between readiness polls while `fast_polls_for` has not passed since `up`; after
    /// that each pause is 1.5x longer, up to `max_poll_interval`.
    pub poll_interval: Duration,
    /// How long readiness polls at `poll_interval` (most services are ready within it).
    pub fast_polls_for: Duration,
    /// Longest pause between readiness polls.
    pub max_poll_interval: Duration,
    /// Log lines shown per failed service.
    pub log_lines: usize,
}

impl CliConfig {
    /// Defaults: `docker`, 60s commands, 10 min pull and up, readiness polls every 100 ms for
    /// 5 s then growing to 1 s, 20 log lines.
    pub fn new(override_dir: impl Into<PathBuf>) -> CliConfig {
        CliConfig {
            docker: "docker".into(),
            standalone: "docker-compose".into(),
            override_dir: override_dir.into(),
            command_timeout: Duration::from_secs(60),
            pull_timeout: Duration::from_secs(600),
            up_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(100),
            fast_polls_for: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(1),
            log_lines: 20,
        }
    }
}

/// The real adapter: runs `docker compose` (or a v2 `docker-compose`) and `docker`.
#[derive(Debug, Clone)]
pub struct CliCompose {
    config: CliConfig,
    invocation: argv::Invocation,
    version: ComposeVersion,
}

impl CliCompose {
    /// Finds Compose v2+: the `docker compose` plugin, else a standalone `docker-compose`
    /// reporting v2 or later. Compose v1 is refused with [`Error::ComposeV1`].
    pub async fn detect(config: CliConfig) -> Result<CliCompose> {
        let t = config.command_timeout;
        let mut tried = Vec::new();
        for invocation in [
            argv::Invocation::plugin(&config.docker),
            argv::Invocation::standalone(&config.standalone),
        ] {
            let args = invocation.args(argv::version());
            let shown = argv::display(&invocation.program, &args);
            match run::run(&invocation.program, &args, t).await {
                Ok(out) => match ComposeVersion::parse(&out.stdout) {
                    Some(v) if v.is_v2_or_later() => {
                        return Ok(CliCompose {
                            config,
                            invocation,
                            version: v,
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
    ) -> CliCompose {
        CliCompose {
            config,
            invocation,
            version,
        }
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

    async fn compose(&self, args: Vec<OsString>, timeout: Duration) -> Result<Output> {
        let args = self.invocation.args(args);
        run::run(&self.invocation.program, &args, timeout).await
    }

    async fn docker(&self, args: Vec<OsString>) -> Result<Output> {
        run::run(&self.config.docker, &args, self.config.command_timeout).await
    }

    /// `down -v --remove-orphans` for tests and operators (the agent never calls it).
    pub async fn down(&self, project: &Project) -> Result<()> {
        self.compose(argv::down(project), self.config.up_timeout)
            .await
            .map(|_| ())
    }

    /// Fills image ids and fresh state with one `docker inspect` for all containers.
    async fn inspect_merge(&self, containers: Vec<Container>) -> Result<Vec<Container>> {
        if containers.is_empty() {
            return Ok(containers);
        }
        let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
        let args = argv::docker_inspect(&ids);
        let out = run::run_raw(&self.config.docker, &args, self.config.command_timeout).await?;
        // A container removed between `ps` and `inspect` is "No such container": not an error.
        let only_vanished = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.contains("No such"));
        if !out.success() && !only_vanished {
            return Err(run::failed(argv::display(&self.config.docker, &args), &out));
        }
        Ok(parse::merge(containers, &parse::inspect(&out.stdout)?))
    }

    /// Containers carrying the project's label (leftovers included), via `docker ps` + `inspect`.
    pub async fn project_containers(&self, project_name: &str) -> Result<Vec<Container>> {
        let out = self.docker(argv::docker_ps(Some(project_name))).await?;
        let found = parse::ps(&out.stdout, "docker ps --format {{json .}}")?;
        self.inspect_merge(found).await
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

    fn check_services(project: &Project, services: &[String], model: &RenderedModel) -> Result<()> {
        match services.iter().find(|s| !model.contains_key(*s)) {
            Some(s) => Err(Error::MissingService {
                project: project.name.clone(),
                service: s.clone(),
            }),
            None => Ok(()),
        }
    }

    async fn not_ready(
        &self,
        project: &Project,
        list: Vec<(String, String)>,
        waited: Duration,
    ) -> Error {
        let mut failures = Vec::new();
        for (service, state) in list {
            let logs = match self
                .logs_tail(project, &service, self.config.log_lines)
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
}

impl Compose for CliCompose {
    async fn config(&self, project: &Project) -> Result<RenderedModel> {
        let out = self
            .compose(argv::config(project), self.config.command_timeout)
            .await?;
        parse::config(&out.stdout)
    }

    async fn ps(&self, project: &Project) -> Result<Vec<Container>> {
        // `docker ps` by the project's label sees what `docker compose ps -a` sees, without
        // starting the Compose plugin (about 100 ms a call).
        self.project_containers(&project.name).await
    }

    async fn ps_all(&self) -> Result<Vec<Container>> {
        let out = self.docker(argv::docker_ps(None)).await?;
        let found = parse::ps(&out.stdout, "docker ps --format {{json .}}")?;
        self.inspect_merge(found).await
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
        Self::check_services(project, &wanted, model)?;
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
        Self::check_services(project, services, model)?;
        let override_path = self.write_override(project, pins, model).await?;
        self.compose(
            argv::up(project, override_path.as_deref(), services, options),
            self.config.up_timeout,
        )
        .await?;
        Ok(())
    }

    async fn wait_ready(
        &self,
        project: &Project,
        model: &RenderedModel,
        services: &[String],
        timeout: Duration,
    ) -> Result<Vec<Container>> {
        let start = Instant::now();
        Self::check_services(project, services, model)?;
        let mut pause = self.config.poll_interval;
        loop {
            let containers = self.project_containers(&project.name).await?;
            match evaluate(services, &containers, model) {
                ReadinessVerdict::Ready => return Ok(containers),
                ReadinessVerdict::Failed(list) => {
                    return Err(self.not_ready(project, list, start.elapsed()).await);
                }
                ReadinessVerdict::Waiting(list) => {
                    let elapsed = start.elapsed();
                    if elapsed >= timeout {
                        return Err(self.not_ready(project, list, elapsed).await);
                    }
                    tokio::time::sleep(pause.min(timeout - elapsed)).await;
                    if elapsed >= self.config.fast_polls_for {
                        // A slow starter: poll less and less often.
                        pause = (pause * 3 / 2).min(self.config.max_poll_interval);
                    }
                }
            }
        }
    }

    async fn logs_tail(&self, project: &Project, service: &str, lines: usize) -> Result<String> {
        let out = self
            .compose(
                argv::logs(project, service, lines),
                self.config.command_timeout,
            )
            .await?;
        Ok(run::tail(&out.stdout, lines))
    }

    async fn leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        let all = self.project_containers(&project.name).await?;
        Ok(all
            .into_iter()
            .filter(|c| parse::is_leftover_name(&c.name))
            .collect())
    }

    async fn remove_leftovers(&self, project: &Project) -> Result<Vec<Container>> {
        let found = self.leftovers(project).await?;
        if !found.is_empty() {
            let ids: Vec<String> = found.iter().map(|c| c.id.clone()).collect();
            self.docker(argv::docker_rm_force(&ids)).await?;
        }
        Ok(found)
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
