//! Generates the demo's gRPC client and server from `demo.proto`, with `protox` (a protobuf
//! compiler in Rust) in place of `protoc`: a fresh machine builds the demo with cargo alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=demo.proto");
    let descriptors = protox::compile(["demo.proto"], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
