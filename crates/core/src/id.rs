//! Typed identifiers. Every id is a newtype so that a plan id can never be passed where a
//! feature id is expected.
//!
//! An id is a shared, immutable string: cloning one (into a subscription, an invoice, a
//! decision) counts a reference instead of copying the text.

use crate::error::{Error, ErrorCode};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Eq, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl Hash for $name {
            /// Hashes the text, as equality compares it.
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl PartialEq for $name {
            /// Two ids are equal when their texts are; clones of one id are equal without
            /// comparing the texts.
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl $name {
            /// An id with the given text.
            #[must_use]
            pub fn new(id: impl Into<Arc<str>>) -> Self {
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
                Self(Arc::from(id))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor).map(Self)
            }
        }
    )*};
}

/// `<owner>-<kind>-<n>`, the form of the ids Tollgate gives (`c1-inv-3`, `c1-sub-2`).
pub(crate) fn numbered(owner: &str, kind: &str, n: usize) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let length = owner
        .len()
        .saturating_add(kind.len())
        .saturating_add(digits.len())
        .saturating_add(2);
    let mut id = String::with_capacity(length);
    for part in [owner, "-", kind, "-", digits] {
        id.push_str(part);
    }
    id
}

/// Whether `id` has the form [`numbered`] gives `owner`'s ids of `kind`
/// (`<owner>-<kind>-<n>`): an id Tollgate may generate for that owner.
#[must_use]
pub fn is_numbered(id: &str, owner: &str, kind: &str) -> bool {
    id.strip_prefix(owner)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads an id's text straight into its shared string. An empty text names nothing (an
/// empty `resourceId` would otherwise be a resource of its own), so it is refused.
struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id string that is not empty")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Arc<str>, E> {
        if text.is_empty() {
            return Err(E::invalid_value(de::Unexpected::Str(text), &self));
        }
        Ok(Arc::from(text))
    }
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

    /// Whether the code names a country: one of the codes ISO 3166-1 assigns, or `XK`
    /// (Kosovo, user-assigned but used by billing providers). A well-formed code such as
    /// `UK` or `EU` is not one.
    #[must_use]
    pub fn is_assigned(&self) -> bool {
        ASSIGNED.binary_search(&self.as_str()).is_ok()
    }

    /// The code's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII capitals by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// The code `text` when it names a country; `InvalidArgumentError` otherwise: a request or
/// a customer billed in `UK` would match no localized price set and silently pay the
/// default prices.
///
/// # Errors
/// `InvalidArgumentError` for text that is no code, or a code no country is assigned.
pub(crate) fn check_country(text: &str) -> Result<CountryCode, Error> {
    match CountryCode::parse(text) {
        Some(code) if code.is_assigned() => Ok(code),
        Some(_) => Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!("`{text}` is not an assigned ISO 3166-1 alpha-2 country code"),
        )),
        None => Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!("`{text}` is not an ISO 3166-1 alpha-2 country code"),
        )),
    }
}

/// The ISO 3166-1 alpha-2 codes assigned to countries and territories, and `XK`, sorted.
const ASSIGNED: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| de::Error::custom(format!("`{text}` is not a country code")))
    }
}

#[cfg(test)]
mod numbered_tests {
    use super::{is_numbered, numbered};

    #[test]
    fn the_numbered_form_is_recognised_for_its_owner_only() {
        assert!(is_numbered(&numbered("c2", "sub", 1), "c2", "sub"));
        assert!(is_numbered(&numbered("a-sub", "sub", 17), "a-sub", "sub"));
        assert!(!is_numbered(&numbered("c2", "sub", 1), "c1", "sub"));
        assert!(!is_numbered(&numbered("c2", "inv", 1), "c2", "sub"));
        for other in [
            "c2-sub-",
            "c2-sub-x",
            "c2-sub-1a",
            "c2-sub",
            "c2sub-1",
            "c2-sub--1",
        ] {
            assert!(!is_numbered(other, "c2", "sub"), "{other}");
        }
    }
}

#[cfg(test)]
mod country_tests {
    use super::{ASSIGNED, CountryCode};

    #[test]
    fn the_assigned_codes_are_sorted_for_their_search() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ASSIGNED.len(), 250, "249 ISO 3166-1 codes and XK");
    }

    #[test]
    fn only_codes_naming_a_country_are_assigned() {
        for code in ["GB", "DE", "US", "AD", "ZW", "XK"] {
            assert!(CountryCode::parse(code).unwrap().is_assigned(), "{code}");
        }
        for code in ["UK", "EU", "ZZ", "AA", "XX", "QM"] {
            assert!(!CountryCode::parse(code).unwrap().is_assigned(), "{code}");
        }
    }
}
