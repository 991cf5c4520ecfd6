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

/// Runs `basalt bench compare --systems <systems> --messages small --rate 200 <args> --json` in
/// a new scratch directory, with `PATH` and the home directories narrowed to the system's own,
/// so only what a system package installs can be found (never a `cargo install`ed Tansu).
/// Returns the report.
#[cfg(feature = "kafka-bench")]
fn compare_small(systems: &str, args: &[&str]) -> Value {
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
        .args(["--rate", "200"])
        .args(args)
        .args(["--json", "--dir"])
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

/// The ids of a comparison's workloads, in order.
#[cfg(feature = "kafka-bench")]
fn case_ids(report: &Value) -> Vec<&str> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

/// Checks that a measured row ran every workload of the report `runs` times, each run moving
/// the messages its workload asks, and has a median of each and its memory read.
#[cfg(feature = "kafka-bench")]
fn assert_every_run_counted(report: &Value, row: &Value, runs: usize) {
    assert_eq!(row["status"], "measured", "{row}");
    let memory = &row["memory"];
    assert!(u(&memory["idle_rss_bytes"]) > 0, "{memory}");
    assert!(
        u(&memory["peak_rss_bytes"]) >= u(&memory["idle_rss_bytes"]),
        "{memory}"
    );
    let results = row["results"].as_array().unwrap();
    let ids = case_ids(report);
    let measured: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(measured, ids, "one result per workload, in order");
    let messages = u(&report["workload"]["messages"]);
    let latency_messages = (f(&report["workload"]["latency_rate"])
        * f(&report["workload"]["latency_duration_s"]))
    .round() as u64;
    for (result, case) in results.iter().zip(report["cases"].as_array().unwrap()) {
        let expected = if case["kind"] == "latency" {
            latency_messages
        } else {
            messages
        };
        let every = result["runs"].as_array().unwrap();
        assert_eq!(every.len(), runs, "{result}");
        for run in every.iter().chain([&result["median"]]) {
            assert_eq!(u(&run["messages"]), expected, "{result}");
            assert!(
                f(&run["msgs_per_s"]) > 0.0 && f(&run["mb_per_s"]) > 0.0,
                "{run}"
            );
            // CPU time is counted in ticks of 10 ms: a tiny run may spend none.
            assert!(f(&run["client_cpu_s"]) >= 0.0 && f(&run["server_cpu_s"]) >= 0.0);
            assert_eq!(
                run["latency"].is_object(),
                case["kind"] == "latency",
                "{run}"
            );
        }
        assert_eq!(
            result["disk_write_share"].is_number(),
            case["kind"] == "produce",
            "{result}"
        );
    }
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_compare_runs_every_workload_n_times_on_both_basalt_rows_and_says_why_it_skips() {
    let report = compare_small(
        "basalt,tansu-memory",
        &["--runs", "2", "--partitions", "1,3"],
    );
    assert_eq!(u(&report["runs"]), 2, "{report}");
    assert_eq!(report["statistic"], "median");
    assert_eq!(u(&report["workload"]["messages"]), 5000, "{report}");
    assert_eq!(u(&report["workload"]["many_partitions"]), 50, "{report}");
    assert_eq!(
        case_ids(&report),
        [
            "produce-100B-1p",
            "produce-100B-3p",
            "consume-100B-1p",
            "produce-1KiB-1p-acks1",
            "consume-1KiB-1p-acks1",
            "latency-100B"
        ]
    );
    assert_eq!(report["reference"], "basalt-always");
    let raw = &report["raw"];
    assert_eq!(raw["runs"].as_array().unwrap().len(), 2, "{raw}");
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
        assert!(
            row["durability"]
                .as_str()
                .unwrap()
                .contains("log.flush.policy")
        );
        assert_every_run_counted(&report, row, 2);
        let many = &row["partitions"];
        assert_eq!(u(&many["partitions"]), 50, "{many}");
        assert_eq!(u(&many["produced"]), 50, "{many}");
        assert_eq!(u(&many["fetched_partitions"]), 50, "{many}");
        assert!(u(&many["memory"]["rss_served_bytes"]) > 0, "{many}");
    }
    let always = compare_row(&report, "basalt-always");
    for result in always["results"].as_array().unwrap() {
        assert_eq!(
            f(&result["ratios"]["msgs_per_s"]),
            1.0,
            "the reference over itself"
        );
    }
    let os = compare_row(&report, "basalt-os");
    assert!(f(&os["results"][5]["ratios"]["p99_us"]) > 0.0, "{os}");

    let tansu = compare_row(&report, "tansu-memory");
    assert_eq!(tansu["status"], "skipped", "{tansu}");
    let reason = tansu["reason"].as_str().unwrap();
    assert!(
        reason.contains("not installed") && reason.contains("cargo install tansu"),
        "{reason}"
    );
    assert!(tansu["results"].as_array().unwrap().is_empty(), "{tansu}");
    assert!(tansu.get("memory").is_none(), "{tansu}");
    assert!(tansu.get("partitions").is_none(), "{tansu}");
}

/// Whether a system package installed `program` (in one of the places `compare_small` lets
/// the bench look).
#[cfg(feature = "kafka-bench")]
fn installed(test: &str, paths: &[&str]) -> bool {
    let found = paths.iter().any(|p| std::path::Path::new(p).is_file());
    if !found {
        eprintln!("SKIPPED {test}: none of {paths:?} is installed");
    }
    found
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_compare_measures_redis_streams_over_several_streams_when_redis_is_installed() {
    let test = "bench_compare_measures_redis_streams_over_several_streams_when_redis_is_installed";
    if !installed(
        test,
        &[
            "/usr/bin/redis-server",
            "/usr/sbin/redis-server",
            "/bin/redis-server",
        ],
    ) {
        return;
    }
    // The first partition count is the consume's: it reads two streams.
    let report = compare_small("basalt-always,redis-everysec", &["--partitions", "2,1"]);
    assert_eq!(u(&report["runs"]), 3, "the default");
    assert_eq!(
        case_ids(&report)[..3],
        ["produce-100B-2p", "produce-100B-1p", "consume-100B-2p"]
    );
    let redis = compare_row(&report, "redis-everysec");
    assert!(redis["durability"].as_str().unwrap().contains("everysec"));
    assert_every_run_counted(&report, redis, 3);
    assert!(
        redis.get("partitions").is_none(),
        "Kafka-protocol systems only"
    );
    assert!(
        f(&redis["results"][0]["ratios"]["msgs_per_s"]) > 0.0,
        "{redis}"
    );
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_compare_measures_rabbitmq_over_several_queues_when_rabbitmq_is_installed() {
    let test = "bench_compare_measures_rabbitmq_over_several_queues_when_rabbitmq_is_installed";
    if !installed(test, &["/usr/lib/rabbitmq/bin/rabbitmq-server"]) {
        return;
    }
    let report = compare_small(
        "rabbitmq",
        &["--runs", "1", "--partitions", "3", "--workloads", "consume"],
    );
    assert_eq!(case_ids(&report), ["produce-100B-3p", "consume-100B-3p"]);
    assert_eq!(report["reference"], Value::Null, "no Basalt row");
    let rabbitmq = compare_row(&report, "rabbitmq");
    assert_every_run_counted(&report, rabbitmq, 1);
    assert!(u(&rabbitmq["memory"]["processes"]) > 1, "{rabbitmq}");
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_partitions_starts_basalt_and_writes_and_reads_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let report = bench_json(&[
        "partitions",
        "--count",
        "50",
        "--topics",
        "2",
        "--dir",
        path,
    ]);
    assert_eq!(u(&report["partitions"]), 50, "{report}");
    assert_eq!(u(&report["topics"]), 2, "{report}");
    assert_eq!(u(&report["described"]), 50, "{report}");
    assert_eq!(u(&report["produced"]), 50, "{report}");
    assert_eq!(u(&report["failed"]), 0, "{report}");
    assert_eq!(u(&report["fetched_partitions"]), 50, "{report}");
    assert!(report.get("error").is_none(), "{report}");
    assert!(
        report["broker"]
            .as_str()
            .unwrap()
            .contains("basalt-always started here")
    );
    let memory = &report["memory"];
    for key in [
        "rss_before_bytes",
        "rss_created_bytes",
        "rss_served_bytes",
        "vm_hwm_bytes",
    ] {
        assert!(u(&memory[key]) > 0, "{key}: {memory}");
    }
    assert!(u(&memory["vm_hwm_bytes"]) >= u(&memory["rss_served_bytes"]));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the bench left files behind: {left:?}");
}

#[test]
#[cfg(feature = "kafka-bench")]
fn bench_partitions_serves_every_partition_of_a_given_broker() {
    let broker = TestBroker::start();
    let pid = std::process::id().to_string();
    let report = bench_json(&[
        "partitions",
        "--count",
        "20",
        "--brokers",
        &broker.bootstrap(),
        "--broker-pid",
        &pid,
    ]);
    assert_eq!(report["broker"], "given with --brokers");
    assert_eq!(u(&report["produced"]), 20, "{report}");
    assert_eq!(u(&report["fetched_partitions"]), 20, "{report}");
    assert!(u(&report["fetched"]) >= 20, "{report}");
    assert_eq!(u(&report["memory"]["pid"]), u64::from(std::process::id()));
}
