//! Shared helpers for the tests that drive the official `pact broker` CLI.
//!
//! The CLI is found via `$PACT_CLI`, then `pact` on `PATH`, then the Python
//! user/site `bin` directories. Missing CLI: the tests fail when
//! `C2QUAY_REQUIRE_PACT_CLI` or `CI` is set, otherwise print a SKIP line.
#![allow(dead_code)]

use std::path::PathBuf;

use c2quay_broker_emulator::RunningEmulator;
use serde_json::{Value, json};

pub fn find_pact() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PACT_CLI") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for code in [
        "import site,sys;print(site.USER_BASE)",
        "import sys;print(sys.prefix)",
    ] {
        if let Ok(out) = std::process::Command::new("python3")
            .args(["-c", code])
            .output()
        {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin"));
        }
    }
    dirs.into_iter()
        .map(|d| d.join("pact"))
        .find(|p| p.is_file())
}

/// The CLI, or `None` after printing SKIP (panics when the CLI is required).
pub fn pact_cli(test: &str) -> Option<PathBuf> {
    let found = find_pact();
    if found.is_none() {
        let required = std::env::var_os("C2QUAY_REQUIRE_PACT_CLI").is_some()
            || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "the official `pact` CLI is required (C2QUAY_REQUIRE_PACT_CLI or CI is set) but was not found: install it with `pip install pact-python-cli` or set PACT_CLI"
        );
        println!(
            "SKIP {test}: the official `pact` CLI was not found (pip install pact-python-cli)"
        );
    }
    found
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

pub async fn broker(bin: &PathBuf, base: &str, args: &[&str]) -> Out {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("broker")
        .args(args)
        .args(["--broker-base-url", base]);
    for var in [
        "PACT_BROKER_BASE_URL",
        "PACT_BROKER_USERNAME",
        "PACT_BROKER_PASSWORD",
        "PACT_BROKER_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PACT_DO_NOT_TRACK", "true")
        .env("PACT_BROKER_HTTP_RETRIES", "1");
    let out = cmd.output().await.expect("the pact CLI runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `(method, path?query)` of every logged request, then clears the log.
pub fn take_requests(e: &RunningEmulator) -> Vec<(String, String)> {
    let r = e
        .requests()
        .into_iter()
        .map(|r| (r.method.clone(), r.target()))
        .collect();
    e.clear_requests();
    r
}

pub fn req(m: &str, t: &str) -> (String, String) {
    (m.to_string(), t.to_string())
}

pub fn pact_doc(consumer: &str, provider: &str, marker: &str) -> Value {
    json!({
        "consumer": {"name": consumer}, "provider": {"name": provider},
        "interactions": [{"description": format!("a request {marker}"), "request": {"method": "GET", "path": "/x"}, "response": {"status": 200}}],
        "metadata": {"pactSpecification": {"version": "3.0.0"}}
    })
}
