//! Pure parsers of broker JSON: the matrix answer, the HAL index, a version's
//! `pb:record-deployment` links, the record-deployment answer, the environments list, an
//! environment's currently deployed versions, the undeploy answer and 400 error bodies.
//!
//! Every parser takes `&str` (or a `serde_json::Value`) and returns a [`ParseError`] on
//! garbage, never panics. The HTTP adapter wraps a `ParseError` into `Error::Malformed` with
//! the relation and path.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{GateAnswer, Verdict};

/// What was wrong with a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn json(body: &str) -> Result<Value, ParseError> {
    serde_json::from_str(body).map_err(|e| ParseError(format!("invalid JSON: {e}")))
}

fn count(summary: &Value, field: &str) -> Result<u64, ParseError> {
    match summary.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value.as_u64().ok_or_else(|| {
            ParseError(format!(
                "summary.{field} is not a non-negative integer: {value}"
            ))
        }),
    }
}

/// Parses a `/matrix` (or `/can-i-deploy`) response body into a [`GateAnswer`].
pub fn parse_matrix(body: &str) -> Result<GateAnswer, ParseError> {
    parse_matrix_value(&json(body)?)
}

/// Like [`parse_matrix`], and also the number of rows in `matrix` (considered and ignored),
/// which a caller that sent a `limit` compares with it.
pub fn parse_matrix_counted(body: &str) -> Result<(GateAnswer, usize), ParseError> {
    let value = json(body)?;
    let answer = parse_matrix_value(&value)?;
    let rows = value
        .get("matrix")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Ok((answer, rows))
}

/// Like [`parse_matrix`] over an already parsed JSON value.
pub fn parse_matrix_value(value: &Value) -> Result<GateAnswer, ParseError> {
    let summary = value
        .get("summary")
        .filter(|s| s.is_object())
        .ok_or_else(|| ParseError("no `summary` object".into()))?;
    let verdict = match summary.get("deployable") {
        Some(Value::Bool(true)) => Verdict::Deployable,
        Some(Value::Bool(false)) => Verdict::NotDeployable,
        Some(Value::Null) => Verdict::Unknown,
        Some(other) => {
            return Err(ParseError(format!(
                "summary.deployable is neither true, false nor null: {other}"
            )));
        }
        None => return Err(ParseError("summary.deployable is missing".into())),
    };
    let reason = match summary.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(reason)) => reason.clone(),
        Some(other) => {
            return Err(ParseError(format!(
                "summary.reason is not a string: {other}"
            )));
        }
    };
    let rows = match value.get("matrix") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(rows)) => rows.as_slice(),
        Some(_) => return Err(ParseError("`matrix` is not an array".into())),
    };
    let failing_rows = rows.iter().filter_map(failing_row).collect();
    Ok(GateAnswer {
        verdict,
        reason,
        success: count(summary, "success")?,
        failed: count(summary, "failed")?,
        unknown: count(summary, "unknown")?,
        failing_rows,
    })
}

/// One line for a matrix row that is unverified or failed; `None` for a successful or
/// ignored row. "Foo 1 -> Bar 2: verification failed", "Foo 1 -> Bar (no version): not verified".
fn failing_row(row: &Value) -> Option<String> {
    if row.get("ignored") == Some(&Value::Bool(true)) {
        return None;
    }
    let problem = match row.get("verificationResult") {
        None | Some(Value::Null) => "not verified",
        Some(result) => match result.get("success") {
            Some(Value::Bool(true)) => return None,
            Some(Value::Bool(false)) => "verification failed",
            _ => "verification result unreadable",
        },
    };
    Some(format!(
        "{} -> {}: {problem}",
        side(row.get("consumer")),
        side(row.get("provider"))
    ))
}

fn side(party: Option<&Value>) -> String {
    let name = party
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    match party
        .and_then(|p| p.get("version"))
        .and_then(|v| v.get("number"))
        .and_then(Value::as_str)
    {
        Some(number) => format!("{name} {number}"),
        None => format!("{name} (no version)"),
    }
}

/// A HAL link: its `href`, and its `name` when it is part of an array relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The href (possibly a `{placeholder}` template).
    pub href: String,
    /// The `name` attribute, the lookup key in array relations.
    pub name: Option<String>,
}

fn link(value: &Value) -> Option<Link> {
    Some(Link {
        href: value.get("href")?.as_str()?.to_string(),
        name: value
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The links of one relation, whether the relation holds one link object or an array.
fn links_of(links: &Value, relation: &str) -> Vec<Link> {
    match links.get(relation) {
        Some(Value::Array(items)) => items.iter().filter_map(link).collect(),
        Some(single) => link(single).into_iter().collect(),
        None => Vec::new(),
    }
}

fn links_object<'a>(value: &'a Value, what: &str) -> Result<&'a Value, ParseError> {
    value
        .get("_links")
        .filter(|l| l.is_object())
        .ok_or_else(|| ParseError(format!("{what} has no `_links` object")))
}

/// Parses the HAL index (`GET /`) into relation -> link (single-link relations only).
pub fn parse_index(body: &str) -> Result<BTreeMap<String, Link>, ParseError> {
    let value = json(body)?;
    let links = links_object(&value, "the index")?;
    let mut out = BTreeMap::new();
    if let Some(map) = links.as_object() {
        for (relation, entry) in map {
            if let Some(found) = link(entry) {
                out.insert(relation.clone(), found);
            }
        }
    }
    Ok(out)
}

/// The `pb:record-deployment` href of a version resource for `environment`, matched on the
/// link's `name`. `Ok(None)` when the version has no such entry (unknown environment).
pub fn record_deployment_href(
    version_body: &str,
    environment: &str,
) -> Result<Option<String>, ParseError> {
    let value = json(version_body)?;
    let links = links_object(&value, "the version resource")?;
    if links.get("pb:record-deployment").is_none() {
        return Err(ParseError(
            "the version resource has no `pb:record-deployment` relation (broker older than 2.80.0?)"
                .into(),
        ));
    }
    Ok(links_of(links, "pb:record-deployment")
        .into_iter()
        .find(|l| l.name.as_deref() == Some(environment))
        .map(|l| l.href))
}

/// Checks the answer to a record-deployment `POST`: the broker answers with the deployed-version
/// resource, a JSON object. Anything else (a truncated body, a proxy's HTML page) means the
/// broker's answer was lost, and the record must be treated as not made: it stays in the
/// outbox, and a retry is harmless (recording the currently deployed version again is
/// idempotent).
pub fn check_recorded_deployment(body: &str) -> Result<(), ParseError> {
    match json(body)? {
        Value::Object(_) => Ok(()),
        other => Err(ParseError(format!(
            "the record-deployment answer is not a JSON object: {}",
            excerpt(&other.to_string(), 80)
        ))),
    }
}

/// An environment resource's link to its currently deployed versions:
/// `pb:currently-deployed-deployed-versions`, or the older `pb:currently-deployed-versions`.
pub fn currently_deployed_href(environment_body: &str) -> Result<String, ParseError> {
    let value = json(environment_body)?;
    let links = links_object(&value, "the environment resource")?;
    ["pb:currently-deployed-deployed-versions", "pb:currently-deployed-versions"]
        .iter()
        .find_map(|relation| links_of(links, relation).into_iter().next())
        .map(|l| l.href)
        .ok_or_else(|| {
            ParseError(
                "the environment resource has no `pb:currently-deployed-deployed-versions` link (broker older than 2.80.0?)"
                    .into(),
            )
        })
}

/// One currently deployed version to undeploy: its own resource and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedVersionLink {
    /// The deployed version's `_links.self.href` (`<base>/deployed-versions/{uuid}`).
    pub href: String,
    /// `_embedded.version.number`, when the broker embeds it.
    pub version: Option<String>,
}

/// The entries of a currently-deployed listing that are `pacticipant` in `instance`: the
/// entry's `_embedded.pacticipant.name` must be `pacticipant` (the broker's own filter is not
/// trusted alone), and its `applicationInstance` (or the older `target`) must be `instance`,
/// or absent when `instance` is `None`. Entries that say `currentlyDeployed: false` are left
/// out. A matching entry without a `self` link is an error: it cannot be undeployed.
pub fn deployed_versions_to_undeploy(
    body: &str,
    pacticipant: &str,
    instance: Option<&str>,
) -> Result<Vec<DeployedVersionLink>, ParseError> {
    let value = json(body)?;
    let items = value
        .get("_embedded")
        .and_then(|e| e.get("deployedVersions"))
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError("no `_embedded.deployedVersions` array".into()))?;
    let mut out = Vec::new();
    for item in items {
        if item.get("currentlyDeployed") == Some(&Value::Bool(false)) {
            continue;
        }
        let name = item
            .pointer("/_embedded/pacticipant/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ParseError(format!(
                    "deployed version without `_embedded.pacticipant.name`: {}",
                    excerpt(&item.to_string(), 120)
                ))
            })?;
        let entry_instance = ["applicationInstance", "target"]
            .iter()
            .find_map(|key| item.get(*key).and_then(Value::as_str))
            .filter(|i| !i.is_empty());
        if name != pacticipant || entry_instance != instance {
            continue;
        }
        let href = item
            .pointer("/_links/self/href")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ParseError(format!(
                    "deployed version of {name} without `_links.self.href`"
                ))
            })?;
        out.push(DeployedVersionLink {
            href: href.to_string(),
            version: item
                .pointer("/_embedded/version/number")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// Checks the answer to an undeploy `PATCH`: the deployed-version resource, a JSON object that
/// does not say `currentlyDeployed: true`. Anything else means the undeployment is not known
/// to be made, and it stays in the outbox (undeploying again is harmless).
pub fn check_undeployed(body: &str) -> Result<(), ParseError> {
    match json(body)? {
        Value::Object(fields) if fields.get("currentlyDeployed") == Some(&Value::Bool(true)) => {
            Err(ParseError(
                "the broker still says the version is currently deployed".into(),
            ))
        }
        Value::Object(_) => Ok(()),
        other => Err(ParseError(format!(
            "the undeploy answer is not a JSON object: {}",
            excerpt(&other.to_string(), 80)
        ))),
    }
}

/// The environments of a `GET /environments` body as (name, uuid) pairs: every entry of
/// `_embedded.environments[]` (its `name` and `uuid`), then every `_links.pb:environments[]`
/// link not already listed (its `name`, and the last path segment of its href, which is the
/// uuid). The official Rust CLI reads the first form, the Ruby client the second; a broker or a
/// proxy may give only one. A body with neither is an error naming both.
pub fn parse_environments(body: &str) -> Result<Vec<(String, String)>, ParseError> {
    let value = json(body)?;
    let embedded = value
        .get("_embedded")
        .and_then(|e| e.get("environments"))
        .and_then(Value::as_array);
    let linked = value
        .get("_links")
        .and_then(|l| l.get("pb:environments"))
        .filter(|l| l.is_array() || l.is_object());
    if embedded.is_none() && linked.is_none() {
        return Err(ParseError(format!(
            "neither `_embedded.environments` nor `_links.pb:environments` lists environments: {}",
            excerpt(body, 120)
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for item in embedded.into_iter().flatten() {
        let name = item.get("name").and_then(Value::as_str);
        let uuid = item.get("uuid").and_then(Value::as_str);
        match (name, uuid) {
            (Some(name), Some(uuid)) => out.push((name.to_string(), uuid.to_string())),
            _ => {
                return Err(ParseError(format!(
                    "environment entry without name or uuid: {}",
                    excerpt(&item.to_string(), 120)
                )));
            }
        }
    }
    if linked.is_some() {
        for link in links_of(&value["_links"], "pb:environments") {
            let name = link.name.clone().ok_or_else(|| {
                ParseError(format!(
                    "`pb:environments` link without a name: {}",
                    link.href
                ))
            })?;
            if out.iter().any(|(known, _)| *known == name) {
                continue;
            }
            let uuid = last_segment(&link.href).ok_or_else(|| {
                ParseError(format!(
                    "`pb:environments` link of {name} has no uuid in its href: {}",
                    link.href
                ))
            })?;
            out.push((name, uuid));
        }
    }
    Ok(out)
}

/// The last non-empty path segment of an href (absolute or relative), percent-decoded.
fn last_segment(href: &str) -> Option<String> {
    let anchor = reqwest::Url::parse("http://relative.invalid/").ok()?;
    let url = anchor.join(href).ok()?;
    let segment = url.path_segments()?.rfind(|s| !s.is_empty())?;
    urlencoding::decode(segment).ok().map(|s| s.into_owned())
}

/// The broker's messages from an error body: `{"errors":[..]}`, `{"errors":{"field":[..]}}`
/// (base-level messages under the empty key), `{"error":"..."}` or
/// `{"error":{"message":".."}}`. A body that is not JSON gives its trimmed text, if any.
pub fn error_messages(body: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let text = excerpt(body, 200);
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
    };
    let mut out = Vec::new();
    match value.get("errors") {
        Some(Value::Array(items)) => out.extend(items.iter().map(text_of)),
        Some(Value::Object(fields)) => {
            for (field, messages) in fields {
                let messages = match messages {
                    Value::Array(items) => items.iter().map(text_of).collect(),
                    other => vec![text_of(other)],
                };
                for message in messages {
                    if field.is_empty() {
                        out.push(message);
                    } else {
                        out.push(format!("{field} {message}"));
                    }
                }
            }
        }
        Some(other) => out.push(text_of(other)),
        None => {}
    }
    match value.get("error") {
        Some(Value::String(message)) => out.push(message.clone()),
        Some(other @ Value::Object(_)) => match other.get("message").and_then(Value::as_str) {
            Some(message) => out.push(message.to_string()),
            None => out.push(other.to_string()),
        },
        _ => {}
    }
    out
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The first `max` characters of a body, trimmed, for error messages.
pub fn excerpt(body: &str, max: usize) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
