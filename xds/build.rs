//! Generates the gRPC code from proto/ with the protoc that protoc-bin-vendored ships, so the
//! build needs no protoc installed on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of the environment change: build scripts are single-threaded here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        // Resource bodies are shared by every proxy they go to: no copy per send.
        .bytes(".mesh.discovery.v1.Resource.body")
        .compile_protos(&["proto/discovery.proto", "proto/ca.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
