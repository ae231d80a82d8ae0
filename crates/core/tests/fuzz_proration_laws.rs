//! Replays the `proration_laws` fuzz target's corpus and regressions on stable, through the
//! target's own input decoder and `exercise` (fuzz/common/, included below): the proration
//! fraction stays in `[0, 1]`, is 1 at the start, 0 at the end, never grows, and a credit
//! never exceeds what was charged.
//!
//! Also checks the decoder against bytes laid out by hand, since every replay depends on it
//! reading as `arbitrary` does (the fuzz targets assert the two agree on every input).
//!
//! Regressions (fuzz/regressions/proration_laws/), one line each naming the file and the bug
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
#[path = "../../../fuzz/common/proration_laws.rs"]
mod proration_laws;
#[path = "../../../fuzz/common/replay.rs"]
mod replay;

use proration_laws::{At, Input, Span, exercise};

const TARGET: &str = "proration_laws";

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

#[test]
fn the_decoder_reads_as_arbitrary_derives() {
    let mut bytes = vec![7]; // policy: one byte
    bytes.extend(300u16.to_le_bytes()); // zone: little-endian
    bytes.extend((-5i64).to_le_bytes()); // from
    // Span has 4 variants: `u32::MAX` picks the last, (2³² − 1) × 4 >> 32 = 3.
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.push(9); // Months(9)
    bytes.extend(0u32.to_le_bytes()); // t1: the first of 5 variants, Start
    bytes.extend((u32::MAX / 5 * 2 + 1).to_le_bytes()); // t2: the third, Within
    bytes.extend(513u16.to_le_bytes());
    bytes.push(3); // cancellation: the low bit
    // Then the data runs out: the rest reads as zeros.
    let input: Input = decode::decode(&bytes);
    assert_eq!(
        input,
        Input {
            policy: 7,
            zone: 300,
            from: -5,
            span: Span::Months(9),
            t1: At::Start,
            t2: At::Within(513),
            cancellation: true,
            charged: 0,
            scale: 0,
            currency: 0,
            half_even: false,
            reversed: false,
        }
    );
}
