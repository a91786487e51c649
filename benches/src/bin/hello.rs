//! Cold-start baseline: a hello-world `lambda_runtime` function, built with the
//! workspace release profile, so the functions' init time can be compared with the
//! least a Rust Lambda can do (tokio runtime + Runtime API client, nothing else).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "hello": "world", "echo": event.payload }))
    }))
    .await
}
