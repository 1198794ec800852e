//! A per-node view of the snapshot, computed once per scheduling decision so
//! filters and scores do not rescan every pod for every node.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::resources::{parse_list, pod_requests, RequestMode, ResourceError, ResourceList, Strictness};
use crate::selectors::labels_of;
use crate::Snapshot;

/// One node together with the pods that occupy it.
pub(crate) struct NodeView<'a> {
    pub node: &'a Node,
    pub name: &'a str,
    /// The status of its `Ready` condition.
    pub ready: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    /// Bound, non-terminal pods other than the pod being scheduled.
    pub pods: Vec<&'a Pod>,
    /// Those of `pods` with pod affinity or anti-affinity terms: the only ones whose own terms
    /// can affect an incoming pod that has none.
    pub with_affinity: Vec<&'a Pod>,
    /// Sum of the bound pods' actual requests.
    pub requested: ResourceList,
    /// Sum of the bound pods' requests with scoring defaults filled in.
    pub non_zero_requested: ResourceList,
    /// `status.allocatable`, or why it could not be read.
    pub allocatable: Result<ResourceList, ResourceError>,
}

/// All nodes of the snapshot, in snapshot order.
pub(crate) struct ClusterView<'a> {
    pub nodes: Vec<NodeView<'a>>,
    index_by_name: HashMap<String, usize>,
}

/// The namespace a pod lives in; an unset namespace is `default` as in the API.
pub(crate) fn namespace_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default")
}

/// Pods that finished no longer hold resources, ports or affinity slots.
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether two pod objects describe the same pod, so a snapshot that already
/// contains the incoming pod does not make it collide with itself.
fn same_pod(a: &Pod, b: &Pod) -> bool {
    match (a.metadata.uid.as_deref(), b.metadata.uid.as_deref()) {
        (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => x == y,
        _ => a.metadata.name.is_some() && a.metadata.name == b.metadata.name && namespace_of(a) == namespace_of(b),
    }
}

impl<'a> ClusterView<'a> {
    /// Builds the view for scheduling `incoming` against `snapshot`.
    pub(crate) fn build(incoming: Option<&Pod>, snapshot: &'a Snapshot) -> Self {
        let mut nodes: Vec<NodeView<'a>> = snapshot
            .nodes
            .iter()
            .map(|node| NodeView {
                node,
                name: node.metadata.name.as_deref().unwrap_or_default(),
                ready: crate::availability::ready_status(node),
                labels: labels_of(&node.metadata.labels),
                pods: Vec::new(),
                with_affinity: Vec::new(),
                requested: ResourceList::default(),
                non_zero_requested: ResourceList::default(),
                allocatable: parse_list(
                    node.status.as_ref().and_then(|s| s.allocatable.as_ref()).unwrap_or(&BTreeMap::new()),
                    "node allocatable",
                    Strictness::Strict,
                ),
            })
            .collect();

        let mut index_by_name: HashMap<&str, usize> = HashMap::new();
        for (index, view) in nodes.iter().enumerate() {
            index_by_name.entry(view.name).or_insert(index);
        }

        for pod in &snapshot.pods {
            let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
            let Some(&index) = index_by_name.get(node_name) else { continue };
            if is_terminal(pod) || incoming.is_some_and(|incoming| same_pod(pod, incoming)) {
                continue;
            }
            nodes[index].place(pod);
        }
        Self { nodes, index_by_name: index_by_name.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }

    /// Counts `pod` on the node named `node` from now on (upstream's "assume": later decisions
    /// of the same pass see it there before its binding is written).
    pub(crate) fn assume(&mut self, pod: &'a Pod, node: &str) {
        if let Some(&index) = self.index_by_name.get(node) {
            self.nodes[index].place(pod);
        }
    }
}

impl<'a> NodeView<'a> {
    fn place(&mut self, pod: &'a Pod) {
        self.pods.push(pod);
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        if affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some()) {
            self.with_affinity.push(pod);
        }
        // Lenient: a bound pod is already running and cannot be rejected;
        // an unreadable entry must not make the whole node unusable.
        if let Ok(requests) = pod_requests(pod, RequestMode::Actual, Strictness::Lenient) {
            self.requested.add(&requests);
        }
        if let Ok(requests) = pod_requests(pod, RequestMode::NonZeroForScoring, Strictness::Lenient) {
            self.non_zero_requested.add(&requests);
        }
    }
}
