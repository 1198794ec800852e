//! File handling with the guarantees a PKI directory needs: private keys never exist on disk with
//! looser permissions than 0600, and no reader ever sees a half-written file.

use std::fs;
use std::fs::File;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use crate::PkiError;

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const KEY_MODE: u32 = 0o600;
pub(crate) const CERT_MODE: u32 = 0o644;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// Creates `dir` (0700) if it is missing. An existing directory keeps its mode: it may have been
/// prepared by configuration management, and the keys inside are 0600 regardless.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Parents such as /etc/skiff get the ordinary mode; only the PKI directory is private.
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        // Another process created it between the check and here.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io_error(dir)(e)),
    }
}

pub(crate) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(io_error(path))
}

pub(crate) fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => PkiError::Missing { path: path.to_path_buf() },
        _ => PkiError::Io { path: path.to_path_buf(), source },
    })
}

/// Writes `path` only if it does not exist yet. The content goes to a temporary file first and
/// is then hard-linked into place: `link` fails when the target exists, so of two concurrent
/// `init`s exactly one wins each file, and a crash never leaves a truncated key behind.
pub(crate) fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let tmp = write_temp(path, contents, mode)?;
    let linked = fs::hard_link(&tmp, path).map_err(io_error(path));
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_parent(path)
}

/// Writes `path`, atomically replacing an existing file (certificate rotation).
pub(crate) fn write_replace(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let tmp = write_temp(path, contents, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path)(e));
    }
    sync_parent(path)
}

/// A fully written and synced file next to `path`, created with `mode` from the start so a
/// private key is never readable by others, not even for an instant.
fn write_temp(path: &Path, contents: &str, mode: u32) -> Result<PathBuf, PkiError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp =
        path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io_error(&tmp))?;
        // The umask may have taken bits away from a certificate's 0644; put them back so the
        // result does not depend on the caller's environment. (It can only ever remove bits, so
        // keys are 0600 whatever it is.)
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_error(&tmp))?;
        file.write_all(contents.as_bytes()).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Makes the new directory entry durable, so a power loss after `init` reported success does not
/// bring back a directory without the CA.
fn sync_parent(path: &Path) -> Result<(), PkiError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent).and_then(|d| d.sync_all()).map_err(io_error(parent))
}
