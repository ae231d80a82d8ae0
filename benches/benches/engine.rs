//! Provisions per second through the engine on the in-memory adapters: load, decide in
//! core, bill, save, for a batch of new customers on the example catalog.
#![allow(
    missing_docs,
    clippy::expect_used,
    reason = "a benchmark is a binary: criterion's macros generate undocumented items, and a \
              setup that fails must stop the benchmark"
)]

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pollster::block_on;
use serde_json::json;
use tollgate_adapters::{Engine, MemoryStorage, ScriptedBilling};
use tollgate_core::Catalog;
use tollgate_core::journey::ProvisionCustomerRequest;
use tollgate_core::provision::{ProvisionRequest, ProvisionStatus};
use tollgate_core::settings::Settings;

const EXAMPLE: &[u8] = include_bytes!("../../examples/catalog.json");
const CUSTOMERS: usize = 1_000;

type MemoryEngine = Engine<MemoryStorage, ScriptedBilling>;

fn now() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().expect("a valid instant")
}

/// An engine holding `CUSTOMERS` customers with a payment method and no subscription.
fn engine(catalog: &Catalog) -> MemoryEngine {
    let engine = Engine::new(
        catalog.clone(),
        Settings::default(),
        MemoryStorage::new(),
        ScriptedBilling::new(),
    );
    for i in 0..CUSTOMERS {
        let request: ProvisionCustomerRequest = serde_json::from_value(
            json!({"customerId": format!("c{i}"), "hasPaymentMethod": true}),
        )
        .expect("a valid request");
        block_on(engine.provision_customer(&request, now(), None))
            .expect("the customer is created");
    }
    engine
}

fn throughput(c: &mut Criterion) {
    let catalog = Catalog::from_json(EXAMPLE).expect("the example catalog loads");
    let requests: Vec<ProvisionRequest> = (0..CUSTOMERS)
        .map(|i| {
            serde_json::from_value(json!({"customerId": format!("c{i}"), "planId": "growth", "billingPeriod": "MONTHLY",
                "skipTrial": true, "billableFeatures": [{"featureId": "team-members", "quantity": 3}]}))
            .expect("a valid request")
        })
        .collect();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        u64::try_from(CUSTOMERS).expect("fits"),
    ));
    group.bench_function("provision_1000_customers_in_memory", |b| {
        b.iter_batched(
            || engine(&catalog),
            |engine| {
                for request in &requests {
                    let answer = block_on(engine.provision_subscription(request, now(), None))
                        .expect("provisions");
                    assert_eq!(answer.decision.status, ProvisionStatus::Success);
                }
                engine
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
