//! `basalt produce`: writes lines from stdin or a file to a topic, one record per line.
//!
//! A line is split into key and value on the first `--key-separator` (no separator in the line:
//! null key, the whole line is the value). The partition is `--partition`, else murmur2 of the
//! key as the Java and librdkafka default partitioners compute it, else round-robin for null
//! keys. Records are gathered into one uncompressed batch per partition and sent, one Produce
//! request per leader, whenever a partition reaches `--batch-size` records or
//! [`MAX_BATCH_BYTES`], and at end of input.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use basalt_protocol::ApiKey;
use basalt_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use basalt_protocol::{RequestBody, ResponseBody};
use basalt_record::BatchBuilder;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::client::{Client, TopicInfo, by_leader, check, partition_for_key, unexpected};
use super::output::print_json;
use super::{ConnectArgs, Error, now_ms, parse_key_value};

/// Bytes of keys, values and headers gathered for one partition before it is sent.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// `basalt produce TOPIC`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to write to.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Split each line into key and value on the first occurrence of SEP.
    #[arg(short = 'k', long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Add a header `key=value` to every record (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition.
    #[arg(short, long)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: -1 (all in-sync replicas), 1 (leader) or 0 (none).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = parse_acks)]
    acks: i16,
    /// Records per partition per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
}

/// What was written, for the summary.
#[derive(Debug, Default, Serialize)]
struct Summary {
    topic: String,
    messages: u64,
    bytes: u64,
    partitions: BTreeSet<i32>,
    elapsed_ms: u128,
}

/// Records waiting to be sent to one partition.
#[derive(Debug)]
struct Pending {
    batch: BatchBuilder,
    bytes: usize,
}

/// The state of one `produce` run.
struct Producer {
    client: Client,
    topic: TopicInfo,
    acks: i16,
    batch_size: usize,
    pending: BTreeMap<i32, Pending>,
    next_round_robin: usize,
    summary: Summary,
    progress: ProgressBar,
}

/// Runs `produce`.
pub fn run(args: ProduceArgs) -> Result<(), Error> {
    let started = Instant::now();
    let mut client = args.connect.client()?;
    let topic = client.topic(&args.topic)?;
    if topic.partitions.is_empty() {
        return Err(format!("topic {:?} has no partitions", args.topic).into());
    }
    if let Some(p) = args.partition
        && topic.leader(p).is_none()
    {
        let count = topic.partitions.len();
        return Err(format!(
            "topic {:?} has no partition {p} ({count} partitions)",
            args.topic
        )
        .into());
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        )),
        None => Box::new(io::stdin().lock()),
    };
    let mut producer = Producer {
        client,
        topic,
        acks: args.acks,
        batch_size: args.batch_size as usize,
        pending: BTreeMap::new(),
        next_round_robin: 0,
        summary: Summary {
            topic: args.topic.clone(),
            ..Summary::default()
        },
        progress: progress_bar(),
    };
    producer.produce_lines(input, &args)?;
    producer.progress.finish_and_clear();
    producer.summary.elapsed_ms = started.elapsed().as_millis();
    print_summary(&producer.summary, args.connect.json)
}

fn progress_bar() -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {human_pos} messages [{elapsed}]") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

impl Producer {
    fn produce_lines(
        &mut self,
        mut input: Box<dyn BufRead>,
        args: &ProduceArgs,
    ) -> Result<(), Error> {
        let headers: Vec<(&str, Option<&[u8]>)> = args
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_bytes())))
            .collect();
        let separator = args.key_separator.as_deref().map(str::as_bytes);
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let (key, value) = split_line(trim_newline(&line), separator);
            let partition = match args.partition {
                Some(p) => p,
                None => self.pick_partition(key),
            };
            self.push(partition, key, value, &headers)?;
        }
        self.flush()
    }

    fn pick_partition(&mut self, key: Option<&[u8]>) -> i32 {
        let count = self.topic.partitions.len();
        match key {
            Some(k) => partition_for_key(k, i32::try_from(count).unwrap_or(i32::MAX)),
            None => {
                let index = self.next_round_robin % count;
                self.next_round_robin = self.next_round_robin.wrapping_add(1);
                self.topic.partitions[index].partition
            }
        }
    }

    fn push(
        &mut self,
        partition: i32,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<(), Error> {
        let size = key.map_or(0, <[u8]>::len)
            + value.len()
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>();
        let pending = self.pending.entry(partition).or_insert_with(|| Pending {
            batch: BatchBuilder::new(0),
            bytes: 0,
        });
        pending.batch.push(now_ms(), key, Some(value), headers);
        pending.bytes += size;
        self.summary.messages += 1;
        self.summary.bytes += size as u64;
        self.summary.partitions.insert(partition);
        self.progress.inc(1);
        if pending.batch.len() >= self.batch_size || pending.bytes >= MAX_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends every pending batch, one request per leader.
    fn flush(&mut self) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending);
        let partitions: Vec<i32> = pending.keys().copied().collect();
        let mut batches: BTreeMap<i32, _> = pending
            .into_iter()
            .map(|(p, pending)| (p, pending.batch.build()))
            .collect();
        for (leader, parts) in by_leader(&self.topic, &partitions)? {
            let partition_data = parts
                .iter()
                .filter_map(|p| batches.remove(p).map(|b| (p, b)))
                .map(|(&index, records)| PartitionProduceData {
                    index,
                    records: Some(records),
                    ..Default::default()
                })
                .collect();
            self.send(leader, partition_data)?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        leader: i32,
        partition_data: Vec<PartitionProduceData>,
    ) -> Result<(), Error> {
        let request = RequestBody::Produce(ProduceRequest {
            transactional_id: None,
            acks: self.acks,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: self.topic.name.clone(),
                partition_data,
                ..Default::default()
            }],
            ..Default::default()
        });
        let conn = self.client.node(leader)?;
        if self.acks == 0 {
            return conn.send_only(&request);
        }
        let response = match conn.send(&request)? {
            ResponseBody::Produce(r) => r,
            other => return Err(unexpected(ApiKey::Produce, &other)),
        };
        for t in &response.responses {
            for p in &t.partition_responses {
                let what = format!("cannot write to {}/{}", self.topic.name, p.index);
                check(p.error_code, &what, p.error_message.as_deref())?;
            }
        }
        Ok(())
    }
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "-1" | "all" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("expected -1 (or all), 0 or 1, got {s:?}")),
    }
}

/// The line without its trailing `\n` or `\r\n`.
fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits `line` into key and value on the first `separator`; no separator means a null key.
fn split_line<'a>(line: &'a [u8], separator: Option<&[u8]>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(sep) = separator.filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(at) => (Some(&line[..at]), &line[at + sep.len()..]),
        None => (None, line),
    }
}

fn print_summary(summary: &Summary, json: bool) -> Result<(), Error> {
    if json {
        return print_json(summary);
    }
    let partitions: Vec<String> = summary.partitions.iter().map(i32::to_string).collect();
    println!(
        "produced {} messages ({} bytes) to {} [partitions {}] in {:.2}s",
        summary.messages,
        summary.bytes,
        summary.topic,
        if partitions.is_empty() {
            "-".to_owned()
        } else {
            partitions.join(",")
        },
        summary.elapsed_ms as f64 / 1000.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(
            split_line(b"k::v", Some(b"::")),
            (Some(&b"k"[..]), &b"v"[..])
        );
        assert_eq!(split_line(b"novalue", Some(b":")), (None, &b"novalue"[..]));
        assert_eq!(split_line(b"a:b", None), (None, &b"a:b"[..]));
        assert_eq!(split_line(b":v", Some(b":")), (Some(&b""[..]), &b"v"[..]));
    }

    #[test]
    fn acks_parse() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn newlines_are_trimmed() {
        assert_eq!(trim_newline(b"abc\n"), b"abc");
        assert_eq!(trim_newline(b"abc\r\n"), b"abc");
        assert_eq!(trim_newline(b"abc"), b"abc");
    }
}
