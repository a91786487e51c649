//! Starts the real pipeline (every handler, real SQS/DynamoDB/Secrets Manager on the
//! emulator) with the sandbox provider and a seeded tenant, isolated by a unique
//! resource prefix so tests run side by side.

use dispatch_common::auth::Role;
use dispatch_common::domain::TenantId;
use dispatch_common::providers::ProviderKind;
use dispatch_common::tenant::TenantConfig;
use dispatch_local::runner::{Pipeline, PipelineOptions};
use dispatch_local::sandbox::{SandboxConfig, SandboxProvider};
use dispatch_local::seed;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

pub const SANDBOX_WEBHOOK_SECRET: &str = "test-sandbox-webhook-secret-0f3a";
pub const SANDBOX_API_KEY: &str = "test-sandbox-api-key-77c1";

pub struct TestEnv {
    pub pipeline: Pipeline,
    pub sandbox: SandboxProvider,
    pub tenant: TenantId,
    pub key: String,
    pub admin_key: String,
    pub http: reqwest::Client,
}

/// Fails loudly (never skips) when the emulator is not configured: these tests claim
/// to exercise DynamoDB, SQS and Secrets Manager and must really do so.
pub fn require_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the suite with scripts/test.sh, which starts the emulator"
    );
}

pub fn unique_prefix(name: &str) -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random");
    format!("t{}-{}", name.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect::<String>().to_lowercase(), hex::encode(b))
}

/// The demo-like tenant used by most tests, with one sandbox account.
pub fn sandbox_tenant(tenant: &str, secret_id: &str) -> TenantConfig {
    serde_json::from_value(json!({
        "tenant": tenant,
        "default_region": "US",
        "providers": [{"id": "sandbox-main", "kind": "sandbox", "secret_id": secret_id}],
        "senders": [{"sender": "+12015550100", "provider": "sandbox-main"}],
        "routing": [{"name": "everything", "match": {}, "providers": ["sandbox-main"]}],
        "delivery": {"max_segments": 3, "receipt_window_secs": 2},
        "retry": {"base_backoff_secs": 1, "max_backoff_secs": 2, "attempts_per_provider": 3, "max_attempts": 4}
    }))
    .expect("valid tenant json")
}

impl TestEnv {
    pub async fn start(name: &str) -> TestEnv {
        Self::start_with(name, &[ProviderKind::Sandbox], |c| c).await
    }

    pub async fn start_with(name: &str, enabled: &[ProviderKind], tweak: impl FnOnce(TenantConfig) -> TenantConfig) -> TestEnv {
        Self::start_with_env(name, enabled, tweak, &[]).await
    }

    /// As [`Self::start_with`], with function environment variables set as a
    /// deployment would set them (e.g. `PROVIDER_TIMEOUT_SECS`).
    pub async fn start_with_env(name: &str, enabled: &[ProviderKind], tweak: impl FnOnce(TenantConfig) -> TenantConfig, env: &[(&str, &str)]) -> TestEnv {
        require_emulator();
        let sandbox = SandboxProvider::start(
            SandboxConfig { event_delay: Duration::from_millis(20), ..SandboxConfig::new(SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET) },
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("sandbox starts");
        let prefix = unique_prefix(name);
        let mut opts = PipelineOptions::for_tests(prefix.clone(), enabled);
        opts.sweep_every = Duration::from_secs(3600);
        opts.extra_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pipeline = Pipeline::start(opts).await.expect("pipeline starts on the emulator");
        let tenant = TenantId::parse(format!("tenant-{}", &prefix[prefix.len() - 8..])).unwrap();
        let secret_id = format!("dispatch/{tenant}/sandbox/sandbox-main");
        seed::put_secret(
            &pipeline.clients,
            &secret_id,
            &json!({"api_key": SANDBOX_API_KEY, "webhook_secret": SANDBOX_WEBHOOK_SECRET, "api_base_url": sandbox.base_url()}).to_string(),
        )
        .await
        .expect("secret stored");
        let cfg = tweak(sandbox_tenant(tenant.as_str(), &secret_id));
        seed::put_tenant(&pipeline.deps, cfg).await.expect("tenant stored");
        let key = seed::create_key(&pipeline.deps, &tenant, Role::Operator).await.expect("key");
        let admin_key = seed::create_key(&pipeline.deps, &tenant, Role::Admin).await.expect("admin key");
        TestEnv { pipeline, sandbox, tenant, key, admin_key, http: reqwest::Client::new() }
    }

    pub async fn submit(&self, body: Value, idempotency_key: Option<&str>) -> (u16, Value) {
        let mut rb = self
            .http
            .post(format!("{}/v1/messages", self.pipeline.api_url()))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        let resp = rb.send().await.expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, id: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/v1/messages/{id}", self.pipeline.api_url()))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls until the message reaches `status` (or fails the test after `secs`).
    pub async fn wait_for(&self, id: &str, status: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, m) = self.get(id).await;
            if m["status"] == status {
                return m;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("message {id} did not reach {status} in {secs}s; last seen: {m:#}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn sweep(&self) -> dispatch_common::handlers::retry::SweepReport {
        dispatch_common::handlers::retry::sweep(&self.pipeline.deps).await.expect("sweep runs")
    }
}

/// History entries' `(status, applied)` pairs, in order.
pub fn history(m: &Value) -> Vec<(String, bool)> {
    m["history"]
        .as_array()
        .map(|h| h.iter().map(|e| (e["status"].as_str().unwrap_or_default().to_string(), e["applied"].as_bool().unwrap_or(false))).collect())
        .unwrap_or_default()
}
