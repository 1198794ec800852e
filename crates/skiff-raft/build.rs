fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/skiff/v1/raft.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
