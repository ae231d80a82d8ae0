//! Catalog loading: `Catalog::from_json` (parse and validate) on generated catalogs of 1,000,
//! 10,000 and 100,000 plans, and on one plan with a long list (compatible add-ons, per-unit
//! prices, ENUM values) of 10,000 and 40,000 entries: four times the entries should take
//! about four times as long (SPEC.md §2: validation is linear in the catalog size).
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              catalog that fails to load must stop the benchmark"
)]

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::Duration;
use tollgate_benches::generated_catalog;
use tollgate_core::Catalog;

fn load_and_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog/load_and_validate");
    // The largest case takes over a second per load: ten samples of one iteration each there,
    // and the whole bench stays near a minute.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    for (plans, seconds) in [(1_000_usize, 5), (10_000, 5), (100_000, 20)] {
        group.measurement_time(Duration::from_secs(seconds));
        let bytes = generated_catalog(plans);
        let catalog = Catalog::from_json(&bytes).expect("the generated catalog validates");
        assert_eq!(catalog.plans().len(), plans);
        group.throughput(Throughput::Bytes(
            u64::try_from(bytes.len()).expect("the catalog size fits in u64"),
        ));
        group.bench_with_input(BenchmarkId::from_parameter(plans), &bytes, |b, bytes| {
            b.iter(|| {
                let catalog = Catalog::from_json(black_box(bytes)).expect("the catalog loads");
                assert_eq!(catalog.plans().len(), plans);
                catalog
            });
        });
    }
    group.finish();
}

/// A catalog whose one plan has a list of `n` entries of `shape`.
fn long_list(shape: &str, n: usize) -> Vec<u8> {
    let catalog = match shape {
        "compatible_addons" => json!({
            "products": [{"id": "p"}],
            "plans": [{"id": "x", "productId": "p", "pricingType": "FREE",
                "compatibleAddonIds": (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>()}],
            "addons": (0..n).map(|i| json!({"id": format!("a{i}"), "productId": "p", "maxQuantity": 1}))
                .collect::<Vec<Value>>()
        }),
        "per_unit_prices" => json!({
            "features": (0..n).map(|i| json!({"id": format!("f{i}"), "type": "NUMBER"})).collect::<Vec<Value>>(),
            "products": [{"id": "p"}],
            "plans": [{"id": "x", "productId": "p", "pricingType": "PAID",
                "prices": (0..n).map(|i| json!({"billingPeriod": "MONTHLY", "model": "PER_UNIT",
                    "featureId": format!("f{i}"), "unitPrice": 1, "currency": "USD"})).collect::<Vec<Value>>()}]
        }),
        _ => {
            let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
            json!({
                "features": [{"id": "r", "type": "ENUM", "values": values}],
                "products": [{"id": "p"}],
                "plans": [{"id": "x", "productId": "p", "pricingType": "FREE",
                    "entitlements": [{"featureId": "r", "values": values}]}]
            })
        }
    };
    catalog.to_string().into_bytes()
}

fn long_lists(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog/long_list");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for shape in ["compatible_addons", "per_unit_prices", "enum_values"] {
        for n in [10_000_usize, 40_000] {
            let bytes = long_list(shape, n);
            Catalog::from_json(&bytes).expect("the generated catalog validates");
            group.bench_with_input(BenchmarkId::new(shape, n), &bytes, |b, bytes| {
                b.iter(|| Catalog::from_json(black_box(bytes)).expect("the catalog loads"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, load_and_validate, long_lists);
criterion_main!(benches);
