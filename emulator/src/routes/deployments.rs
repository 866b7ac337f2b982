//! Record-deployment / record-release on a version, and the
//! `/deployed-versions/{uuid}` and `/released-versions/{uuid}` records
//! (GET, merge-patch undeploy / end of support).

use serde_json::{Value, json};

use super::{Ctx, Req, Resp, json_body, method_not_allowed, not_found, ok};
use crate::hal;
use crate::model::State;

/// `…/versions/{v}/deployed-versions/environment/{uuid}` (deployed = true) or
/// `…/released-versions/environment/{uuid}`: GET lists, POST records.
pub fn for_version(
    ctx: &Ctx,
    req: &Req,
    state: &mut State,
    method: &str,
    ids: (&str, &str, &str),
    deployed: bool,
) -> Resp {
    let (p, v, uuid) = ids;
    let (Some(_), Some(env)) = (state.version(p, v), state.environment(uuid).cloned()) else {
        return not_found();
    };
    match (method, deployed) {
        ("POST", true) => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let instance = body
                .get("applicationInstance")
                .or(body.get("target"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let record = state.record_deployment(p, v, &env, instance);
            Resp::hal(201, &hal::deployed_version(&ctx.base, state, &record, true))
                .location(format!("{}/deployed-versions/{}", ctx.base, record.uuid))
        }
        ("POST", false) => {
            if let Err(r) = json_body(req) {
                return r;
            }
            let (record, created) = state.record_release(p, v, &env.uuid);
            Resp::hal(
                if created { 201 } else { 200 },
                &hal::released_version(&ctx.base, state, &record, true),
            )
            .location(format!("{}/released-versions/{}", ctx.base, record.uuid))
        }
        ("GET", true) => {
            let list: Vec<Value> = state
                .deployed
                .iter()
                .filter(|d| d.pacticipant == p && d.version == v && d.environment_uuid == env.uuid)
                .map(|d| hal::deployed_version(&ctx.base, state, d, false))
                .collect();
            ok(
                json!({"_embedded": {"deployedVersions": list}, "_links": {"self": {
                "title": format!("Deployed versions for {p} version {v} in environment {}", env.display_name),
                "href": format!("{}/deployed-versions/environment/{uuid}", hal::version_url(&ctx.base, p, v))}}}),
            )
        }
        ("GET", false) => {
            let list: Vec<Value> = state
                .released
                .iter()
                .filter(|r| r.pacticipant == p && r.version == v && r.environment_uuid == env.uuid)
                .map(|r| hal::released_version(&ctx.base, state, r, false))
                .collect();
            ok(
                json!({"_embedded": {"releasedVersions": list}, "_links": {"self": {
                "href": format!("{}/released-versions/environment/{uuid}", hal::version_url(&ctx.base, p, v))}}}),
            )
        }
        _ => method_not_allowed(),
    }
}

fn unprocessable(field: &str, message: &str) -> Resp {
    Resp::hal(422, &json!({"errors": {field: [message]}}))
}

/// `/deployed-versions/{uuid}` and `/released-versions/{uuid}`.
pub fn route_record(ctx: &Ctx, req: &Req, state: &mut State, segs: &[&str]) -> Resp {
    let (kind, uuid) = match segs {
        [kind, uuid] => (*kind, *uuid),
        _ => return not_found(),
    };
    let deployed = kind == "deployed-versions";
    let exists = if deployed {
        state.deployed.iter().any(|d| d.uuid == uuid)
    } else {
        state.released.iter().any(|r| r.uuid == uuid)
    };
    if !exists {
        return not_found();
    }
    let render = |state: &State| -> Resp {
        if deployed {
            state
                .deployed
                .iter()
                .find(|d| d.uuid == uuid)
                .map_or_else(not_found, |d| {
                    ok(hal::deployed_version(&ctx.base, state, d, true))
                })
        } else {
            state
                .released
                .iter()
                .find(|r| r.uuid == uuid)
                .map_or_else(not_found, |r| {
                    ok(hal::released_version(&ctx.base, state, r, true))
                })
        }
    };
    match req.method.as_str() {
        "GET" => render(state),
        "PATCH" => {
            let body = match json_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let field = if deployed {
                "currentlyDeployed"
            } else {
                "currentlySupported"
            };
            match body.get(field) {
                // The broker refuses `true` whatever the record's state: a record is never
                // deployed (or supported) again, a new one is recorded instead.
                Some(Value::Bool(true)) => {
                    let msg = if deployed {
                        "The currentlyDeployed property cannot be set back to true. Please record a new deployment."
                    } else {
                        "The currentlySupported property cannot be set back to true. Please record a new release."
                    };
                    return unprocessable(field, msg);
                }
                Some(Value::Bool(false)) => {
                    if deployed {
                        state.undeploy(uuid);
                    } else {
                        state.end_support(uuid);
                    }
                }
                _ => {}
            }
            render(state)
        }
        _ => method_not_allowed(),
    }
}
