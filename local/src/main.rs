//! `dispatch-local`: the whole service on this machine. Provisions the emulator from
//! `infra/template.yaml`, starts the sandbox provider, serves the API and the webhook
//! URL, runs every function's handler, seeds a demo PSAP tenant and prints how to
//! send a message. Stop with Ctrl-C.

use anyhow::Context;
use dispatch_common::auth::Role;
use dispatch_common::providers::ProviderKind;
use dispatch_common::tenant::TenantConfig;
use dispatch_local::runner::{Pipeline, PipelineOptions};
use dispatch_local::sandbox::{SandboxConfig, SandboxProvider};
use dispatch_local::seed;
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dispatch_common::observability::init();
    let api_port: u16 = std::env::var("DISPATCH_API_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let webhook_port: u16 = std::env::var("DISPATCH_WEBHOOK_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8081);
    let sandbox_port: u16 = std::env::var("DISPATCH_SANDBOX_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8082);

    let webhook_secret = random_hex();
    let sandbox_api_key = random_hex();
    let sandbox = SandboxProvider::start(
        SandboxConfig { event_delay: Duration::from_millis(300), ..SandboxConfig::new(sandbox_api_key.clone(), webhook_secret.clone()) },
        SocketAddr::from(([127, 0, 0, 1], sandbox_port)),
    )
    .await
    .context("starting the sandbox provider")?;

    let mut opts = PipelineOptions::for_tests("local", &[ProviderKind::Sandbox]);
    opts.api_addr = SocketAddr::from(([127, 0, 0, 1], api_port));
    opts.webhook_addr = SocketAddr::from(([127, 0, 0, 1], webhook_port));
    opts.sweep_every = Duration::from_secs(10);
    opts.teardown_on_drop = false;
    let pipeline = Pipeline::start(opts).await?;

    let tenant_json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tenants/demo-psap.json"))
        .context("reading examples/tenants/demo-psap.json")?;
    let cfg: TenantConfig = serde_json::from_str(&tenant_json).context("parsing the demo tenant")?;
    let secret_id = cfg.providers[0].secret_id.clone();
    seed::put_secret(
        &pipeline.clients,
        &secret_id,
        &serde_json::json!({"api_key": sandbox_api_key, "webhook_secret": webhook_secret, "api_base_url": sandbox.base_url()}).to_string(),
    )
    .await?;
    let cfg = seed::put_tenant(&pipeline.deps, cfg).await?;
    let key = seed::create_key(&pipeline.deps, &cfg.tenant, Role::Operator).await?;
    let admin = seed::create_key(&pipeline.deps, &cfg.tenant, Role::Admin).await?;
    let api = pipeline.api_url();
    std::fs::create_dir_all(".local").ok();
    // Admin keys: readable by this user only.
    seed::write_private(std::path::Path::new(".local/demo.env"), &format!("export DISPATCH_API={api}\nexport DISPATCH_KEY={key}\nexport DISPATCH_ADMIN_KEY={admin}\n"))
        .context("writing .local/demo.env")?;

    println!(
        r#"
SMS/MMS dispatch is running locally.
  API            {api}
  webhook URL    {webhook}
  sandbox        {sandbox_url}   (outcomes by recipient: docs/sandbox.md)
  tenant         {tenant}  (examples/tenants/demo-psap.json)
  keys           written to .local/demo.env  (operator and admin; shown once)

Send a message:
  source .local/demo.env
  curl -s -X POST $DISPATCH_API/v1/messages -H "Authorization: Bearer $DISPATCH_KEY" \
       -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \
       -d '{{"to":"(201) 555-0123","body":"Officers are on their way. Reply with your location if safe.","category":"emergency_callback"}}'
  curl -s $DISPATCH_API/v1/messages/<id> -H "Authorization: Bearer $DISPATCH_KEY"
"#,
        webhook = pipeline.webhook_url(),
        sandbox_url = sandbox.base_url(),
        tenant = cfg.tenant,
    );
    tokio::signal::ctrl_c().await.ok();
    println!("stopping");
    Ok(())
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
