//! Content categories: what a message is for. The four built-in categories carry
//! platform meaning (emergency callbacks are life-safety); tenants may add their own.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentCategory(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("category must be 1-40 lowercase letters, digits or '_' (built in: emergency_callback, resident_update, evidence_notification, general)")]
pub struct CategoryError;

impl ContentCategory {
    pub const EMERGENCY_CALLBACK: &'static str = "emergency_callback";
    pub const RESIDENT_UPDATE: &'static str = "resident_update";
    pub const EVIDENCE_NOTIFICATION: &'static str = "evidence_notification";
    pub const GENERAL: &'static str = "general";
    pub const BUILT_IN: [&'static str; 4] = [
        Self::EMERGENCY_CALLBACK,
        Self::RESIDENT_UPDATE,
        Self::EVIDENCE_NOTIFICATION,
        Self::GENERAL,
    ];

    /// Parses the syntax of a category name. Whether the tenant knows the category is
    /// checked separately, against its configuration ([`Self::is_built_in`] or its own list).
    pub fn parse(s: impl Into<String>) -> Result<Self, CategoryError> {
        let s: String = s.into();
        let ok = (1..=40).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && s.starts_with(|c: char| c.is_ascii_lowercase());
        if ok { Ok(Self(s)) } else { Err(CategoryError) }
    }

    pub fn emergency_callback() -> Self {
        Self(Self::EMERGENCY_CALLBACK.into())
    }
    pub fn general() -> Self {
        Self(Self::GENERAL.into())
    }
    pub fn is_built_in(&self) -> bool {
        Self::BUILT_IN.contains(&self.0.as_str())
    }
    pub fn is_emergency_callback(&self) -> bool {
        self.0 == Self::EMERGENCY_CALLBACK
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentCategory {
    type Error = CategoryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ContentCategory> for String {
    fn from(c: ContentCategory) -> Self {
        c.0
    }
}

impl fmt::Display for ContentCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn built_ins_parse_and_are_known() {
        for c in ContentCategory::BUILT_IN {
            assert!(ContentCategory::parse(c).unwrap().is_built_in());
        }
        assert!(!ContentCategory::parse("road_closures").unwrap().is_built_in());
    }
    #[test]
    fn bad_syntax_is_refused() {
        for bad in ["", "Emergency", "has-dash", "_leading", &"a".repeat(41)] {
            assert!(ContentCategory::parse(bad).is_err(), "{bad}");
        }
    }
}
