//! Callback authenticity, one module per provider scheme (in the shape of svix's
//! `webhooks.rs`): each exposes a `verify(...)` that takes the raw request exactly as
//! received, compares in constant time and enforces its timestamp tolerance.
//! The webhook function and `dispatchctl webhook verify` call the same functions.

pub mod bandwidth;
pub mod plivo;
pub mod sandbox;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use std::time::Duration;

/// How far a signed timestamp may be from now (both directions).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A callback request exactly as it reached us. `url` is the full URL the provider
/// requested (scheme, host, port if any, path, query); `body` is the raw body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookRequest {
    pub method: String,
    pub url: String,
    /// Header names as received; look-ups are case-insensitive. Repeated headers
    /// appear as repeated entries.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// All values of a header, case-insensitively.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The single value of a header. A missing header and a duplicated one are both
    /// errors: a forger could otherwise smuggle a second value past a proxy.
    pub fn single_header(&self, name: &'static str) -> Result<&str, VerifyError> {
        let mut it = self.header_values(name);
        match (it.next(), it.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(VerifyError::MissingHeader(name)),
            (Some(_), Some(_)) => Err(VerifyError::DuplicateHeader(name)),
        }
    }

    /// Decoded `application/x-www-form-urlencoded` body parameters, in order.
    pub fn form_params(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// Decoded query parameters of `url`, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        match url::Url::parse(&self.url) {
            Ok(u) => u.query_pairs().into_owned().collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header_values("content-type").next()
    }
}

/// Why a callback was judged not authentic. Messages never include secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    SignatureMismatch,
    #[error("timestamp outside the {0}s tolerance")]
    TimestampOutOfTolerance(u64),
    #[error("body hash does not match")]
    BodyHashMismatch,
    #[error("credentials do not match")]
    BadCredentials,
    #[error("replayed: {0} already seen within the window")]
    Replayed(&'static str),
    #[error("the provider's verification secret is not configured or unusable: {0}")]
    SecretUnusable(&'static str),
}

impl VerifyError {
    /// Machine-readable code for logs and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::Malformed(_) => "malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampOutOfTolerance(_) => "timestamp_out_of_tolerance",
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::BadCredentials => "bad_credentials",
            Self::Replayed(_) => "replayed",
            Self::SecretUnusable(_) => "secret_unusable",
        }
    }
}

/// Constant-time equality for signatures and credentials.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks `|now - ts| <= tolerance`.
pub fn check_tolerance(ts_unix: i64, now_unix: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let tol = tolerance.as_secs();
    if now_unix.abs_diff(ts_unix) > tol {
        Err(VerifyError::TimestampOutOfTolerance(tol))
    } else {
        Ok(())
    }
}
