//! What the integration tests share.

use tollgate_core::Catalog;

/// The reference catalog, `tests/data/reference-catalog.json`.
///
/// # Panics
/// When the file does not load: every test on it would be meaningless.
#[allow(clippy::unwrap_used)]
pub fn reference_catalog() -> Catalog {
    Catalog::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/reference-catalog.json"
        ))
        .unwrap(),
    )
    .unwrap()
}
