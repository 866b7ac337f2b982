//! The official `pact` CLI for the tests that compare it with c2quay's gate and records (the
//! broker fidelity tests, the identity end-to-end tests). Reached as `crate::support::pact`.
#![allow(dead_code)]

use std::path::PathBuf;

/// The official CLI: `$PACT_CLI`, else `/usr/local/bin/pact`, else `pact` on `PATH`. `None`
/// (after a SKIP line naming `test`) when it is missing, unless `CI` or
/// `C2QUAY_REQUIRE_PACT_CLI` is set: then it panics.
pub fn pact_cli(test: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("PACT_CLI").map(PathBuf::from);
    let from_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("pact"))
            .find(|p| p.is_file())
    });
    let found = from_env
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/usr/local/bin/pact")))
        .chain(from_path)
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var_os("C2QUAY_REQUIRE_PACT_CLI").is_some()
            || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "the official `pact` CLI is required (CI or C2QUAY_REQUIRE_PACT_CLI is set) but was not found"
        );
        println!(
            "SKIP {test}: the official `pact` CLI was not found (pip install pact-python-cli)"
        );
    }
    found
}
