//! The clock: everything that happens to subscriptions as time passes (SPEC.md §5).
//!
//! [`advance`] applies every transition due at or before `to`, in time order, and reports
//! each as an [`Event`] with the invoice it issued. At one instant, transitions apply in
//! this order: pending cancellations (so a cancellation at or before a trial's end wins
//! over its conversion), trial ends, scheduled changes (which apply instead of the renewal
//! due at the same instant), starts of waiting subscriptions, renewals, and the expiry of
//! pending payments. The end setup of a subscription ending at an instant looks ahead
//! within it: a trial of the scope converting then, or a waiting subscription starting
//! then, keeps the scope covered, so no free subscription is created only to be replaced
//! at once. Likewise a waiting non-trial subscription starting at an instant wins over a
//! change of its scope due then: a scheduled change of the live subscription is dropped,
//! and a trial due to convert ends without converting, so no period is charged that nobody
//! uses. Advancing to `a` and then to `b` gives exactly what advancing to `b` gives.
//!
//! # Rules decided here (the documents are silent)
//!
//! - Usage-based prices: whenever a billing period of an active, non-trial subscription
//!   closes, its usage is billed in `USAGE` lines over the closing span (which usage
//!   counts is decided in [`crate::usage`]). At a renewal they go on the `BILLING_CYCLE`
//!   invoice, priced at the configuration the period ran under (a scheduled update
//!   applied at the period end prices the closing period at the old configuration). A
//!   cancellation taking effect bills `[period start, end)` on its `CANCELLATION` invoice,
//!   beside the credit if any. A replaced subscription's usage goes, with the credit for
//!   its unused time, on the replacing subscription's first invoice; when that
//!   subscription charges nothing at that instant (a free plan, or it waits for payment),
//!   they are issued on a `CANCELLATION` invoice of the replaced subscription instead.
//!   Trials and subscriptions waiting for payment bill no usage.
//! - Usage resets: whenever one subscription replaces another (a scheduled plan change, a
//!   waiting subscription starting over the live one of its kind, a parallel trial
//!   converting over the paid one) or a scheduled update or migration changes the billing
//!   period, the product's `usageResetOnChange` setting applies
//!   ([`usage::reset_usage_on_change`]), after the closing usage is billed; each reset
//!   feature is reported as a `USAGE_RESET` event of the new subscription at the change.
//! - A scheduled update or migration that changes the billing period starts a new period
//!   series at the change (FORMAT.md §6), at a period end as well: it is invoiced
//!   `BILLING_CYCLE`, like the renewal it replaces. A scheduled plan change at the period
//!   end in the same billing period continues the old series instead (the new subscription
//!   keeps the anchor, see [`continued_period`]), as an update there does.
//! - Invoices that start a billing series also carry the subscription's pending
//!   prorations (`CREATE_PRORATIONS`), as a renewal does.
//! - A `PAYMENT_PENDING` subscription becomes `ACTIVE` through
//!   [`collect_pending_payments`] once the customer has a payment method: the clock first
//!   moves to that instant (a subscription whose first period has ended by then has
//!   expired and is not charged), then each one is activated, charged a full period from
//!   that instant (`SUBSCRIPTION_CREATION`) and anchored there; `startDate` stays. It is
//!   reported as `SUBSCRIPTION_STARTED` (the event marks every moment a subscription
//!   starts: at its start date, even when it then waits for payment, and again when it
//!   becomes active), followed by the `INVOICE_ISSUED` of its charge.
//! - A waiting trial whose plan's trial requires a payment method follows the rule of a
//!   paid start (SPEC.md §3.P): reaching its start when payment cannot be collected, it
//!   becomes `PAYMENT_PENDING` (no access), its pending window being the trial period as
//!   decided; not paid by the trial's end, it ends `CANCELED` with `PendingPaymentExpired`.
//!   Once the customer has a payment method, [`collect_pending_payments`] makes it
//!   `IN_TRIAL` at that instant without charging anything, and the trial keeps its length:
//!   its end (and a conversion into a waiting subscription at that end) moves by the time
//!   it waited. It is reported as `SUBSCRIPTION_STARTED`, as a paid one is.

use crate::catalog::{Catalog, EndSetup, PricingType, TrialEndBehavior};
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::id::{FeatureId, SubscriptionId};
use crate::invoice::{self, Billing, Invoice, InvoiceLine, InvoiceReason, LineKind};
use crate::money::Currency;
use crate::period::{Period, PeriodSeries, first_period};
use crate::pricing::{Configuration, recurring_amount};
use crate::proration::ProrationEvent;
use crate::provision::{self, generate_id, record_invoice};
use crate::settings::Settings;
use crate::subscription::{
    CancelReason, PaymentCollectionMethod, ScheduledUpdateType, Subscription, SubscriptionStatus,
};
use crate::usage::{self, PlanChange};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most transitions one call applies: far beyond any real timeline (a century of
/// monthly renewals for a hundred subscriptions), it only stops a runaway.
const MAX_TRANSITIONS: usize = 200_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// A waiting subscription started (or the end setup created one).
    SubscriptionStarted,
    /// A trial became a paid subscription.
    TrialConverted,
    /// A trial ran out.
    TrialExpired,
    /// A scheduled change applied.
    ScheduledUpdateApplied,
    /// A subscription ended.
    SubscriptionCanceled,
    /// A subscription entered a new billing period.
    SubscriptionRenewed,
    /// An invoice was issued.
    InvoiceIssued,
    /// A feature's recorded usage was reset by a plan or billing-period change.
    UsageReset,
}

/// A transition the clock applied. It serializes to its stored shape (a recorded answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// To which subscription.
    pub subscription: SubscriptionId,
    /// The invoice, for `INVOICE_ISSUED`.
    pub invoice: Option<Invoice>,
    /// The feature, for `USAGE_RESET`.
    pub feature: Option<FeatureId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    EndPending,
    TrialEnd,
    Scheduled,
    Start,
    Renew,
    ExpirePending,
}

/// Applies every transition due at or before `to` to a copy of `state`.
///
/// # Errors
/// `PlanNotFound` when a subscription's plan version left the catalog, `AmountTooLarge`,
/// `InvalidArgumentError` for dates out of range or a runaway timeline.
pub fn advance(
    catalog: &Catalog,
    state: &CustomerState,
    to: DateTime<Utc>,
    settings: &Settings,
) -> Result<(CustomerState, Vec<Event>), Error> {
    crate::period::check_instants(&[("to", Some(to))])?;
    let mut state = state.clone();
    let mut events = Vec::new();
    for _ in 0..MAX_TRANSITIONS {
        let Some((at, due, index)) = next_due(&state, to) else {
            return Ok((state, events));
        };
        let mut clock = Clock {
            catalog,
            settings,
            state: &mut state,
            events: &mut events,
            at,
        };
        match due {
            Due::EndPending => clock.end_pending(index)?,
            Due::TrialEnd => clock.trial_end(index)?,
            Due::Scheduled => clock.scheduled(index)?,
            Due::Start => clock.start(index)?,
            Due::Renew => {
                let closing = clock.close_usage(index)?;
                clock.renew(index, closing)?;
            }
            Due::ExpirePending => clock.end(index, CancelReason::PendingPaymentExpired)?,
        }
    }
    Err(Error::new(
        ErrorCode::InvalidArgumentError,
        format!("more than {MAX_TRANSITIONS} transitions before `{to}`"),
    ))
}

/// The billing period a change scheduled on `sub` for `at` to `target`'s billing period
/// starts with when it continues `sub`'s billing series: at `sub`'s period end, in the same
/// billing period (the anchor stays, so a month-end anchor keeps its day). `None` when the
/// change starts a new series at `at` (FORMAT.md §6: from a free plan, to another billing
/// period, or before the period's end). The clock and the estimate both ask here.
///
/// # Errors
/// `InvalidArgumentError` for a period past the last representable date.
pub(crate) fn continued_period(
    sub: &Subscription,
    at: DateTime<Utc>,
    target: Option<crate::period::BillingPeriod>,
) -> Result<Option<Period>, Error> {
    let (Some(period), Some(current)) = (target, sub.current_period) else {
        return Ok(None);
    };
    if sub.config.billing_period != Some(period) || current.end != at {
        return Ok(None);
    }
    let series = PeriodSeries::new(sub.billing_anchor.unwrap_or(current.start), period);
    Ok(series.containing(at)?.filter(|p| p.start == at))
}

/// Whether the clock's move to `to` goes differently when the customer has a payment
/// method, for a customer without one on record: a waiting subscription's start due by
/// then (a paid start collects, SPEC.md §3.P), a trial's end due by then
/// (`CONVERT_TO_PAID` converts only if payment is possible), a scheduled plan change due by
/// then (the new subscription starts like a waiting one), or a `PAYMENT_PENDING`
/// subscription still in its pending window at `to` (a payment method collects it). A
/// host that learns payment methods from its billing provider asks it before advancing
/// when this holds, and on a yes moves the clock with [`collect_pending_payments`], so
/// that the clock decides on the answer as `updateCustomer` giving it at `to` would.
#[must_use]
pub fn depends_on_payment_method(state: &CustomerState, to: DateTime<Utc>) -> bool {
    !state.customer.has_payment_method
        && state.subscriptions.iter().any(|sub| {
            let due = due_of(sub);
            let pending_at_to = sub.status == SubscriptionStatus::PaymentPending
                && !due.iter().any(|(at, _)| *at <= to);
            let changes_plan = || {
                sub.scheduled_updates
                    .first()
                    .is_some_and(|u| u.kind == ScheduledUpdateType::PlanChange)
            };
            pending_at_to
                || due.into_iter().any(|(at, due)| {
                    at <= to
                        && match due {
                            Due::Start | Due::TrialEnd => true,
                            Due::Scheduled => changes_plan(),
                            Due::Renew | Due::EndPending | Due::ExpirePending => false,
                        }
                })
        })
}

/// The earliest transition due at or before `to`: (instant, kind, subscription position).
fn next_due(state: &CustomerState, to: DateTime<Utc>) -> Option<(DateTime<Utc>, Due, usize)> {
    let mut best: Option<(DateTime<Utc>, Due, usize)> = None;
    for (index, sub) in state.subscriptions.iter().enumerate() {
        for (at, due) in due_of(sub) {
            if at <= to && best.is_none_or(|b| (at, due, index) < b) {
                best = Some((at, due, index));
            }
        }
    }
    best
}

fn due_of(sub: &Subscription) -> Vec<(DateTime<Utc>, Due)> {
    let mut due = Vec::new();
    if sub.status.is_ended() {
        return due;
    }
    if let (Some(at), Some(_)) = (sub.cancellation_date, sub.pending_cancel_reason) {
        due.push((at, Due::EndPending));
    }
    match sub.status {
        SubscriptionStatus::NotStarted => due.push((sub.start_date, Due::Start)),
        SubscriptionStatus::InTrial => {
            if let Some(end) = sub.trial_end {
                due.push((end, Due::TrialEnd));
            }
        }
        SubscriptionStatus::Active => {
            if let Some(update) = sub.scheduled_updates.first() {
                due.push((update.scheduled_at, Due::Scheduled));
            }
            if let (Some(period), Some(_)) = (sub.current_period, sub.config.billing_period) {
                due.push((period.end, Due::Renew));
            }
        }
        SubscriptionStatus::PaymentPending => {
            if let Some(period) = sub.current_period {
                due.push((period.end, Due::ExpirePending));
            }
        }
        SubscriptionStatus::Canceled | SubscriptionStatus::Expired => {}
    }
    due
}

/// Makes every `PAYMENT_PENDING` subscription of a customer who now has a payment method
/// `ACTIVE` at `now`: the clock first moves to `now`, then each is charged a full period
/// from `now` (`SUBSCRIPTION_CREATION`) and anchored there, its `startDate` unchanged
/// (FORMAT.md §6 "Payment and checkout"); a trial waiting for a payment method becomes
/// `IN_TRIAL` instead, charged nothing. Without a payment method only the clock moves.
///
/// # Errors
/// Those of [`advance`].
pub fn collect_pending_payments(
    catalog: &Catalog,
    state: &CustomerState,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<(CustomerState, Vec<Event>), Error> {
    collect_pending_payments_except(catalog, state, now, settings, None)
}

/// [`collect_pending_payments`], leaving `replaced` waiting: the operation collecting
/// ends it at once (a completed checkout's own subscription replaces it, a cancellation
/// ends it), so it is never charged.
///
/// # Errors
/// Those of [`advance`].
pub fn collect_pending_payments_except(
    catalog: &Catalog,
    state: &CustomerState,
    now: DateTime<Utc>,
    settings: &Settings,
    replaced: Option<&SubscriptionId>,
) -> Result<(CustomerState, Vec<Event>), Error> {
    let (mut state, mut events) = advance(catalog, state, now, settings)?;
    let pending: Vec<usize> = state
        .subscriptions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == SubscriptionStatus::PaymentPending && Some(&s.id) != replaced)
        .map(|(index, _)| index)
        .collect();
    for index in pending {
        let mut clock = Clock {
            catalog,
            settings,
            state: &mut state,
            events: &mut events,
            at: now,
        };
        let sub = clock.sub(index)?.clone();
        if !clock.can_start(&sub) {
            continue;
        }
        if sub.is_trial {
            clock.start_waiting_trial(index)?;
        } else {
            clock.activate(
                index,
                Carried::default(),
                EventKind::SubscriptionStarted,
                None,
            )?;
        }
    }
    Ok((state, events))
}

/// Lines of a subscription whose period closed early (credit for unused time, closing
/// usage), carried onto the invoice issued at that instant.
#[derive(Debug, Clone, Default)]
struct Carried {
    /// The subscription they bill.
    from: Option<Subscription>,
    /// Their currency.
    currency: Option<Currency>,
    lines: Vec<InvoiceLine>,
}

impl Carried {
    /// `lines` that bill `from`, in the currency it was charged in.
    fn of(from: &Subscription, lines: Vec<InvoiceLine>) -> Self {
        Self {
            currency: from.charges.first().map(|c| c.currency),
            lines,
            from: Some(from.clone()),
        }
    }

    /// The prorations `from` keeps for its next invoice, taken off it: billed when it ends
    /// or is replaced.
    fn pending(from: &mut Subscription) -> Self {
        if from.pending_lines.is_empty() {
            return Self::default();
        }
        let lines = std::mem::take(&mut from.pending_lines);
        Self::of(from, lines)
    }

    fn add(&mut self, other: Self) {
        self.from = self.from.take().or(other.from);
        self.currency = self.currency.or(other.currency);
        self.lines.extend(other.lines);
    }
}

struct Clock<'a> {
    catalog: &'a Catalog,
    settings: &'a Settings,
    state: &'a mut CustomerState,
    events: &'a mut Vec<Event>,
    at: DateTime<Utc>,
}

impl Clock<'_> {
    fn sub(&self, index: usize) -> Result<&Subscription, Error> {
        self.state
            .subscriptions
            .get(index)
            .ok_or_else(|| Error::new(ErrorCode::SubscriptionNotFound, "subscription vanished"))
    }

    fn sub_mut(&mut self, index: usize) -> Result<&mut Subscription, Error> {
        self.state
            .subscriptions
            .get_mut(index)
            .ok_or_else(|| Error::new(ErrorCode::SubscriptionNotFound, "subscription vanished"))
    }

    fn event(&mut self, kind: EventKind, subscription: &SubscriptionId, invoice: Option<Invoice>) {
        self.events.push(Event {
            kind,
            at: self.at,
            subscription: subscription.clone(),
            invoice,
            feature: None,
        });
    }

    /// Whether payment can be collected for `sub` now: it needs none, or the customer has
    /// a payment method.
    fn can_collect(&self, sub: &Subscription) -> bool {
        let paid = sub
            .plan(self.catalog)
            .is_ok_and(|p| p.pricing_type == PricingType::Paid);
        !(paid
            && self
                .state
                .lacks_payment_method(self.settings, sub.payment_collection_method))
    }

    /// Whether the waiting `sub` can start now: a trial whose plan requires a payment method
    /// follows the rule of a paid start (SPEC.md §3.P), other trials need nothing.
    fn can_start(&self, sub: &Subscription) -> bool {
        if !sub.is_trial {
            return self.can_collect(sub);
        }
        let required = sub.plan(self.catalog).is_ok_and(|p| {
            p.default_trial
                .is_some_and(|trial| trial.requires_payment_method)
        });
        !(required
            && self
                .state
                .lacks_payment_method(self.settings, sub.payment_collection_method))
    }

    /// A trial that waited for a payment method starts now, keeping its length: its end
    /// (and a conversion into a waiting subscription at that end) moves by the time it
    /// waited. It charges nothing.
    fn start_waiting_trial(&mut self, index: usize) -> Result<(), Error> {
        let at = self.at;
        let sub = self.sub(index)?.clone();
        let waited =
            at.signed_duration_since(sub.current_period.map_or(sub.start_date, |p| p.start));
        let end = sub
            .trial_end
            .map(|end| crate::period::within_range(end.checked_add_signed(waited)))
            .transpose()?;
        let conversion = self.state.conversion_of(&sub).map(|s| s.id.clone());
        self.state.trial_history.insert(sub.product.clone());
        let stored = self.sub_mut(index)?;
        stored.status = SubscriptionStatus::InTrial;
        stored.trial_end = end;
        if stored.billing_anchor.is_some() {
            stored.billing_anchor = end;
        }
        stored.current_period = end.map(|end| Period { start: at, end });
        if stored.pending_cancel_reason == Some(CancelReason::TrialConverted) {
            stored.cancellation_date = end;
        }
        if let (Some(id), Some(end)) = (conversion, end) {
            self.state.subscription_mut(id.as_str())?.start_at(end)?;
        }
        self.event(EventKind::SubscriptionStarted, &sub.id, None);
        Ok(())
    }

    /// The usage of `index`'s billing period up to now, which closes now; nothing for a
    /// subscription that is not billed (a trial, one waiting for payment, a free one).
    fn close_usage(&mut self, index: usize) -> Result<Carried, Error> {
        let sub = self.sub(index)?.clone();
        let Some(span) = usage::closing_span(&sub, self.at) else {
            return Ok(Carried::default());
        };
        let split = usage::Split::of(self.settings, self.state, false);
        let bill = usage::bill_usage(
            self.catalog,
            &mut self.state.usage,
            &sub,
            span,
            self.settings.rounding,
            split,
        )?;
        Ok(Carried {
            from: Some(sub),
            currency: bill.currency,
            lines: bill.lines,
        })
    }

    /// Applies the product's usage reset for a change from `from` to `to`'s configuration,
    /// reporting each reset feature as a `USAGE_RESET` event of `to`.
    fn reset_usage(&mut self, from: &Configuration, to: &Subscription) {
        let reset = usage::reset_usage_on_change(
            self.catalog,
            &mut self.state.usage,
            &PlanChange {
                product: &to.product,
                resource: to.resource.as_ref(),
                from,
                to: &to.config,
            },
        );
        for feature in reset {
            self.events.push(Event {
                kind: EventKind::UsageReset,
                at: self.at,
                subscription: to.id.clone(),
                invoice: None,
                feature: Some(feature),
            });
        }
    }

    /// Issues carried lines on their own `CANCELLATION` invoice of the subscription they
    /// bill, when the instant has no other invoice to put them on.
    fn issue_carried(&mut self, carried: Carried) -> Result<(), Error> {
        let (Some(from), Some(currency)) = (carried.from, carried.currency) else {
            return Ok(());
        };
        self.issue(&from, carried.lines, currency, InvoiceReason::Cancellation)
    }

    /// Ends the subscription at the current instant and applies the end setup (unless it was
    /// replaced, converted or revoked).
    fn end(&mut self, index: usize, reason: CancelReason) -> Result<(), Error> {
        let at = self.at;
        let sub = self.sub_mut(index)?;
        // A cancellation with REVOKE_ENTITLEMENTS skips the end setup, and so does the end of
        // a subscription that never started: the customer loses nothing it had.
        let skip_end_setup = sub.revoke_on_cancel || sub.status == SubscriptionStatus::NotStarted;
        sub.end(at, reason);
        let id = sub.id.clone();
        self.event(
            if reason == CancelReason::TrialEnded {
                EventKind::TrialExpired
            } else {
                EventKind::SubscriptionCanceled
            },
            &id,
            None,
        );
        if !skip_end_setup
            && !matches!(
                reason,
                CancelReason::TrialConverted
                    | CancelReason::UpgradeOrDowngrade
                    | CancelReason::CustomerArchived
            )
        {
            self.end_setup(index)?;
        }
        Ok(())
    }

    /// A pending cancellation takes effect: the rest of the period is credited if asked,
    /// and the usage of the period closing is billed, on one `CANCELLATION` invoice.
    fn end_pending(&mut self, index: usize) -> Result<(), Error> {
        let sub = self.sub(index)?.clone();
        let reason = sub
            .pending_cancel_reason
            .unwrap_or(CancelReason::ScheduledCancellation);
        let mut carried = if sub.credit_on_cancel {
            self.unused_time(&sub, ProrationEvent::Cancellation)?
        } else {
            Carried::default()
        };
        carried.add(self.close_usage(index)?);
        carried.add(Carried::pending(self.sub_mut(index)?));
        self.issue_carried(carried)?;
        self.end(index, reason)
    }

    /// The product's end setup: a scope left without a live non-trial subscription moves
    /// to the product's free plan, if it has one. A subscription that starts or a trial
    /// that converts at this same instant is the scope's live non-trial subscription
    /// already: the end setup then does nothing.
    fn end_setup(&mut self, index: usize) -> Result<(), Error> {
        let ended = self.sub(index)?.clone();
        let Some(product) = self.catalog.product(ended.product.as_str()) else {
            return Ok(());
        };
        let EndSetup::DowngradeToFree(plan_id) = &product.journey.end else {
            return Ok(());
        };
        let covered = self.state.subscriptions.iter().any(|s| {
            s.in_scope(&ended.product, ended.resource.as_ref()) && self.holds_scope_now(s)
        });
        if covered {
            return Ok(());
        }
        let Some(plan) = self.catalog.latest_plan(plan_id.as_str()) else {
            return Ok(());
        };
        let mut free = ended.clone();
        free.id = generate_id(self.state);
        free.config = crate::pricing::Configuration {
            plan: plan.id.clone(),
            plan_version: plan.version,
            billing_period: None,
            country: ended.config.country,
            units: Default::default(),
            addons: Vec::new(),
        };
        free.is_trial = false;
        free.status = SubscriptionStatus::Active;
        free.start_date = self.at;
        free.end_date = None;
        free.trial_end = None;
        free.trial_end_behavior = None;
        free.billing_anchor = None;
        free.current_period = None;
        free.clear_pending_cancellation();
        free.cancel_reason = None;
        free.scheduled_updates.clear();
        free.coupon = None;
        // A collection method was chosen for the subscription that ended; carried into the
        // free plan, it would pass to the plan the customer later changes to.
        free.payment_collection_method = PaymentCollectionMethod::default();
        free.charges.clear();
        free.pending_lines.clear();
        let id = free.id.clone();
        self.state.subscriptions.push(free);
        self.event(EventKind::SubscriptionStarted, &id, None);
        Ok(())
    }

    /// Settles and issues an invoice for `sub` (when invoices are written), recording the
    /// coupon's use on the subscription. One that writes none (collection `NONE`) still
    /// issues its credits for what was paid before, alone.
    fn issue(
        &mut self,
        sub: &Subscription,
        lines: Vec<InvoiceLine>,
        currency: crate::money::Currency,
        reason: InvoiceReason,
    ) -> Result<(), Error> {
        let invoiced = self.settings.writes_invoices(sub.payment_collection_method);
        let lines = if invoiced {
            lines
        } else {
            invoice::credits_of_paid(self.settings, &lines)
        };
        if lines.is_empty() {
            return Ok(());
        }
        let billing = Billing {
            currency,
            apply_credit: true,
            rounding: self.settings.rounding,
            refuse_cut_amounts: false,
        };
        let settlement = invoice::settle(self.catalog, self.state, sub, &lines, billing)?;
        if settlement.lines.is_empty() {
            return Ok(());
        }
        if let (true, Ok(stored)) = (invoiced, self.state.subscription_mut(sub.id.as_str())) {
            provision::record_discount(stored, &settlement, |_| true, true)?;
            if settlement.coupon_used {
                // The subscriptions carrying the same redemption (a successor) used it too.
                let used = stored.clone();
                for other in &mut self.state.subscriptions {
                    other.share_coupon_uses(&used);
                }
            }
        }
        let invoice = Invoice::from_settlement(
            invoice::next_invoice_id(self.state),
            self.state,
            sub.id.clone(),
            self.at,
            reason,
            currency,
            settlement,
        );
        record_invoice(self.state, invoice.clone());
        self.event(EventKind::InvoiceIssued, &sub.id, Some(invoice));
        Ok(())
    }

    /// Starts a billing period of `index` at the current instant: a new period series
    /// anchored now, the first period charged with the pending prorations, and `carried`
    /// lines (of a replaced subscription, or of the period the change closes) on the same
    /// invoice. When `index` charges nothing, the carried lines are issued on their own.
    fn bill_first_period(
        &mut self,
        index: usize,
        carried: Carried,
        reason: InvoiceReason,
        continued: Option<Period>,
    ) -> Result<(), Error> {
        let at = self.at;
        let sub = self.sub(index)?.clone();
        let quote = recurring_amount(self.catalog, &sub.config)?;
        let period = match continued {
            Some(period) => Some(period),
            None => first_period(at, sub.config.billing_period)?,
        };
        let stored = self.sub_mut(index)?;
        if continued.is_none() {
            stored.billing_anchor = period.map(|p| p.start);
        }
        stored.current_period = period;
        stored.charges.clear();
        let pending = std::mem::take(&mut stored.pending_lines);
        let currency = usage::invoice_currency(self.catalog, &sub.config, quote.currency)
            .or_else(|| sub.charges.first().map(|c| c.currency));
        let (Some(period), Some(currency)) = (period, currency) else {
            return self.issue_carried(carried);
        };
        // One invoice holds one currency: lines carried in another one (a waiting
        // subscription replacing one billed in another currency) are settled on their own.
        // So are lines carried to a subscription that writes no invoice (collection `NONE`)
        // from one that does: what the replaced one is owed and owes is not dropped with it.
        // Usage carried from one that writes none (reported under `NONE`) is never billed;
        // its credits for what was paid are.
        let invoiced = self.settings.writes_invoices(sub.payment_collection_method);
        let from_invoiced = carried.from.as_ref().is_some_and(|from| {
            self.settings
                .writes_invoices(from.payment_collection_method)
        });
        let mut carried = carried;
        if invoiced && !from_invoiced {
            carried.lines.retain(|l| l.kind != LineKind::Usage);
        }
        let carried = match carried.currency {
            Some(other) if other != currency || (!invoiced && from_invoiced) => {
                self.issue_carried(carried)?;
                Carried::default()
            }
            _ => carried,
        };
        let charges = provision::charge_lines(&quote, period, self.settings);
        let stored = self.sub_mut(index)?;
        provision::set_ledger(
            stored,
            &quote.components,
            &charges,
            currency,
            period,
            invoiced,
        );
        let updated = stored.clone();
        let mut lines = pending;
        lines.extend(provision::lines_only(charges));
        lines.extend(carried.lines);
        self.issue(&updated, lines, currency, reason)
    }

    /// Makes `index` active now, records `event`, and bills its first period with `carried`
    /// lines.
    fn activate(
        &mut self,
        index: usize,
        carried: Carried,
        event: EventKind,
        continued: Option<Period>,
    ) -> Result<(), Error> {
        let catalog = self.catalog;
        let stored = self.sub_mut(index)?;
        stored.status = SubscriptionStatus::Active;
        let id = stored.id.clone();
        let product = stored.product.clone();
        if stored
            .plan(catalog)
            .is_ok_and(|p| p.pricing_type == PricingType::Paid)
        {
            self.state.paid_history.insert(product);
        }
        self.event(event, &id, None);
        self.bill_first_period(
            index,
            carried,
            InvoiceReason::SubscriptionCreation,
            continued,
        )
    }

    /// Whether the trial `sub` becomes a paid subscription when it ends now.
    fn converts(&self, sub: &Subscription) -> bool {
        sub.trial_end_behavior.unwrap_or_default() == TrialEndBehavior::ConvertToPaid
            && self.can_collect(sub)
    }

    /// Whether `sub` is, at this instant, a live non-trial subscription of its scope: one
    /// that is, one starting now, or a trial converting now.
    fn holds_scope_now(&self, sub: &Subscription) -> bool {
        if sub.is_trial {
            return self.converts_now(sub);
        }
        sub.status.is_live()
            || (sub.status == SubscriptionStatus::NotStarted && sub.start_date <= self.at)
    }

    /// Whether the trial `sub` (its caller checks it is one) converts at this instant: it
    /// ends now, converting, and no cancellation of its own due now wins over the conversion.
    fn converts_now(&self, sub: &Subscription) -> bool {
        let canceled_now = sub.pending_cancel_reason.is_some()
            && sub.cancellation_date.is_some_and(|at| at <= self.at);
        sub.status == SubscriptionStatus::InTrial
            && sub.trial_end == Some(self.at)
            && !canceled_now
            && self.converts(sub)
    }

    fn trial_end(&mut self, index: usize) -> Result<(), Error> {
        let sub = self.sub(index)?.clone();
        if !self.converts(&sub) {
            return self.end(index, CancelReason::TrialEnded);
        }
        // A subscription the customer asked to start at this very instant takes the scope:
        // converting first would charge a period the customer never uses. The trial ends as
        // a waiting start ends a lone trial (converted into the same plan, else replaced).
        if let Some(starting) = self.starting_over(&sub) {
            let reason = if starting.plan_id() == sub.plan_id() {
                CancelReason::TrialConverted
            } else {
                CancelReason::UpgradeOrDowngrade
            };
            let alone = self.live_beside(&sub, false).is_none();
            self.end(index, reason)?;
            if alone {
                self.reset_usage(&sub.config, &starting);
            }
            return Ok(());
        }
        // A parallel trial replaces the paid subscription of its scope, whatever the
        // direction: its unused time is credited on the converted subscription's invoice.
        let carried = self.replace_live(&sub, false)?;
        let stored = self.sub_mut(index)?;
        stored.is_trial = false;
        stored.trial_end_behavior = None;
        self.activate(index, carried, EventKind::TrialConverted, None)
    }

    /// The waiting non-trial subscription of `sub`'s scope that starts at this instant, if
    /// any: it replaces the scope's live non-trial subscription now, so a change of `sub`
    /// due now (a scheduled change, a trial's conversion) would only live for no time.
    fn starting_over(&self, sub: &Subscription) -> Option<Subscription> {
        self.state
            .subscriptions
            .iter()
            .find(|s| {
                s.id != sub.id
                    && s.status == SubscriptionStatus::NotStarted
                    && !s.is_trial
                    && s.start_date == self.at
                    && s.in_scope(&sub.product, sub.resource.as_ref())
            })
            .cloned()
    }

    /// Ends the live subscription of `sub`'s scope of the given kind (trial or not), if
    /// any, as replaced by `sub`: returns the credit for its unused time and the usage of
    /// its closing period, and applies the usage reset of the change.
    fn replace_live(&mut self, sub: &Subscription, trial: bool) -> Result<Carried, Error> {
        let Some(r) = self.live_beside(sub, trial) else {
            return Ok(Carried::default());
        };
        let old = self.sub(r)?.clone();
        let mut carried = self.unused_time(&old, ProrationEvent::Change)?;
        carried.add(self.close_usage(r)?);
        carried.add(Carried::pending(self.sub_mut(r)?));
        self.end(r, CancelReason::UpgradeOrDowngrade)?;
        self.reset_usage(&old.config, sub);
        Ok(carried)
    }

    /// The credit for the unused time of what `sub` was charged, at this instant.
    fn unused_time(&self, sub: &Subscription, event: ProrationEvent) -> Result<Carried, Error> {
        let mut credits = Vec::new();
        provision::credit_lines(
            &mut credits,
            self.catalog,
            &sub.charges,
            sub.current_period.map(|p| p.start),
            self.at,
            event,
            self.settings,
            self.state,
        )?;
        Ok(Carried::of(sub, credits))
    }

    /// The live subscription of the given kind (trial or not) in `sub`'s scope, other than
    /// `sub`.
    fn live_beside(&self, sub: &Subscription, trial: bool) -> Option<usize> {
        self.state.subscriptions.iter().position(|s| {
            s.id != sub.id
                && s.in_scope(&sub.product, sub.resource.as_ref())
                && s.is_trial == trial
                && s.status.is_live()
        })
    }

    /// A non-trial subscription starting where a trial runs alone ends the trial
    /// (SPEC.md §3.S): converted for the same plan, canceled for another. Beside a live
    /// non-trial subscription (which the start replaces) the trial keeps running.
    fn end_lone_trial(&mut self, sub: &Subscription) -> Result<(), Error> {
        if sub.is_trial || self.live_beside(sub, false).is_some() {
            return Ok(());
        }
        let Some(t) = self.live_beside(sub, true) else {
            return Ok(());
        };
        let trial = self.sub(t)?.clone();
        let reason = if trial.plan_id() == sub.plan_id() {
            CancelReason::TrialConverted
        } else {
            CancelReason::UpgradeOrDowngrade
        };
        self.end(t, reason)?;
        self.reset_usage(&trial.config, sub);
        Ok(())
    }

    /// Marks `index` as waiting for payment, with its first period running from now (a
    /// trial's is its trial period, kept as decided).
    fn await_payment(&mut self, index: usize) -> Result<(), Error> {
        let at = self.at;
        let stored = self.sub_mut(index)?;
        stored.status = SubscriptionStatus::PaymentPending;
        if !stored.is_trial {
            stored.current_period = first_period(at, stored.config.billing_period)?;
        }
        let id = stored.id.clone();
        self.event(EventKind::SubscriptionStarted, &id, None);
        Ok(())
    }

    fn start(&mut self, index: usize) -> Result<(), Error> {
        let sub = self.sub(index)?.clone();
        self.end_lone_trial(&sub)?;
        // A waiting subscription replaces the live one of its kind.
        let carried = self.replace_live(&sub, sub.is_trial)?;
        if !self.can_start(&sub) {
            self.issue_carried(carried)?;
            return self.await_payment(index);
        }
        if sub.is_trial {
            // A trial counts for eligibility from when it runs (SPEC.md §3.T).
            self.state.trial_history.insert(sub.product.clone());
            self.sub_mut(index)?.status = SubscriptionStatus::InTrial;
            self.event(EventKind::SubscriptionStarted, &sub.id, None);
            return self.issue_carried(carried);
        }
        self.activate(index, carried, EventKind::SubscriptionStarted, None)
    }

    fn scheduled(&mut self, index: usize) -> Result<(), Error> {
        let sub = self.sub(index)?.clone();
        let Some(update) = sub.scheduled_updates.first().cloned() else {
            return Ok(());
        };
        if self.starting_over(&sub).is_some() {
            // The waiting subscription starting now replaces `sub` instead: the change is
            // dropped (its promotion code is given back), and nothing is billed for it.
            self.sub_mut(index)?.scheduled_updates.clear();
            return Ok(());
        }
        let at_period_end = sub.current_period.is_some_and(|p| p.end == self.at);
        let mut carried = if at_period_end {
            Carried::default()
        } else {
            self.unused_time(&sub, ProrationEvent::Change)?
        };
        // The closing period is billed at the configuration it ran under.
        carried.add(self.close_usage(index)?);
        match update.kind {
            ScheduledUpdateType::PlanChange => {
                // Its waiting prorations go on the new subscription's first invoice.
                carried.add(Carried::pending(self.sub_mut(index)?));
                // At the period end in the same billing period, the new plan continues the
                // billing series (its anchor stays): FORMAT.md §6 starts a new period only
                // for a change from a free plan, to another billing period, or before the
                // period's end.
                let continued = continued_period(&sub, self.at, update.target.billing_period)?;
                let mut next = sub.clone();
                next.id = match update.new_subscription_id.clone() {
                    Some(id) if self.state.subscription(id.as_str()).is_none() => id,
                    _ => generate_id(self.state),
                };
                update.apply_to(&mut next);
                // A state stored before ids were reserved can have given the id away: the
                // redemption the change brought is then the one on the id it gets.
                if let Some(coupon) = next.coupon.as_mut().filter(|c| {
                    c.redeemed_on.is_some() && c.redeemed_on == update.new_subscription_id
                }) {
                    coupon.redeemed_on = Some(next.id.clone());
                }
                next.start_date = self.at;
                next.scheduled_updates.clear();
                // A cancellation still pending was asked for after this change (asking for
                // the change withdraws an earlier one) and is due later: it ends the
                // subscription that replaces this one.
                next.charges.clear();
                next.pending_lines.clear();
                next.status = SubscriptionStatus::NotStarted;
                self.sub_mut(index)?.scheduled_updates.clear();
                self.end(index, CancelReason::UpgradeOrDowngrade)?;
                self.event(EventKind::ScheduledUpdateApplied, &sub.id, None);
                self.reset_usage(&sub.config, &next);
                self.state.subscriptions.push(next);
                let new_index = self.state.subscriptions.len().saturating_sub(1);
                let new_sub = self.sub(new_index)?.clone();
                if !self.can_collect(&new_sub) {
                    self.issue_carried(carried)?;
                    return self.await_payment(new_index);
                }
                self.activate(
                    new_index,
                    carried,
                    EventKind::SubscriptionStarted,
                    continued,
                )
            }
            ScheduledUpdateType::Update | ScheduledUpdateType::Migration => {
                let new_period = update.target.billing_period != sub.config.billing_period;
                let updated = {
                    let stored = self.sub_mut(index)?;
                    update.apply_to(stored);
                    stored.scheduled_updates.clear();
                    stored.clone()
                };
                self.event(EventKind::ScheduledUpdateApplied, &sub.id, None);
                if new_period {
                    self.reset_usage(&sub.config, &updated);
                    if at_period_end {
                        // It applies as the renewal, so it is reported as one.
                        self.event(EventKind::SubscriptionRenewed, &sub.id, None);
                    }
                }
                if at_period_end && !new_period {
                    self.renew(index, carried)
                } else {
                    // Another billing period, or a change before the period's end, starts
                    // a new period at the change (FORMAT.md §6).
                    self.bill_first_period(index, carried, InvoiceReason::BillingCycle, None)
                }
            }
        }
    }

    /// A period ends: the next one starts and is invoiced at the subscription's
    /// configuration, with pending prorations and the closing period's usage (`closing`);
    /// the coupon applies to the lines whose span it covers.
    fn renew(&mut self, index: usize, closing: Carried) -> Result<(), Error> {
        let sub = self.sub(index)?.clone();
        let (Some(bp), Some(current)) = (sub.config.billing_period, sub.current_period) else {
            return Ok(());
        };
        let series = PeriodSeries::new(sub.billing_anchor.unwrap_or(current.start), bp);
        let next = match series.containing(current.end)? {
            Some(p) if p.start >= current.end => p,
            _ => PeriodSeries::new(current.end, bp).nth(0)?,
        };
        let quote = recurring_amount(self.catalog, &sub.config)?;
        let charges = provision::charge_lines(&quote, next, self.settings);
        let currency = quote
            .currency
            .or(closing.currency)
            .or_else(|| sub.charges.first().map(|c| c.currency));
        let invoiced = self.settings.writes_invoices(sub.payment_collection_method);
        let stored = self.sub_mut(index)?;
        stored.current_period = Some(next);
        let pending = std::mem::take(&mut stored.pending_lines);
        if let Some(currency) = currency {
            provision::set_ledger(
                stored,
                &quote.components,
                &charges,
                currency,
                next,
                invoiced,
            );
        }
        let updated = stored.clone();
        self.event(EventKind::SubscriptionRenewed, &sub.id, None);
        let Some(currency) = currency else {
            return Ok(());
        };
        let mut lines = pending;
        lines.extend(provision::lines_only(charges));
        lines.extend(closing.lines);
        self.issue(&updated, lines, currency, InvoiceReason::BillingCycle)
    }
}
