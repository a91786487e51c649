//! The pure domain: types that can only hold valid values (parse, don't validate).
//! Nothing here performs I/O, so every rule in it is testable without a network.

pub mod category;
pub mod encoding;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ids;
pub mod media_type;
pub mod message;
pub mod phone;
pub mod redact;
pub mod status;
pub mod time;

pub use category::ContentCategory;
pub use encoding::{Encoding, SegmentInfo};
pub use ids::{IdempotencyKey, MessageId, ProviderMessageId, TenantId};
pub use message::{MessageKind, SenderId};
pub use phone::{NumberType, E164};
pub use status::{DeliveryStatus, TransitionVerdict};
