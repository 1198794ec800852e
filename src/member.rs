//! `skiff member list|add|remove`.

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
    let client = RemoteStore::new(endpoints.clone(), Duration::from_secs(5)).map_err(|e| anyhow::anyhow!("{e}"))?;
    match args.command {
        MemberCommand::List { output } => {
            let mut status = None;
            for i in 0..endpoints.len() {
                if let Ok(s) = client.status_of(i).await {
                    status = Some(s);
                    break;
                }
            }
            let status = status.with_context(|| format!("no server reachable at {}", args.server))?;
            let mut rows = Vec::new();
            for m in &status.members {
                let each = RemoteStore::new(vec![m.addr.clone()], Duration::from_secs(2))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
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
