//! Shared plumbing of the end-to-end tests with real Kafka clients: librdkafka clients set up for
//! a local broker, synchronous waits on their futures, and bounded consumption.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use basalt_protocol::request::{decode_response_frame, encode_request_frame};
use basalt_protocol::{RequestBody, RequestHeader, ResponseBody};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Upper bound of any single wait on the broker.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a future to completion on a small runtime of its own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Settings every client gets: the broker, and quick reconnects.
fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "20");
    config
}

/// A producer with acks=all, a short linger and `extra` settings on top.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = base_config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

/// A consumer for `assign` (group.id is set because librdkafka requires it; nothing is
/// committed).
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    base_config(bootstrap)
        .set("group.id", "basalt-e2e")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap()
}

/// An admin client.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    base_config(bootstrap).create().unwrap()
}

/// Admin options with a bounded wait.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// Creates a topic and asserts that it worked.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin.create_topics(&[topic], &admin_options())).unwrap();
    assert_eq!(results, vec![Ok(name.to_owned())], "creating {name}");
}

/// Sends one record and waits for its delivery report; panics if it fails.
pub fn send_one(producer: &FutureProducer, record: FutureRecord<'_, [u8], [u8]>) -> Delivery {
    let future = producer
        .send_result(record)
        .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
    block_on(future)
        .expect("delivery report lost")
        .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"))
}

/// Reads every record of `partitions` of `topic` from the beginning until each partition has
/// given `expected[i]` records; panics with what it got if that takes longer than [`TIMEOUT`].
/// Returns the records per partition, in offset order.
pub fn consume_exactly(
    bootstrap: &str,
    topic: &str,
    expected: &[(i32, usize)],
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for (p, _) in expected {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let want: BTreeMap<i32, usize> = expected.iter().copied().collect();
    let mut got: BTreeMap<i32, Vec<OwnedMessage>> = want.keys().map(|p| (*p, Vec::new())).collect();
    let deadline = Instant::now() + TIMEOUT;
    while want.iter().any(|(p, n)| got[p].len() < *n) {
        assert!(
            Instant::now() < deadline,
            "{topic}: wanted {want:?} records, got {:?} within {TIMEOUT:?}",
            got.iter().map(|(p, v)| (*p, v.len())).collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let list = got.get_mut(&m.partition()).expect("an assigned partition");
                list.push(m.detach());
            }
            Some(Err(e)) => panic!("{topic}: consume error: {e}"),
        }
    }
    for (p, n) in &want {
        let (low, high) = consumer.fetch_watermarks(topic, *p, TIMEOUT).unwrap();
        assert_eq!(
            (low, high),
            (0, *n as i64),
            "{topic}/{p}: watermarks after reading {n} records"
        );
        let offsets: Vec<i64> = got[p].iter().map(Message::offset).collect();
        let contiguous: Vec<i64> = (0..*n as i64).collect();
        assert_eq!(offsets, contiguous, "{topic}/{p}: offsets read");
    }
    got
}

/// The value of a record as text.
pub fn text(m: &OwnedMessage) -> &str {
    std::str::from_utf8(m.payload().expect("a value")).expect("UTF-8 value")
}

/// A client speaking raw Kafka protocol over one blocking TCP connection, for requests no
/// client library sends the way a test needs.
pub struct RawClient {
    stream: std::net::TcpStream,
    correlation: i32,
    client_id: String,
}

/// Sets group config `name` of `group` to `value` through the broker at `addr`
/// (IncrementalAlterConfigs on the GROUP resource).
pub fn set_group_config(addr: std::net::SocketAddr, group: &str, name: &str, value: &str) {
    use basalt_protocol::messages::incremental_alter_configs_request as inc;
    let mut raw = RawClient::connect(addr, "group-config");
    match raw.call(
        1,
        RequestBody::IncrementalAlterConfigs(inc::IncrementalAlterConfigsRequest {
            resources: vec![inc::AlterConfigsResource {
                resource_type: 32,
                resource_name: group.into(),
                configs: vec![inc::AlterableConfig {
                    name: name.into(),
                    config_operation: 0,
                    value: Some(value.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
    ) {
        ResponseBody::IncrementalAlterConfigs(r) => assert_eq!(r.responses[0].error_code, 0),
        other => panic!("{other:?}"),
    }
}

impl RawClient {
    /// Connects to `addr`.
    pub fn connect(addr: std::net::SocketAddr, client_id: &str) -> Self {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        RawClient {
            stream,
            correlation: 0,
            client_id: client_id.to_owned(),
        }
    }

    /// Sends `body` at `version` and reads its response.
    pub fn call(&mut self, version: i16, body: RequestBody) -> ResponseBody {
        use std::io::{Read, Write};
        self.correlation += 1;
        let api = body.api_key();
        let header = RequestHeader {
            request_api_key: api.key(),
            request_api_version: version,
            correlation_id: self.correlation,
            client_id: Some(self.client_id.clone()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, &body).unwrap();
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        decode_response_frame(api, version, bytes::Bytes::from(buf))
            .unwrap()
            .1
    }
}
