//! Both Vonage adapters against the fake Vonage over real HTTP, without AWS: the
//! adapters build the sends, `providers::http::execute` performs them, the fake answers
//! in Vonage's shapes (or as scripted), and a loopback receiver captures the fake's
//! signed callbacks (SMS API `sig` in JSON/form/GET form, Messages API JWT), which the
//! adapters then verify and parse.

use dispatch_common::domain::{DeliveryStatus, E164, MessageId, MessageKind, SenderId};
use dispatch_common::providers::credentials::{Secret, VonageSignatureMethod};
use dispatch_common::providers::vonage::{VonageMessagesAdapter, VonageSmsAdapter};
use dispatch_common::providers::{
    Callback, Credentials, OutboundMessage, ProviderAdapter, SendAccepted, SendError, http,
};
use dispatch_common::signatures::VerifyError;
use dispatch_tests::receiver::CallbackReceiver as Receiver;
use dispatch_tests::fakes::vonage::{API_KEY, API_SECRET, Carrier, FakeOutcome, FakeVonage, Forgery};
use serde_json::{Value, json};
use std::time::Duration;

const CALLBACK_PATH: &str = "/v1/webhooks/vonage/psap-north";

fn message(kind: MessageKind, to: &str, body: &str, media: &[&str], callback: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        kind,
        to: E164::parse(to, None).unwrap(),
        from: SenderId::parse(if to.starts_with("+1") { "+12015550100" } else { "+447400123457" }).unwrap(),
        body: body.into(),
        media_urls: media.iter().map(|s| s.to_string()).collect(),
        status_callback_url: callback.into(),
        validity_secs: Some(3600),
    }
}

fn sms(body: &str) -> OutboundMessage {
    message(MessageKind::Sms, "+447400123456", body, &[], "https://hooks.example.org/v")
}

async fn send(
    adapter: &dyn ProviderAdapter,
    creds: &Credentials,
    msg: &OutboundMessage,
    timeout: Duration,
) -> Result<SendAccepted, SendError> {
    let req = adapter.build_send(creds, msg)?;
    let resp = http::execute(&http::client(timeout), &req).await?;
    adapter.parse_send_response(&resp)
}

const T: Duration = Duration::from_secs(5);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn statuses(cb: Callback) -> Vec<dispatch_common::providers::StatusUpdate> {
    match cb {
        Callback::Status(u) => u,
        other => panic!("status expected, got {other:?}"),
    }
}

fn is_sms_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_uuid(id: &str) -> bool {
    id.len() == 36 && id.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

// ================================================================== SMS API

#[tokio::test]
async fn sms_api_accepts_single_and_multipart() {
    let fake = FakeVonage::start().await;
    let creds = fake.sms_credentials();
    let msg = sms("Shelter open at the library.");
    let a = send(&VonageSmsAdapter, &creds, &msg, T).await.unwrap();
    assert!(is_sms_id(a.provider_message_id.as_str()), "{}", a.provider_message_id);
    assert_eq!((a.status, a.segments), (DeliveryStatus::Sent, Some(1)));

    let f: Vec<(String, String)> = url::form_urlencoded::parse(&fake.requests()[0].body).into_owned().collect();
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("api_key").as_deref(), Some(API_KEY));
    assert_eq!(get("api_secret").as_deref(), Some(API_SECRET));
    assert_eq!(get("to").as_deref(), Some("447400123456"));
    assert_eq!(get("from").as_deref(), Some("447400123457"));
    assert_eq!(get("type").as_deref(), Some("text"));
    assert_eq!(get("client-ref"), Some(msg.id.to_string()));
    assert_eq!(get("ttl").as_deref(), Some("3600000"));
    assert_eq!(get("status-report-req").as_deref(), Some("1"));

    // 200 GSM characters: two parts, the id of the first.
    let long = send(&VonageSmsAdapter, &creds, &sms(&"a".repeat(200)), T).await.unwrap();
    assert_eq!(long.segments, Some(2));
    let parts = fake.sms_part_ids(long.provider_message_id.as_str());
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], long.provider_message_id.as_str());

    // Non-GSM text goes as `unicode`.
    send(&VonageSmsAdapter, &creds, &sms("Überschwemmung – Straße gesperrt"), T).await.unwrap();
    let f: Vec<(String, String)> = url::form_urlencoded::parse(&fake.requests()[2].body).into_owned().collect();
    assert!(f.contains(&("type".into(), "unicode".into())));
}

#[tokio::test]
async fn sms_api_errors_are_classified() {
    let fake = FakeVonage::start().await;
    let creds = fake.sms_credentials();
    fake.script(vec![
        FakeOutcome::Throttled,
        FakeOutcome::RateLimited(4),
        FakeOutcome::ServerError(503),
        FakeOutcome::Permanent("7".into()),
        FakeOutcome::Permanent("9".into()),
        FakeOutcome::PartialFailure("5".into()),
    ]);
    let m = sms("hello");
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert!(e.is_transient() && e.code() == Some("1"), "throttled: {e}");
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient { retry_after_secs: Some(4), .. }), "429: {e}");
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert!(e.is_transient() && e.code() == Some("http_503"), "503: {e}");
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert_eq!(e, SendError::Permanent { code: Some("7".into()), message: "Number barred.".into() });
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert!(!e.is_transient() && e.code() == Some("9"), "quota: {e}");
    // Part 1 accepted, part 2 internal error: the send fails with the first error.
    let e = send(&VonageSmsAdapter, &creds, &m, T).await.unwrap_err();
    assert!(e.is_transient() && e.code() == Some("5"), "partial: {e}");
}

#[tokio::test]
async fn sms_api_bad_credentials_and_timeout() {
    let fake = FakeVonage::start().await;
    let bad = match fake.sms_credentials() {
        Credentials::VonageSms(mut c) => {
            c.api_secret = Secret::new("wrong-secret-000");
            Credentials::VonageSms(c)
        }
        _ => unreachable!(),
    };
    let e = send(&VonageSmsAdapter, &bad, &sms("x"), T).await.unwrap_err();
    assert_eq!(e, SendError::Permanent { code: Some("4".into()), message: "Bad Credentials".into() });

    fake.script(vec![FakeOutcome::Timeout(Duration::from_secs(3))]);
    let e = send(&VonageSmsAdapter, &fake.sms_credentials(), &sms("x"), Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient { code: Some(c), .. } if c == "timeout"), "{e}");
}

#[tokio::test]
async fn sms_receipts_verify_in_every_carrier_and_map() {
    for method in [VonageSignatureMethod::Md5hash, VonageSignatureMethod::Sha256, VonageSignatureMethod::Sha512] {
        let fake = FakeVonage::start_with(method).await;
        let rx = Receiver::start(CALLBACK_PATH).await;
        let creds = fake.sms_credentials();
        let msg = sms("Boil water notice lifted.");
        let id = send(&VonageSmsAdapter, &creds, &msg, T).await.unwrap().provider_message_id;
        let cases = [
            ("accepted", None, DeliveryStatus::Sent, Carrier::JsonPost),
            ("delivered", None, DeliveryStatus::Delivered, Carrier::FormPost),
            ("failed", Some("7"), DeliveryStatus::Undelivered, Carrier::Get),
            ("expired", Some("1"), DeliveryStatus::Expired, Carrier::JsonPost),
            ("rejected", Some("6"), DeliveryStatus::Failed, Carrier::FormPost),
        ];
        for (status, err, expected, carrier) in cases {
            fake.send_dlr(&rx.url(), id.as_str(), status, err, carrier).await;
            let got = rx.take_last();
            assert_eq!(
                VonageSmsAdapter.verify_callback(&creds, &got, now()),
                Ok(()),
                "{method:?} {status} {carrier:?}"
            );
            let u = statuses(VonageSmsAdapter.parse_callback(&got).unwrap());
            assert_eq!(u[0].provider_message_id, id);
            assert_eq!(u[0].status, expected, "{status}");
            assert_eq!(u[0].error_code.as_deref(), err);
            assert_eq!(u[0].client_ref, Some(msg.id.to_string()));
            assert!(VonageSmsAdapter.replay_key(&got).is_some_and(|k| k.starts_with("nonce:")));
        }
    }
}

#[tokio::test]
async fn sms_receipts_arrive_per_part() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.sms_credentials();
    let msg = sms(&"b".repeat(320));
    let first = send(&VonageSmsAdapter, &creds, &msg, T).await.unwrap().provider_message_id;
    let parts = fake.sms_part_ids(first.as_str());
    assert_eq!(parts.len(), 3);
    fake.send_dlrs_for_all_parts(&rx.url(), first.as_str(), "delivered", None).await;
    let got = rx.take_all();
    assert_eq!(got.len(), 3);
    let mut keys = Vec::new();
    for (req, part_id) in got.iter().zip(&parts) {
        assert_eq!(VonageSmsAdapter.verify_callback(&creds, req, now()), Ok(()));
        let u = statuses(VonageSmsAdapter.parse_callback(req).unwrap());
        assert_eq!(u[0].provider_message_id.as_str(), part_id);
        // Every part names our message: that is how parts 2..n find it.
        assert_eq!(u[0].client_ref, Some(msg.id.to_string()));
        keys.push(VonageSmsAdapter.replay_key(req).unwrap());
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "each receipt has its own nonce");
}

#[tokio::test]
async fn sms_forged_receipts_are_refused() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.sms_credentials();
    let id = send(&VonageSmsAdapter, &creds, &sms("x"), T).await.unwrap().provider_message_id;
    for (forgery, expected) in [
        (Forgery::WrongSecret, VerifyError::SignatureMismatch),
        (Forgery::TamperedBody, VerifyError::SignatureMismatch),
        (Forgery::StaleTimestamp, VerifyError::TimestampOutOfTolerance(300)),
        (Forgery::MissingSignature, VerifyError::MissingHeader("sig")),
    ] {
        fake.send_forged_callback(&rx.url(), id.as_str(), "delivered", forgery).await;
        let got = rx.take_last();
        assert_eq!(VonageSmsAdapter.verify_callback(&creds, &got, now()), Err(expected), "{forgery:?}");
    }
    fake.send_status_callback(&rx.url(), id.as_str(), "delivered", None).await;
    let genuine = rx.take_last();
    assert!(matches!(
        VonageSmsAdapter.verify_callback(&fake.messages_credentials(), &genuine, now()),
        Err(VerifyError::SecretUnusable(_))
    ));
}

#[tokio::test]
async fn sms_inbound_verifies_and_parses() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    for carrier in [Carrier::JsonPost, Carrier::FormPost, Carrier::Get] {
        fake.send_inbound_sms(&rx.url(), "447400123999", "447400123457", "Is the bridge open?", carrier).await;
        let got = rx.take_last();
        assert_eq!(VonageSmsAdapter.verify_callback(&fake.sms_credentials(), &got, now()), Ok(()), "{carrier:?}");
        let Callback::Inbound(m) = VonageSmsAdapter.parse_callback(&got).unwrap() else { panic!("inbound expected") };
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("447400123999", "447400123457", "Is the bridge open?")
        );
        assert!(is_sms_id(&m.provider_message_id));
    }
}

// ================================================================== Messages API

#[tokio::test]
async fn messages_api_accepts_sms_and_mms() {
    let fake = FakeVonage::start().await;
    let creds = fake.messages_credentials();
    let msg = sms("Road reopened.");
    let a = send(&VonageMessagesAdapter, &creds, &msg, T).await.unwrap();
    assert!(is_uuid(a.provider_message_id.as_str()), "{}", a.provider_message_id);
    assert_eq!(a.status, DeliveryStatus::Sent);
    let body: Value = serde_json::from_slice(&fake.requests()[0].body).unwrap();
    assert_eq!(body["message_type"], "text");
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["to"], "447400123456");
    assert_eq!(body["client_ref"], json!(msg.id.to_string()));
    assert_eq!(body["webhook_url"], "https://hooks.example.org/v");

    let mms =
        message(MessageKind::Mms, "+12015550123", "Evacuation map", &["https://media.example/map.png"], "https://h/v");
    let a = send(&VonageMessagesAdapter, &creds, &mms, T).await.unwrap();
    assert!(is_uuid(a.provider_message_id.as_str()));
    let body: Value = serde_json::from_slice(&fake.requests()[1].body).unwrap();
    assert_eq!(body["image"], json!({"url": "https://media.example/map.png", "caption": "Evacuation map"}));
}

#[tokio::test]
async fn messages_api_errors_are_classified() {
    let fake = FakeVonage::start().await;
    let creds = fake.messages_credentials();
    fake.script(vec![
        FakeOutcome::RateLimited(9),
        FakeOutcome::ServerError(500),
        FakeOutcome::Permanent("1150".into()),
        FakeOutcome::Permanent("low-balance".into()),
        FakeOutcome::Timeout(Duration::from_secs(3)),
    ]);
    let m = sms("x");
    let e = send(&VonageMessagesAdapter, &creds, &m, T).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Transient {
            code: Some("throttled".into()),
            message: "Please wait, then retry your request".into(),
            retry_after_secs: Some(9)
        }
    );
    let e = send(&VonageMessagesAdapter, &creds, &m, T).await.unwrap_err();
    assert!(e.is_transient() && e.code() == Some("internal-error"), "{e}");
    let e = send(&VonageMessagesAdapter, &creds, &m, T).await.unwrap_err();
    assert!(!e.is_transient() && e.code() == Some("1150"), "{e}");
    let e = send(&VonageMessagesAdapter, &creds, &m, T).await.unwrap_err();
    assert!(!e.is_transient() && e.code() == Some("low-balance"), "{e}");
    let e = send(&VonageMessagesAdapter, &creds, &m, Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(&e, SendError::Transient { code: Some(c), .. } if c == "timeout"), "{e}");

    let bad = match fake.messages_credentials() {
        Credentials::VonageMessages(mut c) => {
            c.api_secret = Secret::new("nope");
            Credentials::VonageMessages(c)
        }
        _ => unreachable!(),
    };
    let e = send(&VonageMessagesAdapter, &bad, &m, T).await.unwrap_err();
    assert!(!e.is_transient() && e.code() == Some("unauthorized"), "{e}");
}

#[tokio::test]
async fn messages_status_webhooks_verify_and_map() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.messages_credentials();
    let msg = sms("x");
    let id = send(&VonageMessagesAdapter, &creds, &msg, T).await.unwrap().provider_message_id;
    let cases = [
        ("submitted", None, DeliveryStatus::Sent),
        ("delivered", None, DeliveryStatus::Delivered),
        ("rejected", Some("1050"), DeliveryStatus::Failed),
        ("rejected", Some("ttl"), DeliveryStatus::Expired),
        ("undeliverable", None, DeliveryStatus::Undelivered),
    ];
    let mut jtis = Vec::new();
    for (status, err, expected) in cases {
        fake.send_status_callback(&rx.url(), id.as_str(), status, err).await;
        let got = rx.take_last();
        assert_eq!(VonageMessagesAdapter.verify_callback(&creds, &got, now()), Ok(()), "{status}");
        let u = statuses(VonageMessagesAdapter.parse_callback(&got).unwrap());
        assert_eq!(u[0].provider_message_id, id);
        assert_eq!(u[0].status, expected, "{status} {err:?}");
        assert_eq!(u[0].client_ref, Some(msg.id.to_string()));
        if err == Some("1050") {
            assert_eq!(u[0].error_code.as_deref(), Some("1050"));
        }
        jtis.push(VonageMessagesAdapter.replay_key(&got).expect("jti"));
    }
    jtis.dedup();
    assert_eq!(jtis.len(), cases.len());
}

#[tokio::test]
async fn messages_forged_webhooks_are_refused() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.messages_credentials();
    let id = send(&VonageMessagesAdapter, &creds, &sms("x"), T).await.unwrap().provider_message_id;
    for (forgery, expected) in [
        (Forgery::WrongSecret, VerifyError::SignatureMismatch),
        (Forgery::TamperedBody, VerifyError::BodyHashMismatch),
        (Forgery::StaleTimestamp, VerifyError::TimestampOutOfTolerance(300)),
        (Forgery::MissingSignature, VerifyError::MissingHeader("Authorization")),
    ] {
        fake.send_forged_callback(&rx.url(), id.as_str(), "submitted", forgery).await;
        let got = rx.take_last();
        assert_eq!(VonageMessagesAdapter.verify_callback(&creds, &got, now()), Err(expected), "{forgery:?}");
    }
    fake.send_status_callback(&rx.url(), id.as_str(), "delivered", None).await;
    let genuine = rx.take_last();
    assert!(matches!(
        VonageMessagesAdapter.verify_callback(&fake.sms_credentials(), &genuine, now()),
        Err(VerifyError::SecretUnusable(_))
    ));
}

#[tokio::test]
async fn messages_inbound_sms_and_mms() {
    let fake = FakeVonage::start().await;
    let rx = Receiver::start(CALLBACK_PATH).await;
    let creds = fake.messages_credentials();
    let body = FakeVonage::messages_inbound_body("447400123999", "447400123457", "Need sandbags", None);
    fake.send_messages_webhook(&rx.url(), &body).await;
    let got = rx.take_last();
    assert_eq!(VonageMessagesAdapter.verify_callback(&creds, &got, now()), Ok(()));
    let Callback::Inbound(m) = VonageMessagesAdapter.parse_callback(&got).unwrap() else { panic!("inbound") };
    assert_eq!((m.from.as_str(), m.text.as_str()), ("447400123999", "Need sandbags"));

    let body = FakeVonage::messages_inbound_body(
        "12015550123",
        "12015550100",
        "street",
        Some("https://api-us.nexmo.com/v3/media/x"),
    );
    fake.send_messages_webhook(&rx.url(), &body).await;
    let got = rx.take_last();
    assert_eq!(VonageMessagesAdapter.verify_callback(&creds, &got, now()), Ok(()));
    let Callback::Inbound(m) = VonageMessagesAdapter.parse_callback(&got).unwrap() else { panic!("inbound") };
    assert_eq!(m.media.len(), 1);
    assert_eq!(m.text, "street");
}
