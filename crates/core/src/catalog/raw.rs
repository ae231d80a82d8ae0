//! The catalog exactly as FORMAT.md §1 writes it. Unknown keys and duplicate keys are
//! rejected here; everything that needs more than the JSON's shape is checked in `load`.
//!
//! Every struct derives its deserializer with `remote = "Self"` and is wrapped by
//! [`objects_only!`]: a derived struct deserializer also accepts a JSON array (fields by
//! position), so `[]` would pass as an empty catalog and `["sso", …]` as a feature.

use super::{
    AddonBehavior, CancellationTime, Meter, PricingType, ResetAnchor, ResetPeriod,
    ScheduleStrategy, TiersMode, TrialConversion, TrialEndBehavior, UsageReset,
};
use crate::period::{BillingPeriod, TrialUnit};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;

/// Implements `Deserialize` for structs that derive it with `remote = "Self"`, accepting a
/// JSON object only.
macro_rules! objects_only {
    ($($ty:ident => $what:literal),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        $ty::deserialize(de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    )*};
}

objects_only! {
    RawCatalog => "a catalog object",
    RawFeature => "a feature object",
    RawProduct => "a product object",
    RawJourney => "a journey object",
    RawPlan => "a plan object",
    RawPrice => "a price object",
    RawTier => "a tier object",
    RawTrial => "a trial object",
    RawEntitlement => "an entitlement object",
    RawAddon => "an add-on object",
    RawCoupon => "a coupon object",
    RawAmountOff => "an amount object",
    RawPromotionCode => "a promotion code object",
}

/// An amount as written: a JSON number or a string, kept as text so that no digit is lost
/// and so that its problems are reported with the catalog's other problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmountText(pub(crate) String);

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl<'de> Visitor<'de> for AmountVisitor {
            type Value = AmountText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount (a number or a numeric string)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AmountText, E> {
                Ok(AmountText(text.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<AmountText, E> {
                Ok(AmountText(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<AmountText, E> {
                Ok(AmountText(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<AmountText, E> {
                Ok(AmountText(n.to_string()))
            }
            // With `arbitrary_precision`, serde_json hands a number over as a one-entry map
            // holding its exact text. Any other object is the wrong type; it is rejected at
            // its first key rather than walked (it may be nested arbitrarily deep).
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AmountText, A::Error> {
                serde_json::Number::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|n| AmountText(n.to_string()))
                    .map_err(|_| de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCatalog {
    #[serde(default)]
    pub features: Vec<RawFeature>,
    #[serde(default)]
    pub products: Vec<RawProduct>,
    #[serde(default)]
    pub plans: Vec<RawPlan>,
    #[serde(default)]
    pub addons: Vec<RawAddon>,
    #[serde(default)]
    pub coupons: Vec<RawCoupon>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawFeatureType {
    Boolean,
    Number,
    Enum,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawFeature {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: RawFeatureType,
    pub meter: Option<Meter>,
    pub unit: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawProduct {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub multiple_subscriptions: bool,
    #[serde(default)]
    pub journey: RawJourney,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawStartSetup {
    #[default]
    PlanSelection,
    FreePlan,
    TrialPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawEndSetup {
    #[default]
    CancelSubscription,
    DowngradeToFree,
}

#[derive(Debug, Deserialize, Default)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawJourney {
    #[serde(default)]
    pub start_setup: RawStartSetup,
    pub start_plan_id: Option<String>,
    #[serde(default)]
    pub end_setup: RawEndSetup,
    pub downgrade_plan_id: Option<String>,
    #[serde(default)]
    pub downgrade_strategy: ScheduleStrategy,
    #[serde(default)]
    pub cancellation_time: CancellationTime,
    #[serde(default)]
    pub trial_conversion: TrialConversion,
    #[serde(default)]
    pub usage_reset_on_change: UsageReset,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawPlan {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub product_id: String,
    #[serde(default = "one")]
    pub version: u32,
    pub pricing_type: PricingType,
    pub parent_plan_id: Option<String>,
    #[serde(default)]
    pub prices: Vec<RawPrice>,
    #[serde(default)]
    pub localized_prices: LocalizedPrices,
    pub default_trial: Option<RawTrial>,
    #[serde(default)]
    pub compatible_addon_ids: Vec<String>,
    #[serde(default)]
    pub entitlements: Vec<RawEntitlement>,
}

/// `localizedPrices` in document order; a country given twice is an error.
#[derive(Debug, Default)]
pub(crate) struct LocalizedPrices(pub Vec<(String, Vec<RawPrice>)>);

impl<'de> Deserialize<'de> for LocalizedPrices {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LocalizedPrices;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of price lists by country code")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut sets: Vec<(String, Vec<RawPrice>)> = Vec::new();
                while let Some(country) = map.next_key::<String>()? {
                    if sets.iter().any(|(c, _)| *c == country) {
                        return Err(de::Error::custom(format!("duplicate field `{country}`")));
                    }
                    let prices = map.next_value()?;
                    sets.push((country, prices));
                }
                Ok(LocalizedPrices(sets))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawPriceModel {
    FlatFee,
    PerUnit,
    UsageBased,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawPrice {
    pub billing_period: BillingPeriod,
    pub model: RawPriceModel,
    pub currency: String,
    pub amount: Option<AmountText>,
    pub feature_id: Option<String>,
    pub unit_price: Option<AmountText>,
    pub tiers: Option<Vec<RawTier>>,
    pub tiers_mode: Option<TiersMode>,
    pub block_size: Option<i64>,
    pub min_unit_quantity: Option<i64>,
    pub max_unit_quantity: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTier {
    pub up_to: Option<i64>,
    pub unit_price: Option<AmountText>,
    pub flat_price: Option<AmountText>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTrial {
    pub duration: i64,
    pub unit: TrialUnit,
    #[serde(default)]
    pub end_behavior: TrialEndBehavior,
    #[serde(default)]
    pub requires_payment_method: bool,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawEntitlement {
    pub feature_id: String,
    pub granted: Option<bool>,
    pub value: Option<i64>,
    pub usage_limit: Option<i64>,
    pub has_unlimited_usage: Option<bool>,
    pub has_soft_limit: Option<bool>,
    pub reset_period: Option<ResetPeriod>,
    pub reset_anchor: Option<ResetAnchor>,
    pub values: Option<Vec<String>>,
    pub behavior: Option<AddonBehavior>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawAddon {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub product_id: String,
    #[serde(default = "one")]
    pub version: u32,
    pub max_quantity: Option<i64>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub prices: Vec<RawPrice>,
    #[serde(default)]
    pub entitlements: Vec<RawEntitlement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawCouponType {
    Percentage,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RawCouponDuration {
    Once,
    Repeating,
    Forever,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCoupon {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: RawCouponType,
    pub percent_off: Option<AmountText>,
    pub amounts_off: Option<Vec<RawAmountOff>>,
    pub duration: RawCouponDuration,
    pub duration_in_months: Option<i64>,
    #[serde(default)]
    pub promotion_codes: Vec<RawPromotionCode>,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawAmountOff {
    pub amount: AmountText,
    pub currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawPromotionCode {
    pub code: String,
    pub active_from: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    #[serde(default)]
    pub first_purchase_only: bool,
    pub minimum_amount: Option<AmountText>,
    pub customer_ids: Option<Vec<String>>,
    pub plan_ids: Option<Vec<String>>,
}
