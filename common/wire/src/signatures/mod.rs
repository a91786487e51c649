//! Callback authenticity, one module per provider scheme (in the shape of svix's
//! `webhooks.rs`): each exposes a `verify(...)` that takes the raw request exactly as
//! received, compares in constant time and enforces its timestamp tolerance.
//! The webhook function and `dispatchctl webhook verify` call the same functions.

pub mod bandwidth;
pub mod plivo;
pub mod sandbox;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use std::time::Duration;

/// How far a signed timestamp may be from now (both directions).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A callback request exactly as it reached us. `url` is the full URL the provider
/// requested (scheme, host, port if any, path, query); `body` is the raw body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookRequest {
    pub method: String,
    pub url: String,
    /// Header names as received; look-ups are case-insensitive. Repeated headers
    /// appear as repeated entries.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// All values of a header, case-insensitively.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The single value of a header. A missing header and a duplicated one are both
    /// errors: a forger could otherwise smuggle a second value past a proxy.
    pub fn single_header(&self, name: &'static str) -> Result<&str, VerifyError> {
        let mut it = self.header_values(name);
        match (it.next(), it.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(VerifyError::MissingHeader(name)),
            (Some(_), Some(_)) => Err(VerifyError::DuplicateHeader(name)),
        }
    }

    /// Decoded `application/x-www-form-urlencoded` body parameters, in order.
    pub fn form_params(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// Decoded query parameters of `url`, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        match url::Url::parse(&self.url) {
            Ok(u) => u.query_pairs().into_owned().collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header_values("content-type").next()
    }
}

/// Why a callback was judged not authentic. Messages never include secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    SignatureMismatch,
    #[error("timestamp outside the {0}s tolerance")]
    TimestampOutOfTolerance(u64),
    #[error("body hash does not match")]
    BodyHashMismatch,
    #[error("credentials do not match")]
    BadCredentials,
    #[error("replayed: {0} already seen within the window")]
    Replayed(&'static str),
    #[error("the provider's verification secret is not configured or unusable: {0}")]
    SecretUnusable(&'static str),
}

impl VerifyError {
    /// Machine-readable code for logs and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::Malformed(_) => "malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampOutOfTolerance(_) => "timestamp_out_of_tolerance",
            Self::BodyHashMismatch => "body_hash_mismatch",
            Self::BadCredentials => "bad_credentials",
            Self::Replayed(_) => "replayed",
            Self::SecretUnusable(_) => "secret_unusable",
        }
    }
}

/// Constant-time equality for signatures and credentials.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks `|now - ts| <= tolerance`.
pub fn check_tolerance(ts_unix: i64, now_unix: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let tol = tolerance.as_secs();
    if now_unix.abs_diff(ts_unix) > tol {
        Err(VerifyError::TimestampOutOfTolerance(tol))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Shared building blocks for the scheme modules.

/// HMAC over the concatenation of `parts`, for an `hmac::Hmac<D>` type, e.g.
/// `hmac_parts::<hmac::Hmac<sha2::Sha256>>(key, &[a, b])`. Feeding the parts one by
/// one avoids building the signed string in memory. Only for HMAC: a MAC with a
/// fixed key length would panic on a wrong-sized key.
pub fn hmac_parts<M: hmac::Mac + hmac::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length (long keys are hashed first), so this cannot fail.
    let mut mac = <M as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac_parts::<hmac::Hmac<sha2::Sha256>>(key, parts)
}

/// Lowercase hex SHA-256 of `bytes` (Twilio `bodySHA256`, Vonage `payload_hash`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Refuses an empty verification secret: an HMAC keyed with "" is forgeable by
/// anyone, so a blank configuration must fail closed instead of "verifying".
pub fn require_secret(secret: &[u8], what: &'static str) -> Result<(), VerifyError> {
    if secret.is_empty() {
        Err(VerifyError::SecretUnusable(what))
    } else {
        Ok(())
    }
}

/// Parses a signed unix-seconds timestamp (header or parameter).
pub fn parse_unix_seconds(value: &str, what: &'static str) -> Result<i64, VerifyError> {
    let v = value.trim();
    // Digits only (an optional leading '-' is meaningless for callbacks but harmless):
    // `i64::from_str` would also take a leading '+', which no provider sends.
    if v.is_empty() || v.starts_with('+') {
        return Err(VerifyError::Malformed(what));
    }
    v.parse::<i64>().map_err(|_| VerifyError::Malformed(what))
}

/// Standard (padded) base64, as Twilio, Telnyx, Plivo and Sinch send signatures.
pub fn decode_base64(value: &str, what: &'static str) -> Result<Vec<u8>, VerifyError> {
    use base64::Engine as _;
    let value = value.trim();
    if value.is_empty() {
        return Err(VerifyError::Malformed(what));
    }
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| VerifyError::Malformed(what))
}

/// Standard (padded) base64 encoding.
pub fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Splits a raw URL into `(before_query, query, fragment)` without re-serialising
/// it: signature schemes sign the URL exactly as the provider wrote it, and
/// `url::Url` would normalise it (drop default ports, re-encode, add a `/` path).
pub fn split_raw_url(url: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    match rest.split_once('?') {
        Some((base, query)) => (base, Some(query), fragment),
        None => (rest, None, fragment),
    }
}

/// Decoded `key=value` pairs of a raw query string, in order (`+` is a space).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// True when the request declares an `application/x-www-form-urlencoded` body.
pub fn is_form_body(req: &WebhookRequest) -> bool {
    media_type_is(req, "application/x-www-form-urlencoded")
}

/// True when the request declares a JSON body (`application/json`, `…+json`).
pub fn is_json_body(req: &WebhookRequest) -> bool {
    let Some(ct) = req.content_type() else { return false };
    let media = ct.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json") || media.to_ascii_lowercase().ends_with("+json")
}

fn media_type_is(req: &WebhookRequest, expected: &str) -> bool {
    req.content_type()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the scheme modules' tests: the shared vector file and requests.

    use super::WebhookRequest;
    use serde_json::Value;

    /// All vectors of `tests/vectors/vectors.json` (official + DERIVED).
    pub fn vectors() -> Vec<Value> {
        let doc: Value =
            serde_json::from_str(include_str!("../../../tests/vectors/vectors.json")).expect("vectors.json parses");
        doc["vectors"].as_array().expect("vectors array").clone()
    }

    /// The vector with `id`; panics when absent so a renamed vector fails loudly.
    pub fn vector(id: &str) -> Value {
        vectors()
            .into_iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("vector {id} missing"))
    }

    /// Vectors whose `provider` is `provider`.
    pub fn vectors_for(provider: &str) -> Vec<Value> {
        vectors().into_iter().filter(|v| v["provider"] == provider).collect()
    }

    pub fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{pointer} missing in {}", v["id"]))
    }

    /// A flat JSON object of params (string, number or list-of-strings values) as
    /// `(name, value)` pairs; list values become repeated pairs.
    pub fn params_of(v: &Value, pointer: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(obj) = v.pointer(pointer).and_then(Value::as_object) else {
            return out;
        };
        for (k, val) in obj {
            match val {
                Value::String(s) => out.push((k.clone(), s.clone())),
                Value::Array(items) => {
                    for item in items {
                        out.push((k.clone(), item.as_str().expect("string item").to_owned()));
                    }
                }
                other => out.push((k.clone(), other.to_string())),
            }
        }
        out
    }

    pub fn hex_of(v: &Value, pointer: &str) -> Vec<u8> {
        hex::decode(str_of(v, pointer)).expect("hex")
    }

    pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
        WebhookRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }

    pub fn form_body(params: &[(String, String)]) -> Vec<u8> {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    }

    pub const FORM: &str = "application/x-www-form-urlencoded";
    pub const JSON: &str = "application/json";
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    // RFC 4231 HMAC-SHA-256 vectors for the primitive every HMAC scheme here uses.
    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        let cases: Vec<_> = vectors()
            .into_iter()
            .filter(|v| v["id"].as_str().is_some_and(|id| id.starts_with("rfc4231-")))
            .collect();
        assert_eq!(cases.len(), 5, "rfc4231 vectors present");
        for v in cases {
            let key = hex_of(&v, "/inputs/key_hex");
            let data = hex_of(&v, "/inputs/data_hex");
            let expected = str_of(&v, "/expected/hmac_sha256_hex");
            assert_eq!(hex::encode(hmac_sha256(&key, &[&data])), expected, "{}", v["id"]);
            // Splitting the message must not change the MAC.
            let (a, b) = data.split_at(data.len() / 2);
            assert_eq!(hex::encode(hmac_sha256(&key, &[a, b])), expected, "{} split", v["id"]);
        }
    }

    #[test]
    fn tolerance_edges() {
        let tol = DEFAULT_TOLERANCE;
        assert!(check_tolerance(1000, 1300, tol).is_ok());
        assert!(check_tolerance(1300, 1000, tol).is_ok());
        assert_eq!(
            check_tolerance(1000, 1301, tol),
            Err(VerifyError::TimestampOutOfTolerance(300))
        );
        assert_eq!(
            check_tolerance(1301, 1000, tol),
            Err(VerifyError::TimestampOutOfTolerance(300))
        );
        assert!(check_tolerance(i64::MIN, i64::MAX, tol).is_err());
    }

    #[test]
    fn unix_seconds_parsing() {
        assert_eq!(parse_unix_seconds("1700000000", "t"), Ok(1_700_000_000));
        assert_eq!(parse_unix_seconds(" 17 ", "t"), Ok(17));
        for bad in ["", "+1", "1.5", "abc", "99999999999999999999", "1e9"] {
            assert_eq!(
                parse_unix_seconds(bad, "t"),
                Err(VerifyError::Malformed("t")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn raw_url_split_keeps_the_url_verbatim() {
        assert_eq!(
            split_raw_url("http://h:80/p?a=1&b=2#f"),
            ("http://h:80/p", Some("a=1&b=2"), Some("f"))
        );
        assert_eq!(split_raw_url("https://h"), ("https://h", None, None));
        assert_eq!(
            parse_query("a=1+2&b=%26&c"),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "&".into()),
                ("c".into(), "".into())
            ]
        );
    }

    #[test]
    fn empty_secret_is_unusable() {
        assert_eq!(require_secret(b"", "x"), Err(VerifyError::SecretUnusable("x")));
        assert!(require_secret(b"k", "x").is_ok());
    }

    #[test]
    fn content_type_detection() {
        let r = request(
            "POST",
            "https://h/",
            &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            b"",
        );
        assert!(is_form_body(&r) && !is_json_body(&r));
        let r = request("POST", "https://h/", &[("content-type", "Application/JSON")], b"");
        assert!(is_json_body(&r) && !is_form_body(&r));
        let r = request("POST", "https://h/", &[], b"");
        assert!(!is_json_body(&r) && !is_form_body(&r));
    }
}
