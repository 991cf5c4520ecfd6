//! The one place where storage facts become Kafka error codes.

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
        | StorageError::InvalidAbortedTxn { .. } => ErrorCode::UnknownServerError,
    }
}
