//! Metered usage (SPEC.md §6, FORMAT.md §6 "Entitlements and usage"): `reportUsage`, reset
//! windows and the usage reset on a plan change.
//!
//! Usage belongs to (customer, resource, feature): it is stored in the customer's
//! [`UsageLedger`] under the resource it was reported for (none for the product-wide scope)
//! and stays there when a subscription moves to another resource (FORMAT.md §6), so
//! entitlement checks count the resource's usage. Each record remembers the reset window
//! it was counted in; once that window has ended the record reads 0.
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
//!   reported; it reads as its value until that window ends. Under an entitlement that
//!   resets, it also counts only in the window of that entitlement's series holding its
//!   last report, a report before the series' anchor belonging to the first window
//!   ([`UsageRecord::current_under`]). So when the entitlement changes (`NEVER_RESET`
//!   keeps the usage), the usage carries into the new subscription's current window and
//!   reads 0 from its next one; usage counted without a window (no resetting entitlement
//!   when it was reported) expires the same way instead of counting forever. A `DELTA`
//!   adds to what is counted now.
//! - Reset windows: `SUBSCRIPTION_START` anchors the series at the source's start (the
//!   subscription, or the promotional grant); `START_OF_THE_MONTH` at 00:00 UTC on the 1st
//!   of that start's month; `EVERY_<WEEKDAY>` at 00:00 UTC on that weekday at or before the
//!   start (the catalog pairs `START_OF_THE_MONTH` with `MONTH` and a weekday with `WEEK`
//!   only). From the anchor, windows are consecutive hours, days (24 h), weeks (7 days),
//!   months or years (calendar months from the anchor, clamped to the month end). An instant
//!   before the anchor belongs to the first window.
//! - On a plan change ([`reset_usage_on_change`]): `ALWAYS_RESET` resets, `NEVER_RESET`
//!   keeps, `BILLING_PERIOD_CHANGE` resets when the billing periods differ (a subscription
//!   without a billing period differs from one with). Only `INCREMENTAL` features whose
//!   value has a reset period in the old or the new configuration reset. The change's
//!   resource is reset; a product-wide subscription applies to every resource, so its
//!   change resets the feature's usage under every resource. [`usage_resets`] names what
//!   a change would reset without changing anything.
//!
//! # Usage-based prices (FORMAT.md §6 "Invoices and money")
//!
//! [`bill_usage`] prices the usage of a closing billing period; the clock calls it at each
//! renewal and whenever a subscription's period closes early (a cancellation, a
//! replacement, a scheduled change). A change in place applied now calls it when it starts
//! a new period or moves the usage to other prices (`same_usage_prices`), so the usage
//! reported so far is billed at the prices it was reported under. Reset windows and
//! billing periods need not agree (a daily window under a monthly price, a yearly window
//! under a monthly price, usage that never resets), so a record's value cannot say what a
//! period used. Rules decided here:
//!
//! - A report is attributed, when it is made, to the billing period containing it of the
//!   scope's active non-trial subscription that has a usage-based price on the feature
//!   (the scope being the report's resource, none for a product-wide subscription). Usage
//!   reported with no such subscription (a free plan, a trial, a subscription waiting for
//!   payment) is never billed.
//! - Incremental meters bill the net change reported during the closing period: every
//!   unit reported is billed exactly once, in the period it was reported in, whichever
//!   windows it was counted in. A correction (a negative `DELTA`, a lower `SET`) reduces
//!   the period's usage, never below 0.
//! - Fluctuating meters (a level, like storage) bill the highest level held during the
//!   closing period, which is the level at the close when nothing was reported during it.
//!   When a change within the period carries it on under another configuration, each
//!   configuration bills the highest level held while it held the period, at its prices,
//!   for its share of the period (the proration policy's measure), so the level is billed
//!   once over the period, split by time ([`Split`]).
//! - A transfer moves the usage owed with the subscription ([`unbilled_moves`]): what was
//!   reported under the resource it leaves since its period start is billed at its close,
//!   with what it reports under the new resource; a fluctuating meter's levels held under
//!   both resources at the transfer count towards the period's highest level. Usage
//!   reported under the old resource afterwards belongs to whatever holds it then.
//! - A report that the invoice billing its period could not hold (the period's usage, the
//!   next period's charges, waiting prorations and tax beyond what a decimal holds) is
//!   `AmountTooLarge` and changes nothing: accepted, it would stop the clock there.
//! - Billed usage leaves the unbilled ledger; a usage reset on a plan change removes
//!   records but not usage still owed. Usage attributed to a period that closed without
//!   billing it (its subscription had no usage price any more) is dropped at the next
//!   close.

use crate::catalog::{
    Catalog, EntitlementValue, FeatureKind, Meter, Plan, PriceModel, PricingType, Reset,
    ResetAnchor, ResetPeriod, UnitScheme, UsageReset,
};
use crate::customer::CustomerState;
use crate::entitlement::{EntitlementSet, configuration_values};
use crate::error::{Error, ErrorCode};
use crate::id::{CustomerId, FeatureId, ProductId, ResourceId};
use crate::invoice::{InvoiceLine, LineKind};
use crate::money::{self, Currency, RoundingMode};
use crate::period::{Period, PeriodSeries};
use crate::pricing::{Configuration, recurring_amount, scheme_amount};
use crate::proration::Fraction;
use crate::subscription::{Subscription, SubscriptionStatus};
use crate::view::instant;
use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc, Weekday};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Usage of one feature in one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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

    /// The usage it counts at `now` for an entitlement whose usage resets by `reset` from
    /// `anchored_at` (`None`: never resets): what [`Self::current`] counts, and, when the
    /// entitlement resets, only in the window of its series that holds the record's last
    /// report (a report before the anchor belongs to the first window). So usage counted
    /// without a window, or in the window of an entitlement that no longer applies, reads
    /// as 0 once the current series has moved on from where it was reported.
    #[must_use]
    pub fn current_under(&self, reset: Option<(Reset, DateTime<Utc>)>, now: DateTime<Utc>) -> u64 {
        let moved_on = reset.is_some_and(|(reset, anchored_at)| {
            let window = reset_window(reset, anchored_at, now);
            window.is_some() && window != reset_window(reset, anchored_at, self.updated_at)
        });
        if moved_on { 0 } else { self.current(now) }
    }
}

/// A customer's usage, by resource (none for the product-wide scope) and feature.
///
/// Stored as `{productWide: {feature: record}, byResource: {resource: {feature: record}},
/// unbilled: [{resource, feature, period, net, peak}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageLedger {
    #[serde(deserialize_with = "crate::stored::unique_map")]
    product_wide: BTreeMap<FeatureId, UsageRecord>,
    #[serde(deserialize_with = "unique_by_resource")]
    by_resource: BTreeMap<ResourceId, BTreeMap<FeatureId, UsageRecord>>,
    /// Usage not billed yet, by scope, feature and the billing period it was reported in.
    /// Kept apart from the records: a reset window or a usage reset must not lose what a
    /// customer owes.
    #[serde(with = "stored_unbilled")]
    unbilled: Unbilled,
}

/// The records of every resource, refusing a resource or a feature written twice.
fn unique_by_resource<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<ResourceId, BTreeMap<FeatureId, UsageRecord>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Records(
        #[serde(deserialize_with = "crate::stored::unique_map")] BTreeMap<FeatureId, UsageRecord>,
    );
    let by_resource: BTreeMap<ResourceId, Records> = crate::stored::unique_map(deserializer)?;
    Ok(by_resource
        .into_iter()
        .map(|(resource, records)| (resource, records.0))
        .collect())
}

/// The unbilled usage as a list: its keys are not JSON object keys.
mod stored_unbilled {
    use super::{PeriodUsage, Unbilled};
    use crate::id::{FeatureId, ResourceId};
    use crate::period::Period;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Entry {
        resource: Option<ResourceId>,
        feature: FeatureId,
        period: Period,
        net: i128,
        peak: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    pub(super) fn serialize<S: Serializer>(
        unbilled: &Unbilled,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(unbilled.iter().flat_map(|((resource, feature), periods)| {
            periods.iter().map(|(period, usage)| Entry {
                resource: resource.clone(),
                feature: feature.clone(),
                period: *period,
                net: usage.net,
                peak: usage.peak,
                from: usage.from,
            })
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Unbilled, D::Error> {
        let mut unbilled = Unbilled::new();
        for entry in Vec::<Entry>::deserialize(deserializer)? {
            let periods = unbilled
                .entry((entry.resource, entry.feature.clone()))
                .or_default();
            if periods.contains_key(&entry.period) {
                return Err(de::Error::custom(format!(
                    "unbilled usage of `{}` is listed twice for one period",
                    entry.feature
                )));
            }
            periods.insert(
                entry.period,
                PeriodUsage {
                    net: entry.net,
                    peak: entry.peak,
                    from: entry.from,
                },
            );
        }
        Ok(unbilled)
    }
}

/// Unbilled usage by scope, feature and billing period.
type Unbilled = BTreeMap<(Option<ResourceId>, FeatureId), BTreeMap<Period, PeriodUsage>>;

/// What was reported during one billing period of a subscription with a usage-based price
/// on the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeriodUsage {
    /// The sum of the changes reported (incremental meters); a correction may make it
    /// negative.
    net: i128,
    /// The highest level held during the period (fluctuating meters).
    peak: u64,
    /// For a fluctuating meter, the instant a change closed the period's usage before its
    /// end while the period went on under a new configuration: the next close bills the
    /// highest level held since then, for the share of the period from then on.
    from: Option<DateTime<Utc>>,
}

/// Usage a subscription has not been billed for yet, moving with it to another resource
/// (a transfer): it is billed at the subscription's period close, wherever it was reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UnbilledMove {
    /// The metered feature of a usage-based price of the subscription.
    pub feature: FeatureId,
    /// The resource the subscription leaves.
    pub from: Option<ResourceId>,
    /// The resource it moves to.
    pub to: Option<ResourceId>,
    /// From the start of the subscription's billing period to the transfer: the usage
    /// reported in billing periods overlapping it moves.
    pub span: Period,
    /// For a fluctuating meter, the billing period containing the transfer: the levels
    /// held at the transfer, under either resource, were held during it.
    pub level_period: Option<Period>,
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

    /// Removes the usage of `feature` under `resource`.
    pub(crate) fn remove(&mut self, resource: Option<&str>, feature: &str) {
        match resource {
            None => {
                self.product_wide.remove(feature);
            }
            Some(r) => {
                if let Some(records) = self.by_resource.get_mut(r) {
                    records.remove(feature);
                }
            }
        }
    }

    /// Notes a report that moved the usage of `feature` under `resource` from `before` to
    /// `after` during the billing period `period`.
    fn note_unbilled(
        &mut self,
        resource: Option<&ResourceId>,
        feature: FeatureId,
        period: Period,
        before: u64,
        after: u64,
    ) {
        let entry = self
            .unbilled
            .entry((resource.cloned(), feature))
            .or_default()
            .entry(period)
            .or_insert(PeriodUsage {
                net: 0,
                // The level before the first report was held from the period's start.
                peak: before,
                from: None,
            });
        // The level before the report was held until now, also when it was reported
        // while no price of the meter applied.
        entry.peak = entry.peak.max(before).max(after);
        let change = i128::from(after).saturating_sub(i128::from(before));
        entry.net = entry.net.saturating_add(change);
    }

    /// Notes `segment`: the period's next close bills the highest level held since its
    /// change, for the share of the period from then on.
    pub(crate) fn note_segment(&mut self, segment: &UsageSegment) {
        let entry = self
            .unbilled
            .entry((segment.resource.clone(), segment.feature.clone()))
            .or_default()
            .entry(segment.period)
            .or_insert(PeriodUsage {
                net: 0,
                peak: segment.level,
                from: Some(segment.from),
            });
        entry.peak = entry.peak.max(segment.level);
        entry.from = entry.from.max(Some(segment.from));
    }

    /// Takes out the unbilled usage of `feature` under `resource` reported in billing
    /// periods overlapping `span`; older periods, already closed, are dropped. Each
    /// comes with its billing period.
    pub(crate) fn take_unbilled(
        &mut self,
        resource: Option<&ResourceId>,
        feature: &FeatureId,
        span: Period,
    ) -> Vec<(Period, PeriodUsage)> {
        let key = (resource.cloned(), feature.clone());
        let Some(periods) = self.unbilled.get_mut(&key) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        periods.retain(|period, usage| {
            if period.end <= span.start {
                return false;
            }
            if period.start < span.end {
                taken.push((*period, *usage));
                return false;
            }
            true
        });
        if periods.is_empty() {
            self.unbilled.remove(&key);
        }
        taken
    }

    /// Moves the usage of `moved.feature` under `moved.from` not billed yet, reported in
    /// billing periods overlapping `moved.span`, to `moved.to`, each under its billing
    /// period (added to what `moved.to` already holds for that period). For a fluctuating
    /// meter the levels held under both resources at `now` count towards the highest
    /// level of `moved.level_period`.
    pub(crate) fn move_unbilled(&mut self, moved: &UnbilledMove, now: DateTime<Utc>) {
        let from = (moved.from.clone(), moved.feature.clone());
        let mut taken = Vec::new();
        if let Some(periods) = self.unbilled.get_mut(&from) {
            periods.retain(|period, usage| {
                let overlaps = period.start < moved.span.end && moved.span.start < period.end;
                if overlaps {
                    taken.push((*period, *usage));
                }
                !overlaps
            });
            if periods.is_empty() {
                self.unbilled.remove(&from);
            }
        }
        let level = moved.level_period.map(|period| {
            let held = |resource: Option<&ResourceId>| {
                self.current(
                    resource.map(ResourceId::as_str),
                    moved.feature.as_str(),
                    now,
                )
            };
            let usage = PeriodUsage {
                net: 0,
                peak: held(moved.from.as_ref()).max(held(moved.to.as_ref())),
                from: None,
            };
            (period, usage)
        });
        if taken.is_empty() && level.is_none() {
            return;
        }
        let to = self
            .unbilled
            .entry((moved.to.clone(), moved.feature.clone()))
            .or_default();
        for (period, usage) in taken.into_iter().chain(level) {
            let entry = to.entry(period).or_insert(PeriodUsage {
                net: 0,
                peak: 0,
                from: None,
            });
            entry.net = entry.net.saturating_add(usage.net);
            entry.peak = entry.peak.max(usage.peak);
            entry.from = entry.from.max(usage.from);
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The result of a `reportUsage` request. Its `Serialize` is its stored shape (a recorded
/// answer); [`UsageReport::to_json`] is the answer FORMAT.md gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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
/// the customer never had, or a `SET` below 0; `AmountTooLarge` when the invoice that bills
/// the usage could not hold it.
pub fn report_usage(
    catalog: &Catalog,
    state: &mut CustomerState,
    request: &ReportUsageRequest,
    now: DateTime<Utc>,
) -> Result<UsageReport, Error> {
    crate::period::check_instants(&[("now", Some(now))])?;
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
    let entitlements = EntitlementSet::for_customer(catalog, state, resource, now);
    let entitlement = entitlements.get(feature.id.as_str());
    let window = entitlement.usage_period();
    // A `DELTA` adds to the usage the scope's entitlement counts now, never to usage of a
    // window that has ended.
    let current = entitlement.current_usage().unwrap_or_else(|| {
        state
            .usage
            .current(resource.map(ResourceId::as_str), feature.id.as_str(), now)
    });
    let value = match request.update_behavior {
        UpdateBehavior::Delta => {
            let sum = i128::from(current).saturating_add(i128::from(request.value));
            u64::try_from(sum.max(0)).unwrap_or(u64::MAX)
        }
        UpdateBehavior::Set => u64::try_from(request.value)
            .map_err(|_| bad_argument(format!("usage `{}` is below 0", request.value)))?,
    };
    if let Some((sub, period)) = billing_of_usage(catalog, state, resource, &feature.id, now)? {
        let mut billed = state.usage.clone();
        billed.note_unbilled(resource, feature.id.clone(), period, current, value);
        check_billable(catalog, state, &mut billed, sub, period).map_err(|e| {
            if e.code() != ErrorCode::AmountTooLarge {
                return e;
            }
            Error::new(
                ErrorCode::AmountTooLarge,
                format!(
                    "usage {value} of feature `{}` would be too large to bill on `{}`: {}",
                    feature.id,
                    sub.id,
                    e.message()
                ),
            )
        })?;
        state
            .usage
            .note_unbilled(resource, feature.id.clone(), period, current, value);
    }
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
/// started at `anchored_at`. `None` only when a date is out of range (years 0000 to 9999).
#[must_use]
pub fn reset_window(
    reset: Reset,
    anchored_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Period> {
    let anchor = aligned_anchor(reset.anchor, anchored_at)?;
    let window = match reset.period {
        ResetPeriod::Hour => fixed_window(anchor, TimeDelta::try_hours(1)?, now),
        ResetPeriod::Day => fixed_window(anchor, TimeDelta::try_days(1)?, now),
        ResetPeriod::Week => fixed_window(anchor, TimeDelta::try_weeks(1)?, now),
        ResetPeriod::Month => month_window(anchor, 1, now),
        ResetPeriod::Year => month_window(anchor, 12, now),
    }?;
    (crate::period::in_range(window.start) && crate::period::in_range(window.end)).then_some(window)
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

/// A usage-based price of a configuration: the metered feature, how its usage is priced
/// and the currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsagePrice<'c> {
    /// The plan the price belongs to.
    pub plan: &'c Plan,
    /// The metered feature.
    pub feature: &'c FeatureId,
    /// How its usage is priced.
    pub scheme: &'c UnitScheme,
    /// The price's currency.
    pub currency: Currency,
    /// The description of its invoice line.
    pub description: &'c Arc<str>,
}

/// The currency `config`'s invoices are in: that of its recurring amount (`recurring`),
/// else, for a plan priced by usage alone, that of its usage prices.
pub(crate) fn invoice_currency(
    catalog: &Catalog,
    config: &Configuration,
    recurring: Option<Currency>,
) -> Option<Currency> {
    recurring.or_else(|| usage_prices(catalog, config).first().map(|p| p.currency))
}

/// The usage-based prices of `config` for its billing period, from the same price set as
/// its recurring prices, in catalog order. None for a plan without prices or a
/// configuration without a billing period.
#[must_use]
pub fn usage_prices<'c>(catalog: &'c Catalog, config: &Configuration) -> Vec<UsagePrice<'c>> {
    let (Some(plan), Some(period)) = (
        catalog.plan(config.plan.as_str(), config.plan_version),
        config.billing_period,
    ) else {
        return Vec::new();
    };
    if plan.pricing_type == PricingType::Free {
        return Vec::new();
    }
    plan.price_set(config.country, period)
        .prices
        .iter()
        .filter(|p| p.billing_period == period)
        .filter_map(|p| match &p.model {
            PriceModel::UsageBased { feature, scheme } => Some(UsagePrice {
                plan,
                feature,
                scheme,
                currency: p.currency,
                description: &p.description,
            }),
            PriceModel::FlatFee { .. } | PriceModel::PerUnit { .. } => None,
        })
        .collect()
}

/// Whether `from` and `to` price usage alike: the same usage-based prices (feature, scheme
/// and currency) in the same order, whichever plan version they come from. A change in
/// place between them that keeps the billing period leaves the period's usage to its
/// renewal; any other change bills it first at `from`'s prices.
#[must_use]
pub(crate) fn same_usage_prices(
    catalog: &Catalog,
    from: &Configuration,
    to: &Configuration,
) -> bool {
    let (from, to) = (usage_prices(catalog, from), usage_prices(catalog, to));
    from.len() == to.len()
        && from.iter().zip(&to).all(|(a, b)| {
            a.feature == b.feature && a.scheme == b.scheme && a.currency == b.currency
        })
}

/// The subscription that bills the usage of `feature` under `resource` (an active,
/// non-trial subscription of that scope with a usage-based price on the feature), and its
/// billing period containing `now`.
fn billing_of_usage<'s>(
    catalog: &Catalog,
    state: &'s CustomerState,
    resource: Option<&ResourceId>,
    feature: &FeatureId,
    now: DateTime<Utc>,
) -> Result<Option<(&'s Subscription, Period)>, Error> {
    for sub in &state.subscriptions {
        if sub.status != SubscriptionStatus::Active
            || sub.is_trial
            || sub.resource.as_ref() != resource
            || !usage_prices(catalog, &sub.config)
                .iter()
                .any(|p| p.feature == feature)
        {
            continue;
        }
        if let Some(period) = billing_period_at(sub, now)? {
            return Ok(Some((sub, period)));
        }
    }
    Ok(None)
}

/// The billing period of `sub` containing `now`: its current one, or, when the clock has
/// not reached `now` yet, the one its anchor gives.
fn billing_period_at(sub: &Subscription, now: DateTime<Utc>) -> Result<Option<Period>, Error> {
    if let Some(period) = sub.current_period.filter(|p| p.contains(now)) {
        return Ok(Some(period));
    }
    match (sub.billing_anchor, sub.config.billing_period) {
        (Some(anchor), Some(bp)) => Ok(PeriodSeries::new(anchor, bp).containing(now)?),
        _ => Ok(None),
    }
}

/// The usage `sub` has not been billed for that moves with it to `to` at `now` (a
/// transfer): for each feature of its usage-based prices, what was reported under its
/// resource since the start of its billing period. Nothing for a subscription that is not
/// billed (a trial, one waiting for its start or for payment, a free one): no usage is
/// attributed to it.
///
/// # Errors
/// `InvalidArgumentError` for a billing period past the last representable date.
pub fn unbilled_moves(
    catalog: &Catalog,
    sub: &Subscription,
    to: &ResourceId,
    now: DateTime<Utc>,
) -> Result<Vec<UnbilledMove>, Error> {
    let Some(current) = sub.current_period else {
        return Ok(Vec::new());
    };
    if sub.status != SubscriptionStatus::Active || sub.is_trial || now <= current.start {
        return Ok(Vec::new());
    }
    let span = Period {
        start: current.start,
        end: now,
    };
    let mut moves: Vec<UnbilledMove> = Vec::new();
    for price in usage_prices(catalog, &sub.config) {
        if moves.iter().any(|m| &m.feature == price.feature) {
            continue;
        }
        let fluctuating = is_fluctuating(catalog, price.feature);
        let level_period = if fluctuating {
            billing_period_at(sub, now)?
        } else {
            None
        };
        moves.push(UnbilledMove {
            feature: price.feature.clone(),
            from: sub.resource.clone(),
            to: Some(to.clone()),
            span,
            level_period,
        });
    }
    Ok(moves)
}

/// Checks that the invoice closing `period` of `sub` can bill the usage of `usage` (taken
/// out of it): its usage lines, its waiting prorations and the charges of its next period
/// (priced here over `period`, which only changes the lines' spans, not their amounts) add
/// up, with the tax, to amounts a decimal holds to the currency's minor unit. A report is
/// refused when they do not: accepted, it would stop every later step of the customer at
/// that invoice, or have its cents cut there.
///
/// # Errors
/// `AmountTooLarge`, and those of [`bill_usage`] and [`recurring_amount`].
fn check_billable(
    catalog: &Catalog,
    state: &CustomerState,
    usage: &mut UsageLedger,
    sub: &Subscription,
    period: Period,
) -> Result<(), Error> {
    // The rounding of the engine's settings moves an amount by one minor unit at most.
    let rounding = RoundingMode::default();
    // The split does not change what a period bills at most: the whole period's level.
    let split = Split {
        policy: crate::proration::ProrationPolicy::default(),
        zone: state.customer.timezone,
        continues: false,
    };
    let bill = bill_usage(catalog, usage, sub, period, rounding, split)?;
    let Some(currency) = bill.currency else {
        return Ok(());
    };
    let quote = recurring_amount(catalog, &sub.config)?;
    let charges: Vec<InvoiceLine> = crate::provision::lines_only(crate::provision::charge_lines(
        &quote,
        period,
        &crate::settings::Settings::default(),
    ))
    .collect();
    let mut lines = bill.lines;
    lines.extend(charges);
    lines.extend(sub.pending_lines.iter().cloned());
    let totals = crate::invoice::totals(
        &lines,
        currency,
        Decimal::ZERO,
        Decimal::ZERO,
        crate::invoice::tax_rate(state, sub),
        rounding,
    )?;
    crate::invoice::held_to_the_minor_unit(&lines, &totals, currency)
}

/// Usage lines of a subscription for a span of time, with their currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBill {
    /// The currency of the usage-based prices; `None` when the subscription has none.
    pub currency: Option<Currency>,
    /// `USAGE` lines above zero, in price order.
    pub lines: Vec<InvoiceLine>,
}

/// A fluctuating meter's billing period that a change closed before its end and carried
/// on under a new configuration: the period's next close bills the highest level held
/// since `from`, for the share of the period from `from` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageSegment {
    /// The scope (none for the product-wide one).
    pub resource: Option<ResourceId>,
    /// The metered feature.
    pub feature: FeatureId,
    /// The billing period.
    pub period: Period,
    /// The instant of the change.
    pub from: DateTime<Utc>,
    /// The level held then.
    pub level: u64,
}

/// The segments a change at `at` that keeps `sub`'s billing period leaves for the new
/// configuration `next` to bill: for each fluctuating meter `next` prices, the level held
/// now, billed from now on for the rest of the period. A configuration bills a level for
/// its own share of the period only: a meter the new configuration does not price is
/// billed by no one after the change, and one it starts pricing is billed from the change
/// on, not from the period's start.
#[must_use]
pub fn segments_for(
    catalog: &Catalog,
    usage: &UsageLedger,
    sub: &Subscription,
    next: &Configuration,
    at: DateTime<Utc>,
) -> Vec<UsageSegment> {
    let Some(period) = sub.current_period.filter(|p| p.start < at && at < p.end) else {
        return Vec::new();
    };
    let resource = sub.resource.as_ref();
    let mut segments: Vec<UsageSegment> = Vec::new();
    for price in usage_prices(catalog, next) {
        if !is_fluctuating(catalog, price.feature)
            || segments.iter().any(|s| &s.feature == price.feature)
        {
            continue;
        }
        segments.push(UsageSegment {
            resource: resource.cloned(),
            feature: price.feature.clone(),
            period,
            from: at,
            level: usage
                .record(resource.map(ResourceId::as_str), price.feature.as_str())
                .map_or(0, |r| r.current(at)),
        });
    }
    segments
}

/// Whether `feature` is metered as a level (`FLUCTUATING`), billed at its highest.
fn is_fluctuating(catalog: &Catalog, feature: &FeatureId) -> bool {
    catalog.feature(feature.as_str()).is_some_and(|f| {
        f.kind
            == FeatureKind::Number {
                meter: Some(Meter::Fluctuating),
            }
    })
}

/// How a close shares a fluctuating meter's level between the configurations that held
/// its billing period: each bills the highest level held while it did, for its share of
/// the period as the proration policy measures it.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// The proration policy measuring shares of the period.
    pub policy: crate::proration::ProrationPolicy,
    /// The customer's time zone (day-based policies).
    pub zone: chrono_tz::Tz,
    /// Whether the billing period goes on after the close under a new configuration (a
    /// change keeping the period): the close bills its share up to now, not to the end.
    pub continues: bool,
}

impl Split {
    /// The split of the engine's `settings` for `state`'s customer.
    #[must_use]
    pub fn of(
        settings: &crate::settings::Settings,
        state: &CustomerState,
        continues: bool,
    ) -> Self {
        Self {
            policy: settings.proration,
            zone: state.customer.timezone,
            continues,
        }
    }

    /// The part of `period` a close over `span` bills a level for, when it is not the
    /// whole: the rest of the period from `from` (an earlier change within it), less the
    /// rest from `to` (a change now that the period goes on after), and the instant the
    /// part starts. `None` with neither.
    fn part(
        self,
        period: Period,
        span: Period,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Option<(Fraction, Fraction, DateTime<Utc>)>, Error> {
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        let rest = |t: Option<DateTime<Utc>>, whole: Fraction| match t {
            Some(t) => crate::proration::share(
                self.policy,
                self.zone,
                period.start,
                t,
                period.end,
                crate::proration::ProrationEvent::Change,
            ),
            None => Ok(whole),
        };
        Ok(Some((
            rest(from, Fraction::ONE)?,
            rest(to, Fraction::ZERO)?,
            from.map_or(span.start, |f| f.max(span.start)),
        )))
    }
}

/// The span of `sub`'s billing period that closes at `at` and whose usage is billed then:
/// from the period's start to `at` (at most the period's end). None for a subscription that
/// is not billed (a trial, one waiting for payment, an ended one) or an empty span.
#[must_use]
pub fn closing_span(sub: &Subscription, at: DateTime<Utc>) -> Option<Period> {
    let current = sub.current_period?;
    let span = Period {
        start: current.start,
        end: at.min(current.end),
    };
    (sub.status == SubscriptionStatus::Active && !sub.is_trial && span.start < span.end)
        .then_some(span)
}

/// Bills the usage of `sub`'s usage-based prices over `span` (the period closing, or its
/// part up to the subscription's end): one `USAGE` line per price, quantity in blocks for a
/// package price, else in units; lines of amount zero are left out. What is billed leaves
/// `usage`, so no usage is billed twice.
///
/// Which usage counts: for an incremental meter, the usage reported during the billing
/// period(s) overlapping `span` (whatever the reset windows); for a fluctuating meter, the
/// highest level held during them (the level at the close when nothing was reported); in a
/// billing period that changed configuration within it, for the share of the period this
/// configuration held ([`Split`]).
///
/// # Errors
/// `AmountTooLarge` on overflow.
pub fn bill_usage(
    catalog: &Catalog,
    usage: &mut UsageLedger,
    sub: &Subscription,
    span: Period,
    rounding: RoundingMode,
    split: Split,
) -> Result<UsageBill, Error> {
    let prices = usage_prices(catalog, &sub.config);
    let resource = sub.resource.as_ref();
    let mut quantities: BTreeMap<&FeatureId, u64> = BTreeMap::new();
    // The share of the period a fluctuating meter's level is billed for (from, to), and
    // the instant its part of the period starts.
    let mut shares: BTreeMap<&FeatureId, (Fraction, Fraction, DateTime<Utc>)> = BTreeMap::new();
    for price in &prices {
        if quantities.contains_key(price.feature) {
            continue;
        }
        let taken = usage.take_unbilled(resource, price.feature, span);
        let fluctuating = is_fluctuating(catalog, price.feature);
        let quantity = if fluctuating {
            let held = usage
                .record(resource.map(ResourceId::as_str), price.feature.as_str())
                .map_or(0, |r| r.current(span.end));
            let level = taken.iter().map(|(_, u)| u.peak).max().unwrap_or(held);
            if let Some(period) = sub.current_period {
                // Since an earlier change within the period, or up to a change now that
                // the period goes on after, the level is billed for its share only.
                let from = taken
                    .iter()
                    .filter(|(p, _)| *p == period)
                    .filter_map(|(_, u)| u.from)
                    .max();
                let to = Some(span.end).filter(|end| split.continues && *end < period.end);
                if let Some(part) = split.part(period, span, from, to)? {
                    shares.insert(price.feature, part);
                }
            }
            level
        } else {
            let net = taken
                .iter()
                .fold(0i128, |sum, (_, u)| sum.saturating_add(u.net))
                .max(0);
            u64::try_from(net).unwrap_or(u64::MAX)
        };
        quantities.insert(price.feature, quantity);
    }
    let mut bill = UsageBill {
        currency: prices.first().map(|p| p.currency),
        lines: Vec::new(),
    };
    for price in &prices {
        let quantity = quantities.get(price.feature).copied().unwrap_or(0);
        let priced = scheme_amount(price.scheme, quantity)?;
        let (amount, period) = match shares.get(price.feature) {
            // The share [from, to) of the period: what the rest from `from` costs less
            // what the rest from `to` does, so the shares of one period add up.
            Some((from, to, start)) => (
                money::sub(
                    from.of(priced.amount, price.currency, rounding)?,
                    to.of(priced.amount, price.currency, rounding)?,
                )?,
                Period {
                    start: *start,
                    end: span.end,
                },
            ),
            None => (price.currency.round(priced.amount, rounding), span),
        };
        if amount.is_zero() {
            continue;
        }
        let unit_price = if priced.charged_quantity == 0 {
            Decimal::ZERO
        } else {
            money::div(priced.amount, Decimal::from(priced.charged_quantity))?
        };
        bill.lines.push(InvoiceLine {
            description: Arc::clone(price.description),
            kind: LineKind::Usage,
            period,
            quantity: priced.charged_quantity,
            unit_price,
            amount,
            credits_waiting_debit: false,
            billing_period_start: None,
        });
    }
    Ok(bill)
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

/// The (scope, feature) pairs whose recorded usage the product's `usageResetOnChange`
/// setting resets for `change`, sorted by feature then scope; nothing changes. A decision
/// records them in its effects; [`reset_usage_on_change`] removes them.
#[must_use]
pub fn usage_resets(
    catalog: &Catalog,
    usage: &UsageLedger,
    change: &PlanChange<'_>,
) -> Vec<(Option<ResourceId>, FeatureId)> {
    // Nothing recorded, nothing to reset: skip composing both configurations' values.
    if usage.is_empty() {
        return Vec::new();
    }
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
    let mut pairs = Vec::new();
    for feature in features {
        for scope in &scopes {
            if usage
                .record(scope.as_ref().map(ResourceId::as_str), feature.as_str())
                .is_some()
            {
                pairs.push((scope.clone(), feature.clone()));
            }
        }
    }
    pairs
}

/// Applies the product's `usageResetOnChange` setting to `usage` for `change`: removes the
/// records [`usage_resets`] names. Returns the features whose recorded usage was reset,
/// sorted (for `USAGE_RESET` events). Usage not billed yet stays owed.
pub fn reset_usage_on_change(
    catalog: &Catalog,
    usage: &mut UsageLedger,
    change: &PlanChange<'_>,
) -> Vec<FeatureId> {
    let pairs = usage_resets(catalog, usage, change);
    let mut reset: Vec<FeatureId> = Vec::new();
    for (scope, feature) in pairs {
        usage.remove(scope.as_ref().map(ResourceId::as_str), feature.as_str());
        if reset.last() != Some(&feature) {
            reset.push(feature);
        }
    }
    reset
}
