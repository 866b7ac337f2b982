//! `c2quay validate` and `c2quay schema` through the real binary.
//!
//! The broken corpus lives in `tests/fixtures/broken/`: each file starts with
//! `# expect: <substring of the output>` (file, line, column, field and message), and may name a
//! value that must never be printed with `# never: <value>`. A subdirectory is validated as a
//! whole (for rules across files, such as duplicate names); each of its files has its own
//! expectation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fixtures whose error has no line: the parser refuses them before it has a position.
const NO_LOCATION: &[&str] = &["alias-bomb.yaml"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `c2quay ARGS` in the crate root.
fn c2quay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c2quay"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the c2quay binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `# expect:` and `# never:` lines of a fixture.
fn expectations(path: &Path) -> (String, Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let expect = lines
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} must start with `# expect: `", path.display()))
        .trim()
        .to_string();
    let never = lines
        .next()
        .and_then(|l| l.strip_prefix("# never: "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    (expect, never)
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

#[test]
fn desired_examples_are_valid() {
    let output = c2quay(&["validate", "desired/"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    for name in ["payments-production", "shop-staging", "tools-internal"] {
        assert!(
            text.contains(&format!("ok       desired/{name}.yaml  ({name}, project ")),
            "{text}"
        );
    }
    assert!(text.contains("3 file(s): 3 valid, 0 invalid"), "{text}");

    let output = c2quay(&["validate", "-o", "json", "desired"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], true);
    let environments = json["environments"].as_array().unwrap();
    let names: Vec<&str> = environments
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["payments-production", "shop-staging", "tools-internal"]
    );
    for env in environments {
        assert_eq!(env["generation"].as_str().unwrap().len(), 16, "{env}");
        assert!(
            env["file"].as_str().unwrap().starts_with("desired"),
            "{env}"
        );
        assert!(env["warnings"].is_array(), "{env}");
    }
    // payments' Compose project does not exist in this repository: a warning, never an error.
    let problems = json["problems"].as_array().unwrap();
    assert!(
        problems.iter().all(|p| p["severity"] == "warning"),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "desired/payments-production.yaml"
                && p["field"] == "spec.compose.directory"),
        "{problems:#?}"
    );
}

#[test]
fn every_broken_fixture_fails_with_its_own_message() {
    let dir = root().join("tests/fixtures/broken");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut seen = Vec::new();
    for entry in &entries {
        let (target, files) = if entry.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(entry)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            (entry.clone(), files)
        } else {
            (entry.clone(), vec![entry.clone()])
        };
        let output = c2quay(&["validate", &relative(&target)]);
        let (out, err) = (stdout(&output), stderr(&output));
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}: {out}{err}",
            target.display()
        );
        for file in files {
            let (expect, never) = expectations(&file);
            let name = file.file_name().unwrap().to_str().unwrap();
            let printed = format!("{}/{expect}", relative(file.parent().unwrap()));
            assert!(
                out.contains(&printed),
                "{name}: expected\n  {printed}\nin\n{out}"
            );
            let location = format!("{name}:");
            let has_line = expect
                .strip_prefix(&location)
                .and_then(|rest| rest.split(':').next())
                .is_some_and(|line| line.parse::<usize>().is_ok());
            assert!(
                has_line || NO_LOCATION.contains(&name),
                "{name}: expectation lacks :LINE: ({expect})"
            );
            assert!(
                expect.len() > name.len() + 20,
                "{name}: expectation too vague ({expect})"
            );
            if let Some(secret) = never {
                assert!(
                    !out.contains(&secret) && !err.contains(&secret),
                    "{name} printed its secret"
                );
            }
            seen.push(expect.trim_start_matches(name).to_string());
        }
    }
    assert!(seen.len() >= 12, "the corpus has {} fixtures", seen.len());
    // Duplicates differ only by the other file's name: compare the messages of single files.
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert!(
        unique.len() >= seen.len() - 1,
        "each fixture has its own message: {seen:#?}"
    );
}

#[test]
fn a_bad_file_does_not_hide_valid_ones_and_json_carries_locations() {
    let dir = tempfile::tempdir().unwrap();
    let desired = std::fs::read_to_string(root().join("desired/shop-staging.yaml")).unwrap();
    std::fs::write(dir.path().join("shop-staging.yaml"), &desired).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        desired.replace("name: shop-staging", "name: Shop"),
    )
    .unwrap();
    std::fs::write(dir.path().join(".#shop-staging.yaml"), "not: [yaml").unwrap();
    let path = dir.path().to_str().unwrap();

    let output = c2quay(&["validate", path]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ok       ") && text.contains("shop-staging.yaml  (shop-staging"),
        "{text}"
    );
    assert!(
        text.contains("invalid  ")
            && text.contains("broken.yaml:10:3: metadata.name: invalid name"),
        "{text}"
    );
    assert!(
        text.contains("2 file(s): 1 valid, 1 invalid"),
        "editor files are skipped: {text}"
    );

    let output = c2quay(&["validate", "--output", "json", path]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["environments"][0]["name"], "shop-staging");
    let error = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["severity"] == "error")
        .unwrap();
    assert_eq!(error["line"], 10);
    assert_eq!(error["column"], 3);
    assert_eq!(error["field"], "metadata.name");
    assert!(error["file"].as_str().unwrap().ends_with("broken.yaml"));
}

#[test]
fn schema_accepts_desired_and_rejects_broken_fixtures() {
    let output = c2quay(&["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let as_json = |path: &Path| -> serde_json::Value {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        serde_json::to_value(yaml).unwrap()
    };
    for name in ["payments-production", "shop-staging", "tools-internal"] {
        let instance = as_json(&root().join(format!("desired/{name}.yaml")));
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    for name in [
        "unknown-field",
        "rollback-value",
        "exec-as-string",
        "wrong-type",
        "bad-name",
        "inline-token",
        "bad-duration",
        "bad-broker-url",
        "api-version",
        "smoke-attempts-zero",
        "smoke-two-kinds",
    ] {
        let instance = as_json(&root().join(format!("tests/fixtures/broken/{name}.yaml")));
        assert!(
            !validator.is_valid(&instance),
            "the schema accepts broken/{name}.yaml"
        );
    }
}

#[test]
fn schema_snapshot_in_docs_is_current() {
    let output = c2quay(&["schema"]);
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/environment.schema.json")).unwrap(),
    )
    .unwrap();
    assert!(
        printed == stored,
        "docs/environment.schema.json is stale: run `c2quay schema > docs/environment.schema.json`"
    );
}

#[test]
fn usage_errors_exit_2_and_help_shows_examples() {
    let output = c2quay(&["validate", "does/not/exist"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read does/not/exist"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());

    let output = c2quay(&["validate", "-o", "yaml", "desired"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects an unknown format"
    );

    let output = c2quay(&["validate", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("c2quay validate desired/"),
        "{}",
        stdout(&output)
    );

    let output = c2quay(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).starts_with(&format!("c2quay {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&output)
    );
}

/// Issue 14 item 1: a copy of a manifest under another name owns the same Compose project;
/// `validate` refuses the copy and names the file that owns the project.
#[test]
fn a_second_owner_of_a_compose_project_is_invalid_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let desired = std::fs::read_to_string(root().join("desired/shop-staging.yaml")).unwrap();
    std::fs::write(dir.path().join("shop-staging.yaml"), &desired).unwrap();
    std::fs::write(
        dir.path().join("zz-copy.yaml"),
        desired.replace("name: shop-staging", "name: shop-staging-copy"),
    )
    .unwrap();

    let output = c2quay(&["validate", dir.path().to_str().unwrap()]);

    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("zz-copy.yaml")
            && text.contains("already belongs to environment \"shop-staging\""),
        "{text}"
    );
    assert!(text.contains("1 valid, 1 invalid"), "{text}");
}

/// Issue 14 item 5: read-only commands never create a mistyped state directory; they say it
/// does not exist.
#[test]
fn status_and_plan_never_create_a_missing_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let typo_arg = typo.to_str().unwrap();
    for args in [
        vec!["status", "--state-dir", typo_arg],
        vec![
            "plan",
            "shop-staging",
            "--desired",
            "desired",
            "--state-dir",
            typo_arg,
        ],
    ] {
        let output = c2quay(&args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "state directory {typo_arg} does not exist (nothing was created)"
            )),
            "{args:?}: {text}"
        );
        assert!(!typo.exists(), "{args:?} created {typo_arg}");
    }
}

/// Issue 14 item 8: `--version` names the commit the binary was built from and its date.
#[test]
fn version_names_the_commit_and_its_date() {
    let out = c2quay(&["--version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(head) = head else {
        assert!(text.contains("commit unknown"), "{text}");
        return;
    };
    assert!(
        text.starts_with(&format!(
            "c2quay {} (commit {head}, ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let date = text
        .trim_end()
        .trim_end_matches(')')
        .rsplit(", ")
        .next()
        .unwrap_or("");
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "a YYYY-MM-DD date: {text}"
    );
}

/// Issue 21 item 3: `version: { from: git }` is refused outside a git work tree, at its field,
/// and resolved to the commit once the directory is one; `-o json` carries the location.
#[test]
fn a_git_version_is_refused_outside_a_work_tree_and_valid_inside_one() {
    let dir = tempfile::tempdir().unwrap();
    if crate::support::git::git_dir_above(dir.path()) {
        return; // the temp directory is itself inside a work tree: nothing to show here
    }
    let desired = dir.path().join("desired");
    std::fs::create_dir(&desired).unwrap();
    let manifest = "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n  \
                    compose:\n    directory: /srv/shop\n  broker:\n    url: http://127.0.0.1:9292\n    \
                    environment: staging\n  services:\n    web:\n      version: { from: git, short: 12 }\n      \
                    image: \"c2quay-test/web:{version}\"\n";
    std::fs::write(desired.join("shop.yaml"), manifest).unwrap();
    let target = desired.to_str().unwrap();

    let refused = c2quay(&["validate", target]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let expected = format!(
        "{target}/shop.yaml:13:18: spec.services.web.version.from: `from: git` takes the version \
         from the desired directory's commit, but {target} is not in a git work tree"
    );
    assert!(stdout(&refused).contains(&expected), "{}", stdout(&refused));
    let json = c2quay(&["validate", target, "-o", "json"]);
    assert!(
        stdout(&json).contains("\"field\":\"spec.services.web.version.from\"")
            || stdout(&json).contains("\"field\": \"spec.services.web.version.from\""),
        "{}",
        stdout(&json)
    );

    crate::support::git::git(&desired, &["init", "--quiet"]);
    crate::support::git::commit_all(&desired, "shop");
    let valid = c2quay(&["validate", target]);
    assert_eq!(valid.status.code(), Some(0), "{}", stdout(&valid));
}
