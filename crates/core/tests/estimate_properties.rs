//! Estimates equal execution: over random request sequences, an estimate taken at the
//! instant of a request shows what provisioning then charges (SPEC.md §3.E, FORMAT.md §6).
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
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::estimate::estimate_subscription;
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;

fn start() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// A provision input of the reference catalog's single-subscription product (for the
/// customer its nonprofit code is for), with the
/// options that change money varied: proration, anchor, coupon, tax, add-ons, seats.
/// Collection is always charged with a payment method at hand, so every charge is invoiced.
fn request() -> impl Strategy<Value = Value> {
    let plan = prop::sample::select(vec![
        ("free", None),
        ("starter", Some("MONTHLY")),
        ("starter", Some("ANNUALLY")),
        ("pro", Some("MONTHLY")),
        ("pro", Some("ANNUALLY")),
    ]);
    (
        plan,
        1i64..12,
        prop::sample::subsequence(vec!["extra-projects", "priority-support"], 0..=2),
        prop::option::of(prop::sample::select(vec![
            "INVOICE_IMMEDIATELY",
            "CREATE_PRORATIONS",
            "NONE",
        ])),
        prop::option::of(prop::sample::select(vec!["UNCHANGED", "NOW"])),
        prop::option::of(prop::sample::select(vec![
            "LAUNCH20",
            "WELCOME10",
            "NONPROFIT50",
        ])),
        prop::option::of(prop::sample::select(vec![0u8, 10, 20])),
    )
        .prop_map(
            |((plan, period), seats, addons, proration, anchor, code, tax)| {
                let mut input = json!({"customerId": "ngo-1", "planId": plan, "skipTrial": true});
                if let Some(p) = period {
                    input["billingPeriod"] = json!(p);
                }
                if plan == "pro" {
                    input["billableFeatures"] = json!([{"featureId": "seats", "quantity": seats}]);
                }
                if plan != "free" {
                    input["addons"] =
                        Value::Array(addons.iter().map(|a| json!({"addonId": a})).collect());
                }
                if let Some(p) = proration {
                    input["prorationBehavior"] = json!(p);
                }
                if let Some(a) = anchor {
                    input["billingCycleAnchor"] = json!(a);
                }
                if let Some(c) = code {
                    input["promotionCode"] = json!(c);
                }
                if let Some(t) = tax {
                    input["taxPercentage"] = json!(t);
                }
                input
            },
        )
}

fn steps() -> impl Strategy<Value = Vec<(u32, Value)>> {
    prop::collection::vec((0u32..20 * 86_400, request()), 1..8)
}

fn parse(input: &Value) -> ProvisionRequest {
    serde_json::from_value(input.clone()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Before each request, its estimate at the same instant shows exactly the invoice the
    /// request then issues (amounts and lines), or nothing when it issues none; and the
    /// estimate fails exactly when the request does.
    #[test]
    fn an_estimate_shows_the_invoice_its_request_issues(steps in steps()) {
        let catalog = catalog();
        let settings = Settings::default();
        let mut state = CustomerState::new(Customer::new(CustomerId::new("ngo-1")));
        state.customer.has_payment_method = true;
        state.customer.tax_percentage = Some(Decimal::from(20));
        let mut now = start();
        for (i, (advance, input)) in steps.iter().enumerate() {
            now += TimeDelta::seconds(i64::from(*advance));
            let mut input = input.clone();
            input["subscriptionId"] = json!(format!("s{i}"));
            let request = parse(&input);
            let estimate = estimate_subscription(&catalog, &state, &request, &Redemptions::new(), now, &settings);
            let decision = provision(&catalog, &state, &request, &Redemptions::new(), now, &settings);
            let (estimate, decision) = match (estimate, decision) {
                (Ok(e), Ok(d)) => (e, d),
                (Err(e), Err(d)) => {
                    prop_assert_eq!(e.code(), d.code());
                    continue;
                }
                (e, d) => {
                    return Err(TestCaseError::fail(format!(
                        "step {i} {input}: estimate {:?}, provision {:?}",
                        e.err(),
                        d.err()
                    )));
                }
            };
            match &decision.effects.invoice {
                Some(invoice) => {
                    let shown = (
                        estimate.now.sub_total,
                        estimate.now.discount_amount,
                        estimate.now.credit_applied,
                        estimate.now.tax,
                        estimate.now.total,
                    );
                    let issued = (
                        invoice.sub_total,
                        invoice.discount_amount,
                        invoice.credit_applied,
                        invoice.tax,
                        invoice.total,
                    );
                    prop_assert_eq!(shown, issued, "step {} {}", i, input);
                    prop_assert_eq!(&estimate.lines, &invoice.lines, "step {} {}", i, input);
                }
                None => {
                    prop_assert!(estimate.lines.is_empty(), "step {i} {input}: {estimate:?}");
                    prop_assert!(estimate.now.total.is_zero(), "step {i} {input}: {estimate:?}");
                }
            }
            decision.apply(&mut state, now);
        }
    }
}
