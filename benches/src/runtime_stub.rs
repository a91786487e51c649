//! A minimal Lambda Runtime API (2018-06-01) on loopback, enough for `lambda_runtime`:
//! hands out one event on the first `GET /runtime/invocation/next`, takes the
//! response (or error), and holds the second `next` open — the function is then idle,
//! exactly like a warm Lambda instance between invocations. It records when each
//! `next` arrived and samples the function's memory from `/proc/<pid>/status` at that
//! moment, and counts any request that is not part of the Runtime API.

use dispatch_local::http_server::{self, Request, Response, Server};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub const PREFIX: &str = "/2018-06-01/runtime";

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mem {
    pub hwm_kb: u64,
    pub rss_kb: u64,
}

pub fn read_mem(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Mem { hwm_kb: field("VmHWM:")?, rss_kb: field("VmRSS:")? })
}

#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Arrival of each `GET .../invocation/next`.
    pub next_at: Vec<Instant>,
    /// Memory sampled when each `next` arrived.
    pub mem_at_next: Vec<Option<Mem>>,
    /// `(request id, body)` of each invocation response.
    pub responses: Vec<(String, String)>,
    pub invocation_errors: Vec<String>,
    pub init_errors: Vec<String>,
    /// Anything else that reached the stub: `METHOD path`.
    pub stray: Vec<String>,
}

struct State {
    function_name: String,
    event: String,
    pid: AtomicU32,
    observed: Mutex<Observed>,
    changed: Notify,
    release: Notify,
}

pub struct RuntimeStub {
    server: Server,
    state: Arc<State>,
}

impl RuntimeStub {
    pub async fn start(function_name: &str, event: &Value) -> anyhow::Result<Self> {
        let state = Arc::new(State {
            function_name: function_name.to_string(),
            event: event.to_string(),
            pid: AtomicU32::new(0),
            observed: Mutex::new(Observed::default()),
            changed: Notify::new(),
            release: Notify::new(),
        });
        let s = state.clone();
        let server = http_server::serve_loopback(http_server::handler(move |req| {
            let s = s.clone();
            async move { handle(s, req).await }
        }))
        .await?;
        Ok(Self { server, state })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.server.addr.to_string()
    }

    pub fn set_pid(&self, pid: u32) {
        self.state.pid.store(pid, Ordering::SeqCst);
    }

    pub fn observed(&self) -> Observed {
        self.state.observed.lock().expect("stub state").clone()
    }

    /// Waits until `pred` holds for what the stub has seen, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Observed) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            if pred(&self.observed()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(&self.observed());
            }
        }
    }

    /// Lets held `next` requests finish (with 503) so their tasks end.
    pub fn release(&self) {
        self.state.release.notify_waiters();
    }
}

impl Drop for RuntimeStub {
    fn drop(&mut self) {
        self.state.release.notify_waiters();
    }
}

fn sample_mem(state: &State) -> Option<Mem> {
    // spawn() returns once exec succeeded; the pid is stored right after. Allow for the
    // (theoretical) case where the child is faster than that store.
    for _ in 0..200 {
        let pid = state.pid.load(Ordering::SeqCst);
        if pid != 0 {
            return read_mem(pid);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

async fn handle(state: Arc<State>, req: Request) -> Response {
    let at = Instant::now();
    let path = req.uri.path().to_string();
    let method = req.method.as_str().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        state.observed.lock().expect("stub state").stray.push(format!("{method} {path}"));
        state.changed.notify_waiters();
        return http_server::respond(404, "text/plain", "not a Runtime API path");
    };
    match (method.as_str(), rest) {
        ("GET", "/invocation/next") => {
            let mem = sample_mem(&state);
            let n = {
                let mut o = state.observed.lock().expect("stub state");
                o.next_at.push(at);
                o.mem_at_next.push(mem);
                o.next_at.len()
            };
            state.changed.notify_waiters();
            if n == 1 {
                let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
                return http::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", "bench-0001")
                    .header("lambda-runtime-deadline-ms", deadline.to_string())
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        format!("arn:aws:lambda:us-east-1:123456789012:function:{}", state.function_name),
                    )
                    .header("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
                    .body(bytes::Bytes::from(state.event.clone()))
                    .expect("static response parts are valid");
            }
            // Idle, like a warm instance, until released.
            let released = state.release.notified();
            let _ = tokio::time::timeout(Duration::from_secs(60), released).await;
            http_server::respond(503, "text/plain", "stub shutting down")
        }
        ("POST", "/init/error") => {
            state.observed.lock().expect("stub state").init_errors.push(String::from_utf8_lossy(&req.body).into_owned());
            state.changed.notify_waiters();
            http_server::respond(202, "application/json", "{}")
        }
        ("POST", r) if r.starts_with("/invocation/") => {
            let parts: Vec<&str> = r.trim_start_matches("/invocation/").split('/').collect();
            let body = String::from_utf8_lossy(&req.body).into_owned();
            {
                let mut o = state.observed.lock().expect("stub state");
                match parts.as_slice() {
                    [id, "response"] => o.responses.push((id.to_string(), body)),
                    [_, "error"] => o.invocation_errors.push(body),
                    _ => o.stray.push(format!("{method} {path}")),
                }
            }
            state.changed.notify_waiters();
            http_server::respond(202, "application/json", "{}")
        }
        _ => {
            state.observed.lock().expect("stub state").stray.push(format!("{method} {path}"));
            state.changed.notify_waiters();
            http_server::respond(404, "text/plain", "unknown Runtime API path")
        }
    }
}
