//! The Sinch adapter over real HTTP against the fake Sinch XMS (no AWS): sends go
//! through `providers::http::execute`; HMAC-signed delivery reports and inbound
//! messages are POSTed by the fake to a loopback receiver, then verified and parsed
//! by the adapter as the webhook function would.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::sinch::SinchAdapter;
use dispatch_common::providers::{Callback, Credentials, OutboundMessage, ProviderAdapter, SendError, http};
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::sinch::{API_TOKEN, FakeSinch, Forgery, Outcome, SERVICE_PLAN_ID};
use serde_json::{Value, json};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/sinch/psap-north";

struct Harness {
    fake: FakeSinch,
    receiver: Receiver,
    creds: Credentials,
    client: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let fake = FakeSinch::start().await;
        let receiver = Receiver::start(CALLBACK_PATH).await;
        let creds = fake.credentials();
        Harness { fake, receiver, creds, client: http::client(Duration::from_secs(5)) }
    }

    fn message(&self, kind: MessageKind, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            kind,
            to: E164::parse("+447400123456", None).unwrap(),
            from: if kind == MessageKind::Sms {
                SenderId::Alphanumeric("CityAlerts".into())
            } else {
                SenderId::LongCode(E164::parse("+12015550124", None).unwrap())
            },
            body: "Evacuation order lifted for zone B.".into(),
            media_urls: media,
            status_callback_url: self.receiver.url(),
            validity_secs: Some(900),
        }
    }

    async fn send_with(
        &self,
        creds: &Credentials,
        client: &reqwest::Client,
        msg: &OutboundMessage,
    ) -> Result<String, SendError> {
        let req = SinchAdapter.build_send(creds, msg)?;
        let resp = http::execute(client, &req).await?;
        SinchAdapter.parse_send_response(&resp).map(|a| a.provider_message_id.as_str().to_owned())
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        self.send_with(&self.creds, &self.client, msg).await
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Batch ids are 26-character ULIDs (`01FC66621XXXXX119Z8PMV1QPQ`).
fn is_batch_id(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

#[tokio::test]
async fn accepted_send_returns_the_batch_id_and_the_request_is_xms_shaped() {
    let h = Harness::start().await;
    let msg = h.message(MessageKind::Sms, vec![]);
    let id = h.send(&msg).await.expect("accepted");
    assert!(is_batch_id(&id), "{id}");

    let r = &h.fake.requests()[0];
    assert_eq!(r.uri.path(), format!("/xms/v1/{SERVICE_PLAN_ID}/batches"));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {API_TOKEN}").as_str()));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["to"], json!(["+447400123456"]));
    assert_eq!(body["from"], "CityAlerts");
    assert_eq!(body["type"], "mt_text");
    assert_eq!(body["delivery_report"], "per_recipient");
    assert_eq!(body["callback_url"], h.receiver.url());
    assert_eq!(body["client_reference"], msg.id.to_string());
    assert!(body["expire_at"].is_string());

    let mms = h.message(MessageKind::Mms, vec!["https://media.example.org/zone-b.jpg".into()]);
    let id2 = h.send(&mms).await.expect("accepted");
    assert_ne!(id, id2);
    let body: Value = serde_json::from_slice(&h.fake.requests()[1].body).unwrap();
    assert_eq!(body["type"], "mt_media");
    assert_eq!(body["body"]["url"], "https://media.example.org/zone-b.jpg");
}

#[tokio::test]
async fn scripted_failures_are_classified() {
    let h = Harness::start().await;
    h.fake.script(vec![
        Outcome::RateLimited(3),
        Outcome::ServerError(503),
        Outcome::Permanent("syntax_invalid_parameter_format".into()),
        Outcome::Permanent("blocked_account".into()),
    ]);
    let msg = h.message(MessageKind::Sms, vec![]);
    match h.send(&msg).await {
        Err(SendError::Transient { retry_after_secs, .. }) => assert_eq!(retry_after_secs, Some(3)),
        other => panic!("429 must be transient: {other:?}"),
    }
    assert!(h.send(&msg).await.unwrap_err().is_transient());
    let e = h.send(&msg).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "syntax_invalid_parameter_format"),
        "{e:?}"
    );
    let e = h.send(&msg).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "blocked_account"), "{e:?}");
    assert!(h.send(&msg).await.is_ok());
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
async fn the_fake_refuses_what_sinch_refuses() {
    let h = Harness::start().await;
    let Credentials::Sinch(c) = h.creds.clone() else { unreachable!() };
    let mut wrong = c.clone();
    wrong.api_token = dispatch_common::providers::credentials::Secret::new("nope");
    let e = h.send_with(&Credentials::Sinch(wrong), &h.client, &h.message(MessageKind::Sms, vec![])).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "http_401"), "{e:?}");

    // A hand-made batch with an empty body: syntax_constraint_violation.
    let mut req = SinchAdapter.build_send(&h.creds, &h.message(MessageKind::Sms, vec![])).unwrap();
    let mut body: Value = serde_json::from_slice(&req.body).unwrap();
    body["body"] = json!("");
    req.body = serde_json::to_vec(&body).unwrap();
    let e = SinchAdapter.parse_send_response(&http::execute(&h.client, &req).await.unwrap()).unwrap_err();
    assert_eq!(e.code(), Some("syntax_constraint_violation"));
}

#[tokio::test]
async fn signed_delivery_reports_verify_and_map() {
    let h = Harness::start().await;
    let msg = h.message(MessageKind::Sms, vec![]);
    let batch = h.send(&msg).await.unwrap();
    let table: &[(&str, u32, DeliveryStatus)] = &[
        ("Queued", 400, DeliveryStatus::Queued),
        ("Dispatched", 401, DeliveryStatus::Sent),
        ("Delivered", 0, DeliveryStatus::Delivered),
        ("Rejected", 408, DeliveryStatus::Failed),
        ("Aborted", 403, DeliveryStatus::Failed),
        ("Failed", 402, DeliveryStatus::Undelivered),
        ("Deleted", 0, DeliveryStatus::Undelivered),
        ("Expired", 406, DeliveryStatus::Expired),
        ("Unknown", 0, DeliveryStatus::Sent),
    ];
    for (word, code, expected) in table {
        let resp = h.fake.send_status_callback(&h.receiver.url(), &batch, word, *code).await;
        assert_eq!(resp.status(), 200);
        let req = h.receiver.last();
        assert_eq!(SinchAdapter.verify_callback(&h.creds, &req, now()), Ok(()), "{word}");
        let Callback::Status(u) = SinchAdapter.parse_callback(&req).unwrap() else { panic!("{word}") };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), batch);
        assert_eq!(u[0].status, *expected, "{word}");
        assert_eq!(u[0].provider_status, *word);
        assert_eq!(u[0].client_ref.as_deref(), Some(msg.id.to_string().as_str()));
        if matches!(expected, DeliveryStatus::Failed | DeliveryStatus::Undelivered | DeliveryStatus::Expired) {
            assert_eq!(u[0].error_code, Some(code.to_string()), "{word}");
        }
    }

    // The summary form maps the same way.
    h.fake.send_summary_callback(&h.receiver.url(), &batch, "Delivered", 0).await;
    let req = h.receiver.last();
    SinchAdapter.verify_callback(&h.creds, &req, now()).unwrap();
    let Callback::Status(u) = SinchAdapter.parse_callback(&req).unwrap() else { panic!() };
    assert_eq!(u[0].status, DeliveryStatus::Delivered);
    assert_eq!(u[0].provider_message_id.as_str(), batch);
}

#[tokio::test]
async fn inbound_messages_verify_and_parse() {
    let h = Harness::start().await;
    h.fake.send_inbound(&h.receiver.url(), "+447400123456", "+447400123457", "Road still flooded").await;
    let req = h.receiver.last();
    SinchAdapter.verify_callback(&h.creds, &req, now()).unwrap();
    let Callback::Inbound(m) = SinchAdapter.parse_callback(&req).unwrap() else { panic!("inbound expected") };
    assert_eq!(m.from, "+447400123456");
    assert_eq!(m.to, "+447400123457", "Sinch's bare MSISDN gets its + back");
    assert_eq!(m.text, "Road still flooded");
}

#[tokio::test]
async fn forged_reports_are_refused() {
    let h = Harness::start().await;
    let batch = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    for (forgery, code) in [
        (Forgery::WrongSecret, "signature_mismatch"),
        (Forgery::TamperedBody, "signature_mismatch"),
        (Forgery::StaleTimestamp, "timestamp_out_of_tolerance"),
        (Forgery::MissingNonce, "missing_header"),
        (Forgery::MissingSignature, "missing_header"),
    ] {
        h.fake.send_forged_callback(&h.receiver.url(), &batch, "Failed", forgery).await;
        let e = SinchAdapter.verify_callback(&h.creds, &h.receiver.last(), now()).expect_err("forgery refused");
        assert_eq!(e.code(), code, "{forgery:?}: {e}");
    }
}

#[tokio::test]
async fn nonces_are_the_replay_key() {
    let h = Harness::start().await;
    let batch = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    h.fake.send_status_callback(&h.receiver.url(), &batch, "Delivered", 0).await;
    let first = h.receiver.last();
    let key = SinchAdapter.replay_key(&first).expect("nonce present");

    // Re-POSTing the captured request verifies (inside the window) and repeats the nonce.
    let headers: Vec<(String, String)> =
        first.headers.iter().filter(|(k, _)| k.starts_with("x-sinch-")).cloned().collect();
    h.fake.post_with_headers(&h.receiver.url(), headers, std::str::from_utf8(&first.body).unwrap()).await;
    let replay = h.receiver.last();
    assert_eq!(SinchAdapter.verify_callback(&h.creds, &replay, now()), Ok(()));
    assert_eq!(SinchAdapter.replay_key(&replay).as_deref(), Some(key.as_str()));

    h.fake.send_status_callback(&h.receiver.url(), &batch, "Delivered", 0).await;
    assert_ne!(SinchAdapter.replay_key(&h.receiver.last()).as_deref(), Some(key.as_str()));
}
