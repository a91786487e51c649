//! Connecting to a deployment (AWS or the local emulator) the way the functions do:
//! `PlatformConfig` from the environment, SDK clients from the environment.

use anyhow::Context;
use dispatch_common::aws::Clients;
use dispatch_common::config::{ConfigError, PlatformConfig};
use dispatch_common::handlers::Deps;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// Longest we wait for one AWS call (the SDK retries inside it).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `dispatchctl` sends nothing, so the route queue the functions need is not required.
const UNUSED_QUEUE: &str = "dispatchctl-does-not-send";

pub const ENV_HINT: &str = "dispatchctl is configured like the functions: set TABLE_NAME to the \
stack's messages table (the local runner's is local-MessagesTable) and ENABLED_PROVIDERS to the \
stack's EnabledProviders. To use the local emulator instead of AWS, start it \
(scripts/emulator.sh start) and load its settings with: eval \"$(scripts/emulator.sh env)\"";

/// A connection to the deployment.
pub struct Remote {
    pub deps: Deps,
    /// Where requests go, for error messages.
    pub endpoint: String,
}

pub fn block_on<F: Future<Output = anyhow::Result<ExitCode>>>(fut: F) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut)
}

pub async fn connect() -> anyhow::Result<Remote> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let cfg = PlatformConfig::from_lookup(|k| match k {
        "ROUTE_QUEUE_URL" => get(k).or_else(|| Some(UNUSED_QUEUE.to_string())),
        _ => get(k),
    })
    .map_err(|e| match e {
        ConfigError::Missing(name) => {
            anyhow::anyhow!("environment variable {name} is not set. {ENV_HINT}")
        }
        other => anyhow::anyhow!("{other}"),
    })?;

    let sdk = dispatch_common::aws::load().await;
    if sdk.region().is_none() {
        anyhow::bail!(
            "no AWS region configured: set AWS_REGION (or a profile with a region). For the local emulator: \
             eval \"$(scripts/emulator.sh env)\""
        );
    }
    let endpoint = match sdk.endpoint_url() {
        Some(url) => format!("the endpoint {url}"),
        None => format!(
            "AWS ({})",
            sdk.region().map(|r| r.to_string()).unwrap_or_default()
        ),
    };
    let clients = Clients::new(&sdk);
    Ok(Remote {
        deps: Deps::new(cfg, &clients),
        endpoint,
    })
}

impl Remote {
    pub fn table(&self) -> &str {
        &self.deps.cfg.table_name
    }

    /// Runs one AWS call with a deadline, so an unreachable endpoint fails clearly.
    pub async fn call<T, E, F>(&self, what: &str, fut: F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<anyhow::Error>,
    {
        self.timed(what, fut).await?.map_err(|e| {
            let e: anyhow::Error = e.into();
            // The SDK's connection failures are unreadable; say what to check.
            let unreachable = format!("{e:?}").contains("DispatchFailure");
            let e = e.context(format!(
                "{what} (table {} via {})",
                self.table(),
                self.endpoint
            ));
            if unreachable {
                e.context(format!(
                    "cannot connect to {} (for the local emulator: scripts/emulator.sh start, then \
                         eval \"$(scripts/emulator.sh env)\")",
                    self.endpoint
                ))
            } else {
                e
            }
        })
    }

    /// Awaits `fut` with a deadline; its own result is the caller's to interpret.
    pub async fn timed<T, F: Future<Output = T>>(&self, what: &str, fut: F) -> anyhow::Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(r) => Ok(r),
            Err(_) => anyhow::bail!(
                "{what}: no answer from {} within {}s. {ENV_HINT}",
                self.endpoint,
                CALL_TIMEOUT.as_secs()
            ),
        }
    }
}
