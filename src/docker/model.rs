//! The rendered Compose model (`docker compose config --format json`) and the per-service
//! config hash c2quay compares against what it applied. Pure: no IO.
//!
//! # Which hash
//!
//! c2quay hashes its own canonical form of each rendered service instead of reproducing
//! Compose's `com.docker.compose.config-hash` label: that label is the SHA-256 of Go's
//! `json.Marshal` of Compose's in-memory struct (field order, HTML escaping, defaults), which
//! changes between Compose releases and cannot be computed from the `config` output alone. The
//! canonical form is the service's JSON with object keys sorted, minus the fields that are not
//! configuration of the running container or that c2quay tracks on its own: `image` (the
//! release, pinned by the override and gated), `build`, `pull_policy`, `depends_on` (order of
//! start, not configuration; Compose leaves it out of its own hash too) and `profiles`. Each
//! remaining top-level field also gets its own short hash, so a plan can say which fields
//! changed (`web: environment, ports`) without keeping values, which may be secrets, in the
//! status file. Compose's own label is still used, for what it is good at: a container whose
//! label differs from the one seen right after c2quay applied it was changed by hand.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Top-level service fields that are not part of the config hash (see the module docs).
pub const UNHASHED_FIELDS: [&str; 5] = ["image", "build", "pull_policy", "depends_on", "profiles"];

/// One service of the rendered Compose model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedService {
    /// The `image:` after interpolation, when set.
    pub image: Option<String>,
    /// Whether the service has a `build:` section.
    pub has_build: bool,
    /// The `restart:` policy (`no` when absent).
    pub restart: Option<String>,
    /// Whether a healthcheck is defined in the Compose file (the image may still have one).
    pub has_healthcheck: bool,
    /// Whether the service publishes a port.
    #[serde(default)]
    pub has_ports: bool,
    /// How many containers should run: `scale` or `deploy.replicas` (`None`: not set, one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Whether the service is a one-shot job: declared by Compose (another service depends
    /// on it with `condition: service_completed_successfully`) or by the manifest
    /// ([`mark_jobs`]); never a service with a healthcheck or a published port. A job is done
    /// when it exited 0; any other service that is not running is not ready.
    #[serde(default)]
    pub job: bool,
    /// The canonical config hash of the service (see the module docs).
    #[serde(default)]
    pub config: ServiceConfig,
}

/// The config hash of one rendered service, whole and per top-level field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// 16 hex digits of the SHA-256 of the canonical form.
    pub hash: String,
    /// Top-level field -> 12 hex digits of the SHA-256 of its canonical form.
    pub fields: BTreeMap<String, String>,
    /// The hashed fields' values, for the plan's diff. Never serialised: environment values
    /// may be secrets.
    #[serde(skip)]
    pub values: BTreeMap<String, Value>,
}

impl ServiceConfig {
    /// The config of a rendered service's JSON object (`services.<name>` of the model).
    pub fn of(service: &Value) -> ServiceConfig {
        let mut values = BTreeMap::new();
        if let Value::Object(map) = service {
            for (field, value) in map {
                if UNHASHED_FIELDS.contains(&field.as_str()) || value.is_null() {
                    continue;
                }
                values.insert(field.clone(), value.clone());
            }
        }
        let fields = values
            .iter()
            .map(|(field, value)| (field.clone(), short_hash(&canonical(value), 12)))
            .collect();
        let whole = values
            .iter()
            .map(|(field, value)| format!("{}:{}", canonical_string(field), canonical(value)))
            .collect::<Vec<_>>()
            .join(",");
        ServiceConfig {
            hash: short_hash(&format!("{{{whole}}}"), 16),
            fields,
            values,
        }
    }

    /// The top-level fields whose hash differs between `applied` and `self`, in name order
    /// (a field present on one side only counts as changed).
    pub fn changed_fields(&self, applied: &BTreeMap<String, String>) -> Vec<String> {
        let mut fields: Vec<String> = self
            .fields
            .iter()
            .filter(|(field, hash)| applied.get(*field) != Some(*hash))
            .map(|(field, _)| field.clone())
            .chain(
                applied
                    .keys()
                    .filter(|field| !self.fields.contains_key(*field))
                    .cloned(),
            )
            .collect();
        fields.sort();
        fields.dedup();
        fields
    }
}

/// The rendered model: service name -> service, and the JSON text Compose printed (kept so a
/// successful deploy can save the model a later rollback restores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedModel {
    services: BTreeMap<String, RenderedService>,
    source: Option<Arc<str>>,
}

impl RenderedModel {
    /// An empty model.
    pub fn new() -> RenderedModel {
        RenderedModel::default()
    }

    /// The same model, remembering the `config --format json` text it was parsed from.
    pub fn with_source(mut self, text: &str) -> RenderedModel {
        self.source = Some(Arc::from(text));
        self
    }

    /// The `config --format json` text, when the model came from Compose.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

impl Deref for RenderedModel {
    type Target = BTreeMap<String, RenderedService>;

    fn deref(&self) -> &Self::Target {
        &self.services
    }
}

impl DerefMut for RenderedModel {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.services
    }
}

impl FromIterator<(String, RenderedService)> for RenderedModel {
    fn from_iter<I: IntoIterator<Item = (String, RenderedService)>>(iter: I) -> Self {
        RenderedModel {
            services: iter.into_iter().collect(),
            source: None,
        }
    }
}

impl RenderedService {
    /// How many containers of the service should run (1 unless `scale`/`deploy.replicas` say).
    pub fn wanted_replicas(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }
}

/// Marks the manifest's `job: true` services of `model` as jobs (a service with a healthcheck
/// or a published port stays a long-running one).
pub fn mark_jobs<'a>(model: &mut RenderedModel, jobs: impl IntoIterator<Item = &'a str>) {
    for service in jobs {
        if let Some(rendered) = model.get_mut(service) {
            rendered.job = !rendered.has_healthcheck && !rendered.has_ports;
        }
    }
}

/// The services that another service of `services` (the model's `services` object) waits for
/// with `condition: service_completed_successfully`: Compose's own notion of a job.
pub fn completed_dependencies(services: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut jobs: Vec<String> = services
        .values()
        .filter_map(|svc| svc.get("depends_on").and_then(Value::as_object))
        .flat_map(|deps| deps.iter())
        .filter(|(_, dep)| {
            dep.get("condition").and_then(Value::as_str) == Some("service_completed_successfully")
        })
        .map(|(name, _)| name.clone())
        .collect();
    jobs.sort();
    jobs.dedup();
    jobs
}

/// JSON with object keys sorted at every level and no whitespace: the same value always gives
/// the same text, whatever order the keys came in.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", canonical_string(k), canonical(v)))
                .collect::<Vec<_>>()
                .join(",");
            format!("{{{inner}}}")
        }
        Value::Array(items) => {
            let inner = items.iter().map(canonical).collect::<Vec<_>>().join(",");
            format!("[{inner}]")
        }
        other => other.to_string(),
    }
}

fn canonical_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

fn short_hash(text: &str, digits: usize) -> String {
    let mut hex = hex::encode(Sha256::digest(text.as_bytes()));
    hex.truncate(digits);
    hex
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_ignores_key_order() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_ne!(
            canonical(&json!([1, 2])),
            canonical(&json!([2, 1])),
            "order of a list is configuration"
        );
    }

    #[test]
    fn image_build_and_depends_on_are_not_config() {
        let base = json!({"image": "web:1", "environment": {"GREETING": "one"}});
        let other_image = json!({"image": "web:2", "environment": {"GREETING": "one"},
            "build": {"context": "."}, "depends_on": {"db": {"condition": "service_started"}},
            "pull_policy": "always", "profiles": ["x"]});
        assert_eq!(
            ServiceConfig::of(&base).hash,
            ServiceConfig::of(&other_image).hash
        );
        assert_eq!(ServiceConfig::of(&base).hash.len(), 16);
    }

    #[test]
    fn changed_fields_name_what_differs_on_either_side() {
        let applied = ServiceConfig::of(&json!({"environment": {"GREETING": "one"},
            "ports": [{"target": 80}], "command": ["httpd"]}));
        let desired = ServiceConfig::of(&json!({"environment": {"GREETING": "two"},
            "ports": [{"target": 80}], "volumes": [{"type": "volume", "source": "data"}]}));
        assert_ne!(applied.hash, desired.hash);
        assert_eq!(
            desired.changed_fields(&applied.fields),
            ["command", "environment", "volumes"]
        );
        assert!(desired.changed_fields(&desired.fields).is_empty());
    }

    #[test]
    fn null_fields_count_as_absent() {
        // Compose prints `"command": null` for a service without one.
        assert_eq!(
            ServiceConfig::of(&json!({"command": null, "entrypoint": null})).hash,
            ServiceConfig::of(&json!({})).hash
        );
    }

    #[test]
    fn values_are_never_serialised() {
        let config = ServiceConfig::of(&json!({"environment": {"DB_PASSWORD": "hunter2"}}));
        let text = serde_json::to_string(&config).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("environment"), "{text}");
    }
}
