//! End to end on the AWS emulator: submit through the real API handler, real SQS
//! queues to the sandbox provider over HTTP, signed callbacks back through the
//! webhook handler into DynamoDB.

use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::{history, TestEnv};
use serde_json::json;

fn msg(to: &str) -> serde_json::Value {
    json!({"to": to, "body": "Officers are on their way.", "category": "general"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_message_is_delivered_with_full_history() {
    let env = TestEnv::start("delivered").await;
    let (status, body) = env.submit(json!({"to": "(201) 555-0123", "body": "Reply with your location.", "category": "emergency_callback"}), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["to"], "+12015550123", "national format normalised with the tenant's region");
    assert_eq!(body["encoding"], "GSM-7");
    assert_eq!(body["segments"], 1);
    let id = body["id"].as_str().unwrap().to_string();
    let m = env.wait_for(&id, "delivered", 20).await;
    let applied: Vec<String> = history(&m).into_iter().filter(|(_, a)| *a).map(|(s, _)| s).collect();
    assert_eq!(applied, ["accepted", "queued", "sending", "sent", "delivered"]);
    assert_eq!(m["provider"], "sandbox-main");
    assert!(m["provider_message_id"].as_str().unwrap().starts_with("sbx_"));
    assert_eq!(m["priority"], true, "emergency callbacks ride the priority lane");
    assert_eq!(env.sandbox.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_outcome_ends_in_the_right_state() {
    let env = TestEnv::start("outcomes").await;
    let cases = [
        (numbers::UNDELIVERED, "undelivered"),
        (numbers::INVALID_DESTINATION, "failed"),
        (numbers::UNAVAILABLE_ONCE, "delivered"),
        (numbers::RATE_LIMITED_ONCE, "delivered"),
        (numbers::FAILED, "failed"),
        (numbers::OUT_OF_ORDER, "delivered"),
        (numbers::NO_RECEIPT, "sent"),
    ];
    let mut ids = Vec::new();
    for (to, _) in cases {
        let (status, body) = env.submit(msg(to), None).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    for ((to, want), id) in cases.iter().zip(&ids) {
        let m = env.wait_for(id, want, 30).await;
        match *to {
            numbers::UNAVAILABLE_ONCE | numbers::RATE_LIMITED_ONCE => {
                assert_eq!(m["attempts"], 2, "one failed attempt, one success: {m:#}");
                assert!(history(&m).iter().any(|(s, a)| s == "retrying" && *a), "{m:#}");
            }
            numbers::INVALID_DESTINATION => {
                assert_eq!(m["attempts"], 1, "permanent errors are not retried");
                assert!(m["reason"].as_str().unwrap().contains("invalid_destination"), "{m:#}");
            }
            numbers::OUT_OF_ORDER => {
                // The late `sent` and the duplicate `delivered` are recorded but not applied.
                let h = history(&m);
                assert!(h.iter().any(|(s, a)| s == "sent" && !*a) || h.iter().any(|(s, a)| s == "delivered" && !*a), "{h:?}");
                assert_eq!(m["status"], "delivered");
            }
            _ => {}
        }
    }
    // The message that never gets a receipt expires once its receipt window (2 s for
    // `general` in the test tenant) has passed and the sweep runs.
    let no_receipt = &ids[6];
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let report = env.sweep().await;
    assert!(report.expired >= 1, "{report:?}");
    let m = env.wait_for(no_receipt, "expired", 5).await;
    assert!(m["reason"].as_str().unwrap().contains("delivery unknown"), "{m:#}");

    // "Delivery unknown" is settled by a receipt that comes late (here: the provider's
    // genuine, signed `delivered`, after the window), while other terminal states are
    // never left: a late receipt for the failed message is only recorded.
    let late = |id: &str, status: &str| {
        let body = json!({"type": "message.status", "id": format!("sbx_late_{status}_{id}"), "client_ref": id, "status": status, "error_code": null,
                          "occurred_at": dispatch_common::time::iso8601(chrono::Utc::now())}).to_string();
        let t = chrono::Utc::now().timestamp();
        let sig = dispatch_common::signatures::sandbox::signature_header(&[dispatch_tests::harness::SANDBOX_WEBHOOK_SECRET.as_bytes()], t, body.as_bytes());
        env.http
            .post(format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant))
            .header("content-type", "application/json")
            .header("Sandbox-Signature", sig)
            .body(body)
            .send()
    };
    assert_eq!(late(no_receipt, "delivered").await.unwrap().status(), 200);
    let m = env.wait_for(no_receipt, "delivered", 5).await;
    let h = history(&m);
    assert_eq!(h[h.len() - 2..], [("expired".to_string(), true), ("delivered".to_string(), true)], "{h:?}");
    let failed = ids.iter().zip(cases).find(|(_, (to, _))| *to == numbers::FAILED).map(|(id, _)| id.clone()).expect("a failed message");
    assert_eq!(late(&failed, "delivered").await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, m) = env.get(&failed).await;
    assert_eq!(m["status"], "failed", "failed stays failed");
    assert_eq!(history(&m).last().cloned(), Some(("delivered".to_string(), false)), "{m:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_resubmission_and_conflicting_reuse() {
    let env = TestEnv::start("idem").await;
    let (s1, first) = env.submit(msg("+12015550123"), Some("case-42")).await;
    assert_eq!(s1, 202);
    let (s2, again) = env.submit(msg("+12015550123"), Some("case-42")).await;
    assert_eq!(s2, 200, "a repeat returns the first message");
    assert_eq!(first["id"], again["id"]);
    let (s3, conflict) = env.submit(json!({"to": "+12015550123", "body": "different", "category": "general"}), Some("case-42")).await;
    assert_eq!(s3, 409);
    assert_eq!(conflict["code"], "idempotency_key_reused");
    env.wait_for(first["id"].as_str().unwrap(), "delivered", 20).await;
    assert_eq!(env.sandbox.received().len(), 1, "only one message reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_sqs_delivery_does_not_call_the_provider_twice() {
    let env = TestEnv::start("dupsqs").await;
    let (_, body) = env.submit(msg("+12015550123"), None).await;
    let id = body["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    // Replay the exact send job SQS would redeliver.
    let job = dispatch_common::queue::SendJob {
        message_id: id.parse().unwrap(),
        tenant: env.tenant.clone(),
        provider_id: "sandbox-main".into(),
        from: "+447700900001".into(),
        exclude: vec![],
        priority: false,
    };
    let q = env.pipeline.deps.cfg.send_queue(dispatch_common::providers::ProviderKind::Sandbox, false).unwrap().to_string();
    for _ in 0..2 {
        env.pipeline.deps.queues.send(&q, &job, 0).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(env.sandbox.received().len(), 1, "redelivered jobs must not reach the provider");
    let (_, m) = env.get(&id).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_callback_leaves_state_unchanged() {
    let env = TestEnv::start("forged").await;
    let (_, body) = env.submit(msg(numbers::NO_RECEIPT), None).await;
    let id = body["id"].as_str().unwrap().to_string();
    let m = env.wait_for(&id, "sent", 20).await;
    let pmid = m["provider_message_id"].as_str().unwrap();
    let payload = json!({"type": "message.status", "id": pmid, "client_ref": id, "status": "delivered", "error_code": null, "occurred_at": "2026-11-26T00:00:00.000Z"}).to_string();
    let url = format!("{}/webhooks/sandbox/{}/sandbox-main?m={id}", env.pipeline.webhook_url(), env.tenant);
    let now = chrono::Utc::now().timestamp();
    let forged = dispatch_common::signatures::sandbox::signature_header(&[b"wrong-secret".as_slice()], now, payload.as_bytes());
    let resp = env.http.post(&url).header("Sandbox-Signature", forged).body(payload.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let unsigned = env.http.post(&url).body(payload.clone()).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let (_, m) = env.get(&id).await;
    assert_eq!(m["status"], "sent", "a forged receipt must not change state");
    // The genuine signature is accepted once, and a replay of it is refused.
    let genuine = dispatch_common::signatures::sandbox::signature_header(
        &[dispatch_tests::harness::SANDBOX_WEBHOOK_SECRET.as_bytes()],
        now,
        payload.as_bytes(),
    );
    let ok = env.http.post(&url).header("Sandbox-Signature", &genuine).body(payload.clone()).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let replay = env.http.post(&url).header("Sandbox-Signature", &genuine).body(payload).send().await.unwrap();
    assert_eq!(replay.status().as_u16(), 401);
    env.wait_for(&id, "delivered", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_specific_errors_and_writes_nothing() {
    let env = TestEnv::start("badinput").await;
    let api = env.pipeline.api_url();
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (json!({"to": "+12015550123", "body": "x", "category": "gossip"}), 422, "unknown_category"),
        (json!({"to": "not a number", "body": "x", "category": "general"}), 422, "not_a_number"),
        (json!({"to": "+44740012345", "body": "x", "category": "general"}), 422, "invalid_number"),
        (json!({"to": "+12015550123", "body": "   ", "category": "general"}), 422, "empty_body"),
        (json!({"to": "+12015550123", "body": "x".repeat(160 * 4), "category": "general"}), 422, "too_many_segments"),
        (json!({"to": "+12015550123", "body": "x", "category": "general", "colour": "red"}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let (s, b) = env.submit(body.clone(), None).await;
        assert_eq!((s, b["code"].as_str().unwrap_or_default()), (status, code), "{body} -> {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let malformed = env.http.post(format!("{api}/v1/messages")).bearer_auth(&env.key).body("{not json").send().await.unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let no_key = env.http.post(format!("{api}/v1/messages")).body(msg("+12015550123").to_string()).send().await.unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    let bad_key = env.http.post(format!("{api}/v1/messages")).bearer_auth("dsk_nope").body(msg("+12015550123").to_string()).send().await.unwrap();
    assert_eq!(bad_key.status().as_u16(), 401);
    // Nothing was written: no message items exist for this table.
    let scan = env
        .pipeline
        .clients
        .dynamodb
        .scan()
        .table_name(env.pipeline.deps.store.table())
        .filter_expression("#t = :m")
        .expression_attribute_names("#t", "type")
        .expression_attribute_values(":m", aws_sdk_dynamodb::types::AttributeValue::S("message".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count, 0);
    assert!(env.sandbox.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_not_enabled_for_the_platform_is_refused_with_the_gate_named() {
    // The tenant opts into the sandbox, but this deployment enables no provider.
    let env = TestEnv::start_with("platformgate", &[], |c| c).await;
    let (status, body) = env.submit(msg("+12015550123"), None).await;
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_string();
    // No send poller runs for a disabled provider; route must reject on its own.
    let m = env.wait_for(&id, "rejected", 20).await;
    let reason = m["reason"].as_str().unwrap();
    assert!(reason.contains("sandbox-main") && reason.contains("PlatformOptIn"), "{reason}");
    assert!(env.sandbox.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_others_messages() {
    let a = TestEnv::start("tenanta").await;
    let (_, body) = a.submit(msg("+12015550123"), None).await;
    let id = body["id"].as_str().unwrap();
    // A second tenant on the same deployment (same table) with its own key.
    let other = dispatch_common::domain::TenantId::parse("other-tenant").unwrap();
    let mut cfg = dispatch_tests::harness::sandbox_tenant("other-tenant", "dispatch/other-tenant/sandbox/none");
    cfg.tenant = other.clone();
    dispatch_local::seed::put_tenant(&a.pipeline.deps, cfg).await.unwrap();
    let other_key = dispatch_local::seed::create_key(&a.pipeline.deps, &other, dispatch_common::auth::Role::Admin).await.unwrap();
    let resp = a.http.get(format!("{}/v1/messages/{id}", a.pipeline.api_url())).bearer_auth(&other_key).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404, "a foreign id answers exactly like a missing one");
    let missing = a.http.get(format!("{}/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV", a.pipeline.api_url())).bearer_auth(&other_key).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// The tenant disables the account while a message is out: its receipt is still
/// verified with that account's secret and recorded (not dropped with a 404, which
/// would leave the message to expire as "delivery unknown"); a forgery is still
/// refused, and inbound to the disabled account is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_for_a_disabled_account_are_still_recorded() {
    let env = TestEnv::start("disabledacct").await;
    let (_, body) = env.submit(msg(numbers::NO_RECEIPT), None).await;
    let id = body["id"].as_str().unwrap().to_string();
    let m = env.wait_for(&id, "sent", 20).await;
    let pmid = m["provider_message_id"].as_str().unwrap().to_string();
    let mut cfg = env.pipeline.deps.store.get_tenant_config(&env.tenant).await.unwrap().unwrap();
    cfg.providers[0].enabled = false;
    env.pipeline.deps.store.put_tenant_config(&cfg, chrono::Utc::now()).await.unwrap();
    env.pipeline.deps.forget_tenant(&env.tenant);

    let url = format!("{}/webhooks/sandbox/{}/sandbox-main?m={id}", env.pipeline.webhook_url(), env.tenant);
    let now = chrono::Utc::now().timestamp();
    let sign = |secret: &[u8], payload: &str| dispatch_common::signatures::sandbox::signature_header(&[secret], now, payload.as_bytes());
    let receipt = json!({"type": "message.status", "id": pmid, "client_ref": id, "status": "delivered", "error_code": null, "occurred_at": "2026-11-26T00:00:00.000Z"}).to_string();
    let forged = env.http.post(&url).header("Sandbox-Signature", sign(b"wrong-secret", &receipt)).body(receipt.clone()).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let ok = env.http.post(&url).header("Sandbox-Signature", sign(dispatch_tests::harness::SANDBOX_WEBHOOK_SECRET.as_bytes(), &receipt)).body(receipt).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    env.wait_for(&id, "delivered", 5).await;

    let inbound = json!({"type": "message.inbound", "id": "sbx_in_disabled", "from": "+12015550123", "to": "+12015550100", "text": "hello", "occurred_at": "2026-11-26T00:00:00.000Z"}).to_string();
    let r = env.http.post(&url).header("Sandbox-Signature", sign(dispatch_tests::harness::SANDBOX_WEBHOOK_SECRET.as_bytes(), &inbound)).body(inbound).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "no new traffic through a disabled account");
}

/// A landline caller cannot be texted: submit says so before anything is stored, and
/// the route explanation shows the number's type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_line_is_refused_at_submit_with_not_mobile() {
    let env = TestEnv::start("landline").await;
    let (s, b) = env.submit(json!({"to": "+442079460000", "body": "We tried to call you back.", "category": "emergency_callback"}), Some("landline-1")).await;
    assert_eq!((s, b["code"].as_str(), b["field"].as_str()), (422, Some("not_mobile"), Some("to")), "{b}");
    // Nothing stored under the key: the same key for a mobile is a new message.
    let (s, _) = env.submit(json!({"to": "+12015550123", "body": "We tried to call you back.", "category": "emergency_callback"}), Some("landline-1")).await;
    assert_eq!(s, 202);
    let r: serde_json::Value = env
        .http
        .post(format!("{}/v1/admin/route/explain", env.pipeline.api_url()))
        .bearer_auth(&env.admin_key)
        .body(json!({"to": "+442079460000", "category": "general"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["number_type"], "fixed_line", "{r}");
}

/// Smart encoding, where the tenant turns it on: look-alike characters are replaced so
/// the text stays GSM-7, and the history says so; elsewhere the text is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_encoding_keeps_look_alikes_from_forcing_ucs2() {
    let env = TestEnv::start_with("smartenc", &[dispatch_common::providers::ProviderKind::Sandbox], |mut c| {
        c.delivery.smart_encoding = true;
        c.delivery.smart_encoding_by_category.insert("evidence_notification".into(), false);
        c
    })
    .await;
    let text = "We\u{2019}ll be there \u{2013} \u{201C}soon\u{201D}\u{2026}";
    let (s, b) = env.submit(json!({"to": "+12015550123", "body": text, "category": "general"}), None).await;
    assert_eq!((s, b["encoding"].as_str()), (202, Some("GSM-7")), "{b}");
    let (_, m) = env.get(b["id"].as_str().unwrap()).await;
    assert_eq!(m["body"], "We'll be there - \"soon\"...");
    let first = m["history"][0]["reason"].as_str().unwrap_or_default();
    assert!(first.contains("smart encoding replaced 5"), "{m:#}");
    // Off for this category: the text goes as written, in UCS-2.
    let (s, b) = env.submit(json!({"to": "+12015550123", "body": text, "category": "evidence_notification"}), None).await;
    assert_eq!((s, b["encoding"].as_str()), (202, Some("UCS-2")), "{b}");
}
