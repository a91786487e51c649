//! A fake Twilio Programmable Messaging API on loopback.
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` is checked the way Twilio
//! checks it (HTTP Basic `AccountSid:AuthToken`, form body, `To` required and E.164,
//! `From` or `MessagingServiceSid`, `Body` or `MediaUrl`, at most 10 media, 1600
//! characters, `ValidityPeriod` 1..=36000) and answered with Twilio's shapes:
//! `201` with the Message resource (`sid` = `SM`/`MM` + 32 hex) or the error body
//! `{"code","message","more_info","status"}`. Sends consume scripted
//! [`FakeOutcome`]s (default: accept). Status callbacks and inbound messages are
//! form POSTs signed with `X-Twilio-Signature` under the fake's auth token, using
//! the same `signatures::twilio::sign` the verifier is tested against.

use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{Secret, TwilioCredentials};
use dispatch_common::signatures::twilio::{SIGNATURE_HEADER, sign};
use dispatch_local::http_server::{Request, Server, handler, json, serve_loopback};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The fake's auth token (never a real one).
pub const AUTH_TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
pub const MESSAGING_SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
/// A token Twilio never signs with, for forgeries.
const OTHER_TOKEN: &str = "0badc0de0badc0de0badc0de0badc0de";

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeOutcome {
    /// `201` with the Message resource (`status` `queued`, or `accepted` with a
    /// Messaging Service).
    Accept,
    /// `429` with error 20429 and `Retry-After: <secs>`.
    RateLimited(u64),
    /// This status (5xx) with error 20500 / 20503.
    ServerError(u16),
    /// `400` with this Twilio error code (e.g. `21211`, `21610`, `21611`).
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
    /// Signed for another URL (a replay against a different endpoint).
    OtherUrl,
    /// No `X-Twilio-Signature` header.
    MissingSignature,
}

#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<FakeOutcome>>,
    sent: Mutex<HashMap<String, Sent>>,
}

pub struct FakeTwilio {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake twilio binds");
        FakeTwilio { server, state, client: reqwest::Client::new() }
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
    pub fn credentials(&self, messaging_service: bool) -> Credentials {
        Credentials::Twilio(TwilioCredentials {
            account_sid: ACCOUNT_SID.into(),
            auth_token: Secret::new(AUTH_TOKEN),
            messaging_service_sid: messaging_service.then(|| MESSAGING_SERVICE_SID.to_string()),
            api_base_url: Some(self.base_url()),
        })
    }

    /// The form parameters of a status callback, as Twilio sends them.
    pub fn status_callback_params(
        &self,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> Vec<(String, String)> {
        let sent = self.state.sent.lock().unwrap().get(provider_message_id).cloned();
        let (from, to) = sent.map(|s| (s.from, s.to)).unwrap_or(("+12015550100".into(), "+12015550123".into()));
        let mut p = vec![
            ("SmsSid", provider_message_id.to_string()),
            ("SmsStatus", status.to_string()),
            ("MessageStatus", status.to_string()),
            ("To", to),
            ("MessageSid", provider_message_id.to_string()),
            ("AccountSid", ACCOUNT_SID.to_string()),
            ("From", from),
            ("ApiVersion", "2010-04-01".to_string()),
        ];
        if matches!(status, "delivered" | "undelivered") {
            p.push(("RawDlrDoneDate", chrono::Utc::now().format("%y%m%d%H%M").to_string()));
        }
        if let Some(code) = error_code {
            p.push(("ErrorCode", code.to_string()));
        }
        p.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The form parameters of an inbound message to our number `to`.
    pub fn inbound_params(from: &str, to: &str, body: &str, media: &[(&str, &str)]) -> Vec<(String, String)> {
        let sid = format!("{}{}", if media.is_empty() { "SM" } else { "MM" }, hex32());
        let mut p = vec![
            ("ToCountry".to_string(), "US".to_string()),
            ("SmsMessageSid".into(), sid.clone()),
            ("NumMedia".into(), media.len().to_string()),
            ("SmsSid".into(), sid.clone()),
            ("SmsStatus".into(), "received".into()),
            ("Body".into(), body.into()),
            ("To".into(), to.into()),
            ("NumSegments".into(), "1".into()),
            ("MessageSid".into(), sid),
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("From".into(), from.into()),
            ("ApiVersion".into(), "2010-04-01".into()),
        ];
        for (i, (url, ct)) in media.iter().enumerate() {
            p.push((format!("MediaContentType{i}"), ct.to_string()));
            p.push((format!("MediaUrl{i}"), url.to_string()));
        }
        p
    }

    /// POSTs a signed status callback for a message, as Twilio would.
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> reqwest::Response {
        let params = self.status_callback_params(provider_message_id, status, error_code);
        self.post_form(callback_url, &params, Some(sign(AUTH_TOKEN, callback_url, &params))).await
    }

    /// POSTs a signed inbound message.
    pub async fn send_inbound(
        &self,
        callback_url: &str,
        from: &str,
        to: &str,
        body: &str,
        media: &[(&str, &str)],
    ) -> reqwest::Response {
        let params = Self::inbound_params(from, to, body, media);
        self.post_form(callback_url, &params, Some(sign(AUTH_TOKEN, callback_url, &params))).await
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
        match forgery {
            Forgery::WrongSecret => {
                let sig = sign(OTHER_TOKEN, callback_url, &params);
                self.post_form(callback_url, &params, Some(sig)).await
            }
            Forgery::TamperedBody => {
                let sig = sign(AUTH_TOKEN, callback_url, &params);
                let forged_status = if status == "delivered" { "failed" } else { "delivered" };
                let tampered: Vec<(String, String)> = params
                    .into_iter()
                    .map(
                        |(k, v)| {
                            if k == "MessageStatus" || k == "SmsStatus" { (k, forged_status.into()) } else { (k, v) }
                        },
                    )
                    .collect();
                self.post_form(callback_url, &tampered, Some(sig)).await
            }
            Forgery::OtherUrl => {
                let sig = sign(AUTH_TOKEN, "https://elsewhere.example/hook", &params);
                self.post_form(callback_url, &params, Some(sig)).await
            }
            Forgery::MissingSignature => self.post_form(callback_url, &params, None).await,
        }
    }

    async fn post_form(&self, url: &str, params: &[(String, String)], signature: Option<String>) -> reqwest::Response {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        let mut rb = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "TwilioProxy/1.1")
            .header("i-twilio-idempotency-token", uuid());
        if let Some(sig) = signature {
            rb = rb.header(SIGNATURE_HEADER, sig);
        }
        rb.body(s.finish()).send().await.expect("callback receiver reachable")
    }
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    let path = req.uri.path().to_string();
    let Some(sid) = path.strip_prefix("/2010-04-01/Accounts/").and_then(|r| r.strip_suffix("/Messages.json")) else {
        return error(404, 20404, &format!("The requested resource {path} was not found"));
    };
    if req.method != http::Method::POST {
        return error(405, 20004, "Method not allowed");
    }
    if !basic_auth_ok(req.header("authorization"), sid) {
        return error(401, 20003, "Authentication Error - invalid username");
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let media: Vec<&str> = params.iter().filter(|(k, _)| k == "MediaUrl").map(|(_, v)| v.as_str()).collect();

    let Some(to) = get("To") else {
        return error(400, 21604, "A 'To' phone number is required.");
    };
    if !is_e164(to) {
        return error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    let service = get("MessagingServiceSid");
    let Some(from) = get("From").or(service) else {
        return error(400, 21603, "A 'From' phone number is required.");
    };
    if let Some(mg) = service
        && mg != MESSAGING_SERVICE_SID
    {
        return error(400, 21701, "The Messaging Service Sid is invalid.");
    }
    let body = get("Body").unwrap_or_default();
    if body.is_empty() && media.is_empty() {
        return error(400, 21602, "Message body is required.");
    }
    if body.chars().count() > 1600 {
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    if media.len() > 10 {
        return error(400, 21623, "Number of media files exceeds allowed limit.");
    }
    if let Some(vp) = get("ValidityPeriod")
        && !vp.parse::<u32>().is_ok_and(|v| (1..=36_000).contains(&v))
    {
        return error(400, 90007, "Invalid validity period value");
    }

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(FakeOutcome::Accept);
    match outcome {
        FakeOutcome::Accept => accept(state, to, from, service, body, media.len()),
        FakeOutcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept(state, to, from, service, body, media.len())
        }
        FakeOutcome::RateLimited(secs) => {
            let mut r = error(429, 20429, "Too Many Requests");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        FakeOutcome::ServerError(status) => {
            if status == 503 {
                error(503, 20503, "Service Unavailable")
            } else {
                error(status, 20500, "Internal Server Error")
            }
        }
        FakeOutcome::Permanent(code) => {
            let n: u32 = code.parse().unwrap_or(21211);
            error(400, n, permanent_message(n))
        }
    }
}

fn accept(
    state: &State,
    to: &str,
    from: &str,
    service: Option<&str>,
    body: &str,
    num_media: usize,
) -> http::Response<bytes::Bytes> {
    let sid = format!("{}{}", if num_media > 0 { "MM" } else { "SM" }, hex32());
    let from_number = if from.starts_with("MG") { "+12015550100" } else { from };
    state.sent.lock().unwrap().insert(sid.clone(), Sent { from: from_number.into(), to: to.into() });
    let now = chrono::Utc::now().to_rfc2822();
    // With a Messaging Service the message is `accepted` and not yet segmented.
    let (status, segments) = match service {
        Some(_) => ("accepted", "0".to_string()),
        None => {
            let n = body.chars().count();
            ("queued", if n <= 160 { 1 } else { n.div_ceil(153) }.to_string())
        }
    };
    json(
        201,
        &json!({
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": null,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": if service.is_some() { Value::Null } else { json!(from) },
            "messaging_service_sid": service,
            "num_media": num_media.to_string(),
            "num_segments": segments,
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json")},
            "to": to,
            "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
        }),
    )
}

/// Twilio's legacy error body.
fn error(status: u16, code: u32, message: &str) -> http::Response<bytes::Bytes> {
    let mut body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status
    });
    if code == 20003 {
        body["detail"] = json!("Your AccountSid or AuthToken was incorrect.");
    }
    json(status, &body)
}

fn permanent_message(code: u32) -> &'static str {
    match code {
        21211 => "Invalid 'To' Phone Number",
        21408 => "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
        21610 => "Attempt to send to unsubscribed recipient",
        21612 => "The 'To' phone number is not currently reachable via SMS",
        21614 => "'To' number is not a valid mobile number",
        21611 => "This 'From' number has exceeded the maximum number of queued messages",
        30001 => "Queue overflow",
        _ => "Invalid request",
    }
}

fn basic_auth_ok(header: Option<&str>, path_sid: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(decoded) = String::from_utf8(decoded) else { return false };
    decoded == format!("{ACCOUNT_SID}:{AUTH_TOKEN}") && path_sid == ACCOUNT_SID
}

fn is_e164(s: &str) -> bool {
    s.len() >= 8
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].bytes().all(|b| b.is_ascii_digit())
        && !s[1..].starts_with('0')
}

/// 32 lowercase hex characters, unique within the process (the tail of a Twilio SID).
fn hex32() -> String {
    use sha2::Digest as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    hex::encode(&sha2::Sha256::digest(format!("twilio-fake:{n}:{t}").as_bytes())[..16])
}

fn uuid() -> String {
    let x = hex32();
    format!("{}-{}-4{}-8{}-{}", &x[0..8], &x[8..12], &x[13..16], &x[17..20], &x[20..32])
}
