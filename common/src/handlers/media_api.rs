//! The media API (served by the `submit` function next to [`super::api`]):
//!
//! - `POST /v1/media` with JSON `{content_type, size_bytes, sha256?}` → `201 {media_id,
//!   upload_url, upload_method: "PUT", upload_headers, expires_at}`: a presigned S3 PUT,
//!   valid [`media::UPLOAD_URL_TTL`], bound to that content type, size, SSE (`AES256`)
//!   and — when `sha256` is given — that checksum. Then
//! - `POST /v1/media/{id}/complete` → verifies the uploaded object (size, magic bytes vs
//!   declared type, SHA-256) → `200` with the record, status `verified`.
//! - `POST /v1/media?content_type=image/png` (or a non-JSON `Content-Type`) with the raw
//!   file as body, up to [`media::MAX_DIRECT_UPLOAD_BYTES`] → verified and stored in
//!   one step (`201`). An optional `sha256` query parameter is checked too.
//! - `GET /v1/media/{id}` → the record.
//!
//! Refusals: `media_type_not_allowed` (415), `media_too_large` (413), `media_empty`,
//! `media_type_mismatch`, `media_size_mismatch`, `media_hash_mismatch` (422),
//! `media_not_uploaded` (409), `mms_not_allowed` (403). Another tenant's media id answers
//! 404 exactly like a missing one.

use super::Deps;
use crate::auth::Caller;
use crate::error::{ApiError, StoreError};
use crate::media::{self, MediaCheckError, MediaRecord, MediaStatus, MediaStore};
use crate::tenant::TenantConfig;
use crate::time::{iso8601, Instant};
use lambda_http::{Body, Request};
use serde::Deserialize;
use serde_json::json;

/// `POST /v1/media` JSON body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMedia {
    pub content_type: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Routes `/v1/media...`; `None` for any other path (the caller's router goes on).
pub async fn dispatch(deps: &Deps, ms: &MediaStore, req: &Request, caller: &Caller, now: Instant) -> Option<Result<(u16, serde_json::Value), ApiError>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().as_str();
    Some(match (method, segments.as_slice()) {
        ("POST", ["v1", "media"]) => post_media(deps, ms, req, caller, now).await,
        ("GET", ["v1", "media", id]) => get(deps, ms, caller, id).await,
        ("POST", ["v1", "media", id, "complete"]) => complete(deps, ms, caller, id, now).await,
        (_, ["v1", "media"]) | (_, ["v1", "media", _]) | (_, ["v1", "media", _, "complete"]) => {
            Err(ApiError::new(405, "method_not_allowed", format!("{method} is not supported on {path}.")))
        }
        (_, ["v1", "media", ..]) => Err(ApiError::new(404, "no_such_route", format!("There is no endpoint at {path}."))),
        _ => return None,
    })
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) | StoreError::Conflict => ApiError::unavailable(),
        _ => ApiError::internal(),
    }
}

fn body(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

async fn post_media(deps: &Deps, ms: &MediaStore, req: &Request, caller: &Caller, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    let q: Vec<(String, String)> = req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let header_ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|ct| media::normalize_content_type(ct) != "application/json");
    match param("content_type").or(header_ct) {
        Some(ct) => upload(deps, ms, caller, &ct, body(req), param("sha256").as_deref(), now).await,
        None => {
            let b = body(req);
            if b.len() > 4096 {
                return Err(ApiError::new(413, "body_too_large", "The JSON request is limited to 4096 bytes; send files with ?content_type=... or the upload URL."));
            }
            let r: CreateMedia = serde_json::from_slice(b).map_err(|e| {
                ApiError::bad_request("invalid_json", format!("The request body is not valid JSON for this endpoint: {e}."))
            })?;
            create(deps, ms, caller, r, now).await
        }
    }
}

async fn check_caller(deps: &Deps, caller: &Caller) -> Result<std::sync::Arc<TenantConfig>, ApiError> {
    if !caller.role.can_submit() {
        return Err(ApiError::forbidden("This endpoint needs a key with the sender, operator or admin role."));
    }
    let cfg = deps.tenant(&caller.tenant).await.map_err(store_err)?.ok_or_else(|| {
        ApiError::unprocessable("tenant_not_configured", "Your tenant has no configuration yet; an admin must set one first.")
    })?;
    if !cfg.delivery.mms_allowed {
        return Err(ApiError::new(403, "mms_not_allowed", "MMS is disabled for your tenant (delivery.mms_allowed)."));
    }
    Ok(cfg)
}

fn parse_sha256(v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => Ok(Some(h.to_ascii_lowercase())),
        Some(_) => Err(ApiError::unprocessable("invalid_sha256", "sha256 must be 64 hexadecimal characters.").field("sha256")),
    }
}

/// The public view of a media record (no internal object key).
pub fn view(r: &MediaRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("s3_key");
        o.remove("created_by");
        if let Some(id) = o.remove("id") {
            o.insert("media_id".into(), id);
        }
    }
    v
}

/// `POST /v1/media` (JSON): a pending record and a presigned PUT.
pub async fn create(deps: &Deps, ms: &MediaStore, caller: &Caller, r: CreateMedia, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    let cfg = check_caller(deps, caller).await?;
    let ct = media::check_declared(&r.content_type, r.size_bytes).map_err(|e| e.to_api())?;
    let sha = parse_sha256(r.sha256.as_deref())?;
    let bucket = ms.require_bucket().map_err(store_err)?.to_string();
    let rec = media::pending_record(&caller.tenant, ct, r.size_bytes, sha, &caller.key_id, now);
    let (url, headers) =
        media::presigned_put(&ms.s3, &bucket, &rec.s3_key, &rec.content_type, rec.size, rec.declared_sha256.as_deref(), media::UPLOAD_URL_TTL)
            .await
            .map_err(store_err)?;
    ms.put_media(&rec, media::media_ttl(MediaStatus::Pending, now, &cfg, false)).await.map_err(store_err)?;
    tracing::info!(media_id = %rec.id, tenant = %rec.tenant, content_type = %rec.content_type, size = rec.size, "media upload slot created");
    let expires_at = iso8601(now + chrono::Duration::from_std(media::UPLOAD_URL_TTL).unwrap_or_default());
    let headers: serde_json::Map<String, serde_json::Value> = headers.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok((
        201,
        json!({
            "media_id": rec.id,
            "status": rec.status,
            "content_type": rec.content_type,
            "size_bytes": rec.size,
            "upload_url": url,
            "upload_method": "PUT",
            "upload_headers": headers,
            "expires_at": expires_at,
            "complete_url": format!("/v1/media/{}/complete", rec.id),
        }),
    ))
}

/// `POST /v1/media?content_type=...` with the file as body: verified, then stored.
pub async fn upload(
    deps: &Deps,
    ms: &MediaStore,
    caller: &Caller,
    content_type: &str,
    bytes: &[u8],
    sha256: Option<&str>,
    now: Instant,
) -> Result<(u16, serde_json::Value), ApiError> {
    let cfg = check_caller(deps, caller).await?;
    let declared_sha = parse_sha256(sha256)?;
    if bytes.len() > media::MAX_DIRECT_UPLOAD_BYTES {
        return Err(MediaCheckError::TooLarge { size: bytes.len() as u64, limit: media::MAX_DIRECT_UPLOAD_BYTES as u64 }
            .to_api()
            .field("body"));
    }
    let v = media::check_bytes(content_type, bytes, declared_sha.as_deref()).map_err(|e| e.to_api())?;
    let mut rec = media::pending_record(&caller.tenant, v.content_type.clone(), v.size, declared_sha, &caller.key_id, now);
    rec.upload = "direct".into();
    let meta = [("sha256", v.sha256.clone()), ("sniffed-type", v.sniffed_type.clone()), ("tenant", caller.tenant.to_string()), ("media-id", rec.id.clone())];
    ms.put_object(&rec.s3_key, bytes.to_vec(), &v.content_type, &meta, &v.sha256).await.map_err(store_err)?;
    rec.status = MediaStatus::Verified;
    rec.sha256 = Some(v.sha256);
    rec.sniffed_type = Some(v.sniffed_type);
    rec.verified_at = Some(iso8601(now));
    ms.put_media(&rec, media::media_ttl(MediaStatus::Verified, now, &cfg, deps.store.tenant_held(&caller.tenant).await.map_err(store_err)?)).await.map_err(store_err)?;
    tracing::info!(media_id = %rec.id, tenant = %rec.tenant, content_type = %rec.content_type, size = rec.size, "media uploaded and verified");
    Ok((201, view(&rec)))
}

/// `GET /v1/media/{id}`.
pub async fn get(_deps: &Deps, ms: &MediaStore, caller: &Caller, id: &str) -> Result<(u16, serde_json::Value), ApiError> {
    match ms.get_media(&caller.tenant, id).await.map_err(store_err)? {
        Some(r) => Ok((200, view(&r))),
        None => Err(ApiError::not_found("media")),
    }
}

/// `POST /v1/media/{id}/complete`: verifies the uploaded object. Idempotent: a
/// verified record is returned as is; a rejected one answers its error again.
pub async fn complete(deps: &Deps, ms: &MediaStore, caller: &Caller, id: &str, now: Instant) -> Result<(u16, serde_json::Value), ApiError> {
    if !caller.role.can_submit() {
        return Err(ApiError::forbidden("This endpoint needs a key with the sender, operator or admin role."));
    }
    let Some(rec) = ms.get_media(&caller.tenant, id).await.map_err(store_err)? else {
        return Err(ApiError::not_found("media"));
    };
    match rec.status {
        MediaStatus::Verified => return Ok((200, view(&rec))),
        MediaStatus::Rejected => {
            let code = rec.error_code.as_deref().unwrap_or("media_rejected");
            return Err(ApiError::new(
                rejected_status(code),
                code,
                rec.error.clone().unwrap_or_else(|| "This media was rejected; upload it again.".into()),
            ));
        }
        MediaStatus::Pending | MediaStatus::Uploaded => {}
    }
    let cfg = deps.tenant(&caller.tenant).await.map_err(store_err)?.ok_or_else(ApiError::internal)?;
    let Some((size, sse)) = ms.head_object(&rec.s3_key).await.map_err(store_err)? else {
        return Err(ApiError::conflict("media_not_uploaded", "Nothing was uploaded for this media yet; PUT the file to its upload_url first."));
    };
    let bytes = if size == 0 {
        Err(MediaCheckError::Empty)
    } else if size > media::MAX_MEDIA_BYTES {
        Err(MediaCheckError::TooLarge { size, limit: media::MAX_MEDIA_BYTES })
    } else if size != rec.size {
        Err(MediaCheckError::SizeMismatch { declared: rec.size, actual: size })
    } else {
        Ok(())
    };
    let mut etag = None;
    let checked = match bytes {
        Err(e) => Err(e),
        Ok(()) => {
            let (content, tag) = ms.get_object_tagged(&rec.s3_key, media::MAX_MEDIA_BYTES).await.map_err(store_err)?.ok_or_else(|| {
                ApiError::conflict("media_not_uploaded", "Nothing was uploaded for this media yet; PUT the file to its upload_url first.")
            })?;
            etag = tag;
            media::check_bytes(&rec.content_type, &content, rec.declared_sha256.as_deref())
        }
    };
    match checked {
        Ok(v) => {
            if sse.is_none() {
                // The upload URL requires SSE and the bucket encrypts by default; an
                // unencrypted object means something bypassed both.
                tracing::error!(media_id = %rec.id, "uploaded media object is not encrypted at rest; refused");
                reject(ms, &rec, "media_not_encrypted", "The stored object is not encrypted at rest; upload it again.", now, &cfg).await?;
                return Err(ApiError::unprocessable("media_not_encrypted", "The stored object is not encrypted at rest; upload it again."));
            }
            // Move the checked bytes where no upload URL reaches, copying only if they
            // are still exactly the bytes just checked.
            let verified_key = media::verified_media_key(&caller.tenant, &rec.id);
            let Some(etag) = etag else { return Err(ApiError::unavailable()) };
            match ms.copy_if_unchanged(&rec.s3_key, &verified_key, &etag, &v.sniffed_type).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    return Err(ApiError::conflict("media_changed", "The upload changed while it was being checked; complete it again."));
                }
                Err(e) => return Err(store_err(e)),
            }
            let upload_key = rec.s3_key.clone();
            let mut next = rec.clone();
            next.s3_key = verified_key;
            next.status = MediaStatus::Verified;
            next.sha256 = Some(v.sha256);
            next.sniffed_type = Some(v.sniffed_type);
            next.verified_at = Some(iso8601(now));
            match ms.update_media(&next, rec.status, media::media_ttl(MediaStatus::Verified, now, &cfg, deps.store.tenant_held(&caller.tenant).await.map_err(store_err)?)).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    // Completed concurrently: answer with whatever won.
                    let current = ms.get_media(&caller.tenant, id).await.map_err(store_err)?.ok_or_else(ApiError::internal)?;
                    return Ok((200, view(&current)));
                }
                Err(e) => return Err(store_err(e)),
            }
            // The upload object is no longer needed (and nothing written there later counts).
            if let Err(e) = ms.delete_object(&upload_key).await {
                tracing::warn!(media_id = %next.id, error = %e, "could not delete the upload object after verification");
            }
            tracing::info!(media_id = %next.id, tenant = %next.tenant, content_type = %next.content_type, size = next.size, "media verified");
            Ok((200, view(&next)))
        }
        Err(e) => {
            tracing::info!(media_id = %rec.id, tenant = %rec.tenant, code = e.code(), "uploaded media refused");
            reject(ms, &rec, e.code(), &format!("{e}"), now, &cfg).await?;
            Err(e.to_api())
        }
    }
}

/// The status a rejected record answers again: the one its refusal was first sent with
/// (a too-large file stays 413, not 422).
fn rejected_status(code: &str) -> u16 {
    match code {
        "media_too_large" => 413,
        "media_type_not_allowed" => 415,
        _ => 422,
    }
}

/// Marks a record rejected and deletes its object, so refused content can never be sent.
async fn reject(ms: &MediaStore, rec: &MediaRecord, code: &str, why: &str, now: Instant, cfg: &TenantConfig) -> Result<(), ApiError> {
    if let Err(e) = ms.delete_object(&rec.s3_key).await {
        tracing::warn!(media_id = %rec.id, error = %e, "could not delete refused media object");
    }
    let mut next = rec.clone();
    next.status = MediaStatus::Rejected;
    next.error_code = Some(code.to_string());
    next.error = Some(why.to_string());
    match ms.update_media(&next, rec.status, media::media_ttl(MediaStatus::Rejected, now, cfg, false)).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rejected_record_answers_the_status_of_its_first_refusal() {
        assert_eq!(super::rejected_status("media_too_large"), 413);
        assert_eq!(super::rejected_status("media_type_not_allowed"), 415);
        assert_eq!(super::rejected_status("media_hash_mismatch"), 422);
    }
}
