//! Real network faults between servers on loopback, with iptables.
//!
//! Servers of a [`crate::ProcessCluster`] listen on, and connect from, their own loopback address
//! (`127.0.0.11`, `.12`, ...), so dropping packets between two of those addresses cuts exactly
//! the link between two servers while clients on `127.0.0.1` still reach both. Rules live in a
//! chain of their own, removed when the [`NetFault`] is dropped (also when a test panics).

use std::process::Command;

/// An iptables chain holding this test's DROP rules.
pub struct NetFault {
    chain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NetFaultError {
    #[error("iptables {args}: {stderr}")]
    Iptables { args: String, stderr: String },
    #[error("cannot run iptables: {0}")]
    Spawn(#[from] std::io::Error),
}

fn iptables(args: &[&str]) -> Result<(), NetFaultError> {
    let out = Command::new("iptables").arg("-w").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetFaultError::Iptables { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).into() })
    }
}

impl NetFault {
    /// Creates an empty chain jumped to from INPUT, after removing chains that killed test
    /// processes left behind.
    pub fn new() -> Result<Self, NetFaultError> {
        remove_stale_chains();
        let chain = format!("SKIFF-{}", std::process::id());
        remove_chain(&chain);
        iptables(&["-N", &chain])?;
        iptables(&["-I", "INPUT", "-j", &chain])?;
        Ok(Self { chain })
    }

    /// Drops every packet between `a` and `b` (both directions).
    pub fn cut(&self, a: &str, b: &str) -> Result<(), NetFaultError> {
        iptables(&["-A", &self.chain, "-s", a, "-d", b, "-j", "DROP"])?;
        iptables(&["-A", &self.chain, "-s", b, "-d", a, "-j", "DROP"])
    }

    /// Cuts `ip` off from each of `others`.
    pub fn isolate(&self, ip: &str, others: &[&str]) -> Result<(), NetFaultError> {
        for o in others {
            self.cut(ip, o)?;
        }
        Ok(())
    }

    /// Removes every rule (the network is whole again).
    pub fn heal(&self) -> Result<(), NetFaultError> {
        iptables(&["-F", &self.chain])
    }
}

fn remove_chain(chain: &str) {
    let _ = iptables(&["-D", "INPUT", "-j", chain]);
    let _ = iptables(&["-F", chain]);
    let _ = iptables(&["-X", chain]);
}

/// Chains named after processes that no longer exist.
fn remove_stale_chains() {
    let Ok(out) = Command::new("iptables").args(["-w", "-S"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(chain) = line.strip_prefix("-N ") else { continue };
        let Some(pid) = chain.strip_prefix("SKIFF-") else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_chain(chain);
        }
    }
}

impl Drop for NetFault {
    fn drop(&mut self) {
        remove_chain(&self.chain);
    }
}
