//! Provider credentials and tenant callback secrets from Secrets Manager, cached in
//! memory with a TTL: not one fetch per message, and a rotation is picked up within
//! the TTL. Values are never logged.

use crate::providers::{credentials::CredentialError, Credentials, ProviderKind};
use aws_sdk_secretsmanager::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
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

    /// The raw secret string, from cache while fresh.
    pub async fn get_string(&self, secret_id: &str) -> Result<String, SecretError> {
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

    /// Credentials for `kind` from `secret_id`, parsed (fail closed on any problem).
    pub async fn credentials(&self, kind: ProviderKind, secret_id: &str) -> Result<Credentials, SecretError> {
        let raw = self.get_string(secret_id).await?;
        Ok(Credentials::parse(kind, &raw)?)
    }

    /// Drops a cached value (after a provider says the credentials are wrong).
    pub fn invalidate(&self, secret_id: &str) {
        self.entries.lock().expect("cache lock").remove(secret_id);
    }
}
