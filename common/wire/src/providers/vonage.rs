//! Vonage, two products behind two adapters (from Vonage's API references):
//!
//! * [`VonageSmsAdapter`]: the SMS API. `POST {base}/sms/json`, form-encoded, key and
//!   secret as parameters; HTTP 200 even on failure, with one `messages[]` item per
//!   concatenated part and a per-part `status` ("0" = ok). Delivery receipts and
//!   inbound SMS arrive as JSON POST, form POST or GET query, signed with `sig`
//!   (Nexmo/api-specification `definitions/sms.yml`; vonage-python-sdk
//!   `sms/tests/data/*.json`).
//! * [`VonageMessagesAdapter`]: the Messages API v1. `POST {base}/v1/messages`, JSON,
//!   HTTP Basic `api_key:api_secret`; `202 {"message_uuid"}`; RFC 7807 errors; status
//!   and inbound webhooks as JSON signed with an HS256 JWT (vonage-python-sdk
//!   `messages/tests`, vonage-java-sdk `MessageStatus.java`).

use super::*;
use dispatch_domain::MessageKind;
use dispatch_domain::encoding::{self, Encoding};
use crate::signatures::{self, DEFAULT_TOLERANCE};
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// SMS API host.
pub const DEFAULT_SMS_BASE_URL: &str = "https://rest.nexmo.com";
/// Messages API host.
pub const DEFAULT_MESSAGES_BASE_URL: &str = "https://api.nexmo.com";

/// SMS API `ttl` bounds in milliseconds (sms.yml: minimum 20000, maximum 604800000).
pub const SMS_TTL_MS: (u64, u64) = (20_000, 604_800_000);
/// Messages API MMS `ttl` bounds in seconds (vonage-python-sdk `test_mms_models.py`:
/// "greater than or equal to 300", "less than or equal to 259200").
pub const MMS_TTL_SECS: (u32, u32) = (300, 259_200);
/// Messages API SMS `text` limit (vonage-python-sdk `models/sms.py`, `max_length=1000`).
pub const MESSAGES_SMS_MAX_TEXT: usize = 1000;
/// Messages API MMS image caption limit (`test_mms_models.py`: at most 3000 characters).
pub const MMS_MAX_CAPTION: usize = 3000;

/// Longest provider error text carried into our own errors.
const MAX_ERROR_MESSAGE: usize = 200;

pub struct VonageSmsAdapter;
pub struct VonageMessagesAdapter;

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_MESSAGE).collect()
}

fn base_url(configured: Option<&str>, default: &str) -> Result<String, SendError> {
    let base = configured.unwrap_or(default).trim_end_matches('/');
    match url::Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none() => Ok(base.to_string()),
        _ => Err(SendError::Credentials("vonage api_base_url is not an http(s) URL".into())),
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Vonage wants E.164 numbers as digits without `+`; short codes and alphanumeric ids
/// go as they are.
fn sender(from: &dispatch_domain::SenderId) -> &str {
    match from {
        dispatch_domain::SenderId::LongCode(n) => n.digits(),
        other => other.as_str(),
    }
}

fn malformed_success(status: u16, what: &str) -> SendError {
    // A 2xx we cannot read may or may not have been taken: transient so the message
    // is not lost; `client-ref`/`client_ref` carry our id for reconciliation.
    SendError::Transient {
        code: Some("malformed_response".into()),
        message: format!("vonage answered {status} but {what}"),
        retry_after_secs: None,
    }
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `(code, message)` from the error bodies Vonage APIs use: RFC 7807
/// `{type,title,detail,instance}` (code = the `#fragment` of `type`, e.g. `1150` or
/// `low-balance`), the gateway's `{"Error": "..."}`, or an SMS-API style
/// `{"messages":[{"status","error-text"}]}`.
fn error_parts(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let code = text("type")
        .and_then(|t| t.rsplit_once('#').map(|(_, frag)| frag.to_string()))
        .filter(|c| !c.is_empty())
        .or_else(|| v.get("title").filter(|t| t.is_number()).and_then(string_of));
    let message = text("detail").or_else(|| text("title")).or_else(|| text("Error")).or_else(|| text("error-text"));
    if code.is_some() || message.is_some() {
        return (code, message.map(truncate));
    }
    if let Some(first) = v.get("messages").and_then(Value::as_array).and_then(|m| m.first()) {
        let code = first.get("status").and_then(string_of);
        let message = first.get("error-text").and_then(Value::as_str).map(truncate);
        return (code, message);
    }
    (None, None)
}

fn http_error(provider: &str, resp: &ProviderResponse, transient_code: fn(&str) -> bool) -> SendError {
    let status = resp.status;
    let (code, message) = error_parts(&resp.body);
    let message = message.unwrap_or_else(|| format!("{provider} answered HTTP {status}"));
    let transient = status == 408 || status == 429 || status >= 500 || code.as_deref().is_some_and(transient_code);
    let code = code.or_else(|| Some(format!("http_{status}")));
    if transient {
        SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) }
    } else {
        SendError::Permanent { code, message }
    }
}

/// `2020-01-01 12:00:00` (Vonage, UTC) → `2020-01-01T12:00:00Z`; ISO strings pass.
fn iso_timestamp(s: &str) -> Option<String> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|dt| dt.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

// =====================================================================================
// SMS API

/// SMS API submit `status` codes documented as temporary (sms.yml `x-errors`):
/// 1 Throttled, 5 Internal Error, 10 Too Many Existing Binds. Every other non-zero code
/// (missing/invalid params, credentials, barred, quota, too long, signature, sender,
/// callback URL, whitelist, deactivated, and codes we do not know) is permanent.
pub fn sms_status_is_transient(code: &str) -> bool {
    matches!(code, "1" | "5" | "10")
}

/// Delivery-receipt `status` → canonical state (providers.md §2a mapping).
pub fn sms_dlr_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "accepted" | "buffered" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "expired" => DeliveryStatus::Expired,
        "failed" => DeliveryStatus::Undelivered,
        "rejected" => DeliveryStatus::Failed,
        // The carrier could not say; treated as not delivered (and flagged by the word).
        "unknown" => DeliveryStatus::Undelivered,
        _ => return None,
    })
}

/// Text for a DLR `err-code` (https://api.support.vonage.com/hc/en-us/articles/204014733).
pub fn sms_dlr_error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "1" => "unknown",
        "2" => "absent subscriber (temporary)",
        "3" => "absent subscriber (permanent)",
        "4" => "call barred by user",
        "5" => "portability error",
        "6" => "anti-spam rejection",
        "7" => "handset busy",
        "8" => "network error",
        "9" => "illegal number",
        "10" => "illegal message",
        "11" => "unroutable",
        "12" => "destination unreachable",
        "13" => "subscriber age restriction",
        "14" => "number blocked by carrier",
        "15" => "prepaid insufficient funds",
        "99" => "general error",
        _ => return None,
    })
}

fn sms_creds(creds: &Credentials) -> Option<&credentials::VonageSmsCredentials> {
    match creds {
        Credentials::VonageSms(c) => Some(c),
        _ => None,
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

impl VonageSmsAdapter {
    fn parse_dlr(params: &[(String, String)]) -> Result<Callback, CallbackParseError> {
        let id = param(params, "messageId").ok_or_else(|| CallbackParseError("`messageId` is missing".into()))?;
        let word = param(params, "status").unwrap_or_default();
        let Some(status) = sms_dlr_status(word) else {
            return Ok(Callback::Ignored(format!(
                "Vonage SMS receipt status `{}`",
                word.chars().take(32).collect::<String>()
            )));
        };
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|e| CallbackParseError(format!("`messageId`: {e}")))?;
        // `err-code` 0 means "no error" (delivered): not worth an error code.
        let error_code =
            param(params, "err-code").filter(|c| !c.trim_start_matches('0').is_empty()).map(str::to_string);
        let description = error_code.as_deref().and_then(sms_dlr_error_text).map(str::to_string);
        // A receipt arrives per concatenated part, each with that part's `messageId`
        // and the shared `client-ref`. The documented receipt carries no part index;
        // if Vonage adds the inbound-style concat fields we use them.
        let part = match (param(params, "concat-part"), param(params, "concat-total")) {
            (Some(p), Some(t)) => p.parse().ok().zip(t.parse().ok()),
            _ => None,
        };
        Ok(Callback::Status(vec![StatusUpdate {
            provider_message_id,
            status,
            provider_status: word.to_string(),
            error_code,
            description,
            client_ref: param(params, "client-ref").map(str::to_string),
            part,
            occurred_at: param(params, "message-timestamp").and_then(iso_timestamp),
        }]))
    }

    fn parse_inbound(params: &[(String, String)]) -> Result<Callback, CallbackParseError> {
        let need = |k: &str| param(params, k).ok_or_else(|| CallbackParseError(format!("`{k}` is missing")));
        let mut meta = Map::new();
        for (k, v) in params {
            // The text is stored once (as `text`); the signature is not evidence.
            if !matches!(k.as_str(), "text" | "sig") {
                meta.insert(k.clone(), Value::String(v.clone()));
            }
        }
        Ok(Callback::Inbound(InboundMessage {
            provider_message_id: need("messageId")?.to_string(),
            from: need("msisdn")?.to_string(),
            to: need("to")?.to_string(),
            text: param(params, "text").unwrap_or_default().to_string(),
            media: Vec::new(),
            received_at: param(params, "message-timestamp").and_then(iso_timestamp),
            provider_metadata: Value::Object(meta),
        }))
    }
}

impl ProviderAdapter for VonageSmsAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::VonageSms
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // The SMS API has no MMS (sms.yml `type`: text, binary, wappush, unicode,
            // vcal, vcard); MMS goes through the Messages API.
            mms: false,
            max_media: 0,
            max_media_bytes: 0,
            media_types: &[],
            // sms.yml `from`: "Alphanumeric senderID's are not supported in all countries".
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "`sig` parameter: md5hash or HMAC-MD5/SHA1/SHA256/SHA512 over sorted params with the \
                               signature secret; signed timestamp within 300 s; nonce",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let c = sms_creds(creds).ok_or_else(|| SendError::Credentials("not Vonage SMS API credentials".into()))?;
        if c.api_key.is_empty() || c.api_secret.expose().is_empty() {
            return Err(SendError::Credentials("vonage api_key or api_secret is empty".into()));
        }
        let base = base_url(c.api_base_url.as_deref(), DEFAULT_SMS_BASE_URL)?;
        if msg.kind == MessageKind::Mms {
            return Err(SendError::Unsupported("the Vonage SMS API carries no MMS".into()));
        }
        let kind = match encoding::analyse(&msg.body).encoding {
            Encoding::Gsm7 => "text",
            Encoding::Ucs2 => "unicode",
        };
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("api_key", &c.api_key)
            .append_pair("api_secret", c.api_secret.expose())
            .append_pair("from", sender(&msg.from))
            .append_pair("to", msg.to.digits())
            .append_pair("text", &msg.body)
            .append_pair("type", kind);
        if !msg.status_callback_url.is_empty() {
            form.append_pair("callback", &msg.status_callback_url);
        }
        form.append_pair("client-ref", &msg.id.to_string());
        if let Some(v) = msg.validity_secs {
            let ms = (u64::from(v) * 1000).clamp(SMS_TTL_MS.0, SMS_TTL_MS.1);
            form.append_pair("ttl", &ms.to_string());
        }
        form.append_pair("status-report-req", "1");
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/sms/json"),
            headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: form.finish().into_bytes(),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let status = resp.status;
        if !(200..300).contains(&status) {
            return Err(http_error("vonage", resp, sms_status_is_transient));
        }
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|_| malformed_success(status, "the body is not JSON"))?;
        let parts = v
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| malformed_success(status, "without `messages`"))?;
        // One item per part; a partial failure fails the send with the first error.
        if let Some(failed) = parts.iter().find(|p| p.get("status").and_then(string_of).as_deref() != Some("0")) {
            let code = failed.get("status").and_then(string_of).unwrap_or_else(|| "missing_status".into());
            let message = failed
                .get("error-text")
                .and_then(Value::as_str)
                .map(truncate)
                .unwrap_or_else(|| format!("vonage refused the message (status {code})"));
            return Err(if sms_status_is_transient(&code) {
                SendError::Transient { code: Some(code), message, retry_after_secs: retry_after_secs(resp) }
            } else {
                SendError::Permanent { code: Some(code), message }
            });
        }
        let id = parts[0]
            .get("message-id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed_success(status, "without a `message-id`"))?;
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|_| malformed_success(status, "with an unusable `message-id`"))?;
        let segments = v
            .get("message-count")
            .and_then(string_of)
            .and_then(|n| n.parse::<u32>().ok())
            .or_else(|| u32::try_from(parts.len()).ok());
        Ok(SendAccepted {
            provider_message_id,
            status: DeliveryStatus::Sent,
            provider_status: Some("0".into()),
            segments,
        })
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError> {
        let c = sms_creds(creds).ok_or(VerifyError::SecretUnusable("not Vonage SMS API credentials"))?;
        let params = signatures::vonage::sms_params(req)?;
        signatures::vonage::verify_sms_sig(
            c.signature_secret.expose(),
            c.signature_method,
            &params,
            now_unix,
            DEFAULT_TOLERANCE,
        )?;
        // The receipt names the account it belongs to; a valid signature for another
        // key (a sub-account sharing the secret) is not ours to apply.
        match param(&params, "api-key") {
            Some(key) if key != c.api_key => Err(VerifyError::BadCredentials),
            _ => Ok(()),
        }
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let params = signatures::vonage::sms_params(req).map_err(|e| CallbackParseError(e.to_string()))?;
        if param(&params, "status").is_some() || param(&params, "err-code").is_some() {
            Self::parse_dlr(&params)
        } else if param(&params, "msisdn").is_some()
            && (param(&params, "type").is_some() || param(&params, "text").is_some())
        {
            Self::parse_inbound(&params)
        } else if params.is_empty() {
            Err(CallbackParseError("no parameters".into()))
        } else {
            Ok(Callback::Ignored("neither a Vonage delivery receipt nor an inbound SMS".into()))
        }
    }

    /// The signed `nonce`; without one, the signed `timestamp` with the `sig` (unique
    /// per signed parameter set).
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        let params = signatures::vonage::sms_params(req).ok()?;
        if let Some(nonce) = param(&params, "nonce") {
            return Some(format!("nonce:{nonce}"));
        }
        let ts = param(&params, "timestamp")?;
        let sig = param(&params, "sig")?;
        // Normalised as `verify_sms_sig` compares it (trimmed, any hex case): a padded
        // `sig` verifies too and must not count as a new delivery.
        Some(format!("sig:{ts}:{}", sig.trim().to_ascii_lowercase()))
    }
}

// =====================================================================================
// Messages API v1

fn messages_creds(creds: &Credentials) -> Option<&credentials::VonageMessagesCredentials> {
    match creds {
        Credentials::VonageMessages(c) => Some(c),
        _ => None,
    }
}

/// Messages API codes documented as temporary: `1000` Throttled (vonage-java-sdk
/// `MessageStatusTest`: "Throttled - You have exceeded the submission capacity").
/// Rate limiting otherwise shows as HTTP 429 ("Rate Limit Hit").
pub fn messages_code_is_transient(code: &str) -> bool {
    matches!(code, "1000")
}

/// Messages status → canonical state (providers.md §2b mapping). `rejected` needs the
/// error object to tell TTL expiry from a refusal; see [`messages_rejected_status`].
pub fn messages_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "submitted" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "rejected" => DeliveryStatus::Failed,
        "undeliverable" => DeliveryStatus::Undelivered,
        _ => return None,
    })
}

/// `rejected` is also how the Messages API reports a TTL that ran out before delivery
/// ("Messages API Status Callbacks": "The message's TTL expires before it is
/// delivered"). The exact error code for that case is not published in what we
/// could read, so the error text decides: it names the TTL or an expiry.
pub fn messages_rejected_status(error: Option<&Map<String, Value>>) -> DeliveryStatus {
    let mentions_expiry = error.is_some_and(|e| {
        ["title", "detail"].iter().filter_map(|k| e.get(*k)).filter_map(Value::as_str).any(|t| {
            let t = t.to_ascii_lowercase();
            // Whole words: "Throttled" must not read as "ttl".
            t.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| matches!(w, "ttl" | "expired" | "expiry"))
                || t.contains("time to live")
                || t.contains("time-to-live")
        })
    });
    if mentions_expiry { DeliveryStatus::Expired } else { DeliveryStatus::Failed }
}

fn obj_str<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// v1 sends `to`/`from` as strings; v0.1 sent `{"type","number"}` objects.
fn number_of(obj: &Map<String, Value>, k: &str) -> Option<String> {
    match obj.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => obj_str(o, "number").map(str::to_string),
        _ => None,
    }
}

impl VonageMessagesAdapter {
    fn parse_status(obj: &Map<String, Value>) -> Result<Callback, CallbackParseError> {
        let id = obj_str(obj, "message_uuid").ok_or_else(|| CallbackParseError("`message_uuid` is missing".into()))?;
        let word = obj_str(obj, "status").unwrap_or_default();
        if let Some(channel) = obj_str(obj, "channel")
            && !matches!(channel, "sms" | "mms")
        {
            return Ok(Callback::Ignored(format!("Vonage {} status", channel.chars().take(32).collect::<String>())));
        }
        let error = obj.get("error").and_then(Value::as_object);
        let status = match messages_status(word) {
            Some(DeliveryStatus::Failed) => messages_rejected_status(error),
            Some(s) => s,
            None => {
                return Ok(Callback::Ignored(format!(
                    "Vonage message status `{}`",
                    word.chars().take(32).collect::<String>()
                )));
            }
        };
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|e| CallbackParseError(format!("`message_uuid`: {e}")))?;
        // The code is the numeric `title` (e.g. 1000) or the `#fragment` of `type`.
        let error_code = error.and_then(|e| {
            e.get("title")
                .and_then(string_of)
                .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
                .or_else(|| obj_str(e, "type").and_then(|t| t.rsplit_once('#')).map(|(_, f)| f.to_string()))
        });
        let description = error.and_then(|e| obj_str(e, "detail").or_else(|| obj_str(e, "title"))).map(truncate);
        Ok(Callback::Status(vec![StatusUpdate {
            provider_message_id,
            status,
            provider_status: word.to_string(),
            error_code,
            description,
            client_ref: obj_str(obj, "client_ref").map(str::to_string),
            part: None,
            occurred_at: obj_str(obj, "timestamp").and_then(iso_timestamp),
        }]))
    }

    fn parse_inbound(obj: &Map<String, Value>, channel: &str) -> Result<Callback, CallbackParseError> {
        let need = |v: Option<String>, k: &str| v.ok_or_else(|| CallbackParseError(format!("`{k}` is missing")));
        let message_type = obj_str(obj, "message_type").unwrap_or("text");
        let mut media = Vec::new();
        let mut text = obj_str(obj, "text").unwrap_or_default().to_string();
        if channel == "mms" && matches!(message_type, "image" | "video" | "audio" | "file" | "vcard") {
            let item = obj
                .get(message_type)
                .and_then(Value::as_object)
                .ok_or_else(|| CallbackParseError(format!("`{message_type}` is missing")))?;
            let url =
                obj_str(item, "url").ok_or_else(|| CallbackParseError(format!("`{message_type}.url` is missing")))?;
            media.push(InboundMedia { url: url.to_string(), content_type: None });
            if text.is_empty() {
                text = obj_str(item, "caption").unwrap_or_default().to_string();
            }
        }
        let mut meta = obj.clone();
        meta.remove("text");
        Ok(Callback::Inbound(InboundMessage {
            provider_message_id: need(obj_str(obj, "message_uuid").map(str::to_string), "message_uuid")?,
            from: need(number_of(obj, "from"), "from")?,
            to: need(number_of(obj, "to"), "to")?,
            text,
            media,
            received_at: obj_str(obj, "timestamp").and_then(iso_timestamp),
            provider_metadata: Value::Object(meta),
        }))
    }
}

/// Unverified look at a JWT's claims (only after `verify_callback` accepted it).
fn jwt_claims_unverified(req: &WebhookRequest) -> Option<Map<String, Value>> {
    let auth = req.single_header(signatures::vonage::AUTHORIZATION_HEADER).ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

impl ProviderAdapter for VonageMessagesAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::VonageMessages
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // MMS `message_type: image` with one `{url, caption}` (vonage-python-sdk
            // `test_mms_models.py`), "currently ... in the US and Canada" from US short
            // codes, 10DLC and toll-free numbers (developer.vonage.com "Understanding MMS
            // Messaging"). The multi-attachment `content` type is not used: one image.
            mms: true,
            max_media: 1,
            // Vonage publishes no size limit in what we could read: 600 KB is a
            // conservative bound from US carrier practice, unverified for Vonage.
            max_media_bytes: 600 * 1024,
            // messages-olympus.yml `image.url`: "Supported file types are .jpg, .jpeg,
            // .png, and .gif".
            media_types: &["image/jpeg", "image/png", "image/gif"],
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "Authorization: Bearer JWT (HS256, signature secret) with iat and payload_hash = \
                               SHA-256 of the body",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let c = messages_creds(creds)
            .ok_or_else(|| SendError::Credentials("not Vonage Messages API credentials".into()))?;
        if c.api_key.is_empty() || c.api_secret.expose().is_empty() {
            return Err(SendError::Credentials("vonage api_key or api_secret is empty".into()));
        }
        let base = base_url(c.api_base_url.as_deref(), DEFAULT_MESSAGES_BASE_URL)?;
        let mut body = match msg.kind {
            MessageKind::Sms => {
                if msg.body.chars().count() > MESSAGES_SMS_MAX_TEXT {
                    return Err(SendError::Unsupported(format!(
                        "text longer than the Messages API's {MESSAGES_SMS_MAX_TEXT} characters"
                    )));
                }
                let encoding_type = match encoding::analyse(&msg.body).encoding {
                    Encoding::Gsm7 => "text",
                    Encoding::Ucs2 => "unicode",
                };
                let mut b = json!({
                    "message_type": "text",
                    "channel": "sms",
                    "to": msg.to.digits(),
                    "from": sender(&msg.from),
                    "text": msg.body,
                    "sms": {"encoding_type": encoding_type},
                });
                if let Some(v) = msg.validity_secs {
                    b["ttl"] = json!(v);
                }
                b
            }
            MessageKind::Mms => {
                let [url] = msg.media_urls.as_slice() else {
                    return Err(if msg.media_urls.is_empty() {
                        SendError::Permanent {
                            code: Some("mms_without_media".into()),
                            message: "an MMS needs a media URL".into(),
                        }
                    } else {
                        SendError::Unsupported("the Vonage Messages adapter sends one image per MMS".into())
                    });
                };
                if !matches!(msg.to.region().as_deref(), Some("US" | "CA")) {
                    return Err(SendError::Unsupported("Vonage MMS reaches US and Canadian numbers only".into()));
                }
                if matches!(msg.from, dispatch_domain::SenderId::Alphanumeric(_)) {
                    return Err(SendError::Unsupported("MMS cannot be sent from an alphanumeric sender".into()));
                }
                if msg.body.chars().count() > MMS_MAX_CAPTION {
                    return Err(SendError::Unsupported(format!("caption longer than {MMS_MAX_CAPTION} characters")));
                }
                let mut image = json!({"url": url});
                if !msg.body.is_empty() {
                    image["caption"] = json!(msg.body);
                }
                let mut b = json!({
                    "message_type": "image",
                    "channel": "mms",
                    "to": msg.to.digits(),
                    "from": sender(&msg.from),
                    "image": image,
                });
                if let Some(v) = msg.validity_secs {
                    b["ttl"] = json!(v.clamp(MMS_TTL_SECS.0, MMS_TTL_SECS.1));
                }
                b
            }
        };
        body["client_ref"] = json!(msg.id.to_string());
        if !msg.status_callback_url.is_empty() {
            body["webhook_url"] = json!(msg.status_callback_url);
            body["webhook_version"] = json!("v1");
        }
        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/v1/messages"),
            headers: vec![
                ("Authorization".into(), basic_auth(&c.api_key, c.api_secret.expose())),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&body).expect("a JSON value always serializes"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let status = resp.status;
        if !(200..300).contains(&status) {
            return Err(http_error("vonage", resp, messages_code_is_transient));
        }
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|_| malformed_success(status, "the body is not JSON"))?;
        let id = v
            .get("message_uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed_success(status, "without a `message_uuid`"))?;
        let provider_message_id =
            ProviderMessageId::parse(id).map_err(|_| malformed_success(status, "with an unusable `message_uuid`"))?;
        Ok(SendAccepted { provider_message_id, status: DeliveryStatus::Sent, provider_status: None, segments: None })
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError> {
        let c = messages_creds(creds).ok_or(VerifyError::SecretUnusable("not Vonage Messages API credentials"))?;
        let claims =
            signatures::vonage::verify_messages_jwt(c.signature_secret.expose(), req, now_unix, DEFAULT_TOLERANCE)?;
        // `api_key` names the account the webhook is for (it selects the secret).
        match claims.api_key {
            Some(key) if key != c.api_key => Err(VerifyError::BadCredentials),
            _ => Ok(()),
        }
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let v: Value = serde_json::from_slice(&req.body).map_err(|_| CallbackParseError("body is not JSON".into()))?;
        let obj = v.as_object().ok_or_else(|| CallbackParseError("body is not a JSON object".into()))?;
        if obj.contains_key("status") {
            return Self::parse_status(obj);
        }
        match obj_str(obj, "channel") {
            Some(ch @ ("sms" | "mms")) if obj.contains_key("message_type") => Self::parse_inbound(obj, ch),
            Some(ch) => Ok(Callback::Ignored(format!("Vonage {} event", ch.chars().take(32).collect::<String>()))),
            None => Err(CallbackParseError("neither `status` nor `channel`".into())),
        }
    }

    /// The token's `jti` (unique per webhook delivery).
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        let claims = jwt_claims_unverified(req)?;
        claims.get("jti").and_then(Value::as_str).filter(|s| !s.is_empty()).map(|j| format!("jti:{j}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_domain::{E164, MessageId, SenderId};
    use crate::providers::credentials::{
        Secret, VonageMessagesCredentials, VonageSignatureMethod, VonageSmsCredentials,
    };
    use crate::signatures::vonage::{VonageJwtClaims, sign_messages_jwt, sign_sms};

    const NOW: i64 = 1_738_584_865;
    const KEY: &str = "abcd1234";
    const SECRET: &str = "abcdef0123456789";
    const SIG_SECRET: &str = "qwertyuiopasdfghjklzxcvbnm123456";

    fn sms_creds_with(method: VonageSignatureMethod) -> Credentials {
        Credentials::VonageSms(VonageSmsCredentials {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            signature_secret: Secret::new(SIG_SECRET),
            signature_method: method,
            api_base_url: None,
        })
    }

    fn msgs_creds() -> Credentials {
        Credentials::VonageMessages(VonageMessagesCredentials {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            signature_secret: Secret::new(SIG_SECRET),
            api_base_url: Some("http://127.0.0.1:7/".into()),
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
            status_callback_url: "https://hooks.example.org/v1/webhooks/vonage".into(),
            validity_secs: Some(600),
        }
    }

    fn resp(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn header<'a>(r: &'a ProviderRequest, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn req(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
        WebhookRequest {
            method: method.into(),
            url: url.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn form_of(p: &[(String, String)]) -> Vec<u8> {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in p {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    }

    // ------------------------------------------------------------------ SMS API

    #[test]
    fn sms_request_shape() {
        let r = VonageSmsAdapter
            .build_send(
                &sms_creds_with(VonageSignatureMethod::Md5hash),
                &msg(MessageKind::Sms, "+447400123456", "+447400123457", "Hello & bye", &[]),
            )
            .unwrap();
        assert_eq!((r.method, r.url.as_str()), ("POST", "https://rest.nexmo.com/sms/json"));
        assert_eq!(header(&r, "Content-Type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(header(&r, "Authorization"), None, "credentials travel as parameters");
        let f: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(
            f,
            pairs(&[
                ("api_key", KEY),
                ("api_secret", SECRET),
                ("from", "447400123457"),
                ("to", "447400123456"),
                ("text", "Hello & bye"),
                ("type", "text"),
                ("callback", "https://hooks.example.org/v1/webhooks/vonage"),
                ("client-ref", "01JD0000000000000000000000"),
                ("ttl", "600000"),
                ("status-report-req", "1"),
            ])
        );
    }

    #[test]
    fn sms_unicode_alphanumeric_ttl_bounds_and_refusals() {
        let c = sms_creds_with(VonageSignatureMethod::Md5hash);
        let mut m = msg(MessageKind::Sms, "+447400123456", "CityCouncil", "Straße gesperrt 🚧", &[]);
        m.validity_secs = Some(5);
        let f: Vec<(String, String)> =
            url::form_urlencoded::parse(&VonageSmsAdapter.build_send(&c, &m).unwrap().body).into_owned().collect();
        assert!(f.contains(&("type".into(), "unicode".into())));
        assert!(f.contains(&("from".into(), "CityCouncil".into())));
        assert!(f.contains(&("ttl".into(), "20000".into())));
        m.validity_secs = Some(u32::MAX);
        let f: Vec<(String, String)> =
            url::form_urlencoded::parse(&VonageSmsAdapter.build_send(&c, &m).unwrap().body).into_owned().collect();
        assert!(f.contains(&("ttl".into(), "604800000".into())));

        let mms = msg(MessageKind::Mms, "+14155552345", "+14155550100", "x", &["https://m/a.jpg"]);
        assert!(matches!(VonageSmsAdapter.build_send(&c, &mms), Err(SendError::Unsupported(_))));
        assert!(matches!(VonageSmsAdapter.build_send(&msgs_creds(), &m), Err(SendError::Credentials(_))));
        assert!(!VonageSmsAdapter.capabilities().mms);
    }

    #[test]
    fn sms_responses() {
        // vonage-python-sdk sms/tests/data/send_sms.json
        let one = r#"{"message-count":"1","messages":[{"to":"1234567890","message-id":"3295d748-4e14-4681-af78-166dca3c5aab","status":"0","remaining-balance":"38.07243628","message-price":"0.04120000","network":"23420"}]}"#;
        let a = VonageSmsAdapter.parse_send_response(&resp(200, one)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), "3295d748-4e14-4681-af78-166dca3c5aab");
        assert_eq!((a.status, a.segments), (DeliveryStatus::Sent, Some(1)));
        // send_long_sms.json: two parts, id of the first.
        let long = r#"{"message-count":"2","messages":[
            {"to":"1234567890","message-id":"62dfdf68-6c7c-479a-a190-5c52f798a787","status":"0","client-ref":"ref123"},
            {"to":"1234567890","message-id":"72ff9536-62d6-455a-9f0b-65f3c265b423","status":"0","client-ref":"ref123"}]}"#;
        let a = VonageSmsAdapter.parse_send_response(&resp(200, long)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), "62dfdf68-6c7c-479a-a190-5c52f798a787");
        assert_eq!(a.segments, Some(2));
        // sms.yml example id.
        let classic =
            r#"{"message-count":"1","messages":[{"to":"447700900000","message-id":"0A0000000123ABCD1","status":"0"}]}"#;
        assert_eq!(
            VonageSmsAdapter.parse_send_response(&resp(200, classic)).unwrap().provider_message_id.as_str(),
            "0A0000000123ABCD1"
        );

        // send_sms_error.json (7 barred: permanent), send_sms_error_throttling.json (1: transient),
        // send_sms_partial_error.json (part 2 throttled: the first error wins).
        let table = [
            (
                r#"{"message-count":"1","messages":[{"status":"7","error-text":"Number barred."}]}"#,
                false,
                "7",
                "Number barred.",
            ),
            (
                r#"{"message-count":"1","messages":[{"status":"1","error-text":"You are sending SMS faster than the account limit."}]}"#,
                true,
                "1",
                "You are sending SMS faster than the account limit.",
            ),
            (
                r#"{"message-count":"2","messages":[{"to":"1234567890","message-id":"3295d748-4e14-4681-af78-166dca3c5aab","status":"0"},{"status":"1","error-text":"Throttled"}]}"#,
                true,
                "1",
                "Throttled",
            ),
        ];
        for (body, transient, code, text) in table {
            let e = VonageSmsAdapter.parse_send_response(&resp(200, body)).unwrap_err();
            assert_eq!((e.is_transient(), e.code()), (transient, Some(code)), "{body}");
            assert!(e.to_string().contains(text));
        }
        for (body, what) in [
            ("", "not JSON"),
            (r#"{"message-count":"0","messages":[]}"#, "no messages"),
            (r#"{"messages":[{"status":"0"}]}"#, "no id"),
        ] {
            let e = VonageSmsAdapter.parse_send_response(&resp(200, body)).unwrap_err();
            assert_eq!(e.code(), Some("malformed_response"), "{what}");
        }
    }

    #[test]
    fn sms_status_code_classification() {
        for code in ["1", "5", "10"] {
            assert!(sms_status_is_transient(code), "{code}");
        }
        for code in ["2", "3", "4", "6", "7", "8", "9", "11", "12", "14", "15", "22", "23", "29", "32", "33", "99"] {
            assert!(!sms_status_is_transient(code), "{code}");
            let body = format!(r#"{{"message-count":"1","messages":[{{"status":"{code}","error-text":"x"}}]}}"#);
            assert!(matches!(
                VonageSmsAdapter.parse_send_response(&resp(200, &body)),
                Err(SendError::Permanent { .. })
            ));
        }
        let throttled = ProviderResponse {
            status: 429,
            headers: vec![("retry-after".into(), "3".into())],
            body: br#"{"Error": "Too Many Requests"}"#.to_vec(),
        };
        assert_eq!(
            VonageSmsAdapter.parse_send_response(&throttled).unwrap_err(),
            SendError::Transient {
                code: Some("http_429".into()),
                message: "Too Many Requests".into(),
                retry_after_secs: Some(3)
            }
        );
        assert!(VonageSmsAdapter.parse_send_response(&resp(503, "")).unwrap_err().is_transient());
        let unauth =
            VonageSmsAdapter.parse_send_response(&resp(401, r#"{"Error": "Authentication Failed"}"#)).unwrap_err();
        assert!(!unauth.is_transient());
    }

    #[test]
    fn sms_dlr_mapping_table() {
        use DeliveryStatus::*;
        for (word, expected) in [
            ("accepted", Some(Sent)),
            ("buffered", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("expired", Some(Expired)),
            ("failed", Some(Undelivered)),
            ("rejected", Some(Failed)),
            ("unknown", Some(Undelivered)),
            ("submitted", None),
        ] {
            assert_eq!(sms_dlr_status(word), expected, "{word}");
        }
    }

    fn dlr_params(status: &str, err: &str) -> Vec<(String, String)> {
        pairs(&[
            ("msisdn", "447700900000"),
            ("to", "AcmeInc"),
            ("network-code", "23410"),
            ("messageId", "0A0000001234567B"),
            ("price", "0.03330000"),
            ("status", status),
            ("scts", "2001011400"),
            ("err-code", err),
            ("api-key", KEY),
            ("client-ref", "01JD0000000000000000000000"),
            ("message-timestamp", "2020-01-01 12:00:00"),
            ("timestamp", &NOW.to_string()),
            ("nonce", "ec11dd3e-1e7f-4db5-9467-82b02cd223b9"),
        ])
    }

    #[test]
    fn sms_dlr_in_every_carrier() {
        let p = dlr_params("delivered", "0");
        let obj: Map<String, Value> = p.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let json_body = serde_json::to_vec(&obj).unwrap();
        let json_req = req("POST", "https://h/dlr", &[("Content-Type", "application/json")], &json_body);
        let form_req =
            req("POST", "https://h/dlr", &[("Content-Type", "application/x-www-form-urlencoded")], &form_of(&p));
        let query = String::from_utf8(form_of(&p)).unwrap();
        let get_req = req("GET", &format!("https://h/dlr?{query}"), &[], b"");
        for r in [json_req, form_req, get_req] {
            let Callback::Status(u) = VonageSmsAdapter.parse_callback(&r).unwrap() else { panic!("status") };
            assert_eq!(u[0].provider_message_id.as_str(), "0A0000001234567B");
            assert_eq!(u[0].status, DeliveryStatus::Delivered);
            assert_eq!(u[0].error_code, None);
            assert_eq!(u[0].client_ref.as_deref(), Some("01JD0000000000000000000000"));
            assert_eq!(u[0].occurred_at.as_deref(), Some("2020-01-01T12:00:00Z"));
            assert_eq!(VonageSmsAdapter.replay_key(&r).as_deref(), Some("nonce:ec11dd3e-1e7f-4db5-9467-82b02cd223b9"));
        }
        let failed = req(
            "POST",
            "https://h/dlr",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form_of(&dlr_params("failed", "7")),
        );
        let Callback::Status(u) = VonageSmsAdapter.parse_callback(&failed).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Undelivered, Some("7")));
        assert_eq!(u[0].description.as_deref(), Some("handset busy"));
        let mut part = dlr_params("expired", "1");
        part.push(("concat-part".into(), "2".into()));
        part.push(("concat-total".into(), "3".into()));
        let r = req("POST", "https://h/dlr", &[("Content-Type", "application/x-www-form-urlencoded")], &form_of(&part));
        let Callback::Status(u) = VonageSmsAdapter.parse_callback(&r).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].part), (DeliveryStatus::Expired, Some((2, 3))));
        let odd = req(
            "POST",
            "https://h/dlr",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form_of(&dlr_params("wobbly", "0")),
        );
        assert!(matches!(VonageSmsAdapter.parse_callback(&odd).unwrap(), Callback::Ignored(_)));
    }

    #[test]
    fn sms_inbound() {
        // sms.yml InboundMessage example values (and node-sdk signature dataset).
        let p = pairs(&[
            ("api-key", KEY),
            ("msisdn", "14843472194"),
            ("to", "13239877404"),
            ("messageId", "020000001B0FE827"),
            ("text", "Test again"),
            ("type", "text"),
            ("keyword", "TEST"),
            ("message-timestamp", "2013-11-21 15:27:30"),
            ("timestamp", "1385047698"),
        ]);
        let r = req("GET", &format!("https://h/in?{}", String::from_utf8(form_of(&p)).unwrap()), &[], b"");
        let Callback::Inbound(m) = VonageSmsAdapter.parse_callback(&r).unwrap() else { panic!("inbound") };
        assert_eq!((m.from.as_str(), m.to.as_str(), m.text.as_str()), ("14843472194", "13239877404", "Test again"));
        assert_eq!(m.provider_message_id, "020000001B0FE827");
        assert_eq!(m.received_at.as_deref(), Some("2013-11-21T15:27:30Z"));
        assert!(m.provider_metadata.get("text").is_none());
        assert_eq!(m.provider_metadata["keyword"], "TEST");
        // No nonce: the signed timestamp + sig.
        let mut signed = p.clone();
        signed.push(("sig".into(), "D2E7B1DC968737C5998AD624E02F90B7".into()));
        let r =
            req("POST", "https://h/in", &[("Content-Type", "application/x-www-form-urlencoded")], &form_of(&signed));
        assert_eq!(VonageSmsAdapter.replay_key(&r).as_deref(), Some("sig:1385047698:d2e7b1dc968737c5998ad624e02f90b7"));
    }

    // Found by the callback fuzzer: `sig` is compared trimmed, so a receipt whose `sig`
    // was padded with a space verified, and the replay key (untrimmed) called it new.
    #[test]
    fn padded_sig_is_the_same_delivery() {
        let c = sms_creds_with(VonageSignatureMethod::Md5hash);
        let mut p = dlr_params("delivered", "0");
        p.retain(|(k, _)| k != "nonce");
        let sig = sign_sms(SIG_SECRET, VonageSignatureMethod::Md5hash, &p);
        let form = |sig: String| {
            let mut signed = p.clone();
            signed.push(("sig".into(), sig));
            req("POST", "https://h/dlr", &[("Content-Type", "application/x-www-form-urlencoded")], &form_of(&signed))
        };
        let plain = form(sig.clone());
        let padded = form(format!("{} ", sig.to_ascii_uppercase()));
        assert_eq!(VonageSmsAdapter.verify_callback(&c, &padded, NOW), Ok(()));
        assert_eq!(VonageSmsAdapter.replay_key(&padded), VonageSmsAdapter.replay_key(&plain));
    }

    #[test]
    fn sms_verify() {
        for method in [VonageSignatureMethod::Md5hash, VonageSignatureMethod::Sha256, VonageSignatureMethod::Sha512] {
            let c = sms_creds_with(method);
            let mut p = dlr_params("delivered", "0");
            p.push(("sig".into(), sign_sms(SIG_SECRET, method, &p)));
            let body = form_of(&p);
            let ok = req("POST", "https://h/dlr", &[("Content-Type", "application/x-www-form-urlencoded")], &body);
            assert_eq!(VonageSmsAdapter.verify_callback(&c, &ok, NOW + 10), Ok(()), "{method:?}");
            assert_eq!(
                VonageSmsAdapter.verify_callback(&c, &ok, NOW + 301),
                Err(VerifyError::TimestampOutOfTolerance(300))
            );
            let tampered = String::from_utf8(body).unwrap().replace("delivered", "failed");
            let bad = req(
                "POST",
                "https://h/dlr",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                tampered.as_bytes(),
            );
            assert_eq!(VonageSmsAdapter.verify_callback(&c, &bad, NOW), Err(VerifyError::SignatureMismatch));
        }
        // Another account's receipt signed with the same secret.
        let c = sms_creds_with(VonageSignatureMethod::Md5hash);
        let mut p = dlr_params("delivered", "0");
        p.retain(|(k, _)| k != "api-key");
        p.push(("api-key".into(), "ffff0000".into()));
        p.push(("sig".into(), sign_sms(SIG_SECRET, VonageSignatureMethod::Md5hash, &p)));
        let other =
            req("POST", "https://h/dlr", &[("Content-Type", "application/x-www-form-urlencoded")], &form_of(&p));
        assert_eq!(VonageSmsAdapter.verify_callback(&c, &other, NOW), Err(VerifyError::BadCredentials));
        assert!(matches!(
            VonageSmsAdapter.verify_callback(&msgs_creds(), &other, NOW),
            Err(VerifyError::SecretUnusable(_))
        ));
    }

    // ------------------------------------------------------------------ Messages API

    #[test]
    fn messages_sms_request_shape() {
        let r = VonageMessagesAdapter
            .build_send(&msgs_creds(), &msg(MessageKind::Sms, "+447400123456", "+447400123457", "Hello", &[]))
            .unwrap();
        assert_eq!((r.method, r.url.as_str()), ("POST", "http://127.0.0.1:7/v1/messages"));
        let expected_auth =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}")));
        assert_eq!(header(&r, "Authorization"), Some(expected_auth.as_str()));
        assert_eq!(header(&r, "Content-Type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({
                "message_type": "text", "channel": "sms", "to": "447400123456", "from": "447400123457",
                "text": "Hello", "sms": {"encoding_type": "text"}, "ttl": 600,
                "client_ref": "01JD0000000000000000000000",
                "webhook_url": "https://hooks.example.org/v1/webhooks/vonage", "webhook_version": "v1"
            })
        );
        let uni = VonageMessagesAdapter
            .build_send(&msgs_creds(), &msg(MessageKind::Sms, "+447400123456", "Acme", "Привет", &[]))
            .unwrap();
        let v: Value = serde_json::from_slice(&uni.body).unwrap();
        assert_eq!((v["sms"]["encoding_type"].as_str(), v["from"].as_str()), (Some("unicode"), Some("Acme")));
        let mut long = msg(MessageKind::Sms, "+447400123456", "Acme", "", &[]);
        long.body = "a".repeat(1001);
        assert!(matches!(VonageMessagesAdapter.build_send(&msgs_creds(), &long), Err(SendError::Unsupported(_))));
    }

    #[test]
    fn messages_mms_request_shape() {
        let m = msg(MessageKind::Mms, "+14155552345", "+14155550100", "Flood map", &["https://m.example/map.png"]);
        let v: Value =
            serde_json::from_slice(&VonageMessagesAdapter.build_send(&msgs_creds(), &m).unwrap().body).unwrap();
        assert_eq!(v["message_type"], "image");
        assert_eq!(v["channel"], "mms");
        assert_eq!(v["image"], json!({"url": "https://m.example/map.png", "caption": "Flood map"}));
        assert_eq!(v["to"], "14155552345");
        assert_eq!(v["ttl"], 600);
        assert!(v.get("text").is_none());
        let mut short_ttl = m.clone();
        short_ttl.validity_secs = Some(60);
        let v: Value =
            serde_json::from_slice(&VonageMessagesAdapter.build_send(&msgs_creds(), &short_ttl).unwrap().body).unwrap();
        assert_eq!(v["ttl"], 300);
        let uk = msg(MessageKind::Mms, "+447400123456", "+447400123457", "", &["https://m.example/a.jpg"]);
        assert!(matches!(VonageMessagesAdapter.build_send(&msgs_creds(), &uk), Err(SendError::Unsupported(_))));
        let two = msg(MessageKind::Mms, "+14155552345", "+14155550100", "", &["https://m/a.jpg", "https://m/b.jpg"]);
        assert!(matches!(VonageMessagesAdapter.build_send(&msgs_creds(), &two), Err(SendError::Unsupported(_))));
        let none = msg(MessageKind::Mms, "+14155552345", "+14155550100", "", &[]);
        assert!(matches!(VonageMessagesAdapter.build_send(&msgs_creds(), &none), Err(SendError::Permanent { .. })));
        let sms_creds = sms_creds_with(VonageSignatureMethod::Md5hash);
        assert!(matches!(VonageMessagesAdapter.build_send(&sms_creds, &m), Err(SendError::Credentials(_))));
    }

    #[test]
    fn messages_responses() {
        // messages/tests/data/send_message.json (202).
        let a = VonageMessagesAdapter
            .parse_send_response(&resp(202, r#"{"message_uuid": "d8f86df1-dec6-442f-870a-2241be27d721"}"#))
            .unwrap();
        assert_eq!(a.provider_message_id.as_str(), "d8f86df1-dec6-442f-870a-2241be27d721");
        assert_eq!(a.status, DeliveryStatus::Sent);
        assert_eq!(
            VonageMessagesAdapter.parse_send_response(&resp(202, "{}")).unwrap_err().code(),
            Some("malformed_response")
        );

        // (status, body, transient, code)
        let table: &[(u16, &str, bool, &str)] = &[
            // low_balance_error.json (402)
            (
                402,
                r#"{"type":"https://developer.nexmo.com/api-errors/#low-balance","title":"Low balance","detail":"This request could not be performed due to your account balance being low.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}"#,
                false,
                "low-balance",
            ),
            // invalid_error.json (422)
            (
                422,
                r#"{"type":"https://developer.vonage.com/api-errors/messages#1150","title":"Invalid params","detail":"The value of one or more parameters is invalid.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf","invalid_parameters":[{"name":"messenger.tag","reason":"invalid value"}]}"#,
                false,
                "1150",
            ),
            // http_client/tests/data/403.json
            (
                403,
                r#"{"type":"https://developer.vonage.com/api-errors#forbidden","title":"Forbidden","detail":"Your account does not have permission to perform this action.","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}"#,
                false,
                "forbidden",
            ),
            // api-errors "unauthorized"
            (
                401,
                r#"{"type":"https://developer.nexmo.com/api-errors#unauthorized","title":"Unauthorized","detail":"You did not provide correct credentials.","instance":"797a8f199c45014ab7b08bfe9cc1c12c"}"#,
                false,
                "unauthorized",
            ),
            // http_client/tests/data/{401,429,500}.json
            (401, r#"{"Error": "Authentication Failed"}"#, false, "http_401"),
            (
                429,
                r#"{"type":"https://developer.vonage.com/api-errors#throttled","title":"Rate Limit Hit","detail":"Please wait, then retry your request","instance":"bf0ca0bf927b3b52e3cb03217e1a1ddf"}"#,
                true,
                "throttled",
            ),
            (429, r#"{"Error": "Too Many Requests"}"#, true, "http_429"),
            (500, r#"{"Error": "Internal Server Error"}"#, true, "http_500"),
            (502, "", true, "http_502"),
        ];
        for (status, body, transient, code) in table {
            let e = VonageMessagesAdapter.parse_send_response(&resp(*status, body)).unwrap_err();
            assert_eq!((e.is_transient(), e.code()), (*transient, Some(*code)), "{status} {body}");
        }
        let e = VonageMessagesAdapter.parse_send_response(&resp(422, table[1].1)).unwrap_err();
        assert_eq!(e.to_string(), "permanent provider error 1150: The value of one or more parameters is invalid.");
    }

    #[test]
    fn messages_status_mapping_table() {
        use DeliveryStatus::*;
        for (word, expected) in [
            ("submitted", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Delivered)),
            ("rejected", Some(Failed)),
            ("undeliverable", Some(Undelivered)),
            ("accepted", None),
        ] {
            assert_eq!(messages_status(word), expected, "{word}");
        }
        let ttl = json!({"type": "https://developer.vonage.com/api-errors/messages#1320", "title": 1320, "detail": "Message TTL expired before delivery"});
        assert_eq!(messages_rejected_status(ttl.as_object()), Expired);
        let barred = json!({"title": 1050, "detail": "Number barred"});
        assert_eq!(messages_rejected_status(barred.as_object()), Failed);
        assert_eq!(messages_rejected_status(None), Failed);
    }

    fn json_req(body: &Value) -> WebhookRequest {
        req("POST", "https://h/status", &[("Content-Type", "application/json")], &serde_json::to_vec(body).unwrap())
    }

    #[test]
    fn messages_status_callbacks() {
        // vonage-java-sdk MessageStatusTest shapes.
        let submitted = json!({
            "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000", "from": "447700900001",
            "timestamp": "2020-01-01T14:00:03.010Z", "status": "submitted", "channel": "sms",
            "client_ref": "01JD0000000000000000000000",
            "usage": {"currency": "EUR", "price": "0.0333"}, "sms": {"count_total": "3"},
            "destination": {"network_code": "54321"}
        });
        let Callback::Status(u) = VonageMessagesAdapter.parse_callback(&json_req(&submitted)).unwrap() else {
            panic!()
        };
        assert_eq!(u[0].provider_message_id.as_str(), "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab");
        assert_eq!((u[0].status, u[0].provider_status.as_str()), (DeliveryStatus::Sent, "submitted"));
        assert_eq!(u[0].client_ref.as_deref(), Some("01JD0000000000000000000000"));
        assert_eq!(u[0].occurred_at.as_deref(), Some("2020-01-01T14:00:03.010Z"));

        let rejected = json!({
            "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000", "from": "447700900001",
            "timestamp": "2020-01-01T14:00:00.000Z", "status": "rejected", "channel": "sms",
            "error": {"type": "https://developer.nexmo.com/api-errors/messages-olympus#1000", "title": 1000,
                      "detail": "Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
                      "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf"}
        });
        let Callback::Status(u) = VonageMessagesAdapter.parse_callback(&json_req(&rejected)).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Failed, Some("1000")));
        assert!(u[0].description.as_deref().unwrap().starts_with("Throttled"));

        let expired = json!({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "status": "rejected", "channel": "sms",
            "error": {"type": "https://developer.vonage.com/api-errors/messages#1320", "title": "Message expired", "detail": "The message TTL expired"}});
        let Callback::Status(u) = VonageMessagesAdapter.parse_callback(&json_req(&expired)).unwrap() else { panic!() };
        assert_eq!((u[0].status, u[0].error_code.as_deref()), (DeliveryStatus::Expired, Some("1320")));

        let undeliverable = json!({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000", "from": "447700900001",
            "timestamp": "2020-01-08T15:43:21.000Z", "status": "undeliverable", "channel": "mms"});
        let Callback::Status(u) = VonageMessagesAdapter.parse_callback(&json_req(&undeliverable)).unwrap() else {
            panic!()
        };
        assert_eq!(u[0].status, DeliveryStatus::Undelivered);

        let whatsapp =
            json!({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "status": "read", "channel": "whatsapp"});
        assert!(matches!(VonageMessagesAdapter.parse_callback(&json_req(&whatsapp)).unwrap(), Callback::Ignored(_)));
        let odd = json!({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "status": "wobbly", "channel": "sms"});
        assert!(matches!(VonageMessagesAdapter.parse_callback(&json_req(&odd)).unwrap(), Callback::Ignored(_)));
        assert!(VonageMessagesAdapter.parse_callback(&json_req(&json!({"status": "delivered"}))).is_err());
        assert!(VonageMessagesAdapter.parse_callback(&req("POST", "https://h", &[], b"status=delivered")).is_err());
    }

    #[test]
    fn messages_inbound() {
        let sms = json!({"channel": "sms", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "447700900000",
            "from": "447700900001", "timestamp": "2025-02-03T12:14:25Z", "text": "Hello From Vonage!",
            "sms": {"num_messages": "1", "keyword": "HELLO"}, "usage": {"price": "0.0057", "currency": "EUR"},
            "message_type": "text"});
        let Callback::Inbound(m) = VonageMessagesAdapter.parse_callback(&json_req(&sms)).unwrap() else { panic!() };
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("447700900001", "447700900000", "Hello From Vonage!")
        );
        assert_eq!(m.received_at.as_deref(), Some("2025-02-03T12:14:25Z"));
        assert!(m.provider_metadata.get("text").is_none());
        let mms = json!({"channel": "mms", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": "14155550100",
            "from": "14155552345", "timestamp": "2025-02-03T12:14:25Z", "message_type": "image",
            "image": {"url": "https://api-us.nexmo.com/v3/media/abc", "caption": "the bridge"}});
        let Callback::Inbound(m) = VonageMessagesAdapter.parse_callback(&json_req(&mms)).unwrap() else { panic!() };
        assert_eq!(
            m.media,
            vec![InboundMedia { url: "https://api-us.nexmo.com/v3/media/abc".into(), content_type: None }]
        );
        assert_eq!(m.text, "the bridge");
        let wa = json!({"channel": "whatsapp", "message_type": "text", "message_uuid": "x"});
        assert!(matches!(VonageMessagesAdapter.parse_callback(&json_req(&wa)).unwrap(), Callback::Ignored(_)));
    }

    fn jwt_request(secret: &str, claims: &VonageJwtClaims, body: &[u8]) -> WebhookRequest {
        let token = sign_messages_jwt(secret, claims, body);
        req(
            "POST",
            "https://h/status",
            &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {token}"))],
            body,
        )
    }

    #[test]
    fn messages_verify_and_replay_key() {
        let body = br#"{"message_uuid":"aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab","status":"delivered","channel":"sms"}"#;
        let claims = VonageJwtClaims {
            jti: Some("11111111-2222-4333-8444-555555555555".into()),
            api_key: Some(KEY.into()),
            iat: NOW,
        };
        let ok = jwt_request(SIG_SECRET, &claims, body);
        assert_eq!(VonageMessagesAdapter.verify_callback(&msgs_creds(), &ok, NOW + 5), Ok(()));
        assert_eq!(VonageMessagesAdapter.replay_key(&ok).as_deref(), Some("jti:11111111-2222-4333-8444-555555555555"));
        assert!(VonageMessagesAdapter.verify_callback(&msgs_creds(), &ok, NOW + 301).is_err());
        let forged = jwt_request("wrong-secret-wrong-secret-000000", &claims, body);
        assert_eq!(
            VonageMessagesAdapter.verify_callback(&msgs_creds(), &forged, NOW),
            Err(VerifyError::SignatureMismatch)
        );
        let mut tampered = ok.clone();
        tampered.body = body.iter().copied().map(|b| if b == b'd' { b'D' } else { b }).collect();
        assert_eq!(
            VonageMessagesAdapter.verify_callback(&msgs_creds(), &tampered, NOW),
            Err(VerifyError::BodyHashMismatch)
        );
        let other_account =
            jwt_request(SIG_SECRET, &VonageJwtClaims { api_key: Some("zzzz9999".into()), ..claims.clone() }, body);
        assert_eq!(
            VonageMessagesAdapter.verify_callback(&msgs_creds(), &other_account, NOW),
            Err(VerifyError::BadCredentials)
        );
        let sms_creds = sms_creds_with(VonageSignatureMethod::Md5hash);
        assert!(matches!(
            VonageMessagesAdapter.verify_callback(&sms_creds, &ok, NOW),
            Err(VerifyError::SecretUnusable(_))
        ));
        assert_eq!(VonageMessagesAdapter.replay_key(&req("POST", "https://h", &[], b"{}")), None);
    }

    // Vector `vonage-jwt-payload-hash-DERIVED` (providers.md vectors).
    #[test]
    fn messages_verify_reference_vector() {
        let body = br#"{"message_uuid":"aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab","to":"447700900000","from":"447700900001","timestamp":"2025-02-03T12:14:25Z","status":"delivered","channel":"sms"}"#;
        let auth = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3Mzg1ODQ4NjUsImp0aSI6IjExMTExMTExLTIyMjItNDMzMy04NDQ0LTU1NTU1NTU1NTU1NSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImY3Zjg2YzM0YTY2ZmNkY2I5MjE0ODk3OTM4NjY2ZGU4ZTkzNGUyMGU1ZWFmMjQzMzE1NWFmNzIxNWEyNmM4NjkiLCJhcGlfa2V5IjoiYWJjZDEyMzQiLCJhcHBsaWNhdGlvbl9pZCI6ImFhYWFhYWFhLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMCJ9.Bu8jjkhAxQjvjLr7qyMzYq0CUVsWN8lfU1EHmLGp-K0";
        let r = req("POST", "https://h/status", &[("Content-Type", "application/json"), ("Authorization", auth)], body);
        assert_eq!(VonageMessagesAdapter.verify_callback(&msgs_creds(), &r, 1_738_584_865), Ok(()));
        let Callback::Status(u) = VonageMessagesAdapter.parse_callback(&r).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
    }
}
