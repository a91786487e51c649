//! Executes a [`ProviderRequest`] over HTTPS and classifies transport failures.

use super::{ProviderRequest, ProviderResponse, SendError};
use std::time::Duration;

/// Builds the one HTTP client a function instance uses for provider calls.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(50))
        .build()
        .expect("HTTP client configuration is static and valid")
}

/// Sends the request. Timeouts and connection failures are transient: the provider
/// may or may not have taken the message, which the claim-before-send rule and
/// provider-side client references make safe to retry.
pub async fn execute(client: &reqwest::Client, req: &ProviderRequest) -> Result<ProviderResponse, SendError> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| SendError::Permanent { code: None, message: format!("bad method {}", req.method) })?;
    let mut rb = client.request(method, &req.url);
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    let resp = rb.body(req.body.clone()).send().await.map_err(|e| SendError::Transient {
        code: Some(if e.is_timeout() { "timeout".into() } else { "network".into() }),
        message: if e.is_timeout() { "provider did not answer in time".into() } else { "could not reach provider".into() },
        retry_after_secs: None,
    })?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    let body = resp.bytes().await.map_err(|_| SendError::Transient {
        code: Some("network".into()),
        message: "provider response was cut off".into(),
        retry_after_secs: None,
    })?;
    Ok(ProviderResponse { status, headers, body: body.to_vec() })
}

pub use dispatch_wire::providers::retry_after_secs;
