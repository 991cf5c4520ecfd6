//! `basalt bench`: the benches run to the end, clean up after themselves, and report figures.
//! The end-to-end benches run against an in-process broker, whose process is this test's own.

use std::process::Command;

#[cfg(feature = "kafka-bench")]
use basalt_testkit::TestBroker;
use serde_json::Value;

/// Runs `basalt bench <args> --json` and returns its report; panics with stderr if it fails.
fn bench_json(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

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

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_produce_reports_every_message_acked_and_the_broker_usage() {
    let broker = TestBroker::start();
    let pid = std::process::id().to_string();
    let report = bench_json(&[
        "produce",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        "bench-produce",
        "--partitions",
        "2",
        "--messages",
        "3000",
        "--size",
        "64",
        "--producers",
        "2",
        "--acks",
        "all",
        "--compression",
        "lz4",
        "--linger-ms",
        "2",
        "--batch-size",
        "65536",
        "--broker-pid",
        &pid,
    ]);
    assert_eq!(u(&report["partitions"]), 2);
    assert_eq!(u(&report["messages"]), 3000);
    assert_eq!(u(&report["acked"]), 3000);
    assert_eq!(u(&report["failed"]), 0);
    assert_eq!(u(&report["bytes"]), 3000 * 64);
    assert_eq!(report["compression"], "lz4");
    assert!(f(&report["msgs_per_s"]) > 0.0, "{report}");
    assert!(f(&report["mb_per_s"]) > 0.0, "{report}");
    let usage = &report["broker"];
    assert!(f(&usage["cpu_s"]) >= 0.0, "{usage}");
    assert!(u(&usage["rss_peak_bytes"]) > 0, "{usage}");
    assert!(u(&usage["vm_hwm_bytes"]) > 0, "{usage}");

    let stored: u64 = (0..2)
        .map(|p| {
            let partition = broker.broker().partition("bench-produce", p);
            partition.expect("a partition").high_watermark() as u64
        })
        .sum();
    assert_eq!(stored, 3000, "the broker holds every message acknowledged");
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_consume_fills_the_topic_then_reads_exactly_n() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let args = |messages: &'static str| {
        let mut args = vec!["consume", "--brokers", &b, "--topic", "bench-consume"];
        args.extend(["--partitions", "3", "--size", "50", "--messages", messages]);
        bench_json(&args)
    };
    let first = args("1500");
    assert_eq!(u(&first["partitions"]), 3);
    assert_eq!(u(&first["filled"]), 1500, "the empty topic is filled first");
    let passes = first["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 1, "{first}");
    assert_eq!(passes[0]["cache"], "page cache");
    assert_eq!(u(&passes[0]["messages"]), 1500);
    assert_eq!(u(&passes[0]["bytes"]), 1500 * 50);
    assert!(f(&passes[0]["msgs_per_s"]) > 0.0 && f(&passes[0]["mb_per_s"]) > 0.0);

    let again = args("1000");
    assert_eq!(u(&again["filled"]), 0, "the topic already holds enough");
    assert_eq!(u(&again["passes"][0]["messages"]), 1000, "reads exactly N");
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_latency_reports_ordered_percentiles_for_every_scheduled_message() {
    let broker = TestBroker::start();
    let report = bench_json(&[
        "latency",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        "bench-latency",
        "--rate",
        "200",
        "--duration",
        "1",
        "--size",
        "32",
        "--linger-ms",
        "0",
    ]);
    assert_eq!(u(&report["scheduled"]), 200, "rate x duration");
    assert_eq!(u(&report["sent"]), 200);
    assert_eq!(u(&report["failed"]), 0);
    assert_eq!(u(&report["received"]), 200);
    assert!(f(&report["achieved_rate"]) > 0.0);
    let l = &report["latency"];
    let ordered = [
        f(&l["min_us"]),
        f(&l["p50_us"]),
        f(&l["p90_us"]),
        f(&l["p99_us"]),
        f(&l["p99_9_us"]),
        f(&l["max_us"]),
    ];
    assert!(ordered[0] > 0.0, "{l}");
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{l}");
}

#[test]
fn bench_loopback_reports_a_positive_bandwidth() {
    let report = bench_json(&["loopback", "--seconds", "0.2", "--chunk-size", "65536"]);
    assert!(u(&report["bytes"]) >= 65536, "{report}");
    assert!(f(&report["mb_per_s"]) > 0.0 && f(&report["gbit_per_s"]) > 0.0);
}

#[test]
fn bench_disk_reports_both_raw_cases_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let report = bench_json(&[
        "disk",
        "--dir",
        path,
        "--seconds",
        "0.1",
        "--bytes",
        "1048576",
        "--chunk-size",
        "65536",
    ]);
    let cases = report["cases"].as_array().unwrap();
    let methods: Vec<&str> = cases
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["write", "write+fdatasync"]);
    for case in cases {
        assert!(
            u(&case["writes"]) > 0 && f(&case["mb_per_s"]) > 0.0,
            "{case}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the bench left files behind: {left:?}");
}

/// Runs `basalt bench compare <args> --messages small --json` in a new scratch directory, with
/// `PATH` and the home directories narrowed to the system's own, so only what a system package
/// installs can be found (never a `cargo install`ed Tansu). Returns the report.
#[cfg(feature = "kafka-bench")]
fn compare_small(systems: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "bench",
            "compare",
            "--systems",
            systems,
            "--messages",
            "small",
        ])
        .args(["--rate", "200", "--json", "--dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home.path())
        .env("CARGO_HOME", home.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench compare failed: {stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the bench left files behind: {left:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The row of `system` in a comparison report.
#[cfg(feature = "kafka-bench")]
fn compare_row<'a>(report: &'a Value, system: &str) -> &'a Value {
    report["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["system"] == system)
        .unwrap_or_else(|| panic!("no row for {system}: {report}"))
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_compare_measures_both_basalt_rows_beside_the_raw_limits_and_says_why_it_skips() {
    let report = compare_small("basalt,tansu-memory");
    assert_eq!(u(&report["workload"]["messages"]), 5000, "{report}");
    assert_eq!(report["reference"], "basalt-always");
    let raw = &report["raw"];
    for key in [
        "disk_write_mb_per_s",
        "disk_write_fdatasync_mb_per_s",
        "disk_fdatasyncs_per_s",
        "loopback_mb_per_s",
    ] {
        assert!(f(&raw[key]) > 0.0, "{key}: {raw}");
    }
    let rows = report["systems"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(names, ["basalt-always", "basalt-os", "tansu-memory"]);
    for name in ["basalt-always", "basalt-os"] {
        let row = compare_row(&report, name);
        assert_eq!(row["status"], "measured", "{row}");
        assert!(
            row["durability"]
                .as_str()
                .unwrap()
                .contains("log.flush.policy")
        );
        let mut figures = Vec::new();
        numbers(&row["figures"], name, &mut figures);
        assert_eq!(figures.len(), 8, "{row}");
        for (path, value) in &figures {
            // CPU time is counted in ticks of 10 ms: a tiny run may spend none.
            let least = if path.ends_with("server_cpu_s") {
                0.0
            } else {
                f64::MIN_POSITIVE
            };
            assert!(value.is_finite() && *value >= least, "{path} = {value}");
        }
        let ratios = &row["ratios"];
        assert!(f(&ratios["produce_msgs_per_s"]) > 0.0, "{row}");
        assert!(f(&ratios["latency_p99_us"]) > 0.0, "{row}");
    }
    let always = &compare_row(&report, "basalt-always")["ratios"];
    assert_eq!(
        f(&always["consume_msgs_per_s"]),
        1.0,
        "the reference over itself"
    );

    let tansu = compare_row(&report, "tansu-memory");
    assert_eq!(tansu["status"], "skipped", "{tansu}");
    let reason = tansu["reason"].as_str().unwrap();
    assert!(
        reason.contains("not installed") && reason.contains("cargo install tansu"),
        "{reason}"
    );
    assert!(tansu.get("figures").is_none(), "{tansu}");
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_compare_measures_redis_streams_when_redis_is_installed() {
    let installed = [
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
        "/bin/redis-server",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).is_file());
    if !installed {
        eprintln!(
            "SKIPPED bench_compare_measures_redis_streams_when_redis_is_installed: \
             redis-server is not installed (apt-get install redis-server)"
        );
        return;
    }
    let report = compare_small("basalt-always,redis-everysec");
    let redis = compare_row(&report, "redis-everysec");
    assert_eq!(redis["status"], "measured", "{redis}");
    assert!(redis["durability"].as_str().unwrap().contains("everysec"));
    let mut figures = Vec::new();
    numbers(&redis["figures"], "redis", &mut figures);
    for (path, value) in &figures {
        let least = if path.ends_with("server_cpu_s") {
            0.0
        } else {
            f64::MIN_POSITIVE
        };
        assert!(value.is_finite() && *value >= least, "{path} = {value}");
    }
    assert!(f(&redis["ratios"]["produce_msgs_per_s"]) > 0.0, "{redis}");
}
