//! The engine: every operation runs as load, decide in core, call billing, save.
//!
//! - A save names the version it loaded; when someone saved in between, the engine loads
//!   again and decides again, up to [`Engine::with_max_attempts`] times, then fails with
//!   `ConcurrentModification`.
//! - An operation given an idempotency key that already went through answers the first
//!   result without deciding or billing again; the same key for a different operation is
//!   `IdempotencyKeyReused`. Only operations that went through are recorded, so a retry
//!   after a failure runs again.
//! - Every changing operation decides on the customer's state at its `now`: in the same
//!   attempt, the clock first applies every transition due by then (SPEC.md §5, in time
//!   order), and each invoice it issues is billed before the operation's own billing, as
//!   [`Engine::advance`] bills it. The provider is asked for a payment method first when
//!   the operation may charge or what the clock does by then depends on one (a start, a
//!   trial's end, a payment pending); one it reports collects every `PAYMENT_PENDING`
//!   subscription still in its pending window at `now`, exactly as
//!   [`Engine::update_customer`] giving it at `now` would, before the operation decides.
//!   Reads ([`Engine::customer_state_at`], the estimates) see the same state without
//!   saving it.
//! - Billing is called before the save. When it fails nothing is saved and its error is
//!   returned as the provider gave it.
//! - A promotion code's redemption is counted by the save itself, conditionally: when
//!   another customer's operation took the code's last redemption since the decision,
//!   nothing is saved and the answer is `PromotionCodeMaxRedemptionsReached`. The codes
//!   counted are exactly those core's decisions say their requests redeemed
//!   ([`tollgate_core::provision::Effects::redeemed_code`]), never guessed from the
//!   coupons the saved subscriptions carry. A plan
//!   change scheduled for later counts its code when it is scheduled; when it is dropped
//!   before it applies (canceled, replaced, or its subscription ended first), the save
//!   that drops it gives the redemption back. So does the save that ends a subscription
//!   before it starts or is paid (`NOT_STARTED` or `PAYMENT_PENDING`: canceled, replaced,
//!   archived, or its pending payment expired), unless a subscription replacing it took
//!   its coupon over ([`tollgate_core::coupon::scheduled_redemptions`]).
//!
//! Billing before saving means the provider may have applied a decision that is then not
//! saved. Two guarantees close that window:
//!
//! - One engine runs the writes of one customer one at a time (an async lock per customer;
//!   writes of different customers run side by side). Through a single engine a save meets
//!   a newer version only when a writer outside it saved in between, and a second request
//!   under an idempotency key waits for the first and replays its answer, billing nothing.
//! - Every application made for an attempt that is not saved (its save conflicted, met an
//!   exhausted code or failed, or a later application of the same decision failed) is
//!   voided through [`Billing::void`], latest first, before the engine decides again or
//!   answers. So every application the provider keeps is one of a saved decision.
//!
//! The limits: when a void fails, the engine stops and answers that error, and the host
//! must reconcile the application left in force. A write whose future is dropped between
//! billing and saving (a cancelled task, a process that dies) neither saves nor voids;
//! hosts run writes to completion. Checkout sessions opened for an attempt that is not
//! saved are not closed: one the customer never completes charges nothing.

use crate::billing::{Billing, CheckoutId};
use crate::error::{Code, Error};
use crate::locks::CustomerLocks;
use crate::storage::{Commit, IdempotencyKey, Recorded, Redemption, Saved, Storage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_core::cancellation::CancelRequest;
use tollgate_core::coupon::{Redemptions, held_codes, scheduled_redemptions};
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::entitlement::{GrantPromotionalEntitlementRequest, PromotionalGrant};
use tollgate_core::estimate::Estimate;
use tollgate_core::id::{CustomerId, SubscriptionId};
use tollgate_core::journey::{
    CustomerDecision, CustomerFields, ProvisionCustomerRequest, SubscriptionDecisionStrategy,
};
use tollgate_core::lifecycle::Event;
use tollgate_core::provision::{
    CheckoutCompletion, CheckoutRequest, Effects, ProvisionDecision, ProvisionRequest,
};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::Subscription;
use tollgate_core::update::{
    CancelScheduledRequest, MigrateRequest, TransferRequest, UpdateRequest,
};
use tollgate_core::usage::{ReportUsageRequest, UsageReport};
use tollgate_core::{Catalog, ErrorCode};

/// How many times an operation is decided before a version conflict becomes an error.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// An operation that changes a customer, as asked: what an idempotency key stands for.
///
/// It serializes to its stored shape (README, "Storing idempotency records"): the
/// operation's name holding its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Operation {
    /// `provisionCustomer`.
    ProvisionCustomer(ProvisionCustomerRequest),
    /// `updateCustomer`.
    UpdateCustomer {
        /// The customer.
        customer: CustomerId,
        /// The fields to set.
        fields: CustomerFields,
    },
    /// `provisionSubscription`.
    ProvisionSubscription(Box<ProvisionRequest>),
    /// `completeCheckout`.
    CompleteCheckout {
        /// The customer.
        customer: CustomerId,
        /// The pending subscription the checkout was for.
        subscription: SubscriptionId,
    },
    /// `reportUsage`.
    ReportUsage(ReportUsageRequest),
    /// `grantPromotionalEntitlement`.
    GrantPromotionalEntitlement(GrantPromotionalEntitlementRequest),
    /// `cancelSubscription`.
    CancelSubscription {
        /// The customer holding the subscription.
        customer: CustomerId,
        /// The request.
        request: CancelRequest,
    },
    /// `updateSubscription`.
    UpdateSubscription {
        /// The customer holding the subscription.
        customer: CustomerId,
        /// The request.
        request: UpdateRequest,
    },
    /// `cancelScheduledUpdates`.
    CancelScheduledUpdates {
        /// The customer holding the subscription.
        customer: CustomerId,
        /// The request.
        request: CancelScheduledRequest,
    },
    /// `migrateSubscriptionToLatest`.
    MigrateSubscription {
        /// The customer holding the subscription.
        customer: CustomerId,
        /// The request.
        request: MigrateRequest,
    },
    /// `transferSubscription`.
    TransferSubscription {
        /// The customer holding the subscription.
        customer: CustomerId,
        /// The request.
        request: TransferRequest,
    },
    /// `archiveCustomer`.
    ArchiveCustomer {
        /// The customer.
        customer: CustomerId,
    },
    /// The clock's transitions for one customer.
    Advance {
        /// The customer.
        customer: CustomerId,
        /// The instant the clock moves to.
        to: DateTime<Utc>,
    },
}

impl Operation {
    /// The customer it changes.
    #[must_use]
    pub fn customer(&self) -> &CustomerId {
        match self {
            Self::ProvisionCustomer(request) => &request.customer_id,
            Self::ProvisionSubscription(request) => &request.customer_id,
            Self::ReportUsage(request) => &request.customer_id,
            Self::GrantPromotionalEntitlement(request) => &request.customer_id,
            Self::UpdateCustomer { customer, .. }
            | Self::CompleteCheckout { customer, .. }
            | Self::CancelSubscription { customer, .. }
            | Self::UpdateSubscription { customer, .. }
            | Self::CancelScheduledUpdates { customer, .. }
            | Self::MigrateSubscription { customer, .. }
            | Self::TransferSubscription { customer, .. }
            | Self::ArchiveCustomer { customer }
            | Self::Advance { customer, .. } => customer,
        }
    }

    /// Which `PAYMENT_PENDING` subscriptions a payment method the provider reports
    /// collects before the operation decides: none for an archiving, which ends them all
    /// at once, and all but the subscription a cancellation ends (charging a period the
    /// same instant it ends would bill time nobody uses).
    fn collects(&self) -> Collecting<'_> {
        match self {
            Self::ArchiveCustomer { .. } => Collecting::Nothing,
            Self::CancelSubscription { request, .. } => {
                Collecting::AllBut(&request.subscription_id)
            }
            _ => Collecting::All,
        }
    }

    /// Whether its decision may need a payment method: the provider is asked for one first.
    fn may_charge(&self) -> bool {
        match self {
            Self::ProvisionCustomer(request) => request
                .subscription_params
                .as_ref()
                .is_some_and(|params| !params.is_null()),
            Self::ProvisionSubscription(_)
            | Self::UpdateSubscription { .. }
            | Self::MigrateSubscription { .. } => true,
            Self::UpdateCustomer { .. }
            | Self::CancelScheduledUpdates { .. }
            | Self::TransferSubscription { .. }
            | Self::ArchiveCustomer { .. }
            | Self::CompleteCheckout { .. }
            | Self::ReportUsage(_)
            | Self::GrantPromotionalEntitlement(_)
            | Self::CancelSubscription { .. }
            | Self::Advance { .. } => false,
        }
    }
}

/// The `PAYMENT_PENDING` subscriptions a newly reported payment method collects before an
/// operation decides ([`Operation::collects`]).
#[derive(Debug, Clone, Copy)]
enum Collecting<'o> {
    All,
    AllBut(&'o SubscriptionId),
    Nothing,
}

/// What an operation answered.
///
/// It serializes to its stored shape (README, "Storing idempotency records"): the kind
/// of answer holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Outcome {
    /// `provisionCustomer`.
    ProvisionCustomer(CustomerProvisioned),
    /// `updateCustomer` and `archiveCustomer`: the customer as saved.
    UpdateCustomer(Customer),
    /// `provisionSubscription`, `completeCheckout`, and the changes of an existing
    /// subscription (`updateSubscription`, `cancelScheduledUpdates`,
    /// `migrateSubscriptionToLatest`, `transferSubscription`).
    Provisioned(Provisioned),
    /// `reportUsage`.
    UsageReported(UsageReport),
    /// `grantPromotionalEntitlement`.
    Granted(PromotionalGrant),
    /// The clock's transitions, in time order.
    Advanced(Vec<Event>),
    /// `cancelSubscription`: the subscription as saved and the credit invoice, if any.
    Canceled(Canceled),
}

/// The answer of a `cancelSubscription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Canceled {
    /// The subscription as saved.
    pub subscription: Option<Subscription>,
    /// The cancellation's credit invoice, if one was issued.
    pub invoice: Option<tollgate_core::invoice::Invoice>,
}

/// The answer of a provisioning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Provisioned {
    /// Core's decision.
    pub decision: ProvisionDecision,
    /// The subscription the decision is about, as saved; `None` while payment is required.
    pub subscription: Option<Subscription>,
    /// The checkout the billing provider opened, when payment is required.
    pub checkout_id: Option<CheckoutId>,
}

/// The answer of a `provisionCustomer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct CustomerProvisioned {
    /// The customer as saved.
    pub customer: Customer,
    /// How its subscription was chosen.
    pub strategy: SubscriptionDecisionStrategy,
    /// The subscription's provisioning, if one was asked for.
    pub subscription: Option<Provisioned>,
}

type Finish = Box<dyn FnOnce(&CustomerState, Option<CheckoutId>) -> Outcome + Send>;

/// What one attempt decided: the state to save, the billing it needs and how to answer.
struct Attempt {
    state: CustomerState,
    billed: Vec<Effects>,
    checkout: Option<CheckoutRequest>,
    redeemed: Vec<String>,
    /// Codes the provider must accept that are not redeemed now: the code of a request
    /// waiting for its checkout, redeemed when the checkout completes.
    deferred: Vec<String>,
    finish: Finish,
}

impl Attempt {
    /// A decision that changes only the stored state.
    fn stored(
        state: CustomerState,
        answer: impl FnOnce(&CustomerState) -> Outcome + Send + 'static,
    ) -> Self {
        Self {
            state,
            billed: Vec::new(),
            checkout: None,
            redeemed: Vec::new(),
            deferred: Vec::new(),
            finish: Box::new(move |state, _| answer(state)),
        }
    }

    /// A provisioning decision, applied to `state` at `now`.
    fn provisioning(
        mut state: CustomerState,
        decision: ProvisionDecision,
        now: DateTime<Utc>,
        answer: impl FnOnce(&CustomerState, Provisioned) -> Outcome + Send + 'static,
    ) -> Self {
        decision.apply(&mut state, now);
        let effects = decision.effects.clone();
        let redeemed = effects.redeemed_code.iter().cloned().collect();
        // A request waiting for its checkout has its code checked now, before the customer
        // is sent to pay: the completion would refuse a code the provider does not accept.
        let deferred = effects
            .pending_checkout
            .as_ref()
            .and_then(|pending| pending.request.promotion_code.clone())
            .into_iter()
            .collect();
        Self {
            state,
            checkout: decision.checkout.clone(),
            billed: vec![effects],
            redeemed,
            deferred,
            finish: Box::new(move |state, checkout_id| {
                let subscription = decision
                    .subscription
                    .as_ref()
                    .and_then(|id| state.subscription(id.as_str()))
                    .cloned();
                answer(
                    state,
                    Provisioned {
                        decision,
                        subscription,
                        checkout_id,
                    },
                )
            }),
        }
    }
}

/// The billing of the clock's `events`: each issued invoice, charged on its own.
fn invoices_of(events: &[Event]) -> Vec<Effects> {
    events
        .iter()
        .filter_map(|event| event.invoice.clone())
        .map(|invoice| {
            let mut effects = Effects::default();
            effects.invoice = Some(invoice);
            effects
        })
        .collect()
}

/// Whether `effects` hold anything for the billing provider.
fn is_billable(effects: &Effects) -> bool {
    !effects.create.is_empty()
        || !effects.replace.is_empty()
        || !effects.end.is_empty()
        || !effects.schedule.is_empty()
        || effects.invoice.is_some()
}

fn customer_not_found(customer: &CustomerId) -> Error {
    Error::new(
        ErrorCode::CustomerNotFound,
        format!("customer `{customer}` does not exist"),
    )
}

fn existing(state: Option<CustomerState>, customer: &CustomerId) -> Result<CustomerState, Error> {
    state.ok_or_else(|| customer_not_found(customer))
}

fn key_reused(key: &IdempotencyKey) -> Error {
    Error::new(
        Code::IdempotencyKeyReused,
        format!("idempotency key `{key}` was used for a different operation"),
    )
}

/// Runs Tollgate operations through a host's storage and billing provider.
///
/// # Example
/// ```
/// use tollgate_adapters::{Engine, MemoryStorage, ScriptedBilling};
/// use tollgate_core::{Catalog, settings::Settings};
///
/// let catalog = Catalog::from_json(br#"{}"#)?;
/// let engine = Engine::new(catalog, Settings::default(), MemoryStorage::new(), ScriptedBilling::new());
/// assert!(engine.billing().calls().is_empty());
/// # Ok::<(), tollgate_core::catalog::CatalogError>(())
/// ```
#[derive(Debug)]
pub struct Engine<S, B> {
    catalog: Catalog,
    settings: Settings,
    storage: S,
    billing: B,
    max_attempts: u32,
    locks: CustomerLocks,
}

impl<S: Storage, B: Billing> Engine<S, B> {
    /// An engine deciding with `catalog` and `settings`, keeping state in `storage` and
    /// billing through `billing`.
    #[must_use]
    pub fn new(catalog: Catalog, settings: Settings, storage: S, billing: B) -> Self {
        Self {
            catalog,
            settings,
            storage,
            billing,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            locks: CustomerLocks::default(),
        }
    }

    /// The same engine deciding an operation at most `attempts` times (at least once)
    /// before a version conflict becomes `ConcurrentModification`.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The catalog.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The storage.
    #[must_use]
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The billing provider.
    #[must_use]
    pub fn billing(&self) -> &B {
        &self.billing
    }

    /// The customer's stored state.
    ///
    /// # Errors
    /// `CustomerNotFound`, or a storage failure.
    pub async fn customer_state(&self, customer: &CustomerId) -> Result<CustomerState, Error> {
        let stored = self.storage.load(customer).await?;
        existing(stored.map(|s| s.state), customer)
    }

    /// The customer's state as the clock has it at `now`: the stored state with every
    /// transition due by then applied (SPEC.md §5), as a changing operation at `now` would
    /// decide on it. Nothing is saved or billed: reads (entitlements, estimates) answer for
    /// `now` even when no operation has moved the clock since.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::lifecycle::advance`], storage
    /// failures.
    pub async fn customer_state_at(
        &self,
        customer: &CustomerId,
        now: DateTime<Utc>,
    ) -> Result<CustomerState, Error> {
        let state = self.customer_state(customer).await?;
        let (state, _) = self.bring_to(state, now, false, Collecting::All).await?;
        Ok(state)
    }

    /// `provisionCustomer`: creates (or updates) the customer and provisions its first
    /// subscription as the product's journey says, or the one asked for when the customer
    /// already holds a subscription of the request's scope. An existing customer with a payment
    /// method has its `PAYMENT_PENDING` subscriptions collected first, and their invoices
    /// billed, as [`Engine::update_customer`] collects them.
    ///
    /// # Errors
    /// Every error of [`tollgate_core::journey::provision_customer`], billing and storage
    /// failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn provision_customer(
        &self,
        request: &ProvisionCustomerRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<CustomerProvisioned, Error> {
        let operation = Operation::ProvisionCustomer(request.clone());
        let outcome = self
            .write(operation, key, now, |state, redemptions, _| {
                let decision = tollgate_core::journey::provision_customer(
                    &self.catalog,
                    state.as_ref(),
                    request,
                    redemptions,
                    now,
                    &self.settings,
                )?;
                let CustomerDecision {
                    state,
                    strategy,
                    subscription,
                    collected,
                    ..
                } = decision;
                let mut attempt = match subscription {
                    Some(decision) => {
                        Attempt::provisioning(state, decision, now, move |state, p| {
                            Outcome::ProvisionCustomer(CustomerProvisioned {
                                customer: state.customer.clone(),
                                strategy,
                                subscription: Some(p),
                            })
                        })
                    }
                    None => Attempt::stored(state, move |state| {
                        Outcome::ProvisionCustomer(CustomerProvisioned {
                            customer: state.customer.clone(),
                            strategy,
                            subscription: None,
                        })
                    }),
                };
                // Pending payments the payment method collected are billed first.
                let mut billed = invoices_of(&collected);
                billed.append(&mut attempt.billed);
                attempt.billed = billed;
                Ok(attempt)
            })
            .await?;
        match outcome {
            Outcome::ProvisionCustomer(answer) => Ok(answer),
            _ => Err(foreign_outcome()),
        }
    }

    /// `updateCustomer` at `now`: sets the given fields and, when the customer then has a
    /// payment method and a `PAYMENT_PENDING` subscription, collects the pending payments
    /// ([`tollgate_core::lifecycle::collect_pending_payments`]): each pending subscription
    /// still in its first period becomes active, and every invoice issued is billed, as
    /// [`Engine::advance`] bills. Like every operation, it decides on the state at `now`:
    /// what fell due before then was decided without the new payment method.
    ///
    /// # Errors
    /// `CustomerNotFound`, `CustomerIsArchived`, the field errors of
    /// [`tollgate_core::journey::update_customer`], every error of
    /// [`tollgate_core::lifecycle::collect_pending_payments`], billing and storage failures,
    /// `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn update_customer(
        &self,
        customer: &CustomerId,
        fields: &CustomerFields,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Customer, Error> {
        let operation = Operation::UpdateCustomer {
            customer: customer.clone(),
            fields: fields.clone(),
        };
        let outcome = self
            .write(operation, key, now, |state, _, _| {
                let mut state = existing(state, customer)?;
                state.ensure_active()?;
                state.customer = tollgate_core::journey::update_customer(&state.customer, fields)?;
                // The state is at `now` already; only a pending subscription has anything
                // for the new payment method to collect.
                let mut billed = Vec::new();
                if state.has_pending_payments() && state.customer.has_payment_method {
                    let (collected, events) = tollgate_core::lifecycle::collect_pending_payments(
                        &self.catalog,
                        &state,
                        now,
                        &self.settings,
                    )?;
                    state = collected;
                    billed = invoices_of(&events);
                }
                Ok(Attempt {
                    billed,
                    ..Attempt::stored(state, |state| {
                        Outcome::UpdateCustomer(state.customer.clone())
                    })
                })
            })
            .await?;
        match outcome {
            Outcome::UpdateCustomer(customer) => Ok(customer),
            _ => Err(foreign_outcome()),
        }
    }

    /// `provisionSubscription`.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::provision::provision`], billing
    /// and storage failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn provision_subscription(
        &self,
        request: &ProvisionRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::ProvisionSubscription(Box::new(request.clone()));
        self.change(operation, key, now, |state, redemptions| {
            tollgate_core::provision::provision(
                &self.catalog,
                state,
                request,
                redemptions,
                now,
                &self.settings,
            )
        })
        .await
    }

    /// `completeCheckout`: the customer gave a payment method; the pending subscription
    /// starts now, and any `PAYMENT_PENDING` subscription is collected first, as
    /// [`Engine::update_customer`] collects it.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::provision::complete_checkout`],
    /// billing and storage failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn complete_checkout(
        &self,
        customer: &CustomerId,
        subscription: &SubscriptionId,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::CompleteCheckout {
            customer: customer.clone(),
            subscription: subscription.clone(),
        };
        let outcome = self
            .write(operation, key, now, |state, redemptions, _| {
                let state = existing(state, customer)?;
                let completion = tollgate_core::provision::complete_checkout(
                    &self.catalog,
                    &state,
                    subscription.as_str(),
                    redemptions,
                    now,
                    &self.settings,
                )?;
                let CheckoutCompletion {
                    state,
                    decision,
                    collected,
                    ..
                } = completion;
                let mut attempt =
                    Attempt::provisioning(state, decision, now, |_, p| Outcome::Provisioned(p));
                // Pending payments the new payment method collected are billed first.
                let mut billed = invoices_of(&collected);
                billed.append(&mut attempt.billed);
                attempt.billed = billed;
                Ok(attempt)
            })
            .await?;
        provisioned(outcome)
    }

    /// `cancelSubscription`: ends a subscription now or later (SPEC.md §4).
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::cancellation::cancel_subscription`], billing and storage failures,
    /// `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn cancel_subscription(
        &self,
        customer: &CustomerId,
        request: &CancelRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Canceled, Error> {
        let operation = Operation::CancelSubscription {
            customer: customer.clone(),
            request: request.clone(),
        };
        let outcome = self
            .write(operation, key, now, |state, _, _| {
                let state = existing(state, customer)?;
                let decision = tollgate_core::cancellation::cancel_subscription(
                    &self.catalog,
                    &state,
                    request,
                    now,
                    &self.settings,
                )?;
                let subscription = decision.subscription.clone();
                let invoice = decision.invoice.clone();
                Ok(Attempt {
                    billed: vec![decision.effects],
                    ..Attempt::stored(decision.state, move |state| {
                        Outcome::Canceled(Canceled {
                            subscription: state.subscription(subscription.as_str()).cloned(),
                            invoice,
                        })
                    })
                })
            })
            .await?;
        match outcome {
            Outcome::Canceled(canceled) => Ok(canceled),
            _ => Err(foreign_outcome()),
        }
    }

    /// Runs a core provisioning decision for the operation's customer: a new subscription,
    /// or a change of an existing one (an update, a migration, a transfer, the removal of
    /// scheduled updates).
    async fn change<F>(
        &self,
        operation: Operation,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<Provisioned, Error>
    where
        F: Fn(&CustomerState, &Redemptions) -> Result<ProvisionDecision, tollgate_core::Error>
            + Send
            + Sync,
    {
        let customer = operation.customer().clone();
        let outcome = self
            .write(operation, key, now, |state, redemptions, _| {
                let state = existing(state, &customer)?;
                let decision = decide(&state, redemptions)?;
                Ok(Attempt::provisioning(state, decision, now, |_, p| {
                    Outcome::Provisioned(p)
                }))
            })
            .await?;
        provisioned(outcome)
    }

    /// `updateSubscription`: changes a subscription in place (SPEC.md §5).
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::update::update_subscription`],
    /// billing and storage failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn update_subscription(
        &self,
        customer: &CustomerId,
        request: &UpdateRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::UpdateSubscription {
            customer: customer.clone(),
            request: request.clone(),
        };
        self.change(operation, key, now, |state, redemptions| {
            tollgate_core::update::update_subscription(
                &self.catalog,
                state,
                request,
                redemptions,
                now,
                &self.settings,
            )
        })
        .await
    }

    /// `cancelScheduledUpdates`: drops a subscription's scheduled changes.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::update::cancel_scheduled_updates`], billing and storage failures,
    /// `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn cancel_scheduled_updates(
        &self,
        customer: &CustomerId,
        request: &CancelScheduledRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::CancelScheduledUpdates {
            customer: customer.clone(),
            request: request.clone(),
        };
        self.change(operation, key, now, |state, _| {
            tollgate_core::update::cancel_scheduled_updates(state, request)
        })
        .await
    }

    /// `migrateSubscriptionToLatest`: moves a subscription to its plan's latest version.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::update::migrate_subscription_to_latest`], billing and storage
    /// failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn migrate_subscription(
        &self,
        customer: &CustomerId,
        request: &MigrateRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::MigrateSubscription {
            customer: customer.clone(),
            request: request.clone(),
        };
        self.change(operation, key, now, |state, redemptions| {
            tollgate_core::update::migrate_subscription_to_latest(
                &self.catalog,
                state,
                request,
                redemptions,
                now,
                &self.settings,
            )
        })
        .await
    }

    /// `transferSubscription`: moves a subscription to another resource.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::update::transfer_subscription`],
    /// billing and storage failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn transfer_subscription(
        &self,
        customer: &CustomerId,
        request: &TransferRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Provisioned, Error> {
        let operation = Operation::TransferSubscription {
            customer: customer.clone(),
            request: request.clone(),
        };
        self.change(operation, key, now, |state, _| {
            tollgate_core::update::transfer_subscription(&self.catalog, state, request, now)
        })
        .await
    }

    /// `archiveCustomer`: cancels every subscription now, settling what each owes or is
    /// owed ([`tollgate_core::cancellation::archive_customer`]), and archives the customer.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::cancellation::archive_customer`], billing and storage failures,
    /// `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn archive_customer(
        &self,
        customer: &CustomerId,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Customer, Error> {
        let operation = Operation::ArchiveCustomer {
            customer: customer.clone(),
        };
        let outcome = self
            .write(operation, key, now, |state, _, _| {
                let state = existing(state, customer)?;
                let decision = tollgate_core::cancellation::archive_customer(
                    &self.catalog,
                    &state,
                    now,
                    &self.settings,
                )?;
                // The ends, then each invoice that settled them.
                let mut billed = vec![decision.effects];
                billed.extend(invoices_of(&decision.events));
                Ok(Attempt {
                    billed,
                    ..Attempt::stored(decision.state, |state| {
                        Outcome::UpdateCustomer(state.customer.clone())
                    })
                })
            })
            .await?;
        match outcome {
            Outcome::UpdateCustomer(customer) => Ok(customer),
            _ => Err(foreign_outcome()),
        }
    }

    /// `reportUsage`: records usage of a metered feature.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::usage::report_usage`], storage
    /// failures, `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn report_usage(
        &self,
        request: &ReportUsageRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<UsageReport, Error> {
        let operation = Operation::ReportUsage(request.clone());
        let outcome = self
            .write(operation, key, now, |state, _, _| {
                let mut state = existing(state, &request.customer_id)?;
                let report =
                    tollgate_core::usage::report_usage(&self.catalog, &mut state, request, now)?;
                Ok(Attempt::stored(state, |_| Outcome::UsageReported(report)))
            })
            .await?;
        match outcome {
            Outcome::UsageReported(report) => Ok(report),
            _ => Err(foreign_outcome()),
        }
    }

    /// `grantPromotionalEntitlement`: grants a feature to the customer for a while,
    /// replacing an earlier grant of the feature.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::entitlement::grant_promotional_entitlement`], storage failures,
    /// `ConcurrentModification`, `IdempotencyKeyReused`.
    pub async fn grant_promotional_entitlement(
        &self,
        request: &GrantPromotionalEntitlementRequest,
        now: DateTime<Utc>,
        key: Option<&IdempotencyKey>,
    ) -> Result<PromotionalGrant, Error> {
        let operation = Operation::GrantPromotionalEntitlement(request.clone());
        let outcome = self
            .write(operation, key, now, |state, _, _| {
                let mut state = existing(state, &request.customer_id)?;
                let grant = tollgate_core::entitlement::grant_promotional_entitlement(
                    &self.catalog,
                    &mut state,
                    request,
                    now,
                )?;
                Ok(Attempt::stored(state, |_| Outcome::Granted(grant)))
            })
            .await?;
        match outcome {
            Outcome::Granted(grant) => Ok(grant),
            _ => Err(foreign_outcome()),
        }
    }

    /// `estimateSubscription`: what provisioning `request` would charge at `now`, decided on
    /// the state at `now` ([`Engine::customer_state_at`]), without applying, saving or
    /// billing anything.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::estimate::estimate_subscription`]
    /// and of [`tollgate_core::lifecycle::advance`], storage failures.
    pub async fn estimate_subscription(
        &self,
        request: &ProvisionRequest,
        now: DateTime<Utc>,
    ) -> Result<Estimate, Error> {
        let state = self.customer_state_at(&request.customer_id, now).await?;
        let redemptions = self.storage.redemptions().await?;
        Ok(tollgate_core::estimate::estimate_subscription(
            &self.catalog,
            &state,
            request,
            &redemptions,
            now,
            &self.settings,
        )?)
    }

    /// `estimateSubscriptionUpdate`: what `request` would charge at `now`, decided on the
    /// state at `now` ([`Engine::customer_state_at`]), without applying, saving or billing
    /// anything.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of
    /// [`tollgate_core::estimate::estimate_subscription_update`] and of
    /// [`tollgate_core::lifecycle::advance`], storage failures.
    pub async fn estimate_subscription_update(
        &self,
        customer: &CustomerId,
        request: &UpdateRequest,
        now: DateTime<Utc>,
    ) -> Result<Estimate, Error> {
        let state = self.customer_state_at(customer, now).await?;
        let redemptions = self.storage.redemptions().await?;
        Ok(tollgate_core::estimate::estimate_subscription_update(
            &self.catalog,
            &state,
            request,
            &redemptions,
            now,
            &self.settings,
        )?)
    }

    /// Moves the customer's clock to `to`: every transition due at or before it applies
    /// (SPEC.md §5), each invoice they issue is billed, and the state is saved if anything
    /// happened. Answers the transitions in time order. When a start, a trial's end or a
    /// scheduled plan change due by then, or a `PAYMENT_PENDING` subscription still waiting
    /// at `to`, depends on a payment method the customer has none of on record, the
    /// provider is asked for one first
    /// ([`tollgate_core::lifecycle::depends_on_payment_method`]); one it reports collects
    /// the pending payments at `to`, as [`Engine::update_customer`] giving it then would.
    ///
    /// # Errors
    /// `CustomerNotFound`, every error of [`tollgate_core::lifecycle::advance`], billing and
    /// storage failures, `ConcurrentModification`.
    pub async fn advance(
        &self,
        customer: &CustomerId,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, Error> {
        let mut state = self.customer_state(customer).await?;
        let (_, due) =
            tollgate_core::lifecycle::advance(&self.catalog, &state, to, &self.settings)?;
        // With nothing due, only a payment method the provider now has for a pending
        // payment moves anything; without one, nothing is saved.
        if due.is_empty()
            && !(tollgate_core::lifecycle::depends_on_payment_method(&state, to)
                && self.refresh_payment_method(&mut state).await?)
        {
            return Ok(due);
        }
        let operation = Operation::Advance {
            customer: customer.clone(),
            to,
        };
        let outcome = self
            .write(operation, None, to, |state, _, clocked| {
                let state = existing(state, customer)?;
                let events = clocked.to_vec();
                Ok(Attempt::stored(state, move |_| Outcome::Advanced(events)))
            })
            .await?;
        match outcome {
            Outcome::Advanced(events) => Ok(events),
            _ => Err(foreign_outcome()),
        }
    }

    /// Runs one changing operation under the customer's lock: replay, or load, decide,
    /// bill and save, voiding the billing and deciding again after a version conflict.
    async fn write<F>(
        &self,
        operation: Operation,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<Outcome, Error>
    where
        F: Fn(Option<CustomerState>, &Redemptions, &[Event]) -> Result<Attempt, Error>
            + Send
            + Sync,
    {
        let customer = operation.customer().clone();
        let _held = self.locks.lock(&customer).await;
        // Whether the provider declined a charge the clock's transitions made: the attempt
        // after it decides them without a payment method.
        let mut declined = false;
        for _ in 0..self.max_attempts {
            if let Some(key) = key {
                if let Some(recorded) = self.storage.recorded(key).await? {
                    return if recorded.operation == operation {
                        Ok(recorded.outcome)
                    } else {
                        Err(key_reused(key))
                    };
                }
            }
            let loaded = self.storage.load(&customer).await?;
            let expected = loaded.as_ref().map(|s| s.version);
            let held = loaded
                .as_ref()
                .map(|s| held_codes(&s.state))
                .unwrap_or_default();
            let (state, clocked) = match loaded {
                Some(stored) if declined => {
                    let mut state = stored.state;
                    state.customer.has_payment_method = false;
                    let (state, events) = tollgate_core::lifecycle::advance(
                        &self.catalog,
                        &state,
                        now,
                        &self.settings,
                    )?;
                    (Some(state), events)
                }
                Some(stored) => {
                    let (state, events) = self
                        .bring_to(
                            stored.state,
                            now,
                            operation.may_charge(),
                            operation.collects(),
                        )
                        .await?;
                    (Some(state), events)
                }
                None => (None, Vec::new()),
            };
            let redemptions = self.storage.redemptions().await?;
            let Attempt {
                state,
                billed: decided,
                checkout,
                mut redeemed,
                deferred,
                finish,
            } = decide(state, &redemptions, &clocked)?;
            // What the clock issued on the way to `now` is billed first, as `advance` bills it.
            let mut billed = invoices_of(&clocked);
            let clock_billed = billed.iter().filter(|e| is_billable(e)).count();
            billed.extend(decided);
            let scheduled = scheduled_redemptions(&held, &state);
            redeemed.extend(scheduled.redeemed);
            let mut applied = Vec::new();
            let checkout_id = match self
                .bill(
                    &customer,
                    &billed,
                    checkout.as_ref(),
                    &redeemed,
                    &deferred,
                    &mut applied,
                )
                .await
            {
                Ok(checkout_id) => checkout_id,
                Err(error) => {
                    self.void(&customer, &applied).await?;
                    // A card declined for a charge of the clock: payment is not possible,
                    // so the clock decides again without a payment method (a trial
                    // expires, a start waits for payment), and so does the operation.
                    if !declined
                        && applied.len() < clock_billed
                        && error.code() == Code::Decision(ErrorCode::PaymentMethodNotFound)
                    {
                        declined = true;
                        continue;
                    }
                    return Err(error);
                }
            };
            let outcome = finish(&state, checkout_id);
            let commit = Commit {
                expected,
                state,
                idempotency: key.map(|key| {
                    (
                        key.clone(),
                        Recorded {
                            operation: operation.clone(),
                            outcome: outcome.clone(),
                        },
                    )
                }),
                redeemed: redeemed.iter().map(|code| self.redemption(code)).collect(),
                released: scheduled.released,
            };
            let saved = self.storage.save(commit).await;
            if !matches!(saved, Ok(Saved::Committed(_))) {
                self.void(&customer, &applied).await?;
            }
            match saved? {
                Saved::Committed(_) => return Ok(outcome),
                Saved::Conflict => {}
                Saved::Exhausted(code) => return Err(exhausted(&code)),
            }
        }
        Err(Error::new(
            Code::ConcurrentModification,
            format!(
                "customer `{customer}` changed during each of {} attempts",
                self.max_attempts
            ),
        ))
    }

    /// `state` as the clock has it at `now` (SPEC.md §5: every transition due by then
    /// applies, in time order), with the transitions that brought it there. An operation
    /// decides on this state, never on the one stored, so that it neither decides on a
    /// period that has ended nor leaves the transitions before it to be applied after it.
    /// When the operation may charge, or what the clock does by `now` depends on a payment
    /// method (a start, a trial's end, a scheduled plan change, a payment pending), the
    /// provider is asked for one first. One it reports then also collects every
    /// `PAYMENT_PENDING` subscription still in its pending window at `now`, as
    /// `updateCustomer` giving it at `now` would
    /// ([`tollgate_core::lifecycle::collect_pending_payments`]), but those the operation
    /// ends ([`Operation::collects`]).
    async fn bring_to(
        &self,
        mut state: CustomerState,
        now: DateTime<Utc>,
        may_charge: bool,
        collecting: Collecting<'_>,
    ) -> Result<(CustomerState, Vec<Event>), Error> {
        let learned = (may_charge
            || tollgate_core::lifecycle::depends_on_payment_method(&state, now))
            && self.refresh_payment_method(&mut state).await?;
        let (catalog, settings) = (&self.catalog, &self.settings);
        let collect = |except| {
            tollgate_core::lifecycle::collect_pending_payments_except(
                catalog, &state, now, settings, except,
            )
        };
        Ok(match (learned, collecting) {
            (true, Collecting::All) => collect(None)?,
            (true, Collecting::AllBut(id)) => collect(Some(id))?,
            (false, _) | (true, Collecting::Nothing) => {
                tollgate_core::lifecycle::advance(catalog, &state, now, settings)?
            }
        })
    }

    /// Asks the provider whether a customer without a payment method has one by now;
    /// whether it reported one the state did not have.
    async fn refresh_payment_method(&self, state: &mut CustomerState) -> Result<bool, Error> {
        if self.settings.billing_integration && !state.customer.has_payment_method {
            state.customer.has_payment_method =
                self.billing.has_payment_method(&state.customer.id).await?;
            return Ok(state.customer.has_payment_method);
        }
        Ok(false)
    }

    /// The billing of one decision: the codes redeemed now or at a checkout's completion
    /// are validated, the checkout opened and the effects applied, in that order. Each
    /// application that went through is added to `applied`, also when a later one fails,
    /// so that the caller can void them.
    async fn bill<'e>(
        &self,
        customer: &CustomerId,
        billed: &'e [Effects],
        checkout: Option<&CheckoutRequest>,
        redeemed: &[String],
        deferred: &[String],
        applied: &mut Vec<&'e Effects>,
    ) -> Result<Option<CheckoutId>, Error> {
        if !self.settings.billing_integration {
            return Ok(None);
        }
        for code in redeemed.iter().chain(deferred) {
            if !self.billing.validate_promotion_code(code).await? {
                return Err(Error::new(
                    ErrorCode::PromotionCodeNotFound,
                    format!("the billing provider does not accept promotion code `{code}`"),
                ));
            }
        }
        let checkout_id = match checkout {
            Some(checkout) => Some(self.billing.create_checkout(customer, checkout).await?),
            None => None,
        };
        for effects in billed.iter().filter(|e| is_billable(e)) {
            self.billing.apply(customer, effects).await?;
            applied.push(effects);
        }
        Ok(checkout_id)
    }

    /// Voids `applied`, latest first. Every void is tried; the first failure is answered,
    /// saying that an application is left in force.
    async fn void(&self, customer: &CustomerId, applied: &[&Effects]) -> Result<(), Error> {
        let mut first_failure = None;
        for effects in applied.iter().rev() {
            if let Err(error) = self.billing.void(customer, effects).await {
                first_failure.get_or_insert(error);
            }
        }
        match first_failure {
            None => Ok(()),
            Some(error) => Err(Error::new(
                error.code(),
                format!(
                    "{}; a billing application for customer `{customer}` whose decision was \
                     not saved is still in force",
                    error.message()
                ),
            )),
        }
    }

    /// One more redemption of `code`, with the limit the storage enforces when it counts it.
    fn redemption(&self, code: &str) -> Redemption {
        Redemption {
            code: code.to_owned(),
            max: self
                .catalog
                .promotion_code(code)
                .and_then(|(_, promotion)| promotion.max_redemptions),
        }
    }
}

/// The answer when the save found `code` redeemed its maximum number of times: the same
/// error core gives a decision that reads the count the save saw.
fn exhausted(code: &str) -> Error {
    Error::new(
        ErrorCode::PromotionCodeMaxRedemptionsReached,
        format!("promotion code `{code}` has been redeemed its maximum number of times"),
    )
}

fn provisioned(outcome: Outcome) -> Result<Provisioned, Error> {
    match outcome {
        Outcome::Provisioned(answer) => Ok(answer),
        _ => Err(foreign_outcome()),
    }
}

/// The error for an outcome of another kind than the operation's: only a storage that
/// answered a record it was never given can cause one.
fn foreign_outcome() -> Error {
    Error::storage("the stored outcome does not answer this operation")
}
