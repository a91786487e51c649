//! The local runner's parts: provisioning the emulator from `infra/template.yaml`,
//! a tiny HTTP server used for the API, the webhook URL, the sandbox provider and
//! test fakes, the SQS poller that stands in for Lambda's event source mapping, and
//! the sandbox provider.

pub mod http_server;
pub mod provision;
pub mod runner;
pub mod seed;
pub mod sandbox;
