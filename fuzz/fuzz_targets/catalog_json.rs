//! Arbitrary bytes as a catalog: loading must never panic, and neither must pricing any plan
//! version of a catalog that loads.
//!
//! `exercise` is kept identical to the one in `crates/core/tests/fuzz_corpus.rs`, which
//! replays the corpus and the regressions on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tollgate_core::Catalog;
use tollgate_core::period::BillingPeriod;
use tollgate_core::pricing::{Configuration, recurring_amount};

fn exercise(bytes: &[u8]) {
    let Ok(catalog) = Catalog::from_json(bytes) else {
        return;
    };
    let periods = [
        BillingPeriod::Monthly,
        BillingPeriod::Quarterly,
        BillingPeriod::Annually,
    ];
    for plan in catalog.plans() {
        for period in periods.into_iter().map(Some).chain([None]) {
            let config = Configuration {
                plan: plan.id.clone(),
                plan_version: plan.version,
                billing_period: period,
                country: None,
                units: BTreeMap::new(),
                addons: Vec::new(),
            };
            let _ = recurring_amount(&catalog, &config);
        }
    }
}

fuzz_target!(|data: &[u8]| exercise(data));
