//! A loopback endpoint that records every callback a fake provider POSTs to it, as the
//! [`WebhookRequest`] the webhook function would see (method, full URL with the Host
//! the sender used, headers, body), so a test can verify and parse it with the adapter.

use dispatch_common::signatures::WebhookRequest;
use dispatch_local::http_server::{self, Server};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct CallbackReceiver {
    server: Server,
    path: String,
    got: Arc<Mutex<Vec<WebhookRequest>>>,
    hits: Arc<AtomicUsize>,
}

impl CallbackReceiver {
    /// Listens on loopback; [`url`](Self::url) is the server's address plus `path`
    /// (e.g. `/v1/webhooks/twilio?tenant=psap-north`).
    pub async fn start(path: &str) -> CallbackReceiver {
        Self::start_failing_first(path, 0).await
    }

    /// As [`start`](Self::start), but answers the first `fail_first` calls with a 500,
    /// recording nothing, so a test can see the sender retry.
    pub async fn start_failing_first(path: &str, fail_first: usize) -> CallbackReceiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (g, h) = (got.clone(), hits.clone());
        let server = http_server::serve_loopback(http_server::handler(move |req: http_server::Request| {
            let (got, hits) = (g.clone(), h.clone());
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < fail_first {
                    return http_server::respond(500, "text/plain", "try later");
                }
                let host = req.header("host").unwrap_or("127.0.0.1").to_string();
                got.lock().unwrap().push(WebhookRequest {
                    method: req.method.to_string(),
                    url: format!("http://{host}{}", req.uri),
                    headers: req.header_pairs(),
                    body: req.body.to_vec(),
                });
                http_server::json(200, &json!({"ok": true}))
            }
        }))
        .await
        .expect("receiver binds");
        CallbackReceiver { server, path: path.to_string(), got, hits }
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.server.base_url(), self.path)
    }

    /// Calls received, including those answered with a 500.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn all(&self) -> Vec<WebhookRequest> {
        self.got.lock().unwrap().clone()
    }

    pub fn last(&self) -> WebhookRequest {
        self.got.lock().unwrap().last().cloned().expect("a callback arrived")
    }

    pub fn take_all(&self) -> Vec<WebhookRequest> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }

    pub fn take_last(&self) -> WebhookRequest {
        self.got.lock().unwrap().pop().expect("a callback arrived")
    }
}
