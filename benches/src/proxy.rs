//! A counting reverse proxy on loopback in front of the AWS emulator. Point
//! `AWS_ENDPOINT_URL` at it and every SDK call of the pipeline passes through: it is
//! classified by its `X-Amz-Target` header (DynamoDB, SQS and Secrets Manager speak
//! the JSON protocol: `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`,
//! `secretsmanager.GetSecretValue`) or, without one, as an S3 REST call; timed
//! (the round trip to the emulator as the proxy sees it); and, for DynamoDB, costed in
//! read/write request units from the items on the wire (see [`crate::ddb`]).
//!
//! It also watches the traffic for the facts the latency analysis needs, without
//! adding a single request: when each message's state was written (`MSG#<id>` /
//! `MESSAGE` puts), which history events were recorded, and when each job was sent to
//! and received from each queue.

use crate::ddb::{self, Images};
use dispatch_local::http_server::{self, Request, Response, Server};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One proxied request.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub service: String,
    pub op: String,
    /// DynamoDB: what the request touches, from the key (`message`, `event`,
    /// `api_key`, `replay`, `health`, ...; `+`-joined for a transaction).
    pub kind: String,
    /// Milliseconds since the proxy started.
    pub start: f64,
    pub end: f64,
    pub status: u16,
    /// Message ids the request names (`MSG#<id>` keys, `message_id` of a queued job).
    pub ids: Vec<String>,
    /// Queue name (last segment of `QueueUrl`) for SQS calls.
    pub queue: Option<String>,
    /// ReceiveMessage: messages returned.
    pub received: u32,
    /// DeleteMessage(Batch): messages deleted.
    pub deleted: u32,
    pub rru: f64,
    pub wru_table: f64,
    pub wru_gsi: f64,
    pub items_written: u32,
    /// A conditional write or transaction that was refused (its units are still counted).
    pub conflict: bool,
}

/// A history event seen on the wire.
#[derive(Debug, Clone)]
pub struct EventSeen {
    pub at: f64,
    pub id: String,
    pub status: String,
    pub source: String,
    pub applied: bool,
}

#[derive(Default)]
struct Inner {
    records: Vec<CallRecord>,
    images: Images,
    /// Message id → (status, time the write returned), in order.
    status_writes: HashMap<String, Vec<(String, f64)>>,
    terminal: HashMap<String, (String, f64)>,
    events: Vec<EventSeen>,
    /// (message id, queue) → time the SendMessage returned / the first ReceiveMessage
    /// carrying it returned.
    hop_sent: HashMap<(String, String), f64>,
    hop_received: HashMap<(String, String), f64>,
    /// (time, what, bytes) of every item put.
    item_sizes: Vec<(f64, String, usize)>,
}

struct State {
    upstream: String,
    client: reqwest::Client,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Everything the proxy saw, for analysis after a run.
#[derive(Debug, Clone, Default)]
pub struct ProxyData {
    pub records: Vec<CallRecord>,
    pub status_writes: HashMap<String, Vec<(String, f64)>>,
    pub terminal: HashMap<String, (String, f64)>,
    pub events: Vec<EventSeen>,
    pub hop_sent: HashMap<(String, String), f64>,
    pub hop_received: HashMap<(String, String), f64>,
    pub item_sizes: Vec<(f64, String, usize)>,
}

pub struct CountingProxy {
    server: Server,
    state: Arc<State>,
}

const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "trailer", "content-length"];

impl CountingProxy {
    /// Serves on `listener` (bound by the caller before the runtime started, so the
    /// address could go into `AWS_ENDPOINT_URL` first) and forwards to `upstream`.
    pub async fn start(listener: std::net::TcpListener, upstream: &str) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        drop(listener); // `http_server::serve` binds it again; nothing else can take it in between on loopback in practice
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build()?,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        });
        let s = state.clone();
        let server = http_server::serve(
            addr,
            http_server::handler(move |req| {
                let s = s.clone();
                async move { forward(s, req).await }
            }),
        )
        .await?;
        Ok(Self { server, state })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Milliseconds since the proxy started (the clock every record uses).
    pub fn now(&self) -> f64 {
        self.state.epoch.elapsed().as_secs_f64() * 1000.0
    }

    /// The terminal state of a message and when it was written, once seen.
    pub fn terminal(&self, id: &str) -> Option<(String, f64)> {
        self.state.inner.lock().expect("proxy state").terminal.get(id).cloned()
    }

    pub fn snapshot(&self) -> ProxyData {
        let i = self.state.inner.lock().expect("proxy state");
        ProxyData {
            records: i.records.clone(),
            status_writes: i.status_writes.clone(),
            terminal: i.terminal.clone(),
            events: i.events.clone(),
            hop_sent: i.hop_sent.clone(),
            hop_received: i.hop_received.clone(),
            item_sizes: i.item_sizes.clone(),
        }
    }
}

async fn forward(state: Arc<State>, req: Request) -> Response {
    let start = state.epoch.elapsed().as_secs_f64() * 1000.0;
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut rb = state.client.request(req.method.clone(), format!("{}{}", state.upstream, pq));
    for (k, v) in req.headers.iter() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            rb = rb.header(k, v);
        }
    }
    let result = rb.body(req.body.clone()).send().await;
    let (status, headers, body) = match result {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            match r.bytes().await {
                Ok(b) => (status, headers, b),
                Err(e) => return http_server::respond(502, "text/plain", format!("proxy: reading upstream body: {e}")),
            }
        }
        Err(e) => return http_server::respond(502, "text/plain", format!("proxy: upstream unreachable: {e}")),
    };
    let end = state.epoch.elapsed().as_secs_f64() * 1000.0;
    record(&state, &req, status.as_u16(), &body, start, end);
    let mut out = http::Response::builder().status(status);
    for (k, v) in headers.iter() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    out.body(body).unwrap_or_else(|_| http_server::respond(502, "text/plain", "proxy: bad upstream response"))
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

/// `MSG#<26 Crockford base32 chars>` occurrences in a request body.
fn message_ids_in(body: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(pos) = find(&body[i..], b"MSG#") {
        let s = i + pos + 4;
        if s + 26 <= body.len() && body[s..s + 26].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
            let id = String::from_utf8_lossy(&body[s..s + 26]).into_owned();
            if !out.contains(&id) {
                out.push(id);
            }
        }
        i = s;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn job_message_id(body: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(body?).ok()?;
    v.get("message_id")?.as_str().map(str::to_string)
}

fn queue_name(req: &Value) -> Option<String> {
    req.get("QueueUrl")?.as_str()?.rsplit('/').next().map(str::to_string)
}

const TERMINAL: [&str; 5] = ["delivered", "undelivered", "failed", "expired", "rejected"];

fn record(state: &State, req: &Request, status: u16, resp_body: &[u8], start: f64, end: f64) {
    let target = req.header("x-amz-target").unwrap_or("");
    let (service, op) = match target.split_once('.') {
        Some(("DynamoDB_20120810", op)) => ("dynamodb".to_string(), op.to_string()),
        Some(("AmazonSQS", op)) => ("sqs".to_string(), op.to_string()),
        Some(("secretsmanager", op)) => ("secretsmanager".to_string(), op.to_string()),
        Some((svc, op)) => (svc.to_ascii_lowercase(), op.to_string()),
        None => ("s3".to_string(), req.method.as_str().to_string()),
    };
    let ok = (200..300).contains(&status);
    let mut rec = CallRecord { service: service.clone(), op: op.clone(), start, end, status, ..Default::default() };
    let reqv = if service == "s3" { Value::Null } else { parse(&req.body) };
    let respv = if service == "s3" { Value::Null } else { parse(resp_body) };
    let mut inner = state.inner.lock().expect("proxy state");
    match service.as_str() {
        "dynamodb" => {
            rec.ids = message_ids_in(&req.body);
            let err_type = respv.get("__type").and_then(Value::as_str).unwrap_or("");
            rec.conflict = err_type.contains("ConditionalCheckFailed") || err_type.contains("TransactionCanceled");
            rec.kind = ddb_kind(&op, &reqv);
            dynamodb(&mut inner, &op, &reqv, &respv, ok, end, &mut rec);
        }
        "sqs" => {
            rec.queue = queue_name(&reqv);
            let q = rec.queue.clone().unwrap_or_default();
            match op.as_str() {
                "SendMessage" => {
                    if let Some(id) = job_message_id(reqv.get("MessageBody").and_then(Value::as_str)) {
                        if ok {
                            inner.hop_sent.entry((id.clone(), q)).or_insert(end);
                        }
                        rec.ids = vec![id];
                    }
                }
                "SendMessageBatch" => {
                    for e in reqv.get("Entries").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(id) = job_message_id(e.get("MessageBody").and_then(Value::as_str)) {
                            inner.hop_sent.entry((id.clone(), q.clone())).or_insert(end);
                            rec.ids.push(id);
                        }
                    }
                }
                "ReceiveMessage" => {
                    let msgs = respv.get("Messages").and_then(Value::as_array).cloned().unwrap_or_default();
                    rec.received = msgs.len() as u32;
                    for m in &msgs {
                        if let Some(id) = job_message_id(m.get("Body").and_then(Value::as_str)) {
                            inner.hop_received.entry((id, q.clone())).or_insert(end);
                        }
                    }
                }
                "DeleteMessage" => rec.deleted = u32::from(ok),
                "DeleteMessageBatch" => {
                    rec.deleted = reqv.get("Entries").and_then(Value::as_array).map(|a| a.len() as u32).unwrap_or(0)
                }
                _ => {}
            }
        }
        _ => {}
    }
    inner.records.push(rec);
}

/// What a key names, by its prefix (see `common/src/store/keys.rs`).
pub fn item_label(pk: &str, sk: &str) -> String {
    if pk.starts_with("MSG#") {
        return match sk {
            "MESSAGE" => "message".into(),
            "" => "message+history".into(),
            s if s.starts_with("EVT#") => "event".into(),
            s => format!("msg:{s}"),
        };
    }
    let prefix = pk.split('#').next().unwrap_or("");
    match prefix {
        "IDEM" => "idempotency".into(),
        "PMSG" => "provider_lookup".into(),
        "REPLAY" => "replay".into(),
        "APIKEY" => "api_key".into(),
        "HEALTH" => "health".into(),
        "DUE" => "due".into(),
        "TENANT" if sk == "CONFIG" => "tenant_config".into(),
        "TENANT" if sk.starts_with("CONFIG#v") => "tenant_config_version".into(),
        p => p.to_ascii_lowercase(),
    }
}

fn ddb_kind(op: &str, req: &Value) -> String {
    let key_label = |k: &Value| {
        let pk = ddb::attr_s(k, "pk").unwrap_or("");
        let sk = ddb::attr_s(k, "sk").unwrap_or("");
        item_label(pk, sk)
    };
    match op {
        "GetItem" | "UpdateItem" | "DeleteItem" => req.get("Key").map(key_label).unwrap_or_default(),
        "PutItem" => req.get("Item").map(key_label).unwrap_or_default(),
        "Query" => {
            let pk = req
                .get("ExpressionAttributeValues")
                .and_then(|v| v.get(":pk"))
                .and_then(|v| v.get("S"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let l = item_label(pk, "");
            match req.get("IndexName").and_then(Value::as_str) {
                Some(ix) => format!("{ix}:{l}"),
                None => l,
            }
        }
        "TransactWriteItems" => req
            .get("TransactItems")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|ti| {
                        ti.get("Put")
                            .and_then(|p| p.get("Item"))
                            .map(key_label)
                            .unwrap_or_else(|| ti.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default())
                    })
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn note_written_item(inner: &mut Inner, item: &Value, at: f64) {
    let (Some(pk), Some(sk)) = (ddb::attr_s(item, "pk"), ddb::attr_s(item, "sk")) else { return };
    inner.item_sizes.push((at, item_label(pk, sk), ddb::item_size(item)));
    let Some(id) = pk.strip_prefix("MSG#") else { return };
    if sk == "MESSAGE" {
        let status = ddb::attr_s(item, "status").unwrap_or("").to_string();
        if TERMINAL.contains(&status.as_str()) {
            inner.terminal.entry(id.to_string()).or_insert((status.clone(), at));
        }
        inner.status_writes.entry(id.to_string()).or_default().push((status, at));
    } else if sk.starts_with("EVT#") {
        let doc: Value = ddb::attr_s(item, "doc").and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
        inner.events.push(EventSeen {
            at,
            id: id.to_string(),
            status: doc.get("status").and_then(Value::as_str).unwrap_or("").to_string(),
            source: doc.get("source").and_then(Value::as_str).unwrap_or("").to_string(),
            applied: doc.get("applied").and_then(Value::as_bool).unwrap_or(false),
        });
    }
}

fn dynamodb(inner: &mut Inner, op: &str, req: &Value, resp: &Value, ok: bool, end: f64, rec: &mut CallRecord) {
    let consistent = req.get("ConsistentRead").and_then(Value::as_bool) == Some(true);
    match op {
        "GetItem" => {
            let size = resp.get("Item").map(ddb::item_size).unwrap_or(0);
            rec.rru = ddb::read_units(size, consistent);
        }
        "Query" | "Scan" => {
            let total: usize =
                resp.get("Items").and_then(Value::as_array).map(|a| a.iter().map(ddb::item_size).sum()).unwrap_or(0);
            rec.rru = ddb::read_units(total, consistent);
        }
        "PutItem" => {
            let item = req.get("Item").cloned().unwrap_or(Value::Null);
            if let Some(key) = ddb::key_of(&item) {
                let new = ddb::image_of(&item);
                let c = ddb::put_cost(inner.images.0.get(&key), &new, false);
                rec.wru_table = c.table;
                rec.wru_gsi = if ok { c.gsi } else { 0.0 };
                rec.items_written = 1;
                if ok {
                    inner.images.0.insert(key, new);
                    note_written_item(inner, &item, end);
                }
            }
        }
        "UpdateItem" => {
            // Only the circuit-breaker counters use UpdateItem: small items, no index keys.
            let key_size = req.get("Key").map(ddb::item_size).unwrap_or(0);
            let values: usize = req
                .get("ExpressionAttributeValues")
                .and_then(Value::as_object)
                .map(|m| m.values().map(ddb::value_size).sum())
                .unwrap_or(0);
            let key = req.get("Key").and_then(ddb::key_of);
            let old = key.as_ref().and_then(|k| inner.images.0.get(k)).map(|i| i.size).unwrap_or(0);
            let size = old.max(key_size + values + 16);
            rec.wru_table = ddb::kb_units(size, 1024);
            rec.items_written = 1;
            if let (true, Some(k)) = (ok, key) {
                inner.images.0.insert(k, ddb::ItemImage { size, index_keys: [None, None] });
            }
        }
        "DeleteItem" => {
            let key = req.get("Key").and_then(ddb::key_of);
            let c = ddb::delete_cost(key.as_ref().and_then(|k| inner.images.0.get(k)));
            rec.wru_table = c.table;
            rec.wru_gsi = if ok { c.gsi } else { 0.0 };
            rec.items_written = 1;
            if let (true, Some(k)) = (ok, key) {
                inner.images.0.remove(&k);
            }
        }
        "TransactWriteItems" => {
            let items = req.get("TransactItems").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut puts = Vec::new();
            for ti in &items {
                rec.items_written += 1;
                if let Some(item) = ti.get("Put").and_then(|p| p.get("Item")) {
                    let Some(key) = ddb::key_of(item) else { continue };
                    let new = ddb::image_of(item);
                    let c = ddb::put_cost(inner.images.0.get(&key), &new, true);
                    rec.wru_table += c.table;
                    if ok {
                        rec.wru_gsi += c.gsi;
                    }
                    puts.push((key, new, item.clone()));
                } else {
                    // Update / Delete / ConditionCheck: none are used by the store today;
                    // count them at the transactional minimum.
                    let key = ["Update", "Delete", "ConditionCheck"]
                        .iter()
                        .find_map(|k| ti.get(*k))
                        .and_then(|x| x.get("Key"))
                        .and_then(ddb::key_of);
                    let size = key.as_ref().and_then(|k| inner.images.0.get(k)).map(|i| i.size).unwrap_or(1);
                    rec.wru_table += 2.0 * ddb::kb_units(size, 1024);
                }
            }
            if ok {
                for (key, new, item) in puts {
                    inner.images.0.insert(key, new);
                    note_written_item(inner, &item, end);
                }
            }
        }
        "BatchWriteItem" => {
            for (_, reqs) in req.get("RequestItems").and_then(Value::as_object).into_iter().flatten() {
                for r in reqs.as_array().into_iter().flatten() {
                    rec.items_written += 1;
                    if let Some(item) = r.get("PutRequest").and_then(|p| p.get("Item")) {
                        let new = ddb::image_of(item);
                        let key = ddb::key_of(item);
                        let c = ddb::put_cost(key.as_ref().and_then(|k| inner.images.0.get(k)), &new, false);
                        rec.wru_table += c.table;
                        rec.wru_gsi += c.gsi;
                        if let (true, Some(k)) = (ok, key) {
                            inner.images.0.insert(k, new);
                            note_written_item(inner, item, end);
                        }
                    } else {
                        rec.wru_table += 1.0;
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_message_ids_in_keys() {
        let body = br#"{"Key":{"pk":{"S":"MSG#01JB8Z6Y9Q4X1N3V5T7R9P2M4K"},"sk":{"S":"MESSAGE"}},"x":"MSG#short"}"#;
        assert_eq!(message_ids_in(body), vec!["01JB8Z6Y9Q4X1N3V5T7R9P2M4K".to_string()]);
    }
}
