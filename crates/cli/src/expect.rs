//! Matching a step's output against its `expect` (FORMAT.md §2): an object matches if every
//! key it lists matches; an array matches an array of the same length element by element;
//! any two numbers or numeric strings compare as decimals; an expected `null` matches an
//! absent key or a `null`.

use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// Where an output first differs from its expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The JSON path, like `result.subscriptions[0].status`.
    pub path: String,
    /// What was expected there.
    pub expected: Value,
    /// What was there; `None` when the key is absent.
    pub actual: Option<Value>,
}

/// The first difference between `expected` and `actual`, keys in sorted order, or `None`
/// when they match. `path` names where both are.
pub fn first_difference(
    expected: &Value,
    actual: Option<&Value>,
    path: &str,
) -> Option<Difference> {
    let differ = || {
        Some(Difference {
            path: path.to_owned(),
            expected: expected.clone(),
            actual: actual.cloned(),
        })
    };
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => None,
        (Value::Object(want), Some(Value::Object(have))) => want
            .iter()
            .find_map(|(key, value)| first_difference(value, have.get(key), &join(path, key))),
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| first_difference(w, Some(h), &format!("{path}[{i}]"))),
        (want, Some(have)) if scalar_matches(want, have) => None,
        _ => differ(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn scalar_matches(expected: &Value, actual: &Value) -> bool {
    match (decimal(expected), decimal(actual)) {
        (Some(want), Some(have)) => want == have,
        _ => expected == actual,
    }
}

/// The decimal a number or a numeric string holds.
fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(expected: Value, actual: Value) -> Option<String> {
        first_difference(&expected, Some(&actual), "result").map(|d| d.path)
    }

    #[test]
    fn objects_match_on_the_keys_they_list() {
        assert_eq!(diff(json!({"a": 1}), json!({"a": 1, "b": 2})), None);
        assert_eq!(
            diff(json!({"a": 1, "c": 3}), json!({"a": 1})),
            Some("result.c".to_owned())
        );
    }

    #[test]
    fn arrays_match_element_by_element_with_the_same_length() {
        assert_eq!(
            diff(json!([{"id": "a"}]), json!([{"id": "a", "x": 1}])),
            None
        );
        assert_eq!(diff(json!([]), json!([1])), Some("result".to_owned()));
        assert_eq!(
            diff(
                json!([{"id": "a"}, {"id": "b"}]),
                json!([{"id": "a"}, {"id": "c"}])
            ),
            Some("result[1].id".to_owned())
        );
    }

    #[test]
    fn numbers_and_numeric_strings_compare_as_decimals() {
        assert_eq!(diff(json!("10"), json!("10.00")), None);
        assert_eq!(diff(json!(20), json!("20")), None);
        assert_eq!(diff(json!("1e3"), json!(1000)), None);
        assert_eq!(
            diff(json!("10.01"), json!("10.00")),
            Some("result".to_owned())
        );
        assert_eq!(diff(json!("ACTIVE"), json!("ACTIVE")), None);
        assert_eq!(diff(json!(true), json!("true")), Some("result".to_owned()));
    }

    #[test]
    fn expected_null_matches_absent_or_null() {
        assert_eq!(diff(json!({"x": null}), json!({})), None);
        assert_eq!(diff(json!({"x": null}), json!({"x": null})), None);
        assert_eq!(
            diff(json!({"x": null}), json!({"x": 1})),
            Some("result.x".to_owned())
        );
    }
}
