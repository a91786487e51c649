//! Retention and legal hold. The sweep redacts bodies that reached their `redact_at`
//! (metadata and the body's SHA-256 are kept, and the redaction is recorded in the
//! history); DynamoDB TTL deletes whole records at `retain_until`. A legal hold on a
//! message — or on the whole tenant — stops both until lifted: held messages leave
//! the redaction index and lose their TTL (history items included).

use super::Deps;
use crate::domain::message::Message;
use crate::domain::{MessageId, TenantId};
use crate::error::{ProcessingError, StoreError};
use crate::time::iso8601;

/// Redacts every body that is due. Returns how many were redacted.
pub async fn redact_due(deps: &Deps) -> Result<usize, ProcessingError> {
    let now = deps.clock.now();
    let mut n = 0;
    for m in deps.store.due_redactions(now, 100).await? {
        let tenant_hold = deps.tenant(&m.tenant).await?.is_some_and(|c| c.legal_hold);
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

/// Applies a tenant-wide hold (or lift) to every message of the tenant. Messages
/// held individually keep their own hold when the tenant hold is lifted.
pub async fn apply_tenant_hold(deps: &Deps, tenant: &TenantId, on: bool) -> Result<usize, StoreError> {
    const TENANT_REASON: &str = "tenant-wide legal hold";
    let mut start = None;
    let mut n = 0;
    loop {
        let (page, next) = deps.store.tenant_messages(tenant, start).await?;
        for m in page {
            let tenant_held = m.legal_hold_reason.as_deref() == Some(TENANT_REASON);
            if on && !m.legal_hold {
                set_message_hold(deps, tenant, m.id, true, TENANT_REASON).await?;
                n += 1;
            } else if !on && m.legal_hold && tenant_held {
                set_message_hold(deps, tenant, m.id, false, TENANT_REASON).await?;
                n += 1;
            }
        }
        start = next;
        if start.is_none() {
            break;
        }
    }
    Ok(n)
}
