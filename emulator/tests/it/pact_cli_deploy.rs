//! Drives the OFFICIAL `pact broker` CLI against the in-process emulator:
//! record-deployment / record-undeployment (request sequences of reference §7
//! and resulting state), Basic/Bearer auth with a path prefix, and the
//! request-count figure for "gate 3 services + record 3 deployments".

use crate::common;

use common::{broker, pact_cli, pact_doc, req, take_requests};

use c2quay_broker_emulator::{AuthConfig, BasicUser, Credential, EmulatorConfig, start};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_deployment_and_undeployment_via_the_cli() {
    let Some(cli) = pact_cli("record_deployment_and_undeployment_via_the_cli") else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let b = e.base_url.clone();
    let test_uuid = e.create_environment("test", false).expect("env");
    e.create_version("Foo Thing", "1.0+build/7", None);
    e.create_version("Foo Thing", "2", None);

    let deploy = |v: &'static str, instance: Option<&'static str>| {
        let (cli, b) = (cli.clone(), b.clone());
        async move {
            let mut args = vec![
                "record-deployment",
                "--pacticipant",
                "Foo Thing",
                "--version",
                v,
                "--environment",
                "test",
            ];
            if let Some(i) = instance {
                args.extend(["--application-instance", i]);
            }
            broker(&cli, &b, &args).await
        }
    };
    let out = deploy("1.0+build/7", None).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![
            req("GET", "/pacticipants/Foo%20Thing/versions/1.0%2Bbuild%2F7"),
            req(
                "POST",
                &format!(
                    "/pacticipants/Foo%20Thing/versions/1.0%2Bbuild%2F7/deployed-versions/environment/{test_uuid}"
                )
            ),
        ]
    );
    let first = e.currently_deployed("test");
    assert_eq!(first.len(), 1);
    // Idempotent: same version again keeps the same record.
    assert_eq!(deploy("1.0+build/7", None).await.code, 0);
    assert_eq!(e.deployments("test").len(), 1);
    // With an application instance: coexists with the instance-less record.
    let out = deploy("2", Some("blue")).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let posted = e
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST")
        .expect("post logged");
    assert_eq!(
        serde_json::from_str::<Value>(&posted.body).ok(),
        Some(json!({"applicationInstance": "blue", "target": "blue"}))
    );
    assert_eq!(e.currently_deployed("test").len(), 2);
    // A new version without instance auto-undeploys the previous instance-less one.
    assert_eq!(deploy("2", None).await.code, 0);
    let all = e.deployments("test");
    assert_eq!(all.len(), 3);
    assert!(!all[0].currently_deployed && all[0].undeployed_at.is_some());
    e.clear_requests();

    // Unknown environment / version: exit 1 without POST.
    let bad = broker(
        &cli,
        &b,
        &[
            "record-deployment",
            "--pacticipant",
            "Foo Thing",
            "--version",
            "2",
            "--environment",
            "staging",
        ],
    )
    .await;
    assert_eq!(bad.code, 1);
    let bad = broker(
        &cli,
        &b,
        &[
            "record-deployment",
            "--pacticipant",
            "Foo Thing",
            "--version",
            "404",
            "--environment",
            "test",
        ],
    )
    .await;
    assert_eq!(bad.code, 1);
    assert!(e.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(e.requests().last().and_then(|r| r.status), Some(404));
    e.clear_requests();

    // record-undeployment of the blue instance.
    let out = broker(
        &cli,
        &b,
        &[
            "record-undeployment",
            "--pacticipant",
            "Foo Thing",
            "--environment",
            "test",
            "--application-instance",
            "blue",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let blue = e
        .deployments("test")
        .into_iter()
        .find(|d| d.application_instance.as_deref() == Some("blue"))
        .expect("blue");
    assert!(!blue.currently_deployed);
    assert_eq!(
        take_requests(&e),
        vec![
            req("GET", "/"),
            req("GET", "/environments"),
            req("GET", &format!("/environments/{test_uuid}")),
            req(
                "GET",
                &format!(
                    "/environments/{test_uuid}/deployed-versions/currently-deployed?pacticipant=Foo%20Thing"
                )
            ),
            req("PATCH", &format!("/deployed-versions/{}", blue.uuid)),
        ]
    );
    let out = broker(
        &cli,
        &b,
        &[
            "record-undeployment",
            "--pacticipant",
            "Foo Thing",
            "--environment",
            "test",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(e.currently_deployed("test").is_empty());
    e.shutdown().await;
}

/// The CLI's record-undeployment without an instance: exit 0, the version is no longer
/// currently deployed, another pacticipant and another instance are untouched; a second one
/// finds nothing, exits 1 and sends no PATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_undeployment_via_the_cli_leaves_the_version_not_currently_deployed() {
    let Some(cli) =
        pact_cli("record_undeployment_via_the_cli_leaves_the_version_not_currently_deployed")
    else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let uuid = e.create_environment("production", true).expect("env");
    for (p, v) in [("web", "3"), ("web-admin", "1")] {
        e.create_version(p, v, None);
        e.record_deployment(p, v, "production", None).expect("live");
    }
    e.record_deployment("web", "3", "production", Some("blue"))
        .expect("blue live");
    let plain = e
        .currently_deployed("production")
        .into_iter()
        .find(|d| d.pacticipant == "web" && d.application_instance.is_none())
        .expect("web live");
    e.clear_requests();
    let undeploy = [
        "record-undeployment",
        "--pacticipant",
        "web",
        "--environment",
        "production",
    ];
    let out = broker(&cli, &e.base_url, &undeploy).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![
            req("GET", "/"),
            req("GET", "/environments"),
            req("GET", &format!("/environments/{uuid}")),
            req(
                "GET",
                &format!(
                    "/environments/{uuid}/deployed-versions/currently-deployed?pacticipant=web"
                )
            ),
            req("PATCH", &format!("/deployed-versions/{}", plain.uuid)),
        ]
    );
    let left: Vec<(String, Option<String>)> = e
        .currently_deployed("production")
        .into_iter()
        .map(|d| (d.pacticipant, d.application_instance))
        .collect();
    assert_eq!(
        left,
        [
            ("web-admin".to_string(), None),
            ("web".to_string(), Some("blue".to_string()))
        ]
    );
    let again = broker(&cli, &e.base_url, &undeploy).await;
    assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
    assert!(e.requests().iter().all(|r| r.method == "GET"), "no PATCH");
    e.shutdown().await;
}

/// Figure for the report: requests the official CLI needs to gate 3 services
/// one by one and record 3 deployments against a fresh emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_request_count_for_three_gates_and_three_deployments() {
    let Some(cli) = pact_cli("cli_request_count_for_three_gates_and_three_deployments") else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    e.create_environment("production", true).expect("env");
    for (svc, dep) in [("web", "api"), ("api", "db"), ("worker", "api")] {
        e.seed_pact(svc, "1", dep, &pact_doc(svc, dep, svc));
    }
    e.seed_verification("api", "1", "web", "1", true)
        .expect("verify");
    e.seed_verification("api", "1", "worker", "1", true)
        .expect("verify");
    e.seed_verification("db", "1", "api", "1", true)
        .expect("verify");
    e.create_version("db", "1", None);
    e.record_deployment("db", "1", "production", None)
        .expect("db live");
    e.clear_requests();
    for svc in ["api", "web", "worker"] {
        let out = broker(
            &cli,
            &e.base_url,
            &[
                "can-i-deploy",
                "--pacticipant",
                svc,
                "--version",
                "1",
                "--to-environment",
                "production",
            ],
        )
        .await;
        assert_eq!(out.code, 0, "{svc}: {}{}", out.stdout, out.stderr);
        let out = broker(
            &cli,
            &e.base_url,
            &[
                "record-deployment",
                "--pacticipant",
                svc,
                "--version",
                "1",
                "--environment",
                "production",
            ],
        )
        .await;
        assert_eq!(out.code, 0, "{svc}: {}{}", out.stdout, out.stderr);
    }
    let n = e.requests().len();
    println!(
        "FIGURE official pact CLI, can-i-deploy x3 (per service) + record-deployment x3: {n} HTTP requests"
    );
    assert_eq!(n, 9);
    assert_eq!(e.currently_deployed("production").len(), 4);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_path_prefix_via_the_cli() {
    let Some(cli) = pact_cli("auth_and_path_prefix_via_the_cli") else {
        return;
    };
    let config = EmulatorConfig {
        path_prefix: "/broker".into(),
        auth: AuthConfig {
            basic: BasicUser::parse("alice:s3cret"),
            basic_read_only: BasicUser::parse("reader:ro"),
            bearer_tokens: vec![Credential::new("tok123")],
        },
        ..EmulatorConfig::default()
    };
    let e = start(config).await.expect("starts");
    assert!(e.base_url.ends_with("/broker"));
    e.create_environment("test", false).expect("env");
    e.create_version("Foo", "1", None);
    let b = format!("{}/", e.base_url);

    let out = broker(
        &cli,
        &b,
        &[
            "record-deployment",
            "--pacticipant",
            "Foo",
            "--version",
            "1",
            "--environment",
            "test",
            "-u",
            "alice",
            "-p",
            "s3cret",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let reqs = e.requests();
    assert!(
        reqs.iter()
            .all(|r| r.path.starts_with("/broker/") && r.auth_scheme.as_deref() == Some("Basic"))
    );
    assert_eq!(reqs.last().and_then(|r| r.status), Some(201));
    e.clear_requests();

    let out = broker(&cli, &b, &["list-environments"]).await;
    assert_eq!(out.code, 1, "no credentials must fail");
    assert_eq!(e.requests()[0].status, Some(401));
    let out = broker(&cli, &b, &["list-environments", "-k", "tok123"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = broker(&cli, &b, &["list-environments", "-u", "reader", "-p", "ro"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = broker(
        &cli,
        &b,
        &[
            "create-environment",
            "--name",
            "x",
            "-u",
            "reader",
            "-p",
            "ro",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "read-only user cannot write");
    e.shutdown().await;
}
