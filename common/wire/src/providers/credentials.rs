//! Provider credentials, one typed struct per provider, parsed from the JSON secret
//! a tenant stores in Secrets Manager. Parsing fails closed: a missing field or a
//! secret for another provider is an error, never a fallback.
//!
//! Every struct accepts an optional `api_base_url` so tests (and regional or
//! sandbox endpoints) can point the adapter elsewhere.

use super::ProviderKind;
use serde::Deserialize;
use std::fmt;

/// A secret string whose `Debug`/`Display` never shows the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCredentials {
    pub api_key: Secret,
    /// HMAC-SHA256 key the sandbox signs callbacks with.
    pub webhook_secret: Secret,
    pub api_base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: Secret,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

/// How Vonage SMS callbacks are signed (dashboard setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VonageSignatureMethod {
    #[default]
    Md5hash,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl VonageSignatureMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "md5hash" => Some(Self::Md5hash),
            "md5" => Some(Self::Md5),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageSmsCredentials {
    pub api_key: String,
    pub api_secret: Secret,
    /// Signature secret for `sig` on callbacks. Without it callbacks are refused.
    pub signature_secret: Secret,
    #[serde(default)]
    pub signature_method: VonageSignatureMethod,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageMessagesCredentials {
    pub api_key: String,
    pub api_secret: Secret,
    /// HS256 key for signed webhooks (the account signature secret).
    pub signature_secret: Secret,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxCredentials {
    pub api_key: Secret,
    /// Base64 of the raw 32-byte Ed25519 public key from Mission Control.
    pub public_key: String,
    #[serde(default)]
    pub messaging_profile_id: Option<String>,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthCredentials {
    pub account_id: String,
    pub username: String,
    pub password: Secret,
    pub application_id: String,
    /// The HTTP Basic credentials configured on the Bandwidth application for callbacks.
    pub callback_username: String,
    pub callback_password: Secret,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoCredentials {
    pub auth_id: String,
    pub auth_token: Secret,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinchCredentials {
    pub service_plan_id: String,
    pub api_token: Secret,
    /// `us`, `eu`, `au`, `br` or `ca`; selects `https://{region}.sms.api.sinch.com`.
    #[serde(default)]
    pub region: Option<String>,
    /// HMAC-SHA256 secret for `x-sinch-webhook-signature`.
    pub webhook_secret: Secret,
    #[serde(default)]
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Sandbox(SandboxCredentials),
    Twilio(TwilioCredentials),
    VonageSms(VonageSmsCredentials),
    VonageMessages(VonageMessagesCredentials),
    Telnyx(TelnyxCredentials),
    Bandwidth(BandwidthCredentials),
    Plivo(PlivoCredentials),
    Sinch(SinchCredentials),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credentials for {provider} are unusable: {reason}")]
pub struct CredentialError {
    pub provider: ProviderKind,
    pub reason: String,
}

impl Credentials {
    /// Parses a secret's JSON for `kind`. The error names the problem (a missing or
    /// unknown field) but never echoes values.
    pub fn parse(kind: ProviderKind, json: &str) -> Result<Self, CredentialError> {
        fn p<T: serde::de::DeserializeOwned>(kind: ProviderKind, json: &str) -> Result<T, CredentialError> {
            serde_json::from_str(json).map_err(|e| CredentialError {
                provider: kind,
                // serde's messages name fields and positions, not values.
                reason: redact_serde_error(&e),
            })
        }
        Ok(match kind {
            ProviderKind::Sandbox => Self::Sandbox(p(kind, json)?),
            ProviderKind::Twilio => Self::Twilio(p(kind, json)?),
            ProviderKind::VonageSms => Self::VonageSms(p(kind, json)?),
            ProviderKind::VonageMessages => Self::VonageMessages(p(kind, json)?),
            ProviderKind::Telnyx => Self::Telnyx(p(kind, json)?),
            ProviderKind::Bandwidth => Self::Bandwidth(p(kind, json)?),
            ProviderKind::Plivo => Self::Plivo(p(kind, json)?),
            ProviderKind::Sinch => Self::Sinch(p(kind, json)?),
        })
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Sandbox(_) => ProviderKind::Sandbox,
            Self::Twilio(_) => ProviderKind::Twilio,
            Self::VonageSms(_) => ProviderKind::VonageSms,
            Self::VonageMessages(_) => ProviderKind::VonageMessages,
            Self::Telnyx(_) => ProviderKind::Telnyx,
            Self::Bandwidth(_) => ProviderKind::Bandwidth,
            Self::Plivo(_) => ProviderKind::Plivo,
            Self::Sinch(_) => ProviderKind::Sinch,
        }
    }
}

fn redact_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // "invalid type: string \"abc\", expected ..." would echo a value: keep only the category.
    if msg.contains("invalid type") || msg.contains("invalid value") {
        format!("a field has the wrong type (line {}, column {})", e.line(), e.column())
    } else {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_twilio_and_hides_token_in_debug() {
        let c = Credentials::parse(
            ProviderKind::Twilio,
            r#"{"account_sid":"AC123","auth_token":"supersecret"}"#,
        )
        .unwrap();
        assert_eq!(c.kind(), ProviderKind::Twilio);
        assert!(!format!("{c:?}").contains("supersecret"));
    }

    #[test]
    fn missing_and_unknown_fields_fail_closed() {
        let e = Credentials::parse(ProviderKind::Twilio, r#"{"account_sid":"AC123"}"#).unwrap_err();
        assert!(e.reason.contains("auth_token"), "{e}");
        let e = Credentials::parse(ProviderKind::Plivo, r#"{"auth_id":"x","auth_token":"y","extra":1}"#).unwrap_err();
        assert!(e.reason.contains("extra"), "{e}");
        assert!(Credentials::parse(ProviderKind::Sinch, "not json").is_err());
    }

    #[test]
    fn type_errors_do_not_echo_values() {
        let e = Credentials::parse(ProviderKind::Plivo, r#"{"auth_id":"x","auth_token":12345678}"#).unwrap_err();
        assert!(!e.reason.contains("12345678"), "{e}");
    }
}
