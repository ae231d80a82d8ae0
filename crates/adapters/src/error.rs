//! The error every engine, storage and billing call returns: a stable code and a message.

use std::fmt;
use tollgate_core::ErrorCode;

/// The stable code of a failure: a decision's code (FORMAT.md §5) or one of the conditions
/// only the engine meets. The string form is what JSON output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A decision's code, as core returned it (or as a billing provider chose it, such as
    /// `PaymentMethodNotFound` for a declined card).
    Decision(ErrorCode),
    /// The billing provider failed or refused the call.
    BillingProviderError,
    /// The storage failed.
    StorageError,
    /// The customer kept changing under the operation: every attempt met a newer version.
    ConcurrentModification,
    /// An idempotency key already used for a different operation.
    IdempotencyKeyReused,
}

impl Code {
    /// The code as written in JSON output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decision(code) => code.as_str(),
            Self::BillingProviderError => "BillingProviderError",
            Self::StorageError => "StorageError",
            Self::ConcurrentModification => "ConcurrentModification",
            Self::IdempotencyKeyReused => "IdempotencyKeyReused",
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Self::Decision(code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of an engine operation, a storage call or a billing call.
///
/// Messages are lowercase, without a trailing period, with user input in backticks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: Code,
    message: String,
}

impl Error {
    /// An error with `code` and `message`.
    #[must_use]
    pub fn new(code: impl Into<Code>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A billing provider failure.
    #[must_use]
    pub fn billing(message: impl Into<String>) -> Self {
        Self::new(Code::BillingProviderError, message)
    }

    /// A storage failure.
    #[must_use]
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(Code::StorageError, message)
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> Code {
        self.code
    }

    /// The human message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<tollgate_core::Error> for Error {
    fn from(error: tollgate_core::Error) -> Self {
        Self::new(error.code(), error.message())
    }
}
