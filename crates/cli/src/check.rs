//! `tollgate check CATALOG.json` (FORMAT.md §4).

use std::io::Write;
use tollgate_core::catalog::{CatalogError, Problem};
use tollgate_core::{Catalog, ErrorCode};

/// Checks the catalog at `path` and writes the summary or the problems to `out`.
/// Returns the process exit code: 0 for a valid catalog, 1 otherwise.
pub fn run(path: &str, out: &mut impl Write) -> u8 {
    let outcome = match std::fs::read(path) {
        Ok(bytes) => check_bytes(&bytes),
        Err(e) => Err(vec![format!(
            "{} at $: cannot read `{path}`: {e}",
            ErrorCode::BadUserInput
        )]),
    };
    let (lines, code) = match outcome {
        Ok(summary) => (vec![summary], 0),
        Err(lines) => (lines, 1),
    };
    for line in lines {
        // A closed pipe is not worth a panic; the exit code still tells.
        let _ = writeln!(out, "{line}");
    }
    code
}

/// The summary line of a valid catalog, or one `CODE at PATH: message` line per problem.
///
/// # Errors
/// The problem lines of an invalid catalog.
pub fn check_bytes(bytes: &[u8]) -> Result<String, Vec<String>> {
    Catalog::from_json(bytes)
        .map(|catalog| summary(&catalog))
        .map_err(|e: CatalogError| e.problems().iter().map(Problem::to_string).collect())
}

fn summary(catalog: &Catalog) -> String {
    let plan_ids: std::collections::HashSet<&str> =
        catalog.plans().iter().map(|p| p.id.as_str()).collect();
    let promotion_codes: usize = catalog
        .coupons()
        .iter()
        .map(|c| c.promotion_codes.len())
        .sum();
    format!(
        "ok: {} features, {} products, {} plans ({} versions), {} add-ons, {} coupons, {} promotion codes",
        catalog.features().len(),
        catalog.products().len(),
        plan_ids.len(),
        catalog.plans().len(),
        catalog.addons().len(),
        catalog.coupons().len(),
        promotion_codes,
    )
}
