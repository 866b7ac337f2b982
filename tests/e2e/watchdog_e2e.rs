//! End to end (issue 19 item 4): the systemd watchdog ping proves the agent's own loop is
//! alive, not that Docker answers. A proxy in front of the Docker socket holds every request
//! for 6 s (a slow daemon); the agent, with a fake notify socket and a 2 s watchdog, must keep
//! pinging at least once per watchdog interval all the while. Before, the resync awaited the
//! Engine API inline in the main loop and the pings stopped for as long as Docker took.

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::docker::{free_port, http_get, require_docker, wait_for_http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// How long the slow daemon holds each request once armed.
const HOLD: Duration = Duration::from_secs(6);
/// The watchdog the fake systemd gives the agent (it pings every half of it).
const WATCHDOG: Duration = Duration::from_secs(2);

/// Forwards connections on `path` to the Docker socket; while `armed`, each chunk the client
/// sends (a request) waits [`HOLD`] first. Counts the held chunks.
async fn slow_docker_proxy(
    path: std::path::PathBuf,
    armed: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
) {
    let listener = UnixListener::bind(&path).expect("bind the proxy");
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let (armed, held) = (armed.clone(), held.clone());
        tokio::spawn(async move {
            let Ok(upstream) = UnixStream::connect("/var/run/docker.sock").await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut up_read, mut up_write) = upstream.into_split();
            let to_docker = async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = client_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if armed.load(Ordering::SeqCst) {
                        held.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(HOLD).await;
                    }
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            };
            let to_client = async move {
                let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
            };
            tokio::join!(to_docker, to_client);
        });
    }
}

/// `agent --resync 1s --listen 127.0.0.1:PORT` on `root`'s empty desired directory and state
/// directory, output discarded.
fn agent_args<'a>(command: &'a mut Command, root: &std::path::Path, port: u16) -> &'a mut Command {
    command
        .args(["agent", "--resync", "1s", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--desired")
        .arg(root.join("desired"))
        .arg("--state-dir")
        .arg(root.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// Kills the agent when the test ends, whatever happens.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_pinged_while_a_docker_call_hangs() {
    if !require_docker() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).expect("desired dir");
    let (armed, held) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let proxy = dir.path().join("docker.sock");
    tokio::spawn(slow_docker_proxy(
        proxy.clone(),
        armed.clone(),
        held.clone(),
    ));
    let notify = UnixDatagram::bind(dir.path().join("notify.sock")).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let pings: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (pings, done) = (pings.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::SeqCst) {
                if let Ok(n) = notify.recv(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
                {
                    pings.lock().expect("pings").push(Instant::now());
                }
            }
        })
    };
    while !proxy.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // systemd names the watched pid; `exec` keeps the shell's pid for the agent.
    let port = free_port();
    let mut command = Command::new("sh");
    command
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_c2quay"));
    let agent = agent_args(&mut command, dir.path(), port)
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env("DOCKER_HOST", format!("unix://{}", proxy.display()))
        .spawn()
        .expect("start the agent");
    let _agent = KillOnDrop(agent);
    // Let it start and ping, then make Docker slow for a window of three holds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    armed.store(true, Ordering::SeqCst);
    let window_start = Instant::now();
    tokio::time::sleep(HOLD * 3).await;
    let window_end = Instant::now();
    done.store(true, Ordering::SeqCst);
    receiver.join().expect("receiver");

    assert!(
        held.load(Ordering::SeqCst) >= 1,
        "the slow daemon held no request"
    );
    // The slow daemon shows in the metrics (issue 14): answered, but slowly.
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(gauge(&metrics, "c2quay_docker_up"), Some(1.0), "{metrics}");
    let took = gauge(&metrics, "c2quay_docker_list_duration_seconds").unwrap_or_default();
    assert!(
        took >= HOLD.as_secs_f64() - 0.5,
        "list took {took} s: {metrics}"
    );
    let pings = pings.lock().expect("pings").clone();
    let in_window: Vec<Instant> = pings
        .iter()
        .copied()
        .filter(|t| *t >= window_start && *t <= window_end)
        .collect();
    let mut marks = vec![window_start];
    marks.extend(in_window.iter().copied());
    marks.push(window_end);
    let longest = marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest < WATCHDOG,
        "no watchdog ping for {longest:?} (systemd would abort the agent after {WATCHDOG:?}); \
         {} pings in the {:?} window, {} requests held",
        in_window.len(),
        window_end - window_start,
        held.load(Ordering::SeqCst)
    );
}

/// The value of the unlabelled gauge `name` in a Prometheus text exposition.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn an_unreachable_docker_daemon_is_docker_up_0() {
    if !require_docker() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).expect("desired dir");
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_c2quay"));
    let no_docker = dir.path().join("no-docker.sock");
    let agent = agent_args(&mut command, dir.path(), port)
        .env("DOCKER_HOST", format!("unix://{}", no_docker.display()))
        .spawn()
        .expect("start the agent");
    let _agent = KillOnDrop(agent);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (_, metrics) = wait_for_http(&url, Duration::from_secs(20), |status, body| {
        status == 200 && body.contains("c2quay_docker_up")
    })
    .expect("/metrics answers");

    assert_eq!(gauge(&metrics, "c2quay_docker_up"), Some(0.0), "{metrics}");
}

/// Issue 14 item 3: an environment whose Docker engine does not answer is `Unknown`, never
/// `Ready` (`c2quay_environment_ready 0`, condition `DockerReachable=False` naming the error),
/// and nothing on the host changes; once the engine answers again it is `Ready` again. The
/// agent restarts on the same state directory with `DOCKER_HOST` on a dead socket, as after a
/// daemon that stopped under it.
#[test]
fn an_environment_whose_docker_does_not_answer_is_unknown_until_it_answers_again() {
    use support::agent::{Agent, World};
    if !require_docker() {
        return;
    }
    let world = World::new();
    let (spec, _guard) = world.env("dark", None);
    spec.write(&world.desired);
    let mut agent = Agent::start(&world, &[]);
    agent.wait_phase("dark", "Ready", Duration::from_secs(60));
    agent.kill9();

    let blind = Agent::start_without_docker(&world, &[]);
    let status = blind.wait_phase("dark", "Unknown", Duration::from_secs(30));
    let condition = |status: &serde_json::Value, type_: &str| {
        status["conditions"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
    };
    let docker = condition(&status, "DockerReachable");
    assert_eq!(docker["status"], "False", "{status}");
    assert!(
        docker["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-docker.sock"),
        "the error names the socket: {status}"
    );
    let ready = condition(&status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&"False".into(), &"Unknown".into()),
        "{status}"
    );
    let (_, metrics) = blind.get("/metrics").expect("/metrics");
    for line in [
        "c2quay_environment_ready{environment=\"dark\"} 0",
        "c2quay_environment_phase{environment=\"dark\",phase=\"Unknown\"} 1",
        "c2quay_docker_up 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert_eq!(
        spec.served_version().as_deref(),
        Some("1"),
        "nothing changed"
    );
    drop(blind);

    let agent = Agent::start(&world, &[]);
    let status = agent.wait_phase("dark", "Ready", Duration::from_secs(60));
    assert_eq!(
        condition(&status, "DockerReachable")["status"],
        "True",
        "{status}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
}
