//! Plivo Messaging (`api.plivo.com`, API v1), from Plivo's API reference.
//!
//! * Send: `POST {base}/v1/Account/{auth_id}/Message/`, JSON (`src`, `dst`, `text`,
//!   `type` sms|mms, `url` + `method` for status callbacks, `media_urls`,
//!   `message_expiry`), HTTP Basic `auth_id:auth_token` (plivo-python
//!   `plivo/resources/messages.py`, `plivo/rest/client.py`). Success: `202
//!   {"api_id","message":"message(s) queued","message_uuid":["…"]}`
//!   (`tests/resources/fixtures/messageSendResponse.json`). Errors: `{"api_id","error"}`
//!   with the meaning in the HTTP status (`client.py` `process_response`).
//! * Status callbacks: form POST (or GET query) `MessageUUID`, `Status`, `ErrorCode`…;
//!   inbound: `From`, `To`, `Text` (SMS) / `Body` + `Media<n>` (MMS), `Type`. Both
//!   signed with `X-Plivo-Signature-V3` over URL + params + nonce.

use super::*;
use dispatch_domain::{MessageKind, SenderId};
use crate::signatures;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Production API host.
pub const DEFAULT_BASE_URL: &str = "https://api.plivo.com";

/// "For MMS: comma-separated URLs (max 10, total size < 5MB)" (Plivo API reference,
/// Send a Message, `media_urls`; https://www.plivo.com/docs/messaging/api/messages).
pub const MAX_MEDIA: u32 = 10;
pub const MAX_MEDIA_BYTES: u64 = 5 * 1024 * 1024;

/// Longest provider error text carried into our own errors.
const MAX_ERROR_MESSAGE: usize = 200;

/// Most `Media<n>` fields read from an inbound MMS (Plivo sends up to 10).
const MAX_INBOUND_MEDIA: usize = 20;

pub struct PlivoAdapter;

fn plivo_creds(creds: &Credentials) -> Option<&credentials::PlivoCredentials> {
    match creds {
        Credentials::Plivo(c) => Some(c),
        _ => None,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_MESSAGE).collect()
}

fn base_url(configured: Option<&str>) -> Result<String, SendError> {
    let base = configured.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
    match url::Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none() => Ok(base.to_string()),
        _ => Err(SendError::Credentials("plivo api_base_url is not an http(s) URL".into())),
    }
}

/// Plivo status words → canonical states (providers.md §5 mapping; `rejected` from the
/// older callback documentation, `read` for WhatsApp).
pub fn canonical_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "queued" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "rejected" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Text for the Plivo delivery error codes we have sources for
/// (https://plivo.com/docs/messaging/troubleshooting/error-codes); the rest of the
/// table was not captured.
pub fn error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "10" => "invalid message",
        "20" => "network error (temporary)",
        "30" => "spam detected",
        "40" => "invalid source number",
        "50" => "invalid destination number",
        _ => return None,
    })
}

/// `{"api_id", "error"}`; `error` is usually a string, sometimes an object of field
/// messages. The text may name a number, never the message body.
fn error_message(body: &[u8]) -> Option<String> {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else { return None };
    match v.get("error")? {
        Value::String(s) if !s.is_empty() => Some(truncate(s)),
        Value::Null => None,
        other => Some(truncate(&other.to_string())),
    }
}

fn malformed_success(status: u16, what: &str) -> SendError {
    SendError::Transient {
        code: Some("malformed_response".into()),
        message: format!("plivo answered {status} but {what}"),
        retry_after_secs: None,
    }
}

/// The first non-empty value of `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// Plivo timestamps are `YYYY-mm-dd HH:MM:SS[.ffffff]`, with a UTC offset in some
/// payloads. Only an offset-carrying value can be placed in time; others are dropped.
fn iso_timestamp(s: &str) -> Option<String> {
    ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%:z"]
        .iter()
        .find_map(|f| chrono::DateTime::parse_from_str(s, f).ok())
        .map(|dt| dt.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn callback_params(req: &WebhookRequest) -> Vec<(String, String)> {
    if req.method.eq_ignore_ascii_case("GET") || req.body.is_empty() { req.query_params() } else { req.form_params() }
}

impl PlivoAdapter {
    fn parse_status(params: &[(String, String)]) -> Result<Callback, CallbackParseError> {
        let id = param(params, "MessageUUID").ok_or_else(|| CallbackParseError("`MessageUUID` is missing".into()))?;
        let word = param(params, "Status").unwrap_or_default();
        if let Some(kind) = param(params, "Type")
            && !matches!(kind, "sms" | "mms")
        {
            return Ok(Callback::Ignored(format!("Plivo {} status", kind.chars().take(32).collect::<String>())));
        }
        let Some(status) = canonical_status(word) else {
            return Ok(Callback::Ignored(format!("Plivo status `{}`", word.chars().take(32).collect::<String>())));
        };
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|e| CallbackParseError(format!("`MessageUUID`: {e}")))?;
        // "000" means success in Plivo's records; only failures carry a real code.
        let error_code = param(params, "ErrorCode").filter(|c| c.chars().any(|ch| ch != '0')).map(str::to_string);
        let description = error_code.as_deref().and_then(error_text).map(str::to_string);
        let occurred_at = ["DeliveryReportTime", "SentTime", "QueuedTime", "MessageTime"]
            .iter()
            .find_map(|k| param(params, k))
            .and_then(iso_timestamp);
        Ok(Callback::Status(vec![StatusUpdate {
            provider_message_id,
            status,
            provider_status: word.to_string(),
            error_code,
            description,
            client_ref: None,
            // `ParentMessageUUID`/`PartInfo` are "reserved for future use" (callback docs).
            part: None,
            occurred_at,
        }]))
    }

    fn parse_inbound(params: &[(String, String)]) -> Result<Callback, CallbackParseError> {
        let need = |k: &str| param(params, k).ok_or_else(|| CallbackParseError(format!("`{k}` is missing")));
        // `Media1..MediaN` per the API reference (a support article says `Media0..`):
        // accept any `Media<digits>`, in index order.
        let mut indexed: Vec<(u32, &str)> = params
            .iter()
            .filter_map(|(k, v)| {
                let idx = k.strip_prefix("Media")?.parse::<u32>().ok()?;
                (!v.is_empty()).then_some((idx, v.as_str()))
            })
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        indexed.dedup_by_key(|(i, _)| *i);
        let media = indexed
            .into_iter()
            .take(MAX_INBOUND_MEDIA)
            .map(|(_, url)| InboundMedia { url: url.to_string(), content_type: None })
            .collect();
        let mut meta = Map::new();
        for (k, v) in params {
            if !matches!(k.as_str(), "Text" | "Body") && !meta.contains_key(k) {
                meta.insert(k.clone(), Value::String(v.clone()));
            }
        }
        Ok(Callback::Inbound(InboundMessage {
            provider_message_id: need("MessageUUID")?.to_string(),
            from: need("From")?.to_string(),
            to: need("To")?.to_string(),
            // SMS text is `Text`; MMS text is `Body`.
            text: param(params, "Text").or_else(|| param(params, "Body")).unwrap_or_default().to_string(),
            media,
            received_at: None,
            provider_metadata: Value::Object(meta),
        }))
    }
}

impl ProviderAdapter for PlivoAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Plivo
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // MMS to US and Canadian numbers (Plivo MMS coverage); `build_send` refuses
            // other destinations.
            mms: true,
            max_media: MAX_MEDIA,
            max_media_bytes: MAX_MEDIA_BYTES,
            // Plivo Media object: "Valid content types accepted: JPG, PNG, MP4, Gif, PDF,
            // text" (for uploaded media; URL media is assumed to follow the same list).
            media_types: &["image/jpeg", "image/png", "image/gif", "video/mp4", "application/pdf", "text/plain"],
            // "Support for alphanumeric sender IDs is disabled by default" (Send a
            // Message, `src`): an account setting, allowed by the API.
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "X-Plivo-Signature-V3: base64 HMAC-SHA256 (auth token) of URL + sorted params + \".\" + \
                               X-Plivo-Signature-V3-Nonce",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let c = plivo_creds(creds).ok_or_else(|| SendError::Credentials("not Plivo credentials".into()))?;
        if c.auth_id.is_empty() || !c.auth_id.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            return Err(SendError::Credentials("plivo auth_id is empty or not an auth id".into()));
        }
        if c.auth_token.expose().is_empty() {
            return Err(SendError::Credentials("plivo auth_token is empty".into()));
        }
        let base = base_url(c.api_base_url.as_deref())?;
        // Plivo strips `+` itself; we send the documented digits-only form.
        let src = match &msg.from {
            SenderId::LongCode(n) => n.digits(),
            other => other.as_str(),
        };
        let mut body = json!({
            "src": src,
            "dst": msg.to.digits(),
            "type": "sms",
        });
        match msg.kind {
            MessageKind::Sms => body["text"] = json!(msg.body),
            MessageKind::Mms => {
                if msg.media_urls.is_empty() {
                    return Err(SendError::Permanent {
                        code: Some("mms_without_media".into()),
                        message: "an MMS needs at least one media URL".into(),
                    });
                }
                if msg.media_urls.len() > MAX_MEDIA as usize {
                    return Err(SendError::Unsupported(format!(
                        "{} media items; Plivo takes at most {MAX_MEDIA}",
                        msg.media_urls.len()
                    )));
                }
                if !matches!(msg.to.region().as_deref(), Some("US" | "CA")) {
                    return Err(SendError::Unsupported("Plivo MMS reaches US and Canadian numbers only".into()));
                }
                if matches!(msg.from, SenderId::Alphanumeric(_)) {
                    return Err(SendError::Unsupported("MMS cannot be sent from an alphanumeric sender".into()));
                }
                body["type"] = json!("mms");
                body["media_urls"] = json!(msg.media_urls);
                if !msg.body.is_empty() {
                    body["text"] = json!(msg.body);
                }
            }
        }
        if !msg.status_callback_url.is_empty() {
            body["url"] = json!(msg.status_callback_url);
            body["method"] = json!("POST");
        }
        if let Some(v) = msg.validity_secs {
            // Seconds (plivo-python validates an integer); the accepted range was not
            // captured, Plivo answers 400 if it objects.
            body["message_expiry"] = json!(v);
        }
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.auth_id, c.auth_token.expose()));
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/v1/Account/{}/Message/", c.auth_id),
            headers: vec![
                ("Authorization".into(), format!("Basic {auth}")),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&body).expect("a JSON value always serializes"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let status = resp.status;
        if (200..300).contains(&status) {
            let v: Value =
                serde_json::from_slice(&resp.body).map_err(|_| malformed_success(status, "the body is not JSON"))?;
            // One uuid per destination; we always send to exactly one.
            let id = v
                .get("message_uuid")
                .and_then(Value::as_array)
                .and_then(|ids| ids.first())
                .and_then(Value::as_str)
                .ok_or_else(|| malformed_success(status, "without a `message_uuid`"))?;
            let provider_message_id = ProviderMessageId::parse(id)
                .map_err(|_| malformed_success(status, "with an unusable `message_uuid`"))?;
            return Ok(SendAccepted {
                provider_message_id,
                status: DeliveryStatus::Sent,
                provider_status: Some("queued".into()),
                segments: None,
            });
        }
        let message = error_message(&resp.body).unwrap_or_else(|| format!("plivo answered HTTP {status}"));
        // Plivo's API errors carry no code of their own: the HTTP status is the code.
        let code = Some(format!("http_{status}"));
        if status == 408 || status == 429 || status >= 500 {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, _now_unix: i64) -> Result<(), VerifyError> {
        let c = plivo_creds(creds).ok_or(VerifyError::SecretUnusable("not Plivo credentials"))?;
        signatures::plivo::verify_v3(c.auth_token.expose(), req)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        if !req.body.is_empty() && signatures::is_json_body(req) {
            return Err(CallbackParseError("a JSON body is not a Plivo messaging callback".into()));
        }
        let params = callback_params(req);
        if param(&params, "Status").is_some() {
            Self::parse_status(&params)
        } else if param(&params, "From").is_some()
            && param(&params, "To").is_some()
            && param(&params, "MessageUUID").is_some()
        {
            match param(&params, "Type").unwrap_or("sms") {
                "sms" | "mms" => Self::parse_inbound(&params),
                other => Ok(Callback::Ignored(format!("Plivo inbound {}", other.chars().take(32).collect::<String>()))),
            }
        } else if params.is_empty() {
            Err(CallbackParseError("no parameters".into()))
        } else {
            Ok(Callback::Ignored("neither a Plivo status callback nor an inbound message".into()))
        }
    }

    /// The signed nonce: Plivo callbacks have no timestamp, the nonce is the handle.
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        req.single_header(signatures::plivo::NONCE_HEADER).ok().filter(|n| !n.is_empty()).map(|n| format!("nonce:{n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_domain::{E164, MessageId};
    use crate::providers::credentials::{PlivoCredentials, Secret};
    use crate::signatures::plivo::{NONCE_HEADER, SIGNATURE_HEADER, sign_v3};

    const AUTH_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
    const TOKEN: &str = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4";

    fn creds() -> Credentials {
        Credentials::Plivo(PlivoCredentials {
            auth_id: AUTH_ID.into(),
            auth_token: Secret::new(TOKEN),
            api_base_url: None,
        })
    }

    fn msg(kind: MessageKind, to: &str, from: &str, body: &str, media: &[&str]) -> OutboundMessage {
        OutboundMessage {
            id: "01JD0000000000000000000000".parse::<MessageId>().unwrap(),
            kind,
            to: E164::parse(to, None).unwrap(),
            from: SenderId::parse(from).unwrap(),
            body: body.into(),
            media_urls: media.iter().map(|s| s.to_string()).collect(),
            status_callback_url: "https://hooks.example.org/v1/webhooks/plivo".into(),
            validity_secs: Some(900),
        }
    }

    fn resp(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn header<'a>(r: &'a ProviderRequest, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn form_req(url: &str, p: &[(String, String)], extra: &[(&str, &str)]) -> WebhookRequest {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in p {
            s.append_pair(k, v);
        }
        let mut headers = vec![("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        WebhookRequest { method: "POST".into(), url: url.into(), headers, body: s.finish().into_bytes() }
    }

    #[test]
    fn sms_request_shape() {
        let r = PlivoAdapter
            .build_send(&creds(), &msg(MessageKind::Sms, "+14155552345", "+14155550100", "Boil water notice", &[]))
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, format!("https://api.plivo.com/v1/Account/{AUTH_ID}/Message/"));
        let expected_auth =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:{TOKEN}")));
        assert_eq!(header(&r, "Authorization"), Some(expected_auth.as_str()));
        assert_eq!(header(&r, "Content-Type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"src": "14155550100", "dst": "14155552345", "text": "Boil water notice", "type": "sms",
                   "url": "https://hooks.example.org/v1/webhooks/plivo", "method": "POST", "message_expiry": 900})
        );
        let alpha = PlivoAdapter
            .build_send(&creds(), &msg(MessageKind::Sms, "+447400123456", "CityCouncil", "x", &[]))
            .unwrap();
        let v: Value = serde_json::from_slice(&alpha.body).unwrap();
        assert_eq!(v["src"], "CityCouncil");
    }

    #[test]
    fn mms_request_shape_and_refusals() {
        let c = Credentials::Plivo(PlivoCredentials {
            auth_id: AUTH_ID.into(),
            auth_token: Secret::new(TOKEN),
            api_base_url: Some("http://127.0.0.1:9".into()),
        });
        let m = msg(
            MessageKind::Mms,
            "+14155552345",
            "+14155550100",
            "",
            &["https://m.example/a.jpg", "https://m.example/b.gif"],
        );
        let r = PlivoAdapter.build_send(&c, &m).unwrap();
        assert_eq!(r.url, format!("http://127.0.0.1:9/v1/Account/{AUTH_ID}/Message/"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "mms");
        assert_eq!(v["media_urls"], json!(["https://m.example/a.jpg", "https://m.example/b.gif"]));
        assert!(v.get("text").is_none());

        let uk = msg(MessageKind::Mms, "+447400123456", "+447400123457", "", &["https://m.example/a.jpg"]);
        assert!(matches!(PlivoAdapter.build_send(&creds(), &uk), Err(SendError::Unsupported(_))));
        let urls: Vec<String> = (0..11).map(|i| format!("https://m/{i}.jpg")).collect();
        let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
        let many = msg(MessageKind::Mms, "+14155552345", "+14155550100", "", &refs);
        assert!(matches!(PlivoAdapter.build_send(&creds(), &many), Err(SendError::Unsupported(_))));
        let none = msg(MessageKind::Mms, "+14155552345", "+14155550100", "", &[]);
        assert!(matches!(PlivoAdapter.build_send(&creds(), &none), Err(SendError::Permanent { .. })));
        let twilio = Credentials::Twilio(credentials::TwilioCredentials {
            account_sid: "AC1".into(),
            auth_token: Secret::new("t"),
            messaging_service_sid: None,
            api_base_url: None,
        });
        assert!(matches!(PlivoAdapter.build_send(&twilio, &m), Err(SendError::Credentials(_))));
        let bad_id = Credentials::Plivo(PlivoCredentials {
            auth_id: "MA/../x".into(),
            auth_token: Secret::new(TOKEN),
            api_base_url: None,
        });
        assert!(matches!(PlivoAdapter.build_send(&bad_id, &m), Err(SendError::Credentials(_))));
    }

    #[test]
    fn responses() {
        // plivo-python tests/resources/fixtures/messageSendResponse.json
        let ok = r#"{"api_id": "948b53a2-3f08-11e7-b6f4-061564b78b75", "message": "message(s) queued", "message_uuid": ["5b40a428-bfc7-4daf-9d06-726c558bf3b8"]}"#;
        let a = PlivoAdapter.parse_send_response(&resp(202, ok)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), "5b40a428-bfc7-4daf-9d06-726c558bf3b8");
        assert_eq!((a.status, a.segments), (DeliveryStatus::Sent, None));
        for body in ["", r#"{"api_id":"x","message_uuid":[]}"#, r#"{"message_uuid":"not-a-list"}"#] {
            assert_eq!(
                PlivoAdapter.parse_send_response(&resp(202, body)).unwrap_err().code(),
                Some("malformed_response"),
                "{body}"
            );
        }
        let limited = ProviderResponse {
            status: 429,
            headers: vec![("Retry-After".into(), "2".into())],
            body: br#"{"api_id": "c1", "error": "too many requests"}"#.to_vec(),
        };
        assert_eq!(
            PlivoAdapter.parse_send_response(&limited).unwrap_err(),
            SendError::Transient {
                code: Some("http_429".into()),
                message: "too many requests".into(),
                retry_after_secs: Some(2)
            }
        );
        let table: &[(u16, &str, bool)] = &[
            (400, r#"{"api_id": "a1", "error": "dst is not a valid phone number"}"#, false),
            (400, r#"{"api_id": "a1", "error": {"dst": ["This field is required."]}}"#, false),
            (401, r#"{"api_id": "a1", "error": "Authentication failed"}"#, false),
            (402, r#"{"api_id": "a1", "error": "insufficient credit"}"#, false),
            (404, r#"{"api_id": "a1", "error": "not found"}"#, false),
            (500, r#"{"api_id": "a1", "error": "internal error"}"#, true),
            (503, "", true),
        ];
        for (status, body, transient) in table {
            let e = PlivoAdapter.parse_send_response(&resp(*status, body)).unwrap_err();
            assert_eq!(
                (e.is_transient(), e.code().map(str::to_string)),
                (*transient, Some(format!("http_{status}"))),
                "{body}"
            );
        }
        let e = PlivoAdapter.parse_send_response(&resp(400, table[1].1)).unwrap_err();
        assert!(e.to_string().contains("This field is required."));
    }

    #[test]
    fn status_mapping_table() {
        use DeliveryStatus::*;
        for (word, expected) in [
            ("queued", Some(Queued)),
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Delivered)),
            ("undelivered", Some(Undelivered)),
            ("failed", Some(Failed)),
            ("rejected", Some(Failed)),
            ("received", None),
        ] {
            assert_eq!(canonical_status(word), expected, "{word}");
        }
    }

    fn status_params(status: &str, error: &str) -> Vec<(String, String)> {
        pairs(&[
            ("From", "14155550100"),
            ("MessageUUID", "5b40a428-bfc7-4daf-9d06-726c558bf3b8"),
            ("ParentMessageUUID", "5b40a428-bfc7-4daf-9d06-726c558bf3b8"),
            ("PartInfo", "1 of 1"),
            ("Sequence", "2"),
            ("Status", status),
            ("To", "14155552345"),
            ("TotalAmount", "0.00500"),
            ("TotalRate", "0.00500"),
            ("Type", "sms"),
            ("Units", "1"),
            ("ErrorCode", error),
            ("MCC", "310"),
            ("MNC", "410"),
            ("MessageTime", "2024-07-01 12:00:00.123456"),
            ("DeliveryReportTime", "2024-07-01 12:00:05+00:00"),
        ])
    }

    #[test]
    fn status_callbacks_form_and_get() {
        let r = form_req("https://h/plivo", &status_params("delivered", "000"), &[]);
        let Callback::Status(u) = PlivoAdapter.parse_callback(&r).unwrap() else { panic!() };
        assert_eq!(u[0].provider_message_id.as_str(), "5b40a428-bfc7-4daf-9d06-726c558bf3b8");
        assert_eq!((u[0].status, u[0].error_code.clone()), (DeliveryStatus::Delivered, None));
        assert_eq!(u[0].occurred_at.as_deref(), Some("2024-07-01T12:00:05Z"));

        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in status_params("undelivered", "20") {
            s.append_pair(&k, &v);
        }
        let get = WebhookRequest {
            method: "GET".into(),
            url: format!("https://h/plivo?{}", s.finish()),
            headers: vec![],
            body: vec![],
        };
        let Callback::Status(u) = PlivoAdapter.parse_callback(&get).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Undelivered, Some("20")));
        assert_eq!(u[0].description.as_deref(), Some("network error (temporary)"));

        let wa = {
            let mut p = status_params("read", "");
            p.retain(|(k, _)| k != "Type");
            p.push(("Type".into(), "whatsapp".into()));
            form_req("https://h/plivo", &p, &[])
        };
        assert!(matches!(PlivoAdapter.parse_callback(&wa).unwrap(), Callback::Ignored(_)));
        let odd = form_req("https://h/plivo", &status_params("wobbly", ""), &[]);
        assert!(matches!(PlivoAdapter.parse_callback(&odd).unwrap(), Callback::Ignored(_)));
        let no_id = form_req("https://h/plivo", &pairs(&[("Status", "sent")]), &[]);
        assert!(PlivoAdapter.parse_callback(&no_id).is_err());
    }

    #[test]
    fn inbound_sms_and_mms() {
        let sms = pairs(&[
            ("From", "14155552345"),
            ("To", "14155550100"),
            ("Type", "sms"),
            ("Text", "Is the shelter open?"),
            ("MessageUUID", "2a3b4c5d-0000-4000-8000-000000000001"),
            ("Units", "1"),
            ("TotalRate", "0"),
            ("TotalAmount", "0"),
            ("MessageIntent", ""),
        ]);
        let Callback::Inbound(m) = PlivoAdapter.parse_callback(&form_req("https://h/in", &sms, &[])).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("14155552345", "14155550100", "Is the shelter open?")
        );
        assert!(m.media.is_empty());
        assert!(m.provider_metadata.get("Text").is_none());

        let mms = pairs(&[
            ("From", "14155552345"),
            ("To", "14155550100"),
            ("Type", "mms"),
            ("Body", "photo of the leak"),
            ("MessageUUID", "2a3b4c5d-0000-4000-8000-000000000002"),
            ("MediaCount", "2"),
            ("Media2", "https://media.plivo.com/Account/MA/Media/2"),
            ("Media1", "https://media.plivo.com/Account/MA/Media/1"),
        ]);
        let Callback::Inbound(m) = PlivoAdapter.parse_callback(&form_req("https://h/in", &mms, &[])).unwrap() else {
            panic!()
        };
        assert_eq!(m.text, "photo of the leak");
        let urls: Vec<&str> = m.media.iter().map(|x| x.url.as_str()).collect();
        assert_eq!(urls, ["https://media.plivo.com/Account/MA/Media/1", "https://media.plivo.com/Account/MA/Media/2"]);
        let json = WebhookRequest {
            method: "POST".into(),
            url: "https://h".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        assert!(PlivoAdapter.parse_callback(&json).is_err());
    }

    #[test]
    fn verify_and_replay_key() {
        let url = "https://hooks.example.org/v1/webhooks/plivo?tenant=psap-north";
        let p = status_params("delivered", "000");
        let nonce = "31627761595286130198";
        let sig = sign_v3(TOKEN, "POST", url, &p, nonce);
        let ok = form_req(url, &p, &[(SIGNATURE_HEADER, &sig), (NONCE_HEADER, nonce)]);
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &ok, 0), Ok(()));
        assert_eq!(PlivoAdapter.replay_key(&ok).as_deref(), Some("nonce:31627761595286130198"));
        // Rotated tokens: several signatures, one matching.
        let rotated = form_req(url, &p, &[(SIGNATURE_HEADER, &format!("AAAA,{sig}")), (NONCE_HEADER, nonce)]);
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &rotated, 0), Ok(()));
        let forged_sig = sign_v3("another-token", "POST", url, &p, nonce);
        let forged = form_req(url, &p, &[(SIGNATURE_HEADER, &forged_sig), (NONCE_HEADER, nonce)]);
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &forged, 0), Err(VerifyError::SignatureMismatch));
        let tampered =
            form_req(url, &status_params("failed", "000"), &[(SIGNATURE_HEADER, &sig), (NONCE_HEADER, nonce)]);
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &tampered, 0), Err(VerifyError::SignatureMismatch));
        let other_nonce = form_req(url, &p, &[(SIGNATURE_HEADER, &sig), (NONCE_HEADER, "1")]);
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &other_nonce, 0), Err(VerifyError::SignatureMismatch));
        let twilio = Credentials::Twilio(credentials::TwilioCredentials {
            account_sid: "AC1".into(),
            auth_token: Secret::new(TOKEN),
            messaging_service_sid: None,
            api_base_url: None,
        });
        assert!(matches!(PlivoAdapter.verify_callback(&twilio, &ok, 0), Err(VerifyError::SecretUnusable(_))));
        assert_eq!(PlivoAdapter.replay_key(&form_req(url, &p, &[])), None);
    }

    // Vector `plivo-v3-pass1` (plivo-go utils_test.go).
    #[test]
    fn verify_reference_vector() {
        let p = pairs(&[
            ("Direction", "outbound"),
            ("From", "19792014278"),
            ("ALegUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
            ("CallStatus", "in-progress"),
            ("BillRate", "0.002"),
            ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
            ("To", "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"),
            ("ALegRequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
            ("CallUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
            ("RequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
            ("SIP-H-To", "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1"),
            ("SessionStart", "2020-04-08 11:34:33.238707"),
            ("Event", "StartApp"),
        ]);
        let r = form_req(
            "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d",
            &p,
            &[
                (SIGNATURE_HEADER, "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
                (NONCE_HEADER, "31627761595286130198"),
            ],
        );
        assert_eq!(PlivoAdapter.verify_callback(&creds(), &r, 0), Ok(()));
    }

    #[test]
    fn capabilities() {
        let c = PlivoAdapter.capabilities();
        assert!(c.sms && c.mms && c.inbound && c.status_callbacks);
        assert_eq!((c.max_media, c.max_media_bytes), (10, 5 * 1024 * 1024));
        assert_eq!(PlivoAdapter.kind(), ProviderKind::Plivo);
    }
}
