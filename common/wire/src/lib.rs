//! What each provider speaks, without speaking it: every adapter builds a
//! [`providers::ProviderRequest`], parses a [`providers::ProviderResponse`], and
//! verifies and parses callbacks with its own signature scheme in [`signatures`].
//! Executing a request is the caller's job, so every rule here is testable offline.

pub mod providers;
pub mod signatures;
