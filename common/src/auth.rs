//! API keys: random, shown once, stored only as a SHA-256 hash with a short visible
//! prefix. Keys carry 160 bits of entropy, so a fast hash is enough (no password
//! stretching needed), and lookups are one GetItem by hash.

use crate::domain::TenantId;
use crate::error::{ApiError, StoreError};
use crate::store::{ApiKeyRecord, DynamoStore};
use crate::time::{iso8601, parse_iso8601, Instant};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. Higher roles include the lower ones where noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submit messages; read its tenant's messages.
    Sender,
    /// Sender, plus retry/cancel and escalation acknowledgement.
    Operator,
    /// Read messages and the audit trail.
    Auditor,
    /// Tenant configuration, providers, keys.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sender" => Some(Self::Sender),
            "operator" => Some(Self::Operator),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
    pub fn can_submit(self) -> bool {
        matches!(self, Self::Sender | Self::Operator | Self::Admin)
    }
    pub fn can_read_messages(self) -> bool {
        true
    }
    pub fn can_operate(self) -> bool {
        matches!(self, Self::Operator | Self::Admin)
    }
    pub fn can_admin(self) -> bool {
        matches!(self, Self::Admin)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    pub key_id: String,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key: `dsk_` + 40 hex characters from the OS CSPRNG.
pub struct NewKey {
    pub plaintext: String,
    pub hash: String,
    pub record: ApiKeyRecord,
}

pub fn new_key(tenant: &TenantId, role: Role, expires_at: Option<Instant>, now: Instant) -> NewKey {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let plaintext = format!("dsk_{}", hex::encode(bytes));
    let record = ApiKeyRecord {
        key_id: format!("key_{}", &hash_key(&plaintext)[..16]),
        tenant: tenant.clone(),
        role: role.as_str().to_string(),
        prefix: plaintext[..12].to_string(),
        created_at: iso8601(now),
        expires_at: expires_at.map(iso8601),
        revoked: false,
    };
    NewKey { hash: hash_key(&plaintext), plaintext, record }
}

/// Resolves `Authorization: Bearer <key>` to a caller. Unknown, revoked and expired
/// keys all answer the same 401, so a caller learns nothing about which it was.
pub async fn authenticate(store: &DynamoStore, authorization: Option<&str>, now: Instant) -> Result<Caller, ApiError> {
    let key = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let rec = match store.get_api_key(&hash_key(key)).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(ApiError::unauthorized()),
        Err(StoreError::Unavailable(_)) => return Err(ApiError::unavailable()),
        Err(_) => return Err(ApiError::internal()),
    };
    let expired = rec.expires_at.as_deref().and_then(parse_iso8601).is_some_and(|t| t <= now);
    let role = Role::parse(&rec.role);
    match (rec.revoked, expired, role) {
        (false, false, Some(role)) => Ok(Caller { tenant: rec.tenant, role, key_id: rec.key_id }),
        _ => Err(ApiError::unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
    use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
    use std::sync::{Arc, Mutex};

    /// Captures each request body and stops it before it leaves (no network needed).
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }
        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _components: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            let body = context.request().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            self.0.lock().unwrap().push(body);
            Err("captured; not sent".into())
        }
    }

    /// A revoked key must stop working at once: the key lookup is a strongly
    /// consistent read, never one that may return the record from before revocation.
    #[tokio::test]
    async fn api_key_lookups_are_strongly_consistent() {
        let capture = Capture::default();
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url("http://127.0.0.1:9")
            .interceptor(capture.clone())
            .build();
        let store = crate::store::DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "t");
        let refused = super::authenticate(&store, Some("Bearer dsk_0000000000000000000000000000000000000000"), chrono::Utc::now()).await;
        assert!(refused.is_err());
        let bodies = capture.0.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        let v: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(v["ConsistentRead"], true, "{v}");
    }
}
