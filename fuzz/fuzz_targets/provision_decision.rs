//! A few provisioning, update, cancellation, estimate and clock requests decided in turn for
//! one customer: see `common/provision_decision.rs` for the input and what is checked.
//!
//! The input and `exercise` live in `common/`, which `crates/core/tests/fuzz_provision_decision.rs`
//! includes too, so the stable replay runs exactly this code.
#![no_main]

#[macro_use]
#[path = "../common/decode.rs"]
mod decode;
#[path = "../common/catalog.rs"]
mod catalog;
#[path = "../common/checks.rs"]
mod checks;
#[path = "../common/provision_decision.rs"]
mod provision_decision;
#[path = "../common/requests.rs"]
mod requests;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use provision_decision::{Input, exercise};

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
