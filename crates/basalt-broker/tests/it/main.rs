//! Integration tests of the broker's handlers: a [`Broker`] on a temporary directory, requests
//! sent through the [`Handler`] dispatcher after a round trip through the wire encoding at the
//! tested version, and responses checked after the same round trip; or (module `wire`) the
//! broker served by `basalt-server` over real TCP.

#![allow(clippy::unwrap_used)]

mod admin_configs;
mod admin_partitions;
mod admin_reassign;
mod admin_records;
mod authorized_operations;
mod cluster;
mod offset_delete;
mod producer_state;
mod share_groups;
mod versions;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use basalt_broker::{Broker, BrokerConfig};
use basalt_protocol::{Chunk, Encoder, RequestBody, RequestHeader, ResponseBody};
use basalt_server::{ConnectionInfo, Handler, Outcome};
use bytes::Bytes;

/// A broker on a fresh directory (kept alive by the returned guard).
pub fn open(configure: impl FnOnce(&mut BrokerConfig)) -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::default();
    configure(&mut config);
    let broker = Broker::open(dir.path(), config).unwrap();
    (dir, broker)
}

/// An ALLOW binding of `operation` on the literal resource `name` for `User:ANONYMOUS` (the
/// principal of the handler tests' connections).
pub fn allow(
    resource_type: basalt_broker::acl::ResourceType,
    name: &str,
    operation: basalt_broker::acl::Operation,
) -> basalt_broker::acl::AclBinding {
    basalt_broker::acl::AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type: basalt_broker::acl::PatternType::Literal,
        principal: "User:ANONYMOUS".into(),
        host: "*".into(),
        operation,
        permission: basalt_broker::acl::Permission::Allow,
    }
}

/// Creates topic `name` with `partitions` partitions and `configs` overrides.
pub fn create(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let configs: BTreeMap<String, String> = configs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    broker
        .create_topic(name, partitions, 1, configs, false)
        .unwrap();
}

/// Sends `body` at `version` through the dispatcher; both directions are encoded and decoded at
/// `version` first, so a field the version cannot carry fails the test.
pub async fn call(broker: &Arc<Broker>, version: i16, body: RequestBody) -> ResponseBody {
    let api_key = body.api_key();
    let mut buf = Encoder::new();
    body.encode(&mut buf, version).unwrap();
    let body = RequestBody::decode(api_key, version, &mut buf.into_bytes().unwrap()).unwrap();
    let header = RequestHeader {
        request_api_key: api_key.key(),
        request_api_version: version,
        correlation_id: 7,
        client_id: Some("it".into()),
        unknown_tagged_fields: Vec::new(),
    };
    let conn = Arc::new(ConnectionInfo::new(
        1,
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:9092".parse().unwrap(),
    ));
    let response = match Arc::clone(broker).handle(conn, header, body).await {
        Outcome::Respond(r) => r,
        Outcome::Later(later) => match later.await {
            Outcome::Respond(r) => r,
            other => panic!("unexpected outcome {other:?}"),
        },
        other => panic!("unexpected outcome {other:?}"),
    };
    let mut buf = Encoder::new();
    response.encode(&mut buf, version).unwrap();
    ResponseBody::decode(api_key, version, &mut read_chunks(buf.into_chunks())).unwrap()
}

/// The bytes of encoded parts, reading file regions (fetched records) from their files as the
/// connection writer would.
fn read_chunks(chunks: Vec<Chunk>) -> Bytes {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    for chunk in chunks {
        match chunk {
            Chunk::Memory(b) => out.extend_from_slice(&b),
            Chunk::File(r) => {
                let mut buf = vec![0; r.len];
                r.file.read_exact_at(&mut buf, r.position).unwrap();
                out.extend_from_slice(&buf);
            }
        }
    }
    Bytes::from(out)
}

/// Appends `n` one-record batches to partition `p` of `topic` and waits until they are durable.
pub async fn produce(broker: &Broker, topic: &str, p: i32, n: usize) {
    let partition = broker.partition(topic, p).unwrap();
    for i in 0..n {
        let mut b = basalt_record::BatchBuilder::new(0);
        b.push(1_000 + i as i64, None, Some(b"v"), &[]);
        let produced = partition
            .produce(&b.build(), basalt_broker::now_ms(), |_, _| Ok(()))
            .unwrap();
        if let Some(ticket) = produced.durable {
            ticket.await.unwrap();
        }
    }
}
