//! Issue 6, item 8: the agent's HTTP endpoints against hostile clients and careless flags.
//!
//! - The listener binds loopback by default; a non-loopback `--listen` is refused without
//!   `--listen-any`, and with it the agent logs a warning.
//! - A canary bearer token configured through `tokenFile` never appears in `/metrics`,
//!   `/api/v1/environments[/{name}]`, `/healthz` or `/readyz`.
//! - Garbage bytes, a 1 MiB request line, 10k headers, a 100 MiB declared body, a slowloris
//!   client, 200 concurrent clients, more idle connections than the listener's bound, unknown
//!   paths, other methods and path traversal on `/api/v1/environments/{name}` are refused
//!   without harm: no 2xx where there should be none, the slowloris connection is closed by the
//!   server, `/healthz` keeps answering from other connections, and the agent's RSS does not
//!   balloon.

use crate::support::{agent, docker};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::{Agent, Broker, World, tail, wait_until};
use docker::{free_port, require_docker, run_with_timeout};

/// A marker no legitimate output contains.
const CANARY: &str = "C2QCANARY-endpoints-7f3a9d21b4";
/// The listener's connection bound (`agent::http::MAX_CONNECTIONS`).
const MAX_CONNECTIONS: usize = 256;
/// Generous: the listener's response deadline is 10 s.
const SLOWLORIS_CLOSE_WITHIN: Duration = Duration::from_secs(40);
/// Not a timing assertion: a bound on memory growth after the abuse.
const MAX_RSS_GROWTH_KIB: u64 = 200 * 1024;

#[test]
fn listener_is_loopback_by_default_and_non_loopback_needs_listen_any() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let c2quay = env!("CARGO_BIN_EXE_c2quay");

    // The default address is loopback.
    let help = Command::new(c2quay)
        .args(["agent", "--help"])
        .output()
        .expect("c2quay agent --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[default: 127.0.0.1:9464]"),
        "the default --listen is not loopback:\n{help}"
    );

    // The running agent's only listening socket on its port is bound to 127.0.0.1.
    let agent = Agent::start(&world, &[]);
    let bound = listening_addresses(agent.port);
    println!(
        "FIGURE endpoints: agent listens on {bound:?} (port {})",
        agent.port
    );
    assert_eq!(bound, vec!["127.0.0.1".to_string()]);
    drop(agent);

    // A non-loopback address without --listen-any: refused at once, with a clear error.
    let exposed = format!("{}:{}", non_loopback_address(), free_port());
    let refused = run_with_timeout(
        Command::new(c2quay)
            .args(["agent", "--desired"])
            .arg(&world.desired)
            .arg("--state-dir")
            .arg(&world.state)
            .args(["--listen", &exposed])
            .env_remove("C2QUAY_LISTEN_ANY")
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    )
    .expect("run c2quay agent");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--listen-any"),
        "{stderr}"
    );

    // With --listen-any it starts, and says loudly that status and metrics are exposed.
    let log = world.root.path().join("listen-any.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(c2quay)
        .args(["agent", "--desired"])
        .arg(&world.desired)
        .arg("--state-dir")
        .arg(&world.state)
        .args(["--listen", &exposed, "--listen-any"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log fd"))
        .stderr(log_file)
        .spawn()
        .expect("spawn c2quay agent --listen-any");
    let warned = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listen beyond loopback")
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        warned,
        "no warning about a non-loopback listener:\n{}",
        tail(&text, 30)
    );
    println!(
        "FIGURE endpoints: non-loopback --listen refused (exit 2) without --listen-any; warned with it"
    );
}

#[test]
fn endpoints_leak_no_secrets_and_survive_hostile_clients() {
    if !require_docker() {
        return;
    }
    let broker = Broker::start();
    let world = World::new();
    let token_file = world.root.path().join("broker-token");
    std::fs::write(&token_file, format!("{CANARY}\n")).expect("token file");
    let (spec, _guard) = world.env("ep", Some(&broker));
    broker.seed_deployable(&spec.pacticipant, &spec.version);
    let manifest = spec.yaml().replacen(
        &format!("environment: {}\n", agent::BROKER_ENV),
        &format!(
            "environment: {}\n    tokenFile: {}\n",
            agent::BROKER_ENV,
            token_file.display()
        ),
        1,
    );
    assert!(manifest.contains("tokenFile"), "{manifest}");
    agent::write_atomic(&world.desired.join("ep.yaml"), &manifest);
    let agent = Agent::start(&world, &[]);
    agent.wait_phase("ep", "Ready", Duration::from_secs(90));
    assert_eq!(broker.current(&spec.pacticipant), vec!["1".to_string()]);

    // No secret in any endpoint.
    for path in [
        "/metrics",
        "/api/v1/environments",
        "/api/v1/environments/ep",
        "/healthz",
        "/readyz",
    ] {
        let (status, body) = agent.get(path).expect(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            !body.contains(CANARY) && !body.contains("C2QCANARY"),
            "{path} leaks the token"
        );
    }
    let rss_before = rss_kib(agent.pid());
    let port = agent.port;

    // A slowloris client trickles a request head, one byte a second, on its own thread.
    let slowloris = std::thread::spawn(move || slowloris(port));

    // Malformed and huge requests: none is answered 2xx, none hangs.
    let mut one_mib_line = b"GET /".to_vec();
    one_mib_line.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    one_mib_line.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut many_headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        many_headers.extend_from_slice(format!("X-Header-{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let mut huge_body =
        b"POST /api/v1/environments HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"
            .to_vec();
    huge_body.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    let hostile: [(&str, Vec<u8>); 4] = [
        (
            "garbage bytes",
            (0..4096u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
        ("1 MiB request line", one_mib_line),
        ("10k headers", many_headers),
        ("100 MiB declared body", huge_body),
    ];
    for (what, request) in &hostile {
        let started = Instant::now();
        let answer = exchange(port, request);
        println!(
            "FIGURE endpoints: {what}: {} in {:?}",
            answer.describe(),
            started.elapsed()
        );
        assert!(
            !matches!(answer.status, Some(200..=299)),
            "{what}: answered {}",
            answer.describe()
        );
        assert_healthz(&agent, what);
    }

    // Unknown paths, other methods, traversal on the environment name.
    for (request, allowed) in [
        ("GET /nope HTTP/1.1", &[404][..]),
        ("GET /api/v1/environmentsX HTTP/1.1", &[404]),
        ("POST /healthz HTTP/1.1", &[405]),
        ("DELETE /api/v1/environments/ep HTTP/1.1", &[405]),
        ("PUT /metrics HTTP/1.1", &[405]),
        (
            "GET /api/v1/environments/../../../etc/passwd HTTP/1.1",
            &[400, 404],
        ),
        ("GET /api/v1/environments/%2e%2e HTTP/1.1", &[400, 404]),
        (
            "GET /api/v1/environments/%2e%2e%2f%2e%2e%2fetc%2fpasswd HTTP/1.1",
            &[400, 404],
        ),
        (
            "GET /api/v1/environments/..%2Fenvs%2Fep%2Fstatus.json HTTP/1.1",
            &[400, 404],
        ),
        (
            "GET /api/v1/environments/ep%2F..%2F..%2Fenvs HTTP/1.1",
            &[400, 404],
        ),
        ("GET /api/v1/environments/%00 HTTP/1.1", &[400, 404]),
    ] {
        let answer = exchange(
            port,
            format!("{request}\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let body = String::from_utf8_lossy(&answer.bytes);
        assert!(
            answer.status.is_some_and(|s| allowed.contains(&s)),
            "{request}: {} (allowed {allowed:?})\n{body}",
            answer.describe()
        );
        assert!(
            !body.contains("root:") && !body.contains("\"releases\""),
            "{request} read a file it should not:\n{body}"
        );
    }
    println!("FIGURE endpoints: unknown paths 404, other methods 405, traversal 400/404");

    // 200 concurrent clients are all answered.
    let clients: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                exchange(
                    port,
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .status
            })
        })
        .collect();
    let answered = clients
        .into_iter()
        .map(join_client)
        .filter(|status| *status == Some(200))
        .count();
    println!("FIGURE endpoints: {answered}/200 concurrent clients answered 200");
    assert_eq!(answered, 200);

    // More idle connections than the bound: the excess is closed at accept.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 64)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let closed = idle.iter().filter(|s| closed_by_peer(s)).count();
    println!(
        "FIGURE endpoints: {} idle connections opened, {closed} closed at once by the server (bound {MAX_CONNECTIONS})",
        idle.len()
    );
    assert!(
        closed >= idle.len().saturating_sub(MAX_CONNECTIONS),
        "the listener kept {} of {} idle connections",
        idle.len() - closed,
        idle.len()
    );
    drop(idle);
    assert!(
        wait_until(Duration::from_secs(30), || matches!(
            agent.get("/healthz"),
            Ok((200, _))
        )),
        "/healthz does not answer after the idle connections went away"
    );

    // The slowloris connection was closed by the server, and it never blocked anyone.
    let (closed_by_server, bytes_sent, lasted) = slowloris.join().expect("slowloris thread");
    println!(
        "FIGURE endpoints: slowloris closed by the server: {closed_by_server} after {bytes_sent} bytes in {lasted:?}"
    );
    assert!(
        closed_by_server,
        "a slowloris connection was kept for {lasted:?}"
    );

    assert_healthz(&agent, "the end");
    let rss_after = rss_kib(agent.pid());
    println!(
        "FIGURE endpoints: agent RSS before {rss_before} KiB, after {rss_after} KiB (growth {} KiB)",
        rss_after.saturating_sub(rss_before)
    );
    assert!(
        rss_after.saturating_sub(rss_before) < MAX_RSS_GROWTH_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let log = agent.log_text();
    assert!(!log.contains(CANARY), "the agent log holds the token");
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
}

/// What the server did with one raw request.
struct Answer {
    /// The status code, when a response head came back.
    status: Option<u16>,
    /// Everything read.
    bytes: Vec<u8>,
    /// The I/O error that ended the exchange, if any (a reset after a refusal is expected).
    error: Option<String>,
}

impl Answer {
    fn describe(&self) -> String {
        match (&self.status, &self.error) {
            (Some(status), _) => format!("status {status}"),
            (None, Some(error)) => format!("no response ({error})"),
            (None, None) => "closed without a response".into(),
        }
    }
}

/// Sends `request` on a fresh connection (write errors are kept: the server may refuse and
/// close mid-request), then reads until the server closes or 10 s pass. The write side stays
/// open: hyper closes a half-closed connection without answering.
fn exchange(port: u16, request: &[u8]) -> Answer {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(error) => {
            return Answer {
                status: None,
                bytes: Vec::new(),
                error: Some(format!("connect: {error}")),
            };
        }
    };
    let timeout = Some(Duration::from_secs(10));
    stream.set_read_timeout(timeout).expect("read timeout");
    stream.set_write_timeout(timeout).expect("write timeout");
    let mut error = stream
        .write_all(request)
        .err()
        .map(|e| format!("write: {e}"));
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) => {
                error.get_or_insert_with(|| format!("read: {e}"));
                break;
            }
        }
        if bytes.len() > 16 * 1024 * 1024 {
            break;
        }
    }
    let status = String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Answer {
        status,
        bytes,
        error,
    }
}

/// Joins a client thread; a panicked client counts as no answer.
fn join_client(client: std::thread::JoinHandle<Option<u16>>) -> Option<u16> {
    client.join().ok().flatten()
}

/// Asserts `/healthz` answers 200 from a fresh connection (within the client's 5 s timeout).
fn assert_healthz(agent: &Agent, after: &str) {
    match agent.get("/healthz") {
        Ok((200, _)) => {}
        other => panic!(
            "/healthz after {after}: {other:?}\n{}",
            tail(&agent.log_text(), 30)
        ),
    }
}

/// Trickles a request head one byte a second until the server closes the connection or
/// [`SLOWLORIS_CLOSE_WITHIN`] passes. Returns (closed by the server, bytes sent, how long).
fn slowloris(port: u16) -> (bool, usize, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("slowloris connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'));
    for (sent, byte) in head.enumerate() {
        if started.elapsed() > SLOWLORIS_CLOSE_WITHIN {
            return (false, sent, started.elapsed());
        }
        if stream.write_all(&[*byte]).is_err() || closed_by_peer(&stream) {
            return (true, sent, started.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    unreachable!("the head is endless")
}

/// Whether the peer closed `stream` (EOF or reset), without blocking for long.
fn closed_by_peer(stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

/// The local addresses (IPv4, dotted) of the sockets listening on `port`, from /proc/net/tcp
/// and /proc/net/tcp6 (an IPv6 wildcard shows as `::`).
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((addr, port_hex)) = local.split_once(':') else {
                continue;
            };
            if *state != "0A" || u16::from_str_radix(port_hex, 16).ok() != Some(port) {
                continue;
            }
            found.push(match addr.len() {
                8 => {
                    let raw = u32::from_str_radix(addr, 16).unwrap_or(0);
                    std::net::Ipv4Addr::from(raw.swap_bytes()).to_string()
                }
                _ => format!("ipv6:{addr}"),
            });
        }
    }
    found
}

/// A non-loopback address of this host that is not reachable from outside it: the Docker
/// bridge's gateway when there is one, else the IPv4 wildcard.
fn non_loopback_address() -> String {
    let out = Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if ip
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
            {
                ip
            } else {
                "0.0.0.0".into()
            }
        }
        _ => "0.0.0.0".into(),
    }
}
