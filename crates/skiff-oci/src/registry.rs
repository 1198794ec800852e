use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::image::sha256_digest;
use crate::{http, ImageSpec, OciError, MANIFEST_MEDIA_TYPE};

const REGISTRY_TOOL: &str = "docker-registry";
const SKOPEO_TOOL: &str = "skopeo";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Another process can take the port between our probe and the registry's bind.
const START_ATTEMPTS: usize = 3;
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// A `docker-registry serve` process listening on 127.0.0.1, without TLS or authentication.
///
/// Its storage, config and log live under the `data_dir` given to [`Registry::start`]. The process
/// is killed and reaped when the value is dropped (including on a panic that unwinds), but not if
/// the owning process itself is killed.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    pushes: AtomicU64,
}

/// An image pushed into a [`Registry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `127.0.0.1:PORT/REPO:TAG`, as CRI's `PullImage` and pod specs take it.
    pub reference: String,
    /// The manifest digest (`sha256:<hex>`) the registry stores the image under.
    pub digest: String,
}

impl PushedImage {
    /// `127.0.0.1:PORT/REPO@sha256:<hex>`: the same image, pinned by digest.
    pub fn by_digest(&self) -> String {
        let (repository, _) = split_tag(&self.reference);
        format!("{repository}@{}", self.digest)
    }
}

/// A manifest as served by a [`Registry`].
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The `Docker-Content-Digest` the registry answered with (the sha256 of `body` if it sent none).
    pub digest: String,
    /// The `Content-Type` the registry answered with.
    pub media_type: String,
    /// The manifest JSON, byte for byte.
    pub body: Vec<u8>,
}

impl Registry {
    /// Starts `docker-registry serve` on a free port of 127.0.0.1 and waits until `GET /v2/`
    /// answers 200.
    ///
    /// `data_dir` is created if needed and receives `config.yml`, the blob storage (`storage/`) and
    /// the process's output (`registry.log`); reusing a directory keeps the images pushed earlier.
    /// Fails with [`OciError::MissingTool`] if `docker-registry` is not on `PATH`,
    /// [`OciError::RegistryExited`] if it dies while starting, or [`OciError::RegistryNotReady`] after
    /// 20 s; both carry the tail of its log.
    pub fn start(data_dir: &Path) -> Result<Registry, OciError> {
        let data_dir = std::path::absolute(data_dir).map_err(|e| OciError::io(data_dir, e))?;
        let storage = data_dir.join("storage");
        std::fs::create_dir_all(&storage).map_err(|e| OciError::io(&storage, e))?;
        let storage = storage
            .to_str()
            .ok_or_else(|| OciError::InvalidReference {
                reference: storage.display().to_string(),
                reason: "the registry's data directory must be valid UTF-8",
            })?
            .to_string();

        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&data_dir, &storage) {
                Err(OciError::RegistryExited { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    tracing::debug!(attempt, "registry lost its port to another process, retrying");
                }
                result => return result,
            }
        }
    }

    fn start_once(data_dir: &Path, storage: &str) -> Result<Registry, OciError> {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| OciError::io("127.0.0.1:0", e))?;
            probe.local_addr().map_err(|e| OciError::io("127.0.0.1:0", e))?.port()
        };
        let addr = format!("127.0.0.1:{port}");
        // JSON strings are valid YAML scalars, which makes quoting the path safe whatever it holds.
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: skiff-oci-local-registry\n",
            storage = serde_json::Value::from(storage),
            addr = serde_json::Value::from(addr.as_str()),
        );
        let config_path = data_dir.join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| OciError::io(&config_path, e))?;

        let log_path = data_dir.join("registry.log");
        let log = File::options().create(true).append(true).open(&log_path).map_err(|e| OciError::io(&log_path, e))?;
        let log_start = log.metadata().map_err(|e| OciError::io(&log_path, e))?.len();
        let log_for_stderr = log.try_clone().map_err(|e| OciError::io(&log_path, e))?;

        let mut command = Command::new(REGISTRY_TOOL);
        command.arg("serve").arg(&config_path).stdin(Stdio::null()).stdout(log).stderr(log_for_stderr);
        // REGISTRY_* variables override the config file, so one leaking in from the environment
        // could, say, move the listen address.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().map_err(|e| spawn_error(REGISTRY_TOOL, "apt-get install docker-registry", e))?;
        // From here on, Drop kills and reaps the process on every error path.
        let mut registry =
            Registry { child, addr, data_dir: data_dir.to_path_buf(), log_path, pushes: AtomicU64::new(0) };

        let started = Instant::now();
        loop {
            if let Some(status) =
                registry.child.try_wait().map_err(|e| OciError::io(format!("{REGISTRY_TOOL} process"), e))?
            {
                return Err(OciError::RegistryExited {
                    status: status.to_string(),
                    log: read_tail(&registry.log_path, log_start),
                });
            }
            if let Ok(response) = http::get(&registry.addr, "/v2/", &[], Duration::from_secs(1)) {
                if response.status == 200 {
                    tracing::debug!(addr = %registry.addr, data_dir = %data_dir.display(), "registry is ready");
                    return Ok(registry);
                }
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(OciError::RegistryNotReady {
                    addr: registry.addr.clone(),
                    waited: started.elapsed(),
                    log: read_tail(&registry.log_path, log_start),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The directory given to [`Registry::start`], made absolute.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file the registry's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Pushes the image named `tag` in the OCI layout at `layout_dir` as `repo_and_tag`
    /// (`REPO[:TAG]`, tag `latest` if omitted) and returns `127.0.0.1:PORT/REPO:TAG`.
    ///
    /// Runs `skopeo --insecure-policy copy --dest-tls-verify=false --preserve-digests`, so the
    /// registry ends up with exactly the manifest of the layout (the digest
    /// [`ImageSpec::write_oci_layout`] returned). `layout_dir` must not contain `:`, which skopeo's
    /// `oci:` syntax cannot express. Fails with [`OciError::ToolFailed`] carrying skopeo's stderr.
    pub fn push(&self, layout_dir: &Path, tag: &str, repo_and_tag: &str) -> Result<String, OciError> {
        Ok(self.copy(layout_dir, tag, repo_and_tag)?.reference)
    }

    /// Writes `spec` as an OCI layout under `scratch_dir` and pushes it as `repo_and_tag` (see
    /// [`Registry::push`]); returns the reference together with the manifest digest.
    pub fn push_spec(&self, spec: &ImageSpec, repo_and_tag: &str, scratch_dir: &Path) -> Result<PushedImage, OciError> {
        let (repository, tag) = parse_repo_and_tag(repo_and_tag)?;
        let layout_dir = scratch_dir.join(format!("{}-layout", repository.replace('/', "_")));
        let digest = spec.write_oci_layout(&layout_dir, tag)?;
        let pushed = self.copy(&layout_dir, tag, repo_and_tag)?;
        if pushed.digest != digest {
            tracing::warn!(layout = %digest, registry = %pushed.digest, "skopeo changed the manifest digest on push");
        }
        Ok(pushed)
    }

    fn copy(&self, layout_dir: &Path, tag: &str, repo_and_tag: &str) -> Result<PushedImage, OciError> {
        let (repository, dest_tag) = parse_repo_and_tag(repo_and_tag)?;
        let layout_dir = std::path::absolute(layout_dir).map_err(|e| OciError::io(layout_dir, e))?;
        let layout = layout_dir.to_str().filter(|d| !d.contains(':')).ok_or_else(|| OciError::InvalidReference {
            reference: layout_dir.display().to_string(),
            reason: "the layout directory must be valid UTF-8 without `:` (skopeo's oci:DIR:TAG syntax)",
        })?;
        if tag.is_empty() {
            return Err(OciError::InvalidReference { reference: tag.into(), reason: "the layout tag is empty" });
        }
        let reference = format!("{}/{repository}:{dest_tag}", self.addr);
        let digest_file = self.data_dir.join(format!(
            "push-{}-{}.digest",
            std::process::id(),
            self.pushes.fetch_add(1, Ordering::Relaxed)
        ));

        let output = Command::new(SKOPEO_TOOL)
            // Without it skopeo insists on /etc/containers/policy.json, which not every host has.
            .arg("--insecure-policy")
            .arg("copy")
            .arg("--quiet")
            .arg("--dest-tls-verify=false")
            // Otherwise skopeo may recompress or convert, and the registry's digest would no longer
            // be the one write_oci_layout returned.
            .arg("--preserve-digests")
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(format!("oci:{layout}:{tag}"))
            .arg(format!("docker://{reference}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(SKOPEO_TOOL, "apt-get install skopeo", e))?;
        if !output.status.success() {
            return Err(OciError::ToolFailed {
                tool: SKOPEO_TOOL.into(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        let digest = std::fs::read_to_string(&digest_file).map_err(|e| OciError::io(&digest_file, e))?;
        let _ = std::fs::remove_file(&digest_file);
        let digest = digest.trim().to_string();
        tracing::debug!(%reference, %digest, "pushed image");
        Ok(PushedImage { reference, digest })
    }

    /// Fetches the manifest of `repository` at `reference` (a tag or a digest), accepting OCI and
    /// Docker schema 2 manifests and indexes.
    pub fn fetch_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest, OciError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self.get(
            &path,
            &[
                MANIFEST_MEDIA_TYPE,
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ],
        )?;
        let digest = match response.header("Docker-Content-Digest") {
            Some(d) => d.to_string(),
            None => sha256_digest(&response.body),
        };
        let media_type = response.header("Content-Type").unwrap_or_default().to_string();
        Ok(FetchedManifest { digest, media_type, body: response.body })
    }

    /// Fetches the blob (layer or config) `digest` of `repository`.
    pub fn fetch_blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, OciError> {
        Ok(self.get(&format!("/v2/{repository}/blobs/{digest}"), &[])?.body)
    }

    fn get(&self, path: &str, accept: &[&str]) -> Result<http::Response, OciError> {
        let response = http::get(&self.addr, path, accept, HTTP_TIMEOUT).map_err(|source| OciError::Http {
            addr: self.addr.clone(),
            path: path.into(),
            source,
        })?;
        if response.status != 200 {
            return Err(OciError::UnexpectedStatus {
                addr: self.addr.clone(),
                path: path.into(),
                status: response.status,
                body: String::from_utf8_lossy(&response.body).into_owned(),
            });
        }
        Ok(response)
    }
}

impl Registry {
    /// Leaves the registry running beyond this value (for `skiff local up`, whose cluster
    /// outlives the command) and returns its process id, which stops it.
    pub fn detach(self) -> u32 {
        let this = std::mem::ManuallyDrop::new(self);
        this.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Already gone (e.g. it exited during startup): nothing to kill, and wait just reaps.
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::debug!(addr = %self.addr, "registry stopped");
    }
}

/// Splits `REPO[:TAG]` where the tag, if any, follows the last `:` after the last `/` (so a
/// `host:port/` prefix is not mistaken for a tag); the tag defaults to `latest`.
fn split_tag(repo_and_tag: &str) -> (&str, &str) {
    match repo_and_tag.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (repo_and_tag, "latest"),
    }
}

/// [`split_tag`] plus the distribution grammar's rules, so mistakes surface before skopeo runs.
fn parse_repo_and_tag(repo_and_tag: &str) -> Result<(&str, &str), OciError> {
    let invalid = |reason| OciError::InvalidReference { reference: repo_and_tag.into(), reason };
    if repo_and_tag.contains('@') {
        return Err(invalid("push by digest is not supported; give REPO[:TAG]"));
    }
    let (repository, tag) = split_tag(repo_and_tag);
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        });
    if !repository_ok {
        return Err(invalid("the repository must be lowercase [a-z0-9._-] path components, like `skiff/web`"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return Err(invalid("the tag must be [A-Za-z0-9_.-], up to 128 characters, not starting with `.` or `-`"));
    }
    Ok((repository, tag))
}

fn spawn_error(tool: &str, hint: &'static str, error: std::io::Error) -> OciError {
    if error.kind() == std::io::ErrorKind::NotFound {
        OciError::MissingTool { tool: tool.into(), hint }
    } else {
        OciError::io(tool, error)
    }
}

/// The end of what the registry logged since `start`, for error messages.
fn read_tail(path: &Path, start: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(start.max(len.saturating_sub(LOG_TAIL_BYTES))))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|e| format!("(could not read {}: {e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_validates_references() {
        assert_eq!(split_tag("web:1"), ("web", "1"));
        assert_eq!(split_tag("skiff/web"), ("skiff/web", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/web"), ("127.0.0.1:5000/web", "latest"));
        assert_eq!(split_tag("127.0.0.1:5000/web:v2"), ("127.0.0.1:5000/web", "v2"));
        assert!(parse_repo_and_tag("skiff/web:v1.2_3").is_ok());
        for bad in ["Web:1", "web:", "/web", "web@sha256:00", "web:-x", ""] {
            assert!(parse_repo_and_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn by_digest_replaces_the_tag() {
        let pushed = PushedImage { reference: "127.0.0.1:5000/a/b:t".into(), digest: "sha256:00".into() };
        assert_eq!(pushed.by_digest(), "127.0.0.1:5000/a/b@sha256:00");
    }
}
