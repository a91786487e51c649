//! The `route` function: picks the provider account and sender for a message under
//! the tenant's routing policy and the fail-closed gates, then puts the message on
//! that provider's send queue (the priority lane for life-safety categories).

use super::{BatchFailures, Deps};
use crate::domain::message::{EventSource, Message};
use crate::domain::{ContentCategory, DeliveryStatus, MessageId, MessageKind, SenderId, E164};
use crate::error::{ApiError, ProcessingError};
use crate::providers::registry::adapter;
use crate::queue::{RouteJob, SendJob};
use crate::store::{Change, TransitionOutcome};
use crate::tenant::{route, RouteDecision, RouteEnv, RouteFacts, TenantConfig, TenantProvider};
use crate::time::iso8601;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::collections::{BTreeMap, BTreeSet};

/// Open-circuit waits allowed per attempt of the retry policy (a circuit closes when
/// its failures age out of the health window, so a few waits cover one outage).
pub const HEALTH_WAITS_PER_ATTEMPT: u32 = 4;

/// How long to wait before routing again when every candidate's circuit is open.
const HEALTH_RETRY_SECS: u32 = 30;

/// How long a queued message may wait for its send attempt before the sweep looks at it.
pub const QUEUED_GRACE_SECS: i64 = 300;

pub async fn handle_batch(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let deadline = std::time::Instant::now() + crate::aws::DEFAULT_FUNCTION_TIMEOUT;
    handle_batch_until(deps, event, deadline).await
}

/// Routes each record; failed ones come back after a short backoff, asked for until
/// shortly before `deadline` (the invocation's).
pub async fn handle_batch_until(deps: &Deps, event: SqsEvent, deadline: std::time::Instant) -> SqsBatchResponse {
    let mut failures = BatchFailures::default();
    for record in event.records {
        let id = record.message_id.clone();
        let job: RouteJob = match record.body.as_deref().map(serde_json::from_str) {
            Some(Ok(j)) => j,
            _ => {
                // A malformed record cannot be fixed by retrying: let it go to the DLQ
                // through redrive so it stays visible.
                tracing::error!(record = ?id, "malformed route job");
                failures.fail(id.as_deref());
                continue;
            }
        };
        if let Err(e) = route_one(deps, &job).await {
            tracing::warn!(message_id = %job.message_id, error = %e, "route failed; SQS will retry");
            failures.fail_and_retry_soon(deps, &record);
        }
    }
    failures.finish(deps, deadline).await
}

/// Loads and parses every provider's credentials the rule might use (gate 3).
async fn credential_verdicts(deps: &Deps, cfg: &TenantConfig) -> Result<BTreeMap<String, Result<(), String>>, ProcessingError> {
    let mut out = BTreeMap::new();
    for p in &cfg.providers {
        let verdict = match deps.secrets.credentials(&cfg.tenant, p.kind, &p.secret_id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => return Err(ProcessingError::Transient(e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        out.insert(p.id.clone(), verdict);
    }
    Ok(out)
}

/// Circuit breaker: an account is unhealthy when, over the last
/// [`HEALTH_WINDOW_MINUTES`], it had at least [`HEALTH_MIN_FAILURES`] transient
/// failures and more failures than successes. The counters are stored (shared by
/// every function instance) and age out, which closes the circuit again.
pub const HEALTH_WINDOW_MINUTES: i64 = 2;
pub const HEALTH_MIN_FAILURES: u64 = 3;

pub async fn unhealthy_accounts(deps: &Deps, cfg: &TenantConfig) -> Result<BTreeSet<String>, ProcessingError> {
    let now = deps.clock.now();
    let mut out = BTreeSet::new();
    for p in &cfg.providers {
        let (ok, fail) = deps.store.recent_outcomes(&cfg.tenant, &p.id, HEALTH_WINDOW_MINUTES, now).await?;
        if fail >= HEALTH_MIN_FAILURES && fail > ok {
            out.insert(p.id.clone());
        }
    }
    Ok(out)
}

pub fn decide(
    deps: &Deps,
    cfg: &TenantConfig,
    creds: &BTreeMap<String, Result<(), String>>,
    unhealthy: &BTreeSet<String>,
    facts: &RouteFacts<'_>,
    exclude: &[String],
) -> RouteDecision {
    let check = |p: &TenantProvider| creds.get(&p.id).cloned().unwrap_or_else(|| Err("not checked".into()));
    let caps = |k| adapter(k).capabilities();
    let env = RouteEnv {
        platform_enabled: &deps.cfg.enabled_providers,
        credentials_ok: &check,
        capabilities: &caps,
        unhealthy,
        exclude,
    };
    route(cfg, facts, &env)
}

async fn route_one(deps: &Deps, job: &RouteJob) -> Result<(), ProcessingError> {
    let now = deps.clock.now();
    let Some(m) = deps.store.get_message(job.message_id).await? else {
        tracing::error!(message_id = %job.message_id, "route job for an unknown message; dropping");
        return Ok(());
    };
    if !matches!(m.status, DeliveryStatus::Accepted | DeliveryStatus::Queued | DeliveryStatus::Retrying) {
        // Already past routing (duplicate delivery or a stale sweep): nothing to do.
        return Ok(());
    }
    if m.tenant != job.tenant {
        return Err(ProcessingError::Permanent("route job tenant does not match the message".into()));
    }
    let Some(cfg) = deps.tenant(&m.tenant).await? else {
        finish_unroutable(deps, &m, "tenant has no configuration".into()).await?;
        return Ok(());
    };
    // Quiet hours: non-exempt messages wait (only before the first attempt; a retry
    // already under way is not held back). The sweep re-queues them when due.
    if m.attempts == 0
        && let Some(until) = cfg.quiet_hours_apply(&m.category).and_then(|q| q.defer_until(now)) {
            if crate::time::parse_iso8601(&m.expires_at).is_some_and(|e| e <= until) {
                deps.apply(m.id, Change::to(DeliveryStatus::Expired, EventSource::Route).reason("validity period ends before quiet hours do")).await?;
                return Ok(());
            }
            let due = iso8601(until);
            deps.store
                .update_fields(&m, move |n| n.next_attempt_at = Some(due.clone()), format!("held by quiet hours until {}", iso8601(until)), now)
                .await?;
            return Ok(());
        }
    let creds = credential_verdicts(deps, &cfg).await?;
    let mut exclude = job.exclude.clone();
    for p in &m.failed_providers {
        if !exclude.contains(p) {
            exclude.push(p.clone());
        }
    }
    let media = deps.media.media_facts(&m.tenant, &m.media).await?;
    let facts = RouteFacts {
        media: &media,
        id: m.id,
        kind: m.kind,
        category: &m.category,
        to: &m.to,
        from: if m.sender_requested { m.from.as_ref() } else { None },
        media_count: m.media.len(),
    };
    let unhealthy = unhealthy_accounts(deps, &cfg).await?;
    for account in &unhealthy {
        let kind = cfg.provider(account).map(|p| p.kind.as_str()).unwrap_or("unknown");
        crate::metrics::count(crate::metrics::Metric::CircuitOpen, &[(crate::metrics::Dim::Provider, kind)]);
    }
    let mut decision = decide(deps, &cfg, &creds, &unhealthy, &facts, &exclude);
    if decision.chosen().is_none() && !exclude.is_empty() && m.attempts < cfg.retry_for(&m.category).max_attempts {
        // Failover found no untried provider (a single-provider tenant, or every other
        // one is ineligible), but the policy still allows attempts: the providers that
        // failed transiently are tried again rather than the message failed early.
        tracing::info!(message_id = %m.id, tried = ?exclude, "no untried provider left; trying the ones that failed before");
        decision = decide(deps, &cfg, &creds, &unhealthy, &facts, &[]);
    }
    let Some(chosen) = decision.chosen().cloned() else {
        // Only open circuits stand in the way: wait for them to close rather than
        // reject a message some provider could carry in a minute.
        let only_health = !decision.candidates.is_empty()
            && decision.candidates.iter().all(|c| c.verdicts.iter().find(|v| !v.passed).is_some_and(|v| v.gate == crate::tenant::Gate::Health));
        if only_health {
            // Bounded by the retry policy: each wait counts, and a message whose
            // providers stay unhealthy ends visibly instead of looping forever.
            let limit = cfg.retry_for(&m.category).max_attempts.saturating_mul(HEALTH_WAITS_PER_ATTEMPT);
            if m.health_waits >= limit {
                finish_unroutable(deps, &m, format!("every eligible provider's circuit stayed open through {limit} waits of {HEALTH_RETRY_SECS}s")).await?;
                return Ok(());
            }
            deps.store
                .update_fields(
                    &m,
                    |n| n.health_waits += 1,
                    format!("every eligible provider's circuit is open; routing again in {HEALTH_RETRY_SECS}s (wait {} of {limit})", m.health_waits + 1),
                    now,
                )
                .await?;
            let job = RouteJob { message_id: m.id, tenant: m.tenant.clone(), exclude: job.exclude.clone() };
            deps.queues.send(&deps.cfg.route_queue_url, &job, HEALTH_RETRY_SECS).await.map_err(|e| ProcessingError::Transient(e.to_string()))?;
            return Ok(());
        }
        finish_unroutable(deps, &m, decision.refusal_reason()).await?;
        return Ok(());
    };
    let provider_kind = chosen.kind.expect("an eligible candidate has a kind");
    let sender = chosen.sender.clone().expect("an eligible candidate has a sender");
    let explanation = format!(
        "routed by rule '{}' to {} ({}) from {}; {}",
        decision.rule.as_deref().unwrap_or("-"),
        chosen.provider_id,
        provider_kind,
        sender,
        decision
            .candidates
            .iter()
            .map(|c| format!("{}: {}", c.provider_id, if c.eligible { "eligible".to_string() } else { c.verdicts.iter().find(|v| !v.passed).map(|v| format!("{:?} failed ({})", v.gate, v.detail)).unwrap_or_default() }))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let provider_id = chosen.provider_id.clone();
    let same_provider = m.provider.as_deref() == Some(provider_id.as_str());
    let change = Change::to(DeliveryStatus::Queued, EventSource::Route)
        .provider(provider_id.clone())
        .reason(explanation)
        .edit(move |next: &mut Message| {
            next.from = Some(sender.clone());
            if !same_provider {
                next.provider_attempts = 0;
            }
            next.next_attempt_at = Some(iso8601(now + chrono::Duration::seconds(QUEUED_GRACE_SECS)));
        });
    let current = match deps.apply(m.id, change).await? {
        TransitionOutcome::Applied(next) => next,
        // Already queued (a redelivered route job): re-send the send job; the send
        // function's claim makes a duplicate harmless.
        TransitionOutcome::Recorded { current, .. } if current.status == DeliveryStatus::Queued => current,
        TransitionOutcome::Recorded { .. } => return Ok(()),
    };
    let queue = deps
        .cfg
        .send_queue(provider_kind, current.priority)
        .ok_or_else(|| ProcessingError::Permanent(format!("no send queue configured for {provider_kind}")))?;
    let send = SendJob {
        message_id: current.id,
        tenant: current.tenant.clone(),
        provider_id: current.provider.clone().unwrap_or(provider_id),
        from: current.from.as_ref().map(|f| f.to_string()).unwrap_or_default(),
        exclude,
        priority: current.priority,
    };
    deps.queues.send(queue, &send, 0).await.map_err(|e| ProcessingError::Transient(e.to_string()))?;
    tracing::info!(message_id = %current.id, provider = %provider_kind, priority = current.priority, "queued");
    Ok(())
}

/// No provider may carry the message: `rejected` before any attempt, `failed` after.
async fn finish_unroutable(deps: &Deps, m: &Message, reason: String) -> Result<(), ProcessingError> {
    let to = if m.attempts == 0 { DeliveryStatus::Rejected } else { DeliveryStatus::Failed };
    tracing::warn!(message_id = %m.id, status = %to, "no eligible provider");
    deps.apply(m.id, Change::to(to, EventSource::Route).reason(reason)).await?;
    Ok(())
}

/// The routing decision for a hypothetical message, without sending anything
/// (`dispatchctl route explain`, `POST /v1/admin/route/explain`).
pub async fn explain(
    deps: &Deps,
    cfg: &TenantConfig,
    to: &str,
    category: &str,
    kind: MessageKind,
    from: Option<&str>,
    id: MessageId,
) -> Result<RouteDecision, ApiError> {
    let to = E164::parse(to, Some(&cfg.default_region))
        .map_err(|e| ApiError::unprocessable(e.code(), format!("The recipient is not a valid phone number: {e}.")).field("to"))?;
    let category = ContentCategory::parse(category)
        .ok()
        .filter(|c| cfg.is_known_category(c))
        .ok_or_else(|| ApiError::unprocessable("unknown_category", "Unknown content category.").field("category"))?;
    let from = match from {
        Some(f) => Some(SenderId::parse(f).map_err(|e| ApiError::unprocessable("invalid_sender", e.to_string()).field("from"))?),
        None => None,
    };
    let creds = credential_verdicts(deps, cfg).await.map_err(|_| ApiError::unavailable())?;
    let unhealthy = unhealthy_accounts(deps, cfg).await.map_err(|_| ApiError::unavailable())?;
    let facts = RouteFacts { id, kind, category: &category, to: &to, from: from.as_ref(), media_count: usize::from(kind == MessageKind::Mms), media: &[] };
    Ok(decide(deps, cfg, &creds, &unhealthy, &facts, &[]))
}
