fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/skiff/v1/raft.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;

    // Replication carries Raft's own types in bincode, written into and read out of tonic's
    // frames directly (see `codec::BincodeCodec`); it has no .proto.
    let append = tonic_build::manual::Method::builder()
        .name("append")
        .route_name("Append")
        .comment("Pipelined replication: a stream of append-entries requests, answered in order.")
        .input_type("openraft::raft::AppendEntriesRequest<crate::TypeConfig>")
        .output_type("crate::network::AppendReply")
        .codec_path("crate::codec::BincodeCodec")
        .client_streaming()
        .server_streaming()
        .build();
    let service = tonic_build::manual::Service::builder()
        .name("Replication")
        .package("skiff.v1")
        .comment("Raft replication between servers of the same release.")
        .method(append)
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
    Ok(())
}
