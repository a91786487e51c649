//! The sandbox provider end to end over real HTTP, without AWS: the adapter builds the
//! send, `providers::http::execute` performs it against a running `SandboxProvider`,
//! and a loopback receiver collects the signed callbacks, which the adapter verifies
//! and parses. Each documented number must end in its documented state.

use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_common::domain::{DeliveryStatus, MessageId, MessageKind, SenderId, TransitionVerdict, E164};
use dispatch_common::providers::credentials::{SandboxCredentials, Secret};
use dispatch_common::providers::sandbox::SandboxAdapter;
use dispatch_common::providers::{
    http, Callback, Credentials, OutboundMessage, ProviderAdapter, ProviderRequest, SendAccepted, SendError, StatusUpdate,
};
use dispatch_common::signatures::{VerifyError, WebhookRequest};
use dispatch_local::sandbox::{numbers, CallbackRetry, SandboxConfig, SandboxProvider, MEDIA_PNG};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const API_KEY: &str = "sk_sandbox_integration";
const WEBHOOK_SECRET: &str = "whsec_sandbox_integration";
const EVENT_DELAY: Duration = Duration::from_millis(20);

const CALLBACK_PATH: &str = "/webhooks/sandbox?tenant=psap-north";

/// A valid number with the default (delivered) outcome.
const STAND_IN: &str = "+447400123456";

type Msg = OutboundMessage;

struct Harness {
    sandbox: SandboxProvider,
    receiver: Receiver,
    creds: Credentials,
    client: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(0).await
    }

    async fn start_with(fail_first: usize) -> Harness {
        // Quick retries: these tests watch the sandbox give up.
        let quick = CallbackRetry { attempts: 5, first_wait: Duration::from_millis(200), max_wait: Duration::from_secs(2) };
        let cfg = SandboxConfig { event_delay: EVENT_DELAY, callback_retry: quick, ..SandboxConfig::new(API_KEY, WEBHOOK_SECRET) };
        let sandbox = SandboxProvider::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("sandbox binds");
        let receiver = Receiver::start_failing_first(CALLBACK_PATH, fail_first).await;
        let creds = creds_with(&sandbox.base_url(), API_KEY, WEBHOOK_SECRET);
        Harness { sandbox, receiver, creds, client: http::client(Duration::from_secs(5)) }
    }

    /// A message for `to` (every documented sandbox number is valid E.164).
    fn message(&self, to: &str, media: Vec<String>) -> Msg {
        OutboundMessage {
            id: MessageId::new(),
            kind: if media.is_empty() { MessageKind::Sms } else { MessageKind::Mms },
            to: E164::parse(to, None).expect("sandbox numbers are valid E.164"),
            from: SenderId::Alphanumeric("CityAlerts".into()),
            body: "Flood warning: move to higher ground.".into(),
            media_urls: media,
            status_callback_url: self.receiver.url(),
            validity_secs: Some(3600),
        }
    }

    fn build(&self, m: &Msg) -> Result<ProviderRequest, SendError> {
        SandboxAdapter.build_send(&self.creds, m)
    }

    /// One attempt through the adapter and the shared HTTP executor.
    async fn attempt(&self, m: &Msg) -> Result<SendAccepted, SendError> {
        let req = self.build(m)?;
        let resp = http::execute(&self.client, &req).await?;
        SandboxAdapter.parse_send_response(&resp)
    }

    /// Verified, parsed status updates for one message (by `client_ref`), in arrival order.
    fn updates_for(&self, msg: &Msg) -> Vec<(WebhookRequest, StatusUpdate)> {
        let now = chrono::Utc::now().timestamp();
        let mut out = Vec::new();
        for req in self.receiver.all() {
            SandboxAdapter.verify_callback(&self.creds, &req, now).expect("sandbox callbacks verify");
            if let Callback::Status(updates) = SandboxAdapter.parse_callback(&req).expect("sandbox callbacks parse") {
                for u in updates {
                    if u.client_ref.as_deref() == Some(msg.id.to_string().as_str()) {
                        out.push((req.clone(), u));
                    }
                }
            }
        }
        out
    }

    /// Waits until `n` status callbacks for `msg` arrived, then a little longer so
    /// that any unexpected extra one would show.
    async fn await_updates(&self, msg: &Msg, n: usize) -> Vec<(WebhookRequest, StatusUpdate)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.updates_for(msg).len() < n {
            assert!(Instant::now() < deadline, "timed out waiting for {n} callbacks: {:?}", self.statuses(msg));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(EVENT_DELAY * 6).await;
        self.updates_for(msg)
    }

    fn statuses(&self, msg: &Msg) -> Vec<DeliveryStatus> {
        self.updates_for(msg).into_iter().map(|(_, u)| u.status).collect()
    }
}

fn creds_with(base: &str, api_key: &str, webhook_secret: &str) -> Credentials {
    Credentials::Sandbox(SandboxCredentials {
        api_key: Secret::new(api_key),
        webhook_secret: Secret::new(webhook_secret),
        api_base_url: base.to_string(),
    })
}

/// Applies callbacks to a message that `send` left in `sent`, the way the store does.
fn final_state(updates: &[(WebhookRequest, StatusUpdate)]) -> (DeliveryStatus, Vec<TransitionVerdict>) {
    let mut state = DeliveryStatus::Sent;
    let mut verdicts = Vec::new();
    for (_, u) in updates {
        let v = state.transition_to(u.status);
        if v == TransitionVerdict::Apply {
            state = u.status;
        }
        verdicts.push(v);
    }
    (state, verdicts)
}

fn assert_accepted(r: &Result<SendAccepted, SendError>) -> &SendAccepted {
    let ok = r.as_ref().expect("accepted");
    assert!(ok.provider_message_id.as_str().starts_with("sbx_"), "{ok:?}");
    assert_eq!(ok.provider_message_id.as_str().len(), 4 + 26);
    assert_eq!(ok.status, DeliveryStatus::Sent);
    assert_eq!(ok.provider_status.as_deref(), Some("accepted"));
    assert_eq!(ok.segments, Some(1));
    ok
}

fn assert_ids(updates: &[(WebhookRequest, StatusUpdate)], accepted: &SendAccepted) {
    for (req, u) in updates {
        assert_eq!(u.provider_message_id, accepted.provider_message_id);
        assert!(u.occurred_at.as_deref().is_some_and(|t| t.ends_with('Z')), "{u:?}");
        assert!(SandboxAdapter.replay_key(req).is_some_and(|k| k.starts_with("t=")));
        assert!(req.url.contains("/webhooks/sandbox?tenant=psap-north"), "{}", req.url);
    }
}

#[tokio::test]
async fn ordinary_number_is_sent_then_delivered() {
    let h = Harness::start().await;
    let msg = h.message(numbers::DELIVERED, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    assert_ids(&updates, accepted);
    let statuses: Vec<_> = updates.iter().map(|(_, u)| u.status).collect();
    assert_eq!(statuses, vec![DeliveryStatus::Sent, DeliveryStatus::Delivered]);
    assert_eq!(final_state(&updates).0, DeliveryStatus::Delivered);
    assert!(updates.iter().all(|(_, u)| u.error_code.is_none()));
    assert_eq!(h.sandbox.callbacks_sent(), 2);

    // What the sandbox recorded is exactly what the adapter sent.
    let rec = h.sandbox.received();
    assert_eq!(rec.len(), 1);
    let r0 = &rec[0];
    assert_eq!(r0["direction"], "outbound");
    assert_eq!(r0["to"], numbers::DELIVERED);
    assert_eq!(r0["from"], "CityAlerts");
    assert_eq!(r0["client_ref"], msg.id.to_string());
    assert_eq!(r0["validity_secs"], 3600);
    assert_eq!(r0["outcome"], "accepted");
    assert_eq!(r0["id"], accepted.provider_message_id.as_str());
}

#[tokio::test]
async fn any_valid_number_goes_through_untouched_and_is_delivered() {
    // No stand-in here: the request is exactly what the adapter built.
    let h = Harness::start().await;
    let msg = h.message(STAND_IN, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    assert_ids(&updates, accepted);
    assert_eq!(final_state(&updates).0, DeliveryStatus::Delivered);
    assert_eq!(h.sandbox.received()[0]["to"], STAND_IN);
}

#[tokio::test]
async fn absent_subscriber_ends_undelivered() {
    let h = Harness::start().await;
    let msg = h.message(numbers::UNDELIVERED, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    assert_ids(&updates, accepted);
    let statuses: Vec<_> = updates.iter().map(|(_, u)| u.status).collect();
    assert_eq!(statuses, vec![DeliveryStatus::Sent, DeliveryStatus::Undelivered]);
    assert_eq!(updates[1].1.error_code.as_deref(), Some("absent_subscriber"));
    assert_eq!(updates[1].1.provider_status, "undelivered");
    assert_eq!(final_state(&updates).0, DeliveryStatus::Undelivered);
}

#[tokio::test]
async fn invalid_destination_is_permanent_and_silent() {
    let h = Harness::start().await;
    let msg = h.message(numbers::INVALID_DESTINATION, vec![]);
    for _ in 0..2 {
        let e = h.attempt(&msg).await.unwrap_err();
        assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "invalid_destination"), "{e:?}");
    }
    tokio::time::sleep(EVENT_DELAY * 6).await;
    assert!(h.receiver.all().is_empty());
    assert_eq!(h.sandbox.callbacks_sent(), 0);
    let rec = h.sandbox.received();
    assert_eq!(rec.len(), 2);
    assert!(rec.iter().all(|r| r["outcome"] == "invalid_destination" && r["http_status"] == 400 && r["id"].is_null()));
}

#[tokio::test]
async fn unavailable_once_then_delivered_on_retry() {
    let h = Harness::start().await;
    let msg = h.message(numbers::UNAVAILABLE_ONCE, vec![]);
    let e = h.attempt(&msg).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient { code: Some(c), .. } if c == "unavailable"), "{e:?}");
    // Retry of the same message (same client_ref) goes through.
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    assert_ids(&updates, accepted);
    assert_eq!(final_state(&updates).0, DeliveryStatus::Delivered);
    // Another message to the same number gets its own first failure.
    let other = h.message(numbers::UNAVAILABLE_ONCE, vec![]);
    assert!(h.attempt(&other).await.unwrap_err().is_transient());
    assert_accepted(&h.attempt(&other).await);
}

#[tokio::test]
async fn no_receipt_stays_sent() {
    let h = Harness::start().await;
    let msg = h.message(numbers::NO_RECEIPT, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 1).await;
    tokio::time::sleep(EVENT_DELAY * 10).await;
    let updates_later = h.updates_for(&msg);
    assert_eq!(updates_later.len(), 1, "no final receipt ever arrives");
    assert_ids(&updates, accepted);
    assert_eq!(updates[0].1.status, DeliveryStatus::Sent);
    let (state, _) = final_state(&updates);
    assert_eq!(state, DeliveryStatus::Sent);
    assert!(!state.is_terminal());
}

#[tokio::test]
async fn rate_limited_once_honours_retry_after_then_delivered() {
    let h = Harness::start().await;
    let msg = h.message(numbers::RATE_LIMITED_ONCE, vec![]);
    let e = h.attempt(&msg).await.unwrap_err();
    let SendError::Transient { code, retry_after_secs, .. } = &e else { panic!("{e:?}") };
    assert_eq!(code.as_deref(), Some("rate_limited"));
    assert_eq!(*retry_after_secs, Some(1));
    tokio::time::sleep(Duration::from_secs(retry_after_secs.unwrap())).await;
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    assert_ids(&updates, accepted);
    assert_eq!(final_state(&updates).0, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn carrier_rejection_ends_failed() {
    let h = Harness::start().await;
    let msg = h.message(numbers::FAILED, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 1).await;
    assert_ids(&updates, accepted);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].1.status, DeliveryStatus::Failed);
    assert_eq!(updates[0].1.error_code.as_deref(), Some("carrier_rejected"));
    assert_eq!(final_state(&updates).0, DeliveryStatus::Failed);
}

#[tokio::test]
async fn out_of_order_and_duplicate_receipts_end_delivered() {
    let h = Harness::start().await;
    let msg = h.message(numbers::OUT_OF_ORDER, vec![]);
    let r = h.attempt(&msg).await;
    let accepted = assert_accepted(&r);
    let updates = h.await_updates(&msg, 3).await;
    assert_ids(&updates, accepted);
    let statuses: Vec<_> = updates.iter().map(|(_, u)| u.status).collect();
    assert_eq!(statuses, vec![DeliveryStatus::Delivered, DeliveryStatus::Sent, DeliveryStatus::Delivered]);
    // The late `sent` happened before `delivered`; the duplicate is the same event.
    let at = |i: usize| dispatch_common::time::parse_iso8601(updates[i].1.occurred_at.as_deref().unwrap()).unwrap();
    assert!(at(1) < at(0));
    assert_eq!(updates[0].0.body, updates[2].0.body);
    let (state, verdicts) = final_state(&updates);
    assert_eq!(state, DeliveryStatus::Delivered);
    assert_eq!(verdicts, vec![TransitionVerdict::Apply, TransitionVerdict::Refuse, TransitionVerdict::Duplicate]);
}

#[tokio::test]
async fn all_documented_numbers_in_one_run() {
    // The same table the docs give, driven the way `send` drives a provider:
    // one attempt, and one retry where the first answer is transient.
    let h = Harness::start().await;
    let table: [(&str, Option<DeliveryStatus>); 8] = [
        (numbers::DELIVERED, Some(DeliveryStatus::Delivered)),
        (numbers::UNDELIVERED, Some(DeliveryStatus::Undelivered)),
        (numbers::INVALID_DESTINATION, None),
        (numbers::UNAVAILABLE_ONCE, Some(DeliveryStatus::Delivered)),
        (numbers::NO_RECEIPT, Some(DeliveryStatus::Sent)),
        (numbers::RATE_LIMITED_ONCE, Some(DeliveryStatus::Delivered)),
        (numbers::FAILED, Some(DeliveryStatus::Failed)),
        (numbers::OUT_OF_ORDER, Some(DeliveryStatus::Delivered)),
    ];
    let expected_callbacks = [2, 2, 0, 2, 1, 2, 1, 3];
    let mut sent = Vec::new();
    for (to, expected) in table {
        let msg = h.message(to, vec![]);
        let mut r = h.attempt(&msg).await;
        if matches!(&r, Err(e) if e.is_transient()) {
            r = h.attempt(&msg).await; // retry_after is honoured in its own test
        }
        match expected {
            None => assert!(matches!(r, Err(SendError::Permanent { .. })), "{to}: {r:?}"),
            Some(_) => {
                assert_accepted(&r);
            }
        }
        sent.push((msg, expected));
    }
    for ((msg, expected), n) in sent.iter().zip(expected_callbacks) {
        let Some(expected) = expected else { continue };
        let updates = h.await_updates(msg, n).await;
        assert_eq!(updates.len(), n, "{}", msg.to);
        assert_eq!(final_state(&updates).0, *expected, "{}", msg.to);
    }
    assert_eq!(h.sandbox.callbacks_sent(), expected_callbacks.iter().sum::<usize>());
}

#[tokio::test]
async fn callbacks_are_retried_when_the_receiver_fails() {
    let h = Harness::start_with(2).await;
    let msg = h.message(numbers::DELIVERED, vec![]);
    let r = h.attempt(&msg).await;
    assert_accepted(&r);
    let updates = h.await_updates(&msg, 2).await;
    let statuses: Vec<_> = updates.iter().map(|(_, u)| u.status).collect();
    assert_eq!(statuses, vec![DeliveryStatus::Sent, DeliveryStatus::Delivered]);
    assert_eq!(h.receiver.hits(), 4, "two refused attempts, then two accepted");
    assert_eq!(h.sandbox.callbacks_sent(), 2);
    assert_eq!(h.sandbox.callbacks_abandoned(), 0);
}

#[tokio::test]
async fn unreachable_receiver_is_given_up_on() {
    let h = Harness::start().await;
    // A port nothing listens on (bound, then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut msg = h.message(numbers::FAILED, vec![]);
    msg.status_callback_url = format!("http://{dead}/webhooks/sandbox");
    assert_accepted(&h.attempt(&msg).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.sandbox.callbacks_abandoned() < 1 {
        assert!(Instant::now() < deadline, "the sandbox never gave up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.sandbox.callbacks_sent(), 0);
}

#[tokio::test]
async fn forged_and_tampered_callbacks_fail_verification() {
    let h = Harness::start().await;
    let msg = h.message(numbers::DELIVERED, vec![]);
    assert_accepted(&h.attempt(&msg).await);
    let updates = h.await_updates(&msg, 2).await;
    let genuine = updates[0].0.clone();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(SandboxAdapter.verify_callback(&h.creds, &genuine, now), Ok(()));

    // Someone else's secret.
    let wrong = creds_with(&h.sandbox.base_url(), API_KEY, "whsec_someone_else");
    assert_eq!(SandboxAdapter.verify_callback(&wrong, &genuine, now), Err(VerifyError::SignatureMismatch));
    // The body changed in transit.
    let mut tampered = genuine.clone();
    tampered.body = String::from_utf8(tampered.body).unwrap().replace("\"sent\"", "\"failed\"").into_bytes();
    assert_ne!(tampered.body, genuine.body);
    assert!(SandboxAdapter.verify_callback(&h.creds, &tampered, now).is_err());
    // Replayed much later.
    assert!(matches!(
        SandboxAdapter.verify_callback(&h.creds, &genuine, now + 3600),
        Err(VerifyError::TimestampOutOfTolerance(_))
    ));
    // Signature stripped.
    let mut stripped = genuine.clone();
    stripped.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("sandbox-signature"));
    assert!(SandboxAdapter.verify_callback(&h.creds, &stripped, now).is_err());
}

#[tokio::test]
async fn send_errors_follow_the_protocol() {
    let h = Harness::start().await;
    let msg = h.message(numbers::DELIVERED, vec![]);

    // Wrong key: permanent `unauthorized`, nothing recorded.
    let bad = creds_with(&h.sandbox.base_url(), "sk_wrong", WEBHOOK_SECRET);
    let req = SandboxAdapter.build_send(&bad, &msg).unwrap();
    let resp = http::execute(&h.client, &req).await.unwrap();
    assert_eq!(resp.status, 401);
    let e = SandboxAdapter.parse_send_response(&resp).unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "unauthorized"), "{e:?}");

    let url = format!("{}/v1/messages", h.sandbox.base_url());
    let post = |body: String, auth: Option<&'static str>| {
        let mut rb = h.client.post(&url).header("content-type", "application/json").body(body);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        rb.send()
    };
    let auth = Some("Bearer sk_sandbox_integration");
    let cb = h.receiver.url();
    let cases = [
        (json!({"body": "x", "callback_url": cb}).to_string(), auth, 400, "invalid_request"),
        (json!({"to": "+12015550100", "callback_url": cb}).to_string(), auth, 400, "invalid_request"),
        (json!({"to": "+12015550100", "body": "x"}).to_string(), auth, 400, "invalid_request"),
        (json!({"to": "07700900100", "body": "x", "callback_url": cb}).to_string(), auth, 400, "invalid_request"),
        (json!({"to": "+44 7700 900100", "body": "x", "callback_url": cb}).to_string(), auth, 400, "invalid_request"),
        ("{not json".to_string(), auth, 400, "invalid_request"),
        (json!({"to": "+12015550100", "body": "x", "callback_url": cb}).to_string(), None, 401, "unauthorized"),
    ];
    for (body, auth, status, code) in cases {
        let resp = post(body.clone(), auth).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(v["error"]["message"].is_string());
    }
    assert!(h.sandbox.received().is_empty(), "refused requests are not recorded");

    // 429 carries Retry-After: 1 on the wire.
    let limited = h.message(numbers::RATE_LIMITED_ONCE, vec![]);
    let resp = http::execute(&h.client, &h.build(&limited).unwrap()).await.unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(http::retry_after_secs(&resp), Some(1));
}

#[tokio::test]
async fn mms_with_sandbox_media() {
    let h = Harness::start().await;
    let media = vec![format!("{}/sandbox/media/photo.png", h.sandbox.base_url())];
    let msg = h.message(numbers::DELIVERED, media.clone());
    let r = h.attempt(&msg).await;
    assert_accepted(&r);
    let rec = h.sandbox.received();
    assert_eq!(rec[0]["media_urls"], json!(media));

    let resp = h.client.get(&media[0]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[..], MEDIA_PNG);
    let missing = h.client.get(format!("{}/sandbox/media/", h.sandbox.base_url())).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn inbound_simulation_posts_a_signed_inbound_message() {
    let h = Harness::start().await;
    let media_url = format!("{}/sandbox/media/reply.png", h.sandbox.base_url());
    let url = format!("{}/sandbox/inbound", h.sandbox.base_url());
    let body = json!({
        "from": "+120155501555",
        "to": "+120155501999",
        "text": "Need help at 12 Elm St",
        "media": [{"url": media_url, "content_type": "image/png"}],
        "callback_url": h.receiver.url(),
    });

    // The simulation endpoint takes the same key as sends.
    let unauth = h.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unauth.status().as_u16(), 401);

    let resp = h.client.post(&url).bearer_auth(API_KEY).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let ack: Value = resp.json().await.unwrap();
    let id = ack["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sbx_in_"), "{id}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let req = loop {
        if let Some(r) = h.receiver.all().into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no inbound callback");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let now = chrono::Utc::now().timestamp();
    SandboxAdapter.verify_callback(&h.creds, &req, now).expect("inbound callbacks are signed");
    let Callback::Inbound(m) = SandboxAdapter.parse_callback(&req).unwrap() else { panic!("not inbound") };
    assert_eq!(m.provider_message_id, id);
    assert_eq!(m.from, "+120155501555");
    assert_eq!(m.to, "+120155501999");
    assert_eq!(m.text, "Need help at 12 Elm St");
    assert_eq!(m.media.len(), 1);
    assert_eq!(m.media[0].url, media_url);
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/png"));
    assert!(m.received_at.as_deref().is_some_and(|t| t.ends_with('Z')));

    // The media it points at is a real PNG.
    let png = h.client.get(&m.media[0].url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Listed by GET /sandbox/messages (and received()).
    let listed: Value = h.client.get(format!("{}/sandbox/messages", h.sandbox.base_url())).send().await.unwrap().json().await.unwrap();
    let listed = listed["messages"].as_array().unwrap().clone();
    assert_eq!(listed, h.sandbox.received());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["direction"], "inbound");
    assert_eq!(listed[0]["id"], id);

    // Bad simulations are refused.
    let bad = h
        .client
        .post(&url)
        .bearer_auth(API_KEY)
        .json(&json!({"from": "nobody", "to": "+120155501999", "callback_url": h.receiver.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");
}
