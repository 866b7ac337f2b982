//! Issue 13, point 2: a broker whose links carry another origin than `spec.broker.url` (its
//! configured public base URL, like `PACT_BROKER_BASE_URL`). The gate passed and every record
//! waited in the outbox with a 401 blamed on the credentials; now the origin the index
//! advertises gets the credentials, for the gate and the records alike.

use super::{candidate, live, live_one};

use c2quay::broker::{Auth, Broker, Config, GateMode, HttpBroker, UndeployOutcome, Verdict};
use c2quay::secret::Secret;
use c2quay_broker_emulator::{
    AuthConfig, BasicUser, Credential, EmulatorConfig, RunningEmulator, start,
};

/// The emulator on 127.0.0.1, with Basic auth, building every href on `http://localhost:PORT`.
async fn emulator_behind_a_public_name() -> RunningEmulator {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let e = start(EmulatorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        base_url: Some(format!("http://localhost:{port}")),
        auth: AuthConfig {
            basic: Some(BasicUser {
                username: "alice".into(),
                password: Credential::new("s3cret"),
            }),
            ..AuthConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("starts");
    e.create_environment("production", true).expect("env");
    e.create_version("web", "1", None);
    e
}

fn client(e: &RunningEmulator) -> HttpBroker {
    let mut config = Config::new(e.base_url.clone());
    config.max_attempts = 1;
    config.auth = Auth::Basic {
        username: "alice".into(),
        password: Secret::new("s3cret"),
    };
    HttpBroker::new(config).expect("client builds")
}

#[tokio::test]
async fn behind_a_public_base_url_the_gate_and_the_records_use_the_credentials() {
    let e = emulator_behind_a_public_name().await;
    assert!(
        e.base_url.starts_with("http://127.0.0.1:"),
        "{}",
        e.base_url
    );
    let broker = client(&e);
    let answers = broker
        .can_i_deploy("production", &[candidate("web", "1")], GateMode::PerService)
        .await
        .expect("gate");
    assert_eq!(answers[0].verdict, Verdict::Deployable, "{answers:?}");
    broker
        .record_deployment("production", &candidate("web", "1"), None)
        .await
        .unwrap_or_else(|e| panic!("the record follows the advertised links: {e}"));
    assert_eq!(live(&e, "production"), [live_one("web", "1", None)]);
    assert!(matches!(
        broker
            .record_undeployment("production", "web", None)
            .await
            .expect("undeploy"),
        UndeployOutcome::Undeployed { .. }
    ));
    let port = e.addr.port();
    assert_eq!(
        broker.origins().advertised(),
        Some(format!("http://localhost:{port}").as_str())
    );
    let requests = e.requests();
    assert!(requests.len() >= 6, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Basic") && r.status != Some(401)),
        "every request carried the credentials: {requests:?}"
    );
    e.shutdown().await;
}
