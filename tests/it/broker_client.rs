//! The broker client against tiny scripted axum servers on 127.0.0.1: retries, timeouts,
//! error mapping, auth and the trusted origins, fan-out order, HAL link following and caches.
//! `broker_client/gate.rs`: the per-service relation, the all-or-nothing row limit and relative
//! hrefs; `broker_client/proxy.rs`: a broker whose links carry its public base URL (issue 13).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use c2quay::broker::{
    Auth, Broker, Candidate, Config, GateMode, HttpBroker, RELATION_CAN_I_DEPLOY, RequestObserver,
    Verdict,
};
use c2quay::secret::Secret;

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// What the test server answers.
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: body.into(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// The script gets the request, how many earlier requests had the same path, and the base URL.
type Script = Arc<dyn Fn(&Seen, usize, &str) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Server {
    script: Script,
    base: String,
    log: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Server {
    fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.log().iter().filter(|s| s.path == path).count()
    }
}

async fn handle(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    };
    let reply = {
        let mut log = server.log.lock().unwrap();
        let n = log.iter().filter(|s| s.path == seen.path).count();
        log.push(seen.clone());
        (server.script)(&seen, n, &server.base)
    };
    let now = server.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    server.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(reply.delay).await;
    server.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        [("content-type", "application/hal+json;charset=utf-8")],
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Starts a scripted server on 127.0.0.1:0; its base URL carries `prefix` (e.g. "/broker/").
async fn serve(
    prefix: &str,
    script: impl Fn(&Seen, usize, &str) -> Reply + Send + Sync + 'static,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}{prefix}", listener.local_addr().unwrap());
    let server = Server {
        script: Arc::new(script),
        base,
        log: Arc::default(),
        in_flight: Arc::default(),
        max_in_flight: Arc::default(),
    };
    let app = Router::new().fallback(handle).with_state(server.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    server
}

/// A server whose index (`GET` of the base path) has no can-i-deploy relation, so a
/// per-service gate asks `<base>/can-i-deploy`; every other request goes to `script`.
async fn gate_server(
    prefix: &str,
    script: impl Fn(&Seen, usize, &str) -> Reply + Send + Sync + 'static,
) -> Server {
    serve(prefix, move |seen, n, base| {
        if seen.method == "GET" && seen.path == path_prefix(base) {
            Reply::json(200, index_body(base))
        } else {
            script(seen, n, base)
        }
    })
    .await
}

/// The can-i-deploy requests a server saw.
fn gates(server: &Server) -> Vec<Seen> {
    server
        .log()
        .into_iter()
        .filter(|s| s.path.ends_with("/can-i-deploy"))
        .collect()
}

fn config(server: &Server) -> Config {
    let mut config = Config::new(server.base.clone());
    config.retry_base_delay = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(5);
    config
}

fn candidate(p: &str, v: &str) -> Candidate {
    Candidate {
        pacticipant: p.into(),
        version: v.into(),
    }
}

fn matrix_body(deployable: &str) -> String {
    format!(
        r#"{{"summary":{{"deployable":{deployable},"reason":"reason {deployable}","success":1,"failed":0,"unknown":0}},"matrix":[]}}"#
    )
}

fn index_body(base: &str) -> String {
    format!(
        r#"{{"_links":{{"self":{{"href":"{base}"}},
        "pb:pacticipant-version":{{"href":"{base}pacticipants/{{pacticipant}}/versions/{{version}}","templated":true}},
        "pb:environments":{{"href":"{base}environments"}}}}}}"#
    )
}

fn version_body(base: &str, p: &str, v: &str) -> String {
    format!(
        r#"{{"number":"{v}","_links":{{"pb:record-deployment":[
        {{"name":"production","href":"{base}pacticipants/{p}/versions/{v}/deployed-versions/environment/uuid-prod"}},
        {{"name":"test","href":"{base}pacticipants/{p}/versions/{v}/deployed-versions/environment/uuid-test"}}]}}}}"#
    )
}

async fn gate_one(broker: &HttpBroker) -> c2quay::broker::Result<Verdict> {
    let answers = broker
        .can_i_deploy("test", &[candidate("Foo", "1")], GateMode::PerService)
        .await?;
    Ok(answers[0].verdict)
}

#[tokio::test]
async fn a_503_is_retried_then_the_answer_is_used() {
    let server = gate_server("/", |_, n, _| {
        if n < 2 {
            Reply::json(503, "{}")
        } else {
            Reply::json(200, matrix_body("true"))
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    assert_eq!(gate_one(&broker).await.unwrap(), Verdict::Deployable);
    assert_eq!(server.count("/can-i-deploy"), 3);
    let stats = broker.stats();
    assert_eq!(stats.count(RELATION_CAN_I_DEPLOY, "503"), 2);
    assert_eq!(stats.count(RELATION_CAN_I_DEPLOY, "200"), 1);
    let query = gates(&server)[0].query.clone().unwrap();
    assert_eq!(query, "pacticipant=Foo&version=1&environment=test");
}

#[tokio::test]
async fn gives_up_after_the_attempt_bound_with_a_clear_error() {
    let server = gate_server("/", |_, _, _| Reply::json(503, "upstream down")).await;
    let mut config = config(&server);
    config.max_attempts = 3;
    let broker = HttpBroker::new(config).unwrap();
    let error = gate_one(&broker).await.unwrap_err();
    assert_eq!(server.count("/can-i-deploy"), 3);
    assert_eq!(error.kind(), "status_5xx");
    assert!(error.is_transient());
    let message = error.to_string();
    assert!(
        message.contains("/can-i-deploy") && message.contains("503"),
        "{message}"
    );
    assert!(
        !message.contains("pacticipant="),
        "query leaked into {message}"
    );
    // A broker whose index cannot be read cannot be asked either.
    let down = serve("/", |_, _, _| Reply::json(503, "upstream down")).await;
    let mut config = self::config(&down);
    config.max_attempts = 2;
    let error = gate_one(&HttpBroker::new(config).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "status_5xx");
    assert!(error.to_string().contains("index"), "{error}");
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let server = gate_server("/", |seen, _, _| {
        match seen.query.as_deref().unwrap_or("") {
            q if q.contains("Nope") => Reply::json(
                400,
                r#"{"errors":{"pacticipant":["does not match an existing pacticipant"]}}"#,
            ),
            q if q.contains("Locked") => Reply::json(401, ""),
            _ => Reply::json(
                404,
                r#"{"error":"The requested document was not found on this server."}"#,
            ),
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();

    let error = broker
        .can_i_deploy("staging", &[candidate("Nope", "3")], GateMode::PerService)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "bad_request");
    assert!(!error.is_transient());
    let message = error.to_string();
    for needle in [
        "Nope 3",
        "environment staging",
        "/can-i-deploy",
        "pacticipant does not match an existing pacticipant",
    ] {
        assert!(message.contains(needle), "{needle:?} missing in {message}");
    }

    let error = broker
        .can_i_deploy("staging", &[candidate("Locked", "1")], GateMode::PerService)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "unauthorized");

    let error = broker
        .can_i_deploy("staging", &[candidate("Gone", "1")], GateMode::PerService)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "not_found");
    assert_eq!(
        server.count("/can-i-deploy"),
        3,
        "one request per call, no retry"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = gate_server("/", |_, n, _| {
        if n == 0 {
            Reply::json(429, "{}").header("retry-after", "1")
        } else {
            Reply::json(200, matrix_body("null"))
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let started = Instant::now();
    assert_eq!(gate_one(&broker).await.unwrap(), Verdict::Unknown);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    assert_eq!(broker.stats().count(RELATION_CAN_I_DEPLOY, "429"), 1);
}

#[tokio::test]
async fn a_hung_broker_does_not_hang_the_client() {
    let server = gate_server("/", |_, _, _| {
        Reply::json(200, matrix_body("true")).after(Duration::from_secs(60))
    })
    .await;
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(300);
    config.max_attempts = 2;
    let broker = HttpBroker::new(config).unwrap();
    let started = Instant::now();
    let error = gate_one(&broker).await.unwrap_err();
    let elapsed = started.elapsed();
    // 2 attempts x 300 ms + a few ms of backoff; the bound is generous on purpose.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(error.kind(), "timeout", "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_eq!(broker.stats().count(RELATION_CAN_I_DEPLOY, "error"), 2);
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = Config::new(format!("http://{address}/"));
    config.max_attempts = 2;
    config.retry_base_delay = Duration::from_millis(1);
    let broker = HttpBroker::new(config).unwrap();
    let error = gate_one(&broker).await.unwrap_err();
    assert_eq!(error.kind(), "connect");
    assert!(error.is_transient());
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );
}

#[tokio::test]
async fn malformed_json_is_an_error() {
    let server = gate_server("/", |_, _, _| Reply::json(200, "<html>proxy error</html>")).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let error = gate_one(&broker).await.unwrap_err();
    assert_eq!(error.kind(), "malformed");
    assert!(error.to_string().contains("/can-i-deploy"), "{error}");
    assert_eq!(server.count("/can-i-deploy"), 1);
    // A proxy page instead of the index.
    let proxy = serve("/", |_, _, _| Reply::json(200, "<html>proxy error</html>")).await;
    let error = gate_one(&HttpBroker::new(config(&proxy)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "malformed");
    assert!(error.to_string().contains("index"), "{error}");
}

#[tokio::test]
async fn basic_and_bearer_credentials_are_sent() {
    let server = gate_server("/", |_, _, _| Reply::json(200, matrix_body("true"))).await;
    let mut basic = config(&server);
    basic.auth = Auth::Basic {
        username: "alice".into(),
        password: Secret::new("s3cret"),
    };
    gate_one(&HttpBroker::new(basic).unwrap()).await.unwrap();
    let mut bearer = config(&server);
    bearer.auth = Auth::Bearer(Secret::new("tok123"));
    gate_one(&HttpBroker::new(bearer).unwrap()).await.unwrap();
    gate_one(&HttpBroker::new(config(&server)).unwrap())
        .await
        .unwrap();
    let auth: Vec<Option<String>> = server.log().into_iter().map(|s| s.authorization).collect();
    let basic = Some("Basic YWxpY2U6czNjcmV0".to_string());
    let bearer = Some("Bearer tok123".to_string());
    // Each client reads the index, then asks can-i-deploy.
    assert_eq!(
        auth,
        [basic.clone(), basic, bearer.clone(), bearer, None, None]
    );
}

/// A broker on another origin that serves versions and takes records; `home` links to it.
async fn foreign_broker() -> Server {
    serve("/", |seen, _, base| {
        let mut parts = seen.path.trim_start_matches('/').split('/');
        let (p, v) = (parts.nth(1).unwrap_or(""), parts.nth(1).unwrap_or(""));
        if seen.method == "GET" {
            Reply::json(200, version_body(base, p, v))
        } else {
            Reply::json(201, "{}")
        }
    })
    .await
}

/// A home broker whose index says `self` is `advertised` and links versions to `versions_base`.
async fn home_broker(advertised: Option<String>, versions_base: String) -> Server {
    serve("/", move |_, _, base| {
        let advertised = advertised.clone().unwrap_or_else(|| base.to_string());
        Reply::json(
            200,
            format!(
                r#"{{"_links":{{"self":{{"href":"{advertised}"}},"pb:pacticipant-version":{{"href":"{versions_base}pacticipants/{{pacticipant}}/versions/{{version}}","templated":true}}}}}}"#
            ),
        )
    })
    .await
}

#[tokio::test]
async fn credentials_never_follow_a_link_to_an_origin_nobody_trusted() {
    let foreign = foreign_broker().await;
    let home = home_broker(None, foreign.base.clone()).await;
    let mut config = config(&home);
    config.auth = Auth::Bearer(Secret::new("tok-home-only"));
    let broker = HttpBroker::new(config).unwrap();
    let error = broker
        .record_deployment("test", &candidate("Foo", "1"), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "untrusted_origin", "{error}");
    assert!(!error.is_transient());
    let foreign_origin = foreign.base.trim_end_matches('/');
    let home_origin = home.base.trim_end_matches('/');
    let message = error.to_string();
    for needle in [
        format!(
            "refused to send the broker credentials to {foreign_origin} for pb:pacticipant-version"
        ),
        format!("spec.broker.url ({home_origin})"),
        format!("advertises ({home_origin})"),
        format!("add \"{foreign_origin}\" to spec.broker.trustedOrigins"),
    ] {
        assert!(message.contains(&needle), "{needle:?} missing in {message}");
    }
    assert!(!message.contains("tok-home-only"), "{message}");
    assert_eq!(
        home.log()[0].authorization.as_deref(),
        Some("Bearer tok-home-only")
    );
    assert!(
        foreign.log().is_empty(),
        "nothing at all went to the untrusted origin: {:?}",
        foreign.log()
    );
    assert_eq!(broker.stats().relation_total("pb:pacticipant-version"), 0);

    // Without credentials there is nothing to protect: the link is followed.
    let anonymous = HttpBroker::new(self::config(&home)).unwrap();
    anonymous
        .record_deployment("test", &candidate("Foo", "1"), None)
        .await
        .unwrap();
    let foreign_log = foreign.log();
    assert_eq!(foreign_log.len(), 2, "{foreign_log:?}");
    assert!(foreign_log.iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn the_advertised_origin_and_the_listed_ones_get_the_credentials() {
    // The broker's index says its public base URL is the foreign origin.
    let foreign = foreign_broker().await;
    let home = home_broker(Some(foreign.base.clone()), foreign.base.clone()).await;
    let mut config = config(&home);
    config.auth = Auth::Bearer(Secret::new("tok-1"));
    HttpBroker::new(config)
        .unwrap()
        .record_deployment("test", &candidate("Foo", "1"), None)
        .await
        .unwrap();
    let foreign_log = foreign.log();
    assert_eq!(foreign_log.len(), 2, "{foreign_log:?}");
    assert!(
        foreign_log
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer tok-1")),
        "{foreign_log:?}"
    );

    // The index names itself, but spec.broker.trustedOrigins lists the foreign origin.
    let listed = foreign_broker().await;
    let home = home_broker(None, listed.base.clone()).await;
    let mut config = self::config(&home);
    config.auth = Auth::Bearer(Secret::new("tok-2"));
    config.trusted_origins = vec![listed.base.clone()];
    HttpBroker::new(config)
        .unwrap()
        .record_deployment("test", &candidate("Foo", "1"), None)
        .await
        .unwrap();
    assert!(
        listed
            .log()
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer tok-2"))
    );

    // An invalid entry is a configuration error naming it.
    let mut config = self::config(&home);
    config.trusted_origins = vec![
        "https://ok.example".into(),
        "https://x.example/broker".into(),
    ];
    let error = HttpBroker::new(config).unwrap_err();
    assert_eq!(error.kind(), "config");
    assert!(
        error
            .to_string()
            .contains("spec.broker.trustedOrigins[1]: \"https://x.example/broker\" has a path"),
        "{error}"
    );
}

#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let mut config = Config::new("http://127.0.0.1:9/");
    config.auth = Auth::Basic {
        username: "alice".into(),
        password: Secret::new("pw-canary-771"),
    };
    let config_debug = format!("{config:?}");
    let broker = HttpBroker::new(config).unwrap();
    let broker_debug = format!("{broker:?}");
    for debug in [config_debug, broker_debug] {
        assert!(!debug.contains("pw-canary-771"), "{debug}");
    }
    let mut bearer = Config::new("http://127.0.0.1:9/");
    bearer.auth = Auth::Bearer(Secret::new("tok-canary-772"));
    assert!(!format!("{bearer:?}").contains("tok-canary-772"));
}

#[tokio::test]
async fn per_service_answers_come_back_in_caller_order() {
    let server = gate_server("/", |seen, _, _| {
        let query = seen.query.clone().unwrap_or_default();
        if query.contains("=slow&") {
            Reply::json(200, matrix_body("false")).after(Duration::from_millis(400))
        } else if query.contains("=pending&") {
            Reply::json(200, matrix_body("null")).after(Duration::from_millis(100))
        } else {
            Reply::json(200, matrix_body("true"))
        }
    })
    .await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let set = [
        candidate("slow", "1"),
        candidate("quick", "2"),
        candidate("pending", "3"),
        candidate("quick2", "4"),
    ];
    let answers = broker
        .can_i_deploy("test", &set, GateMode::PerService)
        .await
        .unwrap();
    let verdicts: Vec<Verdict> = answers.iter().map(|a| a.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::NotDeployable,
            Verdict::Deployable,
            Verdict::Unknown,
            Verdict::Deployable
        ]
    );
    assert_eq!(answers[0].reason, "reason false");
}

#[tokio::test]
async fn fan_out_is_bounded_by_parallelism() {
    let server = gate_server("/", |_, _, _| {
        Reply::json(200, matrix_body("true")).after(Duration::from_millis(150))
    })
    .await;
    let mut config = config(&server);
    config.parallelism = 2;
    let broker = HttpBroker::new(config).unwrap();
    let set: Vec<Candidate> = (0..6).map(|i| candidate(&format!("svc{i}"), "1")).collect();
    let answers = broker
        .can_i_deploy("test", &set, GateMode::PerService)
        .await
        .unwrap();
    assert_eq!(answers.len(), 6);
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn all_or_nothing_is_one_grouped_query_under_the_path_prefix() {
    let server = gate_server("/broker/", |_, _, _| Reply::json(200, matrix_body("null"))).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let set = [
        candidate("Foo Thing", "1.0+build/7"),
        candidate("Bar", "10"),
    ];
    let answers = broker
        .can_i_deploy("test env", &set, GateMode::AllOrNothing)
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].verdict, Verdict::Unknown);
    let log = server.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/broker/matrix");
    assert_eq!(
        log[0].query.as_deref(),
        Some(
            "q[][pacticipant]=Foo%20Thing&q[][version]=1.0%2Bbuild%2F7&q[][pacticipant]=Bar&q[][version]=10&latestby=cvpv&environment=test%20env&limit=10000"
        )
    );
    // A single candidate in all-or-nothing mode is gated like per service.
    let single = broker
        .can_i_deploy("test", &set[1..], GateMode::AllOrNothing)
        .await
        .unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(
        gates(&server)[0].query.as_deref(),
        Some("pacticipant=Bar&version=10&environment=test")
    );
}

/// The path part of a base URL: "http://127.0.0.1:1/broker/" -> "/broker/".
fn path_prefix(base: &str) -> &str {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    base[after_scheme..]
        .find('/')
        .map_or("/", |i| &base[after_scheme + i..])
}

/// A small stateful broker for HAL flows: index, environments, versions, record-deployment.
async fn hal_broker(
    prefix: &str,
    environments: Arc<Mutex<Vec<(&'static str, &'static str)>>>,
) -> Server {
    serve(prefix, move |seen, _, base| {
        let relative = seen
            .path
            .strip_prefix(path_prefix(base))
            .unwrap_or("")
            .to_string();
        let parts: Vec<&str> = relative.split('/').collect();
        match (seen.method.as_str(), parts.as_slice()) {
            ("GET", [""]) => Reply::json(200, index_body(base)),
            ("GET", ["can-i-deploy"]) => Reply::json(200, matrix_body("true")),
            ("GET", ["environments"]) => {
                let items: Vec<String> = environments
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(name, uuid)| format!(r#"{{"name":"{name}","uuid":"{uuid}"}}"#))
                    .collect();
                Reply::json(
                    200,
                    format!(
                        r#"{{"_embedded":{{"environments":[{}]}}}}"#,
                        items.join(",")
                    ),
                )
            }
            ("GET", ["pacticipants", p, "versions", v]) if *v != "404" => {
                Reply::json(200, version_body(base, p, v))
            }
            (
                "POST",
                [
                    "pacticipants",
                    _,
                    "versions",
                    _,
                    "deployed-versions",
                    "environment",
                    _,
                ],
            ) => Reply::json(201, r#"{"uuid":"d-1","currentlyDeployed":true}"#),
            _ => Reply::json(
                404,
                r#"{"error":"The requested document was not found on this server."}"#,
            ),
        }
    })
    .await
}

#[tokio::test]
async fn record_deployment_follows_the_links_and_caches_them() {
    let envs = Arc::new(Mutex::new(vec![
        ("production", "uuid-prod"),
        ("test", "uuid-test"),
    ]));
    let server = hal_broker("/broker/", envs).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let web = candidate("shop web", "1.0+b/7");
    broker
        .record_deployment("production", &web, Some("blue"))
        .await
        .unwrap();
    broker
        .record_deployment("production", &web, Some("blue"))
        .await
        .unwrap();
    broker
        .record_deployment("test", &candidate("api", "2"), None)
        .await
        .unwrap();
    let log = server.log();
    let posts: Vec<&Seen> = log.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 3);
    assert_eq!(
        posts[0].path,
        "/broker/pacticipants/shop%20web/versions/1.0%2Bb%2F7/deployed-versions/environment/uuid-prod"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&posts[0].body).unwrap(),
        serde_json::json!({"applicationInstance": "blue", "target": "blue"})
    );
    assert_eq!(posts[2].body, "{}");
    assert!(
        posts
            .iter()
            .all(|p| p.content_type.as_deref() == Some("application/json"))
    );
    let stats = broker.stats();
    assert_eq!(stats.relation_total("index"), 1, "index fetched once");
    assert_eq!(
        stats.relation_total("pb:pacticipant-version"),
        2,
        "version link cached"
    );
    assert_eq!(stats.relation_total("pb:record-deployment"), 3);
}

#[tokio::test]
async fn record_deployment_names_unknown_versions_and_environments() {
    let envs = Arc::new(Mutex::new(vec![("production", "uuid-prod")]));
    let server = hal_broker("/", envs).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let error = broker
        .record_deployment("production", &candidate("Foo", "404"), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "version 404 of Foo is not known to the broker (was its pact or verification ever published?)"
    );
    let error = broker
        .record_deployment("staging", &candidate("Foo", "1"), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment staging does not exist in the broker"
    );
    assert_eq!(
        server.log().iter().filter(|s| s.method == "POST").count(),
        0
    );
}

#[tokio::test]
async fn environment_uuids_are_cached_and_refreshed_on_a_miss() {
    let envs = Arc::new(Mutex::new(vec![("production", "uuid-prod")]));
    let server = hal_broker("/", Arc::clone(&envs)).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    assert_eq!(
        broker.environment_uuid("production").await.unwrap(),
        "uuid-prod"
    );
    assert_eq!(
        broker.environment_uuid("production").await.unwrap(),
        "uuid-prod"
    );
    assert_eq!(
        server.count("/environments"),
        1,
        "second lookup served from cache"
    );
    envs.lock().unwrap().push(("qa", "uuid-qa"));
    assert_eq!(broker.environment_uuid("qa").await.unwrap(), "uuid-qa");
    assert_eq!(server.count("/environments"), 2, "a miss refreshes once");
    let error = broker.environment_uuid("nowhere").await.unwrap_err();
    assert_eq!(error.kind(), "unknown_environment");
    assert_eq!(server.count("/environments"), 3);
}

#[derive(Default)]
struct Recorder(Mutex<HashMap<(String, String, String), u32>>);

impl RequestObserver for Recorder {
    fn observe(&self, method: &str, relation: &str, status: Option<u16>, _elapsed: Duration) {
        let status = status.map_or("error".to_string(), |s| s.to_string());
        *self
            .0
            .lock()
            .unwrap()
            .entry((method.to_string(), relation.to_string(), status))
            .or_default() += 1;
    }
}

#[tokio::test]
async fn the_observer_sees_every_attempt() {
    let server = gate_server("/", |_, n, _| {
        if n == 0 {
            Reply::json(502, "")
        } else {
            Reply::json(200, matrix_body("true"))
        }
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let broker = HttpBroker::new(config(&server))
        .unwrap()
        .with_observer(recorder.clone());
    gate_one(&broker).await.unwrap();
    let seen = recorder.0.lock().unwrap().clone();
    let key = |status: &str| {
        (
            "GET".to_string(),
            RELATION_CAN_I_DEPLOY.to_string(),
            status.to_string(),
        )
    };
    assert_eq!(seen.get(&key("502")), Some(&1));
    assert_eq!(seen.get(&key("200")), Some(&1));
}

/// The closing figure of issue 3: requests for "gate 3 services + record 3 deployments".
#[tokio::test]
async fn gate_and_record_three_services_request_counts() {
    let envs = Arc::new(Mutex::new(vec![("production", "uuid-prod")]));
    let server = hal_broker("/", envs).await;
    let broker = HttpBroker::new(config(&server)).unwrap();
    let set = [
        candidate("web", "1"),
        candidate("api", "2"),
        candidate("worker", "3"),
    ];
    let round = || async {
        let answers = broker
            .can_i_deploy("production", &set, GateMode::PerService)
            .await
            .unwrap();
        assert!(answers.iter().all(|a| a.verdict == Verdict::Deployable));
        for c in &set {
            broker
                .record_deployment("production", c, None)
                .await
                .unwrap();
        }
    };
    round().await;
    // Cold: 1 index + 3 can-i-deploy + 3 version GETs + 3 POSTs.
    assert_eq!(server.log().len(), 10);
    round().await;
    // Warm (same versions): 3 can-i-deploy + 3 POSTs; index and record links are cached.
    assert_eq!(server.log().len(), 16);
}

// record-undeployment against the broker emulator (issue 12): the currently-deployed resource
// and the merge-patch, idempotence, application instances, retries and credentials.

use c2quay::broker::UndeployOutcome;
use c2quay_broker_emulator::{
    AuthConfig, BasicUser, EmulatorConfig, FaultKind, FaultSpec, RunningEmulator,
};

fn emulator_client(e: &RunningEmulator, max_attempts: u32) -> HttpBroker {
    let mut config = Config::new(e.base_url.clone());
    config.max_attempts = max_attempts;
    config.retry_base_delay = Duration::from_millis(1);
    HttpBroker::new(config).expect("client builds")
}

/// `(pacticipant, version, instance)` of the records currently deployed in `environment`.
fn live(e: &RunningEmulator, environment: &str) -> Vec<(String, String, Option<String>)> {
    e.currently_deployed(environment)
        .into_iter()
        .map(|d| (d.pacticipant, d.version, d.application_instance))
        .collect()
}

fn live_one(p: &str, v: &str, instance: Option<&str>) -> (String, String, Option<String>) {
    (p.to_string(), v.to_string(), instance.map(str::to_string))
}

async fn emulator_with(versions: &[(&str, &str)]) -> RunningEmulator {
    let e = c2quay_broker_emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    e.create_environment("production", true).expect("env");
    for (p, v) in versions {
        e.create_version(p, v, None);
    }
    e
}

#[tokio::test]
async fn a_recorded_deployment_is_undeployed_and_the_broker_says_so() {
    let e = emulator_with(&[("web", "1"), ("web-admin", "4")]).await;
    let broker = emulator_client(&e, 1);
    broker
        .record_deployment("production", &candidate("web", "1"), None)
        .await
        .expect("recorded");
    broker
        .record_deployment("production", &candidate("web-admin", "4"), None)
        .await
        .expect("recorded");
    e.clear_requests();
    let outcome = broker
        .record_undeployment("production", "web", None)
        .await
        .expect("undeployed");
    assert_eq!(
        outcome,
        UndeployOutcome::Undeployed {
            versions: vec!["1".into()]
        }
    );
    assert_eq!(live(&e, "production"), [live_one("web-admin", "4", None)]);
    let web = e
        .deployments("production")
        .into_iter()
        .find(|d| d.pacticipant == "web")
        .expect("web record");
    assert!(web.undeployed_at.is_some());
    let requests = e.requests();
    let targets: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.target()))
        .collect();
    let env_path = targets[1].1.clone();
    assert!(env_path.starts_with("/environments/"), "{targets:?}");
    let expected: Vec<(String, String)> = [
        ("GET", "/environments".to_string()),
        ("GET", env_path.clone()),
        (
            "GET",
            format!("{env_path}/deployed-versions/currently-deployed?pacticipant=web"),
        ),
        ("PATCH", format!("/deployed-versions/{}", web.uuid)),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_string(), t))
    .collect();
    assert_eq!(targets, expected, "the index is cached from the record");
    let patch = requests.last().expect("patch");
    assert_eq!(
        patch.headers.get("content-type").map(String::as_str),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&patch.body).ok(),
        Some(serde_json::json!({"currentlyDeployed": false}))
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_second_undeployment_finds_nothing_and_succeeds() {
    let e = emulator_with(&[("web", "1")]).await;
    let broker = emulator_client(&e, 1);
    e.record_deployment("web", "1", "production", None)
        .expect("live");
    let first = broker
        .record_undeployment("production", "web", None)
        .await
        .expect("first");
    assert!(
        matches!(first, UndeployOutcome::Undeployed { .. }),
        "{first:?}"
    );
    e.clear_requests();
    let second = broker
        .record_undeployment("production", "web", None)
        .await
        .expect("a retry after a lost answer must not fail");
    assert_eq!(second, UndeployOutcome::NothingDeployed);
    assert!(
        e.requests().iter().all(|r| r.method == "GET"),
        "nothing to PATCH"
    );
    // Never recorded at all: the same answer.
    assert_eq!(
        broker
            .record_undeployment("production", "worker", None)
            .await
            .expect("never deployed"),
        UndeployOutcome::NothingDeployed
    );
    e.shutdown().await;
}

#[tokio::test]
async fn with_an_application_instance_only_that_instance_is_undeployed() {
    let e = emulator_with(&[("web", "1"), ("web", "2")]).await;
    let broker = emulator_client(&e, 1);
    for (version, instance) in [("1", None), ("2", Some("blue")), ("2", Some("green"))] {
        broker
            .record_deployment("production", &candidate("web", version), instance)
            .await
            .expect("recorded");
    }
    let outcome = broker
        .record_undeployment("production", "web", Some("blue"))
        .await
        .expect("undeployed");
    assert_eq!(
        outcome,
        UndeployOutcome::Undeployed {
            versions: vec!["2".into()]
        }
    );
    assert_eq!(
        live(&e, "production"),
        [
            live_one("web", "1", None),
            live_one("web", "2", Some("green"))
        ]
    );
    // Without an instance: the instance-less record only, green stays.
    broker
        .record_undeployment("production", "web", None)
        .await
        .expect("undeployed");
    assert_eq!(
        live(&e, "production"),
        [live_one("web", "2", Some("green"))]
    );
    assert_eq!(
        broker
            .record_undeployment("production", "web", Some("red"))
            .await
            .expect("no such instance"),
        UndeployOutcome::NothingDeployed
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_failed_patch_is_retried_and_a_lost_answer_leaves_it_to_the_next_try() {
    let e = emulator_with(&[("web", "1")]).await;
    e.record_deployment("web", "1", "production", None)
        .expect("live");
    let mut unavailable = FaultSpec::new(FaultKind::Unavailable, 1);
    // The PATCH only (the listing's path has no deployed-version uuid).
    unavailable.path_contains = Some(format!(
        "/deployed-versions/{}",
        e.currently_deployed("production")[0].uuid
    ));
    e.inject_fault(unavailable);
    let retrying = emulator_client(&e, 3);
    assert!(matches!(
        retrying
            .record_undeployment("production", "web", None)
            .await
            .expect("the 503 is retried"),
        UndeployOutcome::Undeployed { .. }
    ));
    assert!(live(&e, "production").is_empty());

    e.record_deployment("web", "1", "production", None)
        .expect("live again");
    let uuid = e.currently_deployed("production")[0].uuid.clone();
    let mut truncated = FaultSpec::new(FaultKind::MalformedJson, 1);
    truncated.path_contains = Some(format!("/deployed-versions/{uuid}"));
    e.inject_fault(truncated);
    let error = emulator_client(&e, 1)
        .record_undeployment("production", "web", None)
        .await
        .expect_err("a truncated answer is not an undeployment");
    assert_eq!(error.kind(), "malformed", "{error}");
    assert_eq!(
        emulator_client(&e, 1)
            .record_undeployment("production", "web", None)
            .await
            .expect("the next try"),
        UndeployOutcome::Undeployed {
            versions: vec!["1".into()]
        }
    );
    e.shutdown().await;
}

#[tokio::test]
async fn undeployment_sends_credentials_and_names_unknown_environments() {
    let config = EmulatorConfig {
        auth: AuthConfig {
            basic: BasicUser::parse("alice:s3cret"),
            ..AuthConfig::default()
        },
        ..EmulatorConfig::default()
    };
    let e = c2quay_broker_emulator::start(config)
        .await
        .expect("emulator starts");
    e.create_environment("production", true).expect("env");
    e.create_version("web", "1", None);
    e.record_deployment("web", "1", "production", None)
        .expect("live");
    let mut config = Config::new(e.base_url.clone());
    config.max_attempts = 1;
    config.auth = Auth::Basic {
        username: "alice".into(),
        password: Secret::new("s3cret"),
    };
    let broker = HttpBroker::new(config).expect("client builds");
    broker
        .record_undeployment("production", "web", None)
        .await
        .expect("undeployed with credentials");
    assert!(live(&e, "production").is_empty());
    assert!(
        e.requests()
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Basic"))
    );
    let error = broker
        .record_undeployment("staging", "web", None)
        .await
        .expect_err("no such environment");
    assert_eq!(error.kind(), "unknown_environment");
    assert!(!error.is_transient());
    let anonymous = emulator_client(&e, 1);
    let error = anonymous
        .record_undeployment("production", "web", None)
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), "unauthorized");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    e.shutdown().await;
}

mod gate;
mod proxy;
