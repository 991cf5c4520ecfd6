//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

use basalt_protocol::messages::alter_configs_request::{
    AlterConfigsRequest, AlterConfigsResource, AlterableConfig,
};
use basalt_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use basalt_protocol::messages::describe_configs_response::DescribeConfigsResult;
use basalt_protocol::messages::incremental_alter_configs_request as inc;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::{call, create, open};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

async fn describe(
    broker: &std::sync::Arc<basalt_broker::Broker>,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest {
        resources: vec![DescribeConfigsResource {
            resource_type,
            resource_name: name.into(),
            configuration_keys: keys.map(|k| k.iter().map(|s| (*s).to_owned()).collect()),
            ..DescribeConfigsResource::default()
        }],
        include_synonyms: synonyms,
        include_documentation: docs,
        ..DescribeConfigsRequest::default()
    };
    match call(broker, version, RequestBody::DescribeConfigs(req)).await {
        ResponseBody::DescribeConfigs(mut r) => r.results.remove(0),
        other => panic!("{other:?}"),
    }
}

fn value(r: &DescribeConfigsResult, name: &str) -> Option<String> {
    r.configs
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.value.clone())
}

#[tokio::test]
async fn describe_topic_lists_every_config_with_sources_and_synonyms() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[("retention.ms", "1000")]);
    for version in 1..=4 {
        let r = describe(&broker, version, TOPIC, "t", None, true, version >= 3).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.configs.len(), basalt_broker::config::TOPIC_CONFIGS.len());
        let retention = r.configs.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.config_source, 1);
        assert_eq!(retention.synonyms.len(), 2);
        assert_eq!(retention.synonyms[0].name, "retention.ms");
        assert_eq!(retention.synonyms[1].name, "log.retention.ms");
        assert_eq!(retention.synonyms[1].source, 5);
        assert!(!retention.read_only && !retention.is_sensitive);
        let segment = r
            .configs
            .iter()
            .find(|c| c.name == "segment.bytes")
            .unwrap();
        assert_eq!(segment.config_source, 5);
        if version >= 3 {
            assert_eq!(retention.config_type, 5);
            assert_eq!(segment.config_type, 3);
            assert!(
                retention
                    .documentation
                    .as_deref()
                    .is_some_and(|d| !d.is_empty())
            );
        } else {
            assert_eq!(retention.config_type, 0);
            // Not on the wire before v3.
            assert!(retention.documentation.as_deref().unwrap_or("").is_empty());
        }
    }
    // Without synonyms or documentation, none are sent.
    let r = describe(&broker, 4, TOPIC, "t", None, false, false).await;
    assert!(
        r.configs
            .iter()
            .all(|c| c.synonyms.is_empty() && c.documentation.is_none())
    );
}

#[tokio::test]
async fn describe_filters_keys_and_reports_errors() {
    let (_dir, broker) = open(|c| c.node_id = 3);
    create(&broker, "t", 1, &[]);
    let r = describe(
        &broker,
        4,
        TOPIC,
        "t",
        Some(&["segment.ms", "no.such.config"]),
        false,
        false,
    )
    .await;
    assert_eq!(r.configs.len(), 1);
    assert_eq!(r.configs[0].name, "segment.ms");
    let r = describe(&broker, 4, TOPIC, "t", Some(&[]), false, false).await;
    assert_eq!(r.configs.len(), basalt_broker::config::TOPIC_CONFIGS.len());

    let r = describe(&broker, 4, TOPIC, "missing", None, false, false).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::UnknownTopicOrPartition));
    assert!(r.configs.is_empty());
    let r = describe(&broker, 4, TOPIC, "bad/name", None, false, false).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::InvalidTopicException));
    let r = describe(&broker, 4, BROKER, "7", None, false, false).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::InvalidRequest));
    let r = describe(&broker, 4, 8, "3", None, false, false).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::InvalidRequest));
}

#[tokio::test]
async fn describe_broker_lists_settings_under_kafka_names() {
    let (_dir, broker) = open(|c| {
        c.node_id = 3;
        c.num_partitions = 4;
    });
    for name in ["3", ""] {
        let r = describe(&broker, 4, BROKER, name, None, true, false).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(value(&r, "num.partitions").as_deref(), Some("4"));
        assert_eq!(value(&r, "node.id").as_deref(), Some("3"));
        let np = r
            .configs
            .iter()
            .find(|c| c.name == "num.partitions")
            .unwrap();
        assert_eq!(np.config_source, 4);
        assert!(np.read_only);
        let retention = r
            .configs
            .iter()
            .find(|c| c.name == "log.retention.ms")
            .unwrap();
        assert_eq!(retention.config_source, 5);
    }
}

fn inc_req(name: &str, changes: &[(&str, i8, Option<&str>)], validate_only: bool) -> RequestBody {
    RequestBody::IncrementalAlterConfigs(inc::IncrementalAlterConfigsRequest {
        resources: vec![inc::AlterConfigsResource {
            resource_type: TOPIC,
            resource_name: name.into(),
            configs: changes
                .iter()
                .map(|(n, op, v)| inc::AlterableConfig {
                    name: (*n).into(),
                    config_operation: *op,
                    value: v.map(str::to_owned),
                    ..inc::AlterableConfig::default()
                })
                .collect(),
            ..inc::AlterConfigsResource::default()
        }],
        validate_only,
        ..inc::IncrementalAlterConfigsRequest::default()
    })
}

async fn inc_alter(
    broker: &std::sync::Arc<basalt_broker::Broker>,
    version: i16,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    match call(broker, version, inc_req(name, changes, validate_only)).await {
        ResponseBody::IncrementalAlterConfigs(r) => (
            r.responses[0].error_code,
            r.responses[0].error_message.clone(),
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn incremental_alter_sets_deletes_persists_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = basalt_broker::Broker::open(dir.path(), Default::default()).unwrap();
    create(&broker, "t", 2, &[("retention.ms", "1000")]);

    // validate_only changes nothing.
    let (code, _) = inc_alter(&broker, 1, "t", &[("segment.bytes", 0, Some("4096"))], true).await;
    assert_eq!(code, 0);
    assert!(
        !broker
            .topic("t")
            .unwrap()
            .meta
            .configs
            .contains_key("segment.bytes")
    );

    let (code, msg) = inc_alter(
        &broker,
        0,
        "t",
        &[
            ("segment.bytes", 0, Some("4096")),
            ("retention.ms", 1, None),
            ("cleanup.policy", 2, Some("delete")),
        ],
        false,
    )
    .await;
    assert_eq!(code, 0, "{msg:?}");
    let topic = broker.topic("t").unwrap();
    assert_eq!(
        topic.meta.configs.get("segment.bytes").map(String::as_str),
        Some("4096")
    );
    assert!(!topic.meta.configs.contains_key("retention.ms"));
    assert_eq!(
        topic.meta.configs.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
    for p in &topic.partitions {
        assert_eq!(p.config().log.segment_bytes_max, 4096);
        assert_eq!(p.log.config().segment_bytes_max, 4096);
        assert_eq!(p.config().log.retention_ms, 7 * 24 * 3600 * 1000);
    }
    let r = describe(
        &broker,
        4,
        TOPIC,
        "t",
        Some(&["segment.bytes"]),
        false,
        false,
    )
    .await;
    assert_eq!(r.configs[0].value.as_deref(), Some("4096"));
    assert_eq!(r.configs[0].config_source, 1);

    // Persisted: a reopened broker has the new overrides.
    broker.shutdown().unwrap();
    drop(topic);
    drop(broker);
    let broker = basalt_broker::Broker::open(dir.path(), Default::default()).unwrap();
    let topic = broker.topic("t").unwrap();
    assert_eq!(
        topic.meta.configs.get("segment.bytes").map(String::as_str),
        Some("4096")
    );
    assert_eq!(topic.partitions[1].config().log.segment_bytes_max, 4096);
}

#[tokio::test]
async fn incremental_alter_refuses_bad_changes() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[]);
    type Change<'a> = (&'a str, i8, Option<&'a str>);
    let cases: Vec<(Vec<Change>, ErrorCode)> = vec![
        (
            vec![("retention.ms", 2, Some("5"))],
            ErrorCode::InvalidConfig,
        ),
        (
            vec![("retention.ms", 3, Some("5"))],
            ErrorCode::InvalidConfig,
        ),
        (
            vec![("retention.ms", 0, Some("soon"))],
            ErrorCode::InvalidConfig,
        ),
        (vec![("no.such", 0, Some("1"))], ErrorCode::InvalidConfig),
        (
            vec![("cleanup.policy", 0, Some("compact"))],
            ErrorCode::InvalidConfig,
        ),
        (
            vec![("cleanup.policy", 3, Some("delete"))],
            ErrorCode::InvalidConfig,
        ),
        (vec![("retention.ms", 0, None)], ErrorCode::InvalidRequest),
        (
            vec![("retention.ms", 9, Some("1"))],
            ErrorCode::InvalidRequest,
        ),
        (
            vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
            ErrorCode::InvalidRequest,
        ),
    ];
    for (changes, expected) in cases {
        let (code, msg) = inc_alter(&broker, 1, "t", &changes, false).await;
        assert_eq!(code, i16::from(expected), "{changes:?}: {msg:?}");
        assert!(msg.is_some());
    }
    assert!(broker.topic("t").unwrap().meta.configs.is_empty());
    let (code, _) = inc_alter(
        &broker,
        1,
        "missing",
        &[("retention.ms", 0, Some("1"))],
        false,
    )
    .await;
    assert_eq!(code, i16::from(ErrorCode::UnknownTopicOrPartition));
}

#[tokio::test]
async fn alter_configs_replaces_the_whole_override_set() {
    let (_dir, broker) = open(|_| {});
    create(
        &broker,
        "t",
        1,
        &[("retention.ms", "1000"), ("segment.bytes", "4096")],
    );
    let req = |configs: &[(&str, Option<&str>)], validate_only: bool| {
        RequestBody::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: TOPIC,
                resource_name: "t".into(),
                configs: configs
                    .iter()
                    .map(|(n, v)| AlterableConfig {
                        name: (*n).into(),
                        value: v.map(str::to_owned),
                        ..AlterableConfig::default()
                    })
                    .collect(),
                ..AlterConfigsResource::default()
            }],
            validate_only,
            ..AlterConfigsRequest::default()
        })
    };
    let code = |r: ResponseBody| match r {
        ResponseBody::AlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    };
    for version in 0..=2 {
        let c = code(
            call(
                &broker,
                version,
                req(&[("retention.bytes", Some("99999"))], true),
            )
            .await,
        );
        assert_eq!(c, 0);
        assert_eq!(broker.topic("t").unwrap().meta.configs.len(), 2);
    }
    let c = code(
        call(
            &broker,
            2,
            req(&[("retention.bytes", Some("99999"))], false),
        )
        .await,
    );
    assert_eq!(c, 0);
    let topic = broker.topic("t").unwrap();
    assert_eq!(topic.meta.configs.len(), 1);
    assert_eq!(topic.partitions[0].config().log.retention_bytes, 99999);
    assert_eq!(topic.partitions[0].config().log.segment_bytes_max, 1 << 30);

    let c = code(call(&broker, 1, req(&[("retention.bytes", Some("-5"))], false)).await);
    assert_eq!(c, i16::from(ErrorCode::InvalidConfig));
    let c = code(call(&broker, 1, req(&[("retention.bytes", None)], false)).await);
    assert_eq!(c, i16::from(ErrorCode::InvalidRequest));
    assert_eq!(broker.topic("t").unwrap().meta.configs.len(), 1);
}

#[tokio::test]
async fn broker_resources_cannot_be_altered() {
    let (_dir, broker) = open(|_| {});
    let req = RequestBody::IncrementalAlterConfigs(inc::IncrementalAlterConfigsRequest {
        resources: vec![inc::AlterConfigsResource {
            resource_type: BROKER,
            resource_name: "0".into(),
            configs: vec![inc::AlterableConfig {
                name: "num.partitions".into(),
                config_operation: 0,
                value: Some("3".into()),
                ..inc::AlterableConfig::default()
            }],
            ..inc::AlterConfigsResource::default()
        }],
        ..inc::IncrementalAlterConfigsRequest::default()
    });
    match call(&broker, 1, req).await {
        ResponseBody::IncrementalAlterConfigs(r) => {
            assert_eq!(
                r.responses[0].error_code,
                i16::from(ErrorCode::InvalidRequest)
            );
            assert_eq!(r.responses[0].resource_type, BROKER);
        }
        other => panic!("{other:?}"),
    }
}

/// Every Kafka topic config over real TCP: CreateTopics with several of them, DescribeConfigs
/// back (value, source, type, synonyms, documentation), IncrementalAlterConfigs and
/// AlterConfigs changes, and invalid values refused with INVALID_CONFIG and a reason.
#[tokio::test]
async fn kafka_topic_configs_round_trip_over_tcp() {
    use crate::wire::{Client, serve};
    use basalt_protocol::messages::create_topics_request::{
        CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
    };

    let (_dir, broker) = open(|_| {});
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;

    let create = |name: &str, configs: &[(&str, &str)]| {
        RequestBody::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.into(),
                num_partitions: 1,
                replication_factor: 1,
                configs: configs
                    .iter()
                    .map(|(n, v)| CreatableTopicConfig {
                        name: (*n).into(),
                        value: Some((*v).into()),
                        ..CreatableTopicConfig::default()
                    })
                    .collect(),
                ..CreatableTopic::default()
            }],
            timeout_ms: 5_000,
            ..CreateTopicsRequest::default()
        })
    };
    let created = |r: ResponseBody| match r {
        ResponseBody::CreateTopics(mut r) => {
            let t = r.topics.remove(0);
            (t.error_code, t.error_message, t.configs)
        }
        other => panic!("{other:?}"),
    };
    let configs = [
        ("compression.type", "zstd"),
        ("compression.zstd.level", "7"),
        ("delete.retention.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("preallocate", "true"),
        ("segment.jitter.ms", "10"),
        ("leader.replication.throttled.replicas", "0:0"),
        ("message.timestamp.before.max.ms", "60000"),
        ("cleanup.policy", "delete"),
    ];
    let (code, msg, described) = created(client.request(7, create("t", &configs)).await);
    assert_eq!(code, 0, "{msg:?}");
    let described = described.unwrap();
    assert_eq!(described.len(), basalt_broker::config::TOPIC_CONFIGS.len());
    let zstd = described
        .iter()
        .find(|c| c.name == "compression.type")
        .unwrap();
    assert_eq!(zstd.value.as_deref(), Some("zstd"));
    assert_eq!(zstd.config_source, 1);

    let describe_all = RequestBody::DescribeConfigs(DescribeConfigsRequest {
        resources: vec![DescribeConfigsResource {
            resource_type: TOPIC,
            resource_name: "t".into(),
            configuration_keys: None,
            ..DescribeConfigsResource::default()
        }],
        include_synonyms: true,
        include_documentation: true,
        ..DescribeConfigsRequest::default()
    });
    let r = match client.request(4, describe_all.clone()).await {
        ResponseBody::DescribeConfigs(mut r) => r.results.remove(0),
        other => panic!("{other:?}"),
    };
    assert_eq!(r.error_code, 0);
    for (name, v) in configs {
        assert_eq!(value(&r, name).as_deref(), Some(v), "{name}");
    }
    let get = |name: &str| r.configs.iter().find(|c| c.name == name).unwrap().clone();
    // Type codes: STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7, BOOLEAN 1.
    for (name, type_code) in [
        ("compression.type", 2),
        ("compression.zstd.level", 3),
        ("delete.retention.ms", 5),
        ("min.cleanable.dirty.ratio", 6),
        ("leader.replication.throttled.replicas", 7),
        ("preallocate", 1),
        ("unclean.leader.election.enable", 1),
    ] {
        assert_eq!(get(name).config_type, type_code, "{name}");
    }
    // An override lists itself first, then the broker synonym at its default.
    let ratio = get("min.cleanable.dirty.ratio");
    let synonyms: Vec<(&str, Option<&str>, i8)> = ratio
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("min.cleanable.dirty.ratio", Some("0.25"), 1),
            ("log.cleaner.min.cleanable.ratio", Some("0.5"), 5),
        ]
    );
    // Defaults come from the broker synonyms Kafka names.
    for (name, synonym, default) in [
        (
            "message.timestamp.after.max.ms",
            "log.message.timestamp.after.max.ms",
            "3600000",
        ),
        (
            "flush.messages",
            "log.flush.interval.messages",
            "9223372036854775807",
        ),
        (
            "file.delete.delay.ms",
            "log.segment.delete.delay.ms",
            "60000",
        ),
        (
            "segment.index.bytes",
            "log.index.size.max.bytes",
            "10485760",
        ),
        ("min.insync.replicas", "min.insync.replicas", "1"),
        ("local.retention.ms", "log.local.retention.ms", "-2"),
        ("compression.gzip.level", "compression.gzip.level", "-1"),
    ] {
        let c = get(name);
        assert_eq!(c.value.as_deref(), Some(default), "{name}");
        assert_eq!(c.config_source, 5, "{name}");
        assert_eq!(c.synonyms.len(), 1, "{name}");
        assert_eq!(c.synonyms[0].name, synonym, "{name}");
        assert_eq!(c.synonyms[0].source, 5, "{name}");
    }
    // A topic-only config has no broker synonym: its default is its own.
    let remote = get("remote.storage.enable");
    assert_eq!(remote.value.as_deref(), Some("false"));
    assert_eq!(remote.synonyms[0].name, "remote.storage.enable");
    assert_eq!(remote.synonyms[0].source, 5);
    // The compression doc says what Basalt does with it.
    let doc = get("compression.type").documentation.unwrap();
    assert!(doc.contains("recompression"), "{doc}");

    // IncrementalAlterConfigs: set, delete, append over TCP.
    let changes: &[(&str, i8, Option<&str>)] = &[
        ("compression.type", 0, Some("lz4")),
        ("compression.lz4.level", 0, Some("12")),
        ("preallocate", 1, None),
        ("leader.replication.throttled.replicas", 2, Some("1:0")),
        ("flush.ms", 0, Some("5000")),
    ];
    match client.request(1, inc_req("t", changes, false)).await {
        ResponseBody::IncrementalAlterConfigs(r) => {
            assert_eq!(
                r.responses[0].error_code, 0,
                "{:?}",
                r.responses[0].error_message
            );
        }
        other => panic!("{other:?}"),
    }
    let r = match client.request(4, describe_all.clone()).await {
        ResponseBody::DescribeConfigs(mut r) => r.results.remove(0),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(&r, "compression.type").as_deref(), Some("lz4"));
    assert_eq!(value(&r, "compression.lz4.level").as_deref(), Some("12"));
    assert_eq!(value(&r, "preallocate").as_deref(), Some("false"));
    assert_eq!(
        value(&r, "leader.replication.throttled.replicas").as_deref(),
        Some("0:0,1:0")
    );
    assert_eq!(value(&r, "flush.ms").as_deref(), Some("5000"));

    // AlterConfigs replaces the override set.
    let alter = RequestBody::AlterConfigs(AlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: TOPIC,
            resource_name: "t".into(),
            configs: vec![AlterableConfig {
                name: "compression.type".into(),
                value: Some("gzip".into()),
                ..AlterableConfig::default()
            }],
            ..AlterConfigsResource::default()
        }],
        ..AlterConfigsRequest::default()
    });
    match client.request(2, alter).await {
        ResponseBody::AlterConfigs(r) => assert_eq!(r.responses[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    let overrides = broker.topic("t").unwrap().meta.configs.clone();
    assert_eq!(
        overrides.into_iter().collect::<Vec<_>>(),
        vec![("compression.type".to_owned(), "gzip".to_owned())]
    );

    // Invalid values are refused by every path, with a reason, and change nothing.
    let bad: &[(&str, &str, &str)] = &[
        ("compression.type", "brotli", "must be one of"),
        ("compression.gzip.level", "0", "-1 or between 1 and 9"),
        ("min.cleanable.dirty.ratio", "2", "between 0 and 1"),
        ("min.insync.replicas", "0", "at least 1"),
        ("preallocate", "maybe", "true or false"),
        ("segment.index.bytes", "x", "integer"),
        ("cleanup.policy", "compact", "compaction is not supported"),
        (
            "remote.storage.enable",
            "true",
            "tiered storage is not supported",
        ),
        (
            "follower.replication.throttled.replicas",
            "all",
            "partition:broker",
        ),
        ("no.such.config", "1", "unknown topic config"),
    ];
    for (name, v, reason) in bad {
        let (code, msg, _) = created(client.request(5, create("u", &[(name, v)])).await);
        assert_eq!(code, i16::from(ErrorCode::InvalidConfig), "{name}={v}");
        let msg = msg.unwrap_or_default();
        assert!(msg.contains(reason), "{name}={v}: {msg}");
        match client
            .request(1, inc_req("t", &[(name, 0, Some(v))], false))
            .await
        {
            ResponseBody::IncrementalAlterConfigs(r) => {
                assert_eq!(
                    r.responses[0].error_code,
                    i16::from(ErrorCode::InvalidConfig),
                    "{name}={v}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(broker.topic("u").is_none());
    assert_eq!(broker.topic("t").unwrap().meta.configs.len(), 1);
    served.stop().await;
}

/// Configs Basalt applies on produce: `min.insync.replicas` above 1 refuses `acks=all` (not
/// `acks=1`), and CreateTime topics refuse batches outside the timestamp bounds.
#[tokio::test]
async fn produce_honours_min_insync_replicas_and_timestamp_bounds() {
    use crate::wire::{Client, serve};
    use basalt_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };

    let (_dir, broker) = open(|_| {});
    create(&broker, "isr", 1, &[("min.insync.replicas", "2")]);
    create(
        &broker,
        "ts",
        1,
        &[
            ("message.timestamp.before.max.ms", "60000"),
            ("message.timestamp.after.max.ms", "60000"),
        ],
    );
    create(
        &broker,
        "lat",
        1,
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "0"),
        ],
    );
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;
    let now = basalt_broker::now_ms();
    let batch = |ts: i64| {
        let mut b = basalt_record::BatchBuilder::new(0);
        b.push(ts, None, Some(b"v"), &[]);
        b.build()
    };
    let mut produce = async |topic: &str, acks: i16, ts: i64| {
        let req = RequestBody::Produce(ProduceRequest {
            acks,
            timeout_ms: 5_000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(batch(ts)),
                    ..PartitionProduceData::default()
                }],
                ..TopicProduceData::default()
            }],
            ..ProduceRequest::default()
        });
        match client.request(9, req).await {
            ResponseBody::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                (p.error_code, p.error_message.clone().unwrap_or_default())
            }
            other => panic!("{other:?}"),
        }
    };
    let (code, msg) = produce("isr", -1, now).await;
    assert_eq!(code, i16::from(ErrorCode::NotEnoughReplicas), "{msg}");
    assert!(msg.contains("min.insync.replicas"), "{msg}");
    assert_eq!(produce("isr", 1, now).await.0, 0);
    assert_eq!(broker.partition("isr", 0).unwrap().log.log_end_offset(), 1);

    assert_eq!(produce("ts", -1, now).await.0, 0);
    for ts in [now - 3_600_000, now + 3_600_000] {
        let (code, msg) = produce("ts", -1, ts).await;
        assert_eq!(code, i16::from(ErrorCode::InvalidTimestamp), "{ts}: {msg}");
        assert!(msg.contains("out of range"), "{msg}");
    }
    assert_eq!(broker.partition("ts", 0).unwrap().log.log_end_offset(), 1);
    // LogAppendTime topics stamp the batch instead: no bound applies.
    assert_eq!(produce("lat", -1, 1).await.0, 0);
    served.stop().await;
}
