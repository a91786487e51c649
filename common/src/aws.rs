//! AWS SDK configuration. `AWS_ENDPOINT_URL` is the only switch between real AWS
//! and a local emulator (moto, LocalStack): the SDK reads it itself.

use aws_config::BehaviorVersion;

/// Loads the shared SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`). Loading resolves nothing over the network: credentials are
/// fetched lazily on the first call, so function init stays network-free.
pub async fn load() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
        let s3_cfg = aws_sdk_s3::config::Builder::from(cfg).force_path_style(force_path_style).build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(cfg),
            sqs: aws_sdk_sqs::Client::new(cfg),
            s3: aws_sdk_s3::Client::from_conf(s3_cfg),
            secrets: aws_sdk_secretsmanager::Client::new(cfg),
        }
    }

    pub async fn from_env() -> Self {
        Self::new(&load().await)
    }
}
