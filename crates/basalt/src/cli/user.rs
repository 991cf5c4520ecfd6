//! `basalt user create|delete|list`: SCRAM users through the admin APIs
//! (AlterUserScramCredentials, DescribeUserScramCredentials), as `kafka-configs --alter
//! --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users` does.
//!
//! The password never leaves this process: the salt is made here and only the salted password
//! (PBKDF2) is sent, from which the broker keeps StoredKey and ServerKey.

use basalt_protocol::messages::alter_user_scram_credentials_request::{
    AlterUserScramCredentialsRequest, ScramCredentialDeletion, ScramCredentialUpsertion,
};
use basalt_protocol::messages::describe_user_scram_credentials_request::{
    DescribeUserScramCredentialsRequest, UserName,
};
use basalt_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResponse;
use basalt_protocol::{ApiKey, RequestBody, ResponseBody};
use basalt_server::Mechanism;
use basalt_server::scram::{self, MAX_ITERATIONS, MIN_ITERATIONS};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{Client, check, unexpected};
use super::output::{print_json, print_table, table};
use super::{ConnectArgs, Error};

/// `basalt user ...`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user, or set a new password (SCRAM credentials; no restart needed).
    Create {
        /// The user name.
        name: String,
        /// The password.
        #[arg(long, env = "BASALT_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 [default: both].
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<Mechanism>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Delete a user's credentials.
    Delete {
        /// The user name.
        name: String,
        /// Only this mechanism's credential [default: every one the user has].
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<Mechanism>,
    },
    /// List users and their SCRAM mechanisms.
    List,
}

fn parse_mechanism(s: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(&s.to_ascii_uppercase())
        .filter(|m| m.is_scram())
        .ok_or_else(|| format!("{s:?}: use SCRAM-SHA-256 or SCRAM-SHA-512"))
}

/// Runs a `user` subcommand.
pub fn run(args: UserArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    match args.command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
        } => {
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err(format!(
                    "--iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                )
                .into());
            }
            let mechanisms = match mechanism {
                Some(m) => vec![m],
                None => vec![Mechanism::ScramSha256, Mechanism::ScramSha512],
            };
            let upsertions = mechanisms
                .iter()
                .map(|m| {
                    let salt: [u8; 24] = rand::random();
                    ScramCredentialUpsertion {
                        name: name.clone(),
                        mechanism: m.scram_code().unwrap_or(0),
                        iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
                        salt: Bytes::copy_from_slice(&salt),
                        salted_password: Bytes::from(scram::salted_password(
                            *m,
                            password.as_bytes(),
                            &salt,
                            iterations,
                        )),
                        ..Default::default()
                    }
                })
                .collect();
            alter(&mut client, &name, Vec::new(), upsertions)?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            println!("created user {name} ({})", names.join(", "));
            Ok(())
        }
        UserCommand::Delete { name, mechanism } => {
            let mechanisms = match mechanism {
                Some(m) => vec![m],
                None => {
                    let described = describe(&mut client, Some(&name))?;
                    let r = described
                        .results
                        .first()
                        .ok_or("the broker described no user")?;
                    check(
                        r.error_code,
                        &format!("cannot delete user {name:?}"),
                        r.error_message.as_deref(),
                    )?;
                    r.credential_infos
                        .iter()
                        .filter_map(|c| Mechanism::from_scram_code(c.mechanism))
                        .collect()
                }
            };
            let deletions = mechanisms
                .iter()
                .map(|m| ScramCredentialDeletion {
                    name: name.clone(),
                    mechanism: m.scram_code().unwrap_or(0),
                    ..Default::default()
                })
                .collect();
            alter(&mut client, &name, deletions, Vec::new())?;
            println!("deleted user {name}");
            Ok(())
        }
        UserCommand::List => {
            #[derive(Serialize)]
            struct Row {
                user: String,
                mechanism: String,
                iterations: i32,
            }
            let described = describe(&mut client, None)?;
            check(
                described.error_code,
                "cannot list users",
                described.error_message.as_deref(),
            )?;
            let mut rows = Vec::new();
            for r in &described.results {
                for c in &r.credential_infos {
                    rows.push(Row {
                        user: r.user.clone(),
                        mechanism: Mechanism::from_scram_code(c.mechanism).map_or_else(
                            || format!("unknown ({})", c.mechanism),
                            |m| m.name().to_owned(),
                        ),
                        iterations: c.iterations,
                    });
                }
            }
            if args.connect.json {
                return print_json(&rows);
            }
            let mut t = table(["USER", "MECHANISM", "ITERATIONS"]);
            for r in rows {
                t.add_row(vec![r.user, r.mechanism, r.iterations.to_string()]);
            }
            print_table(&t);
            Ok(())
        }
    }
}

fn alter(
    client: &mut Client,
    name: &str,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Result<(), Error> {
    client.metadata(Some(&[]))?;
    let request = AlterUserScramCredentialsRequest {
        deletions,
        upsertions,
        ..Default::default()
    };
    let response = match client
        .controller()?
        .send(&RequestBody::AlterUserScramCredentials(request))?
    {
        ResponseBody::AlterUserScramCredentials(r) => r,
        other => return Err(unexpected(ApiKey::AlterUserScramCredentials, &other)),
    };
    for r in &response.results {
        check(
            r.error_code,
            &format!("cannot change user {name:?}"),
            r.error_message.as_deref(),
        )?;
    }
    Ok(())
}

fn describe(
    client: &mut Client,
    user: Option<&str>,
) -> Result<DescribeUserScramCredentialsResponse, Error> {
    client.metadata(Some(&[]))?;
    let request = DescribeUserScramCredentialsRequest {
        users: user.map(|u| {
            vec![UserName {
                name: u.to_owned(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    match client
        .controller()?
        .send(&RequestBody::DescribeUserScramCredentials(request))?
    {
        ResponseBody::DescribeUserScramCredentials(r) => Ok(r),
        other => Err(unexpected(ApiKey::DescribeUserScramCredentials, &other)),
    }
}
