//! `send`: one deployment per provider type, named by the `PROVIDER` variable.

use aws_lambda_events::event::sqs::SqsEvent;
use dispatch_common::handlers::send;
use dispatch_common::providers::ProviderKind;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    let name = std::env::var("PROVIDER").map_err(|_| "PROVIDER is required (e.g. twilio)")?;
    let kind = ProviderKind::parse(&name).ok_or_else(|| format!("PROVIDER '{name}' is not a known provider"))?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        let deadline = dispatch_common::runtime::deadline(&event.context);
        async move { Ok::<_, Error>(send::handle_batch_until(&deps, kind, event.payload, deadline).await) }
    }))
    .await
}
