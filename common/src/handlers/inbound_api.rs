//! The inbound read API: `GET /v1/inbound` (newest first, cursor-paginated) and
//! `GET /v1/inbound/{id}` (with short-lived media URLs). The webhook side that
//! records inbound messages is [`super::inbound_webhook`].

use super::Deps;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, StoreError};
use crate::inbound::{self, InboundRecord};
use crate::media::{self, MediaStore};
use crate::time::parse_iso8601;
use base64::Engine;
use lambda_http::Request;
use serde_json::json;

/// Routes `/v1/inbound...`; `None` for any other path (the caller's router goes on).
pub async fn dispatch_api(deps: &Deps, ms: &MediaStore, req: &Request, caller: &Caller) -> Option<Result<(u16, serde_json::Value), ApiError>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str();
    Some(match (method, segments.as_slice()) {
        ("GET", ["v1", "inbound"]) => {
            let q = query_pairs(req);
            let limit = match q.iter().find(|(k, _)| k == "limit").map(|(_, v)| v.parse::<u32>()) {
                None => 50,
                Some(Ok(n)) if (1..=100).contains(&n) => n,
                Some(_) => return Some(Err(ApiError::bad_request("invalid_limit", "limit must be 1-100.").field("limit"))),
            };
            let cursor = q.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v.clone());
            list(deps, ms, caller, limit, cursor.as_deref()).await
        }
        ("GET", ["v1", "inbound", id]) => get(deps, ms, caller, id).await,
        (_, ["v1", "inbound"]) | (_, ["v1", "inbound", _]) => {
            Err(ApiError::new(405, "method_not_allowed", format!("{method} is not supported on {path}.")))
        }
        (_, ["v1", "inbound", ..]) => Err(ApiError::new(404, "no_such_route", format!("There is no endpoint at {path}."))),
        _ => return None,
    })
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) | StoreError::Conflict => ApiError::unavailable(),
        _ => ApiError::internal(),
    }
}

/// `GET /v1/inbound?limit=&cursor=`: the tenant's inbound messages, newest first.
/// Whether the caller may read texts and media: everyone but auditors, and auditors
/// where the tenant allows it (`auditors_see_bodies`), as for message bodies.
async fn sees_content(deps: &Deps, caller: &Caller) -> Result<bool, ApiError> {
    Ok(caller.role != Role::Auditor || deps.tenant(&caller.tenant).await.map_err(store_err)?.is_some_and(|t| t.auditors_see_bodies))
}

pub async fn list(deps: &Deps, ms: &MediaStore, caller: &Caller, limit: u32, cursor: Option<&str>) -> Result<(u16, serde_json::Value), ApiError> {
    let after = match cursor {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API returned.").field("cursor"))?),
    };
    let (records, next) = inbound::list_inbound(ms, &caller.tenant, limit, after.as_deref()).await.map_err(store_err)?;
    let with_body = sees_content(deps, caller).await?;
    let items: Vec<_> = records.iter().map(|r| view(r, with_body, &[])).collect();
    Ok((200, json!({"items": items, "next_cursor": next.map(|n| encode_cursor(&n))})))
}

/// `GET /v1/inbound/{id}`: one inbound message with short-lived media URLs. Another
/// tenant's id answers 404 exactly like a missing one.
pub async fn get(deps: &Deps, ms: &MediaStore, caller: &Caller, id: &str) -> Result<(u16, serde_json::Value), ApiError> {
    let Some(r) = inbound::get_inbound(ms, &caller.tenant, id).await.map_err(store_err)? else {
        return Err(ApiError::not_found("inbound message"));
    };
    let with_body = sees_content(deps, caller).await?;
    let mut urls = Vec::new();
    if with_body {
        for m in &r.media {
            urls.push(match &m.s3_key {
                Some(k) => {
                    let content_type = media::safe_serving_type(m.sniffed_type.as_deref());
                    let filename = format!("{}-{}.{}", r.id, m.index, inbound::extension(Some(content_type)));
                    Some(media::presigned_download(&ms.s3, &ms.bucket, k, media::PROVIDER_URL_TTL, content_type, &filename).await.map_err(store_err)?)
                }
                None => None,
            });
        }
    }
    Ok((200, view(&r, with_body, &urls)))
}

/// The public view: everything but internal keys and source URLs (they may carry
/// provider tokens); no text or media URLs for auditors.
pub fn view(r: &InboundRecord, with_body: bool, urls: &[Option<String>]) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("provider_metadata");
        o.insert("media_pending".into(), json!(r.media_pending));
        if !with_body {
            o.remove("text");
        }
        if let Some(items) = o.get_mut("media").and_then(|m| m.as_array_mut()) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Some(m) = item.as_object_mut() {
                    m.remove("s3_key");
                    m.remove("source_url");
                    if let Some(Some(u)) = urls.get(i) {
                        m.insert("url".into(), json!(u));
                    }
                }
            }
        }
    }
    v
}

fn encode_cursor(sk: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sk)
}

/// Accepts only what [`encode_cursor`] produced: `<ISO 8601>#inb_<ULID>`.
fn decode_cursor(c: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (at, id) = s.split_once('#')?;
    (parse_iso8601(at).is_some() && inbound::is_inbound_id(id)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let sk = format!("2026-01-01T00:00:00.000Z#{}", inbound::new_inbound_id());
        assert_eq!(decode_cursor(&encode_cursor(&sk)), Some(sk));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&encode_cursor("TENANT#other#INBOUND")), None);
    }
}
