//! `dispatchctl tenant validate|apply|show`.

use crate::remote;
use crate::{FileArgs, TenantArgs};
use anyhow::Context;
use dispatch_common::tenant::TenantConfig;
use std::io::Read;
use std::process::ExitCode;

/// A file's valid configuration, or (`Err`) the report to print and fail with; the
/// outer error is for a file that cannot be read at all.
fn check(a: &FileArgs) -> anyhow::Result<Result<TenantConfig, String>> {
    let name = a.file.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the configuration from standard input")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {name}"))?
    };
    let cfg: TenantConfig = match serde_json::from_str(&text) {
        Ok(c) => c,
        // serde names the unknown or missing field, or the line and column.
        Err(e) => return Ok(Err(format!("invalid: {name}: {e}\n"))),
    };
    match cfg.validate() {
        Ok(()) => Ok(Ok(cfg)),
        Err(errs) => {
            let mut out = format!(
                "invalid: tenant {} has {} problem{}\n",
                cfg.tenant,
                errs.len(),
                if errs.len() == 1 { "" } else { "s" }
            );
            for e in errs {
                out.push_str(&format!("  {}: {}\n", e.field, e.message));
            }
            Ok(Err(out))
        }
    }
}

fn describe(cfg: &TenantConfig) -> String {
    let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
    format!(
        "tenant {} ({}, {}, {})",
        cfg.tenant,
        n(cfg.providers.len(), "provider"),
        n(cfg.senders.len(), "sender"),
        n(cfg.routing.len(), "routing rule")
    )
}

pub fn validate(a: &FileArgs) -> anyhow::Result<ExitCode> {
    match check(a)? {
        Ok(cfg) => {
            println!("valid: {}", describe(&cfg));
            Ok(ExitCode::SUCCESS)
        }
        Err(report) => {
            print!("{report}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn apply(a: &FileArgs) -> anyhow::Result<ExitCode> {
    // Validation is offline and comes first: a bad file never needs the environment.
    let cfg = match check(a)? {
        Ok(cfg) => cfg,
        Err(report) => {
            print!("{report}");
            return Ok(ExitCode::FAILURE);
        }
    };
    remote::block_on(async move {
        let remote = remote::connect().await?;
        let what = format!("storing tenant {}", cfg.tenant);
        let stored = remote
            .call(&what, dispatch_local::seed::put_tenant(&remote.deps, cfg))
            .await?;
        println!(
            "applied: {} as version {}",
            describe(&stored),
            stored.version
        );
        eprintln!("running functions pick the change up within 15 seconds (their config cache)");
        Ok(ExitCode::SUCCESS)
    })
}

pub async fn show(a: &TenantArgs) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
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
    println!("{}", serde_json::to_string_pretty(&cfg)?);
    Ok(ExitCode::SUCCESS)
}
