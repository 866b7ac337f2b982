//! The parsers of `docker compose config` output and of container names.
#![no_main]

use c2quay::docker::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse::config(&text);
    let _ = parse::is_leftover_name(&text);
});
