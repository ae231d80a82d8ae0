//! End-to-end tests of `tollgate run` (FORMAT.md §2–3): the built binary plays the scenarios
//! of `tests/scenarios/` and the project's quickstart. The table view is snapshotted
//! (`snapshots/run__*.snap`); to accept a changed one:
//! `INSTA_UPDATE=always cargo test -p tollgate-cli --test run`, then read it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// What one run of `tollgate` produced.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

/// Runs `tollgate ARGS…` from `dir`.
fn tollgate_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the tollgate binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let Some(code) = output.status.code() else {
        panic!("tollgate {args:?} was killed by a signal; stderr:\n{stderr}");
    };
    assert_ne!(code, 101, "tollgate {args:?} panicked:\n{stderr}");
    Run {
        code,
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr,
    }
}

/// Runs `tollgate run ARGS…` on a file of `tests/scenarios/`.
fn run(args: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    tollgate_in(&scenarios_dir(), &all)
}

/// Runs `tollgate run ARGS… FILE` on `bytes` written to a scratch file beside a copy of the
/// scenarios' catalog. Each name gets its own directory: tests run in parallel, and one
/// test's copy of the catalog must never be truncated while another test reads it.
fn run_bytes(name: &str, bytes: &[u8], args: &[&str]) -> Run {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-scenarios")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        scenarios_dir().join("catalog.json"),
        dir.join("catalog.json"),
    )
    .unwrap();
    let file = format!("{name}.json");
    std::fs::write(dir.join(&file), bytes).unwrap();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push(&file);
    tollgate_in(&dir, &all)
}

#[test]
fn json_lines_follow_the_format() {
    let run = run(&["timeline.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let lines = run.lines();
    let mut next_step = 0;
    let mut events_before: Vec<(u64, Vec<String>)> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for (raw, line) in run.stdout.lines().zip(&lines) {
        if let Some(event) = line.get("event") {
            pending.push(event["type"].as_str().unwrap().to_owned());
            assert!(event["at"].is_string() && event["subscriptionId"].is_string());
            continue;
        }
        // Keys in FORMAT.md's order: step, at, op, then result or error.
        let head = format!(
            "{{\"step\":{next_step},\"at\":\"{}\",\"op\":\"{}\",",
            line["at"].as_str().unwrap(),
            line["op"].as_str().unwrap()
        );
        assert!(raw.starts_with(&head), "{raw}");
        let object = line.as_object().unwrap();
        assert_eq!(object.len(), 4, "{raw}");
        assert!(object.contains_key("result") ^ object.contains_key("error"));
        if let Some(error) = line.get("error") {
            assert!(error["code"].is_string() && error["message"].is_string());
        }
        if !pending.is_empty() {
            events_before.push((next_step, std::mem::take(&mut pending)));
        }
        next_step += 1;
    }
    assert_eq!(next_step, 11);
    assert_eq!(
        events_before,
        [
            (5, vec!["TRIAL_CONVERTED".into(), "INVOICE_ISSUED".into()]),
            (
                8,
                vec![
                    "SUBSCRIPTION_RENEWED".into(),
                    "INVOICE_ISSUED".into(),
                    "SUBSCRIPTION_RENEWED".into(),
                    "INVOICE_ISSUED".into()
                ]
            ),
        ]
    );
    // Transitions across customers come in time order: c2 renews on 04-02, c1 on 04-08.
    let renewals: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.get("event"))
        .filter(|e| e["type"] == "SUBSCRIPTION_RENEWED")
        .map(|e| e["customerId"].as_str().unwrap())
        .collect();
    assert_eq!(renewals, ["c2", "c1"]);
    let refused = &lines
        .iter()
        .find(|l| l["op"] == "updateSubscription")
        .unwrap()["error"];
    assert_eq!(refused["code"], "InvalidArgumentError");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("exactly one per-unit price")
    );
}

/// Scenarios written to fail `--check`, each tested for how it fails.
const FAILING: [&str; 3] = [
    "mismatch.json",
    "error-instead-of-result.json",
    "invalid-catalog.json",
];

#[test]
fn check_passes_when_every_expectation_matches() {
    let mut passed = Vec::new();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let text = std::fs::read_to_string(scenarios_dir().join(&name)).unwrap_or_default();
        let is_scenario =
            serde_json::from_str::<Value>(&text).is_ok_and(|v| v.get("steps").is_some());
        if !name.ends_with(".json") || !is_scenario || FAILING.contains(&name.as_str()) {
            continue;
        }
        let run = run(&["--check", &name]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(run.stderr, "", "{name}");
        passed.push(name);
    }
    passed.sort();
    for expected in ["inline-catalog.json", "timeline.json", "updates.json"] {
        assert!(
            passed.iter().any(|p| p == expected),
            "{expected} was not run"
        );
    }
}

#[test]
fn check_stops_at_the_first_mismatch_with_its_path() {
    let run = run(&["--check", "mismatch.json"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "step 1 (`getSubscriptions` at 2025-03-01T00:00:00Z) does not match its expectation\n  \
         at:       result.subscriptions[0].status\n  \
         expected: \"CANCELED\"\n  \
         actual:   \"ACTIVE\"\n"
    );
    // The mismatching step is printed; the step after it never runs.
    assert_eq!(run.lines().len(), 2);
}

#[test]
fn an_error_where_a_result_was_expected_shows_the_error() {
    let run = run(&["--check", "error-instead-of-result.json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("  at:       result\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("actual:   {\"error\":{\"code\":\"PaymentMethodNotFound\""),
        "{}",
        run.stderr
    );
}

#[test]
fn without_check_expectations_never_fail_the_run() {
    let run = run(&["mismatch.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines().len(), 3);
}

#[test]
fn the_table_format_prints_a_readable_timeline() {
    let table = run(&["--format", "table", "--check", "timeline.json"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    insta::assert_snapshot!("table_timeline", table.stdout);
    let same = run(&["--format=table", "--check", "timeline.json"]);
    assert_eq!(same.stdout, table.stdout);
}

#[test]
fn output_is_deterministic() {
    let first = run(&["timeline.json"]);
    let second = run(&["timeline.json"]);
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn a_catalog_that_does_not_load_is_catalog_invalid_with_its_problems() {
    let run = run(&["invalid-catalog.json"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "CatalogInvalid: the inline catalog does not load: UnknownReference at plans[0].productId: product `nowhere` does not exist\n"
    );
    let missing = run_bytes(
        "missing-catalog",
        br#"{"catalog": "nowhere.json", "steps": []}"#,
        &[],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .starts_with("CatalogInvalid: cannot read catalog `nowhere.json`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn an_inline_catalog_refuses_a_duplicate_key_as_a_catalog_file_does() {
    let catalog = r#"{"products": [{"id": "app"}],
  "plans": [{"id": "free", "productId": "app", "pricingType": "FREE", "pricingType": "PAID"}]}"#;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-scenarios")
        .join("duplicate-key-file");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("duplicate.json"), catalog).unwrap();
    let from_file = run_bytes(
        "duplicate-key-file",
        br#"{"catalog": "duplicate.json", "steps": []}"#,
        &[],
    );
    let scenario = format!("{{\n  \"catalog\": {catalog},\n  \"steps\": []\n}}");
    let inline = run_bytes("duplicate-key-inline", scenario.as_bytes(), &[]);
    for (run, name, line) in [
        (&from_file, "catalog `duplicate.json`", 2),
        // Lines and columns are the scenario file's.
        (&inline, "the inline catalog", 3),
    ] {
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert_eq!(
            run.stderr,
            format!(
                "CatalogInvalid: {name} does not load: BadUserInput at plans[0]: duplicate field `pricingType` at line {line} column 83\n"
            )
        );
    }
}

#[test]
fn malformed_scenarios_exit_1_with_bad_user_input() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("not-json", b"{\"catalog\": ", "BadUserInput: scenario `not-json.json`"),
        ("not-utf8", b"\xff\xfe", "BadUserInput: scenario `not-utf8.json`"),
        ("trailing", b"{\"catalog\": {}} {}", "BadUserInput: scenario `trailing.json`"),
        ("no-catalog", b"{\"steps\": []}", "missing field `catalog`"),
        (
            "unknown-key",
            br#"{"catalog": {}, "stpes": []}"#,
            "unknown field `stpes`",
        ),
        (
            "steps-type",
            br#"{"catalog": {}, "steps": 3}"#,
            "BadUserInput: scenario `steps-type.json` at steps",
        ),
        (
            "bad-instant",
            br#"{"catalog": {}, "steps": [{"at": "yesterday", "op": "advance"}]}"#,
            "at steps[0].at",
        ),
        (
            "backwards",
            br#"{"catalog": {}, "steps": [{"at": "2025-02-01T00:00:00Z", "op": "advance"},
                                          {"at": "2025-01-01T00:00:00Z", "op": "advance"}]}"#,
            "BadUserInput: steps[1].at: `2025-01-01T00:00:00Z` is before the previous step's `2025-02-01T00:00:00Z`",
        ),
        (
            "at-past-9999",
            br#"{"catalog": {}, "steps": [{"at": "+10000-01-01T00:00:00Z", "op": "advance"}]}"#,
            "InvalidArgumentError: `steps[0].at` `+10000-01-01T00:00:00Z` is out of range",
        ),
        (
            "unknown-op",
            br#"{"catalog": {}, "steps": [{"at": "2025-01-01T00:00:00Z", "op": "cancelEverything"}]}"#,
            "BadUserInput: steps[0].op: unknown operation `cancelEverything`",
        ),
        (
            "two-expectations",
            br#"{"catalog": {}, "steps": [{"at": "2025-01-01T00:00:00Z", "op": "advance",
                                           "expect": {"result": {}, "error": {}}}]}"#,
            "BadUserInput: steps[0].expect",
        ),
        (
            "customer-with-subscription",
            br#"{"catalog": {}, "customers": [{"customerId": "c1", "subscriptionParams": {"planId": "free"}}]}"#,
            "BadUserInput: customers[0].subscriptionParams",
        ),
        (
            "bad-proration",
            br#"{"catalog": {}, "settings": {"proration": "DAILY"}}"#,
            "at settings.proration",
        ),
        (
            "bad-fallback",
            br#"{"catalog": {}, "settings": {"fallbackEntitlements": [{"featureId": "ghost", "granted": true}]}}"#,
            "FeatureNotFound: settings.fallbackEntitlements",
        ),
        (
            "bad-customer",
            br#"{"catalog": {}, "customers": [{"customerId": "c1", "timezone": "Mars/Olympus"}]}"#,
            "customers[0]: InvalidArgumentError",
        ),
    ];
    for (name, bytes, message) in cases {
        let run = run_bytes(name, bytes, &["--check"]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{name}: {}", run.stderr);
    }
    let missing = run(&["no-such-scenario.json"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .starts_with("BadUserInput: cannot read `no-such-scenario.json`")
    );
}

/// Step inputs and expectations are read as JSON values, which keep the last of two values
/// of a key: the scenario refuses a key written twice anywhere, naming the key and where.
#[test]
fn a_key_written_twice_anywhere_in_a_scenario_is_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "twice-input",
            r#"{"at": "2025-01-01T00:00:00Z", "op": "getCustomer",
                "input": {"customerId": "c1", "customerId": "c2"}}"#,
            "steps[0].input: duplicate key `customerId` at line 3",
        ),
        (
            "twice-metadata",
            r#"{"at": "2025-01-01T00:00:00Z", "op": "provisionSubscription",
                "input": {"customerId": "c1", "planId": "team",
                          "metadata": {"crm": "a", "crm": "b"}}}"#,
            "steps[0].input.metadata: duplicate key `crm` at line 4",
        ),
        (
            "twice-params",
            r#"{"at": "2025-01-01T00:00:00Z", "op": "provisionCustomer",
                "input": {"customerId": "c2",
                          "subscriptionParams": {"planId": "free", "planId": "team"}}}"#,
            "steps[0].input.subscriptionParams: duplicate key `planId` at line 4",
        ),
        (
            "twice-in-a-list",
            r#"{"at": "2025-01-01T00:00:00Z", "op": "provisionSubscription",
                "input": {"customerId": "c1", "planId": "team",
                          "billableFeatures": [{"featureId": "seats", "quantity": 2, "quantity": 3}]}}"#,
            "steps[0].input.billableFeatures[0]: duplicate key `quantity` at line 4",
        ),
        (
            "twice-expect",
            r#"{"at": "2025-01-01T00:00:00Z", "op": "getCustomer", "input": {"customerId": "c1"},
                "expect": {"result": {"customer": {"id": "c1", "id": "c2"}}}}"#,
            "steps[0].expect.result.customer: duplicate key `id` at line 3",
        ),
    ];
    for (name, step, message) in cases {
        let scenario = format!(
            r#"{{"catalog": "catalog.json", "customers": [{{"customerId": "c1"}}],
      "steps": [{step}]}}"#
        );
        let run = run_bytes(name, scenario.as_bytes(), &["--check"]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(
            run.stderr.starts_with(&format!(
                "BadUserInput: scenario `{name}.json` at {message}"
            )),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
    }
    let customers = br#"{"catalog": "catalog.json",
      "customers": [{"customerId": "c1", "subscriptionParams": {"planId": "a", "planId": "b"}}]}"#;
    let run = run_bytes("twice-customer", customers, &["--check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("customers[0].subscriptionParams: duplicate key `planId`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_step_input_that_does_not_parse_is_that_step_s_bad_user_input() {
    let scenario = br#"{"catalog": "catalog.json",
      "customers": [{"customerId": "c1", "hasPaymentMethod": true}],
      "steps": [
        {"at": "2025-01-01T00:00:00Z", "op": "provisionSubscription",
         "input": {"customerId": "c1", "planId": "team", "billableFeatures": [{"featureId": "seats", "quantity": "many"}]},
         "expect": {"error": {"code": "BadUserInput"}}},
        {"at": "2025-01-01T00:00:00Z", "op": "getCustomer",
         "expect": {"error": {"code": "BadUserInput"}}},
        {"at": "2025-01-01T00:00:00Z", "op": "advance", "input": {"to": "2025-02-01T00:00:00Z"},
         "expect": {"error": {"code": "BadUserInput"}}},
        {"at": "2025-01-01T00:00:00Z", "op": "getSubscriptions", "input": {"customerId": "c1"},
         "expect": {"result": {"subscriptions": []}}}
      ]}"#;
    let run = run_bytes("step-input", scenario, &["--check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(
        lines[0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input.billableFeatures[0].quantity: "),
        "{}",
        lines[0]
    );
}

#[test]
fn garbage_never_panics() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{\"catalog\": 1e999}".to_vec(),
        deep.into_bytes(),
        br#"{"catalog": "catalog.json", "steps": [{"at": "2025-01-01T00:00:00Z", "op": "provisionSubscription",
            "input": {"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY", "unitQuantity": 99999999999999999999}}]}"#.to_vec(),
        br#"{"catalog": "catalog.json", "customers": [{"customerId": "c1", "taxPercentage": "1e30"}]}"#.to_vec(),
        br#"{"catalog": "catalog.json", "steps": [{"at": "+262142-12-31T23:59:59Z", "op": "advance"}]}"#.to_vec(),
        br#"{"catalog": "catalog.json", "customers": [{"customerId": "c1", "hasPaymentMethod": true}],
            "steps": [{"at": "2025-01-01T00:00:00Z", "op": "provisionSubscription",
                       "input": {"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY"}},
                      {"at": "2100-12-31T23:59:59Z", "op": "getInvoices", "input": {"customerId": "c1"}}]}"#.to_vec(),
    ];
    for (i, bytes) in inputs.iter().enumerate() {
        for format in ["json", "table"] {
            let run = run_bytes(
                &format!("garbage-{i}"),
                bytes,
                &["--check", "--format", format],
            );
            assert!(run.code == 0 || run.code == 1, "input {i}: {}", run.stderr);
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["run"][..],
        &["run", "--format", "xml", "timeline.json"],
        &["run", "a.json", "b.json"],
        &["run", "--verbose", "timeline.json"],
    ] {
        let run = tollgate_in(&scenarios_dir(), args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.starts_with("usage:"), "{args:?}");
    }
}

#[test]
fn the_quickstart_passes_its_checks() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let run = tollgate_in(&examples, &["run", "--check", "quickstart.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
}
