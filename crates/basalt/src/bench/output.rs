//! How benches show what they found: sizes and latencies in words, tables in one style, the JSON
//! document for machines, and progress bars that appear only when a person is watching.

use std::io::IsTerminal;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::Result;

/// A table with the benches' style and `header`; columns from `right_from` on are right-aligned.
pub(crate) fn table(header: &[&str], right_from: usize) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for i in right_from..header.len() {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Prints `report` on stdout: as one pretty JSON document with `json`, else as `render` makes it.
pub(crate) fn emit<T: Serialize>(
    json: bool,
    report: &T,
    render: impl FnOnce(&T) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render(report));
    }
    Ok(())
}

/// A progress bar of `len` steps named `what`, drawn on stderr only when stdout is a terminal and
/// the report is a table (a hidden bar otherwise, which costs nothing to update).
#[cfg_attr(not(feature = "kafka-bench"), allow(dead_code))]
pub(crate) fn progress(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template =
        format!("{{bar:40}} {{human_pos}}/{{human_len}} {what} [{{elapsed}}, {{per_sec}}]");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Such as `16 KiB`, `1 MiB` or `100 B`.
pub(crate) fn fmt_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A byte count in decimal units, as `4.00 MB` or `1.07 GB` (the unit of the MB/s figures).
pub(crate) fn fmt_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.2} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.2} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// Microseconds as `12 us` or `2.50 ms`.
pub(crate) fn fmt_latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

/// A count per second as `1234` or `1.23 M`.
#[cfg_attr(not(feature = "kafka-bench"), allow(dead_code))]
pub(crate) fn fmt_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else {
        format!("{per_s:.0}")
    }
}

/// Megabytes (10^6 bytes) per second; 0 for no time.
pub(crate) fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_latencies_and_rates_read_well() {
        assert_eq!(fmt_size(16 << 10), "16 KiB");
        assert_eq!(fmt_size(1 << 20), "1 MiB");
        assert_eq!(fmt_size(1 << 30), "1 GiB");
        assert_eq!(fmt_size(100), "100 B");
        assert_eq!(fmt_latency(12.4), "12 us");
        assert_eq!(fmt_latency(2500.0), "2.50 ms");
        assert_eq!(fmt_bytes(4_000_000), "4.00 MB");
        assert_eq!(fmt_bytes(1_068_498_944), "1.07 GB");
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_rate(1234.4), "1234");
        assert_eq!(fmt_rate(2_345_000.0), "2.35 M");
    }
}
