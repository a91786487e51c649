//! Provider adapters behind one trait. An adapter is pure: it *builds* the HTTP
//! request for a send and *parses* what comes back (responses, status callbacks,
//! inbound messages). the caller's HTTP executor performs the call, so adapters are testable
//! without a network and the hot path can be benchmarked in-process.

pub mod bandwidth;
pub mod credentials;
pub mod plivo;
pub mod registry;
pub mod sandbox;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use dispatch_domain::{DeliveryStatus, MessageId, MessageKind, ProviderMessageId, SenderId, E164};
use crate::signatures::{VerifyError, WebhookRequest};
pub use credentials::Credentials;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every provider type the platform knows. The wire name is used in configuration,
/// queue names, webhook paths and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProviderKind {
    #[serde(rename = "sandbox")]
    Sandbox,
    #[serde(rename = "twilio")]
    Twilio,
    /// Vonage SMS API (`rest.nexmo.com/sms/json`, `sig`-signed callbacks).
    #[serde(rename = "vonage-sms")]
    VonageSms,
    /// Vonage Messages API (`api.nexmo.com/v1/messages`, JWT-signed callbacks).
    #[serde(rename = "vonage-messages")]
    VonageMessages,
    #[serde(rename = "telnyx")]
    Telnyx,
    #[serde(rename = "bandwidth")]
    Bandwidth,
    #[serde(rename = "plivo")]
    Plivo,
    #[serde(rename = "sinch")]
    Sinch,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 8] = [
        Self::Sandbox,
        Self::Twilio,
        Self::VonageSms,
        Self::VonageMessages,
        Self::Telnyx,
        Self::Bandwidth,
        Self::Plivo,
        Self::Sinch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Twilio => "twilio",
            Self::VonageSms => "vonage-sms",
            Self::VonageMessages => "vonage-messages",
            Self::Telnyx => "telnyx",
            Self::Bandwidth => "bandwidth",
            Self::Plivo => "plivo",
            Self::Sinch => "sinch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider can carry, from its documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub sms: bool,
    pub mms: bool,
    /// Most media items in one MMS.
    pub max_media: u32,
    /// Largest total media size in bytes the provider accepts for one MMS.
    pub max_media_bytes: u64,
    /// MIME types the provider accepts for MMS.
    pub media_types: &'static [&'static str],
    pub alphanumeric_sender: bool,
    pub status_callbacks: bool,
    pub inbound: bool,
    /// Human description of the callback authentication scheme.
    pub signature_scheme: &'static str,
}

/// A message ready for a provider: everything an adapter needs, nothing it can get wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub id: MessageId,
    pub kind: MessageKind,
    pub to: E164,
    pub from: SenderId,
    pub body: String,
    /// Short-lived URLs the provider fetches media from (MMS).
    pub media_urls: Vec<String>,
    /// Where the provider should POST status callbacks for this message.
    pub status_callback_url: String,
    /// Seconds the message stays worth delivering (provider TTL / validity).
    pub validity_secs: Option<u32>,
}

/// A fully built HTTP request (auth included), executed by the caller's HTTP executor.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for ProviderRequest {
    // Headers carry credentials and the body carries the message: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &format_args!("[{} redacted]", self.headers.len()))
            .field("body", &format_args!("[{} bytes redacted]", self.body.len()))
            .finish()
    }
}

/// The raw HTTP response from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAccepted {
    pub provider_message_id: ProviderMessageId,
    /// The canonical state the provider's answer implies (usually `sent`).
    pub status: DeliveryStatus,
    /// The provider's own status word, for the history.
    pub provider_status: Option<String>,
    /// Segments the provider says it billed, where it says so.
    pub segments: Option<u32>,
}

/// What the caller must do about a failed send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (and/or fail over): rate limits, 5xx, timeouts, network errors,
    /// provider codes documented as temporary.
    #[error("transient provider error{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Transient { code: Option<String>, message: String, retry_after_secs: Option<u64> },
    /// Do not retry this request: invalid number, barred, auth failure, bad request.
    #[error("permanent provider error{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Permanent { code: Option<String>, message: String },
    /// The credentials do not fit this provider (fail closed, never fall back).
    #[error("provider credentials unusable: {0}")]
    Credentials(String),
    /// The message cannot go through this provider at all (e.g. MMS on an SMS-only adapter).
    #[error("unsupported by this provider: {0}")]
    Unsupported(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Transient { code, .. } | Self::Permanent { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// A delivery-state update parsed from a provider callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub provider_message_id: ProviderMessageId,
    pub status: DeliveryStatus,
    /// The provider's own status word.
    pub provider_status: String,
    pub error_code: Option<String>,
    pub description: Option<String>,
    /// Our message id when the provider echoes a client reference.
    pub client_ref: Option<String>,
    /// For per-part receipts (Vonage SMS): which part, of how many, if known.
    pub part: Option<(u32, u32)>,
    /// When the provider says the event happened (ISO 8601), if it says.
    pub occurred_at: Option<String>,
}

/// An inbound SMS/MMS parsed from a provider webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMessage {
    pub provider_message_id: String,
    /// The citizen's number.
    pub from: String,
    /// Our number (identifies the tenant).
    pub to: String,
    pub text: String,
    pub media: Vec<InboundMedia>,
    pub received_at: Option<String>,
    /// The provider's original fields, kept as evidence metadata.
    pub provider_metadata: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMedia {
    pub url: String,
    pub content_type: Option<String>,
}

/// What a callback request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Status(Vec<StatusUpdate>),
    Inbound(InboundMessage),
    /// A well-formed event we do not act on (e.g. Telnyx `message.received` for MMS
    /// parts, Bandwidth `message-sending`), acknowledged with 200.
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed callback: {0}")]
pub struct CallbackParseError(pub String);

/// One provider's wire format. Implementations are stateless and cheap to construct.
pub trait ProviderAdapter: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn capabilities(&self) -> Capabilities;
    /// Builds the provider's send request in its documented format and auth.
    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError>;
    /// Interprets the provider's answer: accepted (with its message id), or an error
    /// classified as transient or permanent from HTTP status and provider codes.
    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError>;
    /// Checks the callback is authentic under the provider's scheme. `now_unix` is
    /// injected for tolerance checks.
    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError>;
    /// Parses a verified callback: status update(s), inbound message, or ignorable event.
    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError>;
    /// A value that must not be accepted twice within the tolerance window (a nonce,
    /// a JWT `jti`, a signed timestamp+signature), for replay protection. The webhook
    /// handler stores it with a conditional write. `None` where the scheme has none
    /// (Twilio, Bandwidth): there duplicates are harmless because state never regresses.
    fn replay_key(&self, _req: &WebhookRequest) -> Option<String> {
        None
    }
}

/// `Retry-After` in seconds, if the provider sent one.
pub fn retry_after_secs(resp: &ProviderResponse) -> Option<u64> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Checks media against a provider's documented limits: item count, total size and
/// accepted types. `items` are `(content type, size in bytes)`. The error names the
/// first limit exceeded, for the routing capability gate's verdict.
pub fn check_provider_limits(caps: &Capabilities, items: &[(&str, u64)]) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    if !caps.mms || caps.max_media == 0 {
        return Err("no MMS support".into());
    }
    if items.len() > caps.max_media as usize {
        return Err(format!("{} media items, at most {}", items.len(), caps.max_media));
    }
    let total: u64 = items.iter().map(|(_, s)| *s).sum();
    if total > caps.max_media_bytes {
        return Err(format!("{total} bytes of media, at most {}", caps.max_media_bytes));
    }
    for (ct, _) in items {
        let ct = dispatch_domain::media_type::normalize_content_type(ct);
        if !caps.media_types.iter().any(|t| dispatch_domain::media_type::normalize_content_type(t) == ct) {
            return Err(format!("media type {ct} not accepted (accepts {})", caps.media_types.join(", ")));
        }
    }
    Ok(())
}
