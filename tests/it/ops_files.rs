//! Checks of the operations files: Prometheus alert rules (promtool), systemd units
//! (systemd-analyze), the Grafana dashboard and `docs/metrics.md`, all against
//! `c2quay::metrics::DOCUMENTED_METRICS`.
//!
//! `promtool` comes from Debian's `prometheus` package and `systemd-analyze` from `systemd`;
//! both are installed by `scripts/test-world.sh`. When one is missing the test prints SKIP and
//! passes, unless `CI` or `C2QUAY_REQUIRE_DOCKER` is set: then it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use c2quay::metrics::DOCUMENTED_METRICS;

/// Grafana variables and what they are replaced with to check an expression's syntax.
const GRAFANA_SUBSTITUTIONS: &[(&str, &str)] = &[
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$environment", ".*"),
    ("$instance", ".*"),
];

/// The alerts `grafana/alerts.yaml` must define (issue 5).
const EXPECTED_ALERTS: &[&str] = &[
    "C2quayEnvironmentNotReady",
    "C2quayRollbackHappened",
    "C2quayGateBlockedLong",
    "C2quayRecordPending",
    "C2quayManifestInvalid",
    "C2quayDrift",
    "C2quayStateError",
    "C2quayHostBlocked",
    "C2quayDockerUnreachable",
    "C2quayDockerSlow",
    "C2quayGitSyncFailing",
    "C2quayAgentDown",
    "C2quayAgentAbsent",
    "C2quayBrokerErrors",
];

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = required_tool("promtool") else {
        return;
    };
    let check = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo("grafana/alerts.yaml")));
    assert_success("promtool check rules grafana/alerts.yaml", &check);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains(&format!("SUCCESS: {} rules found", EXPECTED_ALERTS.len())),
        "{stdout}"
    );

    let test = run(Command::new(&promtool)
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(repo("grafana")));
    assert_success("promtool test rules grafana/alerts.test.yaml", &test);
}

#[test]
fn every_alert_has_a_firing_and_a_silent_promtool_test() {
    let tests = yaml(&repo("grafana/alerts.test.yaml"));
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in seq(&tests["tests"]) {
        for check in seq(&case["alert_rule_test"]) {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            if seq(&check["exp_alerts"]).is_empty() {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for alert in EXPECTED_ALERTS {
        assert!(firing.contains(*alert), "no test where {alert} fires");
        assert!(
            silent.contains(*alert),
            "no test where {alert} stays silent"
        );
    }
}

#[test]
fn alert_rules_are_complete_and_use_documented_metrics() {
    let rules = yaml(&repo("grafana/alerts.yaml"));
    let runbook_text = std::fs::read_to_string(repo("docs/runbook.md")).expect("docs/runbook.md");
    let mut names = Vec::new();
    for group in seq(&rules["groups"]) {
        for rule in seq(&group["rules"]) {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("expr");
            names.push(name.to_owned());
            assert_documented(&format!("alert {name}"), expr);
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{name}: severity {severity:?}"
            );
            let summary = rule["annotations"]["summary"].as_str().expect("summary");
            let description = rule["annotations"]["description"]
                .as_str()
                .expect("description");
            assert!(!summary.is_empty(), "{name}: empty summary");
            // Every alert links its runbook section, and the section exists (issue 14).
            let runbook = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no runbook_url"));
            assert_eq!(
                runbook,
                format!("docs/runbook.md#{}", name.to_lowercase()),
                "{name}: runbook_url"
            );
            assert!(
                runbook_text.contains(&format!("\n## {name}\n")),
                "{name}: docs/runbook.md has no section `## {name}`"
            );
            let host_wide = expr.contains("broker_requests")
                || expr.contains("c2quay_docker_")
                || expr.contains("c2quay_git_sync_");
            if expr.contains("c2quay_") && !host_wide {
                // Environment alerts name the environment and the next command to run.
                assert!(
                    description.contains("{{ $labels.environment }}"),
                    "{name}: the description does not name the environment"
                );
                assert!(
                    description.contains("`c2quay status {{ $labels.environment }}`")
                        || description.contains("`c2quay plan {{ $labels.environment }}`"),
                    "{name}: the description does not give the next command"
                );
            } else {
                assert!(
                    description.contains('`'),
                    "{name}: no command in the description"
                );
            }
        }
    }
    assert_eq!(names, EXPECTED_ALERTS);
}

#[test]
fn dashboard_has_variables_and_panels_with_documented_metrics() {
    let dashboard = dashboard();
    assert_eq!(dashboard["schemaVersion"].as_u64(), Some(39));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|variable| variable["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    let environment = variable("environment");
    assert_eq!(
        environment["definition"],
        "label_values(c2quay_environment_phase, environment)"
    );
    assert_eq!(environment["multi"], true);
    assert_eq!(environment["includeAll"], true);
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let definition = variable["definition"].as_str().expect("definition");
        assert_documented("variable", definition);
    }

    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "only {} expressions", exprs.len());
    let mut used = BTreeSet::new();
    for (panel, expr) in &exprs {
        used.extend(assert_documented(panel, expr));
        if !expr.contains("build_info")
            && !expr.contains("broker_")
            && !expr.starts_with("up{")
            && !expr.contains("process_")
        {
            assert!(
                expr.contains(r#"environment=~"$environment""#),
                "{panel} ignores the environment selector: {expr}"
            );
        }
    }
    // The panels the issue asks for each have a query on their metric.
    for metric in [
        "c2quay_environment_phase",
        "c2quay_reconcile_total",
        "c2quay_step_duration_seconds",
        "c2quay_gate_blocked",
        "c2quay_rollbacks_total",
        "c2quay_pending_records",
        "c2quay_drift_detected",
        "c2quay_broker_requests_total",
        "c2quay_broker_request_duration_seconds",
        "c2quay_last_success_timestamp_seconds",
    ] {
        assert!(used.contains(metric), "no panel shows {metric}");
    }
}

#[test]
fn dashboard_expressions_are_valid_promql() {
    let Some(promtool) = required_tool("promtool") else {
        return;
    };
    let dashboard = dashboard();
    let mut rules = String::from("groups:\n  - name: c2quay-dashboard\n    rules:\n");
    for (index, (panel, expr)) in dashboard_exprs(&dashboard).iter().enumerate() {
        let mut promql = expr.clone();
        for (variable, value) in GRAFANA_SUBSTITUTIONS {
            promql = promql.replace(variable, value);
        }
        assert!(
            !promql.contains('$'),
            "{panel}: unknown variable in {promql}"
        );
        rules.push_str(&format!(
            "      - record: c2quay_dashboard:expr_{index}\n        expr: {}\n",
            serde_json::to_string(&promql).expect("a JSON string is a YAML string")
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, &rules).expect("write rules");
    let check = run(Command::new(&promtool).args(["check", "rules"]).arg(&file));
    assert_success(&format!("promtool check rules on\n{rules}"), &check);
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(systemd_analyze) = required_tool("systemd-analyze") else {
        return;
    };
    // `verify` checks that ExecStart= binaries exist; point the units at ones that do. It
    // does not check that User=/Group= exist (systemd 252), so nothing else is rewritten and
    // no output is filtered: any warning fails the test.
    let git = find_tool("git").expect("git is installed");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for name in [
        "c2quay-agent.service",
        "c2quay-desired-sync.service",
        "c2quay-desired-sync.timer",
    ] {
        let text = read(&repo(&format!("systemd/{name}")))
            .replace("/usr/local/bin/c2quay", env!("CARGO_BIN_EXE_c2quay"))
            .replace("/usr/bin/git", &git.to_string_lossy());
        let copy = dir.path().join(name);
        std::fs::write(&copy, text).expect("write unit copy");
        units.push(copy);
    }
    let verify = run(Command::new(&systemd_analyze)
        .args(["verify", "--man=no"])
        .args(&units)
        .env("SYSTEMD_LOG_COLOR", "0"));
    assert_success("systemd-analyze verify", &verify);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        output.trim().is_empty(),
        "systemd-analyze verify warned:\n{output}"
    );
}

/// The highest `systemd-analyze security` exposure the agent's unit may have (it was 3.2 before
/// the system call filter and the /proc restrictions; it is 1.4 with them).
const MAX_EXPOSURE: f64 = 2.0;

#[test]
fn agent_unit_exposure_stays_at_most_max_exposure() {
    let Some(systemd_analyze) = required_tool("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("c2quay-agent.service");
    std::fs::copy(repo("systemd/c2quay-agent.service"), &unit).expect("copy the unit");
    let out = run(Command::new(&systemd_analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .env("SYSTEMD_COLORS", "0"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for c2quay-agent.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= MAX_EXPOSURE, "exposure {exposure}:\n{text}");
}

#[test]
fn agent_unit_keeps_its_supervision_and_hardening_settings() {
    let unit = read(&repo("systemd/c2quay-agent.service"));
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .next_back()
    };
    for (key, expected) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("KillMode", "mixed"),
        ("User", "c2quay"),
        ("SupplementaryGroups", "docker"),
        ("StateDirectory", "c2quay"),
        ("StateDirectoryMode", "0700"),
        ("EnvironmentFile", "-/etc/c2quay/c2quay.env"),
        ("ExecStart", "/usr/local/bin/c2quay agent"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
        ("SystemCallErrorNumber", "EPERM"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
    ] {
        assert_eq!(value(key), Some(expected), "{key}=");
    }
    let stop: u64 = value("TimeoutStopSec")
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > 120,
        "TimeoutStopSec={stop} must exceed the 120s shutdown grace"
    );
    // Only the state directory (overrides included) and the claims are writable: the compose
    // directories are read, never written.
    let rw = value("ReadWritePaths").expect("ReadWritePaths");
    assert_eq!(rw, "/var/lib/c2quay -/run/lock", "{rw}");

    // Every variable the unit or the brief names is documented in the env file example.
    let example = read(&repo("systemd/c2quay.env.example"));
    for variable in [
        "C2QUAY_DESIRED",
        "C2QUAY_STATE_DIR",
        "C2QUAY_LISTEN",
        "C2QUAY_HOST",
        "C2QUAY_RESYNC",
        "C2QUAY_PARALLEL",
        "C2QUAY_LOG_FORMAT",
    ] {
        assert!(
            example.contains(&format!("{variable}=")),
            "{variable} missing from c2quay.env.example"
        );
    }
    for (key, value) in &settings {
        if *key == "Environment" {
            let variable = value.split('=').next().unwrap_or_default();
            if variable.starts_with("C2QUAY_") {
                assert!(example.contains(variable), "{variable} is not documented");
            }
        }
    }
}

#[test]
fn metrics_doc_lists_every_metric_and_alert() {
    let doc = read(&repo("docs/metrics.md"));
    for (name, kind) in DOCUMENTED_METRICS {
        let row = doc
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("docs/metrics.md has no table row for {name}"));
        assert!(row.contains(kind), "{name} is not documented as a {kind}");
    }
    for alert in EXPECTED_ALERTS {
        assert!(doc.contains(alert), "docs/metrics.md does not list {alert}");
    }
}

/// A path inside the repository.
fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Reads a file of the repository.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses a YAML file.
fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The elements of a YAML sequence (none when it is not one).
fn seq(value: &serde_yaml::Value) -> &[serde_yaml::Value] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

/// The parsed Grafana dashboard.
fn dashboard() -> serde_json::Value {
    let path = repo("grafana/c2quay-dashboard.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (panel title + refId, expr) of the dashboard, rows' nested panels included. Fails
/// when a panel other than a row has no target or a target has no expression.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
    }
    let mut exprs = Vec::new();
    for panel in panels.into_iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().expect("every panel has a title");
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {title:?} has an empty expr");
            let name = format!("panel {title:?} {}", target["refId"]);
            exprs.push((name, expr.to_owned()));
        }
    }
    exprs
}

/// Asserts that every `c2quay_*` / `process_*` metric in a PromQL expression is documented
/// (histogram series suffixes stripped); returns the metrics it uses.
fn assert_documented(place: &str, expr: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for identifier in metric_identifiers(expr) {
        let documented = |name: &str| DOCUMENTED_METRICS.iter().find(|(n, _)| *n == name);
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| identifier.strip_suffix(suffix))
            .find(|base| matches!(documented(base), Some((_, "histogram"))))
            .unwrap_or(&identifier);
        assert!(
            documented(base).is_some(),
            "{place} uses {identifier}, which is not in DOCUMENTED_METRICS: {expr}"
        );
        used.insert(base.to_owned());
    }
    used
}

/// The identifiers starting with `c2quay_` or `process_` outside string literals. Recording
/// rule names (`c2quay:...`) and label values are not metrics of the agent.
fn metric_identifiers(expr: &str) -> Vec<String> {
    let mut identifiers = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in expr.chars().chain([' ']) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
            continue;
        }
        if current.starts_with("c2quay_") || current.starts_with("process_") {
            identifiers.push(std::mem::take(&mut current));
        }
        current.clear();
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
    }
    identifiers
}

/// The path of a tool on PATH, if any.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The path of a tool the test needs; `None` (after printing SKIP) when it is missing on a
/// developer machine; a failure when it is missing in CI.
fn required_tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        let required = ["CI", "C2QUAY_REQUIRE_DOCKER"]
            .iter()
            .any(|variable| std::env::var_os(variable).is_some_and(|v| !v.is_empty()));
        assert!(
            !required,
            "{name} is required (CI or C2QUAY_REQUIRE_DOCKER is set) but not on PATH; run scripts/test-world.sh"
        );
        eprintln!("SKIP: {name} not found on PATH (install it with scripts/test-world.sh)");
    }
    found
}

/// Runs a command to completion.
fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"))
}

/// Asserts that a command succeeded, showing its output otherwise.
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
