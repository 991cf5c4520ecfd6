//! `basalt acl`: add, list and remove ACLs, in the spirit of Kafka's `kafka-acls.sh`, with
//! CreateAcls, DescribeAcls and DeleteAcls on the bootstrap broker.
//!
//! - `add` creates one binding per principal and operation on one resource (`--topic`, `--group`,
//!   `--cluster` or `--transactional-id`), LITERAL unless `--prefixed`.
//! - `list` prints the bindings a filter matches (any resource, pattern, principal, host,
//!   operation and permission unless narrowed; `--pattern match` lists what applies to a name).
//! - `remove` deletes the bindings a filter matches; it needs a resource so that a bare `remove`
//!   never deletes every ACL.

use basalt_broker::acl::{CLUSTER_NAME, Operation, ResourceType};
use basalt_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use basalt_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use basalt_protocol::messages::describe_acls_request::DescribeAclsRequest;
use basalt_protocol::{ApiKey, RequestBody, ResponseBody};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{Client, check, unexpected};
use super::output::{print_json, print_table, table};
use super::{ConnectArgs, Error};

/// Filter code matching anything.
const ANY: i8 = 1;
/// Pattern filter code: the patterns that apply to a name.
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// `basalt acl ...`.
#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Allow or deny principals operations on a resource.
    Add(AddArgs),
    /// List the ACLs a filter matches (every ACL by default).
    List(FilterArgs),
    /// Remove the ACLs a filter matches (a resource is required).
    Remove(FilterArgs),
}

/// The resource an ACL or a filter names; at most one.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct ResourceArgs {
    /// A topic (or topic prefix with --prefixed; `*` for every topic).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group (or prefix; `*` for every group).
    #[arg(long)]
    group: Option<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// A transactional id (or prefix; `*` for every one).
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_id: Option<String>,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        if let Some(t) = &self.topic {
            Some((ResourceType::Topic, t.clone()))
        } else if let Some(g) = &self.group {
            Some((ResourceType::Group, g.clone()))
        } else if let Some(x) = &self.transactional_id {
            Some((ResourceType::TransactionalId, x.clone()))
        } else {
            self.cluster
                .then(|| (ResourceType::Cluster, CLUSTER_NAME.to_owned()))
        }
    }
}

/// `basalt acl add ...`.
#[derive(Debug, Args)]
struct AddArgs {
    /// Allow the operations.
    #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
    allow: bool,
    /// Deny the operations (a DENY wins over any ALLOW).
    #[arg(long)]
    deny: bool,
    /// Principals, as `User:name` or `User:*` (repeatable or comma-separated).
    #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
    principal: Vec<String>,
    /// The client's IP address, or `*` for any host.
    #[arg(long, default_value = "*")]
    host: String,
    /// Operations: all, read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write (repeatable or comma-separated).
    #[arg(long, required = true, value_delimiter = ',', num_args = 1.., value_parser = parse_operation)]
    operation: Vec<Operation>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// The name is a prefix: the ACL applies to every resource whose name starts with it.
    #[arg(long)]
    prefixed: bool,
}

/// Filters of `basalt acl list` and `remove`.
#[derive(Debug, Args)]
struct FilterArgs {
    /// Only ALLOW ACLs.
    #[arg(long, conflicts_with = "deny")]
    allow: bool,
    /// Only DENY ACLs.
    #[arg(long)]
    deny: bool,
    /// Only ACLs of this principal.
    #[arg(long)]
    principal: Option<String>,
    /// Only ACLs of this host.
    #[arg(long)]
    host: Option<String>,
    /// Only ACLs of this operation.
    #[arg(long, value_parser = parse_operation)]
    operation: Option<Operation>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only prefixed patterns (as `--pattern prefixed`).
    #[arg(long, conflicts_with = "pattern")]
    prefixed: bool,
    /// Pattern filter: literal, prefixed, any, or match (every pattern that applies to the named
    /// resource) [default: any for list, literal for remove].
    #[arg(long, value_parser = ["literal", "prefixed", "any", "match"])]
    pattern: Option<String>,
}

fn parse_operation(s: &str) -> Result<Operation, String> {
    Operation::parse(s).ok_or_else(|| {
        format!(
            "unknown operation {s:?}; one of {}",
            Operation::EVERY
                .iter()
                .map(|o| o.name().to_lowercase().replace('_', "-"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// One ACL as printed.
#[derive(Debug, Serialize)]
struct AclRow {
    resource_type: String,
    resource_name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

fn resource_type_name(code: i8) -> String {
    match ResourceType::from_code(code) {
        Some(ResourceType::Topic) => "TOPIC".into(),
        Some(ResourceType::Group) => "GROUP".into(),
        Some(ResourceType::Cluster) => "CLUSTER".into(),
        Some(ResourceType::TransactionalId) => "TRANSACTIONAL_ID".into(),
        Some(ResourceType::DelegationToken) => "DELEGATION_TOKEN".into(),
        Some(ResourceType::User) => "USER".into(),
        None => format!("UNKNOWN({code})"),
    }
}

fn pattern_name(code: i8) -> String {
    match code {
        LITERAL => "LITERAL".into(),
        PREFIXED => "PREFIXED".into(),
        other => format!("UNKNOWN({other})"),
    }
}

fn operation_name(code: i8) -> String {
    Operation::from_code(code).map_or_else(|| format!("UNKNOWN({code})"), |o| o.name().to_owned())
}

fn permission_name(code: i8) -> String {
    match code {
        ALLOW => "ALLOW".into(),
        DENY => "DENY".into(),
        other => format!("UNKNOWN({other})"),
    }
}

/// Runs `basalt acl`.
pub fn run(args: AclArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        AclCommand::Add(add_args) => add(&mut client, &add_args, json),
        AclCommand::List(filter) => list(&mut client, &filter, json),
        AclCommand::Remove(filter) => remove(&mut client, &filter, json),
    }
}

fn add(client: &mut Client, args: &AddArgs, json: bool) -> Result<(), Error> {
    let (resource_type, name) = args
        .resource
        .resource()
        .ok_or("name a resource: --topic, --group, --cluster or --transactional-id")?;
    let permission = if args.deny { DENY } else { ALLOW };
    let pattern = if args.prefixed { PREFIXED } else { LITERAL };
    let mut rows = Vec::new();
    let mut creations = Vec::new();
    for principal in &args.principal {
        for op in &args.operation {
            creations.push(AclCreation {
                resource_type: resource_type.code(),
                resource_name: name.clone(),
                resource_pattern_type: pattern,
                principal: principal.clone(),
                host: args.host.clone(),
                operation: op.code(),
                permission_type: permission,
                ..AclCreation::default()
            });
            rows.push(AclRow {
                resource_type: resource_type_name(resource_type.code()),
                resource_name: name.clone(),
                pattern_type: pattern_name(pattern),
                principal: principal.clone(),
                host: args.host.clone(),
                operation: op.name().to_owned(),
                permission: permission_name(permission),
            });
        }
    }
    let body = RequestBody::CreateAcls(CreateAclsRequest {
        creations,
        ..CreateAclsRequest::default()
    });
    let response = match client.any()?.send(&body)? {
        ResponseBody::CreateAcls(r) => r,
        other => return Err(unexpected(ApiKey::CreateAcls, &other)),
    };
    for r in &response.results {
        check(r.error_code, "CreateAcls", r.error_message.as_deref())?;
    }
    if json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            println!(
                "added {} {} for {} from {} on {} {} ({})",
                r.permission,
                r.operation,
                r.principal,
                r.host,
                r.resource_type,
                r.resource_name,
                r.pattern_type
            );
        }
    }
    Ok(())
}

/// The wire filter of `args`; `default_pattern` applies when no pattern option is given.
#[allow(clippy::type_complexity)]
fn filter_of(
    args: &FilterArgs,
    default_pattern: i8,
) -> (
    i8,
    Option<String>,
    i8,
    Option<String>,
    Option<String>,
    i8,
    i8,
) {
    let (resource_type, name) = args
        .resource
        .resource()
        .map_or((ANY, None), |(t, n)| (t.code(), Some(n)));
    let pattern = if args.prefixed {
        PREFIXED
    } else {
        match args.pattern.as_deref() {
            Some("literal") => LITERAL,
            Some("prefixed") => PREFIXED,
            Some("match") => MATCH,
            Some(_) => ANY,
            None => default_pattern,
        }
    };
    let permission = if args.allow {
        ALLOW
    } else if args.deny {
        DENY
    } else {
        ANY
    };
    (
        resource_type,
        name,
        pattern,
        args.principal.clone(),
        args.host.clone(),
        args.operation.map_or(ANY, Operation::code),
        permission,
    )
}

fn print_rows(rows: &[AclRow], json: bool, empty: &str) -> Result<(), Error> {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("{empty}");
        return Ok(());
    }
    let mut t = table([
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
        "RESOURCE-TYPE",
        "RESOURCE",
        "PATTERN",
    ]);
    for r in rows {
        t.add_row(vec![
            r.principal.clone(),
            r.host.clone(),
            r.operation.clone(),
            r.permission.clone(),
            r.resource_type.clone(),
            r.resource_name.clone(),
            r.pattern_type.clone(),
        ]);
    }
    print_table(&t);
    Ok(())
}

fn list(client: &mut Client, args: &FilterArgs, json: bool) -> Result<(), Error> {
    let (resource_type, name, pattern, principal, host, operation, permission) =
        filter_of(args, ANY);
    let body = RequestBody::DescribeAcls(DescribeAclsRequest {
        resource_type_filter: resource_type,
        resource_name_filter: name,
        pattern_type_filter: pattern,
        principal_filter: principal,
        host_filter: host,
        operation,
        permission_type: permission,
        ..DescribeAclsRequest::default()
    });
    let response = match client.any()?.send(&body)? {
        ResponseBody::DescribeAcls(r) => r,
        other => return Err(unexpected(ApiKey::DescribeAcls, &other)),
    };
    check(
        response.error_code,
        "DescribeAcls",
        response.error_message.as_deref(),
    )?;
    let rows: Vec<AclRow> = response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(move |a| AclRow {
                resource_type: resource_type_name(r.resource_type),
                resource_name: r.resource_name.clone(),
                pattern_type: pattern_name(r.pattern_type),
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: operation_name(a.operation),
                permission: permission_name(a.permission_type),
            })
        })
        .collect();
    print_rows(&rows, json, "no ACLs match")
}

fn remove(client: &mut Client, args: &FilterArgs, json: bool) -> Result<(), Error> {
    if args.resource.resource().is_none() {
        return Err(
            "name a resource to remove ACLs of: --topic, --group, --cluster or --transactional-id \
             (`*` with --pattern any for every name)"
                .into(),
        );
    }
    let (resource_type, name, pattern, principal, host, operation, permission) =
        filter_of(args, LITERAL);
    let body = RequestBody::DeleteAcls(DeleteAclsRequest {
        filters: vec![DeleteAclsFilter {
            resource_type_filter: resource_type,
            // `*` with the ANY pattern stands for every name.
            resource_name_filter: name.filter(|n| !(n == "*" && pattern == ANY)),
            pattern_type_filter: pattern,
            principal_filter: principal,
            host_filter: host,
            operation,
            permission_type: permission,
            ..DeleteAclsFilter::default()
        }],
        ..DeleteAclsRequest::default()
    });
    let response = match client.any()?.send(&body)? {
        ResponseBody::DeleteAcls(r) => r,
        other => return Err(unexpected(ApiKey::DeleteAcls, &other)),
    };
    let mut rows = Vec::new();
    for f in &response.filter_results {
        check(f.error_code, "DeleteAcls", f.error_message.as_deref())?;
        for a in &f.matching_acls {
            check(a.error_code, "DeleteAcls", a.error_message.as_deref())?;
            rows.push(AclRow {
                resource_type: resource_type_name(a.resource_type),
                resource_name: a.resource_name.clone(),
                pattern_type: pattern_name(a.pattern_type),
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: operation_name(a.operation),
                permission: permission_name(a.permission_type),
            });
        }
    }
    if !json && !rows.is_empty() {
        println!("removed {} ACLs:", rows.len());
    }
    print_rows(&rows, json, "no ACLs matched; nothing removed")
}
