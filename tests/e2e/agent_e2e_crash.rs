//! Crash safety of the real `c2quay agent` (issue 4, tests 3 and 8): `kill -9` at each stage of
//! a deploy, and SIGTERM during a deploy.
//!
//! Stages are hit by timing, not by hooks in the pipeline: the journal's intent file, the audit
//! log (`envs/<name>/audit.jsonl`), a smoke `exec` check that sleeps (a window after readiness,
//! before smoke passes), and a `Hang` fault on record-deployment (a window after smoke, before
//! the broker answered the record). `C2QUAY_KILL9_ROUNDS` sets the rounds over the four stages
//! (default 2, so 8 kills).
//!
//! Issue 11: the same kills with a slow-stopping service (a bare `httpd` as PID 1 ignores
//! SIGTERM, so every recreate takes Compose's 10 s stop timeout), `selfHeal` false and true,
//! and a kill during a rollback: after each restart the deploy is resumed to Ready (never
//! counted as a failed release), the interrupted rollback finished; one record per version.

use crate::support::{agent, docker};

use std::time::{Duration, Instant};

use agent::{Agent, Broker, EnvSpec, World, condition, wait_until};
use c2quay_broker_emulator::{FaultKind, FaultSpec};
use docker::require_docker;
use serde_json::Value;

const ENV: &str = "crash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AfterIntent,
    DuringUp,
    AfterReadyBeforeSmoke,
    AfterSmokeBeforeRecord,
}

const STAGES: [Stage; 4] = [
    Stage::AfterIntent,
    Stage::DuringUp,
    Stage::AfterReadyBeforeSmoke,
    Stage::AfterSmokeBeforeRecord,
];

/// How a restarted agent left the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Converged {
    Finished,
    RolledBack,
}

/// Pids of the live processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent_of(*child) == Some(pid))
        .collect()
}

/// The parent pid of `pid` from `/proc/PID/stat` (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is alive (a zombie counts as dead).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat[stat.rfind(')')? + 2..].chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

/// Waits for the stage of the deploy started after audit line `mark`; returns whether it was
/// seen (false: the deploy went past it before we looked).
fn wait_for_stage(world: &World, broker: &Broker, stage: Stage, mark: usize) -> bool {
    let timeout = Duration::from_secs(30);
    match stage {
        Stage::AfterIntent => wait_until(timeout, || world.intent_open(ENV)),
        Stage::DuringUp => {
            let seen = wait_until(timeout, || world.intent_open(ENV));
            std::thread::sleep(Duration::from_millis(150));
            seen && !world.audit_has(ENV, mark, "up", "ok")
        }
        Stage::AfterReadyBeforeSmoke => {
            wait_until(timeout, || world.audit_has(ENV, mark, "readiness", "ok"))
                && !world.audit_has(ENV, mark, "smoke", "ok")
        }
        Stage::AfterSmokeBeforeRecord => wait_until(timeout, || {
            broker.emu().requests().iter().any(|r| {
                r.method == "POST" && r.path.contains("/deployed-versions/") && r.status.is_none()
            })
        }),
    }
}

/// Waits until the restarted agent finished or rolled back the generation it observes.
fn wait_converged(agent: &Agent, world: &World, version: &str) -> (Converged, Value) {
    let status = agent.wait_status(ENV, Duration::from_secs(90), "converged", |s| {
        let finished = s["phase"] == "Ready"
            && s["appliedGeneration"] == s["observedGeneration"]
            && s["releases"]["web"]["version"] == version
            && s["pendingRecords"] == 0
            && condition(s, "Recorded").is_some_and(|c| c.0 == "True");
        let rolled_back =
            s["phase"] == "RolledBack" && s["failedGeneration"] == s["observedGeneration"];
        (finished || rolled_back) && !world.intent_open(ENV)
    });
    if status["phase"] == "Ready" {
        (Converged::Finished, status)
    } else {
        (Converged::RolledBack, status)
    }
}

fn image_for(version: u32) -> String {
    format!("c2quay-test/web:{}", 2 - version % 2)
}

/// Test 3: `kill -9` at each stage; the restarted agent converges, one consistent version runs,
/// and the broker holds exactly one current record of it, with no duplicate records.
#[test]
fn kill_9_at_every_stage_of_a_deploy_converges_with_one_record_of_what_runs() {
    if !require_docker() {
        return;
    }
    let rounds: usize = std::env::var("C2QUAY_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .clamp(1, 25);
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env(ENV, Some(&broker));
    spec.smoke_sleep = Some("2".into());
    spec.image = Some(image_for(1));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &[]);
    wait_converged(&agent, &world, "1");
    // What runs and what the broker should hold as current.
    let mut running: (String, String) = ("1".into(), image_for(1));
    let (mut finished, mut rolled_back, mut missed) = (0usize, 0usize, 0usize);
    let mut version = 1u32;
    // The last pass kills the agent's process alone (as an OOM kill does): its `docker
    // compose up` child lives on while the new agent recovers.
    let passes: Vec<(usize, Stage, bool)> = (0..rounds)
        .flat_map(|round| STAGES.iter().map(move |stage| (round, *stage, false)))
        .chain([
            (rounds, Stage::DuringUp, true),
            (rounds, Stage::AfterIntent, true),
        ])
        .collect();
    let iterations = passes.len();
    let mut orphans_checked = 0;
    for (round, stage, main_only) in passes {
        {
            version += 1;
            let iteration_started = Instant::now();
            let v = version.to_string();
            broker.seed_deployable(&spec.pacticipant, &v);
            if stage == Stage::AfterSmokeBeforeRecord {
                broker.emu().inject_fault(
                    FaultSpec::new(FaultKind::Hang { millis: 4000 }, 1)
                        .on_path("/deployed-versions/"),
                );
            }
            let mark = world.audit(ENV).len();
            spec.version = v.clone();
            spec.image = Some(image_for(version));
            spec.write(&world.desired);
            let hit = wait_for_stage(&world, &broker, stage, mark);
            if main_only {
                // Its children (`docker compose up`, `docker events`) must not outlive it: a
                // leftover `up` would race the restarted agent's recovery.
                let children = children_of(agent.pid());
                agent.kill9_main_only();
                assert!(
                    wait_until(Duration::from_secs(5), || children
                        .iter()
                        .all(|pid| !alive(*pid))),
                    "children {children:?} of the killed agent live on"
                );
                orphans_checked += children.len();
            } else {
                agent.kill9();
            }
            if !hit {
                missed += 1;
            }
            broker.emu().clear_faults();
            agent = Agent::start(&world, &[]);
            let (how, status) = wait_converged(&agent, &world, &v);
            match how {
                Converged::Finished => {
                    finished += 1;
                    running = (v.clone(), image_for(version));
                }
                Converged::RolledBack => rolled_back += 1,
            }
            // One consistent version runs: one container, the expected image, answering.
            let containers = spec.web_containers();
            assert_eq!(
                containers,
                [(running.1.clone(), "running".to_string())],
                "round {round} {stage:?}: {how:?} but the host runs {containers:?}; status {status}"
            );
            let expected = if running.1.ends_with(":2") { "2" } else { "1" };
            assert!(
                wait_until(Duration::from_secs(10), || spec.served_version().as_deref()
                    == Some(expected)),
                "round {round} {stage:?}: web does not answer version {expected}"
            );
            // The broker holds exactly one current record, of what runs; no duplicates.
            assert!(
                wait_until(Duration::from_secs(10), || broker
                    .current(&spec.pacticipant)
                    == [running.0.clone()]),
                "round {round} {stage:?} ({how:?}): broker current {:?}, runs {running:?}; records {:?}",
                broker.current(&spec.pacticipant),
                broker.records(&spec.pacticipant)
            );
            assert_eq!(
                broker.duplicate_records(&spec.pacticipant),
                Vec::<String>::new(),
                "round {round} {stage:?}: duplicate records {:?}",
                broker.records(&spec.pacticipant)
            );
            eprintln!(
                "kill -9 round {round} {stage:?} (main pid only: {main_only}): {how:?} (stage hit: {hit}) in {:?}",
                iteration_started.elapsed()
            );
        }
    }
    let records = broker.records(&spec.pacticipant);
    assert_eq!(
        records.len(),
        finished + 1,
        "one record per finished deploy (plus the first): {records:?}"
    );
    eprintln!(
        "FIGURE test3 kill -9: iterations {}, finished {finished}, rolled back {rolled_back}, \
         stage missed {missed}, duplicate records 0, records {}, children of a killed agent \
         checked dead {orphans_checked}; wall {:?}",
        iterations,
        records.len(),
        started.elapsed()
    );
}

/// Test 8: SIGTERM during a deploy: the agent lets the running step finish and exits cleanly
/// within the grace period; a restart resumes correctly.
#[test]
fn sigterm_during_a_deploy_exits_within_the_grace_period_and_a_restart_resumes() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard): (EnvSpec, _) = world.env(ENV, Some(&broker));
    spec.smoke_sleep = Some("3".into());
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &["--grace", "20s"]);
    wait_converged(&agent, &world, "1");

    let mark = world.audit(ENV).len();
    spec.version = "2".into();
    spec.write(&world.desired);
    assert!(wait_until(Duration::from_secs(30), || world.audit_has(
        ENV,
        mark,
        "readiness",
        "ok"
    )));
    let (exit, took) = agent
        .sigterm(Duration::from_secs(25))
        .expect("the agent did not exit within the grace period");
    assert!(exit.success(), "exit {exit}");
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    // The running reconcile finished its deploy before the exit: nothing left open.
    let finished_before_exit = world.audit_has(ENV, mark, "result", "deployed");
    assert!(
        finished_before_exit || world.intent_open(ENV),
        "neither finished nor journaled"
    );

    let agent = Agent::start(&world, &[]);
    let (how, _) = wait_converged(&agent, &world, "2");
    assert_eq!(how, Converged::Finished);
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    assert_eq!(broker.current(&spec.pacticipant), ["2"]);
    assert!(broker.duplicate_records(&spec.pacticipant).is_empty());
    eprintln!(
        "FIGURE test8 SIGTERM: exit after {took:?} (deploy finished before exit: {finished_before_exit}); wall {:?}",
        started.elapsed()
    );
}

/// Where a slow-stop test kills the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlowStage {
    /// The intent is written, before `up` (the debounce and gate are past).
    BeforeUp,
    /// `docker compose up` is recreating: the daemon is stopping the old container, whose PID 1
    /// ignores SIGTERM, for the 10 s stop timeout.
    DuringUp,
    /// Readiness passed, the slow smoke check runs.
    DuringSmoke,
    /// Smoke passed, record-deployment hangs in the broker.
    DuringRecord,
}

/// Waits for `stage` of the deploy started after audit line `mark`; whether it was seen.
fn wait_for_slow_stage(world: &World, broker: &Broker, stage: SlowStage, mark: usize) -> bool {
    let timeout = Duration::from_secs(40);
    match stage {
        SlowStage::BeforeUp => wait_until(timeout, || world.intent_open(ENV)),
        SlowStage::DuringUp => {
            let seen = wait_until(timeout, || world.intent_open(ENV));
            // Well inside the 10 s stop of the old container.
            std::thread::sleep(Duration::from_millis(1_500));
            seen && !world.audit_has(ENV, mark, "up", "ok")
        }
        SlowStage::DuringSmoke => wait_for_stage(world, broker, Stage::AfterReadyBeforeSmoke, mark),
        SlowStage::DuringRecord => {
            wait_for_stage(world, broker, Stage::AfterSmokeBeforeRecord, mark)
        }
    }
}

/// Waits until the restarted agent has `version` Ready, recorded, nothing pending; fails at
/// once (with the status) if the environment ends `RolledBack` or `Drifted` instead: an
/// interrupted deploy is not a failed release (issue 11).
fn wait_ready_at(agent: &Agent, world: &World, version: &str, context: &str) -> Value {
    wait_ready_after(agent, world, version, context, &Value::Null)
}

/// [`wait_ready_at`], ignoring statuses that still observe generation `stale`.
fn wait_ready_after(
    agent: &Agent,
    world: &World,
    version: &str,
    context: &str,
    stale: &Value,
) -> Value {
    let status = agent.wait_status(ENV, Duration::from_secs(120), "Ready or failed", |s| {
        if !stale.is_null() && &s["observedGeneration"] == stale {
            return false;
        }
        let ready = s["phase"] == "Ready"
            && s["appliedGeneration"] == s["observedGeneration"]
            && s["releases"]["web"]["version"] == version
            && s["pendingRecords"] == 0
            && condition(s, "Recorded").is_some_and(|c| c.0 == "True")
            && !world.intent_open(ENV);
        let failed = s["phase"] == "RolledBack" || s["phase"] == "Drifted";
        ready || failed
    });
    assert_eq!(
        status["phase"], "Ready",
        "{context}: the interrupted deploy of {version} did not converge; status {status}"
    );
    status
}

/// One consistent release runs and the broker holds it once as current.
fn assert_runs_once_recorded(
    spec: &EnvSpec,
    broker: &Broker,
    image: &str,
    version: &str,
    context: &str,
) {
    let containers = spec.web_containers();
    assert_eq!(
        containers,
        [(image.to_string(), "running".to_string())],
        "{context}: the host runs {containers:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || broker
            .current(&spec.pacticipant)
            == [version.to_string()]),
        "{context}: broker current {:?}; records {:?}",
        broker.current(&spec.pacticipant),
        broker.records(&spec.pacticipant)
    );
    assert_eq!(
        broker.duplicate_records(&spec.pacticipant),
        Vec::<String>::new(),
        "{context}: duplicate records"
    );
}

/// Issue 11, test 4: `kill -9` of the agent at every step of a deploy of a service whose PID 1
/// ignores SIGTERM (every recreate takes the 10 s stop timeout); after each restart the
/// environment reaches the desired version Ready with exactly one record per deployed version,
/// with no human action. Then a kill during a rollback: the rollback is finished.
fn kill_9_with_a_slow_stopping_service(self_heal: bool, stages: &[SlowStage], kill_rollback: bool) {
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env_slow_stop(ENV, Some(&broker));
    spec.self_heal = self_heal;
    spec.smoke_sleep = Some("3".into());
    spec.image = Some(image_for(1));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &[]);
    wait_ready_at(&agent, &world, "1", "first deploy");
    let mut version = 1u32;
    let (mut resumed, mut hits) = (0usize, 0usize);
    for stage in stages {
        version += 1;
        let iteration = Instant::now();
        let v = version.to_string();
        let context = format!("selfHeal {self_heal}, kill {stage:?} of {v}");
        broker.seed_deployable(&spec.pacticipant, &v);
        if *stage == SlowStage::DuringRecord {
            broker.emu().inject_fault(
                FaultSpec::new(FaultKind::Hang { millis: 4000 }, 1).on_path("/deployed-versions/"),
            );
        }
        let mark = world.audit(ENV).len();
        spec.version = v.clone();
        spec.image = Some(image_for(version));
        spec.write(&world.desired);
        let hit = wait_for_slow_stage(&world, &broker, *stage, mark);
        hits += usize::from(hit);
        agent.kill9();
        broker.emu().clear_faults();
        agent = Agent::start(&world, &[]);
        wait_ready_at(&agent, &world, &v, &context);
        assert_runs_once_recorded(&spec, &broker, &image_for(version), &v, &context);
        if world.audit_has(ENV, mark, "recover", "resumed") {
            resumed += 1;
        }
        assert!(
            !world.audit_has(ENV, mark, "recover", "rolled_back"),
            "{context}: recovery rolled back an interrupted deploy"
        );
        eprintln!(
            "slow-stop kill -9 {context}: Ready (stage hit: {hit}) in {:?}",
            iteration.elapsed()
        );
    }
    let mut rollback_finished = false;
    if kill_rollback {
        // A release whose smoke fails is rolled back; the agent is killed while the rollback's
        // `up` waits for the failed container's 10 s stop. The restart finishes the rollback.
        version += 1;
        let v = version.to_string();
        broker.seed_deployable(&spec.pacticipant, &v);
        let mark = world.audit(ENV).len();
        spec.version = v.clone();
        spec.image = Some("c2quay-test/web:smokefail".into());
        let failing = spec.yaml().replace(
            "status: 200\n",
            "status: 200\n        bodyContains: version\n",
        );
        agent::write_atomic(&world.desired.join(format!("{ENV}.yaml")), &failing);
        assert!(wait_until(Duration::from_secs(90), || world
            .audit_has(ENV, mark, "smoke", "failed")));
        std::thread::sleep(Duration::from_millis(1_500));
        agent.kill9();
        agent = Agent::start(&world, &[]);
        let status = agent.wait_status(ENV, Duration::from_secs(120), "RolledBack", |s| {
            s["phase"] == "RolledBack"
                && s["failedGeneration"] == s["observedGeneration"]
                && !world.intent_open(ENV)
        });
        rollback_finished = world.audit_has(ENV, mark, "recover", "rolled_back");
        let previous = image_for(version - 1);
        let containers = spec.web_containers();
        assert_eq!(
            containers,
            [(previous.clone(), "running".to_string())],
            "rollback not finished: {containers:?}; status {status}"
        );
        // The next good version converges as usual.
        version += 1;
        let v = version.to_string();
        broker.seed_deployable(&spec.pacticipant, &v);
        spec.version = v.clone();
        spec.image = Some(image_for(version));
        spec.write(&world.desired);
        let stale = status["observedGeneration"].clone();
        wait_ready_after(&agent, &world, &v, "after the finished rollback", &stale);
        assert_runs_once_recorded(
            &spec,
            &broker,
            &image_for(version),
            &v,
            "after the rollback",
        );
    }
    let records = broker.records(&spec.pacticipant);
    let deployed = 1 + stages.len() + usize::from(kill_rollback);
    assert_eq!(
        records.len(),
        deployed,
        "one record per deployed version: {records:?}"
    );
    eprintln!(
        "FIGURE slow-stop kill -9 (selfHeal {self_heal}): kills {}, stages hit {hits}, resumed {resumed}, \
         converged Ready {}/{}, interrupted rollback finished {rollback_finished}, records {}, \
         duplicates 0; wall {:?}",
        stages.len() + usize::from(kill_rollback),
        stages.len(),
        stages.len(),
        records.len(),
        started.elapsed()
    );
}

#[test]
fn kill_9_at_every_step_with_a_slow_stopping_service_resumes_without_self_heal() {
    if !require_docker() {
        return;
    }
    kill_9_with_a_slow_stopping_service(
        false,
        &[
            SlowStage::BeforeUp,
            SlowStage::DuringUp,
            SlowStage::DuringSmoke,
            SlowStage::DuringRecord,
        ],
        true,
    );
}

#[test]
fn kill_9_during_up_with_a_slow_stopping_service_resumes_with_self_heal() {
    if !require_docker() {
        return;
    }
    kill_9_with_a_slow_stopping_service(
        true,
        &[SlowStage::DuringUp, SlowStage::DuringSmoke],
        false,
    );
}

/// SIGTERM (systemd stop) while `up` waits for a slow stop: the agent exits within its grace
/// period, and the restart resumes the deploy to Ready with one record.
#[test]
fn sigterm_during_a_long_up_exits_in_grace_and_the_restart_resumes() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env_slow_stop(ENV, Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &["--grace", "20s"]);
    wait_ready_at(&agent, &world, "1", "first deploy");
    let mark = world.audit(ENV).len();
    spec.version = "2".into();
    spec.write(&world.desired);
    assert!(wait_for_slow_stage(
        &world,
        &broker,
        SlowStage::DuringUp,
        mark
    ));
    let (exit, took) = agent
        .sigterm(Duration::from_secs(25))
        .expect("the agent did not exit within the grace period");
    assert!(exit.success(), "exit {exit}");
    let agent = Agent::start(&world, &[]);
    wait_ready_at(&agent, &world, "2", "after SIGTERM during up");
    assert_runs_once_recorded(&spec, &broker, "c2quay-test/web:2", "2", "after SIGTERM");
    assert_eq!(broker.records(&spec.pacticipant).len(), 2);
    eprintln!("FIGURE SIGTERM during a slow up: exit after {took:?}");
}
