//! The broker response parsers. Gate safety: `Deployable` only for `summary.deployable: true`.
#![no_main]

use c2quay::broker::{Verdict, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(answer) = parse::parse_matrix(&text) {
        let value: serde_json::Value = serde_json::from_str(&text).expect("accepted JSON");
        assert_eq!(
            answer.verdict == Verdict::Deployable,
            value["summary"]["deployable"] == serde_json::Value::Bool(true)
        );
    }
    let _ = parse::parse_index(&text);
    let _ = parse::parse_environments(&text);
    let _ = parse::error_messages(&text);
    let _ = parse::excerpt(&text, 200);
});
