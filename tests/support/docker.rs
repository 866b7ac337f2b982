//! Helpers for end-to-end tests against the real Docker engine and Compose v2.
//!
//! Reached as `crate::support::docker`. Only std and the `tempfile`
//! dev-dependency are used; nothing from the c2quay library, so the tests
//! stay black-box.
//!
//! Docker policy: [`require_docker`] returns `false` (the test should return
//! early, printing a SKIP line) when the engine, Compose v2 or the test images
//! are missing, unless `CI` or `C2QUAY_REQUIRE_DOCKER` is set, in which case
//! it panics: CI must never pass by skipping. `scripts/test-world.sh` installs
//! and starts everything.
//!
//! Test images (built by `scripts/test-world.sh` from `images/web/Dockerfile`),
//! all serving HTTP on container port 8080:
//! - `c2quay-test/web:1`, `:2`: `/` -> 200 "c2quay-test web version N",
//!   `/healthz` -> 200 "ok version N", `/version` -> 200 "N"; healthy in ~1 s.
//! - `c2quay-test/web:unhealthy`: `/` -> 200 "c2quay-test web UNHEALTHY",
//!   `/healthz` -> 404; its healthcheck never passes (unhealthy after ~3 s).
//! - `c2quay-test/web:smokefail`: healthy, but `/` -> 200 "c2quay-test web
//!   BROKEN", `/healthz` -> 404 "c2quay-test web BROKEN",
//!   `/cgi-bin/status` -> 500.
//! - `c2quay-test/tool:1`: busybox for one-shot jobs (`sh -c 'echo migrated'`).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const WEB_V1: &str = "c2quay-test/web:1";
pub const WEB_V2: &str = "c2quay-test/web:2";
pub const WEB_UNHEALTHY: &str = "c2quay-test/web:unhealthy";
pub const WEB_SMOKEFAIL: &str = "c2quay-test/web:smokefail";
pub const TOOL: &str = "c2quay-test/tool:1";
pub const ALL_TEST_IMAGES: &[&str] = &[WEB_V1, WEB_V2, WEB_UNHEALTHY, WEB_SMOKEFAIL, TOOL];

/// Default bound for one docker / docker compose invocation.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The repository root (where Cargo.toml of the c2quay package lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_flag(name: &str) -> bool {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim().to_ascii_lowercase();
            !(v.is_empty() || v == "0" || v == "false" || v == "no")
        }
        Err(_) => false,
    }
}

/// True when Docker e2e tests must run (fail instead of skip): `CI` or
/// `C2QUAY_REQUIRE_DOCKER` is set to anything but "", "0", "false", "no".
pub fn docker_required() -> bool {
    env_flag("CI") || env_flag("C2QUAY_REQUIRE_DOCKER")
}

/// Probes the engine, Compose v2 and the test images once per test binary.
/// `Err` says what is missing and how to get it.
pub fn docker_status() -> Result<(), String> {
    static STATUS: OnceLock<Result<(), String>> = OnceLock::new();
    STATUS.get_or_init(probe_docker).clone()
}

fn probe_docker() -> Result<(), String> {
    const FIX: &str = "run `bash scripts/test-world.sh` as root to install and start it";
    let info = run_with_timeout(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        Duration::from_secs(20),
    )
    .map_err(|e| format!("cannot run `docker info`: {e}; {FIX}"))?;
    if !info.status.success() {
        return Err(format!(
            "`docker info` failed (is dockerd running?): {}; {FIX}",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let compose = run_with_timeout(
        Command::new("docker").args(["compose", "version", "--short"]),
        Duration::from_secs(20),
    )
    .map_err(|e| format!("cannot run `docker compose version`: {e}; {FIX}"))?;
    let version = String::from_utf8_lossy(&compose.stdout).trim().to_string();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if !compose.status.success() || major.is_none_or(|m| m < 2) {
        return Err(format!(
            "Docker Compose v2 is missing (`docker compose version` said {:?} {}); {FIX}",
            version,
            String::from_utf8_lossy(&compose.stderr).trim()
        ));
    }
    let missing: Vec<&str> = ALL_TEST_IMAGES
        .iter()
        .copied()
        .filter(|image| !image_exists(image))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "test images missing: {}; {FIX}",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// What a Docker e2e test does on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerVerdict {
    Run,
    /// Docker is unusable and not required: return early.
    Skip(String),
    /// Docker is unusable but required (CI or C2QUAY_REQUIRE_DOCKER): fail.
    Fail(String),
}

/// The skip-or-fail decision, separated from the environment for testing.
pub fn verdict(required: bool, status: Result<(), String>, test: &str) -> DockerVerdict {
    match status {
        Ok(()) => DockerVerdict::Run,
        Err(why) if required => DockerVerdict::Fail(format!(
            "Docker end-to-end test {test} cannot run: {why} \
             (CI or C2QUAY_REQUIRE_DOCKER is set, so this is a failure, not a skip)"
        )),
        Err(why) => DockerVerdict::Skip(format!(
            "SKIP {test}: {why} (set C2QUAY_REQUIRE_DOCKER=1 to make this a failure)"
        )),
    }
}

/// Call first in every Docker e2e test: `if !require_docker() { return; }`.
/// Returns false after printing a SKIP line when Docker is unusable; panics
/// instead when `CI` or `C2QUAY_REQUIRE_DOCKER` is set.
#[track_caller]
pub fn require_docker() -> bool {
    let caller = std::panic::Location::caller();
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{}", caller.file(), caller.line()));
    match verdict(docker_required(), docker_status(), &test) {
        DockerVerdict::Run => true,
        DockerVerdict::Skip(line) => {
            // Straight to fd 2, so the line shows even when libtest captures output.
            let _ = writeln!(io::stderr(), "{line}");
            false
        }
        DockerVerdict::Fail(message) => panic!("{message}"),
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago.
///
/// Taken from 20000-32767, below the kernel's ephemeral range (32768-60999): a port the kernel
/// hands out for `bind(0)` is also the source port of the next outgoing connection (a smoke
/// check, the agent's broker client), which then holds it when Docker publishes it ("address
/// already in use" on a first deploy). Each process starts at its own offset (pid) and never
/// hands out a port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    let mut ports = Vec::new();
    let mut listeners = Vec::new();
    for _ in 0..SPAN {
        if ports.len() == n {
            break;
        }
        let k = NEXT.fetch_add(1, Ordering::SeqCst) as u32;
        let port = (LOW + (offset + k) % SPAN) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
            ports.push(port);
        }
    }
    assert_eq!(
        ports.len(),
        n,
        "no {n} free ports in {LOW}-{}",
        LOW + SPAN - 1
    );
    ports
}

/// A Compose project name unique to this process: `c2q-test-<pid>-<n>`.
pub fn unique_project_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "c2q-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd` with stdin closed, collecting output, killing it after
/// `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} exited with {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `docker ARGS...` (bounded by [`COMMAND_TIMEOUT`]); panics if it cannot
/// be started or times out. Inspect the status yourself.
pub fn docker(args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
}

/// Runs `docker ARGS...` and returns its trimmed stdout; panics on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")));
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Ids of the containers of `service` in Compose project `project` (only the running ones when
/// `running_only`), as `docker ps` lists them.
pub fn service_container_ids(project: &str, service: &str, running_only: bool) -> Vec<String> {
    let project_label = format!("label=com.docker.compose.project={project}");
    let service_label = format!("label=com.docker.compose.service={service}");
    let mut args = vec![
        "ps",
        "-aq",
        "--filter",
        &project_label,
        "--filter",
        &service_label,
    ];
    if running_only {
        args.extend(["--filter", "status=running"]);
    }
    String::from_utf8_lossy(&docker(&args).stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Full ids of every container (running or not) of Compose project `project`, sorted.
pub fn project_container_ids(project: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

pub fn image_exists(image: &str) -> bool {
    run_with_timeout(
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]),
        Duration::from_secs(30),
    )
    .map(|o| o.status.success())
    .unwrap_or(false)
}

/// The container's health: "healthy", "unhealthy", "starting", or "" when it
/// has no healthcheck (or does not exist).
pub fn health_status(container: &str) -> String {
    let out = docker(&[
        "inspect",
        "--format",
        "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        container,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls [`health_status`] until it equals `want`; `Err` with the last seen
/// status after `timeout`.
pub fn wait_for_health(container: &str, want: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = health_status(container);
        if status == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "container {container} is {status:?}, not {want:?}, after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `docker compose -p NAME down -v --remove-orphans` on drop, so a
/// failing test leaves no containers, networks or volumes behind.
pub struct ComposeProjectGuard {
    name: String,
}

impl ComposeProjectGuard {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ComposeProjectGuard {
    fn drop(&mut self) {
        // From a neutral directory: `down -p` needs no compose file.
        let result = run_with_timeout(
            Command::new("docker")
                .args([
                    "compose",
                    "-p",
                    &self.name,
                    "down",
                    "-v",
                    "--remove-orphans",
                    "--timeout",
                    "5",
                ])
                .current_dir(std::env::temp_dir()),
            Duration::from_secs(120),
        );
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: compose down of {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: compose down of {} failed: {e}", self.name),
        }
    }
}

/// A Compose project in a directory, with a unique name, an environment for
/// interpolation, and a guard that tears it down on drop.
pub struct ComposeProject {
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    guard: ComposeProjectGuard,
}

impl ComposeProject {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            env: Vec::new(),
            guard: ComposeProjectGuard::new(unique_project_name()),
        }
    }

    pub fn name(&self) -> &str {
        self.guard.name()
    }

    /// Adds an environment variable for compose's `${VAR}` interpolation.
    pub fn with_env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// `docker compose -p NAME ARGS...` in the project directory, not run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("compose")
            .arg("-p")
            .arg(self.name())
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs `docker compose -p NAME ARGS...`; panics only if it cannot start
    /// or times out.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("docker compose {}: {e}", args.join(" ")))
    }

    /// Like [`run`](Self::run), but panics with the output on failure;
    /// returns trimmed stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        let out = run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("docker compose {}: {e}", args.join(" ")));
        assert!(out.status.success(), "{}", describe(&cmd, &out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The container id of `service` (first replica), if it exists.
    pub fn container_id(&self, service: &str) -> Option<String> {
        let out = self.run(&["ps", "-a", "-q", service]);
        let id = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        (out.status.success() && !id.is_empty()).then_some(id)
    }
}

/// Writes a compose override file pinning services to images; returns its
/// file name relative to `dir` (for `-f`).
pub fn write_image_override(dir: &Path, file_name: &str, images: &[(&str, &str)]) -> String {
    let mut yaml = String::from("services:\n");
    for (service, image) in images {
        yaml.push_str(&format!("  {service}:\n    image: {image}\n"));
    }
    std::fs::write(dir.join(file_name), yaml).expect("write override file");
    file_name.to_string()
}

/// Copies `examples/<name>` from the repository into a fresh temp dir.
pub fn copy_example(name: &str) -> tempfile::TempDir {
    let src = repo_root().join("examples").join(name);
    assert!(src.is_dir(), "no example directory {}", src.display());
    let tmp = tempfile::Builder::new()
        .prefix(&format!("c2q-{name}-"))
        .tempdir()
        .expect("create temp dir");
    copy_dir(&src, tmp.path()).expect("copy example");
    tmp
}

/// Recursive copy of a directory's files and subdirectories.
pub fn copy_dir(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// A plain HTTP/1.0 GET over std's TcpStream: `(status, body)`.
/// Only `http://host:port/path` URLs.
pub fn try_http_get(url: &str) -> io::Result<(u16, String)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {why}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid("host does not resolve"))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: c2quay-tests\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of headers"))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    Ok((status, body.to_string()))
}

/// [`try_http_get`], panicking on I/O errors.
pub fn http_get(url: &str) -> (u16, String) {
    try_http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Polls `url` until `accept(status, body)` holds; returns that response, or
/// `Err` with the last response or error after `timeout`.
pub fn wait_for_http(
    url: &str,
    timeout: Duration,
    accept: impl Fn(u16, &str) -> bool,
) -> Result<(u16, String), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match try_http_get(url) {
            Ok((status, body)) if accept(status, &body) => return Ok((status, body)),
            Ok((status, body)) => format!("{status} {body:?}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("GET {url}: still {last} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
