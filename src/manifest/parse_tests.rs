//! Table tests for parsing and every validation rule, through [`parse_str`].

use super::*;

const HEADER: &str = "apiVersion: c2quay.dev/v1\nkind: Environment\nmetadata:\n  name: shop\n";

/// A valid spec; cases replace pieces of it.
const SPEC: &str = "\
spec:
  compose:
    directory: ../examples/shop
  broker:
    url: http://127.0.0.1:9292
    environment: staging
  services:
    web:
      version: \"1\"
      image: c2quay-test/web:{version}
";

fn parse(text: &str) -> Result<Environment, Vec<Problem>> {
    parse_str(text, Path::new("/srv/desired/shop.yaml"))
}

fn errors_of(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(env) => panic!(
            "expected errors, got a valid environment with warnings {:?}",
            env.warnings
        ),
        Err(problems) => problems.into_iter().filter(Problem::is_error).collect(),
    }
}

#[test]
fn a_valid_manifest_resolves_paths_defaults_and_generation() {
    let env = parse(&format!("{HEADER}{SPEC}")).unwrap();
    assert_eq!(env.name(), "shop");
    assert_eq!(env.project, "shop");
    assert_eq!(env.compose_directory, Path::new("/srv/examples/shop"));
    assert_eq!(
        env.compose_files,
        vec![PathBuf::from("/srv/examples/shop/compose.yaml")]
    );
    assert_eq!(env.wait_timeout(), std::time::Duration::from_secs(120));
    assert_eq!(
        env.pinned_image("web").as_deref(),
        Some("c2quay-test/web:1")
    );
    assert_eq!(env.pacticipant("web"), "web");
    assert_eq!(env.gated_services(), ["web"]);
    assert_eq!(env.pinned_services(), ["web"]);
    assert_eq!(env.generation.len(), 16);
    assert!(env.warnings.is_empty(), "{:?}", env.warnings);
    // The generation follows the content, not the formatting or comments.
    let reformatted = format!("# a comment\n{HEADER}{}", SPEC.replace("\"1\"", "'1'"));
    assert_eq!(parse(&reformatted).unwrap().generation, env.generation);
    let bumped = parse(&format!("{HEADER}{}", SPEC.replace("\"1\"", "\"2\""))).unwrap();
    assert_ne!(bumped.generation, env.generation);
}

#[test]
fn accessors_cover_gate_only_pacticipant_and_absolute_directories() {
    let text = format!(
        "{HEADER}spec:\n  compose:\n    project: shop-stg\n    directory: /opt/shop\n    files: [a.yaml, b/c.yaml]\n    waitTimeout: 59m30s\n  broker:\n    url: https://b.example\n    environment: prod\n  services:\n    web:\n      pacticipant: shop-web\n      version: \"2\"\n      image: web@sha256:{}\n    pay:\n      version: \"7\"\n      gateOnly: true\n    redis: {{}}\n    cache:\n      image: redis:7\n",
        "a".repeat(64)
    );
    let env = parse(&text).unwrap();
    assert_eq!(env.project, "shop-stg");
    assert_eq!(
        env.compose_files,
        [
            PathBuf::from("/opt/shop/a.yaml"),
            PathBuf::from("/opt/shop/b/c.yaml")
        ]
    );
    assert_eq!(env.wait_timeout(), std::time::Duration::from_secs(3570));
    assert_eq!(env.pacticipant("web"), "shop-web");
    assert_eq!(env.gated_services(), ["pay", "web"]);
    assert_eq!(env.pinned_services(), ["cache", "web"]);
    assert_eq!(env.pinned_image("redis"), None);
    assert!(env.owned_by("any-host"));
}

#[test]
fn type_errors_carry_serde_yaml_locations_and_field_paths() {
    let cases: Vec<(String, Option<&str>, &str, usize)> = vec![
        (
            format!(
                "{HEADER}{}",
                SPEC.replace("      image:", "      tag: x\n      image:")
            ),
            Some("spec.services.web.tag"),
            "unknown field `tag`",
            14,
        ),
        (
            format!(
                "{HEADER}{}",
                SPEC.replace(
                    "    directory: ../examples/shop\n",
                    "    directory: ../examples/shop\n    waitTimeout: soon\n"
                )
            ),
            Some("spec.compose.waitTimeout"),
            "invalid duration \"soon\"",
            8,
        ),
        (
            format!("{HEADER}{SPEC}  policy:\n    rollback: maybe\n"),
            Some("spec.policy.rollback"),
            "unknown variant `maybe`",
            16,
        ),
        (
            format!(
                "{HEADER}{SPEC}  smoke:\n  - name: s\n    exec: {{ command: \"curl -f http://x\" }}\n"
            ),
            Some("spec.smoke[0].exec.command"),
            "invalid type: string",
            17,
        ),
        (
            format!("{HEADER}{SPEC}  suspend: 3\n"),
            Some("spec.suspend"),
            "invalid type",
            15,
        ),
        (
            format!("{HEADER}spec:\n  suspend: true\n"),
            Some("spec.compose"),
            "missing field `compose`",
            // The mapping that lacks the field, at its key.
            5,
        ),
        (
            "apiVersion: [\nkind".to_string(),
            None,
            "while parsing a flow sequence",
            3,
        ),
    ];
    for (text, field, message, line) in cases {
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let error = &errors[0];
        assert_eq!(error.field.as_deref(), field, "{error}");
        assert!(error.message.contains(message), "{error}");
        assert_eq!(error.line, Some(line), "{error}");
        let own = format!(" at line {} column {}", line, error.column.unwrap_or(0));
        assert!(
            !error.message.contains(&own),
            "location is printed once: {error}"
        );
    }
}

#[test]
fn inline_secrets_win_over_unknown_field_and_are_never_echoed() {
    let text = format!(
        "{HEADER}{}",
        SPEC.replace(
            "    environment: staging\n",
            "    environment: staging\n    token: tok-canary-789\n"
        )
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field.as_deref(), Some("spec.broker.token"));
    assert_eq!(errors[0].line, Some(11));
    assert!(errors[0].message.contains("tokenFile") && errors[0].message.contains("tokenEnv"));
    assert!(!errors[0].to_string().contains("canary"));
    let exec = format!(
        "{HEADER}{SPEC}  smoke:\n  - name: s\n    exec:\n      command: [x]\n      env:\n        DB_PASSWORD: hunter2\n"
    );
    let errors = errors_of(&exec);
    assert_eq!(
        errors[0].field.as_deref(),
        Some("spec.smoke[0].exec.env.DB_PASSWORD")
    );
    assert_eq!(errors[0].line, Some(20));
    assert!(!errors[0].to_string().contains("hunter2"));
    // A token pasted into tokenEnv by mistake is not a variable name, and is not echoed either.
    let pasted = format!(
        "{HEADER}{}",
        SPEC.replace(
            "    environment: staging\n",
            "    environment: staging\n    tokenEnv: tok-canary.abc\n"
        )
    );
    let errors = errors_of(&pasted);
    assert_eq!(errors[0].field.as_deref(), Some("spec.broker.tokenEnv"));
    assert!(!errors[0].to_string().contains("canary"), "{}", errors[0]);
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let started = std::time::Instant::now();
    let errors = errors_of(&bomb);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        errors[0].message.contains("repetition limit exceeded"),
        "{}",
        errors[0]
    );
    assert!(errors[0].message.contains("alias bomb"), "{}", errors[0]);

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let errors = errors_of(&deep);
    assert!(
        errors[0].message.contains("nesting too deep"),
        "{}",
        errors[0]
    );
}

#[test]
fn empty_and_multi_document_files_are_errors() {
    assert!(errors_of("")[0].message.contains("empty manifest"));
    assert!(
        errors_of("# only a comment\n")[0]
            .message
            .contains("empty manifest")
    );
    let two = format!("{HEADER}{SPEC}---\n{HEADER}{SPEC}");
    assert!(
        errors_of(&two)[0]
            .message
            .contains("more than one document")
    );
}

#[test]
fn normalize_resolves_dot_dot_lexically() {
    assert_eq!(
        normalize(Path::new("/a/desired/../examples/./shop")),
        Path::new("/a/examples/shop")
    );
    assert_eq!(normalize(Path::new("/a/../../b")), Path::new("/b"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_text() -> String {
        format!(
            "{HEADER}{SPEC}  smoke:\n  - name: s\n    http: {{ url: \"http://a/\", status: 200 }}\n    timeout: 1s\n"
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text: no panic, and every problem names the file.
        #[test]
        fn arbitrary_text_never_panics(text in "[ a-z:{}\\[\\],&*!|>'\"#\\-\n0-9]{0,200}") {
            if let Err(problems) = parse(&text) {
                prop_assert!(!problems.is_empty());
                prop_assert!(problems.iter().all(|p| p.file == Path::new("/srv/desired/shop.yaml")));
            }
        }

        /// A valid manifest with one byte changed or one line dropped: no panic, and every line
        /// reported exists in the text.
        #[test]
        fn mutated_manifests_report_real_lines(
            at in 0usize..400,
            byte in prop::sample::select(vec![b' ', b':', b'-', b'{', b'[', b'"', b'x', b'0', b'\n', b'#']),
            drop_line in 0usize..25,
        ) {
            let mut bytes = valid_text().into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            let mutated = String::from_utf8(bytes).unwrap();
            let dropped: String = valid_text()
                .lines()
                .enumerate()
                .filter(|(i, _)| *i != drop_line)
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            for text in [mutated, dropped] {
                let n_lines = text.lines().count().max(1);
                let problems = match parse(&text) {
                    Ok(env) => env.warnings,
                    Err(problems) => problems,
                };
                for problem in problems {
                    prop_assert!(problem.line.is_none_or(|l| l <= n_lines + 1), "{problem} in\n{text}");
                }
            }
        }
    }
}

#[test]
fn flow_nesting_beyond_the_limit_is_refused_before_the_yaml_parser() {
    let ok = format!(
        "{}{}",
        "[".repeat(MAX_FLOW_NESTING),
        "]".repeat(MAX_FLOW_NESTING)
    );
    assert!(
        !errors_of(&ok)[0].message.contains("nested more than"),
        "{}",
        errors_of(&ok)[0]
    );
    let text = format!("a: 1\nb: {}", "[".repeat(MAX_FLOW_NESTING + 1));
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("nested more than 16 levels"),
        "{}",
        errors[0]
    );
    assert_eq!(
        (errors[0].line, errors[0].column),
        (Some(2), Some(4 + MAX_FLOW_NESTING))
    );
    // 1 MiB of brackets is refused at once (libyaml alone needs minutes for it).
    let started = std::time::Instant::now();
    let errors = errors_of(&"[".repeat(1024 * 1024));
    assert!(
        errors[0].message.contains("nesting too deep"),
        "{}",
        errors[0]
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
