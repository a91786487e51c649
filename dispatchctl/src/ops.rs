//! Operational commands: escalations (missed delivery deadlines) and dead-letter queues.

use crate::remote;
use dispatch_common::domain::{MessageId, TenantId};
use dispatch_common::error::StoreError;
use std::process::ExitCode;

/// `dispatchctl escalations list --tenant T [--all]`: open escalations (JSON lines).
pub async fn escalations_list(tenant: &TenantId, all: bool) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let list = remote.call("listing escalations", remote.deps.store.list_escalations(tenant)).await?;
    let mut open = 0;
    for e in list.iter().filter(|e| all || e.acknowledged_at.is_none()) {
        open += usize::from(e.acknowledged_at.is_none());
        println!("{}", serde_json::to_string(e)?);
    }
    eprintln!("{open} open escalation(s) for {tenant}");
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl escalations ack --tenant T --message ID --by NAME`.
pub async fn escalations_ack(tenant: &TenantId, id: MessageId, by: &str) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let now = remote.deps.clock.now();
    match remote.timed("acknowledging", remote.deps.store.ack_escalation(tenant, id, &format!("operator:{by}"), now)).await? {
        Ok(e) => {
            println!("{}", serde_json::to_string(&e)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::NotFound) => anyhow::bail!("no escalation for message {id} in tenant {tenant}"),
        Err(StoreError::Conflict) => anyhow::bail!("the escalation for message {id} was already acknowledged"),
        Err(e) => Err(e.into()),
    }
}

/// `dispatchctl dlq list`: what sits in every dead-letter queue (records stay there).
pub async fn dlq_list() -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    if remote.deps.cfg.dead_letter_queues.is_empty() {
        anyhow::bail!("no dead-letter queue URLs in the environment (ROUTE_DLQ_URL, SEND_DLQ_URL_<PROVIDER>, TENANT_CALLBACK_DLQ_URL)");
    }
    // Short visibility so listing does not hide records from the sweep for long.
    let records = dispatch_common::handlers::retry::read_dead_letters(&remote.deps, 10, 5).await;
    for r in &records {
        let status = match r.message_id {
            Some(id) => remote.deps.store.get_message(id).await.ok().flatten().map(|m| m.status.to_string()),
            None => None,
        };
        println!(
            "{}",
            serde_json::json!({"queue": r.queue, "message_id": r.message_id, "message_status": status, "job": serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or(serde_json::Value::String(r.body.clone()))})
        );
    }
    eprintln!("{} dead-lettered record(s) (at most 10 per queue shown)", records.len());
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl dlq redrive`: moves every dead-lettered record back to its source queue.
pub async fn dlq_redrive() -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let n = dispatch_common::handlers::retry::redrive(&remote.deps).await?;
    println!("{}", serde_json::json!({"redriven": n}));
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl providers`: every adapter's documented capabilities.
pub fn providers() -> anyhow::Result<ExitCode> {
    for kind in dispatch_common::providers::ProviderKind::ALL {
        let caps = dispatch_common::providers::registry::adapter(kind).capabilities();
        let mut v = serde_json::to_value(&caps)?;
        v["provider"] = serde_json::Value::String(kind.to_string());
        println!("{v}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl audit verify --tenant T`: walks the whole hash chain; exit 0 if intact,
/// 1 naming the first broken link.
pub async fn audit_verify(tenant: &TenantId) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let log = remote.deps.audit_log().await.map_err(|e| anyhow::anyhow!("{e} (set AUDIT_HASH_KEY_SECRET_ID like the functions)"))?;
    match remote.timed("verifying the audit chain", log.verify(tenant)).await? {
        Ok(r) => {
            println!("{}", serde_json::json!({"valid": true, "events": r.events, "head_seq": r.head_seq}));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => match e.chain_break() {
            Some(b) => {
                println!("{}", serde_json::json!({"valid": false, "first_broken_seq": b.seq, "reason": b.reason.to_string()}));
                eprintln!("audit chain of {tenant} is broken at event {}: {}", b.seq, b.reason);
                Ok(ExitCode::FAILURE)
            }
            None => Err(anyhow::anyhow!("{e}")),
        },
    }
}

/// `dispatchctl audit export --tenant T [--message ID] --out FILE`: JSON lines.
pub async fn audit_export(tenant: &TenantId, message: Option<MessageId>, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let log = remote.deps.audit_log().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let filter = dispatch_common::audit::AuditFilter { message_id: message, ..Default::default() };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let n = remote.timed("exporting the audit trail", log.export_jsonl(tenant, &filter, &mut file)).await??;
    std::io::Write::flush(&mut file)?;
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    remote
        .deps
        .audit(tenant, dispatch_common::audit::NewAuditEvent::new(dispatch_common::audit::AuditAction::AuditExported).operator_id(format!("cli:{who}")).detail(format!("{n} events exported by dispatchctl")))
        .await;
    eprintln!("{n} audit events written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl evidence export --message <id> --out <dir> [--tenant T]`: writes the
/// inbound message (or outbound message), its media, their SHA-256 hashes, provider
/// metadata, the full history and a manifest. The tenant is taken from the message
/// when not given (inbound ids need `--tenant`). The export is audited.
pub async fn evidence_export(id: &str, tenant: Option<TenantId>, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    let tenant = match tenant {
        Some(t) => t,
        None => {
            let mid: MessageId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id} is not a message id; for an inbound id (inb_...) pass --tenant"))?;
            let m = remote.call("reading the message", remote.deps.store.get_message(mid)).await?;
            m.ok_or_else(|| anyhow::anyhow!("no message {id}"))?.tenant
        }
    };
    let manifest = remote
        .timed("exporting evidence", dispatch_common::inbound::export_evidence(&remote.deps.store, &remote.deps.media, &tenant, id, out, remote.deps.clock.now()))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    remote
        .deps
        .audit(
            &tenant,
            dispatch_common::audit::NewAuditEvent::new(dispatch_common::audit::AuditAction::AuditExported)
                .operator_id(format!("cli:{who}"))
                .detail(format!("evidence bundle for {id} exported by dispatchctl")),
        )
        .await;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    eprintln!("evidence bundle written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `dispatchctl evidence verify <dir>`: re-hashes everything; exit 1 on any mismatch.
pub fn evidence_verify(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let report = dispatch_common::inbound::verify_evidence(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.ok {
        eprintln!("evidence bundle verified: {} files match the manifest", report.checked);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("evidence bundle does NOT verify (see mismatched / missing / extra)");
        Ok(ExitCode::FAILURE)
    }
}
