//! E.164 phone numbers (being written).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid")]
pub struct PhoneError;

impl E164 {
    pub fn parse(_s: &str, _region: Option<&str>) -> Result<Self, PhoneError> {
        todo!()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
