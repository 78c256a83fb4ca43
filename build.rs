//! Compiles proto/ragd/v1/ragd.proto with tonic's build crate and a vendored protoc (no system
//! protoc needed), and writes the file descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build runs the protoc named by PROTOC; a build script is single-threaded.
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("ragd_descriptor.bin"))
        .compile_protos(&["proto/ragd/v1/ragd.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
