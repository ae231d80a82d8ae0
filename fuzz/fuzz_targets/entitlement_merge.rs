//! The laws of the generous entitlement merge: see `common/entitlement_merge.rs` for the
//! input and what is checked.
//!
//! The input and `exercise` live in `common/`, which
//! `crates/core/tests/fuzz_entitlement_merge.rs` includes too, so the stable replay runs
//! exactly this code.
#![no_main]

#[macro_use]
#[path = "../common/decode.rs"]
mod decode;
#[path = "../common/entitlement_merge.rs"]
mod entitlement_merge;

use arbitrary::{Arbitrary, Unstructured};
use entitlement_merge::{Input, exercise};
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
