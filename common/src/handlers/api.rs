//! The HTTP API (API Gateway HTTP API, payload v2) served by the `submit` function.
//!
//! - `POST /v1/messages` — submit (202, or the first message again for a repeated
//!   `Idempotency-Key`, or 409 when the key is reused with a different request)
//! - `GET  /v1/messages/{id}` — status and full history
//! - `GET|PUT /v1/admin/config` — the caller's tenant configuration (admin)
//! - `POST /v1/admin/keys` — create an API key for the caller's tenant (admin);
//!   `GET /v1/admin/keys` lists them, `DELETE /v1/admin/keys/{key_id}` revokes one
//! - `POST /v1/admin/route/explain` — routing decision and gate verdicts, no send (admin)
//! - `POST|DELETE /v1/messages/{id}/legal-hold` — set or lift a hold (admin, auditor);
//!   `PUT /v1/admin/legal-hold {"on": bool, "reason": "..."}` — tenant-wide hold, its
//!   own record and resumable job (admin); `GET` shows it and the job's progress
//! - `GET /v1/audit` (query), `GET /v1/audit/export` (JSON lines), `GET /v1/audit/verify`
//!   — the tenant's tamper-evident audit trail (auditor, admin)
//! - `GET  /v1/escalations`, `POST /v1/escalations/{message_id}/ack` — missed delivery
//!   deadlines for operators to act on

use crate::metrics::{self, Dim, Metric};
use super::Deps;
use crate::audit::{AuditAction, AuditFilter, NewAuditEvent};
use crate::auth::{authenticate, Caller, Role};
use crate::domain::message::{EventSource, Message, MessageEvent, OperatorContext};
use crate::domain::{encoding, ContentCategory, DeliveryStatus, IdempotencyKey, MessageId, MessageKind, SenderId, E164};
use crate::error::{ApiError, StoreError};
use crate::queue::RouteJob;
use crate::store::CreateOutcome;
use crate::tenant::TenantConfig;
use crate::time::{iso8601, Instant};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The largest accepted request body; a 10-segment UCS-2 text is far below it.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// `Retry-After` on a 503: long enough for the SDK's own retries to have given up on a
/// real outage, short enough for an emergency workflow.
const RETRY_AFTER_SECS: &str = "2";

/// How long a freshly accepted message may wait before the sweep re-queues it.
pub const ACCEPTED_GRACE_SECS: i64 = 60;

/// Every route the API serves (this router, [`super::media_api`] and
/// [`super::inbound_webhook::dispatch_api`]) as `(method, path template)`. It answers the
/// `Allow` header of a 405, and the OpenAPI test compares it with docs/openapi.yaml and
/// with the routers' match arms.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages/{id}"),
    ("DELETE", "/v1/messages/{id}"),
    ("POST", "/v1/messages/{id}/legal-hold"),
    ("DELETE", "/v1/messages/{id}/legal-hold"),
    ("GET", "/v1/admin/config"),
    ("PUT", "/v1/admin/config"),
    ("GET", "/v1/admin/keys"),
    ("POST", "/v1/admin/keys"),
    ("DELETE", "/v1/admin/keys/{key_id}"),
    ("POST", "/v1/admin/route/explain"),
    ("GET", "/v1/admin/legal-hold"),
    ("PUT", "/v1/admin/legal-hold"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/escalations"),
    ("POST", "/v1/escalations/{message_id}/ack"),
    ("POST", "/v1/media"),
    ("GET", "/v1/media/{id}"),
    ("POST", "/v1/media/{id}/complete"),
    ("GET", "/v1/inbound"),
    ("GET", "/v1/inbound/{id}"),
];

/// The methods [`ROUTES`] serves on `path` (RFC 9110: a 405 must list them in `Allow`).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    ROUTES
        .iter()
        .filter(|(_, t)| {
            let tsegs: Vec<&str> = t.split('/').filter(|s| !s.is_empty()).collect();
            tsegs.len() == segs.len() && tsegs.iter().zip(&segs).all(|(t, s)| t.starts_with('{') || t == s)
        })
        .map(|(m, _)| *m)
        .collect()
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let now = deps.clock.now();
    match dispatch(deps, &req, now).await {
        Ok((status, body)) => json_response(status, &body),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(code = %e.code, "request failed");
            }
            let mut resp = json_response_raw(e.status, e.to_json());
            if e.status == 405 {
                let allow = allowed_methods(req.uri().path()).join(", ");
                if let Ok(v) = http::HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(http::header::ALLOW, v);
                }
            }
            if e.status == 503 {
                // A dependency outage: tell clients when to retry (with the same key).
                resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            resp
        }
    }
}

fn json_response(status: u16, v: &serde_json::Value) -> Response<Body> {
    json_response_raw(status, v.to_string())
}

fn json_response_raw(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .expect("static response parts are valid")
}

async fn dispatch(deps: &Deps, req: &Request, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().as_str().to_string();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Authenticate before looking at the route, so unauthenticated callers learn nothing.
    let caller = authenticate(&deps.store, auth, now).await?;
    if let Some(r) = super::media_api::dispatch(deps, &deps.media, req, &caller, now).await {
        return r;
    }
    if let Some(r) = super::inbound_api::dispatch_api(deps, &deps.media, req, &caller).await {
        return r;
    }
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "messages"]) => submit(deps, req, &caller, now).await,
        ("GET", ["v1", "messages", id]) => get_message(deps, &caller, id).await,
        ("DELETE", ["v1", "messages", id]) => cancel_message(deps, req, &caller, id).await,
        ("GET", ["v1", "admin", "config"]) => {
            require(caller.role.can_admin(), "admin")?;
            let cfg = deps.store.get_tenant_config(&caller.tenant).await.map_err(store_err)?;
            Ok((200, serde_json::to_value(cfg).unwrap_or_default()))
        }
        ("PUT", ["v1", "admin", "config"]) => put_config(deps, req, &caller, now).await,
        ("POST", ["v1", "admin", "keys"]) => create_key(deps, req, &caller, now).await,
        ("GET", ["v1", "admin", "keys"]) => {
            require(caller.role.can_admin(), "admin")?;
            let keys = deps.store.list_api_keys(&caller.tenant).await.map_err(store_err)?;
            Ok((200, json!({"keys": keys})))
        }
        ("DELETE", ["v1", "admin", "keys", key_id]) => {
            require(caller.role.can_admin(), "admin")?;
            let rec = deps.store.revoke_api_key(&caller.tenant, key_id).await.map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("key"),
                other => store_err(other),
            })?;
            deps.audit(&caller.tenant, who(&caller, NewAuditEvent::new(AuditAction::KeyRevoked)).detail(rec.key_id.clone())).await;
            Ok((200, serde_json::to_value(rec).unwrap_or_default()))
        }
        ("POST", ["v1", "admin", "route", "explain"]) => explain(deps, req, &caller).await,
        ("POST", ["v1", "messages", id, "legal-hold"]) | ("DELETE", ["v1", "messages", id, "legal-hold"]) => {
            require(caller.role.can_admin() || caller.role == Role::Auditor, "admin or auditor")?;
            let on = method == "POST";
            let reason = hold_reason(req)?;
            let Ok(id) = id.parse::<MessageId>() else { return Err(ApiError::not_found("message")) };
            let m = super::retention::set_message_hold(deps, &caller.tenant, id, on, &reason).await.map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("message"),
                other => store_err(other),
            })?;
            let action = if on { AuditAction::LegalHoldSet } else { AuditAction::LegalHoldLifted };
            deps.audit(&caller.tenant, who(&caller, NewAuditEvent::new(action)).message_id(m.id).category(m.category.clone()).detail(reason)).await;
            Ok((200, json!({"id": m.id, "legal_hold": m.legal_hold, "legal_hold_reason": m.legal_hold_reason})))
        }
        ("GET", ["v1", "admin", "legal-hold"]) => {
            require(caller.role.can_admin() || caller.role == Role::Auditor, "admin or auditor")?;
            let hold = deps.store.get_tenant_hold(&caller.tenant, true).await.map_err(store_err)?;
            Ok((200, hold_view(hold.as_ref())))
        }
        ("PUT", ["v1", "admin", "legal-hold"]) => {
            require(caller.role.can_admin(), "admin")?;
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Hold {
                on: bool,
                reason: Option<String>,
            }
            let h: Hold = parse_json(req)?;
            let reason = h.reason.as_deref().map(str::trim).unwrap_or_default();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(ApiError::unprocessable("invalid_reason", "Give a reason (1-500 characters) for the legal hold change.").field("reason"));
            }
            if deps.store.get_tenant_config(&caller.tenant).await.map_err(store_err)?.is_none() {
                return Err(ApiError::unprocessable("tenant_not_configured", "Your tenant has no configuration yet."));
            }
            let hold = super::retention::set_tenant_hold(deps, &caller.tenant, h.on, reason, &caller.key_id).await.map_err(store_err)?;
            let action = if h.on { AuditAction::LegalHoldSet } else { AuditAction::LegalHoldLifted };
            deps.audit(&caller.tenant, who(&caller, NewAuditEvent::new(action)).detail(format!("tenant-wide: {reason}"))).await;
            // A first slice now; the sweep finishes a large tenant's job, resumably.
            let hold = super::retention::advance_hold(deps, hold, HOLD_SLICE).await.map_err(store_err)?;
            let status = if hold.running() { 202 } else { 200 };
            Ok((status, hold_view(Some(&hold))))
        }
        ("GET", ["v1", "audit"]) | ("GET", ["v1", "audit", "export"]) | ("GET", ["v1", "audit", "verify"]) => {
            require(caller.role == Role::Auditor || caller.role.can_admin(), "auditor or admin")?;
            let log = deps.audit_log().await.map_err(|_| ApiError::unavailable())?;
            if segments.len() == 3 && segments[2] == "verify" {
                let full = match query_param(req, "full").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(_) => return Err(ApiError::bad_request("invalid_full", "full must be true or false.").field("full")),
                };
                return match log.verify_within(&caller.tenant, full, AUDIT_VERIFY_BUDGET, now).await {
                    Ok(r) => Ok((
                        200,
                        json!({"valid": true, "events": r.verified_through, "head_seq": r.head_seq, "complete": r.complete, "full": r.full, "started_after": r.started_after}),
                    )),
                    Err(e) => match e.chain_break() {
                        Some(b) => Ok((200, json!({"valid": false, "first_broken_seq": b.seq, "reason": b.reason.to_string()}))),
                        None => Err(ApiError::unavailable()),
                    },
                };
            }
            let filter = audit_filter(req, log)?;
            let limit = audit_limit(query_param(req, "limit").as_deref())?;
            let cursor = match query_param(req, "cursor") {
                None => None,
                Some(c) => Some(
                    crate::audit::AuditCursor::decode_for(&c, &caller.tenant, &filter)
                        .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API returned for this query.").field("cursor"))?,
                ),
            };
            let (events, next) = log
                .query_page(&caller.tenant, &filter, limit, cursor.as_ref(), AUDIT_MAX_ITEMS_PER_CALL)
                .await
                .map_err(|_| ApiError::unavailable())?;
            let next_cursor = next.map(|c| c.encode());
            if segments.len() == 3 {
                let lines: Vec<String> = events.iter().filter_map(|e| serde_json::to_string(e).ok()).collect();
                let more = if next_cursor.is_some() { "; more remain" } else { "" };
                deps.audit(&caller.tenant, who(&caller, NewAuditEvent::new(AuditAction::AuditExported)).detail(format!("{} events exported{more}", lines.len()))).await;
                return Ok((200, json!({"format": "jsonl", "count": lines.len(), "jsonl": lines.join("\n"), "complete": next_cursor.is_none(), "next_cursor": next_cursor})));
            }
            Ok((200, json!({"events": events, "has_more": next_cursor.is_some(), "next_cursor": next_cursor})))
        }
        ("GET", ["v1", "escalations"]) => {
            require(caller.role.can_operate() || caller.role == Role::Auditor, "operator, auditor or admin")?;
            let list = deps.store.list_escalations(&caller.tenant).await.map_err(store_err)?;
            let open: Vec<_> = list.iter().filter(|e| e.acknowledged_at.is_none()).collect();
            Ok((200, json!({"open": open, "all": list})))
        }
        ("POST", ["v1", "escalations", id, "ack"]) => {
            require(caller.role.can_operate(), "operator or admin")?;
            let Ok(id) = id.parse::<MessageId>() else { return Err(ApiError::not_found("escalation")) };
            let e = deps.store.ack_escalation(&caller.tenant, id, &caller.key_id, now).await.map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("escalation"),
                StoreError::Conflict => ApiError::conflict("already_acknowledged", "This escalation was already acknowledged."),
                other => store_err(other),
            })?;
            deps.audit(&caller.tenant, who(&caller, NewAuditEvent::new(AuditAction::EscalationAcknowledged)).message_id(id).category(crate::domain::ContentCategory::parse(e.category.as_str()).unwrap_or_else(|_| crate::domain::ContentCategory::general()))).await;
            let category = crate::domain::ContentCategory::parse(e.category.as_str()).map(|c| metrics::category(&c)).unwrap_or("other");
            metrics::count(Metric::EscalationsAcknowledged, &[(Dim::Category, category)]);
            Ok((200, serde_json::to_value(e).unwrap_or_default()))
        }
        (_, ["v1", "messages"]) | (_, ["v1", "messages", ..]) | (_, ["v1", "admin", ..]) | (_, ["v1", "escalations", ..]) | (_, ["v1", "audit", ..]) => {
            Err(ApiError::new(405, "method_not_allowed", format!("{method} is not supported on {path}.")))
        }
        _ => Err(ApiError::new(404, "no_such_route", format!("There is no endpoint at {path}."))),
    }
}

/// Verification stops after this and reports how far it got (the checkpoint keeps the
/// progress), well inside the API's 30 s limit.
const AUDIT_VERIFY_BUDGET: std::time::Duration = std::time::Duration::from_secs(15);
/// Stored audit items one query or export call reads at most, so a sparse filter over
/// a long chain still answers in time (with a cursor to continue).
const AUDIT_MAX_ITEMS_PER_CALL: usize = 20_000;

/// How long the API spends applying a tenant hold before answering 202 (the sweep
/// continues the job).
const HOLD_SLICE: std::time::Duration = std::time::Duration::from_secs(10);

/// The tenant hold as the API shows it (`on: false` and no job when never set).
fn hold_view(h: Option<&crate::store::hold::TenantHold>) -> serde_json::Value {
    match h {
        None => json!({"on": false, "job": null}),
        Some(h) => json!({
            "on": h.on,
            "reason": h.reason,
            "changed_by": h.changed_by,
            "changed_at": h.changed_at,
            "job": {
                "state": if h.running() { "running" } else { "done" },
                "phase": h.job.phase,
                "records_changed": h.job.changed,
                "started_at": h.job.started_at,
                "finished_at": h.job.finished_at,
            },
        }),
    }
}

/// `DELETE /v1/messages/{id}`: withdraws a message not yet handed to a provider
/// (`canceled`, terminal, with its history, tenant callback and audit event). Once a
/// provider call is under way or done it is too late: `409 not_cancelable`.
async fn cancel_message(deps: &Deps, req: &Request, caller: &Caller, id: &str) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_operate(), "operator or admin")?;
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Cancel {
        reason: Option<String>,
    }
    let c: Cancel = if body_bytes(req)?.is_empty() { Cancel::default() } else { parse_json(req)? };
    if c.reason.as_deref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::unprocessable("invalid_reason", "A cancel reason is at most 500 characters.").field("reason"));
    }
    let Ok(id) = id.parse::<MessageId>() else { return Err(ApiError::not_found("message")) };
    let Some(m) = deps.store.get_message(id).await.map_err(store_err)? else { return Err(ApiError::not_found("message")) };
    if m.tenant != caller.tenant {
        return Err(ApiError::not_found("message"));
    }
    let reason = match c.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("canceled by {}: {r}", caller.key_id),
        None => format!("canceled by {}", caller.key_id),
    };
    match deps.apply(id, crate::store::Change::to(DeliveryStatus::Canceled, EventSource::Operator).reason(reason)).await.map_err(store_err)? {
        crate::store::TransitionOutcome::Applied(m) => Ok((200, json!({"id": m.id, "status": m.status}))),
        crate::store::TransitionOutcome::Recorded { current, .. } if current.status == DeliveryStatus::Canceled => {
            Ok((200, json!({"id": current.id, "status": current.status})))
        }
        crate::store::TransitionOutcome::Recorded { current, .. } => Err(ApiError::conflict(
            "not_cancelable",
            format!("This message is {} and was already handed to a provider (or finished); it can no longer be canceled.", current.status),
        )),
    }
}

/// `{"reason": "..."}` for a legal hold change (required: holds are governance acts).
fn hold_reason(req: &Request) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reason {
        reason: String,
    }
    let r: Reason = parse_json(req)?;
    let reason = r.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::unprocessable("invalid_reason", "Give a reason (1-500 characters) for the legal hold change.").field("reason"));
    }
    Ok(reason)
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
}

/// The audit `limit` query parameter: 1-10000, default 1000. Anything else is refused
/// rather than silently replaced (a caller asking for 20000 must not believe it got all).
fn audit_limit(v: Option<&str>) -> Result<usize, ApiError> {
    match v {
        None => Ok(1000),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| ApiError::bad_request("invalid_limit", "limit must be 1-10000.").field("limit")),
    }
}

/// Audit query filters from the query string: `message_id`, `from`, `to` (ISO 8601),
/// `category`, `operator_id`, `to_number` (searched by its keyed hash).
fn audit_filter(req: &Request, log: &crate::audit::AuditLog) -> Result<AuditFilter, ApiError> {
    let time = |name: &str| -> Result<Option<Instant>, ApiError> {
        match query_param(req, name) {
            None => Ok(None),
            Some(v) => crate::time::parse_iso8601(&v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request("invalid_time", format!("{name} must be an ISO 8601 time.")).field(name)),
        }
    };
    let mut f = AuditFilter { from: time("from")?, to: time("to")?, operator_id: query_param(req, "operator_id"), ..Default::default() };
    if let Some(id) = query_param(req, "message_id") {
        f.message_id = Some(id.parse().map_err(|_| ApiError::bad_request("invalid_message_id", "message_id is not a message id.").field("message_id"))?);
    }
    if let Some(c) = query_param(req, "category") {
        f.category = Some(ContentCategory::parse(c).map_err(|e| ApiError::bad_request("unknown_category", e.to_string()).field("category"))?);
    }
    if let Some(n) = query_param(req, "to_number") {
        let e = E164::parse(&n, None).map_err(|e| ApiError::bad_request(e.code(), "to_number must be an E.164 number.").field("to_number"))?;
        f.recipient_hash = Some(log.recipient_hash(e.as_str()));
    }
    Ok(f)
}

/// An audit event attributed to the calling key.
fn who(caller: &Caller, ev: NewAuditEvent) -> NewAuditEvent {
    ev.key_id(caller.key_id.clone())
}

fn require(ok: bool, role: &str) -> Result<(), ApiError> {
    if ok { Ok(()) } else { Err(ApiError::forbidden(format!("This endpoint needs a key with the {role} role."))) }
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) | StoreError::Conflict => ApiError::unavailable(),
        _ => ApiError::internal(),
    }
}

fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let b: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if b.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(413, "body_too_large", format!("Request bodies are limited to {MAX_BODY_BYTES} bytes.")));
    }
    Ok(b)
}

fn parse_json<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, ApiError> {
    let b = body_bytes(req)?;
    if b.is_empty() {
        return Err(ApiError::bad_request("invalid_json", "The request body must be a JSON object."));
    }
    serde_json::from_slice(b).map_err(|e| {
        let field = e.to_string();
        // serde's message names the field and position but (for our types) never a value.
        ApiError::bad_request("invalid_json", format!("The request body is not valid JSON for this endpoint: {field}."))
    })
}

/// `POST /v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub to: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    pub category: String,
    #[serde(default)]
    pub media: Vec<String>,
    #[serde(default)]
    pub operator_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A submit request after every check: what gets stored.
pub struct ValidSubmit {
    pub to: E164,
    pub from: Option<SenderId>,
    pub body: String,
    pub category: ContentCategory,
    pub kind: MessageKind,
    pub info: encoding::SegmentInfo,
    /// Look-alike characters smart encoding replaced (0 when off or none).
    pub smart_replaced: usize,
}

/// Validates a submit against the tenant's rules. Pure, so it is the hot path that
/// benchmarks measure.
pub fn validate_submit(r: &SubmitRequest, tenant: &TenantConfig) -> Result<ValidSubmit, ApiError> {
    let category = ContentCategory::parse(r.category.as_str())
        .ok()
        .filter(|c| tenant.is_known_category(c))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_category",
                "Unknown content category; use emergency_callback, resident_update, evidence_notification, general or one your tenant defines.",
            )
            .field("category")
        })?;
    let to = E164::parse(&r.to, Some(&tenant.default_region)).map_err(|e| {
        ApiError::unprocessable(e.code(), format!("The recipient is not a valid phone number: {e}."))
            .field("to")
    })?;
    // Known before sending: a fixed line can never receive a text. A PSAP calling back
    // a landline caller must phone instead, so say so now rather than fail later.
    if to.number_type().cannot_receive_sms() {
        return Err(ApiError::unprocessable(
            "not_mobile",
            "This number is a fixed line (landline), which cannot receive text messages; phone the person instead.",
        )
        .field("to"));
    }
    if !tenant.delivery.allowed_countries.is_empty() {
        let region = to.region().unwrap_or_default();
        if !tenant.delivery.allowed_countries.iter().any(|c| c.eq_ignore_ascii_case(&region)) {
            return Err(ApiError::unprocessable(
                "destination_not_allowed",
                format!("Your tenant may not send to numbers in {}.", if region.is_empty() { "that region" } else { &region }),
            )
            .field("to"));
        }
    }
    let from = match &r.from {
        None => None,
        Some(f) => Some(SenderId::parse(f).map_err(|e| ApiError::unprocessable("invalid_sender", format!("{e}.")).field("from"))?),
    };
    // A sender the tenant never registered would only be refused later, at routing,
    // after the message was accepted: refuse it now, while the caller can fix it.
    if let Some(f) = &from
        && !tenant.senders.iter().any(|s| &s.sender == f) {
            return Err(ApiError::unprocessable(
                "unknown_sender",
                "This sender is not one of your tenant's registered senders; omit `from` to let routing choose one.",
            )
            .field("from"));
        }
    let mut body = r.body.clone().unwrap_or_default();
    let mut smart_replaced = 0;
    if tenant.delivery.smart_encoding_for(&category) {
        (body, smart_replaced) = encoding::smart_encode(&body);
    }
    if r.media.len() > crate::media::MAX_MEDIA_PER_MESSAGE {
        return Err(ApiError::unprocessable(
            "too_many_media",
            format!("A message may carry at most {} media items.", crate::media::MAX_MEDIA_PER_MESSAGE),
        )
        .field("media"));
    }
    if !r.media.is_empty() && !tenant.delivery.mms_allowed {
        return Err(ApiError::new(403, "mms_not_allowed", "Your tenant's delivery rules do not allow MMS.").field("media"));
    }
    if body.trim().is_empty() && r.media.is_empty() {
        return Err(ApiError::unprocessable("empty_body", "The message body is empty.").field("body"));
    }
    let info = encoding::analyse(&body);
    if info.segments > tenant.delivery.max_segments {
        return Err(ApiError::unprocessable(
            "too_many_segments",
            format!(
                "The body needs {} {} segments; your tenant allows at most {}.",
                info.segments,
                if info.encoding == encoding::Encoding::Gsm7 { "GSM-7" } else { "UCS-2" },
                tenant.delivery.max_segments
            ),
        )
        .field("body"));
    }
    let kind = if r.media.is_empty() { MessageKind::Sms } else { MessageKind::Mms };
    Ok(ValidSubmit { to, from, body, category, kind, info, smart_replaced })
}

async fn submit(deps: &Deps, req: &Request, caller: &Caller, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    let out = submit_checked(deps, req, caller, now).await;
    if let Err(e) = &out
        && (400..500).contains(&e.status) {
            metrics::count(Metric::MessagesRejected, &[(Dim::Reason, metrics::reason(&e.code))]);
        }
    out
}

async fn submit_checked(deps: &Deps, req: &Request, caller: &Caller, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_submit(), "sender, operator or admin")?;
    let idem = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| IdempotencyKey::parse(s).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters.")
                        .field("Idempotency-Key")
                })?,
        ),
    };
    let r: SubmitRequest = parse_json(req)?;
    let tenant = deps.tenant(&caller.tenant).await.map_err(store_err)?.ok_or_else(|| {
        ApiError::unprocessable("tenant_not_configured", "Your tenant has no configuration yet; an admin must set one first.")
    })?;
    let v = validate_submit(&r, &tenant)?;
    deps.media.resolve_for_submit(&caller.tenant, &r.media).await?;
    // Opt-out: refused unless the category is exempt, and an exemption is recorded.
    let exempt = match crate::inbound::check_opt_out(&deps.media, &tenant, &v.category, &v.to).await.map_err(store_err)? {
        crate::inbound::OptOutDecision::Allow => None,
        crate::inbound::OptOutDecision::Exempt(reason) => Some(reason),
        crate::inbound::OptOutDecision::Reject => return Err(crate::inbound::opted_out_error()),
    };
    let request_hash = hex::encode(Sha256::digest(
        json!({"to": v.to.as_str(), "from": v.from.as_ref().map(|f| f.as_str()), "body": v.body, "category": v.category.as_str(), "operator_id": r.operator_id, "reason": r.reason, "media": r.media}).to_string(),
    ));
    let operator = OperatorContext { key_id: Some(caller.key_id.clone()), operator_id: r.operator_id, reason: r.reason };
    let idem = idem.as_ref().map(|k| (k, request_hash.as_str()));
    match accept(deps, &tenant, v, r.media, operator, exempt, idem, now).await? {
        Accepted::Created(m) => Ok((202, accepted_body(&m))),
        Accepted::Existing { message_id, request_hash: first_hash } => {
            if first_hash != request_hash {
                return Err(ApiError::conflict(
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request; use a new key for a new message.",
                )
                .field("Idempotency-Key"));
            }
            let existing = deps.store.get_message(message_id).await.map_err(store_err)?.ok_or_else(ApiError::internal)?;
            Ok((200, accepted_body(&existing)))
        }
    }
}

/// What [`accept`] did.
pub enum Accepted {
    Created(Message),
    /// The idempotency key was used before: the first message and its request hash.
    Existing { message_id: MessageId, request_hash: String },
}

/// Stores a validated message as `accepted` (with its first history event and the
/// idempotency key in one transaction), audits it and queues it for routing. Used by
/// submit and by automatic replies (HELP).
#[allow(clippy::too_many_arguments)]
pub async fn accept(
    deps: &Deps,
    tenant: &TenantConfig,
    v: ValidSubmit,
    media: Vec<String>,
    operator: OperatorContext,
    first_reason: Option<String>,
    idem: Option<(&IdempotencyKey, &str)>,
    now: Instant,
) -> Result<Accepted, ApiError> {
    let smart_note = (v.smart_replaced > 0)
        .then(|| format!("smart encoding replaced {} look-alike character(s) so the text stays GSM-7", v.smart_replaced));
    let id = MessageId::new();
    let validity = tenant.validity_secs(&v.category);
    // Strongly consistent: a message accepted just after a hold was set is held.
    let held = deps.store.tenant_held(&tenant.tenant).await.map_err(store_err)?;
    let m = Message {
        id,
        tenant: tenant.tenant.clone(),
        kind: v.kind,
        category: v.category.clone(),
        to: v.to,
        sender_requested: v.from.is_some(),
        from: v.from,
        body_sha256: hex::encode(Sha256::digest(v.body.as_bytes())),
        body: Some(v.body),
        media,
        encoding: v.info.encoding,
        segments: v.info.segments,
        status: DeliveryStatus::Accepted,
        version: 1,
        provider: None,
        provider_message_id: None,
        attempts: 0,
        provider_attempts: 0,
        failed_providers: Vec::new(),
        priority: tenant.is_life_safety(&v.category),
        reason: None,
        error_code: None,
        operator,
        created_at: iso8601(now),
        updated_at: iso8601(now),
        sent_at: None,
        completed_at: None,
        next_attempt_at: Some(iso8601(now + chrono::Duration::seconds(ACCEPTED_GRACE_SECS))),
        expires_at: iso8601(now + chrono::Duration::seconds(i64::from(validity))),
        escalated_at: None,
        escalate_at: tenant
            .delivery
            .delivery_deadline_secs
            .get(v.category.as_str())
            .map(|d| iso8601(now + chrono::Duration::seconds(i64::from(*d)))),
        health_waits: 0,
        redact_at: tenant.retention.body_days(&v.category).map(|d| iso8601(now + chrono::Duration::days(i64::from(d)))),
        redacted_at: None,
        retain_until: Some(iso8601(now + chrono::Duration::days(i64::from(tenant.retention.record_days)))),
        legal_hold: held,
        legal_hold_reason: held.then(|| super::retention::TENANT_REASON.to_string()),
    };
    let first = MessageEvent {
        at: iso8601(now),
        source: EventSource::Submit,
        status: DeliveryStatus::Accepted,
        from_status: None,
        applied: true,
        provider: None,
        provider_status: None,
        error_code: None,
        reason: match (first_reason, smart_note) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        },
        attempt: Some(0),
    };
    match deps.store.create_message(&m, &first, idem, now).await.map_err(store_err)? {
        CreateOutcome::Existing { message_id, request_hash } => Ok(Accepted::Existing { message_id, request_hash }),
        CreateOutcome::Created => {
            tracing::info!(message_id = %m.id, tenant = %m.tenant, category = %m.category, to = %m.to.masked(), segments = m.segments, "accepted");
            metrics::count(Metric::MessagesAccepted, &[(Dim::Category, metrics::category(&m.category)), (Dim::Lane, metrics::lane(m.priority))]);
            let mut ev = NewAuditEvent::new(AuditAction::MessageSubmitted)
                .message_id(m.id)
                .category(m.category.clone())
                .recipient(m.to.as_str())
                .status(m.status.as_str());
            if let Some(k) = &m.operator.key_id {
                ev = ev.key_id(k.clone());
            }
            if let Some(op) = &m.operator.operator_id {
                ev = ev.operator_id(op.clone());
            }
            if let Some(f) = &m.from {
                ev = ev.sender(f.to_string());
            }
            if let Some(r) = &m.operator.reason {
                ev = ev.detail(format!("reason: {r}"));
            }
            deps.audit(&m.tenant, ev).await;
            let job = RouteJob { message_id: m.id, tenant: m.tenant.clone(), exclude: Vec::new() };
            if let Err(e) = deps.queues.send(&deps.cfg.route_queue_url, &job, 0).await {
                // Stored but not queued: the retry sweep re-queues accepted messages after
                // ACCEPTED_GRACE_SECS, so the message is not lost.
                tracing::warn!(message_id = %m.id, error = %e, "route enqueue failed; the sweep will re-queue");
            }
            Ok(Accepted::Created(m))
        }
    }
}

fn accepted_body(m: &Message) -> serde_json::Value {
    json!({
        "id": m.id,
        "status": m.status,
        "to": m.to,
        "category": m.category,
        "encoding": m.encoding,
        "segments": m.segments,
        "created_at": m.created_at,
    })
}

/// `GET /v1/messages/{id}`: a foreign tenant's id answers exactly like a missing one.
async fn get_message(deps: &Deps, caller: &Caller, id: &str) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_read_messages(), "any")?;
    let Ok(id) = id.parse::<MessageId>() else { return Err(ApiError::not_found("message")) };
    let Some((m, history)) = deps.store.get_message_with_history(id).await.map_err(store_err)? else {
        return Err(ApiError::not_found("message"));
    };
    if m.tenant != caller.tenant {
        return Err(ApiError::not_found("message"));
    }
    let with_body = caller.role != Role::Auditor
        || deps.tenant(&caller.tenant).await.map_err(store_err)?.is_some_and(|t| t.auditors_see_bodies);
    Ok((200, message_view(&m, &history, with_body)))
}

/// The public view of a message: everything but the body unless allowed.
pub fn message_view(m: &Message, history: &[MessageEvent], with_body: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("version");
        if !with_body {
            o.remove("body");
        }
        o.insert("history".into(), serde_json::to_value(history).unwrap_or_default());
    }
    v
}

async fn put_config(deps: &Deps, req: &Request, caller: &Caller, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_admin(), "admin")?;
    let cfg: TenantConfig = parse_json(req)?;
    if cfg.tenant != caller.tenant {
        return Err(ApiError::forbidden("A key may only configure its own tenant.").field("tenant"));
    }
    let targets = if deps.cfg.loopback_callbacks { crate::tenant::CallbackTargets::LoopbackAllowed } else { crate::tenant::CallbackTargets::PublicHttpsOnly };
    if let Err(errors) = cfg.validate_for(targets) {
        return Err(ApiError {
            status: 422,
            code: "invalid_config".into(),
            message: format!(
                "The configuration was refused whole: {}.",
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            ),
            field: errors.first().map(|e| e.field.clone()),
        });
    }
    // Optimistic concurrency: the client sends the version it read, so two admins
    // editing at once cannot silently overwrite each other (the store's write is
    // conditional on the same version).
    let current = deps.store.get_tenant_config(&caller.tenant).await.map_err(store_err)?.map(|c| c.version).unwrap_or(0);
    if cfg.version != current {
        return Err(ApiError::conflict(
            "config_changed",
            format!("You edited version {} but the stored configuration is version {current}; fetch it, reapply your change and send its version.", cfg.version),
        )
        .field("version"));
    }
    let stored = deps.store.put_tenant_config(&cfg, now).await.map_err(|e| match e {
        StoreError::Conflict => ApiError::conflict("config_changed", "The configuration changed while you edited it; fetch it and try again."),
        other => store_err(other),
    })?;
    deps.forget_tenant(&caller.tenant);
    deps.audit(&caller.tenant, who(caller, NewAuditEvent::new(AuditAction::ConfigChanged)).detail(format!("configuration version {}", stored.version))).await;
    Ok((200, serde_json::to_value(stored).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    role: String,
    #[serde(default)]
    expires_at: Option<String>,
}

async fn create_key(deps: &Deps, req: &Request, caller: &Caller, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_admin(), "admin")?;
    let r: CreateKey = parse_json(req)?;
    let role = Role::parse(&r.role)
        .ok_or_else(|| ApiError::unprocessable("invalid_role", "role must be sender, operator, auditor or admin.").field("role"))?;
    let expires = match r.expires_at {
        None => None,
        Some(s) => Some(
            crate::time::parse_iso8601(&s)
                .filter(|t| *t > now)
                .ok_or_else(|| ApiError::unprocessable("invalid_expiry", "expires_at must be a future ISO 8601 time.").field("expires_at"))?,
        ),
    };
    let k = crate::auth::new_key(&caller.tenant, role, expires, now);
    deps.store.put_api_key(&k.hash, &k.record).await.map_err(store_err)?;
    deps.audit(
        &caller.tenant,
        who(caller, NewAuditEvent::new(AuditAction::KeyCreated)).detail(format!("{} ({}, role {})", k.record.key_id, k.record.prefix, role.as_str())),
    )
    .await;
    Ok((201, json!({"key": k.plaintext, "key_id": k.record.key_id, "prefix": k.record.prefix, "role": role.as_str(), "expires_at": k.record.expires_at, "note": "Store this key now; it is not shown again."})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    to: String,
    category: String,
    #[serde(default)]
    kind: Option<MessageKind>,
    #[serde(default)]
    from: Option<String>,
}

async fn explain(deps: &Deps, req: &Request, caller: &Caller) -> Result<(u16, serde_json::Value), ApiError> {
    require(caller.role.can_admin() || caller.role.can_operate(), "operator or admin")?;
    let r: ExplainRequest = parse_json(req)?;
    let tenant = deps.tenant(&caller.tenant).await.map_err(store_err)?.ok_or_else(|| {
        ApiError::unprocessable("tenant_not_configured", "Your tenant has no configuration yet.")
    })?;
    let decision = super::route::explain(deps, &tenant, &r.to, &r.category, r.kind.unwrap_or(MessageKind::Sms), r.from.as_deref(), MessageId::new())
        .await?;
    let mut v = serde_json::to_value(decision).unwrap_or_default();
    // What kind of line the number is (a landline cannot take SMS; submit refuses it).
    if let (Some(o), Ok(n)) = (v.as_object_mut(), E164::parse(&r.to, Some(&tenant.default_region))) {
        o.insert("number_type".into(), json!(n.number_type()));
    }
    Ok((200, v))
}

#[cfg(test)]
mod tests {
    use super::{allowed_methods, audit_limit};

    #[test]
    fn audit_limit_out_of_range_or_junk_is_refused_not_clamped() {
        assert_eq!(audit_limit(None), Ok(1000));
        assert_eq!(audit_limit(Some("10000")), Ok(10_000));
        for bad in ["10001", "0", "-1", "ten", ""] {
            assert_eq!(audit_limit(Some(bad)).unwrap_err().code, "invalid_limit", "{bad}");
        }
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_route() {
        assert_eq!(allowed_methods("/v1/messages/01ABC/legal-hold"), ["POST", "DELETE"]);
        assert_eq!(allowed_methods("/v1/admin/config/"), ["GET", "PUT"]);
        assert_eq!(allowed_methods("/v1/media/m1"), ["GET"]);
        assert!(allowed_methods("/v1/nowhere").is_empty());
    }
}
