//! Telnyx Messaging v2 (our VoIP provider).
//!
//! * Send: `POST {base}/v2/messages`, `Authorization: Bearer <API key>`, JSON
//!   `{from, to, text, media_urls, type, messaging_profile_id, webhook_url,
//!   use_profile_webhooks}` (team-telnyx/telnyx-python `types/message_send_params.py`).
//!   The answer is `200 {"data": <OutboundMessagePayload>}`; errors are
//!   `{"errors":[{code, title, detail, source, meta}]}` (`types/shared/messaging_error.py`).
//! * Callbacks: JSON `{"data":{event_type, id, occurred_at, payload, record_type},"meta":{…}}`
//!   with `message.sent` / `message.finalized` (per-recipient `payload.to[].status`)
//!   and `message.received` (inbound), signed with Ed25519 over `timestamp|body`
//!   (`telnyx-signature-ed25519`, `telnyx-timestamp`, ±300 s).
//!
//! Telnyx has no per-message validity parameter on `POST /v2/messages` (the
//! response's `valid_until` comes from the messaging profile), so `validity_secs` is
//! not sent; expiry is reported back as delivery error 40005/40014.

use super::retry_after_secs;
use super::*;
use crate::signatures::{self, DEFAULT_TOLERANCE};
use serde_json::{Map, Value, json};

/// Production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.telnyx.com";
pub use crate::signatures::telnyx::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// "You can include up to 10 media URLs per MMS message" (developers.telnyx.com
/// docs/messaging/messages/mms-transcoding).
const MAX_MEDIA: usize = 10;

/// Telnyx API error codes documented as temporary: 10007 unexpected error ("may be
/// the result of a temporary issue"), 10008 request timeout, 10011 too many requests
/// (https://support.telnyx.com/en/articles/6505121, Telnyx API error list).
const TRANSIENT_API_CODES: &[&str] = &["10007", "10008", "10011"];

/// Delivery error codes meaning the validity period ran out: 40005 "message expired
/// during transmission", 40014 "expired in queue"
/// (developers.telnyx.com docs/messaging/messages/error-codes).
const EXPIRY_CODES: &[&str] = &["40005", "40014"];

pub struct TelnyxAdapter;

impl ProviderAdapter for TelnyxAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Telnyx
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // MMS on US/Canada long codes, toll-free and short codes (mms-transcoding doc).
            mms: true,
            max_media: MAX_MEDIA as u32,
            // `media_urls`: "The total media size must be less than 1 MB"
            // (message_send_params.py). Carriers may accept less (600 KB toll-free).
            max_media_bytes: 1_000_000,
            // "What are the supported file types for MMS?" (support.telnyx.com/en/articles/4450150).
            media_types: &[
                "image/jpeg",
                "image/png",
                "image/gif",
                "video/mp4",
                "video/3gpp",
                "text/vcard",
                "text/plain",
            ],
            // Alphanumeric sender ids need a messaging profile (message_send_params.py).
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "Ed25519 over `timestamp|body` (telnyx-signature-ed25519, telnyx-timestamp), ±300 s",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let Credentials::Telnyx(c) = creds else {
            return Err(SendError::Credentials(format!("expected telnyx credentials, got {}", creds.kind())));
        };
        if c.api_key.expose().trim().is_empty() {
            return Err(SendError::Credentials("telnyx api_key is empty".into()));
        }
        let profile = c.messaging_profile_id.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let alphanumeric = matches!(msg.from, SenderId::Alphanumeric(_));
        if alphanumeric && profile.is_none() {
            return Err(SendError::Unsupported(
                "telnyx needs messaging_profile_id in the credentials to send from an alphanumeric sender".into(),
            ));
        }

        let mut body = Map::new();
        body.insert("from".into(), json!(msg.from.as_str()));
        body.insert("to".into(), json!(msg.to.as_str()));
        match msg.kind {
            MessageKind::Sms => {
                body.insert("type".into(), json!("SMS"));
                body.insert("text".into(), json!(msg.body));
            }
            MessageKind::Mms => {
                if alphanumeric {
                    return Err(SendError::Unsupported("telnyx cannot send MMS from an alphanumeric sender".into()));
                }
                if msg.media_urls.len() > MAX_MEDIA {
                    return Err(SendError::Unsupported(format!(
                        "telnyx takes at most {MAX_MEDIA} media items per MMS, got {}",
                        msg.media_urls.len()
                    )));
                }
                body.insert("type".into(), json!("MMS"));
                if !msg.body.is_empty() {
                    body.insert("text".into(), json!(msg.body));
                }
                if !msg.media_urls.is_empty() {
                    body.insert("media_urls".into(), json!(msg.media_urls));
                }
            }
        }
        if let Some(p) = profile {
            body.insert("messaging_profile_id".into(), json!(p));
        }
        if !msg.status_callback_url.is_empty() {
            body.insert("webhook_url".into(), json!(msg.status_callback_url));
            // Our per-message URL only: the profile's webhooks would deliver the same
            // events a second time to somewhere we do not control.
            body.insert("use_profile_webhooks".into(), json!(false));
        }

        let base = base_url(c.api_base_url.as_deref(), DEFAULT_BASE_URL)?;
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/v2/messages"),
            headers: vec![
                ("Authorization".into(), format!("Bearer {}", c.api_key.expose().trim())),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&Value::Object(body)).expect("a JSON map always serialises"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        if (200..300).contains(&resp.status) {
            let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            let data = &v["data"];
            let Some(id) = data["id"].as_str().and_then(|id| ProviderMessageId::parse(id).ok()) else {
                // Telnyx took the request: sending again could duplicate the message.
                return Err(SendError::Permanent {
                    code: Some("unparseable_response".into()),
                    message: format!("telnyx answered HTTP {} without a message id", resp.status),
                });
            };
            let provider_status = data["to"].as_array().and_then(|to| to.first()).and_then(|r| r["status"].as_str());
            return Ok(SendAccepted {
                provider_message_id: id,
                status: DeliveryStatus::Sent,
                provider_status: provider_status.map(str::to_owned),
                segments: data["parts"].as_u64().and_then(|p| u32::try_from(p).ok()),
            });
        }

        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let first = v["errors"].as_array().and_then(|e| e.first());
        let provider_code = first.and_then(|e| code_string(&e["code"]));
        let message = match first {
            Some(e) => {
                let title = e["title"].as_str().unwrap_or("error");
                match e["source"]["pointer"].as_str().or(e["source"]["parameter"].as_str()) {
                    Some(src) => format!("telnyx HTTP {}: {} ({})", resp.status, clip(title), clip(src)),
                    None => format!("telnyx HTTP {}: {}", resp.status, clip(title)),
                }
            }
            None => format!("telnyx HTTP {}", resp.status),
        };
        let code = provider_code.clone().or_else(|| Some(format!("http_{}", resp.status)));
        let transient = resp.status == 429
            || resp.status == 408
            || resp.status >= 500
            || provider_code.as_deref().is_some_and(|c| TRANSIENT_API_CODES.contains(&c));
        if transient {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError> {
        let Credentials::Telnyx(c) = creds else {
            return Err(VerifyError::SecretUnusable("the credentials are not telnyx credentials"));
        };
        signatures::telnyx::verify(&c.public_key, req, now_unix, DEFAULT_TOLERANCE)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let v: Value = serde_json::from_slice(&req.body)
            .map_err(|_| CallbackParseError("telnyx callback body is not JSON".into()))?;
        let data = v.get("data").filter(|d| d.is_object()).ok_or_else(|| bad("no `data` object"))?;
        let event_type = data["event_type"].as_str().ok_or_else(|| bad("no `data.event_type`"))?;
        let payload = data.get("payload").filter(|p| p.is_object()).ok_or_else(|| bad("no `data.payload` object"))?;
        let occurred_at = data["occurred_at"].as_str().map(str::to_owned);

        match event_type {
            "message.sent" | "message.finalized" => {
                let id = payload["id"].as_str().ok_or_else(|| bad("no `payload.id`"))?;
                let provider_message_id =
                    ProviderMessageId::parse(id).map_err(|_| bad("`payload.id` is not a message id"))?;
                let errors: Vec<(Option<String>, Option<String>)> = payload["errors"]
                    .as_array()
                    .map(|errs| errs.iter().map(|e| (code_string(&e["code"]), e["title"].as_str().map(clip))).collect())
                    .unwrap_or_default();
                let recipients = payload["to"].as_array().ok_or_else(|| bad("no `payload.to` array"))?;
                let mut updates = Vec::new();
                for r in recipients {
                    let Some(word) = r["status"].as_str() else { continue };
                    let codes: Vec<&str> = errors.iter().filter_map(|(c, _)| c.as_deref()).collect();
                    let Some((status, note)) = map_status(word, &codes) else { continue };
                    let failing = matches!(
                        status,
                        DeliveryStatus::Failed | DeliveryStatus::Undelivered | DeliveryStatus::Expired
                    ) || word == "delivery_unconfirmed";
                    let (error_code, title) =
                        if failing { errors.first().cloned().unwrap_or((None, None)) } else { (None, None) };
                    let description = match (note, title) {
                        (Some(n), Some(t)) => Some(format!("{n}: {t}")),
                        (Some(n), None) => Some(n.to_owned()),
                        (None, t) => t,
                    };
                    updates.push(StatusUpdate {
                        provider_message_id: provider_message_id.clone(),
                        status,
                        provider_status: word.to_owned(),
                        error_code,
                        description,
                        client_ref: None,
                        part: None,
                        occurred_at: occurred_at.clone(),
                    });
                }
                if updates.is_empty() {
                    Ok(Callback::Ignored(format!("telnyx {event_type} without a recipient status we track")))
                } else {
                    Ok(Callback::Status(updates))
                }
            }
            "message.received" => {
                let id = payload["id"].as_str().ok_or_else(|| bad("no `payload.id`"))?;
                let from =
                    payload["from"]["phone_number"].as_str().ok_or_else(|| bad("no `payload.from.phone_number`"))?;
                let to = payload["to"]
                    .as_array()
                    .and_then(|t| t.first())
                    .and_then(|t| t["phone_number"].as_str())
                    .ok_or_else(|| bad("no `payload.to[0].phone_number`"))?;
                let media = payload["media"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|m| {
                                let url = m["url"].as_str()?;
                                Some(InboundMedia {
                                    url: url.to_owned(),
                                    content_type: m["content_type"].as_str().map(str::to_owned),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // Evidence without the content: the text lives in the message record
                // (where retention redacts it), not in a second copy here.
                let mut meta = payload.clone();
                if let Some(m) = meta.as_object_mut() {
                    m.remove("text");
                    m.remove("subject");
                    m.insert("event_id".into(), data["id"].clone());
                    m.insert("event_type".into(), json!(event_type));
                    m.insert("occurred_at".into(), data["occurred_at"].clone());
                }
                Ok(Callback::Inbound(InboundMessage {
                    provider_message_id: id.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                    text: payload["text"].as_str().unwrap_or_default().to_owned(),
                    media,
                    received_at: payload["received_at"].as_str().map(str::to_owned).or(occurred_at),
                    provider_metadata: meta,
                }))
            }
            other => Ok(Callback::Ignored(format!("telnyx event {} is not handled", clip(other)))),
        }
    }

    /// The signed timestamp and signature: Telnyx signs each delivery attempt anew, so
    /// a byte-identical replay within the tolerance window repeats this pair.
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        let ts = req.single_header(TIMESTAMP_HEADER).ok()?.trim();
        let sig = req.single_header(SIGNATURE_HEADER).ok()?.trim();
        if ts.is_empty() || sig.is_empty() {
            return None;
        }
        Some(format!("{ts}:{sig}"))
    }
}

/// Maps a Telnyx per-recipient status to ours, with a note for the history where the
/// word alone would mislead. `None` for words we do not act on (`webhook_delivered`).
pub fn map_status(word: &str, error_codes: &[&str]) -> Option<(DeliveryStatus, Option<&'static str>)> {
    let expired = error_codes.iter().any(|c| EXPIRY_CODES.contains(c));
    Some(match word {
        "queued" | "sending" => (DeliveryStatus::Queued, None),
        "sent" => (DeliveryStatus::Sent, None),
        "delivered" => (DeliveryStatus::Delivered, None),
        // Never left Telnyx. An "expired in queue" (40014) is an expiry all the same.
        "sending_failed" if expired => (DeliveryStatus::Expired, None),
        "sending_failed" => (DeliveryStatus::Failed, None),
        "delivery_failed" if expired => (DeliveryStatus::Expired, None),
        "delivery_failed" => (DeliveryStatus::Undelivered, None),
        // Final for Telnyx, but no receipt came back: it left for the carrier, no more is known.
        "delivery_unconfirmed" => (DeliveryStatus::Sent, Some("delivery unconfirmed (no delivery receipt)")),
        _ => return None,
    })
}

/// A provider code as a string, whether the JSON has it as a string or a number.
fn code_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(clip(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(what: &str) -> CallbackParseError {
    CallbackParseError(format!("telnyx callback: {what}"))
}

/// Provider-supplied text in our errors and histories is bounded.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX { s.to_owned() } else { s.chars().take(MAX).collect::<String>() + "…" }
}

/// `api_base_url` from the credentials (trailing `/` removed), or the production host.
fn base_url(configured: Option<&str>, default: &str) -> Result<String, SendError> {
    match configured.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(default.to_owned()),
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(u.trim_end_matches('/').to_owned()),
        Some(_) => Err(SendError::Credentials("api_base_url must be an http(s) URL".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::credentials::{Secret, TelnyxCredentials, TwilioCredentials};
    use ed25519_dalek::{Signer, SigningKey};

    const ID: &str = "40385f64-5717-4562-b3fc-2c963f66afa6";

    fn creds(profile: Option<&str>) -> Credentials {
        Credentials::Telnyx(TelnyxCredentials {
            api_key: Secret::new("KEYTEST123"),
            public_key: b64(&signing_key().verifying_key().to_bytes()),
            messaging_profile_id: profile.map(str::to_owned),
            api_base_url: None,
        })
    }

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn msg(kind: MessageKind, from: SenderId, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: "01JD0000000000000000000000".parse().unwrap(),
            kind,
            to: E164::parse("+12015550123", None).unwrap(),
            from,
            body: "Boil water notice for Elm St.".into(),
            media_urls: media,
            status_callback_url: "https://hooks.example.org/v1/webhooks/telnyx/t1".into(),
            validity_secs: Some(3600),
        }
    }

    fn long_code() -> SenderId {
        SenderId::LongCode(E164::parse("+12015550124", None).unwrap())
    }

    fn body_json(r: &ProviderRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn header<'a>(r: &'a ProviderRequest, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderResponse {
        ProviderResponse {
            status,
            headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn webhook(body: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            url: "https://hooks.example.org/v1/webhooks/telnyx/t1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sms_request_shape() {
        let m = msg(MessageKind::Sms, long_code(), vec![]);
        let r = TelnyxAdapter.build_send(&creds(Some("4000eba1-a0c0-4563-9925-b25e842a7cb6")), &m).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://api.telnyx.com/v2/messages");
        assert_eq!(header(&r, "authorization"), Some("Bearer KEYTEST123"));
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(
            body_json(&r),
            json!({
                "from": m.from.as_str(),
                "to": "+12015550123",
                "type": "SMS",
                "text": "Boil water notice for Elm St.",
                "messaging_profile_id": "4000eba1-a0c0-4563-9925-b25e842a7cb6",
                "webhook_url": "https://hooks.example.org/v1/webhooks/telnyx/t1",
                "use_profile_webhooks": false,
            })
        );
        // The key is not in the Debug output.
        assert!(!format!("{r:?}").contains("KEYTEST123"));
    }

    #[test]
    fn mms_request_shape_and_limits() {
        let media = vec!["https://media.example.org/a.jpg".to_string(), "https://media.example.org/b.png".to_string()];
        let r = TelnyxAdapter.build_send(&creds(None), &msg(MessageKind::Mms, long_code(), media.clone())).unwrap();
        let b = body_json(&r);
        assert_eq!(b["type"], "MMS");
        assert_eq!(b["media_urls"], json!(media));
        assert_eq!(b["text"], "Boil water notice for Elm St.");
        assert!(b.get("messaging_profile_id").is_none(), "omitted when not configured");

        let mut m = msg(MessageKind::Mms, long_code(), media.clone());
        m.body.clear();
        let b = body_json(&TelnyxAdapter.build_send(&creds(None), &m).unwrap());
        assert!(b.get("text").is_none(), "no empty text on media-only MMS");

        let eleven = (0..11).map(|i| format!("https://media.example.org/{i}.jpg")).collect();
        let e = TelnyxAdapter.build_send(&creds(None), &msg(MessageKind::Mms, long_code(), eleven)).unwrap_err();
        assert!(matches!(e, SendError::Unsupported(_)), "{e}");
    }

    #[test]
    fn alphanumeric_sender_needs_a_profile() {
        let alpha = SenderId::Alphanumeric("CityAlerts".into());
        let e = TelnyxAdapter.build_send(&creds(None), &msg(MessageKind::Sms, alpha.clone(), vec![])).unwrap_err();
        assert!(matches!(e, SendError::Unsupported(_)), "{e}");
        let r =
            TelnyxAdapter.build_send(&creds(Some("prof-1")), &msg(MessageKind::Sms, alpha.clone(), vec![])).unwrap();
        assert_eq!(body_json(&r)["from"], "CityAlerts");
        assert_eq!(body_json(&r)["messaging_profile_id"], "prof-1");
        let e = TelnyxAdapter
            .build_send(&creds(Some("prof-1")), &msg(MessageKind::Mms, alpha, vec!["https://m/x.jpg".into()]))
            .unwrap_err();
        assert!(matches!(e, SendError::Unsupported(_)), "{e}");
    }

    #[test]
    fn base_url_override_and_wrong_credentials() {
        let Credentials::Telnyx(mut c) = creds(None) else { unreachable!() };
        c.api_base_url = Some("http://127.0.0.1:4010/".into());
        let r = TelnyxAdapter
            .build_send(&Credentials::Telnyx(c.clone()), &msg(MessageKind::Sms, long_code(), vec![]))
            .unwrap();
        assert_eq!(r.url, "http://127.0.0.1:4010/v2/messages");
        c.api_base_url = Some("ftp://x".into());
        assert!(matches!(
            TelnyxAdapter.build_send(&Credentials::Telnyx(c), &msg(MessageKind::Sms, long_code(), vec![])),
            Err(SendError::Credentials(_))
        ));
        let twilio = Credentials::Twilio(TwilioCredentials {
            account_sid: "AC1".into(),
            auth_token: Secret::new("t"),
            messaging_service_sid: None,
            api_base_url: None,
        });
        assert!(matches!(
            TelnyxAdapter.build_send(&twilio, &msg(MessageKind::Sms, long_code(), vec![])),
            Err(SendError::Credentials(_))
        ));
    }

    /// The response example of `POST /v2/messages` (Telnyx API reference, "Send a message").
    const SEND_OK: &str = r#"{"data":{"cc":[],"completed_at":null,"cost":{"amount":0.0051,"currency":"USD"},
        "direction":"outbound","encoding":"GSM-7","errors":[],
        "from":{"carrier":"TELNYX LLC","line_type":"VoIP","phone_number":"+18445550001"},
        "id":"40385f64-5717-4562-b3fc-2c963f66afa6","media":[],"messaging_profile_id":"4000eba1-a0c0-4563-9925-b25e842a7cb6",
        "organization_id":"b448f9cc-a842-4784-98e9-03c1a5872950","parts":2,"received_at":"2019-01-23T18:10:02.574Z",
        "record_type":"message","sent_at":null,"subject":null,"tags":["Greetings"],"text":"Hello, World!",
        "to":[{"carrier":"T-MOBILE USA, INC.","line_type":"Wireless","phone_number":"+18665550001","status":"queued"}],
        "type":"SMS","valid_until":null,"webhook_failover_url":null,"webhook_url":"https://www.example.com/hooks"}}"#;

    #[test]
    fn parses_accepted_send() {
        let a = TelnyxAdapter.parse_send_response(&resp(200, &[], SEND_OK)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), ID);
        assert_eq!(a.status, DeliveryStatus::Sent);
        assert_eq!(a.provider_status.as_deref(), Some("queued"));
        assert_eq!(a.segments, Some(2));
        let e = TelnyxAdapter.parse_send_response(&resp(200, &[], "{}")).unwrap_err();
        assert!(matches!(e, SendError::Permanent { .. }), "no resend after a 2xx: {e}");
    }

    fn err_body(code: &str, title: &str, pointer: &str) -> String {
        json!({"errors":[{"code":code,"title":title,"detail":"The phone number +12015550123 is invalid.","source":{"pointer":pointer},"meta":{"url":"https://developers.telnyx.com/docs/overview/errors/10002"}}]}).to_string()
    }

    #[test]
    fn classifies_errors() {
        // (HTTP status, Retry-After, code, expected transient?)
        let table: &[(u16, Option<&str>, &str, bool)] = &[
            (429, Some("7"), "10011", true),
            (500, None, "10007", true),
            (503, None, "10007", true),
            (408, None, "10008", true),
            (400, None, "10007", true), // documented as temporary, whatever the status
            (400, None, "10002", false),
            (400, None, "10004", false),
            (422, None, "10016", false),
            (401, None, "10009", false),
            (403, None, "10010", false),
            (400, None, "40013", false),
        ];
        for &(status, retry, code, transient) in table {
            let headers: Vec<(&str, &str)> = retry.map(|r| vec![("Retry-After", r)]).unwrap_or_default();
            let e = TelnyxAdapter
                .parse_send_response(&resp(status, &headers, &err_body(code, "Some title", "/to")))
                .unwrap_err();
            assert_eq!(e.is_transient(), transient, "{status} {code}: {e}");
            assert_eq!(e.code(), Some(code), "{status} {code}");
            if let SendError::Transient { retry_after_secs, .. } = &e {
                assert_eq!(*retry_after_secs, retry.map(|r| r.parse().unwrap()));
            }
            // The detail (which echoes numbers) is not carried into our error.
            assert!(!e.to_string().contains("+12015550123"), "{e}");
        }
        // Numeric codes and non-JSON bodies.
        let e = TelnyxAdapter
            .parse_send_response(&resp(400, &[], r#"{"errors":[{"code":10002,"title":"Invalid phone number"}]}"#))
            .unwrap_err();
        assert_eq!(e.code(), Some("10002"));
        let e = TelnyxAdapter.parse_send_response(&resp(502, &[], "<html>bad gateway</html>")).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.code(), Some("http_502"));
    }

    #[test]
    fn status_mapping_table() {
        use DeliveryStatus::*;
        let table: &[(&str, &[&str], Option<DeliveryStatus>)] = &[
            ("queued", &[], Some(Queued)),
            ("sending", &[], Some(Queued)),
            ("sent", &[], Some(Sent)),
            ("delivered", &[], Some(Delivered)),
            ("sending_failed", &["40013"], Some(Failed)),
            ("sending_failed", &["40014"], Some(Expired)),
            ("delivery_failed", &["40008"], Some(Undelivered)),
            ("delivery_failed", &["40005"], Some(Expired)),
            ("delivery_failed", &["40014"], Some(Expired)),
            ("delivery_failed", &[], Some(Undelivered)),
            ("delivery_unconfirmed", &[], Some(Sent)),
            ("webhook_delivered", &[], None),
            ("bogus", &[], None),
        ];
        for (word, codes, expected) in table {
            assert_eq!(map_status(word, codes).map(|(s, _)| s), *expected, "{word} {codes:?}");
        }
        assert!(map_status("delivery_unconfirmed", &[]).unwrap().1.unwrap().contains("delivery unconfirmed"));
    }

    fn status_event(event_type: &str, status: &str, errors: Value) -> String {
        json!({
            "data": {
                "event_type": event_type,
                "id": "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be",
                "occurred_at": "2019-12-09T21:32:14.148+00:00",
                "payload": {
                    "completed_at": "2019-12-09T21:32:14.148+00:00",
                    "cost": {"amount": "0.0051", "currency": "USD"},
                    "direction": "outbound",
                    "encoding": "GSM-7",
                    "errors": errors,
                    "from": {"carrier": "Telnyx", "line_type": "VoIP", "phone_number": "+13125550000"},
                    "id": ID,
                    "media": [],
                    "messaging_profile_id": "740572b6-099c-44a1-89b9-6c92163bc68d",
                    "parts": 1,
                    "record_type": "message",
                    "sent_at": "2019-12-09T21:32:13.552+00:00",
                    "text": "Hello",
                    "to": [{"carrier": "T-MOBILE USA, INC.", "line_type": "Wireless", "phone_number": "+13125550001", "status": status}],
                    "type": "SMS",
                    "valid_until": "2019-12-09T22:32:13.552+00:00"
                },
                "record_type": "event"
            },
            "meta": {"attempt": 1, "delivered_to": "https://hooks.example.org/v1/webhooks/telnyx/t1"}
        })
        .to_string()
    }

    #[test]
    fn parses_status_callbacks() {
        let Callback::Status(u) =
            TelnyxAdapter.parse_callback(&webhook(&status_event("message.finalized", "delivered", json!([])))).unwrap()
        else {
            panic!("status expected")
        };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), ID);
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
        assert_eq!(u[0].provider_status, "delivered");
        assert_eq!(u[0].error_code, None);
        assert_eq!(u[0].occurred_at.as_deref(), Some("2019-12-09T21:32:14.148+00:00"));

        let errs = json!([{"code": "40008", "title": "Undeliverable", "detail": "The recipient carrier did not accept the message."}]);
        let Callback::Status(u) = TelnyxAdapter
            .parse_callback(&webhook(&status_event("message.finalized", "delivery_failed", errs)))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(u[0].status, DeliveryStatus::Undelivered);
        assert_eq!(u[0].error_code.as_deref(), Some("40008"));
        assert_eq!(u[0].description.as_deref(), Some("Undeliverable"));

        let errs = json!([{"code": "40005", "title": "Message expired during transmission"}]);
        let Callback::Status(u) = TelnyxAdapter
            .parse_callback(&webhook(&status_event("message.finalized", "delivery_failed", errs)))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(u[0].status, DeliveryStatus::Expired);
        assert_eq!(u[0].error_code.as_deref(), Some("40005"));

        let Callback::Status(u) = TelnyxAdapter
            .parse_callback(&webhook(&status_event("message.finalized", "delivery_unconfirmed", json!([]))))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(u[0].status, DeliveryStatus::Sent);
        assert!(u[0].description.as_deref().unwrap().contains("delivery unconfirmed"));

        let Callback::Status(u) =
            TelnyxAdapter.parse_callback(&webhook(&status_event("message.sent", "sent", json!([])))).unwrap()
        else {
            panic!()
        };
        assert_eq!(u[0].status, DeliveryStatus::Sent);

        assert!(matches!(
            TelnyxAdapter
                .parse_callback(&webhook(&status_event("message.finalized", "webhook_delivered", json!([]))))
                .unwrap(),
            Callback::Ignored(_)
        ));
    }

    /// The `message.received` example of the Telnyx API reference (callbacks/inbound-message),
    /// with an MMS attachment added.
    const INBOUND: &str = r#"{"data":{"event_type":"message.received","id":"bf6307bd-884d-4c1f-b6ea-c62b8c495d3c",
        "occurred_at":"2019-01-23T18:10:02.574Z","payload":{"cc":[],"completed_at":null,
        "cost":{"amount":"0.0051","currency":"USD"},"direction":"inbound","encoding":"GSM-7","errors":[],
        "from":{"carrier":"T-MOBILE USA, INC.","line_type":"Wireless","phone_number":"+18665550001"},
        "id":"7ee4241c-f127-47e5-9c34-3aac291f8058",
        "media":[{"url":"https://media.telnyx.com/abc123/image.jpg","content_type":"image/jpeg","size":245760}],
        "messaging_profile_id":"0f512bda-ae1e-4597-8e11-e5f5686b97d3","parts":1,"received_at":"2019-01-23T18:10:02.574Z",
        "record_type":"message","sent_at":null,"subject":"From Telnyx!","tags":["Greetings"],"text":"Hello, World!",
        "to":[{"carrier":"TELNYX LLC","line_type":"VoIP","phone_number":"+18445550001","status":"webhook_delivered"}],
        "type":"MMS","valid_until":null,"webhook_failover_url":"https://backup.example.com/hooks",
        "webhook_url":"https://www.example.com/hooks"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://www.example.com/hooks"}}"#;

    #[test]
    fn parses_inbound() {
        let Callback::Inbound(m) = TelnyxAdapter.parse_callback(&webhook(INBOUND)).unwrap() else { panic!() };
        assert_eq!(m.provider_message_id, "7ee4241c-f127-47e5-9c34-3aac291f8058");
        assert_eq!(m.from, "+18665550001");
        assert_eq!(m.to, "+18445550001");
        assert_eq!(m.text, "Hello, World!");
        assert_eq!(
            m.media,
            vec![InboundMedia {
                url: "https://media.telnyx.com/abc123/image.jpg".into(),
                content_type: Some("image/jpeg".into())
            }]
        );
        assert_eq!(m.received_at.as_deref(), Some("2019-01-23T18:10:02.574Z"));
        assert_eq!(m.provider_metadata["messaging_profile_id"], "0f512bda-ae1e-4597-8e11-e5f5686b97d3");
        assert_eq!(m.provider_metadata["event_id"], "bf6307bd-884d-4c1f-b6ea-c62b8c495d3c");
        assert!(m.provider_metadata.get("text").is_none(), "no copy of the content in metadata");
    }

    #[test]
    fn odd_callbacks() {
        assert!(TelnyxAdapter.parse_callback(&webhook("not json")).is_err());
        assert!(TelnyxAdapter.parse_callback(&webhook("{}")).is_err());
        assert!(
            TelnyxAdapter
                .parse_callback(&webhook(r#"{"data":{"event_type":"message.finalized","payload":{}}}"#))
                .is_err()
        );
        let other = r#"{"data":{"event_type":"number_order.complete","id":"x","payload":{"id":"y"}}}"#;
        assert!(matches!(TelnyxAdapter.parse_callback(&webhook(other)).unwrap(), Callback::Ignored(_)));
    }

    fn signed(body: &str, ts: i64) -> WebhookRequest {
        let mut r = webhook(body);
        let mut signed = ts.to_string().into_bytes();
        signed.push(b'|');
        signed.extend_from_slice(body.as_bytes());
        let sig = signing_key().sign(&signed);
        r.headers.push((TIMESTAMP_HEADER.into(), ts.to_string()));
        r.headers.push((SIGNATURE_HEADER.into(), b64(&sig.to_bytes())));
        r
    }

    #[test]
    fn verifies_signed_callbacks() {
        let body = status_event("message.finalized", "delivered", json!([]));
        let now = 1_700_000_000;
        let r = signed(&body, now - 10);
        assert_eq!(TelnyxAdapter.verify_callback(&creds(None), &r, now), Ok(()));
        // Stale.
        assert!(matches!(
            TelnyxAdapter.verify_callback(&creds(None), &signed(&body, now - 301), now),
            Err(VerifyError::TimestampOutOfTolerance(_))
        ));
        // Tampered body.
        let mut t = r.clone();
        t.body = body.replace("delivered", "delivery_failed").into_bytes();
        assert!(TelnyxAdapter.verify_callback(&creds(None), &t, now).is_err());
        // Missing header.
        let mut m = r.clone();
        m.headers.retain(|(k, _)| k != SIGNATURE_HEADER);
        assert!(TelnyxAdapter.verify_callback(&creds(None), &m, now).is_err());
        // Another key.
        let Credentials::Telnyx(mut c) = creds(None) else { unreachable!() };
        c.public_key = b64(&SigningKey::from_bytes(&[9u8; 32]).verifying_key().to_bytes());
        assert!(TelnyxAdapter.verify_callback(&Credentials::Telnyx(c), &r, now).is_err());
        // Another provider's credentials.
        let twilio = Credentials::Twilio(TwilioCredentials {
            account_sid: "AC1".into(),
            auth_token: Secret::new("t"),
            messaging_service_sid: None,
            api_base_url: None,
        });
        assert!(matches!(TelnyxAdapter.verify_callback(&twilio, &r, now), Err(VerifyError::SecretUnusable(_))));
    }

    /// `telnyx-ed25519-DERIVED` from the shared vectors (RFC 8032 TEST 1 key).
    #[test]
    fn derived_vector_verifies() {
        let body = r#"{"data":{"event_type":"message.finalized","id":"b301ed3f-1490-491f-995f-6e64e69674d4","occurred_at":"2019-12-09T20:16:07.588+00:00","payload":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","to":[{"phone_number":"+18665550001","status":"delivered"}]},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#;
        let mut r = webhook(body);
        r.headers.push(("telnyx-timestamp".into(), "1700000000".into()));
        r.headers.push((
            "telnyx-signature-ed25519".into(),
            "lchVXVjBRnGkQTn+QU74DjlWXQ5030OidM9OU3rs06ViY5LsghXR0KdWJ2X9nJV3zxD0i/wF03Fq0tYlyjXlCw==".into(),
        ));
        let c = Credentials::Telnyx(TelnyxCredentials {
            api_key: Secret::new("k"),
            public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
            messaging_profile_id: None,
            api_base_url: None,
        });
        assert_eq!(TelnyxAdapter.verify_callback(&c, &r, 1_700_000_100), Ok(()));
        assert!(TelnyxAdapter.verify_callback(&c, &r, 1_700_000_301).is_err());
        let Callback::Status(u) = TelnyxAdapter.parse_callback(&r).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
        assert_eq!(
            TelnyxAdapter.replay_key(&r).as_deref(),
            Some("1700000000:lchVXVjBRnGkQTn+QU74DjlWXQ5030OidM9OU3rs06ViY5LsghXR0KdWJ2X9nJV3zxD0i/wF03Fq0tYlyjXlCw==")
        );
        assert_eq!(TelnyxAdapter.replay_key(&webhook(body)), None);
    }

    #[test]
    fn capabilities_are_declared() {
        let c = TelnyxAdapter.capabilities();
        assert!(c.sms && c.mms && c.inbound && c.status_callbacks);
        assert_eq!(c.max_media, 10);
        assert_eq!(TelnyxAdapter.kind(), ProviderKind::Telnyx);
    }
}
