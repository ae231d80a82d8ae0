//! The clock through `tollgate run`: every `tests/scenarios/lifecycle-*.json` passes its
//! checks, and the transitions it prints carry what FORMAT.md §3 promises (`USAGE_RESET`
//! with its `featureId`, in JSON lines and in the table).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// `tollgate run ARGS…` from the scenarios directory: exit code and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("run")
        .args(args)
        .current_dir(scenarios_dir())
        .output()
        .expect("the tollgate binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("tollgate {args:?} was killed; stderr:\n{stderr}"));
    assert_ne!(code, 101, "tollgate {args:?} panicked:\n{stderr}");
    (code, String::from_utf8(output.stdout).unwrap())
}

#[test]
fn every_lifecycle_scenario_passes_its_checks() {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("lifecycle-") && name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no lifecycle scenario found");
    for name in &names {
        let (code, stdout) = run(&["--check", name]);
        assert_eq!(code, 0, "{name}:\n{stdout}");
    }
}

#[test]
fn a_usage_reset_is_printed_with_its_feature() {
    let (code, stdout) = run(&["lifecycle-usage-billing.json"]);
    assert_eq!(code, 0);
    let resets: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter_map(|line| line.get("event").cloned())
        .filter(|event| event["type"] == "USAGE_RESET")
        .collect();
    assert_eq!(
        resets,
        [
            json!({"type": "USAGE_RESET", "at": "2025-03-01T00:00:00Z", "customerId": "c1",
                "subscriptionId": "c1-basic", "featureId": "api-calls"})
        ]
    );
    let (code, table) = run(&["--format", "table", "lifecycle-usage-billing.json"]);
    assert_eq!(code, 0);
    let line = table
        .lines()
        .find(|line| line.contains("event USAGE_RESET"))
        .unwrap_or_else(|| panic!("no USAGE_RESET line in:\n{table}"));
    assert!(line.ends_with("c1 c1-basic api-calls"), "{line}");
}
