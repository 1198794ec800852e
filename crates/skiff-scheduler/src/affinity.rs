//! Inter-pod affinity and anti-affinity.
//!
//! Required terms filter nodes, preferred terms score them. Both directions
//! count: the incoming pod's terms against pods already placed, and placed
//! pods' terms against the incoming pod (so anti-affinity is symmetric).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::cluster::{namespace_of, ClusterView, NodeView};
use crate::selectors::{is_empty_selector, label_selector_matches, labels_of};

/// Reason when the pod's required affinity cannot be met on a node.
pub(crate) const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Reason when the pod's required anti-affinity forbids a node.
pub(crate) const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Reason when an existing pod's required anti-affinity forbids a node.
pub(crate) const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Weight given to an existing pod's *required* affinity toward the incoming
/// pod when scoring (upstream's `hardPodAffinityWeight` default).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Label every namespace carries with its own name; lets a namespace selector
/// on that label work without namespace objects in the snapshot.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Which namespaces an affinity term looks at.
enum NamespaceScope<'a> {
    /// `namespaceSelector: {}`: every namespace.
    All,
    /// The listed namespaces, plus those a non-empty selector picks.
    Some { listed: BTreeSet<&'a str>, selector: Option<&'a LabelSelector> },
}

/// A pod affinity term resolved against the namespace of the pod that owns it.
struct Term<'a> {
    scope: NamespaceScope<'a>,
    selector: Option<&'a LabelSelector>,
    topology_key: &'a str,
}

impl<'a> Term<'a> {
    fn new(term: &'a PodAffinityTerm, owner_namespace: &'a str) -> Self {
        let mut listed: BTreeSet<&'a str> = term.namespaces.iter().flatten().map(String::as_str).collect();
        let scope = match term.namespace_selector.as_ref() {
            Some(selector) if is_empty_selector(selector) => NamespaceScope::All,
            Some(selector) => NamespaceScope::Some { listed, selector: Some(selector) },
            None => {
                if listed.is_empty() {
                    listed.insert(owner_namespace);
                }
                NamespaceScope::Some { listed, selector: None }
            }
        };
        Self { scope, selector: term.label_selector.as_ref(), topology_key: &term.topology_key }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let namespace = namespace_of(pod);
        let in_scope = match &self.scope {
            NamespaceScope::All => true,
            NamespaceScope::Some { listed, selector } => {
                listed.contains(namespace)
                    || selector.is_some_and(|s| {
                        // Only the automatic name label is known for namespaces.
                        let labels = BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]);
                        label_selector_matches(s, &labels)
                    })
            }
        };
        // A term without a label selector selects no pods.
        in_scope && self.selector.is_some_and(|s| label_selector_matches(s, labels_of(&pod.metadata.labels)))
    }

    /// The (key, value) topology pair of `node` for this term, if it has the label.
    fn pair_on(&self, node: &NodeView<'_>) -> Option<(String, String)> {
        node.labels.get(self.topology_key).map(|value| (self.topology_key.to_string(), value.clone()))
    }
}

struct PodTerms<'a> {
    required_affinity: Vec<Term<'a>>,
    required_anti: Vec<Term<'a>>,
    preferred_affinity: Vec<(i64, Term<'a>)>,
    preferred_anti: Vec<(i64, Term<'a>)>,
}

impl PodTerms<'_> {
    fn is_empty(&self) -> bool {
        self.required_affinity.is_empty()
            && self.required_anti.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti.is_empty()
    }
}

/// The placed pods on `node` that can matter to an incoming pod with `terms`: all of them if it
/// has terms of its own, else only those with terms (theirs may reject or attract it).
fn relevant<'n, 'a>(terms: &PodTerms<'_>, node: &'n NodeView<'a>) -> &'n [&'a Pod] {
    if terms.is_empty() {
        &node.with_affinity
    } else {
        &node.pods
    }
}

fn terms_of(pod: &Pod) -> PodTerms<'_> {
    let namespace = namespace_of(pod);
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
    let pod_anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    PodTerms {
        required_affinity: required_terms(
            pod_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref()),
            namespace,
        ),
        required_anti: required_terms(
            pod_anti.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref()),
            namespace,
        ),
        preferred_affinity: weighted_terms(
            pod_affinity.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref()),
            namespace,
        ),
        preferred_anti: weighted_terms(
            pod_anti.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref()),
            namespace,
        ),
    }
}

fn required_terms<'a>(terms: Option<&'a [PodAffinityTerm]>, namespace: &'a str) -> Vec<Term<'a>> {
    terms.into_iter().flatten().map(|t| Term::new(t, namespace)).collect()
}

fn weighted_terms<'a>(terms: Option<&'a [WeightedPodAffinityTerm]>, namespace: &'a str) -> Vec<(i64, Term<'a>)> {
    terms.into_iter().flatten().map(|t| (i64::from(t.weight), Term::new(&t.pod_affinity_term, namespace))).collect()
}

type Pair = (String, String);

/// Pre-computed topology pairs for the required-term filter.
pub(crate) struct AffinityFilter<'a> {
    terms: PodTerms<'a>,
    /// Pairs holding a pod that matches *all* required affinity terms.
    affinity_pairs: HashSet<Pair>,
    /// Pairs holding a pod that matches any required anti-affinity term.
    anti_pairs: HashSet<Pair>,
    /// Pairs where an existing pod's required anti-affinity rejects the incoming pod.
    existing_anti_pairs: HashSet<Pair>,
    /// Whether the incoming pod satisfies its own affinity terms.
    self_match: bool,
}

impl<'a> AffinityFilter<'a> {
    /// Scans every placed pod once.
    pub(crate) fn new(pod: &'a Pod, cluster: &ClusterView<'_>) -> Self {
        let terms = terms_of(pod);
        let mut affinity_pairs = HashSet::new();
        let mut anti_pairs = HashSet::new();
        let mut existing_anti_pairs = HashSet::new();
        for node in &cluster.nodes {
            for existing in relevant(&terms, node) {
                if !terms.required_affinity.is_empty() && terms.required_affinity.iter().all(|t| t.matches(existing)) {
                    affinity_pairs.extend(terms.required_affinity.iter().filter_map(|t| t.pair_on(node)));
                }
                anti_pairs
                    .extend(terms.required_anti.iter().filter(|t| t.matches(existing)).filter_map(|t| t.pair_on(node)));
                let theirs = terms_of(existing);
                existing_anti_pairs
                    .extend(theirs.required_anti.iter().filter(|t| t.matches(pod)).filter_map(|t| t.pair_on(node)));
            }
        }
        let self_match = terms.required_affinity.iter().all(|t| t.matches(pod));
        Self { terms, affinity_pairs, anti_pairs, existing_anti_pairs, self_match }
    }

    /// Filter: the first violated rule on `node`, checked in upstream's order
    /// (own affinity, own anti-affinity, existing pods' anti-affinity).
    pub(crate) fn violation(&self, node: &NodeView<'_>) -> Option<&'static str> {
        if !self.terms.required_affinity.is_empty() {
            let mut all_present = true;
            for term in &self.terms.required_affinity {
                // The node must carry every topology key the pod cares about.
                let Some(pair) = term.pair_on(node) else { return Some(REASON_AFFINITY) };
                all_present &= self.affinity_pairs.contains(&pair);
            }
            // The first pod of a group that is attracted to itself would wait
            // forever, so it may go anywhere when no pod matches yet.
            let first_of_its_kind = self.affinity_pairs.is_empty() && self.self_match;
            if !all_present && !first_of_its_kind {
                return Some(REASON_AFFINITY);
            }
        }
        if self.terms.required_anti.iter().filter_map(|t| t.pair_on(node)).any(|p| self.anti_pairs.contains(&p)) {
            return Some(REASON_ANTI_AFFINITY);
        }
        let rejected = self
            .existing_anti_pairs
            .iter()
            .any(|(key, value)| node.labels.get(key).is_some_and(|actual| actual == value));
        rejected.then_some(REASON_EXISTING_ANTI_AFFINITY)
    }
}

/// Score input: per node (in cluster order), the summed weights of preferred
/// affinity minus preferred anti-affinity, in both directions, over the pods
/// sharing a topology domain with that node. May be negative.
pub(crate) fn preference_weights(pod: &Pod, cluster: &ClusterView<'_>, nodes: &[&NodeView<'_>]) -> Vec<i64> {
    let terms = terms_of(pod);
    let mut by_pair: HashMap<Pair, i64> = HashMap::new();
    let mut add = |pair: Option<Pair>, weight: i64| {
        if let Some(pair) = pair {
            let entry = by_pair.entry(pair).or_insert(0);
            *entry = entry.saturating_add(weight);
        }
    };
    for node in &cluster.nodes {
        for existing in relevant(&terms, node) {
            for (weight, term) in &terms.preferred_affinity {
                if term.matches(existing) {
                    add(term.pair_on(node), *weight);
                }
            }
            for (weight, term) in &terms.preferred_anti {
                if term.matches(existing) {
                    add(term.pair_on(node), -weight);
                }
            }
            let theirs = terms_of(existing);
            for term in theirs.required_affinity.iter().filter(|t| t.matches(pod)) {
                add(term.pair_on(node), HARD_POD_AFFINITY_WEIGHT);
            }
            for (weight, term) in theirs.preferred_affinity.iter().filter(|(_, t)| t.matches(pod)) {
                add(term.pair_on(node), *weight);
            }
            for (weight, term) in theirs.preferred_anti.iter().filter(|(_, t)| t.matches(pod)) {
                add(term.pair_on(node), -weight);
            }
        }
    }
    nodes
        .iter()
        .map(|node| {
            by_pair
                .iter()
                .filter(|((key, value), _)| node.labels.get(key).is_some_and(|actual| actual == value))
                .map(|(_, weight)| *weight)
                .fold(0i64, i64::saturating_add)
        })
        .collect()
}
