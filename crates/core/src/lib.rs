//! Tollgate core: pure subscription and entitlement decisions.
//!
//! Everything here is a function of its arguments: a [`Catalog`], a customer's state, a
//! request and the current instant. Nothing reads a clock, touches the network or draws a
//! random number, so the same input always gives byte-identical output.
//!
//! The modules follow the domain:
//! - [`catalog`]: features, products, plans, add-ons, coupons; loading and validation;
//! - [`money`]: currencies, amounts, rounding;
//! - [`period`]: billing periods, anchored period series, trial durations;
//! - [`pricing`]: the recurring amount of a configuration;
//! - [`entitlement`]: the generous merge of entitlements, checks, promotional grants;
//! - [`update`]: changes to an existing subscription: updates, migrations, transfers;
//! - [`usage`]: metered usage, reset windows, usage resets on plan changes;
//! - [`error`]: the stable error codes every failure carries.
//!
//! # Example
//!
//! ```
//! use tollgate_core::Catalog;
//!
//! let catalog = Catalog::from_json(br#"{"features": [{"id": "sso", "type": "BOOLEAN"}]}"#)?;
//! assert_eq!(catalog.features().len(), 1);
//! # Ok::<(), tollgate_core::catalog::CatalogError>(())
//! ```
#![deny(missing_docs)]

pub mod cancellation;
pub mod catalog;
pub mod change;
pub mod coupon;
pub mod customer;
pub mod entitlement;
pub mod error;
pub mod estimate;
pub mod explain;
pub mod id;
pub mod invoice;
pub mod journey;
pub mod lifecycle;
pub mod money;
pub mod period;
pub mod pricing;
pub mod proration;
pub mod provision;
pub mod settings;
mod stored;
pub mod subscription;
pub mod trial;
pub mod update;
pub mod usage;
pub mod view;

pub use catalog::Catalog;
pub use error::{Error, ErrorCode};
