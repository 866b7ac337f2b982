//! The trigger endpoint: `POST /api/v1/environments/{name}/reconcile` and
//! `POST /api/v1/reconcile` (every environment of this host) run the git sync (when the agent
//! has `--git-sync`) and then a reconcile now, one that applies a `policy.sync: manual`
//! environment and does not wait out a gate backoff ([`crate::plan::plan_requested`]).
//!
//! Coalescing falls out of the work queue: a trigger registers a waiter for the next reconcile
//! of its environment that *starts* after it ([`Triggers`]) and queues the environment; the
//! queue merges what is queued, and a trigger that arrives while a reconcile runs gets the one
//! follow-up (the running one may have read an older desired set). Every waiter of a reconcile
//! gets its [`ReconcileOutcome`]. The main loop resolves a trigger's environment names
//! ([`Event::Triggered`]) after any desired-set reload the sync caused, so a manifest the sync
//! brought is found.
//!
//! `?wait=true` answers with the outcome and a matching status ([`TriggerOutcome::status`]);
//! without it, 202 Accepted. `?timeout=` bounds the wait (default 10m, 1s to 1h).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::trigger_auth::{GITEA_SIGNATURE_HEADER, Refusal, SIGNATURE_HEADER, TriggerAuth};
use super::{DesiredSet, Event, ReconcileOutcome, Shared};

/// The default of `?timeout=`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10 * 60);
/// The longest `?timeout=`.
pub const MAX_WAIT: Duration = Duration::from_secs(60 * 60);

/// What one trigger led to, for CI: the name in the JSON and the HTTP status of `?wait=true`.
/// Declared from the best to the worst: the answer for several environments is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerOutcome {
    /// The desired generation already ran when the reconcile started (an `auto` environment's
    /// change may have been deployed by the agent itself just before), or drift was healed: 200.
    UpToDate,
    /// A new generation was deployed and passed its smoke checks (a pending broker record
    /// included: the outbox retries it): 200.
    Deployed,
    /// `c2quay suspend` or `spec.suspend` holds the environment: 409.
    Suspended,
    /// The broker did not allow the release (or could not be asked); nothing changed: 409.
    GateBlocked,
    /// The manifest or its Compose files are invalid; nothing changed: 422.
    Invalid,
    /// The host refused the apply (address pools, disk, daemon); retried with backoff: 503.
    HostBlocked,
    /// The release failed (apply, readiness, smoke or verify) and the previous one runs again,
    /// or this generation failed before and waits for a new commit or `c2quay retry`: 502.
    RolledBack,
    /// Anything else (the rollback failed too, Docker or the state directory failed, the
    /// environment is not this agent's, the git sync failed): 500.
    Failed,
    /// No outcome within `?timeout=`; the reconcile goes on: 504.
    Timeout,
    /// The agent stopped before the reconcile ran: 503.
    Unavailable,
}

impl TriggerOutcome {
    /// The outcome of a reconcile that ended with `result` (its `lastResult`).
    pub fn of(result: &str) -> TriggerOutcome {
        match result {
            "deployed" | "record_failed" => TriggerOutcome::Deployed,
            "noop" | "up_to_date" | "healed" => TriggerOutcome::UpToDate,
            "suspended" => TriggerOutcome::Suspended,
            "gate_blocked" | "gate_error" | "waiting_for_gate" | "out_of_sync" => {
                TriggerOutcome::GateBlocked
            }
            "invalid" => TriggerOutcome::Invalid,
            "host_blocked" | "waiting_for_host" => TriggerOutcome::HostBlocked,
            "rolled_back" | "await_change" => TriggerOutcome::RolledBack,
            _ => TriggerOutcome::Failed,
        }
    }

    /// The HTTP status of `?wait=true`.
    pub fn status(self) -> StatusCode {
        match self {
            TriggerOutcome::UpToDate | TriggerOutcome::Deployed => StatusCode::OK,
            TriggerOutcome::Suspended | TriggerOutcome::GateBlocked => StatusCode::CONFLICT,
            TriggerOutcome::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            TriggerOutcome::HostBlocked | TriggerOutcome::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            TriggerOutcome::RolledBack => StatusCode::BAD_GATEWAY,
            TriggerOutcome::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            TriggerOutcome::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// How the main loop resolved a trigger's environment names.
enum Resolved {
    /// No such environment on this host.
    NotFound(String),
    /// The environments queued, each with the receiver of its reconcile's outcome.
    Queued(Vec<(String, oneshot::Receiver<ReconcileOutcome>)>),
}

/// A trigger the main loop has not resolved yet.
struct Ticket {
    /// One environment, or every one (`None`).
    name: Option<String>,
    reply: oneshot::Sender<Resolved>,
}

/// The triggers in flight: tickets the main loop resolves, and the waiters of each
/// environment's next reconcile.
#[derive(Default)]
pub struct Triggers {
    next: AtomicU64,
    tickets: Mutex<BTreeMap<u64, Ticket>>,
    waiting: Mutex<BTreeMap<String, Vec<oneshot::Sender<ReconcileOutcome>>>>,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers").finish_non_exhaustive()
    }
}

impl Triggers {
    fn ticket(&self, name: Option<String>) -> (u64, oneshot::Receiver<Resolved>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (reply, resolved) = oneshot::channel();
        lock(&self.tickets).insert(id, Ticket { name, reply });
        (id, resolved)
    }

    /// For the main loop ([`Event::Triggered`]): resolves ticket `id` against `desired`,
    /// registers a waiter per environment, and returns the environments to queue.
    pub fn resolve(&self, id: u64, desired: &DesiredSet) -> Vec<String> {
        let Some(ticket) = lock(&self.tickets).remove(&id) else {
            return Vec::new();
        };
        let names: Vec<String> = match ticket.name {
            Some(name) if desired.entries.contains_key(&name) => vec![name],
            Some(name) => {
                let _ = ticket.reply.send(Resolved::NotFound(name));
                return Vec::new();
            }
            None => desired.entries.keys().cloned().collect(),
        };
        let mut waiting = lock(&self.waiting);
        let receivers = (names.iter())
            .map(|name| {
                let (sender, receiver) = oneshot::channel();
                waiting.entry(name.clone()).or_default().push(sender);
                (name.clone(), receiver)
            })
            .collect();
        let _ = ticket.reply.send(Resolved::Queued(receivers));
        names
    }

    /// For the main loop, as a reconcile of `name` starts: its waiters, `None` when no trigger
    /// asked for it (then it is not a requested reconcile).
    pub fn start(&self, name: &str) -> Option<Vec<oneshot::Sender<ReconcileOutcome>>> {
        lock(&self.waiting).remove(name)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The trigger endpoint's configuration and its way into the main loop.
#[derive(Clone)]
pub struct Trigger {
    /// Who may call it.
    pub auth: TriggerAuth,
    /// The main loop's events.
    pub events: mpsc::UnboundedSender<Event>,
}

/// The query of a trigger request.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TriggerQuery {
    /// `true` (or `1`, or empty): answer with the outcome.
    pub wait: Option<String>,
    /// How long to wait for it (`30s`, `10m`); default [`DEFAULT_WAIT`], at most [`MAX_WAIT`].
    pub timeout: Option<String>,
}

impl TriggerQuery {
    fn parse(&self) -> Result<(bool, Duration), String> {
        let wait = match self.wait.as_deref() {
            None | Some("false" | "0") => false,
            Some("" | "true" | "1") => true,
            Some(other) => return Err(format!("wait={other}: expected true or false")),
        };
        let timeout = match self.timeout.as_deref() {
            None => DEFAULT_WAIT,
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| format!("timeout={text}: {e}"))
                .and_then(|d| {
                    (Duration::from_secs(1)..=MAX_WAIT)
                        .contains(&d)
                        .then_some(d)
                        .ok_or_else(|| format!("timeout={text}: from 1s to 1h"))
                })?,
        };
        Ok((wait, timeout))
    }
}

/// Answers one trigger request from `peer`: `name` is the environment (`None`: all of this
/// host's).
pub async fn handle(
    trigger: &Trigger,
    shared: &std::sync::Arc<Shared>,
    name: Option<String>,
    peer: std::net::SocketAddr,
    query: &TriggerQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let checked = trigger.auth.check(
        header(header::AUTHORIZATION.as_str()),
        header(SIGNATURE_HEADER),
        header(GITEA_SIGNATURE_HEADER),
        body,
    );
    match checked {
        Ok(()) => {}
        Err(Refusal::Off) => {
            let error = "the trigger endpoint is off: start the agent with \
                         --trigger-token-file or --trigger-hmac-secret-file";
            return (StatusCode::FORBIDDEN, axum::Json(json!({ "error": error }))).into_response();
        }
        Err(Refusal::Unauthorized) => {
            warn!(environment = ?name, %peer, "trigger refused: no valid token or signature");
            let error = "no valid credentials: send `Authorization: Bearer <token>` or an \
                         `X-Hub-Signature-256: sha256=<hex>` HMAC of the body";
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"c2quay\"")],
                axum::Json(json!({ "error": error })),
            )
                .into_response();
        }
    }
    let (wait, timeout) = match query.parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": error })),
            )
                .into_response();
        }
    };
    info!(environment = ?name, wait, %peer, "trigger accepted");
    if !wait && shared.git_sync.is_some() {
        // The sync may take minutes: accepted now, run in the background.
        let (trigger, shared) = (trigger.clone(), shared.clone());
        tokio::spawn(async move { queue(&trigger, &shared, name).await });
        return (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "accepted": true })),
        )
            .into_response();
    }
    let queued = match queue(trigger, shared, name.clone()).await {
        Ok(Resolved::Queued(queued)) => queued,
        Ok(Resolved::NotFound(name)) => {
            let error = format!("no environment {name} on this host");
            return (StatusCode::NOT_FOUND, axum::Json(json!({ "error": error }))).into_response();
        }
        Err(error) => {
            let outcome = TriggerOutcome::Failed;
            let body = json!({ "outcome": outcome, "error": error });
            return (outcome.status(), axum::Json(body)).into_response();
        }
    };
    if !wait {
        let names: Vec<&String> = queued.iter().map(|(name, _)| name).collect();
        let body = json!({ "accepted": true, "environments": names });
        return (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    }
    let waited = queued.into_iter().map(|(name, receiver)| async move {
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(outcome)) => answer(&name, &outcome),
            Ok(Err(_)) => failed(&name, TriggerOutcome::Unavailable, "the agent stopped"),
            Err(_) => failed(
                &name,
                TriggerOutcome::Timeout,
                &format!(
                    "no outcome within {}; the reconcile goes on: see /api/v1/environments/{name}",
                    humantime::format_duration(timeout)
                ),
            ),
        }
    });
    let answers = futures_util::future::join_all(waited).await;
    let worst =
        (answers.iter().map(|(outcome, _)| *outcome).max()).unwrap_or(TriggerOutcome::UpToDate);
    let body = match name {
        Some(_) if answers.len() == 1 => answers[0].1.clone(),
        _ => {
            let environments: Vec<_> = answers.into_iter().map(|(_, body)| body).collect();
            json!({ "outcome": worst, "environments": environments })
        }
    };
    (worst.status(), axum::Json(body)).into_response()
}

/// Runs the git sync when the agent has one, then hands the trigger to the main loop and
/// waits for its resolution. `Err`: why nothing was queued.
async fn queue(
    trigger: &Trigger,
    shared: &Shared,
    name: Option<String>,
) -> Result<Resolved, String> {
    if let Some(git) = &shared.git_sync {
        match git.sync_now().await {
            Some(answer) if answer.ok() => {}
            Some(answer) => {
                warn!(
                    result = answer.result.as_str(),
                    "trigger: the git sync failed; not reconciling"
                );
                return Err(format!(
                    "git sync {}: {}",
                    answer.result.as_str(),
                    answer.message
                ));
            }
            None => return Err("the git sync task stopped".into()),
        }
    }
    let (id, resolved) = shared.triggers.ticket(name);
    // After the sync's `DesiredChanged` (sent before `sync_now` returned): the main loop
    // resolves the names against the reloaded set.
    (trigger.events.send(Event::Triggered(id))).map_err(|_| "the agent is stopping".to_string())?;
    resolved
        .await
        .map_err(|_| "the agent is stopping".to_string())
}

/// The answer for one environment's outcome.
fn answer(name: &str, outcome: &ReconcileOutcome) -> (TriggerOutcome, serde_json::Value) {
    let trigger_outcome = TriggerOutcome::of(&outcome.result);
    let body = json!({
        "environment": name,
        "outcome": trigger_outcome,
        "result": outcome.result,
        "phase": outcome.phase,
        "generation": (!outcome.generation.is_empty()).then_some(&outcome.generation),
        "message": outcome.message,
    });
    (trigger_outcome, body)
}

fn failed(name: &str, outcome: TriggerOutcome, error: &str) -> (TriggerOutcome, serde_json::Value) {
    let body = json!({ "environment": name, "outcome": outcome, "error": error });
    (outcome, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_result_has_an_outcome_and_the_worst_decides() {
        assert_eq!(TriggerOutcome::of("deployed"), TriggerOutcome::Deployed);
        assert_eq!(
            TriggerOutcome::of("rolled_back"),
            TriggerOutcome::RolledBack
        );
        assert_eq!(
            TriggerOutcome::of("gate_blocked"),
            TriggerOutcome::GateBlocked
        );
        assert_eq!(
            TriggerOutcome::of("rollback_failed"),
            TriggerOutcome::Failed
        );
        assert_eq!(TriggerOutcome::of("noop"), TriggerOutcome::UpToDate);
        assert_eq!(TriggerOutcome::RolledBack.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(TriggerOutcome::GateBlocked.status(), StatusCode::CONFLICT);
        assert_eq!(TriggerOutcome::Deployed.status(), StatusCode::OK);
        let worst = [
            TriggerOutcome::Deployed,
            TriggerOutcome::RolledBack,
            TriggerOutcome::UpToDate,
        ];
        assert_eq!(worst.into_iter().max(), Some(TriggerOutcome::RolledBack));
    }

    #[test]
    fn wait_and_timeout_are_parsed_and_bounded() {
        let query = |wait: Option<&str>, timeout: Option<&str>| TriggerQuery {
            wait: wait.map(str::to_string),
            timeout: timeout.map(str::to_string),
        };
        assert_eq!(query(None, None).parse(), Ok((false, DEFAULT_WAIT)));
        assert_eq!(
            query(Some("true"), Some("30s")).parse(),
            Ok((true, Duration::from_secs(30)))
        );
        assert!(query(Some("yes"), None).parse().is_err());
        assert!(query(Some("true"), Some("2h")).parse().is_err());
        assert!(query(Some("true"), Some("0s")).parse().is_err());
    }

    #[test]
    fn a_trigger_waits_for_the_next_reconcile_of_its_environment_and_several_coalesce() {
        let triggers = Triggers::default();
        let mut desired = DesiredSet::default();
        desired.entries.insert(
            "shop".into(),
            super::super::DesiredEnv::Invalid {
                message: "x".into(),
                file: "/d/shop.yaml".into(),
            },
        );
        let (a, mut resolved_a) = triggers.ticket(Some("shop".into()));
        let (b, mut resolved_b) = triggers.ticket(Some("shop".into()));
        let (missing, mut resolved_missing) = triggers.ticket(Some("nope".into()));
        assert_eq!(triggers.resolve(a, &desired), ["shop"]);
        assert_eq!(triggers.resolve(b, &desired), ["shop"]);
        assert!(triggers.resolve(missing, &desired).is_empty());
        assert!(matches!(resolved_missing.try_recv(), Ok(Resolved::NotFound(n)) if n == "nope"));
        let Ok(Resolved::Queued(mut a)) = resolved_a.try_recv() else {
            panic!()
        };
        let Ok(Resolved::Queued(mut b)) = resolved_b.try_recv() else {
            panic!()
        };
        // One reconcile starts and answers both.
        let waiters = triggers.start("shop").expect("requested");
        assert_eq!(waiters.len(), 2);
        assert!(
            triggers.start("shop").is_none(),
            "the next one is not requested"
        );
        let outcome = ReconcileOutcome {
            phase: "Ready".into(),
            result: "deployed".into(),
            requeue_after: None,
            message: "deployed".into(),
            generation: "g".into(),
        };
        for waiter in waiters {
            waiter.send(outcome.clone()).unwrap();
        }
        assert_eq!(a.remove(0).1.try_recv().unwrap().result, "deployed");
        assert_eq!(b.remove(0).1.try_recv().unwrap().result, "deployed");
    }
}
