//! Identifiers. Each is a newtype that can only be built from a valid value.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is invalid: {reason}")]
pub struct IdError {
    pub field: &'static str,
    pub reason: &'static str,
}

/// A message id: a ULID, so ids sort by creation time (Crockford base32, 26 chars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(ulid::Ulid);

impl MessageId {
    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }
    /// Milliseconds since the Unix epoch at which the id was minted.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
    /// A stable 64-bit value derived from the id, used for deterministic weighted choices.
    pub fn stable_hash(&self) -> u64 {
        let v = self.0 .0;
        (v as u64) ^ ((v >> 64) as u64)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for MessageId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(Self)
            .map_err(|_| IdError { field: "id", reason: "not a message id (26-character ULID)" })
    }
}

impl TryFrom<String> for MessageId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr, $allowed:expr, $reason:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s: String = s.into();
                let ok_len = (($min)..=($max)).contains(&s.len());
                let allowed: fn(char) -> bool = $allowed;
                if ok_len && s.chars().all(allowed) {
                    Ok(Self(s))
                } else {
                    Err(IdError { field: $field, reason: $reason })
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_id!(
    /// A tenant: lowercase letters, digits and `-`, 2–63 characters (safe in URLs and keys).
    TenantId, "tenant", 2, 63,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
    "use 2-63 lowercase letters, digits or '-'"
);

token_id!(
    /// A client-chosen idempotency key: 1–255 printable ASCII characters.
    IdempotencyKey, "Idempotency-Key", 1, 255,
    |c| c.is_ascii_graphic(),
    "use 1-255 printable ASCII characters without spaces"
);

token_id!(
    /// The id a provider gave a message (Twilio SID, Vonage message-id, Telnyx UUID, ...).
    ProviderMessageId, "provider_message_id", 1, 200,
    |c| c.is_ascii_graphic(),
    "must be 1-200 printable ASCII characters"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_creation_time() {
        let a = MessageId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MessageId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
    }

    #[test]
    fn message_id_rejects_garbage() {
        assert!("not-an-id".parse::<MessageId>().is_err());
        assert!("".parse::<MessageId>().is_err());
    }

    #[test]
    fn tenant_id_rules() {
        assert!(TenantId::parse("psap-north").is_ok());
        assert!(TenantId::parse("PSAP").is_err());
        assert!(TenantId::parse("a").is_err());
        assert!(TenantId::parse("has space").is_err());
        assert!(TenantId::parse("x".repeat(64)).is_err());
    }

    #[test]
    fn idempotency_key_rules() {
        assert!(IdempotencyKey::parse("order-123:retry").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
    }
}
