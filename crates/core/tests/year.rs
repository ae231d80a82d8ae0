//! A year of one customer's life on the clock: a trial that converts, an upgrade, a coupon,
//! a scheduled seat downgrade, a scheduled plan change, a cancellation and the downgrade to
//! the free plan. Every invoice is asserted, with its instant, reason and amounts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate_core::Catalog;
use tollgate_core::cancellation::{CancelRequest, cancel_subscription};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::entitlement::{FallbackEntitlements, GetEntitlementRequest, get_entitlement};
use tollgate_core::id::CustomerId;
use tollgate_core::invoice::InvoiceReason;
use tollgate_core::lifecycle::advance;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, SubscriptionStatus};
use tollgate_core::update::{UpdateRequest, update_subscription};

/// An invoice as asserted: issued at, subscription, reason, subtotal, discount, total.
type InvoiceRow<'a> = (
    DateTime<Utc>,
    &'a str,
    InvoiceReason,
    Decimal,
    Decimal,
    Decimal,
);

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The customer's life, moved step by step: the clock first, then the request.
struct Life {
    catalog: Catalog,
    state: CustomerState,
    settings: Settings,
}

impl Life {
    fn clock(&mut self, at: &str) {
        let (state, _) = advance(&self.catalog, &self.state, t(at), &self.settings).unwrap();
        self.state = state;
    }

    fn provision(&mut self, at: &str, input: Value) {
        self.clock(at);
        let mut input = input;
        input["customerId"] = json!("c1");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        let decision = provision(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            t(at),
            &self.settings,
        )
        .unwrap();
        decision.apply(&mut self.state, t(at));
    }

    fn update(&mut self, at: &str, input: Value) {
        self.clock(at);
        let request: UpdateRequest = serde_json::from_value(input).unwrap();
        let decision = update_subscription(
            &self.catalog,
            &self.state,
            &request,
            &Redemptions::new(),
            t(at),
            &self.settings,
        )
        .unwrap();
        decision.apply(&mut self.state, t(at));
    }

    fn cancel(&mut self, at: &str, input: Value) {
        self.clock(at);
        let request: CancelRequest = serde_json::from_value(input).unwrap();
        self.state =
            cancel_subscription(&self.catalog, &self.state, &request, t(at), &self.settings)
                .unwrap()
                .state;
    }

    fn seats_limit(&self, at: &str) -> Value {
        let request: GetEntitlementRequest =
            serde_json::from_value(json!({"customerId": "c1", "featureId": "seats"})).unwrap();
        get_entitlement(
            &self.catalog,
            Some(&self.state),
            &FallbackEntitlements::none(),
            &request,
            t(at),
        )["usageLimit"]
            .clone()
    }
}

#[test]
fn a_year_of_a_customer_s_life_issues_exactly_these_invoices() {
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
    let mut life = Life {
        catalog,
        state: CustomerState::new(customer),
        settings: Settings::default(),
    };

    // A 14-day trial of pro with 5 seats: 99 + 5 × 20 = 199 a month once paid.
    life.provision(
        "2025-01-01T00:00:00Z",
        json!({"planId": "pro", "planVersion": 1, "billingPeriod": "MONTHLY", "subscriptionId": "s",
               "billableFeatures": [{"featureId": "seats", "quantity": 5}]}),
    );
    assert_eq!(
        life.state.subscription("s").unwrap().status,
        SubscriptionStatus::InTrial
    );
    // 14 of the 31 days of [01-15, 02-15) are left: seats 100 → 175 credit 45.16, debit 79.03.
    life.update(
        "2025-02-01T00:00:00Z",
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 10}]}),
    );
    // A 10 off the next invoice (ONCE).
    life.update(
        "2025-03-01T00:00:00Z",
        json!({"subscriptionId": "s", "promotionCode": "WELCOME10"}),
    );
    // Fewer seats wait for the period end (the product's downgrade strategy); the limit stays.
    life.update(
        "2025-04-10T00:00:00Z",
        json!({"subscriptionId": "s", "billableFeatures": [{"featureId": "seats", "quantity": 3}]}),
    );
    assert_eq!(life.seats_limit("2025-04-14T00:00:00Z"), json!(10));
    life.clock("2025-04-15T00:00:00Z");
    assert_eq!(life.seats_limit("2025-04-15T00:00:00Z"), json!(3));
    // Down to starter at the period end.
    life.provision(
        "2025-06-01T00:00:00Z",
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "s2"}),
    );
    life.cancel(
        "2025-09-01T00:00:00Z",
        json!({"subscriptionId": "s2", "cancellationTime": "END_OF_BILLING_PERIOD"}),
    );
    life.clock("2025-12-31T00:00:00Z");

    let invoices: Vec<InvoiceRow<'_>> = life
        .state
        .invoices
        .iter()
        .map(|i| {
            (
                i.issued_at,
                i.subscription.as_str(),
                i.reason,
                i.sub_total,
                i.discount_amount,
                i.total,
            )
        })
        .collect();
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    use InvoiceReason::{BillingCycle, SubscriptionCreation, SubscriptionUpdate};
    let expected = vec![
        (
            t("2025-01-15T00:00:00Z"),
            "s",
            SubscriptionCreation,
            d("199"),
            d("0"),
            d("199"),
        ),
        (
            t("2025-02-01T00:00:00Z"),
            "s",
            SubscriptionUpdate,
            d("33.87"),
            d("0"),
            d("33.87"),
        ),
        (
            t("2025-02-15T00:00:00Z"),
            "s",
            BillingCycle,
            d("274"),
            d("0"),
            d("274"),
        ),
        (
            t("2025-03-15T00:00:00Z"),
            "s",
            BillingCycle,
            d("274"),
            d("10"),
            d("264"),
        ),
        (
            t("2025-04-15T00:00:00Z"),
            "s",
            BillingCycle,
            d("159"),
            d("0"),
            d("159"),
        ),
        (
            t("2025-05-15T00:00:00Z"),
            "s",
            BillingCycle,
            d("159"),
            d("0"),
            d("159"),
        ),
        (
            t("2025-06-15T00:00:00Z"),
            "s2",
            SubscriptionCreation,
            d("29"),
            d("0"),
            d("29"),
        ),
        (
            t("2025-07-15T00:00:00Z"),
            "s2",
            BillingCycle,
            d("29"),
            d("0"),
            d("29"),
        ),
        (
            t("2025-08-15T00:00:00Z"),
            "s2",
            BillingCycle,
            d("29"),
            d("0"),
            d("29"),
        ),
    ];
    assert_eq!(invoices, expected);

    let subs: Vec<(&str, &str, SubscriptionStatus, Option<CancelReason>)> = life
        .state
        .subscriptions
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.plan_id().as_str(),
                s.status,
                s.cancel_reason,
            )
        })
        .collect();
    assert_eq!(
        subs,
        [
            (
                "s",
                "pro",
                SubscriptionStatus::Canceled,
                Some(CancelReason::UpgradeOrDowngrade)
            ),
            (
                "s2",
                "starter",
                SubscriptionStatus::Canceled,
                Some(CancelReason::ScheduledCancellation)
            ),
            ("c1-sub-3", "free", SubscriptionStatus::Active, None),
        ]
    );
    let free = &life.state.subscriptions[2];
    assert_eq!(free.start_date, t("2025-09-15T00:00:00Z"));
    assert!(life.state.customer.credit_balance.is_empty());
}
