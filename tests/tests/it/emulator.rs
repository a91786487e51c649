//! The emulator itself under concurrency, through the official SDK.
//!
//! moto 5.2.5 loses acknowledged DynamoDB writes when transactions are cancelled while
//! other requests commit (it restores a whole-table snapshot), and answers 500s when
//! readers and writers overlap. The project's launcher (scripts/emulator/launch.py)
//! fixes both; these tests hold it to DynamoDB's contract, and hold the whole pipeline
//! to "every accepted message reaches a terminal state" at 8 concurrent submitters.
//!
//! `scripts/emulator.sh prove-race` runs `concurrent_writes_are_never_lost` against a
//! plain moto_server too, where it fails (README, "The local emulator").

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use dispatch_tests::harness::{require_emulator, unique_prefix, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 160;
const CANCELLERS: usize = 3;
/// The item every cancelling transaction's condition fails on.
const BLOCKER: &str = "blocker";
/// Incremented only by transactions that are always cancelled: must never exist.
const NEVER_COUNTER: &str = "counter-never";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// A client that does not retry: every answer is the emulator's first one, so an
/// acknowledgement means exactly one committed request.
async fn client() -> Client {
    require_emulator();
    let base = dispatch_common::aws::load().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&base)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

fn put(table: &str, pk: &str) -> Put {
    Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s("item"))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap()
}

fn bump(table: &str, counter: &str) -> Update {
    Update::builder()
        .table_name(table)
        .key("pk", s(counter))
        .key("sk", s("item"))
        .update_expression("ADD n :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .unwrap()
}

fn blocked(table: &str) -> ConditionCheck {
    ConditionCheck::builder()
        .table_name(table)
        .key("pk", s(BLOCKER))
        .key("sk", s("item"))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap()
}

#[derive(Default)]
struct Outcome {
    /// Items a successful request wrote.
    acknowledged: Vec<String>,
    /// Items only a cancelled (or conditionally failed) request tried to write.
    refused: Vec<String>,
    /// Acknowledged increments of this writer's counter.
    increments: u64,
    /// Answers that are neither success nor an expected cancellation (e.g. 500s).
    unexpected: Vec<String>,
}

fn is_expected_refusal(code: Option<&str>) -> bool {
    matches!(code, Some("TransactionCanceledException" | "ConditionalCheckFailedException"))
}

async fn writer(db: Client, table: String, w: usize) -> Outcome {
    let mut out = Outcome::default();
    let counter = format!("counter-w{w}");
    for i in 0..OPS_PER_WRITER {
        let pk = format!("w{w}-{i}");
        let result = match i % 4 {
            // A plain conditional write.
            0 => db
                .put_item()
                .table_name(&table)
                .item("pk", s(&pk))
                .item("sk", s("item"))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string).unwrap_or_else(|| format!("{e:?}"))),
            // A transaction writing an item and updating (in place) this writer's counter.
            1 => db
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put(&table, &pk)).build())
                .transact_items(TransactWriteItem::builder().update(bump(&table, &counter)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string).unwrap_or_else(|| format!("{e:?}"))),
            // A transaction that is always cancelled after its first write was applied.
            2 => db
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put(&table, &pk)).build())
                .transact_items(TransactWriteItem::builder().condition_check(blocked(&table)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string).unwrap_or_else(|| format!("{e:?}"))),
            // A single-item transaction.
            _ => db
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put(&table, &pk)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string).unwrap_or_else(|| format!("{e:?}"))),
        };
        match result {
            Ok(()) => {
                assert_ne!(i % 4, 2, "a transaction whose condition fails was acknowledged: {pk}");
                out.acknowledged.push(pk);
                if i % 4 == 1 {
                    out.increments += 1;
                }
            }
            Err(code) if is_expected_refusal(Some(&code)) => out.refused.push(pk),
            Err(other) => {
                out.refused.push(pk);
                out.unexpected.push(other);
            }
        }
    }
    out
}

/// Runs transactions that write first and are then cancelled, plus plain conditional
/// writes that fail, until told to stop.
async fn canceller(db: Client, table: String, c: usize, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let pk = format!("c{c}-{i}");
        let result = if i % 5 == 0 {
            db.put_item()
                .table_name(&table)
                .item("pk", s(BLOCKER))
                .item("sk", s("item"))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string))
        } else {
            db.transact_write_items()
                .transact_items(TransactWriteItem::builder().update(bump(&table, NEVER_COUNTER)).build())
                .transact_items(TransactWriteItem::builder().put(put(&table, &pk)).build())
                .transact_items(TransactWriteItem::builder().condition_check(blocked(&table)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(str::to_string))
        };
        match result {
            Ok(()) => out.unexpected.push(format!("{pk}: a request that must fail succeeded")),
            Err(code) if is_expected_refusal(code.as_deref()) => {}
            Err(code) => out.unexpected.push(code.unwrap_or_else(|| "no error code (connection?)".into())),
        }
        if i % 5 != 0 {
            out.refused.push(pk);
        }
    }
    out
}

async fn stored(db: &Client, table: &str, pk: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    db.get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s("item"))
        .consistent_read(true)
        .send()
        .await
        .expect("read back")
        .item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_never_lost() {
    let db = client().await;
    let table = format!("{}-race", unique_prefix("emulator"));
    db.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("sk").key_type(KeyType::Range).build().unwrap())
        .attribute_definitions(AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap())
        .attribute_definitions(AttributeDefinition::builder().attribute_name("sk").attribute_type(ScalarAttributeType::S).build().unwrap())
        .send()
        .await
        .expect("table created");
    db.put_item().table_name(&table).item("pk", s(BLOCKER)).item("sk", s("item")).send().await.expect("blocker stored");

    let stop = Arc::new(AtomicBool::new(false));
    let cancellers: Vec<_> =
        (0..CANCELLERS).map(|c| tokio::spawn(canceller(db.clone(), table.clone(), c, stop.clone()))).collect();
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(db.clone(), table.clone(), w))).collect();
    let mut outcomes = Vec::new();
    for w in writers {
        outcomes.push(w.await.expect("writer"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut cancelled = Vec::new();
    for c in cancellers {
        cancelled.push(c.await.expect("canceller"));
    }

    // Every acknowledged write is there; nothing a refused request tried to write is.
    let mut missing = Vec::new();
    let mut leaked = Vec::new();
    let mut wrong_counters = Vec::new();
    for (w, o) in outcomes.iter().enumerate() {
        for pk in &o.acknowledged {
            if stored(&db, &table, pk).await.is_none() {
                missing.push(pk.clone());
            }
        }
        for pk in &o.refused {
            if stored(&db, &table, pk).await.is_some() {
                leaked.push(pk.clone());
            }
        }
        let n = stored(&db, &table, &format!("counter-w{w}"))
            .await
            .and_then(|item| item.get("n").and_then(|n| n.as_n().ok()).map(|n| n.parse::<u64>().unwrap()))
            .unwrap_or(0);
        if n != o.increments {
            wrong_counters.push(format!("counter-w{w}: {n} stored, {} acknowledged", o.increments));
        }
    }
    for o in &cancelled {
        for pk in &o.refused {
            if stored(&db, &table, pk).await.is_some() {
                leaked.push(pk.clone());
            }
        }
    }
    if stored(&db, &table, NEVER_COUNTER).await.is_some() {
        leaked.push(NEVER_COUNTER.to_string());
    }
    let acknowledged: usize = outcomes.iter().map(|o| o.acknowledged.len()).sum();
    let cancellations: usize = cancelled.iter().map(|o| o.refused.len()).sum::<usize>() + outcomes.iter().map(|o| o.refused.len()).sum::<usize>();
    let unexpected: Vec<&String> = outcomes.iter().chain(&cancelled).flat_map(|o| &o.unexpected).collect();
    eprintln!(
        "race summary: {acknowledged} acknowledged, {} missing, {cancellations} refused, {} leaked, {} unexpected errors",
        missing.len(),
        leaked.len(),
        unexpected.len()
    );
    let _ = db.delete_table().table_name(&table).send().await;

    assert!(acknowledged >= WRITERS * OPS_PER_WRITER / 2, "too few writes succeeded to say anything: {acknowledged}");
    assert!(cancellations > WRITERS * OPS_PER_WRITER / 4, "too few cancellations: {cancellations}");
    assert!(missing.is_empty(), "{} of {acknowledged} acknowledged writes are missing: {missing:?}", missing.len());
    assert!(wrong_counters.is_empty(), "counters disagree with acknowledged increments (lost or resurrected update): {wrong_counters:?}");
    assert!(leaked.is_empty(), "writes of cancelled transactions are visible: {leaked:?}");
    let distinct: HashSet<&String> = unexpected.iter().copied().collect();
    assert!(unexpected.is_empty(), "{} answers were neither success nor a cancellation: {distinct:?}", unexpected.len());
}

/// The launcher's health counters; None when the endpoint does not serve them (an
/// emulator other than scripts/emulator/launch.py, e.g. LocalStack).
async fn emulator_stats(http: &reqwest::Client) -> Option<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok()?;
    let resp = http.get(format!("{}/_emulator/stats", endpoint.trim_end_matches('/'))).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

const TERMINAL: [&str; 6] = ["delivered", "undelivered", "failed", "rejected", "expired", "cancelled"];
const MESSAGES: usize = 200;
const SUBMITTERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_messages_at_eight_submitters_all_reach_a_terminal_state() {
    let env = Arc::new(TestEnv::start("concurrent").await);
    let before = emulator_stats(&env.http).await;

    let mut submitters = Vec::new();
    for c in 0..SUBMITTERS {
        let env = env.clone();
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..MESSAGES / SUBMITTERS {
                let (status, body) =
                    env.submit(json!({"to": "+12015550123", "body": format!("Unit {c}-{i} is on its way."), "category": "general"}), None).await;
                assert_eq!(status, 202, "submitter {c}, message {i}: {body}");
                ids.push(body["id"].as_str().expect("id").to_string());
            }
            ids
        }));
    }
    let mut pending: BTreeMap<String, Value> = BTreeMap::new();
    for s in submitters {
        for id in s.await.expect("submitter") {
            pending.insert(id, Value::Null);
        }
    }
    assert_eq!(pending.len(), MESSAGES, "every accepted message has its own id");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(400);
    let mut finished: BTreeMap<String, String> = BTreeMap::new();
    while !pending.is_empty() {
        let ids: Vec<String> = pending.keys().cloned().collect();
        for id in ids {
            let (status, m) = env.get(&id).await;
            assert_eq!(status, 200, "accepted message {id} is missing: {m}");
            let state = m["status"].as_str().unwrap_or_default().to_string();
            if TERMINAL.contains(&state.as_str()) {
                pending.remove(&id);
                finished.insert(id, state);
            } else {
                pending.insert(id, m);
            }
        }
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let stuck: Vec<String> = pending.iter().take(5).map(|(id, m)| format!("{id}: {}", m["status"])).collect();
            panic!("{} of {MESSAGES} accepted messages did not reach a terminal state; e.g. {stuck:?}", pending.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let delivered = finished.values().filter(|s| *s == "delivered").count();
    assert_eq!(delivered, MESSAGES, "a deliverable number: every message is delivered ({finished:?})");
    assert_eq!(env.sandbox.received().len(), MESSAGES, "each message reached the provider exactly once");

    match (before, emulator_stats(&env.http).await) {
        (Some(b), Some(a)) => {
            let errors = a["responses_5xx"].as_u64().unwrap() - b["responses_5xx"].as_u64().unwrap();
            assert_eq!(errors, 0, "the emulator answered {errors} 5xx during the run: {:#}", a["recent_5xx"]);
            eprintln!(
                "emulator: peak RSS {} MiB, {} requests during the run, 5xx {errors}",
                a["peak_rss_bytes"].as_u64().unwrap() / 1_048_576,
                a["requests"].as_u64().unwrap() - b["requests"].as_u64().unwrap()
            );
        }
        _ => eprintln!("the emulator serves no /_emulator/stats (not scripts/emulator/launch.py): 5xx not counted"),
    }
}
