//! `skiff member list|add|remove`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use skiff_raft::RemoteStore;

#[derive(Args, Debug)]
pub struct MemberArgs {
    /// Raft address(es) of any server(s), comma-separated.
    #[arg(long, env = "SKIFF_SERVER", global = true, default_value = "127.0.0.1:7001")]
    pub server: String,
    /// The cluster CA, for servers whose Raft port uses mutual TLS (with --cert-file and
    /// --key-file). Their certificates must be peer certificates signed by it.
    #[arg(long, env = "SKIFF_CA_FILE", global = true, requires_all = ["cert_file", "key_file"])]
    pub ca_file: Option<PathBuf>,
    /// The client certificate to present: signed by the cluster CA, in the group
    /// `system:masters` (e.g. `skiff pki client --user admin --group system:masters`).
    #[arg(long, env = "SKIFF_CERT_FILE", global = true, requires_all = ["ca_file", "key_file"])]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    #[arg(long, env = "SKIFF_KEY_FILE", global = true, requires_all = ["ca_file", "cert_file"])]
    pub key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Show every member with its role, term and applied index.
    List {
        /// `table` or `json`.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Add a server: first as a learner; promoted to voter once it has caught up.
    Add { id: u64, addr: String },
    /// Remove a server from the cluster.
    Remove { id: u64 },
}

#[derive(serde::Serialize)]
struct Row {
    id: u64,
    addr: String,
    voter: bool,
    role: String,
    term: Option<u64>,
    applied: Option<u64>,
    leader: Option<u64>,
}

pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    let endpoints: Vec<String> =
        args.server.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let tls = match (&args.ca_file, &args.cert_file, &args.key_file) {
        (Some(ca), Some(cert), Some(key)) => {
            let files = skiff_raft::tls::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
            Some(skiff_raft::tls::client_tls(&files).context("loading --ca-file, --cert-file and --key-file")?)
        }
        _ => None,
    };
    let connect = |endpoints: Vec<String>, timeout: Duration| -> anyhow::Result<RemoteStore> {
        let client = match &tls {
            Some(config) => RemoteStore::with_tls_config(endpoints, timeout, Arc::clone(config)),
            None => RemoteStore::new(endpoints, timeout),
        };
        client.map_err(|e| anyhow::anyhow!("{e}"))
    };
    let client = connect(endpoints.clone(), Duration::from_secs(5))?;
    match args.command {
        MemberCommand::List { output } => {
            let mut status = Err(anyhow::anyhow!("no server given"));
            for i in 0..endpoints.len() {
                status = client.status_of(i).await.map_err(|e| anyhow::anyhow!("{e}"));
                if status.is_ok() {
                    break;
                }
            }
            let status = status.with_context(|| format!("no server reachable at {}", args.server))?;
            let mut rows = Vec::new();
            for m in &status.members {
                let each = connect(vec![m.addr.clone()], Duration::from_secs(2))?;
                let row = match each.status_of(0).await {
                    Ok(s) => Row {
                        id: m.id,
                        addr: m.addr.clone(),
                        voter: m.voter,
                        role: s.role,
                        term: Some(s.term),
                        applied: Some(s.applied),
                        leader: s.leader,
                    },
                    Err(_) => Row {
                        id: m.id,
                        addr: m.addr.clone(),
                        voter: m.voter,
                        role: "unreachable".into(),
                        term: None,
                        applied: None,
                        leader: None,
                    },
                };
                rows.push(row);
            }
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<4} {:<22} {:<8} {:<12} {:<6} {:<10}", "ID", "ADDRESS", "VOTER", "ROLE", "TERM", "APPLIED");
                let dash = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
                for r in rows {
                    println!(
                        "{:<4} {:<22} {:<8} {:<12} {:<6} {:<10}",
                        r.id,
                        r.addr,
                        r.voter,
                        r.role,
                        dash(r.term),
                        dash(r.applied)
                    );
                }
            }
        }
        MemberCommand::Add { id, addr } => {
            let members = client.add_member(id, &addr).await.map_err(|e| anyhow::anyhow!("add member {id}: {e}"))?;
            println!("added server {id}; members: {}", describe(&members));
        }
        MemberCommand::Remove { id } => {
            let members = client.remove_member(id).await.map_err(|e| anyhow::anyhow!("remove member {id}: {e}"))?;
            println!("removed server {id}; members: {}", describe(&members));
        }
    }
    Ok(())
}

fn describe(members: &[skiff_raft::node::MemberInfo]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}{}", m.id, m.addr, if m.voter { "" } else { " (learner)" }))
        .collect::<Vec<_>>()
        .join(", ")
}
