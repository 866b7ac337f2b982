//! The manifest parser + validator on arbitrary text: no panic; an `Err` names a problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = c2quay::manifest::parse_str(text, std::path::Path::new("/fuzz/env.yaml"))
    {
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| !p.message.trim().is_empty()));
    }
});
