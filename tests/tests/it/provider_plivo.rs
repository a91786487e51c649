//! The Plivo adapter against the fake Plivo over real HTTP, without AWS: the adapter
//! builds the send, `providers::http::execute` performs it, the fake answers in Plivo's
//! shapes (or as scripted), and a loopback receiver captures the fake's V3-signed
//! callbacks exactly as they arrive, which the adapter then verifies and parses.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::credentials::Secret;
use dispatch_common::providers::plivo::PlivoAdapter;
use dispatch_common::providers::{
    Callback, Credentials, OutboundMessage, ProviderAdapter, SendAccepted, SendError, http,
};
use dispatch_common::signatures::VerifyError;
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::plivo::{AUTH_ID, FakeOutcome, FakePlivo, Forgery};
use serde_json::{Value, json};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/plivo?tenant=psap-north";

fn message(kind: MessageKind, media: &[&str], callback: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        kind,
        to: E164::parse("+12015550123", None).unwrap(),
        from: SenderId::parse("+12015550100").unwrap(),
        body: "Cooling center open until 9pm.".into(),
        media_urls: media.iter().map(|s| s.to_string()).collect(),
        status_callback_url: callback.into(),
        validity_secs: Some(7200),
    }
}

async fn send(creds: &Credentials, msg: &OutboundMessage, timeout: Duration) -> Result<SendAccepted, SendError> {
    let adapter = PlivoAdapter;
    let req = adapter.build_send(creds, msg)?;
    let resp = http::execute(&http::client(timeout), &req).await?;
    adapter.parse_send_response(&resp)
}

const T: Duration = Duration::from_secs(5);

fn is_uuid(id: &str) -> bool {
    id.len() == 36 && id.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

#[tokio::test]
async fn accepted_sms_returns_the_fakes_uuid() {
    let fake = FakePlivo::start().await;
    let msg = message(MessageKind::Sms, &[], "https://hooks.example.org/p");
    let a = send(&fake.credentials(), &msg, T).await.unwrap();
    assert!(is_uuid(a.provider_message_id.as_str()), "{}", a.provider_message_id);
    assert_eq!(a.status, DeliveryStatus::Sent);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].uri.path(), format!("/v1/Account/{AUTH_ID}/Message/"));
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        body,
        json!({"src": "12015550100", "dst": "12015550123", "text": "Cooling center open until 9pm.", "type": "sms",
               "url": "https://hooks.example.org/p", "method": "POST", "message_expiry": 7200})
    );
}

#[tokio::test]
async fn accepted_mms() {
    let fake = FakePlivo::start().await;
    let msg = message(MessageKind::Mms, &["https://media.example/a.jpg", "https://media.example/b.jpg"], "https://h/p");
    let a = send(&fake.credentials(), &msg, T).await.unwrap();
    assert!(is_uuid(a.provider_message_id.as_str()));
    let body: Value = serde_json::from_slice(&fake.requests()[0].body).unwrap();
    assert_eq!(body["type"], "mms");
    assert_eq!(body["media_urls"], json!(["https://media.example/a.jpg", "https://media.example/b.jpg"]));
}

#[tokio::test]
async fn errors_are_classified() {
    let fake = FakePlivo::start().await;
    let creds = fake.credentials();
    fake.script(vec![
        FakeOutcome::RateLimited(6),
        FakeOutcome::ServerError(500),
        FakeOutcome::ServerError(503),
        FakeOutcome::Permanent("400".into()),
        FakeOutcome::Permanent("402".into()),
        FakeOutcome::Timeout(Duration::from_secs(3)),
    ]);
    let m = message(MessageKind::Sms, &[], "");
    assert_eq!(
        send(&creds, &m, T).await.unwrap_err(),
        SendError::Transient {
            code: Some("http_429".into()),
            message: "too many requests".into(),
            retry_after_secs: Some(6)
        }
    );
    for code in ["http_500", "http_503"] {
        let e = send(&creds, &m, T).await.unwrap_err();
        assert!(e.is_transient() && e.code() == Some(code), "{e}");
    }
    let e = send(&creds, &m, T).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent { code: Some("http_400".into()), message: "dst is not a valid phone number".into() }
    );
    let e = send(&creds, &m, T).await.unwrap_err();
    assert!(!e.is_transient() && e.code() == Some("http_402"), "{e}");
    let e = send(&creds, &m, Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient { code: Some(c), .. } if c == "timeout"), "{e}");
}

#[tokio::test]
async fn fake_validates_like_plivo() {
    let fake = FakePlivo::start().await;
    let bad = match fake.credentials() {
        Credentials::Plivo(mut c) => {
            c.auth_token = Secret::new("wrong");
            Credentials::Plivo(c)
        }
        _ => unreachable!(),
    };
    let e = send(&bad, &message(MessageKind::Sms, &[], ""), T).await.unwrap_err();
    assert_eq!(e, SendError::Permanent { code: Some("http_401".into()), message: "authentication failed".into() });

    // Raw request without `dst`: Plivo's 400.
    let adapter = PlivoAdapter;
    let mut req = adapter.build_send(&fake.credentials(), &message(MessageKind::Sms, &[], "")).unwrap();
    req.body = br#"{"src":"12015550100","text":"hi","type":"sms"}"#.to_vec();
    let resp = http::execute(&http::client(T), &req).await.unwrap();
    assert_eq!(resp.status, 400);
    let e = adapter.parse_send_response(&resp).unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("dst"), "{e}");
}

#[tokio::test]
async fn signed_status_callbacks_verify_and_map() {
    let fake = FakePlivo::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.credentials();
    let id = send(&creds, &message(MessageKind::Sms, &[], &rx.url()), T).await.unwrap().provider_message_id;
    let cases = [
        ("queued", None, DeliveryStatus::Queued),
        ("sent", None, DeliveryStatus::Sent),
        ("delivered", None, DeliveryStatus::Delivered),
        ("undelivered", Some("20"), DeliveryStatus::Undelivered),
        ("failed", Some("50"), DeliveryStatus::Failed),
    ];
    let mut nonces = Vec::new();
    for (status, err, expected) in cases {
        let r = fake.send_status_callback(&rx.url(), id.as_str(), status, err).await;
        assert_eq!(r.status(), 200);
        let got = rx.take_last();
        assert_eq!(PlivoAdapter.verify_callback(&creds, &got, 0), Ok(()), "{status}");
        let Callback::Status(u) = PlivoAdapter.parse_callback(&got).unwrap() else { panic!("status expected") };
        assert_eq!(u[0].provider_message_id, id);
        assert_eq!(u[0].status, expected, "{status}");
        assert_eq!(u[0].error_code.as_deref(), err);
        if status == "delivered" {
            assert!(u[0].occurred_at.is_some());
        }
        nonces.push(PlivoAdapter.replay_key(&got).expect("nonce"));
    }
    nonces.dedup();
    assert_eq!(nonces.len(), cases.len());
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let fake = FakePlivo::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.credentials();
    let id = send(&creds, &message(MessageKind::Sms, &[], &rx.url()), T).await.unwrap().provider_message_id;
    for (forgery, expected) in [
        (Forgery::WrongSecret, VerifyError::SignatureMismatch),
        (Forgery::TamperedBody, VerifyError::SignatureMismatch),
        (Forgery::WrongNonce, VerifyError::SignatureMismatch),
        (Forgery::MissingSignature, VerifyError::MissingHeader("X-Plivo-Signature-V3")),
    ] {
        fake.send_forged_callback(&rx.url(), id.as_str(), "delivered", forgery).await;
        let got = rx.take_last();
        assert_eq!(PlivoAdapter.verify_callback(&creds, &got, 0), Err(expected), "{forgery:?}");
    }
    fake.send_status_callback(&rx.url(), id.as_str(), "sent", None).await;
    let genuine = rx.take_last();
    let twilio = Credentials::Twilio(dispatch_common::providers::credentials::TwilioCredentials {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: Secret::new("x"),
        messaging_service_sid: None,
        api_base_url: None,
    });
    assert!(matches!(PlivoAdapter.verify_callback(&twilio, &genuine, 0), Err(VerifyError::SecretUnusable(_))));
}

#[tokio::test]
async fn signed_inbound_sms_and_mms() {
    let fake = FakePlivo::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.credentials();
    fake.send_inbound(&rx.url(), "12015550123", "12015550100", "Power out on Elm", &[]).await;
    let got = rx.take_last();
    assert_eq!(PlivoAdapter.verify_callback(&creds, &got, 0), Ok(()));
    let Callback::Inbound(m) = PlivoAdapter.parse_callback(&got).unwrap() else { panic!("inbound") };
    assert_eq!((m.from.as_str(), m.to.as_str(), m.text.as_str()), ("12015550123", "12015550100", "Power out on Elm"));

    let media = ["https://media.plivo.com/Account/MA/Media/1", "https://media.plivo.com/Account/MA/Media/2"];
    fake.send_inbound(&rx.url(), "12015550123", "12015550100", "see photos", &media).await;
    let got = rx.take_last();
    assert_eq!(PlivoAdapter.verify_callback(&creds, &got, 0), Ok(()));
    let Callback::Inbound(m) = PlivoAdapter.parse_callback(&got).unwrap() else { panic!("inbound") };
    assert_eq!(m.text, "see photos");
    assert_eq!(m.media.iter().map(|x| x.url.as_str()).collect::<Vec<_>>(), media);
}
