//! Property-based fuzzing of the two JSON documents clients send the API: the submit
//! request (`POST /v1/messages`) and the tenant configuration (`PUT /v1/admin/config`).
//!
//! Inputs are arbitrary bytes and mutations of valid documents (the example tenants,
//! a valid submit). Properties: nothing panics; a refusal is a typed API error with a
//! 4xx status; an accepted submit is within the tenant's limits; an accepted
//! configuration survives a serde round trip and can route a message.
//!
//! Each target runs `FUZZ_CASES` cases (256 by default). A long run:
//!
//! ```text
//! FUZZ_CASES=100000 cargo nextest run -p dispatch-tests -E 'test(/fuzz/)'
//! ```

use dispatch_common::domain::{ContentCategory, E164, MessageId, MessageKind};
use dispatch_common::handlers::api::{SubmitRequest, validate_submit};
use dispatch_common::providers::{ProviderKind, registry};
use dispatch_common::tenant::{RouteEnv, RouteFacts, TenantConfig, route};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use dispatch_domain::fuzzing::fuzz;

const TENANTS: &[&str] = &[
    include_str!("../../../examples/tenants/psap-north.json"),
    include_str!("../../../examples/tenants/council-riverside.json"),
    include_str!("../../../examples/tenants/demo-psap.json"),
];

fn tenant(i: usize) -> TenantConfig {
    serde_json::from_str(TENANTS[i % TENANTS.len()]).expect("example tenant parses")
}

/// Strings the configuration and submit rules branch on, and some that break them.
fn string_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "", " ", "GB", "US", "ZZ", "twilio", "telnyx", "sandbox", "vonage-sms", "emergency_callback", "general",
            "+447400123456", "+12015550123", "(201) 555-0123", "dispatch/", "dispatch/x", "https://h/", "http://127.0.0.1/",
            "javascript:alert(1)", "25:99", "21:00", "08:00", "Europe/London", "Mars/Olympus", "+", "+44",
        ])
        .prop_map(str::to_owned),
        1 => Just("a".repeat(5000)),
        2 => any::<String>(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => Just(json!(0)),
        1 => Just(json!(u32::MAX)),
        1 => Just(json!(-1)),
        1 => any::<f64>().prop_map(|f| json!(f)),
        3 => string_leaf().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(("[a-z_]{1,12}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A change at a random place in a JSON document.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Vec<usize>, Value),
    Remove(Vec<usize>),
    Insert(Vec<usize>, String, Value),
    /// Replaces the leaf reached with a value of the same JSON type, so the document
    /// usually still deserialises and the validation rules get exercised.
    SameType(Vec<usize>, String, u64, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = proptest::collection::vec(any::<usize>(), 0..5);
    prop_oneof![
        3 => (path.clone(), json_value()).prop_map(|(p, v)| Edit::Replace(p, v)),
        1 => path.clone().prop_map(Edit::Remove),
        1 => (path.clone(), "[a-z_]{1,12}", json_value()).prop_map(|(p, k, v)| Edit::Insert(p, k, v)),
        6 => (path, prop_oneof![
            string_leaf(),
            "[A-Za-z0-9_+/:.\\-]{0,20}",
        ], prop_oneof![Just(0u64), Just(1), Just(7), Just(u64::from(u32::MAX)), Just(u64::MAX), any::<u64>(), 0u64..100], any::<usize>())
            .prop_map(|(p, s, n, i)| Edit::SameType(p, s, n, i)),
    ]
}

/// Walks `path` (each step picks a child by index modulo the count) and applies `e`
/// at the node reached; stops early at a leaf.
fn apply(doc: &mut Value, e: &Edit) {
    let path = match e {
        Edit::Replace(p, _) | Edit::Remove(p) | Edit::Insert(p, _, _) | Edit::SameType(p, ..) => p,
    };
    apply_at(doc, path, e);
}

fn apply_at(node: &mut Value, path: &[usize], e: &Edit) {
    let Some((&step, rest)) = path.split_first() else {
        match (e, &mut *node) {
            (Edit::Replace(_, v), _) => *node = v.clone(),
            (Edit::SameType(_, s, _, _), Value::String(old)) => *old = s.clone(),
            (Edit::SameType(_, _, n, _), Value::Number(_)) => *node = json!(n),
            (Edit::SameType(..), Value::Bool(b)) => *b = !*b,
            // Lists: drop or repeat an element.
            (Edit::SameType(_, _, n, i), Value::Array(a)) if !a.is_empty() => {
                let i = i % a.len();
                if n % 2 == 0 {
                    a.remove(i);
                } else {
                    let dup = a[i].clone();
                    a.push(dup);
                }
            }
            _ => {}
        }
        return;
    };
    match node {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).expect("in range").clone();
            if rest.is_empty() {
                match e {
                    Edit::Remove(_) => {
                        m.remove(&key);
                        return;
                    }
                    Edit::Insert(_, k, v) => {
                        m.insert(k.clone(), v.clone());
                        return;
                    }
                    Edit::Replace(..) | Edit::SameType(..) => {}
                }
            }
            apply_at(m.get_mut(&key).expect("present"), rest, e);
        }
        Value::Array(a) if !a.is_empty() => {
            let i = step % a.len();
            if rest.is_empty() && matches!(e, Edit::Remove(_)) {
                a.remove(i);
                return;
            }
            apply_at(&mut a[i], rest, e);
        }
        _ => apply_at(node, &[], e),
    }
}

fn env_check(cfg: &TenantConfig) -> TestCaseResult {
    let platform: BTreeSet<ProviderKind> = ProviderKind::ALL.into_iter().collect();
    let unhealthy = BTreeSet::new();
    let caps = |k: ProviderKind| registry::adapter(k).capabilities();
    let env = RouteEnv {
        platform_enabled: &platform,
        credentials_ok: &|_| Ok(()),
        capabilities: &caps,
        unhealthy: &unhealthy,
        exclude: &[],
    };
    let to = E164::parse("+12015550123", None).expect("valid");
    for category in [ContentCategory::emergency_callback(), ContentCategory::general()] {
        for (kind, media) in [(MessageKind::Sms, vec![]), (MessageKind::Mms, vec![("image/png".to_owned(), 1000u64)])] {
            let facts = RouteFacts {
                id: MessageId::new(),
                kind,
                category: &category,
                to: &to,
                from: None,
                media_count: media.len(),
                media: &media,
            };
            let d = route(cfg, &facts, &env);
            let _ = d.refusal_reason();
            let _ = cfg.retry_for(&category);
            let _ = cfg.validity_secs(&category);
            if let Some(q) = cfg.quiet_hours_apply(&category) {
                let _ = q.defer_until(chrono::Utc::now());
            }
        }
    }
    for n in [0, 1, 2, 17, 33, u32::MAX] {
        for jitter in [0.0, 0.5, 1.0, f64::NAN, -1.0, f64::INFINITY] {
            prop_assert!(cfg.retry.backoff_secs(n, jitter) >= 1);
        }
    }
    Ok(())
}

#[test]
fn fuzz_tenant_config() {
    let doc = prop_oneof![
        6 => (0usize..TENANTS.len(), proptest::collection::vec(edit(), 1..4)).prop_map(|(i, edits)| {
            let mut v: Value = serde_json::from_str(TENANTS[i]).expect("json");
            for e in &edits {
                apply(&mut v, e);
            }
            serde_json::to_vec(&v).expect("json")
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => (0usize..TENANTS.len(), any::<usize>(), any::<u8>()).prop_map(|(i, at, b)| {
            let mut bytes = TENANTS[i].as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = b;
            bytes
        }),
    ];
    // How deep the inputs got, so a change that starves the later checks shows.
    let (parsed, valid) = (AtomicU32::new(0), AtomicU32::new(0));
    fuzz("tenant_config", doc, |bytes| {
        let Ok(cfg) = serde_json::from_slice::<TenantConfig>(&bytes) else { return Ok(()) };
        parsed.fetch_add(1, Ordering::Relaxed);
        match cfg.validate() {
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(!e.field.is_empty() && e.message.len() < 512, "{e:?}");
                }
            }
            Ok(()) => {
                let again: TenantConfig =
                    serde_json::from_value(serde_json::to_value(&cfg).expect("serialises")).expect("re-parses");
                prop_assert_eq!(&again, &cfg);
                prop_assert!(again.validate().is_ok());
                env_check(&cfg)?;
                valid.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    eprintln!("fuzz tenant_config: {} parsed, {} valid (shrinking included)", parsed.into_inner(), valid.into_inner());
}

fn submit_doc() -> impl Strategy<Value = Value> {
    let to = prop_oneof![
        2 => Just(json!("+12015550123")),
        2 => Just(json!("(201) 555-0123")),
        1 => Just(json!("+447400123456")),
        1 => Just(json!("+1 604 555 5555")),
        2 => "[+0-9() .\\-]{0,20}".prop_map(Value::String),
        1 => json_leaf(),
    ];
    let body = prop_oneof![
        4 => Just(json!("Officers are on their way.")),
        2 => any::<String>().prop_map(Value::String),
        1 => Just(json!("")),
        1 => Just(json!("€".repeat(700))),
        1 => Just(json!("a".repeat(10_000))),
        1 => json_leaf(),
    ];
    let category = prop_oneof![4 => Just(json!("emergency_callback")), 4 => Just(json!("general")), 1 => json_leaf()];
    let from = prop_oneof![
        4 => Just(None),
        2 => Just(Some(json!("+12015550140"))),
        1 => Just(Some(json!("CityAlerts"))),
        1 => json_leaf().prop_map(Some),
    ];
    let media = prop_oneof![
        6 => Just(None),
        2 => Just(Some(json!(["med_01JD0000000000000000000000"]))),
        1 => proptest::collection::vec(json_leaf(), 0..12).prop_map(|v| Some(Value::Array(v))),
    ];
    (to, body, category, from, media, proptest::collection::vec(edit(), 0..2)).prop_map(|(to, body, category, from, media, edits)| {
        let mut v = json!({"to": to, "body": body, "category": category});
        if let Some(f) = from {
            v["from"] = f;
        }
        if let Some(m) = media {
            v["media"] = m;
        }
        for e in &edits {
            apply(&mut v, e);
        }
        v
    })
}

#[test]
fn fuzz_submit_request() {
    let input = prop_oneof![
        6 => (submit_doc(), 0usize..TENANTS.len()).prop_map(|(v, t)| (serde_json::to_vec(&v).expect("json"), t)),
        1 => (proptest::collection::vec(any::<u8>(), 0..200), 0usize..TENANTS.len()),
    ];
    let (parsed, accepted) = (AtomicU32::new(0), AtomicU32::new(0));
    fuzz("submit_request", input, |(bytes, t)| {
        let Ok(r) = serde_json::from_slice::<SubmitRequest>(&bytes) else { return Ok(()) };
        parsed.fetch_add(1, Ordering::Relaxed);
        let tenant = tenant(t);
        match validate_submit(&r, &tenant) {
            Ok(v) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(E164::parse(v.to.as_str(), None).ok(), Some(v.to.clone()));
                prop_assert!(v.info.segments <= tenant.delivery.max_segments);
                prop_assert!(!v.body.trim().is_empty() || !r.media.is_empty());
                prop_assert!(tenant.is_known_category(&v.category));
                prop_assert_eq!(v.kind == MessageKind::Mms, !r.media.is_empty());
            }
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "status {} for {:?}", e.status, e);
                prop_assert!(!e.code.is_empty() && e.message.len() < 1024, "{e:?}");
            }
        }
        Ok(())
    });
    eprintln!("fuzz submit_request: {} parsed, {} accepted", parsed.into_inner(), accepted.into_inner());
}
