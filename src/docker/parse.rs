//! Pure parsers for what `docker compose` prints (`config --format json`) and for container
//! names: no IO, fixture-tested. Containers are observed through the Engine API
//! (`super::engine`), whose typed answers need no parser here.

use serde_json::Value;

use super::{Error, RenderedModel, RenderedService, Result};

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
