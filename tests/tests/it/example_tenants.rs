//! The example tenants in examples/tenants/ validate and route as documented: a PSAP
//! and a council side by side, each on its own providers, never crossing.

use dispatch_common::domain::{ContentCategory, MessageId, MessageKind, E164};
use dispatch_common::providers::{registry::adapter, ProviderKind};
use dispatch_common::tenant::{route, RouteEnv, RouteFacts, TenantConfig};
use std::collections::BTreeSet;

fn load(name: &str) -> TenantConfig {
    let path = format!("{}/../examples/tenants/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let cfg: TenantConfig = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cfg.validate().unwrap_or_else(|e| panic!("{name}: {e:?}"));
    cfg
}

fn decide(cfg: &TenantConfig, to: &str, category: &str, enabled: &BTreeSet<ProviderKind>, id: MessageId) -> Option<String> {
    let to = E164::parse(to, Some(&cfg.default_region)).unwrap();
    let category = ContentCategory::parse(category).unwrap();
    let facts = RouteFacts { id, kind: MessageKind::Sms, category: &category, to: &to, from: None, media_count: 0, media: &[] };
    let ok = |_: &dispatch_common::tenant::TenantProvider| Ok(());
    let caps = |k| adapter(k).capabilities();
    let none = BTreeSet::new();
    let env = RouteEnv { platform_enabled: enabled, credentials_ok: &ok, capabilities: &caps, unhealthy: &none, exclude: &[] };
    route(cfg, &facts, &env).chosen().map(|c| c.provider_id.clone())
}

#[test]
fn psap_and_council_route_side_by_side_without_crossing() {
    let psap = load("psap-north");
    let council = load("council-riverside");
    let all: BTreeSet<ProviderKind> = ProviderKind::ALL.into_iter().collect();
    let psap_accounts: BTreeSet<&str> = psap.providers.iter().map(|p| p.id.as_str()).collect();
    let council_accounts: BTreeSet<&str> = council.providers.iter().map(|p| p.id.as_str()).collect();
    assert!(psap_accounts.is_disjoint(&council_accounts));

    assert_eq!(decide(&psap, "(201) 555-0123", "emergency_callback", &all, MessageId::new()).as_deref(), Some("telnyx-primary"));
    // The PSAP's backup only carries traffic when the primary is passed over.
    let only_twilio: BTreeSet<ProviderKind> = [ProviderKind::Twilio].into();
    assert_eq!(decide(&psap, "(201) 555-0123", "emergency_callback", &only_twilio, MessageId::new()).as_deref(), Some("twilio-backup"));

    // The council migrates about 10% of resident updates to Sinch, deterministically per id.
    let mut sinch = 0;
    for _ in 0..2000 {
        let id = MessageId::new();
        let first = decide(&council, "07400 123456", "resident_update", &all, id).unwrap();
        assert_eq!(decide(&council, "07400 123456", "resident_update", &all, id).unwrap(), first, "stable per message");
        assert!(council_accounts.contains(first.as_str()));
        sinch += usize::from(first == "sinch-new");
    }
    assert!((120..=280).contains(&sinch), "about 10% of 2000, got {sinch}");
    // Nothing is routed while the platform enables none of the tenant's providers.
    let sandbox_only: BTreeSet<ProviderKind> = [ProviderKind::Sandbox].into();
    assert_eq!(decide(&council, "07400 123456", "resident_update", &sandbox_only, MessageId::new()), None);
}
