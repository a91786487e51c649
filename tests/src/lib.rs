//! Test support: fake provider servers that mirror each provider's documented wire
//! format (requests, responses, error bodies, signed callbacks), and helpers to run
//! the pipeline against the AWS emulator.

pub mod fakes;
pub mod faults;
pub mod harness;
pub mod receiver;
