//! Tables for the terminal (`comfy-table`: column widths from the content, long names kept,
//! multi-line cells, no borders, no colours), and the AGE of a timestamp as kubectl shows it.

use std::time::{Duration, SystemTime};

use comfy_table::{ContentArrangement, Table, presets};

/// An empty table with `headers`, borderless like kubectl's.
pub fn new(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    table
}

/// Prints `table` without the padding the preset leaves at both ends of each line.
pub fn print(table: &Table) {
    for line in table.to_string().lines() {
        let line = line.strip_prefix(' ').unwrap_or(line);
        println!("{}", line.trim_end());
    }
}

/// Prints the rows of `table` without its header (the lines `status --watch` adds).
pub fn print_rows(table: &Table) {
    for line in table.to_string().lines().skip(1) {
        let line = line.strip_prefix(' ').unwrap_or(line);
        println!("{}", line.trim_end());
    }
}

/// How long ago `at` was, in kubectl's short form: `45s`, `12m`, `3h`, `9d`.
pub fn age(at: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(at).unwrap_or(Duration::ZERO).as_secs();
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectls() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |secs| age(now - Duration::from_secs(secs), now);
        assert_eq!(ago(45), "45s");
        assert_eq!(ago(12 * 60), "12m");
        assert_eq!(ago(3 * 3_600), "3h");
        assert_eq!(ago(9 * 86_400), "9d");
        assert_eq!(
            age(now + Duration::from_secs(5), now),
            "0s",
            "a clock step back is 0s"
        );
    }
}
