//! Issue 3, proof: c2quay's broker client (`HttpBroker`) and the OFFICIAL `pact broker` CLI give
//! the same answers on the same emulator state, record deployments and undeployments to the
//! same resulting state, and the request-count figure for "gate 3 services + record 3 deployments".
//!
//! `broker_fidelity/gate_limits.rs`: the 101-version case of issue 13 (the matrix row limit).
//!
//! The CLI is `$PACT_CLI`, else `/usr/local/bin/pact`, else `pact` on `PATH`. When it is missing
//! the tests fail if `CI` or `C2QUAY_REQUIRE_PACT_CLI` is set, and print a SKIP line otherwise.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::pact::pact_cli;
use c2quay::broker::{Broker, Candidate, Config, GateAnswer, GateMode, HttpBroker, Verdict};
use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator, start};
use serde_json::{Value, json};

/// The most one CLI invocation may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "CLI stdout is not JSON ({e}): {}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

async fn cli(bin: &PathBuf, base: &str, args: &[&str]) -> Out {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("broker")
        .args(args)
        .args(["--broker-base-url", base])
        .kill_on_drop(true);
    for var in [
        "PACT_BROKER_BASE_URL",
        "PACT_BROKER_USERNAME",
        "PACT_BROKER_PASSWORD",
        "PACT_BROKER_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PACT_DO_NOT_TRACK", "true")
        .env("PACT_BROKER_HTTP_RETRIES", "1");
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .expect("the pact CLI finishes within its timeout")
        .expect("the pact CLI runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn pact_doc(consumer: &str, provider: &str, marker: &str) -> Value {
    json!({
        "consumer": {"name": consumer}, "provider": {"name": provider},
        "interactions": [{"description": format!("a request {marker}"),
            "request": {"method": "GET", "path": "/x"}, "response": {"status": 200}}],
        "metadata": {"pactSpecification": {"version": "3.0.0"}}
    })
}

fn cand(p: &str, v: &str) -> Candidate {
    Candidate {
        pacticipant: p.into(),
        version: v.into(),
    }
}

fn client(e: &RunningEmulator) -> HttpBroker {
    let mut config = Config::new(e.base_url.clone());
    config.max_attempts = 1;
    HttpBroker::new(config).expect("client builds")
}

/// Foo (consumer) -> Bar (provider, 10 deployed in production).
/// Foo 1 verified OK by Bar 10; Foo 2 failed by Bar 10; Foo 3 unverified by Bar 10 but verified
/// by Bar 11; Foo 99 does not exist.
fn seed_decisions(e: &RunningEmulator) {
    e.create_environment("production", true).expect("env");
    for (v, marker) in [("1", "v1"), ("2", "v2"), ("3", "v3")] {
        e.seed_pact("Foo", v, "Bar", &pact_doc("Foo", "Bar", marker));
    }
    e.seed_verification("Bar", "10", "Foo", "1", true)
        .expect("verify 1");
    e.seed_verification("Bar", "10", "Foo", "2", false)
        .expect("verify 2");
    e.seed_verification("Bar", "11", "Foo", "3", true)
        .expect("verify 3");
    e.record_deployment("Bar", "10", "production", None)
        .expect("Bar 10 live");
}

/// What the CLI said: (exit code of the table form, summary of the `-o json` form).
async fn cli_verdict(bin: &PathBuf, base: &str, set: &[Candidate]) -> (i32, Value) {
    let mut args: Vec<&str> = vec!["can-i-deploy"];
    for c in set {
        args.extend(["--pacticipant", &c.pacticipant, "--version", &c.version]);
    }
    args.extend(["--to-environment", "production"]);
    let table = cli(bin, base, &args).await;
    args.extend(["-o", "json"]);
    let out = cli(bin, base, &args).await;
    let summary = out.json()["summary"].clone();
    assert!(summary.is_object(), "no summary: {}", out.stdout);
    (table.code, summary)
}

/// Asserts that c2quay's answer means what the CLI's summary and exit code mean.
fn assert_same(case: &str, answer: &GateAnswer, code: i32, summary: &Value) {
    let expected = match summary["deployable"] {
        Value::Bool(true) => Verdict::Deployable,
        Value::Bool(false) => Verdict::NotDeployable,
        Value::Null => Verdict::Unknown,
        ref other => panic!("{case}: deployable is {other}"),
    };
    assert_eq!(answer.verdict, expected, "{case}: verdict vs {summary}");
    assert_eq!(
        code == 0,
        expected == Verdict::Deployable,
        "{case}: CLI exit code {code} vs {summary}"
    );
    assert_eq!(
        Some(answer.reason.as_str()),
        summary["reason"].as_str(),
        "{case}: reason"
    );
    let count = |k: &str| summary[k].as_u64().unwrap_or(0);
    assert_eq!(
        (answer.success, answer.failed, answer.unknown),
        (count("success"), count("failed"), count("unknown")),
        "{case}: counts vs {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_official_cli_give_the_same_verdicts() {
    let Some(bin) = pact_cli("client_and_official_cli_give_the_same_verdicts") else {
        return;
    };
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_decisions(&e);
    let broker = client(&e);
    let cases: [(&str, Vec<Candidate>, GateMode, Verdict); 7] = [
        (
            "deployable",
            vec![cand("Foo", "1")],
            GateMode::PerService,
            Verdict::Deployable,
        ),
        (
            "failed verification",
            vec![cand("Foo", "2")],
            GateMode::PerService,
            Verdict::NotDeployable,
        ),
        (
            "missing verification",
            vec![cand("Foo", "3")],
            GateMode::PerService,
            Verdict::Unknown,
        ),
        (
            "unknown version",
            vec![cand("Foo", "99")],
            GateMode::PerService,
            Verdict::NotDeployable,
        ),
        (
            "two selectors, deployable together",
            vec![cand("Foo", "3"), cand("Bar", "11")],
            GateMode::AllOrNothing,
            Verdict::Deployable,
        ),
        (
            "two selectors, failed verification",
            vec![cand("Foo", "2"), cand("Bar", "10")],
            GateMode::AllOrNothing,
            Verdict::NotDeployable,
        ),
        (
            "two selectors, missing verification",
            vec![cand("Foo", "3"), cand("Bar", "10")],
            GateMode::AllOrNothing,
            Verdict::Unknown,
        ),
    ];
    for (case, set, mode, want) in cases {
        let (code, summary) = cli_verdict(&bin, &e.base_url, &set).await;
        let answers = broker
            .can_i_deploy("production", &set, mode)
            .await
            .unwrap_or_else(|err| panic!("{case}: c2quay's client failed: {err}"));
        assert_eq!(answers.len(), 1, "{case}: one answer");
        assert_same(case, &answers[0], code, &summary);
        assert_eq!(
            answers[0].verdict, want,
            "{case}: the scenario means what it says"
        );
        println!(
            "{case}: CLI exit {code}, deployable {}; c2quay {:?}",
            summary["deployable"], answers[0].verdict
        );
    }

    // Per service, several candidates: one answer each, in the caller's order, each the same as
    // the CLI's answer for that candidate alone.
    let set = [
        cand("Foo", "3"),
        cand("Foo", "1"),
        cand("Foo", "99"),
        cand("Foo", "2"),
    ];
    let answers = broker
        .can_i_deploy("production", &set, GateMode::PerService)
        .await
        .expect("per-service gate");
    assert_eq!(answers.len(), set.len());
    for (c, answer) in set.iter().zip(&answers) {
        let (code, summary) = cli_verdict(&bin, &e.base_url, std::slice::from_ref(c)).await;
        assert_same(
            &format!("per service {}", c.version),
            answer,
            code,
            &summary,
        );
    }
    e.shutdown().await;
}

/// `(pacticipant, version, instance, currently deployed)` of every record, oldest first.
fn records(e: &RunningEmulator, env: &str) -> Vec<(String, String, Option<String>, bool)> {
    e.deployments(env)
        .into_iter()
        .map(|d| {
            (
                d.pacticipant,
                d.version,
                d.application_instance,
                d.currently_deployed,
            )
        })
        .collect()
}

fn seed_versions(e: &RunningEmulator) {
    e.create_environment("production", true).expect("env");
    for v in ["1", "2"] {
        e.create_version("Foo Thing", v, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_deployment_by_client_and_cli_leads_to_the_same_state() {
    let Some(bin) = pact_cli("record_deployment_by_client_and_cli_leads_to_the_same_state") else {
        return;
    };
    let by_cli = start(EmulatorConfig::default()).await.expect("starts");
    let by_client = start(EmulatorConfig::default()).await.expect("starts");
    seed_versions(&by_cli);
    seed_versions(&by_client);
    let broker = client(&by_client);
    // Same version twice (idempotent), then a new version (auto-undeploys the old one), then an
    // application instance beside it, recorded twice.
    let steps: [(&str, Option<&str>); 5] = [
        ("1", None),
        ("1", None),
        ("2", None),
        ("1", Some("blue")),
        ("1", Some("blue")),
    ];
    for (i, (version, instance)) in steps.into_iter().enumerate() {
        let mut args = vec![
            "record-deployment",
            "--pacticipant",
            "Foo Thing",
            "--version",
            version,
            "--environment",
            "production",
        ];
        if let Some(instance) = instance {
            args.extend(["--application-instance", instance]);
        }
        let out = cli(&bin, &by_cli.base_url, &args).await;
        assert_eq!(out.code, 0, "step {i}: {}{}", out.stdout, out.stderr);
        broker
            .record_deployment("production", &cand("Foo Thing", version), instance)
            .await
            .unwrap_or_else(|err| panic!("step {i}: c2quay's client failed: {err}"));
        assert_eq!(
            records(&by_client, "production"),
            records(&by_cli, "production"),
            "step {i}: same records"
        );
        if i == 1 {
            assert_eq!(by_client.currently_deployed("production").len(), 1);
            assert_eq!(by_client.deployments("production").len(), 1, "idempotent");
        }
    }
    let current: Vec<_> = by_client
        .currently_deployed("production")
        .into_iter()
        .map(|d| (d.version, d.application_instance))
        .collect();
    assert_eq!(
        current,
        vec![
            ("2".to_string(), None),
            ("1".to_string(), Some("blue".to_string()))
        ]
    );
    by_cli.shutdown().await;
    by_client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_undeployment_by_client_and_cli_leads_to_the_same_state() {
    let Some(bin) = pact_cli("record_undeployment_by_client_and_cli_leads_to_the_same_state")
    else {
        return;
    };
    let by_cli = start(EmulatorConfig::default()).await.expect("starts");
    let by_client = start(EmulatorConfig::default()).await.expect("starts");
    for e in [&by_cli, &by_client] {
        seed_versions(e);
        e.create_version("Other", "5", None);
        for (p, v, instance) in [
            ("Foo Thing", "1", None),
            ("Foo Thing", "2", Some("blue")),
            ("Foo Thing", "2", Some("green")),
            ("Other", "5", None),
        ] {
            e.record_deployment(p, v, "production", instance)
                .expect("live");
        }
    }
    let broker = client(&by_client);
    // One instance, then the instance-less record, then the same again (nothing left: the CLI
    // exits 1, the client answers NothingDeployed), then an instance that never ran.
    let steps: [(Option<&str>, bool); 4] = [
        (Some("blue"), true),
        (None, true),
        (None, false),
        (Some("red"), false),
    ];
    for (i, (instance, undeploys)) in steps.into_iter().enumerate() {
        let mut args = vec![
            "record-undeployment",
            "--pacticipant",
            "Foo Thing",
            "--environment",
            "production",
        ];
        if let Some(instance) = instance {
            args.extend(["--application-instance", instance]);
        }
        let out = cli(&bin, &by_cli.base_url, &args).await;
        let expected_code = if undeploys { 0 } else { 1 };
        assert_eq!(
            out.code, expected_code,
            "step {i}: {}{}",
            out.stdout, out.stderr
        );
        let outcome = broker
            .record_undeployment("production", "Foo Thing", instance)
            .await
            .unwrap_or_else(|err| panic!("step {i}: c2quay's client failed: {err}"));
        assert_eq!(
            outcome != c2quay::broker::UndeployOutcome::NothingDeployed,
            undeploys,
            "step {i}: {outcome:?}"
        );
        assert_eq!(
            records(&by_client, "production"),
            records(&by_cli, "production"),
            "step {i}: same records"
        );
    }
    let current: Vec<_> = by_client
        .currently_deployed("production")
        .into_iter()
        .map(|d| (d.pacticipant, d.application_instance))
        .collect();
    assert_eq!(
        current,
        vec![
            ("Foo Thing".to_string(), Some("green".to_string())),
            ("Other".to_string(), None)
        ]
    );
    by_cli.shutdown().await;
    by_client.shutdown().await;
}

/// web, api and worker each consume db; db 1 runs in production and verified all three, so each
/// service is deployable on its own, in any order.
fn seed_three(e: &RunningEmulator) {
    e.create_environment("production", true).expect("env");
    for (svc, dep) in [("web", "db"), ("api", "db"), ("worker", "db")] {
        e.seed_pact(svc, "1", dep, &pact_doc(svc, dep, svc));
    }
    for (provider, consumer) in [("db", "web"), ("db", "worker"), ("db", "api")] {
        e.seed_verification(provider, "1", consumer, "1", true)
            .expect("verify");
    }
    e.record_deployment("db", "1", "production", None)
        .expect("db live");
    e.clear_requests();
}

const THREE: [&str; 3] = ["api", "web", "worker"];

async fn client_round(broker: &HttpBroker, mode: GateMode) {
    let set: Vec<Candidate> = THREE.iter().map(|s| cand(s, "1")).collect();
    let answers = broker
        .can_i_deploy("production", &set, mode)
        .await
        .expect("gate");
    assert!(
        answers.iter().all(|a| a.verdict == Verdict::Deployable),
        "{answers:?}"
    );
    for c in &set {
        broker
            .record_deployment("production", c, None)
            .await
            .expect("record");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figure_requests_for_three_gates_and_three_records() {
    let Some(bin) = pact_cli("figure_requests_for_three_gates_and_three_records") else {
        return;
    };
    // The official CLI: can-i-deploy + record-deployment per service.
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_three(&e);
    for svc in THREE {
        let out = cli(
            &bin,
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
        let out = cli(
            &bin,
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
    let by_cli = e.requests().len();
    let cli_state = records(&e, "production");
    e.shutdown().await;

    // c2quay's client, per service: cold (fresh client), then warm (same client, same work).
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_three(&e);
    let broker = client(&e);
    client_round(&broker, GateMode::PerService).await;
    let cold = e.requests().len();
    assert_eq!(
        records(&e, "production"),
        cli_state,
        "same records as the CLI"
    );
    e.clear_requests();
    client_round(&broker, GateMode::PerService).await;
    let warm = e.requests().len();
    assert_eq!(
        records(&e, "production"),
        cli_state,
        "recording again changed nothing"
    );
    e.shutdown().await;

    // c2quay's client, all-or-nothing (one aggregate matrix query), cold.
    let e = start(EmulatorConfig::default()).await.expect("starts");
    seed_three(&e);
    client_round(&client(&e), GateMode::AllOrNothing).await;
    let aon_cold = e.requests().len();
    e.shutdown().await;

    println!("FIGURE gate 3 services + record 3 deployments, HTTP requests:");
    println!("FIGURE   official pact CLI (3 can-i-deploy + 3 record-deployment): {by_cli}");
    println!("FIGURE   c2quay client per service, cold: {cold}");
    println!("FIGURE   c2quay client per service, warm: {warm}");
    println!("FIGURE   c2quay client all-or-nothing, cold: {aon_cold}");
    // The client pays one index GET once per broker, then caches it and the record links.
    assert!(cold <= by_cli + 1, "cold {cold} vs CLI {by_cli}");
    assert!(warm < by_cli, "warm {warm} vs CLI {by_cli}");
    assert!(
        aon_cold <= cold,
        "all-or-nothing {aon_cold} vs per service {cold}"
    );
}

mod gate_limits;
mod waves;
