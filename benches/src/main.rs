//! `dispatch-bench`: the benchmark driver (see BENCHMARKS.md and scripts/bench.sh).
//!
//! ```text
//! dispatch-bench hotpath   [--secs S] [--runs N]
//! dispatch-bench coldstart --bin-dir DIR [--runs N] [--sdk-runs N] [--breakdown-runs N] [--emulator URL|none] [--log-dir DIR]
//! dispatch-bench pipeline  [--sequential N] [--messages N] [--concurrency C] [--timeout-secs S] [--quiet-ms MS] [--category C] [--provider-latency-ms MS]
//! dispatch-bench burst     [--messages N] [--concurrency C] [--outage-secs S] [--timeout-secs S] [--emulator-pid PID]
//! dispatch-bench summary   DIR
//! ```
//!
//! Each measurement prints its JSON result on stdout and progress on stderr. The exit
//! status is non-zero only for functional failures, never for slowness.

use dispatch_benches::{burst, coldstart, hotpath, pipeline, summary};
use std::collections::HashMap;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: dispatch-bench <hotpath|coldstart|pipeline|burst|summary|init-breakdown> [--flag value ...]\n\
         see benches/src/main.rs and BENCHMARKS.md"
    );
    std::process::exit(2)
}

fn flags(args: &[String]) -> (HashMap<String, String>, Vec<String>) {
    let mut m = HashMap::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(k) = args[i].strip_prefix("--") {
            let v = args.get(i + 1).cloned().unwrap_or_else(|| usage());
            m.insert(k.to_string(), v);
            i += 2;
        } else {
            rest.push(args[i].clone());
            i += 1;
        }
    }
    (m, rest)
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str, default: T) -> T {
    match m.get(k) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("--{k}: cannot parse '{v}'");
            usage()
        }),
    }
}

fn print(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else { usage() };
    let (m, rest) = flags(&args[1..]);
    match cmd.as_str() {
        "hotpath" => {
            let opts = hotpath::Options { secs: get(&m, "secs", 1.0), runs: get(&m, "runs", 7) };
            let v = hotpath::run(&opts)?;
            eprintln!(
                "hotpath: {} messages/s median (single thread)",
                v["hot_path"]["messages_per_sec_median"]
            );
            print(&v);
        }
        "init-breakdown" => {
            // One line: the parent takes the last line of stdout.
            println!("{}", coldstart::init_breakdown_child()?);
        }
        "coldstart" => {
            let bin_dir = PathBuf::from(m.get("bin-dir").cloned().unwrap_or_else(|| usage()));
            let emulator = m.get("emulator").cloned().unwrap_or_else(|| "http://127.0.0.1:4566".into());
            let opts = coldstart::Options {
                log_dir: PathBuf::from(m.get("log-dir").cloned().unwrap_or_else(|| bin_dir.join("bench-logs").display().to_string())),
                bin_dir,
                runs: get(&m, "runs", 21),
                sdk_runs: get(&m, "sdk-runs", 3),
                breakdown_runs: get(&m, "breakdown-runs", 11),
                moto: if emulator == "none" { None } else { Some(emulator) },
            };
            let (v, ok) = runtime().block_on(coldstart::run(&opts))?;
            print(&v);
            if !ok {
                eprintln!("coldstart: FAILED: {}", v["problems"]);
                std::process::exit(1);
            }
        }
        "pipeline" => {
            let (listener, upstream) = pipeline::prepare_env()?;
            let opts = pipeline::Options {
                sequential: get(&m, "sequential", 50),
                messages: get(&m, "messages", 1000),
                concurrency: get(&m, "concurrency", 8),
                timeout_secs: get(&m, "timeout-secs", 120.0),
                quiet_ms: get(&m, "quiet-ms", 2500),
                category: m.get("category").cloned().unwrap_or_else(|| "general".into()),
                provider_latency_ms: get(&m, "provider-latency-ms", 200.0),
            };
            let (v, ok) = runtime().block_on(pipeline::run(&opts, listener, &upstream))?;
            print(&v);
            if !ok {
                eprintln!("pipeline: FAILED: not every message was delivered");
                std::process::exit(1);
            }
        }
        "burst" => {
            let opts = burst::Options {
                messages: get(&m, "messages", 1000),
                concurrency: get(&m, "concurrency", 8),
                outage_secs: get(&m, "outage-secs", 10),
                timeout_secs: get(&m, "timeout-secs", 600),
                emulator_pid: m.get("emulator-pid").and_then(|p| p.parse().ok()),
            };
            let (v, ok) = runtime().block_on(burst::run(&opts))?;
            eprintln!(
                "burst: {} accepted, {} lost, {} double sends, {} wrong terminal states, settled {:.0} s after the outage",
                v["burst"]["accepted"], v["burst"]["lost"], v["burst"]["double_sends"], v["burst"]["wrong_terminal_states"], v["burst"]["settled_secs_after_outage"].as_f64().unwrap_or(0.0)
            );
            print(&v);
            if !ok {
                eprintln!("burst: FAILED: a message was lost, sent twice or ended in the wrong state");
                std::process::exit(1);
            }
        }
        "summary" => {
            let dir = rest.first().cloned().unwrap_or_else(|| usage());
            print!("{}", summary::render(&PathBuf::from(dir)));
        }
        _ => usage(),
    }
    Ok(())
}
