//! The `send` function (one deployment per provider type): claims an attempt with a
//! conditional write, calls the provider, and records the outcome.
//!
//! No double sends under redelivery: the claim (`queued|retrying → sending`, version
//! conditional) happens before the provider is called, so a redelivered SQS record
//! finds the message already `sending`/`sent` and does nothing. The remaining window
//! — a crash after the provider accepted but before `sent` is recorded — is left to
//! the sweep, which retries the attempt; providers that accept a client reference
//! (Vonage `client-ref`, Sinch `client_reference`, Bandwidth `tag`, sandbox
//! `client_ref`) carry our message id so such a duplicate is traceable.

use super::{BatchFailures, Deps};
use crate::domain::message::{EventSource, Message};
use crate::domain::{DeliveryStatus, SenderId};
use crate::error::ProcessingError;
use crate::providers::registry::adapter;
use crate::providers::{http, OutboundMessage, ProviderKind, SendError};
use crate::queue::{RouteJob, SendJob};
use crate::store::{Change, TransitionOutcome};
use crate::time::{iso8601, parse_iso8601};
use crate::metrics::{self, Dim, Metric};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::Instrument;

/// How long a claimed attempt is left alone: the function's timeout plus a margin
/// for clock skew between instances.
pub fn claim_window() -> chrono::Duration {
    chrono::Duration::from_std(crate::aws::function_timeout() + std::time::Duration::from_secs(15)).unwrap_or(chrono::Duration::seconds(120))
}

/// Time a record needs beyond the provider call itself (connect, claim and outcome
/// writes) before the invocation's deadline.
pub const SEND_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn handle_batch(deps: &Deps, kind: ProviderKind, event: SqsEvent) -> SqsBatchResponse {
    let deadline = std::time::Instant::now() + crate::aws::DEFAULT_FUNCTION_TIMEOUT;
    handle_batch_until(deps, kind, event, deadline).await
}

/// Sends the batch's records one by one while each provider call can still finish
/// before `deadline` (the invocation's, from the Lambda context). A record whose call
/// could not finish is not started: it and the rest are reported as batch failures
/// untouched, so SQS redelivers them instead of Lambda killing the invocation mid-call
/// (which would leave a claimed, possibly accepted, message for the sweep to re-send).
pub async fn handle_batch_until(deps: &Deps, kind: ProviderKind, event: SqsEvent, deadline: std::time::Instant) -> SqsBatchResponse {
    let mut failures = BatchFailures::default();
    let needed = deps.cfg.provider_timeout + SEND_MARGIN;
    let mut out_of_time = false;
    for record in event.records {
        let rid = record.message_id.clone();
        if out_of_time || deadline.saturating_duration_since(std::time::Instant::now()) < needed {
            if !out_of_time {
                tracing::warn!(record = ?rid, "not enough time left in this invocation for a provider call; the rest of the batch goes back to the queue");
            }
            out_of_time = true;
            failures.fail_and_retry_soon(deps, &record);
            continue;
        }
        let job: SendJob = match record.body.as_deref().map(serde_json::from_str) {
            Some(Ok(j)) => j,
            _ => {
                tracing::error!(record = ?rid, "malformed send job");
                failures.fail(rid.as_deref());
                continue;
            }
        };
        if let Err(e) = send_one(deps, kind, &job).await {
            tracing::warn!(message_id = %job.message_id, error = %e, "send step failed; SQS will retry");
            failures.fail_and_retry_soon(deps, &record);
        }
    }
    failures.finish(deps, deadline).await
}

/// The URL the provider should call back for this message. The message id rides in
/// the query string; the webhook trusts it only for schemes that sign the URL
/// (Twilio, Plivo), and otherwise matches by client reference or provider message id.
pub fn status_callback_url(base: &str, kind: ProviderKind, m: &Message, provider_id: &str) -> String {
    format!("{base}/webhooks/{kind}/{}/{provider_id}?m={}", m.tenant, m.id)
}

async fn send_one(deps: &Deps, kind: ProviderKind, job: &SendJob) -> Result<(), ProcessingError> {
    let now = deps.clock.now();
    let Some(m) = deps.store.get_message(job.message_id).await? else {
        tracing::error!(message_id = %job.message_id, "send job for an unknown message; dropping");
        return Ok(());
    };
    if !matches!(m.status, DeliveryStatus::Queued | DeliveryStatus::Retrying) || m.tenant != job.tenant {
        // Already claimed, sent or finished: a redelivery. Never call the provider again.
        tracing::info!(message_id = %m.id, status = %m.status, "send job is stale; skipping");
        return Ok(());
    }
    if parse_iso8601(&m.expires_at).is_some_and(|t| t <= now) {
        deps.apply(m.id, Change::to(DeliveryStatus::Expired, EventSource::Send).reason("validity period passed before sending"))
            .await?;
        return Ok(());
    }
    let Some(cfg) = deps.tenant(&m.tenant).await? else {
        fail(deps, &m, "tenant has no configuration".into(), None).await?;
        return Ok(());
    };
    let Some(tp) = cfg.provider(&job.provider_id).filter(|p| p.kind == kind && p.enabled).cloned() else {
        // Config changed since routing: route again rather than send through an
        // account the tenant no longer allows.
        requeue_route(deps, &m, Vec::new(), 0).await?;
        return Ok(());
    };
    if !deps.cfg.enabled_providers.contains(&kind) {
        fail(deps, &m, format!("{kind} is not enabled in this deployment (platform opt-in)"), None).await?;
        return Ok(());
    }
    // Claim the attempt before calling out.
    let attempt = m.attempts + 1;
    let provider_id = tp.id.clone();
    let claim = Change::to(DeliveryStatus::Sending, EventSource::Send).provider(provider_id.clone()).edit(move |n: &mut Message| {
        n.attempts = attempt;
        n.provider_attempts += 1;
        // If this invocation dies mid-call or cannot record the outcome, the sweep
        // picks the message up after this: once Lambda has certainly ended the
        // invocation (its timeout), so the sweep never races a call still in flight.
        n.next_attempt_at = Some(iso8601(now + claim_window()));
    });
    let m = match deps.apply(m.id, claim).await? {
        TransitionOutcome::Applied(m) => m,
        TransitionOutcome::Recorded { .. } => return Ok(()),
    };
    let creds = match deps.secrets.credentials(&m.tenant, kind, &tp.secret_id).await {
        Ok(c) => c,
        Err(e) if e.is_transient() => {
            retry_or_fail(deps, &m, cfg.retry_for(&m.category), SendError::Transient { code: Some("secrets_unavailable".into()), message: e.to_string(), retry_after_secs: None }).await?;
            return Ok(());
        }
        Err(e) => {
            // Fail closed: never fall back to another tenant's or a default secret.
            fail(deps, &m, format!("credentials for {provider_id} unusable: {e}"), Some("credentials".into())).await?;
            return Ok(());
        }
    };
    let from = SenderId::parse(&job.from).map_err(|_| ProcessingError::Permanent("send job sender is invalid".into()))?;
    let validity = parse_iso8601(&m.expires_at).map(|t| (t - now).num_seconds().clamp(60, i64::from(u32::MAX)) as u32);
    let out = OutboundMessage {
        id: m.id,
        kind: m.kind,
        to: m.to.clone(),
        from,
        body: m.body.clone().unwrap_or_default(),
        media_urls: deps.media.provider_urls(&m.tenant, &m.media).await?,
        status_callback_url: status_callback_url(&deps.cfg.webhook_base_url, kind, &m, &provider_id),
        validity_secs: validity,
    };
    let result = call_provider(deps, kind, &creds, &out, m.attempts).await;
    let now = deps.clock.now();
    // Feed the circuit breaker: only transient failures count against a provider
    // (a permanent error is about the message, not the provider's health).
    let outcome = match &result {
        Ok(_) => Some(true),
        Err(e) if e.is_transient() => Some(false),
        Err(_) => None,
    };
    if let Some(ok) = outcome
        && let Err(e) = deps.store.record_outcome(&m.tenant, &provider_id, ok, now).await {
            tracing::warn!(error = %e, "could not record provider outcome for the circuit breaker");
        }
    match result {
        Ok(accepted) => {
            let deadline = cfg
                .delivery
                .delivery_deadline_secs
                .get(m.category.as_str())
                .map(|s| i64::from(*s))
                .unwrap_or(i64::from(cfg.delivery.receipt_window_secs));
            record_accepted(deps, &m, &provider_id, &accepted, deadline, now).await?;
            // Replies from this number link to the newest message we sent it.
            if let Err(e) = crate::inbound::remember_outbound(&deps.media, &m.tenant, &m.to, m.id, now).await {
                tracing::warn!(message_id = %m.id, error = %e, "could not remember the last outbound message for reply linking");
            }
            metrics::emit(
                Metric::SegmentsSent,
                f64::from(m.segments.max(1)),
                &[(Dim::Provider, kind.as_str()), (Dim::Category, metrics::category(&m.category))],
            );
            tracing::info!(message_id = %m.id, provider = %kind, attempt = m.attempts, "sent");
        }
        Err(e) => {
            if matches!(e, SendError::Credentials(_)) {
                deps.secrets.invalidate(&tp.secret_id);
            }
            retry_or_fail(deps, &m, cfg.retry_for(&m.category), e).await?;
        }
    }
    Ok(())
}

/// One provider API call (build → execute → parse), inside a `provider_call` span so a
/// slow send shows where its time went, with its latency and outcome as metrics.
async fn call_provider(
    deps: &Deps,
    kind: ProviderKind,
    creds: &crate::providers::Credentials,
    out: &OutboundMessage,
    attempt: u32,
) -> Result<crate::providers::SendAccepted, SendError> {
    let span = tracing::info_span!("provider_call", provider = %kind, attempt, http_status = tracing::field::Empty, elapsed_ms = tracing::field::Empty);
    async {
        let a = adapter(kind);
        let req = a.build_send(creds, out)?;
        let started = std::time::Instant::now();
        let resp = http::execute(deps.http(), &req).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let span = tracing::Span::current();
        span.record("elapsed_ms", elapsed_ms.round() as u64);
        if let Ok(r) = &resp {
            span.record("http_status", r.status);
        }
        let result = resp.and_then(|r| a.parse_send_response(&r));
        let provider = [(Dim::Provider, kind.as_str())];
        metrics::count(Metric::ProviderCalls, &provider);
        metrics::emit(Metric::ProviderLatency, elapsed_ms, &provider);
        if let Err(e) = &result {
            let class = match e {
                SendError::Credentials(_) => "credentials",
                e if e.is_transient() => "transient",
                _ => "permanent",
            };
            metrics::count(Metric::ProviderErrors, &[(Dim::Provider, kind.as_str()), (Dim::ErrorClass, class)]);
        }
        tracing::debug!(outcome = if result.is_ok() { "accepted" } else { "error" }, "provider call finished");
        result
    }
    .instrument(span)
    .await
}

/// Records a provider's acceptance: the status it implies, the provider's message id
/// and its lookup, and the receipt deadline as the next due time. When a receipt got
/// there first (the webhook applied `sent` or a final state), the id, lookup and due
/// time are still written ([`record_provider_id`]).
pub async fn record_accepted(
    deps: &Deps,
    m: &Message,
    provider_id: &str,
    accepted: &crate::providers::SendAccepted,
    deadline_secs: i64,
    now: crate::time::Instant,
) -> Result<(), ProcessingError> {
    let pmid = accepted.provider_message_id.clone();
    let pmid_for_edit = pmid.clone();
    let change = Change::to(accepted.status, EventSource::Send)
        .provider(provider_id.to_string())
        .provider_status(accepted.provider_status.clone().unwrap_or_default())
        .lookup(provider_id.to_string(), pmid.clone())
        .edit(move |n: &mut Message| {
            n.provider_message_id = Some(pmid_for_edit.clone());
            n.next_attempt_at = Some(iso8601(now + chrono::Duration::seconds(deadline_secs)));
        });
    if let TransitionOutcome::Recorded { current, .. } = deps.apply(m.id, change).await? {
        record_provider_id(deps, current, provider_id, &pmid, deadline_secs, now).await?;
    }
    Ok(())
}

/// Writes the provider's message id (and its lookup) on a message whose `sent` was
/// recorded by a receipt first, and moves a still-`sent` message's due time to the
/// receipt deadline.
async fn record_provider_id(
    deps: &Deps,
    mut current: Message,
    provider_id: &str,
    pmid: &crate::domain::ProviderMessageId,
    deadline_secs: i64,
    now: crate::time::Instant,
) -> Result<(), ProcessingError> {
    deps.store.put_provider_lookup(provider_id, pmid, current.id, &current.tenant).await?;
    for _ in 0..5 {
        if current.provider_message_id.as_ref() == Some(pmid) {
            return Ok(());
        }
        let (p, due) = (pmid.clone(), (current.status == DeliveryStatus::Sent).then(|| iso8601(now + chrono::Duration::seconds(deadline_secs))));
        let edit = move |n: &mut Message| {
            n.provider_message_id = Some(p.clone());
            if let Some(d) = &due {
                n.next_attempt_at = Some(d.clone());
            }
        };
        match deps.store.update_fields(&current, edit, "provider message id recorded (a receipt arrived before the send was recorded)".into(), now).await {
            Ok(()) => return Ok(()),
            Err(crate::error::StoreError::Conflict) => {
                let Some(m) = deps.store.get_message(current.id).await? else { return Ok(()) };
                current = m;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Applies the retry policy to a failed attempt: retry on the same provider with
/// backoff, fail over to the next provider, or give up.
async fn retry_or_fail(deps: &Deps, m: &Message, policy: &crate::tenant::RetryPolicy, e: SendError) -> Result<(), ProcessingError> {
    let now = deps.clock.now();
    let provider = m.provider.clone().unwrap_or_default();
    let code = e.code().map(str::to_string);
    if !e.is_transient() {
        tracing::warn!(message_id = %m.id, provider = %provider, code = ?code, "permanent send failure");
        fail(deps, m, e.to_string(), code).await?;
        return Ok(());
    }
    if m.attempts >= policy.max_attempts {
        fail(deps, m, format!("gave up after {} attempts: {e}", m.attempts), code).await?;
        return Ok(());
    }
    let backoff = policy.backoff_secs(m.attempts, fastrand::f64());
    let backoff = match &e {
        SendError::Transient { retry_after_secs: Some(ra), .. } => backoff.max((*ra).min(900) as u32),
        _ => backoff,
    };
    let failover = m.provider_attempts >= policy.attempts_per_provider;
    let reason = if failover {
        format!("attempt {} on {provider} failed ({e}); failing over to the next provider in {backoff}s", m.attempts)
    } else {
        format!("attempt {} on {provider} failed ({e}); retrying in {backoff}s", m.attempts)
    };
    let failed_provider = provider.clone();
    let kind = deps.tenant(&m.tenant).await?.and_then(|c| c.provider(&provider).map(|p| p.kind.as_str())).unwrap_or("unknown");
    metrics::count(if failover { Metric::Failovers } else { Metric::Retries }, &[(Dim::Provider, kind)]);
    let change = Change::to(DeliveryStatus::Retrying, EventSource::Send).reason(reason).error_code(code).edit(move |n: &mut Message| {
        if failover && !n.failed_providers.contains(&failed_provider) {
            n.failed_providers.push(failed_provider.clone());
        }
        n.next_attempt_at = Some(iso8601(now + chrono::Duration::seconds(i64::from(backoff) + 120)));
    });
    let m = match deps.apply(m.id, change).await? {
        TransitionOutcome::Applied(m) => m,
        TransitionOutcome::Recorded { .. } => return Ok(()),
    };
    // Both paths go through route, which re-checks every gate before the next attempt
    // (and excludes failed providers on failover).
    requeue_route(deps, &m, m.failed_providers.clone(), backoff).await
}

async fn requeue_route(deps: &Deps, m: &Message, exclude: Vec<String>, delay: u32) -> Result<(), ProcessingError> {
    let job = RouteJob { message_id: m.id, tenant: m.tenant.clone(), exclude };
    deps.queues
        .send(&deps.cfg.route_queue_url, &job, delay)
        .await
        .map_err(|e| ProcessingError::Transient(e.to_string()))
}

async fn fail(deps: &Deps, m: &Message, reason: String, code: Option<String>) -> Result<(), ProcessingError> {
    deps.apply(m.id, Change::to(DeliveryStatus::Failed, EventSource::Send).reason(reason).error_code(code))
        .await?;
    Ok(())
}

#[cfg(test)]
mod reason_masking_tests {
    use crate::audit::{AuditAction, NewAuditEvent};
    use crate::domain::message::EventSource;
    use crate::domain::DeliveryStatus;
    use crate::providers::registry::adapter;
    use crate::providers::{ProviderKind, ProviderResponse};
    use crate::store::Change;

    /// Each provider's refusal of a bad destination, in its documented error shape,
    /// quoting the number the way these providers do.
    fn refusals() -> Vec<(ProviderKind, u16, serde_json::Value)> {
        use serde_json::json;
        vec![
            (ProviderKind::Twilio, 400, json!({"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})),
            (ProviderKind::Telnyx, 422, json!({"errors": [{"code": "40310", "title": "Invalid 'to' address", "detail": "The 'to' address +15005550001 is invalid."}]})),
            (ProviderKind::VonageSms, 200, json!({"message-count": "1", "messages": [{"to": "15005550001", "status": "3", "error-text": "Invalid to number 15005550001"}]})),
            (ProviderKind::VonageMessages, 422, json!({"type": "https://developer.vonage.com/api-errors#invalid-params", "title": "Invalid params", "detail": "The value of 'to' 15005550001 is not a valid number"})),
            (ProviderKind::Bandwidth, 400, json!({"type": "request-validation", "description": "'+15005550001' is not a valid phone number"})),
            (ProviderKind::Plivo, 400, json!({"api_id": "8d2a0a5e-1b2c-11ef-9c44-0242ac110002", "error": "dst parameter +15005550001 is not a valid number"})),
            (ProviderKind::Sinch, 400, json!({"code": "syntax_invalid_parameter_format", "text": "Invalid number +15005550001 in 'to'"})),
            (ProviderKind::Sandbox, 400, json!({"code": "invalid_destination", "message": "the destination +15005550001 cannot receive messages"})),
        ]
    }

    #[test]
    fn provider_error_texts_reach_reasons_and_audit_details_without_the_number() {
        let mut quoting = 0;
        for (kind, status, body) in refusals() {
            let resp = ProviderResponse { status, headers: vec![("content-type".into(), "application/json".into())], body: body.to_string().into_bytes() };
            let Err(e) = adapter(kind).parse_send_response(&resp) else { panic!("{kind}: a refusal parsed as accepted") };
            quoting += usize::from(e.to_string().contains("5005550001"));
            // The texts send.rs builds from a provider error.
            for text in [e.to_string(), format!("gave up after 3 attempts: {e}"), format!("attempt 1 on main failed ({e}); retrying in 4s")] {
                let change = Change::to(DeliveryStatus::Failed, EventSource::Send).reason(text.clone());
                let reason = change.reason.clone().unwrap();
                let detail = NewAuditEvent::new(AuditAction::StatusChanged).detail(text.clone()).detail.unwrap();
                for stored in [&reason, &detail] {
                    assert!(!stored.contains("5005550001"), "{kind}: {stored}");
                }
            }
        }
        // Not vacuous: most adapters do carry the provider's text (and its number).
        assert!(quoting >= 4, "only {quoting} adapters quoted the number");
    }
}
