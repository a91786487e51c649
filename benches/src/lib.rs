//! Benchmark suite for the dispatch service (issue "Benchmarks"). Every measurement
//! is a plain subcommand of the `dispatch-bench` binary that prints one JSON document
//! on stdout and a human summary on stderr; `scripts/bench.sh` runs them all and
//! `BENCHMARKS.md` records the commands and the numbers.
//!
//! Nothing here asserts on time: results are reported, never judged, so a slow or
//! busy machine cannot fail CI. The only failures are functional (a function that
//! does not reach the Runtime API, a message that is never delivered, init that
//! touches the network).

pub mod burst;
pub mod coldstart;
pub mod ddb;
pub mod hotpath;
pub mod pipeline;
pub mod prices;
pub mod proxy;
pub mod runtime_stub;
pub mod stats;
pub mod summary;

/// Host facts worth printing next to every figure (the machine is shared).
pub fn host_info() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    serde_json::json!({
        "cpus": cpus,
        "cpu_model": model,
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "profile": if cfg!(debug_assertions) { "dev (debug: figures are not representative)" } else { "release" },
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
