//! The sandbox provider: a real HTTP server (`dispatch-local`'s `sandbox` module) that
//! speaks a small provider-shaped protocol, documented in `docs/sandbox.md`.
//!
//! * Send: `POST {api_base_url}/v1/messages`, `Authorization: Bearer <api_key>`, JSON
//!   body `{"to","from","body","media_urls","callback_url","client_ref","validity_secs"?}`
//!   answered by `202 {"id":"sbx_...","status":"accepted","segments":N}` or an error
//!   body `{"error":{"code","message"}}`.
//! * Callbacks: JSON `message.status` / `message.inbound` events signed with
//!   `Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

use super::*;
use crate::signatures::{self, DEFAULT_TOLERANCE};
use serde_json::{json, Map, Value};

/// Header the sandbox signs callbacks in.
pub use crate::signatures::sandbox::SIGNATURE_HEADER;

/// Most media items the sandbox takes in one message.
pub const MAX_MEDIA: u32 = 10;

/// Longest provider error message we carry into our own errors.
const MAX_ERROR_MESSAGE: usize = 200;

pub struct SandboxAdapter;

fn sandbox_creds(creds: &Credentials) -> Option<&credentials::SandboxCredentials> {
    match creds {
        Credentials::Sandbox(c) => Some(c),
        _ => None,
    }
}

/// `{"error":{"code","message"}}`, leniently: whatever parts are there.
fn error_parts(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let err = v.get("error");
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str).map(str::to_string);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(|m| m.chars().take(MAX_ERROR_MESSAGE).collect::<String>());
    (code, message)
}

fn str_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, CallbackParseError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CallbackParseError(format!("`{name}` is not a string"))),
    }
}

fn required_str(obj: &Map<String, Value>, name: &str) -> Result<String, CallbackParseError> {
    str_field(obj, name)?.ok_or_else(|| CallbackParseError(format!("`{name}` is missing")))
}

/// The sandbox's status words, mapped to canonical states. `None`: not a status we know.
fn canonical_status(word: &str) -> Option<DeliveryStatus> {
    match word {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "undelivered" => Some(DeliveryStatus::Undelivered),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// Human text for the sandbox's error codes, for the history.
fn describe_error(code: &str) -> Option<&'static str> {
    match code {
        "absent_subscriber" => Some("handset unreachable (absent subscriber)"),
        "carrier_rejected" => Some("the carrier rejected the message"),
        _ => None,
    }
}

impl SandboxAdapter {
    fn parse_status(obj: &Map<String, Value>) -> Result<Callback, CallbackParseError> {
        let id = required_str(obj, "id")?;
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|e| CallbackParseError(format!("`id`: {e}")))?;
        let word = required_str(obj, "status")?;
        let Some(status) = canonical_status(&word) else {
            // Pre-send words the sandbox may grow; they never move our state.
            if matches!(word.as_str(), "accepted" | "queued") {
                return Ok(Callback::Ignored(format!("sandbox status `{word}` carries no delivery state")));
            }
            return Err(CallbackParseError("unknown `status`".into()));
        };
        let error_code = str_field(obj, "error_code")?;
        let description = error_code.as_deref().and_then(describe_error).map(str::to_string);
        Ok(Callback::Status(vec![StatusUpdate {
            provider_message_id,
            status,
            provider_status: word,
            error_code,
            description,
            client_ref: str_field(obj, "client_ref")?,
            part: None,
            occurred_at: str_field(obj, "occurred_at")?,
        }]))
    }

    fn parse_inbound(obj: &Map<String, Value>) -> Result<Callback, CallbackParseError> {
        let media = match obj.get("media") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let item = item.as_object().ok_or_else(|| CallbackParseError("`media` item is not an object".into()))?;
                    Ok(InboundMedia { url: required_str(item, "url")?, content_type: str_field(item, "content_type")? })
                })
                .collect::<Result<Vec<_>, CallbackParseError>>()?,
            Some(_) => return Err(CallbackParseError("`media` is not an array".into())),
        };
        Ok(Callback::Inbound(InboundMessage {
            provider_message_id: required_str(obj, "id")?,
            from: required_str(obj, "from")?,
            to: required_str(obj, "to")?,
            text: str_field(obj, "text")?.unwrap_or_default(),
            media,
            received_at: str_field(obj, "received_at")?,
            provider_metadata: Value::Object(obj.clone()),
        }))
    }
}

impl ProviderAdapter for SandboxAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sandbox
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            mms: true,
            max_media: MAX_MEDIA,
            max_media_bytes: 5 * 1024 * 1024,
            media_types: &["image/jpeg", "image/png", "image/gif", "image/webp"],
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "HMAC-SHA256 over <t>.<body>, header Sandbox-Signature",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let c = sandbox_creds(creds).ok_or_else(|| SendError::Credentials("not sandbox credentials".into()))?;
        let api_key = c.api_key.expose();
        if api_key.is_empty() || api_key.chars().any(|ch| ch.is_control() || ch == ' ') {
            return Err(SendError::Credentials("sandbox api_key is empty or not a token".into()));
        }
        let base = c.api_base_url.trim_end_matches('/');
        match url::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return Err(SendError::Credentials("sandbox api_base_url is not an http(s) URL".into())),
        }
        if msg.media_urls.len() > MAX_MEDIA as usize {
            return Err(SendError::Unsupported(format!(
                "{} media items; the sandbox takes at most {MAX_MEDIA}",
                msg.media_urls.len()
            )));
        }
        let mut body = json!({
            "to": msg.to.as_str(),
            "from": msg.from.as_str(),
            "body": msg.body,
            "media_urls": msg.media_urls,
            "callback_url": msg.status_callback_url,
            "client_ref": msg.id.to_string(),
        });
        if let Some(v) = msg.validity_secs {
            body["validity_secs"] = json!(v);
        }
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/v1/messages"),
            headers: vec![
                ("Authorization".into(), format!("Bearer {api_key}")),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&body).expect("a JSON value always serializes"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let status = resp.status;
        if (200..300).contains(&status) {
            // A 2xx we cannot read may or may not have been taken: transient, and the
            // claim-before-send rule plus `client_ref` make a retry safe.
            let malformed = |what: &str| SendError::Transient {
                code: Some("malformed_response".into()),
                message: format!("sandbox answered {status} but {what}"),
                retry_after_secs: None,
            };
            let v: Value = serde_json::from_slice(&resp.body).map_err(|_| malformed("the body is not JSON"))?;
            let id = v.get("id").and_then(Value::as_str).ok_or_else(|| malformed("without an `id`"))?;
            let provider_message_id = ProviderMessageId::parse(id).map_err(|_| malformed("with an unusable `id`"))?;
            let provider_status = v.get("status").and_then(Value::as_str).unwrap_or("accepted").to_string();
            let segments = v.get("segments").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
            return Ok(SendAccepted {
                provider_message_id,
                status: DeliveryStatus::Sent,
                provider_status: Some(provider_status),
                segments,
            });
        }
        let (code, message) = error_parts(&resp.body);
        let code = code.or_else(|| Some(format!("http_{status}")));
        let message = message.unwrap_or_else(|| format!("sandbox answered HTTP {status}"));
        if status == 408 || status == 429 || status >= 500 {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            // 4xx: unauthorized, invalid_request, invalid_destination. Also 1xx/3xx,
            // which the sandbox never sends: retrying would not change them.
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError> {
        let c = sandbox_creds(creds).ok_or(VerifyError::SecretUnusable("not sandbox credentials"))?;
        let secret = c.webhook_secret.expose();
        if secret.is_empty() {
            return Err(VerifyError::SecretUnusable("sandbox webhook_secret is empty"));
        }
        signatures::sandbox::verify(secret, req, now_unix, DEFAULT_TOLERANCE)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let v: Value =
            serde_json::from_slice(&req.body).map_err(|_| CallbackParseError("body is not JSON".into()))?;
        let obj = v.as_object().ok_or_else(|| CallbackParseError("body is not a JSON object".into()))?;
        let kind = required_str(obj, "type")?;
        match kind.as_str() {
            "message.status" => Self::parse_status(obj),
            "message.inbound" => Self::parse_inbound(obj),
            other => Ok(Callback::Ignored(format!("sandbox event type `{}`", other.chars().take(64).collect::<String>()))),
        }
    }

    /// The signed timestamp and a hash of the body: together they determine the valid
    /// signature, so they are unique per delivery. The header text is not: whitespace,
    /// hex case and extra `v1` entries all verify alike, so keying on it would let a
    /// replay through with a padded header.
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        let header = req.single_header(SIGNATURE_HEADER).ok()?;
        let t = signatures::sandbox::header_timestamp(header).ok()?;
        Some(format!("t={t},sha256={}", signatures::sha256_hex(&req.body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_domain::{MessageId, MessageKind, SenderId, E164};
    use crate::providers::credentials::{SandboxCredentials, Secret};
    use crate::signatures::sandbox::signature_header;

    const NOW: i64 = 1_790_000_000;
    const SECRET: &str = "whsec_sandbox_test";

    fn creds() -> Credentials {
        Credentials::Sandbox(SandboxCredentials {
            api_key: Secret::new("sk_sandbox_123"),
            webhook_secret: Secret::new(SECRET),
            api_base_url: "http://127.0.0.1:9999/".into(),
        })
    }

    fn message(media: Vec<String>, validity: Option<u32>) -> OutboundMessage {
        OutboundMessage {
            id: MessageId::new(),
            kind: if media.is_empty() { MessageKind::Sms } else { MessageKind::Mms },
            to: E164::parse("+447400123456", None).unwrap(),
            from: SenderId::Alphanumeric("CityAlerts".into()),
            body: "Road closed: use Elm St ✓".into(),
            media_urls: media,
            status_callback_url: "https://hooks.example.org/webhooks/sandbox?tenant=psap-north".into(),
            validity_secs: validity,
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderResponse {
        ProviderResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn signed(body: &str, t: i64, secret: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            url: "https://hooks.example.org/webhooks/sandbox".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("sandbox-signature".into(), signature_header(&[secret.as_bytes()], t, body.as_bytes())),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    fn unsigned(body: &str) -> WebhookRequest {
        WebhookRequest { method: "POST".into(), url: "https://x/".into(), headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn kind_and_capabilities() {
        let a = SandboxAdapter;
        assert_eq!(a.kind(), ProviderKind::Sandbox);
        let c = a.capabilities();
        assert!(c.sms && c.mms && c.alphanumeric_sender && c.status_callbacks && c.inbound);
        assert_eq!(c.max_media, 10);
        assert_eq!(c.max_media_bytes, 5 * 1024 * 1024);
        assert!(c.media_types.contains(&"image/png") && c.media_types.contains(&"image/jpeg"));
        assert!(c.signature_scheme.contains("Sandbox-Signature"));
    }

    #[test]
    fn builds_the_documented_send_request() {
        let msg = message(vec!["https://media.example.org/a.png".into(), "https://media.example.org/b.jpg".into()], Some(3600));
        let req = SandboxAdapter.build_send(&creds(), &msg).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "http://127.0.0.1:9999/v1/messages", "trailing slash of the base is not doubled");
        let header = |name: &str| req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        assert_eq!(header("authorization"), Some("Bearer sk_sandbox_123"));
        assert_eq!(header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "to": "+447400123456",
                "from": "CityAlerts",
                "body": "Road closed: use Elm St ✓",
                "media_urls": ["https://media.example.org/a.png", "https://media.example.org/b.jpg"],
                "callback_url": "https://hooks.example.org/webhooks/sandbox?tenant=psap-north",
                "client_ref": msg.id.to_string(),
                "validity_secs": 3600,
            })
        );
        // Debug never shows the key or the text.
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("sk_sandbox_123") && !dbg.contains("Elm St"), "{dbg}");
    }

    #[test]
    fn sms_without_validity_has_empty_media_and_no_validity() {
        let req = SandboxAdapter.build_send(&creds(), &message(vec![], None)).unwrap();
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["media_urls"], json!([]));
        assert!(body.get("validity_secs").is_none());
    }

    #[test]
    fn build_send_fails_closed_on_wrong_or_broken_credentials() {
        let msg = message(vec![], None);
        let other = Credentials::Plivo(crate::providers::credentials::PlivoCredentials {
            auth_id: "MA123".into(),
            auth_token: Secret::new("t"),
            api_base_url: None,
        });
        assert!(matches!(SandboxAdapter.build_send(&other, &msg), Err(SendError::Credentials(_))));
        for (key, base) in [("", "http://127.0.0.1:1"), ("k", "not a url"), ("k", "ftp://host/"), ("bad key", "http://h")] {
            let c = Credentials::Sandbox(SandboxCredentials {
                api_key: Secret::new(key),
                webhook_secret: Secret::new("s"),
                api_base_url: base.into(),
            });
            assert!(matches!(SandboxAdapter.build_send(&c, &msg), Err(SendError::Credentials(_))), "{key:?} {base:?}");
        }
        let too_many = message((0..11).map(|i| format!("https://m.example/{i}.png")).collect(), None);
        assert!(matches!(SandboxAdapter.build_send(&creds(), &too_many), Err(SendError::Unsupported(_))));
    }

    #[test]
    fn accepted_response() {
        let ok = SandboxAdapter
            .parse_send_response(&resp(202, &[], r#"{"id":"sbx_01JB8Z6Y9Q0000000000000000","status":"accepted","segments":2}"#))
            .unwrap();
        assert_eq!(ok.provider_message_id.as_str(), "sbx_01JB8Z6Y9Q0000000000000000");
        assert_eq!(ok.status, DeliveryStatus::Sent);
        assert_eq!(ok.provider_status.as_deref(), Some("accepted"));
        assert_eq!(ok.segments, Some(2));
    }

    #[test]
    fn unreadable_success_is_transient() {
        for body in ["", "{}", r#"{"id":""}"#, r#"{"id":"has space"}"#, "<html>"] {
            let e = SandboxAdapter.parse_send_response(&resp(202, &[], body)).unwrap_err();
            assert!(e.is_transient(), "{body}: {e}");
            assert_eq!(e.code(), Some("malformed_response"));
        }
    }

    #[test]
    fn classifies_errors() {
        let err = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"nope"}}}}"#);
        let e = SandboxAdapter.parse_send_response(&resp(429, &[("Retry-After", "1")], &err("rate_limited"))).unwrap_err();
        assert_eq!(e, SendError::Transient { code: Some("rate_limited".into()), message: "nope".into(), retry_after_secs: Some(1) });
        let e = SandboxAdapter.parse_send_response(&resp(503, &[], &err("unavailable"))).unwrap_err();
        assert_eq!(e, SendError::Transient { code: Some("unavailable".into()), message: "nope".into(), retry_after_secs: None });
        // A bare 502 from a proxy: transient, code from the HTTP status.
        let e = SandboxAdapter.parse_send_response(&resp(502, &[], "Bad Gateway")).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.code(), Some("http_502"));
        for (status, code) in [(400, "invalid_destination"), (400, "invalid_request"), (401, "unauthorized")] {
            let e = SandboxAdapter.parse_send_response(&resp(status, &[], &err(code))).unwrap_err();
            assert_eq!(e, SendError::Permanent { code: Some(code.into()), message: "nope".into() }, "{status} {code}");
        }
        let e = SandboxAdapter.parse_send_response(&resp(404, &[], "")).unwrap_err();
        assert_eq!(e.code(), Some("http_404"));
        assert!(!e.is_transient());
    }

    #[test]
    fn parses_status_callbacks() {
        let body = r#"{"type":"message.status","id":"sbx_X","client_ref":"01JB8Z6Y9Q0000000000000000","status":"undelivered","error_code":"absent_subscriber","occurred_at":"2026-11-26T01:02:03.456Z"}"#;
        let Callback::Status(updates) = SandboxAdapter.parse_callback(&unsigned(body)).unwrap() else { panic!() };
        assert_eq!(
            updates,
            vec![StatusUpdate {
                provider_message_id: ProviderMessageId::parse("sbx_X").unwrap(),
                status: DeliveryStatus::Undelivered,
                provider_status: "undelivered".into(),
                error_code: Some("absent_subscriber".into()),
                description: Some("handset unreachable (absent subscriber)".into()),
                client_ref: Some("01JB8Z6Y9Q0000000000000000".into()),
                part: None,
                occurred_at: Some("2026-11-26T01:02:03.456Z".into()),
            }]
        );
        for (word, expected) in [
            ("sent", DeliveryStatus::Sent),
            ("delivered", DeliveryStatus::Delivered),
            ("undelivered", DeliveryStatus::Undelivered),
            ("failed", DeliveryStatus::Failed),
        ] {
            let body = format!(r#"{{"type":"message.status","id":"sbx_Y","status":"{word}","error_code":null}}"#);
            let Callback::Status(u) = SandboxAdapter.parse_callback(&unsigned(&body)).unwrap() else { panic!() };
            assert_eq!(u[0].status, expected);
            assert_eq!(u[0].error_code, None);
            assert_eq!(u[0].client_ref, None);
        }
    }

    #[test]
    fn parses_inbound_callbacks() {
        let body = r#"{"type":"message.inbound","id":"sbx_in_1","from":"+120155501555","to":"+120155501999","text":"help","media":[{"url":"http://127.0.0.1:1/sandbox/media/a.png","content_type":"image/png"},{"url":"http://x/b"}],"received_at":"2026-11-26T01:02:03.456Z"}"#;
        let Callback::Inbound(m) = SandboxAdapter.parse_callback(&unsigned(body)).unwrap() else { panic!() };
        assert_eq!(m.provider_message_id, "sbx_in_1");
        assert_eq!((m.from.as_str(), m.to.as_str(), m.text.as_str()), ("+120155501555", "+120155501999", "help"));
        assert_eq!(
            m.media,
            vec![
                InboundMedia { url: "http://127.0.0.1:1/sandbox/media/a.png".into(), content_type: Some("image/png".into()) },
                InboundMedia { url: "http://x/b".into(), content_type: None },
            ]
        );
        assert_eq!(m.received_at.as_deref(), Some("2026-11-26T01:02:03.456Z"));
        assert_eq!(m.provider_metadata["type"], "message.inbound");
    }

    #[test]
    fn other_events_are_ignored_and_garbage_is_refused() {
        assert!(matches!(SandboxAdapter.parse_callback(&unsigned(r#"{"type":"account.updated"}"#)), Ok(Callback::Ignored(_))));
        assert!(matches!(
            SandboxAdapter.parse_callback(&unsigned(r#"{"type":"message.status","id":"sbx_1","status":"accepted"}"#)),
            Ok(Callback::Ignored(_))
        ));
        for body in [
            "not json",
            "[]",
            r#"{"id":"sbx_1"}"#,
            r#"{"type":"message.status","status":"sent"}"#,
            r#"{"type":"message.status","id":"sbx_1","status":"teleported"}"#,
            r#"{"type":"message.status","id":"sbx_1","status":5}"#,
            r#"{"type":"message.inbound","id":"sbx_in_1","from":"+1"}"#,
            r#"{"type":"message.inbound","id":"i","from":"+1","to":"+2","media":{"url":"x"}}"#,
        ] {
            assert!(SandboxAdapter.parse_callback(&unsigned(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn verifies_genuine_callbacks() {
        let body = r#"{"type":"message.status","id":"sbx_1","status":"sent"}"#;
        let req = signed(body, NOW - 10, SECRET);
        assert_eq!(SandboxAdapter.verify_callback(&creds(), &req, NOW), Ok(()));
    }

    #[test]
    fn refuses_forged_tampered_stale_and_unsigned_callbacks() {
        let body = r#"{"type":"message.status","id":"sbx_1","status":"delivered"}"#;
        let a = SandboxAdapter;
        // Signed with another secret.
        assert!(a.verify_callback(&creds(), &signed(body, NOW, "attacker"), NOW).is_err());
        // Body changed after signing.
        let mut tampered = signed(body, NOW, SECRET);
        tampered.body = body.replace("delivered", "failed").into_bytes();
        assert!(a.verify_callback(&creds(), &tampered, NOW).is_err());
        // Outside the tolerance, either way.
        assert!(matches!(
            a.verify_callback(&creds(), &signed(body, NOW - 301, SECRET), NOW),
            Err(VerifyError::TimestampOutOfTolerance(_))
        ));
        assert!(a.verify_callback(&creds(), &signed(body, NOW + 301, SECRET), NOW).is_err());
        // No header, a duplicated header, a malformed header.
        assert!(a.verify_callback(&creds(), &unsigned(body), NOW).is_err());
        let mut dup = signed(body, NOW, SECRET);
        dup.headers.push(dup.headers[1].clone());
        assert!(a.verify_callback(&creds(), &dup, NOW).is_err());
        let mut garbled = signed(body, NOW, SECRET);
        garbled.headers[1].1 = "v1=abc".into();
        assert!(a.verify_callback(&creds(), &garbled, NOW).is_err());
        // Wrong provider's credentials or an empty secret: fail closed.
        let other = Credentials::Plivo(crate::providers::credentials::PlivoCredentials {
            auth_id: "MA123".into(),
            auth_token: Secret::new(SECRET),
            api_base_url: None,
        });
        assert!(matches!(a.verify_callback(&other, &signed(body, NOW, SECRET), NOW), Err(VerifyError::SecretUnusable(_))));
        let empty = Credentials::Sandbox(SandboxCredentials {
            api_key: Secret::new("k"),
            webhook_secret: Secret::new(""),
            api_base_url: "http://h".into(),
        });
        assert!(matches!(a.verify_callback(&empty, &signed(body, NOW, ""), NOW), Err(VerifyError::SecretUnusable(_))));
    }

    #[test]
    fn accepts_any_of_several_signatures_during_rotation() {
        let body = r#"{"type":"message.status","id":"sbx_1","status":"sent"}"#;
        let header = signature_header(&[b"old-secret", SECRET.as_bytes()], NOW, body.as_bytes());
        let req = WebhookRequest {
            method: "POST".into(),
            url: "https://x/".into(),
            headers: vec![("Sandbox-Signature".into(), header)],
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(SandboxAdapter.verify_callback(&creds(), &req, NOW), Ok(()));
    }

    /// The worked example in `docs/sandbox.md` verifies and parses as documented.
    #[test]
    fn documented_example_verifies() {
        let body = r#"{"type":"message.status","id":"sbx_01JB8Z6Y9Q7H2D4F6G8J0K1M3N","client_ref":"01JB8Z6Y9Q4X1N3V5T7R9P2M4K","status":"undelivered","error_code":"absent_subscriber","occurred_at":"2026-11-26T01:02:03.456Z"}"#;
        let req = WebhookRequest {
            method: "POST".into(),
            url: "https://hooks.example.org/webhooks/sandbox?tenant=psap-north".into(),
            headers: vec![(
                "Sandbox-Signature".into(),
                "t=1790000000,v1=4daefc9233e01ecf17b41eb593a30c7c82edf15b534a724451b2d50d27a0b090".into(),
            )],
            body: body.as_bytes().to_vec(),
        };
        let c = Credentials::Sandbox(SandboxCredentials {
            api_key: Secret::new("k"),
            webhook_secret: Secret::new("whsec_example"),
            api_base_url: "http://h".into(),
        });
        assert_eq!(SandboxAdapter.verify_callback(&c, &req, 1_790_000_100), Ok(()));
        let Callback::Status(u) = SandboxAdapter.parse_callback(&req).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Undelivered, Some("absent_subscriber")));
    }

    #[test]
    fn replay_key_is_the_signed_timestamp_and_body() {
        let body = r#"{"type":"message.status","id":"sbx_1","status":"sent"}"#;
        let req = signed(body, NOW, SECRET);
        let key = SandboxAdapter.replay_key(&req).unwrap();
        assert!(key.starts_with(&format!("t={NOW},sha256=")), "{key}");
        assert_ne!(Some(key.clone()), SandboxAdapter.replay_key(&signed(body, NOW + 1, SECRET)));
        let other = r#"{"type":"message.status","id":"sbx_2","status":"sent"}"#;
        assert_ne!(Some(key), SandboxAdapter.replay_key(&signed(other, NOW, SECRET)));
        assert_eq!(SandboxAdapter.replay_key(&unsigned(body)), None);
    }

    // Found by the callback fuzzer: a trailing space on the header still verifies, and
    // the replay key used to be the header text, so the padded copy was a new delivery.
    #[test]
    fn padded_or_reworded_signature_header_is_the_same_delivery() {
        let body = r#"{"type":"message.status","id":"sbx_1","status":"sent"}"#;
        let req = signed(body, NOW, SECRET);
        let key = SandboxAdapter.replay_key(&req);
        let c = Credentials::Sandbox(SandboxCredentials {
            api_key: Secret::new("k"),
            webhook_secret: Secret::new(SECRET),
            api_base_url: "http://h".into(),
        });
        let header = req.headers[1].1.clone();
        let v1 = header.split_once(",v1=").unwrap().1.to_owned();
        for variant in [
            format!("{header} "),
            format!(" {header}"),
            format!("t={NOW}, v1={}", v1.to_ascii_uppercase()),
            format!("t={NOW},v1={v1},v1=00,x=y"),
        ] {
            let mut r = req.clone();
            r.headers[1].1 = variant.clone();
            assert_eq!(SandboxAdapter.verify_callback(&c, &r, NOW), Ok(()), "{variant}");
            assert_eq!(SandboxAdapter.replay_key(&r), key, "{variant}");
        }
    }
}
