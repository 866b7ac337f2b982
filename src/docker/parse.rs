//! Pure parsers for the JSON that `docker compose` and `docker` print: no IO, fixture-tested.
//!
//! A line that does not parse is an error naming the command and the line number; nothing is
//! skipped silently, because a container we cannot see is a container we might recreate.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::argv::{CONFIG_HASH_LABEL, PROJECT_LABEL, SERVICE_LABEL};
use super::{Container, Error, RenderedModel, RenderedService, Result};

fn parse_err(what: &str, detail: impl Into<String>) -> Error {
    Error::Parse {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// Parses `docker compose config --format json` into service -> rendered service.
pub fn config(text: &str) -> Result<RenderedModel> {
    const WHAT: &str = "docker compose config --format json";
    let root: Value = serde_json::from_str(text).map_err(|e| parse_err(WHAT, e.to_string()))?;
    let services = match root.get("services") {
        Some(Value::Object(map)) => map,
        Some(Value::Null) | None => return Ok(RenderedModel::new()),
        Some(_) => return Err(parse_err(WHAT, "`services` is not an object")),
    };
    let mut model = RenderedModel::new();
    let jobs = super::model::completed_dependencies(services);
    for (name, svc) in services {
        let image = svc.get("image").and_then(Value::as_str).map(str::to_string);
        let has_build = svc.get("build").is_some_and(|b| !b.is_null());
        let restart = svc
            .get("restart")
            .and_then(Value::as_str)
            .map(str::to_string);
        let has_healthcheck = svc.get("healthcheck").is_some_and(|h| {
            h.is_object() && !h.get("disable").and_then(Value::as_bool).unwrap_or(false)
        });
        let replicas = svc
            .get("scale")
            .and_then(Value::as_u64)
            .or_else(|| svc.get("deploy")?.get("replicas")?.as_u64())
            .map(|n| n.min(u64::from(u32::MAX)) as u32);
        let has_ports = svc
            .get("ports")
            .and_then(Value::as_array)
            .is_some_and(|ports| !ports.is_empty());
        model.insert(
            name.clone(),
            RenderedService {
                image,
                has_build,
                restart,
                has_healthcheck,
                has_ports,
                replicas,
                job: jobs.contains(name) && !has_healthcheck && !has_ports,
                config: super::ServiceConfig::of(svc),
            },
        );
    }
    Ok(model.with_source(text))
}

/// One entry of `docker compose ps --format json` / `docker ps --format {{json .}}`.
#[derive(Debug, Deserialize)]
struct PsEntry {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Names", default)]
    names: Option<Value>,
    #[serde(rename = "Project", default)]
    project: Option<String>,
    #[serde(rename = "Service", default)]
    service: Option<String>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "State", default)]
    state: Option<String>,
    #[serde(rename = "Health", default)]
    health: Option<String>,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i64>,
    #[serde(rename = "Labels", default)]
    labels: Option<Value>,
}

/// Splits Docker's comma-joined label string. A value may itself contain commas (Compose's
/// `config_files` label does), so a piece that does not start with `key=` continues the value.
pub fn split_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for piece in text.split(',') {
        let starts_label = piece.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        });
        match (starts_label, &last) {
            (true, _) | (false, None) => {
                let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
                if k.is_empty() {
                    continue;
                }
                out.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            (false, Some(key)) => {
                if let Some(v) = out.get_mut(key) {
                    v.push(',');
                    v.push_str(piece);
                }
            }
        }
    }
    out
}

fn labels_of(value: &Option<Value>) -> BTreeMap<String, String> {
    match value {
        Some(Value::String(s)) => split_labels(s),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl PsEntry {
    fn into_container(self) -> Container {
        let labels = labels_of(&self.labels);
        let name = self
            .name
            .or_else(|| match &self.names {
                Some(Value::String(s)) => s.split(',').next().map(str::to_string),
                Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default();
        Container {
            id: self.id,
            name,
            project: self
                .project
                .or_else(|| labels.get(PROJECT_LABEL).cloned())
                .unwrap_or_default(),
            service: self
                .service
                .or_else(|| labels.get(SERVICE_LABEL).cloned())
                .unwrap_or_default(),
            image: self.image.unwrap_or_default(),
            image_id: String::new(),
            state: self.state.unwrap_or_default().to_ascii_lowercase(),
            health: self.health.unwrap_or_default().to_ascii_lowercase(),
            exit_code: self.exit_code.unwrap_or(0),
            restart_policy: String::new(),
            oom_killed: false,
            config_hash: labels.get(CONFIG_HASH_LABEL).cloned().unwrap_or_default(),
        }
    }
}

/// Parses `ps` JSON in both forms: a JSON array (Compose < 2.21) or one object per line.
/// `what` names the command in errors. Image ids are left empty (see [`inspect`]).
pub fn ps(text: &str, what: &str) -> Result<Vec<Container>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        let entries: Vec<PsEntry> =
            serde_json::from_str(trimmed).map_err(|e| parse_err(what, e.to_string()))?;
        return Ok(entries.into_iter().map(PsEntry::into_container).collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let entry: PsEntry = serde_json::from_str(line).map_err(|e| {
            parse_err(
                &format!("{what}, line {}", i + 1),
                format!("{e}: {}", truncate(line, 200)),
            )
        })?;
        if entry.id.is_empty() {
            return Err(parse_err(
                &format!("{what}, line {}", i + 1),
                "entry without an ID",
            ));
        }
        out.push(entry.into_container());
    }
    Ok(out)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// What `docker inspect` (with [`super::argv::INSPECT_FORMAT`]) says about one container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Inspected {
    /// Full container id.
    #[serde(rename = "Id")]
    pub id: String,
    /// Name with Docker's leading `/`.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// The image id the container runs.
    #[serde(rename = "Image")]
    pub image_id: String,
    /// Config part.
    #[serde(rename = "Config")]
    pub config: InspectConfig,
    /// State part.
    #[serde(rename = "State")]
    pub state: InspectState,
    /// HostConfig part (only the restart policy is asked for).
    #[serde(rename = "HostConfig", default)]
    pub host_config: Option<InspectHostConfig>,
}

/// `.HostConfig` of an inspected container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InspectHostConfig {
    /// The restart policy.
    #[serde(rename = "RestartPolicy", default)]
    pub restart_policy: Option<InspectRestartPolicy>,
}

/// `.HostConfig.RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InspectRestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    #[serde(rename = "Name", default)]
    pub name: String,
}

/// `.Config` of an inspected container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InspectConfig {
    /// The image reference it was created from.
    #[serde(rename = "Image", default)]
    pub image: String,
    /// Labels.
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `.State` of an inspected container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InspectState {
    /// `running`, `exited`, ...
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Exit code.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i64,
    /// Health, when the container has a healthcheck.
    #[serde(rename = "Health", default)]
    pub health: Option<InspectHealth>,
    /// Whether the OOM killer ended it.
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
}

/// `.State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InspectHealth {
    /// `starting`, `healthy`, `unhealthy`.
    #[serde(rename = "Status", default)]
    pub status: String,
}

/// Parses the output of `docker inspect --format INSPECT_FORMAT`, one object per line.
pub fn inspect(text: &str) -> Result<Vec<Inspected>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let item: Inspected = serde_json::from_str(line).map_err(|e| {
            parse_err(
                &format!("docker inspect, line {}", i + 1),
                format!("{e}: {}", truncate(line, 200)),
            )
        })?;
        out.push(item);
    }
    Ok(out)
}

/// Fills image ids (and fresher state, health, exit code, labels) from `inspected` into
/// `containers`. A container missing from `inspected` vanished in between and is dropped.
pub fn merge(containers: Vec<Container>, inspected: &[Inspected]) -> Vec<Container> {
    containers
        .into_iter()
        .filter_map(|mut c| {
            let found = inspected
                .iter()
                .find(|i| !c.id.is_empty() && i.id.starts_with(&c.id))?;
            c.id = found.id.clone();
            c.image_id = found.image_id.clone();
            if !found.config.image.is_empty() {
                c.image = found.config.image.clone();
            }
            if !found.name.is_empty() {
                c.name = found.name.trim_start_matches('/').to_string();
            }
            c.state = found.state.status.to_ascii_lowercase();
            c.exit_code = found.state.exit_code;
            c.oom_killed = found.state.oom_killed;
            if let Some(policy) = found
                .host_config
                .as_ref()
                .and_then(|h| h.restart_policy.as_ref())
            {
                c.restart_policy = policy.name.clone();
            }
            c.health = found
                .state
                .health
                .as_ref()
                .map(|h| h.status.to_ascii_lowercase())
                .unwrap_or_default();
            if let Some(labels) = &found.config.labels {
                if let Some(p) = labels.get(PROJECT_LABEL) {
                    c.project = p.clone();
                }
                if let Some(s) = labels.get(SERVICE_LABEL) {
                    c.service = s.clone();
                }
            }
            Some(c)
        })
        .collect()
}

/// Whether `name` is a leftover of an interrupted recreate: Compose renames the old container
/// to `<first 12 hex of its id>_<name>` before creating the new one.
pub fn is_leftover_name(name: &str) -> bool {
    let name = name.trim_start_matches('/');
    let bytes = name.as_bytes();
    bytes.len() > 13
        && bytes[12] == b'_'
        && bytes[..12]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
