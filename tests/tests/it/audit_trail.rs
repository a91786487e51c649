//! The audit trail end to end: a full run through the API produces a hash chain
//! that verifies, carries every kind of action with the who/what/when, never a body
//! or full number, and names the first broken link when a stored event is altered.

use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_leaves_a_verifiable_chain() {
    let env = TestEnv::start("audittrail").await;
    let api = env.pipeline.api_url();
    let auditor = dispatch_local::seed::create_key(&env.pipeline.deps, &env.tenant, dispatch_common::auth::Role::Auditor).await.unwrap();
    const BODY: &str = "Detective Ng will visit at 3pm about report 5521.";
    let (_, b) = env
        .submit(json!({"to": "+12015550123", "body": BODY, "category": "evidence_notification", "operator_id": "op-17", "reason": "case 5521"}), None)
        .await;
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    let (_, b2) = env.submit(json!({"to": numbers::UNDELIVERED, "body": BODY, "category": "general"}), None).await;
    env.wait_for(b2["id"].as_str().unwrap(), "undelivered", 20).await;
    // A forged callback and a new key are audited too.
    let url = format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant);
    env.http.post(&url).header("Sandbox-Signature", "t=1,v1=00").body("{}").send().await.unwrap();
    env.http.post(format!("{api}/v1/admin/keys")).bearer_auth(&env.admin_key).body(r#"{"role":"sender"}"#).send().await.unwrap();

    let verify: Value = env.http.get(format!("{api}/v1/audit/verify")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(verify["valid"], true, "{verify}");
    assert!(verify["events"].as_u64().unwrap() >= 12, "{verify}");

    let by_msg: Value = env.http.get(format!("{api}/v1/audit?message_id={id}")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    let events = by_msg["events"].as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "message_submitted", "{actions:?}");
    assert!(actions.iter().filter(|a| **a == "status_changed").count() >= 4, "{actions:?}");
    let first = &events[0];
    assert_eq!(first["operator_id"], "op-17");
    assert!(first["key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(first["category"], "evidence_notification");
    assert_eq!(first["recipient_masked"].as_str().unwrap().len(), "+12015550123".len());
    assert!(first["at"].as_str().unwrap().ends_with('Z'));

    let all: Value = env.http.get(format!("{api}/v1/audit")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    let text = all.to_string();
    for action in ["callback_received", "callback_rejected", "key_created", "status_changed"] {
        assert!(text.contains(action), "missing {action}");
    }
    assert!(!text.contains(BODY) && !text.contains("12015550123"), "no bodies or full numbers in the audit trail");
    // Searchable by recipient without storing the number.
    let by_number: Value =
        env.http.get(format!("{api}/v1/audit?to_number=%2B12015550123")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert!(!by_number["events"].as_array().unwrap().is_empty());
    // Senders may not read the audit trail.
    let denied = env.http.get(format!("{api}/v1/audit")).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 403);

    // Export as JSON lines (and the export itself is audited).
    let export: Value = env.http.get(format!("{api}/v1/audit/export")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    let lines: Vec<Value> = export["jsonl"].as_str().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, export["count"].as_u64().unwrap());
    let after: Value = env.http.get(format!("{api}/v1/audit?limit=10000")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["events"].as_array().unwrap().last().unwrap()["action"], "audit_exported");

    // Alter one stored event: verification names exactly that link.
    let table = env.pipeline.deps.store.table().to_string();
    let pk = format!("AUDIT#{}", env.tenant);
    let sk = "EVT#000000000003";
    let item = env
        .pipeline
        .clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("event 3 is stored under the documented key");
    let doc = item["doc"].as_s().unwrap().replace("\"status_changed\"", "\"config_changed\"");
    let mut tampered = item.clone();
    tampered.insert("doc".into(), aws_sdk_dynamodb::types::AttributeValue::S(doc));
    env.pipeline.clients.dynamodb.put_item().table_name(&table).set_item(Some(tampered)).send().await.unwrap();
    // The incremental check starts after its checkpoint (past event 3); the full
    // re-verification walks from the first event and names exactly that link.
    let verify: Value = env.http.get(format!("{api}/v1/audit/verify?full=true")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(verify["valid"], false, "{verify}");
    assert_eq!(verify["first_broken_seq"], 3, "{verify}");
}
