//! Issue 6, item 1, the bounded form that runs in the test command: property-based fuzzing of
//! every parser of untrusted text. Arbitrary strings, arbitrary JSON values, structure-aware JSON
//! built from the keys the parsers look for, and byte-level mutations of real seeds (the repo's
//! manifests and broken-manifest fixtures, broker matrix fixtures, Compose `config` output)
//! go into the manifest parser + validator (`manifest::parse_str`), the Compose parsers
//! (`docker::parse::config`, `docker::parse::is_leftover_name`)
//! and the broker parsers (`broker::parse::{parse_matrix, parse_index, parse_environments,
//! error_messages, excerpt}`). Properties: no panic, errors carry a message, and the gate safety
//! rule: a matrix answer is `Deployable` only when `summary.deployable` is exactly `true`.
//! YAML alias bombs, deep nesting and huge scalars are refused with a clear error in bounded time.
//!
//! The coverage-guided form is `scripts/fuzz.sh` (cargo-fuzz targets in `fuzz/`).
//! `C2QUAY_FUZZ_CASES` raises the number of cases per property (default 2,000).

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use c2quay::broker::Verdict;
use c2quay::broker::parse::{
    error_messages, excerpt, parse_environments, parse_index, parse_matrix,
};
use c2quay::docker::parse::{config, is_leftover_name};
use c2quay::manifest::parse_str;
use jsonschema::error::ValidationErrorKind;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn cases() -> u32 {
    std::env::var("C2QUAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn config_with(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const CONFIG: &str = r#"{"name":"shop","services":{"web":{"image":"c2quay-test/web:1","restart":"unless-stopped","healthcheck":{"test":["CMD","true"],"interval":"1s"}},"api":{"build":{"context":"/srv/api"},"image":"shop/api:dev"},"quiet":{"image":"busybox","healthcheck":{"disable":true}}}}"#;
const EVENT: &str = r#"{"status":"die","id":"abc","from":"c2quay-test/web:1","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"com.docker.compose.project":"shop"}}}"#;
const INDEX: &str = r#"{"_links":{"self":{"href":"http://b/"},"pb:environments":{"href":"http://b/environments"},"pb:pacticipant-version":{"href":"http://b/pacticipants/{pacticipant}/versions/{version}"}}}"#;
const ENVIRONMENTS: &str =
    r#"{"_embedded":{"environments":[{"name":"production","uuid":"u-1","production":true}]}}"#;
const ERRORS: &str = r#"{"errors":{"":["base"],"environment":["no such environment"]}}"#;

/// Every seed: (name, text).
fn seeds() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = vec![
        ("config".into(), CONFIG.into()),
        ("event".into(), EVENT.into()),
        ("index".into(), INDEX.into()),
        ("environments".into(), ENVIRONMENTS.into()),
        ("errors".into(), ERRORS.into()),
    ];
    for dir in [
        "desired",
        "tests/fixtures/broken",
        "src/broker/fixtures",
        "demo",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "yaml" | "yml" | "json") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    out.push((path.display().to_string(), text));
                }
            }
        }
    }
    out.sort();
    out
}

/// Runs every parser on `text`; panics propagate. Checks the properties that hold for any input.
fn all_parsers(text: &str) {
    match parse_str(text, Path::new("/fuzz/desired/env.yaml")) {
        Ok(env) => {
            assert!(env.warnings.iter().all(|w| !w.message.is_empty()));
            schema_agrees(text);
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "an Err carries at least one problem");
            assert!(
                problems.iter().all(|p| !p.message.trim().is_empty()),
                "{problems:?}"
            );
        }
    }
    let _ = config(text);
    let _ = is_leftover_name(text);
    matrix_property(text);
    let _ = parse_index(text);
    let _ = parse_environments(text);
    let _ = error_messages(text);
    for max in [0, 1, 7, 200] {
        let cut = excerpt(text, max);
        assert!(
            cut.chars().count() <= max + 3,
            "excerpt({max}) too long: {cut:?}"
        );
    }
}

/// Issue 14 item 9: a manifest `validate` accepts, the published schema accepts too. The one
/// difference: a number or `true`/`false` where a string is expected, which the parser reads as
/// its text (`version: 1.10`) and editors underline.
fn schema_agrees(text: &str) {
    static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::validator_for(&c2quay::manifest::json_schema()).expect("the schema compiles")
    });
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).expect("an accepted manifest is YAML");
    let instance = serde_json::to_value(yaml).expect("an accepted manifest has a JSON form");
    for error in SCHEMA.iter_errors(&instance) {
        let scalar_as_text = matches!(error.kind, ValidationErrorKind::Type { .. })
            && (error.instance.is_number() || error.instance.is_boolean());
        assert!(
            scalar_as_text,
            "validate accepts what the schema refuses: {error} at {}\n{text}",
            error.instance_path.as_str()
        );
    }
}

/// The gate safety rule: `Deployable` only when `summary.deployable` is exactly `true`; a
/// row that verified successfully or is ignored is never listed as failing.
fn matrix_property(text: &str) {
    let Ok(answer) = parse_matrix(text) else {
        return;
    };
    let value: Value = serde_json::from_str(text).expect("parse_matrix accepted non-JSON");
    let deployable = &value["summary"]["deployable"];
    assert_eq!(
        answer.verdict == Verdict::Deployable,
        deployable == &Value::Bool(true),
        "verdict {:?} for summary.deployable {deployable}",
        answer.verdict
    );
    let rows = value["matrix"].as_array().map(Vec::len).unwrap_or(0);
    assert!(answer.failing_rows.len() <= rows);
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        keyword().prop_map(Value::String),
    ]
}

/// Keys and words the parsers look for, so random documents reach deep branches.
fn keyword() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "summary",
        "deployable",
        "reason",
        "success",
        "failed",
        "unknown",
        "matrix",
        "consumer",
        "provider",
        "name",
        "version",
        "number",
        "verificationResult",
        "ignored",
        "_links",
        "_embedded",
        "environments",
        "uuid",
        "href",
        "pb:environments",
        "pb:record-deployment",
        "errors",
        "error",
        "message",
        "services",
        "image",
        "build",
        "restart",
        "healthcheck",
        "disable",
        "ID",
        "Name",
        "Names",
        "Service",
        "Project",
        "State",
        "Health",
        "ExitCode",
        "Labels",
        "Publishers",
        "Status",
        "Config",
        "Image",
        "Id",
        "Actor",
        "Attributes",
        "com.docker.compose.project",
        "com.docker.compose.service",
        "Action",
        "Type",
        "container",
        "running",
        "exited",
        "healthy",
        "unhealthy",
        "true",
        "false",
        "",
    ])
    .prop_map(str::to_string)
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![keyword(), ".{0,6}"], inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A byte edit: (kind, position, byte).
fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec((0u8..4, any::<usize>(), any::<u8>()), 1..12)
}

fn mutate(seed: &str, edits: &[(u8, usize, u8)]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for &(kind, pos, byte) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            pos % bytes.len()
        };
        match kind {
            0 => bytes.insert(at.min(bytes.len()), byte),
            1 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            2 if !bytes.is_empty() => bytes[at] = byte,
            _ => {
                // Duplicate a slice (repeats keys, anchors, brackets).
                let end = (at + (byte as usize % 64)).min(bytes.len());
                let slice = bytes[at..end].to_vec();
                bytes.splice(at..at, slice);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn arbitrary_text_never_panics_any_parser() {
    let started = Instant::now();
    proptest!(config_with(cases()), |(text in any::<String>())| {
        all_parsers(&text);
    });
    proptest!(config_with(cases()), |(bytes in prop::collection::vec(any::<u8>(), 0..512))| {
        all_parsers(&String::from_utf8_lossy(&bytes));
    });
    println!(
        "FIGURE fuzz arbitrary text: {} cases x 2 in {:?}",
        cases(),
        started.elapsed()
    );
}

#[test]
fn arbitrary_json_never_panics_and_never_passes_a_gate_by_mistake() {
    let started = Instant::now();
    proptest!(config_with(cases()), |(value in json_value())| {
        all_parsers(&value.to_string());
        // Wrapped where the parsers look first.
        for wrapped in [
            serde_json::json!({"summary": value.clone(), "matrix": [value.clone()]}),
            serde_json::json!({"services": {"web": value.clone()}}),
            serde_json::json!({"_embedded": {"environments": value.clone()}}),
            serde_json::json!({"_links": value.clone()}),
        ] {
            all_parsers(&wrapped.to_string());
        }
        // As YAML too: the manifest parser meets every shape.
        if let Ok(yaml) = serde_yaml::to_string(&value) {
            all_parsers(&yaml);
        }
    });
    println!(
        "FIGURE fuzz arbitrary JSON: {} cases in {:?}",
        cases(),
        started.elapsed()
    );
}

#[test]
fn mutated_seeds_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() >= 20, "seed corpus too small: {}", seeds.len());
    let started = Instant::now();
    let n = seeds.len();
    proptest!(config_with(cases()), |(i in 0..n, e in edits())| {
        all_parsers(&mutate(&seeds[i].1, &e));
    });
    for (_, text) in &seeds {
        all_parsers(text);
    }
    println!(
        "FIGURE fuzz mutated seeds: {} seeds, {} cases in {:?}",
        n,
        cases(),
        started.elapsed()
    );
}

/// Asserts `text` is refused by the manifest parser within `limit`, with a message containing
/// `needle`.
fn refused(what: &str, text: &str, needle: &str, limit: Duration) {
    let started = Instant::now();
    let result = parse_str(text, Path::new("/fuzz/hostile.yaml"));
    let elapsed = started.elapsed();
    let problems = result.err().unwrap_or_else(|| panic!("{what}: accepted"));
    let all: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
    assert!(
        all.iter().any(|m| m.contains(needle)),
        "{what}: {all:?} lacks {needle:?}"
    );
    assert!(elapsed < limit, "{what}: took {elapsed:?}");
    println!(
        "FIGURE {what}: refused in {elapsed:?}: {}",
        excerpt(&all[0], 160)
    );
}

#[test]
fn bombs_deep_nesting_and_huge_scalars_are_refused_in_bounded_time() {
    // A hang guard, not a speed target (the FIGURE lines print the times): an unbounded
    // expansion takes minutes or forever; a loaded 2-core CI machine takes a few seconds.
    let limit = Duration::from_secs(60);
    // Billion laughs: 9^9 expansions.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, name) = (w[0], w[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    refused("alias bomb", &bomb, "alias bomb", limit);
    // The bomb inside an otherwise plausible manifest.
    let hidden = format!(
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: x\nx-bomb:\n{}",
        bomb.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    refused("alias bomb in a manifest", &hidden, "alias bomb", limit);
    refused(
        "deep flow nesting",
        &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        "nesting too deep",
        limit,
    );
    refused(
        "deep flow mappings",
        &format!("{}1{}", "{a: ".repeat(50_000), "}".repeat(50_000)),
        "nesting too deep",
        limit,
    );
    let block: String = (0..1_400)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let started = Instant::now();
    let result = parse_str(&block, Path::new("/fuzz/block.yaml"));
    assert!(block.len() < 1024 * 1024, "fits the loader's limit");
    assert!(result.is_err(), "deep block nesting is not a manifest");
    assert!(
        started.elapsed() < limit,
        "deep block nesting took {:?}",
        started.elapsed()
    );
    println!(
        "FIGURE deep block nesting (1,400 levels), refused in: {:?}",
        started.elapsed()
    );
    // Many flow collections just under the nesting limit, filling the loader's 1 MiB.
    let unit = format!("{}{},", "[".repeat(15), "]".repeat(15));
    let wide = format!("a: [{}1]\n", unit.repeat(1000 * 1024 / unit.len()));
    let started = Instant::now();
    assert!(parse_str(&wide, Path::new("/fuzz/wide.yaml")).is_err());
    println!(
        "FIGURE 1 MiB of depth-16 flow collections: refused in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < 2 * limit,
        "took {:?}",
        started.elapsed()
    );
    // Huge scalars (the loader refuses files over 1 MiB first; the parser alone stays bounded).
    // The largest scalar the loader lets through (MAX_MANIFEST_BYTES) goes to the parser.
    let big = "x".repeat(c2quay::manifest::MAX_MANIFEST_BYTES as usize - 200);
    let started = Instant::now();
    let result = parse_str(
        &format!(
            "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {big}\nspec: {{}}\n"
        ),
        Path::new("/fuzz/big.yaml"),
    );
    let Err(problems) = result else {
        panic!("a huge name is refused")
    };
    assert!(
        started.elapsed() < limit,
        "huge scalar took {:?}",
        started.elapsed()
    );
    println!("FIGURE 1 MiB scalar: refused in {:?}", started.elapsed());
    for p in &problems {
        assert!(
            p.message.len() < 4096,
            "the message does not echo the huge scalar: {} bytes",
            p.message.len()
        );
    }
    // The JSON parsers: serde_json's recursion limit turns deep nesting into an error.
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_matrix(&deep_json).is_err());
    assert!(config(&deep_json).is_err());
    let started = Instant::now();
    let huge_json = format!("{{\"summary\":{{\"deployable\":true,\"reason\":\"{big}\"}}}}");
    let answer = parse_matrix(&huge_json).expect("a huge but valid answer parses");
    assert_eq!(answer.verdict, Verdict::Deployable);
    assert!(started.elapsed() < limit);
}
