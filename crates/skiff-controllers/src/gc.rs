//! The garbage collector: objects whose owners are gone are deleted, and deletions with
//! propagation `Foreground` or `Orphan` are carried out, as upstream's garbage collector does,
//! over the kinds the [`Snapshot`] holds.
//!
//! Guarantees:
//! - A dependent all of whose owners are gone is deleted (Background, or what its own
//!   finalizers ask); one with some owners gone loses the references to them. Both writes are
//!   [`Action::Verified`]: a fresh read must confirm every owner judged gone, so a cache lagging
//!   behind an owner's creation never collects its dependents.
//! - An owner is looked up by group, kind, name and uid, in the dependent's namespace unless
//!   its kind is cluster-scoped (Node, Namespace); a namespaced owner in another namespace, or one
//!   referenced from a cluster-scoped dependent, counts as gone (as upstream). References to kinds
//!   the snapshot does not hold are never judged.
//! - An owner being deleted with finalizer `foregroundDeletion` has its dependents deleted
//!   (Foreground when they have dependents of their own, so the chain goes on down), except those
//!   that also have an owner that stays, which only lose the reference; the finalizer is removed
//!   once no dependent with `blockOwnerDeletion` on it remains, terminating ones included.
//! - An owner being deleted with finalizer `orphan` has its reference removed from every
//!   dependent, then the finalizer removed.
//!
//! Differences from upstream: no dependency graph or event stream, only the snapshot; the
//! ownership cycles upstream breaks (by unblocking references) are not detected; finalizer
//! removal trusts the snapshot to show every dependent (there is no fresh read that could
//! confirm "no dependents"); no Events are recorded.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

use crate::pod::Pod;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::Metadata;
use k8s_openapi::Resource;
use serde_json::json;

use crate::action::path;
use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The name this controller acts as.
pub const COMPONENT: &str = "garbage-collector-controller";

/// The finalizer of a deletion with propagation `Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// The finalizer of a deletion with propagation `Orphan`.
pub const ORPHAN: &str = "orphan";

/// A kind the snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    group: &'static str,
    kind: &'static str,
    /// The version skiff serves, used for paths whatever version a reference names.
    api_version: &'static str,
    cluster: bool,
}

fn kind_of<T: Resource>(cluster: bool) -> Kind {
    Kind { group: T::GROUP, kind: T::KIND, api_version: T::API_VERSION, cluster }
}

/// Every kind the snapshot holds: an owner reference to any other kind cannot be judged.
fn held() -> [Kind; 12] {
    [
        kind_of::<Pod>(false),
        kind_of::<ReplicaSet>(false),
        kind_of::<Deployment>(false),
        kind_of::<Service>(false),
        kind_of::<Endpoints>(false),
        kind_of::<EndpointSlice>(false),
        kind_of::<ConfigMap>(false),
        kind_of::<Secret>(false),
        kind_of::<ServiceAccount>(false),
        kind_of::<Lease>(false),
        kind_of::<Node>(true),
        kind_of::<Namespace>(true),
    ]
}

/// One object of the snapshot.
struct Object<'a> {
    kind: Kind,
    meta: &'a ObjectMeta,
    uid: &'a str,
    name: &'a str,
}

impl Object<'_> {
    fn namespace(&self) -> Option<&str> {
        if self.kind.cluster {
            None
        } else {
            self.meta.namespace.as_deref()
        }
    }

    fn path(&self) -> Option<String> {
        path::of_kind(self.kind.api_version, self.kind.kind, self.namespace(), self.name)
    }

    fn deleting(&self) -> bool {
        self.meta.deletion_timestamp.is_some()
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.meta.finalizers.as_deref().is_some_and(|f| f.iter().any(|x| x == finalizer))
    }

    fn owner_refs(&self) -> &[OwnerReference] {
        self.meta.owner_references.as_deref().unwrap_or_default()
    }
}

fn add<'a, T>(objects: &mut Vec<Object<'a>>, list: &'a [Arc<T>], cluster: bool)
where
    T: Metadata<Ty = ObjectMeta>,
{
    let kind = kind_of::<T>(cluster);
    for item in list {
        let meta = item.metadata();
        // Without a uid or name nothing can refer to the object or delete it safely.
        let (Some(uid), Some(name)) = (meta.uid.as_deref(), meta.name.as_deref()) else {
            continue;
        };
        objects.push(Object { kind, meta, uid, name });
    }
}

fn objects(snapshot: &Snapshot) -> Vec<Object<'_>> {
    let s = snapshot;
    let total = s.namespaces.len()
        + s.nodes.len()
        + s.leases.len()
        + s.pods.len()
        + s.services.len()
        + s.endpoints.len()
        + s.endpoint_slices.len()
        + s.replica_sets.len()
        + s.deployments.len()
        + s.service_accounts.len()
        + s.config_maps.len()
        + s.secrets.len();
    let mut all = Vec::with_capacity(total);
    add(&mut all, &snapshot.namespaces, true);
    add(&mut all, &snapshot.nodes, true);
    add(&mut all, &snapshot.leases, false);
    add(&mut all, &snapshot.pods, false);
    add(&mut all, &snapshot.services, false);
    add(&mut all, &snapshot.endpoints, false);
    add(&mut all, &snapshot.endpoint_slices, false);
    add(&mut all, &snapshot.replica_sets, false);
    add(&mut all, &snapshot.deployments, false);
    add(&mut all, &snapshot.service_accounts, false);
    add(&mut all, &snapshot.config_maps, false);
    add(&mut all, &snapshot.secrets, false);
    all
}

/// What an owner reference points at, as far as the snapshot tells.
enum Owner<'s, 'a> {
    /// A kind the snapshot does not hold: never judged, so it counts as an owner that stays.
    Unjudged,
    /// No such owner. The path and uid a fresh read must confirm gone, if there is a path at
    /// which the owner could be (there is none for a namespaced owner of a cluster-scoped
    /// dependent: such a reference can never resolve).
    Gone(Option<(String, String)>),
    Present(&'s Object<'a>),
}

fn resolve<'s, 'a>(
    kinds: &[Kind],
    index: &HashMap<&str, &'s Object<'a>>,
    dependent: &Object<'_>,
    r: &OwnerReference,
) -> Owner<'s, 'a> {
    let group = r.api_version.split_once('/').map_or("", |(g, _)| g);
    let Some(kind) = kinds.iter().find(|k| k.group == group && k.kind == r.kind) else {
        return Owner::Unjudged;
    };
    let namespace = if kind.cluster {
        None
    } else if dependent.kind.cluster {
        return Owner::Gone(None);
    } else {
        dependent.meta.namespace.as_deref()
    };
    match index.get(r.uid.as_str()) {
        Some(o) if o.kind == *kind && o.name == r.name && o.namespace() == namespace => Owner::Present(o),
        _ => Owner::Gone(path::of_kind(kind.api_version, kind.kind, namespace, &r.name).map(|p| (p, r.uid.clone()))),
    }
}

/// How a dependent stands towards one of its owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// The owner stays: the dependent keeps the reference.
    Solid,
    /// The owner is gone.
    Dangling,
    /// The owner is being deleted in the foreground: it waits for this dependent to go.
    Waiting,
    /// The owner is being deleted with its dependents orphaned: the reference goes.
    Orphaning,
}

/// A dependent's standing towards one owner, with the path and uid a fresh read must confirm
/// gone when the owner is judged gone.
type Judged = (Standing, Option<(String, String)>);

/// The writes the garbage collector wants now.
pub fn reconcile(snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    let kinds = held();
    let all = objects(snapshot);
    // Only objects something refers to can be owners: indexing just those keeps a round cheap
    // in a namespace of thousands of objects that own nothing.
    let referenced: HashSet<&str> = all.iter().flat_map(|o| o.owner_refs()).map(|r| r.uid.as_str()).collect();
    let index: HashMap<&str, &Object<'_>> =
        all.iter().filter(|o| referenced.contains(o.uid)).map(|o| (o.uid, o)).collect();

    // Every dependent's references, judged; and for every present owner, who refers to it.
    let mut judged: Vec<(&Object<'_>, Vec<Judged>)> = Vec::new();
    let mut dependents: HashMap<&str, Vec<(&Object<'_>, &OwnerReference)>> = HashMap::new();
    for object in &all {
        let refs = object.owner_refs();
        if refs.is_empty() {
            continue;
        }
        let mut standings = Vec::with_capacity(refs.len());
        for r in refs {
            standings.push(match resolve(&kinds, &index, object, r) {
                Owner::Unjudged => (Standing::Solid, None),
                Owner::Gone(check) => (Standing::Dangling, check),
                Owner::Present(owner) => {
                    dependents.entry(owner.uid).or_default().push((object, r));
                    let standing = if !owner.deleting() {
                        Standing::Solid
                    } else if owner.has_finalizer(ORPHAN) {
                        Standing::Orphaning
                    } else if owner.has_finalizer(FOREGROUND) {
                        Standing::Waiting
                    } else {
                        Standing::Solid
                    };
                    (standing, None)
                }
            });
        }
        judged.push((object, standings));
    }

    let mut actions = Vec::new();
    for (object, standings) in &judged {
        if let Some(action) = collect_dependent(object, standings, dependents.contains_key(object.uid)) {
            actions.push(action);
        }
    }
    for owner in all.iter().filter(|o| o.deleting()) {
        let referring = dependents.get(owner.uid).map(Vec::as_slice).unwrap_or_default();
        if let Some(action) = release_owner(owner, referring) {
            actions.push(action);
        }
    }
    actions
}

/// What a dependent needs, given how it stands towards each of its owners (in the order of its
/// `ownerReferences`).
fn collect_dependent(object: &Object<'_>, standings: &[Judged], has_dependents: bool) -> Option<Action> {
    let refs = object.owner_refs();
    let path = object.path()?;
    let is = |s: Standing| standings.iter().any(|(x, _)| *x == s);
    let checks: Vec<(String, String)> =
        standings.iter().filter(|(s, _)| *s == Standing::Dangling).filter_map(|(_, c)| c.clone()).collect();

    if object.deleting() {
        // Its deletion is under way; only an orphaning owner still needs something of it.
        if !is(Standing::Orphaning) {
            return None;
        }
        let keep = refs.iter().zip(standings).filter(|(_, (s, _))| *s != Standing::Orphaning).map(|(r, _)| r);
        return Some(patch_refs(object, &path, keep.collect()));
    }

    let action = if !is(Standing::Solid) && (is(Standing::Dangling) || is(Standing::Waiting)) {
        let propagation = if is(Standing::Waiting) && has_dependents {
            "Foreground"
        } else if object.has_finalizer(ORPHAN) {
            "Orphan"
        } else if object.has_finalizer(FOREGROUND) {
            "Foreground"
        } else {
            "Background"
        };
        Action::Delete { path, uid: Some(object.uid.to_string()), propagation: Some(propagation), grace: None }
    } else if standings.iter().any(|(s, _)| *s != Standing::Solid) {
        let keep = refs.iter().zip(standings).filter(|(_, (s, _))| *s == Standing::Solid).map(|(r, _)| r);
        patch_refs(object, &path, keep.collect())
    } else {
        return None;
    };
    Some(if checks.is_empty() { action } else { Action::Verified { absent: checks, action: Box::new(action) } })
}

fn patch_refs(object: &Object<'_>, path: &str, keep: Vec<&OwnerReference>) -> Action {
    Action::MergePatch {
        path: path.to_string(),
        patch: json!({"metadata": {"ownerReferences": keep, "resourceVersion": object.meta.resource_version}}),
    }
}

/// The finalizer removal an owner being deleted is ready for, given the dependents that still
/// refer to it.
fn release_owner(owner: &Object<'_>, referring: &[(&Object<'_>, &OwnerReference)]) -> Option<Action> {
    let finalizers = owner.meta.finalizers.as_deref().unwrap_or_default();
    let blocked = referring.iter().any(|(_, r)| r.block_owner_deletion == Some(true));
    let done = |f: &String| (f == FOREGROUND && !blocked) || (f == ORPHAN && referring.is_empty());
    if !finalizers.iter().any(done) {
        return None;
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| !done(f)).collect();
    Some(Action::MergePatch {
        path: owner.path()?,
        patch: json!({"metadata": {"finalizers": rest, "resourceVersion": owner.meta.resource_version}}),
    })
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    fn obj<T: DeserializeOwned>(v: Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).expect("fixture"))
    }

    fn owner(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": block})
    }

    fn meta(ns: &str, name: &str, uid: &str, owners: &[Value]) -> Value {
        json!({"namespace": ns, "name": name, "uid": uid, "resourceVersion": "7", "ownerReferences": owners})
    }

    fn pod(ns: &str, name: &str, uid: &str, owners: &[Value]) -> Arc<Pod> {
        obj(json!({"metadata": meta(ns, name, uid, owners)}))
    }

    fn rs(ns: &str, name: &str, uid: &str, owners: &[Value]) -> Arc<ReplicaSet> {
        obj(json!({"metadata": meta(ns, name, uid, owners)}))
    }

    fn rs_ref(name: &str, uid: &str) -> Value {
        owner("apps/v1", "ReplicaSet", name, uid, true)
    }

    /// Marks an object's metadata as being deleted with these finalizers.
    fn deleting(mut v: Value, finalizers: &[&str]) -> Value {
        v["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        v["finalizers"] = json!(finalizers);
        v
    }

    fn snapshot() -> Snapshot {
        Snapshot::empty("2026-01-01T00:01:00Z".parse().expect("time"))
    }

    fn run(s: &Snapshot) -> Vec<Action> {
        reconcile(s, &Config::default())
    }

    fn delete(path: &str, uid: &str, propagation: &'static str) -> Action {
        Action::Delete { path: path.into(), uid: Some(uid.into()), propagation: Some(propagation), grace: None }
    }

    fn verified(absent: &[(&str, &str)], action: Action) -> Action {
        Action::Verified {
            absent: absent.iter().map(|(p, u)| (p.to_string(), u.to_string())).collect(),
            action: Box::new(action),
        }
    }

    #[test]
    fn a_dependent_whose_only_owner_is_gone_is_deleted_once_a_fresh_read_agrees() {
        let mut s = snapshot();
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("web", "rs1")])];
        assert_eq!(
            run(&s),
            vec![verified(
                &[("/apis/apps/v1/namespaces/a/replicasets/web", "rs1")],
                delete("/api/v1/namespaces/a/pods/p", "p1", "Background")
            )]
        );
        // With the owner there, nothing; the same for an owner recreated under the same name.
        s.replica_sets = vec![rs("a", "web", "rs1", &[])];
        assert_eq!(run(&s), vec![]);
        s.replica_sets = vec![rs("a", "web", "rs2", &[])];
        assert_eq!(run(&s).len(), 1, "a new owner of the same name is not the owner");
    }

    #[test]
    fn a_dependent_with_one_owner_left_only_loses_the_reference_to_the_gone_one() {
        let mut s = snapshot();
        let cm = owner("v1", "ConfigMap", "cfg", "cm1", false);
        s.config_maps = vec![obj(json!({"metadata": meta("a", "cfg", "cm1", &[])}))];
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("web", "rs1"), cm.clone()])];
        assert_eq!(
            run(&s),
            vec![verified(
                &[("/apis/apps/v1/namespaces/a/replicasets/web", "rs1")],
                Action::MergePatch {
                    path: "/api/v1/namespaces/a/pods/p".into(),
                    patch: json!({"metadata": {"ownerReferences": [cm.clone()], "resourceVersion": "7"}}),
                }
            )]
        );
        // After the patch: steady.
        s.pods = vec![pod("a", "p", "p1", &[cm])];
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn owners_of_kinds_the_snapshot_does_not_hold_are_never_judged() {
        let mut s = snapshot();
        let job = owner("batch/v1", "Job", "j", "job1", true);
        s.pods = vec![pod("a", "p", "p1", std::slice::from_ref(&job))];
        assert_eq!(run(&s), vec![]);
        // A kind of the same name in another group is not the held one either.
        s.pods = vec![pod("a", "p", "p1", &[owner("example.com/v1", "Service", "x", "x1", true)])];
        assert_eq!(run(&s), vec![]);
        // An unjudged owner counts as one that stays: the gone one's reference goes, the pod stays.
        s.pods = vec![pod("a", "p", "p1", &[job.clone(), rs_ref("web", "rs1")])];
        let actions = run(&s);
        assert_eq!(actions.len(), 1);
        let Action::Verified { action, .. } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(
            **action,
            Action::MergePatch {
                path: "/api/v1/namespaces/a/pods/p".into(),
                patch: json!({"metadata": {"ownerReferences": [job], "resourceVersion": "7"}}),
            }
        );
    }

    #[test]
    fn a_node_owns_its_lease_across_namespaces() {
        let mut s = snapshot();
        let node_ref = owner("v1", "Node", "n1", "node1", false);
        s.leases = vec![obj(json!({"metadata": meta("kube-node-lease", "n1", "l1", &[node_ref])}))];
        s.nodes = vec![obj(json!({"metadata": {"name": "n1", "uid": "node1"}}))];
        assert_eq!(run(&s), vec![]);
        s.nodes = vec![];
        assert_eq!(
            run(&s),
            vec![verified(
                &[("/api/v1/nodes/n1", "node1")],
                delete("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "l1", "Background")
            )]
        );
    }

    #[test]
    fn a_namespaced_owner_in_another_namespace_counts_as_gone() {
        let mut s = snapshot();
        s.replica_sets = vec![rs("b", "web", "rs1", &[])];
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("web", "rs1")])];
        assert_eq!(
            run(&s),
            vec![verified(
                &[("/apis/apps/v1/namespaces/a/replicasets/web", "rs1")],
                delete("/api/v1/namespaces/a/pods/p", "p1", "Background")
            )]
        );
    }

    #[test]
    fn dependents_being_deleted_are_left_alone() {
        let mut s = snapshot();
        s.pods = vec![obj(json!({"metadata": deleting(meta("a", "p", "p1", &[rs_ref("web", "rs1")]), &[])}))];
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn foreground_deletion_goes_down_the_chain_and_waits_for_it() {
        let d = deleting(meta("a", "d", "d1", &[]), &[FOREGROUND]);
        let d_ref = owner("apps/v1", "Deployment", "d", "d1", true);
        let d_loose = owner("apps/v1", "Deployment", "d", "d1", false);
        let mut s = snapshot();
        s.deployments = vec![obj(json!({"metadata": d.clone()}))];
        s.replica_sets = vec![
            rs("a", "r1", "r1", std::slice::from_ref(&d_ref)),
            rs("a", "r2", "r2", std::slice::from_ref(&d_loose)),
        ];
        let cm = owner("v1", "ConfigMap", "cfg", "cm1", false);
        s.config_maps = vec![obj(json!({"metadata": meta("a", "cfg", "cm1", &[])}))];
        // A pod of r1; and a pod that also has an owner that stays.
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("r1", "r1")]), pod("a", "q", "q1", &[d_ref.clone(), cm.clone()])];
        assert_eq!(
            run(&s),
            vec![
                Action::MergePatch {
                    path: "/api/v1/namespaces/a/pods/q".into(),
                    patch: json!({"metadata": {"ownerReferences": [cm], "resourceVersion": "7"}}),
                },
                // r1 has a pod: deleted in the foreground; r2 has none.
                delete("/apis/apps/v1/namespaces/a/replicasets/r1", "r1", "Foreground"),
                delete("/apis/apps/v1/namespaces/a/replicasets/r2", "r2", "Background"),
            ]
        );

        // r1 now waits for its pod; r2 is gone; q no longer refers to d.
        s.replica_sets = vec![obj(json!({"metadata": deleting(meta("a", "r1", "r1", &[d_ref]), &[FOREGROUND])}))];
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("r1", "r1")])];
        assert_eq!(run(&s), vec![delete("/api/v1/namespaces/a/pods/p", "p1", "Background")]);

        // The pod is terminating (graceful): it still blocks r1, and r1 blocks d.
        s.pods = vec![obj(json!({"metadata": deleting(meta("a", "p", "p1", &[rs_ref("r1", "r1")]), &[])}))];
        assert_eq!(run(&s), vec![]);

        // The pod is gone: r1's finalizer goes (and the API server removes r1).
        s.pods = vec![];
        assert_eq!(
            run(&s),
            vec![Action::MergePatch {
                path: "/apis/apps/v1/namespaces/a/replicasets/r1".into(),
                patch: json!({"metadata": {"finalizers": [], "resourceVersion": "7"}}),
            }]
        );

        // r1 is gone: d's finalizer goes.
        s.replica_sets = vec![];
        assert_eq!(
            run(&s),
            vec![Action::MergePatch {
                path: "/apis/apps/v1/namespaces/a/deployments/d".into(),
                patch: json!({"metadata": {"finalizers": [], "resourceVersion": "7"}}),
            }]
        );
    }

    #[test]
    fn dependents_that_do_not_block_do_not_hold_up_a_foreground_deletion() {
        let mut s = snapshot();
        s.replica_sets =
            vec![obj(json!({"metadata": deleting(meta("a", "r1", "r1", &[]), &["example.com/keep", FOREGROUND])}))];
        s.pods = vec![obj(json!({"metadata": deleting(
            meta("a", "p", "p1", &[owner("apps/v1", "ReplicaSet", "r1", "r1", false)]), &[])}))];
        assert_eq!(
            run(&s),
            vec![Action::MergePatch {
                path: "/apis/apps/v1/namespaces/a/replicasets/r1".into(),
                patch: json!({"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "7"}}),
            }]
        );
        // After the patch only another finalizer remains: nothing more to do.
        s.replica_sets = vec![obj(json!({"metadata": deleting(meta("a", "r1", "r1", &[]), &["example.com/keep"])}))];
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn orphaning_removes_the_references_then_the_finalizer() {
        let mut s = snapshot();
        s.replica_sets = vec![obj(json!({"metadata": deleting(meta("a", "r1", "r1", &[]), &[ORPHAN])}))];
        s.pods = vec![
            pod("a", "p", "p1", &[rs_ref("r1", "r1")]),
            // Orphaned even while terminating.
            obj(json!({"metadata": deleting(meta("a", "q", "q1", &[rs_ref("r1", "r1")]), &[])})),
        ];
        let unowned = |name: &str| Action::MergePatch {
            path: format!("/api/v1/namespaces/a/pods/{name}"),
            patch: json!({"metadata": {"ownerReferences": [], "resourceVersion": "7"}}),
        };
        assert_eq!(run(&s), vec![unowned("p"), unowned("q")]);

        s.pods = vec![pod("a", "p", "p1", &[]), pod("a", "q", "q1", &[])];
        assert_eq!(
            run(&s),
            vec![Action::MergePatch {
                path: "/apis/apps/v1/namespaces/a/replicasets/r1".into(),
                patch: json!({"metadata": {"finalizers": [], "resourceVersion": "7"}}),
            }]
        );
        s.replica_sets = vec![];
        assert_eq!(run(&s), vec![]);
    }

    #[test]
    fn a_steady_cluster_wants_nothing() {
        let mut s = snapshot();
        s.namespaces = vec![obj(json!({"metadata": {"name": "a", "uid": "ns1"}}))];
        s.nodes = vec![obj(json!({"metadata": {"name": "n1", "uid": "node1"}}))];
        s.leases = vec![obj(json!({"metadata": meta("kube-node-lease", "n1", "l1",
            &[owner("v1", "Node", "n1", "node1", false)])}))];
        s.deployments = vec![obj(json!({"metadata": meta("a", "d", "d1", &[])}))];
        s.replica_sets = vec![rs("a", "r1", "r1", &[owner("apps/v1", "Deployment", "d", "d1", true)])];
        s.pods = vec![pod("a", "p", "p1", &[rs_ref("r1", "r1")]), pod("a", "q", "q1", &[rs_ref("r1", "r1")])];
        s.endpoint_slices = vec![obj(json!({"metadata": meta("a", "svc-x", "es1",
            &[owner("v1", "Service", "svc", "svc1", true)]), "addressType": "IPv4", "endpoints": []}))];
        s.services = vec![obj(json!({"metadata": meta("a", "svc", "svc1", &[])}))];
        assert_eq!(run(&s), vec![]);
        // A terminating owner without the collector's finalizers is still an owner.
        s.deployments = vec![obj(json!({"metadata": deleting(meta("a", "d", "d1", &[]), &["example.com/keep"])}))];
        assert_eq!(run(&s), vec![]);
    }
}
