//! Signed status callbacks to tenants. Every applied state change (and every
//! escalation) is rendered as JSON and queued; the `retry` function POSTs it to the
//! tenant's callback URL, signed, retrying with backoff when the endpoint fails.
//!
//! Signature (verification walk-through with a worked example: docs/tenant-callbacks.md):
//! header `Dispatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! with one `v1=` per active secret during rotation. The tenant's secret in Secrets
//! Manager is either a plain string or `{"secrets": ["<current>", "<previous>"]}`.

use crate::metrics::{self, Dim, Metric};
use super::{BatchFailures, Deps};
use crate::domain::message::{EventSource, Message};
use crate::queue::TenantCallbackJob;
use crate::signatures::sandbox::signature_header;
use crate::time::{iso8601, Instant};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::json;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "Dispatch-Signature";
/// Delivery attempts before a callback is given up (and the give-up recorded).
pub const MAX_ATTEMPTS: u32 = 8;
const TIMEOUT: Duration = Duration::from_secs(5);

/// The JSON a tenant receives for a state change.
pub fn status_body(m: &Message, now: Instant) -> String {
    json!({
        "type": "message.status",
        "id": format!("evt_{}", ulid::Ulid::new()),
        "occurred_at": iso8601(now),
        "message": {
            "id": m.id,
            "tenant": m.tenant,
            "status": m.status,
            "category": m.category,
            "to": m.to,
            "from": m.from,
            "attempts": m.attempts,
            "provider": m.provider,
            "reason": m.reason,
            "error_code": m.error_code,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
            "operator_id": m.operator.operator_id,
        }
    })
    .to_string()
}

/// The JSON a tenant receives when a delivery deadline passes without a receipt.
pub fn escalation_body(m: &Message, deadline_secs: u32, now: Instant) -> String {
    json!({
        "type": "message.escalation",
        "id": format!("evt_{}", ulid::Ulid::new()),
        "occurred_at": iso8601(now),
        "escalation": {
            "reason": "delivery_deadline_missed",
            "deadline_secs": deadline_secs,
            "advice": "No delivery receipt within the deadline: contact the recipient another way (phone).",
        },
        "message": {
            "id": m.id, "tenant": m.tenant, "status": m.status, "category": m.category,
            "to": m.to, "attempts": m.attempts, "provider": m.provider, "sent_at": m.sent_at,
            "operator_id": m.operator.operator_id,
        }
    })
    .to_string()
}

/// Queues a callback if the tenant has a callback URL. Failures are logged, not
/// fatal: the state change itself is already stored and visible through the API.
pub async fn enqueue(deps: &Deps, m: &Message, body: String) {
    if deps.cfg.tenant_callback_queue_url.is_empty() {
        return;
    }
    match deps.tenant(&m.tenant).await {
        Ok(Some(cfg)) if cfg.callback.is_some() => {}
        _ => return,
    }
    let job = TenantCallbackJob { tenant: m.tenant.clone(), message_id: Some(m.id), body, attempt: 1 };
    if let Err(e) = deps.queues.send(&deps.cfg.tenant_callback_queue_url, &job, 0).await {
        tracing::warn!(message_id = %m.id, error = %e, "tenant callback could not be queued");
    }
}

fn base_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .no_proxy()
        // A redirect could point anywhere, inward included: the tenant fixes its URL.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("sms-dispatch-callbacks/1")
}

/// Public addresses only: every resolved address is checked, so a hostname that
/// resolves to 169.254.169.254, 127.0.0.1 or the VPC is refused at connect time.
fn public_client() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        base_client()
            .dns_resolver(std::sync::Arc::new(crate::public_http::PublicOnly))
            .build()
            .expect("static HTTP client configuration is valid")
    })
}

/// The local runner's loopback receivers (only with `LOOPBACK_CALLBACKS=allow`).
fn loopback_client() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| base_client().build().expect("static HTTP client configuration is valid"))
}

/// Reads the tenant's callback secrets (current first, then previous).
async fn secrets(deps: &Deps, tenant: &crate::domain::TenantId, secret_id: &str) -> Result<Vec<String>, String> {
    let raw = deps.secrets.tenant_string(tenant, crate::secrets::SecretScope::Callback, secret_id).await.map_err(|e| e.to_string())?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&raw) {
        if let Some(list) = v.get("secrets").and_then(|s| s.as_array()) {
            let out: Vec<String> = list.iter().filter_map(|s| s.as_str().map(str::to_string)).filter(|s| !s.is_empty()).collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
        return Err("callback secret JSON needs a non-empty \"secrets\" array".into());
    }
    if raw.is_empty() { Err("callback secret is empty".into()) } else { Ok(vec![raw]) }
}

/// Consumes the tenant callback queue (the `retry` function's SQS event source).
pub async fn handle_batch(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let deadline = std::time::Instant::now() + crate::aws::DEFAULT_FUNCTION_TIMEOUT;
    handle_batch_until(deps, event, deadline).await
}

/// Delivers the batch's callbacks concurrently, each bounded by [`TIMEOUT`], the batch
/// by the invocation's `deadline`: a tenant endpoint that hangs costs one timeout for
/// the whole batch, never the invocation (which would redeliver and multiply every job
/// in it). With too little time left nothing is started; records still running at the
/// deadline go back to the queue.
pub async fn handle_batch_until(deps: &Deps, event: SqsEvent, deadline: std::time::Instant) -> SqsBatchResponse {
    let mut failures = BatchFailures::default();
    let margin = Duration::from_secs(1);
    if deadline.saturating_duration_since(std::time::Instant::now()) < TIMEOUT + margin * 2 {
        for record in &event.records {
            failures.fail(record.message_id.as_deref());
        }
        return failures.into_response();
    }
    let mut running = tokio::task::JoinSet::new();
    let mut pending = std::collections::BTreeSet::new();
    for record in event.records {
        let rid = record.message_id.clone().unwrap_or_default();
        let Some(Ok(job)) = record.body.as_deref().map(serde_json::from_str::<TenantCallbackJob>) else {
            tracing::error!(record = %rid, "malformed tenant callback job");
            failures.fail(Some(&rid));
            continue;
        };
        pending.insert(rid.clone());
        let deps = deps.clone();
        running.spawn(async move {
            let r = deliver(&deps, &job).await;
            if let Err(e) = &r {
                tracing::warn!(tenant = %job.tenant, error = %e, "tenant callback step failed; SQS will retry");
            }
            (rid, r.is_ok())
        });
    }
    let budget = deadline.saturating_duration_since(std::time::Instant::now()).saturating_sub(margin);
    let _ = tokio::time::timeout(budget, async {
        while let Some(done) = running.join_next().await {
            if let Ok((rid, ok)) = done {
                pending.remove(&rid);
                if !ok {
                    failures.fail(Some(&rid));
                }
            }
        }
    })
    .await;
    // Anything still running at the budget's end (or lost to a panic) is retried.
    running.abort_all();
    for rid in pending {
        failures.fail(Some(&rid));
    }
    failures.into_response()
}

async fn deliver(deps: &Deps, job: &TenantCallbackJob) -> Result<(), String> {
    let Some(cfg) = deps.tenant(&job.tenant).await.map_err(|e| e.to_string())? else { return Ok(()) };
    let Some(cb) = cfg.callback.clone() else { return Ok(()) };
    let now = deps.clock.now();
    let keys = match secrets(deps, &job.tenant, &cb.secret_id).await {
        Ok(k) => k,
        Err(e) => {
            record(deps, job, format!("tenant callback not sent: {e}")).await;
            return Ok(());
        }
    };
    // The URL was validated when the config was saved; check it again (a config
    // stored before the rule, or a hostname that now resolves inward) and post through
    // a client that resolves public addresses only and never follows redirects.
    let target = match crate::public_http::callback_target(&cb.url, deps.cfg.loopback_callbacks) {
        Ok(u) => u,
        Err(why) => {
            metrics::count(Metric::TenantCallbackFailures, &[(Dim::Reason, "refused_url")]);
            record(deps, job, format!("tenant callback not sent: the callback URL is refused ({why})")).await;
            return Ok(());
        }
    };
    let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let header = signature_header(&key_refs, now.timestamp(), job.body.as_bytes());
    let client = if deps.cfg.loopback_callbacks && crate::public_http::is_loopback(&target) { loopback_client() } else { public_client() };
    let result = client
        .post(target)
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, header)
        .body(job.body.clone())
        .send()
        .await;
    let outcome = match &result {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".to_string()),
        Err(_) => Err("could not connect".to_string()),
    };
    if outcome.is_err() {
        let final_attempt = if job.attempt < MAX_ATTEMPTS { "retrying" } else { "given_up" };
        metrics::count(Metric::TenantCallbackFailures, &[(Dim::Reason, final_attempt)]);
    }
    match outcome {
        Ok(status) => {
            record(deps, job, format!("tenant callback delivered (HTTP {status}, attempt {})", job.attempt)).await;
        }
        Err(why) if job.attempt < MAX_ATTEMPTS => {
            let delay = (2u32.pow(job.attempt.min(9))).min(900);
            record(deps, job, format!("tenant callback attempt {} failed ({why}); retrying in {delay}s", job.attempt)).await;
            let next = TenantCallbackJob { attempt: job.attempt + 1, ..job.clone() };
            deps.queues.send(&deps.cfg.tenant_callback_queue_url, &next, delay).await.map_err(|e| e.to_string())?;
        }
        Err(why) => {
            record(deps, job, format!("tenant callback given up after {} attempts ({why})", job.attempt)).await;
        }
    }
    Ok(())
}

/// Records a delivery attempt in the message's history.
async fn record(deps: &Deps, job: &TenantCallbackJob, note: String) {
    let Some(id) = job.message_id else { return };
    if let Ok(Some(m)) = deps.store.get_message(id).await
        && let Err(e) = deps.store.note(&m, EventSource::Retry, note, deps.clock.now()).await {
            tracing::warn!(message_id = %id, error = %e, "could not record callback attempt");
        }
}

#[cfg(test)]
mod tests {
    use crate::signatures::sandbox::{signature_header, verify_timestamped};
    use std::time::Duration;

    /// The worked example in docs/tenant-callbacks.md, so the document stays true.
    #[test]
    fn documented_worked_example_verifies() {
        let body = r#"{"type":"message.status","id":"evt_01KB3Q0J3ZPM4W1Y8E9K2R7N6D","occurred_at":"2026-11-26T02:20:00.000Z","message":{"id":"01KB3PZX8R6S9T0V1W2X3Y4Z5A","tenant":"psap-north","status":"delivered","category":"emergency_callback","to":"+12015550123","attempts":1}}"#;
        let header = signature_header(&[b"whsec_3f9a1c".as_slice(), b"whsec_old_77b2".as_slice()], 1795652400, body.as_bytes());
        assert_eq!(
            header,
            "t=1795652400,v1=11698575bd1b13b4f06aac07ad61b405fdcd628742b7904f31e57f2fbc508736,v1=aec678fb37a1e367c74274e671d0236eef75b628f49ccd409dadba07da811e34"
        );
        let tol = Duration::from_secs(300);
        assert!(verify_timestamped(&header, b"whsec_3f9a1c", body.as_bytes(), 1795652400 + 299, tol).is_ok());
        assert!(verify_timestamped(&header, b"whsec_old_77b2", body.as_bytes(), 1795652400, tol).is_ok());
        assert!(verify_timestamped(&header, b"whsec_3f9a1c", body.as_bytes(), 1795652400 + 301, tol).is_err());
        assert!(verify_timestamped(&header, b"other", body.as_bytes(), 1795652400, tol).is_err());
    }
}

