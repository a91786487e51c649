//! Fault injection in front of the AWS endpoint: a TCP proxy on loopback that forwards
//! to the emulator and can be
//! - paused: every connection, open or new, stops moving bytes, as when the network
//!   to AWS goes silent;
//! - slowed: each request chunk waits an added latency before it is forwarded;
//! - made to answer errors itself, as an overloaded AWS service does: `503 Service
//!   Unavailable` or `400 ThrottlingException` (the AWS JSON protocol's shape, which
//!   DynamoDB and SQS speak), one request per connection;
//! - made to reset every open connection.
//!
//! Point `AWS_ENDPOINT_URL` at [`AwsFaults::endpoint`] before the pipeline builds its
//! clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct AwsFaults {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// What the proxy does with requests while it is not paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Forward, each chunk from the client held back this long first.
    Slow(Duration),
    /// Answer every request `503 ServiceUnavailable` without forwarding it.
    Unavailable,
    /// Answer every request `400 ThrottlingException` without forwarding it.
    Throttling,
}

impl AwsFaults {
    /// Starts forwarding loopback connections to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, gate) = watch::channel(true);
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, m) = (conns.clone(), mode.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let gate = gate.clone();
                let mode = m.clone();
                let task = tokio::spawn(async move {
                    let current = *mode.lock().expect("mode");
                    match current {
                        Mode::Unavailable | Mode::Throttling => answer_error(client, current).await,
                        Mode::Forward | Mode::Slow(_) => {
                            let Ok(server) = TcpStream::connect(upstream).await else { return };
                            let (cr, cw) = client.into_split();
                            let (sr, sw) = server.into_split();
                            let up = pump(cr, sw, gate.clone(), Some(mode));
                            let down = pump(sr, cw, gate, None);
                            let _ = tokio::join!(up, down);
                        }
                    }
                });
                c.lock().expect("connections").push(task);
            }
        });
        Ok(Self { addr, open, mode, conns, accept })
    }

    /// Starts in front of the emulator named by `AWS_ENDPOINT_URL` and points
    /// `AWS_ENDPOINT_URL` at itself, so every AWS client built afterwards goes through
    /// the faults. Call before building any client, while no other thread reads the
    /// environment (one test per process under nextest; the benchmark's start).
    pub async fn in_front_of_emulator() -> std::io::Result<Self> {
        let url = std::env::var("AWS_ENDPOINT_URL").map_err(|_| std::io::Error::other("AWS_ENDPOINT_URL is not set"))?;
        let upstream: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| std::io::Error::other(format!("AWS_ENDPOINT_URL {url} is not http://host:port: {e}")))?;
        let faults = Self::start(upstream).await?;
        // SAFETY: the caller guarantees no concurrent reader of the environment.
        unsafe { std::env::set_var("AWS_ENDPOINT_URL", faults.endpoint()) };
        Ok(faults)
    }

    /// The URL to use as `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// AWS goes silent: no byte moves on any connection until [`Self::resume`].
    pub fn pause(&self) {
        let _ = self.open.send(false);
    }

    pub fn resume(&self) {
        let _ = self.open.send(true);
    }

    /// Switches what requests meet. Open connections are reset when errors start, so
    /// every request from then on meets them (the SDK reconnects).
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
        if matches!(mode, Mode::Unavailable | Mode::Throttling) {
            self.reset_all();
        }
    }

    /// Drops every open connection (the SDK sees resets and reconnects).
    pub fn reset_all(&self) {
        for task in self.conns.lock().expect("connections").drain(..) {
            task.abort();
        }
    }
}

impl Drop for AwsFaults {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body) and answers it with an
/// AWS JSON-protocol error, closing the connection.
async fn answer_error(mut client: TcpStream, mode: Mode) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (status, code) = match mode {
        Mode::Throttling => ("400 Bad Request", "ThrottlingException"),
        _ => ("503 Service Unavailable", "ServiceUnavailable"),
    };
    let body = format!(r#"{{"__type":"com.amazonaws.fault#{code}","message":"injected fault"}}"#);
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-errortype: {code}\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(resp.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Copies `from` to `to`, waiting while the gate is closed (and, for the request
/// direction, for the added latency of [`Mode::Slow`]).
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut gate: watch::Receiver<bool>, mode: Option<Arc<Mutex<Mode>>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while !*gate.borrow() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = mode.as_ref().and_then(|m| match *m.lock().expect("mode") {
            Mode::Slow(d) => Some(d),
            _ => None,
        });
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        // A pause that starts mid-transfer holds this chunk back too.
        while !*gate.borrow() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
