//! Replays the `provision_decision` fuzz target's corpus and regressions on stable, through
//! the target's own input decoder and `exercise` (fuzz/common/, included below): decisions
//! never panic, are deterministic, fail with codes, keep one live subscription of each kind
//! per scope and never issue a negative invoice or estimate.
//!
//! Regressions (fuzz/regressions/provision_decision/), one line each naming the file and the
//! bug it caught:
//! - (none yet)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    unexpected_cfgs
)]

#[macro_use]
#[path = "../../../fuzz/common/decode.rs"]
mod decode;
#[path = "../../../fuzz/common/catalog.rs"]
mod catalog;
#[path = "../../../fuzz/common/checks.rs"]
mod checks;
#[path = "../../../fuzz/common/provision_decision.rs"]
mod provision_decision;
#[path = "../../../fuzz/common/replay.rs"]
mod replay;
#[path = "../../../fuzz/common/requests.rs"]
mod requests;

use provision_decision::{Input, exercise};

const TARGET: &str = "provision_decision";

#[test]
fn corpus_replays() {
    let files = replay::inputs("corpus", TARGET);
    assert!(files.len() >= 3, "the corpus lost its seeds");
    replay::replay::<Input>(&files, exercise);
}

#[test]
fn regressions_replay() {
    replay::replay::<Input>(&replay::inputs("regressions", TARGET), exercise);
}
