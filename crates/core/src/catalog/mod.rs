//! The catalog: features, products, plans, add-ons, coupons.
//!
//! A [`Catalog`] is built only by [`Catalog::from_json`], which parses FORMAT.md §1 and
//! validates everything SPEC.md §2 asks for, reporting every problem with its code and JSON
//! path. Once built, a catalog is immutable and consistent: every reference resolves, there
//! are no inheritance or dependency cycles, and every price can be charged.
//!
//! References between catalog entries (`parentPlanId`, add-on `dependencies`,
//! `compatibleAddonIds`, journey plans) name an id and resolve to its latest version.

mod entitlement_value;
mod load;
mod raw;

pub(crate) use entitlement_value::{FieldProblem, Fields, Kind, entitlement_value};
pub use load::{CatalogError, Problem};

use crate::id::{AddonId, CountryCode, CouponId, CustomerId, FeatureId, PlanId, ProductId};
use crate::money::Currency;
use crate::period::{BillingPeriod, TrialDuration};
use crate::pricing::ComponentSource;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A validated catalog. Its indexes hash with `FxHash`: ids come from the catalog, and a
/// lookup is a handful of instructions instead of `SipHash`'s rounds.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    features: Vec<Feature>,
    products: Vec<Product>,
    plans: Vec<Plan>,
    addons: Vec<Addon>,
    coupons: Vec<Coupon>,
    feature_index: FxHashMap<FeatureId, usize>,
    product_index: FxHashMap<ProductId, usize>,
    /// Positions in `plans` of each plan id's versions, in increasing version order.
    plan_versions: FxHashMap<PlanId, Vec<usize>>,
    addon_versions: FxHashMap<AddonId, Vec<usize>>,
    coupon_index: FxHashMap<CouponId, usize>,
    /// Promotion code text → (coupon position, code position within the coupon).
    promotion_index: FxHashMap<String, (usize, usize)>,
}

impl Catalog {
    /// Every feature, in catalog order.
    #[must_use]
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Every product, in catalog order.
    #[must_use]
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// Every plan version, in catalog order.
    #[must_use]
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// Every add-on version, in catalog order.
    #[must_use]
    pub fn addons(&self) -> &[Addon] {
        &self.addons
    }

    /// Every coupon, in catalog order.
    #[must_use]
    pub fn coupons(&self) -> &[Coupon] {
        &self.coupons
    }

    /// The feature `id`.
    #[must_use]
    pub fn feature(&self, id: &str) -> Option<&Feature> {
        self.feature_index
            .get(id)
            .and_then(|&i| self.features.get(i))
    }

    /// The product `id`.
    #[must_use]
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.product_index
            .get(id)
            .and_then(|&i| self.products.get(i))
    }

    /// Version `version` of plan `id`.
    #[must_use]
    pub fn plan(&self, id: &str, version: u32) -> Option<&Plan> {
        self.plan_versions
            .get(id)?
            .iter()
            .filter_map(|&i| self.plans.get(i))
            .find(|p| p.version == version)
    }

    /// The latest (highest) version of plan `id`.
    #[must_use]
    pub fn latest_plan(&self, id: &str) -> Option<&Plan> {
        self.plan_versions
            .get(id)?
            .last()
            .and_then(|&i| self.plans.get(i))
    }

    /// Version `version` of plan `id`, or its latest version when none is named (a
    /// request's `planVersion`).
    #[must_use]
    pub fn plan_or_latest(&self, id: &str, version: Option<u32>) -> Option<&Plan> {
        match version {
            Some(version) => self.plan(id, version),
            None => self.latest_plan(id),
        }
    }

    /// Version `version` of add-on `id`.
    #[must_use]
    pub fn addon(&self, id: &str, version: u32) -> Option<&Addon> {
        self.addon_versions
            .get(id)?
            .iter()
            .filter_map(|&i| self.addons.get(i))
            .find(|a| a.version == version)
    }

    /// The latest (highest) version of add-on `id`.
    #[must_use]
    pub fn latest_addon(&self, id: &str) -> Option<&Addon> {
        self.addon_versions
            .get(id)?
            .last()
            .and_then(|&i| self.addons.get(i))
    }

    /// The coupon `id`.
    #[must_use]
    pub fn coupon(&self, id: &str) -> Option<&Coupon> {
        self.coupon_index.get(id).and_then(|&i| self.coupons.get(i))
    }

    /// The promotion code `code` and the coupon it redeems.
    #[must_use]
    pub fn promotion_code(&self, code: &str) -> Option<(&Coupon, &PromotionCode)> {
        let &(c, p) = self.promotion_index.get(code)?;
        let coupon = self.coupons.get(c)?;
        Some((coupon, coupon.promotion_codes.get(p)?))
    }

    /// The ancestors of `plan`, nearest first (each the latest version of its id).
    ///
    /// A validated catalog has no cycles; the walk is bounded by the number of plan ids all
    /// the same.
    pub fn ancestors<'a>(&'a self, plan: &'a Plan) -> impl Iterator<Item = &'a Plan> + 'a {
        let mut next = plan.parent.as_ref();
        let mut remaining = self.plan_versions.len();
        std::iter::from_fn(move || {
            remaining = remaining.checked_sub(1)?;
            let parent = self.latest_plan(next?.as_str())?;
            next = parent.parent.as_ref();
            Some(parent)
        })
    }

    /// Whether plan `descendant` inherits, directly or transitively, from plan id `ancestor`.
    #[must_use]
    pub fn inherits_from(&self, descendant: &Plan, ancestor: &PlanId) -> bool {
        self.ancestors(descendant).any(|p| &p.id == ancestor)
    }

    /// The description of a credit for unused time of what `source` priced: ``unused time
    /// of plan `id` `` or ``unused time of add-on `id` ``, also for a version the catalog
    /// no longer has.
    #[must_use]
    pub fn credit_description(&self, source: &ComponentSource) -> Arc<str> {
        match source {
            ComponentSource::PlanPrice { plan, version, .. } => {
                self.plan(plan.as_str(), *version).map_or_else(
                    || plan_credit_description(plan),
                    |p| Arc::clone(&p.credit_description),
                )
            }
            ComponentSource::AddonPrice { addon, version, .. } => {
                self.addon(addon.as_str(), *version).map_or_else(
                    || addon_credit_description(addon),
                    |a| Arc::clone(&a.credit_description),
                )
            }
        }
    }
}

/// ``unused time of plan `id` ``.
pub(crate) fn plan_credit_description(plan: &PlanId) -> Arc<str> {
    Arc::from(format!("unused time of plan `{plan}`"))
}

/// ``unused time of add-on `id` ``.
pub(crate) fn addon_credit_description(addon: &AddonId) -> Arc<str> {
    Arc::from(format!("unused time of add-on `{addon}`"))
}

/// A feature customers can be entitled to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Feature {
    /// Its id.
    pub id: FeatureId,
    /// Display name.
    pub name: Option<String>,
    /// Display description.
    pub description: Option<String>,
    /// Display unit (`seat`, `GB`).
    pub unit: Option<String>,
    /// What kind of value an entitlement to it has.
    pub kind: FeatureKind,
}

/// The kind of a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureKind {
    /// On or off.
    Boolean,
    /// A number: a configuration value without a meter, a usage limit with one.
    Number {
        /// How usage is measured, if it is.
        meter: Option<Meter>,
    },
    /// A subset of declared values.
    Enum {
        /// The declared values, in declared order.
        values: Vec<String>,
    },
}

/// How usage of a metered feature is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Meter {
    /// Set by the host (seats in use); never resets.
    Fluctuating,
    /// Accumulates and resets each reset period (API calls).
    Incremental,
}

/// A product and its customer-journey settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Product {
    /// Its id.
    pub id: ProductId,
    /// Display name.
    pub name: Option<String>,
    /// Display description.
    pub description: Option<String>,
    /// Whether a customer may hold several subscriptions, one per resource.
    pub multiple_subscriptions: bool,
    /// What happens at the start and end of a customer's journey.
    pub journey: Journey,
}

/// A product's customer-journey settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Journey {
    /// What a new customer gets.
    pub start: StartSetup,
    /// What happens when the last subscription of a scope ends.
    pub end: EndSetup,
    /// When a downgrade applies unless the request says otherwise.
    pub downgrade_strategy: ScheduleStrategy,
    /// When a cancellation applies unless the request says otherwise.
    pub cancellation_time: CancellationTime,
    /// When a paid subscription bought during a trial of the same plan starts.
    pub trial_conversion: TrialConversion,
    /// Whether usage carries over a plan change.
    pub usage_reset_on_change: UsageReset,
}

/// What a new customer of a product gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartSetup {
    /// The plan the customer asks for.
    PlanSelection,
    /// This free plan, whatever is asked for.
    FreePlan(PlanId),
    /// A trial of this plan.
    TrialPeriod(PlanId),
}

/// What happens when a scope's last subscription ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSetup {
    /// Nothing: the customer has no subscription.
    CancelSubscription,
    /// The customer is moved to this free plan.
    DowngradeToFree(PlanId),
}

/// When a change or cancellation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScheduleStrategy {
    /// Now.
    #[default]
    Immediate,
    /// At the end of the current billing period.
    EndOfBillingPeriod,
    /// At the end of the current billing month (anchor + n months).
    EndOfBillingMonth,
}

/// When a cancellation takes effect by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationTime {
    /// Now.
    #[default]
    Immediate,
    /// At the end of the current billing period.
    EndOfBillingPeriod,
}

/// When a paid subscription bought during a trial of the same plan starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialConversion {
    /// When the trial ends.
    #[default]
    AtTrialEnd,
    /// Now; the trial ends now.
    Immediate,
}

/// Whether usage carries over a plan change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UsageReset {
    /// Usage starts from zero on every plan change.
    #[default]
    AlwaysReset,
    /// Usage carries over.
    NeverReset,
    /// Usage resets only when the billing period changes.
    BillingPeriodChange,
}

/// How a plan is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PricingType {
    /// No prices.
    Free,
    /// Self-serve prices.
    Paid,
    /// Negotiated outside the catalog; prices optional.
    Custom,
}

/// One version of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Its id, shared by all its versions.
    pub id: PlanId,
    /// Its version.
    pub version: u32,
    /// Display name.
    pub name: Option<String>,
    /// Display description.
    pub description: Option<String>,
    /// The product it belongs to.
    pub product: ProductId,
    /// How it is priced.
    pub pricing_type: PricingType,
    /// The plan it inherits entitlements from (latest version).
    pub parent: Option<PlanId>,
    /// The default price set.
    pub prices: PriceSet,
    /// Price sets by billing country; a country without one uses the default set.
    pub localized_prices: BTreeMap<CountryCode, PriceSet>,
    /// The trial a new customer gets unless told otherwise.
    pub default_trial: Option<TrialPolicy>,
    /// Add-ons that may be bought with it.
    pub compatible_addons: Vec<AddonId>,
    /// Its own entitlements (ancestors' apply where it has none for a feature).
    pub entitlements: Vec<Entitlement>,
    /// The description of a credit for unused time of it: ``unused time of plan `id` ``.
    pub credit_description: Arc<str>,
}

impl Plan {
    /// The price set for a billing country: its localized set when it has one with a price
    /// for `billing_period`, else the default set.
    #[must_use]
    pub fn price_set(
        &self,
        country: Option<CountryCode>,
        billing_period: BillingPeriod,
    ) -> &PriceSet {
        country
            .and_then(|c| self.localized_prices.get(&c))
            .filter(|set| set.has_period(billing_period))
            .unwrap_or(&self.prices)
    }

    /// The plan's billing period for a billing country when it prices exactly one (the
    /// default and the country's localized set together); `None` with none or several.
    #[must_use]
    pub fn only_billing_period(&self, country: Option<CountryCode>) -> Option<BillingPeriod> {
        let mut priced = [
            BillingPeriod::Monthly,
            BillingPeriod::Quarterly,
            BillingPeriod::Annually,
        ]
        .into_iter()
        .filter(|p| self.price_set(country, *p).has_period(*p));
        match (priced.next(), priced.next()) {
            (Some(period), None) => Some(period),
            _ => None,
        }
    }

    /// Whether `addon` may be bought with this plan.
    #[must_use]
    pub fn is_compatible(&self, addon: &AddonId) -> bool {
        self.compatible_addons.contains(addon)
    }
}

/// A plan's default trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrialPolicy {
    /// How long it lasts.
    pub duration: TrialDuration,
    /// What happens at its end.
    pub end_behavior: TrialEndBehavior,
    /// Whether starting it needs a payment method.
    pub requires_payment_method: bool,
}

/// What happens when a trial ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialEndBehavior {
    /// It becomes a paid subscription if payment is possible, else it expires.
    #[default]
    ConvertToPaid,
    /// It expires.
    CancelSubscription,
}

/// A set of prices in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PriceSet {
    /// The prices, in catalog order.
    pub prices: Vec<Price>,
}

impl PriceSet {
    /// Whether the set has any price billed every `billing_period`.
    #[must_use]
    pub fn has_period(&self, billing_period: BillingPeriod) -> bool {
        self.prices
            .iter()
            .any(|p| p.billing_period == billing_period)
    }

    /// The set's currency (all its prices share it), or `None` for an empty set.
    #[must_use]
    pub fn currency(&self) -> Option<Currency> {
        self.prices.first().map(|p| p.currency)
    }

    /// Whether the set has no price.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }
}

/// One price of a plan or add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Price {
    /// How often it is charged.
    pub billing_period: BillingPeriod,
    /// Its currency.
    pub currency: Currency,
    /// How the amount is computed.
    pub model: PriceModel,
    /// The description of an invoice line for this price: the plan's or add-on's name
    /// (else id), with the feature for a per-unit price (`Pro (seats)`) and a usage-based
    /// one (`Pro (api-calls usage)`).
    pub description: Arc<str>,
}

/// How a price's amount is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceModel {
    /// A fixed amount per period.
    FlatFee {
        /// The amount.
        amount: Decimal,
    },
    /// A quantity of a feature chosen when subscribing, charged in advance each period; the
    /// quantity is also the entitlement limit of the feature.
    PerUnit {
        /// The feature whose quantity is bought.
        feature: FeatureId,
        /// How the quantity is priced.
        scheme: UnitScheme,
        /// The smallest quantity that may be bought.
        min_quantity: u64,
        /// The largest quantity that may be bought.
        max_quantity: Option<u64>,
    },
    /// Reported usage of a feature, billed in arrears at the end of each period.
    UsageBased {
        /// The metered feature.
        feature: FeatureId,
        /// How the usage is priced.
        scheme: UnitScheme,
    },
}

/// How a quantity is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitScheme {
    /// Every unit at one price.
    PerUnit {
        /// The price of one unit.
        unit_price: Decimal,
    },
    /// Whole blocks: the quantity is rounded up to a multiple of `block_size`.
    Package {
        /// Units per block.
        block_size: u64,
        /// The price of one block.
        unit_price: Decimal,
    },
    /// Tiers of quantity.
    Tiered {
        /// Graduated or volume.
        mode: TiersMode,
        /// Tiers with strictly increasing bounds; only the last is unbounded.
        tiers: Vec<Tier>,
    },
}

/// How tiers price a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TiersMode {
    /// Each tier prices the units that fall in it.
    Graduated,
    /// The tier containing the quantity prices every unit.
    Volume,
}

/// One tier of a tiered price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tier {
    /// The last quantity in the tier (inclusive); `None` for the last tier.
    pub up_to: Option<u64>,
    /// The price of each unit in the tier.
    pub unit_price: Decimal,
    /// A fee charged once when the quantity reaches the tier.
    pub flat_price: Decimal,
}

impl Tier {
    /// A tier up to `up_to` units (inclusive; `None` for the last tier) at `unit_price` per
    /// unit, plus `flat_price` once when the quantity reaches it.
    #[must_use]
    pub fn new(up_to: Option<u64>, unit_price: Decimal, flat_price: Decimal) -> Self {
        Self {
            up_to,
            unit_price,
            flat_price,
        }
    }
}

/// An entitlement to one feature, granted by a plan or an add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entitlement {
    /// The feature.
    pub feature: FeatureId,
    /// What is granted.
    pub value: EntitlementValue,
    /// How an add-on's entitlement combines with the plan's (plans: always `Increment`).
    pub behavior: AddonBehavior,
}

/// What an entitlement grants, by feature kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum EntitlementValue {
    /// Access to a boolean feature.
    Boolean {
        /// Whether access is granted.
        granted: bool,
    },
    /// A numeric configuration value.
    Numeric {
        /// The value.
        value: u64,
    },
    /// A usage limit on a metered feature.
    Metered {
        /// The limit.
        limit: UsageLimit,
        /// Whether usage beyond the limit is allowed (and only reported).
        soft_limit: bool,
        /// When usage resets, for incremental meters.
        reset: Option<Reset>,
    },
    /// A subset of an enum feature's values.
    Enum {
        /// The granted values, in the feature's declared order.
        values: Vec<String>,
    },
}

/// A usage limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UsageLimit {
    /// No limit.
    Unlimited,
    /// At most this much usage per reset period.
    Limited(u64),
}

/// When metered usage resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Reset {
    /// How often.
    pub period: ResetPeriod,
    /// What the windows are aligned to.
    pub anchor: ResetAnchor,
}

/// How often metered usage resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResetPeriod {
    /// Every hour.
    Hour,
    /// Every day.
    Day,
    /// Every week.
    Week,
    /// Every month.
    Month,
    /// Every year.
    Year,
}

/// What reset windows are aligned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResetAnchor {
    /// The subscription's start.
    #[default]
    SubscriptionStart,
    /// The first of each month.
    StartOfTheMonth,
    /// Each Monday.
    EveryMonday,
    /// Each Tuesday.
    EveryTuesday,
    /// Each Wednesday.
    EveryWednesday,
    /// Each Thursday.
    EveryThursday,
    /// Each Friday.
    EveryFriday,
    /// Each Saturday.
    EverySaturday,
    /// Each Sunday.
    EverySunday,
}

/// How an add-on's entitlement combines with the plan's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddonBehavior {
    /// Adds `value × quantity`.
    #[default]
    Increment,
    /// Lifts the base to this value (never lowers it).
    Override,
}

/// One version of an add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Addon {
    /// Its id, shared by all its versions.
    pub id: AddonId,
    /// Its version.
    pub version: u32,
    /// Display name.
    pub name: Option<String>,
    /// Display description.
    pub description: Option<String>,
    /// The product it belongs to.
    pub product: ProductId,
    /// The largest quantity one subscription may hold (1 for a single-instance add-on).
    pub max_quantity: u32,
    /// Add-ons that must be on the same subscription.
    pub dependencies: Vec<AddonId>,
    /// Its prices (flat fees, charged per unit of quantity). None means it is free.
    pub prices: PriceSet,
    /// What one unit of it grants.
    pub entitlements: Vec<Entitlement>,
    /// The description of a credit for unused time of it: ``unused time of add-on `id` ``.
    pub credit_description: Arc<str>,
}

/// A coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Coupon {
    /// Its id.
    pub id: CouponId,
    /// Display name.
    pub name: Option<String>,
    /// Display description.
    pub description: Option<String>,
    /// What it takes off.
    pub discount: Discount,
    /// How long it lasts.
    pub duration: CouponDuration,
    /// Codes that redeem it.
    pub promotion_codes: Vec<PromotionCode>,
}

/// What a coupon takes off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discount {
    /// A percentage, `0 < p ≤ 100`.
    Percentage(Decimal),
    /// A fixed amount per currency.
    Fixed(BTreeMap<Currency, Decimal>),
}

/// How long a coupon lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CouponDuration {
    /// The first invoice only.
    Once,
    /// Invoices whose period starts within this many months of the redemption.
    Repeating(u32),
    /// Every invoice.
    Forever,
}

/// A code that redeems a coupon, with its restrictions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PromotionCode {
    /// The code customers type.
    pub code: String,
    /// Redeemable from this instant (inclusive).
    pub active_from: Option<DateTime<Utc>>,
    /// Redeemable until this instant (exclusive).
    pub expires_at: Option<DateTime<Utc>>,
    /// How many times it may be redeemed in all.
    pub max_redemptions: Option<u64>,
    /// Only for customers with no earlier invoice above zero.
    pub first_purchase_only: bool,
    /// The smallest subtotal (before discount) it applies to.
    pub minimum_amount: Option<Decimal>,
    /// Only these customers may redeem it.
    pub customers: Option<Vec<CustomerId>>,
    /// Only these plans may be bought with it.
    pub plans: Option<Vec<PlanId>>,
}
