//! The functions' logic. Each `functions/<name>/src/main.rs` builds [`Deps`]
//! once per instance and hands events to one of these modules.

pub mod api;
pub mod callbacks;
pub mod route;
pub mod send;
pub mod webhook;
pub mod retention;
pub mod retry;
pub mod media_api;
pub mod inbound_api;
pub mod inbound_webhook;
pub mod inbound_media;

use crate::aws::Clients;
use crate::config::PlatformConfig;
use crate::domain::TenantId;
use crate::error::StoreError;
use crate::queue::SqsQueues;
use crate::secrets::SecretCache;
use crate::store::DynamoStore;
use crate::tenant::TenantConfig;
use crate::time::{Clock, SystemClock};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
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
    /// The provider HTTPS client, built on first send: only send functions call
    /// providers, and building it (TLS roots, connection pool) costs every other
    /// function's init for nothing.
    http: Arc<std::sync::OnceLock<reqwest::Client>>,
    pub clock: Arc<dyn Clock>,
    tenants: Arc<Mutex<TenantCache>>,
    dynamodb: aws_sdk_dynamodb::Client,
    /// MMS media, inbound messages and opt-out lists (S3 + DynamoDB).
    pub media: crate::media::MediaStore,
    /// Built on first use: its key comes from Secrets Manager, and init must stay
    /// free of network calls.
    audit: Arc<tokio::sync::OnceCell<crate::audit::AuditLog>>,
}

/// Tenant id → (when loaded, config).
type TenantCache = HashMap<TenantId, (Instant, Arc<TenantConfig>)>;

/// Tenant configs are cached briefly: a change reaches every instance within this time.
const TENANT_CACHE_TTL: Duration = Duration::from_secs(15);

impl Deps {
    pub fn new(cfg: PlatformConfig, clients: &Clients) -> Self {
        Self {
            store: DynamoStore::new(clients.dynamodb.clone(), cfg.table_name.clone()),
            queues: SqsQueues::new(clients.sqs.clone()),
            secrets: SecretCache::new(clients.secrets.clone(), cfg.secrets_ttl),
            http: Default::default(),
            clock: Arc::new(SystemClock),
            media: crate::media::MediaStore::new(clients, &cfg),
            cfg: Arc::new(cfg),
            tenants: Default::default(),
            dynamodb: clients.dynamodb.clone(),
            audit: Default::default(),
        }
    }

    /// The provider HTTPS client (built on first use).
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| crate::providers::http::client(self.cfg.provider_timeout))
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
            self.count_status(m).await;
            callbacks::enqueue(self, m, callbacks::status_body(m, self.clock.now())).await;
            let mut ev = crate::audit::NewAuditEvent::new(crate::audit::AuditAction::StatusChanged)
                .message_id(m.id)
                .category(m.category.clone())
                .recipient(m.to.as_str())
                .status(m.status.as_str());
            if let Some(p) = &m.provider {
                ev = ev.provider(p.clone());
            }
            if let Some(f) = &m.from {
                ev = ev.sender(f.to_string());
            }
            if let Some(r) = &m.reason {
                ev = ev.detail(r.clone());
            }
            self.audit(&m.tenant, ev).await;
        }
        Ok(out)
    }

    /// The delivery funnel: one metric per state reached, by provider kind, category
    /// and lane (the tenant's account name would be unbounded; its kind is not).
    async fn count_status(&self, m: &crate::domain::message::Message) {
        use crate::domain::DeliveryStatus as S;
        use crate::metrics::{self, Dim, Metric};
        let metric = match m.status {
            S::Sent => Metric::MessagesSent,
            S::Delivered => Metric::MessagesDelivered,
            S::Undelivered => Metric::MessagesUndelivered,
            S::Failed => Metric::MessagesFailed,
            S::Expired => Metric::MessagesExpired,
            S::Canceled => Metric::MessagesCanceled,
            _ => return,
        };
        let kind = match &m.provider {
            // Cached for the invocation's tenant: no extra read on the hot path.
            Some(account) => match self.tenant(&m.tenant).await {
                Ok(Some(cfg)) => cfg.provider(account).map(|p| p.kind.as_str()).unwrap_or("unknown"),
                _ => "unknown",
            },
            None => "none",
        };
        metrics::count(
            metric,
            &[(Dim::Provider, kind), (Dim::Category, metrics::category(&m.category)), (Dim::Lane, metrics::lane(m.priority))],
        );
    }

    /// The audit log, built on first use with the platform's recipient-hash key.
    pub async fn audit_log(&self) -> Result<&crate::audit::AuditLog, String> {
        self.audit
            .get_or_try_init(|| async {
                if self.cfg.audit_key_secret_id.is_empty() {
                    return Err("AUDIT_HASH_KEY_SECRET_ID is not configured".to_string());
                }
                let key = self.secrets.platform_string(&self.cfg.audit_key_secret_id).await.map_err(|e| e.to_string())?;
                if key.is_empty() {
                    return Err("the audit key secret is empty".to_string());
                }
                Ok(crate::audit::AuditLog::new(self.dynamodb.clone(), self.cfg.table_name.clone(), key.into_bytes()))
            })
            .await
    }

    /// Appends an audit event. A failure is logged loudly but does not undo or block
    /// the action: the message's own history (written in the same transaction as the
    /// state) still holds the evidence, and a PSAP's send must not wait on the audit
    /// chain's per-tenant head.
    pub async fn audit(&self, tenant: &TenantId, event: crate::audit::NewAuditEvent) {
        let result = match self.audit_log().await {
            Ok(log) => log.append(tenant, event, self.clock.now()).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(tenant = %tenant, error = %e, "audit append failed");
        }
    }

    /// Forgets cached tenant configs (after an admin change in this instance).
    pub fn forget_tenant(&self, t: &TenantId) {
        self.tenants.lock().expect("tenant cache").remove(t);
    }
}

/// Collects per-record failures for `ReportBatchItemFailures`.
#[derive(Default)]
pub struct BatchFailures {
    failed: Vec<BatchItemFailure>,
    /// (queue URL, receipt handle, delay) of failed records to bring back early.
    soon: Vec<(String, String, Duration)>,
}

impl BatchFailures {
    pub fn fail(&mut self, message_id: Option<&str>) {
        let mut f = BatchItemFailure::default();
        f.item_identifier = message_id.unwrap_or_default().to_string();
        self.failed.push(f);
    }

    /// Reports `record` failed and asks for it to be delivered again after a short,
    /// growing backoff ([`retry_delay`]) instead of its queue's visibility timeout (see
    /// [`Self::finish`]).
    pub fn fail_and_retry_soon(&mut self, deps: &Deps, record: &SqsMessage) {
        self.fail(record.message_id.as_deref());
        let (Some(arn), Some(handle)) = (record.event_source_arn.as_deref(), record.receipt_handle.as_deref()) else { return };
        let Some(url) = deps.cfg.queue_url_for_arn(arn) else { return };
        self.soon.push((url.to_string(), handle.to_string(), retry_delay(receive_count(record))));
    }

    /// The batch response, after bringing the records failed with
    /// [`Self::fail_and_retry_soon`] back early. Queues feeding Lambda keep six function
    /// timeouts of visibility (180 s, as AWS advises, so throttled invocations do not
    /// burn receives); without this a record that met a few seconds of AWS errors
    /// would sit those three minutes out. The failures usually are AWS errors, so the
    /// visibility change is retried each second until shortly before `deadline`; if it
    /// never succeeds, the visibility timeout applies as before.
    pub async fn finish(mut self, deps: &Deps, deadline: Instant) -> SqsBatchResponse {
        let mut by_queue: HashMap<String, Vec<(String, Duration)>> = HashMap::new();
        for (url, handle, delay) in std::mem::take(&mut self.soon) {
            by_queue.entry(url).or_default().push((handle, delay));
        }
        for (url, records) in by_queue {
            for chunk in records.chunks(10) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (handle, delay))| {
                        aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(handle)
                            .visibility_timeout(delay.as_secs() as i32)
                            .build()
                            .ok()
                    })
                    .collect();
                loop {
                    let sent = deps.queues.client().change_message_visibility_batch().queue_url(&url).set_entries(Some(entries.clone())).send().await;
                    match sent {
                        Ok(_) => break,
                        Err(e) if deadline.saturating_duration_since(Instant::now()) > Duration::from_secs(3) => {
                            tracing::debug!(error = %crate::sdk_error::describe(&e), "could not shorten the retry delay yet; trying again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %crate::sdk_error::describe(&e), "could not shorten the retry delay; the queue's visibility timeout applies");
                            break;
                        }
                    }
                }
            }
        }
        self.into_response()
    }

    /// The batch response as it stands (nothing is brought back early).
    pub fn into_response(self) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        r.batch_item_failures = self.failed;
        r
    }
}

/// How many times SQS has delivered `record`, this delivery included
/// (`ApproximateReceiveCount`, which Lambda and the local runner pass; 1 if absent).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// Backoff before the next delivery of a record that failed on its `receives`-th:
/// 5 s, 30 s, 2 min, then 10 min. Quick at first, so a blip of AWS errors costs
/// seconds; long later, so the redrive policy's 5 receives span about 12.5 minutes
/// before the dead-letter queue (a little more than four 180 s visibility timeouts
/// did), and an outage of several minutes does not dead-letter, and so fail, the
/// messages caught in it.
pub fn retry_delay(receives: u32) -> Duration {
    Duration::from_secs(match receives {
        0 | 1 => 5,
        2 => 30,
        3 => 120,
        _ => 600,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_records_come_back_within_seconds_and_reach_the_dlq_no_sooner_than_before() {
        let secs: Vec<u64> = (0..7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 5, 30, 120, 600, 600, 600]);
        // maxReceiveCount is 5: four waits between the five receives.
        let before_dlq: u64 = (1..5).map(|n| retry_delay(n).as_secs()).sum();
        assert!(before_dlq >= 4 * 180, "{before_dlq} s");
    }
}
