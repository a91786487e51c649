//! Unit tests for `tenant.rs`: rule matching and precedence, provider ordering and
//! weights, each fail-closed gate on its own, failover exclusion, the refusal reason,
//! and field-level validation of a whole configuration.

use super::*;
use crate::domain::{ContentCategory, MessageId, MessageKind, SenderId, TenantId, E164};
use crate::providers::registry::adapter;
use crate::providers::{Capabilities, ProviderKind};
use std::collections::BTreeSet;

// ------------------------------------------------------------------ fixtures

const TWILIO: &str = "twilio-primary";
const VONAGE: &str = "vonage-backup";
const CB: &str = "dispatch/psap-north/callback/cad";
const TELNYX: &str = "telnyx-mms";

const TWILIO_NUMBER: &str = "+447400000001";
const VONAGE_NUMBER: &str = "+447400000002";
const TELNYX_NUMBER: &str = "+12015550100";

fn cat(s: &str) -> ContentCategory {
    ContentCategory::parse(s).unwrap()
}

fn num(s: &str) -> E164 {
    E164::parse(s, None).unwrap()
}

fn sender(s: &str) -> SenderId {
    SenderId::parse(s).unwrap()
}

fn provider(id: &str, kind: ProviderKind) -> TenantProvider {
    TenantProvider { id: id.into(), kind, secret_id: format!("dispatch/psap-north/{}/{id}", kind.as_str()), enabled: true, backup_only: false }
}

fn identity(s: &str, provider: &str) -> SenderIdentity {
    SenderIdentity { sender: sender(s), provider: provider.into(), categories: Vec::new() }
}

fn rule(name: &str, providers: &[&str]) -> RoutingRule {
    RoutingRule {
        name: name.into(),
        matches: RuleMatch::default(),
        providers: providers.iter().map(|p| p.to_string()).collect(),
        weights: Vec::new(),
    }
}

/// Three provider accounts, one long code each, one catch-all rule: Twilio then Vonage SMS.
fn config() -> TenantConfig {
    TenantConfig {
        tenant: TenantId::parse("psap-north").unwrap(),
        display_name: "PSAP North".into(),
        default_region: "GB".into(),
        providers: vec![
            provider(TWILIO, ProviderKind::Twilio),
            provider(VONAGE, ProviderKind::VonageSms),
            provider(TELNYX, ProviderKind::Telnyx),
        ],
        senders: vec![identity(TWILIO_NUMBER, TWILIO), identity(VONAGE_NUMBER, VONAGE), identity(TELNYX_NUMBER, TELNYX)],
        routing: vec![rule("default", &[TWILIO, VONAGE])],
        categories: CategoryRules::default(),
        delivery: DeliveryRules::default(),
        retry: RetryPolicy::default(),
        callback: None,
        retention: Default::default(),
        retry_by_category: Default::default(),
        legacy_legal_hold: false,
        auditors_see_bodies: false,
        help_text: None,
        version: 0,
    }
}

fn with_routing(rules: Vec<RoutingRule>) -> TenantConfig {
    TenantConfig { routing: rules, ..config() }
}

/// A message as routing sees it, owning what `RouteFacts` borrows.
#[derive(Clone)]
struct Msg {
    id: MessageId,
    kind: MessageKind,
    category: ContentCategory,
    to: E164,
    from: Option<SenderId>,
    media: usize,
}

impl Msg {
    fn sms(to: &str) -> Self {
        Self { id: MessageId::new(), kind: MessageKind::Sms, category: ContentCategory::general(), to: num(to), from: None, media: 0 }
    }
    fn mms(to: &str, media: usize) -> Self {
        Self { kind: MessageKind::Mms, media, ..Self::sms(to) }
    }
    fn category(mut self, c: &str) -> Self {
        self.category = cat(c);
        self
    }
    fn from(mut self, s: &str) -> Self {
        self.from = Some(sender(s));
        self
    }
    fn id(mut self, id: MessageId) -> Self {
        self.id = id;
        self
    }
    fn facts(&self) -> RouteFacts<'_> {
        RouteFacts {
            id: self.id,
            kind: self.kind,
            category: &self.category,
            to: &self.to,
            from: self.from.as_ref(),
            media_count: self.media,
            media: &[],
        }
    }
}

/// Everything outside the config that routing consults; all gates open by default.
struct World {
    platform: BTreeSet<ProviderKind>,
    bad_credentials: BTreeSet<String>,
    capabilities: fn(ProviderKind) -> Capabilities,
    unhealthy: BTreeSet<String>,
    exclude: Vec<String>,
}

fn real_capabilities(k: ProviderKind) -> Capabilities {
    adapter(k).capabilities()
}

impl World {
    fn open() -> Self {
        Self {
            platform: ProviderKind::ALL.into_iter().collect(),
            bad_credentials: BTreeSet::new(),
            capabilities: real_capabilities,
            unhealthy: BTreeSet::new(),
            exclude: Vec::new(),
        }
    }
    fn without_platform(mut self, k: ProviderKind) -> Self {
        self.platform.remove(&k);
        self
    }
    fn bad_credentials(mut self, id: &str) -> Self {
        self.bad_credentials.insert(id.into());
        self
    }
    fn unhealthy(mut self, id: &str) -> Self {
        self.unhealthy.insert(id.into());
        self
    }
    fn exclude(mut self, id: &str) -> Self {
        self.exclude.push(id.into());
        self
    }
    fn route(&self, cfg: &TenantConfig, m: &Msg) -> RouteDecision {
        let bad = &self.bad_credentials;
        let credentials_ok = |p: &TenantProvider| {
            if bad.contains(&p.id) {
                Err(format!("secret {} is missing auth_token", p.secret_id))
            } else {
                Ok(())
            }
        };
        let capabilities = |k: ProviderKind| (self.capabilities)(k);
        let env = RouteEnv {
            platform_enabled: &self.platform,
            credentials_ok: &credentials_ok,
            capabilities: &capabilities,
            unhealthy: &self.unhealthy,
            exclude: &self.exclude,
        };
        route(cfg, &m.facts(), &env)
    }
}

fn chosen_id(d: &RouteDecision) -> Option<&str> {
    d.chosen().map(|c| c.provider_id.as_str())
}

fn candidate<'a>(d: &'a RouteDecision, id: &str) -> &'a Candidate {
    d.candidates.iter().find(|c| c.provider_id == id).unwrap_or_else(|| panic!("{id} is not a candidate: {d:?}"))
}

/// The gate a candidate failed (the first verdict that did not pass), if any.
fn failed_gate(c: &Candidate) -> Option<(Gate, &str)> {
    c.verdicts.iter().find(|v| !v.passed).map(|v| (v.gate, v.detail.as_str()))
}

fn order(d: &RouteDecision) -> Vec<&str> {
    d.candidates.iter().map(|c| c.provider_id.as_str()).collect()
}

/// A fixed, reproducible set of message ids (splitmix64 over a constant seed), so the
/// weight statistics below never change from run to run.
fn fixed_ids(n: usize) -> Vec<MessageId> {
    let mut state: u64 = 0x0D15_7A7C_4E55_A6E5;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|i| {
            let random = (u128::from(next()) << 16) ^ u128::from(next());
            let ulid = ulid::Ulid::from_parts(1_767_225_600_000 + i as u64 * 37, random);
            ulid.to_string().parse().unwrap()
        })
        .collect()
}

// ------------------------------------------------------------------ rule matching

#[test]
fn empty_match_catches_everything() {
    let cfg = with_routing(vec![rule("all", &[TELNYX])]);
    let w = World::open();
    for m in [
        Msg::sms("+447400123456"),
        Msg::sms("+12015550123").category("emergency_callback"),
        Msg::mms("+12015550123", 1),
        Msg::sms("+80012345678"), // non-geographic: no region at all
    ] {
        assert_eq!(w.route(&cfg, &m).rule.as_deref(), Some("all"), "{}", m.to);
    }
}

#[test]
fn first_matching_rule_wins() {
    let emergency = RoutingRule {
        matches: RuleMatch { categories: vec![cat("emergency_callback")], ..Default::default() },
        ..rule("emergency", &[VONAGE])
    };
    let catch_all = rule("default", &[TWILIO]);
    let w = World::open();

    let cfg = with_routing(vec![emergency.clone(), catch_all.clone()]);
    let d = w.route(&cfg, &Msg::sms("+447400123456").category("emergency_callback"));
    assert_eq!((d.rule.as_deref(), chosen_id(&d)), (Some("emergency"), Some(VONAGE)));
    let d = w.route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!((d.rule.as_deref(), chosen_id(&d)), (Some("default"), Some(TWILIO)));

    // Precedence is list order, not specificity: a catch-all listed first shadows the rest.
    let cfg = with_routing(vec![catch_all, emergency]);
    let d = w.route(&cfg, &Msg::sms("+447400123456").category("emergency_callback"));
    assert_eq!((d.rule.as_deref(), chosen_id(&d)), (Some("default"), Some(TWILIO)));
}

#[test]
fn a_matching_rule_is_final_even_when_none_of_its_providers_is_eligible() {
    // Routing never falls through to a later rule: the first match decides, fail closed.
    let first = RoutingRule {
        matches: RuleMatch { countries: vec!["GB".into()], ..Default::default() },
        ..rule("gb", &[TWILIO])
    };
    let cfg = with_routing(vec![first, rule("default", &[VONAGE])]);
    let d = World::open().unhealthy(TWILIO).route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!(d.rule.as_deref(), Some("gb"));
    assert_eq!(order(&d), [TWILIO]);
    assert_eq!(d.chosen, None);
}

#[test]
fn category_matcher_is_any_of() {
    let r = RoutingRule {
        matches: RuleMatch { categories: vec![cat("resident_update"), cat("evidence_notification")], ..Default::default() },
        ..rule("updates", &[TWILIO])
    };
    let cfg = with_routing(vec![r]);
    let w = World::open();
    assert!(w.route(&cfg, &Msg::sms("+447400123456").category("resident_update")).rule.is_some());
    assert!(w.route(&cfg, &Msg::sms("+447400123456").category("evidence_notification")).rule.is_some());
    assert!(w.route(&cfg, &Msg::sms("+447400123456").category("general")).rule.is_none());
    assert!(w.route(&cfg, &Msg::sms("+447400123456").category("emergency_callback")).rule.is_none());
}

#[test]
fn country_matcher_uses_the_destination_region_case_insensitively() {
    let north_america = RoutingRule {
        matches: RuleMatch { countries: vec!["US".into(), "ca".into()], ..Default::default() },
        ..rule("nanp", &[TELNYX])
    };
    let cfg = with_routing(vec![north_america]);
    let w = World::open();
    assert_eq!(w.route(&cfg, &Msg::sms("+12015550123")).rule.as_deref(), Some("nanp"));
    assert_eq!(w.route(&cfg, &Msg::sms("+16045555555")).rule.as_deref(), Some("nanp"));
    assert_eq!(w.route(&cfg, &Msg::sms("+447400123456")).rule, None);
    // A non-geographic number has no region, so no country rule can match it.
    assert_eq!(w.route(&cfg, &Msg::sms("+80012345678")).rule, None);
}

#[test]
fn prefix_matcher_is_any_of_on_the_e164_string() {
    let mobiles = RoutingRule {
        matches: RuleMatch { prefixes: vec!["+4474".into(), "+4475".into()], ..Default::default() },
        ..rule("gb-mobile", &[TWILIO])
    };
    let cfg = with_routing(vec![mobiles, rule("default", &[VONAGE])]);
    let w = World::open();
    assert_eq!(w.route(&cfg, &Msg::sms("+447400123456")).rule.as_deref(), Some("gb-mobile"));
    assert_eq!(w.route(&cfg, &Msg::sms("+447512345678")).rule.as_deref(), Some("gb-mobile"));
    assert_eq!(w.route(&cfg, &Msg::sms("+441134960000")).rule.as_deref(), Some("default"));
    // The prefix is matched on the canonical form, whatever format the number came in.
    let national = Msg { to: E164::parse("07400 123456", Some("GB")).unwrap(), ..Msg::sms("+447400123456") };
    assert_eq!(w.route(&cfg, &national).rule.as_deref(), Some("gb-mobile"));
}

#[test]
fn kind_matcher() {
    let mms = RoutingRule {
        matches: RuleMatch { kinds: vec![MessageKind::Mms], ..Default::default() },
        ..rule("mms", &[TELNYX])
    };
    let cfg = with_routing(vec![mms, rule("default", &[TWILIO])]);
    let w = World::open();
    assert_eq!(w.route(&cfg, &Msg::mms("+12015550123", 1)).rule.as_deref(), Some("mms"));
    assert_eq!(w.route(&cfg, &Msg::sms("+12015550123")).rule.as_deref(), Some("default"));
}

#[test]
fn all_matchers_of_a_rule_must_hold() {
    let narrow = RoutingRule {
        matches: RuleMatch {
            categories: vec![cat("emergency_callback")],
            countries: vec!["GB".into()],
            prefixes: vec!["+4474".into()],
            kinds: vec![MessageKind::Sms],
        },
        ..rule("narrow", &[TWILIO])
    };
    let cfg = with_routing(vec![narrow, rule("default", &[VONAGE])]);
    let w = World::open();
    let hit = Msg::sms("+447400123456").category("emergency_callback");
    assert_eq!(w.route(&cfg, &hit).rule.as_deref(), Some("narrow"));
    let misses = [
        ("category", Msg { category: ContentCategory::general(), ..hit.clone() }),
        ("country", Msg { to: num("+12015550123"), ..hit.clone() }),
        ("prefix", Msg { to: num("+441134960000"), ..hit.clone() }),
        ("kind", Msg { kind: MessageKind::Mms, media: 1, ..hit.clone() }),
    ];
    for (what, m) in misses {
        assert_eq!(w.route(&cfg, &m).rule.as_deref(), Some("default"), "a {what} mismatch must skip the rule");
    }
}

#[test]
fn no_matching_rule_refuses_with_a_reason() {
    let only_us = RoutingRule {
        matches: RuleMatch { countries: vec!["US".into()], ..Default::default() },
        ..rule("us", &[TELNYX])
    };
    let d = World::open().route(&with_routing(vec![only_us]), &Msg::sms("+447400123456"));
    assert_eq!(d, RouteDecision { rule: None, candidates: Vec::new(), chosen: None });
    assert!(d.chosen().is_none());
    assert_eq!(d.refusal_reason(), "no routing rule matches this message");
}

// ------------------------------------------------------------------ ordered providers

#[test]
fn primary_is_chosen_when_every_gate_passes() {
    let d = World::open().route(&config(), &Msg::sms("+447400123456"));
    assert_eq!(d.rule.as_deref(), Some("default"));
    // Every listed provider is evaluated (for the explanation), in listed order.
    assert_eq!(order(&d), [TWILIO, VONAGE]);
    assert!(d.candidates.iter().all(|c| c.eligible));
    assert_eq!(d.chosen, Some(0));
    let c = d.chosen().unwrap();
    assert_eq!(c.kind, Some(ProviderKind::Twilio));
    assert_eq!(c.sender, Some(sender(TWILIO_NUMBER)));
    // The winner passed all six gates, checked in their declared order.
    let gates: Vec<Gate> = c.verdicts.iter().map(|v| v.gate).collect();
    assert_eq!(
        gates,
        [Gate::PlatformOptIn, Gate::TenantOptIn, Gate::Credentials, Gate::SenderIdentity, Gate::Capability, Gate::Health]
    );
    assert!(c.verdicts.iter().all(|v| v.passed));
}

#[test]
fn backup_carries_the_message_when_the_primary_fails_a_gate() {
    let d = World::open().unhealthy(TWILIO).route(&config(), &Msg::sms("+447400123456"));
    assert_eq!(order(&d), [TWILIO, VONAGE]);
    assert_eq!(d.chosen, Some(1));
    let c = d.chosen().unwrap();
    assert_eq!((c.provider_id.as_str(), c.kind), (VONAGE, Some(ProviderKind::VonageSms)));
    assert_eq!(c.sender, Some(sender(VONAGE_NUMBER)), "the sender belongs to the chosen provider");
    assert!(!d.candidates[0].eligible);
}

#[test]
fn three_providers_are_tried_in_listed_order() {
    let cfg = with_routing(vec![rule("default", &[TELNYX, TWILIO, VONAGE])]);
    let m = Msg::sms("+447400123456");
    assert_eq!(chosen_id(&World::open().route(&cfg, &m)), Some(TELNYX));
    assert_eq!(chosen_id(&World::open().unhealthy(TELNYX).route(&cfg, &m)), Some(TWILIO));
    assert_eq!(chosen_id(&World::open().unhealthy(TELNYX).unhealthy(TWILIO).route(&cfg, &m)), Some(VONAGE));
    assert_eq!(World::open().unhealthy(TELNYX).unhealthy(TWILIO).unhealthy(VONAGE).route(&cfg, &m).chosen, None);
}

#[test]
fn exclude_list_skips_providers_that_already_failed() {
    let cfg = config();
    let m = Msg::sms("+447400123456");
    let d = World::open().exclude(TWILIO).route(&cfg, &m);
    assert_eq!(order(&d), [VONAGE], "an excluded provider is not even a candidate");
    assert_eq!((d.chosen, chosen_id(&d)), (Some(0), Some(VONAGE)));

    // Excluding an id the rule does not list changes nothing.
    let d = World::open().exclude("somebody-else").route(&cfg, &m);
    assert_eq!((order(&d), chosen_id(&d)), (vec![TWILIO, VONAGE], Some(TWILIO)));

    // Every provider failed: nothing left to try.
    let d = World::open().exclude(TWILIO).exclude(VONAGE).route(&cfg, &m);
    assert_eq!(d.rule.as_deref(), Some("default"));
    assert!(d.candidates.is_empty());
    assert_eq!(d.chosen, None);
    assert!(d.refusal_reason().starts_with("no eligible provider"), "{}", d.refusal_reason());
}

// ------------------------------------------------------------------ weights

fn weighted(weights: Vec<u32>, providers: &[&str]) -> TenantConfig {
    with_routing(vec![RoutingRule { weights, ..rule("migration", providers) }])
}

fn count_first(cfg: &TenantConfig, ids: &[MessageId], provider: &str) -> usize {
    let w = World::open();
    ids.iter()
        .filter(|id| chosen_id(&w.route(cfg, &Msg::sms("+447400123456").id(**id))) == Some(provider))
        .count()
}

#[test]
fn weights_90_10_over_2000_fixed_ids_land_within_85_to_95_percent() {
    let cfg = weighted(vec![90, 10], &[TWILIO, VONAGE]);
    let ids = fixed_ids(2000);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 2000, "ids are distinct");
    let twilio = count_first(&cfg, &ids, TWILIO);
    let vonage = count_first(&cfg, &ids, VONAGE);
    assert_eq!(twilio + vonage, 2000);
    assert!((1700..=1900).contains(&twilio), "twilio first for {twilio} of 2000");
    // Whichever leads, the other stays in the list as the next one to try.
    let w = World::open();
    for id in &ids[..200] {
        let d = w.route(&cfg, &Msg::sms("+447400123456").id(*id));
        assert_eq!(d.candidates.len(), 2);
        assert_ne!(d.candidates[0].provider_id, d.candidates[1].provider_id);
    }
}

#[test]
fn weights_90_10_hold_for_freshly_minted_ids_too() {
    // Real ids share their timestamp bits; the split must still follow the weights.
    // 1,800 ± 100 is more than 7 standard deviations wide for n = 2,000, p = 0.9.
    let cfg = weighted(vec![90, 10], &[TWILIO, VONAGE]);
    let ids: Vec<MessageId> = (0..2000).map(|_| MessageId::new()).collect();
    let twilio = count_first(&cfg, &ids, TWILIO);
    assert!((1700..=1900).contains(&twilio), "twilio first for {twilio} of 2000");
}

#[test]
fn weighted_choice_is_deterministic_per_message_id() {
    let cfg = weighted(vec![50, 50], &[TWILIO, VONAGE]);
    let w = World::open();
    let mut seen = BTreeSet::new();
    for id in fixed_ids(300) {
        let m = Msg::sms("+447400123456").id(id);
        let first = w.route(&cfg, &m);
        for _ in 0..5 {
            let again = w.route(&cfg.clone(), &m.clone());
            assert_eq!(order(&again), order(&first), "{id}");
            assert_eq!(chosen_id(&again), chosen_id(&first), "{id}");
        }
        // The same id parsed back from its string form routes the same way.
        let reparsed: MessageId = id.to_string().parse().unwrap();
        assert_eq!(order(&w.route(&cfg, &m.clone().id(reparsed))), order(&first));
        seen.insert(chosen_id(&first).unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "both providers get traffic at 50/50");
}

#[test]
fn failover_keeps_the_weighted_order_and_drops_the_failed_provider() {
    let cfg = weighted(vec![50, 50], &[TWILIO, VONAGE]);
    for id in fixed_ids(50) {
        let m = Msg::sms("+447400123456").id(id);
        let d = World::open().route(&cfg, &m);
        let first = chosen_id(&d).unwrap().to_string();
        let second = d.candidates[1].provider_id.clone();
        let d = World::open().exclude(&first).route(&cfg, &m);
        assert_eq!(order(&d), [second.as_str()]);
        assert_eq!(chosen_id(&d), Some(second.as_str()));
    }
}

#[test]
fn weights_cover_only_the_leading_providers() {
    // Two weights for three providers: the third is never first, always the last resort.
    let cfg = weighted(vec![50, 50], &[TWILIO, VONAGE, TELNYX]);
    let ids = fixed_ids(1000);
    let w = World::open();
    let mut twilio_first = 0;
    for id in &ids {
        let d = w.route(&cfg, &Msg::sms("+447400123456").id(*id));
        assert_eq!(d.candidates[2].provider_id, TELNYX);
        if d.candidates[0].provider_id == TWILIO {
            twilio_first += 1;
            assert_eq!(d.candidates[1].provider_id, VONAGE);
        } else {
            assert_eq!(order(&d), [VONAGE, TWILIO, TELNYX]);
        }
    }
    assert!((400..=600).contains(&twilio_first), "twilio first for {twilio_first} of 1000");
}

#[test]
fn a_zero_weight_provider_is_never_first() {
    let ids = fixed_ids(500);
    let cfg = weighted(vec![0, 100], &[TWILIO, VONAGE]);
    assert_eq!(count_first(&cfg, &ids, VONAGE), 500);
    let cfg = weighted(vec![100, 0], &[TWILIO, VONAGE]);
    assert_eq!(count_first(&cfg, &ids, TWILIO), 500);
    // A single weight pins the first provider.
    let cfg = weighted(vec![7], &[TWILIO, VONAGE]);
    assert_eq!(count_first(&cfg, &ids, TWILIO), 500);
}

#[test]
fn without_weights_the_listed_order_holds_for_every_id() {
    let cfg = config();
    assert_eq!(count_first(&cfg, &fixed_ids(500), TWILIO), 500);
}

#[test]
fn weighted_pick_still_goes_through_the_gates() {
    let cfg = weighted(vec![0, 100], &[TWILIO, VONAGE]);
    let d = World::open().unhealthy(VONAGE).route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!(order(&d), [VONAGE, TWILIO]);
    assert_eq!(chosen_id(&d), Some(TWILIO));
}

// ------------------------------------------------------------------ gates, one at a time

/// Routes `m` through a rule listing only `pid` and returns its single candidate,
/// asserting that nothing was chosen.
fn refused_alone(cfg: &TenantConfig, w: &World, m: &Msg, pid: &str) -> Candidate {
    let cfg = TenantConfig { routing: vec![rule("only", &[pid])], ..cfg.clone() };
    let d = w.route(&cfg, m);
    assert_eq!(d.chosen, None, "{d:?}");
    assert_eq!(d.candidates.len(), 1);
    let c = d.candidates[0].clone();
    assert!(!c.eligible);
    assert_eq!(c.sender, None, "a refused candidate carries no sender");
    let reason = d.refusal_reason();
    let (gate, detail) = failed_gate(&c).expect("a refused candidate names its gate");
    assert!(reason.contains(pid), "{reason}");
    assert!(reason.contains(&format!("{gate:?} gate failed")), "{reason}");
    assert!(reason.contains(detail), "{reason}");
    c
}

#[test]
fn platform_opt_in_gate() {
    let w = World::open().without_platform(ProviderKind::Twilio);
    let c = refused_alone(&config(), &w, &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(c.verdicts.len(), 1, "checking stops at the first closed gate");
    let (gate, detail) = failed_gate(&c).unwrap();
    assert_eq!(gate, Gate::PlatformOptIn);
    assert!(detail.contains("twilio") && detail.contains("ENABLED_PROVIDERS"), "{detail}");
    assert_eq!(c.kind, Some(ProviderKind::Twilio));
    // With the backup still enabled, it carries the message.
    assert_eq!(chosen_id(&w.route(&config(), &Msg::sms("+447400123456"))), Some(VONAGE));
}

#[test]
fn tenant_opt_in_gate_disabled_provider() {
    let mut cfg = config();
    cfg.providers[0].enabled = false;
    let c = refused_alone(&cfg, &World::open(), &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(failed_gate(&c), Some((Gate::TenantOptIn, "disabled by tenant")));
    assert_eq!(c.verdicts.len(), 2);
    assert!(c.verdicts[0].passed && c.verdicts[0].gate == Gate::PlatformOptIn);
    assert_eq!(chosen_id(&World::open().route(&cfg, &Msg::sms("+447400123456"))), Some(VONAGE));
}

#[test]
fn tenant_opt_in_gate_backup_only_provider_is_never_the_first_choice() {
    let mut cfg = config();
    cfg.providers[1].backup_only = true; // vonage-backup
    let m = Msg::sms("+447400123456");
    let c = refused_alone(&cfg, &World::open(), &m, VONAGE);
    let (gate, detail) = failed_gate(&c).unwrap();
    assert_eq!(gate, Gate::TenantOptIn);
    assert!(detail.contains("backup only"), "{detail}");

    // Listed second it is a valid backup: unused while the primary passes ...
    let d = World::open().route(&cfg, &m);
    assert_eq!(chosen_id(&d), Some(TWILIO));
    // ... and carries the message when the primary is unhealthy or has failed it.
    assert_eq!(chosen_id(&World::open().unhealthy(TWILIO).route(&cfg, &m)), Some(VONAGE));
    assert_eq!(chosen_id(&World::open().exclude(TWILIO).route(&cfg, &m)), Some(VONAGE));

    // Listed first, it is passed over in favour of the next provider.
    let cfg = TenantConfig { routing: vec![rule("default", &[VONAGE, TWILIO])], ..cfg };
    let d = World::open().route(&cfg, &m);
    assert_eq!(chosen_id(&d), Some(TWILIO));
    assert!(!candidate(&d, VONAGE).eligible);
}

#[test]
fn backup_only_provider_picked_first_by_weight_defers_to_the_other() {
    let mut cfg = weighted(vec![0, 100], &[TWILIO, VONAGE]);
    cfg.providers[1].backup_only = true;
    let d = World::open().route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!(order(&d), [VONAGE, TWILIO]);
    assert_eq!(failed_gate(candidate(&d, VONAGE)).map(|g| g.0), Some(Gate::TenantOptIn));
    assert_eq!(chosen_id(&d), Some(TWILIO));
}

#[test]
fn credentials_gate() {
    let w = World::open().bad_credentials(TWILIO);
    let c = refused_alone(&config(), &w, &Msg::sms("+447400123456"), TWILIO);
    let (gate, detail) = failed_gate(&c).unwrap();
    assert_eq!(gate, Gate::Credentials);
    assert_eq!(detail, "secret dispatch/psap-north/twilio/twilio-primary is missing auth_token");
    assert_eq!(chosen_id(&w.route(&config(), &Msg::sms("+447400123456"))), Some(VONAGE));
}

#[test]
fn sender_identity_gate_no_sender_registered_with_the_provider() {
    let mut cfg = config();
    cfg.senders.retain(|s| s.provider != TWILIO);
    let c = refused_alone(&cfg, &World::open(), &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(
        failed_gate(&c),
        Some((Gate::SenderIdentity, "tenant has no sender identity registered with twilio-primary"))
    );
    assert_eq!(chosen_id(&World::open().route(&cfg, &Msg::sms("+447400123456"))), Some(VONAGE));
}

#[test]
fn sender_identity_gate_requested_sender_must_be_owned_with_that_provider() {
    let cfg = config();
    let w = World::open();
    // Owned by the tenant, but registered with the backup only: the backup carries it.
    let m = Msg::sms("+447400123456").from(VONAGE_NUMBER);
    let d = w.route(&cfg, &m);
    assert_eq!(
        failed_gate(candidate(&d, TWILIO)),
        Some((Gate::SenderIdentity, "sender +447400000002 is not registered to this tenant with twilio-primary"))
    );
    let c = d.chosen().unwrap();
    assert_eq!((c.provider_id.as_str(), c.sender.clone()), (VONAGE, Some(sender(VONAGE_NUMBER))));

    // Not owned at all: every provider refuses; a foreign number is never used.
    let m = Msg::sms("+447400123456").from("+447400999999");
    let c = refused_alone(&cfg, &w, &m, TWILIO);
    assert_eq!(failed_gate(&c).unwrap().0, Gate::SenderIdentity);
    assert_eq!(w.route(&cfg, &m).chosen, None);

    // A requested sender that is owned with the provider is used as asked.
    let d = w.route(&cfg, &Msg::sms("+447400123456").from(TWILIO_NUMBER));
    assert_eq!(d.chosen().unwrap().sender, Some(sender(TWILIO_NUMBER)));
}

#[test]
fn sender_identity_respects_sender_categories() {
    let mut cfg = config();
    cfg.senders = vec![
        SenderIdentity { categories: vec![cat("emergency_callback")], ..identity("+447400000009", TWILIO) },
        identity(TWILIO_NUMBER, TWILIO),
    ];
    cfg.routing = vec![rule("default", &[TWILIO])];
    let w = World::open();
    let d = w.route(&cfg, &Msg::sms("+447400123456").category("emergency_callback"));
    assert_eq!(d.chosen().unwrap().sender, Some(sender("+447400000009")));
    let d = w.route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!(d.chosen().unwrap().sender, Some(sender(TWILIO_NUMBER)), "the emergency line is not used for general traffic");
    // Asking for the emergency line for a general message is refused, not silently swapped.
    let d = w.route(&cfg, &Msg::sms("+447400123456").from("+447400000009"));
    assert_eq!(failed_gate(&d.candidates[0]).unwrap().0, Gate::SenderIdentity);
}

#[test]
fn sms_uses_the_first_fitting_sender_but_mms_needs_a_long_code() {
    let mut cfg = config();
    cfg.senders = vec![identity("CityAlerts", TELNYX), identity("60123", TELNYX), identity(TELNYX_NUMBER, TELNYX)];
    cfg.routing = vec![rule("default", &[TELNYX])];
    let w = World::open();
    let d = w.route(&cfg, &Msg::sms("+12015550123"));
    assert_eq!(d.chosen().unwrap().sender, Some(sender("CityAlerts")));
    let d = w.route(&cfg, &Msg::mms("+12015550123", 1));
    assert_eq!(d.chosen().unwrap().sender, Some(sender(TELNYX_NUMBER)));

    // Without a long code there is no MMS sender at all.
    cfg.senders.pop();
    let c = refused_alone(&cfg, &w, &Msg::mms("+12015550123", 1), TELNYX);
    assert_eq!(failed_gate(&c).unwrap().0, Gate::SenderIdentity);
}

#[test]
fn capability_gate_mms_to_an_sms_only_provider() {
    assert!(!adapter(ProviderKind::VonageSms).capabilities().mms, "precondition: the Vonage SMS API has no MMS");
    let cfg = config();
    let m = Msg::mms("+12015550123", 1);
    let c = refused_alone(&cfg, &World::open(), &m, VONAGE);
    assert_eq!(failed_gate(&c), Some((Gate::Capability, "vonage-sms does not carry MMS")));
    // Every earlier gate passed.
    assert!(c.verdicts[..c.verdicts.len() - 1].iter().all(|v| v.passed));

    // A rule listing an MMS-capable provider after it routes the MMS there.
    let cfg = with_routing(vec![rule("default", &[VONAGE, TELNYX])]);
    let d = World::open().route(&cfg, &m);
    assert_eq!(chosen_id(&d), Some(TELNYX));
    // The same rule still sends SMS through Vonage SMS.
    assert_eq!(chosen_id(&World::open().route(&cfg, &Msg::sms("+12015550123"))), Some(VONAGE));
}

#[test]
fn capability_gate_too_many_media_items() {
    let mut cfg = config();
    cfg.providers.push(provider("sinch-us", ProviderKind::Sinch));
    cfg.senders.push(identity("+12015550199", "sinch-us"));
    let max = adapter(ProviderKind::Sinch).capabilities().max_media;
    assert_eq!(max, 1, "precondition: Sinch takes one media item");
    let w = World::open();
    let c = refused_alone(&cfg, &w, &Msg::mms("+12015550123", 2), "sinch-us");
    assert_eq!(failed_gate(&c), Some((Gate::Capability, "sinch takes at most 1 media items")));
    let cfg = TenantConfig { routing: vec![rule("only", &["sinch-us"])], ..cfg };
    assert!(w.route(&cfg, &Msg::mms("+12015550123", 1)).chosen.is_some());
}

fn no_alphanumeric(k: ProviderKind) -> Capabilities {
    Capabilities { alphanumeric_sender: false, ..adapter(k).capabilities() }
}

fn no_sms(k: ProviderKind) -> Capabilities {
    Capabilities { sms: false, ..adapter(k).capabilities() }
}

#[test]
fn capability_gate_alphanumeric_sender_on_a_provider_without_support() {
    // Every shipped adapter accepts alphanumeric senders, so the capability is stubbed.
    let mut cfg = config();
    cfg.senders.insert(0, identity("CityAlerts", TWILIO));
    let w = World { capabilities: no_alphanumeric, ..World::open() };
    let c = refused_alone(&cfg, &w, &Msg::sms("+447400123456").from("CityAlerts"), TWILIO);
    assert_eq!(failed_gate(&c), Some((Gate::Capability, "twilio does not support alphanumeric senders")));
    // The alphanumeric id is also the default pick for SMS, so it is refused there too ...
    let c = refused_alone(&cfg, &w, &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(failed_gate(&c).unwrap().0, Gate::Capability);
    // ... while the provider's long code still passes.
    let cfg = TenantConfig { routing: vec![rule("only", &[TWILIO])], ..cfg };
    let d = w.route(&cfg, &Msg::sms("+447400123456").from(TWILIO_NUMBER));
    assert_eq!(d.chosen().unwrap().sender, Some(sender(TWILIO_NUMBER)));
    // With real capabilities the alphanumeric sender is fine.
    assert!(World::open().route(&cfg, &Msg::sms("+447400123456").from("CityAlerts")).chosen.is_some());
}

#[test]
fn capability_gate_sms_on_a_provider_without_sms() {
    let w = World { capabilities: no_sms, ..World::open() };
    let c = refused_alone(&config(), &w, &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(failed_gate(&c), Some((Gate::Capability, "twilio does not carry SMS")));
}

#[test]
fn health_gate() {
    let w = World::open().unhealthy(TWILIO);
    let c = refused_alone(&config(), &w, &Msg::sms("+447400123456"), TWILIO);
    assert_eq!(failed_gate(&c), Some((Gate::Health, "circuit open: recent failures")));
    assert_eq!(c.verdicts.len(), 6, "health is the last gate");
    assert!(c.verdicts[..5].iter().all(|v| v.passed));
}

#[test]
fn gates_are_checked_in_order_and_stop_at_the_first_refusal() {
    // Start with every gate closed for Twilio, then open them one by one: the reported
    // gate must advance in the declared order.
    let mut cfg = config();
    cfg.providers[0].enabled = false;
    cfg.senders.retain(|s| s.provider != TWILIO);
    let m = Msg::sms("+447400123456");
    let mut w = World { capabilities: no_sms, ..World::open() }
        .without_platform(ProviderKind::Twilio)
        .bad_credentials(TWILIO)
        .unhealthy(TWILIO);
    let expect = |cfg: &TenantConfig, w: &World, gate: Option<Gate>| {
        let c = candidate(&w.route(cfg, &m), TWILIO).clone();
        assert_eq!(failed_gate(&c).map(|g| g.0), gate, "{c:?}");
        assert_eq!(c.eligible, gate.is_none());
        // Nothing is evaluated after the first refusal.
        if gate.is_some() {
            assert!(!c.verdicts.last().unwrap().passed);
        }
    };
    expect(&cfg, &w, Some(Gate::PlatformOptIn));
    w.platform.insert(ProviderKind::Twilio);
    expect(&cfg, &w, Some(Gate::TenantOptIn));
    cfg.providers[0].enabled = true;
    expect(&cfg, &w, Some(Gate::Credentials));
    w.bad_credentials.clear();
    expect(&cfg, &w, Some(Gate::SenderIdentity));
    cfg.senders.push(identity(TWILIO_NUMBER, TWILIO));
    expect(&cfg, &w, Some(Gate::Capability));
    w.capabilities = real_capabilities;
    expect(&cfg, &w, Some(Gate::Health));
    w.unhealthy.clear();
    expect(&cfg, &w, None);
}

#[test]
fn a_rule_naming_an_unknown_provider_fails_closed() {
    // validate() refuses such a config; routing must still never pick it.
    let cfg = with_routing(vec![rule("default", &["ghost", TWILIO])]);
    let d = World::open().route(&cfg, &Msg::sms("+447400123456"));
    let ghost = candidate(&d, "ghost");
    assert_eq!(ghost.kind, None);
    assert_eq!(failed_gate(ghost), Some((Gate::TenantOptIn, "not a provider of this tenant")));
    assert_eq!(chosen_id(&d), Some(TWILIO));
}

// ------------------------------------------------------------------ refusal reason

#[test]
fn refusal_reason_names_each_provider_and_its_gate() {
    let cfg = with_routing(vec![rule("default", &[TWILIO, VONAGE, TELNYX])]);
    let w = World::open().without_platform(ProviderKind::Twilio).bad_credentials(VONAGE).unhealthy(TELNYX);
    let d = w.route(&cfg, &Msg::sms("+447400123456"));
    assert_eq!(d.chosen, None);
    assert_eq!(
        d.refusal_reason(),
        "no eligible provider: \
         twilio-primary: PlatformOptIn gate failed (twilio is not enabled in this deployment's ENABLED_PROVIDERS); \
         vonage-backup: Credentials gate failed (secret dispatch/psap-north/vonage-sms/vonage-backup is missing auth_token); \
         telnyx-mms: Health gate failed (circuit open: recent failures)"
    );
}

#[test]
fn decision_serializes_for_the_explanation() {
    let d = World::open().unhealthy(TWILIO).route(&config(), &Msg::sms("+447400123456"));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["rule"], "default");
    assert_eq!(v["chosen"], 1);
    assert_eq!(v["candidates"][0]["provider_id"], TWILIO);
    assert_eq!(v["candidates"][0]["kind"], "twilio");
    assert_eq!(v["candidates"][0]["verdicts"][5]["gate"], "health");
    assert_eq!(v["candidates"][0]["verdicts"][5]["passed"], false);
    assert_eq!(v["candidates"][1]["sender"], VONAGE_NUMBER);
}

// ------------------------------------------------------------------ validation

fn fields(errs: &[FieldError]) -> Vec<&str> {
    errs.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn a_good_config_validates() {
    assert_eq!(config().validate(), Ok(()));
    let mut cfg = config();
    cfg.routing = vec![
        RoutingRule {
            matches: RuleMatch {
                categories: vec![cat("emergency_callback"), cat("road_closures")],
                countries: vec!["GB".into(), "ie".into()],
                prefixes: vec!["+44".into()],
                kinds: vec![MessageKind::Sms],
            },
            weights: vec![90, 10],
            ..rule("gb", &[TWILIO, VONAGE])
        },
        rule("default", &[TELNYX]),
    ];
    cfg.categories.extra = vec![cat("road_closures")];
    cfg.delivery.allowed_countries = vec!["GB".into(), "US".into()];
    cfg.callback = Some(TenantCallback { url: "https://psap.example/dispatch/callbacks".into(), secret_id: "dispatch/psap-north/callback/cad".into() });
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn the_shipped_example_tenant_is_valid() {
    let cfg: TenantConfig = serde_json::from_str(include_str!("../../examples/tenants/demo-psap.json")).unwrap();
    assert_eq!(cfg.validate(), Ok(()));
    assert!(cfg.providers[0].enabled && !cfg.providers[0].backup_only, "opt-in defaults");
}

#[test]
fn a_bad_config_is_refused_whole_with_every_error_field_by_field() {
    let mut cfg = config();
    cfg.default_region = "XX".into();
    cfg.providers.push(provider(VONAGE, ProviderKind::Plivo)); // providers[3]: duplicate id
    cfg.routing = vec![
        RoutingRule { weights: vec![50, 30, 20], ..rule("default", &[TWILIO, "ghost"]) },
        RoutingRule {
            matches: RuleMatch {
                categories: vec![cat("general"), cat("road_closures")],
                countries: vec!["GB".into(), "GBR".into()],
                prefixes: vec!["+44".into(), "4477".into()],
                kinds: Vec::new(),
            },
            ..rule("gb", &[TWILIO])
        },
    ];
    cfg.callback = Some(TenantCallback { url: "http://psap.example/hook".into(), secret_id: "dispatch/psap-north/callback/cad".into() });
    let errs = cfg.validate().unwrap_err();
    assert_eq!(
        fields(&errs),
        [
            "default_region",
            "providers[3].id",
            "routing[0].providers[1]",
            "routing[0].weights",
            "routing[1].match.countries[1]",
            "routing[1].match.prefixes[1]",
            "routing[1].match.categories[1]",
            "callback.url",
        ]
    );
    let msg = |f: &str| errs.iter().find(|e| e.field == f).unwrap().message.as_str();
    assert_eq!(msg("providers[3].id"), "duplicate provider id");
    assert_eq!(msg("routing[0].providers[1]"), "names no provider of this tenant");
    assert_eq!(msg("callback.url"), "must be a public https URL (scheme http not allowed)");
    assert!(msg("routing[1].match.categories[1]").contains("categories.extra"));
    // Every message is non-empty and speaks to the field.
    assert!(errs.iter().all(|e| !e.message.is_empty()));
    // Errors serialize as field/message pairs for the API's 422 body.
    assert_eq!(
        serde_json::to_value(&errs[0]).unwrap(),
        serde_json::json!({"field": "default_region", "message": msg("default_region")})
    );
}

#[test]
fn each_problem_is_reported_on_its_own_field() {
    type Break = fn(&mut TenantConfig);
    let cases: &[(&str, Break)] = &[
        ("default_region", |c| c.default_region = "GBR".into()),
        ("providers[2].id", |c| {
            c.providers[2].id = "telnyx mms".into();
            c.senders[2].provider = "telnyx mms".into();
        }),
        ("providers[2].id", |c| {
            c.providers[2].id = String::new();
            c.senders[2].provider = String::new();
        }),
        ("providers[3].id", |c| c.providers.push(provider(TWILIO, ProviderKind::Sinch))),
        ("providers[1].secret_id", |c| c.providers[1].secret_id = "  ".into()),
        ("senders[1].provider", |c| c.senders[1].provider = "ghost".into()),
        ("routing", |c| c.routing.clear()),
        ("routing[0].providers", |c| c.routing[0].providers.clear()),
        ("routing[0].providers[0]", |c| c.routing[0].providers[0] = "ghost".into()),
        ("routing[0].weights", |c| c.routing[0].weights = vec![1, 1, 1]),
        ("routing[0].weights", |c| c.routing[0].weights = vec![0, 0]),
        ("routing[0].match.countries[0]", |c| c.routing[0].matches.countries = vec!["XX".into()]),
        ("routing[0].match.countries[0]", |c| c.routing[0].matches.countries = vec!["".into()]),
        ("routing[0].match.prefixes[0]", |c| c.routing[0].matches.prefixes = vec!["4477".into()]),
        ("routing[0].match.prefixes[0]", |c| c.routing[0].matches.prefixes = vec!["+".into()]),
        ("routing[0].match.prefixes[0]", |c| c.routing[0].matches.prefixes = vec!["+44 77".into()]),
        ("routing[0].match.prefixes[0]", |c| c.routing[0].matches.prefixes = vec!["+44a".into()]),
        ("routing[0].match.categories[0]", |c| c.routing[0].matches.categories = vec![cat("road_closures")]),
        ("delivery.allowed_countries[1]", |c| c.delivery.allowed_countries = vec!["GB".into(), "UK".into()]),
        ("delivery.max_segments", |c| c.delivery.max_segments = 0),
        ("retention.record_days", |c| c.retention.record_days = 0),
        ("retention.record_days", |c| c.retention.record_days = MIN_RECORD_DAYS - 1),
        ("retry", |c| c.retry.max_attempts = 0),
        ("retry", |c| c.retry.attempts_per_provider = 0),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "http://psap.example/cb".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "ftp://psap.example/cb".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "not a url".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "http://10.0.0.1/cb".into(), secret_id: CB.into() })),
        // Outside the local runner nothing inward is a callback target (the Lambda
        // Runtime API listens on 127.0.0.1:9001; instance metadata on 169.254.169.254).
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "http://localhost:8080/cb".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "https://localhost/cb".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "https://[::1]/cb".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "https://169.254.169.254/latest/meta-data".into(), secret_id: CB.into() })),
        ("callback.url", |c| c.callback = Some(TenantCallback { url: "https://user:pw@psap.example/cb".into(), secret_id: CB.into() })),
        // Secrets only under the tenant's own prefix, per provider kind.
        ("callback.secret_id", |c| c.callback = Some(TenantCallback { url: "https://psap.example/cb".into(), secret_id: "dispatch/psap-south/callback/cad".into() })),
        ("callback.secret_id", |c| c.callback = Some(TenantCallback { url: "https://psap.example/cb".into(), secret_id: "dispatch/psap-north/twilio/twilio-primary".into() })),
        ("providers[0].secret_id", |c| c.providers[0].secret_id = "dispatch/psap-south/twilio/main".into()),
        ("providers[0].secret_id", |c| c.providers[0].secret_id = "dispatch/psap-north/telnyx/main".into()),
        ("providers[0].secret_id", |c| c.providers[0].secret_id = "dispatch/psap-north/callback/cad".into()),
        ("providers[0].secret_id", |c| c.providers[0].secret_id = "arn:aws:secretsmanager:eu-west-2:1:secret:dispatch/psap-south/twilio/x".into()),
    ];
    for (field, break_it) in cases {
        let mut cfg = config();
        break_it(&mut cfg);
        let errs = cfg.validate().expect_err(field);
        assert_eq!(fields(&errs), [*field], "{errs:?}");
    }
}

#[test]
fn the_local_runner_alone_may_call_back_to_loopback() {
    for url in ["http://localhost:8080/cb", "http://127.0.0.1:9000/cb", "http://[::1]:9000/cb"] {
        let mut cfg = config();
        cfg.callback = Some(TenantCallback { url: url.into(), secret_id: CB.into() });
        assert_eq!(cfg.validate_for(CallbackTargets::LoopbackAllowed), Ok(()), "{url}");
        assert!(cfg.validate().is_err(), "{url} in a deployment");
    }
    // Loopback mode does not open private networks or other schemes.
    let mut cfg = config();
    cfg.callback = Some(TenantCallback { url: "http://10.0.0.1/cb".into(), secret_id: CB.into() });
    assert!(cfg.validate_for(CallbackTargets::LoopbackAllowed).is_err());
}

#[test]
fn validation_accepts_the_documented_edge_cases() {
    type Tweak = fn(&mut TenantConfig);
    let cases: &[(&str, Tweak)] = &[
        ("lowercase region", |c| c.default_region = "gb".into()),
        ("weights as long as providers", |c| c.routing[0].weights = vec![90, 10]),
        ("fewer weights than providers", |c| c.routing[0].weights = vec![5]),
        ("one zero weight", |c| c.routing[0].weights = vec![0, 10]),
        ("tenant-defined category", |c| {
            c.categories.extra = vec![cat("road_closures")];
            c.routing[0].matches.categories = vec![cat("road_closures")];
        }),
        ("https callback", |c| c.callback = Some(TenantCallback { url: "https://psap.example/cb".into(), secret_id: CB.into() })),
        ("provider used by no rule", |c| c.routing[0].providers = vec![TWILIO.into()]),
        ("no senders", |c| c.senders.clear()),
    ];
    for (what, tweak) in cases {
        let mut cfg = config();
        tweak(&mut cfg);
        assert_eq!(cfg.validate(), Ok(()), "{what}");
    }
}

#[test]
fn deserialization_is_strict_and_fills_defaults() {
    let json = serde_json::json!({
        "tenant": "psap-north",
        "default_region": "GB",
        "providers": [{"id": "v", "kind": "vonage-sms", "secret_id": "dispatch/psap-north/vonage-sms/v"}],
        "senders": [{"sender": "+447400000002", "provider": "v"}],
        "routing": [{"name": "all", "providers": ["v"]}]
    });
    let cfg: TenantConfig = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(cfg.validate(), Ok(()));
    assert_eq!(cfg.providers[0].kind, ProviderKind::VonageSms);
    assert!(cfg.providers[0].enabled && !cfg.providers[0].backup_only);
    assert_eq!(cfg.routing[0].matches, RuleMatch::default());
    assert_eq!(cfg.delivery, DeliveryRules::default());
    assert_eq!(cfg.retry, RetryPolicy::default());
    assert_eq!(cfg.version, 0);
    // Round trip.
    let back: TenantConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);

    // A typo is an error, not a silently ignored field.
    let mut typo = json.clone();
    typo["routing"][0]["provider"] = serde_json::json!(["v"]);
    assert!(serde_json::from_value::<TenantConfig>(typo).is_err());
    let mut typo = json.clone();
    typo["providers"][0]["backup"] = serde_json::json!(true);
    assert!(serde_json::from_value::<TenantConfig>(typo).is_err());
    // Unknown provider kinds, bad senders and bad category syntax fail at parse time.
    let mut bad = json.clone();
    bad["providers"][0]["kind"] = serde_json::json!("twillio");
    assert!(serde_json::from_value::<TenantConfig>(bad).is_err());
    let mut bad = json.clone();
    bad["senders"][0]["sender"] = serde_json::json!("12");
    assert!(serde_json::from_value::<TenantConfig>(bad).is_err());
    let mut bad = json;
    bad["routing"][0]["match"] = serde_json::json!({"categories": ["Road-Closures"]});
    assert!(serde_json::from_value::<TenantConfig>(bad).is_err());
}

// ------------------------------------------------------------------ small helpers

#[test]
fn category_helpers() {
    let mut cfg = config();
    cfg.categories.extra = vec![cat("road_closures")];
    cfg.categories.life_safety = vec![cat("road_closures")];
    cfg.delivery.validity_secs.insert("emergency_callback".into(), 600);
    assert!(cfg.is_known_category(&cat("general")));
    assert!(cfg.is_known_category(&cat("road_closures")));
    assert!(!cfg.is_known_category(&cat("marketing")));
    assert!(cfg.is_life_safety(&cat("emergency_callback")), "always life-safety");
    assert!(cfg.is_life_safety(&cat("road_closures")));
    assert!(!cfg.is_life_safety(&cat("general")));
    assert_eq!(cfg.validity_secs(&cat("emergency_callback")), 600);
    assert_eq!(cfg.validity_secs(&cat("general")), 24 * 3600);
    assert_eq!(cfg.provider(VONAGE).map(|p| p.kind), Some(ProviderKind::VonageSms));
    assert!(cfg.provider("ghost").is_none());
}

#[test]
fn backoff_grows_exponentially_is_capped_and_never_zero() {
    let p = RetryPolicy::default(); // base 2 s, cap 900 s
    assert_eq!(p.backoff_secs(1, 1.0), 2);
    assert_eq!(p.backoff_secs(2, 1.0), 4);
    assert_eq!(p.backoff_secs(5, 1.0), 32);
    assert_eq!(p.backoff_secs(30, 1.0), 900);
    assert_eq!(p.backoff_secs(30, 0.0), 450, "full jitter keeps at least half the delay");
    assert_eq!(p.backoff_secs(0, 0.0), 1);
    assert_eq!(p.backoff_secs(3, 7.0), p.backoff_secs(3, 1.0), "jitter is clamped");
    let zero = RetryPolicy { base_backoff_secs: 0, max_backoff_secs: 0, ..RetryPolicy::default() };
    assert_eq!(zero.backoff_secs(4, 0.0), 1);
    for n in 1..40 {
        assert!(p.backoff_secs(n, 0.5) <= 900);
        assert!(p.backoff_secs(n + 1, 1.0) >= p.backoff_secs(n, 1.0));
    }
}
