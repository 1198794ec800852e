//! Node IPAM, as upstream's range allocator (`--allocate-node-cidrs` with
//! `--cidr-allocator-type=RangeAllocator`), IPv4 only.
//!
//! When `config.cluster_cidr` is an IPv4 range, every node without a `spec.podCIDR` gets the
//! lowest subnet of prefix `config.node_cidr_mask` in that range that no node's `podCIDR` or
//! `podCIDRs` overlaps (pod CIDRs outside the range take nothing). Nodes are served in name
//! order and one round never hands out a subnet twice; each assignment is conditional on the
//! node's resourceVersion, so a node that changed meanwhile is looked at again next round.
//!
//! Nothing is done when the range is not an IPv4 CIDR, or when the mask is shorter than the
//! range's prefix or longer than 30.
//!
//! Differences from upstream:
//! - No dual-stack and no secondary ranges; no limit on how many subnets the range splits into
//!   (upstream refuses more than 2^16).
//! - Upstream records a `CIDRNotAvailable` event (Normal, as all its node status-change events)
//!   every time an allocation fails. A stateless controller would repeat it every round, so the
//!   event comes with an annotation [`EXHAUSTED_ANNOTATION`] on the node (its value is the range
//!   that had no room): the event is recorded only when the annotation is missing or names
//!   another range, and the annotation is removed in the same write that later assigns a subnet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::action::path;
use crate::Action;
use crate::Config;
use crate::EventType;
use crate::Snapshot;

/// The component the allocator's events come from (upstream's name).
pub const COMPONENT: &str = "cidrAllocator";
/// Marks a node that could not get a podCIDR, with the range that had no room, so that the
/// `CIDRNotAvailable` event is recorded once rather than every round.
pub const EXHAUSTED_ANNOTATION: &str = "skiff.io/cidr-not-available";

/// An IPv4 block: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    start: u32,
    prefix: u8,
}

impl Block {
    /// Parses `a.b.c.d/n` (host bits are cleared, as Go's `net.ParseCIDR` does); None for
    /// anything else, IPv6 included.
    fn parse(text: &str) -> Option<Block> {
        let (ip, bits) = text.trim().split_once('/')?;
        if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = bits.parse().ok().filter(|p| *p <= 32)?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        Some(Block { start: u32::from(ip) & mask(prefix), prefix })
    }

    /// The number of addresses in the block.
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The last address, inclusive.
    fn end(self) -> u64 {
        u64::from(self.start) + self.size() - 1
    }

    #[cfg(test)]
    fn overlaps(self, other: Block) -> bool {
        u64::from(self.start) <= other.end() && u64::from(other.start) <= self.end()
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.start), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// The free subnets of `prefix` in `range`, lowest first, in one sweep over the taken blocks:
/// a round hands out the lowest free subnet to each waiting node in turn, and each is above the
/// last, so nothing before the cursor needs looking at again (rescanning every taken block for
/// every candidate made a round over thousands of new nodes take seconds).
struct FreeSubnets {
    range: Block,
    prefix: u8,
    /// Taken blocks by start.
    taken: Vec<Block>,
    /// How many of `taken` start at or before the current candidate's end.
    passed: usize,
    /// The furthest end of those: a candidate starting at or before it overlaps one of them.
    reach: Option<u64>,
    next: u64,
}

impl FreeSubnets {
    fn new(range: Block, prefix: u8, mut taken: Vec<Block>) -> Self {
        taken.sort_by_key(|b| b.start);
        Self { range, prefix, taken, passed: 0, reach: None, next: u64::from(range.start) }
    }
}

impl Iterator for FreeSubnets {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        let step = 1u64 << (32 - u32::from(self.prefix));
        while self.next <= self.range.end() {
            let candidate = Block { start: u32::try_from(self.next).ok()?, prefix: self.prefix };
            while let Some(block) = self.taken.get(self.passed).filter(|b| u64::from(b.start) <= candidate.end()) {
                self.reach = Some(self.reach.map_or(block.end(), |r| r.max(block.end())));
                self.passed += 1;
            }
            match self.reach.filter(|end| *end >= self.next) {
                // Skip past the whole taken block, which may span many subnets.
                Some(end) => self.next = (end + 1).div_ceil(step) * step,
                None => {
                    self.next += step;
                    return Some(candidate);
                }
            }
        }
        None
    }
}

/// The IPv4 blocks a node's podCIDR and podCIDRs hold.
fn node_blocks(node: &Node) -> Vec<Block> {
    let Some(spec) = &node.spec else { return Vec::new() };
    spec.pod_cidr.iter().chain(spec.pod_cidrs.iter().flatten()).filter_map(|c| Block::parse(c)).collect()
}

fn has_pod_cidr(node: &Node) -> bool {
    node.spec.as_ref().is_some_and(|s| {
        s.pod_cidr.as_deref().is_some_and(|c| !c.is_empty()) || s.pod_cidrs.as_ref().is_some_and(|c| !c.is_empty())
    })
}

/// Gives every node without a podCIDR the lowest free subnet of the cluster range.
pub fn reconcile(snapshot: &Snapshot, config: &Config) -> Vec<Action> {
    let Some(range_text) = config.cluster_cidr.as_deref() else { return Vec::new() };
    let Some(range) = Block::parse(range_text) else { return Vec::new() };
    let prefix = config.node_cidr_mask;
    if prefix < range.prefix || prefix > 30 {
        return Vec::new();
    }
    let taken: Vec<Block> = snapshot.nodes.iter().flat_map(|n| node_blocks(n)).collect();
    let mut free = FreeSubnets::new(range, prefix, taken);
    let waiting: BTreeMap<&str, &Node> = snapshot
        .nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none() && !has_pod_cidr(n))
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
        .collect();
    let range_name = range.to_string();
    let mut actions = Vec::new();
    for (name, node) in waiting {
        let node_path = path::core("nodes", None, Some(name));
        let marked = node.metadata.annotations.as_ref().and_then(|a| a.get(EXHAUSTED_ANNOTATION));
        match free.next() {
            Some(subnet) => {
                let mut metadata = json!({"resourceVersion": node.metadata.resource_version});
                if marked.is_some() {
                    metadata["annotations"] = json!({ EXHAUSTED_ANNOTATION: null });
                }
                let cidr = subnet.to_string();
                actions.push(Action::MergePatch {
                    path: node_path,
                    patch: json!({"metadata": metadata, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}),
                });
            }
            None if marked != Some(&range_name) => {
                actions.push(Action::MergePatch {
                    path: node_path,
                    patch: json!({"metadata": {"resourceVersion": node.metadata.resource_version,
                        "annotations": { EXHAUSTED_ANNOTATION: range_name }}}),
                });
                actions.push(Action::event(
                    COMPONENT,
                    "v1",
                    "Node",
                    &node.metadata,
                    EventType::Normal,
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                ));
            }
            None => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;

    fn node(name: &str, spec: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "uid": format!("{name}-uid"), "resourceVersion": "7"},
                "spec": spec}),
            )
            .expect("fixture"),
        )
    }

    fn config(range: Option<&str>, mask: u8) -> Config {
        Config { cluster_cidr: range.map(Into::into), node_cidr_mask: mask, ..Config::default() }
    }

    fn run(nodes: &[Arc<Node>], config: &Config) -> Vec<Action> {
        let mut s = Snapshot::empty(jiff::Timestamp::UNIX_EPOCH);
        s.nodes = nodes.to_vec();
        reconcile(&s, config)
    }

    /// (node path, podCIDR) of every assignment.
    fn assigned(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::MergePatch { path, patch } => {
                    Some((path.clone(), patch["spec"]["podCIDR"].as_str()?.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// The nodes after the actions are carried out (merge patches of spec and annotations).
    fn apply(nodes: &[Arc<Node>], actions: &[Action]) -> Vec<Arc<Node>> {
        nodes
            .iter()
            .map(|n| {
                let mut n = (**n).clone();
                for action in actions {
                    let Action::MergePatch { path, patch } = action else { continue };
                    if path != &path::core("nodes", None, n.metadata.name.as_deref()) {
                        continue;
                    }
                    assert_eq!(patch["metadata"]["resourceVersion"], "7", "conditional");
                    if let Some(cidr) = patch["spec"]["podCIDR"].as_str() {
                        let spec = n.spec.get_or_insert_with(Default::default);
                        spec.pod_cidr = Some(cidr.into());
                        spec.pod_cidrs = serde_json::from_value(patch["spec"]["podCIDRs"].clone()).expect("list");
                    }
                    if let Some(annotations) = patch["metadata"]["annotations"].as_object() {
                        let mine = n.metadata.annotations.get_or_insert_with(Default::default);
                        for (k, v) in annotations {
                            match v.as_str() {
                                Some(v) => mine.insert(k.clone(), v.into()),
                                None => mine.remove(k),
                            };
                        }
                    }
                }
                Arc::new(n)
            })
            .collect()
    }

    fn pair(name: &str, cidr: &str) -> (String, String) {
        (format!("/api/v1/nodes/{name}"), cidr.to_string())
    }

    /// The sweep agrees with the obvious search (try every aligned candidate against every
    /// taken block, take the lowest free, repeat) on pseudo-random layouts of taken blocks.
    #[test]
    fn the_sweep_hands_out_what_a_full_search_would() {
        fn naive(range: Block, prefix: u8, taken: &mut Vec<Block>) -> Option<Block> {
            let step = 1u64 << (32 - u32::from(prefix));
            let mut next = u64::from(range.start);
            while next <= range.end() {
                let candidate = Block { start: u32::try_from(next).ok()?, prefix };
                if !taken.iter().any(|t| t.overlaps(candidate)) {
                    taken.push(candidate);
                    return Some(candidate);
                }
                next += step;
            }
            None
        }
        let range = Block::parse("10.0.0.0/20").expect("range");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..200 {
            let prefix = 22 + u8::try_from(random(5)).expect("small");
            let taken: Vec<Block> = (0..random(12))
                .map(|_| {
                    let block_prefix = 18 + u8::try_from(random(13)).expect("small");
                    let start = range.start + u32::try_from(random(1 << 13)).expect("small");
                    Block::parse(&format!("{}/{block_prefix}", Ipv4Addr::from(start))).expect("block")
                })
                .collect();
            let swept: Vec<Block> = FreeSubnets::new(range, prefix, taken.clone()).take(40).collect();
            let mut searched_taken = taken.clone();
            let searched: Vec<Block> = (0..40).map_while(|_| naive(range, prefix, &mut searched_taken)).collect();
            assert_eq!(swept, searched, "taken {taken:?}, prefix {prefix}");
        }
    }

    #[test]
    fn nodes_get_the_lowest_free_subnets_in_name_order() {
        let nodes = vec![
            node("c", json!({})),
            node("a", json!({})),
            node("b", json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]})),
            node("d", json!({"podCIDR": "10.244.2.0/23", "podCIDRs": ["10.244.2.0/23"]})),
            node("e", json!({"podCIDR": "192.168.1.0/24", "podCIDRs": ["192.168.1.0/24", "fd00::/64"]})),
            node("f", json!({"podCIDRs": ["10.244.5.0/24"]})),
        ];
        let cfg = config(Some("10.244.0.0/16"), 24);
        let actions = run(&nodes, &cfg);
        // 0 is b's, 2-3 are d's /23, 5 is f's; the range outside 10.244/16 takes nothing.
        assert_eq!(assigned(&actions), vec![pair("a", "10.244.1.0/24"), pair("c", "10.244.4.0/24")]);
        assert_eq!(actions.len(), 2);
        let Action::MergePatch { patch, .. } = &actions[0] else { panic!("a patch") };
        assert_eq!(
            patch,
            &json!({"metadata": {"resourceVersion": "7"}, "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
        );
        let after = apply(&nodes, &actions);
        assert_eq!(run(&after, &cfg), vec![], "converged");
        // A new node gets the next one after those.
        let mut more = after.clone();
        more.push(node("g", json!({})));
        assert_eq!(assigned(&run(&more, &cfg)), vec![pair("g", "10.244.6.0/24")]);
    }

    #[test]
    fn exhaustion_is_reported_once_and_cleared_on_assignment() {
        let cfg = config(Some("10.0.0.0/23"), 24);
        let nodes = vec![node("a", json!({})), node("b", json!({})), node("c", json!({}))];
        let actions = run(&nodes, &cfg);
        assert_eq!(assigned(&actions), vec![pair("a", "10.0.0.0/24"), pair("b", "10.0.1.0/24")]);
        let event = actions.iter().find(|a| matches!(a, Action::Event { .. })).expect("an event");
        let Action::Event { regarding, component, reason, message, .. } = event else { unreachable!() };
        assert_eq!((regarding["name"].as_str(), *component), (Some("c"), COMPONENT));
        assert_eq!((reason.as_str(), message.as_str()), ("CIDRNotAvailable", "Node c status is now: CIDRNotAvailable"));
        let after = apply(&nodes, &actions);
        assert_eq!(
            after[2].metadata.annotations.as_ref().and_then(|a| a.get(EXHAUSTED_ANNOTATION)).map(String::as_str),
            Some("10.0.0.0/23")
        );
        assert_eq!(run(&after, &cfg), vec![], "reported once");
        // A bigger range: the mark names another range, so it would be reported again; here it fits.
        let bigger = config(Some("10.0.0.0/22"), 24);
        let actions = run(&after, &bigger);
        assert_eq!(assigned(&actions), vec![pair("c", "10.0.2.0/24")]);
        let after = apply(&after, &actions);
        assert_eq!(after[2].metadata.annotations.as_ref().map(|a| a.contains_key(EXHAUSTED_ANNOTATION)), Some(false));
        assert_eq!(run(&after, &bigger), vec![]);
    }

    #[test]
    fn a_block_covering_the_range_takes_it_all() {
        let nodes = vec![node("a", json!({"podCIDR": "10.0.0.0/8"})), node("b", json!({}))];
        let actions = run(&nodes, &config(Some("10.244.0.0/16"), 24));
        assert!(assigned(&actions).is_empty());
        assert_eq!(actions.len(), 2, "the mark and the event: {actions:?}");
    }

    #[test]
    fn nothing_without_a_usable_range() {
        let nodes = vec![node("a", json!({}))];
        for cfg in [
            config(None, 24),
            config(Some(""), 24),
            config(Some("10.244.0.0"), 24),
            config(Some("10.244.0.0/33"), 24),
            config(Some("10.244.0.0/+8"), 24),
            config(Some("fd00::/48"), 64),
            config(Some("not a cidr"), 24),
            config(Some("10.244.0.0/16"), 15),
            config(Some("10.244.0.0/16"), 31),
        ] {
            assert_eq!(run(&nodes, &cfg), vec![], "{cfg:?}");
        }
        // Host bits in the range are cleared; the mask may equal the range's prefix; /30 is the limit.
        assert_eq!(assigned(&run(&nodes, &config(Some("10.244.7.9/16"), 16))), vec![pair("a", "10.244.0.0/16")]);
        assert_eq!(assigned(&run(&nodes, &config(Some("0.0.0.0/0"), 30))), vec![pair("a", "0.0.0.0/30")]);
    }

    #[test]
    fn the_end_of_the_address_space() {
        let nodes = vec![node("a", json!({"podCIDR": "255.255.255.248/30"})), node("b", json!({}))];
        let cfg = config(Some("255.255.255.248/29"), 30);
        assert_eq!(assigned(&run(&nodes, &cfg)), vec![pair("b", "255.255.255.252/30")]);
        let nodes = vec![node("a", json!({"podCIDR": "255.255.255.248/29"})), node("b", json!({}))];
        assert!(assigned(&run(&nodes, &cfg)).is_empty());
    }
}
