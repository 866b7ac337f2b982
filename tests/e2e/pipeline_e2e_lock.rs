//! End to end: `c2quay deploy` against Docker, Compose v2 and the broker emulator. Issue 7, tests
//! 10 and 11: two concurrent deploys of one environment never interleave, and the broker token
//! never reaches the state directory or the output.
//!
//! Measured wall times are printed as `E2E-TIME <scenario>: <s>` (run with `--nocapture`).

use crate::support::{self, c2quay};

use std::time::{Duration, Instant};

use c2quay::{Spec, Svc, World, all_files, deployed, emulator, report_time};
use c2quay_broker_emulator::{AuthConfig, Credential, EmulatorConfig, FaultKind, FaultSpec};
use support::docker::{free_ports, http_get, require_docker};

/// Issue 7 test 10: while one deploy holds the environment, a second one with a short lock wait
/// fails naming the holder's pid, and a third one waits and then finds the environment up to
/// date. The audit log shows the holder's lines, then the waiter's: never interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_wait_or_fail_naming_the_holder() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let port = free_ports(1)[0];
    let web = Svc::web("web", "shop-web", "1", port);
    let broker = emulator(
        EmulatorConfig::default(),
        &[("shop-web", "1"), ("shop-web", "2")],
    )
    .await;
    let world = World::new("e2e-lock", std::slice::from_ref(&web));
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    spec.http_smoke = vec![(format!("http://127.0.0.1:{port}/"), "version 2".into())];
    spec.services = vec![web.at("2", "c2quay-test/web:2")];
    world.write_manifest(&spec);

    let first = world.deploy(&[]);
    let contenders = async {
        let holder = wait_for_holder(&world).await;
        let fail_fast = world.deploy(&["--lock-wait", "500ms"]);
        let waiter = world.deploy(&["--lock-wait", "60s"]);
        let (fail_fast, waiter) = tokio::join!(fail_fast, waiter);
        (holder, fail_fast, waiter)
    };
    let (first, (holder, fail_fast, waiter)) = tokio::join!(first, contenders);
    report_time("deploy holding the lock", first.elapsed);
    report_time("deploy waiting for the lock", waiter.elapsed);
    assert_eq!(first.code, 0, "{}", first.text());
    assert_eq!(fail_fast.code, 1, "{}", fail_fast.text());
    assert!(
        fail_fast.stderr.contains(&format!("pid {holder}"))
            || fail_fast.stderr.contains(&holder.to_string()),
        "names the holder pid {holder}: {}",
        fail_fast.text()
    );
    assert!(
        fail_fast.stderr.contains("nothing on the host was changed"),
        "{}",
        fail_fast.text()
    );
    assert_eq!(waiter.code, 0, "{}", waiter.text());
    assert!(waiter.stdout.contains("up to date"), "{}", waiter.text());
    assert!(
        http_get(&format!("http://127.0.0.1:{port}/"))
            .1
            .contains("version 2")
    );
    assert_eq!(deployed(&broker), vec![("shop-web".into(), "2".into())]);
    assert_eq!(broker.deployments("test").len(), 1, "recorded once");

    // Audit: every line of the holder comes before any line of another process.
    let pids: Vec<u64> = world
        .audit()
        .iter()
        .map(|l| l["pid"].as_u64().expect("pid"))
        .collect();
    let holder = u64::from(holder);
    let last_holder = pids
        .iter()
        .rposition(|p| *p == holder)
        .expect("holder lines");
    let first_other = pids
        .iter()
        .position(|p| *p != holder)
        .expect("waiter lines");
    assert!(last_holder < first_other, "interleaved audit log: {pids:?}");
    assert_eq!(
        pids.iter()
            .filter(|p| **p != holder)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "the fail-fast run wrote nothing: {pids:?}"
    );
    report_time("scenario concurrent deploys (total)", started.elapsed());
    broker.shutdown().await;
}

/// Polls the lock file until a `deploy` holds it; returns the holder's pid.
async fn wait_for_holder(world: &World) -> u32 {
    let path = world.env_dir().join("lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["pid"].as_u64());
        if let Some(pid) = holder {
            return u32::try_from(pid).expect("pid fits u32");
        }
        assert!(Instant::now() < deadline, "no deploy took the lock in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 7 test 11: with a bearer token from `tokenFile`, a deploy, a record failure and a
/// rolled-back deploy leave no trace of the token in the state directory or the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_token_never_reaches_files_or_output() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let canary = format!("c2q-canary-{}-5f3e9a7d1c", std::process::id());
    let config = EmulatorConfig {
        auth: AuthConfig {
            bearer_tokens: vec![Credential::new(&canary)],
            ..AuthConfig::default()
        },
        ..EmulatorConfig::default()
    };
    let broker = emulator(
        config,
        &[
            ("shop-web", "1"),
            ("shop-web", "2"),
            ("shop-web", "smokefail"),
        ],
    )
    .await;
    let port = free_ports(1)[0];
    let web = Svc::web("web", "shop-web", "1", port);
    let world = World::new("e2e-secrets", std::slice::from_ref(&web));
    let token_file = world.root.path().join("broker-token");
    std::fs::write(&token_file, format!("{canary}\n")).expect("token file");
    let mut spec = Spec::new(vec![web.clone()], &broker.base_url);
    spec.token_file = Some(token_file);
    spec.http_smoke = vec![(
        format!("http://127.0.0.1:{port}/"),
        "c2quay-test web version".into(),
    )];
    world.write_manifest(&spec);

    let mut runs = Vec::new();
    runs.push(world.deploy(&["-o", "json"]).await);
    assert_eq!(runs[0].code, 0, "{}", runs[0].text());
    assert_eq!(
        deployed(&broker),
        vec![("shop-web".into(), "1".into())],
        "the token works"
    );
    assert!(
        broker
            .requests()
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Bearer"))
    );

    broker.inject_fault(FaultSpec::new(FaultKind::Unavailable, 50).on_path("/deployed-versions"));
    spec.services = vec![web.at("2", "c2quay-test/web:2")];
    world.write_manifest(&spec);
    runs.push(world.deploy(&[]).await);
    broker.clear_faults();
    assert_eq!(runs[1].code, 6, "{}", runs[1].text());

    spec.services = vec![web.at("smokefail", "c2quay-test/web:smokefail")];
    world.write_manifest(&spec);
    runs.push(world.deploy(&[]).await);
    assert_eq!(runs[2].code, 4, "{}", runs[2].text());
    runs.push(world.c2quay(&["verify", "e2e-secrets"]).await);
    runs.push(
        world
            .c2quay_state_only(&["status", "e2e-secrets", "-o", "json"])
            .await,
    );
    assert_eq!(runs[3].code, 0, "verify: {}", runs[3].text());
    assert_eq!(runs[4].code, 0, "status: {}", runs[4].text());
    assert!(runs[4].stdout.contains("e2e-secrets"), "{}", runs[4].text());

    let names = ["v1", "record failure", "smokefail", "verify", "status"];
    for (run, name) in runs.iter().zip(names) {
        report_time(&format!("secrets: {name}"), run.elapsed);
    }
    for run in &runs {
        assert!(
            !run.stdout.contains(&canary),
            "token in stdout: {}",
            run.text()
        );
        assert!(
            !run.stderr.contains(&canary),
            "token in stderr: {}",
            run.text()
        );
    }
    let files = all_files(&world.state);
    assert!(files.len() >= 8, "the runs wrote state files: {files:?}");
    for file in &files {
        let bytes = std::fs::read(file).expect("read state file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&canary), "token in {}", file.display());
    }
    report_time("scenario secrets (total)", started.elapsed());
    broker.shutdown().await;
}
