//! `dispatchctl keys create`.

use crate::CreateKeyArgs;
use crate::remote;
use dispatch_common::auth::new_key;
use serde::Serialize;
use std::process::ExitCode;

/// Printed once: the plaintext is not stored anywhere.
#[derive(Serialize)]
struct CreatedKey<'a> {
    key: &'a str,
    key_id: &'a str,
    prefix: &'a str,
    role: &'a str,
}

pub async fn create(a: &CreateKeyArgs) -> anyhow::Result<ExitCode> {
    let remote = remote::connect().await?;
    // A key for a tenant that does not exist (a typo) would be an orphan credential.
    let exists = remote
        .call(
            &format!("reading tenant {}", a.tenant),
            remote.deps.store.get_tenant_config(&a.tenant),
        )
        .await?
        .is_some();
    if !exists {
        anyhow::bail!(
            "tenant {} has no configuration in table {}; apply one first (dispatchctl tenant apply --file ...)",
            a.tenant,
            remote.table()
        );
    }
    // The same steps as `dispatch_local::seed::create_key`, keeping the record so its
    // id and prefix can be shown.
    let k = new_key(&a.tenant, a.role, None, remote.deps.clock.now());
    remote
        .call(
            "storing the key",
            remote.deps.store.put_api_key(&k.hash, &k.record),
        )
        .await?;
    let out = CreatedKey {
        key: &k.plaintext,
        key_id: &k.record.key_id,
        prefix: &k.record.prefix,
        role: a.role.as_str(),
    };
    println!("{}", serde_json::to_string(&out)?);
    eprintln!("store the key now: it is shown only this once (only its hash is kept)");
    Ok(ExitCode::SUCCESS)
}
