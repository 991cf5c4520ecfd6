//! Produce (key 0), v3–11 handled (v0–2 advertised but refused, as Kafka 4 does).
//!
//! Batches are validated (framing, CRC, size, producer sequence) and appended as they came;
//! `acks=-1` is answered once the partition's fsync policy says the batch is durable, `acks=1`
//! once it is written, `acks=0` never; `acks=-1` on a topic whose `min.insync.replicas` is above
//! 1 is refused with NOT_ENOUGH_REPLICAS (one node is one replica). CreateTime batches outside
//! `message.timestamp.before.max.ms` / `after.max.ms` are refused with INVALID_TIMESTAMP.
//! A transactional batch is appended only to a partition its producer added to its open
//! transaction (INVALID_TXN_STATE otherwise; an old epoch gets INVALID_PRODUCER_EPOCH). When
//! another node coordinates the transactional id, the first batch of a transaction on a
//! partition is verified with it (AddPartitionsToTxn `verify_only`) before the append; a
//! coordinator that cannot be asked gives NOT_ENOUGH_REPLICAS, which clients retry.
//! Authorization: WRITE on each topic (TOPIC_AUTHORIZATION_FAILED), and WRITE on the
//! transactional id of a transactional request (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every
//! partition); auto-creation needs CREATE on the cluster or the topic.
//! Capped at v11 so Java producers keep the classic transaction flow (KIP-890 needs v12+).
//! In a cluster, a partition another node leads answers NOT_LEADER_OR_FOLLOWER with (v10+) the
//! current leader and its endpoint.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::produce_request::ProduceRequest;
use basalt_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use basalt_protocol::ResponseBody;
use basalt_server::{ConnectionInfo, Outcome};

use crate::acl::{Operation, ResourceType, Session};
use crate::{Broker, now_ms};

/// Highest Produce version handled.
pub const MAX_VERSION: i16 = 11;

/// Whether another node coordinates a transactional request's id, and what it said of the
/// partitions that had no transaction of the producer open yet (`PART-4`).
#[derive(Debug, Default)]
pub struct Verdicts {
    remote: bool,
    partitions: BTreeMap<(String, i32), Result<(), Option<ErrorCode>>>,
}

/// Before a transactional request is appended: asks the transaction coordinator, when another
/// node is it, about each partition led here where the producer has no transaction open yet
/// (KIP-890's verification; once a transaction is open on a partition its later batches need
/// no question). Awaited in the request's first stage, so the connection's later requests
/// still start after it (`NET-5`).
pub async fn verify_remote(
    broker: &Arc<Broker>,
    session: &Session,
    req: &ProduceRequest,
) -> Verdicts {
    let mut verdicts = Verdicts::default();
    let Some(id) = req.transactional_id.as_deref() else {
        return verdicts;
    };
    // Nothing is asked for a request that is refused anyway (`handle` answers it).
    if broker.cluster().is_none()
        || broker.coordinates_txn(id)
        || !broker.authorize(session, Operation::Write, ResourceType::TransactionalId, id)
    {
        return verdicts;
    }
    verdicts.remote = true;
    let me = broker.config().node_id;
    for t in &req.topic_data {
        let Some(topic) = broker.topic(&t.name) else {
            continue;
        };
        if !broker.authorize(session, Operation::Write, ResourceType::Topic, &t.name) {
            continue;
        }
        for pd in &t.partition_data {
            let Some(partition) = usize::try_from(pd.index)
                .ok()
                .and_then(|i| topic.partitions.get(i))
            else {
                continue;
            };
            let Some(header) = pd
                .records
                .as_deref()
                .and_then(|r| basalt_record::BatchHeader::parse(r).ok())
            else {
                continue;
            };
            if !header.is_transactional()
                || !topic.is_led_by(pd.index, me)
                || partition.has_open_txn(header.producer_id)
            {
                continue;
            }
            let verdict = broker
                .txns()
                .verify(
                    broker,
                    id,
                    header.producer_id,
                    header.producer_epoch,
                    &t.name,
                    pd.index,
                )
                .await;
            verdicts
                .partitions
                .insert((t.name.clone(), pd.index), verdict);
        }
    }
    verdicts
}

/// Handles a produce request: appends now, in the connection's request order (`NET-5`), and
/// defers only the wait for durability. `verdicts` are [`verify_remote`]'s.
pub fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    conn: &ConnectionInfo,
    req: ProduceRequest,
    _version: i16,
    verdicts: &Verdicts,
) -> Outcome {
    let remote_coordinator = verdicts.remote;
    // Leaders named in NOT_LEADER_OR_FOLLOWER answers (v10+ tells their endpoints).
    let mut moved: BTreeSet<i32> = BTreeSet::new();
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let valid_acks = matches!(acks, -1..=1);
    let now = now_ms();
    let mut tickets = Vec::new();
    // Replicated partitions an acks=all answer waits for (`REPL-4`): partition, the offset the
    // HW must reach, and where its answer is.
    let mut replicated: Vec<(Arc<crate::partition::Partition>, i64, usize, usize)> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let txn_denied = req.transactional_id.as_deref().is_some_and(|id| {
        !broker.authorize(session, Operation::Write, ResourceType::TransactionalId, id)
    });
    for topic_data in req.topic_data {
        let topic = if txn_denied {
            Err(crate::TopicError::new(
                ErrorCode::TransactionalIdAuthorizationFailed,
                "not authorized to use this transactional id",
            ))
        } else if !broker.authorize(
            session,
            Operation::Write,
            ResourceType::Topic,
            &topic_data.name,
        ) {
            Err(crate::TopicError::new(
                ErrorCode::TopicAuthorizationFailed,
                format!("not authorized to write to {}", topic_data.name),
            ))
        } else if crate::groups::is_internal(&topic_data.name) {
            Err(crate::TopicError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "{} is an internal topic: clients may not write to it",
                    topic_data.name
                ),
            ))
        } else {
            broker.topic_or_auto_create(
                &topic_data.name,
                broker.authorize_cluster(session, Operation::Create)
                    || broker.authorize(
                        session,
                        Operation::Create,
                        ResourceType::Topic,
                        &topic_data.name,
                    ),
            )
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let mut resp = PartitionProduceResponse {
                index: pd.index,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
                ..PartitionProduceResponse::default()
            };
            let outcome = if !valid_acks {
                Err((
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ))
            } else {
                match &topic {
                    Err(e) => Err((e.code, e.message.clone())),
                    Ok(topic) => match usize::try_from(pd.index)
                        .ok()
                        .and_then(|i| topic.partitions.get(i))
                    {
                        None => Err((
                            ErrorCode::UnknownTopicOrPartition,
                            format!("{} has no partition {}", topic.meta.name, pd.index),
                        )),
                        // CLU-2
                        Some(_) if !topic.is_led_by(pd.index, broker.config().node_id) => Err((
                            ErrorCode::NotLeaderOrFollower,
                            format!("this node does not lead {}-{}", topic.meta.name, pd.index),
                        )),
                        Some(partition) => match pd.records.as_deref() {
                            None | Some([]) => {
                                Err((ErrorCode::CorruptMessage, "no records".into()))
                            }
                            Some(records) => partition
                                .check_required_acks(acks)
                                .and_then(|()| {
                                    partition.produce(records, now, |h, open_here| {
                                        if !remote_coordinator {
                                            return broker.txns().verify_here(
                                                broker,
                                                h.producer_id,
                                                h.producer_epoch,
                                                &topic.meta.name,
                                                pd.index,
                                            );
                                        }
                                        if open_here {
                                            return Ok(());
                                        }
                                        // Unasked (the transaction here ended meanwhile) or
                                        // the coordinator could not be asked: the client
                                        // retries.
                                        match verdicts
                                            .partitions
                                            .get(&(topic.meta.name.clone(), pd.index))
                                        {
                                            Some(Ok(())) => Ok(()),
                                            Some(Err(Some(code))) => Err(*code),
                                            Some(Err(None)) | None => {
                                                Err(ErrorCode::NotEnoughReplicas)
                                            }
                                        }
                                    })
                                })
                                .map_err(|e| (e.code, e.message)),
                        },
                    },
                }
            };
            match outcome {
                Ok(produced) => {
                    if let Ok(t) = &topic
                        && let Some(p) = usize::try_from(pd.index)
                            .ok()
                            .and_then(|i| t.partitions.get(i))
                        && p.is_replicated()
                    {
                        replicated.push((
                            Arc::clone(p),
                            produced.last_offset + 1,
                            responses.len(),
                            partitions.len(),
                        ));
                    }
                    resp.base_offset = produced.base_offset;
                    resp.log_append_time_ms = produced.log_append_time_ms;
                    resp.log_start_offset = produced.log_start_offset;
                    if let Some(ticket) = produced.durable {
                        tickets.push((ticket, responses.len(), partitions.len()));
                    }
                }
                Err((code, message)) => {
                    tracing::debug!(topic = %topic_data.name, partition = pd.index, %code, %message, "produce refused");
                    if code == ErrorCode::NotLeaderOrFollower
                        && let Ok(t) = &topic
                        && let Some(&leader) = usize::try_from(pd.index)
                            .ok()
                            .and_then(|i| t.leaders.get(i))
                        && leader >= 0
                    {
                        resp.current_leader = LeaderIdAndEpoch {
                            leader_id: leader,
                            leader_epoch: usize::try_from(pd.index)
                                .ok()
                                .and_then(|i| t.partitions.get(i))
                                .map_or(-1, |p| p.leader_epoch()),
                            ..LeaderIdAndEpoch::default()
                        };
                        moved.insert(leader);
                    }
                    resp.error_code = code.into();
                    resp.error_message = Some(message);
                }
            }
            partitions.push(resp);
        }
        responses.push(TopicProduceResponse {
            name: topic_data.name,
            partition_responses: partitions,
            ..TopicProduceResponse::default()
        });
    }
    let node_endpoints = match broker.image() {
        Some(image) if !moved.is_empty() => {
            crate::handlers::metadata::cluster_brokers(&image, conn.listener_name())
                .into_iter()
                .filter(|b| moved.contains(&b.node_id))
                .map(|b| NodeEndpoint {
                    node_id: b.node_id,
                    host: b.host,
                    port: b.port,
                    rack: b.rack,
                    ..NodeEndpoint::default()
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let response = ProduceResponse {
        responses,
        node_endpoints,
        ..ProduceResponse::default()
    };
    if acks != -1 {
        // Only acks=all waits for the HW; the others still wake followers and, once durable,
        // move the HW.
        let moving: Vec<_> = replicated.drain(..).map(|r| r.0).collect();
        if !moving.is_empty() {
            let visible = broker.watch_visible_sender();
            let tickets: Vec<_> = tickets.drain(..).map(|(ticket, _, _)| ticket).collect();
            tokio::spawn(async move {
                for ticket in tickets {
                    let _ = ticket.await;
                }
                for p in moving {
                    p.on_local_progress();
                }
                visible.send_modify(|v| *v = v.wrapping_add(1));
            });
        }
    }
    if acks == -1 && (!tickets.is_empty() || !replicated.is_empty()) {
        let broker = Arc::clone(broker);
        let timeout = std::time::Duration::from_millis(timeout_ms.clamp(0, 300_000) as u64);
        // Followers fetch what was appended before it is durable here.
        if !replicated.is_empty() {
            broker.notify_visible();
        }
        return Outcome::Later(Box::pin(async move {
            let mut response = response;
            for (ticket, t, p) in tickets {
                if let Err(e) = ticket.await {
                    let resp = &mut response.responses[t].partition_responses[p];
                    resp.error_code = crate::errors::storage_error_code(&e).into();
                    resp.error_message = Some(e.to_string());
                    resp.base_offset = -1;
                }
            }
            for p in &replicated {
                if p.0.on_local_progress() {
                    broker.notify_visible();
                }
            }
            wait_replicated(&broker, &mut response, replicated, timeout).await;
            broker.notify_visible();
            Outcome::Respond(ResponseBody::Produce(response))
        }));
    }
    broker.notify_visible();
    if !tickets.is_empty() {
        // Consumers see the data once it is durable; wake them then.
        let visible = broker.watch_visible_sender();
        tokio::spawn(async move {
            for (ticket, _, _) in tickets {
                let _ = ticket.await;
            }
            visible.send_modify(|v| *v = v.wrapping_add(1));
        });
    }
    if acks == 0 {
        Outcome::NoResponse
    } else {
        Outcome::Respond(ResponseBody::Produce(response))
    }
}

/// Waits until every replicated partition's HW passes its batch (`REPL-4`), answering
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR fell below `min.insync.replicas`,
/// NOT_LEADER_OR_FOLLOWER when leadership moved, and REQUEST_TIMED_OUT at the request's timeout.
async fn wait_replicated(
    broker: &Broker,
    response: &mut ProduceResponse,
    mut waiting: Vec<(Arc<crate::partition::Partition>, i64, usize, usize)>,
    timeout: std::time::Duration,
) {
    use basalt_cluster::replication::AcksAll;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut visible = broker.watch_visible();
    loop {
        visible.borrow_and_update();
        waiting.retain(|(partition, required, t, p)| {
            let resp = &mut response.responses[*t].partition_responses[*p];
            if resp.error_code != 0 {
                return false;
            }
            let failed = match partition.acks_all(*required) {
                Ok(AcksAll::Ready) => return false,
                Ok(AcksAll::Wait) => return true,
                Ok(AcksAll::NotEnoughReplicas) => ErrorCode::NotEnoughReplicasAfterAppend,
                Err(code) => code,
            };
            resp.error_code = failed.into();
            resp.error_message = Some(format!(
                "{failed} for {}-{} after the append",
                partition.topic, partition.index
            ));
            resp.base_offset = -1;
            false
        });
        if waiting.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            for (partition, _, t, p) in waiting {
                let resp = &mut response.responses[t].partition_responses[p];
                resp.error_code = ErrorCode::RequestTimedOut.into();
                resp.error_message = Some(format!(
                    "{}-{} was not replicated to its in-sync replicas within the request timeout",
                    partition.topic, partition.index
                ));
                resp.base_offset = -1;
            }
            return;
        }
        tokio::select! {
            changed = visible.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => {}
            // The HW also moves with ISR changes applied from the quorum; look again now and then.
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}
