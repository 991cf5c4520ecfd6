//! DescribeUserScramCredentials (key 50), v0: the SCRAM mechanisms and iteration counts of
//! users (never salts or keys). A null user list describes every user; an unknown user is
//! RESOURCE_NOT_FOUND and a user named twice DUPLICATE_RESOURCE, as Kafka answers. Needs
//! DESCRIBE on the cluster.

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_user_scram_credentials_request::DescribeUserScramCredentialsRequest;
use basalt_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResponse, DescribeUserScramCredentialsResult,
};

use crate::Broker;
use crate::acl::{Operation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !broker.authorize_cluster(session, Operation::Describe) {
        return DescribeUserScramCredentialsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.into(),
            error_message: Some("DESCRIBE on the cluster is needed".into()),
            ..DescribeUserScramCredentialsResponse::default()
        };
    }
    let all = broker.credentials().describe();
    let entry = |user: &str, found: &[(basalt_server::Mechanism, u32)]| {
        DescribeUserScramCredentialsResult {
            user: user.to_owned(),
            credential_infos: found
                .iter()
                .filter_map(|(m, iterations)| {
                    Some(CredentialInfo {
                        mechanism: m.scram_code()?,
                        iterations: i32::try_from(*iterations).unwrap_or(i32::MAX),
                        ..CredentialInfo::default()
                    })
                })
                .collect(),
            error_message: None,
            ..DescribeUserScramCredentialsResult::default()
        }
    };
    let results = match req.users {
        None => all.iter().map(|(u, m)| entry(u, m)).collect(),
        Some(users) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for u in &users {
                *counts.entry(u.name.as_str()).or_default() += 1;
            }
            users
                .iter()
                .map(|u| {
                    let name = u.name.as_str();
                    if counts[name] > 1 {
                        failed(
                            name,
                            ErrorCode::DuplicateResource,
                            "user named more than once",
                        )
                    } else {
                        match all.get(name) {
                            Some(m) => entry(name, m),
                            None => failed(
                                name,
                                ErrorCode::ResourceNotFound,
                                "Attempt to describe a user credential that does not exist",
                            ),
                        }
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse {
        results,
        error_message: None,
        ..DescribeUserScramCredentialsResponse::default()
    }
}

fn failed(user: &str, code: ErrorCode, message: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult {
        user: user.to_owned(),
        error_code: code.into(),
        error_message: Some(format!("{message}: {user}")),
        ..DescribeUserScramCredentialsResult::default()
    }
}
