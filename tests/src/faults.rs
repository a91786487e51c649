//! Fault injection in front of the AWS endpoint: a TCP proxy on loopback that forwards
//! to the emulator and can be paused (every connection, open or new, stops moving
//! bytes, as when the network to AWS goes silent), resumed, or made to reset every
//! open connection. Point `AWS_ENDPOINT_URL` at [`AwsFaults::endpoint`] before the
//! pipeline builds its clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct AwsFaults {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl AwsFaults {
    /// Starts forwarding loopback connections to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, gate) = watch::channel(true);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let gate = gate.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, gate.clone());
                    let down = pump(sr, cw, gate);
                    let _ = tokio::join!(up, down);
                });
                c.lock().expect("connections").push(task);
            }
        });
        Ok(Self { addr, open, conns, accept })
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

/// Copies `from` to `to`, waiting while the gate is closed.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
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
