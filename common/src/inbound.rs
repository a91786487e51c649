//! Inbound SMS/MMS from citizens: records, media download, opt-out keywords, the
//! link to our last outbound message, and evidence bundles.
//!
//! The webhook side (verify → [`crate::handlers::inbound_webhook::handle_inbound`])
//! and the API (`GET /v1/inbound`) are in [`crate::handlers::inbound_webhook`]; this
//! module holds the pieces they and the send/submit paths share. Item layout
//! (single table; docs/mms-and-inbound.md):
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | inbound message | `INBOUND#<id>` | `INBOUND` | `gsi2pk = TENANT#<t>#INBOUND`, `gsi2sk = <received_at>#<id>` |
//! | provider id → inbound | `INREF#<t>#<account>#<sha256(provider message id)>` | `INBOUND_REF` | dedupes provider retries |
//! | opt-out | `OPTOUT#<t>#<e164>` | `OPTOUT` | `opted_out` (BOOL), last keyword wins by time |
//! | last outbound | `LASTOUT#<t>#<e164>` | `LASTOUT` | newest message id sent to that number |

use crate::domain::message::{Message, MessageEvent};
use crate::domain::{ContentCategory, MessageId, TenantId, E164};
use crate::error::{ApiError, StoreError};
use crate::media::MediaStore;
use crate::store::attr::{get_s, n, parse_doc, s, store_error as ddb_err, Item};
use crate::providers::ProviderKind;
use crate::tenant::TenantConfig;
use crate::time::{iso8601, Instant};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

/// Largest inbound media item we download (larger items are recorded, not stored).
pub const MAX_INBOUND_MEDIA_BYTES: usize = 5 * 1024 * 1024;
/// Most media items stored per inbound message (the rest are recorded as skipped).
pub const MAX_INBOUND_MEDIA: usize = 10;
/// A provider retry of the same inbound message is recognised for this long.
pub const INBOUND_REF_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long the "last outbound message to this number" pointer is kept: replies
/// later than this are stored unlinked.
pub const LAST_OUTBOUND_TTL_SECS: i64 = 90 * 24 * 3600;

pub const INBOUND_SK: &str = "INBOUND";
pub const INBOUND_REF_SK: &str = "INBOUND_REF";
pub const OPTOUT_SK: &str = "OPTOUT";
pub const LASTOUT_SK: &str = "LASTOUT";

pub fn inbound_pk(id: &str) -> String {
    format!("INBOUND#{id}")
}
pub fn tenant_inbound_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#INBOUND")
}
pub fn tenant_inbound_sk(received_at: &str, id: &str) -> String {
    format!("{received_at}#{id}")
}
pub fn inbound_ref_pk(t: &TenantId, account: &str, provider_message_id: &str) -> String {
    format!("INREF#{t}#{account}#{}", hex::encode(Sha256::digest(provider_message_id.as_bytes())))
}
pub fn opt_out_pk(t: &TenantId, number: &E164) -> String {
    format!("OPTOUT#{t}#{number}")
}
pub fn last_outbound_pk(t: &TenantId, number: &E164) -> String {
    format!("LASTOUT#{t}#{number}")
}
/// `inbound/{tenant}/{inbound_id}/{n}`.
pub fn inbound_media_key(t: &TenantId, inbound_id: &str, n: usize) -> String {
    format!("inbound/{t}/{inbound_id}/{n}")
}

/// A new inbound id: `inb_` + a ULID.
pub fn new_inbound_id() -> String {
    format!("inb_{}", ulid::Ulid::new())
}

pub fn is_inbound_id(s: &str) -> bool {
    s.strip_prefix("inb_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

// ---------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------

/// An inbound message as stored (`doc` of the `INBOUND#<id>` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundRecord {
    pub id: String,
    pub tenant: TenantId,
    pub provider: ProviderKind,
    /// The tenant's provider account the message arrived on.
    pub provider_account: String,
    pub provider_message_id: String,
    /// The citizen's number, E.164 when it parses (with the tenant's default region),
    /// else exactly as the provider sent it (short codes, alphanumeric senders).
    pub from: String,
    pub from_is_e164: bool,
    /// Our number (one of the tenant's sender identities on that account), E.164.
    pub to: String,
    pub text: String,
    pub text_sha256: String,
    pub media: Vec<InboundMediaRecord>,
    /// Media items still to be downloaded by the inbound-media job (the webhook
    /// answers the provider before fetching them). The tenant's inbound callback is
    /// sent once this is false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub media_pending: bool,
    /// STOP/START/HELP when the whole text is such a keyword.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<Keyword>,
    /// The opt-out change the keyword caused (`opted_out`, `opted_in`, or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_out_action: Option<String>,
    /// The most recent message this tenant sent to `from` (the one being answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<MessageId>,
    /// When we received it (ISO 8601, ms): the listing order.
    pub received_at: String,
    /// When the provider says it received it, as the provider wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_received_at: Option<String>,
    /// The provider's original fields, kept as evidence.
    pub provider_metadata: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMediaRecord {
    /// Position in the provider's list (0-based); also the last part of the S3 key.
    pub index: usize,
    /// Where the provider said the media is.
    pub source_url: String,
    /// `inbound/{tenant}/{inbound_id}/{n}`, absent when the item could not be stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
    /// SHA-256 (hex) of the bytes as downloaded, computed at ingest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// What the leading bytes say it is (`None`: unrecognised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sniffed_type: Option<String>,
    /// The content type the provider declared in the callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_type: Option<String>,
    /// The `Content-Type` the media server answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_type: Option<String>,
    /// Why the item was not stored (`too_large`, `http_404`, `refused_url`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl InboundMediaRecord {
    /// An item the provider listed, not yet fetched.
    pub fn pending(index: usize, source_url: String, declared_type: Option<String>) -> Self {
        Self { index, source_url, s3_key: None, sha256: None, size: None, sniffed_type: None, declared_type, served_type: None, error: None }
    }

    /// Neither stored nor given up on: the inbound-media job still has to fetch it.
    pub fn is_pending(&self) -> bool {
        self.s3_key.is_none() && self.error.is_none()
    }
}

/// Carrier keywords, recognised only when they are the whole message (trimmed,
/// case-insensitive, trailing `.`/`!` ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

/// STOP family: CTIA's list plus what the FCC's 2025 revocation rule names.
pub const STOP_WORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"];
pub const START_WORDS: &[&str] = &["START", "UNSTOP"];
pub const HELP_WORDS: &[&str] = &["HELP", "INFO"];

pub fn classify_keyword(text: &str) -> Option<Keyword> {
    let t = text.trim().trim_end_matches(['.', '!']).trim();
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    let norm = t.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    if STOP_WORDS.contains(&norm.as_str()) {
        Some(Keyword::Stop)
    } else if START_WORDS.contains(&norm.as_str()) {
        Some(Keyword::Start)
    } else if HELP_WORDS.contains(&norm.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

/// The reply to HELP: the tenant's `help_text`, else a default naming the tenant.
pub fn help_text(cfg: &TenantConfig) -> String {
    if let Some(t) = cfg.help_text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return t.to_string();
    }
    let name = if cfg.display_name.trim().is_empty() { cfg.tenant.as_str() } else { cfg.display_name.trim() };
    format!(
        "{name}: official notifications. Reply STOP to opt out, START to opt back in. \
         In an emergency, call your local emergency number."
    )
}

// ---------------------------------------------------------------------------------
// Opt-out
// ---------------------------------------------------------------------------------

/// What submit should do about a recipient's opt-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptOutDecision {
    /// Not opted out.
    Allow,
    /// Opted out, but the category is exempt: send, and record this reason in the
    /// message history.
    Exempt(String),
    /// Opted out: refuse with `recipient_opted_out` (422).
    Reject,
}

pub fn opt_out_decision(cfg: &TenantConfig, category: &ContentCategory, opted_out: bool) -> OptOutDecision {
    if !opted_out {
        OptOutDecision::Allow
    } else if cfg.categories.opt_out_exempt.contains(category) {
        OptOutDecision::Exempt(format!(
            "recipient opted out (STOP); sent anyway because category {category} is exempt (categories.opt_out_exempt)"
        ))
    } else {
        OptOutDecision::Reject
    }
}

/// The submit error for an opted-out recipient.
pub fn opted_out_error() -> ApiError {
    ApiError::unprocessable(
        "recipient_opted_out",
        "The recipient replied STOP to this tenant and has not opted back in (START); only categories in categories.opt_out_exempt may still be sent.",
    )
    .field("to")
}

/// The stored opt-out state of a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRecord {
    pub tenant: TenantId,
    pub number: E164,
    pub opted_out: bool,
    /// The keyword as the citizen wrote it (trimmed).
    pub keyword: String,
    /// When the keyword was received (ISO 8601): a later keyword wins.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_id: Option<String>,
}

/// Whether `number` opted out of this tenant's messages. A store failure is an
/// error, not "no": the caller decides (submit answers 503).
pub async fn is_opted_out(ms: &MediaStore, tenant: &TenantId, number: &E164) -> Result<bool, StoreError> {
    Ok(get_opt_out(ms, tenant, number).await?.is_some_and(|r| r.opted_out))
}

pub async fn get_opt_out(ms: &MediaStore, tenant: &TenantId, number: &E164) -> Result<Option<OptOutRecord>, StoreError> {
    let out = ms
        .dynamodb
        .get_item()
        .table_name(&ms.table)
        .key("pk", s(opt_out_pk(tenant, number)))
        .key("sk", s(OPTOUT_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(ddb_err)?;
    out.item.map(|i| parse_doc(&i)).transpose()
}

/// Submit helper: reads the opt-out and decides (see [`opt_out_decision`]).
pub async fn check_opt_out(ms: &MediaStore, cfg: &TenantConfig, category: &ContentCategory, to: &E164) -> Result<OptOutDecision, StoreError> {
    let opted_out = is_opted_out(ms, &cfg.tenant, to).await?;
    Ok(opt_out_decision(cfg, category, opted_out))
}

/// Sets the opt-out state unless a later keyword already did. Returns false when this
/// one was older (provider retries can reorder STOP and START).
pub async fn set_opt_out(ms: &MediaStore, r: &OptOutRecord) -> Result<bool, StoreError> {
    let doc = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let res = ms
        .dynamodb
        .put_item()
        .table_name(&ms.table)
        .item("pk", s(opt_out_pk(&r.tenant, &r.number)))
        .item("sk", s(OPTOUT_SK))
        .item("type", s("opt_out"))
        .item("tenant", s(r.tenant.as_str()))
        .item("opted_out", AttributeValue::Bool(r.opted_out))
        .item("at", s(r.at.clone()))
        .item("doc", s(doc))
        .condition_expression("attribute_not_exists(pk) OR #at <= :at")
        .expression_attribute_names("#at", "at")
        .expression_attribute_values(":at", s(r.at.clone()))
        .send()
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) => match ddb_err(e) {
            StoreError::Conflict => Ok(false),
            other => Err(other),
        },
    }
}

// ---------------------------------------------------------------------------------
// Last outbound message per number
// ---------------------------------------------------------------------------------

/// Remembers that `message_id` is the newest message this tenant sent to `to`. Call
/// from send when a message is recorded `sent`. An older message's late `sent` never
/// replaces a newer pointer (ids are ULIDs: they sort by creation time).
pub async fn remember_outbound(ms: &MediaStore, tenant: &TenantId, to: &E164, message_id: MessageId, now: Instant) -> Result<(), StoreError> {
    let res = ms
        .dynamodb
        .put_item()
        .table_name(&ms.table)
        .item("pk", s(last_outbound_pk(tenant, to)))
        .item("sk", s(LASTOUT_SK))
        .item("type", s("last_outbound"))
        .item("tenant", s(tenant.as_str()))
        .item("message_id", s(message_id.to_string()))
        .item("at", s(iso8601(now)))
        .item("ttl", n(now.timestamp() + LAST_OUTBOUND_TTL_SECS))
        .condition_expression("attribute_not_exists(pk) OR message_id <= :id")
        .expression_attribute_values(":id", s(message_id.to_string()))
        .send()
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) => match ddb_err(e) {
            StoreError::Conflict => Ok(()),
            other => Err(other),
        },
    }
}

pub async fn last_outbound(ms: &MediaStore, tenant: &TenantId, to: &E164) -> Result<Option<MessageId>, StoreError> {
    let out = ms
        .dynamodb
        .get_item()
        .table_name(&ms.table)
        .key("pk", s(last_outbound_pk(tenant, to)))
        .key("sk", s(LASTOUT_SK))
        .send()
        .await
        .map_err(ddb_err)?;
    Ok(out.item.as_ref().and_then(|i| get_s(i, "message_id")).and_then(|v| v.parse().ok()))
}

// ---------------------------------------------------------------------------------
// Inbound records
// ---------------------------------------------------------------------------------

/// Stores an inbound record together with its provider-id reference, so a provider's
/// retry of the same message is recognised. `Conflict` = already stored.
/// `ttl` is the record's DynamoDB TTL ([`crate::media::retention_ttl`]; `None` under
/// a legal hold).
pub async fn put_inbound(ms: &MediaStore, r: &InboundRecord, ttl: Option<i64>, now: Instant) -> Result<(), StoreError> {
    let doc = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut record: Item = HashMap::from([
        ("pk".into(), s(inbound_pk(&r.id))),
        ("sk".into(), s(INBOUND_SK)),
        ("type".into(), s("inbound")),
        ("tenant".into(), s(r.tenant.as_str())),
        ("gsi2pk".into(), s(tenant_inbound_pk(&r.tenant))),
        ("gsi2sk".into(), s(tenant_inbound_sk(&r.received_at, &r.id))),
        ("doc".into(), s(doc)),
    ]);
    if let Some(ttl) = ttl {
        record.insert("ttl".into(), n(ttl));
    }
    if r.media_pending {
        record.insert("media_pending".into(), AttributeValue::Bool(true));
    }
    let reference: Item = HashMap::from([
        ("pk".into(), s(inbound_ref_pk(&r.tenant, &r.provider_account, &r.provider_message_id))),
        ("sk".into(), s(INBOUND_REF_SK)),
        ("type".into(), s("inbound_ref")),
        ("tenant".into(), s(r.tenant.as_str())),
        ("inbound_id".into(), s(r.id.clone())),
        ("ttl".into(), n(now.timestamp() + INBOUND_REF_TTL_SECS)),
    ]);
    let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
        let p = Put::builder()
            .table_name(&ms.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(p).build())
    };
    ms.dynamodb
        .transact_write_items()
        .transact_items(put(record)?)
        .transact_items(put(reference)?)
        .send()
        .await
        .map_err(ddb_err)?;
    Ok(())
}

/// Records the inbound-media job's progress on a record whose media are still
/// pending: the item's media list, and `media_pending` cleared when nothing is left.
/// `Conflict`: the record no longer has pending media (another delivery of the job
/// finished it first), so a late, partial write never undoes a finished one.
pub async fn update_inbound_media(ms: &MediaStore, r: &InboundRecord) -> Result<(), StoreError> {
    let doc = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut update = ms
        .dynamodb
        .update_item()
        .table_name(&ms.table)
        .key("pk", s(inbound_pk(&r.id)))
        .key("sk", s(INBOUND_SK))
        .condition_expression("media_pending = :yes")
        .expression_attribute_values(":yes", AttributeValue::Bool(true))
        .expression_attribute_values(":doc", s(doc));
    update = if r.media_pending { update.update_expression("SET doc = :doc") } else { update.update_expression("SET doc = :doc REMOVE media_pending") };
    update.send().await.map_err(ddb_err)?;
    Ok(())
}

/// The inbound id already stored for this provider message, if any.
pub async fn find_inbound_ref(ms: &MediaStore, tenant: &TenantId, account: &str, provider_message_id: &str) -> Result<Option<String>, StoreError> {
    let out = ms
        .dynamodb
        .get_item()
        .table_name(&ms.table)
        .key("pk", s(inbound_ref_pk(tenant, account, provider_message_id)))
        .key("sk", s(INBOUND_REF_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(ddb_err)?;
    Ok(out.item.as_ref().and_then(|i| get_s(i, "inbound_id")).map(str::to_string))
}

/// An inbound record of this tenant; another tenant's id reads as missing.
pub async fn get_inbound(ms: &MediaStore, tenant: &TenantId, id: &str) -> Result<Option<InboundRecord>, StoreError> {
    if !is_inbound_id(id) {
        return Ok(None);
    }
    let out = ms
        .dynamodb
        .get_item()
        .table_name(&ms.table)
        .key("pk", s(inbound_pk(id)))
        .key("sk", s(INBOUND_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(ddb_err)?;
    let Some(item) = out.item else { return Ok(None) };
    let r: InboundRecord = parse_doc(&item)?;
    Ok(if &r.tenant == tenant { Some(r) } else { None })
}

/// A page of the tenant's inbound messages, newest first. The cursor is the last
/// item's sort key (opaque to callers); the query is always on the caller's own
/// partition, so a cursor cannot reach another tenant.
pub async fn list_inbound(ms: &MediaStore, tenant: &TenantId, limit: u32, cursor: Option<&str>) -> Result<(Vec<InboundRecord>, Option<String>), StoreError> {
    let limit = limit.clamp(1, 100);
    let mut q = ms
        .dynamodb
        .query()
        .table_name(&ms.table)
        .index_name("gsi2")
        .scan_index_forward(false)
        .limit(limit as i32)
        .expression_attribute_values(":pk", s(tenant_inbound_pk(tenant)));
    q = match cursor {
        Some(c) => q.key_condition_expression("gsi2pk = :pk AND gsi2sk < :c").expression_attribute_values(":c", s(c)),
        None => q.key_condition_expression("gsi2pk = :pk"),
    };
    let out = q.send().await.map_err(ddb_err)?;
    let mut records = Vec::new();
    let mut last_sk = None;
    for item in out.items.unwrap_or_default() {
        let r: InboundRecord = parse_doc(&item)?;
        if &r.tenant != tenant {
            continue;
        }
        last_sk = get_s(&item, "gsi2sk").map(str::to_string);
        records.push(r);
    }
    let next = if out.last_evaluated_key.is_some() { last_sk } else { None };
    Ok((records, next))
}

// ---------------------------------------------------------------------------------
// Evidence bundles
// ---------------------------------------------------------------------------------

pub const EVIDENCE_FORMAT: &str = "sms-dispatch-evidence/1";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SUMS_FILE: &str = "SHA256SUMS";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
}

/// `manifest.json` of an evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub generated_at: String,
    pub tenant: TenantId,
    /// `inbound` or `message`.
    pub subject_kind: String,
    pub subject_id: String,
    /// Path relative to the bundle (forward slashes) → hash and size.
    pub files: BTreeMap<String, FileEntry>,
}

/// The outcome of [`verify_evidence`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Files listed in the manifest whose hash and size were checked.
    pub checked: usize,
    /// Listed files whose content differs from the manifest.
    pub mismatched: Vec<String>,
    /// Listed files that are not in the bundle.
    pub missing: Vec<String>,
    /// Files in the bundle the manifest does not list.
    pub extra: Vec<String>,
    /// SHA-256 of manifest.json itself, to compare with the value recorded at export
    /// (chain of custody): the manifest cannot vouch for itself.
    pub manifest_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("no inbound message or message with that id exists for this tenant")]
    NotFound,
    #[error("the output directory {0} is not empty; evidence is never written over other files")]
    OutputNotEmpty(PathBuf),
    #[error("stored evidence failed its integrity check: {0}")]
    Integrity(String),
    #[error("manifest unusable: {0}")]
    Manifest(String),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes an evidence bundle for an inbound message (`inb_...`) or a message id to
/// `out_dir` (created; must be empty if it exists):
///
/// - `inbound.json` (the inbound record, incl. per-media SHA-256 from ingest) and
///   `provider_metadata.json`, for an inbound subject;
/// - `media/<n>.<ext>`: each stored media file, re-hashed against the ingest hash
///   (a mismatch aborts the export with [`EvidenceError::Integrity`]);
/// - `message.json`: the linked (or subject) message with its full history;
/// - `SHA256SUMS` (`sha256sum -c` format) and `manifest.json` (file → sha256, size,
///   plus `generated_at`).
pub async fn export_evidence(
    store: &crate::store::DynamoStore,
    ms: &MediaStore,
    tenant: &TenantId,
    id: &str,
    out_dir: &Path,
    now: Instant,
) -> Result<Manifest, EvidenceError> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (subject_kind, message_id) = if is_inbound_id(id) {
        let r = get_inbound(ms, tenant, id).await?.ok_or(EvidenceError::NotFound)?;
        files.push(("inbound.json".into(), pretty(&r)));
        files.push(("provider_metadata.json".into(), pretty(&r.provider_metadata)));
        for m in &r.media {
            let (Some(key), Some(want)) = (&m.s3_key, &m.sha256) else { continue };
            let bytes = ms
                .get_object(key, MAX_INBOUND_MEDIA_BYTES as u64)
                .await?
                .ok_or_else(|| EvidenceError::Integrity(format!("media {} is missing from storage", m.index)))?;
            if &hex::encode(Sha256::digest(&bytes)) != want {
                return Err(EvidenceError::Integrity(format!("media {} no longer matches its ingest SHA-256", m.index)));
            }
            files.push((format!("media/{}.{}", m.index, extension(m.sniffed_type.as_deref().or(m.declared_type.as_deref())) ), bytes));
        }
        ("inbound", r.in_reply_to)
    } else if let Ok(mid) = id.parse::<MessageId>() {
        ("message", Some(mid))
    } else {
        return Err(EvidenceError::NotFound);
    };
    if let Some(mid) = message_id {
        match store.get_message_with_history(mid).await? {
            Some((m, history)) if &m.tenant == tenant => {
                for (i, media_id) in m.media.iter().enumerate() {
                    // Every media item the message carried belongs in the bundle: a record
                    // that is gone makes the export fail, never a bundle quietly missing it.
                    let rec = ms
                        .get_media(tenant, media_id)
                        .await?
                        .ok_or_else(|| EvidenceError::Integrity(format!("message media {media_id} has no record any more")))?;
                    {
                        let bytes = ms
                            .get_object(&rec.s3_key, crate::media::MAX_MEDIA_BYTES)
                            .await?
                            .ok_or_else(|| EvidenceError::Integrity(format!("message media {media_id} is missing from storage")))?;
                        if rec.sha256.as_deref().is_some_and(|h| h != hex::encode(Sha256::digest(&bytes))) {
                            return Err(EvidenceError::Integrity(format!("message media {media_id} no longer matches its SHA-256")));
                        }
                        files.push((format!("message_media/{i}.{}", extension(Some(&rec.content_type))), bytes));
                    }
                }
                files.push(("message.json".into(), pretty(&MessageWithHistory { message: &m, history: &history })));
            }
            // The subject itself must exist; a linked message that is gone is just absent.
            _ if subject_kind == "message" => return Err(EvidenceError::NotFound),
            _ => {}
        }
    }
    prepare_dir(out_dir)?;
    let mut entries = BTreeMap::new();
    let mut sums = String::new();
    for (name, bytes) in &files {
        write_file(out_dir, name, bytes)?;
        let sha = hex::encode(Sha256::digest(bytes));
        sums.push_str(&format!("{sha}  {name}\n"));
        entries.insert(name.clone(), FileEntry { sha256: sha, size: bytes.len() as u64 });
    }
    write_file(out_dir, SUMS_FILE, sums.as_bytes())?;
    entries.insert(SUMS_FILE.into(), FileEntry { sha256: hex::encode(Sha256::digest(sums.as_bytes())), size: sums.len() as u64 });
    let manifest = Manifest {
        format: EVIDENCE_FORMAT.into(),
        generated_at: iso8601(now),
        tenant: tenant.clone(),
        subject_kind: subject_kind.into(),
        subject_id: id.to_string(),
        files: entries,
    };
    write_file(out_dir, MANIFEST_FILE, &pretty(&manifest))?;
    Ok(manifest)
}

#[derive(Serialize)]
struct MessageWithHistory<'a> {
    message: &'a Message,
    history: &'a [MessageEvent],
}

fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

pub fn extension(content_type: Option<&str>) -> &'static str {
    match content_type.map(crate::media::normalize_content_type).as_deref() {
        Some("image/jpeg") => "jpg",
        Some("image/png") => "png",
        Some("image/gif") => "gif",
        Some("image/webp") => "webp",
        Some("video/mp4") => "mp4",
        Some("video/3gpp") => "3gp",
        Some("video/quicktime") => "mov",
        Some("audio/mpeg") => "mp3",
        Some("audio/mp4") => "m4a",
        Some("audio/amr") => "amr",
        Some("application/pdf") => "pdf",
        Some("text/vcard") => "vcf",
        Some("text/plain") => "txt",
        _ => "bin",
    }
}

fn prepare_dir(dir: &Path) -> Result<(), EvidenceError> {
    if dir.exists() {
        if std::fs::read_dir(dir)?.next().is_some() {
            return Err(EvidenceError::OutputNotEmpty(dir.to_path_buf()));
        }
    } else {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), EvidenceError> {
    let path = safe_join(dir, rel).ok_or_else(|| EvidenceError::Manifest(format!("unsafe path {rel}")))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// `dir/rel` for a relative, forward-slash path without `..`; `None` otherwise (a
/// crafted manifest must not make verification read outside the bundle).
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    if rel.is_empty() || rel.contains('\\') {
        return None;
    }
    let p = Path::new(rel);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(p))
}

/// Re-hashes every file a bundle's manifest lists and reports mismatched, missing
/// and extra files. Errors only when the manifest itself cannot be read.
pub fn verify_evidence(dir: &Path) -> Result<Report, EvidenceError> {
    let raw = std::fs::read(dir.join(MANIFEST_FILE)).map_err(|e| EvidenceError::Manifest(format!("{MANIFEST_FILE}: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| EvidenceError::Manifest(e.to_string()))?;
    if manifest.format != EVIDENCE_FORMAT {
        return Err(EvidenceError::Manifest(format!("unknown format {}", manifest.format)));
    }
    let mut report = Report {
        ok: false,
        checked: 0,
        mismatched: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
        manifest_sha256: hex::encode(Sha256::digest(&raw)),
    };
    for (rel, want) in &manifest.files {
        let Some(path) = safe_join(dir, rel) else {
            report.mismatched.push(rel.clone());
            continue;
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                report.checked += 1;
                if bytes.len() as u64 != want.size || hex::encode(Sha256::digest(&bytes)) != want.sha256.to_ascii_lowercase() {
                    report.mismatched.push(rel.clone());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.missing.push(rel.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    let listed: BTreeSet<&str> = manifest.files.keys().map(String::as_str).collect();
    let mut present = Vec::new();
    walk(dir, dir, &mut present)?;
    report.extra = present.into_iter().filter(|p| p != MANIFEST_FILE && !listed.contains(p.as_str())).collect();
    report.extra.sort();
    report.ok = report.mismatched.is_empty() && report.missing.is_empty() && report.extra.is_empty();
    Ok(report)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), EvidenceError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_cfg(exempt: &[&str]) -> TenantConfig {
        serde_json::from_value(serde_json::json!({
            "tenant": "acme", "display_name": "Acme Council", "default_region": "US",
            "providers": [{"id": "p", "kind": "sandbox", "secret_id": "dispatch/acme/sandbox/p"}],
            "senders": [{"sender": "+12015550100", "provider": "p"}],
            "routing": [{"name": "all", "providers": ["p"]}],
            "categories": {"opt_out_exempt": exempt},
        }))
        .unwrap()
    }

    #[test]
    fn keywords_are_whole_message_case_insensitive() {
        for t in ["STOP", " stop ", "Stop.", "stopall", "Unsubscribe", "cancel", "END", "quit!", "opt  out", "Revoke"] {
            assert_eq!(classify_keyword(t), Some(Keyword::Stop), "{t}");
        }
        for t in ["start", "UNSTOP", " Start "] {
            assert_eq!(classify_keyword(t), Some(Keyword::Start), "{t}");
        }
        for t in ["help", "HELP", "info"] {
            assert_eq!(classify_keyword(t), Some(Keyword::Help), "{t}");
        }
        for t in ["", "stop it", "please stop", "STOPPED", "help me I'm at 5th and Main", "yes", "started"] {
            assert_eq!(classify_keyword(t), None, "{t}");
        }
    }

    #[test]
    fn opt_out_decisions() {
        let general = ContentCategory::general();
        let emergency = ContentCategory::emergency_callback();
        let cfg = tenant_cfg(&["emergency_callback"]);
        assert_eq!(opt_out_decision(&cfg, &general, false), OptOutDecision::Allow);
        assert_eq!(opt_out_decision(&cfg, &general, true), OptOutDecision::Reject);
        assert!(matches!(opt_out_decision(&cfg, &emergency, true), OptOutDecision::Exempt(r) if r.contains("emergency_callback")));
        assert_eq!(opt_out_decision(&tenant_cfg(&[]), &emergency, true), OptOutDecision::Reject);
        let e = opted_out_error();
        assert_eq!((e.status, e.code.as_str()), (422, "recipient_opted_out"));
        assert!(help_text(&cfg).starts_with("Acme Council:"));
        let own = TenantConfig { help_text: Some("Acme: reply STOP to opt out. Emergencies: call 911.".into()), ..cfg };
        assert_eq!(help_text(&own), "Acme: reply STOP to opt out. Emergencies: call 911.");
    }

    #[test]
    fn bundle_paths_stay_inside() {
        let d = Path::new("/tmp/b");
        assert!(safe_join(d, "media/0.png").is_some());
        for bad in ["../x", "/etc/passwd", "media/../../x", "", "a\\b"] {
            assert!(safe_join(d, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn verify_detects_changes() {
        let dir = std::env::temp_dir().join(format!("evidence-unit-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::write(dir.join("a.json"), b"{}").unwrap();
        std::fs::write(dir.join("media/0.png"), b"png").unwrap();
        let entry = |b: &[u8]| FileEntry { sha256: hex::encode(Sha256::digest(b)), size: b.len() as u64 };
        let manifest = Manifest {
            format: EVIDENCE_FORMAT.into(),
            generated_at: "2026-01-01T00:00:00.000Z".into(),
            tenant: TenantId::parse("acme").unwrap(),
            subject_kind: "inbound".into(),
            subject_id: "inb_x".into(),
            files: BTreeMap::from([("a.json".to_string(), entry(b"{}")), ("media/0.png".to_string(), entry(b"png"))]),
        };
        std::fs::write(dir.join(MANIFEST_FILE), pretty(&manifest)).unwrap();
        let r = verify_evidence(&dir).unwrap();
        assert!(r.ok && r.checked == 2, "{r:?}");
        std::fs::write(dir.join("media/0.png"), b"pnG").unwrap();
        std::fs::remove_file(dir.join("a.json")).unwrap();
        std::fs::write(dir.join("media/1.png"), b"new").unwrap();
        let r = verify_evidence(&dir).unwrap();
        assert!(!r.ok);
        assert_eq!((r.mismatched.as_slice(), r.missing.as_slice(), r.extra.as_slice()), (&["media/0.png".to_string()][..], &["a.json".to_string()][..], &["media/1.png".to_string()][..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
