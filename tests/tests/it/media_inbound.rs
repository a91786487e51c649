//! MMS media and inbound messages on the emulator: media verification codes, the
//! presigned upload with SSE, inbound MMS stored with ingest hashes and linked to our
//! last outbound message, refusal of unknown numbers, STOP/START opt-out, and evidence
//! bundles that verify and reveal tampering. Handlers are called directly (the API and
//! webhook routes are wired separately).

use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use dispatch_common::auth::{Caller, Role};
use dispatch_common::domain::{ContentCategory, MessageId, TenantId, E164};
use dispatch_common::handlers::inbound_api;
use dispatch_common::handlers::inbound_media::{self, Attempt, Fetched};
use dispatch_common::handlers::inbound_webhook::{self, InboundOutcome};
use dispatch_common::queue::InboundMediaJob;
use dispatch_common::handlers::media_api::{self, CreateMedia};
use dispatch_common::inbound::{self, EvidenceError, OptOutDecision};
use dispatch_common::media::{self, MediaStore};
use dispatch_common::providers::registry::adapter;
use dispatch_common::providers::{InboundMedia, InboundMessage, ProviderKind};
use dispatch_common::signatures::sandbox::verify_timestamped;
use dispatch_local::http_server::{handler, respond, serve_loopback, Server};
use dispatch_local::sandbox::MEDIA_PNG;
use dispatch_tests::harness::TestEnv;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SENDER: &str = "+12015550100";
const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9];

fn store(env: &TestEnv) -> MediaStore {
    MediaStore::new(&env.pipeline.clients, &env.pipeline.deps.cfg)
}

fn caller(env: &TestEnv) -> Caller {
    Caller { tenant: env.tenant.clone(), role: Role::Operator, key_id: "test-key".into() }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn inbound_msg(pmid: &str, from: &str, to: &str, text: &str, media: Vec<InboundMedia>) -> InboundMessage {
    InboundMessage {
        provider_message_id: pmid.into(),
        from: from.into(),
        to: to.into(),
        text: text.into(),
        media,
        received_at: None,
        provider_metadata: json!({"type": "message.inbound", "id": pmid, "carrier": "test-carrier"}),
    }
}

/// The webhook's part, then (for an MMS) the inbound-media job's, which the local
/// runner delivers from the queue as Lambda would: the record as it stands once its
/// media are settled.
async fn receive(env: &TestEnv, ms: &MediaStore, m: InboundMessage) -> InboundOutcome {
    let out = inbound_webhook::handle_inbound(&env.pipeline.deps, ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", m).await.expect("inbound handled");
    let InboundOutcome::Stored(first) = &out else { return out };
    if !first.media_pending {
        return out;
    }
    // The webhook answered without fetching anything.
    assert!(first.media.iter().take(inbound::MAX_INBOUND_MEDIA).all(|m| m.is_pending()), "{:?}", first.media);
    InboundOutcome::Stored(Box::new(settled(env, ms, &first.id).await))
}

/// The inbound record once the media job has settled every item.
async fn settled(env: &TestEnv, ms: &MediaStore, id: &str) -> inbound::InboundRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = inbound::get_inbound(ms, &env.tenant, id).await.unwrap().expect("stored");
        if !r.media_pending {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "media never settled: {:?}", r.media);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn stored(o: InboundOutcome) -> inbound::InboundRecord {
    match o {
        InboundOutcome::Stored(r) => *r,
        other => panic!("expected a stored inbound message, got {other:?}"),
    }
}

/// Serves `/r/<n>` (redirects n times, then the PNG), `/big` (one byte over the
/// inbound cap) and 404 for everything else.
async fn media_server() -> Server {
    serve_loopback(handler(|req| async move {
        let path = req.uri.path().to_string();
        if let Some(n) = path.strip_prefix("/r/").and_then(|n| n.parse::<u32>().ok()) {
            if n == 0 {
                return respond(200, "image/png", MEDIA_PNG);
            }
            return http::Response::builder().status(302).header("location", format!("/r/{}", n - 1)).body(Bytes::new()).unwrap();
        }
        if path == "/big" {
            return respond(200, "image/png", vec![0u8; inbound::MAX_INBOUND_MEDIA_BYTES + 1]);
        }
        respond(404, "text/plain", "no such media")
    }))
    .await
    .unwrap()
}

/// The DynamoDB `ttl` attribute of an item, if it has one.
async fn raw_ttl(env: &TestEnv, pk: &str, sk: &str) -> Option<i64> {
    let out = env
        .pipeline
        .clients
        .dynamodb
        .get_item()
        .table_name(&env.pipeline.deps.cfg.table_name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap();
    let item = out.item.expect("item exists");
    item.get("ttl").map(|v| v.as_n().unwrap().parse().unwrap())
}

async fn head(env: &TestEnv, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    env.pipeline.clients.s3.head_object().bucket(&env.pipeline.deps.cfg.media_bucket).key(key).send().await.expect("object exists")
}

async fn object_bytes(env: &TestEnv, key: &str) -> Vec<u8> {
    let o = env.pipeline.clients.s3.get_object().bucket(&env.pipeline.deps.cfg.media_bucket).key(key).send().await.expect("object exists");
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_refused_with_specific_codes_and_stored_encrypted_when_valid() {
    let env = TestEnv::start("mediacodes").await;
    let (deps, ms, who) = (&env.pipeline.deps, store(&env), caller(&env));
    let now = deps.clock.now();
    let code = |r: Result<(u16, Value), dispatch_common::error::ApiError>| {
        let e = r.expect_err("refused");
        (e.status, e.code)
    };
    // Direct uploads: the bytes are checked before anything is stored.
    assert_eq!(code(media_api::upload(deps, &ms, &who, "image/png", JPEG, None, now).await), (422, "media_type_mismatch".into()));
    assert_eq!(code(media_api::upload(deps, &ms, &who, "image/png", b"", None, now).await), (422, "media_empty".into()));
    let oversize = vec![0u8; media::MAX_DIRECT_UPLOAD_BYTES + 1];
    assert_eq!(code(media_api::upload(deps, &ms, &who, "image/png", &oversize, None, now).await), (413, "media_too_large".into()));
    assert_eq!(code(media_api::upload(deps, &ms, &who, "application/zip", b"PK\x03\x04zip", None, now).await), (415, "media_type_not_allowed".into()));
    assert_eq!(code(media_api::upload(deps, &ms, &who, "text/html", b"<html></html>", None, now).await), (415, "media_type_not_allowed".into()));
    assert_eq!(code(media_api::upload(deps, &ms, &who, "image/png", MEDIA_PNG, Some(&"0".repeat(64)), now).await), (422, "media_hash_mismatch".into()));
    // Upload slots: the declaration is checked before a URL is handed out.
    let create = |ct: &str, size: u64| CreateMedia { content_type: ct.into(), size_bytes: size, sha256: None };
    assert_eq!(code(media_api::create(deps, &ms, &who, create("image/png", 0), now).await), (422, "media_empty".into()));
    assert_eq!(code(media_api::create(deps, &ms, &who, create("video/mp4", media::MAX_MEDIA_BYTES + 1), now).await), (413, "media_too_large".into()));
    assert_eq!(code(media_api::create(deps, &ms, &who, create("application/x-msdownload", 10), now).await), (415, "media_type_not_allowed".into()));

    // Through the router, as API Gateway would hand it over: raw body, type in the query.
    let req = http::Request::builder()
        .method("POST")
        .uri("https://api.example/v1/media?content_type=image/gif")
        .body(lambda_http::Body::Binary(JPEG.to_vec()))
        .unwrap();
    let r = media_api::dispatch(deps, &ms, &req, &who, now).await.expect("media route");
    assert_eq!(code(r), (422, "media_type_mismatch".into()));
    let other = http::Request::builder().method("GET").uri("https://api.example/v1/messages").body(lambda_http::Body::Empty).unwrap();
    assert!(media_api::dispatch(deps, &ms, &other, &who, now).await.is_none(), "other routes are left to the main router");

    // A valid direct upload is verified, hashed and encrypted at rest.
    let req = http::Request::builder()
        .method("POST")
        .uri("https://api.example/v1/media")
        .header("content-type", "image/png")
        .body(lambda_http::Body::Binary(MEDIA_PNG.to_vec()))
        .unwrap();
    let (status, body) = media_api::dispatch(deps, &ms, &req, &who, now).await.unwrap().expect("uploaded");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "verified");
    assert_eq!(body["sha256"], sha(MEDIA_PNG));
    assert_eq!(body["sniffed_type"], "image/png");
    assert!(body.get("s3_key").is_none(), "internal keys are not shown: {body}");
    let id = body["media_id"].as_str().unwrap().to_string();
    let key = media::media_key(&env.tenant, &id);
    let h = head(&env, &key).await;
    assert_eq!(h.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert_eq!(h.content_type.as_deref(), Some("image/png"));
    assert_eq!(sha(&object_bytes(&env, &key).await), sha(MEDIA_PNG));

    // Tenant isolation: another tenant's key sees nothing.
    let stranger = Caller { tenant: TenantId::parse("someone-else").unwrap(), role: Role::Admin, key_id: "k".into() };
    let e = media_api::get(deps, &ms, &stranger, &id).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (404, "not_found"));
    assert_eq!(code(media_api::complete(deps, &ms, &stranger, &id, now).await), (404, "not_found".into()));
    assert!(ms.resolve_for_submit(&stranger.tenant, std::slice::from_ref(&id)).await.is_err());
    let records = ms.resolve_for_submit(&env.tenant, std::slice::from_ref(&id)).await.expect("own media resolves");
    assert_eq!(records[0].size, MEDIA_PNG.len() as u64);

    // A tenant that turned MMS off cannot upload, and an auditor key never can.
    let mut cfg = (*deps.tenant(&env.tenant).await.unwrap().unwrap()).clone();
    cfg.delivery.mms_allowed = false;
    dispatch_local::seed::put_tenant(deps, cfg).await.unwrap();
    assert_eq!(code(media_api::upload(deps, &ms, &who, "image/png", MEDIA_PNG, None, now).await), (403, "mms_not_allowed".into()));
    let auditor = Caller { role: Role::Auditor, ..who.clone() };
    assert_eq!(code(media_api::upload(deps, &ms, &auditor, "image/png", MEDIA_PNG, None, now).await), (403, "forbidden".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_upload_is_verified_encrypted_and_served_to_providers() {
    let env = TestEnv::start("mediaput").await;
    let (deps, ms, who) = (&env.pipeline.deps, store(&env), caller(&env));
    let now = deps.clock.now();
    let put = |url: &str, headers: &Value, body: Vec<u8>| {
        let mut rb = env.http.put(url);
        for (k, v) in headers.as_object().unwrap() {
            rb = rb.header(k.as_str(), v.as_str().unwrap());
        }
        rb.body(body).send()
    };

    // Declared with its hash: the URL is bound to type, size, SSE and checksum.
    let req = CreateMedia { content_type: "image/png".into(), size_bytes: MEDIA_PNG.len() as u64, sha256: Some(sha(MEDIA_PNG)) };
    let (status, slot) = media_api::create(deps, &ms, &who, req, now).await.expect("slot");
    assert_eq!(status, 201, "{slot}");
    assert_eq!(slot["status"], "pending");
    let id = slot["media_id"].as_str().unwrap().to_string();
    let url = slot["upload_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=600"), "{url}");
    let signed = url.split("X-Amz-SignedHeaders=").nth(1).unwrap_or_default().split('&').next().unwrap_or_default();
    for h in ["content-type", "x-amz-server-side-encryption", "content-length"] {
        assert!(signed.contains(h), "{h} is not bound to the upload URL: {signed}");
    }
    let headers = &slot["upload_headers"];
    assert_eq!(headers["content-type"], "image/png", "{slot}");
    assert_eq!(headers["x-amz-server-side-encryption"], "AES256", "{slot}");
    assert!(headers["x-amz-checksum-sha256"].is_string(), "the declared hash binds the upload: {slot}");
    let e = media_api::complete(deps, &ms, &who, &id, now).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "media_not_uploaded"));
    let resp = put(url, &slot["upload_headers"], MEDIA_PNG.to_vec()).await.expect("S3 answers");
    assert!(resp.status().is_success(), "presigned PUT refused: {} {}", resp.status(), resp.text().await.unwrap_or_default());
    let (status, done) = media_api::complete(deps, &ms, &who, &id, now).await.expect("verified");
    assert_eq!(status, 200);
    assert_eq!(done["status"], "verified", "{done}");
    assert_eq!(done["sha256"], sha(MEDIA_PNG));
    let h = head(&env, &media::verified_media_key(&env.tenant, &id)).await;
    assert_eq!(h.server_side_encryption, Some(ServerSideEncryption::Aes256), "object must be SSE-encrypted");
    assert!(ms.head_object(&media::media_key(&env.tenant, &id)).await.unwrap().is_none(), "the upload object is gone");
    // Completing again is harmless.
    assert_eq!(media_api::complete(deps, &ms, &who, &id, now).await.unwrap().1["status"], "verified");
    // The upload URL is still valid, but what it writes now is not what providers get:
    // the checked bytes moved to a key no upload URL was signed for.
    let mut swapped = MEDIA_PNG.to_vec();
    let last = swapped.len() - 1;
    swapped[last] ^= 0xFF;
    let resp = put(url, &serde_json::json!({"content-type": "image/png", "x-amz-server-side-encryption": "AES256"}), swapped).await.expect("S3 answers");
    assert!(resp.status().is_success(), "{}", resp.status());

    // Providers get short-lived GET URLs that serve the same bytes.
    let urls = ms.provider_urls(&env.tenant, std::slice::from_ref(&id)).await.expect("urls");
    let fetched = env.http.get(&urls[0]).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha(&fetched), sha(MEDIA_PNG));
    assert!(urls[0].contains("X-Amz-Expires=900"), "{}", urls[0]);
    let facts = ms.media_facts(&env.tenant, std::slice::from_ref(&id)).await.unwrap();
    let items: Vec<(&str, u64)> = facts.iter().map(|(t, s)| (t.as_str(), *s)).collect();
    assert!(media::check_provider_limits(&adapter(ProviderKind::Sandbox).capabilities(), &items).is_ok());
    assert!(media::check_provider_limits(&adapter(ProviderKind::VonageSms).capabilities(), &items).is_err(), "SMS-only provider");

    // Declared PNG, uploaded JPEG of the same size: refused at completion, object removed.
    let mut fake = JPEG.to_vec();
    fake.resize(MEDIA_PNG.len(), 0);
    let req = CreateMedia { content_type: "image/png".into(), size_bytes: fake.len() as u64, sha256: None };
    let (_, slot) = media_api::create(deps, &ms, &who, req, now).await.expect("slot");
    let id = slot["media_id"].as_str().unwrap().to_string();
    let resp = put(slot["upload_url"].as_str().unwrap(), &slot["upload_headers"], fake).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let e = media_api::complete(deps, &ms, &who, &id, now).await.unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (422, "media_type_mismatch"), "{}", e.message);
    assert_eq!(media_api::complete(deps, &ms, &who, &id, now).await.unwrap_err().code, "media_type_mismatch", "the refusal sticks");
    assert!(ms.head_object(&media::media_key(&env.tenant, &id)).await.unwrap().is_none(), "refused content is deleted");
    let e = ms.resolve_for_submit(&env.tenant, &[id]).await.unwrap_err();
    assert_eq!(e.code, "media_not_verified");
}

async fn secret_receiver() -> (Server, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let server = serve_loopback(handler(move |req| {
        let g = g.clone();
        async move {
            let header = req.header("dispatch-signature").unwrap_or_default().to_string();
            if verify_timestamped(&header, b"inbound-cb-secret", &req.body, chrono::Utc::now().timestamp(), Duration::from_secs(300)).is_err() {
                return respond(401, "text/plain", "bad signature");
            }
            g.lock().unwrap().push(serde_json::from_slice(&req.body).unwrap());
            respond(204, "text/plain", "")
        }
    }))
    .await
    .unwrap();
    (server, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_mms_is_stored_hashed_linked_listed_and_pushed() {
    let (receiver, got) = secret_receiver().await;
    let cb_url = format!("{}/events", receiver.base_url());
    let env = TestEnv::start_with("inboundmms", &[ProviderKind::Sandbox], move |mut c| {
        let secret = format!("dispatch/{}/callback/cad", c.tenant);
        c.callback = Some(serde_json::from_value(json!({"url": cb_url, "secret_id": secret})).unwrap());
        c
    })
    .await;
    dispatch_local::seed::put_secret(&env.pipeline.clients, &format!("dispatch/{}/callback/cad", env.tenant), "inbound-cb-secret").await.unwrap();
    let ms = store(&env);
    let media_srv = media_server().await;

    // Our message to the citizen, remembered as send would on `sent`.
    let (status, sent) = env.submit(json!({"to": "+12015550123", "body": "Can you send a photo?", "category": "general"}), None).await;
    assert_eq!(status, 202, "{sent}");
    let outbound: MessageId = sent["id"].as_str().unwrap().parse().unwrap();
    let citizen = E164::parse("+12015550123", None).unwrap();
    inbound::remember_outbound(&ms, &env.tenant, &citizen, outbound, env.pipeline.deps.clock.now()).await.unwrap();
    // An older message's late `sent` does not steal the pointer.
    let older: MessageId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    inbound::remember_outbound(&ms, &env.tenant, &citizen, older, env.pipeline.deps.clock.now()).await.unwrap();
    assert_eq!(inbound::last_outbound(&ms, &env.tenant, &citizen).await.unwrap(), Some(outbound));

    let png_url = format!("{}/sandbox/media/x.png", env.sandbox.base_url());
    let served = env.http.get(&png_url).send().await.unwrap().bytes().await.unwrap();
    let media = vec![
        InboundMedia { url: png_url.clone(), content_type: Some("image/png".into()) },
        InboundMedia { url: format!("{}/r/3", media_srv.base_url()), content_type: Some("image/jpeg".into()) },
        InboundMedia { url: format!("{}/r/4", media_srv.base_url()), content_type: None },
        InboundMedia { url: format!("{}/big", media_srv.base_url()), content_type: Some("image/png".into()) },
        InboundMedia { url: format!("{}/gone", media_srv.base_url()), content_type: Some("image/png".into()) },
    ];
    let msg = inbound_msg("sbx_in_mms_1", "(201) 555-0123", SENDER, "Here is the damage", media);
    let r = stored(receive(&env, &ms, msg.clone()).await);
    assert!(r.id.starts_with("inb_"));
    assert_eq!((r.from.as_str(), r.to.as_str(), r.from_is_e164), ("+12015550123", SENDER, true));
    assert_eq!(r.in_reply_to, Some(outbound), "linked to our last message to that number");
    assert_eq!(r.provider_metadata["carrier"], "test-carrier");
    assert_eq!(r.keyword, None);
    let ttl = raw_ttl(&env, &inbound::inbound_pk(&r.id), inbound::INBOUND_SK).await.expect("retention TTL");
    let days = (ttl - chrono::Utc::now().timestamp()) / 86_400;
    assert!((399..=400).contains(&days), "the tenant's default record_days: {days}");

    // Item 0: the sandbox PNG, hashed at ingest; the S3 object matches the served bytes.
    let m0 = &r.media[0];
    assert_eq!(m0.sha256.as_deref(), Some(sha(&served).as_str()));
    assert_eq!((m0.size, m0.sniffed_type.as_deref(), m0.declared_type.as_deref()), (Some(served.len() as u64), Some("image/png"), Some("image/png")));
    let key = m0.s3_key.clone().unwrap();
    assert_eq!(key, format!("inbound/{}/{}/0", env.tenant, r.id));
    assert_eq!(sha(&object_bytes(&env, &key).await), sha(&served));
    let h = head(&env, &key).await;
    assert_eq!(h.server_side_encryption, Some(ServerSideEncryption::Aes256));
    assert_eq!(h.content_type.as_deref(), Some("image/png"));
    let meta = h.metadata.unwrap_or_default();
    assert_eq!(meta.get("sha256").map(String::as_str), Some(sha(&served).as_str()));
    assert_eq!(meta.get("source-url"), Some(&png_url));
    // Item 1: three redirects are followed; the declared type (jpeg) and what the bytes
    // are (png) are both kept.
    assert_eq!(r.media[1].sha256.as_deref(), Some(sha(MEDIA_PNG).as_str()));
    assert_eq!((r.media[1].declared_type.as_deref(), r.media[1].sniffed_type.as_deref()), (Some("image/jpeg"), Some("image/png")));
    // Items 2-4: a fourth redirect, an oversize item and a 404 are recorded, not stored.
    assert_eq!(r.media[2].error.as_deref(), Some("too_many_redirects"), "{:?}", r.media[2]);
    assert_eq!(r.media[3].error.as_deref(), Some("too_large"));
    assert_eq!(r.media[4].error.as_deref(), Some("http_404"));
    assert!(r.media[2..].iter().all(|m| m.s3_key.is_none() && m.sha256.is_none()));

    // The provider retrying the same message does not store it twice.
    assert_eq!(receive(&env, &ms, msg).await, InboundOutcome::Duplicate(r.id.clone()));

    // Listing (newest first, cursor pagination) and the single view with media URLs.
    let second = stored(receive(&env, &ms, inbound_msg("sbx_in_mms_2", "+12015550123", SENDER, "Thanks", vec![])).await);
    let who = caller(&env);
    let (_, page1) = inbound_api::list(&env.pipeline.deps, &ms, &who, 1, None).await.unwrap();
    assert_eq!(page1["items"][0]["id"], second.id.as_str());
    let cursor = page1["next_cursor"].as_str().expect("more pages").to_string();
    let (_, page2) = inbound_api::list(&env.pipeline.deps, &ms, &who, 1, Some(&cursor)).await.unwrap();
    assert_eq!(page2["items"][0]["id"], r.id.as_str());
    assert_eq!(page2["items"][0]["text"], "Here is the damage");
    let (_, one) = inbound_api::get(&env.pipeline.deps, &ms, &who, &r.id).await.unwrap();
    let url = one["media"][0]["url"].as_str().expect("presigned media URL");
    assert_eq!(sha(&env.http.get(url).send().await.unwrap().bytes().await.unwrap()), sha(&served));
    assert!(one["media"][0].get("s3_key").is_none() && one.get("provider_metadata").is_none(), "{one}");
    let auditor = Caller { role: Role::Auditor, ..who.clone() };
    let (_, seen) = inbound_api::get(&env.pipeline.deps, &ms, &auditor, &r.id).await.unwrap();
    assert!(seen.get("text").is_none() && seen["media"][0].get("url").is_none(), "auditors see no content: {seen}");
    let stranger = Caller { tenant: TenantId::parse("someone-else").unwrap(), ..who.clone() };
    assert_eq!(inbound_api::get(&env.pipeline.deps, &ms, &stranger, &r.id).await.unwrap_err().status, 404);
    let (_, none) = inbound_api::list(&env.pipeline.deps, &ms, &stranger, 10, None).await.unwrap();
    assert_eq!(none["items"], json!([]));
    let bad = inbound_api::list(&env.pipeline.deps, &ms, &who, 10, Some("bm90IGEgY3Vyc29y")).await.unwrap_err();
    assert_eq!(bad.code, "invalid_cursor");

    // The tenant receives it at its callback URL, signed like status callbacks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let pushed = loop {
        let found = got.lock().unwrap().iter().find(|v| v["type"] == "message.inbound" && v["inbound"]["id"] == r.id.as_str()).cloned();
        if let Some(v) = found {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "inbound callback never arrived: {:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert_eq!(pushed["inbound"]["in_reply_to"], outbound.to_string());
    assert_eq!(pushed["inbound"]["media"][0]["sha256"], sha(&served));
    assert!(pushed["inbound"]["media"][0].get("url").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_to_a_number_that_is_not_ours_stores_nothing() {
    let env = TestEnv::start("inboundunknown").await;
    let ms = store(&env);
    let png_url = format!("{}/sandbox/media/x.png", env.sandbox.base_url());
    let msg = inbound_msg("sbx_in_x", "+12015550123", "+12015550199", "hello", vec![InboundMedia { url: png_url, content_type: None }]);
    assert_eq!(receive(&env, &ms, msg.clone()).await, InboundOutcome::UnknownNumber);
    // The webhook's view: 404.
    let resp = inbound_webhook::on_callback(&env.pipeline.deps, &ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", msg.clone()).await.unwrap();
    assert_eq!(resp.expect("refused").status(), 404);
    // The right number on the wrong account (or provider type) is refused too.
    let ours = InboundMessage { to: SENDER.into(), ..msg.clone() };
    let out = inbound_webhook::handle_inbound(&env.pipeline.deps, &ms, ProviderKind::Sandbox, &env.tenant, "no-such-account", ours.clone()).await.unwrap();
    assert_eq!(out, InboundOutcome::UnknownAccount);
    let out = inbound_webhook::handle_inbound(&env.pipeline.deps, &ms, ProviderKind::Twilio, &env.tenant, "sandbox-main", ours).await.unwrap();
    assert_eq!(out, InboundOutcome::UnknownAccount);

    let (_, list) = inbound_api::list(&env.pipeline.deps, &ms, &caller(&env), 10, None).await.unwrap();
    assert_eq!(list["items"], json!([]), "no inbound record");
    let objects = env
        .pipeline
        .clients
        .s3
        .list_objects_v2()
        .bucket(&env.pipeline.deps.cfg.media_bucket)
        .prefix(format!("inbound/{}/", env.tenant))
        .send()
        .await
        .unwrap();
    assert_eq!(objects.key_count.unwrap_or(0), 0, "no media object");
    assert!(inbound::find_inbound_ref(&ms, &env.tenant, "sandbox-main", "sbx_in_x").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_opts_out_start_opts_back_in_and_exempt_categories_still_go() {
    let env = TestEnv::start_with("optout", &[ProviderKind::Sandbox], |mut c| {
        c.categories.opt_out_exempt = vec![ContentCategory::emergency_callback()];
        c
    })
    .await;
    let hold = dispatch_common::handlers::retention::set_tenant_hold(&env.pipeline.deps, &env.tenant, true, "case 7", "test").await.unwrap();
    dispatch_common::handlers::retention::advance_hold(&env.pipeline.deps, hold, std::time::Duration::from_secs(10)).await.unwrap();
    let ms = store(&env);
    let cfg = env.pipeline.deps.tenant(&env.tenant).await.unwrap().unwrap();
    let number = E164::parse("+12015550124", None).unwrap();
    let general = ContentCategory::general();
    let emergency = ContentCategory::emergency_callback();
    assert!(!inbound::is_opted_out(&ms, &env.tenant, &number).await.unwrap());

    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_stop", "+12015550124", SENDER, "  Stop ", vec![])).await);
    assert_eq!((r.keyword, r.opt_out_action.as_deref()), (Some(inbound::Keyword::Stop), Some("opted_out")));
    assert_eq!(raw_ttl(&env, &inbound::inbound_pk(&r.id), inbound::INBOUND_SK).await, None, "no TTL under a tenant legal hold");
    assert!(inbound::is_opted_out(&ms, &env.tenant, &number).await.unwrap());
    assert_eq!(inbound::opt_out_decision(&cfg, &general, true), OptOutDecision::Reject);
    assert_eq!(inbound::check_opt_out(&ms, &cfg, &general, &number).await.unwrap(), OptOutDecision::Reject);
    match inbound::check_opt_out(&ms, &cfg, &emergency, &number).await.unwrap() {
        OptOutDecision::Exempt(reason) => assert!(reason.contains("emergency_callback"), "{reason}"),
        other => panic!("emergency callbacks are exempt here: {other:?}"),
    }
    // Opt-out is per tenant: another tenant may still write to the number.
    assert!(!inbound::is_opted_out(&ms, &TenantId::parse("someone-else").unwrap(), &number).await.unwrap());
    // Not a keyword unless it is the whole message.
    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_chat", "+12015550124", SENDER, "start the car?", vec![])).await);
    assert_eq!(r.keyword, None);
    assert!(inbound::is_opted_out(&ms, &env.tenant, &number).await.unwrap());

    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_start", "+12015550124", SENDER, "START", vec![])).await);
    assert_eq!(r.opt_out_action.as_deref(), Some("opted_in"));
    assert!(!inbound::is_opted_out(&ms, &env.tenant, &number).await.unwrap());
    assert_eq!(inbound::check_opt_out(&ms, &cfg, &general, &number).await.unwrap(), OptOutDecision::Allow);

    // A STOP the provider delivers late (it was sent before the START) does not win.
    let mut late = inbound_msg("sbx_in_late_stop", "+12015550124", SENDER, "STOP", vec![]);
    late.received_at = Some("2020-01-01T00:00:00.000Z".into());
    let r = stored(receive(&env, &ms, late).await);
    assert_eq!(r.opt_out_action.as_deref(), Some("superseded_by_later_keyword"));
    assert!(!inbound::is_opted_out(&ms, &env.tenant, &number).await.unwrap());

    // HELP is stored and forwarded like any message (it may be a citizen in need).
    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_help", "+12015550124", SENDER, "help", vec![])).await);
    assert_eq!((r.keyword, r.opt_out_action), (Some(inbound::Keyword::Help), None));
    assert!(inbound::help_text(&cfg).contains("STOP"));
    // ...and answered automatically from the number the citizen texted, once, even if
    // the provider retries the webhook.
    let again = receive(&env, &ms, inbound_msg("sbx_in_help", "+12015550124", SENDER, "help", vec![])).await;
    assert!(!matches!(again, inbound_webhook::InboundOutcome::Stored(_)), "a retried HELP is a duplicate");
    let help = inbound::help_text(&cfg);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let replies: Vec<_> = env.sandbox.received().into_iter().filter(|m| m["to"] == "+12015550124" && m["body"] == help.as_str()).collect();
        if !replies.is_empty() {
            assert_eq!(replies.len(), 1, "exactly one HELP reply");
            assert_eq!(replies[0]["from"], SENDER);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no HELP reply reached the provider: {:?}", env.sandbox.received());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_bundle_verifies_and_reveals_tampering() {
    let env = TestEnv::start("evidence").await;
    let ms = store(&env);
    let deps = &env.pipeline.deps;
    let (_, sent) = env.submit(json!({"to": "+12015550125", "body": "Please send the photo.", "category": "evidence_notification"}), None).await;
    let outbound: MessageId = sent["id"].as_str().unwrap().parse().unwrap();
    env.wait_for(&outbound.to_string(), "delivered", 20).await;
    inbound::remember_outbound(&ms, &env.tenant, &E164::parse("+12015550125", None).unwrap(), outbound, deps.clock.now()).await.unwrap();
    let png_url = format!("{}/sandbox/media/scene.png", env.sandbox.base_url());
    let msg = inbound_msg("sbx_in_ev", "+12015550125", SENDER, "Photo attached", vec![InboundMedia { url: png_url, content_type: Some("image/png".into()) }]);
    let r = stored(receive(&env, &ms, msg).await);

    let dir = std::env::temp_dir().join(format!("dispatch-evidence-{}", r.id));
    let manifest = inbound::export_evidence(&deps.store, &ms, &env.tenant, &r.id, &dir, deps.clock.now()).await.expect("exported");
    let names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["SHA256SUMS", "inbound.json", "media/0.png", "message.json", "provider_metadata.json"]);
    assert_eq!(manifest.files["media/0.png"].sha256, sha(MEDIA_PNG));
    assert_eq!(manifest.subject_id, r.id);
    let message: Value = serde_json::from_slice(&std::fs::read(dir.join("message.json")).unwrap()).unwrap();
    assert_eq!(message["message"]["id"], outbound.to_string());
    assert!(message["history"].as_array().unwrap().len() >= 5, "full history: {message:#}");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{}  media/0.png", sha(MEDIA_PNG))), "{sums}");

    let report = inbound::verify_evidence(&dir).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, 5);

    // One changed byte in the photo is caught; so are missing and extra files.
    let photo = dir.join("media/0.png");
    let original = std::fs::read(&photo).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    std::fs::write(&photo, &tampered).unwrap();
    let report = inbound::verify_evidence(&dir).unwrap();
    assert!(!report.ok);
    assert_eq!(report.mismatched, ["media/0.png"]);
    std::fs::write(&photo, &original).unwrap();
    std::fs::remove_file(dir.join("message.json")).unwrap();
    std::fs::write(dir.join("media/1.png"), b"planted").unwrap();
    let report = inbound::verify_evidence(&dir).unwrap();
    assert_eq!((report.missing.as_slice(), report.extra.as_slice()), (&["message.json".to_string()][..], &["media/1.png".to_string()][..]));

    // Never written over an existing bundle; another tenant cannot export it.
    assert!(matches!(inbound::export_evidence(&deps.store, &ms, &env.tenant, &r.id, &dir, deps.clock.now()).await, Err(EvidenceError::OutputNotEmpty(_))));
    let other = TenantId::parse("someone-else").unwrap();
    let elsewhere = dir.with_extension("other");
    assert!(matches!(inbound::export_evidence(&deps.store, &ms, &other, &r.id, &elsewhere, deps.clock.now()).await, Err(EvidenceError::NotFound)));
    // A message id exports that message with its history.
    let mdir = dir.with_extension("message");
    let m = inbound::export_evidence(&deps.store, &ms, &env.tenant, &outbound.to_string(), &mdir, deps.clock.now()).await.expect("message bundle");
    assert_eq!(m.subject_kind, "message");
    assert!(inbound::verify_evidence(&mdir).unwrap().ok);
    for d in [&dir, &mdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The tenant-wide hold is a job that resumes where it stopped: one step at a time it
/// walks messages, then inbound records, then media, saving its progress; the sweep
/// finishes it. Inbound and media records lose their TTL under the hold and get it
/// back (from their own dates) when it is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_hold_job_resumes_and_covers_inbound_and_media() {
    use dispatch_common::handlers::retention;
    use dispatch_common::store::hold::HoldPhase;
    let env = TestEnv::start("holdjob").await;
    let (deps, ms, who) = (&env.pipeline.deps, store(&env), caller(&env));
    let (_, b) = env.submit(json!({"to": "+12015550123", "body": "Before the hold.", "category": "general"}), None).await;
    let msg = b["id"].as_str().unwrap().to_string();
    env.wait_for(&msg, "delivered", 20).await;
    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_hold", "+12015550124", SENDER, "Reply before the hold", vec![])).await);
    let (_, media) = media_api::upload(deps, &ms, &who, "image/jpeg", JPEG, None, deps.clock.now()).await.unwrap();
    let media_id = media["media_id"].as_str().unwrap().to_string();
    let inbound_key = (inbound::inbound_pk(&r.id), inbound::INBOUND_SK.to_string());
    let media_key = (media::media_pk(&media_id), media::MEDIA_SK.to_string());
    assert!(raw_ttl(&env, &inbound_key.0, &inbound_key.1).await.is_some());
    assert!(raw_ttl(&env, &media_key.0, &media_key.1).await.is_some());

    let hold = retention::set_tenant_hold(deps, &env.tenant, true, "case 9", "key_admin").await.unwrap();
    let hold = retention::advance_hold_within(deps, hold, std::time::Duration::from_secs(10), 1).await.unwrap();
    assert_eq!(hold.job.phase, HoldPhase::Inbound, "one step: the messages are done");
    let stored_hold = deps.store.get_tenant_hold(&env.tenant, true).await.unwrap().unwrap();
    assert_eq!(stored_hold, hold, "progress is saved after every step");
    assert!(raw_ttl(&env, &inbound_key.0, &inbound_key.1).await.is_some(), "not reached yet");
    // The sweep resumes the job from its cursor and finishes it.
    env.sweep().await;
    let done = deps.store.get_tenant_hold(&env.tenant, true).await.unwrap().unwrap();
    assert!(!done.running(), "{done:?}");
    assert_eq!(done.job.changed, 3, "one message, one inbound record, one media record");
    assert_eq!(raw_ttl(&env, &inbound_key.0, &inbound_key.1).await, None);
    assert_eq!(raw_ttl(&env, &media_key.0, &media_key.1).await, None);
    // Created under the hold: no TTL from the start (the hold record is read strongly consistently).
    let later = stored(receive(&env, &ms, inbound_msg("sbx_in_hold2", "+12015550124", SENDER, "Reply during the hold", vec![])).await);
    assert_eq!(raw_ttl(&env, &inbound::inbound_pk(&later.id), inbound::INBOUND_SK).await, None);
    // Repeating a finished job's step changes nothing.
    let again = retention::advance_hold(deps, done.clone(), std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(again, done);

    // Lifted: records get their TTL back, counted from their own dates.
    let lift = retention::set_tenant_hold(deps, &env.tenant, false, "case closed", "key_admin").await.unwrap();
    let lifted = retention::advance_hold(deps, lift, std::time::Duration::from_secs(10)).await.unwrap();
    assert!(!lifted.running());
    let cfg = deps.tenant(&env.tenant).await.unwrap().unwrap();
    let want = dispatch_common::time::parse_iso8601(&r.received_at).unwrap().timestamp() + i64::from(cfg.retention.record_days) * 86_400;
    assert_eq!(raw_ttl(&env, &inbound_key.0, &inbound_key.1).await, Some(want));
    assert!(raw_ttl(&env, &media_key.0, &media_key.1).await.is_some());
    let (_, m) = env.get(&msg).await;
    assert_eq!(m["legal_hold"], false, "{m:#}");
}

/// An evidence bundle for a message whose media record is gone fails loudly instead
/// of leaving the media out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_export_fails_when_a_message_media_record_is_gone() {
    let env = TestEnv::start("evidencegone").await;
    let (deps, ms, who) = (&env.pipeline.deps, store(&env), caller(&env));
    let (_, media) = media_api::upload(deps, &ms, &who, "image/png", MEDIA_PNG, None, deps.clock.now()).await.unwrap();
    let media_id = media["media_id"].as_str().unwrap().to_string();
    let (s, b) = env.submit(json!({"to": "+12015550126", "body": "Photo", "category": "evidence_notification", "media": [media_id]}), None).await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    env.wait_for(&id, "delivered", 30).await;
    let dir = std::env::temp_dir().join(format!("evidence-gone-{}", std::process::id()));
    let ok = std::env::temp_dir().join(format!("evidence-ok-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&ok);
    let bundle = inbound::export_evidence(&deps.store, &ms, &env.tenant, &id, &ok, deps.clock.now()).await.expect("complete bundle");
    assert!(bundle.files.keys().any(|k| k.starts_with("message_media/")), "{:?}", bundle.files.keys());
    env.pipeline
        .clients
        .dynamodb
        .delete_item()
        .table_name(&deps.cfg.table_name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(media::media_pk(&media_id)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(media::MEDIA_SK.into()))
        .send()
        .await
        .unwrap();
    let r = inbound::export_evidence(&deps.store, &ms, &env.tenant, &id, &dir, deps.clock.now()).await;
    assert!(matches!(&r, Err(EvidenceError::Integrity(why)) if why.contains(&media_id)), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&ok);
}

/// Received media declared as HTML is stored and served as what its bytes are, as a
/// download: a link to it never renders a sender's page in a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_is_served_as_a_download_under_its_real_type() {
    let env = TestEnv::start("inboundserve").await;
    let ms = store(&env);
    let png_url = format!("{}/sandbox/media/x.png", env.sandbox.base_url());
    let media = vec![InboundMedia { url: png_url, content_type: Some("text/html".into()) }];
    let r = stored(receive(&env, &ms, inbound_msg("sbx_in_html", "+12015550123", SENDER, "see attached", media)).await);
    let key = r.media[0].s3_key.clone().expect("stored");
    assert_eq!(head(&env, &key).await.content_type.as_deref(), Some("image/png"), "stored as what the bytes are");
    assert_eq!(r.media[0].declared_type.as_deref(), Some("text/html"), "the declaration is kept as evidence");
    let who = Caller { tenant: env.tenant.clone(), role: Role::Operator, key_id: "k".into() };
    let (_, v) = inbound_api::get(&env.pipeline.deps, &ms, &who, &r.id).await.unwrap();
    let url = v["media"][0]["url"].as_str().unwrap_or_else(|| panic!("a media URL: {v}")).to_string();
    let resp = env.http.get(&url).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
}

/// Serves `/flaky` (503 the first `fails` times, then the PNG), `/hang` (answers only
/// after 60 s) and `/down` (always 503).
async fn unreliable_media_server(fails: usize) -> Server {
    let calls = Arc::new(Mutex::new(0usize));
    serve_loopback(handler(move |req| {
        let calls = calls.clone();
        async move {
            match req.uri.path() {
                "/flaky" => {
                    let n = {
                        let mut c = calls.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n <= fails { respond(503, "text/plain", "busy") } else { respond(200, "image/png", MEDIA_PNG) }
                }
                "/hang" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    respond(200, "image/png", MEDIA_PNG)
                }
                _ => respond(503, "text/plain", "down"),
            }
        }
    }))
    .await
    .unwrap()
}

/// The webhook stores an MMS and answers without downloading anything, even when a
/// media host hangs; the queued job resumes across deliveries until every item is
/// stored or recorded; a provider retry while media are pending queues the job again;
/// and a job that reaches the dead-letter queue is settled by the sweep, so the
/// message never waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_media_are_fetched_by_a_job_that_resumes_and_is_settled_from_the_dlq() {
    let env = TestEnv::start("inboundjob").await;
    // A private media queue and DLQ, so these jobs are driven here step by step
    // instead of by the runner's inbound-media poller.
    let queue = private_queue(&env, "media").await;
    let dlq = private_queue(&env, "mediadlq").await;
    let mut deps = env.pipeline.deps.clone();
    let mut cfg = (*deps.cfg).clone();
    cfg.inbound_media_queue_url = queue.clone();
    cfg.dead_letter_queues = vec![("INBOUND_MEDIA_DLQ".into(), dlq.clone())];
    deps.cfg = Arc::new(cfg);
    let ms = store(&env);
    // Two failed fetches: the first delivery's try and its quick retry.
    let host = unreliable_media_server(2).await;
    let media = |paths: &[&str]| paths.iter().map(|p| InboundMedia { url: format!("{}{p}", host.base_url()), content_type: Some("image/png".into()) }).collect::<Vec<_>>();

    let msg = inbound_msg("sbx_in_job_1", "+12015550123", SENDER, "photo", media(&["/flaky"]));
    let out = tokio::time::timeout(Duration::from_secs(5), inbound_webhook::handle_inbound(&deps, &ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", msg.clone()))
        .await
        .expect("the webhook does not wait for media")
        .unwrap();
    let first = stored(out);
    assert!(first.media_pending && first.media[0].is_pending(), "{first:?}");
    let jobs = take_jobs(&env, &queue).await;
    assert_eq!(jobs, vec![InboundMediaJob { tenant: env.tenant.clone(), inbound_id: first.id.clone() }]);

    // A provider retry while the media are pending queues the job again (the first
    // delivery might have stored the record and then failed to queue it).
    assert_eq!(
        inbound_webhook::handle_inbound(&deps, &ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", msg.clone()).await.unwrap(),
        InboundOutcome::Duplicate(first.id.clone())
    );
    assert_eq!(take_jobs(&env, &queue).await.len(), 1);

    // Delivery 1: the host answers 503 twice; the item stays pending for the next one.
    let soon = || std::time::Instant::now() + Duration::from_secs(60);
    match inbound_media::fetch(&deps, &ms, &jobs[0], Attempt::Retryable, soon()).await.unwrap() {
        Fetched::Partial(r) => assert!(r.media[0].is_pending(), "{:?}", r.media),
        other => panic!("expected progress, not completion: {other:?}"),
    }
    assert!(inbound::get_inbound(&ms, &env.tenant, &first.id).await.unwrap().unwrap().media_pending);
    // A delivery that starts too close to its deadline leaves the item for later.
    let near = std::time::Instant::now() + Duration::from_secs(5);
    assert!(matches!(inbound_media::fetch(&deps, &ms, &jobs[0], Attempt::Retryable, near).await.unwrap(), Fetched::Partial(_)));
    // Delivery 2: stored, hashed; the record is settled.
    let done = match inbound_media::fetch(&deps, &ms, &jobs[0], Attempt::Retryable, soon()).await.unwrap() {
        Fetched::Done(r) => *r,
        other => panic!("expected the media stored: {other:?}"),
    };
    assert_eq!(done.media[0].sha256.as_deref(), Some(sha(MEDIA_PNG).as_str()));
    let stored_now = inbound::get_inbound(&ms, &env.tenant, &first.id).await.unwrap().unwrap();
    assert!(!stored_now.media_pending);
    assert_eq!(stored_now.media, done.media);
    assert_eq!(sha(&object_bytes(&env, done.media[0].s3_key.as_deref().unwrap()).await), sha(MEDIA_PNG));
    // A redelivered job changes nothing.
    assert_eq!(inbound_media::fetch(&deps, &ms, &jobs[0], Attempt::Retryable, soon()).await.unwrap(), Fetched::Nothing);

    // On the job's last delivery a host that stays down is recorded, not retried.
    let msg = inbound_msg("sbx_in_job_2", "+12015550123", SENDER, "more", media(&["/down"]));
    let second = stored(inbound_webhook::handle_inbound(&deps, &ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", msg).await.unwrap());
    let job = take_jobs(&env, &queue).await.remove(0);
    assert!(matches!(inbound_media::fetch(&deps, &ms, &job, Attempt::Retryable, soon()).await.unwrap(), Fetched::Partial(_)));
    match inbound_media::fetch(&deps, &ms, &job, Attempt::Last, soon()).await.unwrap() {
        Fetched::Done(r) => assert_eq!(r.media[0].error.as_deref(), Some("http_503"), "{:?}", r.media),
        other => panic!("the last delivery settles the item: {other:?}"),
    }
    assert!(!inbound::get_inbound(&ms, &env.tenant, &second.id).await.unwrap().unwrap().media_pending);

    // A job whose function never finished (a host that hangs) reaches the DLQ; the
    // sweep records its pending item as not downloaded and keeps nothing waiting.
    let msg = inbound_msg("sbx_in_job_3", "+12015550123", SENDER, "and this", media(&["/hang"]));
    let third = tokio::time::timeout(Duration::from_secs(5), inbound_webhook::handle_inbound(&deps, &ms, ProviderKind::Sandbox, &env.tenant, "sandbox-main", msg))
        .await
        .expect("the webhook does not wait for a hanging media host")
        .unwrap();
    let third = stored(third);
    let job = take_jobs(&env, &queue).await.remove(0);
    env.pipeline.clients.sqs.send_message().queue_url(&dlq).message_body(serde_json::to_string(&job).unwrap()).send().await.unwrap();
    let report = dispatch_common::handlers::retry::sweep(&deps).await.unwrap();
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let r = inbound::get_inbound(&ms, &env.tenant, &third.id).await.unwrap().unwrap();
    assert!(!r.media_pending);
    assert_eq!(r.media[0].error.as_deref(), Some("download_not_completed"));
    assert_eq!(inbound_media::give_up(&deps, &ms, &job).await.unwrap(), Fetched::Nothing, "settled once");
    let left = env.pipeline.clients.sqs.receive_message().queue_url(&dlq).wait_time_seconds(0).send().await.unwrap();
    assert!(left.messages.unwrap_or_default().is_empty(), "the dead letter was removed");
}

async fn private_queue(env: &TestEnv, tag: &str) -> String {
    let name = dispatch_tests::harness::unique_prefix(tag);
    env.pipeline.clients.sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap()
}

/// Receives and deletes every inbound-media job on `queue`.
async fn take_jobs(env: &TestEnv, queue: &str) -> Vec<InboundMediaJob> {
    let got = env.pipeline.clients.sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
    let mut jobs = Vec::new();
    for m in got.messages.unwrap_or_default() {
        jobs.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
        env.pipeline.clients.sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
    }
    jobs
}
