//! A fake Bandwidth Messaging v2 API on loopback.
//!
//! `POST /api/v2/users/{accountId}/messages` is checked the way Bandwidth checks it
//! (HTTP Basic API credentials, the account in the path, `application/json`,
//! `applicationId`/`to[]`/`from` present and valid) and answered with Bandwidth's
//! shapes: `202` with the `message` object, or `{"type", "description"[, "fieldErrors"]}`
//! (errors.mdx). Sends consume scripted [`Outcome`]s (default: accept). Callbacks are
//! JSON arrays of events (webhooks.mdx) sent with the HTTP Basic credentials
//! configured on the Bandwidth application; Bandwidth signs nothing.

use base64::Engine as _;
use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{BandwidthCredentials, Secret};
use dispatch_local::http_server::{Request, Server, handler, json, serve_loopback};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACCOUNT_ID: &str = "9900000";
pub const API_USERNAME: &str = "api-user-fake";
pub const API_PASSWORD: &str = "api-password-fake";
pub const APPLICATION_ID: &str = "93de2206-9669-4e07-948d-329f4b722ee2";
pub const CALLBACK_USERNAME: &str = "bw-callback-user";
pub const CALLBACK_PASSWORD: &str = "bw-callback-password";

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `202` with the message.
    Accept,
    /// `429 max-message-queue-size-exceeded` with `Retry-After: <secs>`.
    RateLimited(u64),
    /// This status (5xx) with a Bandwidth error body.
    ServerError(u16),
    /// This error `type` (`request-validation` → 400, `unauthorized` → 401,
    /// `forbidden` → 403, `unsupported-content-type` → 415, anything else → 400).
    Permanent(String),
    /// Sleep this long, then accept.
    Timeout(Duration),
}

/// Ways to get a callback wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Basic credentials that are not the application's.
    WrongCredentials,
    /// No `Authorization` header at all.
    MissingAuthorization,
    /// The API user's credentials instead of the callback ones.
    ApiCredentials,
}

#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
    tag: Option<String>,
    media: Vec<String>,
    segments: u64,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Outcome>>,
    sent: Mutex<HashMap<String, Sent>>,
}

pub struct FakeBandwidth {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakeBandwidth {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake bandwidth binds");
        FakeBandwidth { server, state, client: reqwest::Client::new() }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn script(&self, outcomes: Vec<Outcome>) {
        self.state.script.lock().unwrap().extend(outcomes);
    }

    /// Tenant credentials pointing at this fake.
    pub fn credentials(&self) -> Credentials {
        Credentials::Bandwidth(BandwidthCredentials {
            account_id: ACCOUNT_ID.into(),
            username: API_USERNAME.into(),
            password: Secret::new(API_PASSWORD),
            application_id: APPLICATION_ID.into(),
            callback_username: CALLBACK_USERNAME.into(),
            callback_password: Secret::new(CALLBACK_PASSWORD),
            api_base_url: Some(self.base_url()),
        })
    }

    /// One callback event for a message. `event_type` is Bandwidth's
    /// (`message-sending`, `message-delivered`, `message-failed`, `message-read`…);
    /// `error_code` goes in `errorCode` (message-failed).
    pub fn event(&self, provider_message_id: &str, event_type: &str, error_code: Option<u32>) -> Value {
        let sent = self.state.sent.lock().unwrap().get(provider_message_id).cloned();
        let sent = sent.unwrap_or(Sent {
            from: "+15552221111".into(),
            to: "+15554443333".into(),
            tag: None,
            media: Vec::new(),
            segments: 1,
        });
        let description = match (event_type, error_code) {
            ("message-sending", _) => "Message is sending to carrier".to_owned(),
            ("message-delivered", _) => "ok".to_owned(),
            ("message-failed", Some(c)) => failure_description(c).to_owned(),
            ("message-failed", None) => "message-failed".to_owned(),
            _ => "ok".to_owned(),
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut message = json!({
            "id": provider_message_id,
            "owner": sent.from,
            "applicationId": APPLICATION_ID,
            "time": now,
            "segmentCount": sent.segments,
            "direction": "out",
            "to": [sent.to],
            "from": sent.from,
            "text": "",
            "priority": "default"
        });
        if let Some(tag) = sent.tag {
            message["tag"] = json!(tag);
        }
        if !sent.media.is_empty() {
            message["media"] = json!(sent.media);
        }
        let mut ev = json!({
            "time": now,
            "type": event_type,
            "to": sent.to,
            "description": description,
            "message": message
        });
        if let Some(c) = error_code {
            ev["errorCode"] = json!(c);
        }
        ev
    }

    /// A `message-received` event for an inbound SMS/MMS to our number `to`.
    pub fn inbound_event(from: &str, to: &str, text: &str, media: &[&str]) -> Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut message = json!({
            "id": message_id(),
            "time": now,
            "to": [to],
            "from": from,
            "text": text,
            "applicationId": APPLICATION_ID,
            "owner": to,
            "direction": "in",
            "segmentCount": 1
        });
        if !media.is_empty() {
            message["media"] = json!(media);
        }
        json!({
            "type": "message-received",
            "time": now,
            "description": "Incoming message received",
            "to": to,
            "message": message
        })
    }

    /// The `Authorization` value Bandwidth sends with callbacks.
    pub fn callback_authorization() -> String {
        basic(CALLBACK_USERNAME, CALLBACK_PASSWORD)
    }

    /// POSTs a one-event status callback (`[event]`) with the application's credentials.
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        event_type: &str,
        error_code: Option<u32>,
    ) -> reqwest::Response {
        let body = json!([self.event(provider_message_id, event_type, error_code)]);
        self.post(callback_url, Some(Self::callback_authorization()), body.to_string()).await
    }

    /// POSTs one callback carrying several events, as Bandwidth may.
    pub async fn send_events(&self, callback_url: &str, events: Vec<Value>) -> reqwest::Response {
        self.post(callback_url, Some(Self::callback_authorization()), Value::Array(events).to_string()).await
    }

    /// POSTs an inbound message callback.
    pub async fn send_inbound(&self, callback_url: &str, from: &str, to: &str, text: &str) -> reqwest::Response {
        let body = json!([Self::inbound_event(from, to, text, &[])]);
        self.post(callback_url, Some(Self::callback_authorization()), body.to_string()).await
    }

    /// POSTs a status callback whose authentication is wrong in the way `forgery` says.
    pub async fn send_forged_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        event_type: &str,
        forgery: Forgery,
    ) -> reqwest::Response {
        let body = json!([self.event(provider_message_id, event_type, None)]).to_string();
        let auth = match forgery {
            Forgery::WrongCredentials => Some(basic(CALLBACK_USERNAME, "guessed-password")),
            Forgery::MissingAuthorization => None,
            Forgery::ApiCredentials => Some(basic(API_USERNAME, API_PASSWORD)),
        };
        self.post(callback_url, auth, body).await
    }

    async fn post(&self, url: &str, authorization: Option<String>, body: String) -> reqwest::Response {
        let mut rb = self
            .client
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("user-agent", "BandwidthAPI/v2");
        if let Some(a) = authorization {
            rb = rb.header("authorization", a);
        }
        rb.body(body).send().await.expect("callback receiver reachable")
    }
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    let path = req.uri.path().to_owned();
    let Some(account) = path.strip_prefix("/api/v2/users/").and_then(|p| p.strip_suffix("/messages")) else {
        return not_found(&path);
    };
    if req.method != http::Method::POST {
        return not_found(&path);
    }
    if req.header("authorization") != Some(basic(API_USERNAME, API_PASSWORD).as_str()) {
        return error(401, "unauthorized", "Authentication Failed", &[]);
    }
    if account != ACCOUNT_ID {
        return error(403, "forbidden", "Access Denied", &[]);
    }
    let ct = req.header("content-type").unwrap_or_default();
    if !ct.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json") {
        return error(
            415,
            "unsupported-content-type",
            &format!("Content type '{ct}' not supported. Please use 'application/json'"),
            &[],
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "request-validation", "Your request could not be accepted", &[]);
    };

    let mut field_errors = Vec::new();
    match body["applicationId"].as_str() {
        None => field_errors.push(("applicationId", "'applicationId' must not be null".to_owned())),
        Some(a) if a != APPLICATION_ID => {
            field_errors.push(("applicationId", format!("'{a}' is not a valid application for this account")))
        }
        Some(_) => {}
    }
    let to: Vec<String> = match &body["to"] {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    if to.is_empty() {
        field_errors.push(("to", "'to' must not be empty".to_owned()));
    }
    for t in &to {
        if !is_e164(t) {
            field_errors.push(("to", format!("'{t}' must be replaced with a valid E164 formatted telephone number")));
        }
    }
    let from = body["from"].as_str().unwrap_or_default().to_owned();
    if from.is_empty() {
        field_errors.push(("from", "'from' must not be null".to_owned()));
    }
    let media: Vec<String> = body["media"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let text = body["text"].as_str().unwrap_or_default();
    if text.is_empty() && media.is_empty() {
        field_errors.push(("text", "'text' or 'media' must be provided".to_owned()));
    }
    if text.chars().count() > 2048 {
        field_errors.push(("text", "'text' must be 2048 characters or less".to_owned()));
    }
    if !field_errors.is_empty() {
        return error(400, "request-validation", "Your request could not be accepted", &field_errors);
    }

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(Outcome::Accept);
    match outcome {
        Outcome::Accept => accept(state, &body, from, to, media),
        Outcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept(state, &body, from, to, media)
        }
        Outcome::RateLimited(secs) => {
            let mut r = error(
                429,
                "max-message-queue-size-exceeded",
                "The SMS queue for your account is full and cannot accept more messages right now. Your allowed rate is 60 messages per minute. The capacity of this queue is 900 messages (15 minutes). Reduce your message sending rate, or contact support to increase your allowed rate.",
                &[],
            );
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Outcome::ServerError(status) => {
            error(status, "internal-server-error", "An internal server error occurred", &[])
        }
        Outcome::Permanent(kind) => {
            let status = match kind.as_str() {
                "unauthorized" => 401,
                "forbidden" => 403,
                "unsupported-content-type" => 415,
                _ => 400,
            };
            error(status, &kind, "Your request could not be accepted", &[])
        }
    }
}

fn accept(
    state: &State,
    body: &Value,
    from: String,
    to: Vec<String>,
    media: Vec<String>,
) -> http::Response<bytes::Bytes> {
    let id = message_id();
    let text = body["text"].as_str().unwrap_or_default();
    let segments = if !media.is_empty() {
        1
    } else {
        match text.chars().count() {
            0..=160 => 1,
            n => n.div_ceil(153) as u64,
        }
    };
    state.sent.lock().unwrap().insert(
        id.clone(),
        Sent {
            from: from.clone(),
            to: to.first().cloned().unwrap_or_default(),
            tag: body["tag"].as_str().map(str::to_owned),
            media: media.clone(),
            segments,
        },
    );
    let mut message = json!({
        "id": id,
        "owner": from,
        "applicationId": APPLICATION_ID,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "segmentCount": segments,
        "direction": "out",
        "to": to,
        "from": from,
        "media": media,
        "text": text,
        "priority": body["priority"].as_str().unwrap_or("default")
    });
    for k in ["tag", "expiration"] {
        if let Some(v) = body.get(k) {
            message[k] = v.clone();
        }
    }
    json(202, &message)
}

fn error(status: u16, kind: &str, description: &str, field_errors: &[(&str, String)]) -> http::Response<bytes::Bytes> {
    let mut e = json!({"type": kind, "description": description});
    if !field_errors.is_empty() {
        e["fieldErrors"] =
            field_errors.iter().map(|(f, d)| json!({"fieldName": f, "description": d})).collect::<Vec<_>>().into();
    }
    json(status, &e)
}

/// Bandwidth's 404 is Spring's default body (errors.mdx).
fn not_found(path: &str) -> http::Response<bytes::Bytes> {
    json(
        404,
        &json!({
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
            "status": 404,
            "error": "Not Found",
            "message": "Not Found",
            "path": path
        }),
    )
}

fn failure_description(code: u32) -> &'static str {
    match code {
        4360 => "message-not-sent-expiration-date-passed",
        4405 => "rejected-unallocated-from-number",
        4406 => "rejected-unallocated-to-number",
        4432 => "rejected-forbidden-country",
        4470 => "rejected-spam-detected",
        4702 => "destination-subscriber-unavailable",
        4720 => "invalid-destination-address",
        4775 => "destination-rejected-due-to-user-opt-out",
        5600 => "destination-carrier-queue-full",
        9902 => "delivery-receipt-expired",
        _ => "unknown-error",
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

fn is_e164(s: &str) -> bool {
    s.len() >= 8
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].bytes().all(|b| b.is_ascii_digit())
        && !s[1..].starts_with('0')
}

/// A Bandwidth-shaped message id: epoch milliseconds then 16 lowercase letters/digits
/// (e.g. `1589228074636lm4k2je7j7jklbn2`).
fn message_id() -> String {
    use sha2::Digest as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let h = sha2::Sha256::digest(format!("bandwidth-fake:{n}:{}", now.as_nanos()).as_bytes());
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = h.iter().take(16).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{}{suffix}", now.as_millis())
}
