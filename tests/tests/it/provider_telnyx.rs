//! The Telnyx adapter over real HTTP against the fake Telnyx (no AWS): sends go
//! through `providers::http::execute`, callbacks are POSTed by the fake to a loopback
//! receiver, then verified and parsed by the adapter exactly as the webhook function
//! would.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::telnyx::TelnyxAdapter;
use dispatch_common::providers::{Callback, Credentials, OutboundMessage, ProviderAdapter, SendError, http};
use dispatch_common::signatures::VerifyError;
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::telnyx::{API_KEY, FakeTelnyx, Forgery, MESSAGING_PROFILE_ID, Outcome};
use serde_json::{Value, json};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/telnyx/psap-north";

struct Harness {
    fake: FakeTelnyx,
    receiver: Receiver,
    creds: Credentials,
    client: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let fake = FakeTelnyx::start().await;
        let receiver = Receiver::start(CALLBACK_PATH).await;
        let creds = fake.credentials(Some(MESSAGING_PROFILE_ID));
        Harness { fake, receiver, creds, client: http::client(Duration::from_secs(5)) }
    }

    fn message(&self, kind: MessageKind, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            kind,
            to: E164::parse("+12015550123", None).unwrap(),
            from: SenderId::LongCode(E164::parse("+12015550124", None).unwrap()),
            body: "Water main break on 5th Ave: avoid the area.".into(),
            media_urls: media,
            status_callback_url: self.receiver.url(),
            validity_secs: Some(3600),
        }
    }

    async fn send_with(
        &self,
        creds: &Credentials,
        client: &reqwest::Client,
        msg: &OutboundMessage,
    ) -> Result<String, SendError> {
        let req = TelnyxAdapter.build_send(creds, msg)?;
        let resp = http::execute(client, &req).await?;
        TelnyxAdapter.parse_send_response(&resp).map(|a| a.provider_message_id.as_str().to_owned())
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        self.send_with(&self.creds, &self.client, msg).await
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn accepted_send_returns_the_fake_id_and_the_request_is_telnyx_shaped() {
    let h = Harness::start().await;
    let msg = h.message(MessageKind::Sms, vec![]);
    let id = h.send(&msg).await.expect("accepted");
    assert!(is_uuid(&id), "telnyx ids are UUIDs: {id}");

    let reqs = h.fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri.path(), "/v2/messages");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {API_KEY}").as_str()));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["to"], "+12015550123");
    assert_eq!(body["from"], "+12015550124");
    assert_eq!(body["type"], "SMS");
    assert_eq!(body["messaging_profile_id"], MESSAGING_PROFILE_ID);
    assert_eq!(body["webhook_url"], h.receiver.url());
    assert_eq!(body["use_profile_webhooks"], false);

    // MMS through the same path.
    let mms = h.message(MessageKind::Mms, vec!["https://media.example.org/evac.jpg".into()]);
    let id2 = h.send(&mms).await.expect("accepted");
    assert_ne!(id, id2);
    let body: Value = serde_json::from_slice(&h.fake.requests()[1].body).unwrap();
    assert_eq!(body["type"], "MMS");
    assert_eq!(body["media_urls"], json!(["https://media.example.org/evac.jpg"]));
}

#[tokio::test]
async fn scripted_failures_are_classified() {
    let h = Harness::start().await;
    h.fake.script(vec![
        Outcome::RateLimited(7),
        Outcome::ServerError(503),
        Outcome::ServerError(500),
        Outcome::Permanent("10002".into()),
        Outcome::Accept,
    ]);
    let msg = h.message(MessageKind::Sms, vec![]);

    match h.send(&msg).await {
        Err(SendError::Transient { code, retry_after_secs, .. }) => {
            assert_eq!(code.as_deref(), Some("10011"));
            assert_eq!(retry_after_secs, Some(7));
        }
        other => panic!("429 must be transient: {other:?}"),
    }
    for _ in 0..2 {
        let e = h.send(&msg).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.code(), Some("10007"));
    }
    match h.send(&msg).await {
        Err(SendError::Permanent { code, message }) => {
            assert_eq!(code.as_deref(), Some("10002"));
            assert!(message.contains("Invalid phone number"), "{message}");
        }
        other => panic!("invalid number must be permanent: {other:?}"),
    }
    assert!(h.send(&msg).await.is_ok(), "script exhausted → accept");
}

#[tokio::test]
async fn a_slow_provider_is_a_transient_timeout() {
    let h = Harness::start().await;
    h.fake.script(vec![Outcome::Timeout(Duration::from_secs(3))]);
    let impatient = http::client(Duration::from_millis(300));
    let e = h.send_with(&h.creds, &impatient, &h.message(MessageKind::Sms, vec![])).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.code(), Some("timeout"));
}

#[tokio::test]
async fn the_fake_refuses_what_telnyx_refuses() {
    let h = Harness::start().await;
    // Wrong API key: 401 / 10009, permanent.
    let Credentials::Telnyx(mut c) = h.creds.clone() else { unreachable!() };
    c.api_key = dispatch_common::providers::credentials::Secret::new("KEY-wrong");
    let e = h.send_with(&Credentials::Telnyx(c), &h.client, &h.message(MessageKind::Sms, vec![])).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "10009"), "{e:?}");

    // A hand-made request without `to`: 400 / 10004 with the pointer.
    let mut req = TelnyxAdapter.build_send(&h.creds, &h.message(MessageKind::Sms, vec![])).unwrap();
    let mut body: Value = serde_json::from_slice(&req.body).unwrap();
    body.as_object_mut().unwrap().remove("to");
    req.body = serde_json::to_vec(&body).unwrap();
    let resp = http::execute(&h.client, &req).await.unwrap();
    assert_eq!(resp.status, 400);
    let e = TelnyxAdapter.parse_send_response(&resp).unwrap_err();
    assert_eq!(e.code(), Some("10004"));
    assert!(e.to_string().contains("/to"), "{e}");
}

#[tokio::test]
async fn signed_status_callbacks_verify_and_map() {
    let h = Harness::start().await;
    let id = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    let table: &[(&str, Option<&str>, DeliveryStatus)] = &[
        ("sent", None, DeliveryStatus::Sent),
        ("delivered", None, DeliveryStatus::Delivered),
        ("sending_failed", Some("40013"), DeliveryStatus::Failed),
        ("delivery_failed", Some("40008"), DeliveryStatus::Undelivered),
        ("delivery_failed", Some("40005"), DeliveryStatus::Expired),
        ("delivery_failed", Some("40014"), DeliveryStatus::Expired),
        ("delivery_unconfirmed", None, DeliveryStatus::Sent),
    ];
    for (status, code, expected) in table {
        let resp = h.fake.send_status_callback(&h.receiver.url(), &id, status, *code).await;
        assert_eq!(resp.status(), 200);
        let req = h.receiver.last();
        assert_eq!(TelnyxAdapter.verify_callback(&h.creds, &req, now()), Ok(()), "{status}");
        assert!(TelnyxAdapter.replay_key(&req).is_some());
        let Callback::Status(updates) = TelnyxAdapter.parse_callback(&req).unwrap() else {
            panic!("{status}: status callback expected")
        };
        assert_eq!(updates.len(), 1);
        let u = &updates[0];
        assert_eq!(u.provider_message_id.as_str(), id);
        assert_eq!(u.status, *expected, "{status} {code:?}");
        assert_eq!(u.provider_status, *status);
        if expected.is_terminal() && *expected != DeliveryStatus::Delivered {
            assert_eq!(u.error_code.as_deref(), *code, "{status}");
        }
        if *status == "delivery_unconfirmed" {
            assert!(u.description.as_deref().unwrap().contains("delivery unconfirmed"));
        }
    }
}

#[tokio::test]
async fn inbound_messages_verify_and_parse() {
    let h = Harness::start().await;
    h.fake.send_inbound(&h.receiver.url(), "+12015550123", "+12015550124", "Is the shelter open?").await;
    let req = h.receiver.last();
    TelnyxAdapter.verify_callback(&h.creds, &req, now()).unwrap();
    let Callback::Inbound(m) = TelnyxAdapter.parse_callback(&req).unwrap() else { panic!("inbound expected") };
    assert_eq!(m.from, "+12015550123");
    assert_eq!(m.to, "+12015550124");
    assert_eq!(m.text, "Is the shelter open?");
    assert!(is_uuid(&m.provider_message_id));
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let h = Harness::start().await;
    let id = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    let cases = [
        (Forgery::WrongKey, "signature_mismatch"),
        (Forgery::TamperedBody, "signature_mismatch"),
        (Forgery::StaleTimestamp, "timestamp_out_of_tolerance"),
        (Forgery::MissingSignature, "missing_header"),
        (Forgery::MissingTimestamp, "missing_header"),
    ];
    for (forgery, code) in cases {
        h.fake.send_forged_callback(&h.receiver.url(), &id, "delivery_failed", forgery).await;
        let req = h.receiver.last();
        let e = TelnyxAdapter.verify_callback(&h.creds, &req, now()).expect_err("forgery refused");
        assert_eq!(e.code(), code, "{forgery:?}: {e}");
    }

    // A genuine callback checked against another account's key is refused too.
    h.fake.send_status_callback(&h.receiver.url(), &id, "delivered", None).await;
    let req = h.receiver.last();
    let other = Credentials::Telnyx(dispatch_common::providers::credentials::TelnyxCredentials {
        api_key: dispatch_common::providers::credentials::Secret::new("k"),
        public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
        messaging_profile_id: None,
        api_base_url: None,
    });
    assert_eq!(TelnyxAdapter.verify_callback(&other, &req, now()), Err(VerifyError::SignatureMismatch));
}

#[tokio::test]
async fn a_replayed_callback_repeats_its_replay_key() {
    let h = Harness::start().await;
    let id = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    h.fake.send_status_callback(&h.receiver.url(), &id, "delivered", None).await;
    let original = h.receiver.last();
    // An attacker re-POSTs the captured request byte for byte.
    let client = reqwest::Client::new();
    let mut rb = client.post(h.receiver.url());
    for (k, v) in &original.headers {
        if k.starts_with("telnyx-") || k == "content-type" {
            rb = rb.header(k.as_str(), v.as_str());
        }
    }
    rb.body(original.body.clone()).send().await.unwrap();
    let replay = h.receiver.last();
    assert_eq!(TelnyxAdapter.verify_callback(&h.creds, &replay, now()), Ok(()), "still inside the window");
    let key = TelnyxAdapter.replay_key(&original).expect("telnyx callbacks have a replay key");
    assert_eq!(
        TelnyxAdapter.replay_key(&replay).as_deref(),
        Some(key.as_str()),
        "the store's conditional write catches it"
    );

    h.fake.send_status_callback(&h.receiver.url(), &id, "delivered", None).await;
    assert_ne!(
        TelnyxAdapter.replay_key(&h.receiver.last()).as_deref(),
        Some(key.as_str()),
        "a new delivery is a new key"
    );
}
