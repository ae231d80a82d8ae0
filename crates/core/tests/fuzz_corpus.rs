//! Replays the fuzz corpus and every committed fuzz regression on stable, through the same
//! `exercise` as the `catalog_json` fuzz target (fuzz/fuzz_targets/catalog_json.rs): loading
//! any of these inputs, and pricing every plan version of those that load, must not panic.
//!
//! Regressions (fuzz/regressions/catalog_json/), one line each naming the file and the bug
//! it caught:
//! - (none yet)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tollgate_core::Catalog;
use tollgate_core::period::BillingPeriod;
use tollgate_core::pricing::{Configuration, recurring_amount};

/// Identical to `exercise` in fuzz/fuzz_targets/catalog_json.rs.
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

/// The files of `fuzz/<kind>/catalog_json`, sorted; fails when the directory is missing or
/// empty.
fn files(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("catalog_json");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// The inputs among `files`: everything but the README.
fn inputs(files: &[PathBuf]) -> Vec<&Path> {
    files
        .iter()
        .map(PathBuf::as_path)
        .filter(|f| f.file_name().is_some_and(|n| n != "README.md"))
        .collect()
}

fn replay(inputs: &[&Path]) {
    for file in inputs {
        let bytes =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| exercise(&bytes));
        assert!(outcome.is_ok(), "{} panicked", file.display());
    }
}

#[test]
fn corpus_replays_without_panicking() {
    let files = files("corpus");
    let inputs = inputs(&files);
    assert!(inputs.len() >= 10, "the corpus lost its seeds");
    replay(&inputs);
}

#[test]
fn regressions_replay_without_panicking() {
    // The README keeps the directory in place while no crash has been found.
    replay(&inputs(&files("regressions")));
}

#[test]
fn corpus_holds_the_reference_catalog_and_it_loads() {
    let files = files("corpus");
    let reference = files
        .iter()
        .find(|f| f.ends_with("reference-catalog.json"))
        .expect("the corpus holds reference-catalog.json");
    let catalog = Catalog::from_json(&std::fs::read(reference).unwrap()).unwrap();
    assert!(!catalog.plans().is_empty());
}
