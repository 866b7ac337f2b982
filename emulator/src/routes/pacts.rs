//! Publishing: `POST /contracts/publish`, the legacy
//! `PUT /pacts/provider/{p}/consumer/{c}/version/{v}`, pact resources and
//! `POST …/pact-version/{sha}/verification-results`.

use base64::Engine;
use serde_json::{Value, json};

use super::{Ctx, Req, Resp, field_errors, json_body, method_not_allowed, not_found, ok};
use crate::hal;
use crate::model::{FieldErrors, State};

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn validate_publish(body: &Value) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for k in ["pacticipantName", "pacticipantVersionNumber"] {
        if str_field(body, k).is_none() {
            errors
                .entry(k.into())
                .or_default()
                .push("is missing".into());
        }
    }
    match body.get("contracts").and_then(Value::as_array) {
        None => errors
            .entry("contracts".into())
            .or_default()
            .push("is missing".into()),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                for k in [
                    "consumerName",
                    "providerName",
                    "content",
                    "contentType",
                    "specification",
                ] {
                    if str_field(c, k).is_none() {
                        errors
                            .entry(format!("contracts.{i}.{k}"))
                            .or_default()
                            .push("is missing".into());
                    }
                }
                if let (Some(c), Some(p)) = (
                    str_field(c, "consumerName"),
                    str_field(body, "pacticipantName"),
                ) {
                    if c != p {
                        errors
                            .entry(format!("contracts.{i}.consumerName"))
                            .or_default()
                            .push(format!("must match the pacticipantName ({p})"));
                    }
                }
            }
        }
    }
    errors
}

fn notice(level: &str, text: String) -> (String, String) {
    (level.to_string(), text)
}

/// `POST /contracts/publish`.
pub fn publish(ctx: &Ctx, req: &Req, state: &mut State) -> Resp {
    if req.method != "POST" {
        return method_not_allowed();
    }
    let body = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut errors = validate_publish(&body);
    let mut decoded: Vec<(String, Value)> = Vec::new();
    for (i, c) in body
        .get("contracts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = str_field(c, "content").unwrap_or_default();
        let parsed = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match parsed {
            Some(v) => decoded.push((
                str_field(c, "providerName").unwrap_or_default().to_string(),
                v,
            )),
            None => errors
                .entry(format!("contracts.{i}.content"))
                .or_default()
                .push("is not valid base64-encoded JSON".into()),
        }
    }
    if !errors.is_empty() {
        return field_errors(&errors);
    }
    let p = str_field(&body, "pacticipantName")
        .unwrap_or_default()
        .to_string();
    let v = str_field(&body, "pacticipantVersionNumber")
        .unwrap_or_default()
        .to_string();
    let branch = str_field(&body, "branch").map(str::to_string);
    let tags: Vec<String> = body
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let created = state.ensure_version(&p, &v);
    if let Some(b) = &branch {
        state.add_branch(&p, &v, b);
    }
    for t in &tags {
        state.add_tag(&p, &v, t);
    }
    let mut with = Vec::new();
    if let Some(b) = &branch {
        with.push(format!("branch {b}"));
    }
    if !tags.is_empty() {
        with.push(format!("tags {}", tags.join(", ")));
    }
    let with = if with.is_empty() {
        String::new()
    } else {
        format!(" with {}", with.join(" and "))
    };
    let mut notices = vec![notice(
        "debug",
        format!(
            "{} {p} version {v}{with}",
            if created { "Created" } else { "Updated" }
        ),
    )];
    if branch.is_none() {
        notices.push(notice("prompt", "  Next steps:\n    Configure the version branch to be the value of your repository branch.".into()));
    }
    let mut contracts = Vec::new();
    for (provider, content) in &decoded {
        let outcome = state.publish_pact(&p, &v, provider, content);
        let url = hal::pact_url(&ctx.base, provider, &p, &v);
        if outcome.content_changed {
            notices.push(notice("warning", format!("Pact with changed content published over existing content for {p} version {v} and provider {provider}. This is not recommended in normal circumstances and may indicate that you have not configured your Pact pipeline correctly. For more information see https://docs.pact.io/go/versioning")));
        } else {
            notices.push(notice(
                "success",
                format!("Pact successfully published for {p} version {v} and provider {provider}."),
            ));
        }
        notices.push(notice(
            "debug",
            format!("  View the published pact at {url}"),
        ));
        contracts.push(json!({"title": "Pact", "name": format!("Pact between {p} ({v}) and {provider}"), "href": url}));
    }
    let version_url = hal::version_url(&ctx.base, &p, &v);
    let out = json!({
        "logs": notices.iter().map(|(l, t)| json!({"level": l, "message": t, "deprecationWarning": "Replaced by notices"})).collect::<Vec<_>>(),
        "notices": notices.iter().map(|(l, t)| json!({"type": l, "text": t})).collect::<Vec<_>>(),
        "_embedded": {
            "pacticipant": {"name": p, "_links": {"self": {"href": hal::pacticipant_url(&ctx.base, &p)}}},
            "version": {"number": v, "_links": {"self": {"title": "Version", "name": v, "href": version_url}}},
        },
        "_links": {
            "pb:pacticipant": {"title": "Pacticipant", "name": p, "href": hal::pacticipant_url(&ctx.base, &p)},
            "pb:pacticipant-version": {"title": "Pacticipant version", "name": v, "href": version_url},
            "pb:pacticipant-version-tags": tags.iter().map(|t| json!({"title": "Tag", "name": t,
                "href": format!("{version_url}/tags/{}", hal::enc(t))})).collect::<Vec<_>>(),
            "pb:contracts": contracts,
        }
    });
    ok(out)
}

fn validate_verification(body: &Value) -> FieldErrors {
    let mut errors = FieldErrors::new();
    match body.get("success") {
        Some(Value::Bool(_)) => {}
        None | Some(Value::Null) => errors
            .entry("success".into())
            .or_default()
            .push("is missing".into()),
        Some(_) => errors
            .entry("success".into())
            .or_default()
            .push("must be boolean".into()),
    }
    if str_field(body, "providerApplicationVersion").is_none() {
        errors
            .entry("providerApplicationVersion".into())
            .or_default()
            .push("is missing".into());
    }
    errors
}

/// Routes `/pacts/...` (`rest` = segments after `pacts`).
pub fn route(ctx: &Ctx, req: &Req, state: &mut State, rest: &[&str]) -> Resp {
    match (req.method.as_str(), rest) {
        ("GET", ["provider", p, "consumer", c, "version", v]) => state
            .pact(p, c, v)
            .map_or_else(not_found, |pact| ok(hal::pact(&ctx.base, state, pact))),
        ("PUT", ["provider", p, "consumer", c, "version", v]) => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let existed = state.pact(p, c, v).is_some();
            state.publish_pact(c, v, p, &body);
            state.pact(p, c, v).map_or_else(not_found, |pact| {
                Resp::hal(
                    if existed { 200 } else { 201 },
                    &hal::pact(&ctx.base, state, pact),
                )
            })
        }
        ("GET", ["provider", p, "consumer", c, "latest"]) => {
            let latest = state
                .pacts
                .iter()
                .filter(|x| x.provider == *p && x.consumer == *c)
                .max_by_key(|x| x.order);
            latest.map_or_else(not_found, |pact| ok(hal::pact(&ctx.base, state, pact)))
        }
        ("GET", ["provider", p, "consumer", c, "pact-version", sha, ..])
            if rest.len() == 6 || rest.get(6) == Some(&"metadata") && rest.len() == 8 =>
        {
            let latest = state
                .pacts
                .iter()
                .filter(|x| x.provider == *p && x.consumer == *c && x.sha == *sha)
                .max_by_key(|x| x.order);
            latest.map_or_else(not_found, |pact| ok(hal::pact(&ctx.base, state, pact)))
        }
        (m, ["provider", p, "consumer", c, "pact-version", sha, tail @ ..]) => {
            let tail: Vec<&str> = match tail {
                ["metadata", _, t @ ..] => t.to_vec(),
                t => t.to_vec(),
            };
            verification_results(ctx, req, state, m, (p, c, sha), &tail)
        }
        _ => not_found(),
    }
}

fn verification_results(
    ctx: &Ctx,
    req: &Req,
    state: &mut State,
    method: &str,
    ids: (&str, &str, &str),
    tail: &[&str],
) -> Resp {
    let (p, c, sha) = ids;
    if !state
        .pacts
        .iter()
        .any(|x| x.provider == p && x.consumer == c && x.sha == sha)
    {
        return not_found();
    }
    match (method, tail) {
        ("POST", ["verification-results"]) => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let errors = validate_verification(&body);
            if !errors.is_empty() {
                return field_errors(&errors);
            }
            let success = body
                .get("success")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let pv = str_field(&body, "providerApplicationVersion").unwrap_or_default();
            let v = state.verify(p, c, sha, pv, success);
            let out = hal::verification(&ctx.base, &v);
            let href = out["_links"]["self"]["href"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Resp::hal(201, &out).location(href)
        }
        ("GET", ["verification-results", id]) => {
            let found = state
                .verifications
                .iter()
                .find(|v| v.sha == sha && v.provider == p && v.order.to_string() == *id);
            found.map_or_else(not_found, |v| ok(hal::verification(&ctx.base, v)))
        }
        _ => not_found(),
    }
}
