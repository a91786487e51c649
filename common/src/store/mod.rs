//! State in DynamoDB: one table, single-table design (see docs/data-model.md).
//!
//! Every status change is read → decide in Rust (the state machine in
//! [`crate::domain::status`]) → conditional write on the item's `version`, in one
//! transaction with the event item, so history and state never disagree and a
//! duplicate or out-of-order event can never move a message backwards.

pub mod attr;
pub mod hold;
pub mod keys;

use crate::domain::message::{EventSource, Message, MessageEvent};
use crate::domain::{DeliveryStatus, IdempotencyKey, MessageId, ProviderMessageId, TenantId, TransitionVerdict};
use crate::error::StoreError;
use attr::{n, require_s, s, store_error, Item};
use crate::tenant::TenantConfig;
use crate::time::{iso8601, Instant};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;


/// How many partitions the due-time index is spread over, so sweeps at high volume
/// do not all read one hot partition.
pub const DUE_SHARDS: u64 = 4;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// Result of creating a message with an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// The key was used before: the original message and the hash of its request.
    Existing { message_id: MessageId, request_hash: String },
}

/// Result of proposing a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOutcome {
    /// The message moved; here it is after the change.
    Applied(Message),
    /// Recorded in the history, state unchanged (duplicate or would regress).
    Recorded { current: Message, verdict: TransitionVerdict },
}

/// A proposed state change plus the event that explains it.
pub struct Change<'a> {
    pub to: DeliveryStatus,
    pub source: EventSource,
    pub provider: Option<String>,
    pub provider_status: Option<String>,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    /// Extra edits to apply with the status (provider ids, attempt counts, due times).
    /// `Fn`, not `FnOnce`: a transition that loses a write race re-reads the message
    /// and applies the same edits again to the fresh copy.
    pub edit: Box<dyn Fn(&mut Message) + Send + Sync + 'a>,
    /// Also write the (provider account, provider message id) → message lookup.
    pub provider_lookup: Option<(String, ProviderMessageId)>,
}

impl<'a> Change<'a> {
    pub fn to(to: DeliveryStatus, source: EventSource) -> Self {
        Self {
            to,
            source,
            provider: None,
            provider_status: None,
            error_code: None,
            reason: None,
            edit: Box::new(|_| {}),
            provider_lookup: None,
        }
    }
    /// The reason recorded with the change. Provider texts arrive here, so numbers in
    /// it are masked: it is copied into history, callbacks and the audit chain.
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        let r: String = r.into();
        self.reason = Some(crate::domain::redact::mask_numbers(&r).into_owned());
        self
    }
    pub fn provider(mut self, p: impl Into<String>) -> Self {
        self.provider = Some(p.into());
        self
    }
    pub fn provider_status(mut self, s: impl Into<String>) -> Self {
        self.provider_status = Some(s.into());
        self
    }
    pub fn error_code(mut self, c: Option<String>) -> Self {
        self.error_code = c;
        self
    }
    pub fn edit(mut self, f: impl Fn(&mut Message) + Send + Sync + 'a) -> Self {
        self.edit = Box::new(f);
        self
    }
    pub fn lookup(mut self, provider_id: String, pmid: ProviderMessageId) -> Self {
        self.provider_lookup = Some((provider_id, pmid));
        self
    }
}

/// A missed delivery deadline that an operator should act on (phone the recipient).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub tenant: TenantId,
    pub message_id: MessageId,
    pub category: String,
    /// Masked recipient (the full number is on the message for those allowed to read it).
    pub to: String,
    pub raised_at: String,
    pub deadline_secs: u32,
    pub status_at_escalation: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant: TenantId,
    pub role: String,
    /// First characters of the key, shown in listings to identify it.
    pub prefix: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn message_item(m: &Message) -> Result<Item, StoreError> {
        let doc = serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), s(keys::message_pk(m.id)));
        item.insert("sk".into(), s(keys::MESSAGE_SK));
        item.insert("type".into(), s("message"));
        item.insert("tenant".into(), s(m.tenant.as_str()));
        item.insert("status".into(), s(m.status.as_str()));
        item.insert("version".into(), n(m.version));
        item.insert("doc".into(), s(doc));
        item.insert("gsi2pk".into(), s(keys::tenant_messages_pk(&m.tenant)));
        item.insert("gsi2sk".into(), s(keys::tenant_messages_sk(m.id)));
        if !m.status.is_terminal() {
            // Due at its next attempt or, until escalated, its delivery deadline,
            // whichever comes first (ISO 8601 UTC strings compare in time order).
            let deadline = m.escalate_at.as_ref().filter(|_| m.escalated_at.is_none());
            let due = match (&m.next_attempt_at, deadline) {
                (Some(a), Some(d)) => Some(a.min(d)),
                (a, d) => a.as_ref().or(d),
            };
            if let Some(due) = due {
                item.insert("gsi1pk".into(), s(keys::due_pk(m.id.stable_hash() % DUE_SHARDS)));
                item.insert("gsi1sk".into(), s(keys::due_sk(due, m.id)));
            }
        } else if let (Some(at), Some(_), false) = (&m.redact_at, &m.body, m.legal_hold) {
            // Finished messages whose body is still held wait in the same sparse index
            // for the retention job.
            item.insert("gsi1pk".into(), s(keys::redact_pk(m.id.stable_hash() % DUE_SHARDS)));
            item.insert("gsi1sk".into(), s(keys::due_sk(at, m.id)));
        }
        if let Some(ttl) = keys::record_ttl(m) {
            item.insert("ttl".into(), n(ttl));
        }
        Ok(item)
    }

    fn event_item(m: &Message, e: &MessageEvent) -> Result<Item, StoreError> {
        let doc = serde_json::to_string(e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut item = HashMap::from([
            ("pk".into(), s(keys::message_pk(m.id))),
            ("sk".into(), s(keys::event_sk(&e.at))),
            ("type".into(), s("event")),
            ("tenant".into(), s(m.tenant.as_str())),
            ("doc".into(), s(doc)),
        ]);
        // History expires with its message, never before it.
        if let Some(ttl) = keys::record_ttl(m) {
            item.insert("ttl".into(), n(ttl));
        }
        Ok(item)
    }

    fn put(item: Item, table: &str, condition: Option<(&str, Vec<(&str, AttributeValue)>)>) -> Result<TransactWriteItem, StoreError> {
        let mut p = Put::builder().table_name(table).set_item(Some(item));
        if let Some((cond, values)) = condition {
            p = p.condition_expression(cond);
            for (k, v) in values {
                p = p.expression_attribute_values(k, v);
            }
        }
        Ok(TransactWriteItem::builder().put(p.build().map_err(|e| StoreError::Corrupt(e.to_string()))?).build())
    }

    /// Stores a new message and its first event, and claims the idempotency key in
    /// the same transaction. If the key was taken, returns what it points to.
    pub async fn create_message(
        &self,
        m: &Message,
        first: &MessageEvent,
        idem: Option<(&IdempotencyKey, &str)>,
        now: Instant,
    ) -> Result<CreateOutcome, StoreError> {
        let mut items = vec![
            Self::put(Self::message_item(m)?, &self.table, Some(("attribute_not_exists(pk)", vec![])))?,
            Self::put(Self::event_item(m, first)?, &self.table, None)?,
        ];
        if let Some((key, hash)) = idem {
            let item = HashMap::from([
                ("pk".into(), s(keys::idempotency_pk(&m.tenant, key))),
                ("sk".into(), s(keys::IDEMPOTENCY_SK)),
                ("type".into(), s("idempotency")),
                ("message_id".into(), s(m.id.to_string())),
                ("request_hash".into(), s(hash)),
                ("ttl".into(), n(now.timestamp() + keys::IDEMPOTENCY_TTL_SECS)),
            ]);
            items.push(Self::put(item, &self.table, Some(("attribute_not_exists(pk)", vec![])))?);
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) => match store_error(e) {
                StoreError::Conflict => {
                    let Some((key, _)) = idem else { return Err(StoreError::Conflict) };
                    match self.get_idempotency(&m.tenant, key).await? {
                        Some(found) => Ok(found),
                        None => Err(StoreError::Conflict),
                    }
                }
                other => Err(other),
            },
        }
    }

    pub async fn get_idempotency(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<CreateOutcome>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::idempotency_pk(tenant, key)))
            .key("sk", s(keys::IDEMPOTENCY_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else { return Ok(None) };
        let message_id = require_s(&item, "message_id")?.parse().map_err(|_| StoreError::Corrupt("idempotency message_id".into()))?;
        Ok(Some(CreateOutcome::Existing { message_id, request_hash: require_s(&item, "request_hash")?.to_string() }))
    }

    pub async fn get_message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::message_pk(id)))
            .key("sk", s(keys::MESSAGE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item.map(|i| parse_doc(&i)).transpose()
    }

    /// The message and its history (oldest first) in one query.
    pub async fn get_message_with_history(&self, id: MessageId) -> Result<Option<(Message, Vec<MessageEvent>)>, StoreError> {
        let mut message = None;
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::message_pk(id)))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items.unwrap_or_default() {
                match item.get("type").and_then(|v| v.as_s().ok()).map(String::as_str) {
                    Some("message") => message = Some(parse_doc::<Message>(&item)?),
                    Some("event") => events.push(parse_doc::<MessageEvent>(&item)?),
                    _ => {}
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(message.map(|m| (m, events)))
    }

    /// Proposes a state change. Applies it with a version-conditional write if the
    /// state machine allows it (retrying on a lost race); otherwise records the event
    /// as not applied. Either way the history gets one line.
    pub async fn transition(&self, id: MessageId, change: Change<'_>, now: Instant) -> Result<TransitionOutcome, StoreError> {
        let Change { to, source, provider, provider_status, error_code, reason, edit, provider_lookup } = change;
        for _ in 0..5 {
            let Some(current) = self.get_message(id).await? else { return Err(StoreError::NotFound) };
            let verdict = current.status.transition_to(to);
            let mut event = MessageEvent {
                at: iso8601(now),
                source,
                status: to,
                from_status: Some(current.status),
                applied: verdict == TransitionVerdict::Apply,
                provider: provider.clone(),
                provider_status: provider_status.clone(),
                error_code: error_code.clone(),
                reason: reason.clone(),
                attempt: Some(current.attempts),
            };
            if verdict != TransitionVerdict::Apply {
                let item = Self::event_item(&current, &event)?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(store_error)?;
                return Ok(TransitionOutcome::Recorded { current, verdict });
            }
            let mut next = current.clone();
            next.status = to;
            next.version = current.version + 1;
            next.updated_at = iso8601(now);
            if let Some(r) = &reason {
                next.reason = Some(r.clone());
            }
            if error_code.is_some() {
                next.error_code = error_code.clone();
            }
            if let Some(p) = &provider {
                next.provider = Some(p.clone());
            }
            if to == DeliveryStatus::Sent && next.sent_at.is_none() {
                next.sent_at = Some(iso8601(now));
            }
            if to.is_terminal() {
                next.completed_at = Some(iso8601(now));
                next.next_attempt_at = None;
            }
            edit(&mut next);
            event.attempt = Some(next.attempts);
            let mut items = vec![
                Self::put(
                    Self::message_item(&next)?,
                    &self.table,
                    Some(("version = :v", vec![(":v", n(current.version))])),
                )?,
                Self::put(Self::event_item(&next, &event)?, &self.table, None)?,
            ];
            if let Some((pid, pmid)) = &provider_lookup {
                let item = HashMap::from([
                    ("pk".into(), s(keys::provider_lookup_pk(pid, pmid))),
                    ("sk".into(), s(keys::PROVIDER_LOOKUP_SK)),
                    ("type".into(), s("provider_lookup")),
                    ("message_id".into(), s(id.to_string())),
                    ("tenant".into(), s(current.tenant.as_str())),
                ]);
                items.push(Self::put(item, &self.table, None)?);
            }
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => return Ok(TransitionOutcome::Applied(next)),
                Err(e) => match store_error(e) {
                    // Someone else changed the message: re-read, decide again and
                    // re-apply the same edits to the fresh copy.
                    StoreError::Conflict => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict)
    }

    /// Writes the (provider account, provider message id) → message lookup on its own
    /// (a transition normally writes it; see `send`'s duplicate `sent`). Idempotent.
    pub async fn put_provider_lookup(&self, provider_id: &str, pmid: &ProviderMessageId, id: MessageId, tenant: &TenantId) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::provider_lookup_pk(provider_id, pmid)))
            .item("sk", s(keys::PROVIDER_LOOKUP_SK))
            .item("type", s("provider_lookup"))
            .item("message_id", s(id.to_string()))
            .item("tenant", s(tenant.as_str()))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Records an event that is not a state change (e.g. a routing explanation,
    /// a gate verdict, a failover note).
    pub async fn note(&self, m: &Message, source: EventSource, reason: String, now: Instant) -> Result<(), StoreError> {
        let event = MessageEvent {
            at: iso8601(now),
            source,
            status: m.status,
            from_status: Some(m.status),
            applied: false,
            provider: m.provider.clone(),
            provider_status: None,
            error_code: None,
            reason: Some(crate::domain::redact::mask_numbers(&reason).into_owned()),
            attempt: Some(m.attempts),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::event_item(m, &event)?))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Moves a message's due time without changing its state (version-conditional),
    /// recording why in its history.
    pub async fn reschedule(&self, m: &Message, next_due: &str, reason: String, now: Instant) -> Result<(), StoreError> {
        let due = next_due.to_string();
        self.update_fields(m, move |n| n.next_attempt_at = Some(due), reason, now).await
    }

    /// Edits fields other than the status (version-conditional), recording why.
    pub async fn update_fields(
        &self,
        m: &Message,
        edit: impl FnOnce(&mut Message),
        reason: String,
        now: Instant,
    ) -> Result<(), StoreError> {
        let mut next = m.clone();
        edit(&mut next);
        next.status = m.status;
        next.version = m.version + 1;
        next.updated_at = iso8601(now);
        let event = MessageEvent {
            at: iso8601(now),
            source: EventSource::Retry,
            status: m.status,
            from_status: Some(m.status),
            applied: false,
            provider: m.provider.clone(),
            provider_status: None,
            error_code: None,
            reason: Some(crate::domain::redact::mask_numbers(&reason).into_owned()),
            attempt: Some(m.attempts),
        };
        let items = vec![
            Self::put(Self::message_item(&next)?, &self.table, Some(("version = :v", vec![(":v", n(m.version))])))?,
            Self::put(Self::event_item(&next, &event)?, &self.table, None)?,
        ];
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Records an escalation for a message (idempotent per message).
    pub async fn put_escalation(&self, e: &Escalation) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = HashMap::from([
            ("pk".into(), s(keys::escalations_pk(&e.tenant))),
            ("sk".into(), s(e.message_id.to_string())),
            ("type".into(), s("escalation")),
            ("doc".into(), s(doc)),
        ]);
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match store_error(e) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }

    pub async fn list_escalations(&self, tenant: &TenantId) -> Result<Vec<Escalation>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::escalations_pk(tenant)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in resp.items.unwrap_or_default() {
                out.push(parse_doc(&item)?);
            }
            start = resp.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Acknowledges an open escalation; `NotFound` if there is none for that message,
    /// `Conflict` if it was already acknowledged.
    pub async fn ack_escalation(&self, tenant: &TenantId, id: MessageId, by: &str, now: Instant) -> Result<Escalation, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::escalations_pk(tenant)))
            .key("sk", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else { return Err(StoreError::NotFound) };
        let mut e: Escalation = parse_doc(&item)?;
        if e.acknowledged_at.is_some() {
            return Err(StoreError::Conflict);
        }
        let old_doc = require_s(&item, "doc")?.to_string();
        e.acknowledged_at = Some(iso8601(now));
        e.acknowledged_by = Some(by.to_string());
        let doc = serde_json::to_string(&e).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::escalations_pk(tenant)))
            .key("sk", s(id.to_string()))
            .update_expression("SET doc = :new")
            .condition_expression("doc = :old")
            .expression_attribute_values(":new", s(doc))
            .expression_attribute_values(":old", s(old_doc))
            .send()
            .await
            .map_err(store_error)?;
        Ok(e)
    }

    pub async fn find_by_provider_id(&self, provider_id: &str, pmid: &ProviderMessageId) -> Result<Option<(MessageId, TenantId)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_lookup_pk(provider_id, pmid)))
            .key("sk", s(keys::PROVIDER_LOOKUP_SK))
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else { return Ok(None) };
        let id = require_s(&item, "message_id")?.parse().map_err(|_| StoreError::Corrupt("lookup message_id".into()))?;
        let tenant = TenantId::parse(require_s(&item, "tenant")?).map_err(|_| StoreError::Corrupt("lookup tenant".into()))?;
        Ok(Some((id, tenant)))
    }

    /// Non-terminal messages whose due time (next attempt or check) is at or before `now`.
    pub async fn due(&self, now: Instant, limit_per_shard: i32) -> Result<Vec<Message>, StoreError> {
        self.sharded_due(keys::due_pk, now, limit_per_shard).await
    }

    /// Finished messages whose body is due for redaction at or before `now`.
    pub async fn due_redactions(&self, now: Instant, limit_per_shard: i32) -> Result<Vec<Message>, StoreError> {
        self.sharded_due(keys::redact_pk, now, limit_per_shard).await
    }

    /// Reads every shard of a time-ordered sparse `gsi1` partition up to `now`.
    async fn sharded_due(&self, pk: fn(u64) -> String, now: Instant, limit_per_shard: i32) -> Result<Vec<Message>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..DUE_SHARDS {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :p AND gsi1sk <= :t")
                .expression_attribute_values(":p", s(pk(shard)))
                // '~' sorts after every ULID character, so all ids at `now` are included.
                .expression_attribute_values(":t", s(format!("{}#~", iso8601(now))))
                .limit(limit_per_shard)
                .send()
                .await
                .map_err(store_error)?;
            for item in resp.items.unwrap_or_default() {
                // One unreadable item must not stop the sweep for every other message:
                // it is reported (by key, never by content) and left for an operator.
                match parse_doc::<Message>(&item) {
                    Ok(m) => out.push(m),
                    Err(e) => tracing::error!(pk = ?item.get("pk").and_then(|v| v.as_s().ok()), error = %e, "unreadable message item skipped by the sweep"),
                }
            }
        }
        Ok(out)
    }

    /// Sets or removes the TTL on every history item of a message (legal hold).
    pub async fn set_history_ttl(&self, m: &Message) -> Result<usize, StoreError> {
        let ttl = keys::record_ttl(m);
        let mut start = None;
        let mut count = 0;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :e)")
                .expression_attribute_values(":pk", s(keys::message_pk(m.id)))
                .expression_attribute_values(":e", s("EVT#"))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in resp.items.unwrap_or_default() {
                let mut u = self.client.update_item().table_name(&self.table).set_key(Some(item.clone()));
                u = match ttl {
                    Some(t) => u.update_expression("SET #t = :t").expression_attribute_values(":t", n(t)),
                    None => u.update_expression("REMOVE #t"),
                };
                u.expression_attribute_names("#t", "ttl").send().await.map_err(store_error)?;
                count += 1;
            }
            start = resp.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(count)
    }

    /// A page of a tenant's messages, oldest first (per-tenant listing index).
    pub async fn tenant_messages(
        &self,
        tenant: &TenantId,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<(Vec<Message>, Option<HashMap<String, AttributeValue>>), StoreError> {
        self.tenant_messages_page(tenant, start, None).await
    }

    /// Like [`Self::tenant_messages`], at most `limit` per page.
    pub async fn tenant_messages_page(
        &self,
        tenant: &TenantId,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
    ) -> Result<(Vec<Message>, Option<HashMap<String, AttributeValue>>), StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :p")
            .expression_attribute_values(":p", s(keys::tenant_messages_pk(tenant)))
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_error)?;
        let msgs = resp.items.unwrap_or_default().iter().map(parse_doc).collect::<Result<Vec<Message>, _>>()?;
        Ok((msgs, resp.last_evaluated_key))
    }

    /// Remembers `key` until `expires_unix`; false if it was already seen (a replay).
    pub async fn claim_once(&self, key: &str, expires_unix: i64) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".into(), s(keys::replay_pk(key))),
            ("sk".into(), s(keys::REPLAY_SK)),
            ("type".into(), s("replay")),
            ("ttl".into(), n(expires_unix)),
        ]);
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match store_error(e) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Counts a send outcome for the circuit breaker (per tenant account, per minute).
    pub async fn record_outcome(&self, tenant: &TenantId, provider_id: &str, ok: bool, now: Instant) -> Result<(), StoreError> {
        let minute = now.format("%Y-%m-%dT%H:%M").to_string();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::health_pk(tenant, provider_id)))
            .key("sk", s(minute))
            .update_expression("ADD #c :one SET #t = if_not_exists(#t, :ttl), #ty = :ty")
            .expression_attribute_names("#c", if ok { "ok" } else { "fail" })
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_names("#ty", "type")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(now.timestamp() + 3600))
            .expression_attribute_values(":ty", s("provider_health"))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// (successes, transient failures) for an account over the last `minutes` minutes.
    pub async fn recent_outcomes(&self, tenant: &TenantId, provider_id: &str, minutes: i64, now: Instant) -> Result<(u64, u64), StoreError> {
        let from = (now - chrono::Duration::minutes(minutes)).format("%Y-%m-%dT%H:%M").to_string();
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk >= :from")
            .expression_attribute_values(":pk", s(keys::health_pk(tenant, provider_id)))
            .expression_attribute_values(":from", s(from))
            .send()
            .await
            .map_err(store_error)?;
        let num = |i: &Item, k: &str| i.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(resp.items.unwrap_or_default().iter().fold((0, 0), |(o, f), i| (o + num(i, "ok"), f + num(i, "fail"))))
    }

    /// Forgets a replay key (processing failed, so the provider's retry must pass).
    pub async fn release_once(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::replay_pk(key)))
            .key("sk", s(keys::REPLAY_SK))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub async fn get_tenant_config(&self, tenant: &TenantId) -> Result<Option<TenantConfig>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::tenant_pk(tenant)))
            .key("sk", s(keys::TENANT_CONFIG_SK))
            .send()
            .await
            .map_err(store_error)?;
        out.item.map(|i| parse_doc(&i)).transpose()
    }

    /// Stores a validated config as the next version (conditional on the version the
    /// writer read), keeping the previous versions as history items.
    pub async fn put_tenant_config(&self, cfg: &TenantConfig, now: Instant) -> Result<TenantConfig, StoreError> {
        let mut next = cfg.clone();
        let expected = cfg.version;
        next.version = expected + 1;
        let doc = serde_json::to_string(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let current = HashMap::from([
            ("pk".into(), s(keys::tenant_pk(&cfg.tenant))),
            ("sk".into(), s(keys::TENANT_CONFIG_SK)),
            ("type".into(), s("tenant_config")),
            ("version".into(), n(next.version)),
            ("updated_at".into(), s(iso8601(now))),
            ("doc".into(), s(doc.clone())),
        ]);
        let history = HashMap::from([
            ("pk".into(), s(keys::tenant_pk(&cfg.tenant))),
            ("sk".into(), s(keys::tenant_config_version_sk(next.version))),
            ("type".into(), s("tenant_config_version")),
            ("updated_at".into(), s(iso8601(now))),
            ("doc".into(), s(doc)),
        ]);
        let cond = if expected == 0 {
            ("attribute_not_exists(pk)", vec![])
        } else {
            ("version = :v", vec![(":v", n(expected))])
        };
        let items = vec![Self::put(current, &self.table, Some(cond))?, Self::put(history, &self.table, None)?];
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(store_error)?;
        Ok(next)
    }

    pub async fn put_api_key(&self, key_hash: &str, rec: &ApiKeyRecord) -> Result<(), StoreError> {
        let doc = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = HashMap::from([
            ("pk".into(), s(keys::api_key_pk(key_hash))),
            ("sk".into(), s(keys::API_KEY_SK)),
            ("type".into(), s("api_key")),
            ("tenant".into(), s(rec.tenant.as_str())),
            ("gsi2pk".into(), s(keys::tenant_keys_pk(&rec.tenant))),
            ("gsi2sk".into(), s(rec.key_id.clone())),
            ("doc".into(), s(doc)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The tenant's keys (records only; hashes stay internal).
    pub async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :p")
            .expression_attribute_values(":p", s(keys::tenant_keys_pk(tenant)))
            .send()
            .await
            .map_err(store_error)?;
        resp.items.unwrap_or_default().iter().map(parse_doc).collect()
    }

    /// Revokes a key by id; `NotFound` if the tenant has no such key.
    pub async fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> Result<ApiKeyRecord, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :p AND gsi2sk = :k")
            .expression_attribute_values(":p", s(keys::tenant_keys_pk(tenant)))
            .expression_attribute_values(":k", s(key_id))
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = resp.items.unwrap_or_default().into_iter().next() else { return Err(StoreError::NotFound) };
        let mut rec: ApiKeyRecord = parse_doc(&item)?;
        rec.revoked = true;
        let doc = serde_json::to_string(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", item.get("pk").cloned().ok_or_else(|| StoreError::Corrupt("key pk".into()))?)
            .key("sk", s(keys::API_KEY_SK))
            .update_expression("SET doc = :d")
            .expression_attribute_values(":d", s(doc))
            .send()
            .await
            .map_err(store_error)?;
        Ok(rec)
    }

    pub async fn get_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::api_key_pk(key_hash)))
            .key("sk", s(keys::API_KEY_SK))
            // A revoked key must stop working at once, not after replication catches up.
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item.map(|i| parse_doc(&i)).transpose()
    }
}

fn parse_doc<T: for<'de> Deserialize<'de>>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(require_s(item, "doc")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}
