//! Replays the `entitlement_merge` fuzz target's corpus and regressions on stable, through
//! the target's own input decoder and `exercise` (fuzz/common/, included below): the merge
//! is commutative, associative and idempotent, adding sources never lowers access, and
//! ending a subscription answers exactly as never having had it.
//!
//! Regressions (fuzz/regressions/entitlement_merge/), one line each naming the file and the
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
#[path = "../../../fuzz/common/entitlement_merge.rs"]
mod entitlement_merge;
#[path = "../../../fuzz/common/replay.rs"]
mod replay;

use entitlement_merge::{Input, exercise};

const TARGET: &str = "entitlement_merge";

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
