//! Operations on two customers through `tollgate_adapters::Engine` with in-memory storage and
//! scripted billing: see `common/engine_sequence.rs` for the input and what is checked.
//!
//! The input and `exercise` live in `common/`, which
//! `crates/adapters/tests/fuzz_engine_sequence.rs` includes too, so the stable replay runs
//! exactly this code.
#![no_main]

#[macro_use]
#[path = "../common/decode.rs"]
mod decode;
#[path = "../common/catalog.rs"]
mod catalog;
#[path = "../common/checks.rs"]
mod checks;
#[path = "../common/engine_sequence.rs"]
mod engine_sequence;
#[path = "../common/requests.rs"]
mod requests;

use arbitrary::{Arbitrary, Unstructured};
use engine_sequence::{Input, exercise};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input: Input = decode::decode(data);
    // The stable replay decodes with `decode`: it must read what `arbitrary` reads.
    let derived = Input::arbitrary(&mut Unstructured::new(data));
    assert_eq!(
        derived.ok().as_ref(),
        Some(&input),
        "`decode` and `arbitrary` disagree"
    );
    exercise(&input);
});
