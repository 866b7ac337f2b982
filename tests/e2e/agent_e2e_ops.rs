//! The real `c2quay agent` when things go wrong around a deployed environment (issue 4, tests 4
//! and 5): the broker down while recording, and containers killed or removed behind its back.

use crate::support::{agent, docker};

use std::time::{Duration, Instant};

use agent::{Agent, Broker, EnvSpec, World, condition, wait_until};
use c2quay_broker_emulator::{FaultKind, FaultSpec};
use docker::require_docker;
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);

fn ready_at(status: &Value, version: &str) -> bool {
    status["phase"] == "Ready"
        && status["appliedGeneration"] == status["observedGeneration"]
        && status["releases"]["web"]["version"] == version
}

fn recorded(status: &Value) -> bool {
    status["pendingRecords"] == 0 && condition(status, "Recorded").is_some_and(|c| c.0 == "True")
}

/// Successful record-deployment requests (2xx) the emulator answered.
fn accepted_records(broker: &Broker) -> usize {
    broker
        .emu()
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.contains("/deployed-versions/")
                && r.status.is_some_and(|s| (200..300).contains(&s))
        })
        .count()
}

/// Test 4: the broker fails every record: the environment is `Ready` with `Recorded=False` and
/// the pending record in status, across an agent restart; once the broker is back the record is
/// made exactly once.
#[test]
fn a_record_the_broker_refused_stays_pending_across_a_restart_and_is_made_exactly_once() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("outbox", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &[]);
    agent.wait_status("outbox", CONVERGE, "Ready at 1", |s| {
        ready_at(s, "1") && recorded(s)
    });
    let accepted_before = accepted_records(&broker);

    broker.emu().inject_fault(
        FaultSpec::new(FaultKind::Unavailable, 10_000).on_path("/deployed-versions/"),
    );
    spec.version = "2".into();
    spec.write(&world.desired);
    let pending = agent.wait_status("outbox", CONVERGE, "Ready, record pending", |s| {
        ready_at(s, "2") && s["pendingRecords"] == 1
    });
    let (cond, reason, message) = condition(&pending, "Recorded").expect("Recorded condition");
    assert_eq!((cond.as_str(), reason.as_str()), ("False", "RecordPending"));
    assert!(
        message.contains(&spec.pacticipant) && message.contains(" 2 "),
        "the pending record is not named: {message}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);
    assert_eq!(world.outbox_len("outbox"), 1);

    // Across a restart (kill -9): still pending, still Ready.
    agent.kill9();
    let agent = Agent::start(&world, &[]);
    let again = agent.wait_status("outbox", CONVERGE, "Ready, record pending", |s| {
        ready_at(s, "2")
            && s["pendingRecords"] == 1
            && s["lastReconcileAt"] != pending["lastReconcileAt"]
    });
    assert_eq!(
        condition(&again, "Recorded").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert!(
        wait_until(Duration::from_secs(5), || broker.record_requests() > 1),
        "the restarted agent did not retry the record"
    );

    // The broker is back: recorded exactly once.
    broker.emu().clear_faults();
    let cleared = Instant::now();
    agent.wait_status("outbox", Duration::from_secs(90), "recorded", |s| {
        ready_at(s, "2") && recorded(s)
    });
    let record_latency = cleared.elapsed();
    assert_eq!(broker.current(&spec.pacticipant), ["2"]);
    assert_eq!(world.outbox_len("outbox"), 0);
    // A few more resyncs: no second record.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        accepted_records(&broker) - accepted_before,
        1,
        "the pending record was not made exactly once"
    );
    assert!(broker.duplicate_records(&spec.pacticipant).is_empty());
    eprintln!(
        "FIGURE test4 outbox: {} record attempts refused; recorded {record_latency:?} after the broker came back; wall {:?}",
        broker.record_requests() - accepted_records(&broker),
        started.elapsed()
    );
}

fn web_container_id(spec: &EnvSpec) -> Option<String> {
    let out = docker::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", spec.project),
        "--filter",
        "label=com.docker.compose.service=web",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

/// Test 5: `docker kill` and `docker rm -f` of a service container: healed with `selfHeal: true`
/// (no new record), reported `Drifted` without it (and left alone).
#[test]
fn killed_or_removed_containers_are_healed_with_self_heal_and_reported_drifted_without() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut healing, _g1) = world.env("healing", Some(&broker));
    healing.self_heal = true;
    let (watching, _g2) = world.env("watching", Some(&broker));
    for spec in [&healing, &watching] {
        broker.seed_deployable(&spec.pacticipant, "1");
        spec.write(&world.desired);
    }
    let agent = Agent::start(&world, &[]);
    for name in ["healing", "watching"] {
        agent.wait_status(name, CONVERGE, "Ready at 1", |s| {
            ready_at(s, "1") && recorded(s)
        });
    }
    let records_before = broker.emu().deployments(agent::BROKER_ENV).len();

    let mut heal_times = Vec::new();
    for (round, how) in [["kill"], ["rm -f"]].into_iter().enumerate() {
        let id = web_container_id(&healing).expect("healing's container");
        let args: Vec<&str> = how[0].split(' ').chain([id.as_str()]).collect();
        let out = docker::docker(&args);
        assert!(out.status.success(), "docker {how:?} failed");
        let broken = Instant::now();
        assert!(
            wait_until(Duration::from_secs(30), || {
                healing.web_containers()
                    == [("c2quay-test/web:1".to_string(), "running".to_string())]
                    && healing.served_version().as_deref() == Some("1")
            }),
            "not healed after docker {how:?}: {:?}\n{}",
            healing.web_containers(),
            agent::tail(&agent.log_text(), 30)
        );
        heal_times.push(broken.elapsed());
        agent.wait_status(
            "healing",
            Duration::from_secs(20),
            "Ready after heal",
            // The heal count, not `lastResult`: a no-op reconcile may follow the heal at once.
            |s| ready_at(s, "1") && s["heals"].as_array().map_or(0, Vec::len) > round,
        );
    }
    assert_eq!(
        broker.emu().deployments(agent::BROKER_ENV).len(),
        records_before,
        "a heal recorded a deployment"
    );

    // Without selfHeal: reported, left alone.
    let id = web_container_id(&watching).expect("watching's container");
    assert!(docker::docker(&["kill", &id]).status.success());
    let drifted = agent.wait_phase("watching", "Drifted", Duration::from_secs(30));
    assert!(
        drifted["message"]
            .as_str()
            .is_some_and(|m| m.contains("web")),
        "{drifted}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        watching.web_containers(),
        [("c2quay-test/web:1".to_string(), "exited".to_string())],
        "a drifted environment without selfHeal was touched"
    );
    assert!(docker::docker(&["rm", "-f", &id]).status.success());
    std::thread::sleep(Duration::from_secs(3));
    let still = agent.status("watching").expect("status");
    assert_eq!(still["phase"], "Drifted", "{still}");
    assert!(watching.web_containers().is_empty());
    eprintln!(
        "FIGURE test5 drift: heal after docker kill {:?}, after docker rm -f {:?}; wall {:?}",
        heal_times[0],
        heal_times[1],
        started.elapsed()
    );
}
