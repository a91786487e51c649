//! Twilio `X-Twilio-Signature`: `base64(HMAC-SHA1(auth_token, url + params))`.
//!
//! * `url` is the full URL Twilio requested, exactly as configured (scheme, userinfo,
//!   host, port, path, query). Because proxies and Twilio disagree about default
//!   ports, the URL is tried both with the port removed and with the scheme's
//!   default port added; either may match (as Twilio's own SDKs do).
//! * Form POSTs append, for every parameter name in byte order, `name + value` for
//!   each distinct value in byte order (no separators).
//! * GET requests sign the URL alone (their parameters are in its query).
//! * JSON (any non-form) bodies: the URL carries `bodySHA256=<hex sha256(body)>`,
//!   the parameters are empty and the body hash must match as well. A non-form
//!   body without `bodySHA256` is refused: nothing would authenticate it.
//!
//! There is no timestamp or nonce, hence no replay window: callers dedupe on
//! `(MessageSid, MessageStatus)`.

use super::{
    VerifyError, WebhookRequest, constant_time_eq, decode_base64, encode_base64, hmac_parts, is_form_body, parse_query,
    require_secret, sha256_hex, split_raw_url,
};
use std::collections::{BTreeMap, BTreeSet};

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// Query parameter carrying the hex SHA-256 of a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// `base64(HMAC-SHA1(auth_token, url + canonical(params)))` — what Twilio puts in
/// `X-Twilio-Signature` for a request to `url` with form parameters `params`
/// (pass `&[]` for GET and JSON-body requests).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    encode_base64(&mac(auth_token, url, &canonical_params(params)))
}

/// Verifies `X-Twilio-Signature` on `req` (see the module docs for the rules).
pub fn verify(auth_token: &str, req: &WebhookRequest) -> Result<(), VerifyError> {
    require_secret(auth_token.as_bytes(), "twilio auth token is empty")?;
    let header = req.single_header(SIGNATURE_HEADER)?;
    let given = decode_base64(header, "X-Twilio-Signature header")?;

    let query = split_raw_url(&req.url).1.map(parse_query).unwrap_or_default();
    let mut body_hashes = query.iter().filter(|(k, _)| k == BODY_SHA256_PARAM).map(|(_, v)| v);
    let (params, body_hash_ok) = match (body_hashes.next(), body_hashes.next()) {
        // Two hashes would let a forger pick which one we check.
        (Some(_), Some(_)) => {
            return Err(VerifyError::Malformed("bodySHA256 query parameter (repeated)"));
        }
        (Some(expected), None) => {
            // JSON variant: the URL (which carries the hash) is signed with no params.
            let actual = sha256_hex(&req.body);
            (String::new(), constant_time_eq(actual.as_bytes(), expected.as_bytes()))
        }
        (None, _) if req.body.is_empty() => (String::new(), true),
        (None, _) if is_form_body(req) => (canonical_params(&req.form_params()), true),
        // A body that is neither form parameters nor covered by bodySHA256 is not
        // authenticated by the signature at all.
        (None, _) => return Err(VerifyError::BodyHashMismatch),
    };

    // Evaluate every URL variant (no early exit) and only then decide.
    let mut signature_ok = false;
    for url in url_variants(&req.url) {
        signature_ok |= constant_time_eq(&mac(auth_token, &url, &params), &given);
    }
    if !signature_ok {
        Err(VerifyError::SignatureMismatch)
    } else if !body_hash_ok {
        Err(VerifyError::BodyHashMismatch)
    } else {
        Ok(())
    }
}

fn mac(auth_token: &str, url: &str, canonical: &str) -> Vec<u8> {
    hmac_parts::<HmacSha1>(auth_token.as_bytes(), &[url.as_bytes(), canonical.as_bytes()])
}

/// Names in byte order, de-duplicated; for each name its distinct values in byte
/// order; each contributes `name + value`.
fn canonical_params(params: &[(String, String)]) -> String {
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        grouped.entry(k.as_str()).or_default().insert(v.as_str());
    }
    let mut out = String::new();
    for (name, values) in grouped {
        for value in values {
            out.push_str(name);
            out.push_str(value);
        }
    }
    out
}

/// The URL with its port removed and with the scheme's default port added (each
/// only when it differs from the other); the received URL is always one of them.
fn url_variants(url: &str) -> Vec<String> {
    let Some(auth) = Authority::find(url) else {
        return vec![url.to_owned()];
    };
    let without_port = format!("{}{}", &url[..auth.port_start], &url[auth.end..]);
    let with_port = if auth.port_start == auth.end {
        let scheme = &url[..auth.start - 3];
        let default = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else if scheme.eq_ignore_ascii_case("http") {
            ":80"
        } else {
            ""
        };
        format!("{}{}{}", &url[..auth.end], default, &url[auth.end..])
    } else {
        url.to_owned()
    };
    if with_port == without_port {
        vec![with_port]
    } else {
        vec![without_port, with_port]
    }
}

/// Byte offsets of the authority in a raw URL: `start` (after `://`), `port_start`
/// (the `:` before the port, or `end` when there is no port) and `end`.
struct Authority {
    start: usize,
    port_start: usize,
    end: usize,
}

impl Authority {
    fn find(url: &str) -> Option<Self> {
        let start = url.find("://")? + 3;
        let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
        let authority = &url[start..end];
        // The host starts after any userinfo (`user:pass@`), whose ':' is not a port.
        let host_start = authority.rfind('@').map_or(0, |i| i + 1);
        let host_port = &authority[host_start..];
        // For IPv6 literals the port follows the closing bracket.
        let after_host = host_port.rfind(']').map_or(0, |i| i + 1);
        let port_start = match host_port[after_host..].rfind(':') {
            Some(i) if host_port[after_host + i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                start + host_start + after_host + i
            }
            _ => end,
        };
        Some(Self { start, port_start, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::test_support::*;
    use serde_json::Value;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn base_params() -> Vec<(String, String)> {
        params_of(&vector("twilio-default"), "/inputs/params")
    }

    fn form_request(url: &str, params: &[(String, String)], signature: &str) -> WebhookRequest {
        request(
            "POST",
            url,
            &[("Content-Type", FORM), ("X-Twilio-Signature", signature)],
            &form_body(params),
        )
    }

    fn json_body() -> Vec<u8> {
        str_of(&vector("twilio-body-hash"), "/inputs/body").as_bytes().to_vec()
    }

    /// Every signature vector: `sign` reproduces it and `verify` accepts a request
    /// to that exact URL carrying those params (form) or that body (JSON variant).
    #[test]
    fn signature_vectors() {
        let sig_vectors: Vec<Value> = vectors_for("twilio")
            .into_iter()
            .filter(|v| v["scheme"] == "X-Twilio-Signature HMAC-SHA1 base64")
            .collect();
        assert_eq!(sig_vectors.len(), 8);
        for v in sig_vectors {
            let token = str_of(&v, "/inputs/auth_token");
            let url = str_of(&v, "/inputs/url_signed");
            let params = params_of(&v, "/inputs/params");
            let expected = str_of(&v, "/expected/signature");
            assert_eq!(sign(token, url, &params), expected, "{}", v["id"]);

            let req = if url.contains("bodySHA256=") {
                request(
                    "POST",
                    url,
                    &[("Content-Type", JSON), ("X-Twilio-Signature", expected)],
                    &json_body(),
                )
            } else {
                form_request(url, &params, expected)
            };
            assert_eq!(verify(token, &req), Ok(()), "{}", v["id"]);
        }
    }

    #[test]
    fn body_hash_vector() {
        let v = vector("twilio-body-hash");
        assert_eq!(
            sha256_hex(str_of(&v, "/inputs/body").as_bytes()),
            str_of(&v, "/expected/sha256_hex")
        );
    }

    #[test]
    fn wrong_signature_vector() {
        let v = vector("twilio-wrong-signature");
        assert_eq!(v["expected"]["valid"], false);
        let req = form_request(
            str_of(&v, "/inputs/request_url"),
            &params_of(&v, "/inputs/params"),
            str_of(&v, "/inputs/header"),
        );
        // The vector's header is not even valid base64 of a 20-byte MAC.
        assert!(verify(str_of(&v, "/inputs/auth_token"), &req).is_err());
    }

    #[test]
    fn body_without_body_sha256_vector() {
        let v = vector("twilio-body-without-bodysha-param");
        assert_eq!(v["expected"]["valid"], false);
        let req = request(
            "POST",
            str_of(&v, "/inputs/request_url"),
            &[
                ("Content-Type", JSON),
                ("X-Twilio-Signature", str_of(&v, "/inputs/header")),
            ],
            str_of(&v, "/inputs/body").as_bytes(),
        );
        assert_eq!(
            verify(str_of(&v, "/inputs/auth_token"), &req),
            Err(VerifyError::BodyHashMismatch)
        );
    }

    #[test]
    fn port_variants() {
        let params = base_params();
        // Signed without a port, received with the default one (and vice versa).
        let sig = sign(TOKEN, URL, &params);
        assert_eq!(
            verify(
                TOKEN,
                &form_request("https://mycompany.com:443/myapp.php?foo=1&bar=2", &params, &sig)
            ),
            Ok(())
        );
        let sig80 = str_of(&vector("twilio-http-with-80"), "/expected/signature").to_owned();
        assert_eq!(
            verify(
                TOKEN,
                &form_request("http://mycompany.com/myapp.php?foo=1&bar=2", &params, &sig80)
            ),
            Ok(())
        );
        // A non-default port: signed without it is accepted too (port removed).
        let sig_plain = sign(TOKEN, "http://mycompany.com/myapp.php?foo=1&bar=2", &params);
        assert_eq!(
            verify(
                TOKEN,
                &form_request("http://mycompany.com:1234/myapp.php?foo=1&bar=2", &params, &sig_plain)
            ),
            Ok(())
        );
        // ...but the port is not free: a different port is a different URL.
        let sig1234 = str_of(&vector("twilio-http-port-1234"), "/expected/signature").to_owned();
        assert_eq!(
            verify(
                TOKEN,
                &form_request("http://mycompany.com:4321/myapp.php?foo=1&bar=2", &params, &sig1234)
            ),
            Err(VerifyError::SignatureMismatch)
        );
        // https's default port is 443, not 80.
        let sig_https80 = sign(TOKEN, "https://mycompany.com:80/myapp.php?foo=1&bar=2", &params);
        assert_eq!(
            verify(TOKEN, &form_request(URL, &params, &sig_https80)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn url_variant_parsing() {
        assert_eq!(url_variants("https://h/p"), vec!["https://h/p", "https://h:443/p"]);
        assert_eq!(
            url_variants("http://h:80/p?q=1"),
            vec!["http://h/p?q=1", "http://h:80/p?q=1"]
        );
        assert_eq!(
            url_variants("https://u:p@h?x"),
            vec!["https://u:p@h?x", "https://u:p@h:443?x"]
        );
        assert_eq!(
            url_variants("https://u:p@h:8443"),
            vec!["https://u:p@h", "https://u:p@h:8443"]
        );
        assert_eq!(
            url_variants("https://[::1]:8443/a"),
            vec!["https://[::1]/a", "https://[::1]:8443/a"]
        );
        assert_eq!(
            url_variants("https://[::1]/a"),
            vec!["https://[::1]/a", "https://[::1]:443/a"]
        );
        assert_eq!(url_variants("not a url"), vec!["not a url"]);
        assert_eq!(url_variants("ftp://h/a"), vec!["ftp://h/a"]);
    }

    #[test]
    fn get_request_signs_the_url_only() {
        let url = "https://mycompany.com/status?MessageSid=SM1&MessageStatus=delivered";
        let sig = sign(TOKEN, url, &[]);
        let req = request("GET", url, &[("X-Twilio-Signature", &sig)], b"");
        assert_eq!(verify(TOKEN, &req), Ok(()));
        let tampered = request(
            "GET",
            &url.replace("delivered", "failed"),
            &[("X-Twilio-Signature", &sig)],
            b"",
        );
        assert_eq!(verify(TOKEN, &tampered), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn multivalue_params_are_deduplicated_and_sorted() {
        let v = vector("twilio-multivalue-dedup-sort");
        let mut params = params_of(&v, "/inputs/params");
        params.reverse();
        let expected = str_of(&v, "/expected/signature");
        assert_eq!(verify(TOKEN, &form_request(URL, &params, expected)), Ok(()));
        // Dropping one of the distinct values changes the signature.
        params.retain(|(k, v)| !(k == "Digits" && v == "5678"));
        assert_eq!(
            verify(TOKEN, &form_request(URL, &params, expected)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        let params = base_params();
        let sig = sign(TOKEN, URL, &params);
        assert_eq!(verify(TOKEN, &form_request(URL, &params, &sig)), Ok(()));

        // Wrong token.
        assert_eq!(
            verify("54321", &form_request(URL, &params, &sig)),
            Err(VerifyError::SignatureMismatch)
        );
        // Tampered param value, added param, removed param.
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert_eq!(
            verify(TOKEN, &form_request(URL, &tampered, &sig)),
            Err(VerifyError::SignatureMismatch)
        );
        let mut added = params.clone();
        added.push(("MessageStatus".into(), "delivered".into()));
        assert_eq!(
            verify(TOKEN, &form_request(URL, &added, &sig)),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(TOKEN, &form_request(URL, &params[1..], &sig)),
            Err(VerifyError::SignatureMismatch)
        );
        // Tampered URL (path, query, host, scheme).
        for url in [
            "https://mycompany.com/other.php?foo=1&bar=2",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            "https://evil.example/myapp.php?foo=1&bar=2",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
        ] {
            assert_eq!(
                verify(TOKEN, &form_request(url, &params, &sig)),
                Err(VerifyError::SignatureMismatch),
                "{url}"
            );
        }
        // Missing, duplicated, malformed header.
        let body = form_body(&params);
        let missing = request("POST", URL, &[("Content-Type", FORM)], &body);
        assert_eq!(
            verify(TOKEN, &missing),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let dup = request(
            "POST",
            URL,
            &[
                ("Content-Type", FORM),
                ("x-twilio-signature", &sig),
                ("X-Twilio-Signature", &sig),
            ],
            &body,
        );
        assert_eq!(verify(TOKEN, &dup), Err(VerifyError::DuplicateHeader(SIGNATURE_HEADER)));
        for bad in ["not base64!", "", "RSOYDt4T1cUTdK1PDd93/VVr8B8"] {
            assert!(
                matches!(
                    verify(TOKEN, &form_request(URL, &params, bad)),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // A truncated (but well-formed) MAC.
        let short = encode_base64(&decode_base64(&sig, "t").unwrap()[..19]);
        assert_eq!(
            verify(TOKEN, &form_request(URL, &params, &short)),
            Err(VerifyError::SignatureMismatch)
        );
        // Empty token never verifies anything.
        assert!(matches!(
            verify("", &form_request(URL, &params, &sign("", URL, &params))),
            Err(VerifyError::SecretUnusable(_))
        ));
    }

    #[test]
    fn json_body_forgeries_are_rejected() {
        let v = vector("twilio-body-sha256");
        let url = str_of(&v, "/inputs/url_signed");
        let sig = str_of(&v, "/expected/signature");
        let json = |body: &[u8], url: &str, sig: &str| {
            request(
                "POST",
                url,
                &[("Content-Type", JSON), ("X-Twilio-Signature", sig)],
                body,
            )
        };
        assert_eq!(verify(TOKEN, &json(&json_body(), url, sig)), Ok(()));
        // Tampered body: the signature (over the URL) still matches, the hash does not.
        let mut body = json_body();
        body.push(b' ');
        assert_eq!(
            verify(TOKEN, &json(&body, url, sig)),
            Err(VerifyError::BodyHashMismatch)
        );
        // Swapping in the hash of the forged body breaks the URL signature.
        let forged_url = url.replace(&sha256_hex(&json_body()), &sha256_hex(&body));
        assert_eq!(
            verify(TOKEN, &json(&body, &forged_url, sig)),
            Err(VerifyError::SignatureMismatch)
        );
        // A second bodySHA256 is ambiguous.
        let twice = format!("{url}&bodySHA256={}", sha256_hex(&body));
        assert!(matches!(
            verify(TOKEN, &json(&body, &twice, sig)),
            Err(VerifyError::Malformed(_))
        ));
        // Form-encoded content type does not bypass the hash when bodySHA256 is present.
        let as_form = request(
            "POST",
            url,
            &[("Content-Type", FORM), ("X-Twilio-Signature", sig)],
            b"a=b",
        );
        assert_eq!(verify(TOKEN, &as_form), Err(VerifyError::BodyHashMismatch));
        // A body without content type and without bodySHA256 is unauthenticated.
        let bare = request(
            "POST",
            URL,
            &[("X-Twilio-Signature", &sign(TOKEN, URL, &[]))],
            &json_body(),
        );
        assert_eq!(verify(TOKEN, &bare), Err(VerifyError::BodyHashMismatch));
    }
}
