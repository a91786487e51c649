//! Tenant configuration (providers, sender identities, routing policy, delivery and
//! retry rules), its validation, and the routing decision with its fail-closed gates.

use crate::domain::{ContentCategory, MessageId, MessageKind, SenderId, TenantId, E164};
use crate::providers::{Capabilities, ProviderKind};
use crate::secrets::SecretScope;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub tenant: TenantId,
    #[serde(default)]
    pub display_name: String,
    /// ISO 3166 alpha-2 region for numbers given in national format.
    pub default_region: String,
    pub providers: Vec<TenantProvider>,
    pub senders: Vec<SenderIdentity>,
    pub routing: Vec<RoutingRule>,
    #[serde(default)]
    pub categories: CategoryRules,
    #[serde(default)]
    pub delivery: DeliveryRules,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Per-category retry policies overriding `retry` (e.g. more attempts, faster
    /// failover for `emergency_callback`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry_by_category: BTreeMap<String, RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<TenantCallback>,
    /// How long bodies and records are kept.
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// Not part of the configuration: the tenant-wide legal hold is its own record
    /// (`PUT /v1/admin/legal-hold`), so a config write can never lift it. Older
    /// stored documents carry `legal_hold: false`, which still parses; a config that
    /// asks for `true` is refused by validation with a pointer to the endpoint.
    #[serde(default, skip_serializing, rename = "legal_hold")]
    pub legacy_legal_hold: bool,
    /// Whether keys with the auditor role may read message bodies (default: no).
    #[serde(default)]
    pub auditors_see_bodies: bool,
    /// Text sent in answer to an inbound HELP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    /// Bumped by every accepted change (store-managed).
    #[serde(default)]
    pub version: u64,
}

/// A provider account the tenant opted into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantProvider {
    /// The tenant's name for this account, e.g. `twilio-primary`.
    pub id: String,
    pub kind: ProviderKind,
    /// Secrets Manager secret id holding this account's credentials JSON.
    pub secret_id: String,
    /// Tenant opt-in switch: a disabled provider never carries a message.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Only used when an earlier provider in a rule failed or is unhealthy.
    #[serde(default)]
    pub backup_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderIdentity {
    pub sender: SenderId,
    /// The tenant provider id this identity is registered with.
    pub provider: String,
    /// Categories this sender is for; empty means any.
    #[serde(default)]
    pub categories: Vec<ContentCategory>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    #[serde(default)]
    pub categories: Vec<ContentCategory>,
    /// ISO 3166 alpha-2 destination countries.
    #[serde(default)]
    pub countries: Vec<String>,
    /// E.164 prefixes such as `+4477`.
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<MessageKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: RuleMatch,
    /// Ordered tenant provider ids: primary first, then backups.
    pub providers: Vec<String>,
    /// Optional weights for the leading providers (gradual migration, e.g. [90, 10]).
    /// The choice is deterministic per message id, so a retry never flips by chance.
    #[serde(default)]
    pub weights: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRules {
    /// Tenant-defined categories beyond the built-in four.
    #[serde(default)]
    pub extra: Vec<ContentCategory>,
    /// Categories treated as life-safety (priority lane, no quiet hours).
    /// `emergency_callback` always is.
    #[serde(default)]
    pub life_safety: Vec<ContentCategory>,
    /// Categories that may still be sent to numbers that opted out, where law allows.
    #[serde(default)]
    pub opt_out_exempt: Vec<ContentCategory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRules {
    /// ISO alpha-2 countries messages may go to; empty means any.
    #[serde(default)]
    pub allowed_countries: Vec<String>,
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
    #[serde(default = "yes")]
    pub mms_allowed: bool,
    /// Validity period per category in seconds (after it the message is `expired`).
    #[serde(default)]
    pub validity_secs: BTreeMap<String, u32>,
    #[serde(default = "default_validity")]
    pub default_validity_secs: u32,
    /// Seconds after `sent` by which a delivery receipt is expected, per category;
    /// when it passes without one the sweep raises an escalation (phone instead).
    #[serde(default)]
    pub delivery_deadline_secs: BTreeMap<String, u32>,
    /// Seconds after `sent` after which a message with no receipt at all becomes
    /// `expired` ("delivery unknown").
    #[serde(default = "default_receipt_window")]
    pub receipt_window_secs: u32,
    /// Local hours in which non-exempt messages wait (life-safety categories never do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Replace look-alike characters (curly quotes, dashes, non-breaking spaces...) so
    /// a text stays GSM-7 (cheaper, more per segment); off unless set.
    #[serde(default)]
    pub smart_encoding: bool,
    /// Per-category override of `smart_encoding`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub smart_encoding_by_category: BTreeMap<String, bool>,
}

impl DeliveryRules {
    /// Whether smart encoding applies to messages of `category`.
    pub fn smart_encoding_for(&self, category: &ContentCategory) -> bool {
        self.smart_encoding_by_category.get(category.as_str()).copied().unwrap_or(self.smart_encoding)
    }
}

/// A daily quiet window in the tenant's time zone, e.g. 21:00–08:00 Europe/London.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`, local time; may be earlier than `start` (the window spans midnight).
    pub end: String,
    /// IANA time zone, e.g. `Europe/London`, `America/New_York`.
    pub time_zone: String,
    /// Categories sent anyway (life-safety categories always are).
    #[serde(default)]
    pub exempt: Vec<ContentCategory>,
}

impl QuietHours {
    fn parse_hm(s: &str) -> Option<chrono::NaiveTime> {
        chrono::NaiveTime::parse_from_str(s, "%H:%M").ok()
    }

    /// If `now` falls in the quiet window, the UTC instant it ends.
    pub fn defer_until(&self, now: crate::time::Instant) -> Option<crate::time::Instant> {
        use chrono::TimeZone;
        let tz: chrono_tz::Tz = self.time_zone.parse().ok()?;
        let (start, end) = (Self::parse_hm(&self.start)?, Self::parse_hm(&self.end)?);
        let local = now.with_timezone(&tz);
        let t = local.time();
        let inside = if start <= end { t >= start && t < end } else { t >= start || t < end };
        if !inside || start == end {
            return None;
        }
        // The end is today if it is still ahead, else tomorrow.
        let mut date = local.date_naive();
        if t >= end {
            date = date.succ_opt()?;
        }
        let end_local = tz.from_local_datetime(&date.and_time(end)).earliest()?;
        Some(end_local.with_timezone(&chrono::Utc))
    }
}

fn default_receipt_window() -> u32 {
    6 * 3600
}

fn default_max_segments() -> u32 {
    10
}
fn default_validity() -> u32 {
    24 * 3600
}

impl Default for DeliveryRules {
    fn default() -> Self {
        Self {
            allowed_countries: Vec::new(),
            max_segments: default_max_segments(),
            mms_allowed: true,
            validity_secs: BTreeMap::new(),
            default_validity_secs: default_validity(),
            delivery_deadline_secs: BTreeMap::new(),
            receipt_window_secs: default_receipt_window(),
            quiet_hours: None,
            smart_encoding: false,
            smart_encoding_by_category: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts on one provider before failing over to the next.
    #[serde(default = "default_per_provider")]
    pub attempts_per_provider: u32,
    /// Attempts in total across providers before the message fails.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_base_backoff")]
    pub base_backoff_secs: u32,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u32,
}

fn default_per_provider() -> u32 {
    2
}
fn default_max_attempts() -> u32 {
    6
}
fn default_base_backoff() -> u32 {
    2
}
fn default_max_backoff() -> u32 {
    900
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_per_provider: default_per_provider(),
            max_attempts: default_max_attempts(),
            base_backoff_secs: default_base_backoff(),
            max_backoff_secs: default_max_backoff(),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for attempt `n` (1-based) that just failed.
    pub fn backoff_secs(&self, n: u32, jitter: f64) -> u32 {
        let exp = self.base_backoff_secs.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff_secs).max(1);
        // Full jitter between half and all of the capped delay keeps retries spread out
        // without ever retrying immediately.
        ((capped as f64) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))).round().max(1.0) as u32
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCallback {
    pub url: String,
    /// Secrets Manager secret id holding the HMAC key(s) for callback signatures.
    pub secret_id: String,
}

/// Retention per tenant and category. Bodies are redacted after `body_days` (the
/// metadata and the body's SHA-256 stay); whole records expire by DynamoDB TTL after
/// `record_days`. A legal hold on a message or the tenant stops both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days after creation at which bodies are redacted, per category.
    #[serde(default)]
    pub body_days: BTreeMap<String, u32>,
    /// For categories not listed; `None` keeps bodies until the record expires.
    #[serde(default = "default_body_days")]
    pub default_body_days: Option<u32>,
    #[serde(default = "default_record_days")]
    pub record_days: u32,
}

fn default_body_days() -> Option<u32> {
    Some(90)
}
/// The shortest record retention a tenant may set.
pub const MIN_RECORD_DAYS: u32 = 7;

fn default_record_days() -> u32 {
    400
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { body_days: BTreeMap::new(), default_body_days: default_body_days(), record_days: default_record_days() }
    }
}

impl RetentionPolicy {
    pub fn body_days(&self, c: &ContentCategory) -> Option<u32> {
        self.body_days.get(c.as_str()).copied().or(self.default_body_days)
    }
}

/// A field-level validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl TenantConfig {
    pub fn is_known_category(&self, c: &ContentCategory) -> bool {
        c.is_built_in() || self.categories.extra.contains(c)
    }

    pub fn is_life_safety(&self, c: &ContentCategory) -> bool {
        c.is_emergency_callback() || self.categories.life_safety.contains(c)
    }

    pub fn provider(&self, id: &str) -> Option<&TenantProvider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The retry policy for a category.
    pub fn retry_for(&self, c: &ContentCategory) -> &RetryPolicy {
        self.retry_by_category.get(c.as_str()).unwrap_or(&self.retry)
    }

    /// Whether quiet hours apply to this category at all.
    pub fn quiet_hours_apply(&self, c: &ContentCategory) -> Option<&QuietHours> {
        let q = self.delivery.quiet_hours.as_ref()?;
        if self.is_life_safety(c) || q.exempt.contains(c) { None } else { Some(q) }
    }

    pub fn validity_secs(&self, c: &ContentCategory) -> u32 {
        self.delivery.validity_secs.get(c.as_str()).copied().unwrap_or(self.delivery.default_validity_secs)
    }

    /// Validates the whole configuration for a deployment; a bad config is refused
    /// whole with every problem listed.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        self.validate_for(CallbackTargets::PublicHttpsOnly)
    }

    /// Validates with the deployment's callback rule (the local runner allows
    /// loopback receivers, see [`crate::config::PlatformConfig::loopback_callbacks`]).
    pub fn validate_for(&self, targets: CallbackTargets) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut err = |field: String, message: &str| errs.push(FieldError { field, message: message.into() });
        if !crate::domain::phone::is_valid_region(&self.default_region) {
            err("default_region".into(), "must be an ISO 3166 alpha-2 region libphonenumber knows, e.g. GB");
        }
        let mut ids = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            if p.id.is_empty() || !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                err(format!("providers[{i}].id"), "use letters, digits, '-' or '_'");
            }
            if !ids.insert(p.id.as_str()) {
                err(format!("providers[{i}].id"), "duplicate provider id");
            }
            if !SecretScope::Provider(p.kind).contains(&self.tenant, &p.secret_id) {
                err(
                    format!("providers[{i}].secret_id"),
                    &format!(
                        "name the Secrets Manager secret with this account's credentials under {}<name> (a tenant's provider secrets live under its own id and the provider kind; nothing else is readable)",
                        SecretScope::Provider(p.kind).prefix(&self.tenant)
                    ),
                );
            }
        }
        for (i, s) in self.senders.iter().enumerate() {
            if !ids.contains(s.provider.as_str()) {
                err(format!("senders[{i}].provider"), "names no provider of this tenant");
            }
        }
        if self.routing.is_empty() {
            err("routing".into(), "at least one rule is needed (a rule with an empty match catches everything)");
        }
        for (i, r) in self.routing.iter().enumerate() {
            if r.providers.is_empty() {
                err(format!("routing[{i}].providers"), "list at least one provider");
            }
            for (j, p) in r.providers.iter().enumerate() {
                if !ids.contains(p.as_str()) {
                    err(format!("routing[{i}].providers[{j}]"), "names no provider of this tenant");
                }
            }
            if !r.weights.is_empty() && (r.weights.len() > r.providers.len() || r.weights.iter().all(|w| *w == 0)) {
                err(format!("routing[{i}].weights"), "give at most one weight per provider, not all zero");
            }
            for (j, c) in r.matches.countries.iter().enumerate() {
                if !crate::domain::phone::is_valid_region(c) {
                    err(format!("routing[{i}].match.countries[{j}]"), "not an ISO 3166 alpha-2 region");
                }
            }
            for (j, p) in r.matches.prefixes.iter().enumerate() {
                if !(p.starts_with('+') && p.len() > 1 && p[1..].chars().all(|c| c.is_ascii_digit())) {
                    err(format!("routing[{i}].match.prefixes[{j}]"), "use an E.164 prefix such as +4477");
                }
            }
            for (j, c) in r.matches.categories.iter().enumerate() {
                if !self.is_known_category(c) {
                    err(format!("routing[{i}].match.categories[{j}]"), "unknown category; add it to categories.extra first");
                }
            }
        }
        for (j, c) in self.delivery.allowed_countries.iter().enumerate() {
            if !crate::domain::phone::is_valid_region(c) {
                err(format!("delivery.allowed_countries[{j}]"), "not an ISO 3166 alpha-2 region");
            }
        }
        if self.delivery.max_segments == 0 {
            err("delivery.max_segments".into(), "must be at least 1");
        }
        for (name, r) in std::iter::once(("retry".to_string(), &self.retry))
            .chain(self.retry_by_category.iter().map(|(c, r)| (format!("retry_by_category.{c}"), r)))
        {
            if r.max_attempts == 0 || r.attempts_per_provider == 0 {
                err(name.clone(), "max_attempts and attempts_per_provider must be at least 1");
            }
            // Each attempt is a route + send invocation chained through SQS; AWS stops a
            // chain after 16 invocations (recursive loop detection), so keep well below.
            if r.max_attempts > 6 {
                err(format!("{name}.max_attempts"), "at most 6 (longer chains trip Lambda's recursive loop detection)");
            }
        }
        if let Some(q) = &self.delivery.quiet_hours {
            if QuietHours::parse_hm(&q.start).is_none() || QuietHours::parse_hm(&q.end).is_none() {
                err("delivery.quiet_hours".into(), "start and end must be HH:MM");
            }
            if q.time_zone.parse::<chrono_tz::Tz>().is_err() {
                err("delivery.quiet_hours.time_zone".into(), "not an IANA time zone such as Europe/London");
            }
        }
        if self.legacy_legal_hold {
            err("legal_hold".into(), "the legal hold is not part of the configuration; set it with PUT /v1/admin/legal-hold (its own audited record)");
        }
        // TTL deletes whole records after record_days: it must outlive any message still
        // in flight (validity, receipt window, escalation) by a wide margin.
        if self.retention.record_days < MIN_RECORD_DAYS {
            err("retention.record_days".into(), &format!("must be at least {MIN_RECORD_DAYS} (records younger than that may still be in flight)"));
        }
        if let Some(cb) = &self.callback {
            // The same rule the callback sender applies before every post.
            if let Err(why) = crate::public_http::callback_target(&cb.url, targets == CallbackTargets::LoopbackAllowed) {
                err("callback.url".into(), &format!("must be a public https URL ({why})"));
            }
            if !SecretScope::Callback.contains(&self.tenant, &cb.secret_id) {
                err(
                    "callback.secret_id".into(),
                    &format!("name the signing secret under {}<name>", SecretScope::Callback.prefix(&self.tenant)),
                );
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// Where a tenant's status callbacks may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackTargets {
    /// Public addresses over https only (every deployment).
    PublicHttpsOnly,
    /// Also plain http to 127.0.0.1 / localhost / [::1] (the local runner).
    LoopbackAllowed,
}

/// The facts about a message that routing looks at.
#[derive(Debug, Clone)]
pub struct RouteFacts<'a> {
    pub id: MessageId,
    pub kind: MessageKind,
    pub category: &'a ContentCategory,
    pub to: &'a E164,
    /// A sender the workflow asked for, if any.
    pub from: Option<&'a SenderId>,
    pub media_count: usize,
    /// (content type, size) of each media item, for the providers' documented limits.
    pub media: &'a [(String, u64)],
}

/// The fail-closed gates, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    PlatformOptIn,
    TenantOptIn,
    Credentials,
    SenderIdentity,
    Capability,
    Health,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateVerdict {
    pub gate: Gate,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub provider_id: String,
    pub kind: Option<ProviderKind>,
    pub sender: Option<SenderId>,
    pub verdicts: Vec<GateVerdict>,
    pub eligible: bool,
}

/// The whole, explainable routing decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDecision {
    pub rule: Option<String>,
    /// Candidates in the order they would be tried.
    pub candidates: Vec<Candidate>,
    pub chosen: Option<usize>,
}

impl RouteDecision {
    pub fn chosen(&self) -> Option<&Candidate> {
        self.chosen.map(|i| &self.candidates[i])
    }

    /// A one-line reason naming each provider and the gate it failed.
    pub fn refusal_reason(&self) -> String {
        if self.rule.is_none() {
            return "no routing rule matches this message".into();
        }
        let parts: Vec<String> = self
            .candidates
            .iter()
            .map(|c| match c.verdicts.iter().find(|v| !v.passed) {
                Some(v) => format!("{}: {:?} gate failed ({})", c.provider_id, v.gate, v.detail),
                None => format!("{}: skipped", c.provider_id),
            })
            .collect();
        format!("no eligible provider: {}", parts.join("; "))
    }
}

/// What routing needs to know about the world beyond the config.
pub struct RouteEnv<'a> {
    pub platform_enabled: &'a BTreeSet<ProviderKind>,
    /// Result of loading and parsing each provider's credentials (gate 3).
    pub credentials_ok: &'a dyn Fn(&TenantProvider) -> Result<(), String>,
    pub capabilities: &'a dyn Fn(ProviderKind) -> Capabilities,
    /// Providers marked unhealthy by the circuit breaker.
    pub unhealthy: &'a BTreeSet<String>,
    /// Providers already tried for this message that failed (failover).
    pub exclude: &'a [String],
}

/// Evaluates the routing policy: the first matching rule wins; its providers are
/// ordered (weighted choice first, deterministic per message id), each is checked
/// against every gate, and the first that passes all of them is chosen.
pub fn route(cfg: &TenantConfig, facts: &RouteFacts<'_>, env: &RouteEnv<'_>) -> RouteDecision {
    let Some(rule) = cfg.routing.iter().find(|r| rule_matches(r, facts)) else {
        return RouteDecision { rule: None, candidates: Vec::new(), chosen: None };
    };
    let order = ordered_providers(rule, facts.id);
    let mut candidates = Vec::new();
    for (pos, pid) in order.iter().enumerate() {
        if env.exclude.iter().any(|e| e == pid) {
            continue;
        }
        candidates.push(evaluate(cfg, pid, pos, facts, env));
    }
    let chosen = candidates.iter().position(|c| c.eligible);
    RouteDecision { rule: Some(rule.name.clone()), candidates, chosen }
}

fn rule_matches(r: &RoutingRule, f: &RouteFacts<'_>) -> bool {
    let m = &r.matches;
    (m.categories.is_empty() || m.categories.contains(f.category))
        && (m.kinds.is_empty() || m.kinds.contains(&f.kind))
        && (m.countries.is_empty()
            || f.to.region().is_some_and(|reg| m.countries.iter().any(|c| c.eq_ignore_ascii_case(&reg))))
        && (m.prefixes.is_empty() || m.prefixes.iter().any(|p| f.to.as_str().starts_with(p.as_str())))
}

/// Weighted choice among the weighted leaders, then the rest in listed order.
fn ordered_providers(rule: &RoutingRule, id: MessageId) -> Vec<String> {
    let mut order: Vec<String> = rule.providers.clone();
    let total: u64 = rule.weights.iter().map(|w| u64::from(*w)).sum();
    if total > 0 {
        let mut pick = id.stable_hash() % total;
        let mut chosen = 0;
        for (i, w) in rule.weights.iter().enumerate() {
            if pick < u64::from(*w) {
                chosen = i;
                break;
            }
            pick -= u64::from(*w);
        }
        let first = order.remove(chosen);
        order.insert(0, first);
    }
    order
}

fn evaluate(cfg: &TenantConfig, pid: &str, pos: usize, f: &RouteFacts<'_>, env: &RouteEnv<'_>) -> Candidate {
    let mut verdicts = Vec::new();
    let mut push = |gate, passed, detail: String| {
        verdicts.push(GateVerdict { gate, passed, detail });
        passed
    };
    let tp = cfg.provider(pid);
    let kind = tp.map(|p| p.kind);
    let mut sender = None;
    let eligible = (|| {
        let Some(tp) = tp else {
            return push(Gate::TenantOptIn, false, "not a provider of this tenant".into());
        };
        if !push(
            Gate::PlatformOptIn,
            env.platform_enabled.contains(&tp.kind),
            if env.platform_enabled.contains(&tp.kind) {
                format!("{} enabled for this deployment", tp.kind)
            } else {
                format!("{} is not enabled in this deployment's ENABLED_PROVIDERS", tp.kind)
            },
        ) {
            return false;
        }
        if !push(Gate::TenantOptIn, tp.enabled, if tp.enabled { "enabled by tenant".into() } else { "disabled by tenant".into() }) {
            return false;
        }
        if pos > 0 || !tp.backup_only {
            // fine: backups may carry traffic once an earlier provider is passed over
        } else if !push(Gate::TenantOptIn, false, "backup only; carries traffic only after another provider fails".into()) {
            return false;
        }
        match (env.credentials_ok)(tp) {
            Ok(()) => push(Gate::Credentials, true, "present and parseable".into()),
            Err(e) => return push(Gate::Credentials, false, e),
        };
        let s = pick_sender(cfg, pid, f);
        match &s {
            Some(s) => push(Gate::SenderIdentity, true, format!("sender {s} registered with {pid}")),
            None => {
                let d = match f.from {
                    Some(req) => format!("sender {req} is not registered to this tenant with {pid}"),
                    None => format!("tenant has no sender identity registered with {pid}"),
                };
                return push(Gate::SenderIdentity, false, d);
            }
        };
        let caps = (env.capabilities)(tp.kind);
        let cap_problem = if f.kind == MessageKind::Mms && !caps.mms {
            Some(format!("{} does not carry MMS", tp.kind))
        } else if f.kind == MessageKind::Mms && f.media_count as u32 > caps.max_media {
            Some(format!("{} takes at most {} media items", tp.kind, caps.max_media))
        } else if let Err(why) =
            crate::providers::check_provider_limits(&caps, &f.media.iter().map(|(t, s)| (t.as_str(), *s)).collect::<Vec<_>>())
        {
            Some(format!("{}: {why}", tp.kind))
        } else if f.kind == MessageKind::Sms && !caps.sms {
            Some(format!("{} does not carry SMS", tp.kind))
        } else if matches!(s, Some(SenderId::Alphanumeric(_))) && !caps.alphanumeric_sender {
            Some(format!("{} does not support alphanumeric senders", tp.kind))
        } else {
            None
        };
        if !push(Gate::Capability, cap_problem.is_none(), cap_problem.unwrap_or_else(|| format!("{} supports this message", tp.kind))) {
            return false;
        }
        let healthy = !env.unhealthy.contains(pid);
        if !push(Gate::Health, healthy, if healthy { "circuit closed".into() } else { "circuit open: recent failures".into() }) {
            return false;
        }
        sender = s;
        true
    })();
    Candidate { provider_id: pid.to_string(), kind, sender, verdicts, eligible }
}

fn pick_sender(cfg: &TenantConfig, pid: &str, f: &RouteFacts<'_>) -> Option<SenderId> {
    let fits = |s: &&SenderIdentity| {
        s.provider == pid && (s.categories.is_empty() || s.categories.contains(f.category))
    };
    match f.from {
        Some(req) => cfg.senders.iter().filter(fits).find(|s| &s.sender == req).map(|s| s.sender.clone()),
        None => {
            // MMS needs a long code on every provider we support.
            let mut it = cfg.senders.iter().filter(fits);
            if f.kind == MessageKind::Mms {
                it.find(|s| s.sender.is_long_code()).map(|s| s.sender.clone())
            } else {
                it.next().map(|s| s.sender.clone())
            }
        }
    }
}

#[cfg(test)]
#[path = "tenant_tests.rs"]
mod tests;

#[cfg(test)]
mod quiet_hours_tests {
    use super::QuietHours;
    use chrono::{TimeZone, Utc};

    fn q(start: &str, end: &str, tz: &str) -> QuietHours {
        QuietHours { start: start.into(), end: end.into(), time_zone: tz.into(), exempt: vec![] }
    }

    #[test]
    fn window_spanning_midnight_defers_to_the_next_morning() {
        let w = q("21:00", "08:00", "Europe/London");
        // 22:30 UTC on 2026-11-26 is 22:30 GMT (no DST in November).
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 22, 30, 0).unwrap();
        assert_eq!(w.defer_until(late), Some(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()));
        let early = Utc.with_ymd_and_hms(2026, 11, 27, 7, 59, 0).unwrap();
        assert_eq!(w.defer_until(early), Some(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()));
        assert_eq!(w.defer_until(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()), None, "the end is not quiet");
        assert_eq!(w.defer_until(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()), None);
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        let w = q("21:00", "08:00", "Europe/London");
        // 20:30 UTC in July is 21:30 BST: quiet, until 08:00 BST = 07:00 UTC.
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 20, 30, 0).unwrap();
        assert_eq!(w.defer_until(summer), Some(Utc.with_ymd_and_hms(2026, 7, 2, 7, 0, 0).unwrap()));
        let ny = q("22:00", "07:00", "America/New_York");
        // 03:00 UTC on 2026-11-27 is 22:00 EST on the 26th.
        assert_eq!(ny.defer_until(Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).unwrap()), Some(Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()));
    }

    #[test]
    fn same_day_window_and_bad_settings() {
        let w = q("12:00", "13:00", "UTC");
        assert!(w.defer_until(Utc.with_ymd_and_hms(2026, 11, 26, 12, 30, 0).unwrap()).is_some());
        assert!(w.defer_until(Utc.with_ymd_and_hms(2026, 11, 26, 13, 30, 0).unwrap()).is_none());
        assert!(q("12:00", "13:00", "Mars/Olympus").defer_until(Utc::now()).is_none());
        assert!(q("25:00", "13:00", "UTC").defer_until(Utc::now()).is_none());
    }
}
