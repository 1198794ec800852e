//! Small OCI images built from files on this host, served from a Docker registry on 127.0.0.1.
//!
//! The machines skiff runs its tests on have no internet access, yet the agent's image pulls must go
//! through containerd's real CRI `PullImage` against a real registry. This crate closes that gap:
//!
//! * [`ImageSpec`] describes a single-layer image (files, directories, symlinks and the runtime
//!   config) and writes it as an OCI image layout with [`ImageSpec::write_oci_layout`]. The output is
//!   deterministic, so one spec always yields one manifest digest.
//! * [`ImageSpec::busybox`], [`pause_image`] and [`web_image`] build useful images out of the host's
//!   statically linked busybox (Debian package `busybox-static`).
//! * [`Registry`] runs `docker-registry serve` (Debian package `docker-registry`) on a free port of
//!   127.0.0.1 and pushes layouts into it with `skopeo` (Debian package `skopeo`).
//!
//! ```no_run
//! # fn main() -> Result<(), skiff_oci::OciError> {
//! let dir = std::env::temp_dir().join("skiff-oci-example");
//! let registry = skiff_oci::Registry::start(&dir.join("registry"))?;
//! let image = registry.push_spec(&skiff_oci::web_image("hello")?, "web:1", &dir.join("scratch"))?;
//! // image.reference is "127.0.0.1:PORT/web:1": hand it to CRI PullImage.
//! # Ok(()) }
//! ```

mod busybox;
mod error;
mod http;
mod image;
mod registry;

pub use busybox::{pause_image, web_image, BUSYBOX_PATH};
pub use error::OciError;
pub use image::{BuiltImage, ImageSpec, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION};
pub use registry::{FetchedManifest, PushedImage, Registry};
