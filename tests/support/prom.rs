//! A real Prometheus server (Debian's `prometheus` binary) for end-to-end tests of the metrics,
//! the Grafana dashboard and the alert rules.
//!
//! Reached as `crate::support::prom` (it uses its sibling `super::docker`).
//!
//! [`Prometheus::start`] writes a `prometheus.yml` (job `c2quay`, 1 s scrape and evaluation
//! intervals, optional rule files) into a temp directory, starts the server on a free loopback
//! port and waits for `/-/ready`. Dropping it kills the server. [`Prometheus::query`] runs an
//! instant query through `/api/v1/query`; [`Prometheus::alerts`] reads `/api/v1/alerts`.
//! [`dashboard_exprs`] lists every panel target of a Grafana dashboard with its variables
//! substituted.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::docker::{free_port, try_http_get};

/// Call after `require_docker()` in tests that need Prometheus: false (after a SKIP line) when
/// the `prometheus` binary is missing, a panic instead when Docker tests are required (CI).
#[track_caller]
pub fn require_prometheus() -> bool {
    let found = Command::new("prometheus")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let why = "the `prometheus` binary is missing (apt-get install prometheus)";
    if super::docker::docker_required() {
        panic!("{why}; CI or C2QUAY_REQUIRE_DOCKER is set, so this is a failure, not a skip");
    }
    eprintln!("SKIP: {why} (set C2QUAY_REQUIRE_DOCKER=1 to make this a failure)");
    false
}

/// A running Prometheus server; killed on drop.
pub struct Prometheus {
    child: Option<Child>,
    /// The port of its HTTP API on 127.0.0.1.
    pub port: u16,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` scraping `targets` (`host:port`) as job `c2quay` every second,
    /// with `rule_files` evaluated every second; waits up to 30 s for `/-/ready`.
    pub fn start(dir: &Path, targets: &[String], rule_files: &[PathBuf]) -> Prometheus {
        fs::create_dir_all(dir).expect("prometheus dir");
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: c2quay\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for file in rule_files {
                config.push_str(&format!("  - \"{}\"\n", file.display()));
            }
        }
        let config_path = dir.join("prometheus.yml");
        fs::write(&config_path, config).expect("prometheus.yml");
        let log = dir.join("prometheus.log");
        let log_file = fs::File::create(&log).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus)");
        let mut prometheus = Prometheus {
            child: Some(child),
            port,
            log,
        };
        prometheus.wait_ready(Duration::from_secs(30));
        prometheus
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self.get("/-/ready") {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("prometheus exited ({status}):\n{}", self.log_text());
            }
            if Instant::now() >= deadline {
                panic!(
                    "prometheus not ready after {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET on Prometheus' HTTP port: `(status, body)`.
    pub fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        try_http_get(&format!("http://127.0.0.1:{}{path_and_query}", self.port))
    }

    /// An instant query: the `data` object of a successful answer, `Err` with the body of a
    /// failed one (bad PromQL, ...).
    pub fn query(&self, expr: &str) -> Result<Value, String> {
        let path = format!("/api/v1/query?query={}", urlencoding::encode(expr));
        let (status, body) = self.get(&path).map_err(|e| format!("GET {path}: {e}"))?;
        let json: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:?}: {e}"))?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(json["data"].clone())
    }

    /// The number of samples (vector elements, matrix series, or 1 for a scalar) an instant
    /// query returns; NaN values count.
    pub fn count(&self, expr: &str) -> Result<usize, String> {
        let data = self.query(expr)?;
        Ok(match data["resultType"].as_str() {
            Some("scalar") | Some("string") => 1,
            _ => data["result"].as_array().map_or(0, Vec::len),
        })
    }

    /// Whether every sample an instant query returns is NaN (e.g. a quantile over a histogram
    /// with no observations in the window); false when it returns nothing.
    pub fn only_nan(&self, expr: &str) -> bool {
        let Ok(data) = self.query(expr) else {
            return false;
        };
        let values: Vec<&str> = data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["value"][1].as_str())
            .collect();
        !values.is_empty() && values.iter().all(|v| *v == "NaN")
    }

    /// The alerts Prometheus holds (pending or firing), from `/api/v1/alerts`.
    pub fn alerts(&self) -> Vec<Value> {
        let Ok((200, body)) = self.get("/api/v1/alerts") else {
            return Vec::new();
        };
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The state of the scrape targets, from `/api/v1/targets` (for failure messages).
    pub fn targets(&self) -> String {
        self.get("/api/v1/targets")
            .map(|(_, body)| body)
            .unwrap_or_else(|e| e.to_string())
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One query of a dashboard panel, with the dashboard variables substituted.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    /// The panel title.
    pub panel: String,
    /// The target's refId.
    pub ref_id: String,
    /// The PromQL expression, ready to send.
    pub expr: String,
}

/// Every target of every panel (nested rows included) of a Grafana dashboard, with
/// `$environment` and `$instance` as `.*`, `$__rate_interval` as `1m`, `$__range` as `5m`
/// and `$__interval` as `15s`.
pub fn dashboard_exprs(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(PanelQuery {
                        panel: panel["title"].as_str().unwrap_or("").to_string(),
                        ref_id: target["refId"].as_str().unwrap_or("").to_string(),
                        expr: substitute(expr),
                    });
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Replaces the Grafana variables the c2quay dashboard uses (longest names first, so
/// `$__rate_interval` is not cut by `$__interval`).
pub fn substitute(expr: &str) -> String {
    expr.replace("${environment}", ".*")
        .replace("$environment", ".*")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "15s")
}
