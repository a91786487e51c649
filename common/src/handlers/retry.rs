//! The `retry` function. Fired every minute by an EventBridge schedule, it sweeps
//! messages whose due time passed and moves each one on, so nothing is left behind by
//! a crash, a lost queue message or a receipt that never came; it also surfaces
//! dead-lettered jobs. As an SQS consumer it delivers tenant status callbacks
//! ([`super::callbacks`]).
//!
//! | status past due | action |
//! |---|---|
//! | `accepted`, `queued` | re-queue a route job (route and send are idempotent) |
//! | `sending` | the attempt was interrupted (crash after claim): `retrying`, re-route |
//! | `retrying` | a backoff longer than SQS's 15-minute delay ended: re-route |
//! | `sent`, category has a delivery deadline, not yet escalated | raise an escalation (stored, and sent to the tenant's callback URL) so an operator phones instead; wait for the receipt window |
//! | `sent`, otherwise | no receipt within the receipt window: `expired` ("delivery unknown") |
//! | any, past `expires_at` | `expired` |

use super::Deps;
use crate::domain::message::{EventSource, Message};
use crate::domain::{DeliveryStatus, MessageId};
use crate::error::ProcessingError;
use crate::queue::RouteJob;
use crate::store::{Change, Escalation, TransitionOutcome};
use crate::time::{iso8601, parse_iso8601};
use serde::Serialize;

/// How far the sweep pushes a message's due time after re-queueing it.
const REQUEUE_GRACE_SECS: i64 = 300;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: usize,
    pub requeued: usize,
    pub escalated: usize,
    pub expired: usize,
    pub dead_lettered: usize,
    pub redacted: usize,
    pub errors: usize,
}

pub async fn sweep(deps: &Deps) -> Result<SweepReport, ProcessingError> {
    let now = deps.clock.now();
    let due = deps.store.due(now, 100).await?;
    let mut report = SweepReport { examined: due.len(), ..Default::default() };
    for m in due {
        match sweep_one(deps, &m).await {
            Ok(Action::Requeued) => report.requeued += 1,
            Ok(Action::Escalated) => report.escalated += 1,
            Ok(Action::Expired) => report.expired += 1,
            Ok(Action::None) => {}
            Err(e) => {
                report.errors += 1;
                tracing::warn!(message_id = %m.id, error = %e, "sweep step failed; next sweep retries");
            }
        }
    }
    // Tenant-wide legal hold jobs continue here, a slice per sweep, before any
    // redaction could touch a record they have not reached yet.
    if let Err(e) = super::retention::advance_hold_jobs(deps, std::time::Duration::from_secs(10)).await {
        report.errors += 1;
        tracing::warn!(error = %e, "legal hold job step failed; next sweep retries");
    }
    match super::retention::redact_due(deps).await {
        Ok(n) => report.redacted = n,
        Err(e) => {
            report.errors += 1;
            tracing::warn!(error = %e, "retention step failed; next sweep retries");
        }
    }
    if std::env::var("DLQ_POLICY").map(|p| p != "hold").unwrap_or(true) {
        report.dead_lettered = surface_dead_letters(deps).await;
    }
    if report != SweepReport::default() {
        tracing::info!(?report, "sweep");
    }
    Ok(report)
}

enum Action {
    Requeued,
    Escalated,
    Expired,
    None,
}

async fn sweep_one(deps: &Deps, m: &Message) -> Result<Action, ProcessingError> {
    let now = deps.clock.now();
    if parse_iso8601(&m.expires_at).is_some_and(|t| t <= now) {
        let reason = if m.status == DeliveryStatus::Sent {
            "validity period passed with no delivery receipt (delivery unknown)"
        } else {
            "validity period passed before the message could be sent"
        };
        deps.apply(m.id, Change::to(DeliveryStatus::Expired, EventSource::Retry).reason(reason)).await?;
        return Ok(Action::Expired);
    }
    // A deadline category stuck before `sent` (retrying, queued, waiting on open
    // circuits): the deadline passes all the same, so the tenant is told now.
    let mut m = m.clone();
    if m.escalated_at.is_none()
        && m.status != DeliveryStatus::Sent
        && let Some(at) = m.escalate_at.as_deref().and_then(parse_iso8601)
        && at <= now
    {
        let deadline = parse_iso8601(&m.created_at).map(|c| (at - c).num_seconds().max(0) as u32).unwrap_or(0);
        escalate_before_sent(deps, &m, deadline).await?;
        let Some(fresh) = deps.store.get_message(m.id).await? else { return Ok(Action::Escalated) };
        if fresh.next_attempt_at.as_deref().and_then(parse_iso8601).is_none_or(|t| t > now) {
            return Ok(Action::Escalated);
        }
        m = fresh;
    }
    let m = &m;
    let next_due = iso8601(now + chrono::Duration::seconds(REQUEUE_GRACE_SECS));
    match m.status {
        DeliveryStatus::Sent => {
            let cfg = deps.tenant(&m.tenant).await?;
            let deadline = cfg.as_ref().and_then(|c| c.delivery.delivery_deadline_secs.get(m.category.as_str()).copied());
            if let (Some(deadline), None) = (deadline, &m.escalated_at) {
                let window = cfg.as_ref().map(|c| c.delivery.receipt_window_secs).unwrap_or(6 * 3600);
                escalate(deps, m, deadline, window).await?;
                return Ok(Action::Escalated);
            }
            deps.apply(
                m.id,
                Change::to(DeliveryStatus::Expired, EventSource::Retry)
                    .reason("no delivery receipt within the receipt window (delivery unknown)"),
            )
            .await?;
            Ok(Action::Expired)
        }
        DeliveryStatus::Sending => {
            let change = Change::to(DeliveryStatus::Retrying, EventSource::Retry)
                .reason("send attempt was interrupted (no outcome recorded); retrying")
                .edit(move |n: &mut Message| n.next_attempt_at = Some(next_due.clone()));
            if let TransitionOutcome::Applied(m) = deps.apply(m.id, change).await? {
                requeue(deps, &m).await?;
            }
            Ok(Action::Requeued)
        }
        DeliveryStatus::Accepted | DeliveryStatus::Queued | DeliveryStatus::Retrying => {
            // Push the due time first (version-conditional) so concurrent sweeps do not
            // both re-queue; the loser sees a conflict and leaves it.
            let reason = format!("{} past its due time; re-queued by the sweep", m.status);
            deps.store.reschedule(m, &next_due, reason, now).await?;
            requeue(deps, m).await?;
            Ok(Action::Requeued)
        }
        _ => Ok(Action::None),
    }
}

/// A life-safety message was not confirmed delivered in time: record the escalation,
/// tell the tenant (signed callback), and keep waiting for the receipt until the
/// receipt window ends.
async fn escalate(deps: &Deps, m: &Message, deadline: u32, receipt_window_secs: u32) -> Result<(), ProcessingError> {
    let now = deps.clock.now();
    let window = m
        .sent_at
        .as_deref()
        .and_then(parse_iso8601)
        .map(|t| t + chrono::Duration::seconds(i64::from(receipt_window_secs)))
        .filter(|t| *t > now)
        .unwrap_or(now + chrono::Duration::seconds(REQUEUE_GRACE_SECS));
    let note = format!("no delivery receipt within the {deadline}s deadline: escalated to the tenant (phone the recipient)");
    raise_escalation(deps, m, deadline, Some(iso8601(window)), note).await
}

/// The delivery deadline passed before the message was even sent: record the
/// escalation and tell the tenant, leaving the message's own retry schedule alone.
async fn escalate_before_sent(deps: &Deps, m: &Message, deadline: u32) -> Result<(), ProcessingError> {
    let note = format!("not delivered within the {deadline}s deadline and still {} (not yet sent): escalated to the tenant (phone the recipient)", m.status);
    raise_escalation(deps, m, deadline, None, note).await
}

/// Records the escalation (once), marks the message escalated (moving its due time to
/// `next_due` when given) and, the first time, counts it and tells the tenant.
async fn raise_escalation(deps: &Deps, m: &Message, deadline: u32, next_due: Option<String>, note: String) -> Result<(), ProcessingError> {
    let now = deps.clock.now();
    let e = Escalation {
        tenant: m.tenant.clone(),
        message_id: m.id,
        category: m.category.to_string(),
        to: m.to.masked(),
        raised_at: iso8601(now),
        deadline_secs: deadline,
        status_at_escalation: m.status,
        acknowledged_at: None,
        acknowledged_by: None,
    };
    let created = deps.store.put_escalation(&e).await?;
    let at = iso8601(now);
    let edit = move |n: &mut Message| {
        n.escalated_at = Some(at);
        if let Some(d) = next_due {
            n.next_attempt_at = Some(d);
        }
    };
    deps.store.update_fields(m, edit, note, now).await?;
    if created {
        crate::metrics::count(
            crate::metrics::Metric::EscalationsRaised,
            &[(crate::metrics::Dim::Category, crate::metrics::category(&m.category)), (crate::metrics::Dim::Lane, crate::metrics::lane(m.priority))],
        );
        tracing::warn!(message_id = %m.id, tenant = %m.tenant, category = %m.category, status = %m.status, "delivery deadline missed; escalated");
        super::callbacks::enqueue(deps, m, super::callbacks::escalation_body(m, deadline, now)).await;
    }
    Ok(())
}

async fn requeue(deps: &Deps, m: &Message) -> Result<(), ProcessingError> {
    let job = RouteJob { message_id: m.id, tenant: m.tenant.clone(), exclude: m.failed_providers.clone() };
    deps.queues
        .send(&deps.cfg.route_queue_url, &job, 0)
        .await
        .map_err(|e| ProcessingError::Transient(e.to_string()))
}

/// A record in a dead-letter queue.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub queue: String,
    pub queue_url: String,
    pub receipt_handle: String,
    pub body: String,
    pub message_id: Option<MessageId>,
}

/// Reads up to `max` records from every dead-letter queue (they stay there: the
/// visibility timeout hides them briefly from other readers).
pub async fn read_dead_letters(deps: &Deps, max: i32, visibility_secs: i32) -> Vec<DeadLetter> {
    let mut out = Vec::new();
    for (name, url) in &deps.cfg.dead_letter_queues {
        let Ok(resp) = deps
            .queues
            .client()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(visibility_secs)
            .send()
            .await
        else {
            continue;
        };
        for msg in resp.messages.unwrap_or_default() {
            let body = msg.body.unwrap_or_default();
            let message_id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message_id").and_then(|i| i.as_str()).and_then(|s| s.parse().ok()));
            out.push(DeadLetter {
                queue: name.clone(),
                queue_url: url.clone(),
                receipt_handle: msg.receipt_handle.unwrap_or_default(),
                body,
                message_id,
            });
        }
    }
    out
}

/// Default DLQ policy (`DLQ_POLICY=fail`): a dead-lettered job whose message still
/// waits on it marks the message `failed` with a reason naming the queue; any other
/// record is noted in the message's history ([`settle_dead_letter`]). Either way the
/// record is removed — never silently dropped. With `DLQ_POLICY=hold` records stay
/// for `dispatchctl dlq`.
async fn surface_dead_letters(deps: &Deps) -> usize {
    let mut n = 0;
    for dl in read_dead_letters(deps, 10, 30).await {
        if settle_dead_letter(deps, &dl).await.is_err() {
            continue; // left in the DLQ; the next sweep tries again
        }
        let _ = deps.queues.client().delete_message().queue_url(&dl.queue_url).receipt_handle(&dl.receipt_handle).send().await;
        crate::metrics::count(crate::metrics::Metric::DeadLettersSurfaced, &[(crate::metrics::Dim::Queue, dead_letter_queue_kind(&dl.queue))]);
        n += 1;
    }
    n
}

/// What a dead-lettered job means for its message. A job fails a message only when
/// the message is still waiting on exactly that job: a route job while it awaits
/// routing, a send job while it is queued for that very provider account. Anything
/// else (a stale job whose message moved on, a tenant-callback job, whose message's
/// state is not the callback's business) becomes a note in the history.
async fn settle_dead_letter(deps: &Deps, dl: &DeadLetter) -> Result<(), ()> {
    let now = deps.clock.now();
    if dl.queue == "INBOUND_MEDIA_DLQ" {
        // Names an inbound record, not a message: record its pending media as not
        // downloaded and let the tenant hear about the message.
        let Ok(job) = serde_json::from_str::<crate::queue::InboundMediaJob>(&dl.body) else {
            tracing::error!(queue = %dl.queue, "malformed dead-lettered inbound media job; removed after logging");
            return Ok(());
        };
        return super::inbound_media::give_up(deps, &deps.media, &job).await.map(|_| ()).map_err(|_| ());
    }
    let Some(id) = dl.message_id else {
        tracing::error!(queue = %dl.queue, "dead-lettered record names no message; removed after logging");
        return Ok(());
    };
    let Some(m) = deps.store.get_message(id).await.map_err(|_| ())? else { return Ok(()) };
    let waiting_on_this_job = match dl.queue.as_str() {
        "ROUTE_DLQ" => matches!(m.status, DeliveryStatus::Accepted | DeliveryStatus::Retrying),
        q if q.starts_with("SEND_DLQ") => {
            let job = serde_json::from_str::<crate::queue::SendJob>(&dl.body).ok();
            m.status == DeliveryStatus::Queued && job.is_some_and(|j| m.provider.as_deref() == Some(j.provider_id.as_str()))
        }
        _ => false,
    };
    if waiting_on_this_job {
        let reason = format!("processing failed repeatedly; the job was dead-lettered in {}", dl.queue);
        deps.apply(id, Change::to(DeliveryStatus::Failed, EventSource::Retry).reason(reason)).await.map_err(|_| ())?;
        return Ok(());
    }
    let note = if dl.queue == "TENANT_CALLBACK_DLQ" {
        crate::metrics::count(crate::metrics::Metric::TenantCallbackFailures, &[(crate::metrics::Dim::Reason, "dead_lettered")]);
        "a tenant status callback could not be delivered and was dead-lettered; the message's own state is unchanged".to_string()
    } else {
        format!("a stale job for this message was dead-lettered in {} (the message had moved on to {}); state unchanged", dl.queue, m.status)
    };
    deps.store.note(&m, EventSource::Retry, note, now).await.map_err(|_| ())
}

/// A DLQ's name as a bounded dimension value: `SEND_DLQ_<P>` names are per provider
/// kind (bounded); anything unexpected folds into `other`.
fn dead_letter_queue_kind(name: &str) -> &str {
    match name {
        "ROUTE_DLQ" | "TENANT_CALLBACK_DLQ" | "INBOUND_MEDIA_DLQ" => name,
        n if n.starts_with("SEND_DLQ_") && n.len() <= 40 => n,
        _ => "other",
    }
}

/// Moves dead-lettered records back to their source queue (`dispatchctl dlq redrive`).
/// The source is the queue the DLQ serves: `ROUTE_DLQ` → route queue,
/// `SEND_DLQ_<P>` → that provider's standard send queue, `TENANT_CALLBACK_DLQ` →
/// the tenant callback queue, `INBOUND_MEDIA_DLQ` → the inbound media queue.
pub async fn redrive(deps: &Deps) -> Result<usize, ProcessingError> {
    let mut n = 0;
    loop {
        let batch = read_dead_letters(deps, 10, 30).await;
        if batch.is_empty() {
            break;
        }
        for dl in batch {
            let target = source_queue(deps, &dl.queue).ok_or_else(|| ProcessingError::Permanent(format!("no source queue for {}", dl.queue)))?;
            deps.queues
                .client()
                .send_message()
                .queue_url(target)
                .message_body(&dl.body)
                .send()
                .await
                .map_err(|e| ProcessingError::Transient(crate::sdk_error::describe(&e)))?;
            let _ = deps.queues.client().delete_message().queue_url(&dl.queue_url).receipt_handle(&dl.receipt_handle).send().await;
            n += 1;
        }
    }
    Ok(n)
}

fn source_queue<'a>(deps: &'a Deps, dlq: &str) -> Option<&'a str> {
    match dlq {
        "ROUTE_DLQ" => Some(deps.cfg.route_queue_url.as_str()),
        "TENANT_CALLBACK_DLQ" => Some(deps.cfg.tenant_callback_queue_url.as_str()),
        "INBOUND_MEDIA_DLQ" => Some(deps.cfg.inbound_media_queue_url.as_str()).filter(|u| !u.is_empty()),
        other => {
            let suffix = other.strip_prefix("SEND_DLQ_")?;
            let kind = crate::providers::ProviderKind::ALL.into_iter().find(|k| crate::config::env_suffix(*k) == suffix)?;
            deps.cfg.send_queue(kind, false)
        }
    }
}
