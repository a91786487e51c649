//! Twilio Programmable Messaging (`api.twilio.com`, API version 2010-04-01).
//!
//! Wire facts, from Twilio's API reference and its SDKs' tests:
//!
//! * Send: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//!   (`To`, `From` | `MessagingServiceSid`, `Body`, repeated `MediaUrl`, `StatusCallback`,
//!   `ValidityPeriod`), HTTP Basic `AccountSid:AuthToken`; success is `201` with
//!   `{"sid":"SM…","status":"queued",…,"num_segments":"1"}` (twilio-php
//!   `tests/Twilio/Integration/Api/V2010/Account/MessageTest.php`).
//! * Errors: `{"code":20003,"message":…,"more_info":…,"status":401}` (legacy) or the
//!   RFC 9457 form `{type,title,status,code,detail,instance}`.
//! * Status callbacks and inbound messages: form POST (GET when so configured), signed
//!   with `X-Twilio-Signature`; there is no timestamp or nonce, so no replay key.

use super::*;
use dispatch_domain::{MessageKind, SenderId};
use crate::signatures;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Header Twilio signs callbacks in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// "You may send up to 10 media files in a single message" (error 21623,
/// https://www.twilio.com/docs/api/errors/21623).
pub const MAX_MEDIA: u32 = 10;

/// "MMS: 5 MB" for the message and its media combined (Twilio, "Accepted content types
/// for media", https://www.twilio.com/docs/sms/accepted-mime-types).
pub const MAX_MEDIA_BYTES: u64 = 5 * 1024 * 1024;

/// `Body` may be up to 1600 characters (Message resource, `body` property).
pub const MAX_BODY_CHARS: usize = 1600;

/// `ValidityPeriod` must be 1..=36000 seconds (error 90007 / warning 30045,
/// https://www.twilio.com/docs/api/errors/90007).
pub const MAX_VALIDITY_SECS: u32 = 36_000;

/// Longest provider error text carried into our own errors.
const MAX_ERROR_MESSAGE: usize = 200;

/// Most `MediaUrl{N}` fields read from an inbound MMS (Twilio sends at most 10).
const MAX_INBOUND_MEDIA: usize = 20;

pub struct TwilioAdapter;

fn twilio_creds(creds: &Credentials) -> Option<&credentials::TwilioCredentials> {
    match creds {
        Credentials::Twilio(c) => Some(c),
        _ => None,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_MESSAGE).collect()
}

/// `http(s)://host[:port][/prefix]` without a trailing slash, or a credentials error.
fn base_url(configured: Option<&str>) -> Result<String, SendError> {
    let base = configured.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
    match url::Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none() => Ok(base.to_string()),
        _ => Err(SendError::Credentials("twilio api_base_url is not an http(s) URL".into())),
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Twilio's status words, mapped to canonical states (providers.md §1 mapping, with
/// `accepted`/`scheduled` at `queued`: our `accepted` means "stored by submit", which a
/// provider event must never claim).
pub fn canonical_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "accepted" | "scheduled" | "queued" | "sending" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        // `read` (WhatsApp/RCS) implies delivery; `partially_delivered` is a group MMS
        // that reached at least one recipient.
        "delivered" | "read" | "partially_delivered" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        // `canceled`: a scheduled message that was never sent.
        "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Twilio error codes documented as temporary (providers.md §1 "Errors (T/P)"):
/// 20429 too many requests, 30001 queue overflow, 21611 sender queue full,
/// 30003 unreachable handset.
pub fn is_transient_code(code: &str) -> bool {
    matches!(code, "20429" | "30001" | "21611" | "30003")
}

/// `(code, message)` from either error shape. `code` may be a number or a string.
fn error_parts(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let code = match v.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    // Legacy: `message`; RFC 9457: `detail` (specific) then `title` (generic).
    let message = text("message").or_else(|| text("detail")).or_else(|| text("title")).map(truncate);
    (code, message)
}

fn malformed_success(status: u16, what: &str) -> SendError {
    // A 2xx we cannot read may or may not have been taken; transient, so the message is
    // not lost (the claim-before-send rule bounds the duplicate risk).
    SendError::Transient {
        code: Some("malformed_response".into()),
        message: format!("twilio answered {status} but {what}"),
        retry_after_secs: None,
    }
}

/// The first non-empty value of `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// Callback parameters: the form body for POST, the query for GET.
fn callback_params(req: &WebhookRequest) -> Result<Vec<(String, String)>, CallbackParseError> {
    if req.method.eq_ignore_ascii_case("GET") {
        return Ok(req.query_params());
    }
    if signatures::is_json_body(req) {
        return Err(CallbackParseError("a JSON body is not a Programmable Messaging callback".into()));
    }
    Ok(req.form_params())
}

impl TwilioAdapter {
    fn parse_inbound(params: &[(String, String)], sid: &str) -> Result<Callback, CallbackParseError> {
        let from = param(params, "From").ok_or_else(|| CallbackParseError("`From` is missing".into()))?;
        let to = param(params, "To").ok_or_else(|| CallbackParseError("`To` is missing".into()))?;
        let declared = param(params, "NumMedia").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        let mut media = Vec::new();
        for i in 0..declared.min(MAX_INBOUND_MEDIA) {
            if let Some(url) = param(params, &format!("MediaUrl{i}")) {
                media.push(InboundMedia {
                    url: url.to_string(),
                    content_type: param(params, &format!("MediaContentType{i}")).map(str::to_string),
                });
            }
        }
        // Everything but the text itself (stored once, as `text`) is kept as evidence.
        let mut meta = Map::new();
        for (k, v) in params {
            if k != "Body" && !meta.contains_key(k) {
                meta.insert(k.clone(), Value::String(v.clone()));
            }
        }
        Ok(Callback::Inbound(InboundMessage {
            provider_message_id: sid.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            text: param(params, "Body").unwrap_or_default().to_string(),
            media,
            received_at: None,
            provider_metadata: Value::Object(meta),
        }))
    }
}

impl ProviderAdapter for TwilioAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Twilio
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // MMS is carried to US and Canadian numbers only (Twilio MMS coverage; other
            // destinations need the MMS Converter, which we do not rely on):
            // `build_send` refuses MMS elsewhere with `Unsupported`.
            mms: true,
            max_media: MAX_MEDIA,
            max_media_bytes: MAX_MEDIA_BYTES,
            // The image types Twilio formats for handsets (same page); it accepts more
            // (audio, video, vCard, PDF) but passes them through unchanged.
            media_types: &["image/jpeg", "image/png", "image/gif"],
            // Alphanumeric sender ids work where the destination country allows them
            // (not US/CA); the carrier decides, Twilio does not refuse them up front.
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "X-Twilio-Signature: base64 HMAC-SHA1 (auth token) of the full URL plus sorted form \
                               params; JSON bodies via bodySHA256 in the URL",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let c = twilio_creds(creds).ok_or_else(|| SendError::Credentials("not Twilio credentials".into()))?;
        if c.account_sid.is_empty() || !c.account_sid.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            return Err(SendError::Credentials("twilio account_sid is empty or not a SID".into()));
        }
        if c.auth_token.expose().is_empty() {
            return Err(SendError::Credentials("twilio auth_token is empty".into()));
        }
        let base = base_url(c.api_base_url.as_deref())?;

        if msg.body.chars().count() > MAX_BODY_CHARS {
            return Err(SendError::Unsupported(format!("body longer than Twilio's {MAX_BODY_CHARS} characters")));
        }
        let media: &[String] = match msg.kind {
            MessageKind::Sms => &[],
            MessageKind::Mms => {
                if msg.media_urls.is_empty() {
                    return Err(SendError::Permanent {
                        code: Some("mms_without_media".into()),
                        message: "an MMS needs at least one media URL".into(),
                    });
                }
                if msg.media_urls.len() > MAX_MEDIA as usize {
                    return Err(SendError::Unsupported(format!(
                        "{} media items; Twilio takes at most {MAX_MEDIA}",
                        msg.media_urls.len()
                    )));
                }
                if !matches!(msg.to.region().as_deref(), Some("US" | "CA")) {
                    return Err(SendError::Unsupported("Twilio MMS reaches US and Canadian numbers only".into()));
                }
                if matches!(msg.from, SenderId::Alphanumeric(_)) {
                    return Err(SendError::Unsupported("MMS cannot be sent from an alphanumeric sender".into()));
                }
                &msg.media_urls
            }
        };

        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", msg.to.as_str());
        match &c.messaging_service_sid {
            // The tenant delegated sender choice to the Messaging Service (its sender pool).
            Some(mg) if !mg.is_empty() => form.append_pair("MessagingServiceSid", mg),
            _ => form.append_pair("From", msg.from.as_str()),
        };
        if !msg.body.is_empty() {
            form.append_pair("Body", &msg.body);
        }
        for url in media {
            form.append_pair("MediaUrl", url);
        }
        if !msg.status_callback_url.is_empty() {
            form.append_pair("StatusCallback", &msg.status_callback_url);
        }
        if let Some(v) = msg.validity_secs {
            form.append_pair("ValidityPeriod", &v.clamp(1, MAX_VALIDITY_SECS).to_string());
        }

        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/2010-04-01/Accounts/{}/Messages.json", c.account_sid),
            headers: vec![
                ("Authorization".into(), basic_auth(&c.account_sid, c.auth_token.expose())),
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: form.finish().into_bytes(),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let status = resp.status;
        if (200..300).contains(&status) {
            let v: Value =
                serde_json::from_slice(&resp.body).map_err(|_| malformed_success(status, "the body is not JSON"))?;
            let sid =
                v.get("sid").and_then(Value::as_str).ok_or_else(|| malformed_success(status, "without a `sid`"))?;
            let provider_message_id =
                ProviderMessageId::parse(sid).map_err(|_| malformed_success(status, "with an unusable `sid`"))?;
            // `num_segments` is a string ("1"); with a Messaging Service it is "0" at
            // creation time, which means "not known yet".
            let segments = match v.get("num_segments") {
                Some(Value::String(s)) => s.parse::<u32>().ok(),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            }
            .filter(|&n| n > 0);
            return Ok(SendAccepted {
                provider_message_id,
                status: DeliveryStatus::Sent,
                provider_status: v.get("status").and_then(Value::as_str).map(str::to_string),
                segments,
            });
        }

        let (code, message) = error_parts(&resp.body);
        let message = message.unwrap_or_else(|| format!("twilio answered HTTP {status}"));
        // 408/429/5xx and documented temporary codes: retry. Other 4xx (and 1xx/3xx,
        // which Twilio does not send for this resource): retrying would not change them.
        let transient =
            status == 408 || status == 429 || status >= 500 || code.as_deref().is_some_and(is_transient_code);
        let code = code.or_else(|| Some(format!("http_{status}")));
        if transient {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, _now_unix: i64) -> Result<(), VerifyError> {
        let c = twilio_creds(creds).ok_or(VerifyError::SecretUnusable("not Twilio credentials"))?;
        signatures::twilio::verify(c.auth_token.expose(), req)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let params = callback_params(req)?;
        let sid = param(&params, "MessageSid")
            .or_else(|| param(&params, "SmsSid"))
            .ok_or_else(|| CallbackParseError("`MessageSid` is missing".into()))?;
        // Status callbacks carry `MessageStatus` (and the legacy `SmsStatus`); inbound
        // messages carry `SmsStatus=received` (and, on newer accounts, `MessageStatus`).
        let word = param(&params, "MessageStatus")
            .or_else(|| param(&params, "SmsStatus"))
            .ok_or_else(|| CallbackParseError("`MessageStatus` is missing".into()))?;
        match word {
            "received" => return Self::parse_inbound(&params, sid),
            "receiving" => return Ok(Callback::Ignored("Twilio is still receiving an inbound MMS".into())),
            _ => {}
        }
        let Some(status) = canonical_status(word) else {
            return Ok(Callback::Ignored(format!("Twilio status `{}`", word.chars().take(32).collect::<String>())));
        };
        let provider_message_id =
            ProviderMessageId::parse(sid).map_err(|e| CallbackParseError(format!("`MessageSid`: {e}")))?;
        Ok(Callback::Status(vec![StatusUpdate {
            provider_message_id,
            status,
            provider_status: word.to_string(),
            error_code: param(&params, "ErrorCode").map(str::to_string),
            // Twilio callbacks carry no error text; `ChannelStatusMessage` is the closest.
            description: param(&params, "ChannelStatusMessage").map(truncate),
            client_ref: None,
            part: None,
            occurred_at: None,
        }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_domain::{E164, MessageId};
    use crate::providers::credentials::{Secret, TwilioCredentials};

    const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const TOKEN: &str = "12345";

    fn creds_with(mg: Option<&str>, base: Option<&str>) -> Credentials {
        Credentials::Twilio(TwilioCredentials {
            account_sid: SID.into(),
            auth_token: Secret::new(TOKEN),
            messaging_service_sid: mg.map(str::to_string),
            api_base_url: base.map(str::to_string),
        })
    }

    fn creds() -> Credentials {
        creds_with(None, None)
    }

    fn msg(kind: MessageKind, to: &str, from: &str, media: &[&str]) -> OutboundMessage {
        OutboundMessage {
            id: "01JD0000000000000000000000".parse::<MessageId>().unwrap(),
            kind,
            to: E164::parse(to, None).unwrap(),
            from: SenderId::parse(from).unwrap(),
            body: "Road closed at Elm St & 5th; use 6th.".into(),
            media_urls: media.iter().map(|s| s.to_string()).collect(),
            status_callback_url: "https://hooks.example.org/v1/webhooks/twilio/psap-north".into(),
            validity_secs: Some(3600),
        }
    }

    fn form(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    fn header<'a>(r: &'a ProviderRequest, name: &str) -> &'a str {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap()
    }

    fn resp(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn req(method: &str, url: &str, ct: Option<&str>, body: &[u8]) -> WebhookRequest {
        WebhookRequest {
            method: method.into(),
            url: url.into(),
            headers: ct.map(|c| vec![("Content-Type".to_string(), c.to_string())]).unwrap_or_default(),
            body: body.to_vec(),
        }
    }

    fn form_req(pairs: &[(&str, &str)]) -> WebhookRequest {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        req("POST", "https://hooks.example.org/t", Some("application/x-www-form-urlencoded"), s.finish().as_bytes())
    }

    #[test]
    fn sms_request_shape() {
        let r =
            TwilioAdapter.build_send(&creds(), &msg(MessageKind::Sms, "+14155552345", "+14155550100", &[])).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(header(&r, "Content-Type"), "application/x-www-form-urlencoded");
        assert_eq!(header(&r, "Accept"), "application/json");
        let expected_auth =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}")));
        assert_eq!(header(&r, "Authorization"), expected_auth);
        let f = form(&r.body);
        let expect: Vec<(String, String)> = [
            ("To", "+14155552345"),
            ("From", "+14155550100"),
            ("Body", "Road closed at Elm St & 5th; use 6th."),
            ("StatusCallback", "https://hooks.example.org/v1/webhooks/twilio/psap-north"),
            ("ValidityPeriod", "3600"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(f, expect);
        // The debug form never shows the body or the credentials.
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("Road closed") && !dbg.contains("Basic"), "{dbg}");
    }

    #[test]
    fn mms_repeats_media_url_and_uses_messaging_service() {
        let c = creds_with(Some("MGbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), Some("http://127.0.0.1:9/"));
        let m = msg(
            MessageKind::Mms,
            "+14155552345",
            "+14155550100",
            &["https://m.example/a.jpg", "https://m.example/b.png"],
        );
        let r = TwilioAdapter.build_send(&c, &m).unwrap();
        assert_eq!(r.url, format!("http://127.0.0.1:9/2010-04-01/Accounts/{SID}/Messages.json"));
        let f = form(&r.body);
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["To", "MessagingServiceSid", "Body", "MediaUrl", "MediaUrl", "StatusCallback", "ValidityPeriod"]
        );
        assert_eq!(f[3].1, "https://m.example/a.jpg");
        assert_eq!(f[4].1, "https://m.example/b.png");
    }

    #[test]
    fn alphanumeric_sender_and_validity_clamp() {
        let mut m = msg(MessageKind::Sms, "+447400123456", "CityCouncil", &[]);
        m.validity_secs = Some(86_400);
        let f = form(&TwilioAdapter.build_send(&creds(), &m).unwrap().body);
        assert!(f.contains(&("From".into(), "CityCouncil".into())));
        assert!(f.contains(&("ValidityPeriod".into(), "36000".into())));
        m.validity_secs = None;
        let f = form(&TwilioAdapter.build_send(&creds(), &m).unwrap().body);
        assert!(!f.iter().any(|(k, _)| k == "ValidityPeriod"));
    }

    #[test]
    fn refusals() {
        let uk_mms = msg(MessageKind::Mms, "+447400123456", "+447400000001", &["https://m.example/a.jpg"]);
        assert!(matches!(TwilioAdapter.build_send(&creds(), &uk_mms), Err(SendError::Unsupported(_))));
        let many: Vec<String> = (0..11).map(|i| format!("https://m.example/{i}.jpg")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let too_many = msg(MessageKind::Mms, "+14155552345", "+14155550100", &refs);
        assert!(matches!(TwilioAdapter.build_send(&creds(), &too_many), Err(SendError::Unsupported(_))));
        let alpha_mms = msg(MessageKind::Mms, "+14155552345", "CityCouncil", &["https://m.example/a.jpg"]);
        assert!(matches!(TwilioAdapter.build_send(&creds(), &alpha_mms), Err(SendError::Unsupported(_))));
        let empty_mms = msg(MessageKind::Mms, "+14155552345", "+14155550100", &[]);
        assert!(matches!(TwilioAdapter.build_send(&creds(), &empty_mms), Err(SendError::Permanent { .. })));
        let mut long = msg(MessageKind::Sms, "+14155552345", "+14155550100", &[]);
        long.body = "x".repeat(1601);
        assert!(matches!(TwilioAdapter.build_send(&creds(), &long), Err(SendError::Unsupported(_))));

        let plivo = Credentials::Plivo(credentials::PlivoCredentials {
            auth_id: "MAXXXXXXXXXXXXXXXXXX".into(),
            auth_token: Secret::new("t"),
            api_base_url: None,
        });
        let ok = msg(MessageKind::Sms, "+14155552345", "+14155550100", &[]);
        assert!(matches!(TwilioAdapter.build_send(&plivo, &ok), Err(SendError::Credentials(_))));
        for bad_sid in ["", "AC../../x"] {
            let c = Credentials::Twilio(TwilioCredentials {
                account_sid: bad_sid.into(),
                auth_token: Secret::new(TOKEN),
                messaging_service_sid: None,
                api_base_url: None,
            });
            assert!(matches!(TwilioAdapter.build_send(&c, &ok), Err(SendError::Credentials(_))), "{bad_sid}");
        }
        let bad_base = creds_with(None, Some("not a url"));
        assert!(matches!(TwilioAdapter.build_send(&bad_base, &ok), Err(SendError::Credentials(_))));
    }

    // twilio-php MessageTest::testCreateResponse (201, with a Messaging Service).
    const CREATE_201: &str = r#"{
        "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "api_version": "2010-04-01",
        "body": "Hello! \ud83d\udc4d", "date_created": "Thu, 30 Jul 2015 20:12:31 +0000",
        "date_sent": "Thu, 30 Jul 2015 20:12:33 +0000", "date_updated": "Thu, 30 Jul 2015 20:12:33 +0000",
        "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+14155552345",
        "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "num_media": "0", "num_segments": "1",
        "price": null, "price_unit": null, "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "sent",
        "subresource_uris": {"media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"},
        "to": "+14155552345", "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"
    }"#;

    #[test]
    fn accepted_201() {
        let a = TwilioAdapter.parse_send_response(&resp(201, CREATE_201)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(a.status, DeliveryStatus::Sent);
        assert_eq!(a.provider_status.as_deref(), Some("sent"));
        assert_eq!(a.segments, Some(1));
        let queued = r#"{"sid":"MM1234567890abcdef1234567890abcdef","status":"queued","num_segments":"0"}"#;
        let a = TwilioAdapter.parse_send_response(&resp(201, queued)).unwrap();
        assert_eq!((a.provider_status.as_deref(), a.segments), (Some("queued"), None));
    }

    #[test]
    fn unreadable_success_is_transient() {
        for body in ["", "<html/>", r#"{"status":"queued"}"#, r#"{"sid":"has space"}"#] {
            let e = TwilioAdapter.parse_send_response(&resp(201, body)).unwrap_err();
            assert!(e.is_transient(), "{body}: {e}");
            assert_eq!(e.code(), Some("malformed_response"));
        }
    }

    #[test]
    fn error_shapes_and_classification() {
        let with_retry = ProviderResponse {
            status: 429,
            headers: vec![("Retry-After".into(), "7".into())],
            body: br#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#.to_vec(),
        };
        assert_eq!(
            TwilioAdapter.parse_send_response(&with_retry).unwrap_err(),
            SendError::Transient {
                code: Some("20429".into()),
                message: "Too Many Requests".into(),
                retry_after_secs: Some(7)
            }
        );
        // (status, body, transient?, code)
        let table: &[(u16, &str, bool, &str)] = &[
            // twilio-python/-go/-ruby fixtures: legacy shape.
            (
                401,
                r#"{"code":20003,"detail":"Your AccountSid or AuthToken was incorrect.","message":"Authentication Error - invalid username","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
                false,
                "20003",
            ),
            (
                400,
                r#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
                false,
                "21211",
            ),
            (
                400,
                r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}"#,
                false,
                "21610",
            ),
            (
                400,
                r#"{"code": 21603, "message": "A 'From' phone number is required.", "more_info": "https://www.twilio.com/docs/errors/21603", "status": 400}"#,
                false,
                "21603",
            ),
            (
                404,
                r#"{"code": 20404, "message": "The requested resource /2010-04-01/Accounts/a/Messages.json was not found", "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}"#,
                false,
                "20404",
            ),
            // Documented temporary codes on a 4xx.
            (
                400,
                r#"{"code": 21611, "message": "This 'From' number has exceeded the maximum number of queued messages", "status": 400}"#,
                true,
                "21611",
            ),
            (400, r#"{"code": 30001, "message": "Queue overflow", "status": 400}"#, true, "30001"),
            // RFC 9457 shape.
            (
                400,
                r#"{"type":"https://www.twilio.com/docs/errors/21211","title":"Invalid 'To' Phone Number","status":400,"code":21211,"detail":"The 'To' number is not valid.","instance":"/2010-04-01/Accounts/AC/Messages.json"}"#,
                false,
                "21211",
            ),
            (
                503,
                r#"{"code":20503,"message":"Service Unavailable","more_info":"https://www.twilio.com/docs/errors/20503","status":503}"#,
                true,
                "20503",
            ),
            (500, "", true, "http_500"),
            (502, "<html>bad gateway</html>", true, "http_502"),
            (408, "", true, "http_408"),
            (403, "", false, "http_403"),
        ];
        for (status, body, transient, code) in table {
            let e = TwilioAdapter.parse_send_response(&resp(*status, body)).unwrap_err();
            assert_eq!(e.is_transient(), *transient, "{status} {body}");
            assert_eq!(e.code(), Some(*code), "{status} {body}");
        }
        let e = TwilioAdapter
            .parse_send_response(&resp(400, &format!(r#"{{"code":21211,"message":"{}"}}"#, "x".repeat(500))))
            .unwrap_err();
        assert!(e.to_string().len() < 300, "provider text is truncated");
        let rfc = TwilioAdapter
            .parse_send_response(&resp(400, r#"{"title":"Bad","detail":"Specific","code":"21211"}"#))
            .unwrap_err();
        assert_eq!(rfc, SendError::Permanent { code: Some("21211".into()), message: "Specific".into() });
    }

    #[test]
    fn status_mapping_table() {
        use DeliveryStatus::*;
        let table = [
            ("accepted", Some(Queued)),
            ("scheduled", Some(Queued)),
            ("queued", Some(Queued)),
            ("sending", Some(Queued)),
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Delivered)),
            ("partially_delivered", Some(Delivered)),
            ("undelivered", Some(Undelivered)),
            ("failed", Some(Failed)),
            ("canceled", Some(Failed)),
            ("receiving", None),
            ("received", None),
            ("bogus", None),
        ];
        for (word, expected) in table {
            assert_eq!(canonical_status(word), expected, "{word}");
        }
    }

    #[test]
    fn status_callbacks() {
        let r = form_req(&[
            ("SmsSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("SmsStatus", "undelivered"),
            ("MessageStatus", "undelivered"),
            ("To", "+14155552345"),
            ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("AccountSid", SID),
            ("From", "+14155550100"),
            ("ApiVersion", "2010-04-01"),
            ("ErrorCode", "30003"),
            ("RawDlrDoneDate", "2407011200"),
        ]);
        let Callback::Status(u) = TwilioAdapter.parse_callback(&r).unwrap() else { panic!("status expected") };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), "SM1f0e8ae6ade43cb3c0ce4525424e404f");
        assert_eq!(u[0].status, DeliveryStatus::Undelivered);
        assert_eq!(u[0].provider_status, "undelivered");
        assert_eq!(u[0].error_code.as_deref(), Some("30003"));

        let delivered =
            form_req(&[("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), ("MessageStatus", "delivered")]);
        let Callback::Status(u) = TwilioAdapter.parse_callback(&delivered).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.clone()), (DeliveryStatus::Delivered, None));

        // Legacy callbacks with only SmsSid/SmsStatus.
        let legacy = form_req(&[("SmsSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), ("SmsStatus", "sent")]);
        let Callback::Status(u) = TwilioAdapter.parse_callback(&legacy).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Sent);

        // GET-configured webhook: the same fields in the query.
        let get = req(
            "GET",
            "https://hooks.example.org/t?MessageSid=SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&MessageStatus=failed&ErrorCode=21610",
            None,
            b"",
        );
        let Callback::Status(u) = TwilioAdapter.parse_callback(&get).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Failed, Some("21610")));

        let unknown = form_req(&[("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), ("MessageStatus", "wobbling")]);
        assert!(matches!(TwilioAdapter.parse_callback(&unknown).unwrap(), Callback::Ignored(_)));
        let receiving = form_req(&[("MessageSid", "MMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), ("SmsStatus", "receiving")]);
        assert!(matches!(TwilioAdapter.parse_callback(&receiving).unwrap(), Callback::Ignored(_)));

        assert!(TwilioAdapter.parse_callback(&form_req(&[("MessageStatus", "sent")])).is_err());
        assert!(TwilioAdapter.parse_callback(&form_req(&[("MessageSid", "SMa")])).is_err());
        let json = req("POST", "https://h/t", Some("application/json"), br#"{"MessageSid":"SMa"}"#);
        assert!(TwilioAdapter.parse_callback(&json).is_err());
    }

    #[test]
    fn inbound_sms_and_mms() {
        let sms = form_req(&[
            ("ToCountry", "US"),
            ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("NumMedia", "0"),
            ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
            ("SmsStatus", "received"),
            ("Body", "Is the road open?"),
            ("To", "+14155550100"),
            ("NumSegments", "1"),
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("AccountSid", SID),
            ("From", "+14155552345"),
            ("ApiVersion", "2010-04-01"),
        ]);
        let Callback::Inbound(m) = TwilioAdapter.parse_callback(&sms).unwrap() else { panic!("inbound expected") };
        assert_eq!(m.provider_message_id, "SM0123456789abcdef0123456789abcdef");
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("+14155552345", "+14155550100", "Is the road open?")
        );
        assert!(m.media.is_empty());
        assert_eq!(m.provider_metadata["ToCountry"], "US");
        assert!(m.provider_metadata.get("Body").is_none(), "text is stored once");

        let mms = form_req(&[
            ("MessageSid", "MM0123456789abcdef0123456789abcdef"),
            ("SmsStatus", "received"),
            ("From", "+14155552345"),
            ("To", "+14155550100"),
            ("Body", ""),
            ("NumMedia", "2"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME0"),
            ("MediaContentType1", "image/png"),
            ("MediaUrl1", "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1"),
        ]);
        let Callback::Inbound(m) = TwilioAdapter.parse_callback(&mms).unwrap() else { panic!() };
        assert_eq!(m.text, "");
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[1].content_type.as_deref(), Some("image/png"));
        assert!(m.media[0].url.ends_with("/ME0"));
        let no_from = form_req(&[("MessageSid", "SMa"), ("SmsStatus", "received"), ("To", "+1")]);
        assert!(TwilioAdapter.parse_callback(&no_from).is_err());
    }

    fn signed_form_request(url: &str, params: &[(String, String)], sig: &str) -> WebhookRequest {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        WebhookRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                (SIGNATURE_HEADER.into(), sig.into()),
            ],
            body: s.finish().into_bytes(),
        }
    }

    // Vector `twilio-default` (twilio-python/-node/-java request validator tests).
    fn vector_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn verify_uses_the_auth_token() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let ok = signed_form_request(url, &vector_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(TwilioAdapter.verify_callback(&creds(), &ok, 0), Ok(()));
        let forged = signed_form_request(url, &vector_params(), "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(TwilioAdapter.verify_callback(&creds(), &forged, 0).is_err());
        let mut tampered = vector_params();
        tampered[2].1 = "9999".into();
        let tampered = signed_form_request(url, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(TwilioAdapter.verify_callback(&creds(), &tampered, 0).is_err());
        let other = Credentials::Plivo(credentials::PlivoCredentials {
            auth_id: "MA".into(),
            auth_token: Secret::new(TOKEN),
            api_base_url: None,
        });
        assert!(matches!(TwilioAdapter.verify_callback(&other, &ok, 0), Err(VerifyError::SecretUnusable(_))));
    }

    #[test]
    fn no_replay_key_and_capabilities() {
        assert_eq!(TwilioAdapter.replay_key(&form_req(&[("MessageSid", "SMa")])), None);
        let c = TwilioAdapter.capabilities();
        assert!(c.sms && c.mms && c.inbound && c.status_callbacks && c.alphanumeric_sender);
        assert_eq!((c.max_media, c.max_media_bytes), (10, 5 * 1024 * 1024));
        assert_eq!(TwilioAdapter.kind(), ProviderKind::Twilio);
    }
}
