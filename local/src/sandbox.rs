//! The sandbox provider: a real HTTP server that behaves like an SMS/MMS provider.
//! `send` calls it over HTTP exactly as it calls a real provider, and it posts signed
//! status callbacks and simulated inbound messages back, with deterministic outcomes
//! chosen by the recipient number (see [`numbers`] and `docs/sandbox.md`).
//!
//! Endpoints (all JSON; errors are `{"error":{"code","message"}}`):
//! * `POST /v1/messages` — send (Bearer api key) → `202 {"id","status":"accepted","segments"}`
//! * `POST /sandbox/inbound` — simulate an inbound SMS/MMS (Bearer api key) → `202`
//! * `GET /sandbox/messages` — everything it was asked to send or simulate
//! * `GET /sandbox/media/{name}` — a small fixed PNG, for MMS tests

use crate::http_server::{self, Request, Response, Server};
use chrono::{DateTime, SecondsFormat, Utc};
use dispatch_common::signatures::constant_time_eq;
use dispatch_common::signatures::sandbox::{signature_header, SIGNATURE_HEADER};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Recipient numbers with scripted outcomes, from the North American 555-0100..0199
/// range reserved for fiction (libphonenumber treats them as valid; the UK Ofcom drama
/// range +44 7700 900xxx is marked invalid in its metadata, so it cannot be used)
/// Any other number is delivered.
pub mod numbers {
    /// Accepted; callbacks `sent`, then `undelivered` (`absent_subscriber`).
    pub const UNDELIVERED: &str = "+12015550101";
    /// `400 invalid_destination` at send: permanent.
    pub const INVALID_DESTINATION: &str = "+12015550102";
    /// `503 unavailable` on the first send for a `client_ref`, then accepted → delivered.
    pub const UNAVAILABLE_ONCE: &str = "+12015550103";
    /// Accepted; a `sent` callback only, never a final receipt.
    pub const NO_RECEIPT: &str = "+12015550104";
    /// `429 rate_limited` (`Retry-After: 1`) on the first send for a `client_ref`, then accepted → delivered.
    pub const RATE_LIMITED_ONCE: &str = "+12015550105";
    /// Accepted; callback `failed` (`carrier_rejected`).
    pub const FAILED: &str = "+12015550106";
    /// Accepted; `delivered` arrives before `sent`, then `delivered` again (a duplicate).
    pub const OUT_OF_ORDER: &str = "+12015550107";
    /// Accepted → sent → delivered, but the send call takes [`super::SLOW_ANSWER`] to
    /// answer (a slow provider: redeliveries and deadlines meet a call in flight).
    pub const SLOW: &str = "+12015550108";
    /// An ordinary number in the same range: accepted → sent → delivered.
    pub const DELIVERED: &str = "+12015550100";
}

/// How long a hung send request stays unanswered (longer than any client waits).
pub const HANG: Duration = Duration::from_secs(60);
/// How long the sandbox takes to answer a send to [`numbers::SLOW`].
pub const SLOW_ANSWER: Duration = Duration::from_secs(2);

/// Delay between a message being accepted and each of its callbacks, by default.
pub const DEFAULT_EVENT_DELAY: Duration = Duration::from_millis(50);
/// How the sandbox retries a callback its receiver refused or did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackRetry {
    /// Attempts in all before the event is abandoned.
    pub attempts: u32,
    /// First wait between attempts; doubled after each failure up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

/// The default: 12 attempts over about 2.5 minutes (0.2, 0.4, ... 25.6, then 30 s
/// waits), as real providers keep retrying for minutes to hours, so a short outage
/// or overload of ours loses no receipt.
pub const CALLBACK_RETRY: CallbackRetry = CallbackRetry { attempts: 12, first_wait: Duration::from_millis(200), max_wait: Duration::from_secs(30) };
/// Most media items in one message, as the sandbox adapter advertises.
pub const MAX_MEDIA: usize = 10;
/// Entries kept for `received()` / `GET /sandbox/messages`; the oldest go first.
pub const MAX_RECORDS: usize = 10_000;

/// A 2×2 RGB PNG (valid signature, IHDR/IDAT/IEND with correct CRCs).
pub const MEDIA_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00,
    0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xd0, 0xf0, 0x9f, 0x01, 0x42, 0x01,
    0x00, 0x21, 0x72, 0x04, 0xfd, 0xa9, 0x27, 0x74, 0x8b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

#[derive(Clone)]
pub struct SandboxConfig {
    /// The key `send` must present as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The HMAC-SHA256 key callbacks are signed with.
    pub webhook_secret: String,
    /// Wait before each callback event.
    pub event_delay: Duration,
    /// Retries of a refused callback ([`CALLBACK_RETRY`] unless a test wants it quick).
    pub callback_retry: CallbackRetry,
}

impl SandboxConfig {
    /// A config with the default event delay.
    pub fn new(api_key: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        Self { api_key: api_key.into(), webhook_secret: webhook_secret.into(), event_delay: DEFAULT_EVENT_DELAY, callback_retry: CALLBACK_RETRY }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"[redacted]")
            .field("webhook_secret", &"[redacted]")
            .field("event_delay", &self.event_delay)
            .finish()
    }
}

struct State {
    cfg: SandboxConfig,
    client: reqwest::Client,
    received: Mutex<Vec<Value>>,
    /// `(number, client_ref)` pairs that already had their scripted first failure.
    failed_once: Mutex<HashSet<(String, String)>>,
    callbacks_sent: AtomicUsize,
    callbacks_abandoned: AtomicUsize,
    ids: AtomicU64,
    /// Fault: every other send request hangs unanswered (see [`SandboxProvider::hang_every_other_send`]).
    hang_every_other: std::sync::atomic::AtomicBool,
    /// Send requests seen per `client_ref` while the hang fault is on.
    sends_seen: Mutex<std::collections::HashMap<String, usize>>,
    sends_hung: AtomicUsize,
    /// Callback tasks stop when the provider (which owns the sender) is dropped.
    shutdown: watch::Receiver<()>,
}

/// A running sandbox provider. Dropping it stops the server and any pending callbacks.
pub struct SandboxProvider {
    server: Server,
    state: Arc<State>,
    _shutdown: watch::Sender<()>,
}

impl fmt::Debug for SandboxProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxProvider").field("addr", &self.server.addr).finish_non_exhaustive()
    }
}

impl SandboxProvider {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(cfg: SandboxConfig, addr: SocketAddr) -> std::io::Result<SandboxProvider> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .user_agent("dispatch-sandbox/1")
            .build()
            .map_err(std::io::Error::other)?;
        let (tx, rx) = watch::channel(());
        let state = Arc::new(State {
            cfg,
            client,
            received: Mutex::new(Vec::new()),
            failed_once: Mutex::new(HashSet::new()),
            callbacks_sent: AtomicUsize::new(0),
            callbacks_abandoned: AtomicUsize::new(0),
            ids: AtomicU64::new(0),
            hang_every_other: Default::default(),
            sends_seen: Mutex::new(std::collections::HashMap::new()),
            sends_hung: AtomicUsize::new(0),
            shutdown: rx,
        });
        let handler_state = state.clone();
        let server = http_server::serve(
            addr,
            http_server::handler(move |req| {
                let state = handler_state.clone();
                async move {
                    let is_send = req.method == "POST" && req.uri.path() == "/v1/messages";
                    // A provider that hangs on every other call: the request is never
                    // processed (nothing is sent, no receipt follows) and the
                    // connection stays silent until the client gives up.
                    if is_send && state.hang_every_other.load(Ordering::SeqCst) && hangs_this_time(&state, &req.body) {
                        state.sends_hung.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(HANG).await;
                        return error(504, "gateway_timeout", "the sandbox hung on purpose");
                    }
                    // A slow provider: the send to numbers::SLOW answers late.
                    if is_send && String::from_utf8_lossy(&req.body).contains(numbers::SLOW) {
                        tokio::time::sleep(SLOW_ANSWER).await;
                    }
                    route(&state, req)
                }
            }),
        )
        .await?;
        Ok(SandboxProvider { server, state, _shutdown: tx })
    }

    /// `http://host:port`, without a trailing slash (an unspecified bind address is
    /// reported as loopback).
    pub fn base_url(&self) -> String {
        url_for(self.server.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// What the sandbox was asked to do, oldest first: one entry per authenticated,
    /// well-formed send (`"direction":"outbound"`, including the scripted refusals) and
    /// per inbound simulation (`"direction":"inbound"`). Same as `GET /sandbox/messages`.
    pub fn received(&self) -> Vec<Value> {
        self.state.received.lock().expect("received lock").clone()
    }

    /// Callbacks (status and inbound) a receiver acknowledged with 2xx.
    pub fn callbacks_sent(&self) -> usize {
        self.state.callbacks_sent.load(Ordering::SeqCst)
    }

    /// Fault injection: from now on every other send request for each message (its
    /// 1st, 3rd, ... by `client_ref`) hangs for [`HANG`] without being processed, as a
    /// provider whose front end accepts connections while its back end is stuck. Per
    /// message, so a test knows each message needs exactly one more attempt. (A
    /// provider that accepts a message and then hangs is a different fault: only
    /// provider-side idempotency can make a retry of that one safe.)
    pub fn hang_every_other_send(&self, on: bool) {
        self.state.hang_every_other.store(on, Ordering::SeqCst);
    }

    /// Send requests that hung because of [`Self::hang_every_other_send`].
    pub fn sends_hung(&self) -> usize {
        self.state.sends_hung.load(Ordering::SeqCst)
    }

    /// Callbacks given up on after [`CallbackRetry::attempts`] failed attempts.
    pub fn callbacks_abandoned(&self) -> usize {
        self.state.callbacks_abandoned.load(Ordering::SeqCst)
    }
}

/// Whether this send request is one of its message's odd-numbered ones.
fn hangs_this_time(state: &State, body: &[u8]) -> bool {
    let client_ref = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["client_ref"].as_str().map(str::to_string)).unwrap_or_default();
    let mut seen = state.sends_seen.lock().expect("sends seen");
    let n = seen.entry(client_ref).or_default();
    *n += 1;
    *n % 2 == 1
}

fn url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn record(state: &State, entry: Value) {
    let mut list = state.received.lock().expect("received lock");
    if list.len() >= MAX_RECORDS {
        list.remove(0);
    }
    list.push(entry);
}

fn error(status: u16, code: &str, message: &str) -> Response {
    http_server::json(status, &json!({"error": {"code": code, "message": message}}))
}

/// An error answer, kept small until it becomes a [`Response`].
struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn response(&self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

fn bad(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { status, code, message: message.into() }
}

fn now_iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn route(state: &Arc<State>, req: Request) -> Response {
    let path = req.uri.path().to_string();
    let method = req.method.clone();
    match (method.as_str(), path.as_str()) {
        ("POST", "/v1/messages") => send(state, req),
        ("POST", "/sandbox/inbound") => inbound(state, req),
        ("GET", "/sandbox/messages") => {
            let list = state.received.lock().expect("received lock").clone();
            http_server::json(200, &json!({ "messages": list }))
        }
        ("GET", p) if p.starts_with("/sandbox/media/") => media(&p["/sandbox/media/".len()..]),
        (_, "/v1/messages" | "/sandbox/inbound" | "/sandbox/messages") => {
            error(405, "method_not_allowed", "method not allowed on this path")
        }
        (_, p) if p.starts_with("/sandbox/media/") => error(405, "method_not_allowed", "media is GET only"),
        _ => error(404, "not_found", "no such endpoint"),
    }
}

fn media(name: &str) -> Response {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with('.');
    if !ok {
        return error(404, "not_found", "no such media");
    }
    http_server::respond(200, "image/png", MEDIA_PNG)
}

fn authorized(state: &State, req: &Request) -> bool {
    let expected = format!("Bearer {}", state.cfg.api_key);
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => constant_time_eq(v.as_bytes(), expected.as_bytes()),
        _ => false,
    }
}

fn is_json(req: &Request) -> bool {
    req.header("content-type")
        .map(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false)
}

/// `+` and 2–15 digits, the first not 0.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).map(|u| matches!(u.scheme(), "http" | "https") && u.has_host()).unwrap_or(false)
}

/// Reads the JSON object body of an authenticated request, or the error to answer.
fn json_object(state: &State, req: &Request) -> Result<Map<String, Value>, ApiError> {
    if !authorized(state, req) {
        return Err(bad(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <api_key>)"));
    }
    if !is_json(req) {
        return Err(bad(400, "invalid_request", "Content-Type must be application/json"));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(400, "invalid_request", "body must be a JSON object")),
        Err(_) => Err(bad(400, "invalid_request", "body is not valid JSON")),
    }
}

fn required_string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(bad(400, "invalid_request", format!("`{name}` is required"))),
        Some(_) => Err(bad(400, "invalid_request", format!("`{name}` must be a string"))),
    }
}

fn optional_string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(bad(400, "invalid_request", format!("`{name}` must be a string"))),
    }
}

/// A fresh id: `prefix` + 26 Crockford base32 characters (48-bit ms time, 80 random-ish bits).
fn new_id(state: &State, prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let n = state.ids.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    let random = ((h.finish() as u128) << 16) | u128::from(n as u16);
    let ms = (Utc::now().timestamp_millis().max(0) as u128) & ((1 << 48) - 1);
    let v = (ms << 80) | random;
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    for i in (0..26).rev() {
        out.push(ALPHABET[((v >> (i * 5)) & 0x1f) as usize] as char);
    }
    out
}

/// GSM 03.38 basic set (one septet) and extension table (two septets).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// Segments the sandbox "bills": GSM-7 160/153 septets, else UCS-2 70/67 units; MMS is one.
pub fn segments(body: &str, has_media: bool) -> u32 {
    if has_media {
        return 1;
    }
    let mut septets = 0usize;
    let mut gsm = true;
    for c in body.chars() {
        if GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENDED.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (len, single, multi) =
        if gsm { (septets, 160, 153) } else { (body.encode_utf16().count(), 70, 67) };
    if len <= single { 1 } else { len.div_ceil(multi) as u32 }
}

/// What happens after a message is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// These events, in this order.
    InOrder(&'static [(&'static str, Option<&'static str>)]),
    /// `delivered`, then `sent` (stamped just before it), then `delivered` again.
    OutOfOrderWithDuplicate,
}

fn script_for(to: &str) -> Script {
    match to {
        numbers::UNDELIVERED => Script::InOrder(&[("sent", None), ("undelivered", Some("absent_subscriber"))]),
        numbers::NO_RECEIPT => Script::InOrder(&[("sent", None)]),
        numbers::FAILED => Script::InOrder(&[("failed", Some("carrier_rejected"))]),
        numbers::OUT_OF_ORDER => Script::OutOfOrderWithDuplicate,
        _ => Script::InOrder(&[("sent", None), ("delivered", None)]),
    }
}

fn send(state: &Arc<State>, req: Request) -> Response {
    let obj = match json_object(state, &req) {
        Ok(o) => o,
        Err(e) => return e.response(),
    };
    let fields = (|| {
        let to = required_string(&obj, "to")?;
        let body = required_string(&obj, "body")?;
        let callback_url = required_string(&obj, "callback_url")?;
        let from = optional_string(&obj, "from")?;
        let client_ref = optional_string(&obj, "client_ref")?;
        if !is_e164(to) {
            return Err(bad(400, "invalid_request", "`to` must be + followed by 2-15 digits"));
        }
        if !is_http_url(callback_url) {
            return Err(bad(400, "invalid_request", "`callback_url` must be an absolute http(s) URL"));
        }
        let media: Vec<String> = match obj.get("media_urls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let urls: Option<Vec<String>> =
                    items.iter().map(|v| v.as_str().filter(|u| is_http_url(u)).map(str::to_string)).collect();
                urls.ok_or_else(|| bad(400, "invalid_request", "`media_urls` must be absolute http(s) URLs"))?
            }
            Some(_) => return Err(bad(400, "invalid_request", "`media_urls` must be an array")),
        };
        if media.len() > MAX_MEDIA {
            return Err(bad(400, "invalid_request", format!("at most {MAX_MEDIA} media_urls")));
        }
        if body.is_empty() && media.is_empty() {
            return Err(bad(400, "invalid_request", "`body` is empty and there is no media"));
        }
        let validity = match obj.get("validity_secs") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|n| *n > 0 && *n <= u64::from(u32::MAX)) {
                Some(n) => Some(n),
                None => return Err(bad(400, "invalid_request", "`validity_secs` must be a positive integer")),
            },
        };
        Ok((to, body, callback_url, from, client_ref, media, validity))
    })();
    let (to, body, callback_url, from, client_ref, media, validity) = match fields {
        Ok(f) => f,
        Err(e) => return e.response(),
    };

    let first_time = |number: &str| {
        state
            .failed_once
            .lock()
            .expect("failed_once lock")
            .insert((number.to_string(), client_ref.unwrap_or("").to_string()))
    };
    let refusal = match to {
        numbers::INVALID_DESTINATION => {
            Some((400, "invalid_destination", "the destination cannot receive messages", None))
        }
        numbers::UNAVAILABLE_ONCE if first_time(to) => {
            Some((503, "unavailable", "the sandbox is temporarily unavailable; try again", None))
        }
        numbers::RATE_LIMITED_ONCE if first_time(to) => Some((429, "rate_limited", "too many requests; slow down", Some(1))),
        _ => None,
    };

    let received_at = now_iso(Utc::now());
    let mut entry = json!({
        "direction": "outbound",
        "id": null,
        "to": to,
        "from": from,
        "body": body,
        "media_urls": media,
        "callback_url": callback_url,
        "client_ref": client_ref,
        "validity_secs": validity,
        "received_at": received_at,
    });

    if let Some((status, code, message, retry_after)) = refusal {
        entry["outcome"] = json!(code);
        entry["http_status"] = json!(status);
        record(state, entry);
        let mut resp = error(status, code, message);
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        return resp;
    }

    let id = new_id(state, "sbx_");
    let segments = segments(body, !media.is_empty());
    entry["id"] = json!(id);
    entry["outcome"] = json!("accepted");
    entry["http_status"] = json!(202);
    entry["segments"] = json!(segments);
    record(state, entry);

    let task = run_status_callbacks(
        state.clone(),
        id.clone(),
        client_ref.map(str::to_string),
        callback_url.to_string(),
        script_for(to),
    );
    spawn_until_shutdown(state, task);
    http_server::json(202, &json!({"id": id, "status": "accepted", "segments": segments}))
}

fn inbound(state: &Arc<State>, req: Request) -> Response {
    let obj = match json_object(state, &req) {
        Ok(o) => o,
        Err(e) => return e.response(),
    };
    let fields = (|| {
        let from = required_string(&obj, "from")?;
        let to = required_string(&obj, "to")?;
        let callback_url = required_string(&obj, "callback_url")?;
        let text = optional_string(&obj, "text")?.unwrap_or("");
        if !is_e164(from) || !is_e164(to) {
            return Err(bad(400, "invalid_request", "`from` and `to` must be + followed by 2-15 digits"));
        }
        if !is_http_url(callback_url) {
            return Err(bad(400, "invalid_request", "`callback_url` must be an absolute http(s) URL"));
        }
        let bad_media = || bad(400, "invalid_request", "`media` must be [{\"url\":\"http(s)://...\",\"content_type\":\"...\"}]");
        let media: Vec<Value> = match obj.get("media") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let url = item.get("url").and_then(Value::as_str).filter(|u| is_http_url(u)).ok_or_else(bad_media)?;
                    let content_type = match item.get("content_type") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => return Err(bad_media()),
                    };
                    out.push(json!({"url": url, "content_type": content_type}));
                }
                out
            }
            Some(_) => return Err(bad_media()),
        };
        if media.len() > MAX_MEDIA {
            return Err(bad(400, "invalid_request", format!("at most {MAX_MEDIA} media items")));
        }
        Ok((from, to, callback_url, text, media))
    })();
    let (from, to, callback_url, text, media) = match fields {
        Ok(f) => f,
        Err(e) => return e.response(),
    };

    let id = new_id(state, "sbx_in_");
    let received_at = now_iso(Utc::now());
    let event = json!({
        "type": "message.inbound",
        "id": id,
        "from": from,
        "to": to,
        "text": text,
        "media": media,
        "received_at": received_at,
    });
    record(state, json!({
        "direction": "inbound",
        "id": id,
        "from": from,
        "to": to,
        "text": text,
        "media": media,
        "callback_url": callback_url,
        "received_at": received_at,
    }));
    let task_state = state.clone();
    let url = callback_url.to_string();
    spawn_until_shutdown(state, async move {
        tokio::time::sleep(task_state.cfg.event_delay).await;
        deliver(&task_state, &url, event.to_string().into_bytes()).await;
    });
    http_server::json(202, &json!({"id": id, "status": "queued"}))
}

/// Runs `task` until it ends or the provider is dropped.
fn spawn_until_shutdown(state: &Arc<State>, task: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = task => {}
            _ = shutdown.changed() => {}
        }
    });
}

fn status_event(id: &str, client_ref: Option<&str>, status: &str, error_code: Option<&str>, at: DateTime<Utc>) -> Vec<u8> {
    json!({
        "type": "message.status",
        "id": id,
        "client_ref": client_ref,
        "status": status,
        "error_code": error_code,
        "occurred_at": now_iso(at),
    })
    .to_string()
    .into_bytes()
}

async fn run_status_callbacks(state: Arc<State>, id: String, client_ref: Option<String>, url: String, script: Script) {
    let delay = state.cfg.event_delay;
    let client_ref = client_ref.as_deref();
    match script {
        Script::InOrder(events) => {
            for (status, error_code) in events {
                tokio::time::sleep(delay).await;
                let body = status_event(&id, client_ref, status, *error_code, Utc::now());
                deliver(&state, &url, body).await;
            }
        }
        Script::OutOfOrderWithDuplicate => {
            tokio::time::sleep(delay).await;
            let delivered_at = Utc::now();
            let delivered = status_event(&id, client_ref, "delivered", None, delivered_at);
            deliver(&state, &url, delivered.clone()).await;
            tokio::time::sleep(delay).await;
            let sent_at = delivered_at - chrono::Duration::milliseconds(1);
            deliver(&state, &url, status_event(&id, client_ref, "sent", None, sent_at)).await;
            tokio::time::sleep(delay).await;
            deliver(&state, &url, delivered).await;
        }
    }
}

/// POSTs one signed event, retrying non-2xx answers and connection failures with
/// backoff ([`SandboxConfig::callback_retry`]). Each attempt is signed afresh.
async fn deliver(state: &State, url: &str, body: Vec<u8>) -> bool {
    let retry = state.cfg.callback_retry;
    let mut backoff = retry.first_wait;
    for attempt in 1..=retry.attempts {
        let t = Utc::now().timestamp();
        let signature = signature_header(&[state.cfg.webhook_secret.as_bytes()], t, &body);
        let result = state
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await;
        if matches!(&result, Ok(r) if r.status().is_success()) {
            state.callbacks_sent.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        if attempt < retry.attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_wait);
        }
    }
    state.callbacks_abandoned.fetch_add(1, Ordering::SeqCst);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_counts() {
        assert_eq!(segments("", false), 1);
        assert_eq!(segments(&"a".repeat(160), false), 1);
        assert_eq!(segments(&"a".repeat(161), false), 2);
        assert_eq!(segments(&"€".repeat(80), false), 1);
        assert_eq!(segments(&"€".repeat(81), false), 2);
        assert_eq!(segments(&"✓".repeat(70), false), 1);
        assert_eq!(segments(&"✓".repeat(71), false), 2);
        assert_eq!(segments(&"a".repeat(500), true), 1);
    }

    #[test]
    fn e164_shape() {
        assert!(is_e164(numbers::DELIVERED));
        for bad in ["447700900100", "+", "+0123", "+44 7700", "+1234567890123456", "+44a"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn png_has_the_magic_bytes() {
        assert_eq!(&MEDIA_PNG[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&MEDIA_PNG[MEDIA_PNG.len() - 8..MEDIA_PNG.len() - 4], b"IEND");
    }
}
