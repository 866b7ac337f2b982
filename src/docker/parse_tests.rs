//! Fixture tests of the pure parsers (fixtures written by hand after Compose 2.40 output).

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

#[test]
fn leftover_names() {
    assert!(is_leftover_name("0123456789ab_shop-web-1"));
    assert!(is_leftover_name("/0123456789ab_shop-web-1"));
    assert!(!is_leftover_name("shop-web-1"));
    assert!(!is_leftover_name("0123456789AB_shop-web-1"));
    assert!(!is_leftover_name("0123456789ab_"));
    assert!(!is_leftover_name("0123456789abc_shop"));
}
