//! The Raft state machine of the metadata quorum: committed entries applied to the
//! [`MetadataImage`], the image published to readers after each batch, and snapshots (the
//! image serialized) built, saved and installed.
//!
//! Files in the quorum's data directory: `snapshot`, two frames (the snapshot metadata, then
//! the image, both JSON), replaced atomically (see [`super::store`]).
//!
//! # Invariants
//! - `SM-1`: a command's response is sent only after the image that contains its effect has
//!   been published, so a proposer that sees its outcome and then reads the image sees the
//!   change.
//! - `SM-2`: a snapshot is durable (fsynced) before openraft learns of it, so the log entries
//!   it covers may be purged right away; a snapshot received from the leader is checked
//!   (`MetadataImage::check_invariants`) before it replaces the image.
//! - `SM-3`: the image's `applied_index` is the index of the last entry applied, on every
//!   node, so equal indexes mean equal images.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::EntryPayload;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::image::{MetadataImage, Outcome};
use super::store::{StoreError, read_file_frames, write_file_atomic};
use super::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

#[derive(Debug)]
struct Applied {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The latest snapshot, as saved in `snapshot`.
    snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
}

/// The metadata state machine (`SM-1..3`).
#[derive(Debug, Clone)]
pub struct StateMachine {
    state: Arc<Mutex<Applied>>,
    publish: Arc<watch::Sender<Arc<MetadataImage>>>,
    path: PathBuf,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn decode_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<MetadataImage, String> {
    let image: MetadataImage =
        serde_json::from_slice(data).map_err(|e| format!("undecodable image: {e}"))?;
    image.check_invariants()?;
    let index = meta.last_log_id.as_ref().map_or(0, |l| l.index());
    if image.applied_index != index {
        return Err(format!(
            "image at index {} in a snapshot of index {index}",
            image.applied_index
        ));
    }
    Ok(image)
}

impl StateMachine {
    /// Opens the state machine of data directory `dir`, restoring the image from its snapshot.
    pub fn open(dir: &Path) -> Result<StateMachine, StoreError> {
        let path = dir.join("snapshot");
        let mut applied = Applied {
            image: Arc::new(MetadataImage::default()),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
        };
        if let Some(frames) = read_file_frames(&path)? {
            let corrupt = |reason: String| StoreError::Corrupt {
                path: path.clone(),
                position: 0,
                reason,
            };
            let [meta, data] = <[Vec<u8>; 2]>::try_from(frames)
                .map_err(|f| corrupt(format!("{} records where two belong", f.len())))?;
            let meta: SnapshotMeta = serde_json::from_slice(&meta)
                .map_err(|e| corrupt(format!("undecodable snapshot metadata: {e}")))?;
            let image = decode_snapshot(&meta, &data).map_err(corrupt)?;
            applied.image = Arc::new(image);
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.snapshot = Some((meta, Arc::new(data)));
        }
        let (publish, _) = watch::channel(Arc::clone(&applied.image));
        Ok(StateMachine {
            state: Arc::new(Mutex::new(applied)),
            publish: Arc::new(publish),
            path,
        })
    }

    /// A receiver of the latest applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.publish.subscribe()
    }

    fn publish(&self) {
        let image = Arc::clone(&self.state.lock().image);
        self.publish.send_replace(image);
    }

    async fn save(&self, meta: &SnapshotMeta, data: Arc<Vec<u8>>) -> io::Result<()> {
        let meta_bytes = serde_json::to_vec(meta).map_err(invalid)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_file_atomic(&path, &[&meta_bytes, &data]))
            .await
            .map_err(|e| io::Error::other(format!("snapshot writer stopped: {e}")))?
            .map_err(io::Error::from)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (image, meta) = {
            let st = self.state.lock();
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
            };
            (Arc::clone(&st.image), meta)
        };
        let data = Arc::new(serde_json::to_vec(&*image).map_err(invalid)?);
        // SM-2: durable before openraft may purge the log behind it.
        self.save(&meta, Arc::clone(&data)).await?;
        tracing::debug!(
            index = image.applied_index,
            bytes = data.len(),
            "metadata snapshot built"
        );
        self.state.lock().snapshot = Some((meta.clone(), Arc::clone(&data)));
        Ok(Snapshot {
            meta,
            snapshot: Vec::clone(&data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let st = self.state.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut responses = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = {
                let mut st = self.state.lock();
                let image = Arc::make_mut(&mut st.image);
                image.applied_index = entry.log_id.index();
                let response = match &entry.payload {
                    EntryPayload::Blank => Ok(Outcome::NoCommand),
                    EntryPayload::Normal(cmd) => image.apply(cmd),
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        Ok(Outcome::NoCommand)
                    }
                };
                st.last_applied = Some(entry.log_id);
                response
            };
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        // SM-1: publish, then answer.
        self.publish();
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let image = decode_snapshot(meta, &snapshot).map_err(invalid)?;
        let data = Arc::new(snapshot);
        self.save(meta, Arc::clone(&data)).await?;
        {
            let mut st = self.state.lock();
            st.image = Arc::new(image);
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.snapshot = Some((meta.clone(), data));
        }
        tracing::info!(index = ?meta.last_log_id, "metadata snapshot installed");
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let st = self.state.lock();
        Ok(st.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Vec::clone(data),
        }))
    }
}
