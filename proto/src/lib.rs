//! AgentDB's gRPC API (`agentdb.v1`): generated types and services, plus conversions
//! between wire types and engine types.

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("agentdb.v1");
}

/// Encoded `FileDescriptorSet` for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("agentdb_descriptor");

pub mod convert;
