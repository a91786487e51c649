//! In-process hot path, single thread: what every message costs in CPU before any
//! I/O — `validate_submit` (category, E.164 parse, segments), the routing decision
//! (`tenant::route` with its gates) and the provider request (`build_send`) for
//! sandbox and Twilio — plus a per-step breakdown and the one-off cold costs a fresh
//! instance pays on its first message.
//!
//! Method: a fixed set of 24 realistic submits (8 recipients in national and
//! international forms, 4 bodies incl. a 2-segment GSM-7 and a UCS-2 one, 3
//! categories) is cycled; each step runs in a tight loop for `secs` seconds,
//! `runs` times; the median run is reported. Routing sends emergency callbacks to
//! Twilio and the rest 90/10 sandbox/Twilio, so both adapters are on the path.

use crate::stats::{self, r3};
use dispatch_common::domain::{encoding, ContentCategory, MessageId, MessageKind, E164};
use dispatch_common::handlers::api::{validate_submit, SubmitRequest};
use dispatch_common::providers::registry::adapter;
use dispatch_common::providers::{Credentials, OutboundMessage, ProviderKind};
use dispatch_common::tenant::{route, RouteEnv, RouteFacts, TenantConfig, TenantProvider};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

pub struct Options {
    pub secs: f64,
    pub runs: usize,
}

const TO: [&str; 8] = [
    "+12015550123",
    "(201) 555-0147",
    "201-555-0188",
    "+1 201 555 0100",
    "+447400123456",
    "+33 6 12 34 56 78",
    "+49 1512 3456789",
    "+61 412 345 678",
];

const BODIES: [&str; 4] = [
    "Officers are on their way.",
    "Flood warning for your area: move to higher ground now and follow the instructions of the emergency services. Reply STOP to opt out.",
    "Road closure update: the A40 between junctions 3 and 5 stays closed until Friday 18:00 for emergency repairs. Diversions are signed via the B4009; allow an extra 20 minutes. Details at example.org/roads.",
    "Évacuation immédiate — rendez-vous au point de rassemblement 🚒",
];

const CATEGORIES: [&str; 3] = ["general", "emergency_callback", "resident_update"];

pub fn tenant() -> TenantConfig {
    serde_json::from_value(json!({
        "tenant": "bench-tenant",
        "default_region": "US",
        "providers": [
            {"id": "sandbox-main", "kind": "sandbox", "secret_id": "dispatch/bench-tenant/sandbox/main"},
            {"id": "twilio-main", "kind": "twilio", "secret_id": "dispatch/bench-tenant/twilio/main"}
        ],
        "senders": [
            {"sender": "+12015550100", "provider": "sandbox-main"},
            {"sender": "+12015550199", "provider": "twilio-main"}
        ],
        "routing": [
            {"name": "life-safety", "match": {"categories": ["emergency_callback"]}, "providers": ["twilio-main", "sandbox-main"]},
            {"name": "everything", "match": {}, "providers": ["sandbox-main", "twilio-main"], "weights": [90, 10]}
        ],
        "delivery": {"max_segments": 6}
    }))
    .expect("bench tenant json")
}

const SANDBOX_CREDS: &str = r#"{"api_key":"sk_sandbox_bench_0123456789","webhook_secret":"whsec_bench_0123456789","api_base_url":"https://sandbox.example.org"}"#;
const TWILIO_CREDS: &str = r#"{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"0123456789abcdef0123456789abcdef"}"#;
const WEBHOOK_BASE: &str = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws";

struct Ctx {
    cfg: TenantConfig,
    enabled: BTreeSet<ProviderKind>,
    unhealthy: BTreeSet<String>,
    sandbox: Credentials,
    twilio: Credentials,
}

impl Ctx {
    fn creds(&self, k: ProviderKind) -> &Credentials {
        if k == ProviderKind::Twilio { &self.twilio } else { &self.sandbox }
    }
}

struct Input {
    req: SubmitRequest,
    json: Vec<u8>,
}

fn inputs() -> Vec<Input> {
    (0..24)
        .map(|i| {
            let (to, body, category) = (TO[i % TO.len()], BODIES[i % BODIES.len()], CATEGORIES[i % CATEGORIES.len()]);
            let json = serde_json::to_vec(&json!({"to": to, "body": body, "category": category})).expect("json");
            let req = SubmitRequest {
                to: to.into(),
                from: None,
                body: Some(body.into()),
                category: category.into(),
                media: Vec::new(),
                operator_id: None,
                reason: None,
            };
            Input { req, json }
        })
        .collect()
}

/// One message through the whole hot path; returns the provider request body length.
fn hot_path(input: &Input, ctx: &Ctx) -> usize {
    let v = validate_submit(&input.req, &ctx.cfg).expect("bench inputs are valid");
    let id = MessageId::new();
    let decision = decide(ctx, id, &v.category, &v.to, v.kind);
    let chosen = decision.chosen().expect("an eligible provider");
    let kind = chosen.kind.expect("kind");
    let out = OutboundMessage {
        id,
        kind: v.kind,
        to: v.to,
        from: chosen.sender.clone().expect("sender"),
        body: v.body,
        media_urls: Vec::new(),
        status_callback_url: format!("{WEBHOOK_BASE}/webhooks/{kind}/{}/{}?m={id}", ctx.cfg.tenant, chosen.provider_id),
        validity_secs: Some(86_400),
    };
    adapter(kind).build_send(ctx.creds(kind), &out).expect("request built").body.len()
}

fn decide(ctx: &Ctx, id: MessageId, category: &ContentCategory, to: &E164, kind: MessageKind) -> dispatch_common::tenant::RouteDecision {
    let check = |_: &TenantProvider| Ok(());
    let caps = |k: ProviderKind| adapter(k).capabilities();
    let env = RouteEnv { platform_enabled: &ctx.enabled, credentials_ok: &check, capabilities: &caps, unhealthy: &ctx.unhealthy, exclude: &[] };
    let facts = RouteFacts { id, kind, category, to, from: None, media_count: 0, media: &[] };
    route(&ctx.cfg, &facts, &env)
}

/// Runs `f` over the inputs for `secs` seconds; returns operations per second.
fn measure<T>(secs: f64, n_inputs: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let start = Instant::now();
    let mut ops: u64 = 0;
    let mut i = 0usize;
    loop {
        for _ in 0..256 {
            black_box(f(i));
            i += 1;
            if i == n_inputs {
                i = 0;
            }
        }
        ops += 256;
        let el = start.elapsed().as_secs_f64();
        if el >= secs {
            return ops as f64 / el;
        }
    }
}

fn step(name: &str, rates: Vec<f64>, note: &str) -> Value {
    let med = stats::median(&rates);
    json!({
        "step": name,
        "ops_per_sec_median": r3(med.round()),
        "ns_per_op_median": r3(1e9 / med),
        "ops_per_sec_runs": rates.iter().map(|r| r3(r.round())).collect::<Vec<_>>(),
        "note": note,
    })
}

pub fn run(opts: &Options) -> anyhow::Result<Value> {
    // Cold costs first, while the process is fresh (metadata not decoded, no regex compiled).
    let t = Instant::now();
    E164::warm_up();
    let warm_up_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let _ = black_box(E164::parse("(201) 555-0123", Some("US")));
    let first_parse_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let _ = black_box(E164::parse("(201) 555-0124", Some("US")));
    let second_parse_us = t.elapsed().as_secs_f64() * 1e6;

    let cfg = tenant();
    cfg.validate().map_err(|e| anyhow::anyhow!("bench tenant invalid: {e:?}"))?;
    let ctx = Ctx {
        cfg,
        enabled: [ProviderKind::Sandbox, ProviderKind::Twilio].into(),
        unhealthy: BTreeSet::new(),
        sandbox: Credentials::parse(ProviderKind::Sandbox, SANDBOX_CREDS).map_err(|e| anyhow::anyhow!("{e}"))?,
        twilio: Credentials::parse(ProviderKind::Twilio, TWILIO_CREDS).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let ins = inputs();
    let t = Instant::now();
    for i in &ins {
        black_box(hot_path(i, &ctx));
    }
    let first_pass_us = t.elapsed().as_secs_f64() * 1e6 / ins.len() as f64;

    // Pre-computed intermediate values so each step can be measured alone.
    let valid: Vec<_> = ins.iter().map(|i| validate_submit(&i.req, &ctx.cfg).expect("valid")).collect();
    let routed: Vec<(ProviderKind, OutboundMessage)> = valid
        .iter()
        .map(|v| {
            let id = MessageId::new();
            let d = decide(&ctx, id, &v.category, &v.to, v.kind);
            let c = d.chosen().expect("eligible").clone();
            let kind = c.kind.expect("kind");
            let out = OutboundMessage {
                id,
                kind: v.kind,
                to: v.to.clone(),
                from: c.sender.expect("sender"),
                body: v.body.clone(),
                media_urls: Vec::new(),
                status_callback_url: format!("{WEBHOOK_BASE}/webhooks/{kind}/bench-tenant/{}?m={id}", c.provider_id),
                validity_secs: Some(86_400),
            };
            (kind, out)
        })
        .collect();
    let share_twilio = routed.iter().filter(|(k, _)| *k == ProviderKind::Twilio).count() as f64 / routed.len() as f64;
    let twilio_out: Vec<OutboundMessage> = routed.iter().map(|(_, o)| o.clone()).collect();
    let n = ins.len();

    let mut total = Vec::new();
    let mut s_json = Vec::new();
    let mut s_cat = Vec::new();
    let mut s_phone = Vec::new();
    let mut s_seg = Vec::new();
    let mut s_validate = Vec::new();
    let mut s_id = Vec::new();
    let mut s_route = Vec::new();
    let mut s_sandbox = Vec::new();
    let mut s_twilio = Vec::new();
    let mut s_creds = Vec::new();
    let secs = opts.secs;
    for _ in 0..opts.runs {
        total.push(measure(secs, n, |i| hot_path(&ins[i], &ctx)));
        s_json.push(measure(secs, n, |i| serde_json::from_slice::<SubmitRequest>(&ins[i].json).expect("json").to.len()));
        s_cat.push(measure(secs, n, |i| {
            ContentCategory::parse(ins[i].req.category.as_str()).ok().filter(|c| ctx.cfg.is_known_category(c)).is_some()
        }));
        s_phone.push(measure(secs, n, |i| E164::parse(&ins[i].req.to, Some("US")).expect("valid").country_code()));
        s_seg.push(measure(secs, n, |i| encoding::analyse(ins[i].req.body.as_deref().unwrap_or("")).segments));
        s_validate.push(measure(secs, n, |i| validate_submit(&ins[i].req, &ctx.cfg).expect("valid").info.segments));
        s_id.push(measure(secs, n, |_| MessageId::new()));
        s_route.push(measure(secs, n, |i| {
            let v = &valid[i];
            decide(&ctx, routed[i].1.id, &v.category, &v.to, v.kind).chosen.unwrap_or(9)
        }));
        s_sandbox.push(measure(secs, n, |i| adapter(ProviderKind::Sandbox).build_send(&ctx.sandbox, &routed[i].1).expect("sandbox").body.len()));
        s_twilio.push(measure(secs, n, |i| adapter(ProviderKind::Twilio).build_send(&ctx.twilio, &twilio_out[i]).expect("twilio").body.len()));
        s_creds.push(measure(secs, n, |i| {
            if i % 2 == 0 {
                Credentials::parse(ProviderKind::Sandbox, SANDBOX_CREDS).is_ok()
            } else {
                Credentials::parse(ProviderKind::Twilio, TWILIO_CREDS).is_ok()
            }
        }));
    }
    let total_med = stats::median(&total);
    Ok(json!({
        "host": crate::host_info(),
        "method": format!("single thread; 24 inputs cycled; each step in a tight loop for {secs} s, {} runs, median run reported", opts.runs),
        "hot_path": {
            "what": "validate_submit + MessageId::new + tenant::route + callback URL + adapter build_send (routed provider)",
            "messages_per_sec_median": r3(total_med.round()),
            "us_per_message_median": r3(1e6 / total_med),
            "runs": total.iter().map(|r| r3(r.round())).collect::<Vec<_>>(),
            "share_routed_to_twilio": r3(share_twilio),
            "target_messages_per_sec": 100_000,
            "target_met": total_med >= 100_000.0,
        },
        "breakdown": [
            step("serde_json::from_slice::<SubmitRequest> (not in validate_submit; submit does it first)", s_json, ""),
            step("ContentCategory::parse + is_known_category", s_cat, "part of validate_submit"),
            step("E164::parse (mix of national and international input)", s_phone, "part of validate_submit"),
            step("encoding::analyse (GSM-7/UCS-2, segments)", s_seg, "part of validate_submit"),
            step("validate_submit (all of the above but JSON, plus body clone)", s_validate, ""),
            step("MessageId::new (ULID)", s_id, ""),
            step("tenant::route (rule match, weighted order, 6 gates per candidate)", s_route, ""),
            step("SandboxAdapter::build_send", s_sandbox, ""),
            step("TwilioAdapter::build_send", s_twilio, ""),
            step("Credentials::parse (sandbox/twilio alternating)", s_creds, "not in the measured hot path; route parses every provider's credentials per message (gate 3) and send parses them again"),
        ],
        "cold_first_message": {
            "E164::warm_up_ms (metadata decode)": r3(warm_up_ms),
            "first E164::parse after warm_up_ms (regex compile for US)": r3(first_parse_ms),
            "second E164::parse_us": r3(second_parse_us),
            "first pass over the 24 inputs, us per message": r3(first_pass_us),
            "note": "runtime::init does not call E164::warm_up, so a fresh instance pays the metadata decode and regex compilation on its first submit",
        },
    }))
}
