//! Release identity from the artefacts (issue 21 item 3): `version: { from: digest }` and
//! `version: { from: git }` resolved when a manifest is loaded, refused with file, line,
//! column and field when they cannot be, and plain-scalar versions kept as written.

use super::*;
use crate::manifest::{Environment, Problem, parse_str};

const HEADER: &str = "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\n";
const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// A manifest whose `web` service has `version` and `image` as given (YAML fragments).
fn manifest(version: &str, image: &str) -> String {
    format!(
        "{HEADER}spec:\n  compose:\n    directory: ../examples/shop\n  broker:\n    url: http://127.0.0.1:9292\n    \
         environment: staging\n  services:\n    web:\n      version: {version}\n      image: {image}\n"
    )
}

fn digest_image(hex: &str) -> String {
    format!("\"127.0.0.1:5000/c2quay-test/web@sha256:{hex}\"")
}

/// A directory holding `desired/` in a git work tree (a hand-made `.git`: HEAD on `main` at
/// `sha`, or unborn when `sha` is `None`).
fn work_tree(sha: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = dir.path().join(".git");
    std::fs::create_dir_all(git.join("refs/heads")).unwrap();
    std::fs::create_dir_all(dir.path().join("desired")).unwrap();
    std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    if let Some(sha) = sha {
        std::fs::write(git.join("refs/heads/main"), format!("{sha}\n")).unwrap();
    }
    dir
}

fn parse_in(dir: &Path, text: &str) -> Result<Environment, Vec<Problem>> {
    parse_str(text, &dir.join("desired/shop.yaml"))
}

fn error_lines(result: Result<Environment, Vec<Problem>>) -> Vec<String> {
    match result {
        Ok(env) => panic!("expected errors, got generation {}", env.generation),
        Err(problems) => problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.to_string())
            .collect(),
    }
}

#[test]
fn a_digest_version_is_the_pinned_image_s_digest_and_its_generation_follows_it() {
    let path = Path::new("/srv/desired/shop.yaml");
    let env = parse_str(&manifest("{ from: digest }", &digest_image(HEX)), path).unwrap();
    assert_eq!(env.version("web"), Some(format!("sha256:{HEX}").as_str()));
    assert_eq!(
        env.pinned_image("web"),
        Some(format!("127.0.0.1:5000/c2quay-test/web@sha256:{HEX}"))
    );
    assert_eq!(env.gated_services(), ["web"]);
    // With a tag too: the digest is what is pinned, and the version.
    let tagged = format!("\"127.0.0.1:5000/c2quay-test/web:1@sha256:{HEX}\"");
    let with_tag = parse_str(&manifest("{ from: digest }", &tagged), path).unwrap();
    assert_eq!(with_tag.version("web"), env.version("web"));

    // Another digest is another release, so another generation; the same digest written out
    // is the same desired state.
    let other = parse_str(
        &manifest("{ from: digest }", &digest_image(&HEX.replace('0', "f"))),
        path,
    )
    .unwrap();
    assert_ne!(other.generation, env.generation);
    let literal = format!("\"sha256:{HEX}\"");
    let written = parse_str(&manifest(&literal, &digest_image(HEX)), path).unwrap();
    assert_eq!(written.generation, env.generation);
}

#[test]
fn a_digest_version_without_a_digest_pin_is_refused_at_its_field() {
    let path = Path::new("/srv/desired/shop.yaml");
    let lines = error_lines(parse_str(
        &manifest("{ from: digest }", "c2quay-test/web:1"),
        path,
    ));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("/srv/desired/shop.yaml:13:18: spec.services.web.version.from: `from: digest` needs a digest pin"),
        "{lines:?}"
    );
    let cases = [
        (
            manifest("{ from: digest }", "\"c2quay-test/web@sha256:{version}\""),
            "spec.services.web.image: cannot use `{version}`",
        ),
        (
            manifest("{ from: digest, short: 12 }", &digest_image(HEX)),
            "spec.services.web.version.short: applies to `from: git` only",
        ),
        (
            manifest("{ from: digest }", "null"),
            "spec.services.web.version.from: `from: digest` takes the version from the pinned image's @sha256: digest, but the service has no `image`",
        ),
    ];
    for (text, expected) in cases {
        let lines = error_lines(parse_str(&text, path));
        assert!(
            lines.iter().any(|l| l.contains(expected)),
            "{expected}: {lines:?}"
        );
    }
}

#[test]
fn a_gate_only_service_takes_its_digest_version_from_an_image_it_does_not_run() {
    let text = manifest("{ from: digest }", &digest_image(HEX))
        .replace("      version:", "      gateOnly: true\n      version:");
    let env = parse_str(&text, Path::new("/srv/desired/shop.yaml")).unwrap();
    assert_eq!(env.version("web"), Some(format!("sha256:{HEX}").as_str()));
    assert!(env.pinned_services().is_empty());
    assert!(env.warnings.is_empty(), "{:?}", env.warnings);
}

#[test]
fn a_git_version_is_the_desired_directory_s_commit_whole_or_short_shared_by_services() {
    let tree = work_tree(Some(SHA));
    let text = manifest("{ from: git }", "\"c2quay-test/web:{version}\"").replace(
        "  services:\n",
        "  services:\n    api:\n      gateOnly: true\n      version: { from: git, short: 12 }\n",
    );
    let env = parse_in(tree.path(), &text).unwrap();
    assert_eq!(env.version("web"), Some(SHA));
    assert_eq!(env.version("api"), Some(&SHA[..12]));
    assert_eq!(
        env.pinned_image("web"),
        Some(format!("c2quay-test/web:{SHA}"))
    );
    // A new commit is a new release: a new generation.
    let next = SHA.replace('8', "7");
    std::fs::write(
        tree.path().join(".git/refs/heads/main"),
        format!("{next}\n"),
    )
    .unwrap();
    let moved = parse_in(tree.path(), &text).unwrap();
    assert_eq!(moved.version("web"), Some(next.as_str()));
    assert_ne!(moved.generation, env.generation);
}

#[test]
fn a_git_version_outside_a_work_tree_or_before_the_first_commit_is_refused_at_its_field() {
    let text = manifest("{ from: git }", "c2quay-test/web:1");
    let plain = tempfile::tempdir().unwrap();
    std::fs::create_dir(plain.path().join("desired")).unwrap();
    if crate::git::find_git_dir(plain.path()).is_none() {
        let lines = error_lines(parse_in(plain.path(), &text));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(":13:18: spec.services.web.version.from: `from: git`")
                && lines[0].ends_with("is not in a git work tree"),
            "{lines:?}"
        );
    }
    let unborn = work_tree(None);
    let lines = error_lines(parse_in(unborn.path(), &text));
    assert!(
        lines.len() == 1 && lines[0].ends_with("has no commit yet"),
        "{lines:?}"
    );
    for short in ["6", "41"] {
        let text = manifest(
            &format!("{{ from: git, short: {short} }}"),
            "c2quay-test/web:1",
        );
        let lines = error_lines(parse_in(unborn.path(), &text));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("spec.services.web.version.short: must be from 7 to 40")),
            "{short}: {lines:?}"
        );
    }
}

#[test]
fn the_shape_check_names_an_unknown_source_and_a_misspelt_key() {
    let path = Path::new("/srv/desired/shop.yaml");
    let lines = error_lines(parse_str(
        &manifest("{ from: tag }", "c2quay-test/web:1"),
        path,
    ));
    assert!(
        lines.iter().any(|l| l.contains(
            "spec.services.web.version.from: unknown variant `tag`, expected one of `digest`, `git`"
        )),
        "{lines:?}"
    );
    let lines = error_lines(parse_str(
        &manifest("{ form: git }", "c2quay-test/web:1"),
        path,
    ));
    assert!(
        lines.iter().any(|l| l.contains("unknown field `form`"))
            && lines.iter().any(|l| l.contains("missing field `from`")),
        "{lines:?}"
    );
}

#[test]
fn a_version_written_as_a_plain_number_or_boolean_keeps_its_text() {
    let path = Path::new("/srv/desired/shop.yaml");
    for (written, version) in [
        ("1.10", "1.10"),
        ("2", "2"),
        ("1.0e3 # a comment", "1.0e3"),
        ("true", "true"),
        ("\"1.10\"", "1.10"),
    ] {
        let env = parse_str(&manifest(written, "c2quay-test/web:{version}"), path).unwrap();
        assert_eq!(env.version("web"), Some(version), "{written}");
    }
    let flow = format!(
        "{HEADER}spec:\n  compose:\n    directory: ../examples/shop\n  services:\n    \
         web: {{ version: 1.10, image: \"c2quay-test/web:{{version}}\" }}\n"
    );
    let env = parse_str(&flow, path).unwrap();
    assert_eq!(
        env.pinned_image("web").as_deref(),
        Some("c2quay-test/web:1.10")
    );
}
