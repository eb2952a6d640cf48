//! A2A 1.0's gRPC binding: `lf.a2a.v1.A2AService` on the gRPC listener, behind the same
//! edge layer (authentication, rate limits, request spans) as AgentDB's own services.
//!
//! It is a thin edge over the JSON-RPC implementation in `crate::a2a`: each request is
//! converted to its ProtoJSON form (the canonical JSON of the same proto messages, which
//! is what the 1.0 JSON-RPC binding carries), handed to the same dispatch, task table,
//! skills and per-principal ownership, and the ProtoJSON answer is converted back
//! (`agentdb_proto::a2a::json`). Errors carry the spec's gRPC code plus a
//! `google.rpc.ErrorInfo` (domain `a2a-protocol.org`, reason e.g. `TASK_NOT_FOUND`) in
//! `grpc-status-details-bin`, which the A2A SDKs turn into their typed errors.

use crate::a2a::{self, A2a, Caller, RpcError};
use agentdb_orchestrator::security::Principal;
use agentdb_proto::a2a::{json, v1 as pb};
use pb::a2a_service_server::{A2aService, A2aServiceServer};
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

/// The gRPC service: the A2A state shared with the JSON-RPC binding.
pub struct A2aGrpc(pub Arc<A2a>);

/// The service, with messages up to `limit` bytes each way (file parts are inline).
pub fn server(a2a: Arc<A2a>, limit: usize) -> A2aServiceServer<A2aGrpc> {
    A2aServiceServer::new(A2aGrpc(a2a)).max_decoding_message_size(limit).max_encoding_message_size(limit)
}

/// An A2A error as a gRPC status: the code from the spec's mapping table, the message,
/// and the ErrorInfo detail.
fn status(e: RpcError) -> Status {
    let (code, reason) = match e.code {
        a2a::TASK_NOT_FOUND => (Code::NotFound, "TASK_NOT_FOUND"),
        a2a::TASK_NOT_CANCELABLE => (Code::FailedPrecondition, "TASK_NOT_CANCELABLE"),
        a2a::UNSUPPORTED_OPERATION => (Code::FailedPrecondition, "UNSUPPORTED_OPERATION"),
        a2a::EXTENDED_CARD_NOT_CONFIGURED => (Code::FailedPrecondition, "EXTENDED_AGENT_CARD_NOT_CONFIGURED"),
        a2a::VERSION_NOT_SUPPORTED => (Code::FailedPrecondition, "VERSION_NOT_SUPPORTED"),
        a2a::INVALID_PARAMS => (Code::InvalidArgument, "INVALID_PARAMS"),
        a2a::INVALID_REQUEST | a2a::PARSE_ERROR => (Code::InvalidArgument, "INVALID_REQUEST"),
        a2a::METHOD_NOT_FOUND => (Code::Unimplemented, "METHOD_NOT_FOUND"),
        a2a::UNAUTHENTICATED => (Code::Unauthenticated, "UNAUTHENTICATED"),
        _ => (Code::Internal, "INTERNAL_ERROR"),
    };
    let details = agentdb_proto::a2a::error_details(code as i32, &e.message, reason);
    Status::with_details(code, e.message, details.into())
}

fn internal(why: String) -> Status {
    status(RpcError { code: a2a::INTERNAL_ERROR, message: why })
}

/// The caller (principal from the edge layer) of a request whose `A2A-Version`
/// metadata, if any, names a version this server speaks (1.0, or 0.3 which shares the
/// task model).
fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    if let Some(v) = req.metadata().get("a2a-version").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !(v.is_empty() || v.starts_with("1.0") || v.starts_with("0.3") || v == "1") {
            return Err(status(RpcError {
                code: a2a::VERSION_NOT_SUPPORTED,
                message: format!("A2A-Version {v} is not supported (1.0, 0.3)"),
            }));
        }
    }
    Ok(Caller::new(req.extensions().get::<Principal>().cloned()))
}

/// A request message as JSON-RPC params (ProtoJSON).
fn params<M: prost::Message>(name: &str, msg: &M) -> Result<Map<String, Value>, Status> {
    match json::to_json(&format!("lf.a2a.v1.{name}"), msg).map_err(internal)? {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// A ProtoJSON result as the response message.
fn reply<M: prost::Message + Default>(name: &str, v: &Value) -> Result<M, Status> {
    json::from_json(&format!("lf.a2a.v1.{name}"), v).map_err(internal)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamResponse, Status>> + Send>>;

impl A2aGrpc {
    async fn unary<Q: prost::Message, R: prost::Message + Default>(
        &self,
        req: Request<Q>,
        method: &str,
        request_type: &str,
        response_type: &str,
    ) -> Result<Response<R>, Status> {
        let ctx = caller(&req)?;
        crate::telemetry::record_rpc_method(method);
        let p = params(request_type, req.get_ref())?;
        let v = self.0.dispatch(&ctx, method, &p).await.map_err(status)?;
        Ok(Response::new(reply(response_type, &v)?))
    }

    fn stream<Q: prost::Message>(
        &self,
        req: Request<Q>,
        send: bool,
        request_type: &str,
    ) -> Result<Response<EventStream>, Status> {
        use tokio_stream::StreamExt as _;
        let ctx = caller(&req)?;
        let p = params(request_type, req.get_ref())?;
        let rx = self.0.stream_v1(&ctx, send, &p).map_err(status)?;
        let out =
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|v| reply::<pb::StreamResponse>("StreamResponse", &v));
        Ok(Response::new(Box::pin(out)))
    }
}

#[tonic::async_trait]
impl A2aService for A2aGrpc {
    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        self.unary(req, "SendMessage", "SendMessageRequest", "SendMessageResponse").await
    }

    type SendStreamingMessageStream = EventStream;

    async fn send_streaming_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Result<Response<EventStream>, Status> {
        crate::telemetry::record_rpc_method("SendStreamingMessage");
        self.stream(req, true, "SendMessageRequest")
    }

    async fn get_task(&self, req: Request<pb::GetTaskRequest>) -> Result<Response<pb::Task>, Status> {
        self.unary(req, "GetTask", "GetTaskRequest", "Task").await
    }

    async fn list_tasks(&self, req: Request<pb::ListTasksRequest>) -> Result<Response<pb::ListTasksResponse>, Status> {
        self.unary(req, "ListTasks", "ListTasksRequest", "ListTasksResponse").await
    }

    async fn cancel_task(&self, req: Request<pb::CancelTaskRequest>) -> Result<Response<pb::Task>, Status> {
        self.unary(req, "CancelTask", "CancelTaskRequest", "Task").await
    }

    type SubscribeToTaskStream = EventStream;

    async fn subscribe_to_task(
        &self,
        req: Request<pb::SubscribeToTaskRequest>,
    ) -> Result<Response<EventStream>, Status> {
        crate::telemetry::record_rpc_method("SubscribeToTask");
        self.stream(req, false, "SubscribeToTaskRequest")
    }

    async fn create_task_push_notification_config(
        &self,
        req: Request<pb::TaskPushNotificationConfig>,
    ) -> Result<Response<pb::TaskPushNotificationConfig>, Status> {
        self.unary(req, "CreateTaskPushNotificationConfig", "TaskPushNotificationConfig", "TaskPushNotificationConfig")
            .await
    }

    async fn get_task_push_notification_config(
        &self,
        req: Request<pb::GetTaskPushNotificationConfigRequest>,
    ) -> Result<Response<pb::TaskPushNotificationConfig>, Status> {
        self.unary(
            req,
            "GetTaskPushNotificationConfig",
            "GetTaskPushNotificationConfigRequest",
            "TaskPushNotificationConfig",
        )
        .await
    }

    async fn list_task_push_notification_configs(
        &self,
        req: Request<pb::ListTaskPushNotificationConfigsRequest>,
    ) -> Result<Response<pb::ListTaskPushNotificationConfigsResponse>, Status> {
        self.unary(
            req,
            "ListTaskPushNotificationConfigs",
            "ListTaskPushNotificationConfigsRequest",
            "ListTaskPushNotificationConfigsResponse",
        )
        .await
    }

    async fn get_extended_agent_card(
        &self,
        req: Request<pb::GetExtendedAgentCardRequest>,
    ) -> Result<Response<pb::AgentCard>, Status> {
        // The shared dispatch: the caller's extended card with authentication on, else the
        // spec's ExtendedAgentCardNotConfiguredError.
        self.unary(req, "GetExtendedAgentCard", "GetExtendedAgentCardRequest", "AgentCard").await
    }

    async fn delete_task_push_notification_config(
        &self,
        req: Request<pb::DeleteTaskPushNotificationConfigRequest>,
    ) -> Result<Response<()>, Status> {
        let ctx = caller(&req)?;
        crate::telemetry::record_rpc_method("DeleteTaskPushNotificationConfig");
        let p = params("DeleteTaskPushNotificationConfigRequest", req.get_ref())?;
        self.0.dispatch(&ctx, "DeleteTaskPushNotificationConfig", &p).await.map_err(status)?;
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_spec_codes_with_error_info() {
        let st = status(RpcError { code: a2a::TASK_NOT_FOUND, message: "task 'x' not found".into() });
        assert_eq!((st.code(), st.message()), (Code::NotFound, "task 'x' not found"));
        let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(st.details(), "TASK_NOT_FOUND") && has(st.details(), "a2a-protocol.org"));
        let code = |c| status(RpcError { code: c, message: String::new() }).code();
        assert_eq!(code(a2a::TASK_NOT_CANCELABLE), Code::FailedPrecondition);
        assert_eq!(code(a2a::INVALID_PARAMS), Code::InvalidArgument);
        assert_eq!(code(a2a::EXTENDED_CARD_NOT_CONFIGURED), Code::FailedPrecondition);
        assert_eq!(code(a2a::INTERNAL_ERROR), Code::Internal);
    }

    #[test]
    fn requests_become_json_rpc_params() {
        let req = pb::ListTasksRequest {
            context_id: "c".into(),
            status: pb::TaskState::Working as i32,
            page_size: Some(5),
            include_artifacts: Some(true),
            ..Default::default()
        };
        let p = params("ListTasksRequest", &req).unwrap();
        assert_eq!(
            Value::Object(p),
            serde_json::json!({"contextId": "c", "status": "TASK_STATE_WORKING", "pageSize": 5, "includeArtifacts": true})
        );
    }
}
