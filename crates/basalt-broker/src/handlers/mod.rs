//! One handler per Kafka API, each in its own file with the version range it implements.
//!
//! [`SUPPORTED`] is the registry: ApiVersions is built from it and the dispatcher refuses any
//! version outside it (`BRK-1`). A refused version the codec could decode is answered with
//! UNSUPPORTED_VERSION in a response of that version (`unsupported.rs`); ApiVersions answers
//! with a v0 response and the whole table (KIP-511); a version the codec cannot decode, or an
//! API without a handler, closes the connection with a log line.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_user_scram_credentials;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod share_acknowledge;
mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod sync_group;
mod txn_offset_commit;
mod unsupported;
mod write_txn_markers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use basalt_protocol::{ApiKey, RequestBody, RequestHeader, ResponseBody};
use basalt_server::{ConnectionInfo, Handler, Outcome};

use crate::Broker;
use crate::acl::Session;

/// An API this broker implements: the versions it advertises, and the first version it handles
/// (Produce v0–2 are advertised, as Kafka 4 does for old librdkafka, but refused: KAFKA-18659).
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest advertised version.
    pub advertised_min: i16,
    /// Lowest version handled.
    pub handled_min: i16,
    /// Highest version advertised and handled.
    pub max: i16,
}

const fn api(api_key: ApiKey, min: i16, max: i16) -> Supported {
    Supported {
        api_key,
        advertised_min: min,
        handled_min: min,
        max,
    }
}

/// Every API and version range this broker implements.
pub const SUPPORTED: &[Supported] = &[
    Supported {
        api_key: ApiKey::Produce,
        advertised_min: 0,
        handled_min: 3,
        max: produce::MAX_VERSION,
    },
    api(ApiKey::Fetch, 4, fetch::MAX_VERSION),
    api(ApiKey::ListOffsets, 1, list_offsets::MAX_VERSION),
    api(ApiKey::Metadata, 0, metadata::MAX_VERSION),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, describe_log_dirs::MAX_VERSION),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::ElectLeaders, 0, elect_leaders::MAX_VERSION),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::OffsetCommit, 2, offset_commit::MAX_VERSION),
    api(ApiKey::OffsetFetch, 1, offset_fetch::MAX_VERSION),
    api(ApiKey::JoinGroup, 0, join_group::MAX_VERSION),
    api(ApiKey::Heartbeat, 0, heartbeat::MAX_VERSION),
    api(ApiKey::LeaveGroup, 0, leave_group::MAX_VERSION),
    api(ApiKey::SyncGroup, 0, sync_group::MAX_VERSION),
    api(ApiKey::DescribeGroups, 0, describe_groups::MAX_VERSION),
    api(ApiKey::ListGroups, 0, list_groups::MAX_VERSION),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        consumer_group_heartbeat::MAX_VERSION,
    ),
    api(
        ApiKey::ConsumerGroupDescribe,
        0,
        consumer_group_describe::MAX_VERSION,
    ),
    api(
        ApiKey::ShareGroupHeartbeat,
        1,
        share_group_heartbeat::MAX_VERSION,
    ),
    api(
        ApiKey::ShareGroupDescribe,
        1,
        share_group_describe::MAX_VERSION,
    ),
    api(ApiKey::ShareFetch, 1, share_fetch::MAX_VERSION),
    api(ApiKey::ShareAcknowledge, 1, share_acknowledge::MAX_VERSION),
    api(
        ApiKey::AddPartitionsToTxn,
        0,
        add_partitions_to_txn::MAX_VERSION,
    ),
    api(ApiKey::AddOffsetsToTxn, 0, add_offsets_to_txn::MAX_VERSION),
    api(ApiKey::EndTxn, 0, end_txn::MAX_VERSION),
    api(ApiKey::TxnOffsetCommit, 0, txn_offset_commit::MAX_VERSION),
    api(ApiKey::WriteTxnMarkers, 1, write_txn_markers::MAX_VERSION),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, list_transactions::MAX_VERSION),
    api(ApiKey::DescribeAcls, 1, describe_acls::MAX_VERSION),
    api(ApiKey::CreateAcls, 1, create_acls::MAX_VERSION),
    api(ApiKey::DeleteAcls, 1, delete_acls::MAX_VERSION),
    api(ApiKey::SaslHandshake, 0, sasl_handshake::MAX_VERSION),
    api(ApiKey::SaslAuthenticate, 0, sasl_authenticate::MAX_VERSION),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The client id of a request and the host of its connection, as group members report them.
fn client_of(header: &RequestHeader, conn: &ConnectionInfo) -> (String, String) {
    (
        header.client_id.clone().unwrap_or_default(),
        format!("/{}", conn.peer.ip()),
    )
}

/// ConfigResource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource type of a broker.
const RESOURCE_BROKER: i8 = 4;
/// ConfigResource type of a group (KIP-848, KIP-932 group configs).
const RESOURCE_GROUP: i8 = 32;

/// Checks the name of a BROKER config resource: this node's id, or empty for the cluster-wide
/// defaults (which on a single node are this node's settings).
fn check_broker_resource(broker: &Broker, name: &str) -> Result<(), String> {
    let node_id = broker.config().node_id;
    if name.is_empty() || name.parse::<i32>().ok() == Some(node_id) {
        Ok(())
    } else {
        Err(format!(
            "unexpected broker id {name:?}: this is broker {node_id} (or use an empty name)"
        ))
    }
}

/// The `(type, name)` of config resources named more than once in one request.
/// Applies `alter` to each config resource of an (Incremental)AlterConfigs request, refusing
/// resources named twice (INVALID_REQUEST, as Kafka does); returns each resource's type, name and
/// error, in request order.
fn alter_each<R>(
    resources: Vec<R>,
    key: impl Fn(&R) -> (i8, String),
    mut alter: impl FnMut(R) -> Result<(), crate::TopicError>,
) -> Vec<(i8, String, Option<crate::TopicError>)> {
    let mut counts: BTreeMap<(i8, String), usize> = BTreeMap::new();
    for r in &resources {
        *counts.entry(key(r)).or_default() += 1;
    }
    let duplicates: BTreeSet<(i8, String)> = counts
        .into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(k, _)| k)
        .collect();
    resources
        .into_iter()
        .map(|r| {
            let (resource_type, name) = key(&r);
            let outcome = if duplicates.contains(&(resource_type, name.clone())) {
                Err(crate::TopicError {
                    code: basalt_protocol::ErrorCode::InvalidRequest,
                    message: format!("resource {name} is named twice"),
                })
            } else {
                alter(r)
            };
            (resource_type, name, outcome.err())
        })
        .collect()
}

/// `" (it handles vN-M)"` for an API in [`SUPPORTED`], else nothing.
fn handled_range(api_key: ApiKey) -> String {
    SUPPORTED
        .iter()
        .find(|s| s.api_key == api_key)
        .map(|s| format!(" (it handles v{}-{})", s.handled_min, s.max))
        .unwrap_or_default()
}

fn supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|s| s.api_key == api_key && (s.handled_min..=s.max).contains(&version))
}

impl Handler for Broker {
    async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnectionInfo>,
        header: RequestHeader,
        body: RequestBody,
    ) -> Outcome {
        let api_key = body.api_key();
        let version = header.request_api_version;
        if !supported(api_key, version) {
            if api_key == ApiKey::ApiVersions {
                return self.unsupported_version(api_key, &header);
            }
            let message = format!(
                "{api_key:?} v{version} is not supported by this broker{}",
                handled_range(api_key)
            );
            tracing::debug!(
                conn = conn.id,
                ?api_key,
                version,
                "answering unsupported version"
            );
            return unsupported::error_response(body, version, &message)
                .unwrap_or(Outcome::Close { reason: message });
        }
        // Who is asking: every handler but ApiVersions authorizes against it.
        let session = Session::of(&conn);
        let response = match body {
            RequestBody::ApiVersions(_) => ResponseBody::ApiVersions(api_versions::handle(0)),
            RequestBody::SaslHandshake(r) => {
                ResponseBody::SaslHandshake(sasl_handshake::handle(&conn, r, version))
            }
            // The exchange is in this first stage (NET-5): the next request of the connection
            // is read only after the login step it depends on.
            RequestBody::SaslAuthenticate(r) => {
                ResponseBody::SaslAuthenticate(sasl_authenticate::handle(&conn, r).await)
            }
            RequestBody::DescribeUserScramCredentials(r) => {
                ResponseBody::DescribeUserScramCredentials(describe_user_scram_credentials::handle(
                    &self, &session, r,
                ))
            }
            RequestBody::AlterUserScramCredentials(r) => {
                let broker = Arc::clone(&self);
                let session = session.clone();
                // Persisting fsyncs: off the reactor.
                return Outcome::Later(Box::pin(async move {
                    let answer = tokio::task::spawn_blocking(move || {
                        alter_user_scram_credentials::handle(&broker, &session, r)
                    })
                    .await;
                    match answer {
                        Ok(a) => Outcome::Respond(ResponseBody::AlterUserScramCredentials(a)),
                        Err(e) => Outcome::Close {
                            reason: format!("AlterUserScramCredentials failed: {e}"),
                        },
                    }
                }));
            }
            RequestBody::Metadata(r) => {
                ResponseBody::Metadata(metadata::handle(&self, &session, &conn, r, version))
            }
            RequestBody::Produce(r) => {
                let verdicts = produce::verify_remote(&self, &session, &r).await;
                return produce::handle(&self, &session, &conn, r, version, &verdicts);
            }
            RequestBody::Fetch(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::Fetch(
                        fetch::handle(&broker, &session, r, version).await,
                    ))
                }));
            }
            RequestBody::ListOffsets(r) => {
                ResponseBody::ListOffsets(list_offsets::handle(&self, &session, r, version))
            }
            RequestBody::CreateTopics(r) => {
                ResponseBody::CreateTopics(create_topics::handle(&self, &session, r, version))
            }
            RequestBody::DeleteTopics(r) => {
                ResponseBody::DeleteTopics(delete_topics::handle(&self, &session, r, version))
            }
            RequestBody::FindCoordinator(r) => ResponseBody::FindCoordinator(
                find_coordinator::handle(&self, &session, &conn, r, version),
            ),
            RequestBody::InitProducerId(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::InitProducerId(
                        init_producer_id::handle(broker, session, r, version, conn.id).await,
                    ))
                }));
            }
            RequestBody::AddPartitionsToTxn(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::AddPartitionsToTxn(
                        add_partitions_to_txn::handle(broker, session, r, version, conn.id).await,
                    ))
                }));
            }
            RequestBody::AddOffsetsToTxn(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::AddOffsetsToTxn(
                        add_offsets_to_txn::handle(broker, session, r, version, conn.id).await,
                    ))
                }));
            }
            RequestBody::EndTxn(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::EndTxn(
                        end_txn::handle(broker, session, r, version, conn.id).await,
                    ))
                }));
            }
            RequestBody::TxnOffsetCommit(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::TxnOffsetCommit(
                        txn_offset_commit::handle(broker, session, r, version, conn.id).await,
                    ))
                }));
            }
            RequestBody::WriteTxnMarkers(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::WriteTxnMarkers(
                        write_txn_markers::handle(&broker, &session, r).await,
                    ))
                }));
            }
            RequestBody::DescribeProducers(r) => {
                ResponseBody::DescribeProducers(describe_producers::handle(&self, &session, r))
            }
            RequestBody::DescribeTransactions(r) => ResponseBody::DescribeTransactions(
                describe_transactions::handle(&self, &session, r),
            ),
            RequestBody::ListTransactions(r) => ResponseBody::ListTransactions(
                list_transactions::handle(&self, &session, r, version),
            ),
            RequestBody::DescribeAcls(r) => {
                ResponseBody::DescribeAcls(describe_acls::handle(&self, &session, r))
            }
            RequestBody::CreateAcls(r) => {
                ResponseBody::CreateAcls(create_acls::handle(&self, &session, r))
            }
            RequestBody::DeleteAcls(r) => {
                ResponseBody::DeleteAcls(delete_acls::handle(&self, &session, r))
            }
            RequestBody::DeleteRecords(r) => {
                ResponseBody::DeleteRecords(delete_records::handle(&self, &session, r, version))
            }
            RequestBody::OffsetForLeaderEpoch(r) => ResponseBody::OffsetForLeaderEpoch(
                offset_for_leader_epoch::handle(&self, &session, r, version),
            ),
            RequestBody::DescribeConfigs(r) => {
                ResponseBody::DescribeConfigs(describe_configs::handle(&self, &session, r, version))
            }
            RequestBody::AlterConfigs(r) => {
                ResponseBody::AlterConfigs(alter_configs::handle(&self, &session, r, version))
            }
            RequestBody::DescribeLogDirs(r) => ResponseBody::DescribeLogDirs(
                describe_log_dirs::handle(&self, &session, r, version),
            ),
            RequestBody::CreatePartitions(r) => ResponseBody::CreatePartitions(
                create_partitions::handle(&self, &session, r, version),
            ),
            RequestBody::IncrementalAlterConfigs(r) => ResponseBody::IncrementalAlterConfigs(
                incremental_alter_configs::handle(&self, &session, r, version),
            ),
            RequestBody::DescribeCluster(r) => ResponseBody::DescribeCluster(
                describe_cluster::handle(&self, &session, &conn, r, version),
            ),
            RequestBody::ElectLeaders(r) => {
                ResponseBody::ElectLeaders(elect_leaders::handle(&self, &session, r, version))
            }
            RequestBody::AlterPartitionReassignments(r) => {
                ResponseBody::AlterPartitionReassignments(alter_partition_reassignments::handle(
                    &self, &session, r, version,
                ))
            }
            RequestBody::ListPartitionReassignments(r) => ResponseBody::ListPartitionReassignments(
                list_partition_reassignments::handle(&self, &session, r, version),
            ),
            RequestBody::JoinGroup(r) => {
                let (client_id, host) = client_of(&header, &conn);
                let answer = join_group::handle(&self, &session, r, version, client_id, host);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::JoinGroup(answer.await))
                }));
            }
            RequestBody::SyncGroup(r) => {
                let answer = sync_group::handle(&self, &session, r);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::SyncGroup(answer.await))
                }));
            }
            RequestBody::Heartbeat(r) => {
                ResponseBody::Heartbeat(heartbeat::handle(&self, &session, r))
            }
            RequestBody::LeaveGroup(r) => {
                ResponseBody::LeaveGroup(leave_group::handle(&self, &session, r, version))
            }
            RequestBody::OffsetCommit(r) => {
                let answer = offset_commit::handle(&self, &session, r);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::OffsetCommit(answer.await))
                }));
            }
            RequestBody::OffsetFetch(r) => {
                ResponseBody::OffsetFetch(offset_fetch::handle(&self, &session, r, version))
            }
            RequestBody::OffsetDelete(r) => {
                let answer = offset_delete::handle(&self, &session, r);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::OffsetDelete(answer.await))
                }));
            }
            RequestBody::DescribeGroups(r) => {
                ResponseBody::DescribeGroups(describe_groups::handle(&self, &session, r, version))
            }
            RequestBody::ListGroups(r) => {
                ResponseBody::ListGroups(list_groups::handle(&self, &session, r))
            }
            RequestBody::DeleteGroups(r) => {
                let answer = delete_groups::handle(&self, &session, r);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::DeleteGroups(answer.await))
                }));
            }
            RequestBody::ConsumerGroupHeartbeat(r) => {
                let (client_id, host) = client_of(&header, &conn);
                ResponseBody::ConsumerGroupHeartbeat(consumer_group_heartbeat::handle(
                    &self, &session, r, version, client_id, host,
                ))
            }
            RequestBody::ConsumerGroupDescribe(r) => ResponseBody::ConsumerGroupDescribe(
                consumer_group_describe::handle(&self, &session, r),
            ),
            RequestBody::ShareGroupHeartbeat(r) => {
                let (client_id, host) = client_of(&header, &conn);
                ResponseBody::ShareGroupHeartbeat(share_group_heartbeat::handle(
                    &self, &session, r, client_id, host,
                ))
            }
            RequestBody::ShareGroupDescribe(r) => {
                ResponseBody::ShareGroupDescribe(share_group_describe::handle(&self, &session, r))
            }
            RequestBody::ShareFetch(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::ShareFetch(
                        share_fetch::handle(&broker, &session, r).await,
                    ))
                }));
            }
            RequestBody::ShareAcknowledge(r) => {
                let broker = Arc::clone(&self);
                return Outcome::Later(Box::pin(async move {
                    Outcome::Respond(ResponseBody::ShareAcknowledge(
                        share_acknowledge::handle(&broker, &session, r).await,
                    ))
                }));
            }
            other => {
                return Outcome::Close {
                    reason: format!("{:?} is not implemented", other.api_key()),
                };
            }
        };
        Outcome::Respond(response)
    }

    fn unsupported_version(&self, api_key: ApiKey, header: &RequestHeader) -> Outcome {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: a v0 response carrying the error and the whole table.
            return Outcome::RespondAt {
                body: ResponseBody::ApiVersions(api_versions::handle(
                    basalt_protocol::ErrorCode::UnsupportedVersion.into(),
                )),
                version: 0,
            };
        }
        Outcome::Close {
            reason: format!(
                "unsupported version {} of {api_key:?}",
                header.request_api_version
            ),
        }
    }
}
