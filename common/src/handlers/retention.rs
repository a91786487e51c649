//! Retention and legal hold. The sweep redacts bodies that reached their `redact_at`
//! (metadata and the body's SHA-256 are kept, and the redaction is recorded in the
//! history); DynamoDB TTL deletes whole records at `retain_until`. A legal hold on a
//! message — or on the whole tenant — stops both until lifted: held messages leave
//! the redaction index and lose their TTL (history items included).

use super::Deps;
use crate::domain::message::Message;
use crate::domain::{MessageId, TenantId};
use crate::error::{ProcessingError, StoreError};
use crate::store::attr::parse_doc;
use crate::store::hold::{cursor_from_key, key_from_cursor, HoldJob, HoldPhase, TenantHold};
use crate::time::iso8601;
use std::time::Duration;

/// Redacts every body that is due. Returns how many were redacted.
pub async fn redact_due(deps: &Deps) -> Result<usize, ProcessingError> {
    let now = deps.clock.now();
    let mut n = 0;
    for m in deps.store.due_redactions(now, 100).await? {
        let tenant_hold = deps.store.tenant_held(&m.tenant).await?;
        if tenant_hold || m.legal_hold || m.body.is_none() {
            continue;
        }
        let at = iso8601(now);
        let edit = move |x: &mut Message| {
            x.body = None;
            x.redacted_at = Some(at);
            x.redact_at = None;
        };
        match deps.store.update_fields(&m, edit, "body redacted by the retention policy (SHA-256 kept)".into(), now).await {
            Ok(()) => {
                n += 1;
                let ev = crate::audit::NewAuditEvent::new(crate::audit::AuditAction::BodyRedacted).message_id(m.id).category(m.category.clone());
                deps.audit(&m.tenant, ev).await;
            }
            Err(StoreError::Conflict) => {} // changed meanwhile; the next sweep sees it again
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Sets or lifts a legal hold on one message of `tenant`. `NotFound` for a foreign id.
pub async fn set_message_hold(deps: &Deps, tenant: &TenantId, id: MessageId, on: bool, reason: &str) -> Result<Message, StoreError> {
    let now = deps.clock.now();
    for _ in 0..5 {
        let Some(m) = deps.store.get_message(id).await? else { return Err(StoreError::NotFound) };
        if &m.tenant != tenant {
            return Err(StoreError::NotFound);
        }
        let r = reason.to_string();
        let note = if on { format!("legal hold set: {reason}") } else { format!("legal hold lifted: {reason}") };
        match deps
            .store
            .update_fields(
                &m,
                move |x| {
                    x.legal_hold = on;
                    x.legal_hold_reason = on.then_some(r);
                },
                note,
                now,
            )
            .await
        {
            Ok(()) => {
                let Some(after) = deps.store.get_message(id).await? else { return Err(StoreError::NotFound) };
                deps.store.set_history_ttl(&after).await?;
                return Ok(after);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// The reason recorded on messages held by the tenant-wide hold (so lifting it
/// leaves individually held messages alone).
pub const TENANT_REASON: &str = "tenant-wide legal hold";

/// Sets or lifts the tenant-wide hold: writes the hold record (its own record, with
/// the reason and who) and starts the job that brings every record in line. The
/// caller runs a first slice ([`advance_hold`]); the sweep runs the rest.
pub async fn set_tenant_hold(deps: &Deps, tenant: &TenantId, on: bool, reason: &str, by: &str) -> Result<TenantHold, StoreError> {
    let now = iso8601(deps.clock.now());
    for _ in 0..5 {
        let current = deps.store.get_tenant_hold(tenant, true).await?;
        let version = current.as_ref().map(|h| h.version).unwrap_or(0) + 1;
        let next = TenantHold {
            tenant: tenant.clone(),
            on,
            reason: reason.to_string(),
            changed_by: by.to_string(),
            changed_at: now.clone(),
            version,
            job: HoldJob { phase: HoldPhase::Messages, cursor: None, changed: 0, started_at: now.clone(), finished_at: None },
        };
        match deps.store.put_tenant_hold(&next).await {
            Ok(()) => {
                deps.forget_tenant(tenant);
                return Ok(next);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Runs the hold job of `hold` until it is done or `budget` is spent, saving its
/// progress after every page. Returns the record as last saved. A job whose record
/// changed meanwhile (the hold was set or lifted again) stops: the newer job owns
/// the records now.
pub async fn advance_hold(deps: &Deps, hold: TenantHold, budget: Duration) -> Result<TenantHold, StoreError> {
    advance_hold_within(deps, hold, budget, usize::MAX).await
}

/// [`advance_hold`] that also stops after `max_pages` pages (one page = one saved step).
pub async fn advance_hold_within(deps: &Deps, mut hold: TenantHold, budget: Duration, max_pages: usize) -> Result<TenantHold, StoreError> {
    let started = std::time::Instant::now();
    let cfg = deps.tenant(&hold.tenant).await?;
    let record_days = cfg.as_ref().map(|c| c.retention.record_days).unwrap_or(400);
    let mut pages = 0;
    while hold.running() && started.elapsed() < budget && pages < max_pages {
        pages += 1;
        let start = key_from_cursor(&hold.job.cursor);
        let (changed, next) = match hold.job.phase {
            HoldPhase::Messages => {
                let (page, next) = deps.store.tenant_messages_page(&hold.tenant, start, Some(50)).await?;
                let mut changed = 0;
                for m in page {
                    let tenant_held = m.legal_hold_reason.as_deref() == Some(TENANT_REASON);
                    if hold.on && !m.legal_hold {
                        set_message_hold(deps, &hold.tenant, m.id, true, TENANT_REASON).await?;
                        changed += 1;
                    } else if !hold.on && m.legal_hold && tenant_held {
                        set_message_hold(deps, &hold.tenant, m.id, false, TENANT_REASON).await?;
                        changed += 1;
                    }
                }
                (changed, next)
            }
            HoldPhase::Inbound => {
                let (items, next) = deps.store.tenant_inbound_page(&hold.tenant, start).await?;
                let mut changed = 0;
                for item in &items {
                    let Ok(r) = parse_doc::<crate::inbound::InboundRecord>(item) else { continue };
                    let ttl = (!hold.on).then(|| ttl_after(&r.received_at, record_days)).flatten();
                    deps.store.set_item_ttl(&crate::inbound::inbound_pk(&r.id), crate::inbound::INBOUND_SK, ttl).await?;
                    changed += 1;
                }
                (changed, next)
            }
            HoldPhase::Media => {
                let (items, next) = deps.store.tenant_media_page(&hold.tenant, start).await?;
                let mut changed = 0;
                for item in &items {
                    let Ok(r) = parse_doc::<crate::media::MediaRecord>(item) else { continue };
                    // Unfinished uploads keep their one-day TTL either way.
                    if r.status != crate::media::MediaStatus::Verified {
                        continue;
                    }
                    let ttl = (!hold.on).then(|| ttl_after(&r.created_at, record_days)).flatten();
                    deps.store.set_item_ttl(&crate::media::media_pk(&r.id), crate::media::MEDIA_SK, ttl).await?;
                    changed += 1;
                }
                (changed, next)
            }
            HoldPhase::Done => break,
        };
        hold.job.changed += changed;
        hold.job.cursor = cursor_from_key(next);
        if hold.job.cursor.is_none() {
            hold.job.phase = match hold.job.phase {
                HoldPhase::Messages => HoldPhase::Inbound,
                HoldPhase::Inbound => HoldPhase::Media,
                _ => HoldPhase::Done,
            };
            if hold.job.phase == HoldPhase::Done {
                hold.job.finished_at = Some(iso8601(deps.clock.now()));
            }
        }
        hold.version += 1;
        match deps.store.put_tenant_hold(&hold).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                tracing::info!(tenant = %hold.tenant, "legal hold changed while its job ran; the newer job takes over");
                return deps.store.get_tenant_hold(&hold.tenant, true).await?.ok_or(StoreError::NotFound);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(hold)
}

/// Advances every running hold job within `budget` (the sweep's share of its run).
pub async fn advance_hold_jobs(deps: &Deps, budget: Duration) -> Result<usize, StoreError> {
    let jobs = deps.store.running_hold_jobs().await?;
    let n = jobs.len();
    for hold in jobs {
        let tenant = hold.tenant.clone();
        let after = advance_hold(deps, hold, budget / n.max(1) as u32).await?;
        if !after.running() {
            let action = if after.on { crate::audit::AuditAction::LegalHoldSet } else { crate::audit::AuditAction::LegalHoldLifted };
            let ev = crate::audit::NewAuditEvent::new(action).detail(format!("tenant-wide hold job finished: {} records changed", after.job.changed));
            deps.audit(&tenant, ev).await;
        }
    }
    Ok(n)
}

/// `at` + `days`, as a DynamoDB TTL.
fn ttl_after(at: &str, days: u32) -> Option<i64> {
    crate::time::parse_iso8601(at).map(|t| t.timestamp() + i64::from(days) * 86_400)
}
