//! `skiff pki init|server|peer|client` and `skiff kubeconfig`.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use skiff_pki::Pki;

const DEFAULT_DIR: &str = "/etc/skiff/pki";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Args, Debug)]
pub struct PkiArgs {
    /// The PKI directory: the cluster CA, the service-account key, and issued certificates.
    #[arg(long, global = true, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create the directory, the cluster CA and the service-account signing key; files that
    /// already exist are kept, so running it again changes nothing.
    Init,
    /// Issue a serving certificate (also valid as a client certificate between servers).
    Server(ServingCert),
    /// Issue a peer certificate for a server's Raft port: CN the name, O=skiff:peers, the SANs
    /// peers dial it at; serverAuth and clientAuth (servers present it to each other).
    Peer(ServingCert),
    /// Issue a client certificate: CN is the user name, one O per group.
    Client {
        /// The user name the API server will see.
        #[arg(long)]
        user: String,
        /// A group the API server will see. Repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// File name stem: writes STEM.crt and STEM.key into the PKI directory [default: client-USER].
        #[arg(long)]
        out: Option<String>,
        /// Validity in days (capped at the CA's expiry).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
    },
}

/// What a serving or peer certificate is issued for.
#[derive(Args, Debug)]
pub struct ServingCert {
    /// The certificate's common name (e.g. the server's host name).
    #[arg(long)]
    name: String,
    /// A subject alternative name: an IP address or a DNS name clients dial the server at (for a
    /// peer certificate, the host of this server's Raft address in --peers). Repeat or
    /// comma-separate.
    #[arg(long = "san", required = true, value_delimiter = ',')]
    sans: Vec<String>,
    /// File name stem: writes STEM.crt and STEM.key into the PKI directory [default: server-NAME
    /// or peer-NAME].
    #[arg(long)]
    out: Option<String>,
    /// Validity in days (capped at the CA's expiry).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
}

#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The PKI directory holding the cluster CA.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub pki: PathBuf,
    /// The API server URL the kubeconfig points at, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    pub server: String,
    /// The user name (certificate CN), also used to name the kubeconfig user and context.
    #[arg(long)]
    pub user: String,
    /// A group (certificate O). Repeat for several.
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Validity of the client certificate in days (capped at the CA's expiry).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// The cluster's name in the kubeconfig.
    #[arg(long, default_value = "skiff")]
    pub cluster_name: String,
}

pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    let dir = args.dir;
    match args.command {
        PkiCommand::Init => {
            let existed = dir.join(skiff_pki::CA_CERT).exists();
            let pki = Pki::init(&dir).with_context(|| format!("initialising the PKI in {}", dir.display()))?;
            let what = if existed { "kept the existing" } else { "created a new" };
            println!("{}: {what} cluster CA (expires {})", dir.display(), utc(pki.ca_not_after()));
        }
        PkiCommand::Server(ServingCert { name, sans, out, days }) => {
            let pki = open(&dir)?;
            let issued = pki
                .issue_server(&name, &sans, DAY * days)
                .with_context(|| format!("issuing a serving certificate for {name}"))?;
            write(&dir, &issued, &out.unwrap_or_else(|| format!("server-{name}")))?;
        }
        PkiCommand::Peer(ServingCert { name, sans, out, days }) => {
            let pki = open(&dir)?;
            let issued = pki
                .issue_peer(&name, &sans, DAY * days)
                .with_context(|| format!("issuing a peer certificate for {name}"))?;
            write(&dir, &issued, &out.unwrap_or_else(|| format!("peer-{name}")))?;
        }
        PkiCommand::Client { user, groups, out, days } => {
            let pki = open(&dir)?;
            let issued = pki
                .issue_client(&user, &groups, DAY * days)
                .with_context(|| format!("issuing a client certificate for {user}"))?;
            write(&dir, &issued, &out.unwrap_or_else(|| format!("client-{user}")))?;
        }
    }
    Ok(())
}

/// Prints a kubeconfig with a freshly signed client certificate. Nothing is written to disk: the
/// key exists only in the output.
pub fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    let pki = open(&args.pki)?;
    let issued = pki
        .issue_client(&args.user, &args.groups, DAY * args.days)
        .with_context(|| format!("issuing a client certificate for {}", args.user))?;
    print!("{}", skiff_pki::kubeconfig(&args.cluster_name, &args.server, pki.ca_pem(), &args.user, &issued));
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<Pki> {
    Pki::open(dir).with_context(|| format!("opening the PKI in {} (run `skiff pki init` first)", dir.display()))
}

fn write(dir: &Path, issued: &skiff_pki::Issued, stem: &str) -> anyhow::Result<()> {
    issued.write(dir, stem).with_context(|| format!("writing {stem}.crt and {stem}.key into {}", dir.display()))?;
    let expires = utc(issued.not_after()?);
    println!("wrote {0}/{stem}.crt and {0}/{stem}.key (expires {expires})", dir.display());
    Ok(())
}

fn utc(t: skiff_pki::OffsetDateTime) -> String {
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
