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
async fn the_plugin_binary_runs_directly_and_its_version_is_asked_once() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("cli-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let calls = dir.path().join("calls");
    let plugin = script(
        &plugins,
        "docker-compose",
        &format!(
            r#"echo "$@" >> {}; [ "$1 $2" = "version --short" ] && echo 2.40.3"#,
            calls.display()
        ),
    );
    let mut config = CliConfig::new(dir.path().join("state"));
    config.plugin_dirs = vec![dir.path().join("nowhere"), plugins.clone()];
    config.version_cache = Some(dir.path().join("state/compose-version.json"));
    for _ in 0..2 {
        let compose = CliCompose::detect(config.clone()).await.unwrap();
        assert_eq!(compose.invocation().program, plugin);
        assert!(
            compose.invocation().prefix.is_empty(),
            "no `compose` prefix"
        );
        assert_eq!(compose.version().raw, "2.40.3");
    }
    let asked = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(asked.lines().collect::<Vec<_>>(), ["version --short"]);
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

fn project() -> Project {
    Project {
        name: "shop".into(),
        directory: "/srv/shop".into(),
        files: vec!["/srv/shop/compose.yaml".into()],
    }
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
    )
    .unwrap();
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
