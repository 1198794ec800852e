//! A certificate that follows its files: servers hand [`ReloadingCert`] to rustls as their
//! certificate resolver (serving, and as a client for mutual TLS between servers) and call
//! [`ReloadingCert::reload_if_changed`] now and then, so a renewed certificate is used without a
//! restart. A change that does not load (a half-written
//! file, a key that does not match the certificate) keeps the old certificate and is retried.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::server::ClientHello;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or holds no PEM certificate.
    #[error("{path}: {message}")]
    Certificate { path: PathBuf, message: String },
    /// The key file holds no usable private key.
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    /// Key and certificate do not belong together (e.g. one replaced, the other not yet).
    #[error("the private key {key} does not match the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// Reads PEM certificates from `path` (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let bad = |message: String| LoadError::Certificate { path: path.to_path_buf(), message };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, LoadError> {
    let chain = read_certs(cert)?;
    let bad_key = |message: String| LoadError::Key { path: key.to_path_buf(), message };
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad_key(format!("no PEM private key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| bad_key(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| LoadError::Mismatch { cert: cert.to_path_buf(), key: key.to_path_buf() })?;
    Ok(certified)
}

/// The certificate, swapped for the new one when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCert {
    /// Loads the pair now; an error here is a configuration error.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, LoadError> {
        let loaded = certified_key(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((Arc::new(loaded), Self::stamp(cert, key))),
        })
    }

    fn stamp(cert: &Path, key: &Path) -> Option<SystemTime> {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some(modified(cert)?.max(modified(key)?))
    }

    /// Loads the files again if they changed since the last load: `Ok(true)` when the served
    /// certificate was replaced, `Err` when the new files do not load (the old one stays).
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        let stamp = Self::stamp(&self.cert, &self.key);
        let unchanged = self.current.read().map(|c| c.1 == stamp).unwrap_or(false);
        if stamp.is_none() || unchanged {
            return Ok(false);
        }
        let fresh = certified_key(&self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = (Arc::new(fresh), stamp);
        }
        Ok(true)
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// The same certificate presented as a client certificate (mutual TLS between servers). It is
/// offered whatever CA the server hints at: the server decides whether it is acceptable.
impl ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
