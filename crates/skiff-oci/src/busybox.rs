use std::path::Path;
use std::process::Command;

use crate::{ImageSpec, OciError};

/// Where Debian's `busybox-static` installs the binary [`ImageSpec::busybox`] copies.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

const PATH_ENV: &str = "/bin:/usr/bin:/sbin:/usr/sbin";

/// Applets the convenience images and tests count on; nc and friends are linked only if present.
const REQUIRED_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "env", "id", "ps", "kill", "true", "false", "mkdir",
    "hostname",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

impl ImageSpec {
    /// A minimal Linux userland from the host's statically linked busybox ([`BUSYBOX_PATH`]).
    ///
    /// Contents: `/bin/busybox` (0755); `/bin/<applet>` → `busybox` for every applet that
    /// `busybox --list` reports; `/tmp` (1777); `/root` (0700); `/etc/passwd` with `root` (0) and
    /// `nobody` (65534); `/etc/group` with `root` and `nogroup`; `PATH=/bin:/usr/bin:/sbin:/usr/sbin`.
    /// No entrypoint or command is set.
    ///
    /// Fails with [`OciError::Io`] if the binary is missing, [`OciError::NotStatic`] if it needs a
    /// dynamic loader (install `busybox-static`, not `busybox`), and [`OciError::MissingApplet`] if it
    /// lacks one of the common applets (sh, sleep, httpd, wget, ...).
    pub fn busybox() -> Result<Self, OciError> {
        Self::busybox_from(Path::new(BUSYBOX_PATH))
    }

    /// [`ImageSpec::busybox`] with the busybox binary taken from `path`.
    pub fn busybox_from(path: &Path) -> Result<Self, OciError> {
        let bytes = std::fs::read(path).map_err(|e| OciError::io(path, e))?;
        check_static_elf(&bytes).map_err(|reason| OciError::NotStatic { path: path.to_path_buf(), reason })?;

        let output = Command::new(path).arg("--list").output().map_err(|e| OciError::io(path, e))?;
        if !output.status.success() {
            return Err(OciError::ToolFailed {
                tool: format!("{} --list", path.display()),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        let listed = String::from_utf8_lossy(&output.stdout);
        let applets: Vec<&str> =
            listed.lines().map(str::trim).filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox").collect();
        if let Some(missing) = REQUIRED_APPLETS.iter().find(|a| !applets.contains(a)) {
            return Err(OciError::MissingApplet { path: path.to_path_buf(), applet: (*missing).to_string() });
        }

        // The bytes already read are what was checked, so they go into the image rather than a
        // second read of a file that could have changed in between.
        let mut spec = ImageSpec::new()
            .file("/bin/busybox", bytes, 0o755)
            .dir("/tmp", 0o1777)
            .dir("/root", 0o700)
            .file("/etc/passwd", PASSWD, 0o644)
            .file("/etc/group", GROUP, 0o644)
            .env("PATH", PATH_ENV);
        for applet in applets {
            spec = spec.symlink(format!("/bin/{applet}"), "busybox");
        }
        Ok(spec)
    }
}

/// A busybox image for pod sandboxes: its entrypoint idles forever.
///
/// It runs as PID 1 of the sandbox, where signals without a handler are ignored, so a bare `sleep`
/// would survive SIGTERM; the shell traps TERM and INT to exit at once, and, being PID 1, its exit
/// tears down the whole PID namespace.
pub fn pause_image() -> Result<ImageSpec, OciError> {
    Ok(ImageSpec::busybox()?.entrypoint([
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done",
    ]))
}

/// A busybox image serving `body` as `/www/index.html` over HTTP on port 80 with busybox `httpd`
/// in the foreground (entrypoint `httpd -f -p 80 -h /www`), exposing `80/tcp`.
pub fn web_image(body: &str) -> Result<ImageSpec, OciError> {
    Ok(ImageSpec::busybox()?
        .file("/www/index.html", body, 0o644)
        .entrypoint(["/bin/httpd", "-f", "-p", "80", "-h", "/www"])
        .expose_port(80, "tcp"))
}

/// Ok if `bytes` is an ELF executable without a program interpreter (`PT_INTERP`), i.e. one that
/// needs no dynamic loader or libc in the image; otherwise why not.
fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    let big_endian = match bytes.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF byte order".into()),
    };
    let uint = |offset: usize, len: usize| -> Result<u64, String> {
        let field = offset.checked_add(len).and_then(|end| bytes.get(offset..end)).ok_or("truncated ELF header")?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if big_endian { field[i] } else { field[len - 1 - i] };
            value = (value << 8) | u64::from(byte);
        }
        Ok(value)
    };
    // (e_phoff, e_phentsize, e_phnum) offsets differ between the 32- and 64-bit layouts.
    let (phoff, phentsize, phnum) = match bytes.get(4) {
        Some(1) => (uint(0x1c, 4)?, uint(0x2a, 2)?, uint(0x2c, 2)?),
        Some(2) => (uint(0x20, 8)?, uint(0x36, 2)?, uint(0x38, 2)?),
        _ => return Err("unknown ELF class".into()),
    };
    for i in 0..phnum {
        let offset = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or("bad program header offset")?;
        if uint(offset, 4)? == u64::from(PT_INTERP) {
            return Err("it has a program interpreter, i.e. is dynamically linked".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::tar_listing;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn busybox_layer_has_binary_applets_and_accounts() -> TestResult {
        let built = ImageSpec::busybox()?.build()?;
        let listing = tar_listing(built.layer_tar())?;
        assert_eq!(listing["bin/busybox"], (tar::EntryType::Regular, 0o755, None));
        for applet in REQUIRED_APPLETS {
            assert_eq!(
                listing.get(&format!("bin/{applet}")),
                Some(&(tar::EntryType::Symlink, 0o777, Some("busybox".to_string()))),
                "applet {applet}"
            );
        }
        assert_eq!(listing["tmp/"], (tar::EntryType::Directory, 0o1777, None));
        assert_eq!(listing["etc/passwd"], (tar::EntryType::Regular, 0o644, None));
        assert_eq!(listing["etc/group"], (tar::EntryType::Regular, 0o644, None));

        let mut archive = tar::Archive::new(built.layer_tar());
        for entry in archive.entries()? {
            let mut entry = entry?;
            if entry.path()?.as_os_str() == "etc/passwd" {
                let mut passwd = String::new();
                std::io::Read::read_to_string(&mut entry, &mut passwd)?;
                assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")), "{passwd}");
                assert!(passwd.lines().any(|l| l.starts_with("nobody:x:65534:65534:")), "{passwd}");
            }
            if entry.path()?.as_os_str() == "bin/busybox" {
                assert_eq!(entry.header().size()?, std::fs::metadata(BUSYBOX_PATH)?.len());
            }
        }

        let config: serde_json::Value = serde_json::from_slice(built.config_json())?;
        assert_eq!(config["config"]["Env"], serde_json::json!([format!("PATH={PATH_ENV}")]));
        Ok(())
    }

    #[test]
    fn convenience_images_set_their_entrypoints() -> TestResult {
        let web: serde_json::Value = serde_json::from_slice(web_image("hello")?.build()?.config_json())?;
        assert_eq!(web["config"]["Entrypoint"], serde_json::json!(["/bin/httpd", "-f", "-p", "80", "-h", "/www"]));
        assert_eq!(web["config"]["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        let listing = tar_listing(web_image("hello")?.build()?.layer_tar())?;
        assert_eq!(listing["www/index.html"], (tar::EntryType::Regular, 0o644, None));

        let pause: serde_json::Value = serde_json::from_slice(pause_image()?.build()?.config_json())?;
        assert_eq!(pause["config"]["Entrypoint"][0], "/bin/sh");
        assert_ne!(web_image("a")?.build()?.manifest_digest(), web_image("b")?.build()?.manifest_digest());
        Ok(())
    }

    #[test]
    fn dynamic_and_non_elf_binaries_are_refused() -> TestResult {
        // The test binary itself is dynamically linked (it needs libc), which is exactly the case
        // a plain `busybox` package would hit.
        let me = std::env::current_exe()?;
        assert!(matches!(ImageSpec::busybox_from(&me), Err(OciError::NotStatic { .. })));
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("busybox");
        std::fs::write(&script, "#!/bin/sh\n")?;
        assert!(matches!(ImageSpec::busybox_from(&script), Err(OciError::NotStatic { .. })));
        assert!(matches!(ImageSpec::busybox_from(&dir.path().join("missing")), Err(OciError::Io { .. })));
        assert_eq!(check_static_elf(&std::fs::read(BUSYBOX_PATH)?), Ok(()));
        Ok(())
    }
}
