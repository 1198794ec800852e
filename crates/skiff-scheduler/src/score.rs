//! Node scores (each 0..=100), their normalisation, and the weights used to
//! combine them.
//!
//! Weights follow upstream's default profile so placements look familiar to
//! Kubernetes users: preferences a user wrote (affinity, spreading, taints)
//! outweigh the generic bin-packing heuristics.

use crate::cluster::NodeView;
use crate::resources::{ResourceList, CPU, MEMORY};

/// Highest score a single scorer can give a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Weight of the LeastAllocated score (free cpu and memory after placement).
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
/// Weight of the BalancedAllocation score (cpu and memory used evenly).
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
/// Weight of the preferred node affinity score.
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
/// Weight of the preferred inter-pod affinity/anti-affinity score.
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
/// Weight of the `ScheduleAnyway` topology spread score.
pub const WEIGHT_TOPOLOGY_SPREAD: i64 = 2;
/// Weight of the `PreferNoSchedule` taint score.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;

/// LeastAllocated: the average over cpu and memory of the share left free
/// once the pod is placed. Uses scoring requests (with non-zero defaults) so
/// request-less pods still spread out instead of piling onto one node.
pub(crate) fn least_allocated(pod_request: &ResourceList, node: &NodeView<'_>) -> i64 {
    let Ok(allocatable) = node.allocatable.as_ref() else { return 0 };
    let free_share = |resource: &str| -> i64 {
        let capacity = allocatable.get(resource);
        let requested = node.non_zero_requested.get(resource).saturating_add(pod_request.get(resource));
        if capacity <= 0 || requested > capacity {
            return 0;
        }
        // In i64 when it fits (always, for real nodes): 128-bit division is slow, and this runs
        // for hundreds of nodes per pod.
        match (i64::try_from(capacity), i64::try_from(requested)) {
            (Ok(c), Ok(r)) if c <= i64::MAX / MAX_NODE_SCORE => (c - r) * MAX_NODE_SCORE / c,
            _ => i64::try_from((capacity - requested) * i128::from(MAX_NODE_SCORE) / capacity).unwrap_or(0),
        }
    };
    (free_share(CPU) + free_share(MEMORY)) / 2
}

/// BalancedAllocation: 100 minus the spread between the cpu and memory
/// utilisation fractions, so a node is not left with lots of one resource and
/// none of the other. Uses actual requests, as upstream does.
pub(crate) fn balanced_allocation(pod_request: &ResourceList, node: &NodeView<'_>) -> i64 {
    let Ok(allocatable) = node.allocatable.as_ref() else { return 0 };
    let fraction = |resource: &str| {
        let capacity = allocatable.get(resource);
        if capacity <= 0 {
            return None;
        }
        let requested = node.requested.get(resource).saturating_add(pod_request.get(resource));
        Some((requested as f64 / capacity as f64).min(1.0))
    };
    // With two resources the standard deviation is half their difference.
    let deviation = match (fraction(CPU), fraction(MEMORY)) {
        (Some(a), Some(b)) => (a - b).abs() / 2.0,
        _ => 0.0,
    };
    ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64
}

/// Scales raw values so the largest becomes 100 (upstream's default
/// normalisation); with `reverse`, the smallest raw value scores best.
/// When every raw value is zero, all nodes get 0 (or 100 when reversed).
pub(crate) fn normalize_to_max(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&value| {
            let scaled = if max <= 0 { 0 } else { (value.clamp(0, max) * MAX_NODE_SCORE) / max };
            if reverse {
                MAX_NODE_SCORE - scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// Maps raw values linearly onto 0..=100 between their minimum and maximum;
/// used where raw values may be negative (anti-affinity). Equal values all score 0.
pub(crate) fn normalize_min_max(raw: &[i64]) -> Vec<i64> {
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    let range = i128::from(max) - i128::from(min);
    raw.iter()
        .map(|&value| {
            if range <= 0 {
                0
            } else {
                let scaled = (i128::from(value) - i128::from(min)) * i128::from(MAX_NODE_SCORE) / range;
                i64::try_from(scaled).unwrap_or(0)
            }
        })
        .collect()
}

/// Spread score: the fewest matching pods scores 100, the most 0, linearly
/// between; nodes without the topology keys (`None`) score 0.
pub(crate) fn normalize_spread(raw: &[Option<i64>]) -> Vec<i64> {
    let known = raw.iter().flatten().copied();
    let min = known.clone().min().unwrap_or(0);
    let max = known.max().unwrap_or(0);
    raw.iter()
        .map(|value| match value {
            None => 0,
            Some(_) if max == min => MAX_NODE_SCORE,
            Some(count) => {
                let range = i128::from(max) - i128::from(min);
                let scaled = (i128::from(max) - i128::from(*count)) * i128::from(MAX_NODE_SCORE) / range;
                i64::try_from(scaled).unwrap_or(0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_to_max_scales_and_reverses() {
        assert_eq!(normalize_to_max(&[0, 5, 10], false), vec![0, 50, 100]);
        assert_eq!(normalize_to_max(&[0, 5, 10], true), vec![100, 50, 0]);
        assert_eq!(normalize_to_max(&[0, 0], false), vec![0, 0]);
        assert_eq!(normalize_to_max(&[0, 0], true), vec![100, 100]);
    }

    #[test]
    fn normalize_min_max_handles_negative_weights() {
        assert_eq!(normalize_min_max(&[-10, 0, 10]), vec![0, 50, 100]);
        assert_eq!(normalize_min_max(&[3, 3]), vec![0, 0]);
    }

    #[test]
    fn normalize_spread_prefers_fewer_pods_and_sinks_unknown_nodes() {
        assert_eq!(normalize_spread(&[Some(0), Some(2), Some(4), None]), vec![100, 50, 0, 0]);
        assert_eq!(normalize_spread(&[Some(1), Some(1)]), vec![100, 100]);
    }
}
