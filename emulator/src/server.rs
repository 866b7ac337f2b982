//! The HTTP glue: one axum fallback handler that logs the request, applies
//! an injected fault, checks authentication, then hands a decoded [`Req`] to
//! [`routes::dispatch`] under the state lock. `/_emulator/...` is the admin
//! API for tests and demos (no auth, no faults, not logged): `requests`,
//! `faults`, `chaos` (GET/PUT/DELETE a [`Chaos`]), `state`, `seed`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::auth::{self, Decision};
use crate::faults::{Chaos, FaultKind, FaultSpec, Faults, RequestRecord};
use crate::model::State;
use crate::routes::{self, Ctx, Req, Resp};
use crate::seed::Seed;

/// Everything the handler shares.
#[derive(Debug)]
pub struct Shared {
    /// Broker state.
    pub state: Mutex<State>,
    /// Pending faults.
    pub faults: Mutex<Faults>,
    /// Request log.
    pub log: Mutex<Vec<RequestRecord>>,
    /// Authentication settings.
    pub auth: auth::AuthConfig,
    /// Path prefix (`""` or `/broker`).
    pub prefix: String,
    /// Fixed base URL, if configured.
    pub base_url: Option<String>,
}

/// Locks a mutex, recovering from poisoning (a panicking test thread must not
/// wedge the emulator).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn into_response(r: Resp) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if !r.content_type.is_empty() {
        builder = builder.header("content-type", r.content_type);
    }
    builder = builder
        .header("vary", "Accept")
        .header("x-pact-broker-version", "2.120.0 (c2quay-broker-emulator)");
    for (k, v) in r.headers {
        builder = builder.header(k, v);
    }
    builder
        .body(Body::from(r.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    if let Some(b) = &shared.base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or_else(|| "localhost".into());
    let proto = header(headers, "x-forwarded-proto").unwrap_or_else(|| "http".into());
    format!("{proto}://{host}{}", shared.prefix)
}

/// The axum handler for every request.
pub async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    request: Request<Body>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let raw_path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let relative = raw_path
        .strip_prefix(shared.prefix.as_str())
        .filter(|r| r.is_empty() || r.starts_with('/'));
    let admin = raw_path
        .strip_prefix("/_emulator")
        .or_else(|| relative.and_then(|r| r.strip_prefix("/_emulator")));
    if let Some(admin_path) = admin {
        return into_response(admin_route(
            &shared,
            parts.method.as_str(),
            admin_path,
            &body,
        ));
    }

    let authorization = header(&parts.headers, "authorization");
    let mut headers = std::collections::BTreeMap::new();
    for name in ["accept", "content-type", "user-agent"] {
        if let Some(v) = header(&parts.headers, name) {
            headers.insert(name.to_string(), v);
        }
    }
    let seq = {
        let mut log = lock(&shared.log);
        let seq = log.len() as u64 + 1;
        log.push(RequestRecord {
            seq,
            method: parts.method.to_string(),
            path: raw_path.clone(),
            query: query.clone(),
            headers,
            authorization: authorization.is_some(),
            auth_scheme: authorization
                .as_deref()
                .and_then(|a| a.split(' ').next())
                .map(str::to_string),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: None,
            fault: None,
        });
        seq
    };
    let set_log = |status: Option<u16>, fault: Option<&str>| {
        let mut log = lock(&shared.log);
        if let Some(r) = log.iter_mut().find(|r| r.seq == seq) {
            r.status = status;
            if let Some(f) = fault {
                r.fault = Some(f.to_string());
            }
        }
    };

    let fault = lock(&shared.faults).take(relative.unwrap_or(&raw_path));
    match fault {
        Some(FaultKind::Drop) => {
            set_log(None, Some("drop"));
            // Unwinding out of the connection task makes hyper drop the socket
            // without writing a response; `resume_unwind` skips the panic hook.
            std::panic::resume_unwind(Box::new("c2quay-broker-emulator: injected connection drop"));
        }
        Some(FaultKind::Unavailable) => {
            set_log(Some(503), Some("unavailable"));
            let body = json!({"error": "Service Unavailable (injected by c2quay-broker-emulator)"});
            return into_response(Resp::hal(503, &body));
        }
        Some(FaultKind::MalformedJson) => {
            set_log(Some(200), Some("malformed_json"));
            let r = Resp {
                status: 200,
                content_type: routes::HAL,
                headers: Vec::new(),
                body: b"{\"_links\": {\"self\": ".to_vec(),
            };
            return into_response(r);
        }
        Some(kind @ FaultKind::Hang { .. }) => {
            set_log(None, Some("hang"));
            if let Some(d) = kind.hang() {
                tokio::time::sleep(d).await;
            }
        }
        None => {}
    }

    let resp = match auth::check(
        &shared.auth,
        parts.method.as_str(),
        authorization.as_deref(),
    ) {
        Decision::Allow => match relative {
            Some(rel) => {
                let segments = rel
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        String::from_utf8_lossy(&urlencoding::decode_binary(s.as_bytes()))
                            .into_owned()
                    })
                    .collect();
                let req = Req {
                    method: parts.method.to_string(),
                    segments,
                    query,
                    content_type: header(&parts.headers, "content-type"),
                    body,
                };
                let ctx = Ctx {
                    base: base_url(&shared, &parts.headers),
                };
                routes::dispatch(&ctx, &req, &mut lock(&shared.state))
            }
            None => routes::not_found(),
        },
        Decision::Unauthorized => Resp {
            status: 401,
            content_type: "text/plain",
            headers: vec![("www-authenticate", shared.auth.challenge().to_string())],
            body: Vec::new(),
        },
        Decision::BadScheme => Resp {
            status: 400,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
        },
    };
    set_log(Some(resp.status), None);
    into_response(resp)
}

fn admin_json(status: u16, v: &Value) -> Resp {
    Resp {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body: v.to_string().into_bytes(),
    }
}

/// A JSON dump of the state (deployments incl. undeployed, releases, environments, versions, pacts, verifications).
pub fn state_json(state: &State) -> Value {
    let env_name = |uuid: &str| state.environment(uuid).map(|e| e.name.clone());
    json!({
        "environments": state.environments,
        "deployments": state.deployed,
        "releases": state.released.iter().map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["environment_name"] = json!(env_name(&r.environment_uuid));
            v
        }).collect::<Vec<_>>(),
        "pacticipants": state.pacticipants,
        "versions": state.versions,
        "pacts": state.pacts,
        "verifications": state.verifications,
    })
}

fn admin_route(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Resp {
    match (method, path.trim_end_matches('/')) {
        ("GET", "/requests") => admin_json(200, &json!(*lock(&shared.log))),
        ("DELETE", "/requests") => {
            lock(&shared.log).clear();
            routes::no_content()
        }
        ("GET", "/faults") => admin_json(200, &json!(lock(&shared.faults).pending())),
        ("POST", "/faults") => match serde_json::from_slice::<FaultSpec>(body) {
            Ok(spec) => {
                lock(&shared.faults).push(spec.clone());
                admin_json(201, &json!(spec))
            }
            Err(e) => admin_json(400, &json!({"error": format!("invalid fault spec: {e}")})),
        },
        ("DELETE", "/faults") => {
            lock(&shared.faults).clear();
            routes::no_content()
        }
        ("GET", "/chaos") => admin_json(200, &json!(lock(&shared.faults).chaos())),
        ("PUT", "/chaos") => match serde_json::from_slice::<Chaos>(body) {
            Ok(chaos) => {
                lock(&shared.faults).set_chaos(Some(chaos.clone()));
                admin_json(200, &json!(chaos))
            }
            Err(e) => admin_json(400, &json!({"error": format!("invalid chaos: {e}")})),
        },
        ("DELETE", "/chaos") => {
            lock(&shared.faults).set_chaos(None);
            routes::no_content()
        }
        ("GET", "/state") => admin_json(200, &state_json(&lock(&shared.state))),
        ("POST", "/seed") => {
            let text = String::from_utf8_lossy(body);
            match Seed::parse(&text, "request body").and_then(|s| s.apply(&mut lock(&shared.state)))
            {
                Ok(()) => routes::no_content(),
                Err(e) => admin_json(400, &json!({"error": e.to_string()})),
            }
        }
        _ => routes::not_found(),
    }
}
