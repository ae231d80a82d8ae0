//! Changes to an existing subscription: `updateSubscription`, its estimate,
//! `cancelScheduledUpdates`, `migrateSubscriptionToLatest`, `transferSubscription` and
//! archiving a customer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, Utc};
use common::{Decide, catalog_with, reference_catalog as catalog};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_core::cancellation::{CancelRequest, archive_customer, cancel_subscription};
use tollgate_core::change::ChangeType;
use tollgate_core::coupon::{Redemptions, held_codes, scheduled_redemptions};
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::estimate::estimate_subscription_update;
use tollgate_core::explain::Step;
use tollgate_core::id::{CustomerId, ResourceId, SubscriptionId};
use tollgate_core::invoice::{InvoiceReason, LineKind};
use tollgate_core::lifecycle::advance;
use tollgate_core::provision::{ProvisionDecision, ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, ScheduledUpdateType, SubscriptionStatus};
use tollgate_core::update::{
    CancelScheduledRequest, MigrateRequest, TransferRequest, UpdateRequest,
    cancel_scheduled_updates, migrate_subscription_to_latest, transfer_subscription,
    update_subscription,
};
use tollgate_core::{Catalog, Error, ErrorCode};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

const START: &str = "2025-01-01T00:00:00Z";
/// Exactly half of January's 31 days.
const HALF: &str = "2025-01-16T12:00:00Z";

/// A customer with a payment method, provisioned with `input` at `START`.
fn world(input: Value) -> (Catalog, CustomerState) {
    let catalog = catalog();
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    let mut state = CustomerState::new(customer);
    provision_into(&catalog, &mut state, START, input);
    (catalog, state)
}

fn provision_into(catalog: &Catalog, state: &mut CustomerState, at: &str, input: Value) {
    let mut input = input;
    input["customerId"] = json!("c1");
    let request: ProvisionRequest = serde_json::from_value(input).unwrap();
    let decision = provision(
        catalog,
        state,
        &request,
        &Redemptions::new(),
        t(at),
        &Settings::default(),
    )
    .unwrap();
    decision.apply(state, t(at));
}

/// `state` after the clock ran to `at` with the default settings.
fn advanced(catalog: &Catalog, state: &CustomerState, at: &str) -> CustomerState {
    advance(catalog, state, t(at), &Settings::default())
        .unwrap()
        .0
}

/// Pro version 1, monthly, 5 seats: 99 + 5 × 20 = 199 a month.
fn pro(seats: u64) -> Value {
    json!({"planId": "pro", "planVersion": 1, "billingPeriod": "MONTHLY", "skipTrial": true,
           "subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": seats}]})
}

/// `operation` decided at `at` on the request `input`, with the default settings.
fn decided<R: serde::de::DeserializeOwned>(
    operation: Decide<R>,
    catalog: &Catalog,
    state: &CustomerState,
    at: &str,
    input: Value,
) -> Result<ProvisionDecision, Error> {
    let request: R = serde_json::from_value(input).unwrap();
    operation(
        catalog,
        state,
        &request,
        &Redemptions::new(),
        t(at),
        &Settings::default(),
    )
}

fn update(
    catalog: &Catalog,
    state: &CustomerState,
    at: &str,
    input: Value,
) -> Result<ProvisionDecision, Error> {
    decided::<UpdateRequest>(update_subscription, catalog, state, at, input)
}

/// Applies an update that must go through and returns it.
fn updated(
    catalog: &Catalog,
    state: &mut CustomerState,
    at: &str,
    input: Value,
) -> ProvisionDecision {
    let decision = update(catalog, state, at, input).unwrap();
    decision.apply(state, t(at));
    decision
}

fn seats(state: &CustomerState) -> u64 {
    state
        .subscription("s")
        .unwrap()
        .config
        .units
        .values()
        .copied()
        .sum()
}

fn lines(decision: &ProvisionDecision) -> Vec<(LineKind, Decimal)> {
    decision
        .effects
        .invoice
        .as_ref()
        .unwrap()
        .lines
        .iter()
        .map(|l| (l.kind, l.amount))
        .collect()
}

#[test]
fn more_seats_mid_period_prorate_in_place_and_keep_the_period() {
    let (catalog, mut state) = world(pro(5));
    let before = state.subscription("s").unwrap().clone();
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 10}]}),
    );
    assert_eq!(decision.change_type, ChangeType::Upgrade);
    assert!(!decision.is_scheduled);
    // Seats 5 → 10 cost 100 → 175 a month; the flat fee is the same component and gets no
    // line. Half the period is left.
    assert_eq!(
        lines(&decision),
        [
            (LineKind::ProrationCredit, d("-50.00")),
            (LineKind::ProrationDebit, d("87.50"))
        ]
    );
    let invoice = decision.effects.invoice.as_ref().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    assert_eq!(invoice.total, d("37.50"));
    assert_eq!(invoice.subscription.as_str(), "s");
    let after = state.subscription("s").unwrap();
    assert_eq!(
        state.subscriptions.len(),
        1,
        "an update creates no subscription"
    );
    assert_eq!(after.status, SubscriptionStatus::Active);
    assert_eq!(after.start_date, before.start_date);
    assert_eq!(after.current_period, before.current_period);
    assert_eq!(seats(&state), 10);
    // The next renewal charges the new configuration in full: 99 + 175.
    let state = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    let renewal = state.invoices.last().unwrap();
    assert_eq!(renewal.reason, InvoiceReason::BillingCycle);
    assert_eq!(renewal.total, d("274.00"));
}

#[test]
fn fewer_seats_wait_for_the_period_end_and_keep_the_old_limit_until_then() {
    let (catalog, mut state) = world(pro(10));
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 3}]}),
    );
    assert_eq!(decision.change_type, ChangeType::Downgrade);
    assert!(decision.is_scheduled);
    assert!(decision.effects.invoice.is_none());
    let sub = state.subscription("s").unwrap();
    assert_eq!(
        seats(&state),
        10,
        "the old limit stays until the change applies"
    );
    let scheduled = &sub.scheduled_updates[0];
    assert_eq!(scheduled.kind, ScheduledUpdateType::Update);
    assert_eq!(scheduled.scheduled_at, t("2025-02-01T00:00:00Z"));
    assert_eq!(scheduled.target.units.values().sum::<u64>(), 3);

    let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    assert_eq!(seats(&after), 3);
    let sub = after.subscription("s").unwrap();
    assert!(sub.scheduled_updates.is_empty());
    assert_eq!(after.subscriptions.len(), 1);
    let renewal = after.invoices.last().unwrap();
    assert_eq!(renewal.reason, InvoiceReason::BillingCycle);
    assert_eq!(renewal.total, d("159.00"), "99 + 3 × 20");
}

#[test]
fn a_new_request_replaces_the_scheduled_one_and_the_current_configuration_cancels_it() {
    let (catalog, mut state) = world(pro(10));
    let seats_to = |n: u64| json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": n}]});
    updated(&catalog, &mut state, HALF, seats_to(3));
    updated(&catalog, &mut state, HALF, seats_to(4));
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.scheduled_updates.len(), 1);
    assert_eq!(
        sub.scheduled_updates[0].target.units.values().sum::<u64>(),
        4
    );

    let decision = updated(&catalog, &mut state, HALF, seats_to(10));
    assert_eq!(decision.change_type, ChangeType::None);
    assert!(decision.effects.invoice.is_none());
    assert!(
        state
            .subscription("s")
            .unwrap()
            .scheduled_updates
            .is_empty()
    );

    // An upgrade while a downgrade waits applies now and drops the waiting one.
    updated(&catalog, &mut state, HALF, seats_to(3));
    let decision = updated(&catalog, &mut state, HALF, seats_to(12));
    assert_eq!(decision.change_type, ChangeType::Upgrade);
    assert!(
        state
            .subscription("s")
            .unwrap()
            .scheduled_updates
            .is_empty()
    );
    assert_eq!(seats(&state), 12);
}

#[test]
fn an_immediate_downgrade_credits_the_rest_as_customer_credit() {
    let (catalog, mut state) = world(pro(10));
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "scheduleStrategy": "IMMEDIATE",
               "billableFeatures": [{"featureId": "seats", "quantity": 5}]}),
    );
    assert_eq!(decision.change_type, ChangeType::Downgrade);
    let invoice = decision.effects.invoice.as_ref().unwrap();
    // 175 → 100 for half the period: −87.50 + 50.00.
    assert_eq!(invoice.sub_total, d("-37.50"));
    assert_eq!(invoice.total, d("0.00"));
    assert_eq!(invoice.credit_issued, d("37.50"));
    assert_eq!(
        state.customer.credit_balance.values().sum::<Decimal>(),
        d("37.50")
    );
}

#[test]
fn an_upgrade_clears_a_pending_cancellation() {
    let (catalog, state) = world(pro(5));
    let request: CancelRequest = serde_json::from_value(
        json!({"subscriptionId": "s", "cancellationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap();
    let mut state = cancel_subscription(&catalog, &state, &request, t(HALF), &Settings::default())
        .unwrap()
        .state;
    assert!(state.subscription("s").unwrap().cancellation_date.is_some());
    // A downgrade keeps the pending cancellation …
    let mut kept = state.clone();
    updated(
        &catalog,
        &mut kept,
        HALF,
        json!({"subscriptionId": "s", "scheduleStrategy": "IMMEDIATE",
               "billableFeatures": [{"featureId": "seats", "quantity": 2}]}),
    );
    assert_eq!(
        kept.subscription("s").unwrap().cancellation_date,
        Some(t("2025-02-01T00:00:00Z"))
    );
    // … an upgrade clears it, and the subscription renews.
    updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 6}]}),
    );
    assert_eq!(state.subscription("s").unwrap().cancellation_date, None);
    let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    assert_eq!(
        after.subscription("s").unwrap().status,
        SubscriptionStatus::Active
    );
}

#[test]
fn a_billing_period_change_starts_a_new_period_now_and_keeps_the_start_date() {
    let (catalog, mut state) = world(pro(5));
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billingPeriod": "ANNUALLY", "scheduleStrategy": "IMMEDIATE"}),
    );
    // A year at 1990 is less a month than 199: by the normalized monthly amount, a downgrade.
    assert_eq!(decision.change_type, ChangeType::Downgrade);
    // The unused half of January is credited; a full year is charged from now:
    // 990 + 5 × 200.
    assert_eq!(
        lines(&decision),
        [
            (LineKind::ProrationCredit, d("-49.50")),
            (LineKind::ProrationCredit, d("-50.00")),
            (LineKind::Charge, d("990.00")),
            (LineKind::Charge, d("1000.00")),
        ]
    );
    let invoice = decision.effects.invoice.as_ref().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.start_date, t(START));
    assert_eq!(sub.billing_anchor, Some(t(HALF)));
    let period = sub.current_period.unwrap();
    assert_eq!(
        (period.start, period.end),
        (t(HALF), t("2026-01-16T12:00:00Z"))
    );
}

#[test]
fn add_ons_replace_the_list_and_a_kept_add_on_gets_no_lines() {
    let (catalog, mut state) = world(json!({"planId": "starter", "billingPeriod": "MONTHLY",
        "skipTrial": true, "subscriptionId": "s", "addons": [{"addonId": "priority-support"}]}));
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "addons": [{"addonId": "priority-support"},
                                                  {"addonId": "extra-projects", "quantity": 2}]}),
    );
    assert_eq!(decision.change_type, ChangeType::Upgrade);
    // Only the new add-on is debited: 2 × 10 for half the period.
    assert_eq!(lines(&decision), [(LineKind::ProrationDebit, d("10.00"))]);
    assert_eq!(state.subscription("s").unwrap().config.addons.len(), 2);
    // Dropping add-ons is a downgrade: the product waits for the period end.
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "addons": []}),
    );
    assert_eq!(decision.change_type, ChangeType::Downgrade);
    assert!(decision.is_scheduled);
    assert_eq!(state.subscription("s").unwrap().config.addons.len(), 2);
}

#[test]
fn a_trial_takes_an_update_now_without_money_and_its_end_can_move() {
    let (catalog, mut state) = world(json!({"planId": "pro", "planVersion": 1,
        "billingPeriod": "MONTHLY", "subscriptionId": "s"}));
    assert_eq!(
        state.subscription("s").unwrap().status,
        SubscriptionStatus::InTrial
    );
    let decision = updated(
        &catalog,
        &mut state,
        "2025-01-05T00:00:00Z",
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 8}],
               "trialEndDate": "2025-01-31T00:00:00Z", "metadata": {"crm": "42"}}),
    );
    assert!(decision.effects.invoice.is_none());
    assert!(!decision.is_scheduled);
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.trial_end, Some(t("2025-01-31T00:00:00Z")));
    assert_eq!(sub.current_period.unwrap().end, t("2025-01-31T00:00:00Z"));
    assert_eq!(sub.metadata["crm"], "42");
    assert_eq!(seats(&state), 8);
    // The trial now converts at its new end, with the new seats: 99 + 5 × 20 + 3 × 15.
    let after = advanced(&catalog, &state, "2025-01-31T00:00:00Z");
    let sub = after.subscription("s").unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Active);
    assert_eq!(after.invoices.last().unwrap().total, d("244.00"));
    // Not a trial any more.
    let err = update(
        &catalog,
        &after,
        "2025-02-02T00:00:00Z",
        json!({"subscriptionId": "s", "trialEndDate": "2025-03-01T00:00:00Z"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidSubscriptionStatus);
    let err = update(
        &catalog,
        &state,
        "2025-01-05T00:00:00Z",
        json!({"subscriptionId": "s", "trialEndDate": "2025-01-04T00:00:00Z"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgumentError);
}

#[test]
fn metadata_alone_changes_nothing_else() {
    let (catalog, mut state) = world(pro(5));
    let before = state.subscription("s").unwrap().clone();
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "metadata": {"a": "b"}}),
    );
    assert_eq!(decision.change_type, ChangeType::None);
    assert!(decision.effects.invoice.is_none());
    let after = state.subscription("s").unwrap();
    assert_eq!(after.metadata["a"], "b");
    let mut expected = before;
    expected.metadata = after.metadata.clone();
    assert_eq!(after, &expected);
}

#[test]
fn update_errors_have_their_codes_and_change_nothing() {
    let (catalog, state) = world(pro(5));
    let cases = [
        (
            json!({"subscriptionId": "nope"}),
            ErrorCode::SubscriptionNotFound,
        ),
        (
            json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 0}]}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 1001}]}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"subscriptionId": "s", "addons": [{"addonId": "nope"}]}),
            ErrorCode::AddonNotFound,
        ),
        (
            json!({"subscriptionId": "s", "addons": [{"addonId": "ws-priority"}]}),
            ErrorCode::IncompatibleSubscriptionAddon,
        ),
        (
            json!({"subscriptionId": "s", "addons": [{"addonId": "audit-pack"}]}),
            ErrorCode::AddonDependencyMissingError,
        ),
        (
            json!({"subscriptionId": "s", "addons": [{"addonId": "extra-projects", "quantity": 6}]}),
            ErrorCode::AddonQuantityExceedsLimitError,
        ),
        (
            json!({"subscriptionId": "s", "promotionCode": "NOPE"}),
            ErrorCode::PromotionCodeNotFound,
        ),
    ];
    for (input, code) in cases {
        let err = update(&catalog, &state, HALF, input.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{input}");
    }
    let request: CancelRequest =
        serde_json::from_value(json!({"subscriptionId": "s", "cancellationTime": "IMMEDIATE"}))
            .unwrap();
    let canceled = cancel_subscription(&catalog, &state, &request, t(HALF), &Settings::default())
        .unwrap()
        .state;
    let err = update(&catalog, &canceled, HALF, json!({"subscriptionId": "s"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidSubscriptionStatus);
}

#[test]
fn an_upgrade_that_charges_needs_a_payment_method() {
    let (catalog, mut state) = world(pro(5));
    state.customer.has_payment_method = false;
    let err = update(
        &catalog,
        &state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 6}]}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PaymentMethodNotFound);
    // A scheduled downgrade charges nothing now and needs none.
    assert!(update(&catalog, &state, HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 2}]})).is_ok());
}

#[test]
fn the_update_estimate_is_the_invoice_the_update_issues() {
    let (catalog, state) = world(pro(5));
    let input = json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 7}],
                       "addons": [{"addonId": "extra-projects"}]});
    let request: UpdateRequest = serde_json::from_value(input.clone()).unwrap();
    let estimate = estimate_subscription_update(
        &catalog,
        &state,
        &request,
        &Redemptions::new(),
        t(HALF),
        &Settings::default(),
    )
    .unwrap();
    let decision = update(&catalog, &state, HALF, input).unwrap();
    let invoice = decision.effects.invoice.unwrap();
    assert_eq!(estimate.lines, invoice.lines);
    assert_eq!(estimate.now.total, invoice.total);
    let proration = estimate.proration.unwrap();
    assert_eq!(proration.proration_date, t(HALF));
    assert_eq!(proration.net_amount, invoice.sub_total);
    // The recurring part is the next full month at 7 seats and one add-on: 99 + 130 + 10.
    assert_eq!(estimate.recurring.total, d("239.00"));
    assert!(!estimate.is_plan_downgrade);
}

#[test]
fn cancel_scheduled_updates_drops_them_and_keeps_a_pending_cancellation() {
    let (catalog, mut state) = world(pro(10));
    updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 3}]}),
    );
    let request = CancelScheduledRequest {
        subscription_id: SubscriptionId::new("s"),
    };
    let decision = cancel_scheduled_updates(&state, &request).unwrap();
    decision.apply(&mut state, t(HALF));
    assert!(
        state
            .subscription("s")
            .unwrap()
            .scheduled_updates
            .is_empty()
    );
    let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    assert_eq!(seats(&after), 10);
    assert_eq!(after.invoices.last().unwrap().total, d("274.00"));
}

#[test]
fn migrating_now_prorates_the_difference_between_versions() {
    let (catalog, mut state) = world(pro(5));
    let request = json!({"subscriptionId": "s"});
    let decision = migrate(&catalog, &state, HALF, request.clone()).unwrap();
    decision.apply(&mut state, t(HALF));
    // Version 2's prices are other components: 99 → 119 and the seats' 100 → 100, each
    // credited and debited for the half period left.
    assert_eq!(
        lines(&decision),
        [
            (LineKind::ProrationCredit, d("-49.50")),
            (LineKind::ProrationCredit, d("-50.00")),
            (LineKind::ProrationDebit, d("59.50")),
            (LineKind::ProrationDebit, d("50.00")),
        ]
    );
    let invoice = decision.effects.invoice.as_ref().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    assert_eq!(invoice.total, d("10.00"));
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.config.plan_version, 2);
    assert_eq!(seats(&state), 5);
    let err = migrate(&catalog, &state, HALF, request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SubscriptionAlreadyOnLatestPlanError);
}

#[test]
fn migrating_at_the_period_end_applies_as_the_renewal() {
    let (catalog, mut state) = world(pro(5));
    let decision = migrate(
        &catalog,
        &state,
        HALF,
        json!({"subscriptionId": "s", "migrationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap();
    assert!(decision.is_scheduled);
    assert!(decision.effects.invoice.is_none());
    decision.apply(&mut state, t(HALF));
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.config.plan_version, 1);
    assert_eq!(
        sub.scheduled_updates[0].kind,
        ScheduledUpdateType::Migration
    );
    let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    assert_eq!(after.subscription("s").unwrap().config.plan_version, 2);
    let renewal = after.invoices.last().unwrap();
    assert_eq!(renewal.reason, InvoiceReason::BillingCycle);
    assert_eq!(renewal.total, d("219.00"), "119 + 5 × 20");
}

fn migrate(
    catalog: &Catalog,
    state: &CustomerState,
    at: &str,
    input: Value,
) -> Result<ProvisionDecision, Error> {
    decided::<MigrateRequest>(migrate_subscription_to_latest, catalog, state, at, input)
}

#[test]
fn a_migration_carries_the_customers_scheduled_change_to_the_latest_version() {
    for timing in ["IMMEDIATE", "END_OF_BILLING_PERIOD"] {
        let (catalog, mut state) = world(pro(10));
        let scheduled = updated(
            &catalog,
            &mut state,
            "2025-01-05T00:00:00Z",
            json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 5}]}),
        );
        assert!(scheduled.is_scheduled, "{timing}");
        let decision = migrate(
            &catalog,
            &state,
            HALF,
            json!({"subscriptionId": "s", "migrationTime": timing}),
        )
        .unwrap();
        assert!(
            decision
                .explanation
                .iter()
                .any(|step| matches!(step, Step::ScheduledChangeMigrated { moved: true, .. })),
            "{timing}: {:?}",
            decision.explanation
        );
        decision.apply(&mut state, t(HALF));
        let sub = state.subscription("s").unwrap();
        let [update] = sub.scheduled_updates.as_slice() else {
            panic!(
                "{timing}: one scheduled change, not {:?}",
                sub.scheduled_updates
            );
        };
        // The customer's change stays an update, now to version 2: applied as it was, it
        // would take the migration back.
        assert_eq!(update.kind, ScheduledUpdateType::Update, "{timing}");
        assert_eq!(update.target.plan_version, 2, "{timing}");
        assert_eq!(update.scheduled_at, t("2025-02-01T00:00:00Z"), "{timing}");
        let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
        assert_eq!(after.subscription("s").unwrap().config.plan_version, 2);
        assert_eq!(seats(&after), 5, "{timing}");
        assert_eq!(
            after.invoices.last().unwrap().total,
            d("219.00"),
            "{timing}: 119 + 5 × 20"
        );
    }
}

/// Schedules a migration of `s` for the end of its period, on 2025-01-05.
fn schedule_migration(catalog: &Catalog, state: &mut CustomerState) {
    migrate(
        catalog,
        state,
        "2025-01-05T00:00:00Z",
        json!({"subscriptionId": "s", "migrationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap()
    .apply(state, t("2025-01-05T00:00:00Z"));
}

#[test]
fn a_change_starting_a_new_period_takes_the_scheduled_migration_with_it() {
    let (catalog, mut state) = world(pro(5));
    schedule_migration(&catalog, &mut state);
    // One more seat, with a new period from now: the period the migration waited for ends
    // here, so the new one is charged at version 2 (119 + 5 × 20 + 15), not at version 1
    // for a whole period more.
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 6}],
               "billingCycleAnchor": "NOW"}),
    );
    assert_eq!(decision.change_type, ChangeType::Upgrade);
    assert!(!decision.is_scheduled);
    assert_eq!(
        lines(&decision),
        [
            (LineKind::ProrationCredit, d("-49.50")),
            (LineKind::ProrationCredit, d("-50.00")),
            (LineKind::Charge, d("119.00")),
            (LineKind::Charge, d("115.00")),
        ]
    );
    assert!(
        decision
            .explanation
            .iter()
            .any(|step| matches!(step, Step::MigrationAppliedWithChange { .. })),
        "{:?}",
        decision.explanation
    );
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.config.plan_version, 2);
    assert!(
        sub.scheduled_updates.is_empty(),
        "{:?}",
        sub.scheduled_updates
    );
    assert_eq!(seats(&state), 6);
    let after = advanced(&catalog, &state, "2025-02-16T12:00:00Z");
    assert_eq!(after.invoices.last().unwrap().total, d("234.00"));
}

#[test]
fn a_migration_applied_with_a_change_moves_the_add_ons_and_keeps_the_customers_direction() {
    let (catalog, state) = world(
        json!({"planId": "pro", "planVersion": 1, "billingPeriod": "MONTHLY",
        "skipTrial": true, "subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 10}],
        "addons": [{"addonId": "extra-projects", "quantity": 2}]}),
    );
    // The customer's cancellation, before the vendor publishes version 2 of the add-on.
    let cancel: CancelRequest = serde_json::from_value(json!({"subscriptionId": "s",
        "cancellationTime": "SPECIFIC_DATE", "endDate": "2025-03-15T00:00:00Z"}))
    .unwrap();
    let mut state = cancel_subscription(
        &catalog,
        &state,
        &cancel,
        t("2025-01-03T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap()
    .state;
    let catalog = catalog_with(|json| {
        let addons = json["addons"].as_array_mut().unwrap();
        let mut newer = addons
            .iter()
            .find(|a| a["id"] == "extra-projects")
            .unwrap()
            .clone();
        newer["version"] = json!(2);
        newer["prices"] = json!([{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 12,
                                  "currency": "USD"}]);
        addons.push(newer);
    });
    schedule_migration(&catalog, &mut state);
    // Nine seats with a new period from now: fewer seats, a downgrade for the customer,
    // although version 2's dearer flat fee makes it dearer than the ten seats of version 1.
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 9}],
               "billingCycleAnchor": "NOW", "scheduleStrategy": "IMMEDIATE"}),
    );
    assert_eq!(decision.change_type, ChangeType::Downgrade);
    let sub = state.subscription("s").unwrap();
    assert_eq!(sub.config.plan_version, 2);
    assert_eq!(sub.config.addons[0].version, 2, "{:?}", sub.config.addons);
    // A downgrade leaves the customer's cancellation where it was.
    assert_eq!(sub.cancellation_date, Some(t("2025-03-15T00:00:00Z")));
    let charges: Vec<Decimal> = lines(&decision)
        .into_iter()
        .filter(|(kind, _)| *kind == LineKind::Charge)
        .map(|(_, amount)| amount)
        .collect();
    assert!(
        charges.contains(&d("24.00")),
        "2 × 12 at version 2: {charges:?}"
    );
}

#[test]
fn a_migration_the_scheduled_change_cannot_follow_changes_nothing() {
    // Version 2 of pro drops its annual prices.
    let catalog = catalog_with(|json| {
        for plan in json["plans"].as_array_mut().unwrap() {
            if plan["id"] == "pro" && plan["version"] == 2 {
                plan["prices"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|p| p["billingPeriod"] == "MONTHLY");
            }
        }
    });
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    let mut state = CustomerState::new(customer);
    provision_into(&catalog, &mut state, START, pro(5));
    // Annual billing costs less a month: a downgrade, scheduled for the period end.
    let scheduled = updated(
        &catalog,
        &mut state,
        "2025-01-05T00:00:00Z",
        json!({"subscriptionId": "s", "billingPeriod": "ANNUALLY"}),
    );
    assert!(scheduled.is_scheduled);
    for timing in ["IMMEDIATE", "END_OF_BILLING_PERIOD"] {
        let err = migrate(
            &catalog,
            &state,
            HALF,
            json!({"subscriptionId": "s", "migrationTime": timing}),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BillingPeriodMissingError, "{timing}");
        assert!(err.message().contains("scheduled"), "{}", err.message());
    }
}

fn workspaces() -> (Catalog, CustomerState) {
    let (catalog, mut state) = world(json!({"planId": "ws-plus", "billingPeriod": "MONTHLY",
        "resourceId": "r1", "subscriptionId": "w1"}));
    provision_into(
        &catalog,
        &mut state,
        START,
        json!({"planId": "ws-plus",
        "billingPeriod": "MONTHLY", "resourceId": "r2", "subscriptionId": "w2"}),
    );
    (catalog, state)
}

#[test]
fn a_transfer_moves_the_subscription_to_a_free_resource_only() {
    let (catalog, mut state) = workspaces();
    let to = |sub: &str, resource: &str| TransferRequest {
        subscription_id: SubscriptionId::new(sub),
        destination_resource_id: ResourceId::new(resource),
    };
    let err = transfer_subscription(&catalog, &state, &to("w1", "r2"), t(HALF)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgumentError);
    let decision = transfer_subscription(&catalog, &state, &to("w1", "r3"), t(HALF)).unwrap();
    assert!(decision.effects.invoice.is_none());
    decision.apply(&mut state, t(HALF));
    let sub = state.subscription("w1").unwrap();
    assert_eq!(sub.resource.as_ref().unwrap().as_str(), "r3");
    assert!(state.resources.iter().any(|r| r.as_str() == "r3"));
    // A single-subscription product has no resource to move.
    let (catalog, state) = world(pro(5));
    let err = transfer_subscription(&catalog, &state, &to("s", "r1"), t(HALF)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceIdMismatch);
}

/// A plan change scheduled with a promotion code redeems it when it is scheduled; dropping
/// the change before it applies gives the redemption back, and applying it keeps it.
#[test]
fn a_scheduled_plan_change_holds_its_code_until_it_applies_or_is_dropped() {
    let (catalog, mut state) = world(pro(5));
    let none = held_codes(&state);
    assert!(none.is_empty());
    provision_into(
        &catalog,
        &mut state,
        "2025-01-10T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true,
               "subscriptionId": "t", "promotionCode": "WELCOME10",
               "scheduleStrategy": "END_OF_BILLING_PERIOD"}),
    );
    let scheduled = scheduled_redemptions(&none, &state);
    assert_eq!(scheduled.redeemed, ["WELCOME10"]);
    assert!(scheduled.released.is_empty());
    let held = held_codes(&state);
    assert_eq!(held.len(), 1);

    // A cancellation drops the scheduled change: the code is given back.
    let request: CancelRequest = serde_json::from_value(
        json!({"subscriptionId": "s", "cancellationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap();
    let canceled = cancel_subscription(
        &catalog,
        &state,
        &request,
        t("2025-01-20T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    let dropped = scheduled_redemptions(&held, &canceled.state);
    assert!(dropped.redeemed.is_empty());
    assert_eq!(dropped.released, ["WELCOME10"]);

    // The change applies at the period end: the code stays redeemed, now on `t`.
    let applied = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    assert!(applied.subscription("t").unwrap().coupon.is_some());
    assert_eq!(
        scheduled_redemptions(&held, &applied),
        tollgate_core::coupon::ScheduledRedemptions::default()
    );
}

/// A subscription waiting to start holds the code its request redeemed: given back when it
/// ends before it starts, kept once it has started, even when it ends within the same move
/// of the clock.
#[test]
fn a_waiting_subscription_holds_its_code_until_it_starts_or_ends() {
    let mut input = pro(5);
    input["startDate"] = json!("2025-02-01T00:00:00Z");
    input["promotionCode"] = json!("WELCOME10");
    let (catalog, state) = world(input);
    let held = held_codes(&state);
    assert_eq!(held.len(), 1);
    assert!(held[0].waiting);
    // The request redeemed it; holding it redeems nothing more.
    assert_eq!(
        scheduled_redemptions(&[], &state),
        tollgate_core::coupon::ScheduledRedemptions::default()
    );

    let cancel = |at: &str| {
        let request: CancelRequest =
            serde_json::from_value(json!({"subscriptionId": "s", "cancellationTime": "IMMEDIATE"}))
                .unwrap();
        cancel_subscription(&catalog, &state, &request, t(at), &Settings::default())
            .unwrap()
            .state
    };
    // Canceled before it starts: the code is given back, and the record keeps no coupon.
    let before_start = cancel("2025-01-10T00:00:00Z");
    assert_eq!(before_start.subscription("s").unwrap().coupon, None);
    let dropped = scheduled_redemptions(&held, &before_start);
    assert!(dropped.redeemed.is_empty());
    assert_eq!(dropped.released, ["WELCOME10"]);

    // Started (and discounted) before the cancellation: the redemption stays.
    let after_start = cancel("2025-02-10T00:00:00Z");
    let s = after_start.subscription("s").unwrap();
    assert_eq!(s.status, SubscriptionStatus::Canceled);
    assert!(s.coupon.is_some());
    assert_eq!(
        scheduled_redemptions(&held, &after_start),
        tollgate_core::coupon::ScheduledRedemptions::default()
    );
}

/// A decision names the code its request redeemed (FORMAT.md §6: only a request that
/// brings a code redeems one): the code it brought and applies now, nothing for a request
/// without a code (even at the instant another one applied it), and nothing for a plan
/// change scheduled for later, whose code is held by the change instead.
#[test]
fn a_decision_redeems_exactly_the_code_its_request_brought_and_applies_now() {
    let (catalog, mut state) = world(pro(5));
    let now = "2025-01-10T00:00:00Z";
    let more = update(
        &catalog,
        &state,
        now,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 6}],
               "promotionCode": "WELCOME10"}),
    )
    .unwrap();
    assert_eq!(more.effects.redeemed_code.as_deref(), Some("WELCOME10"));
    more.apply(&mut state, t(now));
    for input in [
        json!({"subscriptionId": "s", "metadata": {"team": "north"}}),
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 8}]}),
    ] {
        let decision = update(&catalog, &state, now, input).unwrap();
        assert_eq!(decision.effects.redeemed_code, None);
    }
    let request: ProvisionRequest = serde_json::from_value(json!({
        "customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true,
        "subscriptionId": "t", "promotionCode": "WELCOME10",
        "scheduleStrategy": "END_OF_BILLING_PERIOD"}))
    .unwrap();
    let scheduled = provision(
        &catalog,
        &state,
        &request,
        &Redemptions::new(),
        t(now),
        &Settings::default(),
    )
    .unwrap();
    assert!(scheduled.is_scheduled);
    assert_eq!(scheduled.effects.redeemed_code, None);
}

#[test]
fn archiving_cancels_everything_without_credit_and_refuses_later_changes() {
    let (catalog, state) = workspaces();
    let invoices = state.invoices.len();
    let decision = archive_customer(&catalog, &state, t(HALF), &Settings::default()).unwrap();
    let after = decision.state;
    assert!(after.customer.archived);
    assert_eq!(after.invoices.len(), invoices, "no credit");
    for sub in &after.subscriptions {
        assert_eq!(sub.status, SubscriptionStatus::Canceled);
        assert_eq!(sub.cancel_reason, Some(CancelReason::CustomerArchived));
        assert_eq!(sub.end_date, Some(t(HALF)));
    }
    assert_eq!(after.subscriptions.len(), 2, "no end setup");
    assert_eq!(
        archive_customer(&catalog, &after, t(HALF), &Settings::default())
            .unwrap_err()
            .code(),
        ErrorCode::CustomerIsArchived
    );
    let err = update(&catalog, &after, HALF, json!({"subscriptionId": "w1"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::CustomerIsArchived);
    // The clock leaves an archived customer's subscriptions alone.
    let (later, events) = advance(
        &catalog,
        &after,
        t("2025-06-01T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    assert!(events.is_empty());
    assert_eq!(later, after);
}

fn seat_counts() -> impl Strategy<Value = (u64, u64, u32)> {
    (1u64..=40, 1u64..=40, 0u32..(31 * 24))
}

proptest! {
    /// Estimate equals execution for random seat updates at random instants of the period.
    #[test]
    fn the_estimate_of_any_seat_update_equals_its_invoice((from, to, hours) in seat_counts()) {
        let (catalog, state) = world(pro(from));
        let at = t(START) + chrono::TimeDelta::hours(i64::from(hours));
        let input = json!({"subscriptionId": "s", "scheduleStrategy": "IMMEDIATE",
                           "billableFeatures": [{"featureId": "seats", "quantity": to}]});
        let request: UpdateRequest = serde_json::from_value(input).unwrap();
        let estimate = estimate_subscription_update(&catalog, &state, &request, &Redemptions::new(), at, &Settings::default()).unwrap();
        let decision = update_subscription(&catalog, &state, &request, &Redemptions::new(), at, &Settings::default()).unwrap();
        match decision.effects.invoice {
            Some(invoice) => {
                prop_assert_eq!(&estimate.lines, &invoice.lines);
                prop_assert_eq!(estimate.now.total, invoice.total);
                prop_assert_eq!(estimate.now.credit_issued, invoice.credit_issued);
                prop_assert!(invoice.total >= Decimal::ZERO);
            }
            None => prop_assert!(estimate.lines.is_empty()),
        }
        let expected = if from == to { ChangeType::None } else if to > from { ChangeType::Upgrade } else { ChangeType::Downgrade };
        prop_assert_eq!(decision.change_type, expected);
    }
}

fn api_calls(state: &CustomerState, at: &str) -> u64 {
    state.usage.current(None, "api-calls", t(at))
}

fn report_api_calls(catalog: &Catalog, state: &mut CustomerState, at: &str, value: i64) {
    let request: tollgate_core::usage::ReportUsageRequest = serde_json::from_value(
        json!({"customerId": "c1", "featureId": "api-calls", "value": value}),
    )
    .unwrap();
    tollgate_core::usage::report_usage(catalog, state, &request, t(at)).unwrap();
}

#[test]
fn usage_resets_on_a_plan_change_and_a_new_billing_period_but_not_on_seats() {
    // The analytics product resets usage on every plan change (ALWAYS_RESET).
    let (catalog, mut state) = world(pro(5));
    report_api_calls(&catalog, &mut state, "2025-01-10T00:00:00Z", 700);
    updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 6}]}),
    );
    assert_eq!(api_calls(&state, HALF), 700, "more seats is no plan change");
    let decision = updated(
        &catalog,
        &mut state,
        HALF,
        json!({"subscriptionId": "s", "billingPeriod": "ANNUALLY", "scheduleStrategy": "IMMEDIATE"}),
    );
    assert_eq!(decision.effects.usage_reset.len(), 1);
    assert_eq!(api_calls(&state, HALF), 0, "a new billing period resets");

    let (catalog, mut state) = world(json!({"planId": "starter", "billingPeriod": "MONTHLY",
        "skipTrial": true, "subscriptionId": "s"}));
    report_api_calls(&catalog, &mut state, "2025-01-10T00:00:00Z", 300);
    provision_into(
        &catalog,
        &mut state,
        HALF,
        json!({"planId": "pro", "planVersion": 1,
        "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s2"}),
    );
    assert_eq!(api_calls(&state, HALF), 0, "a plan change resets");
}

fn report_storage(catalog: &Catalog, state: &mut CustomerState, at: &str, gb: i64) {
    let request: tollgate_core::usage::ReportUsageRequest = serde_json::from_value(
        json!({"customerId": "c1", "featureId": "storage-gb", "value": gb, "updateBehavior": "SET"}),
    )
    .unwrap();
    tollgate_core::usage::report_usage(catalog, state, &request, t(at)).unwrap();
}

#[test]
fn a_plan_change_now_bills_the_replaced_subscription_s_usage_once() {
    // Pro version 1 bills storage by the 100 GB block at 5: 250 GB is 3 blocks, 15 for a
    // whole period; held under it for half the period, 7.50.
    let (catalog, mut state) = world(pro(5));
    report_storage(&catalog, &mut state, "2025-01-05T00:00:00Z", 250);
    provision_into(
        &catalog,
        &mut state,
        HALF,
        json!({"planId": "pro", "planVersion": 2,
        "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s2",
        "billableFeatures": [{"featureId": "seats", "quantity": 5}]}),
    );
    let invoice = state.invoices.last().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    let usage: Vec<_> = invoice
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Usage)
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].quantity, usage[0].amount), (3, d("7.50")));
    assert_eq!(usage[0].period.end, t(HALF));
    // 119 + 100 against 99 + 100 for half a month, and the usage: 10 + 7.50.
    assert_eq!(invoice.total, d("17.50"));
    // Version 2 has no usage price, and the billed usage is gone: no renewal bills it again.
    let after = advanced(&catalog, &state, "2025-03-01T00:00:00Z");
    assert!(
        after
            .invoices
            .iter()
            .skip(2)
            .all(|i| i.lines.iter().all(|l| l.kind != LineKind::Usage))
    );
}

#[test]
fn a_change_to_a_plan_that_charges_nothing_settles_the_old_one_on_its_own_invoice() {
    let (catalog, mut state) = world(pro(5));
    report_storage(&catalog, &mut state, "2025-01-05T00:00:00Z", 250);
    provision_into(
        &catalog,
        &mut state,
        HALF,
        json!({"planId": "free", "subscriptionId": "f",
        "scheduleStrategy": "IMMEDIATE"}),
    );
    let invoice = state.invoices.last().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::Cancellation);
    assert_eq!(invoice.subscription.as_str(), "s");
    // Half of 99 and of 100 back, 15 of usage owed: 84.50 becomes customer credit.
    assert_eq!(invoice.sub_total, d("-84.50"));
    assert_eq!(invoice.total, d("0.00"));
    assert_eq!(invoice.credit_issued, d("84.50"));
    assert_eq!(
        state.subscription("s").unwrap().status,
        SubscriptionStatus::Canceled
    );
    assert_eq!(
        state.subscription("f").unwrap().status,
        SubscriptionStatus::Active
    );
}

#[test]
fn a_coupon_covers_charges_and_debits_but_not_usage() {
    let mut input = pro(5);
    input["promotionCode"] = json!("LAUNCH20");
    let (catalog, mut state) = world(input);
    report_storage(&catalog, &mut state, "2025-01-05T00:00:00Z", 250);
    let after = advanced(&catalog, &state, "2025-02-01T00:00:00Z");
    let renewal = after.invoices.last().unwrap();
    // 199 of charges, 20 % off them (39.80); the 15 of usage is not discounted.
    assert_eq!(renewal.sub_total, d("214.00"));
    assert_eq!(renewal.discount_amount, d("39.80"));
    assert_eq!(renewal.total, d("174.20"));
}
