//! Compiles Part A's gRPC contract, `proto/campus/v1/campus.proto`, with protox (a protobuf
//! compiler in Rust, so a fresh machine needs no `protoc`) into tonic's clients and servers,
//! and keeps the encoded descriptor set for the reflection service.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/campus/v1/campus.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("campus_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
