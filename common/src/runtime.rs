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
