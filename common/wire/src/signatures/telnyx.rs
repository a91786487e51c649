//! Telnyx webhooks: `telnyx-signature-ed25519` = base64 of the 64-byte Ed25519
//! signature over `"<telnyx-timestamp>|<raw body>"`, checked with the account's
//! public key (base64 of the raw 32-byte key, from Mission Control). The timestamp
//! (unix seconds) must be within the tolerance of now.

use super::{VerifyError, WebhookRequest, check_tolerance, decode_base64, encode_base64, parse_unix_seconds};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// Base64 signature of `"<timestamp>|<body>"` with the Ed25519 key whose 32-byte
/// seed is `secret_key_bytes` (for fakes).
pub fn sign(secret_key_bytes: &[u8; 32], timestamp: i64, body: &[u8]) -> String {
    let key = SigningKey::from_bytes(secret_key_bytes);
    encode_base64(&key.sign(&signed_message(&timestamp.to_string(), body)).to_bytes())
}

/// The base64 public key matching `secret_key_bytes`, as Telnyx shows it (for fakes).
pub fn public_key_b64(secret_key_bytes: &[u8; 32]) -> String {
    encode_base64(SigningKey::from_bytes(secret_key_bytes).verifying_key().as_bytes())
}

/// Verifies a Telnyx webhook against `public_key_b64`.
pub fn verify(
    public_key_b64: &str,
    req: &WebhookRequest,
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let key = parse_public_key(public_key_b64)?;
    let signature = req.single_header(SIGNATURE_HEADER)?;
    let timestamp = req.single_header(TIMESTAMP_HEADER)?;
    let ts = parse_unix_seconds(timestamp, "telnyx-timestamp header")?;
    let signature: [u8; 64] = decode_base64(signature, "telnyx-signature-ed25519 header")?
        .try_into()
        .map_err(|_| VerifyError::Malformed("telnyx-signature-ed25519 header (not 64 bytes)"))?;
    check_tolerance(ts, now_unix, tolerance)?;
    // Sign/verify over the header text as received: that is what Telnyx signed.
    // `verify_strict` also refuses malleable signatures and small-order keys.
    key.verify_strict(
        &signed_message(timestamp, &req.body),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| VerifyError::SignatureMismatch)
}

fn parse_public_key(public_key_b64: &str) -> Result<VerifyingKey, VerifyError> {
    let unusable = VerifyError::SecretUnusable("telnyx public key is not base64 of a 32-byte Ed25519 key");
    let bytes: [u8; 32] = decode_base64(public_key_b64, "telnyx public key")
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| unusable.clone())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| unusable)
}

fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(timestamp.len() + 1 + body.len());
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'|');
    msg.extend_from_slice(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::DEFAULT_TOLERANCE;
    use crate::signatures::test_support::*;
    use ed25519_dalek::Verifier as _;

    const TOL: Duration = DEFAULT_TOLERANCE;

    fn rfc_seed(id: &str) -> [u8; 32] {
        hex_of(&vector(id), "/inputs/secret_seed_hex").try_into().unwrap()
    }

    fn telnyx_request(sig: &str, ts: &str, body: &[u8]) -> WebhookRequest {
        request(
            "POST",
            "https://h/webhooks/telnyx",
            &[
                ("Content-Type", JSON),
                ("Telnyx-Signature-Ed25519", sig),
                ("Telnyx-Timestamp", ts),
            ],
            body,
        )
    }

    /// RFC 8032 section 7.1 TEST 1 and TEST 2: key derivation, signing and strict
    /// verification of the primitive.
    #[test]
    fn rfc8032_vectors() {
        for id in ["ed25519-rfc8032-test1", "ed25519-rfc8032-test2"] {
            let v = vector(id);
            let sk = SigningKey::from_bytes(&rfc_seed(id));
            let msg = hex_of(&v, "/inputs/message_hex");
            assert_eq!(
                hex::encode(sk.verifying_key().as_bytes()),
                str_of(&v, "/expected/public_key_hex"),
                "{id}"
            );
            let sig = sk.sign(&msg);
            assert_eq!(
                hex::encode(sig.to_bytes()),
                str_of(&v, "/expected/signature_hex"),
                "{id}"
            );
            let vk = VerifyingKey::from_bytes(&hex_of(&v, "/expected/public_key_hex").try_into().unwrap()).unwrap();
            assert!(
                vk.verify_strict(&msg, &sig).is_ok() && vk.verify(&msg, &sig).is_ok(),
                "{id}"
            );
            assert!(vk.verify_strict(b"other", &sig).is_err(), "{id}");
        }
    }

    /// DERIVED vector (RFC 8032 TEST 1 key): our signer reproduces it and the
    /// verifier honours its three expectations.
    #[test]
    fn derived_vector_round_trip() {
        let v = vector("telnyx-ed25519-DERIVED");
        let pk = str_of(&v, "/inputs/public_key_base64");
        let ts = str_of(&v, "/inputs/headers/telnyx-timestamp");
        let sig = str_of(&v, "/inputs/headers/telnyx-signature-ed25519");
        let body = str_of(&v, "/inputs/body").as_bytes();
        let now = v["inputs"]["now"].as_i64().unwrap();
        let seed = rfc_seed("ed25519-rfc8032-test1");
        assert_eq!(public_key_b64(&seed), pk);
        assert_eq!(sign(&seed, ts.parse().unwrap(), body), sig);

        assert_eq!(v["expected"]["valid"], true);
        assert_eq!(verify(pk, &telnyx_request(sig, ts, body), now, TOL), Ok(()));
        assert_eq!(v["expected"]["valid_if_body_has_extra_space"], false);
        let mut spaced = body.to_vec();
        spaced.push(b' ');
        assert_eq!(
            verify(pk, &telnyx_request(sig, ts, &spaced), now, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(v["expected"]["valid_if_now_is_1700000301"], false);
        assert_eq!(
            verify(pk, &telnyx_request(sig, ts, body), 1_700_000_301, TOL),
            Err(VerifyError::TimestampOutOfTolerance(300))
        );
    }

    fn fixture() -> ([u8; 32], String, i64, Vec<u8>) {
        let seed = [7u8; 32];
        let ts = 1_750_000_000;
        (
            seed,
            public_key_b64(&seed),
            ts,
            br#"{"data":{"event_type":"message.finalized"}}"#.to_vec(),
        )
    }

    #[test]
    fn timestamp_window() {
        let (seed, pk, ts, body) = fixture();
        let sig = sign(&seed, ts, &body);
        let req = telnyx_request(&sig, &ts.to_string(), &body);
        for now in [ts - 300, ts + 300] {
            assert_eq!(verify(&pk, &req, now, TOL), Ok(()), "edge {now}");
        }
        for now in [ts - 301, ts + 301] {
            assert_eq!(
                verify(&pk, &req, now, TOL),
                Err(VerifyError::TimestampOutOfTolerance(300))
            );
        }
        // Moving an old signature to a fresh timestamp breaks it.
        let stale = sign(&seed, ts - 3600, &body);
        assert_eq!(
            verify(&pk, &telnyx_request(&stale, &ts.to_string(), &body), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        let (seed, pk, ts, body) = fixture();
        let sig = sign(&seed, ts, &body);
        let t = ts.to_string();
        assert_eq!(verify(&pk, &telnyx_request(&sig, &t, &body), ts, TOL), Ok(()));
        // Another key's signature / another account's public key.
        let other = sign(&[8u8; 32], ts, &body);
        assert_eq!(
            verify(&pk, &telnyx_request(&other, &t, &body), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(&public_key_b64(&[8u8; 32]), &telnyx_request(&sig, &t, &body), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // Tampered body, timestamp text with the same value.
        assert_eq!(
            verify(&pk, &telnyx_request(&sig, &t, b"{}"), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(&pk, &telnyx_request(&sig, &format!("0{t}"), &body), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // Flipped signature bit.
        let mut raw = decode_base64(&sig, "s").unwrap();
        raw[10] ^= 1;
        assert_eq!(
            verify(&pk, &telnyx_request(&encode_base64(&raw), &t, &body), ts, TOL),
            Err(VerifyError::SignatureMismatch)
        );
        // Missing and duplicated headers.
        let url = "https://h/webhooks/telnyx";
        let no_sig = request("POST", url, &[("telnyx-timestamp", &t)], &body);
        assert_eq!(
            verify(&pk, &no_sig, ts, TOL),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let no_ts = request("POST", url, &[("telnyx-signature-ed25519", &sig)], &body);
        assert_eq!(
            verify(&pk, &no_ts, ts, TOL),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
        let dup_sig = request(
            "POST",
            url,
            &[
                ("telnyx-signature-ed25519", &other),
                ("telnyx-signature-ed25519", &sig),
                ("telnyx-timestamp", &t),
            ],
            &body,
        );
        assert_eq!(
            verify(&pk, &dup_sig, ts, TOL),
            Err(VerifyError::DuplicateHeader(SIGNATURE_HEADER))
        );
        let dup_ts = request(
            "POST",
            url,
            &[
                ("telnyx-signature-ed25519", &sig),
                ("telnyx-timestamp", &t),
                ("Telnyx-Timestamp", &t),
            ],
            &body,
        );
        assert_eq!(
            verify(&pk, &dup_ts, ts, TOL),
            Err(VerifyError::DuplicateHeader(TIMESTAMP_HEADER))
        );
        // Malformed signature (not base64, wrong length) and timestamp.
        for bad in [
            "***",
            "",
            &encode_base64(&raw[..63]),
            &encode_base64(&[raw.clone(), vec![0]].concat()),
        ] {
            assert!(
                matches!(
                    verify(&pk, &telnyx_request(bad, &t, &body), ts, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["", "now", "1.7e9", "+1750000000"] {
            assert!(
                matches!(
                    verify(&pk, &telnyx_request(&sig, bad, &body), ts, TOL),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unusable_public_keys() {
        let (seed, _, ts, body) = fixture();
        let req = telnyx_request(&sign(&seed, ts, &body), &ts.to_string(), &body);
        // Not base64, wrong length, empty, and a small-order point (the identity),
        // which `verify_strict` must never accept a signature for.
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            encode_base64(&b)
        };
        for pk in ["not base64", "", &encode_base64(&[1u8; 31]), &identity] {
            let got = verify(pk, &req, ts, TOL);
            assert!(
                matches!(
                    got,
                    Err(VerifyError::SecretUnusable(_) | VerifyError::SignatureMismatch)
                ),
                "{pk:?}: {got:?}"
            );
        }
        assert!(matches!(verify("", &req, ts, TOL), Err(VerifyError::SecretUnusable(_))));
    }
}
