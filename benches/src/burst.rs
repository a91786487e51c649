//! The burst under faults (BENCHMARKS.md §4): N messages from C concurrent clients
//! through the real pipeline on the emulator, with
//! - provider faults on a tenth of the messages, mixed transient (the sandbox answers
//!   503 once) and permanent (invalid destination),
//! - duplicated and reordered receipts (the sandbox's out-of-order script),
//! - a tenant callback endpoint that accepts connections and never answers,
//! - AWS unreachable for `outage_secs` in the middle (the fault proxy pauses every
//!   connection), while clients keep submitting and retry 503s with the same
//!   `Idempotency-Key`, as a well-behaved workflow does.
//!
//! It reports what a PSAP cares about: accepted, the terminal states against what
//! each sandbox number promises, **lost** (accepted, never terminal), **double sends**
//! (a message the provider received twice), **wrong terminal states**, the time to
//! settle after the outage, and peak memory of this process and of the emulator.
//! The sweep runs every minute, as the schedule does in AWS.

use dispatch_local::sandbox::numbers;
use dispatch_tests::faults::AwsFaults;
use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Options {
    pub messages: usize,
    pub concurrency: usize,
    pub outage_secs: u64,
    pub timeout_secs: u64,
    /// The emulator's pid, for its peak memory (`None`: not reported).
    pub emulator_pid: Option<u32>,
}

/// The sandbox number for message `i` and the terminal state it promises.
fn script(i: usize) -> (&'static str, &'static str) {
    match i % 20 {
        0 => (numbers::UNAVAILABLE_ONCE, "delivered"), // transient fault, retried
        1 => (numbers::INVALID_DESTINATION, "failed"), // permanent fault
        2 => (numbers::OUT_OF_ORDER, "delivered"),     // duplicated, reordered receipts
        3 => (numbers::UNDELIVERED, "undelivered"),
        _ => (numbers::DELIVERED, "delivered"),
    }
}

/// Peak resident memory (`VmHWM`) of a process, in MiB.
fn peak_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

#[derive(Clone, Default)]
struct Submitted {
    id: Option<String>,
    expected: &'static str,
    attempts: u32,
    refused_503: u32,
}

pub async fn run(opts: &Options) -> anyhow::Result<(Value, bool)> {
    // First, before any AWS client exists.
    let faults = Arc::new(AwsFaults::in_front_of_emulator().await?);

    // A tenant CAD endpoint that takes connections and never answers (each is held
    // for a minute, far past our 5 s callback timeout, then dropped).
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hang_url = format!("http://{}/events", hang.local_addr()?);
    let held = Arc::new(AtomicUsize::new(0));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = hang.accept().await {
            h.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(sock);
            });
        }
    });
    let env = TestEnv::start_with("burst", &[dispatch_common::providers::ProviderKind::Sandbox], move |mut c| {
        let secret_id = format!("dispatch/{}/callback/cad", c.tenant);
        c.callback = Some(serde_json::from_value(json!({"url": hang_url, "secret_id": secret_id})).expect("callback config"));
        // A realistic receipt window: the test tenant's 2 s would expire messages whose
        // receipts wait out the outage.
        c.delivery.receipt_window_secs = 600;
        c
    })
    .await;
    dispatch_local::seed::put_secret(&env.pipeline.clients, &format!("dispatch/{}/callback/cad", env.tenant), "cad-secret").await?;
    let env = Arc::new(env);

    // The schedule, compressed.
    let sweeping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sweeper = {
        let (env, sweeping) = (env.clone(), sweeping.clone());
        tokio::spawn(async move {
            while sweeping.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(60)).await;
                // As the schedule does: a failed sweep is retried by the next one.
                match tokio::time::timeout(Duration::from_secs(30), dispatch_common::handlers::retry::sweep(&env.pipeline.deps)).await {
                    Ok(Ok(r)) => eprintln!("burst: sweep {r:?}"),
                    Ok(Err(e)) => eprintln!("burst: sweep failed ({e}); the next one tries again"),
                    Err(_) => eprintln!("burst: sweep timed out; the next one tries again"),
                }
            }
        })
    };

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(vec![Submitted::default(); opts.messages]));
    let url = format!("{}/v1/messages", env.pipeline.api_url());
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(35)).build()?;
    let tag = chrono::Utc::now().timestamp_millis();
    let mut clients = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        let (next, results, url, http, key, n) = (next.clone(), results.clone(), url.clone(), http.clone(), env.key.clone(), opts.messages);
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let (to, expected) = script(i);
                let body = json!({"to": to, "body": format!("Burst {i}: the water supply is restored."), "category": "resident_update"}).to_string();
                let mut rec = Submitted { expected, ..Default::default() };
                // Retry 5xx and network errors with the same key, up to about a minute.
                for attempt in 0..12u32 {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
                    }
                    rec.attempts += 1;
                    let sent = http.post(&url).bearer_auth(&key).header("content-type", "application/json").header("Idempotency-Key", format!("burst-{tag}-{i}")).body(body.clone()).send().await;
                    let Ok(resp) = sent else { continue };
                    let status = resp.status().as_u16();
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    if status == 503 {
                        rec.refused_503 += 1;
                        continue;
                    }
                    if status == 202 || status == 200 {
                        rec.id = v["id"].as_str().map(str::to_string);
                    }
                    break;
                }
                results.lock().expect("results")[i] = rec;
            }
        }));
    }

    // The outage, once about 40 % of the burst is submitted.
    let outage = {
        let (next, faults, n, secs) = (next.clone(), faults.clone(), opts.messages, opts.outage_secs);
        tokio::spawn(async move {
            while next.load(Ordering::SeqCst) < n * 2 / 5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let began = Instant::now();
            faults.pause();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            faults.resume();
            (began, Instant::now())
        })
    };
    for c in clients {
        c.await?;
    }
    let submitted_secs = started.elapsed().as_secs_f64();
    let (outage_began, outage_ended) = outage.await?;
    eprintln!("burst: submitted in {submitted_secs:.0} s; settling");
    let submitted: Vec<Submitted> = results.lock().expect("results").clone();

    // Settle: every accepted message reaches a terminal state (or the timeout passes).
    let terminal = ["delivered", "undelivered", "failed", "expired", "rejected", "canceled"];
    let deadline = Instant::now() + Duration::from_secs(opts.timeout_secs);
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut progress = Instant::now();
    loop {
        for s in &submitted {
            let Some(id) = &s.id else { continue };
            if last.get(id).is_some_and(|st| terminal.contains(&st.as_str())) {
                continue;
            }
            let (code, m) = env.get(id).await;
            let status = if code == 200 { m["status"].as_str().unwrap_or("?").to_string() } else { format!("http_{code}") };
            last.insert(id.clone(), status);
        }
        let open = last.values().filter(|st| !terminal.contains(&st.as_str())).count();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        if progress.elapsed() > Duration::from_secs(15) {
            progress = Instant::now();
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for st in last.values() {
                *by.entry(st.as_str()).or_default() += 1;
            }
            eprintln!("burst: {:.0} s after the outage: {by:?}", outage_ended.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settled_after_outage = outage_ended.elapsed().as_secs_f64();
    sweeping.store(false, Ordering::Relaxed);
    sweeper.abort();

    // What the provider took (its refusals, e.g. the scripted 503, are recorded too,
    // with their `outcome`; those are not sends).
    let received = env.sandbox.received();
    let mut by_ref: BTreeMap<String, usize> = BTreeMap::new();
    for r in received.iter().filter(|r| r.get("outcome").is_none()) {
        if let Some(c) = r["client_ref"].as_str() {
            *by_ref.entry(c.to_string()).or_default() += 1;
        }
    }
    let accepted: Vec<&Submitted> = submitted.iter().filter(|s| s.id.is_some()).collect();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let (mut lost, mut unsettled, mut wrong) = (0usize, 0usize, 0usize);
    let mut wrong_examples = Vec::new();
    for s in &accepted {
        let id = s.id.as_deref().unwrap_or_default();
        let st = last.get(id).cloned().unwrap_or_else(|| "unknown".into());
        *states.entry(st.clone()).or_default() += 1;
        if !terminal.contains(&st.as_str()) {
            // Still moving when the run stopped, or lost: nothing will move a message
            // that is gone or has no due time (the sweep moves everything else).
            let (code, m) = env.get(id).await;
            if code != 200 || m["next_attempt_at"].is_null() {
                lost += 1;
            } else {
                unsettled += 1;
            }
        } else if st != s.expected {
            wrong += 1;
            if wrong_examples.len() < 5 {
                wrong_examples.push(json!({"id": id, "expected": s.expected, "got": st}));
            }
        }
    }
    let double_sends = by_ref.values().filter(|n| **n > 1).count();
    let never_accepted = submitted.len() - accepted.len();
    let ok = lost == 0 && unsettled == 0 && double_sends == 0 && wrong == 0 && never_accepted == 0;
    let self_pid = std::process::id().to_string();
    let v = json!({
        "burst": {
            "messages": opts.messages,
            "clients": opts.concurrency,
            "outage_secs": opts.outage_secs,
            "outage_started_after_secs": (outage_began - started).as_secs_f64(),
            "submitted_in_secs": submitted_secs,
            "accepted": accepted.len(),
            "never_accepted": never_accepted,
            "submit_503_answers": submitted.iter().map(|s| s.refused_503 as usize).sum::<usize>(),
            "submit_attempts_max": submitted.iter().map(|s| s.attempts).max().unwrap_or(0),
            "terminal_states": states,
            "expected_states": submitted.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, s| { *m.entry(s.expected).or_default() += 1; m }),
            "lost": lost,
            "not_settled_when_the_run_stopped": unsettled,
            "double_sends": double_sends,
            "wrong_terminal_states": wrong,
            "wrong_examples": wrong_examples,
            "provider_requests_recorded": received.len(),
            "settled_secs_after_outage": settled_after_outage,
            "sandbox_callbacks_abandoned": env.sandbox.callbacks_abandoned(),
            "tenant_endpoint_connections_held": held.load(Ordering::Relaxed),
            "peak_rss_mib": {
                "bench_process_with_in_process_functions": peak_mib(&self_pid),
                "emulator": opts.emulator_pid.and_then(|p| peak_mib(&p.to_string())),
            },
            "ok": ok,
        }
    });
    Ok((v, ok))
}
