//! The clock: trial ends, starts, scheduled changes, renewals, coupons running out, the
//! end setup, and the laws of `advance`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::reference_catalog as catalog;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_core::Catalog;
use tollgate_core::catalog::ScheduleStrategy;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::invoice::InvoiceReason;
use tollgate_core::invoice::LineKind;
use tollgate_core::lifecycle::{Event, EventKind, advance, collect_pending_payments};
use tollgate_core::period::BillingPeriod;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{
    CancelReason, ScheduledUpdate, ScheduledUpdateType, SubscriptionStatus,
};
use tollgate_core::usage::{ReportUsageRequest, report_usage};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

struct World {
    catalog: Catalog,
    state: CustomerState,
    now: DateTime<Utc>,
}

impl World {
    fn new(has_payment_method: bool) -> Self {
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = has_payment_method;
        Self {
            catalog: catalog(),
            state: CustomerState::new(customer),
            now: t("2025-01-01T00:00:00Z"),
        }
    }

    fn at(&mut self, when: &str) -> Vec<EventKind> {
        let (state, events) =
            advance(&self.catalog, &self.state, t(when), &Settings::default()).unwrap();
        self.state = state;
        self.now = t(when);
        events.iter().map(|e| e.kind).collect()
    }

    fn provision(&mut self, input: Value) {
        let mut input = input;
        input["customerId"] = json!("c1");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        let d = provision(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            self.now,
            &Settings::default(),
        )
        .unwrap();
        d.apply(&mut self.state, self.now);
    }

    fn sub(&self, id: &str) -> &tollgate_core::subscription::Subscription {
        self.state.subscription(id).unwrap()
    }

    /// Moves the clock to `when`; the events, whole.
    fn events_at(&mut self, when: &str) -> Vec<Event> {
        let (state, events) =
            advance(&self.catalog, &self.state, t(when), &Settings::default()).unwrap();
        self.state = state;
        self.now = t(when);
        events
    }

    fn report(&mut self, feature: &str, value: i64) {
        let request: ReportUsageRequest = serde_json::from_value(
            json!({"customerId": "c1", "featureId": feature, "value": value}),
        )
        .unwrap();
        report_usage(&self.catalog, &mut self.state, &request, self.now).unwrap();
    }

    fn totals(&self) -> Vec<(InvoiceReason, String, String)> {
        self.state
            .invoices
            .iter()
            .map(|i| (i.reason, i.issued_at.to_rfc3339(), i.total.to_string()))
            .collect()
    }
}

#[test]
fn a_trial_with_a_payment_method_converts_in_place_and_renews() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "s"}));
    w.at("2025-01-14T23:00:00Z");
    assert_eq!(w.sub("s").status, SubscriptionStatus::InTrial);
    let events = w.at("2025-01-15T00:00:00Z");
    assert_eq!(
        events,
        [EventKind::TrialConverted, EventKind::InvoiceIssued]
    );
    let s = w.sub("s");
    assert_eq!((s.status, s.is_trial), (SubscriptionStatus::Active, false));
    assert_eq!(s.current_period.unwrap().start, t("2025-01-15T00:00:00Z"));
    assert_eq!(s.current_period.unwrap().end, t("2025-02-15T00:00:00Z"));
    w.at("2025-02-15T00:00:00Z");
    assert_eq!(
        w.totals(),
        [
            (
                InvoiceReason::SubscriptionCreation,
                "2025-01-15T00:00:00+00:00".into(),
                "29.00".into()
            ),
            (
                InvoiceReason::BillingCycle,
                "2025-02-15T00:00:00+00:00".into(),
                "29.00".into()
            ),
        ]
    );
    assert!(
        w.state
            .paid_history
            .iter()
            .any(|p| p.as_str() == "analytics")
    );
}

#[test]
fn a_trial_without_a_payment_method_expires_and_the_end_setup_gives_the_free_plan() {
    let mut w = World::new(false);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "s"}));
    w.at("2025-01-15T00:00:00Z");
    let s = w.sub("s");
    assert_eq!(
        (s.status, s.cancel_reason),
        (SubscriptionStatus::Expired, Some(CancelReason::TrialEnded))
    );
    let free = &w.state.subscriptions[1];
    assert_eq!(
        (free.plan_id().as_str(), free.status),
        ("free", SubscriptionStatus::Active)
    );
    assert!(w.state.invoices.is_empty());
}

#[test]
fn a_paid_subscription_bought_during_the_trial_starts_at_its_end() {
    let mut w = World::new(true);
    w.provision(
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "trial"}),
    );
    w.now = t("2025-01-05T00:00:00Z");
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "paid"}));
    w.at("2025-01-15T00:00:00Z");
    let trial = w.sub("trial");
    assert_eq!(
        (trial.cancel_reason, trial.cancellation_date),
        (
            Some(CancelReason::TrialConverted),
            Some(t("2025-01-15T00:00:00Z"))
        )
    );
    let paid = w.sub("paid");
    assert_eq!(paid.status, SubscriptionStatus::Active);
    assert_eq!(paid.current_period.unwrap().end, t("2025-02-15T00:00:00Z"));
    assert_eq!(
        w.totals(),
        [(
            InvoiceReason::SubscriptionCreation,
            "2025-01-15T00:00:00+00:00".into(),
            "29.00".into()
        )]
    );
    assert_eq!(w.state.subscriptions.len(), 2);
}

#[test]
fn a_scheduled_downgrade_applies_instead_of_the_renewal() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "pro"}));
    w.now = t("2025-01-10T00:00:00Z");
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "starter"}));
    w.at("2025-01-31T23:00:00Z");
    assert_eq!(w.sub("pro").status, SubscriptionStatus::Active);
    w.at("2025-02-01T00:00:00Z");
    assert_eq!(
        w.sub("pro").cancel_reason,
        Some(CancelReason::UpgradeOrDowngrade)
    );
    let starter = w.sub("starter");
    assert_eq!(starter.status, SubscriptionStatus::Active);
    assert_eq!(
        starter.current_period.unwrap().end,
        t("2025-03-01T00:00:00Z")
    );
    assert_eq!(
        w.totals(),
        [
            (
                InvoiceReason::SubscriptionCreation,
                "2025-01-01T00:00:00+00:00".into(),
                "139.00".into()
            ),
            (
                InvoiceReason::SubscriptionCreation,
                "2025-02-01T00:00:00+00:00".into(),
                "29.00".into()
            ),
        ]
    );
}

#[test]
fn a_parallel_trial_that_expires_leaves_the_paid_subscription_alone() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "starter"}));
    w.now = t("2025-01-05T00:00:00Z");
    w.provision(json!({"planId": "enterprise", "subscriptionId": "trial", "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-19T00:00:00Z"}}));
    w.at("2025-01-19T00:00:00Z");
    assert_eq!(w.sub("trial").status, SubscriptionStatus::Expired);
    assert_eq!(w.sub("starter").status, SubscriptionStatus::Active);
    assert_eq!(w.state.subscriptions.len(), 2);
}

#[test]
fn a_parallel_trial_that_converts_replaces_the_paid_subscription_at_its_end() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "starter"}));
    w.now = t("2025-01-16T12:00:00Z");
    w.provision(json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "pro", "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-24T00:00:00Z"}}));
    w.at("2025-01-24T00:00:00Z");
    assert_eq!(
        w.sub("starter").cancel_reason,
        Some(CancelReason::UpgradeOrDowngrade)
    );
    let invoice = w.state.invoices.last().unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionCreation);
    // 8 of January's 31 days unused: 29 × 8/31 = 7.48 credited; pro's first period charged.
    let amounts: Vec<String> = invoice.lines.iter().map(|l| l.amount.to_string()).collect();
    assert_eq!(amounts, ["-7.48", "119.00", "20.00"]);
}

#[test]
fn a_repeating_coupon_runs_out_after_its_months() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s", "promotionCode": "LAUNCH20"}));
    w.at("2025-04-01T00:00:00Z");
    let totals: Vec<String> = w
        .state
        .invoices
        .iter()
        .map(|i| i.total.to_string())
        .collect();
    assert_eq!(totals, ["23.20", "23.20", "23.20", "29.00"]);
}

#[test]
fn a_backdated_subscription_is_first_charged_at_its_next_period_start() {
    let mut w = World::new(true);
    w.now = t("2025-01-10T00:00:00Z");
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s", "startDate": "2024-12-20T00:00:00Z"}));
    assert!(w.state.invoices.is_empty());
    w.at("2025-01-20T00:00:00Z");
    assert_eq!(
        w.totals(),
        [(
            InvoiceReason::BillingCycle,
            "2025-01-20T00:00:00+00:00".into(),
            "29.00".into()
        )]
    );
}

#[test]
fn a_future_start_without_a_payment_method_waits_for_payment_then_expires() {
    let mut w = World::new(false);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s", "startDate": "2025-02-01T00:00:00Z"}));
    w.at("2025-02-01T00:00:00Z");
    assert_eq!(w.sub("s").status, SubscriptionStatus::PaymentPending);
    w.at("2025-03-01T00:00:00Z");
    let s = w.sub("s");
    assert_eq!(
        (s.status, s.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::PendingPaymentExpired)
        )
    );
}

/// (kind, subscription, feature) of each event.
fn described(events: &[Event]) -> Vec<(EventKind, String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.subscription.to_string(),
                e.feature.as_ref().map(ToString::to_string),
            )
        })
        .collect()
}

fn reset(subscription: &str) -> (EventKind, String, Option<String>) {
    (
        EventKind::UsageReset,
        subscription.to_owned(),
        Some("api-calls".to_owned()),
    )
}

fn plain(kind: EventKind, subscription: &str) -> (EventKind, String, Option<String>) {
    (kind, subscription.to_owned(), None)
}

#[test]
fn a_scheduled_billing_period_update_at_the_period_end_starts_a_new_series_there() {
    let mut w = World::new(true);
    w.now = t("2025-01-31T00:00:00Z");
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
    w.report("api-calls", 10);
    let mut target = w.sub("s").config.clone();
    target.billing_period = Some(BillingPeriod::Annually);
    w.state
        .subscription_mut("s")
        .unwrap()
        .scheduled_updates
        .push(ScheduledUpdate {
            kind: ScheduledUpdateType::Update,
            scheduled_at: t("2025-02-28T00:00:00Z"),
            target,
            new_subscription_id: None,
            strategy: ScheduleStrategy::EndOfBillingPeriod,
            coupon: None,
            tax_percentage: None,
            payment_collection_method: None,
            metadata: None,
        });
    let events = w.events_at("2025-02-28T00:00:00Z");
    assert_eq!(
        described(&events),
        [
            plain(EventKind::ScheduledUpdateApplied, "s"),
            reset("s"),
            plain(EventKind::SubscriptionRenewed, "s"),
            plain(EventKind::InvoiceIssued, "s"),
        ]
    );
    let s = w.sub("s");
    // Anchored at the change, not at the old Jan 31 anchor.
    assert_eq!(s.billing_anchor, Some(t("2025-02-28T00:00:00Z")));
    assert_eq!(s.start_date, t("2025-01-31T00:00:00Z"));
    assert_eq!(s.current_period.unwrap().end, t("2026-02-28T00:00:00Z"));
    let invoice = w.state.invoices.last().unwrap();
    assert_eq!(
        (invoice.reason, invoice.total.to_string()),
        (InvoiceReason::BillingCycle, "290.00".to_owned())
    );
    assert_eq!(invoice.lines[0].period.start, t("2025-02-28T00:00:00Z"));
    assert!(w.state.usage.record(None, "api-calls").is_none());
    w.at("2026-02-28T00:00:00Z");
    assert_eq!(
        w.totals().last().unwrap(),
        &(
            InvoiceReason::BillingCycle,
            "2026-02-28T00:00:00+00:00".into(),
            "290.00".into()
        )
    );
}

#[test]
fn a_scheduled_update_that_keeps_the_billing_period_renews_without_a_usage_reset() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s",
                       "billableFeatures": [{"featureId": "seats", "quantity": 3}]}));
    w.report("api-calls", 10);
    let mut target = w.sub("s").config.clone();
    target.units.insert("seats".into(), 2);
    w.state
        .subscription_mut("s")
        .unwrap()
        .scheduled_updates
        .push(ScheduledUpdate {
            kind: ScheduledUpdateType::Update,
            scheduled_at: t("2025-02-01T00:00:00Z"),
            target,
            new_subscription_id: None,
            strategy: ScheduleStrategy::EndOfBillingPeriod,
            coupon: None,
            tax_percentage: None,
            payment_collection_method: None,
            metadata: None,
        });
    let events = w.events_at("2025-02-01T00:00:00Z");
    assert_eq!(
        described(&events),
        [
            plain(EventKind::ScheduledUpdateApplied, "s"),
            plain(EventKind::SubscriptionRenewed, "s"),
            plain(EventKind::InvoiceIssued, "s"),
        ]
    );
    assert_eq!(w.sub("s").billing_anchor, Some(t("2025-01-01T00:00:00Z")));
    assert!(w.state.usage.record(None, "api-calls").is_some());
    // 119 flat + 2 seats at 20.
    assert_eq!(w.state.invoices.last().unwrap().total.to_string(), "159.00");
}

#[test]
fn a_waiting_subscription_that_replaces_the_live_one_resets_its_usage() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "starter"}));
    w.now = t("2025-01-05T00:00:00Z");
    w.report("api-calls", 10);
    w.provision(json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "pro",
                       "startDate": "2025-01-20T00:00:00Z"}));
    assert_eq!(w.sub("pro").status, SubscriptionStatus::NotStarted);
    let events = w.events_at("2025-01-20T00:00:00Z");
    assert_eq!(
        described(&events),
        [
            plain(EventKind::SubscriptionCanceled, "starter"),
            reset("pro"),
            plain(EventKind::SubscriptionStarted, "pro"),
            plain(EventKind::InvoiceIssued, "pro"),
        ]
    );
    assert!(events.iter().all(|e| e.at == t("2025-01-20T00:00:00Z")));
    assert_eq!(w.state.usage.current(None, "api-calls", w.now), 0);
}

#[test]
fn a_parallel_trial_that_converts_over_the_paid_subscription_resets_its_usage() {
    let mut w = World::new(true);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "starter"}));
    w.now = t("2025-01-16T12:00:00Z");
    w.provision(json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "pro", "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-24T00:00:00Z"}}));
    w.report("api-calls", 10);
    let events = w.events_at("2025-01-24T00:00:00Z");
    assert_eq!(
        described(&events),
        [
            plain(EventKind::SubscriptionCanceled, "starter"),
            reset("pro"),
            plain(EventKind::TrialConverted, "pro"),
            plain(EventKind::InvoiceIssued, "pro"),
        ]
    );
}

/// A customer without a payment method whose paid subscription starts on Feb 1.
fn waiting_for_payment() -> World {
    let mut w = World::new(false);
    w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s", "startDate": "2025-02-01T00:00:00Z"}));
    w.at("2025-02-01T00:00:00Z");
    assert_eq!(w.sub("s").status, SubscriptionStatus::PaymentPending);
    w
}

fn payment_method_arrives(w: &mut World, when: &str) -> Vec<Event> {
    w.state.customer.has_payment_method = true;
    let (state, events) =
        collect_pending_payments(&w.catalog, &w.state, t(when), &Settings::default()).unwrap();
    w.state = state;
    w.now = t(when);
    events
}

#[test]
fn a_pending_payment_is_charged_and_anchored_when_the_payment_method_arrives() {
    let mut w = waiting_for_payment();
    let events = payment_method_arrives(&mut w, "2025-02-10T12:00:00Z");
    assert_eq!(
        described(&events),
        [
            plain(EventKind::SubscriptionStarted, "s"),
            plain(EventKind::InvoiceIssued, "s"),
        ]
    );
    let s = w.sub("s");
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.start_date, t("2025-02-01T00:00:00Z"));
    assert_eq!(s.billing_anchor, Some(t("2025-02-10T12:00:00Z")));
    let invoice = &w.state.invoices[0];
    assert_eq!(invoice.lines.len(), 1);
    assert_eq!(invoice.lines[0].kind, LineKind::Charge);
    assert_eq!(
        (invoice.lines[0].period.start, invoice.lines[0].period.end),
        (t("2025-02-10T12:00:00Z"), t("2025-03-10T12:00:00Z"))
    );
    assert!(
        w.state
            .paid_history
            .iter()
            .any(|p| p.as_str() == "analytics")
    );
    // The first period no longer expires at Mar 1; renewals follow the new anchor.
    w.at("2025-04-10T12:00:00Z");
    assert_eq!(w.sub("s").status, SubscriptionStatus::Active);
    assert_eq!(
        w.totals(),
        [
            (
                InvoiceReason::SubscriptionCreation,
                "2025-02-10T12:00:00+00:00".into(),
                "29.00".into()
            ),
            (
                InvoiceReason::BillingCycle,
                "2025-03-10T12:00:00+00:00".into(),
                "29.00".into()
            ),
            (
                InvoiceReason::BillingCycle,
                "2025-04-10T12:00:00+00:00".into(),
                "29.00".into()
            ),
        ]
    );
}

#[test]
fn a_payment_method_after_the_first_period_comes_too_late() {
    let mut w = waiting_for_payment();
    let events = payment_method_arrives(&mut w, "2025-03-01T00:00:00Z");
    let s = w.sub("s");
    assert_eq!(
        (s.status, s.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::PendingPaymentExpired)
        )
    );
    assert!(w.state.invoices.is_empty());
    assert_eq!(events[0].kind, EventKind::SubscriptionCanceled);
    assert!(events.iter().all(|e| e.kind != EventKind::InvoiceIssued));
}

#[test]
fn without_a_payment_method_collecting_only_moves_the_clock() {
    let mut w = waiting_for_payment();
    let (state, events) = collect_pending_payments(
        &w.catalog,
        &w.state,
        t("2025-02-10T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    assert!(events.is_empty());
    w.state = state;
    assert_eq!(w.sub("s").status, SubscriptionStatus::PaymentPending);
}

fn steps() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..90 * 86_400, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Advancing in steps gives exactly what advancing at once gives.
    #[test]
    fn advancing_in_steps_equals_advancing_at_once(
        plan in prop::sample::select(vec!["starter", "pro"]), trial in any::<bool>(), method in any::<bool>(),
        downgrade_at in prop::option::of(0u32..60 * 86_400), steps in steps(),
    ) {
        let mut w = World::new(method);
        let mut input = json!({"planId": plan, "billingPeriod": "MONTHLY", "subscriptionId": "s", "skipTrial": !trial});
        if !method && !trial { input["paymentCollectionMethod"] = json!("INVOICE"); }
        w.provision(input);
        if let Some(at) = downgrade_at {
            let (state, _) = advance(&w.catalog, &w.state, w.now + TimeDelta::seconds(i64::from(at)), &Settings::default()).unwrap();
            w.state = state;
            w.now += TimeDelta::seconds(i64::from(at));
            let mut input = json!({"planId": "free", "subscriptionId": "d"});
            input["customerId"] = json!("c1");
            let request: ProvisionRequest = serde_json::from_value(input).unwrap();
            if let Ok(d) = provision(&w.catalog, &w.state, &request, &Redemptions::new(), w.now, &Settings::default()) {
                d.apply(&mut w.state, w.now);
            }
        }
        let start = w.state.clone();
        let mut at = w.now;
        let mut stepped = start.clone();
        let mut stepped_events = Vec::new();
        for step in &steps {
            at += TimeDelta::seconds(i64::from(*step));
            let (s, e) = advance(&w.catalog, &stepped, at, &Settings::default()).unwrap();
            stepped = s;
            stepped_events.extend(e);
        }
        let (once, once_events) = advance(&w.catalog, &start, at, &Settings::default()).unwrap();
        prop_assert_eq!(stepped, once);
        prop_assert_eq!(stepped_events, once_events);
    }

    /// A constant monthly subscription invoiced over 12 renewals totals exactly 13 periods
    /// (the first charge and 12 renewals), and no invoice is negative.
    #[test]
    fn a_constant_subscription_totals_whole_periods(day in 1u32..28, hour in 0u32..24) {
        let mut w = World::new(true);
        w.now = t("2025-01-01T00:00:00Z") + TimeDelta::days(i64::from(day)) + TimeDelta::hours(i64::from(hour));
        w.provision(json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
        let first = w.now;
        w.at(&tollgate_core::period::add_months(first, 12).unwrap().to_rfc3339());
        prop_assert_eq!(w.state.invoices.len(), 13);
        let total: Decimal = w.state.invoices.iter().map(|i| i.total).sum();
        prop_assert_eq!(total, Decimal::from(29 * 13));
        prop_assert!(w.state.invoices.iter().all(|i| i.total >= Decimal::ZERO));
    }
}
