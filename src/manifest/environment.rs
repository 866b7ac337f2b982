//! [`Environment`]: one loaded and validated manifest, with resolved paths and the accessors
//! the planner and the pipeline use.

use std::path::PathBuf;
use std::time::Duration;

use super::problem::{Problem, Severity};
use super::types::Manifest;
use super::version::VersionSpec;

/// How long `compose up --wait` may take when `compose.waitTimeout` is not set.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// One successfully loaded and validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// The manifest file.
    pub source: PathBuf,
    /// The manifest as written, except that each `version: { from: ... }` is replaced by the
    /// version it resolved to when loaded (the generation hashes that).
    pub manifest: Manifest,
    /// `compose.project`, or `metadata.name` when not set.
    pub project: String,
    /// `compose.directory`, resolved against the manifest's own directory, absolute.
    pub compose_directory: PathBuf,
    /// The Compose files, absolute (default `compose.yaml` under the directory).
    pub compose_files: Vec<PathBuf>,
    /// First 16 hex chars of the sha256 of the manifest's canonical JSON.
    pub generation: String,
    /// Warnings found while validating (the environment is still valid).
    pub warnings: Vec<Problem>,
}

impl Environment {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.manifest.metadata.name
    }

    /// `compose.waitTimeout`, default 2m.
    pub fn wait_timeout(&self) -> Duration {
        self.manifest
            .spec
            .compose
            .wait_timeout
            .map_or(DEFAULT_WAIT_TIMEOUT, |d| d.get())
    }

    /// `policy.minReady`: the stability window of services without a healthcheck.
    pub fn min_ready(&self) -> std::time::Duration {
        self.manifest.spec.policy.min_ready.get()
    }

    /// The services the manifest declares jobs (`job: true`).
    pub fn declared_jobs(&self) -> impl Iterator<Item = &str> {
        (self.manifest.spec.services.iter())
            .filter(|(_, spec)| spec.job)
            .map(|(name, _)| name.as_str())
    }

    /// The broker pacticipant of a service: `pacticipant`, default the service name.
    pub fn pacticipant(&self, service: &str) -> String {
        self.manifest
            .spec
            .services
            .get(service)
            .and_then(|s| s.pacticipant.clone())
            .unwrap_or_else(|| service.to_string())
    }

    /// The release identity of a service: its `version` as written or as resolved from its
    /// image's digest or the desired directory's commit.
    pub fn version(&self, service: &str) -> Option<&str> {
        let spec = self.manifest.spec.services.get(service)?;
        spec.version.as_ref().and_then(VersionSpec::literal)
    }

    /// The image to pin for a service, with `{version}` replaced by its version.
    pub fn pinned_image(&self, service: &str) -> Option<String> {
        let spec = self.manifest.spec.services.get(service)?;
        let image = spec.image.as_deref()?;
        Some(expand_image(image, self.version(service)))
    }

    /// Services with a version and a broker configured, in name order (`gateOnly` included).
    pub fn gated_services(&self) -> Vec<String> {
        if self.manifest.spec.broker.is_none() {
            return Vec::new();
        }
        self.manifest
            .spec
            .services
            .iter()
            .filter(|(_, s)| s.version.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Services with an image that this Compose project runs (not `gateOnly`), in name order.
    pub fn pinned_services(&self) -> Vec<String> {
        self.manifest
            .spec
            .services
            .iter()
            .filter(|(_, s)| s.image.is_some() && !s.gate_only)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// True when the agent named `host` owns this environment (`spec.hosts` empty = every host).
    pub fn owned_by(&self, host: &str) -> bool {
        let hosts = &self.manifest.spec.hosts;
        hosts.is_empty() || hosts.iter().any(|h| h == host)
    }

    /// Checks what only matters on the host that deploys: the Compose directory and files exist.
    ///
    /// `validate` reports these as warnings (it often runs in GitOps CI); deploying calls this
    /// and treats them as errors.
    pub fn check_deployable_here(&self) -> Result<(), Vec<Problem>> {
        let problems: Vec<Problem> = missing_compose_files(self, Severity::Error);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// `image` with every `{version}` replaced by `version` (unchanged without a version).
pub(crate) fn expand_image(image: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => image.replace("{version}", version),
        None => image.to_string(),
    }
}

/// One problem per missing Compose directory or file, at `compose.directory` / `compose.files`.
pub(crate) fn missing_compose_files(env: &Environment, severity: Severity) -> Vec<Problem> {
    let problem = |field: &str, message: String| Problem {
        file: env.source.clone(),
        line: None,
        column: None,
        field: Some(field.to_string()),
        message,
        severity,
    };
    if !env.compose_directory.is_dir() {
        return vec![problem(
            "spec.compose.directory",
            format!(
                "compose directory {} does not exist on this machine",
                env.compose_directory.display()
            ),
        )];
    }
    let field = if env.manifest.spec.compose.files.is_empty() {
        "spec.compose.directory"
    } else {
        "spec.compose.files"
    };
    env.compose_files
        .iter()
        .filter(|file| !file.is_file())
        .map(|file| {
            problem(
                field,
                format!(
                    "compose file {} does not exist on this machine",
                    file.display()
                ),
            )
        })
        .collect()
}
