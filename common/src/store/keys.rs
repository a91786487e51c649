//! Key layout of the single table. Documented in docs/data-model.md; change both together.

use crate::domain::message::Message;
use crate::domain::{IdempotencyKey, MessageId, ProviderMessageId, TenantId};

pub const MESSAGE_SK: &str = "MESSAGE";
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
pub const PROVIDER_LOOKUP_SK: &str = "PROVIDER_MESSAGE";
pub const REPLAY_SK: &str = "REPLAY";
pub const TENANT_CONFIG_SK: &str = "CONFIG";
pub const API_KEY_SK: &str = "API_KEY";

/// Idempotency keys are honoured for 24 hours.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// Message records (and their events) are kept this long after they expire unless a
/// tenant's retention policy says otherwise.
pub const DEFAULT_RECORD_RETENTION_SECS: i64 = 400 * 24 * 3600;

pub fn message_pk(id: MessageId) -> String {
    format!("MSG#{id}")
}
/// Events sort by time under their message; the random suffix keeps two events in
/// the same millisecond apart.
pub fn event_sk(at: &str) -> String {
    format!("EVT#{at}#{:08x}", fastrand::u32(..))
}
pub fn idempotency_pk(tenant: &TenantId, key: &IdempotencyKey) -> String {
    format!("IDEM#{tenant}#{key}")
}
pub fn provider_lookup_pk(provider_id: &str, pmid: &ProviderMessageId) -> String {
    format!("PMSG#{provider_id}#{pmid}")
}
pub fn replay_pk(key: &str) -> String {
    format!("REPLAY#{key}")
}
pub fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}
pub fn tenant_config_version_sk(v: u64) -> String {
    format!("CONFIG#v{v:010}")
}
pub fn api_key_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}
pub fn tenant_messages_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#MESSAGES")
}
pub fn tenant_messages_sk(id: MessageId) -> String {
    format!("MSG#{id}")
}
pub fn tenant_keys_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#KEYS")
}
/// The tenant-wide legal hold record (its own partition: IAM grants its writes
/// without granting writes to the tenant's configuration).
pub fn hold_pk(t: &TenantId) -> String {
    format!("HOLD#{t}")
}
pub fn due_pk(shard: u64) -> String {
    format!("DUE#{shard}")
}
pub fn due_sk(due_at: &str, id: MessageId) -> String {
    format!("{due_at}#{id}")
}

/// DynamoDB TTL (epoch seconds) for a message record and its history; none while a
/// legal hold is on.
pub fn record_ttl(m: &Message) -> Option<i64> {
    if m.legal_hold {
        return None;
    }
    match &m.retain_until {
        Some(t) => crate::time::parse_iso8601(t).map(|t| t.timestamp()),
        None => crate::time::parse_iso8601(&m.expires_at).map(|t| t.timestamp() + DEFAULT_RECORD_RETENTION_SECS),
    }
}

pub fn redact_pk(shard: u64) -> String {
    format!("REDACT#{shard}")
}
pub fn escalations_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#ESCALATIONS")
}
/// Circuit-breaker counters for one tenant provider account, one item per minute.
pub fn health_pk(t: &TenantId, provider_id: &str) -> String {
    format!("HEALTH#{t}#{provider_id}")
}
