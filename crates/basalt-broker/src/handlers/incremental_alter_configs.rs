//! IncrementalAlterConfigs (key 44), v0–1: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) on
//! topic config overrides.
//!
//! The changes of one resource apply in order to the topic's current overrides, under the
//! broker's topic lock so concurrent requests do not lose each other's changes
//! ([`crate::Broker::alter_topic_configs`]); the result is validated, persisted and applied to the
//! partitions, or (`validate_only`) only validated. APPEND and SUBTRACT start from the value in
//! force (the override, else the broker setting) and apply only to list configs
//! (`cleanup.policy`); on any other config they are INVALID_CONFIG, as are unknown names and bad
//! values. A missing value for SET/APPEND/SUBTRACT, an unknown operation, a config named twice
//! in one resource or a resource named twice in one request is INVALID_REQUEST, as in Kafka.
//! Broker settings are fixed at start-up: a BROKER resource accepts no change (INVALID_REQUEST,
//! "cannot update these configs dynamically", as Kafka answers for static settings). A GROUP
//! resource takes SET and DELETE of the group configs share groups read
//! ([`crate::shares::GROUP_CONFIGS`]).

use std::collections::BTreeSet;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, IncrementalAlterConfigsRequest,
};
use basalt_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse, IncrementalAlterConfigsResponse,
};

use super::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, alter_each, check_broker_resource};
use crate::acl::{Operation, Session};
use crate::config::{AlterOp, ConfigError, IncrementalChange};
use crate::{Broker, TopicError};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = alter_each(
        req.resources,
        |r| (r.resource_type, r.resource_name.clone()),
        |r| {
            broker.authorize_config_resource(
                session,
                Operation::AlterConfigs,
                r.resource_type,
                &r.resource_name,
            )?;
            alter(broker, r, req.validate_only)
        },
    )
    .into_iter()
    .map(
        |(resource_type, resource_name, error)| AlterConfigsResourceResponse {
            resource_type,
            resource_name,
            error_code: error.as_ref().map_or(0, |e| e.code.into()),
            error_message: error.map(|e| e.message),
            ..AlterConfigsResourceResponse::default()
        },
    )
    .collect();
    IncrementalAlterConfigsResponse {
        responses,
        ..IncrementalAlterConfigsResponse::default()
    }
}

fn alter(
    broker: &Broker,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> Result<(), TopicError> {
    let invalid_request = |message: String| TopicError {
        code: ErrorCode::InvalidRequest,
        message,
    };
    let changes = changes(resource.configs).map_err(invalid_request)?;
    match resource.resource_type {
        RESOURCE_TOPIC => {
            broker.alter_topic_configs(&resource.resource_name, validate_only, |current| {
                broker
                    .config()
                    .apply_incremental(current, &changes)
                    .map_err(config_error)
            })
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name).map_err(invalid_request)?;
            if changes.is_empty() {
                return Ok(());
            }
            let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
            Err(invalid_request(format!(
                "cannot update these configs dynamically: {}",
                names.join(", ")
            )))
        }
        RESOURCE_GROUP => broker.shares().alter_group_configs(
            broker,
            &resource.resource_name,
            validate_only,
            |current| {
                let mut out = current.clone();
                for c in &changes {
                    match (c.op, &c.value) {
                        (AlterOp::Set, Some(v)) => {
                            out.insert(c.name.clone(), v.clone());
                        }
                        (AlterOp::Delete, _) => {
                            out.remove(&c.name);
                        }
                        _ => {
                            return Err(TopicError::new(
                                ErrorCode::InvalidConfig,
                                format!(
                                    "{} applies only to list configs, not {}",
                                    c.op.name(),
                                    c.name
                                ),
                            ));
                        }
                    }
                }
                Ok(out)
            },
        ),
        other => Err(invalid_request(format!(
            "unsupported resource type {other}"
        ))),
    }
}

/// The changes of one resource, or why the request is malformed.
fn changes(
    configs: Vec<basalt_protocol::messages::incremental_alter_configs_request::AlterableConfig>,
) -> Result<Vec<IncrementalChange>, String> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(configs.len());
    for c in configs {
        if !names.insert(c.name.clone()) {
            return Err(format!("config {} is named twice", c.name));
        }
        let op = AlterOp::from_code(c.config_operation)
            .ok_or_else(|| format!("unknown config operation {}", c.config_operation))?;
        if op != AlterOp::Delete && c.value.is_none() {
            return Err(format!("{} of {} needs a value", op.name(), c.name));
        }
        out.push(IncrementalChange {
            name: c.name,
            op,
            value: c.value,
        });
    }
    Ok(out)
}

fn config_error(e: ConfigError) -> TopicError {
    let code = match e {
        ConfigError::MissingValue { .. } => ErrorCode::InvalidRequest,
        _ => ErrorCode::InvalidConfig,
    };
    TopicError {
        code,
        message: e.to_string(),
    }
}
