//! The per-service diff `c2quay plan` shows: image, environment keys, ports, volumes, command
//! and every other top-level field that changed, between the applied rendered model and the
//! desired one. Values of environment keys that look like credentials are masked. Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::docker::model::canonical;
use crate::manifest::looks_like_credential;

/// What a masked value prints as.
pub const MASKED: &str = "***";
/// Longest value shown; longer ones are cut with `...`.
const MAX_VALUE: usize = 160;

/// One changed field (or environment key) of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    /// `image`, `ports`, `environment.GREETING`, ...
    pub field: String,
    /// The applied value (`None`: absent, or not known).
    pub from: Option<String>,
    /// The desired value (`None`: removed).
    pub to: Option<String>,
}

/// The differences between `applied` and `desired` top-level fields of one service (each
/// `None` when the side is unknown or absent), environment variables key by key.
pub fn service_diff(
    applied: Option<&BTreeMap<String, Value>>,
    desired: Option<&BTreeMap<String, Value>>,
) -> Vec<FieldDiff> {
    let empty = BTreeMap::new();
    let (old, new) = (applied.unwrap_or(&empty), desired.unwrap_or(&empty));
    let mut fields: Vec<&String> = old.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    let mut diffs = Vec::new();
    for field in fields {
        let (from, to) = (old.get(field), new.get(field));
        if from == to {
            continue;
        }
        if field == "environment" {
            diffs.extend(environment_diff(from, to));
            continue;
        }
        diffs.push(FieldDiff {
            field: field.clone(),
            from: from.map(shown),
            to: to.map(shown),
        });
    }
    diffs
}

fn environment_diff(from: Option<&Value>, to: Option<&Value>) -> Vec<FieldDiff> {
    let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let (old, new) = (object(from), object(to));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| {
            let secret = looks_like_credential(key, true);
            let value =
                |v: Option<&Value>| v.map(|v| if secret { MASKED.to_string() } else { shown(v) });
            FieldDiff {
                field: format!("environment.{key}"),
                from: value(old.get(key)),
                to: value(new.get(key)),
            }
        })
        .collect()
}

fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => canonical(other),
    };
    if text.chars().count() <= MAX_VALUE {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> BTreeMap<String, Value> {
        value
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn environment_keys_are_diffed_one_by_one_and_secrets_masked() {
        let applied = fields(
            json!({"environment": {"GREETING": "one", "DB_PASSWORD": "old",
            "GONE": "x"}, "command": ["httpd"]}),
        );
        let desired = fields(
            json!({"environment": {"GREETING": "two", "DB_PASSWORD": "new",
            "ADDED": "y"}, "command": ["httpd"], "ports": [{"target": 80, "published": "8080"}]}),
        );
        let diff = service_diff(Some(&applied), Some(&desired));
        let row = |field: &str| diff.iter().find(|d| d.field == field).cloned();
        assert_eq!(
            row("environment.GREETING").unwrap(),
            FieldDiff {
                field: "environment.GREETING".into(),
                from: Some("one".into()),
                to: Some("two".into())
            }
        );
        let password = row("environment.DB_PASSWORD").unwrap();
        assert_eq!(password.from.as_deref(), Some(MASKED));
        assert_eq!(password.to.as_deref(), Some(MASKED));
        assert_eq!(row("environment.GONE").unwrap().to, None);
        assert_eq!(row("environment.ADDED").unwrap().from, None);
        assert_eq!(
            row("ports").unwrap().to.as_deref(),
            Some(r#"[{"published":"8080","target":80}]"#)
        );
        assert!(row("command").is_none(), "unchanged fields are not shown");
        let text = format!("{diff:?}");
        assert!(!text.contains("old") && !text.contains("new"), "{text}");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(500);
        let diff = service_diff(None, Some(&fields(json!({ "command": long }))));
        assert_eq!(diff[0].to.as_ref().unwrap().len(), MAX_VALUE + 3);
    }
}
