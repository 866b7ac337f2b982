//! The test world's image registry (issue 21 item 3): Debian's `docker-registry` (the
//! Distribution registry) on `127.0.0.1:5000`, started by `scripts/test-world.sh`, which pushes
//! `c2quay-test/web:1` and `:2` to it. Pinning by the digest it returned is what makes a
//! `version: { from: digest }` real. Loopback only: Docker trusts a 127.0.0.0/8 registry as
//! insecure by default, and nothing is pulled from a public registry.
//!
//! Reached as `crate::support::registry`. Skip-or-fail as [`super::docker::require_docker`]:
//! a missing registry is a failure when `CI` or `C2QUAY_REQUIRE_DOCKER` is set.
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use super::docker::{
    DockerVerdict, docker, docker_required, require_docker, try_http_get, verdict,
};

/// The registry's address.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// `c2quay-test/web:N` as pushed to the registry.
pub fn pushed(image: &str) -> String {
    format!("{REGISTRY}/{image}")
}

/// The reference `127.0.0.1:5000/c2quay-test/web@sha256:<hex>` by which the registry serves the
/// pushed `image` (`c2quay-test/web:1`): the local image's RepoDigest for this registry.
pub fn digest_ref(image: &str) -> Result<String, String> {
    let pushed = pushed(image);
    let out = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &pushed,
    ]);
    if !out.status.success() {
        return Err(format!(
            "{pushed} is not on this host: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let digests: Vec<String> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("RepoDigests of {pushed} is not JSON: {e}"))?;
    let repository = pushed.rsplit_once(':').map_or(pushed.as_str(), |(r, _)| r);
    digests
        .into_iter()
        .find(|d| d.starts_with(&format!("{repository}@sha256:")))
        .ok_or_else(|| format!("{pushed} was never pushed to {REGISTRY} (no RepoDigest there)"))
}

/// The `sha256:<hex>` part of [`digest_ref`].
pub fn digest_of(reference: &str) -> String {
    reference
        .rsplit_once('@')
        .map(|(_, digest)| digest.to_string())
        .expect("a digest reference")
}

fn probe() -> Result<(), String> {
    const FIX: &str =
        "run `bash scripts/test-world.sh` as root to start it and push the test images";
    match try_http_get(&format!("http://{REGISTRY}/v2/")) {
        Ok((200, _)) => {}
        Ok((status, body)) => {
            return Err(format!(
                "the registry at {REGISTRY} answered {status} {body:?}; {FIX}"
            ));
        }
        Err(e) => return Err(format!("no registry at {REGISTRY} ({e}); {FIX}")),
    }
    let tags = match try_http_get(&format!("http://{REGISTRY}/v2/c2quay-test/web/tags/list")) {
        Ok((200, body)) => body,
        other => {
            return Err(format!(
                "the registry has no c2quay-test/web: {other:?}; {FIX}"
            ));
        }
    };
    for image in ["c2quay-test/web:1", "c2quay-test/web:2"] {
        let tag = image.rsplit_once(':').map_or("", |(_, tag)| tag);
        if !tags.contains(&format!("\"{tag}\"")) {
            return Err(format!("the registry lacks {image} (tags: {tags}); {FIX}"));
        }
        digest_ref(image).map_err(|e| format!("{e}; {FIX}"))?;
    }
    Ok(())
}

/// Call first in every registry test: Docker ([`require_docker`]) and the registry with both
/// test images pushed. `false` (after a SKIP line) when unusable and not required.
#[track_caller]
pub fn require_registry() -> bool {
    if !require_docker() {
        return false;
    }
    static STATUS: OnceLock<Result<(), String>> = OnceLock::new();
    let status = STATUS.get_or_init(probe).clone();
    let test = std::thread::current()
        .name()
        .unwrap_or("a registry test")
        .to_string();
    match verdict(docker_required(), status, &test) {
        DockerVerdict::Run => true,
        DockerVerdict::Skip(line) => {
            let _ = writeln!(std::io::stderr(), "{line}");
            false
        }
        DockerVerdict::Fail(message) => panic!("{message}"),
    }
}
