//! `retry`: the scheduled sweep (EventBridge) that moves stuck, due and expired
//! messages on.

use dispatch_common::handlers::retry;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    run(service_fn(|_event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move {
            let report = retry::sweep(&deps).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
