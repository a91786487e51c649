//! API keys and roles on the emulator: a role × endpoint matrix, revoked and expired
//! keys, and tenant isolation for writes.

use dispatch_common::auth::{new_key, Role};
use dispatch_tests::harness::TestEnv;
use serde_json::json;

async fn key(env: &TestEnv, role: Role) -> String {
    dispatch_local::seed::create_key(&env.pipeline.deps, &env.tenant, role).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_endpoint_matrix() {
    let env = TestEnv::start("roles").await;
    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Your permit is approved.", "category": "general"}), None).await;
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 20).await;
    let api = env.pipeline.api_url();
    let msg = json!({"to": "+12015550123", "body": "Hello", "category": "general"}).to_string();
    let cfg = env.http.get(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).send().await.unwrap().text().await.unwrap();
    // (method, path, body) and the status each role must get.
    let endpoints: Vec<(&str, String, Option<String>)> = vec![
        ("POST", "/v1/messages".into(), Some(msg.clone())),
        ("GET", format!("/v1/messages/{id}"), None),
        ("GET", "/v1/escalations".into(), None),
        ("GET", "/v1/admin/config".into(), None),
        ("PUT", "/v1/admin/config".into(), Some(cfg.clone())),
        ("GET", "/v1/admin/keys".into(), None),
        ("POST", "/v1/admin/route/explain".into(), Some(json!({"to": "+12015550123", "category": "general"}).to_string())),
    ];
    let expected: [(Role, [u16; 7]); 4] = [
        (Role::Sender, [202, 200, 403, 403, 403, 403, 403]),
        (Role::Operator, [202, 200, 200, 403, 403, 403, 200]),
        (Role::Auditor, [403, 200, 200, 403, 403, 403, 403]),
        (Role::Admin, [202, 200, 200, 200, 200, 200, 200]),
    ];
    for (role, statuses) in expected {
        let k = key(&env, role).await;
        for ((method, path, body), want) in endpoints.iter().zip(statuses) {
            let mut rb = env.http.request(method.parse().unwrap(), format!("{api}{path}")).bearer_auth(&k);
            if let Some(b) = body {
                rb = rb.header("content-type", "application/json").body(b.clone());
            }
            let got = rb.send().await.unwrap();
            let status = got.status().as_u16();
            let text = got.text().await.unwrap();
            assert_eq!(status, want, "{role:?} {method} {path}: {text}");
            if status == 403 {
                let e: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(e["code"], "forbidden");
            }
        }
    }
    // Auditors read metadata but not bodies (the tenant does not allow it).
    let auditor = key(&env, Role::Auditor).await;
    let m: serde_json::Value = env.http.get(format!("{api}/v1/messages/{id}")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["status"], "delivered");
    assert!(m.get("body").is_none() && m["body_sha256"].is_string(), "{m:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_keys_are_refused_like_unknown_ones() {
    let env = TestEnv::start("keys").await;
    let api = env.pipeline.api_url();
    let created: serde_json::Value = env
        .http
        .post(format!("{api}/v1/admin/keys"))
        .bearer_auth(&env.admin_key)
        .body(json!({"role": "sender"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = created["key"].as_str().unwrap().to_string();
    let key_id = created["key_id"].as_str().unwrap().to_string();
    assert!(k.starts_with(created["prefix"].as_str().unwrap()));
    let ok = env.http.get(format!("{api}/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV")).bearer_auth(&k).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 404, "valid key, missing message");
    let listed: serde_json::Value = env.http.get(format!("{api}/v1/admin/keys")).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains(&k), "listing never shows a key");
    let revoke = env.http.delete(format!("{api}/v1/admin/keys/{key_id}")).bearer_auth(&env.admin_key).send().await.unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let refused = env.http.get(format!("{api}/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV")).bearer_auth(&k).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    // Expired key.
    let now = chrono::Utc::now();
    let old = new_key(&env.tenant, Role::Admin, Some(now - chrono::Duration::seconds(1)), now - chrono::Duration::hours(1));
    env.pipeline.deps.store.put_api_key(&old.hash, &old.record).await.unwrap();
    let expired = env.http.get(format!("{api}/v1/admin/config")).bearer_auth(&old.plaintext).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 401);
    let body: serde_json::Value = expired.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_configure_another_tenant() {
    let env = TestEnv::start("xtenant").await;
    let api = env.pipeline.api_url();
    let mut other = dispatch_tests::harness::sandbox_tenant("someone-else", "dispatch/x/y");
    other.display_name = "not mine".into();
    let resp = env.http.put(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).body(serde_json::to_string(&other).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(env.pipeline.deps.store.get_tenant_config(&other.tenant).await.unwrap().is_none());
    // A bad config for its own tenant is refused whole, with field-level errors.
    let mut mine = dispatch_tests::harness::sandbox_tenant(env.tenant.as_str(), "dispatch/x/y");
    mine.default_region = "XX".into();
    mine.routing[0].providers = vec!["nope".into()];
    let resp = env.http.put(format!("{api}/v1/admin/config")).bearer_auth(&env.admin_key).body(serde_json::to_string(&mine).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "invalid_config");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("default_region") && msg.contains("routing[0].providers[0]"), "{msg}");
}

/// Tenant B's admin names tenant A's provider secret and callback secret: refused at
/// config time with a field error. A config stored before the rule (written straight
/// to the table) still cannot reach A's secret: the secrets reader refuses anything
/// outside B's own prefix before fetching, and the route explanation says the same
/// for A's real secret as for one that does not exist (no existence probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_can_never_reach_another_tenants_secrets() {
    let a = TestEnv::start("secrets-a").await;
    let api = a.pipeline.api_url();
    let b = dispatch_common::domain::TenantId::parse(format!("{}-b", a.tenant)).unwrap();
    let own = format!("dispatch/{b}/sandbox/sandbox-main");
    dispatch_local::seed::put_tenant(&a.pipeline.deps, dispatch_tests::harness::sandbox_tenant(b.as_str(), &own)).await.unwrap();
    let b_admin = dispatch_local::seed::create_key(&a.pipeline.deps, &b, Role::Admin).await.unwrap();
    let a_secret = format!("dispatch/{}/sandbox/sandbox-main", a.tenant);

    let mut steal = dispatch_tests::harness::sandbox_tenant(b.as_str(), &a_secret);
    steal.callback = Some(serde_json::from_value(json!({"url": "https://cad.example/events", "secret_id": format!("dispatch/{}/callback/cad", a.tenant)})).unwrap());
    let resp = a.http.put(format!("{api}/v1/admin/config")).bearer_auth(&b_admin).body(serde_json::to_string(&steal).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let e: serde_json::Value = resp.json().await.unwrap();
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("providers[0].secret_id") && msg.contains("callback.secret_id"), "{msg}");
    assert!(msg.contains(&format!("dispatch/{b}/sandbox/")), "the error names B's own prefix: {msg}");

    // Another provider kind's prefix of B's own is refused too (IAM scopes by kind).
    let wrong_kind = dispatch_tests::harness::sandbox_tenant(b.as_str(), &format!("dispatch/{b}/twilio/main"));
    let resp = a.http.put(format!("{api}/v1/admin/config")).bearer_auth(&b_admin).body(serde_json::to_string(&wrong_kind).unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);

    // Stored without validation: the reader still refuses, and says nothing about A.
    let explain = |secret: String| {
        let a = &a;
        let b = b.clone();
        let b_admin = b_admin.clone();
        async move {
            let mut cfg = dispatch_tests::harness::sandbox_tenant(b.as_str(), &secret);
            cfg.version = a.pipeline.deps.store.get_tenant_config(&b).await.unwrap().unwrap().version;
            a.pipeline.deps.store.put_tenant_config(&cfg, chrono::Utc::now()).await.unwrap();
            a.pipeline.deps.forget_tenant(&b);
            let r = a
                .http
                .post(format!("{}/v1/admin/route/explain", a.pipeline.api_url()))
                .bearer_auth(&b_admin)
                .body(json!({"to": "+12015550123", "category": "general"}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let fetches = a.pipeline.deps.secrets.fetch_count();
    let real = explain(a_secret.clone()).await;
    let absent = explain(format!("dispatch/{}/sandbox/no-such-secret", a.tenant)).await;
    assert_eq!(a.pipeline.deps.secrets.fetch_count(), fetches, "nothing outside B's prefix was fetched");
    let text = real.to_string();
    assert!(text.contains("outside this tenant"), "{text}");
    assert!(!text.contains("does not exist") && !text.contains(&a_secret), "{text}");
    let strip = |v: &serde_json::Value| v.to_string().replace("no-such-secret", "sandbox-main");
    assert_eq!(strip(&real), strip(&absent), "A's real secret and a missing one answer alike");

    // And a message B submits fails closed instead of sending with A's account.
    let b_key = dispatch_local::seed::create_key(&a.pipeline.deps, &b, Role::Operator).await.unwrap();
    let r = a.http.post(format!("{api}/v1/messages")).bearer_auth(&b_key).body(json!({"to": "+12015550123", "body": "x", "category": "general"}).to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let mut m = None;
    for _ in 0..200 {
        let got = a.pipeline.deps.store.get_message(id.parse().unwrap()).await.unwrap().unwrap();
        if got.status.is_terminal() {
            m = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let m = m.expect("B's message reaches a terminal state");
    assert_eq!(m.status.as_str(), "rejected", "no eligible provider: {m:?}");
    assert!(m.reason.as_deref().unwrap_or_default().contains("outside this tenant"), "{m:?}");
    assert!(a.sandbox.received().is_empty(), "nothing reached the provider with A's credentials");
}

/// Two admins edit the configuration at once: the second write, based on the version
/// both read, is refused instead of silently undoing the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_based_on_a_stale_version_is_refused() {
    let env = TestEnv::start("lostupdate").await;
    let url = format!("{}/v1/admin/config", env.pipeline.api_url());
    let read: serde_json::Value = env.http.get(&url).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    let version = read["version"].as_u64().unwrap();
    let mut first = read.clone();
    first["display_name"] = json!("first admin's edit");
    let r = env.http.put(&url).bearer_auth(&env.admin_key).body(first.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["version"], version + 1);

    let mut second = read.clone();
    second["display_name"] = json!("second admin's edit");
    let r = env.http.put(&url).bearer_auth(&env.admin_key).body(second.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!((e["code"].as_str(), e["field"].as_str()), (Some("config_changed"), Some("version")), "{e}");
    let mut no_version = read.clone();
    no_version.as_object_mut().unwrap().remove("version");
    let r = env.http.put(&url).bearer_auth(&env.admin_key).body(no_version.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409, "omitting the version is not a way around it");
    let now: serde_json::Value = env.http.get(&url).bearer_auth(&env.admin_key).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["display_name"], "first admin's edit");
}

/// A `from` the tenant never registered is refused at submit, with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_sender_is_refused_at_submit() {
    let env = TestEnv::start("unknownfrom").await;
    let (s, b) = env.submit(json!({"to": "+12015550123", "from": "+12015550199", "body": "x", "category": "general"}), Some("k-unknown-from")).await;
    assert_eq!((s, b["code"].as_str(), b["field"].as_str()), (422, Some("unknown_sender"), Some("from")), "{b}");
    // Nothing was stored under the key: the same key with a valid request is a new
    // message (202), not a replay of a stored one (200).
    let (s, b) = env.submit(json!({"to": "+12015550123", "from": "+12015550100", "body": "x", "category": "general"}), Some("k-unknown-from")).await;
    assert_eq!(s, 202, "{b}");
}

/// One unreadable item in the due index does not stop the sweep for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_item_does_not_abort_the_sweep() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use dispatch_common::store::keys;
    let env = TestEnv::start("sweepcorrupt").await;
    let due = "2000-01-01T00:00:00.000Z";
    for shard in 0..dispatch_common::store::DUE_SHARDS {
        env.pipeline
            .clients
            .dynamodb
            .put_item()
            .table_name(env.pipeline.deps.store.table())
            .item("pk", A::S(format!("MSG#corrupt-{shard}")))
            .item("sk", A::S("META".into()))
            .item("gsi1pk", A::S(keys::due_pk(shard)))
            .item("gsi1sk", A::S(format!("{due}#corrupt")))
            .item("doc", A::S("{not json".into()))
            .send()
            .await
            .unwrap();
    }
    let (s, b) = env.submit(json!({"to": "+12015550123", "body": "x", "category": "general"}), None).await;
    assert_eq!(s, 202, "{b}");
    env.wait_for(b["id"].as_str().unwrap(), "delivered", 20).await;
    let report = env.sweep().await;
    assert_eq!(report.errors, 0, "{report:?}");
}

/// With tenant B's admin key, every attempt to read, use or probe tenant A's messages,
/// holds, media, inbound, escalations, keys and audit answers exactly as for something
/// that does not exist (same status, code and message, the id aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_things_answer_exactly_like_missing_ones() {
    let a = TestEnv::start("xtenant-a").await;
    let api = a.pipeline.api_url();
    let (deps, ms) = (&a.pipeline.deps, dispatch_common::media::MediaStore::new(&a.pipeline.clients, &a.pipeline.deps.cfg));
    // A's things: a delivered message, a verified media item, an inbound message, a key.
    let (_, m) = a.submit(json!({"to": "+12015550123", "body": "A's message", "category": "general"}), None).await;
    let msg = m["id"].as_str().unwrap().to_string();
    a.wait_for(&msg, "delivered", 20).await;
    let a_caller = dispatch_common::auth::Caller { tenant: a.tenant.clone(), role: Role::Operator, key_id: "k".into() };
    let png = dispatch_local::sandbox::MEDIA_PNG;
    let (_, media) = dispatch_common::handlers::media_api::upload(deps, &ms, &a_caller, "image/png", png, None, deps.clock.now()).await.unwrap();
    let media_id = media["media_id"].as_str().unwrap().to_string();
    let inbound = dispatch_common::providers::InboundMessage {
        provider_message_id: "sbx_in_xtenant".into(),
        from: "+12015550123".into(),
        to: "+12015550100".into(),
        text: "A's inbound".into(),
        media: vec![],
        received_at: None,
        provider_metadata: json!({}),
    };
    let inb = match dispatch_common::handlers::inbound_webhook::handle_inbound(deps, &ms, dispatch_common::providers::ProviderKind::Sandbox, &a.tenant, "sandbox-main", inbound).await.unwrap() {
        dispatch_common::handlers::inbound_webhook::InboundOutcome::Stored(r) => r.id,
        other => panic!("{other:?}"),
    };
    let keys: serde_json::Value = a.http.get(format!("{api}/v1/admin/keys")).bearer_auth(&a.admin_key).send().await.unwrap().json().await.unwrap();
    let a_key_id = keys["keys"][0]["key_id"].as_str().or_else(|| keys[0]["key_id"].as_str()).unwrap_or_else(|| panic!("{keys}")).to_string();

    // Tenant B in the same deployment.
    let b = dispatch_common::domain::TenantId::parse(format!("{}-b", a.tenant)).unwrap();
    let mut b_cfg = dispatch_tests::harness::sandbox_tenant(b.as_str(), &format!("dispatch/{b}/sandbox/sandbox-main"));
    b_cfg.senders[0].sender = dispatch_common::domain::SenderId::parse("+12015550109").unwrap();
    dispatch_local::seed::put_tenant(deps, b_cfg).await.unwrap();
    let b_admin = dispatch_local::seed::create_key(deps, &b, Role::Admin).await.unwrap();

    let missing_msg = "01ARZ3NDEKTSV4RRFFQ69G5FAV".to_string();
    let missing_media = "med_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_string();
    let missing_inb = "inb_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_string();
    let call = |method: &'static str, path: String, body: Option<String>| {
        let req = a.http.request(method.parse().unwrap(), format!("{api}{path}")).bearer_auth(&b_admin);
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(b),
            None => req,
        };
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let hold = || Some(json!({"reason": "probe"}).to_string());
    let submit_with_media = |id: &str| Some(json!({"to": "+12015550123", "body": "x", "category": "general", "media": [id]}).to_string());
    let submit_from = |from: &str| Some(json!({"to": "+12015550123", "from": from, "body": "x", "category": "general"}).to_string());
    let probes: Vec<(&str, String, Option<String>, String, Option<String>, &str, &str)> = vec![
        ("GET", format!("/v1/messages/{msg}"), None, format!("/v1/messages/{missing_msg}"), None, &msg, &missing_msg),
        ("POST", format!("/v1/messages/{msg}/legal-hold"), hold(), format!("/v1/messages/{missing_msg}/legal-hold"), hold(), &msg, &missing_msg),
        ("DELETE", format!("/v1/messages/{msg}/legal-hold"), hold(), format!("/v1/messages/{missing_msg}/legal-hold"), hold(), &msg, &missing_msg),
        ("POST", format!("/v1/escalations/{msg}/ack"), None, format!("/v1/escalations/{missing_msg}/ack"), None, &msg, &missing_msg),
        ("GET", format!("/v1/audit?message_id={msg}"), None, format!("/v1/audit?message_id={missing_msg}"), None, &msg, &missing_msg),
        ("GET", format!("/v1/media/{media_id}"), None, format!("/v1/media/{missing_media}"), None, &media_id, &missing_media),
        ("POST", format!("/v1/media/{media_id}/complete"), None, format!("/v1/media/{missing_media}/complete"), None, &media_id, &missing_media),
        ("POST", "/v1/messages".into(), submit_with_media(&media_id), "/v1/messages".into(), submit_with_media(&missing_media), &media_id, &missing_media),
        ("GET", format!("/v1/inbound/{inb}"), None, format!("/v1/inbound/{missing_inb}"), None, &inb, &missing_inb),
        ("DELETE", format!("/v1/admin/keys/{a_key_id}"), None, "/v1/admin/keys/key_0000000000000000".into(), None, &a_key_id, "key_0000000000000000"),
        // A's registered sender is, for B, simply not one of its senders.
        ("POST", "/v1/messages".into(), submit_from("+12015550100"), "/v1/messages".into(), submit_from("+12015550108"), "+12015550100", "+12015550108"),
    ];
    for (method, theirs, body, missing, missing_body, their_id, missing_id) in probes {
        let (s1, t1) = call(method, theirs.clone(), body).await;
        let (s2, t2) = call(method, missing, missing_body).await;
        assert!(s1 >= 400 || (s1 == 200 && !t1.contains(their_id)), "{method} {theirs}: {s1} {t1}");
        assert_eq!((s1, t1.replace(their_id, "<id>")), (s2, t2.replace(missing_id, "<id>")), "{method} {theirs}");
    }
    // And nothing of A's changed: its message is not held, its key still works.
    let (_, m) = a.get(&msg).await;
    assert_eq!(m["legal_hold"], false);
    let r = a.http.get(format!("{api}/v1/admin/keys")).bearer_auth(&a.admin_key).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
