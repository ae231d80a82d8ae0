//! What the integration tests share.
#![allow(
    dead_code,
    reason = "each test crate compiles this module and uses only part of it"
)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::CustomerState;
use tollgate_core::provision::ProvisionDecision;
use tollgate_core::settings::Settings;

/// A decision of the core on a request `R` (`provisionSubscription`, `updateSubscription`,
/// `migrateSubscriptionToLatest`, a transfer): the signature they share.
pub type Decide<R> = fn(
    &Catalog,
    &CustomerState,
    &R,
    &Redemptions,
    DateTime<Utc>,
    &Settings,
) -> Result<ProvisionDecision, tollgate_core::Error>;

/// The reference catalog, `tests/data/reference-catalog.json`.
///
/// # Panics
/// When the file does not load: every test on it would be meaningless.
#[allow(clippy::unwrap_used)]
pub fn reference_catalog() -> Catalog {
    Catalog::from_json(&reference_bytes()).unwrap()
}

/// The reference catalog's JSON, to derive other catalogs from.
///
/// # Panics
/// When the file is not JSON.
#[allow(clippy::unwrap_used)]
pub fn reference_json() -> Value {
    serde_json::from_slice(&reference_bytes()).unwrap()
}

/// The reference catalog with `edit` applied to its JSON.
///
/// # Panics
/// When the edited catalog does not load.
#[allow(clippy::unwrap_used)]
pub fn catalog_with(edit: impl FnOnce(&mut Value)) -> Catalog {
    let mut value = reference_json();
    edit(&mut value);
    Catalog::from_json_value(&value).unwrap()
}

#[allow(clippy::unwrap_used)]
fn reference_bytes() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reference-catalog.json"
    ))
    .unwrap()
}
