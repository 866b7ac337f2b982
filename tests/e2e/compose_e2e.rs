//! End-to-end tests of the Docker adapter against the real engine (Engine API) and Compose v2.
//!
//! Needs the test images `c2quay-test/web:{1,2,unhealthy}` (built by `scripts/test-world.sh`).
//! When `docker info` fails the test prints a SKIP line and passes, unless `CI` or
//! `C2QUAY_REQUIRE_DOCKER` is set, then it fails. Nothing here reaches a public registry:
//! the missing image lives on a loopback port where nothing listens.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use c2quay::docker::{
    Applier, CliCompose, CliConfig, Container, Engine, ImagePins, Project, UpOptions,
};
use c2quay::manifest::{HttpCheck, PullPolicy, SmokeCheck};
use c2quay::smoke::{Checks, Smoke, SmokeContext};

const WEB1: &str = "c2quay-test/web:1";
const WEB2: &str = "c2quay-test/web:2";
const UNHEALTHY: &str = "c2quay-test/web:unhealthy";
const MISSING: &str = "127.0.0.1:5999/c2quay-test/missing:1";

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() || std::env::var_os("C2QUAY_REQUIRE_DOCKER").is_some() {
            panic!(
                "docker info failed and CI / C2QUAY_REQUIRE_DOCKER is set: the Docker engine is required"
            );
        }
        eprintln!(
            "SKIP compose_e2e: `docker info` failed (set C2QUAY_REQUIRE_DOCKER=1 to make this a failure)"
        );
    }
    ok
}

fn image_id(image: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "test image {image} is missing: run scripts/test-world.sh"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `down -v` for the project however the test ends.
struct Down {
    project: Project,
}

impl Drop for Down {
    fn drop(&mut self) {
        let mut cmd = Command::new("docker");
        cmd.args(["compose", "-p", &self.project.name, "--project-directory"])
            .arg(&self.project.directory);
        for f in &self.project.files {
            cmd.arg("-f").arg(f);
        }
        let _ = cmd
            .args(["down", "-v", "--remove-orphans", "-t", "2"])
            .output();
    }
}

fn write_project(dir: &Path, port: u16) -> PathBuf {
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  web:
    image: {WEB1}
    init: true
    restart: unless-stopped
    ports: ["127.0.0.1:{port}:8080"]
    depends_on:
      migrate: {{ condition: service_completed_successfully }}
  migrate:
    image: {WEB1}
    command: ["/bin/sh", "-c", "echo migrated; exit 0"]
    restart: "no"
"#
        ),
    )
    .unwrap();
    file
}

fn pins(service: &str, image: &str) -> ImagePins {
    ImagePins::from([(service.to_string(), image.to_string())])
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_adapter_on_the_real_engine() {
    if !docker_available() {
        return;
    }
    let id2 = image_id(WEB2);
    image_id(UNHEALTHY);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = write_project(dir.path(), port);
    let project = Project {
        name: format!("c2qe2e{}-{}", std::process::id(), fastrand::u32(..)),
        directory: dir.path().to_path_buf(),
        files: vec![file],
    };
    let _down = Down {
        project: project.clone(),
    };
    let state = dir.path().join("state/env");
    let config = CliConfig::new(&state);
    let compose = CliCompose::detect(config).await.expect("compose v2");
    assert!(compose.version().major >= 2, "{:?}", compose.version());
    eprintln!("compose {}", compose.version());

    // config: the rendered model.
    let model = compose.config(&project).await.unwrap();
    assert_eq!(model["web"].image.as_deref(), Some(WEB1));
    assert_eq!(model["migrate"].restart.as_deref(), Some("no"));
    assert!(!model["web"].has_build);

    // up with a pin to :2, then c2quay's readiness: the one-shot that exited 0 counts as done.
    let both = strings(&["web", "migrate"]);
    let web = strings(&["web"]);
    let t = Instant::now();
    compose
        .up(
            &project,
            &model,
            &pins("web", WEB2),
            &both,
            &UpOptions::default(),
        )
        .await
        .unwrap();
    let up_time = t.elapsed();
    let ready = compose
        .wait_ready(
            &project,
            &model,
            &both,
            Duration::from_secs(60),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap();
    assert!(
        ready.iter().any(|c| c.service == "web" && c.image == WEB2),
        "readiness returns what it observed: {ready:?}"
    );
    eprintln!("TIMING first up {:?}, up+ready {:?}", up_time, t.elapsed());
    let override_path = compose.override_path(&project);
    assert!(
        std::fs::read_to_string(&override_path)
            .unwrap()
            .contains(WEB2)
    );

    // ps: the image id of :2, the one-shot exited 0.
    let ps = compose.ps(&project).await.unwrap();
    let web_c = ps
        .iter()
        .find(|c| c.service == "web")
        .expect("web container");
    assert_eq!(
        (web_c.image.as_str(), web_c.image_id.as_str()),
        (WEB2, id2.as_str())
    );
    assert_eq!(
        (web_c.state.as_str(), web_c.health.as_str()),
        ("running", "healthy")
    );
    assert_eq!(web_c.id.len(), 64, "full ids");
    let mig = ps
        .iter()
        .find(|c| c.service == "migrate")
        .expect("migrate container");
    assert_eq!((mig.state.as_str(), mig.exit_code), ("exited", 0));

    // The smoke checks see version 2 on the published port.
    let check = SmokeCheck {
        name: "web answers".into(),
        http: Some(HttpCheck {
            url: format!("http://127.0.0.1:{port}/"),
            status: None,
            body_contains: Some("version 2".into()),
        }),
        tcp: None,
        exec: None,
        timeout: None,
        attempts: Some(5),
        interval: None,
    };
    let smoke = Checks::new()
        .unwrap()
        .run(&check, &SmokeContext::default())
        .await
        .unwrap();
    assert!(smoke.passed, "{smoke:?}");

    // :unhealthy: readiness fails within its timeout, naming the service and its state.
    let t = Instant::now();
    compose
        .up(
            &project,
            &model,
            &pins("web", UNHEALTHY),
            &web,
            &UpOptions::default(),
        )
        .await
        .unwrap();
    let err = compose
        .wait_ready(
            &project,
            &model,
            &web,
            Duration::from_secs(8),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap_err();
    let waited = t.elapsed();
    let msg = err.to_string();
    assert_eq!(err.kind(), "not_ready", "{msg}");
    assert!(
        msg.contains("web: running (unhealthy)") || msg.contains("web: running (health: starting)"),
        "{msg}"
    );
    assert!(msg.contains("last log lines"), "logs are attached: {msg}");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    eprintln!("TIMING unhealthy up+readiness failure {waited:?}\n{msg}");

    // Rollback form: pin by image id.
    let t = Instant::now();
    compose
        .up(
            &project,
            &model,
            &pins("web", &id2),
            &web,
            &UpOptions::default(),
        )
        .await
        .unwrap();
    compose
        .wait_ready(
            &project,
            &model,
            &web,
            Duration::from_secs(60),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap();
    eprintln!("TIMING rollback by image id up+ready {:?}", t.elapsed());
    let ps = compose.ps(&project).await.unwrap();
    let web_c = ps.iter().find(|c| c.service == "web").unwrap().clone();
    assert_eq!(web_c.image_id, id2);
    assert_eq!(web_c.health.as_str(), "healthy");

    // A failed pull changes nothing: same container, still running.
    let err = compose
        .pull_with_policy(
            &project,
            &model,
            &pins("web", MISSING),
            &web,
            PullPolicy::Always,
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), "failed", "{msg}");
    assert!(
        msg.contains(" pull ") && msg.contains("127.0.0.1:5999"),
        "{msg}"
    );
    let after = compose.ps(&project).await.unwrap();
    let same = after.iter().find(|c| c.service == "web").unwrap();
    assert_eq!(
        (same.id.as_str(), same.state.as_str()),
        (web_c.id.as_str(), "running")
    );
    // `never` does not even try.
    compose
        .pull_with_policy(
            &project,
            &model,
            &pins("web", MISSING),
            &web,
            PullPolicy::Never,
        )
        .await
        .unwrap();

    // ps_all sees the project.
    let all = compose.ps_all().await.unwrap();
    assert!(
        all.iter()
            .any(|c| c.project == project.name && c.service == "web" && c.image_id == id2)
    );

    // A leftover of an interrupted recreate is reported, ignored by readiness, and removed.
    assert!(compose.leftovers(&project).await.unwrap().is_empty());
    let renamed = format!("{}_{}", &web_c.id[..12], web_c.name);
    let st = Command::new("docker")
        .args(["rename", &web_c.name, &renamed])
        .status()
        .unwrap();
    assert!(st.success());
    let found = compose.leftovers(&project).await.unwrap();
    assert_eq!(
        found.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [renamed.as_str()]
    );
    let removed = compose.remove_leftovers(&project).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert!(compose.leftovers(&project).await.unwrap().is_empty());
    compose
        .up(
            &project,
            &model,
            &pins("web", WEB2),
            &web,
            &UpOptions::default(),
        )
        .await
        .unwrap();
    compose
        .wait_ready(
            &project,
            &model,
            &web,
            Duration::from_secs(60),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap();

    // Unknown services are refused before anything runs.
    let err = compose
        .up(
            &project,
            &model,
            &ImagePins::new(),
            &strings(&["nope"]),
            &UpOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "missing_service");
}

/// What `docker inspect` says about the containers of `project`, in the shape of [`Container`]
/// (restart policy and OOM flag only for containers that are not running, as the adapter reads
/// them).
fn docker_cli_view(project: &str) -> Vec<Container> {
    let ps = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"))
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8(ps.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let out = Command::new("docker")
        .arg("inspect")
        .args(&ids)
        .output()
        .unwrap();
    let inspected: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut view: Vec<Container> = inspected
        .iter()
        .map(|i| {
            let state = i["State"]["Status"].as_str().unwrap().to_string();
            let running = state == "running";
            let label = |k: &str| i["Config"]["Labels"][k].as_str().unwrap().to_string();
            Container {
                id: i["Id"].as_str().unwrap().into(),
                name: i["Name"].as_str().unwrap().trim_start_matches('/').into(),
                project: label("com.docker.compose.project"),
                service: label("com.docker.compose.service"),
                image: i["Config"]["Image"].as_str().unwrap().into(),
                image_id: i["Image"].as_str().unwrap().into(),
                config_hash: label("com.docker.compose.config-hash"),
                health: i["State"]["Health"]["Status"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                exit_code: i["State"]["ExitCode"].as_i64().unwrap(),
                restart_policy: if running {
                    String::new()
                } else {
                    i["HostConfig"]["RestartPolicy"]["Name"]
                        .as_str()
                        .unwrap()
                        .into()
                },
                oom_killed: !running && i["State"]["OOMKilled"].as_bool().unwrap(),
                state: state.as_str().into(),
            }
        })
        .collect();
    view.sort_by(|a, b| a.name.cmp(&b.name));
    view
}

fn sorted(mut containers: Vec<Container>) -> Vec<Container> {
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    containers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_api_sees_what_docker_inspect_sees_and_readiness_follows_events() {
    if !docker_available() {
        return;
    }
    image_id(WEB1);
    image_id(UNHEALTHY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  web:
    image: {WEB1}
    init: true
    restart: unless-stopped
    depends_on:
      migrate: {{ condition: service_completed_successfully }}
  sick:
    image: {UNHEALTHY}
    init: true
    restart: always
  migrate:
    image: {WEB1}
    command: ["/bin/sh", "-c", "exit 0"]
    restart: "no"
"#
        ),
    )
    .unwrap();
    let project = Project {
        name: format!("c2qeng{}-{}", std::process::id(), fastrand::u32(..)),
        directory: dir.path().to_path_buf(),
        files: vec![file],
    };
    let _down = Down {
        project: project.clone(),
    };
    let compose = CliCompose::detect(CliConfig::new(dir.path().join("state")))
        .await
        .expect("compose v2");
    let model = compose.config(&project).await.unwrap();
    let all = strings(&["web", "sick", "migrate"]);
    compose
        .up(
            &project,
            &model,
            &ImagePins::new(),
            &all,
            &UpOptions::default(),
        )
        .await
        .unwrap();

    // A healthcheck service becomes ready: the loop wakes on its health_status event.
    let ready = compose
        .wait_ready(
            &project,
            &model,
            &strings(&["web", "migrate"]),
            Duration::from_secs(60),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap();
    assert!(
        ready
            .iter()
            .any(|c| c.service == "web" && c.health.as_str() == "healthy"),
        "{ready:?}"
    );

    // A never-healthy one fails at the deadline, naming the service (and not the ready one).
    let err = compose
        .wait_ready(
            &project,
            &model,
            &strings(&["web", "sick"]),
            Duration::from_secs(6),
            Duration::ZERO,
            &c2quay::docker::no_progress,
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), "not_ready", "{msg}");
    assert!(msg.contains("  - sick: running ("), "{msg}");
    assert!(!msg.contains("  - web:"), "{msg}");

    // ps and ps_all through the Engine API equal what `docker ps` + `docker inspect` say.
    let cli = docker_cli_view(&project.name);
    assert_eq!(cli.len(), 3, "{cli:?}");
    assert_eq!(sorted(compose.ps(&project).await.unwrap()), cli);
    let everywhere = compose.ps_all().await.unwrap();
    let mine: Vec<Container> = everywhere
        .into_iter()
        .filter(|c| c.project == project.name)
        .collect();
    assert_eq!(sorted(mine), cli);

    // The logs of a service come from the Engine API too.
    let logs = compose.logs_tail(&project, "web", 5).await.unwrap();
    assert!(logs.lines().count() <= 5, "{logs}");
}
