//! Entitlements: the generous merge (SPEC.md §6, FORMAT.md §3 and §6).
//!
//! A check answers "may this customer use this feature, and how much?" for a scope
//! (customer, resource). It is answered from an [`EntitlementSet`], the immutable merged
//! entitlements of one scope built once per state change ([`EntitlementSet::build`]), so
//! that a check is a hash lookup by `&str` ([`EntitlementSet::get`] and the typed getters
//! [`EntitlementSet::boolean`], [`EntitlementSet::numeric`], [`EntitlementSet::metered`],
//! [`EntitlementSet::enumeration`]).
//!
//! # Sources and the value of one subscription
//!
//! The sources of a scope are its entitling subscriptions (status `ACTIVE` or `IN_TRIAL`)
//! for the scope's resource, the customer's product-wide subscriptions (those without a
//! resource: single-subscription products apply to every resource) and the customer's active
//! promotional grants (all scopes). One subscription's value for a feature is its plan's own
//! entitlement, else the nearest ancestor's; a per-unit price on the feature in the plan's
//! price set for the subscription's billing period and country replaces it with the
//! purchased quantity; then `OVERRIDE` add-ons lift that base to the most generous override
//! (never lower) and `INCREMENT` add-ons add `value × quantity`. An add-on grants a feature
//! the plan lacks.
//!
//! # The merge
//!
//! Across sources the most generous value wins ([`MergedEntitlement::merge_all`]): boolean
//! access if any source grants it; the largest numeric value; for metered features the
//! source compared as a whole value by (unlimited, larger limit, soft before hard, more
//! frequent reset) is taken as it is; enum values are the union, in the feature's declared
//! order. The result depends only on the set of sources, so the merge is commutative,
//! associative and idempotent, adding a source never reduces access and removing one gives
//! exactly the merge without it. Every merged entitlement lists its [`Source`]s, sorted by
//! subscription id (promotional grants last), then kind (`PLAN, TRIAL, ADDON, PRICE,
//! PROMOTIONAL`), then id, each marked effective when its contribution is part of the
//! winning value.
//!
//! # Checks
//!
//! Denials are checked in FORMAT.md §6's order ([`AccessDeniedReason`]) and fail closed:
//! anything unknown denies. Fallback entitlements ([`FallbackEntitlements`]), configured by
//! the host, answer for customers Tollgate does not know and are marked `isFallback`.
//!
//! # Rules decided here (the documents are silent)
//!
//! - Source ids: `PLAN` and `TRIAL` name the subscription's plan (also when the value is
//!   inherited from an ancestor), `PRICE` names the plan whose per-unit price set the value,
//!   `ADDON` the add-on, `PROMOTIONAL` the feature. A trial's per-unit price stays `PRICE`.
//! - A per-unit price gives a metered feature a hard limit of the purchased quantity (a
//!   feature left out of the configuration counts at its `minUnitQuantity`) and keeps the
//!   reset period of the entitlement it replaces, if any; a numeric feature gets the
//!   quantity as its value.
//! - Add-ons on boolean and enum features grant (access, values) whatever their behavior;
//!   the quantity of such an add-on does not matter.
//! - Metered `INCREMENT` add-ons add `limit × quantity` to the lifted base and keep the
//!   base's soft/hard limit and reset; an unlimited term makes the sum unlimited. Without a
//!   base or override, the limit is the sum of the increments and the most generous
//!   increment brings the soft/hard limit and reset. Sums saturate at `u64::MAX`.
//! - Metered values that are equal on (unlimited, limit, soft, reset frequency) are ordered
//!   by reset anchor (`SUBSCRIPTION_START`, `START_OF_THE_MONTH`, then `EVERY_MONDAY` …
//!   `EVERY_SUNDAY`) so the winner is always one whole value.
//! - Ties: every source whose value equals the winning value is effective. The usage window
//!   of a metered entitlement is anchored at the start of the first effective source in
//!   source order (subscription start, or a promotional grant's start).
//! - Inside one subscription: a base or override is effective when it is the lifted value;
//!   increments are effective when the sum is limited (an unlimited sum marks only its
//!   unlimited parts); booleans mark the parts that grant, enums the parts with values.
//! - `NoActiveSubscription` means no entitling subscription and no active promotional grant
//!   in the scope; a subscription whose plan version the catalog lacks is not a source.
//! - `FeatureTypeMismatch`: a typed getter for another type, `requestedUsage` on a feature
//!   that is not metered, `requestedValues` on a feature that is not an enum.
//! - A boolean entitlement with `granted: false` and an enum entitlement without values deny
//!   with `NoFeatureEntitlementInSubscription` (their sources are still listed). A numeric
//!   value of 0 grants access with value 0.
//! - The answer's `type` is left out for a feature the catalog does not have; `value` is
//!   written for numeric features only; `requestedUsage` (default 0) for metered features;
//!   `currentUsage`, limits and windows only when the answer carries an entitlement.
//! - `getEntitlements` lists, sorted by feature id, every feature the scope has a merged
//!   entitlement for (every fallback feature for an unknown customer); a scope denied
//!   before the feature (unknown customer without fallback, archived customer, unknown
//!   resource) lists none.
//! - Fallback entitlements answer only for unknown customers; a feature they do not cover
//!   answers `CustomerNotFound` with `isFallback: false`. A fallback answer has no sources,
//!   no usage window and a current usage of 0.
//! - Promotional grants: `startDate` defaults to the grant's instant, `endDate` is exclusive
//!   and must be after the start; the grant's fields follow the catalog's entitlement rules
//!   (`InvalidEntitlement` otherwise, `FeatureNotFound` for an unknown feature); an archived
//!   customer cannot be granted anything (`CustomerIsArchived`). An ended grant stays
//!   stored (and inactive) until replaced.
//! - A set is a snapshot at the instant it was built: it stays right until the customer's
//!   state changes or [`EntitlementSet::valid_until`] (the next end of a usage window or
//!   boundary of a promotional grant), whichever comes first.

use crate::catalog::{
    AddonBehavior, Catalog, Entitlement, EntitlementValue, Feature, FeatureKind, FieldProblem,
    Fields, Kind, PriceModel, Reset, ResetAnchor, ResetPeriod, UsageLimit, entitlement_value,
};
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::id::{CustomerId, FeatureId, ResourceId, SubscriptionId};
use crate::period::Period;
use crate::pricing::Configuration;
use crate::subscription::Subscription;
use crate::usage;
use crate::view::{instant, name};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

/// Where a contribution to an entitlement comes from. The order of the variants is the
/// order sources are listed in (FORMAT.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceKind {
    /// The plan of a subscription that is not a trial (or one of its ancestors).
    Plan,
    /// The plan of a trial.
    Trial,
    /// An add-on on a subscription.
    Addon,
    /// A per-unit price of a subscription's plan: the purchased quantity.
    Price,
    /// A promotional grant.
    Promotional,
}

/// One source of a merged entitlement, as listed in its summary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    /// What kind of source it is.
    pub kind: SourceKind,
    /// The plan, add-on or (promotional grants) feature id.
    pub id: String,
    /// The subscription it belongs to; `None` for a promotional grant.
    pub subscription: Option<SubscriptionId>,
    /// Whether its contribution is part of the winning value.
    pub is_effective: bool,
}

impl Source {
    fn sort_key(&self) -> (bool, Option<&SubscriptionId>, SourceKind, &str) {
        (
            self.subscription.is_none(),
            self.subscription.as_ref(),
            self.kind,
            self.id.as_str(),
        )
    }

    /// The source as FORMAT.md §3 writes it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("kind".to_owned(), name(&self.kind));
        map.insert("id".to_owned(), Value::String(self.id.clone()));
        if let Some(sub) = &self.subscription {
            map.insert(
                "subscriptionId".to_owned(),
                Value::String(sub.as_str().to_owned()),
            );
        }
        map.insert("isEffective".to_owned(), Value::Bool(self.is_effective));
        Value::Object(map)
    }
}

/// The type of an entitlement answer (FORMAT.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntitlementType {
    /// A boolean feature.
    Boolean,
    /// A number without a meter: a configuration value.
    Numeric,
    /// A number with a meter: a usage limit.
    Metered,
    /// An enum feature.
    Enum,
}

impl EntitlementType {
    /// The type of entitlements to `feature`.
    #[must_use]
    pub fn of(feature: &Feature) -> Self {
        match &feature.kind {
            FeatureKind::Boolean => Self::Boolean,
            FeatureKind::Number { meter: None } => Self::Numeric,
            FeatureKind::Number { meter: Some(_) } => Self::Metered,
            FeatureKind::Enum { .. } => Self::Enum,
        }
    }

    /// The type of `value`.
    #[must_use]
    pub fn of_value(value: &EntitlementValue) -> Self {
        match value {
            EntitlementValue::Boolean { .. } => Self::Boolean,
            EntitlementValue::Numeric { .. } => Self::Numeric,
            EntitlementValue::Metered { .. } => Self::Metered,
            EntitlementValue::Enum { .. } => Self::Enum,
        }
    }

    /// The JSON name (`METERED`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::Numeric => "NUMERIC",
            Self::Metered => "METERED",
            Self::Enum => "ENUM",
        }
    }
}

/// Why a check denies access, in the order the conditions are checked (FORMAT.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AccessDeniedReason {
    /// The customer is unknown (and no fallback entitlement covers the feature).
    CustomerNotFound,
    /// The customer is archived.
    CustomerIsArchived,
    /// The customer never had a subscription for the resource.
    CustomerResourceNotFound,
    /// The feature is not in the catalog.
    FeatureNotFound,
    /// The check asks for another type than the feature has.
    FeatureTypeMismatch,
    /// No entitling source exists in the scope.
    NoActiveSubscription,
    /// Sources exist but none grants the feature.
    NoFeatureEntitlementInSubscription,
    /// `currentUsage + requestedUsage` exceeds a hard limit.
    RequestedUsageExceedingLimit,
    /// A requested enum value is not granted.
    RequestedValuesMismatch,
}

impl AccessDeniedReason {
    /// The JSON name (the variant name).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CustomerNotFound => "CustomerNotFound",
            Self::CustomerIsArchived => "CustomerIsArchived",
            Self::CustomerResourceNotFound => "CustomerResourceNotFound",
            Self::FeatureNotFound => "FeatureNotFound",
            Self::FeatureTypeMismatch => "FeatureTypeMismatch",
            Self::NoActiveSubscription => "NoActiveSubscription",
            Self::NoFeatureEntitlementInSubscription => "NoFeatureEntitlementInSubscription",
            Self::RequestedUsageExceedingLimit => "RequestedUsageExceedingLimit",
            Self::RequestedValuesMismatch => "RequestedValuesMismatch",
        }
    }
}

/// A metered entitlement value: `limit`, hard unless `soft_limit`, resetting every
/// `reset_period` (aligned to `reset_anchor`), or never without one.
#[must_use]
pub fn metered_value(
    limit: UsageLimit,
    soft_limit: bool,
    reset_period: Option<ResetPeriod>,
    reset_anchor: ResetAnchor,
) -> EntitlementValue {
    EntitlementValue::Metered {
        limit,
        soft_limit,
        reset: reset_period.map(|period| Reset {
            period,
            anchor: reset_anchor,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Generosity
// ---------------------------------------------------------------------------------------

/// A metered value as a whole, compared field by field: (unlimited, limit, soft, reset
/// frequency, reset anchor).
type MeteredRank = (bool, u64, bool, u8, u8);

fn metered_rank(limit: UsageLimit, soft_limit: bool, reset: Option<Reset>) -> MeteredRank {
    let (unlimited, amount) = match limit {
        UsageLimit::Unlimited => (true, 0),
        UsageLimit::Limited(n) => (false, n),
    };
    let (frequency, anchor) = reset.map_or((0, 0), |r| {
        (reset_frequency(r.period), anchor_rank(r.anchor))
    });
    (unlimited, amount, soft_limit, frequency, anchor)
}

/// More frequent resets are more generous; never resetting is the least.
const fn reset_frequency(period: ResetPeriod) -> u8 {
    match period {
        ResetPeriod::Year => 1,
        ResetPeriod::Month => 2,
        ResetPeriod::Week => 3,
        ResetPeriod::Day => 4,
        ResetPeriod::Hour => 5,
    }
}

/// Only a tie-break, so that equal ranks mean equal values.
const fn anchor_rank(anchor: ResetAnchor) -> u8 {
    match anchor {
        ResetAnchor::SubscriptionStart => 9,
        ResetAnchor::StartOfTheMonth => 8,
        ResetAnchor::EveryMonday => 7,
        ResetAnchor::EveryTuesday => 6,
        ResetAnchor::EveryWednesday => 5,
        ResetAnchor::EveryThursday => 4,
        ResetAnchor::EveryFriday => 3,
        ResetAnchor::EverySaturday => 2,
        ResetAnchor::EverySunday => 1,
    }
}

fn rank_of(value: &EntitlementValue) -> Option<MeteredRank> {
    match value {
        EntitlementValue::Metered {
            limit,
            soft_limit,
            reset,
        } => Some(metered_rank(*limit, *soft_limit, *reset)),
        _ => None,
    }
}

/// A total order on values of one type, most generous greatest; used only to make the
/// choice between two values claiming the same source deterministic.
fn generosity(a: &EntitlementValue, b: &EntitlementValue) -> Ordering {
    match (a, b) {
        (EntitlementValue::Boolean { granted: x }, EntitlementValue::Boolean { granted: y }) => {
            x.cmp(y)
        }
        (EntitlementValue::Numeric { value: x }, EntitlementValue::Numeric { value: y }) => {
            x.cmp(y)
        }
        (EntitlementValue::Enum { values: x }, EntitlementValue::Enum { values: y }) => {
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        _ => rank_of(a).cmp(&rank_of(b)),
    }
}

/// Whether a value, on its own, gives anything.
fn contributes(value: &EntitlementValue) -> bool {
    match value {
        EntitlementValue::Boolean { granted } => *granted,
        EntitlementValue::Enum { values } => !values.is_empty(),
        EntitlementValue::Numeric { .. } | EntitlementValue::Metered { .. } => true,
    }
}

fn add_limits(a: UsageLimit, b: UsageLimit) -> UsageLimit {
    match (a, b) {
        (UsageLimit::Limited(x), UsageLimit::Limited(y)) => {
            UsageLimit::Limited(x.saturating_add(y))
        }
        _ => UsageLimit::Unlimited,
    }
}

fn times(limit: UsageLimit, quantity: u32) -> UsageLimit {
    match limit {
        UsageLimit::Limited(x) => UsageLimit::Limited(x.saturating_mul(u64::from(quantity))),
        UsageLimit::Unlimited => UsageLimit::Unlimited,
    }
}

fn declared_values(feature: &Feature) -> &[String] {
    match &feature.kind {
        FeatureKind::Enum { values } => values,
        FeatureKind::Boolean | FeatureKind::Number { .. } => &[],
    }
}

// ---------------------------------------------------------------------------------------
// Candidates: one subscription's (or grant's) whole value for a feature
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct CandidatePart {
    kind: SourceKind,
    id: String,
    /// Whether the part is part of the candidate's own value.
    contributes: bool,
}

/// One source's whole value for one feature: a subscription's value (plan or price, with
/// its add-ons, each listed as a part) or a promotional grant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    subscription: Option<SubscriptionId>,
    /// Sorted by (kind, id); never empty.
    parts: Vec<CandidatePart>,
    value: EntitlementValue,
    anchored_at: DateTime<Utc>,
}

impl Candidate {
    /// A candidate with one part: `value` from the source (`kind`, `id`) of `subscription`
    /// (`None` for a promotional grant), whose usage windows are anchored at `anchored_at`.
    #[must_use]
    pub fn new(
        subscription: Option<SubscriptionId>,
        kind: SourceKind,
        id: impl Into<String>,
        value: EntitlementValue,
        anchored_at: DateTime<Utc>,
    ) -> Self {
        Self {
            subscription,
            parts: vec![CandidatePart {
                kind,
                id: id.into(),
                contributes: contributes(&value),
            }],
            value,
            anchored_at,
        }
    }

    /// The candidate's whole value.
    #[must_use]
    pub fn value(&self) -> &EntitlementValue {
        &self.value
    }

    /// The subscription it belongs to (`None` for a promotional grant).
    #[must_use]
    pub fn subscription(&self) -> Option<&SubscriptionId> {
        self.subscription.as_ref()
    }

    /// Where its usage windows are anchored.
    #[must_use]
    pub fn anchored_at(&self) -> DateTime<Utc> {
        self.anchored_at
    }

    /// Its position in source order; unique per source.
    fn key(&self) -> (bool, Option<&SubscriptionId>, SourceKind, &str) {
        let (kind, id) = self
            .parts
            .first()
            .map_or((SourceKind::Promotional, ""), |p| (p.kind, p.id.as_str()));
        (
            self.subscription.is_none(),
            self.subscription.as_ref(),
            kind,
            id,
        )
    }
}

/// How a part of a subscription's value combines with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The plan's (or an ancestor's) entitlement, or the per-unit quantity.
    Base,
    /// An `OVERRIDE` add-on: lifts the base.
    Override,
    /// An `INCREMENT` add-on bought this many times.
    Increment(u32),
}

#[derive(Debug, Clone)]
struct Part {
    kind: SourceKind,
    id: String,
    role: Role,
    value: EntitlementValue,
}

/// Combines one subscription's parts for a feature of type `ty` (SPEC.md §6, "value of one
/// subscription"). Parts of another type are ignored; `None` when none is left.
fn compose(
    ty: EntitlementType,
    declared: &[String],
    subscription: Option<SubscriptionId>,
    anchored_at: DateTime<Utc>,
    mut parts: Vec<Part>,
) -> Option<Candidate> {
    parts.retain(|p| EntitlementType::of_value(&p.value) == ty);
    parts.sort_by(|a, b| (a.kind, a.id.as_str()).cmp(&(b.kind, b.id.as_str())));
    if parts.is_empty() {
        return None;
    }
    let (value, flags): (EntitlementValue, Vec<bool>) = match ty {
        EntitlementType::Boolean => {
            let flags: Vec<bool> = parts.iter().map(|p| contributes(&p.value)).collect();
            (
                EntitlementValue::Boolean {
                    granted: flags.iter().any(|f| *f),
                },
                flags,
            )
        }
        EntitlementType::Enum => {
            let values = union(declared, parts.iter().map(|p| &p.value));
            let flags = parts.iter().map(|p| contributes(&p.value)).collect();
            (EntitlementValue::Enum { values }, flags)
        }
        EntitlementType::Numeric => compose_numeric(&parts),
        EntitlementType::Metered => compose_metered(&parts)?,
    };
    Some(Candidate {
        subscription,
        parts: parts
            .into_iter()
            .zip(flags)
            .map(|(p, contributes)| CandidatePart {
                kind: p.kind,
                id: p.id,
                contributes,
            })
            .collect(),
        value,
        anchored_at,
    })
}

fn numeric(value: &EntitlementValue) -> Option<u64> {
    match value {
        EntitlementValue::Numeric { value } => Some(*value),
        _ => None,
    }
}

fn compose_numeric(parts: &[Part]) -> (EntitlementValue, Vec<bool>) {
    let lifted = parts
        .iter()
        .filter(|p| !matches!(p.role, Role::Increment(_)))
        .filter_map(|p| numeric(&p.value))
        .max();
    let increments = parts.iter().fold(0_u64, |sum, p| match p.role {
        Role::Increment(q) => {
            sum.saturating_add(numeric(&p.value).unwrap_or(0).saturating_mul(u64::from(q)))
        }
        Role::Base | Role::Override => sum,
    });
    let flags = parts
        .iter()
        .map(|p| match p.role {
            Role::Increment(_) => true,
            Role::Base | Role::Override => numeric(&p.value) == lifted,
        })
        .collect();
    let value = lifted.unwrap_or(0).saturating_add(increments);
    (EntitlementValue::Numeric { value }, flags)
}

fn compose_metered(parts: &[Part]) -> Option<(EntitlementValue, Vec<bool>)> {
    let best = |increments: bool| {
        parts
            .iter()
            .filter(|p| matches!(p.role, Role::Increment(_)) == increments)
            .filter_map(|p| Some((rank_of(&p.value)?, &p.value)))
            .max_by(|a, b| a.0.cmp(&b.0))
    };
    let lifted = best(false);
    let increment_sum =
        parts
            .iter()
            .fold(UsageLimit::Limited(0), |sum, p| match (p.role, &p.value) {
                (Role::Increment(q), EntitlementValue::Metered { limit, .. }) => {
                    add_limits(sum, times(*limit, q))
                }
                _ => sum,
            });
    let (limit, soft_limit, reset) = match lifted.or_else(|| best(true)) {
        Some((
            _,
            EntitlementValue::Metered {
                limit,
                soft_limit,
                reset,
            },
        )) => {
            let base = if lifted.is_some() {
                *limit
            } else {
                UsageLimit::Limited(0)
            };
            (add_limits(base, increment_sum), *soft_limit, *reset)
        }
        _ => return None,
    };
    let unlimited = limit == UsageLimit::Unlimited;
    let lifted_rank = lifted.map(|(rank, _)| rank);
    let flags = parts
        .iter()
        .map(|p| {
            let own_unlimited = matches!(
                p.value,
                EntitlementValue::Metered {
                    limit: UsageLimit::Unlimited,
                    ..
                }
            );
            let in_value = match p.role {
                Role::Increment(_) => true,
                Role::Base | Role::Override => rank_of(&p.value) == lifted_rank,
            };
            in_value && (!unlimited || own_unlimited)
        })
        .collect();
    Some((
        EntitlementValue::Metered {
            limit,
            soft_limit,
            reset,
        },
        flags,
    ))
}

/// The declared values granted by any of `values`, in declared order.
fn union<'v>(
    declared: &[String],
    values: impl Iterator<Item = &'v EntitlementValue>,
) -> Vec<String> {
    let granted: Vec<&Vec<String>> = values
        .filter_map(|v| match v {
            EntitlementValue::Enum { values } => Some(values),
            _ => None,
        })
        .collect();
    declared
        .iter()
        .filter(|d| granted.iter().any(|g| g.contains(d)))
        .cloned()
        .collect()
}

/// The parts of every feature a configuration entitles to, by feature: the plan's (or the
/// nearest ancestor's) entitlement or the per-unit quantity as the base, then the add-ons.
/// `None` when the catalog lacks the plan version.
fn configuration_parts<'c>(
    catalog: &'c Catalog,
    config: &Configuration,
    is_trial: bool,
) -> Option<BTreeMap<&'c str, Vec<Part>>> {
    let plan = catalog.plan(config.plan.as_str(), config.plan_version)?;
    let base_kind = if is_trial {
        SourceKind::Trial
    } else {
        SourceKind::Plan
    };
    let mut parts: BTreeMap<&'c str, Vec<Part>> = BTreeMap::new();
    for owner in std::iter::once(plan).chain(catalog.ancestors(plan)) {
        for entitlement in &owner.entitlements {
            parts
                .entry(entitlement.feature.as_str())
                .or_insert_with(|| {
                    vec![Part {
                        kind: base_kind,
                        id: plan.id.as_str().to_owned(),
                        role: Role::Base,
                        value: entitlement.value.clone(),
                    }]
                });
        }
    }
    if let Some(period) = config.billing_period {
        let prices = &plan.price_set(config.country, period).prices;
        for price in prices.iter().filter(|p| p.billing_period == period) {
            let PriceModel::PerUnit {
                feature,
                min_quantity,
                ..
            } = &price.model
            else {
                continue;
            };
            let Some(def) = catalog.feature(feature.as_str()) else {
                continue;
            };
            let quantity = config.units.get(feature).copied().unwrap_or(*min_quantity);
            let inherited_reset = parts
                .get(feature.as_str())
                .and_then(|ps| ps.first())
                .and_then(|p| match p.value {
                    EntitlementValue::Metered { reset, .. } => reset,
                    _ => None,
                });
            let value = match &def.kind {
                FeatureKind::Number { meter: Some(_) } => EntitlementValue::Metered {
                    limit: UsageLimit::Limited(quantity),
                    soft_limit: false,
                    reset: inherited_reset,
                },
                FeatureKind::Number { meter: None } => {
                    EntitlementValue::Numeric { value: quantity }
                }
                FeatureKind::Boolean | FeatureKind::Enum { .. } => continue,
            };
            parts.insert(
                def.id.as_str(),
                vec![Part {
                    kind: SourceKind::Price,
                    id: plan.id.as_str().to_owned(),
                    role: Role::Base,
                    value,
                }],
            );
        }
    }
    for bought in &config.addons {
        let Some(addon) = catalog.addon(bought.addon.as_str(), bought.version) else {
            continue;
        };
        for entitlement in &addon.entitlements {
            parts
                .entry(entitlement.feature.as_str())
                .or_default()
                .push(addon_part(addon.id.as_str(), entitlement, bought.quantity));
        }
    }
    Some(parts)
}

fn addon_part(addon: &str, entitlement: &Entitlement, quantity: u32) -> Part {
    Part {
        kind: SourceKind::Addon,
        id: addon.to_owned(),
        role: match entitlement.behavior {
            AddonBehavior::Override => Role::Override,
            AddonBehavior::Increment => Role::Increment(quantity),
        },
        value: entitlement.value.clone(),
    }
}

/// The candidates one subscription gives, by feature.
fn subscription_candidates<'c>(
    catalog: &'c Catalog,
    sub: &Subscription,
) -> Option<Vec<(&'c Feature, Candidate)>> {
    let parts = configuration_parts(catalog, &sub.config, sub.is_trial)?;
    Some(
        parts
            .into_iter()
            .filter_map(|(feature, parts)| {
                let def = catalog.feature(feature)?;
                let candidate = compose(
                    EntitlementType::of(def),
                    declared_values(def),
                    Some(sub.id.clone()),
                    sub.start_date,
                    parts,
                )?;
                Some((def, candidate))
            })
            .collect(),
    )
}

/// The value a configuration gives each feature, on its own (no other source merged).
/// Empty when the catalog lacks the plan version.
#[must_use]
pub fn configuration_values<'c>(
    catalog: &'c Catalog,
    config: &Configuration,
) -> BTreeMap<&'c FeatureId, EntitlementValue> {
    configuration_parts(catalog, config, false)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(feature, parts)| {
            let def = catalog.feature(feature)?;
            let candidate = compose(
                EntitlementType::of(def),
                declared_values(def),
                None,
                DateTime::<Utc>::MIN_UTC,
                parts,
            )?;
            Some((&def.id, candidate.value))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The merge across sources
// ---------------------------------------------------------------------------------------

/// The merged entitlement of one feature in one scope: the winning value and its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedEntitlement {
    entitlement_type: EntitlementType,
    value: EntitlementValue,
    sources: Vec<Source>,
    anchored_at: Option<DateTime<Utc>>,
    /// Sorted by source order, one per source.
    candidates: Vec<Candidate>,
}

impl MergedEntitlement {
    /// The most generous value of `candidates` for `feature` (SPEC.md §6): boolean if any
    /// grants, numeric maximum, metered best whole value, enum union in declared order.
    /// Candidates of another type than the feature's are ignored; `None` when none is left.
    /// A source given twice counts once, with its most generous value (for an enum, the
    /// union of its values).
    #[must_use]
    pub fn merge_all(
        feature: &Feature,
        candidates: impl IntoIterator<Item = Candidate>,
    ) -> Option<Self> {
        let ty = EntitlementType::of(feature);
        let mut candidates: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| EntitlementType::of_value(&c.value) == ty)
            .map(|mut c| {
                // Enum values in one order, so that equal sets compare equal.
                if let EntitlementValue::Enum { values } = &mut c.value {
                    values.sort_unstable();
                    values.dedup();
                }
                c
            })
            .collect();
        candidates.sort_by(|a, b| {
            a.key()
                .cmp(&b.key())
                .then_with(|| generosity(&b.value, &a.value))
                .then_with(|| a.anchored_at.cmp(&b.anchored_at))
        });
        candidates.dedup_by(|later, earlier| {
            if later.key() != earlier.key() {
                return false;
            }
            // One source given twice with two sets of enum values grants both sets, anchored
            // at the earliest of its copies: what a source merges to depends only on its
            // copies, not on which were merged first.
            if let (
                EntitlementValue::Enum { values: kept },
                EntitlementValue::Enum { values: more },
            ) = (&mut earlier.value, &later.value)
            {
                kept.extend(more.iter().cloned());
                kept.sort_unstable();
                kept.dedup();
                earlier.anchored_at = earlier.anchored_at.min(later.anchored_at);
            }
            true
        });
        if candidates.is_empty() {
            return None;
        }
        let declared = declared_values(feature);
        let (value, effective): (EntitlementValue, Vec<bool>) = match ty {
            EntitlementType::Boolean => {
                let effective: Vec<bool> =
                    candidates.iter().map(|c| contributes(&c.value)).collect();
                (
                    EntitlementValue::Boolean {
                        granted: effective.iter().any(|e| *e),
                    },
                    effective,
                )
            }
            EntitlementType::Numeric => {
                let max = candidates.iter().filter_map(|c| numeric(&c.value)).max();
                let effective = candidates
                    .iter()
                    .map(|c| numeric(&c.value) == max)
                    .collect();
                (
                    EntitlementValue::Numeric {
                        value: max.unwrap_or(0),
                    },
                    effective,
                )
            }
            EntitlementType::Metered => {
                let best = candidates
                    .iter()
                    .filter_map(|c| Some((rank_of(&c.value)?, &c.value)))
                    .max_by(|a, b| a.0.cmp(&b.0))?;
                let effective = candidates
                    .iter()
                    .map(|c| rank_of(&c.value) == Some(best.0))
                    .collect();
                (best.1.clone(), effective)
            }
            EntitlementType::Enum => {
                let values = union(declared, candidates.iter().map(|c| &c.value));
                let effective = candidates
                    .iter()
                    .map(|c| !union(declared, std::iter::once(&c.value)).is_empty())
                    .collect();
                (EntitlementValue::Enum { values }, effective)
            }
        };
        let anchored_at = candidates
            .iter()
            .zip(&effective)
            .find(|(_, e)| **e)
            .or_else(|| candidates.iter().zip(&effective).next())
            .map(|(c, _)| c.anchored_at);
        let mut sources: Vec<Source> = candidates
            .iter()
            .zip(&effective)
            .flat_map(|(c, e)| {
                c.parts.iter().map(move |p| Source {
                    kind: p.kind,
                    id: p.id.clone(),
                    subscription: c.subscription.clone(),
                    is_effective: *e && p.contributes,
                })
            })
            .collect();
        sources.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Some(Self {
            entitlement_type: ty,
            value,
            sources,
            anchored_at,
            candidates,
        })
    }

    /// The merge of two merged entitlements of `feature`: the merge of all their sources.
    #[must_use]
    pub fn merge(&self, other: &Self, feature: &Feature) -> Self {
        Self::merge_all(
            feature,
            self.candidates.iter().chain(&other.candidates).cloned(),
        )
        .unwrap_or_else(|| self.clone())
    }

    /// A merged entitlement of a single value with no source (fallback entitlements).
    fn sourceless(value: EntitlementValue) -> Self {
        Self {
            entitlement_type: EntitlementType::of_value(&value),
            value,
            sources: Vec::new(),
            anchored_at: None,
            candidates: Vec::new(),
        }
    }

    /// Its type.
    #[must_use]
    pub fn entitlement_type(&self) -> EntitlementType {
        self.entitlement_type
    }

    /// The winning value.
    #[must_use]
    pub fn value(&self) -> &EntitlementValue {
        &self.value
    }

    /// Every source, in FORMAT.md §6 order, with its effective flag.
    #[must_use]
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The candidates merged, one per source, in source order.
    #[must_use]
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Where usage windows of the winning value are anchored (`None` without a source).
    #[must_use]
    pub fn anchored_at(&self) -> Option<DateTime<Utc>> {
        self.anchored_at
    }

    /// Whether the value grants access, before usage and requested values are considered.
    #[must_use]
    pub fn grants(&self) -> bool {
        contributes(&self.value)
    }
}

// ---------------------------------------------------------------------------------------
// Promotional grants and entitlement fields
// ---------------------------------------------------------------------------------------

/// Entitlement fields as FORMAT.md §1 writes them for a plan (without `behavior`): the
/// shape of fallback entitlements and of promotional grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntitlementFields {
    /// The feature.
    pub feature_id: FeatureId,
    /// Boolean access.
    pub granted: Option<bool>,
    /// Numeric configuration value.
    pub value: Option<i64>,
    /// Metered limit.
    pub usage_limit: Option<i64>,
    /// Metered without limit.
    pub has_unlimited_usage: Option<bool>,
    /// Usage beyond the limit is allowed.
    pub has_soft_limit: Option<bool>,
    /// How often usage resets.
    pub reset_period: Option<ResetPeriod>,
    /// What reset windows are aligned to.
    pub reset_anchor: Option<ResetAnchor>,
    /// Enum values.
    pub values: Option<Vec<String>>,
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidEntitlement, message)
}

impl EntitlementFields {
    /// The feature and the value these fields grant, checked against the catalog like a
    /// plan's entitlement.
    ///
    /// # Errors
    /// `FeatureNotFound` for a feature the catalog lacks; `InvalidEntitlement` for fields
    /// that do not fit the feature's type.
    pub fn resolve<'c>(
        &self,
        catalog: &'c Catalog,
    ) -> Result<(&'c Feature, EntitlementValue), Error> {
        let feature = catalog.feature(self.feature_id.as_str()).ok_or_else(|| {
            Error::new(
                ErrorCode::FeatureNotFound,
                format!("feature `{}` does not exist", self.feature_id),
            )
        })?;
        let kind = match &feature.kind {
            FeatureKind::Boolean => Kind::Boolean,
            FeatureKind::Number { meter: None } => Kind::Number,
            FeatureKind::Number { meter: Some(meter) } => Kind::Metered(*meter),
            FeatureKind::Enum { values } => Kind::Enum(values),
        };
        let fields = Fields {
            granted: self.granted,
            value: self.value,
            usage_limit: self.usage_limit,
            has_unlimited_usage: self.has_unlimited_usage,
            has_soft_limit: self.has_soft_limit,
            reset_period: self.reset_period,
            reset_anchor: self.reset_anchor,
            values: self.values.as_deref(),
        };
        let value = entitlement_value(feature.id.as_str(), kind, &fields).map_err(|problems| {
            invalid(problems.into_iter().next().map_or_else(
                || "the entitlement is not valid".to_owned(),
                |p: FieldProblem| p.message,
            ))
        })?;
        Ok((feature, value))
    }
}

/// Writes `value` in FORMAT.md §1's entitlement fields.
fn write_value_fields(map: &mut Map<String, Value>, value: &EntitlementValue) {
    match value {
        EntitlementValue::Boolean { granted } => {
            map.insert("granted".to_owned(), Value::Bool(*granted));
        }
        EntitlementValue::Numeric { value } => {
            map.insert("value".to_owned(), json!(value));
        }
        EntitlementValue::Metered {
            limit,
            soft_limit,
            reset,
        } => {
            match limit {
                UsageLimit::Limited(n) => {
                    map.insert("usageLimit".to_owned(), json!(n));
                    map.insert("hasUnlimitedUsage".to_owned(), Value::Bool(false));
                }
                UsageLimit::Unlimited => {
                    map.insert("hasUnlimitedUsage".to_owned(), Value::Bool(true));
                }
            }
            map.insert("hasSoftLimit".to_owned(), Value::Bool(*soft_limit));
            if let Some(reset) = reset {
                map.insert("resetPeriod".to_owned(), name(&reset.period));
                map.insert("resetAnchor".to_owned(), name(&reset.anchor));
            }
        }
        EntitlementValue::Enum { values } => {
            map.insert("values".to_owned(), json!(values));
        }
    }
}

/// A promotional entitlement granted to a customer: it applies to every scope of the
/// customer while active, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionalGrant {
    /// The feature.
    pub feature: FeatureId,
    /// What it grants.
    pub value: EntitlementValue,
    /// When it starts; its usage windows are anchored here.
    pub start: DateTime<Utc>,
    /// When it ends (exclusive); `None` never.
    pub end: Option<DateTime<Utc>>,
}

impl PromotionalGrant {
    /// Whether it applies at `now`.
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && self.end.is_none_or(|end| now < end)
    }

    /// The grant as written in a `grantPromotionalEntitlement` result's
    /// `promotionalEntitlement`: `{featureId, type, <entitlement fields>, startDate,
    /// endDate?}`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            "featureId".to_owned(),
            Value::String(self.feature.as_str().to_owned()),
        );
        map.insert(
            "type".to_owned(),
            Value::String(EntitlementType::of_value(&self.value).as_str().to_owned()),
        );
        write_value_fields(&mut map, &self.value);
        map.insert("startDate".to_owned(), instant(self.start));
        if let Some(end) = self.end {
            map.insert("endDate".to_owned(), instant(end));
        }
        Value::Object(map)
    }
}

/// A `grantPromotionalEntitlement` request (FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantPromotionalEntitlementRequest {
    /// The customer.
    pub customer_id: CustomerId,
    /// The feature.
    pub feature_id: FeatureId,
    /// Boolean access.
    pub granted: Option<bool>,
    /// Numeric configuration value.
    pub value: Option<i64>,
    /// Metered limit.
    pub usage_limit: Option<i64>,
    /// Metered without limit.
    pub has_unlimited_usage: Option<bool>,
    /// Usage beyond the limit is allowed.
    pub has_soft_limit: Option<bool>,
    /// How often usage resets.
    pub reset_period: Option<ResetPeriod>,
    /// What reset windows are aligned to.
    pub reset_anchor: Option<ResetAnchor>,
    /// Enum values.
    pub values: Option<Vec<String>>,
    /// When it starts (default: now).
    pub start_date: Option<DateTime<Utc>>,
    /// When it ends, exclusive (default: never).
    pub end_date: Option<DateTime<Utc>>,
}

impl GrantPromotionalEntitlementRequest {
    /// The entitlement fields of the request.
    #[must_use]
    pub fn fields(&self) -> EntitlementFields {
        EntitlementFields {
            feature_id: self.feature_id.clone(),
            granted: self.granted,
            value: self.value,
            usage_limit: self.usage_limit,
            has_unlimited_usage: self.has_unlimited_usage,
            has_soft_limit: self.has_soft_limit,
            reset_period: self.reset_period,
            reset_anchor: self.reset_anchor,
            values: self.values.clone(),
        }
    }
}

fn ensure_customer(state: &CustomerState, id: &CustomerId) -> Result<(), Error> {
    if &state.customer.id == id {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::CustomerNotFound,
            format!("customer `{id}` does not exist"),
        ))
    }
}

/// Grants the promotional entitlement `request` describes to the customer of `state` at
/// `now`, replacing any earlier grant for the feature. On an error nothing changes.
///
/// # Errors
/// `CustomerNotFound` when `state` is another customer's, `CustomerIsArchived`,
/// `FeatureNotFound`, `InvalidEntitlement` for fields that do not fit the feature,
/// `InvalidArgumentError` when the end is not after the start or an instant is past
/// 9999-12-31.
pub fn grant_promotional_entitlement(
    catalog: &Catalog,
    state: &mut CustomerState,
    request: &GrantPromotionalEntitlementRequest,
    now: DateTime<Utc>,
) -> Result<PromotionalGrant, Error> {
    crate::period::check_instants(&[
        ("now", Some(now)),
        ("startDate", request.start_date),
        ("endDate", request.end_date),
    ])?;
    ensure_customer(state, &request.customer_id)?;
    state.ensure_active()?;
    let (feature, value) = request.fields().resolve(catalog)?;
    let start = request.start_date.unwrap_or(now);
    if let Some(end) = request.end_date.filter(|end| *end <= start) {
        return Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!(
                "`endDate` {} is not after the start {}",
                end.to_rfc3339(),
                start.to_rfc3339()
            ),
        ));
    }
    let grant = PromotionalGrant {
        feature: feature.id.clone(),
        value,
        start,
        end: request.end_date,
    };
    state
        .promotional_entitlements
        .insert(feature.id.clone(), grant.clone());
    Ok(grant)
}

// ---------------------------------------------------------------------------------------
// Fallback entitlements
// ---------------------------------------------------------------------------------------

/// Entitlements the host configures to answer for customers Tollgate does not know
/// (scenario `settings.fallbackEntitlements`). Validated once when built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FallbackEntitlements {
    values: BTreeMap<FeatureId, EntitlementValue>,
}

impl FallbackEntitlements {
    /// No fallback: unknown customers are denied with `CustomerNotFound`.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Fallback entitlements from their fields, checked against `catalog`.
    ///
    /// # Errors
    /// `FeatureNotFound` for an unknown feature, `InvalidEntitlement` for fields that do not
    /// fit the feature or a feature given twice.
    pub fn new(catalog: &Catalog, fields: &[EntitlementFields]) -> Result<Self, Error> {
        let mut values = BTreeMap::new();
        for f in fields {
            let (feature, value) = f.resolve(catalog)?;
            if values.insert(feature.id.clone(), value).is_some() {
                return Err(invalid(format!(
                    "feature `{}` has more than one fallback entitlement",
                    feature.id
                )));
            }
        }
        Ok(Self { values })
    }

    /// Whether none is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The fallback value of `feature`.
    #[must_use]
    pub fn get(&self, feature: &str) -> Option<&EntitlementValue> {
        self.values.get(feature)
    }
}

// ---------------------------------------------------------------------------------------
// The merged set of a scope
// ---------------------------------------------------------------------------------------

/// The usage of a metered feature at the instant a set was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUsage {
    /// Usage in the current window (0 when the recorded window has ended).
    pub value: u64,
    /// The current reset window, for an entitlement that resets.
    pub window: Option<Period>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    merged: MergedEntitlement,
    usage: Option<CurrentUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A known customer's scope.
    Customer,
    /// An unknown customer answered by fallback entitlements.
    Fallback,
}

/// The merged entitlements of one scope (customer, resource) at one instant: built once per
/// state change, then every check is a lookup.
#[derive(Debug, Clone)]
pub struct EntitlementSet<'c> {
    catalog: &'c Catalog,
    mode: Mode,
    /// A denial that precedes the feature (`CustomerNotFound`, `CustomerIsArchived`,
    /// `CustomerResourceNotFound`).
    scope_denial: Option<AccessDeniedReason>,
    has_sources: bool,
    entries: HashMap<FeatureId, Entry>,
    valid_until: Option<DateTime<Utc>>,
}

impl<'c> EntitlementSet<'c> {
    /// The set of the scope (`state`'s customer, `resource`) at `now`, or, for an unknown
    /// customer (`state` is `None`), the fallback answers.
    #[must_use]
    pub fn build(
        catalog: &'c Catalog,
        state: Option<&CustomerState>,
        resource: Option<&ResourceId>,
        fallback: &FallbackEntitlements,
        now: DateTime<Utc>,
    ) -> Self {
        match state {
            Some(state) => Self::for_customer(catalog, state, resource, now),
            None => Self::for_unknown_customer(catalog, fallback),
        }
    }

    /// The answers for a customer Tollgate does not know: the fallback entitlements, marked
    /// as such, and `CustomerNotFound` for every other feature.
    #[must_use]
    pub fn for_unknown_customer(catalog: &'c Catalog, fallback: &FallbackEntitlements) -> Self {
        let entries = fallback
            .values
            .iter()
            .map(|(feature, value)| {
                let usage =
                    matches!(value, EntitlementValue::Metered { .. }).then_some(CurrentUsage {
                        value: 0,
                        window: None,
                    });
                (
                    feature.clone(),
                    Entry {
                        merged: MergedEntitlement::sourceless(value.clone()),
                        usage,
                    },
                )
            })
            .collect();
        Self {
            catalog,
            mode: Mode::Fallback,
            scope_denial: None,
            has_sources: true,
            entries,
            valid_until: None,
        }
    }

    /// The set of the scope (`state`'s customer, `resource`) at `now`. Without a resource
    /// the scope holds the product-wide subscriptions and the promotional grants only.
    #[must_use]
    pub fn for_customer(
        catalog: &'c Catalog,
        state: &CustomerState,
        resource: Option<&ResourceId>,
        now: DateTime<Utc>,
    ) -> Self {
        let denied = |reason| Self {
            catalog,
            mode: Mode::Customer,
            scope_denial: Some(reason),
            has_sources: false,
            entries: HashMap::new(),
            valid_until: None,
        };
        if state.customer.archived {
            return denied(AccessDeniedReason::CustomerIsArchived);
        }
        if let Some(r) = resource {
            if !state.resources.contains(r) {
                return denied(AccessDeniedReason::CustomerResourceNotFound);
            }
        }
        let mut has_sources = false;
        let mut by_feature: BTreeMap<&'c FeatureId, (&'c Feature, Vec<Candidate>)> =
            BTreeMap::new();
        for sub in state.subscriptions.iter().filter(|s| {
            s.status.is_entitling() && (s.resource.is_none() || s.resource.as_ref() == resource)
        }) {
            let Some(candidates) = subscription_candidates(catalog, sub) else {
                continue;
            };
            has_sources = true;
            for (feature, candidate) in candidates {
                by_feature
                    .entry(&feature.id)
                    .or_insert_with(|| (feature, Vec::new()))
                    .1
                    .push(candidate);
            }
        }
        let mut valid_until: Option<DateTime<Utc>> = None;
        let mut until = |t: DateTime<Utc>| {
            if t > now {
                valid_until = Some(valid_until.map_or(t, |v| v.min(t)));
            }
        };
        for grant in state.promotional_entitlements.values() {
            if grant.start > now {
                until(grant.start);
            }
            if !grant.is_active(now) {
                continue;
            }
            if let Some(end) = grant.end {
                until(end);
            }
            let Some(feature) = catalog.feature(grant.feature.as_str()) else {
                continue;
            };
            has_sources = true;
            by_feature
                .entry(&feature.id)
                .or_insert_with(|| (feature, Vec::new()))
                .1
                .push(Candidate::new(
                    None,
                    SourceKind::Promotional,
                    feature.id.as_str(),
                    grant.value.clone(),
                    grant.start,
                ));
        }
        let mut entries = HashMap::with_capacity(by_feature.len());
        for (id, (feature, candidates)) in by_feature {
            let Some(merged) = MergedEntitlement::merge_all(feature, candidates) else {
                continue;
            };
            let usage = match (&merged.value, merged.anchored_at) {
                (EntitlementValue::Metered { reset, .. }, anchored_at) => {
                    let series = reset.zip(anchored_at);
                    let window = series.and_then(|(reset, at)| usage::reset_window(reset, at, now));
                    if let Some(w) = window {
                        until(w.end);
                    }
                    let record = state
                        .usage
                        .record(resource.map(ResourceId::as_str), id.as_str());
                    let value = record.map_or(0, |r| r.current_under(series, now));
                    if let Some(end) = record.and_then(|r| r.window).map(|w| w.end) {
                        until(end);
                    }
                    Some(CurrentUsage { value, window })
                }
                _ => None,
            };
            entries.insert(id.clone(), Entry { merged, usage });
        }
        Self {
            catalog,
            mode: Mode::Customer,
            scope_denial: None,
            has_sources,
            entries,
            valid_until,
        }
    }

    /// The check of `feature` with no requested usage or values.
    #[must_use]
    pub fn get<'a>(&'a self, feature: &'a str) -> EntitlementAnswer<'a> {
        self.answer::<&str>(feature, None, None, None)
    }

    /// The check of `feature` (`getEntitlement`): `requested_usage` needs a metered
    /// feature, `requested_values` an enum feature (else `FeatureTypeMismatch`).
    #[must_use]
    pub fn check<'a>(
        &'a self,
        feature: &'a str,
        requested_usage: Option<u64>,
        requested_values: Option<&[String]>,
    ) -> EntitlementAnswer<'a> {
        self.answer(feature, None, requested_usage, requested_values)
    }

    /// The check of a boolean feature.
    #[must_use]
    pub fn boolean<'a>(&'a self, feature: &'a str) -> EntitlementAnswer<'a> {
        self.answer::<&str>(feature, Some(EntitlementType::Boolean), None, None)
    }

    /// The check of a numeric configuration feature.
    #[must_use]
    pub fn numeric<'a>(&'a self, feature: &'a str) -> EntitlementAnswer<'a> {
        self.answer::<&str>(feature, Some(EntitlementType::Numeric), None, None)
    }

    /// The check of a metered feature for `requested_usage` more units
    /// (`getMeteredEntitlement`).
    #[must_use]
    pub fn metered<'a>(&'a self, feature: &'a str, requested_usage: u64) -> EntitlementAnswer<'a> {
        self.answer::<&str>(
            feature,
            Some(EntitlementType::Metered),
            Some(requested_usage),
            None,
        )
    }

    /// The check of an enum feature for `requested_values`, which must all be granted.
    #[must_use]
    pub fn enumeration<'a, S: AsRef<str>>(
        &'a self,
        feature: &'a str,
        requested_values: &[S],
    ) -> EntitlementAnswer<'a> {
        self.answer(
            feature,
            Some(EntitlementType::Enum),
            None,
            Some(requested_values),
        )
    }

    fn answer<'a, S: AsRef<str>>(
        &'a self,
        feature_id: &'a str,
        expected: Option<EntitlementType>,
        requested_usage: Option<u64>,
        requested_values: Option<&[S]>,
    ) -> EntitlementAnswer<'a> {
        let entry = self.entries.get(feature_id);
        // A feature with an entry is in the catalog: one lookup answers the common case.
        let entitlement_type = entry
            .map(|e| e.merged.entitlement_type)
            .or_else(|| self.catalog.feature(feature_id).map(EntitlementType::of));
        let is_fallback = self.mode == Mode::Fallback && entry.is_some();
        let answer = |denied, entry| EntitlementAnswer {
            feature_id,
            entitlement_type,
            denied,
            entry,
            requested_usage,
            is_fallback,
        };
        let reason = match self.mode {
            Mode::Fallback if entry.is_none() => Some(AccessDeniedReason::CustomerNotFound),
            Mode::Fallback | Mode::Customer => self.scope_denial,
        };
        if let Some(reason) = reason {
            return answer(Some(reason), None);
        }
        let Some(ty) = entitlement_type else {
            return answer(Some(AccessDeniedReason::FeatureNotFound), None);
        };
        let mismatch = expected.is_some_and(|e| e != ty)
            || (requested_usage.is_some() && ty != EntitlementType::Metered)
            || (requested_values.is_some() && ty != EntitlementType::Enum);
        if mismatch {
            return answer(Some(AccessDeniedReason::FeatureTypeMismatch), None);
        }
        if !self.has_sources {
            return answer(Some(AccessDeniedReason::NoActiveSubscription), None);
        }
        let Some(entry) = entry else {
            return answer(
                Some(AccessDeniedReason::NoFeatureEntitlementInSubscription),
                None,
            );
        };
        if !entry.merged.grants() {
            return answer(
                Some(AccessDeniedReason::NoFeatureEntitlementInSubscription),
                Some(entry),
            );
        }
        match &entry.merged.value {
            EntitlementValue::Metered {
                limit: UsageLimit::Limited(limit),
                soft_limit: false,
                ..
            } => {
                let current = entry.usage.map_or(0, |u| u.value);
                let within = current
                    .checked_add(requested_usage.unwrap_or(0))
                    .is_some_and(|total| total <= *limit);
                if !within {
                    return answer(
                        Some(AccessDeniedReason::RequestedUsageExceedingLimit),
                        Some(entry),
                    );
                }
            }
            EntitlementValue::Enum { values } => {
                let all_granted = requested_values
                    .unwrap_or_default()
                    .iter()
                    .all(|r| values.iter().any(|v| v == r.as_ref()));
                if !all_granted {
                    return answer(
                        Some(AccessDeniedReason::RequestedValuesMismatch),
                        Some(entry),
                    );
                }
            }
            EntitlementValue::Metered { .. }
            | EntitlementValue::Boolean { .. }
            | EntitlementValue::Numeric { .. } => {}
        }
        answer(None, Some(entry))
    }

    /// Every merged entitlement of the scope, answered without requested usage, sorted by
    /// feature id (`getEntitlements`).
    #[must_use]
    pub fn entitlements(&self) -> Vec<EntitlementAnswer<'_>> {
        let mut features: Vec<&FeatureId> = self.entries.keys().collect();
        features.sort();
        features.into_iter().map(|f| self.get(f.as_str())).collect()
    }

    /// The merged entitlement of `feature`, if the scope has one.
    #[must_use]
    pub fn merged(&self, feature: &str) -> Option<&MergedEntitlement> {
        self.entries.get(feature).map(|e| &e.merged)
    }

    /// A denial every check of this set starts with (`CustomerIsArchived`,
    /// `CustomerResourceNotFound`), if any.
    #[must_use]
    pub fn scope_denial(&self) -> Option<AccessDeniedReason> {
        self.scope_denial
    }

    /// Whether the set answers with fallback entitlements (an unknown customer).
    #[must_use]
    pub fn is_fallback(&self) -> bool {
        self.mode == Mode::Fallback
    }

    /// How many features have a merged entitlement.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no feature has a merged entitlement.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first instant after the build at which the answers change without a state
    /// change: a usage window ends, a promotional grant starts or ends. `None` when no
    /// such instant exists.
    #[must_use]
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.valid_until
    }
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

/// The answer of one check (FORMAT.md §3 "entitlement").
#[derive(Debug, Clone, Copy)]
pub struct EntitlementAnswer<'a> {
    feature_id: &'a str,
    entitlement_type: Option<EntitlementType>,
    denied: Option<AccessDeniedReason>,
    entry: Option<&'a Entry>,
    requested_usage: Option<u64>,
    is_fallback: bool,
}

impl<'a> EntitlementAnswer<'a> {
    /// The feature asked about.
    #[must_use]
    pub fn feature_id(&self) -> &'a str {
        self.feature_id
    }

    /// The feature's type (`None` for a feature the catalog lacks).
    #[must_use]
    pub fn entitlement_type(&self) -> Option<EntitlementType> {
        self.entitlement_type
    }

    /// Whether access is granted.
    #[must_use]
    pub fn has_access(&self) -> bool {
        self.denied.is_none()
    }

    /// Why access is denied.
    #[must_use]
    pub fn access_denied_reason(&self) -> Option<AccessDeniedReason> {
        self.denied
    }

    /// Whether the answer comes from fallback entitlements.
    #[must_use]
    pub fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    /// The merged entitlement the answer carries, if any.
    #[must_use]
    pub fn merged(&self) -> Option<&'a MergedEntitlement> {
        self.entry.map(|e| &e.merged)
    }

    fn value_ref(&self) -> Option<&'a EntitlementValue> {
        self.entry.map(|e| &e.merged.value)
    }

    /// The numeric configuration value.
    #[must_use]
    pub fn value(&self) -> Option<u64> {
        self.value_ref().and_then(numeric)
    }

    /// The usage limit (`None` when unlimited or not metered).
    #[must_use]
    pub fn usage_limit(&self) -> Option<u64> {
        match self.value_ref()? {
            EntitlementValue::Metered {
                limit: UsageLimit::Limited(n),
                ..
            } => Some(*n),
            _ => None,
        }
    }

    /// Whether usage is unlimited.
    #[must_use]
    pub fn has_unlimited_usage(&self) -> bool {
        matches!(
            self.value_ref(),
            Some(EntitlementValue::Metered {
                limit: UsageLimit::Unlimited,
                ..
            })
        )
    }

    /// Whether the limit is soft (usage beyond it is allowed).
    #[must_use]
    pub fn has_soft_limit(&self) -> bool {
        matches!(
            self.value_ref(),
            Some(EntitlementValue::Metered {
                soft_limit: true,
                ..
            })
        )
    }

    /// How often usage resets.
    #[must_use]
    pub fn reset_period(&self) -> Option<ResetPeriod> {
        match self.value_ref()? {
            EntitlementValue::Metered { reset, .. } => reset.map(|r| r.period),
            _ => None,
        }
    }

    /// Usage in the current window.
    #[must_use]
    pub fn current_usage(&self) -> Option<u64> {
        self.entry.and_then(|e| e.usage).map(|u| u.value)
    }

    /// The current usage window.
    #[must_use]
    pub fn usage_period(&self) -> Option<Period> {
        self.entry.and_then(|e| e.usage).and_then(|u| u.window)
    }

    /// The requested usage, as checked (0 when not given).
    #[must_use]
    pub fn requested_usage(&self) -> u64 {
        self.requested_usage.unwrap_or(0)
    }

    /// The granted enum values, in declared order.
    #[must_use]
    pub fn enum_values(&self) -> Option<&'a [String]> {
        match self.value_ref()? {
            EntitlementValue::Enum { values } => Some(values),
            _ => None,
        }
    }

    /// The sources of the merged entitlement (empty without one).
    #[must_use]
    pub fn sources(&self) -> &'a [Source] {
        self.entry.map_or(&[], |e| e.merged.sources())
    }

    /// The answer as FORMAT.md §3 writes it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            "featureId".to_owned(),
            Value::String(self.feature_id.to_owned()),
        );
        if let Some(ty) = self.entitlement_type {
            map.insert("type".to_owned(), Value::String(ty.as_str().to_owned()));
        }
        map.insert("hasAccess".to_owned(), Value::Bool(self.has_access()));
        if let Some(reason) = self.denied {
            map.insert(
                "accessDeniedReason".to_owned(),
                Value::String(reason.as_str().to_owned()),
            );
        }
        if let Some(value) = self.value() {
            map.insert("value".to_owned(), json!(value));
        }
        if let Some(limit) = self.usage_limit() {
            map.insert("usageLimit".to_owned(), json!(limit));
        }
        if let Some(current) = self.current_usage() {
            map.insert("currentUsage".to_owned(), json!(current));
        }
        let metered = self.entitlement_type == Some(EntitlementType::Metered);
        if self.requested_usage.is_some() || (metered && self.entry.is_some()) {
            map.insert("requestedUsage".to_owned(), json!(self.requested_usage()));
        }
        map.insert(
            "hasUnlimitedUsage".to_owned(),
            Value::Bool(self.has_unlimited_usage()),
        );
        map.insert(
            "hasSoftLimit".to_owned(),
            Value::Bool(self.has_soft_limit()),
        );
        if let Some(period) = self.reset_period() {
            map.insert("resetPeriod".to_owned(), name(&period));
        }
        if let Some(window) = self.usage_period() {
            map.insert("usagePeriodStart".to_owned(), instant(window.start));
            map.insert("usagePeriodEnd".to_owned(), instant(window.end));
        }
        if let Some(values) = self.enum_values() {
            map.insert("enumValues".to_owned(), json!(values));
        }
        map.insert("isFallback".to_owned(), Value::Bool(self.is_fallback));
        map.insert(
            "sources".to_owned(),
            Value::Array(self.sources().iter().map(Source::to_json).collect()),
        );
        Value::Object(map)
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// A `getEntitlement` request (FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetEntitlementRequest {
    /// The customer.
    pub customer_id: CustomerId,
    /// The feature.
    pub feature_id: FeatureId,
    /// The resource (default: the product-wide scope).
    pub resource_id: Option<ResourceId>,
    /// Usage about to be consumed (metered features).
    pub requested_usage: Option<u64>,
    /// Values that must all be granted (enum features).
    pub requested_values: Option<Vec<String>>,
}

/// A `getEntitlements` request (FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetEntitlementsRequest {
    /// The customer.
    pub customer_id: CustomerId,
    /// The resource (default: the product-wide scope).
    pub resource_id: Option<ResourceId>,
}

/// `state` if it is `customer`'s.
fn state_of<'s>(
    state: Option<&'s CustomerState>,
    customer: &CustomerId,
) -> Option<&'s CustomerState> {
    state.filter(|s| &s.customer.id == customer)
}

/// Answers a `getEntitlement` request at `now`; `state` is the customer's state, `None`
/// for an unknown customer. The result is FORMAT.md §3's entitlement.
#[must_use]
pub fn get_entitlement(
    catalog: &Catalog,
    state: Option<&CustomerState>,
    fallback: &FallbackEntitlements,
    request: &GetEntitlementRequest,
    now: DateTime<Utc>,
) -> Value {
    let set = EntitlementSet::build(
        catalog,
        state_of(state, &request.customer_id),
        request.resource_id.as_ref(),
        fallback,
        now,
    );
    set.check(
        request.feature_id.as_str(),
        request.requested_usage,
        request.requested_values.as_deref(),
    )
    .to_json()
}

/// Answers a `getEntitlements` request at `now`: `{entitlements: [entitlement…]}` sorted
/// by feature id.
#[must_use]
pub fn get_entitlements(
    catalog: &Catalog,
    state: Option<&CustomerState>,
    fallback: &FallbackEntitlements,
    request: &GetEntitlementsRequest,
    now: DateTime<Utc>,
) -> Value {
    let set = EntitlementSet::build(
        catalog,
        state_of(state, &request.customer_id),
        request.resource_id.as_ref(),
        fallback,
        now,
    );
    json!({
        "entitlements": set
            .entitlements()
            .iter()
            .map(EntitlementAnswer::to_json)
            .collect::<Vec<_>>()
    })
}

/// The `grantPromotionalEntitlement` result: `{promotionalEntitlement}`.
#[must_use]
pub fn grant_result(grant: &PromotionalGrant) -> Value {
    json!({ "promotionalEntitlement": grant.to_json() })
}
