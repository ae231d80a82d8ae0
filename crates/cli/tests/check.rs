//! End-to-end tests of `tollgate check` (FORMAT.md §4): the built binary is run on catalog
//! files and its exit code and output are compared with snapshots.
//!
//! `tests/catalogs/` holds one small catalog per condition, named after it; each is
//! snapshotted under its own name (`snapshots/check__<name>.snap`). Other snapshots have an
//! underscore in their name, which catalog names never have. To accept new or changed
//! snapshots: `INSTA_UPDATE=always cargo test -p tollgate-cli --test check`, then read them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn catalogs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalogs")
}

fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// What one run of `tollgate check` produced.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The snapshot text: the exit code, then stdout.
    fn snapshot(&self) -> String {
        format!("exit: {}\n{}", self.code, self.stdout)
    }
}

/// Runs `tollgate check ARG` from `dir`.
fn check_in(dir: &Path, arg: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check")
        .arg(arg)
        .current_dir(dir)
        .output()
        .expect("the tollgate binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let Some(code) = output.status.code() else {
        panic!("tollgate check {arg:?} was killed by a signal; stderr:\n{stderr}");
    };
    Run {
        code,
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr,
    }
}

/// Runs `tollgate check` on a file of `tests/catalogs/`, by its relative name so that the
/// output does not depend on where the repository lives.
fn check_catalog(name: &str) -> Run {
    check_in(&catalogs_dir(), Path::new(name))
}

/// Runs `tollgate check` on `bytes` written to a scratch file.
fn check_bytes(name: &str, bytes: &[u8]) -> Run {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check-garbage");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, bytes).unwrap();
    check_in(&dir, Path::new(&format!("{name}.json")))
}

/// Every line of a failed check is `CODE at PATH: message`.
fn assert_problem_lines(what: &str, run: &Run) {
    assert!(!run.stdout.is_empty(), "{what}: no problem printed");
    for line in run.stdout.lines() {
        let (code, rest) = line
            .split_once(" at ")
            .unwrap_or_else(|| panic!("{what}: `{line}` is not `CODE at PATH: message`"));
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_alphabetic()),
            "{what}: `{line}` does not start with a code"
        );
        assert!(
            rest.contains(": "),
            "{what}: `{line}` is not `CODE at PATH: message`"
        );
    }
}

/// Garbage fails cleanly: exit 1, problem lines only, nothing on stderr (no panic).
fn assert_rejected(what: &str, run: &Run) {
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: tollgate panicked:\n{}",
        run.stderr
    );
    assert_eq!(run.stderr, "", "{what}: unexpected stderr");
    assert_eq!(run.code, 1, "{what}: exit code; stdout:\n{}", run.stdout);
    assert_problem_lines(what, run);
}

fn catalog_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(catalogs_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn every_catalog_file_matches_its_snapshot() {
    let names = catalog_files();
    assert!(!names.is_empty());
    for name in names {
        let stem = name
            .strip_suffix(".json")
            .unwrap_or_else(|| panic!("`{name}` is not a .json file"));
        assert!(
            stem.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "`{name}`: catalog names are kebab-case"
        );
        let run = check_catalog(&name);
        assert_eq!(run.stderr, "", "{name}: unexpected stderr");
        if stem.starts_with("valid-") {
            assert_eq!(run.code, 0, "{name} should be valid:\n{}", run.stdout);
            assert_eq!(run.stdout.lines().count(), 1, "{name}: one summary line");
        } else {
            assert_rejected(&name, &run);
        }
        insta::assert_snapshot!(stem, run.snapshot());
    }
}

#[test]
fn every_catalog_snapshot_has_its_catalog_file() {
    let names = catalog_files();
    for entry in std::fs::read_dir(snapshots_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = file
            .strip_prefix("check__")
            .and_then(|f| f.strip_suffix(".snap"))
        else {
            continue;
        };
        if !stem.contains('_') {
            assert!(
                names.contains(&format!("{stem}.json")),
                "snapshot `{file}` has no catalog `{stem}.json`: remove it"
            );
        }
    }
}

#[test]
fn the_reference_catalog_passes() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples");
    let run = check_in(&reference, Path::new("catalog.json"));
    assert_eq!(run.stderr, "");
    assert_eq!(run.code, 0, "{}", run.stdout);
    insta::assert_snapshot!("reference_catalog", run.snapshot());
}

#[test]
fn several_problems_are_all_reported_in_a_stable_order() {
    let first = check_catalog("several-problems.json");
    assert_eq!(first.code, 1);
    assert!(first.stdout.lines().count() >= 15, "{}", first.stdout);
    // Hash maps are seeded per process: several runs must agree line for line.
    for _ in 0..5 {
        assert_eq!(check_catalog("several-problems.json").stdout, first.stdout);
    }
}

#[test]
fn a_missing_file_fails_cleanly() {
    let run = check_catalog("does-not-exist.json");
    assert_rejected("missing file", &run);
    insta::assert_snapshot!("missing_file", run.snapshot());
}

#[test]
fn a_directory_fails_cleanly() {
    let run = check_in(&catalogs_dir(), Path::new("."));
    assert_rejected("directory", &run);
}

#[test]
fn garbage_never_panics() {
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage_empty", Vec::new()),
        ("garbage_whitespace", b" \n\t ".to_vec()),
        ("garbage_truncated", br#"{"features": [{"id": "sso", "ty"#.to_vec()),
        ("garbage_top_level_array", b"[]".to_vec()),
        ("garbage_top_level_null", b"null".to_vec()),
        ("garbage_top_level_number", b"1e400".to_vec()),
        ("garbage_nested_arrays", deep_arrays.clone().into_bytes()),
        (
            "garbage_nested_arrays_in_features",
            format!(r#"{{"features": {deep_arrays}}}"#).into_bytes(),
        ),
        (
            "garbage_nested_arrays_as_amount",
            price_with_amount(&deep_arrays).into_bytes(),
        ),
        ("garbage_nested_objects", deep_objects.clone().into_bytes()),
        (
            "garbage_nested_objects_as_amount",
            price_with_amount(&deep_objects).into_bytes(),
        ),
        ("garbage_nul_bytes", vec![0; 64]),
        ("garbage_byte_order_mark", b"\xef\xbb\xbf{}".to_vec()),
        ("garbage_lone_surrogate", br#"{"features": [{"id": "\ud800", "type": "BOOLEAN"}]}"#.to_vec()),
        ("garbage_huge_amount", price_with_amount("1e400").into_bytes()),
        (
            "garbage_huge_negative_amount",
            price_with_amount("-1e400").into_bytes(),
        ),
        (
            "garbage_huge_exponent_amount",
            price_with_amount("1e99999999999999999999999").into_bytes(),
        ),
        (
            "garbage_huge_integer_amount",
            price_with_amount(&"9".repeat(1000)).into_bytes(),
        ),
        (
            "garbage_huge_version",
            br#"{"products": [{"id": "app"}], "plans": [{"id": "free", "productId": "app", "pricingType": "FREE", "version": 1e400}]}"#.to_vec(),
        ),
        (
            "garbage_huge_upto",
            br#"{"features": [{"id": "seats", "type": "NUMBER"}], "products": [{"id": "app"}], "plans": [{"id": "pro", "productId": "app", "pricingType": "PAID", "prices": [{"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "seats", "currency": "USD", "tiersMode": "VOLUME", "tiers": [{"upTo": 99999999999999999999999, "unitPrice": 1}, {"unitPrice": 1}]}]}]}"#.to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        let run = check_bytes(name, bytes);
        assert_rejected(name, &run);
        insta::assert_snapshot!(*name, run.snapshot());
    }
    let huge = check_bytes("huge-amount", price_with_amount("1e400").as_bytes());
    assert!(
        huge.stdout
            .starts_with("AmountTooLarge at plans[0].prices[0].amount: "),
        "{}",
        huge.stdout
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for case in 0..64_usize {
        let len = 1_usize.wrapping_add(case.wrapping_mul(37) % 700);
        let bytes: Vec<u8> = (0..len).map(|_| next_byte(&mut state)).collect();
        assert_rejected(
            &format!("random bytes #{case}"),
            &check_bytes("random", &bytes),
        );
    }
}

#[test]
fn random_json_punctuation_never_panics() {
    const ALPHABET: &[u8] = br#"{}[]:,"0123456789.-+eE tfnul\ "#;
    let mut state: u64 = 0xD1B5_4A32_D192_ED03;
    for case in 0..64_usize {
        let len = 1_usize.wrapping_add(case.wrapping_mul(13) % 300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let i = usize::from(next_byte(&mut state)) % ALPHABET.len();
                ALPHABET[i]
            })
            .collect();
        let run = check_bytes("punctuation", &bytes);
        assert!(
            !run.stderr.contains("panicked"),
            "case {case}: {}",
            run.stderr
        );
        assert!(
            run.code == 0 || run.code == 1,
            "case {case}: exit {}",
            run.code
        );
    }
}

/// Every prefix of the reference catalog (cut at a stride) is rejected without a panic.
#[test]
fn truncated_reference_catalogs_never_panic() {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/catalog.json");
    let bytes = std::fs::read(reference).unwrap();
    let last = bytes.iter().rposition(|b| *b == b'}').unwrap();
    for cut in (0..last).step_by(211) {
        let run = check_bytes("truncated", &bytes[..cut]);
        assert_rejected(&format!("reference cut at byte {cut}"), &run);
    }
}

/// The reference catalog with one byte changed at a time, at a stride, never panics.
#[test]
fn mutated_reference_catalogs_never_panic() {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/catalog.json");
    let bytes = std::fs::read(reference).unwrap();
    for (n, at) in (0..bytes.len()).step_by(97).enumerate() {
        let mut mutated = bytes.clone();
        mutated[at] = [b'"', b'}', b'-', b'9', b'[', 0xff][n % 6];
        let run = check_bytes("mutated", &mutated);
        assert!(
            !run.stderr.contains("panicked"),
            "byte {at}: {}",
            run.stderr
        );
        assert!(
            run.code == 0 || run.code == 1,
            "byte {at}: exit {}",
            run.code
        );
        if run.code == 1 {
            assert_problem_lines(&format!("byte {at}"), &run);
        }
    }
}

/// A catalog whose only problem is the text of one price's amount.
fn price_with_amount(amount: &str) -> String {
    format!(
        r#"{{"products": [{{"id": "app"}}], "plans": [{{"id": "pro", "productId": "app", "pricingType": "PAID", "prices": [{{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": {amount}, "currency": "USD"}}]}}]}}"#
    )
}

/// xorshift64*: a fixed, dependency-free byte stream.
fn next_byte(state: &mut u64) -> u8 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()[7]
}
