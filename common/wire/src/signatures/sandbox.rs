//! Our own timestamped HMAC scheme, used by the sandbox provider and for the signed
//! status callbacks we send to tenants:
//!
//! `Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//!
//! Several `v1=` entries may follow one `t=` while a secret is being rotated (one per
//! live secret); a request is authentic when any of them matches. Entries with other
//! names are ignored so a future `v2` can be added alongside `v1`.

use super::{
    VerifyError, WebhookRequest, check_tolerance, constant_time_eq, hmac_sha256, parse_unix_seconds, require_secret,
};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "Sandbox-Signature";

/// Lowercase hex `HMAC-SHA256(secret, "<t>.<body>")`.
pub fn sign_timestamped(secret: &[u8], t: i64, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[t.to_string().as_bytes(), b".", body]))
}

/// The full header value `t=<t>,v1=<hex>[,v1=<hex>...]`, one `v1` per secret.
pub fn signature_header(secrets: &[&[u8]], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&sign_timestamped(secret, t, body));
    }
    out
}

/// Verifies a `t=..,v1=..` header value against `secret` and `body`: the timestamp
/// must be within `tolerance` of `now_unix` and at least one `v1` must match.
pub fn verify_timestamped(
    header_value: &str,
    secret: &[u8],
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    require_secret(secret, "sandbox webhook secret is empty")?;
    let (t, candidates) = parse_header(header_value)?;
    check_tolerance(t, now_unix, tolerance)?;

    let expected = sign_timestamped(secret, t, body);
    // Check every candidate (no early exit); hex case is not significant.
    let mut ok = false;
    for candidate in candidates {
        ok |= constant_time_eq(expected.as_bytes(), candidate.to_ascii_lowercase().as_bytes());
    }
    if ok {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The signed timestamp of a `t=..,v1=..` header value, read by the same rules as
/// [`verify_timestamped`] (for replay keys: the header text itself is not unique per
/// delivery, since padding, hex case and extra `v1` entries all verify alike).
pub fn header_timestamp(header_value: &str) -> Result<i64, VerifyError> {
    parse_header(header_value).map(|(t, _)| t)
}

/// The timestamp and the `v1` candidates of a header value.
fn parse_header(header_value: &str) -> Result<(i64, Vec<&str>), VerifyError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for item in header_value.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(VerifyError::Malformed(
            "Sandbox-Signature header (expected key=value items)",
        ))?;
        match key.trim() {
            // Two timestamps would let a forger choose which one is checked.
            "t" if t.is_some() => {
                return Err(VerifyError::Malformed("Sandbox-Signature header (repeated t)"));
            }
            "t" => t = Some(parse_unix_seconds(value, "Sandbox-Signature timestamp")?),
            "v1" => candidates.push(value.trim()),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed("Sandbox-Signature header (no t)"))?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed("Sandbox-Signature header (no v1)"));
    }
    Ok((t, candidates))
}

/// Verifies the `Sandbox-Signature` header of `req`.
pub fn verify(secret: &str, req: &WebhookRequest, now_unix: i64, tolerance: Duration) -> Result<(), VerifyError> {
    require_secret(secret.as_bytes(), "sandbox webhook secret is empty")?;
    let header = req.single_header(SIGNATURE_HEADER)?;
    verify_timestamped(header, secret.as_bytes(), &req.body, now_unix, tolerance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::DEFAULT_TOLERANCE;
    use crate::signatures::test_support::*;

    const SECRET: &str = "whsec_test";
    const T: i64 = 1_790_000_000;
    const BODY: &[u8] = br#"{"type":"message.status","status":"delivered"}"#;
    const TOL: Duration = DEFAULT_TOLERANCE;

    fn req_with(header: &str, body: &[u8]) -> WebhookRequest {
        request(
            "POST",
            "https://h/cb",
            &[("Content-Type", JSON), ("Sandbox-Signature", header)],
            body,
        )
    }

    /// The scheme is HMAC-SHA256 with the key as given: pin it to RFC 4231 so a
    /// change of primitive or key handling cannot go unnoticed.
    #[test]
    fn primitive_is_rfc4231_hmac_sha256() {
        let v = vector("rfc4231-case2");
        let key = hex_of(&v, "/inputs/key_hex");
        let data = hex_of(&v, "/inputs/data_hex");
        assert_eq!(
            hex::encode(hmac_sha256(&key, &[&data])),
            str_of(&v, "/expected/hmac_sha256_hex")
        );
        assert_eq!(
            sign_timestamped(b"k", 5, b"body"),
            hex::encode(hmac_sha256(b"k", &[b"5.body"]))
        );
    }

    #[test]
    fn round_trip_and_header_shape() {
        let header = signature_header(&[SECRET.as_bytes()], T, BODY);
        assert_eq!(
            header,
            format!("t={T},v1={}", sign_timestamped(SECRET.as_bytes(), T, BODY))
        );
        assert_eq!(verify(SECRET, &req_with(&header, BODY), T, TOL), Ok(()));
        assert_eq!(verify_timestamped(&header, SECRET.as_bytes(), BODY, T, TOL), Ok(()));
        // Whitespace around items and upper-case hex are tolerated.
        let spaced = header
            .replace(",", " , ")
            .to_uppercase()
            .replace("T=", "t=")
            .replace("V1=", "v1=");
        assert_eq!(verify(SECRET, &req_with(&spaced, BODY), T, TOL), Ok(()));
        // Unknown schemes are ignored alongside v1.
        let with_v2 = format!("{header},v2=abc");
        assert_eq!(verify(SECRET, &req_with(&with_v2, BODY), T, TOL), Ok(()));
    }

    #[test]
    fn rotated_secrets() {
        let header = signature_header(&[b"old-secret", SECRET.as_bytes()], T, BODY);
        assert_eq!(header.matches(",v1=").count(), 2);
        assert_eq!(verify(SECRET, &req_with(&header, BODY), T, TOL), Ok(()));
        assert_eq!(verify("old-secret", &req_with(&header, BODY), T, TOL), Ok(()));
        assert_eq!(
            verify("third", &req_with(&header, BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // A list of garbage plus one good entry passes; only garbage does not.
        let good = sign_timestamped(SECRET.as_bytes(), T, BODY);
        let mixed = format!("t={T},v1=00,v1=zz,v1={good}");
        assert_eq!(verify(SECRET, &req_with(&mixed, BODY), T, TOL), Ok(()));
        assert_eq!(
            verify(SECRET, &req_with(&format!("t={T},v1=00,v1=zz"), BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn timestamp_window() {
        let header = signature_header(&[SECRET.as_bytes()], T, BODY);
        for now in [T - 300, T + 300] {
            assert_eq!(verify(SECRET, &req_with(&header, BODY), now, TOL), Ok(()), "edge {now}");
        }
        for now in [T - 301, T + 301] {
            assert_eq!(
                verify(SECRET, &req_with(&header, BODY), now, TOL),
                Err(VerifyError::TimestampOutOfTolerance(300))
            );
        }
        // Re-stamping an old signature with a fresh t breaks it.
        let old = sign_timestamped(SECRET.as_bytes(), T - 3600, BODY);
        assert_eq!(
            verify(SECRET, &req_with(&format!("t={T},v1={old}"), BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        let header = signature_header(&[SECRET.as_bytes()], T, BODY);
        // Wrong secret, tampered body.
        assert_eq!(
            verify("whsec_other", &req_with(&header, BODY), T, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                &req_with(&header, br#"{"type":"message.status","status":"failed"}"#),
                T,
                TOL
            ),
            Err(VerifyError::SignatureMismatch)
        );
        // Missing / duplicated header.
        let none = request("POST", "https://h/cb", &[], BODY);
        assert_eq!(
            verify(SECRET, &none, T, TOL),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let dup = request(
            "POST",
            "https://h/cb",
            &[("Sandbox-Signature", &header), ("sandbox-signature", &header)],
            BODY,
        );
        assert_eq!(
            verify(SECRET, &dup, T, TOL),
            Err(VerifyError::DuplicateHeader(SIGNATURE_HEADER))
        );
        // Malformed values.
        let good = sign_timestamped(SECRET.as_bytes(), T, BODY);
        for bad in [
            String::new(),
            "garbage".into(),
            format!("v1={good}"),
            format!("t={T}"),
            format!("t=soon,v1={good}"),
            format!("t={T},t={T},v1={good}"),
            format!("t={T},v1={good},junk"),
        ] {
            assert!(
                matches!(
                    verify(SECRET, &req_with(&bad, BODY), T, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // Truncated and empty signatures.
        for sig in [&good[..63], ""] {
            assert_eq!(
                verify(SECRET, &req_with(&format!("t={T},v1={sig}"), BODY), T, TOL),
                Err(VerifyError::SignatureMismatch)
            );
        }
        // Empty secret never verifies, even against a header made with it.
        let empty = signature_header(&[b""], T, BODY);
        assert!(matches!(
            verify("", &req_with(&empty, BODY), T, TOL),
            Err(VerifyError::SecretUnusable(_))
        ));
        assert!(matches!(
            verify_timestamped(&empty, b"", BODY, T, TOL),
            Err(VerifyError::SecretUnusable(_))
        ));
    }
}
