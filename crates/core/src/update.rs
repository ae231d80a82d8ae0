//! Changes to an existing subscription (SPEC.md §5): `updateSubscription`,
//! `cancelScheduledUpdates`, `migrateSubscriptionToLatest` and `transferSubscription`.
//!
//! An update changes the subscription in place (same id, start date and, unless the billing
//! period changes, billing anchor). It is validated, classified, timed and prorated by the
//! very code that decides a plan change ([`crate::provision`]), so its invoice, its
//! estimate and its scheduling follow the same rules:
//! - more units or add-ons is an `UPGRADE` and applies now, prorated within the current
//!   period (a change of quantities alone is classified by the quantities, whatever tiers
//!   make of the amount; a mix of more and fewer, or another add-on list, by the recurring
//!   amount); an upgrade clears a pending cancellation;
//! - a `DOWNGRADE` follows `scheduleStrategy` (default: the product's downgrade strategy);
//!   scheduled, it is stored as an `UPDATE` and the current configuration (and so its
//!   entitlement limits) stays until it applies; stored for when a pending cancellation
//!   would have ended the subscription, it withdraws that cancellation (a scheduled
//!   migration does not);
//! - a request equal to the current configuration changes nothing and cancels a scheduled
//!   change; any later request replaces the scheduled one;
//! - a billing-period change starts a new billing period now, crediting the unused rest.
//!
//! # Rules decided here (the documents are silent)
//!
//! - Fields left out keep their current value: `billableFeatures` lists only the features
//!   it changes; `addons`, when given, replaces the whole list. Add-ons kept keep the
//!   version the subscription holds.
//! - A trial, a waiting (`NOT_STARTED`) subscription and one waiting for payment take an
//!   update now, without proration: nothing has been charged for them yet.
//! - `trialEndDate` applies only to a trial, live or waiting (`InvalidSubscriptionStatus`
//!   otherwise), and must be after both now and the trial's start (`InvalidArgumentError`).
//! - `metadata`, when given, replaces the subscription's metadata; a `promotionCode`
//!   replaces its coupon from now on. Both apply now even when the configuration change is
//!   scheduled.
//! - An update that charges now needs a payment method when the provider collects the
//!   subscription's invoices (`PaymentMethodNotFound` otherwise).
//! - A migration moves the plan and its add-ons to their latest versions
//!   (`SubscriptionAlreadyOnLatestPlanError` when all already are); per-unit
//!   quantities are kept where the new version still sells them. `IMMEDIATE` applies now
//!   whatever the direction, crediting the old version's prices and debiting the new
//!   (versions are different components); `END_OF_BILLING_PERIOD` stores a `MIGRATION`.
//!   The change the customer scheduled stays: one that goes on with the plan moves to the
//!   latest versions too (applied as it was, it would take the migration back), and a
//!   migration for the period end goes into it instead of replacing it. The other way
//!   round, a scheduled migration goes on with a later update, to the updated
//!   configuration at the latest versions; an update starting a new period now ends the
//!   period the migration waited for, and takes it along: the new period is charged at the
//!   latest versions. Restoring the configuration leaves the migration.
//! - A transfer moves a live or waiting subscription of a multi-subscription product to
//!   another resource; the destination must not hold a live or waiting subscription of
//!   the same kind (trial or not) of the product (`InvalidArgumentError`). Usage stays with
//!   the resource it was reported for, and entitlement checks count it there (FORMAT.md
//!   §6); the usage the subscription has not been billed for moves with it, so its period
//!   close bills what was reported before the transfer too. A trial and the waiting
//!   subscription it was to convert into (`AT_TRIAL_END`) part when either moves: the
//!   trial ends by its own end behaviour, as when that subscription is canceled before it
//!   starts, and the waiting subscription still starts when it was to.

use crate::catalog::{Catalog, ScheduleStrategy};
use crate::change::ChangeType;
use crate::coupon::Redemptions;
use crate::customer::CustomerState;
use crate::error::{Error, ErrorCode};
use crate::explain::Step;
use crate::id::{ResourceId, SubscriptionId};
use crate::period::BillingPeriod;
use crate::pricing::Configuration;
use crate::provision::{
    self, AddonRequest, BillingCycleAnchor, Effects, FeatureQuantity, InPlace, Mode,
    ProrationBehavior, ProvisionDecision, ProvisionRequest, ProvisionStatus, Stages,
};
use crate::settings::Settings;
use crate::subscription::{ScheduledUpdate, ScheduledUpdateType, Subscription, SubscriptionStatus};
use crate::trial::TrialOutcome;
use crate::usage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An `updateSubscription` request (FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRequest {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The quantity of the plan's only per-unit price.
    pub unit_quantity: Option<i64>,
    /// Quantities of per-unit priced features to change.
    pub billable_features: Option<Vec<FeatureQuantity>>,
    /// The add-ons, replacing the current list.
    pub addons: Option<Vec<AddonRequest>>,
    /// A new billing period.
    pub billing_period: Option<BillingPeriod>,
    /// A promotion code to redeem.
    pub promotion_code: Option<String>,
    /// A new trial end.
    pub trial_end_date: Option<DateTime<Utc>>,
    /// When a downgrade applies (default: the product's downgrade strategy).
    pub schedule_strategy: Option<ScheduleStrategy>,
    /// Whether an immediate change keeps the billing period.
    pub billing_cycle_anchor: Option<BillingCycleAnchor>,
    /// What happens to the prorated difference.
    pub proration_behavior: Option<ProrationBehavior>,
    /// New metadata, replacing the old.
    #[serde(default, deserialize_with = "crate::stored::unique_map_option")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A `cancelScheduledUpdates` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CancelScheduledRequest {
    /// The subscription.
    pub subscription_id: SubscriptionId,
}

/// When a migration applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MigrationTime {
    /// Now, with the prorated price difference invoiced.
    #[default]
    Immediate,
    /// At the end of the billing period.
    EndOfBillingPeriod,
}

/// A `migrateSubscriptionToLatest` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MigrateRequest {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// When (default `IMMEDIATE`).
    pub migration_time: Option<MigrationTime>,
}

/// A `transferSubscription` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransferRequest {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The resource it moves to.
    pub destination_resource_id: ResourceId,
}

/// A decision that changes `sub` without money.
fn quiet_decision(sub: &Subscription, effects: Effects, explanation: Step) -> ProvisionDecision {
    ProvisionDecision {
        status: ProvisionStatus::Success,
        subscription: Some(sub.id.clone()),
        is_scheduled: false,
        change_type: ChangeType::None,
        trial: TrialOutcome::unchanged(),
        checkout: None,
        charge: None,
        effects,
        explanation: vec![explanation],
    }
}

/// The provisioning request an in-place change of `sub` to `config` is validated as: the
/// configuration's plan (at `plan_version`, else the latest), billing period and add-ons,
/// and the subscription's scope, collection method and tax.
fn as_provision_request(
    state: &CustomerState,
    sub: &Subscription,
    config: &Configuration,
    plan_version: Option<u32>,
) -> ProvisionRequest {
    ProvisionRequest {
        customer_id: state.customer.id.clone(),
        plan_id: config.plan.clone(),
        plan_version,
        billing_period: config.billing_period,
        resource_id: sub.resource.clone(),
        unit_quantity: None,
        billable_features: Vec::new(),
        addons: config
            .addons
            .iter()
            .map(|a| AddonRequest {
                addon_id: a.addon.clone(),
                quantity: i64::from(a.quantity),
            })
            .collect(),
        promotion_code: None,
        coupon_id: None,
        billing_country_code: None,
        start_date: None,
        skip_trial: false,
        trial_override: None,
        schedule_strategy: None,
        billing_cycle_anchor: None,
        proration_behavior: None,
        payment_collection_method: Some(sub.payment_collection_method),
        checkout_options: None,
        subscription_id: None,
        metadata: BTreeMap::new(),
        tax_percentage: sub.tax_percentage,
    }
}

/// The unit quantities of `config` that its plan (at `plan_version`, else the latest) still
/// sells by quantity at `period`, except those in `changed`.
fn kept_units(
    catalog: &Catalog,
    config: &Configuration,
    plan_version: Option<u32>,
    period: Option<BillingPeriod>,
    changed: &[FeatureQuantity],
) -> Vec<FeatureQuantity> {
    let Some(plan) = catalog.plan_or_latest(config.plan.as_str(), plan_version) else {
        return Vec::new();
    };
    let sold = provision::per_unit_prices(plan, config.country, period);
    config
        .units
        .iter()
        .filter(|(feature, _)| sold.clone().any(|(f, _, _)| f == *feature))
        .filter(|(feature, _)| !changed.iter().any(|c| &c.feature_id == *feature))
        .filter_map(|(feature, quantity)| {
            Some(FeatureQuantity {
                feature_id: feature.clone(),
                quantity: i64::try_from(*quantity).ok()?,
            })
        })
        .collect()
}

/// Decides an `updateSubscription` request for the customer in `state` at `now`.
///
/// # Errors
/// `CustomerIsArchived`, `SubscriptionNotFound`, `InvalidSubscriptionStatus` (an ended subscription),
/// the validation errors of provisioning (`BillingPeriodMissingError`, the add-on and
/// quantity errors, `FeatureNotFound`, the promotion code errors, `InvalidArgumentError`),
/// `PaymentMethodNotFound`, `AmountTooLarge`.
pub fn update_subscription(
    catalog: &Catalog,
    state: &CustomerState,
    request: &UpdateRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<ProvisionDecision, Error> {
    decide_update(
        catalog,
        state,
        request,
        redemptions,
        now,
        settings,
        Stages::WithPayment,
    )
}

pub(crate) fn decide_update(
    catalog: &Catalog,
    state: &CustomerState,
    request: &UpdateRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
    stages: Stages,
) -> Result<ProvisionDecision, Error> {
    let sub = state.changeable_subscription(request.subscription_id.as_str())?;
    let version = Some(sub.config.plan_version);
    let mut provision_request = as_provision_request(state, sub, &sub.config, version);
    let period = request.billing_period.or(sub.config.billing_period);
    provision_request.billing_period = period;
    provision_request.unit_quantity = request.unit_quantity;
    let changed = request.billable_features.clone().unwrap_or_default();
    // `unitQuantity` names the plan's only per-unit price: no other quantity is kept.
    let units_at = |version: Option<u32>| {
        let mut units = changed.clone();
        if request.unit_quantity.is_none() {
            units.extend(kept_units(catalog, &sub.config, version, period, &changed));
        }
        units
    };
    provision_request.billable_features = units_at(version);
    if let Some(addons) = &request.addons {
        provision_request.addons = addons.clone();
    }
    provision_request.promotion_code = request.promotion_code.clone();
    provision_request.schedule_strategy = request.schedule_strategy;
    provision_request.billing_cycle_anchor = request.billing_cycle_anchor;
    provision_request.proration_behavior = request.proration_behavior;
    // The same change at the latest versions, for a scheduled migration that goes on with it.
    let mut latest = provision_request.clone();
    latest.plan_version = None;
    latest.billable_features = units_at(None);
    // A migration scheduled for the subscription (or gone into the customer's scheduled
    // change) goes on with the change, to the requested configuration at the latest
    // versions (its promotion code is the change's, not the migration's).
    let carried = match sub
        .scheduled_updates
        .iter()
        .find(|u| u.kind == ScheduledUpdateType::Migration || carries_migration(sub, u))
    {
        Some(migration) => {
            let target = provision::latest_configuration(
                catalog,
                state,
                &ProvisionRequest {
                    promotion_code: None,
                    ..latest.clone()
                },
                &sub.config,
                now,
                settings,
                &format!(
                    "the migration scheduled for {}, with this change",
                    migration.scheduled_at
                ),
            )?;
            Some(ScheduledUpdate {
                kind: ScheduledUpdateType::Migration,
                target,
                ..migration.clone()
            })
        }
        None => None,
    };
    let change = InPlace {
        current: sub,
        kind: ScheduledUpdateType::Update,
        timing: None,
        trial_end: request.trial_end_date,
        metadata: request.metadata.as_ref(),
        carried: carried.as_ref(),
        names_configuration: request.unit_quantity.is_some()
            || request.billable_features.is_some()
            || request.addons.is_some()
            || request.billing_period.is_some(),
        decided: None,
    };
    let mode = |change| Mode {
        stages,
        in_place: Some(change),
        completing: None,
    };
    let decision = provision::decide(
        catalog,
        state,
        &provision_request,
        redemptions,
        now,
        settings,
        mode(&change),
    )?;
    if carried.is_none() || !starts_period_now(&decision, sub, now) {
        return Ok(decision);
    }
    // The change ends the period the migration waited for: the migration applies with it,
    // and the new period is priced at the latest versions of the plan and its add-ons. The
    // change keeps its direction (so its timing and what it does to a pending
    // cancellation), whatever the latest prices make of it.
    let migrated = InPlace {
        timing: Some(ScheduleStrategy::Immediate),
        carried: None,
        decided: Some(decision.change_type),
        ..change
    };
    let mut folded = match provision::decide(
        catalog,
        state,
        &latest,
        redemptions,
        now,
        settings,
        mode(&migrated),
    ) {
        // Latest versions priced in another currency cannot take the credit for the old
        // period: the migration waits for the new period's end, as it would for a change
        // keeping the period.
        Err(e) if e.code() == ErrorCode::CurrencyMismatch => return Ok(decision),
        other => other?,
    };
    let step = Step::MigrationAppliedWithChange {
        subscription: sub.id.clone(),
    };
    let after = folded
        .explanation
        .iter()
        .position(|s| matches!(s, Step::ChangedWithNewPeriod { .. }))
        .map_or(folded.explanation.len(), |i| i.saturating_add(1));
    folded.explanation.insert(after, step);
    Ok(folded)
}

/// Whether `decision`, an update of `sub` at `now`, applies now and starts a new billing
/// period (a billing-period change, or `billingCycleAnchor: NOW`).
fn starts_period_now(decision: &ProvisionDecision, sub: &Subscription, now: DateTime<Utc>) -> bool {
    let started = |s: &Subscription| s.current_period.is_some_and(|p| p.start == now);
    !decision.is_scheduled
        && !started(sub)
        && decision.effects.subscription(&sub.id).is_some_and(started)
}

/// Decides a `cancelScheduledUpdates` request: the subscription's scheduled changes are
/// dropped (a pending cancellation is not a scheduled update and stays).
///
/// # Errors
/// `CustomerIsArchived`, `SubscriptionNotFound`, `InvalidSubscriptionStatus` (an ended subscription).
pub fn cancel_scheduled_updates(
    state: &CustomerState,
    request: &CancelScheduledRequest,
) -> Result<ProvisionDecision, Error> {
    let sub = state.changeable_subscription(request.subscription_id.as_str())?;
    let mut effects = Effects::default();
    let explanation = if sub.scheduled_updates.is_empty() {
        Step::NoScheduledUpdate {
            subscription: sub.id.clone(),
        }
    } else {
        effects.schedule.push(provision::ScheduleChange {
            subscription: sub.id.clone(),
            update: None,
        });
        Step::ScheduledUpdatesCanceled {
            subscription: sub.id.clone(),
        }
    };
    Ok(quiet_decision(sub, effects, explanation))
}

/// Decides a `migrateSubscriptionToLatest` request.
///
/// # Errors
/// `CustomerIsArchived`, `SubscriptionNotFound`, `InvalidSubscriptionStatus` (an ended subscription),
/// `PlanNotFound`, and the validation errors of the subscription's configuration, or of
/// the change scheduled for it, at the latest versions (`BillingPeriodMissingError`,
/// `IncompatibleSubscriptionAddon`, …), `PaymentMethodNotFound`, `AmountTooLarge`.
pub fn migrate_subscription_to_latest(
    catalog: &Catalog,
    state: &CustomerState,
    request: &MigrateRequest,
    redemptions: &Redemptions,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<ProvisionDecision, Error> {
    let sub = state.changeable_subscription(request.subscription_id.as_str())?;
    let latest = |plan: Option<u32>, current: u32| plan.is_none_or(|v| v <= current);
    let on_latest = latest(
        catalog
            .latest_plan(sub.config.plan.as_str())
            .map(|p| p.version),
        sub.config.plan_version,
    ) && sub.config.addons.iter().all(|a| {
        latest(
            catalog.latest_addon(a.addon.as_str()).map(|l| l.version),
            a.version,
        )
    });
    if on_latest {
        return Err(Error::new(
            ErrorCode::SubscriptionAlreadyOnLatestPlanError,
            format!(
                "subscription `{}` is already on the latest version of plan `{}` and its add-ons",
                sub.id, sub.config.plan
            ),
        ));
    }
    let mut provision_request = as_provision_request(state, sub, &sub.config, None);
    provision_request.billable_features =
        kept_units(catalog, &sub.config, None, sub.config.billing_period, &[]);
    let carried = sub
        .scheduled_updates
        .iter()
        .find(|u| u.kind != ScheduledUpdateType::Migration)
        .map(|u| carried_by_migration(catalog, state, sub, u, now, settings))
        .transpose()?;
    let timing = match request.migration_time.unwrap_or_default() {
        MigrationTime::Immediate => ScheduleStrategy::Immediate,
        MigrationTime::EndOfBillingPeriod => ScheduleStrategy::EndOfBillingPeriod,
    };
    let change = InPlace {
        current: sub,
        kind: ScheduledUpdateType::Migration,
        timing: Some(timing),
        trial_end: None,
        metadata: None,
        names_configuration: true,
        carried: carried.as_ref(),
        decided: None,
    };
    provision::decide(
        catalog,
        state,
        &provision_request,
        redemptions,
        now,
        settings,
        Mode {
            stages: Stages::WithPayment,
            in_place: Some(&change),
            completing: None,
        },
    )
}

/// Whether `update`, a change the customer scheduled for `sub`, carries a migration: it
/// goes on with the plan at another version, or with an add-on `sub` holds at another
/// version (a customer's own update keeps the versions the subscription holds).
fn carries_migration(sub: &Subscription, update: &ScheduledUpdate) -> bool {
    let target = &update.target;
    update.kind != ScheduledUpdateType::Migration
        && target.plan == sub.config.plan
        && (target.plan_version != sub.config.plan_version
            || target.addons.iter().any(|a| {
                sub.config
                    .addons
                    .iter()
                    .any(|held| held.addon == a.addon && held.version != a.version)
            }))
}

/// The change the customer scheduled for `sub`, as a migration of `sub` carries it along:
/// one that goes on with the subscription's plan moves to the latest versions of that plan
/// and of its add-ons, as the subscription does (else it would take the migration back when
/// it applies); one to another plan stays as it is. Its date and terms stay.
///
/// # Errors
/// The validation errors of the scheduled configuration at the latest versions
/// (`BillingPeriodMissingError`, `IncompatibleSubscriptionAddon`, …), naming the change.
fn carried_by_migration(
    catalog: &Catalog,
    state: &CustomerState,
    sub: &Subscription,
    update: &ScheduledUpdate,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<ScheduledUpdate, Error> {
    let mut carried = update.clone();
    if update.target.plan != sub.config.plan {
        return Ok(carried);
    }
    let target = &update.target;
    let mut request = as_provision_request(state, sub, target, None);
    request.billable_features = kept_units(catalog, target, None, target.billing_period, &[]);
    carried.target = provision::latest_configuration(
        catalog,
        state,
        &request,
        target,
        now,
        settings,
        &format!(
            "the change scheduled for {} at the latest versions",
            update.scheduled_at
        ),
    )?;
    Ok(carried)
}

/// Decides a `transferSubscription` request for the customer in `state` at `now`.
///
/// # Errors
/// `CustomerIsArchived`, `SubscriptionNotFound`, `InvalidSubscriptionStatus` (an ended subscription),
/// `ResourceIdMismatch` for a product with one subscription per customer,
/// `InvalidArgumentError` when the destination already holds a subscription of the same
/// kind, or for a billing period past the last representable date.
pub fn transfer_subscription(
    catalog: &Catalog,
    state: &CustomerState,
    request: &TransferRequest,
    now: DateTime<Utc>,
) -> Result<ProvisionDecision, Error> {
    let sub = state.changeable_subscription(request.subscription_id.as_str())?;
    let multiple = catalog
        .product(sub.product.as_str())
        .is_some_and(|p| p.multiple_subscriptions);
    if !multiple {
        return Err(Error::new(
            ErrorCode::ResourceIdMismatch,
            format!(
                "product `{}` has one subscription per customer: its subscriptions have no resource to move",
                sub.product
            ),
        ));
    }
    let destination = &request.destination_resource_id;
    if sub.resource.as_ref() == Some(destination) {
        return Ok(quiet_decision(
            sub,
            Effects::default(),
            Step::AlreadyOnResource {
                subscription: sub.id.clone(),
                resource: destination.clone(),
            },
        ));
    }
    let occupied = state.subscriptions.iter().find(|s| {
        s.in_scope(&sub.product, Some(destination))
            && s.is_trial == sub.is_trial
            && (s.status.is_live() || s.status == SubscriptionStatus::NotStarted)
    });
    if let Some(other) = occupied {
        return Err(Error::new(
            ErrorCode::InvalidArgumentError,
            format!(
                "resource `{destination}` already has subscription `{}` of product `{}`",
                other.id, sub.product
            ),
        ));
    }
    let mut moved = sub.clone();
    moved.resource = Some(destination.clone());
    let mut effects = Effects::default();
    let mut steps = Vec::new();
    // A trial converts only into a subscription of its own scope (`AT_TRIAL_END`): when
    // either of them moves, the waiting subscription no longer replaces the trial. The
    // trial ends by its own rule, as when the waiting subscription is canceled, and the
    // waiting subscription still starts when it was to.
    if let Some(waiting) = state.conversion_of(sub) {
        moved.clear_pending_cancellation();
        steps.push(Step::TrialConversionDropped {
            trial: sub.id.clone(),
            subscription: waiting.id.clone(),
        });
    }
    if let Some(trial) = state.converting_into(sub) {
        let mut kept = trial.clone();
        kept.clear_pending_cancellation();
        effects.replace.push(kept);
        steps.push(Step::TrialConversionDropped {
            trial: trial.id.clone(),
            subscription: sub.id.clone(),
        });
    }
    effects.replace.push(moved);
    effects.resource = Some(destination.clone());
    effects.usage_moved = usage::unbilled_moves(catalog, sub, destination, now)?;
    steps.extend(
        effects
            .usage_moved
            .iter()
            .map(|m| Step::UnbilledUsageMoves {
                subscription: sub.id.clone(),
                feature: m.feature.clone(),
            }),
    );
    let mut decision = quiet_decision(
        sub,
        effects,
        Step::MovesToResource {
            subscription: sub.id.clone(),
            resource: destination.clone(),
        },
    );
    decision.explanation.extend(steps);
    Ok(decision)
}
