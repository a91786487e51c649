//! The five functions' logic. Each `functions/<name>/src/main.rs` builds [`Deps`]
//! once per instance and hands events to one of these modules.

pub mod api;
pub mod callbacks;
pub mod route;
pub mod send;
pub mod webhook;
pub mod retention;
pub mod retry;
pub mod media_api;
pub mod inbound_webhook;

use crate::aws::Clients;
use crate::config::PlatformConfig;
use crate::domain::TenantId;
use crate::error::StoreError;
use crate::queue::SqsQueues;
use crate::secrets::SecretCache;
use crate::store::DynamoStore;
use crate::tenant::TenantConfig;
use crate::time::{Clock, SystemClock};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything a handler needs, built once per function instance. Building it makes
/// no network calls (SDK clients connect lazily), so init stays fast.
#[derive(Clone)]
pub struct Deps {
    pub cfg: Arc<PlatformConfig>,
    pub store: DynamoStore,
    pub queues: SqsQueues,
    pub secrets: SecretCache,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    tenants: Arc<Mutex<TenantCache>>,
}

/// Tenant id → (when loaded, config).
type TenantCache = HashMap<TenantId, (Instant, Arc<TenantConfig>)>;

/// Tenant configs are cached briefly: a change reaches every instance within this time.
const TENANT_CACHE_TTL: Duration = Duration::from_secs(15);

impl Deps {
    pub fn new(cfg: PlatformConfig, clients: &Clients) -> Self {
        let http = crate::providers::http::client(cfg.provider_timeout);
        Self {
            store: DynamoStore::new(clients.dynamodb.clone(), cfg.table_name.clone()),
            queues: SqsQueues::new(clients.sqs.clone()),
            secrets: SecretCache::new(clients.secrets.clone(), cfg.secrets_ttl),
            http,
            clock: Arc::new(SystemClock),
            cfg: Arc::new(cfg),
            tenants: Default::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The tenant's configuration (cached for [`TENANT_CACHE_TTL`]).
    pub async fn tenant(&self, t: &TenantId) -> Result<Option<Arc<TenantConfig>>, StoreError> {
        if let Some((at, cfg)) = self.tenants.lock().expect("tenant cache").get(t)
            && at.elapsed() < TENANT_CACHE_TTL {
                return Ok(Some(cfg.clone()));
            }
        let Some(cfg) = self.store.get_tenant_config(t).await? else { return Ok(None) };
        let cfg = Arc::new(cfg);
        self.tenants.lock().expect("tenant cache").insert(t.clone(), (Instant::now(), cfg.clone()));
        Ok(Some(cfg))
    }

    /// Proposes a state change (see [`DynamoStore::transition`]) and, when it is
    /// applied, queues the tenant's status callback.
    pub async fn apply(
        &self,
        id: crate::domain::MessageId,
        change: crate::store::Change<'_>,
    ) -> Result<crate::store::TransitionOutcome, StoreError> {
        let out = self.store.transition(id, change, self.clock.now()).await?;
        if let crate::store::TransitionOutcome::Applied(m) = &out {
            callbacks::enqueue(self, m, callbacks::status_body(m, self.clock.now())).await;
        }
        Ok(out)
    }

    /// Forgets cached tenant configs (after an admin change in this instance).
    pub fn forget_tenant(&self, t: &TenantId) {
        self.tenants.lock().expect("tenant cache").remove(t);
    }
}

/// Collects per-record failures for `ReportBatchItemFailures`.
#[derive(Default)]
pub struct BatchFailures(Vec<BatchItemFailure>);

impl BatchFailures {
    pub fn fail(&mut self, message_id: Option<&str>) {
        let mut f = BatchItemFailure::default();
        f.item_identifier = message_id.unwrap_or_default().to_string();
        self.0.push(f);
    }
    pub fn into_response(self) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        r.batch_item_failures = self.0;
        r
    }
}
