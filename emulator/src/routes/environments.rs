//! `/environments`, `/environments/{uuid}` and the environment's
//! currently-deployed / currently-supported listings.

use serde_json::json;

use super::{
    Ctx, Req, Resp, field_errors, json_body, method_not_allowed, no_content, not_found, ok,
};
use crate::hal;
use crate::model::State;
use crate::query::parse_params;

fn self_href(ctx: &Ctx, path: &str, req: &Req) -> String {
    match &req.query {
        Some(q) if !q.is_empty() => format!("{}{path}?{q}", ctx.base),
        _ => format!("{}{path}", ctx.base),
    }
}

/// Routes `/environments/...` (`rest` = segments after `environments`).
pub fn route(ctx: &Ctx, req: &Req, state: &mut State, rest: &[&str]) -> Resp {
    let params = parse_params(req.query.as_deref().unwrap_or(""));
    match (req.method.as_str(), rest) {
        ("GET", []) => {
            let envs: Vec<_> = state
                .environments
                .iter()
                .filter(|e| params.plain.get("name").is_none_or(|n| &e.name == n))
                .collect();
            ok(hal::environments(
                &ctx.base,
                &envs,
                &self_href(ctx, "/environments", req),
            ))
        }
        ("POST", []) => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match state.upsert_environment(&body, None) {
                Ok(env) => Resp::hal(201, &hal::environment(&ctx.base, &env))
                    .location(hal::environment_url(&ctx.base, &env.uuid)),
                Err(e) => field_errors(&e),
            }
        }
        (_, []) => method_not_allowed(),
        (method, [uuid]) => {
            if state.environment(uuid).is_none() {
                return not_found();
            }
            match method {
                "GET" => state
                    .environment(uuid)
                    .map_or_else(not_found, |e| ok(hal::environment(&ctx.base, e))),
                "PUT" => {
                    let body = match json_body(req) {
                        Ok(b) => b,
                        Err(r) => return r,
                    };
                    match state.upsert_environment(&body, Some(uuid)) {
                        Ok(env) => ok(hal::environment(&ctx.base, &env)),
                        Err(e) => field_errors(&e),
                    }
                }
                "DELETE" => {
                    state.delete_environment(uuid);
                    no_content()
                }
                _ => method_not_allowed(),
            }
        }
        ("GET", [uuid, "deployed-versions", "currently-deployed"]) => {
            let Some(env) = state.environment(uuid) else {
                return not_found();
            };
            let pacticipant = params.plain.get("pacticipant");
            let instance = params
                .plain
                .get("applicationInstance")
                .or(params.plain.get("target"));
            let mut records: Vec<_> = state
                .deployed
                .iter()
                .filter(|d| d.currently_deployed && d.environment_uuid == env.uuid)
                .filter(|d| pacticipant.is_none_or(|p| &d.pacticipant == p))
                .filter(|d| match instance {
                    None => true,
                    Some(i) if i.is_empty() => d.application_instance.is_none(),
                    Some(i) => d.application_instance.as_ref() == Some(i),
                })
                .collect();
            records.sort_by_key(|r| std::cmp::Reverse(r.order));
            let path = format!("/environments/{uuid}/deployed-versions/currently-deployed");
            ok(json!({
                "_embedded": {"deployedVersions": records.iter().map(|d| hal::deployed_version(&ctx.base, state, d, false)).collect::<Vec<_>>()},
                "_links": {"self": {"href": self_href(ctx, &path, req), "title": format!("Currently deployed versions for {}", env.display_name)}}
            }))
        }
        ("GET", [uuid, "released-versions", "currently-supported"]) => {
            let Some(env) = state.environment(uuid) else {
                return not_found();
            };
            let pacticipant = params.plain.get("pacticipant");
            let mut records: Vec<_> = state
                .released
                .iter()
                .filter(|r| r.currently_supported && r.environment_uuid == env.uuid)
                .filter(|r| pacticipant.is_none_or(|p| &r.pacticipant == p))
                .collect();
            records.sort_by_key(|r| std::cmp::Reverse(r.order));
            let path = format!("/environments/{uuid}/released-versions/currently-supported");
            ok(json!({
                "_embedded": {"releasedVersions": records.iter().map(|r| hal::released_version(&ctx.base, state, r, false)).collect::<Vec<_>>()},
                "_links": {"self": {"href": self_href(ctx, &path, req), "title": format!("Currently supported released versions for {}", env.display_name)}}
            }))
        }
        _ => not_found(),
    }
}
