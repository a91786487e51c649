//! A fake Plivo Messaging API on loopback.
//!
//! `POST /v1/Account/{auth_id}/Message/` is checked the way Plivo checks it (HTTP
//! Basic `auth_id:auth_token`, JSON, exactly one of `src`/`powerpack_uuid`, `dst`
//! sanitised to ≤ 14 digits, `text` for SMS, `media_urls` (≤ 10) for MMS, `type`
//! sms|mms|whatsapp, `method` GET|POST, `src` ≠ `dst`) and answered with Plivo's
//! shapes: `202 {"api_id","message":"message(s) queued","message_uuid":["…"]}` or
//! `{"api_id","error"}` with the meaning in the HTTP status (plivo-python
//! `rest/client.py`; error texts are illustrative). Sends consume scripted
//! [`FakeOutcome`]s (default: accept). Status callbacks and inbound messages are form
//! POSTs signed with `X-Plivo-Signature-V3` + nonce under the fake's auth token, using
//! the same `signatures::plivo::sign_v3` the verifier is tested against.

use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{PlivoCredentials, Secret};
use dispatch_common::signatures::plivo::{NONCE_HEADER, SIGNATURE_HEADER, sign_v3};
use dispatch_local::http_server::{Request, Server, handler, json, serve_loopback};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const AUTH_ID: &str = "MAODUZYTK4ZWU1YTY4QA";
/// The fake's auth token (never a real one).
pub const AUTH_TOKEN: &str = "ZDQ5NzE0ZjFmYWRlMmQ3ZmU3N2FhY2E3ZTg3";
/// A token Plivo never signs with, for forgeries.
const OTHER_TOKEN: &str = "YjM0ZmE3ZDE5NjUwZjQxNGM1NTliNmQ5OGY2";

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeOutcome {
    /// `202` with one `message_uuid`.
    Accept,
    /// `429` with `{"api_id","error"}` and `Retry-After: <secs>`.
    RateLimited(u64),
    /// This status (5xx) with `{"api_id","error"}`.
    ServerError(u16),
    /// A 4xx given as its status (`"400"`, `"401"`, `"402"`, `"403"`, `"404"`),
    /// with a matching Plivo error text. Plivo's API errors have no code of their own.
    Permanent(String),
    /// Sleep this long, then accept (the caller should have given up by then).
    Timeout(Duration),
}

/// The name the other fakes use.
pub type Outcome = FakeOutcome;

/// Ways to get a callback wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a token that is not the account's.
    WrongSecret,
    /// Properly signed, then a parameter changed.
    TamperedBody,
    /// The signature of another delivery with this delivery's nonce swapped in.
    WrongNonce,
    /// No `X-Plivo-Signature-V3` header.
    MissingSignature,
}

#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
    kind: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<FakeOutcome>>,
    sent: Mutex<HashMap<String, Sent>>,
}

pub struct FakePlivo {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakePlivo {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake plivo binds");
        FakePlivo { server, state, client: reqwest::Client::new() }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request the fake received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Queues outcomes; each send consumes one. With the queue empty, sends are accepted.
    pub fn script(&self, outcomes: Vec<FakeOutcome>) {
        self.state.script.lock().unwrap().extend(outcomes);
    }

    /// Tenant credentials pointing at this fake.
    pub fn credentials(&self) -> Credentials {
        Credentials::Plivo(PlivoCredentials {
            auth_id: AUTH_ID.into(),
            auth_token: Secret::new(AUTH_TOKEN),
            api_base_url: Some(self.base_url()),
        })
    }

    /// The form parameters of a status callback, as Plivo sends them.
    pub fn status_callback_params(
        &self,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> Vec<(String, String)> {
        let sent = self.state.sent.lock().unwrap().get(provider_message_id).cloned();
        let Sent { from, to, kind } =
            sent.unwrap_or(Sent { from: "12015550100".into(), to: "12015550123".into(), kind: "sms".into() });
        let ts = |offset: i64| {
            (chrono::Utc::now() + chrono::Duration::seconds(offset)).format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
        };
        let mut p = vec![
            ("From".to_string(), from),
            ("MessageUUID".into(), provider_message_id.into()),
            ("ParentMessageUUID".into(), provider_message_id.into()),
            ("PartInfo".into(), String::new()),
            ("Sequence".into(), sequence().to_string()),
            ("Status".into(), status.into()),
            ("To".into(), to),
            ("TotalAmount".into(), "0.00500".into()),
            ("TotalRate".into(), "0.00500".into()),
            ("Type".into(), kind),
            ("Units".into(), "1".into()),
            ("MCC".into(), "310".into()),
            ("MNC".into(), "410".into()),
            ("MessageTime".into(), ts(-5)),
            ("QueuedTime".into(), ts(-5)),
            ("PowerpackUUID".into(), String::new()),
            ("requester_ip".into(), "192.0.2.10".into()),
        ];
        if matches!(status, "sent" | "delivered" | "undelivered") {
            p.push(("SentTime".into(), ts(-2)));
        }
        if matches!(status, "delivered" | "undelivered") {
            p.push(("DeliveryReportTime".into(), ts(0)));
        }
        // Only failed/undelivered messages carry an ErrorCode.
        if let Some(code) = error_code {
            p.push(("ErrorCode".into(), code.into()));
        }
        p
    }

    /// The form parameters of an inbound SMS (no media) or MMS to our number `to`.
    pub fn inbound_params(from: &str, to: &str, text: &str, media: &[&str]) -> Vec<(String, String)> {
        let mut p = vec![
            ("From".to_string(), from.to_string()),
            ("To".into(), to.into()),
            ("MessageUUID".into(), uuid()),
            ("Units".into(), "1".into()),
            ("TotalRate".into(), "0.00000".into()),
            ("TotalAmount".into(), "0.00000".into()),
            ("MessageIntent".into(), String::new()),
            ("PowerpackUUID".into(), String::new()),
        ];
        if media.is_empty() {
            p.push(("Type".into(), "sms".into()));
            p.push(("Text".into(), text.into()));
        } else {
            p.push(("Type".into(), "mms".into()));
            p.push(("Body".into(), text.into()));
            p.push(("MediaCount".into(), media.len().to_string()));
            for (i, url) in media.iter().enumerate() {
                p.push((format!("Media{}", i + 1), url.to_string()));
            }
        }
        p
    }

    /// POSTs a signed status callback for a message, as Plivo would.
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> reqwest::Response {
        let params = self.status_callback_params(provider_message_id, status, error_code);
        let nonce = nonce();
        let sig = sign_v3(AUTH_TOKEN, "POST", callback_url, &params, &nonce);
        self.post_form(callback_url, &params, Some(sig), &nonce).await
    }

    /// POSTs a signed inbound message.
    pub async fn send_inbound(
        &self,
        callback_url: &str,
        from: &str,
        to: &str,
        text: &str,
        media: &[&str],
    ) -> reqwest::Response {
        let params = Self::inbound_params(from, to, text, media);
        let nonce = nonce();
        let sig = sign_v3(AUTH_TOKEN, "POST", callback_url, &params, &nonce);
        self.post_form(callback_url, &params, Some(sig), &nonce).await
    }

    /// POSTs a status callback that is wrong in the way `forgery` says.
    pub async fn send_forged_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        forgery: Forgery,
    ) -> reqwest::Response {
        let params = self.status_callback_params(provider_message_id, status, None);
        let nonce = nonce();
        match forgery {
            Forgery::WrongSecret => {
                let sig = sign_v3(OTHER_TOKEN, "POST", callback_url, &params, &nonce);
                self.post_form(callback_url, &params, Some(sig), &nonce).await
            }
            Forgery::TamperedBody => {
                let sig = sign_v3(AUTH_TOKEN, "POST", callback_url, &params, &nonce);
                let forged_status = if status == "delivered" { "failed" } else { "delivered" };
                let tampered: Vec<(String, String)> = params
                    .into_iter()
                    .map(|(k, v)| if k == "Status" { (k, forged_status.to_string()) } else { (k, v) })
                    .collect();
                self.post_form(callback_url, &tampered, Some(sig), &nonce).await
            }
            Forgery::WrongNonce => {
                let sig = sign_v3(AUTH_TOKEN, "POST", callback_url, &params, "an-earlier-nonce");
                self.post_form(callback_url, &params, Some(sig), &nonce).await
            }
            Forgery::MissingSignature => self.post_form(callback_url, &params, None, &nonce).await,
        }
    }

    async fn post_form(
        &self,
        url: &str,
        params: &[(String, String)],
        signature: Option<String>,
        nonce: &str,
    ) -> reqwest::Response {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        let mut rb = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "PlivoHTTP/1.0")
            .header(NONCE_HEADER, nonce);
        if let Some(sig) = signature {
            rb = rb.header(SIGNATURE_HEADER, sig);
        }
        rb.body(s.finish()).send().await.expect("callback receiver reachable")
    }
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    let path = req.uri.path().to_string();
    let Some(auth_id) = path.strip_prefix("/v1/Account/").and_then(|r| r.strip_suffix("/Message/")) else {
        return error(404, "not found");
    };
    if req.method != http::Method::POST {
        return error(405, "method not allowed");
    }
    if !basic_auth_ok(req.header("authorization"), auth_id) {
        return error(401, "authentication failed");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "invalid json data");
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let src = s("src");
    match (src, s("powerpack_uuid")) {
        (None, None) => return error(400, "Specify either powerpack_uuid or src in request params to send a message"),
        (Some(_), Some(_)) => return error(400, "Both powerpack_uuid and src cannot be specified"),
        _ => {}
    }
    let Some(dst) = s("dst") else {
        return error(400, "dst parameter is required");
    };
    // Plivo strips `/ - . + ( )` and spaces; the rest must be digits, ≤ 14 of them.
    let clean: String = dst.chars().filter(|c| !"/-.+() ".contains(*c)).collect();
    if clean.is_empty() || clean.len() > 14 || !clean.bytes().all(|b| b.is_ascii_digit()) {
        return error(400, &format!("{dst} is not a valid phone number"));
    }
    if src.is_some_and(|src| src.chars().filter(|c| !"/-.+() ".contains(*c)).collect::<String>() == clean) {
        return error(400, "destination number cannot be same as source number");
    }
    let kind = s("type").unwrap_or("sms");
    match kind {
        "sms" => {
            if s("text").is_none() {
                return error(400, "text parameter is required for sms");
            }
        }
        "mms" => {
            let media = body.get("media_urls").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            if media == 0 && body.get("media_ids").is_none() {
                return error(400, "media_urls or media_ids is required for mms");
            }
            if media > 10 {
                return error(400, "media_urls cannot have more than 10 items");
            }
        }
        "whatsapp" => {}
        _ => return error(400, "type must be one of sms, mms, whatsapp"),
    }
    if let Some(m) = s("method")
        && !matches!(m, "GET" | "POST")
    {
        return error(400, "method must be GET or POST");
    }
    if let Some(u) = s("url")
        && url::Url::parse(u).is_err()
    {
        return error(400, "url is not a valid URL");
    }
    let sent = Sent { from: src.unwrap_or_default().trim_start_matches('+').into(), to: clean, kind: kind.into() };

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(FakeOutcome::Accept);
    match outcome {
        FakeOutcome::Accept => accept(state, sent),
        FakeOutcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept(state, sent)
        }
        FakeOutcome::RateLimited(secs) => {
            let mut r = error(429, "too many requests");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        FakeOutcome::ServerError(status) => error(status, "internal server error"),
        FakeOutcome::Permanent(code) => {
            let status: u16 = code.parse().unwrap_or(400);
            let text = match status {
                401 => "authentication failed",
                402 => "insufficient balance",
                403 => "forbidden: sending to this destination is not enabled",
                404 => "not found",
                _ => "dst is not a valid phone number",
            };
            error(status, text)
        }
    }
}

fn accept(state: &State, sent: Sent) -> http::Response<bytes::Bytes> {
    let id = uuid();
    state.sent.lock().unwrap().insert(id.clone(), sent);
    json(202, &json!({"api_id": uuid(), "message": "message(s) queued", "message_uuid": [id]}))
}

fn error(status: u16, message: &str) -> http::Response<bytes::Bytes> {
    json(status, &json!({"api_id": uuid(), "error": message}))
}

fn basic_auth_ok(header: Option<&str>, path_auth_id: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    decoded == format!("{AUTH_ID}:{AUTH_TOKEN}").as_bytes() && path_auth_id == AUTH_ID
}

fn counter_hash(tag: &str) -> [u8; 32] {
    use sha2::Digest as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    sha2::Sha256::digest(format!("plivo-fake:{tag}:{n}:{t}").as_bytes()).into()
}

fn sequence() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A version-4-shaped UUID (`message_uuid`, `api_id`).
fn uuid() -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&counter_hash("uuid")[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// A 20-digit nonce like the one in plivo-go's tests.
fn nonce() -> String {
    let h = counter_hash("nonce");
    let n = u64::from_be_bytes(h[..8].try_into().unwrap());
    format!("{:020}", n)
}
