//! A fake Vonage on loopback, serving both products the adapters speak:
//!
//! * **SMS API** `POST /sms/json` (form body, or query as the older SDKs send it):
//!   `api_key`/`api_secret` checked, `from`/`to`/`text` required, `to` 7–15 digits,
//!   `type` text|unicode, `ttl` 20000..=604800000, `client-ref` ≤ 40. Answers are
//!   always HTTP 200 with one `messages[]` item per concatenated part (`message-id` 16
//!   hex digits) or an item `{"status","error-text"}` — including bad credentials
//!   (status 4), as Vonage does.
//! * **Messages API** `POST /v1/messages` (JSON, HTTP Basic `api_key:api_secret`):
//!   `202 {"message_uuid"}` or RFC 7807 errors (`401 unauthorized`, `422` 1150
//!   "Invalid params" with `invalid_parameters`, `429` "Rate Limit Hit", ...).
//!
//! Sends consume scripted [`FakeOutcome`]s (default: accept). Callbacks are signed as
//! Vonage signs them: SMS receipts and inbound SMS with `sig` (+ `timestamp`, `nonce`)
//! in the account's signature method, Messages webhooks with an HS256 JWT carrying
//! `payload_hash`, using the same `signatures::vonage` signers the verifiers test.

use dispatch_common::providers::Credentials;
use dispatch_common::providers::credentials::{
    Secret, VonageMessagesCredentials, VonageSignatureMethod, VonageSmsCredentials,
};
use dispatch_common::signatures::vonage::{VonageJwtClaims, sign_messages_jwt, sign_sms};
use dispatch_local::http_server::{Request, Server, handler, json, serve_loopback};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_KEY: &str = "abcd1234";
pub const API_SECRET: &str = "Abcdef0123456789";
/// The account signature secret (never a real one).
pub const SIGNATURE_SECRET: &str = "qwertyuiopasdfghjklzxcvbnm123456";
/// A secret Vonage never signs with, for forgeries.
const OTHER_SECRET: &str = "zxcvbnmasdfghjklqwertyuiop654321";

/// What the next send gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeOutcome {
    /// SMS API: 200 with one item per part; Messages API: 202 with a `message_uuid`.
    Accept,
    /// HTTP 429 with `Retry-After: <secs>` (Messages: RFC 7807 "Rate Limit Hit";
    /// SMS API: the gateway's `{"Error": "Too Many Requests"}`).
    RateLimited(u64),
    /// SMS API only: HTTP 200 with part status `1` "Throttled", Vonage's documented
    /// per-message throttle (the Messages API answers it as `RateLimited`).
    Throttled,
    /// This status (5xx) with the API's error body.
    ServerError(u16),
    /// SMS API: HTTP 200 with this non-zero part `status` (e.g. `7` number barred).
    /// Messages API: an RFC 7807 error for this code (`1150`, `low-balance`, ...).
    Permanent(String),
    /// SMS API: a two-part message whose second part fails with this status.
    PartialFailure(String),
    /// Sleep this long, then accept (the caller should have given up by then).
    Timeout(Duration),
}

/// The name the other fakes use.
pub type Outcome = FakeOutcome;

/// Ways to get a callback wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a secret that is not the account's.
    WrongSecret,
    /// Properly signed, then a value changed.
    TamperedBody,
    /// Properly signed, ten minutes ago.
    StaleTimestamp,
    /// No `sig` parameter / no `Authorization` header.
    MissingSignature,
}

/// How Vonage delivers an SMS API callback (dashboard setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// `POST` with a JSON body (the API specification's form).
    JsonPost,
    /// `POST` with a form body.
    FormPost,
    /// `GET` with the parameters in the query.
    Get,
}

#[derive(Debug, Clone)]
enum Api {
    /// One entry per part id.
    Sms {
        client_ref: Option<String>,
        from: String,
        to: String,
    },
    Messages {
        channel: String,
        client_ref: Option<String>,
        from: String,
        to: String,
    },
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<FakeOutcome>>,
    sent: Mutex<HashMap<String, Api>>,
    /// First part id → every part id of an SMS API message.
    parts: Mutex<HashMap<String, Vec<String>>>,
}

pub struct FakeVonage {
    server: Server,
    state: Arc<State>,
    client: reqwest::Client,
    signature_method: VonageSignatureMethod,
}

impl FakeVonage {
    /// A fake whose SMS API signs with the dashboard default, "MD5 hash".
    pub async fn start() -> Self {
        Self::start_with(VonageSignatureMethod::Md5hash).await
    }

    /// A fake whose SMS API signs with `signature_method`.
    pub async fn start_with(signature_method: VonageSignatureMethod) -> Self {
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = serve_loopback(handler(move |req: Request| {
            let s = s.clone();
            async move { handle(&s, req).await }
        }))
        .await
        .expect("fake vonage binds");
        FakeVonage { server, state, client: reqwest::Client::new(), signature_method }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request the fake received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Queues outcomes; each send (either API) consumes one. Empty queue: accept.
    pub fn script(&self, outcomes: Vec<FakeOutcome>) {
        self.state.script.lock().unwrap().extend(outcomes);
    }

    /// SMS API credentials pointing at this fake.
    pub fn sms_credentials(&self) -> Credentials {
        Credentials::VonageSms(VonageSmsCredentials {
            api_key: API_KEY.into(),
            api_secret: Secret::new(API_SECRET),
            signature_secret: Secret::new(SIGNATURE_SECRET),
            signature_method: self.signature_method,
            api_base_url: Some(self.base_url()),
        })
    }

    /// Messages API credentials pointing at this fake.
    pub fn messages_credentials(&self) -> Credentials {
        Credentials::VonageMessages(VonageMessagesCredentials {
            api_key: API_KEY.into(),
            api_secret: Secret::new(API_SECRET),
            signature_secret: Secret::new(SIGNATURE_SECRET),
            api_base_url: Some(self.base_url()),
        })
    }

    /// Every part id of an SMS API message, given its first part's id.
    pub fn sms_part_ids(&self, first_part_id: &str) -> Vec<String> {
        self.state.parts.lock().unwrap().get(first_part_id).cloned().unwrap_or_else(|| vec![first_part_id.into()])
    }

    // ------------------------------------------------------------- SMS API callbacks

    /// The parameters of an SMS API delivery receipt for one part (unsigned).
    pub fn dlr_params(&self, part_id: &str, status: &str, err_code: Option<&str>) -> Vec<(String, String)> {
        let (client_ref, from, to) = match self.state.sent.lock().unwrap().get(part_id) {
            Some(Api::Sms { client_ref, from, to, .. }) => (client_ref.clone(), from.clone(), to.clone()),
            _ => (None, "AcmeInc".into(), "447400123456".into()),
        };
        let now = chrono::Utc::now();
        let mut p = vec![
            ("msisdn".to_string(), to),
            ("to".into(), from),
            ("network-code".into(), "23410".into()),
            ("messageId".into(), part_id.into()),
            ("price".into(), "0.03330000".into()),
            ("status".into(), status.into()),
            ("scts".into(), now.format("%y%m%d%H%M").to_string()),
            ("err-code".into(), err_code.unwrap_or("0").into()),
            ("api-key".into(), API_KEY.into()),
            ("message-timestamp".into(), now.format("%Y-%m-%d %H:%M:%S").to_string()),
        ];
        if let Some(r) = client_ref {
            p.push(("client-ref".into(), r));
        }
        p
    }

    /// The parameters of an inbound SMS (unsigned).
    pub fn inbound_sms_params(msisdn: &str, to: &str, text: &str) -> Vec<(String, String)> {
        let unicode = !text.is_ascii();
        vec![
            ("api-key".to_string(), API_KEY.to_string()),
            ("msisdn".into(), msisdn.into()),
            ("to".into(), to.into()),
            ("messageId".into(), sms_message_id()),
            ("text".into(), text.into()),
            ("type".into(), if unicode { "unicode" } else { "text" }.into()),
            ("keyword".into(), text.split_whitespace().next().unwrap_or_default().to_uppercase()),
            ("message-timestamp".into(), chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()),
        ]
    }

    /// Adds `timestamp`, `nonce` and `sig` (this fake's method) to `params`.
    pub fn sign_sms_params(&self, params: &mut Vec<(String, String)>, secret: &str, timestamp: i64) {
        params.push(("timestamp".into(), timestamp.to_string()));
        params.push(("nonce".into(), uuid()));
        let sig = sign_sms(secret, self.signature_method, params);
        params.push(("sig".into(), sig));
    }

    /// Sends a signed delivery receipt for one SMS API part in `carrier`'s form.
    pub async fn send_dlr(
        &self,
        callback_url: &str,
        part_id: &str,
        status: &str,
        err_code: Option<&str>,
        carrier: Carrier,
    ) -> reqwest::Response {
        let mut p = self.dlr_params(part_id, status, err_code);
        self.sign_sms_params(&mut p, SIGNATURE_SECRET, chrono::Utc::now().timestamp());
        self.deliver(callback_url, &p, carrier).await
    }

    /// Sends a signed receipt for every part of an SMS API message (one per part, as
    /// Vonage does), JSON POST.
    pub async fn send_dlrs_for_all_parts(
        &self,
        callback_url: &str,
        first_part_id: &str,
        status: &str,
        err_code: Option<&str>,
    ) -> Vec<reqwest::Response> {
        let mut out = Vec::new();
        for id in self.sms_part_ids(first_part_id) {
            out.push(self.send_dlr(callback_url, &id, status, err_code, Carrier::JsonPost).await);
        }
        out
    }

    /// Sends a signed inbound SMS.
    pub async fn send_inbound_sms(
        &self,
        callback_url: &str,
        msisdn: &str,
        to: &str,
        text: &str,
        carrier: Carrier,
    ) -> reqwest::Response {
        let mut p = Self::inbound_sms_params(msisdn, to, text);
        self.sign_sms_params(&mut p, SIGNATURE_SECRET, chrono::Utc::now().timestamp());
        self.deliver(callback_url, &p, carrier).await
    }

    // -------------------------------------------------------- Messages API callbacks

    /// A Messages API status webhook body. An `error_code` adds the `error` object
    /// (`1320`-style codes get a TTL-expiry text when `status` is `rejected` and the
    /// code is `ttl`).
    pub fn messages_status_body(&self, message_uuid: &str, status: &str, error_code: Option<&str>) -> String {
        let (channel, client_ref, from, to) = match self.state.sent.lock().unwrap().get(message_uuid) {
            Some(Api::Messages { channel, client_ref, from, to }) => {
                (channel.clone(), client_ref.clone(), from.clone(), to.clone())
            }
            _ => ("sms".into(), None, "447400123457".into(), "447400123456".into()),
        };
        let mut body = json!({
            "message_uuid": message_uuid,
            "to": to,
            "from": from,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "status": status,
            "channel": channel,
        });
        if let Some(r) = client_ref {
            body["client_ref"] = json!(r);
        }
        if matches!(status, "submitted" | "delivered") {
            body["usage"] = json!({"currency": "EUR", "price": "0.0333"});
        }
        if channel == "sms" && status == "submitted" {
            body["sms"] = json!({"count_total": "1"});
            body["destination"] = json!({"network_code": "23410"});
        }
        if let Some(code) = error_code {
            let (title, detail) = messages_delivery_error(code);
            body["error"] = json!({
                "type": format!("https://developer.vonage.com/api-errors/messages#{code}"),
                "title": title,
                "detail": detail,
                "instance": uuid(),
            });
        }
        body.to_string()
    }

    /// A Messages API inbound SMS (or MMS image when `image_url` is given) body.
    pub fn messages_inbound_body(from: &str, to: &str, text: &str, image_url: Option<&str>) -> String {
        let mut body = json!({
            "channel": if image_url.is_some() { "mms" } else { "sms" },
            "message_uuid": uuid(),
            "to": to,
            "from": from,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "message_type": if image_url.is_some() { "image" } else { "text" },
        });
        match image_url {
            Some(url) => {
                let mut image = json!({"url": url});
                if !text.is_empty() {
                    image["caption"] = json!(text);
                }
                body["image"] = image;
            }
            None => {
                body["text"] = json!(text);
                body["sms"] = json!({"num_messages": "1", "keyword": text.split_whitespace().next().unwrap_or_default().to_uppercase()});
                body["usage"] = json!({"price": "0.0057", "currency": "EUR"});
            }
        }
        body.to_string()
    }

    /// `Bearer <JWT>` for `body`, as Vonage signs Messages webhooks.
    pub fn messages_authorization(secret: &str, body: &str, iat: i64) -> String {
        let claims = VonageJwtClaims { jti: Some(uuid()), api_key: Some(API_KEY.into()), iat };
        format!("Bearer {}", sign_messages_jwt(secret, &claims, body.as_bytes()))
    }

    /// Sends a signed Messages API webhook `body`.
    pub async fn send_messages_webhook(&self, callback_url: &str, body: &str) -> reqwest::Response {
        let auth = Self::messages_authorization(SIGNATURE_SECRET, body, chrono::Utc::now().timestamp());
        self.post_json(callback_url, body.to_owned(), Some(auth)).await
    }

    // ----------------------------------------------------------------- both APIs

    /// Sends a signed status callback for a message this fake accepted, in the form
    /// of the API that accepted it: an SMS API receipt (JSON POST) for a part id, or a
    /// Messages API status webhook for a `message_uuid`. Unknown ids: by shape (a
    /// UUID is a Messages id).
    pub async fn send_status_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> reqwest::Response {
        if self.is_messages_id(provider_message_id) {
            let body = self.messages_status_body(provider_message_id, status, error_code);
            self.send_messages_webhook(callback_url, &body).await
        } else {
            self.send_dlr(callback_url, provider_message_id, status, error_code, Carrier::JsonPost).await
        }
    }

    /// Sends a status callback that is wrong in the way `forgery` says.
    pub async fn send_forged_callback(
        &self,
        callback_url: &str,
        provider_message_id: &str,
        status: &str,
        forgery: Forgery,
    ) -> reqwest::Response {
        let now = chrono::Utc::now().timestamp();
        let forged_status = if status == "delivered" { "failed" } else { "delivered" };
        if self.is_messages_id(provider_message_id) {
            let body = self.messages_status_body(provider_message_id, status, None);
            let (auth, body) = match forgery {
                Forgery::WrongSecret => (Some(Self::messages_authorization(OTHER_SECRET, &body, now)), body),
                Forgery::TamperedBody => (
                    Some(Self::messages_authorization(SIGNATURE_SECRET, &body, now)),
                    body.replace(&format!("\"status\":\"{status}\""), &format!("\"status\":\"{forged_status}\"")),
                ),
                Forgery::StaleTimestamp => {
                    (Some(Self::messages_authorization(SIGNATURE_SECRET, &body, now - 600)), body)
                }
                Forgery::MissingSignature => (None, body),
            };
            self.post_json(callback_url, body, auth).await
        } else {
            let mut p = self.dlr_params(provider_message_id, status, None);
            match forgery {
                Forgery::WrongSecret => self.sign_sms_params(&mut p, OTHER_SECRET, now),
                Forgery::TamperedBody => {
                    self.sign_sms_params(&mut p, SIGNATURE_SECRET, now);
                    for (k, v) in p.iter_mut() {
                        if k == "status" {
                            *v = forged_status.into();
                        }
                    }
                }
                Forgery::StaleTimestamp => self.sign_sms_params(&mut p, SIGNATURE_SECRET, now - 600),
                Forgery::MissingSignature => {
                    self.sign_sms_params(&mut p, SIGNATURE_SECRET, now);
                    p.retain(|(k, _)| k != "sig");
                }
            }
            self.deliver(callback_url, &p, Carrier::JsonPost).await
        }
    }

    fn is_messages_id(&self, id: &str) -> bool {
        match self.state.sent.lock().unwrap().get(id) {
            Some(Api::Messages { .. }) => true,
            Some(Api::Sms { .. }) => false,
            None => id.len() == 36 && id.matches('-').count() == 4,
        }
    }

    async fn deliver(&self, url: &str, params: &[(String, String)], carrier: Carrier) -> reqwest::Response {
        match carrier {
            Carrier::JsonPost => {
                let obj: Map<String, Value> =
                    params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                self.post_json(url, Value::Object(obj).to_string(), None).await
            }
            Carrier::FormPost => self
                .client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(params))
                .send()
                .await
                .expect("callback receiver reachable"),
            Carrier::Get => {
                let sep = if url.contains('?') { '&' } else { '?' };
                self.client
                    .get(format!("{url}{sep}{}", form(params)))
                    .send()
                    .await
                    .expect("callback receiver reachable")
            }
        }
    }

    async fn post_json(&self, url: &str, body: String, authorization: Option<String>) -> reqwest::Response {
        let mut rb = self.client.post(url).header("content-type", "application/json");
        if let Some(a) = authorization {
            rb = rb.header("authorization", a);
        }
        rb.body(body).send().await.expect("callback receiver reachable")
    }
}

fn form(params: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn handle(state: &State, req: Request) -> http::Response<bytes::Bytes> {
    state.requests.lock().unwrap().push(req.clone());
    match (req.method.as_str(), req.uri.path()) {
        ("POST", "/sms/json") => handle_sms(state, &req).await,
        ("POST", "/v1/messages") => handle_messages(state, &req).await,
        _ => problem(
            404,
            "https://developer.vonage.com/api-errors#not-found",
            "Not Found",
            "The requested resource does not exist, or you do not have access to it",
        ),
    }
}

// ------------------------------------------------------------------- SMS API

async fn handle_sms(state: &State, req: &Request) -> http::Response<bytes::Bytes> {
    // Parameters may come in the body or (older SDKs) the query.
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
    if let Some(q) = req.uri.query() {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let refuse = |status: &str, text: &str| sms_result(vec![json!({"status": status, "error-text": text})]);

    match (get("api_key"), get("api_secret"), get("sig")) {
        (Some(_), Some(_), Some(_)) => return refuse("32", "Signature and API secret disallowed"),
        (Some(API_KEY), Some(API_SECRET), None) => {}
        (None, _, _) => return refuse("2", "Missing api_key"),
        _ => return refuse("4", "Bad Credentials"),
    }
    let Some(from) = get("from") else { return refuse("2", "Missing from param") };
    let Some(to) = get("to") else { return refuse("2", "Missing to param") };
    if !(7..=15).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
        return refuse("3", "Invalid to param");
    }
    let Some(text) = get("text") else { return refuse("2", "Missing text param") };
    let kind = get("type").unwrap_or("text");
    if !matches!(kind, "text" | "unicode") {
        return refuse("3", "Invalid type param");
    }
    if let Some(ttl) = get("ttl")
        && !ttl.parse::<u64>().is_ok_and(|t| (20_000..=604_800_000).contains(&t))
    {
        return refuse("3", "Invalid ttl param");
    }
    let client_ref = get("client-ref").map(str::to_string);
    if client_ref.as_ref().is_some_and(|r| r.chars().count() > 40) {
        return refuse("3", "Invalid client-ref param");
    }
    if let Some(cb) = get("callback")
        && url::Url::parse(cb).is_err()
    {
        return refuse("23", "Invalid callback url");
    }
    let parts = part_count(text, kind == "unicode");
    let sms = SmsSend { from: from.to_string(), to: to.to_string(), client_ref, parts };

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(FakeOutcome::Accept);
    match outcome {
        FakeOutcome::Accept => accept_sms(state, &sms, None),
        FakeOutcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept_sms(state, &sms, None)
        }
        FakeOutcome::Throttled => refuse("1", "Throttled"),
        FakeOutcome::RateLimited(secs) => {
            let mut r = json(429, &json!({"Error": "Too Many Requests"}));
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        FakeOutcome::ServerError(status) => json(status, &json!({"Error": "Internal Server Error"})),
        FakeOutcome::Permanent(code) => refuse(&code, sms_error_text(&code)),
        FakeOutcome::PartialFailure(code) => accept_sms(state, &SmsSend { parts: sms.parts.max(2), ..sms }, Some(code)),
    }
}

struct SmsSend {
    from: String,
    to: String,
    client_ref: Option<String>,
    parts: u32,
}

fn accept_sms(state: &State, sms: &SmsSend, fail_last_with: Option<String>) -> http::Response<bytes::Bytes> {
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for i in 0..sms.parts {
        if i + 1 == sms.parts
            && let Some(code) = &fail_last_with
        {
            items.push(json!({"status": code, "error-text": sms_error_text(code)}));
            continue;
        }
        let id = sms_message_id();
        state.sent.lock().unwrap().insert(
            id.clone(),
            Api::Sms { client_ref: sms.client_ref.clone(), from: sms.from.clone(), to: sms.to.clone() },
        );
        let mut item = json!({
            "to": sms.to,
            "message-id": id,
            "status": "0",
            "remaining-balance": "38.07243628",
            "message-price": "0.04120000",
            "network": "23410",
        });
        if let Some(r) = &sms.client_ref {
            item["client-ref"] = json!(r);
        }
        items.push(item);
        ids.push(id);
    }
    if let Some(first) = ids.first() {
        state.parts.lock().unwrap().insert(first.clone(), ids.clone());
    }
    sms_result(items)
}

fn sms_result(items: Vec<Value>) -> http::Response<bytes::Bytes> {
    json(200, &json!({"message-count": items.len().to_string(), "messages": items}))
}

/// GSM: 160 / 153 per part; unicode: 70 / 67 (by UTF-16 units).
fn part_count(text: &str, unicode: bool) -> u32 {
    let (single, multi, n) =
        if unicode { (70, 67, text.encode_utf16().count()) } else { (160, 153, text.chars().count()) };
    if n <= single { 1 } else { n.div_ceil(multi) as u32 }
}

/// sms.yml `x-errors` descriptions.
fn sms_error_text(code: &str) -> &'static str {
    match code {
        "1" => "Throttled",
        "2" => "Missing Parameters",
        "3" => "Invalid Parameters",
        "4" => "Bad Credentials",
        "5" => "Internal Error",
        "6" => "Invalid Message",
        "7" => "Number barred.",
        "8" => "Partner Account Barred",
        "9" => "Partner Quota Violation",
        "10" => "Too Many Existing Binds",
        "11" => "Account Not Enabled For HTTP",
        "12" => "Message Too Long",
        "14" => "Invalid Signature",
        "15" => "Invalid Sender Address",
        "29" => "Non-Whitelisted Destination",
        "33" => "Number De-activated",
        _ => "Error",
    }
}

// ------------------------------------------------------------------- Messages API

async fn handle_messages(state: &State, req: &Request) -> http::Response<bytes::Bytes> {
    use base64::Engine as _;
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:{API_SECRET}")));
    if req.header("authorization") != Some(expected.as_str()) {
        return problem(
            401,
            "https://developer.nexmo.com/api-errors#unauthorized",
            "Unauthorized",
            "You did not provide correct credentials.",
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return invalid_params(&[("body", "must be a JSON object")]);
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let mut invalid = Vec::new();
    let to = s("to").unwrap_or_default();
    if !(7..=15).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
        invalid.push(("to", "must be an E.164 number without a leading +"));
    }
    if s("from").is_none() {
        invalid.push(("from", "is required"));
    }
    let channel = s("channel").unwrap_or_default();
    match (channel, s("message_type")) {
        ("sms", Some("text")) => match s("text") {
            None => invalid.push(("text", "is required")),
            Some(t) if t.chars().count() > 1000 => invalid.push(("text", "must be at most 1000 characters")),
            _ => {}
        },
        ("mms", Some("image")) => {
            if body.get("image").and_then(|i| i.get("url")).and_then(Value::as_str).is_none() {
                invalid.push(("image.url", "is required"));
            }
            if let Some(ttl) = body.get("ttl")
                && !ttl.as_u64().is_some_and(|t| (300..=259_200).contains(&t))
            {
                invalid.push(("ttl", "must be between 300 and 259200"));
            }
        }
        _ => invalid.push(("message_type", "invalid value for this channel")),
    }
    if s("client_ref").is_some_and(|r| r.chars().count() > 100) {
        invalid.push(("client_ref", "must be at most 100 characters"));
    }
    if !invalid.is_empty() {
        return invalid_params(&invalid);
    }
    let record = Api::Messages {
        channel: channel.to_string(),
        client_ref: s("client_ref").map(str::to_string),
        from: s("from").unwrap_or_default().to_string(),
        to: to.to_string(),
    };

    let outcome = state.script.lock().unwrap().pop_front().unwrap_or(FakeOutcome::Accept);
    match outcome {
        FakeOutcome::Accept | FakeOutcome::PartialFailure(_) => accept_messages(state, record),
        FakeOutcome::Timeout(d) => {
            tokio::time::sleep(d).await;
            accept_messages(state, record)
        }
        FakeOutcome::RateLimited(secs) => rate_limit_hit(secs),
        FakeOutcome::Throttled => rate_limit_hit(1),
        FakeOutcome::ServerError(status) => problem(
            status,
            "https://developer.vonage.com/api-errors#internal-error",
            "Internal Error",
            "An error occurred processing this request",
        ),
        FakeOutcome::Permanent(code) => match code.as_str() {
            "low-balance" => problem(
                402,
                "https://developer.nexmo.com/api-errors/#low-balance",
                "Low balance",
                "This request could not be performed due to your account balance being low.",
            ),
            "forbidden" => problem(
                403,
                "https://developer.vonage.com/api-errors#forbidden",
                "Forbidden",
                "Your account does not have permission to perform this action.",
            ),
            "unauthorized" => problem(
                401,
                "https://developer.nexmo.com/api-errors#unauthorized",
                "Unauthorized",
                "You did not provide correct credentials.",
            ),
            "1150" => invalid_params(&[("to", "invalid value")]),
            other => problem(
                422,
                &format!("https://developer.vonage.com/api-errors/messages#{other}"),
                "Invalid request",
                "The request was refused.",
            ),
        },
    }
}

fn rate_limit_hit(retry_after_secs: u64) -> http::Response<bytes::Bytes> {
    let mut r = problem(
        429,
        "https://developer.vonage.com/api-errors#throttled",
        "Rate Limit Hit",
        "Please wait, then retry your request",
    );
    r.headers_mut().insert("retry-after", retry_after_secs.to_string().parse().unwrap());
    r
}

fn accept_messages(state: &State, record: Api) -> http::Response<bytes::Bytes> {
    let id = uuid();
    state.sent.lock().unwrap().insert(id.clone(), record);
    json(202, &json!({"message_uuid": id}))
}

fn problem(status: u16, type_: &str, title: &str, detail: &str) -> http::Response<bytes::Bytes> {
    let mut r = json(status, &json!({"type": type_, "title": title, "detail": detail, "instance": uuid()}));
    r.headers_mut().insert("content-type", "application/problem+json".parse().unwrap());
    r
}

fn invalid_params(fields: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    let list: Vec<Value> = fields.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect();
    let mut r = json(
        422,
        &json!({
            "type": "https://developer.vonage.com/api-errors/messages#1150",
            "title": "Invalid params",
            "detail": "The value of one or more parameters is invalid.",
            "instance": uuid(),
            "invalid_parameters": list,
        }),
    );
    r.headers_mut().insert("content-type", "application/problem+json".parse().unwrap());
    r
}

/// `(title, detail)` of the delivery errors the fake's status webhooks can carry.
fn messages_delivery_error(code: &str) -> (Value, &'static str) {
    match code {
        "ttl" | "expired" => (json!("Message expired"), "The message TTL expired before it could be delivered"),
        "1000" => (
            json!(1000),
            "Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
        ),
        "1050" => (json!(1050), "Number barred"),
        "1270" => (json!(1270), "Destination unreachable"),
        other => (other.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(other)), "Message rejected"),
    }
}

// ------------------------------------------------------------------- ids

fn counter_hash(tag: &str) -> [u8; 32] {
    use sha2::Digest as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    sha2::Sha256::digest(format!("vonage-fake:{tag}:{n}:{t}").as_bytes()).into()
}

/// An SMS API message id: 16 uppercase hex digits (sms.yml example `0A0000001234567B`).
fn sms_message_id() -> String {
    hex::encode_upper(&counter_hash("sms")[..8])
}

/// A version-4-shaped UUID (Messages API `message_uuid`, JWT `jti`, SMS `nonce`).
fn uuid() -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&counter_hash("uuid")[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}
