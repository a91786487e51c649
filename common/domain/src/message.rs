//! The message record and its history, as stored and as shown through the API.

use super::{ContentCategory, DeliveryStatus, Encoding, MessageId, ProviderMessageId, TenantId, E164};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Sms,
    Mms,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Mms => "mms",
        }
    }
}

/// A sender identity: an E.164 long code, a short code (3–8 digits) or an
/// alphanumeric sender id (1–11 characters, at least one letter, GSM-safe).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SenderId {
    LongCode(E164),
    ShortCode(String),
    Alphanumeric(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sender must be an E.164 number (+...), a 3-8 digit short code, or a 1-11 character alphanumeric sender id")]
pub struct SenderIdError;

impl SenderId {
    pub fn parse(s: &str) -> Result<Self, SenderIdError> {
        if s.starts_with('+') {
            return E164::parse(s, None).map(Self::LongCode).map_err(|_| SenderIdError);
        }
        if (3..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit()) {
            return Ok(Self::ShortCode(s.to_string()));
        }
        let alnum = (1..=11).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '.')
            && s.chars().any(|c| c.is_ascii_alphabetic());
        if alnum { Ok(Self::Alphanumeric(s.to_string())) } else { Err(SenderIdError) }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::LongCode(n) => n.as_str(),
            Self::ShortCode(s) | Self::Alphanumeric(s) => s,
        }
    }

    /// Only long codes can receive replies (and so carry MMS on most providers).
    pub fn is_long_code(&self) -> bool {
        matches!(self, Self::LongCode(_))
    }
}

impl TryFrom<String> for SenderId {
    type Error = SenderIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SenderId> for String {
    fn from(s: SenderId) -> Self {
        s.as_str().to_string()
    }
}

impl fmt::Display for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked for the message, recorded for governance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorContext {
    /// Id of the API key that submitted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The human operator, as the calling workflow names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    /// Why the message was sent (free text from the workflow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The message as stored. Timestamps are ISO 8601 UTC strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub tenant: TenantId,
    pub kind: MessageKind,
    pub category: ContentCategory,
    pub to: E164,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<SenderId>,
    /// True when the workflow asked for `from`; otherwise routing chose it (and may
    /// choose another on failover).
    #[serde(default)]
    pub sender_requested: bool,
    /// The text. Redacted (set to `None`, `body_sha256` kept) by the retention job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub body_sha256: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    pub encoding: Encoding,
    pub segments: u32,
    pub status: DeliveryStatus,
    /// Bumped by every applied state change; conditional writes compare it.
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<ProviderMessageId>,
    pub attempts: u32,
    /// Attempts on the current provider (failover resets it).
    #[serde(default)]
    pub provider_attempts: u32,
    /// Provider accounts that failed this message, skipped by failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_providers: Vec<String>,
    /// True for life-safety categories: priority lane, never quiet hours.
    #[serde(default)]
    pub priority: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub operator: OperatorContext,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// When the next attempt or sweep check is due (ISO 8601); absent once terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// When the message stops being worth delivering.
    pub expires_at: String,
    /// When the sweep raised a missed-delivery-deadline escalation, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<String>,
    /// For categories with a delivery deadline: when the message must be delivered by
    /// (acceptance + deadline). Until it is escalated the message is due for the sweep
    /// at this time whatever its state, so one stuck before `sent` (retrying, queued,
    /// waiting on open circuits) escalates on time too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_at: Option<String>,
    /// Times routing found only open circuits and waited; bounded by the retry policy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub health_waits: u32,
    /// Retention: when the body is due to be redacted (metadata and `body_sha256` stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact_at: Option<String>,
    /// When the body was redacted by the retention job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_at: Option<String>,
    /// Retention: when the record (and its history) may be deleted by DynamoDB TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// A legal hold stops redaction and deletion until lifted.
    #[serde(default)]
    pub legal_hold: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold_reason: Option<String>,
}

/// Which part of the system produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Submit,
    Route,
    Send,
    Webhook,
    Retry,
    Operator,
}

/// One line of a message's history: a state change, or a late / duplicate event that
/// was recorded but not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub at: String,
    pub source: EventSource,
    pub status: DeliveryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_status: Option<DeliveryStatus>,
    /// False when the event was recorded but did not change the message's state.
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's own status word (e.g. Twilio `undelivered`, Sinch `Dispatched`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_ids() {
        assert!(matches!(SenderId::parse("+447400123456"), Ok(SenderId::LongCode(_))));
        assert!(matches!(SenderId::parse("60123"), Ok(SenderId::ShortCode(_))));
        assert!(matches!(SenderId::parse("CityCouncil"), Ok(SenderId::Alphanumeric(_))));
        assert!(SenderId::parse("TwelveChars1").is_err());
        assert!(SenderId::parse("12").is_err());
        assert!(SenderId::parse("123456789").is_err());
        assert!(SenderId::parse("+1").is_err());
        assert!(SenderId::parse("").is_err());
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
