//! Ready means serving (issue 18), end to end: the real binary, a real engine, Compose v2 and
//! the broker emulator. Each test is one way c2quay used to say `Ready` (or record a release)
//! while nothing, or the wrong thing, served: a server that exits 0, a release that dies 2 s
//! after start, a missing replica, an unpinned service never started, a hotfix run by hand, a
//! moved tag restored by a rollback, a migration job run again by a rollback.

use std::fs;
use std::time::Duration;

use crate::support::{agent, docker};

use agent::{Agent, Broker, EnvSpec, World, wait_until, write_atomic};
use docker::{docker as docker_cmd, docker_ok, require_docker, service_container_ids};

const CONVERGE: Duration = Duration::from_secs(60);

/// The web service of `spec`, slow to stop or not, with `extra` lines and `more` services.
fn compose(spec: &EnvSpec, slow_stop: bool, extra: &str, more: &str) -> String {
    agent::web_compose(spec.port, slow_stop, extra, more)
}

/// Running containers of `service` in `project`.
fn running(project: &str, service: &str) -> Vec<String> {
    service_container_ids(project, service, true)
}

/// Item 1: a release whose server exits 0 at start (a bad flag, "nothing to do") is not ready:
/// rolled back, not recorded; with a polite image and a SIGTERM-ignoring one.
#[test]
fn a_release_whose_server_exits_0_is_rolled_back_and_not_recorded() {
    if !require_docker() {
        return;
    }
    for slow_stop in [false, true] {
        let world = World::new();
        let broker = Broker::start();
        let (mut spec, _guard) = world.env(&format!("exit0-{slow_stop}"), Some(&broker));
        broker.seed_deployable(&spec.pacticipant, "1");
        broker.seed_deployable(&spec.pacticipant, "2");
        spec.write_compose(&compose(&spec, slow_stop, "", ""));
        spec.write(&world.desired);
        let (code, out) = world.deploy(&spec.name);
        assert_eq!(code, 0, "{out}");

        // Release 2 comes with a command that exits 0 at once.
        let exits_0 = "    entrypoint: [\"true\"]\n";
        let v2 = if slow_stop {
            compose(&spec, true, "", "").replace(agent::SLOW_STOP_ENTRYPOINT, exits_0)
        } else {
            compose(&spec, false, exits_0, "")
        };
        spec.write_compose(&v2);
        spec.version = "2".into();
        spec.write(&world.desired);
        let (code, out) = world.deploy(&spec.name);
        assert_ne!(code, 0, "slow_stop={slow_stop}: {out}");
        assert!(out.contains("exited (0): not a job"), "{out}");
        assert!(out.contains("rolled back"), "{out}");
        assert_eq!(
            broker.current(&spec.pacticipant),
            ["1"],
            "release 2 is not recorded"
        );
        assert_eq!(spec.served_version().as_deref(), Some("1"));
    }
}

/// Item 1 (drift) and item 3: `docker stop` of a server that exits 0 on SIGTERM is drift, and so
/// is a missing replica of a `scale: 2` service; item 4: an unpinned service of the project
/// runs after the first deploy.
#[test]
fn a_stopped_server_and_a_missing_replica_are_drift_and_unpinned_services_run() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (spec, _guard) = world.env("drift18", None);
    let worker = "  worker:\n    image: c2quay-test/web:1\n    pull_policy: never\n    init: true\n    \
                  stop_grace_period: 2s\n    scale: 2\n";
    spec.write_compose(&compose(&spec, false, "", worker));
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("drift18", "Ready", CONVERGE);
    assert_eq!(
        running(&spec.project, "worker").len(),
        2,
        "the unpinned service runs, both replicas"
    );

    let workers = running(&spec.project, "worker");
    docker_ok(&["kill", &workers[0]]);
    let status = agent.wait_phase("drift18", "Drifted", CONVERGE);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("worker: 1 of 2 replicas running")),
        "{status}"
    );

    let web = running(&spec.project, "web");
    docker_ok(&["stop", "-t", "5", &web[0]]);
    let exit = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &web[0]]);
    assert_eq!(exit, "0", "the test image exits 0 on SIGTERM");
    let status = agent.wait_status("drift18", CONVERGE, "web stopped is drift", |s| {
        s["phase"] == "Drifted"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("web: container exited (0)"))
    });
    assert_eq!(status["phase"], "Drifted");
}

/// Item 2: a release without a healthcheck that dies 2 s after start is not ready: the
/// stability window (`policy.minReady`, default 5 s) sees it die; rolled back, not recorded.
#[test]
fn a_release_that_dies_two_seconds_after_start_is_not_ready() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("flaky", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    let no_health = "    healthcheck: { disable: true }\n    restart: unless-stopped\n";
    spec.write_compose(&compose(&spec, false, no_health, ""));
    spec.write(&world.desired);
    let (code, out) = world.deploy(&spec.name);
    assert_eq!(code, 0, "{out}");

    let dies = format!(
        "{no_health}    entrypoint: [sh, -c, \"httpd -p 8080 -h /www -c /etc/httpd.conf; sleep 2; exit 1\"]\n"
    );
    spec.write_compose(&compose(&spec, false, &dies, ""));
    spec.version = "2".into();
    spec.write(&world.desired);
    let (code, out) = world.deploy(&spec.name);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("within policy.minReady"), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);
    assert!(
        wait_until(Duration::from_secs(10), || spec.served_version().as_deref()
            == Some("1")),
        "release 1 serves again"
    );
}

/// Item 5: a hotfix image run by hand is drift, not a new release: no gate question, no record,
/// `Drifted` naming the image.
#[test]
fn a_hotfix_run_by_hand_is_drift_not_a_release() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (spec, _guard) = world.env("hotfix", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write_compose(&compose(&spec, false, "", ""));
    spec.write(&world.desired);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("hotfix", "Ready", CONVERGE);
    let requests = broker.emu().requests().len();

    let hotfix = spec.compose_dir.join("hotfix.yaml");
    fs::write(&hotfix, "services:\n  web:\n    image: c2quay-test/web:2\n").expect("hotfix file");
    docker_ok(&[
        "compose",
        "-p",
        &spec.project,
        "--project-directory",
        spec.compose_dir.to_str().unwrap(),
        "-f",
        spec.compose_dir.join("compose.yaml").to_str().unwrap(),
        "-f",
        hotfix.to_str().unwrap(),
        "up",
        "-d",
        "--wait",
    ]);
    let status = agent.wait_phase("hotfix", "Drifted", CONVERGE);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("runs c2quay-test/web:2 instead of c2quay-test/web:1")),
        "{status}"
    );
    assert_eq!(
        spec.served_version().as_deref(),
        Some("2"),
        "selfHeal is off: it keeps running"
    );
    assert_eq!(
        broker.emu().requests().len(),
        requests,
        "no gate question and no record for drift"
    );
    assert_eq!(broker.current(&spec.pacticipant), ["1"]);
}

/// Item 7: a rollback restores the image that ran, not what its tag names now (a CI rebuild
/// of `:stable` between the deploys).
#[test]
fn a_rollback_restores_the_image_that_ran_when_its_tag_moved() {
    if !require_docker() {
        return;
    }
    for slow_stop in [false, true] {
        let world = World::new();
        let (mut spec, _guard) = world.env(&format!("moved-{slow_stop}"), None);
        let tag = format!("c2quay-test/web:stable-{}-{slow_stop}", std::process::id());
        docker_ok(&["tag", "c2quay-test/web:1", &tag]);
        spec.write_compose(&compose(&spec, slow_stop, "", ""));
        spec.image = Some(tag.clone());
        let manifest = spec.yaml().replace("waitTimeout: 20s", "waitTimeout: 8s");
        write_atomic(
            &world.desired.join(format!("{}.yaml", spec.name)),
            &manifest,
        );
        let (code, out) = world.deploy(&spec.name);
        assert_eq!(code, 0, "{out}");
        assert_eq!(spec.served_version().as_deref(), Some("1"));

        // CI rebuilds `:stable` (now version 2); the next release never gets healthy.
        docker_ok(&["tag", "c2quay-test/web:2", &tag]);
        spec.image = Some("c2quay-test/web:unhealthy".into());
        spec.version = "2".into();
        let manifest = spec.yaml().replace("waitTimeout: 20s", "waitTimeout: 8s");
        write_atomic(
            &world.desired.join(format!("{}.yaml", spec.name)),
            &manifest,
        );
        let (code, out) = world.deploy(&spec.name);
        let _ = docker_cmd(&["rmi", &tag]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("rolled back"), "{out}");
        assert!(
            wait_until(Duration::from_secs(10), || spec.served_version().as_deref()
                == Some("1")),
            "slow_stop={slow_stop}: the rollback started what the tag names now, not what ran: {:?}\n{out}",
            spec.served_version()
        );
    }
}

/// Item 8: a migration job that completed for release 1 is not run again by the rollback of a
/// release whose job fails.
#[test]
fn a_rollback_does_not_run_a_completed_job_again() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("jobs", None);
    let data = spec.compose_dir.join("data");
    fs::create_dir_all(&data).expect("data dir");
    // The job records each run; release 2's job (version 2 in its image) fails.
    let migrate = format!(
        "  migrate:\n    image: c2quay-test/web:1\n    pull_policy: never\n    entrypoint: [sh, -c, \
         \"echo ran >> /data/runs; [ $$(cat /www/version) = 1 ]\"]\n    volumes: [\"{}:/data\"]\n",
        data.display()
    );
    let depends = "    depends_on:\n      migrate: { condition: service_completed_successfully }\n";
    spec.write_compose(&compose(&spec, false, depends, &migrate));
    let with_job = |spec: &EnvSpec, version: &str| {
        spec.yaml().replace(
            "  smoke:\n",
            &format!(
                "    migrate:\n      version: \"{version}\"\n      pacticipant: jobs-migrate\n      image: c2quay-test/web:{version}\n  smoke:\n"
            ),
        )
    };
    write_atomic(&world.desired.join("jobs.yaml"), &with_job(&spec, "1"));
    let (code, out) = world.deploy("jobs");
    assert_eq!(code, 0, "{out}");
    let runs = || {
        fs::read_to_string(data.join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(runs(), 1, "release 1's migration ran once");

    spec.version = "2".into();
    write_atomic(&world.desired.join("jobs.yaml"), &with_job(&spec, "2"));
    let (code, out) = world.deploy("jobs");
    assert_ne!(code, 0, "release 2's migration fails: {out}");
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(
        runs(),
        2,
        "release 2's failed run only: the rollback did not run release 1's migration again"
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}
