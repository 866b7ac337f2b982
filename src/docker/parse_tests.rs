//! Fixture tests of the pure parsers (fixtures written by hand after Compose 2.40 / Docker 20.10 output).

use super::*;

const CONFIG: &str = r#"{
  "name": "shop",
  "services": {
    "web": {
      "image": "c2quay-test/web:1",
      "restart": "unless-stopped",
      "healthcheck": {"test": ["CMD", "wget", "-q", "localhost:8080"], "interval": "1s"},
      "networks": {"default": null}
    },
    "api": {
      "build": {"context": "/srv/shop/api", "dockerfile": "Dockerfile"},
      "image": "shop/api:dev"
    },
    "migrate": {"image": "c2quay-test/web:1", "command": ["true"], "restart": "no"},
    "quiet": {"image": "busybox", "healthcheck": {"disable": true}}
  },
  "networks": {"default": {"name": "shop_default"}}
}"#;

#[test]
fn config_renders_image_build_restart_healthcheck() {
    let model = config(CONFIG).unwrap();
    assert_eq!(model.len(), 4);
    assert_eq!(
        RenderedService {
            config: Default::default(),
            ..model["web"].clone()
        },
        RenderedService {
            image: Some("c2quay-test/web:1".into()),
            has_build: false,
            restart: Some("unless-stopped".into()),
            has_healthcheck: true,
            ..Default::default()
        }
    );
    assert_eq!(
        model["web"].config.fields.keys().collect::<Vec<_>>(),
        ["healthcheck", "networks", "restart"],
        "image is the release, not config"
    );
    assert_eq!(model.source(), Some(CONFIG));
    assert!(model["api"].has_build);
    assert_eq!(model["api"].restart, None);
    assert_eq!(model["migrate"].restart.as_deref(), Some("no"));
    assert!(
        !model["quiet"].has_healthcheck,
        "disable: true is no healthcheck"
    );
    assert!(config(r#"{"name":"x"}"#).unwrap().is_empty());
    let err = config("not json").unwrap_err();
    assert_eq!(err.kind(), "parse");
    assert!(err.to_string().contains("config --format json"), "{err}");
}

const PS_LINES: &str = r#"{"Command":"\"/bin/httpd -f\"","CreatedAt":"2026-11-26 23:40:00 +0000 UTC","ExitCode":0,"Health":"healthy","ID":"a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6abcd","Image":"c2quay-test/web:2","Labels":"com.docker.compose.project=shop,com.docker.compose.service=web,com.docker.compose.project.config_files=/srv/shop/compose.yaml,/state/shop.c2quay-override.yaml,com.docker.compose.oneoff=False","LocalVolumes":"0","Mounts":"","Name":"shop-web-1","Names":"shop-web-1","Networks":"shop_default","Ports":"127.0.0.1:18080->8080/tcp","Project":"shop","Publishers":[{"URL":"127.0.0.1","TargetPort":8080,"PublishedPort":18080,"Protocol":"tcp"}],"RunningFor":"2 seconds ago","Service":"web","Size":"0B","State":"running","Status":"Up 2 seconds (healthy)"}
{"Command":"\"true\"","ExitCode":0,"Health":"","ID":"ffff00001111","Image":"c2quay-test/web:2","Labels":"com.docker.compose.project=shop,com.docker.compose.service=migrate","Name":"shop-migrate-1","Project":"shop","Service":"migrate","State":"exited","Status":"Exited (0) 1 second ago"}
"#;

const PS_ARRAY: &str = r#"[{"ID":"a1b2c3","Name":"shop-web-1","Command":"/bin/httpd","Project":"shop","Service":"web","State":"running","Health":"starting","ExitCode":0,"Publishers":null},
{"ID":"d4e5f6","Name":"shop-worker-1","Project":"shop","Service":"worker","State":"exited","Health":"","ExitCode":137}]"#;

#[test]
fn ps_one_object_per_line() {
    let cs = ps(PS_LINES, "docker compose ps").unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].service, "web");
    assert_eq!(cs[0].project, "shop");
    assert_eq!(cs[0].name, "shop-web-1");
    assert_eq!(cs[0].state, "running");
    assert_eq!(cs[0].health, "healthy");
    assert_eq!(cs[0].image, "c2quay-test/web:2");
    assert_eq!(cs[0].image_id, "", "ps never knows image ids");
    assert_eq!(
        (cs[1].state.as_str(), cs[1].exit_code, cs[1].health.as_str()),
        ("exited", 0, "")
    );
}

#[test]
fn ps_json_array_form() {
    let cs = ps(PS_ARRAY, "docker compose ps").unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(
        (cs[0].service.as_str(), cs[0].health.as_str()),
        ("web", "starting")
    );
    assert_eq!((cs[1].state.as_str(), cs[1].exit_code), ("exited", 137));
    assert!(ps("", "x").unwrap().is_empty());
    assert!(ps("[]", "x").unwrap().is_empty());
}

#[test]
fn ps_reports_the_bad_line() {
    let text = format!("{}{{\"ID\": broken\n", PS_LINES);
    let err = ps(&text, "docker compose ps --format json").unwrap_err();
    assert_eq!(err.kind(), "parse");
    assert!(err.to_string().contains("line 3"), "{err}");
    let err = ps("{\"Name\":\"x\"}\n", "docker ps").unwrap_err();
    assert!(err.to_string().contains("without an ID"), "{err}");
}

#[test]
fn docker_ps_takes_project_and_service_from_labels() {
    let line = r#"{"Command":"\"/bin/httpd\"","ID":"0123456789ab0123456789ab","Image":"c2quay-test/web:1","Labels":"com.docker.compose.service=web,com.docker.compose.project=shop,desc=a=b","Names":"0123456789ab_shop-web-1","State":"exited","Status":"Exited (137) 5 seconds ago"}"#;
    let cs = ps(line, "docker ps").unwrap();
    assert_eq!(cs[0].project, "shop");
    assert_eq!(cs[0].service, "web");
    assert_eq!(cs[0].name, "0123456789ab_shop-web-1");
    assert!(is_leftover_name(&cs[0].name));
}

#[test]
fn labels_keep_commas_inside_values() {
    let l = split_labels("a=1,files=/x/a.yaml,/x/b.yaml,b=2,empty=");
    assert_eq!(l["a"], "1");
    assert_eq!(l["files"], "/x/a.yaml,/x/b.yaml");
    assert_eq!(l["b"], "2");
    assert_eq!(l["empty"], "");
    assert!(split_labels("").is_empty());
}

const INSPECT: &str = r#"{"Id":"a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6abcd","Name":"/shop-web-1","Image":"sha256:2222222222222222222222222222222222222222222222222222222222222222","Config":{"Image":"c2quay-test/web:2","Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"web"}},"State":{"Status":"running","ExitCode":0,"Health":{"Status":"unhealthy"}},"HostConfig":{"RestartPolicy":{"Name":"unless-stopped","MaximumRetryCount":0}}}
{"Id":"ffff00001111ffff","Name":"/shop-migrate-1","Image":"sha256:3333","Config":{"Image":"c2quay-test/web:2","Labels":null},"State":{"Status":"exited","ExitCode":137,"OOMKilled":true,"Health":null}}
"#;

#[test]
fn inspect_fills_image_ids_and_fresh_state() {
    let ins = inspect(INSPECT).unwrap();
    assert_eq!(ins.len(), 2);
    let cs = merge(ps(PS_LINES, "docker compose ps").unwrap(), &ins);
    assert_eq!(cs.len(), 2);
    assert_eq!(
        cs[0].image_id,
        "sha256:2222222222222222222222222222222222222222222222222222222222222222"
    );
    assert_eq!(cs[0].health, "unhealthy", "inspect is fresher than ps");
    assert_eq!(cs[1].id, "ffff00001111ffff", "short ids are completed");
    assert_eq!(
        (
            cs[1].state.as_str(),
            cs[1].exit_code,
            cs[1].image_id.as_str()
        ),
        ("exited", 137, "sha256:3333")
    );
    assert!(cs[1].oom_killed && !cs[0].oom_killed);
    assert_eq!(
        (cs[0].restart_policy.as_str(), cs[1].restart_policy.as_str()),
        ("unless-stopped", ""),
        "the restart policy comes from HostConfig, absent when not asked"
    );
    assert_eq!(
        cs[1].service, "migrate",
        "kept from ps when inspect has no labels"
    );
}

#[test]
fn merge_drops_containers_that_vanished() {
    let ins = inspect(INSPECT.lines().next().unwrap()).unwrap();
    let cs = merge(ps(PS_LINES, "docker compose ps").unwrap(), &ins);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].service, "web");
    let err = inspect("{oops}").unwrap_err();
    assert!(err.to_string().contains("docker inspect, line 1"), "{err}");
}

#[test]
fn leftover_names() {
    assert!(is_leftover_name("0123456789ab_shop-web-1"));
    assert!(is_leftover_name("/0123456789ab_shop-web-1"));
    assert!(!is_leftover_name("shop-web-1"));
    assert!(!is_leftover_name("0123456789AB_shop-web-1"));
    assert!(!is_leftover_name("0123456789ab_"));
    assert!(!is_leftover_name("0123456789abc_shop"));
}
