//! Fault injection and the request log, for tests and demos.
//!
//! A [`FaultSpec`] makes the next `count` requests (optionally only those whose
//! path contains a substring) answer 503, hang, drop the connection or return
//! malformed JSON. [`Chaos`] injects the same faults at random, with a rate and
//! a seed, for chaos tests. The [`RequestRecord`] log captures what clients sent
//! (never the credentials themselves, only whether and which scheme), and which
//! fault each request got.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Answer `503 Service Unavailable`.
    Unavailable,
    /// Sleep for the given time (past the client's timeout), then answer normally.
    Hang {
        /// How long to sleep, in milliseconds.
        millis: u64,
    },
    /// Close the connection without writing a response.
    Drop,
    /// Answer 200 with a truncated, unparsable JSON body.
    MalformedJson,
}

impl FaultKind {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Unavailable => "unavailable",
            FaultKind::Hang { .. } => "hang",
            FaultKind::Drop => "drop",
            FaultKind::MalformedJson => "malformed_json",
        }
    }

    /// The hang duration, if this is a hang.
    pub fn hang(&self) -> Option<Duration> {
        match self {
            FaultKind::Hang { millis } => Some(Duration::from_millis(*millis)),
            _ => None,
        }
    }
}

/// "The next `count` requests [whose path contains `path_contains`] get `kind`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// The fault.
    pub kind: FaultKind,
    /// How many matching requests it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Only requests whose path (after any prefix) contains this substring.
    #[serde(default)]
    pub path_contains: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// A fault for the next `count` requests.
    pub fn new(kind: FaultKind, count: u32) -> Self {
        Self {
            kind,
            count,
            path_contains: None,
        }
    }

    /// Restricts the fault to paths containing `s`.
    pub fn on_path(mut self, s: impl Into<String>) -> Self {
        self.path_contains = Some(s.into());
        self
    }
}

/// "Each request [whose path contains `path_contains`] gets a fault with probability `rate`,
/// its kind drawn from `kinds`": random faults for chaos tests.
///
/// Repeat a kind in `kinds` to make it more likely. The draws come from a generator seeded
/// with `seed`, so one order of requests always meets the same faults. Queued
/// [`FaultSpec`]s go first: chaos only draws for a request that no queued fault claimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chaos {
    /// Probability in `[0, 1]` that a matching request gets a fault.
    pub rate: f64,
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
    /// The faults to draw from, uniformly (an empty list injects nothing).
    pub kinds: Vec<FaultKind>,
    /// Only requests whose path (after any prefix) contains this substring.
    #[serde(default)]
    pub path_contains: Option<String>,
}

/// Chaos in force, with its generator.
#[derive(Debug, Clone)]
struct ChaosState {
    chaos: Chaos,
    rng: fastrand::Rng,
}

/// Pending faults, consumed in insertion order, and the chaos in force, if any.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pending: Vec<FaultSpec>,
    chaos: Option<ChaosState>,
}

impl Faults {
    /// Queues a fault.
    pub fn push(&mut self, spec: FaultSpec) {
        if spec.count > 0 {
            self.pending.push(spec);
        }
    }

    /// Removes all pending faults and stops any chaos.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.chaos = None;
    }

    /// Pending faults.
    pub fn pending(&self) -> &[FaultSpec] {
        &self.pending
    }

    /// Starts `chaos` (replacing any chaos in force, its generator reseeded), or stops it
    /// with `None`. Queued faults are kept.
    pub fn set_chaos(&mut self, chaos: Option<Chaos>) {
        self.chaos = chaos.map(|chaos| ChaosState {
            rng: fastrand::Rng::with_seed(chaos.seed),
            chaos,
        });
    }

    /// The chaos in force.
    pub fn chaos(&self) -> Option<&Chaos> {
        self.chaos.as_ref().map(|state| &state.chaos)
    }

    /// Takes one fault for a request to `path`, if any applies: the first matching queued
    /// fault, else a draw of the chaos in force.
    pub fn take(&mut self, path: &str) -> Option<FaultKind> {
        let matches = |filter: &Option<String>| filter.as_deref().is_none_or(|s| path.contains(s));
        let Some(idx) = self.pending.iter().position(|f| matches(&f.path_contains)) else {
            let state = self.chaos.as_mut()?;
            if state.chaos.kinds.is_empty() || !matches(&state.chaos.path_contains) {
                return None;
            }
            // Draw both numbers every time, so the sequence depends only on the seed and the
            // number of matching requests.
            let hit = state.rng.f64() < state.chaos.rate;
            let kind = state.chaos.kinds[state.rng.usize(..state.chaos.kinds.len())];
            return hit.then_some(kind);
        };
        let spec = &mut self.pending[idx];
        let kind = spec.kind;
        spec.count -= 1;
        if spec.count == 0 {
            self.pending.remove(idx);
        }
        Some(kind)
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// 1-based sequence number.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path as sent (percent-encoding kept, prefix included).
    pub path: String,
    /// Raw query string as sent, if any.
    pub query: Option<String>,
    /// Selected headers: accept, content-type, user-agent (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Its scheme (`Basic`, `Bearer`), never the credential.
    pub auth_scheme: Option<String>,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// Response status; `None` when the connection was dropped (or is still hanging).
    pub status: Option<u16>,
    /// Injected fault label, if one applied.
    pub fault: Option<String>,
}

impl RequestRecord {
    /// `path?query`, as a client would have written it.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_by_path() {
        let mut f = Faults::default();
        f.push(FaultSpec::new(FaultKind::Unavailable, 2).on_path("/matrix"));
        f.push(FaultSpec::new(FaultKind::Drop, 1));
        assert_eq!(f.take("/environments"), Some(FaultKind::Drop));
        assert_eq!(f.take("/environments"), None);
        assert_eq!(f.take("/matrix"), Some(FaultKind::Unavailable));
        assert_eq!(f.take("/matrix"), Some(FaultKind::Unavailable));
        assert_eq!(f.take("/matrix"), None);
        let parsed: FaultSpec =
            serde_json::from_str(r#"{"kind":{"hang":{"millis":50}},"count":3}"#).expect("parses");
        assert_eq!(parsed.kind.hang(), Some(Duration::from_millis(50)));
        let parsed: FaultSpec =
            serde_json::from_str(r#"{"kind":"unavailable","pathContains":"/x"}"#).expect("parses");
        assert_eq!(
            (parsed.count, parsed.path_contains.as_deref()),
            (1, Some("/x"))
        );
    }

    /// The faults `n` requests to `path` meet.
    fn draws(faults: &mut Faults, path: &str, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| faults.take(path)).collect()
    }

    #[test]
    fn chaos_draws_at_its_rate_reproducibly_after_queued_faults() {
        let chaos = Chaos {
            rate: 0.3,
            seed: 42,
            kinds: vec![FaultKind::Unavailable, FaultKind::Drop],
            path_contains: Some("/matrix".into()),
        };
        let mut f = Faults::default();
        f.set_chaos(Some(chaos.clone()));
        let first = draws(&mut f, "/matrix", 1000);
        let hits = first.iter().flatten().count();
        assert!(
            (200..400).contains(&hits),
            "{hits} faults in 1000 at rate 0.3"
        );
        assert!(
            first.contains(&Some(FaultKind::Unavailable)) && first.contains(&Some(FaultKind::Drop))
        );
        assert_eq!(
            draws(&mut f, "/environments", 100),
            vec![None; 100],
            "path filter"
        );

        // The same seed gives the same sequence; a queued fault goes first and consumes no draw.
        f.set_chaos(Some(chaos.clone()));
        f.push(FaultSpec::new(FaultKind::MalformedJson, 1));
        assert_eq!(f.take("/matrix"), Some(FaultKind::MalformedJson));
        assert_eq!(draws(&mut f, "/matrix", 1000), first);

        for (rate, expected) in [(0.0, None), (1.0, Some(FaultKind::Unavailable))] {
            f.set_chaos(Some(Chaos {
                rate,
                kinds: vec![FaultKind::Unavailable],
                ..chaos.clone()
            }));
            assert_eq!(
                draws(&mut f, "/matrix", 50),
                vec![expected; 50],
                "rate {rate}"
            );
        }
        f.set_chaos(Some(Chaos {
            kinds: Vec::new(),
            rate: 1.0,
            ..chaos.clone()
        }));
        assert_eq!(f.take("/matrix"), None, "no kinds, no faults");
        f.set_chaos(Some(chaos));
        f.clear();
        assert_eq!(f.take("/matrix"), None, "clear stops chaos");
        assert_eq!(f.chaos(), None);
        let parsed: Chaos =
            serde_json::from_str(r#"{"rate":0.5,"kinds":["drop",{"hang":{"millis":10}}]}"#)
                .expect("parses");
        assert_eq!((parsed.seed, parsed.kinds.len()), (0, 2));
    }
}
