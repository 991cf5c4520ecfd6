//! AlterUserScramCredentials (key 51), v0: creates, replaces and deletes users' SCRAM
//! credentials. The client sends the salt and the salted password; the broker keeps only the
//! salt, iterations, StoredKey and ServerKey (`credentials.rs`), committed to the cluster
//! metadata (or, for a broker without a quorum, persisted in `credentials.json`) before the
//! answer (`BRK-4`, `CRED-1`).
//!
//! Refusals follow Kafka: an unknown mechanism is UNSUPPORTED_SASL_MECHANISM, iterations outside
//! 4096..=16384 or an empty name/salt/password UNACCEPTABLE_CREDENTIAL, a user named twice
//! DUPLICATE_RESOURCE, deleting a missing credential RESOURCE_NOT_FOUND. A user's result is the
//! first error among its changes. Needs ALTER on the cluster.

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::alter_user_scram_credentials_request::AlterUserScramCredentialsRequest;
use basalt_protocol::messages::alter_user_scram_credentials_response::{
    AlterUserScramCredentialsResponse, AlterUserScramCredentialsResult,
};
use basalt_server::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use basalt_server::{Mechanism, ScramCredential};

use crate::Broker;
use crate::credentials::CredentialChange;

pub fn handle(
    broker: &Broker,
    session: &crate::acl::Session,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !broker.authorize_cluster(session, crate::acl::Operation::Alter) {
        let mut users: Vec<String> = req
            .deletions
            .iter()
            .map(|d| d.name.clone())
            .chain(req.upsertions.iter().map(|u| u.name.clone()))
            .collect();
        users.dedup();
        return AlterUserScramCredentialsResponse {
            results: users
                .into_iter()
                .map(|user| AlterUserScramCredentialsResult {
                    user,
                    error_code: ErrorCode::ClusterAuthorizationFailed.into(),
                    error_message: Some("ALTER on the cluster is needed".into()),
                    ..AlterUserScramCredentialsResult::default()
                })
                .collect(),
            ..AlterUserScramCredentialsResponse::default()
        };
    }
    // Users in request order, with the first error of each.
    let mut order: Vec<String> = Vec::new();
    let mut errors: BTreeMap<String, Option<(ErrorCode, String)>> = BTreeMap::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let mut note = |user: &str| {
        if !errors.contains_key(user) {
            order.push(user.to_owned());
            errors.insert(user.to_owned(), None);
        }
    };
    for d in &req.deletions {
        note(&d.name);
        *seen.entry((d.name.clone(), d.mechanism)).or_default() += 1;
    }
    for u in &req.upsertions {
        note(&u.name);
        *seen.entry((u.name.clone(), u.mechanism)).or_default() += 1;
    }
    let fail = |errors: &mut BTreeMap<String, Option<(ErrorCode, String)>>,
                user: &str,
                code: ErrorCode,
                message: String| {
        let e = errors.entry(user.to_owned()).or_insert(None);
        if e.is_none() {
            *e = Some((code, message));
        }
    };
    for ((user, _), n) in &seen {
        if *n > 1 {
            fail(
                &mut errors,
                user,
                ErrorCode::DuplicateResource,
                "a user credential cannot be altered more than once in the same request".into(),
            );
        }
    }
    let mut changes = Vec::new();
    let mut change_users = Vec::new();
    for d in req.deletions {
        match Mechanism::from_scram_code(d.mechanism) {
            None => fail(
                &mut errors,
                &d.name,
                ErrorCode::UnsupportedSaslMechanism,
                "unknown SCRAM mechanism".into(),
            ),
            Some(mechanism) => {
                change_users.push(d.name.clone());
                changes.push(CredentialChange::Delete {
                    user: d.name,
                    mechanism,
                });
            }
        }
    }
    for u in req.upsertions {
        let Some(mechanism) = Mechanism::from_scram_code(u.mechanism) else {
            fail(
                &mut errors,
                &u.name,
                ErrorCode::UnsupportedSaslMechanism,
                "unknown SCRAM mechanism".into(),
            );
            continue;
        };
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        if u.name.is_empty() {
            fail(
                &mut errors,
                &u.name,
                ErrorCode::UnacceptableCredential,
                "username must not be empty".into(),
            );
            continue;
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            fail(
                &mut errors,
                &u.name,
                ErrorCode::UnacceptableCredential,
                format!("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"),
            );
            continue;
        }
        if u.salt.is_empty() || u.salted_password.is_empty() {
            fail(
                &mut errors,
                &u.name,
                ErrorCode::UnacceptableCredential,
                "salt and salted password must not be empty".into(),
            );
            continue;
        }
        change_users.push(u.name.clone());
        changes.push(CredentialChange::Upsert {
            user: u.name,
            mechanism,
            credential: ScramCredential::from_salted_password(
                mechanism,
                &u.salted_password,
                &u.salt,
                iterations,
            ),
        });
    }
    // Users with any error have none of their changes applied.
    let (changes, change_users): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .zip(change_users)
        .filter(|(_, user)| errors.get(user).is_some_and(Option::is_none))
        .unzip();
    for (outcome, user) in broker
        .alter_credentials(changes)
        .into_iter()
        .zip(change_users)
    {
        if let Err(e) = outcome {
            fail(&mut errors, &user, e.code, e.message);
        }
    }
    AlterUserScramCredentialsResponse {
        results: order
            .into_iter()
            .map(|user| {
                let error = errors.remove(&user).flatten();
                AlterUserScramCredentialsResult {
                    user,
                    error_code: error.as_ref().map_or(0, |(c, _)| (*c).into()),
                    error_message: error.map(|(_, m)| m),
                    ..AlterUserScramCredentialsResult::default()
                }
            })
            .collect(),
        ..AlterUserScramCredentialsResponse::default()
    }
}
