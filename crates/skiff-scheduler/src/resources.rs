//! Effective resource requests of pods and the resource-fit filter.
//!
//! Amounts are kept in canonical integer units: millicores for `cpu`, whole
//! units for everything else (bytes for memory and ephemeral-storage, counts
//! for extended resources).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use thiserror::Error;

use crate::quantity::{parse_quantity, ParsedQuantity, QuantityError};

/// The `cpu` resource name.
pub const CPU: &str = "cpu";
/// The `memory` resource name.
pub const MEMORY: &str = "memory";
/// The `ephemeral-storage` resource name.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The `pods` resource name (only meaningful in node allocatable).
pub const PODS: &str = "pods";

/// cpu assumed for a container without a cpu request when *scoring*, so
/// request-less pods still spread out (upstream's non-zero default).
pub const DEFAULT_SCORING_MILLI_CPU: i128 = 100;
/// Memory assumed for a container without a memory request when *scoring*.
pub const DEFAULT_SCORING_MEMORY: i128 = 200 * 1024 * 1024;

/// Converts a parsed quantity to the canonical unit of `resource`.
pub fn canonical_amount(resource: &str, quantity: ParsedQuantity) -> i128 {
    if resource == CPU {
        quantity.milli_value()
    } else {
        quantity.value()
    }
}

/// A set of resource amounts in canonical units; absent names count as zero.
///
/// The four resources every decision reads (cpu, memory, ephemeral-storage, pods) have fixed
/// slots: a decision compares them for hundreds of nodes per pod, and a map keyed by strings
/// made that the scheduler's hottest code. Extended resources live in a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceList {
    /// cpu, memory, ephemeral-storage and pods, in [`WELL_KNOWN`] order; `None` when absent.
    well_known: [Option<i128>; 4],
    others: BTreeMap<String, i128>,
}

/// The resources with fixed slots, in name order (which [`ResourceList::iter`] keeps).
const WELL_KNOWN: [&str; 4] = [CPU, EPHEMERAL_STORAGE, MEMORY, PODS];

fn slot(resource: &str) -> Option<usize> {
    match resource {
        CPU => Some(0),
        EPHEMERAL_STORAGE => Some(1),
        MEMORY => Some(2),
        PODS => Some(3),
        _ => None,
    }
}

impl ResourceList {
    /// The amount of `resource`, zero when absent.
    pub fn get(&self, resource: &str) -> i128 {
        match slot(resource) {
            Some(i) => self.well_known[i].unwrap_or(0),
            None => self.others.get(resource).copied().unwrap_or(0),
        }
    }

    /// Whether `resource` has an explicit entry (even a zero one).
    pub fn contains(&self, resource: &str) -> bool {
        match slot(resource) {
            Some(i) => self.well_known[i].is_some(),
            None => self.others.contains_key(resource),
        }
    }

    /// Sets `resource` to `amount`.
    pub fn set(&mut self, resource: &str, amount: i128) {
        match slot(resource) {
            Some(i) => self.well_known[i] = Some(amount),
            None => _ = self.others.insert(resource.to_string(), amount),
        }
    }

    /// Combines every amount of `other` into `self` with `merge(mine, theirs)`, an absent amount
    /// of `self` starting as `absent(theirs)`. Slot by slot: this runs for every bound pod of every
    /// pass, so it allocates nothing unless extended resources are listed.
    fn merge(&mut self, other: &ResourceList, absent: fn(i128) -> i128, merge: fn(i128, i128) -> i128) {
        for (mine, theirs) in self.well_known.iter_mut().zip(other.well_known) {
            if let Some(theirs) = theirs {
                let current = mine.get_or_insert(absent(theirs));
                *current = merge(*current, theirs);
            }
        }
        for (name, theirs) in &other.others {
            let current = self.others.entry(name.clone()).or_insert(absent(*theirs));
            *current = merge(*current, *theirs);
        }
    }

    /// Adds every amount of `other` into `self`.
    pub fn add(&mut self, other: &ResourceList) {
        self.merge(other, |_| 0, i128::saturating_add);
    }

    /// Raises every amount of `self` to at least the amount in `other`.
    pub fn max_with(&mut self, other: &ResourceList) {
        self.merge(other, |theirs| theirs, i128::max);
    }

    /// Iterates over `(resource, amount)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i128)> {
        let mut all: Vec<(&str, i128)> = WELL_KNOWN
            .iter()
            .zip(self.well_known)
            .filter_map(|(name, amount)| amount.map(|a| (*name, a)))
            .chain(self.others.iter().map(|(name, amount)| (name.as_str(), *amount)))
            .collect();
        if !self.others.is_empty() {
            all.sort_by(|a, b| a.0.cmp(b.0));
        }
        all.into_iter()
    }

    /// Whether anything other than the fixed-slot resources is listed.
    pub fn has_extended(&self) -> bool {
        !self.others.is_empty()
    }
}

/// A pod or node quantity that the scheduler refused to interpret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// A quantity string did not parse.
    #[error("{location} {resource}: {source}")]
    Unparseable {
        /// Where the quantity was found, e.g. `container "app" requests`.
        location: String,
        /// The resource name, e.g. `cpu`.
        resource: String,
        /// The parse failure.
        #[source]
        source: QuantityError,
    },
    /// A request or allocatable amount was negative.
    #[error("{location} {resource}: quantity {quantity:?} is negative")]
    Negative {
        /// Where the quantity was found.
        location: String,
        /// The resource name.
        resource: String,
        /// The offending quantity string.
        quantity: String,
    },
}

/// How a pod's requests are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMode {
    /// What the pod actually asks for; used by the fit filter.
    Actual,
    /// Like `Actual`, but a container missing a cpu or memory request counts
    /// as [`DEFAULT_SCORING_MILLI_CPU`] / [`DEFAULT_SCORING_MEMORY`]; used by scores.
    NonZeroForScoring,
}

/// What to do with a quantity that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Fail: used for the pod being scheduled, so the user sees the problem.
    Strict,
    /// Treat the entry as absent: used for pods already bound, which the
    /// scheduler cannot reject and should not let poison a whole node.
    Lenient,
}

/// Computes a pod's effective requests.
///
/// The rule mirrors Kubernetes: the sum over regular containers, plus the sum
/// over sidecar (restartable) init containers, but never less than what any
/// single init container needs while it runs (together with the sidecars
/// started before it), plus the pod overhead. A container with a limit but no
/// request for a resource requests its limit, as API defaulting would set it.
pub fn pod_requests(pod: &Pod, mode: RequestMode, strictness: Strictness) -> Result<ResourceList, ResourceError> {
    let Some(spec) = pod.spec.as_ref() else { return Ok(ResourceList::default()) };

    let mut total = ResourceList::default();
    for container in &spec.containers {
        total.add(&container_requests(container, mode, strictness)?);
    }

    let mut sidecars = ResourceList::default();
    let mut init_peak = ResourceList::default();
    for container in spec.init_containers.iter().flatten() {
        let mut running = container_requests(container, mode, strictness)?;
        if container.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running, so everything after it pays for it.
            sidecars.add(&running);
            running = sidecars.clone();
        } else {
            running.add(&sidecars);
        }
        init_peak.max_with(&running);
    }
    total.add(&sidecars);
    total.max_with(&init_peak);

    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(&parse_list(overhead, "pod overhead", strictness)?);
    }
    Ok(total)
}

fn container_requests(
    container: &Container,
    mode: RequestMode,
    strictness: Strictness,
) -> Result<ResourceList, ResourceError> {
    let location = format!("container {:?} requests", container.name);
    let resources = container.resources.as_ref();
    let mut merged: BTreeMap<String, Quantity> = resources.and_then(|r| r.requests.clone()).unwrap_or_default();
    for (name, limit) in resources.and_then(|r| r.limits.as_ref()).into_iter().flatten() {
        merged.entry(name.clone()).or_insert_with(|| limit.clone());
    }
    let mut list = parse_list(&merged, &location, strictness)?;
    if mode == RequestMode::NonZeroForScoring {
        if !list.contains(CPU) {
            list.set(CPU, DEFAULT_SCORING_MILLI_CPU);
        }
        if !list.contains(MEMORY) {
            list.set(MEMORY, DEFAULT_SCORING_MEMORY);
        }
    }
    Ok(list)
}

/// Parses a map of quantities into canonical units.
pub fn parse_list(
    quantities: &BTreeMap<String, Quantity>,
    location: &str,
    strictness: Strictness,
) -> Result<ResourceList, ResourceError> {
    let mut list = ResourceList::default();
    for (name, quantity) in quantities {
        let amount = match parse_quantity(&quantity.0) {
            Ok(parsed) => canonical_amount(name, parsed),
            Err(source) => match strictness {
                Strictness::Lenient => continue,
                Strictness::Strict => {
                    return Err(ResourceError::Unparseable {
                        location: location.to_string(),
                        resource: name.clone(),
                        source,
                    })
                }
            },
        };
        if amount < 0 {
            match strictness {
                Strictness::Lenient => continue,
                Strictness::Strict => {
                    return Err(ResourceError::Negative {
                        location: location.to_string(),
                        resource: name.clone(),
                        quantity: quantity.0.clone(),
                    })
                }
            }
        }
        list.set(name, amount);
    }
    Ok(list)
}

/// Reasons a node cannot hold the pod, in upstream's order: pod count first,
/// then cpu, memory, ephemeral-storage, then any other resource by name.
///
/// `requested` is what the bound pods already use and `bound_pods` how many
/// there are. Every shortage is reported, not just the first, so the event
/// shows the whole picture like upstream's `Insufficient cpu, Insufficient memory`.
pub fn insufficient_resources(
    pod_request: &ResourceList,
    allocatable: &ResourceList,
    requested: &ResourceList,
    bound_pods: usize,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let allowed_pods = allocatable.get(PODS);
    if i128::try_from(bound_pods).unwrap_or(i128::MAX).saturating_add(1) > allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let well_known = [CPU, MEMORY, EPHEMERAL_STORAGE];
    let others: Vec<&str> = if pod_request.has_extended() {
        pod_request.iter().map(|(name, _)| name).filter(|name| !well_known.contains(name) && *name != PODS).collect()
    } else {
        Vec::new()
    };
    for name in well_known.into_iter().chain(others) {
        let wanted = pod_request.get(name);
        if wanted <= 0 {
            continue;
        }
        let free = allocatable.get(name).saturating_sub(requested.get(name));
        if wanted > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("test fixture")
    }

    fn actual(pod: &Pod) -> ResourceList {
        pod_requests(pod, RequestMode::Actual, Strictness::Strict).expect("test fixture")
    }

    #[test]
    fn resource_lists_keep_slots_and_extended_resources_alike() {
        let mut a = ResourceList::default();
        a.set(CPU, 500);
        a.set("example.com/gpu", 1);
        let mut b = ResourceList::default();
        b.set(CPU, 250);
        b.set(PODS, 0);
        b.set("example.com/gpu", 2);
        b.set("zz.example/fpga", 3);
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(
            sum.iter().collect::<Vec<_>>(),
            vec![("cpu", 750), ("example.com/gpu", 3), ("pods", 0), ("zz.example/fpga", 3)],
            "name order across slots and extended resources; a zero entry is kept"
        );
        assert!(sum.contains(PODS) && !sum.contains(MEMORY));
        assert_eq!(sum.get(MEMORY), 0);
        let mut most = a.clone();
        most.max_with(&b);
        assert_eq!((most.get(CPU), most.get("example.com/gpu"), most.get("zz.example/fpga")), (500, 2, 3));
        let mut huge = ResourceList::default();
        huge.set(MEMORY, i128::MAX);
        huge.add(&huge.clone());
        assert_eq!(huge.get(MEMORY), i128::MAX, "saturates");
    }

    #[test]
    fn sums_containers_and_adds_overhead() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
            ],
            "overhead": {"cpu": "50m"}
        }));
        let r = actual(&p);
        assert_eq!(r.get(CPU), 1300);
        assert_eq!(r.get(MEMORY), (64 << 20) + (1 << 30));
    }

    #[test]
    fn init_container_max_rule() {
        // The big init container runs alone, so it dominates cpu but not memory.
        let p = pod(json!({
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}}
            ]
        }));
        let r = actual(&p);
        assert_eq!(r.get(CPU), 2000);
        assert_eq!(r.get(MEMORY), 200 << 20);
    }

    #[test]
    fn sidecar_init_containers_add_to_the_total() {
        let p = pod(json!({
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "1"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "300m"}}}]
        }));
        // setup runs beside the proxy (1200m) which beats proxy + app (500m).
        assert_eq!(actual(&p).get(CPU), 1200);
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let p = pod(json!({
            "containers": [{"name": "a", "resources": {
                "limits": {"cpu": "2", "memory": "1Gi"},
                "requests": {"cpu": "1"}
            }}]
        }));
        let r = actual(&p);
        assert_eq!(r.get(CPU), 1000);
        assert_eq!(r.get(MEMORY), 1 << 30);
    }

    #[test]
    fn scoring_mode_fills_in_defaults_only_for_missing_requests() {
        let p = pod(json!({
            "containers": [
                {"name": "a"},
                {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "1Gi"}}}
            ]
        }));
        let r = pod_requests(&p, RequestMode::NonZeroForScoring, Strictness::Strict).expect("test fixture");
        assert_eq!(r.get(CPU), 100);
        assert_eq!(r.get(MEMORY), (200 << 20) + (1 << 30));
        assert_eq!(actual(&p).get(CPU), 0);
    }

    #[test]
    fn bad_quantities_fail_strictly_and_are_skipped_leniently() {
        let p = pod(json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "lots", "memory": "1Mi"}}}]
        }));
        let err = pod_requests(&p, RequestMode::Actual, Strictness::Strict).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "container \"app\" requests cpu: quantity \"lots\" does not start with a valid number"
        );
        let lenient = pod_requests(&p, RequestMode::Actual, Strictness::Lenient).expect("test fixture");
        assert_eq!(lenient.get(CPU), 0);
        assert_eq!(lenient.get(MEMORY), 1 << 20);

        let negative = pod(json!({"containers": [{"name": "app", "resources": {"requests": {"cpu": "-1"}}}]}));
        assert!(matches!(
            pod_requests(&negative, RequestMode::Actual, Strictness::Strict),
            Err(ResourceError::Negative { .. })
        ));
    }

    #[test]
    fn fit_reports_every_shortage_in_upstream_order() {
        let mut want = ResourceList::default();
        want.set(CPU, 2000);
        want.set(MEMORY, 1 << 30);
        want.set("example.com/gpu", 1);
        let mut alloc = ResourceList::default();
        alloc.set(CPU, 4000);
        alloc.set(MEMORY, 4 << 30);
        alloc.set(PODS, 2);
        let mut used = ResourceList::default();
        used.set(CPU, 3000);
        used.set(MEMORY, 3 << 30);
        assert_eq!(
            insufficient_resources(&want, &alloc, &used, 1),
            vec!["Insufficient cpu", "Insufficient example.com/gpu"]
        );
        assert_eq!(
            insufficient_resources(&want, &alloc, &used, 2),
            vec!["Too many pods", "Insufficient cpu", "Insufficient example.com/gpu"]
        );
        want.set("example.com/gpu", 0);
        want.set(CPU, 1000);
        assert!(insufficient_resources(&want, &alloc, &used, 0).is_empty());
    }
}
