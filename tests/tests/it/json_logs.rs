//! With `AWS_LAMBDA_LOG_FORMAT=JSON` a flow (a delivered and a failed message, a refused
//! key, a forged callback) logs only valid JSON lines with the expected fields, and still
//! no secrets, keys, bodies or full numbers.

use dispatch_common::observability::{subscriber, LogFormat};
use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::{TestEnv, SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the pipeline's tasks all run on it, so this thread's subscriber sees
// their lines and no other test's (the binary's global subscriber is log_hygiene's).
#[tokio::test(flavor = "current_thread")]
async fn json_logs_are_valid_json_with_fields_and_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    let _guard = tracing::subscriber::set_default(subscriber(LogFormat::Json, "info", "dispatch-test", move || writer.clone()));

    let env = TestEnv::start("jsonlogs").await;
    const BODY: &str = "Confidential: officer Smith will call about case 7731.";
    let mut ids = Vec::new();
    for to in ["+12015550123", numbers::INVALID_DESTINATION] {
        let (s, b) = env.submit(json!({"to": to, "body": BODY, "category": "evidence_notification"}), None).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    for (id, want) in ids.iter().zip(["delivered", "failed"]) {
        env.wait_for(id, want, 30).await;
    }
    let api = env.pipeline.api_url();
    env.http.post(format!("{api}/v1/messages")).bearer_auth("dsk_0000000000000000000000000000000000000000").body("{}").send().await.unwrap();
    let url = format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant);
    env.http.post(&url).header("Sandbox-Signature", "t=1,v1=00").body("{\"to\":\"+12015550123\"}").send().await.unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 5, "the flow logged: {logs}");
    for l in &lines {
        assert_eq!(l["function"], "dispatch-test", "{l}");
        assert!(l["level"].is_string() && l["message"].is_string(), "{l}");
    }
    let accepted: Vec<&Value> = lines.iter().filter(|l| l["message"] == "accepted" && l["tenant"] == env.tenant.as_str()).collect();
    assert_eq!(accepted.len(), 2, "{logs}");
    for a in &accepted {
        assert!(ids.iter().any(|id| a["message_id"] == id.as_str()), "{a}");
        assert_eq!(a["tenant"], env.tenant.as_str(), "{a}");
        assert!(a["to"].as_str().unwrap().contains('*'), "masked: {a}");
    }
    let forbidden = [
        SANDBOX_API_KEY.to_string(),
        SANDBOX_WEBHOOK_SECRET.to_string(),
        env.key.clone(),
        env.admin_key.clone(),
        "12015550123".to_string(),
        numbers::INVALID_DESTINATION.trim_start_matches('+').to_string(),
        BODY.to_string(),
        "officer Smith".to_string(),
    ];
    for f in &forbidden {
        assert!(!logs.contains(f.as_str()), "log output contains a forbidden value ({} chars): …{}…", f.len(), &f[..4.min(f.len())]);
    }
}
