//! MMS and inbound end to end through the real API and webhook routes: media upload, an
//! MMS delivered, a citizen's reply linked to the conversation and listed, STOP opting the
//! number out (the next submit is refused), and an unknown destination storing nothing.

use dispatch_local::sandbox::MEDIA_PNG;
use dispatch_tests::harness::{TestEnv, SANDBOX_API_KEY};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_out_inbound_reply_stop_and_opt_out_through_the_real_routes() {
    let env = TestEnv::start("mmse2e").await;
    let api = env.pipeline.api_url();
    // Direct upload through the API.
    let resp = env.http.post(format!("{api}/v1/media?content_type=image/png")).bearer_auth(&env.key).body(MEDIA_PNG.to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let media: Value = resp.json().await.unwrap();
    let media_id = media["media_id"].as_str().unwrap().to_string();
    // Presigned slot through the API.
    let resp = env
        .http
        .post(format!("{api}/v1/media"))
        .bearer_auth(&env.key)
        .header("content-type", "application/json")
        .body(json!({"content_type": "image/png", "size_bytes": 3}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    // MMS submit with that media.
    let (status, body) = env.submit(json!({"to": "+12015550126", "body": "Photo of the suspect vehicle", "category": "general", "media": [media_id]}), None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let m = env.wait_for(&id, "delivered", 30).await;
    assert_eq!(m["kind"], "mms", "{m}");
    let sent = env.sandbox.received().into_iter().find(|r| r["client_ref"] == id.as_str()).expect("sandbox got it");
    let url = sent["media_urls"][0].as_str().unwrap().to_string();
    let fetched = env.http.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&fetched)), hex::encode(Sha256::digest(MEDIA_PNG)));
    // A foreign/unknown media id is refused at submit.
    let (status, body) = env.submit(json!({"to": "+12015550126", "body": "x", "category": "general", "media": ["med_01ARZ3NDEKTSV4RRFFQ69G5FAV"]}), None).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("media_not_found")), "{body}");

    // The citizen replies STOP with a photo, through the sandbox and the real webhook.
    let cb = format!("{}/webhooks/sandbox/{}/sandbox-main", env.pipeline.webhook_url(), env.tenant);
    let media_url = format!("{}/sandbox/media/reply.png", env.sandbox.base_url());
    let resp = env
        .http
        .post(format!("{}/sandbox/inbound", env.sandbox.base_url()))
        .bearer_auth(SANDBOX_API_KEY)
        .json(&json!({"from": "+12015550126", "to": "+12015550100", "callback_url": cb, "text": "STOP", "media": [{"url": media_url, "content_type": "image/png"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // And one to a number that is not ours (the webhook answers 404; nothing stored).
    env.http
        .post(format!("{}/sandbox/inbound", env.sandbox.base_url()))
        .bearer_auth(SANDBOX_API_KEY)
        .json(&json!({"from": "+12015550126", "to": "+12015550199", "callback_url": cb, "text": "hi"}))
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let list = loop {
        let v: Value = env.http.get(format!("{api}/v1/inbound")).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
        // Listed at once; its photo is stored by the inbound-media job shortly after.
        if v["items"].as_array().is_some_and(|a| !a.is_empty() && a[0]["media_pending"] == false) {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "inbound never listed with its media settled: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v: Value = env.http.get(format!("{api}/v1/inbound")).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "unknown number stored nothing: {v}");
    let item = &list["items"][0];
    assert_eq!(item["in_reply_to"], id.as_str(), "{item}");
    assert_eq!(item["keyword"], "stop");
    assert_eq!(item["media"][0]["sha256"], hex::encode(Sha256::digest(MEDIA_PNG)));
    let one: Value = env.http.get(format!("{api}/v1/inbound/{}", item["id"].as_str().unwrap())).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
    assert!(one["media"][0]["url"].is_string(), "{one}");

    // Opted out: a general message is refused; an emergency callback is not exempt by default.
    let (status, body) = env.submit(json!({"to": "+12015550126", "body": "Update", "category": "general"}), None).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("recipient_opted_out")), "{body}");
}
