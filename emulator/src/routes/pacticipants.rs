//! `/pacticipants/...`: pacticipants, versions (GET/PUT/PATCH/DELETE),
//! branches, tags, latest-version, and the record-deployment/record-release
//! links that hang off a version.

use serde_json::json;

use super::{
    Ctx, Req, Resp, deployments, json_body, method_not_allowed, no_content, not_found, ok,
};
use crate::hal;
use crate::model::State;

fn version_resp(ctx: &Ctx, state: &State, p: &str, v: &str, status: u16) -> Resp {
    state.version(p, v).map_or_else(not_found, |ver| {
        Resp::hal(status, &hal::version(&ctx.base, state, ver))
    })
}

/// Routes `/pacticipants/...` (`rest` = segments after `pacticipants`).
pub fn route(ctx: &Ctx, req: &Req, state: &mut State, rest: &[&str]) -> Resp {
    match (req.method.as_str(), rest) {
        ("GET", []) => {
            let list: Vec<_> = state
                .pacticipants
                .iter()
                .map(|p| hal::pacticipant(&ctx.base, state, &p.name))
                .collect();
            ok(
                json!({"_embedded": {"pacticipants": list}, "_links": {"self": {"href": format!("{}/pacticipants", ctx.base)}}}),
            )
        }
        ("GET", [p]) => match state.pacticipant(p) {
            Some(_) => ok(hal::pacticipant(&ctx.base, state, p)),
            None => not_found(),
        },
        ("GET", [p, "versions", v]) => version_resp(ctx, state, p, v, 200),
        (m @ ("PUT" | "PATCH"), [p, "versions", v]) => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let created = state.update_version(p, v, &body, m == "PUT");
            version_resp(ctx, state, p, v, if created { 201 } else { 200 })
        }
        ("DELETE", [p, "versions", v]) => {
            if state.delete_version(p, v) {
                no_content()
            } else {
                not_found()
            }
        }
        (_, [_, "versions", _]) => method_not_allowed(),
        ("GET", [p, "latest-version"]) => match state.latest_version(p) {
            Some(v) => ok(hal::version(&ctx.base, state, v)),
            None => not_found(),
        },
        ("GET", [p, "latest-version", tag]) => {
            let latest = state
                .versions_of(p)
                .filter(|v| v.tags.iter().any(|t| t == tag))
                .max_by_key(|v| v.order);
            latest.map_or_else(not_found, |v| ok(hal::version(&ctx.base, state, v)))
        }
        ("GET", [p, "branches", b, "latest-version"]) => {
            let latest = state
                .versions_of(p)
                .filter(|v| v.branches.iter().any(|x| x == b))
                .max_by_key(|v| v.order);
            latest.map_or_else(not_found, |v| ok(hal::version(&ctx.base, state, v)))
        }
        ("PUT", [p, "branches", b, "versions", v]) => {
            if let Err(r) = json_body(req) {
                return r;
            }
            let created = state.add_branch(p, v, b);
            version_resp(ctx, state, p, v, if created { 201 } else { 200 })
        }
        ("GET", [p, "branches", b, "versions", v]) => match state.version(p, v) {
            Some(ver) if ver.branches.iter().any(|x| x == b) => {
                ok(hal::version(&ctx.base, state, ver))
            }
            _ => not_found(),
        },
        (m @ ("PUT" | "GET"), [p, "versions", v, "tags", t]) => {
            if m == "GET" {
                return match state.version(p, v) {
                    Some(ver) if ver.tags.iter().any(|x| x == t) => ok(tag_body(ctx, p, v, t)),
                    _ => not_found(),
                };
            }
            if let Err(r) = json_body(req) {
                return r;
            }
            let created = state.add_tag(p, v, t);
            Resp::hal(if created { 201 } else { 200 }, &tag_body(ctx, p, v, t))
        }
        (m, [p, "versions", v, "deployed-versions", "environment", uuid]) => {
            deployments::for_version(ctx, req, state, m, (p, v, uuid), true)
        }
        (m, [p, "versions", v, "released-versions", "environment", uuid]) => {
            deployments::for_version(ctx, req, state, m, (p, v, uuid), false)
        }
        _ => not_found(),
    }
}

fn tag_body(ctx: &Ctx, p: &str, v: &str, t: &str) -> serde_json::Value {
    json!({"name": t, "_links": {
        "self": {"title": "Tag", "name": t, "href": format!("{}/tags/{}", hal::version_url(&ctx.base, p, v), hal::enc(t))},
        "version": {"title": "Version", "name": v, "href": hal::version_url(&ctx.base, p, v)},
        "pacticipant": {"title": "Pacticipant", "name": p, "href": hal::pacticipant_url(&ctx.base, p)},
    }})
}
