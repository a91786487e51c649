//! Sinch SMS (and Conversation) callbacks: `x-sinch-webhook-signature` =
//! `base64(HMAC-SHA256(secret, raw_body + "." + nonce + "." + timestamp))` with the
//! nonce and timestamp from `x-sinch-webhook-signature-nonce` and
//! `x-sinch-webhook-signature-timestamp`. `x-sinch-webhook-signature-algorithm`,
//! when sent, must be `HmacSHA256`.
//!
//! Sinch's SDKs do not check the timestamp's age; we do (policy: the tolerance,
//! 300 s by default), and the nonce is the replay handle.

use super::{
    VerifyError, WebhookRequest, check_tolerance, constant_time_eq, decode_base64, encode_base64, hmac_sha256,
    parse_unix_seconds, require_secret,
};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
pub const ALGORITHM_HEADER: &str = "x-sinch-webhook-signature-algorithm";
/// The only algorithm Sinch signs callbacks with.
pub const ALGORITHM: &str = "HmacSHA256";

/// The signature header value for `body`, `nonce` and `timestamp` (for fakes).
pub fn sign(secret: &str, body: &[u8], nonce: &str, timestamp: i64) -> String {
    encode_base64(&mac(secret, body, nonce, &timestamp.to_string()))
}

/// Verifies a Sinch callback: algorithm, timestamp window, then the HMAC.
pub fn verify(secret: &str, req: &WebhookRequest, now_unix: i64, tolerance: Duration) -> Result<(), VerifyError> {
    require_secret(secret.as_bytes(), "sinch webhook secret is empty")?;
    let signature = req.single_header(SIGNATURE_HEADER)?;
    let nonce = req.single_header(NONCE_HEADER)?;
    let timestamp = req.single_header(TIMESTAMP_HEADER)?;
    match req.single_header(ALGORITHM_HEADER) {
        Err(VerifyError::MissingHeader(_)) => {}
        // Any letter case names the same algorithm.
        Ok(alg) if alg.trim().eq_ignore_ascii_case(ALGORITHM) => {}
        Ok(_) => {
            return Err(VerifyError::Malformed(
                "x-sinch-webhook-signature-algorithm (only HmacSHA256)",
            ));
        }
        Err(e) => return Err(e),
    }
    if nonce.is_empty() {
        return Err(VerifyError::Malformed("x-sinch-webhook-signature-nonce header (empty)"));
    }
    let ts = parse_unix_seconds(timestamp, "x-sinch-webhook-signature-timestamp header")?;
    let given = decode_base64(signature, "x-sinch-webhook-signature header")?;
    check_tolerance(ts, now_unix, tolerance)?;
    // The timestamp is signed as the header text received, not as re-formatted.
    if constant_time_eq(&mac(secret, &req.body, nonce, timestamp), &given) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

fn mac(secret: &str, body: &[u8], nonce: &str, timestamp: &str) -> Vec<u8> {
    hmac_sha256(
        secret.as_bytes(),
        &[body, b".", nonce.as_bytes(), b".", timestamp.as_bytes()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::DEFAULT_TOLERANCE;
    use crate::signatures::test_support::*;
    use serde_json::Value;

    const TOL: Duration = DEFAULT_TOLERANCE;
    const SECRET: &str = "SMSWebhooksSecret";
    const NONCE: &str = "01JHFFHWYY7HSS4FWTMDTQEK8V";
    const T: i64 = 1_736_760_161;
    const BODY: &[u8] = br#"{"type":"recipient_delivery_report_sms","status":"Delivered"}"#;

    fn sinch_request(headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
        let mut h = vec![("Content-Type", JSON)];
        h.extend_from_slice(headers);
        request("POST", "https://h/webhooks/sinch", &h, body)
    }

    fn signed(sig: &str, nonce: &str, ts: &str, body: &[u8]) -> WebhookRequest {
        sinch_request(
            &[
                ("x-sinch-webhook-signature", sig),
                ("x-sinch-webhook-signature-nonce", nonce),
                ("x-sinch-webhook-signature-timestamp", ts),
                ("x-sinch-webhook-signature-algorithm", "HmacSHA256"),
            ],
            body,
        )
    }

    /// Both vectors (SMS delivery report with the algorithm header, Conversation
    /// without it): signer and verifier agree with Sinch's SDK tests.
    #[test]
    fn vectors() {
        let all = vectors_for("sinch");
        assert_eq!(all.len(), 2);
        for v in all {
            let secret = str_of(&v, "/inputs/secret");
            let body = str_of(&v, "/inputs/body").as_bytes();
            let nonce = str_of(&v, "/inputs/headers/x-sinch-webhook-signature-nonce");
            let ts = str_of(&v, "/inputs/headers/x-sinch-webhook-signature-timestamp");
            let expected = str_of(&v, "/expected/signature");
            assert_eq!(sign(secret, body, nonce, ts.parse().unwrap()), expected, "{}", v["id"]);

            let mut headers: Vec<(&str, &str)> = v["inputs"]["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, val)| (k.as_str(), val.as_str().unwrap()))
                .collect();
            headers.push(("X-Sinch-Webhook-Signature", expected));
            let req = sinch_request(&headers, body);
            assert_eq!(verify(secret, &req, ts.parse().unwrap(), TOL), Ok(()), "{}", v["id"]);
            let algorithm_sent = v["inputs"]["headers"].get(ALGORITHM_HEADER).and_then(Value::as_str);
            assert!(algorithm_sent.is_none_or(|a| a == ALGORITHM));
        }
    }

    #[test]
    fn timestamp_window() {
        let sig = sign(SECRET, BODY, NONCE, T);
        let req = signed(&sig, NONCE, &T.to_string(), BODY);
        for now in [T - 300, T + 300] {
            assert_eq!(verify(SECRET, &req, now, TOL), Ok(()), "edge {now}");
        }
        for now in [T - 301, T + 301] {
            assert_eq!(
                verify(SECRET, &req, now, TOL),
                Err(VerifyError::TimestampOutOfTolerance(300))
            );
        }
        // Re-stamping an old signature breaks it.
        let old = sign(SECRET, BODY, NONCE, T - 3600);
        assert_eq!(
            verify(SECRET, &signed(&old, NONCE, &T.to_string(), BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        let sig = sign(SECRET, BODY, NONCE, T);
        let t = T.to_string();
        assert_eq!(verify(SECRET, &signed(&sig, NONCE, &t, BODY), T, TOL), Ok(()));
        // Wrong secret, tampered body, other nonce, same instant written differently.
        assert_eq!(
            verify("other", &signed(&sig, NONCE, &t, BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(SECRET, &signed(&sig, NONCE, &t, b"{}"), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(SECRET, &signed(&sig, "01JHFFHWYY7HSS4FWTMDTQEK8W", &t, BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(SECRET, &signed(&sig, NONCE, &format!("0{t}"), BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // Missing each header.
        let all = [
            ("x-sinch-webhook-signature", sig.as_str()),
            ("x-sinch-webhook-signature-nonce", NONCE),
            ("x-sinch-webhook-signature-timestamp", t.as_str()),
        ];
        for (i, name) in [SIGNATURE_HEADER, NONCE_HEADER, TIMESTAMP_HEADER]
            .into_iter()
            .enumerate()
        {
            let mut h = all.to_vec();
            h.remove(i);
            assert_eq!(
                verify(SECRET, &sinch_request(&h, BODY), T, TOL),
                Err(VerifyError::MissingHeader(name))
            );
        }
        // Algorithm header is optional.
        assert_eq!(verify(SECRET, &sinch_request(&all, BODY), T, TOL), Ok(()));
        // Duplicated headers (including the algorithm).
        for (name, value) in [
            (SIGNATURE_HEADER, sig.as_str()),
            (NONCE_HEADER, NONCE),
            (TIMESTAMP_HEADER, t.as_str()),
            (ALGORITHM_HEADER, ALGORITHM),
        ] {
            let mut req = signed(&sig, NONCE, &t, BODY);
            req.headers.push((name.to_uppercase(), value.to_owned()));
            assert_eq!(verify(SECRET, &req, T, TOL), Err(VerifyError::DuplicateHeader(name)));
        }
        // Wrong algorithm.
        for alg in ["HmacSHA1", "HmacSHA512", "none", ""] {
            let mut h = all.to_vec();
            h.push((ALGORITHM_HEADER, alg));
            assert!(
                matches!(
                    verify(SECRET, &sinch_request(&h, BODY), T, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{alg:?}"
            );
        }
        // Malformed signature, timestamp, nonce.
        for bad in ["", "not base64!", &sig[..sig.len() - 1]] {
            assert!(
                matches!(
                    verify(SECRET, &signed(bad, NONCE, &t, BODY), T, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["", "yesterday", "1736760161.5"] {
            assert!(
                matches!(
                    verify(SECRET, &signed(&sig, NONCE, bad, BODY), T, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            verify(SECRET, &signed(&sig, "", &t, BODY), T, TOL),
            Err(VerifyError::Malformed(_))
        ));
        // A truncated (well-formed) MAC.
        let short = encode_base64(&decode_base64(&sig, "s").unwrap()[..31]);
        assert_eq!(
            verify(SECRET, &signed(&short, NONCE, &t, BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // Empty secret.
        assert!(matches!(
            verify("", &signed(&sign("", BODY, NONCE, T), NONCE, &t, BODY), T, TOL),
            Err(VerifyError::SecretUnusable(_))
        ));
    }
}
