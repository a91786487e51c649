//! Provider credentials and tenant callback secrets from Secrets Manager, cached in
//! memory with a TTL: not one fetch per message, and a rotation is picked up within
//! the TTL. Values are never logged.

use crate::domain::TenantId;
use crate::providers::{credentials::CredentialError, Credentials, ProviderKind};
use aws_sdk_secretsmanager::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whose secret a tenant configuration may name: provider credentials live under
/// `dispatch/<tenant>/<provider kind>/…`, tenant callback keys under
/// `dispatch/<tenant>/callback/…`. One tenant can therefore never point its config at
/// another tenant's account (or at another provider's credentials), and IAM can scope
/// each function to the kinds it serves (`dispatch/*/<kind>/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretScope {
    Provider(ProviderKind),
    Callback,
}

impl SecretScope {
    fn segment(self) -> &'static str {
        match self {
            Self::Provider(k) => k.as_str(),
            Self::Callback => "callback",
        }
    }

    /// The prefix every secret of this scope must start with for `tenant`.
    pub fn prefix(self, tenant: &TenantId) -> String {
        format!("dispatch/{tenant}/{}/", self.segment())
    }

    /// Whether `secret_id` is a secret name inside this tenant's scope: the prefix,
    /// then one non-empty name segment of Secrets Manager's name characters. No
    /// further `/`: IAM's `*` matches across `/`, so `dispatch/a/callback/twilio/x`
    /// would otherwise also match the twilio send functions' `dispatch/*/twilio/*`.
    pub fn contains(self, tenant: &TenantId, secret_id: &str) -> bool {
        let Some(name) = secret_id.strip_prefix(self.prefix(tenant).as_str()) else { return false };
        !name.is_empty() && name.len() <= 256 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=.@-".contains(c))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Refused before any fetch: the id lies outside the tenant's own prefix.
    #[error("secret id is outside this tenant's {0}")]
    OutOfScope(String),
    #[error("secret {0} does not exist")]
    NotFound(String),
    #[error("secret {0} has no string value")]
    NotString(String),
    #[error("Secrets Manager unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unusable(#[from] CredentialError),
}

impl SecretError {
    /// Worth retrying later (as opposed to failing the message closed now).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[derive(Clone)]
pub struct SecretCache {
    client: Client,
    ttl: Duration,
    entries: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl SecretCache {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self { client, ttl, entries: Default::default(), fetches: Default::default() }
    }

    /// How many times Secrets Manager was actually called (for benchmarks and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A platform secret named by the deployment (not by a tenant), e.g. the audit key.
    pub async fn platform_string(&self, secret_id: &str) -> Result<String, SecretError> {
        self.get_string(secret_id).await
    }

    /// A tenant secret, fetched only when `secret_id` is inside `tenant`'s `scope`.
    /// Every tenant-named secret goes through here, so no code path can read outside
    /// the tenant's prefix even if a stored config predates validation.
    pub async fn tenant_string(&self, tenant: &TenantId, scope: SecretScope, secret_id: &str) -> Result<String, SecretError> {
        if !scope.contains(tenant, secret_id) {
            return Err(SecretError::OutOfScope(format!("{}* prefix", scope.prefix(tenant))));
        }
        self.get_string(secret_id).await
    }

    /// The raw secret string, from cache while fresh.
    async fn get_string(&self, secret_id: &str) -> Result<String, SecretError> {
        if let Some((at, v)) = self.entries.lock().expect("cache lock").get(secret_id)
            && at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            if crate::sdk_error::has_code(&e, "ResourceNotFoundException") {
                SecretError::NotFound(secret_id.to_string())
            } else {
                SecretError::Unavailable(crate::sdk_error::describe(&e))
            }
        })?;
        let value = out.secret_string.ok_or_else(|| SecretError::NotString(secret_id.to_string()))?;
        self.entries.lock().expect("cache lock").insert(secret_id.to_string(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// `tenant`'s credentials for `kind` from `secret_id`, parsed (fail closed on any
    /// problem, an id outside `dispatch/<tenant>/<kind>/` included).
    pub async fn credentials(&self, tenant: &TenantId, kind: ProviderKind, secret_id: &str) -> Result<Credentials, SecretError> {
        let raw = self.tenant_string(tenant, SecretScope::Provider(kind), secret_id).await?;
        Ok(Credentials::parse(kind, &raw)?)
    }

    /// Drops a cached value (after a provider says the credentials are wrong).
    pub fn invalidate(&self, secret_id: &str) {
        self.entries.lock().expect("cache lock").remove(secret_id);
    }
}

#[cfg(test)]
mod tests {
    use super::SecretScope;
    use crate::domain::TenantId;
    use crate::providers::ProviderKind;

    #[test]
    fn only_the_tenants_own_prefix_for_the_kind_is_in_scope() {
        let a = TenantId::parse("psap-north").unwrap();
        let twilio = SecretScope::Provider(ProviderKind::Twilio);
        assert!(twilio.contains(&a, "dispatch/psap-north/twilio/main"));
        assert!(twilio.contains(&a, "dispatch/psap-north/twilio/backup-2026"));
        for other in [
            "dispatch/psap-south/twilio/main",     // another tenant
            "dispatch/psap-north/telnyx/main",     // another provider's credentials
            "dispatch/psap-north/callback/main",   // the callback key
            "dispatch/psap-north/twilio/",         // no name
            "dispatch/psap-north/twilio//x",       // empty segment
            "dispatch/psap-north/twilio/a/b",      // a second segment (IAM's * spans '/')
            "dispatch/psap-north/callback/twilio/x",
            "dispatch/psap-north-x/twilio/main",   // a tenant whose id extends ours
            "dispatch/psap-north/twilio/a b",      // not a secret name character
            "arn:aws:secretsmanager:eu-west-2:1:secret:dispatch/psap-south/twilio/main",
            "dispatch/psap-north/main",
        ] {
            assert!(!twilio.contains(&a, other), "{other}");
        }
        assert!(SecretScope::Callback.contains(&a, "dispatch/psap-north/callback/cad"));
        assert!(!SecretScope::Callback.contains(&a, "dispatch/psap-south/callback/cad"));
        assert!(!SecretScope::Callback.contains(&a, "dispatch/psap-north/callback/twilio/x"), "would match dispatch/*/twilio/* in IAM");
    }
}
