//! Inbound SMS/MMS: what the webhook does with a verified `Callback::Inbound`, and the
//! read API (`GET /v1/inbound`, `GET /v1/inbound/{id}`).
//!
//! [`handle_inbound`]: the destination must be one of the tenant's sender identities
//! on that provider account (else nothing is stored and the webhook answers 404);
//! media items are recorded as pending and fetched by the inbound-media job
//! ([`super::inbound_media`]) after the provider has its answer; STOP/START keywords
//! update the tenant's opt-out list; the record is linked to the last message the
//! tenant sent to that number and pushed to the tenant's callback URL, signed like
//! status callbacks (for an MMS, once its media are settled). A provider's retry of
//! the same message is stored once.

use super::Deps;
use crate::domain::{SenderId, TenantId, E164};
use crate::error::StoreError;
use crate::inbound::{self, InboundMediaRecord, InboundRecord, Keyword, OptOutRecord};
use crate::media::{self, MediaStore};
use crate::observability::mask_number;
use crate::providers::{InboundMessage, ProviderKind};
use crate::queue::TenantCallbackJob;
use crate::tenant::TenantConfig;
use crate::time::{iso8601, parse_iso8601};
use lambda_http::{Body, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

/// What became of an inbound callback.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundOutcome {
    /// Stored (and pushed to the tenant).
    Stored(Box<InboundRecord>),
    /// The provider sent this message before; the first record stands (its id).
    Duplicate(String),
    /// The destination is not one of the tenant's senders on that account: nothing stored.
    UnknownNumber,
    /// No such (enabled) account of that provider type for the tenant: nothing stored.
    UnknownAccount,
}

impl InboundOutcome {
    /// True when the webhook should answer 404 (nothing was stored).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::UnknownNumber | Self::UnknownAccount)
    }
}

/// For the webhook's `Callback::Inbound` arm: `Some(response)` to answer now (404
/// for a number or account that is not the tenant's), `None` to answer 200 as usual.
pub async fn on_callback(
    deps: &Deps,
    ms: &MediaStore,
    kind: ProviderKind,
    tenant: &TenantId,
    account: &str,
    msg: InboundMessage,
) -> Result<Option<Response<Body>>, StoreError> {
    let out = handle_inbound(deps, ms, kind, tenant, account, msg).await?;
    Ok(out.is_refused().then(|| {
        Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Body::Text(json!({"code": "unknown_number", "message": "That number is not one of this account's senders."}).to_string()))
            .expect("static response parts are valid")
    }))
}

/// The tenant sender identity on `account` that `to` names, normalised.
fn our_number(cfg: &TenantConfig, account: &str, to: &str) -> Option<String> {
    let e164 = E164::parse(to, Some(&cfg.default_region)).ok();
    let digits = to.trim().trim_start_matches('+');
    cfg.senders.iter().filter(|s| s.provider == account).find_map(|s| match (&s.sender, &e164) {
        (SenderId::LongCode(n), Some(e)) if n == e => Some(n.to_string()),
        (SenderId::ShortCode(c), _) if c == digits => Some(c.clone()),
        _ => None,
    })
}

/// Stores one inbound message. See the module docs; errors are transient store/S3
/// failures (the webhook answers 503 and the provider retries).
pub async fn handle_inbound(
    deps: &Deps,
    ms: &MediaStore,
    kind: ProviderKind,
    tenant: &TenantId,
    account: &str,
    msg: InboundMessage,
) -> Result<InboundOutcome, StoreError> {
    let now = deps.clock.now();
    let Some(cfg) = deps.tenant(tenant).await? else {
        tracing::warn!(security = "inbound_refused", provider = %kind, tenant = %tenant, reason = "unknown tenant", "inbound refused");
        return Ok(InboundOutcome::UnknownAccount);
    };
    if !cfg.provider(account).is_some_and(|p| p.kind == kind && p.enabled) {
        tracing::warn!(security = "inbound_refused", provider = %kind, tenant = %tenant, reason = "unknown account", "inbound refused");
        return Ok(InboundOutcome::UnknownAccount);
    }
    let Some(to) = our_number(&cfg, account, &msg.to) else {
        tracing::warn!(
            security = "inbound_refused",
            provider = %kind,
            tenant = %tenant,
            to = %mask_number(&msg.to),
            from = %mask_number(&msg.from),
            reason = "destination is not a sender of this account",
            "inbound refused; nothing stored"
        );
        return Ok(InboundOutcome::UnknownNumber);
    };
    if let Some(existing) = inbound::find_inbound_ref(ms, tenant, account, &msg.provider_message_id).await? {
        tracing::info!(inbound_id = %existing, provider = %kind, tenant = %tenant, "inbound message already stored (provider retry)");
        // The first delivery may have stored the record and then failed to queue its
        // media job; the provider's retry queues it again (the job is idempotent).
        if !msg.media.is_empty() && inbound::get_inbound(ms, tenant, &existing).await?.is_some_and(|r| r.media_pending) {
            queue_media_job(deps, tenant, &existing).await?;
        }
        return Ok(InboundOutcome::Duplicate(existing));
    }

    let id = inbound::new_inbound_id();
    let received_at = iso8601(now);
    let from_e164 = E164::parse(&msg.from, Some(&cfg.default_region)).ok();
    let from = from_e164.as_ref().map(|e| e.to_string()).unwrap_or_else(|| msg.from.trim().to_string());

    // Media are fetched by the inbound-media job, after the provider has its answer.
    let media: Vec<InboundMediaRecord> = msg
        .media
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut rec = InboundMediaRecord::pending(i, item.url.clone(), item.content_type.clone());
            if i >= inbound::MAX_INBOUND_MEDIA {
                rec.error = Some("skipped_too_many_items".into());
            }
            rec
        })
        .collect();
    let media_pending = media.iter().any(InboundMediaRecord::is_pending);

    // Keywords: STOP/START change the opt-out list (the latest keyword by time wins).
    let keyword = inbound::classify_keyword(&msg.text);
    let keyword_at = msg.received_at.as_deref().and_then(parse_iso8601).map(iso8601).unwrap_or_else(|| received_at.clone());
    let opt_out_action = match (keyword, &from_e164) {
        (Some(k @ (Keyword::Stop | Keyword::Start)), Some(number)) => {
            let r = OptOutRecord {
                tenant: tenant.clone(),
                number: number.clone(),
                opted_out: k == Keyword::Stop,
                keyword: msg.text.trim().chars().take(32).collect(),
                at: keyword_at,
                inbound_id: Some(id.clone()),
            };
            let applied = inbound::set_opt_out(ms, &r).await?;
            Some(match (applied, k) {
                (false, _) => "superseded_by_later_keyword",
                (true, Keyword::Stop) => "opted_out",
                (true, _) => "opted_in",
            })
        }
        (Some(Keyword::Stop | Keyword::Start), None) => Some("not_applied_sender_not_e164"),
        _ => None,
    }
    .map(str::to_string);

    let in_reply_to = match &from_e164 {
        Some(n) => inbound::last_outbound(ms, tenant, n).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "last outbound lookup failed; storing the inbound message unlinked");
            None
        }),
        None => None,
    };

    let record = InboundRecord {
        id: id.clone(),
        tenant: tenant.clone(),
        provider: kind,
        provider_account: account.to_string(),
        provider_message_id: msg.provider_message_id.clone(),
        from_is_e164: from_e164.is_some(),
        from,
        to,
        text_sha256: hex::encode(Sha256::digest(msg.text.as_bytes())),
        text: msg.text,
        media,
        media_pending,
        keyword,
        opt_out_action,
        in_reply_to,
        received_at,
        provider_received_at: msg.received_at,
        provider_metadata: msg.provider_metadata,
    };
    let held = deps.store.tenant_held(tenant).await?;
    match inbound::put_inbound(ms, &record, media::retention_ttl(&cfg, held, now), now).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            // A concurrent delivery of the same provider message won the race.
            let existing = inbound::find_inbound_ref(ms, tenant, account, &record.provider_message_id).await?.unwrap_or_default();
            return Ok(InboundOutcome::Duplicate(existing));
        }
        Err(e) => return Err(e),
    }
    tracing::info!(
        inbound_id = %record.id,
        tenant = %tenant,
        provider = %kind,
        from = %mask_number(&record.from),
        media = record.media.len(),
        keyword = ?record.keyword,
        in_reply_to = ?record.in_reply_to,
        "inbound message stored"
    );
    if record.media_pending {
        // Failing here answers 503: the provider retries, finds the record stored
        // and queues the job again (the duplicate path above).
        queue_media_job(deps, &record.tenant, &record.id).await?;
    } else {
        enqueue_callback(deps, &cfg, &record).await;
    }
    if record.keyword == Some(Keyword::Help) {
        send_help_reply(deps, &cfg, &record).await;
    }
    Ok(InboundOutcome::Stored(Box::new(record)))
}

/// Answers HELP with the tenant's configured text, from the number the citizen
/// texted, through the normal pipeline (routing, gates, retries, history, audit).
/// Carriers require HELP answers even to opted-out numbers, so no opt-out check; the
/// idempotency key ties the reply to the inbound id, so a provider's retry of the
/// inbound webhook never sends a second reply.
async fn send_help_reply(deps: &Deps, cfg: &TenantConfig, record: &InboundRecord) {
    use crate::domain::{encoding, ContentCategory, IdempotencyKey, MessageKind, SenderId, E164};
    let (Ok(to), Ok(from)) = (E164::parse(&record.from, None), SenderId::parse(&record.to)) else {
        tracing::warn!(inbound_id = %record.id, "HELP from a number we cannot reply to; no reply sent");
        return;
    };
    let body = inbound::help_text(cfg);
    let info = encoding::analyse(&body);
    let v = super::api::ValidSubmit { to, from: Some(from), body, category: ContentCategory::general(), kind: MessageKind::Sms, info, smart_replaced: 0 };
    let Ok(key) = IdempotencyKey::parse(format!("help-reply-{}", record.id)) else { return };
    let operator = crate::domain::message::OperatorContext {
        key_id: None,
        operator_id: Some("system:help-reply".into()),
        reason: Some(format!("automatic reply to HELP ({})", record.id)),
    };
    let reason = Some("automatic HELP reply (sent even to opted-out numbers, as carriers require)".to_string());
    match super::api::accept(deps, cfg, v, Vec::new(), operator, reason, Some((&key, "help-reply")), deps.clock.now()).await {
        Ok(super::api::Accepted::Created(m)) => tracing::info!(inbound_id = %record.id, message_id = %m.id, "HELP answered"),
        Ok(super::api::Accepted::Existing { .. }) => {}
        Err(e) => tracing::warn!(inbound_id = %record.id, code = %e.code, "HELP reply could not be queued"),
    }
}

async fn queue_media_job(deps: &Deps, tenant: &TenantId, inbound_id: &str) -> Result<(), StoreError> {
    let job = crate::queue::InboundMediaJob { tenant: tenant.clone(), inbound_id: inbound_id.to_string() };
    deps.queues.send(&deps.cfg.inbound_media_queue_url, &job, 0).await.map_err(|e| {
        tracing::warn!(inbound_id = %inbound_id, error = %e, "inbound media job could not be queued; the provider's retry queues it");
        StoreError::Unavailable(e.to_string())
    })
}

/// The JSON a tenant receives for an inbound message (signed like status callbacks).
/// Media are described (hash, size, types) but not linked: fetch them through
/// `GET /v1/inbound/{id}`, which hands out short-lived URLs.
pub fn inbound_body(r: &InboundRecord, cfg: &TenantConfig, now: crate::time::Instant) -> String {
    let media: Vec<_> = r
        .media
        .iter()
        .map(|m| json!({"index": m.index, "sha256": m.sha256, "size": m.size, "sniffed_type": m.sniffed_type, "declared_type": m.declared_type, "error": m.error}))
        .collect();
    let mut body = json!({
        "type": "message.inbound",
        "id": format!("evt_{}", ulid::Ulid::new()),
        "occurred_at": iso8601(now),
        "inbound": {
            "id": r.id,
            "tenant": r.tenant,
            "from": r.from,
            "to": r.to,
            "text": r.text,
            "media": media,
            "keyword": r.keyword,
            "opt_out_action": r.opt_out_action,
            "in_reply_to": r.in_reply_to,
            "provider": r.provider,
            "provider_account": r.provider_account,
            "provider_message_id": r.provider_message_id,
            "received_at": r.received_at,
        }
    });
    if r.keyword == Some(Keyword::Help) {
        // The reply is sent automatically (a message from `to` back to `from`); the
        // text is included so the tenant's systems see what was answered.
        body["help_text"] = json!(inbound::help_text(cfg));
    }
    body.to_string()
}

/// Queues the tenant's inbound callback (at once without media, else when the
/// inbound-media job has settled every item).
pub(super) async fn enqueue_callback(deps: &Deps, cfg: &TenantConfig, r: &InboundRecord) {
    if deps.cfg.tenant_callback_queue_url.is_empty() || cfg.callback.is_none() {
        return;
    }
    // `message_id` is the linked outbound message: the retry function records each
    // delivery attempt in that message's history (none when unlinked).
    let job = TenantCallbackJob { tenant: r.tenant.clone(), message_id: r.in_reply_to, body: inbound_body(r, cfg, deps.clock.now()), attempt: 1 };
    if let Err(e) = deps.queues.send(&deps.cfg.tenant_callback_queue_url, &job, 0).await {
        tracing::warn!(inbound_id = %r.id, error = %e, "inbound tenant callback could not be queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_must_be_a_sender_of_that_account() {
        let cfg: TenantConfig = serde_json::from_value(json!({
            "tenant": "acme", "default_region": "US",
            "providers": [{"id": "a", "kind": "sandbox", "secret_id": "dispatch/acme/sandbox/a"}, {"id": "b", "kind": "sandbox", "secret_id": "dispatch/acme/sandbox/b"}],
            "senders": [{"sender": "+12015550100", "provider": "a"}, {"sender": "12345", "provider": "a"}, {"sender": "+12015550111", "provider": "b"}],
            "routing": [{"name": "all", "providers": ["a"]}],
        }))
        .unwrap();
        assert_eq!(our_number(&cfg, "a", "+1 (201) 555-0100").as_deref(), Some("+12015550100"));
        assert_eq!(our_number(&cfg, "a", "2015550100").as_deref(), Some("+12015550100"));
        assert_eq!(our_number(&cfg, "a", "12345").as_deref(), Some("12345"));
        assert_eq!(our_number(&cfg, "a", "+12015550111"), None, "another account's sender");
        assert_eq!(our_number(&cfg, "b", "+12015550100"), None);
        assert_eq!(our_number(&cfg, "a", "garbage"), None);
    }
}
