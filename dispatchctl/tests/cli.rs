//! Runs the built `dispatchctl` binary. Every test here is offline: no AWS, no emulator.

use dispatch_common::providers::credentials::VonageSignatureMethod;
use dispatch_common::signatures::vonage::{VonageJwtClaims, sign_messages_jwt, sign_sms};
use dispatch_common::signatures::{encode_base64, sandbox};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dispatchctl");

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs dispatchctl with a clean deployment environment (nothing points at AWS).
fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in [
        "TABLE_NAME",
        "ROUTE_QUEUE_URL",
        "ENABLED_PROVIDERS",
        "AWS_ENDPOINT_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("dispatchctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// A fresh scratch file (tests run in parallel: every call gets its own name).
fn temp_file(name: &str, contents: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dispatchctl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, contents).unwrap();
    path
}

fn preview(args: &[&str]) -> Value {
    let o = run(&[&["preview"], args].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.trim().lines().count(),
        1,
        "exactly one JSON line: {out}"
    );
    serde_json::from_str(out.trim()).expect("JSON")
}

// ---------------------------------------------------------------------------------
// preview

#[test]
fn preview_normalises_a_national_gb_number() {
    let v = preview(&[
        "--to",
        "07400 123456",
        "--region",
        "GB",
        "--body",
        "Officers are on their way.",
    ]);
    assert_eq!(
        v,
        json!({"to": "+447400123456", "valid": true, "error": null, "number_type": "mobile", "encoding": "GSM-7", "segments": 1,
               "ucs2_chars": [], "smart_encoding": {"replaced": 0, "encoding": "GSM-7", "segments": 1}})
    );
}

#[test]
fn preview_names_a_landline_and_what_smart_encoding_would_save() {
    let v = preview(&["--to", "+442079460000", "--body", "We\u{2019}ll be there \u{2013} soon"]);
    assert_eq!(v["number_type"], "fixed_line");
    assert_eq!((v["encoding"].as_str(), v["ucs2_chars"].as_array().map(Vec::len)), (Some("UCS-2"), Some(2)), "{v}");
    assert_eq!(v["smart_encoding"], json!({"replaced": 2, "encoding": "GSM-7", "segments": 1}));
}

#[test]
fn preview_counts_an_emoji_body_as_ucs2() {
    let v = preview(&["--to", "+447400123456", "--body", "Help is coming 🚑"]);
    assert_eq!(v["encoding"], "UCS-2");
    assert_eq!(v["segments"], 1);
    assert_eq!(v["valid"], true);

    // 71 UCS-2 units no longer fit one segment (70).
    let long = "🚑".repeat(36); // 72 UTF-16 units
    let v = preview(&["--to", "+447400123456", "--body", &long]);
    assert_eq!(v["encoding"], "UCS-2");
    assert_eq!(v["segments"], 2);
}

#[test]
fn preview_reports_an_invalid_number_with_its_code_and_exits_0() {
    let v = preview(&["--to", "0740012345", "--region", "GB", "--body", "hi"]);
    assert_eq!(v["valid"], false);
    assert_eq!(v["to"], Value::Null);
    assert_eq!(v["error"], "invalid_number");
    assert_eq!(v["encoding"], "GSM-7");

    let v = preview(&["--to", "07400 123456", "--body", "hi"]);
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["error"], "invalid_country_code",
        "national format without a region"
    );

    let v = preview(&["--to", "+447400123456", "--region", "ZZ", "--body", "hi"]);
    assert_eq!(v["error"], "unknown_region");
}

// ---------------------------------------------------------------------------------
// webhook verify

const SANDBOX_SECRET: &str = "whsec-test-0123456789";
const T: i64 = 1_700_000_000;

fn sandbox_request(body: &str, signed_body: &str, t: i64) -> PathBuf {
    let header = sandbox::signature_header(&[SANDBOX_SECRET.as_bytes()], t, signed_body.as_bytes());
    let req = json!({
        "method": "POST",
        "url": "https://hooks.example.org/webhooks/sandbox/demo",
        "headers": {"Content-Type": "application/json", (sandbox::SIGNATURE_HEADER): header},
        "body": body,
    });
    temp_file("sandbox.json", &req.to_string())
}

fn verify(provider: &str, secret: &str, request: &Path, extra: &[&str]) -> Output {
    let req = request.to_str().unwrap();
    run(&[
        &[
            "webhook",
            "verify",
            "--provider",
            provider,
            "--secret",
            secret,
            "--request",
            req,
        ],
        extra,
    ]
    .concat())
}

#[test]
fn webhook_verify_accepts_a_genuine_sandbox_callback() {
    let body = r#"{"type":"message.status","id":"sbx_1","status":"delivered"}"#;
    let req = sandbox_request(body, body, T);
    let o = verify("sandbox", SANDBOX_SECRET, &req, &["--at", "1700000010"]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "valid");

    // The same instant as RFC 3339.
    let o = verify(
        "sandbox",
        SANDBOX_SECRET,
        &req,
        &["--at", "2023-11-14T22:13:20Z"],
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn webhook_verify_refuses_a_tampered_body_and_never_prints_the_secret() {
    let signed = r#"{"type":"message.status","id":"sbx_1","status":"delivered"}"#;
    let tampered = r#"{"type":"message.status","id":"sbx_1","status":"failed"}"#;
    let req = sandbox_request(tampered, signed, T);
    let o = verify("sandbox", SANDBOX_SECRET, &req, &["--at", "1700000000"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o).trim(), "invalid: signature does not match");
    assert!(!stdout(&o).contains(SANDBOX_SECRET) && !stderr(&o).contains(SANDBOX_SECRET));

    // A wrong secret is the same verdict.
    let req = sandbox_request(signed, signed, T);
    let o = verify("sandbox", "another-secret", &req, &["--at", "1700000000"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).starts_with("invalid: "), "{}", stdout(&o));
}

#[test]
fn webhook_verify_refuses_a_time_outside_the_tolerance() {
    let body = r#"{"type":"message.status"}"#;
    let req = sandbox_request(body, body, T);
    let o = verify("sandbox", SANDBOX_SECRET, &req, &["--at", "1700000301"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stdout(&o).trim(),
        "invalid: timestamp outside the 300s tolerance"
    );
    let o = verify("sandbox", SANDBOX_SECRET, &req, &["--at", "1700000300"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn webhook_verify_reads_the_secret_from_a_file() {
    let body = r#"{"type":"message.status"}"#;
    let req = sandbox_request(body, body, T);
    let secret = temp_file("secret.txt", &format!("{SANDBOX_SECRET}\n"));
    let o = run(&[
        "webhook",
        "verify",
        "--provider",
        "sandbox",
        "--secret-file",
        secret.to_str().unwrap(),
        "--at",
        "1700000000",
        "--request",
        req.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
}

/// `application/x-www-form-urlencoded` encoding (what Twilio sends).
fn form_encode(params: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn twilio_vector(id: &str) -> Value {
    let path = workspace().join("common/tests/vectors/vectors.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id}"))
}

#[test]
fn webhook_verify_accepts_the_official_twilio_vector() {
    let v = twilio_vector("twilio-default");
    assert_eq!(v["provider"], "twilio");
    let inputs = &v["inputs"];
    let params: Vec<(String, String)> = inputs["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let request = |body: &str| {
        json!({
            "method": "POST",
            "url": inputs["url_signed"],
            "headers": {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": v["expected"]["signature"],
            },
            "body": body,
        })
        .to_string()
    };
    let auth_token = inputs["auth_token"].as_str().unwrap();
    let body = form_encode(&params);

    let req = temp_file("twilio.json", &request(&body));
    let o = verify("twilio", auth_token, &req, &[]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "valid");

    let req = temp_file(
        "twilio-tampered.json",
        &request(&body.replace("1234", "9999")),
    );
    let o = verify("twilio", auth_token, &req, &[]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o).trim(), "invalid: signature does not match");
}

#[test]
fn webhook_verify_bandwidth_takes_user_colon_password() {
    let req = json!({
        "method": "POST",
        "url": "https://hooks.example.org/webhooks/bandwidth/demo",
        "headers": {"Authorization": format!("Basic {}", encode_base64(b"cbuser:cb:pass")), "Content-Type": "application/json"},
        "body": "[]",
    });
    let req = temp_file("bandwidth.json", &req.to_string());
    let o = verify("bandwidth", "cbuser:cb:pass", &req, &[]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    let o = verify("bandwidth", "cbuser:wrong", &req, &[]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o).trim(), "invalid: credentials do not match");
    // Without the colon the secret is unusable as given: a usage error.
    let o = verify("bandwidth", "cbuser", &req, &[]);
    assert_eq!(code(&o), 2);
}

#[test]
fn webhook_verify_vonage_sms_uses_the_signature_method() {
    let secret = "vonage-sig-secret";
    let mut params: Vec<(String, String)> = [
        ("api-key", "abcd1234"),
        ("messageId", "0A0000000123ABCD1"),
        ("msisdn", "447700900000"),
        ("status", "delivered"),
        ("timestamp", "1700000000"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let sig = sign_sms(secret, VonageSignatureMethod::Sha256, &params);
    params.push(("sig".into(), sig));
    let req = json!({
        "method": "POST",
        "url": "https://hooks.example.org/webhooks/vonage-sms/demo",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "body": form_encode(&params),
    });
    let req = temp_file("vonage-sms.json", &req.to_string());
    let at = ["--at", "1700000005"];
    let o = verify(
        "vonage-sms",
        secret,
        &req,
        &[&["--signature-method", "sha256"], &at[..]].concat(),
    );
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    // The default method (md5hash) is not what signed it.
    let o = verify("vonage-sms", secret, &req, &at);
    assert_eq!(stdout(&o).trim(), "invalid: signature does not match");
    // The account check applies when the operator names the account.
    let o = verify(
        "vonage-sms",
        secret,
        &req,
        &[
            &["--signature-method", "sha256", "--api-key", "other"],
            &at[..],
        ]
        .concat(),
    );
    assert_eq!(stdout(&o).trim(), "invalid: credentials do not match");
}

#[test]
fn webhook_verify_vonage_messages_checks_the_jwt() {
    let secret = "vonage-messages-secret";
    let body = r#"{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"delivered"}"#;
    let claims = VonageJwtClaims {
        jti: Some("jti-1".into()),
        api_key: Some("abcd1234".into()),
        iat: T,
    };
    let token = sign_messages_jwt(secret, &claims, body.as_bytes());
    let request = |body: &str| {
        let req = json!({
            "method": "POST",
            "url": "https://hooks.example.org/webhooks/vonage-messages/demo",
            "headers": {"Authorization": format!("Bearer {token}"), "Content-Type": "application/json"},
            "body": body,
        });
        temp_file("vonage-messages.json", &req.to_string())
    };
    let req = request(body);
    let o = verify("vonage-messages", secret, &req, &["--at", "1700000000"]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    let o = verify(
        "vonage-messages",
        secret,
        &req,
        &["--at", "1700000000", "--api-key", "abcd1234"],
    );
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    let o = verify(
        "vonage-messages",
        secret,
        &req,
        &["--at", "1700000000", "--api-key", "other"],
    );
    assert_eq!(stdout(&o).trim(), "invalid: credentials do not match");
    let o = verify(
        "vonage-messages",
        secret,
        &request(&body.replace("delivered", "rejected")),
        &["--at", "1700000000"],
    );
    assert_eq!(stdout(&o).trim(), "invalid: body hash does not match");
}

#[test]
fn webhook_verify_reports_a_missing_header() {
    let req = temp_file(
        "unsigned.json",
        &json!({"method": "POST", "url": "https://h/x", "headers": {}, "body": "{}"}).to_string(),
    );
    let o = verify("sinch", "s3cret", &req, &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).starts_with("invalid: missing header"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn webhook_verify_bad_request_file_is_an_error() {
    let req = temp_file(
        "not-a-request.json",
        r#"{"url": "https://h/x", "header": {}}"#,
    );
    let o = verify("sandbox", SANDBOX_SECRET, &req, &[]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

// ---------------------------------------------------------------------------------
// usage

#[test]
fn bad_usage_exits_2() {
    let req = temp_file("any.json", "{}");
    let req = req.to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["preview", "--body", "no recipient"],
        vec![
            "webhook",
            "verify",
            "--provider",
            "carrier-pigeon",
            "--secret",
            "s",
            "--request",
            req,
        ],
        vec![
            "webhook",
            "verify",
            "--provider",
            "sandbox",
            "--request",
            req,
        ],
        vec![
            "webhook",
            "verify",
            "--provider",
            "sandbox",
            "--secret",
            "s",
            "--secret-file",
            req,
            "--request",
            req,
        ],
        vec![
            "webhook",
            "verify",
            "--provider",
            "sandbox",
            "--secret",
            "s",
            "--at",
            "yesterday",
            "--request",
            req,
        ],
        vec![
            "webhook",
            "verify",
            "--provider",
            "twilio",
            "--secret",
            "s",
            "--signature-method",
            "md5",
            "--request",
            req,
        ],
        vec![
            "webhook",
            "verify",
            "--provider",
            "vonage-sms",
            "--secret",
            "s",
            "--signature-method",
            "crc32",
            "--request",
            req,
        ],
        vec![
            "route",
            "explain",
            "--tenant",
            "t",
            "--to",
            "+447400123456",
            "--category",
            "general",
            "--kind",
            "fax",
        ],
        vec!["keys", "create", "--tenant", "t", "--role", "root"],
        vec!["tenant", "show", "--tenant", "not a tenant id!"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn every_command_has_help() {
    for (args, says) in [
        (vec!["--help"], "Operator CLI"),
        (vec!["preview", "--help"], "E.164"),
        (
            vec!["webhook", "verify", "--help"],
            "same verifier the webhook",
        ),
        (vec!["route", "explain", "--help"], "gate by gate"),
        (vec!["tenant", "validate", "--help"], "every problem"),
        (vec!["tenant", "apply", "--help"], "store it"),
        (vec!["tenant", "show", "--help"], "stored configuration"),
        (vec!["keys", "create", "--help"], "print it once"),
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 0, "{args:?}");
        assert!(stdout(&o).contains(says), "{args:?}: {}", stdout(&o));
    }
}

// ---------------------------------------------------------------------------------
// tenant

#[test]
fn tenant_validate_accepts_the_demo_tenant() {
    let path = workspace().join("examples/tenants/demo-psap.json");
    let o = run(&["tenant", "validate", "--file", path.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{} {}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("valid: tenant demo-psap"),
        "{}",
        stdout(&o)
    );
}

fn broken_demo() -> PathBuf {
    let path = workspace().join("examples/tenants/demo-psap.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cfg["default_region"] = json!("XX");
    cfg["routing"][0]["providers"] = json!(["nowhere"]);
    temp_file("broken-tenant.json", &cfg.to_string())
}

#[test]
fn tenant_validate_names_every_bad_field() {
    let o = run(&[
        "tenant",
        "validate",
        "--file",
        broken_demo().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(
        out.starts_with("invalid: tenant demo-psap has 2 problems"),
        "{out}"
    );
    assert!(out.contains("  default_region: "), "{out}");
    assert!(
        out.contains("  routing[0].providers[0]: names no provider"),
        "{out}"
    );
}

#[test]
fn tenant_validate_names_an_unknown_field() {
    let path = temp_file(
        "typo-tenant.json",
        r#"{"tenant":"ctl-test","default_region":"GB","providers":[],"senders":[],"routing":[],"rooting":[]}"#,
    );
    let o = run(&["tenant", "validate", "--file", path.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("unknown field `rooting`"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn tenant_apply_validates_before_touching_the_deployment() {
    // No TABLE_NAME in the environment: a broken file is refused on its own merits.
    let o = run(&["tenant", "apply", "--file", broken_demo().to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("default_region"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("TABLE_NAME"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------
// commands that need the deployment

#[test]
fn deployment_commands_name_the_missing_environment() {
    let demo = workspace().join("examples/tenants/demo-psap.json");
    for args in [
        vec![
            "route",
            "explain",
            "--tenant",
            "demo-psap",
            "--to",
            "+12015550123",
            "--category",
            "general",
        ],
        vec!["tenant", "show", "--tenant", "demo-psap"],
        vec!["tenant", "apply", "--file", demo.to_str().unwrap()],
        vec![
            "keys",
            "create",
            "--tenant",
            "demo-psap",
            "--role",
            "sender",
        ],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 1, "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("TABLE_NAME"), "{args:?}: {err}");
        assert!(
            err.contains(r#"eval "$(scripts/emulator.sh env)""#),
            "{args:?}: {err}"
        );
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}
