//! Where customers' states, idempotency records and promotion-code redemption counts live.

use crate::engine::{Operation, Outcome};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::CustomerState;
use tollgate_core::id::CustomerId;

/// The version of a stored customer state. Every successful save gives the state a version
/// it has never had, so a save that names the version it loaded fails if anyone saved in
/// between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// A version with the given number.
    #[must_use]
    pub fn new(number: u64) -> Self {
        Self(number)
    }

    /// Its number.
    #[must_use]
    pub fn number(self) -> u64 {
        self.0
    }
}

/// A customer's state as loaded, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The state.
    pub state: CustomerState,
    /// Its version, to name when saving.
    pub version: Version,
}

/// A key the caller gives an operation so that a retry of it replays the first result
/// instead of running again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key with the given text.
    #[must_use]
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operation that went through, kept under its idempotency key.
///
/// It serializes to the JSON a host stores (README, "Storing idempotency records"), as
/// strict as a customer's state: unknown keys, keys written twice and unknown operations
/// are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Recorded {
    /// What was asked.
    pub operation: Operation,
    /// What it answered.
    pub outcome: Outcome,
}

/// One more redemption of a promotion code, and how many the code allows in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The promotion code.
    pub code: String,
    /// Its `maxRedemptions` across all customers, if it has one.
    pub max: Option<u64>,
}

/// Everything one operation writes. A storage applies a commit whole or not at all: the
/// state, the idempotency record and the redemptions land together, and only if the
/// customer's version is still `expected` and no code would pass its maximum.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The version the operation loaded; `None` for a customer that did not exist.
    pub expected: Option<Version>,
    /// The customer's new state (its id names the customer).
    pub state: CustomerState,
    /// The record to keep under the operation's idempotency key.
    pub idempotency: Option<(IdempotencyKey, Recorded)>,
    /// Promotion codes redeemed by the operation, each counted once more (a code listed
    /// twice is counted twice).
    pub redeemed: Vec<Redemption>,
    /// Promotion codes the operation gives back (a scheduled change that held one was
    /// dropped before it applied, or a subscription that held one ended before it started
    /// or was paid), each counted once less, never below zero. They are
    /// given back before `redeemed` is counted against the maximums.
    pub released: Vec<String>,
}

/// Whether a commit landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// It landed; the state now has this version.
    Committed(Version),
    /// The customer's version was not the expected one (or a customer expected not to
    /// exist does), or the idempotency key is already recorded; nothing was written.
    Conflict,
    /// Counting the commit's redemptions would take this promotion code past its `max`:
    /// another customer's operation redeemed it since the decision read the counts.
    /// Nothing was written.
    Exhausted(String),
}

/// A host's storage.
///
/// Implementations must make [`Storage::save`] atomic and conditional: on the customer's
/// version, on the idempotency key being unused, and on each redeemed code's count staying
/// within its maximum (a conditional increment, such as
/// `UPDATE … SET count = count + 1 WHERE code = ? AND count < max`, in the commit's
/// transaction, after the decrements of its released codes). The engine relies on nothing else for correctness under concurrency:
/// its own per-customer lock covers only writes through one engine.
/// [`crate::conformance::storage`] checks an implementation against this contract.
///
/// [`CustomerState`], [`Redemptions`] and [`Recorded`] implement serde's `Serialize` and
/// `Deserialize`, so a storage keeps each as JSON text (README, "Storing a customer's state"
/// and "Storing idempotency records"; `examples/json_storage.rs` is such a storage).
pub trait Storage: Send + Sync {
    /// The customer's state and version, or `None` for a customer never saved.
    ///
    /// # Errors
    /// A storage failure.
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send;

    /// Writes `commit` if the customer's version is still `commit.expected`, its
    /// idempotency key is not recorded yet and every redeemed code stays within its `max`.
    ///
    /// # Errors
    /// A storage failure, and then nothing was written: the engine voids the billing of a
    /// commit whose save failed, so a storage that cannot tell whether a commit landed
    /// (a connection lost after sending it) must find out before answering. A version
    /// conflict is not an error but [`Saved::Conflict`], an exhausted code
    /// [`Saved::Exhausted`].
    fn save(&self, commit: Commit) -> impl Future<Output = Result<Saved, Error>> + Send;

    /// The operation recorded under `key`, if any.
    ///
    /// # Errors
    /// A storage failure.
    fn recorded(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send;

    /// How many times each promotion code has been redeemed, across all customers.
    ///
    /// # Errors
    /// A storage failure.
    fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send;
}
