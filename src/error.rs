//! The errors an invocation can end with, and their Lambda `errorType`s.
//!
//! Every variant names the function (where there is one) and the cause, so the `errorMessage`
//! a caller sees is enough to act on without reading the logs.

use lambda_runtime::Diagnostic;

/// Why an invocation failed. The variant decides the Lambda `errorType`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No function of that name is in the store.
    #[error("function `{function}` not found in {store}")]
    FunctionNotFound { function: String, store: String },

    /// The function's manifest does not parse or validate; the function is unavailable.
    #[error("function `{function}` is unavailable: {reason}")]
    ManifestInvalid { function: String, reason: String },

    /// The module is missing, is not WebAssembly, fails its digest or does not compile.
    #[error("function `{function}`: module is invalid: {reason}")]
    ModuleInvalid { function: String, reason: String },

    /// The plugin returned an error (Extism error or non-zero return code).
    #[error("function `{function}` failed: {reason}")]
    FunctionError { function: String, reason: String },

    /// The plugin trapped: `unreachable`, out of bounds, stack overflow, memory or fuel limit.
    #[error("function `{function}` trapped: {reason}")]
    FunctionTrap { function: String, reason: String },

    /// The plugin ran past its effective timeout and was stopped.
    #[error("function `{function}` timed out after {elapsed_ms} ms (limit {limit_ms} ms)")]
    FunctionTimeout {
        function: String,
        elapsed_ms: u128,
        limit_ms: u128,
    },

    /// The function store could not be read and no cached version exists. Retryable.
    #[error("function store unavailable for `{function}`: {reason}")]
    StoreUnavailable { function: String, reason: String },

    /// The event is of no kind the adapter knows.
    #[error("unsupported event: {0}")]
    UnsupportedEvent(String),

    /// The event is of a known kind but malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// A record that no function is hooked to (`FunctionNotFound`).
    #[error("no function is hooked to {record}")]
    NotHooked { record: String },

    /// Records of an asynchronous batch (S3, SNS, EventBridge) failed, so the invocation fails
    /// and Lambda retries the event. The `errorType` is the first failure's.
    #[error("{failed} of {total} records failed; first: {first}")]
    RecordsFailed {
        failed: usize,
        total: usize,
        first: String,
        error_type: &'static str,
    },
}

impl Error {
    /// The stable Lambda `errorType` string of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::FunctionNotFound { .. } => "FunctionNotFound",
            Error::ManifestInvalid { .. } => "ManifestInvalid",
            Error::ModuleInvalid { .. } => "ModuleInvalid",
            Error::FunctionError { .. } => "FunctionError",
            Error::FunctionTrap { .. } => "FunctionTrap",
            Error::FunctionTimeout { .. } => "FunctionTimeout",
            Error::StoreUnavailable { .. } => "StoreUnavailable",
            Error::UnsupportedEvent(_) => "UnsupportedEvent",
            Error::InvalidRequest(_) => "InvalidRequest",
            Error::NotHooked { .. } => "FunctionNotFound",
            Error::RecordsFailed { error_type, .. } => error_type,
        }
    }

    /// The cause, without the function's name (which the message also carries).
    pub fn reason(&self) -> String {
        match self {
            Error::ManifestInvalid { reason, .. }
            | Error::ModuleInvalid { reason, .. }
            | Error::FunctionError { reason, .. }
            | Error::FunctionTrap { reason, .. }
            | Error::StoreUnavailable { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// What a public HTTP caller is told: the kind of failure, nothing of the function's
    /// internals (store, bucket, keys, endpoints, module paths, the function's own messages).
    /// The full error goes to the log, under the invocation's request id.
    pub fn public_message(&self) -> &'static str {
        match self {
            Error::FunctionNotFound { .. } | Error::NotHooked { .. } => "no such function",
            Error::ManifestInvalid { .. } | Error::ModuleInvalid { .. } => {
                "the function is unavailable"
            }
            Error::FunctionError { .. } | Error::FunctionTrap { .. } => "the function failed",
            Error::FunctionTimeout { .. } => "the function timed out",
            Error::StoreUnavailable { .. } => "the function is unavailable; try again later",
            Error::UnsupportedEvent(_) | Error::InvalidRequest(_) => "the request is invalid",
            Error::RecordsFailed { .. } => "the function failed",
        }
    }

    /// The HTTP status an HTTP trigger answers with when its function fails this way.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::FunctionNotFound { .. } => 404,
            Error::InvalidRequest(_) => 400,
            Error::FunctionTimeout { .. } => 504,
            Error::StoreUnavailable { .. } => 503,
            _ => 500,
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_string(),
            error_message: error.to_string(),
        }
    }
}
