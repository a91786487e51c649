//! Sinch SMS REST API (XMS).
//!
//! * Send: `POST {base}/xms/v1/{service_plan_id}/batches` with
//!   `Authorization: Bearer <API token>`; `base` is `https://{region}.sms.api.sinch.com`
//!   (sinch/sinch-sdk-python `sinch_client_configuration.py`, `batches_endpoints.py`).
//!   Body: `TextRequest` `{to[], from, body, type: mt_text, delivery_report, callback_url,
//!   client_reference, expire_at}` or `MediaRequest` (`type: mt_media`, `body: {url,
//!   message}`) (sms `text_request.py`; sinch-sdk-java openapi-contracts
//!   `batches/request/MediaRequestDto.json`). Answer: `201` with the batch `{id, …}`.
//!   Recipients are sent in `+E.164`, as the SDK fixtures do.
//! * Errors: 400/403 carry `{"code", "text"}` (`error-response.json`; developers.sinch.com
//!   sms/api-reference/status-codes).
//! * Callbacks: `delivery_report_sms|mms` (summary: `statuses[{code,status,count,recipients}]`),
//!   `recipient_delivery_report_sms|mms` (`batch_id, recipient, code, status, at,
//!   client_reference`) and inbound `mo_text` / `mo_media` (openapi-contracts
//!   `deliveryreports/*.json`, `inbounds/*.json`), signed with `x-sinch-webhook-signature`
//!   = base64(HMAC-SHA256(secret, body + "." + nonce + "." + timestamp)).
//!
//! One batch carries one message to one recipient here, so the batch id is the
//! provider message id.

use super::retry_after_secs;
use super::*;
use crate::signatures::{self, DEFAULT_TOLERANCE};
use serde_json::{Map, Value, json};

pub const DEFAULT_REGION: &str = "us";
/// Regions with an XMS host (`{region}.sms.api.sinch.com`), as in the SDKs' `SmsRegion`.
pub const REGIONS: &[&str] = &["us", "eu", "au", "br", "ca"];
pub use crate::signatures::sinch::NONCE_HEADER;

/// `expire_at` may be at most 3 days after the batch is sent (providers.md §6, `text_request.py`).
const MAX_EXPIRY_SECS: u32 = 3 * 24 * 3600;

pub struct SinchAdapter;

impl ProviderAdapter for SinchAdapter {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sinch
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            sms: true,
            // XMS accepts `mt_media` only for US, Canada, Australia and Puerto Rico
            // destinations, only once Sinch has enabled MMS on the account, and the
            // feature "is scheduled for deprecation" (developers.sinch.com
            // docs/sms/api-reference/mms-support). Elsewhere Sinch refuses the batch.
            mms: true,
            // `MediaBody` has a single `url`.
            max_media: 1,
            // Not stated on the XMS MMS page; Sinch's MMS channel guidance is to keep
            // media under 1 MB (carrier limits, ~1 MB on long codes).
            max_media_bytes: 1_000_000,
            // "image: .jpg, .png; video: .mp4, .gif, .mov; vCard" (mms-support).
            media_types: &["image/jpeg", "image/png", "image/gif", "video/mp4", "video/quicktime", "text/vcard"],
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "HMAC-SHA256 over `body.nonce.timestamp` (x-sinch-webhook-signature, -nonce, -timestamp), ±300 s",
        }
    }

    fn build_send(&self, creds: &Credentials, msg: &OutboundMessage) -> Result<ProviderRequest, SendError> {
        let Credentials::Sinch(c) = creds else {
            return Err(SendError::Credentials(format!("expected sinch credentials, got {}", creds.kind())));
        };
        let plan = c.service_plan_id.trim();
        if plan.is_empty() || !plan.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(SendError::Credentials("sinch service_plan_id is empty or not a service plan id".into()));
        }
        if c.api_token.expose().trim().is_empty() {
            return Err(SendError::Credentials("sinch api_token is empty".into()));
        }
        let base = match c.api_base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => u.trim_end_matches('/').to_owned(),
            Some(_) => return Err(SendError::Credentials("api_base_url must be an http(s) URL".into())),
            None => {
                let region = c.region.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or(DEFAULT_REGION);
                let region = region.to_ascii_lowercase();
                if !REGIONS.contains(&region.as_str()) {
                    return Err(SendError::Credentials(format!("sinch region must be one of {}", REGIONS.join(", "))));
                }
                format!("https://{region}.sms.api.sinch.com")
            }
        };

        let mut body = Map::new();
        body.insert("to".into(), json!([msg.to.as_str()]));
        body.insert("from".into(), json!(msg.from.as_str()));
        match msg.kind {
            MessageKind::Sms => {
                body.insert("type".into(), json!("mt_text"));
                body.insert("body".into(), json!(msg.body));
            }
            MessageKind::Mms => {
                if matches!(msg.from, SenderId::Alphanumeric(_)) {
                    return Err(SendError::Unsupported("sinch cannot send MMS from an alphanumeric sender".into()));
                }
                let [url] = msg.media_urls.as_slice() else {
                    return Err(SendError::Unsupported(format!(
                        "sinch MMS (mt_media) carries exactly one media URL, got {}",
                        msg.media_urls.len()
                    )));
                };
                let mut media = Map::new();
                media.insert("url".into(), json!(url));
                if !msg.body.is_empty() {
                    media.insert("message".into(), json!(msg.body));
                }
                body.insert("type".into(), json!("mt_media"));
                body.insert("body".into(), Value::Object(media));
            }
        }
        // One callback per recipient status change, each carrying our client reference.
        body.insert("delivery_report".into(), json!("per_recipient"));
        if !msg.status_callback_url.is_empty() {
            body.insert("callback_url".into(), json!(msg.status_callback_url));
        }
        body.insert("client_reference".into(), json!(msg.id.to_string()));
        if let Some(secs) = msg.validity_secs.filter(|s| *s > 0) {
            let at = chrono::Utc::now() + chrono::Duration::seconds(i64::from(secs.min(MAX_EXPIRY_SECS)));
            body.insert("expire_at".into(), json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }

        Ok(ProviderRequest {
            method: "POST",
            url: format!("{base}/xms/v1/{plan}/batches"),
            headers: vec![
                ("Authorization".into(), format!("Bearer {}", c.api_token.expose().trim())),
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&Value::Object(body)).expect("a JSON map always serialises"),
        })
    }

    fn parse_send_response(&self, resp: &ProviderResponse) -> Result<SendAccepted, SendError> {
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if (200..300).contains(&resp.status) {
            let Some(id) = v["id"].as_str().and_then(|id| ProviderMessageId::parse(id).ok()) else {
                // Sinch created the batch: sending again could duplicate the message.
                return Err(SendError::Permanent {
                    code: Some("unparseable_response".into()),
                    message: format!("sinch answered HTTP {} without a batch id", resp.status),
                });
            };
            return Ok(SendAccepted {
                provider_message_id: id,
                status: DeliveryStatus::Sent,
                provider_status: None,
                segments: None,
            });
        }

        let provider_code = v["code"].as_str().filter(|c| !c.is_empty()).map(clip);
        let message = match v["text"].as_str() {
            Some(t) => format!("sinch HTTP {}: {}", resp.status, clip(t)),
            None => format!("sinch HTTP {}", resp.status),
        };
        let code = provider_code.or_else(|| Some(format!("http_{}", resp.status)));
        if resp.status == 429 || resp.status == 408 || resp.status >= 500 {
            Err(SendError::Transient { code, message, retry_after_secs: retry_after_secs(resp) })
        } else {
            Err(SendError::Permanent { code, message })
        }
    }

    fn verify_callback(&self, creds: &Credentials, req: &WebhookRequest, now_unix: i64) -> Result<(), VerifyError> {
        let Credentials::Sinch(c) = creds else {
            return Err(VerifyError::SecretUnusable("the credentials are not sinch credentials"));
        };
        signatures::sinch::verify(c.webhook_secret.expose(), req, now_unix, DEFAULT_TOLERANCE)
    }

    fn parse_callback(&self, req: &WebhookRequest) -> Result<Callback, CallbackParseError> {
        let v: Value = serde_json::from_slice(&req.body)
            .map_err(|_| CallbackParseError("sinch callback body is not JSON".into()))?;
        let kind = v["type"].as_str().ok_or_else(|| bad("no `type`"))?;
        match kind {
            "delivery_report_sms" | "delivery_report_mms" => {
                let batch = batch_id(&v)?;
                let statuses = v["statuses"].as_array().ok_or_else(|| bad("no `statuses` array"))?;
                let client_ref = client_ref(&v);
                let mut updates = Vec::new();
                for s in statuses {
                    let word = s["status"].as_str().ok_or_else(|| bad("a status entry has no `status`"))?;
                    let Some((status, note)) = map_status(word) else { continue };
                    let code = code_string(&s["code"]);
                    let count = s["count"].as_u64();
                    let mut description = describe(note, code.as_deref(), status);
                    if let Some(n) = count {
                        let summary = format!("summary report for {n} recipient(s)");
                        description = Some(match description {
                            Some(d) => format!("{d}; {summary}"),
                            None => summary,
                        });
                    }
                    updates.push(StatusUpdate {
                        provider_message_id: batch.clone(),
                        status,
                        provider_status: word.to_owned(),
                        error_code: error_code(code, status),
                        description,
                        client_ref: client_ref.clone(),
                        part: None,
                        occurred_at: None,
                    });
                }
                if updates.is_empty() {
                    Ok(Callback::Ignored(format!("sinch {kind} without a status we track")))
                } else {
                    Ok(Callback::Status(updates))
                }
            }
            "recipient_delivery_report_sms" | "recipient_delivery_report_mms" => {
                let batch = batch_id(&v)?;
                let word = v["status"].as_str().ok_or_else(|| bad("no `status`"))?;
                let Some((status, note)) = map_status(word) else {
                    return Ok(Callback::Ignored(format!("sinch status {} is not handled", clip(word))));
                };
                let code = code_string(&v["code"]);
                Ok(Callback::Status(vec![StatusUpdate {
                    provider_message_id: batch,
                    status,
                    provider_status: word.to_owned(),
                    description: describe(note, code.as_deref(), status),
                    error_code: error_code(code, status),
                    client_ref: client_ref(&v),
                    part: None,
                    occurred_at: v["at"].as_str().map(str::to_owned),
                }]))
            }
            "mo_text" | "mo_media" => {
                let id = v["id"].as_str().ok_or_else(|| bad("inbound message has no `id`"))?;
                let from = v["from"].as_str().ok_or_else(|| bad("inbound message has no `from`"))?;
                let to = v["to"].as_str().ok_or_else(|| bad("inbound message has no `to`"))?;
                let (text, media) = if kind == "mo_text" {
                    (v["body"].as_str().unwrap_or_default().to_owned(), Vec::new())
                } else {
                    let b = &v["body"];
                    let media = b["media"]
                        .as_array()
                        .map(|items| {
                            items
                                .iter()
                                .filter_map(|m| {
                                    Some(InboundMedia {
                                        url: m["url"].as_str()?.to_owned(),
                                        content_type: m["contentType"].as_str().map(str::to_owned),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (b["message"].as_str().unwrap_or_default().to_owned(), media)
                };
                // Evidence without the content (the text lives in the message record).
                let mut meta = v.clone();
                if let Some(m) = meta.as_object_mut() {
                    if kind == "mo_text" {
                        m.remove("body");
                    } else if let Some(b) = m.get_mut("body").and_then(Value::as_object_mut) {
                        b.remove("message");
                        b.remove("subject");
                    }
                }
                Ok(Callback::Inbound(InboundMessage {
                    provider_message_id: id.to_owned(),
                    from: msisdn(from),
                    to: msisdn(to),
                    text,
                    media,
                    received_at: v["received_at"].as_str().map(str::to_owned),
                    provider_metadata: meta,
                }))
            }
            other => Ok(Callback::Ignored(format!("sinch callback type {} is not handled", clip(other)))),
        }
    }

    /// The signed nonce: Sinch sends a fresh one with every callback.
    fn replay_key(&self, req: &WebhookRequest) -> Option<String> {
        let nonce = req.single_header(NONCE_HEADER).ok()?.trim();
        (!nonce.is_empty()).then(|| nonce.to_owned())
    }
}

/// Sinch delivery-report status (capitalised on the wire) → ours, with a note where
/// the word alone would mislead (providers.md §6).
pub fn map_status(word: &str) -> Option<(DeliveryStatus, Option<&'static str>)> {
    Some(match word {
        "Queued" => (DeliveryStatus::Queued, None),
        "Dispatched" => (DeliveryStatus::Sent, None),
        "Delivered" => (DeliveryStatus::Delivered, None),
        "Aborted" | "Rejected" | "Cancelled" => (DeliveryStatus::Failed, None),
        "Failed" | "Deleted" => (DeliveryStatus::Undelivered, None),
        "Expired" => (DeliveryStatus::Expired, None),
        // Final, but the operator never sent a receipt.
        "Unknown" => (DeliveryStatus::Sent, Some("no delivery receipt (final status Unknown)")),
        _ => return None,
    })
}

/// Meanings of the Sinch-specific delivery report codes (developers.sinch.com
/// sms/api-reference/sms/delivery-reports/delivery-report-error-codes); other codes
/// are operator (SMPP/MMS) codes.
fn code_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "402" => "unroutable",
        "403" => "internal error",
        "404" => "temporary delivery failure",
        "405" => "unmatched parameter",
        "406" => "internal expiry",
        "407" => "cancelled",
        "408" => "internal reject",
        "410" | "411" | "412" | "413" | "414" | "415" | "416" | "417" | "418" => "configuration error",
        _ => return None,
    })
}

fn describe(note: Option<&'static str>, code: Option<&str>, status: DeliveryStatus) -> Option<String> {
    let meaning = match status {
        DeliveryStatus::Failed | DeliveryStatus::Undelivered | DeliveryStatus::Expired => code.and_then(code_meaning),
        _ => None,
    };
    match (note, meaning) {
        (Some(n), Some(m)) => Some(format!("{n}: {m}")),
        (Some(n), None) => Some(n.to_owned()),
        (None, Some(m)) => Some(m.to_owned()),
        (None, None) => None,
    }
}

/// The report code is kept where it explains something: on failures and unknown
/// outcomes, not on the routine 0/400/401 of delivered/queued/dispatched.
fn error_code(code: Option<String>, status: DeliveryStatus) -> Option<String> {
    match status {
        DeliveryStatus::Queued | DeliveryStatus::Delivered => None,
        DeliveryStatus::Sent if code.as_deref() == Some("401") => None,
        _ => code,
    }
}

fn batch_id(v: &Value) -> Result<ProviderMessageId, CallbackParseError> {
    let id = v["batch_id"].as_str().ok_or_else(|| bad("no `batch_id`"))?;
    ProviderMessageId::parse(id).map_err(|_| bad("`batch_id` is not a batch id"))
}

fn client_ref(v: &Value) -> Option<String> {
    v["client_reference"].as_str().filter(|c| !c.is_empty()).map(str::to_owned)
}

/// Sinch writes MSISDNs in international format with or without `+`; numbers of 9 or
/// more digits get the `+` back, shorter ones (short codes) stay as they are.
fn msisdn(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 9 && s.bytes().all(|b| b.is_ascii_digit()) { format!("+{s}") } else { s.to_owned() }
}

fn code_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(clip(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(what: &str) -> CallbackParseError {
    CallbackParseError(format!("sinch callback: {what}"))
}

fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX { s.to_owned() } else { s.chars().take(MAX).collect::<String>() + "…" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::credentials::{Secret, SinchCredentials, TelnyxCredentials};

    const MSG_ID: &str = "01JD0000000000000000000000";
    const BATCH: &str = "01FC66621XXXXX119Z8PMV1QPQ";

    fn sinch(region: Option<&str>, base: Option<&str>) -> Credentials {
        Credentials::Sinch(SinchCredentials {
            service_plan_id: "jd63jf88477ll123ab4567cd89".into(),
            api_token: Secret::new("tok-123"),
            region: region.map(str::to_owned),
            webhook_secret: Secret::new("SMSWebhooksSecret"),
            api_base_url: base.map(str::to_owned),
        })
    }

    fn msg(kind: MessageKind, media: Vec<String>) -> OutboundMessage {
        OutboundMessage {
            id: MSG_ID.parse().unwrap(),
            kind,
            to: E164::parse("+447400123456", None).unwrap(),
            from: SenderId::Alphanumeric("CityAlerts".into()),
            body: "Road closed: A40 westbound.".into(),
            media_urls: media,
            status_callback_url: "https://hooks.example.org/v1/webhooks/sinch/t1".into(),
            validity_secs: Some(7200),
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
            url: "https://hooks.example.org/v1/webhooks/sinch/t1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sms_request_shape() {
        let before = chrono::Utc::now();
        let r = SinchAdapter.build_send(&sinch(Some("eu"), None), &msg(MessageKind::Sms, vec![])).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://eu.sms.api.sinch.com/xms/v1/jd63jf88477ll123ab4567cd89/batches");
        assert_eq!(header(&r, "authorization"), Some("Bearer tok-123"));
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let mut b = body_json(&r);
        let expire = b.as_object_mut().unwrap().remove("expire_at").unwrap();
        assert_eq!(
            b,
            json!({
                "to": ["+447400123456"],
                "from": "CityAlerts",
                "body": "Road closed: A40 westbound.",
                "type": "mt_text",
                "delivery_report": "per_recipient",
                "callback_url": "https://hooks.example.org/v1/webhooks/sinch/t1",
                "client_reference": MSG_ID,
            })
        );
        let after = chrono::Utc::now();
        let at = chrono::DateTime::parse_from_rfc3339(expire.as_str().unwrap()).unwrap();
        assert!(at.signed_duration_since(before).num_seconds() >= 7199);
        assert!(at.signed_duration_since(after).num_seconds() <= 7201);
        assert!(!format!("{r:?}").contains("tok-123"));
    }

    #[test]
    fn expiry_is_capped_at_three_days() {
        let before = chrono::Utc::now();
        let mut m = msg(MessageKind::Sms, vec![]);
        m.validity_secs = Some(10 * 24 * 3600);
        let b = body_json(&SinchAdapter.build_send(&sinch(None, None), &m).unwrap());
        let after = chrono::Utc::now();
        let at = chrono::DateTime::parse_from_rfc3339(b["expire_at"].as_str().unwrap()).unwrap();
        assert!(at.signed_duration_since(after).num_seconds() <= i64::from(MAX_EXPIRY_SECS) + 1);
        assert!(at.signed_duration_since(before).num_seconds() >= i64::from(MAX_EXPIRY_SECS) - 1, "capped, not dropped");
    }

    #[test]
    fn regions_and_base_urls() {
        let r = SinchAdapter.build_send(&sinch(None, None), &msg(MessageKind::Sms, vec![])).unwrap();
        assert!(r.url.starts_with("https://us.sms.api.sinch.com/xms/v1/"));
        let r = SinchAdapter.build_send(&sinch(Some("AU"), None), &msg(MessageKind::Sms, vec![])).unwrap();
        assert!(r.url.starts_with("https://au.sms.api.sinch.com/"));
        let r = SinchAdapter
            .build_send(&sinch(Some("eu"), Some("http://127.0.0.1:7/")), &msg(MessageKind::Sms, vec![]))
            .unwrap();
        assert_eq!(r.url, "http://127.0.0.1:7/xms/v1/jd63jf88477ll123ab4567cd89/batches");
        for bad_region in ["evil.example.com/", "xx"] {
            assert!(matches!(
                SinchAdapter.build_send(&sinch(Some(bad_region), None), &msg(MessageKind::Sms, vec![])),
                Err(SendError::Credentials(_))
            ));
        }
        let telnyx = Credentials::Telnyx(TelnyxCredentials {
            api_key: Secret::new("k"),
            public_key: "x".into(),
            messaging_profile_id: None,
            api_base_url: None,
        });
        assert!(matches!(
            SinchAdapter.build_send(&telnyx, &msg(MessageKind::Sms, vec![])),
            Err(SendError::Credentials(_))
        ));
    }

    #[test]
    fn mms_request_shape() {
        let mut m = msg(MessageKind::Mms, vec!["https://media.example.org/evac-map.jpg".into()]);
        m.from = SenderId::LongCode(E164::parse("+12015550124", None).unwrap());
        let b = body_json(&SinchAdapter.build_send(&sinch(None, None), &m).unwrap());
        assert_eq!(b["type"], "mt_media");
        assert_eq!(
            b["body"],
            json!({"url": "https://media.example.org/evac-map.jpg", "message": "Road closed: A40 westbound."})
        );
        m.media_urls.push("https://media.example.org/2.jpg".into());
        assert!(matches!(SinchAdapter.build_send(&sinch(None, None), &m), Err(SendError::Unsupported(_))));
        m.media_urls.clear();
        assert!(matches!(SinchAdapter.build_send(&sinch(None, None), &m), Err(SendError::Unsupported(_))));
        let alpha = msg(MessageKind::Mms, vec!["https://media.example.org/evac-map.jpg".into()]);
        assert!(matches!(SinchAdapter.build_send(&sinch(None, None), &alpha), Err(SendError::Unsupported(_))));
    }

    /// openapi-contracts `TextResponseDto.json`.
    const ACCEPTED: &str = r#"{"id":"01FC66621XXXXX119Z8PMV1QPQ","to":["+15551231234","+15551256344"],"from":"+15551231234",
        "canceled":false,"body":"Hi ${name} ({an identifier}) ! How are you?","type":"mt_text",
        "created_at":"2019-08-24T14:15:22Z","modified_at":"2019-08-24T14:17:22Z","delivery_report":"none",
        "send_at":"2019-08-24T14:19:22Z","expire_at":"2019-08-24T14:21:22Z","callback_url":"callback url",
        "client_reference":"myReference","feedback_enabled":false,"flash_message":true,"truncate_concat":true,
        "max_number_of_message_parts":1,"from_ton":6,"from_npi":18}"#;

    #[test]
    fn parses_accepted_send() {
        let a = SinchAdapter.parse_send_response(&resp(201, &[], ACCEPTED)).unwrap();
        assert_eq!(a.provider_message_id.as_str(), BATCH);
        assert_eq!(a.status, DeliveryStatus::Sent);
        assert!(matches!(SinchAdapter.parse_send_response(&resp(201, &[], "")), Err(SendError::Permanent { .. })));
    }

    #[test]
    fn classifies_errors() {
        let table: &[(u16, &str, &str, bool)] = &[
            // openapi-contracts error-response.json
            (
                400,
                r#"{"code":"syntax_invalid_parameter_format","text":"'foo' is not a valid identifier"}"#,
                "syntax_invalid_parameter_format",
                false,
            ),
            (
                400,
                r#"{"code":"syntax_constraint_violation","text":"to: must not be empty"}"#,
                "syntax_constraint_violation",
                false,
            ),
            (403, r#"{"code":"blocked_account","text":"Account is blocked"}"#, "blocked_account", false),
            (401, "", "http_401", false),
            (404, "", "http_404", false),
            (429, r#"{"code":"too_many_requests","text":"Too many requests"}"#, "too_many_requests", true),
            (500, "", "http_500", true),
            (503, r#"{"code":"internal_error","text":"Service unavailable"}"#, "internal_error", true),
        ];
        for (status, body, code, transient) in table {
            let e = SinchAdapter.parse_send_response(&resp(*status, &[("Retry-After", "12")], body)).unwrap_err();
            assert_eq!(e.is_transient(), *transient, "{status}: {e}");
            assert_eq!(e.code(), Some(*code), "{status}");
            if let SendError::Transient { retry_after_secs, .. } = e {
                assert_eq!(retry_after_secs, Some(12));
            }
        }
    }

    #[test]
    fn status_mapping_table() {
        use DeliveryStatus::*;
        let table: &[(&str, Option<DeliveryStatus>)] = &[
            ("Queued", Some(Queued)),
            ("Dispatched", Some(Sent)),
            ("Delivered", Some(Delivered)),
            ("Aborted", Some(Failed)),
            ("Rejected", Some(Failed)),
            ("Cancelled", Some(Failed)),
            ("Failed", Some(Undelivered)),
            ("Deleted", Some(Undelivered)),
            ("Expired", Some(Expired)),
            ("Unknown", Some(Sent)),
            ("delivered", None),
            ("Whatever", None),
        ];
        for (word, expected) in table {
            assert_eq!(map_status(word).map(|(s, _)| s), *expected, "{word}");
        }
        assert!(map_status("Unknown").unwrap().1.unwrap().contains("no delivery receipt"));
    }

    /// The `sinch-sms-recipient-dlr` vector body (sinch-sdk-java SinchEventsServiceTest).
    const RECIPIENT_DLR: &str = r#"{"at":"2025-01-13T09:22:40.914Z","batch_id":"01JHFFHQ0P99JPPNQPJDV7JTBP","client_reference":"a client reference","code":0,"operator_status_at":"2025-01-13T09:22:00Z","recipient":"33662162466","status":"Delivered","type":"recipient_delivery_report_sms"}"#;

    #[test]
    fn parses_per_recipient_reports() {
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(RECIPIENT_DLR)).unwrap() else { panic!() };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), "01JHFFHQ0P99JPPNQPJDV7JTBP");
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
        assert_eq!(u[0].provider_status, "Delivered");
        assert_eq!(u[0].client_ref.as_deref(), Some("a client reference"));
        assert_eq!(u[0].occurred_at.as_deref(), Some("2025-01-13T09:22:40.914Z"));
        assert_eq!(u[0].error_code, None);

        // openapi-contracts DeliveryReportRecipientSMSDto.json
        let dispatched = r#"{"type":"recipient_delivery_report_sms","batch_id":"01FC66621XXXXX119Z8PMV1QPQ","recipient":"+44231235674","code":401,"status":"Dispatched","at":"2022-08-30T08:16:08.930Z","operator":"operator","applied_originator":"applied originator","client_reference":"client reference","encoding":"encoding","number_of_message_parts":123,"operator_status_at":"2022-08-30T08:16:08.150Z"}"#;
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(dispatched)).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Sent);
        assert_eq!(u[0].error_code, None);

        let failed = json!({"type":"recipient_delivery_report_sms","batch_id":BATCH,"recipient":"447400123456","code":402,"status":"Failed","at":"2024-01-01T00:00:00Z","client_reference":MSG_ID}).to_string();
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(&failed)).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Undelivered);
        assert_eq!(u[0].error_code.as_deref(), Some("402"));
        assert!(u[0].description.as_deref().unwrap().contains("unroutable"));
        assert_eq!(u[0].client_ref.as_deref(), Some(MSG_ID));

        let unknown = json!({"type":"recipient_delivery_report_mms","batch_id":BATCH,"recipient":"447400123456","code":0,"status":"Unknown","at":"2024-01-01T00:00:00Z"}).to_string();
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(&unknown)).unwrap() else { panic!() };
        assert_eq!(u[0].status, DeliveryStatus::Sent);
        assert!(u[0].description.as_deref().unwrap().contains("no delivery receipt"));
    }

    #[test]
    fn parses_summary_reports() {
        // openapi-contracts deliveryreports/BatchDeliveryReportSMSDto.json
        let summary = r#"{"type":"delivery_report_sms","batch_id":"01FC66621XXXXX119Z8PMV1QPQ","statuses":[{"code":0,"count":1,"recipients":["44231235674"],"status":"Delivered"}],"total_message_count":1,"client_reference":"a client reference"}"#;
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(summary)).unwrap() else { panic!() };
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].provider_message_id.as_str(), BATCH);
        assert_eq!(u[0].status, DeliveryStatus::Delivered);
        assert!(u[0].description.as_deref().unwrap().contains("1 recipient"));
        assert!(!u[0].description.as_deref().unwrap().contains("44231235674"), "no numbers in descriptions");

        let two = json!({"type":"delivery_report_mms","batch_id":BATCH,"statuses":[
            {"code":0,"count":1,"recipients":["15551231234"],"status":"Delivered"},
            {"code":406,"count":1,"recipients":["15551256344"],"status":"Expired"}],"total_message_count":2})
        .to_string();
        let Callback::Status(u) = SinchAdapter.parse_callback(&webhook(&two)).unwrap() else { panic!() };
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].status, DeliveryStatus::Expired);
        assert_eq!(u[1].error_code.as_deref(), Some("406"));
        assert_eq!(u[1].client_ref, None);
    }

    #[test]
    fn parses_inbound() {
        // openapi-contracts inbounds/MOTextDto.json
        let mo = r#"{"body":"a body","client_reference":"a client reference","from":"+11203494390","id":"01FC66621XXXXX119Z8PMV1QPA","operator_id":"35000","received_at":"2019-08-24T14:17:22Z","sent_at":"2019-08-24T14:15:22Z","to":"11203453453","type":"mo_text"}"#;
        let Callback::Inbound(m) = SinchAdapter.parse_callback(&webhook(mo)).unwrap() else { panic!() };
        assert_eq!(m.provider_message_id, "01FC66621XXXXX119Z8PMV1QPA");
        assert_eq!(m.from, "+11203494390");
        assert_eq!(m.to, "+11203453453");
        assert_eq!(m.text, "a body");
        assert!(m.media.is_empty());
        assert_eq!(m.received_at.as_deref(), Some("2019-08-24T14:17:22Z"));
        assert!(m.provider_metadata.get("body").is_none());
        assert_eq!(m.provider_metadata["operator_id"], "35000");

        // openapi-contracts inbounds/InboundMediaDto.json
        let media = r#"{"body":{"subject":"mmy subject","message":"my message","media":[{"url":"https://foo.url","contentType":"content/type","status":"a status","code":1234}]},"client_reference":"a client reference","from":"+11203494390","id":"01FC66621XXXXX119Z8PMV1QPA","operator_id":"35000","received_at":"2019-08-24T14:17:22Z","sent_at":"2019-08-24T14:15:22Z","to":"11203453453","type":"mo_media"}"#;
        let Callback::Inbound(m) = SinchAdapter.parse_callback(&webhook(media)).unwrap() else { panic!() };
        assert_eq!(m.text, "my message");
        assert_eq!(
            m.media,
            vec![InboundMedia { url: "https://foo.url".into(), content_type: Some("content/type".into()) }]
        );
        assert!(m.provider_metadata["body"].get("message").is_none());
        assert_eq!(m.provider_metadata["body"]["media"][0]["url"], "https://foo.url");

        // Short codes keep their form.
        assert_eq!(msisdn("60123"), "60123");
    }

    #[test]
    fn odd_callbacks() {
        assert!(SinchAdapter.parse_callback(&webhook("{")).is_err());
        assert!(SinchAdapter.parse_callback(&webhook("{}")).is_err());
        assert!(
            SinchAdapter
                .parse_callback(&webhook(r#"{"type":"recipient_delivery_report_sms","status":"Delivered"}"#))
                .is_err()
        );
        assert!(matches!(
            SinchAdapter
                .parse_callback(&webhook(r#"{"type":"mo_binary","id":"x","from":"1","to":"2","body":"AAEC"}"#))
                .unwrap(),
            Callback::Ignored(_)
        ));
    }

    fn signed(body: &str, secret: &str, nonce: &str, ts: i64) -> WebhookRequest {
        let mut r = webhook(body);
        let sig = signatures::hmac_sha256(
            secret.as_bytes(),
            &[body.as_bytes(), b".", nonce.as_bytes(), b".", ts.to_string().as_bytes()],
        );
        r.headers.push(("x-sinch-webhook-signature".into(), signatures::encode_base64(&sig)));
        r.headers.push(("x-sinch-webhook-signature-nonce".into(), nonce.into()));
        r.headers.push(("x-sinch-webhook-signature-timestamp".into(), ts.to_string()));
        r.headers.push(("x-sinch-webhook-signature-algorithm".into(), "HmacSHA256".into()));
        r
    }

    #[test]
    fn verifies_the_sdk_vector() {
        let mut r = webhook(RECIPIENT_DLR);
        r.headers.push(("x-sinch-webhook-signature".into(), "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=".into()));
        r.headers.push(("x-sinch-webhook-signature-nonce".into(), "01JHFFHWYY7HSS4FWTMDTQEK8V".into()));
        r.headers.push(("x-sinch-webhook-signature-timestamp".into(), "1736760161".into()));
        r.headers.push(("x-sinch-webhook-signature-algorithm".into(), "HmacSHA256".into()));
        assert_eq!(SinchAdapter.verify_callback(&sinch(None, None), &r, 1_736_760_161 + 60), Ok(()));
        assert!(SinchAdapter.verify_callback(&sinch(None, None), &r, 1_736_760_161 + 301).is_err());
        assert_eq!(SinchAdapter.replay_key(&r).as_deref(), Some("01JHFFHWYY7HSS4FWTMDTQEK8V"));
    }

    #[test]
    fn refuses_forgeries() {
        let now = 1_700_000_000;
        let good = signed(RECIPIENT_DLR, "SMSWebhooksSecret", "01JHFFHWYY7HSS4FWTMDTQEK8V", now);
        assert_eq!(SinchAdapter.verify_callback(&sinch(None, None), &good, now), Ok(()));
        let wrong_key = signed(RECIPIENT_DLR, "another", "01JHFFHWYY7HSS4FWTMDTQEK8V", now);
        assert!(SinchAdapter.verify_callback(&sinch(None, None), &wrong_key, now).is_err());
        let mut tampered = good.clone();
        tampered.body = RECIPIENT_DLR.replace("Delivered", "Failed").into_bytes();
        assert!(SinchAdapter.verify_callback(&sinch(None, None), &tampered, now).is_err());
        let mut no_nonce = good.clone();
        no_nonce.headers.retain(|(k, _)| k != NONCE_HEADER);
        assert!(SinchAdapter.verify_callback(&sinch(None, None), &no_nonce, now).is_err());
        assert_eq!(SinchAdapter.replay_key(&no_nonce), None);
        let stale = signed(RECIPIENT_DLR, "SMSWebhooksSecret", "n", now - 3600);
        assert!(SinchAdapter.verify_callback(&sinch(None, None), &stale, now).is_err());
        let telnyx = Credentials::Telnyx(TelnyxCredentials {
            api_key: Secret::new("k"),
            public_key: "x".into(),
            messaging_profile_id: None,
            api_base_url: None,
        });
        assert!(matches!(SinchAdapter.verify_callback(&telnyx, &good, now), Err(VerifyError::SecretUnusable(_))));
    }

    #[test]
    fn capabilities_are_declared() {
        let c = SinchAdapter.capabilities();
        assert!(c.sms && c.mms && c.inbound && c.status_callbacks && c.alphanumeric_sender);
        assert_eq!(c.max_media, 1);
        assert_eq!(SinchAdapter.kind(), ProviderKind::Sinch);
    }
}
