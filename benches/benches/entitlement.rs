//! Entitlement checks against a plain `HashMap<String, _>` lookup measured in the same run,
//! and building the merged set for a customer with 3 subscriptions, 4 add-ons and 100
//! features.
#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, a setup \
              that fails must stop the benchmark, and the generated catalog's small numbers \
              cannot overflow"
)]

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hint::black_box;
use tollgate_benches::setup::{paying_customer, provisioned};
use tollgate_core::Catalog;
use tollgate_core::customer::CustomerState;
use tollgate_core::entitlement::EntitlementSet;

const FEATURES: usize = 100;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid instant")
}

/// 100 features (booleans, numbers, metered); two single-subscription products whose plans
/// entitle all of them; four add-ons.
fn catalog() -> Catalog {
    let feature = |i: usize| match i % 3 {
        0 => json!({"id": format!("f{i}"), "type": "BOOLEAN"}),
        1 => json!({"id": format!("f{i}"), "type": "NUMBER"}),
        _ => json!({"id": format!("f{i}"), "type": "NUMBER", "meter": "INCREMENTAL"}),
    };
    let entitlement = |i: usize, scale: u64| match i % 3 {
        0 => json!({"featureId": format!("f{i}"), "granted": true}),
        1 => json!({"featureId": format!("f{i}"), "value": scale * 10}),
        _ => {
            json!({"featureId": format!("f{i}"), "usageLimit": scale * 1000, "resetPeriod": "MONTH"})
        }
    };
    let plan = |id: &str, product: &str, scale: u64, parent: Option<&str>| {
        let mut plan = json!({"id": id, "productId": product, "pricingType": "PAID",
            "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": scale * 10, "currency": "USD"}],
            "compatibleAddonIds": if product == "app" { json!(["a0", "a1", "a2", "a3"]) } else { json!([]) },
            "entitlements": (0..FEATURES).map(|i| entitlement(i, scale)).collect::<Vec<_>>()});
        if let (Some(parent), Some(fields)) = (parent, plan.as_object_mut()) {
            fields.insert("parentPlanId".to_owned(), json!(parent));
        }
        plan
    };
    let addon = |i: usize| {
        json!({"id": format!("a{i}"), "productId": "app", "maxQuantity": 5,
            "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 5, "currency": "USD"}],
            "entitlements": (0..FEATURES).filter(|f| f % 4 == i).map(|f| entitlement(f, 1)).collect::<Vec<_>>()})
    };
    let value: Value = json!({
        "features": (0..FEATURES).map(feature).collect::<Vec<_>>(),
        "products": [{"id": "app"}, {"id": "other"}],
        "plans": [plan("base", "app", 1, None), plan("pro", "app", 3, Some("base")), plan("side", "other", 2, None)],
        "addons": (0..4).map(addon).collect::<Vec<_>>(),
    });
    Catalog::from_json_value(&value).expect("the generated catalog loads")
}

/// A customer on `base` with the four add-ons, a parallel `pro` trial, and `side`.
fn customer(catalog: &Catalog) -> CustomerState {
    let requests = [
        json!({"customerId": "c1", "planId": "base", "billingPeriod": "MONTHLY", "subscriptionId": "s1",
               "addons": [{"addonId": "a0"}, {"addonId": "a1", "quantity": 2}, {"addonId": "a2"}, {"addonId": "a3", "quantity": 3}]}),
        json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "s2",
               "trialOverride": {"isTrial": true, "trialEndDate": "2025-02-01T00:00:00Z"}}),
        json!({"customerId": "c1", "planId": "side", "billingPeriod": "MONTHLY", "subscriptionId": "s3"}),
    ];
    let state = provisioned(
        catalog,
        paying_customer(),
        at("2025-01-01T00:00:00Z"),
        requests,
    )
    .expect("the setup provisions");
    assert_eq!(state.subscriptions.len(), 3);
    state
}

fn entitlements(c: &mut Criterion) {
    let catalog = catalog();
    let state = customer(&catalog);
    let now = at("2025-01-10T00:00:00Z");
    let set = EntitlementSet::for_customer(&catalog, &state, None, now);
    assert_eq!(set.len(), FEATURES);
    let baseline: HashMap<String, bool> = set
        .entitlements()
        .iter()
        .map(|answer| (answer.feature_id().to_owned(), answer.has_access()))
        .collect();
    assert_eq!(baseline.len(), FEATURES);
    assert_eq!(
        set.get("f42").has_access(),
        baseline.get("f42").copied().unwrap_or(false)
    );

    let mut group = c.benchmark_group("entitlement");
    group.bench_function("hashmap_lookup_baseline", |b| {
        b.iter(|| baseline.get(black_box("f42")).copied().unwrap_or(false));
    });
    group.bench_function("check_merged_set", |b| {
        b.iter(|| set.get(black_box("f42")).has_access());
    });
    group.bench_function("build_set_3_subscriptions_4_addons_100_features", |b| {
        b.iter(|| {
            let set = EntitlementSet::for_customer(&catalog, black_box(&state), None, now);
            assert_eq!(set.len(), FEATURES);
            set.len()
        });
    });
    group.finish();
}

criterion_group!(benches, entitlements);
criterion_main!(benches);
