//! The error enum of the Docker adapter (Engine API and Compose CLI): every variant names the
//! command, request or step that failed.

use std::time::Duration;

/// Errors from the Docker Engine API or from running or interpreting `docker compose`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Docker Engine API failed (socket, HTTP or daemon answer).
    #[error("Docker Engine API: {operation} failed{hint}")]
    Engine {
        /// The request, e.g. `list containers of project "shop"`.
        operation: String,
        /// `; is the Docker daemon running? ...` when the socket could not be reached, else empty.
        hint: &'static str,
        /// Whether a retry may succeed (connection trouble, timeouts, 5xx answers).
        transient: bool,
        /// bollard's error (boxed: it is large, and every `Result` of the crate carries this enum).
        #[source]
        source: Box<bollard::errors::Error>,
    },
    /// The program could not be started at all (not installed, not executable).
    #[error("could not start `{command}`")]
    Spawn {
        /// The command line, argv joined with spaces.
        command: String,
        /// Why the spawn failed.
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish in time and was killed.
    #[error("`{command}` did not finish within {}; killed it", round_ms(*timeout))]
    Timeout {
        /// The command line.
        command: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The command exited non-zero.
    #[error("`{command}` failed ({status}):\n{stderr_tail}")]
    Failed {
        /// The command line.
        command: String,
        /// `exit code N` or `killed by signal`.
        status: String,
        /// The last lines of its stderr (or stdout when stderr was empty).
        stderr_tail: String,
    },
    /// The output of a command could not be understood.
    #[error("cannot parse the output of `{what}`: {detail}")]
    Parse {
        /// Which output (e.g. `docker compose ps --format json`, line 3).
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Only Compose v1 (or no Compose) was found.
    #[error(
        "{found}; c2quay needs Docker Compose v2 or later (the `docker compose` plugin or a v2 `docker-compose`)"
    )]
    ComposeV1 {
        /// What was found, e.g. `docker-compose 1.29.2`.
        found: String,
    },
    /// Neither the `docker compose` plugin nor a `docker-compose` program could be run.
    #[error("Docker Compose not found: {detail}")]
    NotFound {
        /// What was tried and what happened.
        detail: String,
    },
    /// A feature needs a newer Compose.
    #[error("{feature} needs Docker Compose >= {needs}, found {found}")]
    Unsupported {
        /// The feature (e.g. `build: !reset` in the override file).
        feature: &'static str,
        /// The minimum version.
        needs: &'static str,
        /// The version found.
        found: String,
    },
    /// A service named by the caller is not in the rendered Compose model.
    #[error("service {service:?} is not defined in the Compose project {project:?}")]
    MissingService {
        /// The Compose project.
        project: String,
        /// The service.
        service: String,
    },
    /// Services did not become ready before the deadline, or failed.
    #[error("services not ready in project {project:?} after {}:\n{}", round_ms(*waited), format_failures(failures))]
    NotReady {
        /// The Compose project.
        project: String,
        /// How long readiness was awaited.
        waited: Duration,
        /// One entry per failed service, in service order.
        failures: Vec<ServiceFailure>,
    },
    /// The override file could not be written.
    #[error("cannot write the override file {path}")]
    Override {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The caller asked for something invalid (e.g. `up` with no services).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The hint shown when the daemon's socket cannot be reached.
pub const DAEMON_HINT: &str =
    "; is the Docker daemon running? is /var/run/docker.sock (or DOCKER_HOST) readable?";

impl Error {
    /// Wraps a bollard error of `operation`, deciding here whether it is transient: the daemon
    /// unreachable or restarting, a timeout or a 5xx answer is; a 4xx answer is not.
    pub fn engine(operation: impl Into<String>, source: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        let (unreachable, transient) = match &source {
            B::IOError { .. } | B::SocketNotFoundError(_) | B::HyperLegacyError { .. } => {
                (true, true)
            }
            B::RequestTimeoutError | B::HyperResponseError { .. } | B::DockerStreamError { .. } => {
                (false, true)
            }
            B::DockerResponseServerError { status_code, .. } => (false, *status_code >= 500),
            _ => (false, false),
        };
        Error::Engine {
            operation: operation.into(),
            hint: if unreachable { DAEMON_HINT } else { "" },
            transient,
            source: Box::new(source),
        }
    }

    /// Whether this is the daemon's "no such container" answer (a container removed meanwhile).
    pub fn is_no_such_container(&self) -> bool {
        match self {
            Error::Engine { source, .. } => matches!(
                **source,
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                }
            ),
            _ => false,
        }
    }
}

/// Why one service is not ready, with the tail of its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFailure {
    /// The Compose service.
    pub service: String,
    /// Its state as seen last, e.g. `running (unhealthy)`, `exited (1)`, `no container`.
    pub state: String,
    /// The last lines of `docker compose logs` for it (may be empty).
    pub logs: String,
}

/// A duration rounded to milliseconds, e.g. `8s 61ms`.
fn round_ms(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    ))
}

fn format_failures(failures: &[ServiceFailure]) -> String {
    let mut out = String::new();
    for f in failures {
        out.push_str(&format!("  - {}: {}", f.service, f.state));
        if !f.logs.trim().is_empty() {
            out.push_str("; last log lines:\n");
            for line in f.logs.lines() {
                out.push_str("      ");
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

impl Error {
    /// A bounded label for metrics and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Engine { .. } => "engine",
            Error::Spawn { .. } => "spawn",
            Error::Timeout { .. } => "timeout",
            Error::Failed { .. } => "failed",
            Error::Parse { .. } => "parse",
            Error::ComposeV1 { .. } => "compose_v1",
            Error::NotFound { .. } => "not_found",
            Error::Unsupported { .. } => "unsupported",
            Error::MissingService { .. } => "missing_service",
            Error::NotReady { .. } => "not_ready",
            Error::Override { .. } => "override",
            Error::Invalid(_) => "invalid",
        }
    }

    /// Whether retrying the same operation later may succeed without a change of input.
    /// Timeouts and daemon hiccups are transient; a bad image or a missing service is not.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Override { .. } => true,
            Error::Engine { transient, .. } => *transient,
            Error::Failed { stderr_tail, .. } => {
                let s = stderr_tail.to_ascii_lowercase();
                s.contains("cannot connect to the docker daemon")
                    || s.contains("connection refused")
                    || s.contains("i/o timeout")
                    || s.contains("tls handshake timeout")
                    || s.contains("context deadline exceeded")
                    // The daemon stopped or restarted in the middle of a command.
                    || s.contains("unexpected eof")
                    || s.contains("connection reset by peer")
                    || s.contains("error during connect")
                    || s.contains("is the docker daemon running")
            }
            _ => false,
        }
    }
}

/// Why the host, not the release, refused an apply: the same release succeeds once the host
/// is fixed (or by itself, for a restarting daemon), so it is retried with backoff instead of
/// being marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCause {
    /// The daemon's address pools have no room for another network (a default Docker 20.10
    /// holds about 31 project networks): widen `default-address-pools` in `daemon.json`.
    AddressPools,
    /// The disk under the daemon's data root is full.
    DiskFull,
    /// The daemon did not answer, or stopped or restarted in the middle of the command.
    DaemonUnavailable,
    /// A host port the release publishes is held by a process or container outside it.
    PortTaken,
}

impl HostCause {
    /// Every cause, for metric labels.
    pub const ALL: [HostCause; 4] = [
        HostCause::AddressPools,
        HostCause::DiskFull,
        HostCause::DaemonUnavailable,
        HostCause::PortTaken,
    ];

    /// The cause's name in status files, reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HostCause::AddressPools => "address_pools",
            HostCause::DiskFull => "disk_full",
            HostCause::DaemonUnavailable => "daemon_unavailable",
            HostCause::PortTaken => "port_taken",
        }
    }

    /// What an operator does about it.
    pub fn fix(self) -> &'static str {
        match self {
            HostCause::AddressPools => {
                "remove unused networks (docker network prune) or widen default-address-pools in /etc/docker/daemon.json"
            }
            HostCause::DiskFull => "free space under the Docker data root (docker system df)",
            HostCause::DaemonUnavailable => "check the daemon: systemctl status docker",
            HostCause::PortTaken => "stop what holds the port (ss -ltnp) or publish another one",
        }
    }
}

impl Error {
    /// The host cause of a failed pull or `up`, if the daemon's answer names one. Compose
    /// relays the daemon's error as text only, so a Compose failure is told apart by the
    /// daemon's own messages; an Engine API error by its kind (an unreachable socket) first.
    pub fn host_cause(&self) -> Option<HostCause> {
        let text = match self {
            Error::Engine { hint, source, .. } => {
                if !hint.is_empty() {
                    return Some(HostCause::DaemonUnavailable);
                }
                source.to_string()
            }
            Error::Failed { stderr_tail, .. } => stderr_tail.clone(),
            _ => return None,
        };
        host_cause_of(&text)
    }
}

/// [`Error::host_cause`] of a daemon message.
fn host_cause_of(text: &str) -> Option<HostCause> {
    let text = text.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if any(&["non-overlapping ipv4 address pool", "no available network"]) {
        Some(HostCause::AddressPools)
    } else if any(&["no space left on device"]) {
        Some(HostCause::DiskFull)
    } else if any(&["port is already allocated", "bind: address already in use"]) {
        Some(HostCause::PortTaken)
    } else if any(&[
        "cannot connect to the docker daemon",
        "is the docker daemon running",
        "error during connect",
        "daemon is restarting",
    ]) {
        Some(HostCause::DaemonUnavailable)
    } else {
        None
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_message_names_service_state_and_logs() {
        let e = Error::NotReady {
            project: "shop".into(),
            waited: Duration::from_micros(3_000_700),
            failures: vec![ServiceFailure {
                service: "web".into(),
                state: "running (unhealthy)".into(),
                logs: "boom\nbang".into(),
            }],
        };
        let msg = e.to_string();
        assert!(msg.contains("web: running (unhealthy)"), "{msg}");
        assert!(msg.contains("      bang"), "{msg}");
        assert!(msg.contains("after 3s:\n"), "{msg}");
        assert_eq!(e.kind(), "not_ready");
        assert!(!e.is_transient());
    }

    fn compose_failed(stderr_tail: &str) -> Error {
        Error::Failed {
            command: "docker compose up -d".into(),
            status: "exit code 1".into(),
            stderr_tail: stderr_tail.into(),
        }
    }

    /// The daemon's answers as Compose v2.40 printed them on Docker 20.10 (captured).
    #[test]
    fn host_refusals_are_told_apart_from_the_release_s_own_failures() {
        let cases = [
            (
                "failed to create network shop_default: Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                Some(HostCause::AddressPools),
            ),
            (
                "Error response from daemon: driver failed programming external connectivity on endpoint capport-web-1 (9202c517a73a): Error starting userland proxy: listen tcp4 127.0.0.1:18999: bind: address already in use",
                Some(HostCause::PortTaken),
            ),
            (
                "Error response from daemon: driver failed programming external connectivity on endpoint capb-web-1 (d29defe08c63): Bind for 127.0.0.1:18999 failed: port is already allocated",
                Some(HostCause::PortTaken),
            ),
            (
                "unable to get image 'c2quay-test/web:1': Cannot connect to the Docker daemon at unix:///tmp/cap/none.sock. Is the docker daemon running?",
                Some(HostCause::DaemonUnavailable),
            ),
            (
                "Error response from daemon: failed to create shim: write /var/lib/docker/overlay2/x/merged/etc/hosts: no space left on device",
                Some(HostCause::DiskFull),
            ),
            // The release's own faults: a bad image, a bad command, a missing tag.
            (
                "Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/no-such-binary\": stat /no-such-binary: no such file or directory: unknown",
                None,
            ),
            (
                "Error response from daemon: manifest for 127.0.0.1:5999/web:9 not found: manifest unknown",
                None,
            ),
            (
                "dependency failed to start: container shop-db-1 is unhealthy",
                None,
            ),
        ];
        for (message, cause) in cases {
            assert_eq!(compose_failed(message).host_cause(), cause, "{message}");
        }
        let refused = Error::engine(
            "create network",
            bollard::errors::Error::IOError {
                err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        );
        assert_eq!(refused.host_cause(), Some(HostCause::DaemonUnavailable));
        let pools = Error::engine(
            "create network",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
            },
        );
        assert_eq!(pools.host_cause(), Some(HostCause::AddressPools));
        assert_eq!(Error::Invalid("x".into()).host_cause(), None);
    }

    #[test]
    fn daemon_down_is_transient_but_bad_image_is_not() {
        let down = Error::Failed {
            command: "docker compose ps".into(),
            status: "exit code 1".into(),
            stderr_tail: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
                .into(),
        };
        assert!(down.is_transient());
        let bad = Error::Failed {
            command: "docker compose pull".into(),
            status: "exit code 18".into(),
            stderr_tail: "manifest unknown".into(),
        };
        assert!(!bad.is_transient());
        let restarted = Error::Failed {
            command: "docker events".into(),
            status: "exit code 1".into(),
            stderr_tail: "unexpected EOF".into(),
        };
        assert!(restarted.is_transient());
    }

    #[test]
    fn unreachable_daemon_is_transient_and_says_what_to_check() {
        let refused = Error::engine(
            "list containers",
            bollard::errors::Error::IOError {
                err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        );
        assert!(refused.is_transient());
        assert_eq!(refused.kind(), "engine");
        let msg = refused.to_string();
        assert!(msg.contains("is the Docker daemon running?"), "{msg}");
        assert!(msg.contains("/var/run/docker.sock"), "{msg}");
        let restarting = Error::engine(
            "inspect",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 503,
                message: "daemon is restarting".into(),
            },
        );
        assert!(restarting.is_transient());
        let gone = Error::engine(
            "inspect",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such container: x".into(),
            },
        );
        assert!(!gone.is_transient());
        assert!(gone.is_no_such_container());
        assert!(!gone.to_string().contains("daemon running"), "{gone}");
    }
}
