//! Counting broker requests by relation and outcome, and the hook the metrics module uses.
//!
//! Every HTTP attempt (retries included) is counted once. Outcomes are bounded labels: the
//! status code as a string ("200", "503") or "error" when no response arrived.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Told about every HTTP request the client makes; implemented by the metrics module.
pub trait RequestObserver: Send + Sync {
    /// One request ended. `method` is "GET"/"POST", `relation` the HAL relation (or "matrix",
    /// "index"), `status` the HTTP status or `None` when no response arrived (connect error,
    /// timeout), `elapsed` the time until the body was read or the error occurred.
    fn observe(&self, method: &str, relation: &str, status: Option<u16>, elapsed: Duration);
}

/// The label for an optional status: "200", "503", or "error".
pub fn status_label(status: Option<u16>) -> String {
    match status {
        Some(code) => code.to_string(),
        None => "error".to_string(),
    }
}

/// In-memory request counts, kept by the client for tests, `doctor` and the closing figures.
#[derive(Debug, Default)]
pub struct RequestStats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default, Clone)]
struct StatsInner {
    counts: BTreeMap<(String, String), u64>,
    latency: BTreeMap<String, Duration>,
}

/// A copy of the counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// (relation, outcome) -> number of requests.
    pub counts: BTreeMap<(String, String), u64>,
    /// relation -> summed latency of its requests.
    pub latency: BTreeMap<String, Duration>,
}

impl StatsSnapshot {
    /// Requests for `relation` with `outcome` ("200", "503", "error").
    pub fn count(&self, relation: &str, outcome: &str) -> u64 {
        self.counts
            .get(&(relation.to_string(), outcome.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All requests for `relation`, whatever the outcome.
    pub fn relation_total(&self, relation: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((r, _), _)| r == relation)
            .map(|(_, n)| n)
            .sum()
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl RequestStats {
    /// Counts one request.
    pub fn record(&self, relation: &str, status: Option<u16>, elapsed: Duration) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *inner
            .counts
            .entry((relation.to_string(), status_label(status)))
            .or_insert(0) += 1;
        *inner.latency.entry(relation.to_string()).or_default() += elapsed;
    }

    /// A copy of the current counts.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StatsSnapshot {
            counts: inner.counts.clone(),
            latency: inner.latency.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_relation_and_outcome() {
        let stats = RequestStats::default();
        stats.record("matrix", Some(503), Duration::from_millis(5));
        stats.record("matrix", Some(200), Duration::from_millis(7));
        stats.record("matrix", Some(200), Duration::from_millis(1));
        stats.record("index", None, Duration::from_millis(2));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.count("matrix", "200"), 2);
        assert_eq!(snapshot.count("matrix", "503"), 1);
        assert_eq!(snapshot.count("index", "error"), 1);
        assert_eq!(snapshot.relation_total("matrix"), 3);
        assert_eq!(snapshot.total(), 4);
        assert_eq!(snapshot.latency["matrix"], Duration::from_millis(13));
    }
}
