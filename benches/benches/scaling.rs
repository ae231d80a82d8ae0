//! How a provision decision scales: with the catalog's size (100 → 100,000 plans, where it
//! should stay near flat) and with the customer's subscriptions (1 → 1,000, at most
//! linear). Catalogs come from `tollgate_benches::generated_catalog`.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              setup that fails must stop the benchmark"
)]

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use tollgate_benches::{generated_catalog, setup};
use tollgate_core::Catalog;
use tollgate_core::change::ChangeType;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::CustomerState;
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

fn request(value: Value) -> ProvisionRequest {
    serde_json::from_value(value).expect("a valid request")
}

fn provisioned(catalog: &Catalog, requests: impl IntoIterator<Item = Value>) -> CustomerState {
    setup::provisioned(
        catalog,
        setup::paying_customer(),
        at("2025-01-01T00:00:00Z"),
        requests,
    )
    .expect("the setup provisions")
}

/// Plan 4 extends plan 2 (both of the single-subscription product): an upgrade applied now,
/// whatever the catalog's size.
fn by_catalog_size(c: &mut Criterion) {
    let now = at("2025-01-10T08:30:00Z");
    let settings = Settings::default();
    let mut group = c.benchmark_group("scaling/decide_upgrade_by_plans_in_catalog");
    group.sampling_mode(SamplingMode::Flat);
    for plans in [100, 1_000, 10_000, 100_000] {
        let catalog = Catalog::from_json(&generated_catalog(plans)).expect("the catalog loads");
        let state = provisioned(
            &catalog,
            [
                json!({"customerId": "c1", "planId": "plan-2", "billingPeriod": "MONTHLY", "skipTrial": true}),
            ],
        );
        let upgrade = request(
            json!({"customerId": "c1", "planId": "plan-4", "billingPeriod": "MONTHLY", "skipTrial": true}),
        );
        let decision = provision(
            &catalog,
            &state,
            &upgrade,
            &Redemptions::new(),
            now,
            &settings,
        )
        .expect("the upgrade decides");
        assert_eq!(decision.change_type, ChangeType::Upgrade);
        group.bench_with_input(
            BenchmarkId::from_parameter(plans),
            &upgrade,
            |b, upgrade| {
                b.iter(|| {
                    provision(
                        &catalog,
                        black_box(&state),
                        black_box(upgrade),
                        &Redemptions::new(),
                        now,
                        &settings,
                    )
                });
            },
        );
    }
    group.finish();
}

/// A customer with `n` subscriptions of the multi-subscription product (one per resource)
/// provisions one more.
fn by_subscriptions(c: &mut Criterion) {
    let catalog = Catalog::from_json(&generated_catalog(1_000)).expect("the catalog loads");
    let now = at("2025-01-10T08:30:00Z");
    let settings = Settings::default();
    let mut group = c.benchmark_group("scaling/decide_new_by_subscriptions_of_customer");
    group.sampling_mode(SamplingMode::Flat);
    for n in [1, 10, 100, 1_000] {
        let state = provisioned(
            &catalog,
            (0..n).map(|i| {
                json!({"customerId": "c1", "planId": "plan-1", "billingPeriod": "MONTHLY",
                       "skipTrial": true, "resourceId": format!("r{i}")})
            }),
        );
        assert_eq!(state.subscriptions.len(), n);
        let new = request(
            json!({"customerId": "c1", "planId": "plan-3", "billingPeriod": "MONTHLY",
                   "skipTrial": true, "resourceId": "another"}),
        );
        let decision = provision(&catalog, &state, &new, &Redemptions::new(), now, &settings)
            .expect("the new subscription decides");
        assert_eq!(decision.change_type, ChangeType::New);
        group.bench_with_input(BenchmarkId::from_parameter(n), &new, |b, new| {
            b.iter(|| {
                provision(
                    &catalog,
                    black_box(&state),
                    black_box(new),
                    &Redemptions::new(),
                    now,
                    &settings,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, by_catalog_size, by_subscriptions);
criterion_main!(benches);
