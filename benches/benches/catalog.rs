//! Catalog loading: `Catalog::from_json` (parse and validate) on generated catalogs of 1,000,
//! 10,000 and 100,000 plans.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              catalog that fails to load must stop the benchmark"
)]

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
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

criterion_group!(benches, load_and_validate);
criterion_main!(benches);
