//! Delivery lifecycle on the emulator: signed tenant callbacks (verified exactly as
//! docs/tenant-callbacks.md says), delivery-deadline escalation and acknowledgement,
//! dead-letter surfacing, and recovery of an attempt interrupted after its claim.

use dispatch_common::domain::message::{EventSource, Message, MessageEvent, OperatorContext};
use dispatch_common::domain::{ContentCategory, DeliveryStatus, Encoding, MessageId, MessageKind, E164};
use dispatch_common::signatures::sandbox::verify_timestamped;
use dispatch_common::time::iso8601;
use dispatch_local::http_server::{handler, respond, serve_loopback};
use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::{history, TestEnv};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CURRENT: &str = "whsec-current-5d1e";
const PREVIOUS: &str = "whsec-previous-9a07";

struct Receiver {
    server: dispatch_local::http_server::Server,
    got: Arc<Mutex<Vec<Value>>>,
}

/// A tenant endpoint that verifies every callback with BOTH rotation keys and fails
/// the first `fail_first` requests with 500.
async fn receiver(fail_first: usize) -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let server = serve_loopback(handler(move |req| {
        let g = g.clone();
        let seen = seen.clone();
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                return respond(500, "text/plain", "down for maintenance");
            }
            let header = req.header("dispatch-signature").unwrap_or_default().to_string();
            let now = chrono::Utc::now().timestamp();
            let tol = Duration::from_secs(300);
            for key in [CURRENT, PREVIOUS] {
                if verify_timestamped(&header, key.as_bytes(), &req.body, now, tol).is_err() {
                    return respond(401, "text/plain", "bad signature");
                }
            }
            g.lock().unwrap().push(serde_json::from_slice(&req.body).unwrap());
            respond(204, "text/plain", "")
        }
    }))
    .await
    .unwrap();
    Receiver { server, got }
}

async fn env_with_callbacks(name: &str, r: &Receiver) -> TestEnv {
    let url = format!("{}/dispatch-events", r.server.base_url());
    let env = TestEnv::start_with(name, &[dispatch_common::providers::ProviderKind::Sandbox], move |mut c| {
        let secret_id = format!("dispatch/{}/callback/cad", c.tenant);
        c.callback = Some(serde_json::from_value(json!({"url": url, "secret_id": secret_id})).unwrap());
        c.delivery.delivery_deadline_secs.insert("emergency_callback".into(), 1);
        c
    })
    .await;
    dispatch_local::seed::put_secret(&env.pipeline.clients, &format!("dispatch/{}/callback/cad", env.tenant), &json!({"secrets": [CURRENT, PREVIOUS]}).to_string())
        .await
        .unwrap();
    env
}

async fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_callbacks_are_signed_retried_and_recorded() {
    let r = receiver(1).await;
    let env = env_with_callbacks("callbacks", &r).await;
    let (_, body) = env.submit(json!({"to": "+12015550123", "body": "Road closed on Elm St.", "category": "resident_update"}), None).await;
    let id = body["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    let got = r.got.clone();
    let complete = wait_until(20, || got.lock().unwrap().iter().any(|e| e["message"]["status"] == "delivered")).await;
    assert!(complete, "delivered callback never verified: {:?}", r.got.lock().unwrap());
    let events = r.got.lock().unwrap().clone();
    for e in &events {
        assert_eq!(e["type"], "message.status");
        assert_eq!(e["message"]["id"], id.as_str());
        assert!(e["occurred_at"].as_str().unwrap().ends_with('Z'), "ISO 8601 UTC");
    }
    // The first POST got a 500: it was retried, and every attempt is in the history.
    let (_, m) = env.get(&id).await;
    let notes: Vec<String> = m["history"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str().map(str::to_string)).collect();
    assert!(notes.iter().any(|n| n.contains("tenant callback attempt 1 failed (HTTP 500)")), "{notes:#?}");
    assert!(notes.iter().any(|n| n.contains("tenant callback delivered (HTTP 204")), "{notes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_emergency_deadline_escalates_and_can_be_acknowledged() {
    let r = receiver(0).await;
    let env = env_with_callbacks("escalate", &r).await;
    let (_, body) = env.submit(json!({"to": numbers::NO_RECEIPT, "body": "Call us back on 999.", "category": "emergency_callback"}), None).await;
    let id = body["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "sent", 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = env.sweep().await;
    assert_eq!(report.escalated, 1, "{report:?}");
    let (_, m) = env.get(&id).await;
    assert_eq!(m["status"], "sent", "escalation does not invent a state");
    assert!(m["escalated_at"].is_string());
    let api = env.pipeline.api_url();
    let list: Value = env.http.get(format!("{api}/v1/escalations")).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["open"][0]["message_id"], id.as_str());
    assert!(!list["open"][0]["to"].as_str().unwrap().contains("5550104"), "recipient is masked in the escalation list");
    let got = r.got.clone();
    assert!(wait_until(10, || got.lock().unwrap().iter().any(|e| e["type"] == "message.escalation")).await);
    // A second sweep does not escalate again.
    assert_eq!(env.sweep().await.escalated, 0);
    let ack = env.http.post(format!("{api}/v1/escalations/{id}/ack")).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(ack.status().as_u16(), 200);
    let again = env.http.post(format!("{api}/v1/escalations/{id}/ack")).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let list: Value = env.http.get(format!("{api}/v1/escalations")).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["open"].as_array().unwrap().len(), 0);
}

fn stored_message(env: &TestEnv, status: DeliveryStatus) -> Message {
    let now = chrono::Utc::now();
    Message {
        id: MessageId::new(),
        tenant: env.tenant.clone(),
        kind: MessageKind::Sms,
        category: ContentCategory::general(),
        to: E164::parse("+12015550123", None).unwrap(),
        from: None,
        sender_requested: false,
        body: Some("Bin collection moved to Tuesday.".into()),
        body_sha256: "0".repeat(64),
        media: vec![],
        encoding: Encoding::Gsm7,
        segments: 1,
        status,
        version: 1,
        provider: Some("sandbox-main".into()),
        provider_message_id: None,
        attempts: if status == DeliveryStatus::Sending { 1 } else { 0 },
        provider_attempts: if status == DeliveryStatus::Sending { 1 } else { 0 },
        failed_providers: vec![],
        priority: false,
        reason: None,
        error_code: None,
        operator: OperatorContext::default(),
        created_at: iso8601(now),
        updated_at: iso8601(now),
        sent_at: None,
        completed_at: None,
        next_attempt_at: Some(iso8601(now - chrono::Duration::seconds(5))),
        expires_at: iso8601(now + chrono::Duration::hours(1)),
        escalated_at: None,
        escalate_at: None,
        health_waits: 0,
        redact_at: None,
        redacted_at: None,
        retain_until: None,
        legal_hold: false,
        legal_hold_reason: None,
    }
}

async fn store(env: &TestEnv, m: &Message) {
    let first = MessageEvent {
        at: m.created_at.clone(),
        source: EventSource::Send,
        status: m.status,
        from_status: None,
        applied: true,
        provider: m.provider.clone(),
        provider_status: None,
        error_code: None,
        reason: Some("state staged by the test".into()),
        attempt: Some(m.attempts),
    };
    env.pipeline.deps.store.create_message(m, &first, None, chrono::Utc::now()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_interrupted_after_its_claim_is_recovered_by_the_sweep() {
    let env = TestEnv::start("crashclaim").await;
    // A send function claimed attempt 1 (status `sending`) and died before calling out.
    let m = stored_message(&env, DeliveryStatus::Sending);
    store(&env, &m).await;
    let report = env.sweep().await;
    assert_eq!(report.requeued, 1, "{report:?}");
    let done = env.wait_for(&m.id.to_string(), "delivered", 20).await;
    assert_eq!(done["attempts"], 2);
    assert!(history(&done).contains(&("retrying".into(), true)));
    assert_eq!(env.sandbox.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_jobs_are_surfaced_not_dropped() {
    let env = TestEnv::start("dlq").await;
    let m = stored_message(&env, DeliveryStatus::Accepted);
    let mut m = m;
    m.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &m).await;
    let dlq = env
        .pipeline
        .deps
        .cfg
        .dead_letter_queues
        .iter()
        .find(|(n, _)| n == "ROUTE_DLQ")
        .map(|(_, u)| u.clone())
        .expect("route DLQ configured from the template");
    let job = json!({"message_id": m.id, "tenant": env.tenant});
    env.pipeline.clients.sqs.send_message().queue_url(&dlq).message_body(job.to_string()).send().await.unwrap();
    let report = env.sweep().await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let (_, got) = env.get(&m.id.to_string()).await;
    assert_eq!(got["status"], "failed");
    assert!(got["reason"].as_str().unwrap().contains("ROUTE_DLQ"), "{got:#}");
    let left = env.pipeline.clients.sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    assert!(left.messages.unwrap_or_default().is_empty(), "surfaced records are removed from the DLQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_bulk_messages_but_never_emergency_callbacks() {
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1)).format("%H:%M").to_string();
    let end = (now + chrono::Duration::hours(1)).format("%H:%M").to_string();
    let env = TestEnv::start_with("quiet", &[dispatch_common::providers::ProviderKind::Sandbox], move |mut c| {
        c.delivery.quiet_hours = Some(serde_json::from_value(json!({"start": start, "end": end, "time_zone": "UTC"})).unwrap());
        c
    })
    .await;
    let (_, bulk) = env.submit(json!({"to": "+12015550123", "body": "Bin day moves to Friday.", "category": "resident_update"}), None).await;
    let (_, urgent) = env.submit(json!({"to": "+12015550124", "body": "Please call 911 back.", "category": "emergency_callback"}), None).await;
    env.wait_for(urgent["id"].as_str().unwrap(), "delivered", 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, held) = env.get(bulk["id"].as_str().unwrap()).await;
    assert_eq!(held["status"], "accepted", "{held:#}");
    assert!(held["history"].as_array().unwrap().iter().any(|e| e["reason"].as_str().unwrap_or_default().starts_with("held by quiet hours until")));
    assert!(held["next_attempt_at"].as_str().unwrap() > iso8601(now + chrono::Duration::minutes(50)).as_str());
    assert_eq!(env.sandbox.received().len(), 1, "only the emergency callback went out");
}

/// Dead-lettered jobs fail a message only while it still waits on exactly that job:
/// a tenant-callback record or a stale route/send record never fails a message that
/// moved on (here: one in `sent`, whose real receipt must still be accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_never_fail_a_message_that_moved_on() {
    let env = TestEnv::start("dlqstale").await;
    let dlq = |name: &str| env.pipeline.deps.cfg.dead_letter_queues.iter().find(|(n, _)| n == name).map(|(_, u)| u.clone()).unwrap();
    let mut sent = stored_message(&env, DeliveryStatus::Sent);
    sent.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &sent).await;
    let callback_job = json!({"tenant": env.tenant, "message_id": sent.id, "body": "{}", "attempt": 8});
    let stale_route = json!({"message_id": sent.id, "tenant": env.tenant});
    let stale_send = json!({"message_id": sent.id, "tenant": env.tenant, "provider_id": "sandbox-main", "from": "+12015550100"});
    let send_dlq = env.pipeline.deps.cfg.dead_letter_queues.iter().find(|(n, _)| n.starts_with("SEND_DLQ") && n.ends_with("SANDBOX")).map(|(_, u)| u.clone()).unwrap();
    for (url, body) in [(dlq("TENANT_CALLBACK_DLQ"), callback_job), (dlq("ROUTE_DLQ"), stale_route), (send_dlq.clone(), stale_send)] {
        env.pipeline.clients.sqs.send_message().queue_url(&url).message_body(body.to_string()).send().await.unwrap();
    }
    // A send job for a message queued on that very account is what it looks like.
    let mut queued = stored_message(&env, DeliveryStatus::Queued);
    queued.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &queued).await;
    let live_send = json!({"message_id": queued.id, "tenant": env.tenant, "provider_id": "sandbox-main", "from": "+12015550100"});
    env.pipeline.clients.sqs.send_message().queue_url(&send_dlq).message_body(live_send.to_string()).send().await.unwrap();

    let report = env.sweep().await;
    assert_eq!(report.dead_lettered, 4, "{report:?}");
    let (_, got) = env.get(&sent.id.to_string()).await;
    assert_eq!(got["status"], "sent", "{got:#}");
    let notes: Vec<&str> = got["history"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(notes.iter().any(|n| n.contains("tenant status callback could not be delivered")), "{notes:?}");
    assert_eq!(notes.iter().filter(|n| n.contains("stale job")).count(), 2, "{notes:?}");
    let (_, q) = env.get(&queued.id.to_string()).await;
    assert_eq!(q["status"], "failed", "{q:#}");
}

/// A receipt applies `sent` before `send` records it: send's own record is then a
/// duplicate, yet the provider's id, its lookup and the receipt deadline must still be
/// written (else the next receipt cannot find the message and the sweep expires it
/// once the claim's window has passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_that_overtakes_send_still_leaves_the_provider_id_and_deadline() {
    use dispatch_common::domain::ProviderMessageId;
    use dispatch_common::store::Change;
    let env = TestEnv::start("overtake").await;
    let deps = &env.pipeline.deps;
    let now = chrono::Utc::now();
    let mut m = stored_message(&env, DeliveryStatus::Sending);
    m.next_attempt_at = Some(iso8601(now + chrono::Duration::seconds(120)));
    store(&env, &m).await;
    deps.apply(m.id, Change::to(DeliveryStatus::Sent, EventSource::Webhook).provider("sandbox-main")).await.unwrap();
    let accepted = dispatch_common::providers::SendAccepted {
        provider_message_id: ProviderMessageId::parse("sbx_overtaken").unwrap(),
        status: DeliveryStatus::Sent,
        provider_status: Some("accepted".into()),
        segments: None,
    };
    let deadline = 6 * 3600;
    dispatch_common::handlers::send::record_accepted(deps, &m, "sandbox-main", &accepted, deadline, now).await.unwrap();
    let after = deps.store.get_message(m.id).await.unwrap().unwrap();
    assert_eq!(after.provider_message_id.as_ref().map(|p| p.as_str()), Some("sbx_overtaken"));
    assert_eq!(after.next_attempt_at, Some(iso8601(now + chrono::Duration::seconds(deadline))), "the receipt window, not the claim's");
    let found = deps.store.find_by_provider_id("sandbox-main", &accepted.provider_message_id).await.unwrap();
    assert_eq!(found.map(|(id, _)| id), Some(m.id), "later receipts find the message");
}

/// A transition that loses a write race re-applies its field edits to the fresh copy
/// (it used to retry with an empty edit, dropping provider ids, attempts, senders).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transition_that_loses_a_race_keeps_its_edits() {
    use dispatch_common::store::Change;
    let env = TestEnv::start("raceedit").await;
    let store_ = env.pipeline.deps.store.clone();
    let mut m = stored_message(&env, DeliveryStatus::Queued);
    m.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &m).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, snapshot, handle) = (calls.clone(), m.clone(), tokio::runtime::Handle::current());
    let change = Change::to(DeliveryStatus::Sending, EventSource::Send).edit(move |n: &mut Message| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // Someone else writes the message between this read and our write.
            let (s, snap) = (store_.clone(), snapshot.clone());
            tokio::task::block_in_place(|| {
                handle.block_on(async move { s.update_fields(&snap, |x| x.reason = Some("concurrent note".into()), "concurrent".into(), chrono::Utc::now()).await.unwrap() })
            });
        }
        n.attempts = 7;
        n.provider_attempts += 1;
    });
    let out = env.pipeline.deps.store.transition(m.id, change, chrono::Utc::now()).await.unwrap();
    assert!(matches!(out, dispatch_common::store::TransitionOutcome::Applied(_)), "{out:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "lost the race once, edited again");
    let after = env.pipeline.deps.store.get_message(m.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempts, after.provider_attempts), (DeliveryStatus::Sending, 7, m.provider_attempts + 1));
    assert_eq!(after.reason.as_deref(), Some("concurrent note"), "the other write is kept too");
}

/// An emergency callback stuck before `sent` (here: retrying with its next attempt
/// far off) still escalates when its delivery deadline passes, and keeps its own
/// retry schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_message_stuck_before_sent_escalates_on_time() {
    let env = TestEnv::start_with("stuckescalate", &[dispatch_common::providers::ProviderKind::Sandbox], |mut c| {
        c.delivery.delivery_deadline_secs.insert("emergency_callback".into(), 60);
        c
    })
    .await;
    let now = chrono::Utc::now();
    let mut m = stored_message(&env, DeliveryStatus::Retrying);
    m.category = ContentCategory::emergency_callback();
    m.priority = true;
    let later = iso8601(now + chrono::Duration::minutes(10));
    m.next_attempt_at = Some(later.clone());
    m.escalate_at = Some(iso8601(now - chrono::Duration::seconds(1)));
    store(&env, &m).await;
    let report = env.sweep().await;
    assert_eq!(report.escalated, 1, "{report:?}");
    let open = env.pipeline.deps.store.list_escalations(&env.tenant).await.unwrap();
    assert_eq!(open.iter().map(|e| (e.message_id, e.status_at_escalation)).collect::<Vec<_>>(), [(m.id, DeliveryStatus::Retrying)]);
    let after = env.pipeline.deps.store.get_message(m.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.next_attempt_at.as_deref()), (DeliveryStatus::Retrying, Some(later.as_str())), "its retry schedule is untouched");
    assert!(after.escalated_at.is_some());
    // Once escalated it is not due again until its own next attempt.
    assert_eq!(env.sweep().await.escalated, 0);
}

/// Open circuits do not hold a message forever: after the retry policy's share of
/// waits it ends visibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_open_circuits_is_bounded_by_the_retry_policy() {
    let env = TestEnv::start("circuitbound").await;
    let deps = &env.pipeline.deps;
    let now = chrono::Utc::now();
    for _ in 0..5 {
        deps.store.record_outcome(&env.tenant, "sandbox-main", false, now).await.unwrap();
    }
    let cfg = deps.tenant(&env.tenant).await.unwrap().unwrap();
    let limit = cfg.retry.max_attempts * dispatch_common::handlers::route::HEALTH_WAITS_PER_ATTEMPT;
    let mut m = stored_message(&env, DeliveryStatus::Accepted);
    m.health_waits = limit;
    m.next_attempt_at = Some(iso8601(now + chrono::Duration::hours(1)));
    store(&env, &m).await;
    let job = dispatch_common::queue::RouteJob { message_id: m.id, tenant: env.tenant.clone(), exclude: vec![] };
    deps.queues.send(&deps.cfg.route_queue_url, &job, 0).await.unwrap();
    let got = env.wait_for(&m.id.to_string(), "rejected", 20).await;
    assert!(got["reason"].as_str().unwrap().contains("circuit stayed open"), "{got:#}");
}

/// A send batch handed over with too little time left for a provider call starts
/// none: its records go back to the queue untouched (the message stays `queued`, not
/// claimed), instead of Lambda killing the invocation mid-call. With time to spare the
/// same batch sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_batch_never_starts_a_call_it_cannot_finish() {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use dispatch_common::handlers::send;
    use dispatch_common::providers::ProviderKind;
    let env = TestEnv::start("senddeadline").await;
    let mut m = stored_message(&env, DeliveryStatus::Queued);
    m.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &m).await;
    let batch = || {
        let mut event = SqsEvent::default();
        let mut r = SqsMessage::default();
        r.message_id = Some("rec-0".into());
        r.body = Some(json!({"message_id": m.id, "tenant": env.tenant, "provider_id": "sandbox-main", "from": "+12015550100"}).to_string());
        event.records.push(r);
        event
    };
    let short = std::time::Instant::now() + Duration::from_secs(2);
    let out = send::handle_batch_until(&env.pipeline.deps, ProviderKind::Sandbox, batch(), short).await;
    assert_eq!(out.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect::<Vec<_>>(), ["rec-0"]);
    assert!(env.sandbox.received().is_empty(), "no provider call was started");
    assert_eq!(env.pipeline.deps.store.get_message(m.id).await.unwrap().unwrap().status, DeliveryStatus::Queued, "not claimed");
    let ample = std::time::Instant::now() + Duration::from_secs(60);
    let out = send::handle_batch_until(&env.pipeline.deps, ProviderKind::Sandbox, batch(), ample).await;
    assert!(out.batch_item_failures.is_empty());
    assert_eq!(env.sandbox.received().len(), 1);
}

/// A tenant endpoint that never answers: a batch of callbacks to it costs one timeout
/// in all (they run concurrently), so every job in the batch is settled (its failed
/// attempt recorded and its retry queued) inside one invocation's deadline, none is
/// handed back to be redelivered and multiplied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_tenant_endpoint_costs_one_timeout_per_batch() {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            h.lock().unwrap().push(sock);
        }
    });
    let url = format!("http://{addr}/events");
    let env = TestEnv::start_with("hangingcad", &[dispatch_common::providers::ProviderKind::Sandbox], move |mut c| {
        let secret_id = format!("dispatch/{}/callback/cad", c.tenant);
        c.callback = Some(serde_json::from_value(json!({"url": url, "secret_id": secret_id})).unwrap());
        c
    })
    .await;
    dispatch_local::seed::put_secret(&env.pipeline.clients, &format!("dispatch/{}/callback/cad", env.tenant), "cad-secret").await.unwrap();
    let mut m = stored_message(&env, DeliveryStatus::Sent);
    m.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &m).await;
    let mut event = SqsEvent::default();
    for i in 0..5 {
        let mut r = SqsMessage::default();
        r.message_id = Some(format!("cb-{i}"));
        r.body = Some(json!({"tenant": env.tenant, "message_id": m.id, "body": "{}", "attempt": 1}).to_string());
        event.records.push(r);
    }
    // Room for one 5 s callback timeout, not for five in a row.
    let deadline = std::time::Instant::now() + Duration::from_secs(9);
    let out = dispatch_common::handlers::callbacks::handle_batch_until(&env.pipeline.deps, event, deadline).await;
    assert!(out.batch_item_failures.is_empty(), "{:?}", out.batch_item_failures.iter().map(|f| &f.item_identifier).collect::<Vec<_>>());
    let (_, got) = env.get(&m.id.to_string()).await;
    let notes: Vec<&str> = got["history"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(notes.iter().filter(|n| n.contains("tenant callback attempt 1 failed (timed out)")).count(), 5, "{notes:?}");
}

/// An operator cancels a message waiting to be routed: it ends `canceled` with the
/// key and reason in its history, a later route job does nothing, and canceling again
/// is harmless; a message already handed to a provider answers 409 `not_cancelable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_can_be_canceled_until_it_is_handed_to_a_provider() {
    let env = TestEnv::start("cancel").await;
    let api = env.pipeline.api_url();
    let mut waiting = stored_message(&env, DeliveryStatus::Retrying);
    waiting.next_attempt_at = Some(iso8601(chrono::Utc::now() + chrono::Duration::hours(1)));
    store(&env, &waiting).await;
    let url = format!("{api}/v1/messages/{}", waiting.id);
    let r = env.http.delete(&url).bearer_auth(&env.key).body(r#"{"reason":"sent to the wrong road"}"#).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let (_, got) = env.get(&waiting.id.to_string()).await;
    assert_eq!(got["status"], "canceled");
    assert!(got["reason"].as_str().unwrap().contains("sent to the wrong road"), "{got:#}");
    // A route job that was already queued finds it canceled and leaves it.
    let job = dispatch_common::queue::RouteJob { message_id: waiting.id, tenant: env.tenant.clone(), exclude: vec![] };
    let deps = &env.pipeline.deps;
    deps.queues.send(&deps.cfg.route_queue_url, &job, 0).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.get(&waiting.id.to_string()).await.1["status"], "canceled");
    assert!(env.sandbox.received().is_empty());
    assert_eq!(env.http.delete(&url).bearer_auth(&env.key).send().await.unwrap().status().as_u16(), 200, "again: harmless");

    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Bin day moved.", "category": "general"}), None).await;
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    let r = env.http.delete(format!("{api}/v1/messages/{id}")).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "not_cancelable");
    // Auditors cannot cancel.
    let auditor = dispatch_local::seed::create_key(deps, &env.tenant, dispatch_common::auth::Role::Auditor).await.unwrap();
    assert_eq!(env.http.delete(&url).bearer_auth(&auditor).send().await.unwrap().status().as_u16(), 403);
}

/// A send job redelivered while the first delivery's provider call is still in flight
/// (a slow provider) finds the message claimed and does nothing: the provider gets the
/// message once, and it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_send_job_during_a_slow_provider_call_sends_nothing_twice() {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use dispatch_common::handlers::send;
    use dispatch_common::providers::ProviderKind;
    let env = TestEnv::start("slowredeliver").await;
    let (s, b) = env.submit(json!({"to": numbers::SLOW, "body": "Your callback is on its way.", "category": "general"}), None).await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "sending", 10).await;
    // The same job again, as SQS would redeliver it, while the first call is in flight.
    let mut event = SqsEvent::default();
    let mut r = SqsMessage::default();
    r.message_id = Some("redelivered".into());
    r.body = Some(json!({"message_id": id, "tenant": env.tenant, "provider_id": "sandbox-main", "from": "+12015550100"}).to_string());
    event.records.push(r);
    let out = send::handle_batch_until(&env.pipeline.deps, ProviderKind::Sandbox, event, std::time::Instant::now() + Duration::from_secs(60)).await;
    assert!(out.batch_item_failures.is_empty(), "a stale job is done, not retried");
    env.wait_for(&id, "delivered", 20).await;
    let n = env.sandbox.received().iter().filter(|m| m["client_ref"] == id.as_str()).count();
    assert_eq!(n, 1, "the provider received it {n} times");
}
