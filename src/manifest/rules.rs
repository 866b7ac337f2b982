//! Validation beyond types: the rules a [`Manifest`] must follow (issue 2, item 2).
//!
//! Pure: no filesystem, no clock. Each finding names the field path; `parse.rs` turns it into a
//! [`super::Problem`] with the line found by [`super::line_of`]. Checks that need this machine
//! (Compose files exist) live in `environment.rs`.

use super::duration::{Bounds, DurationSpec};
use super::problem::{FieldPath, Severity};
use super::types::{
    API_VERSION, BrokerSpec, KIND, Manifest, SMOKE_CHECK_KINDS, ServiceSpec, SmokeCheck,
};
use super::version::{self, VersionSource, VersionSpec};

/// One rule violation or warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The field it is about.
    pub path: FieldPath,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

/// Every finding about `manifest`, errors and warnings, in field order.
pub fn check(manifest: &Manifest) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    let root = FieldPath::default();
    if manifest.api_version != API_VERSION {
        out.error(
            root.key("apiVersion"),
            format!(
                "unsupported apiVersion {:?}; this build understands {API_VERSION:?}",
                manifest.api_version
            ),
        );
    }
    if manifest.kind != KIND {
        out.error(
            root.key("kind"),
            format!("unsupported kind {:?}; expected {KIND:?}", manifest.kind),
        );
    }
    if !is_dns_label(&manifest.metadata.name) {
        out.error(
            root.key("metadata").key("name"),
            format!(
                "invalid name {:?}: use 1-63 lowercase letters, digits and '-', starting and ending with a \
                 letter or digit (pattern [a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?)",
                manifest.metadata.name
            ),
        );
    }
    let spec = &manifest.spec;
    let spec_path = root.key("spec");
    for (i, host) in spec.hosts.iter().enumerate() {
        if host.trim().is_empty() || host.chars().any(char::is_whitespace) {
            out.error(
                spec_path.key("hosts").index(i),
                format!("invalid host name {host:?}"),
            );
        }
    }
    check_compose(manifest, &spec_path.key("compose"), &mut out);
    if let Some(broker) = &spec.broker {
        check_broker(broker, &spec_path.key("broker"), &mut out);
    }
    for (name, service) in &spec.services {
        check_service(
            manifest,
            name,
            service,
            &spec_path.key("services").key(name),
            &mut out,
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, check) in spec.smoke.iter().enumerate() {
        let path = spec_path.key("smoke").index(i);
        if !check.name.trim().is_empty() && !seen.insert(check.name.as_str()) {
            out.error(
                path.key("name"),
                format!("duplicate smoke check name {:?}", check.name),
            );
        }
        check_smoke(check, &path, &mut out);
    }
    let policy_path = spec_path.key("policy");
    let retry = &spec.policy.gate_retry;
    let retry_path = policy_path.key("gateRetry");
    out.bounds(
        retry_path.key("initial"),
        retry.initial,
        Bounds::GATE_RETRY_INITIAL,
    );
    out.bounds(retry_path.key("max"), retry.max, Bounds::GATE_RETRY_MAX);
    out.bounds(
        policy_path.key("minReady"),
        spec.policy.min_ready,
        Bounds::MIN_READY,
    );
    if retry.max < retry.initial {
        out.error(
            retry_path.key("max"),
            "must not be smaller than gateRetry.initial".into(),
        );
    }
    out.0
}

struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, path: FieldPath, message: String) {
        self.0.push(Finding {
            path,
            message,
            severity: Severity::Error,
        });
    }

    /// An error when a duration field is out of its bounds.
    fn bounds(&mut self, path: FieldPath, value: DurationSpec, bounds: Bounds) {
        if let Some(message) = bounds.check(value.get()) {
            self.error(path, message);
        }
    }

    fn warning(&mut self, path: FieldPath, message: String) {
        self.0.push(Finding {
            path,
            message,
            severity: Severity::Warning,
        });
    }
}

fn check_compose(manifest: &Manifest, path: &FieldPath, out: &mut Findings) {
    let compose = &manifest.spec.compose;
    if let Some(project) = &compose.project
        && !is_compose_project(project)
    {
        out.error(
            path.key("project"),
            format!("invalid Compose project name {project:?}: use lowercase letters, digits, '_' and '-', starting with a letter or digit"),
        );
    }
    if compose.directory.as_os_str().is_empty() {
        out.error(path.key("directory"), "must not be empty".into());
    }
    for (i, file) in compose.files.iter().enumerate() {
        if file.as_os_str().is_empty() {
            out.error(path.key("files").index(i), "must not be empty".into());
        }
    }
    if let Some(wait_timeout) = compose.wait_timeout {
        out.bounds(path.key("waitTimeout"), wait_timeout, Bounds::WAIT_TIMEOUT);
    }
}

fn check_broker(broker: &BrokerSpec, path: &FieldPath, out: &mut Findings) {
    if let Err(message) = check_http_url(&broker.url) {
        out.error(path.key("url"), message);
    }
    if broker.environment.trim().is_empty() {
        out.error(
            path.key("environment"),
            "must not be empty (the broker environment, e.g. production)".into(),
        );
    }
    for (field, value) in [
        ("tokenFile", &broker.token_file),
        ("usernameFile", &broker.username_file),
        ("passwordFile", &broker.password_file),
        ("caFile", &broker.ca_file),
    ] {
        if value.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            out.error(
                path.key(field),
                "must not be empty (a path to a file)".into(),
            );
        }
    }
    for (field, value) in [
        ("tokenEnv", &broker.token_env),
        ("usernameEnv", &broker.username_env),
        ("passwordEnv", &broker.password_env),
    ] {
        // The value is not echoed: a token pasted here by mistake must not reach logs or CI.
        if value.as_deref().is_some_and(|n| !is_env_name(n)) {
            out.error(
                path.key(field),
                "is not an environment variable name (letters, digits, '_', not starting with a digit); write the name of a variable, not its value".into(),
            );
        }
    }
    let pairs = [
        (
            "tokenFile",
            "tokenEnv",
            broker.token_file.is_some(),
            broker.token_env.is_some(),
        ),
        (
            "usernameFile",
            "usernameEnv",
            broker.username_file.is_some(),
            broker.username_env.is_some(),
        ),
        (
            "passwordFile",
            "passwordEnv",
            broker.password_file.is_some(),
            broker.password_env.is_some(),
        ),
    ];
    for (file, env, has_file, has_env) in pairs {
        if has_file && has_env {
            out.error(
                path.key(env),
                format!("set either `{file}` or `{env}`, not both"),
            );
        }
    }
    let token = broker.token_file.is_some() || broker.token_env.is_some();
    let username = broker.username_file.is_some() || broker.username_env.is_some();
    let password = broker.password_file.is_some() || broker.password_env.is_some();
    if token && (username || password) {
        let field = if broker.token_file.is_some() {
            "tokenFile"
        } else {
            "tokenEnv"
        };
        out.error(
            path.key(field),
            "choose one auth method: a bearer token or a username and password, not both".into(),
        );
    }
    if password && !username {
        let field = if broker.password_file.is_some() {
            "passwordFile"
        } else {
            "passwordEnv"
        };
        out.error(
            path.key(field),
            "a password needs a username (`usernameFile` or `usernameEnv`)".into(),
        );
    }
    if username && !password {
        let field = if broker.username_file.is_some() {
            "usernameFile"
        } else {
            "usernameEnv"
        };
        out.error(
            path.key(field),
            "a username needs a password (`passwordFile` or `passwordEnv`)".into(),
        );
    }
    for (i, entry) in broker.trusted_origins.iter().enumerate() {
        if let Err(message) = crate::broker::origins::parse_origin(entry) {
            out.error(path.key("trustedOrigins").index(i), message);
        }
    }
    if broker
        .application_instance
        .as_deref()
        .is_some_and(|a| a.trim().is_empty())
    {
        out.error(
            path.key("applicationInstance"),
            "must not be empty when set".into(),
        );
    }
}

fn check_service(
    manifest: &Manifest,
    name: &str,
    service: &ServiceSpec,
    path: &FieldPath,
    out: &mut Findings,
) {
    if !is_compose_service(name) {
        out.error(
            path.clone(),
            format!("invalid Compose service name {name:?}: use letters, digits, '_', '.', '-', starting with a letter or digit"),
        );
    }
    if service
        .pacticipant
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        out.error(
            path.key("pacticipant"),
            "must not be empty when set (default: the service name)".into(),
        );
    }
    for (field, message) in version::check(service, path) {
        out.error(field, message);
    }
    if service.version.is_some() && manifest.spec.broker.is_none() {
        out.warning(
            path.key("version"),
            "not gated: no broker (spec.broker is not set, so this version is pinned but never checked or recorded)".into(),
        );
    }
    let from_digest = (service.version.as_ref()).is_some_and(|v| v.is_from(VersionSource::Digest));
    if service.gate_only {
        if service.version.is_none() {
            out.error(
                path.key("gateOnly"),
                "a gateOnly service needs a `version` (what to gate and record)".into(),
            );
        }
        if service.image.is_some() && !from_digest {
            out.warning(
                path.key("image"),
                "ignored: a gateOnly service is not run by this Compose project".into(),
            );
        }
    } else if service.version.is_some() && service.image.is_none() && !from_digest {
        out.error(
            path.key("image"),
            "missing: a service with a `version` needs an `image` (e.g. registry/app:{version}), or `gateOnly: true` \
             when it runs elsewhere"
                .into(),
        );
    }
    let empty = (service.version.as_ref().and_then(VersionSpec::literal))
        .is_some_and(|v| v.trim().is_empty());
    if let Some(image) = &service.image
        && !service.gate_only
        && !empty
        && !(from_digest && image.contains("{version}"))
    {
        let expanded = service
            .version
            .as_ref()
            .and_then(version::expansion_for_rules);
        check_image(
            manifest,
            image,
            expanded.as_deref(),
            &path.key("image"),
            out,
        );
    }
}

fn check_image(
    manifest: &Manifest,
    image: &str,
    version: Option<&str>,
    path: &FieldPath,
    out: &mut Findings,
) {
    if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
        out.error(path.clone(), format!("invalid image reference {image:?}"));
        return;
    }
    let without_placeholder = image.replace("{version}", "");
    if without_placeholder.contains(['{', '}']) {
        out.error(
            path.clone(),
            "the only placeholder allowed in an image is `{version}`".into(),
        );
        return;
    }
    if image.contains("{version}") && version.is_none() {
        out.error(
            path.clone(),
            "uses `{version}` but the service has no `version`".into(),
        );
        return;
    }
    let expanded = super::environment::expand_image(image, version);
    let (name, digest) = match expanded.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (expanded.as_str(), None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            out.error(path.clone(), format!("malformed digest in {expanded:?}: expected @sha256: and 64 lowercase hex digits"));
        }
        return;
    }
    if manifest.spec.policy.require_digest {
        out.error(
            path.clone(),
            format!("{expanded:?} has no @sha256: digest, and spec.policy.requireDigest is true"),
        );
        return;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':').map(|(_, tag)| tag) {
        None => out.warning(
            path.clone(),
            format!("{expanded:?} has no tag (Docker reads it as :latest, which is mutable); pin a version tag or a digest"),
        ),
        Some("latest") => out.warning(
            path.clone(),
            format!("{expanded:?} uses the mutable tag :latest; pin a version tag or a digest"),
        ),
        Some("") => out.error(path.clone(), format!("invalid image reference {expanded:?}: empty tag")),
        Some(_) => {}
    }
}

fn check_smoke(check: &SmokeCheck, path: &FieldPath, out: &mut Findings) {
    if check.name.trim().is_empty() {
        out.error(path.key("name"), "must not be empty".into());
    }
    let set = [
        check.http.is_some(),
        check.tcp.is_some(),
        check.exec.is_some(),
    ];
    let found: Vec<&str> = (SMOKE_CHECK_KINDS.iter().zip(set))
        .filter_map(|(kind, set)| set.then_some(*kind))
        .collect();
    if found.len() != 1 {
        out.error(
            path.clone(),
            smoke_kinds_message(&SMOKE_CHECK_KINDS, &found),
        );
    }
    if let Some(http) = &check.http {
        if let Err(message) = check_http_url(&http.url) {
            out.error(path.key("http").key("url"), message);
        }
        if http.status.is_some_and(|s| !(100..=599).contains(&s)) {
            out.error(
                path.key("http").key("status"),
                "must be an HTTP status between 100 and 599".into(),
            );
        }
    }
    if let Some(tcp) = &check.tcp
        && !is_host_port(&tcp.address)
    {
        out.error(
            path.key("tcp").key("address"),
            format!(
                "{:?} is not host:port (e.g. 127.0.0.1:5432 or [::1]:5432)",
                tcp.address
            ),
        );
    }
    if let Some(exec) = &check.exec {
        if exec
            .command
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            out.error(
                path.key("exec").key("command"),
                "must be a non-empty argv list such as [pg_isready, -h, 127.0.0.1]".into(),
            );
        }
        for name in exec.env.keys().filter(|n| !is_env_name(n)) {
            out.error(
                path.key("exec").key("env").key(name),
                format!("{name:?} is not an environment variable name"),
            );
        }
    }
    for (field, value, bounds) in [
        ("timeout", check.timeout, Bounds::SMOKE_TIMEOUT),
        ("interval", check.interval, Bounds::SMOKE_INTERVAL),
    ] {
        if let Some(value) = value {
            out.bounds(path.key(field), value, bounds);
        }
    }
    if check.attempts == Some(0) {
        out.error(path.key("attempts"), "must be at least 1".into());
    }
}

/// "a smoke check needs exactly one of http, tcp, exec (found http and tcp)": said by the
/// rules and by the shape check (`shape.rs`), which finds it before the typed parse.
pub(super) fn smoke_kinds_message(kinds: &[&str], found: &[&str]) -> String {
    let found = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(" and ")
    };
    format!(
        "a smoke check needs exactly one of {} (found {found})",
        kinds.join(", ")
    )
}

/// `Ok` for an absolute http(s) URL with a host; the error says what is wrong.
fn check_http_url(url: &str) -> Result<(), String> {
    // Never echo a URL that may carry credentials (`https://user:pass@host`).
    let shown = if url.contains('@') {
        "the URL".to_string()
    } else {
        format!("{url:?}")
    };
    let parsed = url::Url::parse(url).map_err(|e| format!("{shown} is not a URL ({e})"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not allowed; use tokenFile/passwordFile or tokenEnv/passwordEnv".into());
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{shown} must use http or https, not {}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host"));
    }
    // The URL parser forgives `https:/host` and surrounding spaces; the schema (and so an
    // editor) does not: refuse them here too.
    let prefix = format!("{}://", parsed.scheme());
    if !url
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
    {
        return Err(format!("{shown} must start with {prefix}, written out"));
    }
    Ok(())
}

/// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// A Compose project name: `[a-z0-9][a-z0-9_-]*`.
fn is_compose_project(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// A Compose service name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_compose_service(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// `host:port` with a port in 1..=65535 (`[v6]:port` accepted).
fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && !host.contains([':', '/', ' '])
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
