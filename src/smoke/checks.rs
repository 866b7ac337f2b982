//! [`Checks`]: the real http / tcp / exec smoke checks.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    DEFAULT_ATTEMPTS, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Error, Result, Smoke, SmokeContext,
    SmokeResult,
};
use crate::docker::run::{self, ChildEnv};
use crate::manifest::{ExecCheck, HttpCheck, SmokeCheck, TcpCheck};

/// `PATH` given to `exec` checks when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bytes of an HTTP body read for `bodyContains`.
const MAX_BODY: usize = 1 << 20;
/// Output lines of a failed `exec` shown in the reason.
const EXEC_TAIL: usize = 5;

/// The real smoke checks. Holds one HTTP client (no redirects followed, no proxy).
#[derive(Debug, Clone)]
pub struct Checks {
    client: reqwest::Client,
}

enum Kind<'a> {
    Http(&'a HttpCheck),
    Tcp(&'a TcpCheck),
    Exec(&'a ExecCheck),
}

fn kind_of(check: &SmokeCheck) -> Result<Kind<'_>> {
    let invalid = |detail: &str| Error::Invalid {
        check: check.name.clone(),
        detail: detail.to_string(),
    };
    match (&check.http, &check.tcp, &check.exec) {
        (Some(h), None, None) => Ok(Kind::Http(h)),
        (None, Some(t), None) => Ok(Kind::Tcp(t)),
        (None, None, Some(e)) if e.command.is_empty() => Err(invalid("exec.command is empty")),
        (None, None, Some(e)) => Ok(Kind::Exec(e)),
        (None, None, None) => Err(invalid("needs one of http, tcp, exec")),
        _ => Err(invalid("has more than one of http, tcp, exec")),
    }
}

impl Checks {
    /// Builds the HTTP client.
    pub fn new() -> Result<Checks> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("c2quay-smoke/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        Ok(Checks { client })
    }

    async fn http(&self, h: &HttpCheck, timeout: Duration) -> std::result::Result<(), String> {
        let expected = h.status.unwrap_or(200);
        let attempt = async {
            let resp = self
                .client
                .get(&h.url)
                .send()
                .await
                .map_err(|e| format!("GET {} failed: {}", h.url, crate::error_chain(&e)))?;
            let status = resp.status().as_u16();
            if status != expected {
                return Err(format!("GET {} -> {status}, expected {expected}", h.url));
            }
            if let Some(needle) = &h.body_contains {
                let mut body = Vec::new();
                let mut resp = resp;
                while let Some(chunk) = resp.chunk().await.map_err(|e| {
                    format!(
                        "GET {} -> {status} but reading the body failed: {}",
                        h.url,
                        crate::error_chain(&e)
                    )
                })? {
                    body.extend_from_slice(&chunk);
                    if body.len() >= MAX_BODY {
                        break;
                    }
                }
                if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                    return Err(format!(
                        "GET {} -> {status} but body does not contain {needle:?}",
                        h.url
                    ));
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "GET {} timed out after {}",
                h.url,
                humantime::format_duration(timeout)
            )),
        }
    }

    async fn tcp(t: &TcpCheck, timeout: Duration) -> std::result::Result<(), String> {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&t.address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect {}: {e}", t.address)),
            Err(_) => Err(format!(
                "connect {} timed out after {}",
                t.address,
                humantime::format_duration(timeout)
            )),
        }
    }

    async fn exec(
        e: &ExecCheck,
        ctx: &SmokeContext,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        let shown = e.command.join(" ");
        // A clean environment: PATH, the environment's name, the context's and the check's own.
        let mut env = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()),
            ),
            ("C2QUAY_ENVIRONMENT".to_string(), ctx.environment.clone()),
        ];
        env.extend(ctx.env_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(e.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let args: Vec<OsString> = e.command[1..].iter().map(OsString::from).collect();
        // The crate's one child runner: own process group, PDEATHSIG, group killed on timeout.
        let out = match run::run_raw_with_env(
            Path::new(&e.command[0]),
            &args,
            ChildEnv::Only(&env),
            timeout,
        )
        .await
        {
            Ok(out) => out,
            Err(crate::docker::Error::Timeout { .. }) => {
                return Err(format!(
                    "`{shown}` did not finish within {}; killed it",
                    humantime::format_duration(timeout)
                ));
            }
            Err(crate::docker::Error::Spawn { source, .. }) => {
                return Err(format!("`{shown}` could not start: {source}"));
            }
            Err(err) => return Err(format!("`{shown}` failed: {err}")),
        };
        if out.success() {
            return Ok(());
        }
        let text = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(EXEC_TAIL)..].join(" | ");
        let status = match out.code {
            Some(c) => format!("exit code {c}"),
            None => "a signal".to_string(),
        };
        Err(if tail.is_empty() {
            format!("`{shown}` exited with {status}")
        } else {
            format!("`{shown}` exited with {status}: {tail}")
        })
    }
}

impl Smoke for Checks {
    async fn run(&self, check: &SmokeCheck, ctx: &SmokeContext) -> Result<SmokeResult> {
        let kind = kind_of(check)?;
        if let Kind::Http(h) = &kind {
            reqwest::Url::parse(&h.url).map_err(|e| Error::Invalid {
                check: check.name.clone(),
                detail: format!("url {:?}: {e}", h.url),
            })?;
        }
        let timeout = check.timeout.map(|d| d.get()).unwrap_or(DEFAULT_TIMEOUT);
        let interval = check.interval.map(|d| d.get()).unwrap_or(DEFAULT_INTERVAL);
        let attempts = check.attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1);
        let start = Instant::now();
        let mut last_failure = None;
        for attempt in 1..=attempts {
            let outcome = match &kind {
                Kind::Http(h) => self.http(h, timeout).await,
                Kind::Tcp(t) => Self::tcp(t, timeout).await,
                Kind::Exec(e) => Self::exec(e, ctx, timeout).await,
            };
            match outcome {
                Ok(()) => {
                    return Ok(SmokeResult {
                        name: check.name.clone(),
                        passed: true,
                        attempts: attempt,
                        last_failure,
                        elapsed: start.elapsed(),
                    });
                }
                Err(reason) => {
                    tracing::debug!(check = %check.name, attempt, %reason, "smoke attempt failed");
                    last_failure = Some(reason);
                    if attempt < attempts {
                        tokio::time::sleep(interval).await;
                    }
                }
            }
        }
        Ok(SmokeResult {
            name: check.name.clone(),
            passed: false,
            attempts,
            last_failure,
            elapsed: start.elapsed(),
        })
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
