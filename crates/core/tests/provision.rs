//! Provisioning: every row of SPEC.md §3.S, every payment rule of §3.P and every error code
//! provisioning can produce, on the reference catalog.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, Utc};
use common::catalog_with;
use serde_json::{Value, json};
use tollgate_core::change::ChangeType;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::{CountryCode, CustomerId};
use tollgate_core::invoice::{InvoiceReason, LineKind};
use tollgate_core::lifecycle::advance;
use tollgate_core::provision::{ProvisionDecision, ProvisionRequest, ProvisionStatus, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, PaymentCollectionMethod, SubscriptionStatus};
use tollgate_core::trial::TrialDecision;
use tollgate_core::{Catalog, ErrorCode};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

struct World {
    catalog: Catalog,
    state: CustomerState,
    settings: Settings,
}

impl World {
    fn new(has_payment_method: bool) -> Self {
        Self::with_catalog(catalog_with(|_| {}), has_payment_method)
    }

    fn with_catalog(catalog: Catalog, has_payment_method: bool) -> Self {
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = has_payment_method;
        Self {
            catalog,
            state: CustomerState::new(customer),
            settings: Settings::default(),
        }
    }

    fn decide(&self, at: &str, input: Value) -> Result<ProvisionDecision, tollgate_core::Error> {
        let mut input = input;
        input["customerId"] = json!("c1");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        provision(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            t(at),
            &self.settings,
        )
    }

    /// Decides and applies; panics on an error.
    fn provision(&mut self, at: &str, input: Value) -> ProvisionDecision {
        let decision = self.decide(at, input).unwrap();
        decision.apply(&mut self.state, t(at));
        decision
    }

    fn error(&self, at: &str, input: Value) -> ErrorCode {
        let before = self.state.clone();
        let code = self.decide(at, input).unwrap_err().code();
        assert_eq!(self.state, before);
        code
    }

    fn sub(&self, id: &str) -> &tollgate_core::subscription::Subscription {
        self.state
            .subscription(id)
            .unwrap_or_else(|| panic!("no subscription {id}"))
    }
}

const JAN1: &str = "2025-01-01T00:00:00Z";

fn starter(id: &str) -> Value {
    json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": id})
}

fn paid_starter(id: &str) -> Value {
    json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": id})
}

fn pro(id: &str, seats: i64) -> Value {
    json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": id,
           "billableFeatures": [{"featureId": "seats", "quantity": seats}]})
}

// ---- §3.S: nothing in scope ----

#[test]
fn nothing_in_scope_paid_start_now_is_active_and_charged_a_full_period() {
    let mut w = World::new(true);
    let d = w.provision(JAN1, paid_starter("s1"));
    assert_eq!(
        (d.status, d.change_type, d.trial.decision),
        (
            ProvisionStatus::Success,
            ChangeType::New,
            TrialDecision::Skipped
        )
    );
    let s = w.sub("s1");
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.current_period.unwrap().end, t("2025-02-01T00:00:00Z"));
    let invoice = d.effects.invoice.unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionCreation);
    assert_eq!(invoice.total.to_string(), "29.00");
    assert_eq!(invoice.lines.len(), 1);
    assert_eq!(w.state.invoices.len(), 1);
}

#[test]
fn nothing_in_scope_eligible_customer_gets_the_default_trial() {
    let mut w = World::new(false);
    let d = w.provision(JAN1, starter("s1"));
    assert_eq!(d.trial.decision, TrialDecision::Started);
    let s = w.sub("s1");
    assert_eq!((s.status, s.is_trial), (SubscriptionStatus::InTrial, true));
    assert_eq!(s.trial_end, Some(t("2025-01-15T00:00:00Z")));
    assert_eq!(s.current_period.unwrap().end, t("2025-01-15T00:00:00Z"));
    assert!(d.effects.invoice.is_none());
}

#[test]
fn nothing_in_scope_future_start_waits_and_a_newer_one_replaces_it() {
    let mut w = World::new(true);
    let d = w.provision(JAN1, json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "f1", "startDate": "2025-02-01T00:00:00Z"}));
    assert!(!d.is_scheduled);
    assert_eq!(w.sub("f1").status, SubscriptionStatus::NotStarted);
    assert!(d.effects.invoice.is_none());
    w.provision(JAN1, json!({"planId": "starter", "billingPeriod": "ANNUALLY", "skipTrial": true, "subscriptionId": "f2", "startDate": "2025-03-01T00:00:00Z"}));
    assert_eq!(
        w.sub("f1").cancel_reason,
        Some(CancelReason::UpgradeOrDowngrade)
    );
    assert_eq!(w.sub("f2").status, SubscriptionStatus::NotStarted);
}

#[test]
fn nothing_in_scope_backdated_start_is_live_from_then_and_charges_nothing_now() {
    let mut w = World::new(true);
    let d = w.provision("2025-01-10T00:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "b1", "startDate": "2024-12-20T00:00:00Z"}));
    let s = w.sub("b1");
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.start_date, t("2024-12-20T00:00:00Z"));
    assert_eq!(s.current_period.unwrap().start, t("2024-12-20T00:00:00Z"));
    assert_eq!(s.current_period.unwrap().end, t("2025-01-20T00:00:00Z"));
    assert!(d.effects.invoice.is_none());
    // A backdated trial still running runs to its end; one over already is refused (see
    // `every_provisioning_error_code`).
    let mut w = World::new(true);
    let mut trial = starter("t1");
    trial["startDate"] = json!("2024-12-25T00:00:00Z");
    w.provision(JAN1, trial);
    let s = w.sub("t1");
    assert_eq!(
        (s.status, s.trial_end),
        (SubscriptionStatus::InTrial, Some(t("2025-01-08T00:00:00Z")))
    );
}

// ---- §3.S: non-trial A, trial of plan B → parallel ----

#[test]
fn paid_subscription_plus_trial_of_another_plan_runs_in_parallel() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("a"));
    let d = w.provision("2025-01-05T00:00:00Z", json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "b", "trialOverride": {"isTrial": true}}));
    assert_eq!(
        (d.change_type, d.trial.decision),
        (ChangeType::New, TrialDecision::Overridden)
    );
    assert_eq!(w.sub("a").status, SubscriptionStatus::Active);
    assert_eq!(w.sub("b").status, SubscriptionStatus::InTrial);
    assert_eq!(w.sub("b").trial_end, Some(t("2025-01-19T00:00:00Z")));
}

// ---- §3.S: trial X, trial Y ----

#[test]
fn a_new_trial_replaces_the_live_trial_at_its_start() {
    let mut w = World::new(false);
    w.provision(JAN1, starter("x"));
    let d = w.provision("2025-01-05T00:00:00Z", json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "y", "trialOverride": {"isTrial": true}}));
    assert_eq!(d.change_type, ChangeType::New);
    let x = w.sub("x");
    assert_eq!(
        (x.status, x.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::UpgradeOrDowngrade)
        )
    );
    assert_eq!(x.end_date, Some(t("2025-01-05T00:00:00Z")));
    assert_eq!(w.sub("y").status, SubscriptionStatus::InTrial);
}

// ---- §3.S: trial X, non-trial X → conversion ----

#[test]
fn paid_request_during_a_trial_of_the_same_plan_waits_for_the_trial_end() {
    let mut w = World::new(true);
    w.provision(JAN1, starter("trial"));
    let d = w.provision("2025-01-05T00:00:00Z", starter("paid"));
    assert_eq!(
        (d.change_type, d.trial.decision, d.is_scheduled),
        (ChangeType::New, TrialDecision::NotEligible, false)
    );
    let paid = w.sub("paid");
    assert_eq!(
        (paid.status, paid.start_date),
        (SubscriptionStatus::NotStarted, t("2025-01-15T00:00:00Z"))
    );
    let trial = w.sub("trial");
    assert_eq!(trial.status, SubscriptionStatus::InTrial);
    assert_eq!(trial.cancellation_date, Some(t("2025-01-15T00:00:00Z")));
    assert_eq!(
        (trial.pending_cancel_reason, trial.cancel_reason),
        (Some(CancelReason::TrialConverted), None)
    );
    assert!(d.effects.invoice.is_none());
}

#[test]
fn immediate_trial_conversion_ends_the_trial_now_and_bills_from_now() {
    let catalog =
        catalog_with(|c| c["products"][0]["journey"]["trialConversion"] = json!("IMMEDIATE"));
    let mut w = World::with_catalog(catalog, true);
    w.provision(JAN1, starter("trial"));
    let d = w.provision("2025-01-05T12:00:00Z", starter("paid"));
    let trial = w.sub("trial");
    assert_eq!(
        (trial.status, trial.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::TrialConverted)
        )
    );
    let paid = w.sub("paid");
    assert_eq!(paid.status, SubscriptionStatus::Active);
    assert_eq!(
        paid.current_period.unwrap().start,
        t("2025-01-05T12:00:00Z")
    );
    assert_eq!(paid.current_period.unwrap().end, t("2025-02-05T12:00:00Z"));
    assert_eq!(d.effects.invoice.unwrap().total.to_string(), "29.00");
}

// ---- §3.S: trial X, non-trial Y ≠ X ----

#[test]
fn paid_request_for_another_plan_ends_the_trial_now() {
    let mut w = World::new(true);
    w.provision(JAN1, starter("trial"));
    let d = w.provision("2025-01-05T00:00:00Z", pro("p", 2));
    assert_eq!(d.change_type, ChangeType::New);
    let trial = w.sub("trial");
    assert_eq!(
        (trial.status, trial.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::UpgradeOrDowngrade)
        )
    );
    assert_eq!(w.sub("p").status, SubscriptionStatus::Active);
    assert_eq!(d.effects.invoice.unwrap().total.to_string(), "159.00");
}

#[test]
fn a_later_paid_start_ends_the_trial_when_it_starts() {
    let advanced =
        |w: &World, to: &str| advance(&w.catalog, &w.state, t(to), &w.settings).unwrap().0;
    let ended = |state: &CustomerState, id: &str| {
        let sub = state.subscription(id).unwrap();
        (sub.status, sub.cancel_reason, sub.end_date)
    };
    // Another plan: the trial runs until the new start, then is canceled.
    let mut w = World::new(true);
    w.provision(JAN1, starter("trial"));
    let mut later = pro("p", 2);
    later["startDate"] = json!("2025-01-05T00:00:00Z");
    w.provision("2025-01-02T00:00:00Z", later);
    assert_eq!(w.sub("trial").status, SubscriptionStatus::InTrial);
    let after = advanced(&w, "2025-01-20T00:00:00Z");
    assert_eq!(
        ended(&after, "trial"),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::UpgradeOrDowngrade),
            Some(t("2025-01-05T00:00:00Z"))
        )
    );
    assert_eq!(
        after.subscription("p").unwrap().status,
        SubscriptionStatus::Active
    );
    // Only the paid subscription is billed: its first period, from its start.
    assert_eq!(after.invoices.len(), 1);
    assert_eq!(after.invoices[0].total.to_string(), "159.00");

    // The same plan: the trial converts when the paid subscription starts.
    let mut w = World::new(true);
    w.provision(JAN1, starter("trial"));
    let mut later = paid_starter("paid");
    later["startDate"] = json!("2025-01-05T00:00:00Z");
    w.provision("2025-01-02T00:00:00Z", later);
    let after = advanced(&w, "2025-01-06T00:00:00Z");
    assert_eq!(ended(&after, "trial").1, Some(CancelReason::TrialConverted));

    // A waiting subscription that never starts leaves the trial alone.
    let mut w = World::new(true);
    w.provision(JAN1, starter("trial"));
    let mut later = pro("p", 2);
    later["startDate"] = json!("2025-01-10T00:00:00Z");
    w.provision("2025-01-02T00:00:00Z", later);
    let mut replaced = pro("p2", 3);
    replaced["startDate"] = json!("2025-01-12T00:00:00Z");
    w.provision("2025-01-03T00:00:00Z", replaced);
    let after = advanced(&w, "2025-01-11T00:00:00Z");
    assert_eq!(ended(&after, "trial").0, SubscriptionStatus::InTrial);
    // ... and the newer one ends it when it starts.
    let after = advanced(&w, "2025-01-13T00:00:00Z");
    assert_eq!(ended(&after, "trial").2, Some(t("2025-01-12T00:00:00Z")));
}

// ---- §3.S: non-trial A (± trial), non-trial B → plan change ----

#[test]
fn upgrade_applies_now_with_stripe_proration_and_keeps_the_period() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("starter"));
    // As scenario 04: no skipTrial, so the paid history decides the trial.
    let d = w.provision("2025-01-10T08:30:00Z", json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "pro",
        "billableFeatures": [{"featureId": "seats", "quantity": 1}], "billingCycleAnchor": "UNCHANGED"}));
    assert_eq!(
        (d.change_type, d.trial.decision),
        (ChangeType::Upgrade, TrialDecision::NotEligible)
    );
    let old = w.sub("starter");
    assert_eq!(
        (old.status, old.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::UpgradeOrDowngrade)
        )
    );
    let new = w.sub("pro");
    assert_eq!(new.current_period.unwrap().start, t(JAN1));
    assert_eq!(new.current_period.unwrap().end, t("2025-02-01T00:00:00Z"));
    let invoice = d.effects.invoice.unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    assert_eq!(invoice.subscription.as_str(), "pro");
    let lines: Vec<_> = invoice
        .lines
        .iter()
        .map(|l| (l.kind, l.amount.to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            (LineKind::ProrationCredit, "-20.25".to_owned()),
            (LineKind::ProrationDebit, "83.09".to_owned()),
            (LineKind::ProrationDebit, "13.97".to_owned()),
        ]
    );
    assert_eq!(invoice.total.to_string(), "76.81");
}

#[test]
fn a_plan_change_keeps_the_tax_rate_and_collection_method_the_request_leaves_out() {
    let mut w = World::new(true);
    let mut first = paid_starter("s1");
    first["taxPercentage"] = json!(17);
    first["paymentCollectionMethod"] = json!("INVOICE");
    w.provision(JAN1, first);
    w.provision("2025-01-10T00:00:00Z", pro("p1", 2));
    let p1 = w.sub("p1");
    assert_eq!(
        (p1.tax_percentage, p1.payment_collection_method),
        (Some(17.into()), PaymentCollectionMethod::Invoice)
    );
    // What the request gives wins.
    let mut next = pro("p2", 3);
    next["taxPercentage"] = json!(5);
    next["paymentCollectionMethod"] = json!("CHARGE");
    w.provision("2025-01-11T00:00:00Z", next);
    let p2 = w.sub("p2");
    assert_eq!(
        (p2.tax_percentage, p2.payment_collection_method),
        (Some(5.into()), PaymentCollectionMethod::Charge)
    );
}

#[test]
fn a_parallel_trial_keeps_running_through_a_plan_change() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("a"));
    w.provision(
        "2025-01-02T00:00:00Z",
        json!({"planId": "enterprise", "subscriptionId": "t", "trialOverride": {"isTrial": true}}),
    );
    w.provision("2025-01-03T00:00:00Z", pro("b", 1));
    assert_eq!(w.sub("t").status, SubscriptionStatus::InTrial);
    assert_eq!(w.sub("b").status, SubscriptionStatus::Active);
    assert_eq!(w.sub("a").status, SubscriptionStatus::Canceled);
}

#[test]
fn downgrade_follows_the_product_strategy_and_a_later_request_replaces_or_restores_it() {
    let mut w = World::new(true);
    w.provision(JAN1, pro("pro", 3));
    let d = w.provision("2025-01-10T00:00:00Z", paid_starter("starter"));
    assert_eq!(
        (d.change_type, d.is_scheduled),
        (ChangeType::Downgrade, true)
    );
    assert_eq!(d.subscription.as_ref().unwrap().as_str(), "pro");
    assert!(d.effects.invoice.is_none());
    let scheduled = &w.sub("pro").scheduled_updates;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].scheduled_at, t("2025-02-01T00:00:00Z"));
    assert_eq!(scheduled[0].target.plan.as_str(), "starter");
    // A second downgrade replaces the first.
    let d = w.provision("2025-01-11T00:00:00Z", pro("pro-1", 1));
    assert_eq!(
        (d.change_type, d.is_scheduled),
        (ChangeType::Downgrade, true)
    );
    let scheduled = &w.sub("pro").scheduled_updates;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(
        scheduled[0]
            .target
            .units
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
    // Restoring the current configuration cancels it.
    let d = w.provision("2025-01-12T00:00:00Z", pro("ignored", 3));
    assert_eq!((d.change_type, d.is_scheduled), (ChangeType::None, false));
    assert!(w.sub("pro").scheduled_updates.is_empty());
    assert!(w.state.subscription("ignored").is_none());
}

#[test]
fn downgrade_with_an_immediate_strategy_credits_the_difference() {
    let mut w = World::new(true);
    w.provision(JAN1, pro("pro", 1));
    let d = w.provision("2025-01-16T12:00:00Z", json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s", "scheduleStrategy": "IMMEDIATE"}));
    assert_eq!(
        (d.change_type, d.is_scheduled),
        (ChangeType::Downgrade, false)
    );
    let invoice = d.effects.invoice.unwrap();
    // Half of January remains: credit 139 / 2, debit 29 / 2; net −55.00 becomes credit.
    assert_eq!(invoice.sub_total.to_string(), "-55.00");
    assert_eq!(
        (invoice.total.to_string(), invoice.credit_issued.to_string()),
        ("0.00".to_owned(), "55.00".to_owned())
    );
    assert_eq!(
        w.state
            .customer
            .credit_balance
            .values()
            .next()
            .unwrap()
            .to_string(),
        "55.00"
    );
}

#[test]
fn end_of_billing_month_applies_at_the_next_monthly_boundary_of_an_annual_plan() {
    let mut w = World::new(true);
    w.provision(JAN1, json!({"planId": "pro", "billingPeriod": "ANNUALLY", "skipTrial": true, "subscriptionId": "pro"}));
    let d = w.provision("2025-03-10T00:00:00Z", json!({"planId": "starter", "billingPeriod": "ANNUALLY", "skipTrial": true, "subscriptionId": "s", "scheduleStrategy": "END_OF_BILLING_MONTH"}));
    assert!(d.is_scheduled);
    assert_eq!(
        w.sub("pro").scheduled_updates[0].scheduled_at,
        t("2025-04-01T00:00:00Z")
    );
}

#[test]
fn change_from_free_starts_a_new_period_with_a_creation_invoice() {
    let mut w = World::new(true);
    w.provision(JAN1, json!({"planId": "free", "subscriptionId": "free"}));
    let d = w.provision("2025-01-02T00:00:00Z", paid_starter("s"));
    assert_eq!(d.change_type, ChangeType::Upgrade);
    let invoice = d.effects.invoice.unwrap();
    assert_eq!(
        (invoice.reason, invoice.total.to_string()),
        (InvoiceReason::SubscriptionCreation, "29.00".to_owned())
    );
    assert_eq!(
        w.sub("s").current_period.unwrap().start,
        t("2025-01-02T00:00:00Z")
    );
}

#[test]
fn a_request_equal_to_the_live_configuration_changes_nothing() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("s"));
    let before = w.state.clone();
    let d = w.provision("2025-01-03T00:00:00Z", paid_starter("s2"));
    assert_eq!(d.change_type, ChangeType::None);
    assert!(d.effects.invoice.is_none());
    assert_eq!(w.state, before);
}

#[test]
fn billing_cycle_anchor_now_credits_and_charges_a_full_period() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("s"));
    let mut input = pro("p", 1);
    input["billingCycleAnchor"] = json!("NOW");
    let d = w.provision("2025-01-16T12:00:00Z", input);
    let invoice = d.effects.invoice.unwrap();
    let kinds: Vec<_> = invoice.lines.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            LineKind::ProrationCredit,
            LineKind::Charge,
            LineKind::Charge
        ]
    );
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    assert_eq!(
        w.sub("p").current_period.unwrap().start,
        t("2025-01-16T12:00:00Z")
    );
}

#[test]
fn multi_subscription_products_scope_by_resource() {
    let mut w = World::new(true);
    w.provision(JAN1, json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "w1", "subscriptionId": "a", "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}]}));
    let d = w.provision(JAN1, json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "w2", "subscriptionId": "b", "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}]}));
    assert_eq!(d.change_type, ChangeType::New);
    assert_eq!(w.sub("a").status, SubscriptionStatus::Active);
    assert_eq!(w.sub("b").status, SubscriptionStatus::Active);
    let d = w.provision("2025-01-02T00:00:00Z", json!({"planId": "ws-basic", "resourceId": "w1", "subscriptionId": "c", "scheduleStrategy": "IMMEDIATE"}));
    assert_eq!(d.change_type, ChangeType::Downgrade);
    assert_eq!(w.sub("a").status, SubscriptionStatus::Canceled);
    assert_eq!(w.sub("b").status, SubscriptionStatus::Active);
}

// ---- §3.P payment ----

#[test]
fn payment_rules() {
    // No payment method, no checkout options: an error, nothing changes.
    let w = World::new(false);
    assert_eq!(
        w.error(JAN1, paid_starter("s")),
        ErrorCode::PaymentMethodNotFound
    );

    // With checkout options: PAYMENT_REQUIRED, no subscription, a pending checkout only.
    let mut w = World::new(false);
    let mut input = paid_starter("s");
    input["checkoutOptions"] = json!({"successUrl": "https://ok", "cancelUrl": "https://cancel"});
    let d = w.provision(JAN1, input);
    assert_eq!(d.status, ProvisionStatus::PaymentRequired);
    assert!(d.subscription.is_none() && d.effects.invoice.is_none());
    assert_eq!(d.checkout.unwrap().success_url, "https://ok");
    assert!(w.state.subscriptions.is_empty());
    assert_eq!(w.state.pending_checkouts.len(), 1);

    // Free, custom, a trial without requiresPaymentMethod, a future start: no payment needed.
    for input in [
        json!({"planId": "free", "subscriptionId": "f"}),
        json!({"planId": "enterprise", "subscriptionId": "e", "skipTrial": true}),
        starter("t"),
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "startDate": "2025-03-01T00:00:00Z"}),
    ] {
        let mut w = World::new(false);
        assert_eq!(w.provision(JAN1, input).status, ProvisionStatus::Success);
    }

    // INVOICE collection: no payment method needed, and the invoice is still written.
    let mut w = World::new(false);
    let mut input = paid_starter("s");
    input["paymentCollectionMethod"] = json!("INVOICE");
    assert_eq!(
        w.provision(JAN1, input)
            .effects
            .invoice
            .unwrap()
            .total
            .to_string(),
        "29.00"
    );

    // NONE collection: no payment method, no invoice.
    let mut w = World::new(false);
    let mut input = paid_starter("s");
    input["paymentCollectionMethod"] = json!("NONE");
    assert!(w.provision(JAN1, input).effects.invoice.is_none());

    // No billing integration: no payment method, no invoice; the money is still computed.
    let mut w = World::new(false);
    w.settings = Settings::new(false, Default::default(), Default::default());
    let d = w.provision(JAN1, paid_starter("s"));
    assert!(d.effects.invoice.is_none());
    assert_eq!(d.charge.unwrap().lines[0].amount.to_string(), "29.00");

    // A trial that requires a payment method follows the paid rule.
    let catalog =
        catalog_with(|c| c["plans"][1]["defaultTrial"]["requiresPaymentMethod"] = json!(true));
    let w = World::with_catalog(catalog, false);
    assert_eq!(
        w.error(JAN1, starter("t")),
        ErrorCode::PaymentMethodNotFound
    );
}

// ---- errors, in FORMAT.md §6's validation order ----

#[test]
fn every_provisioning_error_code() {
    let mut archived = World::new(true);
    archived.state.customer.archived = true;
    assert_eq!(
        archived.error(JAN1, paid_starter("s")),
        ErrorCode::CustomerIsArchived
    );

    let w = World::new(true);
    let other = {
        let request: ProvisionRequest =
            serde_json::from_value(json!({"customerId": "nobody", "planId": "starter"})).unwrap();
        provision(
            &w.catalog,
            &w.state,
            &request,
            &Redemptions::new(),
            t(JAN1),
            &w.settings,
        )
        .unwrap_err()
        .code()
    };
    assert_eq!(other, ErrorCode::CustomerNotFound);
    let cases: Vec<(Value, ErrorCode)> = vec![
        (json!({"planId": "nope"}), ErrorCode::PlanNotFound),
        (
            json!({"planId": "pro", "planVersion": 9, "billingPeriod": "MONTHLY"}),
            ErrorCode::PlanNotFound,
        ),
        (
            json!({"planId": "ws-plus", "billingPeriod": "MONTHLY"}),
            ErrorCode::ResourceIdMismatch,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "resourceId": "r"}),
            ErrorCode::ResourceIdMismatch,
        ),
        (
            json!({"planId": "starter"}),
            ErrorCode::BillingPeriodMissingError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "QUARTERLY"}),
            ErrorCode::BillingPeriodMissingError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "addons": [{"addonId": "nope"}]}),
            ErrorCode::AddonNotFound,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "addons": [{"addonId": "api-boost"}]}),
            ErrorCode::IncompatibleSubscriptionAddon,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "addons": [{"addonId": "extra-projects"}, {"addonId": "extra-projects"}]}),
            ErrorCode::DuplicateAddonProvisionedError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "addons": [{"addonId": "extra-projects", "quantity": 0}]}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "addons": [{"addonId": "extra-projects", "quantity": 6}]}),
            ErrorCode::AddonQuantityExceedsLimitError,
        ),
        (
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "addons": [{"addonId": "audit-pack"}]}),
            ErrorCode::AddonDependencyMissingError,
        ),
        (
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "billableFeatures": [{"featureId": "nope", "quantity": 1}]}),
            ErrorCode::FeatureNotFound,
        ),
        (
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "billableFeatures": [{"featureId": "seats", "quantity": 0}]}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "billableFeatures": [{"featureId": "seats", "quantity": 1001}]}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "unitQuantity": -1}),
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "promotionCode": "NOPE"}),
            ErrorCode::PromotionCodeNotFound,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "couponId": "nope"}),
            ErrorCode::CouponNotFound,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "billingCountryCode": "germany"}),
            ErrorCode::InvalidArgumentError,
        ),
        // A tax percentage outside 0–100, as `updateCustomer` refuses it.
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "taxPercentage": -50}),
            ErrorCode::InvalidArgumentError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "taxPercentage": 100.5}),
            ErrorCode::InvalidArgumentError,
        ),
        (
            json!({"planId": "free", "trialOverride": {"isTrial": true}}),
            ErrorCode::TrialNotApplicable,
        ),
        (
            json!({"planId": "ws-plus", "resourceId": "r", "billingPeriod": "MONTHLY", "trialOverride": {"isTrial": true}}),
            ErrorCode::InvalidArgumentError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "trialOverride": {"isTrial": true, "trialEndDate": "2024-12-01T00:00:00Z"}}),
            ErrorCode::InvalidArgumentError,
        ),
        // Backdated trials already over, by default and by override.
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "startDate": "2024-12-01T00:00:00Z"}),
            ErrorCode::InvalidArgumentError,
        ),
        (
            json!({"planId": "starter", "billingPeriod": "MONTHLY", "startDate": "2024-12-01T00:00:00Z",
                   "trialOverride": {"isTrial": true, "trialEndDate": "2024-12-20T00:00:00Z"}}),
            ErrorCode::InvalidArgumentError,
        ),
    ];
    for (input, code) in cases {
        assert_eq!(w.error(JAN1, input.clone()), code, "{input}");
    }
}

#[test]
fn validation_reports_the_first_problem_in_format_order() {
    let w = World::new(true);
    // Unknown add-on and bad quantity: the add-on comes first.
    let input = json!({"planId": "pro", "billingPeriod": "MONTHLY", "addons": [{"addonId": "nope"}], "billableFeatures": [{"featureId": "seats", "quantity": 0}]});
    assert_eq!(w.error(JAN1, input), ErrorCode::AddonNotFound);
    // Missing billing period before add-ons.
    let input = json!({"planId": "pro", "addons": [{"addonId": "nope"}]});
    assert_eq!(w.error(JAN1, input), ErrorCode::BillingPeriodMissingError);
    // Quantities before the promotion code.
    let input = json!({"planId": "pro", "billingPeriod": "MONTHLY", "billableFeatures": [{"featureId": "seats", "quantity": 0}], "promotionCode": "NOPE"});
    assert_eq!(w.error(JAN1, input), ErrorCode::InvalidQuantity);
    // An add-on priced only monthly, bought annually, is an add-on's problem: before the
    // quantities, and before a later add-on's.
    let input = json!({"planId": "pro", "billingPeriod": "ANNUALLY", "addons": [{"addonId": "api-boost"}, {"addonId": "nope"}], "billableFeatures": [{"featureId": "seats", "quantity": 0}]});
    assert_eq!(w.error(JAN1, input), ErrorCode::BillingPeriodMissingError);
}

#[test]
fn trial_eligibility_is_one_per_product_and_none_after_paying() {
    let mut w = World::new(true);
    w.provision(JAN1, paid_starter("paid"));
    let d = w
        .decide(
            "2025-01-02T00:00:00Z",
            json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "p"}),
        )
        .unwrap();
    assert_eq!(d.trial.decision, TrialDecision::NotEligible);
    let mut w = World::new(true);
    w.provision(JAN1, starter("t1"));
    let d = w
        .decide(
            "2025-01-02T00:00:00Z",
            json!({"planId": "pro", "billingPeriod": "MONTHLY"}),
        )
        .unwrap();
    assert_eq!(d.trial.decision, TrialDecision::NotEligible);
    // Another product is another story.
    let d = w
        .decide(
            "2025-01-02T00:00:00Z",
            json!({"planId": "ws-basic", "resourceId": "r"}),
        )
        .unwrap();
    assert_eq!(d.trial.decision, TrialDecision::NotOffered);
}

// ---- provisionCustomer and the journey start setup ----

fn provision_customer_with(
    catalog: &Catalog,
    input: Value,
) -> Result<tollgate_core::journey::CustomerDecision, tollgate_core::Error> {
    provision_customer_at(catalog, None, JAN1, input)
}

/// `provisionCustomer` with the request `input` at `at`, for the customer in `state` (a new
/// one when `None`), with the default settings.
fn provision_customer_at(
    catalog: &Catalog,
    state: Option<&CustomerState>,
    at: &str,
    input: Value,
) -> Result<tollgate_core::journey::CustomerDecision, tollgate_core::Error> {
    let request: tollgate_core::journey::ProvisionCustomerRequest =
        serde_json::from_value(input).unwrap();
    tollgate_core::journey::provision_customer(
        catalog,
        state,
        &request,
        &Redemptions::new(),
        t(at),
        &Settings::default(),
    )
}

#[test]
fn provision_customer_follows_the_journey_start_setup() {
    use tollgate_core::journey::SubscriptionDecisionStrategy as S;
    let catalog = catalog_with(|_| {});
    let free = provision_customer_with(&catalog, json!({"customerId": "c5", "hasPaymentMethod": true, "subscriptionParams": {"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "first"}})).unwrap();
    assert_eq!(free.strategy, S::PredefinedFreePlan);
    let state = free.into_state(t(JAN1));
    let sub = state.subscription("first").unwrap();
    assert_eq!(
        (sub.plan_id().as_str(), sub.status),
        ("free", SubscriptionStatus::Active)
    );
    assert!(state.customer.has_payment_method);

    let chosen = provision_customer_with(&catalog, json!({"customerId": "c6", "hasPaymentMethod": true, "subscriptionParams": {"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "w"}})).unwrap();
    assert_eq!(chosen.strategy, S::RequestedPlan);
    assert_eq!(
        chosen.into_state(t(JAN1)).subscriptions[0]
            .plan_id()
            .as_str(),
        "ws-plus"
    );

    let skipped = provision_customer_with(&catalog, json!({"customerId": "c7", "timezone": "Europe/Berlin", "taxPercentage": 20, "subscriptionParams": null})).unwrap();
    assert_eq!(skipped.strategy, S::SkippedSubscriptionCreation);
    let state = skipped.into_state(t(JAN1));
    assert!(state.subscriptions.is_empty());
    assert_eq!(state.customer.timezone.name(), "Europe/Berlin");

    // A trial that runs out ends the product for the customer (no downgrade plan to hold).
    let trial_catalog = catalog_with(|c| {
        let journey = &mut c["products"][0]["journey"];
        journey["startSetup"] = json!("TRIAL_PERIOD");
        journey["startPlanId"] = json!("starter");
        journey["endSetup"] = json!("CANCEL_SUBSCRIPTION");
        journey.as_object_mut().unwrap().remove("downgradePlanId");
    });
    let trial = provision_customer_with(&trial_catalog, json!({"customerId": "c8", "subscriptionParams": {"planId": "pro", "billingPeriod": "MONTHLY"}})).unwrap();
    assert_eq!(trial.strategy, S::PredefinedTrialPlan);
    let state = trial.into_state(t(JAN1));
    let sub = &state.subscriptions[0];
    assert_eq!(
        (sub.plan_id().as_str(), sub.status),
        ("starter", SubscriptionStatus::InTrial)
    );
    // A customer in the trial already holds the product: its request is decided as asked,
    // never given the start plan in place of what it asked for.
    let asked = provision_customer_at(
        &trial_catalog,
        Some(&state),
        "2025-01-03T00:00:00Z",
        json!({"customerId": "c8", "hasPaymentMethod": true, "subscriptionParams": {"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "asked"}}),
    )
    .unwrap();
    assert_eq!(asked.strategy, S::RequestedPlan);
    let asked = asked.into_state(t("2025-01-03T00:00:00Z"));
    assert_eq!(
        asked.subscription("asked").unwrap().plan_id().as_str(),
        "pro"
    );

    // The journey's trial is the start plan's own, under the usual eligibility: a customer
    // starting the product again after its trial ran out gets the paid flow.
    let (state, _) = advance(
        &trial_catalog,
        &state,
        t("2025-01-20T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    assert!(state.subscriptions.iter().all(|s| s.status.is_ended()));
    let again = provision_customer_at(
        &trial_catalog,
        Some(&state),
        "2025-01-20T00:00:00Z",
        json!({"customerId": "c8", "hasPaymentMethod": true, "subscriptionParams": {"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "second"}}),
    )
    .unwrap();
    assert_eq!(again.strategy, S::PredefinedTrialPlan);
    let decision = again.subscription.as_ref().unwrap();
    assert_eq!(decision.trial.decision, TrialDecision::NotEligible);
    let state = again.into_state(t("2025-01-20T00:00:00Z"));
    let second = state.subscription("second").unwrap();
    assert_eq!(
        (second.plan_id().as_str(), second.is_trial, second.status),
        ("starter", false, SubscriptionStatus::Active)
    );

    let bad_zone = provision_customer_with(
        &catalog,
        json!({"customerId": "c9", "timezone": "Mars/Olympus"}),
    );
    assert_eq!(
        bad_zone.unwrap_err().code(),
        ErrorCode::InvalidArgumentError
    );
    let bad_params = provision_customer_with(
        &catalog,
        json!({"customerId": "c9", "subscriptionParams": {"plan": "x"}}),
    );
    assert_eq!(bad_params.unwrap_err().code(), ErrorCode::BadUserInput);
}

#[test]
fn provision_customer_with_a_payment_method_collects_pending_payments_first() {
    let trial_catalog = catalog_with(|c| {
        c["products"][0]["journey"]["startSetup"] = json!("TRIAL_PERIOD");
        c["products"][0]["journey"]["startPlanId"] = json!("starter");
    });
    let mut w = World::with_catalog(trial_catalog, false);
    let mut waiting = paid_starter("s");
    waiting["startDate"] = json!("2025-01-02T00:00:00Z");
    w.provision(JAN1, waiting);
    let at = "2025-01-05T00:00:00Z";
    let (state, _) = advance(&w.catalog, &w.state, t(at), &w.settings).unwrap();
    assert_eq!(
        state.subscription("s").unwrap().status,
        SubscriptionStatus::PaymentPending
    );
    let decision = provision_customer_at(
        &w.catalog,
        Some(&state),
        at,
        json!({"customerId": "c1", "hasPaymentMethod": true, "subscriptionParams": {"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "next"}}),
    )
    .unwrap();
    // The waiting subscription is paid for at the request, as `updateCustomer` would pay
    // it, and the subscription is decided on that: the starter plan was had, no trial.
    let paid = decision.state.subscription("s").unwrap();
    assert_eq!(
        (paid.status, paid.current_period.map(|p| p.start)),
        (SubscriptionStatus::Active, Some(t(at)))
    );
    let invoices: Vec<_> = decision
        .collected
        .iter()
        .filter_map(|e| e.invoice.clone())
        .collect();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].reason, InvoiceReason::SubscriptionCreation);
    assert_eq!(decision.state.invoices, invoices);
    let trial = &decision.subscription.as_ref().unwrap().trial;
    assert_eq!(trial.decision, TrialDecision::NotEligible);
}

#[test]
fn completing_a_checkout_starts_the_pending_subscription_at_completion() {
    let mut w = World::new(false);
    w.provision(JAN1, json!({"planId": "free", "subscriptionId": "free"}));
    let mut input = paid_starter("s");
    input["checkoutOptions"] = json!({"successUrl": "https://ok", "cancelUrl": "https://cancel"});
    let d = w.provision(JAN1, input);
    assert_eq!(
        (d.status, d.change_type),
        (ProvisionStatus::PaymentRequired, ChangeType::Upgrade)
    );
    assert_eq!(w.sub("free").status, SubscriptionStatus::Active);

    let at = "2025-01-03T10:00:00Z";
    let missing = tollgate_core::provision::complete_checkout(
        &w.catalog,
        &w.state,
        "nope",
        &Redemptions::new(),
        t(at),
        &w.settings,
    );
    assert_eq!(missing.unwrap_err().code(), ErrorCode::SubscriptionNotFound);
    let done = tollgate_core::provision::complete_checkout(
        &w.catalog,
        &w.state,
        "s",
        &Redemptions::new(),
        t(at),
        &w.settings,
    )
    .unwrap();
    assert_eq!(
        (done.decision.status, done.decision.change_type),
        (ProvisionStatus::Success, ChangeType::Upgrade)
    );
    assert_eq!(done.decision.trial.decision, TrialDecision::Skipped);
    let invoice = done.decision.effects.invoice.clone().unwrap();
    assert_eq!(
        (invoice.reason, invoice.total.to_string()),
        (InvoiceReason::SubscriptionCreation, "29.00".to_owned())
    );
    w.state = done.into_state(t(at));
    assert!(w.state.customer.has_payment_method);
    assert!(w.state.pending_checkouts.is_empty());
    let s = w.sub("s");
    assert_eq!(
        (s.status, s.start_date),
        (SubscriptionStatus::Active, t(at))
    );
    assert_eq!(s.current_period.unwrap().end, t("2025-02-03T10:00:00Z"));
    assert_eq!(
        w.sub("free").cancel_reason,
        Some(CancelReason::UpgradeOrDowngrade)
    );
}

/// A checkout bills the prices it was requested at: a customer who moves to a country with
/// prices of its own before completing pays what the checkout showed. A checkout stored
/// before it kept its prices takes the customer's country at the completion.
#[test]
fn a_completed_checkout_keeps_the_prices_it_was_requested_at() {
    let mut w = World::new(false);
    let mut input = paid_starter("s");
    input["checkoutOptions"] = json!({"successUrl": "https://ok", "cancelUrl": "https://cancel"});
    let d = w.provision(JAN1, input);
    assert_eq!(d.status, ProvisionStatus::PaymentRequired);
    let kept = w.state.pending_checkouts[0].priced_in.unwrap();
    assert_eq!(kept.country, None);
    w.state.customer.country = Some(CountryCode::parse("DE").unwrap());
    let complete = |state: &CustomerState| {
        let done = tollgate_core::provision::complete_checkout(
            &w.catalog,
            state,
            "s",
            &Redemptions::new(),
            t("2025-01-03T00:00:00Z"),
            &w.settings,
        )
        .unwrap();
        let invoice = done.decision.effects.invoice.unwrap();
        format!("{} {}", invoice.total, invoice.currency)
    };
    assert_eq!(complete(&w.state), "29.00 USD");
    let mut older = w.state.clone();
    older.pending_checkouts[0].priced_in = None;
    assert_eq!(complete(&older), "27.00 EUR");
}

/// A checkout's completion redeems the code its request was checked for: a code that
/// expired while the customer was at the checkout still applies; its redemption limit is
/// counted at the completion, when the redemption happens.
#[test]
fn a_completed_checkout_redeems_the_code_its_request_was_checked_for() {
    let catalog = catalog_with(|c| {
        c["coupons"][0]["promotionCodes"][0]["expiresAt"] = json!("2025-01-02T00:00:00Z");
        c["coupons"][0]["promotionCodes"][0]["maxRedemptions"] = json!(1);
    });
    let mut w = World::with_catalog(catalog, false);
    let mut input = paid_starter("s");
    input["promotionCode"] = json!("LAUNCH20");
    input["checkoutOptions"] = json!({"successUrl": "https://ok", "cancelUrl": "https://cancel"});
    let d = w.provision(JAN1, input);
    assert_eq!(d.status, ProvisionStatus::PaymentRequired);

    let at = t("2025-01-03T00:00:00Z");
    let complete = |redemptions: &Redemptions| {
        tollgate_core::provision::complete_checkout(
            &w.catalog,
            &w.state,
            "s",
            redemptions,
            at,
            &w.settings,
        )
    };
    let done = complete(&Redemptions::new()).unwrap();
    let invoice = done.decision.effects.invoice.clone().unwrap();
    assert_eq!(
        (
            invoice.discount_amount.to_string(),
            invoice.total.to_string()
        ),
        ("5.80".to_owned(), "23.20".to_owned())
    );
    let coupon = done.decision.effects.create[0].coupon.clone().unwrap();
    assert_eq!(coupon.redeemed_at, at);

    let mut exhausted = Redemptions::new();
    exhausted.record("LAUNCH20");
    assert_eq!(
        complete(&exhausted).unwrap_err().code(),
        ErrorCode::PromotionCodeMaxRedemptionsReached
    );
}

/// Long add-on lists are checked with a set, short ones by scanning: both find a repeat
/// and a missing dependency, whatever the list's length.
#[test]
fn add_on_repeats_and_dependencies_are_found_in_short_and_long_lists() {
    let catalog = catalog_with(|c| {
        let ids: Vec<String> = (0..20).map(|i| format!("bulk-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let mut addon = json!({"id": id, "productId": "analytics", "version": 1,
                "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 1, "currency": "USD"}]});
            if i == 19 {
                addon["dependencies"] = json!(["bulk-0"]);
            }
            c["addons"].as_array_mut().unwrap().push(addon);
        }
        for plan in c["plans"].as_array_mut().unwrap() {
            if plan["id"] == "pro" {
                let compatible = plan["compatibleAddonIds"].as_array_mut().unwrap();
                compatible.extend(ids.iter().map(|id| json!(id)));
            }
        }
    });
    let w = World::with_catalog(catalog, true);
    let request = |ids: &[usize]| {
        let addons: Vec<Value> = ids
            .iter()
            .map(|i| json!({"addonId": format!("bulk-{i}")}))
            .collect();
        json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "p",
               "addons": addons})
    };
    let all: Vec<usize> = (0..20).collect();
    for len in [3, 20] {
        let listed = &all[all.len() - len..];
        let with_dependency: Vec<usize> =
            std::iter::once(0).chain(listed.iter().copied()).collect();
        let with_dependency = if listed.contains(&0) {
            listed.to_vec()
        } else {
            with_dependency
        };
        let d = w.decide(JAN1, request(&with_dependency)).unwrap();
        assert_eq!(
            d.effects.create[0].config.addons.len(),
            with_dependency.len(),
            "{len} add-ons"
        );
        let mut repeated = with_dependency.clone();
        repeated.push(with_dependency[1]);
        assert_eq!(
            w.error(JAN1, request(&repeated)),
            ErrorCode::DuplicateAddonProvisionedError,
            "{len} add-ons"
        );
        let without: Vec<usize> = listed.iter().copied().filter(|i| *i != 0).collect();
        assert_eq!(
            w.error(JAN1, request(&without)),
            ErrorCode::AddonDependencyMissingError,
            "{len} add-ons"
        );
    }
}

#[test]
fn a_request_writing_a_metadata_key_twice_is_refused() {
    let text = r#"{"customerId": "c1", "planId": "starter", "metadata": {"crm": "a", "crm": "b"}}"#;
    let e = serde_json::from_str::<ProvisionRequest>(text).unwrap_err();
    assert!(e.to_string().contains("duplicate key `crm`"), "{e}");
    let once = r#"{"customerId": "c1", "planId": "starter", "metadata": {"crm": "a"}}"#;
    let request: ProvisionRequest = serde_json::from_str(once).unwrap();
    assert_eq!(request.metadata.get("crm").map(String::as_str), Some("a"));
}

/// A code at its limit, used by a subscription waiting in the scope: a newer waiting request
/// replaces that subscription and takes its redemption over; a request that leaves it
/// waiting (a downgrade scheduled on the live subscription) must fit beside it.
#[test]
fn a_code_held_by_a_waiting_subscription_is_taken_over_only_by_a_request_that_replaces_it() {
    let catalog = catalog_with(|v| {
        let codes = v["coupons"][1]["promotionCodes"][0]
            .as_object_mut()
            .unwrap();
        assert_eq!(codes["code"], json!("WELCOME10"));
        codes.insert("maxRedemptions".to_owned(), json!(1));
    });
    let mut w = World::with_catalog(catalog, true);
    w.provision(JAN1, pro("live", 5));
    let mut waiting = pro("waiting", 8);
    waiting["startDate"] = json!("2025-01-20T00:00:00Z");
    waiting["promotionCode"] = json!("WELCOME10");
    w.provision("2025-01-02T00:00:00Z", waiting);
    let mut counts = Redemptions::new();
    counts.record("WELCOME10");
    let decide = |input: Value| {
        let mut input = input;
        input["customerId"] = json!("c1");
        input["promotionCode"] = json!("WELCOME10");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        provision(
            &w.catalog,
            &w.state,
            &request,
            &counts,
            t("2025-01-03T00:00:00Z"),
            &w.settings,
        )
    };
    // A newer waiting request replaces `waiting` and takes its code over.
    let mut newer = pro("newer", 9);
    newer["startDate"] = json!("2025-01-25T00:00:00Z");
    let d = decide(newer).unwrap();
    assert!(
        d.effects
            .end
            .iter()
            .any(|e| e.subscription.as_str() == "waiting")
    );
    // A downgrade scheduled on `live` leaves `waiting` with its redemption: no room.
    let e = decide(pro("down", 2)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::PromotionCodeMaxRedemptionsReached);
}
