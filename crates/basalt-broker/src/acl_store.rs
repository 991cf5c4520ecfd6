//! `<data>/acls.json`: the ACL bindings of a broker without a metadata quorum (brokers embedded
//! in tests and tools), loaded at start and rewritten whole before CreateAcls or DeleteAcls
//! answer. With a quorum (every `basalt serve`) the cluster metadata holds the bindings
//! (`CLU-4`) and this file is only read, once, to import the bindings an older node kept here.
//!
//! # Contract
//! - `ACL-6`: the file is replaced atomically (a temporary file, fsync, rename, fsync of the
//!   directory), so after a crash it holds either the old or the new set, never a mix. A
//!   broker with a quorum never writes it.
//!
//! Format (version 1): `{"version":1,"acls":[{"resource_type":"TOPIC","resource_name":"orders",
//! "pattern_type":"LITERAL","principal":"User:alice","host":"*","operation":"READ",
//! "permission":"ALLOW"}]}`, with Kafka's names for the enums.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::acl::AclBinding;

/// The name of the ACL file of a data directory.
pub const FILE_NAME: &str = "acls.json";

/// The version this code writes and reads.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct AclsFile {
    version: u32,
    acls: Vec<AclBinding>,
}

/// The ACL file of a data directory.
#[derive(Debug)]
pub struct AclStore {
    path: PathBuf,
}

impl AclStore {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        AclStore {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// Every stored binding; none if the file does not exist.
    pub fn load(&self) -> std::io::Result<Vec<AclBinding>> {
        let raw = match fs::read(&self.path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let file: AclsFile = serde_json::from_slice(&raw).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", self.path.display()),
            )
        })?;
        if file.version != VERSION {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: version {} is not supported (this build reads {VERSION})",
                    self.path.display(),
                    file.version
                ),
            ));
        }
        Ok(file.acls)
    }

    /// Replaces the stored bindings with `acls` (`ACL-6`).
    pub fn save(&self, acls: &[AclBinding]) -> std::io::Result<()> {
        let file = AclsFile {
            version: VERSION,
            acls: acls.to_vec(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Operation, PatternType, Permission, ResourceType};

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = AclStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let acls = vec![AclBinding {
            resource_type: ResourceType::TransactionalId,
            resource_name: "tx-".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        }];
        store.save(&acls).unwrap();
        assert_eq!(store.load().unwrap(), acls);
        let text = fs::read_to_string(dir.path().join("acls.json")).unwrap();
        assert!(text.contains("\"TRANSACTIONAL_ID\"") && text.contains("\"PREFIXED\""));
        fs::write(dir.path().join("acls.json"), b"{\"version\":7,\"acls\":[]}").unwrap();
        assert!(store.load().is_err());
    }
}
