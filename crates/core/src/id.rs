//! Typed identifiers. Every id is a newtype so that a plan id can never be passed where a
//! feature id is expected.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// An id with the given text.
            #[must_use]
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id's text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }
    )*};
}

ids! {
    /// Identifies a feature.
    FeatureId,
    /// Identifies a product.
    ProductId,
    /// Identifies a plan (all its versions share the id).
    PlanId,
    /// Identifies an add-on (all its versions share the id).
    AddonId,
    /// Identifies a coupon.
    CouponId,
    /// Identifies a customer.
    CustomerId,
    /// Identifies a subscription.
    SubscriptionId,
    /// Identifies a resource of a multi-subscription product (a workspace, a project).
    ResourceId,
}

/// An ISO 3166-1 alpha-2 country code: two ASCII capital letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses a well-formed code (`"DE"`); anything else is `None`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some(Self([*a, *b])),
            _ => None,
        }
    }

    /// The code's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII capitals by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
