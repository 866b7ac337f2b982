//! `GET /matrix` (array-form validation errors, 100 rows unless `limit` says otherwise) and
//! `GET /can-i-deploy` (hash-form validation errors, one pacticipant, cvpv for environments,
//! no row limit).

use serde_json::json;

use super::{Ctx, Req, Resp, field_errors, ok};
use crate::model::{FieldErrors, State};
use crate::{hal, matrix as decide, query};

/// `GET /matrix`.
pub fn matrix(ctx: &Ctx, req: &Req, state: &mut State) -> Resp {
    let q = match query::parse_matrix(req.query.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(errors) => return Resp::hal(400, &json!({ "errors": errors })),
    };
    match decide::evaluate(state, &q) {
        Ok(result) => ok(hal::matrix(&ctx.base, state, &result)),
        Err(errors) => Resp::hal(400, &json!({ "errors": errors })),
    }
}

/// `GET /can-i-deploy`.
pub fn can_i_deploy(ctx: &Ctx, req: &Req, state: &mut State) -> Resp {
    let q = match query::parse_can_i_deploy(req.query.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(errors) => return field_errors(&errors),
    };
    let mut errors = FieldErrors::new();
    if let Some(p) = q.selectors.first().and_then(|s| s.pacticipant.as_ref()) {
        if state.pacticipant(p).is_none() {
            errors
                .entry("pacticipant".into())
                .or_default()
                .push("does not match an existing pacticipant".into());
        }
    }
    if let Some(e) = &q.environment {
        if state.environment_named(e).is_none() {
            errors
                .entry("environment".into())
                .or_default()
                .push(format!("with name '{e}' does not exist"));
        }
    }
    if !errors.is_empty() {
        return field_errors(&errors);
    }
    match decide::evaluate(state, &q) {
        Ok(result) => ok(hal::matrix(&ctx.base, state, &result)),
        Err(messages) => {
            errors.insert(String::new(), messages);
            field_errors(&errors)
        }
    }
}
