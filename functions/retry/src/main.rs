//! `retry`: the scheduled sweep (EventBridge) that moves stuck, due and expired
//! messages on and surfaces dead letters; also the consumer of the tenant callback
//! queue (SQS), which delivers signed status callbacks to tenants.

use aws_lambda_events::event::sqs::SqsEvent;
use dispatch_common::handlers::{callbacks, retry};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        let deadline = dispatch_common::runtime::deadline(&event.context);
        async move {
            // One function, two triggers: SQS batches carry `Records`; the schedule does not.
            if event.payload.get("Records").is_some() {
                let batch: SqsEvent = serde_json::from_value(event.payload)?;
                return Ok::<_, Error>(serde_json::to_value(callbacks::handle_batch_until(&deps, batch, deadline).await)?);
            }
            let report = retry::sweep(&deps).await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
