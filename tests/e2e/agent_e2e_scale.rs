//! Twenty environments under one real `c2quay agent` (issue 4, test 7): all converge, at most
//! `--parallel` reconciles run at once, and no environment is ever reconciled twice at once
//! (asserted from each environment's audit log).

use crate::support::{agent, docker};

use std::time::{Duration, Instant, SystemTime};

use agent::{Agent, Broker, World, condition};
use docker::require_docker;
use serde_json::Value;

const ENVS: usize = 20;
const PARALLEL: usize = 4;
/// Environments bumped to version 2 after the first convergence.
const BUMPED: usize = 8;

/// The `plan` .. `result` spans of one environment's audit log, as (start, end, pid); panics
/// when a span opens before the previous one closed (two deploys of one environment at once).
fn deploy_spans(name: &str, lines: &[Value]) -> Vec<(SystemTime, SystemTime, u64)> {
    let ts = |e: &Value| {
        humantime::parse_rfc3339(e["ts"].as_str().unwrap_or_default())
            .unwrap_or_else(|err| panic!("{name}: bad ts in {e}: {err}"))
    };
    let mut spans = Vec::new();
    let mut open: Option<(SystemTime, u64)> = None;
    for line in lines {
        let pid = line["pid"].as_u64().unwrap_or(0);
        if let Some((_, open_pid)) = open {
            assert_eq!(
                pid, open_pid,
                "{name}: a line from pid {pid} inside a span of pid {open_pid}: {line}"
            );
        }
        match line["step"].as_str() {
            Some("plan") => {
                assert!(
                    open.is_none(),
                    "{name}: a deploy started while another ran: {line}"
                );
                open = Some((ts(line), pid));
            }
            Some("result") => {
                if let Some((start, pid)) = open.take() {
                    spans.push((start, ts(line), pid));
                }
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "{name}: a deploy never ended");
    spans
}

#[test]
fn twenty_environments_converge_with_one_reconcile_per_environment_at_a_time() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let world = World::new();
    let broker = Broker::start();
    let mut specs = Vec::new();
    let mut guards = Vec::new();
    for i in 0..ENVS {
        let (mut spec, guard) = world.env(&format!("fleet-{i:02}"), Some(&broker));
        spec.version = "1".into();
        broker.seed_deployable(&spec.pacticipant, "1");
        broker.seed_deployable(&spec.pacticipant, "2");
        spec.write(&world.desired);
        specs.push(spec);
        guards.push(guard);
    }
    let parallel = PARALLEL.to_string();
    let agent = Agent::start(&world, &["--parallel", &parallel]);
    let converge = |specs: &[agent::EnvSpec], version: &str, timeout: Duration| {
        for spec in specs {
            agent.wait_status(&spec.name, timeout, "Ready and recorded", |s| {
                s["phase"] == "Ready"
                    && s["appliedGeneration"] == s["observedGeneration"]
                    && s["releases"]["web"]["version"] == version
                    && condition(s, "Recorded").is_some_and(|c| c.0 == "True")
            });
        }
    };
    converge(&specs, "1", Duration::from_secs(180));
    let first = started.elapsed();

    // A `git pull` touching many files, twice in a row: the second write lands while the first
    // deploys run, so each gets exactly one follow-up. (A subset, to keep the test short.)
    let bumped = Instant::now();
    for spec in specs.iter_mut().take(BUMPED) {
        spec.version = "2".into();
        spec.write(&world.desired);
    }
    std::thread::sleep(Duration::from_millis(700));
    for spec in specs.iter().take(BUMPED) {
        let text = spec.yaml() + "# touched again\n";
        agent::write_atomic(&world.desired.join(format!("{}.yaml", spec.name)), &text);
    }
    converge(&specs[..BUMPED], "2", Duration::from_secs(180));
    let second = bumped.elapsed();

    let mut all_spans = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let spans = deploy_spans(&spec.name, &world.audit(&spec.name));
        let (version, deploys) = if i < BUMPED {
            ("2", 2..=3)
        } else {
            ("1", 1..=1)
        };
        assert!(
            deploys.contains(&spans.len()),
            "{}: {} deploys, expected {deploys:?}",
            spec.name,
            spans.len()
        );
        assert_eq!(
            spec.served_version().as_deref(),
            Some(version),
            "{}",
            spec.name
        );
        assert_eq!(
            broker.current(&spec.pacticipant),
            [version],
            "{}",
            spec.name
        );
        assert!(broker.duplicate_records(&spec.pacticipant).is_empty());
        all_spans.extend(spans);
    }
    // Never more than --parallel deploys at once across environments.
    let mut edges: Vec<(SystemTime, i32)> = all_spans
        .iter()
        .flat_map(|(s, e, _)| [(*s, 1), (*e, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        peak = peak.max(now);
    }
    assert!(
        peak as usize <= PARALLEL,
        "{peak} deploys ran at once with --parallel {PARALLEL}"
    );
    // Teardown in parallel (20 `compose down` in a row would take long).
    let downs: Vec<_> = guards
        .into_iter()
        .map(|g| std::thread::spawn(move || drop(g)))
        .collect();
    for d in downs {
        let _ = d.join();
    }
    eprintln!(
        "FIGURE test7 {ENVS} envs --parallel {PARALLEL}: first converge {first:?}, bump of {BUMPED} converge {second:?}, peak concurrent deploys {peak}, deploys {}; wall {:?}",
        all_spans.len(),
        started.elapsed()
    );
}
