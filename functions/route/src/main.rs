//! `route`: SQS consumer that picks provider and sender (partial batch failures).

use aws_lambda_events::event::sqs::SqsEvent;
use dispatch_common::handlers::route;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        let deadline = dispatch_common::runtime::deadline(&event.context);
        async move { Ok::<_, Error>(route::handle_batch_until(&deps, event.payload, deadline).await) }
    }))
    .await
}
