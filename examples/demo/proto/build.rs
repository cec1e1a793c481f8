//! Generates the demo's gRPC client and server from `demo.proto`, with `protox` (a protobuf
//! compiler in Rust) in place of `protoc`: a fresh machine builds the demo with cargo alone.
//! Also writes `METHODS`, the path of every method of the file's services, from the same
//! descriptors (the known methods of the demo's `GrpcLayer`).

use std::fmt::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=demo.proto");
    let descriptors = protox::compile(["demo.proto"], ["."])?;
    let mut methods = String::from("/// The path of every method of `demo.proto`'s services.\n");
    methods.push_str("pub const METHODS: &[&str] = &[\n");
    for file in &descriptors.file {
        for service in &file.service {
            for method in &service.method {
                writeln!(
                    methods,
                    "    \"/{}.{}/{}\",",
                    file.package(),
                    service.name(),
                    method.name()
                )?;
            }
        }
    }
    methods.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("methods.rs"), methods)?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
