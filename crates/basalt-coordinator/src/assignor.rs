//! Server-side assignors of KIP-848 consumer groups: `uniform` (balanced and sticky) and
//! `range` (contiguous ranges of each topic, as the client-side range assignor makes them).
//!
//! Both are deterministic: the same members, subscriptions, topics and previous assignment give
//! the same result.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic id.
pub type Assignment = BTreeMap<[u8; 16], BTreeSet<i32>>;

/// The assignors this broker offers, the default first.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor works from.
#[derive(Debug)]
pub struct AssignmentSpec<'a> {
    /// Each member's subscribed topic names.
    pub members: &'a BTreeMap<String, BTreeSet<String>>,
    /// Subscribed topics with their id and partition count.
    pub topics: &'a BTreeMap<String, ([u8; 16], i32)>,
    /// The previous target assignment, for stickiness.
    pub previous: &'a BTreeMap<String, Assignment>,
}

/// Runs the assignor `name` (`uniform` when unknown or absent).
pub fn assign(name: Option<&str>, spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    match name {
        Some("range") => range(spec),
        _ => uniform(spec),
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Balanced and sticky: every partition goes to a subscribed member; a partition stays with its
/// previous owner while that owner is under its share; the rest go to the least-loaded subscribed
/// member (ties by member id).
pub fn uniform(spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    let mut all: Vec<(String, [u8; 16], i32)> = Vec::new();
    for (name, (id, n)) in spec.topics {
        if spec.members.values().any(|s| s.contains(name)) {
            for p in 0..*n {
                all.push((name.clone(), *id, p));
            }
        }
    }
    if spec.members.is_empty() {
        return out;
    }
    let share = all.len().div_ceil(spec.members.len()).max(1);
    let mut unassigned = Vec::new();
    for (name, id, p) in &all {
        let keeper = spec.previous.iter().find(|(m, a)| {
            a.get(id).is_some_and(|s| s.contains(p))
                && spec.members.get(*m).is_some_and(|s| s.contains(name))
        });
        match keeper {
            Some((m, _)) if out.get(m).map_or(0, count) < share => {
                out.entry(m.clone())
                    .or_default()
                    .entry(*id)
                    .or_default()
                    .insert(*p);
            }
            _ => unassigned.push((name.clone(), *id, *p)),
        }
    }
    for (name, id, p) in unassigned {
        let best = spec
            .members
            .iter()
            .filter(|(_, s)| s.contains(&name))
            .map(|(m, _)| (out.get(m).map_or(0, count), m.clone()))
            .min();
        if let Some((_, m)) = best {
            out.entry(m).or_default().entry(id).or_default().insert(p);
        }
    }
    out
}

/// For each topic, its subscribers sorted by member id get contiguous ranges; the first
/// `partitions % members` get one more.
pub fn range(spec: &AssignmentSpec<'_>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (name, (id, n)) in spec.topics {
        let subscribers: Vec<&String> = spec
            .members
            .iter()
            .filter(|(_, s)| s.contains(name))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = usize::try_from(*n).unwrap_or(0);
        let each = n / subscribers.len();
        let extra = n % subscribers.len();
        let mut next = 0usize;
        for (i, m) in subscribers.iter().enumerate() {
            let take = each + usize::from(i < extra);
            let set: BTreeSet<i32> = (next..next + take)
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
            next += take;
            if !set.is_empty() {
                out.entry((*m).clone()).or_default().insert(*id, set);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Members = BTreeMap<String, BTreeSet<String>>;
    type Topics = BTreeMap<String, ([u8; 16], i32)>;

    fn spec_parts(members: &[(&str, &[&str])], topics: &[(&str, u8, i32)]) -> (Members, Topics) {
        let m = members
            .iter()
            .map(|(id, ts)| {
                (
                    (*id).to_owned(),
                    ts.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect();
        let t = topics
            .iter()
            .map(|(n, id, p)| ((*n).to_owned(), ([*id; 16], *p)))
            .collect();
        (m, t)
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let (m, t) = spec_parts(&[("a", &["t"]), ("b", &["t"])], &[("t", 1, 4)]);
        let prev = BTreeMap::new();
        let first = uniform(&AssignmentSpec {
            members: &m,
            topics: &t,
            previous: &prev,
        });
        assert_eq!(count(&first["a"]), 2);
        assert_eq!(count(&first["b"]), 2);
        let (m3, _) = spec_parts(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])], &[]);
        let second = uniform(&AssignmentSpec {
            members: &m3,
            topics: &t,
            previous: &first,
        });
        let total: usize = second.values().map(count).sum();
        assert_eq!(total, 4);
        // a and b keep what they had, up to their share of 2.
        for who in ["a", "b"] {
            let kept = &second[who];
            assert!(
                kept.values()
                    .flatten()
                    .all(|p| first[who].values().flatten().any(|q| q == p))
            );
        }
    }

    #[test]
    fn range_matches_client_range() {
        let (m, t) = spec_parts(&[("a", &["t"]), ("b", &["t"])], &[("t", 1, 3)]);
        let prev = BTreeMap::new();
        let out = range(&AssignmentSpec {
            members: &m,
            topics: &t,
            previous: &prev,
        });
        assert_eq!(out["a"][&[1; 16]], BTreeSet::from([0, 1]));
        assert_eq!(out["b"][&[1; 16]], BTreeSet::from([2]));
    }
}
