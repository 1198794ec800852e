use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::OciError;

/// Media type of the image manifests this crate writes.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the (single, gzip-compressed) layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Annotation in `index.json` that names a manifest, i.e. the `TAG` of `oci:DIR:TAG`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Where the bytes of a regular file come from.
#[derive(Debug, Clone)]
enum Contents {
    Bytes(Vec<u8>),
    /// Read when the image is built, so a spec stays cheap to clone and to describe.
    Host(PathBuf),
}

#[derive(Debug, Clone)]
enum Entry {
    File { contents: Contents, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// Description of a single-layer OCI image: its files and its runtime config.
///
/// Built with chained calls; nothing touches the disk until [`ImageSpec::build`] or
/// [`ImageSpec::write_oci_layout`], which is also when bad paths are reported. Paths inside the image
/// may be written with or without the leading `/`. Adding the same path twice keeps the last entry.
/// Parent directories that are not added explicitly are created with mode 0755. Every entry is
/// owned by root (uid 0, gid 0) and carries the modification time 0, so that one spec always
/// produces byte-identical blobs and therefore one manifest digest.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    entries: Vec<(String, Entry)>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    exposed_ports: Vec<String>,
    user: Option<String>,
}

impl ImageSpec {
    /// An empty image: no files, no config (the equivalent of `FROM scratch`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file at `dest` holding `contents`, with permission bits `mode` (e.g. `0o644`;
    /// setuid, setgid and sticky bits are kept, anything above `0o7777` is dropped).
    pub fn file(mut self, dest: impl Into<String>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entries.push((dest.into(), Entry::File { contents: Contents::Bytes(contents.into()), mode }));
        self
    }

    /// Adds a regular file at `dest` whose contents are those of `host_path` at build time, with
    /// permission bits `mode` (the host file's own mode is not used).
    pub fn file_from_host(mut self, dest: impl Into<String>, host_path: impl Into<PathBuf>, mode: u32) -> Self {
        self.entries.push((dest.into(), Entry::File { contents: Contents::Host(host_path.into()), mode }));
        self
    }

    /// Adds a directory at `dest` with permission bits `mode` (e.g. `0o1777` for `/tmp`).
    pub fn dir(mut self, dest: impl Into<String>, mode: u32) -> Self {
        self.entries.push((dest.into(), Entry::Dir { mode }));
        self
    }

    /// Adds a symbolic link at `dest` pointing to `target`, which is stored verbatim (relative
    /// targets resolve against the link's directory, absolute ones against the image root).
    pub fn symlink(mut self, dest: impl Into<String>, target: impl Into<String>) -> Self {
        self.entries.push((dest.into(), Entry::Symlink { target: target.into() }));
        self
    }

    /// Sets `config.Entrypoint`: the program and leading arguments of every container.
    pub fn entrypoint<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `config.Cmd`: the default arguments, appended to the entrypoint (or run on their own
    /// when there is none). A pod's `args` replace them.
    pub fn cmd<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the environment variable `key` to `value` in `config.Env`, replacing an earlier value of
    /// the same key in place (so the order of first definition is kept).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Sets `config.WorkingDir`.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Adds `port/protocol` (e.g. `80`, `"tcp"`) to `config.ExposedPorts`.
    pub fn expose_port(mut self, port: u16, protocol: &str) -> Self {
        let key = format!("{port}/{}", protocol.to_ascii_lowercase());
        if !self.exposed_ports.contains(&key) {
            self.exposed_ports.push(key);
        }
        self
    }

    /// Sets `config.User` (`name`, `uid`, `uid:gid` or `name:group`; names must exist in the
    /// image's `/etc/passwd` / `/etc/group`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Builds the layer, config and manifest in memory without writing anything.
    ///
    /// Fails on unusable image paths and on host files that cannot be read.
    pub fn build(&self) -> Result<BuiltImage, OciError> {
        let layer_tar = self.layer_tar()?;
        let diff_id = sha256_digest(&layer_tar);

        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
        let layer_gz = gz
            .write_all(&layer_tar)
            .and_then(|()| gz.finish())
            .map_err(|source| OciError::Layer { entry: "(gzip)".into(), source })?;
        let layer_digest = sha256_digest(&layer_gz);

        let config = ConfigJson {
            architecture: oci_architecture(),
            os: "linux",
            config: RuntimeConfigJson {
                user: self.user.clone(),
                exposed_ports: self.exposed_ports.iter().map(|p| (p.clone(), Empty {})).collect(),
                env: self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                entrypoint: self.entrypoint.clone(),
                cmd: self.cmd.clone(),
                working_dir: self.working_dir.clone(),
            },
            rootfs: RootFsJson { kind: "layers", diff_ids: vec![diff_id.clone()] },
            history: vec![HistoryJson { created_by: "skiff-oci", comment: "built from files on the host" }],
        };
        let config_json = to_json("image config", &config)?;
        let config_digest = sha256_digest(&config_json);

        let manifest = ManifestJson {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE,
            config: DescriptorJson {
                media_type: CONFIG_MEDIA_TYPE,
                digest: config_digest.clone(),
                size: config_json.len() as u64,
                annotations: None,
            },
            layers: vec![DescriptorJson {
                media_type: LAYER_MEDIA_TYPE,
                digest: layer_digest.clone(),
                size: layer_gz.len() as u64,
                annotations: None,
            }],
        };
        let manifest_json = to_json("image manifest", &manifest)?;
        let manifest_digest = sha256_digest(&manifest_json);

        Ok(BuiltImage {
            layer_tar,
            layer_gz,
            config_json,
            manifest_json,
            diff_id,
            layer_digest,
            config_digest,
            manifest_digest,
        })
    }

    /// Writes the image into `dir` as an OCI image layout under the name `tag` (the `TAG` in
    /// skopeo's `oci:DIR:TAG`) and returns the manifest digest (`sha256:<hex>`).
    ///
    /// `dir` is created if needed. If it already holds a layout, its other images are kept and an
    /// earlier image of the same `tag` is replaced in `index.json` (its blobs are left in place).
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) -> Result<String, OciError> {
        if tag.is_empty() {
            return Err(OciError::InvalidReference { reference: tag.into(), reason: "the tag is empty" });
        }
        let built = self.build()?;
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| OciError::io(&blobs, e))?;
        write_file(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (digest, bytes) in [
            (&built.layer_digest, &built.layer_gz),
            (&built.config_digest, &built.config_json),
            (&built.manifest_digest, &built.manifest_json),
        ] {
            write_file(&blobs.join(digest.trim_start_matches("sha256:")), bytes)?;
        }

        let index_path = dir.join("index.json");
        let mut manifests: Vec<serde_json::Value> = match std::fs::read(&index_path) {
            Ok(bytes) => {
                let index: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|source| OciError::Json { what: index_path.display().to_string(), source })?;
                let mut manifests = match index.get("manifests") {
                    Some(serde_json::Value::Array(m)) => m.clone(),
                    _ => Vec::new(),
                };
                manifests.retain(|m| m.pointer(&format!("/annotations/{REF_NAME_ANNOTATION}")) != Some(&tag.into()));
                manifests
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(OciError::io(&index_path, e)),
        };
        let descriptor = DescriptorJson {
            media_type: MANIFEST_MEDIA_TYPE,
            digest: built.manifest_digest.clone(),
            size: built.manifest_json.len() as u64,
            annotations: Some(BTreeMap::from([(REF_NAME_ANNOTATION, tag.to_string())])),
        };
        manifests.push(
            serde_json::to_value(&descriptor)
                .map_err(|source| OciError::Json { what: "index.json descriptor".into(), source })?,
        );
        let index = IndexJson { schema_version: 2, media_type: INDEX_MEDIA_TYPE, manifests };
        write_file(&index_path, &to_json("index.json", &index)?)?;
        tracing::debug!(dir = %dir.display(), tag, digest = %built.manifest_digest, "wrote OCI image layout");
        Ok(built.manifest_digest)
    }

    /// The uncompressed layer: entries sorted by path (so parents precede children), with the
    /// implicit parent directories filled in.
    fn layer_tar(&self) -> Result<Vec<u8>, OciError> {
        let mut entries: BTreeMap<String, &Entry> = BTreeMap::new();
        for (dest, entry) in &self.entries {
            entries.insert(normalize_image_path(dest)?, entry);
        }
        let implicit_dir = Entry::Dir { mode: 0o755 };
        let parents: Vec<String> = entries
            .keys()
            .flat_map(|path| path.match_indices('/').map(|(i, _)| path[..i].to_string()).collect::<Vec<_>>())
            .collect();
        for parent in parents {
            entries.entry(parent).or_insert(&implicit_dir);
        }

        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in entries {
            let layer_err = |source| OciError::Layer { entry: path.clone(), source };
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::File { contents, mode } => {
                    let bytes = match contents {
                        Contents::Bytes(b) => std::borrow::Cow::Borrowed(b.as_slice()),
                        Contents::Host(host) => {
                            std::borrow::Cow::Owned(std::fs::read(host).map_err(|e| OciError::io(host, e))?)
                        }
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(mode & 0o7777);
                    header.set_size(bytes.len() as u64);
                    tar.append_data(&mut header, &path, bytes.as_ref()).map_err(layer_err)?;
                }
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(mode & 0o7777);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty()).map_err(layer_err)?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, &path, target).map_err(layer_err)?;
                }
            }
        }
        tar.into_inner().map_err(|source| OciError::Layer { entry: "(end of archive)".into(), source })
    }
}

/// An image assembled in memory by [`ImageSpec::build`]; digests are `sha256:<hex>`.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    layer_tar: Vec<u8>,
    layer_gz: Vec<u8>,
    config_json: Vec<u8>,
    manifest_json: Vec<u8>,
    diff_id: String,
    layer_digest: String,
    config_digest: String,
    manifest_digest: String,
}

impl BuiltImage {
    /// The digest of the manifest: what a registry reports and what CRI's image ids point to.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    /// The digest of the config blob.
    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// The digest of the compressed layer blob.
    pub fn layer_digest(&self) -> &str {
        &self.layer_digest
    }

    /// The digest of the uncompressed layer (`rootfs.diff_ids[0]` in the config).
    pub fn diff_id(&self) -> &str {
        &self.diff_id
    }

    /// The uncompressed layer tarball.
    pub fn layer_tar(&self) -> &[u8] {
        &self.layer_tar
    }

    /// The config blob (JSON).
    pub fn config_json(&self) -> &[u8] {
        &self.config_json
    }

    /// The manifest blob (JSON).
    pub fn manifest_json(&self) -> &[u8] {
        &self.manifest_json
    }
}

/// `sha256:<lowercase hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Turns `/a/./b/` into `a/b`; tar entries are relative, and `..` could escape the root.
fn normalize_image_path(path: &str) -> Result<String, OciError> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(OciError::InvalidImagePath { path: path.into(), reason: "`..` is not allowed" }),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(OciError::InvalidImagePath { path: path.into(), reason: "names the image root" });
    }
    Ok(parts.join("/"))
}

/// The image must match the host, since its binaries are copied from the host.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn to_json(what: &str, value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    serde_json::to_vec(value).map_err(|source| OciError::Json { what: what.into(), source })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    std::fs::write(path, bytes).map_err(|e| OciError::io(path, e))
}

// The JSON documents are typed structs rather than `json!` so that field order, and with it every
// digest, does not depend on serde_json's `preserve_order` feature being unified in by another crate.

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ConfigJson {
    architecture: &'static str,
    os: &'static str,
    config: RuntimeConfigJson,
    rootfs: RootFsJson,
    history: Vec<HistoryJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfigJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, Empty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
}

#[derive(Serialize)]
struct RootFsJson {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct HistoryJson {
    created_by: &'static str,
    comment: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    schema_version: u32,
    media_type: &'static str,
    config: DescriptorJson,
    layers: Vec<DescriptorJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<serde_json::Value>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Entry type, mode and link target of one layer entry.
    pub(crate) type Listed = (tar::EntryType, u32, Option<String>);

    /// Every entry of a layer, by path.
    pub(crate) fn tar_listing(tar: &[u8]) -> Result<BTreeMap<String, Listed>, std::io::Error> {
        let mut out = BTreeMap::new();
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let entry = entry?;
            let header = entry.header();
            let link = entry.link_name()?.map(|l| l.to_string_lossy().into_owned());
            out.insert(entry.path()?.to_string_lossy().into_owned(), (header.entry_type(), header.mode()?, link));
        }
        Ok(out)
    }

    fn sample() -> ImageSpec {
        ImageSpec::new()
            .file("/srv/app/hello.txt", "hi\n", 0o644)
            .dir("/tmp", 0o1777)
            .symlink("/srv/current", "app")
            .entrypoint(["/bin/app", "--serve"])
            .cmd(["--port", "80"])
            .env("PATH", "/bin")
            .env("MODE", "test")
            .env("PATH", "/usr/bin")
            .working_dir("/srv")
            .expose_port(80, "TCP")
            .user("65534")
    }

    #[test]
    fn same_spec_gives_same_digests() -> TestResult {
        let a = sample().build()?;
        let b = sample().build()?;
        assert_eq!(a.manifest_digest(), b.manifest_digest());
        assert_eq!(a.layer_tar(), b.layer_tar());

        let dir1 = tempfile::tempdir()?;
        let dir2 = tempfile::tempdir()?;
        let d1 = sample().write_oci_layout(dir1.path(), "v1")?;
        let d2 = sample().write_oci_layout(dir2.path(), "v1")?;
        assert_eq!(d1, d2);
        assert_eq!(d1, a.manifest_digest());

        let other = sample().file("/srv/app/hello.txt", "bye\n", 0o644).build()?;
        assert_ne!(other.manifest_digest(), a.manifest_digest());
        Ok(())
    }

    #[test]
    fn config_records_runtime_settings_and_diff_id() -> TestResult {
        let built = sample().build()?;
        let config: serde_json::Value = serde_json::from_slice(built.config_json())?;
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], oci_architecture());
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/bin/app", "--serve"]));
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["--port", "80"]));
        assert_eq!(config["config"]["Env"], serde_json::json!(["PATH=/usr/bin", "MODE=test"]));
        assert_eq!(config["config"]["WorkingDir"], "/srv");
        assert_eq!(config["config"]["User"], "65534");
        assert_eq!(config["config"]["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([sha256_digest(built.layer_tar())]));

        let manifest: serde_json::Value = serde_json::from_slice(built.manifest_json())?;
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["digest"], built.config_digest());
        assert_eq!(manifest["config"]["size"], built.config_json().len());
        assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], built.layer_digest());
        Ok(())
    }

    #[test]
    fn layer_adds_parents_and_keeps_modes() -> TestResult {
        let built = sample().file("/srv/app/hello.txt", "override", 0o4755).build()?;
        let listing = tar_listing(built.layer_tar())?;
        let paths: Vec<&str> = listing.keys().map(String::as_str).collect();
        assert_eq!(paths, ["srv/", "srv/app/", "srv/app/hello.txt", "srv/current", "tmp/"]);
        assert_eq!(listing["srv/"], (tar::EntryType::Directory, 0o755, None));
        assert_eq!(listing["tmp/"], (tar::EntryType::Directory, 0o1777, None));
        assert_eq!(listing["srv/app/hello.txt"], (tar::EntryType::Regular, 0o4755, None));
        assert_eq!(listing["srv/current"], (tar::EntryType::Symlink, 0o777, Some("app".into())));

        let mut archive = tar::Archive::new(built.layer_tar());
        for entry in archive.entries()? {
            let mut entry = entry?;
            assert_eq!((entry.header().uid()?, entry.header().gid()?, entry.header().mtime()?), (0, 0, 0));
            if entry.path()?.ends_with("hello.txt") {
                let mut body = String::new();
                std::io::Read::read_to_string(&mut entry, &mut body)?;
                assert_eq!(body, "override");
            }
        }
        Ok(())
    }

    #[test]
    fn layout_index_names_the_tag_and_keeps_other_tags() -> TestResult {
        let dir = tempfile::tempdir()?;
        let first = sample().write_oci_layout(dir.path(), "one")?;
        let second = sample().env("X", "1").write_oci_layout(dir.path(), "two")?;
        let again = sample().env("X", "2").write_oci_layout(dir.path(), "two")?;

        let layout: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("oci-layout"))?)?;
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("index.json"))?)?;
        assert_eq!(index["schemaVersion"], 2);
        let named: Vec<(String, String)> = index["manifests"]
            .as_array()
            .ok_or("manifests is not an array")?
            .iter()
            .map(|m| {
                (m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap_or("").to_string(), m["digest"].to_string())
            })
            .collect();
        assert_eq!(named, [("one".into(), format!("\"{first}\"")), ("two".into(), format!("\"{again}\""))]);
        assert_ne!(second, again);

        for digest in [&first, &again] {
            let blob = std::fs::read(dir.path().join("blobs/sha256").join(digest.trim_start_matches("sha256:")))?;
            assert_eq!(&sha256_digest(&blob), digest);
        }
        Ok(())
    }

    #[test]
    fn bad_paths_are_rejected() {
        assert!(matches!(ImageSpec::new().file("/a/../b", "", 0o644).build(), Err(OciError::InvalidImagePath { .. })));
        assert!(matches!(ImageSpec::new().dir("/", 0o755).build(), Err(OciError::InvalidImagePath { .. })));
        assert!(matches!(
            ImageSpec::new().file_from_host("/x", "/nonexistent/skiff-oci", 0o644).build(),
            Err(OciError::Io { .. })
        ));
    }
}
