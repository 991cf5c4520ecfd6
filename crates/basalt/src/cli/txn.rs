//! `basalt txn`: list and describe transactions and the producers of a topic's partitions, with
//! the behaviour of Kafka's `kafka-transactions.sh`.
//!
//! - `list` asks every broker in the metadata with ListTransactions (each broker lists the
//!   transactional ids it coordinates) and merges the answers. Filters are sent only where the
//!   negotiated version has them (states and producer ids: v0, `--min-duration-ms`: v1,
//!   `--pattern`: v2); a filter a broker cannot apply is an error, not a silently longer list.
//!   State names the broker does not know come back in `unknown_state_filters` and are an error
//!   that names them.
//! - `describe` finds each id's transaction coordinator (FindCoordinator, key type 1) and asks it
//!   with DescribeTransactions: state, producer id and epoch, timeout, start time and the
//!   partitions of the open transaction. An unknown id (TRANSACTIONAL_ID_NOT_FOUND) is an error
//!   naming it; the other ids are still described.
//! - `producers` sends DescribeProducers for a topic's partitions (all of them by default) to
//!   each partition's leader: the producers with state there, their epoch, last sequence and
//!   timestamp, and the first offset of the transaction each has open.
//!
//! Requests to a coordinator are repeated for a short while when it answers NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS ([`with_coordinator`]).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use basalt_protocol::messages::describe_producers_request::{
    DescribeProducersRequest, TopicRequest,
};
use basalt_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use basalt_protocol::messages::list_transactions_request::ListTransactionsRequest;
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{
    COORDINATOR_WAIT, Client, Connection, CoordinatorKind, Reply, by_leader, check,
    coordinator_retriable, unexpected,
};
use super::consume::chosen_partitions;
use super::output::{print_json, render_table, table};
use super::{ConnectArgs, Error, now_ms};

/// Transaction states Kafka knows, as ListTransactions filters them.
const TXN_STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// `basalt txn ...`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(Debug, Subcommand)]
enum TxnCommand {
    /// List the transactional ids of every broker.
    List(ListArgs),
    /// Show the state, producer, timeout, start time and partitions of transactional ids.
    Describe {
        /// Transactional ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Show the producers with state in a topic's partitions and their open transactions.
    Producers {
        /// Topic name.
        topic: String,
        /// Only this partition (repeatable or comma-separated; default: all).
        #[arg(short, long = "partition", value_name = "N", value_delimiter = ',')]
        partitions: Vec<i32>,
    },
}

/// `basalt txn list ...`: the filters.
#[derive(Debug, Default, Args)]
struct ListArgs {
    /// Only transactions in these states (repeatable or comma-separated).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',', num_args = 1..,
          value_parser = parse_state)]
    states: Vec<String>,
    /// Only transactions of these producer ids (repeatable or comma-separated).
    #[arg(long = "producer-id", value_name = "N", value_delimiter = ',', num_args = 1..)]
    producer_ids: Vec<i64>,
    /// Only transactions open for longer than this (ListTransactions v1+).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    min_duration_ms: Option<i64>,
    /// Only transactional ids matching this regular expression, whole (ListTransactions v2+).
    #[arg(long, value_name = "REGEX")]
    pattern: Option<String>,
}

/// Kafka's spelling of a transaction state, whatever the case given; other names are passed on
/// as they are, for the broker to accept or report as unknown.
fn parse_state(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty transaction state".to_owned());
    }
    Ok(TXN_STATES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s))
        .map_or_else(|| s.to_owned(), |k| (*k).to_owned()))
}

/// Runs a `txn` subcommand.
pub fn run(args: TxnArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        TxnCommand::List(filters) => list(&mut client, &filters, json),
        TxnCommand::Describe { ids } => describe(&mut client, &ids, json),
        TxnCommand::Producers { topic, partitions } => {
            producers(&mut client, &topic, &partitions, json)
        }
    }
}

/// `-` for an empty cell, so columns stay aligned for `awk`.
fn cell(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn opt_text<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

// ---------------------------------------------------------------------------------------------
// list

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ListedTxn {
    transactional_id: String,
    producer_id: i64,
    state: String,
    /// The broker that listed it (its coordinator).
    coordinator: i32,
}

fn list(client: &mut Client, filters: &ListArgs, json: bool) -> Result<(), Error> {
    let metadata = client.metadata(Some(&[]))?;
    let mut nodes: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut txns: BTreeMap<String, ListedTxn> = BTreeMap::new();
    let mut unknown_states: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for node in nodes {
        match list_on(client, node, filters) {
            Ok((listed, unknown)) => {
                for t in listed {
                    txns.entry(t.transactional_id.clone()).or_insert(t);
                }
                for s in unknown {
                    if !unknown_states.contains(&s) {
                        unknown_states.push(s);
                    }
                }
            }
            Err(err) => failures.push(format!("broker {node}: {err}")),
        }
    }
    if !unknown_states.is_empty() {
        return Err(format!(
            "unknown transaction state{} {}; Kafka's states are {}",
            if unknown_states.len() == 1 { "" } else { "s" },
            unknown_states
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            TXN_STATES.join(", ")
        )
        .into());
    }
    let txns: Vec<ListedTxn> = txns.into_values().collect();
    if txns.is_empty() && !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    if json {
        print_json(&txns)?;
    } else {
        print!("{}", render_list(&txns));
    }
    if !failures.is_empty() {
        return Err(format!(
            "some brokers could not list their transactions: {}",
            failures.join("; ")
        )
        .into());
    }
    Ok(())
}

/// The ListTransactions request for `filters` at `version`; an error for a filter the version
/// lacks.
fn list_request(version: i16, filters: &ListArgs) -> Result<ListTransactionsRequest, Error> {
    if filters.min_duration_ms.is_some() && version < 1 {
        return Err(format!(
            "ListTransactions v{version} cannot filter by duration (--min-duration-ms needs v1)"
        )
        .into());
    }
    if filters.pattern.is_some() && version < 2 {
        return Err(format!(
            "ListTransactions v{version} cannot filter by transactional id (--pattern needs v2)"
        )
        .into());
    }
    Ok(ListTransactionsRequest {
        state_filters: filters.states.clone(),
        producer_id_filters: filters.producer_ids.clone(),
        duration_filter: filters.min_duration_ms.unwrap_or(-1),
        transactional_id_pattern: filters.pattern.clone(),
        ..Default::default()
    })
}

/// ListTransactions on broker `node`: the transactions it lists and the state filters it does
/// not know.
fn list_on(
    client: &mut Client,
    node: i32,
    filters: &ListArgs,
) -> Result<(Vec<ListedTxn>, Vec<String>), Error> {
    let conn = client.node(node)?;
    let version = conn
        .version(ApiKey::ListTransactions)
        .ok_or("the broker does not support ListTransactions")?;
    let request = list_request(version, filters)?;
    let response = match conn.send(&RequestBody::ListTransactions(request))? {
        ResponseBody::ListTransactions(r) => r,
        other => return Err(unexpected(ApiKey::ListTransactions, &other)),
    };
    if response.error_code == ErrorCode::InvalidRegularExpression.code() {
        let pattern = filters.pattern.as_deref().unwrap_or("");
        return Err(format!(
            "the broker refuses the pattern {pattern:?}: INVALID_REGULAR_EXPRESSION ({})",
            response.error_code
        )
        .into());
    }
    check(response.error_code, "ListTransactions", None)?;
    let listed = response
        .transaction_states
        .into_iter()
        .map(|t| ListedTxn {
            transactional_id: t.transactional_id,
            producer_id: t.producer_id,
            state: t.transaction_state,
            coordinator: node,
        })
        .collect();
    Ok((listed, response.unknown_state_filters))
}

fn render_list(txns: &[ListedTxn]) -> String {
    let mut t = table(["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"]);
    for x in txns {
        t.add_row(vec![
            x.transactional_id.clone(),
            x.producer_id.to_string(),
            cell(&x.state),
            x.coordinator.to_string(),
        ]);
    }
    render_table(&t)
}

// ---------------------------------------------------------------------------------------------
// describe

/// Runs `op` on the transaction coordinator of `id`, finding it again and repeating while `op`
/// answers [`Reply::Retry`], for up to [`COORDINATOR_WAIT`]. Returns the coordinator's broker
/// id and the answer.
fn with_coordinator<T>(
    client: &mut Client,
    id: &str,
    op: impl FnMut(&mut Connection) -> Result<Reply<T>, Error>,
) -> Result<(i32, T), Error> {
    client.with_coordinator(
        CoordinatorKind::Transaction,
        id,
        |code| txn_error(id, code, None),
        op,
    )
}

/// The message for error `code` about transactional id `id`, with the common errors explained.
fn txn_error(id: &str, code: i16, message: Option<&str>) -> Error {
    let name = |c: ErrorCode| format!("{} ({})", c.name(), c.code());
    match ErrorCode::from_code(code) {
        Some(c @ ErrorCode::TransactionalIdNotFound) => {
            format!("transactional id {id:?} does not exist: {}", name(c)).into()
        }
        Some(
            c @ (ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::NotCoordinator),
        ) => format!(
            "the coordinator of transactional id {id:?} is still unavailable after {}s: {}",
            COORDINATOR_WAIT.as_secs(),
            name(c)
        )
        .into(),
        _ => match check(code, &format!("transactional id {id:?}"), message) {
            Err(err) => err,
            Ok(()) => format!("transactional id {id:?}: no error").into(),
        },
    }
}

/// `err` as a message that names `id` (once).
fn about(id: &str, err: &Error) -> String {
    let text = err.to_string();
    if text.contains(&format!("transactional id {id:?}")) {
        text
    } else {
        format!("transactional id {id:?}: {text}")
    }
}

/// A topic and some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TopicPartitions {
    topic: String,
    partitions: Vec<i32>,
}

/// What `describe` prints for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TxnDescription {
    transactional_id: String,
    coordinator: i32,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    transaction_timeout_ms: i32,
    /// The start of the open transaction in ms since the epoch, as the coordinator reports it
    /// (-1 if none).
    transaction_start_time_ms: i64,
    /// The start of the open transaction as RFC 3339 (UTC); `None` when none is open.
    start_time: Option<String>,
    /// Seconds since the open transaction started; `None` when none is open.
    age_s: Option<i64>,
    /// The partitions of the open transaction, by topic.
    partitions: Vec<TopicPartitions>,
}

/// Whether a transaction in `state` is open (begun and not yet completed).
fn is_open(state: &str) -> bool {
    matches!(state, "Ongoing" | "PrepareCommit" | "PrepareAbort")
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds; `None` if negative.
fn iso_time(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms).ok()?;
    let at = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    Some(humantime::format_rfc3339_millis(at).to_string())
}

/// The start time and age (at `now`, ms) of a transaction that started at `start_ms`, if it is
/// open.
fn start_and_age(state: &str, start_ms: i64, now: i64) -> (Option<String>, Option<i64>) {
    if !is_open(state) || start_ms < 0 {
        return (None, None);
    }
    let age = now.saturating_sub(start_ms).max(0) / 1000;
    (iso_time(start_ms), Some(age))
}

/// DescribeTransactions for `id` on `conn`.
fn describe_on(conn: &mut Connection, id: &str) -> Result<Reply<TxnDescription>, Error> {
    let request = DescribeTransactionsRequest {
        transactional_ids: vec![id.to_owned()],
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::DescribeTransactions(request))? {
        ResponseBody::DescribeTransactions(r) => r,
        other => return Err(unexpected(ApiKey::DescribeTransactions, &other)),
    };
    let t = response
        .transaction_states
        .into_iter()
        .find(|t| t.transactional_id == id)
        .ok_or_else(|| {
            format!("DescribeTransactions did not answer for transactional id {id:?}")
        })?;
    if coordinator_retriable(t.error_code) {
        return Ok(Reply::Retry(t.error_code));
    }
    if t.error_code != 0 {
        return Err(txn_error(id, t.error_code, None));
    }
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in t.topics {
        by_topic.entry(tp.topic).or_default().extend(tp.partitions);
    }
    let partitions = by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            TopicPartitions { topic, partitions }
        })
        .collect();
    let (start_time, age_s) =
        start_and_age(&t.transaction_state, t.transaction_start_time_ms, now_ms());
    Ok(Reply::Done(TxnDescription {
        transactional_id: t.transactional_id,
        coordinator: -1,
        state: t.transaction_state,
        producer_id: t.producer_id,
        producer_epoch: t.producer_epoch,
        transaction_timeout_ms: t.transaction_timeout_ms,
        transaction_start_time_ms: t.transaction_start_time_ms,
        start_time,
        age_s,
        partitions,
    }))
}

fn describe(client: &mut Client, ids: &[String], json: bool) -> Result<(), Error> {
    let mut out = Vec::new();
    let mut failed = 0;
    for id in ids {
        match with_coordinator(client, id, |conn| describe_on(conn, id)) {
            Ok((node, d)) => out.push(TxnDescription {
                coordinator: node,
                ..d
            }),
            Err(err) => {
                eprintln!("error: {}", about(id, &err));
                failed += 1;
            }
        }
    }
    if json {
        print_json(&out)?;
    } else {
        let texts: Vec<String> = out.iter().map(render_description).collect();
        print!("{}", texts.join("\n"));
    }
    if failed > 0 {
        return Err(format!("{failed} of {} transactional ids not described", ids.len()).into());
    }
    Ok(())
}

/// `orders:0,1 __consumer_offsets:12`, or `-` for none.
fn partitions_text(partitions: &[TopicPartitions]) -> String {
    if partitions.is_empty() {
        return "-".to_owned();
    }
    partitions
        .iter()
        .map(|tp| {
            let parts: Vec<String> = tp.partitions.iter().map(i32::to_string).collect();
            format!("{}:{}", tp.topic, parts.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_description(d: &TxnDescription) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    line("TRANSACTIONAL-ID", d.transactional_id.clone());
    line("COORDINATOR", d.coordinator.to_string());
    line("STATE", cell(&d.state));
    line("PRODUCER-ID", d.producer_id.to_string());
    line("PRODUCER-EPOCH", d.producer_epoch.to_string());
    line("TIMEOUT-MS", d.transaction_timeout_ms.to_string());
    line("START-TIME", opt_text(d.start_time.as_deref()));
    line("AGE-S", opt_text(d.age_s));
    line("PARTITIONS", partitions_text(&d.partitions));
    out
}

// ---------------------------------------------------------------------------------------------
// producers

/// One producer with state in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ProducerRow {
    topic: String,
    partition: i32,
    producer_id: i64,
    producer_epoch: i32,
    /// The sequence number of its last batch (-1 if none).
    last_sequence: i32,
    /// The timestamp of its last batch, ms since the epoch (-1 if unknown).
    last_timestamp: i64,
    /// The coordinator epoch of its open transaction (-1 if none).
    coordinator_epoch: i32,
    /// The first offset of the transaction it has open here; `None` if none.
    current_txn_start_offset: Option<i64>,
}

fn producers(client: &mut Client, topic: &str, wanted: &[i32], json: bool) -> Result<(), Error> {
    let info = client.topic(topic)?;
    let partitions = chosen_partitions(&info, wanted)?;
    let mut rows: Vec<ProducerRow> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (leader, parts) in by_leader(&info, &partitions)? {
        let request = DescribeProducersRequest {
            topics: vec![TopicRequest {
                name: topic.to_owned(),
                partition_indexes: parts,
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = match client
            .node(leader)?
            .send(&RequestBody::DescribeProducers(request))?
        {
            ResponseBody::DescribeProducers(r) => r,
            other => return Err(unexpected(ApiKey::DescribeProducers, &other)),
        };
        for t in response.topics.into_iter().filter(|t| t.name == topic) {
            for p in t.partitions {
                let what = format!("producers of {topic}/{}", p.partition_index);
                if let Err(err) = check(p.error_code, &what, p.error_message.as_deref()) {
                    failures.push(err.to_string());
                    continue;
                }
                rows.extend(p.active_producers.into_iter().map(|s| ProducerRow {
                    topic: topic.to_owned(),
                    partition: p.partition_index,
                    producer_id: s.producer_id,
                    producer_epoch: s.producer_epoch,
                    last_sequence: s.last_sequence,
                    last_timestamp: s.last_timestamp,
                    coordinator_epoch: s.coordinator_epoch,
                    current_txn_start_offset:
                        (s.current_txn_start_offset >= 0).then_some(s.current_txn_start_offset),
                }));
            }
        }
    }
    rows.sort_by_key(|r| (r.partition, r.producer_id));
    if json {
        print_json(&rows)?;
    } else {
        print!("{}", render_producers(&rows));
    }
    if !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    Ok(())
}

fn render_producers(rows: &[ProducerRow]) -> String {
    let mut t = table([
        "PARTITION",
        "PRODUCER-ID",
        "EPOCH",
        "LAST-SEQUENCE",
        "LAST-TIMESTAMP",
        "CURRENT-TXN-START-OFFSET",
    ]);
    for r in rows {
        t.add_row(vec![
            r.partition.to_string(),
            r.producer_id.to_string(),
            r.producer_epoch.to_string(),
            r.last_sequence.to_string(),
            r.last_timestamp.to_string(),
            opt_text(r.current_txn_start_offset),
        ]);
    }
    render_table(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_states_take_kafka_spelling_and_pass_others_on() {
        assert_eq!(parse_state("ongoing").unwrap(), "Ongoing");
        assert_eq!(parse_state(" COMPLETECOMMIT ").unwrap(), "CompleteCommit");
        assert_eq!(parse_state("Bogus").unwrap(), "Bogus");
        assert!(parse_state(" ").is_err());
    }

    #[test]
    fn txn_list_request_sends_only_what_the_version_has() {
        let filters = ListArgs {
            states: vec!["Ongoing".into()],
            producer_ids: vec![7],
            ..Default::default()
        };
        let r = list_request(0, &filters).unwrap();
        assert_eq!(r.state_filters, ["Ongoing"]);
        assert_eq!(r.producer_id_filters, [7]);
        assert_eq!(r.duration_filter, -1);
        assert_eq!(r.transactional_id_pattern, None);

        let filters = ListArgs {
            min_duration_ms: Some(500),
            ..Default::default()
        };
        let err = list_request(0, &filters).unwrap_err().to_string();
        assert!(err.contains("needs v1"), "{err}");
        assert_eq!(list_request(1, &filters).unwrap().duration_filter, 500);

        let filters = ListArgs {
            pattern: Some("app-.*".into()),
            ..Default::default()
        };
        let err = list_request(1, &filters).unwrap_err().to_string();
        assert!(err.contains("needs v2"), "{err}");
        assert_eq!(
            list_request(2, &filters).unwrap().transactional_id_pattern,
            Some("app-.*".into())
        );
    }

    #[test]
    fn txn_start_time_is_shown_only_while_open() {
        let start = 1_700_000_000_000;
        assert_eq!(
            start_and_age("Ongoing", start, start + 12_345),
            (Some("2023-11-14T22:13:20.000Z".into()), Some(12))
        );
        assert_eq!(
            start_and_age("CompleteCommit", start, start + 1000),
            (None, None)
        );
        assert_eq!(start_and_age("Ongoing", -1, start), (None, None));
        // A client clock behind the broker's gives age 0, not a negative one.
        assert_eq!(
            start_and_age("PrepareCommit", start, start - 5000).1,
            Some(0)
        );
    }

    #[test]
    fn txn_description_renders_every_field() {
        let d = TxnDescription {
            transactional_id: "orders-app".into(),
            coordinator: 0,
            state: "Ongoing".into(),
            producer_id: 4000,
            producer_epoch: 2,
            transaction_timeout_ms: 60_000,
            transaction_start_time_ms: 1_700_000_000_000,
            start_time: Some("2023-11-14T22:13:20.000Z".into()),
            age_s: Some(3),
            partitions: vec![
                TopicPartitions {
                    topic: "orders".into(),
                    partitions: vec![0, 1],
                },
                TopicPartitions {
                    topic: "audit".into(),
                    partitions: vec![2],
                },
            ],
        };
        let text = render_description(&d);
        assert!(text.contains("TRANSACTIONAL-ID  orders-app\n"), "{text}");
        assert!(text.contains("PRODUCER-EPOCH    2\n"), "{text}");
        assert!(
            text.contains("START-TIME        2023-11-14T22:13:20.000Z\n"),
            "{text}"
        );
        assert!(text.contains("AGE-S             3\n"), "{text}");
        assert!(
            text.contains("PARTITIONS        orders:0,1 audit:2\n"),
            "{text}"
        );
        let closed = render_description(&TxnDescription {
            state: "CompleteCommit".into(),
            start_time: None,
            age_s: None,
            partitions: Vec::new(),
            ..d
        });
        assert!(closed.contains("START-TIME        -\n"), "{closed}");
        assert!(closed.contains("PARTITIONS        -\n"), "{closed}");
    }

    #[test]
    fn txn_producer_table_shows_no_open_transaction_as_a_dash() {
        let row = |offset| ProducerRow {
            topic: "orders".into(),
            partition: 1,
            producer_id: 4000,
            producer_epoch: 0,
            last_sequence: 4,
            last_timestamp: 1_700_000_000_000,
            coordinator_epoch: -1,
            current_txn_start_offset: offset,
        };
        let text = render_producers(&[row(Some(10)), row(None)]);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0][0], "PARTITION", "{text}");
        assert_eq!(lines[1], ["1", "4000", "0", "4", "1700000000000", "10"]);
        assert_eq!(lines[2], ["1", "4000", "0", "4", "1700000000000", "-"]);
    }

    #[test]
    fn txn_errors_are_explained() {
        let err = txn_error("ghost", ErrorCode::TransactionalIdNotFound.code(), None).to_string();
        assert_eq!(
            err,
            "transactional id \"ghost\" does not exist: TRANSACTIONAL_ID_NOT_FOUND (105)"
        );
        assert_eq!(about("ghost", &err.clone().into()), err);
        let other = about("ghost", &"timed out".into());
        assert_eq!(other, "transactional id \"ghost\": timed out");
    }
}
