//! DeleteAcls (key 31), v1–3: removes the ACL bindings each filter matches and reports them per
//! filter. The filters are resolved here, against this node's bindings, to the exact bindings
//! removed; their removal is committed to the cluster metadata (or, for a broker without a
//! quorum, persisted in `acls.json`) before the answer (`BRK-4`, `CLU-3`).
//!
//! Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED); answers SECURITY_DISABLED when no
//! authorizer is configured and INVALID_REQUEST for a malformed filter (the other filters still
//! apply).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::delete_acls_request::DeleteAclsRequest;
use basalt_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl, DeleteAclsResponse,
};

use crate::Broker;
use crate::acl::{AclFilter, Operation, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 3;

pub fn handle(broker: &Broker, session: &Session, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let refusal = if !broker.authorizer_enabled() {
        Some((ErrorCode::SecurityDisabled, "no authorizer is configured"))
    } else if !broker.authorize_cluster(session, Operation::Alter) {
        Some((
            ErrorCode::ClusterAuthorizationFailed,
            "ALTER on the cluster is needed to delete ACLs",
        ))
    } else {
        None
    };
    if let Some((code, message)) = refusal {
        return DeleteAclsResponse {
            filter_results: req
                .filters
                .iter()
                .map(|_| DeleteAclsFilterResult {
                    error_code: code.into(),
                    error_message: Some(message.to_owned()),
                    ..DeleteAclsFilterResult::default()
                })
                .collect(),
            ..DeleteAclsResponse::default()
        };
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
    let removed = broker.delete_acls(&valid);
    if let Err(e) = &removed {
        tracing::error!(error = %e.message, "could not store ACLs");
    }
    let mut removed_each = match &removed {
        Ok(r) => r.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let filter_results = parsed
        .into_iter()
        .map(|f| match (f, &removed) {
            (Err(message), _) => DeleteAclsFilterResult {
                error_code: ErrorCode::InvalidRequest.into(),
                error_message: Some(message),
                ..DeleteAclsFilterResult::default()
            },
            (Ok(_), Err(e)) => DeleteAclsFilterResult {
                error_code: e.code.into(),
                error_message: Some(e.message.clone()),
                ..DeleteAclsFilterResult::default()
            },
            (Ok(_), Ok(_)) => DeleteAclsFilterResult {
                matching_acls: removed_each
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|acl| DeleteAclsMatchingAcl {
                        resource_type: acl.resource_type.code(),
                        resource_name: acl.resource_name,
                        pattern_type: acl.pattern_type.code(),
                        principal: acl.principal,
                        host: acl.host,
                        operation: acl.operation.code(),
                        permission_type: acl.permission.code(),
                        ..DeleteAclsMatchingAcl::default()
                    })
                    .collect(),
                ..DeleteAclsFilterResult::default()
            },
        })
        .collect();
    DeleteAclsResponse {
        filter_results,
        ..DeleteAclsResponse::default()
    }
}
