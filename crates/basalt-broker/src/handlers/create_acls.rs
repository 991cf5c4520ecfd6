//! CreateAcls (key 30), v1–3: adds ACL bindings, committed to the cluster metadata (or, for a
//! broker without a quorum, persisted in `acls.json`) before the answer (`BRK-4`, `CLU-3`).
//!
//! Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED for every creation otherwise);
//! answers SECURITY_DISABLED when no authorizer is configured. Each creation is checked as Kafka
//! does (INVALID_REQUEST for unknown or ANY/MATCH codes, a bad principal, an empty name or host);
//! the valid ones are stored together; if that fails they all carry its error (NOT_CONTROLLER
//! while the quorum has no leader, REQUEST_TIMED_OUT when this node's image did not catch up,
//! KAFKA_STORAGE_ERROR when the file cannot be written).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::create_acls_request::CreateAclsRequest;
use basalt_protocol::messages::create_acls_response::{AclCreationResult, CreateAclsResponse};

use crate::Broker;
use crate::acl::{AclBinding, Operation, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 3;

pub fn handle(broker: &Broker, session: &Session, req: CreateAclsRequest) -> CreateAclsResponse {
    let refuse_all = |code: ErrorCode, message: &str| CreateAclsResponse {
        results: req
            .creations
            .iter()
            .map(|_| AclCreationResult {
                error_code: code.into(),
                error_message: Some(message.to_owned()),
                ..AclCreationResult::default()
            })
            .collect(),
        ..CreateAclsResponse::default()
    };
    if !broker.authorizer_enabled() {
        return refuse_all(ErrorCode::SecurityDisabled, "no authorizer is configured");
    }
    if !broker.authorize_cluster(session, Operation::Alter) {
        return refuse_all(
            ErrorCode::ClusterAuthorizationFailed,
            "ALTER on the cluster is needed to create ACLs",
        );
    }
    let checked: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|r| r.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        broker.create_acls(valid)
    };
    if let Err(e) = &stored {
        tracing::error!(error = %e.message, "could not store ACLs");
    }
    let results = checked
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err(message), _) => AclCreationResult {
                error_code: ErrorCode::InvalidRequest.into(),
                error_message: Some(message),
                ..AclCreationResult::default()
            },
            (Ok(_), Err(e)) => AclCreationResult {
                error_code: e.code.into(),
                error_message: Some(e.message.clone()),
                ..AclCreationResult::default()
            },
            (Ok(acl), Ok(())) => {
                tracing::info!(principal = %acl.principal, operation = %acl.operation, resource = %acl.resource_name, "created ACL");
                AclCreationResult::default()
            }
        })
        .collect();
    CreateAclsResponse {
        results,
        ..CreateAclsResponse::default()
    }
}
