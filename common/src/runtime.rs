//! Start-up shared by every function's `main.rs`: tracing, configuration from the
//! environment, AWS clients. Nothing here touches the network.

use crate::aws::Clients;
use crate::config::PlatformConfig;
use crate::handlers::Deps;

/// Builds the handler dependencies from the Lambda environment.
pub async fn init() -> Result<Deps, lambda_runtime::Error> {
    crate::observability::init();
    let cfg = PlatformConfig::from_env()?;
    let clients = Clients::from_env().await;
    Ok(Deps::new(cfg, &clients))
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`, epoch milliseconds) as a
/// monotonic instant, so handlers can stop starting work they cannot finish.
pub fn deadline(ctx: &lambda_runtime::Context) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    std::time::Instant::now() + std::time::Duration::from_millis(ctx.deadline.saturating_sub(now_ms))
}
