//! End to end: `c2quay deploy` (the real binary) against a real Docker engine, Compose v2 and the
//! in-process broker emulator. Issue 7, tests 1-4 and 6: the happy path, a blocked gate, rollback
//! after readiness and smoke failures, rollback `off` / `dry-run` and `--dry-run`.
//!
//! Measured wall times are printed as `E2E-TIME <scenario>: <s>` (run with `--nocapture`).

use crate::support::{self, c2quay};

use std::time::Instant;

use c2quay::{Spec, Svc, World, deployed, emulator, pact, report_time};
use c2quay_broker_emulator::EmulatorConfig;
use support::docker::{free_port, http_get, require_docker, wait_for_http};

const BODY: &str = "c2quay-test web version";

fn smoke(spec: &mut Spec, port: u16) {
    spec.http_smoke = vec![(format!("http://127.0.0.1:{port}/"), BODY.into())];
}

/// Issue 7 tests 1 and 2: v1 -> v2, then a NotDeployable and an Unknown gate change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_then_blocked_gates_change_nothing() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_port();
    let web = Svc::web("web", "shop-web", "1", port);
    let broker = emulator(
        EmulatorConfig::default(),
        &[("shop-web", "1"), ("shop-web", "2"), ("shop-api", "7")],
    )
    .await;
    let world = World::new("e2e-happy", std::slice::from_ref(&web));
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    smoke(&mut spec, port);
    world.write_manifest(&spec);

    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1 deploy: {}", v1.text());
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "1".into())]);

    spec.services = vec![web.at("2", "c2quay-test/web:2")];
    world.write_manifest(&spec);
    let v2 = world.deploy(&[]).await;
    report_time("happy v1->v2 deploy", v2.elapsed);
    assert_eq!(v2.code, 0, "v2 deploy: {}", v2.text());
    let (status, body) = http_get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!((status, body.trim()), (200, "c2quay-test web version 2"));
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "2".into())]);
    let report = world.latest_report("deploy").expect("a deploy report");
    assert_eq!(report["outcome"]["outcome"], "deployed", "{report:#}");
    assert_eq!(report["changed"], serde_json::json!(["web"]));
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    for step in [
        "snapshot",
        "gate",
        "up",
        "readiness",
        "smoke",
        "verify",
        "record",
    ] {
        assert!(steps.contains(&step), "step {step} missing in {steps:?}");
    }
    let status = world.status().expect("status.json");
    assert_eq!(status["releases"]["web"]["version"], "2", "{status:#}");
    assert_eq!(status["phase"], "Ready", "{status:#}");
    assert!(world.files_in("outbox").is_empty(), "outbox emptied");
    assert!(
        !world.env_dir().join("intent.json").exists(),
        "intent cleared"
    );

    // Gate NotDeployable: shop-web 3 needs shop-api 7 (deployed), whose verification failed.
    broker
        .record_deployment("shop-api", "7", "test", None)
        .expect("seed api deployment");
    broker.seed_pact(
        "shop-web",
        "3",
        "shop-api",
        &pact("shop-web", "shop-api", "3"),
    );
    broker
        .seed_verification("shop-api", "7", "shop-web", "3", false)
        .expect("seed failed verification");
    // Gate Unknown: shop-web 4 has a pact with shop-api that nobody verified.
    broker.seed_pact(
        "shop-web",
        "4",
        "shop-api",
        &pact("shop-web", "shop-api", "4"),
    );
    let records_before = broker.deployments("test").len();
    let ids_before = world.container_ids();
    for (version, verdict) in [("3", "NotDeployable"), ("4", "Unknown")] {
        spec.services = vec![web.at(version, "c2quay-test/web:smokefail")];
        world.write_manifest(&spec);
        let blocked = world.deploy(&[]).await;
        report_time(&format!("gate {verdict}"), blocked.elapsed);
        assert_eq!(blocked.code, 3, "gate {verdict}: {}", blocked.text());
        let text = blocked.text();
        assert!(text.contains(verdict), "names {verdict}: {text}");
        assert!(text.contains(&format!("shop-web {version}")), "{text}");
        assert_eq!(
            world.container_ids(),
            ids_before,
            "host untouched ({verdict})"
        );
        assert_eq!(broker.deployments("test").len(), records_before);
        let report = world.latest_report("deploy").expect("report");
        assert_eq!(report["outcome"]["outcome"], "gateBlocked", "{report:#}");
        let status = world.status().expect("status");
        assert_eq!(status["phase"], "GateBlocked", "{status:#}");
        assert_eq!(status["releases"]["web"]["version"], "2", "{status:#}");
    }
    let reason = world.latest_report("deploy").expect("report")["gate"][0]["answer"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !reason.is_empty(),
        "the broker's reason is kept in the report"
    );
    let (_, body) = http_get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(body.trim(), "c2quay-test web version 2");
    report_time("scenario happy+gate (total)", started.elapsed());
    broker.shutdown().await;
}

/// Issue 7 tests 3 and 4: `:unhealthy` fails readiness and `:smokefail` fails smoke; both roll
/// back to the previous image, which serves and is healthy again; the broker is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_smoke_failures_roll_back() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_port();
    let web = Svc::web("web", "shop-web", "1", port);
    let broker = emulator(
        EmulatorConfig::default(),
        &[
            ("shop-web", "1"),
            ("shop-web", "unhealthy"),
            ("shop-web", "smokefail"),
        ],
    )
    .await;
    let world = World::new("e2e-rollback", std::slice::from_ref(&web));
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    smoke(&mut spec, port);
    world.write_manifest(&spec);
    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1 deploy: {}", v1.text());

    for (version, step, wait) in [
        ("unhealthy", "readiness", "8s"),
        ("smokefail", "smoke", "20s"),
    ] {
        spec.services = vec![web.at(version, &format!("c2quay-test/web:{version}"))];
        spec.wait_timeout = wait.into();
        world.write_manifest(&spec);
        let failed = world.deploy(&[]).await;
        report_time(&format!("{version} deploy + auto-rollback"), failed.elapsed);
        assert_eq!(failed.code, 4, "{version}: {}", failed.text());
        assert!(
            failed.stderr.contains(&format!("failed step: {step}")),
            "{}",
            failed.text()
        );
        assert!(
            failed.stderr.contains("rollback: succeeded"),
            "{}",
            failed.text()
        );
        // v1 serves again and is healthy.
        let body = wait_for_http(
            &format!("http://127.0.0.1:{port}/"),
            std::time::Duration::from_secs(10),
            |status, body| status == 200 && body.contains("version 1"),
        );
        assert!(
            body.is_ok(),
            "{version}: v1 serves after rollback: {body:?}"
        );
        let containers = world.containers();
        let (id, image, state) = &containers["web"];
        assert_eq!(
            (image.as_str(), state.as_str()),
            ("c2quay-test/web:1", "running")
        );
        assert_eq!(support::docker::health_status(id), "healthy");
        // The broker still shows v1; nothing new was recorded.
        assert_eq!(deployed(&broker), vec![("shop-web".into(), "1".into())]);
        assert_eq!(broker.deployments("test").len(), 1);
        let rollback = world.latest_report("rollback").expect("rollback report");
        assert_eq!(rollback["failedStep"], step, "{rollback:#}");
        assert_eq!(rollback["result"], "succeeded", "{rollback:#}");
        assert_eq!(rollback["restored"]["web"], "c2quay-test/web:1");
        assert!(!rollback["cause"].as_str().unwrap_or_default().is_empty());
        let report = world.latest_report("deploy").expect("deploy report");
        assert_eq!(report["outcome"]["outcome"], "rolledBack", "{report:#}");
        assert!(world.files_in("outbox").is_empty(), "nothing to record");
        let status = world.status().expect("status");
        assert_eq!(status["releases"]["web"]["version"], "1", "{status:#}");
        assert_eq!(status["phase"], "RolledBack", "{status:#}");
        assert_eq!(
            status["failedGeneration"], report["generation"],
            "{status:#}"
        );
    }
    report_time("scenario rollbacks (total)", started.elapsed());
    broker.shutdown().await;
}

/// Issue 7 test 6: rollback `off` prints commands that really restore v1; rollback `dry-run`
/// prints what it would restore; neither rolls back (exit 5). `--dry-run` changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_off_and_dry_run_leave_the_failure_in_place() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_port();
    let web = Svc::web("web", "shop-web", "1", port);
    let broker = emulator(
        EmulatorConfig::default(),
        &[("shop-web", "1"), ("shop-web", "smokefail")],
    )
    .await;
    let world = World::new("e2e-rollback-off", std::slice::from_ref(&web));
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    smoke(&mut spec, port);
    world.write_manifest(&spec);
    let v1 = world.deploy(&[]).await;
    assert_eq!(v1.code, 0, "v1 deploy: {}", v1.text());
    let url = format!("http://127.0.0.1:{port}/");

    spec.services = vec![web.at("smokefail", "c2quay-test/web:smokefail")];
    world.write_manifest(&spec);
    // --dry-run: the plan names the pin and the record; nothing changes.
    let ids = world.container_ids();
    let dry = world.deploy(&["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.text());
    assert!(dry.stdout.contains(&world.project), "{}", dry.text());
    assert!(
        dry.stdout.contains("web: pin c2quay-test/web:smokefail"),
        "{}",
        dry.text()
    );
    assert!(
        dry.stdout.contains("record shop-web smokefail"),
        "{}",
        dry.text()
    );
    assert_eq!(world.container_ids(), ids);
    assert_eq!(broker.deployments("test").len(), 1);

    // --rollback off: exit 5, smokefail stays, the printed commands restore v1.
    let off = world.deploy(&["--rollback", "off"]).await;
    report_time("smokefail with rollback off", off.elapsed);
    assert_eq!(off.code, 5, "{}", off.text());
    assert!(http_get(&url).1.contains("BROKEN"), "not rolled back");
    let script = manual_commands(&off.stderr);
    assert!(script.contains("image: c2quay-test/web:1"), "{script}");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&world.compose_dir)
        .output()
        .expect("run the printed commands");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(format!("/tmp/{}-rollback.yaml", world.project));
    let back = wait_for_http(&url, std::time::Duration::from_secs(15), |s, b| {
        s == 200 && b.contains("version 1")
    });
    assert!(back.is_ok(), "the printed commands restore v1: {back:?}");

    // --rollback dry-run: exit 5, says what it would restore, leaves smokefail running.
    let dry_rb = world.deploy(&["--rollback", "dry-run"]).await;
    report_time("smokefail with rollback dry-run", dry_rb.elapsed);
    assert_eq!(dry_rb.code, 5, "{}", dry_rb.text());
    assert!(
        dry_rb.stderr.contains("web: c2quay-test/web:1"),
        "{}",
        dry_rb.text()
    );
    assert!(http_get(&url).1.contains("BROKEN"), "not rolled back");
    let rollback = world.latest_report("rollback").expect("rollback report");
    assert_eq!(rollback["mode"], "dry-run", "{rollback:#}");
    let status = world.status().expect("status");
    assert_eq!(status["phase"], "Degraded", "{status:#}");
    assert_eq!(broker.deployments("test").len(), 1, "nothing recorded");
    report_time("scenario rollback off/dry-run (total)", started.elapsed());
    broker.shutdown().await;
}

/// The shell commands of a "rollback is off" hint: the `cat` heredoc and the `docker compose` line.
fn manual_commands(stderr: &str) -> String {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in stderr.lines() {
        if line.contains("to roll back by hand run:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with("next:") {
            break;
        }
        match line.strip_prefix("  ") {
            Some(cmd) if cmd.starts_with("cat ") || cmd.starts_with("docker ") => lines.push(cmd),
            _ => lines.push(line),
        }
    }
    lines.join("\n")
}
