//! The whole pipeline on the emulator (submit → route → send → sandbox provider →
//! signed callbacks → webhook → `delivered`), through [`CountingProxy`]:
//!
//! * AWS requests, DynamoDB read/write request units, SQS requests and Secrets
//!   Manager / S3 calls per delivered message, and what they cost per million;
//! * end-to-end latency (submit request sent → `delivered` written, as seen by the
//!   proxy, so waiting adds no requests) with p50/p95/p99, and how much of it is the
//!   emulator, SQS hops (poller artefacts) and everything else.
//!
//! Two phases on one `TestEnv` (real handlers, moto, sandbox provider over HTTP):
//! `sequential` (one message at a time, starting with cold caches: every call in a
//! message's window is that message's, which makes the attribution exact) and
//! `concurrent` (N messages, C in flight, closed loop).

use crate::prices;
use crate::proxy::{CallRecord, CountingProxy, ProxyData};
use crate::stats::{self, r3};
use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Options {
    pub sequential: usize,
    pub messages: usize,
    pub concurrency: usize,
    pub timeout_secs: f64,
    pub quiet_ms: u64,
    pub category: String,
    /// Assumed provider API latency that a real send function waits for (the sandbox
    /// answers in about a millisecond); only used for the Lambda GB-s estimate.
    pub provider_latency_ms: f64,
}

/// Binds the proxy's port and points the SDK at it. Call before any runtime or thread
/// exists (it sets process environment variables). Returns the listener and the real
/// emulator endpoint.
pub fn prepare_env() -> anyhow::Result<(std::net::TcpListener, String)> {
    let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    // SAFETY: called from `main` before the tokio runtime (or any other thread) starts.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &url);
        for (k, v) in [("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")] {
            if std::env::var(k).is_err() {
                std::env::set_var(k, v);
            }
        }
    }
    Ok((listener, upstream))
}

#[derive(Debug, Clone, Default)]
struct MsgRun {
    idx: usize,
    id: Option<String>,
    submit_start: f64,
    submit_end: f64,
    http_status: u16,
    terminal: Option<(String, f64)>,
    client_retries: u32,
}

struct PhaseRun {
    name: String,
    concurrency: usize,
    start: f64,
    end: f64,
    last_terminal: f64,
    msgs: Vec<MsgRun>,
    callbacks: usize,
}

async fn run_phase(env: &TestEnv, proxy: &Arc<CountingProxy>, name: &str, n: usize, concurrency: usize, opts: &Options) -> PhaseRun {
    let url = format!("{}/v1/messages", env.pipeline.api_url());
    let http = reqwest::Client::builder().no_proxy().build().expect("http client");
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::new()));
    let callbacks_before = env.sandbox.callbacks_sent();
    let start = proxy.now();
    let tag = format!("{}-{}", name, chrono::Utc::now().timestamp_millis());
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (proxy, http, next, out, url, key, tag) =
            (proxy.clone(), http.clone(), next.clone(), out.clone(), url.clone(), env.key.clone(), tag.clone());
        let category = opts.category.clone();
        let timeout = opts.timeout_secs * 1000.0;
        let phase_start = start;
        workers.push(tokio::spawn(async move {
            loop {
                let idx = next.fetch_add(1, Ordering::SeqCst);
                if idx >= n {
                    break;
                }
                let body = json!({"to": numbers::DELIVERED, "body": format!("Bench message {idx}: officers are on their way."), "category": category});
                let submit_start = proxy.now();
                // A well-behaved workflow: retry 5xx with the same Idempotency-Key.
                let (mut http_status, mut id, mut retries) = (0u16, None, 0u32);
                for attempt in 0..6u32 {
                    if attempt > 0 {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
                    }
                    let resp = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .header("Idempotency-Key", format!("bench-{tag}-{idx}"))
                        .body(body.to_string())
                        .send()
                        .await;
                    (http_status, id) = match resp {
                        Ok(r) => {
                            let st = r.status().as_u16();
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            (st, v["id"].as_str().map(str::to_string))
                        }
                        Err(_) => (0, None),
                    };
                    if http_status != 0 && http_status < 500 {
                        break;
                    }
                }
                let submit_end = proxy.now();
                let mut m = MsgRun { idx, id: id.clone(), submit_start, submit_end, http_status, terminal: None, client_retries: retries };
                if let Some(id) = id {
                    loop {
                        if let Some(t) = proxy.terminal(&id) {
                            m.terminal = Some(t);
                            break;
                        }
                        if proxy.now() - submit_start > timeout {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                let done = {
                    let mut o = out.lock().expect("results");
                    o.push(m);
                    o.len()
                };
                if done % 50 == 0 || done == n {
                    eprintln!("pipeline:   {done}/{n} finished ({:.0} s)", (proxy.now() - phase_start) / 1000.0);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let last_terminal = proxy.now();
    // Let trailing work (SQS deletes after a batch, late callbacks) finish inside the window.
    tokio::time::sleep(Duration::from_millis(opts.quiet_ms)).await;
    let mut msgs = std::mem::take(&mut *out.lock().expect("results"));
    msgs.sort_by_key(|m| m.idx);
    PhaseRun {
        name: name.to_string(),
        concurrency,
        start,
        end: proxy.now(),
        last_terminal,
        msgs,
        callbacks: env.sandbox.callbacks_sent().saturating_sub(callbacks_before),
    }
}

pub async fn run(opts: &Options, listener: std::net::TcpListener, upstream: &str) -> anyhow::Result<(Value, bool)> {
    let proxy = Arc::new(CountingProxy::start(listener, upstream).await?);
    eprintln!("pipeline: counting proxy on {} -> {upstream}", proxy.addr());
    let setup_start = proxy.now();
    let env = TestEnv::start("bench").await;
    let setup_end = proxy.now();
    eprintln!("pipeline: environment ready in {:.1} s; sequential phase: {} messages", (setup_end - setup_start) / 1000.0, opts.sequential);
    let seq = run_phase(&env, &proxy, "sequential", opts.sequential, 1, opts).await;
    eprintln!("pipeline: concurrent phase: {} messages, {} in flight", opts.messages, opts.concurrency);
    let conc = run_phase(&env, &proxy, "concurrent", opts.messages, opts.concurrency, opts).await;
    let data = proxy.snapshot();
    let setup_calls = data.records.iter().filter(|r| r.start < setup_end).count();
    let a = analyze(&seq, &data, true, opts);
    let b = analyze(&conc, &data, false, opts);
    let ok = [&seq, &conc].iter().all(|p| p.msgs.iter().all(|m| m.terminal.as_ref().is_some_and(|t| t.0 == "delivered")));
    let out = json!({
        "host": crate::host_info(),
        "emulator": upstream,
        "setup": {"seconds": r3((setup_end - setup_start) / 1000.0), "aws_calls_excluded": setup_calls,
                   "what": "TestEnv::start: provisioning from infra/template.yaml, secret, tenant config, API keys (not counted below)"},
        "method": {
            "counting": "every SDK request passes a reverse proxy on loopback (AWS_ENDPOINT_URL); classified by X-Amz-Target (DynamoDB/SQS/Secrets Manager JSON protocol) or as S3; windows are per phase, from the first submit until the last message is terminal plus a quiet period",
            "dynamodb_units": "computed from the items on the wire (moto returns no ConsumedCapacity): standard write ceil(max(old,new)/1KB), transactional 2x per item, GSI (both ALL) +ceil(size/1KB) per index entry put, +delete when the index key moves; reads ceil(size/4KB), eventually consistent x0.5; see benches/src/ddb.rs",
            "latency": "client sends POST /v1/messages -> the proxy sees the TransactWriteItems that makes the message 'delivered' succeed (no polling requests)",
            "attribution": "per message, its [submit, delivered] window is split: time inside an SQS hop (SendMessage returned -> first ReceiveMessage carrying the job returned) = queue hop (local poller; Lambda's event source mapping differs), else time inside an emulator call (sequential: any call; concurrent: calls naming the message) = emulator, else = rest (our code, local HTTP, the sandbox's two 20 ms callback delays, scheduling)",
        },
        "phases": [a, b],
        "prices": prices::describe(),
        "ok": ok,
    });
    drop(env);
    Ok((out, ok))
}

fn is_queue(q: &str, what: &str) -> bool {
    match what {
        "route" => q.contains("RouteQueue"),
        "send" => q.contains("SendQueue") || q.contains("SendPriorityQueue"),
        "callback" => q.contains("TenantCallbackQueue"),
        _ => false,
    }
}

fn analyze(p: &PhaseRun, data: &ProxyData, sequential: bool, opts: &Options) -> Value {
    let all: Vec<&CallRecord> = data.records.iter().filter(|r| r.start >= p.start && r.start < p.end).collect();
    // 5xx answers are the emulator failing (moto's TransactWriteItems deep-copies the
    // table and races with concurrent writers: "dictionary changed size during
    // iteration"); the SDK retries them. They are reported, not counted per message.
    let mut server_errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in all.iter().filter(|r| r.status >= 500) {
        *server_errors.entry(format!("{}.{} [{}]", r.service, r.op, r.kind)).or_default() += 1;
    }
    let recs: Vec<&CallRecord> = all.iter().copied().filter(|r| r.status < 500).collect();
    // Emulator slowdown over the phase (moto copies the whole table per transaction).
    let txn: Vec<&&CallRecord> = recs.iter().filter(|r| r.op == "TransactWriteItems").collect();
    let deciles: Vec<Value> = (0..10)
        .map(|d| {
            let (a, b) = (p.start + (p.end - p.start) * d as f64 / 10.0, p.start + (p.end - p.start) * (d + 1) as f64 / 10.0);
            let lat: Vec<f64> = txn.iter().filter(|r| r.start >= a && r.start < b).map(|r| r.end - r.start).collect();
            json!({"decile": d + 1, "calls": lat.len(), "p50_ms": r3(stats::median(&lat))})
        })
        .collect();
    let delivered: Vec<&MsgRun> = p.msgs.iter().filter(|m| m.terminal.as_ref().is_some_and(|t| t.0 == "delivered")).collect();
    let nd = delivered.len().max(1) as f64;
    let per = |x: f64| r3(x / nd);
    let secs = (p.end - p.start) / 1000.0;

    // Per operation.
    let mut ops: BTreeMap<String, Vec<&CallRecord>> = BTreeMap::new();
    for r in &recs {
        let key = if r.kind.is_empty() { format!("{}.{}", r.service, r.op) } else { format!("{}.{} [{}]", r.service, r.op, r.kind) };
        ops.entry(key).or_default().push(r);
    }
    let op_table: Vec<Value> = ops
        .iter()
        .map(|(k, rs)| {
            let d: Vec<f64> = rs.iter().map(|r| r.end - r.start).collect();
            let empty_polls = rs.iter().filter(|r| r.op == "ReceiveMessage" && r.received == 0).count();
            json!({
                "op": k,
                "calls": rs.len(),
                "per_delivered": per(rs.len() as f64),
                "errors": rs.iter().filter(|r| r.status >= 400).count(),
                "conflicts": rs.iter().filter(|r| r.conflict).count(),
                "empty_receives": empty_polls,
                "wru": per(rs.iter().map(|r| r.wru_table + r.wru_gsi).sum()),
                "rru": per(rs.iter().map(|r| r.rru).sum()),
                "latency_ms_p50": r3(stats::median(&d)),
                "latency_ms_p95": r3(stats::percentile_sorted(&stats::sorted(&d), 95.0)),
            })
        })
        .collect();

    // DynamoDB.
    let ddb: Vec<&&CallRecord> = recs.iter().filter(|r| r.service == "dynamodb").collect();
    let is_read = |r: &CallRecord| matches!(r.op.as_str(), "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems");
    let is_write = |r: &CallRecord| {
        matches!(r.op.as_str(), "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem")
    };
    let reads = ddb.iter().filter(|r| is_read(r)).count() as f64;
    let writes = ddb.iter().filter(|r| is_write(r)).count() as f64;
    let items_written: f64 = ddb.iter().map(|r| f64::from(r.items_written)).sum();
    let wru_table: f64 = ddb.iter().map(|r| r.wru_table).sum();
    let wru_gsi: f64 = ddb.iter().map(|r| r.wru_gsi).sum();
    let rru: f64 = ddb.iter().map(|r| r.rru).sum();
    let txns = ddb.iter().filter(|r| r.op == "TransactWriteItems").count() as f64;
    let conflicts = ddb.iter().filter(|r| r.conflict).count();
    let wru_refused: f64 = ddb.iter().filter(|r| r.conflict).map(|r| r.wru_table).sum();
    let mut sizes: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (at, what, bytes) in &data.item_sizes {
        if *at >= p.start && *at < p.end {
            sizes.entry(what.as_str()).or_default().push(*bytes as f64);
        }
    }
    let item_sizes: serde_json::Map<String, Value> =
        sizes.iter().map(|(k, v)| (k.to_string(), stats::summary(v))).collect();
    let mut wru_by_kind: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for r in ddb.iter().filter(|r| is_write(r)) {
        let e = wru_by_kind.entry(format!("{} [{}]", r.op, r.kind)).or_default();
        e.0 += r.wru_table;
        e.1 += r.wru_gsi;
        e.2 += 1;
    }

    // SQS.
    let sqs: Vec<&&CallRecord> = recs.iter().filter(|r| r.service == "sqs").collect();
    let sends = sqs.iter().filter(|r| r.op.starts_with("SendMessage")).count() as f64;
    let recv_nonempty: Vec<&&&CallRecord> = sqs.iter().filter(|r| r.op == "ReceiveMessage" && r.received > 0).collect();
    let recv_empty = sqs.iter().filter(|r| r.op == "ReceiveMessage" && r.received == 0).count() as f64;
    let received_msgs: f64 = recv_nonempty.iter().map(|r| f64::from(r.received)).sum();
    let delete_calls = sqs.iter().filter(|r| r.op.starts_with("DeleteMessage")).count() as f64;
    let other_sqs = sqs.iter().filter(|r| !r.op.starts_with("SendMessage") && r.op != "ReceiveMessage" && !r.op.starts_with("DeleteMessage")).count() as f64;
    let batches_on = |what: &str| recv_nonempty.iter().filter(|r| is_queue(r.queue.as_deref().unwrap_or(""), what)).count() as f64;
    let (route_batches, send_batches) = (batches_on("route"), batches_on("send"));
    let sqs_billed_measured = sends + recv_nonempty.len() as f64 + delete_calls;
    // Lambda's event source mapping deletes a batch with one DeleteMessageBatch.
    let sqs_billed_esm = sends + recv_nonempty.len() as f64 + recv_nonempty.len() as f64;

    let secrets = recs.iter().filter(|r| r.service == "secretsmanager").count() as f64;
    let s3 = recs.iter().filter(|r| r.service == "s3").count() as f64;

    // History events written (per delivered message).
    let mut events: BTreeMap<String, usize> = BTreeMap::new();
    for e in data.events.iter().filter(|e| e.at >= p.start && e.at < p.end) {
        *events.entry(format!("{} by {} (applied: {})", e.status, e.source, e.applied)).or_default() += 1;
    }
    let sent_by_webhook = data
        .events
        .iter()
        .filter(|e| e.at >= p.start && e.at < p.end && e.status == "sent" && e.applied && e.source == "webhook")
        .count();

    // Latency.
    let lat: Vec<f64> = delivered.iter().map(|m| m.terminal.as_ref().expect("terminal").1 - m.submit_start).collect();
    let submit_rtt: Vec<f64> = delivered.iter().map(|m| m.submit_end - m.submit_start).collect();
    let first_submit = p.msgs.iter().map(|m| m.submit_start).fold(f64::INFINITY, f64::min);
    let last_done = delivered.iter().map(|m| m.terminal.as_ref().expect("terminal").1).fold(0.0, f64::max);
    let throughput = delivered.len() as f64 / ((last_done - first_submit) / 1000.0);

    // Stages from the state writes.
    let stage_names = ["accepted", "queued", "sending", "sent", "delivered"];
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); stage_names.len()];
    for m in &delivered {
        let Some(id) = &m.id else { continue };
        let Some(w) = data.status_writes.get(id) else { continue };
        let at = |s: &str| w.iter().find(|(st, _)| st == s).map(|(_, t)| *t);
        let mut prev = m.submit_start;
        for (i, s) in stage_names.iter().enumerate() {
            if let Some(t) = at(s) {
                stages[i].push(t - prev);
                prev = t;
            }
        }
    }
    let stage_json: Vec<Value> = stage_names
        .iter()
        .zip(&stages)
        .map(|(s, v)| json!({"to": s, "ms": stats::summary(v)}))
        .collect();

    // Attribution.
    let mut tagged: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
    if !sequential {
        for r in &recs {
            if r.op == "ReceiveMessage" {
                continue;
            }
            for id in &r.ids {
                tagged.entry(id.as_str()).or_default().push((r.start, r.end));
            }
        }
    }
    let non_receive: Vec<&&CallRecord> = recs.iter().filter(|r| r.op != "ReceiveMessage").collect();
    let (mut hop_t, mut emu_t, mut rest_t, mut emu_calls_per_msg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in &delivered {
        let id = m.id.as_deref().unwrap_or("");
        let (t0, t1) = (m.submit_start, m.terminal.as_ref().expect("terminal").1);
        let mut iv: Vec<(usize, f64, f64)> = Vec::new();
        for ((hid, q), sent) in data.hop_sent.iter().filter(|((h, _), _)| h == id) {
            if let Some(recv) = data.hop_received.get(&(hid.clone(), q.clone())) {
                iv.push((0, *sent, *recv));
            }
        }
        let calls: Vec<(f64, f64)> = if sequential {
            non_receive.iter().filter(|r| r.end > t0 && r.start < t1).map(|r| (r.start, r.end)).collect()
        } else {
            tagged.get(id).cloned().unwrap_or_default()
        };
        emu_calls_per_msg.push(calls.len() as f64);
        iv.extend(calls.into_iter().map(|(a, b)| (1, a, b)));
        let parts = stats::attribute(t0, t1, &iv, 2);
        hop_t.push(parts[0]);
        emu_t.push(parts[1]);
        rest_t.push(parts[2]);
    }
    let total: f64 = lat.iter().sum();
    let share = |v: &[f64]| r3(100.0 * v.iter().sum::<f64>() / total);

    // Lambda: invocations per delivered message and an estimate of billed duration.
    let submits = p.msgs.len() as f64;
    let webhook_inv = p.callbacks as f64;
    let invocations = submits + route_batches + send_batches + webhook_inv;
    // Function-side time: every non-ESM AWS call (receives and deletes are made by the
    // event source mapping, not the function) at its measured emulator latency, plus the
    // assumed provider latency per send attempt.
    let fn_call_ms: f64 = recs
        .iter()
        .filter(|r| r.op != "ReceiveMessage" && !r.op.starts_with("DeleteMessage"))
        .map(|r| r.end - r.start)
        .sum();
    let gb_s = (fn_call_ms / nd + opts.provider_latency_ms) / 1000.0 * prices::LAMBDA_GB;

    let cost = |wru: f64, rru: f64, sqs: f64, inv: f64, gbs: f64, api: f64, sec: f64| {
        let items = json!({
            "dynamodb_writes": r3(wru * prices::DDB_PER_WRU * 1e6),
            "dynamodb_reads": r3(rru * prices::DDB_PER_RRU * 1e6),
            "sqs": r3(sqs * prices::SQS_PER_REQUEST * 1e6),
            "lambda_requests": r3(inv * prices::LAMBDA_PER_REQUEST * 1e6),
            "lambda_duration": r3(gbs * prices::LAMBDA_ARM_PER_GB_S * 1e6),
            "api_gateway_http_api": r3(api * prices::HTTP_API_PER_REQUEST * 1e6),
            "secrets_manager": r3(sec * prices::SECRETS_PER_CALL * 1e6),
        });
        let sum: f64 = items.as_object().expect("object").values().filter_map(Value::as_f64).sum();
        json!({"usd_per_million_delivered": r3(sum), "items": items})
    };
    let wru_pm = (wru_table + wru_gsi) / nd;
    let wru_pm_table = wru_table / nd;
    let target_wru = 5.0;
    let target_sqs = 6.0;
    json!({
        "phase": p.name,
        "concurrency": p.concurrency,
        "messages": p.msgs.len(),
        "delivered": delivered.len(),
        "not_delivered": p.msgs.iter().filter(|m| !m.terminal.as_ref().is_some_and(|t| t.0 == "delivered")).map(|m| json!({"idx": m.idx, "http_status": m.http_status, "id": m.id, "terminal": m.terminal.as_ref().map(|t| t.0.clone())})).collect::<Vec<_>>(),
        "window_seconds": r3(secs),
        "aws_calls_in_window": all.len(),
        "emulator_5xx_answers (excluded from the counts below; the SDK retried them)": server_errors,
        "client_submit_retries_after_5xx": p.msgs.iter().map(|m| m.client_retries).sum::<u32>(),
        "transact_write_latency_by_time_decile (emulator slowdown as the table grows)": deciles,
        "per_delivered_message": {
            "dynamodb": {
                "reads": per(reads),
                "writes": per(writes),
                "transactions": per(txns),
                "items_written": per(items_written),
                "rru": per(rru),
                "wru_table": per(wru_table),
                "wru_gsi": per(wru_gsi),
                "wru_total": per(wru_table + wru_gsi),
                "conflicts_in_window": conflicts,
                "wru_of_refused_writes (included above)": per(wru_refused),
                "item_bytes_written": item_sizes,
            },
            "sqs": {
                "send_message": per(sends),
                "receive_with_messages": per(recv_nonempty.len() as f64),
                "messages_received": per(received_msgs),
                "delete_message_calls": per(delete_calls),
                "other": per(other_sqs),
                "billed_requests_measured (sends + non-empty receives + deletes)": per(sqs_billed_measured),
                "billed_requests_as_lambda_esm (one DeleteMessageBatch per batch)": per(sqs_billed_esm),
                "empty_receives_in_window (idle long polls, not per message)": recv_empty,
                "empty_receives_per_second": r3(recv_empty / secs),
            },
            "secrets_manager_get_secret_value": per(secrets),
            "s3": per(s3),
            "lambda_invocations": {
                "submit": per(submits),
                "route (batches)": per(route_batches),
                "send (batches)": per(send_batches),
                "webhook (provider callbacks)": per(webhook_inv),
                "total": per(invocations),
            },
        },
        "targets": {
            "dynamodb_write_units_le_5": {"target": target_wru, "measured_total": r3(wru_pm), "measured_table_only": r3(wru_pm_table), "met": wru_pm <= target_wru},
            "sqs_requests_le_6": {"target": target_sqs, "measured": r3(sqs_billed_measured / nd), "as_lambda_esm": r3(sqs_billed_esm / nd), "met": sqs_billed_measured / nd <= target_sqs},
        },
        "dynamodb_writes_by_kind": wru_by_kind.iter().map(|(k, (t, g, n))| json!({"write": k, "requests_per_delivered": per(*n as f64), "wru_table_per_delivered": per(*t), "wru_gsi_per_delivered": per(*g)})).collect::<Vec<_>>(),
        "history_events_per_delivered": events.iter().map(|(k, v)| json!({"event": k, "per_delivered": per(*v as f64)})).collect::<Vec<_>>(),
        "sent_recorded_by_webhook_before_send": sent_by_webhook,
        "operations": op_table,
        "latency_ms": {
            "submit_to_delivered": stats::summary(&lat),
            "submit_api_round_trip": stats::summary(&submit_rtt),
            "throughput_delivered_per_sec": r3(throughput),
            "stages": stage_json,
            "attribution": {
                "mode": if sequential { "all calls in the message's window (exact: one message at a time)" } else { "calls naming the message (misses shared calls: API key, health counter, replay claims)" },
                "queue_hops_ms": stats::summary(&hop_t),
                "emulator_calls_ms": stats::summary(&emu_t),
                "rest_ms (our code, local HTTP, sandbox delays 2x20 ms)": stats::summary(&rest_t),
                "share_percent": {"queue_hops": share(&hop_t), "emulator": share(&emu_t), "rest": share(&rest_t)},
                "emulator_calls_per_message": stats::summary(&emu_calls_per_msg),
            },
            "last_terminal_after_first_submit_s": r3((p.last_terminal - first_submit) / 1000.0),
        },
        "cost": {
            "measured": cost(wru_pm, rru / nd, sqs_billed_measured / nd, invocations / nd, gb_s, 1.0, secrets / nd),
            "assumptions": {
                "lambda_duration_gb_s_per_message": r3(gb_s * 1000.0),
                "lambda_duration_note": format!("function-side AWS call time measured on the emulator ({:.1} ms/message) + {} ms assumed provider API latency, at 128 MB; receives/deletes are the event source mapping's", fn_call_ms / nd, opts.provider_latency_ms),
                "sqs": "sends + non-empty receives + deletes as measured; idle long polls of the event source mapping are a fixed cost per queue, not per message",
                "secrets_manager": "as measured with one shared cache; in AWS each route/send/webhook instance fetches once per SECRETS_TTL_SECS (300 s)",
                "not_included": "CloudWatch Logs ingestion, data transfer, storage (DynamoDB, SQS retention), the provider's own SMS price",
            },
        },
    })
}
