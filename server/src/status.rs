//! The one place library errors become gRPC statuses. The matches are exhaustive on
//! purpose: a new error variant must be given a status here.

use tonic::{Code, Status};

/// Anything a request handler's blocking work can fail with.
#[derive(Debug)]
pub enum ApiError {
    Engine(agentdb_engine::Error),
    Models(agentdb_models::Error),
    Retrieval(agentdb_retrieval::Error),
    Cluster(agentdb_cluster::Error),
    Status(Status),
}

impl From<agentdb_cluster::Error> for ApiError {
    fn from(e: agentdb_cluster::Error) -> Self {
        ApiError::Cluster(e)
    }
}

impl From<agentdb_retrieval::Error> for ApiError {
    fn from(e: agentdb_retrieval::Error) -> Self {
        ApiError::Retrieval(e)
    }
}

impl From<agentdb_engine::Error> for ApiError {
    fn from(e: agentdb_engine::Error) -> Self {
        ApiError::Engine(e)
    }
}
impl From<agentdb_models::Error> for ApiError {
    fn from(e: agentdb_models::Error) -> Self {
        ApiError::Models(e)
    }
}
impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError::Status(s)
    }
}

pub fn engine_code(e: &agentdb_engine::Error) -> Code {
    use agentdb_engine::Error as E;
    match e {
        E::InvalidArgument(_) | E::DimensionMismatch { .. } | E::InvalidFilter(_) => Code::InvalidArgument,
        E::CollectionNotFound(_) | E::SpaceNotFound { .. } => Code::NotFound,
        E::CollectionExists(_) => Code::AlreadyExists,
        E::LimitExceeded(_) => Code::ResourceExhausted,
        E::Corrupted { .. } => Code::DataLoss,
        E::Io { .. } | E::Faiss(_) => Code::Internal,
        E::Locked { .. } | E::Encryption(_) | E::CollectionDamaged { .. } => Code::FailedPrecondition,
        E::Unavailable(_) => Code::Unavailable,
    }
}

pub fn models_code(e: &agentdb_models::Error) -> Code {
    use agentdb_models::Error as E;
    match e {
        E::InvalidInput(_) => Code::InvalidArgument,
        E::ModelNotFound(_) | E::ModelLoad { .. } => Code::FailedPrecondition,
        E::Inference(_) => Code::Internal,
        E::Overloaded(_) => Code::ResourceExhausted,
    }
}

pub fn retrieval_code(e: &agentdb_retrieval::Error) -> Code {
    use agentdb_retrieval::Error as E;
    match e.root() {
        E::Engine(e) => engine_code(e),
        E::Models(e) => models_code(e),
        E::InvalidInput(_) => Code::InvalidArgument,
        E::Unavailable(_) => Code::FailedPrecondition,
        E::About { .. } => Code::Unknown, // root() never returns one
    }
}

pub fn cluster_code(e: &agentdb_cluster::Error) -> Code {
    use agentdb_cluster::Error as E;
    match e {
        E::Unavailable(_) | E::Refused(_) | E::Nats(_) => Code::Unavailable,
        E::Full(_) => Code::ResourceExhausted,
        E::Conflict(_) => Code::FailedPrecondition,
        E::NotFound(_) => Code::NotFound,
        E::AlreadyExists(_) => Code::AlreadyExists,
        E::Invalid(_) => Code::InvalidArgument,
        E::Engine(e) => engine_code(e),
    }
}

/// The `retry-after-ms` hint of a write a node refused because it is cut off from NATS
/// (the NATS client reconnects every 0.1 to 1 s).
pub const CLUSTER_REFUSED_RETRY_MS: u64 = 500;

pub fn to_status(e: ApiError) -> Status {
    let (code, msg) = match e {
        ApiError::Engine(e) => (engine_code(&e), e.to_string()),
        ApiError::Models(e) => (models_code(&e), e.to_string()),
        ApiError::Retrieval(e) => (retrieval_code(&e), e.to_string()),
        // Refused before anything was sent: safe to retry, writes included (the hint
        // tells the SDKs so).
        ApiError::Cluster(e @ agentdb_cluster::Error::Refused(_)) => {
            let mut st = Status::unavailable(e.to_string());
            st.metadata_mut().insert("retry-after-ms", CLUSTER_REFUSED_RETRY_MS.into());
            return st;
        }
        ApiError::Cluster(e) => (cluster_code(&e), e.to_string()),
        ApiError::Status(s) => return s,
    };
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!(error = %msg, "request failed");
    }
    Status::new(code, msg)
}

/// tonic's errors for a request message it could not read, as this API reports them
/// (`limit`: limits.max_message_bytes where the caller knows it; the limit named is the
/// one tonic applied, which is lower for services that keep tonic's 4 MiB default):
/// bytes that are not valid protobuf (tonic: INTERNAL "failed to decode Protobuf
/// message: ...", e.g. a string field that is not UTF-8) and a unary call without a
/// message are the client's fault, INVALID_ARGUMENT; a message over the size limit
/// (tonic: OUT_OF_RANGE "... message length too large ...") is RESOURCE_EXHAUSTED
/// naming `limits.max_message_bytes`. Anything else: `None`, left as it is.
pub fn request_read_error(code: Code, message: &str, limit: Option<usize>) -> Option<Status> {
    const UNDECODABLE: &str = "failed to decode Protobuf message";
    match code {
        Code::Internal if message.starts_with(UNDECODABLE) => {
            let why = message[UNDECODABLE.len()..].trim_start_matches(':').trim();
            let why = if why.is_empty() { "undecodable message" } else { why };
            Some(Status::invalid_argument(format!("request is not valid protobuf: {why}")))
        }
        Code::Internal if message == "Missing request message." => {
            Some(Status::invalid_argument("request is not valid protobuf: the call carries no request message"))
        }
        Code::OutOfRange if message.contains("too large") => {
            // tonic: "... found {len} bytes, the limit is: {limit} bytes".
            let stated =
                message.split("the limit is: ").nth(1).and_then(|s| s.split(' ').next()?.parse::<usize>().ok());
            let found = message.split("found ").nth(1).and_then(|s| s.split(' ').next()?.parse::<usize>().ok());
            let size = found.map(|n| format!(" of {n} bytes")).unwrap_or_default();
            let msg = match (stated, limit) {
                (Some(l), Some(cfg)) if l != cfg => format!("request message{size} exceeds the limit of {l} bytes"),
                (Some(l), _) | (None, Some(l)) => {
                    format!("request message{size} exceeds the limit of {l} bytes (limits.max_message_bytes)")
                }
                (None, None) => format!("request message{size} exceeds the size limit (limits.max_message_bytes)"),
            };
            Some(Status::resource_exhausted(msg))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_read_errors_become_the_clients_fault() {
        let s = request_read_error(
            Code::Internal,
            "failed to decode Protobuf message: Item.id: invalid string value: data is not UTF-8 encoded",
            None,
        )
        .unwrap();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "request is not valid protobuf: Item.id: invalid string value: data is not UTF-8 encoded"
        );
        let s = request_read_error(
            Code::OutOfRange,
            "Error, decoded message length too large: found 73400320 bytes, the limit is: 8388608 bytes",
            None,
        )
        .unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "request message of 73400320 bytes exceeds the limit of 8388608 bytes (limits.max_message_bytes)"
        );
        let s = request_read_error(Code::OutOfRange, "message too large", Some(1024)).unwrap();
        assert_eq!(s.message(), "request message exceeds the limit of 1024 bytes (limits.max_message_bytes)");
        // A service on tonic's default limit: that limit, not the configured one.
        let s = request_read_error(
            Code::OutOfRange,
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
            Some(67108864),
        )
        .unwrap();
        assert_eq!(s.message(), "request message of 5000000 bytes exceeds the limit of 4194304 bytes");
        assert!(request_read_error(Code::Internal, "disk on fire", None).is_none());
        assert!(request_read_error(Code::OutOfRange, "offset past the end", None).is_none());
    }
}
