//! The shape check: a manifest's YAML against the JSON Schema, every structural error of the
//! file at once (issue 14 item 9), before the typed parse, which stops at its first error.
//!
//! The schema is the one `c2quay schema` prints, generated from the types, so what `validate`
//! refuses for its shape is exactly what an editor underlines. Each error is turned into a
//! finding with the field path and a message in serde's words (`unknown field`, `missing
//! field`, `invalid type`, `unknown variant`, `invalid duration`); `parse.rs` finds the line.
//!
//! Two kinds of schema error are left to others on purpose:
//! - value constraints that `rules.rs` checks with its own message (`pattern` other than the
//!   duration grammar, `minimum`, `maximum`, `minLength`, `minItems`); the unit test
//!   `value_constraints_are_the_ones_rules_check` lists them, so a new one is not forgotten;
//! - a number or `true`/`false` where a string is expected: the parser reads a plain YAML scalar
//!   as its text (`version: 1.10` stays `1.10`), so refusing it would refuse manifests that
//!   deploy. A duration field is the exception: a bare number is not a duration.
//!
//! The YAML is checked as JSON (`serde_json::to_value`); a document that has no JSON form (a
//! mapping key that is not a string, number or boolean) is left to the typed parse.

use serde_json::Value;

use super::duration;
use super::problem::{FieldPath, Segment};
use super::rules::smoke_kinds_message;

/// One shape error: the field, whether the error is about its value (so the location is the
/// value's, not the key's), and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// The field it is about.
    pub path: FieldPath,
    /// True when the value is wrong (the location is the value's); false for a key that is
    /// unknown or missing.
    pub at_value: bool,
    /// What is wrong, in serde's words.
    pub message: String,
}

/// Every structural error of `raw`, in the order the schema finds them.
///
/// The schema is compiled for each call and dropped after it: a compiled validator of this
/// schema takes about 40 MiB (jsonschema 0.30 expands every `$ref`), so it is asked only about
/// a manifest the typed parse already refused, and its memory is given back to the system.
pub fn check(raw: &serde_yaml::Value) -> Vec<ShapeError> {
    let Ok(instance) = serde_json::to_value(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    {
        let shape = Shape::new();
        shape.collect(
            &shape.root,
            &shape.schema,
            &instance,
            &FieldPath::default(),
            &mut out,
        );
    }
    give_back_freed_memory();
    out
}

/// Returns the heap's free pages to the system (glibc keeps them otherwise, so a long-running
/// agent would keep the validator's size after one broken manifest).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The compiled schema of the whole manifest. A definition on its own (to look inside an
/// optional section, whose `anyOf` reports only that it failed) is compiled only when an error
/// needs it: each compiled validator holds every pattern of the schema, and keeping one per
/// definition resident cost the agent tens of MiB.
struct Shape {
    schema: Value,
    root: jsonschema::Validator,
}

/// Compiles `schema` (always one c2quay generated, so it compiles).
fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).expect("the generated manifest schema compiles")
}

impl Shape {
    /// Compiles the manifest's schema.
    fn new() -> Shape {
        let schema = super::json_schema();
        Shape {
            root: compile(&schema),
            schema,
        }
    }

    /// Definition `name` as a schema of its own (`{"$defs": ..., "$ref": "#/$defs/name"}`) and
    /// its validator; `None` when the schema has no such definition.
    fn definition(&self, name: &str) -> Option<(Value, jsonschema::Validator)> {
        let defs = self.schema.get("$defs")?;
        defs.get(name)?;
        let one = serde_json::json!({
            "$schema": self.schema["$schema"],
            "$defs": defs,
            "$ref": format!("#/$defs/{name}"),
        });
        let validator = compile(&one);
        Some((one, validator))
    }

    fn collect(
        &self,
        validator: &jsonschema::Validator,
        schema: &Value,
        instance: &Value,
        base: &FieldPath,
        out: &mut Vec<ShapeError>,
    ) {
        for error in validator.iter_errors(instance) {
            let (path, value) = field_path(base, instance, error.instance_path.as_str());
            let keyword_path = error.schema_path.as_str();
            let (node_path, keyword) = keyword_path.rsplit_once('/').unwrap_or(("", keyword_path));
            let node = self.node(schema, node_path).unwrap_or(&Value::Null);
            self.explain(&error.kind, keyword, node, value, path, out);
        }
    }

    /// One error in serde's words; nothing when it is left to `rules.rs` or to the parser.
    fn explain(
        &self,
        kind: &jsonschema::error::ValidationErrorKind,
        keyword: &str,
        node: &Value,
        value: &Value,
        path: FieldPath,
        out: &mut Vec<ShapeError>,
    ) {
        use jsonschema::error::ValidationErrorKind as Kind;
        let is_duration = node.get("pattern").and_then(Value::as_str) == Some(duration::PATTERN);
        let mut push = |path: FieldPath, at_value: bool, message: String| {
            out.push(ShapeError {
                path,
                at_value,
                message,
            })
        };
        match kind {
            Kind::AdditionalProperties { unexpected } => {
                let expected = node
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| backticked(p.keys().map(String::as_str)))
                    .unwrap_or_default();
                for key in unexpected {
                    let message = if expected.is_empty() {
                        format!("unknown field `{key}`")
                    } else {
                        format!("unknown field `{key}`, expected one of {expected}")
                    };
                    push(path.key(key), false, message);
                }
            }
            Kind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                push(path.key(name), false, format!("missing field `{name}`"));
            }
            Kind::Type { .. } => {
                let expected = expected_types(node);
                let scalar_as_text =
                    expected.contains(&"string") && (value.is_number() || value.is_boolean());
                if is_duration {
                    let text = scalar_text(value);
                    let message = match &text {
                        Some(text) => duration::parse(text).err(),
                        None => Some(format!(
                            "invalid type: {}, expected a duration ({})",
                            describe(value),
                            duration::GRAMMAR
                        )),
                    };
                    if let Some(message) = message {
                        push(path, true, message);
                    }
                } else if !scalar_as_text {
                    let expected: Vec<&str> = expected
                        .iter()
                        .map(|t| article(t))
                        .filter(|t| !t.is_empty())
                        .collect();
                    push(
                        path,
                        true,
                        format!(
                            "invalid type: {}, expected {}",
                            describe(value),
                            expected.join(" or ")
                        ),
                    );
                }
            }
            Kind::Pattern { .. } | Kind::MinLength { .. } if is_duration => {
                if let Some(message) = value.as_str().and_then(|t| duration::parse(t).err()) {
                    push(path, true, message);
                }
            }
            Kind::Pattern { .. }
            | Kind::Minimum { .. }
            | Kind::Maximum { .. }
            | Kind::MinLength { .. }
            | Kind::MinItems { .. } => {}
            Kind::Enum { .. } | Kind::Constant { .. } => {
                let allowed = match node.get("enum").and_then(Value::as_array) {
                    Some(options) => options.clone(),
                    None => node.get("const").cloned().into_iter().collect(),
                };
                push(path, true, unknown_variant(value, &allowed));
            }
            Kind::AnyOf | Kind::OneOfNotValid | Kind::OneOfMultipleValid => {
                let branches: &[Value] = node
                    .get(keyword)
                    .and_then(Value::as_array)
                    .map_or(&[], Vec::as_slice);
                self.explain_choice(branches, value, path, out);
            }
            other => push(path, true, format!("{other:?}")),
        }
    }

    /// A failed `anyOf`/`oneOf`: an optional section (look inside it), an enum (the variants),
    /// or the smoke check kinds (exactly one).
    fn explain_choice(
        &self,
        branches: &[Value],
        value: &Value,
        path: FieldPath,
        out: &mut Vec<ShapeError>,
    ) {
        let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
        let referenced = branches
            .iter()
            .filter(|b| !is_null(b))
            .filter_map(|b| b.get("$ref").and_then(Value::as_str))
            .filter_map(|r| r.strip_prefix("#/$defs/"))
            .collect::<Vec<_>>();
        if branches.iter().any(is_null) && referenced.len() == 1 && !value.is_null() {
            if let Some((schema, validator)) = self.definition(referenced[0]) {
                self.collect(&validator, &schema, value, &path, out);
                return;
            }
        }
        let consts: Option<Vec<Value>> = branches.iter().map(|b| b.get("const").cloned()).collect();
        if let Some(consts) = consts {
            out.push(ShapeError {
                path,
                at_value: true,
                message: unknown_variant(value, &consts),
            });
            return;
        }
        let required: Option<Vec<&str>> = branches
            .iter()
            .map(|b| b.pointer("/required/0").and_then(Value::as_str))
            .collect();
        if let Some(kinds) = required {
            let found: Vec<&str> = kinds
                .iter()
                .copied()
                .filter(|k| value.get(k).is_some_and(|v| !v.is_null()))
                .collect();
            out.push(ShapeError {
                path,
                at_value: false,
                message: smoke_kinds_message(&kinds, &found),
            });
            return;
        }
        out.push(ShapeError {
            path,
            at_value: true,
            message: format!("{} does not have any of the allowed forms", describe(value)),
        });
    }

    /// The node at a keyword location (`/properties/spec/$ref/properties/...`) of `schema`,
    /// following `$ref`s into the manifest schema's definitions.
    fn node<'a>(&'a self, schema: &'a Value, location: &str) -> Option<&'a Value> {
        let mut node = schema;
        for segment in pointer_segments(location) {
            if segment == "$ref" {
                let target = node.get("$ref")?.as_str()?.strip_prefix('#')?;
                node = self.schema.pointer(target)?;
                continue;
            }
            node = match node {
                Value::Object(map) => map.get(&segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

/// The field path of an instance location, with the value there.
fn field_path<'a>(base: &FieldPath, instance: &'a Value, location: &str) -> (FieldPath, &'a Value) {
    let mut path = base.clone();
    let mut value = instance;
    for segment in pointer_segments(location) {
        match value {
            Value::Array(items) => {
                let index = segment.parse::<usize>().unwrap_or(0);
                path.0.push(Segment::Index(index));
                value = items.get(index).unwrap_or(&Value::Null);
            }
            _ => {
                value = value.get(&segment).unwrap_or(&Value::Null);
                path.0.push(Segment::Key(segment));
            }
        }
    }
    (path, value)
}

/// The unescaped segments of a JSON pointer.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn expected_types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `a string`, `a sequence`, ...; empty for `null`, which is never what a field is for.
fn article(json_type: &str) -> &'static str {
    match json_type {
        "string" => "a string",
        "boolean" => "a boolean",
        "integer" => "an integer",
        "number" => "a number",
        "array" => "a sequence",
        "object" => "a mapping",
        _ => "",
    }
}

/// A value as serde_yaml's messages show it: `string "x"`, `integer 5`, `a sequence`.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a sequence".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The text the parser reads from a plain scalar.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn unknown_variant(value: &Value, allowed: &[Value]) -> String {
    let shown = scalar_text(value).unwrap_or_else(|| describe(value));
    let allowed = backticked(allowed.iter().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }));
    format!("unknown variant `{shown}`, expected one of {allowed}")
}

fn backticked<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
