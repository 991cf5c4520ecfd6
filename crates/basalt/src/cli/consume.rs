//! `basalt consume`: reads records from a topic with Fetch and prints them.
//!
//! Start positions come from ListOffsets (`-o beginning|end|OFFSET|-N`, `--from-timestamp`).
//! Without `--follow` each partition stops at the high watermark it had when the command
//! started; with it, the command long-polls (Fetch `max_wait`) until interrupted. `-n` stops
//! after that many records in all. Compressed batches are decompressed ([`super::decompress`]);
//! control batches (transaction markers) are skipped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal, Write};

use basalt_protocol::ApiKey;
use basalt_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use basalt_protocol::messages::fetch_response::PartitionData;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
use basalt_record::{BatchError, BatchIter, Record, decode_records};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;

use super::client::{Client, EARLIEST, LATEST, TopicInfo, by_leader, check, unexpected};
use super::decompress::{MAX_DECOMPRESSED_BYTES, uncompressed_batch};
use super::{ConnectArgs, Error};

/// Bytes asked for per partition per fetch; doubled while a single batch does not fit.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Bytes asked for per fetch in all.
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;

/// `basalt consume TOPIC`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read.
    topic: String,
    /// Read only this partition (repeatable; default: all).
    #[arg(short, long = "partition")]
    partitions: Vec<i32>,
    /// Where to start: beginning, end, an absolute OFFSET, or -N (N before the end).
    #[arg(short, long, default_value = "beginning", allow_hyphen_values = true,
          value_parser = parse_start, conflicts_with = "from_timestamp")]
    offset: Start,
    /// Start at the first record at or after this time (milliseconds since the epoch, or
    /// RFC 3339 such as 2024-05-01T12:00:00Z).
    #[arg(long, value_name = "MS|RFC3339", value_parser = parse_timestamp)]
    from_timestamp: Option<i64>,
    /// Stop after COUNT records.
    #[arg(short = 'n', long, value_name = "COUNT")]
    count: Option<u64>,
    /// Output: `text` (values), `json` (one object per line), or a kcat-style pattern with
    /// %t %p %o %k %s %K %S %T %h (topic, partition, offset, key, value, key and value sizes,
    /// timestamp, headers) and \n \t escapes; a newline is added if the pattern lacks one.
    /// `--json` is the same as `--format json`.
    #[arg(short, long, default_value = "text")]
    format: String,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(short = 'F', long)]
    follow: bool,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The log start offset.
    Beginning,
    /// The high watermark.
    End,
    /// An absolute offset.
    Offset(i64),
    /// This many records before the high watermark.
    FromEnd(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    match s {
        "beginning" | "earliest" | "start" | "oldest" => Ok(Start::Beginning),
        "end" | "latest" | "newest" => Ok(Start::End),
        _ => match s.parse::<i64>() {
            Ok(n) if n < 0 => Ok(Start::FromEnd(n.saturating_neg())),
            Ok(n) => Ok(Start::Offset(n)),
            Err(_) => Err(format!(
                "expected beginning, end, an offset or -N, got {s:?}"
            )),
        },
    }
}

/// Parses a time given as milliseconds since the Unix epoch or as RFC 3339 text.
pub(crate) fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("expected milliseconds or an RFC 3339 time, got {s:?}: {e}"))?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|e| e.to_string())
}

/// Fetch position of one partition.
#[derive(Debug, Clone, Copy)]
struct Position {
    next: i64,
    /// Stop before this offset (`None` with `--follow`).
    end: Option<i64>,
    max_bytes: i32,
}

impl Position {
    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), Error> {
    let format = if args.connect.json {
        Format::Json
    } else {
        Format::parse(&args.format)
    };
    let mut client = args.connect.client()?;
    let topic = client.topic(&args.topic)?;
    let partitions = chosen_partitions(&topic, &args.partitions)?;
    let mut positions = start_positions(&mut client, &topic, &partitions, &args)?;
    let mut out = Printer {
        out: BufWriter::new(io::stdout().lock()),
        format,
        topic: topic.name.clone(),
        remaining: args.count,
        printed: 0,
    };
    let result = consume_loop(&mut client, &topic, &mut positions, &mut out);
    let flushed = out.out.flush();
    match result.and(flushed.map_err(Error::from)) {
        Err(err) if is_broken_pipe(&*err) => Ok(()),
        Err(err) => Err(err),
        Ok(()) => {
            if io::stderr().is_terminal() {
                eprintln!("consumed {} records from {}", out.printed, topic.name);
            }
            Ok(())
        }
    }
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

pub(crate) fn chosen_partitions(topic: &TopicInfo, wanted: &[i32]) -> Result<Vec<i32>, Error> {
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    if let Some(p) = wanted.iter().find(|p| !all.contains(p)) {
        let n = all.len();
        return Err(format!(
            "topic {:?} has no partition {p} ({n} partitions)",
            topic.name
        )
        .into());
    }
    Ok(wanted.to_vec())
}

fn start_positions(
    client: &mut Client,
    topic: &TopicInfo,
    partitions: &[i32],
    args: &ConsumeArgs,
) -> Result<BTreeMap<i32, Position>, Error> {
    let earliest = client.list_offsets(topic, partitions, EARLIEST)?;
    let latest = client.list_offsets(topic, partitions, LATEST)?;
    let by_time = match args.from_timestamp {
        Some(ts) => Some(client.list_offsets(topic, partitions, ts)?),
        None => None,
    };
    let mut out = BTreeMap::new();
    for &p in partitions {
        let (lo, hi) = (
            earliest.get(&p).copied().unwrap_or(0),
            latest.get(&p).copied().unwrap_or(0),
        );
        let next = match (&by_time, args.offset) {
            (Some(times), _) => times.get(&p).copied().filter(|&o| o >= 0).unwrap_or(hi),
            (None, Start::Beginning) => lo,
            (None, Start::End) => hi,
            (None, Start::Offset(o)) => o.clamp(lo, hi.max(lo)),
            (None, Start::FromEnd(n)) => hi.saturating_sub(n).max(lo),
        };
        let end = (!args.follow).then_some(hi);
        out.insert(
            p,
            Position {
                next,
                end,
                max_bytes: PARTITION_MAX_BYTES,
            },
        );
    }
    Ok(out)
}

fn consume_loop(
    client: &mut Client,
    topic: &TopicInfo,
    positions: &mut BTreeMap<i32, Position>,
    out: &mut Printer,
) -> Result<(), Error> {
    let follow = positions.values().any(|p| p.end.is_none());
    loop {
        let active: Vec<i32> = positions
            .iter()
            .filter(|(_, p)| !p.done())
            .map(|(&k, _)| k)
            .collect();
        if active.is_empty() || out.finished() {
            return Ok(());
        }
        for (leader, parts) in by_leader(topic, &active)? {
            let request = fetch_request(topic, &parts, positions, follow);
            let response = match client.node(leader)?.send(&RequestBody::Fetch(request))? {
                ResponseBody::Fetch(r) => r,
                other => return Err(unexpected(ApiKey::Fetch, &other)),
            };
            check(response.error_code, "fetch", None)?;
            for data in response.responses.iter().flat_map(|t| &t.partitions) {
                handle_partition(client, topic, data, positions, out)?;
                if out.finished() {
                    return Ok(());
                }
            }
            out.out.flush()?;
        }
    }
}

fn fetch_request(
    topic: &TopicInfo,
    parts: &[i32],
    positions: &BTreeMap<i32, Position>,
    follow: bool,
) -> FetchRequest {
    let partitions = parts
        .iter()
        .filter_map(|p| positions.get(p).map(|pos| (p, pos)))
        .map(|(&partition, pos)| FetchPartition {
            partition,
            fetch_offset: pos.next,
            partition_max_bytes: pos.max_bytes,
            ..Default::default()
        })
        .collect();
    FetchRequest {
        max_wait_ms: if follow { 1000 } else { 100 },
        min_bytes: 1,
        max_bytes: FETCH_MAX_BYTES,
        isolation_level: 0,
        topics: vec![FetchTopic {
            topic: topic.name.clone(),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn handle_partition(
    client: &mut Client,
    topic: &TopicInfo,
    data: &PartitionData,
    positions: &mut BTreeMap<i32, Position>,
    out: &mut Printer,
) -> Result<(), Error> {
    let p = data.partition_index;
    let Some(pos) = positions.get_mut(&p) else {
        return Ok(());
    };
    if data.error_code == ErrorCode::OffsetOutOfRange.code() {
        let earliest = client.list_offsets(topic, &[p], EARLIEST)?;
        let reset = earliest.get(&p).copied().unwrap_or(0);
        eprintln!(
            "warning: offset {} of {}/{p} is out of range; resuming at {reset}",
            pos.next, topic.name
        );
        pos.next = reset;
        return Ok(());
    }
    check(
        data.error_code,
        &format!("cannot fetch {}/{p}", topic.name),
        None,
    )?;
    // A decoded response holds its records in memory.
    let records = data
        .records
        .as_ref()
        .and_then(|r| r.as_bytes())
        .cloned()
        .unwrap_or_default();
    let (decoded, next) = read_batches(&records, pos.next)?;
    if next == pos.next && !records.is_empty() {
        // Only a partial batch came back: ask for more next time.
        if pos.max_bytes as usize >= MAX_DECOMPRESSED_BYTES {
            return Err(format!(
                "a batch of {}/{p} at offset {} is too large",
                topic.name, pos.next
            )
            .into());
        }
        pos.max_bytes = pos.max_bytes.saturating_mul(2);
    }
    pos.next = next;
    for record in decoded {
        if pos.end.is_some_and(|end| record.offset >= end) || out.finished() {
            break;
        }
        out.print(p, &record)?;
    }
    Ok(())
}

/// The records at or after `from` in the fetched `data`, and the offset to fetch next.
fn read_batches(data: &Bytes, from: i64) -> Result<(Vec<Record>, i64), Error> {
    let mut records = Vec::new();
    let mut next = from;
    for item in BatchIter::new(data) {
        let (header, range) = match item {
            Ok(batch) => batch,
            // A fetch may end with the first part of a batch; it comes whole next time.
            Err(BatchError::Truncated { .. }) => break,
            Err(err) => return Err(format!("malformed batch at offset {next}: {err}").into()),
        };
        next = next.max(header.next_offset());
        if header.is_control() {
            continue;
        }
        let batch = uncompressed_batch(&data.slice(range), &header)?;
        records.extend(
            decode_records(&batch)?
                .into_iter()
                .filter(|r| r.offset >= from),
        );
    }
    Ok((records, next))
}

/// How records are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Pattern(String),
}

impl Format {
    fn parse(s: &str) -> Format {
        match s {
            "text" => Format::Text,
            "json" => Format::Json,
            pattern => {
                let mut p = unescape(pattern);
                if !p.ends_with('\n') {
                    p.push('\n');
                }
                Format::Pattern(p)
            }
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Writes records to stdout and counts them against `-n`.
struct Printer {
    out: BufWriter<io::StdoutLock<'static>>,
    format: Format,
    topic: String,
    remaining: Option<u64>,
    printed: u64,
}

impl Printer {
    fn finished(&self) -> bool {
        self.remaining == Some(0)
    }

    fn print(&mut self, partition: i32, r: &Record) -> Result<(), Error> {
        let line = render(&self.format, &self.topic, partition, r);
        self.out.write_all(&line)?;
        self.printed += 1;
        if let Some(n) = self.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }
}

fn render(format: &Format, topic: &str, partition: i32, r: &Record) -> Vec<u8> {
    match format {
        Format::Text => {
            let mut line = r.value.as_deref().unwrap_or_default().to_vec();
            line.push(b'\n');
            line
        }
        Format::Json => {
            let mut line = json_record(topic, partition, r).into_bytes();
            line.push(b'\n');
            line
        }
        Format::Pattern(p) => render_pattern(p, topic, partition, r),
    }
}

/// One record as `--format json` prints it (fields in this order).
#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
    headers: Vec<JsonHeader<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<Cow<'a, str>>,
}

/// Bytes as text (invalid UTF-8 replaced); `None` stays null.
fn text(b: Option<&Bytes>) -> Option<Cow<'_, str>> {
    b.map(|b| String::from_utf8_lossy(b))
}

fn json_record<'a>(topic: &'a str, partition: i32, r: &'a Record) -> String {
    let record = JsonRecord {
        topic,
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: text(r.key.as_ref()),
        value: text(r.value.as_ref()),
        headers: r
            .headers
            .iter()
            .map(|h| JsonHeader {
                key: &h.key,
                value: text(h.value.as_ref()),
            })
            .collect(),
    };
    serde_json::to_string(&record).unwrap_or_default()
}

fn render_pattern(pattern: &str, topic: &str, partition: i32, r: &Record) -> Vec<u8> {
    let size = |b: &Option<Bytes>| b.as_ref().map_or(-1, |b| b.len() as i64).to_string();
    let mut out = Vec::with_capacity(pattern.len() + r.value.as_ref().map_or(0, Bytes::len));
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('t') => out.extend_from_slice(topic.as_bytes()),
            Some('p') => out.extend_from_slice(partition.to_string().as_bytes()),
            Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
            Some('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
            Some('s') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
            Some('K') => out.extend_from_slice(size(&r.key).as_bytes()),
            Some('S') => out.extend_from_slice(size(&r.value).as_bytes()),
            Some('T') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
            Some('h') => out.extend_from_slice(headers_text(r).as_bytes()),
            Some('%') => out.push(b'%'),
            Some(other) => {
                out.push(b'%');
                let mut buf = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'%'),
        }
    }
    out
}

/// Headers as kcat prints them: `k1=v1,k2=v2`.
fn headers_text(r: &Record) -> String {
    r.headers
        .iter()
        .map(|h| match &h.value {
            Some(v) => format!("{}={}", h.key, String::from_utf8_lossy(v)),
            None => h.key.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use basalt_record::{BatchBuilder, Header};

    use super::*;

    fn record() -> Record {
        Record {
            offset: 7,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x")),
            }],
        }
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("beginning"), Ok(Start::Beginning));
        assert_eq!(parse_start("end"), Ok(Start::End));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(parse_start("-5"), Ok(Start::FromEnd(5)));
        assert!(parse_start("middle").is_err());
    }

    #[test]
    fn timestamps_parse_as_ms_or_rfc3339() {
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn kcat_patterns_render() {
        let f = Format::parse("%t/%p@%o %k=%s (%K,%S) %T [%h] 100%%");
        let out = render(&f, "orders", 2, &record());
        assert_eq!(out, b"orders/2@7 k1=hello (2,5) 1000 [h=x] 100%\n");
        let f = Format::parse("%k\\t%s\\n");
        assert_eq!(render(&f, "t", 0, &record()), b"k1\thello\n");
    }

    #[test]
    fn text_and_json_render() {
        assert_eq!(render(&Format::Text, "t", 0, &record()), b"hello\n");
        let line = render(&Format::Json, "t", 3, &record());
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["partition"], 3);
        assert_eq!(v["key"], "k1");
        assert_eq!(v["headers"][0]["value"], "x");
    }

    #[test]
    fn batches_are_read_from_the_requested_offset_and_partial_tails_ignored() {
        let mut data = Vec::new();
        for base in [0, 2] {
            let mut b = BatchBuilder::new(base);
            b.push(1, None, Some(b"a"), &[]);
            b.push(2, None, Some(b"b"), &[]);
            data.extend_from_slice(&b.build());
        }
        let whole = data.len();
        let partial = data[..30].to_vec();
        data.extend(partial);
        let (records, next) = read_batches(&Bytes::from(data), 1).unwrap();
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(next, 4);
        assert!(whole > 30);
    }
}
