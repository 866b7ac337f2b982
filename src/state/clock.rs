//! The `Clock` port: every timestamp c2quay writes comes from here, so tests can fix time.
//!
//! Also the RFC 3339 (millisecond) formatting used in every state file, and serde helpers
//! (`#[serde(with = "rfc3339")]` and friends) for `SystemTime` fields.

#[cfg(any(test, feature = "test-support"))]
use std::sync::Mutex;
#[cfg(any(test, feature = "test-support"))]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time. Durations and timeouts use tokio's clock instead.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock for tests: fixed until told to move.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug)]
pub struct FixedClock(Mutex<SystemTime>);

#[cfg(any(test, feature = "test-support"))]
impl FixedClock {
    /// A clock that reads `at` until [`set`](Self::set) or [`advance`](Self::advance) is called.
    pub fn new(at: SystemTime) -> Self {
        FixedClock(Mutex::new(at))
    }

    /// A clock at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Formats `t` as RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 timestamp (as written by [`format_rfc3339`]).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(s)
}

/// A compact, sortable, file-name-safe form of `t`: `20260102T030405.678Z`.
pub fn file_timestamp(t: SystemTime) -> String {
    format_rfc3339(t)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// Whole seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serde helper: a `SystemTime` as an RFC 3339 string.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::SystemTime;

    /// Serializes `t` as RFC 3339 with milliseconds.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    /// Parses an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map_err(|e| D::Error::custom(format!("bad timestamp {s:?}: {e}")))
    }
}

/// Serde helper: an `Option<SystemTime>` as an RFC 3339 string or `null`.
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::SystemTime;

    /// Serializes `t` as RFC 3339 with milliseconds, or `null`.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    /// Parses an RFC 3339 string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_rfc3339(&s)
                .map(Some)
                .map_err(|e| D::Error::custom(format!("bad timestamp {s:?}: {e}"))),
            None => Ok(None),
        }
    }
}

/// Serde helper: a `Vec<SystemTime>` as a list of RFC 3339 strings.
pub mod rfc3339_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::SerializeSeq};
    use std::time::SystemTime;

    /// Serializes each time as RFC 3339 with milliseconds.
    pub fn serialize<S: Serializer>(ts: &[SystemTime], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ts.len()))?;
        for t in ts {
            seq.serialize_element(&super::format_rfc3339(*t))?;
        }
        seq.end()
    }

    /// Parses a list of RFC 3339 strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SystemTime>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                super::parse_rfc3339(s)
                    .map_err(|e| D::Error::custom(format!("bad timestamp {s:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_is_fixed_until_moved() {
        let c = FixedClock::at_unix(1_767_323_045);
        assert_eq!(c.now(), c.now());
        c.advance(Duration::from_millis(1500));
        assert_eq!(format_rfc3339(c.now()), "2026-01-02T03:04:06.500Z");
        c.set(UNIX_EPOCH);
        assert_eq!(c.now(), UNIX_EPOCH);
    }

    #[test]
    fn system_clock_moves() {
        let before = SystemTime::now();
        assert!(SystemClock.now() >= before);
    }

    #[test]
    fn rfc3339_round_trips_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        let s = format_rfc3339(t);
        assert_eq!(s, "2026-01-02T03:04:05.678Z");
        assert_eq!(parse_rfc3339(&s).unwrap(), t);
        assert_eq!(file_timestamp(t), "20260102T030405.678Z");
        assert_eq!(unix_secs(t), 1_767_323_045);
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "rfc3339")]
        a: SystemTime,
        #[serde(with = "rfc3339_opt")]
        b: Option<SystemTime>,
        #[serde(with = "rfc3339_vec")]
        c: Vec<SystemTime>,
    }

    #[test]
    fn serde_helpers_write_rfc3339_strings() {
        let t = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let v = T {
            a: t,
            b: None,
            c: vec![t],
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"a":"2026-01-02T03:04:05.000Z","b":null,"c":["2026-01-02T03:04:05.000Z"]}"#
        );
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
        let bad = serde_json::from_str::<T>(r#"{"a":"yesterday","b":null,"c":[]}"#).unwrap_err();
        assert!(bad.to_string().contains("yesterday"), "{bad}");
    }
}
