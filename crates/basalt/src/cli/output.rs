//! Printing for the client commands: plain, aligned tables for people (comfy-table, no borders,
//! so the output also greps and `awk`s well) and pretty JSON for machines (`--json`).

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use super::Error;

/// A borderless table with `header`, sized to its content.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Prints `table` to stdout as [`render_table`] lays it out.
pub fn print_table(table: &Table) {
    print!("{}", render_table(table));
}

/// The text of `table`, without the one-space cell padding at line starts and ends, each line
/// ending in a newline.
pub fn render_table(table: &Table) -> String {
    let mut out = String::new();
    for line in table.to_string().lines() {
        let line = line.strip_prefix(' ').unwrap_or(line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints `value` as pretty JSON to stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), Error> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Formats a list of broker ids as `1,2,3`.
pub fn ids(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_comma_separated() {
        assert_eq!(ids(&[]), "");
        assert_eq!(ids(&[1, 2, 3]), "1,2,3");
    }

    #[test]
    fn tables_have_no_borders() {
        let mut t = table(["NAME", "PARTITIONS"]);
        t.add_row(vec!["orders".to_string(), "3".to_string()]);
        let text = t.to_string();
        assert!(text.contains("NAME"), "{text}");
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
    }
}
