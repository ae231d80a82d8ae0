//! The one rule for what an entitlement's fields grant for a feature (SPEC.md §2, FORMAT.md
//! §1): which fields fit which kind of feature, what each kind requires, and the value they
//! make. The catalog loader reports every problem at its JSON path; fallback entitlements
//! and promotional grants report the first.

use super::{EntitlementValue, Meter, Reset, ResetAnchor, ResetPeriod, UsageLimit};
use rustc_hash::FxHashSet;

/// The kind of the entitled feature, as the rule needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    Boolean,
    Number,
    Metered(Meter),
    Enum(&'a [String]),
}

/// An entitlement's fields as written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields<'a> {
    pub granted: Option<bool>,
    pub value: Option<i64>,
    pub usage_limit: Option<i64>,
    pub has_unlimited_usage: Option<bool>,
    pub has_soft_limit: Option<bool>,
    pub reset_period: Option<ResetPeriod>,
    pub reset_anchor: Option<ResetAnchor>,
    pub values: Option<&'a [String]>,
}

/// A problem with one field (and, for `values`, one element of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldProblem {
    pub key: &'static str,
    pub index: Option<usize>,
    pub message: String,
    /// The field does not belong to this kind of feature; such problems are found first,
    /// and the value is not looked at while any exists.
    pub misplaced: bool,
}

fn problem(key: &'static str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        key,
        index: None,
        message: message.into(),
        misplaced: false,
    }
}

/// What `fields` grant for feature `feature_id` of `kind`, or every problem found.
pub(crate) fn entitlement_value(
    feature_id: &str,
    kind: Kind<'_>,
    fields: &Fields<'_>,
) -> Result<EntitlementValue, Vec<FieldProblem>> {
    let present = [
        ("granted", fields.granted.is_some()),
        ("value", fields.value.is_some()),
        ("usageLimit", fields.usage_limit.is_some()),
        ("hasUnlimitedUsage", fields.has_unlimited_usage.is_some()),
        ("hasSoftLimit", fields.has_soft_limit.is_some()),
        ("resetPeriod", fields.reset_period.is_some()),
        ("resetAnchor", fields.reset_anchor.is_some()),
        ("values", fields.values.is_some()),
    ];
    let (kind_name, allowed): (&str, &[&str]) = match kind {
        Kind::Boolean => ("BOOLEAN", &["granted"]),
        Kind::Number => ("NUMBER", &["value"]),
        Kind::Metered(_) => (
            "metered",
            &[
                "usageLimit",
                "hasUnlimitedUsage",
                "hasSoftLimit",
                "resetPeriod",
                "resetAnchor",
            ],
        ),
        Kind::Enum(_) => ("ENUM", &["values"]),
    };
    let misplaced: Vec<FieldProblem> = present
        .iter()
        .filter(|(key, p)| *p && !allowed.contains(key))
        .map(|(key, _)| FieldProblem {
            misplaced: true,
            ..problem(
                key,
                format!("`{key}` does not apply to {kind_name} feature `{feature_id}`"),
            )
        })
        .collect();
    if !misplaced.is_empty() {
        return Err(misplaced);
    }
    match kind {
        Kind::Boolean => match fields.granted {
            Some(granted) => Ok(EntitlementValue::Boolean { granted }),
            None => Err(vec![problem(
                "granted",
                "a BOOLEAN entitlement needs `granted`",
            )]),
        },
        Kind::Number => match fields.value.map(u64::try_from) {
            Some(Ok(value)) => Ok(EntitlementValue::Numeric { value }),
            Some(Err(_)) => Err(vec![problem("value", "`value` is below 0")]),
            None => Err(vec![problem("value", "a NUMBER entitlement needs `value`")]),
        },
        Kind::Metered(meter) => metered(feature_id, meter, fields),
        Kind::Enum(declared) => {
            let granted = fields.values.unwrap_or_default();
            if granted.is_empty() {
                return Err(vec![problem(
                    "values",
                    "an ENUM entitlement needs at least one value",
                )]);
            }
            // Sets keep the check linear in the two lists.
            let known: FxHashSet<&str> = declared.iter().map(String::as_str).collect();
            let undeclared: Vec<FieldProblem> = granted
                .iter()
                .enumerate()
                .filter(|(_, v)| !known.contains(v.as_str()))
                .map(|(j, v)| FieldProblem {
                    index: Some(j),
                    ..problem(
                        "values",
                        format!("value `{v}` is not declared by feature `{feature_id}`"),
                    )
                })
                .collect();
            if !undeclared.is_empty() {
                return Err(undeclared);
            }
            let granted: FxHashSet<&str> = granted.iter().map(String::as_str).collect();
            let values = declared
                .iter()
                .filter(|v| granted.contains(v.as_str()))
                .cloned()
                .collect();
            Ok(EntitlementValue::Enum { values })
        }
    }
}

fn metered(
    feature_id: &str,
    meter: Meter,
    fields: &Fields<'_>,
) -> Result<EntitlementValue, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let limit = match (fields.usage_limit, fields.has_unlimited_usage) {
        (Some(_), Some(true)) => {
            problems.push(problem(
                "usageLimit",
                "an entitlement is either limited (`usageLimit`) or unlimited, not both",
            ));
            None
        }
        (None, Some(true)) => Some(UsageLimit::Unlimited),
        (Some(limit), _) => match u64::try_from(limit) {
            Ok(limit) => Some(UsageLimit::Limited(limit)),
            Err(_) => {
                problems.push(problem("usageLimit", "`usageLimit` is below 0"));
                None
            }
        },
        (None, _) => {
            problems.push(problem(
                "usageLimit",
                "a metered entitlement needs `usageLimit` or `hasUnlimitedUsage: true`",
            ));
            None
        }
    };
    let reset = match (fields.reset_period, fields.reset_anchor) {
        (Some(_), _) if meter == Meter::Fluctuating => {
            problems.push(problem(
                "resetPeriod",
                format!("feature `{feature_id}` has a FLUCTUATING meter, whose usage never resets"),
            ));
            None
        }
        (Some(period), anchor) => {
            let anchor = anchor.unwrap_or_default();
            match calendar_period(anchor) {
                Some((needed, message)) if needed != period => {
                    problems.push(problem("resetAnchor", message));
                    None
                }
                Some(_) | None => Some(Some(Reset { period, anchor })),
            }
        }
        (None, Some(_)) => {
            problems.push(problem("resetAnchor", "`resetAnchor` needs `resetPeriod`"));
            None
        }
        (None, None) => Some(None),
    };
    match (limit, reset) {
        (Some(limit), Some(reset)) if problems.is_empty() => Ok(EntitlementValue::Metered {
            limit,
            soft_limit: fields.has_soft_limit.unwrap_or(false),
            reset,
        }),
        _ => Err(problems),
    }
}

/// The reset period a calendar anchor is defined for (FORMAT.md §6: `START_OF_THE_MONTH`
/// windows are `[1st, next 1st)`; a weekday's run from that weekday to the next), with
/// the problem of pairing it with another; `None` for `SUBSCRIPTION_START`, which anchors
/// any period. The documents define no other pairing, and the windows one would make miss
/// the day the anchor names (weeks from the 1st drift off the 1st, months from a Monday
/// off Monday).
fn calendar_period(anchor: ResetAnchor) -> Option<(ResetPeriod, &'static str)> {
    match anchor {
        ResetAnchor::SubscriptionStart => None,
        ResetAnchor::StartOfTheMonth => Some((
            ResetPeriod::Month,
            "`resetAnchor` START_OF_THE_MONTH starts monthly windows and needs `resetPeriod` MONTH",
        )),
        ResetAnchor::EveryMonday
        | ResetAnchor::EveryTuesday
        | ResetAnchor::EveryWednesday
        | ResetAnchor::EveryThursday
        | ResetAnchor::EveryFriday
        | ResetAnchor::EverySaturday
        | ResetAnchor::EverySunday => Some((
            ResetPeriod::Week,
            "a weekday `resetAnchor` starts weekly windows and needs `resetPeriod` WEEK",
        )),
    }
}
