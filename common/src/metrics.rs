//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per
//! observation, which CloudWatch Logs turns into metrics without any API call from
//! the function (no extra latency, no PutMetricData permission, nothing lost when an
//! instance is frozen between invocations).
//!
//! Written by hand rather than through a `metrics`-facade exporter: those aggregate in
//! one process-wide recorder and flush per invocation, while the local runner and the
//! tests run all five functions in one process; a line per observation keeps each
//! function's figures its own and needs no flush hook in the runtime.
//!
//! Cardinality stays bounded by construction: dimension values come from closed sets
//! (provider kinds, built-in categories, the lane, error classes, reason codes, queue
//! names). A tenant's own category names fold into `other`; message ids, tenants and
//! numbers never become dimensions.
//!
//! Emission is on in Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) or when
//! `DISPATCH_METRICS=emf`; the local runner stays quiet otherwise. [`capture`] collects
//! the lines in memory instead (tests).

use crate::domain::ContentCategory;
use std::sync::{Mutex, OnceLock};

/// The CloudWatch namespace, `METRICS_NAMESPACE` or `Dispatch`.
pub fn namespace() -> &'static str {
    static NS: OnceLock<String> = OnceLock::new();
    NS.get_or_init(|| std::env::var("METRICS_NAMESPACE").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "Dispatch".into()))
}

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
            || std::env::var("DISPATCH_METRICS").is_ok_and(|v| v.eq_ignore_ascii_case("emf"))
    })
}

/// Every metric the service emits. docs/operations.md lists them with their
/// dimensions; the template's alarms and dashboard use these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Submit accepted a new message (not an idempotent replay).
    MessagesAccepted,
    /// Submit refused a request with a 4xx error (dimension `Reason` = error code).
    MessagesRejected,
    MessagesSent,
    MessagesDelivered,
    MessagesUndelivered,
    MessagesFailed,
    MessagesExpired,
    /// An operator withdrew a message before it was handed to a provider.
    MessagesCanceled,
    /// Segments handed to a provider (the cost driver).
    SegmentsSent,
    /// One provider API call, whatever its outcome.
    ProviderCalls,
    /// Milliseconds one provider API call took.
    ProviderLatency,
    /// Provider calls that failed (`ErrorClass`: transient, permanent, credentials).
    ProviderErrors,
    /// A failed attempt scheduled again on the same provider.
    Retries,
    /// A failed attempt moved on to the next provider.
    Failovers,
    /// Routing found a provider account's circuit open and routed around it.
    CircuitOpen,
    CallbacksReceived,
    /// Provider callbacks refused (`Reason`: the signature error code, replayed, unknown_account).
    CallbacksRejected,
    /// Authentic receipts that did not move a message (duplicates, late or out of order).
    CallbacksDuplicate,
    /// A delivery deadline was missed and the tenant alerted.
    EscalationsRaised,
    EscalationsAcknowledged,
    /// A signed status callback to the tenant's endpoint failed.
    TenantCallbackFailures,
    /// Records the sweep found in a dead-letter queue (`Queue`).
    DeadLettersSurfaced,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::MessagesAccepted => "MessagesAccepted",
            Self::MessagesRejected => "MessagesRejected",
            Self::MessagesSent => "MessagesSent",
            Self::MessagesDelivered => "MessagesDelivered",
            Self::MessagesUndelivered => "MessagesUndelivered",
            Self::MessagesFailed => "MessagesFailed",
            Self::MessagesExpired => "MessagesExpired",
            Self::MessagesCanceled => "MessagesCanceled",
            Self::SegmentsSent => "SegmentsSent",
            Self::ProviderCalls => "ProviderCalls",
            Self::ProviderLatency => "ProviderLatency",
            Self::ProviderErrors => "ProviderErrors",
            Self::Retries => "Retries",
            Self::Failovers => "Failovers",
            Self::CircuitOpen => "CircuitOpen",
            Self::CallbacksReceived => "CallbacksReceived",
            Self::CallbacksRejected => "CallbacksRejected",
            Self::CallbacksDuplicate => "CallbacksDuplicate",
            Self::EscalationsRaised => "EscalationsRaised",
            Self::EscalationsAcknowledged => "EscalationsAcknowledged",
            Self::TenantCallbackFailures => "TenantCallbackFailures",
            Self::DeadLettersSurfaced => "DeadLettersSurfaced",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::ProviderLatency => "Milliseconds",
            _ => "Count",
        }
    }
}

/// Dimension names (values are the caller's, from closed sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// The provider kind (`twilio`, `sinch`...), never the tenant's account name.
    Provider,
    /// A built-in category, or `other` ([`category`]).
    Category,
    /// `life_safety` or `standard` ([`lane`]).
    Lane,
    ErrorClass,
    Reason,
    Queue,
}

impl Dim {
    fn name(self) -> &'static str {
        match self {
            Self::Provider => "Provider",
            Self::Category => "Category",
            Self::Lane => "Lane",
            Self::ErrorClass => "ErrorClass",
            Self::Reason => "Reason",
            Self::Queue => "Queue",
        }
    }
}

/// The dimension value for a category: built-in names as they are, a tenant's own
/// category names as `other` (unbounded otherwise).
pub fn category(c: &ContentCategory) -> &'static str {
    ContentCategory::BUILT_IN.iter().find(|b| **b == c.as_str()).copied().unwrap_or("other")
}

/// The dimension value for the priority lane.
pub fn lane(priority: bool) -> &'static str {
    if priority { "life_safety" } else { "standard" }
}

/// A reason code as a dimension value: codes are short snake_case identifiers from
/// our own enums; anything else folds into `other`.
pub fn reason(code: &str) -> &str {
    let ok = (1..=48).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { code } else { "other" }
}

/// Records one observation of `metric`. The metric is published under every
/// dimension subset CloudWatch needs for the alarms and the dashboard: all the given
/// dimensions together, each one alone, and none (the total).
pub fn emit(metric: Metric, value: f64, dims: &[(Dim, &str)]) {
    let capturing = CAPTURE.lock().map(|c| c.is_some()).unwrap_or(false);
    if !capturing && !enabled() {
        return;
    }
    let line = line(metric, value, dims, chrono::Utc::now().timestamp_millis());
    if capturing && let Ok(mut c) = CAPTURE.lock() && let Some(lines) = c.as_mut() {
        lines.push(line);
        return;
    }
    // One write per line: stdout's lock keeps lines from interleaving with logs.
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Counts one occurrence.
pub fn count(metric: Metric, dims: &[(Dim, &str)]) {
    emit(metric, 1.0, dims);
}

/// The EMF document for one observation.
pub fn line(metric: Metric, value: f64, dims: &[(Dim, &str)], timestamp_ms: i64) -> String {
    let names: Vec<&str> = dims.iter().map(|(d, _)| d.name()).collect();
    let mut sets: Vec<Vec<&str>> = Vec::new();
    if !names.is_empty() {
        sets.push(names.clone());
    }
    if names.len() > 1 {
        sets.extend(names.iter().map(|n| vec![*n]));
    }
    sets.push(Vec::new());
    let mut doc = serde_json::Map::new();
    doc.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace(),
                "Dimensions": sets,
                "Metrics": [{"Name": metric.name(), "Unit": metric.unit()}],
            }],
        }),
    );
    for (d, v) in dims {
        doc.insert(d.name().into(), serde_json::Value::String((*v).to_string()));
    }
    doc.insert(metric.name().into(), serde_json::json!(value));
    serde_json::Value::Object(doc).to_string()
}

static CAPTURE: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Collects every line emitted in this process from now on, instead of writing it,
/// until the returned guard is dropped. For tests (one test per process under
/// nextest, so nothing else shares the collection).
pub fn capture() -> Capture {
    *CAPTURE.lock().expect("metrics capture") = Some(Vec::new());
    Capture(())
}

pub struct Capture(());

impl Capture {
    /// The lines collected so far (and forgets them).
    pub fn take(&self) -> Vec<String> {
        CAPTURE.lock().expect("metrics capture").as_mut().map(std::mem::take).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(mut c) = CAPTURE.lock() {
            *c = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_a_valid_emf_document_with_every_dimension_subset() {
        let l = line(Metric::MessagesDelivered, 1.0, &[(Dim::Provider, "twilio"), (Dim::Category, "emergency_callback")], 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(m["Namespace"], namespace());
        assert_eq!(m["Metrics"][0], serde_json::json!({"Name": "MessagesDelivered", "Unit": "Count"}));
        assert_eq!(m["Dimensions"], serde_json::json!([["Provider", "Category"], ["Provider"], ["Category"], []]));
        assert_eq!(v["Provider"], "twilio");
        assert_eq!(v["Category"], "emergency_callback");
        assert_eq!(v["MessagesDelivered"], 1.0);
    }

    #[test]
    fn one_dimension_is_not_repeated_and_latency_has_its_unit() {
        let v: serde_json::Value = serde_json::from_str(&line(Metric::ProviderLatency, 42.0, &[(Dim::Provider, "sinch")], 0)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Provider"], []]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
    }

    #[test]
    fn dimension_values_stay_in_closed_sets() {
        assert_eq!(category(&ContentCategory::emergency_callback()), "emergency_callback");
        assert_eq!(category(&ContentCategory::parse("bin_collection").unwrap()), "other");
        assert_eq!(lane(true), "life_safety");
        assert_eq!(reason("invalid_signature"), "invalid_signature");
        assert_eq!(reason("+447400123456"), "other");
        assert_eq!(reason(""), "other");
    }

    #[test]
    fn capture_collects_instead_of_writing() {
        let cap = capture();
        count(Metric::Retries, &[(Dim::Provider, "telnyx")]);
        let lines = cap.take();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("\"Retries\":1.0"), "{}", lines[0]);
        assert!(cap.take().is_empty());
    }
}
