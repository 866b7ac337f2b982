//! End to end (issue 14 item 11): the agent's unit makes every path but the state directory
//! read-only, so a deploy must never write next to the compose files or in the desired
//! directory. Proven with the real binary in a mount namespace where both are read-only bind
//! mounts (`unshare -m`); and, where systemd runs (not in this test world's container), with the
//! unit's own sandboxing properties under `systemd-run`.

use std::path::Path;
use std::process::Command;

use crate::support::{self, agent};

use agent::World;
use support::docker::require_docker;

/// `sh -c` text that bind-mounts each of `paths` read-only on itself, then runs `c2quay ARGS`.
fn read_only_then(paths: &[&Path], args: &[&str]) -> String {
    let mut script = String::from("set -e\n");
    for path in paths {
        let p = path.display();
        script.push_str(&format!(
            "mount --bind '{p}' '{p}'\nmount -o remount,bind,ro '{p}' '{p}'\n"
        ));
    }
    script.push_str(&format!(
        "touch '{}/probe' 2>/dev/null && exit 99\n",
        paths[0].display()
    ));
    script.push_str(&format!("exec '{}'", env!("CARGO_BIN_EXE_c2quay")));
    for arg in args {
        script.push_str(&format!(" '{arg}'"));
    }
    script
}

#[test]
fn a_deploy_writes_nothing_outside_the_state_directory() {
    if !require_docker() {
        return;
    }
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: unshare -m is not allowed here");
        return;
    }
    let world = World::new();
    let (mut spec, _guard) = world.env("readonly", None);
    spec.write(&world.desired);
    let (desired, state) = (
        world.desired.to_str().expect("utf-8"),
        world.state.to_str().expect("utf-8"),
    );
    let args = [
        "deploy",
        "readonly",
        "--desired",
        desired,
        "--state-dir",
        state,
    ];
    let run = |args: &[&str]| {
        let script = read_only_then(&[&spec.compose_dir, &world.desired], args);
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
            .expect("unshare")
    };
    let out = run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(99), "the mounts are not read-only");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(spec.served_version().as_deref(), Some("1"));

    // A release and a rollback too: still nothing written outside the state directory.
    spec.version = "2".into();
    spec.write(&world.desired);
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spec.served_version().as_deref(), Some("2"));
    let out = run(&[
        "rollback",
        "readonly",
        "--desired",
        desired,
        "--state-dir",
        state,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}

/// The `[Service]` hardening properties of the shipped unit, for `systemd-run -p`.
fn unit_sandbox_properties() -> Vec<String> {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/c2quay-agent.service"),
    )
    .expect("the unit");
    let start = unit
        .find("NoNewPrivileges=")
        .expect("the hardening section");
    unit[start..]
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.starts_with('#') && l.contains('='))
        // The test's own paths replace the unit's; the test runs as root, not as c2quay.
        .filter(|l| !l.starts_with("ReadWritePaths=") && !l.starts_with("PrivateTmp="))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_agent_deploys_under_the_units_sandbox_where_systemd_runs() {
    if !require_docker() {
        return;
    }
    let running = Command::new("systemctl")
        .arg("is-system-running")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if running != "running" && running != "degraded" {
        eprintln!(
            "SKIP: systemd is not running here ({running:?}); the unshare test covers the read-only paths"
        );
        return;
    }
    let world = World::new();
    let (spec, _guard) = world.env("sandboxed", None);
    spec.write(&world.desired);
    let mut command = Command::new("systemd-run");
    command.args(["--wait", "--collect", "--quiet", "--pipe"]);
    for property in unit_sandbox_properties() {
        command.arg("-p").arg(property);
    }
    command
        .arg("-p")
        .arg(format!("ReadWritePaths={}", world.state.display()))
        .arg(env!("CARGO_BIN_EXE_c2quay"))
        .args(["agent", "--once", "--no-http", "--desired"])
        .arg(&world.desired)
        .arg("--state-dir")
        .arg(&world.state);
    let out = command.output().expect("systemd-run");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spec.served_version().as_deref(), Some("1"));
}
