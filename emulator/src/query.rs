//! Pure parsing of `/matrix` and `/can-i-deploy` query strings with Rack's
//! nested-query rules.
//!
//! Rack groups `q[][key]=value` pairs into selector objects: a pair is added to
//! the last object unless that object already has `key`, in which case a new
//! object starts. `q[]key=value` (flat encoding) is treated the same. Brackets
//! may be raw or percent-encoded, and spaces may be `+` or `%20`.

use std::collections::BTreeMap;

use crate::model::FieldErrors;

/// One version selector (`q[]` or `ignore[]` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Pacticipant name (required by validation, optional in parsing).
    pub pacticipant: Option<String>,
    /// Version number.
    pub version: Option<String>,
    /// `latest=true`.
    pub latest: bool,
    /// Tag.
    pub tag: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// Environment name.
    pub environment: Option<String>,
    /// `mainBranch=true`.
    pub main_branch: bool,
}

/// The `latestby` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestBy {
    /// Latest row per consumer version + provider version.
    Cvpv,
    /// Latest row per consumer version + provider.
    Cvp,
    /// Latest row per consumer + provider.
    Cp,
}

/// A parsed matrix query (also built from a can-i-deploy query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatrixQuery {
    /// Specified selectors, in order.
    pub selectors: Vec<Selector>,
    /// Ignore selectors.
    pub ignore: Vec<Selector>,
    /// Row collapsing.
    pub latestby: Option<LatestBy>,
    /// Target: latest versions of integrated apps.
    pub latest: bool,
    /// Target: latest version with this tag.
    pub tag: Option<String>,
    /// Target: versions currently in this environment.
    pub environment: Option<String>,
    /// Target: latest main-branch versions.
    pub main_branch: bool,
    /// Row filter on verification success (`None` inside = unverified).
    pub success: Option<Vec<Option<bool>>>,
    /// Maximum number of rows, applied to the newest rows before anything is decided.
    /// `/matrix` always has one ([`MATRIX_DEFAULT_LIMIT`] when the query names none; a value
    /// below 1 is a validation error); `/can-i-deploy` has none.
    pub limit: Option<i64>,
}

/// The rows `/matrix` keeps when the query has no `limit` (or an empty one), as the broker's
/// `parse_query.rb` does. `/can-i-deploy` applies no limit.
pub const MATRIX_DEFAULT_LIMIT: i64 = 100;

impl MatrixQuery {
    /// Whether a target (latest/tag/environment/mainBranch) was given, which
    /// makes the broker infer the integrated applications.
    pub fn has_target(&self) -> bool {
        self.latest || self.tag.is_some() || self.environment.is_some() || self.main_branch
    }
}

/// One decoded query parameter, classified by its Rack key shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// `name=value`
    Plain(String),
    /// `name[]=value`
    Array(String),
    /// `name[][child]=value` or `name[]child=value`
    ArrayHash(String, String),
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    String::from_utf8_lossy(&urlencoding::decode_binary(plus.as_bytes())).into_owned()
}

fn classify(key: &str) -> Key {
    if let Some(idx) = key.find("[]") {
        let base = key[..idx].to_string();
        let rest = &key[idx + 2..];
        if rest.is_empty() {
            return Key::Array(base);
        }
        let child = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(rest);
        return Key::ArrayHash(base, child.to_string());
    }
    Key::Plain(key.to_string())
}

/// Rack-style decoded parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    /// `name=value` (last wins).
    pub plain: BTreeMap<String, String>,
    /// `name[]=value` in order.
    pub arrays: BTreeMap<String, Vec<String>>,
    /// `name[][k]=v` grouped into objects by the Rack rule.
    pub hashes: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// Parses a raw query string (without `?`) with Rack's rules.
pub fn parse_params(raw: &str) -> Params {
    let mut p = Params::default();
    for pair in raw.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match classify(&k) {
            Key::Plain(name) => {
                p.plain.insert(name, v);
            }
            Key::Array(name) => p.arrays.entry(name).or_default().push(v),
            Key::ArrayHash(name, child) => {
                let list = p.hashes.entry(name).or_default();
                match list.last_mut() {
                    Some(last) if !last.contains_key(&child) => {
                        last.insert(child, v);
                    }
                    _ => list.push(BTreeMap::from([(child, v)])),
                }
            }
        }
    }
    p
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true")
}

fn non_blank(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}

fn selector_from(h: &BTreeMap<String, String>) -> Selector {
    Selector {
        pacticipant: non_blank(h.get("pacticipant")),
        version: non_blank(h.get("version")),
        latest: truthy(h.get("latest")),
        tag: non_blank(h.get("tag")),
        branch: non_blank(h.get("branch")),
        environment: non_blank(h.get("environment")),
        main_branch: truthy(h.get("mainBranch")),
    }
}

fn ignore_selectors(p: &Params) -> Vec<Selector> {
    let mut out: Vec<Selector> = p
        .hashes
        .get("ignore")
        .map(|l| l.iter().map(selector_from).collect())
        .unwrap_or_default();
    for name in p.arrays.get("ignore").into_iter().flatten() {
        out.push(Selector {
            pacticipant: Some(name.clone()),
            ..Selector::default()
        });
    }
    out
}

/// Ruby's `String#to_i`: optional leading whitespace and sign, then the leading digits;
/// anything else is 0 (saturating instead of growing into a bignum).
fn ruby_to_i(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative { -value } else { value }
}

/// Parses a `/matrix` query string. Errors are the broker's array-form messages; the parse
/// itself accepts any query (validation is [`crate::matrix::validate`]).
pub fn parse_matrix(raw: &str) -> Result<MatrixQuery, Vec<String>> {
    let p = parse_params(raw);
    let selectors = p
        .hashes
        .get("q")
        .map(|l| l.iter().map(selector_from).collect())
        .unwrap_or_default();
    let latestby = match p.plain.get("latestby").map(String::as_str) {
        Some("cvpv") => Some(LatestBy::Cvpv),
        Some("cvp") => Some(LatestBy::Cvp),
        Some("cp") => Some(LatestBy::Cp),
        _ => None,
    };
    let success_values = p
        .arrays
        .get("success")
        .cloned()
        .or_else(|| p.plain.get("success").map(|s| vec![s.clone()]));
    let success = success_values.map(|vals| {
        vals.iter()
            .map(|v| match v.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })
            .collect()
    });
    // The broker keeps the raw string and validates `to_i < 1` later, with the other options.
    let limit = match p.plain.get("limit").filter(|l| !l.is_empty()) {
        None => MATRIX_DEFAULT_LIMIT,
        Some(l) => ruby_to_i(l),
    };
    Ok(MatrixQuery {
        selectors,
        ignore: ignore_selectors(&p),
        latestby,
        latest: truthy(p.plain.get("latest")),
        tag: non_blank(p.plain.get("tag")),
        environment: non_blank(p.plain.get("environment")),
        main_branch: truthy(p.plain.get("mainBranch")),
        success,
        limit: Some(limit),
    })
}

/// Parses a `/can-i-deploy` query string. Errors are the broker's hash form;
/// existence checks (pacticipant, environment) are done by the caller.
pub fn parse_can_i_deploy(raw: &str) -> Result<MatrixQuery, FieldErrors> {
    let p = parse_params(raw);
    let mut errors = FieldErrors::new();
    let mut add = |k: &str, m: &str| errors.entry(k.to_string()).or_default().push(m.to_string());
    let pacticipant = non_blank(p.plain.get("pacticipant"));
    let version = non_blank(p.plain.get("version"));
    let environment = non_blank(p.plain.get("environment"));
    let to = non_blank(p.plain.get("to"));
    if pacticipant.is_none() {
        add("pacticipant", "is missing");
    }
    if version.is_none() {
        add("version", "is missing");
    }
    match (&environment, &to) {
        (Some(_), Some(_)) => add("", "Cannot specify both a 'to' tag and an environment."),
        (None, None) => add("", "Must specify either an environment or a 'to' tag."),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let selector = Selector {
        pacticipant,
        version,
        ..Selector::default()
    };
    let (latestby, latest) = if environment.is_some() {
        (LatestBy::Cvpv, false)
    } else {
        (LatestBy::Cvp, true)
    };
    Ok(MatrixQuery {
        selectors: vec![selector],
        ignore: ignore_selectors(&p),
        latestby: Some(latestby),
        latest,
        tag: to,
        environment,
        ..MatrixQuery::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: &str, v: Option<&str>) -> Selector {
        Selector {
            pacticipant: Some(p.into()),
            version: v.map(Into::into),
            ..Selector::default()
        }
    }

    #[test]
    fn groups_selectors_pacticipant_first() {
        let q = parse_matrix("q[][pacticipant]=A&q[][version]=1&q[][pacticipant]=B&q[][version]=2&latestby=cvpv&environment=test")
            .expect("parses");
        assert_eq!(q.selectors, vec![sel("A", Some("1")), sel("B", Some("2"))]);
        assert_eq!(q.latestby, Some(LatestBy::Cvpv));
        assert_eq!(q.environment.as_deref(), Some("test"));
        assert!(q.has_target());
    }

    #[test]
    fn encoded_brackets_flat_form_and_spaces() {
        let q = parse_matrix("q%5B%5D%5Bpacticipant%5D=Foo+Thing&q%5B%5D%5Bversion%5D=1.0%2Bbuild%2F7&q[]pacticipant=Bar%20Baz")
            .expect("parses");
        assert_eq!(
            q.selectors,
            vec![sel("Foo Thing", Some("1.0+build/7")), sel("Bar Baz", None)]
        );
    }

    #[test]
    fn version_before_pacticipant_follows_rack_rule() {
        // Rack adds `pacticipant` to the object holding only `version`.
        let q = parse_matrix("q[][version]=1&q[][pacticipant]=A&q[][version]=2").expect("parses");
        assert_eq!(
            q.selectors,
            vec![
                sel("A", Some("1")),
                Selector {
                    version: Some("2".into()),
                    ..Selector::default()
                }
            ]
        );
    }

    #[test]
    fn ignore_success_limit_and_latest() {
        let q = parse_matrix("q[][pacticipant]=Foo&ignore[][pacticipant]=Baz&ignore[][pacticipant]=Qux&ignore[][version]=7&success[]=true&success[]=&latest=true&tag=prod&limit=5")
            .expect("parses");
        assert_eq!(q.ignore, vec![sel("Baz", None), sel("Qux", Some("7"))]);
        assert_eq!(q.success, Some(vec![Some(true), None]));
        assert!(q.latest);
        assert_eq!(q.tag.as_deref(), Some("prod"));
        assert_eq!(q.limit, Some(5));
        // No limit, or an empty one, is the broker's default of 100; garbage is Ruby's to_i.
        for (query, limit) in [
            ("", MATRIX_DEFAULT_LIMIT),
            ("limit=", MATRIX_DEFAULT_LIMIT),
            ("limit=0", 0),
            ("limit=-3", -3),
            ("limit=12abc", 12),
            ("limit=abc", 0),
            ("limit=99999999999999999999999", i64::MAX),
        ] {
            assert_eq!(
                parse_matrix(query).expect("parses").limit,
                Some(limit),
                "{query}"
            );
        }
        assert_eq!(
            parse_can_i_deploy("pacticipant=Foo&version=1&environment=e&limit=5")
                .expect("parses")
                .limit,
            None
        );
    }

    #[test]
    fn can_i_deploy_forms() {
        let q = parse_can_i_deploy("pacticipant=Foo&version=1&environment=production&ignore[]=Baz")
            .expect("parses");
        assert_eq!(q.selectors, vec![sel("Foo", Some("1"))]);
        assert_eq!(q.latestby, Some(LatestBy::Cvpv));
        assert_eq!(q.ignore, vec![sel("Baz", None)]);
        let q = parse_can_i_deploy("pacticipant=Foo&version=1&to=prod").expect("parses");
        assert_eq!(
            (q.tag.as_deref(), q.latest, q.latestby),
            (Some("prod"), true, Some(LatestBy::Cvp))
        );
        let e = parse_can_i_deploy("pacticipant=Foo").expect_err("invalid");
        assert_eq!(e["version"], vec!["is missing".to_string()]);
        assert_eq!(
            e[""],
            vec!["Must specify either an environment or a 'to' tag.".to_string()]
        );
        let e = parse_can_i_deploy("pacticipant=Foo&version=1&to=a&environment=b")
            .expect_err("invalid");
        assert_eq!(
            e[""],
            vec!["Cannot specify both a 'to' tag and an environment.".to_string()]
        );
    }
}
