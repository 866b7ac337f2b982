//! `c2quay doctor` against the real Docker engine and the broker emulator (issue 5): exit 0
//! when everything is fine, exit 1 with a `fix:` line for each broken thing; the origins of the
//! broker's links and a malformed environments answer (issue 13). `c2quay verify` against the
//! emulator (issue 13): no past the matrix's 100-row default, exit 3 when the broker cannot be
//! asked. And the JSON log format (`--log-format json`): every stderr line is a JSON object
//! carrying the environment, generation and step as fields.

use crate::support::{agent, docker};

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use agent::{BROKER_ENV, Broker, World, write_atomic};
use c2quay_broker_emulator::{
    AuthConfig, Credential, EmulatorConfig, FaultKind, FaultSpec, RunningEmulator,
};
use docker::{free_port, require_docker};

/// Doctor must answer quickly even when a broker is down (no endless retries).
const DOCTOR_BUDGET: Duration = Duration::from_secs(60);

/// Runs `c2quay doctor` on `world`: (exit code, stdout + stderr).
fn doctor(world: &World) -> (i32, String) {
    let desired = world.desired.display().to_string();
    let state = world.state.display().to_string();
    let started = Instant::now();
    let (code, out, err) = world.c2quay(&["doctor", "--desired", &desired, "--state-dir", &state]);
    let text = format!("exit {code}\n--- stdout\n{out}\n--- stderr\n{err}");
    assert!(
        started.elapsed() < DOCTOR_BUDGET,
        "doctor took {:?}:\n{text}",
        started.elapsed()
    );
    (code, text)
}

/// The `FAIL` line of `what` and the `fix:` line right after it.
fn failure<'a>(text: &'a str, what: &str) -> Option<(&'a str, &'a str)> {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("FAIL") && l.contains(what))?;
    let fix = lines
        .get(i + 1)
        .filter(|l| l.trim_start().starts_with("fix:"))?;
    Some((lines[i], fix))
}

#[test]
fn doctor_passes_on_a_healthy_host_and_names_a_fix_for_each_failure() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("doctor", Some(&broker));
    let manifest = world.desired.join("doctor.yaml");
    spec.write(&world.desired);

    // Everything fine.
    let (code, text) = doctor(&world);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    for what in [
        "state directory",
        "docker compose",
        "docker:",
        "desired directory",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(what)),
            "no ok line for {what}:\n{text}"
        );
    }
    assert!(
        text.contains("environment staging exists"),
        "doctor did not check the broker environment:\n{text}"
    );

    // The broker environment does not exist.
    let yaml = spec.yaml().replace(
        &format!("environment: {}", agent::BROKER_ENV),
        "environment: no-such-env",
    );
    assert!(yaml.contains("environment: no-such-env"), "{yaml}");
    write_atomic(&manifest, &yaml);
    let (code, text) = doctor(&world);
    assert_eq!(code, 1, "{text}");
    let (fail, fix) = failure(&text, "broker of doctor").unwrap_or_else(|| panic!("{text}"));
    assert!(
        fail.contains("no-such-env"),
        "the failure does not name the environment:\n{text}"
    );
    assert!(fix.contains("create-environment"), "{text}");

    // The broker URL points at a closed port.
    let closed = free_port();
    spec.broker_url = Some(format!("http://127.0.0.1:{closed}"));
    spec.write(&world.desired);
    let (code, text) = doctor(&world);
    assert_eq!(code, 1, "{text}");
    let (fail, fix) = failure(&text, "broker of doctor").unwrap_or_else(|| panic!("{text}"));
    assert!(
        fail.contains(&closed.to_string()),
        "the failure does not name the URL:\n{text}"
    );
    assert!(fix.contains("spec.broker.url"), "{text}");

    // Back to a good broker; the state directory becomes world-writable.
    spec.broker_url = Some(broker.url());
    spec.write(&world.desired);
    std::fs::set_permissions(&world.state, std::fs::Permissions::from_mode(0o777))
        .expect("chmod 0777");
    let (code, text) = doctor(&world);
    assert_eq!(code, 1, "{text}");
    let (fail, fix) = failure(&text, "state directory").unwrap_or_else(|| panic!("{text}"));
    assert!(
        fail.contains("777") || fail.contains("permission") || fail.contains("writable"),
        "the failure does not say what is wrong:\n{text}"
    );
    assert!(fix.contains("chmod 700"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "only the state directory is broken:\n{text}"
    );
    // Doctor reports; it does not repair behind the operator's back.
    let mode = std::fs::metadata(&world.state)
        .expect("state")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777);
}

/// A field of a JSON log line: top level (the event) or the current span.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line.get(name)
        .or_else(|| line.get("span").and_then(|s| s.get(name)))
        .filter(|v| !v.is_null())
}

#[test]
fn json_log_lines_carry_environment_generation_and_step() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("jsonlogs", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, "1");
    spec.write(&world.desired);
    let desired = world.desired.display().to_string();
    let state = world.state.display().to_string();
    let (code, out, err) = world.c2quay(&[
        "--log-format",
        "json",
        "agent",
        "--once",
        "--no-http",
        "--desired",
        &desired,
        "--state-dir",
        &state,
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let steps = logged_steps(&err, "jsonlogs");
    for step in ["gate", "up", "smoke", "record"] {
        assert!(
            steps.contains(&step.to_string()),
            "agent --once: no JSON line with environment, generation and step={step}; steps seen {steps:?}\n{err}"
        );
    }
    // stdout keeps the summary for people.
    assert!(out.contains("jsonlogs"), "{out}");

    // `deploy` logs the same way.
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.version = "2".into();
    spec.write(&world.desired);
    let (code, out, err) = world.c2quay(&[
        "--log-format",
        "json",
        "deploy",
        "jsonlogs",
        "--desired",
        &desired,
        "--state-dir",
        &state,
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let steps = logged_steps(&err, "jsonlogs");
    for step in ["gate", "up", "smoke", "record"] {
        assert!(
            steps.contains(&step.to_string()),
            "deploy: no JSON line with environment, generation and step={step}; steps seen {steps:?}\n{err}"
        );
    }
    assert_eq!(spec.served_version().as_deref(), Some("2"));
}

/// Parses every stderr line as JSON (panics on one that is not) and returns the `step` of
/// each line that also names `env` and a generation.
fn logged_steps(stderr: &str, env: &str) -> Vec<String> {
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    assert!(!lines.is_empty(), "no log lines on stderr");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    lines
        .iter()
        .filter(|l| field(l, "environment").and_then(|e| e.as_str()) == Some(env))
        .filter(|l| field(l, "generation").is_some_and(|g| g.is_string()))
        .filter_map(|l| {
            field(l, "step")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .collect()
}

/// An emulator with a Bearer token whose hrefs are all built on `http://localhost:PORT` (its
/// public base URL, like `PACT_BROKER_BASE_URL`) while manifests name `http://127.0.0.1:PORT`.
struct PublicNameBroker {
    emulator: RunningEmulator,
    _runtime: tokio::runtime::Runtime,
}

impl PublicNameBroker {
    const TOKEN: &'static str = "doctor-token-4711";

    fn start() -> PublicNameBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("emulator runtime");
        let port = free_port();
        let emulator = runtime
            .block_on(c2quay_broker_emulator::start(EmulatorConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                base_url: Some(format!("http://localhost:{port}")),
                auth: AuthConfig {
                    bearer_tokens: vec![Credential::new(Self::TOKEN)],
                    ..AuthConfig::default()
                },
                ..EmulatorConfig::default()
            }))
            .expect("start the broker emulator");
        emulator
            .create_environment(BROKER_ENV, false)
            .expect("environment");
        PublicNameBroker {
            emulator,
            _runtime: runtime,
        }
    }
}

#[test]
fn doctor_checks_the_origins_of_the_brokers_links_and_names_a_malformed_environments_answer() {
    if !require_docker() {
        return;
    }
    let broker = PublicNameBroker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("doctor", None);
    spec.broker_url = Some(broker.emulator.base_url.clone());
    let token = world.root.path().join("broker-token");
    std::fs::write(&token, PublicNameBroker::TOKEN).expect("token file");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let yaml = spec.yaml().replace(
        &format!("    environment: {BROKER_ENV}\n"),
        &format!(
            "    environment: {BROKER_ENV}\n    tokenFile: {}\n",
            token.display()
        ),
    );
    assert!(yaml.contains("tokenFile"), "{yaml}");
    write_atomic(&world.desired.join("doctor.yaml"), &yaml);

    // The broker's links name localhost, the index says so: trusted, and doctor says why.
    let (code, text) = doctor(&world);
    assert_eq!(code, 0, "{text}");
    let port = broker.emulator.addr.port();
    assert!(
        text.lines().any(|l| l.starts_with("ok")
            && l.contains(&format!("the broker's links use http://localhost:{port}"))),
        "doctor did not report the advertised origin:\n{text}"
    );
    assert!(text.contains("environment staging exists"), "{text}");
    assert!(!text.contains(PublicNameBroker::TOKEN), "{text}");

    // A truncated environments list is not a missing environment.
    broker
        .emulator
        .inject_fault(FaultSpec::new(FaultKind::MalformedJson, 1).on_path("/environments"));
    let (code, text) = doctor(&world);
    assert_eq!(code, 1, "{text}");
    let (fail, fix) = failure(&text, "broker of doctor").unwrap_or_else(|| panic!("{text}"));
    assert!(
        fail.contains("malformed broker response for pb:environments"),
        "{text}"
    );
    assert!(
        !fix.contains("create-environment") && fix.contains("HAL JSON"),
        "{text}"
    );
}

/// Runs `c2quay verify NAME` on `world`: (exit code, stdout + stderr).
fn verify(world: &World, name: &str) -> (i32, String) {
    let desired = world.desired.display().to_string();
    let state = world.state.display().to_string();
    let (code, out, err) =
        world.c2quay(&["verify", name, "--desired", &desired, "--state-dir", &state]);
    (
        code,
        format!("exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"),
    )
}

#[test]
fn verify_says_no_past_the_matrix_row_limit_and_exits_3_when_the_broker_cannot_be_asked() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("verify", Some(&broker));
    spec.write(&world.desired);
    // 101 versions of a consumer are released to the environment, each with its own pact with
    // the service; the service's version 1 verified them all and failed the oldest.
    let emu = broker.emu();
    for n in 1..=101 {
        let v = n.to_string();
        let pact = serde_json::json!({
            "consumer": {"name": "shop-app"}, "provider": {"name": spec.pacticipant},
            "interactions": [{"description": format!("v{v}"), "request": {"method": "GET", "path": "/"},
                              "response": {"status": 200}}],
            "metadata": {"pactSpecification": {"version": "3.0.0"}}
        });
        emu.seed_pact("shop-app", &v, &spec.pacticipant, &pact);
        emu.seed_verification(&spec.pacticipant, "1", "shop-app", &v, n != 1)
            .expect("verification");
        emu.record_release("shop-app", &v, BROKER_ENV)
            .expect("release");
    }
    // Before issue 13 the gate asked /matrix without a limit, decided on the newest 100 rows
    // and said Deployable (exit 0).
    let (code, text) = verify(&world, "verify");
    println!("VERDICT c2quay verify, 101 released consumer versions:\n{text}");
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("NotDeployable"), "{text}");
    assert!(
        text.contains("shop-app 1 -> verify-web 1: verification failed"),
        "{text}"
    );

    // The oldest one verified after all: deployable.
    emu.seed_verification(&spec.pacticipant, "1", "shop-app", "1", true)
        .expect("verification");
    let (code, text) = verify(&world, "verify");
    assert_eq!(code, 0, "{text}");

    // A broker that cannot be asked blocks like a broker that says no (exit 3, as deploy).
    let closed = free_port();
    spec.broker_url = Some(format!("http://127.0.0.1:{closed}"));
    spec.write(&world.desired);
    let (code, text) = verify(&world, "verify");
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("gate could not be checked") && text.contains("cannot connect"),
        "{text}"
    );
}

/// Issue 14 item 10: doctor checks that this host can deploy each of its environments (the
/// Compose files render, `pull: never` images are here, secret files are readable and private),
/// says which socket it asked (`DOCKER_HOST`), skips other hosts' environments, and `-o json`
/// says the same for machines.
#[test]
fn doctor_checks_each_environment_can_deploy_here_and_speaks_json() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("deployable", Some(&broker));
    let token = world.root.path().join("broker-token");
    std::fs::write(&token, "t0ken\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    spec.version = "404".into(); // no c2quay-test/web:404 on this host, and pull: never
    let with_token = |spec: &agent::EnvSpec| {
        spec.yaml().replacen(
            "  broker:\n",
            &format!("  broker:\n    tokenFile: {}\n", token.display()),
            1,
        )
    };
    write_atomic(&world.desired.join("deployable.yaml"), &with_token(&spec));
    let elsewhere = spec
        .yaml()
        .replace("name: deployable", "name: elsewhere")
        .replace(
            &format!("project: {}", spec.project),
            &format!("project: {}-x", spec.project),
        )
        .replacen("spec:\n", "spec:\n  hosts: [some-other-host]\n", 1);
    write_atomic(&world.desired.join("elsewhere.yaml"), &elsewhere);
    let (code, out, err) = world.c2quay(&["validate", world.desired.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "the manifests are valid: {out}{err}");

    let (code, text) = doctor(&world);
    assert_eq!(code, 1, "{text}");
    let (fail, fix) = failure(&text, "images of deployable").unwrap_or_else(|| panic!("{text}"));
    assert!(fail.contains("c2quay-test/web:404"), "{text}");
    assert!(fix.contains("spec.compose.pull"), "{text}");
    let (fail, fix) = failure(&text, "tokenFile of deployable").unwrap_or_else(|| panic!("{text}"));
    assert!(fail.contains("readable by every user (mode 644)"), "{text}");
    assert!(fix.contains("chmod 600"), "{text}");
    assert!(
        !text.contains("t0ken"),
        "the secret itself is never printed:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.contains("compose files of deployable")),
        "{text}"
    );
    assert!(
        text.contains("not checked") && text.contains("elsewhere"),
        "{text}"
    );
    assert!(text.contains("DOCKER_HOST is not set"), "{text}");

    // Fixed: the image exists and the token is private; the Compose file stops rendering.
    spec.version = "1".into();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    write_atomic(&world.desired.join("deployable.yaml"), &with_token(&spec));
    std::fs::write(
        spec.compose_dir.join("compose.yaml"),
        "services: [not, a, map]\n",
    )
    .expect("compose.yaml");
    let (desired, state) = (
        world.desired.display().to_string(),
        world.state.display().to_string(),
    );
    let (code, out, err) = world.c2quay(&[
        "doctor",
        "--desired",
        &desired,
        "--state-dir",
        &state,
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("doctor -o json");
    assert_eq!(report["ok"], false, "{report}");
    let find = |name: &str| {
        report["checks"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["check"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} check in {report}"))
    };
    let compose = find("compose files of deployable");
    assert_eq!(compose["ok"], false, "{compose}");
    assert!(
        compose["fix"].as_str().unwrap_or("").contains("config"),
        "{compose}"
    );
    assert_eq!(
        find("spec.broker.tokenFile of deployable")["ok"],
        true,
        "{report}"
    );

    // A Docker that does not answer names the socket it was asked on.
    let nowhere = world.root.path().join("nowhere.sock");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["doctor", "--desired", &desired, "--state-dir", &state])
        .env("DOCKER_HOST", format!("unix://{}", nowhere.display()))
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("DOCKER_HOST=unix://{}", nowhere.display())),
        "{text}"
    );
}
