//! The `webhook` function (Lambda function URL): provider callbacks arrive at
//! `/webhooks/{provider}/{tenant}/{provider_account}`; each is verified with that
//! provider's scheme and the tenant's credentials, checked against replays, parsed
//! and applied with conditional writes.
//!
//! Answers: 200 accepted (also for duplicates and ignorable events), 401 not
//! authentic or replayed, 404 unknown tenant/account (or inbound to an account that is
//! disabled; its receipts are still recorded),
//! 400 authentic but unparseable, 503 our dependencies are down (providers retry).

use super::Deps;
use crate::audit::{AuditAction, NewAuditEvent};
use crate::domain::message::EventSource;
use crate::domain::{MessageId, ProviderMessageId, TenantId};
use crate::error::StoreError;
use crate::metrics::{self, Dim, Metric};
use crate::providers::registry::adapter;
use crate::providers::{Callback, ProviderKind, StatusUpdate};
use crate::signatures::WebhookRequest;
use crate::store::{Change, TransitionOutcome};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

/// Replay keys are remembered a little longer than the widest timestamp tolerance.
const REPLAY_WINDOW_SECS: i64 = 600;

fn respond(status: u16, code: &str, message: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(serde_json::json!({"code": code, "message": message}).to_string()))
        .expect("static response parts are valid")
}

/// The URL exactly as the provider requested it: function URLs always use https and
/// the Host header the provider sent.
pub fn request_url(req: &Request) -> String {
    let uri = req.uri();
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = req.headers().get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("https");
    format!("{proto}://{host}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}

pub fn to_webhook_request(req: &Request) -> WebhookRequest {
    let body = match req.body() {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    WebhookRequest {
        method: req.method().as_str().to_string(),
        url: request_url(req),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        body,
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let wreq = to_webhook_request(&req);
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ["webhooks", kind, tenant, account] = parts.as_slice() else {
        return respond(404, "no_such_route", "Callbacks go to /webhooks/{provider}/{tenant}/{account}.");
    };
    let (Some(kind), Ok(tenant)) = (ProviderKind::parse(kind), TenantId::parse(*tenant)) else {
        return respond(404, "no_such_route", "Unknown provider or tenant.");
    };
    let message_hint = wreq
        .query_params()
        .into_iter()
        .find(|(k, _)| k == "m")
        .and_then(|(_, v)| v.parse::<MessageId>().ok());
    match handle_verified(deps, kind, &tenant, account, message_hint, &wreq).await {
        Ok(resp) => resp,
        Err(StoreError::Unavailable(_)) | Err(StoreError::Conflict) => respond(503, "temporarily_unavailable", "Try again later."),
        Err(_) => respond(500, "internal_error", "Callback could not be processed."),
    }
}

async fn handle_verified(
    deps: &Deps,
    kind: ProviderKind,
    tenant: &TenantId,
    account: &str,
    message_hint: Option<MessageId>,
    wreq: &WebhookRequest,
) -> Result<Response<Body>, StoreError> {
    let now = deps.clock.now();
    // Fail closed: the account must belong to this tenant and be of this provider
    // kind, or nobody's secret is even looked at.
    let cfg = deps.tenant(tenant).await?;
    let account_cfg = cfg.as_ref().and_then(|c| c.provider(account)).filter(|p| p.kind == kind);
    let (Some(_cfg), Some(tp)) = (cfg.as_ref(), account_cfg) else {
        tracing::warn!(security = "callback_rejected", provider = %kind, tenant = %tenant, reason = "unknown account", "callback refused");
        rejected(kind, "unknown_account");
        return Ok(respond(404, "unknown_account", "No such provider account for this tenant."));
    };
    // An account the tenant disabled (or a provider taken out of the deployment) sends
    // nothing new, but receipts for what it already carried are still verified with
    // its own secret and recorded: otherwise those messages would expire as
    // "delivery unknown". Inbound traffic to it stays refused.
    let accepting_new = tp.enabled && deps.cfg.enabled_providers.contains(&kind);
    let creds = match deps.secrets.credentials(tenant, kind, &tp.secret_id).await {
        Ok(c) => c,
        Err(e) if e.is_transient() => return Err(StoreError::Unavailable(e.to_string())),
        Err(e) => {
            tracing::error!(provider = %kind, tenant = %tenant, error = %e, "callback credentials unusable");
            return Ok(respond(503, "credentials_unusable", "This account's credentials are not usable."));
        }
    };
    let a = adapter(kind);
    metrics::count(Metric::CallbacksReceived, &[(Dim::Provider, kind.as_str())]);
    if let Err(e) = a.verify_callback(&creds, wreq, now.timestamp()) {
        tracing::warn!(security = "callback_rejected", provider = %kind, tenant = %tenant, reason = e.code(), detail = %e, "forged or malformed callback refused");
        rejected(kind, e.code());
        deps.audit(tenant, NewAuditEvent::new(AuditAction::CallbackRejected).provider(account.to_string()).detail(format!("{kind}: {e}"))).await;
        return Ok(respond(401, e.code(), "Callback signature not valid."));
    }
    let replay = a.replay_key(wreq).map(|key| format!("{kind}#{tenant}#{account}#{}", hex::encode(Sha256::digest(key.as_bytes()))));
    if let Some(key) = &replay
        && !deps.store.claim_once(key, now.timestamp() + REPLAY_WINDOW_SECS).await? {
            tracing::warn!(security = "callback_replayed", provider = %kind, tenant = %tenant, "replayed callback refused");
            rejected(kind, "replayed");
            return Ok(respond(401, "replayed", "This callback was already received."));
        }
    let parsed = match a.parse_callback(wreq) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(provider = %kind, tenant = %tenant, error = %e, "authentic but unparseable callback");
            return Ok(respond(400, "malformed_callback", "The callback could not be parsed."));
        }
    };
    if !accepting_new && matches!(parsed, Callback::Inbound(_)) {
        if let Some(key) = &replay {
            let _ = deps.store.release_once(key).await;
        }
        tracing::warn!(security = "callback_rejected", provider = %kind, tenant = %tenant, reason = "account disabled", "inbound to a disabled account refused");
        rejected(kind, "account_disabled");
        return Ok(respond(404, "unknown_account", "No such provider account for this tenant."));
    }
    let what = match &parsed {
        Callback::Status(u) => format!("{kind}: {} status update(s)", u.len()),
        Callback::Inbound(_) => format!("{kind}: inbound message"),
        Callback::Ignored(why) => format!("{kind}: ignored ({why})"),
    };
    deps.audit(tenant, NewAuditEvent::new(AuditAction::CallbackReceived).provider(account.to_string()).detail(what)).await;
    let result = match parsed {
        Callback::Status(updates) => {
            // The id in our callback URL names one message. Trust it only where the
            // provider's signature covers the URL (Twilio, Plivo) — elsewhere a genuine
            // body could be replayed against another message's URL — and only for a
            // single-update callback (a Bandwidth array may cover several messages).
            let url_is_signed = matches!(kind, ProviderKind::Twilio | ProviderKind::Plivo);
            let hint = if updates.len() == 1 && url_is_signed { message_hint } else { None };
            let mut r = Ok(());
            for u in updates {
                if let Err(e) = apply_status(deps, kind, tenant, account, hint, &u).await {
                    r = Err(e);
                    break;
                }
            }
            r
        }
        Callback::Inbound(inbound) => match super::inbound_webhook::on_callback(deps, &deps.media, kind, tenant, account, inbound).await {
            Ok(Some(refused)) => return Ok(refused),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
        Callback::Ignored(why) => {
            tracing::debug!(provider = %kind, reason = %why, "callback ignored");
            Ok(())
        }
    };
    if let Err(e) = result {
        // Let the provider's retry through: forget its replay key, since nothing was applied.
        if let Some(key) = &replay {
            let _ = deps.store.release_once(key).await;
        }
        return Err(e);
    }
    Ok(respond(200, "ok", "Recorded."))
}

/// Counts a refused callback by provider kind and reason code.
fn rejected(kind: ProviderKind, reason: &str) {
    metrics::count(Metric::CallbacksRejected, &[(Dim::Provider, kind.as_str()), (Dim::Reason, metrics::reason(reason))]);
}

async fn apply_status(
    deps: &Deps,
    kind: ProviderKind,
    tenant: &TenantId,
    account: &str,
    hint: Option<MessageId>,
    u: &StatusUpdate,
) -> Result<(), StoreError> {
    // Our id from the callback URL, else the provider's echo of our client reference,
    // else the (account, provider message id) lookup written when the send succeeded.
    let id = match u.client_ref.as_deref().and_then(|r| r.parse().ok()).or(hint) {
        Some(id) => Some(id),
        None => lookup(deps, account, &u.provider_message_id, tenant).await?,
    };
    let Some(id) = id else {
        // Most likely the receipt overtook our own `sent` record (which writes the
        // lookup): answer 503 so the provider retries shortly, rather than lose it.
        tracing::warn!(provider = %kind, "status callback for a message not (yet) known; asking the provider to retry");
        return Err(StoreError::Unavailable("message not yet known".into()));
    };
    let Some(m) = deps.store.get_message(id).await? else { return Ok(()) };
    if &m.tenant != tenant {
        // An authentic callback from tenant A's account can never touch tenant B's message.
        tracing::warn!(security = "cross_tenant_callback", provider = %kind, "callback names another tenant's message; ignored");
        return Ok(());
    }
    let description = match (&u.description, u.part) {
        (Some(d), Some((p, t))) => Some(format!("{d} (part {p} of {t})")),
        (None, Some((p, t))) => Some(format!("part {p} of {t}")),
        (d, None) => d.clone(),
    };
    let mut change = Change::to(u.status, EventSource::Webhook)
        .provider(account.to_string())
        .provider_status(u.provider_status.clone())
        .error_code(u.error_code.clone());
    if let Some(d) = description {
        change = change.reason(d);
    }
    match deps.apply(id, change).await? {
        TransitionOutcome::Applied(m) => tracing::info!(message_id = %m.id, status = %m.status, provider = %kind, "status updated"),
        TransitionOutcome::Recorded { current, verdict } => {
            metrics::count(Metric::CallbacksDuplicate, &[(Dim::Provider, kind.as_str())]);
            tracing::info!(message_id = %current.id, status = %current.status, proposed = %u.status, verdict = ?verdict, "late or duplicate receipt recorded, state unchanged")
        }
    }
    Ok(())
}

async fn lookup(deps: &Deps, account: &str, pmid: &ProviderMessageId, tenant: &TenantId) -> Result<Option<MessageId>, StoreError> {
    Ok(deps.store.find_by_provider_id(account, pmid).await?.filter(|(_, t)| t == tenant).map(|(id, _)| id))
}
