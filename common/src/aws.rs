//! AWS SDK configuration. `AWS_ENDPOINT_URL` is the only switch between real AWS
//! and a local emulator (moto, LocalStack): the SDK reads it itself.
//!
//! The SDK's defaults have no operation or attempt timeout: one connection that goes
//! silent would hang a handler (or a local poller) until Lambda kills the invocation,
//! and the default backoff (up to 20 s) alone could outlast it. Every client here gets
//! connect, attempt and operation timeouts derived from the function's own timeout,
//! and a standard-mode retry policy that fits inside them.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use std::time::Duration;

/// The functions' timeout in infra/template.yaml (`Globals.Function.Timeout`), which
/// is also API Gateway's HTTP API integration limit in front of submit.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);

/// This function's invocation limit: `FUNCTION_TIMEOUT_SECS` when set (a function
/// deployed with a timeout other than the template's default), else
/// [`DEFAULT_FUNCTION_TIMEOUT`].
pub fn function_timeout() -> Duration {
    std::env::var("FUNCTION_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_FUNCTION_TIMEOUT)
}

/// Time limits for AWS calls, derived from one invocation's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// Establishing a TCP/TLS connection (in-region endpoints answer in milliseconds).
    pub connect: Duration,
    /// One HTTP attempt, response included.
    pub attempt: Duration,
    /// One SDK call, all its attempts and backoff included.
    pub operation: Duration,
    /// One S3 attempt: object bodies (media, up to 5 MiB) take longer than API calls.
    pub s3_attempt: Duration,
}

/// Attempts per call, the first included. With the backoff below they fit in
/// [`SdkTimeouts::operation`].
pub const MAX_ATTEMPTS: u32 = 3;

impl SdkTimeouts {
    /// For a function that Lambda stops after `function_timeout`.
    ///
    /// A handler makes a few AWS calls in sequence (read, conditional transaction,
    /// audit append, enqueue). One operation may use at most a third of the budget,
    /// capped at 10 s, so that a call stuck in its worst case still leaves time to
    /// report the failure (an HTTP error, or a partial batch failure SQS will retry)
    /// instead of being killed mid-way. Three attempts share that operation time.
    pub fn for_function_timeout(function_timeout: Duration) -> Self {
        let operation = (function_timeout / 3).clamp(Duration::from_secs(2), Duration::from_secs(10));
        let attempt = (operation / MAX_ATTEMPTS).max(Duration::from_secs(1));
        let connect = attempt.min(Duration::from_secs(2));
        Self { connect, attempt, operation, s3_attempt: operation }
    }

    /// From `FUNCTION_TIMEOUT_SECS` when set (a function deployed with a timeout other
    /// than the template's default), else [`DEFAULT_FUNCTION_TIMEOUT`].
    pub fn from_env() -> Self {
        Self::for_function_timeout(function_timeout())
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    fn s3_timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.s3_attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// Standard mode (its retry quota stops retry storms when a dependency is down), with
/// short backoffs: 3 attempts and at most ~1 s of waiting fit in one operation timeout.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1))
}

/// Loads the shared SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`) with the timeouts and retries above. Loading resolves nothing
/// over the network: credentials are fetched lazily on the first call, so function
/// init stays network-free.
pub async fn load() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(SdkTimeouts::from_env().timeout_config())
        .retry_config(retry_config())
        .load()
        .await
}

/// AWS clients a function may need, built once per instance.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    pub fn new(cfg: &aws_config::SdkConfig) -> Self {
        // With a custom endpoint (emulator) S3 must use path-style addressing:
        // virtual-host style would need DNS for `<bucket>.127.0.0.1`.
        let force_path_style = cfg.endpoint_url().is_some();
        let mut s3 = aws_sdk_s3::config::Builder::from(cfg).force_path_style(force_path_style);
        if cfg.timeout_config().and_then(|t| t.operation_timeout()).is_some() {
            // Configured by `load`: give object transfers their longer attempt time.
            s3 = s3.timeout_config(SdkTimeouts::from_env().s3_timeout_config());
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(cfg),
            sqs: aws_sdk_sqs::Client::new(cfg),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            secrets: aws_sdk_secretsmanager::Client::new(cfg),
        }
    }

    pub async fn from_env() -> Self {
        Self::new(&load().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thirty_second_function_bounds_every_call_well_inside_its_budget() {
        let t = SdkTimeouts::for_function_timeout(Duration::from_secs(30));
        assert_eq!(t.operation, Duration::from_secs(10));
        assert_eq!(t.attempt, Duration::from_secs(10) / 3);
        assert_eq!(t.connect, Duration::from_secs(2));
        // Three stuck calls in a row still end before Lambda stops the invocation.
        assert!(t.operation * 3 <= Duration::from_secs(30));
        // Every attempt, plus the retry backoff between them, fits in one operation.
        let backoff = retry_config().max_backoff() * (MAX_ATTEMPTS - 1);
        assert!(t.attempt * MAX_ATTEMPTS <= t.operation + backoff);
        assert!(t.attempt > Duration::from_secs(1), "longer than the local runner's 1 s SQS long poll");
    }

    #[test]
    fn short_and_long_budgets_are_clamped() {
        let short = SdkTimeouts::for_function_timeout(Duration::from_secs(3));
        assert_eq!((short.operation, short.attempt, short.connect), (Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(1)));
        let long = SdkTimeouts::for_function_timeout(Duration::from_secs(900));
        assert_eq!(long.operation, Duration::from_secs(10));
    }

    #[test]
    fn loaded_config_carries_the_timeouts_and_retries() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cfg = rt.block_on(load());
        let t = cfg.timeout_config().expect("timeouts set");
        let want = SdkTimeouts::from_env();
        assert_eq!(t.operation_timeout(), Some(want.operation));
        assert_eq!(t.operation_attempt_timeout(), Some(want.attempt));
        assert_eq!(t.connect_timeout(), Some(want.connect));
        let r = cfg.retry_config().expect("retries set");
        assert_eq!(r.max_attempts(), MAX_ATTEMPTS);
        let clients = Clients::new(&cfg);
        let s3 = clients.s3.config().timeout_config().expect("s3 timeouts");
        assert_eq!(s3.operation_attempt_timeout(), Some(want.s3_attempt));
    }
}
