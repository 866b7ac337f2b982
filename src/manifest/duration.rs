//! The one duration grammar of a manifest (issue 14 item 9), shared by the parser and the
//! JSON Schema, and the bounds of each duration field.
//!
//! A duration is a whole number and a unit, or several, largest unit first, each unit at most
//! once: `500ms`, `30s`, `2m`, `1h30m`, `1m30s500ms`. Units are `h`, `m`, `s` and `ms`; nothing
//! else (no spaces, no `min`, no `d` or `y`, no fractions, no bare `0`). [`PATTERN`] is that
//! grammar as a regular expression, emitted into the schema, and [`parse`] is its hand-written
//! twin; a test runs one table through both. [`format`] writes the shortest form back, which
//! [`parse`] reads again (the generation hash is computed on it, so it matches what
//! `humantime` wrote before for every duration under a day).
//!
//! The grammar says what a duration looks like; [`Bounds`] say how long each field may be. The
//! bounds are checked by `rules.rs`, naming the field and the bound, because a regular
//! expression cannot compare durations.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The duration grammar as an ECMA-262 regular expression (the schema's `pattern`, together
/// with `minLength: 2`, which refuses the empty string the pattern alone would accept).
pub const PATTERN: &str = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$";

/// The grammar in words, for error messages and the schema's description.
pub const GRAMMAR: &str = "a whole number and a unit (ms, s, m or h), or several from the largest unit down, \
     e.g. 500ms, 30s, 2m, 1h30m";

/// A duration written as `30s`, `2m`, `1h30m`, `500ms` (see the module doc for the grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// The range a duration field accepts, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The shortest accepted value.
    pub min: Duration,
    /// The longest accepted value.
    pub max: Duration,
}

impl Bounds {
    /// `spec.compose.waitTimeout`: 1s to 1h.
    pub const WAIT_TIMEOUT: Bounds = Bounds::new(1_000, 3_600_000);
    /// `spec.smoke[].timeout`, per attempt: 100ms to 10m.
    pub const SMOKE_TIMEOUT: Bounds = Bounds::new(100, 600_000);
    /// `spec.smoke[].interval`, between attempts: 100ms to 10m.
    pub const SMOKE_INTERVAL: Bounds = Bounds::new(100, 600_000);
    /// `spec.policy.gateRetry.initial`: 1s to 1h.
    pub const GATE_RETRY_INITIAL: Bounds = Bounds::new(1_000, 3_600_000);
    /// `spec.policy.gateRetry.max`: 1s to 12h.
    pub const GATE_RETRY_MAX: Bounds = Bounds::new(1_000, 12 * 3_600_000);
    /// `spec.policy.minReady`: 0s (off) to 10m.
    pub const MIN_READY: Bounds = Bounds::new(0, 600_000);

    const fn new(min_ms: u64, max_ms: u64) -> Bounds {
        Bounds {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    /// `None` when `value` is in range; otherwise the error message, naming the bounds.
    pub fn check(self, value: Duration) -> Option<String> {
        (value < self.min || value > self.max).then(|| {
            format!(
                "{} is out of bounds: must be between {} and {}",
                format(value),
                format(self.min),
                format(self.max)
            )
        })
    }
}

/// Parses one duration of the grammar; the error names the text and the grammar.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: write {GRAMMAR}");
    // Units from the largest down; a component must use a unit after the previous one's.
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
    let mut rest = text;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        // `ms` before `m`: `5ms` is milliseconds, not minutes followed by `s`.
        let (index, unit_len, unit_ms) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| after.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .map(|(i, (unit, ms))| (i, unit.len(), *ms))
            .ok_or_else(invalid)?;
        let too_long = || format!("invalid duration {text:?}: too long");
        let value: u64 = number.parse().map_err(|_| too_long())?;
        let component = value.checked_mul(unit_ms).ok_or_else(too_long)?;
        total_ms = total_ms.checked_add(component).ok_or_else(too_long)?;
        next_unit = index + 1;
        rest = &after[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses `30s`, `2m`, `1h30m`, `500ms` into a [`DurationSpec`]; the error says what to write.
pub fn parse_duration(text: &str) -> Result<DurationSpec, String> {
    parse(text).map(DurationSpec)
}

/// The shortest text of the grammar for `duration` (`1m30s`, `0s`); sub-millisecond parts
/// are dropped (a manifest cannot write them).
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, unit_ms) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = ms / unit_ms;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms -= n * unit_ms;
        }
    }
    out
}

impl Serialize for DurationSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for DurationSpec {
    /// Inlined into every field, so each field's own description is the one an editor shows
    /// (a shared definition behind `$ref` made hovers show this generic text instead).
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "minLength": 2,
            "description": format!("A duration: {GRAMMAR}.")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both the parser and the schema's pattern decide each of these the same way.
    const TABLE: &[(&str, Option<u64>)] = &[
        ("0s", Some(0)),
        ("0ms", Some(0)),
        ("500ms", Some(500)),
        ("30s", Some(30_000)),
        ("2m", Some(120_000)),
        ("90m", Some(5_400_000)),
        ("1h", Some(3_600_000)),
        ("1h30m", Some(5_400_000)),
        ("1m30s", Some(90_000)),
        ("1s500ms", Some(1_500)),
        ("1h2m3s4ms", Some(3_723_004)),
        ("007s", Some(7_000)),
        ("", None),
        ("0", None),
        ("30", None),
        ("s", None),
        ("2min", None),
        ("5 minutes", None),
        ("1h 30m", None),
        (" 5s", None),
        ("5s ", None),
        ("1y", None),
        ("1d", None),
        ("1w", None),
        ("1us", None),
        ("1ns", None),
        ("1.5s", None),
        ("-1s", None),
        ("+1s", None),
        ("1S", None),
        ("1M", None),
        ("30m1h", None),
        ("1s1s", None),
        ("1ms1s", None),
        ("1m1h", None),
        ("1sms", None),
        ("1hms", None),
        ("５s", None),
    ];

    #[test]
    fn the_parser_reads_the_grammar_and_nothing_else() {
        for (text, expected) in TABLE {
            let parsed = parse(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(parsed, *expected, "{text:?}");
        }
    }

    #[test]
    fn the_schema_pattern_is_the_same_grammar() {
        let schema = serde_json::json!({"type": "string", "pattern": PATTERN, "minLength": 2});
        let validator = jsonschema::validator_for(&schema).unwrap();
        for (text, expected) in TABLE {
            assert_eq!(
                validator.is_valid(&serde_json::json!(text)),
                expected.is_some(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_error_names_the_text_and_the_grammar() {
        let error = parse("2min").unwrap_err();
        assert_eq!(
            error,
            "invalid duration \"2min\": write a whole number and a unit (ms, s, m or h), or several \
             from the largest unit down, e.g. 500ms, 30s, 2m, 1h30m"
        );
        assert!(
            parse("99999999999999999999s")
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            parse("18446744073709551615h")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn format_round_trips_and_matches_what_humantime_wrote_under_a_day() {
        for ms in [
            0u64, 1, 500, 1_000, 1_500, 5_000, 59_999, 60_000, 90_000, 120_000, 3_600_000,
            3_723_004, 5_400_000, 86_399_999,
        ] {
            let duration = Duration::from_millis(ms);
            let text = format(duration);
            assert_eq!(parse(&text), Ok(duration), "{text}");
            // The generation hash is computed on this text: it must not change for manifests
            // written before this grammar.
            let before = humantime::format_duration(duration)
                .to_string()
                .replace(' ', "");
            assert_eq!(text, before, "{ms} ms");
        }
        assert_eq!(format(Duration::from_secs(26 * 3600)), "26h");
        assert_eq!(format(Duration::from_nanos(1_500_000)), "1ms");
    }

    #[test]
    fn bounds_include_both_ends_and_name_them() {
        let bounds = Bounds::WAIT_TIMEOUT;
        assert_eq!(bounds.check(Duration::from_secs(1)), None);
        assert_eq!(bounds.check(Duration::from_secs(3600)), None);
        assert_eq!(
            bounds.check(Duration::from_millis(999)),
            Some("999ms is out of bounds: must be between 1s and 1h".into())
        );
        assert_eq!(
            bounds.check(Duration::from_secs(3601)),
            Some("1h1s is out of bounds: must be between 1s and 1h".into())
        );
        assert_eq!(Bounds::MIN_READY.check(Duration::ZERO), None);
        assert!(Bounds::SMOKE_INTERVAL.check(Duration::ZERO).is_some());
    }
}
