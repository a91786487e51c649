//! The Twilio adapter against the fake Twilio over real HTTP, without AWS: the adapter
//! builds the send, `providers::http::execute` performs it, the fake answers in
//! Twilio's shapes (or as scripted), and a loopback receiver captures the fake's signed
//! callbacks exactly as they arrive, which the adapter then verifies and parses.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::twilio::TwilioAdapter;
use dispatch_common::providers::{
    Callback, Credentials, OutboundMessage, ProviderAdapter, SendAccepted, SendError, http,
};
use dispatch_common::signatures::VerifyError;
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::twilio::{ACCOUNT_SID, AUTH_TOKEN, FakeOutcome, FakeTwilio, Forgery, MESSAGING_SERVICE_SID};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/twilio?tenant=psap-north";

fn message(kind: MessageKind, media: &[&str], callback: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        kind,
        to: E164::parse("+12015550123", None).unwrap(),
        from: SenderId::parse("+12015550100").unwrap(),
        body: "Water main repair on Oak Ave tonight.".into(),
        media_urls: media.iter().map(|s| s.to_string()).collect(),
        status_callback_url: callback.into(),
        validity_secs: Some(1800),
    }
}

async fn send(creds: &Credentials, msg: &OutboundMessage, timeout: Duration) -> Result<SendAccepted, SendError> {
    let adapter = TwilioAdapter;
    let req = adapter.build_send(creds, msg)?;
    let resp = http::execute(&http::client(timeout), &req).await?;
    adapter.parse_send_response(&resp)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn accepted_sms_returns_the_fakes_sid_and_sends_the_documented_form() {
    let fake = FakeTwilio::start().await;
    let msg = message(MessageKind::Sms, &[], "https://hooks.example.org/t");
    let accepted = send(&fake.credentials(false), &msg, Duration::from_secs(5)).await.unwrap();

    let sid = accepted.provider_message_id.as_str();
    assert!(sid.starts_with("SM") && sid.len() == 34 && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    assert_eq!(accepted.provider_status.as_deref(), Some("queued"));
    assert_eq!(accepted.segments, Some(1));

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].uri.path(), format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    let f = form(&reqs[0].body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("To"), Some("+12015550123"));
    assert_eq!(get("From"), Some("+12015550100"));
    assert_eq!(get("Body"), Some("Water main repair on Oak Ave tonight."));
    assert_eq!(get("StatusCallback"), Some("https://hooks.example.org/t"));
    assert_eq!(get("ValidityPeriod"), Some("1800"));
}

#[tokio::test]
async fn messaging_service_and_mms() {
    let fake = FakeTwilio::start().await;
    let msg = message(MessageKind::Mms, &["https://media.example/a.jpg", "https://media.example/b.png"], "https://h/t");
    let accepted = send(&fake.credentials(true), &msg, Duration::from_secs(5)).await.unwrap();
    assert!(accepted.provider_message_id.as_str().starts_with("MM"));
    assert_eq!(accepted.provider_status.as_deref(), Some("accepted"));
    assert_eq!(accepted.segments, None, "a Messaging Service reports 0 segments at creation");
    let f = form(&fake.requests()[0].body);
    assert!(f.contains(&("MessagingServiceSid".into(), MESSAGING_SERVICE_SID.into())));
    assert_eq!(f.iter().filter(|(k, _)| k == "MediaUrl").count(), 2);
    assert!(!f.iter().any(|(k, _)| k == "From"));
}

#[tokio::test]
async fn rate_limit_is_transient_with_retry_after() {
    let fake = FakeTwilio::start().await;
    fake.script(vec![FakeOutcome::RateLimited(7)]);
    let err =
        send(&fake.credentials(false), &message(MessageKind::Sms, &[], ""), Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Transient {
            code: Some("20429".into()),
            message: "Too Many Requests".into(),
            retry_after_secs: Some(7)
        }
    );
    // The next send (queue empty) is accepted.
    assert!(send(&fake.credentials(false), &message(MessageKind::Sms, &[], ""), Duration::from_secs(5)).await.is_ok());
}

#[tokio::test]
async fn server_errors_are_transient() {
    let fake = FakeTwilio::start().await;
    fake.script(vec![FakeOutcome::ServerError(500), FakeOutcome::ServerError(503)]);
    for code in ["20500", "20503"] {
        let err = send(&fake.credentials(false), &message(MessageKind::Sms, &[], ""), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(err.code(), Some(code));
    }
}

#[tokio::test]
async fn permanent_and_documented_temporary_codes() {
    let fake = FakeTwilio::start().await;
    fake.script(vec![
        FakeOutcome::Permanent("21211".into()),
        FakeOutcome::Permanent("21610".into()),
        FakeOutcome::Permanent("21611".into()),
    ]);
    let creds = fake.credentials(false);
    let m = message(MessageKind::Sms, &[], "");
    let e = send(&creds, &m, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "21211"), "{e}");
    let e = send(&creds, &m, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "21610"), "{e}");
    // 21611 (sender queue full) is documented as temporary.
    let e = send(&creds, &m, Duration::from_secs(5)).await.unwrap_err();
    assert!(e.is_transient() && e.code() == Some("21611"), "{e}");
}

#[tokio::test]
async fn fake_validates_like_twilio() {
    let fake = FakeTwilio::start().await;
    // Wrong token: Twilio's 401 body, permanent.
    let bad = match fake.credentials(false) {
        Credentials::Twilio(mut c) => {
            c.auth_token = dispatch_common::providers::credentials::Secret::new("not-the-token");
            Credentials::Twilio(c)
        }
        _ => unreachable!(),
    };
    let e = send(&bad, &message(MessageKind::Sms, &[], ""), Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(&e, SendError::Permanent { code: Some(c), .. } if c == "20003"), "{e}");

    // A request missing `To`, sent raw: 21604.
    let adapter = TwilioAdapter;
    let mut req = adapter.build_send(&fake.credentials(false), &message(MessageKind::Sms, &[], "")).unwrap();
    req.body = b"From=%2B12015550100&Body=hi".to_vec();
    let resp = http::execute(&http::client(Duration::from_secs(5)), &req).await.unwrap();
    assert_eq!(resp.status, 400);
    let e = adapter.parse_send_response(&resp).unwrap_err();
    assert_eq!(e.code(), Some("21604"));
}

#[tokio::test]
async fn timeout_is_transient() {
    let fake = FakeTwilio::start().await;
    fake.script(vec![FakeOutcome::Timeout(Duration::from_secs(3))]);
    let e = send(&fake.credentials(false), &message(MessageKind::Sms, &[], ""), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(&e, SendError::Transient { code: Some(c), .. } if c == "timeout"), "{e}");
}

#[tokio::test]
async fn signed_status_callbacks_verify_and_map() {
    let fake = FakeTwilio::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.credentials(false);
    let sid = send(&creds, &message(MessageKind::Sms, &[], &rx.url()), Duration::from_secs(5))
        .await
        .unwrap()
        .provider_message_id;
    let cases = [
        ("queued", None, DeliveryStatus::Queued),
        ("sent", None, DeliveryStatus::Sent),
        ("delivered", None, DeliveryStatus::Delivered),
        ("undelivered", Some("30003"), DeliveryStatus::Undelivered),
        ("failed", Some("30007"), DeliveryStatus::Failed),
    ];
    for (status, error, expected) in cases {
        let r = fake.send_status_callback(&rx.url(), sid.as_str(), status, error).await;
        assert_eq!(r.status(), 200);
        let got = rx.take_last();
        assert_eq!(TwilioAdapter.verify_callback(&creds, &got, now()), Ok(()), "{status}");
        let Callback::Status(updates) = TwilioAdapter.parse_callback(&got).unwrap() else { panic!("status expected") };
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].provider_message_id, sid);
        assert_eq!(updates[0].status, expected, "{status}");
        assert_eq!(updates[0].provider_status, status);
        assert_eq!(updates[0].error_code.as_deref(), error);
        // No timestamp or nonce in Twilio's scheme: nothing to key replays on.
        assert_eq!(TwilioAdapter.replay_key(&got), None);
    }
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let fake = FakeTwilio::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.credentials(false);
    let sid = "SM0123456789abcdef0123456789abcdef";
    for (forgery, expected) in [
        (Forgery::WrongSecret, VerifyError::SignatureMismatch),
        (Forgery::TamperedBody, VerifyError::SignatureMismatch),
        (Forgery::OtherUrl, VerifyError::SignatureMismatch),
        (Forgery::MissingSignature, VerifyError::MissingHeader("X-Twilio-Signature")),
    ] {
        fake.send_forged_callback(&rx.url(), sid, "sent", forgery).await;
        let got = rx.take_last();
        assert_eq!(TwilioAdapter.verify_callback(&creds, &got, now()), Err(expected), "{forgery:?}");
    }
    // A genuine callback checked against another provider's credentials fails closed.
    fake.send_status_callback(&rx.url(), sid, "sent", None).await;
    let got = rx.take_last();
    let plivo = Credentials::Plivo(dispatch_common::providers::credentials::PlivoCredentials {
        auth_id: "MAXXXXXXXXXXXXXXXXXX".into(),
        auth_token: dispatch_common::providers::credentials::Secret::new(AUTH_TOKEN),
        api_base_url: None,
    });
    assert!(matches!(TwilioAdapter.verify_callback(&plivo, &got, now()), Err(VerifyError::SecretUnusable(_))));
}

#[tokio::test]
async fn signed_inbound_mms_verifies_and_parses() {
    let fake = FakeTwilio::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let media = [("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1", "image/jpeg")];
    fake.send_inbound(&rx.url(), "+12015550123", "+12015550100", "Photo of the flooding", &media).await;
    let got = rx.take_last();
    assert_eq!(TwilioAdapter.verify_callback(&fake.credentials(false), &got, now()), Ok(()));
    let Callback::Inbound(m) = TwilioAdapter.parse_callback(&got).unwrap() else { panic!("inbound expected") };
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.text.as_str()),
        ("+12015550123", "+12015550100", "Photo of the flooding")
    );
    assert_eq!(m.media.len(), 1);
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
    assert!(m.provider_message_id.starts_with("MM"));
}
