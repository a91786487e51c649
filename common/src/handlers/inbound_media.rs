//! Inbound MMS media, fetched by a queued job instead of inside the webhook call.
//!
//! The webhook stores the inbound record with its media marked pending and answers the
//! provider at once (providers give a webhook 10–15 s; ten downloads of up to 10 s
//! each would not fit, and a timed-out webhook whose replay key was claimed would
//! refuse the provider's retry, losing the MMS). This job — the `inbound-media`
//! function, one record per invocation — downloads each pending item (size cap,
//! timeout, at most 3 redirects, public https only except for the sandbox), sniffs,
//! hashes and stores it in S3 with SSE, and records progress on the inbound record
//! after every run, so a redelivery resumes where the last one stopped. When nothing is
//! pending any more the tenant's inbound callback is queued, once.
//!
//! Nothing waits forever: a transient download failure leaves the item pending for
//! the next delivery of the job (seconds to a minute later, see
//! [`super::BatchFailures::fail_and_retry_soon`]); on the job's last delivery before the dead-letter
//! queue it is recorded with its error; and a job that still reaches the DLQ (its
//! function was killed) is settled by the sweep with [`give_up`], which records every
//! item still pending as `download_not_completed` and sends the callback.

use super::{BatchFailures, Deps};
use crate::error::StoreError;
use crate::inbound::{self, InboundRecord};
use crate::media::{self, MediaStore};
use crate::queue::InboundMediaJob;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// The queue's `maxReceiveCount` (infra/template.yaml): on this delivery a transient
/// failure is final, since the next stop is the dead-letter queue.
pub const LAST_DELIVERY: u32 = 5;
/// Time one item may take: the download's own limits (connect + read) plus the S3
/// put. An item is not started with less than this left before the deadline.
const ITEM_BUDGET: Duration = Duration::from_secs(15);
/// Left for recording progress after the last item.
const SAVE_BUDGET: Duration = Duration::from_secs(3);

/// How a job's delivery treats transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Leave transiently failed items pending for the next delivery.
    Retryable,
    /// The job's last delivery: record every failure as final.
    Last,
}

/// What one delivery of a job achieved.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// Every item is stored or recorded as failed; the tenant callback is queued.
    Done(Box<InboundRecord>),
    /// Items are still pending (deadline or transient failures): deliver the job again.
    Partial(Box<InboundRecord>),
    /// Nothing to do: another delivery finished it, or the record is gone.
    Nothing,
}

/// SQS consumer (the `inbound-media` function). Records the function cannot finish
/// before `deadline` are reported as batch failures and delivered again.
pub async fn handle_batch_until(deps: &Deps, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let mut failures = BatchFailures::default();
    for record in event.records {
        let Some(job) = record.body.as_deref().and_then(|b| serde_json::from_str::<InboundMediaJob>(b).ok()) else {
            tracing::error!(sqs_message_id = ?record.message_id, "malformed inbound-media job; dropped");
            continue;
        };
        let attempt = if super::receive_count(&record) >= LAST_DELIVERY { Attempt::Last } else { Attempt::Retryable };
        match fetch(deps, &deps.media, &job, attempt, deadline).await {
            Ok(Fetched::Done(_) | Fetched::Nothing) => {}
            Ok(Fetched::Partial(_)) => failures.fail_and_retry_soon(deps, &record),
            Err(e) => {
                tracing::warn!(inbound_id = %job.inbound_id, error = %e, "inbound media job failed; it will be delivered again");
                failures.fail_and_retry_soon(deps, &record);
            }
        }
    }
    failures.finish(deps, deadline).await
}

/// Fetches the pending media of one inbound record, records the progress, and queues
/// the tenant callback when the last item is settled.
pub async fn fetch(deps: &Deps, ms: &MediaStore, job: &InboundMediaJob, attempt: Attempt, deadline: Instant) -> Result<Fetched, StoreError> {
    let Some(mut record) = inbound::get_inbound(ms, &job.tenant, &job.inbound_id).await? else {
        tracing::warn!(inbound_id = %job.inbound_id, tenant = %job.tenant, "inbound media job for a record that is gone (retention or another tenant's id); dropped");
        return Ok(Fetched::Nothing);
    };
    if !record.media_pending {
        return Ok(Fetched::Nothing);
    }
    let allow_local = record.provider == crate::providers::ProviderKind::Sandbox;
    let mut written = false;
    for i in 0..record.media.len() {
        if !record.media[i].is_pending() {
            continue;
        }
        if deadline.saturating_duration_since(Instant::now()) < ITEM_BUDGET + SAVE_BUDGET {
            break; // resumed by the next delivery
        }
        let url = record.media[i].source_url.clone();
        let mut got = ms.fetcher().download(&url, allow_local, inbound::MAX_INBOUND_MEDIA_BYTES).await;
        if matches!(&got, Err(e) if e.is_transient()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            got = ms.fetcher().download(&url, allow_local, inbound::MAX_INBOUND_MEDIA_BYTES).await;
        }
        match got {
            Ok(d) => {
                let sha = hex::encode(Sha256::digest(&d.bytes));
                let sniffed = media::sniff(&d.bytes);
                let key = inbound::inbound_media_key(&record.tenant, &record.id, i);
                // Stored as what the bytes are (the declarations stay in the metadata),
                // so nothing a sender declares decides how a browser treats our link.
                let stored_type = media::safe_serving_type(sniffed).to_string();
                let size = d.bytes.len() as u64;
                let item = &record.media[i];
                let meta = [
                    ("sha256", sha.clone()),
                    ("sniffed-type", sniffed.unwrap_or_default().to_string()),
                    ("declared-type", item.declared_type.clone().unwrap_or_default()),
                    ("served-type", d.served_type.clone().unwrap_or_default()),
                    ("tenant", record.tenant.to_string()),
                    ("inbound-id", record.id.clone()),
                    ("provider", record.provider.to_string()),
                    ("provider-account", record.provider_account.clone()),
                    ("provider-message-id", record.provider_message_id.clone()),
                    ("source-url", item.source_url.clone()),
                    ("received-at", record.received_at.clone()),
                ];
                if let Err(e) = ms.put_object(&key, d.bytes, &stored_type, &meta, &sha).await {
                    // Keep what is stored so far; the redelivery fetches the rest.
                    if written {
                        save(ms, &record).await?;
                    }
                    return Err(e);
                }
                let item = &mut record.media[i];
                item.s3_key = Some(key);
                item.sha256 = Some(sha);
                item.size = Some(size);
                item.sniffed_type = sniffed.map(str::to_string);
                item.served_type = d.served_type;
                written = true;
            }
            Err(e) if e.is_transient() && attempt == Attempt::Retryable => {
                tracing::info!(inbound_id = %record.id, item = i, error = %e.code(), "inbound media not reachable yet; retried with the next delivery");
            }
            Err(e) => {
                tracing::warn!(provider = %record.provider, tenant = %record.tenant, item = i, error = %e.code(), "inbound media not stored");
                record.media[i].error = Some(e.code());
                written = true;
            }
        }
    }
    record.media_pending = record.media.iter().any(|m| m.is_pending());
    if record.media_pending {
        if written {
            save(ms, &record).await?;
        }
        return Ok(Fetched::Partial(Box::new(record)));
    }
    finish(deps, ms, record).await
}

/// Settles a dead-lettered job: items still pending are recorded as not downloaded,
/// and the tenant hears about the message (what was stored is kept).
pub async fn give_up(deps: &Deps, ms: &MediaStore, job: &InboundMediaJob) -> Result<Fetched, StoreError> {
    let Some(mut record) = inbound::get_inbound(ms, &job.tenant, &job.inbound_id).await? else { return Ok(Fetched::Nothing) };
    if !record.media_pending {
        return Ok(Fetched::Nothing);
    }
    for item in record.media.iter_mut().filter(|m| m.is_pending()) {
        item.error = Some("download_not_completed".into());
    }
    record.media_pending = false;
    tracing::warn!(inbound_id = %record.id, tenant = %record.tenant, "inbound media job dead-lettered; pending items recorded as not downloaded");
    finish(deps, ms, record).await
}

async fn save(ms: &MediaStore, record: &InboundRecord) -> Result<(), StoreError> {
    match inbound::update_inbound_media(ms, record).await {
        // Another delivery finished the record meanwhile; its write stands.
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The last write: clears `media_pending` (only one delivery can) and queues the
/// tenant callback from the delivery that did.
async fn finish(deps: &Deps, ms: &MediaStore, record: InboundRecord) -> Result<Fetched, StoreError> {
    // Read before the write that settles the record: once `media_pending` is cleared
    // no later delivery would send the callback.
    let cfg = deps.tenant(&record.tenant).await?;
    match inbound::update_inbound_media(ms, &record).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(Fetched::Nothing),
        Err(e) => return Err(e),
    }
    tracing::info!(
        inbound_id = %record.id,
        tenant = %record.tenant,
        media = record.media.len(),
        media_stored = record.media.iter().filter(|m| m.s3_key.is_some()).count(),
        "inbound media settled"
    );
    if let Some(cfg) = cfg {
        super::inbound_webhook::enqueue_callback(deps, &cfg, &record).await;
    }
    Ok(Fetched::Done(Box::new(record)))
}

#[cfg(test)]
mod tests {
    use crate::inbound::InboundMediaRecord;

    #[test]
    fn an_item_is_pending_until_stored_or_given_up() {
        let mut m = InboundMediaRecord::pending(0, "https://media.example/1".into(), Some("image/png".into()));
        assert!(m.is_pending());
        m.error = Some("http_404".into());
        assert!(!m.is_pending());
        m.error = None;
        m.s3_key = Some("inbound/t/inb_x/0".into());
        assert!(!m.is_pending());
    }
}
