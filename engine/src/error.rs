//! The engine's errors: a job that cannot start, or one that failed.

/// Why a job could not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown {what} `{name}`; known: {known}")]
    UnknownPlugin { what: &'static str, name: String, known: String },
    #[error("{what} `{name}`: {reason}")]
    Plugin { what: &'static str, name: String, reason: String },
    #[error("could not start the workers: {0}")]
    Runtime(String),
    #[error("job failed: {0}")]
    Failed(String),
    #[error("internal error: {0}")]
    Internal(String),
}
