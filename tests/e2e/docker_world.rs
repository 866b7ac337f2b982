//! The Docker test world works from Rust tests: the engine, Compose v2 and
//! the c2quay-test images built by `scripts/test-world.sh`.
//!
//! These tests skip (printing SKIP) when Docker is unusable, and fail instead
//! when `CI` or `C2QUAY_REQUIRE_DOCKER` is set.

use crate::support;

use std::time::{Duration, Instant};

use support::docker::{
    self, ComposeProject, WEB_SMOKEFAIL, WEB_UNHEALTHY, WEB_V2, copy_example, free_ports, http_get,
    require_docker, wait_for_health, write_image_override,
};

const WAIT_TIMEOUT: &str = "60";

/// A copy of examples/shop on two free loopback ports.
fn shop() -> (tempfile::TempDir, ComposeProject, u16, u16) {
    let dir = copy_example("shop");
    let ports = free_ports(2);
    let project = ComposeProject::new(dir.path())
        .with_env("SHOP_WEB_PORT", ports[0])
        .with_env("SHOP_API_PORT", ports[1]);
    (dir, project, ports[0], ports[1])
}

#[test]
fn shop_comes_up_and_switches_from_version_1_to_2() {
    if !require_docker() {
        return;
    }
    let (dir, shop, web_port, api_port) = shop();

    shop.run_ok(&["up", "-d", "--wait", "--wait-timeout", WAIT_TIMEOUT]);
    let (status, body) = http_get(&format!("http://127.0.0.1:{web_port}/"));
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "c2quay-test web version 1");
    let (status, body) = http_get(&format!("http://127.0.0.1:{web_port}/healthz"));
    assert_eq!((status, body.trim()), (200, "ok version 1"));
    let (status, body) = http_get(&format!("http://127.0.0.1:{api_port}/version"));
    assert_eq!((status, body.trim()), (200, "1"));
    let web = shop.container_id("web").expect("web container");
    assert_eq!(docker::health_status(&web), "healthy");

    // A version bump, the way c2quay pins images: an override file.
    let over = write_image_override(dir.path(), "c2quay.override.yaml", &[("web", WEB_V2)]);
    shop.run_ok(&[
        "-f",
        "compose.yaml",
        "-f",
        &over,
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        WAIT_TIMEOUT,
    ]);
    let (status, body) = http_get(&format!("http://127.0.0.1:{web_port}/"));
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "c2quay-test web version 2");
    // api was not touched.
    let (_, body) = http_get(&format!("http://127.0.0.1:{api_port}/"));
    assert_eq!(body.trim(), "c2quay-test web version 1");

    let new_web = shop.container_id("web").expect("web container");
    assert_ne!(web, new_web, "web was recreated with the new image");
    let image = docker::docker_ok(&["inspect", "--format", "{{.Config.Image}}", &new_web]);
    assert_eq!(image, WEB_V2);

    // init: true makes stops fast (busybox as PID 1 would ignore SIGTERM).
    let started = Instant::now();
    shop.run_ok(&["down", "-v", "--remove-orphans"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "compose down took {:?}",
        started.elapsed()
    );
}

#[test]
fn unhealthy_image_is_reported_unhealthy_and_fails_up_wait() {
    if !require_docker() {
        return;
    }
    let (dir, shop, _, _) = shop();
    let over = write_image_override(
        dir.path(),
        "c2quay.override.yaml",
        &[("web", WEB_UNHEALTHY)],
    );

    let started = Instant::now();
    let out = shop.run(&[
        "-f",
        "compose.yaml",
        "-f",
        &over,
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        WAIT_TIMEOUT,
    ]);
    assert!(
        !out.status.success(),
        "up --wait must fail for an unhealthy service"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "up --wait should fail as soon as the container turns unhealthy, took {:?}",
        started.elapsed()
    );
    let web = shop.container_id("web").expect("web container");
    wait_for_health(&web, "unhealthy", Duration::from_secs(30)).unwrap();
    // The other service is fine.
    let api = shop.container_id("api").expect("api container");
    wait_for_health(&api, "healthy", Duration::from_secs(30)).unwrap();
}

#[test]
fn smokefail_image_is_healthy_but_serves_a_broken_page() {
    if !require_docker() {
        return;
    }
    let (dir, shop, web_port, _) = shop();
    let over = write_image_override(
        dir.path(),
        "c2quay.override.yaml",
        &[("web", WEB_SMOKEFAIL)],
    );

    shop.run_ok(&[
        "-f",
        "compose.yaml",
        "-f",
        &over,
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        WAIT_TIMEOUT,
    ]);
    let web = shop.container_id("web").expect("web container");
    assert_eq!(docker::health_status(&web), "healthy");
    let (status, body) = http_get(&format!("http://127.0.0.1:{web_port}/"));
    assert_eq!((status, body.trim()), (200, "c2quay-test web BROKEN"));
    let (status, body) = http_get(&format!("http://127.0.0.1:{web_port}/healthz"));
    assert_eq!(status, 404);
    assert!(body.contains("BROKEN"), "{body:?}");
    assert!(!body.contains("ok"), "{body:?}");
    let (status, _) = http_get(&format!("http://127.0.0.1:{web_port}/cgi-bin/status"));
    assert_eq!(status, 500);
}

#[test]
fn tool_image_runs_one_shot_jobs() {
    if !require_docker() {
        return;
    }
    let out = docker::docker_ok(&[
        "run",
        "--rm",
        "--pull",
        "never",
        docker::TOOL,
        "sh",
        "-c",
        "echo migrated",
    ]);
    assert_eq!(out, "migrated");

    // The same as a compose one-shot that web depends on.
    let (_dir, shop, web_port, _) = shop();
    shop.run_ok(&[
        "-f",
        "compose.yaml",
        "-f",
        "compose.migrate.yaml",
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        WAIT_TIMEOUT,
    ]);
    let logs = shop.run_ok(&[
        "-f",
        "compose.yaml",
        "-f",
        "compose.migrate.yaml",
        "logs",
        "--no-log-prefix",
        "migrate",
    ]);
    assert_eq!(logs.trim(), "migrated");
    let migrate = shop.container_id("migrate").expect("migrate container");
    let exit = docker::docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &migrate]);
    assert_eq!(exit, "0");
    let (status, _) = http_get(&format!("http://127.0.0.1:{web_port}/healthz"));
    assert_eq!(status, 200);
}

#[test]
fn missing_docker_skips_locally_and_fails_when_required() {
    // The policy itself, independent of this machine's Docker.
    use docker::{DockerVerdict, verdict};
    assert_eq!(verdict(false, Ok(()), "t"), DockerVerdict::Run);
    assert_eq!(verdict(true, Ok(()), "t"), DockerVerdict::Run);
    match verdict(false, Err("no docker".into()), "t") {
        DockerVerdict::Skip(line) => assert!(line.starts_with("SKIP t: no docker"), "{line}"),
        other => panic!("expected a skip, got {other:?}"),
    }
    match verdict(true, Err("no docker".into()), "t") {
        DockerVerdict::Fail(message) => {
            assert!(message.contains("no docker"), "{message}");
            assert!(message.contains("C2QUAY_REQUIRE_DOCKER"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
