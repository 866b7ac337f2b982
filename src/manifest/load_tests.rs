//! Tests of loading from disk: skipping, refusing, duplicates, and one bad file not hiding others.

use super::*;
use crate::manifest::Severity;

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  compose:\n    directory: .\n"
    )
}

#[test]
fn loads_each_file_alone_and_skips_editor_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("compose.yaml"), "services: {}\n").unwrap();
    std::fs::write(d.join("a.yaml"), manifest("alpha")).unwrap();
    std::fs::write(d.join("b.yml"), manifest("beta")).unwrap();
    std::fs::write(d.join("c.yaml"), "apiVersion: [\n").unwrap();
    for skipped in [
        ".hidden.yaml",
        ".#a.yaml",
        "a.yaml~",
        "a.yaml.swp",
        "x.tmp",
        "notes.txt",
    ] {
        std::fs::write(d.join(skipped), "garbage: [\n").unwrap();
    }
    let report = load_dir(d).unwrap();
    let names: Vec<&str> = report.environments.iter().map(Environment::name).collect();
    // compose.yaml is not a manifest: it is reported, and does not hide the others.
    assert_eq!(names, ["alpha", "beta"]);
    let files: Vec<String> = report
        .problems
        .iter()
        .map(|p| p.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // compose.yaml has several problems (every missing and unknown field), all reported.
    let mut files = files;
    files.dedup();
    assert_eq!(files, ["c.yaml", "compose.yaml"], "{:#?}", report.problems);
    assert!(!report.is_valid());
    assert!(
        report.environments[0].warnings.is_empty(),
        "compose.yaml exists here"
    );
}

#[test]
fn missing_compose_files_warn_in_validate_and_fail_check_deployable_here() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, manifest("alpha")).unwrap();
    let env = load_file(&path).unwrap();
    assert_eq!(env.warnings.len(), 1);
    let warning = &env.warnings[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(
        (warning.line, warning.field.as_deref()),
        (Some(7), Some("spec.compose.directory"))
    );
    assert!(
        warning.message.contains("compose.yaml does not exist"),
        "{warning}"
    );
    let errors = env.check_deployable_here().unwrap_err();
    assert_eq!(errors[0].severity, Severity::Error);
    std::fs::write(dir.path().join("compose.yaml"), "services: {}\n").unwrap();
    assert!(env.check_deployable_here().is_ok());
}

#[test]
fn duplicate_names_report_both_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.yaml"), manifest("shop")).unwrap();
    std::fs::write(dir.path().join("two.yaml"), manifest("shop")).unwrap();
    std::fs::write(dir.path().join("three.yaml"), manifest("other")).unwrap();
    let report = load_dir(dir.path()).unwrap();
    let names: Vec<&str> = report.environments.iter().map(Environment::name).collect();
    assert_eq!(names, ["other"]);
    let errors: Vec<String> = report
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains(
        "one.yaml:4:3: metadata.name: duplicate environment name \"shop\": also declared in"
    ));
    assert!(errors[0].ends_with("two.yaml"), "{}", errors[0]);
    assert!(
        errors[1].contains("two.yaml:4:3:") && errors[1].ends_with("one.yaml"),
        "{}",
        errors[1]
    );
}

#[test]
fn refuses_big_files_fifos_directories_and_symlinks_leading_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("elsewhere.yaml"), manifest("elsewhere")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ok.yaml"), manifest("fine")).unwrap();
    let mut big = manifest("big");
    big.push_str(&format!("# {}\n", "x".repeat(MAX_MANIFEST_BYTES as usize)));
    std::fs::write(d.join("big.yaml"), big).unwrap();
    std::fs::create_dir(d.join("dir.yaml")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("elsewhere.yaml"),
        d.join("link-out.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(d.join("ok.yaml"), d.join("link-in.yaml")).unwrap();
    std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.yaml")).unwrap();
    let fifo = std::ffi::CString::new(d.join("pipe.yaml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let started = std::time::Instant::now();
    let report = load_dir(d).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a FIFO must not block"
    );
    let by_file = |name: &str| {
        report
            .problems
            .iter()
            .find(|p| p.file.ends_with(name) && p.is_error())
            .map(|p| p.message.clone())
            .unwrap_or_else(|| panic!("no error for {name}: {:#?}", report.problems))
    };
    assert!(by_file("big.yaml").contains("larger than 1048576 bytes"));
    assert!(by_file("dir.yaml").contains("is a directory"));
    assert!(by_file("pipe.yaml").contains("not a regular file"));
    assert!(by_file("link-out.yaml").contains("symlink points outside the desired directory"));
    assert!(by_file("dangling.yaml").contains("symlink cannot be followed"));
    // The in-directory symlink is loaded, so it duplicates ok.yaml's name.
    assert!(by_file("link-in.yaml").contains("duplicate environment name \"fine\""));
}

#[test]
fn unreadable_directory_is_the_only_failure() {
    let error = load_dir(Path::new("/nonexistent/desired")).unwrap_err();
    assert_eq!(error.kind(), "read_dir");
    assert!(error.to_string().contains("/nonexistent/desired"));
}

#[test]
fn manifest_names() {
    for (name, loaded) in [
        ("a.yaml", true),
        ("a.yml", true),
        (".a.yaml", false),
        (".#a.yaml", false),
        ("a.yaml~", false),
        ("a.yaml.swp", false),
        ("a.yaml.tmp", false),
        ("a.json", false),
    ] {
        assert_eq!(is_manifest_name(name), loaded, "{name}");
    }
}

/// Issue 14 item 1: two manifests owning one Compose project on a shared host; the first (file
/// name order) keeps it, the second is refused naming both; disjoint `hosts` may share it.
#[test]
fn a_project_has_one_owning_environment_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let with_project = |name: &str, project: &str, hosts: &str| {
        format!(
            "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  \
             hosts: [{hosts}]\n  compose:\n    project: {project}\n    directory: .\n"
        )
    };
    let d = dir.path();
    std::fs::write(d.join("a.yaml"), with_project("shop", "shop", "")).unwrap();
    std::fs::write(d.join("b.yaml"), with_project("shop-copy", "shop", "")).unwrap();
    std::fs::write(d.join("c.yaml"), with_project("eu", "edge", "eu-1")).unwrap();
    std::fs::write(d.join("d.yaml"), with_project("us", "edge", "us-1")).unwrap();

    let report = load_dir(d).unwrap();

    let names: Vec<&str> = report.environments.iter().map(Environment::name).collect();
    assert_eq!(names, ["shop", "eu", "us"]);
    let errors: Vec<String> = (report.problems.iter())
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("b.yaml:8:5: spec.compose.project: Compose project \"shop\" already belongs to environment \"shop\""), "{}", errors[0]);
    assert!(
        errors[0].contains("a.yaml"),
        "names the owner's file: {}",
        errors[0]
    );
}

/// Issue 14 item 9: only `validate` refuses an empty desired directory; to the agent, which
/// loads with `load_dir`, it stays a valid, empty desired set (every environment removed).
#[test]
fn an_empty_directory_is_a_valid_empty_desired_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".#shop.yaml"), "garbage: [\n").unwrap();

    let report = load_dir(dir.path()).unwrap();

    assert!(report.environments.is_empty());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.is_valid());
}
