//! MMS media: what we accept, how it is checked, where it lives.
//!
//! Outbound media is uploaded by a workflow (`POST /v1/media`, see
//! [`crate::handlers::media_api`]) either through a short-lived presigned S3 PUT or
//! directly in the request body, then **verified**: the object's leading bytes must
//! match the declared MIME type (magic bytes, [`sniff`]), it must not be empty or
//! larger than [`MAX_MEDIA_BYTES`], and its SHA-256 is recorded (and compared with the
//! one the workflow declared, if any). Only verified media can be attached to a message.
//!
//! Objects live in the media bucket, always written with SSE (`AES256`):
//! `media/{tenant}/{media_id}` for outbound media, `inbound/{tenant}/{inbound_id}/{n}`
//! for media received from citizens ([`crate::inbound`]). Providers fetch outbound media
//! through [`presigned_get`] URLs valid for [`PROVIDER_URL_TTL`].
//!
//! Records (single table, see docs/mms-and-inbound.md): `pk = MEDIA#{media_id}`,
//! `sk = MEDIA`, `type = media`, `tenant`, `status`, `doc` (the [`MediaRecord`]), `ttl`.

use crate::aws::Clients;
use crate::config::PlatformConfig;
use crate::domain::TenantId;
use crate::error::{ApiError, StoreError};
use crate::tenant::TenantConfig;
use crate::time::{iso8601, Instant};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// Largest media object we store or hand to a provider (the most any provider
/// we support accepts for one MMS; per-provider limits are checked at routing by
/// [`check_provider_limits`]).
pub const MAX_MEDIA_BYTES: u64 = 5 * 1024 * 1024;
/// Largest body for a direct upload (`POST /v1/media?content_type=...`). Lambda caps a
/// synchronous request at 6 MB *after* API Gateway base64-encodes a binary body
/// (4/3 growth), so 4 MiB is the most that reliably fits; larger files go through
/// the presigned PUT.
pub const MAX_DIRECT_UPLOAD_BYTES: usize = 4 * 1024 * 1024;
/// Most media items on one message.
pub const MAX_MEDIA_PER_MESSAGE: usize = 10;
/// Lifetime of a presigned upload URL.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(10 * 60);
/// Lifetime of a presigned download URL given to a provider (or to a tenant reading
/// inbound media through the API).
pub const PROVIDER_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// An upload slot that was never completed is forgotten after a day.
pub const PENDING_TTL_SECS: i64 = 24 * 3600;

pub const MEDIA_SK: &str = "MEDIA";

// The media-type rules (RFC 2046 names, magic bytes) are pure domain rules, and the
// per-provider limits belong to the provider layer; both are re-exported here.
pub use crate::domain::media_type::{is_allowed_type, normalize_content_type, safe_serving_type, sniff, type_matches, ALLOWED_TYPES};
pub use crate::providers::check_provider_limits;

pub fn tenant_media_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#MEDIA")
}

pub fn media_pk(id: &str) -> String {
    format!("MEDIA#{id}")
}

/// `media/{tenant}/{media_id}`.
pub fn media_key(tenant: &TenantId, id: &str) -> String {
    format!("media/{tenant}/{id}")
}

/// Where a presigned upload's object lives once it is verified: a key no upload URL
/// was ever signed for, so the checked bytes cannot be replaced before providers fetch
/// them (the upload URL stays valid for its whole lifetime).
pub fn verified_media_key(tenant: &TenantId, id: &str) -> String {
    format!("media/{tenant}/verified/{id}")
}

/// A new media id: `med_` + a ULID (sorts by creation time).
pub fn new_media_id() -> String {
    format!("med_{}", ulid::Ulid::new())
}

/// True for strings shaped like our media ids (keeps junk out of keys and queries).
pub fn is_media_id(s: &str) -> bool {
    s.strip_prefix("med_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// Why media was refused. Each variant has a stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaCheckError {
    #[error("media type {0} is not accepted; use one of: {allowed}", allowed = ALLOWED_TYPES.join(", "))]
    TypeNotAllowed(String),
    #[error("the media is empty (0 bytes)")]
    Empty,
    #[error("the media is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge { size: u64, limit: u64 },
    #[error("the content does not look like {declared} (its leading bytes {})", match .sniffed { Some(s) => format!("look like {s}"), None => "match no accepted type".into() })]
    TypeMismatch { declared: String, sniffed: Option<String> },
    #[error("the object is {actual} bytes but {declared} were declared")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("the content's SHA-256 does not match the declared sha256")]
    HashMismatch,
}

impl MediaCheckError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TypeNotAllowed(_) => "media_type_not_allowed",
            Self::Empty => "media_empty",
            Self::TooLarge { .. } => "media_too_large",
            Self::TypeMismatch { .. } => "media_type_mismatch",
            Self::SizeMismatch { .. } => "media_size_mismatch",
            Self::HashMismatch => "media_hash_mismatch",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::TypeNotAllowed(_) => 415,
            Self::TooLarge { .. } => 413,
            _ => 422,
        }
    }

    pub fn to_api(&self) -> ApiError {
        let field = match self {
            Self::TypeNotAllowed(_) | Self::TypeMismatch { .. } => "content_type",
            Self::Empty | Self::TooLarge { .. } | Self::SizeMismatch { .. } => "size_bytes",
            Self::HashMismatch => "sha256",
        };
        ApiError::new(self.status(), self.code(), format!("{}.", capitalise(&self.to_string()))).field(field)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Checks a declared type and size before anything is stored. Returns the
/// normalised type.
pub fn check_declared(content_type: &str, size: u64) -> Result<String, MediaCheckError> {
    let ct = normalize_content_type(content_type);
    if !is_allowed_type(&ct) {
        return Err(MediaCheckError::TypeNotAllowed(if ct.is_empty() { "(none)".into() } else { ct }));
    }
    if size == 0 {
        return Err(MediaCheckError::Empty);
    }
    if size > MAX_MEDIA_BYTES {
        return Err(MediaCheckError::TooLarge { size, limit: MAX_MEDIA_BYTES });
    }
    Ok(ct)
}

/// What verification learned about the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub content_type: String,
    pub sniffed_type: String,
    pub size: u64,
    pub sha256: String,
}

/// Verifies content against its declared type (and optionally declared SHA-256).
pub fn check_bytes(declared_type: &str, bytes: &[u8], declared_sha256: Option<&str>) -> Result<Verified, MediaCheckError> {
    let ct = check_declared(declared_type, bytes.len() as u64)?;
    let sniffed = sniff(bytes);
    if !type_matches(&ct, sniffed) {
        return Err(MediaCheckError::TypeMismatch { declared: ct, sniffed: sniffed.map(str::to_string) });
    }
    let sha256 = hex::encode(Sha256::digest(bytes));
    if declared_sha256.is_some_and(|d| !d.eq_ignore_ascii_case(&sha256)) {
        return Err(MediaCheckError::HashMismatch);
    }
    Ok(Verified { content_type: ct, sniffed_type: sniffed.unwrap_or_default().to_string(), size: bytes.len() as u64, sha256 })
}

// ---------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// An upload URL was handed out; nothing verified yet.
    Pending,
    /// The object is in S3 but not verified yet (direct uploads pass through this
    /// state within one request).
    Uploaded,
    /// Type, size and hash checked: may be attached to messages.
    Verified,
    /// Verification failed; the object was deleted. `error_code` says why.
    Rejected,
}

impl MediaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Uploaded => "uploaded",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub id: String,
    pub tenant: TenantId,
    /// The declared MIME type, normalised.
    pub content_type: String,
    /// Declared size (pending) or verified size in bytes.
    pub size: u64,
    /// SHA-256 hex of the content, computed by us at verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-256 the uploader declared, if any (checked at verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sniffed_type: Option<String>,
    pub status: MediaStatus,
    pub s3_key: String,
    /// `presigned` or `direct`.
    pub upload: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// API key that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The AWS resources media, inbound messages, opt-outs and the last-outbound
/// pointers live in, plus the HTTP clients that download inbound media. Cheap to
/// clone; build once per function instance. (The wiring adds one to
/// [`crate::handlers::Deps`]; until then callers pass it alongside `Deps`.)
#[derive(Clone, Debug)]
pub struct MediaStore {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
    pub bucket: String,
    /// Built on first inbound media download: only the webhook function downloads,
    /// and building its two HTTPS clients (TLS roots included) would slow every
    /// other function's init.
    fetcher: std::sync::Arc<std::sync::OnceLock<crate::public_http::Fetcher>>,
}

impl MediaStore {
    pub fn new(clients: &Clients, cfg: &PlatformConfig) -> Self {
        Self::from_parts(clients.s3.clone(), clients.dynamodb.clone(), cfg.table_name.clone(), cfg.media_bucket.clone())
    }

    pub fn from_parts(s3: aws_sdk_s3::Client, dynamodb: aws_sdk_dynamodb::Client, table: String, bucket: String) -> Self {
        Self { s3, dynamodb, table, bucket, fetcher: Default::default() }
    }

    /// The SSRF-safe downloader for inbound media, built on first use.
    pub(crate) fn fetcher(&self) -> &crate::public_http::Fetcher {
        self.fetcher.get_or_init(crate::public_http::Fetcher::new)
    }

    pub(crate) fn require_bucket(&self) -> Result<&str, StoreError> {
        if self.bucket.is_empty() {
            Err(StoreError::Unavailable("MEDIA_BUCKET is not configured".into()))
        } else {
            Ok(&self.bucket)
        }
    }

    /// Stores a new media record (`attribute_not_exists(pk)`).
    pub async fn put_media(&self, r: &MediaRecord, ttl: Option<i64>) -> Result<(), StoreError> {
        let item = media_item(r, ttl)?;
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(ddb_err)?;
        Ok(())
    }

    /// Replaces a media record if its status is still `from` (so two concurrent
    /// completions cannot both win).
    pub async fn update_media(&self, r: &MediaRecord, from: MediaStatus, ttl: Option<i64>) -> Result<(), StoreError> {
        let item = media_item(r, ttl)?;
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#st = :from")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .send()
            .await
            .map_err(ddb_err)?;
        Ok(())
    }

    /// A media record of this tenant; another tenant's id reads as missing.
    pub async fn get_media(&self, tenant: &TenantId, id: &str) -> Result<Option<MediaRecord>, StoreError> {
        if !is_media_id(id) {
            return Ok(None);
        }
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(media_pk(id)))
            .key("sk", s(MEDIA_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(ddb_err)?;
        let Some(item) = out.item else { return Ok(None) };
        let r: MediaRecord = parse_doc(&item)?;
        Ok(if &r.tenant == tenant { Some(r) } else { None })
    }

    /// Writes an object with SSE-S3 (`AES256`), its content type, user metadata and a
    /// SHA-256 checksum S3 verifies on receipt.
    pub async fn put_object(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        metadata: &[(&str, String)],
        sha256_hex: &str,
    ) -> Result<(), StoreError> {
        let bucket = self.require_bucket()?;
        let checksum = hex::decode(sha256_hex).map(|d| base64::engine::general_purpose::STANDARD.encode(d)).unwrap_or_default();
        let mut req = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(bytes.into());
        if !checksum.is_empty() {
            req = req.checksum_sha256(checksum);
        }
        for (k, v) in metadata {
            // S3 user metadata must be US-ASCII; anything else is left out, not mangled.
            if v.is_ascii() && !v.is_empty() && v.len() <= 1024 {
                req = req.metadata(*k, v);
            }
        }
        req.send().await.map_err(s3_err)?;
        Ok(())
    }

    /// Reads an object whole, refusing one larger than `limit` bytes.
    pub async fn get_object(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_object_tagged(key, limit).await?.map(|(bytes, _)| bytes))
    }

    /// The object's bytes and ETag (see [`Self::get_object`]).
    pub async fn get_object_tagged(&self, key: &str, limit: u64) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let bucket = self.require_bucket()?;
        let out = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_err(e)),
        };
        if out.content_length.unwrap_or(0) as u64 > limit {
            return Err(StoreError::Corrupt(format!("object larger than {limit} bytes")));
        }
        let etag = out.e_tag.clone();
        let bytes = out.body.collect().await.map_err(|e| StoreError::Unavailable(format!("reading object: {e}")))?.into_bytes().to_vec();
        if bytes.len() as u64 > limit {
            return Err(StoreError::Corrupt(format!("object larger than {limit} bytes")));
        }
        Ok(Some((bytes, etag)))
    }

    /// Copies `from` to `to` only if `from` still has `etag` (the bytes that were
    /// checked). `Conflict` when it changed in between.
    pub async fn copy_if_unchanged(&self, from: &str, to: &str, etag: &str, content_type: &str) -> Result<(), StoreError> {
        let bucket = self.require_bucket()?;
        let source = format!("{bucket}/{}", urlencoding_path(from));
        match self
            .s3
            .copy_object()
            .bucket(bucket)
            .key(to)
            .copy_source(source)
            .copy_source_if_match(etag)
            .content_type(content_type)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Err(StoreError::Conflict),
            Err(e) => Err(s3_err(e)),
        }
    }

    /// `(size, server-side encryption)` of an object, or `None` if it is not there.
    pub async fn head_object(&self, key: &str) -> Result<Option<(u64, Option<String>)>, StoreError> {
        let bucket = self.require_bucket()?;
        match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(o) => Ok(Some((
                o.content_length.unwrap_or(0).max(0) as u64,
                o.server_side_encryption.map(|e| e.as_str().to_string()),
            ))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => {
                // HEAD errors have no body, so some stacks report a 404 as unhandled.
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) {
                    Ok(None)
                } else {
                    Err(s3_err(e))
                }
            }
        }
    }

    pub async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        let bucket = self.require_bucket()?;
        self.s3.delete_object().bucket(bucket).key(key).send().await.map_err(s3_err)?;
        Ok(())
    }

    /// Media records for a message's media ids, all of this tenant, in order.
    /// `Err(NotFound)` if any is missing or foreign.
    pub async fn media_records(&self, tenant: &TenantId, ids: &[String]) -> Result<Vec<MediaRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get_media(tenant, id).await?.ok_or(StoreError::NotFound)?);
        }
        Ok(out)
    }

    /// `(content type, size)` per media id, for [`check_provider_limits`] in routing.
    pub async fn media_facts(&self, tenant: &TenantId, ids: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.media_records(tenant, ids).await?.into_iter().map(|r| (r.content_type, r.size)).collect())
    }

    /// Short-lived GET URLs for a message's media, for the provider to fetch (send).
    pub async fn provider_urls(&self, tenant: &TenantId, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let bucket = self.require_bucket()?;
        let mut urls = Vec::with_capacity(ids.len());
        for r in self.media_records(tenant, ids).await? {
            if r.status != MediaStatus::Verified {
                return Err(StoreError::NotFound);
            }
            urls.push(presigned_get(&self.s3, bucket, &r.s3_key, PROVIDER_URL_TTL).await?);
        }
        Ok(urls)
    }

    /// For submit: the media ids a workflow attached must exist for this tenant and be
    /// verified. Returns the records in order, or the API error naming the item.
    pub async fn resolve_for_submit(&self, tenant: &TenantId, ids: &[String]) -> Result<Vec<MediaRecord>, ApiError> {
        if ids.len() > MAX_MEDIA_PER_MESSAGE {
            return Err(ApiError::unprocessable(
                "too_many_media",
                format!("At most {MAX_MEDIA_PER_MESSAGE} media items per message."),
            )
            .field("media"));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let r = self.get_media(tenant, id).await.map_err(|_| ApiError::unavailable())?;
            let Some(r) = r else {
                return Err(ApiError::unprocessable("media_not_found", "No media with that id exists for this tenant.").field(format!("media[{i}]")));
            };
            if r.status != MediaStatus::Verified {
                return Err(ApiError::unprocessable(
                    "media_not_verified",
                    format!("Media {id} is {}; complete its upload with POST /v1/media/{id}/complete first.", r.status.as_str()),
                )
                .field(format!("media[{i}]")));
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// A short-lived presigned GET URL for `bucket/key` (providers fetch MMS media with it).
pub async fn presigned_get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, ttl: Duration) -> Result<String, StoreError> {
    let cfg = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Corrupt(format!("presigning config: {e}")))?;
    let req = s3.get_object().bucket(bucket).key(key).presigned(cfg).await.map_err(s3_err)?;
    Ok(req.uri().to_string())
}

/// A short-lived presigned GET URL for received media, answered as a download
/// (`Content-Disposition: attachment`) under `content_type` whatever the object says,
/// so a browser following the link never renders it inline. (`X-Content-Type-Options`
/// cannot be set per request on S3; a CDN in front would add it.)
pub async fn presigned_download(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, ttl: Duration, content_type: &str, filename: &str) -> Result<String, StoreError> {
    let cfg = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Corrupt(format!("presigning config: {e}")))?;
    let req = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .response_content_type(content_type)
        .response_content_disposition(format!("attachment; filename=\"{filename}\""))
        .presigned(cfg)
        .await
        .map_err(s3_err)?;
    Ok(req.uri().to_string())
}

/// A presigned PUT for one object: the URL and the headers the uploader must send
/// unchanged (they are signed: content type, content length, SSE, and the SHA-256
/// checksum when one was declared — S3 refuses a PUT that differs).
pub async fn presigned_put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    size: u64,
    sha256_hex: Option<&str>,
    ttl: Duration,
) -> Result<(String, Vec<(String, String)>), StoreError> {
    let cfg = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Corrupt(format!("presigning config: {e}")))?;
    let mut req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .content_length(size as i64)
        .server_side_encryption(ServerSideEncryption::Aes256);
    if let Some(h) = sha256_hex.and_then(|h| hex::decode(h).ok()) {
        req = req.checksum_sha256(base64::engine::general_purpose::STANDARD.encode(h));
    }
    let p = req.presigned(cfg).await.map_err(s3_err)?;
    let headers = p
        .headers()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok((p.uri().to_string(), headers))
}

fn media_item(r: &MediaRecord, ttl: Option<i64>) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let doc = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut item = HashMap::from([
        ("pk".into(), s(media_pk(&r.id))),
        ("sk".into(), s(MEDIA_SK)),
        ("type".into(), s("media")),
        ("tenant".into(), s(r.tenant.as_str())),
        ("status".into(), s(r.status.as_str())),
        // The per-tenant media index, which the legal hold job walks.
        ("gsi2pk".into(), s(tenant_media_pk(&r.tenant))),
        ("gsi2sk".into(), s(format!("{}#{}", r.created_at, r.id))),
        ("doc".into(), s(doc)),
    ]);
    if let Some(ttl) = ttl {
        item.insert("ttl".into(), n(ttl));
    }
    Ok(item)
}

/// DynamoDB TTL for a record kept under the tenant's retention policy: none while the
/// tenant is under legal hold (`held`, read from the hold record), else
/// `retention.record_days` from `now`.
pub fn retention_ttl(cfg: &TenantConfig, held: bool, now: Instant) -> Option<i64> {
    (!held).then(|| now.timestamp() + i64::from(cfg.retention.record_days) * 86_400)
}

/// TTL for a media record in `status` at `now`: a day for unfinished or refused
/// uploads, the tenant's record retention once verified.
pub fn media_ttl(status: MediaStatus, now: Instant, cfg: &TenantConfig, held: bool) -> Option<i64> {
    match status {
        MediaStatus::Pending | MediaStatus::Uploaded | MediaStatus::Rejected => Some(now.timestamp() + PENDING_TTL_SECS),
        MediaStatus::Verified => retention_ttl(cfg, held, now),
    }
}

/// A fresh pending record for a presigned upload.
pub fn pending_record(tenant: &TenantId, content_type: String, size: u64, declared_sha256: Option<String>, key_id: &str, now: Instant) -> MediaRecord {
    let id = new_media_id();
    MediaRecord {
        s3_key: media_key(tenant, &id),
        id,
        tenant: tenant.clone(),
        content_type,
        size,
        sha256: None,
        declared_sha256,
        sniffed_type: None,
        status: MediaStatus::Pending,
        upload: "presigned".into(),
        created_at: iso8601(now),
        verified_at: None,
        error_code: None,
        error: None,
        created_by: Some(key_id.to_string()),
    }
}

// ---------------------------------------------------------------------------------
// DynamoDB / S3 plumbing shared with crate::inbound
// ---------------------------------------------------------------------------------

pub(crate) use crate::store::attr::{n, parse_doc, s, store_error as ddb_err};

pub(crate) fn s3_err<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Unavailable(format!("s3: {e:?}").chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Capabilities;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn sniffs_every_allowed_type() {
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0";
        let gp3 = b"\0\0\0\x18ftyp3gp5\0\0\0\0";
        let qt = b"\0\0\0\x14ftypqt  \0\0\0\0";
        let webp = b"RIFF\x10\0\0\0WEBPVP8 ";
        let cases: &[(&[u8], &str)] = &[
            (PNG, "image/png"),
            (JPEG, "image/jpeg"),
            (b"GIF89a\x01\0", "image/gif"),
            (b"GIF87a\x01\0", "image/gif"),
            (webp, "image/webp"),
            (mp4, "video/mp4"),
            (gp3, "video/3gpp"),
            (qt, "video/quicktime"),
            (b"ID3\x04\0\0\0\0", "audio/mpeg"),
            (&[0xFF, 0xFB, 0x90, 0x64], "audio/mpeg"),
            (&[0xFF, 0xF3, 0x90, 0x64], "audio/mpeg"),
            (b"#!AMR\n\x3c", "audio/amr"),
            (b"%PDF-1.7\n", "application/pdf"),
            (b"\xEF\xBB\xBF  begin:vcard\r\nVERSION:4.0", "text/vcard"),
            (b"BEGIN:VCARD\r\n", "text/vcard"),
            ("Plain text, caf\u{e9}.\n".as_bytes(), "text/plain"),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), Some(*want), "{want}");
            assert!(is_allowed_type(want), "{want} sniffed but not allowed");
        }
        // AAC ADTS (layer 00) is not MP3; AMR-WB is not AMR; binary junk is nothing.
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50, 0x80]), None);
        assert_eq!(sniff(b"#!AMR-WB\n"), Some("audio/amr-wb"));
        assert_eq!(sniff(&[0x00, 0x01, 0x02, 0x03]), None);
        assert_eq!(sniff(b"PK\x03\x04...."), Some("application/zip"));
        assert_eq!(sniff(b"  <!doctype html><html>"), Some("text/html"));
    }

    #[test]
    fn declared_type_must_match_magic_bytes() {
        assert_eq!(check_bytes("image/png", PNG, None).unwrap().content_type, "image/png");
        assert_eq!(check_bytes("IMAGE/JPG; q=1", JPEG, None).unwrap().content_type, "image/jpeg");
        let e = check_bytes("image/png", JPEG, None).unwrap_err();
        assert_eq!(e.code(), "media_type_mismatch");
        assert!(e.to_string().contains("image/jpeg"), "{e}");
        assert_eq!(check_bytes("text/plain", b"BEGIN:VCARD\r\n", None).unwrap().sniffed_type, "text/vcard");
        assert_eq!(check_bytes("text/vcard", b"hello", None).unwrap_err().code(), "media_type_mismatch");
        assert_eq!(check_bytes("image/png", b"", None).unwrap_err().code(), "media_empty");
        assert_eq!(check_bytes("application/zip", b"PK\x03\x04", None).unwrap_err().code(), "media_type_not_allowed");
        assert_eq!(check_bytes("text/html", b"<html>", None).unwrap_err().code(), "media_type_not_allowed");
        let big = vec![0u8; MAX_MEDIA_BYTES as usize + 1];
        assert_eq!(check_bytes("image/png", &big, None).unwrap_err().code(), "media_too_large");
        let sha = hex::encode(Sha256::digest(PNG));
        assert!(check_bytes("image/png", PNG, Some(&sha.to_uppercase())).is_ok());
        assert_eq!(check_bytes("image/png", PNG, Some(&"0".repeat(64))).unwrap_err().code(), "media_hash_mismatch");
    }

    #[test]
    fn error_statuses_and_fields() {
        assert_eq!(MediaCheckError::TypeNotAllowed("x/y".into()).to_api().status, 415);
        assert_eq!(MediaCheckError::TooLarge { size: 9, limit: 1 }.to_api().status, 413);
        let e = MediaCheckError::Empty.to_api();
        assert_eq!((e.status, e.code.as_str(), e.field.as_deref()), (422, "media_empty", Some("size_bytes")));
    }

    fn caps(max_media: u32, max_bytes: u64, types: &'static [&'static str]) -> Capabilities {
        Capabilities {
            sms: true,
            mms: max_media > 0,
            max_media,
            max_media_bytes: max_bytes,
            media_types: types,
            alphanumeric_sender: true,
            status_callbacks: true,
            inbound: true,
            signature_scheme: "",
        }
    }

    #[test]
    fn provider_limits() {
        let c = caps(2, 1000, &["image/jpeg", "image/png"]);
        assert!(check_provider_limits(&c, &[]).is_ok());
        assert!(check_provider_limits(&c, &[("image/png", 400), ("image/jpg", 600)]).is_ok());
        assert!(check_provider_limits(&c, &[("image/png", 1), ("image/png", 1), ("image/png", 1)]).unwrap_err().contains("at most 2"));
        assert!(check_provider_limits(&c, &[("image/png", 600), ("image/png", 401)]).unwrap_err().contains("1001 bytes"));
        assert!(check_provider_limits(&c, &[("video/mp4", 1)]).unwrap_err().contains("video/mp4"));
        assert_eq!(check_provider_limits(&caps(0, 0, &[]), &[("image/png", 1)]).unwrap_err(), "no MMS support");
    }

    #[test]
    fn ids_and_keys() {
        let id = new_media_id();
        assert!(is_media_id(&id));
        assert!(!is_media_id("med_../../x"));
        assert!(!is_media_id("01J00000000000000000000000"));
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(media_key(&t, &id), format!("media/acme/{id}"));
        assert_eq!(normalize_content_type(" Text/X-VCard ; charset=utf-8"), "text/vcard");
    }
}

/// `CopySource` wants the key URL-encoded (our keys are ASCII ids and `/`).
fn urlencoding_path(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
