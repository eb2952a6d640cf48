//! What can go wrong.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a gRPC status: its code, message and retry hint.
    #[error("{message} ({code:?})")]
    Status {
        code: tonic::Code,
        message: String,
        /// The server's `retry-after-ms` hint: it refused before doing anything, and the
        /// same request may succeed after this long.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached.
    #[error("{0}")]
    Connect(String),
    /// A bad URL, credential or certificate file.
    #[error("{0}")]
    Config(String),
    /// The server answered something this client did not expect.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Error {
    /// The gRPC code, for a status.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(tonic::Code::NotFound)
    }

    pub fn is_permission_denied(&self) -> bool {
        self.code() == Some(tonic::Code::PermissionDenied)
    }

    pub fn is_unauthenticated(&self) -> bool {
        self.code() == Some(tonic::Code::Unauthenticated)
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let retry_after = s
            .metadata()
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        Error::Status { code: s.code(), message: s.message().to_string(), retry_after }
    }
}
