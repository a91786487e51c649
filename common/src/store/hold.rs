//! The tenant-wide legal hold as its own record (`HOLD#<t>` / `LEGAL_HOLD`), never
//! a field of the configuration document: a config write cannot lift it, and every
//! change to it is its own audited act with a reason.
//!
//! Applying or lifting a hold touches every record of the tenant, which does not fit
//! in one API call for a large tenant. The record therefore carries a resumable job
//! (phase, cursor, count): the API runs a first slice, the scheduled sweep runs the
//! rest, each slice saves its cursor with a version-conditional write, and a slice
//! that is repeated changes nothing twice (every step sets an absolute state).
//! While a job runs the record sits in the `HOLDJOB` partition of `gsi1`, which is
//! how the sweep finds it.

use super::attr::{n, parse_doc, s, store_error, Item};
use super::{keys, DynamoStore};
use crate::domain::TenantId;
use crate::error::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const LEGAL_HOLD_SK: &str = "LEGAL_HOLD";
/// The `gsi1` partition holding tenants whose hold job is still running.
pub const HOLD_JOBS_PK: &str = "HOLDJOB";

/// What a hold job still has to walk, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldPhase {
    /// Messages and their history items.
    Messages,
    /// Inbound message records.
    Inbound,
    /// Media records.
    Media,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldJob {
    pub phase: HoldPhase,
    /// Where the current phase continues (an opaque page key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<BTreeMap<String, String>>,
    /// Records changed so far.
    pub changed: u64,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The tenant's hold and the job that brings its records in line with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantHold {
    pub tenant: TenantId,
    pub on: bool,
    pub reason: String,
    /// The API key id that made the change.
    pub changed_by: String,
    pub changed_at: String,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
    pub job: HoldJob,
}

impl TenantHold {
    pub fn running(&self) -> bool {
        self.job.phase != HoldPhase::Done
    }
}

/// A DynamoDB page key of string attributes, as stored in a job cursor.
pub fn cursor_from_key(key: Option<HashMap<String, AttributeValue>>) -> Option<BTreeMap<String, String>> {
    key.map(|k| k.into_iter().filter_map(|(name, v)| v.as_s().ok().map(|v| (name, v.clone()))).collect())
}

pub fn key_from_cursor(cursor: &Option<BTreeMap<String, String>>) -> Option<HashMap<String, AttributeValue>> {
    cursor.as_ref().map(|c| c.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect())
}

impl DynamoStore {
    /// The tenant's hold record. `consistent` for creation paths: a message, inbound
    /// record or media item created just after a hold is set must see it.
    pub async fn get_tenant_hold(&self, tenant: &TenantId, consistent: bool) -> Result<Option<TenantHold>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::hold_pk(tenant)))
            .key("sk", s(LEGAL_HOLD_SK))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(store_error)?;
        out.item.map(|i| parse_doc(&i)).transpose()
    }

    /// Whether the tenant is under a hold, read strongly consistently.
    pub async fn tenant_held(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        Ok(self.get_tenant_hold(tenant, true).await?.is_some_and(|h| h.on))
    }

    /// Writes `next` if the stored record still has `next.version - 1` (or none, for
    /// version 1). `Conflict` when someone else changed it first.
    pub async fn put_tenant_hold(&self, next: &TenantHold) -> Result<(), StoreError> {
        let doc = serde_json::to_string(next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::hold_pk(&next.tenant)))
            .item("sk", s(LEGAL_HOLD_SK))
            .item("type", s("legal_hold"))
            .item("version", n(next.version))
            .item("doc", s(doc));
        if next.running() {
            put = put.item("gsi1pk", s(HOLD_JOBS_PK)).item("gsi1sk", s(next.tenant.as_str()));
        }
        put = if next.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v").expression_attribute_values(":v", n(next.version - 1))
        };
        put.send().await.map_err(store_error)?;
        Ok(())
    }

    /// Tenants whose hold job has not finished.
    pub async fn running_hold_jobs(&self) -> Result<Vec<TenantHold>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(HOLD_JOBS_PK))
            .send()
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        for item in resp.items.unwrap_or_default() {
            // The index is eventually consistent: read the record itself.
            let t = parse_doc::<TenantHold>(&item)?.tenant;
            if let Some(h) = self.get_tenant_hold(&t, true).await?.filter(TenantHold::running) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) the TTL of one item, if it exists.
    pub async fn set_item_ttl(&self, pk: &str, sk: &str, ttl: Option<i64>) -> Result<(), StoreError> {
        let u = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(pk)");
        let u = match ttl {
            Some(t) => u.update_expression("SET #ttl = :t").expression_attribute_values(":t", n(t)),
            None => u.update_expression("REMOVE #ttl"),
        };
        match u.expression_attribute_names("#ttl", "ttl").send().await.map_err(store_error) {
            Ok(_) | Err(StoreError::Conflict) => Ok(()), // gone meanwhile: nothing to hold
            Err(e) => Err(e),
        }
    }

    /// One page of the tenant's media records (per-tenant media index).
    pub async fn tenant_media_page(&self, tenant: &TenantId, start: Option<Item>) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        self.gsi2_page(&crate::media::tenant_media_pk(tenant), start).await
    }

    /// One page of the tenant's inbound records (per-tenant inbound index).
    pub async fn tenant_inbound_page(&self, tenant: &TenantId, start: Option<Item>) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        self.gsi2_page(&crate::inbound::tenant_inbound_pk(tenant), start).await
    }

    async fn gsi2_page(&self, gsi2pk: &str, start: Option<Item>) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :p")
            .expression_attribute_values(":p", s(gsi2pk))
            .limit(200)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_error)?;
        Ok((resp.items.unwrap_or_default(), resp.last_evaluated_key))
    }
}
