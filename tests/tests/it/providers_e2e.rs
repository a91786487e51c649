//! Real provider adapters end to end on the emulator: submit → route → send over HTTP
//! to a fake that speaks the provider's wire format → a callback signed the provider's
//! way → webhook → `delivered`. Credentials come from Secrets Manager on the emulator.
//! Forged callbacks leave state unchanged. Also: failover from a provider answering
//! 5xx to a backup, and the emergency lane overtaking a bulk backlog.

use dispatch_common::providers::ProviderKind;
use dispatch_tests::fakes::{telnyx::FakeTelnyx, twilio::FakeTwilio, vonage::FakeVonage};
use dispatch_tests::harness::{history, TestEnv};
use serde_json::{json, Value};

const ACCOUNT: &str = "primary";

/// A tenant whose every message routes to `kind` first (sandbox as a backup).
async fn env_for(name: &str, kind: ProviderKind, secret: Value, sender: &str, per_provider: u32) -> TestEnv {
    let sender = sender.to_string();
    let env = TestEnv::start_with(name, &[ProviderKind::Sandbox, kind], move |mut c| {
        let sid = format!("dispatch/{}/{kind}/{ACCOUNT}", c.tenant);
        c.providers.push(serde_json::from_value(json!({"id": ACCOUNT, "kind": kind, "secret_id": sid})).unwrap());
        c.senders.push(serde_json::from_value(json!({"sender": sender, "provider": ACCOUNT})).unwrap());
        c.routing = vec![serde_json::from_value(json!({"name": "primary-then-sandbox", "providers": [ACCOUNT, "sandbox-main"]})).unwrap()];
        c.retry.attempts_per_provider = per_provider;
        c
    })
    .await;
    let secret_id = format!("dispatch/{}/{kind}/{ACCOUNT}", env.tenant);
    dispatch_local::seed::put_secret(&env.pipeline.clients, &secret_id, &secret.to_string()).await.unwrap();
    env
}

fn callback_url(env: &TestEnv, kind: ProviderKind, id: &str) -> String {
    format!("{}/webhooks/{kind}/{}/{ACCOUNT}?m={id}", env.pipeline.webhook_url(), env.tenant)
}

async fn submit(env: &TestEnv) -> String {
    let (status, body) = env.submit(json!({"to": "+12015550123", "body": "Water main repaired; supply restored.", "category": "resident_update"}), None).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_end_to_end() {
    let fake = FakeTwilio::start().await;
    let secret = json!({"account_sid": dispatch_tests::fakes::twilio::ACCOUNT_SID, "auth_token": dispatch_tests::fakes::twilio::AUTH_TOKEN, "api_base_url": fake.base_url()});
    let env = env_for("twilio", ProviderKind::Twilio, secret, "+12015550177", 2).await;
    let id = submit(&env).await;
    let m = env.wait_for(&id, "sent", 20).await;
    assert_eq!(m["provider"], ACCOUNT);
    let sid = m["provider_message_id"].as_str().unwrap().to_string();
    assert!(sid.starts_with("SM"), "{sid}");
    // The request Twilio received names our callback URL.
    let req = &fake.requests()[0];
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
    let status_cb = form.iter().find(|(k, _)| k == "StatusCallback").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(status_cb, callback_url(&env, ProviderKind::Twilio, &id));
    // A forged callback is refused and changes nothing.
    let forged = fake.send_forged_callback(&status_cb, &sid, "delivered", dispatch_tests::fakes::twilio::Forgery::WrongSecret).await;
    assert_eq!(forged.status().as_u16(), 401);
    assert_eq!(env.get(&id).await.1["status"], "sent");
    let ok = fake.send_status_callback(&status_cb, &sid, "delivered", None).await;
    assert_eq!(ok.status().as_u16(), 200);
    env.wait_for(&id, "delivered", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_end_to_end() {
    let fake = FakeTelnyx::start().await;
    let secret = json!({"api_key": dispatch_tests::fakes::telnyx::API_KEY, "public_key": FakeTelnyx::public_key_b64(), "api_base_url": fake.base_url()});
    let env = env_for("telnyx", ProviderKind::Telnyx, secret, "+12015550177", 2).await;
    let id = submit(&env).await;
    let m = env.wait_for(&id, "sent", 20).await;
    let pmid = m["provider_message_id"].as_str().unwrap().to_string();
    let url = callback_url(&env, ProviderKind::Telnyx, &id);
    let forged = fake.send_forged_callback(&url, &pmid, "delivered", dispatch_tests::fakes::telnyx::Forgery::WrongKey).await;
    assert_eq!(forged.status().as_u16(), 401);
    let tampered = fake.send_forged_callback(&url, &pmid, "delivered", dispatch_tests::fakes::telnyx::Forgery::TamperedBody).await;
    assert_eq!(tampered.status().as_u16(), 401);
    assert_eq!(env.get(&id).await.1["status"], "sent");
    let ok = fake.send_status_callback(&url, &pmid, "delivered", None).await;
    assert_eq!(ok.status().as_u16(), 200);
    env.wait_for(&id, "delivered", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_sms_and_messages_end_to_end() {
    for (kind, name) in [(ProviderKind::VonageSms, "vonagesms"), (ProviderKind::VonageMessages, "vonagemsg")] {
        let fake = FakeVonage::start().await;
        let secret = match kind {
            ProviderKind::VonageSms => json!({"api_key": dispatch_tests::fakes::vonage::API_KEY, "api_secret": dispatch_tests::fakes::vonage::API_SECRET, "signature_secret": dispatch_tests::fakes::vonage::SIGNATURE_SECRET, "api_base_url": fake.base_url()}),
            _ => json!({"api_key": dispatch_tests::fakes::vonage::API_KEY, "api_secret": dispatch_tests::fakes::vonage::API_SECRET, "signature_secret": dispatch_tests::fakes::vonage::SIGNATURE_SECRET, "api_base_url": fake.base_url()}),
        };
        let env = env_for(name, kind, secret, "+12015550177", 2).await;
        let id = submit(&env).await;
        let m = env.wait_for(&id, "sent", 20).await;
        let pmid = m["provider_message_id"].as_str().unwrap().to_string();
        let url = callback_url(&env, kind, &id);
        let forged = fake.send_forged_callback(&url, &pmid, "delivered", dispatch_tests::fakes::vonage::Forgery::TamperedBody).await;
        assert_eq!(forged.status().as_u16(), 401, "{kind}");
        assert_eq!(env.get(&id).await.1["status"], "sent", "{kind}");
        let ok = fake.send_status_callback(&url, &pmid, "delivered", None).await;
        assert_eq!(ok.status().as_u16(), 200, "{kind}");
        env.wait_for(&id, "delivered", 10).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_from_a_failing_provider_to_the_backup_is_delivered() {
    let fake = FakeTwilio::start().await;
    fake.script(vec![
        dispatch_tests::fakes::twilio::FakeOutcome::ServerError(503),
        dispatch_tests::fakes::twilio::FakeOutcome::ServerError(503),
    ]);
    let secret = json!({"account_sid": dispatch_tests::fakes::twilio::ACCOUNT_SID, "auth_token": dispatch_tests::fakes::twilio::AUTH_TOKEN, "api_base_url": fake.base_url()});
    let env = env_for("failover", ProviderKind::Twilio, secret, "+12015550177", 1).await;
    let id = submit(&env).await;
    let m = env.wait_for(&id, "delivered", 30).await;
    assert_eq!(m["provider"], "sandbox-main", "the backup carried it: {m:#}");
    assert_eq!(m["attempts"], 2);
    assert_eq!(m["failed_providers"], json!([ACCOUNT]));
    let h = m["history"].as_array().unwrap();
    assert!(h.iter().any(|e| e["status"] == "retrying" && e["reason"].as_str().unwrap_or_default().contains("failing over")), "{m:#}");
    assert!(h.iter().filter(|e| e["status"] == "sending" && e["applied"] == true).count() == 2);
    assert_eq!(fake.requests().len(), 1, "the primary was tried once");
    assert_eq!(env.sandbox.received().len(), 1, "the backup carried it once");
    let statuses = history(&m);
    assert_eq!(statuses.last().unwrap(), &("delivered".to_string(), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_messages_overtake_a_bulk_backlog() {
    // A slow provider (each send takes 300 ms) with 30 bulk messages queued ahead.
    let fake = FakeTwilio::start().await;
    fake.script((0..30).map(|_| dispatch_tests::fakes::twilio::FakeOutcome::Timeout(std::time::Duration::from_millis(300))).collect());
    let secret = json!({"account_sid": dispatch_tests::fakes::twilio::ACCOUNT_SID, "auth_token": dispatch_tests::fakes::twilio::AUTH_TOKEN, "api_base_url": fake.base_url()});
    let env = env_for("priority", ProviderKind::Twilio, secret, "+12015550177", 2).await;
    let mut bulk = Vec::new();
    for _ in 0..30 {
        bulk.push(submit(&env).await);
    }
    let (_, e) = env.submit(json!({"to": "+12015550124", "body": "Ambulance is 4 minutes away.", "category": "emergency_callback"}), None).await;
    let emergency = e["id"].as_str().unwrap().to_string();
    let m = env.wait_for(&emergency, "sent", 30).await;
    assert_eq!(m["priority"], true);
    let mut still_waiting = 0;
    for id in &bulk {
        let (_, b) = env.get(id).await;
        if b["status"] != "sent" {
            still_waiting += 1;
        }
    }
    assert!(still_waiting > 0, "the emergency message was sent while bulk messages were still waiting");
}
