fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc: the build needs nothing from the system package manager.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let include = protoc_bin_vendored::include_path()?;
    let include = include.to_str().ok_or("non-UTF-8 protoc include path")?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("agentdb_descriptor.bin"))
        .compile_protos(&["proto/agentdb/v1/agentdb.proto", "proto/agentdb/v1/orchestration.proto"], &["proto"])?;
    // A2A 1.0's gRPC binding (`lf.a2a.v1.A2AService`), vendored from the A2A spec
    // (see the header of proto/lf/a2a/v1/a2a.proto). Its own descriptor set: reflection
    // and the ProtoJSON conversion (`a2a::json`) read it.
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("a2a_descriptor.bin"))
        .build_client(true)
        .compile_protos(&["proto/lf/a2a/v1/a2a.proto"], &["proto", include])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
