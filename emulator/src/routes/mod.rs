//! Request routing: a decoded request plus the state in, a response out.
//!
//! Routing is synchronous and runs under the state lock, so every route is a
//! plain function of `(&Ctx, &Req, &mut State)`; the async HTTP glue, auth,
//! faults and the request log live in `server`.

mod deployments;
mod environments;
mod matrix;
mod pacticipants;
mod pacts;

use serde_json::{Value, json};

use crate::hal;
use crate::model::{FieldErrors, State};

/// The broker's content type for API responses.
pub const HAL: &str = "application/hal+json;charset=utf-8";
/// The content type of the generic 404.
pub const JSON: &str = "application/json;charset=utf-8";

/// Per-request context.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Base URL for hrefs (scheme, host, path prefix; no trailing slash).
    pub base: String,
}

/// A decoded request, relative to the configured path prefix.
#[derive(Debug, Clone, Default)]
pub struct Req {
    /// HTTP method, upper case.
    pub method: String,
    /// Percent-decoded path segments after the prefix.
    pub segments: Vec<String>,
    /// Raw query string.
    pub query: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// A response before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Content type (empty = none).
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// A HAL JSON response.
    pub fn hal(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: HAL,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    /// Adds a `Location` header.
    pub fn location(mut self, href: String) -> Self {
        self.headers.push(("location", href));
        self
    }

    /// The body parsed as JSON (tests and logging).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// 200 with a HAL body.
pub fn ok(body: Value) -> Resp {
    Resp::hal(200, &body)
}

/// The generic 404 (`application/json;charset=utf-8`).
pub fn not_found() -> Resp {
    let body = json!({"error": "The requested document was not found on this server."});
    Resp {
        status: 404,
        content_type: JSON,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    }
}

/// 405 for a known resource and an unsupported method.
pub fn method_not_allowed() -> Resp {
    Resp {
        status: 405,
        content_type: "",
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// 400 with hash-form validation errors.
pub fn field_errors(errors: &FieldErrors) -> Resp {
    Resp::hal(400, &json!({ "errors": errors }))
}

/// 204 with no body.
pub fn no_content() -> Resp {
    Resp {
        status: 204,
        content_type: "",
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Checks the request content type (`application/json` for POST/PUT,
/// `application/merge-patch+json` for PATCH) and parses the body; an empty
/// body is `{}`. `Err` is the 415 or 400 response.
pub fn json_body(req: &Req) -> Result<Value, Resp> {
    let wanted = if req.method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let ct = req.content_type.as_deref().unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if req.body.iter().all(u8::is_ascii_whitespace) && media.is_empty() {
        return Ok(json!({}));
    }
    if media != wanted {
        return Err(Resp {
            status: 415,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
        });
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| Resp::hal(400, &json!({"error": e.to_string()})))
}

/// Routes one request.
pub fn dispatch(ctx: &Ctx, req: &Req, state: &mut State) -> Resp {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] if req.method == "GET" => ok(hal::index(&ctx.base)),
        [] => method_not_allowed(),
        ["environments", rest @ ..] => environments::route(ctx, req, state, rest),
        ["pacticipants", rest @ ..] => pacticipants::route(ctx, req, state, rest),
        ["deployed-versions", _] | ["released-versions", _] => {
            deployments::route_record(ctx, req, state, &segs)
        }
        ["contracts", "publish"] => pacts::publish(ctx, req, state),
        ["pacts", rest @ ..] => pacts::route(ctx, req, state, rest),
        ["matrix"] if req.method == "GET" => matrix::matrix(ctx, req, state),
        ["can-i-deploy"] if req.method == "GET" => matrix::can_i_deploy(ctx, req, state),
        _ => not_found(),
    }
}
