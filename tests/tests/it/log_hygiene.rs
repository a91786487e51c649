//! Secrets hygiene: runs the pipeline's flows with every log line at info level and
//! above captured, and fails if a known test secret, API key, full phone number or
//! message body appears in them.

use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::{TestEnv, SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets_numbers_or_bodies() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    tracing::info!("capture is live");

    let env = TestEnv::start("loghygiene").await;
    const BODY: &str = "Confidential: officer Smith will call about case 7731.";
    let mut ids = Vec::new();
    for to in ["+12015550123", numbers::UNDELIVERED, numbers::INVALID_DESTINATION, numbers::UNAVAILABLE_ONCE] {
        let (s, b) = env.submit(json!({"to": to, "body": BODY, "category": "evidence_notification"}), None).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    for (id, want) in ids.iter().zip(["delivered", "undelivered", "failed", "delivered"]) {
        env.wait_for(id, want, 30).await;
    }
    // Refused paths log too: a bad key, an invalid number, a forged callback.
    let api = env.pipeline.api_url();
    env.http.post(format!("{api}/v1/messages")).bearer_auth("dsk_0000000000000000000000000000000000000000").body("{}").send().await.unwrap();
    env.submit(json!({"to": "+44740012345", "body": BODY, "category": "general"}), None).await;
    let url = format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant);
    env.http.post(&url).header("Sandbox-Signature", "t=1,v1=00").body("{\"to\":\"+12015550123\"}").send().await.unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("accepted") && logs.contains("forged"), "the flows logged at info/warn: {logs}");
    let forbidden = [
        SANDBOX_API_KEY.to_string(),
        SANDBOX_WEBHOOK_SECRET.to_string(),
        env.key.clone(),
        env.admin_key.clone(),
        "12015550123".to_string(),
        numbers::UNDELIVERED.trim_start_matches('+').to_string(),
        "44740012345".to_string(),
        BODY.to_string(),
        "officer Smith".to_string(),
    ];
    for f in &forbidden {
        assert!(!logs.contains(f.as_str()), "log output contains a forbidden value ({} chars): …{}…", f.len(), &f[..4.min(f.len())]);
    }
}
