//! Issue 14 item 9, "Manifests that agree with their schema", through the real binary: one
//! duration grammar with bounds, "exactly one of http/tcp/exec" and `rollback: true|false` in
//! parser and schema alike, field descriptions that reach an editor's hover, every structural
//! error of a file in one run, and an empty desired directory refused by `validate` unless
//! `--allow-empty`.
//!
//! Each test writes a copy of `desired/shop-staging.yaml` with one change, runs
//! `c2quay validate` on it and checks the same text against the schema `c2quay schema` prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn c2quay(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the c2quay binary runs")
}

/// `desired/shop-staging.yaml` with its Compose directory made absolute, and `from` replaced
/// by `to` (which must occur).
fn shop(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(root().join("desired/shop-staging.yaml")).unwrap();
    let examples = root().join("examples/shop");
    let text = text.replace(
        "directory: ../examples/shop",
        &format!("directory: {}", examples.display()),
    );
    assert!(text.contains(from), "{from:?} is not in shop-staging.yaml");
    text.replace(from, to)
}

/// `c2quay validate` of one manifest in a directory of its own: (exit code, stdout).
fn validate(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("desired")).unwrap();
    std::fs::write(dir.path().join("desired/shop.yaml"), text).unwrap();
    let output = c2quay(&["validate", "desired"], dir.path());
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// Whether the schema `c2quay schema` prints accepts `text`.
fn schema_accepts(text: &str) -> bool {
    let output = c2quay(&["schema"], &root());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    validator.is_valid(&serde_json::to_value(yaml).unwrap())
}

const GRAMMAR: &str = "write a whole number and a unit (ms, s, m or h), or several from the largest unit down, e.g. 500ms, 30s, 2m, 1h30m";

#[test]
fn durations_outside_the_one_grammar_are_refused_by_validate_and_schema_alike() {
    for bad in ["2min", "5 minutes", "1y", "1d", "90", "1.5s", "30m1h"] {
        let text = shop("waitTimeout: 2m  ", &format!("waitTimeout: {bad}  "));
        let (code, out) = validate(&text);
        assert_eq!(code, Some(1), "{bad}: {out}");
        let expected = format!(
            "desired/shop.yaml:16:18: spec.compose.waitTimeout: invalid duration \"{bad}\": {GRAMMAR}"
        );
        assert!(
            out.contains(&expected),
            "{bad}: expected\n{expected}\nin\n{out}"
        );
        assert!(!schema_accepts(&text), "the schema accepts {bad}");
    }
    for good in ["1h", "59m30s", "90s", "1m30s500ms"] {
        let text = shop("waitTimeout: 2m  ", &format!("waitTimeout: {good}  "));
        let (code, out) = validate(&text);
        assert_eq!(code, Some(0), "{good}: {out}");
        assert!(schema_accepts(&text), "the schema refuses {good}");
    }
}

#[test]
fn durations_out_of_their_field_s_bounds_are_refused_naming_field_and_bounds() {
    let cases = [
        (
            "waitTimeout: 2m  ",
            "waitTimeout: 2h  ",
            "16:5: spec.compose.waitTimeout: 2h is out of bounds: must be between 1s and 1h",
        ),
        (
            "timeout: 5s",
            "timeout: 50ms",
            "39:7: spec.smoke[0].timeout: 50ms is out of bounds: must be between 100ms and 10m",
        ),
        (
            "gateRetry: { initial: 5s, max: 2m }",
            "gateRetry: { initial: 5s, max: 1d }",
            "50:36: spec.policy.gateRetry.max: invalid duration \"1d\"",
        ),
        (
            "gateRetry: { initial: 5s, max: 2m }",
            "gateRetry: { initial: 5s, max: 13h }",
            "50:31: spec.policy.gateRetry.max: 13h is out of bounds: must be between 1s and 12h",
        ),
        (
            "selfHeal: true",
            "selfHeal: true\n    minReady: 11m",
            "50:5: spec.policy.minReady: 11m is out of bounds: must be between 0s and 10m",
        ),
    ];
    for (from, to, expected) in cases {
        let (code, out) = validate(&shop(from, to));
        assert_eq!(code, Some(1), "{to}: {out}");
        assert!(
            out.contains(&format!("desired/shop.yaml:{expected}")),
            "{to}: expected\n{expected}\nin\n{out}"
        );
    }
}

#[test]
fn a_smoke_check_with_two_kinds_or_none_is_refused_by_the_schema_too() {
    let two = shop(
        "      tcp: { address: \"127.0.0.1:18081\" }\n",
        "      tcp: { address: \"127.0.0.1:18081\" }\n      exec: { command: [\"true\"] }\n",
    );
    let none = shop("      tcp: { address: \"127.0.0.1:18081\" }\n", "");
    for (text, found) in [(&two, "tcp and exec"), (&none, "none")] {
        let (code, out) = validate(text);
        assert_eq!(code, Some(1), "{out}");
        let expected = format!(
            "desired/shop.yaml:42:5: spec.smoke[1]: a smoke check needs exactly one of http, tcp, exec (found {found})"
        );
        assert!(out.contains(&expected), "expected\n{expected}\nin\n{out}");
        assert!(
            !schema_accepts(text),
            "the schema accepts a check with {found}"
        );
    }
}

#[test]
fn rollback_true_and_false_are_on_and_off_for_validate_and_schema() {
    let generation = |out: &str| {
        out.split("generation ")
            .nth(1)
            .map(|rest| rest[..16].to_string())
            .unwrap_or_else(|| panic!("no generation in {out}"))
    };
    for (yaml_1_1, yaml_1_2) in [("true", "on"), ("false", "off")] {
        let rewritten = shop("rollback: on ", &format!("rollback: {yaml_1_1} "));
        let (code, out) = validate(&rewritten);
        assert_eq!(code, Some(0), "{yaml_1_1}: {out}");
        assert!(schema_accepts(&rewritten), "the schema refuses {yaml_1_1}");
        let (_, written) = validate(&shop("rollback: on ", &format!("rollback: {yaml_1_2} ")));
        assert_eq!(
            generation(&out),
            generation(&written),
            "{yaml_1_1} is {yaml_1_2}"
        );
    }
    let (code, out) = validate(&shop("rollback: on ", "rollback: yes "));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("desired/shop.yaml:48:15: spec.policy.rollback: unknown variant `yes`, expected one of `on`, `off`, `dry-run`, `true`, `false`"),
        "{out}"
    );
}

#[test]
fn every_structural_error_of_a_file_is_reported_in_one_run() {
    let text = shop("waitTimeout: 2m  ", "waitTimeout: 2min")
        .replace("pull: never", "pull: sometimes")
        .replace("allOrNothing: true", "allOrNothing: yes")
        .replace("attempts: 10", "attempts: ten")
        .replace("selfHeal: true", "selfHeal: maybe")
        .replace(
            "      pacticipant: shop-api\n",
            "      pacticipant: shop-api\n      tag: v1\n",
        );
    let (code, out) = validate(&text);
    assert_eq!(code, Some(1), "{out}");
    let expected = [
        "desired/shop.yaml:16:18: spec.compose.waitTimeout: invalid duration \"2min\"",
        "desired/shop.yaml:17:11: spec.compose.pull: unknown variant `sometimes`, expected one of `always`, `missing`, `never`",
        "desired/shop.yaml:21:19: spec.broker.allOrNothing: invalid type: string \"yes\", expected a boolean",
        "desired/shop.yaml:31:7: spec.services.api.tag: unknown field `tag`, expected one of `gateOnly`, `image`, `job`, `pacticipant`, `version`",
        "desired/shop.yaml:41:17: spec.smoke[0].attempts: invalid type: string \"ten\", expected an integer",
        "desired/shop.yaml:50:15: spec.policy.selfHeal: invalid type: string \"maybe\", expected a boolean",
    ];
    let errors: Vec<&str> = out.lines().filter(|l| l.contains("error: ")).collect();
    assert_eq!(errors.len(), expected.len(), "{out}");
    for (line, expected) in errors.iter().zip(expected) {
        assert!(line.contains(expected), "expected\n{expected}\nin\n{line}");
    }
}

#[test]
fn waittimeout_is_described_as_itself_where_an_editor_hovers() {
    let output = c2quay(&["schema"], &root());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let wait = &schema["$defs"]["ComposeSpec"]["properties"]["waitTimeout"];
    assert_eq!(
        wait["description"],
        "How long services may take to become ready after `up`, from 1s to 1h (default 2m)."
    );
    // Inlined: no `$ref`/`anyOf` branch whose generic text an editor would show first.
    assert!(
        wait.get("$ref").is_none() && wait.get("anyOf").is_none(),
        "{wait}"
    );
    let broker = &schema["$defs"]["Spec"]["properties"]["broker"];
    assert_eq!(
        broker["anyOf"][0]["description"], broker["description"],
        "{broker}"
    );
}

#[test]
fn an_empty_desired_directory_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("desired")).unwrap();
    std::fs::write(dir.path().join("desired/.#shop.yaml"), "lock").unwrap();

    let output = c2quay(&["validate", "desired"], dir.path());
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with("error: desired: no manifest (*.yaml or *.yml) in this desired directory")
            && out.contains("pass --allow-empty if nothing should run"),
        "{out}"
    );
    assert!(out.contains("0 file(s): 0 valid, 0 invalid"), "{out}");

    let output = c2quay(&["validate", "-o", "json", "desired"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"][0]["file"], "desired");

    let output = c2quay(&["validate", "--allow-empty", "desired"], dir.path());
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_eq!(out, "0 file(s): 0 valid, 0 invalid, 0 warning(s)\n");
}
