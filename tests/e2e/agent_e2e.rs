//! End-to-end tests of the real `c2quay agent` process against Docker and the broker emulator
//! (issue 4, tests 1, 2 and 6, plus the HTTP endpoints, `status`, and `retry`).
//!
//! Each test spawns the binary on its own temp world (desired dir, state dir, Compose dirs),
//! its own emulator and unique Compose projects with free ports; guards tear everything down.

use crate::support::{agent, docker};

use std::time::{Duration, Instant};

use agent::{Agent, Broker, World, condition, wait_until};
use docker::require_docker;

const CONVERGE: Duration = Duration::from_secs(60);

/// Ready at the manifest's generation, applied, and recorded.
fn converged(status: &serde_json::Value, version: &str) -> bool {
    status["phase"] == "Ready"
        && status["appliedGeneration"] == status["observedGeneration"]
        && status["releases"]["web"]["version"] == version
        && condition(status, "Recorded").is_some_and(|(s, _, _)| s == "True")
}

/// Test 1: a version bump written to the desired directory is deployed and recorded within
/// seconds, without a restart. Also: the endpoints answer, and `c2quay status -o json` works
/// with the agent stopped.
#[test]
fn a_version_bump_is_deployed_and_recorded_without_a_restart() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("bump", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &[]);
    let pid = agent.pid();

    agent.wait_status("bump", CONVERGE, "Ready at 1", |s| converged(s, "1"));
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    // The endpoints.
    let (code, body) = agent.get("/healthz").expect("/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, _) = agent.get("/readyz").expect("/readyz");
    assert_eq!(code, 200);
    let (code, metrics) = agent.get("/metrics").expect("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("c2quay_environment_phase") && metrics.contains("environment=\"bump\""),
        "metrics lack the environment's phase:\n{metrics}"
    );
    let (code, list) = agent.get("/api/v1/environments").expect("list");
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_str(&list).expect("list JSON");
    assert!(
        list["environments"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["name"] == "bump")),
        "{list}"
    );
    let (code, _) = agent.get("/api/v1/environments/nope").expect("404");
    assert_eq!(code, 404);

    // The bump: no restart, deployed and recorded within seconds.
    spec.version = "2".into();
    let bumped = Instant::now();
    spec.write(&world.desired);
    agent.wait_status("bump", Duration::from_secs(30), "Ready at 2", |s| {
        converged(s, "2")
    });
    let latency = bumped.elapsed();
    assert_eq!(agent.pid(), pid, "the agent was not restarted");
    assert!(
        wait_until(Duration::from_secs(5), || broker.current(&spec.pacticipant)
            == ["2"]),
        "broker: {:?}",
        broker.records(&spec.pacticipant)
    );
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(
        spec.web_containers(),
        [("c2quay-test/web:2".to_string(), "running".to_string())]
    );
    assert!(
        latency < Duration::from_secs(20),
        "bump took {latency:?} from the file write to Ready and recorded"
    );
    assert!(broker.duplicate_records(&spec.pacticipant).is_empty());

    // Idle: the agent's own reads of the desired directory must not count as changes
    // (regression: every reload triggered the next one, forever).
    let reloads = |a: &Agent| a.log_text().matches("desired directory changed").count();
    let before = reloads(&agent);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        reloads(&agent),
        before,
        "the agent reloads an unchanged directory"
    );

    // Stopped agent: `status -o json` still answers from the state directory.
    let (exit, took) = agent
        .sigterm(Duration::from_secs(25))
        .expect("exit on SIGTERM");
    assert!(exit.success(), "agent exit {exit} after {took:?}");
    let state = world.state.to_string_lossy().into_owned();
    let (code, stdout, stderr) = world.c2quay(&["status", "-o", "json", "--state-dir", &state]);
    assert_eq!(code, 0, "status failed: {stderr}");
    let statuses: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    let bump = statuses
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "bump"))
        .unwrap_or_else(|| panic!("no bump in {stdout}"));
    assert_eq!(bump["phase"], "Ready");
    assert_eq!(bump["releases"]["web"]["version"], "2");
    eprintln!(
        "FIGURE test1 bump: file write -> Ready+recorded {:?}; wall {:?}",
        latency,
        started.elapsed()
    );
}

/// Test 2: gate Unknown -> `GateBlocked` with the broker's reason; the provider's verification
/// arrives in the broker; the agent deploys on its next backoff tick with no other prompt.
#[test]
fn a_blocked_gate_deploys_on_the_next_backoff_tick_once_the_broker_says_yes() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("gated", Some(&broker));
    spec.gate_retry = Some(("1s".into(), "2s".into()));
    broker.seed_unverified(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let agent = Agent::start(&world, &["--resync", "600s"]);

    let blocked = agent.wait_phase("gated", "GateBlocked", CONVERGE);
    let message = blocked["message"].as_str().unwrap_or("");
    assert!(
        message.contains("no verified pact"),
        "GateBlocked without the broker's reason: {message}"
    );
    assert_eq!(
        condition(&blocked, "Gated").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert!(
        spec.web_containers().is_empty(),
        "a blocked gate changed the host"
    );
    // Several backoff ticks pass, nothing changes on the host.
    assert!(wait_until(Duration::from_secs(10), || {
        agent.status("gated").and_then(|s| s["gateChecks"].as_u64()) >= Some(3)
    }));
    assert!(spec.web_containers().is_empty());
    assert!(broker.records(&spec.pacticipant).is_empty());

    // The broker says yes: no file change, no restart, the resync is 10 minutes away.
    broker.verify(&spec.pacticipant, "1");
    let verified = Instant::now();
    agent.wait_status("gated", Duration::from_secs(30), "Ready at 1", |s| {
        converged(s, "1")
    });
    let latency = verified.elapsed();
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    assert!(
        latency < Duration::from_secs(15),
        "deployed {latency:?} after the verification (gateRetry max is 2s)"
    );
    eprintln!(
        "FIGURE test2 gate: verification -> Ready+recorded {latency:?}; wall {:?}",
        started.elapsed()
    );
}

/// Test 6: a broken manifest goes `Invalid` with its message, its running services stay
/// untouched, and the other environments deploy normally. Also `c2quay retry` lets a
/// `RolledBack` generation be tried again, and a removed manifest is `Orphaned`.
#[test]
fn a_broken_manifest_is_invalid_others_deploy_and_a_rolled_back_generation_can_be_retried() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (broken, _g1) = world.env("broken", Some(&broker));
    let (mut other, _g2) = world.env("other", Some(&broker));
    let (mut failing, _g3) = world.env("failing", Some(&broker));
    for spec in [&broken, &other, &failing] {
        broker.seed_deployable(&spec.pacticipant, "1");
        broker.seed_deployable(&spec.pacticipant, "2");
        spec.write(&world.desired);
    }
    let agent = Agent::start(&world, &[]);
    for name in ["broken", "other", "failing"] {
        agent.wait_status(name, CONVERGE, "Ready at 1", |s| converged(s, "1"));
    }
    let before = docker::project_container_ids(&broken.project);

    // Break one manifest; bump another; make the third fail its smoke.
    let bad = broken.yaml().replace("  services:", "  servics:");
    agent::write_atomic(&world.desired.join("broken.yaml"), &bad);
    other.version = "2".into();
    other.write(&world.desired);
    failing.version = "2".into();
    failing.image = Some("c2quay-test/web:smokefail".into());
    failing.extra_yaml = String::new();
    let smokefail = failing.yaml().replace(
        "status: 200\n",
        "status: 200\n        bodyContains: version\n",
    );
    agent::write_atomic(&world.desired.join("failing.yaml"), &smokefail);

    let invalid = agent.wait_phase("broken", "Invalid", Duration::from_secs(20));
    let message = invalid["message"].as_str().unwrap_or("");
    assert!(
        message.contains("broken.yaml") && message.contains("servics"),
        "Invalid without the validation message: {message}"
    );
    agent.wait_status("other", Duration::from_secs(40), "Ready at 2", |s| {
        converged(s, "2")
    });
    let rolled = agent.wait_phase("failing", "RolledBack", Duration::from_secs(60));
    assert!(rolled["failedGeneration"].is_string(), "{rolled}");
    assert_eq!(failing.served_version().as_deref(), Some("1"));
    assert_eq!(broker.current(&failing.pacticipant), ["1"]);
    assert_eq!(
        docker::project_container_ids(&broken.project),
        before,
        "the invalid environment's containers were touched"
    );
    assert_eq!(broken.served_version().as_deref(), Some("1"));

    // Not retried in a loop: a few resyncs later, still one failed deploy.
    let deploys = |w: &World| {
        w.audit("failing")
            .iter()
            .filter(|e| e["step"] == "smoke" && e["outcome"] == "failed")
            .count()
    };
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        deploys(&world),
        1,
        "a failed generation was retried on its own"
    );

    // `c2quay retry` asks again: one more attempt (which fails and rolls back again).
    let state = world.state.to_string_lossy().into_owned();
    let (code, stdout, stderr) = world.c2quay(&["retry", "failing", "--state-dir", &state]);
    assert_eq!(code, 0, "retry: {stdout}{stderr}");
    assert!(
        wait_until(Duration::from_secs(60), || deploys(&world) == 2),
        "retry did not lead to a new attempt:\n{}",
        agent::tail(&agent.log_text(), 40)
    );
    agent.wait_phase("failing", "RolledBack", Duration::from_secs(30));

    // Remove a manifest: Orphaned, containers kept.
    std::fs::remove_file(world.desired.join("other.yaml")).expect("remove manifest");
    let orphaned = agent.wait_phase("other", "Orphaned", Duration::from_secs(20));
    assert!(
        orphaned["message"]
            .as_str()
            .is_some_and(|m| m.contains("docker compose")),
        "{orphaned}"
    );
    assert_eq!(other.served_version().as_deref(), Some("2"));
    // Its metric series are gone (an orphan must not keep alerting), the others remain.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let (_, metrics) = agent.get("/metrics").expect("/metrics");
            !metrics.contains("environment=\"other\"")
                && metrics.contains("environment=\"failing\"")
        }),
        "metrics still carry the orphaned environment"
    );
    eprintln!(
        "FIGURE test6 invalid+retry+orphan: wall {:?}",
        started.elapsed()
    );
}
