//! The local runner enforces Lambda's limits, and handlers respect their deadline:
//! an invocation that runs past its timeout is dropped with its whole batch left on the
//! queue (redelivered after the visibility timeout), and a send batch never starts a
//! provider call it could not finish before the deadline.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use dispatch_common::aws::Clients;
use dispatch_tests::harness::{require_emulator, unique_prefix};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_timeout_leaves_its_whole_batch_on_the_queue() {
    require_emulator();
    let clients = Clients::from_env().await;
    let name = unique_prefix("timeout");
    let url = clients
        .sqs
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    clients.sqs.send_message().queue_url(&url).message_body("{}").send().await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let c = calls.clone();
    let poller = dispatch_local::runner::spawn_poller(clients.clone(), url.clone(), stop.clone(), Duration::from_millis(300), move |_ev, _deadline| {
        c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            // A handler that ignores its deadline (the runner must stop it).
            tokio::time::sleep(Duration::from_secs(30)).await;
            SqsBatchResponse::default()
        })
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    assert!(calls.load(Ordering::SeqCst) >= 2, "dropped at the timeout and redelivered after the visibility timeout");
    // Never deleted: the record is still in the queue.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let left = clients.sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
    assert_eq!(left.messages.unwrap_or_default().len(), 1);
    let _ = clients.sqs.delete_queue().queue_url(&url).send().await;
}
