//! Matching of label selectors (pods) and node selector terms (nodes).
//!
//! Unknown operators and malformed requirements never match: the API server
//! should have rejected them, and refusing is safer than guessing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels used when an object has none, so callers never juggle `Option`s.
pub(crate) static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Returns the labels of an object's metadata, or an empty map.
pub(crate) fn labels_of(labels: &Option<BTreeMap<String, String>>) -> &BTreeMap<String, String> {
    labels.as_ref().unwrap_or(&NO_LABELS)
}

/// Whether a `metav1.LabelSelector` selects the given labels.
///
/// An empty selector selects everything; callers decide what an absent
/// (`None`) selector means, because that differs between API fields.
pub(crate) fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key).is_some_and(|actual| actual == value));
    labels_match && selector.match_expressions.iter().flatten().all(|req| label_requirement_matches(req, labels))
}

fn label_requirement_matches(req: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let actual = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => actual.is_some_and(|v| values.contains(v)),
        "NotIn" => actual.is_none_or(|v| !values.contains(v)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        _ => false,
    }
}

/// Whether a selector is empty (and therefore selects everything).
pub(crate) fn is_empty_selector(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// Whether a node selector term matches a node.
///
/// Expressions and fields are ANDed; a term with neither matches nothing, as
/// in Kubernetes, so an accidentally empty term cannot attract every node.
pub(crate) fn node_selector_term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions.iter().all(|req| node_requirement_matches(req, labels.get(&req.key).map(String::as_str)))
        && fields.iter().all(|req| {
            // metadata.name is the only field selector Kubernetes supports here.
            req.key == "metadata.name" && node_requirement_matches(req, Some(node_name))
        })
}

fn node_requirement_matches(req: &NodeSelectorRequirement, actual: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let contains = |v: &str| values.iter().any(|candidate| candidate == v);
    match req.operator.as_str() {
        "In" => actual.is_some_and(contains),
        "NotIn" => actual.is_none_or(|v| !contains(v)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let [bound] = values else { return false };
            let (Some(actual), Ok(bound)) = (actual, bound.parse::<i64>()) else { return false };
            let Ok(actual) = actual.parse::<i64>() else { return false };
            if req.operator == "Gt" {
                actual > bound
            } else {
                actual < bound
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn term(value: serde_json::Value) -> NodeSelectorTerm {
        serde_json::from_value(value).expect("test fixture")
    }

    #[test]
    fn label_selector_operators() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .expect("test fixture");
        assert!(label_selector_matches(&sel, &labels(&[("app", "web"), ("tier", "a"), ("team", "x")])));
        assert!(!label_selector_matches(&sel, &labels(&[("app", "db"), ("tier", "a"), ("team", "x")])));
        assert!(!label_selector_matches(&sel, &labels(&[("app", "web"), ("tier", "c"), ("team", "x")])));
        assert!(!label_selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a"), ("team", "x"), ("env", "prod")])
        ));
        assert!(!label_selector_matches(&sel, &labels(&[("app", "web"), ("tier", "a")])));
        assert!(!label_selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a"), ("team", "x"), ("legacy", "1")])
        ));
        assert!(label_selector_matches(&LabelSelector::default(), &labels(&[("any", "thing")])));
    }

    #[test]
    fn node_selector_term_operators_and_fields() {
        let node = labels(&[("zone", "a"), ("cores", "8")]);
        assert!(node_selector_term_matches(
            &term(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})),
            "n1",
            &node
        ));
        assert!(!node_selector_term_matches(
            &term(json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})),
            "n1",
            &node
        ));
        // Gt against a non-integer label value never matches rather than erroring.
        assert!(!node_selector_term_matches(
            &term(json!({"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["1"]}]})),
            "n1",
            &node
        ));
        assert!(node_selector_term_matches(
            &term(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})),
            "n1",
            &node
        ));
        assert!(node_selector_term_matches(
            &term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})),
            "n1",
            &node
        ));
        assert!(!node_selector_term_matches(
            &term(json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})),
            "n1",
            &node
        ));
        assert!(!node_selector_term_matches(&term(json!({})), "n1", &node));
        assert!(!node_selector_term_matches(
            &term(json!({"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]})),
            "n1",
            &node
        ));
    }
}
