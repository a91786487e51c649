//! The Bandwidth adapter over real HTTP against the fake Bandwidth (no AWS): sends go
//! through `providers::http::execute`; callbacks (JSON arrays of events, HTTP Basic
//! credentials) are POSTed by the fake to a loopback receiver, then verified and
//! parsed by the adapter as the webhook function would.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::bandwidth::BandwidthAdapter;
use dispatch_common::providers::{Callback, Credentials, OutboundMessage, ProviderAdapter, SendError, http};
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::bandwidth::{ACCOUNT_ID, APPLICATION_ID, FakeBandwidth, Forgery, Outcome};
use serde_json::{Value, json};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/bandwidth/psap-north";

struct Harness {
    fake: FakeBandwidth,
    receiver: Receiver,
    creds: Credentials,
    client: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let fake = FakeBandwidth::start().await;
        let receiver = Receiver::start(CALLBACK_PATH).await;
        let creds = fake.credentials();
        Harness { fake, receiver, creds, client: http::client(Duration::from_secs(5)) }
    }

    fn message(&self, kind: MessageKind, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            kind,
            to: E164::parse("+12015550123", None).unwrap(),
            from: SenderId::LongCode(E164::parse("+12015550124", None).unwrap()),
            body: "Boil-water advisory lifted for Ward 3.".into(),
            media_urls: media,
            status_callback_url: self.receiver.url(),
            validity_secs: Some(1800),
        }
    }

    async fn send_with(
        &self,
        creds: &Credentials,
        client: &reqwest::Client,
        msg: &OutboundMessage,
    ) -> Result<String, SendError> {
        let req = BandwidthAdapter.build_send(creds, msg)?;
        let resp = http::execute(client, &req).await?;
        BandwidthAdapter.parse_send_response(&resp).map(|a| a.provider_message_id.as_str().to_owned())
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        self.send_with(&self.creds, &self.client, msg).await
    }
}

/// `1589228074636lm4k2je7j7jklbn2`: 13 digits of epoch millis, 16 lowercase alphanumerics.
fn is_bandwidth_id(s: &str) -> bool {
    s.len() == 29
        && s[..13].bytes().all(|b| b.is_ascii_digit())
        && s[13..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[tokio::test]
async fn accepted_send_returns_the_fake_id_and_the_request_is_bandwidth_shaped() {
    let h = Harness::start().await;
    let msg = h.message(MessageKind::Sms, vec![]);
    let id = h.send(&msg).await.expect("accepted");
    assert!(is_bandwidth_id(&id), "{id}");

    let r = &h.fake.requests()[0];
    assert_eq!(r.uri.path(), format!("/api/v2/users/{ACCOUNT_ID}/messages"));
    assert!(r.header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["applicationId"], APPLICATION_ID);
    assert_eq!(body["to"], json!(["+12015550123"]));
    assert_eq!(body["from"], "+12015550124");
    assert_eq!(body["tag"], msg.id.to_string());
    assert!(body["expiration"].is_string());

    let mms = h.message(MessageKind::Mms, vec!["https://media.example.org/notice.png".into()]);
    let id2 = h.send(&mms).await.expect("accepted");
    assert_ne!(id, id2);
    let body: Value = serde_json::from_slice(&h.fake.requests()[1].body).unwrap();
    assert_eq!(body["media"], json!(["https://media.example.org/notice.png"]));
    assert!(body.get("expiration").is_none());
}

#[tokio::test]
async fn scripted_failures_are_classified() {
    let h = Harness::start().await;
    h.fake.script(vec![
        Outcome::RateLimited(60),
        Outcome::ServerError(500),
        Outcome::ServerError(503),
        Outcome::Permanent("request-validation".into()),
        Outcome::Permanent("forbidden".into()),
    ]);
    let msg = h.message(MessageKind::Sms, vec![]);
    match h.send(&msg).await {
        Err(SendError::Transient { code, retry_after_secs, .. }) => {
            assert_eq!(code.as_deref(), Some("max-message-queue-size-exceeded"));
            assert_eq!(retry_after_secs, Some(60));
        }
        other => panic!("429 must be transient: {other:?}"),
    }
    for _ in 0..2 {
        let e = h.send(&msg).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
    let e = h.send(&msg).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "request-validation"), "{e:?}");
    let e = h.send(&msg).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "forbidden"), "{e:?}");
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
async fn the_fake_refuses_what_bandwidth_refuses() {
    let h = Harness::start().await;
    let Credentials::Bandwidth(c) = h.creds.clone() else { unreachable!() };

    let mut wrong = c.clone();
    wrong.password = dispatch_common::providers::credentials::Secret::new("nope");
    let e =
        h.send_with(&Credentials::Bandwidth(wrong), &h.client, &h.message(MessageKind::Sms, vec![])).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "unauthorized"), "{e:?}");

    let mut other_app = c.clone();
    other_app.application_id = "00000000-0000-0000-0000-000000000000".into();
    let e = h
        .send_with(&Credentials::Bandwidth(other_app), &h.client, &h.message(MessageKind::Sms, vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("request-validation"));
    assert!(e.to_string().contains("applicationId"), "{e}");
}

#[tokio::test]
async fn callbacks_verify_and_map_including_arrays() {
    let h = Harness::start().await;
    let msg = h.message(MessageKind::Sms, vec![]);
    let id = h.send(&msg).await.unwrap();
    let table: &[(&str, Option<u32>, DeliveryStatus)] = &[
        ("message-delivered", None, DeliveryStatus::Delivered),
        ("message-failed", Some(4432), DeliveryStatus::Failed),
        ("message-failed", Some(4720), DeliveryStatus::Undelivered),
        ("message-failed", Some(5600), DeliveryStatus::Undelivered),
        ("message-failed", Some(4360), DeliveryStatus::Expired),
        ("message-failed", Some(9902), DeliveryStatus::Undelivered),
    ];
    for (kind, code, expected) in table {
        let resp = h.fake.send_status_callback(&h.receiver.url(), &id, kind, *code).await;
        assert_eq!(resp.status(), 200);
        let req = h.receiver.last();
        assert_eq!(BandwidthAdapter.verify_callback(&h.creds, &req, 0), Ok(()));
        let Callback::Status(u) = BandwidthAdapter.parse_callback(&req).unwrap() else { panic!("{kind}") };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), id);
        assert_eq!(u[0].status, *expected, "{kind} {code:?}");
        assert_eq!(u[0].client_ref.as_deref(), Some(msg.id.to_string().as_str()), "tag echoes our id");
        assert_eq!(u[0].error_code, code.map(|c| c.to_string()));
    }

    // Several events in one callback, for two messages.
    let other = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    let events = vec![
        h.fake.event(&id, "message-sending", None),
        h.fake.event(&id, "message-delivered", None),
        h.fake.event(&other, "message-failed", Some(4406)),
    ];
    h.fake.send_events(&h.receiver.url(), events).await;
    let req = h.receiver.last();
    BandwidthAdapter.verify_callback(&h.creds, &req, 0).unwrap();
    let Callback::Status(u) = BandwidthAdapter.parse_callback(&req).unwrap() else { panic!() };
    let got: Vec<(&str, DeliveryStatus)> = u.iter().map(|u| (u.provider_message_id.as_str(), u.status)).collect();
    assert_eq!(got, vec![(id.as_str(), DeliveryStatus::Delivered), (other.as_str(), DeliveryStatus::Failed)]);

    // A callback with only `message-sending` is acknowledged and ignored.
    h.fake.send_status_callback(&h.receiver.url(), &id, "message-sending", None).await;
    assert!(matches!(BandwidthAdapter.parse_callback(&h.receiver.last()).unwrap(), Callback::Ignored(_)));
    assert_eq!(BandwidthAdapter.replay_key(&h.receiver.last()), None);
}

#[tokio::test]
async fn inbound_messages_verify_and_parse() {
    let h = Harness::start().await;
    h.fake.send_inbound(&h.receiver.url(), "+12015550123", "+12015550124", "Need sandbags at 12 Oak St").await;
    let req = h.receiver.last();
    BandwidthAdapter.verify_callback(&h.creds, &req, 0).unwrap();
    let Callback::Inbound(m) = BandwidthAdapter.parse_callback(&req).unwrap() else { panic!("inbound expected") };
    assert_eq!(m.from, "+12015550123");
    assert_eq!(m.to, "+12015550124");
    assert_eq!(m.text, "Need sandbags at 12 Oak St");
    assert!(is_bandwidth_id(&m.provider_message_id));
}

#[tokio::test]
async fn callbacks_with_wrong_credentials_are_refused() {
    let h = Harness::start().await;
    let id = h.send(&h.message(MessageKind::Sms, vec![])).await.unwrap();
    for (forgery, code) in [
        (Forgery::WrongCredentials, "bad_credentials"),
        (Forgery::ApiCredentials, "bad_credentials"),
        (Forgery::MissingAuthorization, "missing_header"),
    ] {
        h.fake.send_forged_callback(&h.receiver.url(), &id, "message-delivered", forgery).await;
        let e = BandwidthAdapter.verify_callback(&h.creds, &h.receiver.last(), 0).expect_err("refused");
        assert_eq!(e.code(), code, "{forgery:?}: {e}");
    }
}
