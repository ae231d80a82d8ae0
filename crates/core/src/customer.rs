//! Customers and everything Tollgate knows about one: its subscriptions, its histories, its
//! invoices and its credit balance. A [`CustomerState`] is the unit a host loads, hands to a
//! decision and saves.

use crate::entitlement::PromotionalGrant;
use crate::error::{Error, ErrorCode};
use crate::id::{CountryCode, CustomerId, FeatureId, ProductId, ResourceId, SubscriptionId};
use crate::invoice::Invoice;
use crate::money::Currency;
use crate::provision::ProvisionRequest;
use crate::subscription::{CancelReason, Subscription, SubscriptionStatus};
use crate::usage::UsageLedger;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Customer {
    /// Its id.
    pub id: CustomerId,
    /// Whether a payment method is on file with the billing provider.
    pub has_payment_method: bool,
    /// Its time zone (day-based proration counts days here).
    #[serde(with = "crate::stored::timezone")]
    pub timezone: Tz,
    /// Its billing country.
    pub country: Option<CountryCode>,
    /// The tax percentage of its invoices (`17` is 17 %).
    pub tax_percentage: Option<Decimal>,
    /// Whether prices include the tax.
    pub tax_inclusive: bool,
    /// Whether it is archived: reads answer, changes fail.
    pub archived: bool,
    /// Credit owed to it, by currency; consumed by later invoices.
    #[serde(deserialize_with = "crate::stored::unique_map")]
    pub credit_balance: BTreeMap<Currency, Decimal>,
}

impl Customer {
    /// A customer with no payment method, in UTC, with no country, tax or credit.
    #[must_use]
    pub fn new(id: CustomerId) -> Self {
        Self {
            id,
            has_payment_method: false,
            timezone: Tz::UTC,
            country: None,
            tax_percentage: None,
            tax_inclusive: false,
            archived: false,
            credit_balance: BTreeMap::new(),
        }
    }
}

/// A checkout the customer has been sent to; nothing changes until the host confirms it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PendingCheckout {
    /// The subscription the checkout is for.
    pub subscription_id: SubscriptionId,
    /// The request that needs it, replayed when the checkout completes.
    pub request: ProvisionRequest,
    /// The trial decision made when it was requested; the completion carries it.
    pub trial: crate::trial::TrialOutcome,
    /// The start that decision was made for: a trial keeps its length from the completion.
    /// `None` for a checkout stored before it was kept: its trial keeps the end decided.
    pub start: Option<DateTime<Utc>>,
    /// The prices the checkout was requested at; the completion bills the same ones. Absent
    /// for a checkout stored before it was kept: the completion takes the customer's
    /// country then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priced_in: Option<PricedIn>,
}

/// The price set a checkout was requested at, which its completion keeps: the customer
/// was shown these prices, in their currency, and a coupon's amount in it, whatever
/// country the customer has by the time the checkout completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PricedIn {
    /// The billing country the request resolved; `None`: the plan's default prices.
    pub country: Option<CountryCode>,
}

/// Everything known about one customer.
///
/// It serializes to the JSON a host stores (README, "Storing a customer's state"): keys in
/// camelCase, enum values and instants as in FORMAT.md, amounts as strings. Deserializing
/// refuses unknown keys, a key or set element written twice, and a state that contradicts
/// itself: a subscription or invoice of another customer, two subscriptions or pending
/// checkouts with one id, a promotional grant filed under another feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "StoredState")]
#[non_exhaustive]
pub struct CustomerState {
    /// The customer.
    pub customer: Customer,
    /// Its subscriptions in creation order, in every status.
    pub subscriptions: Vec<Subscription>,
    /// Products the customer has had a trial of: recorded when the trial starts to run
    /// (states stored by earlier versions recorded it at the request).
    pub trial_history: BTreeSet<ProductId>,
    /// Products the customer has had a non-trial subscription to a paid plan of.
    pub paid_history: BTreeSet<ProductId>,
    /// Resources the customer has ever had a subscription for.
    pub resources: BTreeSet<ResourceId>,
    /// Invoices in issue order.
    pub invoices: Vec<Invoice>,
    /// Checkouts waiting for the host's confirmation.
    pub pending_checkouts: Vec<PendingCheckout>,
    /// Metered usage reported for it, by resource and feature.
    pub usage: UsageLedger,
    /// Its promotional entitlements, by feature: a new grant replaces the earlier one.
    pub promotional_entitlements: BTreeMap<FeatureId, PromotionalGrant>,
}

/// A customer's state as stored, before it is checked to be one state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StoredState {
    customer: Customer,
    subscriptions: Vec<Subscription>,
    #[serde(deserialize_with = "crate::stored::unique_set")]
    trial_history: BTreeSet<ProductId>,
    #[serde(deserialize_with = "crate::stored::unique_set")]
    paid_history: BTreeSet<ProductId>,
    #[serde(deserialize_with = "crate::stored::unique_set")]
    resources: BTreeSet<ResourceId>,
    invoices: Vec<Invoice>,
    pending_checkouts: Vec<PendingCheckout>,
    usage: UsageLedger,
    #[serde(deserialize_with = "crate::stored::unique_map")]
    promotional_entitlements: BTreeMap<FeatureId, PromotionalGrant>,
}

impl TryFrom<StoredState> for CustomerState {
    type Error = String;

    fn try_from(stored: StoredState) -> Result<Self, String> {
        let customer = &stored.customer.id;
        let mut ids = BTreeSet::new();
        for sub in &stored.subscriptions {
            if &sub.customer != customer {
                return Err(format!(
                    "subscription `{}` belongs to customer `{}`, not `{customer}`",
                    sub.id, sub.customer
                ));
            }
            if !ids.insert(&sub.id) {
                return Err(format!("two subscriptions have the id `{}`", sub.id));
            }
        }
        if let Some(invoice) = stored.invoices.iter().find(|i| &i.customer != customer) {
            return Err(format!(
                "invoice `{}` belongs to customer `{}`, not `{customer}`",
                invoice.id, invoice.customer
            ));
        }
        let mut checkouts = BTreeSet::new();
        for checkout in &stored.pending_checkouts {
            if !checkouts.insert(&checkout.subscription_id) {
                return Err(format!(
                    "two pending checkouts are for subscription `{}`",
                    checkout.subscription_id
                ));
            }
        }
        if let Some((feature, grant)) = stored
            .promotional_entitlements
            .iter()
            .find(|(feature, grant)| **feature != grant.feature)
        {
            return Err(format!(
                "the promotional grant filed under `{feature}` is for `{}`",
                grant.feature
            ));
        }
        let StoredState {
            customer,
            subscriptions,
            trial_history,
            paid_history,
            resources,
            invoices,
            pending_checkouts,
            usage,
            promotional_entitlements,
        } = stored;
        Ok(Self {
            customer,
            subscriptions,
            trial_history,
            paid_history,
            resources,
            invoices,
            pending_checkouts,
            usage,
            promotional_entitlements,
        })
    }
}

impl CustomerState {
    /// A customer with nothing yet.
    #[must_use]
    pub fn new(customer: Customer) -> Self {
        Self {
            customer,
            subscriptions: Vec::new(),
            trial_history: BTreeSet::new(),
            paid_history: BTreeSet::new(),
            resources: BTreeSet::new(),
            invoices: Vec::new(),
            pending_checkouts: Vec::new(),
            usage: UsageLedger::new(),
            promotional_entitlements: BTreeMap::new(),
        }
    }

    /// The subscription `id`.
    #[must_use]
    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| s.id.as_str() == id)
    }

    /// The subscription `id`, to change.
    ///
    /// # Errors
    /// `SubscriptionNotFound`.
    pub fn subscription_mut(&mut self, id: &str) -> Result<&mut Subscription, Error> {
        self.subscriptions
            .iter_mut()
            .find(|s| s.id.as_str() == id)
            .ok_or_else(|| not_found(id))
    }

    /// The subscription `id`, which must not have ended, for a change of it.
    ///
    /// # Errors
    /// `CustomerIsArchived`, `SubscriptionNotFound`, `SubscriptionAlreadyCanceledOrExpired`.
    pub fn open_subscription(&self, id: &str) -> Result<&Subscription, Error> {
        self.unended(id, ErrorCode::SubscriptionAlreadyCanceledOrExpired)
    }

    /// The subscription `id`, which must not have ended, for a change other than a
    /// cancellation: an ended subscription's status allows none (FORMAT.md §5).
    ///
    /// # Errors
    /// `CustomerIsArchived`, `SubscriptionNotFound`, `InvalidSubscriptionStatus`.
    pub fn changeable_subscription(&self, id: &str) -> Result<&Subscription, Error> {
        self.unended(id, ErrorCode::InvalidSubscriptionStatus)
    }

    /// The subscription `id` of an active customer; `ended` is the error for one that has
    /// ended.
    fn unended(&self, id: &str, ended: ErrorCode) -> Result<&Subscription, Error> {
        self.ensure_active()?;
        let sub = self.subscription(id).ok_or_else(|| not_found(id))?;
        if sub.status.is_ended() {
            return Err(Error::new(
                ended,
                format!("subscription `{id}` has already ended"),
            ));
        }
        Ok(sub)
    }

    /// Fails with `CustomerIsArchived` for an archived customer: every change needs this.
    ///
    /// # Errors
    /// `CustomerIsArchived`.
    pub fn ensure_active(&self) -> Result<(), Error> {
        if self.customer.archived {
            Err(Error::new(
                ErrorCode::CustomerIsArchived,
                format!("customer `{}` is archived", self.customer.id),
            ))
        } else {
            Ok(())
        }
    }

    /// The waiting paid subscription that `trial` converts into at its end (SPEC.md §3.S,
    /// `AT_TRIAL_END`): not started, in the trial's scope, starting when the trial's pending
    /// `TrialConverted` end takes effect.
    #[must_use]
    pub fn conversion_of(&self, trial: &Subscription) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.status == SubscriptionStatus::NotStarted && converts_into(trial, s))
    }

    /// The live trial that converts into the waiting subscription `waiting` when it starts.
    #[must_use]
    pub fn converting_into(&self, waiting: &Subscription) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.status == SubscriptionStatus::InTrial && converts_into(s, waiting))
    }

    /// [`Self::converting_into`], to change.
    pub(crate) fn converting_into_mut(
        &mut self,
        waiting: &Subscription,
    ) -> Option<&mut Subscription> {
        self.subscriptions
            .iter_mut()
            .find(|s| s.status == SubscriptionStatus::InTrial && converts_into(s, waiting))
    }

    /// Whether a subscription waits for a payment method (`PAYMENT_PENDING`): one that a
    /// payment method now would collect.
    #[must_use]
    pub fn has_pending_payments(&self) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.status == SubscriptionStatus::PaymentPending)
    }

    /// Whether the customer holds a subscription of the scope `(product, resource)` that has
    /// not ended: active or in its trial (a pending cancellation included), or waiting for its
    /// start date or for a payment method. A customer holding none starts the product anew.
    #[must_use]
    pub fn holds_scope(&self, product: &ProductId, resource: Option<&ResourceId>) -> bool {
        self.subscriptions
            .iter()
            .any(|s| !s.status.is_ended() && s.in_scope(product, resource))
    }

    /// The non-trial subscription of the scope `(product, resource)` waiting for a payment
    /// method, if any: the one a request of that scope replaces.
    #[must_use]
    pub fn pending_payment_in(
        &self,
        product: &ProductId,
        resource: Option<&ResourceId>,
    ) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| {
            s.status == SubscriptionStatus::PaymentPending
                && !s.is_trial
                && s.in_scope(product, resource)
        })
    }

    /// Whether a payment for a subscription collected by `method` cannot be taken now: the
    /// provider charges it and the customer has no payment method (SPEC.md §3.P).
    #[must_use]
    pub fn lacks_payment_method(
        &self,
        settings: &crate::settings::Settings,
        method: crate::subscription::PaymentCollectionMethod,
    ) -> bool {
        settings.charges(method) && !self.customer.has_payment_method
    }

    /// Whether any invoice of the customer's charged more than zero.
    #[must_use]
    pub fn has_paid_invoice(&self) -> bool {
        self.invoices.iter().any(|i| i.total > Decimal::ZERO)
    }
}

/// Whether `trial` ends converted into `waiting`: a paid subscription of its scope that
/// starts when the trial's pending `TrialConverted` end takes effect.
fn converts_into(trial: &Subscription, waiting: &Subscription) -> bool {
    trial.is_trial
        && !waiting.is_trial
        && trial.pending_cancel_reason == Some(CancelReason::TrialConverted)
        && trial.cancellation_date == Some(waiting.start_date)
        && waiting.in_scope(&trial.product, trial.resource.as_ref())
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::SubscriptionNotFound,
        format!("subscription `{id}` does not exist"),
    )
}
