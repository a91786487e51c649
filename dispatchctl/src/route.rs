//! `dispatchctl route explain`: the route function's decision for a hypothetical
//! message, from the same `explain` the admin API uses.

use crate::ExplainArgs;
use crate::remote;
use dispatch_common::domain::MessageId;
use dispatch_common::handlers::route::explain as explain_route;
use dispatch_common::tenant::{Candidate, RouteDecision};
use std::fmt::Write as _;
use std::process::ExitCode;

pub async fn explain(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    if remote.deps.cfg.enabled_providers.is_empty() {
        eprintln!(
            "warning: ENABLED_PROVIDERS is empty here, so every provider fails the platform opt-in gate; \
             set it to the deployment's value to see its real decision"
        );
    }
    let cfg = remote
        .call(
            &format!("reading tenant {}", a.tenant),
            remote.deps.store.get_tenant_config(&a.tenant),
        )
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {} has no configuration in table {}",
                a.tenant,
                remote.table()
            )
        })?;

    // Default: a fresh id, as a new message would get.
    let id = a.message_id.unwrap_or_default();
    let decision = remote
        .timed(
            "explaining the route",
            explain_route(
                &remote.deps,
                &cfg,
                &a.to,
                &a.category,
                a.kind,
                a.from.as_deref(),
                id,
            ),
        )
        .await?
        .map_err(|e| {
            if e.status >= 500 {
                // Secrets Manager (the credentials gate) did not answer.
                anyhow::anyhow!(
                    "explaining the route: the provider credentials could not be checked via {}",
                    remote.endpoint
                )
            } else {
                let field = e
                    .field
                    .as_deref()
                    .map(|f| format!("--{f}: "))
                    .unwrap_or_default();
                anyhow::anyhow!("{field}{} ({})", e.message, e.code)
            }
        })?;

    println!("{}", serde_json::to_string_pretty(&decision)?);
    eprint!("{}", summary(&a.tenant.to_string(), id, &decision));
    Ok(ExitCode::SUCCESS)
}

/// The decision for people: the rule, every candidate with every gate, the choice.
fn summary(tenant: &str, id: MessageId, d: &RouteDecision) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "tenant {tenant}, message id {id}");
    let Some(rule) = &d.rule else {
        let _ = writeln!(
            s,
            "rule:   none matches this message (category, kind, country or prefix)"
        );
        let _ = writeln!(s, "choice: none ({})", d.refusal_reason());
        return s;
    };
    let _ = writeln!(s, "rule:   {rule}");
    if d.candidates.is_empty() {
        let _ = writeln!(s, "        (no candidates)");
    }
    for (i, c) in d.candidates.iter().enumerate() {
        let verdict = if c.eligible {
            "eligible"
        } else {
            "not eligible"
        };
        let _ = writeln!(s, "  {}. {} — {verdict}", i + 1, label(c));
        for v in &c.verdicts {
            let gate = serde_json::to_value(v.gate)
                .ok()
                .and_then(|g| g.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "       {} {gate:<16} {}",
                if v.passed { "pass" } else { "FAIL" },
                v.detail
            );
        }
    }
    match d.chosen() {
        Some(c) => {
            let sender = c
                .sender
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(s, "choice: {} from {sender}", label(c));
        }
        None => {
            let _ = writeln!(s, "choice: none ({})", d.refusal_reason());
        }
    }
    s
}

fn label(c: &Candidate) -> String {
    match c.kind {
        Some(k) => format!("{} ({k})", c.provider_id),
        None => c.provider_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_common::tenant::{Gate, GateVerdict};

    #[test]
    fn summary_names_every_gate_and_the_choice() {
        let d = RouteDecision {
            rule: Some("everything".into()),
            candidates: vec![Candidate {
                provider_id: "sandbox-main".into(),
                kind: Some(dispatch_common::providers::ProviderKind::Sandbox),
                sender: None,
                verdicts: vec![GateVerdict {
                    gate: Gate::PlatformOptIn,
                    passed: false,
                    detail: "not enabled".into(),
                }],
                eligible: false,
            }],
            chosen: None,
        };
        let s = summary("demo", MessageId::new(), &d);
        assert!(s.contains("rule:   everything"), "{s}");
        assert!(s.contains("FAIL platform_opt_in"), "{s}");
        assert!(s.contains("choice: none (no eligible provider"), "{s}");
    }
}
