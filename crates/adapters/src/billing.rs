//! The billing provider: payment methods, checkouts, charges and promotion codes.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{CheckoutRequest, Effects};

/// What a billing provider calls a checkout session it opened; stored as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckoutId(String);

impl CheckoutId {
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

impl fmt::Display for CheckoutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host's billing provider.
///
/// The engine calls it only when the settings say a billing integration is connected, and
/// always before it saves: a failed call leaves the customer's stored state as it was.
/// Every [`Billing::apply`] that went through ends either saved with its decision or
/// undone by [`Billing::void`]. [`crate::conformance::billing`] checks an implementation
/// against this contract.
pub trait Billing: Send + Sync {
    /// Whether the provider has a payment method on file for the customer. Asked before a
    /// decision that may charge, for a customer whose state has none (one may have been
    /// added at the provider since).
    ///
    /// # Errors
    /// A provider failure.
    fn has_payment_method(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Opens a checkout session where the customer gives a payment method.
    ///
    /// # Errors
    /// A provider failure.
    fn create_checkout(
        &self,
        customer: &CustomerId,
        checkout: &CheckoutRequest,
    ) -> impl Future<Output = Result<CheckoutId, Error>> + Send;

    /// Applies a decision's subscription changes (created, ended, rescheduled) and charges
    /// its invoice, if it has one.
    ///
    /// A declined card may answer `PaymentMethodNotFound`. For an operation's own charge
    /// the operation then fails and nothing is saved. For a charge of the clock's
    /// transitions, payment is not possible: the engine decides them again without a
    /// payment method (a trial expires instead of converting, a start or scheduled plan
    /// change waits for payment) and saves the customer as having none. A renewal's
    /// invoice is owed whatever its payment (SPEC.md §5: a period renews and is invoiced):
    /// a provider records it even when the charge fails, and collects it its own way
    /// (retries, dunning). An error for it means it could not be recorded; the engine
    /// answers it, saves nothing, and bills it again with the next operation.
    ///
    /// # Errors
    /// A provider failure, with the code the provider chooses.
    fn apply(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Undoes a [`Billing::apply`] of the same `effects` to the customer, or marks it
    /// void, because the decision it billed was not saved: its save met a newer version
    /// or an exhausted promotion code, the storage failed, or a later application of the
    /// same decision failed. The engine voids in reverse order of application, before it
    /// decides again or answers.
    ///
    /// The provider must refund or cancel what the application did (its charge, the
    /// subscriptions it created, ended or rescheduled), or keep it marked void so that
    /// nothing comes of it. Each [`Billing::apply`] is one application, also of effects
    /// equal to an earlier one's: two engines over one storage may both bill the same
    /// invoice of the clock, and the one whose save loses voids its own. So a provider
    /// that keys charges by invoice id counts the applications in force, and a void takes
    /// back one of them (the latest); with none in force, a void changes nothing and
    /// succeeds. A provider that keeps one charge per invoice id whatever the count would
    /// refund the invoice the winning engine saved.
    ///
    /// # Errors
    /// A provider failure. The engine then saves nothing and answers this error with its
    /// code, its message saying that an application was left in force: the host must
    /// reconcile it with the provider.
    fn void(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether the provider accepts `code` (the catalog has already accepted it). The
    /// engine asks before a decision redeems it, and before opening the checkout of a
    /// request that brings it (the completion redeems it); a code refused is answered
    /// `PromotionCodeNotFound` and nothing is saved.
    ///
    /// # Errors
    /// A provider failure.
    fn validate_promotion_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}
