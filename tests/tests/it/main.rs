//! The one integration-test binary: a module per area, sharing the helpers of the
//! `dispatch-tests` crate (the harness and the provider fakes). One binary links the
//! AWS SDKs once instead of once per area.

mod audit;
mod audit_trail;
mod emf_metrics;
mod emulator;
mod example_tenants;
mod fuzz_api;
mod json_logs;
mod lambda_limits;
mod lifecycle;
mod log_hygiene;
mod media_inbound;
mod mms_inbound_e2e;
mod openapi;
mod pipeline;
mod provider_bandwidth;
mod provider_plivo;
mod provider_sandbox;
mod provider_sinch;
mod provider_telnyx;
mod provider_twilio;
mod provider_vonage;
mod providers_e2e;
mod retention;
mod security;
