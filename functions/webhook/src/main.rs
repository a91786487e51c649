//! `webhook`: provider callbacks at a Lambda function URL; verify, then record.

use dispatch_common::handlers::webhook;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    run(service_fn(|req: Request| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(webhook::handle(&deps, req).await) }
    }))
    .await
}
