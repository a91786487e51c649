//! The `retry` function, fired by an EventBridge schedule: sweeps messages whose due
//! time passed and moves each one on, so nothing is left behind by a crash, a lost
//! queue message or a receipt that never came.
//!
//! | status past due | action |
//! |---|---|
//! | `accepted`, `queued` | re-queue a route job (route and send are idempotent) |
//! | `sending` | the attempt was interrupted (crash after claim): `retrying`, re-route |
//! | `retrying` | a backoff longer than SQS's 15-minute delay ended: re-route |
//! | `sent` | no receipt within the window: `expired` ("delivery unknown") |
//! | any, past `expires_at` | `expired` |

use super::Deps;
use crate::domain::message::{EventSource, Message};
use crate::domain::DeliveryStatus;
use crate::error::ProcessingError;
use crate::queue::RouteJob;
use crate::store::{Change, TransitionOutcome};
use crate::time::{iso8601, parse_iso8601};
use serde::Serialize;

/// How far the sweep pushes a message's due time after re-queueing it.
const REQUEUE_GRACE_SECS: i64 = 300;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: usize,
    pub requeued: usize,
    pub expired: usize,
    pub errors: usize,
}

pub async fn sweep(deps: &Deps) -> Result<SweepReport, ProcessingError> {
    let now = deps.clock.now();
    let due = deps.store.due(now, 100).await?;
    let mut report = SweepReport { examined: due.len(), ..Default::default() };
    for m in due {
        match sweep_one(deps, &m).await {
            Ok(Action::Requeued) => report.requeued += 1,
            Ok(Action::Expired) => report.expired += 1,
            Ok(Action::None) => {}
            Err(e) => {
                report.errors += 1;
                tracing::warn!(message_id = %m.id, error = %e, "sweep step failed; next sweep retries");
            }
        }
    }
    if report.examined > 0 {
        tracing::info!(examined = report.examined, requeued = report.requeued, expired = report.expired, errors = report.errors, "sweep");
    }
    Ok(report)
}

enum Action {
    Requeued,
    Expired,
    None,
}

async fn sweep_one(deps: &Deps, m: &Message) -> Result<Action, ProcessingError> {
    let now = deps.clock.now();
    if parse_iso8601(&m.expires_at).is_some_and(|t| t <= now) {
        let reason = if m.status == DeliveryStatus::Sent {
            "validity period passed with no delivery receipt (delivery unknown)"
        } else {
            "validity period passed before the message could be sent"
        };
        deps.store.transition(m.id, Change::to(DeliveryStatus::Expired, EventSource::Retry).reason(reason), now).await?;
        return Ok(Action::Expired);
    }
    let next_due = iso8601(now + chrono::Duration::seconds(REQUEUE_GRACE_SECS));
    match m.status {
        DeliveryStatus::Sent => {
            deps.store
                .transition(
                    m.id,
                    Change::to(DeliveryStatus::Expired, EventSource::Retry)
                        .reason("no delivery receipt within the receipt window (delivery unknown)"),
                    now,
                )
                .await?;
            Ok(Action::Expired)
        }
        DeliveryStatus::Sending => {
            let change = Change::to(DeliveryStatus::Retrying, EventSource::Retry)
                .reason("send attempt was interrupted (no outcome recorded); retrying")
                .edit(move |n: &mut Message| n.next_attempt_at = Some(next_due));
            if let TransitionOutcome::Applied(m) = deps.store.transition(m.id, change, now).await? {
                requeue(deps, &m).await?;
            }
            Ok(Action::Requeued)
        }
        DeliveryStatus::Accepted | DeliveryStatus::Queued | DeliveryStatus::Retrying => {
            // Push the due time first (version-conditional) so concurrent sweeps do not
            // both re-queue; the loser sees a conflict and leaves it.
            let reason = format!("{} past its due time; re-queued by the sweep", m.status);
            deps.store.reschedule(m, &next_due, reason, now).await?;
            requeue(deps, m).await?;
            Ok(Action::Requeued)
        }
        _ => Ok(Action::None),
    }
}

async fn requeue(deps: &Deps, m: &Message) -> Result<(), ProcessingError> {
    let job = RouteJob { message_id: m.id, tenant: m.tenant.clone(), exclude: m.failed_providers.clone() };
    deps.queues
        .send(&deps.cfg.route_queue_url, &job, 0)
        .await
        .map_err(|e| ProcessingError::Transient(e.to_string()))
}
