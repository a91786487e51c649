//! One fake per provider. Each records the requests it received, answers in the
//! provider's documented shapes (including its error bodies), can be scripted to
//! fail (429, 5xx, permanent 4xx, timeouts), and sends callbacks signed the
//! provider's way.

pub mod bandwidth;
pub mod plivo;
pub mod sinch;
pub mod telnyx;
pub mod twilio;
pub mod vonage;
