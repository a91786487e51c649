//! Seeds tenants for the local run and the tests: provider secrets in Secrets
//! Manager, a validated tenant configuration in DynamoDB, and API keys.

use anyhow::Context;
use dispatch_common::auth::{new_key, Role};
use dispatch_common::aws::Clients;
use dispatch_common::domain::TenantId;
use dispatch_common::handlers::Deps;
use dispatch_common::tenant::TenantConfig;

/// Creates or updates a secret's value.
pub async fn put_secret(clients: &Clients, name: &str, value: &str) -> anyhow::Result<()> {
    let created = clients.secrets.create_secret().name(name).secret_string(value).send().await;
    if let Err(e) = created {
        let text = format!("{e:?}");
        if text.contains("ResourceExists") {
            clients
                .secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .context("updating secret")?;
        } else {
            anyhow::bail!("creating secret {name}: {text}");
        }
    }
    Ok(())
}

/// Stores (or replaces) a tenant's configuration after validating it.
pub async fn put_tenant(deps: &Deps, mut cfg: TenantConfig) -> anyhow::Result<TenantConfig> {
    // The local runner's CAD receivers are loopback http, as its platform config allows.
    let targets = if deps.cfg.loopback_callbacks { dispatch_common::tenant::CallbackTargets::LoopbackAllowed } else { dispatch_common::tenant::CallbackTargets::PublicHttpsOnly };
    if let Err(errs) = cfg.validate_for(targets) {
        anyhow::bail!("invalid tenant config: {errs:?}");
    }
    let current = deps.store.get_tenant_config(&cfg.tenant).await?;
    cfg.version = current.map(|c| c.version).unwrap_or(0);
    let stored = deps.store.put_tenant_config(&cfg, deps.clock.now()).await?;
    deps.forget_tenant(&cfg.tenant);
    Ok(stored)
}

/// Creates an API key and returns its plaintext (shown once).
pub async fn create_key(deps: &Deps, tenant: &TenantId, role: Role) -> anyhow::Result<String> {
    let k = new_key(tenant, role, None, deps.clock.now());
    deps.store.put_api_key(&k.hash, &k.record).await?;
    Ok(k.plaintext)
}

/// Writes a file only its owner can read or write (0600), also when it already
/// existed with wider permissions: the local demo keys are admin credentials.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_keys_are_private_even_over_an_older_world_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dispatch-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("demo.env");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, "export DISPATCH_ADMIN_KEY=x\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "export DISPATCH_ADMIN_KEY=x\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
