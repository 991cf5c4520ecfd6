//! Users' SCRAM credentials: the store SASL logins are checked against and
//! DescribeUserScramCredentials / AlterUserScramCredentials manage.
//!
//! A credential is, per user and mechanism, the salt, the iteration count, StoredKey and
//! ServerKey, never a password. Where they are kept depends on how the broker runs:
//! - with a metadata quorum (every `basalt serve`, a single node included), the cluster
//!   metadata holds them ([`basalt_cluster::metadata::ScramRecord`]) and this store is this
//!   node's copy of them, replaced whole by [`CredentialStore::replace_from_image`] whenever
//!   the image changes; changes are proposed to the quorum by the broker, never made here;
//! - without one (brokers embedded in tests and tools), in `<data>/credentials.json`:
//!   `{"version":1,"users":{"alice":{"SCRAM-SHA-512":{"salt":"..","iterations":4096,
//!   "stored_key":"..","server_key":".."}}}}` (base64). A node that joins a quorum with such a
//!   file imports it into the metadata once ([`read_file`], `cluster.rs`).
//!
//! # Invariants
//! - `CRED-1`: without a quorum, the file is replaced atomically (temporary file, fsync,
//!   rename, directory fsync) before a change is answered or used by a login, and a failed
//!   write leaves memory unchanged; with a quorum, a change is answered only once the image of
//!   this node shows it and this store was replaced from that image (`CLU-3`), and no file is
//!   written.
//! - `CRED-2`: changes are serialised; logins read a snapshot and never wait for a write.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use basalt_cluster::metadata::ScramRecord;
use basalt_protocol::ErrorCode;
use basalt_server::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use basalt_server::{CredentialSource, Mechanism, ScramCredential};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::TopicError;

/// The name of the credentials file of a data directory.
pub const FILE_NAME: &str = "credentials.json";

#[derive(Debug, Serialize, Deserialize, Clone)]
struct StoredCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct CredentialsFile {
    version: u32,
    users: BTreeMap<String, BTreeMap<String, StoredCredential>>,
}

/// Every user's credentials, by mechanism.
pub type Users = BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>;

/// The users' SCRAM credentials.
#[derive(Debug)]
pub struct CredentialStore {
    /// `credentials.json`, for a store without a quorum; `None` when the cluster metadata
    /// holds the credentials.
    path: Option<PathBuf>,
    users: RwLock<Arc<Users>>,
    /// Serialises changes (`CRED-2`).
    write: Mutex<()>,
}

/// One change of an AlterUserScramCredentials request.
#[derive(Debug, Clone)]
pub enum CredentialChange {
    /// Set the credential of `user` for `mechanism`.
    Upsert {
        /// The user.
        user: String,
        /// A SCRAM mechanism.
        mechanism: Mechanism,
        /// The credential.
        credential: ScramCredential,
    },
    /// Remove the credential of `user` for `mechanism`.
    Delete {
        /// The user.
        user: String,
        /// A SCRAM mechanism.
        mechanism: Mechanism,
    },
}

impl CredentialChange {
    /// The user the change is for.
    pub fn user(&self) -> &str {
        match self {
            CredentialChange::Upsert { user, .. } | CredentialChange::Delete { user, .. } => user,
        }
    }

    /// Checks the change against `users` as Kafka does: UNACCEPTABLE_CREDENTIAL for an empty
    /// name, a non-SCRAM mechanism or iterations out of range, RESOURCE_NOT_FOUND for deleting
    /// a credential that does not exist.
    pub fn check(&self, users: &Users) -> Result<(), TopicError> {
        match self {
            CredentialChange::Upsert {
                user,
                mechanism,
                credential,
            } => {
                let unacceptable =
                    |m: String| Err(TopicError::new(ErrorCode::UnacceptableCredential, m));
                if user.is_empty() {
                    unacceptable("the user name is empty".to_owned())
                } else if !mechanism.is_scram() {
                    unacceptable(format!("{} is not a SCRAM mechanism", mechanism.name()))
                } else if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&credential.iterations) {
                    unacceptable(format!(
                        "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                    ))
                } else {
                    Ok(())
                }
            }
            CredentialChange::Delete { user, mechanism } => {
                if users.get(user).is_some_and(|m| m.contains_key(mechanism)) {
                    Ok(())
                } else {
                    Err(TopicError::new(
                        ErrorCode::ResourceNotFound,
                        format!(
                            "attempt to delete a user credential that does not exist: {user} {}",
                            mechanism.name()
                        ),
                    ))
                }
            }
        }
    }

    /// Applies the change to `users` (checked before).
    fn apply_to(self, users: &mut Users) {
        match self {
            CredentialChange::Upsert {
                user,
                mechanism,
                credential,
            } => {
                users.entry(user).or_default().insert(mechanism, credential);
            }
            CredentialChange::Delete { user, mechanism } => {
                if let Some(m) = users.get_mut(&user) {
                    m.remove(&mechanism);
                    if m.is_empty() {
                        users.remove(&user);
                    }
                }
            }
        }
    }
}

/// SCRAM-SHA-256 and SCRAM-SHA-512 credentials for `user` with `password`, with fresh salts
/// (the bootstrap user).
pub fn password_changes(user: &str, password: &str) -> Vec<CredentialChange> {
    [Mechanism::ScramSha256, Mechanism::ScramSha512]
        .into_iter()
        .map(|mechanism| {
            let salt: [u8; 24] = rand::random();
            CredentialChange::Upsert {
                user: user.to_owned(),
                mechanism,
                credential: ScramCredential::derive(
                    mechanism,
                    password.as_bytes(),
                    &salt,
                    MIN_ITERATIONS * 2,
                ),
            }
        })
        .collect()
}

/// The credential as the cluster metadata holds it.
pub fn to_record(credential: &ScramCredential) -> ScramRecord {
    ScramRecord {
        salt: credential.salt.clone(),
        iterations: credential.iterations,
        stored_key: credential.stored_key.clone(),
        server_key: credential.server_key.clone(),
    }
}

/// The credentials in `<data_dir>/credentials.json`; `None` if there is no such file.
pub fn read_file(data_dir: &Path) -> std::io::Result<Option<Users>> {
    let path = data_dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(raw) => decode(&raw).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl CredentialStore {
    /// Opens (or starts empty) the store of `data_dir`, kept in its `credentials.json`: the
    /// store of a broker without a metadata quorum.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let users = read_file(data_dir)?.unwrap_or_default();
        Ok(CredentialStore {
            path: Some(data_dir.join(FILE_NAME)),
            users: RwLock::new(Arc::new(users)),
            write: Mutex::new(()),
        })
    }

    /// An empty store that follows the cluster metadata ([`Self::replace_from_image`]).
    pub fn replicated() -> Self {
        CredentialStore {
            path: None,
            users: RwLock::new(Arc::new(Users::new())),
            write: Mutex::new(()),
        }
    }

    /// Whether the credentials are this store's own (a file), not the cluster metadata's.
    pub fn is_local(&self) -> bool {
        self.path.is_some()
    }

    /// Every user and credential as of now (a snapshot, `CRED-2`).
    pub fn snapshot(&self) -> Arc<Users> {
        Arc::clone(&self.users.read())
    }

    /// Every user with the iterations of each of their mechanisms.
    pub fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, u32)>> {
        self.users
            .read()
            .iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter().map(|(m, c)| (*m, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Replaces every credential with those of the cluster metadata (`users`, by user and
    /// mechanism name); records that name no SCRAM mechanism are skipped with a warning.
    /// Returns whether anything changed.
    pub fn replace_from_image(
        &self,
        users: &BTreeMap<String, BTreeMap<String, ScramRecord>>,
    ) -> bool {
        let _guard = self.write.lock();
        let mut next = Users::new();
        for (user, mechanisms) in users {
            for (name, r) in mechanisms {
                let Some(mechanism) = Mechanism::from_name(name).filter(|m| m.is_scram()) else {
                    tracing::warn!(%user, mechanism = %name, "skipping a credential of an unknown mechanism");
                    continue;
                };
                next.entry(user.clone()).or_default().insert(
                    mechanism,
                    ScramCredential {
                        salt: r.salt.clone(),
                        iterations: r.iterations,
                        stored_key: r.stored_key.clone(),
                        server_key: r.server_key.clone(),
                    },
                );
            }
        }
        if **self.users.read() == next {
            return false;
        }
        *self.users.write() = Arc::new(next);
        true
    }

    /// Applies `changes` in order and persists them (`CRED-1`), for a store kept in a file.
    /// Each change is checked first: the returned list has, per change, whether it was applied
    /// or why it was refused (refused ones are skipped). A store that follows the cluster
    /// metadata refuses every change: they go through the quorum (`Broker::alter_credentials`).
    pub fn apply(
        &self,
        changes: Vec<CredentialChange>,
    ) -> std::io::Result<Vec<Result<(), TopicError>>> {
        let Some(path) = &self.path else {
            return Err(std::io::Error::other(
                "credentials are changed through the cluster metadata",
            ));
        };
        let _guard = self.write.lock();
        let mut users: Users = (**self.users.read()).clone();
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            let checked = change.check(&users);
            if checked.is_ok() {
                change.apply_to(&mut users);
            }
            outcomes.push(checked);
        }
        if outcomes.iter().any(Result::is_ok) {
            save(path, &users)?;
            *self.users.write() = Arc::new(users);
        }
        Ok(outcomes)
    }

    /// Creates SCRAM-SHA-256 and SCRAM-SHA-512 credentials for `user` with `password` unless the
    /// user exists already (the bootstrap user), in a store kept in a file; returns whether it
    /// created them.
    pub fn ensure_user(&self, user: &str, password: &str) -> std::io::Result<bool> {
        if self.users.read().contains_key(user) {
            return Ok(false);
        }
        let outcomes = self.apply(password_changes(user, password))?;
        Ok(outcomes.iter().all(Result::is_ok))
    }
}

fn save(path: &Path, users: &Users) -> std::io::Result<()> {
    let file = CredentialsFile {
        version: 1,
        users: users
            .iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter()
                        .map(|(m, c)| {
                            (
                                m.name().to_owned(),
                                StoredCredential {
                                    salt: B64.encode(&c.salt),
                                    iterations: c.iterations,
                                    stored_key: B64.encode(&c.stored_key),
                                    server_key: B64.encode(&c.server_key),
                                },
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
    };
    let raw = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&raw)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn decode(raw: &[u8]) -> Result<Users, String> {
    let file: CredentialsFile = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("unknown version {}", file.version));
    }
    let mut users = Users::new();
    for (user, mechanisms) in file.users {
        let mut m = BTreeMap::new();
        for (name, c) in mechanisms {
            let mechanism = Mechanism::from_name(&name)
                .filter(|m| m.is_scram())
                .ok_or_else(|| format!("user {user}: unknown mechanism {name}"))?;
            let field = |v: &str, what: &str| {
                B64.decode(v)
                    .map_err(|e| format!("user {user} {name}: {what}: {e}"))
            };
            m.insert(
                mechanism,
                ScramCredential {
                    salt: field(&c.salt, "salt")?,
                    iterations: c.iterations,
                    stored_key: field(&c.stored_key, "stored_key")?,
                    server_key: field(&c.server_key, "server_key")?,
                },
            );
        }
        users.insert(user, m);
    }
    Ok(users)
}

impl CredentialSource for CredentialStore {
    fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.users.read().get(user)?.get(&mechanism).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_persist_without_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        assert!(store.ensure_user("admin", "hunter2-secret").unwrap());
        assert!(!store.ensure_user("admin", "other").unwrap());
        let raw = fs::read_to_string(dir.path().join("credentials.json")).unwrap();
        assert!(!raw.contains("hunter2-secret"));
        let reopened = CredentialStore::open(dir.path()).unwrap();
        let c = reopened
            .scram_credential("admin", Mechanism::ScramSha512)
            .unwrap();
        assert!(c.verify_password(Mechanism::ScramSha512, b"hunter2-secret"));
        assert_eq!(
            reopened.describe()["admin"],
            vec![
                (Mechanism::ScramSha256, 8192),
                (Mechanism::ScramSha512, 8192)
            ]
        );
        let outcomes = reopened
            .apply(vec![
                CredentialChange::Delete {
                    user: "admin".into(),
                    mechanism: Mechanism::ScramSha256,
                },
                CredentialChange::Delete {
                    user: "nobody".into(),
                    mechanism: Mechanism::ScramSha256,
                },
                CredentialChange::Upsert {
                    user: "weak".into(),
                    mechanism: Mechanism::ScramSha256,
                    credential: ScramCredential {
                        iterations: 10,
                        ..c
                    },
                },
            ])
            .unwrap();
        assert!(outcomes[0].is_ok());
        assert_eq!(
            outcomes[1].as_ref().map_err(|e| e.code),
            Err(ErrorCode::ResourceNotFound)
        );
        assert_eq!(
            outcomes[2].as_ref().map_err(|e| e.code),
            Err(ErrorCode::UnacceptableCredential)
        );
        assert_eq!(
            CredentialStore::open(dir.path()).unwrap().describe()["admin"],
            vec![(Mechanism::ScramSha512, 8192)]
        );
    }

    #[test]
    fn a_replicated_store_follows_the_image_and_refuses_local_changes() {
        let store = CredentialStore::replicated();
        assert!(!store.is_local());
        let c = ScramCredential::derive(Mechanism::ScramSha256, b"pw", b"salty-salt", 4096);
        let mut image = BTreeMap::new();
        image.insert(
            "alice".to_owned(),
            BTreeMap::from([
                ("SCRAM-SHA-256".to_owned(), to_record(&c)),
                ("PLAIN".to_owned(), to_record(&c)),
            ]),
        );
        assert!(store.replace_from_image(&image));
        assert!(!store.replace_from_image(&image), "nothing changed");
        let got = store
            .scram_credential("alice", Mechanism::ScramSha256)
            .unwrap();
        assert!(got.verify_password(Mechanism::ScramSha256, b"pw"));
        assert_eq!(
            store.describe()["alice"],
            vec![(Mechanism::ScramSha256, 4096)]
        );
        assert!(store.apply(password_changes("bob", "pw")).is_err());
        assert!(store.replace_from_image(&BTreeMap::new()));
        assert!(store.describe().is_empty());
    }

    #[test]
    fn the_file_is_read_for_import() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_file(dir.path()).unwrap().is_none());
        CredentialStore::open(dir.path())
            .unwrap()
            .ensure_user("admin", "secret")
            .unwrap();
        let users = read_file(dir.path()).unwrap().unwrap();
        assert_eq!(users["admin"].len(), 2);
        fs::write(dir.path().join(FILE_NAME), b"{\"version\":9,\"users\":{}}").unwrap();
        assert!(read_file(dir.path()).is_err());
    }
}
