//! Helpers for end-to-end tests of the real `c2quay agent` process.
//!
//! Reached as `crate::support::agent` (it uses its sibling `super::docker`).
//!
//! - [`Broker`]: the broker emulator on its own small runtime, so synchronous tests can seed it,
//!   inject faults and inspect records while the agent talks to it.
//! - [`World`]: a temp directory with `desired/`, `state/` and one Compose directory per
//!   environment; [`EnvSpec`] renders a manifest for one environment (one `web` service).
//! - [`Agent`]: the spawned binary (`--listen` on a free loopback port, short resync and
//!   debounce), `/readyz` waiting, bounded status polling, `kill -9` / SIGTERM helpers; dropping
//!   it kills the process.
#![allow(dead_code)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::docker::{ComposeProjectGuard, docker, free_port, try_http_get, unique_project_name};

#[path = "agent_broker.rs"]
mod broker;
pub use broker::{BROKER_ENV, Broker};

/// A temp directory holding the desired directory, the state directory and the Compose
/// directories of the test's environments.
pub struct World {
    pub root: tempfile::TempDir,
    pub desired: PathBuf,
    pub state: PathBuf,
}

impl World {
    /// An empty world.
    pub fn new() -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let desired = root.path().join("desired");
        let state = root.path().join("state");
        fs::create_dir_all(&desired).expect("desired dir");
        World {
            root,
            desired,
            state,
        }
    }

    /// Creates the Compose directory of one environment: one `web` service from
    /// `c2quay-test/web:1` published on `127.0.0.1:<port>`. Returns the spec to edit and write,
    /// and a guard that removes the project.
    pub fn env(&self, name: &str, broker: Option<&Broker>) -> (EnvSpec, ComposeProjectGuard) {
        self.env_with_stop(name, broker, false)
    }

    /// [`World::env`] with a service whose PID 1 ignores SIGTERM (a bare busybox `httpd`, no
    /// `init: true`) and Compose's default `stop_grace_period` (10 s): every recreate waits for
    /// the stop timeout, as a plain `httpd` or shell-script service does (issue 11).
    pub fn env_slow_stop(
        &self,
        name: &str,
        broker: Option<&Broker>,
    ) -> (EnvSpec, ComposeProjectGuard) {
        self.env_with_stop(name, broker, true)
    }

    fn env_with_stop(
        &self,
        name: &str,
        broker: Option<&Broker>,
        slow_stop: bool,
    ) -> (EnvSpec, ComposeProjectGuard) {
        let project = unique_project_name();
        let port = free_port();
        let dir = self.root.path().join("compose").join(name);
        fs::create_dir_all(&dir).expect("compose dir");
        fs::write(
            dir.join("compose.yaml"),
            web_compose(port, slow_stop, "", ""),
        )
        .expect("compose.yaml");
        let spec = EnvSpec {
            name: name.to_string(),
            project: project.clone(),
            compose_dir: dir,
            port,
            pacticipant: format!("{name}-web"),
            version: "1".into(),
            image: None,
            broker_url: broker.map(Broker::url),
            self_heal: false,
            gate_retry: None,
            smoke_sleep: None,
            sync: None,
            extra_yaml: String::new(),
        };
        (spec, ComposeProjectGuard::new(project))
    }

    /// The state directory of one environment.
    pub fn env_state(&self, name: &str) -> PathBuf {
        self.state.join("envs").join(name)
    }

    /// The audit log lines of an environment (unparsable lines skipped).
    pub fn audit(&self, name: &str) -> Vec<Value> {
        let text = fs::read_to_string(self.env_state(name).join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Whether the audit log holds a line `step` with `outcome` for `generation` written after
    /// line `after` (an index into [`World::audit`]).
    pub fn audit_has(&self, name: &str, after: usize, step: &str, outcome: &str) -> bool {
        self.audit(name)
            .iter()
            .skip(after)
            .any(|e| e["step"] == step && e["outcome"] == outcome)
    }

    /// Whether a deploy intent is open for `name`.
    pub fn intent_open(&self, name: &str) -> bool {
        self.env_state(name).join("intent.json").exists()
    }

    /// Files in the outbox of `name`.
    pub fn outbox_len(&self, name: &str) -> usize {
        fs::read_dir(self.env_state(name).join("outbox"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// `c2quay deploy NAME` on this world's desired and state directories: (exit code,
    /// stdout and stderr joined).
    pub fn deploy(&self, name: &str) -> (i32, String) {
        let (code, out, err) = self.c2quay(&[
            "deploy",
            name,
            "--desired",
            self.desired.to_str().expect("utf-8 path"),
            "--state-dir",
            self.state.to_str().expect("utf-8 path"),
        ]);
        (code, format!("{out}\n{err}"))
    }

    /// Runs the real `c2quay` binary with `args` (not the agent); returns (code, stdout, stderr).
    pub fn c2quay(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_c2quay"))
            .args(args)
            .env_clear_c2quay()
            .stdin(Stdio::null())
            .output()
            .expect("run c2quay");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Removes `C2QUAY_*` variables a developer may have set, so flags alone decide.
trait EnvClear {
    fn env_clear_c2quay(&mut self) -> &mut Self;
}

impl EnvClear for Command {
    fn env_clear_c2quay(&mut self) -> &mut Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("C2QUAY_") {
                self.env_remove(key);
            }
        }
        self
    }
}

/// One test environment's manifest: one `web` service, optionally gated by the emulator.
#[derive(Debug, Clone)]
pub struct EnvSpec {
    pub name: String,
    pub project: String,
    pub compose_dir: PathBuf,
    pub port: u16,
    pub pacticipant: String,
    /// The release identity recorded in the broker.
    pub version: String,
    /// The image; default `c2quay-test/web:{version}`.
    pub image: Option<String>,
    pub broker_url: Option<String>,
    pub self_heal: bool,
    /// `gateRetry` as `(initial, max)`, e.g. `("1s", "2s")`.
    pub gate_retry: Option<(String, String)>,
    /// A smoke exec check sleeping this long (a window "after up, before smoke passed").
    pub smoke_sleep: Option<String>,
    /// `policy.sync` (`auto` | `manual`); unset: not written (the default, `auto`).
    pub sync: Option<String>,
    /// Appended verbatim under `spec:` (two-space indented lines).
    pub extra_yaml: String,
}

impl EnvSpec {
    /// The image the manifest pins.
    pub fn pinned_image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("c2quay-test/web:{}", self.version))
    }

    /// The manifest text.
    pub fn yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  compose:\n    \
             project: {project}\n    directory: {dir}\n    files: [compose.yaml]\n    waitTimeout: 20s\n    \
             pull: never\n",
            name = self.name,
            project = self.project,
            dir = self.compose_dir.display(),
        );
        if let Some(url) = &self.broker_url {
            y.push_str(&format!(
                "  broker:\n    url: {url}\n    environment: {BROKER_ENV}\n"
            ));
        }
        let image = self
            .image
            .clone()
            .unwrap_or_else(|| "c2quay-test/web:{version}".to_string());
        y.push_str(&format!(
            "  services:\n    web:\n      pacticipant: {p}\n      version: \"{v}\"\n      image: \"{image}\"\n",
            p = self.pacticipant,
            v = self.version,
        ));
        y.push_str(&format!(
            "  smoke:\n    - name: web answers\n      http:\n        url: http://127.0.0.1:{port}/\n        \
             status: 200\n      timeout: 2s\n      attempts: 10\n      interval: 500ms\n",
            port = self.port
        ));
        if let Some(sleep) = &self.smoke_sleep {
            y.push_str(&format!(
                "    - name: slow check\n      exec:\n        command: [sh, -c, \"sleep {sleep}\"]\n      timeout: 30s\n"
            ));
        }
        y.push_str(&format!(
            "  policy:\n    rollback: on\n    selfHeal: {}\n",
            self.self_heal
        ));
        if let Some(sync) = &self.sync {
            y.push_str(&format!("    sync: {sync}\n"));
        }
        if let Some((initial, max)) = &self.gate_retry {
            y.push_str(&format!(
                "    gateRetry: {{ initial: {initial}, max: {max} }}\n"
            ));
        }
        y.push_str(&self.extra_yaml);
        y
    }

    /// Replaces the environment's `compose.yaml` (atomically).
    pub fn write_compose(&self, text: &str) {
        write_atomic(&self.compose_dir.join("compose.yaml"), text);
    }

    /// Writes the manifest atomically into `desired` as `<name>.yaml`.
    pub fn write(&self, desired: &Path) {
        write_atomic(&desired.join(format!("{}.yaml", self.name)), &self.yaml());
    }

    /// The `web` containers of the project as `(image, state)`, via `docker ps -a`.
    pub fn web_containers(&self) -> Vec<(String, String)> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.service=web",
            "--format",
            "{{.Image}} {{.State}}",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(i, s)| (i.to_string(), s.to_string()))
            .collect()
    }

    /// The version the web service answers with (`None` when it does not answer).
    pub fn served_version(&self) -> Option<String> {
        let (status, body) =
            try_http_get(&format!("http://127.0.0.1:{}/version", self.port)).ok()?;
        (status == 200).then(|| body.trim().to_string())
    }
}

/// A bare busybox `httpd` as PID 1: it ignores SIGTERM, so every recreate waits for the stop
/// timeout (10 s), as a plain `httpd` or shell-script service does. The image's own PID 1 (a
/// shell script) traps TERM and exits 0.
pub const SLOW_STOP_ENTRYPOINT: &str =
    "    entrypoint: [httpd, -f, -p, \"8080\", -h, /www, -c, /etc/httpd.conf]\n";

/// A compose file with one `web` service from `c2quay-test/web:1` published on
/// `127.0.0.1:<port>`: slow to stop ([`SLOW_STOP_ENTRYPOINT`]) or with `init: true` and a 2 s
/// grace; `extra` lines go into `web`, `more` services after it.
pub fn web_compose(port: u16, slow_stop: bool, extra: &str, more: &str) -> String {
    let stop = if slow_stop {
        SLOW_STOP_ENTRYPOINT
    } else {
        "    init: true\n    stop_grace_period: 2s\n"
    };
    format!(
        "services:\n  web:\n    image: c2quay-test/web:1\n    pull_policy: never\n{stop}{extra}    \
         ports:\n      - \"127.0.0.1:{port}:8080\"\n{more}"
    )
}

/// Writes `path` via a hidden temp file and a rename (the agent never sees half a manifest).
pub fn write_atomic(path: &Path, text: &str) {
    let dir = path.parent().expect("parent");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().expect("file name").to_string_lossy()
    ));
    fs::write(&tmp, text).expect("write temp manifest");
    fs::rename(&tmp, path).expect("rename manifest");
}

/// The spawned `c2quay agent`. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Agent {
    child: Option<Child>,
    /// The HTTP port.
    pub port: u16,
    /// Where stdout and stderr go.
    pub log: PathBuf,
}

/// Default extra flags of [`Agent::start`].
pub const AGENT_FLAGS: &[&str] = &["--resync", "2s", "--debounce", "200ms", "--grace", "20s"];

/// The pairs of [`AGENT_FLAGS`] whose flag `extra` does not give itself.
fn default_flags(extra: &[&str]) -> Vec<&'static str> {
    AGENT_FLAGS
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .copied()
        .collect()
}

impl Agent {
    /// Spawns the agent on `world` with the default flags (those not in `extra`) plus `extra`,
    /// and waits for `/readyz`. A port taken between `free_port` and the agent's bind (another
    /// test's process) is retried on a new port, up to 3 times.
    pub fn start(world: &World, extra: &[&str]) -> Agent {
        for _ in 0..3 {
            let mut agent = Agent::spawn(world, extra, free_port());
            match agent.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return agent,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("the agent found no free port in 3 tries");
    }

    /// Spawns the agent on `world` with `DOCKER_HOST` on a socket where nothing listens (a
    /// stopped daemon) and waits until it serves `/metrics` (`/readyz` says 503 then).
    pub fn start_without_docker(world: &World, extra: &[&str]) -> Agent {
        let nowhere = world.root.path().join("no-docker.sock");
        let docker_host = format!("unix://{}", nowhere.display());
        let agent = Agent::spawn_with(world, extra, free_port(), &[("DOCKER_HOST", &docker_host)]);
        let serving = wait_until(Duration::from_secs(30), || {
            agent.log_text().contains("serving /metrics")
                && matches!(agent.get("/metrics"), Ok((200, _)))
        });
        assert!(
            serving,
            "the agent never served /metrics:\n{}",
            agent.log_text()
        );
        agent
    }

    fn spawn(world: &World, extra: &[&str], port: u16) -> Agent {
        Agent::spawn_with(world, extra, port, &[])
    }

    fn spawn_with(world: &World, extra: &[&str], port: u16, envs: &[(&str, &str)]) -> Agent {
        let log = world
            .root
            .path()
            .join(format!("agent-{}-{port}.log", std::process::id()));
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_c2quay"))
            .arg("agent")
            .arg("--desired")
            .arg(&world.desired)
            .arg("--state-dir")
            .arg(&world.state)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(default_flags(extra))
            .args(extra)
            .env_clear_c2quay()
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            // Its own process group, like a systemd unit's cgroup: `kill9` takes the children
            // (`docker compose up`, `docker events`) with it, as a unit restart would.
            .process_group(0)
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .spawn()
            .expect("spawn c2quay agent");
        Agent {
            child: Some(child),
            port,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// GET on the agent's HTTP port: `(status, body)`.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        try_http_get(&format!("http://127.0.0.1:{}{path}", self.port))
    }

    /// Waits until this agent (its own log says it serves) answers `/readyz` with 200; `Err`
    /// with the reason and the log otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Another process on our port could answer too: our own log must say we serve.
            if self.log_text().contains("serving /metrics")
                && let Ok((200, _)) = self.get("/readyz")
            {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "the agent exited ({status}) before /readyz:\n{}",
                    self.log_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "/readyz not 200 after {timeout:?}:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The status JSON of `env` from `/api/v1/environments/{env}`.
    pub fn status(&self, env: &str) -> Option<Value> {
        match self.get(&format!("/api/v1/environments/{env}")) {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// Polls the status of `env` every 100 ms until `accept` holds; panics after `timeout`
    /// with the last status and the agent's log.
    pub fn wait_status(
        &self,
        env: &str,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(status) = self.status(env) {
                if accept(&status) {
                    return status;
                }
                last = Some(status);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{env}: not {what} after {timeout:?}; last status:\n{}\n--- agent log (tail) ---\n{}",
                    last.map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
                        .unwrap_or_else(|| "none".into()),
                    tail(&self.log_text(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `phase` (and, when given, `appliedGeneration` set to a non-null value).
    pub fn wait_phase(&self, env: &str, phase: &str, timeout: Duration) -> Value {
        self.wait_status(env, timeout, phase, |s| s["phase"] == phase)
    }

    /// `kill -9` of the agent and its children (its process group), then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: the group of a child we spawned with `process_group(0)`, not yet reaped.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -9` of the agent process alone (its children live on, as after an OOM kill).
    pub fn kill9_main_only(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the status and how long
    /// the exit took (`None` when it did not exit in time: the process is then killed).
    pub fn sigterm(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let pid = child.id() as libc::pid_t;
        let started = Instant::now();
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let took = started.elapsed();
                // SAFETY: as in `kill9`; leftovers of the group, if any, go too.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                return Some((status, took));
            }
            if started.elapsed() >= timeout {
                // SAFETY: as in `kill9`.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The number in environment variable `name` (a test's size knob), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Condition `type_` of a status JSON: `(status, reason, message)`.
pub fn condition(status: &Value, type_: &str) -> Option<(String, String, String)> {
    status["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == type_).then(|| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}
