//! Table tests for every rule, through `parse_str` (so each case also checks the field's line),
//! and for the pure predicates behind them.

use super::*;
use crate::manifest::{Environment, Problem, parse_str};

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
    parse_str(text, std::path::Path::new("/srv/desired/shop.yaml"))
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

/// (name, text replacing SPEC pieces, expected field, expected message substring, expected line)
#[test]
fn every_rule_reports_its_field_line_and_reason() {
    let spec = |from: &str, to: &str| {
        assert!(SPEC.contains(from), "{from}");
        format!("{HEADER}{}", SPEC.replacen(from, to, 1))
    };
    let smoke = |check: &str| format!("{HEADER}{SPEC}  smoke:\n  - name: s\n{check}");
    let broker = |extra: &str| {
        spec(
            "    environment: staging\n",
            &format!("    environment: staging\n{extra}"),
        )
    };
    let cases: Vec<(&str, String, &str, &str, Option<usize>)> = vec![
        (
            "api version",
            format!("apiVersion: v2\nkind: Environment\nmetadata:\n  name: a\n{SPEC}"),
            "apiVersion",
            "unsupported apiVersion \"v2\"",
            Some(1),
        ),
        (
            "kind",
            HEADER.replace("kind: Environment", "kind: Deployment") + SPEC,
            "kind",
            "expected \"Environment\"",
            Some(2),
        ),
        (
            "name upper",
            HEADER.replace("name: shop", "name: Shop") + SPEC,
            "metadata.name",
            "invalid name \"Shop\"",
            Some(4),
        ),
        (
            "name dash",
            HEADER.replace("name: shop", "name: shop-") + SPEC,
            "metadata.name",
            "pattern",
            Some(4),
        ),
        (
            "name long",
            HEADER.replace("name: shop", &format!("name: {}", "a".repeat(64))) + SPEC,
            "metadata.name",
            "1-63",
            Some(4),
        ),
        (
            "project",
            spec("    directory:", "    project: Shop!\n    directory:"),
            "spec.compose.project",
            "invalid Compose project name",
            Some(7),
        ),
        (
            "wait zero",
            spec(
                "    directory: ../examples/shop\n",
                "    directory: ../examples/shop\n    waitTimeout: 0s\n",
            ),
            "spec.compose.waitTimeout",
            "0s is out of bounds: must be between 1s and 1h",
            Some(8),
        ),
        (
            "wait too long",
            spec(
                "    directory: ../examples/shop\n",
                "    directory: ../examples/shop\n    waitTimeout: 1h1s\n",
            ),
            "spec.compose.waitTimeout",
            "1h1s is out of bounds: must be between 1s and 1h",
            Some(8),
        ),
        (
            "broker url",
            spec("http://127.0.0.1:9292", "ftp://broker"),
            "spec.broker.url",
            "must use http or https",
            Some(9),
        ),
        (
            "broker url with one slash",
            spec("http://127.0.0.1:9292", "https:/broker.example"),
            "spec.broker.url",
            "\"https:/broker.example\" must start with https://, written out",
            Some(9),
        ),
        (
            "broker url junk",
            spec("http://127.0.0.1:9292", "not a url"),
            "spec.broker.url",
            "is not a URL",
            Some(9),
        ),
        (
            "broker url creds",
            spec("http://127.0.0.1:9292", "https://u:p@b.example"),
            "spec.broker.url",
            "credentials in the URL",
            Some(9),
        ),
        (
            "broker env empty",
            spec("environment: staging", "environment: \"\""),
            "spec.broker.environment",
            "must not be empty",
            Some(10),
        ),
        (
            "two auth methods",
            broker("    tokenFile: /t\n    usernameEnv: U\n    passwordEnv: P\n"),
            "spec.broker.tokenFile",
            "choose one auth method",
            Some(11),
        ),
        (
            "password alone",
            broker("    passwordFile: /p\n"),
            "spec.broker.passwordFile",
            "needs a username",
            Some(11),
        ),
        (
            "username alone",
            broker("    usernameEnv: U\n"),
            "spec.broker.usernameEnv",
            "needs a password",
            Some(11),
        ),
        (
            "file and env",
            broker("    tokenFile: /t\n    tokenEnv: T\n"),
            "spec.broker.tokenEnv",
            "not both",
            Some(12),
        ),
        (
            "empty file",
            broker("    tokenFile: \"\"\n"),
            "spec.broker.tokenFile",
            "must not be empty",
            Some(11),
        ),
        (
            "bad env name",
            broker("    tokenEnv: 1-TOKEN\n"),
            "spec.broker.tokenEnv",
            "not an environment variable name",
            Some(11),
        ),
        (
            "trusted origin with a path",
            broker(
                "    trustedOrigins:\n    - https://ok.example\n    - https://broker.example/broker\n",
            ),
            "spec.broker.trustedOrigins[1]",
            "\"https://broker.example/broker\" has a path, query or fragment; an origin is only `scheme://host[:port]` (e.g. https://broker.example)",
            Some(13),
        ),
        (
            "trusted origin not http",
            broker("    trustedOrigins: [\"ftp://broker.example\"]\n"),
            "spec.broker.trustedOrigins[0]",
            "must use http or https, not ftp",
            Some(11),
        ),
        (
            "empty version",
            spec("version: \"1\"", "version: \"\""),
            "spec.services.web.version",
            "must not be empty",
            Some(13),
        ),
        (
            "version spaces",
            spec("version: \"1\"", "version: \"1 2\""),
            "spec.services.web.version",
            "whitespace",
            Some(13),
        ),
        (
            "no image",
            spec("      image: c2quay-test/web:{version}\n", ""),
            "spec.services.web.image",
            "needs an `image`",
            Some(12),
        ),
        (
            "gateOnly no version",
            spec(
                "      version: \"1\"\n      image: c2quay-test/web:{version}\n",
                "      gateOnly: true\n",
            ),
            "spec.services.web.gateOnly",
            "needs a `version`",
            Some(13),
        ),
        (
            "placeholder no version",
            spec("      version: \"1\"\n", ""),
            "spec.services.web.image",
            "no `version`",
            Some(13),
        ),
        (
            "other placeholder",
            spec("{version}", "{tag}"),
            "spec.services.web.image",
            "only placeholder",
            Some(14),
        ),
        (
            "bad digest",
            spec("c2quay-test/web:{version}", "web@sha256:abc"),
            "spec.services.web.image",
            "malformed digest",
            Some(14),
        ),
        (
            "require digest",
            format!("{HEADER}{SPEC}  policy:\n    requireDigest: true\n"),
            "spec.services.web.image",
            "no @sha256: digest",
            Some(14),
        ),
        (
            "service name",
            spec("    web:", "    -web:"),
            "spec.services.-web",
            "invalid Compose service name",
            Some(12),
        ),
        (
            "empty pacticipant",
            spec("      version:", "      pacticipant: \"\"\n      version:"),
            "spec.services.web.pacticipant",
            "must not be empty",
            Some(13),
        ),
        (
            "two kinds",
            smoke("    tcp: { address: \"a:1\" }\n    exec: { command: [true] }\n"),
            "spec.smoke[0]",
            "exactly one of http, tcp, exec (found tcp and exec)",
            Some(16),
        ),
        (
            "no kind",
            smoke("    timeout: 1s\n"),
            "spec.smoke[0]",
            "found none",
            Some(16),
        ),
        (
            "smoke url",
            smoke("    http: { url: \"file:///etc\" }\n"),
            "spec.smoke[0].http.url",
            "http or https",
            Some(17),
        ),
        (
            "smoke status",
            smoke("    http: { url: \"http://a\", status: 42 }\n"),
            "spec.smoke[0].http.status",
            "between 100 and 599",
            Some(17),
        ),
        (
            "tcp address",
            smoke("    tcp:\n      address: localhost\n"),
            "spec.smoke[0].tcp.address",
            "not host:port",
            Some(18),
        ),
        (
            "tcp port 0",
            smoke("    tcp: { address: \"a:0\" }\n"),
            "spec.smoke[0].tcp.address",
            "not host:port",
            Some(17),
        ),
        (
            "exec empty",
            smoke("    exec: { command: [] }\n"),
            "spec.smoke[0].exec.command",
            "non-empty argv",
            Some(17),
        ),
        (
            "exec env name",
            smoke("    exec: { command: [x], env: { \"A-B\": y } }\n"),
            "spec.smoke[0].exec.env.A-B",
            "not an environment variable name",
            Some(17),
        ),
        (
            "smoke timeout",
            smoke("    tcp: { address: \"a:1\" }\n    timeout: 0s\n"),
            "spec.smoke[0].timeout",
            "0s is out of bounds: must be between 100ms and 10m",
            Some(18),
        ),
        (
            "smoke timeout too long",
            smoke("    tcp: { address: \"a:1\" }\n    timeout: 11m\n"),
            "spec.smoke[0].timeout",
            "11m is out of bounds: must be between 100ms and 10m",
            Some(18),
        ),
        (
            "smoke interval",
            smoke("    tcp: { address: \"a:1\" }\n    interval: 0ms\n"),
            "spec.smoke[0].interval",
            "0s is out of bounds: must be between 100ms and 10m",
            Some(18),
        ),
        (
            "attempts",
            smoke("    tcp: { address: \"a:1\" }\n    attempts: 0\n"),
            "spec.smoke[0].attempts",
            "at least 1",
            Some(18),
        ),
        (
            "dup smoke",
            format!(
                "{HEADER}{SPEC}  smoke:\n  - name: s\n    tcp: {{ address: \"a:1\" }}\n  - name: s\n    tcp: {{ address: \"a:1\" }}\n"
            ),
            "spec.smoke[1].name",
            "duplicate smoke check name",
            Some(18),
        ),
        (
            "gate retry",
            format!("{HEADER}{SPEC}  policy:\n    gateRetry: {{ initial: 1m, max: 10s }}\n"),
            "spec.policy.gateRetry.max",
            "not be smaller",
            Some(16),
        ),
        (
            "gate retry initial too short",
            format!("{HEADER}{SPEC}  policy:\n    gateRetry: {{ initial: 500ms, max: 10s }}\n"),
            "spec.policy.gateRetry.initial",
            "500ms is out of bounds: must be between 1s and 1h",
            Some(16),
        ),
        (
            "gate retry max too long",
            format!("{HEADER}{SPEC}  policy:\n    gateRetry: {{ initial: 1m, max: 13h }}\n"),
            "spec.policy.gateRetry.max",
            "13h is out of bounds: must be between 1s and 12h",
            Some(16),
        ),
        (
            "min ready too long",
            format!("{HEADER}{SPEC}  policy:\n    minReady: 10m1s\n"),
            "spec.policy.minReady",
            "10m1s is out of bounds: must be between 0s and 10m",
            Some(16),
        ),
        (
            "empty host",
            spec("spec:\n", "spec:\n  hosts: [\"\"]\n"),
            "spec.hosts[0]",
            "invalid host name",
            Some(6),
        ),
    ];
    for (name, text, field, message, line) in cases {
        let errors = errors_of(&text);
        let hit = errors.iter().find(|p| p.field.as_deref() == Some(field));
        let Some(hit) = hit else {
            panic!("{name}: no error at {field}: {errors:#?}")
        };
        assert!(
            hit.message.contains(message),
            "{name}: {:?} lacks {message:?}",
            hit.message
        );
        assert_eq!(hit.line, line, "{name}: line of {hit}\n{text}");
    }
}

#[test]
fn warnings_do_not_invalidate() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{HEADER}{}", SPEC.replace("{version}", "latest")),
            "spec.services.web.image",
            "mutable tag :latest",
        ),
        (
            format!("{HEADER}{}", SPEC.replace(":{version}", "")),
            "spec.services.web.image",
            "has no tag",
        ),
        (
            format!(
                "{HEADER}{}",
                SPEC.replace(
                    "  broker:\n    url: http://127.0.0.1:9292\n    environment: staging\n",
                    ""
                )
            ),
            "spec.services.web.version",
            "not gated: no broker",
        ),
        (
            format!(
                "{HEADER}{}",
                SPEC.replace(
                    "      version: \"1\"\n      image: c2quay-test/web:{version}\n",
                    "      version: \"1\"\n      gateOnly: true\n      image: x:1\n"
                )
            ),
            "spec.services.web.image",
            "ignored",
        ),
    ];
    for (text, field, message) in cases {
        let env = parse(&text).unwrap_or_else(|p| panic!("{field}: {p:#?}"));
        let warning = env
            .warnings
            .iter()
            .find(|w| w.field.as_deref() == Some(field))
            .expect(field);
        assert_eq!(warning.severity, Severity::Warning);
        assert!(warning.message.contains(message), "{}", warning.message);
        assert!(warning.line.is_some(), "{warning}");
    }
    let no_broker = format!(
        "{HEADER}{}",
        SPEC.replace(
            "  broker:\n    url: http://127.0.0.1:9292\n    environment: staging\n",
            ""
        )
    );
    assert!(parse(&no_broker).unwrap().gated_services().is_empty());
}

#[test]
fn dns_label_names() {
    for (name, valid) in [
        ("shop", true),
        ("shop-staging", true),
        ("a", true),
        ("0", true),
        (&*"a".repeat(63), true),
        (&*"a".repeat(64), false),
        ("", false),
        ("-shop", false),
        ("shop-", false),
        ("Shop", false),
        ("shop_staging", false),
        ("shop.staging", false),
    ] {
        assert_eq!(is_dns_label(name), valid, "{name:?}");
    }
}

#[test]
fn host_port_addresses() {
    for (address, valid) in [
        ("127.0.0.1:5432", true),
        ("db.internal:80", true),
        ("[::1]:8080", true),
        ("127.0.0.1", false),
        (":80", false),
        ("host:0", false),
        ("host:65536", false),
        ("host:http", false),
        ("::1:80", false),
        ("[nope]:80", false),
    ] {
        assert_eq!(is_host_port(address), valid, "{address:?}");
    }
}

#[test]
fn env_names_and_compose_names() {
    for (name, valid) in [
        ("PACT_BROKER_TOKEN", true),
        ("_x1", true),
        ("1X", false),
        ("A-B", false),
        ("", false),
    ] {
        assert_eq!(is_env_name(name), valid, "{name:?}");
    }
    for (name, valid) in [
        ("web", true),
        ("Web_1.x-y", true),
        ("-web", false),
        ("we b", false),
        ("", false),
    ] {
        assert_eq!(is_compose_service(name), valid, "{name:?}");
    }
    for (name, valid) in [
        ("shop", true),
        ("shop_2-x", true),
        ("Shop", false),
        ("_shop", false),
        ("", false),
    ] {
        assert_eq!(is_compose_project(name), valid, "{name:?}");
    }
}

#[test]
fn http_urls() {
    assert!(check_http_url("http://127.0.0.1:9292").is_ok());
    assert!(check_http_url("https://broker.example.com/prefix/").is_ok());
    for (url, reason) in [
        ("ftp://b", "http or https"),
        ("broker.example.com", "not a URL"),
        ("https://user:pw@b.example", "credentials in the URL"),
    ] {
        let error = check_http_url(url).unwrap_err();
        assert!(error.contains(reason), "{url}: {error}");
        assert!(
            !error.contains("pw@"),
            "never echo URL credentials: {error}"
        );
    }
}
