//! Against the real `docker-registry` and `skopeo` of this host.

use skiff_oci::{pause_image, web_image, ImageSpec, OciError, Registry, MANIFEST_MEDIA_TYPE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The config blob of `repository:tag`, fetched the way containerd does: manifest by tag, then blob.
fn served_config(
    registry: &Registry,
    repository: &str,
    tag: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let manifest = registry.fetch_manifest(repository, tag)?;
    assert_eq!(manifest.media_type, MANIFEST_MEDIA_TYPE);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body)?;
    let config_digest = manifest["config"]["digest"].as_str().ok_or("manifest has no config digest")?;
    Ok(serde_json::from_slice(&registry.fetch_blob(repository, config_digest)?)?)
}

#[test]
fn pushed_images_are_served_with_their_layout_digest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let registry = Registry::start(&dir.path().join("registry"))?;
    assert!(registry.addr().starts_with("127.0.0.1:"), "{}", registry.addr());

    // Through an explicit layout, as `skiff local up` might do.
    let layout = dir.path().join("web-layout");
    let web_digest = web_image("hello")?.write_oci_layout(&layout, "v1")?;
    let reference = registry.push(&layout, "v1", "skiff/web:v1")?;
    assert_eq!(reference, format!("{}/skiff/web:v1", registry.addr()));
    let manifest = registry.fetch_manifest("skiff/web", "v1")?;
    assert_eq!(manifest.digest, web_digest);
    let config = served_config(&registry, "skiff/web", "v1")?;
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/bin/httpd", "-f", "-p", "80", "-h", "/www"]));

    // Through the one-call helper.
    let pause = registry.push_spec(&pause_image()?, "pause:3.10", &dir.path().join("scratch"))?;
    assert_eq!(pause.reference, format!("{}/pause:3.10", registry.addr()));
    assert_eq!(pause.digest, pause_image()?.build()?.manifest_digest());
    assert_eq!(registry.fetch_manifest("pause", "3.10")?.digest, pause.digest);
    assert_eq!(registry.fetch_manifest("pause", &pause.digest)?.digest, pause.digest);
    let config = served_config(&registry, "pause", "3.10")?;
    assert_eq!(config["config"]["Entrypoint"][0], "/bin/sh");
    assert_eq!(config["config"]["Env"], serde_json::json!(["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]));

    // A second, independent client agrees.
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{}", pause.reference)])
        .output()?;
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout)?;
    assert_eq!(inspect["Digest"], pause.digest.as_str());
    Ok(())
}

#[test]
fn failures_carry_the_tools_words() -> TestResult {
    let dir = tempfile::tempdir()?;
    let registry = Registry::start(&dir.path().join("registry"))?;

    let layout = dir.path().join("layout");
    ImageSpec::new().file("/hello", "hi", 0o644).write_oci_layout(&layout, "v1")?;
    match registry.push(&layout, "no-such-tag", "x:v1") {
        Err(OciError::ToolFailed { tool, stderr, .. }) => {
            assert_eq!(tool, "skopeo");
            assert!(stderr.contains("no-such-tag"), "{stderr}");
        }
        other => return Err(format!("expected ToolFailed, got {other:?}").into()),
    }
    match registry.fetch_manifest("x", "v1") {
        Err(OciError::UnexpectedStatus { status: 404, .. }) => {}
        other => return Err(format!("expected a 404, got {other:?}").into()),
    }

    // Two registries on one data directory cannot both start cleanly, but a restart after drop can,
    // and it still has what was pushed before.
    let digest = registry.push_spec(&ImageSpec::new().file("/a", "a", 0o644), "kept:v1", dir.path())?.digest;
    drop(registry);
    let registry = Registry::start(&dir.path().join("registry"))?;
    assert_eq!(registry.fetch_manifest("kept", "v1")?.digest, digest);
    Ok(())
}
