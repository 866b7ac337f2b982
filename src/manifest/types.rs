//! The serde types of an environment manifest (DESIGN.md §3): the shape users commit.
//!
//! Field names are Kubernetes-style camelCase; unknown fields are errors. Validation beyond
//! types (name pattern, secrets, digests, ...) lives in `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;
use super::version::VersionSpec;

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "c2quay.dev/v1";
/// The only `kind` this build understands.
pub const KIND: &str = "Environment";

/// One environment: a Compose project on this host, its gate and its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// Must be `c2quay.dev/v1`.
    #[schemars(pattern(r"^c2quay\.dev/v1$"))]
    pub api_version: String,
    /// Must be `Environment`.
    #[schemars(pattern(r"^Environment$"))]
    pub kind: String,
    /// Identity of the environment.
    pub metadata: Metadata,
    /// What should run and how it is gated.
    pub spec: Spec,
}

/// Identity of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`, unique on a host; names the state files.
    #[schemars(pattern(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
}

/// The desired state of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Agents (by `--host` name) that own this environment; empty means every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// When true the agent observes but never changes this environment.
    #[serde(default)]
    pub suspend: bool,
    /// The Compose project that runs the services.
    pub compose: ComposeSpec,
    /// The Pact Broker that gates and records deployments; omitted means no gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerSpec>,
    /// Services by Compose service name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSpec>,
    /// Checks run after the services are ready; all must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke: Vec<SmokeCheck>,
    /// Rollback, self-heal and gate retry policy.
    #[serde(default)]
    pub policy: Policy,
}

/// Where the Compose project lives and how it is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComposeSpec {
    /// Compose project name; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Project directory; a relative path resolves against the manifest's own directory.
    pub directory: PathBuf,
    /// Compose files relative to `directory`; default `[compose.yaml]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// How long services may take to become ready after `up`, from 1s to 1h (default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<DurationSpec>,
    /// Image pull policy for `docker compose pull`.
    #[serde(default)]
    pub pull: PullPolicy,
}

/// When images are pulled before `up`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Always pull pinned images.
    Always,
    /// Pull only images that are not present locally (default).
    #[default]
    Missing,
    /// Never pull; the images must already be on the host.
    Never,
}

/// The Pact Broker of an environment. Credentials are only ever file paths or env var names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerSpec {
    /// Base URL (http or https), may carry a path prefix.
    #[schemars(pattern(r"^[hH][tT][tT][pP][sS]?://"))]
    pub url: String,
    /// The broker environment name used for can-i-deploy and record-deployment.
    pub environment: String,
    /// File holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File holding the Basic-auth username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<PathBuf>,
    /// Name of an environment variable holding the Basic-auth username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// File holding the Basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Name of an environment variable holding the Basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// PEM bundle of extra CA certificates for a private broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Gate all changed services with one matrix query (2+ services) instead of one per service.
    #[serde(default)]
    pub all_or_nothing: bool,
    /// `applicationInstance` sent with record-deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_instance: Option<String>,
    /// Origins (`scheme://host[:port]`, http or https, no path) that may receive the
    /// credentials besides the origin of `url` and the one the broker's index advertises in its
    /// `self` link: a broker whose links carry another public base URL, or plain HTTP behind a
    /// TLS proxy that does not forward `X-Forwarded-Proto`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[hH][tT][tT][pP][sS]?://[^/?#@]+/?$")))]
    pub trusted_origins: Vec<String>,
}

/// One service of the environment, by Compose service name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Pacticipant name in the broker; defaults to the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacticipant: Option<String>,
    /// Release identity recorded in the broker. A service with a version is gated. A string,
    /// or taken from what is deployed: `{ from: digest }` (the pinned image's `sha256:<hex>`
    /// digest) or `{ from: git }` (the desired directory's commit; `short: N` keeps its first N
    /// hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionSpec>,
    /// Image to pin; `{version}` is replaced by `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Gated and recorded, but not run by this Compose project (it lives elsewhere).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate_only: bool,
    /// A one-shot job (a migration): ready when its container exited 0, never re-run by a
    /// rollback. A service another one depends on with `condition:
    /// service_completed_successfully` is a job without saying so; a service with a healthcheck
    /// or a published port never is. Every other service that is not running is not ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub job: bool,
}

/// A smoke check: exactly one of `http`, `tcp`, `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(transform = exactly_one_check_kind)]
pub struct SmokeCheck {
    /// Shown in progress, reports and errors.
    pub name: String,
    /// An HTTP GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// A command run on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
    /// How long one attempt may take, from 100ms to 10m (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// How many attempts before the check fails (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub attempts: Option<u32>,
    /// The pause between attempts, from 100ms to 10m (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationSpec>,
}

/// The kinds of smoke check, one of which each check sets.
pub const SMOKE_CHECK_KINDS: [&str; 3] = ["http", "tcp", "exec"];

/// The schema's "exactly one of `http`, `tcp`, `exec`": one `oneOf` branch per kind, each
/// requiring its key with an object value (an explicit `null` is no check, as for the parser).
fn exactly_one_check_kind(schema: &mut schemars::Schema) {
    let branches: Vec<serde_json::Value> = SMOKE_CHECK_KINDS
        .iter()
        .map(|kind| serde_json::json!({"required": [kind], "properties": {*kind: {"type": "object"}}}))
        .collect();
    schema.insert("oneOf".into(), branches.into());
}

/// An HTTP smoke check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCheck {
    /// http(s) URL to GET.
    #[schemars(pattern(r"^[hH][tT][tT][pP][sS]?://"))]
    pub url: String,
    /// Expected status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// A substring the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// A TCP smoke check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpCheck {
    /// `host:port` to connect to.
    pub address: String,
}

/// An exec smoke check: an argv list, never a shell string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecCheck {
    /// Program and arguments.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Extra environment variables (the check otherwise gets a clean environment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// What to do when things fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// What happens after a failed apply or smoke: `on` (default) rolls back to the images
    /// that ran before, `off` only prints the commands, `dry-run` prints the plan; `true` and
    /// `false` mean `on` and `off`.
    #[serde(default)]
    pub rollback: RollbackMode,
    /// Re-apply the applied release when the running state drifts.
    #[serde(default)]
    pub self_heal: bool,
    /// Backoff for re-checking a blocked gate.
    #[serde(default)]
    pub gate_retry: GateRetry,
    /// Every pinned image must carry an `@sha256:` digest.
    #[serde(default)]
    pub require_digest: bool,
    /// Stop and remove the containers of services no longer in the Compose files
    /// (`up --remove-orphans`; volumes are kept). A removed gated service's undeployment is
    /// recorded in the broker.
    #[serde(default = "default_true")]
    pub remove_orphans: bool,
    /// How long a service without a healthcheck must keep running, its container unchanged,
    /// before it counts as ready (Kubernetes' `minReadySeconds`; default 5s, the default of
    /// Docker Swarm's `--update-monitor`). A death or re-creation inside the window fails
    /// readiness. From 0s to 10m; `0s` turns it off.
    #[serde(
        default = "default_min_ready",
        skip_serializing_if = "is_default_min_ready"
    )]
    pub min_ready: DurationSpec,
    /// What happens to the project when this manifest is removed from the desired directory:
    /// `never` (default) leaves its containers running (`Orphaned`); `onRemove` takes the
    /// project down (`docker compose down`, volumes kept) and records the undeployment of its
    /// gated services in the broker.
    #[serde(default, skip_serializing_if = "PruneMode::is_never")]
    pub prune: PruneMode,
    /// When a change of desired state is applied: `auto` (default) as soon as the gate allows
    /// it; `manual` only when asked (`c2quay deploy ENV` or the agent's trigger endpoint): the
    /// agent observes, plans and asks the broker read-only, and shows `OutOfSync` with the
    /// plan and the broker's answer. Drift of the applied release is healed either way.
    #[serde(default, skip_serializing_if = "SyncMode::is_auto")]
    pub sync: SyncMode,
}

/// [`Policy::sync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SyncMode {
    /// Apply a change as soon as the gate allows it (default).
    #[default]
    Auto,
    /// Apply a change only when `c2quay deploy ENV` or the trigger endpoint asks.
    Manual,
}

impl SyncMode {
    fn is_auto(&self) -> bool {
        *self == SyncMode::Auto
    }
}

/// [`Policy::prune`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PruneMode {
    /// Leave the containers of a removed manifest running (default).
    #[default]
    Never,
    /// Take the project down and record undeployments when its manifest is removed.
    OnRemove,
}

impl PruneMode {
    fn is_never(&self) -> bool {
        *self == PruneMode::Never
    }
}

/// The default of [`Policy::min_ready`].
pub const DEFAULT_MIN_READY: Duration = Duration::from_secs(5);

fn default_min_ready() -> DurationSpec {
    DurationSpec(DEFAULT_MIN_READY)
}

fn is_default_min_ready(value: &DurationSpec) -> bool {
    value.0 == DEFAULT_MIN_READY
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rollback: RollbackMode::On,
            self_heal: false,
            gate_retry: GateRetry::default(),
            require_digest: false,
            remove_orphans: true,
            min_ready: default_min_ready(),
            prune: PruneMode::Never,
            sync: SyncMode::Auto,
        }
    }
}

/// Rollback modes after a failed apply or smoke.
///
/// Written `on`, `off` or `dry-run`; `true` and `false` are read as `on` and `off`, because YAML
/// 1.1 tools (and some formatters) rewrite an unquoted `on` as `true`. Always written back as
/// the string, so both spellings give one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum RollbackMode {
    /// Roll back to the images that ran before (default).
    #[default]
    #[serde(rename = "on")]
    On,
    /// Do not roll back; print the commands an operator would run.
    #[serde(rename = "off")]
    Off,
    /// Print the rollback plan, change nothing.
    #[serde(rename = "dry-run")]
    DryRun,
}

impl RollbackMode {
    /// Every spelling accepted, with its meaning: the schema's `oneOf` and the error message.
    const SPELLINGS: [(&'static str, RollbackMode, &'static str); 3] = [
        (
            "on",
            RollbackMode::On,
            "Roll back to the images that ran before (default).",
        ),
        (
            "off",
            RollbackMode::Off,
            "Do not roll back; print the commands an operator would run.",
        ),
        (
            "dry-run",
            RollbackMode::DryRun,
            "Print the rollback plan, change nothing.",
        ),
    ];
}

impl<'de> Deserialize<'de> for RollbackMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RollbackMode;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one of `on`, `off`, `dry-run`, `true`, `false`")
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<RollbackMode, E> {
                Ok(if value {
                    RollbackMode::On
                } else {
                    RollbackMode::Off
                })
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RollbackMode, E> {
                RollbackMode::SPELLINGS
                    .iter()
                    .find(|(text, _, _)| *text == value)
                    .map(|(_, mode, _)| *mode)
                    .ok_or_else(|| {
                        E::custom(format_args!(
                            "unknown variant `{value}`, expected one of `on`, `off`, `dry-run`, `true`, `false`"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for RollbackMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RollbackMode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut one_of: Vec<serde_json::Value> = Self::SPELLINGS
            .iter()
            .map(|(text, _, description)| {
                serde_json::json!({"type": "string", "const": text, "description": description})
            })
            .collect();
        one_of.push(serde_json::json!({
            "type": "boolean", "const": true,
            "description": "Same as `on` (YAML 1.1 tools write an unquoted `on` as `true`)."
        }));
        one_of.push(serde_json::json!({
            "type": "boolean", "const": false,
            "description": "Same as `off` (YAML 1.1 tools write an unquoted `off` as `false`)."
        }));
        schemars::json_schema!({
            "description": "Rollback modes after a failed apply or smoke: `on`, `off`, `dry-run`; `true` and `false` are read as `on` and `off`.",
            "oneOf": one_of
        })
    }
}

/// Exponential backoff for gate re-checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GateRetry {
    /// The first delay before a blocked gate is asked again, from 1s to 1h (default 15s).
    pub initial: DurationSpec,
    /// The largest delay, doubling from `initial`: from 1s to 12h, not below `initial`
    /// (default 10m).
    pub max: DurationSpec,
}

impl Default for GateRetry {
    fn default() -> Self {
        GateRetry {
            initial: DurationSpec(Duration::from_secs(15)),
            max: DurationSpec(Duration::from_secs(600)),
        }
    }
}

fn default_true() -> bool {
    true
}
