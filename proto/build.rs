fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc: the build needs nothing from the system package manager.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("agentdb_descriptor.bin"))
        .compile_protos(&["proto/agentdb/v1/agentdb.proto", "proto/agentdb/v1/orchestration.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
