//! AWS list prices used for the cost per million messages (us-east-1, on-demand,
//! no free tier). Where each figure comes from is recorded next to it and in
//! BENCHMARKS.md; change them together.

use serde_json::{json, Value};

/// DynamoDB on-demand, per write request unit (after the 1 Nov 2024 price cut:
/// $0.625 per million WRU). Recalled; the search corpus only had pages quoting the
/// pre-cut $1.25.
pub const DDB_PER_WRU: f64 = 0.625 / 1e6;
/// DynamoDB on-demand, per read request unit ($0.125 per million RRU, same cut).
pub const DDB_PER_RRU: f64 = 0.125 / 1e6;
/// SQS standard queue, per request (64 KB chunk), beyond the first million a month:
/// $0.40 per million. Recalled.
pub const SQS_PER_REQUEST: f64 = 0.40 / 1e6;
/// Lambda, per request: $0.20 per million (corroborated by third-party pages).
pub const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda arm64, per GB-second: $0.0000133334 (artillery's price table, cited via the
/// search tool's docs corpus).
pub const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
/// Memory of every function (`infra/template.yaml` Globals: MemorySize 128).
pub const LAMBDA_GB: f64 = 0.125;
/// API Gateway HTTP API, first 300 M requests a month: $1.00 per million
/// (corroborated by aws.amazon.com/api-gateway/pricing and third-party pages).
pub const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// Secrets Manager: $0.05 per 10,000 API calls (third-party pages; storage of
/// $0.40 per secret-month is not per message and left out).
pub const SECRETS_PER_CALL: f64 = 0.05 / 1e4;

pub fn describe() -> Value {
    json!({
        "region": "us-east-1, on-demand list prices, no free tier",
        "as_of": "prices as recalled for 2025-2026 (DynamoDB after the Nov 2024 on-demand price cut); verify before quoting",
        "dynamodb_per_million_wru": 0.625,
        "dynamodb_per_million_rru": 0.125,
        "sqs_per_million_requests": 0.40,
        "lambda_per_million_requests": 0.20,
        "lambda_arm64_per_gb_second": LAMBDA_ARM_PER_GB_S,
        "lambda_memory_gb": LAMBDA_GB,
        "http_api_per_million_requests": 1.00,
        "secrets_manager_per_10k_calls": 0.05,
    })
}
