//! `cancelSubscription`: every timing, the credit, the end setup and the errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_core::cancellation::{CancelRequest, cancel_subscription};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::invoice::InvoiceReason;
use tollgate_core::lifecycle::advance;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, SubscriptionStatus};
use tollgate_core::{Catalog, ErrorCode};

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn world(input: Value) -> (Catalog, CustomerState) {
    let catalog = Catalog::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reference-catalog.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    let mut state = CustomerState::new(customer);
    let mut input = input;
    input["customerId"] = json!("c1");
    let request: ProvisionRequest = serde_json::from_value(input).unwrap();
    let d = provision(
        &catalog,
        &state,
        &request,
        &Redemptions::new(),
        t("2025-01-01T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    d.apply(&mut state, t("2025-01-01T00:00:00Z"));
    (catalog, state)
}

fn cancel(
    catalog: &Catalog,
    state: &CustomerState,
    at: &str,
    input: Value,
) -> Result<tollgate_core::cancellation::CancelDecision, tollgate_core::Error> {
    let request: CancelRequest = serde_json::from_value(input).unwrap();
    cancel_subscription(catalog, state, &request, t(at), &Settings::default())
}

fn starter() -> Value {
    json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"})
}

#[test]
fn immediate_cancellation_credits_unused_time_and_the_end_setup_gives_free() {
    let (catalog, state) = world(starter());
    let d = cancel(
        &catalog,
        &state,
        "2025-01-21T06:00:00Z",
        json!({"subscriptionId": "s", "cancellationTime": "IMMEDIATE"}),
    )
    .unwrap();
    let invoice = d.invoice.unwrap();
    assert_eq!(invoice.reason, InvoiceReason::Cancellation);
    assert_eq!(
        (
            invoice.sub_total.to_string(),
            invoice.total.to_string(),
            invoice.credit_issued.to_string()
        ),
        ("-10.06".into(), "0.00".into(), "10.06".into())
    );
    let s = d.state.subscription("s").unwrap();
    assert_eq!(
        (s.status, s.cancel_reason, s.end_date),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::Immediate),
            Some(t("2025-01-21T06:00:00Z"))
        )
    );
    assert_eq!(d.state.subscriptions[1].plan_id().as_str(), "free");
    assert_eq!(
        d.state
            .customer
            .credit_balance
            .values()
            .next()
            .unwrap()
            .to_string(),
        "10.06"
    );
}

#[test]
fn without_proration_or_with_revoke_nothing_is_credited_or_set_up() {
    let (catalog, state) = world(starter());
    let d = cancel(&catalog, &state, "2025-01-21T06:00:00Z", json!({"subscriptionId": "s", "cancellationTime": "IMMEDIATE", "prorate": false, "action": "REVOKE_ENTITLEMENTS"})).unwrap();
    assert!(d.invoice.is_none());
    assert_eq!(d.state.subscriptions.len(), 1);
}

#[test]
fn end_of_period_cancellation_is_pending_until_the_period_end() {
    let (catalog, state) = world(starter());
    let d = cancel(
        &catalog,
        &state,
        "2025-01-10T00:00:00Z",
        json!({"subscriptionId": "s", "cancellationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap();
    assert!(d.invoice.is_none());
    let s = d.state.subscription("s").unwrap();
    assert_eq!(
        (s.status, s.cancellation_date, s.cancel_reason, s.end_date),
        (
            SubscriptionStatus::Active,
            Some(t("2025-02-01T00:00:00Z")),
            None,
            None
        )
    );
    let (after, _) = advance(
        &catalog,
        &d.state,
        t("2025-02-01T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    let s = after.subscription("s").unwrap();
    assert_eq!(
        (s.status, s.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::ScheduledCancellation)
        )
    );
    assert_eq!(after.invoices.len(), 1, "no renewal after the cancellation");
}

#[test]
fn a_specific_date_credits_the_rest_of_its_period() {
    let (catalog, state) = world(starter());
    let d = cancel(&catalog, &state, "2025-01-10T00:00:00Z", json!({"subscriptionId": "s", "cancellationTime": "SPECIFIC_DATE", "endDate": "2025-02-16T12:00:00Z"})).unwrap();
    let (after, _) = advance(
        &catalog,
        &d.state,
        t("2025-02-16T12:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    let last = after.invoices.last().unwrap();
    // Renewed on Feb 1 (29.00); 12.5 of February's 28 days unused: 29 × 12.5/28 = 12.95.
    assert_eq!(
        (last.reason, last.sub_total.to_string()),
        (InvoiceReason::Cancellation, "-12.95".into())
    );
    assert_eq!(
        after.subscription("s").unwrap().cancel_reason,
        Some(CancelReason::ScheduledCancellation)
    );
}

#[test]
fn cancellation_errors() {
    let (catalog, state) =
        world(json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "trial"}));
    let code = |at: &str, input: Value| cancel(&catalog, &state, at, input).unwrap_err().code();
    assert_eq!(
        code("2025-01-02T00:00:00Z", json!({"subscriptionId": "nope"})),
        ErrorCode::SubscriptionNotFound
    );
    assert_eq!(
        code(
            "2025-01-02T00:00:00Z",
            json!({"subscriptionId": "trial", "cancellationTime": "SPECIFIC_DATE"})
        ),
        ErrorCode::InvalidCancellationDate
    );
    assert_eq!(
        code(
            "2025-01-02T00:00:00Z",
            json!({"subscriptionId": "trial", "cancellationTime": "SPECIFIC_DATE", "endDate": "2025-01-01T00:00:00Z"})
        ),
        ErrorCode::InvalidCancellationDate
    );
    assert_eq!(
        code(
            "2025-01-02T00:00:00Z",
            json!({"subscriptionId": "trial", "cancellationTime": "SPECIFIC_DATE", "endDate": "2025-01-20T00:00:00Z"})
        ),
        ErrorCode::InvalidCancellationDate
    );
    let ended = cancel(
        &catalog,
        &state,
        "2025-01-02T00:00:00Z",
        json!({"subscriptionId": "trial", "cancellationTime": "IMMEDIATE"}),
    )
    .unwrap()
    .state;
    let request: CancelRequest =
        serde_json::from_value(json!({"subscriptionId": "trial"})).unwrap();
    let again = cancel_subscription(
        &catalog,
        &ended,
        &request,
        t("2025-01-03T00:00:00Z"),
        &Settings::default(),
    );
    assert_eq!(
        again.unwrap_err().code(),
        ErrorCode::SubscriptionAlreadyCanceledOrExpired
    );
    // A trial canceled for its end ends CANCELED with ScheduledCancellation, not converted.
    let d = cancel(
        &catalog,
        &state,
        "2025-01-02T00:00:00Z",
        json!({"subscriptionId": "trial", "cancellationTime": "END_OF_BILLING_PERIOD"}),
    )
    .unwrap();
    let (after, _) = advance(
        &catalog,
        &d.state,
        t("2025-01-15T00:00:00Z"),
        &Settings::default(),
    )
    .unwrap();
    let trial = after.subscription("trial").unwrap();
    assert_eq!(
        (trial.status, trial.cancel_reason),
        (
            SubscriptionStatus::Canceled,
            Some(CancelReason::ScheduledCancellation)
        )
    );
    assert!(after.invoices.is_empty());
}
