//! A delivered and a failed message, a refused submit and a forged callback each emit
//! the documented CloudWatch EMF metrics (docs/operations.md), as valid EMF documents
//! whose dimensions stay in bounded sets (no ids, tenants or numbers).

use dispatch_common::metrics;
use dispatch_local::sandbox::numbers;
use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};

/// The value of `metric` summed over the lines whose dimensions include `dims`.
fn total(lines: &[Value], metric: &str, dims: &[(&str, &str)]) -> f64 {
    lines
        .iter()
        .filter(|l| dims.iter().all(|(k, v)| l[*k] == *v))
        .filter_map(|l| l[metric].as_f64())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_and_a_failed_message_emit_the_documented_metrics() {
    let capture = metrics::capture();
    let env = TestEnv::start("emf").await;
    let mut ids = Vec::new();
    for to in ["+12015550123", numbers::INVALID_DESTINATION] {
        let (s, b) = env.submit(json!({"to": to, "body": "Road closed on Mill Lane until 6pm.", "category": "resident_update"}), None).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    env.wait_for(&ids[0], "delivered", 30).await;
    env.wait_for(&ids[1], "failed", 30).await;
    let (s, b) = env.submit(json!({"to": "+1201", "body": "x", "category": "resident_update"}), None).await;
    assert_eq!((s, b["code"].as_str()), (422, Some("too_short")), "{b}");
    let url = format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant);
    let forged = env.http.post(&url).header("Sandbox-Signature", "t=1,v1=00").body("{}").send().await.unwrap();
    assert_eq!(forged.status(), 401);

    let raw = capture.take();
    let lines: Vec<Value> = raw.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();

    // Every line is a well-formed EMF document: each declared metric and dimension is
    // a top-level member, and no dimension value is an id, a tenant or a number.
    for (l, text) in lines.iter().zip(&raw) {
        let directive = &l["_aws"]["CloudWatchMetrics"][0];
        assert!(l["_aws"]["Timestamp"].is_i64(), "{text}");
        assert_eq!(directive["Namespace"], metrics::namespace(), "{text}");
        for m in directive["Metrics"].as_array().expect("Metrics") {
            let name = m["Name"].as_str().unwrap();
            assert!(l[name].is_number(), "{name} has no value: {text}");
            assert!(["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()), "{text}");
        }
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            for d in set.as_array().unwrap() {
                let v = l[d.as_str().unwrap()].as_str().unwrap_or_else(|| panic!("dimension {d} has no value: {text}"));
                let closed_set_shape = v.len() <= 48 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                assert!(closed_set_shape, "unbounded value {v}: {text}");
                assert!(!ids.iter().any(|id| v.contains(id.as_str())) && v != env.tenant.as_str(), "{text}");
            }
        }
        assert!(!text.contains("12015550123") && !text.contains("Mill Lane"), "{text}");
    }

    let cat = [("Category", "resident_update"), ("Lane", "standard")];
    let sandbox = [("Provider", "sandbox")];
    assert_eq!(total(&lines, "MessagesAccepted", &cat), 2.0, "{raw:#?}");
    assert_eq!(total(&lines, "MessagesRejected", &[("Reason", "too_short")]), 1.0, "{raw:#?}");
    assert_eq!(total(&lines, "MessagesSent", &[("Provider", "sandbox"), ("Category", "resident_update")]), 1.0, "{raw:#?}");
    assert_eq!(total(&lines, "MessagesDelivered", &[("Provider", "sandbox"), ("Category", "resident_update"), ("Lane", "standard")]), 1.0);
    assert_eq!(total(&lines, "MessagesFailed", &[("Provider", "sandbox"), ("Category", "resident_update")]), 1.0, "{raw:#?}");
    assert_eq!(total(&lines, "SegmentsSent", &sandbox), 1.0, "{raw:#?}");
    assert_eq!(total(&lines, "ProviderCalls", &sandbox), 2.0, "{raw:#?}");
    assert_eq!(lines.iter().filter(|l| l["ProviderLatency"].is_number() && l["Provider"] == "sandbox").count(), 2);
    assert_eq!(total(&lines, "ProviderErrors", &[("Provider", "sandbox"), ("ErrorClass", "permanent")]), 1.0, "{raw:#?}");
    assert!(total(&lines, "CallbacksReceived", &sandbox) >= 2.0, "the receipt and the forgery: {raw:#?}");
    assert_eq!(total(&lines, "CallbacksRejected", &sandbox), 1.0, "{raw:#?}");
    assert_eq!(total(&lines, "MessagesUndelivered", &[]) + total(&lines, "MessagesExpired", &[]), 0.0);
}
