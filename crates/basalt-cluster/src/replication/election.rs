//! The controller's rules for one partition: its record (leader, leader epoch, ISR, partition
//! epoch), the choice of a new leader when nodes die or return, and the checks an ISR proposal
//! from the leader must pass before it is committed.
//!
//! These are decisions only. The metadata quorum stores [`PartitionLeadership`] and commits the
//! records these functions return; deciding which nodes are live (fenced after missed
//! heartbeats) is the controller's.
//!
//! # Invariants
//! - `REP-8` (see the module docs of `replication`): a clean election picks a live ISR member;
//!   every leader change bumps the leader epoch, every change of the record bumps the partition
//!   epoch; the leader is always in the ISR.
//! - `REP-3` (quorum side): a proposal is committed only if it was made by the current leader in
//!   the current leader epoch from the current partition epoch, so a delayed, repeated or stale
//!   proposal can never overwrite a newer ISR.

use std::collections::BTreeSet;

use super::IsrProposal;

/// A partition's record as the controller keeps it (KRaft's `PartitionRegistration`, the
/// replication part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeadership {
    /// The assignment, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas, in assignment order; never empty.
    pub isr: Vec<i32>,
    /// The leader, `None` when no eligible replica is live (Kafka's -1).
    pub leader: Option<i32>,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of the record (Kafka's partition epoch, the ISR version).
    pub partition_epoch: i32,
}

/// The result of [`elect_leader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elected {
    /// The new leader.
    pub leader: i32,
    /// Whether it came from outside the ISR (committed records may be lost).
    pub unclean: bool,
}

/// Why the controller refuses an ISR proposal (Kafka's AlterPartition errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlterIsrError {
    /// The proposer is not the leader, or its leader epoch is not the current one.
    #[error("FENCED_LEADER_EPOCH: proposal from {leader_id} in epoch {leader_epoch}")]
    FencedLeaderEpoch {
        /// The proposer.
        leader_id: i32,
        /// Its leader epoch.
        leader_epoch: i32,
    },
    /// The proposal was made from another partition epoch than the current one.
    #[error("INVALID_UPDATE_VERSION: proposal from partition epoch {proposed}, current {current}")]
    InvalidUpdateVersion {
        /// The proposal's partition epoch.
        proposed: i32,
        /// The current one.
        current: i32,
    },
    /// The proposed ISR lacks the leader, names a non-replica, or repeats a replica.
    #[error("INVALID_REQUEST: bad ISR proposal")]
    InvalidIsr,
}

/// Chooses a leader: the first replica in assignment order that is in the ISR and live; if
/// none and `unclean_allowed`, the first live replica (Kafka's
/// `unclean.leader.election.enable`, off by default); otherwise `None`.
pub fn elect_leader(
    replicas: &[i32],
    isr: &[i32],
    live_nodes: &BTreeSet<i32>,
    unclean_allowed: bool,
) -> Option<Elected> {
    let clean = replicas
        .iter()
        .find(|r| isr.contains(r) && live_nodes.contains(r));
    if let Some(&leader) = clean {
        return Some(Elected {
            leader,
            unclean: false,
        });
    }
    if !unclean_allowed {
        return None;
    }
    replicas
        .iter()
        .find(|r| live_nodes.contains(r))
        .map(|&leader| Elected {
            leader,
            unclean: true,
        })
}

impl PartitionLeadership {
    /// A new partition: every replica in sync, the first one leading, both epochs 0.
    ///
    /// # Panics
    /// If `replicas` is empty or repeats a replica.
    pub fn new(replicas: Vec<i32>) -> PartitionLeadership {
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        assert!(
            !replicas.is_empty() && distinct.len() == replicas.len(),
            "bad assignment {replicas:?}"
        );
        PartitionLeadership {
            isr: replicas.clone(),
            leader: replicas.first().copied(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// The record after the live nodes became `live_nodes`, or `None` if nothing changes.
    /// KRaft's rules: dead replicas leave the ISR, except that the ISR never becomes empty (its
    /// last members stay, so one of them can lead again when it returns); a dead or missing
    /// leader is replaced by [`elect_leader`], or by no leader; an unclean leader's ISR is just
    /// itself. `REP-8`: a leader change bumps the leader epoch, any change the partition epoch.
    pub fn on_live_nodes(
        &self,
        live_nodes: &BTreeSet<i32>,
        unclean_allowed: bool,
    ) -> Option<PartitionLeadership> {
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| live_nodes.contains(r))
            .collect();
        if isr.is_empty() {
            isr = self.isr.clone();
        }
        let leader_live = self
            .leader
            .is_some_and(|l| live_nodes.contains(&l) && isr.contains(&l));
        let mut next = self.clone();
        if leader_live {
            next.isr = isr;
        } else {
            match elect_leader(&self.replicas, &isr, live_nodes, unclean_allowed) {
                Some(e) => {
                    next.leader = Some(e.leader);
                    next.isr = if e.unclean { vec![e.leader] } else { isr };
                }
                None => {
                    next.leader = None;
                    next.isr = isr;
                }
            }
            if next.leader != self.leader {
                next.leader_epoch += 1;
            }
        }
        if next == *self {
            return None;
        }
        next.partition_epoch += 1;
        Some(next)
    }

    /// The record after committing `proposal`, or why it is refused (`REP-3`).
    pub fn alter_isr(&self, proposal: &IsrProposal) -> Result<PartitionLeadership, AlterIsrError> {
        if self.leader != Some(proposal.leader_id) || proposal.leader_epoch != self.leader_epoch {
            return Err(AlterIsrError::FencedLeaderEpoch {
                leader_id: proposal.leader_id,
                leader_epoch: proposal.leader_epoch,
            });
        }
        if proposal.partition_epoch != self.partition_epoch {
            return Err(AlterIsrError::InvalidUpdateVersion {
                proposed: proposal.partition_epoch,
                current: self.partition_epoch,
            });
        }
        let distinct: BTreeSet<i32> = proposal.isr.iter().copied().collect();
        if distinct.len() != proposal.isr.len()
            || !distinct.contains(&proposal.leader_id)
            || distinct.iter().any(|r| !self.replicas.contains(r))
        {
            return Err(AlterIsrError::InvalidIsr);
        }
        let mut next = self.clone();
        next.isr = self
            .replicas
            .iter()
            .copied()
            .filter(|r| distinct.contains(r))
            .collect();
        next.partition_epoch += 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(nodes: &[i32]) -> BTreeSet<i32> {
        nodes.iter().copied().collect()
    }

    #[test]
    fn elects_the_first_live_isr_member_in_assignment_order() {
        let r = [3, 1, 2];
        assert_eq!(
            elect_leader(&r, &[1, 2, 3], &live(&[1, 2, 3]), false),
            Some(Elected {
                leader: 3,
                unclean: false
            })
        );
        assert_eq!(
            elect_leader(&r, &[1, 2], &live(&[1, 2, 3]), false).map(|e| e.leader),
            Some(1)
        );
        assert_eq!(
            elect_leader(&r, &[1, 2], &live(&[2, 3]), false).map(|e| e.leader),
            Some(2)
        );
    }

    #[test]
    fn unclean_election_is_off_unless_allowed() {
        let r = [1, 2, 3];
        assert_eq!(elect_leader(&r, &[1], &live(&[2, 3]), false), None);
        assert_eq!(
            elect_leader(&r, &[1], &live(&[3, 2]), true),
            Some(Elected {
                leader: 2,
                unclean: true
            })
        );
        assert_eq!(elect_leader(&r, &[1], &live(&[]), true), None);
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_with_both_epochs_bumped() {
        let p = PartitionLeadership::new(vec![1, 2, 3]);
        let next = p.on_live_nodes(&live(&[2, 3]), false).unwrap();
        assert_eq!(next.leader, Some(2));
        assert_eq!(next.isr, [2, 3]);
        assert_eq!((next.leader_epoch, next.partition_epoch), (1, 1));
        assert_eq!(next.on_live_nodes(&live(&[2, 3]), false), None, "no change");
    }

    #[test]
    fn a_dead_follower_leaves_the_isr_without_a_leader_epoch_bump() {
        let p = PartitionLeadership::new(vec![1, 2, 3]);
        let next = p.on_live_nodes(&live(&[1, 2]), false).unwrap();
        assert_eq!(next.leader, Some(1));
        assert_eq!(next.isr, [1, 2]);
        assert_eq!((next.leader_epoch, next.partition_epoch), (0, 1));
    }

    #[test]
    fn the_last_isr_members_stay_and_lead_again_when_they_return() {
        let mut p = PartitionLeadership::new(vec![1, 2, 3]);
        p.isr = vec![1];
        let none = p.on_live_nodes(&live(&[2, 3]), false).unwrap();
        assert_eq!(none.leader, None);
        assert_eq!(none.isr, [1]);
        assert_eq!((none.leader_epoch, none.partition_epoch), (1, 1));
        assert_eq!(none.on_live_nodes(&live(&[2, 3]), false), None);
        let back = none.on_live_nodes(&live(&[1, 2, 3]), false).unwrap();
        assert_eq!(back.leader, Some(1));
        assert_eq!((back.leader_epoch, back.partition_epoch), (2, 2));
    }

    #[test]
    fn an_unclean_leader_is_alone_in_the_isr() {
        let mut p = PartitionLeadership::new(vec![1, 2, 3]);
        p.isr = vec![1];
        let next = p.on_live_nodes(&live(&[3]), true).unwrap();
        assert_eq!(next.leader, Some(3));
        assert_eq!(next.isr, [3]);
        assert_eq!(next.leader_epoch, 1);
    }

    fn proposal(p: &PartitionLeadership, isr: &[i32]) -> IsrProposal {
        IsrProposal {
            leader_id: p.leader.unwrap(),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn a_current_proposal_is_committed_with_a_new_partition_epoch() {
        let p = PartitionLeadership::new(vec![1, 2, 3]);
        let next = p.alter_isr(&proposal(&p, &[3, 1])).unwrap();
        assert_eq!(next.isr, [1, 3], "assignment order");
        assert_eq!((next.leader_epoch, next.partition_epoch), (0, 1));
    }

    #[test]
    fn stale_or_malformed_proposals_are_refused() {
        let p = PartitionLeadership::new(vec![1, 2, 3]);
        let old = proposal(&p, &[1, 2]);
        let p2 = p.alter_isr(&old).unwrap();
        assert_eq!(
            p2.alter_isr(&old),
            Err(AlterIsrError::InvalidUpdateVersion {
                proposed: 0,
                current: 1
            }),
            "a repeated proposal"
        );
        let mut other = proposal(&p2, &[1, 2]);
        other.leader_id = 2;
        assert!(matches!(
            p2.alter_isr(&other),
            Err(AlterIsrError::FencedLeaderEpoch { .. })
        ));
        let mut older = proposal(&p2, &[1, 2]);
        older.leader_epoch = -1;
        assert!(matches!(
            p2.alter_isr(&older),
            Err(AlterIsrError::FencedLeaderEpoch { .. })
        ));
        for isr in [&[2, 3][..], &[1, 4], &[1, 1], &[]] {
            assert_eq!(
                p2.alter_isr(&proposal(&p2, isr)),
                Err(AlterIsrError::InvalidIsr),
                "{isr:?}"
            );
        }
    }
}
