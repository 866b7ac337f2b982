//! Tests of the shape check and of the schema it checks against: every structural error at
//! once, located and in serde's words; the schema's own descriptions, `oneOf` and `rollback`.

use std::path::Path;

use super::*;
use crate::manifest::{Problem, RollbackMode, json_schema, parse_str};

const VALID: &str = "\
apiVersion: c2quay.dev/v1
kind: Environment
metadata:
  name: shop
spec:
  compose:
    directory: ../examples/shop
    waitTimeout: 2m
  smoke:
  - name: up
    tcp: { address: \"127.0.0.1:1\" }
    timeout: 2s
  policy:
    rollback: on
    gateRetry: { initial: 5s, max: 2m }
";

fn problems(text: &str) -> Vec<String> {
    match parse_str(text, Path::new("d/shop.yaml")) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(Problem::to_string).collect(),
    }
}

#[test]
fn every_structural_error_of_a_file_is_reported_at_once_in_line_order() {
    let text = VALID
        .replace(
            "    waitTimeout: 2m\n",
            "    waitTimeout: 2min\n    pull: sometimes\n",
        )
        .replace("  name: shop\n", "  name: shop\n  labels: {}\n")
        .replace("    timeout: 2s\n", "    timeout: 2s\n    attempts: ten\n")
        .replace("rollback: on", "rollback: always")
        .replace("max: 2m }", "max: 2m }\n    selfHeal: maybe");
    assert_eq!(
        problems(&text),
        [
            "d/shop.yaml:5:3: metadata.labels: unknown field `labels`, expected one of `name`",
            "d/shop.yaml:9:18: spec.compose.waitTimeout: invalid duration \"2min\": write a whole number and a unit (ms, s, m or h), or several from the largest unit down, e.g. 500ms, 30s, 2m, 1h30m",
            "d/shop.yaml:10:11: spec.compose.pull: unknown variant `sometimes`, expected one of `always`, `missing`, `never`",
            "d/shop.yaml:15:15: spec.smoke[0].attempts: invalid type: string \"ten\", expected an integer",
            "d/shop.yaml:17:15: spec.policy.rollback: unknown variant `always`, expected one of `on`, `off`, `dry-run`, `true`, `false`",
            "d/shop.yaml:19:15: spec.policy.selfHeal: invalid type: string \"maybe\", expected a boolean",
        ]
    );
}

#[test]
fn errors_inside_optional_sections_and_missing_fields_are_named() {
    let text = VALID
        .replace(
            "  compose:\n    directory: ../examples/shop\n",
            "  compose:\n",
        )
        .replace(
            "  smoke:\n",
            "  broker:\n    url: http://b\n    tokn: x\n  smoke:\n",
        )
        .replace(
            "    tcp: { address: \"127.0.0.1:1\" }\n",
            "    tcp: { adress: x }\n",
        );
    let found = problems(&text);
    for expected in [
        "d/shop.yaml:6:3: spec.compose.directory: missing field `directory`",
        "d/shop.yaml:8:3: spec.broker.environment: missing field `environment`",
        "d/shop.yaml:10:5: spec.broker.tokn: unknown field `tokn`, expected one of `allOrNothing`,",
        "d/shop.yaml:13:5: spec.smoke[0].tcp.address: missing field `address`",
        "d/shop.yaml:13:12: spec.smoke[0].tcp.adress: unknown field `adress`, expected one of `address`",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected}\nnot in\n{found:#?}"
        );
    }
}

#[test]
fn a_smoke_check_needs_exactly_one_kind_in_the_schema_too() {
    let two = VALID.replace(
        "    tcp: { address: \"127.0.0.1:1\" }\n",
        "    tcp: { address: \"127.0.0.1:1\" }\n    exec: { command: [\"true\"] }\n",
    );
    let none = VALID.replace("    tcp: { address: \"127.0.0.1:1\" }\n", "");
    let null = VALID.replace(
        "    tcp: { address: \"127.0.0.1:1\" }\n",
        "    tcp: { address: \"127.0.0.1:1\" }\n    http: ~\n",
    );
    let schema = jsonschema::validator_for(&json_schema()).unwrap();
    let as_json = |text: &str| {
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap()
    };
    assert!(schema.is_valid(&as_json(VALID)));
    assert!(!schema.is_valid(&as_json(&two)));
    assert!(!schema.is_valid(&as_json(&none)));
    assert!(schema.is_valid(&as_json(&null)), "null is no check");
    assert_eq!(
        problems(&two),
        [
            "d/shop.yaml:10:3: spec.smoke[0]: a smoke check needs exactly one of http, tcp, exec (found tcp and exec)"
        ]
    );
    assert_eq!(
        problems(&none),
        [
            "d/shop.yaml:10:3: spec.smoke[0]: a smoke check needs exactly one of http, tcp, exec (found none)"
        ]
    );
    assert!(problems(&null).is_empty(), "{:?}", problems(&null));
}

#[test]
fn rollback_true_and_false_mean_on_and_off_in_parser_and_schema() {
    let schema = jsonschema::validator_for(&json_schema()).unwrap();
    let on = parse_str(VALID, Path::new("d/shop.yaml")).unwrap();
    for (written, mode) in [
        ("true", RollbackMode::On),
        ("false", RollbackMode::Off),
        ("off", RollbackMode::Off),
        ("dry-run", RollbackMode::DryRun),
        ("\"on\"", RollbackMode::On),
    ] {
        let text = VALID.replace("rollback: on", &format!("rollback: {written}"));
        let env = parse_str(&text, Path::new("d/shop.yaml")).unwrap();
        assert_eq!(env.manifest.spec.policy.rollback, mode, "{written}");
        let instance =
            serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap())
                .unwrap();
        assert!(schema.is_valid(&instance), "the schema refuses {written}");
        if mode == RollbackMode::On {
            assert_eq!(env.generation, on.generation, "{written} is `on`");
        }
    }
    let text = VALID.replace("rollback: on", "rollback: 1");
    assert_eq!(
        problems(&text),
        [
            "d/shop.yaml:14:15: spec.policy.rollback: unknown variant `1`, expected one of `on`, `off`, `dry-run`, `true`, `false`"
        ]
    );
}

#[test]
fn a_plain_scalar_where_a_string_is_expected_is_read_as_text_but_not_as_a_duration() {
    let text = VALID.replace(
        "  compose:\n",
        "  hosts: [true, 12]\n  compose:\n    project: \"shop\"\n",
    );
    assert!(problems(&text).is_empty(), "{:?}", problems(&text));
    let text = VALID.replace("waitTimeout: 2m", "waitTimeout: 30");
    assert_eq!(
        problems(&text),
        [
            "d/shop.yaml:8:18: spec.compose.waitTimeout: invalid duration \"30\": write a whole number and a unit (ms, s, m or h), or several from the largest unit down, e.g. 500ms, 30s, 2m, 1h30m"
        ]
    );
    let text = VALID.replace("waitTimeout: 2m", "waitTimeout: [2m]");
    assert_eq!(
        problems(&text),
        [
            "d/shop.yaml:8:18: spec.compose.waitTimeout: invalid type: a sequence, expected a duration (a whole number and a unit (ms, s, m or h), or several from the largest unit down, e.g. 500ms, 30s, 2m, 1h30m)"
        ]
    );
}

/// The schema's value constraints that the shape check leaves to `rules.rs`, which says each
/// with its own message. A new one must be checked by a rule, then listed here.
#[test]
fn value_constraints_are_the_ones_rules_check() {
    fn walk(node: &Value, at: String, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                let is_duration = map.get("pattern") == Some(&Value::from(duration::PATTERN));
                for (key, value) in map {
                    let left_to_rules = matches!(
                        key.as_str(),
                        "pattern" | "minimum" | "maximum" | "minLength" | "minItems"
                    );
                    if left_to_rules && !is_duration && !at.ends_with("/properties") {
                        out.push(format!("{at}/{key}"));
                    }
                    walk(value, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&json_schema(), String::new(), &mut found);
    assert_eq!(
        found,
        [
            "/$defs/BrokerSpec/properties/trustedOrigins/items/pattern",
            "/$defs/BrokerSpec/properties/url/pattern",
            "/$defs/ExecCheck/properties/command/minItems",
            "/$defs/HttpCheck/properties/status/maximum",
            "/$defs/HttpCheck/properties/status/minimum",
            "/$defs/HttpCheck/properties/url/pattern",
            "/$defs/Metadata/properties/name/pattern",
            "/$defs/ServiceSpec/properties/version/properties/short/maximum",
            "/$defs/ServiceSpec/properties/version/properties/short/minimum",
            "/$defs/SmokeCheck/properties/attempts/minimum",
            "/properties/apiVersion/pattern",
            "/properties/kind/pattern",
        ]
    );
}

/// What an editor shows on hover is the field's own description: every property has one, a
/// duration is inlined (no shared definition whose generic text would win), and an optional
/// section's `$ref` branch carries the field's description too.
#[test]
fn every_field_has_its_own_description_where_editors_look() {
    fn walk(node: &Value, at: &str, out: &mut Vec<String>) {
        let Some(map) = node.as_object() else { return };
        if let Some(Value::Object(properties)) = map.get("properties") {
            for (name, property) in properties {
                let field = format!("{at}.{name}");
                let description = property.get("description").and_then(Value::as_str);
                if description.is_none_or(|d| d.trim().is_empty()) {
                    out.push(format!("{field}: no description"));
                }
                for branch in property
                    .get("anyOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|b| b.get("$ref").is_some())
                {
                    if branch.get("description").and_then(Value::as_str) != description {
                        out.push(format!("{field}: its $ref branch has another description"));
                    }
                }
                if property.to_string().contains("Duration") {
                    out.push(format!("{field}: a duration behind a shared definition"));
                }
            }
        }
        for (key, value) in map {
            if key != "properties" {
                walk(value, at, out);
            }
        }
    }
    let schema = json_schema();
    let mut problems = Vec::new();
    walk(&schema, "", &mut problems);
    for (name, definition) in schema["$defs"].as_object().unwrap() {
        walk(definition, name, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let wait = &schema["$defs"]["ComposeSpec"]["properties"]["waitTimeout"];
    assert_eq!(
        wait["description"],
        "How long services may take to become ready after `up`, from 1s to 1h (default 2m)."
    );
    assert_eq!(wait["pattern"], duration::PATTERN);
}

/// Each duration field's description names its bounds, as `Bounds` has them.
#[test]
fn duration_descriptions_name_the_bounds_rules_check() {
    use duration::{Bounds, format};
    let schema = json_schema();
    let defs = &schema["$defs"];
    for (definition, field, bounds) in [
        ("ComposeSpec", "waitTimeout", Bounds::WAIT_TIMEOUT),
        ("SmokeCheck", "timeout", Bounds::SMOKE_TIMEOUT),
        ("SmokeCheck", "interval", Bounds::SMOKE_INTERVAL),
        ("GateRetry", "initial", Bounds::GATE_RETRY_INITIAL),
        ("GateRetry", "max", Bounds::GATE_RETRY_MAX),
        ("Policy", "minReady", Bounds::MIN_READY),
    ] {
        let description = defs[definition]["properties"][field]["description"]
            .as_str()
            .unwrap()
            .replace('\n', " ");
        let named = format!("From {} to {}", format(bounds.min), format(bounds.max));
        assert!(
            description.to_lowercase().contains(&named.to_lowercase()),
            "{definition}.{field}: {description:?} lacks {named:?}"
        );
    }
}
