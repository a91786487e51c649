//! API keys and roles on the emulator: a role × endpoint matrix, revoked and expired
//! keys, and tenant isolation for writes.

use dispatch_common::auth::{new_key, Role};
use dispatch_tests::harness::TestEnv;
use serde_json::json;

async fn key(env: &TestEnv, role: Role) -> String {
    dispatch_local::seed::create_key(&env.pipeline.deps, &env.tenant, role).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_endpoint_matrix() {
    let env = TestEnv::start("roles").await;
    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Your permit is approved.", "category": "general"}), None).await;
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    let api = env.pipeline.api_url();
    let msg = json!({"to": "+12015550123", "body": "Hello", "category": "general"}).to_string();
    let cfg = env.http.get(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).send().await.unwrap().text().await.unwrap();
    // (method, path, body) and the status each role must get.
    let endpoints: Vec<(&str, String, Option<String>)> = vec![
        ("POST", "/v1/messages".into(), Some(msg.clone())),
        ("GET", format!("/v1/messages/{id}"), None),
        ("GET", "/v1/escalations".into(), None),
        ("GET", "/v1/admin/config".into(), None),
        ("PUT", "/v1/admin/config".into(), Some(cfg.clone())),
        ("GET", "/v1/admin/keys".into(), None),
        ("POST", "/v1/admin/route/explain".into(), Some(json!({"to": "+12015550123", "category": "general"}).to_string())),
    ];
    let expected: [(Role, [u16; 7]); 4] = [
        (Role::Sender, [202, 200, 403, 403, 403, 403, 403]),
        (Role::Operator, [202, 200, 200, 403, 403, 403, 200]),
        (Role::Auditor, [403, 200, 200, 403, 403, 403, 403]),
        (Role::Admin, [202, 200, 200, 200, 200, 200, 200]),
    ];
    for (role, statuses) in expected {
        let k = key(&env, role).await;
        for ((method, path, body), want) in endpoints.iter().zip(statuses) {
            let mut rb = env.http.request(method.parse().unwrap(), format!("{api}{path}")).bearer_auth(&k);
            if let Some(b) = body {
                rb = rb.header("content-type", "application/json").body(b.clone());
            }
            let got = rb.send().await.unwrap();
            let status = got.status().as_u16();
            let text = got.text().await.unwrap();
            assert_eq!(status, want, "{role:?} {method} {path}: {text}");
            if status == 403 {
                let e: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(e["code"], "forbidden");
            }
        }
    }
    // Auditors read metadata but not bodies (the tenant does not allow it).
    let auditor = key(&env, Role::Auditor).await;
    let m: serde_json::Value = env.http.get(format!("{api}/v1/messages/{id}")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["status"], "delivered");
    assert!(m.get("body").is_none() && m["body_sha256"].is_string(), "{m:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_keys_are_refused_like_unknown_ones() {
    let env = TestEnv::start("keys").await;
    let api = env.pipeline.api_url();
    let created: serde_json::Value = env
        .http
        .post(format!("{api}/v1/admin/keys"))
        .bearer_auth(&env.admin_key)
        .body(json!({"role": "sender"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = created["key"].as_str().unwrap().to_string();
    let key_id = created["key_id"].as_str().unwrap().to_string();
    assert!(k.starts_with(created["prefix"].as_str().unwrap()));
    let ok = env.http.get(format!("{api}/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV")).bearer_auth(&k).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 404, "valid key, missing message");
    let listed: serde_json::Value = env.http.get(format!("{api}/v1/admin/keys")).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains(&k), "listing never shows a key");
    let revoke = env.http.delete(format!("{api}/v1/admin/keys/{key_id}")).bearer_auth(&env.admin_key).send().await.unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let refused = env.http.get(format!("{api}/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV")).bearer_auth(&k).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // Expired key.
    let now = chrono::Utc::now();
    let old = new_key(&env.tenant, Role::Admin, Some(now - chrono::Duration::seconds(1)), now - chrono::Duration::hours(1));
    env.pipeline.deps.store.put_api_key(&old.hash, &old.record).await.unwrap();
    let expired = env.http.get(format!("{api}/v1/admin/config")).bearer_auth(&old.plaintext).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 401);
    let body: serde_json::Value = expired.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_configure_another_tenant() {
    let env = TestEnv::start("xtenant").await;
    let api = env.pipeline.api_url();
    let mut other = dispatch_tests::harness::sandbox_tenant("someone-else", "dispatch/x/y");
    other.display_name = "not mine".into();
    let resp = env.http.put(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).body(serde_json::to_string(&other).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(env.pipeline.deps.store.get_tenant_config(&other.tenant).await.unwrap().is_none());
    // A bad config for its own tenant is refused whole, with field-level errors.
    let mut mine = dispatch_tests::harness::sandbox_tenant(env.tenant.as_str(), "dispatch/x/y");
    mine.default_region = "XX".into();
    mine.routing[0].providers = vec!["nope".into()];
    let resp = env.http.put(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).body(serde_json::to_string(&mine).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "invalid_config");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("default_region") && msg.contains("routing[0].providers[0]"), "{msg}");
}
