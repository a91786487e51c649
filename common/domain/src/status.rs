//! Canonical delivery states and the rules for moving between them.
//!
//! ```text
//! accepted → queued → sending → sent → delivered | undelivered | failed | expired
//!                        ↕ retrying (attempt n, next attempt at t)
//! any non-terminal → rejected | failed | expired
//! accepted | queued | retrying → canceled (never once a provider call is under way)
//! ```
//! A message only moves forward. Provider callbacks arrive late, twice or out of
//! order; an event that would move a message backwards or out of a terminal state is
//! refused (and still recorded in the history as not applied).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Submit validated and stored the message.
    Accepted,
    /// Route chose a provider and put the message on that provider's send queue.
    Queued,
    /// A send attempt has been claimed and the provider is being called.
    Sending,
    /// The last attempt failed transiently; another attempt is scheduled.
    Retrying,
    /// The provider accepted the message (handed to carrier, no receipt yet).
    Sent,
    /// The handset received it (provider delivery receipt).
    Delivered,
    /// The carrier or handset could not deliver it after it was sent.
    Undelivered,
    /// It could not be sent (permanent provider error, attempts exhausted).
    Failed,
    /// Its validity period passed before it was delivered.
    Expired,
    /// Policy refused it before any provider was called (no eligible provider, opt-out, ...).
    Rejected,
    /// An operator withdrew it before it was handed to a provider.
    Canceled,
}

/// What should happen to a proposed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionVerdict {
    /// Apply it: the message moves to the new state.
    Apply,
    /// Same state again (a duplicate callback): record, change nothing.
    Duplicate,
    /// Would move backwards or leave a terminal state: record as not applied.
    Refuse,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 11] = [
        Self::Accepted,
        Self::Queued,
        Self::Sending,
        Self::Retrying,
        Self::Sent,
        Self::Delivered,
        Self::Undelivered,
        Self::Failed,
        Self::Expired,
        Self::Rejected,
        Self::Canceled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Undelivered | Self::Failed | Self::Expired | Self::Rejected | Self::Canceled
        )
    }

    /// Progress rank: a transition must not lower it. `sending` and `retrying` share
    /// a rank because a message alternates between them across attempts.
    fn rank(self) -> u8 {
        match self {
            Self::Accepted => 0,
            Self::Queued => 1,
            Self::Sending | Self::Retrying => 2,
            Self::Sent => 3,
            Self::Delivered | Self::Undelivered | Self::Failed | Self::Expired | Self::Rejected | Self::Canceled => 4,
        }
    }

    /// Decides whether `self → to` may be applied.
    ///
    /// Allowed: any forward move from a non-terminal state (a `delivered` receipt may
    /// overtake the `sent` record), `sending ↔ retrying` between attempts, and
    /// `retrying → queued` when a retry is re-routed to another provider, and
    /// `expired → delivered | undelivered` when a late receipt settles an unknown.
    /// `rejected` is only reachable before a provider has been called.
    pub fn transition_to(self, to: DeliveryStatus) -> TransitionVerdict {
        if self == to {
            return TransitionVerdict::Duplicate;
        }
        // `expired` after `sent` means "delivery unknown": no receipt came in time (an
        // AWS outage that refused the provider's callbacks is enough). A receipt that
        // arrives later is the truth, so it settles the message; nothing else leaves a
        // terminal state.
        if self == Self::Expired && matches!(to, Self::Delivered | Self::Undelivered) {
            return TransitionVerdict::Apply;
        }
        if self.is_terminal() {
            return TransitionVerdict::Refuse;
        }
        if to == Self::Rejected && self.rank() > 1 {
            return TransitionVerdict::Refuse;
        }
        // Withdrawing is only safe while no provider call is under way or done.
        if to == Self::Canceled && !matches!(self, Self::Accepted | Self::Queued | Self::Retrying) {
            return TransitionVerdict::Refuse;
        }
        let allowed = to.rank() > self.rank()
            || matches!((self, to), (Self::Sending, Self::Retrying) | (Self::Retrying, Self::Sending))
            || matches!((self, to), (Self::Retrying, Self::Queued));
        if allowed { TransitionVerdict::Apply } else { TransitionVerdict::Refuse }
    }

    /// States from which `to` may be reached, for conditional writes
    /// (`status IN (...)`). Computed from [`Self::transition_to`] so the rule lives once.
    pub fn allowed_predecessors(to: DeliveryStatus) -> Vec<DeliveryStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.transition_to(to) == TransitionVerdict::Apply)
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    /// The full table, written out by hand so a change to the rule shows up here.
    #[test]
    fn every_transition_matches_the_table() {
        use TransitionVerdict::{Apply as A, Duplicate as D, Refuse as R};
        // rows: from; columns: to, in DeliveryStatus::ALL order:
        //            acc que snd rty snt dlv und fai exp rej
        let table: [(DeliveryStatus, [TransitionVerdict; 10]); 10] = [
            (Accepted, [D, A, A, A, A, A, A, A, A, A]),
            (Queued, [R, D, A, A, A, A, A, A, A, A]),
            (Sending, [R, R, D, A, A, A, A, A, A, R]),
            (Retrying, [R, A, A, D, A, A, A, A, A, R]),
            (Sent, [R, R, R, R, D, A, A, A, A, R]),
            (Delivered, [R, R, R, R, R, D, R, R, R, R]),
            (Undelivered, [R, R, R, R, R, R, D, R, R, R]),
            (Failed, [R, R, R, R, R, R, R, D, R, R]),
            (Expired, [R, R, R, R, R, A, A, R, D, R]),
            (Rejected, [R, R, R, R, R, R, R, R, R, D]),
        ];
        for (from, row) in table {
            for (to, expected) in DeliveryStatus::ALL.into_iter().zip(row) {
                assert_eq!(from.transition_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_states_are_exactly_the_six() {
        let terminal: Vec<_> = DeliveryStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, vec![Delivered, Undelivered, Failed, Expired, Rejected, Canceled]);
    }

    #[test]
    fn cancel_only_before_a_provider_call_and_nothing_leaves_it() {
        assert_eq!(DeliveryStatus::allowed_predecessors(Canceled), vec![Accepted, Queued, Retrying]);
        for to in DeliveryStatus::ALL {
            let want = if to == Canceled { TransitionVerdict::Duplicate } else { TransitionVerdict::Refuse };
            assert_eq!(Canceled.transition_to(to), want, "canceled -> {to}");
        }
    }

    #[test]
    fn predecessors_follow_the_rule() {
        assert_eq!(DeliveryStatus::allowed_predecessors(Sent), vec![Accepted, Queued, Sending, Retrying]);
        assert_eq!(DeliveryStatus::allowed_predecessors(Rejected), vec![Accepted, Queued]);
        assert!(DeliveryStatus::allowed_predecessors(Accepted).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(DeliveryStatus::parse("bogus"), None);
    }
}
