//! What ingest and query fail with. Each variant says whose fault it is, so an edge maps
//! it to its protocol's status in one place (the server's `status.rs`).

/// A retrieval failure. `Display` is the message a user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] agentdb_engine::Error),
    #[error(transparent)]
    Models(#[from] agentdb_models::Error),
    /// The request or the file is wrong (empty, undecodable, too large, no query...).
    #[error("{0}")]
    InvalidInput(String),
    /// The server cannot do it as configured (an encoder is not loaded, a space holds
    /// vectors no loaded encoder makes).
    #[error("{0}")]
    Unavailable(String),
    /// An error about something named (a file, "query image"): `what: message`.
    #[error("{what}: {source}")]
    About { what: String, source: Box<Error> },
}

impl Error {
    /// The same error, its message prefixed with what it is about.
    pub fn about(self, what: &str) -> Error {
        Error::About { what: what.to_string(), source: Box::new(self) }
    }

    /// The innermost error (what decides the status).
    pub fn root(&self) -> &Error {
        match self {
            Error::About { source, .. } => source.root(),
            e => e,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Error::InvalidInput` with a formatted message.
#[macro_export]
#[doc(hidden)]
macro_rules! invalid {
    ($($t:tt)*) => { $crate::Error::InvalidInput(format!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_prefixes_the_message_and_keeps_the_cause() {
        let e = Error::InvalidInput("no speech found".into()).about("query audio");
        assert_eq!(e.to_string(), "query audio: no speech found");
        assert!(matches!(e.root(), Error::InvalidInput(_)));
    }
}
