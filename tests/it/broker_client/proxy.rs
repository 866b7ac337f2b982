//! Issue 13, point 2: a broker whose links carry another origin than `spec.broker.url` (its
//! configured public base URL, like `PACT_BROKER_BASE_URL`). The gate passed and every record
//! waited in the outbox with a 401 blamed on the credentials; now the origin the index
//! advertises gets the credentials, for the gate and the records alike. And `c2quay doctor`'s
//! broker findings (`HttpBroker::diagnose`): that origin, a refused one, a malformed
//! environments answer.

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

#[tokio::test]
async fn doctor_findings_pass_behind_a_public_base_url_and_say_so() {
    let e = emulator_behind_a_public_name().await;
    let findings = client(&e).diagnose("production").await;
    let text: Vec<String> = findings.iter().map(|f| f.detail.clone()).collect();
    assert!(findings.iter().all(|f| f.passed()), "{findings:#?}");
    let port = e.addr.port();
    assert!(
        text.iter().any(|t| t.contains(&format!(
            "the broker's links use http://localhost:{port}, the origin its index advertises"
        ))),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("environment production exists (")),
        "{text:#?}"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn doctor_findings_name_a_link_origin_the_credentials_may_not_go_to() {
    let foreign = "http://192.0.2.1:9292/";
    let home = super::serve("/", move |seen, _, base| {
        if seen.path == "/" {
            super::Reply::json(
                200,
                format!(
                    r#"{{"_links":{{"self":{{"href":"{base}"}},"pb:environments":{{"href":"{base}environments"}},
                    "pb:pacticipant-version":{{"href":"{foreign}pacticipants/{{pacticipant}}/versions/{{version}}","templated":true}},
                    "pb:environment":{{"href":"{foreign}environments/{{uuid}}","templated":true}}}}}}"#
                ),
            )
        } else {
            super::Reply::json(404, "{}")
        }
    })
    .await;
    let mut config = super::config(&home);
    config.auth = Auth::Bearer(Secret::new("tok"));
    let findings = HttpBroker::new(config)
        .unwrap()
        .diagnose("production")
        .await;
    let failed: Vec<_> = findings.iter().filter(|f| !f.passed()).collect();
    assert_eq!(
        failed.len(),
        1,
        "one failure per refused origin: {findings:#?}"
    );
    let (detail, fix) = (&failed[0].detail, failed[0].fix.as_deref().unwrap_or(""));
    for needle in [
        "refused to send the broker credentials to http://192.0.2.1:9292",
        "for pb:pacticipant-version, pb:environment (/pacticipants/{pacticipant}/versions/{version})",
    ] {
        assert!(detail.contains(needle), "{needle:?} missing in {detail}");
    }
    assert!(
        fix.contains("add \"http://192.0.2.1:9292\" to spec.broker.trustedOrigins"),
        "{fix}"
    );
    assert!(
        home.log().iter().all(|s| s.path == "/"),
        "doctor stopped before following the links: {:?}",
        home.log()
    );
}

#[tokio::test]
async fn doctor_findings_do_not_say_create_it_for_a_malformed_environments_answer() {
    let home = super::serve("/", |seen, _, base| match seen.path.as_str() {
        "/" => super::Reply::json(200, super::index_body(base)),
        "/environments" => super::Reply::json(200, r#"{"environments":[{"name":"production"}]}"#),
        _ => super::Reply::json(404, "{}"),
    })
    .await;
    let findings = HttpBroker::new(super::config(&home))
        .unwrap()
        .diagnose("production")
        .await;
    let failed = findings.iter().find(|f| !f.passed()).expect("a failure");
    let fix = failed.fix.as_deref().unwrap_or("");
    assert!(
        failed
            .detail
            .contains("malformed broker response for pb:environments (/environments)")
            && failed.detail.contains("`_links.pb:environments`"),
        "{failed:?}"
    );
    assert!(!fix.contains("create"), "{fix}");
    assert!(fix.contains("HAL JSON"), "{fix}");
}
