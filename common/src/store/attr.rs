//! The one set of DynamoDB item helpers and the one mapping from SDK errors to
//! [`StoreError`], shared by every DynamoDB adapter (messages, media, inbound, audit).
//!
//! Errors are classified from the service's error code (`ProvideErrorMetadata`),
//! never from the text of a `Debug` dump, so a changed message or an item value that
//! happens to contain an error name cannot change the classification.

use crate::error::StoreError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute, if present and a string.
pub fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A string attribute that must be there: its absence means a corrupt item.
pub fn require_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    get_s(item, k).ok_or_else(|| StoreError::Corrupt(format!("attribute {k} missing")))
}

/// The JSON document an item carries in its `doc` attribute.
pub fn parse_doc<T: for<'de> Deserialize<'de>>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(require_s(item, "doc")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What a failed DynamoDB call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamoFailure {
    /// A condition did not hold (or a transaction was cancelled by one): someone else
    /// changed the item first. The caller re-reads and decides.
    Conflict,
    /// Throttling, a service fault, a timeout or no connection: retry later.
    Unavailable,
}

/// Classifies a DynamoDB error code. `TransactionCanceledException` is a conflict:
/// our transactions are cancelled by their own conditions (a version check, an
/// `attribute_not_exists`) or by a concurrent transaction on the same item.
pub fn classify_code(code: Option<&str>) -> DynamoFailure {
    match code {
        Some("ConditionalCheckFailedException" | "TransactionCanceledException" | "TransactionConflictException") => {
            DynamoFailure::Conflict
        }
        _ => DynamoFailure::Unavailable,
    }
}

/// Maps any DynamoDB SDK error to a [`StoreError`]. The kept text names the
/// operation's error code and message, never item data.
pub fn store_error<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    match classify_code(code.as_deref()) {
        DynamoFailure::Conflict => StoreError::Conflict,
        DynamoFailure::Unavailable => StoreError::Unavailable(crate::sdk_error::describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_cancelled_transactions_are_conflicts() {
        assert_eq!(classify_code(Some("ConditionalCheckFailedException")), DynamoFailure::Conflict);
        assert_eq!(classify_code(Some("TransactionCanceledException")), DynamoFailure::Conflict);
        assert_eq!(classify_code(Some("TransactionConflictException")), DynamoFailure::Conflict);
    }

    #[test]
    fn everything_else_is_unavailable_even_when_its_text_names_a_condition() {
        for code in [
            None,
            Some("ProvisionedThroughputExceededException"),
            Some("ThrottlingException"),
            Some("InternalServerError"),
            Some("ResourceNotFoundException"),
            Some("ValidationException"),
            // The old Debug-text matching classified this as a conflict.
            Some("NotConditionalCheckFailedAtAll"),
        ] {
            assert_eq!(classify_code(code), DynamoFailure::Unavailable, "{code:?}");
        }
    }

    #[test]
    fn a_service_error_maps_by_its_code() {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;

        let raw = || Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty());
        let conflict = PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("the item holds attribute ConditionalCheckFailed in its text")
                .meta(aws_smithy_types::error::ErrorMetadata::builder().code("ConditionalCheckFailedException").build())
                .build(),
        );
        assert_eq!(store_error(SdkError::service_error(conflict, raw())), StoreError::Conflict);

        let throttled = PutItemError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate of requests exceeds the allowed throughput (ConditionalCheckFailed is not this)")
                .build(),
        );
        match store_error(SdkError::service_error(throttled, raw())) {
            StoreError::Unavailable(t) => assert!(t.starts_with("ThrottlingException: "), "{t}"),
            other => panic!("throttling is unavailable, not {other:?}"),
        }
    }
}
