//! `skiff`: the one binary of the skiff control plane.

mod agent;
mod encryption;
mod http;
mod local;
mod member;
mod pki;
mod server;
mod tls;

use clap::Parser;
use clap::Subcommand;

#[derive(Parser)]
#[command(name = "skiff", version, about = "A Kubernetes-compatible, highly available control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at startup; the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a control-plane server (one member of the Raft cluster).
    Server(server::ServerArgs),
    /// Run the node agent (the kubelet): pods in containerd through CRI, networking through CNI.
    Agent(agent::AgentArgs),
    /// List, add or remove the Raft members.
    Member(member::MemberArgs),
    /// Start or stop a local HA cluster on this machine.
    Local(local::LocalArgs),
    /// Create the cluster CA and issue server and client certificates.
    Pki(pki::PkiArgs),
    /// Print a kubeconfig with a freshly signed client certificate (admin use).
    Kubeconfig(pki::KubeconfigArgs),
}

/// The API path allocates many small, short-lived JSON nodes; glibc's malloc and free were
/// about a sixth of the leader's CPU on pod creates (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Member(args) => member::run(args).await,
            Command::Local(args) => local::run(args).await,
            Command::Pki(args) => pki::run(args),
            Command::Kubeconfig(args) => pki::kubeconfig(args),
        }
    })
}
