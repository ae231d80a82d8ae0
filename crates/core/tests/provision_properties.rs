//! Properties of provisioning over random request sequences: the scope invariants hold, the
//! decision is deterministic, nothing panics, and the result's change type is the
//! classifier's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::reference_catalog as catalog;
use proptest::prelude::*;
use serde_json::{Value, json};
use tollgate_core::change::{ChangeType, classify};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::provision::{ProvisionRequest, ProvisionStatus, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::SubscriptionStatus;
use tollgate_core::{Catalog, view};

fn start() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// A provision input drawn from the reference catalog's plans, with every option varied.
fn request() -> impl Strategy<Value = Value> {
    let plan = prop::sample::select(vec![
        ("free", None, false),
        ("starter", Some("MONTHLY"), false),
        ("starter", Some("ANNUALLY"), false),
        ("pro", Some("MONTHLY"), false),
        ("pro", Some("ANNUALLY"), false),
        ("enterprise", None, false),
        ("ws-basic", None, true),
        ("ws-plus", Some("MONTHLY"), true),
    ]);
    (
        plan,
        prop::option::of(1i64..12),
        prop::sample::subsequence(vec!["extra-projects", "priority-support", "api-boost", "audit-pack"], 0..=3),
        0u8..4,
        0u8..5,
        prop::option::of(prop::sample::select(vec!["IMMEDIATE", "END_OF_BILLING_PERIOD", "END_OF_BILLING_MONTH"])),
        prop::option::of(prop::sample::select(vec!["UNCHANGED", "NOW"])),
        prop::option::of(prop::sample::select(vec!["CHARGE", "INVOICE", "NONE"])),
        any::<bool>(),
        prop::sample::select(vec!["r1", "r2"]),
        prop::option::of(-40i64..40),
    )
        .prop_map(|((plan, period, multi), seats, addons, trial, version, schedule, anchor, collection, checkout, resource, start_days)| {
            let mut input = json!({"customerId": "c1", "planId": plan});
            if let Some(p) = period { input["billingPeriod"] = json!(p); }
            if multi { input["resourceId"] = json!(resource); }
            if plan == "pro" {
                if let Some(s) = seats { input["billableFeatures"] = json!([{"featureId": "seats", "quantity": s}]); }
                if version == 0 { input["planVersion"] = json!(1); }
            }
            if plan == "pro" || plan == "starter" {
                input["addons"] = Value::Array(addons.iter().map(|a| json!({"addonId": a})).collect());
            }
            if plan == "ws-plus" { input["billableFeatures"] = json!([{"featureId": "storage-gb", "quantity": 10 + seats.unwrap_or(1) * 10}]); }
            match trial {
                0 => input["skipTrial"] = json!(true),
                1 => input["trialOverride"] = json!({"isTrial": true, "trialEndDate": "2026-06-01T00:00:00Z"}),
                _ => {}
            }
            if let Some(s) = schedule { input["scheduleStrategy"] = json!(s); }
            if let Some(a) = anchor { input["billingCycleAnchor"] = json!(a); }
            if let Some(c) = collection { input["paymentCollectionMethod"] = json!(c); }
            if checkout { input["checkoutOptions"] = json!({"successUrl": "s", "cancelUrl": "c"}); }
            if let Some(days) = start_days.filter(|d| d.abs() > 30) {
                input["startDate"] = json!((start() + TimeDelta::days(days * 3)).to_rfc3339());
            }
            input
        })
}

fn steps() -> impl Strategy<Value = Vec<(u32, bool, Value)>> {
    prop::collection::vec((0u32..20 * 86_400, any::<bool>(), request()), 1..25)
}

fn parse(input: &Value) -> ProvisionRequest {
    serde_json::from_value(input.clone()).unwrap()
}

/// Every scope has at most one live trial, one live non-trial, and one waiting
/// subscription of each kind.
fn check_scopes(state: &CustomerState) -> Result<(), TestCaseError> {
    let mut scopes: std::collections::BTreeMap<_, [u32; 4]> = Default::default();
    for s in &state.subscriptions {
        let counts = scopes
            .entry((s.product.clone(), s.resource.clone()))
            .or_default();
        let slot = match (s.is_trial, s.status) {
            (true, st) if st.is_live() => 0,
            (false, st) if st.is_live() => 1,
            (true, SubscriptionStatus::NotStarted) => 2,
            (false, SubscriptionStatus::NotStarted) => 3,
            _ => continue,
        };
        counts[slot] += 1;
        prop_assert!(
            counts[slot] <= 1,
            "scope {:?} has two subscriptions in slot {slot}: {:#?}",
            (&s.product, &s.resource),
            state.subscriptions
        );
    }
    Ok(())
}

/// Plays `steps` from an empty customer; returns every serialized result and the state.
fn play(
    catalog: &Catalog,
    steps: &[(u32, bool, Value)],
    mut check: impl FnMut(&CustomerState) -> Result<(), TestCaseError>,
) -> Result<(Vec<String>, CustomerState), TestCaseError> {
    let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
    let mut now = start();
    let mut out = Vec::new();
    for (i, (advance, has_method, input)) in steps.iter().enumerate() {
        now += TimeDelta::seconds(i64::from(*advance));
        state.customer.has_payment_method = *has_method;
        let mut input = input.clone();
        input["subscriptionId"] = json!(format!("s{i}"));
        match provision(
            catalog,
            &state,
            &parse(&input),
            &Redemptions::new(),
            now,
            &Settings::default(),
        ) {
            Ok(decision) => {
                decision.apply(&mut state, now);
                let sub = decision
                    .subscription
                    .as_ref()
                    .and_then(|id| state.subscription(id.as_str()));
                out.push(view::provision_result(&decision, sub, None).to_string());
            }
            Err(e) => out.push(format!("{}: {}", e.code(), e.message())),
        }
        check(&state)?;
    }
    let subs: Vec<Value> = state.subscriptions.iter().map(view::subscription).collect();
    let invoices: Vec<Value> = state.invoices.iter().map(view::invoice).collect();
    out.push(json!({"subscriptions": subs, "invoices": invoices}).to_string());
    Ok((out, state))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scopes_never_hold_two_live_subscriptions_of_a_kind(steps in steps()) {
        let catalog = catalog();
        play(&catalog, &steps, check_scopes)?;
    }

    /// Two catalogs loaded separately (their hash indexes seeded differently) give the same
    /// bytes for the same requests.
    #[test]
    fn decisions_are_deterministic(steps in steps()) {
        let (a, _) = play(&catalog(), &steps, |_| Ok(()))?;
        let (b, _) = play(&catalog(), &steps, |_| Ok(()))?;
        prop_assert_eq!(a, b);
    }

    /// Over a live non-trial subscription, the result's change type is the classifier's
    /// answer for the two configurations (or `NONE` for an identical request).
    #[test]
    fn change_type_is_the_classifiers(first in request(), second in request(), at in 0u32..30 * 86_400) {
        let catalog = catalog();
        let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
        state.customer.has_payment_method = true;
        let mut first = first;
        first["skipTrial"] = json!(true);
        first.as_object_mut().unwrap().remove("trialOverride");
        first.as_object_mut().unwrap().remove("startDate");
        let Ok(decision) = provision(&catalog, &state, &parse(&first), &Redemptions::new(), start(), &Settings::default()) else { return Ok(()) };
        prop_assume!(decision.status == ProvisionStatus::Success);
        decision.apply(&mut state, start());
        let current = state.subscription(decision.subscription.as_ref().unwrap().as_str()).unwrap().clone();
        prop_assume!(current.status == SubscriptionStatus::Active);
        let mut second = second;
        second["skipTrial"] = json!(true);
        second.as_object_mut().unwrap().remove("trialOverride");
        second.as_object_mut().unwrap().remove("startDate");
        let now = start() + TimeDelta::seconds(i64::from(at));
        let Ok(change) = provision(&catalog, &state, &parse(&second), &Redemptions::new(), now, &Settings::default()) else { return Ok(()) };
        let Some(target) = change.effects.create.last().map(|s| s.config.clone())
            .or_else(|| change.effects.schedule.first().and_then(|s| s.update.as_ref()).map(|u| u.target.clone())) else {
            prop_assert_eq!(change.change_type, ChangeType::None);
            return Ok(());
        };
        if target.plan.as_str() != "free" && current.product != change.effects.create.last().map_or(current.product.clone(), |s| s.product.clone()) {
            return Ok(());
        }
        let expected = classify(&catalog, &current.config, &target).unwrap();
        let in_scope = change.effects.create.last().is_none_or(|s| s.in_scope(&current.product, current.resource.as_ref()));
        if in_scope {
            prop_assert_eq!(change.change_type, expected);
        } else {
            prop_assert_eq!(change.change_type, ChangeType::New);
        }
    }
}

/// Arbitrary JSON-shaped inputs, many of them absurd: provisioning answers every one
/// without panicking.
fn wild_request() -> impl Strategy<Value = Value> {
    let text = prop::sample::select(vec![
        "",
        "pro",
        "free",
        "starter",
        "enterprise",
        "ws-plus",
        "x",
        "seats",
        "storage-gb",
        "api-boost",
        "audit-pack",
        "DE",
        "zz",
        "Δ",
        "LAUNCH20",
    ]);
    (
        text.clone(),
        prop::option::of(any::<u32>()),
        prop::option::of(prop::sample::select(vec![
            "MONTHLY",
            "QUARTERLY",
            "ANNUALLY",
        ])),
        prop::option::of(text.clone()),
        prop::option::of(any::<i64>()),
        prop::collection::vec((text.clone(), any::<i64>()), 0..3),
        prop::collection::vec((text.clone(), any::<i64>()), 0..3),
        prop::option::of(text.clone()),
        prop::option::of(-1_000_000i64..3_000_000),
        any::<bool>(),
        prop::option::of((any::<bool>(), prop::option::of(-1_000_000i64..3_000_000))),
    )
        .prop_map(
            |(
                plan,
                version,
                period,
                resource,
                units,
                features,
                addons,
                country,
                start_days,
                skip,
                trial,
            )| {
                let mut input = json!({"customerId": "c1", "planId": plan, "skipTrial": skip});
                if let Some(v) = version {
                    input["planVersion"] = json!(v);
                }
                if let Some(p) = period {
                    input["billingPeriod"] = json!(p);
                }
                if let Some(r) = resource {
                    input["resourceId"] = json!(r);
                }
                if let Some(u) = units {
                    input["unitQuantity"] = json!(u);
                }
                input["billableFeatures"] = Value::Array(
                    features
                        .iter()
                        .map(|(f, q)| json!({"featureId": f, "quantity": q}))
                        .collect(),
                );
                input["addons"] = Value::Array(
                    addons
                        .iter()
                        .map(|(a, q)| json!({"addonId": a, "quantity": q}))
                        .collect(),
                );
                if let Some(c) = country {
                    input["billingCountryCode"] = json!(c);
                }
                let date = |days: i64| {
                    start()
                        .checked_add_signed(TimeDelta::days(days))
                        .map(|d| d.to_rfc3339())
                };
                if let Some(d) = start_days.and_then(date) {
                    input["startDate"] = json!(d);
                }
                if let Some((is_trial, end)) = trial {
                    input["trialOverride"] = json!({"isTrial": is_trial});
                    if let Some(d) = end.and_then(date) {
                        input["trialOverride"]["trialEndDate"] = json!(d);
                    }
                }
                input
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_input_panics(inputs in prop::collection::vec((wild_request(), any::<bool>()), 1..8)) {
        let catalog = catalog();
        let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
        let now = start();
        for (input, method) in inputs {
            state.customer.has_payment_method = method;
            if let Ok(request) = serde_json::from_value::<ProvisionRequest>(input) {
                if let Ok(decision) = provision(&catalog, &state, &request, &Redemptions::new(), now, &Settings::default()) {
                    decision.apply(&mut state, now);
                }
            }
        }
    }
}
