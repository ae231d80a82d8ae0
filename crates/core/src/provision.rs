//! `provisionSubscription` as a pure decision (SPEC.md §3).
//!
//! [`provision`] runs the stages in SPEC order — validate, trial, start and replacement,
//! payment, effects — and returns a [`ProvisionDecision`]: a value listing the
//! subscriptions to create, the subscriptions to end (when and why), the scheduled changes
//! to store or drop, the invoice to issue now, the checkout to request, the trial decision,
//! the change type and an explanation naming the rule that fired at each stage. Nothing is
//! changed until the host applies the decision with [`ProvisionDecision::apply`]; a failure
//! at any stage is an [`Error`] with a stable code and changes nothing.

use crate::catalog::{
    Catalog, Plan, PriceModel, PricingType, Product, ScheduleStrategy, TrialConversion,
};
use crate::change::ChangeType;
use crate::coupon::Redemptions;
use crate::customer::{CustomerState, PendingCheckout, PricedIn};
use crate::error::{Error, ErrorCode};
use crate::explain::Step;
use crate::id::{
    AddonId, CountryCode, CouponId, FeatureId, PlanId, ProductId, ResourceId, SubscriptionId,
};
use crate::invoice::{self, Invoice, InvoiceLine, InvoiceReason, LineKind};
use crate::lifecycle::Event;
use crate::money::{self, Currency, RoundingMode};
use crate::period::{BillingPeriod, Period, PeriodSeries, first_period};
use crate::pricing::{
    AddonQuantity, Component, ComponentSource, Configuration, RecurringAmount, plan_amount,
};
use crate::proration::{ProrationEvent, share};
use crate::settings::Settings;
use crate::subscription::{
    AppliedCoupon, CancelReason, ChargedComponent, HeldComponent, PaidShare,
    PaymentCollectionMethod, ScheduledUpdate, ScheduledUpdateType, Subscription,
    SubscriptionStatus,
};
use crate::trial::{self, TrialOutcome, TrialOverride};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

/// A feature quantity in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FeatureQuantity {
    /// The per-unit priced feature.
    pub feature_id: FeatureId,
    /// How many units.
    pub quantity: i64,
}

/// An add-on in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddonRequest {
    /// The add-on.
    pub addon_id: AddonId,
    /// How many (default 1).
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

/// Where the customer goes to give a payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckoutOptions {
    /// Where the checkout returns after success.
    pub success_url: String,
    /// Where it returns when abandoned.
    pub cancel_url: String,
}

/// Whether a change keeps the billing period or starts a new one now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingCycleAnchor {
    /// Keep the current period.
    #[default]
    Unchanged,
    /// Start a new period now.
    Now,
}

/// What happens to the prorated difference of a mid-period change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProrationBehavior {
    /// Invoiced now.
    #[default]
    InvoiceImmediately,
    /// Kept as pending lines on the next period's invoice.
    CreateProrations,
    /// Not prorated: the new price applies from the next period.
    None,
}

/// A `provisionSubscription` request (FORMAT.md §2, §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisionRequest {
    /// The customer.
    pub customer_id: crate::id::CustomerId,
    /// The plan.
    pub plan_id: PlanId,
    /// The plan version (default: the latest).
    pub plan_version: Option<u32>,
    /// The billing period; required for a priced plan.
    pub billing_period: Option<BillingPeriod>,
    /// The resource, for a multi-subscription product.
    pub resource_id: Option<ResourceId>,
    /// The quantity of the plan's only per-unit price.
    pub unit_quantity: Option<i64>,
    /// Quantities of per-unit priced features.
    #[serde(default)]
    pub billable_features: Vec<FeatureQuantity>,
    /// Add-ons, in order.
    #[serde(default)]
    pub addons: Vec<AddonRequest>,
    /// A promotion code to redeem.
    pub promotion_code: Option<String>,
    /// A coupon to apply directly.
    pub coupon_id: Option<CouponId>,
    /// The billing country (wins over the customer's).
    pub billing_country_code: Option<String>,
    /// When the subscription starts (default: now).
    pub start_date: Option<DateTime<Utc>>,
    /// Skip the plan's default trial.
    #[serde(default)]
    pub skip_trial: bool,
    /// Decide the trial, bypassing eligibility.
    pub trial_override: Option<TrialOverride>,
    /// When a downgrade applies (default: the product's downgrade strategy).
    pub schedule_strategy: Option<ScheduleStrategy>,
    /// Whether an upgrade keeps the billing period.
    pub billing_cycle_anchor: Option<BillingCycleAnchor>,
    /// What happens to the prorated difference.
    pub proration_behavior: Option<ProrationBehavior>,
    /// How invoices are collected.
    pub payment_collection_method: Option<PaymentCollectionMethod>,
    /// Where to send a customer without a payment method.
    pub checkout_options: Option<CheckoutOptions>,
    /// The new subscription's id (default: generated).
    pub subscription_id: Option<SubscriptionId>,
    /// Free-form data kept on the subscription (a key written twice is refused).
    #[serde(default, deserialize_with = "crate::stored::unique_map")]
    pub metadata: BTreeMap<String, String>,
    /// Tax percentage for this subscription's invoices (overrides the customer's).
    #[serde(default, deserialize_with = "money::serde_amount::option")]
    pub tax_percentage: Option<Decimal>,
}

/// Whether provisioning went through or waits for a payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProvisionStatus {
    /// Decided; the effects apply.
    Success,
    /// The customer must give a payment method first; nothing else changes.
    PaymentRequired,
}

/// A checkout the billing provider should open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The subscription it is for.
    pub subscription_id: SubscriptionId,
    /// Where it returns after success.
    pub success_url: String,
    /// Where it returns when abandoned.
    pub cancel_url: String,
}

/// A subscription that ends, now or later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The subscription.
    pub subscription: SubscriptionId,
    /// When it ends; after the decision's instant, the end is pending.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: CancelReason,
}

/// A change to a subscription's scheduled updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleChange {
    /// The subscription.
    pub subscription: SubscriptionId,
    /// The update to store (replacing any), or `None` to drop them.
    pub update: Option<ScheduledUpdate>,
}

/// The money of a decision, computed whether or not an invoice is written (estimates use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The subscription billed.
    pub subscription: SubscriptionId,
    /// Why.
    pub reason: InvoiceReason,
    /// The currency.
    pub currency: Currency,
    /// The lines, in FORMAT.md §6 order.
    pub lines: Vec<InvoiceLine>,
    /// The span billed: the first period, or `[change, periodEnd)`.
    pub period: Period,
    /// The instant of a prorated change.
    pub proration_date: Option<DateTime<Utc>>,
    /// The positions in the subscription's ledger of the entries this charge pays for (the
    /// ledger follows the components' invoice order, so entries kept from earlier charges
    /// may sit between them).
    pub paid_entries: Vec<usize>,
    /// Whether its proration lines wait on the subscription for its next invoice
    /// (`CREATE_PRORATIONS`); the other lines are billed now.
    pub prorations_wait: bool,
    /// Whether the subscription's own waiting prorations stay waiting (a change in place
    /// does not bill them): a credit for one of its waiting debits then waits with it, so
    /// that the two are always billed on one invoice.
    pub pending_stays: bool,
    /// How many of the last `lines` are prorations of earlier changes that were waiting on
    /// the replaced subscription: billed with this charge, they are no part of its own
    /// proration.
    pub earlier_prorations: usize,
    /// Whether the charge starts a new billing period and bills the subscription's waiting
    /// prorations now: those earlier lines and the credits for its waiting debits never
    /// wait again, so a debit and its credit go on this one invoice.
    pub settles_waiting: bool,
    /// The subscription that carries on entries of the charged one's ledger (a plan change
    /// that keeps the period keeps unchanged components, and with `prorationBehavior: NONE`
    /// every old charge, until the period ends): the entries it kept take the record this
    /// charge leaves them at, so that a waiting debit billed here is recorded as paid
    /// there, at what it was paid.
    pub ledger_to: Option<SubscriptionId>,
}

impl Charge {
    /// Whether `line` waits on the subscription for its next invoice instead of being
    /// billed now: a proration of a charge whose prorations wait, or a credit for a debit
    /// that stays waiting; never a waiting proration (or a credit for a waiting debit) that
    /// a charge starting a new period settles.
    #[must_use]
    pub fn waits(&self, index: usize, line: &InvoiceLine) -> bool {
        if !line.kind.is_proration() {
            return false;
        }
        let earlier = index >= self.lines.len().saturating_sub(self.earlier_prorations);
        if self.settles_waiting && (earlier || line.credits_waiting_debit) {
            return false;
        }
        self.prorations_wait || (self.pending_stays && line.credits_waiting_debit)
    }

    /// Settles what this charge bills now (its lines but those that wait) on `sub`'s
    /// invoice, consuming credit, and records on `sub` what its coupon did. Provisioning and
    /// its estimate both settle through here.
    ///
    /// # Errors
    /// Those of [`invoice::settle`] and [`record_discount`].
    pub(crate) fn settle_now(
        &self,
        catalog: &Catalog,
        state: &CustomerState,
        sub: &mut Subscription,
        rounding: RoundingMode,
    ) -> Result<invoice::Settlement, Error> {
        let waiting = |(i, l): &(usize, &InvoiceLine)| self.waits(*i, l);
        let lines: Cow<'_, [InvoiceLine]> = if self.lines.iter().enumerate().any(|e| waiting(&e)) {
            self.lines
                .iter()
                .enumerate()
                .filter(|e| !waiting(e))
                .map(|(_, l)| l.clone())
                .collect()
        } else {
            Cow::Borrowed(&self.lines)
        };
        let settlement = invoice::settle(
            catalog,
            state,
            sub,
            &lines,
            invoice::Billing {
                currency: self.currency,
                apply_credit: true,
                rounding,
                refuse_cut_amounts: true,
            },
        )?;
        // Waiting debits that came with the charge are billed now, unless they wait again.
        let bills_waiting = self.settles_waiting || (!self.prorations_wait && !self.pending_stays);
        record_discount(
            sub,
            &settlement,
            |i| self.paid_entries.contains(&i),
            bills_waiting,
        )?;
        Ok(settlement)
    }
}

/// Everything a decision changes.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Effects {
    /// Subscriptions changed in place: each replaces the stored subscription of its id.
    pub replace: Vec<Subscription>,
    /// Subscriptions to add, in order.
    pub create: Vec<Subscription>,
    /// Subscriptions that end, now or later.
    pub end: Vec<Ending>,
    /// Scheduled updates to store or drop.
    pub schedule: Vec<ScheduleChange>,
    /// The invoice to issue now.
    pub invoice: Option<Invoice>,
    /// A checkout to remember until the host confirms it.
    pub pending_checkout: Option<Box<PendingCheckout>>,
    /// A product the customer now has had a trial of.
    pub trial_product: Option<ProductId>,
    /// A product the customer now has paid for.
    pub paid_product: Option<ProductId>,
    /// A resource the customer now has a subscription for.
    pub resource: Option<ResourceId>,
    /// The promotion code the request redeemed now (the host counts redemptions): the code
    /// it brought, applied to a subscription it creates or changes now. Nothing else is a
    /// redemption (FORMAT.md §6): a request without a code, an estimate, a request waiting
    /// for its checkout (the completion redeems the code). A plan change scheduled for later
    /// holds its code on the scheduled change instead: it counts from scheduling and is
    /// given back if the change is dropped before it applies, which
    /// [`crate::coupon::scheduled_redemptions`] finds from the states before and after.
    pub redeemed_code: Option<String>,
    /// Recorded usage the change resets (scope, feature): the product's usage-reset rule.
    pub usage_reset: Vec<(Option<ResourceId>, FeatureId)>,
    /// Usage the decision's invoice bills (scope, feature, span): it leaves the ledger.
    pub usage_billed: Vec<(Option<ResourceId>, FeatureId, Period)>,
    /// Usage not billed yet that moves with a transferred subscription.
    pub usage_moved: Vec<crate::usage::UnbilledMove>,
    /// Fluctuating meters whose billing period a change keeping it carries on: the
    /// period's next close bills the level held from then on, for the rest of the period.
    pub usage_segments: Vec<crate::usage::UsageSegment>,
}

/// The decision of a `provisionSubscription` request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProvisionDecision {
    /// Whether it went through.
    pub status: ProvisionStatus,
    /// The subscription the result is about: the new one, or the current one carrying a
    /// scheduled change. `None` while payment is required.
    pub subscription: Option<SubscriptionId>,
    /// Whether a change was stored for later on an existing subscription.
    pub is_scheduled: bool,
    /// What the request does to the scope's live non-trial subscription.
    pub change_type: ChangeType,
    /// The trial decision.
    pub trial: TrialOutcome,
    /// The checkout to open, when payment is required.
    pub checkout: Option<CheckoutRequest>,
    /// The money of the decision.
    pub charge: Option<Charge>,
    /// What changes.
    pub effects: Effects,
    /// The rule that fired at each stage.
    pub explanation: Vec<Step>,
}

impl ProvisionDecision {
    /// Records that `subscription` ends at `at` for `reason`.
    fn end(&mut self, subscription: &SubscriptionId, at: DateTime<Utc>, reason: CancelReason) {
        // Most decisions end one subscription at most.
        self.effects.end.reserve_exact(1);
        self.effects.end.push(Ending {
            subscription: subscription.clone(),
            at,
            reason,
        });
    }

    /// Creates `sub` and makes it the subscription the result is about.
    fn create(&mut self, sub: Subscription) {
        self.subscription = Some(sub.id.clone());
        // A decision creates one subscription.
        self.effects.create.reserve_exact(1);
        self.effects.create.push(sub);
    }

    /// Applies the decision's effects to `state` at `now`.
    pub fn apply(&self, state: &mut CustomerState, now: DateTime<Utc>) {
        self.effects.apply(state, now);
    }
}

impl Effects {
    /// The subscription `id` as the decision leaves it, when it creates or changes it.
    #[must_use]
    pub fn subscription(&self, id: &SubscriptionId) -> Option<&Subscription> {
        self.create
            .iter()
            .chain(&self.replace)
            .find(|s| &s.id == id)
    }

    /// Whether the decision ends the subscription `id`.
    #[must_use]
    pub fn ends(&self, id: &SubscriptionId) -> bool {
        self.end.iter().any(|e| &e.subscription == id)
    }

    fn subscription_mut(&mut self, id: &SubscriptionId) -> Option<&mut Subscription> {
        self.create
            .iter_mut()
            .chain(self.replace.iter_mut())
            .find(|s| &s.id == id)
    }

    /// Applies the effects to `state` at `now`: subscriptions changed in place, ends and
    /// schedules on existing subscriptions, new subscriptions, the invoice and its credit,
    /// the histories.
    pub fn apply(&self, state: &mut CustomerState, now: DateTime<Utc>) {
        for updated in &self.replace {
            if let Ok(sub) = state.subscription_mut(updated.id.as_str()) {
                *sub = updated.clone();
            }
        }
        for ending in &self.end {
            if let Ok(sub) = state.subscription_mut(ending.subscription.as_str()) {
                if ending.at <= now {
                    sub.end(ending.at, ending.reason);
                } else {
                    sub.cancellation_date = Some(ending.at);
                    sub.pending_cancel_reason = Some(ending.reason);
                }
            }
        }
        for change in &self.schedule {
            if let Ok(sub) = state.subscription_mut(change.subscription.as_str()) {
                sub.scheduled_updates.clear();
                sub.scheduled_updates.extend(change.update.clone());
            }
        }
        state.subscriptions.extend(self.create.iter().cloned());
        if let Some(invoice) = &self.invoice {
            record_invoice(state, invoice.clone());
        }
        if let Some(checkout) = &self.pending_checkout {
            state
                .pending_checkouts
                .retain(|p| p.subscription_id != checkout.subscription_id);
            state
                .pending_checkouts
                .push(PendingCheckout::clone(checkout));
        }
        for (resource, feature, span) in &self.usage_billed {
            state.usage.take_unbilled(resource.as_ref(), feature, *span);
        }
        for segment in &self.usage_segments {
            state.usage.note_segment(segment);
        }
        for moved in &self.usage_moved {
            state.usage.move_unbilled(moved, now);
        }
        for (resource, feature) in &self.usage_reset {
            state
                .usage
                .remove(resource.as_ref().map(ResourceId::as_str), feature.as_str());
        }
        state.trial_history.extend(self.trial_product.clone());
        state.paid_history.extend(self.paid_product.clone());
        state.resources.extend(self.resource.clone());
    }
}

/// Adds an invoice to the customer's and moves its credit in and out of the balance.
pub fn record_invoice(state: &mut CustomerState, invoice: Invoice) {
    let balance = state
        .customer
        .credit_balance
        .get(&invoice.currency)
        .copied()
        .unwrap_or(Decimal::ZERO);
    let balance = money::sub(balance, invoice.credit_applied)
        .and_then(|b| money::add(b, invoice.credit_issued))
        .unwrap_or(balance);
    if balance > Decimal::ZERO {
        state
            .customer
            .credit_balance
            .insert(invoice.currency, balance);
    } else {
        state.customer.credit_balance.remove(&invoice.currency);
    }
    state.invoices.push(invoice);
}

/// The request after validation: the plan version, its product and the configuration.
struct Validated<'c> {
    plan: &'c Plan,
    product: &'c Product,
    config: Configuration,
    quote: RecurringAmount,
    /// The coupon the request applies, and the promotion code that redeems it.
    coupon: Option<(CouponId, Option<String>)>,
}

/// Decides a `provisionSubscription` request for the customer in `state` at `now`.
///
/// # Errors
/// A typed error from the first stage that fails (FORMAT.md §5, validation order in §6):
/// `CustomerNotFound`, `CustomerIsArchived`, `PlanNotFound`, `ResourceIdMismatch`,
/// `BillingPeriodMissingError`, `AddonNotFound`, `IncompatibleSubscriptionAddon`,
/// `DuplicateAddonProvisionedError`, `InvalidQuantity`, `AddonQuantityExceedsLimitError`,
/// `AddonDependencyMissingError`, `FeatureNotFound`, the promotion code errors,
/// `InvalidArgumentError`, `TrialNotApplicable`, `PaymentMethodNotFound`,
/// `AmountTooLarge`.
pub fn provision(
    catalog: &Catalog,
    state: &CustomerState,
    request: &ProvisionRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<ProvisionDecision, Error> {
    decide(
        catalog,
        state,
        request,
        redemptions,
        now,
        settings,
        Mode {
            stages: Stages::WithPayment,
            in_place: None,
            completing: None,
        },
    )
}

/// Whether the payment stage runs: estimates skip it (they never need a payment method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stages {
    WithPayment,
    WithoutPayment,
}

/// How a request is decided: with or without the payment stage, as a new subscription or
/// as a change in place, and whether it completes a checkout.
#[derive(Clone, Copy)]
pub(crate) struct Mode<'a> {
    pub(crate) stages: Stages,
    pub(crate) in_place: Option<&'a InPlace<'a>>,
    /// The checkout the request completes: its trial decision and its promotion code's
    /// checks were made when the checkout was requested (FORMAT.md §6), and are carried.
    pub(crate) completing: Option<&'a PendingCheckout>,
}

/// An existing subscription changed in place (`updateSubscription`,
/// `migrateSubscriptionToLatest`): the request's configuration replaces its own, keeping
/// its id, start date and (unless the billing period changes) its billing anchor.
pub(crate) struct InPlace<'a> {
    /// The subscription changed.
    pub(crate) current: &'a Subscription,
    /// The kind of scheduled update a change stored for later becomes.
    pub(crate) kind: ScheduledUpdateType,
    /// The timing, whatever the direction (migrations); otherwise downgrades follow the
    /// request's or the product's strategy and everything else applies now.
    pub(crate) timing: Option<ScheduleStrategy>,
    /// A new trial end.
    pub(crate) trial_end: Option<DateTime<Utc>>,
    /// New metadata, replacing the old.
    pub(crate) metadata: Option<&'a BTreeMap<String, String>>,
    /// Whether the request names any part of the configuration. One that names none (only
    /// metadata, a promotion code or a trial end) leaves a scheduled change alone; one equal
    /// to the live configuration cancels it (FORMAT.md §6).
    pub(crate) names_configuration: bool,
    /// The other change pending on the subscription, moved to go on with this one:
    /// - for a migration, the change the customer scheduled, at the latest versions: the
    ///   migrated subscription keeps it, and a migration timed for later goes into it
    ///   rather than replacing it (`None` drops an earlier scheduled migration);
    /// - for an update, the migration scheduled for the subscription, whose target is the
    ///   requested configuration at the latest versions: an update applied now keeps it
    ///   (due at the end of the period the subscription is then in), and one scheduled
    ///   takes that target.
    pub(crate) carried: Option<&'a ScheduledUpdate>,
    /// The direction of the customer's update, when it is decided again with the migration
    /// scheduled for the subscription folded in (an update starting a new period now): it
    /// stands, whatever the latest prices make of it, and the add-ons move to their latest
    /// versions with the plan.
    pub(crate) decided: Option<ChangeType>,
}

impl<'a> InPlace<'a> {
    /// The change the customer scheduled, that a migration carries along.
    fn carried_change(&self) -> Option<&'a ScheduledUpdate> {
        self.carried
            .filter(|_| self.kind == ScheduledUpdateType::Migration)
    }

    /// The scheduled migration that an update carries along.
    fn carried_migration(&self) -> Option<&'a ScheduledUpdate> {
        self.carried
            .filter(|_| self.kind != ScheduledUpdateType::Migration)
    }
}

/// The configuration `request` (an in-place change of a subscription to `current`, at the
/// latest plan version) validates to, with the latest versions of its add-ons. It is
/// checked for the other change pending on the subscription: an error names that change
/// (`about`).
pub(crate) fn latest_configuration(
    catalog: &Catalog,
    state: &CustomerState,
    request: &ProvisionRequest,
    current: &Configuration,
    now: DateTime<Utc>,
    settings: &Settings,
    about: &str,
) -> Result<Configuration, Error> {
    validate(
        catalog,
        state,
        request,
        &Redemptions::new(),
        now,
        Some((current, false)),
        false,
        settings.rounding,
        false,
    )
    .map(|valid| valid.config)
    .map_err(|e| Error::new(e.code(), format!("{about}: {}", e.message())))
}

pub(crate) fn decide(
    catalog: &Catalog,
    state: &CustomerState,
    request: &ProvisionRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
    mode: Mode<'_>,
) -> Result<ProvisionDecision, Error> {
    let Mode {
        stages,
        in_place,
        completing,
    } = mode;
    crate::period::check_instants(&[
        ("now", Some(now)),
        ("startDate", request.start_date),
        (
            "trialOverride.trialEndDate",
            request
                .trial_override
                .as_ref()
                .and_then(|o| o.trial_end_date),
        ),
        ("trialEndDate", in_place.and_then(|c| c.trial_end)),
    ])?;
    let current = in_place.map(|c| {
        (
            &c.current.config,
            c.kind == ScheduledUpdateType::Update && c.decided.is_none(),
        )
    });
    let check = |waiting_released| {
        validate(
            catalog,
            state,
            request,
            redemptions,
            now,
            current,
            completing.is_some(),
            settings.rounding,
            waiting_released,
        )
    };
    let valid = check(true)?;
    let mut explanation = Vec::with_capacity(6);
    explanation.push(Step::Validated {
        plan: valid.plan.id.clone(),
        version: valid.plan.version,
        product: valid.product.id.clone(),
    });
    let decider = Decider {
        catalog,
        state,
        request,
        now,
        settings,
        valid: &valid,
        in_place,
    };
    let (trial, start) = match in_place {
        Some(_) => (TrialOutcome::unchanged(), now),
        None => {
            let start = request.start_date.unwrap_or(now);
            let trial = match completing {
                Some(checkout) => checkout.trial.at_completion(
                    state,
                    &valid.plan.product,
                    request.resource_id.as_ref(),
                    checkout
                        .start
                        .map_or(TimeDelta::zero(), |from| start.signed_duration_since(from)),
                )?,
                None => trial::decide(
                    catalog,
                    state,
                    valid.plan,
                    request.resource_id.as_ref(),
                    request.skip_trial,
                    request.trial_override.as_ref(),
                    start,
                )?,
            };
            // A backdated trial that is over already would bill its conversion in the past.
            if let Some(terms) = trial.terms.filter(|terms| terms.end <= now) {
                return Err(Error::new(
                    ErrorCode::InvalidArgumentError,
                    format!(
                        "the trial from `{start}` would have ended at `{}`, before now: skip the trial or start later",
                        terms.end
                    ),
                ));
            }
            explanation.push(Step::Trial {
                decision: trial.decision,
                reason: trial.reason.clone(),
            });
            (trial, start)
        }
    };
    let mut decision = decider.base_decision(trial, explanation);
    match in_place {
        Some(change) => decider.update_in_place(&mut decision, change)?,
        None => decider.start_and_replace(&mut decision, start)?,
    }
    match stages {
        Stages::WithPayment => decider.payment(&mut decision)?,
        Stages::WithoutPayment => {}
    }
    decision.effects.redeemed_code = decider.redeemed_code(&decision.effects);
    // The promotion code was checked as if the request took over the redemptions of the
    // subscriptions waiting in its scope with it; one the decision leaves waiting keeps its
    // redemption, so the code must fit beside it.
    if let Some(code) = &request.promotion_code {
        let ended = |s: &Subscription| decision.effects.ends(&s.id);
        let kept = waiting_holders(
            state,
            &valid.plan.product,
            request.resource_id.as_ref(),
            code,
        )
        .any(|s| !ended(s));
        if kept {
            check(false)?;
        }
    }
    Ok(decision)
}

fn invalid_quantity(message: String) -> Error {
    Error::new(ErrorCode::InvalidQuantity, message)
}

/// Stage V, in FORMAT.md §6's order. `code_checked`: the promotion code was checked when
/// the request was made (a checkout's completion).
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs of one stage, each used once"
)]
fn validate<'c>(
    catalog: &'c Catalog,
    state: &CustomerState,
    request: &ProvisionRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    current: Option<(&Configuration, bool)>,
    code_checked: bool,
    rounding: RoundingMode,
    waiting_released: bool,
) -> Result<Validated<'c>, Error> {
    if state.customer.id != request.customer_id {
        return Err(Error::new(
            ErrorCode::CustomerNotFound,
            format!("customer `{}` does not exist", request.customer_id),
        ));
    }
    state.ensure_active()?;
    let plan = catalog
        .plan_or_latest(request.plan_id.as_str(), request.plan_version)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::PlanNotFound,
                match request.plan_version {
                    Some(v) => format!("plan `{}` version {v} does not exist", request.plan_id),
                    None => format!("plan `{}` does not exist", request.plan_id),
                },
            )
        })?;
    let product = catalog.product(plan.product.as_str()).ok_or_else(|| {
        Error::new(
            ErrorCode::PlanNotFound,
            format!("product `{}` does not exist", plan.product),
        )
    })?;
    match (product.multiple_subscriptions, &request.resource_id) {
        (true, None) => {
            return Err(Error::new(
                ErrorCode::ResourceIdMismatch,
                format!(
                    "product `{}` has one subscription per resource: `resourceId` is required",
                    product.id
                ),
            ));
        }
        (false, Some(resource)) => {
            return Err(Error::new(
                ErrorCode::ResourceIdMismatch,
                format!(
                    "product `{}` has one subscription per customer: `resourceId` `{resource}` is not allowed",
                    product.id
                ),
            ));
        }
        _ => {}
    }
    let requested_country = request
        .billing_country_code
        .as_deref()
        .map(crate::id::check_country)
        .transpose()?;
    // A change in place keeps the subscription's country unless the request names one.
    let country = match (requested_country, current) {
        (Some(code), _) => Some(code),
        (None, Some((config, _))) => config.country,
        (None, None) => state.customer.country,
    };
    let priced = plan.pricing_type != PricingType::Free
        && (!plan.prices.is_empty() || !plan.localized_prices.is_empty());
    let billing_period = if priced {
        let period = request.billing_period.ok_or_else(|| {
            Error::new(
                ErrorCode::BillingPeriodMissingError,
                format!("plan `{}` needs a billing period", plan.id),
            )
        })?;
        if !plan.price_set(country, period).has_period(period) {
            return Err(Error::new(
                ErrorCode::BillingPeriodMissingError,
                format!("plan `{}` has no {} price", plan.id, period.as_str()),
            ));
        }
        Some(period)
    } else if plan.pricing_type == PricingType::Free {
        None
    } else {
        request.billing_period
    };
    // An update keeps the add-on versions the subscription holds; a migration and a new
    // subscription take the latest.
    let held = match current {
        Some((config, true)) => config.addons.as_slice(),
        _ => &[],
    };
    let addons = validate_addons(catalog, plan, billing_period, request, held)?;
    let units = validate_units(catalog, plan, country, billing_period, request)?;
    let config = Configuration {
        plan: plan.id.clone(),
        plan_version: plan.version,
        billing_period,
        country,
        units,
        addons,
    };
    let quote = plan_amount(catalog, plan, &config)?;
    let coupon = match (&request.promotion_code, &request.coupon_id) {
        (Some(_), Some(_)) => {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                "give either `promotionCode` or `couponId`, not both",
            ));
        }
        (Some(code), None) => {
            // The subtotal of a full period's invoice: its lines, each rounded.
            let subtotal = match quote.currency {
                Some(currency) => money::sum(
                    quote
                        .components
                        .iter()
                        .map(|c| currency.round(c.amount, rounding)),
                )?,
                None => quote.total,
            };
            let purchase = crate::coupon::Purchase {
                plan,
                subtotal,
                currency: quote.currency,
                checked_at_request: code_checked,
            };
            // A change scheduled in the scope that holds this code is replaced by the
            // request: its redemption is the request's to take (the host's count settles
            // exactly what the decision gives back). So is a subscription waiting in the
            // scope, when `waiting_released`: [`decide`] checks afterwards that the
            // decision does end it.
            let held = held_in_scope(
                state,
                &plan.product,
                request.resource_id.as_ref(),
                code,
                waiting_released,
            );
            let redemptions = if held == 0 {
                Cow::Borrowed(redemptions)
            } else {
                let mut counts = redemptions.clone();
                for _ in 0..held {
                    counts.release(code);
                }
                Cow::Owned(counts)
            };
            let coupon =
                crate::coupon::redeem_code(catalog, state, code, &purchase, &redemptions, now)?;
            Some((coupon.id.clone(), Some(code.clone())))
        }
        (None, Some(id)) => {
            let coupon = catalog.coupon(id.as_str()).ok_or_else(|| {
                Error::new(
                    ErrorCode::CouponNotFound,
                    format!("coupon `{id}` does not exist"),
                )
            })?;
            crate::coupon::check_currency(coupon, quote.currency)?;
            Some((coupon.id.clone(), None))
        }
        (None, None) => None,
    };
    if let Some(pct) = request.tax_percentage {
        crate::invoice::check_tax_percentage(pct)?;
    }
    Ok(Validated {
        plan,
        product,
        config,
        quote,
        coupon,
    })
}

/// How many plan changes scheduled in the scope `(product, resource)` hold promotion code
/// `code`.
fn held_in_scope(
    state: &CustomerState,
    product: &ProductId,
    resource: Option<&ResourceId>,
    code: &str,
    waiting: bool,
) -> usize {
    let holds = |c: &AppliedCoupon| c.promotion_code.as_deref() == Some(code);
    let scheduled = state
        .subscriptions
        .iter()
        .filter(|s| s.in_scope(product, resource))
        .flat_map(|s| &s.scheduled_updates)
        .filter_map(|u| u.coupon.as_ref())
        .filter(|c| holds(c))
        .count();
    let waiting = if waiting {
        waiting_holders(state, product, resource, code).count()
    } else {
        0
    };
    scheduled.saturating_add(waiting)
}

/// The subscriptions waiting in the scope `(product, resource)` (for their start or for a
/// payment method) whose coupon was redeemed with promotion code `code`.
fn waiting_holders<'s>(
    state: &'s CustomerState,
    product: &'s ProductId,
    resource: Option<&'s ResourceId>,
    code: &'s str,
) -> impl Iterator<Item = &'s Subscription> {
    state.subscriptions.iter().filter(move |s| {
        s.in_scope(product, resource)
            && s.status.is_waiting()
            && s.coupon
                .as_ref()
                .is_some_and(|c| c.promotion_code.as_deref() == Some(code))
    })
}

/// Up to this many add-ons in a request are checked for repeats without a set.
const SCANNED_ADDONS: usize = 16;

fn validate_addons(
    catalog: &Catalog,
    plan: &Plan,
    billing_period: Option<BillingPeriod>,
    request: &ProvisionRequest,
    held: &[AddonQuantity],
) -> Result<Vec<AddonQuantity>, Error> {
    // A short list is checked for repeats by scanning what it has accepted; a long one
    // by a set.
    let indexed = request.addons.len() > SCANNED_ADDONS;
    let mut seen: HashSet<&AddonId> = HashSet::new();
    let mut addons: Vec<AddonQuantity> = Vec::with_capacity(request.addons.len());
    let mut dependent = false;
    for line in &request.addons {
        let addon = held
            .iter()
            .find(|h| h.addon == line.addon_id)
            .and_then(|h| catalog.addon(h.addon.as_str(), h.version))
            .or_else(|| catalog.latest_addon(line.addon_id.as_str()))
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::AddonNotFound,
                    format!("add-on `{}` does not exist", line.addon_id),
                )
            })?;
        if !plan.is_compatible(&addon.id) {
            return Err(Error::new(
                ErrorCode::IncompatibleSubscriptionAddon,
                format!(
                    "add-on `{}` is not compatible with plan `{}`",
                    addon.id, plan.id
                ),
            ));
        }
        let repeated = if indexed {
            !seen.insert(&line.addon_id)
        } else {
            addons.iter().any(|a| a.addon == line.addon_id)
        };
        if repeated {
            return Err(Error::new(
                ErrorCode::DuplicateAddonProvisionedError,
                format!("add-on `{}` is listed more than once", addon.id),
            ));
        }
        let quantity = u32::try_from(line.quantity)
            .ok()
            .filter(|q| *q >= 1)
            .ok_or_else(|| {
                invalid_quantity(format!(
                    "quantity {} of add-on `{}` is not positive",
                    line.quantity, addon.id
                ))
            })?;
        if quantity > addon.max_quantity {
            return Err(Error::new(
                ErrorCode::AddonQuantityExceedsLimitError,
                format!(
                    "quantity {quantity} of add-on `{}` exceeds its maximum of {}",
                    addon.id, addon.max_quantity
                ),
            ));
        }
        // An add-on priced only for other billing periods cannot be bought for this one.
        crate::pricing::sold_for(addon, billing_period)?;
        dependent |= !addon.dependencies.is_empty();
        addons.push(AddonQuantity {
            addon: addon.id.clone(),
            version: addon.version,
            quantity,
        });
    }
    if !dependent {
        return Ok(addons);
    }
    for line in &addons {
        let Some(addon) = catalog.addon(line.addon.as_str(), line.version) else {
            continue;
        };
        let listed = |d: &AddonId| {
            if indexed {
                seen.contains(d)
            } else {
                addons.iter().any(|a| &a.addon == d)
            }
        };
        if let Some(missing) = addon.dependencies.iter().find(|d| !listed(d)) {
            return Err(Error::new(
                ErrorCode::AddonDependencyMissingError,
                format!("add-on `{}` needs add-on `{missing}`", addon.id),
            ));
        }
    }
    Ok(addons)
}

/// The quantities of the plan's per-unit prices: those the request gives, in input order,
/// then each missing one at its minimum.
fn validate_units(
    catalog: &Catalog,
    plan: &Plan,
    country: Option<CountryCode>,
    period: Option<BillingPeriod>,
    request: &ProvisionRequest,
) -> Result<BTreeMap<FeatureId, u64>, Error> {
    let per_unit = per_unit_prices(plan, country, period);
    let single = match request.unit_quantity {
        Some(quantity) => {
            let mut sold = per_unit.clone();
            match (sold.next(), sold.next()) {
                (Some((feature, _, _)), None) => Some((feature, quantity)),
                _ => {
                    return Err(Error::new(
                        ErrorCode::InvalidArgumentError,
                        format!(
                            "`unitQuantity` needs a plan with exactly one per-unit price; plan `{}` has {}: use `billableFeatures`",
                            plan.id,
                            per_unit.clone().count()
                        ),
                    ));
                }
            }
        }
        None => None,
    };
    let requested = request
        .billable_features
        .iter()
        .map(|f| (&f.feature_id, f.quantity))
        .chain(single);
    let mut units = BTreeMap::new();
    for (feature, quantity) in requested {
        if catalog.feature(feature.as_str()).is_none() {
            return Err(Error::new(
                ErrorCode::FeatureNotFound,
                format!("feature `{feature}` does not exist"),
            ));
        }
        let Some((_, min, max)) = per_unit.clone().find(|(f, _, _)| *f == feature) else {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!("plan `{}` does not sell `{feature}` by quantity", plan.id),
            ));
        };
        let quantity = u64::try_from(quantity)
            .ok()
            .filter(|q| *q >= 1)
            .ok_or_else(|| {
                invalid_quantity(format!(
                    "quantity {quantity} of `{feature}` is not positive"
                ))
            })?;
        if quantity < min || max.is_some_and(|m| quantity > m) {
            return Err(invalid_quantity(format!(
                "quantity {quantity} of `{feature}` is outside {min}..={}",
                max.map_or("∞".to_owned(), |m| m.to_string())
            )));
        }
        if units.insert(feature.clone(), quantity).is_some() {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!("the quantity of `{feature}` is given more than once"),
            ));
        }
    }
    for (feature, min, _) in per_unit {
        units.entry(feature.clone()).or_insert(min);
    }
    Ok(units)
}

/// The plan's per-unit prices for `period` in `country`: (feature, min, max).
pub(crate) fn per_unit_prices(
    plan: &Plan,
    country: Option<CountryCode>,
    period: Option<BillingPeriod>,
) -> impl Iterator<Item = (&FeatureId, u64, Option<u64>)> + Clone {
    let prices = match period {
        Some(period) => plan.price_set(country, period).prices.as_slice(),
        None => &[],
    };
    prices
        .iter()
        .filter(move |p| Some(p.billing_period) == period)
        .filter_map(|p| match &p.model {
            PriceModel::PerUnit {
                feature,
                min_quantity,
                max_quantity,
                ..
            } => Some((feature, *min_quantity, *max_quantity)),
            _ => None,
        })
}

struct Decider<'a, 'c> {
    catalog: &'c Catalog,
    state: &'a CustomerState,
    request: &'a ProvisionRequest,
    now: DateTime<Utc>,
    settings: &'a Settings,
    valid: &'a Validated<'c>,
    in_place: Option<&'a InPlace<'a>>,
}

/// The live and waiting subscriptions of the request's scope.
struct Scope<'a> {
    live_trial: Option<&'a Subscription>,
    live_paid: Option<&'a Subscription>,
    waiting_trial: Option<&'a Subscription>,
    waiting_paid: Option<&'a Subscription>,
}

impl<'a, 'c> Decider<'a, 'c> {
    fn scope(&self) -> Scope<'a> {
        let product = &self.valid.plan.product;
        let resource = self.request.resource_id.as_ref();
        let mut scope = Scope {
            live_trial: None,
            live_paid: None,
            waiting_trial: None,
            waiting_paid: None,
        };
        // One pass; the first subscription of each kind counts.
        for s in &self.state.subscriptions {
            if !s.in_scope(product, resource) {
                continue;
            }
            let slot = match (s.is_trial, s.status.is_live()) {
                (true, true) => &mut scope.live_trial,
                (false, true) => &mut scope.live_paid,
                (true, false) if s.status == SubscriptionStatus::NotStarted => {
                    &mut scope.waiting_trial
                }
                (false, false) if s.status == SubscriptionStatus::NotStarted => {
                    &mut scope.waiting_paid
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(s);
            }
        }
        scope
    }

    /// The promotion code the request redeems by `effects`: the code it brought, when a
    /// subscription it creates or changes now carries the coupon it applies. A plan change
    /// scheduled for later holds its code instead (counted from scheduling:
    /// [`crate::coupon::scheduled_redemptions`]); a request waiting for its checkout
    /// redeems nothing until the completion; a request without a code redeems nothing, even
    /// when it carries over a coupon another request redeemed.
    fn redeemed_code(&self, effects: &Effects) -> Option<String> {
        let (coupon, code) = self.valid.coupon.as_ref()?;
        let carried = effects.create.iter().chain(&effects.replace).any(|sub| {
            sub.coupon
                .as_ref()
                .is_some_and(|c| c.is(coupon, code.as_deref(), self.now, Some(&sub.id)))
        });
        code.clone().filter(|_| carried)
    }

    /// The coupon the request applies, first redeemed at `at` on subscription `on` (the one
    /// the request creates or changes).
    fn applied_coupon(&self, at: DateTime<Utc>, on: &SubscriptionId) -> Option<AppliedCoupon> {
        self.valid
            .coupon
            .as_ref()
            .map(|(coupon, code)| AppliedCoupon {
                coupon: coupon.clone(),
                promotion_code: code.clone(),
                redeemed_at: at,
                invoices_discounted: 0,
                redeemed_on: Some(on.clone()),
            })
    }

    /// The id of the subscription the request creates: its own, unless a subscription, a
    /// pending checkout or a change scheduled on another subscription than `replacing`
    /// (whose scheduled changes the request replaces) already has it; else one generated.
    fn new_id(&self, replacing: Option<&Subscription>) -> Result<SubscriptionId, Error> {
        let Some(id) = &self.request.subscription_id else {
            return Ok(generate_id(self.state));
        };
        if self.state.subscription(id.as_str()).is_some() {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!("subscription `{id}` already exists"),
            ));
        }
        if checkout_holds(self.state, id) {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!("subscription `{id}` is waiting for its checkout"),
            ));
        }
        if let Some(holder) = scheduled_holder(self.state, id, replacing.map(|r| &r.id)) {
            return Err(Error::new(
                ErrorCode::InvalidArgumentError,
                format!(
                    "subscription `{id}` is the one a change scheduled on `{}` creates",
                    holder.id
                ),
            ));
        }
        Ok(id.clone())
    }

    fn base_decision(&self, trial: TrialOutcome, explanation: Vec<Step>) -> ProvisionDecision {
        ProvisionDecision {
            status: ProvisionStatus::Success,
            subscription: None,
            is_scheduled: false,
            change_type: ChangeType::New,
            trial,
            checkout: None,
            charge: None,
            effects: Effects {
                resource: self.request.resource_id.clone(),
                ..Effects::default()
            },
            explanation,
        }
    }

    /// A new subscription of the requested configuration starting at `start`, in its first
    /// period, or in the billing `cycle` (anchor and current period) of the subscription it
    /// takes over.
    fn new_subscription(
        &self,
        id: SubscriptionId,
        start: DateTime<Utc>,
        trial: &TrialOutcome,
        cycle: Option<(DateTime<Utc>, Period)>,
    ) -> Result<Subscription, Error> {
        let terms = trial.terms;
        let status = match (start > self.now, terms.is_some()) {
            (true, _) => SubscriptionStatus::NotStarted,
            (false, true) => SubscriptionStatus::InTrial,
            (false, false) => SubscriptionStatus::Active,
        };
        let (anchor, current_period) = match (terms, self.valid.config.billing_period, cycle) {
            (Some(t), _, _) => (Some(t.end), Some(Period { start, end: t.end })),
            (None, Some(_), Some((anchor, period))) => (Some(anchor), Some(period)),
            (None, Some(period), None) => {
                let series = PeriodSeries::new(start, period);
                // A subscription starting now or later is in its first period.
                let containing = if self.now > start {
                    series.containing(self.now)?
                } else {
                    None
                };
                let current = match containing {
                    Some(p) => p,
                    None => series.nth(0)?,
                };
                (Some(start), Some(current))
            }
            (None, None, _) => (None, None),
        };
        let coupon = self.applied_coupon(self.now, &id);
        Ok(Subscription {
            id,
            customer: self.state.customer.id.clone(),
            product: self.valid.plan.product.clone(),
            resource: self.request.resource_id.clone(),
            config: self.valid.config.clone(),
            is_trial: terms.is_some(),
            status,
            start_date: start,
            end_date: None,
            trial_end: terms.map(|t| t.end),
            trial_end_behavior: terms.map(|t| t.end_behavior),
            billing_anchor: anchor,
            current_period,
            cancellation_date: None,
            pending_cancel_reason: None,
            cancel_reason: None,
            credit_on_cancel: false,
            revoke_on_cancel: false,
            scheduled_updates: Vec::new(),
            payment_collection_method: self.request.payment_collection_method.unwrap_or_default(),
            tax_percentage: self.request.tax_percentage,
            coupon,
            charges: Vec::new(),
            pending_lines: Vec::new(),
            metadata: self.request.metadata.clone(),
        })
    }

    /// Stage S: where the new subscription goes and what it replaces (SPEC.md §3.S).
    fn start_and_replace(
        &self,
        d: &mut ProvisionDecision,
        start: DateTime<Utc>,
    ) -> Result<(), Error> {
        let scope = self.scope();
        let is_trial = d.trial.terms.is_some();
        // A trial counts for eligibility once it runs: the clock records one waiting for
        // its start (or for payment) when it starts.
        if is_trial && start <= self.now {
            d.effects.trial_product = Some(self.valid.plan.product.clone());
        }
        if start > self.now {
            return self.future_start(d, start, &scope);
        }
        if is_trial {
            return self.trial_start(d, start, &scope);
        }
        if let Some(current) = scope.live_paid {
            return self.plan_change(d, current, &scope);
        }
        if let Some(live_trial) = scope.live_trial {
            if live_trial.plan_id() == &self.valid.plan.id {
                return self.trial_conversion(d, start, live_trial, &scope);
            }
            d.end(&live_trial.id, self.now, CancelReason::UpgradeOrDowngrade);
            self.reset_usage(d, live_trial, &self.valid.config);
            d.explanation.push(Step::TrialEndsForPlan {
                trial: live_trial.id.clone(),
                trial_plan: live_trial.plan_id().clone(),
                plan: self.valid.plan.id.clone(),
            });
            self.replace_waiting(d, scope.waiting_paid);
            return self.start_now(d, start, Some(live_trial));
        }
        self.replace_waiting(d, scope.waiting_paid);
        self.start_now(d, start, None)
    }

    /// `sub`, starting at `at` in place of `trial` (its conversion asked for, or another
    /// plan), keeps what the trial's request gave it and its own request leaves out, as the
    /// trial's conversion by the clock would: the coupon (its duration counting from its
    /// first redemption), the tax rate and the metadata.
    fn carry_over_from_trial(
        &self,
        sub: &mut Subscription,
        trial: &Subscription,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.carry_over_to_trial(sub, trial);
        self.carried_coupon_fits(trial, at)
    }

    /// A newer waiting request replaces the waiting one of its kind.
    fn replace_waiting(&self, d: &mut ProvisionDecision, waiting: Option<&Subscription>) {
        if let Some(w) = waiting {
            if let Some(trial) = self.state.converting_into(w) {
                // The trial no longer converts into it: it ends by its own rule, unless this
                // decision ends it too.
                let mut kept = trial.clone();
                kept.clear_pending_cancellation();
                d.effects.replace.push(kept);
            }
            d.end(&w.id, self.now, CancelReason::UpgradeOrDowngrade);
            d.explanation.push(Step::WaitingReplaced {
                subscription: w.id.clone(),
            });
        }
    }

    /// What the request leaves out carries over to `sub` from `current`, the subscription
    /// it replaces (now or later): its coupon, its tax rate, how it is collected and its
    /// metadata (FORMAT.md §6 "Discounts"). A parallel trial takes them but the collection
    /// method ([`Self::carry_over_to_trial`]).
    fn carry_over(&self, sub: &mut Subscription, current: &Subscription) {
        self.carry_over_to_trial(sub, current);
        if self.request.payment_collection_method.is_none() {
            sub.payment_collection_method = current.payment_collection_method;
        }
    }

    /// [`Self::carry_over`] for a parallel trial beside `current`: the coupon, the tax rate
    /// and the metadata, which its conversion keeps; its collection method stays its own
    /// request's, since the trial's payment rule (a payment method it requires, its
    /// checkout) is decided with it now.
    fn carry_over_to_trial(&self, sub: &mut Subscription, current: &Subscription) {
        if sub.coupon.is_none() {
            sub.coupon = current.coupon.clone();
        }
        if self.request.metadata.is_empty() {
            sub.metadata = current.metadata.clone();
        }
        if self.request.tax_percentage.is_none() {
            sub.tax_percentage = current.tax_percentage;
        }
    }

    fn future_start(
        &self,
        d: &mut ProvisionDecision,
        start: DateTime<Utc>,
        scope: &Scope<'_>,
    ) -> Result<(), Error> {
        let is_trial = d.trial.terms.is_some();
        // A newer request for a later start replaces the waiting one of its kind (SPEC.md
        // §3.S), whatever it asks for.
        self.replace_waiting(
            d,
            if is_trial {
                scope.waiting_trial
            } else {
                scope.waiting_paid
            },
        );
        // The live paid subscription still live at `start`: the one the new subscription
        // replaces then (a trial, when it converts). One that ends first is replaced by
        // nothing: the request is then a new subscription.
        let live_at_start = scope
            .live_paid
            .filter(|c| c.cancellation_date.is_none_or(|end| end > start));
        // The live trial the new subscription puts an end to when it starts.
        let mut trial_ended = None;
        if !is_trial {
            if let Some(current) = live_at_start {
                if current.config == self.valid.config {
                    // The live configuration again: nothing changes (FORMAT.md §6), later
                    // as now.
                    d.change_type = ChangeType::None;
                    self.keep_configuration(d, current, "nothing changes", true, None);
                    return Ok(());
                }
                d.change_type = self.classify(current)?;
                // The waiting subscription replaces `current` at its start: a change of
                // `current` due then or later would never run (the clock skips one due at
                // that very instant).
                if let Some(due) = current
                    .scheduled_updates
                    .first()
                    .map(|u| u.scheduled_at)
                    .filter(|at| *at >= start)
                {
                    d.effects.schedule.push(ScheduleChange {
                        subscription: current.id.clone(),
                        update: None,
                    });
                    d.explanation.push(Step::ScheduledChangeSuperseded {
                        subscription: current.id.clone(),
                        at: due,
                        start,
                    });
                }
            } else if let Some(trial) = scope.live_trial {
                trial_ended = self.foretell_trial_end(d, trial, start).then_some(trial);
            }
        }
        let mut sub = self.new_subscription(self.new_id(None)?, start, &d.trial, None)?;
        match (is_trial, live_at_start) {
            (false, Some(current)) => {
                self.carry_over(&mut sub, current);
                self.carried_coupon_fits(current, start)?;
            }
            // A parallel trial, as one starting now.
            (true, Some(paid)) => self.carry_over_to_trial(&mut sub, paid),
            // In place of a trial, as one starting now.
            (_, None) => {
                if let Some(trial) = trial_ended {
                    self.carry_over_from_trial(&mut sub, trial, start)?;
                }
            }
        }
        d.explanation.push(Step::Waits {
            subscription: sub.id.clone(),
            start,
        });
        d.create(sub);
        Ok(())
    }

    /// Says that a live trial with no paid subscription beside it ends when the paid
    /// subscription requested for `start` starts (SPEC.md §3.S: a trial of another plan is
    /// canceled then; one of the same plan converts), unless it ends or is canceled first;
    /// whether it does. The clock ends it, when and if the paid subscription starts.
    fn foretell_trial_end(
        &self,
        d: &mut ProvisionDecision,
        trial: &Subscription,
        start: DateTime<Utc>,
    ) -> bool {
        let ends_later = |end: Option<DateTime<Utc>>| end.is_none_or(|end| end > start);
        if !(ends_later(trial.trial_end) && ends_later(trial.cancellation_date)) {
            return false;
        }
        d.explanation.push(Step::TrialEndsAtStart {
            trial: trial.id.clone(),
            trial_plan: trial.plan_id().clone(),
            plan: self.valid.plan.id.clone(),
            at: start,
        });
        true
    }

    fn trial_start(
        &self,
        d: &mut ProvisionDecision,
        start: DateTime<Utc>,
        scope: &Scope<'_>,
    ) -> Result<(), Error> {
        if let Some(old) = scope.live_trial {
            d.end(&old.id, self.now, CancelReason::UpgradeOrDowngrade);
            d.explanation.push(Step::TrialReplaced {
                trial: old.id.clone(),
            });
        }
        self.replace_waiting(d, scope.waiting_trial);
        if let Some(paid) = scope.live_paid {
            d.explanation.push(Step::ParallelTrial {
                subscription: paid.id.clone(),
            });
        }
        let mut sub = self.new_subscription(self.new_id(None)?, start, &d.trial, None)?;
        if let Some(paid) = scope.live_paid {
            // A parallel trial that converts replaces the paid subscription as a change
            // (FORMAT.md §6): what its request leaves out comes from that subscription.
            self.carry_over_to_trial(&mut sub, paid);
        }
        d.explanation.push(Step::TrialStarts {
            subscription: sub.id.clone(),
            until: sub.trial_end.unwrap_or(start),
        });
        d.create(sub);
        Ok(())
    }

    fn trial_conversion(
        &self,
        d: &mut ProvisionDecision,
        start: DateTime<Utc>,
        trial: &Subscription,
        scope: &Scope<'_>,
    ) -> Result<(), Error> {
        let trial_end = trial.trial_end.unwrap_or(self.now);
        match self.valid.product.journey.trial_conversion {
            TrialConversion::AtTrialEnd if trial_end > self.now => {
                self.replace_waiting(d, scope.waiting_paid);
                d.end(&trial.id, trial_end, CancelReason::TrialConverted);
                let mut sub =
                    self.new_subscription(self.new_id(None)?, trial_end, &d.trial, None)?;
                self.carry_over_from_trial(&mut sub, trial, trial_end)?;
                d.explanation.push(Step::ConvertsAtTrialEnd {
                    subscription: sub.id.clone(),
                    trial: trial.id.clone(),
                    at: trial_end,
                });
                d.create(sub);
                Ok(())
            }
            _ => {
                d.end(&trial.id, self.now, CancelReason::TrialConverted);
                d.explanation.push(Step::ConvertsNow {
                    trial: trial.id.clone(),
                });
                self.replace_waiting(d, scope.waiting_paid);
                self.start_now(d, self.now.max(start), Some(trial))
            }
        }
    }

    /// A non-trial subscription that starts now or started in the past, in place of
    /// `replaced_trial` when it ends a live trial. A backdated start charges nothing now:
    /// its first charge is at the next period start.
    fn start_now(
        &self,
        d: &mut ProvisionDecision,
        start: DateTime<Utc>,
        replaced_trial: Option<&Subscription>,
    ) -> Result<(), Error> {
        let mut sub = self.new_subscription(self.new_id(None)?, start, &d.trial, None)?;
        if let Some(trial) = replaced_trial {
            self.carry_over_from_trial(&mut sub, trial, self.now)?;
        }
        if self.valid.plan.pricing_type == PricingType::Paid {
            d.effects.paid_product = Some(self.valid.plan.product.clone());
        }
        if start == self.now {
            if let (Some(period), Some(currency)) = (sub.current_period, self.valid.quote.currency)
            {
                let lines = charge_lines(&self.valid.quote, period, self.settings);
                sub.charges =
                    ledger(&self.valid.quote.components, &lines, currency, period).collect();
                d.charge = Some(Charge {
                    subscription: sub.id.clone(),
                    reason: InvoiceReason::SubscriptionCreation,
                    currency,
                    lines: lines_only(lines).collect(),
                    period,
                    proration_date: None,
                    paid_entries: (0..sub.charges.len()).collect(),
                    prorations_wait: false,
                    pending_stays: false,
                    earlier_prorations: 0,
                    settles_waiting: false,
                    ledger_to: None,
                });
            }
        } else {
            d.explanation.push(Step::Backdated { start });
        }
        d.explanation.push(Step::Created {
            subscription: sub.id.clone(),
            plan: self.valid.plan.id.clone(),
        });
        d.create(sub);
        Ok(())
    }

    /// A new non-trial subscription over a live non-trial one: a plan change.
    fn plan_change(
        &self,
        d: &mut ProvisionDecision,
        current: &Subscription,
        scope: &Scope<'_>,
    ) -> Result<(), Error> {
        let direction = self.classify(current)?;
        d.change_type = direction;
        if current.config == self.valid.config {
            d.change_type = ChangeType::None;
            self.keep_configuration(d, current, "nothing changes", true, None);
            return Ok(());
        }
        // A subscription waiting for payment has been charged nothing and has no billing
        // period of its own yet: a change replaces it now, whatever its direction, and
        // the new subscription is paid for as any start now is (SPEC.md §3.P).
        let strategy = if current.status == SubscriptionStatus::PaymentPending {
            d.explanation.push(Step::ChangedUncharged {
                subscription: current.id.clone(),
                status: current.status,
            });
            ScheduleStrategy::Immediate
        } else {
            self.strategy(current, direction, None)?
        };
        if let Some(at) = self.scheduled_at(strategy, current)? {
            self.scheduled_in_one_currency(current, at)?;
            self.carried_coupon_fits(current, at)?;
            let update =
                self.scheduled_update(current, ScheduledUpdateType::PlanChange, at, strategy)?;
            self.schedule(d, current, update);
            d.explanation.push(Step::PlanChangeScheduled {
                direction,
                plan: self.valid.plan.id.clone(),
                subscription: current.id.clone(),
                at,
            });
            // The new subscription runs on (SPEC.md §3), so the request withdraws a pending
            // cancellation now: one due at or before the change would otherwise win over it.
            let mut staying = current.clone();
            if withdraw_cancellation(d, &mut staying) {
                d.effects.replace.push(staying);
            }
            return Ok(());
        }
        self.replace_waiting(d, scope.waiting_paid);
        self.change_now(d, current, direction)?;
        self.carried_coupon_fits(current, self.now)
    }

    /// Records the usage the product's reset rule clears when `current` moves to `to` now.
    /// A change in place is no plan change: only a new billing period resets usage.
    fn reset_usage(&self, d: &mut ProvisionDecision, current: &Subscription, to: &Configuration) {
        if self.in_place.is_some() && current.config.billing_period == to.billing_period {
            return;
        }
        d.effects.usage_reset = crate::usage::usage_resets(
            self.catalog,
            &self.state.usage,
            &crate::usage::PlanChange {
                product: &current.product,
                resource: current.resource.as_ref(),
                from: &current.config,
                to,
            },
        );
        if !d.effects.usage_reset.is_empty() {
            d.explanation.push(Step::UsageResets {
                features: d.effects.usage_reset.len(),
            });
        }
    }

    /// The direction of moving `current` to the request's configuration.
    fn classify(&self, current: &Subscription) -> Result<ChangeType, Error> {
        crate::change::classify_priced(
            self.catalog,
            &current.config,
            &self.valid.config,
            Some(&self.valid.quote),
        )
    }

    /// `current` keeps its configuration: a request equal to it cancels the customer's
    /// scheduled change when `drops_scheduled` (one that names no configuration, such as a
    /// metadata-only update, leaves it); a scheduled migration stays, on its own when it
    /// had gone into the customer's change (`migration`).
    fn keep_configuration(
        &self,
        d: &mut ProvisionDecision,
        current: &Subscription,
        consequence: &'static str,
        drops_scheduled: bool,
        migration: Option<&ScheduledUpdate>,
    ) {
        d.subscription = Some(current.id.clone());
        // A scheduled migration is the vendor's move: restoring the configuration does not
        // cancel it.
        let customers = current
            .scheduled_updates
            .iter()
            .any(|u| u.kind != ScheduledUpdateType::Migration);
        if !drops_scheduled || !customers {
            d.explanation.push(Step::SameConfiguration {
                subscription: current.id.clone(),
                consequence,
            });
        } else {
            d.effects.schedule.push(ScheduleChange {
                subscription: current.id.clone(),
                update: migration.cloned(),
            });
            d.explanation.push(Step::ScheduledChangeDropped {
                subscription: current.id.clone(),
            });
            if let Some(migration) = migration {
                d.explanation.push(Step::MigrationGoesOn {
                    subscription: current.id.clone(),
                    at: migration.scheduled_at,
                });
            }
        }
    }

    /// How a change of `current` in `direction` is timed: `forced`, else a downgrade follows
    /// the request's or the product's strategy, a change into another currency the request's
    /// (README, "A plan change into another currency"), and everything else applies now.
    fn strategy(
        &self,
        current: &Subscription,
        direction: ChangeType,
        forced: Option<ScheduleStrategy>,
    ) -> Result<ScheduleStrategy, Error> {
        Ok(match (forced, direction, self.request.schedule_strategy) {
            (Some(timing), _, _) => timing,
            (None, ChangeType::Downgrade, asked) => {
                asked.unwrap_or(self.valid.product.journey.downgrade_strategy)
            }
            (None, _, Some(asked)) if self.changes_currency(current)? => asked,
            (None, _, _) => ScheduleStrategy::Immediate,
        })
    }

    /// Whether the request's configuration is billed in another currency than `current`'s
    /// period was charged in.
    fn changes_currency(&self, current: &Subscription) -> Result<bool, Error> {
        // The currency its period was charged in, which a change now would credit, as the
        // checks of what crosses currencies see it; else its configuration's (a period held
        // without a charge).
        let old = match current.charges.first() {
            Some(charge) => Some(charge.currency),
            None => crate::usage::invoice_currency(
                self.catalog,
                &current.config,
                crate::pricing::recurring_amount(self.catalog, &current.config)?.currency,
            ),
        };
        Ok(matches!((old, self.new_currency()), (Some(old), Some(new)) if old != new))
    }

    /// The request's configuration stored for `at`: a plan change names the subscription
    /// that will replace the current one; a change in place keeps it.
    fn scheduled_update(
        &self,
        current: &Subscription,
        kind: ScheduledUpdateType,
        at: DateTime<Utc>,
        strategy: ScheduleStrategy,
    ) -> Result<ScheduledUpdate, Error> {
        let mut update = ScheduledUpdate {
            kind,
            scheduled_at: at,
            target: self.valid.config.clone(),
            new_subscription_id: None,
            strategy,
            coupon: None,
            tax_percentage: None,
            payment_collection_method: None,
            metadata: None,
        };
        // A plan change gives the new subscription what its request brought. A change in
        // place keeps the subscription's own terms (its request carries them over) and
        // applies a new code and new metadata now, whatever the timing.
        if kind == ScheduledUpdateType::PlanChange {
            let id = self.new_id(Some(current))?;
            update.coupon = self.applied_coupon(at, &id);
            update.new_subscription_id = Some(id);
            update.tax_percentage = self.request.tax_percentage;
            update.payment_collection_method = self.request.payment_collection_method;
            update.metadata =
                (!self.request.metadata.is_empty()).then(|| self.request.metadata.clone());
        }
        Ok(update)
    }

    /// The currency the request's configuration is billed in: its prices', else its usage
    /// prices'.
    fn new_currency(&self) -> Option<Currency> {
        crate::usage::invoice_currency(self.catalog, &self.valid.config, self.valid.quote.currency)
    }

    /// Refuses to move `current` at `at` into a currency its coupon has no amount in
    /// (`CouponCurrencyMismatch`, as for a code redeemed there), when the coupon goes along
    /// (the request brings none) and can still discount an invoice from then on: the
    /// customer keeps the change's outcome in the open instead of losing the coupon
    /// without a word. A spent or run-out coupon goes along harmlessly.
    fn carried_coupon_fits(&self, current: &Subscription, at: DateTime<Utc>) -> Result<(), Error> {
        if self.valid.coupon.is_some() {
            return Ok(());
        }
        let Some((coupon, applied)) =
            crate::coupon::of_applied(self.catalog, current.coupon.as_ref())
        else {
            return Ok(());
        };
        if !crate::coupon::covers(coupon, applied, at) {
            return Ok(());
        }
        crate::coupon::check_currency(coupon, self.new_currency()).map_err(|e| {
            Error::new(
                ErrorCode::CouponCurrencyMismatch,
                format!(
                    "{}: the change carries the coupon of `{}` over unless the request brings a promotion code of its own",
                    e.message(),
                    current.id
                ),
            )
        })
    }

    /// Refuses a plan change scheduled for `at` into another currency when the clock would
    /// carry something of `current` onto the new subscription's first invoice: the credit
    /// for its unused time (a change before its period end), its waiting prorations, or the
    /// usage of its closing period. At the period end nothing is credited, so a change
    /// without prorations or usage waiting may move to another currency.
    fn scheduled_in_one_currency(
        &self,
        current: &Subscription,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let Some(new) = self.new_currency() else {
            return Ok(());
        };
        let charged = current.charges.first().map(|c| c.currency);
        let early = current.current_period.is_some_and(|p| at < p.end);
        let carried = [
            (charged.filter(|_| early), "the credit for its unused time"),
            (
                charged.filter(|_| !current.pending_lines.is_empty()),
                "its waiting prorations",
            ),
            (
                crate::usage::usage_prices(self.catalog, &current.config)
                    .first()
                    .map(|p| p.currency),
                "the usage of its closing period",
            ),
        ];
        match carried
            .into_iter()
            .find_map(|(old, what)| old.filter(|&old| old != new).map(|old| (old, what)))
        {
            Some((old, what)) => Err(other_currency(current, old, new, what)),
            None => Ok(()),
        }
    }

    /// Stores `update` on `current`, replacing any scheduled one.
    fn schedule(&self, d: &mut ProvisionDecision, current: &Subscription, update: ScheduledUpdate) {
        d.is_scheduled = true;
        d.subscription = Some(current.id.clone());
        d.effects.schedule.push(ScheduleChange {
            subscription: current.id.clone(),
            update: Some(update),
        });
    }

    /// A migration's result `sub` keeps the change the customer scheduled, at the latest
    /// versions ([`InPlace::carried`]), and drops an earlier scheduled migration; an
    /// update's result keeps the scheduled migration, moved to the update's configuration.
    fn carry_scheduled(
        &self,
        d: &mut ProvisionDecision,
        change: &InPlace<'_>,
        sub: &mut Subscription,
    ) {
        if change.kind != ScheduledUpdateType::Migration {
            // A scheduled migration goes on, due when the period the change leaves the
            // subscription in ends.
            if let Some(migration) = change.carried_migration() {
                let mut migration = migration.clone();
                if let Some(period) = sub.current_period {
                    migration.scheduled_at = period.end;
                }
                d.explanation.push(Step::MigrationGoesOn {
                    subscription: sub.id.clone(),
                    at: migration.scheduled_at,
                });
                sub.scheduled_updates = vec![migration];
            }
            return;
        }
        sub.scheduled_updates.clear();
        if let Some(carried) = change.carried_change() {
            d.explanation.push(self.kept_step(change.current, carried));
            sub.scheduled_updates.push(carried.clone());
        }
    }

    /// The step of a migration keeping `current`'s scheduled change as `carried`.
    fn kept_step(&self, current: &Subscription, carried: &ScheduledUpdate) -> Step {
        Step::ScheduledChangeMigrated {
            subscription: current.id.clone(),
            at: carried.scheduled_at,
            moved: carried.target.plan == current.config.plan,
        }
    }

    /// When a change timed by `strategy` applies to `current`; `None` for now.
    fn scheduled_at(
        &self,
        strategy: ScheduleStrategy,
        current: &Subscription,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(
            match (strategy, current.current_period, current.billing_anchor) {
                (ScheduleStrategy::EndOfBillingPeriod, Some(period), _) => Some(period.end),
                (ScheduleStrategy::EndOfBillingMonth, Some(period), Some(anchor)) => {
                    let month = PeriodSeries::of_months(anchor, 1)
                        .containing(self.now)?
                        .map_or(period.end, |m| m.end);
                    Some(month.min(period.end))
                }
                _ => None,
            },
        )
    }

    /// `current` with the request's changes, before any timing or money: the new
    /// configuration, a newly redeemed coupon, new metadata and a new trial end.
    fn updated(&self, change: &InPlace<'_>) -> Result<Subscription, Error> {
        let current = change.current;
        let mut next = current.clone();
        next.config = self.valid.config.clone();
        if let Some(coupon) = self.applied_coupon(self.now, &current.id) {
            next.coupon = Some(coupon);
        }
        if let Some(metadata) = change.metadata {
            next.metadata = metadata.clone();
        }
        let unbilled = current.status.is_waiting();
        if unbilled && !current.is_trial && next.config.billing_period != current.billing_period() {
            // Nothing billed yet: its first period takes the new length from the same start.
            let start = current
                .current_period
                .map_or(current.start_date, |p| p.start);
            next.current_period = first_period(start, next.config.billing_period)?;
        }
        if let Some(end) = change.trial_end {
            let waiting = current.status == SubscriptionStatus::NotStarted;
            if !current.is_trial || !(waiting || current.status == SubscriptionStatus::InTrial) {
                return Err(Error::new(
                    ErrorCode::InvalidSubscriptionStatus,
                    format!(
                        "subscription `{}` is not a trial: `trialEndDate` does not apply",
                        current.id
                    ),
                ));
            }
            if end <= self.now.max(current.start_date) {
                return Err(Error::new(
                    ErrorCode::InvalidArgumentError,
                    format!("`trialEndDate` `{end}` is not after the trial's start and now"),
                ));
            }
            next.trial_end = Some(end);
            next.billing_anchor = Some(end);
            next.current_period = Some(Period {
                start: current.start_date,
                end,
            });
            if self.state.conversion_of(current).is_some() {
                // Its conversion moves with its end.
                next.cancellation_date = Some(end);
            } else if let (Some(at), Some(_)) =
                (current.cancellation_date, current.pending_cancel_reason)
            {
                // A cancellation for the trial's end follows its end, and one the new end
                // comes before moves to it: a trial is canceled at most up to its end, and
                // the cancellation wins over the conversion (FORMAT.md §6).
                if Some(at) == current.trial_end || at > end {
                    next.cancellation_date = Some(end);
                }
            }
        }
        Ok(next)
    }

    /// The waiting subscription `trial` converts into, moved to start at the trial's new
    /// end `end`, in its first period from there.
    fn moved_conversion(
        &self,
        trial: &Subscription,
        end: DateTime<Utc>,
    ) -> Result<Option<Subscription>, Error> {
        let Some(waiting) = self.state.conversion_of(trial) else {
            return Ok(None);
        };
        let mut moved = waiting.clone();
        moved.start_at(end)?;
        Ok(Some(moved))
    }

    /// An existing subscription changed in place: a trial, a waiting subscription or one
    /// waiting for payment takes the change now without money; an active one is timed and
    /// prorated like a plan change.
    fn update_in_place(
        &self,
        d: &mut ProvisionDecision,
        change: &InPlace<'_>,
    ) -> Result<(), Error> {
        let current = change.current;
        let mut next = self.updated(change)?;
        d.subscription = Some(current.id.clone());
        let direction = if let Some(decided) = change.decided {
            decided
        } else if current.config == next.config {
            ChangeType::None
        } else {
            self.classify(current)?
        };
        d.change_type = direction;
        if current.status != SubscriptionStatus::Active || current.is_trial {
            if direction != ChangeType::None {
                d.explanation.push(Step::ChangedUncharged {
                    subscription: current.id.clone(),
                    status: current.status,
                });
            }
            // Any upgrade the customer asks for clears a scheduled cancellation (FORMAT.md
            // §6); a migration is the vendor's move and leaves it, and a trial's conversion
            // into a waiting subscription is no cancellation.
            if direction == ChangeType::Upgrade
                && change.kind != ScheduledUpdateType::Migration
                && next.pending_cancel_reason != Some(CancelReason::TrialConverted)
            {
                next.clear_pending_cancellation();
            }
            let moved = match change.trial_end {
                Some(end) if next.trial_end != current.trial_end => {
                    self.moved_conversion(current, end)?
                }
                _ => None,
            };
            self.carry_scheduled(d, change, &mut next);
            if next != *current {
                d.effects.replace.push(next);
            }
            d.effects.replace.extend(moved);
            return Ok(());
        }
        if current.config == next.config {
            self.keep_configuration(
                d,
                current,
                "nothing is prorated",
                change.names_configuration,
                change.carried_migration(),
            );
            if next != *current {
                d.effects.replace.push(next);
            }
            return Ok(());
        }
        let strategy = self.strategy(current, direction, change.timing)?;
        if let Some(at) = self.scheduled_at(strategy, current)? {
            self.scheduled_in_one_currency(current, at)?;
            self.carried_coupon_fits(current, at)?;
            let carried = change.carried_change();
            let mut update = match carried {
                Some(carried) => carried.clone(),
                None => self.scheduled_update(current, change.kind, at, strategy)?,
            };
            // A scheduled migration goes into the customer's change.
            let migration = change.carried_migration();
            if let Some(migration) = migration {
                update.target = migration.target.clone();
            }
            next.config = current.config.clone();
            // The customer asks how the subscription goes on after a pending cancellation
            // would have ended it: the cancellation is withdrawn. A migration is the
            // vendor's move, not the customer's, and leaves it.
            let ended_first = next.cancellation_date.is_some_and(|end| end <= at);
            if ended_first && change.kind != ScheduledUpdateType::Migration {
                withdraw_cancellation(d, &mut next);
            }
            if next != *current {
                d.effects.replace.push(next);
            }
            let step = match carried {
                Some(carried) => self.kept_step(current, carried),
                None => Step::UpdateScheduled {
                    direction,
                    subscription: current.id.clone(),
                    at,
                },
            };
            self.schedule(d, current, update);
            d.explanation.push(step);
            if migration.is_some() {
                d.explanation.push(Step::MigrationGoesOn {
                    subscription: current.id.clone(),
                    at,
                });
            }
            return Ok(());
        }
        self.change_now(d, current, direction)?;
        self.carried_coupon_fits(current, self.now)
    }

    /// A plan change applied now: the current subscription ends, the new one starts, and
    /// the unused part of what was charged is credited against the new configuration.
    fn change_now(
        &self,
        d: &mut ProvisionDecision,
        current: &Subscription,
        direction: ChangeType,
    ) -> Result<(), Error> {
        let now = self.now;
        let anchor_choice = self.request.billing_cycle_anchor.unwrap_or_default();
        let keep_period = anchor_choice == BillingCycleAnchor::Unchanged
            && current.status == SubscriptionStatus::Active
            && current.billing_period().is_some()
            && current.billing_period() == self.valid.config.billing_period
            && current.current_period.is_some_and(|p| p.contains(now));
        let kept = current
            .billing_anchor
            .zip(current.current_period)
            .filter(|_| keep_period);
        let mut sub = match self.in_place {
            Some(change) => self.updated(change)?,
            None => {
                let mut sub =
                    self.new_subscription(self.new_id(Some(current))?, now, &d.trial, kept)?;
                self.carry_over(&mut sub, current);
                d.end(&current.id, now, CancelReason::UpgradeOrDowngrade);
                sub
            }
        };
        // An applied plan change leaves the replaced subscription's pending cancellation
        // behind (SPEC.md §3: the new subscription starts without one); a change in place
        // keeps it, unless it is an upgrade the customer asked for: a migration is the
        // vendor's move and leaves it.
        let migration = self
            .in_place
            .is_some_and(|change| change.kind == ScheduledUpdateType::Migration);
        if direction == ChangeType::Upgrade && !migration {
            sub.clear_pending_cancellation();
        }
        sub.scheduled_updates.clear();
        if self.valid.plan.pricing_type == PricingType::Paid {
            d.effects.paid_product = Some(self.valid.plan.product.clone());
        }
        self.reset_usage(d, current, &sub.config);
        // Credits with no invoice of the new subscription to go on.
        let mut leftover = Vec::new();
        if self.in_place.is_some() && !keep_period {
            // In place, a new billing period starts now; the start date stays.
            sub.billing_anchor = self.valid.config.billing_period.map(|_| now);
            sub.current_period = first_period(now, self.valid.config.billing_period)?;
            // A pending cancellation kept through it now ends a period paid after it was
            // asked: its `prorate: false` did not give that up, and the rest is credited.
            if sub.cancellation_date.is_some() {
                sub.credit_on_cancel = true;
            }
        }
        if let Some(change) = self.in_place {
            self.carry_scheduled(d, change, &mut sub);
        }
        let quote = &self.valid.quote;
        // A new subscription that writes no invoice (collection `NONE`) replacing one that
        // does: what the replaced one is owed and owes (its unused time, its usage, its
        // waiting prorations) is settled on its own closing invoice, as for a change that
        // charges nothing now, and the new one's charges are held unpaid.
        let old_invoiced = self
            .settings
            .writes_invoices(current.payment_collection_method);
        let new_invoiced = self.settings.writes_invoices(sub.payment_collection_method);
        let settled_apart = self.in_place.is_none() && old_invoiced && !new_invoiced;
        // What `current` was charged in, when the new configuration is priced in another
        // currency: its credits cannot go on the new configuration's invoice.
        let crossing = match (current.charges.first().map(|c| c.currency), quote.currency) {
            (Some(old), Some(new)) if old != new && !settled_apart => Some((old, new)),
            _ => None,
        };
        let refuse_crossing = |what: &str| match crossing {
            Some((old, new)) => Err(other_currency(current, old, new, what)),
            None => Ok(()),
        };
        // The lines: a credit per charge, a debit or charge per component.
        let room = current.charges.len().saturating_add(quote.components.len());
        let mut currency = quote
            .currency
            .or_else(|| current.charges.first().map(|c| c.currency));
        let behavior = self.request.proration_behavior.unwrap_or_default();
        if keep_period {
            let Some((anchor, period)) = kept else {
                return Err(Error::new(
                    ErrorCode::InvalidArgumentError,
                    "the current subscription has no billing period",
                ));
            };
            sub.billing_anchor = Some(anchor);
            sub.current_period = Some(period);
            let uncharged = self.never_charged(current)?;
            // Components of two different plans always differ; an add-on kept with the same
            // price and quantity is the same component: it keeps its charge and gets no lines.
            let kept =
                |ch: &ChargedComponent| quote.components.iter().any(|c| same_component(ch, c));
            let mut lines = Vec::with_capacity(room);
            credit_lines(
                &mut lines,
                self.catalog,
                current.charges.iter().filter(|ch| !kept(ch)),
                current.current_period.map(|p| p.start),
                now,
                ProrationEvent::Change,
                self.settings,
                self.state,
            )?;
            if behavior != ProrationBehavior::None && !lines.is_empty() {
                refuse_crossing("the credit for its unused time")?;
            }
            if settled_apart && behavior != ProrationBehavior::None {
                leftover.append(&mut lines);
            }
            let debits = debit_lines(
                quote,
                period,
                now,
                |c| !current.charges.iter().any(|ch| same_component(ch, c)),
                self.settings,
                self.state,
            )?;
            d.explanation.push(Step::ChangedKeepingPeriod {
                direction,
                subscription: current.id.clone(),
                period,
            });
            if uncharged {
                // The period a backdated start gave stays uncharged (SPEC.md §3: the first
                // charge is at the next period start): nothing was paid to credit, and a
                // debit for its rest would bill time given for nothing (a downgrade would
                // cost money, seats 3 → 5 → 3 more than 3 → 3). The renewal bills what is
                // held then; a plan change's new subscription takes the period over.
                sub.charges = current.charges.clone();
                d.explanation.push(Step::UnchargedPeriodKept {
                    subscription: current.id.clone(),
                    until: period.end,
                });
            } else if behavior == ProrationBehavior::None {
                let remaining = Period {
                    start: now,
                    end: period.end,
                };
                sub.charges = match currency {
                    Some(currency) => ledger_without_proration(
                        self.catalog,
                        current,
                        &sub.config,
                        quote,
                        currency,
                        remaining,
                    ),
                    None => current.charges.clone(),
                };
                d.explanation.push(Step::ProrationNone);
            } else if let Some(currency) = currency {
                let remaining = Period {
                    start: now,
                    end: period.end,
                };
                // The ledger follows the components' order, each entry kept or new.
                let mut charges = Vec::with_capacity(quote.components.len());
                let mut paid_entries = Vec::with_capacity(debits.len());
                for (i, c) in quote.components.iter().enumerate() {
                    if let Some(ch) = current.charges.iter().find(|ch| same_component(ch, c)) {
                        charges.push(kept_for(ch, c));
                    } else if let Some((_, l)) = debits.iter().find(|(j, _)| *j == i) {
                        paid_entries.push(charges.len());
                        let mut entry = charged(c, l, currency, remaining);
                        // Its debit waits: it is paid when an invoice bills it.
                        entry.waiting = behavior == ProrationBehavior::CreateProrations;
                        charges.push(entry);
                    }
                }
                sub.charges = charges;
                lines.extend(lines_only(debits));
                d.charge = Some(Charge {
                    subscription: sub.id.clone(),
                    reason: InvoiceReason::SubscriptionUpdate,
                    currency,
                    lines,
                    period: remaining,
                    proration_date: Some(now),
                    paid_entries,
                    prorations_wait: behavior == ProrationBehavior::CreateProrations,
                    pending_stays: self.in_place.is_some(),
                    earlier_prorations: 0,
                    settles_waiting: false,
                    ledger_to: None,
                });
                if behavior == ProrationBehavior::CreateProrations {
                    d.explanation.push(Step::ProrationsWait);
                }
            }
        } else {
            let mut lines = Vec::with_capacity(room);
            credit_lines(
                &mut lines,
                self.catalog,
                &current.charges,
                current.current_period.map(|p| p.start),
                now,
                ProrationEvent::Change,
                self.settings,
                self.state,
            )?;
            if !lines.is_empty() {
                refuse_crossing("the credit for its unused time")?;
            }
            if settled_apart {
                leftover.append(&mut lines);
            }
            // A change from a charged subscription is an update, also when its credit
            // comes to nothing (a fully discounted charge, the last day under
            // `KILL_BILL`); one from a free subscription, or one never charged (waiting
            // for payment, backdated, or held without an invoice and with nothing
            // invoiced before to credit), starts the new subscription's billing.
            let never_invoiced = lines.is_empty() && !old_invoiced;
            let reason = if current.billing_period().is_none()
                || current.charges.is_empty()
                || never_invoiced
            {
                InvoiceReason::SubscriptionCreation
            } else {
                InvoiceReason::SubscriptionUpdate
            };
            d.explanation.push(Step::ChangedWithNewPeriod {
                direction,
                subscription: current.id.clone(),
            });
            if sub.current_period.is_none() {
                leftover.append(&mut lines);
            } else if let (Some(currency), Some(period)) = (currency, sub.current_period) {
                let charges = charge_lines(quote, period, self.settings);
                sub.charges = ledger(&quote.components, &charges, currency, period).collect();
                lines.extend(lines_only(charges));
                if !lines.is_empty() {
                    d.charge = Some(Charge {
                        subscription: sub.id.clone(),
                        reason,
                        currency,
                        lines,
                        period,
                        paid_entries: (0..sub.charges.len()).collect(),
                        // The new period is billed now: the credit for the old one's
                        // unused time goes with it, not a whole new period later.
                        prorations_wait: false,
                        pending_stays: self.in_place.is_some(),
                        earlier_prorations: 0,
                        settles_waiting: true,
                        proration_date: (reason == InvoiceReason::SubscriptionUpdate)
                            .then_some(now),
                        ledger_to: None,
                    });
                }
            }
        }
        // Prorations the replaced subscription keeps for its next invoice are billed with
        // the change; a subscription changed in place keeps them for its own next invoice,
        // unless the change bills a new period now: that invoice takes them.
        let bills_pending_in_place = d.charge.as_ref().is_some_and(|c| c.settles_waiting);
        let waiting: &[InvoiceLine] = match self.in_place {
            Some(_) if !bills_pending_in_place => &[],
            _ => &current.pending_lines,
        };
        if !waiting.is_empty() {
            refuse_crossing("its waiting prorations")?;
        }
        // The usage reported so far in the closing period is billed now at the prices it
        // ran under when the change ends the period or its usage prices: a replacement, a
        // new period in place, or other usage prices in place (a migration). An update in
        // place that keeps both leaves it to the renewal, which bills it at the same prices.
        let bills_usage = self.in_place.is_none()
            || !keep_period
            || !crate::usage::same_usage_prices(self.catalog, &current.config, &sub.config);
        let mut usage = if bills_usage {
            self.closing_usage(d, current, keep_period)?
        } else {
            crate::usage::UsageBill::default()
        };
        // Usage reported under a subscription that writes no invoice (collection `NONE`) is
        // never billed, also when one that does replaces it: it closes here unbilled.
        if new_invoiced && !old_invoiced {
            usage = crate::usage::UsageBill::default();
        }
        if let (Some(new), Some(used), false) = (currency, usage.currency, settled_apart) {
            if new != used {
                return Err(other_currency(
                    current,
                    used,
                    new,
                    "the usage of its closing period",
                ));
            }
        }
        // A plan priced only by usage has no recurring charge to name the currency.
        currency = currency.or(usage.currency);
        let usage_currency = usage.currency;
        // The credits for unused time the closing invoice holds, before what else is owed.
        let credits_left = leftover.len();
        let owed = usage.lines.into_iter().chain(waiting.iter().cloned());
        match (d.charge.as_mut(), currency) {
            (Some(charge), _) if !settled_apart => {
                charge.lines.extend(owed);
                charge.earlier_prorations = waiting.len();
            }
            (None, Some(currency)) if self.in_place.is_some() => {
                // Nothing else is charged now (a plan priced only by usage): its usage goes
                // on an update invoice of its own.
                let lines: Vec<InvoiceLine> = owed.collect();
                if !lines.is_empty() {
                    d.charge = Some(Charge {
                        subscription: sub.id.clone(),
                        reason: InvoiceReason::SubscriptionUpdate,
                        currency,
                        lines,
                        period: Period {
                            start: now,
                            end: sub.current_period.map_or(now, |p| p.end.max(now)),
                        },
                        proration_date: None,
                        paid_entries: Vec::new(),
                        prorations_wait: false,
                        pending_stays: true,
                        earlier_prorations: 0,
                        settles_waiting: false,
                        ledger_to: None,
                    });
                }
            }
            _ => leftover.extend(owed),
        }
        if !waiting.is_empty() && self.in_place.is_some() {
            // Billed with the change: the subscription keeps none waiting.
            sub.pending_lines.clear();
        } else if !waiting.is_empty() {
            // Billed with the change: the ended record keeps none waiting.
            let mut billed = current.clone();
            billed.pending_lines.clear();
            d.effects.replace.push(billed);
        }
        if settled_apart {
            if let Some(held) = d.charge.take() {
                record_unpaid(&mut sub, |i| held.paid_entries.contains(&i));
            }
            // The closing invoice is in the currency the replaced subscription was billed in.
            currency = current
                .charges
                .first()
                .map(|c| c.currency)
                .or(usage_currency)
                .or(currency);
        }
        if let (false, Some(currency)) = (leftover.is_empty(), currency) {
            // The new subscription charges nothing now: what is owed on the replaced one,
            // its unused time and its usage, is settled on its own closing invoice.
            if !d.effects.replace.iter().any(|s| s.id == current.id) {
                d.effects.replace.push(current.clone());
            }
            d.charge = Some(Charge {
                subscription: current.id.clone(),
                reason: InvoiceReason::Cancellation,
                currency,
                period: Period {
                    start: now,
                    end: current.current_period.map_or(now, |p| p.end.max(now)),
                },
                // Its credits are this change's proration; the usage and the waiting
                // prorations billed with them are not.
                proration_date: (credits_left > 0).then_some(now),
                earlier_prorations: leftover.len().saturating_sub(credits_left),
                lines: leftover,
                paid_entries: Vec::new(),
                prorations_wait: false,
                pending_stays: false,
                settles_waiting: false,
                // A change that keeps the period keeps the entries it does not credit (its
                // unchanged components, or every one without proration) on the new
                // subscription, which takes them as this invoice leaves them. One that
                // starts a new period (or a free plan) has credited them all here.
                ledger_to: (self.in_place.is_none() && keep_period).then(|| sub.id.clone()),
            });
        }
        if self.in_place.is_some() {
            d.subscription = Some(sub.id.clone());
            d.effects.replace.push(sub);
        } else {
            d.create(sub);
        }
        Ok(())
    }

    /// Whether nothing was charged for `current`'s period although its configuration has a
    /// recurring price: the period a backdated start began in, whose first charge is the
    /// next period's (SPEC.md §3). Every other live period holds a ledger entry for each
    /// priced component (charged, or held unpaid without an invoice).
    ///
    /// # Errors
    /// `PlanNotFound` when its plan version is gone from the catalog.
    fn never_charged(&self, current: &Subscription) -> Result<bool, Error> {
        Ok(current.charges.is_empty()
            && !crate::pricing::recurring_amount(self.catalog, &current.config)?
                .components
                .is_empty())
    }

    /// The `USAGE` lines (and their currency) for what `current`, replaced or changed in
    /// place now, owes for usage in its current period, at its own prices; the usage they
    /// bill is recorded in the effects. When the change `keep_period`, a fluctuating
    /// meter's level is billed for the share of the period up to now (`usage::Split`).
    fn closing_usage(
        &self,
        d: &mut ProvisionDecision,
        current: &Subscription,
        keep_period: bool,
    ) -> Result<crate::usage::UsageBill, Error> {
        let Some(span) = crate::usage::closing_span(current, self.now) else {
            return Ok(crate::usage::UsageBill::default());
        };
        if keep_period {
            self.note_segments(d, current);
        }
        let prices = crate::usage::usage_prices(self.catalog, &current.config);
        if prices.is_empty() {
            return Ok(crate::usage::UsageBill::default());
        }
        let mut usage = self.state.usage.clone();
        let bill = crate::usage::bill_usage(
            self.catalog,
            &mut usage,
            current,
            span,
            self.settings.rounding,
            crate::usage::Split::of(self.settings, self.state, keep_period),
        )?;
        for price in prices {
            let taken = (current.resource.clone(), price.feature.clone(), span);
            if !d.effects.usage_billed.contains(&taken) {
                d.effects.usage_billed.push(taken);
            }
        }
        Ok(bill)
    }

    /// The period of `current` goes on under the new configuration, which bills the level
    /// of each meter it prices held from now on, for the rest of the period.
    fn note_segments(&self, d: &mut ProvisionDecision, current: &Subscription) {
        d.effects.usage_segments.extend(crate::usage::segments_for(
            self.catalog,
            &self.state.usage,
            current,
            &self.valid.config,
            self.now,
        ));
    }

    /// Stage P, then E's invoice: whether payment can be collected for what starts now.
    fn payment(&self, d: &mut ProvisionDecision) -> Result<(), Error> {
        if let Some(change) = self.in_place {
            return self.payment_in_place(d, change.current);
        }
        let Some(new) = d.effects.create.last() else {
            self.issue_invoice(d)?;
            return Ok(());
        };
        let starts_now = new.status.is_live();
        let needs_method = match d.trial.terms {
            Some(terms) => terms.requires_payment_method,
            None => self.valid.plan.pricing_type == PricingType::Paid,
        };
        let collects = self.settings.charges(new.payment_collection_method);
        let lacking = self
            .state
            .lacks_payment_method(self.settings, new.payment_collection_method);
        if !(starts_now && needs_method && lacking) {
            d.explanation
                .push(if starts_now && needs_method && collects {
                    Step::PaymentMethodPresent
                } else {
                    Step::NoPaymentMethodNeeded
                });
            self.issue_invoice(d)?;
            return Ok(());
        }
        let Some(options) = &self.request.checkout_options else {
            return Err(Error::new(
                ErrorCode::PaymentMethodNotFound,
                format!(
                    "customer `{}` has no payment method and no checkout options were given",
                    self.state.customer.id
                ),
            ));
        };
        let subscription_id = new.id.clone();
        d.status = ProvisionStatus::PaymentRequired;
        d.checkout = Some(CheckoutRequest {
            subscription_id: subscription_id.clone(),
            success_url: options.success_url.clone(),
            cancel_url: options.cancel_url.clone(),
        });
        d.effects = Effects {
            pending_checkout: Some(Box::new(PendingCheckout {
                subscription_id,
                request: self.request.clone(),
                trial: d.trial.clone(),
                start: Some(new.start_date),
                priced_in: Some(PricedIn {
                    country: new.config.country,
                }),
            })),
            ..Effects::default()
        };
        d.subscription = None;
        d.charge = None;
        d.is_scheduled = false;
        d.explanation.push(Step::CheckoutRequested);
        Ok(())
    }

    /// Stage P for a change in place: what it charges now is collected from the payment
    /// method the subscription is already paid with; without one, the change is refused.
    fn payment_in_place(
        &self,
        d: &mut ProvisionDecision,
        current: &Subscription,
    ) -> Result<(), Error> {
        self.issue_invoice(d)?;
        let charged = d
            .effects
            .invoice
            .as_ref()
            .is_some_and(|invoice| invoice.total > Decimal::ZERO);
        if charged
            && self
                .state
                .lacks_payment_method(self.settings, current.payment_collection_method)
        {
            return Err(Error::new(
                ErrorCode::PaymentMethodNotFound,
                format!(
                    "customer `{}` has no payment method to pay for the change of `{}`",
                    self.state.customer.id, current.id
                ),
            ));
        }
        Ok(())
    }

    /// Stage E's invoice: settles the decision's charge and issues it when the billing
    /// integration is on and the collection method writes invoices; prorations created with
    /// `CREATE_PRORATIONS` wait on the subscription for its next invoice instead.
    fn issue_invoice(&self, d: &mut ProvisionDecision) -> Result<(), Error> {
        let Some(charge) = d.charge.as_ref() else {
            return Ok(());
        };
        let Some(sub) = d.effects.subscription_mut(&charge.subscription) else {
            return Ok(());
        };
        if !self.settings.writes_invoices(sub.payment_collection_method) {
            // Nothing is charged: the components stay held but paid nothing, so a later
            // change credits nothing for them (SPEC.md §4). What was paid before, under a
            // method that invoiced, is still given back.
            record_unpaid(sub, |i| charge.paid_entries.contains(&i));
            let credits = invoice::credits_of_paid(self.settings, &charge.lines);
            if credits.is_empty() {
                return Ok(());
            }
            let billing = invoice::Billing {
                currency: charge.currency,
                apply_credit: true,
                rounding: self.settings.rounding,
                refuse_cut_amounts: true,
            };
            let settlement = invoice::settle(self.catalog, self.state, sub, &credits, billing)?;
            self.issue(
                d,
                charge.subscription.clone(),
                charge.reason,
                charge.currency,
                settlement,
            );
            return Ok(());
        }
        // With `CREATE_PRORATIONS` a change's prorations wait on the subscription for its
        // next invoice (after any it already has), and so does a credit for a debit that
        // stays waiting; full-period charges and usage are billed now.
        sub.pending_lines.extend(
            charge
                .lines
                .iter()
                .enumerate()
                .filter(|(i, l)| charge.waits(*i, l) && !l.amount.is_zero())
                .map(|(_, l)| l)
                .cloned(),
        );
        let settlement =
            charge.settle_now(self.catalog, self.state, sub, self.settings.rounding)?;
        let used = settlement.coupon_used.then(|| sub.clone());
        if let Some(to) = &charge.ledger_to {
            let settled = sub.charges.clone();
            if let Some(next) = d.effects.create.iter_mut().find(|s| &s.id == to) {
                carry_ledger(next, &settled);
            }
        }
        // An invoice that used the coupon used the redemption for every subscription
        // carrying it: a successor of the one it closes, a trial or a waiting start beside.
        if let Some(used) = used {
            for other in d.effects.create.iter_mut().chain(&mut d.effects.replace) {
                other.share_coupon_uses(&used);
            }
            for stored in &self.state.subscriptions {
                if stored.status.is_ended() || d.effects.subscription(&stored.id).is_some() {
                    continue;
                }
                let mut sibling = stored.clone();
                if sibling.share_coupon_uses(&used) {
                    d.effects.replace.push(sibling);
                }
            }
        }
        let subscription = charge.subscription.clone();
        let (reason, currency) = (charge.reason, charge.currency);
        self.issue(d, subscription, reason, currency, settlement);
        Ok(())
    }

    /// Issues the invoice of `settlement` for `subscription` now, unless it has no line.
    fn issue(
        &self,
        d: &mut ProvisionDecision,
        subscription: SubscriptionId,
        reason: InvoiceReason,
        currency: Currency,
        settlement: invoice::Settlement,
    ) {
        if settlement.lines.is_empty() {
            return;
        }
        let invoice = Invoice::from_settlement(
            invoice::next_invoice_id(self.state),
            self.state,
            subscription,
            self.now,
            reason,
            currency,
            settlement,
        );
        d.explanation.push(Step::Invoice {
            id: invoice.id.clone(),
            reason: invoice.reason,
            total: invoice.total,
            currency: invoice.currency,
        });
        d.effects.invoice = Some(invoice);
    }
}

/// Withdraws `sub`'s pending cancellation, if it has one, saying so in the explanation;
/// whether there was one.
fn withdraw_cancellation(d: &mut ProvisionDecision, sub: &mut Subscription) -> bool {
    let (Some(at), Some(_)) = (sub.cancellation_date, sub.pending_cancel_reason) else {
        return false;
    };
    sub.clear_pending_cancellation();
    d.explanation.push(Step::CancellationWithdrawn {
        subscription: sub.id.clone(),
        at,
    });
    true
}

/// `CurrencyMismatch`: `what` of `current`, in `old`, cannot go on an invoice in `new`.
fn other_currency(current: &Subscription, old: Currency, new: Currency, what: &str) -> Error {
    Error::new(
        ErrorCode::CurrencyMismatch,
        format!(
            "`{}` is billed in `{old}` and the new subscription in `{new}`: {what} cannot go on the new subscription's invoice, one invoice holds one currency",
            current.id
        ),
    )
}

/// A subscription id no subscription, pending checkout or scheduled change of the
/// customer has: `<customer>-sub-<n>`.
pub(crate) fn generate_id(state: &CustomerState) -> SubscriptionId {
    let mut n = state.subscriptions.len();
    loop {
        n = n.saturating_add(1);
        let id = SubscriptionId::new(crate::id::numbered(state.customer.id.as_str(), "sub", n));
        let taken = state.subscription(id.as_str()).is_some()
            || checkout_holds(state, &id)
            || scheduled_holder(state, &id, None).is_some();
        if !taken || n == usize::MAX {
            return id;
        }
    }
}

/// Whether a checkout waiting for its payment method holds `id` for its subscription.
fn checkout_holds(state: &CustomerState, id: &SubscriptionId) -> bool {
    state
        .pending_checkouts
        .iter()
        .any(|p| &p.subscription_id == id)
}

/// The subscription, other than `except`, with a plan change scheduled that holds `id` for
/// the subscription it will create.
fn scheduled_holder<'s>(
    state: &'s CustomerState,
    id: &SubscriptionId,
    except: Option<&SubscriptionId>,
) -> Option<&'s Subscription> {
    state.subscriptions.iter().find(|s| {
        except != Some(&s.id)
            && s.scheduled_updates
                .iter()
                .any(|u| u.new_subscription_id.as_ref() == Some(id))
    })
}

/// One `CHARGE` line per component for a full `period`, each rounded on its own.
pub(crate) fn charge_lines(
    quote: &RecurringAmount,
    period: Period,
    settings: &Settings,
) -> Vec<(usize, InvoiceLine)> {
    let Some(currency) = quote.currency else {
        return Vec::new();
    };
    quote
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                i,
                line(
                    c,
                    LineKind::Charge,
                    period,
                    currency.round(c.amount, settings.rounding),
                ),
            )
        })
        .collect()
}

/// The lines of `lines`, without the positions of their components.
pub(crate) fn lines_only(
    lines: Vec<(usize, InvoiceLine)>,
) -> impl ExactSizeIterator<Item = InvoiceLine> {
    lines.into_iter().map(|(_, l)| l)
}

fn line(component: &Component, kind: LineKind, period: Period, amount: Decimal) -> InvoiceLine {
    InvoiceLine {
        description: component.description.clone(),
        kind,
        period,
        quantity: component.quantity,
        unit_price: component.unit_price,
        amount,
        credits_waiting_debit: false,
        billing_period_start: None,
    }
}

/// Sets `sub`'s ledger to `lines` charged for `components` over `covered` by the clock; a
/// charge that writes no invoice (`invoiced` false) was never paid, so is never credited.
pub(crate) fn set_ledger(
    sub: &mut Subscription,
    components: &[Component],
    lines: &[(usize, InvoiceLine)],
    currency: Currency,
    covered: Period,
    invoiced: bool,
) {
    sub.charges = ledger(components, lines, currency, covered).collect();
    if !invoiced {
        record_unpaid(sub, |_| true);
    }
}

/// The ledger of `lines` charged for `components` over `covered`.
pub(crate) fn ledger<'a>(
    components: &'a [Component],
    lines: &'a [(usize, InvoiceLine)],
    currency: Currency,
    covered: Period,
) -> impl Iterator<Item = ChargedComponent> + 'a {
    lines
        .iter()
        .filter_map(move |(i, l)| components.get(*i).map(|c| charged(c, l, currency, covered)))
}

/// The ledger entry of `line`, charged for `component` over `covered`.
fn charged(
    component: &Component,
    line: &InvoiceLine,
    currency: Currency,
    covered: Period,
) -> ChargedComponent {
    ChargedComponent {
        source: component.source.clone(),
        full_amount: component.amount,
        quantity: component.quantity,
        unit_price: component.unit_price,
        currency,
        amount: line.amount,
        covered,
        waiting: false,
        held: None,
        discounted: None,
    }
}

/// Pushes onto `lines` a `PRORATION_CREDIT` line for the unused part of each of `charges` at
/// `t`: `charged × f(t; covered)`, negative, over `[t, covered.end)`, with the quantity and
/// unit price of the component charged. Zero lines are left out. `period_start` is the
/// start of the billing period the charges were made in (a coupon judges a credit for a
/// waiting debit by it, as it judges that debit).
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs of one proration, each used once"
)]
pub(crate) fn credit_lines<'s>(
    lines: &mut Vec<InvoiceLine>,
    catalog: &Catalog,
    charges: impl IntoIterator<Item = &'s ChargedComponent>,
    period_start: Option<DateTime<Utc>>,
    t: DateTime<Utc>,
    event: ProrationEvent,
    settings: &Settings,
    state: &CustomerState,
) -> Result<(), Error> {
    for charge in charges {
        if charge.covered.end <= t {
            continue;
        }
        let f = share(
            settings.proration,
            state.customer.timezone,
            charge.covered.start,
            t,
            charge.covered.end,
            event,
        )?;
        let amount = match charge.discounted.as_deref() {
            Some(share) => f.of_share(
                share.charged,
                share.paid,
                share.billed,
                charge.currency,
                settings.rounding,
            )?,
            None => f.of(charge.amount, charge.currency, settings.rounding)?,
        };
        if amount.is_zero() {
            continue;
        }
        lines.push(InvoiceLine {
            description: catalog.credit_description(&charge.source),
            kind: LineKind::ProrationCredit,
            period: Period {
                start: t,
                end: charge.covered.end,
            },
            quantity: charge.quantity,
            unit_price: charge.unit_price,
            amount: money::sub(Decimal::ZERO, amount)?,
            credits_waiting_debit: charge.waiting,
            billing_period_start: charge
                .waiting
                .then(|| period_start.unwrap_or(charge.covered.start)),
        });
    }
    Ok(())
}

/// `PRORATION_DEBIT` lines for the rest of `period` at the new configuration, for the
/// components `keep` accepts, with the position of the component each comes from.
pub(crate) fn debit_lines(
    quote: &RecurringAmount,
    period: Period,
    t: DateTime<Utc>,
    keep: impl Fn(&Component) -> bool,
    settings: &Settings,
    state: &CustomerState,
) -> Result<Vec<(usize, InvoiceLine)>, Error> {
    let Some(currency) = quote.currency else {
        return Ok(Vec::new());
    };
    let f = share(
        settings.proration,
        state.customer.timezone,
        period.start,
        t,
        period.end,
        ProrationEvent::Change,
    )?;
    let mut lines = Vec::with_capacity(quote.components.len());
    for (i, c) in quote.components.iter().enumerate().filter(|(_, c)| keep(c)) {
        let amount = f.of(c.amount, currency, settings.rounding)?;
        let mut debit = line(
            c,
            LineKind::ProrationDebit,
            Period {
                start: t,
                end: period.end,
            },
            amount,
        );
        debit.billing_period_start = Some(period.start);
        lines.push((i, debit));
    }
    Ok(lines)
}

/// Gives each entry `next` kept of another subscription's ledger the record of that entry
/// in `settled`, that ledger after an invoice billed it: what was paid, and whether it
/// still waits. An entry is the one it was kept from when it was charged for the same
/// component, over the same span, in the same currency (an entry kept keeps all three,
/// also in another component's place).
fn carry_ledger(next: &mut Subscription, settled: &[ChargedComponent]) {
    for entry in &mut next.charges {
        let kept_from = settled.iter().find(|s| {
            s.source == entry.source
                && s.full_amount == entry.full_amount
                && s.quantity == entry.quantity
                && s.unit_price == entry.unit_price
                && s.currency == entry.currency
                && s.covered == entry.covered
        });
        if let Some(record) = kept_from {
            entry.amount = record.amount;
            entry.waiting = record.waiting;
            entry.discounted.clone_from(&record.discounted);
        }
    }
}

/// The place a component fills in a configuration, whatever plan or version prices it:
/// the plan's `n`-th flat fee of the billing period, its per-unit price of a feature, or
/// an add-on's price. `None` for a usage price, or a source the catalog no longer has.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    PlanFlatFee(usize),
    PlanUnits(FeatureId),
    Addon(AddonId, usize),
}

/// The [`Slot`] of `source` in `config`.
fn slot(catalog: &Catalog, config: &Configuration, source: &ComponentSource) -> Option<Slot> {
    match source {
        ComponentSource::PlanPrice {
            plan,
            version,
            index,
        } => {
            let period = config.billing_period?;
            let prices = &catalog
                .plan(plan.as_str(), *version)?
                .price_set(config.country, period)
                .prices;
            match &prices.get(*index)?.model {
                PriceModel::FlatFee { .. } => Some(Slot::PlanFlatFee(
                    prices
                        .iter()
                        .take(*index)
                        .filter(|p| {
                            p.billing_period == period
                                && matches!(p.model, PriceModel::FlatFee { .. })
                        })
                        .count(),
                )),
                PriceModel::PerUnit { feature, .. } => Some(Slot::PlanUnits(feature.clone())),
                PriceModel::UsageBased { .. } => None,
            }
        }
        ComponentSource::AddonPrice { addon, index, .. } => {
            Some(Slot::Addon(addon.clone(), *index))
        }
    }
}

/// The ledger a change without proration that keeps the period (`prorationBehavior:
/// NONE`) leaves the new configuration, whose prices apply from the next period (SPEC.md
/// §4). Each new component takes the entry of the one whose place it takes (the same
/// component, or the one in its [`Slot`] in `current`'s configuration, in the same
/// currency): what was paid for that place stays paid, for the span it covered, so a later
/// change prorates only the components it changes (FORMAT.md §6) and credits no more than
/// was paid. A component taking no one's place is held unpaid until the period ends. An
/// entry whose place no component takes stays as it is, paid: a later change or
/// cancellation credits it. A period charged in another currency keeps its ledger as it
/// is: a later change knows by it that the period was charged in that currency.
fn ledger_without_proration(
    catalog: &Catalog,
    current: &Subscription,
    config: &Configuration,
    quote: &RecurringAmount,
    currency: Currency,
    remaining: Period,
) -> Vec<ChargedComponent> {
    if current.charges.iter().any(|e| e.currency != currency) {
        return current.charges.clone();
    }
    let mut old: Vec<Option<&ChargedComponent>> = current.charges.iter().map(Some).collect();
    let mut ledger = Vec::with_capacity(old.len().max(quote.components.len()));
    for c in &quote.components {
        let same = old
            .iter()
            .position(|e| e.is_some_and(|e| same_component(e, c)));
        let taken = same.or_else(|| {
            let place = slot(catalog, config, &c.source)?;
            old.iter().position(|e| {
                e.is_some_and(|e| {
                    let stands_for = e.held.as_ref().map_or(&e.source, |h| &h.source);
                    slot(catalog, &current.config, stands_for).as_ref() == Some(&place)
                })
            })
        });
        let entry = match taken.and_then(|i| old.get_mut(i)).and_then(Option::take) {
            Some(kept) => kept_for(kept, c),
            None => ChargedComponent {
                source: c.source.clone(),
                full_amount: c.amount,
                quantity: c.quantity,
                unit_price: c.unit_price,
                currency,
                amount: Decimal::ZERO,
                covered: remaining,
                waiting: false,
                held: None,
                discounted: None,
            },
        };
        ledger.push(entry);
    }
    ledger.extend(old.into_iter().flatten().cloned());
    ledger
}

/// Whether ledger entry `charge` is kept for `component`: the one it was charged for, or
/// the one a change without proration put in its place ([`ChargedComponent::held`]).
/// Either is held paid until the period ends, so a change to either prorates nothing.
pub(crate) fn same_component(charge: &ChargedComponent, component: &Component) -> bool {
    charged_for(charge, component)
        || charge
            .held
            .as_ref()
            .is_some_and(|h| h.source == component.source && h.full_amount == component.amount)
}

/// Whether ledger entry `charge` was charged for `component`.
fn charged_for(charge: &ChargedComponent, component: &Component) -> bool {
    charge.source == component.source && charge.full_amount == component.amount
}

/// Entry `charge` kept for `component`, which it stands for ([`same_component`]) or whose
/// place it takes: it stands for `component` from now on.
fn kept_for(charge: &ChargedComponent, component: &Component) -> ChargedComponent {
    ChargedComponent {
        held: (!charged_for(charge, component)).then(|| {
            Box::new(HeldComponent {
                source: component.source.clone(),
                full_amount: component.amount,
            })
        }),
        ..charge.clone()
    }
}

/// Records on `sub` that the ledger entries at the positions `unpaid` accepts were charged
/// without an invoice, so were never paid: they keep their component (an unchanged one
/// still gets no proration lines) with nothing charged, so nothing to credit.
pub(crate) fn record_unpaid(sub: &mut Subscription, unpaid: impl Fn(usize) -> bool) {
    for (_, charge) in sub
        .charges
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| unpaid(*i))
    {
        charge.amount = Decimal::ZERO;
        charge.waiting = false;
        charge.discounted = None;
    }
}

/// Records on `sub` what its coupon did to an invoice: a used `ONCE` coupon is spent, and the
/// ledger entries the invoice paid for whose span the coupon covered keep what was actually
/// charged after the discount, so a later credit never returns more than was paid (an entry
/// it did not cover was paid in full). The invoice paid for the entries at the positions
/// `paid` accepts and, when it `bills_waiting`, for the entries whose debits waited on the
/// subscription (they are no longer waiting); an entry still waiting keeps its amount
/// until an invoice bills its debit.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub(crate) fn record_discount(
    sub: &mut Subscription,
    settlement: &invoice::Settlement,
    paid: impl Fn(usize) -> bool,
    bills_waiting: bool,
) -> Result<(), Error> {
    let covered = crate::coupon::covered(&settlement.lines, settlement.coverage)?;
    let discount = settlement.totals.discount_amount;
    // Each covered entry keeps its share of what was paid, `amount × paid / covered`: the
    // product first, so that a share that ends within 28 digits is exact (dividing first
    // would cut `paid / covered` and tip a later credit's rounding at a tie).
    let paid_of = if settlement.coupon_used && covered > Decimal::ZERO && !discount.is_zero() {
        Some((money::sub(covered, discount)?, covered))
    } else {
        None
    };
    if settlement.coupon_used {
        if let Some(applied) = sub.coupon.as_mut() {
            applied.invoices_discounted = applied.invoices_discounted.saturating_add(1);
        }
    }
    // Every entry of the ledger is charged in the current billing period: a coupon judges
    // it by that period's start, as it judges the line that charged it.
    let period_start = sub.current_period.map(|p| p.start);
    for (i, charge) in sub.charges.iter_mut().enumerate() {
        let billed = if charge.waiting {
            bills_waiting
        } else {
            paid(i)
        };
        if !billed {
            continue;
        }
        charge.waiting = false;
        let judged_by = period_start.map_or(charge.covered.start, |s| s.min(charge.covered.start));
        if let Some((paid, covered)) = paid_of.filter(|_| settlement.coverage.covers(judged_by)) {
            let share = match charge.discounted.take() {
                // Paid at a discount before: the two shares compose.
                Some(before) => PaidShare {
                    charged: before.charged,
                    paid: money::mul(before.paid, paid)?,
                    billed: money::mul(before.billed, covered)?,
                },
                None => PaidShare {
                    charged: charge.amount,
                    paid,
                    billed: covered,
                },
            };
            charge.amount = money::div(money::mul(share.charged, share.paid)?, share.billed)?;
            charge.discounted = Some(Box::new(share));
        }
    }
    Ok(())
}

/// Decides a request on the state of a customer who has a payment method now
/// (`provisionCustomer` giving one, a checkout's completion), once that method has paid for
/// what waits for one (SPEC.md §5): every `PAYMENT_PENDING` subscription is activated at
/// `now` first ([`crate::lifecycle::collect_pending_payments`]), so `decide` sees them
/// paid for. The exception is the non-trial subscription waiting for payment in the
/// request's `scope` when the request replaces it: it has been charged nothing, so it is
/// left uncharged to end replaced, rather than charged a period only to be credited back.
/// Whether the request replaces it is the decision's to say: decided with it left
/// waiting, the decision must end it; when it does not (its own configuration again, a
/// trial beside it), it is collected with the others and the request decided again.
///
/// Returns the state with the payments collected (before the decision's effects), the
/// decision, and what collecting did.
///
/// # Errors
/// Those of [`crate::lifecycle::collect_pending_payments`] and of `decide`.
pub(crate) fn decide_collecting_payments(
    catalog: &Catalog,
    state: CustomerState,
    scope: Option<(&ProductId, Option<&ResourceId>)>,
    now: DateTime<Utc>,
    settings: &Settings,
    decide: impl Fn(&CustomerState) -> Result<ProvisionDecision, Error>,
) -> Result<(CustomerState, ProvisionDecision, Vec<Event>), Error> {
    if !state.customer.has_payment_method || !state.has_pending_payments() {
        let decision = decide(&state)?;
        return Ok((state, decision, Vec::new()));
    }
    let waiting_in_scope = scope
        .and_then(|(product, resource)| state.pending_payment_in(product, resource))
        .map(|s| s.id.clone());
    if let Some(replaced) = &waiting_in_scope {
        let (paid, collected) = crate::lifecycle::collect_pending_payments_except(
            catalog,
            &state,
            now,
            settings,
            Some(replaced),
        )?;
        let decision = decide(&paid)?;
        if decision.effects.ends(replaced) {
            return Ok((paid, decision, collected));
        }
    }
    let (paid, collected) =
        crate::lifecycle::collect_pending_payments(catalog, &state, now, settings)?;
    let decision = decide(&paid)?;
    Ok((paid, decision, collected))
}

/// The completion of a checkout: the customer has a payment method now, and the pending
/// subscription starts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckoutCompletion {
    /// The state with the payment method recorded and the checkout removed, before the
    /// decision's effects.
    pub state: CustomerState,
    /// The provisioning of the pending subscription, decided at completion; its trial is the
    /// one decided when the checkout was requested, moved to the completion, unless the
    /// customer has had its one trial of the product since
    /// ([`crate::trial::TrialOutcome::at_completion`]).
    pub decision: ProvisionDecision,
    /// What the clock did to reach the completion, and the `PAYMENT_PENDING` subscriptions
    /// the new payment method activated ([`crate::lifecycle::collect_pending_payments`]),
    /// with the invoices they issued; already in `state`.
    pub collected: Vec<Event>,
}

impl CheckoutCompletion {
    /// The customer's state after the completion.
    #[must_use]
    pub fn into_state(self, now: DateTime<Utc>) -> CustomerState {
        let mut state = self.state;
        self.decision.apply(&mut state, now);
        state
    }
}

/// Completes the pending checkout of `subscription_id`: the customer now has a payment
/// method, and the request that needed it is decided again at `now`, so the subscription
/// starts (and its billing is anchored) at the completion (FORMAT.md §6). The payment
/// method activates the customer's other `PAYMENT_PENDING` subscriptions first, but not
/// the one the checkout's subscription replaces: that one ends uncharged. One it keeps
/// (a checkout for its own configuration, a trial beside it) is activated too. What was
/// decided when the checkout was requested is carried: the trial decision (but a trial
/// the customer was eligible for, when it has had one of the product since), a trial
/// keeping its length from the completion, and the promotion code's active window and
/// first-purchase checks, and the prices it was requested at (`pricedIn`: the billing
/// country then, whatever the customer's is now). The rest (what it replaces, its change
/// type, its charge, the code's redemption limit) is decided at the completion, against
/// the state then.
///
/// # Errors
/// `SubscriptionNotFound` when no checkout is pending for the id; every error of
/// [`provision`] (the catalog or the customer's state may have changed since).
pub fn complete_checkout(
    catalog: &Catalog,
    state: &CustomerState,
    subscription_id: &str,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<CheckoutCompletion, Error> {
    state.ensure_active()?;
    let pending = state
        .pending_checkouts
        .iter()
        .find(|p| p.subscription_id.as_str() == subscription_id)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::SubscriptionNotFound,
                format!("no checkout is pending for subscription `{subscription_id}`"),
            )
        })?;
    let mut after = state.clone();
    after.customer.has_payment_method = true;
    after
        .pending_checkouts
        .retain(|p| p.subscription_id.as_str() != subscription_id);
    let mut request = pending.request.clone();
    request.start_date = None;
    request.subscription_id = Some(pending.subscription_id.clone());
    // The checkout bills the prices it was requested at, whatever country the customer
    // has now: the request names that country, or the decision sees none when the default
    // prices were asked for.
    let kept_country = pending.priced_in.map(|priced| priced.country);
    if let Some(Some(country)) = kept_country {
        request.billing_country_code = Some(country.to_string());
    }
    let unplaced = kept_country == Some(None) && state.customer.country.is_some();
    let scope = catalog
        .plan_or_latest(request.plan_id.as_str(), request.plan_version)
        .map(|plan| (&plan.product, request.resource_id.as_ref()));
    let (after, mut decision, collected) =
        decide_collecting_payments(catalog, after, scope, now, settings, |paid| {
            let without_country = unplaced.then(|| {
                let mut state = paid.clone();
                state.customer.country = None;
                state
            });
            decide(
                catalog,
                without_country.as_ref().unwrap_or(paid),
                &request,
                redemptions,
                now,
                settings,
                Mode {
                    stages: Stages::WithPayment,
                    in_place: None,
                    completing: Some(pending),
                },
            )
        })?;
    decision.explanation.push(Step::CheckoutCompleted {
        subscription: pending.subscription_id.clone(),
    });
    Ok(CheckoutCompletion {
        state: after,
        decision,
        collected,
    })
}
