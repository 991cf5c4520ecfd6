//! DescribeAcls (key 29), v1–3: the ACL bindings one filter matches, grouped by resource pattern.
//!
//! Needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED); answers SECURITY_DISABLED when no
//! authorizer is configured and INVALID_REQUEST for a malformed filter.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_acls_request::DescribeAclsRequest;
use basalt_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource, DescribeAclsResponse,
};

use crate::Broker;
use crate::acl::{AclFilter, Operation, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 3;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let error = |code: ErrorCode, message: String| DescribeAclsResponse {
        error_code: code.into(),
        error_message: Some(message),
        ..DescribeAclsResponse::default()
    };
    if !broker.authorizer_enabled() {
        return error(
            ErrorCode::SecurityDisabled,
            "no authorizer is configured".into(),
        );
    }
    if !broker.authorize_cluster(session, Operation::Describe) {
        return error(
            ErrorCode::ClusterAuthorizationFailed,
            "DESCRIBE on the cluster is needed to describe ACLs".into(),
        );
    }
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(message) => return error(ErrorCode::InvalidRequest, message),
    };
    // Bindings come sorted by resource type, name and pattern, so equal patterns are adjacent.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in broker.describe_acls(&filter) {
        let entry = AclDescription {
            principal: acl.principal.clone(),
            host: acl.host.clone(),
            operation: acl.operation.code(),
            permission_type: acl.permission.code(),
            ..AclDescription::default()
        };
        match resources.last_mut() {
            Some(r)
                if r.resource_type == acl.resource_type.code()
                    && r.resource_name == acl.resource_name
                    && r.pattern_type == acl.pattern_type.code() =>
            {
                r.acls.push(entry);
            }
            _ => resources.push(DescribeAclsResource {
                resource_type: acl.resource_type.code(),
                resource_name: acl.resource_name,
                pattern_type: acl.pattern_type.code(),
                acls: vec![entry],
                ..DescribeAclsResource::default()
            }),
        }
    }
    DescribeAclsResponse {
        resources,
        ..DescribeAclsResponse::default()
    }
}
