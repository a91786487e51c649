//! Platform configuration, read from the environment once per function instance.
//! Names match `Globals.Function.Environment.Variables` in `infra/template.yaml`.

use crate::providers::ProviderKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub table_name: String,
    pub media_bucket: String,
    pub route_queue_url: String,
    pub tenant_callback_queue_url: String,
    /// Inbound MMS media waiting to be fetched (the webhook queues, the inbound-media
    /// function consumes). Empty where no function queues there.
    pub inbound_media_queue_url: String,
    /// Per provider: (standard lane, priority lane) send queue URLs.
    pub send_queues: BTreeMap<ProviderKind, SendQueues>,
    /// Platform opt-in: provider types this deployment may use at all. Empty means
    /// none: every provider is off until an operator enables it (fail closed).
    pub enabled_providers: BTreeSet<ProviderKind>,
    /// Public base URL of the webhook function (its function URL), without trailing '/'.
    pub webhook_base_url: String,
    /// How long provider credentials are cached before Secrets Manager is asked again.
    pub secrets_ttl: Duration,
    /// Per-request timeout for provider API calls.
    pub provider_timeout: Duration,
    /// Dead-letter queues the retry function surfaces: (name, URL).
    pub dead_letter_queues: Vec<(String, String)>,
    /// Secrets Manager id of the platform secret keying recipient hashes in the audit trail.
    pub audit_key_secret_id: String,
    /// `LOOPBACK_CALLBACKS=allow`, set by the local runner only: tenant callbacks may
    /// go to plain-http loopback receivers. Never set in a deployment, where a loopback
    /// URL would reach the Lambda Runtime API or other in-sandbox endpoints.
    pub loopback_callbacks: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendQueues {
    pub standard: String,
    pub priority: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(String),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

impl PlatformConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get`, so tests and the local runner can supply a map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |k: &str| get(k).filter(|v| !v.is_empty()).ok_or_else(|| ConfigError::Missing(k.into()));
        let mut send_queues = BTreeMap::new();
        for kind in ProviderKind::ALL {
            let suffix = env_suffix(kind);
            if let (Some(standard), Some(priority)) = (
                get(&format!("SEND_QUEUE_URL_{suffix}")).filter(|v| !v.is_empty()),
                get(&format!("SEND_PRIORITY_QUEUE_URL_{suffix}")).filter(|v| !v.is_empty()),
            ) {
                send_queues.insert(kind, SendQueues { standard, priority });
            }
        }
        let enabled_providers = parse_enabled(&get("ENABLED_PROVIDERS").unwrap_or_default())?;
        let secs = |k: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(k).filter(|v| !v.is_empty()) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| ConfigError::Invalid {
                    name: k.into(),
                    reason: "expected whole seconds".into(),
                }),
            }
        };
        Ok(Self {
            table_name: req("TABLE_NAME")?,
            media_bucket: get("MEDIA_BUCKET").unwrap_or_default(),
            route_queue_url: req("ROUTE_QUEUE_URL")?,
            tenant_callback_queue_url: get("TENANT_CALLBACK_QUEUE_URL").unwrap_or_default(),
            inbound_media_queue_url: get("INBOUND_MEDIA_QUEUE_URL").unwrap_or_default(),
            send_queues,
            enabled_providers,
            webhook_base_url: get("WEBHOOK_BASE_URL").unwrap_or_default().trim_end_matches('/').to_string(),
            secrets_ttl: secs("SECRETS_TTL_SECS", 300)?,
            provider_timeout: secs("PROVIDER_TIMEOUT_SECS", 10)?,
            dead_letter_queues: dead_letter_queues(&get),
            audit_key_secret_id: get("AUDIT_HASH_KEY_SECRET_ID").unwrap_or_default(),
            loopback_callbacks: get("LOOPBACK_CALLBACKS").is_some_and(|v| v == "allow"),
        })
    }

    pub fn send_queue(&self, kind: ProviderKind, priority: bool) -> Option<&str> {
        self.send_queues.get(&kind).map(|q| if priority { q.priority.as_str() } else { q.standard.as_str() })
    }
}

impl PlatformConfig {
    /// The URL of one of this deployment's work queues, from an event source ARN
    /// (`arn:aws:sqs:<region>:<account>:<name>`): the URL ends with the same name.
    pub fn queue_url_for_arn(&self, arn: &str) -> Option<&str> {
        let name = arn.rsplit(':').next().filter(|n| !n.is_empty())?;
        let sends = self.send_queues.values().flat_map(|q| [q.standard.as_str(), q.priority.as_str()]);
        [self.route_queue_url.as_str(), self.tenant_callback_queue_url.as_str(), self.inbound_media_queue_url.as_str()]
            .into_iter()
            .chain(sends)
            .find(|url| url.rsplit('/').next() == Some(name))
    }
}

fn dead_letter_queues(get: &impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut names = vec!["ROUTE_DLQ_URL".to_string(), "TENANT_CALLBACK_DLQ_URL".to_string(), "INBOUND_MEDIA_DLQ_URL".to_string()];
    names.extend(ProviderKind::ALL.iter().map(|k| format!("SEND_DLQ_URL_{}", env_suffix(*k))));
    names
        .into_iter()
        .filter_map(|n| get(&n).filter(|v| !v.is_empty()).map(|v| (n.trim_end_matches("_URL").to_string(), v)))
        .collect()
}

/// `vonage-sms` → `VONAGE_SMS`.
pub fn env_suffix(kind: ProviderKind) -> String {
    kind.as_str().replace('-', "_").to_ascii_uppercase()
}

fn parse_enabled(v: &str) -> Result<BTreeSet<ProviderKind>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ProviderKind::parse(s).ok_or_else(|| ConfigError::Invalid {
                name: "ENABLED_PROVIDERS".into(),
                reason: format!("unknown provider '{s}'"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_source_arn_names_its_queue_url() {
        let env: BTreeMap<&str, &str> = [
            ("TABLE_NAME", "t"),
            ("ROUTE_QUEUE_URL", "https://sqs.eu-west-2.amazonaws.com/123456789012/sms-dispatch-RouteQueue-AAA"),
            ("SEND_PRIORITY_QUEUE_URL_TWILIO", "https://sqs.eu-west-2.amazonaws.com/123456789012/sms-dispatch-SendPriorityQueueTwilio-BBB"),
            ("SEND_QUEUE_URL_TWILIO", "https://sqs.eu-west-2.amazonaws.com/123456789012/sms-dispatch-SendQueueTwilio-CCC"),
        ]
        .into();
        let cfg = PlatformConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        let url = |arn: &str| cfg.queue_url_for_arn(arn).map(str::to_string);
        assert_eq!(url("arn:aws:sqs:eu-west-2:123456789012:sms-dispatch-SendPriorityQueueTwilio-BBB").as_deref(), Some(env["SEND_PRIORITY_QUEUE_URL_TWILIO"]));
        assert_eq!(url("arn:aws:sqs:eu-west-2:123456789012:sms-dispatch-RouteQueue-AAA").as_deref(), Some(env["ROUTE_QUEUE_URL"]));
        assert_eq!(url("arn:aws:sqs:eu-west-2:123456789012:someone-elses-queue"), None);
        assert_eq!(url("arn:aws:sqs:eu-west-2:123456789012:"), None);
        assert_eq!(url(""), None);
    }

    #[test]
    fn providers_are_off_unless_enabled() {
        let env: BTreeMap<&str, &str> = [("TABLE_NAME", "t"), ("ROUTE_QUEUE_URL", "q")].into();
        let cfg = PlatformConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert!(cfg.enabled_providers.is_empty());
    }

    #[test]
    fn enabled_list_is_parsed_and_unknown_names_refused() {
        let env: BTreeMap<&str, &str> =
            [("TABLE_NAME", "t"), ("ROUTE_QUEUE_URL", "q"), ("ENABLED_PROVIDERS", "sandbox, vonage-sms")].into();
        let cfg = PlatformConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(cfg.enabled_providers, [ProviderKind::Sandbox, ProviderKind::VonageSms].into());
        let env: BTreeMap<&str, &str> =
            [("TABLE_NAME", "t"), ("ROUTE_QUEUE_URL", "q"), ("ENABLED_PROVIDERS", "carrier-pigeon")].into();
        assert!(PlatformConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).is_err());
    }

    #[test]
    fn missing_table_is_named() {
        let e = PlatformConfig::from_lookup(|_| None).unwrap_err();
        assert!(e.to_string().contains("TABLE_NAME"));
    }
}
