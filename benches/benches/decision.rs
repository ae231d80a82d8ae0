//! Decisions against a baseline measured in the same run: deciding a provision (and
//! estimating an upgrade with proration, a coupon and tax) on the reference catalog for a
//! customer with 5 subscriptions, beside parsing the same request from JSON with serde.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              setup that fails must stop the benchmark"
)]

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;
use serde_json::json;
use std::hint::black_box;
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::estimate::estimate_subscription;
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;

const REFERENCE: &[u8] = include_bytes!("../../crates/core/tests/data/reference-catalog.json");

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

/// A customer on `starter` with a parallel `pro` trial and three workspaces: 5 live
/// subscriptions.
fn customer(catalog: &Catalog) -> CustomerState {
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    customer.tax_percentage = Some(Decimal::from(20));
    let mut state = CustomerState::new(customer);
    let start = at("2025-01-01T00:00:00Z");
    let mut requests = vec![
        json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s1"}),
        json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "s2", "trialOverride": {"isTrial": true, "trialEndDate": "2025-02-01T00:00:00Z"}}),
    ];
    for (i, resource) in ["w1", "w2", "w3"].iter().enumerate() {
        requests.push(json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": resource,
            "subscriptionId": format!("w{i}"), "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}]}));
    }
    for request in requests {
        let request: ProvisionRequest = serde_json::from_value(request).expect("a valid request");
        let decision = provision(
            catalog,
            &state,
            &request,
            &Redemptions::new(),
            start,
            &Settings::default(),
        )
        .expect("the setup provisions");
        decision.apply(&mut state, start);
    }
    assert_eq!(state.subscriptions.len(), 5);
    state
}

fn decisions(c: &mut Criterion) {
    let catalog = Catalog::from_json(REFERENCE).expect("the reference catalog loads");
    let state = customer(&catalog);
    let now = at("2025-01-10T08:30:00Z");
    let settings = Settings::default();
    let redemptions = Redemptions::new();

    let upgrade = json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "up",
        "billableFeatures": [{"featureId": "seats", "quantity": 12}],
        "addons": [{"addonId": "priority-support"}, {"addonId": "extra-projects", "quantity": 2}]})
    .to_string()
    .into_bytes();
    let request: ProvisionRequest = serde_json::from_slice(&upgrade).expect("a valid request");
    let decision = provision(&catalog, &state, &request, &redemptions, now, &settings)
        .expect("the upgrade decides");
    assert_eq!(
        decision.effects.invoice.as_ref().map(|i| i.lines.len()),
        Some(5)
    );

    let mut group = c.benchmark_group("provision");
    group.bench_function("parse_request_baseline", |b| {
        b.iter(|| serde_json::from_slice::<ProvisionRequest>(black_box(&upgrade)).expect("parses"));
    });
    group.bench_function("decide_upgrade_5_subscriptions", |b| {
        b.iter(|| {
            provision(
                &catalog,
                black_box(&state),
                black_box(&request),
                &redemptions,
                now,
                &settings,
            )
            .expect("decides")
        });
    });
    group.finish();

    // The estimate needs a fresh customer for the first-purchase coupon.
    let mut fresh = state.clone();
    fresh.invoices.clear();
    let estimate = json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "up",
        "billableFeatures": [{"featureId": "seats", "quantity": 12}], "promotionCode": "LAUNCH20"})
    .to_string()
    .into_bytes();
    let estimate_request: ProvisionRequest =
        serde_json::from_slice(&estimate).expect("a valid request");
    let result = estimate_subscription(
        &catalog,
        &fresh,
        &estimate_request,
        &redemptions,
        now,
        &settings,
    )
    .expect("the estimate decides");
    assert!(
        result.proration.is_some()
            && !result.now.discount_amount.is_zero()
            && !result.now.tax.is_zero()
    );

    let mut group = c.benchmark_group("estimate");
    group.bench_function("parse_request_baseline", |b| {
        b.iter(|| {
            serde_json::from_slice::<ProvisionRequest>(black_box(&estimate)).expect("parses")
        });
    });
    group.bench_function("upgrade_with_proration_coupon_tax", |b| {
        b.iter(|| {
            estimate_subscription(
                &catalog,
                black_box(&fresh),
                black_box(&estimate_request),
                &redemptions,
                now,
                &settings,
            )
            .expect("estimates")
        });
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
