//! `dispatchctl webhook verify`: runs the provider adapter's `verify_callback`, the
//! very check the webhook function makes, on a captured request.

use crate::{VerifyArgs, usage_error};
use anyhow::Context;
use dispatch_common::providers::registry::adapter;
use dispatch_common::providers::{Credentials, ProviderKind};
use dispatch_common::signatures::{self, WebhookRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Stands in for credential fields verification never reads (account ids, API keys).
const PLACEHOLDER: &str = "dispatchctl-placeholder";

/// The request file: a callback exactly as it reached the webhook URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    #[serde(default = "post")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, HeaderValue>,
    /// The raw body, byte for byte (as a JSON string).
    #[serde(default)]
    body: String,
}

fn post() -> String {
    "POST".into()
}

/// A header value, or a list of them for a header sent more than once.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

impl RequestFile {
    fn into_request(self) -> WebhookRequest {
        let mut headers = Vec::new();
        for (name, value) in self.headers {
            match value {
                HeaderValue::One(v) => headers.push((name, v)),
                HeaderValue::Many(vs) => headers.extend(vs.into_iter().map(|v| (name.clone(), v))),
            }
        }
        WebhookRequest {
            method: self.method,
            url: self.url,
            headers,
            body: self.body.into_bytes(),
        }
    }
}

/// `--at`: unix seconds, or an RFC 3339 timestamp.
pub fn parse_at(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| "unix seconds out of range".to_string());
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .map_err(|_| {
            "expected unix seconds (1700000000) or RFC 3339 (2023-11-14T22:13:20Z)".to_string()
        })
}

pub fn run(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if a.signature_method.is_some() && a.provider != ProviderKind::VonageSms {
        usage_error("--signature-method applies to --provider vonage-sms only");
    }
    if a.api_key.is_some()
        && !matches!(
            a.provider,
            ProviderKind::VonageSms | ProviderKind::VonageMessages
        )
    {
        usage_error("--api-key applies to the vonage-sms and vonage-messages providers only");
    }
    let secret = match (&a.secret, &a.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret file {}", path.display()))?;
            s.strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&s)
                .to_string()
        }
        (None, None) => usage_error("give --secret or --secret-file"),
    };

    let req = read_request(&a.request)?;
    let creds = credentials(a, &secret, &req)?;
    let now = a.at.unwrap_or_else(|| chrono::Utc::now().timestamp());

    match adapter(a.provider).verify_callback(&creds, &req, now) {
        Ok(()) => {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_request(path: &Path) -> anyhow::Result<WebhookRequest> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the request from standard input")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the request file {}", path.display()))?
    };
    let file: RequestFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a request file ({{\"method\", \"url\", \"headers\": {{name: value}}, \"body\": \"raw body\"}})",
            path.display()
        )
    })?;
    Ok(file.into_request())
}

/// The provider's credentials with `secret` in the field its verifier reads, parsed
/// by `Credentials::parse` exactly like a stored secret.
fn credentials(a: &VerifyArgs, secret: &str, req: &WebhookRequest) -> anyhow::Result<Credentials> {
    let p = PLACEHOLDER;
    let json = match a.provider {
        ProviderKind::Sandbox => {
            json!({"api_key": p, "webhook_secret": secret, "api_base_url": "http://127.0.0.1"})
        }
        ProviderKind::Twilio => json!({"account_sid": p, "auth_token": secret}),
        ProviderKind::VonageSms => json!({
            "api_key": a.api_key.clone().or_else(|| vonage_sms_api_key(req)).unwrap_or_else(|| p.into()),
            "api_secret": p,
            "signature_secret": secret,
            "signature_method": a.signature_method.as_deref().unwrap_or("md5hash"),
        }),
        ProviderKind::VonageMessages => json!({
            "api_key": a.api_key.clone().or_else(|| vonage_jwt_api_key(req)).unwrap_or_else(|| p.into()),
            "api_secret": p,
            "signature_secret": secret,
        }),
        ProviderKind::Telnyx => json!({"api_key": p, "public_key": secret}),
        ProviderKind::Bandwidth => {
            let Some((user, password)) = secret.split_once(':') else {
                usage_error("for bandwidth, --secret is the callback credentials as user:password");
            };
            json!({
                "account_id": p, "username": p, "password": p, "application_id": p,
                "callback_username": user, "callback_password": password,
            })
        }
        ProviderKind::Plivo => json!({"auth_id": p, "auth_token": secret}),
        ProviderKind::Sinch => {
            json!({"service_plan_id": p, "api_token": p, "webhook_secret": secret})
        }
    };
    // The error names fields, never values, so it cannot leak the secret.
    Credentials::parse(a.provider, &json.to_string()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Without --api-key, the account the callback names is taken as ours: the account
/// check passes and only the signature decides.
fn vonage_sms_api_key(req: &WebhookRequest) -> Option<String> {
    let params = signatures::vonage::sms_params(req).ok()?;
    let key = params
        .into_iter()
        .find(|(k, _)| k == "api-key")
        .map(|(_, v)| v);
    if key.is_some() {
        eprintln!(
            "note: no --api-key given; the account check is skipped, the signature is checked"
        );
    }
    key
}

/// The `api_key` claim of a Messages API webhook JWT (unverified here; the adapter
/// verifies the token), for the same reason as [`vonage_sms_api_key`].
fn vonage_jwt_api_key(req: &WebhookRequest) -> Option<String> {
    let auth = req.header_values("authorization").next()?;
    let (_, token) = auth.trim().split_once(' ')?;
    let payload = token.trim().split('.').nth(1)?;
    let mut b64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    let bytes = signatures::decode_base64(&b64, "JWT claims").ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let key = claims.get("api_key")?.as_str()?.to_string();
    eprintln!("note: no --api-key given; the account check is skipped, the signature is checked");
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_unix_seconds_and_rfc3339() {
        assert_eq!(parse_at("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_at("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_at("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000));
        assert!(parse_at("yesterday").is_err());
        assert!(parse_at("").is_err());
        assert!(parse_at("-5").is_err());
    }
}
