//! Tests of [`CliCompose`] against fake `docker` / `docker-compose` scripts (no engine needed).

use std::os::unix::fs::PermissionsExt;

use super::*;

/// Writes an executable script `name` with `body` into `dir`.
fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn config_with(dir: &std::path::Path, docker: PathBuf, standalone: PathBuf) -> CliConfig {
    let mut c = CliConfig::new(dir.join("state"));
    c.docker = docker;
    c.standalone = standalone;
    c.command_timeout = Duration::from_secs(10);
    c
}

#[tokio::test]
async fn detect_prefers_the_plugin_and_parses_loosely() {
    let dir = tempfile::tempdir().unwrap();
    let docker = script(
        dir.path(),
        "docker",
        r#"[ "$1 $2 $3" = "compose version --short" ] && echo v2.40.3-desktop.1"#,
    );
    let compose = CliCompose::detect(config_with(dir.path(), docker, "/nonexistent".into()))
        .await
        .unwrap();
    assert_eq!(compose.version().to_string(), "2.40.3");
    assert_eq!(compose.invocation.prefix, vec![OsString::from("compose")]);
}

#[tokio::test]
async fn detect_falls_back_to_a_v2_standalone_and_refuses_v1() {
    let dir = tempfile::tempdir().unwrap();
    let docker = script(
        dir.path(),
        "docker",
        "echo \"docker: 'compose' is not a docker command.\" >&2; exit 1",
    );
    let v2 = script(dir.path(), "dc2", "echo 2.21.0");
    let compose = CliCompose::detect(config_with(dir.path(), docker.clone(), v2))
        .await
        .unwrap();
    assert!(compose.invocation.prefix.is_empty());
    assert!(!compose.version().supports_reset_tag());

    let v1 = script(dir.path(), "dc1", "echo 1.29.2");
    let err = CliCompose::detect(config_with(dir.path(), docker.clone(), v1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "compose_v1");
    assert!(
        err.to_string().contains("reports 1.29.2")
            && err.to_string().contains("needs Docker Compose v2"),
        "{err}"
    );

    let err = CliCompose::detect(config_with(dir.path(), docker, "/nonexistent/dc".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert!(err.to_string().contains("not a docker command"), "{err}");
}

const PS: &str = r#"{"ID":"aaaaaaaaaaaa","Name":"shop-web-1","Project":"shop","Service":"web","State":"running","Health":"","ExitCode":0}
{"ID":"bbbbbbbbbbbb","Name":"shop-gone-1","Project":"shop","Service":"gone","State":"running","Health":"","ExitCode":0}"#;

const INSPECT: &str = r#"{"Id":"aaaaaaaaaaaa1111","Name":"/shop-web-1","Image":"sha256:1111","Config":{"Image":"web:1","Labels":{}},"State":{"Status":"running","ExitCode":0,"Health":{"Status":"healthy"}}}"#;

/// A fake `docker` that serves `ps` and `inspect`; `bbbb...` has vanished.
fn fake_docker(dir: &std::path::Path) -> CliCompose {
    std::fs::write(dir.join("ps.json"), PS).unwrap();
    std::fs::write(dir.join("inspect.json"), INSPECT).unwrap();
    let body = format!(
        r#"echo "$@" >> {log}
case "$1" in
  ps) cat {ps} ;;
  inspect) cat {inspect}; echo "Error: No such container: bbbbbbbbbbbb" >&2; exit 1 ;;
  *) exit 2 ;;
esac"#,
        log = dir.join("calls.log").display(),
        ps = dir.join("ps.json").display(),
        inspect = dir.join("inspect.json").display(),
    );
    let docker = script(dir, "docker", &body);
    CliCompose::with_version(
        config_with(dir, docker.clone(), "/nonexistent".into()),
        argv::Invocation::plugin(docker),
        ComposeVersion::parse("2.40.3").unwrap(),
    )
}

fn project() -> Project {
    Project {
        name: "shop".into(),
        directory: "/srv/shop".into(),
        files: vec!["/srv/shop/compose.yaml".into()],
    }
}

#[tokio::test]
async fn ps_uses_two_processes_and_tolerates_a_vanished_container() {
    let dir = tempfile::tempdir().unwrap();
    let compose = fake_docker(dir.path());
    let cs = compose.ps(&project()).await.unwrap();
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(
        (
            cs[0].id.as_str(),
            cs[0].image_id.as_str(),
            cs[0].health.as_str()
        ),
        ("aaaaaaaaaaaa1111", "sha256:1111", "healthy")
    );
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert!(
        calls
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("aaaaaaaaaaaa bbbbbbbbbbbb"),
        "one inspect for all ids: {calls}"
    );
}

#[tokio::test]
async fn inspect_failures_other_than_vanished_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let compose = fake_docker(dir.path());
    std::fs::write(dir.path().join("inspect.json"), "").unwrap();
    let docker = script(
        dir.path(),
        "docker",
        &format!(
            "case \"$1\" in ps) cat {};; *) echo 'permission denied while trying to connect' >&2; exit 1;; esac",
            dir.path().join("ps.json").display()
        ),
    );
    let compose = CliCompose {
        invocation: argv::Invocation::plugin(&docker),
        config: CliConfig {
            docker,
            ..compose.config
        },
        ..compose
    };
    let err = compose.ps(&project()).await.unwrap_err();
    assert_eq!(err.kind(), "failed");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn up_refuses_empty_and_unknown_services_and_old_compose_with_build_pins() {
    let dir = tempfile::tempdir().unwrap();
    let config_json = r#"{"services":{"api":{"build":{"context":"."},"image":"api:dev"}}}"#;
    std::fs::write(dir.path().join("config.json"), config_json).unwrap();
    let docker = script(
        dir.path(),
        "docker",
        &format!("cat {}", dir.path().join("config.json").display()),
    );
    let compose = CliCompose::with_version(
        config_with(dir.path(), docker.clone(), "/nonexistent".into()),
        argv::Invocation::plugin(docker),
        ComposeVersion::parse("2.20.0").unwrap(),
    );
    let p = project();
    let model = compose.config(&p).await.unwrap();
    let none = compose
        .up(&p, &model, &ImagePins::new(), &[], &UpOptions::default())
        .await
        .unwrap_err();
    assert_eq!(none.kind(), "invalid");
    let unknown = compose
        .up(
            &p,
            &model,
            &ImagePins::new(),
            &["web".to_string()],
            &UpOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "service \"web\" is not defined in the Compose project \"shop\""
    );
    let pins = ImagePins::from([("api".to_string(), "api:1".to_string())]);
    let old = compose
        .up(
            &p,
            &model,
            &pins,
            &["api".to_string()],
            &UpOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(old.kind(), "unsupported");
    assert!(old.to_string().contains(">= 2.24.0, found 2.20.0"), "{old}");
}
