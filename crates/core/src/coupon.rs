//! Coupons and promotion codes: which discount a subscription gets, and for how long.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many times each promotion code has been redeemed, across all customers. A promotion
/// code's `maxRedemptions` is global, so the host keeps these counts and hands them to
/// every decision that may redeem a code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redemptions(
    #[serde(deserialize_with = "crate::stored::unique_map")] BTreeMap<String, u64>,
);

impl Redemptions {
    /// No code redeemed yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `code` has been redeemed.
    #[must_use]
    pub fn count(&self, code: &str) -> u64 {
        self.0.get(code).copied().unwrap_or(0)
    }

    /// Records one more redemption of `code`.
    pub fn record(&mut self, code: &str) {
        let count = self.0.entry(code.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Gives one redemption of `code` back (see [`scheduled_redemptions`]).
    pub fn release(&mut self, code: &str) {
        if let Some(count) = self.0.get_mut(code) {
            *count = count.saturating_sub(1);
        }
    }
}

/// A promotion code held by something that has not happened yet: a plan change scheduled
/// on a subscription, or a subscription waiting to start or to be paid (`NOT_STARTED`,
/// `PAYMENT_PENDING`). The code is counted as redeemed from the request that brought it,
/// so that its `maxRedemptions` still holds when the change applies or the subscription
/// starts, and given back when the change is dropped before it applies, or the
/// subscription ends before it starts or is paid: the customer never had the discount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCode {
    /// The subscription the change is scheduled on, or the waiting subscription.
    pub subscription: SubscriptionId,
    /// The coupon the change gives the replacing subscription, or the waiting
    /// subscription's own.
    pub coupon: AppliedCoupon,
    /// Whether the waiting subscription holds it itself (else a scheduled change does).
    pub waiting: bool,
}

impl HeldCode {
    fn code(&self) -> Option<&str> {
        self.coupon.promotion_code.as_deref()
    }
}

/// The promotion codes the scheduled changes and the waiting subscriptions of `state`
/// hold.
#[must_use]
pub fn held_codes(state: &CustomerState) -> Vec<HeldCode> {
    let scheduled = state.subscriptions.iter().flat_map(|sub| {
        sub.scheduled_updates
            .iter()
            .filter_map(|update| update.coupon.as_ref())
            .filter(|coupon| coupon.promotion_code.is_some())
            .map(|coupon| HeldCode {
                subscription: sub.id.clone(),
                coupon: coupon.clone(),
                waiting: false,
            })
    });
    let waiting = state
        .subscriptions
        .iter()
        .filter(|sub| sub.status.is_waiting())
        .filter_map(|sub| {
            sub.coupon
                .as_ref()
                .filter(|coupon| coupon.promotion_code.is_some())
                .map(|coupon| HeldCode {
                    subscription: sub.id.clone(),
                    coupon: coupon.clone(),
                    waiting: true,
                })
        });
    scheduled.chain(waiting).collect()
}

/// How the held codes (see [`held_codes`]) moved from `before` to the state `after` a
/// decision or the clock: each code a scheduled change now holds that none did is
/// redeemed (a waiting subscription's code was redeemed by the request that created it);
/// each code no longer held is given back, unless a subscription of `after` carries its
/// redemption on: the change applied (its coupon is then on the subscription that replaced
/// the one it was scheduled on), the waiting subscription started, or a subscription that
/// replaced it took its coupon over. A subscription that ends before it starts or is paid
/// keeps no coupon ([`Subscription::end`](crate::subscription::Subscription::end)), so its
/// code is given back.
#[must_use]
pub fn scheduled_redemptions(before: &[HeldCode], after: &CustomerState) -> ScheduledRedemptions {
    let now_held = held_codes(after);
    let redeemed = now_held
        .iter()
        .filter(|held| !held.waiting && !before.contains(held))
        .filter_map(HeldCode::code)
        .map(str::to_owned)
        .collect();
    let carried = |held: &HeldCode| {
        after.subscriptions.iter().any(|sub| {
            (held.waiting || sub.id != held.subscription)
                && sub
                    .coupon
                    .as_ref()
                    .is_some_and(|c| c.same_redemption(&held.coupon))
        })
    };
    let released = before
        .iter()
        .filter(|held| !now_held.contains(held) && !carried(held))
        .filter_map(HeldCode::code)
        .map(str::to_owned)
        .collect();
    ScheduledRedemptions { redeemed, released }
}

/// The redemptions held codes took and gave back (see [`scheduled_redemptions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledRedemptions {
    /// Codes held by changes scheduled since: one more redemption each.
    pub redeemed: Vec<String>,
    /// Codes whose change was dropped before it applied, or whose waiting subscription
    /// ended before it started or was paid: one redemption fewer each.
    pub released: Vec<String>,
}

use crate::catalog::{Catalog, Coupon, CouponDuration, Discount, Plan};
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::id::SubscriptionId;
use crate::invoice::{InvoiceLine, LineKind};
use crate::money::{self, Currency, RoundingMode};
use crate::period::add_months;
use crate::subscription::AppliedCoupon;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// What a promotion code is redeemed for.
#[derive(Debug, Clone, Copy)]
pub struct Purchase<'a> {
    /// The plan bought.
    pub plan: &'a Plan,
    /// Its full-period subtotal before discount.
    pub subtotal: Decimal,
    /// Its currency, if it is priced.
    pub currency: Option<Currency>,
    /// Whether the code was checked when the request was made, before a checkout: its
    /// completion redeems the code its request was checked for, so the checks that depend
    /// on when and by whom it is redeemed (the active window, first purchase only) are
    /// those of the request. The redemption itself is counted at the completion.
    pub checked_at_request: bool,
}

fn error(code: ErrorCode, message: String) -> Error {
    Error::new(code, message)
}

/// Checks that promotion code `code` may be redeemed by the customer of `state` for
/// `purchase` at `now`, and returns the coupon it redeems. The checks run in FORMAT.md §5's order:
/// unknown, inactive, customer, plan, first purchase, exhausted, minimum amount, currency;
/// a purchase `checked_at_request` skips the active window and first purchase.
///
/// # Errors
/// `PromotionCodeNotFound`, `PromotionCodeNotActive`, `PromotionCodeNotForCustomer`,
/// `PromotionCodeNotForPlan`, `PromotionCodeCustomerNotFirstPurchase`,
/// `PromotionCodeMaxRedemptionsReached`, `PromotionCodeMinimumAmountNotReached`,
/// `CouponCurrencyMismatch`.
pub fn redeem_code<'c>(
    catalog: &'c Catalog,
    state: &CustomerState,
    code: &str,
    purchase: &Purchase<'_>,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
) -> Result<&'c Coupon, Error> {
    let Purchase {
        plan,
        subtotal,
        currency,
        checked_at_request,
    } = *purchase;
    let (coupon, promo) = catalog.promotion_code(code).ok_or_else(|| {
        error(
            ErrorCode::PromotionCodeNotFound,
            format!("promotion code `{code}` does not exist"),
        )
    })?;
    if !checked_at_request
        && (promo.active_from.is_some_and(|from| now < from)
            || promo.expires_at.is_some_and(|to| now >= to))
    {
        return Err(error(
            ErrorCode::PromotionCodeNotActive,
            format!("promotion code `{code}` is not active now"),
        ));
    }
    if promo
        .customers
        .as_ref()
        .is_some_and(|ids| !ids.contains(&state.customer.id))
    {
        return Err(error(
            ErrorCode::PromotionCodeNotForCustomer,
            format!(
                "promotion code `{code}` is not for customer `{}`",
                state.customer.id
            ),
        ));
    }
    if promo
        .plans
        .as_ref()
        .is_some_and(|ids| !ids.contains(&plan.id))
    {
        return Err(error(
            ErrorCode::PromotionCodeNotForPlan,
            format!("promotion code `{code}` is not for plan `{}`", plan.id),
        ));
    }
    if !checked_at_request && promo.first_purchase_only && state.has_paid_invoice() {
        return Err(error(
            ErrorCode::PromotionCodeCustomerNotFirstPurchase,
            format!("promotion code `{code}` is for a first purchase only"),
        ));
    }
    if promo
        .max_redemptions
        .is_some_and(|max| redemptions.count(code) >= max)
    {
        return Err(error(
            ErrorCode::PromotionCodeMaxRedemptionsReached,
            format!("promotion code `{code}` has been redeemed its maximum number of times"),
        ));
    }
    if promo.minimum_amount.is_some_and(|min| subtotal < min) {
        return Err(error(
            ErrorCode::PromotionCodeMinimumAmountNotReached,
            format!(
                "promotion code `{code}` needs a subtotal of at least {}",
                promo.minimum_amount.unwrap_or_default()
            ),
        ));
    }
    check_currency(coupon, currency)?;
    Ok(coupon)
}

/// Checks that `coupon` can discount an amount in `currency`: a fixed coupon needs an
/// amount in it.
///
/// # Errors
/// `CouponCurrencyMismatch`.
pub fn check_currency(coupon: &Coupon, currency: Option<Currency>) -> Result<(), Error> {
    match (&coupon.discount, currency) {
        (Discount::Fixed(amounts), Some(c)) if !amounts.contains_key(&c) => Err(error(
            ErrorCode::CouponCurrencyMismatch,
            format!("coupon `{}` has no amount in `{c}`", coupon.id),
        )),
        _ => Ok(()),
    }
}

/// The catalog coupon of a subscription's applied coupon, with it (`None` without one, or
/// when the catalog no longer has it).
pub(crate) fn of_applied<'c, 'a>(
    catalog: &'c Catalog,
    applied: Option<&'a AppliedCoupon>,
) -> Option<(&'c Coupon, &'a AppliedCoupon)> {
    applied.and_then(|applied| {
        catalog
            .coupon(applied.coupon.as_str())
            .map(|c| (c, applied))
    })
}

/// Which lines of an invoice a coupon covers, by when the span each bills starts
/// ([`InvoiceLine::coverage_start`]): a line whose span starts inside the coupon's window is
/// covered whole, whatever invoice bills it, so a debit that waited for a later invoice
/// keeps the discount its span had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// No line: no coupon, or a spent `ONCE`.
    Nothing,
    /// The lines whose span starts before this instant: a `REPEATING` window's end.
    Before(DateTime<Utc>),
    /// Every line: an unspent `ONCE` (the first invoice it discounts), `FOREVER`, or a
    /// `REPEATING` window ending past the last instant (9999-12-31).
    Everything,
}

impl Coverage {
    /// What `applied` covers now: `ONCE` the first invoice after its redemption that it
    /// discounts; `REPEATING` (n) the lines whose span starts before redemption + n months;
    /// `FOREVER` every line.
    #[must_use]
    pub fn of(coupon: &Coupon, applied: &AppliedCoupon) -> Self {
        match coupon.duration {
            CouponDuration::Repeating(months) => {
                add_months(applied.redeemed_at, months).map_or(Self::Everything, Self::Before)
            }
            CouponDuration::Once if applied.invoices_discounted > 0 => Self::Nothing,
            CouponDuration::Once | CouponDuration::Forever => Self::Everything,
        }
    }

    /// Whether it covers a span starting at `start`.
    #[must_use]
    pub fn covers(self, start: DateTime<Utc>) -> bool {
        match self {
            Self::Nothing => false,
            Self::Before(end) => start < end,
            Self::Everything => true,
        }
    }
}

/// Whether `applied` still covers a line whose span starts at `start` (see [`Coverage`]).
#[must_use]
pub fn covers(coupon: &Coupon, applied: &AppliedCoupon, start: DateTime<Utc>) -> bool {
    Coverage::of(coupon, applied).covers(start)
}

/// Whether a coupon covers lines of `kind`: charges and proration debits (FORMAT.md §6),
/// never a credit and never usage.
#[must_use]
pub fn discountable(kind: LineKind) -> bool {
    matches!(kind, LineKind::Charge | LineKind::ProrationDebit)
}

/// What a coupon covering `coverage` covers on `lines`: the [`discountable`] lines it
/// covers, net of the covered credits that take back part of a debit never invoiced before
/// (it waited, and is billed with them: the coupon covers only the part of it that stays
/// charged), never below 0.
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn covered(lines: &[InvoiceLine], coverage: Coverage) -> Result<Decimal, Error> {
    Ok(money::sum(
        lines
            .iter()
            .filter(|l| discountable(l.kind) || l.credits_waiting_debit)
            .filter(|l| coverage.covers(l.coverage_start()))
            .map(|l| l.amount),
    )?
    .max(Decimal::ZERO))
}

/// The discount `coupon`, covering `coverage`, gives on `lines` in `currency`, on what it
/// [`covered`]: a percentage is applied once to that sum and rounded once; a fixed amount
/// is capped at it. `None` when the coupon does not apply to these lines: nothing is
/// covered, or a fixed coupon has no amount in `currency` (requests refuse to give a
/// subscription such a coupon, so only a changed catalog gets here, and the clock must not
/// stop on it).
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn discount(
    coupon: &Coupon,
    coverage: Coverage,
    lines: &[InvoiceLine],
    currency: Currency,
    rounding: RoundingMode,
) -> Result<Option<Decimal>, Error> {
    let covered = covered(lines, coverage)?;
    if covered.is_zero() {
        return Ok(None);
    }
    match &coupon.discount {
        Discount::Percentage(p) => {
            money::mul_div(covered, *p, Decimal::ONE_HUNDRED, currency, rounding).map(Some)
        }
        Discount::Fixed(amounts) => Ok(amounts
            .get(&currency)
            .map(|fixed| currency.round((*fixed).min(covered), rounding))),
    }
}
