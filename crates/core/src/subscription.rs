//! Subscriptions: what a customer holds, its status, its billing period and what has been
//! charged for it.

use crate::catalog::{Catalog, Plan, ScheduleStrategy};
use crate::error::{Error, ErrorCode};
use crate::id::{
    CountryCode, CouponId, CustomerId, FeatureId, PlanId, ProductId, ResourceId, SubscriptionId,
};
use crate::money::Currency;
use crate::period::{BillingPeriod, Period};
use crate::pricing::{AddonQuantity, ComponentSource, Configuration};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionStatus {
    /// Waiting for its start date; grants nothing.
    NotStarted,
    /// Started, but payment could not be collected yet; grants nothing.
    PaymentPending,
    /// In its trial; grants its plan's entitlements.
    InTrial,
    /// Paid (or free) and running; grants its plan's entitlements.
    Active,
    /// Ended by a cancellation, a replacement or a conversion.
    Canceled,
    /// A trial that ran out without converting.
    Expired,
}

impl SubscriptionStatus {
    /// The status's name, as FORMAT.md spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NOT_STARTED",
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::InTrial => "IN_TRIAL",
            Self::Active => "ACTIVE",
            Self::Canceled => "CANCELED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Live subscriptions count towards a scope's one-trial, one-non-trial rule.
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::InTrial | Self::PaymentPending)
    }

    /// Only trials and active subscriptions grant entitlements.
    #[must_use]
    pub fn is_entitling(self) -> bool {
        matches!(self, Self::Active | Self::InTrial)
    }

    /// Whether the subscription has ended for good.
    #[must_use]
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Canceled | Self::Expired)
    }

    /// Whether the subscription waits, charged nothing yet: for its start date or for a
    /// payment method.
    #[must_use]
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::NotStarted | Self::PaymentPending)
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// Replaced by a plan change, or a trial replaced by another trial or a paid start.
    UpgradeOrDowngrade,
    /// A trial replaced by the paid subscription bought during it.
    TrialConverted,
    /// A trial that ran out.
    TrialEnded,
    /// Canceled with immediate effect.
    Immediate,
    /// Canceled for a later date, which came.
    ScheduledCancellation,
    /// Payment never arrived during the first billing period.
    PendingPaymentExpired,
    /// The customer was archived.
    CustomerArchived,
}

/// How a subscription's invoices are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentCollectionMethod {
    /// Charged to the customer's payment method.
    #[default]
    Charge,
    /// Invoiced, paid by other means.
    Invoice,
    /// Not collected.
    None,
}

/// What kind of change is waiting on a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScheduledUpdateType {
    /// A plan change: a new subscription replaces this one.
    PlanChange,
    /// An in-place update of quantities, add-ons or billing period.
    Update,
    /// A move to the plan's latest version.
    Migration,
}

/// A change stored on a subscription, applied at `scheduled_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduledUpdate {
    /// The kind of change.
    pub kind: ScheduledUpdateType,
    /// When it applies.
    pub scheduled_at: DateTime<Utc>,
    /// The configuration it moves to.
    pub target: Configuration,
    /// The id the replacing subscription gets (plan changes).
    pub new_subscription_id: Option<SubscriptionId>,
    /// How the change was timed.
    pub strategy: ScheduleStrategy,
    /// The coupon the request brought (plan changes): the replacing subscription gets it
    /// instead of the current one's, from when it applies.
    pub coupon: Option<AppliedCoupon>,
    /// The tax percentage the request gave (plan changes): the replacing subscription
    /// keeps it for its renewals.
    pub tax_percentage: Option<Decimal>,
    /// The collection method the request gave (plan changes).
    pub payment_collection_method: Option<PaymentCollectionMethod>,
    /// The metadata the request gave (plan changes), replacing the current one's.
    #[serde(deserialize_with = "crate::stored::unique_map_option")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl ScheduledUpdate {
    /// Moves `sub` to what this change leads to: its configuration and whatever terms the
    /// request brought (coupon, tax percentage, collection method, metadata); terms it
    /// left out stay as they are.
    pub fn apply_to(&self, sub: &mut Subscription) {
        sub.config = self.target.clone();
        if let Some(coupon) = &self.coupon {
            sub.coupon = Some(coupon.clone());
        }
        if let Some(pct) = self.tax_percentage {
            sub.tax_percentage = Some(pct);
        }
        if let Some(method) = self.payment_collection_method {
            sub.payment_collection_method = method;
        }
        if let Some(metadata) = &self.metadata {
            sub.metadata = metadata.clone();
        }
    }
}

/// A charge made for one price component over the span it covered: the ledger that
/// credits for unused time are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChargedComponent {
    /// The component.
    pub source: ComponentSource,
    /// Its exact full-period amount when it was charged: a component with the same source
    /// and full-period amount is the same component.
    pub full_amount: Decimal,
    /// The component's quantity when it was charged (1 for a flat fee).
    pub quantity: u64,
    /// The component's unit price when it was charged; a discount recorded on the amount
    /// leaves it as it is.
    pub unit_price: Decimal,
    /// The currency charged.
    pub currency: Currency,
    /// The amount charged (a rounded invoice line).
    pub amount: Decimal,
    /// The span it paid for.
    pub covered: Period,
    /// Whether its charge is a proration debit still waiting on the subscription for its
    /// next invoice (`CREATE_PRORATIONS`): nothing is paid yet, so the invoice that bills
    /// it records what its coupon left to pay, and a credit for it before then goes on
    /// that same invoice.
    #[serde(default)]
    pub waiting: bool,
    /// The component it stands for now, when a change without proration put another in its
    /// place (`prorationBehavior: NONE`): what was paid for `source` stays paid for this one
    /// until the period ends. Absent when it stands for the component it was charged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Box<HeldComponent>>,
    /// What a coupon left to pay of the charge, as an exact share, when the invoice that
    /// billed it discounted it: `amount` is `charged × paid / billed` cut to 28 digits, and
    /// a credit for the entry is computed from the three, so a credit exactly halfway
    /// between two minor units rounds as the tie it is. Absent when the charge was paid in
    /// full (or nothing was paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discounted: Option<Box<PaidShare>>,
}

/// The exact share of a ledger entry's charge a discounted invoice left to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaidShare {
    /// The amount charged before the discount.
    pub charged: Decimal,
    /// What the invoice's covered lines came to after the discount.
    pub paid: Decimal,
    /// What they came to before it.
    pub billed: Decimal,
}

/// A component a ledger entry stands for in place of the one it was charged for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeldComponent {
    /// The component.
    pub source: crate::pricing::ComponentSource,
    /// Its exact full-period amount.
    pub full_amount: Decimal,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// The customer holding it.
    pub customer: CustomerId,
    /// The product it is for.
    pub product: ProductId,
    /// The resource it is for (multi-subscription products only).
    pub resource: Option<ResourceId>,
    /// What it is made of.
    pub config: Configuration,
    /// Whether it is a trial.
    pub is_trial: bool,
    /// Its status.
    pub status: SubscriptionStatus,
    /// When it starts (or started).
    pub start_date: DateTime<Utc>,
    /// When it ended.
    pub end_date: Option<DateTime<Utc>>,
    /// When its trial ends.
    pub trial_end: Option<DateTime<Utc>>,
    /// What happens when its trial ends.
    pub trial_end_behavior: Option<crate::catalog::TrialEndBehavior>,
    /// The anchor of its billing periods.
    pub billing_anchor: Option<DateTime<Utc>>,
    /// The billing period it is in (during a trial: `[start, trialEnd)`).
    pub current_period: Option<Period>,
    /// When it ends or ended: a pending cancellation shows its future date.
    pub cancellation_date: Option<DateTime<Utc>>,
    /// Why it will end, for a pending cancellation (not shown until it takes effect).
    pub pending_cancel_reason: Option<CancelReason>,
    /// Why it ended, once it has.
    pub cancel_reason: Option<CancelReason>,
    /// Whether a pending cancellation credits the unused rest of its period when it happens.
    pub credit_on_cancel: bool,
    /// Whether a pending cancellation skips the product's end setup (`REVOKE_ENTITLEMENTS`).
    pub revoke_on_cancel: bool,
    /// Changes waiting to apply.
    pub scheduled_updates: Vec<ScheduledUpdate>,
    /// How its invoices are collected.
    pub payment_collection_method: PaymentCollectionMethod,
    /// Tax percentage for its invoices, overriding the customer's.
    pub tax_percentage: Option<Decimal>,
    /// The coupon applied to it and when it was first redeemed.
    pub coupon: Option<AppliedCoupon>,
    /// What has been charged for its current span.
    pub charges: Vec<ChargedComponent>,
    /// Proration lines kept for the next invoice (`CREATE_PRORATIONS`).
    pub pending_lines: Vec<crate::invoice::InvoiceLine>,
    /// Free-form data from the host.
    #[serde(deserialize_with = "crate::stored::unique_map")]
    pub metadata: BTreeMap<String, String>,
}

/// A coupon applied to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppliedCoupon {
    /// The coupon.
    pub coupon: CouponId,
    /// The promotion code that redeemed it, if any.
    pub promotion_code: Option<String>,
    /// When it was first redeemed; durations count from here.
    pub redeemed_at: DateTime<Utc>,
    /// How many invoices it has discounted (a `ONCE` coupon stops after one).
    pub invoices_discounted: u32,
    /// The subscription the request that redeemed it created or changed: with the coupon,
    /// code and instant, it tells two redemptions of one code at one instant apart. Absent
    /// in states stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_on: Option<SubscriptionId>,
}

impl AppliedCoupon {
    /// Whether `other` is this same redemption (coupon, code, instant and the subscription
    /// it was redeemed on), however many invoices either has discounted since.
    #[must_use]
    pub fn same_redemption(&self, other: &Self) -> bool {
        self.is(
            &other.coupon,
            other.promotion_code.as_deref(),
            other.redeemed_at,
            other.redeemed_on.as_ref(),
        )
    }

    /// Whether it is the redemption of `coupon` by `code` at `at` on subscription `on`.
    pub(crate) fn is(
        &self,
        coupon: &CouponId,
        code: Option<&str>,
        at: DateTime<Utc>,
        on: Option<&SubscriptionId>,
    ) -> bool {
        &self.coupon == coupon
            && self.promotion_code.as_deref() == code
            && self.redeemed_at == at
            && self.redeemed_on.as_ref() == on
    }
}

impl Subscription {
    /// The plan it is on.
    #[must_use]
    pub fn plan_id(&self) -> &PlanId {
        &self.config.plan
    }

    /// Its billing period, if it has one.
    #[must_use]
    pub fn billing_period(&self) -> Option<BillingPeriod> {
        self.config.billing_period
    }

    /// Its billing country.
    #[must_use]
    pub fn country(&self) -> Option<CountryCode> {
        self.config.country
    }

    /// Its unit quantities.
    #[must_use]
    pub fn units(&self) -> &BTreeMap<FeatureId, u64> {
        &self.config.units
    }

    /// Its add-ons.
    #[must_use]
    pub fn addons(&self) -> &[AddonQuantity] {
        &self.config.addons
    }

    /// The plan version it is pinned to.
    ///
    /// # Errors
    /// `PlanNotFound` if the catalog no longer has it.
    pub fn plan<'c>(&self, catalog: &'c Catalog) -> Result<&'c Plan, Error> {
        catalog
            .plan(self.config.plan.as_str(), self.config.plan_version)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::PlanNotFound,
                    format!(
                        "plan `{}` version {} of subscription `{}` does not exist",
                        self.config.plan, self.config.plan_version, self.id
                    ),
                )
            })
    }

    /// Whether it is in the scope `(product, resource)`.
    #[must_use]
    pub fn in_scope(&self, product: &ProductId, resource: Option<&ResourceId>) -> bool {
        &self.product == product && self.resource.as_ref() == resource
    }

    /// Takes the uses `used`'s invoices made of the coupon redemption both carry: a
    /// subscription that carries it on (a change's successor), beside it (a parallel trial)
    /// or elsewhere (a transfer moved one of them to another resource) holds the one
    /// redemption, so a `ONCE` coupon a closing invoice spent is spent for it too. Nothing
    /// changes for another redemption. A redemption stored without the subscription it was
    /// redeemed on is known within its scope only. Whether it took any.
    pub(crate) fn share_coupon_uses(&mut self, used: &Self) -> bool {
        if self.id == used.id {
            return false;
        }
        let in_scope = self.in_scope(&used.product, used.resource.as_ref());
        match (self.coupon.as_mut(), used.coupon.as_ref()) {
            (Some(mine), Some(theirs))
                if mine.same_redemption(theirs)
                    && (mine.redeemed_on.is_some() || in_scope)
                    && mine.invoices_discounted < theirs.invoices_discounted =>
            {
                mine.invoices_discounted = theirs.invoices_discounted;
                true
            }
            _ => false,
        }
    }

    /// Moves a subscription that has not started to start at `start`, in its first period
    /// from there (anchored there when it has an anchor).
    ///
    /// # Errors
    /// `InvalidArgumentError` for a period past the last representable date.
    pub fn start_at(&mut self, start: DateTime<Utc>) -> Result<(), Error> {
        self.start_date = start;
        if self.billing_anchor.is_some() {
            self.billing_anchor = Some(start);
        }
        self.current_period = crate::period::first_period(start, self.config.billing_period)?;
        Ok(())
    }

    /// Cancels it at `at` for `reason`: with a credit for unused time when `credit`, its
    /// entitlements revoked at once when `revoke`.
    pub fn schedule_cancellation(
        &mut self,
        at: DateTime<Utc>,
        reason: CancelReason,
        credit: bool,
        revoke: bool,
    ) {
        self.cancellation_date = Some(at);
        self.pending_cancel_reason = Some(reason);
        self.credit_on_cancel = credit;
        self.revoke_on_cancel = revoke;
    }

    /// Drops a pending cancellation: it runs on.
    pub fn clear_pending_cancellation(&mut self) {
        self.cancellation_date = None;
        self.pending_cancel_reason = None;
        self.credit_on_cancel = false;
        self.revoke_on_cancel = false;
    }

    /// Ends it at `at` for `reason`, with the status FORMAT.md §6 gives: a trial that ran out
    /// expires, every other end cancels. One that ends while it waits to start or to be
    /// paid drops its coupon: it never discounted anything, and its promotion code is given
    /// back ([`crate::coupon::scheduled_redemptions`]).
    pub fn end(&mut self, at: DateTime<Utc>, reason: CancelReason) {
        if self.status.is_waiting() {
            self.coupon = None;
        }
        self.status = if reason == CancelReason::TrialEnded {
            SubscriptionStatus::Expired
        } else {
            SubscriptionStatus::Canceled
        };
        self.end_date = Some(at);
        self.cancellation_date = Some(at);
        self.cancel_reason = Some(reason);
        self.pending_cancel_reason = None;
        self.scheduled_updates.clear();
    }
}
