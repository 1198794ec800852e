use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, writing, serving or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Reading or writing a file or directory on the host failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A program this crate runs is not installed (or not on `PATH`).
    #[error("{tool} is not installed; hint: {hint}")]
    MissingTool {
        /// The program's name or path.
        tool: String,
        /// How to install it.
        hint: &'static str,
    },

    /// A program this crate runs exited unsuccessfully.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// The program's name.
        tool: String,
        /// How it exited.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// The busybox binary exists but is not statically linked, so it would not run in an image
    /// that has no C library.
    #[error("{} is not a statically linked executable ({reason}); hint: apt-get install busybox-static", path.display())]
    NotStatic {
        /// The binary that was checked.
        path: PathBuf,
        /// What disqualified it.
        reason: String,
    },

    /// The busybox binary lacks an applet an image relies on.
    #[error("{} has no `{applet}` applet (see `busybox --list`)", path.display())]
    MissingApplet {
        /// The busybox binary.
        path: PathBuf,
        /// The missing applet.
        applet: String,
    },

    /// A path given for inside the image is unusable (empty, or with `..`).
    #[error("invalid path in image {path:?}: {reason}")]
    InvalidImagePath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// An argument naming an image (tag, repository, layout directory) is unusable.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The argument as given.
        reference: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Assembling the layer tarball failed (for instance a path too long for the tar format).
    #[error("building the image layer, entry {entry:?}: {source}")]
    Layer {
        /// The entry being added.
        entry: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// JSON could not be produced or parsed.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// The registry process exited before it became ready.
    #[error("docker-registry exited during startup ({status}); its log:\n{log}")]
    RegistryExited {
        /// How it exited.
        status: String,
        /// The tail of its log.
        log: String,
    },

    /// The registry did not answer `GET /v2/` with 200 in time.
    #[error("docker-registry on {addr} did not answer GET /v2/ with 200 within {waited:?}; its log:\n{log}")]
    RegistryNotReady {
        /// The address it was told to listen on.
        addr: String,
        /// How long we waited.
        waited: Duration,
        /// The tail of its log.
        log: String,
    },

    /// An HTTP request to the registry failed at the connection level.
    #[error("GET http://{addr}{path}: {source}")]
    Http {
        /// The registry's address.
        addr: String,
        /// The request path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The registry answered an HTTP request with an unexpected status.
    #[error("GET http://{addr}{path} answered {status}: {body}")]
    UnexpectedStatus {
        /// The registry's address.
        addr: String,
        /// The request path.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The response body, lossily decoded.
        body: String,
    },
}

impl OciError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OciError::Io { path: path.into(), source }
    }
}
