//! Invoices: lines, and the totals that discounts, customer credit and tax make of them.
//!
//! Each line is rounded on its own to the currency's minor unit. `subTotal` is the sum of
//! the lines; the discount comes off it; a negative result charges nothing and becomes
//! customer credit, a positive one consumes the customer's credit first; tax is computed
//! once, on what remains (FORMAT.md §6).

use crate::error::{Error, ErrorCode};
use crate::id::{CustomerId, SubscriptionId};
use crate::money::{self, Currency, RoundingMode};
use crate::period::Period;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Why an invoice was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceReason {
    /// At the instant a subscription's billing starts.
    SubscriptionCreation,
    /// A mid-period change.
    SubscriptionUpdate,
    /// At a later period boundary: renewals, pending prorations, usage.
    BillingCycle,
    /// A cancellation's credit.
    Cancellation,
}

impl InvoiceReason {
    /// The reason's name, as FORMAT.md spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionCreation => "SUBSCRIPTION_CREATION",
            Self::SubscriptionUpdate => "SUBSCRIPTION_UPDATE",
            Self::BillingCycle => "BILLING_CYCLE",
            Self::Cancellation => "CANCELLATION",
        }
    }
}

/// What an invoice line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LineKind {
    /// Credit for unused time of what was charged (negative).
    ProrationCredit,
    /// The remaining part of a period at a new configuration.
    ProrationDebit,
    /// A full period of one price component.
    Charge,
    /// Usage billed in arrears.
    Usage,
}

impl LineKind {
    /// Whether it prorates part of a period (a credit or a debit).
    #[must_use]
    pub fn is_proration(self) -> bool {
        matches!(self, Self::ProrationCredit | Self::ProrationDebit)
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InvoiceLine {
    /// What it is for, in words.
    #[serde(with = "crate::stored::text")]
    pub description: Arc<str>,
    /// What kind of line.
    pub kind: LineKind,
    /// The span it covers.
    pub period: Period,
    /// The component's quantity.
    pub quantity: u64,
    /// The component's unit price.
    pub unit_price: Decimal,
    /// The amount, rounded to the currency's minor unit.
    pub amount: Decimal,
    /// Whether this `PRORATION_CREDIT` takes back part of a proration debit that was never
    /// invoiced (a `CREATE_PRORATIONS` debit that a later change credits while it waits):
    /// both go on one invoice, and the coupon covers that debit net of this credit.
    #[serde(default)]
    pub credits_waiting_debit: bool,
    /// For a proration debit, and a credit that takes back part of a waiting one (with
    /// `credits_waiting_debit`), the start of the billing period it bills part of: a
    /// coupon judges it by that period, which a `REPEATING` window covers whole when it
    /// starts inside it (FORMAT.md §6), so a debit and its credit are covered alike, and
    /// alike whatever invoice bills them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_period_start: Option<chrono::DateTime<chrono::Utc>>,
}

impl InvoiceLine {
    /// The start of the span a coupon judges this line by: the billing period a proration
    /// bills part of, else the line's own span.
    #[must_use]
    pub fn coverage_start(&self) -> chrono::DateTime<chrono::Utc> {
        self.billing_period_start.unwrap_or(self.period.start)
    }
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Invoice {
    /// Its id.
    pub id: String,
    /// The customer.
    pub customer: CustomerId,
    /// The subscription it bills.
    pub subscription: SubscriptionId,
    /// When it was issued.
    pub issued_at: chrono::DateTime<chrono::Utc>,
    /// Why.
    pub reason: InvoiceReason,
    /// Its currency.
    pub currency: Currency,
    /// Its lines, in FORMAT.md §6 order.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines.
    pub sub_total: Decimal,
    /// What the coupon took off (≥ 0).
    pub discount_amount: Decimal,
    /// Customer credit consumed.
    pub credit_applied: Decimal,
    /// Credit given to the customer (a negative net).
    pub credit_issued: Decimal,
    /// The tax.
    pub tax: Decimal,
    /// What is charged.
    pub total: Decimal,
}

/// Checks that `pct` is a tax percentage: from 0 to 100.
///
/// # Errors
/// `InvalidArgumentError` otherwise.
pub fn check_tax_percentage(pct: Decimal) -> Result<(), Error> {
    if pct < Decimal::ZERO || pct > Decimal::ONE_HUNDRED {
        return Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!("tax percentage {pct} is not between 0 and 100"),
        ));
    }
    Ok(())
}

/// A tax rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxRate {
    /// The percentage (`17` is 17 %).
    pub percentage: Decimal,
    /// Whether prices include it.
    pub inclusive: bool,
}

/// The totals of a set of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// The sum of the lines.
    pub sub_total: Decimal,
    /// What the discount took off.
    pub discount_amount: Decimal,
    /// Customer credit consumed.
    pub credit_applied: Decimal,
    /// Credit given to the customer.
    pub credit_issued: Decimal,
    /// The tax.
    pub tax: Decimal,
    /// `total − tax`.
    pub total_excluding_tax: Decimal,
    /// What is charged.
    pub total: Decimal,
}

/// The totals of `lines` after `discount` (already capped and rounded), the customer's
/// `available_credit` in this currency, and `tax`.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn totals(
    lines: &[InvoiceLine],
    currency: Currency,
    discount: Decimal,
    available_credit: Decimal,
    tax: Option<TaxRate>,
    rounding: RoundingMode,
) -> Result<Totals, Error> {
    let sub_total = currency.round(money::sum(lines.iter().map(|l| l.amount))?, rounding);
    let discount_amount = currency.round(discount.max(Decimal::ZERO), rounding);
    let base = money::sub(sub_total, discount_amount)?;
    let zero = currency.round(Decimal::ZERO, rounding);
    if base < Decimal::ZERO {
        return Ok(Totals {
            sub_total,
            discount_amount,
            credit_applied: zero,
            credit_issued: currency.round(base.abs(), rounding),
            tax: zero,
            total_excluding_tax: zero,
            total: zero,
        });
    }
    let credit_applied = currency.round(available_credit.max(Decimal::ZERO).min(base), rounding);
    let remaining = money::sub(base, credit_applied)?;
    let (tax, total) = match tax {
        None => (zero, remaining),
        Some(rate) if rate.inclusive => {
            let divisor = money::add(Decimal::ONE_HUNDRED, rate.percentage)?;
            let tax = money::mul_div(remaining, rate.percentage, divisor, currency, rounding)?;
            (tax, remaining)
        }
        Some(rate) => {
            let tax = money::mul_div(
                remaining,
                rate.percentage,
                Decimal::ONE_HUNDRED,
                currency,
                rounding,
            )?;
            (tax, money::add(remaining, tax)?)
        }
    };
    Ok(Totals {
        sub_total,
        discount_amount,
        credit_applied,
        credit_issued: zero,
        tax,
        total_excluding_tax: currency.round(money::sub(total, tax)?, rounding),
        total: currency.round(total, rounding),
    })
}

/// Lines settled into totals: what an invoice for them would say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The lines above zero, in FORMAT.md §6 order.
    pub lines: Vec<InvoiceLine>,
    /// Their totals.
    pub totals: Totals,
    /// Whether the subscription's coupon discounted them: it covered some of them that it
    /// discounts (a `ONCE` coupon is then used up).
    pub coupon_used: bool,
    /// The lines the coupon covered, by the start of their span.
    pub coverage: crate::coupon::Coverage,
}

/// The tax rate of `sub`'s invoices: its own percentage, else the customer's; inclusive as
/// the customer says.
#[must_use]
pub fn tax_rate(
    state: &crate::customer::CustomerState,
    sub: &crate::subscription::Subscription,
) -> Option<TaxRate> {
    sub.tax_percentage
        .or(state.customer.tax_percentage)
        .map(|percentage| TaxRate {
            percentage,
            inclusive: state.customer.tax_inclusive,
        })
}

/// How a set of lines is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billing {
    /// The currency.
    pub currency: Currency,
    /// Whether the customer's credit balance is consumed.
    pub apply_credit: bool,
    /// How amounts are rounded.
    pub rounding: RoundingMode,
    /// Whether an invoice with an amount a decimal cannot hold to the currency's minor unit
    /// is refused with `AmountTooLarge`, as a request's decision refuses it. The clock,
    /// which must go on, bills such an invoice with the amounts a decimal holds.
    pub refuse_cut_amounts: bool,
}

/// The lines a subscription that writes no invoice (collection `NONE`) still issues, alone
/// on an invoice, when the billing integration is on: its credits for the unused time of
/// components paid before, under a collection method that invoiced. A component it charged
/// itself was never paid, so its credit is zero and it gets none; its debits, charges and
/// usage are never billed. With the integration off nothing is written.
pub(crate) fn credits_of_paid(
    settings: &crate::settings::Settings,
    lines: &[InvoiceLine],
) -> Vec<InvoiceLine> {
    if !settings.billing_integration {
        return Vec::new();
    }
    lines
        .iter()
        .filter(|l| l.kind == LineKind::ProrationCredit && !l.amount.is_zero())
        .cloned()
        .collect()
}

/// Settles `lines` billed to `sub`: zero lines are dropped, the rest ordered (credits,
/// debits, charges, usage; stable within a kind); the subscription's coupon applies to the
/// lines whose span it covers, each judged by its own span (a debit that waited keeps the
/// discount its span had), if it can discount them (a coupon never makes settling fail:
/// one without an amount in the currency gives no discount); the customer's credit (when
/// `apply_credit`) and the tax come last.
/// Provisioning, estimates and renewals all settle through here.
///
/// # Errors
/// `AmountTooLarge`.
pub fn settle(
    catalog: &crate::catalog::Catalog,
    state: &crate::customer::CustomerState,
    sub: &crate::subscription::Subscription,
    lines: &[InvoiceLine],
    billing: Billing,
) -> Result<Settlement, Error> {
    let Billing {
        currency,
        apply_credit,
        rounding,
        refuse_cut_amounts,
    } = billing;
    // Sized for every line: collecting a filter would grow the vector line by line.
    let mut kept: Vec<InvoiceLine> = Vec::with_capacity(lines.len());
    kept.extend(lines.iter().filter(|l| !l.amount.is_zero()).cloned());
    let mut lines = kept;
    lines.sort_by_key(|l| l.kind);
    // A coupon is used by the first invoice it discounts: one with nothing it covers
    // (usage alone, credits alone) leaves a `ONCE` coupon for the next.
    let (discount, coverage) = match crate::coupon::of_applied(catalog, sub.coupon.as_ref()) {
        Some((coupon, applied)) => {
            let coverage = crate::coupon::Coverage::of(coupon, applied);
            let discount = crate::coupon::discount(coupon, coverage, &lines, currency, rounding)?;
            (discount, coverage)
        }
        None => (None, crate::coupon::Coverage::Nothing),
    };
    let credit = if apply_credit {
        state
            .customer
            .credit_balance
            .get(&currency)
            .copied()
            .unwrap_or(Decimal::ZERO)
    } else {
        Decimal::ZERO
    };
    let totals = totals(
        &lines,
        currency,
        discount.unwrap_or(Decimal::ZERO),
        credit,
        tax_rate(state, sub),
        rounding,
    )?;
    if refuse_cut_amounts {
        held_to_the_minor_unit(&lines, &totals, currency)?;
    }
    Ok(Settlement {
        lines,
        totals,
        coupon_used: discount.is_some(),
        coverage,
    })
}

/// `AmountTooLarge` unless every amount of an invoice is written to `currency`'s minor
/// unit: an amount too large for a decimal to hold at that many places (beyond about 10^26
/// in a currency of two places) would be written rounded to fewer, cents lost without a
/// word.
pub(crate) fn held_to_the_minor_unit(
    lines: &[InvoiceLine],
    totals: &Totals,
    currency: Currency,
) -> Result<(), Error> {
    let places = currency.minor_units();
    let held = |amount: &Decimal| amount.scale() == places;
    let all_held = lines.iter().all(|l| held(&l.amount))
        && held(&totals.sub_total)
        && held(&totals.discount_amount)
        && held(&totals.credit_applied)
        && held(&totals.credit_issued)
        && held(&totals.tax)
        && held(&totals.total_excluding_tax)
        && held(&totals.total);
    if all_held {
        Ok(())
    } else {
        Err(not_held(currency))
    }
}

#[cold]
fn not_held(currency: Currency) -> Error {
    Error::new(
        ErrorCode::AmountTooLarge,
        format!("an amount of the invoice cannot be written to the minor unit of {currency}"),
    )
}

impl Invoice {
    /// The invoice of a settlement.
    #[must_use]
    pub fn from_settlement(
        id: String,
        state: &crate::customer::CustomerState,
        subscription: SubscriptionId,
        issued_at: chrono::DateTime<chrono::Utc>,
        reason: InvoiceReason,
        currency: Currency,
        settlement: Settlement,
    ) -> Self {
        let t = settlement.totals;
        Self {
            id,
            customer: state.customer.id.clone(),
            subscription,
            issued_at,
            reason,
            currency,
            lines: settlement.lines,
            sub_total: t.sub_total,
            discount_amount: t.discount_amount,
            credit_applied: t.credit_applied,
            credit_issued: t.credit_issued,
            tax: t.tax,
            total: t.total,
        }
    }
}

/// The next invoice id of the customer: `<customer>-inv-<n>`.
#[must_use]
pub fn next_invoice_id(state: &crate::customer::CustomerState) -> String {
    crate::id::numbered(
        state.customer.id.as_str(),
        "inv",
        state.invoices.len().saturating_add(1),
    )
}
