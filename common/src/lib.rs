//! Everything the dispatch functions share: the domain (phone numbers, encodings,
//! delivery states), the ports the handlers depend on and their AWS adapters, the
//! provider adapters and their callback signature schemes, and the handlers
//! themselves. Each Lambda `main.rs` only wires these together.

pub mod audit;
pub mod auth;
pub mod aws;
pub mod config;
pub mod error;
pub mod handlers;
pub mod inbound;
pub mod media;
pub mod metrics;
pub mod observability;
pub mod public_http;
pub mod queue;
pub mod runtime;
pub mod sdk_error;
pub mod secrets;
pub mod store;
pub mod tenant;

// The pure domain lives in its own crate; these re-exports keep every
// `dispatch_common::domain::…` and `dispatch_common::time::…` path valid.
pub use dispatch_domain as domain;
pub use dispatch_domain::time;

// Provider wire formats and signature schemes live in the sans-IO crate
// `dispatch-wire`; the HTTPS executor for provider requests stays here.
pub mod providers {
    pub use dispatch_wire::providers::*;
    pub mod http;
}
pub use dispatch_wire::signatures;
