//! The one place engine errors become gRPC statuses. The match is exhaustive on
//! purpose: a new error variant must be given a status here.

use agentdb_engine::Error;
use tonic::{Code, Status};

pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::InvalidArgument(_) | Error::DimensionMismatch { .. } | Error::InvalidFilter(_) => Code::InvalidArgument,
        Error::CollectionNotFound(_) | Error::SpaceNotFound { .. } => Code::NotFound,
        Error::CollectionExists(_) => Code::AlreadyExists,
        Error::LimitExceeded(_) => Code::ResourceExhausted,
        Error::Corrupted { .. } => Code::DataLoss,
        Error::Io { .. } | Error::Faiss(_) => Code::Internal,
        Error::Locked { .. } => Code::FailedPrecondition,
        Error::Unavailable(_) => Code::Unavailable,
    };
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!(error = %e, "request failed");
    }
    Status::new(code, e.to_string())
}
