//! Retry delays as a pure iterator, and the parsing of `Retry-After`.
//!
//! Nothing here sleeps or reads the clock: [`Backoff`] yields the delay before each retry and
//! the HTTP adapter does the sleeping, so the sequence is tested without time.

use std::time::Duration;

/// The longest delay the backoff ever yields, whatever the attempt number.
pub const MAX_BACKOFF_DELAY: Duration = Duration::from_secs(10);

/// The longest `Retry-After` the client honours; longer requests are capped to this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// Exponential backoff with "equal jitter": the n-th delay (from 0) is drawn uniformly from
/// `[d/2, d]` where `d = min(base * 2^n, max)`.
///
/// Infinite; the caller bounds the number of attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    retry: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff starting at `base`, capped at `max`, with a randomly seeded jitter.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self::with_rng(base, max, fastrand::Rng::new())
    }

    /// Like [`Backoff::new`] with a given random generator (seed it for reproducible tests).
    pub fn with_rng(base: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        Backoff {
            base,
            max: max.max(base),
            retry: 0,
            rng,
        }
    }

    /// The un-jittered ceiling of the `retry`-th delay (from 0).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.ceiling(self.retry);
        self.retry = self.retry.saturating_add(1);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        let jitter = Duration::from_micros(self.rng.u64(0..=spread));
        Some(half + jitter)
    }
}

/// Parses a `Retry-After` header given in seconds, capped at [`RETRY_AFTER_CAP`].
///
/// The HTTP-date form and garbage give `None`: the caller falls back to its backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_band_and_stop_at_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let backoff = Backoff::with_rng(base, max, fastrand::Rng::with_seed(7));
        let ceilings: Vec<u128> = (0..6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        for (n, delay) in backoff.clone().take(6).enumerate() {
            let ceiling = backoff.ceiling(n as u32);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{n}: {delay:?}");
        }
    }

    #[test]
    fn same_seed_same_sequence_and_jitter_varies() {
        let make = || {
            Backoff::with_rng(
                Duration::from_millis(250),
                MAX_BACKOFF_DELAY,
                fastrand::Rng::with_seed(42),
            )
        };
        let a: Vec<Duration> = make().take(5).collect();
        let b: Vec<Duration> = make().take(5).collect();
        assert_eq!(a, b);
        let firsts: std::collections::BTreeSet<Duration> = (0..20)
            .map(|seed| {
                Backoff::with_rng(
                    Duration::from_millis(250),
                    MAX_BACKOFF_DELAY,
                    fastrand::Rng::with_seed(seed),
                )
                .next()
                .unwrap()
            })
            .collect();
        assert!(firsts.len() > 1, "jitter never varied");
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_seconds_are_parsed_and_capped() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400"), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
