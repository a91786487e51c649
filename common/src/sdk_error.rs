//! Reading AWS SDK errors by their typed parts (service error code, transport
//! failure kind), the same way for every service, instead of matching `Debug` text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// A short description of an SDK error for logs and error values: the service's
/// code and message when it answered, otherwise the kind of transport failure.
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match e {
        SdkError::ServiceError(_) => {
            format!("{}: {}", e.code().unwrap_or("service error"), e.message().unwrap_or(""))
        }
        SdkError::TimeoutError(_) => "timeout".to_string(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timeout".to_string(),
        SdkError::DispatchFailure(_) => "could not reach the service".to_string(),
        SdkError::ResponseError(_) => "unreadable response".to_string(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_string(),
        _ => "unknown SDK error".to_string(),
    };
    text.chars().take(300).collect()
}

/// Whether the service answered with this error code.
pub fn has_code<E, R>(e: &SdkError<E, R>, code: &str) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    e.code() == Some(code)
}
