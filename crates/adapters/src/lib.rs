//! Billing and storage adapters for Tollgate.
//!
//! Core decides; this crate does the I/O around a decision. A host implements [`Storage`]
//! for its database and [`Billing`] for its billing provider (or uses the in-memory
//! [`MemoryStorage`] and [`ScriptedBilling`]), and runs operations through an [`Engine`]:
//! load the customer's state, decide in core, call billing, save if nobody saved in
//! between, else void the billing and decide again.
//!
//! The traits' methods return `impl Future + Send`, so any async runtime drives them and the
//! crate depends on none. [`conformance`] holds the checks a host runs against its own
//! implementations.
//!
//! # Example
//! ```
//! use tollgate_adapters::{Engine, MemoryStorage, ScriptedBilling};
//! use tollgate_core::journey::ProvisionCustomerRequest;
//! use tollgate_core::{Catalog, settings::Settings};
//!
//! let catalog = Catalog::from_json(br#"{}"#)?;
//! let engine = Engine::new(catalog, Settings::default(), MemoryStorage::new(), ScriptedBilling::new());
//! let request: ProvisionCustomerRequest = serde_json::from_str(r#"{"customerId": "c1"}"#)?;
//! let now = "2025-01-01T00:00:00Z".parse()?;
//! let answer = pollster::block_on(engine.provision_customer(&request, now, None))?;
//! assert_eq!(answer.customer.id.as_str(), "c1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod billing;
pub mod conformance;
pub mod engine;
pub mod error;
mod locks;
pub mod memory;
pub mod storage;

pub use billing::{Billing, CheckoutId};
pub use engine::{Canceled, CustomerProvisioned, Engine, Operation, Outcome, Provisioned};
pub use error::{Code, Error};
pub use memory::{MemoryStorage, ScriptedBilling};
pub use storage::{Commit, IdempotencyKey, Recorded, Redemption, Saved, Storage, Stored, Version};
