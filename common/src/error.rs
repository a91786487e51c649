//! Errors split by what the caller must do, mapped once: API errors become an HTTP
//! status with `{code, message, field?}`; processing errors decide between
//! "retry this SQS record" and "give up on it".

use serde::Serialize;

/// Bad input or a refused request: the client must change something. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// Machine-readable, stable: `invalid_json`, `invalid_number`, `unknown_category`...
    pub code: String,
    /// A human sentence saying what is wrong and how to fix it.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), field: None }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(422, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("No {what} with that id exists for this tenant."))
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }
    pub fn internal() -> Self {
        Self::new(500, "internal_error", "Something went wrong on our side; the request was not accepted. Retry with the same Idempotency-Key.")
    }
    pub fn unavailable() -> Self {
        Self::new(503, "temporarily_unavailable", "A dependency is unavailable; retry with the same Idempotency-Key.")
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"code\":\"internal_error\"}".into())
    }
}

/// A failure while processing a queued job.
#[derive(Debug, thiserror::Error)]
pub enum ProcessingError {
    /// Worth retrying as is (throttling, emulator or AWS hiccup, provider 5xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying the same record cannot help (malformed job). The record is dropped
    /// after being logged; the message it names (if any) is failed with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<StoreError> for ProcessingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Transient("concurrent update; will retry".into()),
            StoreError::Unavailable(m) => Self::Transient(m),
            StoreError::Corrupt(m) => Self::Permanent(m),
            StoreError::NotFound => Self::Permanent("not found".into()),
        }
    }
}

/// Persistence failures, by what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race: re-read and decide again.
    #[error("conditional write failed")]
    Conflict,
    #[error("not found")]
    NotFound,
    /// The store could not be reached or throttled us: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data did not parse: a bug or manual tampering.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
