//! Bandwidth callbacks carry no signature: the Application is configured with HTTP
//! Basic credentials that Bandwidth sends in `Authorization`. We compare both parts
//! in constant time, always both, so the response time says nothing about which
//! part was wrong. There is no timestamp: dedupe on the message id and event type.

use super::{VerifyError, WebhookRequest, constant_time_eq, require_secret};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// The `Authorization` header value Bandwidth sends for these credentials (fakes).
pub fn authorization_value(username: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Verifies the HTTP Basic credentials of a Bandwidth callback.
pub fn verify(username: &str, password: &str, req: &WebhookRequest) -> Result<(), VerifyError> {
    require_secret(username.as_bytes(), "bandwidth callback username is empty")?;
    require_secret(password.as_bytes(), "bandwidth callback password is empty")?;
    let header = req.single_header(AUTHORIZATION_HEADER)?;
    let encoded = match header.trim().split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        _ => {
            return Err(VerifyError::Malformed(
                "Authorization header (expected Basic credentials)",
            ));
        }
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| VerifyError::Malformed("Authorization header (credentials are not base64)"))?;
    // RFC 7617: the user-id cannot contain ':', so the first one separates.
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(VerifyError::Malformed("Authorization header (no ':' in credentials)"))?;
    let (given_user, given_pass) = (&decoded[..colon], &decoded[colon + 1..]);

    // Compare digests rather than the raw values: `constant_time_eq` returns early on a
    // length difference, which would leak the configured lengths.
    let user_ok = constant_time_eq(&Sha256::digest(given_user), &Sha256::digest(username.as_bytes()));
    let pass_ok = constant_time_eq(&Sha256::digest(given_pass), &Sha256::digest(password.as_bytes()));
    // `&` (not `&&`): both comparisons always run.
    if user_ok & pass_ok {
        Ok(())
    } else {
        Err(VerifyError::BadCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::test_support::*;

    const USER: &str = "bw-callbacks";
    const PASS: &str = "s3cr3t:with:colons";

    fn with_auth(value: &str) -> WebhookRequest {
        request(
            "POST",
            "https://h/webhooks/bandwidth",
            &[("Content-Type", JSON), ("Authorization", value)],
            b"[]",
        )
    }

    #[test]
    fn valid_credentials() {
        // PASS contains ':' itself: only the first ':' separates user from password.
        assert_eq!(verify(USER, PASS, &with_auth(&authorization_value(USER, PASS))), Ok(()));
        // Scheme name is case-insensitive (RFC 7617); header name too.
        let lower = authorization_value(USER, PASS).replace("Basic", "basic");
        let req = request("POST", "https://h", &[("authorization", &lower)], b"[]");
        assert_eq!(verify(USER, PASS, &req), Ok(()));
        // RFC 7617 example pair.
        assert_eq!(
            authorization_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn wrong_credentials() {
        for (u, p) in [
            (USER, "wrong"),
            ("wrong", PASS),
            ("wrong", "wrong"),
            (USER, ""),
            ("", PASS),
            (USER, &PASS[..PASS.len() - 1]),
            (&USER.to_uppercase(), PASS),
        ] {
            assert_eq!(
                verify(USER, PASS, &with_auth(&authorization_value(u, p))),
                Err(VerifyError::BadCredentials),
                "{u}:{p}"
            );
        }
        // Moving the split point (user gets part of the password) does not help.
        let shifted = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}s3cr3t:with:colons"))
        );
        assert_eq!(
            verify(USER, PASS, &with_auth(&shifted)),
            Err(VerifyError::BadCredentials)
        );
    }

    #[test]
    fn missing_duplicated_and_malformed_headers() {
        let none = request("POST", "https://h", &[], b"[]");
        assert_eq!(
            verify(USER, PASS, &none),
            Err(VerifyError::MissingHeader(AUTHORIZATION_HEADER))
        );
        let good = authorization_value(USER, PASS);
        let dup = request(
            "POST",
            "https://h",
            &[("Authorization", &good), ("Authorization", &good)],
            b"[]",
        );
        assert_eq!(
            verify(USER, PASS, &dup),
            Err(VerifyError::DuplicateHeader(AUTHORIZATION_HEADER))
        );
        let bearer = format!("Bearer {}", &good[6..]);
        let no_colon = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("nocolon"));
        for bad in ["", "Basic", "Basic !!!", &bearer, &no_colon, &good[6..]] {
            assert!(
                matches!(verify(USER, PASS, &with_auth(bad)), Err(VerifyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_configuration_is_unusable() {
        let req = with_auth(&authorization_value("", ""));
        assert!(matches!(verify("", "", &req), Err(VerifyError::SecretUnusable(_))));
        assert!(matches!(
            verify(USER, "", &with_auth(&authorization_value(USER, ""))),
            Err(VerifyError::SecretUnusable(_))
        ));
    }
}
