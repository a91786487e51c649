//! `submit`: the HTTP API behind API Gateway (payload v2).

use dispatch_common::handlers::api;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = dispatch_common::runtime::init().await?;
    run(service_fn(|req: Request| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(api::handle(&deps, req).await) }
    }))
    .await
}
