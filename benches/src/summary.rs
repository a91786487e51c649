//! A plain-text summary of the JSON results (`dispatch-bench summary <dir>`).

use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

fn load(dir: &Path, name: &str) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
}

fn f(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.2}") }
        }
        Value::Bool(b) => b.to_string(),
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn render(dir: &Path) -> String {
    let mut s = String::new();
    if let Some(c) = load(dir, "coldstart.json") {
        let _ = writeln!(s, "Cold start ({} runs per binary, load {}):", f(&c["runs_per_binary"]), f(&c["host"]["loadavg"]));
        let _ = writeln!(
            s,
            "  {:<8} {:>9} {:>8} {:>9} {:>7} {:>7} {:>9} {:>9}  init network",
            "binary", "size MiB", "zip MiB", "init p50", "min", "x hello", "HWM MiB", "HWM+call"
        );
        if let Some(bins) = c["binaries"].as_object() {
            for (n, b) in bins {
                let _ = writeln!(
                    s,
                    "  {:<8} {:>9} {:>8} {:>7}ms {:>5}ms {:>7} {:>9} {:>9}  {} conn / {} stray",
                    n,
                    f(&b["size"]["binary_mib"]),
                    f(&b["size"]["zip_mib"]),
                    f(&b["init_ms"]["p50"]),
                    f(&b["init_ms"]["min"]),
                    f(&b["init_ratio_vs_hello_p50"]),
                    f(&b["vmhwm_after_event_mib"]["p50"]),
                    f(&b["with_one_aws_call"]["vmhwm_mib"]["p50"]),
                    f(&b["init_network"]["tripwire_connections"]),
                    b["init_network"]["stray_stub_requests"].as_array().map(|a| a.len()).unwrap_or(0),
                );
            }
        }
        let _ = writeln!(s, "  ok: {}", f(&c["ok"]));
    }
    if let Some(h) = load(dir, "hotpath.json") {
        let hp = &h["hot_path"];
        let _ = writeln!(
            s,
            "Hot path (single thread): {} msg/s median ({} us/msg); target 100000/s met: {}",
            f(&hp["messages_per_sec_median"]),
            f(&hp["us_per_message_median"]),
            f(&hp["target_met"])
        );
        for st in h["breakdown"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  {:>10} ns  {}", f(&st["ns_per_op_median"]), f(&st["step"]));
        }
    }
    if let Some(p) = load(dir, "pipeline.json") {
        for ph in p["phases"].as_array().into_iter().flatten() {
            let d = &ph["per_delivered_message"];
            let l = &ph["latency_ms"];
            let _ = writeln!(
                s,
                "Pipeline {} ({} in flight): {}/{} delivered, {}/s",
                f(&ph["phase"]),
                f(&ph["concurrency"]),
                f(&ph["delivered"]),
                f(&ph["messages"]),
                f(&l["throughput_delivered_per_sec"])
            );
            let _ = writeln!(
                s,
                "  per delivered SMS: DynamoDB {} reads / {} writes ({} txn), {} RRU, {} WRU ({} table + {} GSI); SQS {} billed ({} as ESM) + {} idle polls in window; secrets {}; S3 {}",
                f(&d["dynamodb"]["reads"]),
                f(&d["dynamodb"]["writes"]),
                f(&d["dynamodb"]["transactions"]),
                f(&d["dynamodb"]["rru"]),
                f(&d["dynamodb"]["wru_total"]),
                f(&d["dynamodb"]["wru_table"]),
                f(&d["dynamodb"]["wru_gsi"]),
                f(&d["sqs"]["billed_requests_measured (sends + non-empty receives + deletes)"]),
                f(&d["sqs"]["billed_requests_as_lambda_esm (one DeleteMessageBatch per batch)"]),
                f(&d["sqs"]["empty_receives_in_window (idle long polls, not per message)"]),
                f(&d["secrets_manager_get_secret_value"]),
                f(&d["s3"]),
            );
            let _ = writeln!(
                s,
                "  latency submit->delivered p50 {} / p95 {} / p99 {} ms; share: emulator {}%, queue hops {}%, rest {}%",
                f(&l["submit_to_delivered"]["p50"]),
                f(&l["submit_to_delivered"]["p95"]),
                f(&l["submit_to_delivered"]["p99"]),
                f(&l["attribution"]["share_percent"]["emulator"]),
                f(&l["attribution"]["share_percent"]["queue_hops"]),
                f(&l["attribution"]["share_percent"]["rest"]),
            );
            let _ = writeln!(
                s,
                "  targets: <=5 WRU met {} ({}), <=6 SQS met {} ({}); cost ${} per million delivered",
                f(&ph["targets"]["dynamodb_write_units_le_5"]["met"]),
                f(&ph["targets"]["dynamodb_write_units_le_5"]["measured_total"]),
                f(&ph["targets"]["sqs_requests_le_6"]["met"]),
                f(&ph["targets"]["sqs_requests_le_6"]["measured"]),
                f(&ph["cost"]["measured"]["usd_per_million_delivered"]),
            );
        }
        let _ = writeln!(s, "  ok: {}", f(&p["ok"]));
    }
    if let Some(b) = load(dir, "burst.json") {
        let b = &b["burst"];
        let _ = writeln!(
            s,
            "Burst under faults: {} messages, {} clients, {} s AWS outage: {} accepted; lost {}, double sends {}, wrong terminal states {}; settled {} s after the outage; peak RSS bench {} MiB, emulator {} MiB; ok: {}",
            f(&b["messages"]),
            f(&b["clients"]),
            f(&b["outage_secs"]),
            f(&b["accepted"]),
            f(&b["lost"]),
            f(&b["double_sends"]),
            f(&b["wrong_terminal_states"]),
            f(&b["settled_secs_after_outage"]),
            f(&b["peak_rss_mib"]["bench_process_with_in_process_functions"]),
            f(&b["peak_rss_mib"]["emulator"]),
            f(&b["ok"]),
        );
    }
    s
}
