//! Issue 5, end to end: a real Prometheus server scrapes a real `c2quay agent` through a deploy
//! and a rollback; every PromQL expression of `grafana/c2quay-dashboard.json` must return data,
//! `grafana/alerts.yaml` must raise `C2quayRollbackHappened`, and `/metrics` must expose every
//! metric of `c2quay::metrics::DOCUMENTED_METRICS` with its documented type.
//!
//! Needs Docker, the test images and the `prometheus` binary (Debian package `prometheus`).

use crate::support::{agent, docker, git, prom};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent::{Agent, Broker, EnvSpec, World, tail, wait_until};
use docker::require_docker;
use prom::{Prometheus, dashboard_exprs};

/// How long one deploy or rollback may take (compose up --wait with a short waitTimeout).
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

/// Writes the manifest of `spec` with a short `waitTimeout`, so the rollback of `:unhealthy`
/// starts soon after its container turns unhealthy.
fn write_manifest(world: &World, spec: &EnvSpec) {
    let yaml = spec.yaml().replace("waitTimeout: 20s", "waitTimeout: 8s");
    assert!(
        yaml.contains("waitTimeout: 8s"),
        "manifest layout changed:\n{yaml}"
    );
    agent::write_atomic(&world.desired.join(format!("{}.yaml", spec.name)), &yaml);
}

/// `# TYPE` lines of a Prometheus text exposition: metric name -> type.
fn exposed_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

#[test]
fn prometheus_scrapes_a_deploy_and_a_rollback_and_every_dashboard_panel_has_data() {
    if !require_docker() || !prom::require_prometheus() {
        return;
    }
    let started = Instant::now();
    let broker = Broker::start();
    let world = World::new();
    let (mut spec, _project) = world.env("prom", Some(&broker));
    for version in ["1", "2", "unhealthy"] {
        broker.seed_deployable(&spec.pacticipant, version);
    }
    write_manifest(&world, &spec);
    // The desired directory is a git checkout whose sync (the shipped timer's `c2quay sync
    // --state-dir`) fails: it has no upstream. The agent exports the revision's time and the
    // timer's sync record, so every documented series exists.
    git::git(&world.desired, &["init", "--quiet"]);
    git::commit_all(&world.desired, "prom");
    std::fs::create_dir_all(&world.state).expect("state dir");
    let (code, _, _) = world.c2quay(&[
        "sync",
        "--desired",
        git::path(&world.desired),
        "--state-dir",
        git::path(&world.state),
    ]);
    assert_eq!(
        code, 1,
        "no upstream: the sync fails and its record is kept"
    );
    let agent = Agent::start(&world, &[]);
    agent.wait_phase(&spec.name, "Ready", PHASE_TIMEOUT);

    let prom_dir = world.root.path().join("prometheus");
    let rules = docker::repo_root().join("grafana/alerts.yaml");
    let prometheus = Prometheus::start(&prom_dir, &[format!("127.0.0.1:{}", agent.port)], &[rules]);
    // Scraped before anything fails, so `increase()` sees the rollback counter go 0 -> 1.
    assert!(
        wait_until(Duration::from_secs(20), || {
            prometheus
                .count(r#"c2quay_rollbacks_total{job="c2quay"}"#)
                .is_ok_and(|n| n > 0)
        }),
        "prometheus does not scrape the agent:\n{}\n{}",
        prometheus.targets(),
        prometheus.log_text()
    );

    // A deploy.
    spec.version = "2".into();
    write_manifest(&world, &spec);
    agent.wait_status(&spec.name, PHASE_TIMEOUT, "Ready at version 2", |s| {
        s["phase"] == "Ready" && s["releases"]["web"]["version"] == "2"
    });
    // A deploy that fails readiness and is rolled back.
    spec.version = "unhealthy".into();
    write_manifest(&world, &spec);
    let status = agent.wait_phase(&spec.name, "RolledBack", PHASE_TIMEOUT);
    assert_eq!(status["releases"]["web"]["version"], "2", "{status:#}");
    assert_eq!(spec.served_version().as_deref(), Some("2"));

    // Prometheus has scraped the rollback.
    assert!(
        wait_until(Duration::from_secs(20), || {
            prometheus
                .count(r#"sum(c2quay_rollbacks_total{job="c2quay"}) > 0"#)
                .is_ok_and(|n| n > 0)
        }),
        "the rollback never reached prometheus:\n{}",
        prometheus.targets()
    );

    // Every dashboard expression returns data (NaN counts: a quantile over no observations).
    let dashboard_path = docker::repo_root().join("grafana/c2quay-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_path).expect("dashboard"))
            .expect("dashboard JSON");
    let queries = dashboard_exprs(&dashboard);
    // The check below can fail: a series that does not exist has no data.
    assert_eq!(prometheus.count("c2quay_no_such_metric"), Ok(0));
    assert!(queries.len() >= 10, "only {} panel queries", queries.len());
    let mut empty: Vec<String> = Vec::new();
    let ok = wait_until(Duration::from_secs(30), || {
        empty = queries
            .iter()
            .filter_map(|q| match prometheus.count(&q.expr) {
                Ok(n) if n > 0 => None,
                Ok(_) => Some(format!("{} [{}]: no data: {}", q.panel, q.ref_id, q.expr)),
                Err(e) => Some(format!("{} [{}]: error {e}: {}", q.panel, q.ref_id, q.expr)),
            })
            .collect();
        empty.is_empty()
    });
    assert!(
        ok,
        "dashboard queries without data:\n{}\n--- agent log ---\n{}",
        empty.join("\n"),
        tail(&agent.log_text(), 40)
    );

    for q in queries.iter().filter(|q| prometheus.only_nan(&q.expr)) {
        eprintln!("note: only NaN from {} [{}]: {}", q.panel, q.ref_id, q.expr);
    }

    // The rollback alert is pending or firing for this environment.
    let mut seen = Vec::new();
    let fired = wait_until(Duration::from_secs(30), || {
        seen = prometheus.alerts();
        seen.iter().any(|a| {
            a["labels"]["alertname"] == "C2quayRollbackHappened"
                && a["labels"]["environment"] == spec.name.as_str()
                && matches!(a["state"].as_str(), Some("pending" | "firing"))
        })
    });
    assert!(
        fired,
        "C2quayRollbackHappened not raised; alerts: {seen:#?}"
    );
    let firing = prometheus
        .count(r#"ALERTS{alertname="C2quayRollbackHappened", environment="prom"}"#)
        .expect("ALERTS query");
    assert!(firing > 0, "no ALERTS series for C2quayRollbackHappened");

    // The agent exposes every documented metric with its documented type.
    let (code, text) = agent.get("/metrics").expect("GET /metrics");
    assert_eq!(code, 200);
    let types = exposed_types(&text);
    let wrong: Vec<String> = c2quay::metrics::DOCUMENTED_METRICS
        .iter()
        .filter(|(name, kind)| types.get(*name).map(String::as_str) != Some(*kind))
        .map(|(name, kind)| format!("{name}: want {kind}, got {:?}", types.get(*name)))
        .collect();
    assert!(
        wrong.is_empty(),
        "metrics missing or mistyped:\n{}",
        wrong.join("\n")
    );
    for series in [
        r#"c2quay_rollbacks_total{environment="prom",result="succeeded"} 1"#,
        r#"c2quay_environment_phase{environment="prom",phase="RolledBack"} 1"#,
        r#"c2quay_environment_ready{environment="prom"} 0"#,
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "no `{series}` in /metrics"
        );
    }
    eprintln!(
        "E2E-TIME prometheus_dashboard: {:.1}s ({} panel queries)",
        started.elapsed().as_secs_f64(),
        queries.len()
    );
}
