//! AgentDB's gRPC API (`agentdb.v1`): generated types and services, plus conversions
//! between wire types and engine types. Also the A2A 1.0 gRPC binding (`lf.a2a.v1`).

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("agentdb.v1");
}

/// Encoded `FileDescriptorSet` for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("agentdb_descriptor");

pub mod convert;

/// The Agent2Agent protocol 1.0 gRPC binding: package `lf.a2a.v1`, service
/// `A2AService`, from the A2A specification's `a2a.proto` (vendored under
/// proto/lf/a2a/v1/).
pub mod a2a {
    #[allow(clippy::all)]
    pub mod v1 {
        tonic::include_proto!("lf.a2a.v1");
    }

    /// Encoded `FileDescriptorSet` of `lf/a2a/v1/a2a.proto` and its imports, for server
    /// reflection and [`json`].
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("a2a_descriptor");

    /// The `grpc-status-details-bin` payload of an A2A error: a `google.rpc.Status`
    /// whose details hold a `google.rpc.ErrorInfo` with domain `a2a-protocol.org` and
    /// the spec's `reason` (e.g. `TASK_NOT_FOUND`), which A2A clients map to their
    /// typed errors.
    pub fn error_details(code: i32, message: &str, reason: &str) -> Vec<u8> {
        use prost::Message as _;
        #[derive(Clone, PartialEq, prost::Message)]
        struct ErrorInfo {
            #[prost(string, tag = "1")]
            reason: String,
            #[prost(string, tag = "2")]
            domain: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct RpcStatus {
            #[prost(int32, tag = "1")]
            code: i32,
            #[prost(string, tag = "2")]
            message: String,
            #[prost(message, repeated, tag = "3")]
            details: Vec<prost_types::Any>,
        }
        let info = ErrorInfo { reason: reason.to_string(), domain: "a2a-protocol.org".to_string() };
        let any = prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".to_string(),
            value: info.encode_to_vec(),
        };
        RpcStatus { code, message: message.to_string(), details: vec![any] }.encode_to_vec()
    }

    /// ProtoJSON (the canonical JSON mapping of proto3) for the `lf.a2a.v1` messages:
    /// the form the A2A 1.0 JSON-RPC binding puts on the wire, so a JSON-RPC
    /// implementation can serve gRPC by converting at the edge.
    pub mod json {
        use prost::Message as _;
        use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
        use std::sync::OnceLock;

        fn pool() -> &'static DescriptorPool {
            static POOL: OnceLock<DescriptorPool> = OnceLock::new();
            POOL.get_or_init(|| {
                DescriptorPool::decode(super::FILE_DESCRIPTOR_SET).expect("the A2A descriptor set is valid")
            })
        }

        fn descriptor(name: &str) -> Result<prost_reflect::MessageDescriptor, String> {
            pool().get_message_by_name(name).ok_or_else(|| format!("unknown message type {name}"))
        }

        /// `msg` (of protobuf type `name`, e.g. `lf.a2a.v1.Task`) as ProtoJSON: camelCase
        /// names, enums by name, default values left out.
        pub fn to_json<M: prost::Message>(name: &str, msg: &M) -> Result<serde_json::Value, String> {
            let dynamic = DynamicMessage::decode(descriptor(name)?, msg.encode_to_vec().as_slice())
                .map_err(|e| format!("re-decoding {name}: {e}"))?;
            let opts = SerializeOptions::new().skip_default_fields(true);
            dynamic
                .serialize_with_options(serde_json::value::Serializer, &opts)
                .map_err(|e| format!("{name} to JSON: {e}"))
        }

        /// A ProtoJSON value as the message `name`. Unknown fields are ignored (as
        /// JSON-RPC servers do), so extra keys a renderer adds do no harm.
        pub fn from_json<M: prost::Message + Default>(name: &str, v: &serde_json::Value) -> Result<M, String> {
            let opts = DeserializeOptions::new().deny_unknown_fields(false);
            let dynamic = DynamicMessage::deserialize_with_options(descriptor(name)?, v, &opts)
                .map_err(|e| format!("{name} from JSON: {e}"))?;
            M::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| format!("{name}: {e}"))
        }

        #[cfg(test)]
        mod tests {
            use super::*;
            use crate::a2a::v1;

            #[test]
            fn round_trip() {
                let v = serde_json::json!({
                    "id": "t1", "contextId": "c1",
                    "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "2026-01-02T03:04:05.678Z",
                        "message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "hi"}]}},
                    "artifacts": [{"artifactId": "a", "name": "recall", "parts": [
                        {"text": "found"}, {"data": {"hits": [1, "x"]}}, {"raw": "aGk=", "mediaType": "text/plain"}]}],
                    "kind": "ignored",
                });
                let t: v1::Task = from_json("lf.a2a.v1.Task", &v).unwrap();
                assert_eq!(t.id, "t1");
                assert_eq!(t.status.as_ref().unwrap().state, v1::TaskState::Completed as i32);
                assert_eq!(t.artifacts[0].parts.len(), 3);
                let back = to_json("lf.a2a.v1.Task", &t).unwrap();
                assert_eq!(back["status"]["state"], "TASK_STATE_COMPLETED");
                assert_eq!(back["artifacts"][0]["parts"][1]["data"]["hits"][1], "x");
                assert_eq!(back["artifacts"][0]["parts"][2]["raw"], "aGk=");
                assert!(back.get("kind").is_none());
            }
        }
    }
}
