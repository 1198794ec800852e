//! skiff's cluster PKI: one directory holding the cluster CA and the service-account token
//! signing key, and the certificates issued from that CA.
//!
//! ```text
//! ca.crt  ca.key      the cluster CA (ECDSA P-256, self-signed, 10 years)
//! sa.key  sa.pub      the service-account token signing key pair (ECDSA P-256)
//! encryption.keys     the keys that encrypt Secrets at rest (see [`encryption`])
//! STEM.crt STEM.key   certificates issued with `Issued::write`
//! ```
//!
//! Keys are written 0600 and certificates 0644; see `docs/pki.md`.

mod der;
pub mod encryption;
mod files;
mod kubeconfig;
pub mod reload;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::PublicKeyData;
use rcgen::SanType;
use rcgen::SerialNumber;
use rcgen::PKCS_ECDSA_P256_SHA256;

pub use encryption::read_encryption_keys;
pub use encryption::EncryptionKey;
pub use encryption::ENCRYPTION_KEYS;
pub use kubeconfig::kubeconfig;
/// The timestamp type of [`Pki::ca_not_after`] and [`Issued::not_after`].
pub use time::OffsetDateTime;

/// The cluster CA certificate.
pub const CA_CERT: &str = "ca.crt";
/// The cluster CA private key.
pub const CA_KEY: &str = "ca.key";
/// The service-account token signing key (PKCS#8).
pub const SA_KEY: &str = "sa.key";
/// The service-account token verification key (SubjectPublicKeyInfo).
pub const SA_PUB: &str = "sa.pub";
/// The CA's subject common name.
pub const CA_COMMON_NAME: &str = "skiff-ca";
/// The organization (group) of a server's peer certificate: what the Raft port requires of a
/// server (see [`Pki::issue_peer`]).
pub const PEER_GROUP: &str = "skiff:peers";
/// The Kubernetes superuser group; the Raft port also admits it (admin tools).
pub const MASTERS_GROUP: &str = "system:masters";

/// Ten years, leap days included.
const CA_VALIDITY: Duration = Duration::from_secs(3653 * 24 * 60 * 60);
/// How far in the past certificates start, so a member whose clock is slightly behind the
/// issuer's accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::from_secs(60);
const SERIAL_BYTES: usize = 16;
/// Names issued certificates may not be written under: they would replace the CA or the
/// service-account key.
const RESERVED_STEMS: &[&str] = &["ca", "sa"];

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Creating, reading or writing a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file an existing PKI needs is not there.
    #[error("{} is missing", path.display())]
    Missing { path: PathBuf },
    /// One half of a pair exists without the other. Generating the missing half would not match
    /// the existing one, so nothing is written.
    #[error(
        "{} exists but {} does not; restore the missing file, or remove both to generate a new pair",
        present.display(),
        missing.display()
    )]
    Incomplete { present: PathBuf, missing: PathBuf },
    /// An existing file is not the PEM it should be (or the certificate is not a CA).
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// A private key does not belong to the certificate or public key stored next to it.
    #[error("{} does not match {}", key.display(), public.display())]
    KeyMismatch { key: PathBuf, public: PathBuf },
    /// Generating a key, or building or signing a certificate, failed.
    #[error("generating a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// An argument was rejected (an empty name, a malformed SAN, an unusable validity, ...).
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A certificate we generated did not have the structure we rewrite (a bug).
    #[error("internal error: {0}")]
    Encoding(&'static str),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
}

impl fmt::Debug for Issued {
    // Keeps private keys out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

impl Issued {
    /// Writes `dir/stem.crt` (0644) and `dir/stem.key` (0600), atomically replacing earlier
    /// files of that name (which is how a certificate is rotated). `dir` must exist. The stems
    /// `ca` and `sa` are refused: they would overwrite the CA or the service-account key.
    pub fn write(&self, dir: impl AsRef<Path>, stem: &str) -> Result<(), PkiError> {
        let dir = dir.as_ref();
        check_stem(stem)?;
        files::write_replace(&dir.join(format!("{stem}.key")), &self.key_pem, files::KEY_MODE)?;
        files::write_replace(&dir.join(format!("{stem}.crt")), &self.cert_pem, files::CERT_MODE)
    }

    /// When the certificate expires.
    pub fn not_after(&self) -> Result<OffsetDateTime, PkiError> {
        let parse_error = |reason: String| PkiError::Parse { path: PathBuf::from("<issued certificate>"), reason };
        let der = pem_contents(&self.cert_pem, "CERTIFICATE").map_err(parse_error)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| parse_error(e.to_string()))?;
        Ok(cert.validity().not_after.to_datetime().to_offset(time::UtcOffset::UTC))
    }
}

/// The cluster CA and service-account key of one PKI directory, loaded and checked.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
    sa_key_pem: String,
    sa_pub_pem: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).field("ca_not_after", &self.ca_not_after).finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates what is missing of a PKI in `dir` (the directory itself with mode 0700, the CA,
    /// the service-account key pair, the encryption key file) and loads it. Never overwrites:
    /// run on an existing PKI it only loads it, so every member can run it at startup. Half a
    /// pair (a certificate without its key) is an error rather than a reason to generate a new
    /// CA. A missing `sa.pub` is derived from `sa.key`.
    pub fn init(dir: impl AsRef<Path>) -> Result<Pki, PkiError> {
        let dir = dir.as_ref();
        files::ensure_dir(dir)?;

        let (ca_crt, ca_key) = (dir.join(CA_CERT), dir.join(CA_KEY));
        match (files::exists(&ca_crt)?, files::exists(&ca_key)?) {
            (true, true) => {}
            (false, false) => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                let cert = ca_params()?.self_signed(&key)?;
                // Key first: a crash in between leaves a key without certificate, which `open`
                // reports, never a certificate whose key is lost.
                files::write_new(&ca_key, &key.serialize_pem(), files::KEY_MODE)?;
                files::write_new(&ca_crt, &cert.pem(), files::CERT_MODE)?;
            }
            (true, false) => return Err(PkiError::Incomplete { present: ca_crt, missing: ca_key }),
            (false, true) => return Err(PkiError::Incomplete { present: ca_key, missing: ca_crt }),
        }

        let (sa_key, sa_pub) = (dir.join(SA_KEY), dir.join(SA_PUB));
        match (files::exists(&sa_key)?, files::exists(&sa_pub)?) {
            (true, true) => {}
            (false, false) => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                files::write_new(&sa_key, &key.serialize_pem(), files::KEY_MODE)?;
                files::write_new(&sa_pub, &key.public_key_pem(), files::CERT_MODE)?;
            }
            (true, false) => {
                let (_, key) = load_key(&sa_key)?;
                files::write_new(&sa_pub, &key.public_key_pem(), files::CERT_MODE)?;
            }
            (false, true) => return Err(PkiError::Incomplete { present: sa_pub, missing: sa_key }),
        }

        encryption::ensure_key_file(dir)?;
        Pki::open(dir)
    }

    /// Loads the PKI in `dir`, checking that every file is present and parses, that `ca.crt` is
    /// a CA certificate, and that each private key matches its certificate or public key.
    pub fn open(dir: impl AsRef<Path>) -> Result<Pki, PkiError> {
        let dir = dir.as_ref();
        let (ca_crt, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        let ca_pem = files::read_string(&ca_crt)?;
        let (_, ca_key) = load_key(&ca_key_path)?;
        let parse_error = |reason: String| PkiError::Parse { path: ca_crt.clone(), reason };
        let ca_der = pem_contents(&ca_pem, "CERTIFICATE").map_err(parse_error)?;
        let ca_not_after = {
            let (_, cert) = x509_parser::parse_x509_certificate(&ca_der).map_err(|e| parse_error(e.to_string()))?;
            if !cert.is_ca() {
                return Err(parse_error("not a CA certificate (basicConstraints CA:TRUE is missing)".into()));
            }
            if cert.public_key().raw != ca_key.subject_public_key_info().as_slice() {
                return Err(PkiError::KeyMismatch { key: ca_key_path, public: ca_crt.clone() });
            }
            cert.validity().not_after.to_datetime().to_offset(time::UtcOffset::UTC)
        };
        let issuer = Issuer::from_ca_cert_der(&ca_der.into(), ca_key).map_err(|e| parse_error(e.to_string()))?;

        let (sa_key_path, sa_pub_path) = (dir.join(SA_KEY), dir.join(SA_PUB));
        let (sa_key_pem, sa_key) = load_key(&sa_key_path)?;
        let sa_pub_pem = files::read_string(&sa_pub_path)?;
        let sa_pub_der = pem_contents(&sa_pub_pem, "PUBLIC KEY")
            .map_err(|reason| PkiError::Parse { path: sa_pub_path.clone(), reason })?;
        if sa_pub_der != sa_key.subject_public_key_info() {
            return Err(PkiError::KeyMismatch { key: sa_key_path, public: sa_pub_path });
        }

        Ok(Pki { dir: dir.to_path_buf(), ca_pem, ca_not_after, issuer, sa_key_pem, sa_pub_pem })
    }

    /// The directory this PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM: what clients and servers trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// When the CA expires; no certificate it issues outlives it.
    pub fn ca_not_after(&self) -> OffsetDateTime {
        self.ca_not_after
    }

    /// The service-account token signing key, PKCS#8 PEM.
    pub fn sa_key_pem(&self) -> &str {
        &self.sa_key_pem
    }

    /// The service-account token verification key, SubjectPublicKeyInfo PEM.
    pub fn sa_pub_pem(&self) -> &str {
        &self.sa_pub_pem
    }

    /// A serving certificate for `common_name` with the subject alternative names `sans` (each
    /// an IP address if it parses as one, else a DNS name; at least one is required, since TLS
    /// clients ignore the CN). Its extended key usages are serverAuth and clientAuth, because
    /// servers present the same certificate when they talk to each other over mutual TLS.
    pub fn issue_server(&self, common_name: &str, sans: &[String], validity: Duration) -> Result<Issued, PkiError> {
        let params = self.serving_params(common_name, sans, validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// What serving and peer certificates share: the CN, the SANs (at least one) and the
    /// extended key usages serverAuth and clientAuth.
    fn serving_params(
        &self,
        common_name: &str,
        sans: &[String],
        validity: Duration,
    ) -> Result<CertificateParams, PkiError> {
        check_text("common name", common_name)?;
        if sans.is_empty() {
            return Err(PkiError::Invalid {
                what: "subject alternative names",
                reason: "a serving certificate needs at least one (TLS clients ignore the common name)".into(),
            });
        }
        let mut params = self.leaf_params(validity)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.subject_alt_names = sans.iter().map(|san| parse_san(san)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params)
    }

    /// A peer certificate for the Raft port of server `name`: CN = name, O = [`PEER_GROUP`], the
    /// subject alternative names `sans` (as [`Pki::issue_server`]: the addresses peers dial it
    /// at) and extended key usages serverAuth and clientAuth, since a server presents it both
    /// when it accepts a peer's connection and when it connects to a peer. The group is what
    /// makes it a peer's certificate: the Raft port refuses cluster-signed certificates of
    /// other groups (agents, users).
    pub fn issue_peer(&self, name: &str, sans: &[String], validity: Duration) -> Result<Issued, PkiError> {
        let params = self.serving_params(name, sans, validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let subject = der::client_subject(name, &[PEER_GROUP.to_string()]);
        let der = der::replace_subject(cert.der(), &subject, self.issuer.key())?;
        Ok(Issued { cert_pem: der::pem("CERTIFICATE", &der), key_pem: key.serialize_pem() })
    }

    /// A client certificate for `user` in `groups`: CN = user and one O attribute per group, in
    /// order, which is how the Kubernetes x509 authenticator reads a user name and its groups.
    /// Extended key usage clientAuth only.
    pub fn issue_client(&self, user: &str, groups: &[String], validity: Duration) -> Result<Issued, PkiError> {
        check_text("user name", user)?;
        for group in groups {
            check_text("group name", group)?;
        }
        let mut params = self.leaf_params(validity)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let der = der::replace_subject(cert.der(), &der::client_subject(user, groups), self.issuer.key())?;
        Ok(Issued { cert_pem: der::pem("CERTIFICATE", &der), key_pem: key.serialize_pem() })
    }

    /// What every leaf certificate shares: a random serial, the validity window, CA:FALSE, the
    /// key usage an ECDSA key needs for TLS, and the CA's key identifier for chain building.
    fn leaf_params(&self, validity: Duration) -> Result<CertificateParams, PkiError> {
        let invalid = |reason: String| PkiError::Invalid { what: "validity", reason };
        if validity.is_zero() {
            return Err(invalid("must be longer than zero".into()));
        }
        let now = OffsetDateTime::now_utc();
        if self.ca_not_after <= now {
            return Err(invalid(format!("the CA expired at {}", self.ca_not_after)));
        }
        let requested = time::Duration::try_from(validity)
            .ok()
            .and_then(|v| now.checked_add(v))
            .ok_or_else(|| invalid(format!("{validity:?} is too long")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.serial_number = Some(random_serial()?);
        params.not_before = now - BACKDATE;
        // Past the CA's expiry the certificate could not be verified anyway.
        params.not_after = requested.min(self.ca_not_after);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }
}

/// Who a certificate names, as the Kubernetes x509 authenticator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject's common name (the user name); empty when there is none.
    pub common_name: String,
    /// The subject's organizations (the groups), in order.
    pub groups: Vec<String>,
}

/// The identity in the subject of `cert_der` (one DER certificate); `None` if it does not parse.
pub fn identity(cert_der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let common_name = subject.iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or_default().to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(Identity { common_name, groups })
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.serial_number = Some(random_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; SERIAL_BYTES];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // Serial numbers are positive INTEGERs in minimal encoding: a set top bit would add a zero
    // byte and a zero first byte would be dropped. Keeping the first byte in 1..=127 makes every
    // serial exactly 16 bytes, still with over 120 random bits.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

/// The PEM text of a private key file and the key parsed from it.
fn load_key(path: &Path) -> Result<(String, KeyPair), PkiError> {
    let pem = files::read_string(path)?;
    let key = KeyPair::from_pem(&pem).map_err(|e| PkiError::Parse {
        path: path.to_path_buf(),
        reason: format!("not a usable PKCS#8 private key: {e}"),
    })?;
    Ok((pem, key))
}

/// The DER inside the first PEM block of `text`, which must carry `label`.
fn pem_contents(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if pem.label != label {
        return Err(format!("expected a PEM {label} block, found {}", pem.label));
    }
    Ok(pem.contents)
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid =
        |reason: &str| PkiError::Invalid { what: "subject alternative name", reason: format!("{san:?}: {reason}") };
    // A loose hostname check (letters, digits, '-', '_', '.', and '*' for wildcards) that
    // catches typos such as a URL, a port or a bracketed IPv6 address, which no client would
    // ever match against.
    if san.is_empty() || san.len() > 253 {
        return Err(invalid("not an IP address, and not a DNS name of 1 to 253 characters"));
    }
    if !san.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*')) {
        return Err(invalid("not an IP address, and not a DNS name (letters, digits, '-', '.', '*')"));
    }
    Ok(SanType::DnsName(san.try_into()?))
}

fn check_text(what: &'static str, value: &str) -> Result<(), PkiError> {
    if value.is_empty() {
        return Err(PkiError::Invalid { what, reason: "empty".into() });
    }
    if value.chars().any(char::is_control) {
        return Err(PkiError::Invalid { what, reason: format!("{value:?} contains control characters") });
    }
    Ok(())
}

fn check_stem(stem: &str) -> Result<(), PkiError> {
    let invalid = |reason: &str| PkiError::Invalid { what: "file name", reason: format!("{stem:?}: {reason}") };
    if stem.is_empty() || stem == "." || stem == ".." || stem.contains('/') || stem.contains('\0') {
        return Err(invalid("must be a plain file name"));
    }
    if RESERVED_STEMS.contains(&stem) {
        return Err(invalid("reserved for the CA and the service-account key"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
