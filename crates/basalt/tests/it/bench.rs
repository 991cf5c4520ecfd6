//! `basalt bench`: the benches run to the end, clean up after themselves, and report figures.

use std::process::Command;

use serde_json::Value;

/// Every number in `value`, with the path that leads to it.
fn numbers(value: &Value, path: &str, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Number(n) => out.push((path.to_owned(), n.as_f64().unwrap_or(f64::NAN))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                numbers(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                numbers(item, &format!("{path}.{key}"), out);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[test]
fn bench_storage_quick_reports_positive_figures_as_json_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["bench", "storage", "--quick", "--json", "--dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");

    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let raw = report["raw"].as_array().expect("raw figures");
    let engine = report["engine"].as_array().expect("engine figures");
    assert_eq!(
        raw.len(),
        6,
        "write, and write+fdatasync with 1 and 8 threads, per batch size"
    );
    assert_eq!(
        engine.len(),
        12,
        "3 policies x 2 batch sizes x 2 writer counts"
    );
    for row in engine {
        assert!(row["mb_per_s"].is_number(), "{row}");
        assert!(!row["comparisons"].as_array().unwrap().is_empty(), "{row}");
    }

    let mut figures = Vec::new();
    numbers(&report, "", &mut figures);
    assert!(figures.len() > 100, "only {} figures", figures.len());
    for (path, value) in &figures {
        assert!(value.is_finite() && *value > 0.0, "{path} = {value}");
    }

    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the bench left files behind: {left:?}");
}
