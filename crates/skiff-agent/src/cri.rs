//! The Container Runtime Interface client: gRPC (`runtime.v1`) over containerd's unix socket.
//!
//! Every call carries a deadline, so a wedged runtime shows up as an error in the pod's status
//! rather than a worker that never returns. The runtime is the source of truth for what runs on
//! this node: the agent keeps no state of its own that a restart would lose, it asks the runtime
//! again (sandboxes and containers carry the pod's uid and the container's name as labels).

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

/// Labels the agent puts on every sandbox and container, and finds them by.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// How long a call may take before it counts as failed. Image pulls get longer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// A CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The socket could not be reached (runtime not started yet, or gone).
    #[error("cannot reach the container runtime at {socket}: {message}")]
    Unreachable { socket: PathBuf, message: String },
    /// The runtime answered the named call with an error.
    #[error("{call}: {message}")]
    Call { call: &'static str, code: tonic::Code, message: String },
    /// The call got no answer in time.
    #[error("{call}: no answer in {timeout:?}")]
    Timeout { call: &'static str, timeout: Duration },
}

impl CriError {
    /// Whether the runtime said the object does not exist (already removed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CriError::Call { code: tonic::Code::NotFound, .. })
    }
}

/// A connection to one runtime's CRI socket. Cheap to clone (one HTTP/2 channel underneath).
#[derive(Clone)]
pub struct Cri {
    socket: PathBuf,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to the socket, waiting up to `wait` for it to appear and answer `Version`.
    pub async fn connect(socket: &Path, wait: Duration) -> Result<Self, CriError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Self::try_connect(socket).await {
                Ok(cri) => return Ok(cri),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn try_connect(socket: &Path) -> Result<Self, CriError> {
        let unreachable = |message: String| CriError::Unreachable { socket: socket.to_path_buf(), message };
        // The URI is a placeholder: the connector below ignores it and dials the socket.
        let endpoint = Endpoint::try_from("http://cri.invalid").map_err(|e| unreachable(e.to_string()))?;
        let path = socket.to_path_buf();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut cri = Self {
            socket: socket.to_path_buf(),
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        };
        cri.version().await?;
        Ok(cri)
    }

    /// The runtime's name and version, e.g. `containerd 1.6.20`.
    pub async fn version(&mut self) -> Result<String, CriError> {
        let v = call("Version", CALL_TIMEOUT, self.runtime.version(cri::VersionRequest::default())).await?;
        Ok(format!("{}://{}", v.runtime_name, v.runtime_version))
    }

    /// Whether the runtime reports itself and its network ready, with the reasons if not.
    pub async fn status(&mut self) -> Result<Vec<(String, bool, String)>, CriError> {
        let s = call("Status", CALL_TIMEOUT, self.runtime.status(cri::StatusRequest { verbose: false })).await?;
        Ok(s.status
            .map(|s| s.conditions.into_iter().map(|c| (c.r#type, c.status, c.message)).collect())
            .unwrap_or_default())
    }

    pub async fn run_pod_sandbox(&mut self, config: cri::PodSandboxConfig) -> Result<String, CriError> {
        let request = cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        Ok(call("RunPodSandbox", PULL_TIMEOUT, self.runtime.run_pod_sandbox(request)).await?.pod_sandbox_id)
    }

    /// Stops the sandbox (its containers are killed, its network torn down); idempotent.
    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), CriError> {
        let request = cri::StopPodSandboxRequest { pod_sandbox_id: id.to_string() };
        ignore_not_found(call("StopPodSandbox", CALL_TIMEOUT, self.runtime.stop_pod_sandbox(request)).await)
    }

    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), CriError> {
        let request = cri::RemovePodSandboxRequest { pod_sandbox_id: id.to_string() };
        ignore_not_found(call("RemovePodSandbox", CALL_TIMEOUT, self.runtime.remove_pod_sandbox(request)).await)
    }

    /// Sandboxes, optionally only those of one pod.
    pub async fn list_sandboxes(&mut self, pod_uid: Option<&str>) -> Result<Vec<cri::PodSandbox>, CriError> {
        let filter = cri::PodSandboxFilter { label_selector: uid_selector(pod_uid), ..Default::default() };
        let request = cri::ListPodSandboxRequest { filter: Some(filter) };
        Ok(call("ListPodSandbox", CALL_TIMEOUT, self.runtime.list_pod_sandbox(request)).await?.items)
    }

    pub async fn sandbox_status(&mut self, id: &str) -> Result<Option<cri::PodSandboxStatus>, CriError> {
        let request = cri::PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: false };
        Ok(call("PodSandboxStatus", CALL_TIMEOUT, self.runtime.pod_sandbox_status(request)).await?.status)
    }

    pub async fn create_container(
        &mut self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(call("CreateContainer", CALL_TIMEOUT, self.runtime.create_container(request)).await?.container_id)
    }

    pub async fn start_container(&mut self, id: &str) -> Result<(), CriError> {
        let request = cri::StartContainerRequest { container_id: id.to_string() };
        call("StartContainer", CALL_TIMEOUT, self.runtime.start_container(request)).await.map(|_| ())
    }

    /// Sends the container's stop signal, then SIGKILL after `grace`; idempotent.
    pub async fn stop_container(&mut self, id: &str, grace: Duration) -> Result<(), CriError> {
        let request = cri::StopContainerRequest { container_id: id.to_string(), timeout: grace.as_secs() as i64 };
        let timeout = CALL_TIMEOUT + grace;
        ignore_not_found(call("StopContainer", timeout, self.runtime.stop_container(request)).await)
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<(), CriError> {
        let request = cri::RemoveContainerRequest { container_id: id.to_string() };
        ignore_not_found(call("RemoveContainer", CALL_TIMEOUT, self.runtime.remove_container(request)).await)
    }

    /// Containers, optionally only those of one pod.
    pub async fn list_containers(&mut self, pod_uid: Option<&str>) -> Result<Vec<cri::Container>, CriError> {
        let filter = cri::ContainerFilter { label_selector: uid_selector(pod_uid), ..Default::default() };
        let request = cri::ListContainersRequest { filter: Some(filter) };
        Ok(call("ListContainers", CALL_TIMEOUT, self.runtime.list_containers(request)).await?.containers)
    }

    pub async fn container_status(&mut self, id: &str) -> Result<Option<cri::ContainerStatus>, CriError> {
        let request = cri::ContainerStatusRequest { container_id: id.to_string(), verbose: false };
        Ok(call("ContainerStatus", CALL_TIMEOUT, self.runtime.container_status(request)).await?.status)
    }

    /// Runs `cmd` in the container and waits up to `timeout`: (exit code, stdout, stderr).
    pub async fn exec_sync(
        &mut self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>), CriError> {
        let request =
            cri::ExecSyncRequest { container_id: id.to_string(), cmd, timeout: timeout.as_secs().max(1) as i64 };
        let answer = call("ExecSync", timeout + CALL_TIMEOUT, self.runtime.exec_sync(request)).await?;
        Ok((answer.exit_code, answer.stdout, answer.stderr))
    }

    /// A URL on the runtime's streaming server that runs `cmd` in the container once a client
    /// upgrades a connection to it.
    pub async fn exec(&mut self, id: &str, cmd: Vec<String>, io: StreamIo) -> Result<String, CriError> {
        let request = cri::ExecRequest {
            container_id: id.to_string(),
            cmd,
            tty: io.tty,
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
        };
        Ok(call("Exec", CALL_TIMEOUT, self.runtime.exec(request)).await?.url)
    }

    /// A URL that attaches to the container's main process.
    pub async fn attach(&mut self, id: &str, io: StreamIo) -> Result<String, CriError> {
        let request = cri::AttachRequest {
            container_id: id.to_string(),
            stdin: io.stdin,
            tty: io.tty,
            stdout: io.stdout,
            stderr: io.stderr,
        };
        Ok(call("Attach", CALL_TIMEOUT, self.runtime.attach(request)).await?.url)
    }

    /// A URL that forwards ports into the sandbox's network namespace.
    pub async fn port_forward(&mut self, sandbox_id: &str) -> Result<String, CriError> {
        let request = cri::PortForwardRequest { pod_sandbox_id: sandbox_id.to_string(), port: Vec::new() };
        Ok(call("PortForward", CALL_TIMEOUT, self.runtime.port_forward(request)).await?.url)
    }

    /// The image's id if the runtime has it.
    pub async fn image_id(&mut self, image: &str) -> Result<Option<String>, CriError> {
        let request = cri::ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        let answer = call("ImageStatus", CALL_TIMEOUT, self.images.image_status(request)).await?;
        Ok(answer.image.map(|i| i.id))
    }

    /// Pulls `image` (with registry credentials when given); the answer is the image reference.
    pub async fn pull_image(
        &mut self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox: &cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let request =
            cri::PullImageRequest { image: Some(image_spec(image)), auth, sandbox_config: Some(sandbox.clone()) };
        Ok(call("PullImage", PULL_TIMEOUT, self.images.pull_image(request)).await?.image_ref)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Which streams an exec or attach session carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamIo {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec { image: image.to_string(), ..Default::default() }
}

fn uid_selector(pod_uid: Option<&str>) -> HashMap<String, String> {
    pod_uid.map(|uid| HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())])).unwrap_or_default()
}

async fn call<T>(
    name: &'static str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CriError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(status)) => {
            Err(CriError::Call { call: name, code: status.code(), message: status.message().to_string() })
        }
        Err(_) => Err(CriError::Timeout { call: name, timeout }),
    }
}

fn ignore_not_found<T>(result: Result<T, CriError>) -> Result<(), CriError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
