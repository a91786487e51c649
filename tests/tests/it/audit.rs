//! The audit trail on the emulator's DynamoDB: one isolated table per test, chains
//! that stay linear under concurrent writers, tampering (altered, deleted, truncated,
//! re-hashed) found at the right link, recipients stored only masked and keyed-hashed,
//! queries by message and operator, JSON-lines export.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, TimeZone, Utc};
use dispatch_common::audit::{
    audit_event_sk, audit_pk, AuditAction, AuditError, AuditEvent, AuditFilter, AuditLog, BreakReason, ChainBreak, NewAuditEvent,
    VerifyReport, GENESIS_HASH,
};
use dispatch_common::aws::Clients;
use dispatch_common::domain::{ContentCategory, MessageId, TenantId};
use dispatch_common::observability::mask_number;
use dispatch_common::time::Instant;
use dispatch_local::provision::{provision, template_path};
use dispatch_tests::harness::{require_emulator, unique_prefix};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const KEY: &[u8] = b"test-audit-recipient-key-5b2c9e01d4f7a3b8";
const NUMBER: &str = "+12015550123";

struct Env {
    log: AuditLog,
    db: aws_sdk_dynamodb::Client,
    table: String,
}

async fn setup(name: &str) -> Env {
    require_emulator();
    let clients = Clients::from_env().await;
    // moto occasionally answers 500 when many resources are created at once (several
    // suites provisioning side by side): try again under a fresh prefix.
    let mut tries = 0;
    let provisioned = loop {
        tries += 1;
        match provision(&clients, &template_path(), &unique_prefix(name), &BTreeMap::new()).await {
            Ok(p) => break p,
            Err(e) if tries < 3 => eprintln!("provisioning failed, retrying: {e:#}"),
            Err(e) => panic!("template provisions on the emulator: {e:?}"),
        }
    };
    let table = provisioned.env["TABLE_NAME"].clone();
    Env { log: AuditLog::new(clients.dynamodb.clone(), &table, KEY.to_vec()), db: clients.dynamodb, table }
}

/// Counts the `TransactWriteItems` requests (every attempt) a client sends, to show
/// that concurrent writers really collided and retried.
#[derive(Debug, Default)]
struct TransactionCounter {
    transactions: Arc<AtomicUsize>,
}

impl aws_sdk_dynamodb::config::Intercept for TransactionCounter {
    fn name(&self) -> &'static str {
        "TransactionCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if context.request().headers().get("x-amz-target").is_some_and(|t| t.ends_with(".TransactWriteItems")) {
            self.transactions.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl TransactionCounter {
    fn client(&self, base: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let counter = TransactionCounter { transactions: self.transactions.clone() };
        aws_sdk_dynamodb::Client::from_conf(base.config().to_builder().interceptor(counter).build())
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn base() -> Instant {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
}

fn at(secs: i64) -> Instant {
    base() + Duration::seconds(secs)
}

fn note(i: usize) -> NewAuditEvent {
    NewAuditEvent::new(AuditAction::StatusChanged)
        .key_id("key_ops")
        .operator_id("op-1")
        .status("sent")
        .detail(format!("event {i}"))
}

/// Appends `count` simple events, one second apart, and returns them.
async fn fill(env: &Env, t: &TenantId, count: usize) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for i in 0..count {
        out.push(env.log.append(t, note(i), at(i as i64)).await.expect("append"));
    }
    out
}

async fn raw_event(env: &Env, t: &TenantId, seq: u64) -> HashMap<String, AttributeValue> {
    env.db
        .get_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(audit_pk(t)))
        .key("sk", AttributeValue::S(audit_event_sk(seq)))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item")
        .item
        .unwrap_or_else(|| panic!("event {seq} is stored"))
}

async fn set_doc(env: &Env, t: &TenantId, seq: u64, doc: String) {
    env.db
        .update_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(audit_pk(t)))
        .key("sk", AttributeValue::S(audit_event_sk(seq)))
        .update_expression("SET doc = :d")
        .expression_attribute_values(":d", AttributeValue::S(doc))
        .send()
        .await
        .expect("update_item");
}

async fn delete(env: &Env, t: &TenantId, sk: &str) {
    env.db
        .delete_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(audit_pk(t)))
        .key("sk", AttributeValue::S(sk.to_string()))
        .send()
        .await
        .expect("delete_item");
}

fn doc_of(item: &HashMap<String, AttributeValue>) -> AuditEvent {
    serde_json::from_str(item["doc"].as_s().unwrap()).unwrap()
}

fn broken(r: Result<VerifyReport, AuditError>) -> ChainBreak {
    match r {
        Err(AuditError::ChainBroken(b)) => b,
        other => panic!("expected a chain break, got {other:?}"),
    }
}

fn seqs(events: &[AuditEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_each_chain_linear_and_gap_free() {
    let env = setup("audit-conc").await;
    // The emulator (scripts/emulator/launch.py) isolates transactions as DynamoDB does;
    // writers still read the same head concurrently, so their transactions conflict.
    let proxy = TransactionCounter::default();
    let log = AuditLog::new(proxy.client(&env.db), &env.table, KEY.to_vec());
    let alpha = tenant("psap-alpha");
    let beta = tenant("psap-beta");
    let mut appended = fill(&env, &alpha, 4).await;
    assert_eq!(seqs(&appended), [1, 2, 3, 4]);
    assert_eq!(appended[0].prev_hash, GENESIS_HASH);

    // Four writers on alpha and one on beta, all at once.
    let mut tasks = Vec::new();
    for w in 0..5 {
        let log = log.clone();
        let t = if w == 4 { beta.clone() } else { alpha.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..6 {
                let ev = NewAuditEvent::new(AuditAction::ProviderAttempted)
                    .operator_id(format!("writer-{w}"))
                    .provider("sandbox-main")
                    .detail(format!("writer {w} event {i}"));
                mine.push(log.append(&t, ev, Utc::now()).await.expect("append under contention"));
            }
            (w, mine)
        }));
    }
    let mut beta_appended = Vec::new();
    for task in tasks {
        let (w, mine) = task.await.unwrap();
        // Each writer's own events are in its order along the chain.
        assert!(mine.windows(2).all(|p| p[0].seq < p[1].seq), "writer {w}: {:?}", seqs(&mine));
        if w == 4 {
            beta_appended = mine;
        } else {
            appended.extend(mine);
        }
    }

    // More transactions than appends: writers really did collide and retry.
    let transactions = proxy.transactions.load(Ordering::SeqCst);
    assert!(transactions > 30, "{transactions} transactions for 30 concurrent appends: no contention was exercised");

    assert_eq!(env.log.verify(&alpha).await.unwrap(), VerifyReport { events: 28, head_seq: 28 });
    assert_eq!(env.log.verify(&beta).await.unwrap(), VerifyReport { events: 6, head_seq: 6 });

    let stored = env.log.query(&alpha, &AuditFilter::default(), 1000).await.unwrap();
    assert_eq!(seqs(&stored), (1..=28).collect::<Vec<u64>>(), "seqs 1..N, no gaps, no duplicates");
    for pair in stored.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "link {} -> {}", pair[0].seq, pair[1].seq);
    }
    // Every append that reported success is in the chain exactly as it was returned.
    appended.sort_by_key(|e| e.seq);
    assert_eq!(appended, stored);
    assert_eq!(seqs(&beta_appended), [1, 2, 3, 4, 5, 6], "the other tenant's chain is its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_event_is_detected_at_its_seq() {
    let env = setup("audit-alter").await;
    let t = tenant("psap-alter");
    fill(&env, &t, 6).await;
    assert_eq!(env.log.verify(&t).await.unwrap(), VerifyReport { events: 6, head_seq: 6 });

    // Change one field of event 4 and leave its hash alone.
    let mut doc: serde_json::Value = serde_json::from_str(raw_event(&env, &t, 4).await["doc"].as_s().unwrap()).unwrap();
    doc["status"] = "delivered".into();
    set_doc(&env, &t, 4, doc.to_string()).await;
    let b = broken(env.log.verify(&t).await);
    assert_eq!(b.seq, 4, "{b}");
    assert!(matches!(b.reason, BreakReason::HashMismatch { .. }), "{b}");

    // A better forger also recomputes the altered event's hash: the next link breaks.
    let t2 = tenant("psap-rehash");
    fill(&env, &t2, 6).await;
    let mut ev = doc_of(&raw_event(&env, &t2, 3).await);
    ev.detail = Some("nothing to see".into());
    ev.hash = ev.compute_hash();
    set_doc(&env, &t2, 3, serde_json::to_string(&ev).unwrap()).await;
    let b = broken(env.log.verify(&t2).await);
    assert_eq!(b.seq, 4, "{b}");
    assert_eq!(b.reason, BreakReason::PrevHashMismatch { expected: ev.hash.clone(), found: doc_of(&raw_event(&env, &t2, 4).await).prev_hash });

    // The message index is not hashed, but hiding an event from its message's history
    // by dropping its index keys is caught too.
    let t3 = tenant("psap-index");
    let id = MessageId::new();
    for i in 0..3 {
        env.log.append(&t3, note(i).message_id(id), at(i as i64)).await.unwrap();
    }
    env.db
        .update_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(audit_pk(&t3)))
        .key("sk", AttributeValue::S(audit_event_sk(2)))
        .update_expression("REMOVE gsi2pk, gsi2sk")
        .send()
        .await
        .unwrap();
    assert_eq!(seqs(&env.log.query(&t3, &AuditFilter::message(id), 10).await.unwrap()), [1, 3], "hidden from the index");
    let b = broken(env.log.verify(&t3).await);
    assert_eq!(b.seq, 2, "{b}");
    assert!(matches!(b.reason, BreakReason::IndexMismatch { found: None, .. }), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_event_is_detected_at_the_missing_link() {
    let env = setup("audit-delete").await;
    let t = tenant("psap-delete");
    fill(&env, &t, 6).await;
    delete(&env, &t, &audit_event_sk(3)).await;
    let b = broken(env.log.verify(&t).await);
    assert_eq!(b, ChainBreak { seq: 3, reason: BreakReason::MissingEvent { next_present: 4 } });

    let first = tenant("psap-delete-first");
    fill(&env, &first, 3).await;
    delete(&env, &first, &audit_event_sk(1)).await;
    assert_eq!(broken(env.log.verify(&first).await), ChainBreak { seq: 1, reason: BreakReason::MissingEvent { next_present: 2 } });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_tail_and_deleted_head_are_detected() {
    let env = setup("audit-tail").await;
    let t = tenant("psap-tail");
    fill(&env, &t, 6).await;
    delete(&env, &t, &audit_event_sk(6)).await;
    assert_eq!(broken(env.log.verify(&t).await), ChainBreak { seq: 6, reason: BreakReason::MissingTail { head_seq: 6 } });

    // Deleting the head (say, to hide a truncation) is caught too: events, no head.
    let h = tenant("psap-headless");
    fill(&env, &h, 2).await;
    delete(&env, &h, "HEAD").await;
    assert_eq!(broken(env.log.verify(&h).await), ChainBreak { seq: 1, reason: BreakReason::BeyondHead { head_seq: 0 } });

    // And a tenant with nothing yet verifies as empty.
    assert_eq!(env.log.verify(&tenant("psap-empty")).await.unwrap(), VerifyReport { events: 0, head_seq: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_is_stored_masked_and_keyed_hashed_only() {
    let env = setup("audit-recipient").await;
    let t = tenant("psap-recipient");
    let id = MessageId::new();
    let e = env
        .log
        .append(
            &t,
            NewAuditEvent::new(AuditAction::MessageSubmitted)
                .key_id("key_submit")
                .message_id(id)
                .category(ContentCategory::emergency_callback())
                .recipient(NUMBER)
                .sender("+12015550100")
                .status("accepted"),
            base(),
        )
        .await
        .unwrap();
    assert_eq!(e.recipient_masked.as_deref(), Some(mask_number(NUMBER).as_str()));
    assert_eq!(e.recipient_masked.as_deref(), Some("+12******123"));

    // The keyed hash is HMAC-SHA256 with the platform key over the E.164 string.
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(NUMBER.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(e.recipient_hash.as_deref(), Some(expected.as_str()));
    assert_eq!(env.log.recipient_hash(NUMBER), expected);
    let other_key = AuditLog::new(env.db.clone(), &env.table, b"another-platform-key".to_vec());
    assert_ne!(other_key.recipient_hash(NUMBER), expected, "the hash depends on the key");

    // Nothing stored under the tenant's audit partition or the message index holds
    // the number, in any attribute.
    let item = raw_event(&env, &t, 1).await;
    assert_eq!(doc_of(&item), e);
    let all = env
        .db
        .query()
        .table_name(&env.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(audit_pk(&t)))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(all.len(), 2, "one event and the head");
    let text = format!("{all:?}");
    assert!(!text.contains("2015550123"), "the full number is never stored: {text}");
    assert!(text.contains(&expected) && text.contains("+12******123"));

    // Searchable by the number through its keyed hash.
    let found = env
        .log
        .query(&t, &AuditFilter { recipient_hash: Some(env.log.recipient_hash(NUMBER)), ..Default::default() }, 10)
        .await
        .unwrap();
    assert_eq!(found, [e]);
    let none = env
        .log
        .query(&t, &AuditFilter { recipient_hash: Some(env.log.recipient_hash("+12015550124")), ..Default::default() }, 10)
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_message_operator_category_and_time() {
    let env = setup("audit-query").await;
    let t = tenant("psap-query");
    let other = tenant("psap-other");
    let (m1, m2) = (MessageId::new(), MessageId::new());
    let emergency = ContentCategory::emergency_callback();
    let general = ContentCategory::general();
    let plan: Vec<(i64, NewAuditEvent)> = vec![
        (0, NewAuditEvent::new(AuditAction::MessageSubmitted).operator_id("op-a").message_id(m1).category(emergency.clone())),
        (1, NewAuditEvent::new(AuditAction::RouteDecided).message_id(m1).category(emergency.clone()).provider("sandbox-main")),
        (2, NewAuditEvent::new(AuditAction::MessageSubmitted).operator_id("op-b").message_id(m2).category(general.clone())),
        (3, NewAuditEvent::new(AuditAction::EscalationAcknowledged).operator_id("op-a").message_id(m1).category(emergency.clone())),
        (4, NewAuditEvent::new(AuditAction::KeyCreated).operator_id("op-a").key_id("key_new")),
        (5, NewAuditEvent::new(AuditAction::CallbackRejected).message_id(m2).provider("sandbox-main").detail("bad signature")),
    ];
    for (secs, ev) in plan {
        env.log.append(&t, ev, at(secs)).await.unwrap();
    }
    // The same message id under another tenant never shows up in this tenant's results.
    env.log.append(&other, NewAuditEvent::new(AuditAction::StatusChanged).message_id(m1).operator_id("op-a"), at(2)).await.unwrap();

    let q = |f: AuditFilter, limit: usize| {
        let log = env.log.clone();
        let t = t.clone();
        async move { seqs(&log.query(&t, &f, limit).await.unwrap()) }
    };
    assert_eq!(q(AuditFilter::message(m1), 100).await, [1, 2, 4]);
    assert_eq!(q(AuditFilter::message(m1), 2).await, [1, 2]);
    assert_eq!(q(AuditFilter::message(m2), 100).await, [3, 6]);
    assert_eq!(q(AuditFilter::message(MessageId::new()), 100).await, Vec::<u64>::new());
    assert_eq!(q(AuditFilter::operator("op-a"), 100).await, [1, 4, 5]);
    assert_eq!(q(AuditFilter::operator("op-a"), 1).await, [1]);
    assert_eq!(q(AuditFilter::operator("op-b"), 100).await, [3]);
    assert_eq!(q(AuditFilter { category: Some(emergency.clone()), ..Default::default() }, 100).await, [1, 2, 4]);
    assert_eq!(q(AuditFilter { category: Some(emergency), operator_id: Some("op-a".into()), ..Default::default() }, 100).await, [1, 4]);
    assert_eq!(q(AuditFilter { action: Some(AuditAction::CallbackRejected), ..Default::default() }, 100).await, [6]);
    // `from` inclusive, `to` exclusive, on the chain walk and on the message index.
    assert_eq!(q(AuditFilter { from: Some(at(1)), to: Some(at(4)), ..Default::default() }, 100).await, [2, 3, 4]);
    assert_eq!(q(AuditFilter { message_id: Some(m1), from: Some(at(1)), to: Some(at(3)), ..Default::default() }, 100).await, [2]);
    assert_eq!(q(AuditFilter { message_id: Some(m1), from: Some(at(1)), ..Default::default() }, 100).await, [2, 4]);
    assert_eq!(q(AuditFilter { message_id: Some(m1), to: Some(at(3)), ..Default::default() }, 100).await, [1, 2]);
    assert_eq!(q(AuditFilter { message_id: Some(m1), operator_id: Some("op-a".into()), ..Default::default() }, 100).await, [1, 4]);

    let events = env.log.query(&t, &AuditFilter::message(m1), 100).await.unwrap();
    assert!(events.iter().all(|e| e.tenant == t && e.message_id == Some(m1) && e.is_intact()));
    assert_eq!(events[0].at, "2026-03-04T05:06:07.000Z", "ISO 8601 UTC with milliseconds and Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_one_valid_json_object_per_line() {
    let env = setup("audit-export").await;
    let t = tenant("psap-export");
    fill(&env, &t, 5).await;
    env.log
        .append(
            &t,
            NewAuditEvent::new(AuditAction::ConfigChanged).operator_id("op-admin").detail("routing: \"everything\" → twilio\nline two"),
            at(10),
        )
        .await
        .unwrap();

    let mut out = Vec::new();
    let n = env.log.export_jsonl(&t, &AuditFilter::default(), &mut out).await.unwrap();
    assert_eq!(n, 6);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let mut prev = GENESIS_HASH.to_string();
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i} is not JSON ({e}): {line}"));
        assert!(v.is_object());
        assert!(v.get("body").is_none());
        let e: AuditEvent = serde_json::from_value(v).unwrap();
        assert_eq!(e.seq, i as u64 + 1);
        assert!(e.is_intact(), "an exported line re-verifies on its own");
        assert_eq!(e.prev_hash, prev);
        prev = e.hash;
    }

    // Filtered export, then the export recorded as its own event: the chain still verifies.
    let mut only_admin = Vec::new();
    assert_eq!(env.log.export_jsonl(&t, &AuditFilter::operator("op-admin"), &mut only_admin).await.unwrap(), 1);
    assert!(String::from_utf8(only_admin).unwrap().contains("\"action\":\"config_changed\""));
    env.log
        .append(&t, NewAuditEvent::new(AuditAction::AuditExported).operator_id("op-admin").detail("6 events, no filter"), at(11))
        .await
        .unwrap();
    assert_eq!(env.log.verify(&t).await.unwrap(), VerifyReport { events: 7, head_seq: 7 });
}

/// Query and export pages: every event exactly once, in order, with a cursor that
/// says whether more remains; a call reading a bounded number of items still returns
/// a cursor; a cursor never opens another tenant's chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_walk_the_whole_chain_with_cursors() {
    use dispatch_common::audit::AuditCursor;
    let env = setup("audit-pages").await;
    let t = tenant("psap-pages");
    fill(&env, &t, 25).await;
    let all = AuditFilter::default();
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let (events, next) = env.log.query_page(&t, &all, 10, cursor.as_ref(), 10_000).await.unwrap();
        pages += 1;
        seen.extend(seqs(&events));
        match next {
            Some(c) => {
                // What a client holds is the encoded form.
                cursor = Some(AuditCursor::decode_for(&c.encode(), &t, &all).expect("our own cursor decodes"));
            }
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<u64>>());
    assert_eq!(pages, 3, "10 + 10 + 5");

    // A sparse filter over a long chain: each call reads at most 4 items, matches
    // none, and still hands back a cursor until the end.
    let none = AuditFilter::operator("nobody");
    let (events, next) = env.log.query_page(&t, &none, 10, None, 4).await.unwrap();
    assert!(events.is_empty());
    let next = next.expect("more remains after 4 of 25 items");

    // Another tenant (or a forged partition) cannot use a cursor.
    let other = tenant("psap-other");
    assert!(AuditCursor::decode_for(&next.encode(), &other, &none).is_none());
    assert!(AuditCursor::decode_for("not-a-cursor", &t, &none).is_none());
    let by_message = AuditFilter::message(MessageId::new());
    assert!(AuditCursor::decode_for(&next.encode(), &t, &by_message).is_none(), "a chain cursor is not a message-index cursor");
}

/// Verification within a time budget: incremental from a stored checkpoint (which is
/// itself re-checked), resumable when the budget runs out, and a full re-verification
/// from the genesis that finds what the incremental walk no longer reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_is_incremental_resumable_and_bounded() {
    let env = setup("audit-incr").await;
    let t = tenant("psap-incr");
    fill(&env, &t, 30).await;
    let now = Utc::now();
    let r = env.log.verify_within(&t, false, std::time::Duration::from_secs(20), now).await.unwrap();
    assert_eq!((r.verified_through, r.head_seq, r.started_after, r.complete), (30, 30, 0, true));
    for i in 0..5 {
        env.log.append(&t, note(100 + i), at(100 + i as i64)).await.unwrap();
    }
    let r = env.log.verify_within(&t, false, std::time::Duration::from_secs(20), now).await.unwrap();
    assert_eq!((r.verified_through, r.started_after, r.complete), (35, 30, true), "only the new events were walked");

    // No budget: nothing verified, not complete, and nothing lost (a later call goes on).
    let r = env.log.verify_within(&t, true, std::time::Duration::ZERO, now).await.unwrap();
    assert_eq!((r.verified_through, r.complete, r.full), (0, false, true));

    // An old event altered: the incremental walk does not reread it, the full job does.
    let mut doc: serde_json::Value = serde_json::from_str(raw_event(&env, &t, 3).await["doc"].as_s().unwrap()).unwrap();
    doc["detail"] = serde_json::json!("rewritten history");
    set_doc(&env, &t, 3, doc.to_string()).await;
    assert!(env.log.verify_within(&t, false, std::time::Duration::from_secs(20), now).await.unwrap().complete);
    let full = env.log.verify_within(&t, true, std::time::Duration::from_secs(20), now).await;
    assert_eq!(broken(full.map(|r| VerifyReport { events: r.verified_through, head_seq: r.head_seq })).seq, 3);

    // The checkpointed event itself altered: the incremental walk refuses to trust it.
    let mut doc: serde_json::Value = serde_json::from_str(raw_event(&env, &t, 35).await["doc"].as_s().unwrap()).unwrap();
    doc["detail"] = serde_json::json!("rewritten");
    set_doc(&env, &t, 35, doc.to_string()).await;
    let r = env.log.verify_within(&t, false, std::time::Duration::from_secs(20), now).await;
    assert_eq!(broken(r.map(|r| VerifyReport { events: r.verified_through, head_seq: r.head_seq })).seq, 35);
}
