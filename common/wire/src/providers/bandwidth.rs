//! Bandwidth Messaging v2.
//!
//! * Send: `POST {base}/api/v2/users/{accountId}/messages`, HTTP Basic (API user),
//!   `Content-Type: application/json; charset=utf-8`, body `messageRequest`
//!   `{applicationId, to[], from, text, media[], tag, priority, expiration}`; the answer
//!   is `202` with the `message` object `{id, owner, applicationId, time, segmentCount,
//!   direction, to, from, media, text, tag, priority, expiration}`
//!   (Bandwidth/python-sdk `bandwidth.yml`: `messageRequest`, `message`).
//! * Errors: `{"type", "description"[, "fieldErrors"]}`; 429 is
//!   `max-message-queue-size-exceeded`; 4xx/5xx are neither billed nor sent
//!   (Bandwidth/api-docs `site/docs/messaging/errors.mdx`).
//! * Callbacks: a JSON **array** of events `{type, time, description, to, errorCode?,
//!   message{id, owner, applicationId, time, segmentCount, direction, to[], from, text,
//!   media, tag, priority}}` (`site/docs/messaging/webhooks.mdx`), authenticated only
//!   by the HTTP Basic credentials configured on the Bandwidth application (no signature).
//!
//! Our message id travels in `tag`, which Bandwidth echoes in every callback.

use super::retry_after_secs;
use super::*;
use crate::signatures;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Production messaging host.
pub const DEFAULT_BASE_URL: &str = "https://messaging.bandwidth.com";

/// External media: "3.5 MB per file", "Maximum of 10 attachments"
/// (bandwidth.com/support/en/articles/12823216, "What types of limits apply to MMS").
const MAX_MEDIA: usize = 10;

pub struct BandwidthAdapter;

impl ProviderAdapter for BandwidthAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bandwidth
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            mms: true,
            max_media: MAX_MEDIA as u32,
            // 3.5 MB is Bandwidth's per-file ceiling for API media and the older
            // "HTTP V2 local MMS" total was 3.75 MB; toll-free MMS is limited to 525 KB
            // and Bandwidth recommends ≤ 500 KB in total for deliverability
            // (support articles 12823216, 360014235473, 360034303574).
            max_media_bytes: 3_500_000,
            // Bandwidth's own list (support article 360014128994) was not captured; these
            // are the common types every US carrier path takes.
            media_types: &["image/jpeg", "image/png", "image/gif", "video/mp4", "video/3gpp", "text/vcard"],
            // `from`: "Either an alphanumeric sender ID or the sender's Bandwidth phone
            // number in E.164 format" (bandwidth.yml `messageRequest`).
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "none: HTTP Basic credentials configured on the Bandwidth application",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let Credentials::Bandwidth(c) = creds else {
            return Err(SendError::Credentials(format!("expected bandwidth credentials, got {}", creds.kind())));
        };
        let account = c.account_id.trim();
        if account.is_empty() || !account.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(SendError::Credentials("bandwidth account_id is empty or not an account id".into()));
        }
        if c.username.is_empty() || c.password.expose().is_empty() || c.application_id.trim().is_empty() {
            return Err(SendError::Credentials("bandwidth username, password and application_id are required".into()));
        }

        let mut body = Map::new();
        body.insert("applicationId".into(), json!(c.application_id.trim()));
        body.insert("to".into(), json!([msg.to.as_str()]));
        body.insert("from".into(), json!(msg.from.as_str()));
        // Echoed in every callback: lets a callback be matched even before the send
        // record has stored Bandwidth's id.
        body.insert("tag".into(), json!(msg.id.to_string()));
        match msg.kind {
            MessageKind::Sms => {
                body.insert("text".into(), json!(msg.body));
                // `expiration`: RFC 3339, in the future; "Not supported on MMS".
                if let Some(secs) = msg.validity_secs.filter(|s| *s > 0) {
                    let at = chrono::Utc::now() + chrono::Duration::seconds(i64::from(secs));
                    body.insert("expiration".into(), json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
            }
            MessageKind::Mms => {
                if matches!(msg.from, SenderId::Alphanumeric(_)) {
                    return Err(SendError::Unsupported("bandwidth cannot send MMS from an alphanumeric sender".into()));
                }
                if msg.media_urls.is_empty() || msg.media_urls.len() > MAX_MEDIA {
                    return Err(SendError::Unsupported(format!(
                        "bandwidth MMS takes 1 to {MAX_MEDIA} media items, got {}",
                        msg.media_urls.len()
                    )));
                }
                if !msg.body.is_empty() {
                    body.insert("text".into(), json!(msg.body));
                }
                body.insert("media".into(), json!(msg.media_urls));
            }
        }
        // `priority` stays at Bandwidth's default: the adapter does not see the
        // content category, and `high` is not supported on MMS anyway.

        let base = base_url(c.api_base_url.as_deref(), DEFAULT_BASE_URL)?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password.expose()));
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/api/v2/users/{account}/messages"),
            headers: vec![
                ("Authorization".into(), format!("Basic {basic}")),
                ("Content-Type".into(), "application/json; charset=utf-8".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&Value::Object(body)).expect("a JSON map always serialises"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if (200..300).contains(&resp.status) {
            let Some(id) = v["id"].as_str().and_then(|id| ProviderMessageId::parse(id).ok()) else {
                // Bandwidth took the request: sending again could duplicate the message.
                return Err(SendError::Permanent {
                    code: Some("unparseable_response".into()),
                    message: format!("bandwidth answered HTTP {} without a message id", resp.status),
                });
            };
            return Ok(SendAccepted {
                provider_message_id: id,
                status: DeliveryStatus::Sent,
                provider_status: Some("accepted".into()),
                segments: v["segmentCount"].as_u64().and_then(|n| u32::try_from(n).ok()),
            });
        }

        // `{type, description, fieldErrors?}`; a 404 comes in Spring's `{status, error, message, path}`.
        let kind = v["type"].as_str().filter(|t| !t.is_empty()).map(clip);
        let mut message = format!("bandwidth HTTP {}", resp.status);
        if let Some(d) = v["description"].as_str().or(v["error"].as_str()) {
            message.push_str(": ");
            message.push_str(&clip(d));
        }
        // Field names help; field descriptions echo the values (numbers), so they stay out.
        let fields: Vec<&str> = v["fieldErrors"]
            .as_array()
            .map(|fe| fe.iter().filter_map(|f| f["fieldName"].as_str()).collect())
            .unwrap_or_default();
        if !fields.is_empty() {
            message.push_str(&format!(" (fields: {})", clip(&fields.join(", "))));
        }
        let code = kind.clone().or_else(|| Some(format!("http_{}", resp.status)));
        let transient = resp.status == 429
            || resp.status == 408
            || resp.status >= 500
            || kind.as_deref() == Some("max-message-queue-size-exceeded");
        if transient {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, _now_unix: i64) -> Result<(), VerifyError> {
        let Credentials::Bandwidth(c) = creds else {
            return Err(VerifyError::SecretUnusable("the credentials are not bandwidth credentials"));
        };
        signatures::bandwidth::verify(&c.callback_username, c.callback_password.expose(), req)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let v: Value = serde_json::from_slice(&req.body)
            .map_err(|_| CallbackParseError("bandwidth callback body is not JSON".into()))?;
        // Documented as always an array; a lone object is accepted all the same.
        let events: Vec<&Value> = match &v {
            Value::Array(items) => items.iter().collect(),
            Value::Object(_) => vec![&v],
            _ => return Err(bad("body is neither an array nor an object of events")),
        };
        if events.is_empty() {
            return Ok(Callback::Ignored("bandwidth callback with no events".into()));
        }

        let mut updates = Vec::new();
        let mut inbound = Vec::new();
        let mut ignored = Vec::new();
        for ev in events {
            let kind = ev["type"].as_str().ok_or_else(|| bad("an event has no `type`"))?;
            let error_code = code_string(&ev["errorCode"]);
            let mapped = map_event(kind, error_code.as_deref());
            if mapped.is_none() && kind != "message-received" {
                ignored.push(clip(kind));
                continue;
            }
            let message =
                ev.get("message").filter(|m| m.is_object()).ok_or_else(|| bad("an event has no `message`"))?;
            let Some((status, note)) = mapped else {
                inbound.push(parse_inbound(ev, message)?);
                continue;
            };
            let id = message["id"].as_str().ok_or_else(|| bad("an event has no `message.id`"))?;
            let provider_message_id =
                ProviderMessageId::parse(id).map_err(|_| bad("`message.id` is not a message id"))?;
            let is_mms = message["media"].as_array().is_some_and(|m| !m.is_empty());
            let mut description = ev["description"].as_str().filter(|d| !d.is_empty()).map(clip);
            if let Some(n) = note {
                description = Some(match description {
                    Some(d) => format!("{n}: {d}"),
                    None => n.to_owned(),
                });
            }
            if status == DeliveryStatus::Delivered && is_mms {
                // Without MMS delivery receipts enabled on the account, "delivered" only
                // means handed to Bandwidth's MMSC (webhooks.mdx, "Message Delivered").
                let n = "MMS: may only mean handed to the network unless MMS delivery receipts are enabled";
                description = Some(match description {
                    Some(d) => format!("{d} ({n})"),
                    None => n.to_owned(),
                });
            }
            updates.push(StatusUpdate {
                provider_message_id,
                status,
                provider_status: kind.to_owned(),
                error_code,
                description,
                client_ref: message["tag"].as_str().filter(|t| !t.is_empty()).map(str::to_owned),
                part: None,
                occurred_at: ev["time"].as_str().map(str::to_owned),
            });
        }

        match (updates.is_empty(), inbound.len()) {
            (false, 0) => Ok(Callback::Status(updates)),
            (true, 1) => Ok(Callback::Inbound(inbound.pop().expect("one inbound message"))),
            (true, 0) => Ok(Callback::Ignored(format!("bandwidth events not acted on: {}", ignored.join(", ")))),
            // One callback carries one kind of result; Bandwidth sends each inbound copy
            // as its own callback, so a mixed batch is refused rather than half-applied.
            _ => Err(bad("a callback mixing inbound messages with other events is not supported")),
        }
    }
}

/// Maps a Bandwidth event type (and the `errorCode` of `message-failed`) to ours.
/// `None` for events we acknowledge without acting: `message-sending` only precedes
/// the terminal MMS event, and the message is already `sent` once Bandwidth answered 202.
pub fn map_event(kind: &str, error_code: Option<&str>) -> Option<(DeliveryStatus, Option<&'static str>)> {
    Some(match kind {
        "message-sent" => (DeliveryStatus::Sent, None),
        "message-delivered" => (DeliveryStatus::Delivered, None),
        "message-read" => (DeliveryStatus::Delivered, Some("read by the recipient")),
        "message-failed" => failed_status(error_code),
        _ => return None,
    })
}

/// `message-failed` by `errorCode` class (errors.mdx): the first digit says client (4)
/// or server (5) error, the second who reported it (1/3/4 Bandwidth, 7 carrier;
/// 1/2/5 Bandwidth, 6 carrier); 9xxx is ambiguous.
fn failed_status(error_code: Option<&str>) -> (DeliveryStatus, Option<&'static str>) {
    let Some(code) = error_code.and_then(|c| c.parse::<u32>().ok()) else {
        return (DeliveryStatus::Failed, None);
    };
    match code {
        // message-not-sent-expiration-date-passed
        4360 => (DeliveryStatus::Expired, None),
        // Carrier-reported client errors: the message left Bandwidth.
        4700..=4799 => (DeliveryStatus::Undelivered, None),
        // Bandwidth rejected it: it never left Bandwidth.
        4000..=4699 | 4800..=4999 => (DeliveryStatus::Failed, None),
        // Bandwidth or carrier service failures after acceptance.
        5000..=5999 => (DeliveryStatus::Undelivered, None),
        9902 => (DeliveryStatus::Undelivered, Some("no delivery receipt within Bandwidth's timeout; delivery unknown")),
        9000..=9999 => (DeliveryStatus::Undelivered, Some("unknown downstream error")),
        _ => (DeliveryStatus::Failed, None),
    }
}

fn parse_inbound(ev: &Value, message: &Value) -> Result<InboundMessage, CallbackParseError> {
    let id = message["id"].as_str().ok_or_else(|| bad("inbound event has no `message.id`"))?;
    let from = message["from"].as_str().ok_or_else(|| bad("inbound event has no `message.from`"))?;
    // The event's `to` is the number this copy was delivered to (= `message.owner`).
    let to = ev["to"]
        .as_str()
        .or(message["owner"].as_str())
        .or_else(|| message["to"].as_array().and_then(|t| t.first()).and_then(Value::as_str))
        .ok_or_else(|| bad("inbound event has no recipient"))?;
    let media = message["media"]
        .as_array()
        .map(|m| {
            m.iter().filter_map(Value::as_str).map(|u| InboundMedia { url: u.to_owned(), content_type: None }).collect()
        })
        .unwrap_or_default();
    // Evidence without the content (the text lives in the message record).
    let mut meta = ev.clone();
    if let Some(m) = meta.get_mut("message").and_then(Value::as_object_mut) {
        m.remove("text");
    }
    Ok(InboundMessage {
        provider_message_id: id.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        text: message["text"].as_str().unwrap_or_default().to_owned(),
        media,
        received_at: message["time"].as_str().or(ev["time"].as_str()).map(str::to_owned),
        provider_metadata: meta,
    })
}

fn code_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(clip(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(what: &str) -> CallbackParseError {
    CallbackParseError(format!("bandwidth callback: {what}"))
}

fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX { s.to_owned() } else { s.chars().take(MAX).collect::<String>() + "…" }
}

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
    use crate::providers::credentials::{BandwidthCredentials, Secret, SinchCredentials};

    const MSG_ID: &str = "01JD0000000000000000000000";

    fn creds() -> Credentials {
        Credentials::Bandwidth(BandwidthCredentials {
            account_id: "9900000".into(),
            username: "api-user".into(),
            password: Secret::new("api-pass"),
            application_id: "93de2206-9669-4e07-948d-329f4b722ee2".into(),
            callback_username: "cb-user".into(),
            callback_password: Secret::new("cb-pass"),
            api_base_url: None,
        })
    }

    fn msg(kind: MessageKind, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: MSG_ID.parse().unwrap(),
            kind,
            to: E164::parse("+12015550123", None).unwrap(),
            from: SenderId::LongCode(E164::parse("+12015550124", None).unwrap()),
            body: "Shelter open at Lincoln High.".into(),
            media_urls: media,
            status_callback_url: "https://hooks.example.org/v1/webhooks/bandwidth/t1".into(),
            validity_secs: Some(600),
        }
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
            url: "https://hooks.example.org/v1/webhooks/bandwidth/t1".into(),
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sms_request_shape() {
        let before = chrono::Utc::now();
        let r = BandwidthAdapter.build_send(&creds(), &msg(MessageKind::Sms, vec![])).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://messaging.bandwidth.com/api/v2/users/9900000/messages");
        // base64("api-user:api-pass")
        assert_eq!(header(&r, "authorization"), Some("Basic YXBpLXVzZXI6YXBpLXBhc3M="));
        assert_eq!(header(&r, "content-type"), Some("application/json; charset=utf-8"));
        let mut b = body_json(&r);
        let expiration = b.as_object_mut().unwrap().remove("expiration").unwrap();
        assert_eq!(
            b,
            json!({
                "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2",
                "to": ["+12015550123"],
                "from": "+12015550124",
                "text": "Shelter open at Lincoln High.",
                "tag": MSG_ID,
            })
        );
        // Bounded by the clock before and after the build (a loaded machine may take
        // seconds to warm up phone metadata), with a second for RFC 3339 truncation.
        let after = chrono::Utc::now();
        let at = chrono::DateTime::parse_from_rfc3339(expiration.as_str().unwrap()).unwrap();
        assert!(at.signed_duration_since(before).num_seconds() >= 599, "expiration too early");
        assert!(at.signed_duration_since(after).num_seconds() <= 601, "expiration too late");
        assert!(!format!("{r:?}").contains("api-pass"));
    }

    #[test]
    fn mms_request_shape() {
        let media = vec!["https://media.example.org/map.png".to_string()];
        let r = BandwidthAdapter.build_send(&creds(), &msg(MessageKind::Mms, media.clone())).unwrap();
        let b = body_json(&r);
        assert_eq!(b["media"], json!(media));
        assert_eq!(b["text"], "Shelter open at Lincoln High.");
        assert!(b.get("expiration").is_none(), "expiration is not supported on MMS");
        assert!(b.get("priority").is_none());
        let e = BandwidthAdapter.build_send(&creds(), &msg(MessageKind::Mms, vec![])).unwrap_err();
        assert!(matches!(e, SendError::Unsupported(_)));
        let eleven = (0..11).map(|i| format!("https://m.example.org/{i}.jpg")).collect();
        assert!(matches!(
            BandwidthAdapter.build_send(&creds(), &msg(MessageKind::Mms, eleven)),
            Err(SendError::Unsupported(_))
        ));
        let mut m = msg(MessageKind::Sms, vec![]);
        m.validity_secs = None;
        assert!(body_json(&BandwidthAdapter.build_send(&creds(), &m).unwrap()).get("expiration").is_none());
    }

    #[test]
    fn base_url_and_credentials() {
        let Credentials::Bandwidth(mut c) = creds() else { unreachable!() };
        c.api_base_url = Some("http://127.0.0.1:9/".into());
        let r =
            BandwidthAdapter.build_send(&Credentials::Bandwidth(c.clone()), &msg(MessageKind::Sms, vec![])).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9/api/v2/users/9900000/messages");
        c.account_id = "99/../x".into();
        assert!(matches!(
            BandwidthAdapter.build_send(&Credentials::Bandwidth(c), &msg(MessageKind::Sms, vec![])),
            Err(SendError::Credentials(_))
        ));
        assert!(matches!(
            BandwidthAdapter.build_send(&sinch_creds(), &msg(MessageKind::Sms, vec![])),
            Err(SendError::Credentials(_))
        ));
    }

    fn sinch_creds() -> Credentials {
        Credentials::Sinch(SinchCredentials {
            service_plan_id: "p".into(),
            api_token: Secret::new("t"),
            region: None,
            webhook_secret: Secret::new("s"),
            api_base_url: None,
        })
    }

    /// The `message` example of bandwidth.yml (createMessage 202).
    const ACCEPTED: &str = r#"{"id":"1589228074636lm4k2je7j7jklbn2","owner":"+15554443333",
        "applicationId":"93de2206-9669-4e07-948d-329f4b722ee2","time":"2022-09-14T18:20:16.000Z","segmentCount":2,
        "direction":"out","to":["+15552223333"],"from":"+15553332222",
        "media":["https://dev.bandwidth.com/images/bandwidth-logo.png"],"text":"Hello world","tag":"custom tag",
        "priority":"default","expiration":"2021-02-01T11:29:18-05:00"}"#;

    #[test]
    fn parses_accepted_send() {
        let a = BandwidthAdapter.parse_send_response(&resp(202, &[], ACCEPTED)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), "1589228074636lm4k2je7j7jklbn2");
        assert_eq!(a.status, DeliveryStatus::Sent);
        assert_eq!(a.segments, Some(2));
        assert!(matches!(
            BandwidthAdapter.parse_send_response(&resp(202, &[], "{}")),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn classifies_errors() {
        // Bodies from errors.mdx.
        let q = r#"{"type":"max-message-queue-size-exceeded","description":"The SMS queue for your account is full and cannot accept more messages right now. Your allowed rate is 60 messages per minute. The capacity of this queue is 900 messages (15 minutes). Reduce your message sending rate, or contact support to increase your allowed rate."}"#;
        let e = BandwidthAdapter.parse_send_response(&resp(429, &[("retry-after", "30")], q)).unwrap_err();
        let SendError::Transient { code, retry_after_secs, .. } = &e else { panic!("transient expected: {e}") };
        assert_eq!(code.as_deref(), Some("max-message-queue-size-exceeded"));
        assert_eq!(*retry_after_secs, Some(30));
        let table: &[(u16, &str, &str, bool)] = &[
            (
                400,
                r#"{"type":"request-validation","description":"Your request could not be accepted","fieldErrors":[{"fieldName":"to","description":"'+1' must be replaced with a valid E164 formatted telephone number"}]}"#,
                "request-validation",
                false,
            ),
            (401, r#"{"type":"unauthorized","description":"Authentication Failed"}"#, "unauthorized", false),
            (403, r#"{"type":"forbidden","description":"Access Denied"}"#, "forbidden", false),
            (
                415,
                r#"{"type":"unsupported-content-type","description":"Content type 'text/plain;charset=UTF-8' not supported. Please use 'application/json'"}"#,
                "unsupported-content-type",
                false,
            ),
            (
                404,
                r#"{"timestamp":"2019-09-09T19:02:19.253+0000","status":404,"error":"Not Found","message":"Not Found","path":"/api/v2/users/x/messages"}"#,
                "http_404",
                false,
            ),
            (
                500,
                r#"{"type":"internal-server-error","description":"Internal Server Error"}"#,
                "internal-server-error",
                true,
            ),
            (503, "", "http_503", true),
        ];
        for (status, body, code, transient) in table {
            let e = BandwidthAdapter.parse_send_response(&resp(*status, &[], body)).unwrap_err();
            assert_eq!(e.is_transient(), *transient, "{status}: {e}");
            assert_eq!(e.code(), Some(*code), "{status}");
        }
        let e = BandwidthAdapter.parse_send_response(&resp(400, &[], table[0].1)).unwrap_err();
        assert!(e.to_string().contains("fields: to"), "{e}");
        assert!(!e.to_string().contains("E164 formatted"), "field descriptions stay out: {e}");
    }

    #[test]
    fn failed_error_code_classes() {
        use DeliveryStatus::*;
        let table: &[(Option<&str>, DeliveryStatus)] = &[
            (Some("4001"), Failed),
            (Some("4301"), Failed),
            (Some("4360"), Expired),
            (Some("4405"), Failed),
            (Some("4432"), Failed),
            (Some("4470"), Failed),
            (Some("4700"), Undelivered),
            (Some("4720"), Undelivered),
            (Some("4775"), Undelivered),
            (Some("5100"), Undelivered),
            (Some("5211"), Undelivered),
            (Some("5600"), Undelivered),
            (Some("5650"), Undelivered),
            (Some("9902"), Undelivered),
            (Some("9999"), Undelivered),
            (None, Failed),
            (Some("abc"), Failed),
        ];
        for (code, expected) in table {
            assert_eq!(map_event("message-failed", *code).map(|(s, _)| s), Some(*expected), "{code:?}");
        }
        assert_eq!(map_event("message-sent", None).map(|(s, _)| s), Some(Sent));
        assert_eq!(map_event("message-delivered", None).map(|(s, _)| s), Some(Delivered));
        assert_eq!(map_event("message-read", None).map(|(s, _)| s), Some(Delivered));
        assert_eq!(map_event("message-sending", None), None);
        assert_eq!(map_event("message-received", None), None);
    }

    fn event(kind: &str, id: &str, error_code: Option<u32>, media: bool) -> Value {
        let mut e = json!({
            "time": "2020-06-25T18:42:36.979Z",
            "type": kind,
            "to": "+15554443333",
            "description": if kind == "message-failed" { "rejected-unallocated-to-number" } else { "ok" },
            "message": {
                "id": id,
                "owner": "+15552221111",
                "applicationId": "cfd4fb83-7531-4acc-b471-42d0bb76a65c",
                "time": "2020-06-25T18:42:35.876Z",
                "segmentCount": 1,
                "direction": "out",
                "to": ["+15554443333"],
                "from": "+15552221111",
                "text": "",
                "tag": MSG_ID
            }
        });
        if let Some(c) = error_code {
            e["errorCode"] = json!(c);
        }
        if media {
            e["message"]["media"] = json!(["https://dev.bandwidth.com/images/bandwidth-logo.png"]);
        }
        e
    }

    #[test]
    fn parses_arrays_of_events() {
        let body = json!([
            event("message-sending", "1593110555875xo7watq5px6rbe5d", None, true),
            event("message-delivered", "1593110555875xo7watq5px6rbe5d", None, false),
            event("message-failed", "1585321273456iprz22vjeo4tvooc", Some(4406), false),
            event("message-failed", "1585321273456iprz22vjeo4tvood", Some(4360), false),
            event("message-failed", "1585321273456iprz22vjeo4tvooe", Some(4720), false),
        ])
        .to_string();
        let Callback::Status(u) = BandwidthAdapter.parse_callback(&webhook(&body)).unwrap() else { panic!() };
        assert_eq!(u.len(), 4, "message-sending is acknowledged, not applied");
        assert_eq!(u[0].provider_message_id.as_str(), "1593110555875xo7watq5px6rbe5d");
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
        assert_eq!(u[0].client_ref.as_deref(), Some(MSG_ID));
        assert_eq!(u[0].occurred_at.as_deref(), Some("2020-06-25T18:42:36.979Z"));
        assert_eq!(u[0].error_code, None);
        assert_eq!(u[1].status, DeliveryStatus::Failed);
        assert_eq!(u[1].error_code.as_deref(), Some("4406"));
        assert_eq!(u[1].provider_status, "message-failed");
        assert_eq!(u[1].description.as_deref(), Some("rejected-unallocated-to-number"));
        assert_eq!(u[2].status, DeliveryStatus::Expired);
        assert_eq!(u[3].status, DeliveryStatus::Undelivered);

        let only_sending = json!([event("message-sending", "1593110555875xo7watq5px6rbe5d", None, true)]).to_string();
        assert!(matches!(BandwidthAdapter.parse_callback(&webhook(&only_sending)).unwrap(), Callback::Ignored(_)));

        // MMS "delivered" carries the caveat.
        let mms = json!([event("message-delivered", "14762070468292kw2fuqty55yp2b2", None, true)]).to_string();
        let Callback::Status(u) = BandwidthAdapter.parse_callback(&webhook(&mms)).unwrap() else { panic!() };
        assert!(u[0].description.as_deref().unwrap().contains("MMS"));
    }

    /// The inbound example of webhooks.mdx ("Inbound SMS").
    const INBOUND: &str = r#"[
      {
        "type"          : "message-received",
        "time"          : "2016-09-14T18:20:16Z",
        "description"   : "Incoming message received",
        "to"            : "+12345678902",
        "message"       : {
          "id"            : "14762070468292kw2fuqty55yp2b2",
          "time"          : "2016-09-14T18:20:16Z",
          "to"            : ["+12345678902"],
          "from"          : "+12345678901",
          "text"          : "Hey, check this out!",
          "applicationId" : "93de2206-9669-4e07-948d-329f4b722ee2",
          "media"         : [
            "https://messaging.bandwidth.com/api/v2/users/{accountId}/media/14762070468292kw2fuqty55yp2b2/0/bw.png"
            ],
          "owner"         : "+12345678902",
          "direction"     : "in",
          "segmentCount"  : 1
        }
      }
    ]"#;

    #[test]
    fn parses_inbound() {
        let Callback::Inbound(m) = BandwidthAdapter.parse_callback(&webhook(INBOUND)).unwrap() else { panic!() };
        assert_eq!(m.provider_message_id, "14762070468292kw2fuqty55yp2b2");
        assert_eq!(m.from, "+12345678901");
        assert_eq!(m.to, "+12345678902");
        assert_eq!(m.text, "Hey, check this out!");
        assert_eq!(m.media.len(), 1);
        assert!(m.media[0].url.ends_with("/0/bw.png"));
        assert_eq!(m.received_at.as_deref(), Some("2016-09-14T18:20:16Z"));
        assert!(m.provider_metadata["message"].get("text").is_none());
        assert_eq!(m.provider_metadata["message"]["applicationId"], "93de2206-9669-4e07-948d-329f4b722ee2");
    }

    #[test]
    fn odd_callbacks() {
        assert!(BandwidthAdapter.parse_callback(&webhook("nope")).is_err());
        assert!(BandwidthAdapter.parse_callback(&webhook("42")).is_err());
        assert!(matches!(BandwidthAdapter.parse_callback(&webhook("[]")).unwrap(), Callback::Ignored(_)));
        assert!(BandwidthAdapter.parse_callback(&webhook(r#"[{"type":"message-delivered"}]"#)).is_err());
        let mixed: Value = serde_json::from_str(INBOUND).unwrap();
        let mixed =
            json!([mixed[0], event("message-delivered", "1593110555875xo7watq5px6rbe5d", None, false)]).to_string();
        assert!(BandwidthAdapter.parse_callback(&webhook(&mixed)).is_err());
        // A lone object is tolerated.
        let lone = event("message-delivered", "1593110555875xo7watq5px6rbe5d", None, false).to_string();
        assert!(matches!(BandwidthAdapter.parse_callback(&webhook(&lone)).unwrap(), Callback::Status(_)));
    }

    fn with_basic(user: &str, pass: &str) -> WebhookRequest {
        let mut r = webhook(INBOUND);
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        r.headers.push(("Authorization".into(), format!("Basic {token}")));
        r
    }

    #[test]
    fn verifies_basic_credentials() {
        assert_eq!(BandwidthAdapter.verify_callback(&creds(), &with_basic("cb-user", "cb-pass"), 0), Ok(()));
        assert!(BandwidthAdapter.verify_callback(&creds(), &with_basic("cb-user", "wrong"), 0).is_err());
        assert!(BandwidthAdapter.verify_callback(&creds(), &with_basic("api-user", "api-pass"), 0).is_err());
        assert!(BandwidthAdapter.verify_callback(&creds(), &webhook(INBOUND), 0).is_err());
        assert!(matches!(
            BandwidthAdapter.verify_callback(&sinch_creds(), &with_basic("cb-user", "cb-pass"), 0),
            Err(VerifyError::SecretUnusable(_))
        ));
        assert_eq!(BandwidthAdapter.replay_key(&with_basic("cb-user", "cb-pass")), None);
    }

    #[test]
    fn capabilities_are_declared() {
        let c = BandwidthAdapter.capabilities();
        assert!(c.sms && c.mms && c.inbound && c.status_callbacks && c.alphanumeric_sender);
        assert_eq!(c.max_media, 10);
        assert_eq!(BandwidthAdapter.kind(), ProviderKind::Bandwidth);
    }
}
