//! Drives the OFFICIAL `pact broker` CLI (PyPI `pact-python-cli`, pact-broker
//! 0.9.0) against the in-process emulator: exit codes, `-o json` output, the
//! emulator's resulting state, and the exact request sequences of reference §7.
//!
//! The CLI is found via `$PACT_CLI`, then `pact` on `PATH`, then the Python
//! user/site `bin` directories. Missing CLI: the tests fail when
//! `C2QUAY_REQUIRE_PACT_CLI` or `CI` is set, otherwise print a SKIP line.

use crate::common;

use common::{broker, pact_cli, pact_doc, req, take_requests};

use std::path::PathBuf;

use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator, start};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_and_versions_via_the_cli() {
    let Some(cli) = pact_cli("environments_and_versions_via_the_cli") else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let b = e.base_url.clone();

    let out = broker(
        &cli,
        &b,
        &[
            "create-environment",
            "--name",
            "uat",
            "--display-name",
            "UAT",
            "--production",
            "--contact-name",
            "Ops",
            "--contact-email-address",
            "ops@example.com",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![req("GET", "/"), req("POST", "/environments")]
    );
    let uat = e
        .state()
        .environments
        .into_iter()
        .find(|x| x.name == "uat")
        .expect("uat created");
    assert!(uat.production);
    assert_eq!(uat.display_name, "UAT");
    assert_eq!(
        uat.contacts,
        Some(json!([{"details": {"emailAddress": "ops@example.com"}, "name": "Ops"}]))
    );

    let out = broker(&cli, &b, &["create-environment", "--name", "test"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dup = broker(&cli, &b, &["create-environment", "--name", "test"]).await;
    assert_ne!(
        dup.code, 0,
        "duplicate name must be rejected: {}{}",
        dup.stdout, dup.stderr
    );
    e.clear_requests();

    let out = broker(&cli, &b, &["list-environments"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("uat") && out.stdout.contains("test"),
        "{}",
        out.stdout
    );
    assert_eq!(
        take_requests(&e),
        vec![req("GET", "/"), req("GET", "/environments")]
    );

    let out = broker(&cli, &b, &["describe-environment", "--uuid", &uat.uuid]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("UAT"), "{}", out.stdout);
    assert_eq!(
        take_requests(&e),
        vec![req("GET", &format!("/environments/{}", uat.uuid))]
    );

    let out = broker(
        &cli,
        &b,
        &[
            "create-or-update-version",
            "--pacticipant",
            "Foo",
            "--version",
            "1",
            "--branch",
            "main",
            "--tag",
            "prod",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![
            req("PUT", "/pacticipants/Foo/branches/main/versions/1"),
            req("PUT", "/pacticipants/Foo/versions/1/tags/prod")
        ]
    );
    let v = e
        .state()
        .version("Foo", "1")
        .cloned()
        .expect("version created");
    assert_eq!(
        (v.branches, v.tags),
        (vec!["main".to_string()], vec!["prod".to_string()])
    );

    let out = broker(
        &cli,
        &b,
        &[
            "create-or-update-version",
            "--pacticipant",
            "Foo",
            "--version",
            "2",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![req("PUT", "/pacticipants/Foo/versions/2")]
    );
    e.shutdown().await;
}

/// Publishes Foo's pacts with the CLI and verifies over HTTP by following the
/// pact's `pb:publish-verification-results` link.
async fn publish(cli: &PathBuf, e: &RunningEmulator, version: &str, marker: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Foo-Bar.json");
    std::fs::write(&file, pact_doc("Foo", "Bar", marker).to_string()).expect("write pact");
    let out = broker(
        cli,
        &e.base_url,
        &[
            "publish",
            dir.path().to_str().expect("utf8"),
            "--consumer-app-version",
            version,
            "--branch",
            "main",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("missing field"), "{}", out.stdout);
}

async fn verify_over_http(
    e: &RunningEmulator,
    consumer_version: &str,
    provider_version: &str,
    success: bool,
) {
    let http = reqwest::Client::new();
    let pact: Value = http
        .get(format!(
            "{}/pacts/provider/Bar/consumer/Foo/version/{consumer_version}",
            e.base_url
        ))
        .send()
        .await
        .expect("get pact")
        .json()
        .await
        .expect("pact json");
    let href = pact["_links"]["pb:publish-verification-results"]["href"]
        .as_str()
        .expect("link")
        .to_string();
    let resp = http
        .post(href)
        .json(&json!({"success": success, "providerApplicationVersion": provider_version}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_can_i_deploy_via_the_cli() {
    let Some(cli) = pact_cli("publish_and_can_i_deploy_via_the_cli") else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    let b = e.base_url.clone();
    e.create_environment("production", true).expect("env");

    publish(&cli, &e, "1", "v1").await;
    let reqs = take_requests(&e);
    assert_eq!(
        reqs,
        vec![req("GET", "/"), req("POST", "/contracts/publish")]
    );
    let st = e.state();
    assert!(st.pact("Bar", "Foo", "1").is_some());
    assert_eq!(
        st.version("Foo", "1").map(|v| v.branches.clone()),
        Some(vec!["main".to_string()])
    );

    verify_over_http(&e, "1", "10", true).await;
    e.record_deployment("Bar", "10", "production", None)
        .expect("deploy Bar");
    publish(&cli, &e, "2", "v2-changed").await;
    verify_over_http(&e, "2", "10", false).await;
    publish(&cli, &e, "3", "v3-unverified").await;
    publish(&cli, &e, "4", "v1").await; // same content as version 1: covered by its verification
    e.clear_requests();

    let cid = |v: &'static str, json_out: bool| {
        let (cli, b) = (cli.clone(), b.clone());
        async move {
            let mut args = vec![
                "can-i-deploy",
                "--pacticipant",
                "Foo",
                "--version",
                v,
                "--to-environment",
                "production",
            ];
            if json_out {
                args.extend(["-o", "json"]);
            }
            broker(&cli, &b, &args).await
        }
    };
    // Deployable.
    let out = cid("1", false).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        take_requests(&e),
        vec![req(
            "GET",
            "/matrix?q[][pacticipant]=Foo&q[][version]=1&latestby=cvpv&environment=production"
        )]
    );
    let j = cid("1", true).await;
    assert_eq!(
        (j.code, j.json()["summary"]["deployable"].clone()),
        (0, json!(true))
    );
    assert_eq!(
        j.json()["summary"]["reason"],
        "All required verification results are published and successful"
    );
    assert_eq!(
        cid("4", true).await.json()["summary"]["deployable"],
        json!(true)
    );
    // Not deployable: failed verification. Table output exits 1; -o json exits 0.
    assert_eq!(cid("2", false).await.code, 1);
    let j = cid("2", true).await;
    assert_eq!(
        (
            j.code,
            j.json()["summary"]["deployable"].clone(),
            j.json()["summary"]["failed"].clone()
        ),
        (0, json!(false), json!(1))
    );
    // Unknown: missing verification.
    assert_eq!(cid("3", false).await.code, 1);
    let j = cid("3", true).await;
    assert_eq!(
        (
            j.json()["summary"]["deployable"].clone(),
            j.json()["summary"]["unknown"].clone()
        ),
        (Value::Null, json!(1))
    );
    // Unknown version: false.
    assert_eq!(
        cid("99", true).await.json()["summary"]["deployable"],
        json!(false)
    );
    e.clear_requests();

    // Two selectors deployed together: Foo 3 with a Bar 11 that verified it.
    verify_over_http(&e, "3", "11", true).await;
    e.clear_requests();
    let args = [
        "can-i-deploy",
        "--pacticipant",
        "Foo",
        "--version",
        "3",
        "--pacticipant",
        "Bar",
        "--version",
        "11",
        "--to-environment",
        "production",
        "-o",
        "json",
    ];
    let j = broker(&cli, &b, &args).await;
    assert_eq!(
        j.json()["summary"]["deployable"],
        json!(true),
        "{}",
        j.stdout
    );
    assert_eq!(j.json()["matrix"][0]["provider"]["version"]["number"], "11");
    assert_eq!(
        take_requests(&e),
        vec![req(
            "GET",
            "/matrix?q[][pacticipant]=Foo&q[][version]=3&q[][pacticipant]=Bar&q[][version]=11&latestby=cvpv&environment=production"
        )]
    );
    let table = broker(&cli, &b, &args[..11]).await;
    assert_eq!(table.code, 0, "{}{}", table.stdout, table.stderr);

    // --ignore: Foo 3 alone is unknown against Bar 10 in production; ignoring Bar makes it deployable.
    let j = broker(
        &cli,
        &b,
        &[
            "can-i-deploy",
            "--pacticipant",
            "Foo",
            "--version",
            "3",
            "--to-environment",
            "production",
            "--ignore",
            "Bar",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(
        j.json()["summary"]["deployable"],
        json!(true),
        "{}",
        j.stdout
    );
    assert_eq!(j.json()["summary"]["ignored"], json!(1));
    let last = e.requests().last().map(|r| r.target()).unwrap_or_default();
    assert_eq!(
        last,
        "/matrix?q[][pacticipant]=Foo&q[][version]=3&ignore[][pacticipant]=Bar&latestby=cvpv&environment=production"
    );
    e.shutdown().await;
}
