//! Authentication and authorization end to end, on a TLS cluster with a cluster PKI: the denial
//! matrix (every kind of caller × every verb × a namespaced resource in its own namespace, in
//! another, a cluster-scoped resource and a secret, each cell checked against what it must get,
//! and every refused write checked to have changed nothing), then the same rules seen through
//! the installed kubectl: Forbidden messages, `auth can-i`, `auth whoami`, impersonation,
//! service-account tokens from `kubectl create token`, and the node authorizer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientError;
use skiff_client::ClientTls;
use skiff_pki::Issued;
use skiff_pki::Pki;
use skiff_testkit::ProcessCluster;
use support::eventually;
use support::Kubectl;

mod support;

const DAY: Duration = Duration::from_secs(86_400);

/// A TLS cluster with client certificates, service-account tokens and its PKI.
struct Secure {
    cluster: ProcessCluster,
    pki: Pki,
    dir: tempfile::TempDir,
    admin: Client,
}

impl Secure {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cluster, pki) = support::tls_cluster(dir.path()).await;
        let mut secure = Self { cluster, pki, dir, admin: Client::new("unused:1") };
        secure.admin = secure.client_as("admin", &["system:masters"]);
        let admin = secure.admin.clone();
        eventually("the API to answer the admin", Duration::from_secs(20), || async {
            admin.get::<Value>("/api/v1/namespaces/default").await.ok()
        })
        .await;
        secure
    }

    fn addr(&self) -> &str {
        &self.cluster.servers[0].api_addr
    }

    fn tls_of(&self, issued: &Issued) -> ClientTls {
        ClientTls {
            ca_pem: self.pki.ca_pem().as_bytes().to_vec(),
            cert_pem: issued.cert_pem.as_bytes().to_vec(),
            key_pem: issued.key_pem.as_bytes().to_vec(),
        }
    }

    fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let issued = self.pki.issue_client(user, &groups, DAY).expect("client cert");
        Client::with_tls(self.addr(), &self.tls_of(&issued)).expect("client")
    }

    fn anonymous(&self) -> Client {
        Client::with_tls(self.addr(), &ClientTls::ca_only(self.pki.ca_pem().as_bytes().to_vec())).expect("client")
    }

    fn kubeconfig(&self, name: &str, user: &str, groups: &[&str]) -> Kubectl {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let issued = self.pki.issue_client(user, &groups, DAY).expect("client cert");
        let text =
            skiff_pki::kubeconfig("skiff", &format!("https://{}", self.addr()), self.pki.ca_pem(), user, &issued);
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).expect("kubeconfig");
        Kubectl { kubeconfig: path, cache: self.dir.path().join(format!("cache-{name}")) }
    }

    /// kubectl authenticating with a bearer token only.
    fn token_kubeconfig(&self, name: &str, token: &str) -> Kubectl {
        let ca = self.dir.path().join("pki").join(skiff_pki::CA_CERT);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n",
            self.addr(),
            ca.display()
        );
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).expect("kubeconfig");
        Kubectl { kubeconfig: path, cache: self.dir.path().join(format!("cache-{name}")) }
    }

    async fn create(&self, path: &str, body: Value) -> Value {
        self.admin.create(path, &body).await.unwrap_or_else(|e| panic!("admin create {path}: {e}"))
    }

    /// A TokenRequest made by the admin.
    async fn token(&self, namespace: &str, account: &str, spec: Value) -> String {
        let answer: Value = self
            .admin
            .create(
                &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"),
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
            )
            .await
            .expect("token request");
        answer.pointer("/status/token").and_then(Value::as_str).expect("a token").to_string()
    }
}

fn binding(name: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject]})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Forbidden,
    /// 401, or the TLS handshake itself refused the client certificate.
    Unauthenticated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    OwnNamespace,
    OtherNamespace,
    ClusterScoped,
    Secret,
}

const TARGETS: [Target; 4] = [Target::OwnNamespace, Target::OtherNamespace, Target::ClusterScoped, Target::Secret];
const VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];
const READS: [&str; 3] = ["get", "list", "watch"];

impl Target {
    fn collection(self) -> &'static str {
        match self {
            Target::OwnNamespace => "/api/v1/namespaces/team-a/configmaps",
            Target::OtherNamespace => "/api/v1/namespaces/team-b/configmaps",
            Target::ClusterScoped => "/api/v1/nodes",
            Target::Secret => "/api/v1/namespaces/team-a/secrets",
        }
    }

    fn object(self, name: &str) -> Value {
        match self {
            Target::ClusterScoped => json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
            Target::Secret => json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "stringData": {"k": "v"}}),
            _ => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::OwnNamespace => "own-ns",
            Target::OtherNamespace => "other-ns",
            Target::ClusterScoped => "cluster",
            Target::Secret => "secret",
        }
    }
}

/// One kind of caller and what it must get.
struct Subject {
    name: &'static str,
    client: Client,
    expect: fn(&str, Target) -> Outcome,
}

fn unauthenticated(_: &str, _: Target) -> Outcome {
    Outcome::Unauthenticated
}

fn nothing(_: &str, _: Target) -> Outcome {
    Outcome::Forbidden
}

fn view_in_own(verb: &str, t: Target) -> Outcome {
    if t == Target::OwnNamespace && READS.contains(&verb) {
        Outcome::Allowed
    } else {
        Outcome::Forbidden
    }
}

fn edit_in_own(_: &str, t: Target) -> Outcome {
    if matches!(t, Target::OwnNamespace | Target::Secret) {
        Outcome::Allowed
    } else {
        Outcome::Forbidden
    }
}

fn node(verb: &str, t: Target) -> Outcome {
    if t == Target::ClusterScoped && READS.contains(&verb) {
        Outcome::Allowed
    } else {
        Outcome::Forbidden
    }
}

fn everything(_: &str, _: Target) -> Outcome {
    Outcome::Allowed
}

fn outcome<T>(result: Result<T, ClientError>) -> Result<Outcome, String> {
    match result {
        Ok(_) => Ok(Outcome::Allowed),
        Err(ClientError::Status { code: 401, .. }) => Ok(Outcome::Unauthenticated),
        Err(ClientError::Status { code: 403, .. }) => Ok(Outcome::Forbidden),
        // The handshake refused the certificate: the request never reached the API.
        Err(ClientError::Transport(message)) if !message.contains("no answer") => Ok(Outcome::Unauthenticated),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn denial_matrix_every_caller_every_verb_every_scope() {
    let s = Secure::start().await;
    for ns in ["team-a", "team-b"] {
        s.create("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .await;
    }
    for t in TARGETS {
        s.create(t.collection(), t.object("target")).await;
    }
    s.create("/api/v1/namespaces/team-a/serviceaccounts", json!({"metadata": {"name": "robot"}})).await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings";
    s.create(rb, binding("viewer-view", "view", json!({"kind": "User", "name": "viewer"}))).await;
    s.create(rb, binding("editor-edit", "edit", json!({"kind": "User", "name": "editor"}))).await;
    s.create(rb, binding("robot-view", "view", json!({"kind": "ServiceAccount", "name": "robot"}))).await;

    let other_ca = Pki::init(s.dir.path().join("other-pki")).expect("other pki");
    let foreign = other_ca.issue_client("admin", &["system:masters".to_string()], DAY).expect("cert");
    let expired = s.pki.issue_client("late", &[], Duration::from_secs(1)).expect("short cert");
    let sa_token = s.token("team-a", "robot", json!({})).await;
    let wrong_audience = s.token("team-a", "robot", json!({"audiences": ["https://not-this-cluster"]})).await;
    let expired_token = {
        let pki_dir = s.dir.path().join("pki");
        let issuer = skiff_apiserver::serviceaccount::TokenIssuer::from_files(
            &pki_dir.join(skiff_pki::SA_KEY),
            &pki_dir.join(skiff_pki::SA_PUB),
            skiff_apiserver::serviceaccount::DEFAULT_ISSUER,
            vec![],
        )
        .expect("issuer");
        let mut claims = issuer.verify(&sa_token).expect("our own token verifies");
        claims.exp -= 3 * 3600;
        claims.iat -= 3 * 3600;
        claims.nbf -= 3 * 3600;
        issuer.sign(&claims).expect("sign")
    };
    let anonymous = s.anonymous();
    let subjects = vec![
        Subject { name: "no-credentials", client: anonymous.clone(), expect: unauthenticated },
        Subject {
            name: "other-ca-cert",
            client: Client::with_tls(s.addr(), &s.tls_of(&foreign)).expect("client"),
            expect: unauthenticated,
        },
        Subject {
            name: "expired-cert",
            client: Client::with_tls(s.addr(), &s.tls_of(&expired)).expect("client"),
            expect: unauthenticated,
        },
        Subject { name: "no-bindings", client: s.client_as("nobody", &["team"]), expect: nothing },
        Subject { name: "view", client: s.client_as("viewer", &[]), expect: view_in_own },
        Subject { name: "edit", client: s.client_as("editor", &[]), expect: edit_in_own },
        Subject { name: "sa-token", client: anonymous.with_bearer(&sa_token), expect: view_in_own },
        Subject { name: "wrong-aud-token", client: anonymous.with_bearer(&wrong_audience), expect: unauthenticated },
        Subject { name: "expired-token", client: anonymous.with_bearer(&expired_token), expect: unauthenticated },
        Subject { name: "node", client: s.client_as("system:node:n1", &["system:nodes"]), expect: node },
        Subject { name: "admin", client: s.client_as("root", &["system:masters"]), expect: everything },
    ];
    // The short certificate has expired by the time it is used.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The bindings are in every server's RBAC cache.
    let viewer = &subjects[4].client;
    eventually("the bindings to reach the authorizer", Duration::from_secs(10), || async {
        viewer.list::<Value>(Target::OwnNamespace.collection()).await.ok()
    })
    .await;

    let mut cells: BTreeMap<(&str, Target, &str), (Outcome, Outcome)> = BTreeMap::new();
    let mut errors = Vec::new();
    for subject in &subjects {
        for t in TARGETS {
            let c = &subject.client;
            let who = subject.name;
            for verb in VERBS {
                let target = format!("{}/target", t.collection());
                let result = match verb {
                    "get" => outcome(c.get::<Value>(&target).await),
                    "list" => outcome(c.list::<Value>(t.collection()).await),
                    "watch" => outcome(c.watch(&format!("{}?timeoutSeconds=1", t.collection()), "0").await),
                    "create" => {
                        outcome(c.create::<_, Value>(t.collection(), &t.object(&format!("made-by-{who}"))).await)
                    }
                    "update" => {
                        let mut current: Value = s.admin.get(&target).await.expect("admin reads the target");
                        current["metadata"]["annotations"] = json!({format!("updated-by-{who}"): "yes"});
                        outcome(c.update::<_, Value>(&target, &current).await)
                    }
                    "patch" => outcome(
                        c.patch_merge::<Value>(
                            &target,
                            &json!({"metadata": {"labels": {format!("patched-by-{who}"): "yes"}}}),
                        )
                        .await,
                    ),
                    _ => {
                        let victim = format!("victim-{who}");
                        s.create(t.collection(), t.object(&victim)).await;
                        outcome(c.delete::<Value>(&format!("{}/{victim}", t.collection()), &json!({})).await)
                    }
                };
                match result {
                    Ok(got) => {
                        cells.insert((who, t, verb), ((subject.expect)(verb, t), got));
                    }
                    Err(e) => errors.push(format!("{who} {verb} {}: unexpected answer {e}", t.label())),
                }
            }
        }
    }

    // Every refused write changed nothing; every allowed one happened.
    for t in TARGETS {
        let target: Value = s.admin.get(&format!("{}/target", t.collection())).await.expect("target");
        for subject in &subjects {
            let who = subject.name;
            let allowed = |verb: &str| cells.get(&(who, t, verb)).is_some_and(|(_, got)| *got == Outcome::Allowed);
            let made = s.admin.get::<Value>(&format!("{}/made-by-{who}", t.collection())).await.is_ok();
            let victim = s.admin.get::<Value>(&format!("{}/victim-{who}", t.collection())).await;
            let victim_gone = match victim {
                Err(e) => e.is_not_found(),
                Ok(v) => v.pointer("/metadata/deletionTimestamp").is_some(),
            };
            let patched = target.pointer(&format!("/metadata/labels/patched-by-{who}")).is_some();
            // The update of a later subject replaces the annotations; a refused update must
            // never have written its own.
            let updated = target.pointer(&format!("/metadata/annotations/updated-by-{who}")).is_some();
            for (verb, happened) in [("create", made), ("delete", victim_gone), ("patch", patched)] {
                if happened != allowed(verb) {
                    errors.push(format!(
                        "{who} {verb} {}: allowed={} but happened={happened}",
                        t.label(),
                        allowed(verb)
                    ));
                }
            }
            if updated && !allowed("update") {
                errors.push(format!("{who} update {}: refused but the object changed", t.label()));
            }
        }
    }

    println!("\n{:<16} {}", "subject", TARGETS.map(|t| format!("{:<22}", t.label())).join(""));
    println!("{:<16} {}", "", TARGETS.map(|_| "g l w c u p d         ".to_string()).join(""));
    let mut unexpected_allows = 0;
    let mut mismatches = 0;
    for subject in &subjects {
        let mut row = format!("{:<16} ", subject.name);
        for t in TARGETS {
            for verb in VERBS {
                let mark = match cells.get(&(subject.name, t, verb)) {
                    Some((want, got)) => {
                        if want != got {
                            mismatches += 1;
                            if *got == Outcome::Allowed {
                                unexpected_allows += 1;
                            }
                            errors.push(format!(
                                "{} {verb} {}: expected {want:?}, got {got:?}",
                                subject.name,
                                t.label()
                            ));
                        }
                        match (got, want == got) {
                            (Outcome::Allowed, true) => "✓",
                            (Outcome::Forbidden, true) => "F",
                            (Outcome::Unauthenticated, true) => "U",
                            _ => "!",
                        }
                    }
                    None => "?",
                };
                row.push_str(mark);
                row.push(' ');
            }
            row.push_str("        ");
        }
        println!("{row}");
    }
    println!(
        "cells: {}, unexpected allows: {unexpected_allows}, other mismatches: {}",
        cells.len(),
        mismatches - unexpected_allows
    );
    assert_eq!(cells.len(), subjects.len() * TARGETS.len() * VERBS.len(), "every cell answered: {errors:#?}");
    assert_eq!(unexpected_allows, 0, "{errors:#?}");
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_sees_rbac_impersonation_tokens_and_the_node_authorizer() {
    let s = Secure::start().await;
    s.create("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}))
        .await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings";
    s.create(rb, binding("viewer-view", "view", json!({"kind": "User", "name": "viewer"}))).await;
    let admin = s.kubeconfig("admin", "admin", &["system:masters"]);
    let viewer = s.kubeconfig("viewer", "viewer", &["readers"]);
    eventually("the view binding to reach the authorizer", Duration::from_secs(10), || async {
        viewer.run(&["get", "pods", "-n", "team-a"]).ok.then_some(())
    })
    .await;

    // A view user reads but cannot write, and is told so in upstream's words.
    let refused = viewer.fails(&["run", "web", "--image=registry.local/web:1", "-n", "team-a"]);
    support::assert_has(
        &refused,
        "Error from server (Forbidden): pods is forbidden: User \"viewer\" cannot create resource \"pods\" in API group \"\" in the namespace \"team-a\"",
    );
    support::assert_has(&viewer.fails(&["get", "pods", "-n", "default"]), "in the namespace \"default\"");
    support::assert_has(&viewer.fails(&["get", "nodes"]), "at the cluster scope");
    // can-i answers what the authorizer decides.
    assert_eq!(viewer.run(&["auth", "can-i", "list", "pods", "-n", "team-a"]).stdout.trim(), "yes");
    assert_eq!(viewer.run(&["auth", "can-i", "create", "pods", "-n", "team-a"]).stdout.trim(), "no");
    assert_eq!(viewer.run(&["auth", "can-i", "get", "secrets", "-n", "team-a"]).stdout.trim(), "no");
    assert_eq!(admin.run(&["auth", "can-i", "delete", "nodes"]).stdout.trim(), "yes");
    let rules = viewer.ok(&["auth", "can-i", "--list", "-n", "team-a"]);
    support::assert_has(&rules, "pods ");
    support::assert_has(&rules, "selfsubjectaccessreviews.authorization.k8s.io");
    assert!(!rules.contains("secrets "), "view does not list secrets:\n{rules}");
    // whoami reports the certificate's user and groups.
    let me = viewer.ok(&["auth", "whoami", "-o", "json"]);
    let me: Value = serde_json::from_str(&me).expect("json");
    assert_eq!(me.pointer("/status/userInfo/username").and_then(Value::as_str), Some("viewer"));
    let groups = me.pointer("/status/userInfo/groups").cloned().unwrap_or_default().to_string();
    assert!(groups.contains("readers") && groups.contains("system:authenticated"), "{groups}");

    // Impersonation: the admin may act as the viewer (and gets the viewer's rights); the viewer
    // may not act as anyone.
    admin.ok(&["get", "pods", "-n", "team-a", "--as", "viewer"]);
    support::assert_has(
        &admin.fails(&["run", "web", "--image=registry.local/web:1", "-n", "team-a", "--as", "viewer"]),
        "User \"viewer\" cannot create resource \"pods\"",
    );
    support::assert_has(&admin.ok(&["auth", "whoami", "--as", "jane", "--as-group", "devs"]), "devs");
    support::assert_has(
        &viewer.fails(&["get", "pods", "-n", "team-a", "--as", "admin"]),
        "users \"admin\" is forbidden: User \"viewer\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
    );

    // A namespace admin hands out what it holds, and nothing more.
    s.create(rb, binding("owner-admin", "admin", json!({"kind": "User", "name": "owner"}))).await;
    let owner = s.kubeconfig("owner", "owner", &[]);
    eventually("the admin binding to reach the authorizer", Duration::from_secs(10), || async {
        owner.run(&["get", "rolebindings", "-n", "team-a"]).ok.then_some(())
    })
    .await;
    owner.ok(&["create", "rolebinding", "jane-view", "--clusterrole=view", "--user=jane", "-n", "team-a"]);
    support::assert_has(
        &owner.fails(&[
            "create",
            "rolebinding",
            "jane-root",
            "--clusterrole=cluster-admin",
            "--user=jane",
            "-n",
            "team-a",
        ]),
        "is attempting to grant RBAC permissions not currently held",
    );
    support::assert_has(
        &owner.fails(&["create", "role", "nodes-reader", "--verb=get", "--resource=nodes", "-n", "team-a"]),
        "is attempting to grant RBAC permissions not currently held",
    );
    owner.ok(&["create", "role", "cm-reader", "--verb=get", "--resource=configmaps", "-n", "team-a"]);

    // Service-account tokens from `kubectl create token`: the account's rights, no more.
    admin.ok(&["create", "serviceaccount", "robot", "-n", "team-a"]);
    admin.ok(&[
        "create",
        "rolebinding",
        "robot-view",
        "--clusterrole=view",
        "--serviceaccount=team-a:robot",
        "-n",
        "team-a",
    ]);
    let token = admin.ok(&["create", "token", "robot", "-n", "team-a", "--duration=15m"]).trim().to_string();
    let robot = s.token_kubeconfig("robot", &token);
    let with_token = |args: &[&str]| robot.run(args);
    let who = with_token(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(who.stdout.trim(), "system:serviceaccount:team-a:robot", "{}", who.stderr);
    eventually("the robot's binding to reach the authorizer", Duration::from_secs(10), || async {
        with_token(&["get", "pods", "-n", "team-a"]).ok.then_some(())
    })
    .await;
    assert!(!with_token(&["get", "secrets", "-n", "team-a"]).ok);
    support::assert_has(
        &admin.fails(&["create", "token", "robot", "-n", "team-a", "--duration=1m"]),
        "may not specify a duration less than 10 minutes",
    );

    // A token bound to a pod dies with the pod. The pod is also how a node gets a secret.
    let used = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "used"}, "stringData": {"k": "v"}});
    s.create("/api/v1/namespaces/team-a/secrets", used).await;
    let unused =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unused"}, "stringData": {"k": "v"}});
    s.create("/api/v1/namespaces/team-a/secrets", unused).await;
    // The node must exist, or pod garbage collection removes pods bound to it.
    s.create("/api/v1/nodes", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
        "spec": {"serviceAccountName": "robot", "nodeName": "n1",
            "containers": [{"name": "c", "image": "registry.local/web:1",
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "used", "key": "k"}}}]}]}});
    s.create("/api/v1/namespaces/team-a/pods", pod).await;
    let bound = admin
        .ok(&["create", "token", "robot", "-n", "team-a", "--bound-object-kind=Pod", "--bound-object-name=holder"])
        .trim()
        .to_string();
    let bound_client = s.anonymous().with_bearer(&bound);
    bound_client.list::<Value>("/api/v1/namespaces/team-a/pods").await.expect("the bound token works");
    let n1 = s.client_as("system:node:n1", &["system:nodes"]);
    let n2 = s.client_as("system:node:n2", &["system:nodes"]);
    n1.get::<Value>("/api/v1/namespaces/team-a/secrets/used").await.expect("n1 runs a pod that uses it");
    let code = |r: Result<Value, ClientError>| match r {
        Ok(_) => 200,
        Err(ClientError::Status { code, .. }) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(code(n1.get("/api/v1/namespaces/team-a/secrets/unused").await), 403, "no pod of n1 uses it");
    assert_eq!(code(n2.get("/api/v1/namespaces/team-a/secrets/used").await), 403, "n2 runs no pod that uses it");
    assert_eq!(code(n1.get("/api/v1/namespaces/team-a/secrets").await), 403, "nodes never list secrets");
    let status = json!({"status": {"phase": "Running"}});
    assert_eq!(code(n2.patch_merge("/api/v1/namespaces/team-a/pods/holder/status", &status).await), 403);
    assert_eq!(code(n1.patch_merge("/api/v1/namespaces/team-a/pods/holder/status", &status).await), 200);
    assert_eq!(code(n1.patch_merge("/api/v1/namespaces/team-a/pods/holder", &status).await), 403, "spec is not its");
    // A node gets tokens only for its pods' accounts, bound to a pod of its own.
    let token_path = "/api/v1/namespaces/team-a/serviceaccounts/robot/token";
    let bound_to_holder = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "holder"}}});
    let unbound = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    assert_eq!(code(n1.create(token_path, &bound_to_holder).await), 200, "its pod's account, bound to its pod");
    assert_eq!(code(n2.create(token_path, &bound_to_holder).await), 403, "not its pod");
    assert_eq!(code(n1.create(token_path, &unbound).await), 403, "a node's tokens are always bound to a pod");
    let other_node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}});
    assert_eq!(code(n1.create("/api/v1/nodes", &other_node).await), 403, "a node registers only itself");
    let label = json!({"metadata": {"labels": {"zone": "a"}}});
    assert_eq!(code(n1.patch_merge("/api/v1/nodes/n1", &label).await), 200, "its own node");
    assert_eq!(code(n2.patch_merge("/api/v1/nodes/n1", &label).await), 403, "another node");
    s.admin
        .delete::<Value>("/api/v1/namespaces/team-a/pods/holder", &json!({"gracePeriodSeconds": 0}))
        .await
        .expect("delete pod");
    eventually("the pod to be gone", Duration::from_secs(10), || async {
        s.admin.get::<Value>("/api/v1/namespaces/team-a/pods/holder").await.err().filter(|e| e.is_not_found())
    })
    .await;
    assert_eq!(code(n1.get("/api/v1/namespaces/team-a/secrets/used").await), 403, "the pod is gone");
    let revoked = bound_client.list::<Value>("/api/v1/namespaces/team-a/pods").await;
    assert!(matches!(revoked, Err(ClientError::Status { code: 401, .. })), "the bound token died with its pod");
}
