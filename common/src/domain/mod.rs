//! Domain types that can only hold valid values (parse, don't validate).

pub mod category;
pub mod encoding;
pub mod ids;
pub mod message;
pub mod phone;
pub mod status;

pub use category::ContentCategory;
pub use encoding::{Encoding, SegmentInfo};
pub use ids::{IdempotencyKey, MessageId, ProviderMessageId, TenantId};
pub use message::{MessageKind, SenderId};
pub use phone::E164;
pub use status::{DeliveryStatus, TransitionVerdict};
