//! AlterConfigs (key 33), v0–2: replaces the whole override set of a topic.
//!
//! Every config named becomes an override and every override not named is removed, as in Kafka's
//! legacy AlterConfigs. Each name and value is validated (INVALID_CONFIG with the reason) before
//! anything changes; the new set is persisted and applied to the partitions
//! ([`crate::Broker::alter_topic_configs`]), or (`validate_only`) only validated. A null value, a
//! config named twice in one resource or a resource named twice in one request is
//! INVALID_REQUEST. Broker settings are fixed at start-up: a BROKER resource accepts no change.

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::alter_configs_request::{AlterConfigsRequest, AlterConfigsResource};
use basalt_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};

use super::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, alter_each, check_broker_resource};
use crate::acl::{Operation, Session};
use crate::{Broker, TopicError};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
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
    AlterConfigsResponse {
        responses,
        ..AlterConfigsResponse::default()
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
    let mut configs = BTreeMap::new();
    for c in resource.configs {
        let Some(value) = c.value else {
            return Err(invalid_request(format!(
                "config {} has a null value",
                c.name
            )));
        };
        if configs.contains_key(&c.name) {
            return Err(invalid_request(format!("config {} is named twice", c.name)));
        }
        configs.insert(c.name, value);
    }
    match resource.resource_type {
        RESOURCE_TOPIC => {
            broker.alter_topic_configs(&resource.resource_name, validate_only, |_| Ok(configs))
        }
        RESOURCE_BROKER => {
            check_broker_resource(broker, &resource.resource_name).map_err(invalid_request)?;
            if configs.is_empty() {
                return Ok(());
            }
            let names: Vec<&str> = configs.keys().map(String::as_str).collect();
            Err(invalid_request(format!(
                "cannot update these configs dynamically: {}",
                names.join(", ")
            )))
        }
        RESOURCE_GROUP => broker.shares().alter_group_configs(
            broker,
            &resource.resource_name,
            validate_only,
            |_| Ok(configs),
        ),
        other => Err(invalid_request(format!(
            "unsupported resource type {other}"
        ))),
    }
}
