//! Plivo `X-Plivo-Signature-V3`: `base64(HMAC-SHA256(auth_token, url + "." + nonce))`
//! with the nonce from `X-Plivo-Signature-V3-Nonce` and `url` rebuilt from the
//! request (`base` = the URL up to its query, exactly as received; `Q` = decoded
//! query parameters; `P` = decoded form body parameters):
//!
//! * GET: `P` and `Q` merged (a query name replaces a body name), then
//!   `base + "?" + join("&", name=value)` in name order; no `?` when empty.
//! * POST with a query: `base + "?" + join("&", name=value of Q) + "." + concat(name+value of P)`,
//!   without the `.` when `P` is empty.
//! * POST without a query: `base + ("?" if P is not empty) + concat(name+value of P)`.
//!
//! Names are sorted by bytes; a repeated name contributes each of its values in
//! sorted order. The header may hold several comma-separated signatures (one per
//! live token during rotation); any match is enough. There is no timestamp: the
//! nonce is the replay handle.

use super::{
    VerifyError, WebhookRequest, constant_time_eq, decode_base64, encode_base64, hmac_sha256, is_form_body,
    parse_query, require_secret, split_raw_url,
};
use std::collections::BTreeMap;

pub const SIGNATURE_HEADER: &str = "X-Plivo-Signature-V3";
pub const NONCE_HEADER: &str = "X-Plivo-Signature-V3-Nonce";

/// The V3 signature Plivo sends for a `method` (`GET` or anything else = POST)
/// request to `url` with form body `body_params` and `nonce` (for fakes).
pub fn sign_v3(auth_token: &str, method: &str, url: &str, body_params: &[(String, String)], nonce: &str) -> String {
    let is_get = method.eq_ignore_ascii_case("GET");
    encode_base64(&mac(auth_token, &signed_url(is_get, url, body_params), nonce))
}

/// Verifies `X-Plivo-Signature-V3` on a Plivo callback.
pub fn verify_v3(auth_token: &str, req: &WebhookRequest) -> Result<(), VerifyError> {
    require_secret(auth_token.as_bytes(), "plivo auth token is empty")?;
    let header = req.single_header(SIGNATURE_HEADER)?;
    let nonce = req.single_header(NONCE_HEADER)?;
    if nonce.is_empty() {
        return Err(VerifyError::Malformed("X-Plivo-Signature-V3-Nonce header (empty)"));
    }
    let is_get = if req.method.eq_ignore_ascii_case("GET") {
        true
    } else if req.method.eq_ignore_ascii_case("POST") {
        false
    } else {
        return Err(VerifyError::Malformed("HTTP method (Plivo signs GET and POST only)"));
    };
    // Only form parameters are part of the signed string: any other body would
    // travel unauthenticated, so it is refused rather than ignored.
    let body_params = if req.body.is_empty() {
        Vec::new()
    } else if !is_get && is_form_body(req) {
        req.form_params()
    } else {
        return Err(VerifyError::Malformed(
            "Plivo callback body (expected form parameters on POST)",
        ));
    };

    let candidates: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|s| decode_base64(s, "X-Plivo-Signature-V3 header").ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::Malformed("X-Plivo-Signature-V3 header"));
    }
    let expected = mac(auth_token, &signed_url(is_get, &req.url, &body_params), nonce);
    // Check every candidate (no early exit).
    let mut ok = false;
    for candidate in &candidates {
        ok |= constant_time_eq(&expected, candidate);
    }
    if ok {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

fn mac(auth_token: &str, url: &str, nonce: &str) -> Vec<u8> {
    hmac_sha256(auth_token.as_bytes(), &[url.as_bytes(), b".", nonce.as_bytes()])
}

/// Names in byte order, each with its values in byte order.
fn grouped(params: &[(String, String)]) -> BTreeMap<&str, Vec<&str>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in params {
        map.entry(k.as_str()).or_default().push(v.as_str());
    }
    for values in map.values_mut() {
        values.sort_unstable();
    }
    map
}

fn query_string(params: &BTreeMap<&str, Vec<&str>>) -> String {
    let mut pairs = Vec::new();
    for (k, values) in params {
        for v in values {
            pairs.push(format!("{k}={v}"));
        }
    }
    pairs.join("&")
}

fn concatenated(params: &BTreeMap<&str, Vec<&str>>) -> String {
    let mut out = String::new();
    for (k, values) in params {
        for v in values {
            out.push_str(k);
            out.push_str(v);
        }
    }
    out
}

/// The URL string V3 signs (see the module docs).
fn signed_url(is_get: bool, url: &str, body_params: &[(String, String)]) -> String {
    let (base, query, _fragment) = split_raw_url(url);
    let query = query.map(parse_query).unwrap_or_default();
    let mut out = base.to_owned();
    if is_get {
        let mut merged = grouped(body_params);
        merged.extend(grouped(&query));
        let qs = query_string(&merged);
        if !qs.is_empty() {
            out.push('?');
            out.push_str(&qs);
        }
    } else {
        let qs = query_string(&grouped(&query));
        if !qs.is_empty() || !body_params.is_empty() {
            out.push('?');
            out.push_str(&qs);
        }
        if !qs.is_empty() && !body_params.is_empty() {
            out.push('.');
        }
        out.push_str(&concatenated(&grouped(body_params)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::hmac_parts;
    use crate::signatures::test_support::*;
    use serde_json::Value;

    const TOKEN: &str = "MAXXXXXXXXXXXXXXXXXXXX-token";
    const NONCE: &str = "05429567804466091622";
    const URL: &str = "https://h.example/plivo/status/?tenant=t1";

    fn plivo_request(method: &str, url: &str, params: &[(String, String)], sig: &str, nonce: &str) -> WebhookRequest {
        let body = if method == "GET" || params.is_empty() {
            Vec::new()
        } else {
            form_body(params)
        };
        request(
            method,
            url,
            &[
                ("Content-Type", FORM),
                ("X-Plivo-Signature-V3", sig),
                ("X-Plivo-Signature-V3-Nonce", nonce),
            ],
            &body,
        )
    }

    fn status_params() -> Vec<(String, String)> {
        vec![
            ("MessageUUID".into(), "db3ce55a-7f1d-11e1-8ea7-1231380bc196".into()),
            ("Status".into(), "delivered".into()),
            ("To".into(), "+14155551234".into()),
            ("Text".into(), "a & b = c".into()),
        ]
    }

    /// The two V3 vectors (POST and GET): signer and verifier agree with Plivo's.
    #[test]
    fn v3_vectors() {
        let v3: Vec<Value> = vectors_for("plivo")
            .into_iter()
            .filter(|v| v["scheme"].as_str().unwrap().starts_with("X-Plivo-Signature-V3"))
            .collect();
        assert_eq!(v3.len(), 2);
        for v in v3 {
            let token = str_of(&v, "/inputs/auth_token");
            let nonce = str_of(&v, "/inputs/nonce");
            let method = str_of(&v, "/inputs/method");
            let uri = str_of(&v, "/inputs/uri");
            let params = params_of(&v, "/inputs/params");
            let expected = str_of(&v, "/expected/signature");
            assert_eq!(sign_v3(token, method, uri, &params, nonce), expected, "{}", v["id"]);

            let req = if method == "GET" {
                // A GET carries its parameters in the query.
                let query = String::from_utf8(form_body(&params)).unwrap();
                plivo_request("GET", &format!("{uri}&{query}"), &[], expected, nonce)
            } else {
                plivo_request("POST", uri, &params, expected, nonce)
            };
            assert_eq!(verify_v3(token, &req), Ok(()), "{}", v["id"]);
            // Rotation list with the real one second.
            let listed = format!("bm90IGl0,{expected}");
            let mut req2 = req.clone();
            req2.headers.retain(|(k, _)| k != "X-Plivo-Signature-V3");
            req2.headers.push(("X-Plivo-Signature-V3".into(), listed));
            assert_eq!(verify_v3(token, &req2), Ok(()), "{} listed", v["id"]);
        }
    }

    /// V2 and V1 are older schemes with their own headers: check the vectors with the
    /// primitives, and that neither value nor header passes as V3.
    #[test]
    fn legacy_v1_v2_vectors_are_not_v3() {
        let v2 = vector("plivo-v2");
        let (token, nonce, uri) = (
            str_of(&v2, "/inputs/auth_token"),
            str_of(&v2, "/inputs/nonce"),
            str_of(&v2, "/inputs/uri"),
        );
        let expected_v2 = str_of(&v2, "/expected/signature");
        assert_eq!(
            encode_base64(&hmac_sha256(token.as_bytes(), &[uri.as_bytes(), nonce.as_bytes()])),
            expected_v2
        );
        assert_eq!(v2["expected"]["valid_with_token_my_auth_tokens"], false);
        assert_ne!(
            encode_base64(&hmac_sha256(b"my_auth_tokens", &[uri.as_bytes(), nonce.as_bytes()])),
            expected_v2
        );
        // A V2 value in the V3 header does not verify (V3 inserts "." before the nonce).
        let as_v3 = plivo_request("POST", uri, &[], expected_v2, nonce);
        assert_eq!(verify_v3(token, &as_v3), Err(VerifyError::SignatureMismatch));
        // A request with only V2 headers is missing V3.
        let only_v2 = request(
            "POST",
            uri,
            &[
                ("X-Plivo-Signature-V2", expected_v2),
                ("X-Plivo-Signature-V2-Nonce", nonce),
            ],
            b"",
        );
        assert_eq!(
            verify_v3(token, &only_v2),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );

        for id in ["plivo-v1-legacy", "plivo-v1-legacy-space"] {
            let v1 = vector(id);
            let token = str_of(&v1, "/inputs/auth_token");
            let uri = str_of(&v1, "/inputs/uri");
            let params = params_of(&v1, "/inputs/params");
            let mut signed = uri.to_owned();
            signed.push_str(&concatenated(&grouped(&params)));
            let v1_sig = encode_base64(&hmac_parts::<hmac::Hmac<sha1::Sha1>>(
                token.as_bytes(),
                &[signed.as_bytes()],
            ));
            assert_eq!(v1_sig, str_of(&v1, "/expected/signature"), "{id}");
            let as_v3 = plivo_request("POST", uri, &params, &v1_sig, "n");
            assert_eq!(verify_v3(token, &as_v3), Err(VerifyError::SignatureMismatch), "{id}");
        }
    }

    #[test]
    fn signed_url_shapes() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let body = p(&[("b", "2"), ("a", "1"), ("a", "0")]);
        assert_eq!(
            signed_url(false, "https://h/x?z=9&y=8", &body),
            "https://h/x?y=8&z=9.a0a1b2"
        );
        assert_eq!(signed_url(false, "https://h/x?z=9", &[]), "https://h/x?z=9");
        assert_eq!(signed_url(false, "https://h/x", &body), "https://h/x?a0a1b2");
        assert_eq!(signed_url(false, "https://h/x", &[]), "https://h/x");
        assert_eq!(signed_url(false, "https://h/x?", &[]), "https://h/x");
        assert_eq!(
            signed_url(true, "https://h/x?z=9&a=q%20r&z=1#frag", &[]),
            "https://h/x?a=q r&z=1&z=9"
        );
        assert_eq!(signed_url(true, "https://h/x", &[]), "https://h/x");
        // GET: a query name replaces the same body name.
        assert_eq!(signed_url(true, "https://h/x?a=q", &body), "https://h/x?a=q&b=2");
    }

    #[test]
    fn round_trips_for_every_shape() {
        let params = status_params();
        for (method, url, body) in [
            ("POST", URL, params.clone()),
            ("POST", "https://h.example/plivo/status/", params.clone()),
            ("POST", URL, Vec::new()),
            ("GET", "https://h.example/plivo/status/", Vec::new()),
        ] {
            let url = if method == "GET" {
                format!("{url}?{}", String::from_utf8(form_body(&params)).unwrap())
            } else {
                url.to_owned()
            };
            let sig = sign_v3(TOKEN, method, &url, &body, NONCE);
            assert_eq!(
                verify_v3(TOKEN, &plivo_request(method, &url, &body, &sig, NONCE)),
                Ok(()),
                "{method} {url}"
            );
            // Lower-case method names are the same method.
            let mut lower = plivo_request(method, &url, &body, &sig, NONCE);
            lower.method = method.to_lowercase();
            assert_eq!(verify_v3(TOKEN, &lower), Ok(()), "{method} {url} lower");
        }
    }

    #[test]
    fn forgeries_are_rejected() {
        let params = status_params();
        let sig = sign_v3(TOKEN, "POST", URL, &params, NONCE);
        let ok = |req: &WebhookRequest| verify_v3(TOKEN, req);
        assert_eq!(ok(&plivo_request("POST", URL, &params, &sig, NONCE)), Ok(()));

        // Wrong token; another nonce; GET instead of POST.
        assert_eq!(
            verify_v3("other", &plivo_request("POST", URL, &params, &sig, NONCE)),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            ok(&plivo_request("POST", URL, &params, &sig, "1")),
            Err(VerifyError::SignatureMismatch)
        );
        let q = String::from_utf8(form_body(&params)).unwrap();
        assert_eq!(
            ok(&plivo_request("GET", &format!("{URL}&{q}"), &[], &sig, NONCE)),
            Err(VerifyError::SignatureMismatch)
        );
        // Tampered body param, extra param, tampered query, tampered path/host.
        let mut tampered = params.clone();
        tampered[1].1 = "failed".into();
        assert_eq!(
            ok(&plivo_request("POST", URL, &tampered, &sig, NONCE)),
            Err(VerifyError::SignatureMismatch)
        );
        let mut extra = params.clone();
        extra.push(("ErrorCode".into(), "20".into()));
        assert_eq!(
            ok(&plivo_request("POST", URL, &extra, &sig, NONCE)),
            Err(VerifyError::SignatureMismatch)
        );
        for url in [
            "https://h.example/plivo/status/?tenant=t2",
            "https://h.example/plivo/status/?tenant=t1&x=1",
            "https://h.example/plivo/other/?tenant=t1",
            "https://evil.example/plivo/status/?tenant=t1",
        ] {
            assert_eq!(
                ok(&plivo_request("POST", url, &params, &sig, NONCE)),
                Err(VerifyError::SignatureMismatch),
                "{url}"
            );
        }
        // Missing / duplicated headers.
        let body = form_body(&params);
        let no_sig = request(
            "POST",
            URL,
            &[("Content-Type", FORM), ("X-Plivo-Signature-V3-Nonce", NONCE)],
            &body,
        );
        assert_eq!(ok(&no_sig), Err(VerifyError::MissingHeader(SIGNATURE_HEADER)));
        let no_nonce = request(
            "POST",
            URL,
            &[("Content-Type", FORM), ("X-Plivo-Signature-V3", &sig)],
            &body,
        );
        assert_eq!(ok(&no_nonce), Err(VerifyError::MissingHeader(NONCE_HEADER)));
        let mut dup = plivo_request("POST", URL, &params, &sig, NONCE);
        dup.headers.push(("x-plivo-signature-v3".into(), sig.clone()));
        assert_eq!(ok(&dup), Err(VerifyError::DuplicateHeader(SIGNATURE_HEADER)));
        let mut dup_nonce = plivo_request("POST", URL, &params, &sig, NONCE);
        dup_nonce
            .headers
            .push(("x-plivo-signature-v3-nonce".into(), "1".into()));
        assert_eq!(ok(&dup_nonce), Err(VerifyError::DuplicateHeader(NONCE_HEADER)));
        // Malformed: no decodable signature, empty nonce, other methods, non-form body.
        for bad in ["", ",", "!!!", "!!!,???"] {
            assert!(
                matches!(
                    ok(&plivo_request("POST", URL, &params, bad, NONCE)),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ok(&plivo_request("POST", URL, &params, &sig, "")),
            Err(VerifyError::Malformed(_))
        ));
        let mut put = plivo_request("POST", URL, &params, &sig, NONCE);
        put.method = "PUT".into();
        assert!(matches!(ok(&put), Err(VerifyError::Malformed(_))));
        let json = request(
            "POST",
            URL,
            &[
                ("Content-Type", JSON),
                ("X-Plivo-Signature-V3", &sig),
                ("X-Plivo-Signature-V3-Nonce", NONCE),
            ],
            b"{}",
        );
        assert!(matches!(ok(&json), Err(VerifyError::Malformed(_))));
        let mut get_with_body = plivo_request("POST", URL, &params, &sig, NONCE);
        get_with_body.method = "GET".into();
        assert!(matches!(ok(&get_with_body), Err(VerifyError::Malformed(_))));
        // Empty token.
        let empty = sign_v3("", "POST", URL, &params, NONCE);
        assert!(matches!(
            verify_v3("", &plivo_request("POST", URL, &params, &empty, NONCE)),
            Err(VerifyError::SecretUnusable(_))
        ));
    }

    #[test]
    fn rotated_signature_lists() {
        let params = status_params();
        let sig = sign_v3(TOKEN, "POST", URL, &params, NONCE);
        let old = sign_v3("old-token", "POST", URL, &params, NONCE);
        for header in [
            format!("{old},{sig}"),
            format!("{sig},{old}"),
            format!("{old}, {sig} "),
            format!("!!!,{sig}"),
        ] {
            assert_eq!(
                verify_v3(TOKEN, &plivo_request("POST", URL, &params, &header, NONCE)),
                Ok(()),
                "{header}"
            );
        }
        let other = sign_v3("third", "POST", URL, &params, NONCE);
        assert_eq!(
            verify_v3(
                TOKEN,
                &plivo_request("POST", URL, &params, &format!("{old},{other}"), NONCE)
            ),
            Err(VerifyError::SignatureMismatch)
        );
    }
}
