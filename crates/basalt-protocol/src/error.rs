//! Kafka's error codes (`org.apache.kafka.common.protocol.Errors`), as an enum whose
//! discriminants are the wire values.
//!
//! Invariant: every variant's number and name match Kafka's `Errors` table (codes -1 to 128);
//! codes outside that table are represented by plain `i16` values, never by a variant.

use std::fmt;

/// A Kafka error code. `ErrorCode::None` (0) means success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum ErrorCode {
    /// `UNKNOWN_SERVER_ERROR` (-1): The server experienced an unexpected error when processing the request.
    UnknownServerError = -1,
    /// `NONE` (0): No error.
    None = 0,
    /// `OFFSET_OUT_OF_RANGE` (1): The requested offset is not within the range of offsets maintained by the server.
    OffsetOutOfRange = 1,
    /// `CORRUPT_MESSAGE` (2): This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.
    CorruptMessage = 2,
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3): This server does not host this topic-partition.
    UnknownTopicOrPartition = 3,
    /// `INVALID_FETCH_SIZE` (4): The requested fetch size is invalid.
    InvalidFetchSize = 4,
    /// `LEADER_NOT_AVAILABLE` (5): There is no leader for this topic-partition as we are in the middle of a leadership election.
    LeaderNotAvailable = 5,
    /// `NOT_LEADER_OR_FOLLOWER` (6): For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition.
    NotLeaderOrFollower = 6,
    /// `REQUEST_TIMED_OUT` (7): The request timed out.
    RequestTimedOut = 7,
    /// `BROKER_NOT_AVAILABLE` (8): The broker is not available.
    BrokerNotAvailable = 8,
    /// `REPLICA_NOT_AVAILABLE` (9): The replica is not available for the requested topic-partition. Produce/Fetch requests and other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition.
    ReplicaNotAvailable = 9,
    /// `MESSAGE_TOO_LARGE` (10): The request included a message larger than the max message size the server will accept.
    MessageTooLarge = 10,
    /// `STALE_CONTROLLER_EPOCH` (11): The controller moved to another broker.
    StaleControllerEpoch = 11,
    /// `OFFSET_METADATA_TOO_LARGE` (12): The metadata field of the offset request was too large.
    OffsetMetadataTooLarge = 12,
    /// `NETWORK_EXCEPTION` (13): The server disconnected before a response was received.
    NetworkException = 13,
    /// `COORDINATOR_LOAD_IN_PROGRESS` (14): The coordinator is loading and hence can't process requests.
    CoordinatorLoadInProgress = 14,
    /// `COORDINATOR_NOT_AVAILABLE` (15): The coordinator is not available.
    CoordinatorNotAvailable = 15,
    /// `NOT_COORDINATOR` (16): This is not the correct coordinator.
    NotCoordinator = 16,
    /// `INVALID_TOPIC_EXCEPTION` (17): The request attempted to perform an operation on an invalid topic.
    InvalidTopicException = 17,
    /// `RECORD_LIST_TOO_LARGE` (18): The request included message batch larger than the configured segment size on the server.
    RecordListTooLarge = 18,
    /// `NOT_ENOUGH_REPLICAS` (19): Messages are rejected since there are fewer in-sync replicas than required.
    NotEnoughReplicas = 19,
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (20): Messages are written to the log, but to fewer in-sync replicas than required.
    NotEnoughReplicasAfterAppend = 20,
    /// `INVALID_REQUIRED_ACKS` (21): Produce request specified an invalid value for required acks.
    InvalidRequiredAcks = 21,
    /// `ILLEGAL_GENERATION` (22): Specified group generation id is not valid.
    IllegalGeneration = 22,
    /// `INCONSISTENT_GROUP_PROTOCOL` (23): The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list.
    InconsistentGroupProtocol = 23,
    /// `INVALID_GROUP_ID` (24): The configured groupId is invalid.
    InvalidGroupId = 24,
    /// `UNKNOWN_MEMBER_ID` (25): The coordinator is not aware of this member.
    UnknownMemberId = 25,
    /// `INVALID_SESSION_TIMEOUT` (26): The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).
    InvalidSessionTimeout = 26,
    /// `REBALANCE_IN_PROGRESS` (27): The group is rebalancing, so a rejoin is needed.
    RebalanceInProgress = 27,
    /// `INVALID_COMMIT_OFFSET_SIZE` (28): The committing offset data size is not valid.
    InvalidCommitOffsetSize = 28,
    /// `TOPIC_AUTHORIZATION_FAILED` (29): Topic authorization failed.
    TopicAuthorizationFailed = 29,
    /// `GROUP_AUTHORIZATION_FAILED` (30): Group authorization failed.
    GroupAuthorizationFailed = 30,
    /// `CLUSTER_AUTHORIZATION_FAILED` (31): Cluster authorization failed.
    ClusterAuthorizationFailed = 31,
    /// `INVALID_TIMESTAMP` (32): The timestamp of the message is out of acceptable range.
    InvalidTimestamp = 32,
    /// `UNSUPPORTED_SASL_MECHANISM` (33): The broker does not support the requested SASL mechanism.
    UnsupportedSaslMechanism = 33,
    /// `ILLEGAL_SASL_STATE` (34): Request is not valid given the current SASL state.
    IllegalSaslState = 34,
    /// `UNSUPPORTED_VERSION` (35): The version of API is not supported.
    UnsupportedVersion = 35,
    /// `TOPIC_ALREADY_EXISTS` (36): Topic with this name already exists.
    TopicAlreadyExists = 36,
    /// `INVALID_PARTITIONS` (37): Number of partitions is below 1.
    InvalidPartitions = 37,
    /// `INVALID_REPLICATION_FACTOR` (38): Replication factor is below 1 or larger than the number of available brokers.
    InvalidReplicationFactor = 38,
    /// `INVALID_REPLICA_ASSIGNMENT` (39): Replica assignment is invalid.
    InvalidReplicaAssignment = 39,
    /// `INVALID_CONFIG` (40): Configuration is invalid.
    InvalidConfig = 40,
    /// `NOT_CONTROLLER` (41): This is not the correct controller for this cluster.
    NotController = 41,
    /// `INVALID_REQUEST` (42): This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.
    InvalidRequest = 42,
    /// `UNSUPPORTED_FOR_MESSAGE_FORMAT` (43): The message format version on the broker does not support the request.
    UnsupportedForMessageFormat = 43,
    /// `POLICY_VIOLATION` (44): Request parameters do not satisfy the configured policy.
    PolicyViolation = 44,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` (45): The broker received an out of order sequence number.
    OutOfOrderSequenceNumber = 45,
    /// `DUPLICATE_SEQUENCE_NUMBER` (46): The broker received a duplicate sequence number.
    DuplicateSequenceNumber = 46,
    /// `INVALID_PRODUCER_EPOCH` (47): Producer attempted to produce with an old epoch.
    InvalidProducerEpoch = 47,
    /// `INVALID_TXN_STATE` (48): The producer attempted a transactional operation in an invalid state.
    InvalidTxnState = 48,
    /// `INVALID_PRODUCER_ID_MAPPING` (49): The producer attempted to use a producer id which is not currently assigned to its transactional id.
    InvalidProducerIdMapping = 49,
    /// `INVALID_TRANSACTION_TIMEOUT` (50): The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms).
    InvalidTransactionTimeout = 50,
    /// `CONCURRENT_TRANSACTIONS` (51): The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing.
    ConcurrentTransactions = 51,
    /// `TRANSACTION_COORDINATOR_FENCED` (52): Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer.
    TransactionCoordinatorFenced = 52,
    /// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (53): Transactional Id authorization failed.
    TransactionalIdAuthorizationFailed = 53,
    /// `SECURITY_DISABLED` (54): Security features are disabled.
    SecurityDisabled = 54,
    /// `OPERATION_NOT_ATTEMPTED` (55): The broker did not attempt to execute this operation. This may happen for batched RPCs where some operations in the batch failed, causing the broker to respond without trying the rest.
    OperationNotAttempted = 55,
    /// `KAFKA_STORAGE_ERROR` (56): Disk error when trying to access log file on the disk.
    KafkaStorageError = 56,
    /// `LOG_DIR_NOT_FOUND` (57): The user-specified log directory is not found in the broker config.
    LogDirNotFound = 57,
    /// `SASL_AUTHENTICATION_FAILED` (58): SASL Authentication failed.
    SaslAuthenticationFailed = 58,
    /// `UNKNOWN_PRODUCER_ID` (59): This exception is raised by the broker if it could not locate the producer metadata associated with the producerId in question. This could happen if, for instance, the producer's records were deleted because their retention time had elapsed. Once the last records of the producerId are removed, the producer's metadata is removed from the broker, and future appends by the producer will return this exception.
    UnknownProducerId = 59,
    /// `REASSIGNMENT_IN_PROGRESS` (60): A partition reassignment is in progress.
    ReassignmentInProgress = 60,
    /// `DELEGATION_TOKEN_AUTH_DISABLED` (61): Delegation Token feature is not enabled.
    DelegationTokenAuthDisabled = 61,
    /// `DELEGATION_TOKEN_NOT_FOUND` (62): Delegation Token is not found on server.
    DelegationTokenNotFound = 62,
    /// `DELEGATION_TOKEN_OWNER_MISMATCH` (63): Specified Principal is not valid Owner/Renewer.
    DelegationTokenOwnerMismatch = 63,
    /// `DELEGATION_TOKEN_REQUEST_NOT_ALLOWED` (64): Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated channels.
    DelegationTokenRequestNotAllowed = 64,
    /// `DELEGATION_TOKEN_AUTHORIZATION_FAILED` (65): Delegation Token authorization failed.
    DelegationTokenAuthorizationFailed = 65,
    /// `DELEGATION_TOKEN_EXPIRED` (66): Delegation Token is expired.
    DelegationTokenExpired = 66,
    /// `INVALID_PRINCIPAL_TYPE` (67): Supplied principalType is not supported.
    InvalidPrincipalType = 67,
    /// `NON_EMPTY_GROUP` (68): The group is not empty.
    NonEmptyGroup = 68,
    /// `GROUP_ID_NOT_FOUND` (69): The group id does not exist.
    GroupIdNotFound = 69,
    /// `FETCH_SESSION_ID_NOT_FOUND` (70): The fetch session ID was not found.
    FetchSessionIdNotFound = 70,
    /// `INVALID_FETCH_SESSION_EPOCH` (71): The fetch session epoch is invalid.
    InvalidFetchSessionEpoch = 71,
    /// `LISTENER_NOT_FOUND` (72): There is no listener on the leader broker that matches the listener on which metadata request was processed.
    ListenerNotFound = 72,
    /// `TOPIC_DELETION_DISABLED` (73): Topic deletion is disabled.
    TopicDeletionDisabled = 73,
    /// `FENCED_LEADER_EPOCH` (74): The leader epoch in the request is older than the epoch on the broker.
    FencedLeaderEpoch = 74,
    /// `UNKNOWN_LEADER_EPOCH` (75): The leader epoch in the request is newer than the epoch on the broker.
    UnknownLeaderEpoch = 75,
    /// `UNSUPPORTED_COMPRESSION_TYPE` (76): The requesting client does not support the compression type of given partition.
    UnsupportedCompressionType = 76,
    /// `STALE_BROKER_EPOCH` (77): Broker epoch has changed.
    StaleBrokerEpoch = 77,
    /// `OFFSET_NOT_AVAILABLE` (78): The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing.
    OffsetNotAvailable = 78,
    /// `MEMBER_ID_REQUIRED` (79): The group member needs to have a valid member id before actually entering a consumer group.
    MemberIdRequired = 79,
    /// `PREFERRED_LEADER_NOT_AVAILABLE` (80): The preferred leader was not available.
    PreferredLeaderNotAvailable = 80,
    /// `GROUP_MAX_SIZE_REACHED` (81): The consumer group has reached its max size.
    GroupMaxSizeReached = 81,
    /// `FENCED_INSTANCE_ID` (82): The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id.
    FencedInstanceId = 82,
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE` (83): Eligible topic partition leaders are not available.
    EligibleLeadersNotAvailable = 83,
    /// `ELECTION_NOT_NEEDED` (84): Leader election not needed for topic partition.
    ElectionNotNeeded = 84,
    /// `NO_REASSIGNMENT_IN_PROGRESS` (85): No partition reassignment is in progress.
    NoReassignmentInProgress = 85,
    /// `GROUP_SUBSCRIBED_TO_TOPIC` (86): Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.
    GroupSubscribedToTopic = 86,
    /// `INVALID_RECORD` (87): This record has failed the validation on broker and hence will be rejected.
    InvalidRecord = 87,
    /// `UNSTABLE_OFFSET_COMMIT` (88): There are unstable offsets that need to be cleared.
    UnstableOffsetCommit = 88,
    /// `THROTTLING_QUOTA_EXCEEDED` (89): The throttling quota has been exceeded.
    ThrottlingQuotaExceeded = 89,
    /// `PRODUCER_FENCED` (90): There is a newer producer with the same transactionalId which fences the current one.
    ProducerFenced = 90,
    /// `RESOURCE_NOT_FOUND` (91): A request illegally referred to a resource that does not exist.
    ResourceNotFound = 91,
    /// `DUPLICATE_RESOURCE` (92): A request illegally referred to the same resource twice.
    DuplicateResource = 92,
    /// `UNACCEPTABLE_CREDENTIAL` (93): Requested credential would not meet criteria for acceptability.
    UnacceptableCredential = 93,
    /// `INCONSISTENT_VOTER_SET` (94): Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters.
    InconsistentVoterSet = 94,
    /// `INVALID_UPDATE_VERSION` (95): The given update version was invalid.
    InvalidUpdateVersion = 95,
    /// `FEATURE_UPDATE_FAILED` (96): Unable to update finalized features due to an unexpected server error.
    FeatureUpdateFailed = 96,
    /// `PRINCIPAL_DESERIALIZATION_FAILURE` (97): Request principal deserialization failed during forwarding. This indicates an internal error on the broker cluster security setup.
    PrincipalDeserializationFailure = 97,
    /// `SNAPSHOT_NOT_FOUND` (98): Requested snapshot was not found.
    SnapshotNotFound = 98,
    /// `POSITION_OUT_OF_RANGE` (99): Requested position is not greater than or equal to zero, and less than the size of the snapshot.
    PositionOutOfRange = 99,
    /// `UNKNOWN_TOPIC_ID` (100): This server does not host this topic ID.
    UnknownTopicId = 100,
    /// `DUPLICATE_BROKER_REGISTRATION` (101): This broker ID is already in use.
    DuplicateBrokerRegistration = 101,
    /// `BROKER_ID_NOT_REGISTERED` (102): The given broker ID was not registered.
    BrokerIdNotRegistered = 102,
    /// `INCONSISTENT_TOPIC_ID` (103): The log's topic ID did not match the topic ID in the request.
    InconsistentTopicId = 103,
    /// `INCONSISTENT_CLUSTER_ID` (104): The clusterId in the request does not match that found on the server.
    InconsistentClusterId = 104,
    /// `TRANSACTIONAL_ID_NOT_FOUND` (105): The transactionalId could not be found.
    TransactionalIdNotFound = 105,
    /// `FETCH_SESSION_TOPIC_ID_ERROR` (106): The fetch session encountered inconsistent topic ID usage.
    FetchSessionTopicIdError = 106,
    /// `INELIGIBLE_REPLICA` (107): The new ISR contains at least one ineligible replica.
    IneligibleReplica = 107,
    /// `NEW_LEADER_ELECTED` (108): The AlterPartition request successfully updated the partition state but the leader has changed.
    NewLeaderElected = 108,
    /// `OFFSET_MOVED_TO_TIERED_STORAGE` (109): The requested offset is moved to tiered storage.
    OffsetMovedToTieredStorage = 109,
    /// `FENCED_MEMBER_EPOCH` (110): The member epoch is fenced by the group coordinator. The member must abandon all its partitions and rejoin.
    FencedMemberEpoch = 110,
    /// `UNRELEASED_INSTANCE_ID` (111): The instance ID is still used by another member in the consumer group. That member must leave first.
    UnreleasedInstanceId = 111,
    /// `UNSUPPORTED_ASSIGNOR` (112): The assignor or its version range is not supported by the consumer group.
    UnsupportedAssignor = 112,
    /// `STALE_MEMBER_EPOCH` (113): The member epoch is stale. The member must retry after receiving its updated member epoch via the ConsumerGroupHeartbeat API.
    StaleMemberEpoch = 113,
    /// `MISMATCHED_ENDPOINT_TYPE` (114): The request was sent to an endpoint of the wrong type.
    MismatchedEndpointType = 114,
    /// `UNSUPPORTED_ENDPOINT_TYPE` (115): This endpoint type is not supported yet.
    UnsupportedEndpointType = 115,
    /// `UNKNOWN_CONTROLLER_ID` (116): This controller ID is not known.
    UnknownControllerId = 116,
    /// `UNKNOWN_SUBSCRIPTION_ID` (117): Client sent a push telemetry request with an invalid or outdated subscription ID.
    UnknownSubscriptionId = 117,
    /// `TELEMETRY_TOO_LARGE` (118): Client sent a push telemetry request larger than the maximum size the broker will accept.
    TelemetryTooLarge = 118,
    /// `INVALID_REGISTRATION` (119): The controller has considered the broker registration to be invalid.
    InvalidRegistration = 119,
    /// `TRANSACTION_ABORTABLE` (120): The server encountered an error with the transaction. The client can abort the transaction to continue using this transactional ID.
    TransactionAbortable = 120,
    /// `INVALID_RECORD_STATE` (121): The record state is invalid. The acknowledgement of delivery could not be completed.
    InvalidRecordState = 121,
    /// `SHARE_SESSION_NOT_FOUND` (122): The share session was not found.
    ShareSessionNotFound = 122,
    /// `INVALID_SHARE_SESSION_EPOCH` (123): The share session epoch is invalid.
    InvalidShareSessionEpoch = 123,
    /// `FENCED_STATE_EPOCH` (124): The share coordinator rejected the request because the share-group state epoch did not match.
    FencedStateEpoch = 124,
    /// `INVALID_VOTER_KEY` (125): The voter key doesn't match the receiving replica's key.
    InvalidVoterKey = 125,
    /// `DUPLICATE_VOTER` (126): The voter is already part of the set of voters.
    DuplicateVoter = 126,
    /// `VOTER_NOT_FOUND` (127): The voter is not part of the set of voters.
    VoterNotFound = 127,
    /// `INVALID_REGULAR_EXPRESSION` (128): The regular expression is not valid.
    InvalidRegularExpression = 128,
}

impl ErrorCode {
    /// Every known error code, in numeric order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::UnknownServerError,
        ErrorCode::None,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::CorruptMessage,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::InvalidFetchSize,
        ErrorCode::LeaderNotAvailable,
        ErrorCode::NotLeaderOrFollower,
        ErrorCode::RequestTimedOut,
        ErrorCode::BrokerNotAvailable,
        ErrorCode::ReplicaNotAvailable,
        ErrorCode::MessageTooLarge,
        ErrorCode::StaleControllerEpoch,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::NetworkException,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator,
        ErrorCode::InvalidTopicException,
        ErrorCode::RecordListTooLarge,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::InvalidRequiredAcks,
        ErrorCode::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::InvalidGroupId,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::InvalidCommitOffsetSize,
        ErrorCode::TopicAuthorizationFailed,
        ErrorCode::GroupAuthorizationFailed,
        ErrorCode::ClusterAuthorizationFailed,
        ErrorCode::InvalidTimestamp,
        ErrorCode::UnsupportedSaslMechanism,
        ErrorCode::IllegalSaslState,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor,
        ErrorCode::InvalidReplicaAssignment,
        ErrorCode::InvalidConfig,
        ErrorCode::NotController,
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedForMessageFormat,
        ErrorCode::PolicyViolation,
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::DuplicateSequenceNumber,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::InvalidTxnState,
        ErrorCode::InvalidProducerIdMapping,
        ErrorCode::InvalidTransactionTimeout,
        ErrorCode::ConcurrentTransactions,
        ErrorCode::TransactionCoordinatorFenced,
        ErrorCode::TransactionalIdAuthorizationFailed,
        ErrorCode::SecurityDisabled,
        ErrorCode::OperationNotAttempted,
        ErrorCode::KafkaStorageError,
        ErrorCode::LogDirNotFound,
        ErrorCode::SaslAuthenticationFailed,
        ErrorCode::UnknownProducerId,
        ErrorCode::ReassignmentInProgress,
        ErrorCode::DelegationTokenAuthDisabled,
        ErrorCode::DelegationTokenNotFound,
        ErrorCode::DelegationTokenOwnerMismatch,
        ErrorCode::DelegationTokenRequestNotAllowed,
        ErrorCode::DelegationTokenAuthorizationFailed,
        ErrorCode::DelegationTokenExpired,
        ErrorCode::InvalidPrincipalType,
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::FetchSessionIdNotFound,
        ErrorCode::InvalidFetchSessionEpoch,
        ErrorCode::ListenerNotFound,
        ErrorCode::TopicDeletionDisabled,
        ErrorCode::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch,
        ErrorCode::UnsupportedCompressionType,
        ErrorCode::StaleBrokerEpoch,
        ErrorCode::OffsetNotAvailable,
        ErrorCode::MemberIdRequired,
        ErrorCode::PreferredLeaderNotAvailable,
        ErrorCode::GroupMaxSizeReached,
        ErrorCode::FencedInstanceId,
        ErrorCode::EligibleLeadersNotAvailable,
        ErrorCode::ElectionNotNeeded,
        ErrorCode::NoReassignmentInProgress,
        ErrorCode::GroupSubscribedToTopic,
        ErrorCode::InvalidRecord,
        ErrorCode::UnstableOffsetCommit,
        ErrorCode::ThrottlingQuotaExceeded,
        ErrorCode::ProducerFenced,
        ErrorCode::ResourceNotFound,
        ErrorCode::DuplicateResource,
        ErrorCode::UnacceptableCredential,
        ErrorCode::InconsistentVoterSet,
        ErrorCode::InvalidUpdateVersion,
        ErrorCode::FeatureUpdateFailed,
        ErrorCode::PrincipalDeserializationFailure,
        ErrorCode::SnapshotNotFound,
        ErrorCode::PositionOutOfRange,
        ErrorCode::UnknownTopicId,
        ErrorCode::DuplicateBrokerRegistration,
        ErrorCode::BrokerIdNotRegistered,
        ErrorCode::InconsistentTopicId,
        ErrorCode::InconsistentClusterId,
        ErrorCode::TransactionalIdNotFound,
        ErrorCode::FetchSessionTopicIdError,
        ErrorCode::IneligibleReplica,
        ErrorCode::NewLeaderElected,
        ErrorCode::OffsetMovedToTieredStorage,
        ErrorCode::FencedMemberEpoch,
        ErrorCode::UnreleasedInstanceId,
        ErrorCode::UnsupportedAssignor,
        ErrorCode::StaleMemberEpoch,
        ErrorCode::MismatchedEndpointType,
        ErrorCode::UnsupportedEndpointType,
        ErrorCode::UnknownControllerId,
        ErrorCode::UnknownSubscriptionId,
        ErrorCode::TelemetryTooLarge,
        ErrorCode::InvalidRegistration,
        ErrorCode::TransactionAbortable,
        ErrorCode::InvalidRecordState,
        ErrorCode::ShareSessionNotFound,
        ErrorCode::InvalidShareSessionEpoch,
        ErrorCode::FencedStateEpoch,
        ErrorCode::InvalidVoterKey,
        ErrorCode::DuplicateVoter,
        ErrorCode::VoterNotFound,
        ErrorCode::InvalidRegularExpression,
    ];

    /// The wire value.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The error with wire value `code`, if Kafka defines it.
    pub const fn from_code(code: i16) -> Option<ErrorCode> {
        Some(match code {
            -1 => ErrorCode::UnknownServerError,
            0 => ErrorCode::None,
            1 => ErrorCode::OffsetOutOfRange,
            2 => ErrorCode::CorruptMessage,
            3 => ErrorCode::UnknownTopicOrPartition,
            4 => ErrorCode::InvalidFetchSize,
            5 => ErrorCode::LeaderNotAvailable,
            6 => ErrorCode::NotLeaderOrFollower,
            7 => ErrorCode::RequestTimedOut,
            8 => ErrorCode::BrokerNotAvailable,
            9 => ErrorCode::ReplicaNotAvailable,
            10 => ErrorCode::MessageTooLarge,
            11 => ErrorCode::StaleControllerEpoch,
            12 => ErrorCode::OffsetMetadataTooLarge,
            13 => ErrorCode::NetworkException,
            14 => ErrorCode::CoordinatorLoadInProgress,
            15 => ErrorCode::CoordinatorNotAvailable,
            16 => ErrorCode::NotCoordinator,
            17 => ErrorCode::InvalidTopicException,
            18 => ErrorCode::RecordListTooLarge,
            19 => ErrorCode::NotEnoughReplicas,
            20 => ErrorCode::NotEnoughReplicasAfterAppend,
            21 => ErrorCode::InvalidRequiredAcks,
            22 => ErrorCode::IllegalGeneration,
            23 => ErrorCode::InconsistentGroupProtocol,
            24 => ErrorCode::InvalidGroupId,
            25 => ErrorCode::UnknownMemberId,
            26 => ErrorCode::InvalidSessionTimeout,
            27 => ErrorCode::RebalanceInProgress,
            28 => ErrorCode::InvalidCommitOffsetSize,
            29 => ErrorCode::TopicAuthorizationFailed,
            30 => ErrorCode::GroupAuthorizationFailed,
            31 => ErrorCode::ClusterAuthorizationFailed,
            32 => ErrorCode::InvalidTimestamp,
            33 => ErrorCode::UnsupportedSaslMechanism,
            34 => ErrorCode::IllegalSaslState,
            35 => ErrorCode::UnsupportedVersion,
            36 => ErrorCode::TopicAlreadyExists,
            37 => ErrorCode::InvalidPartitions,
            38 => ErrorCode::InvalidReplicationFactor,
            39 => ErrorCode::InvalidReplicaAssignment,
            40 => ErrorCode::InvalidConfig,
            41 => ErrorCode::NotController,
            42 => ErrorCode::InvalidRequest,
            43 => ErrorCode::UnsupportedForMessageFormat,
            44 => ErrorCode::PolicyViolation,
            45 => ErrorCode::OutOfOrderSequenceNumber,
            46 => ErrorCode::DuplicateSequenceNumber,
            47 => ErrorCode::InvalidProducerEpoch,
            48 => ErrorCode::InvalidTxnState,
            49 => ErrorCode::InvalidProducerIdMapping,
            50 => ErrorCode::InvalidTransactionTimeout,
            51 => ErrorCode::ConcurrentTransactions,
            52 => ErrorCode::TransactionCoordinatorFenced,
            53 => ErrorCode::TransactionalIdAuthorizationFailed,
            54 => ErrorCode::SecurityDisabled,
            55 => ErrorCode::OperationNotAttempted,
            56 => ErrorCode::KafkaStorageError,
            57 => ErrorCode::LogDirNotFound,
            58 => ErrorCode::SaslAuthenticationFailed,
            59 => ErrorCode::UnknownProducerId,
            60 => ErrorCode::ReassignmentInProgress,
            61 => ErrorCode::DelegationTokenAuthDisabled,
            62 => ErrorCode::DelegationTokenNotFound,
            63 => ErrorCode::DelegationTokenOwnerMismatch,
            64 => ErrorCode::DelegationTokenRequestNotAllowed,
            65 => ErrorCode::DelegationTokenAuthorizationFailed,
            66 => ErrorCode::DelegationTokenExpired,
            67 => ErrorCode::InvalidPrincipalType,
            68 => ErrorCode::NonEmptyGroup,
            69 => ErrorCode::GroupIdNotFound,
            70 => ErrorCode::FetchSessionIdNotFound,
            71 => ErrorCode::InvalidFetchSessionEpoch,
            72 => ErrorCode::ListenerNotFound,
            73 => ErrorCode::TopicDeletionDisabled,
            74 => ErrorCode::FencedLeaderEpoch,
            75 => ErrorCode::UnknownLeaderEpoch,
            76 => ErrorCode::UnsupportedCompressionType,
            77 => ErrorCode::StaleBrokerEpoch,
            78 => ErrorCode::OffsetNotAvailable,
            79 => ErrorCode::MemberIdRequired,
            80 => ErrorCode::PreferredLeaderNotAvailable,
            81 => ErrorCode::GroupMaxSizeReached,
            82 => ErrorCode::FencedInstanceId,
            83 => ErrorCode::EligibleLeadersNotAvailable,
            84 => ErrorCode::ElectionNotNeeded,
            85 => ErrorCode::NoReassignmentInProgress,
            86 => ErrorCode::GroupSubscribedToTopic,
            87 => ErrorCode::InvalidRecord,
            88 => ErrorCode::UnstableOffsetCommit,
            89 => ErrorCode::ThrottlingQuotaExceeded,
            90 => ErrorCode::ProducerFenced,
            91 => ErrorCode::ResourceNotFound,
            92 => ErrorCode::DuplicateResource,
            93 => ErrorCode::UnacceptableCredential,
            94 => ErrorCode::InconsistentVoterSet,
            95 => ErrorCode::InvalidUpdateVersion,
            96 => ErrorCode::FeatureUpdateFailed,
            97 => ErrorCode::PrincipalDeserializationFailure,
            98 => ErrorCode::SnapshotNotFound,
            99 => ErrorCode::PositionOutOfRange,
            100 => ErrorCode::UnknownTopicId,
            101 => ErrorCode::DuplicateBrokerRegistration,
            102 => ErrorCode::BrokerIdNotRegistered,
            103 => ErrorCode::InconsistentTopicId,
            104 => ErrorCode::InconsistentClusterId,
            105 => ErrorCode::TransactionalIdNotFound,
            106 => ErrorCode::FetchSessionTopicIdError,
            107 => ErrorCode::IneligibleReplica,
            108 => ErrorCode::NewLeaderElected,
            109 => ErrorCode::OffsetMovedToTieredStorage,
            110 => ErrorCode::FencedMemberEpoch,
            111 => ErrorCode::UnreleasedInstanceId,
            112 => ErrorCode::UnsupportedAssignor,
            113 => ErrorCode::StaleMemberEpoch,
            114 => ErrorCode::MismatchedEndpointType,
            115 => ErrorCode::UnsupportedEndpointType,
            116 => ErrorCode::UnknownControllerId,
            117 => ErrorCode::UnknownSubscriptionId,
            118 => ErrorCode::TelemetryTooLarge,
            119 => ErrorCode::InvalidRegistration,
            120 => ErrorCode::TransactionAbortable,
            121 => ErrorCode::InvalidRecordState,
            122 => ErrorCode::ShareSessionNotFound,
            123 => ErrorCode::InvalidShareSessionEpoch,
            124 => ErrorCode::FencedStateEpoch,
            125 => ErrorCode::InvalidVoterKey,
            126 => ErrorCode::DuplicateVoter,
            127 => ErrorCode::VoterNotFound,
            128 => ErrorCode::InvalidRegularExpression,
            _ => return None,
        })
    }

    /// Kafka's name for the error, e.g. `"UNKNOWN_TOPIC_OR_PARTITION"`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorCode::None => "NONE",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::InvalidFetchSize => "INVALID_FETCH_SIZE",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::BrokerNotAvailable => "BROKER_NOT_AVAILABLE",
            ErrorCode::ReplicaNotAvailable => "REPLICA_NOT_AVAILABLE",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::StaleControllerEpoch => "STALE_CONTROLLER_EPOCH",
            ErrorCode::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            ErrorCode::NetworkException => "NETWORK_EXCEPTION",
            ErrorCode::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::NotCoordinator => "NOT_COORDINATOR",
            ErrorCode::InvalidTopicException => "INVALID_TOPIC_EXCEPTION",
            ErrorCode::RecordListTooLarge => "RECORD_LIST_TOO_LARGE",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::InvalidRequiredAcks => "INVALID_REQUIRED_ACKS",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorCode::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::InvalidCommitOffsetSize => "INVALID_COMMIT_OFFSET_SIZE",
            ErrorCode::TopicAuthorizationFailed => "TOPIC_AUTHORIZATION_FAILED",
            ErrorCode::GroupAuthorizationFailed => "GROUP_AUTHORIZATION_FAILED",
            ErrorCode::ClusterAuthorizationFailed => "CLUSTER_AUTHORIZATION_FAILED",
            ErrorCode::InvalidTimestamp => "INVALID_TIMESTAMP",
            ErrorCode::UnsupportedSaslMechanism => "UNSUPPORTED_SASL_MECHANISM",
            ErrorCode::IllegalSaslState => "ILLEGAL_SASL_STATE",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorCode::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorCode::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnsupportedForMessageFormat => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
            ErrorCode::PolicyViolation => "POLICY_VIOLATION",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::DuplicateSequenceNumber => "DUPLICATE_SEQUENCE_NUMBER",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::InvalidTxnState => "INVALID_TXN_STATE",
            ErrorCode::InvalidProducerIdMapping => "INVALID_PRODUCER_ID_MAPPING",
            ErrorCode::InvalidTransactionTimeout => "INVALID_TRANSACTION_TIMEOUT",
            ErrorCode::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            ErrorCode::TransactionCoordinatorFenced => "TRANSACTION_COORDINATOR_FENCED",
            ErrorCode::TransactionalIdAuthorizationFailed => {
                "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
            }
            ErrorCode::SecurityDisabled => "SECURITY_DISABLED",
            ErrorCode::OperationNotAttempted => "OPERATION_NOT_ATTEMPTED",
            ErrorCode::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            ErrorCode::LogDirNotFound => "LOG_DIR_NOT_FOUND",
            ErrorCode::SaslAuthenticationFailed => "SASL_AUTHENTICATION_FAILED",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ErrorCode::ReassignmentInProgress => "REASSIGNMENT_IN_PROGRESS",
            ErrorCode::DelegationTokenAuthDisabled => "DELEGATION_TOKEN_AUTH_DISABLED",
            ErrorCode::DelegationTokenNotFound => "DELEGATION_TOKEN_NOT_FOUND",
            ErrorCode::DelegationTokenOwnerMismatch => "DELEGATION_TOKEN_OWNER_MISMATCH",
            ErrorCode::DelegationTokenRequestNotAllowed => "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
            ErrorCode::DelegationTokenAuthorizationFailed => {
                "DELEGATION_TOKEN_AUTHORIZATION_FAILED"
            }
            ErrorCode::DelegationTokenExpired => "DELEGATION_TOKEN_EXPIRED",
            ErrorCode::InvalidPrincipalType => "INVALID_PRINCIPAL_TYPE",
            ErrorCode::NonEmptyGroup => "NON_EMPTY_GROUP",
            ErrorCode::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            ErrorCode::FetchSessionIdNotFound => "FETCH_SESSION_ID_NOT_FOUND",
            ErrorCode::InvalidFetchSessionEpoch => "INVALID_FETCH_SESSION_EPOCH",
            ErrorCode::ListenerNotFound => "LISTENER_NOT_FOUND",
            ErrorCode::TopicDeletionDisabled => "TOPIC_DELETION_DISABLED",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::UnsupportedCompressionType => "UNSUPPORTED_COMPRESSION_TYPE",
            ErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            ErrorCode::OffsetNotAvailable => "OFFSET_NOT_AVAILABLE",
            ErrorCode::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorCode::PreferredLeaderNotAvailable => "PREFERRED_LEADER_NOT_AVAILABLE",
            ErrorCode::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::EligibleLeadersNotAvailable => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
            ErrorCode::ElectionNotNeeded => "ELECTION_NOT_NEEDED",
            ErrorCode::NoReassignmentInProgress => "NO_REASSIGNMENT_IN_PROGRESS",
            ErrorCode::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
            ErrorCode::InvalidRecord => "INVALID_RECORD",
            ErrorCode::UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
            ErrorCode::ThrottlingQuotaExceeded => "THROTTLING_QUOTA_EXCEEDED",
            ErrorCode::ProducerFenced => "PRODUCER_FENCED",
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::DuplicateResource => "DUPLICATE_RESOURCE",
            ErrorCode::UnacceptableCredential => "UNACCEPTABLE_CREDENTIAL",
            ErrorCode::InconsistentVoterSet => "INCONSISTENT_VOTER_SET",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::FeatureUpdateFailed => "FEATURE_UPDATE_FAILED",
            ErrorCode::PrincipalDeserializationFailure => "PRINCIPAL_DESERIALIZATION_FAILURE",
            ErrorCode::SnapshotNotFound => "SNAPSHOT_NOT_FOUND",
            ErrorCode::PositionOutOfRange => "POSITION_OUT_OF_RANGE",
            ErrorCode::UnknownTopicId => "UNKNOWN_TOPIC_ID",
            ErrorCode::DuplicateBrokerRegistration => "DUPLICATE_BROKER_REGISTRATION",
            ErrorCode::BrokerIdNotRegistered => "BROKER_ID_NOT_REGISTERED",
            ErrorCode::InconsistentTopicId => "INCONSISTENT_TOPIC_ID",
            ErrorCode::InconsistentClusterId => "INCONSISTENT_CLUSTER_ID",
            ErrorCode::TransactionalIdNotFound => "TRANSACTIONAL_ID_NOT_FOUND",
            ErrorCode::FetchSessionTopicIdError => "FETCH_SESSION_TOPIC_ID_ERROR",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            ErrorCode::NewLeaderElected => "NEW_LEADER_ELECTED",
            ErrorCode::OffsetMovedToTieredStorage => "OFFSET_MOVED_TO_TIERED_STORAGE",
            ErrorCode::FencedMemberEpoch => "FENCED_MEMBER_EPOCH",
            ErrorCode::UnreleasedInstanceId => "UNRELEASED_INSTANCE_ID",
            ErrorCode::UnsupportedAssignor => "UNSUPPORTED_ASSIGNOR",
            ErrorCode::StaleMemberEpoch => "STALE_MEMBER_EPOCH",
            ErrorCode::MismatchedEndpointType => "MISMATCHED_ENDPOINT_TYPE",
            ErrorCode::UnsupportedEndpointType => "UNSUPPORTED_ENDPOINT_TYPE",
            ErrorCode::UnknownControllerId => "UNKNOWN_CONTROLLER_ID",
            ErrorCode::UnknownSubscriptionId => "UNKNOWN_SUBSCRIPTION_ID",
            ErrorCode::TelemetryTooLarge => "TELEMETRY_TOO_LARGE",
            ErrorCode::InvalidRegistration => "INVALID_REGISTRATION",
            ErrorCode::TransactionAbortable => "TRANSACTION_ABORTABLE",
            ErrorCode::InvalidRecordState => "INVALID_RECORD_STATE",
            ErrorCode::ShareSessionNotFound => "SHARE_SESSION_NOT_FOUND",
            ErrorCode::InvalidShareSessionEpoch => "INVALID_SHARE_SESSION_EPOCH",
            ErrorCode::FencedStateEpoch => "FENCED_STATE_EPOCH",
            ErrorCode::InvalidVoterKey => "INVALID_VOTER_KEY",
            ErrorCode::DuplicateVoter => "DUPLICATE_VOTER",
            ErrorCode::VoterNotFound => "VOTER_NOT_FOUND",
            ErrorCode::InvalidRegularExpression => "INVALID_REGULAR_EXPRESSION",
        }
    }

    /// Kafka's default message for the error (empty for `None`).
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownServerError => {
                "The server experienced an unexpected error when processing the request."
            }
            ErrorCode::None => "",
            ErrorCode::OffsetOutOfRange => {
                "The requested offset is not within the range of offsets maintained by the server."
            }
            ErrorCode::CorruptMessage => {
                "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt."
            }
            ErrorCode::UnknownTopicOrPartition => "This server does not host this topic-partition.",
            ErrorCode::InvalidFetchSize => "The requested fetch size is invalid.",
            ErrorCode::LeaderNotAvailable => {
                "There is no leader for this topic-partition as we are in the middle of a leadership election."
            }
            ErrorCode::NotLeaderOrFollower => {
                "For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition."
            }
            ErrorCode::RequestTimedOut => "The request timed out.",
            ErrorCode::BrokerNotAvailable => "The broker is not available.",
            ErrorCode::ReplicaNotAvailable => {
                "The replica is not available for the requested topic-partition. Produce/Fetch requests and other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition."
            }
            ErrorCode::MessageTooLarge => {
                "The request included a message larger than the max message size the server will accept."
            }
            ErrorCode::StaleControllerEpoch => "The controller moved to another broker.",
            ErrorCode::OffsetMetadataTooLarge => {
                "The metadata field of the offset request was too large."
            }
            ErrorCode::NetworkException => {
                "The server disconnected before a response was received."
            }
            ErrorCode::CoordinatorLoadInProgress => {
                "The coordinator is loading and hence can't process requests."
            }
            ErrorCode::CoordinatorNotAvailable => "The coordinator is not available.",
            ErrorCode::NotCoordinator => "This is not the correct coordinator.",
            ErrorCode::InvalidTopicException => {
                "The request attempted to perform an operation on an invalid topic."
            }
            ErrorCode::RecordListTooLarge => {
                "The request included message batch larger than the configured segment size on the server."
            }
            ErrorCode::NotEnoughReplicas => {
                "Messages are rejected since there are fewer in-sync replicas than required."
            }
            ErrorCode::NotEnoughReplicasAfterAppend => {
                "Messages are written to the log, but to fewer in-sync replicas than required."
            }
            ErrorCode::InvalidRequiredAcks => {
                "Produce request specified an invalid value for required acks."
            }
            ErrorCode::IllegalGeneration => "Specified group generation id is not valid.",
            ErrorCode::InconsistentGroupProtocol => {
                "The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list."
            }
            ErrorCode::InvalidGroupId => "The configured groupId is invalid.",
            ErrorCode::UnknownMemberId => "The coordinator is not aware of this member.",
            ErrorCode::InvalidSessionTimeout => {
                "The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms)."
            }
            ErrorCode::RebalanceInProgress => "The group is rebalancing, so a rejoin is needed.",
            ErrorCode::InvalidCommitOffsetSize => "The committing offset data size is not valid.",
            ErrorCode::TopicAuthorizationFailed => "Topic authorization failed.",
            ErrorCode::GroupAuthorizationFailed => "Group authorization failed.",
            ErrorCode::ClusterAuthorizationFailed => "Cluster authorization failed.",
            ErrorCode::InvalidTimestamp => {
                "The timestamp of the message is out of acceptable range."
            }
            ErrorCode::UnsupportedSaslMechanism => {
                "The broker does not support the requested SASL mechanism."
            }
            ErrorCode::IllegalSaslState => "Request is not valid given the current SASL state.",
            ErrorCode::UnsupportedVersion => "The version of API is not supported.",
            ErrorCode::TopicAlreadyExists => "Topic with this name already exists.",
            ErrorCode::InvalidPartitions => "Number of partitions is below 1.",
            ErrorCode::InvalidReplicationFactor => {
                "Replication factor is below 1 or larger than the number of available brokers."
            }
            ErrorCode::InvalidReplicaAssignment => "Replica assignment is invalid.",
            ErrorCode::InvalidConfig => "Configuration is invalid.",
            ErrorCode::NotController => "This is not the correct controller for this cluster.",
            ErrorCode::InvalidRequest => {
                "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details."
            }
            ErrorCode::UnsupportedForMessageFormat => {
                "The message format version on the broker does not support the request."
            }
            ErrorCode::PolicyViolation => {
                "Request parameters do not satisfy the configured policy."
            }
            ErrorCode::OutOfOrderSequenceNumber => {
                "The broker received an out of order sequence number."
            }
            ErrorCode::DuplicateSequenceNumber => {
                "The broker received a duplicate sequence number."
            }
            ErrorCode::InvalidProducerEpoch => "Producer attempted to produce with an old epoch.",
            ErrorCode::InvalidTxnState => {
                "The producer attempted a transactional operation in an invalid state."
            }
            ErrorCode::InvalidProducerIdMapping => {
                "The producer attempted to use a producer id which is not currently assigned to its transactional id."
            }
            ErrorCode::InvalidTransactionTimeout => {
                "The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms)."
            }
            ErrorCode::ConcurrentTransactions => {
                "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing."
            }
            ErrorCode::TransactionCoordinatorFenced => {
                "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer."
            }
            ErrorCode::TransactionalIdAuthorizationFailed => {
                "Transactional Id authorization failed."
            }
            ErrorCode::SecurityDisabled => "Security features are disabled.",
            ErrorCode::OperationNotAttempted => {
                "The broker did not attempt to execute this operation. This may happen for batched RPCs where some operations in the batch failed, causing the broker to respond without trying the rest."
            }
            ErrorCode::KafkaStorageError => {
                "Disk error when trying to access log file on the disk."
            }
            ErrorCode::LogDirNotFound => {
                "The user-specified log directory is not found in the broker config."
            }
            ErrorCode::SaslAuthenticationFailed => "SASL Authentication failed.",
            ErrorCode::UnknownProducerId => {
                "This exception is raised by the broker if it could not locate the producer metadata associated with the producerId in question. This could happen if, for instance, the producer's records were deleted because their retention time had elapsed. Once the last records of the producerId are removed, the producer's metadata is removed from the broker, and future appends by the producer will return this exception."
            }
            ErrorCode::ReassignmentInProgress => "A partition reassignment is in progress.",
            ErrorCode::DelegationTokenAuthDisabled => "Delegation Token feature is not enabled.",
            ErrorCode::DelegationTokenNotFound => "Delegation Token is not found on server.",
            ErrorCode::DelegationTokenOwnerMismatch => {
                "Specified Principal is not valid Owner/Renewer."
            }
            ErrorCode::DelegationTokenRequestNotAllowed => {
                "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated channels."
            }
            ErrorCode::DelegationTokenAuthorizationFailed => {
                "Delegation Token authorization failed."
            }
            ErrorCode::DelegationTokenExpired => "Delegation Token is expired.",
            ErrorCode::InvalidPrincipalType => "Supplied principalType is not supported.",
            ErrorCode::NonEmptyGroup => "The group is not empty.",
            ErrorCode::GroupIdNotFound => "The group id does not exist.",
            ErrorCode::FetchSessionIdNotFound => "The fetch session ID was not found.",
            ErrorCode::InvalidFetchSessionEpoch => "The fetch session epoch is invalid.",
            ErrorCode::ListenerNotFound => {
                "There is no listener on the leader broker that matches the listener on which metadata request was processed."
            }
            ErrorCode::TopicDeletionDisabled => "Topic deletion is disabled.",
            ErrorCode::FencedLeaderEpoch => {
                "The leader epoch in the request is older than the epoch on the broker."
            }
            ErrorCode::UnknownLeaderEpoch => {
                "The leader epoch in the request is newer than the epoch on the broker."
            }
            ErrorCode::UnsupportedCompressionType => {
                "The requesting client does not support the compression type of given partition."
            }
            ErrorCode::StaleBrokerEpoch => "Broker epoch has changed.",
            ErrorCode::OffsetNotAvailable => {
                "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing."
            }
            ErrorCode::MemberIdRequired => {
                "The group member needs to have a valid member id before actually entering a consumer group."
            }
            ErrorCode::PreferredLeaderNotAvailable => "The preferred leader was not available.",
            ErrorCode::GroupMaxSizeReached => "The consumer group has reached its max size.",
            ErrorCode::FencedInstanceId => {
                "The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id."
            }
            ErrorCode::EligibleLeadersNotAvailable => {
                "Eligible topic partition leaders are not available."
            }
            ErrorCode::ElectionNotNeeded => "Leader election not needed for topic partition.",
            ErrorCode::NoReassignmentInProgress => "No partition reassignment is in progress.",
            ErrorCode::GroupSubscribedToTopic => {
                "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it."
            }
            ErrorCode::InvalidRecord => {
                "This record has failed the validation on broker and hence will be rejected."
            }
            ErrorCode::UnstableOffsetCommit => {
                "There are unstable offsets that need to be cleared."
            }
            ErrorCode::ThrottlingQuotaExceeded => "The throttling quota has been exceeded.",
            ErrorCode::ProducerFenced => {
                "There is a newer producer with the same transactionalId which fences the current one."
            }
            ErrorCode::ResourceNotFound => {
                "A request illegally referred to a resource that does not exist."
            }
            ErrorCode::DuplicateResource => {
                "A request illegally referred to the same resource twice."
            }
            ErrorCode::UnacceptableCredential => {
                "Requested credential would not meet criteria for acceptability."
            }
            ErrorCode::InconsistentVoterSet => {
                "Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters."
            }
            ErrorCode::InvalidUpdateVersion => "The given update version was invalid.",
            ErrorCode::FeatureUpdateFailed => {
                "Unable to update finalized features due to an unexpected server error."
            }
            ErrorCode::PrincipalDeserializationFailure => {
                "Request principal deserialization failed during forwarding. This indicates an internal error on the broker cluster security setup."
            }
            ErrorCode::SnapshotNotFound => "Requested snapshot was not found.",
            ErrorCode::PositionOutOfRange => {
                "Requested position is not greater than or equal to zero, and less than the size of the snapshot."
            }
            ErrorCode::UnknownTopicId => "This server does not host this topic ID.",
            ErrorCode::DuplicateBrokerRegistration => "This broker ID is already in use.",
            ErrorCode::BrokerIdNotRegistered => "The given broker ID was not registered.",
            ErrorCode::InconsistentTopicId => {
                "The log's topic ID did not match the topic ID in the request."
            }
            ErrorCode::InconsistentClusterId => {
                "The clusterId in the request does not match that found on the server."
            }
            ErrorCode::TransactionalIdNotFound => "The transactionalId could not be found.",
            ErrorCode::FetchSessionTopicIdError => {
                "The fetch session encountered inconsistent topic ID usage."
            }
            ErrorCode::IneligibleReplica => "The new ISR contains at least one ineligible replica.",
            ErrorCode::NewLeaderElected => {
                "The AlterPartition request successfully updated the partition state but the leader has changed."
            }
            ErrorCode::OffsetMovedToTieredStorage => {
                "The requested offset is moved to tiered storage."
            }
            ErrorCode::FencedMemberEpoch => {
                "The member epoch is fenced by the group coordinator. The member must abandon all its partitions and rejoin."
            }
            ErrorCode::UnreleasedInstanceId => {
                "The instance ID is still used by another member in the consumer group. That member must leave first."
            }
            ErrorCode::UnsupportedAssignor => {
                "The assignor or its version range is not supported by the consumer group."
            }
            ErrorCode::StaleMemberEpoch => {
                "The member epoch is stale. The member must retry after receiving its updated member epoch via the ConsumerGroupHeartbeat API."
            }
            ErrorCode::MismatchedEndpointType => {
                "The request was sent to an endpoint of the wrong type."
            }
            ErrorCode::UnsupportedEndpointType => "This endpoint type is not supported yet.",
            ErrorCode::UnknownControllerId => "This controller ID is not known.",
            ErrorCode::UnknownSubscriptionId => {
                "Client sent a push telemetry request with an invalid or outdated subscription ID."
            }
            ErrorCode::TelemetryTooLarge => {
                "Client sent a push telemetry request larger than the maximum size the broker will accept."
            }
            ErrorCode::InvalidRegistration => {
                "The controller has considered the broker registration to be invalid."
            }
            ErrorCode::TransactionAbortable => {
                "The server encountered an error with the transaction. The client can abort the transaction to continue using this transactional ID."
            }
            ErrorCode::InvalidRecordState => {
                "The record state is invalid. The acknowledgement of delivery could not be completed."
            }
            ErrorCode::ShareSessionNotFound => "The share session was not found.",
            ErrorCode::InvalidShareSessionEpoch => "The share session epoch is invalid.",
            ErrorCode::FencedStateEpoch => {
                "The share coordinator rejected the request because the share-group state epoch did not match."
            }
            ErrorCode::InvalidVoterKey => {
                "The voter key doesn't match the receiving replica's key."
            }
            ErrorCode::DuplicateVoter => "The voter is already part of the set of voters.",
            ErrorCode::VoterNotFound => "The voter is not part of the set of voters.",
            ErrorCode::InvalidRegularExpression => "The regular expression is not valid.",
        }
    }

    /// Whether this is `None` (success).
    pub const fn is_ok(self) -> bool {
        matches!(self, ErrorCode::None)
    }
}

impl Default for ErrorCode {
    /// Success: `NONE`.
    fn default() -> Self {
        ErrorCode::None
    }
}

impl From<ErrorCode> for i16 {
    fn from(e: ErrorCode) -> i16 {
        e.code()
    }
}

impl TryFrom<i16> for ErrorCode {
    type Error = i16;

    fn try_from(code: i16) -> Result<Self, i16> {
        ErrorCode::from_code(code).ok_or(code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_matches_kafka() {
        assert_eq!(ErrorCode::UnknownServerError.code(), -1);
        assert_eq!(ErrorCode::UnknownTopicOrPartition.code(), 3);
        assert_eq!(ErrorCode::NotLeaderOrFollower.code(), 6);
        assert_eq!(ErrorCode::MessageTooLarge.code(), 10);
        assert_eq!(ErrorCode::InvalidTopicException.code(), 17);
        assert_eq!(ErrorCode::UnsupportedVersion.code(), 35);
        assert_eq!(ErrorCode::InvalidRequest.code(), 42);
        assert_eq!(ErrorCode::InvalidRecord.code(), 87);
        assert_eq!(ErrorCode::ProducerFenced.code(), 90);
        assert_eq!(ErrorCode::UnknownTopicId.code(), 100);
        for (i, e) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(ErrorCode::from_code(e.code()), Some(*e));
            assert_eq!(i as i16 - 1, e.code());
        }
        assert_eq!(ErrorCode::from_code(129), None);
    }
}
