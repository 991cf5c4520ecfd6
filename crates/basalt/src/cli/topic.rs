//! `basalt topic`: create, list, describe, alter the configs of, grow, delete topics and move
//! their partitions.
//!
//! Admin requests (CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs,
//! AlterPartitionReassignments) go to the controller named by metadata; `move` then polls
//! ListPartitionReassignments until the move is done (the broker answers as soon as it started); `describe` asks each partition's leader for its offsets and
//! reads the configs with DescribeConfigs when the broker advertises it (and says so when not).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use basalt_protocol::ApiKey;
use basalt_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use basalt_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use basalt_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use basalt_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use basalt_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use basalt_protocol::{RequestBody, ResponseBody};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{Client, EARLIEST, LATEST, Move, TopicInfo, check, unexpected};
use super::output::{ids, print_json, print_table, table};
use super::{ConnectArgs, Error, parse_key_value};

/// Kafka's resource type for topics in the config APIs.
const RESOURCE_TOPIC: i8 = 2;
/// How long admin requests may take on the broker.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// `basalt topic ...`.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (broker default if omitted).
        #[arg(short, long)]
        partitions: Option<i32>,
        /// Replication factor (broker default if omitted).
        #[arg(short, long)]
        replicas: Option<i16>,
        /// A topic config, `key=value` (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics (internal ones such as `__consumer_offsets` only with `--all`).
    List {
        /// Include internal topics.
        #[arg(long)]
        all: bool,
    },
    /// Show a topic's partitions, leaders, replicas, offsets and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        /// Topic name.
        name: String,
        /// A config to set, `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// A config to reset to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Grow a topic to a total number of partitions (CreatePartitions).
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        num: i32,
    },
    /// Move a partition to other replicas (AlterPartitionReassignments) and wait until the new
    /// ones are in sync and the old ones gone. The number of replicas may change.
    Move {
        /// Topic name.
        name: String,
        /// The partition to move.
        #[arg(long)]
        partition: i32,
        /// The replicas to move to, preferred leader first: node ids, `1,2,3`.
        #[arg(long, value_delimiter = ',', required = true, value_name = "ID,...")]
        to: Vec<i32>,
        /// Give up waiting after this many seconds (the move goes on).
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
    },
}

/// Runs a `topic` subcommand.
pub fn run(args: TopicArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replicas,
            configs,
        } => create(&mut client, &name, partitions, replicas, &configs),
        TopicCommand::List { all } => list(&mut client, json, all),
        TopicCommand::Describe { name } => describe(&mut client, &name, json),
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(&mut client, &name, &set, &delete)
        }
        TopicCommand::Delete { names } => delete_topics(&mut client, &names),
        TopicCommand::AddPartitions { name, num } => add_partitions(&mut client, &name, num),
        TopicCommand::Move {
            name,
            partition,
            to,
            timeout,
        } => move_partition(&mut client, &name, partition, to, timeout, json),
    }
}

fn create(
    client: &mut Client,
    name: &str,
    partitions: Option<i32>,
    replicas: Option<i16>,
    configs: &[(String, String)],
) -> Result<(), Error> {
    client.metadata(Some(&[]))?;
    let conn = client.controller()?;
    // "Broker default" (-1) is understood from CreateTopics v4 on.
    let defaults_ok = conn.version(ApiKey::CreateTopics).is_some_and(|v| v >= 4);
    let default = |v: Option<i32>| v.unwrap_or(if defaults_ok { -1 } else { 1 });
    let topic = CreatableTopic {
        name: name.to_owned(),
        num_partitions: default(partitions),
        replication_factor: i16::try_from(default(replicas.map(i32::from)))?,
        configs: configs
            .iter()
            .map(|(k, v)| CreatableTopicConfig {
                name: k.clone(),
                value: Some(v.clone()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let request = CreateTopicsRequest {
        topics: vec![topic],
        timeout_ms: ADMIN_TIMEOUT_MS,
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::CreateTopics(request))? {
        ResponseBody::CreateTopics(r) => r,
        other => return Err(unexpected(ApiKey::CreateTopics, &other)),
    };
    for t in &response.topics {
        let what = format!("cannot create topic {:?}", t.name);
        check(t.error_code, &what, t.error_message.as_deref())?;
        let shown = |n: i64| {
            if n < 0 {
                "default".to_owned()
            } else {
                n.to_string()
            }
        };
        println!(
            "created topic {} (partitions: {}, replicas: {})",
            t.name,
            shown(t.num_partitions.into()),
            shown(t.replication_factor.into())
        );
    }
    Ok(())
}

fn list(client: &mut Client, json: bool, all: bool) -> Result<(), Error> {
    let response = client.metadata(None)?;
    let mut topics: Vec<TopicInfo> = response
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && (all || !t.is_internal))
        .map(TopicInfo::from_metadata)
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        return print_json(&topics);
    }
    let mut t = table(["NAME", "PARTITIONS", "REPLICAS"]);
    for topic in &topics {
        let replicas = topic.partitions.first().map_or(0, |p| p.replicas.len());
        t.add_row(vec![
            topic.name.clone(),
            topic.partitions.len().to_string(),
            replicas.to_string(),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// What `describe` prints.
#[derive(Debug, Serialize)]
struct Description {
    #[serde(flatten)]
    topic: TopicInfo,
    log_start_offsets: BTreeMap<i32, i64>,
    high_watermarks: BTreeMap<i32, i64>,
    /// `None` when the broker does not support DescribeConfigs.
    configs: Option<Vec<ConfigEntry>>,
}

#[derive(Debug, Serialize)]
struct ConfigEntry {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

fn describe(client: &mut Client, name: &str, json: bool) -> Result<(), Error> {
    let topic = client.topic(name)?;
    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let log_start_offsets = client.list_offsets(&topic, &ids, EARLIEST)?;
    let high_watermarks = client.list_offsets(&topic, &ids, LATEST)?;
    let configs = describe_configs(client, name)?;
    let d = Description {
        topic,
        log_start_offsets,
        high_watermarks,
        configs,
    };
    if json {
        return print_json(&d);
    }
    print_description(&d);
    Ok(())
}

fn describe_configs(client: &mut Client, name: &str) -> Result<Option<Vec<ConfigEntry>>, Error> {
    let conn = client.any()?;
    if !conn.supports(ApiKey::DescribeConfigs) {
        eprintln!("note: the broker does not support DescribeConfigs; topic configs not shown");
        return Ok(None);
    }
    let request = DescribeConfigsRequest {
        resources: vec![DescribeConfigsResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: name.to_owned(),
            configuration_keys: None,
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::DescribeConfigs(request))? {
        ResponseBody::DescribeConfigs(r) => r,
        other => return Err(unexpected(ApiKey::DescribeConfigs, &other)),
    };
    let mut out = Vec::new();
    for r in &response.results {
        let what = format!("cannot describe the configs of {name:?}");
        check(r.error_code, &what, r.error_message.as_deref())?;
        out.extend(r.configs.iter().map(|c| ConfigEntry {
            name: c.name.clone(),
            value: if c.is_sensitive {
                None
            } else {
                c.value.clone()
            },
            source: config_source(c.config_source),
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        }));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(out))
}

/// Kafka's `ConfigSource` names.
fn config_source(id: i8) -> &'static str {
    match id {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn print_description(d: &Description) {
    let t = &d.topic;
    println!("NAME        {}", t.name);
    if let Some(id) = &t.id {
        println!("ID          {id}");
    }
    println!("INTERNAL    {}", t.internal);
    println!("PARTITIONS  {}", t.partitions.len());
    println!();
    let mut partitions = table([
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]);
    let offset = |m: &BTreeMap<i32, i64>, p| m.get(&p).map_or("-".to_owned(), i64::to_string);
    for p in &t.partitions {
        partitions.add_row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            p.leader_epoch.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
            offset(&d.log_start_offsets, p.partition),
            offset(&d.high_watermarks, p.partition),
        ]);
    }
    print_table(&partitions);
    if let Some(configs) = &d.configs {
        println!();
        let mut table = table(["KEY", "VALUE", "SOURCE"]);
        for c in configs {
            let value = match (&c.value, c.sensitive) {
                (_, true) => "(sensitive)".to_owned(),
                (Some(v), false) => v.clone(),
                (None, false) => "(null)".to_owned(),
            };
            table.add_row(vec![c.name.clone(), value, c.source.to_owned()]);
        }
        print_table(&table);
    }
}

fn alter_config(
    client: &mut Client,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), Error> {
    if set.is_empty() && delete.is_empty() {
        return Err("nothing to change: give --set KEY=VALUE and/or --delete KEY".into());
    }
    client.metadata(Some(&[]))?;
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| AlterableConfig {
            name: k.clone(),
            config_operation: 0,
            value: Some(v.clone()),
            ..Default::default()
        })
        .collect();
    configs.extend(delete.iter().map(|k| AlterableConfig {
        name: k.clone(),
        config_operation: 1,
        value: None,
        ..Default::default()
    }));
    let request = IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: name.to_owned(),
            configs,
            ..Default::default()
        }],
        validate_only: false,
        ..Default::default()
    };
    let body = RequestBody::IncrementalAlterConfigs(request);
    let response = match client.controller()?.send(&body)? {
        ResponseBody::IncrementalAlterConfigs(r) => r,
        other => return Err(unexpected(ApiKey::IncrementalAlterConfigs, &other)),
    };
    for r in &response.responses {
        let what = format!("cannot alter the configs of {name:?}");
        check(r.error_code, &what, r.error_message.as_deref())?;
    }
    println!(
        "altered topic {name}: {} set, {} deleted",
        set.len(),
        delete.len()
    );
    Ok(())
}

fn delete_topics(client: &mut Client, names: &[String]) -> Result<(), Error> {
    client.metadata(Some(&[]))?;
    let request = DeleteTopicsRequest {
        topics: names
            .iter()
            .map(|n| DeleteTopicState {
                name: Some(n.clone()),
                ..Default::default()
            })
            .collect(),
        topic_names: names.to_vec(),
        timeout_ms: ADMIN_TIMEOUT_MS,
        ..Default::default()
    };
    let response = match client
        .controller()?
        .send(&RequestBody::DeleteTopics(request))?
    {
        ResponseBody::DeleteTopics(r) => r,
        other => return Err(unexpected(ApiKey::DeleteTopics, &other)),
    };
    let mut failed = 0;
    for r in &response.responses {
        let name = r.name.clone().unwrap_or_else(|| r.topic_id.to_string());
        let what = format!("cannot delete topic {name:?}");
        match check(r.error_code, &what, r.error_message.as_deref()) {
            Ok(()) => println!("deleted topic {name}"),
            Err(err) => {
                eprintln!("error: {err}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} topics not deleted", names.len()).into());
    }
    Ok(())
}

fn add_partitions(client: &mut Client, name: &str, total: i32) -> Result<(), Error> {
    client.metadata(Some(&[]))?;
    let request = CreatePartitionsRequest {
        topics: vec![CreatePartitionsTopic {
            name: name.to_owned(),
            count: total,
            assignments: None,
            ..Default::default()
        }],
        timeout_ms: ADMIN_TIMEOUT_MS,
        validate_only: false,
        ..Default::default()
    };
    let body = RequestBody::CreatePartitions(request);
    let response = match client.controller()?.send(&body)? {
        ResponseBody::CreatePartitions(r) => r,
        other => return Err(unexpected(ApiKey::CreatePartitions, &other)),
    };
    for r in &response.results {
        let what = format!("cannot add partitions to {:?}", r.name);
        check(r.error_code, &what, r.error_message.as_deref())?;
    }
    println!("topic {name} now has {total} partitions");
    Ok(())
}

fn move_partition(
    client: &mut Client,
    name: &str,
    partition: i32,
    target: Vec<i32>,
    timeout: u64,
    json: bool,
) -> Result<(), Error> {
    let before = client.topic(name)?;
    let from = before
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| format!("topic {name} has no partition {partition}"))?
        .replicas
        .clone();
    let moves = [Move {
        topic: name.to_owned(),
        partition,
        target: target.clone(),
    }];
    client.reassign(&moves)?;
    if !json {
        println!(
            "moving {name}-{partition} from {} to {}",
            ids(&from),
            ids(&target)
        );
    }
    client.wait_reassignments(&moves, Duration::from_secs(timeout), |moving| {
        if json {
            return;
        }
        for m in moving {
            println!(
                "  {}-{}: replicas {}, adding {}, removing {}",
                m.topic,
                m.partition,
                ids(&m.replicas),
                ids(&m.adding),
                ids(&m.removing)
            );
        }
    })?;
    // Done on the controller; wait until the metadata shows it too.
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let after = loop {
        let after = client.topic(name)?;
        let done = after
            .partitions
            .iter()
            .any(|p| p.partition == partition && p.replicas == target);
        if done || Instant::now() >= deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let p = after.partitions.iter().find(|p| p.partition == partition);
    if json {
        return print_json(&p);
    }
    match p {
        Some(p) => println!(
            "{name}-{partition} is on {} (leader {}, in sync {})",
            ids(&p.replicas),
            p.leader,
            ids(&p.isr)
        ),
        None => println!("{name}-{partition} moved"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_have_kafka_names() {
        assert_eq!(config_source(1), "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(config_source(5), "DEFAULT_CONFIG");
        assert_eq!(config_source(42), "UNKNOWN");
    }
}
