//! The clock: advancing a customer with 10 subscriptions (monthly, on ten resources)
//! through a year of renewals, 120 renewals and their invoices, in one `advance`.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              setup that fails must stop the benchmark"
)]

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use tollgate_benches::setup::{paying_customer, provisioned};
use tollgate_core::Catalog;
use tollgate_core::customer::CustomerState;
use tollgate_core::lifecycle::advance;
use tollgate_core::settings::Settings;

const REFERENCE: &[u8] = include_bytes!("../../crates/core/tests/data/reference-catalog.json");

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

fn customer(catalog: &Catalog) -> CustomerState {
    let requests = (50..60).enumerate().map(|(i, quantity)| {
        json!({
            "customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY",
            "resourceId": format!("r{i}"), "subscriptionId": format!("w{i}"),
            "billableFeatures": [{"featureId": "storage-gb", "quantity": quantity}]})
    });
    provisioned(
        catalog,
        paying_customer(),
        at("2025-01-01T00:00:00Z"),
        requests,
    )
    .expect("the setup provisions")
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::from_json(REFERENCE).expect("the reference catalog loads");
    let settings = Settings::default();
    let state = customer(&catalog);
    let year_end = at("2026-01-01T00:00:00Z");
    // The benchmark asserts what it measures: 12 renewals of each of the 10 subscriptions.
    let (after, _) = advance(&catalog, &state, year_end, &settings).expect("the year advances");
    assert_eq!(after.invoices.len(), 10 + 120);
    c.bench_function("lifecycle/advance a year of 10 subscriptions", |b| {
        b.iter(|| advance(&catalog, black_box(&state), black_box(year_end), &settings))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
