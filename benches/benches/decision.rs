//! Decisions against a baseline measured in the same run: deciding a provision (and
//! estimating an upgrade with proration, a coupon and tax) on the reference catalog for a
//! customer with 5 subscriptions, beside parsing the same request from JSON with serde.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              setup that fails must stop the benchmark"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use tollgate_benches::setup::upgrade;
use tollgate_core::estimate::estimate_subscription;
use tollgate_core::provision::ProvisionRequest;

fn decisions(c: &mut Criterion) {
    // The upgrade (shared with `decide-loop`): a customer on `starter` with a parallel `pro`
    // trial and three workspaces, 5 live subscriptions.
    let setup = upgrade().expect("the reference setup builds");
    assert_eq!(setup.state.subscriptions.len(), 5);
    let decision = setup.decide().expect("the upgrade decides");
    assert_eq!(
        decision.effects.invoice.as_ref().map(|i| i.lines.len()),
        Some(5)
    );
    let upgrade = &setup.json;

    let mut group = c.benchmark_group("provision");
    group.bench_function("parse_request_baseline", |b| {
        b.iter(|| serde_json::from_slice::<ProvisionRequest>(black_box(upgrade)).expect("parses"));
    });
    group.bench_function("decide_upgrade_5_subscriptions", |b| {
        b.iter(|| black_box(&setup).decide().expect("decides"));
    });
    group.finish();

    // The estimate needs a fresh customer for the first-purchase coupon.
    let mut fresh = setup.state.clone();
    fresh.invoices.clear();
    let estimate = json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "up",
        "billableFeatures": [{"featureId": "seats", "quantity": 12}], "promotionCode": "LAUNCH20"})
    .to_string()
    .into_bytes();
    let estimate_request: ProvisionRequest =
        serde_json::from_slice(&estimate).expect("a valid request");
    let result = estimate_subscription(
        &setup.catalog,
        &fresh,
        &estimate_request,
        &setup.redemptions,
        setup.now,
        &setup.settings,
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
                &setup.catalog,
                black_box(&fresh),
                black_box(&estimate_request),
                &setup.redemptions,
                setup.now,
                &setup.settings,
            )
            .expect("estimates")
        });
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
