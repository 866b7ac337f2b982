//! Helpers for end-to-end tests of the release pipeline: a temp desired directory and Compose
//! project, the real `c2quay` binary run with `--desired` / `--state-dir`, and a seeded broker
//! emulator. Reached as `crate::support::c2quay` (it uses its sibling `crate::support::docker`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator};

use crate::support::docker::{ComposeProjectGuard, docker, unique_project_name};

/// The most any one `c2quay` run may take before the test kills it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// One service of the test Compose project and manifest.
#[derive(Debug, Clone)]
pub struct Svc {
    /// Compose service name.
    pub name: String,
    /// Broker pacticipant.
    pub pacticipant: String,
    /// Manifest version.
    pub version: String,
    /// Manifest image (literal; no `{version}`).
    pub image: String,
    /// Host port on 127.0.0.1 mapped to the container's 8080 (web services).
    pub port: Option<u16>,
    /// A one-shot command (`restart: "no"`); the service is not a web server then.
    pub one_shot: Option<String>,
}

impl Svc {
    /// A web service running `c2quay-test/web:<version>` on `port`.
    pub fn web(name: &str, pacticipant: &str, version: &str, port: u16) -> Svc {
        Svc {
            name: name.into(),
            pacticipant: pacticipant.into(),
            version: version.into(),
            image: format!("c2quay-test/web:{version}"),
            port: Some(port),
            one_shot: None,
        }
    }

    /// The same service at another version and image.
    pub fn at(&self, version: &str, image: &str) -> Svc {
        Svc {
            version: version.into(),
            image: image.into(),
            ..self.clone()
        }
    }
}

/// What goes into the environment manifest besides the services.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Services in manifest order.
    pub services: Vec<Svc>,
    /// Broker URL (None: no broker section).
    pub broker_url: Option<String>,
    /// Broker environment name.
    pub broker_env: String,
    /// `broker.allOrNothing`.
    pub all_or_nothing: bool,
    /// `broker.tokenFile`.
    pub token_file: Option<PathBuf>,
    /// `policy.rollback`: on | off | dry-run.
    pub rollback: String,
    /// `compose.pull`.
    pub pull: String,
    /// `compose.waitTimeout`.
    pub wait_timeout: String,
    /// Smoke: an http check per (url, bodyContains).
    pub http_smoke: Vec<(String, String)>,
}

impl Spec {
    /// A spec with a broker at `broker_url`, environment `test`, rollback on, pull never.
    pub fn new(services: Vec<Svc>, broker_url: &str) -> Spec {
        Spec {
            services,
            broker_url: Some(broker_url.into()),
            broker_env: "test".into(),
            all_or_nothing: false,
            token_file: None,
            rollback: "on".into(),
            pull: "never".into(),
            wait_timeout: "20s".into(),
            http_smoke: Vec::new(),
        }
    }
}

/// The output of one `c2quay` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// stdout and stderr together, for assertions and failure messages.
    pub fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A test world: temp dirs (desired, state, compose project) and a Compose project guard.
pub struct World {
    /// Keeps the temp directory alive.
    pub root: tempfile::TempDir,
    /// `--desired`.
    pub desired: PathBuf,
    /// `--state-dir`.
    pub state: PathBuf,
    /// The Compose project directory.
    pub compose_dir: PathBuf,
    /// Compose project name.
    pub project: String,
    /// Environment name (`metadata.name`).
    pub env: String,
    _guard: ComposeProjectGuard,
}

impl World {
    /// A world for environment `env` whose Compose file has `services` at their current images.
    pub fn new(env: &str, services: &[Svc]) -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let desired = root.path().join("desired");
        let state = root.path().join("state");
        let compose_dir = root.path().join("project");
        for dir in [&desired, &compose_dir] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let project = unique_project_name();
        let world = World {
            desired,
            state,
            compose_dir,
            env: env.into(),
            _guard: ComposeProjectGuard::new(project.clone()),
            project,
            root,
        };
        world.write_compose(services);
        world
    }

    /// Writes `compose.yaml` with `services` (ports written literally).
    pub fn write_compose(&self, services: &[Svc]) {
        let mut text = String::from("services:\n");
        for s in services {
            let _ = writeln!(text, "  {}:\n    image: {}", s.name, s.image);
            let _ = writeln!(text, "    init: true\n    stop_grace_period: 2s");
            match &s.one_shot {
                Some(command) => {
                    let _ = writeln!(text, "    restart: \"no\"\n    command: {command}");
                }
                None => {
                    let _ = writeln!(text, "    restart: unless-stopped");
                }
            }
            if let Some(port) = s.port {
                let _ = writeln!(text, "    ports: [\"127.0.0.1:{port}:8080\"]");
            }
        }
        std::fs::write(self.compose_dir.join("compose.yaml"), text).expect("write compose");
    }

    /// Writes the environment manifest (replacing the previous one).
    pub fn write_manifest(&self, spec: &Spec) {
        let mut t = String::new();
        let _ = writeln!(t, "apiVersion: c2quay.dev/v1\nkind: Environment");
        let _ = writeln!(t, "metadata:\n  name: {}\nspec:", self.env);
        let _ = writeln!(t, "  compose:\n    project: {}", self.project);
        let _ = writeln!(t, "    directory: {}", self.compose_dir.display());
        let _ = writeln!(t, "    files: [compose.yaml]");
        let _ = writeln!(t, "    waitTimeout: {}", spec.wait_timeout);
        let _ = writeln!(t, "    pull: {}", spec.pull);
        if let Some(url) = &spec.broker_url {
            let _ = writeln!(t, "  broker:\n    url: {url}");
            let _ = writeln!(t, "    environment: {}", spec.broker_env);
            let _ = writeln!(t, "    allOrNothing: {}", spec.all_or_nothing);
            if let Some(file) = &spec.token_file {
                let _ = writeln!(t, "    tokenFile: {}", file.display());
            }
        }
        let _ = writeln!(t, "  services:");
        for s in &spec.services {
            let _ = writeln!(t, "    {}:", s.name);
            let _ = writeln!(t, "      pacticipant: {}", s.pacticipant);
            let _ = writeln!(t, "      version: \"{}\"", s.version);
            let _ = writeln!(t, "      image: {}", s.image);
            if s.one_shot.is_some() {
                // A one-shot is a job only when declared one (issue 18).
                let _ = writeln!(t, "      job: true");
            }
        }
        if !spec.http_smoke.is_empty() {
            let _ = writeln!(t, "  smoke:");
            for (i, (url, body)) in spec.http_smoke.iter().enumerate() {
                let _ = writeln!(t, "    - name: http-{i}\n      http:\n        url: {url}");
                let _ = writeln!(t, "        status: 200\n        bodyContains: {body:?}");
                let _ = writeln!(
                    t,
                    "      timeout: 2s\n      attempts: 3\n      interval: 300ms"
                );
            }
        }
        let _ = writeln!(t, "  policy:\n    rollback: {}", spec.rollback);
        std::fs::write(self.desired.join(format!("{}.yaml", self.env)), t).expect("manifest");
    }

    /// Runs `c2quay <args> --desired D --state-dir S` (killed after [`RUN_TIMEOUT`]).
    pub async fn c2quay(&self, args: &[&str]) -> Run {
        self.run_binary(args, true).await
    }

    /// Runs `c2quay <args> --state-dir S` (for commands without `--desired`, like `status`).
    pub async fn c2quay_state_only(&self, args: &[&str]) -> Run {
        self.run_binary(args, false).await
    }

    async fn run_binary(&self, args: &[&str], with_desired: bool) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2quay"));
        cmd.args(args);
        if with_desired {
            cmd.arg("--desired").arg(&self.desired);
        }
        cmd.arg("--state-dir")
            .arg(&self.state)
            .env_remove("C2QUAY_DESIRED")
            .env_remove("C2QUAY_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn c2quay");
        let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("c2quay {args:?} ran longer than {RUN_TIMEOUT:?}"))
            .expect("c2quay output");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// `c2quay deploy ENV <extra>`.
    pub async fn deploy(&self, extra: &[&str]) -> Run {
        let mut args = vec!["deploy", self.env.as_str()];
        args.extend_from_slice(extra);
        self.c2quay(&args).await
    }

    /// Service -> (container id, image, state) of every container of the project.
    pub fn containers(&self) -> BTreeMap<String, (String, String, String)> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let format = "{{.Label \"com.docker.compose.service\"}}|{{.ID}}|{{.Image}}|{{.State}}";
        let out = docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &label,
            "--format",
            format,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.split('|');
                let service = parts.next()?.to_string();
                let id = parts.next()?.to_string();
                let image = parts.next()?.to_string();
                let state = parts.next()?.to_string();
                Some((service, (id, image, state)))
            })
            .collect()
    }

    /// Service -> container id.
    pub fn container_ids(&self) -> BTreeMap<String, String> {
        self.containers()
            .into_iter()
            .map(|(s, (id, _, _))| (s, id))
            .collect()
    }

    /// The environment's directory in the state dir.
    pub fn env_dir(&self) -> PathBuf {
        self.state.join("envs").join(&self.env)
    }

    /// Every line of the audit log, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.env_dir().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Files of `envs/<env>/<sub>` (sorted; empty when missing).
    pub fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.env_dir().join(sub))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The newest report whose file name contains `kind` (`deploy`, `rollback`), parsed.
    pub fn latest_report(&self, kind: &str) -> Option<serde_json::Value> {
        let mut reports: Vec<(std::time::SystemTime, PathBuf)> = self
            .files_in("reports")
            .into_iter()
            .filter(|p| file_name(p).contains(kind))
            .map(|p| (p.metadata().and_then(|m| m.modified()).expect("mtime"), p))
            .collect();
        reports.sort();
        let (_, path) = reports.pop()?;
        Some(read_json(&path))
    }

    /// The status file, parsed.
    pub fn status(&self) -> Option<serde_json::Value> {
        let path = self.env_dir().join("status.json");
        path.exists().then(|| read_json(&path))
    }
}

/// Every regular file under `dir`, recursively (bounded depth).
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < 8 => walk(&path, depth + 1, out),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 0, &mut out);
    out
}

/// A file's name as text.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An emulator with environment `test` and the given pacticipant versions created.
pub async fn emulator(config: EmulatorConfig, versions: &[(&str, &str)]) -> RunningEmulator {
    let broker = c2quay_broker_emulator::start(config)
        .await
        .expect("start emulator");
    broker
        .create_environment("test", false)
        .expect("create environment");
    for (pacticipant, version) in versions {
        broker.create_version(pacticipant, version, Some("main"));
    }
    broker
}

/// A minimal pact body between `consumer` and `provider`; `tag` makes its content unique
/// (the broker keys verifications by content).
pub fn pact(consumer: &str, provider: &str, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "consumer": {"name": consumer},
        "provider": {"name": provider},
        "interactions": [{
            "description": format!("a request for the front page ({tag})"),
            "request": {"method": "GET", "path": "/"},
            "response": {"status": 200}
        }],
        "metadata": {"pactSpecification": {"version": "2.0.0"}}
    })
}

/// (pacticipant, version) of every currently deployed record in environment `test`, sorted.
pub fn deployed(broker: &RunningEmulator) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = broker
        .currently_deployed("test")
        .into_iter()
        .map(|d| (d.pacticipant, d.version))
        .collect();
    out.sort();
    out
}

/// Number of logged broker requests whose path contains `needle`.
pub fn requests_to(broker: &RunningEmulator, needle: &str) -> usize {
    broker
        .requests()
        .iter()
        .filter(|r| r.path.contains(needle))
        .count()
}

/// Prints a measured wall time in a greppable form (`cargo test -- --nocapture`).
pub fn report_time(scenario: &str, elapsed: Duration) {
    eprintln!("E2E-TIME {scenario}: {:.1}s", elapsed.as_secs_f64());
}
