//! A cluster of real servers whose API ports speak only TLS, with the cluster PKI that signed
//! its certificates: client certificates of that CA authenticate (and are authorized by RBAC),
//! and service-account tokens are issued and accepted.

use std::path::Path;
use std::time::Duration;

use skiff_pki::Pki;

use crate::cluster::skiff_binary;
use crate::ClusterError;
use crate::ClusterOptions;
use crate::ProcessCluster;

const DAY: Duration = Duration::from_secs(86_400);

/// Creates a PKI in `dir/pki`, a serving certificate for every server's address (and
/// 127.0.0.1) in `dir/server.crt`, and starts three servers with TLS, the CA as client CA and
/// the PKI's service-account keys, plus `extra_args`.
pub async fn start(dir: &Path, extra_args: Vec<String>) -> Result<(ProcessCluster, Pki), ClusterError> {
    let pki_error = |e: skiff_pki::PkiError| ClusterError::Pki(e.to_string());
    let pki = Pki::init(dir.join("pki")).map_err(pki_error)?;
    let ips: Vec<String> = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.1"].map(String::from).to_vec();
    pki.issue_server("skiff-server", &ips, DAY).and_then(|c| c.write(dir, "server")).map_err(pki_error)?;
    let path = |name: &str| dir.join(name).display().to_string();
    let pki_path = |name: &str| dir.join("pki").join(name).display().to_string();
    let mut args = vec![
        "--tls-cert-file".into(),
        path("server.crt"),
        "--tls-private-key-file".into(),
        path("server.key"),
        "--client-ca-file".into(),
        pki_path(skiff_pki::CA_CERT),
        "--service-account-signing-key-file".into(),
        pki_path(skiff_pki::SA_KEY),
        "--service-account-key-file".into(),
        pki_path(skiff_pki::SA_PUB),
    ];
    args.extend(extra_args);
    let options = ClusterOptions { extra_args: args, api_tls: true, ..Default::default() };
    let cluster = ProcessCluster::start(&skiff_binary(), options).await?;
    cluster.wait_leader(Duration::from_secs(20)).await?;
    Ok((cluster, pki))
}
