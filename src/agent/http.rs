//! The agent's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, `/api/v1/environments[/{name}]`,
//! and the trigger endpoint (`POST /api/v1/environments/{name}/reconcile`,
//! `POST /api/v1/reconcile`: [`super::trigger`]).
//!
//! Loopback by default. Responses carry no secrets: status files never hold any.
//!
//! The listener is bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed at
//! accept), and a connection that has not received a response within [`RESPONSE_DEADLINE`] of
//! being accepted or of its previous response is closed (slowloris, idle keep-alive, a client
//! that stops reading). Oversized request lines and header sets are refused by hyper's own
//! limits (about 400 KiB of buffered head, 100 headers); only the trigger endpoint reads a
//! body (at most [`MAX_TRIGGER_BODY`], for its signature), and while it waits for the outcome it
//! asked for (`?wait=true`, bounded by its own timeout) it holds its connection's deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::atomic::AtomicU8;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use super::trigger::{self, Trigger, TriggerQuery};
use super::{Error, Shared};
use crate::docker::Compose;
use crate::pipeline::{Brokers, Context};
use crate::smoke::Smoke;

/// Most connections served at once; a connection beyond this is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection may go without receiving a response (counted from its accept, then from
/// its previous response) before it is closed.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request body the trigger endpoint reads (a forge's push event fits).
pub const MAX_TRIGGER_BODY: usize = 1 << 20;

struct AppState<C, B, S> {
    ctx: Arc<Context<C, B, S>>,
    shared: Arc<Shared>,
    trigger: Trigger,
}

/// Binds `addr` and serves in the background. Binding is done before returning, so a taken
/// port is an error at start-up, not a silent failure.
pub async fn serve<C, B, S>(
    addr: SocketAddr,
    ctx: Arc<Context<C, B, S>>,
    shared: Arc<Shared>,
    trigger: Trigger,
) -> Result<(), Error>
where
    C: Compose + 'static,
    B: Brokers + 'static,
    S: Smoke + 'static,
{
    if !addr.ip().is_loopback() {
        warn!(%addr, "the HTTP endpoints listen beyond loopback; status and metrics are readable by anyone who can reach this address");
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let listener = BoundedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    let state = Arc::new(AppState {
        ctx,
        shared,
        trigger,
    });
    let triggers = Router::new()
        .route("/api/v1/reconcile", post(trigger_all::<C, B, S>))
        .route(
            "/api/v1/environments/{name}/reconcile",
            post(trigger_one::<C, B, S>),
        )
        .layer(DefaultBodyLimit::max(MAX_TRIGGER_BODY));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<C, B, S>))
        .route("/metrics", get(metrics::<C, B, S>))
        .route("/api/v1/environments", get(environments::<C, B, S>))
        .route("/api/v1/environments/{name}", get(environment::<C, B, S>))
        .merge(triggers)
        .with_state(state);
    info!(%addr, "serving /metrics, /healthz, /readyz and /api/v1/environments");
    let app = app.into_make_service_with_connect_info::<Peer>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(error = %error, "HTTP server stopped");
        }
    });
    Ok(())
}

async fn trigger_one<C, B, S>(
    State(state): State<Arc<AppState<C, B, S>>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
    Query(query): Query<TriggerQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _held = peer.hold();
    trigger::handle(
        &state.trigger,
        &state.shared,
        Some(name),
        peer.addr,
        &query,
        &headers,
        &body,
    )
    .await
}

async fn trigger_all<C, B, S>(
    State(state): State<Arc<AppState<C, B, S>>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(query): Query<TriggerQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _held = peer.hold();
    let (trigger, shared) = (&state.trigger, &state.shared);
    trigger::handle(trigger, shared, None, peer.addr, &query, &headers, &body).await
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
        // Not a name an environment can have (`..`, `a/b`, ...): nothing is read.
        Err(error) if error.kind() == "invalid" => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": error.to_string()})),
        )
            .into_response(),
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

/// A TCP listener that serves at most [`MAX_CONNECTIONS`] connections at once and wraps each in
/// a [`DeadlineIo`].
struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

/// One connection's peer, as handlers see it: its address, and the switch that holds its
/// deadline while a handler works on a response it promised ([`Peer::hold`]).
#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    held: Arc<AtomicU8>,
}

/// [`DeadlineIo::held`]: no handler holds the deadline.
const FREE: u8 = 0;
/// A handler holds it: it moves on while it is held.
const HELD: u8 = 1;
/// The handler let it go: it starts again from now, for the response.
const RELEASED: u8 = 2;

impl Peer {
    /// Holds the connection's deadline until the returned guard is dropped: the request was read
    /// in time, and the handler bounds its own wait.
    fn hold(&self) -> HoldGuard {
        self.held.store(HELD, Ordering::SeqCst);
        HoldGuard(self.held.clone())
    }
}

/// Releases a [`Peer::hold`] when dropped.
struct HoldGuard(Arc<AtomicU8>);

impl Drop for HoldGuard {
    fn drop(&mut self) {
        self.0.store(RELEASED, Ordering::SeqCst);
    }
}

impl Connected<axum::serve::IncomingStream<'_, BoundedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, BoundedListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = DeadlineIo;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays up.
                    warn!(error = %error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let held = Arc::new(AtomicU8::new(FREE));
                    let io = DeadlineIo::new(stream, permit, held.clone());
                    return (io, Peer { addr: peer, held });
                }
                Err(_) => {
                    debug!(%peer, limit = MAX_CONNECTIONS, "too many HTTP connections; closing the new one");
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        let addr = self.inner.local_addr()?;
        Ok(Peer {
            addr,
            held: Arc::default(),
        })
    }
}

/// One accepted connection: holds its slot of the connection limit and fails reads and writes
/// once [`RESPONSE_DEADLINE`] passed without a response byte written.
struct DeadlineIo {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    /// Whether a handler holds the deadline ([`Peer::hold`]): [`FREE`], [`HELD`], [`RELEASED`].
    held: Arc<AtomicU8>,
    _slot: OwnedSemaphorePermit,
}

impl DeadlineIo {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, held: Arc<AtomicU8>) -> DeadlineIo {
        DeadlineIo {
            stream,
            deadline: Box::pin(tokio::time::sleep(RESPONSE_DEADLINE)),
            held,
            _slot: slot,
        }
    }

    /// For an operation that is pending: an error once the deadline passed, else pending (the
    /// deadline's timer wakes the task when it fires). A held deadline moves on instead.
    fn pending_or_expired<T>(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<T>> {
        self.refresh_hold();
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no response within the connection deadline",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A held deadline that passed starts again; a released one starts again once.
    fn refresh_hold(&mut self) {
        let restart = match self.held.load(Ordering::SeqCst) {
            HELD => self.deadline.is_elapsed(),
            RELEASED => (self.held)
                .compare_exchange(RELEASED, FREE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok(),
            _ => false,
        };
        if restart {
            self.deadline
                .as_mut()
                .reset(Instant::now() + RESPONSE_DEADLINE);
        }
    }

    /// After a write: progress pushes the deadline back; pending waits for it.
    fn after_write(
        &mut self,
        written: Poll<io::Result<usize>>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.deadline
                    .as_mut()
                    .reset(Instant::now() + RESPONSE_DEADLINE);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.pending_or_expired(cx),
            ready => ready,
        }
    }
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.refresh_hold();
        // Checked before reading too: a client trickling bytes is always "ready".
        if this.deadline.is_elapsed() {
            return this.pending_or_expired(cx);
        }
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(written, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after_write(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
