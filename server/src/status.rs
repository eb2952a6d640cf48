//! The one place library errors become gRPC statuses. The matches are exhaustive on
//! purpose: a new error variant must be given a status here.

use tonic::{Code, Status};

/// Anything a request handler's blocking work can fail with.
#[derive(Debug)]
pub enum ApiError {
    Engine(agentdb_engine::Error),
    Models(agentdb_models::Error),
    Status(Status),
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
        E::Locked { .. } | E::Encryption(_) => Code::FailedPrecondition,
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

pub fn to_status(e: ApiError) -> Status {
    let (code, msg) = match e {
        ApiError::Engine(e) => (engine_code(&e), e.to_string()),
        ApiError::Models(e) => (models_code(&e), e.to_string()),
        ApiError::Status(s) => return s,
    };
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!(error = %msg, "request failed");
    }
    Status::new(code, msg)
}

/// Prefix an error's message with what it is about (a file, "query image"), keeping its code.
pub fn prefixed(what: &str, e: ApiError) -> ApiError {
    let st = to_status(e);
    tonic::Status::new(st.code(), format!("{what}: {}", st.message())).into()
}
