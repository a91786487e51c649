//! A minimal HTTP/1.1 server on loopback (hyper), for the local API, the webhook URL,
//! the sandbox provider and the fake providers in tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A request with its whole body read.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Header pairs as strings (non-UTF-8 values are skipped).
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect()
    }
}

pub type Response = http::Response<Bytes>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Arc::new(move |r| Box::pin(f(r)))
}

/// A JSON response with the given status.
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Bytes::from(value.to_string()))
        .expect("static response parts are valid")
}

/// A response with a body and content type.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .expect("static response parts are valid")
}

/// A running server; dropping it stops accepting connections.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (use port 0 for any free port) and serves `handler` until dropped.
pub async fn serve(addr: SocketAddr, handler: Handler) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match body.collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => Bytes::new(),
                        };
                        let req = Request { method: parts.method, uri: parts.uri, headers: parts.headers, body };
                        let resp = handler(req).await;
                        let (parts, body) = resp.into_parts();
                        Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(parts, Full::new(body)))
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(Server { addr, task })
}

/// Serves on `127.0.0.1:0`.
pub async fn serve_loopback(handler: Handler) -> std::io::Result<Server> {
    serve(SocketAddr::from(([127, 0, 0, 1], 0)), handler).await
}
