//! docs/openapi.yaml stays in step with the code: every route the routers serve is in the
//! spec and vice versa, and every error code the code can emit is documented under the
//! status it is sent with (and nothing else is). The routes and codes are read from the
//! router's route table and from the source itself, so a new match arm or a new
//! `ApiError` cannot slip past.

use dispatch_common::handlers::api::ROUTES;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/openapi.yaml")).expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("docs/openapi.yaml parses")
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

fn spec_routes(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (k, _) in item.as_object().expect("path item") {
            if METHODS.contains(&k.as_str()) {
                out.insert((k.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// Every `.rs` file under common/ (whatever crates it is split into).
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).expect("readable dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((p.clone(), std::fs::read_to_string(&p).expect("readable source")));
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("common"), &mut out);
    assert!(out.len() > 10, "found the sources");
    out
}

/// `{anything}` -> `{}` so templates compare regardless of parameter names.
fn shape(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect::<Vec<_>>().join("/")
}

/// Match arms like `("GET", ["v1", "messages", id])` in the routers.
fn source_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (_, src) in sources() {
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            let needle = format!("(\"{method}\", [\"v1\"");
            let mut rest = src.as_str();
            while let Some(i) = rest.find(&needle) {
                let after = &rest[i + needle.len() - 4..];
                let end = after.find(']').expect("closing bracket");
                let segs: Vec<String> = after[..end]
                    .split(',')
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| if s.starts_with('"') { s.trim_matches('"').to_string() } else { "{}".to_string() })
                    .collect();
                assert!(!segs.iter().any(|s| s == ".."), "a catch-all arm with a method: {method} {segs:?}");
                out.insert((method.to_string(), format!("/{}", segs.join("/"))));
                rest = &after[end..];
            }
        }
    }
    out
}

#[test]
fn every_route_is_in_the_spec_and_every_spec_route_is_served() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let documented = spec_routes(&spec);
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(table.len(), ROUTES.len(), "no duplicate routes in the table");
    let only_spec: Vec<_> = documented.difference(&table).collect();
    let only_code: Vec<_> = table.difference(&documented).collect();
    assert!(only_spec.is_empty() && only_code.is_empty(), "spec-only routes {only_spec:?}; undocumented routes {only_code:?}");

    let arms = source_routes();
    let table_shapes: BTreeSet<_> = table.iter().map(|(m, p)| (m.clone(), shape(p))).collect();
    assert!(arms.contains(&("POST".into(), "/v1/messages".into())), "the scan sees the submit arm: {arms:?}");
    assert_eq!(arms, table_shapes, "the routers' match arms and api::ROUTES differ");
}

#[test]
fn every_operation_documents_auth_roles_and_its_errors() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles = op["x-roles"].as_array().unwrap_or_else(|| panic!("{method} {path}: x-roles"));
            assert!(!roles.is_empty());
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "500", "503"] {
                assert!(responses.contains_key(status), "{method} {path} documents {status}");
            }
            for (status, r) in responses {
                if let Some(name) = r["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/Error")) {
                    assert_eq!(name, status, "{method} {path}: {status} must reference Error{status}");
                }
            }
        }
    }
    let submit = &spec["paths"]["/v1/messages"]["post"];
    assert_eq!(submit["parameters"][0]["$ref"], "#/components/parameters/IdempotencyKey");
    assert_eq!(spec["components"]["parameters"]["IdempotencyKey"]["name"], "Idempotency-Key");
    let inbound = spec["paths"]["/v1/inbound"]["get"]["parameters"].as_array().unwrap();
    assert!(inbound.iter().any(|p| p["name"] == "cursor"), "pagination cursor documented");
    for hook in ["messageStatus", "messageEscalation", "messageInbound"] {
        let params = spec["webhooks"][hook]["post"]["parameters"].as_array().unwrap();
        assert_eq!(params[0]["$ref"], "#/components/parameters/DispatchSignature", "{hook}");
    }
    assert_eq!(spec["components"]["parameters"]["DispatchSignature"]["name"], dispatch_common::handlers::callbacks::SIGNATURE_HEADER);
}

/// status -> codes, from the `Error<status>` responses.
fn spec_codes(spec: &Value) -> BTreeMap<u16, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, r) in spec["components"]["responses"].as_object().unwrap() {
        let Some(status) = name.strip_prefix("Error") else { continue };
        let status: u16 = status.parse().unwrap();
        let codes = r["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} lists its codes"));
        out.insert(status, codes.iter().map(|c| c.as_str().unwrap().to_string()).collect());
    }
    out
}

/// The string literals returned by a `fn code(&self)` in `file`.
fn codes_of_fn(file: &str) -> BTreeSet<String> {
    let (_, src) = sources().into_iter().find(|(p, s)| p.file_name().is_some_and(|n| n == file) && s.contains("pub fn code(&self)")).unwrap_or_else(|| panic!("{file}"));
    let start = src.find("pub fn code(&self)").expect("fn code");
    let body = &src[start..start + src[start..].find("\n    }\n").unwrap()];
    body.split("=> \"").skip(1).map(|s| s[..s.find('"').unwrap()].to_string()).collect()
}

/// (status, code) for every `ApiError` the code can build.
fn emitted_codes() -> BTreeSet<(u16, String)> {
    let phone = codes_of_fn("phone.rs");
    let media = codes_of_fn("media.rs");
    assert!(phone.contains("not_a_number") && media.contains("media_empty"), "{phone:?} {media:?}");
    let media_status = |c: &str| match c {
        "media_type_not_allowed" => 415,
        "media_too_large" => 413,
        _ => 422,
    };
    let mut out = BTreeSet::new();
    for (path, src) in sources() {
        let file = path.display().to_string();
        for (i, _) in src.match_indices("ApiError::") {
            let rest = &src[i + "ApiError::".len()..];
            let ctor: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let args = rest[ctor.len()..].trim_start();
            let args = args.strip_prefix('(').map(str::trim_start);
            let (status, arg) = match ctor.as_str() {
                "unauthorized" => { out.insert((401, "unauthorized".into())); continue }
                "forbidden" => { out.insert((403, "forbidden".into())); continue }
                "not_found" => { out.insert((404, "not_found".into())); continue }
                "internal" => { out.insert((500, "internal_error".into())); continue }
                "unavailable" => { out.insert((503, "temporarily_unavailable".into())); continue }
                "bad_request" => (400, args),
                "unprocessable" => (422, args),
                "conflict" => (409, args),
                "new" => {
                    let a = args.expect("ApiError::new(");
                    let comma = a.find(',').unwrap();
                    let compact: String = a.chars().filter(|c| !c.is_whitespace()).take(60).collect();
                    match a[..comma].trim().parse::<u16>() {
                        Ok(s) => (s, Some(a[comma + 1..].trim_start())),
                        Err(_) if compact.starts_with("rejected_status(code),code,") => {
                            // A rejected media record answers the code it was rejected with.
                            out.extend(media.iter().map(|c| (media_status(c), c.clone())));
                            out.insert((422, "media_not_encrypted".into()));
                            out.insert((422, "media_rejected".into()));
                            continue;
                        }
                        Err(_) => {
                            assert!(compact.starts_with("self.status(),self.code()"), "{file}: ApiError::new with an unknown status: {}", &a[..40.min(a.len())]);
                            out.extend(media.iter().map(|c| (media_status(c), c.clone())));
                            continue;
                        }
                    }
                }
                // Not a constructor (a type path in a signature, `ApiError::from`...).
                _ => continue,
            };
            let Some(arg) = arg else { continue };
            if let Some(lit) = arg.strip_prefix('"') {
                out.insert((status, lit[..lit.find('"').unwrap()].to_string()));
            } else if arg.starts_with("e.code()") {
                // Phone number parse errors (E164::parse).
                out.extend(phone.iter().map(|c| (status, c.clone())));
            } else {
                panic!("{file}: ApiError::{ctor} with a code this test cannot resolve: {}", &arg[..40.min(arg.len())]);
            }
        }
        // Struct literals: `ApiError { status: 422, code: "...".into(), ... }`.
        for (i, _) in src.match_indices("ApiError {\n") {
            let block = &src[i..i + 200.min(src.len() - i)];
            if let (Some(s), Some(c)) = (block.find("status: "), block.find("code: \"")) {
                let status: u16 = block[s + 8..s + 11].parse().expect("literal status");
                let code = &block[c + 7..];
                out.insert((status, code[..code.find('"').unwrap()].to_string()));
            }
        }
    }
    out
}

#[test]
fn every_error_code_the_code_emits_is_documented_under_its_status_and_vice_versa() {
    let documented = spec_codes(&spec());
    let emitted = emitted_codes();
    assert!(emitted.contains(&(409, "idempotency_key_reused".into())), "the scan sees submit's codes: {emitted:?}");
    assert!(emitted.len() > 40, "the scan found {} codes", emitted.len());
    let missing: Vec<_> = emitted.iter().filter(|(s, c)| !documented.get(s).is_some_and(|d| d.contains(c))).collect();
    assert!(missing.is_empty(), "emitted but not documented in docs/openapi.yaml: {missing:?}");
    let stale: Vec<_> = documented
        .iter()
        .flat_map(|(s, cs)| cs.iter().map(move |c| (*s, c.clone())))
        .filter(|x| !emitted.contains(x))
        .collect();
    assert!(stale.is_empty(), "documented but never emitted: {stale:?}");
}
