//! Issue 6, item 7: the secrets sweep. A canary bearer token sits in a `tokenFile`; the broker
//! emulator accepts only that token. The real binary runs at `RUST_LOG=trace` through a
//! successful deploy, a deploy of `:unhealthy` that is rolled back, `verify`, `status -o json`,
//! `plan`, `agent --once`, and a short-lived agent whose `/metrics`, `/healthz`, `/readyz` and
//! `/api/v1/environments[/{env}]` are fetched. Then every output line, every file under the
//! test's root (state dir, Compose dir, desired dir; the token file itself excepted), every HTTP
//! response and `docker inspect` of the project's containers are searched for the canary, its
//! prefix and its base64 forms: zero hits.

use crate::support::docker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use c2quay_broker_emulator::{AuthConfig, Credential, EmulatorConfig, RunningEmulator};
use docker::{ComposeProjectGuard, docker, free_port, require_docker, run_with_timeout};

/// The most one `c2quay` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// A marker no legitimate output contains.
const CANARY_PREFIX: &str = "C2QCANARY";
const ENV: &str = "sweep";
const PACTICIPANT: &str = "sweep-web";

/// The emulator on its own runtime, so the synchronous test can block on processes.
struct Emu {
    emulator: Option<RunningEmulator>,
    runtime: tokio::runtime::Runtime,
}

impl Emu {
    fn start(token: &str) -> Emu {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let config = EmulatorConfig {
            auth: AuthConfig {
                bearer_tokens: vec![Credential::new(token)],
                ..AuthConfig::default()
            },
            ..EmulatorConfig::default()
        };
        let emulator = runtime
            .block_on(c2quay_broker_emulator::start(config))
            .expect("emulator starts");
        emulator.create_environment(ENV, false).expect("env");
        for v in ["1", "2"] {
            emulator.create_version(PACTICIPANT, v, Some("main"));
        }
        Emu {
            emulator: Some(emulator),
            runtime,
        }
    }

    fn emu(&self) -> &RunningEmulator {
        self.emulator.as_ref().expect("running")
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(e) = self.emulator.take() {
            self.runtime.block_on(e.shutdown());
        }
    }
}

/// Everything the sweep has to search, with where it came from.
#[derive(Default)]
struct Evidence(Vec<(String, Vec<u8>)>);

impl Evidence {
    fn add(&mut self, origin: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((origin.into(), bytes.into()));
    }
}

/// Runs `c2quay args` at trace level; returns (exit code, stdout + stderr).
fn c2quay(args: &[String], evidence: &mut Evidence) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c2quay"));
    cmd.args(args)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env_remove("C2QUAY_DESIRED")
        .env_remove("C2QUAY_STATE_DIR");
    let out = run_with_timeout(&mut cmd, RUN_TIMEOUT).expect("c2quay runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    evidence.add(format!("stdout of c2quay {args:?}"), out.stdout);
    evidence.add(format!("stderr of c2quay {args:?}"), out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn manifest(
    project: &str,
    compose_dir: &Path,
    url: &str,
    token: &Path,
    port: u16,
    image: &str,
    version: &str,
) -> String {
    format!(
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {ENV}\nspec:\n  compose:\n    \
         project: {project}\n    directory: {dir}\n    files: [compose.yaml]\n    waitTimeout: 15s\n    \
         pull: never\n  broker:\n    url: {url}\n    environment: {ENV}\n    tokenFile: {token}\n  \
         services:\n    web:\n      pacticipant: {PACTICIPANT}\n      version: \"{version}\"\n      \
         image: {image}\n  smoke:\n    - name: web answers\n      http:\n        url: http://127.0.0.1:{port}/\n        \
         status: 200\n      timeout: 2s\n      attempts: 10\n      interval: 300ms\n  policy:\n    rollback: on\n",
        dir = compose_dir.display(),
        token = token.display(),
    )
}

/// Every regular file under `dir` (bounded depth), except `skip`.
fn files_under(dir: &Path, skip: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth < 10 => files_under(&path, skip, depth + 1, out),
            Ok(t) if t.is_file() && path != skip => out.push(path),
            _ => {}
        }
    }
}

/// A GET on loopback with a bounded number of tries.
fn get(port: u16, path: &str, evidence: &mut Evidence) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let (status, body) = docker::try_http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    evidence.add(format!("GET {path}"), body.clone());
    (status, body)
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn the_canary_token_never_leaves_its_file() {
    if !require_docker() {
        return;
    }
    let canary = format!(
        "{CANARY_PREFIX}{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let root = tempfile::tempdir().expect("tempdir");
    let (desired, state, compose_dir) = (
        root.path().join("desired"),
        root.path().join("state"),
        root.path().join("compose"),
    );
    for d in [&desired, &compose_dir] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let token_file = root.path().join("broker-token");
    std::fs::write(&token_file, format!("{canary}\n")).expect("token file");
    let emu = Emu::start(&canary);
    let url = emu.emu().base_url.clone();
    let project = docker::unique_project_name();
    let _guard = ComposeProjectGuard::new(project.clone());
    let port = free_port();
    std::fs::write(
        compose_dir.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: c2quay-test/web:1\n    pull_policy: never\n    init: true\n    \
             stop_grace_period: 2s\n    ports: [\"127.0.0.1:{port}:8080\"]\n"
        ),
    )
    .expect("compose.yaml");
    let write = |image: &str, version: &str| {
        let text = manifest(
            &project,
            &compose_dir,
            &url,
            &token_file,
            port,
            image,
            version,
        );
        std::fs::write(desired.join(format!("{ENV}.yaml")), text).expect("manifest");
    };
    let mut ev = Evidence::default();
    let dirs = |cmd: &str| -> Vec<String> {
        let mut a = vec![cmd.to_string()];
        if cmd != "status" {
            a.extend(["--desired".into(), desired.display().to_string()]);
        }
        a.extend(["--state-dir".into(), state.display().to_string()]);
        a
    };
    let with = |mut a: Vec<String>, extra: &[&str]| {
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    // A successful deploy, recorded in the broker with the canary as bearer token.
    write("c2quay-test/web:1", "1");
    let (code, text) = c2quay(&with(dirs("deploy"), &[ENV]), &mut ev);
    assert_eq!(code, 0, "deploy v1:\n{text}");
    assert_eq!(emu.emu().currently_deployed(ENV).len(), 1, "recorded");
    assert!(
        emu.emu()
            .requests()
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Bearer")),
        "every broker request carried the bearer token"
    );
    // A failing deploy (never healthy), rolled back.
    write("c2quay-test/web:unhealthy", "2");
    let (code, text) = c2quay(&with(dirs("deploy"), &[ENV]), &mut ev);
    assert_eq!(code, 4, "deploy of :unhealthy rolls back:\n{text}");
    // The JSON log format too.
    let (code, text) = c2quay(
        &with(dirs("verify"), &[ENV, "--log-format", "json"]),
        &mut ev,
    );
    assert!(code == 0 || code == 3, "verify:\n{text}");
    let (code, text) = c2quay(&with(dirs("status"), &["-o", "json"]), &mut ev);
    assert_eq!(code, 0, "status:\n{text}");
    let (code, text) = c2quay(&dirs("plan"), &mut ev);
    assert!(code <= 3, "plan:\n{text}");
    // Back to v1 and the agent once.
    write("c2quay-test/web:1", "1");
    let (code, text) = c2quay(&with(dirs("agent"), &["--once", "--no-http"]), &mut ev);
    assert_eq!(code, 0, "agent --once:\n{text}");

    // A short-lived agent with its HTTP endpoints.
    let http_port = free_port();
    let log = root.path().join("agent.log");
    let log_file = std::fs::File::create(&log).expect("agent log");
    let args = with(
        dirs("agent"),
        &[
            "--listen",
            &format!("127.0.0.1:{http_port}"),
            "--resync",
            "1s",
            "--debounce",
            "100ms",
        ],
    );
    let child = Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(&args)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("fd"))
        .stderr(log_file)
        .spawn()
        .expect("spawn agent");
    let mut agent = Killed(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker::try_http_get(&format!("http://127.0.0.1:{http_port}/readyz"))
        .map(|(s, _)| s != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "agent never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500)); // one resync with broker traffic
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/environments",
        &format!("/api/v1/environments/{ENV}"),
    ] {
        let (status, body) = get(http_port, path, &mut ev);
        assert_eq!(status, 200, "GET {path}: {body}");
    }
    if let Some(child) = agent.0.as_mut() {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(agent);
    ev.add("agent log", std::fs::read(&log).expect("agent log"));
    let inspect = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    for id in String::from_utf8_lossy(&inspect.stdout).split_whitespace() {
        ev.add(
            format!("docker inspect {id}"),
            docker(&["inspect", id]).stdout,
        );
    }
    let mut files = Vec::new();
    files_under(root.path(), &token_file, 0, &mut files);
    assert!(
        files.iter().any(|f| f.starts_with(&state)),
        "the state dir has files"
    );
    for f in &files {
        ev.add(
            f.display().to_string(),
            std::fs::read(f).unwrap_or_default(),
        );
    }

    let b64 = |s: &str| {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        [
            STANDARD.encode(s),
            STANDARD_NO_PAD.encode(s),
            URL_SAFE_NO_PAD.encode(s),
        ]
    };
    let mut needles = vec![
        canary.clone(),
        CANARY_PREFIX.to_string(),
        canary[CANARY_PREFIX.len()..].to_string(),
    ];
    needles.extend(b64(&canary));
    needles.extend(b64(&format!("Bearer {canary}")));
    needles.extend(b64(&format!(":{canary}")));
    // Positive controls: the search finds the canary where it is, and trace level was on.
    let token_bytes = std::fs::read(&token_file).expect("token file");
    assert!(
        needles
            .iter()
            .any(|n| token_bytes.windows(n.len()).any(|w| w == n.as_bytes())),
        "the search must find the canary in its own file"
    );
    let all_logs: String =
        ev.0.iter()
            .filter(|(o, _)| o.starts_with("stderr") || o == "agent log")
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect();
    assert!(
        all_logs.contains("TRACE") && all_logs.contains("DEBUG"),
        "trace logging was on"
    );
    let mut hits = Vec::new();
    let mut bytes = 0usize;
    for (origin, data) in &ev.0 {
        bytes += data.len();
        for needle in &needles {
            if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(format!("{origin}: contains {needle:?}"));
            }
        }
    }
    println!(
        "FIGURE secrets sweep: {} sources ({} files), {bytes} bytes searched for {} forms of the canary: {} hits",
        ev.0.len(),
        files.len(),
        needles.len(),
        hits.len()
    );
    assert!(hits.is_empty(), "the canary leaked:\n{}", hits.join("\n"));
}
