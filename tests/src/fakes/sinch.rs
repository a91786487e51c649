//! A fake Sinch SMS REST API (XMS) on loopback.
//!
//! `POST /xms/v1/{service_plan_id}/batches` is checked the way XMS checks it (Bearer
//! API token, the service plan in the path, JSON with `to[]` MSISDNs and a `body`) and
//! answered with XMS's shapes: `201` with the batch, or `{"code", "text"}` for 400/403
//! (status-codes page, openapi-contracts `error-response.json`). Sends consume
//! scripted [`Outcome`]s (default: accept). Callbacks (`recipient_delivery_report_sms`,
//! `delivery_report_sms`, `mo_text`) are signed like Sinch signs them:
//! `x-sinch-webhook-signature = base64(HMAC-SHA256(secret, body.nonce.timestamp))`.
//!
//! XMS documents no body for 401, 429 or 5xx; the fake sends an empty 401 and the
//! `{code, text}` shape for the others.

use base64::Engine as _;
use dispatch_common::domain::MessageId;
use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{Secret, SinchCredentials};
use dispatch_local::http_server::{Request, Server, handler, json, respond, serve_loopback};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SERVICE_PLAN_ID: &str = "jd63jf88477ll123ab4567cd89";
pub const API_TOKEN: &str = "sinch-fake-api-token-0001";
pub const WEBHOOK_SECRET: &str = "sinch-fake-webhook-secret";

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `201` with the batch.
    Accept,
    /// `429` with `Retry-After: <secs>`.
    RateLimited(u64),
    /// This status (5xx).
    ServerError(u16),
    /// This XMS error code: `syntax_*` codes answer 400, the rest 403
    /// (`blocked_account`, `illegal_number_type`, …).
    Permanent(String),
    /// Sleep this long, then accept.
    Timeout(Duration),
}

/// Ways to get a callback wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a secret that is not the tenant's.
    WrongSecret,
    /// Properly signed, then the body changed.
    TamperedBody,
    /// Properly signed, an hour ago.
    StaleTimestamp,
    /// No nonce header.
    MissingNonce,
    /// No signature header.
    MissingSignature,
}

#[derive(Debug, Clone)]
struct Sent {
    to: String,
    client_reference: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Outcome>>,
    sent: Mutex<HashMap<String, Sent>>,
}

pub struct FakeSinch {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakeSinch {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake sinch binds");
        FakeSinch { server, state, client: reqwest::Client::new() }
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
        Credentials::Sinch(SinchCredentials {
            service_plan_id: SERVICE_PLAN_ID.into(),
            api_token: Secret::new(API_TOKEN),
            region: Some("eu".into()),
            webhook_secret: Secret::new(WEBHOOK_SECRET),
            api_base_url: Some(self.base_url()),
        })
    }

    /// A `recipient_delivery_report_sms` for a batch. `status` is Sinch's word
    /// (`Dispatched`, `Delivered`, `Failed`, `Expired`, …) and `code` its report code
    /// (0 delivered, 401 dispatched, 402 unroutable…).
    pub fn recipient_report_body(&self, batch_id: &str, status: &str, code: u32) -> String {
        let sent = self.state.sent.lock().unwrap().get(batch_id).cloned();
        let (recipient, client_reference) = match sent {
            Some(s) => (s.to.trim_start_matches('+').to_owned(), s.client_reference),
            None => ("447400123456".to_owned(), None),
        };
        let now = chrono::Utc::now();
        let mut v = json!({
            "at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "batch_id": batch_id,
            "code": code,
            "operator_status_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "recipient": recipient,
            "status": status,
            "type": "recipient_delivery_report_sms"
        });
        if let Some(c) = client_reference {
            v["client_reference"] = json!(c);
        }
        v.to_string()
    }

    /// A `delivery_report_sms` summary for a batch with one status bucket.
    pub fn summary_report_body(&self, batch_id: &str, status: &str, code: u32) -> String {
        let sent = self.state.sent.lock().unwrap().get(batch_id).cloned();
        let (recipient, client_reference) = match sent {
            Some(s) => (s.to.trim_start_matches('+').to_owned(), s.client_reference),
            None => ("447400123456".to_owned(), None),
        };
        let mut v = json!({
            "type": "delivery_report_sms",
            "batch_id": batch_id,
            "statuses": [{"code": code, "count": 1, "recipients": [recipient], "status": status}],
            "total_message_count": 1
        });
        if let Some(c) = client_reference {
            v["client_reference"] = json!(c);
        }
        v.to_string()
    }

    /// An `mo_text` inbound message to our number `to` (Sinch writes it without `+`).
    pub fn inbound_body(from: &str, to: &str, text: &str) -> String {
        let now = chrono::Utc::now();
        json!({
            "body": text,
            "from": from,
            "id": MessageId::new().to_string(),
            "operator_id": "23410",
            "received_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "sent_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "to": to.trim_start_matches('+'),
            "type": "mo_text"
        })
        .to_string()
    }

    /// The four Sinch signature headers for `body`.
    pub fn sign(body: &str, nonce: &str, timestamp: i64) -> Vec<(String, String)> {
        sign_with(WEBHOOK_SECRET, body, nonce, timestamp)
    }

    /// POSTs a signed per-recipient delivery report, as Sinch would.
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        batch_id: &str,
        status: &str,
        code: u32,
    ) -> reqwest::Response {
        let body = self.recipient_report_body(batch_id, status, code);
        self.post_signed(callback_url, &body).await
    }

    /// POSTs a signed summary delivery report.
    pub async fn send_summary_callback(
        &self,
        callback_url: &str,
        batch_id: &str,
        status: &str,
        code: u32,
    ) -> reqwest::Response {
        let body = self.summary_report_body(batch_id, status, code);
        self.post_signed(callback_url, &body).await
    }

    /// POSTs a signed inbound message.
    pub async fn send_inbound(&self, callback_url: &str, from: &str, to: &str, text: &str) -> reqwest::Response {
        self.post_signed(callback_url, &Self::inbound_body(from, to, text)).await
    }

    /// POSTs `body` signed now with a fresh nonce.
    pub async fn post_signed(&self, url: &str, body: &str) -> reqwest::Response {
        let headers = Self::sign(body, &nonce(), chrono::Utc::now().timestamp());
        self.post(url, headers, body.to_owned()).await
    }

    /// POSTs `body` with exactly these headers (replays, hand-made forgeries).
    pub async fn post_with_headers(&self, url: &str, headers: Vec<(String, String)>, body: &str) -> reqwest::Response {
        self.post(url, headers, body.to_owned()).await
    }

    /// POSTs a delivery report that is wrong in the way `forgery` says.
    pub async fn send_forged_callback(
        &self,
        callback_url: &str,
        batch_id: &str,
        status: &str,
        forgery: Forgery,
    ) -> reqwest::Response {
        let body = self.recipient_report_body(batch_id, status, 0);
        let now = chrono::Utc::now().timestamp();
        let n = nonce();
        let drop = |h: Vec<(String, String)>, name: &str| h.into_iter().filter(|(k, _)| k != name).collect::<Vec<_>>();
        let (headers, body) = match forgery {
            Forgery::WrongSecret => (sign_with("not-the-secret", &body, &n, now), body),
            Forgery::TamperedBody => {
                let h = Self::sign(&body, &n, now);
                (
                    h,
                    body.replacen(&format!("\"status\":\"{status}\""), "\"status\":\"Delivered\"", 1).replacen(
                        "\"code\":0",
                        "\"code\":1",
                        1,
                    ),
                )
            }
            Forgery::StaleTimestamp => (Self::sign(&body, &n, now - 3600), body),
            Forgery::MissingNonce => (drop(Self::sign(&body, &n, now), "x-sinch-webhook-signature-nonce"), body),
            Forgery::MissingSignature => (drop(Self::sign(&body, &n, now), "x-sinch-webhook-signature"), body),
        };
        self.post(callback_url, headers, body).await
    }

    async fn post(&self, url: &str, headers: Vec<(String, String)>, body: String) -> reqwest::Response {
        let mut rb = self.client.post(url).header("content-type", "application/json");
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.body(body).send().await.expect("callback receiver reachable")
    }
}

fn sign_with(secret: &str, body: &str, nonce: &str, timestamp: i64) -> Vec<(String, String)> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("x-sinch-webhook-signature".into(), sig),
        ("x-sinch-webhook-signature-nonce".into(), nonce.to_owned()),
        ("x-sinch-webhook-signature-timestamp".into(), timestamp.to_string()),
        ("x-sinch-webhook-signature-algorithm".into(), "HmacSHA256".into()),
    ]
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    let path = req.uri.path().to_owned();
    let Some(plan) = path.strip_prefix("/xms/v1/").and_then(|p| p.strip_suffix("/batches")) else {
        return respond(404, "text/plain", "");
    };
    if req.method != http::Method::POST {
        return respond(405, "text/plain", "");
    }
    if plan != SERVICE_PLAN_ID || req.header("authorization") != Some(&format!("Bearer {API_TOKEN}")) {
        return respond(401, "text/plain", "");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "syntax_invalid_json", "The JSON in the request is invalid");
    };
    let to: Vec<String> = body["to"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if to.is_empty() {
        return error(400, "syntax_constraint_violation", "to: must not be empty");
    }
    if let Some(bad) = to.iter().find(|t| !is_msisdn(t)) {
        return error(400, "syntax_invalid_parameter_format", &format!("'{bad}' is not a valid MSISDN"));
    }
    let kind = body["type"].as_str().unwrap_or("mt_text");
    match kind {
        "mt_text" if body["body"].as_str().is_none_or(str::is_empty) => {
            return error(400, "syntax_constraint_violation", "body: must not be empty");
        }
        "mt_media" if body["body"]["url"].as_str().is_none_or(str::is_empty) => {
            return error(400, "syntax_constraint_violation", "body.url: must not be empty");
        }
        "mt_text" | "mt_media" => {}
        other => return error(400, "syntax_invalid_parameter_format", &format!("'{other}' is not a valid type")),
    }
    if let Some(dr) = body["delivery_report"].as_str()
        && !["none", "summary", "full", "per_recipient", "per_recipient_final"].contains(&dr)
    {
        return error(400, "syntax_invalid_parameter_format", &format!("'{dr}' is not a valid delivery_report"));
    }
    if body["delivery_report"].as_str().is_some_and(|d| d != "none") && body["callback_url"].as_str().is_none() {
        // The real service falls back to the service plan's callback URL; this fake has none.
        return error(403, "missing_callback_url", "A delivery report was requested but no callback URL is set");
    }

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(Outcome::Accept);
    match outcome {
        Outcome::Accept => accept(state, &body, &to),
        Outcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept(state, &body, &to)
        }
        Outcome::RateLimited(secs) => {
            let mut r = error(429, "too_many_requests", "Too many requests");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Outcome::ServerError(status) => error(status, "internal_error", "Internal server error"),
        Outcome::Permanent(code) => {
            let status = if code.starts_with("syntax_") { 400 } else { 403 };
            error(status, &code, "The request was refused")
        }
    }
}

fn accept(state: &State, body: &Value, to: &[String]) -> http::Response<bytes::Bytes> {
    // Batch ids are ULID-shaped (e.g. 01FC66621XXXXX119Z8PMV1QPQ).
    let id = MessageId::new().to_string();
    state.sent.lock().unwrap().insert(
        id.clone(),
        Sent { to: to[0].clone(), client_reference: body["client_reference"].as_str().map(str::to_owned) },
    );
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut batch = json!({
        "id": id,
        "to": to,
        "from": body["from"].clone(),
        "canceled": false,
        "body": body["body"].clone(),
        "type": body["type"].as_str().unwrap_or("mt_text"),
        "created_at": now,
        "modified_at": now,
        "delivery_report": body["delivery_report"].as_str().unwrap_or("none"),
        "feedback_enabled": false,
        "flash_message": false,
        "truncate_concat": false
    });
    for k in ["send_at", "expire_at", "callback_url", "client_reference"] {
        if let Some(v) = body.get(k) {
            batch[k] = v.clone();
        }
    }
    json(201, &batch)
}

fn error(status: u16, code: &str, text: &str) -> http::Response<bytes::Bytes> {
    json(status, &json!({"code": code, "text": text}))
}

/// XMS takes MSISDNs with or without `+`.
fn is_msisdn(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// A nonce shaped like Sinch's (a ULID).
fn nonce() -> String {
    MessageId::new().to_string()
}
