//! A fake Telnyx Messaging v2 API on loopback.
//!
//! `POST /v2/messages` is checked the way Telnyx checks it (Bearer API key, JSON,
//! `to` in +E.164, `text` for SMS, a messaging profile for alphanumeric senders) and
//! answered with Telnyx's shapes: `200 {"data": <outbound message>}` or
//! `{"errors":[{code, title, detail, source}]}`. Sends consume scripted [`Outcome`]s
//! (default: accept). Callbacks are built in Telnyx's webhook envelope and signed
//! with a fixed Ed25519 key (`telnyx-signature-ed25519` over `timestamp|body`), the
//! public half of which goes into the tenant's credentials.

use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{Secret, TelnyxCredentials};
use dispatch_local::http_server::{Request, Server, handler, json, serve_loopback};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_KEY: &str = "KEY0183TESTTELNYXFAKE_abc123";
pub const MESSAGING_PROFILE_ID: &str = "4000eba1-a0c0-4563-9925-b25e842a7cb6";
/// The fake's webhook signing key (never a real one).
pub const SIGNING_KEY: [u8; 32] = [0x42; 32];
/// A key Telnyx never signs with, for forgeries.
const OTHER_KEY: [u8; 32] = [0x24; 32];

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `200` with the message (`to[0].status = "queued"`).
    Accept,
    /// `429` with error 10011 and `Retry-After: <secs>`.
    RateLimited(u64),
    /// This status (5xx) with error 10007 "Unexpected error".
    ServerError(u16),
    /// `400` with this Telnyx error code (e.g. `10002`).
    Permanent(String),
    /// Sleep this long, then accept (the caller should have given up by then).
    Timeout(Duration),
}

/// Ways to get a callback wrong, as an attacker or a misconfiguration would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a key that is not the account's.
    WrongKey,
    /// Properly signed, then the body changed.
    TamperedBody,
    /// Properly signed, ten minutes ago.
    StaleTimestamp,
    /// No `telnyx-signature-ed25519` header.
    MissingSignature,
    /// No `telnyx-timestamp` header.
    MissingTimestamp,
}

/// What the fake remembers of an accepted message, for its callbacks.
#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
    kind: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Outcome>>,
    sent: Mutex<HashMap<String, Sent>>,
}

pub struct FakeTelnyx {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakeTelnyx {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake telnyx binds");
        FakeTelnyx { server, state, client: reqwest::Client::new() }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request the fake received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Queues outcomes; each send consumes one. With the queue empty, sends are accepted.
    pub fn script(&self, outcomes: Vec<Outcome>) {
        self.state.script.lock().unwrap().extend(outcomes);
    }

    /// Base64 of the raw public key matching [`SIGNING_KEY`] (what Mission Control shows).
    pub fn public_key_b64() -> String {
        b64(SigningKey::from_bytes(&SIGNING_KEY).verifying_key().as_bytes())
    }

    /// Tenant credentials pointing at this fake.
    pub fn credentials(&self, messaging_profile_id: Option<&str>) -> Credentials {
        Credentials::Telnyx(TelnyxCredentials {
            api_key: Secret::new(API_KEY),
            public_key: Self::public_key_b64(),
            messaging_profile_id: messaging_profile_id.map(str::to_owned),
            api_base_url: Some(self.base_url()),
        })
    }

    /// The webhook body Telnyx sends for a per-recipient `status` of a message:
    /// `message.sent` for queued/sending/sent, `message.finalized` otherwise, with
    /// `errors[]` carrying `error_code` when given.
    pub fn status_callback_body(&self, provider_message_id: &str, status: &str, error_code: Option<&str>) -> String {
        let sent = self.state.sent.lock().unwrap().get(provider_message_id).cloned();
        let (from, to, kind) = match sent {
            Some(s) => (s.from, s.to, s.kind),
            None => ("+18445550001".into(), "+18665550001".into(), "SMS".into()),
        };
        let event_type =
            if matches!(status, "queued" | "sending" | "sent") { "message.sent" } else { "message.finalized" };
        let errors = match error_code {
            Some(code) => {
                json!([{"code": code, "title": delivery_error_title(code), "detail": delivery_error_title(code)}])
            }
            None => json!([]),
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        let finalized = event_type == "message.finalized";
        json!({
            "data": {
                "event_type": event_type,
                "id": uuid(),
                "occurred_at": now,
                "payload": {
                    "cc": [],
                    "completed_at": if finalized { json!(now) } else { Value::Null },
                    "cost": {"amount": "0.0040", "currency": "USD"},
                    "direction": "outbound",
                    "encoding": "GSM-7",
                    "errors": errors,
                    "from": {"carrier": "Telnyx", "line_type": "VoIP", "phone_number": from},
                    "id": provider_message_id,
                    "media": [],
                    "messaging_profile_id": MESSAGING_PROFILE_ID,
                    "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
                    "parts": 1,
                    "received_at": now,
                    "record_type": "message",
                    "sent_at": now,
                    "tags": [],
                    "text": "",
                    "to": [{"carrier": "T-MOBILE USA, INC.", "line_type": "Wireless", "phone_number": to, "status": status}],
                    "type": kind,
                    "valid_until": null,
                    "webhook_failover_url": null,
                    "webhook_url": null
                },
                "record_type": "event"
            },
            "meta": {"attempt": 1, "delivered_to": "redacted"}
        })
        .to_string()
    }

    /// A `message.received` webhook body (inbound SMS/MMS to our number `to`).
    pub fn inbound_body(from: &str, to: &str, text: &str, media: &[(&str, &str)]) -> String {
        let media: Vec<Value> = media
            .iter()
            .map(|(url, ct)| json!({"url": url, "content_type": ct, "hash_sha256": null, "size": 1024}))
            .collect();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        json!({
            "data": {
                "event_type": "message.received",
                "id": uuid(),
                "occurred_at": now,
                "payload": {
                    "cc": [],
                    "completed_at": null,
                    "cost": null,
                    "direction": "inbound",
                    "encoding": "GSM-7",
                    "errors": [],
                    "from": {"carrier": "T-MOBILE USA, INC.", "line_type": "Wireless", "phone_number": from},
                    "id": uuid(),
                    "media": media,
                    "messaging_profile_id": MESSAGING_PROFILE_ID,
                    "parts": 1,
                    "received_at": now,
                    "record_type": "message",
                    "sent_at": null,
                    "tags": [],
                    "text": text,
                    "to": [{"carrier": "Telnyx", "line_type": "VoIP", "phone_number": to, "status": "webhook_delivered"}],
                    "type": if media.is_empty() { "SMS" } else { "MMS" },
                    "valid_until": null,
                    "webhook_failover_url": null,
                    "webhook_url": null
                },
                "record_type": "event"
            },
            "meta": {"attempt": 1, "delivered_to": "redacted"}
        })
        .to_string()
    }

    /// Signs `body` at `timestamp` with the fake's key: the two Telnyx headers.
    pub fn sign(body: &str, timestamp: i64) -> Vec<(String, String)> {
        sign_with(&SIGNING_KEY, body, timestamp)
    }

    /// POSTs a signed status callback for a message, as Telnyx would.
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> reqwest::Response {
        let body = self.status_callback_body(provider_message_id, status, error_code);
        self.post_signed(callback_url, &body).await
    }

    /// POSTs a signed inbound message webhook.
    pub async fn send_inbound(&self, callback_url: &str, from: &str, to: &str, text: &str) -> reqwest::Response {
        self.post_signed(callback_url, &Self::inbound_body(from, to, text, &[])).await
    }

    /// POSTs `body` signed now.
    pub async fn post_signed(&self, url: &str, body: &str) -> reqwest::Response {
        let headers = Self::sign(body, chrono::Utc::now().timestamp());
        self.post(url, headers, body.to_owned()).await
    }

    /// POSTs a status callback that is wrong in the way `forgery` says.
    pub async fn send_forged_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        forgery: Forgery,
    ) -> reqwest::Response {
        let body = self.status_callback_body(provider_message_id, status, None);
        let now = chrono::Utc::now().timestamp();
        let (headers, body) = match forgery {
            Forgery::WrongKey => (sign_with(&OTHER_KEY, &body, now), body),
            Forgery::TamperedBody => {
                let h = Self::sign(&body, now);
                (
                    h,
                    body.replacen(&format!("\"status\":\"{status}\""), "\"status\":\"delivered\"", 1)
                        .replace("\"parts\":1", "\"parts\":2"),
                )
            }
            Forgery::StaleTimestamp => (Self::sign(&body, now - 600), body),
            Forgery::MissingSignature => {
                (Self::sign(&body, now).into_iter().filter(|(k, _)| k != "telnyx-signature-ed25519").collect(), body)
            }
            Forgery::MissingTimestamp => {
                (Self::sign(&body, now).into_iter().filter(|(k, _)| k != "telnyx-timestamp").collect(), body)
            }
        };
        self.post(callback_url, headers, body).await
    }

    async fn post(&self, url: &str, headers: Vec<(String, String)>, body: String) -> reqwest::Response {
        let mut rb =
            self.client.post(url).header("content-type", "application/json").header("user-agent", "telnyx-webhooks");
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.body(body).send().await.expect("callback receiver reachable")
    }
}

fn sign_with(key: &[u8; 32], body: &str, timestamp: i64) -> Vec<(String, String)> {
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'|');
    signed.extend_from_slice(body.as_bytes());
    let sig = SigningKey::from_bytes(key).sign(&signed);
    vec![("telnyx-timestamp".into(), timestamp.to_string()), ("telnyx-signature-ed25519".into(), b64(&sig.to_bytes()))]
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    if req.method != http::Method::POST || req.uri.path() != "/v2/messages" {
        return error(404, "10005", "Resource not found", "The requested resource or URL could not be found.", None);
    }
    if req.header("authorization") != Some(&format!("Bearer {API_KEY}")) {
        return error(
            401,
            "10009",
            "Authentication failed",
            "The required authentication headers were either invalid or not included in the request.",
            None,
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "10015", "Bad Request", "The request failed because it was not well-formed.", None);
    };
    let Some(to) = body["to"].as_str() else {
        return error(400, "10004", "Missing required parameter", "The 'to' parameter is required.", Some("/to"));
    };
    if !is_e164(to) {
        return error(
            400,
            "10016",
            "Phone number must be in +E.164 format",
            "The specified phone number parameter must be in +E.164 format.",
            Some("/to"),
        );
    }
    let from = body["from"].as_str().unwrap_or_default().to_owned();
    if from.is_empty() && body["messaging_profile_id"].as_str().is_none() {
        return error(400, "10004", "Missing required parameter", "The 'from' parameter is required.", Some("/from"));
    }
    let alphanumeric = !from.is_empty() && !from.starts_with('+') && !from.bytes().all(|b| b.is_ascii_digit());
    if alphanumeric && body["messaging_profile_id"].as_str().is_none() {
        return error(
            400,
            "10004",
            "Missing required parameter",
            "'messaging_profile_id' is required when sending with an alphanumeric sender ID.",
            Some("/messaging_profile_id"),
        );
    }
    let kind = match body["type"].as_str() {
        Some("MMS") => "MMS",
        Some("SMS") | None if body["media_urls"].as_array().is_some_and(|m| !m.is_empty()) => "MMS",
        _ => "SMS",
    };
    if kind == "SMS" && body["text"].as_str().is_none_or(str::is_empty) {
        return error(400, "10004", "Missing required parameter", "'text' is required for SMS.", Some("/text"));
    }

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(Outcome::Accept);
    match outcome {
        Outcome::Accept => accept(state, &body, &from, to, kind),
        Outcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept(state, &body, &from, to, kind)
        }
        Outcome::RateLimited(secs) => {
            let mut r = error(
                429,
                "10011",
                "Too many requests",
                "You have exceeded the maximum number of allowed requests.",
                None,
            );
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Outcome::ServerError(status) => {
            error(status, "10007", "Unexpected error", "An unexpected error occured.", None)
        }
        Outcome::Permanent(code) => {
            let (title, pointer) = api_error_title(&code);
            error(400, &code, title, title, pointer)
        }
    }
}

fn accept(state: &State, body: &Value, from: &str, to: &str, kind: &str) -> http::Response<bytes::Bytes> {
    let id = uuid();
    state
        .sent
        .lock()
        .unwrap()
        .insert(id.clone(), Sent { from: from.to_owned(), to: to.to_owned(), kind: kind.to_owned() });
    let text = body["text"].as_str().unwrap_or_default();
    let parts = match text.chars().count() {
        0..=160 => 1,
        n => n.div_ceil(153),
    };
    let media: Vec<Value> = body["media_urls"]
        .as_array()
        .map(|m| m.iter().map(|u| json!({"url": u, "content_type": null, "sha256": null, "size": null})).collect())
        .unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json(
        200,
        &json!({
            "data": {
                "record_type": "message",
                "direction": "outbound",
                "id": id,
                "type": kind,
                "messaging_profile_id": body["messaging_profile_id"].as_str().unwrap_or(MESSAGING_PROFILE_ID),
                "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
                "from": {"phone_number": from, "carrier": "TELNYX LLC", "line_type": "VoIP"},
                "to": [{"phone_number": to, "status": "queued", "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"}],
                "cc": [],
                "text": text,
                "subject": body["subject"].clone(),
                "media": media,
                "webhook_url": body["webhook_url"].clone(),
                "webhook_failover_url": body["webhook_failover_url"].clone(),
                "encoding": "GSM-7",
                "parts": parts,
                "tags": [],
                "cost": null,
                "received_at": now,
                "sent_at": null,
                "completed_at": null,
                "valid_until": null,
                "errors": []
            }
        }),
    )
}

fn error(status: u16, code: &str, title: &str, detail: &str, pointer: Option<&str>) -> http::Response<bytes::Bytes> {
    let mut e = json!({
        "code": code,
        "title": title,
        "detail": detail,
        "meta": {"url": format!("https://developers.telnyx.com/docs/overview/errors/{code}")}
    });
    if let Some(p) = pointer {
        e["source"] = json!({"pointer": p});
    }
    json(status, &json!({"errors": [e]}))
}

/// Titles of the Telnyx API error codes the fake can be scripted with.
fn api_error_title(code: &str) -> (&'static str, Option<&'static str>) {
    match code {
        "10001" => ("Inactive phone number", Some("/to")),
        "10002" => ("Invalid phone number", Some("/to")),
        "10004" => ("Missing required parameter", None),
        "10009" => ("Authentication failed", None),
        "10010" => ("Authorization failed", None),
        "10015" => ("Bad Request", None),
        "10016" => ("Phone number must be in +E.164 format", Some("/to")),
        _ => ("Invalid request", None),
    }
}

/// Titles of the delivery error codes used in callbacks (Telnyx messaging error codes).
fn delivery_error_title(code: &str) -> &'static str {
    match code {
        "40001" => "Not routable",
        "40002" => "Blocked as spam - temporary",
        "40003" => "Blocked as spam - permanent",
        "40004" => "Rejected by destination",
        "40005" => "Message expired during transmission",
        "40006" => "Recipient server unavailable",
        "40008" => "Undeliverable",
        "40009" => "Invalid message body",
        "40011" => "Too many requests",
        "40012" => "Invalid messaging destination number",
        "40013" => "Invalid messaging source number",
        "40014" => "Message expired in queue",
        _ => "Delivery failed",
    }
}

fn is_e164(s: &str) -> bool {
    s.len() >= 8
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].bytes().all(|b| b.is_ascii_digit())
        && !s[1..].starts_with('0')
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A version-4-shaped UUID, unique within the process.
fn uuid() -> String {
    use sha2::Digest as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h = sha2::Sha256::digest(format!("telnyx-fake:{n}:{t}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}
