//! The laws of the proration fraction: see `common/proration_laws.rs` for the input and what
//! is checked.
//!
//! The input and `exercise` live in `common/`, which
//! `crates/core/tests/fuzz_proration_laws.rs` includes too, so the stable replay runs exactly
//! this code.
#![no_main]

#[macro_use]
#[path = "../common/decode.rs"]
mod decode;
#[path = "../common/proration_laws.rs"]
mod proration_laws;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use proration_laws::{Input, exercise};

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
