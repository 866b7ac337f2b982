//! End to end (issue 14 item 7): the read-only commands that fit the ecosystem, through the
//! real binary on a real deploy: `status ENV -o json` is one object, `history ENV` merges the
//! reconciles and the audit log, `wait ENV --for PHASE` exits 0 once it is reached and 1 on
//! timeout naming the phase it saw, `completion bash` prints a completion script, and the
//! status table has an AGE column.

use crate::support::{self, agent};

use agent::World;
use support::docker::require_docker;

#[test]
fn status_history_wait_and_completion_answer_like_kubectl() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("cli", None);
    spec.write(&world.desired);
    let (code, text) = world.deploy("cli");
    assert_eq!(code, 0, "{text}");
    spec.version = "2".into();
    spec.write(&world.desired);
    let (code, text) = world.deploy("cli");
    assert_eq!(code, 0, "{text}");
    let state = world.state.to_str().expect("utf-8");

    let (code, out, err) = world.c2quay(&["status", "cli", "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(status.is_object(), "one environment is an object: {out}");
    assert_eq!(status["phase"], "Ready", "{status}");

    let (code, out, _) = world.c2quay(&["status", "--state-dir", state]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.starts_with("ENVIRONMENT") && header.contains(" AGE "),
        "{out}"
    );

    let (code, out, err) = world.c2quay(&["history", "cli", "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).expect("history json");
    let sources: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e["source"].as_str())
        .collect();
    assert_eq!(sources, ["audit", "reconcile"].into(), "{out}");
    let deploys = (entries.iter())
        .filter(|e| e["source"] == "reconcile" && e["result"] == "deployed")
        .count();
    assert_eq!(deploys, 2, "{out}");
    let times: Vec<&str> = entries.iter().filter_map(|e| e["at"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");

    let (code, out, _) = world.c2quay(&[
        "wait",
        "cli",
        "--for",
        "Ready",
        "--timeout",
        "5s",
        "--state-dir",
        state,
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = world.c2quay(&[
        "wait",
        "cli",
        "--for",
        "RolledBack",
        "--timeout",
        "1s",
        "--state-dir",
        state,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not RolledBack after 1s; last: Ready"),
        "{err}"
    );
    let (code, _, err) = world.c2quay(&["wait", "cli", "--for", "Sideways", "--state-dir", state]);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("not a phase"), "{err}");

    let (code, out, _) = world.c2quay(&["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("_c2quay()") && out.contains("history"),
        "a bash completion script"
    );
}

/// `c2quay suspend` holds an environment (the agent only observes it, a CLI deploy refuses)
/// until `c2quay resume` or a manifest of another generation; `status --watch` prints each
/// change as a row; every state-printing command speaks `-o yaml` and `-o json`.
#[test]
fn suspend_holds_until_resume_or_a_new_commit_and_watch_shows_each_change() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("hold", None);
    spec.write(&world.desired);
    let (code, text) = world.deploy("hold");
    assert_eq!(code, 0, "{text}");
    let state = world.state.to_str().expect("utf-8");
    let desired = world.desired.to_str().expect("utf-8");
    let dirs = ["--desired", desired, "--state-dir", state];
    let once = || world.c2quay(&[&["agent", "--once", "--no-http"][..], &dirs].concat());
    let ids = || support::docker::service_container_ids(&spec.project, "web", true);

    // status --watch: the first listing, then one row per change, until killed.
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(["status", "--watch", "--state-dir", state])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("status --watch");
    let watched = std::io::BufReader::new(watch.stdout.take().expect("stdout"));
    let lines = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(watched).map_while(Result::ok) {
            if lines.0.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_with = |needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match lines.1.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("status --watch printed no line with {needle:?}: {seen:?}");
    };
    next_line_with("ENVIRONMENT");
    next_line_with("Ready");

    let (code, out, err) = world.c2quay(
        &[
            &[
                "suspend",
                "hold",
                "--reason",
                "db migration by hand",
                "-o",
                "yaml",
            ][..],
            &dirs,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("result: suspended"), "YAML: {out}");
    let row = next_line_with("Suspended");
    assert!(row.starts_with("hold"), "a row, no header: {row}");

    // A configuration change while suspended: the agent observes and changes nothing.
    let before = ids();
    spec.write_compose(&support::agent::web_compose(
        spec.port,
        false,
        "    environment:\n      GREETING: two\n",
        "",
    ));
    let (_, out, err) = once();
    assert_eq!(ids(), before, "suspended: not re-created\n{out}{err}");
    let (_, out, _) = world.c2quay(&["status", "hold", "--state-dir", state, "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(status["phase"], "Suspended", "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("db migration by hand")),
        "{status}"
    );
    let (code, text) = world.deploy("hold");
    assert_eq!(code, 1, "a CLI deploy refuses: {text}");
    assert!(text.contains("c2quay resume hold"), "{text}");

    // Resume: the next pass applies the change.
    let (code, out, err) = world.c2quay(&["resume", "hold", "--state-dir", state]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resumed"), "{out}");
    let (code, out, err) = once();
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(
        ids(),
        before,
        "resumed: the configuration change is applied"
    );
    next_line_with("Ready");

    // Suspended again, then a commit of another generation ends the suspension.
    let (code, _, err) = world.c2quay(&[&["suspend", "hold"][..], &dirs].concat());
    assert_eq!(code, 0, "{err}");
    spec.version = "2".into();
    spec.write(&world.desired);
    let (code, out, err) = once();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        spec.served_version().as_deref(),
        Some("2"),
        "the new commit is deployed"
    );
    assert!(
        world.audit_has("hold", 0, "resume", "manifest_changed"),
        "{:?}",
        world.audit("hold")
    );

    // Wide and YAML listings.
    let (_, out, _) = world.c2quay(&["status", "--state-dir", state, "-o", "wide"]);
    assert!(
        out.lines().next().is_some_and(|h| h.contains("RELEASES")),
        "{out}"
    );
    assert!(out.contains("web=2"), "{out}");
    let (_, out, _) = world.c2quay(&["status", "--state-dir", state, "-o", "yaml"]);
    let listed: Vec<serde_yaml::Value> = serde_yaml::from_str(&out).expect("status yaml");
    assert_eq!(listed[0]["phase"].as_str(), Some("Ready"), "{out}");
    let (code, out, _) = world.c2quay(&["retry", "hold", "--state-dir", state, "-o", "json"]);
    assert_eq!(code, 0);
    let retried: serde_json::Value = serde_json::from_str(&out).expect("retry json");
    assert_eq!(retried["result"], "retried", "{out}");

    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
}

/// The arguments of every `execve` in an `strace -f -e trace=execve` log that succeeded.
fn execs(log: &str) -> Vec<String> {
    (log.lines())
        .filter(|l| l.contains("execve(") && l.ends_with("= 0"))
        .map(|l| {
            l.split_once("execve(")
                .map_or("", |(_, rest)| rest)
                .to_string()
        })
        .collect()
}

/// A CLI deploy renders the Compose model only when its answer can have changed: a version
/// bump (a manifest change, Compose files untouched) runs `compose up` alone; an edit of
/// `compose.yaml` renders again and is applied (issue 16: one process per deploy).
#[test]
fn a_cli_deploy_renders_again_only_when_a_compose_input_changed() {
    if !require_docker() {
        return;
    }
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is part of the test world"
        );
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("render", None);
    spec.write(&world.desired);
    // Every deploy runs in this test's environment (the render's key covers it).
    let traced = |label: &str| {
        let log = world.root.path().join(format!("strace-{label}.log"));
        let status = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=execve", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_c2quay"))
            .args(["deploy", "render", "--desired"])
            .arg(&world.desired)
            .arg("--state-dir")
            .arg(&world.state)
            .output()
            .expect("strace c2quay deploy");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        execs(&std::fs::read_to_string(&log).expect("strace log"))
    };
    let first = traced("first");
    assert_eq!(first.iter().filter(|e| e.contains("\"config\"")).count(), 1);
    let cache = (world.state.join("renders")).join(format!("{}.render.json", spec.project));
    let mode = std::fs::metadata(&cache)
        .expect("the render is kept")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    spec.version = "2".into();
    spec.write(&world.desired);
    let bump = traced("bump");
    let configs = bump.iter().filter(|e| e.contains("\"config\"")).count();
    let ups = bump.iter().filter(|e| e.contains("\"up\"")).count();
    assert_eq!(
        (configs, ups),
        (0, 1),
        "a version bump runs up alone: {bump:#?}"
    );
    assert_eq!(spec.served_version().as_deref(), Some("2"));

    let before = support::docker::service_container_ids(&spec.project, "web", true);
    spec.write_compose(&agent::web_compose(
        spec.port,
        false,
        "    environment:\n      GREETING: edited\n",
        "",
    ));
    let edit = traced("edit");
    let configs = edit.iter().filter(|e| e.contains("\"config\"")).count();
    assert_eq!(
        configs, 1,
        "an edited compose.yaml renders again: {edit:#?}"
    );
    let after = support::docker::service_container_ids(&spec.project, "web", true);
    assert_ne!(before, after, "the edit is applied");
}

/// The image of `service`'s running container in `project`.
fn running_image(project: &str, service: &str) -> String {
    let ids = support::docker::service_container_ids(project, service, true);
    let id = ids.first().unwrap_or_else(|| panic!("{service} runs"));
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.Config.Image}}", id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `deploy --service` (issue 21 item 2): of two changed services only the named one is gated,
/// applied and recorded; the other keeps running its release and the environment is
/// `OutOfSync` naming it, until a whole deploy applies it. An unknown service is refused.
#[test]
fn deploy_service_applies_and_records_only_the_named_service() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = agent::Broker::start();
    let (mut spec, _guard) = world.env("pick", Some(&broker));
    let api = format!("{}-api", spec.pacticipant);
    for v in ["1", "2"] {
        broker.seed_deployable(&spec.pacticipant, v);
        broker.seed_deployable(&api, v);
    }
    let service = "  api:\n    image: c2quay-test/web:1\n    pull_policy: never\n    init: true\n    stop_grace_period: 2s\n";
    spec.write_compose(&agent::web_compose(spec.port, false, "", service));
    let manifest = |spec: &agent::EnvSpec, api_version: &str| {
        let text = spec.yaml().replace(
            "  smoke:\n",
            &format!(
                "    api:\n      pacticipant: {api}\n      version: \"{api_version}\"\n      image: c2quay-test/web:{api_version}\n  smoke:\n"
            ),
        );
        agent::write_atomic(&world.desired.join("pick.yaml"), &text);
    };
    manifest(&spec, "1");
    let (code, text) = world.deploy("pick");
    assert_eq!(code, 0, "{text}");

    spec.version = "2".into();
    manifest(&spec, "2");
    let dirs = [
        "--desired",
        world.desired.to_str().expect("utf-8"),
        "--state-dir",
        world.state.to_str().expect("utf-8"),
    ];
    let (code, _, err) =
        world.c2quay(&[&["deploy", "pick", "--service", "nope"][..], &dirs].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no service") && err.contains("nope"), "{err}");
    let (code, out, _) = world.c2quay(
        &[
            &["verify", "pick", "--service", "api", "-o", "json"][..],
            &dirs,
        ]
        .concat(),
    );
    assert_eq!(code, 0);
    let asked: Vec<serde_json::Value> = serde_json::from_str(&out).expect("verify json");
    assert_eq!(asked.len(), 1, "only api asked: {out}");

    let (code, out, err) =
        world.c2quay(&[&["deploy", "pick", "--service", "web"][..], &dirs].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(running_image(&spec.project, "web"), "c2quay-test/web:2");
    assert_eq!(
        running_image(&spec.project, "api"),
        "c2quay-test/web:1",
        "api keeps running"
    );
    assert_eq!(broker.current(&spec.pacticipant), ["2"]);
    assert_eq!(broker.current(&api), ["1"], "api's release is not recorded");
    let (_, out, _) = world.c2quay(&["status", "pick", "-o", "json", "--state-dir", dirs[3]]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(status["phase"], "OutOfSync", "{status:#}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("still out of sync: api")),
        "{status:#}"
    );
    assert_eq!(status["releases"]["api"]["version"], "1", "{status:#}");

    // The whole deploy applies the rest.
    let (code, text) = world.deploy("pick");
    assert_eq!(code, 0, "{text}");
    assert_eq!(running_image(&spec.project, "api"), "c2quay-test/web:2");
    assert_eq!(broker.current(&api), ["2"]);
    let (_, out, _) = world.c2quay(&["status", "pick", "-o", "json", "--state-dir", dirs[3]]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(status["phase"], "Ready", "{status:#}");

    // All-or-nothing: the releases deploy as one verified set, so --service is refused.
    let manifest = std::fs::read_to_string(world.desired.join("pick.yaml")).expect("manifest");
    let whole = manifest.replacen("  broker:\n", "  broker:\n    allOrNothing: true\n", 1);
    agent::write_atomic(&world.desired.join("pick.yaml"), &whole);
    let (code, _, err) =
        world.c2quay(&[&["deploy", "pick", "--service", "web"][..], &dirs].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("all-or-nothing"), "{err}");
}
