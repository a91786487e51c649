//! Per function (and the hello-world baseline): binary size, deployment zip size,
//! init time, peak memory while handling one event, and proof that init is
//! network-free.
//!
//! * **Size**: the stripped binary as built; the zip is what `cargo lambda build
//!   --output-format zip` ships (one `bootstrap` entry, deflated), built here with
//!   Python's `zipfile` from the x86_64 binary as a stand-in for the arm64 one.
//! * **Init time**: process spawn → the function's first
//!   `GET /2018-06-01/runtime/invocation/next`, against [`RuntimeStub`]. Runs are
//!   interleaved across binaries so machine load hits all of them alike.
//! * **Memory**: `VmHWM` from `/proc/<pid>/status` when the function asks for its
//!   second event (i.e. after handling the first): the peak RSS of init + one event.
//! * **No network at init**: `AWS_ENDPOINT_URL` points at a "tripwire" listener that
//!   counts connections (it must see none), the stub must see nothing but Runtime API
//!   calls, and a separate run with `AWS_ENDPOINT_URL` on a closed port must still
//!   reach `next` and answer its event.

use crate::runtime_stub::{Mem, RuntimeStub};
use crate::stats::{self, r3};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const FUNCTIONS: [&str; 5] = ["submit", "route", "send", "webhook", "retry"];
pub const BASELINE: &str = "hello";

pub struct Options {
    pub bin_dir: PathBuf,
    pub runs: usize,
    pub sdk_runs: usize,
    pub breakdown_runs: usize,
    /// The emulator, for the optional "one AWS round trip" memory runs.
    pub moto: Option<String>,
    pub log_dir: PathBuf,
}

#[derive(Debug, Clone)]
enum Endpoint {
    Tripwire(String),
    Closed(String),
    Emulator(String),
}

impl Endpoint {
    fn url(&self) -> &str {
        match self {
            Self::Tripwire(u) | Self::Closed(u) | Self::Emulator(u) => u,
        }
    }
}

/// Counts TCP connections to a loopback port (and drops them).
struct Tripwire {
    url: String,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    async fn start() -> anyhow::Result<Self> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", l.local_addr()?);
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        Ok(Self { url, hits, task })
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn closed_port_url() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(format!("http://{addr}"))
}

/// The deployment's environment, as `infra/template.yaml` gives it (Globals plus the
/// function's own), with values shaped like a real stack's.
pub fn function_env(name: &str) -> Vec<(String, String)> {
    let q = |n: &str| format!("https://sqs.us-east-1.amazonaws.com/123456789012/sms-dispatch-{n}");
    let providers = [
        ("SANDBOX", "Sandbox"),
        ("TWILIO", "Twilio"),
        ("VONAGE_SMS", "VonageSms"),
        ("VONAGE_MESSAGES", "VonageMessages"),
        ("TELNYX", "Telnyx"),
        ("BANDWIDTH", "Bandwidth"),
        ("PLIVO", "Plivo"),
        ("SINCH", "Sinch"),
    ];
    let mut env = vec![
        ("TABLE_NAME".to_string(), "sms-dispatch-MessagesTable-1ABCDEFGHIJKL".to_string()),
        ("MEDIA_BUCKET".into(), "sms-dispatch-mediabucket-1abcdefghijkl".into()),
        ("ROUTE_QUEUE_URL".into(), q("RouteQueue")),
        ("TENANT_CALLBACK_QUEUE_URL".into(), q("TenantCallbackQueue")),
        ("ENABLED_PROVIDERS".into(), "sandbox,twilio".into()),
        ("WEBHOOK_BASE_URL".into(), "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws".into()),
        ("RUST_LOG".into(), "info".into()),
        (
            "AUDIT_HASH_KEY_SECRET_ID".into(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:sms-dispatch/PlatformSecret-AbCdEf".into(),
        ),
    ];
    for (suffix, id) in providers {
        env.push((format!("SEND_QUEUE_URL_{suffix}"), q(&format!("SendQueue{id}"))));
        env.push((format!("SEND_PRIORITY_QUEUE_URL_{suffix}"), q(&format!("SendPriorityQueue{id}"))));
    }
    match name {
        "send" => env.push(("PROVIDER".into(), "sandbox".into())),
        "retry" => {
            env.push(("ROUTE_DLQ_URL".into(), q("RouteDLQ")));
            env.push(("TENANT_CALLBACK_DLQ_URL".into(), q("TenantCallbackDLQ")));
            for (suffix, id) in providers {
                env.push((format!("SEND_DLQ_URL_{suffix}"), q(&format!("SendDLQ{id}"))));
            }
        }
        _ => {}
    }
    env
}

/// What the Lambda service sets for a `provided.al2023` function, plus dummy credentials.
fn lambda_env(name: &str, runtime_api: &str, endpoint: &str) -> Vec<(String, String)> {
    let function = format!("sms-dispatch-{name}");
    vec![
        ("AWS_LAMBDA_RUNTIME_API".to_string(), runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), function.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_EXECUTION_ENV".into(), "AWS_Lambda_provided.al2023".into()),
        ("_HANDLER".into(), "bootstrap".into()),
        ("LAMBDA_TASK_ROOT".into(), "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "ASIAEXAMPLEBENCHKEY0".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "bench/secret/access/key/not/real/000000000".into()),
        ("AWS_SESSION_TOKEN".into(), "bench-session-token".into()),
        ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
    ]
}

fn apigw_v2(path: &str, method: &str, domain: &str, headers: Value, body: Option<&str>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or(""),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "dispatch-bench"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:12:00:00 +0000",
            "timeEpoch": 1767268800000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn sqs_event(queue: &str, body: &str) -> Value {
    json!({"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767268800000", "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1767268800001"},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:sms-dispatch-{queue}"),
        "awsRegion": "us-east-1"
    }]})
}

const API_DOMAIN: &str = "abc123defg.execute-api.us-east-1.amazonaws.com";
const URL_DOMAIN: &str = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws";
const SUBMIT_BODY: &str = r#"{"to":"(201) 555-0123","body":"Officers are on their way.","category":"emergency_callback"}"#;

/// The event each binary handles. `offline`: answered without any AWS call (401,
/// 404, batch item failure). Otherwise: one that makes the handler's first SDK call.
pub fn event_for(name: &str, offline: bool) -> Value {
    let headers = |auth: bool| {
        let mut h = json!({"content-type": "application/json", "host": API_DOMAIN, "user-agent": "dispatch-bench", "x-forwarded-proto": "https", "idempotency-key": "bench-1"});
        if auth {
            h["authorization"] = json!("Bearer dsk_00112233445566778899aabbccddeeff00112233");
        }
        h
    };
    match (name, offline) {
        ("submit", true) => apigw_v2("/v1/messages", "POST", API_DOMAIN, headers(false), Some(SUBMIT_BODY)),
        ("submit", false) => apigw_v2("/v1/messages", "POST", API_DOMAIN, headers(true), Some(SUBMIT_BODY)),
        ("webhook", o) => {
            let path = if o { "/webhooks/carrier-pigeon/demo-psap/sandbox-main" } else { "/webhooks/sandbox/demo-psap/sandbox-main" };
            let body = r#"{"type":"message.status","id":"sbx_01JB8Z6Y9Q4X1N3V5T7R9P2M4K","client_ref":"01JB8Z6Y9Q4X1N3V5T7R9P2M4K","status":"delivered","occurred_at":"2026-01-01T12:00:00.000Z"}"#;
            let h = json!({"content-type": "application/json", "host": URL_DOMAIN, "user-agent": "sandbox", "x-forwarded-proto": "https", "sandbox-signature": "t=1767268800,v1=00"});
            apigw_v2(path, "POST", URL_DOMAIN, h, Some(body))
        }
        ("route", true) | ("send", true) | ("retry", true) => sqs_event("RouteQueue", "not a job"),
        ("route", false) => sqs_event("RouteQueue", r#"{"message_id":"01JB8Z6Y9Q4X1N3V5T7R9P2M4K","tenant":"demo-psap"}"#),
        ("send", false) => sqs_event(
            "SendQueueSandbox",
            r#"{"message_id":"01JB8Z6Y9Q4X1N3V5T7R9P2M4K","tenant":"demo-psap","provider_id":"sandbox-main","from":"+12015550100"}"#,
        ),
        ("retry", false) => json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-01-01T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/sms-dispatch-RetrySchedule"], "detail": {}
        }),
        _ => json!({"hello": "bench"}),
    }
}

/// Whether the answer to the offline event is the expected one.
fn offline_answer_ok(name: &str, response: &str) -> bool {
    let v: Value = serde_json::from_str(response).unwrap_or(Value::Null);
    match name {
        "submit" => v["statusCode"] == 401,
        "webhook" => v["statusCode"] == 404,
        "route" | "send" | "retry" => v["batchItemFailures"].as_array().map(|a| a.len()) == Some(1),
        _ => v["hello"] == "world",
    }
}

#[derive(Debug, Clone, Default)]
struct RunResult {
    init_ms: f64,
    handle_ms: f64,
    mem_init: Option<Mem>,
    mem_after: Option<Mem>,
    response: Option<String>,
    invocation_error: Option<String>,
    init_error: Option<String>,
    stray: Vec<String>,
    tripwire_hits: u64,
    reached_next: bool,
    answered: bool,
}

async fn run_once(bin: &Path, name: &str, endpoint: &Endpoint, offline: bool, log: &Path) -> anyhow::Result<RunResult> {
    let event = event_for(name, offline);
    let stub = RuntimeStub::start(&format!("sms-dispatch-{name}"), &event).await?;
    let tripwire = match endpoint {
        Endpoint::Tripwire(_) => Some(Tripwire::start().await?),
        _ => None,
    };
    let endpoint_url = tripwire.as_ref().map(|t| t.url.clone()).unwrap_or_else(|| endpoint.url().to_string());
    let mut env = lambda_env(name, &stub.host_port(), &endpoint_url);
    env.extend(function_env(name));
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(logf.try_clone()?))
        .stderr(Stdio::from(logf))
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    stub.set_pid(child.id());
    let reached = stub.wait_for(Duration::from_secs(30), |o| !o.next_at.is_empty() || !o.init_errors.is_empty()).await;
    let answered = reached
        && stub
            .wait_for(Duration::from_secs(30), |o| o.next_at.len() >= 2 || !o.invocation_errors.is_empty() || !o.init_errors.is_empty())
            .await;
    // Let a straggling connection show up before the verdict (there should be none).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = child.kill();
    let _ = child.wait();
    stub.release();
    let o = stub.observed();
    let mut r = RunResult {
        reached_next: !o.next_at.is_empty(),
        answered: answered && o.next_at.len() >= 2,
        stray: o.stray.clone(),
        tripwire_hits: tripwire.as_ref().map(|t| t.hits.load(Ordering::SeqCst)).unwrap_or(0),
        response: o.responses.first().map(|(_, b)| b.clone()),
        invocation_error: o.invocation_errors.first().cloned(),
        init_error: o.init_errors.first().cloned(),
        ..Default::default()
    };
    if let Some(first) = o.next_at.first() {
        r.init_ms = (*first - t0).as_secs_f64() * 1000.0;
        r.mem_init = o.mem_at_next[0];
    }
    if o.next_at.len() >= 2 {
        r.handle_ms = (o.next_at[1] - o.next_at[0]).as_secs_f64() * 1000.0;
        r.mem_after = o.mem_at_next[1];
    }
    Ok(r)
}

fn zip_size(bin: &Path, out: &Path) -> anyhow::Result<u64> {
    const PY: &str = r#"
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
with open(src, "rb") as f:
    data = f.read()
with zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
print(os.path.getsize(dst))
"#;
    let o = Command::new("python3").arg("-c").arg(PY).arg(bin).arg(out).output().context("running python3 for the zip")?;
    anyhow::ensure!(o.status.success(), "python3 zipfile failed: {}", String::from_utf8_lossy(&o.stderr));
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}

fn mb(bytes: u64) -> Value {
    r3(bytes as f64 / (1024.0 * 1024.0))
}

pub async fn run(opts: &Options) -> anyhow::Result<(Value, bool)> {
    std::fs::create_dir_all(&opts.log_dir)?;
    let mut names: Vec<&str> = vec![BASELINE];
    names.extend(FUNCTIONS);
    let bins: Vec<(String, PathBuf)> = names.iter().map(|n| (n.to_string(), opts.bin_dir.join(n))).collect();
    for (n, p) in &bins {
        anyhow::ensure!(p.exists(), "binary for {n} not found at {} (build it first)", p.display());
    }
    let mut ok = true;
    let mut problems: Vec<String> = Vec::new();

    // Sizes.
    let mut sizes = serde_json::Map::new();
    for (n, p) in &bins {
        let size = std::fs::metadata(p)?.len();
        let zip = zip_size(p, &opts.log_dir.join(format!("{n}.zip")))?;
        sizes.insert(n.clone(), json!({"binary_bytes": size, "binary_mib": mb(size), "zip_bytes": zip, "zip_mib": mb(zip)}));
    }

    // Init time and memory: tripwire endpoint, interleaved runs, one discarded warm-up each.
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); bins.len()];
    for round in 0..=opts.runs {
        for (i, (n, p)) in bins.iter().enumerate() {
            let log = opts.log_dir.join(format!("{n}.log"));
            let r = run_once(p, n, &Endpoint::Tripwire(String::new()), true, &log).await?;
            if round > 0 {
                results[i].push(r);
            }
        }
    }

    // Closed-port verification: init still succeeds and the offline event is answered.
    let mut closed = serde_json::Map::new();
    for (n, p) in &bins {
        let url = closed_port_url()?;
        let r = run_once(p, n, &Endpoint::Closed(url.clone()), true, &opts.log_dir.join(format!("{n}.log"))).await?;
        let good = r.reached_next && r.answered && r.init_error.is_none() && r.stray.is_empty();
        if !good {
            ok = false;
            problems.push(format!("{n}: with AWS_ENDPOINT_URL={url} (closed) init/event failed: {r:?}"));
        }
        closed.insert(n.clone(), json!({"endpoint": url, "reached_next": r.reached_next, "answered": r.answered, "init_ms": r3(r.init_ms), "response": r.response}));
    }

    // Optional: memory with one real SDK round trip (emulator, table does not exist).
    let mut sdk = serde_json::Map::new();
    if let Some(moto) = &opts.moto {
        for (n, p) in bins.iter().skip(1) {
            let mut hwm = Vec::new();
            let mut resp = None;
            let mut handle = Vec::new();
            for _ in 0..opts.sdk_runs {
                let r = run_once(p, n, &Endpoint::Emulator(moto.clone()), false, &opts.log_dir.join(format!("{n}.log"))).await?;
                if let Some(m) = r.mem_after {
                    hwm.push(m.hwm_kb as f64 / 1024.0);
                }
                handle.push(r.handle_ms);
                resp = r.response.or(r.invocation_error);
            }
            sdk.insert(n.clone(), json!({"vmhwm_mib": stats::summary(&hwm), "handle_ms": stats::summary(&handle), "response": resp}));
        }
    }

    // Per-binary summaries.
    let mut per = serde_json::Map::new();
    let med = |v: &[RunResult], f: &dyn Fn(&RunResult) -> f64| stats::median(&v.iter().map(f).collect::<Vec<_>>());
    let min = |v: &[RunResult], f: &dyn Fn(&RunResult) -> f64| stats::sorted(&v.iter().map(f).collect::<Vec<_>>()).first().copied().unwrap_or(f64::NAN);
    let base = &results[0];
    let base_p50 = med(base, &|r| r.init_ms);
    let base_min = min(base, &|r| r.init_ms);
    for (i, (n, _)) in bins.iter().enumerate() {
        let rs = &results[i];
        let init: Vec<f64> = rs.iter().map(|r| r.init_ms).collect();
        let handle: Vec<f64> = rs.iter().map(|r| r.handle_ms).collect();
        let hwm_init: Vec<f64> = rs.iter().filter_map(|r| r.mem_init).map(|m| m.hwm_kb as f64 / 1024.0).collect();
        let hwm_after: Vec<f64> = rs.iter().filter_map(|r| r.mem_after).map(|m| m.hwm_kb as f64 / 1024.0).collect();
        let rss_after: Vec<f64> = rs.iter().filter_map(|r| r.mem_after).map(|m| m.rss_kb as f64 / 1024.0).collect();
        let hits: u64 = rs.iter().map(|r| r.tripwire_hits).sum();
        let stray: Vec<String> = rs.iter().flat_map(|r| r.stray.clone()).collect();
        let all_answered = rs.iter().all(|r| r.reached_next && r.answered);
        let answers_ok = rs.iter().all(|r| r.response.as_deref().is_some_and(|b| offline_answer_ok(n, b)));
        if hits > 0 || !stray.is_empty() || !all_answered || !answers_ok {
            ok = false;
            problems.push(format!(
                "{n}: tripwire connections {hits}, stray requests {stray:?}, all answered {all_answered}, expected answers {answers_ok}; first response {:?}",
                rs.first().and_then(|r| r.response.clone().or(r.invocation_error.clone()))
            ));
        }
        let p50 = stats::median(&init);
        per.insert(
            n.clone(),
            json!({
                "size": sizes[n],
                "init_ms": stats::summary(&init),
                "init_ratio_vs_hello_p50": r3(p50 / base_p50),
                "init_ratio_vs_hello_min": r3(min(rs, &|r| r.init_ms) / base_min),
                "handle_first_event_ms": stats::summary(&handle),
                "vmhwm_at_init_mib": stats::summary(&hwm_init),
                "vmhwm_after_event_mib": stats::summary(&hwm_after),
                "vmrss_after_event_mib": stats::summary(&rss_after),
                "init_network": {"tripwire_connections": hits, "stray_stub_requests": stray},
                "event": if n == BASELINE { "{\"hello\":\"bench\"}" } else { offline_event_desc(n) },
                "answer": rs.first().and_then(|r| r.response.clone()),
                "closed_port_run": closed[n],
                "with_one_aws_call": sdk.get(n).cloned().unwrap_or(Value::Null),
            }),
        );
    }

    // Init steps of `dispatch_common::runtime::init`, each timed in a fresh process.
    let breakdown = run_breakdown(opts).await?;

    let out = json!({
        "host": crate::host_info(),
        "runs_per_binary": opts.runs,
        "method": {
            "init_ms": "spawn() of the binary -> its first GET /2018-06-01/runtime/invocation/next at the local Runtime API stub (loopback, hyper); median of interleaved runs after one discarded warm-up run per binary",
            "vmhwm_after_event_mib": "VmHWM of /proc/<pid>/status sampled when the function asks for its second event (after init + one handled event)",
            "zip": "python3 zipfile, one entry 'bootstrap' (0755), deflate level 6, of the x86_64 binary: stand-in for cargo lambda --arm64 --output-format zip",
            "init_network": "AWS_ENDPOINT_URL points at a listener that counts TCP connections; the stub records every non-Runtime-API request; a separate run uses a closed port",
        },
        "binaries": per,
        "init_breakdown": breakdown,
        "ok": ok,
        "problems": problems,
    });
    Ok((out, ok))
}

fn offline_event_desc(name: &str) -> &'static str {
    match name {
        "submit" => "API Gateway HTTP API v2: POST /v1/messages without Authorization -> 401",
        "webhook" => "Function URL v2: POST /webhooks/carrier-pigeon/... (unknown provider) -> 404",
        _ => "SQS event, one record with a malformed body -> one batch item failure",
    }
}

async fn run_breakdown(opts: &Options) -> anyhow::Result<Value> {
    let me = std::env::current_exe()?;
    let mut samples: Vec<Value> = Vec::new();
    let tw = Tripwire::start().await?;
    for _ in 0..opts.breakdown_runs {
        let mut env = lambda_env("route", "127.0.0.1:9", &tw.url);
        env.extend(function_env("route"));
        let o = Command::new(&me).arg("init-breakdown").env_clear().envs(env).stdin(Stdio::null()).output()?;
        anyhow::ensure!(o.status.success(), "init-breakdown failed: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("{}");
        samples.push(serde_json::from_str(line)?);
    }
    let keys: Vec<String> = samples.first().and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for k in keys {
        let xs: Vec<f64> = samples.iter().filter_map(|s| s[&k].as_f64()).collect();
        out.insert(k, json!({"p50_ms": r3(stats::median(&xs)), "min_ms": r3(stats::sorted(&xs).first().copied().unwrap_or(f64::NAN))}));
    }
    Ok(json!({
        "runs": opts.breakdown_runs,
        "tripwire_connections": tw.hits.load(Ordering::SeqCst),
        "what": "each step of dispatch_common::runtime::init (and what it does not do yet), timed inside a fresh process with the route function's environment",
        "steps": out,
    }))
}

/// Child side of `init-breakdown`: the steps of `runtime::init`, one timer each.
pub fn init_breakdown_child() -> anyhow::Result<Value> {
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tokio_runtime = ms(t);
    rt.block_on(async move {
        use dispatch_common::{aws, config::PlatformConfig, domain::E164, handlers::Deps, observability};
        let t = Instant::now();
        observability::init();
        let tracing_init = ms(t);
        let t = Instant::now();
        let cfg = PlatformConfig::from_env()?;
        let config_from_env = ms(t);
        let t = Instant::now();
        let sdk = aws::load().await;
        let sdk_config_load = ms(t);
        let t = Instant::now();
        let clients = aws::Clients::new(&sdk);
        let sdk_clients = ms(t);
        let t = Instant::now();
        let deps = Deps::new(cfg, &clients);
        let deps_new = ms(t);
        let t = Instant::now();
        E164::warm_up();
        let e164_warm_up = ms(t);
        let t = Instant::now();
        let _ = E164::parse("(201) 555-0123", Some("US"));
        let first_e164_parse = ms(t);
        let t = Instant::now();
        let _ = E164::parse("+447400123456", Some("US"));
        let second_region_parse = ms(t);
        drop(deps);
        Ok(json!({
            "tokio_runtime": tokio_runtime,
            "observability_init": tracing_init,
            "config_from_env": config_from_env,
            "aws_config_load": sdk_config_load,
            "aws_clients_new": sdk_clients,
            "deps_new (reqwest client, caches)": deps_new,
            "sum_of_runtime_init": tracing_init + config_from_env + sdk_config_load + sdk_clients + deps_new,
            "not_in_init: E164::warm_up": e164_warm_up,
            "not_in_init: first E164::parse (US, national)": first_e164_parse,
            "not_in_init: first E164::parse (GB)": second_region_parse,
        }))
    })
}
