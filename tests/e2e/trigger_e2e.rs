//! Issue 15 item 3: the trigger endpoint (`POST /api/v1/environments/{name}/reconcile`,
//! `POST /api/v1/reconcile`) through the real binary against a real engine: authentication
//! (a bearer token, an HMAC signature of the body, 401 otherwise, 403 when neither is
//! configured), `?wait=true` answering with the outcome (a rollback is 502), a manual
//! environment applied by it, and concurrent triggers coalescing into one deploy.

use crate::support::{agent, docker};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent::{Agent, Broker, World, write_atomic};
use docker::require_docker;

const CONVERGE: Duration = Duration::from_secs(60);
const TOKEN: &str = "trigger-token-0123456789";
const HMAC_SECRET: &str = "webhook-secret-9876543210";

/// Writes the token and HMAC secret files (mode 0600) and returns the agent's flags.
fn credentials(world: &World) -> Vec<String> {
    let write = |name: &str, text: &str| -> PathBuf {
        let path = world.root.path().join(name);
        std::fs::write(&path, format!("{text}\n")).expect("secret file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    };
    let token = write("trigger-token", TOKEN);
    let secret = write("trigger-hmac", HMAC_SECRET);
    vec![
        "--trigger-token-file".into(),
        token.display().to_string(),
        "--trigger-hmac-secret-file".into(),
        secret.display().to_string(),
    ]
}

fn start(world: &World, flags: &[String]) -> Agent {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Agent::start(world, &flags)
}

/// A POST over HTTP/1.1 on the agent's port: `(status, JSON body or null)`.
fn post(
    agent: &Agent,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", agent.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(180)))
        .expect("timeout");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

fn signed(body: &str, secret: &str) -> Vec<(&'static str, String)> {
    let mac = c2quay::agent::hmac_sha256(secret.as_bytes(), body.as_bytes());
    vec![("X-Hub-Signature-256", format!("sha256={}", hex(&mac)))]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The manifest with a short `waitTimeout`, so the rollback of `:unhealthy` comes soon.
fn write_short_wait(world: &World, spec: &agent::EnvSpec) {
    let manifest = spec.yaml().replace("waitTimeout: 20s", "waitTimeout: 8s");
    write_atomic(
        &world.desired.join(format!("{}.yaml", spec.name)),
        &manifest,
    );
}

#[test]
fn a_waited_trigger_applies_a_manual_environment_reports_a_rollback_and_refuses_bad_credentials() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("trig", None);
    spec.sync = Some("manual".into());
    write_short_wait(&world, &spec);
    let agent = start(&world, &credentials(&world));
    // Nothing applied yet, and nothing is until someone asks.
    agent.wait_status("trig", CONVERGE, "OutOfSync", |s| s["phase"] == "OutOfSync");
    assert_eq!(spec.served_version(), None);

    let path = "/api/v1/environments/trig/reconcile";
    let body = r#"{"ref":"refs/heads/main"}"#;
    for (what, headers) in [
        ("no credentials", Vec::new()),
        ("a wrong token", bearer("not-the-token")),
        (
            "a signature by another secret",
            signed(body, "another-secret"),
        ),
        ("a signature of another body", signed("{}", HMAC_SECRET)),
    ] {
        let (code, answer) = post(&agent, path, &headers, body);
        assert_eq!(code, 401, "{what}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains(TOKEN) && !text.contains(HMAC_SECRET),
            "{text}"
        );
    }
    assert_eq!(agent.status("trig").expect("status")["phase"], "OutOfSync");
    let (code, _) = post(
        &agent,
        "/api/v1/environments/nope/reconcile",
        &bearer(TOKEN),
        "",
    );
    assert_eq!(code, 404);

    // Accepted (202) without waiting; the figure: trigger to deploy start (Progressing).
    let sent = Instant::now();
    let (code, answer) = post(&agent, path, &bearer(TOKEN), "");
    assert_eq!(code, 202, "{answer}");
    let mut latency = None;
    while sent.elapsed() < CONVERGE {
        if agent
            .status("trig")
            .is_some_and(|s| s["phase"] == "Progressing")
        {
            latency = Some(sent.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = latency.expect("the triggered deploy never showed Progressing");
    eprintln!("TIMING trigger-to-deploy-start {latency:?}");
    agent.wait_status("trig", CONVERGE, "Ready at 1", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "1"
    });
    assert_eq!(spec.served_version().as_deref(), Some("1"));
    for line in agent.log_text().lines() {
        assert!(
            !line.contains(TOKEN) && !line.contains(HMAC_SECRET),
            "{line}"
        );
    }

    // A release that never gets healthy, applied by a signed, waited trigger: 502 rolledBack.
    spec.image = Some("c2quay-test/web:unhealthy".into());
    spec.version = "2".into();
    write_short_wait(&world, &spec);
    agent.wait_status("trig", CONVERGE, "OutOfSync at 2", |s| {
        s["phase"] == "OutOfSync"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("unhealthy"))
    });
    let waited = Instant::now();
    let (code, answer) = post(
        &agent,
        &format!("{path}?wait=true&timeout=3m"),
        &signed(body, HMAC_SECRET),
        body,
    );
    eprintln!("TIMING trigger-wait-rolled-back {:?}", waited.elapsed());
    assert_eq!(code, 502, "{answer}");
    assert_eq!(answer["outcome"], "rolledBack", "{answer}");
    assert_eq!(answer["phase"], "RolledBack", "{answer}");
    assert_eq!(answer["environment"], "trig", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("rolled back")),
        "{answer}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}

#[test]
fn ten_concurrent_triggers_make_one_deploy() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (mut spec, _guard) = world.env("coalesce", Some(&broker));
    spec.sync = Some("manual".into());
    broker.seed_deployable(&spec.pacticipant, "1");
    broker.seed_deployable(&spec.pacticipant, "2");
    spec.write(&world.desired);
    let (code, out) = world.deploy("coalesce");
    assert_eq!(code, 0, "{out}");
    let agent = start(&world, &credentials(&world));
    agent.wait_status("coalesce", CONVERGE, "Ready at 1", |s| {
        s["phase"] == "Ready"
    });
    // A smoke check of 11 s: the waited answers come after the listener's 10 s deadline,
    // which a waiting trigger holds.
    spec.smoke_sleep = Some("11s".into());
    spec.version = "2".into();
    spec.write(&world.desired);
    let status = agent.wait_status("coalesce", CONVERGE, "OutOfSync", |s| {
        s["phase"] == "OutOfSync"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("deployable"))
    });
    let generation = status["observedGeneration"].clone();

    let sent = Instant::now();
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
        let agent = &agent;
        let threads: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(move || {
                    post(
                        agent,
                        "/api/v1/environments/coalesce/reconcile?wait=true",
                        &bearer(TOKEN),
                        "",
                    )
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    assert!(
        sent.elapsed() > Duration::from_secs(11),
        "{:?}",
        sent.elapsed()
    );
    for (code, answer) in &answers {
        assert_eq!(*code, 200, "{answer}");
        let outcome = answer["outcome"].as_str().unwrap_or_default();
        assert!(matches!(outcome, "deployed" | "upToDate"), "{answer}");
    }
    assert!(
        answers.iter().any(|(_, a)| a["outcome"] == "deployed"),
        "{answers:?}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    let records = broker.records(&spec.pacticipant);
    assert_eq!(
        records.iter().filter(|(v, _)| v == "2").count(),
        1,
        "one record of 2: {records:?}"
    );
    let status = agent.status("coalesce").expect("status");
    let deploys: Vec<_> = (status["history"].as_array().into_iter().flatten())
        .filter(|e| e["generation"] == generation && e["action"] == "deploy")
        .collect();
    assert_eq!(deploys.len(), 1, "{deploys:?}");
    let reconciles = (status["history"].as_array().into_iter().flatten())
        .filter(|e| e["generation"] == generation && e["action"] != "out-of-sync")
        .count();
    eprintln!("TIMING ten-triggers reconciles={reconciles}");
    assert!(
        reconciles <= 2,
        "10 triggers, {reconciles} reconciles: {status}"
    );

    // Every environment of the host at once: the worst outcome decides (all up to date here).
    let (code, answer) = post(&agent, "/api/v1/reconcile?wait=true", &bearer(TOKEN), "");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["outcome"], "upToDate", "{answer}");
    let environments = answer["environments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(environments.len(), 1, "{answer}");
    assert_eq!(environments[0]["environment"], "coalesce", "{answer}");
}

#[test]
fn the_trigger_endpoint_is_off_without_credentials() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let agent = Agent::start(&world, &[]);
    let (code, answer) = post(
        &agent,
        "/api/v1/reconcile?wait=true",
        &bearer("anything"),
        "",
    );
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("--trigger-token-file")),
        "{answer}"
    );
}

#[test]
fn a_trigger_syncs_the_desired_checkout_first() {
    use crate::support::git::{Remote, commit_all, git};
    if !require_docker() {
        return;
    }
    let remote = Remote::new();
    let world = World::new();
    std::fs::remove_dir_all(&world.desired).expect("rm desired");
    remote.clone_into(&world.desired);
    let ci = remote.clone_to("ci");
    // Manual: the push alone changes nothing, so the deploy is the trigger's own.
    let (mut spec, _guard) = world.env("gitrig", None);
    spec.sync = Some("manual".into());
    spec.write(&ci);
    commit_all(&ci, "gitrig: web 1");
    git(&ci, &["push", "--quiet", "origin", "main"]);
    // One sync at start, the next in an hour: only the trigger can bring the push in time.
    let mut flags = credentials(&world);
    flags.extend(["--git-sync".to_string(), "1h".to_string()]);
    let agent = start(&world, &flags);
    let path = "/api/v1/environments/gitrig/reconcile?wait=true";
    let (code, answer) = post(&agent, path, &bearer(TOKEN), "");
    assert_eq!(
        (code, &answer["outcome"]),
        (200, &"deployed".into()),
        "{answer}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    spec.version = "2".into();
    spec.write(&ci);
    let second = commit_all(&ci, "gitrig: web 2");
    git(&ci, &["push", "--quiet", "origin", "main"]);
    let (code, answer) = post(&agent, path, &bearer(TOKEN), "");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["outcome"], "deployed", "{answer}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    let status = agent.status("gitrig").expect("status");
    assert_eq!(
        status["appliedRevision"],
        format!("main@sha1:{second}").as_str(),
        "{status}"
    );
}
