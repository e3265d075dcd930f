//! What key management can refuse, in its own terms. The contract's status and `error`
//! string for each are decided at the HTTP edge (`impl From<KeyError> for ApiError` in
//! `crate::error`); `imagegate keys …` prints the message.

use serde_json::{Map, Value};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A setting the operator sent cannot be used; `details` names the field and what it
    /// allows.
    #[error("{message}")]
    Invalid {
        message: String,
        details: Map<String, Value>,
    },
    #[error("The key was not found.")]
    NotFound {
        /// It exists but was revoked meanwhile (an update lost the race).
        revoked: bool,
    },
    /// Rotating a key that was already revoked or rotated.
    #[error("The key was already revoked or rotated.")]
    AlreadyReplaced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut details = Map::new();
        details.insert("field".into(), field.into());
        Self::Invalid {
            message: message.into(),
            details,
        }
    }

    /// Adds `key` to an invalid setting's details.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Self::Invalid { details, .. } = &mut self {
            details.insert(key.to_owned(), value.into());
        }
        self
    }
}
