//! The one place where storage facts and metadata-quorum refusals become Kafka error codes.

use basalt_cluster::metadata::{ProposeError, Rejection};
use basalt_protocol::ErrorCode;
use basalt_storage::StorageError;

/// The Kafka error code a client should see for a storage error.
pub fn storage_error_code(err: &StorageError) -> ErrorCode {
    match err {
        StorageError::InvalidBatch { .. } | StorageError::EmptyAppend => ErrorCode::CorruptMessage,
        StorageError::AppendTooLarge { .. } => ErrorCode::RecordListTooLarge,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::Closed { .. } => ErrorCode::NotLeaderOrFollower,
        StorageError::Damaged(_)
        | StorageError::Poisoned { .. }
        | StorageError::Io { .. }
        | StorageError::BadFile { .. } => ErrorCode::KafkaStorageError,
        StorageError::Locked { .. }
        | StorageError::InvalidName { .. }
        | StorageError::InvalidAbortedTxn { .. }
        | StorageError::InvalidLeaderEpoch { .. }
        | StorageError::NotContiguous { .. } => ErrorCode::UnknownServerError,
    }
}

/// The Kafka error code a client should see when the metadata quorum refused a command.
pub fn rejection_code(rejection: &Rejection) -> ErrorCode {
    match rejection {
        Rejection::TopicExists { .. } => ErrorCode::TopicAlreadyExists,
        Rejection::UnknownTopic { .. } | Rejection::UnknownPartition { .. } => {
            ErrorCode::UnknownTopicOrPartition
        }
        Rejection::UnknownTopicId { .. } => ErrorCode::UnknownTopicId,
        Rejection::TopicCollision { .. }
        | Rejection::InvalidTopicName { .. }
        | Rejection::InvalidTopicId { .. } => ErrorCode::InvalidTopicException,
        Rejection::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
        Rejection::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
        Rejection::InvalidReplicaAssignment { .. } => ErrorCode::InvalidReplicaAssignment,
        Rejection::InvalidConfig { .. } => ErrorCode::InvalidConfig,
        Rejection::InvalidAcl { .. } => ErrorCode::InvalidRequest,
        Rejection::InvalidScramCredential { .. } => ErrorCode::UnacceptableCredential,
        Rejection::UnknownScramCredential { .. } => ErrorCode::ResourceNotFound,
        Rejection::NoReassignmentInProgress { .. } => ErrorCode::NoReassignmentInProgress,
        Rejection::StalePartitionEpoch { .. } | Rejection::InvalidLeaderOrIsr { .. } => {
            ErrorCode::InvalidRequest
        }
        // The writer no longer leads the partition.
        Rejection::StaleLeaderEpoch { .. } => ErrorCode::NotLeaderOrFollower,
        Rejection::ShareStateTooLarge { .. } => ErrorCode::KafkaStorageError,
        Rejection::UnknownNode { .. }
        | Rejection::InvalidNodeId { .. }
        | Rejection::StaleIncarnation { .. }
        | Rejection::InvalidRegistration { .. } => ErrorCode::BrokerNotAvailable,
    }
}

/// The Kafka error code a client should see when a proposal to the metadata quorum failed.
pub fn propose_error_code(err: &ProposeError) -> ErrorCode {
    match err {
        ProposeError::Rejected(r) => rejection_code(r),
        ProposeError::NotLeader { .. } | ProposeError::Unavailable { .. } => {
            ErrorCode::NotController
        }
        // The command may still be applied: the client should look before retrying.
        ProposeError::OutcomeUnknown { .. } => ErrorCode::RequestTimedOut,
    }
}
