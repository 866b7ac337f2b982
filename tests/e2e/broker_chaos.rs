//! Broker chaos (issue 6, item 3): the real `c2quay agent` keeps several environments true to
//! their manifests and to the broker while the broker emulator answers at random with 503,
//! hangs past the client's request timeout, drops connections or returns malformed JSON.
//!
//! Version bumps (`1.0.N`, alternating `web:1` / `web:2`) go to three environments; every
//! [`BLOCKED_EVERY`]th bump names a version the broker never calls deployable. Some rounds wait
//! for the agent to settle, others bump again at once (a new version lands mid-deploy). Then
//! chaos stops, every environment gets one last deployable bump, and the test asserts:
//!
//! - every deploy that ran (audit `result` deployed / record_failed) is recorded in the broker
//!   exactly once, in the order it ran: no lost, no duplicated, no phantom record;
//! - no gate passed on an error: a version the broker never called deployable never ran and was
//!   never recorded, and every recorded version had a fault-free can-i-deploy answer
//!   (`/can-i-deploy` per service, issue 13) before its first record request;
//! - no panic in the agent's log;
//! - status tells the truth: `Ready`, the release status names is what Docker runs and what the
//!   broker holds as current, `Recorded` is `True`, the outbox is empty.
//!
//! A second, deterministic test pins the ordering case chaos can only hit by luck: a record
//! that failed (and waits in the outbox for its retry) must not be sent after the record of the
//! next deploy, or the broker would call the older version current while the newer one runs.
//!
//! `C2QUAY_CHAOS_BUMPS` sets the number of chaotic bumps (default 12), `C2QUAY_CHAOS_SEED` the
//! emulator's seed. A hang lasts the client's request timeout plus a second, so each costs one
//! environment about 15 s: the fault mix weighs hangs least.

use crate::support::{agent, docker};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent::{Agent, Broker, EnvSpec, World, condition, env_number, wait_until};
use c2quay::broker::{DEFAULT_MAX_ATTEMPTS, DEFAULT_REQUEST_TIMEOUT};
use c2quay_broker_emulator::{Chaos, FaultKind, FaultSpec, RequestRecord};
use docker::{ComposeProjectGuard, require_docker};

const ENVS: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];
const DEFAULT_BUMPS: usize = 12;
const DEFAULT_SEED: u64 = 6_003;
/// Probability that a broker request meets a fault while chaos is on.
const FAULT_RATE: f64 = 0.3;
/// Every this-many-th bump names a version the broker never calls deployable.
const BLOCKED_EVERY: usize = 4;
/// Every this-many-th round bumps again without waiting for the agent to settle.
const HURRIED_EVERY: usize = 3;
/// How long one round may take to settle (a hang costs about 16 s, retries included).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(40);

/// One environment under test and the versions written to it.
struct Tracked {
    spec: EnvSpec,
    _guard: ComposeProjectGuard,
    /// The number of the last version written (`1.0.N`).
    last: u32,
    /// Versions the broker was never told are deployable.
    blocked: Vec<String>,
}

impl Tracked {
    /// Writes the next version, deployable or not, and returns it.
    fn bump(&mut self, world: &World, broker: &Broker, deployable: bool) -> String {
        self.last += 1;
        let version = version_of(self.last);
        if deployable {
            broker.seed_deployable(&self.spec.pacticipant, &version);
        } else {
            broker.seed_unverified(&self.spec.pacticipant, &version);
            self.blocked.push(version.clone());
        }
        self.spec.version = version.clone();
        self.spec.image = Some(image_of(self.last));
        self.spec.write(&world.desired);
        version
    }
}

/// The version string of bump `n`.
fn version_of(n: u32) -> String {
    format!("1.0.{n}")
}

/// The image of bump `n`: `web:1` and `web:2` alternate, so every deploy recreates the container.
fn image_of(n: u32) -> String {
    format!("c2quay-test/web:{}", 1 + n % 2)
}

/// The chaos of this test: every broker route, hangs weighed least.
fn chaos(seed: u64) -> Chaos {
    let hang = FaultKind::Hang {
        millis: (DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(1)).as_millis() as u64,
    };
    Chaos {
        rate: FAULT_RATE,
        seed,
        kinds: [
            FaultKind::Unavailable,
            FaultKind::Drop,
            FaultKind::MalformedJson,
        ]
        .into_iter()
        .flat_map(|kind| [kind, kind])
        .chain([hang])
        .collect(),
        path_contains: None,
    }
}

/// The `result` lines of an environment's audit log as `(outcome, version of web)`.
fn results(world: &World, env: &str) -> Vec<(String, String)> {
    world
        .audit(env)
        .iter()
        .filter(|e| e["step"] == "result")
        .filter_map(|e| {
            let message = e["message"].as_str()?;
            let version = message.split("web -> ").nth(1)?.split(' ').next()?;
            Some((e["outcome"].as_str()?.to_string(), version.to_string()))
        })
        .collect()
}

/// Versions whose deploy ran to the end (applied, smoke passed), in order.
fn deploys_that_ran(world: &World, env: &str) -> Vec<String> {
    results(world, env)
        .into_iter()
        .filter(|(outcome, _)| outcome == "deployed" || outcome == "record_failed")
        .map(|(_, version)| version)
        .collect()
}

/// Whether the agent reached a decision on `version` (any `result` line names it).
fn decided(world: &World, env: &str, version: &str) -> bool {
    results(world, env).iter().any(|(_, v)| v == version)
}

/// `%XX` decoding (the emulator logs paths and queries as sent).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `(pacticipant, version)` a one-candidate gate asks about: `/can-i-deploy` (per service)
/// or a one-selector `/matrix`.
fn matrix_candidate(request: &RequestRecord) -> Option<(String, String)> {
    let (pacticipant, version) = if request.path.ends_with("/can-i-deploy") {
        ("pacticipant", "version")
    } else if request.path.ends_with("/matrix") {
        ("q[][pacticipant]", "q[][version]")
    } else {
        return None;
    };
    let pairs: BTreeMap<String, String> = request
        .query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    Some((pairs.get(pacticipant)?.clone(), pairs.get(version)?.clone()))
}

/// The `(pacticipant, version)` of a record-deployment request.
fn record_target(request: &RequestRecord) -> Option<(String, String)> {
    if request.method != "POST" || !request.path.contains("/deployed-versions/") {
        return None;
    }
    let segments: Vec<String> = request.path.split('/').map(percent_decode).collect();
    let after = |name: &str| {
        let at = segments.iter().position(|s| s == name)?;
        segments.get(at + 1).cloned()
    };
    Some((after("pacticipants")?, after("versions")?))
}

/// Recorded versions of `pacticipant` that had no fault-free 200 gate answer before their
/// first record request (the gate passed on an error, or was never asked).
fn recorded_without_a_clean_gate(
    requests: &[RequestRecord],
    pacticipant: &str,
    recorded: &[String],
) -> Vec<String> {
    recorded
        .iter()
        .filter(|version| {
            let target = (pacticipant.to_string(), (*version).clone());
            let first_record = requests
                .iter()
                .find(|r| record_target(r).as_ref() == Some(&target))
                .map(|r| r.seq);
            let clean_gate = requests.iter().find(|r| {
                r.fault.is_none()
                    && r.status == Some(200)
                    && matrix_candidate(r).as_ref() == Some(&target)
            });
            match (clean_gate, first_record) {
                (Some(gate), Some(record)) => gate.seq > record,
                (None, _) => true,
                (Some(_), None) => false,
            }
        })
        .cloned()
        .collect()
}

/// Waits until `env` runs `version` with its records drained; panics with the status otherwise.
fn wait_converged(agent: &Agent, world: &World, env: &str, version: &str) -> serde_json::Value {
    agent.wait_status(env, Duration::from_secs(120), "converged", |s| {
        s["phase"] == "Ready"
            && s["releases"]["web"]["version"] == version
            && s["pendingRecords"] == 0
            && condition(s, "Recorded").is_some_and(|c| c.0 == "True")
            && world.outbox_len(env) == 0
            && !world.intent_open(env)
    })
}

#[test]
fn chaos_in_the_broker_never_loses_duplicates_or_fakes_a_record_and_status_tells_the_truth() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let bumps = env_number("C2QUAY_CHAOS_BUMPS", DEFAULT_BUMPS as u64).clamp(1, 2_000) as usize;
    let seed = env_number("C2QUAY_CHAOS_SEED", DEFAULT_SEED);
    let world = World::new();
    let broker = Broker::start();
    let mut envs: Vec<Tracked> = ENVS
        .iter()
        .map(|name| {
            let (mut spec, guard) = world.env(name, Some(&broker));
            spec.gate_retry = Some(("1s".into(), "2s".into()));
            Tracked {
                spec,
                _guard: guard,
                last: 0,
                blocked: Vec::new(),
            }
        })
        .collect();
    // A clean first deploy of each, before any chaos.
    let firsts: Vec<String> = envs
        .iter_mut()
        .map(|tracked| tracked.bump(&world, &broker, true))
        .collect();
    let agent = Agent::start(&world, &[]);
    for (tracked, version) in envs.iter().zip(&firsts) {
        wait_converged(&agent, &world, &tracked.spec.name, version);
    }

    broker.emu().set_chaos(Some(chaos(seed)));
    let mut written = 0;
    for round in 0.. {
        if written >= bumps {
            break;
        }
        let mut round_versions = Vec::new();
        for tracked in envs.iter_mut().take(bumps - written) {
            written += 1;
            let deployable = written % BLOCKED_EVERY != 0;
            round_versions.push((
                tracked.spec.name.clone(),
                tracked.bump(&world, &broker, deployable),
            ));
        }
        if round % HURRIED_EVERY == HURRIED_EVERY - 1 {
            // The next bump lands while these deploys run.
            std::thread::sleep(Duration::from_millis(1_500));
            continue;
        }
        // Not asserted: under chaos a round may not settle in time.
        wait_until(SETTLE_TIMEOUT, || {
            round_versions
                .iter()
                .all(|(env, version)| decided(&world, env, version))
        });
    }

    broker.emu().set_chaos(None);
    let finals: Vec<String> = envs
        .iter_mut()
        .map(|tracked| tracked.bump(&world, &broker, true))
        .collect();
    let mut statuses = Vec::new();
    for (tracked, version) in envs.iter().zip(&finals) {
        statuses.push(wait_converged(&agent, &world, &tracked.spec.name, version));
    }

    let requests = broker.emu().requests();
    let log = agent.log_text();
    let panics = log.matches("panicked at").count();
    assert_eq!(panics, 0, "the agent panicked:\n{log}");
    let (mut deploys, mut records, mut gate_errors) = (0, 0, 0);
    for ((tracked, version), status) in envs.iter().zip(&finals).zip(&statuses) {
        let name = &tracked.spec.name;
        let pacticipant = &tracked.spec.pacticipant;
        let ran = deploys_that_ran(&world, name);
        let recorded: Vec<String> = broker
            .records(pacticipant)
            .into_iter()
            .map(|r| r.0)
            .collect();
        deploys += ran.len();
        records += recorded.len();
        gate_errors += world
            .audit(name)
            .iter()
            .filter(|e| e["step"] == "gate" && e["outcome"] == "error")
            .count();
        let context = || {
            format!(
                "{name}: ran {ran:?}, recorded {recorded:?}, blocked {:?}\n--- results ---\n{:?}",
                tracked.blocked,
                results(&world, name)
            )
        };
        assert_eq!(
            broker.duplicate_records(pacticipant),
            Vec::<String>::new(),
            "duplicated records; {}",
            context()
        );
        assert_eq!(
            recorded,
            ran,
            "every deploy that ran is recorded once, in the order it ran; {}",
            context()
        );

        let ran_blocked: Vec<String> = results(&world, name)
            .into_iter()
            .filter(|(outcome, v)| outcome != "gate_blocked" && tracked.blocked.contains(v))
            .map(|(_, v)| v)
            .collect();
        assert!(
            ran_blocked.is_empty(),
            "versions the broker never called deployable went past the gate: {ran_blocked:?}; {}",
            context()
        );
        let unclean = recorded_without_a_clean_gate(&requests, pacticipant, &recorded);
        assert!(
            unclean.is_empty(),
            "recorded without a fault-free can-i-deploy answer first: {unclean:?}; {}",
            context()
        );

        let image = image_of(tracked.last);
        assert_eq!(
            status["releases"]["web"]["image"],
            image.as_str(),
            "{name}: {status}"
        );
        assert_eq!(
            tracked.spec.web_containers(),
            [(image.clone(), "running".to_string())],
            "{name}: Docker runs something else than status says: {status}"
        );
        assert_eq!(
            broker.current(pacticipant),
            std::slice::from_ref(version),
            "{name}: the broker's current version is not what runs; {}",
            context()
        );
        let tag = &image[image.len() - 1..];
        assert!(
            wait_until(Duration::from_secs(10), || tracked
                .spec
                .served_version()
                .as_deref()
                == Some(tag)),
            "{name}: web does not answer version {tag}"
        );
    }

    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    for request in &requests {
        if let Some(fault) = &request.fault {
            *faults.entry(fault.as_str()).or_default() += 1;
        }
    }
    let blocked: usize = envs.iter().map(|t| t.blocked.len()).sum();
    eprintln!(
        "FIGURE broker chaos: bumps {} ({bumps} under chaos, {blocked} never deployable) over {} environments, \
         broker requests {}, faults injected {} {faults:?}, gate errors {gate_errors}, deploys {deploys}, \
         records {records}, lost 0, duplicated 0, gate passed on error 0, panics {panics}; seed {seed}; wall {:?}",
        bumps + 2 * envs.len(),
        envs.len(),
        requests.len(),
        faults.values().sum::<usize>(),
        started.elapsed()
    );
}

/// A failed record waits in the outbox; the next deploy of the environment runs meanwhile. The
/// broker must end with both records in deploy order and the newer version current.
#[test]
fn a_failed_record_is_never_sent_after_the_next_deploys_record() {
    if !require_docker() {
        return;
    }
    let world = World::new();
    let broker = Broker::start();
    let (spec, guard) = world.env("stale", Some(&broker));
    let mut tracked = Tracked {
        spec,
        _guard: guard,
        last: 0,
        blocked: Vec::new(),
    };
    let first = tracked.bump(&world, &broker, true);
    let agent = Agent::start(&world, &[]);
    wait_converged(&agent, &world, "stale", &first);

    // Every attempt of the next record answers 503: it fails and waits for its retry.
    broker.emu().inject_fault(
        FaultSpec::new(FaultKind::Unavailable, DEFAULT_MAX_ATTEMPTS).on_path("/deployed-versions/"),
    );
    let failed = tracked.bump(&world, &broker, true);
    let record_failed = wait_until(Duration::from_secs(90), || {
        results(&world, "stale")
            .iter()
            .any(|(outcome, v)| outcome == "record_failed" && *v == failed)
    });
    assert!(
        record_failed,
        "the record of {failed} did not fail:\n{}",
        agent.log_text()
    );
    let newest = tracked.bump(&world, &broker, true);
    wait_converged(&agent, &world, "stale", &newest);

    let recorded: Vec<String> = broker
        .records(&tracked.spec.pacticipant)
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        recorded,
        [first, failed, newest.clone()],
        "records in deploy order, the newest current; status {}",
        agent.status("stale").unwrap_or_default()
    );
    assert_eq!(broker.current(&tracked.spec.pacticipant), [newest]);
}
