//! The background disk thread: group commit for `always`, periodic syncs for `interval`.
//!
//! Appends under [`FsyncPolicy::Always`](crate::FsyncPolicy::Always) send a sync request and hand
//! their caller a [`SyncTicket`]. The thread takes every request that has arrived, merges requests
//! for the same segment file into one `fdatasync`, runs the syncs of different files in parallel,
//! and completes the tickets. Requests arriving while a round runs form the next round: that is
//! the group commit, across partitions and connections.
//!
//! # Invariants
//! - `SYNC-1`: a ticket completes with `Ok` only after an `fdatasync` that began after its bytes
//!   were written has returned successfully.
//! - `SYNC-2`: a failed `fdatasync` poisons its log and fails every ticket of that round for it;
//!   it is never retried (the kernel may have dropped the dirty pages).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::log::Log;
use crate::segment::Segment;

/// Files synced in parallel in one round, at most.
const PARALLEL_SYNCS_MAX: usize = 16;

pub(crate) enum FlushMsg {
    Sync {
        log: Arc<Log>,
        segment: Arc<Segment>,
        end_offset: i64,
        reply: oneshot::Sender<Result<()>>,
    },
    Dirty {
        log: Weak<Log>,
        interval_ms: u64,
    },
    Shutdown,
}

/// Completes when an append is durable under its log's fsync policy.
///
/// Wait for it with [`SyncTicket::wait`] on a plain thread, or `.await` it in async code.
#[derive(Debug)]
#[must_use = "an append is not durable until its ticket completes"]
pub struct SyncTicket {
    pending: Option<oneshot::Receiver<Result<()>>>,
}

impl SyncTicket {
    pub(crate) fn ready() -> Self {
        SyncTicket { pending: None }
    }

    pub(crate) fn pending(
        log: Arc<Log>,
        segment: Arc<Segment>,
        end_offset: i64,
    ) -> (Self, FlushMsg) {
        let (reply, rx) = oneshot::channel();
        let msg = FlushMsg::Sync {
            log,
            segment,
            end_offset,
            reply,
        };
        (SyncTicket { pending: Some(rx) }, msg)
    }

    /// Whether the append needed no sync (policy `os` or `interval`).
    pub fn is_immediate(&self) -> bool {
        self.pending.is_none()
    }

    /// Blocks until the append is durable. Must not be called from inside an async runtime.
    pub fn wait(self) -> Result<()> {
        match self.pending {
            None => Ok(()),
            Some(rx) => rx.blocking_recv().unwrap_or_else(|_| Err(closed())),
        }
    }
}

impl Future for SyncTicket {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.pending.as_mut() {
            None => Poll::Ready(Ok(())),
            Some(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(closed()))),
        }
    }
}

fn closed() -> StorageError {
    StorageError::Closed {
        name: "storage".into(),
    }
}

struct Group {
    log: Arc<Log>,
    segment: Arc<Segment>,
    end_offset: i64,
    replies: Vec<oneshot::Sender<Result<()>>>,
}

/// The thread's loop; returns after a `Shutdown` message or when every sender is gone.
pub(crate) fn run(rx: Receiver<FlushMsg>) {
    let mut dirty: Vec<(Weak<Log>, Instant)> = Vec::new();
    loop {
        let next_due = dirty.iter().map(|(_, due)| *due).min();
        let first = match next_due {
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(msg) => Some(msg),
                Err(_) => return,
            },
        };
        let mut groups: HashMap<*const Segment, Group> = HashMap::new();
        let mut shutdown = false;
        for msg in first.into_iter().chain(rx.try_iter()) {
            match msg {
                FlushMsg::Sync {
                    log,
                    segment,
                    end_offset,
                    reply,
                } => {
                    let group = groups
                        .entry(Arc::as_ptr(&segment))
                        .or_insert_with(|| Group {
                            log,
                            segment,
                            end_offset,
                            replies: Vec::new(),
                        });
                    group.end_offset = group.end_offset.max(end_offset);
                    group.replies.push(reply);
                }
                FlushMsg::Dirty { log, interval_ms } => {
                    dirty.push((log, Instant::now() + Duration::from_millis(interval_ms)));
                }
                FlushMsg::Shutdown => shutdown = true,
            }
        }
        commit(groups.into_values().collect());

        let now = Instant::now();
        dirty.retain(|(log, due)| {
            if *due > now {
                return true;
            }
            if let Some(log) = log.upgrade()
                && log.clear_dirty()
                && let Err(err) = log.flush()
            {
                tracing::error!(log = %log.name(), error = %err, "interval sync failed");
            }
            false
        });
        if shutdown {
            return;
        }
    }
}

/// Syncs each group's file, in parallel when there are several, and answers the tickets.
fn commit(groups: Vec<Group>) {
    if groups.len() <= 1 {
        groups.into_iter().for_each(sync_group);
        return;
    }
    let mut groups = groups;
    while !groups.is_empty() {
        let take = groups.len().min(PARALLEL_SYNCS_MAX);
        let round: Vec<Group> = groups.drain(..take).collect();
        std::thread::scope(|scope| {
            for group in round {
                scope.spawn(move || sync_group(group));
            }
        });
    }
}

fn sync_group(group: Group) {
    let result = group.log.sync_segment(&group.segment, group.end_offset);
    let ok = result.is_ok();
    for reply in group.replies {
        let answer = if ok {
            Ok(())
        } else {
            Err(StorageError::Poisoned {
                name: group.log.name().to_owned(),
            })
        };
        let _ = reply.send(answer);
    }
}
