//! The parsers of `docker compose config`/`ps`, `docker inspect` and `docker events` output.
#![no_main]

use c2quay::docker::{events, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse::config(&text);
    let _ = parse::ps(&text, "fuzz");
    let _ = parse::inspect(&text);
    let _ = parse::split_labels(&text);
    let _ = events::project_of_line(&text);
});
