//! SCRAM credentials of users, persisted in `<data>/credentials.json`; the store SASL logins are
//! checked against and DescribeUserScramCredentials / AlterUserScramCredentials manage.
//!
//! The file holds, per user and mechanism, the salt, the iteration count, StoredKey and
//! ServerKey (base64), never a password:
//! `{"version":1,"users":{"alice":{"SCRAM-SHA-512":{"salt":"..","iterations":4096,
//! "stored_key":"..","server_key":".."}}}}`.
//!
//! # Invariants
//! - `CRED-1`: the file is replaced atomically (temporary file, fsync, rename, directory fsync)
//!   before a change is answered or used by a login; a failed write leaves memory unchanged.
//! - `CRED-2`: changes are serialised; logins read a snapshot and never wait for a write.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use basalt_server::scram::{MAX_ITERATIONS, MIN_ITERATIONS};
use basalt_server::{CredentialSource, Mechanism, ScramCredential};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

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

type Users = BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>;

/// The users' SCRAM credentials.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
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

impl CredentialStore {
    /// Opens (or starts empty) the store of `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("credentials.json");
        let users = match fs::read(&path) {
            Ok(raw) => decode(&raw).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::new(),
            Err(e) => return Err(e),
        };
        Ok(CredentialStore {
            path,
            users: RwLock::new(Arc::new(users)),
            write: Mutex::new(()),
        })
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

    /// Applies `changes` in order and persists them (`CRED-1`). Each change is checked first:
    /// the returned list has, per change, `None` or why it was refused (refused ones are skipped).
    pub fn apply(&self, changes: Vec<CredentialChange>) -> std::io::Result<Vec<Option<String>>> {
        let _guard = self.write.lock();
        let mut users: Users = (**self.users.read()).clone();
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            outcomes.push(match change {
                CredentialChange::Upsert {
                    user,
                    mechanism,
                    credential,
                } => {
                    if user.is_empty() {
                        Some("the user name is empty".to_owned())
                    } else if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&credential.iterations) {
                        Some(format!(
                            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                        ))
                    } else {
                        users.entry(user).or_default().insert(mechanism, credential);
                        None
                    }
                }
                CredentialChange::Delete { user, mechanism } => {
                    let removed = users
                        .get_mut(&user)
                        .and_then(|m| m.remove(&mechanism))
                        .is_some();
                    if users.get(&user).is_some_and(BTreeMap::is_empty) {
                        users.remove(&user);
                    }
                    (!removed).then(|| {
                        format!(
                            "attempt to delete a user credential that does not exist: {user} {}",
                            mechanism.name()
                        )
                    })
                }
            });
        }
        if outcomes.iter().any(Option::is_none) {
            self.save(&users)?;
            *self.users.write() = Arc::new(users);
        }
        Ok(outcomes)
    }

    /// Creates SCRAM-SHA-256 and SCRAM-SHA-512 credentials for `user` with `password` unless the
    /// user exists already (the bootstrap user); returns whether it created them.
    pub fn ensure_user(&self, user: &str, password: &str) -> std::io::Result<bool> {
        if self.users.read().contains_key(user) {
            return Ok(false);
        }
        let changes = [Mechanism::ScramSha256, Mechanism::ScramSha512]
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
            .collect();
        let outcomes = self.apply(changes)?;
        Ok(outcomes.iter().all(Option::is_none))
    }

    fn save(&self, users: &Users) -> std::io::Result<()> {
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
        let tmp = self.path.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&raw)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
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
        assert!(outcomes[0].is_none());
        assert!(outcomes[1].is_some() && outcomes[2].is_some());
        assert_eq!(
            CredentialStore::open(dir.path()).unwrap().describe()["admin"],
            vec![(Mechanism::ScramSha512, 8192)]
        );
    }
}
