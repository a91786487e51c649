//! Work passed between functions over SQS, and the SQS adapter.

use crate::domain::{MessageId, TenantId};
use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};

/// submit → route (and retry/sweep → route for failover): choose a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteJob {
    pub message_id: MessageId,
    pub tenant: TenantId,
    /// Tenant provider ids already tried and failed for this message (failover skips them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// route → send: call this provider account for this message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: MessageId,
    pub tenant: TenantId,
    /// The tenant's provider account id (names the credentials secret).
    pub provider_id: String,
    /// The sender identity routing chose.
    pub from: String,
    /// Providers tried before this one (carried for further failover).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Life-safety lane.
    #[serde(default)]
    pub priority: bool,
}

/// Any state change → the tenant's callback URL (delivered by the retry function).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCallbackJob {
    pub tenant: TenantId,
    /// The message the callback is about (its history records each delivery attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// The JSON body to POST, already rendered (signed at delivery time).
    pub body: String,
    /// Delivery attempt, 1-based.
    #[serde(default = "one")]
    pub attempt: u32,
}

/// webhook → inbound-media: fetch the media of a stored inbound message. The record
/// itself says which items are still pending, so a redelivered job resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMediaJob {
    pub tenant: TenantId,
    pub inbound_id: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

#[derive(Clone, Debug)]
pub struct SqsQueues {
    client: Client,
}

impl SqsQueues {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one job, optionally delayed (SQS allows up to 900 s).
    pub async fn send<T: Serialize>(&self, queue_url: &str, job: &T, delay_secs: u32) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        let mut req = self.client.send_message().queue_url(queue_url).message_body(body);
        if delay_secs > 0 {
            req = req.delay_seconds(delay_secs.min(900) as i32);
        }
        req.send().await.map_err(|e| QueueError(crate::sdk_error::describe(&e)))?;
        Ok(())
    }
}
