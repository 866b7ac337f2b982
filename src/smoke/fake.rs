//! [`FakeSmoke`]: test support. Passes every check unless told a check fails; records runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{DEFAULT_ATTEMPTS, Result, Smoke, SmokeContext, SmokeResult};
use crate::manifest::SmokeCheck;

#[derive(Debug, Default)]
struct State {
    failing: BTreeMap<String, String>,
    runs: Vec<String>,
}

/// A stateful fake [`Smoke`] (test support). Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeSmoke {
    state: Arc<Mutex<State>>,
}

impl FakeSmoke {
    /// A fake where every check passes.
    pub fn new() -> FakeSmoke {
        FakeSmoke::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The check named `name` fails with `reason` (on every attempt) until [`FakeSmoke::pass`].
    pub fn fail(&self, name: &str, reason: &str) {
        self.lock()
            .failing
            .insert(name.to_string(), reason.to_string());
    }

    /// The check named `name` passes again.
    pub fn pass(&self, name: &str) {
        self.lock().failing.remove(name);
    }

    /// Names of the checks run so far, in order, with the environment (`name@env`).
    pub fn runs(&self) -> Vec<String> {
        self.lock().runs.clone()
    }
}

impl Smoke for FakeSmoke {
    async fn run(&self, check: &SmokeCheck, ctx: &SmokeContext) -> Result<SmokeResult> {
        let mut s = self.lock();
        s.runs.push(format!("{}@{}", check.name, ctx.environment));
        let failure = s.failing.get(&check.name).cloned();
        Ok(SmokeResult {
            name: check.name.clone(),
            passed: failure.is_none(),
            attempts: if failure.is_some() {
                check.attempts.unwrap_or(DEFAULT_ATTEMPTS).max(1)
            } else {
                1
            },
            last_failure: failure,
            elapsed: Duration::ZERO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::TcpCheck;

    #[tokio::test]
    async fn fails_only_what_it_is_told() {
        let fake = FakeSmoke::new();
        let check = SmokeCheck {
            name: "port".into(),
            http: None,
            tcp: Some(TcpCheck {
                address: "127.0.0.1:1".into(),
            }),
            exec: None,
            timeout: None,
            attempts: Some(3),
            interval: None,
        };
        let ctx = SmokeContext {
            environment: "shop".into(),
            ..Default::default()
        };
        assert!(fake.run(&check, &ctx).await.unwrap().passed);
        fake.fail("port", "connection refused");
        let r = fake.run(&check, &ctx).await.unwrap();
        assert!(!r.passed);
        assert_eq!(
            (r.attempts, r.last_failure.as_deref()),
            (3, Some("connection refused"))
        );
        fake.pass("port");
        assert!(fake.run(&check, &ctx).await.unwrap().passed);
        assert_eq!(fake.runs(), ["port@shop", "port@shop", "port@shop"]);
    }
}
