//! Replays a fuzz target's committed corpus and regressions on stable, for the workspace's
//! tests (see `decode.rs` for why the inputs decode without `arbitrary`).

use crate::decode::{Decode, decode};
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The input files of `fuzz/<kind>/<target>` (everything but its README), sorted; fails when
/// the directory is missing.
pub fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| path.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Decodes each file as the fuzz target does and runs `exercise` on it; fails naming every
/// file that panicked, with its decoded input.
pub fn replay<T: Decode + Debug>(files: &[PathBuf], exercise: fn(&T)) {
    let mut failures = Vec::new();
    for file in files {
        let bytes =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let input: T = decode(&bytes);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| exercise(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}\ninput: {input:#?}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
