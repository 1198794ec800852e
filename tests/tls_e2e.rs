//! The API port over TLS, with the installed kubectl and a cluster PKI made by `skiff_pki`:
//! kubectl works with an admin kubeconfig, the scheduler and controllers work through TLS with
//! their own certificate, plain HTTP and unauthenticated or wrongly authenticated callers are
//! refused, bearer tokens from a token file work, and a replaced serving certificate is served
//! without a restart.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skiff_client::Client;
use skiff_client::ClientTls;
use skiff_pki::Pki;
use support::eventually;
use support::Kubectl;
use support::SimNodes;

mod support;

const DAY: Duration = Duration::from_secs(86_400);

fn write_kubeconfig(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// `curl` against the API: the HTTP status it got (0 when the TLS handshake itself failed).
fn curl(args: &[&str]) -> u16 {
    let out =
        Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// The serial number of the certificate the server at `addr` presents.
fn served_serial(addr: &str, ca: &Path) -> String {
    let script = format!(
        "echo | openssl s_client -connect {addr} -CAfile {} 2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_over_tls_with_certificates_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki")).expect("pki");
    let ips: Vec<String> = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.1"].map(String::from).to_vec();
    let masters = ["system:masters".to_string()];
    pki.issue_client("system:skiff-components", &masters, DAY)
        .expect("component cert")
        .write(dir.path(), "components")
        .expect("write");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "tok-robot,robot,42,\"bots\"\n").expect("token file");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let ca = dir.path().join("pki").join(skiff_pki::CA_CERT);
    let extra = vec![
        "--token-auth-file".into(),
        tokens.display().to_string(),
        "--component-cert-file".into(),
        path("components.crt"),
        "--component-key-file".into(),
        path("components.key"),
    ];
    // The same PKI directory: `start` keeps the CA made above.
    let (cluster, _) = skiff_testkit::tls::start(dir.path(), extra).await.expect("cluster");
    let addr = cluster.servers[0].api_addr.clone();
    let url = format!("https://{addr}");

    // kubectl with an admin kubeconfig, unchanged.
    let admin = pki.issue_client("admin", &masters, DAY).expect("admin cert");
    let admin_config = skiff_pki::kubeconfig("skiff", &url, pki.ca_pem(), "admin", &admin);
    let kubeconfig = write_kubeconfig(dir.path(), "admin.kubeconfig", &admin_config);
    let k = Kubectl { kubeconfig, cache: dir.path().join("cache") };
    let ns = eventually("kubectl get ns over TLS", Duration::from_secs(20), || async {
        let out = k.run(&["get", "ns"]);
        (out.ok && out.stdout.contains("kube-system")).then_some(out.stdout)
    })
    .await;
    support::assert_has(&ns, "default");

    // The scheduler and controllers reach the API over TLS as their own users, authorized by
    // RBAC: a deployment's pods are created and bound.
    let tls = ClientTls::from_files(&ca, &dir.path().join("components.crt"), &dir.path().join("components.key"))
        .expect("client files");
    let clients: Vec<Client> =
        cluster.servers.iter().map(|s| Client::with_tls(&s.api_addr, &tls).expect("tls client")).collect();
    let nodes = SimNodes::start(clients.clone());
    nodes.add("n1", "8").await;
    k.ok(&["create", "deployment", "web", "--image=registry.local/web:1", "--replicas=2"]);
    support::assert_has(&k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]), "successfully rolled out");
    let pods = clients[1].list::<Value>("/api/v1/namespaces/default/pods").await.expect("pods over TLS").items;
    assert_eq!(pods.iter().filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some("n1")).count(), 2);

    // Plain HTTP is told to use TLS and changes nothing.
    let (code, body) =
        skiff_testkit::cluster::http_get(&addr, "/api/v1/namespaces").await.expect("an answer to plain HTTP");
    assert_eq!(code, 400);
    support::assert_has(&body, "Client sent an HTTP request to an HTTPS server.");

    // Anonymous callers get health and version only.
    let cafile = ca.display().to_string();
    assert_eq!(curl(&["--cacert", &cafile, &format!("{url}/version")]), 200);
    assert_eq!(curl(&["--cacert", &cafile, &format!("{url}/readyz")]), 200);
    assert_eq!(curl(&["--cacert", &cafile, &format!("{url}/api/v1/namespaces")]), 401);
    // kubectl with a token nobody issued is told it is not logged in.
    let user_block = admin_config
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| if l.trim_start() == "user:" { format!("{l}\n    token: not-a-real-token") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let forged = write_kubeconfig(dir.path(), "forged.kubeconfig", &user_block);
    let forged = Kubectl { kubeconfig: forged, cache: dir.path().join("cache-forged") };
    support::assert_has(&forged.fails(&["get", "pods"]), "You must be logged in to the server");
    // With the token the file lists it is authenticated, but has no permissions until a
    // binding grants its group some.
    let robot = write_kubeconfig(dir.path(), "robot.kubeconfig", &user_block.replace("not-a-real-token", "tok-robot"));
    let robot = Kubectl { kubeconfig: robot, cache: dir.path().join("cache-robot") };
    support::assert_has(
        &robot.fails(&["get", "ns"]),
        "namespaces is forbidden: User \"robot\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
    );
    k.ok(&["create", "clusterrolebinding", "bots-view", "--clusterrole=view", "--group=bots"]);
    eventually("the binding to reach the authorizer", Duration::from_secs(10), || async {
        let out = robot.run(&["get", "ns"]);
        (out.ok && out.stdout.contains("kube-system")).then_some(())
    })
    .await;

    // Bearer tokens from the token file; an unknown token is refused even where anonymous
    // access would do.
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    assert_eq!(curl(&["--cacert", &cafile, "-H", &bearer("tok-robot"), &format!("{url}/api/v1/namespaces")]), 200);
    assert_eq!(curl(&["--cacert", &cafile, "-H", &bearer("nope"), &format!("{url}/api/v1/namespaces")]), 401);

    // A client certificate from another CA is not accepted.
    let other = Pki::init(dir.path().join("other-pki")).expect("other pki");
    let stranger = other.issue_client("admin", &masters, DAY).expect("stranger cert");
    let stranger_config = write_kubeconfig(
        dir.path(),
        "stranger.kubeconfig",
        &skiff_pki::kubeconfig("skiff", &url, pki.ca_pem(), "admin", &stranger),
    );
    let s = Kubectl { kubeconfig: stranger_config, cache: dir.path().join("cache-stranger") };
    let refused = s.fails(&["get", "pods"]);
    assert!(!refused.is_empty(), "the stranger was refused with a message");

    // A new serving certificate in the same files is served without a restart.
    let before = served_serial(&addr, &ca);
    assert!(before.starts_with("serial="), "{before}");
    pki.issue_server("skiff-server", &ips, DAY).expect("new serving cert").write(dir.path(), "server").expect("write");
    let after = eventually("the new certificate to be served", Duration::from_secs(15), || async {
        let now = served_serial(&addr, &ca);
        (now.starts_with("serial=") && now != before).then_some(now)
    })
    .await;
    println!("serving certificate reloaded: {before} -> {after}");
    k.ok(&["get", "ns"]);
}
