//! Estimates: what a request would charge, computed by the very code that executes it.
//!
//! `estimateSubscription` (and `estimateSubscriptionUpdate`) runs provisioning's (the
//! update's) stages (without the payment stage: an
//! estimate never needs a payment method) and settles the resulting charge with the same
//! settlement function invoices use, on the subscription whose invoice it is (the replaced
//! one, with its own coupon and tax, for a closing invoice), so an estimate equals the
//! invoice provisioning would issue (FORMAT.md §3 estimate, §6 "Estimates follow the same
//! rules"):
//! - top-level amounts are what would be charged now (a negative net shows a negative
//!   `subTotal` and `total` 0); the customer's credit is consumed as the invoice would;
//! - `subscription` is the next full period at the new configuration, with the coupon if
//!   it still covers that period, and tax, without customer credit;
//! - `billingPeriodRange` is `[change, periodEnd)` for a mid-period change (also one that
//!   charges nothing now, under `prorationBehavior: NONE` or changing nothing, whose
//!   `subscription` then starts at the period end), the first paid period
//!   `[trialEnd, trialEnd + period)` for a trial, the first period for a scheduled change,
//!   otherwise the period being charged;
//! - `proration` (for a prorated change) sums the `PRORATION_CREDIT` lines as `credit` and
//!   the `PRORATION_DEBIT` lines as `debit`.

use crate::catalog::Catalog;
use crate::change::ChangeType;
use crate::coupon::Redemptions;
use crate::customer::CustomerState;
use crate::error::Error;
use crate::id::SubscriptionId;
use crate::invoice::{self, Billing, InvoiceLine, LineKind, TaxRate, Totals};
use crate::money::{self, Currency};
use crate::period::{Period, PeriodSeries};
use crate::pricing::recurring_amount;
use crate::provision::{self, Mode, ProvisionDecision, ProvisionRequest, Stages};
use crate::settings::Settings;
use crate::subscription::{Subscription, SubscriptionStatus};
use crate::update::UpdateRequest;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// The proration part of an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProrationSummary {
    /// The instant of the change.
    pub proration_date: DateTime<Utc>,
    /// The unused time credited (positive).
    pub credit: Decimal,
    /// The rest of the period at the new configuration.
    pub debit: Decimal,
    /// `debit − credit`.
    pub net_amount: Decimal,
}

/// An estimate (FORMAT.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Estimate {
    /// The currency, if anything is priced.
    pub currency: Option<Currency>,
    /// What would be charged now.
    pub now: Totals,
    /// The lines that would be charged now.
    pub lines: Vec<InvoiceLine>,
    /// The tax rate applied.
    pub tax: Option<TaxRate>,
    /// The span the charge is for.
    pub billing_period_range: Option<Period>,
    /// The proration of a mid-period change.
    pub proration: Option<ProrationSummary>,
    /// The next full period at the new configuration.
    pub recurring: Totals,
    /// Whether the change is a downgrade.
    pub is_plan_downgrade: bool,
    /// Whether the change would be scheduled rather than applied now.
    pub has_scheduled_updates: bool,
}

fn zero_totals(currency: Option<Currency>) -> Totals {
    let zero = currency.map_or(Decimal::ZERO, |c| {
        c.round(Decimal::ZERO, crate::money::RoundingMode::HalfUp)
    });
    Totals {
        sub_total: zero,
        discount_amount: zero,
        credit_applied: zero,
        credit_issued: zero,
        tax: zero,
        total_excluding_tax: zero,
        total: zero,
    }
}

/// Estimates a `provisionSubscription` request without applying anything.
///
/// # Errors
/// Every error of [`provision::provision`] except `PaymentMethodNotFound`.
pub fn estimate_subscription(
    catalog: &Catalog,
    state: &CustomerState,
    request: &ProvisionRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<Estimate, Error> {
    let decision = provision::decide(
        catalog,
        state,
        request,
        redemptions,
        now,
        settings,
        Mode {
            stages: Stages::WithoutPayment,
            in_place: None,
            completing: None,
        },
    )?;
    estimate_decision(catalog, state, &decision, now, settings)
}

/// Estimates an `updateSubscription` request without applying anything.
///
/// # Errors
/// Every error of [`crate::update::update_subscription`] except `PaymentMethodNotFound`.
pub fn estimate_subscription_update(
    catalog: &Catalog,
    state: &CustomerState,
    request: &UpdateRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<Estimate, Error> {
    let decision = crate::update::decide_update(
        catalog,
        state,
        request,
        redemptions,
        now,
        settings,
        Stages::WithoutPayment,
    )?;
    estimate_decision(catalog, state, &decision, now, settings)
}

/// The money of `decision`, settled as its invoice would be.
fn estimate_decision(
    catalog: &Catalog,
    state: &CustomerState,
    decision: &ProvisionDecision,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<Estimate, Error> {
    let scheduled = decision.effects.schedule.iter().find_map(|change| {
        change
            .update
            .as_ref()
            .map(|u| (change.subscription.clone(), u.clone()))
    });
    let stored = |id: &SubscriptionId| {
        decision
            .effects
            .subscription(id)
            .or_else(|| state.subscription(id.as_str()))
            .cloned()
            .ok_or_else(|| crate::customer::not_found(id.as_str()))
    };
    // The subscription the money is about: the new one, the one changed in place, or for a
    // scheduled change the current one moved to its target.
    let mut subject: Subscription = match (&scheduled, decision.effects.create.last()) {
        (Some((current, update)), _) => {
            let mut sub = stored(current)?;
            update.apply_to(&mut sub);
            sub
        }
        (None, Some(sub)) => sub.clone(),
        (None, None) => match &decision.subscription {
            Some(id) => stored(id)?,
            None => return Err(crate::customer::not_found("")),
        },
    };
    let quote = recurring_amount(catalog, &subject.config)?;
    // A plan priced by usage alone has no recurring amount: its usage prices name the
    // currency its invoices will be in.
    let currency = decision
        .charge
        .as_ref()
        .map(|c| c.currency)
        .or_else(|| crate::usage::invoice_currency(catalog, &subject.config, quote.currency));
    // The subscription whose invoice the charge is: the subject, or the replaced one when
    // the new subscription charges nothing now and the replaced one's closing invoice bills
    // what it still owes, on its own coupon and tax (as provisioning settles it).
    let mut billed: Option<Subscription> = match &decision.charge {
        Some(charge) if charge.subscription != subject.id => Some(stored(&charge.subscription)?),
        _ => None,
    };
    let tax = invoice::tax_rate(state, billed.as_ref().unwrap_or(&subject));
    let kept = kept_period(decision, &subject, now);

    let (now_settlement, range, proration) = match &decision.charge {
        Some(charge) => {
            // The proration of this change alone, without earlier ones billed with it.
            let own = charge.lines.len().saturating_sub(charge.earlier_prorations);
            let own_lines = charge.lines.get(..own).unwrap_or(&charge.lines);
            let proration = match charge.proration_date {
                Some(date) => Some(proration_summary(date, charge.currency, own_lines)?),
                None => None,
            };
            // Prorations that wait for the next invoice are not charged now.
            let settlement = charge.settle_now(
                catalog,
                state,
                billed.as_mut().unwrap_or(&mut subject),
                settings.rounding,
            )?;
            (Some(settlement), Some(charge.period), proration)
        }
        None => {
            let range = match (&scheduled, subject.trial_end, subject.config.billing_period) {
                (Some((current, update)), _, Some(period)) => {
                    // The period the clock will bill when the change applies.
                    let continued = crate::lifecycle::continued_period(
                        &stored(current)?,
                        update.scheduled_at,
                        Some(period),
                    )?;
                    match continued {
                        Some(continued) => Some(continued),
                        None => Some(PeriodSeries::new(update.scheduled_at, period).nth(0)?),
                    }
                }
                (None, Some(trial_end), Some(period)) if subject.is_trial => {
                    Some(PeriodSeries::new(trial_end, period).nth(0)?)
                }
                // A change applied now that keeps the paid period charges nothing for its
                // rest `[change, periodEnd)`.
                _ => kept
                    .map(|p| Period {
                        start: now,
                        end: p.end,
                    })
                    .or(subject.current_period),
            };
            (None, range, None)
        }
    };
    let recurring_start = match (&decision.charge, range) {
        (Some(_), Some(r)) => r.end,
        // The next full period follows the one already paid.
        (None, Some(r)) if kept.is_some() => r.end,
        (None, Some(r)) => r.start,
        (_, None) => now,
    };
    let recurring = match (quote.currency, quote.billing_period) {
        (Some(c), Some(period)) => {
            let full = PeriodSeries::new(recurring_start, period).nth(0)?;
            let lines: Vec<_> =
                provision::lines_only(provision::charge_lines(&quote, full, settings)).collect();
            invoice::settle(
                catalog,
                state,
                &subject,
                &lines,
                Billing {
                    currency: c,
                    apply_credit: false,
                    rounding: settings.rounding,
                    refuse_cut_amounts: true,
                },
            )?
            .totals
        }
        _ => zero_totals(currency),
    };
    let (now_totals, lines) = match now_settlement {
        Some(s) => (s.totals, s.lines),
        None => (zero_totals(currency), Vec::new()),
    };
    Ok(Estimate {
        currency,
        now: now_totals,
        lines,
        tax,
        billing_period_range: range,
        proration,
        recurring,
        is_plan_downgrade: decision.change_type == ChangeType::Downgrade,
        has_scheduled_updates: decision.is_scheduled,
    })
}

/// The current period of a live, paid-for subscription that `decision` changes now (in
/// place, by a replacement keeping its period, or not at all) without charging anything:
/// the period is already paid, so the next full period starts at its end. `None` for a new
/// subscription, a trial, one waiting to start or for payment, and a scheduled change.
fn kept_period(
    decision: &ProvisionDecision,
    subject: &Subscription,
    now: DateTime<Utc>,
) -> Option<Period> {
    let live = !decision.is_scheduled
        && decision.change_type != ChangeType::New
        && decision.charge.is_none()
        && !subject.is_trial
        && subject.status == SubscriptionStatus::Active;
    subject
        .current_period
        .filter(|p| live && p.start <= now && now < p.end)
}

fn proration_summary(
    date: DateTime<Utc>,
    currency: Currency,
    lines: &[InvoiceLine],
) -> Result<ProrationSummary, Error> {
    // Sums of rounded lines: rounding only sets the currency's places (`0.00`, not `0`).
    let sum_of = |kind: LineKind| {
        money::sum(lines.iter().filter(|l| l.kind == kind).map(|l| l.amount))
            .map(|sum| currency.round(sum, crate::money::RoundingMode::HalfUp))
    };
    let credit = sum_of(LineKind::ProrationCredit)?.abs();
    let debit = sum_of(LineKind::ProrationDebit)?;
    Ok(ProrationSummary {
        proration_date: date,
        credit,
        debit,
        net_amount: money::sub(debit, credit)?,
    })
}
