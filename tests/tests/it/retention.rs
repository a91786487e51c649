//! Retention and legal hold on the emulator: bodies are redacted on schedule (hash
//! and history kept), records carry a TTL, and a legal hold — on a message or the
//! whole tenant — blocks both, with every change recorded.

use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};

async fn ttl_of(env: &TestEnv, pk: &str, sk: &str) -> Option<String> {
    let item = env
        .pipeline
        .clients
        .dynamodb
        .get_item()
        .table_name(env.pipeline.deps.store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.get("ttl").and_then(|v| v.as_n().ok()).cloned()
}

async fn event_ttls(env: &TestEnv, id: &str) -> Vec<Option<String>> {
    let resp = env
        .pipeline
        .clients
        .dynamodb
        .query()
        .table_name(env.pipeline.deps.store.table())
        .key_condition_expression("pk = :pk AND begins_with(sk, :e)")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("MSG#{id}")))
        .expression_attribute_values(":e", aws_sdk_dynamodb::types::AttributeValue::S("EVT#".into()))
        .send()
        .await
        .unwrap();
    resp.items.unwrap_or_default().iter().map(|i| i.get("ttl").and_then(|v| v.as_n().ok()).cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_redacted_on_schedule_and_legal_hold_blocks_it() {
    // Bodies of `general` messages are due for redaction at once (0 days).
    let env = TestEnv::start_with("retention", &[dispatch_common::providers::ProviderKind::Sandbox], |mut c| {
        c.retention.body_days.insert("general".into(), 0);
        c
    })
    .await;
    let api = env.pipeline.api_url();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Your case reference is 4471.", "category": "general"}), None).await;
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        env.wait_for(id, "delivered", 20).await;
    }
    // Hold the second one (with a reason, as governance requires).
    let no_reason = env.http.post(format!("{api}/v1/messages/{}/legal-hold", ids[1])).bearer_auth(&env.admin_key).body("{}").send().await.unwrap();
    assert_eq!(no_reason.status().as_u16(), 400);
    let hold = env
        .http
        .post(format!("{api}/v1/messages/{}/legal-hold", ids[1]))
        .bearer_auth(&env.admin_key)
        .body(json!({"reason": "FOI request 2026/118"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status().as_u16(), 200);
    assert!(ttl_of(&env, &format!("MSG#{}", ids[1]), "MESSAGE").await.is_none(), "a held record has no TTL");
    assert!(event_ttls(&env, &ids[1]).await.iter().all(|t| t.is_none()), "nor does its history");
    assert!(ttl_of(&env, &format!("MSG#{}", ids[0]), "MESSAGE").await.is_some(), "records expire by TTL");
    assert!(event_ttls(&env, &ids[0]).await.iter().all(|t| t.is_some()), "history expires with its message");

    let report = env.sweep().await;
    assert_eq!(report.redacted, 1, "{report:?}");
    let (_, redacted) = env.get(&ids[0]).await;
    assert!(redacted.get("body").is_none(), "{redacted:#}");
    assert_eq!(redacted["status"], "delivered");
    assert_eq!(redacted["body_sha256"].as_str().unwrap().len(), 64, "the body hash stays");
    assert!(redacted["redacted_at"].is_string());
    assert!(redacted["history"].as_array().unwrap().iter().any(|e| e["reason"].as_str().unwrap_or_default().contains("redacted")));
    let (_, held) = env.get(&ids[1]).await;
    assert_eq!(held["body"], "Your case reference is 4471.", "legal hold blocks redaction");
    assert!(held["history"].as_array().unwrap().iter().any(|e| e["reason"] == "legal hold set: FOI request 2026/118"));

    // Lifting the hold restores the TTL and lets retention proceed.
    let lift = env
        .http
        .delete(format!("{api}/v1/messages/{}/legal-hold", ids[1]))
        .bearer_auth(&env.admin_key)
        .body(json!({"reason": "FOI closed"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(lift.status().as_u16(), 200);
    assert!(ttl_of(&env, &format!("MSG#{}", ids[1]), "MESSAGE").await.is_some());
    assert_eq!(env.sweep().await.redacted, 1);
    let (_, now_redacted) = env.get(&ids[1]).await;
    assert!(now_redacted.get("body").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_wide_hold_covers_existing_and_new_messages() {
    let env = TestEnv::start_with("tenanthold", &[dispatch_common::providers::ProviderKind::Sandbox], |mut c| {
        c.retention.body_days.insert("general".into(), 0);
        c
    })
    .await;
    let api = env.pipeline.api_url();
    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Before the hold.", "category": "general"}), None).await;
    let before = b["id"].as_str().unwrap().to_string();
    env.wait_for(&before, "delivered", 20).await;
    let on = env.http.put(format!("{api}/v1/admin/legal-hold")).bearer_auth(&env.admin_key).body(r#"{"on":true,"reason":"inquiry 42"}"#).send().await.unwrap();
    assert_eq!(on.status().as_u16(), 200, "a small tenant's job finishes in the call");
    let on: Value = on.json().await.unwrap();
    assert_eq!((on["on"].as_bool(), on["job"]["state"].as_str(), on["job"]["records_changed"].as_u64()), (Some(true), Some("done"), Some(1)), "{on}");
    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "During the hold.", "category": "general"}), None).await;
    let during = b["id"].as_str().unwrap().to_string();
    env.wait_for(&during, "delivered", 20).await;
    assert_eq!(env.sweep().await.redacted, 0, "nothing is redacted under a tenant hold");
    for id in [&before, &during] {
        let (_, m) = env.get(id).await;
        assert_eq!(m["legal_hold"], true, "{m:#}");
        assert!(m["body"].is_string());
        assert!(ttl_of(&env, &format!("MSG#{id}"), "MESSAGE").await.is_none());
    }
    // A config write cannot lift it: the hold is not part of the document, and asking
    // for it there is refused.
    let url = format!("{api}/v1/admin/config");
    let cfg: Value = env.http.get(&url).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    assert!(cfg.get("legal_hold").is_none(), "{cfg}");
    let r = env.http.put(&url).bearer_auth(&env.admin_key).body(cfg.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut with_hold = cfg.clone();
    with_hold["legal_hold"] = json!(true);
    with_hold["version"] = json!(cfg["version"].as_u64().unwrap() + 1);
    let r = env.http.put(&url).bearer_auth(&env.admin_key).body(with_hold.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let held: Value = env.http.get(format!("{api}/v1/admin/legal-hold")).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    assert_eq!((held["on"].as_bool(), held["reason"].as_str()), (Some(true), Some("inquiry 42")), "still held after the config write: {held}");
    // Auditors may not lift a tenant hold; admins can, with a reason.
    let auditor = dispatch_local::seed::create_key(&env.pipeline.deps, &env.tenant, dispatch_common::auth::Role::Auditor).await.unwrap();
    let refused = env.http.put(format!("{api}/v1/admin/legal-hold")).bearer_auth(&auditor).body(r#"{"on":false,"reason":"done"}"#).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let no_reason = env.http.put(format!("{api}/v1/admin/legal-hold")).bearer_auth(&env.admin_key).body(r#"{"on":false}"#).send().await.unwrap();
    assert_eq!(no_reason.status().as_u16(), 422);
    let off: Value = env.http.put(format!("{api}/v1/admin/legal-hold")).bearer_auth(&env.admin_key).body(r#"{"on":false,"reason":"inquiry closed"}"#).send().await.unwrap().json().await.unwrap();
    assert_eq!(off["job"]["records_changed"], 2, "{off}");
    assert_eq!(env.sweep().await.redacted, 2);
}
