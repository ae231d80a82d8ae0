//! Metered usage (SPEC.md §6, FORMAT.md §6 "Entitlements and usage"): `reportUsage`, reset
//! windows and the usage reset on a plan change.
//!
//! Usage belongs to (customer, resource, feature): it is stored in the customer's
//! [`UsageLedger`] under the resource it was reported for (none for the product-wide scope)
//! and stays there when a subscription moves to another resource. Each record remembers the
//! reset window it was counted in; once that window has ended the record reads 0.
//!
//! # Rules decided here (the documents are silent)
//!
//! - Usage is a whole number ≥ 0. A `DELTA` may be negative (seats released); the result
//!   never goes below 0 and saturates at `u64::MAX`. A `SET` below 0 is
//!   `InvalidArgumentError`.
//! - Only metered features take usage (`InvalidArgumentError` otherwise); a `resourceId` the
//!   customer never had a subscription for is `InvalidArgumentError`; an archived customer
//!   is `CustomerIsArchived`. Usage may be reported without a current entitlement: it is
//!   then counted without a window.
//! - A record is counted in the window of the scope's merged entitlement when it is
//!   reported; it reads as its value until that window ends, even when the entitlement
//!   changes in between (`NEVER_RESET` carries usage into the new subscription's window).
//! - Reset windows: `SUBSCRIPTION_START` anchors the series at the source's start (the
//!   subscription, or the promotional grant); `START_OF_THE_MONTH` at 00:00 UTC on the 1st
//!   of that start's month; `EVERY_<WEEKDAY>` at 00:00 UTC on that weekday at or before the
//!   start. From the anchor, windows are consecutive hours, days (24 h), weeks (7 days),
//!   months or years (calendar months from the anchor, clamped to the month end). An instant
//!   before the anchor belongs to the first window.
//! - On a plan change ([`reset_usage_on_change`]): `ALWAYS_RESET` resets, `NEVER_RESET`
//!   keeps, `BILLING_PERIOD_CHANGE` resets when the billing periods differ (a subscription
//!   without a billing period differs from one with). Only `INCREMENTAL` features whose
//!   value has a reset period in the old or the new configuration reset. The change's
//!   resource is reset; a product-wide subscription applies to every resource, so its
//!   change resets the feature's usage under every resource.

use crate::catalog::{
    Catalog, EntitlementValue, FeatureKind, Meter, Reset, ResetAnchor, ResetPeriod, UsageReset,
};
use crate::customer::CustomerState;
use crate::entitlement::{EntitlementSet, configuration_values};
use crate::error::{Error, ErrorCode};
use crate::id::{CustomerId, FeatureId, ProductId, ResourceId};
use crate::period::{Period, PeriodSeries};
use crate::pricing::Configuration;
use crate::view::instant;
use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Usage of one feature in one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRecord {
    /// The usage counted.
    pub value: u64,
    /// The reset window it was counted in; `None` for usage that never resets.
    pub window: Option<Period>,
    /// When it was last reported.
    pub updated_at: DateTime<Utc>,
}

impl UsageRecord {
    /// The usage it counts at `now`: its value until its window ends, then 0.
    #[must_use]
    pub fn current(&self, now: DateTime<Utc>) -> u64 {
        match self.window {
            Some(window) if now >= window.end => 0,
            Some(_) | None => self.value,
        }
    }
}

/// A customer's usage, by resource (none for the product-wide scope) and feature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageLedger {
    product_wide: BTreeMap<FeatureId, UsageRecord>,
    by_resource: BTreeMap<ResourceId, BTreeMap<FeatureId, UsageRecord>>,
}

impl UsageLedger {
    /// No usage.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of `feature` under `resource`.
    #[must_use]
    pub fn record(&self, resource: Option<&str>, feature: &str) -> Option<&UsageRecord> {
        match resource {
            None => self.product_wide.get(feature),
            Some(r) => self.by_resource.get(r)?.get(feature),
        }
    }

    /// The usage of `feature` under `resource` at `now` (0 once its window has ended).
    #[must_use]
    pub fn current(&self, resource: Option<&str>, feature: &str, now: DateTime<Utc>) -> u64 {
        self.record(resource, feature).map_or(0, |r| r.current(now))
    }

    /// Stores `record` for `feature` under `resource`.
    pub fn set(&mut self, resource: Option<&ResourceId>, feature: FeatureId, record: UsageRecord) {
        match resource {
            None => {
                self.product_wide.insert(feature, record);
            }
            Some(r) => {
                self.by_resource
                    .entry(r.clone())
                    .or_default()
                    .insert(feature, record);
            }
        }
    }

    /// Removes the usage of `feature` under `resource`; whether there was any.
    fn remove(&mut self, resource: Option<&str>, feature: &str) -> bool {
        match resource {
            None => self.product_wide.remove(feature).is_some(),
            Some(r) => self
                .by_resource
                .get_mut(r)
                .and_then(|m| m.remove(feature))
                .is_some(),
        }
    }

    /// Every resource with recorded usage.
    fn resources(&self) -> Vec<ResourceId> {
        self.by_resource.keys().cloned().collect()
    }

    /// Whether nothing is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.product_wide.is_empty() && self.by_resource.values().all(BTreeMap::is_empty)
    }
}

/// How a report changes the usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpdateBehavior {
    /// Adds the value (negative values subtract, down to 0).
    #[default]
    Delta,
    /// Replaces the usage with the value.
    Set,
}

/// A `reportUsage` request (FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReportUsageRequest {
    /// The customer.
    pub customer_id: CustomerId,
    /// The metered feature.
    pub feature_id: FeatureId,
    /// The amount.
    pub value: i64,
    /// `DELTA` (default) or `SET`.
    #[serde(default)]
    pub update_behavior: UpdateBehavior,
    /// The resource (default: the product-wide scope).
    pub resource_id: Option<ResourceId>,
}

/// The result of a `reportUsage` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// The feature.
    pub feature: FeatureId,
    /// The resource.
    pub resource: Option<ResourceId>,
    /// The usage after the report.
    pub current_usage: u64,
    /// The window it is counted in.
    pub usage_period: Option<Period>,
}

impl UsageReport {
    /// `{currentUsage, usagePeriodStart?, usagePeriodEnd?}` (FORMAT.md §2).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("currentUsage".to_owned(), json!(self.current_usage));
        if let Some(window) = self.usage_period {
            map.insert("usagePeriodStart".to_owned(), instant(window.start));
            map.insert("usagePeriodEnd".to_owned(), instant(window.end));
        }
        Value::Object(map)
    }
}

fn bad_argument(message: String) -> Error {
    Error::new(ErrorCode::InvalidArgumentError, message)
}

/// Records the usage `request` reports for the customer of `state` at `now`, in the
/// current window of the scope's merged entitlement. On an error nothing changes.
///
/// # Errors
/// `CustomerNotFound` when `state` is another customer's, `CustomerIsArchived`,
/// `FeatureNotFound`, `InvalidArgumentError` for a feature that is not metered, a resource
/// the customer never had, or a `SET` below 0.
pub fn report_usage(
    catalog: &Catalog,
    state: &mut CustomerState,
    request: &ReportUsageRequest,
    now: DateTime<Utc>,
) -> Result<UsageReport, Error> {
    if state.customer.id != request.customer_id {
        return Err(Error::new(
            ErrorCode::CustomerNotFound,
            format!("customer `{}` does not exist", request.customer_id),
        ));
    }
    state.ensure_active()?;
    let feature = catalog
        .feature(request.feature_id.as_str())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::FeatureNotFound,
                format!("feature `{}` does not exist", request.feature_id),
            )
        })?;
    if !matches!(feature.kind, FeatureKind::Number { meter: Some(_) }) {
        return Err(bad_argument(format!(
            "feature `{}` is not metered",
            feature.id
        )));
    }
    let resource = request.resource_id.as_ref();
    if let Some(r) = resource.filter(|r| !state.resources.contains(*r)) {
        return Err(bad_argument(format!(
            "customer `{}` has no resource `{r}`",
            state.customer.id
        )));
    }
    let window = EntitlementSet::for_customer(catalog, state, resource, now)
        .get(feature.id.as_str())
        .usage_period();
    let current = state
        .usage
        .current(resource.map(ResourceId::as_str), feature.id.as_str(), now);
    let value = match request.update_behavior {
        UpdateBehavior::Delta => {
            let sum = i128::from(current).saturating_add(i128::from(request.value));
            u64::try_from(sum.max(0)).unwrap_or(u64::MAX)
        }
        UpdateBehavior::Set => u64::try_from(request.value)
            .map_err(|_| bad_argument(format!("usage `{}` is below 0", request.value)))?,
    };
    state.usage.set(
        resource,
        feature.id.clone(),
        UsageRecord {
            value,
            window,
            updated_at: now,
        },
    );
    Ok(UsageReport {
        feature: feature.id.clone(),
        resource: request.resource_id.clone(),
        current_usage: value,
        usage_period: window,
    })
}

/// The reset window containing `now` of usage that resets by `reset`, for a source that
/// started at `anchored_at`. `None` only when a date is out of range.
#[must_use]
pub fn reset_window(
    reset: Reset,
    anchored_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Period> {
    let anchor = aligned_anchor(reset.anchor, anchored_at)?;
    match reset.period {
        ResetPeriod::Hour => fixed_window(anchor, TimeDelta::try_hours(1)?, now),
        ResetPeriod::Day => fixed_window(anchor, TimeDelta::try_days(1)?, now),
        ResetPeriod::Week => fixed_window(anchor, TimeDelta::try_weeks(1)?, now),
        ResetPeriod::Month => month_window(anchor, 1, now),
        ResetPeriod::Year => month_window(anchor, 12, now),
    }
}

fn aligned_anchor(anchor: ResetAnchor, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let weekday = match anchor {
        ResetAnchor::SubscriptionStart => return Some(start),
        ResetAnchor::StartOfTheMonth => {
            return Utc
                .with_ymd_and_hms(start.year(), start.month(), 1, 0, 0, 0)
                .single();
        }
        ResetAnchor::EveryMonday => Weekday::Mon,
        ResetAnchor::EveryTuesday => Weekday::Tue,
        ResetAnchor::EveryWednesday => Weekday::Wed,
        ResetAnchor::EveryThursday => Weekday::Thu,
        ResetAnchor::EveryFriday => Weekday::Fri,
        ResetAnchor::EverySaturday => Weekday::Sat,
        ResetAnchor::EverySunday => Weekday::Sun,
    };
    let midnight = start.date_naive().and_hms_opt(0, 0, 0)?.and_utc();
    let back = start
        .weekday()
        .num_days_from_monday()
        .checked_add(7)?
        .checked_sub(weekday.num_days_from_monday())?
        .checked_rem(7)?;
    midnight.checked_sub_signed(TimeDelta::try_days(i64::from(back))?)
}

fn fixed_window(anchor: DateTime<Utc>, length: TimeDelta, now: DateTime<Utc>) -> Option<Period> {
    let elapsed = now.signed_duration_since(anchor).num_seconds().max(0);
    let step = length.num_seconds();
    let n = elapsed.checked_div(step)?;
    let start = anchor.checked_add_signed(TimeDelta::try_seconds(n.checked_mul(step)?)?)?;
    let end = start.checked_add_signed(length)?;
    Some(Period { start, end })
}

fn month_window(anchor: DateTime<Utc>, months: u32, now: DateTime<Utc>) -> Option<Period> {
    let series = PeriodSeries::of_months(anchor, months);
    match series.containing(now).ok()? {
        Some(period) => Some(period),
        None => series.nth(0).ok(),
    }
}

/// A subscription replaced by another (a plan change), or updated in place (a billing
/// period change), in the scope (`product`, `resource`).
#[derive(Debug, Clone, Copy)]
pub struct PlanChange<'a> {
    /// The product of both subscriptions.
    pub product: &'a ProductId,
    /// The resource of the scope; `None` for a product-wide subscription.
    pub resource: Option<&'a ResourceId>,
    /// The configuration before the change.
    pub from: &'a Configuration,
    /// The configuration after the change.
    pub to: &'a Configuration,
}

/// Applies the product's `usageResetOnChange` setting to `usage` for `change`; returns the
/// features whose recorded usage was reset, sorted (for `USAGE_RESET` events).
pub fn reset_usage_on_change(
    catalog: &Catalog,
    usage: &mut UsageLedger,
    change: &PlanChange<'_>,
) -> Vec<FeatureId> {
    let setting = catalog
        .product(change.product.as_str())
        .map(|p| p.journey.usage_reset_on_change)
        .unwrap_or_default();
    let resets = match setting {
        UsageReset::AlwaysReset => true,
        UsageReset::NeverReset => false,
        UsageReset::BillingPeriodChange => change.from.billing_period != change.to.billing_period,
    };
    if !resets {
        return Vec::new();
    }
    let before = configuration_values(catalog, change.from);
    let after = configuration_values(catalog, change.to);
    let features: BTreeSet<&FeatureId> = before
        .iter()
        .chain(after.iter())
        .filter(|(_, value)| matches!(value, EntitlementValue::Metered { reset: Some(_), .. }))
        .map(|(feature, _)| *feature)
        .filter(|feature| {
            catalog.feature(feature.as_str()).is_some_and(|f| {
                f.kind
                    == FeatureKind::Number {
                        meter: Some(Meter::Incremental),
                    }
            })
        })
        .collect();
    let scopes: Vec<Option<ResourceId>> = match change.resource {
        Some(r) => vec![Some(r.clone())],
        None => std::iter::once(None)
            .chain(usage.resources().into_iter().map(Some))
            .collect(),
    };
    let mut reset = Vec::new();
    for feature in features {
        let mut removed = false;
        for scope in &scopes {
            // Every scope is visited: removing must not stop at the first hit.
            removed |= usage.remove(scope.as_ref().map(ResourceId::as_str), feature.as_str());
        }
        if removed {
            reset.push(feature.clone());
        }
    }
    reset
}

/// [`reset_usage_on_change`] for subscription `replaced` replaced by `replacement` in
/// `state`.
///
/// # Errors
/// `SubscriptionNotFound` when either is not in `state`.
pub fn reset_usage_on_replacement(
    catalog: &Catalog,
    state: &mut CustomerState,
    replaced: &str,
    replacement: &str,
) -> Result<Vec<FeatureId>, Error> {
    let find = |id: &str| {
        state
            .subscription(id)
            .cloned()
            .ok_or_else(|| crate::customer::not_found(id))
    };
    let old = find(replaced)?;
    let new = find(replacement)?;
    Ok(reset_usage_on_change(
        catalog,
        &mut state.usage,
        &PlanChange {
            product: &new.product,
            resource: new.resource.as_ref(),
            from: &old.config,
            to: &new.config,
        },
    ))
}
