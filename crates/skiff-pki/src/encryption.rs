//! The key file for encrypting Secrets at rest, `encryption.keys` in the PKI directory.
//!
//! One key per line, `NAME:BASE64`, where the base64 (standard alphabet, with padding) holds
//! exactly 32 random bytes (an AES-256 key). The first key encrypts every new value; every key
//! in the file decrypts. Empty lines and lines starting with `#` are ignored. Names are 1 to 64
//! of `A-Z a-z 0-9 . _ -` and unique. The file is 0600 and is created by [`crate::Pki::init`]
//! with one key named [`FIRST_KEY_NAME`]. See `docs/encryption.md` for rotation.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::files;
use crate::PkiError;

/// The key file's name in the PKI directory.
pub const ENCRYPTION_KEYS: &str = "encryption.keys";
/// The name of the key `init` generates.
pub const FIRST_KEY_NAME: &str = "key1";
/// Bytes of one key (AES-256).
pub const ENCRYPTION_KEY_LEN: usize = 32;
const MAX_NAME_LEN: usize = 64;

/// One named data key.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    pub name: String,
    pub secret: [u8; ENCRYPTION_KEY_LEN],
}

impl fmt::Debug for EncryptionKey {
    // The key material stays out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey").field("name", &self.name).field("secret", &"<redacted>").finish()
    }
}

impl EncryptionKey {
    /// A new random key called `name`.
    pub fn generate(name: &str) -> Result<EncryptionKey, PkiError> {
        use ring::rand::SecureRandom;
        check_name(name).map_err(|reason| PkiError::Invalid { what: "encryption key name", reason })?;
        let mut secret = [0u8; ENCRYPTION_KEY_LEN];
        ring::rand::SystemRandom::new().fill(&mut secret).map_err(|_| PkiError::Random)?;
        Ok(EncryptionKey { name: name.to_string(), secret })
    }

    /// The key's line in the key file, without the newline.
    pub fn to_line(&self) -> String {
        format!("{}:{}", self.name, STANDARD.encode(self.secret))
    }
}

/// Reads and checks a key file (see the module docs); errors name the file and the line.
pub fn read_encryption_keys(path: &Path) -> Result<Vec<EncryptionKey>, PkiError> {
    parse_encryption_keys(&files::read_string(path)?, path)
}

/// Parses the text of a key file read from `path` (used in error messages only).
pub fn parse_encryption_keys(text: &str, path: &Path) -> Result<Vec<EncryptionKey>, PkiError> {
    let error = |reason: String| PkiError::Parse { path: path.to_path_buf(), reason };
    let mut keys: Vec<EncryptionKey> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason: String| error(format!("line {}: {reason}", i + 1));
        let (name, encoded) =
            line.split_once(':').ok_or_else(|| at("expected NAME:BASE64 (a name, a colon, a base64 key)".into()))?;
        let name = name.trim();
        check_name(name).map_err(&at)?;
        if keys.iter().any(|k| k.name == name) {
            return Err(at(format!("the key name {name:?} is used twice")));
        }
        // The decoded bytes are never part of an error: a message may end up in a log.
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| at(format!("the key {name:?} is not valid base64 (standard alphabet, padded)")))?;
        let secret: [u8; ENCRYPTION_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            at(format!(
                "the key {name:?} is {} bytes; it must be exactly {ENCRYPTION_KEY_LEN} (`head -c 32 /dev/urandom | base64`)",
                bytes.len()
            ))
        })?;
        keys.push(EncryptionKey { name: name.to_string(), secret });
    }
    if keys.is_empty() {
        return Err(error("no key in the file: at least one NAME:BASE64 line is needed".into()));
    }
    Ok(keys)
}

/// Creates `dir/encryption.keys` (0600) with one fresh key unless the file exists.
pub(crate) fn ensure_key_file(dir: &Path) -> Result<(), PkiError> {
    let path = dir.join(ENCRYPTION_KEYS);
    if files::exists(&path)? {
        return Ok(());
    }
    let key = EncryptionKey::generate(FIRST_KEY_NAME)?;
    let text = format!(
        "# Keys that encrypt Secrets at rest (skiff server --encryption-key-file), NAME:BASE64 of 32 bytes.\n\
         # The first key encrypts, every key decrypts. Keep this file identical on every server and\n\
         # never store it with the data directories or their backups. Rotation: docs/encryption.md.\n\
         {}\n",
        key.to_line()
    );
    match files::write_new(&path, &text, files::KEY_MODE) {
        // Another `init` created it in the meantime: keep theirs.
        Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("the key name {name:?} must be 1 to {MAX_NAME_LEN} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(format!("the key name {name:?} may only hold A-Z a-z 0-9 . _ -"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;
    use crate::Pki;

    fn parse(text: &str) -> Result<Vec<EncryptionKey>, String> {
        parse_encryption_keys(text, &PathBuf::from("k")).map_err(|e| e.to_string())
    }

    #[test]
    fn init_creates_one_private_key_and_keeps_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        Pki::init(&dir).expect("init");
        let path = dir.join(ENCRYPTION_KEYS);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let keys = read_encryption_keys(&path).expect("read");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, FIRST_KEY_NAME);
        assert_ne!(keys[0].secret, [0u8; ENCRYPTION_KEY_LEN]);
        let before = std::fs::read(&path).expect("read");
        Pki::init(&dir).expect("second init");
        assert_eq!(std::fs::read(&path).expect("read"), before, "a second init keeps the key");
        // An existing PKI without a key file gets one from init.
        std::fs::remove_file(&path).expect("remove");
        Pki::init(&dir).expect("init again");
        let new = read_encryption_keys(&path).expect("read");
        assert_ne!(new[0].secret, keys[0].secret, "a fresh random key");
    }

    #[test]
    fn keys_parse_in_order_with_comments() {
        let a = EncryptionKey::generate("key2").expect("key");
        let b = EncryptionKey::generate("key1").expect("key");
        assert_ne!(a.secret, b.secret);
        let text = format!("# rotated\n\n{}\n  {}  \n", a.to_line(), b.to_line());
        assert_eq!(parse(&text).expect("parse"), vec![a.clone(), b]);
        assert!(!format!("{a:?}").contains(&STANDARD.encode(a.secret)), "Debug shows no key material");
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let good = STANDARD.encode([1u8; 32]);
        let short = STANDARD.encode([1u8; 16]);
        for (text, expect) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("key1\n", "line 1: expected NAME:BASE64"),
            (&format!("key1:{good}\nkey1:{good}\n"), "line 2: the key name \"key1\" is used twice"),
            (&format!("key1:{short}\n"), "16 bytes"),
            ("key1:not base64!\n", "not valid base64"),
            (&format!(":{good}\n"), "1 to 64"),
            (&format!("a b:{good}\n"), "may only hold"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expect), "{text:?}: {err}");
            assert!(!err.contains(&good) && !err.contains(&short), "the key leaks into {err}");
        }
        assert!(matches!(EncryptionKey::generate("a:b"), Err(PkiError::Invalid { .. })));
        let missing = read_encryption_keys(Path::new("/nonexistent/encryption.keys")).expect_err("missing");
        assert!(matches!(missing, PkiError::Missing { .. }), "{missing:?}");
    }
}
