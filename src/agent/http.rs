//! The agent's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/api/v1/environments[/{name}]`.
//!
//! Loopback by default. Responses carry no secrets: status files never hold any.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::{info, warn};

use super::{Error, Shared};
use crate::compose::Compose;
use crate::pipeline::{Brokers, Context};
use crate::smoke::Smoke;

struct AppState<C, B, S> {
    ctx: Arc<Context<C, B, S>>,
    shared: Arc<Shared>,
}

/// Binds `addr` and serves in the background. Binding is done before returning, so a taken
/// port is an error at start-up, not a silent failure.
pub async fn serve<C, B, S>(
    addr: SocketAddr,
    ctx: Arc<Context<C, B, S>>,
    shared: Arc<Shared>,
) -> Result<(), Error>
where
    C: Compose + 'static,
    B: Brokers + 'static,
    S: Smoke + 'static,
{
    if !addr.ip().is_loopback() {
        warn!(%addr, "the HTTP endpoints listen beyond loopback; status and metrics are readable by anyone who can reach this address");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let state = Arc::new(AppState { ctx, shared });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<C, B, S>))
        .route("/metrics", get(metrics::<C, B, S>))
        .route("/api/v1/environments", get(environments::<C, B, S>))
        .route("/api/v1/environments/{name}", get(environment::<C, B, S>))
        .with_state(state);
    info!(%addr, "serving /metrics, /healthz, /readyz and /api/v1/environments");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(error = %error, "HTTP server stopped");
        }
    });
    Ok(())
}

async fn readyz<C, B, S>(State(state): State<Arc<AppState<C, B, S>>>) -> Response {
    let scanned = state.shared.scanned.load(Ordering::SeqCst);
    let docker = state.shared.docker_ok.load(Ordering::SeqCst);
    if scanned && docker {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = match (scanned, docker) {
            (false, _) => "first scan not done",
            (true, false) => "docker not reachable",
            _ => "",
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response()
    }
}

async fn metrics<C, B, S>(State(state): State<Arc<AppState<C, B, S>>>) -> Response {
    match &state.ctx.metrics {
        Some(metrics) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are disabled\n").into_response(),
    }
}

async fn environments<C, B, S>(State(state): State<Arc<AppState<C, B, S>>>) -> Response {
    let (statuses, errors) = state.ctx.state.list_statuses();
    let errors: Vec<String> = errors
        .iter()
        .map(|e| crate::pipeline::error_chain(e))
        .collect();
    axum::Json(serde_json::json!({ "environments": statuses, "errors": errors })).into_response()
}

async fn environment<C, B, S>(
    State(state): State<Arc<AppState<C, B, S>>>,
    Path(name): Path<String>,
) -> Response {
    match state.ctx.state.read_status(&name) {
        Ok(Some(status)) => axum::Json(status).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": format!("no environment {name}")})),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": crate::pipeline::error_chain(&error)})),
        )
            .into_response(),
    }
}
