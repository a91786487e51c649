//! Runs the whole pipeline on this machine: every function's real handler, fed the
//! way Lambda would feed it — HTTP requests as API Gateway/function-URL events, SQS
//! records polled in batches of up to 10 with partial batch failures left on the
//! queue (so visibility timeout and the DLQ redrive apply), and the retry sweep on a
//! timer standing in for the EventBridge schedule.
//!
//! Each SQS source is polled with its mapping's `BatchSize`, batching window and
//! `ScalingConfig.MaximumConcurrency` (or [`LOCAL_DEFAULT_CONCURRENCY`] pollers).
//! Like Lambda, every invocation has the function's `Timeout` from the template: the
//! handler gets the deadline, and at the deadline its future is dropped — a batch that
//! runs out of time counts as failed whole (every record returns after its visibility
//! timeout, towards the DLQ's `maxReceiveCount`), an HTTP call answers 503 as API
//! Gateway does on an integration timeout.

use crate::http_server::{self, Handler, Server};
use crate::provision::{self, Provisioned};
use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use dispatch_common::aws::Clients;
use dispatch_common::config::{env_suffix, PlatformConfig};
use dispatch_common::handlers::{api, callbacks, inbound_media, retry, route, send, webhook, Deps};
use dispatch_common::providers::ProviderKind;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Prefix for every emulator resource (lets test runs live side by side).
    pub prefix: String,
    /// Platform opt-in (`ENABLED_PROVIDERS`).
    pub enabled_providers: Vec<ProviderKind>,
    pub api_addr: SocketAddr,
    pub webhook_addr: SocketAddr,
    /// How often the retry sweep fires (EventBridge runs it every minute in AWS).
    pub sweep_every: Duration,
    /// Extra environment for the functions (e.g. `SECRETS_TTL_SECS`).
    pub extra_env: BTreeMap<String, String>,
    /// Delete the prefixed resources when the pipeline is dropped (tests), so a long
    /// test run does not pile up state in the emulator.
    pub teardown_on_drop: bool,
    /// Overrides every function's template `Timeout` (tests of what a timeout does).
    pub function_timeout: Option<Duration>,
}

impl PipelineOptions {
    pub fn for_tests(prefix: impl Into<String>, enabled: &[ProviderKind]) -> Self {
        Self {
            prefix: prefix.into(),
            enabled_providers: enabled.to_vec(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            sweep_every: Duration::from_secs(3600),
            extra_env: BTreeMap::new(),
            teardown_on_drop: true,
            function_timeout: None,
        }
    }
}

/// A running local pipeline. Dropping it stops the servers and pollers.
pub struct Pipeline {
    pub provisioned: Provisioned,
    pub clients: Clients,
    pub deps: Deps,
    pub api: Server,
    pub webhook: Server,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    teardown_on_drop: bool,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        if self.teardown_on_drop {
            // Drop cannot await: tear down on a thread with its own runtime and clients.
            let prefix = self.provisioned.prefix.clone();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    let clients = Clients::from_env().await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        provision::teardown(&clients, &provision::template_path(), &prefix),
                    )
                    .await;
                });
            })
            .join();
        }
    }
}

/// Fails with a clear message when no emulator (or AWS) answers.
pub async fn check_emulator(clients: &Clients) -> anyhow::Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "(AWS_ENDPOINT_URL not set)".into());
    // Generous: a busy emulator can take seconds to answer, which is not "down".
    let probe = tokio::time::timeout(Duration::from_secs(30), clients.sqs.list_queues().queue_name_prefix("dispatch-probe").send()).await;
    match probe {
        Ok(Ok(_)) => Ok(()),
        _ => anyhow::bail!(
            "the AWS emulator is not reachable at {endpoint}. Start it with `scripts/emulator.sh start` \
             and load its settings with `eval \"$(scripts/emulator.sh env)\"` (or run `scripts/run-local.sh`, which does both)."
        ),
    }
}

impl Pipeline {
    pub async fn start(opts: PipelineOptions) -> anyhow::Result<Self> {
        let clients = Clients::from_env().await;
        check_emulator(&clients).await?;
        let enabled: Vec<&str> = opts.enabled_providers.iter().map(|k| k.as_str()).collect();
        let overrides = BTreeMap::from([("EnabledProviders".to_string(), enabled.join(","))]);
        let provisioned = provision::provision(&clients, &provision::template_path(), &opts.prefix, &overrides)
            .await
            .context("provisioning the emulator from infra/template.yaml")?;

        // Each function's invocation limit, as Lambda enforces it.
        let timeout_of = |logical_id: &str| -> Duration {
            opts.function_timeout.unwrap_or_else(|| {
                Duration::from_secs(provisioned.functions.get(logical_id).map(|f| f.timeout_secs).unwrap_or(30))
            })
        };
        let (api_timeout, webhook_timeout, retry_timeout) = (timeout_of("SubmitFunction"), timeout_of("WebhookFunction"), timeout_of("RetryFunction"));
        // Each SQS source's limits as its event source mapping declares them.
        let limits_of = |function: &str, queue: &str| -> anyhow::Result<PollerLimits> {
            let source = provisioned
                .functions
                .get(function)
                .and_then(|f| f.sqs_sources.iter().find(|s| s.queue == queue))
                .with_context(|| format!("the template gives {function} no SQS event source on {queue}"))?;
            Ok(PollerLimits::of(source, timeout_of(function)))
        };

        // The webhook URL must be known before the functions' config is built.
        let deps_cell: Arc<tokio::sync::OnceCell<Deps>> = Arc::new(tokio::sync::OnceCell::new());
        let d = deps_cell.clone();
        let webhook = http_server::serve(
            opts.webhook_addr,
            http_server::handler(move |req| {
                let d = d.clone();
                async move {
                    let deps = d.get().expect("deps set before traffic").clone();
                    let lreq = to_lambda_request(&req, "http");
                    match tokio::time::timeout(webhook_timeout, webhook::handle(&deps, lreq)).await {
                        Ok(resp) => from_lambda_response(resp),
                        Err(_) => timed_out("webhook", webhook_timeout),
                    }
                }
            }),
        )
        .await
        .context("binding the webhook address")?;

        // One configuration serves every handler here, so take the union of the
        // functions' environments (the retry function adds the DLQ URLs).
        let mut env = provisioned.env.clone();
        for f in provisioned.functions.values() {
            for (k, v) in &f.env {
                env.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        env.insert("WEBHOOK_BASE_URL".into(), webhook.base_url());
        env.insert("ENABLED_PROVIDERS".into(), enabled.join(","));
        // Local tenants' CAD receivers listen on 127.0.0.1 over plain http.
        env.insert("LOOPBACK_CALLBACKS".into(), "allow".into());
        env.extend(opts.extra_env.clone());
        let cfg = PlatformConfig::from_lookup(|k| env.get(k).cloned()).context("function configuration")?;
        let deps = Deps::new(cfg, &clients);
        let _ = deps_cell.set(deps.clone());

        let api_deps = deps.clone();
        let api_handler: Handler = http_server::handler(move |req| {
            let deps = api_deps.clone();
            async move {
                let lreq = to_lambda_request(&req, "http");
                match tokio::time::timeout(api_timeout, api::handle(&deps, lreq)).await {
                    Ok(resp) => from_lambda_response(resp),
                    Err(_) => timed_out("submit", api_timeout),
                }
            }
        });
        let api = http_server::serve(opts.api_addr, api_handler).await.context("binding the API address")?;

        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        // Route consumer.
        let route_url = deps.cfg.route_queue_url.clone();
        tasks.push(spawn_poller(clients.clone(), route_url, stop.clone(), limits_of("RouteFunction", "RouteQueue")?, {
            let deps = deps.clone();
            move |ev, deadline| {
                let deps = deps.clone();
                Box::pin(async move { route::handle_batch_until(&deps, ev, deadline).await })
            }
        }));
        // Tenant callback consumer (the retry function's SQS event source).
        if !deps.cfg.tenant_callback_queue_url.is_empty() {
            let url = deps.cfg.tenant_callback_queue_url.clone();
            tasks.push(spawn_poller(clients.clone(), url, stop.clone(), limits_of("RetryFunction", "TenantCallbackQueue")?, {
                let deps = deps.clone();
                move |ev, deadline| {
                    let deps = deps.clone();
                    Box::pin(async move { callbacks::handle_batch_until(&deps, ev, deadline).await })
                }
            }));
        }
        // Inbound MMS media (the inbound-media function's SQS event source).
        if !deps.cfg.inbound_media_queue_url.is_empty() {
            let url = deps.cfg.inbound_media_queue_url.clone();
            tasks.push(spawn_poller(clients.clone(), url, stop.clone(), limits_of("InboundMediaFunction", "InboundMediaQueue")?, {
                let deps = deps.clone();
                move |ev, deadline| {
                    let deps = deps.clone();
                    Box::pin(async move { inbound_media::handle_batch_until(&deps, ev, deadline).await })
                }
            }));
        }
        // One send consumer per enabled provider and lane, as each provider's send
        // function has two event source mappings.
        for kind in &opts.enabled_providers {
            let Some(q) = deps.cfg.send_queues.get(kind).cloned() else {
                anyhow::bail!("the template declares no send queues for {kind} (SEND_QUEUE_URL_{})", env_suffix(*kind));
            };
            let function = format!("Send{}Function", camel(*kind));
            for (url, queue) in [(q.priority, "SendPriorityQueue"), (q.standard, "SendQueue")] {
                let kind = *kind;
                let limits = limits_of(&function, &format!("{queue}{}", camel(kind)))?;
                tasks.push(spawn_poller(clients.clone(), url, stop.clone(), limits, {
                    let deps = deps.clone();
                    move |ev, deadline| {
                        let deps = deps.clone();
                        Box::pin(async move { send::handle_batch_until(&deps, kind, ev, deadline).await })
                    }
                }));
            }
        }
        // The schedule.
        let sweep_deps = deps.clone();
        let every = opts.sweep_every;
        let stop_s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            while !stop_s.load(Ordering::Relaxed) {
                tick.tick().await;
                match tokio::time::timeout(retry_timeout, retry::sweep(&sweep_deps)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed"),
                    Err(_) => tracing::warn!(timeout_secs = retry_timeout.as_secs(), "sweep timed out (Lambda would stop it here)"),
                }
            }
        }));
        Ok(Self { provisioned, clients, deps, api, webhook, stop, tasks, teardown_on_drop: opts.teardown_on_drop })
    }

    pub fn api_url(&self) -> String {
        self.api.base_url()
    }

    pub fn webhook_url(&self) -> String {
        self.webhook.base_url()
    }
}

type BatchFn = dyn Fn(SqsEvent, std::time::Instant) -> http_server::BoxFuture<aws_lambda_events::event::sqs::SqsBatchResponse> + Send + Sync;

/// What API Gateway answers when the integration runs past its timeout.
fn timed_out(function: &str, timeout: Duration) -> http_server::Response {
    tracing::warn!(function, timeout_secs = timeout.as_secs(), "invocation timed out (Lambda would stop it here)");
    from_lambda_response(
        lambda_http::Response::builder()
            .status(503)
            .header("content-type", "application/json")
            .body(lambda_http::Body::Text(r#"{"message":"Service Unavailable"}"#.into()))
            .expect("static response"),
    )
}

/// `vonage-sms` → `VonageSms` (the template's logical-id spelling).
fn camel(kind: ProviderKind) -> String {
    kind.as_str().split('-').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect()
}

/// What Lambda's event source mapping enforces for one SQS source.
#[derive(Debug, Clone, Copy)]
pub struct PollerLimits {
    /// The function's `Timeout`: the handler's future is dropped at this deadline.
    pub timeout: Duration,
    /// `BatchSize`: at most this many records per invocation.
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`: how long to gather records before invoking
    /// with a batch smaller than `batch_size`.
    pub batching_window: Duration,
    /// Concurrent invocations for this source (`ScalingConfig.MaximumConcurrency`, or
    /// [`LOCAL_DEFAULT_CONCURRENCY`]).
    pub concurrency: u32,
}

/// Concurrent invocations per SQS source when the template sets no
/// `ScalingConfig.MaximumConcurrency`. Lambda starts five pollers and scales further;
/// on a developer machine two are enough to run batches side by side, which is what
/// exposes redelivery and claim races.
pub const LOCAL_DEFAULT_CONCURRENCY: u32 = 2;

impl PollerLimits {
    /// Lambda's defaults for an SQS source with this timeout: 10 records, no window,
    /// one invocation at a time (tests that want more say so).
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { timeout, batch_size: 10, batching_window: Duration::ZERO, concurrency: 1 }
    }

    /// The limits the template declares for `source` on a function with `timeout`.
    pub fn of(source: &provision::SqsSource, timeout: Duration) -> Self {
        Self {
            timeout,
            batch_size: source.batch_size,
            batching_window: Duration::from_secs(source.batching_window_secs.into()),
            concurrency: source.max_concurrency.unwrap_or(LOCAL_DEFAULT_CONCURRENCY),
        }
    }
}

/// Polls one queue like Lambda's event source mapping: `concurrency` independent
/// pollers, each gathering up to `batch_size` records (for at most the batching
/// window), invoking with the function's deadline, and deleting the records not
/// reported as failures. An invocation that runs past its timeout is dropped and its
/// whole batch counts as failed (nothing deleted), as Lambda does.
pub fn spawn_poller<F>(clients: Clients, queue_url: String, stop: Arc<AtomicBool>, limits: PollerLimits, f: F) -> JoinHandle<()>
where
    F: Fn(SqsEvent, std::time::Instant) -> http_server::BoxFuture<aws_lambda_events::event::sqs::SqsBatchResponse> + Send + Sync + 'static,
{
    let f: Arc<BatchFn> = Arc::new(f);
    tokio::spawn(async move {
        let arn = queue_arn(&clients, &queue_url).await.unwrap_or_default();
        let mut pollers = tokio::task::JoinSet::new();
        for _ in 0..limits.concurrency.max(1) {
            let (clients, queue_url, stop, f, arn) = (clients.clone(), queue_url.clone(), stop.clone(), f.clone(), arn.clone());
            pollers.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(event) = gather(&clients, &queue_url, &arn, &limits, &stop).await else { continue };
                    invoke(&clients, &queue_url, &limits, &f, event).await;
                }
            });
        }
        while pollers.join_next().await.is_some() {}
    })
}

/// One batch: receives until `batch_size` records, or until the batching window,
/// counted from the first record, has passed (with no window, the first non-empty
/// receive makes the batch). `None` when one long poll brought nothing.
async fn gather(clients: &Clients, queue_url: &str, arn: &str, limits: &PollerLimits, stop: &AtomicBool) -> Option<SqsEvent> {
    let mut window_ends = None;
    let mut event = SqsEvent::default();
    loop {
        let want = (limits.batch_size as usize).saturating_sub(event.records.len()).min(10) as i32;
        let out = clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        match out {
            Ok(o) => {
                for m in o.messages.unwrap_or_default() {
                    let mut r = SqsMessage::default();
                    r.message_id = m.message_id;
                    r.receipt_handle = m.receipt_handle;
                    r.body = m.body;
                    // As Lambda passes them: ApproximateReceiveCount and the rest.
                    r.attributes = m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
                    r.event_source_arn = Some(arn.to_string());
                    r.event_source = Some("aws:sqs".into());
                    event.records.push(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if event.records.is_empty() {
            break;
        }
        let window_ends = *window_ends.get_or_insert_with(|| tokio::time::Instant::now() + limits.batching_window);
        let full = event.records.len() >= limits.batch_size as usize;
        if full || stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= window_ends {
            break;
        }
    }
    (!event.records.is_empty()).then_some(event)
}

/// Invokes the handler with the deadline and deletes what it did not report failed.
async fn invoke(clients: &Clients, queue_url: &str, limits: &PollerLimits, f: &Arc<BatchFn>, event: SqsEvent) {
    let mut handles: BTreeMap<String, String> =
        event.records.iter().filter_map(|r| Some((r.message_id.clone()?, r.receipt_handle.clone()?))).collect();
    let deadline = std::time::Instant::now() + limits.timeout;
    let resp = match tokio::time::timeout(limits.timeout, f(event, deadline)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(queue = %queue_url, timeout_secs = limits.timeout.as_secs(), records = handles.len(), "invocation timed out; the whole batch returns to the queue");
            return;
        }
    };
    for failed in resp.batch_item_failures {
        handles.remove(&failed.item_identifier);
    }
    for handle in handles.into_values() {
        let _ = clients.sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await;
    }
}

async fn queue_arn(clients: &Clients, url: &str) -> Option<String> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()?
        .attributes?
        .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
}

/// An HTTP request as API Gateway / a function URL would hand it to the function.
pub fn to_lambda_request(req: &http_server::Request, scheme: &str) -> lambda_http::Request {
    let host = req.header("host").unwrap_or("127.0.0.1");
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut b = http::Request::builder().method(req.method.clone()).uri(format!("{scheme}://{host}{pq}"));
    for (k, v) in req.headers.iter() {
        b = b.header(k, v);
    }
    let body = if req.body.is_empty() {
        lambda_http::Body::Empty
    } else {
        match std::str::from_utf8(&req.body) {
            Ok(t) => lambda_http::Body::Text(t.to_string()),
            Err(_) => lambda_http::Body::Binary(req.body.to_vec()),
        }
    };
    b.body(body).expect("a received request is well formed")
}

pub fn from_lambda_response(resp: lambda_http::Response<lambda_http::Body>) -> http_server::Response {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(t) => bytes::Bytes::from(t),
        lambda_http::Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    http::Response::from_parts(parts, bytes)
}
