//! End to end (issue 14 item 2): `spec.hosts` binds the CLI too. `c2quay deploy` of an
//! environment whose manifest names other hosts refuses before touching anything, naming the
//! hosts, this host and the way out; `--host` says which host this is and `--force` overrides;
//! `c2quay plan` lists it as `other-host` instead of printing nothing.

use crate::support::{self, agent};

use agent::World;
use support::docker::require_docker;

#[test]
fn a_deploy_for_another_host_refuses_and_host_or_force_go_on() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("elsewhere", None);
    let manifest = world.desired.join("elsewhere.yaml");
    let yaml = spec
        .yaml()
        .replacen("spec:\n", "spec:\n  hosts: [web-2, web-3]\n", 1);
    std::fs::write(&manifest, yaml).expect("manifest");
    let (desired, state) = (
        world.desired.to_str().expect("utf-8"),
        world.state.to_str().expect("utf-8"),
    );
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "elsewhere",
            "--desired",
            desired,
            "--state-dir",
            state,
        ];
        args.extend_from_slice(extra);
        world.c2quay(&args)
    };

    let (code, out, err) = deploy(&["--host", "web-1"]);
    assert_eq!(code, 1, "{out}{err}");
    for part in [
        "not for this host",
        "web-2, web-3",
        "this host is web-1",
        "--force",
    ] {
        assert!(err.contains(part), "{part} in {err}");
    }
    assert_eq!(spec.served_version(), None, "nothing deployed");
    assert!(spec.web_containers().is_empty(), "no container created");

    let (code, out, err) = deploy(&["--host", "web-2"]);
    assert_eq!(code, 0, "as web-2: {out}{err}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    let (code, out, err) = world.c2quay(&[
        "plan",
        "--desired",
        desired,
        "--state-dir",
        state,
        "--host",
        "web-1",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("plan json");
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["environment"] == "elsewhere"))
        .unwrap_or_else(|| panic!("no row for elsewhere: {out}"));
    assert_eq!(row["action"], "other-host", "{row}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap_or("")
            .contains("web-2, web-3"),
        "{row}"
    );

    spec.version = "2".into();
    let yaml = spec
        .yaml()
        .replacen("spec:\n", "spec:\n  hosts: [web-9]\n", 1);
    std::fs::write(&manifest, yaml).expect("manifest");
    let (code, out, err) = deploy(&["--host", "web-1", "--force"]);
    assert_eq!(code, 0, "forced: {out}{err}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));
}

/// Issue 14 item 6: a CLI deploy shows its progress on stderr, each fact once: the plan, each
/// step's end, what readiness waits for (a healthcheck starting); no ANSI code when stderr is
/// not a terminal, and on a terminal (a pty from `script`) the step in flight is rewritten in
/// place.
#[test]
fn a_cli_deploy_shows_live_progress_once_and_plain_without_a_terminal() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("progress", None);
    spec.write(&world.desired);
    let (code, text) = world.deploy("progress");
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains('\x1b'),
        "no ANSI codes without a terminal:\n{text}"
    );
    for line in [
        "progress: generation",
        "  up         ok in",
        "  readiness  ok in",
    ] {
        let count = text.lines().filter(|l| l.starts_with(line)).count();
        assert_eq!(count, 1, "{line:?} once in:\n{text}");
    }
    assert!(
        !text.contains("step done"),
        "no log line repeats a step:\n{text}"
    );
    assert!(text.contains("progress: deployed"), "{text}");

    // On a terminal: the next release, under a pty.
    spec.version = "2".into();
    spec.write(&world.desired);
    let (desired, state) = (
        world.desired.to_str().expect("utf-8"),
        world.state.to_str().expect("utf-8"),
    );
    let command = format!(
        "'{}' deploy progress --desired '{desired}' --state-dir '{state}'",
        env!("CARGO_BIN_EXE_c2quay")
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .expect("script");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("\r\x1b[2K  up         ok in"),
        "the step line is rewritten:\n{tty:?}"
    );
}
