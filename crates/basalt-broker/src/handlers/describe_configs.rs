//! DescribeConfigs (key 32), v1–4: every config of a topic or of this broker, not only the
//! overrides.
//!
//! A TOPIC resource (type 2) lists every config of [`crate::config::TOPIC_CONFIGS`] with the value
//! in force and its source: `TOPIC_CONFIG` (1) for an override, else the source of the broker
//! setting it falls back to: `STATIC_BROKER_CONFIG` (4) when that differs from Basalt's built-in
//! default, `DEFAULT_CONFIG` (5) otherwise. With `include_synonyms` each config carries every
//! level that sets it, in precedence order (override, broker setting, built-in default), as
//! Kafka does. A BROKER resource (type 4, named by this node's id or empty for the cluster-wide
//! defaults) lists the broker settings under Kafka's names, read-only since they are fixed at
//! start-up. `configuration_keys` (null or empty for all) filters by name; unknown names are
//! left out. Documentation is returned only when asked for (v3+). A GROUP resource (type 32)
//! lists the group configs share groups read, `GROUP_CONFIG` (8) for an override.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use basalt_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};

use super::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, check_broker_resource};
use crate::Broker;
use crate::acl::{Operation, Session};
use crate::config::{ConfigSynonym, DescribedConfig};
use crate::topics::validate_topic_name;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            if let Err(e) = broker.authorize_config_resource(
                session,
                Operation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            ) {
                return DescribeConfigsResult {
                    error_code: e.code.into(),
                    error_message: Some(e.message),
                    resource_type: r.resource_type,
                    resource_name: r.resource_name,
                    ..DescribeConfigsResult::default()
                };
            }
            describe(
                broker,
                r,
                req.include_synonyms,
                req.include_documentation,
                version,
            )
        })
        .collect();
    DescribeConfigsResponse {
        results,
        ..DescribeConfigsResponse::default()
    }
}

fn describe(
    broker: &Broker,
    resource: DescribeConfigsResource,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult {
        resource_type: resource.resource_type,
        resource_name: resource.resource_name.clone(),
        ..DescribeConfigsResult::default()
    };
    let described = match resource.resource_type {
        RESOURCE_TOPIC => {
            let name = &resource.resource_name;
            if let Err(m) = validate_topic_name(name) {
                Err((ErrorCode::InvalidTopicException, m))
            } else {
                match broker.topic(name) {
                    Some(topic) => Ok(broker.config().describe_topic_configs(&topic.meta.configs)),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("unknown topic {name}"),
                    )),
                }
            }
        }
        RESOURCE_BROKER => check_broker_resource(broker, &resource.resource_name)
            .map(|()| broker.config().describe_broker_configs())
            .map_err(|m| (ErrorCode::InvalidRequest, m)),
        RESOURCE_GROUP => Ok(describe_group(broker, &resource.resource_name)),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("unsupported resource type {other}"),
        )),
    };
    match described {
        Ok(configs) => {
            let keys = resource.configuration_keys.filter(|k| !k.is_empty());
            result.configs = configs
                .into_iter()
                .filter(|c| keys.as_ref().is_none_or(|k| k.contains(&c.name)))
                .map(|c| entry(c, include_synonyms, include_documentation && version >= 3))
                .collect();
        }
        Err((code, message)) => {
            result.error_code = code.into();
            result.error_message = Some(message);
        }
    }
    result
}

/// Kafka's ConfigSource of a group override.
const GROUP_CONFIG: i8 = 8;
/// Kafka's ConfigSource of a built-in default.
const DEFAULT_CONFIG: i8 = 5;

/// Every group config of `group` ([`crate::shares::GROUP_CONFIGS`]) with its value in force.
fn describe_group(broker: &Broker, group: &str) -> Vec<DescribedConfig> {
    let overrides = broker.shares().group_configs(broker, group);
    crate::shares::GROUP_CONFIGS
        .iter()
        .map(|(name, default)| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(*name) {
                synonyms.push(ConfigSynonym {
                    name: (*name).to_owned(),
                    value: v.clone(),
                    source: GROUP_CONFIG,
                });
            }
            synonyms.push(ConfigSynonym {
                name: (*name).to_owned(),
                value: (*default).to_owned(),
                source: DEFAULT_CONFIG,
            });
            DescribedConfig {
                name: (*name).to_owned(),
                value: synonyms[0].value.clone(),
                source: synonyms[0].source,
                read_only: false,
                // INT (3) for the durations, STRING (2) for the rest.
                type_code: if name.ends_with(".ms") { 3 } else { 2 },
                doc: "",
                synonyms,
            }
        })
        .collect()
}

fn entry(
    c: DescribedConfig,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult {
        name: c.name,
        value: Some(c.value),
        read_only: c.read_only,
        config_source: c.source,
        is_default: false,
        is_sensitive: false,
        synonyms: if include_synonyms {
            c.synonyms
                .into_iter()
                .map(|s| DescribeConfigsSynonym {
                    name: s.name,
                    value: Some(s.value),
                    source: s.source,
                    ..DescribeConfigsSynonym::default()
                })
                .collect()
        } else {
            Vec::new()
        },
        config_type: c.type_code,
        documentation: include_documentation.then(|| c.doc.to_owned()),
        ..DescribeConfigsResourceResult::default()
    }
}
