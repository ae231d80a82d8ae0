//! Replays the `engine_sequence` fuzz target's corpus and regressions on stable, through the
//! target's own input decoder and `exercise` (fuzz/common/, included below): operations
//! through the engine keep one live subscription of each kind per scope, never store a
//! negative invoice, leave every stored state unchanged when they fail, change no other
//! customer, replay idempotency keys, leave no charge without a saved decision and answer
//! the same on two engines.
//!
//! Regressions (fuzz/regressions/engine_sequence/), one line each naming the file and the bug
//! it caught:
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
#[path = "../../../fuzz/common/engine_sequence.rs"]
mod engine_sequence;
#[path = "../../../fuzz/common/replay.rs"]
mod replay;
#[path = "../../../fuzz/common/requests.rs"]
mod requests;

use engine_sequence::{Input, exercise};

const TARGET: &str = "engine_sequence";

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
