//! The local runner enforces Lambda's limits, handlers respect their deadline, and an
//! AWS outage (a fault proxy in front of the emulator) loses nothing:
//! an invocation that runs past its timeout is dropped with its whole batch left on the
//! queue (redelivered after the visibility timeout), and a send batch never starts a
//! provider call it could not finish before the deadline.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use dispatch_common::aws::Clients;
use dispatch_tests::harness::{require_emulator, unique_prefix};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_timeout_leaves_its_whole_batch_on_the_queue() {
    require_emulator();
    let clients = Clients::from_env().await;
    let name = unique_prefix("timeout");
    let url = clients
        .sqs
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    clients.sqs.send_message().queue_url(&url).message_body("{}").send().await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let c = calls.clone();
    let poller = dispatch_local::runner::spawn_poller(clients.clone(), url.clone(), stop.clone(), dispatch_local::runner::PollerLimits::with_timeout(Duration::from_millis(300)), move |_ev, _deadline| {
        c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            // A handler that ignores its deadline (the runner must stop it).
            tokio::time::sleep(Duration::from_secs(30)).await;
            SqsBatchResponse::default()
        })
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    assert!(calls.load(Ordering::SeqCst) >= 2, "dropped at the timeout and redelivered after the visibility timeout");
    // Never deleted: the record is still in the queue.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let left = clients.sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
    assert_eq!(left.messages.unwrap_or_default().len(), 1);
    let _ = clients.sqs.delete_queue().queue_url(&url).send().await;
}

async fn temp_queue(clients: &Clients, tag: &str) -> String {
    clients
        .sqs
        .create_queue()
        .queue_name(unique_prefix(tag))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The poller honours the mapping's batch size and maximum concurrency: no batch is
/// larger than `BatchSize`, never more than `MaximumConcurrency` invocations run at
/// once, and several do run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_honours_batch_size_and_maximum_concurrency() {
    require_emulator();
    let clients = Clients::from_env().await;
    let url = temp_queue(&clients, "limits").await;
    for chunk in (0..24).collect::<Vec<_>>().chunks(10) {
        let mut batch = clients.sqs.send_message_batch().queue_url(&url);
        for i in chunk {
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body("{}").build().unwrap(),
            );
        }
        batch.send().await.unwrap();
    }
    let (records, running, most_running, largest) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let limits = dispatch_local::runner::PollerLimits { batch_size: 4, concurrency: 3, ..dispatch_local::runner::PollerLimits::with_timeout(Duration::from_secs(10)) };
    let (r, n, m, l) = (records.clone(), running.clone(), most_running.clone(), largest.clone());
    let poller = dispatch_local::runner::spawn_poller(clients.clone(), url.clone(), stop.clone(), limits, move |ev, _deadline| {
        let (r, n, m, l) = (r.clone(), n.clone(), m.clone(), l.clone());
        Box::pin(async move {
            l.fetch_max(ev.records.len(), Ordering::SeqCst);
            let now = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // Long enough that the other pollers receive while this one works.
            tokio::time::sleep(Duration::from_millis(400)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            r.fetch_add(ev.records.len(), Ordering::SeqCst);
            SqsBatchResponse::default()
        })
    });
    let started = std::time::Instant::now();
    while records.load(Ordering::SeqCst) < 24 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    assert_eq!(records.load(Ordering::SeqCst), 24, "every record handled once and deleted");
    assert!(largest.load(Ordering::SeqCst) <= 4, "a batch of {} records exceeds BatchSize 4", largest.load(Ordering::SeqCst));
    let most = most_running.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most} invocations ran at once; MaximumConcurrency is 3");
    let _ = clients.sqs.delete_queue().queue_url(&url).send().await;
}

/// With a batching window, records that arrive within it are delivered in one
/// invocation instead of one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batching_window_gathers_records_into_one_invocation() {
    require_emulator();
    let clients = Clients::from_env().await;
    let url = temp_queue(&clients, "window").await;
    let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let limits = dispatch_local::runner::PollerLimits { batching_window: Duration::from_secs(3), ..dispatch_local::runner::PollerLimits::with_timeout(Duration::from_secs(10)) };
    let b = batches.clone();
    let poller = dispatch_local::runner::spawn_poller(clients.clone(), url.clone(), stop.clone(), limits, move |ev, _deadline| {
        b.lock().unwrap().push(ev.records.len());
        Box::pin(async { SqsBatchResponse::default() })
    });
    for _ in 0..3 {
        clients.sqs.send_message().queue_url(&url).message_body("{}").send().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = std::time::Instant::now();
    while batches.lock().unwrap().iter().sum::<usize>() < 3 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    assert_eq!(*batches.lock().unwrap(), vec![3], "three records within the window make one batch");
    let _ = clients.sqs.delete_queue().queue_url(&url).send().await;
}

/// With AWS unreachable, the API answers a clear 503 `temporarily_unavailable` with
/// `Retry-After`, not a hang or a bare 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_outage_answers_503_with_retry_after() {
    // Nothing listens on port 9: every AWS call fails fast, as in an outage. (One
    // process per test under nextest, so the environment is this test's own.)
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("FUNCTION_TIMEOUT_SECS", "3");
    }
    let clients = Clients::from_env().await;
    let cfg = dispatch_common::config::PlatformConfig::from_lookup(|k| match k {
        "TABLE_NAME" => Some("t".into()),
        "ROUTE_QUEUE_URL" => Some("http://127.0.0.1:9/q".into()),
        _ => None,
    })
    .unwrap();
    let deps = dispatch_common::handlers::Deps::new(cfg, &clients);
    let req = http::Request::builder()
        .method("POST")
        .uri("https://api.example/v1/messages")
        .header("authorization", "Bearer dsk_0000000000000000000000000000000000000000")
        .header("idempotency-key", "outage-1")
        .body(lambda_http::Body::Text(r#"{"to":"+12015550123","body":"x","category":"general"}"#.into()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), dispatch_common::handlers::api::handle(&deps, req)).await.expect("answers, does not hang");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    let body = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "temporarily_unavailable");
}

/// AWS goes silent for 5 s in the middle of a flow: submits during the outage answer
/// 503 (or are accepted once it ends), a retry with the same key yields exactly one
/// message, every accepted message is delivered, and no provider receives one twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aws_pause_mid_flow_loses_nothing_and_sends_nothing_twice() {
    let (faults, env) = behind_faults("awspause").await;
    let msg = |i: usize| serde_json::json!({"to": "+12015550123", "body": format!("Road closure notice {i}"), "category": "resident_update"});
    let mut ids = submit_each(&env, 8, msg).await;
    faults.pause();
    let during = {
        let http = env.http.clone();
        let url = format!("{}/v1/messages", env.pipeline.api_url());
        let key = env.key.clone();
        tokio::spawn(async move {
            let r = http.post(url).bearer_auth(key).header("idempotency-key", "during-outage").json(&serde_json::json!({"to": "+12015550123", "body": "During the outage", "category": "resident_update"})).send().await.unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (status, retry_after)
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    faults.resume();
    let (status, retry_after) = during.await.unwrap();
    assert!(status == 202 || (status == 503 && retry_after.is_some()), "{status} {retry_after:?}");
    // The retry with the same key: one message, whether or not the first attempt stored it.
    let (s, b) = env.submit(serde_json::json!({"to": "+12015550123", "body": "During the outage", "category": "resident_update"}), Some("during-outage")).await;
    assert!(s == 202 || s == 200, "{s} {b}");
    ids.push(b["id"].as_str().unwrap().to_string());
    let (s2, b2) = env.submit(serde_json::json!({"to": "+12015550123", "body": "During the outage", "category": "resident_update"}), Some("during-outage")).await;
    assert_eq!((s2, b2["id"].as_str()), (200, b["id"].as_str()), "the same key is the same message");
    delivered_exactly_once(&env, &ids).await;
}

/// A pipeline whose every AWS call goes through the fault proxy (one test per
/// process under nextest, so the environment change is this test's own).
async fn behind_faults(name: &str) -> (dispatch_tests::faults::AwsFaults, dispatch_tests::harness::TestEnv) {
    require_emulator();
    let faults = dispatch_tests::faults::AwsFaults::in_front_of_emulator().await.unwrap();
    (faults, dispatch_tests::harness::TestEnv::start(name).await)
}

/// Submits `n` messages (keys `before-<i>`), each accepted; their ids.
async fn submit_each(env: &dispatch_tests::harness::TestEnv, n: usize, msg: impl Fn(usize) -> serde_json::Value) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (s, b) = env.submit(msg(i), Some(&format!("before-{i}"))).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Every message reaches `delivered`, and the provider received each exactly once.
/// A job whose invocation failed during an outage returns after the queue's
/// visibility timeout (180 s) or, sooner, through the sweep once the message is due
/// (a minute after acceptance): the sweep runs here as the schedule would.
async fn delivered_exactly_once(env: &dispatch_tests::harness::TestEnv, ids: &[String]) {
    let started = tokio::time::Instant::now();
    loop {
        let mut open = 0;
        for id in ids {
            if env.get(id).await.1["status"] != "delivered" {
                open += 1;
            }
        }
        if open == 0 || started.elapsed() > Duration::from_secs(150) {
            break;
        }
        env.sweep().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for id in ids {
        env.wait_for(id, "delivered", 1).await;
    }
    let received = env.sandbox.received();
    for id in ids {
        let n = received.iter().filter(|r| r["client_ref"] == id.as_str()).count();
        assert_eq!(n, 1, "message {id} reached the provider {n} times");
    }
}

/// AWS answers throttling errors, then 503s, then slowly, for a few seconds each,
/// while messages flow: submits meet a 503 with `Retry-After` or are accepted, a
/// retry with the same key yields one message, and every accepted message is
/// delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_errors_and_latency_mid_flow_lose_nothing_and_send_nothing_twice() {
    use dispatch_tests::faults::Mode;
    let (faults, env) = behind_faults("awserrors").await;
    let msg = |i: usize| serde_json::json!({"to": "+12015550123", "body": format!("Water main repair {i}"), "category": "resident_update"});
    let mut ids = submit_each(&env, 6, msg).await;
    let mut during = Vec::new();
    for (n, mode) in [Mode::Throttling, Mode::Unavailable, Mode::Slow(Duration::from_millis(300))].into_iter().enumerate() {
        faults.set_mode(mode);
        let key = format!("during-{n}");
        let (s, b) = env.submit(msg(100 + n), Some(&key)).await;
        assert!(s == 202 || (s == 503 && b["code"] == "temporarily_unavailable"), "{mode:?}: {s} {b}");
        during.push((n, key));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    faults.set_mode(Mode::Forward);
    for (n, key) in during {
        let (s, b) = env.submit(msg(100 + n), Some(&key)).await;
        assert!(s == 202 || s == 200, "{s} {b}");
        let (s2, b2) = env.submit(msg(100 + n), Some(&key)).await;
        assert_eq!((s2, b2["id"].as_str()), (200, b["id"].as_str()), "the same key is the same message");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    delivered_exactly_once(&env, &ids).await;
}

/// A provider that hangs on every other call (its front end takes the connection, its
/// back end never answers): each hung call ends at our provider timeout and is
/// retried by policy, every message is delivered, none reaches the provider twice.
/// The tenant fails over after one attempt and has no second provider: the retry goes
/// back to the only one while the policy allows attempts (it used to fail the message).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_hanging_on_every_other_call_delays_but_loses_and_doubles_nothing() {
    use dispatch_common::providers::ProviderKind;
    let one_try_then_failover = |mut c: dispatch_common::tenant::TenantConfig| {
        c.retry.attempts_per_provider = 1;
        c
    };
    let env = dispatch_tests::harness::TestEnv::start_with_env("provhang", &[ProviderKind::Sandbox], one_try_then_failover, &[("PROVIDER_TIMEOUT_SECS", "2")]).await;
    // A healthy history first, then one message at a time, so the provider's calls
    // alternate hung, answered, hung, ... and its failures never outnumber its
    // successes (which would rightly open its circuit: another test's subject).
    for i in 0..2 {
        let (s, b) = env.submit(serde_json::json!({"to": "+12015550123", "body": format!("Warm-up {i}"), "category": "resident_update"}), None).await;
        assert_eq!(s, 202, "{b}");
        env.wait_for(b["id"].as_str().unwrap(), "delivered", 20).await;
    }
    env.sandbox.hang_every_other_send(true);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (s, b) = env.submit(serde_json::json!({"to": "+12015550123", "body": format!("Boil water notice {i}"), "category": "resident_update"}), None).await;
        assert_eq!(s, 202, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        let m = env.wait_for(&id, "delivered", 30).await;
        assert_eq!(m["attempts"], 2, "the hung attempt and the one that went through: {m:#}");
        ids.push(id);
    }
    assert_eq!(env.sandbox.sends_hung(), ids.len(), "each message's first call hung");
    let received = env.sandbox.received();
    for id in &ids {
        assert_eq!(received.iter().filter(|r| r["client_ref"] == id.as_str()).count(), 1, "{id} reached the provider once");
    }
}
