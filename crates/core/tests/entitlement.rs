//! Entitlements (SPEC.md §6): Stigg's documented numbers, the shared scenarios' answers
//! (06, 07, 08, 10) reproduced with `provision`, every denial reason, usage and its reset
//! windows, promotional grants, fallback entitlements, and the merge's algebraic properties.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::{DateTime, Utc};
use common::reference_json;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::str::FromStr;
use tollgate_core::catalog::{EntitlementValue, ResetAnchor, ResetPeriod, UsageLimit};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::entitlement::{
    AccessDeniedReason, Candidate, EntitlementFields, EntitlementSet, EntitlementType,
    FallbackEntitlements, GetEntitlementRequest, GetEntitlementsRequest,
    GrantPromotionalEntitlementRequest, MergedEntitlement, SourceKind, get_entitlement,
    get_entitlements, grant_promotional_entitlement, grant_result, metered_value,
};
use tollgate_core::id::{CustomerId, ResourceId, SubscriptionId};
use tollgate_core::provision::{ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::{CancelReason, Subscription, SubscriptionStatus};
use tollgate_core::usage::{
    PlanChange, ReportUsageRequest, report_usage, reset_usage_on_change, reset_window,
};
use tollgate_core::{Catalog, ErrorCode};

// ---- harness ----

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn reference() -> Catalog {
    Catalog::from_json_value(&reference_json()).unwrap()
}

/// The reference catalog plus the plans Stigg's documentation uses in its examples:
/// `team` (10 seats, 100 projects), `premium` (100 seats, a trial) and the `seat-pack`
/// add-on (20 seats, INCREMENT).
fn stigg_catalog() -> Catalog {
    let mut value = reference_json();
    value["plans"].as_array_mut().unwrap().extend([
        json!({"id": "team", "productId": "analytics", "version": 1, "pricingType": "PAID",
               "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"}],
               "compatibleAddonIds": ["seat-pack"],
               "entitlements": [{"featureId": "seats", "usageLimit": 10},
                                {"featureId": "projects", "value": 100}]}),
        json!({"id": "premium", "productId": "analytics", "version": 1, "pricingType": "PAID",
               "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 50, "currency": "USD"}],
               "defaultTrial": {"duration": 14, "unit": "DAY", "endBehavior": "CANCEL_SUBSCRIPTION"},
               "entitlements": [{"featureId": "seats", "usageLimit": 100}]}),
    ]);
    value["addons"].as_array_mut().unwrap().push(
        json!({"id": "seat-pack", "productId": "analytics", "version": 1, "maxQuantity": 10,
               "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 5, "currency": "USD"}],
               "entitlements": [{"featureId": "seats", "usageLimit": 20, "behavior": "INCREMENT"}]}),
    );
    Catalog::from_json_value(&value).unwrap()
}

struct World {
    catalog: Catalog,
    states: BTreeMap<String, CustomerState>,
    fallback: FallbackEntitlements,
}

impl World {
    fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            states: BTreeMap::new(),
            fallback: FallbackEntitlements::none(),
        }
    }

    fn customer(mut self, id: &str, has_payment_method: bool) -> Self {
        let mut customer = Customer::new(CustomerId::new(id));
        customer.has_payment_method = has_payment_method;
        self.states
            .insert(id.to_owned(), CustomerState::new(customer));
        self
    }

    fn state(&self, customer: &str) -> &CustomerState {
        &self.states[customer]
    }

    fn state_mut(&mut self, customer: &str) -> &mut CustomerState {
        self.states.get_mut(customer).unwrap()
    }

    fn provision(&mut self, at: &str, input: Value) {
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        let customer = request.customer_id.as_str().to_owned();
        let decision = provision(
            &self.catalog,
            self.state(&customer),
            &request,
            &Redemptions::new(),
            t(at),
            &Settings::default(),
        )
        .unwrap();
        decision.apply(self.state_mut(&customer), t(at));
    }

    /// Ends a subscription the way the clock would.
    fn end(&mut self, customer: &str, subscription: &str, at: &str, reason: CancelReason) {
        self.state_mut(customer)
            .subscription_mut(subscription)
            .unwrap()
            .end(t(at), reason);
    }

    fn get(&self, at: &str, input: Value) -> Value {
        let request: GetEntitlementRequest = serde_json::from_value(input).unwrap();
        get_entitlement(
            &self.catalog,
            self.states.get(request.customer_id.as_str()),
            &self.fallback,
            &request,
            t(at),
        )
    }

    fn get_all(&self, at: &str, input: Value) -> Value {
        let request: GetEntitlementsRequest = serde_json::from_value(input).unwrap();
        get_entitlements(
            &self.catalog,
            self.states.get(request.customer_id.as_str()),
            &self.fallback,
            &request,
            t(at),
        )
    }

    /// `getEntitlement` must match `expected` as the scenario runner matches (FORMAT.md §2).
    fn expect(&self, at: &str, input: Value, expected: Value) {
        let actual = self.get(at, input.clone());
        if let Err(path) = matches(&expected, &actual, "$") {
            panic!(
                "getEntitlement {input} at {at}: mismatch at {path}\nexpected {expected}\nactual   {actual}"
            );
        }
    }

    fn report(&mut self, at: &str, input: Value) -> Result<Value, tollgate_core::Error> {
        let request: ReportUsageRequest = serde_json::from_value(input).unwrap();
        let customer = request.customer_id.as_str().to_owned();
        let catalog = &self.catalog;
        let state = self.states.get_mut(&customer).unwrap();
        report_usage(catalog, state, &request, t(at)).map(|r| r.to_json())
    }

    fn expect_report(&mut self, at: &str, input: Value, expected: Value) {
        let actual = self.report(at, input.clone()).unwrap();
        if let Err(path) = matches(&expected, &actual, "$") {
            panic!(
                "reportUsage {input} at {at}: mismatch at {path}\nexpected {expected}\nactual   {actual}"
            );
        }
    }

    fn grant(&mut self, at: &str, input: Value) -> Result<Value, tollgate_core::Error> {
        let request: GrantPromotionalEntitlementRequest = serde_json::from_value(input).unwrap();
        let customer = request.customer_id.as_str().to_owned();
        let catalog = &self.catalog;
        let state = self.states.get_mut(&customer).unwrap();
        grant_promotional_entitlement(catalog, state, &request, t(at)).map(|g| grant_result(&g))
    }
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

/// The scenario runner's matcher (FORMAT.md §2): listed keys only, arrays of equal length,
/// numbers as decimals, an expected `null` matches an absent key.
fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    None if v.is_null() => {}
                    None => return Err(p),
                    Some(av) => matches(v, av, &p)?,
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path} (length)"));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => match (decimal(expected), decimal(actual)) {
            (Some(x), Some(y)) if x == y => Ok(()),
            _ if expected == actual => Ok(()),
            _ => Err(path.to_owned()),
        },
    }
}

fn set<'c>(w: &'c World, customer: &str, resource: Option<&str>, at: &str) -> EntitlementSet<'c> {
    let resource = resource.map(ResourceId::new);
    EntitlementSet::for_customer(&w.catalog, w.state(customer), resource.as_ref(), t(at))
}

const JAN1: &str = "2025-01-01T00:00:00Z";

// ---- Stigg's documented numbers ----

#[test]
fn stigg_plan_10_seats_plus_addon_20_increment_is_30() {
    let mut w = World::new(stigg_catalog()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY", "subscriptionId": "s",
        "addons": [{"addonId": "seat-pack", "quantity": 1}]}));
    let s = set(&w, "c1", None, JAN1);
    let seats = s.metered("seats", 0);
    assert!(seats.has_access());
    assert_eq!(seats.usage_limit(), Some(30));
    let sources: Vec<_> = seats
        .sources()
        .iter()
        .map(|s| (s.kind, s.id.as_str(), s.is_effective))
        .collect();
    assert_eq!(
        sources,
        vec![
            (SourceKind::Plan, "team", true),
            (SourceKind::Addon, "seat-pack", true)
        ]
    );
}

#[test]
fn stigg_x_plus_y_times_quantity() {
    for quantity in 1..=4_u64 {
        let mut w = World::new(stigg_catalog()).customer("c1", true);
        w.provision(JAN1, json!({"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY", "subscriptionId": "s",
            "addons": [{"addonId": "seat-pack", "quantity": quantity}]}));
        assert_eq!(
            set(&w, "c1", None, JAN1).get("seats").usage_limit(),
            Some(10 + 20 * quantity)
        );
    }
}

#[test]
fn stigg_paid_10_beside_trial_100_gives_100_then_10_after_the_trial() {
    let mut w = World::new(stigg_catalog()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY", "subscriptionId": "paid"}));
    w.provision(
        "2025-01-02T00:00:00Z",
        json!({"customerId": "c1", "planId": "premium", "billingPeriod": "MONTHLY",
        "subscriptionId": "trial", "trialOverride": {"isTrial": true}}),
    );
    assert_eq!(
        w.state("c1").subscription("trial").unwrap().status,
        SubscriptionStatus::InTrial
    );
    let during = set(&w, "c1", None, "2025-01-03T00:00:00Z");
    assert_eq!(during.get("seats").usage_limit(), Some(100));
    let sources: Vec<_> = during
        .get("seats")
        .sources()
        .iter()
        .map(|s| (s.kind, s.is_effective))
        .collect();
    assert_eq!(
        sources,
        vec![(SourceKind::Plan, false), (SourceKind::Trial, true)]
    );
    w.end(
        "c1",
        "trial",
        "2025-01-16T00:00:00Z",
        CancelReason::TrialEnded,
    );
    let after = set(&w, "c1", None, "2025-01-16T00:00:00Z");
    assert_eq!(after.get("seats").usage_limit(), Some(10));
    assert_eq!(after.get("seats").sources().len(), 1);
}

#[test]
fn stigg_promotional_500_over_plan_100_gives_500_and_50_gives_100() {
    let mut w = World::new(stigg_catalog()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "team", "billingPeriod": "MONTHLY", "subscriptionId": "s"}));
    w.grant(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects", "value": 500}),
    )
    .unwrap();
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "projects"}), json!({"hasAccess": true, "value": 500,
        "sources": [{"kind": "PLAN", "id": "team", "subscriptionId": "s", "isEffective": false},
                    {"kind": "PROMOTIONAL", "id": "projects", "subscriptionId": null, "isEffective": true}]}));
    // Granting again for the same feature replaces the earlier grant.
    w.grant(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects", "value": 50}),
    )
    .unwrap();
    assert_eq!(w.state("c1").promotional_entitlements.len(), 1);
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": true, "value": 100,
        "sources": [{"kind": "PLAN", "id": "team", "isEffective": true},
                    {"kind": "PROMOTIONAL", "id": "projects", "isEffective": false}]}),
    );
}

// ---- scenario 06: the generous merge with a parallel trial ----

#[test]
fn scenario_06_generous_merge_parallel_trial() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "c1-starter"}));
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": true, "value": 10}),
    );
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "sso"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoFeatureEntitlementInSubscription"}),
    );
    w.provision("2025-01-05T00:00:00Z", json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY",
        "billableFeatures": [{"featureId": "seats", "quantity": 1}],
        "trialOverride": {"isTrial": true, "trialEndDate": "2025-01-19T00:00:00Z", "endBehavior": "CANCEL_SUBSCRIPTION"},
        "subscriptionId": "c1-pro-trial"}));
    let at = "2025-01-06T00:00:00Z";
    w.expect(at, json!({"customerId": "c1", "featureId": "projects"}), json!({"type": "NUMERIC", "hasAccess": true, "value": 50,
        "sources": [{"kind": "TRIAL", "id": "pro", "subscriptionId": "c1-pro-trial", "isEffective": true},
                    {"kind": "PLAN", "id": "starter", "subscriptionId": "c1-starter", "isEffective": false}]}));
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "retention-days"}),
        json!({"hasAccess": true, "value": 365}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "sso"}),
        json!({"type": "BOOLEAN", "hasAccess": true}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "region"}),
        json!({"type": "ENUM", "hasAccess": true, "enumValues": ["us", "eu", "apac"]}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "region", "requestedValues": ["apac"]}),
        json!({"type": "ENUM", "hasAccess": true}),
    );
    w.expect(at, json!({"customerId": "c1", "featureId": "seats"}),
        json!({"type": "METERED", "hasAccess": true, "usageLimit": 5, "hasUnlimitedUsage": false, "hasSoftLimit": false}));
    w.expect(at, json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"type": "METERED", "hasAccess": true, "usageLimit": 1_000_000, "hasSoftLimit": true, "resetPeriod": "MONTH"}));
    // The seats sources: starter's own 5 beats the trial's per-unit quantity 1.
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "seats"}),
        json!({"sources": [
        {"kind": "PRICE", "id": "pro", "subscriptionId": "c1-pro-trial", "isEffective": false},
        {"kind": "PLAN", "id": "starter", "subscriptionId": "c1-starter", "isEffective": true}]}),
    );

    let end = "2025-01-19T00:00:00Z";
    w.end("c1", "c1-pro-trial", end, CancelReason::TrialEnded);
    assert_eq!(
        w.state("c1").subscription("c1-pro-trial").unwrap().status,
        SubscriptionStatus::Expired
    );
    w.expect(end, json!({"customerId": "c1", "featureId": "projects"}), json!({"hasAccess": true, "value": 10,
        "sources": [{"kind": "PLAN", "id": "starter", "subscriptionId": "c1-starter", "isEffective": true}]}));
    w.expect(
        end,
        json!({"customerId": "c1", "featureId": "sso"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoFeatureEntitlementInSubscription"}),
    );
    w.expect(
        end,
        json!({"customerId": "c1", "featureId": "region"}),
        json!({"type": "ENUM", "hasAccess": true, "enumValues": ["us", "eu"]}),
    );
    w.expect(
        end,
        json!({"customerId": "c1", "featureId": "region", "requestedValues": ["apac"]}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedValuesMismatch"}),
    );
    w.expect(
        end,
        json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"hasAccess": true, "usageLimit": 50000, "hasSoftLimit": false}),
    );
}

// ---- scenario 07: add-on arithmetic ----

#[test]
fn scenario_07_addon_arithmetic() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true,
        "addons": [{"addonId": "extra-projects", "quantity": 3}], "subscriptionId": "c1-starter"}));
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"type": "NUMERIC", "hasAccess": true, "value": 40}),
    );
    let at = "2025-01-02T00:00:00Z";
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": true, "value": 40}),
    );
    w.provision(at, json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY",
        "billableFeatures": [{"featureId": "seats", "quantity": 1}],
        "addons": [{"addonId": "priority-support", "quantity": 1}, {"addonId": "audit-pack", "quantity": 1},
                   {"addonId": "api-boost", "quantity": 1}, {"addonId": "extra-projects", "quantity": 2}],
        "subscriptionId": "c1-pro"}));
    assert_eq!(
        w.state("c1").subscription("c1-starter").unwrap().status,
        SubscriptionStatus::Canceled
    );
    w.expect(at, json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"type": "METERED", "hasAccess": true, "usageLimit": 5_000_000, "hasUnlimitedUsage": false, "hasSoftLimit": false, "resetPeriod": "MONTH"}));
    w.expect(at, json!({"customerId": "c1", "featureId": "projects"}), json!({"hasAccess": true, "value": 70,
        "sources": [{"kind": "PLAN", "id": "pro", "subscriptionId": "c1-pro", "isEffective": true},
                    {"kind": "ADDON", "id": "extra-projects", "subscriptionId": "c1-pro", "isEffective": true}]}));
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "retention-days"}),
        json!({"hasAccess": true, "value": 730}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "priority-support"}),
        json!({"type": "BOOLEAN", "hasAccess": true}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "audit-log"}),
        json!({"type": "BOOLEAN", "hasAccess": true}),
    );
    // The OVERRIDE add-on wins whole; the plan's soft limit is not effective.
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"sources": [
        {"kind": "PLAN", "id": "pro", "isEffective": false},
        {"kind": "ADDON", "id": "api-boost", "isEffective": true}]}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "retention-days"}),
        json!({"sources": [
        {"kind": "PLAN", "id": "pro", "isEffective": false},
        {"kind": "ADDON", "id": "audit-pack", "isEffective": true}]}),
    );
}

// ---- scenario 08: metered usage ----

#[test]
fn scenario_08_metered_usage() {
    let mut w = World::new(reference())
        .customer("c1", false)
        .customer("c2", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "c1-free"}),
    );
    w.provision(JAN1, json!({"customerId": "c2", "planId": "pro", "billingPeriod": "MONTHLY",
        "billableFeatures": [{"featureId": "seats", "quantity": 1}], "skipTrial": true, "subscriptionId": "c2-pro"}));
    w.expect_report(JAN1, json!({"customerId": "c1", "featureId": "api-calls", "value": 990}),
        json!({"currentUsage": 990, "usagePeriodStart": "2025-01-01T00:00:00Z", "usagePeriodEnd": "2025-02-01T00:00:00Z"}));
    // The whole answer, as FORMAT.md §3 writes it.
    assert_eq!(
        w.get(
            JAN1,
            json!({"customerId": "c1", "featureId": "api-calls", "requestedUsage": 10})
        ),
        json!({"featureId": "api-calls", "type": "METERED", "hasAccess": true, "usageLimit": 1000,
               "currentUsage": 990, "requestedUsage": 10, "hasUnlimitedUsage": false, "hasSoftLimit": false,
               "resetPeriod": "MONTH", "usagePeriodStart": "2025-01-01T00:00:00Z",
               "usagePeriodEnd": "2025-02-01T00:00:00Z", "isFallback": false,
               "sources": [{"kind": "PLAN", "id": "free", "subscriptionId": "c1-free", "isEffective": true}]})
    );
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "api-calls", "requestedUsage": 11}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedUsageExceedingLimit", "usageLimit": 1000, "currentUsage": 990}));
    w.expect_report(
        JAN1,
        json!({"customerId": "c2", "featureId": "api-calls", "value": 1_000_000}),
        json!({"currentUsage": 1_000_000}),
    );
    w.expect(JAN1, json!({"customerId": "c2", "featureId": "api-calls", "requestedUsage": 500}),
        json!({"type": "METERED", "hasAccess": true, "usageLimit": 1_000_000, "currentUsage": 1_000_000, "hasSoftLimit": true}));
    w.expect_report(
        JAN1,
        json!({"customerId": "c2", "featureId": "seats", "value": 1, "updateBehavior": "SET"}),
        json!({"currentUsage": 1}),
    );
    w.expect(JAN1, json!({"customerId": "c2", "featureId": "seats", "requestedUsage": 1}),
        json!({"type": "METERED", "hasAccess": false, "accessDeniedReason": "RequestedUsageExceedingLimit", "usageLimit": 1, "currentUsage": 1, "hasSoftLimit": false}));
    let jan20 = "2025-01-20T00:00:00Z";
    w.expect_report(jan20, json!({"customerId": "c1", "featureId": "api-calls", "value": 10, "updateBehavior": "DELTA"}), json!({"currentUsage": 1000}));
    w.expect(
        jan20,
        json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"hasAccess": true, "usageLimit": 1000, "currentUsage": 1000}),
    );
    w.expect(
        jan20,
        json!({"customerId": "c1", "featureId": "api-calls", "requestedUsage": 1}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedUsageExceedingLimit"}),
    );
    w.expect_report("2025-01-25T00:00:00Z", json!({"customerId": "c1", "featureId": "api-calls", "value": 400, "updateBehavior": "SET"}), json!({"currentUsage": 400}));
    let feb = "2025-02-01T12:00:00Z";
    w.expect(feb, json!({"customerId": "c1", "featureId": "api-calls", "requestedUsage": 1000}),
        json!({"hasAccess": true, "usageLimit": 1000, "currentUsage": 0, "usagePeriodStart": "2025-02-01T00:00:00Z", "usagePeriodEnd": "2025-03-01T00:00:00Z"}));
    w.expect_report(
        feb,
        json!({"customerId": "c1", "featureId": "api-calls", "value": 5}),
        json!({"currentUsage": 5}),
    );
}

// ---- scenario 10: cancellation, product-wide subscriptions, resources ----

#[test]
fn scenario_10_cancellation_scopes() {
    let mut w = World::new(reference())
        .customer("c1", true)
        .customer("c2", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "c1-starter"}));
    w.provision(JAN1, json!({"customerId": "c2", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "ws-1",
        "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}], "subscriptionId": "c2-ws"}));
    w.provision(
        JAN1,
        json!({"customerId": "c2", "planId": "free", "subscriptionId": "c2-free"}),
    );
    // c1: immediate cancellation, then the journey's DOWNGRADE_TO_FREE.
    let cancel = "2025-01-21T06:00:00Z";
    w.end("c1", "c1-starter", cancel, CancelReason::Immediate);
    w.provision(
        cancel,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "c1-free"}),
    );
    w.expect(
        cancel,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": true, "value": 3}),
    );
    // c2: the workspace subscription runs until its period end.
    let before = "2025-01-31T23:00:00Z";
    w.expect(
        before,
        json!({"customerId": "c2", "featureId": "sso", "resourceId": "ws-1"}),
        json!({"hasAccess": true}),
    );
    w.expect(
        before,
        json!({"customerId": "c2", "featureId": "storage-gb", "resourceId": "ws-1"}),
        json!({"hasAccess": true, "usageLimit": 50}),
    );
    w.expect(
        before,
        json!({"customerId": "c2", "featureId": "projects", "resourceId": "ws-1"}),
        json!({"hasAccess": true, "value": 3}),
    );
    let feb = "2025-02-01T00:00:00Z";
    w.end("c2", "c2-ws", feb, CancelReason::ScheduledCancellation);
    w.expect(
        feb,
        json!({"customerId": "c2", "featureId": "sso", "resourceId": "ws-1"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoFeatureEntitlementInSubscription"}),
    );
    w.expect(
        feb,
        json!({"customerId": "c2", "featureId": "sso", "resourceId": "ws-2"}),
        json!({"hasAccess": false, "accessDeniedReason": "CustomerResourceNotFound"}),
    );
    // Without a resource the scope holds only product-wide subscriptions.
    w.expect(
        before,
        json!({"customerId": "c2", "featureId": "sso"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoFeatureEntitlementInSubscription"}),
    );
}

// ---- every denial reason, in order ----

#[test]
fn every_denial_reason() {
    let mut w = World::new(reference())
        .customer("c1", true)
        .customer("c2", true)
        .customer("gone", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
    w.provision(
        JAN1,
        json!({"customerId": "gone", "planId": "free", "subscriptionId": "g"}),
    );
    w.state_mut("gone").customer.archived = true;
    let deny = |w: &World, input: Value, reason: &str| {
        w.expect(
            JAN1,
            input,
            json!({"hasAccess": false, "accessDeniedReason": reason, "isFallback": false}),
        );
    };
    deny(
        &w,
        json!({"customerId": "nobody", "featureId": "sso"}),
        "CustomerNotFound",
    );
    deny(
        &w,
        json!({"customerId": "gone", "featureId": "projects"}),
        "CustomerIsArchived",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "projects", "resourceId": "ws-9"}),
        "CustomerResourceNotFound",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "teleport"}),
        "FeatureNotFound",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "projects", "requestedUsage": 1}),
        "FeatureTypeMismatch",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "api-calls", "requestedValues": ["us"]}),
        "FeatureTypeMismatch",
    );
    deny(
        &w,
        json!({"customerId": "c2", "featureId": "projects"}),
        "NoActiveSubscription",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "sso"}),
        "NoFeatureEntitlementInSubscription",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "seats", "requestedUsage": 6}),
        "RequestedUsageExceedingLimit",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "region", "requestedValues": ["eu", "apac"]}),
        "RequestedValuesMismatch",
    );
    // An unknown feature has no type.
    assert!(
        w.get(JAN1, json!({"customerId": "c1", "featureId": "teleport"}))
            .get("type")
            .is_none()
    );

    // Typed getters check the type.
    let s = set(&w, "c1", None, JAN1);
    assert_eq!(
        s.boolean("projects").access_denied_reason(),
        Some(AccessDeniedReason::FeatureTypeMismatch)
    );
    assert_eq!(
        s.numeric("seats").access_denied_reason(),
        Some(AccessDeniedReason::FeatureTypeMismatch)
    );
    assert_eq!(
        s.metered("region", 0).access_denied_reason(),
        Some(AccessDeniedReason::FeatureTypeMismatch)
    );
    assert_eq!(
        s.enumeration("sso", &["us"]).access_denied_reason(),
        Some(AccessDeniedReason::FeatureTypeMismatch)
    );
    assert!(s.numeric("projects").has_access());
    assert_eq!(s.numeric("projects").value(), Some(10));
    assert!(s.metered("seats", 5).has_access());
    assert!(s.enumeration("region", &["eu"]).has_access());
    assert_eq!(
        s.enumeration("region", &["eu", "us"]).enum_values(),
        Some(&["us".to_owned(), "eu".to_owned()][..])
    );

    // Order: the customer comes before the feature, the resource before the feature.
    deny(
        &w,
        json!({"customerId": "gone", "featureId": "teleport", "resourceId": "ws-9"}),
        "CustomerIsArchived",
    );
    deny(
        &w,
        json!({"customerId": "c1", "featureId": "teleport", "resourceId": "ws-9"}),
        "CustomerResourceNotFound",
    );
    deny(
        &w,
        json!({"customerId": "c2", "featureId": "teleport"}),
        "FeatureNotFound",
    );
    deny(
        &w,
        json!({"customerId": "c2", "featureId": "projects", "requestedUsage": 1}),
        "FeatureTypeMismatch",
    );
}

#[test]
fn a_boolean_granted_false_and_a_revoked_subscription_deny() {
    let mut value = reference_json();
    value["plans"][0]["entitlements"]
        .as_array_mut()
        .unwrap()
        .push(json!({"featureId": "sso", "granted": false}));
    let mut w = World::new(Catalog::from_json_value(&value).unwrap()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "sso"}),
        json!({"hasAccess": false,
        "accessDeniedReason": "NoFeatureEntitlementInSubscription",
        "sources": [{"kind": "PLAN", "id": "free", "subscriptionId": "f", "isEffective": false}]}),
    );
    w.end("c1", "f", JAN1, CancelReason::Immediate);
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoActiveSubscription"}),
    );
}

#[test]
fn waiting_and_pending_subscriptions_grant_nothing() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true,
        "subscriptionId": "later", "startDate": "2025-03-01T00:00:00Z"}));
    assert_eq!(
        w.state("c1").subscription("later").unwrap().status,
        SubscriptionStatus::NotStarted
    );
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoActiveSubscription"}),
    );
    w.state_mut("c1").subscription_mut("later").unwrap().status =
        SubscriptionStatus::PaymentPending;
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoActiveSubscription"}),
    );
}

// ---- fallback entitlements ----

#[test]
fn fallback_entitlements_answer_only_for_unknown_customers_and_say_so() {
    let mut w = World::new(reference()).customer("c1", true);
    let fields: Vec<EntitlementFields> = serde_json::from_value(json!([
        {"featureId": "projects", "value": 1},
        {"featureId": "api-calls", "usageLimit": 10, "resetPeriod": "DAY"},
        {"featureId": "region", "values": ["eu"]}
    ]))
    .unwrap();
    w.fallback = FallbackEntitlements::new(&w.catalog, &fields).unwrap();
    w.expect(JAN1, json!({"customerId": "ghost", "featureId": "projects"}),
        json!({"type": "NUMERIC", "hasAccess": true, "value": 1, "isFallback": true, "sources": []}));
    w.expect(
        JAN1,
        json!({"customerId": "ghost", "featureId": "api-calls", "requestedUsage": 10}),
        json!({"hasAccess": true, "usageLimit": 10, "currentUsage": 0, "isFallback": true}),
    );
    w.expect(JAN1, json!({"customerId": "ghost", "featureId": "api-calls", "requestedUsage": 11}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedUsageExceedingLimit", "isFallback": true}));
    w.expect(JAN1, json!({"customerId": "ghost", "featureId": "region", "requestedValues": ["us"]}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedValuesMismatch", "isFallback": true}));
    w.expect(
        JAN1,
        json!({"customerId": "ghost", "featureId": "sso"}),
        json!({"hasAccess": false, "accessDeniedReason": "CustomerNotFound", "isFallback": false}),
    );
    // A known customer is never answered by the fallback.
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "projects"}),
        json!({"hasAccess": false, "accessDeniedReason": "NoActiveSubscription", "isFallback": false}));
    let all = w.get_all(JAN1, json!({"customerId": "ghost"}));
    let ids: Vec<_> = all["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["featureId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["api-calls", "projects", "region"]);

    let bad: Vec<EntitlementFields> =
        serde_json::from_value(json!([{"featureId": "sso", "value": 1}])).unwrap();
    assert_eq!(
        FallbackEntitlements::new(&w.catalog, &bad)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidEntitlement
    );
    let unknown: Vec<EntitlementFields> =
        serde_json::from_value(json!([{"featureId": "nope", "granted": true}])).unwrap();
    assert_eq!(
        FallbackEntitlements::new(&w.catalog, &unknown)
            .unwrap_err()
            .code(),
        ErrorCode::FeatureNotFound
    );
    assert!(
        serde_json::from_value::<Vec<EntitlementFields>>(
            json!([{"featureId": "sso", "granted": true, "behavior": "OVERRIDE"}])
        )
        .is_err()
    );
}

// ---- getEntitlements ----

#[test]
fn get_entitlements_lists_every_merged_feature_sorted() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s",
        "addons": [{"addonId": "priority-support", "quantity": 1}]}));
    let all = w.get_all(JAN1, json!({"customerId": "c1"}));
    let ids: Vec<_> = all["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["featureId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "api-calls",
            "priority-support",
            "projects",
            "region",
            "retention-days",
            "seats"
        ]
    );
    assert!(
        all["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["hasAccess"] == json!(true))
    );
    assert_eq!(
        w.get_all(JAN1, json!({"customerId": "c1", "resourceId": "nope"})),
        json!({"entitlements": []})
    );
    assert_eq!(
        w.get_all(JAN1, json!({"customerId": "ghost"})),
        json!({"entitlements": []})
    );
}

// ---- usage ----

#[test]
fn usage_delta_set_floor_and_errors() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.expect_report(
        JAN1,
        json!({"customerId": "c1", "featureId": "seats", "value": 2}),
        json!({"currentUsage": 2, "usagePeriodStart": null}),
    );
    w.expect_report(
        JAN1,
        json!({"customerId": "c1", "featureId": "seats", "value": -5}),
        json!({"currentUsage": 0}),
    );
    w.expect_report(
        JAN1,
        json!({"customerId": "c1", "featureId": "seats", "value": 7, "updateBehavior": "SET"}),
        json!({"currentUsage": 7}),
    );
    // Fluctuating usage never resets.
    w.expect("2030-01-01T00:00:00Z", json!({"customerId": "c1", "featureId": "seats"}),
        json!({"hasAccess": false, "accessDeniedReason": "RequestedUsageExceedingLimit", "currentUsage": 7, "usageLimit": 2}));
    let before = w.state("c1").clone();
    let code = |w: &mut World, input: Value| w.report(JAN1, input).unwrap_err().code();
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "seats", "value": -1, "updateBehavior": "SET"})
        ),
        ErrorCode::InvalidArgumentError
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "projects", "value": 1})
        ),
        ErrorCode::InvalidArgumentError
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "nope", "value": 1})
        ),
        ErrorCode::FeatureNotFound
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "seats", "value": 1, "resourceId": "ws-1"})
        ),
        ErrorCode::InvalidArgumentError
    );
    w.state_mut("c1").customer.archived = true;
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "seats", "value": 1})
        ),
        ErrorCode::CustomerIsArchived
    );
    w.state_mut("c1").customer.archived = false;
    assert_eq!(w.state("c1"), &before);
    assert!(
        serde_json::from_value::<ReportUsageRequest>(
            json!({"customerId": "c1", "featureId": "seats", "value": 1, "updateBehavior": "ADD"})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<ReportUsageRequest>(
            json!({"customerId": "c1", "featureId": "seats", "value": 1, "extra": 1})
        )
        .is_err()
    );
}

#[test]
fn usage_belongs_to_its_resource() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "ws-basic", "resourceId": "ws-1", "subscriptionId": "a"}));
    w.provision(JAN1, json!({"customerId": "c1", "planId": "ws-basic", "resourceId": "ws-2", "subscriptionId": "b"}));
    w.expect_report(
        JAN1,
        json!({"customerId": "c1", "featureId": "storage-gb", "value": 4, "resourceId": "ws-1"}),
        json!({"currentUsage": 4}),
    );
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "storage-gb", "resourceId": "ws-1", "requestedUsage": 2}),
        json!({"hasAccess": false, "currentUsage": 4, "usageLimit": 5}));
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "storage-gb", "resourceId": "ws-2", "requestedUsage": 5}),
        json!({"hasAccess": true, "currentUsage": 0}));
    // A transfer moves the subscription, not the usage.
    w.state_mut("c1").subscription_mut("a").unwrap().resource = Some(ResourceId::new("ws-3"));
    w.state_mut("c1").resources.insert(ResourceId::new("ws-3"));
    w.expect(
        JAN1,
        json!({"customerId": "c1", "featureId": "storage-gb", "resourceId": "ws-3"}),
        json!({"currentUsage": 0}),
    );
    assert_eq!(
        w.state("c1")
            .usage
            .current(Some("ws-1"), "storage-gb", t(JAN1)),
        4
    );
}

#[test]
fn reset_windows_for_every_period_and_anchor() {
    let window = |period, anchor, start: &str, now: &str| {
        let reset = match metered_value(UsageLimit::Unlimited, false, Some(period), anchor) {
            EntitlementValue::Metered { reset: Some(r), .. } => r,
            _ => unreachable!(),
        };
        let w = reset_window(reset, t(start), t(now)).unwrap();
        (w.start.to_rfc3339(), w.end.to_rfc3339())
    };
    let p = |a: &str, b: &str| (t(a).to_rfc3339(), t(b).to_rfc3339());
    use ResetAnchor::*;
    use ResetPeriod::*;
    assert_eq!(
        window(
            Hour,
            SubscriptionStart,
            "2025-01-01T10:15:00Z",
            "2025-01-01T12:34:56Z"
        ),
        p("2025-01-01T12:15:00Z", "2025-01-01T13:15:00Z")
    );
    assert_eq!(
        window(
            Day,
            SubscriptionStart,
            "2025-01-01T10:00:00Z",
            "2025-01-03T09:00:00Z"
        ),
        p("2025-01-02T10:00:00Z", "2025-01-03T10:00:00Z")
    );
    assert_eq!(
        window(
            Week,
            SubscriptionStart,
            "2025-01-01T00:00:00Z",
            "2025-01-15T00:00:00Z"
        ),
        p("2025-01-15T00:00:00Z", "2025-01-22T00:00:00Z")
    );
    assert_eq!(
        window(
            Month,
            SubscriptionStart,
            "2025-01-31T10:00:00Z",
            "2025-02-28T12:00:00Z"
        ),
        p("2025-02-28T10:00:00Z", "2025-03-31T10:00:00Z")
    );
    assert_eq!(
        window(
            Year,
            SubscriptionStart,
            "2024-02-29T00:00:00Z",
            "2025-03-01T00:00:00Z"
        ),
        p("2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z")
    );
    assert_eq!(
        window(
            Month,
            StartOfTheMonth,
            "2025-01-15T08:00:00Z",
            "2025-02-10T00:00:00Z"
        ),
        p("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
    );
    assert_eq!(
        window(
            Day,
            StartOfTheMonth,
            "2025-01-15T08:00:00Z",
            "2025-02-10T13:00:00Z"
        ),
        p("2025-02-10T00:00:00Z", "2025-02-11T00:00:00Z")
    );
    // 2025-01-01 is a Wednesday.
    assert_eq!(
        window(
            Week,
            EveryMonday,
            "2025-01-01T09:00:00Z",
            "2025-01-08T09:00:00Z"
        ),
        p("2025-01-06T00:00:00Z", "2025-01-13T00:00:00Z")
    );
    assert_eq!(
        window(
            Week,
            EveryWednesday,
            "2025-01-01T09:00:00Z",
            "2025-01-01T10:00:00Z"
        ),
        p("2025-01-01T00:00:00Z", "2025-01-08T00:00:00Z")
    );
    assert_eq!(
        window(
            Week,
            EverySunday,
            "2025-01-01T09:00:00Z",
            "2025-01-05T00:00:00Z"
        ),
        p("2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z")
    );
    // Half-open: the end instant starts the next window.
    assert_eq!(
        window(
            Month,
            SubscriptionStart,
            "2025-01-01T00:00:00Z",
            "2025-02-01T00:00:00Z"
        ),
        p("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
    );
    // Before the anchor: the first window.
    assert_eq!(
        window(
            Day,
            SubscriptionStart,
            "2025-01-05T00:00:00Z",
            "2025-01-01T00:00:00Z"
        ),
        p("2025-01-05T00:00:00Z", "2025-01-06T00:00:00Z")
    );
}

#[test]
fn usage_of_an_ended_window_reads_zero_and_valid_until_says_when() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.report(
        "2025-01-10T00:00:00Z",
        json!({"customerId": "c1", "featureId": "api-calls", "value": 300}),
    )
    .unwrap();
    let s = set(&w, "c1", None, "2025-01-31T23:59:59Z");
    assert_eq!(s.get("api-calls").current_usage(), Some(300));
    assert_eq!(s.valid_until(), Some(t("2025-02-01T00:00:00Z")));
    assert_eq!(
        set(&w, "c1", None, "2025-02-01T00:00:00Z")
            .get("api-calls")
            .current_usage(),
        Some(0)
    );
}

fn starter_usage_world(reset: &str) -> World {
    let mut value = reference_json();
    value["products"][0]["journey"]["usageResetOnChange"] = json!(reset);
    let mut w = World::new(Catalog::from_json_value(&value).unwrap()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.report(
        JAN1,
        json!({"customerId": "c1", "featureId": "api-calls", "value": 700}),
    )
    .unwrap();
    w.report(
        JAN1,
        json!({"customerId": "c1", "featureId": "seats", "value": 2, "updateBehavior": "SET"}),
    )
    .unwrap();
    w.provision("2025-01-10T00:00:00Z", json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
    assert_eq!(
        w.state("c1").subscription("f").unwrap().status,
        SubscriptionStatus::Canceled
    );
    w
}

#[test]
fn usage_reset_on_plan_change_follows_the_product_setting() {
    let at = "2025-01-10T00:00:00Z";
    // ALWAYS_RESET: incremental features with a reset period start over; seats do not.
    // Provisioning the replacement applies the rule.
    let w = starter_usage_world("ALWAYS_RESET");
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"currentUsage": 0, "usageLimit": 50000}),
    );
    w.expect(
        at,
        json!({"customerId": "c1", "featureId": "seats"}),
        json!({"currentUsage": 2}),
    );

    // NEVER_RESET: usage carries over, until the window it was counted in ends.
    let w = starter_usage_world("NEVER_RESET");
    w.expect(at, json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"currentUsage": 700, "usagePeriodStart": "2025-01-10T00:00:00Z", "usagePeriodEnd": "2025-02-10T00:00:00Z"}));
    w.expect(
        "2025-02-01T00:00:00Z",
        json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"currentUsage": 0}),
    );

    // BILLING_PERIOD_CHANGE: free (no billing period) → monthly is a change; monthly →
    // monthly is not; monthly → annually is.
    let mut w = starter_usage_world("BILLING_PERIOD_CHANGE");
    let catalog = w.catalog.clone();
    assert_eq!(w.state("c1").usage.current(None, "api-calls", t(at)), 0);
    w.report(
        at,
        json!({"customerId": "c1", "featureId": "api-calls", "value": 5}),
    )
    .unwrap();
    let monthly = w.state("c1").subscription("s").unwrap().config.clone();
    let mut annual = monthly.clone();
    annual.billing_period = Some(tollgate_core::period::BillingPeriod::Annually);
    let product = w.state("c1").subscription("s").unwrap().product.clone();
    let state = w.state_mut("c1");
    let same = PlanChange {
        product: &product,
        resource: None,
        from: &monthly,
        to: &monthly,
    };
    assert!(reset_usage_on_change(&catalog, &mut state.usage, &same).is_empty());
    assert_eq!(state.usage.current(None, "api-calls", t(at)), 5);
    let longer = PlanChange {
        product: &product,
        resource: None,
        from: &monthly,
        to: &annual,
    };
    assert_eq!(
        reset_usage_on_change(&catalog, &mut state.usage, &longer).len(),
        1
    );
    assert_eq!(state.usage.current(None, "api-calls", t(at)), 0);
}

#[test]
fn a_product_wide_change_resets_usage_under_every_resource() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.provision(JAN1, json!({"customerId": "c1", "planId": "ws-basic", "resourceId": "ws-1", "subscriptionId": "w"}));
    w.report(
        JAN1,
        json!({"customerId": "c1", "featureId": "api-calls", "value": 3, "resourceId": "ws-1"}),
    )
    .unwrap();
    w.report(
        JAN1,
        json!({"customerId": "c1", "featureId": "api-calls", "value": 4}),
    )
    .unwrap();
    w.provision("2025-01-02T00:00:00Z", json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "s"}));
    assert!(w.state("c1").usage.is_empty());
}

// ---- promotional grants ----

#[test]
fn promotional_grants_apply_to_every_scope_within_their_dates() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "ws-basic", "resourceId": "ws-1", "subscriptionId": "w"}));
    let result = w
        .grant(
            JAN1,
            json!({"customerId": "c1", "featureId": "sso", "granted": true,
        "startDate": "2025-01-05T00:00:00Z", "endDate": "2025-01-10T00:00:00Z"}),
        )
        .unwrap();
    assert_eq!(
        result,
        json!({"promotionalEntitlement": {"featureId": "sso", "type": "BOOLEAN", "granted": true,
        "startDate": "2025-01-05T00:00:00Z", "endDate": "2025-01-10T00:00:00Z"}})
    );
    for resource in [None, Some("ws-1")] {
        let mut input = json!({"customerId": "c1", "featureId": "sso"});
        if let Some(r) = resource {
            input["resourceId"] = json!(r);
        }
        w.expect(JAN1, input.clone(), json!({"hasAccess": false}));
        w.expect("2025-01-05T00:00:00Z", input.clone(), json!({"hasAccess": true,
            "sources": [{"kind": "PROMOTIONAL", "id": "sso", "subscriptionId": null, "isEffective": true}]}));
        w.expect("2025-01-10T00:00:00Z", input, json!({"hasAccess": false}));
    }
    assert_eq!(
        set(&w, "c1", None, JAN1).valid_until(),
        Some(t("2025-01-05T00:00:00Z"))
    );
    assert_eq!(
        set(&w, "c1", None, "2025-01-06T00:00:00Z").valid_until(),
        Some(t("2025-01-10T00:00:00Z"))
    );
    // A grant alone is a source: the scope is not "without subscription".
    w.expect(
        "2025-01-06T00:00:00Z",
        json!({"customerId": "c1", "featureId": "projects"}),
        json!({"accessDeniedReason": "NoFeatureEntitlementInSubscription"}),
    );
}

#[test]
fn a_metered_grant_anchors_its_window_at_its_start() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.grant(JAN1, json!({"customerId": "c1", "featureId": "api-calls", "usageLimit": 5000, "resetPeriod": "DAY",
        "startDate": "2025-01-10T06:00:00Z"})).unwrap();
    w.expect("2025-01-12T01:00:00Z", json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"usageLimit": 5000, "resetPeriod": "DAY", "usagePeriodStart": "2025-01-11T06:00:00Z", "usagePeriodEnd": "2025-01-12T06:00:00Z",
               "sources": [{"kind": "PLAN", "isEffective": false}, {"kind": "PROMOTIONAL", "isEffective": true}]}));
}

#[test]
fn invalid_grants_change_nothing() {
    let mut w = World::new(reference()).customer("c1", true);
    let before = w.state("c1").clone();
    let code = |w: &mut World, input: Value| w.grant(JAN1, input).unwrap_err().code();
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "nope", "granted": true})
        ),
        ErrorCode::FeatureNotFound
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "sso", "value": 3})
        ),
        ErrorCode::InvalidEntitlement
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "seats", "usageLimit": 3, "resetPeriod": "DAY"})
        ),
        ErrorCode::InvalidEntitlement
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "api-calls"})
        ),
        ErrorCode::InvalidEntitlement
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "region", "values": ["mars"]})
        ),
        ErrorCode::InvalidEntitlement
    );
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "sso", "granted": true,
        "startDate": "2025-01-05T00:00:00Z", "endDate": "2025-01-05T00:00:00Z"})
        ),
        ErrorCode::InvalidArgumentError
    );
    w.state_mut("c1").customer.archived = true;
    assert_eq!(
        code(
            &mut w,
            json!({"customerId": "c1", "featureId": "sso", "granted": true})
        ),
        ErrorCode::CustomerIsArchived
    );
    w.state_mut("c1").customer.archived = false;
    assert_eq!(w.state("c1"), &before);
    assert!(
        serde_json::from_value::<GrantPromotionalEntitlementRequest>(
            json!({"customerId": "c1", "featureId": "sso", "granted": true, "behavior": "OVERRIDE"})
        )
        .is_err()
    );
}

#[test]
fn an_enum_grant_unions_in_declared_order() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
    );
    w.grant(
        JAN1,
        json!({"customerId": "c1", "featureId": "region", "values": ["apac"]}),
    )
    .unwrap();
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "region", "requestedValues": ["apac", "us"]}),
        json!({"hasAccess": true, "enumValues": ["us", "apac"],
               "sources": [{"kind": "PLAN", "isEffective": true}, {"kind": "PROMOTIONAL", "isEffective": true}]}));
}

// ---- properties ----

const SUBS: [Option<&str>; 4] = [Some("s1"), Some("s2"), Some("s3"), None];
const KINDS: [SourceKind; 5] = [
    SourceKind::Plan,
    SourceKind::Trial,
    SourceKind::Addon,
    SourceKind::Price,
    SourceKind::Promotional,
];
const INSTANTS: [&str; 3] = [
    "2025-01-01T00:00:00Z",
    "2025-01-07T12:00:00Z",
    "2025-02-03T00:00:00Z",
];

fn value_for(feature: &'static str) -> BoxedStrategy<EntitlementValue> {
    match feature {
        "sso" => any::<bool>()
            .prop_map(|granted| EntitlementValue::Boolean { granted })
            .boxed(),
        "projects" => (0u64..6)
            .prop_map(|value| EntitlementValue::Numeric { value })
            .boxed(),
        "region" => prop::sample::subsequence(vec!["us", "eu", "apac"], 0..=3)
            .prop_map(|vs| EntitlementValue::Enum {
                values: vs.into_iter().map(str::to_owned).collect(),
            })
            .boxed(),
        _ => (
            prop::option::of(0u64..4),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec![
                ResetPeriod::Day,
                ResetPeriod::Month,
            ])),
            prop::sample::select(vec![
                ResetAnchor::SubscriptionStart,
                ResetAnchor::StartOfTheMonth,
            ]),
        )
            .prop_map(|(limit, soft, period, anchor)| {
                let limit = limit.map_or(UsageLimit::Unlimited, |n| UsageLimit::Limited(n * 100));
                metered_value(limit, soft, period, anchor)
            })
            .boxed(),
    }
}

fn candidates(feature: &'static str) -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (
            0usize..4,
            0usize..5,
            0usize..2,
            value_for(feature),
            0usize..3,
        )
            .prop_map(|(s, k, id, value, at)| {
                Candidate::new(
                    SUBS[s].map(SubscriptionId::new),
                    KINDS[k],
                    ["a", "b"][id],
                    value,
                    t(INSTANTS[at]),
                )
            }),
        0..5,
    )
}

/// Found by `adding_a_source_never_reduces_access`: one promotional source given twice, with
/// `us` and then with `eu` and `apac`, kept only the longer set and lost `us`.
#[test]
fn a_source_given_twice_with_two_enum_sets_grants_both() {
    let region = |values: &[&str]| EntitlementValue::Enum {
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    let grant = |values: &[&str]| {
        Candidate::new(
            None,
            SourceKind::Promotional,
            "b",
            region(values),
            t("2025-01-01T00:00:00Z"),
        )
    };
    let once = merged("region", vec![grant(&["us"])]).unwrap();
    let twice = merged("region", vec![grant(&["us"]), grant(&["eu", "apac"])]).unwrap();
    assert_eq!(once.value(), &region(&["us"]));
    assert_eq!(twice.value(), &region(&["us", "eu", "apac"]));
    assert_eq!(twice.sources().len(), 1);
    assert!(twice.sources()[0].is_effective);
}

/// Found by `the_merge_is_commutative_associative_idempotent`: one promotional source given
/// three times, `us` early, `eu` later and both earliest, merged to another anchor and another
/// order of values depending on which two were merged first.
#[test]
fn a_source_given_three_times_merges_alike_in_any_grouping() {
    let catalog = reference();
    let feature = catalog.feature("region").unwrap();
    let grant = |values: &[&str], at: &str| {
        let value = EntitlementValue::Enum {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        MergedEntitlement::merge_all(
            feature,
            [Candidate::new(
                None,
                SourceKind::Promotional,
                "b",
                value,
                t(at),
            )],
        )
        .unwrap()
    };
    let a = grant(&["us"], "2025-01-07T12:00:00Z");
    let b = grant(&["eu"], "2025-02-03T00:00:00Z");
    let c = grant(&["eu", "us"], "2025-01-01T00:00:00Z");
    let left = a.merge(&b, feature).merge(&c, feature);
    let right = a.merge(&b.merge(&c, feature), feature);
    assert_eq!(left, right);
    // The source keeps the earliest anchor any of its copies had.
    assert_eq!(left.anchored_at(), Some(t("2025-01-01T00:00:00Z")));
    assert_eq!(left.merge(&left, feature), left);
}

fn features() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["sso", "projects", "api-calls", "region"])
}

/// The FORMAT.md §6 order of metered values, written independently: (unlimited, larger
/// limit, soft before hard, more frequent reset).
fn model_rank(value: &EntitlementValue) -> (bool, u64, bool, u8) {
    match value {
        EntitlementValue::Metered {
            limit,
            soft_limit,
            reset,
        } => {
            let (unlimited, n) = match limit {
                UsageLimit::Unlimited => (true, 0),
                UsageLimit::Limited(n) => (false, *n),
            };
            let frequency = match reset.map(|r| r.period) {
                None => 0,
                Some(ResetPeriod::Year) => 1,
                Some(ResetPeriod::Month) => 2,
                Some(ResetPeriod::Week) => 3,
                Some(ResetPeriod::Day) => 4,
                Some(ResetPeriod::Hour) => 5,
            };
            (unlimited, n, *soft_limit, frequency)
        }
        _ => panic!("not metered"),
    }
}

/// Whether `more` is at least as generous as `less`.
fn at_least_as_generous(more: &EntitlementValue, less: &EntitlementValue) -> bool {
    match (more, less) {
        (EntitlementValue::Boolean { granted: a }, EntitlementValue::Boolean { granted: b }) => {
            *a || !*b
        }
        (EntitlementValue::Numeric { value: a }, EntitlementValue::Numeric { value: b }) => a >= b,
        (EntitlementValue::Enum { values: a }, EntitlementValue::Enum { values: b }) => {
            b.iter().all(|v| a.contains(v))
        }
        (a, b) => model_rank(a) >= model_rank(b),
    }
}

fn merged(feature: &str, cs: Vec<Candidate>) -> Option<MergedEntitlement> {
    MergedEntitlement::merge_all(reference().feature(feature).unwrap(), cs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_merge_is_commutative_associative_idempotent(
        (feature, a, b, c) in features().prop_flat_map(|f| (Just(f), candidates(f), candidates(f), candidates(f))),
    ) {
        let catalog = reference();
        let f = catalog.feature(feature).unwrap();
        let (Some(a), Some(b), Some(c)) = (
            MergedEntitlement::merge_all(f, a),
            MergedEntitlement::merge_all(f, b),
            MergedEntitlement::merge_all(f, c),
        ) else {
            return Ok(());
        };
        prop_assert_eq!(a.merge(&b, f), b.merge(&a, f));
        prop_assert_eq!(a.merge(&b, f).merge(&c, f), a.merge(&b.merge(&c, f), f));
        prop_assert_eq!(a.merge(&a, f), a.clone());
    }

    #[test]
    fn the_merge_is_the_most_generous_value_and_marks_its_sources(feature in features(), cs in features().prop_flat_map(|f| candidates(f).prop_map(move |c| (f, c)))) {
        let (generated_for, cs) = cs;
        let Some(m) = merged(feature, cs.clone()) else {
            // Nothing of the feature's type, or nothing at all.
            prop_assert!(feature != generated_for || cs.is_empty());
            return Ok(());
        };
        let kept: Vec<&Candidate> = m.candidates().iter().collect();
        // The result only depends on the set of sources: any order gives the same merge.
        let mut reversed = cs.clone();
        reversed.reverse();
        prop_assert_eq!(merged(feature, reversed), Some(m.clone()));
        match m.value() {
            EntitlementValue::Boolean { granted } => {
                prop_assert_eq!(*granted, kept.iter().any(|c| c.value() == &EntitlementValue::Boolean { granted: true }));
            }
            EntitlementValue::Numeric { value } => {
                prop_assert_eq!(Some(*value), kept.iter().map(|c| match c.value() { EntitlementValue::Numeric { value } => *value, _ => 0 }).max());
            }
            EntitlementValue::Enum { values } => {
                let declared = ["us", "eu", "apac"];
                let expected: Vec<String> = declared.iter().filter(|d| kept.iter().any(|c| matches!(c.value(), EntitlementValue::Enum { values } if values.iter().any(|v| v == *d)))).map(|d| (*d).to_owned()).collect();
                prop_assert_eq!(values, &expected);
            }
            metered => {
                let best = kept.iter().map(|c| model_rank(c.value())).max().unwrap();
                prop_assert_eq!(model_rank(metered), best);
                prop_assert!(kept.iter().any(|c| c.value() == metered));
            }
        }
        // Every source is listed once, in FORMAT.md §6 order, and effective iff its value is
        // part of the winner.
        prop_assert_eq!(m.sources().len(), kept.len());
        let keys: Vec<_> = m.sources().iter().map(|s| (s.subscription.is_none(), s.subscription.clone(), s.kind, s.id.clone())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(&keys, &sorted);
        for (s, c) in m.sources().iter().zip(&kept) {
            let part_of_winner = match (m.value(), c.value()) {
                (EntitlementValue::Boolean { .. }, EntitlementValue::Boolean { granted }) => *granted,
                (EntitlementValue::Enum { .. }, EntitlementValue::Enum { values }) => !values.is_empty(),
                (w, v) => v == w,
            };
            prop_assert_eq!(s.is_effective, part_of_winner);
        }
    }

    #[test]
    fn adding_a_source_never_reduces_access(cs in features().prop_flat_map(|f| (Just(f), candidates(f), candidates(f)))) {
        let (feature, before, extra) = cs;
        let all: Vec<Candidate> = before.iter().chain(&extra).cloned().collect();
        if let (Some(less), Some(more)) = (merged(feature, before), merged(feature, all)) {
            prop_assert!(at_least_as_generous(more.value(), less.value()));
            prop_assert!(!less.grants() || more.grants());
        }
    }
}

// ---- state-level properties ----

/// Subscriptions provisioned once, cloned and varied by the properties below.
struct Templates {
    catalog: Catalog,
    subs: Vec<Subscription>,
}

fn templates() -> Templates {
    let catalog = reference();
    let mut subs = Vec::new();
    let inputs = [
        json!({"planId": "free", "subscriptionId": "t"}),
        json!({"planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "t"}),
        json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "t",
               "billableFeatures": [{"featureId": "seats", "quantity": 3}]}),
        json!({"planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "t",
               "trialOverride": {"isTrial": true, "trialEndDate": "2025-02-01T00:00:00Z"}}),
        json!({"planId": "ws-basic", "resourceId": "ws-1", "subscriptionId": "t"}),
        json!({"planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "ws-1", "subscriptionId": "t",
               "billableFeatures": [{"featureId": "storage-gb", "quantity": 20}]}),
    ];
    for mut input in inputs {
        input["customerId"] = json!("c1");
        let request: ProvisionRequest = serde_json::from_value(input).unwrap();
        let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
        state.customer.has_payment_method = true;
        let d = provision(
            &catalog,
            &state,
            &request,
            &Redemptions::new(),
            t(JAN1),
            &Settings::default(),
        )
        .unwrap();
        d.apply(&mut state, t(JAN1));
        subs.push(state.subscription("t").unwrap().clone());
    }
    Templates { catalog, subs }
}

/// A subscription drawn from the templates: its kind, resource, add-ons.
#[derive(Debug, Clone)]
struct SubSpec {
    template: usize,
    resource: usize,
    addons: Vec<(&'static str, u32)>,
}

fn sub_spec() -> impl Strategy<Value = SubSpec> {
    (
        0usize..6,
        0usize..2,
        prop::sample::subsequence(
            vec![
                "extra-projects",
                "priority-support",
                "api-boost",
                "audit-pack",
            ],
            0..=4,
        ),
        1u32..4,
    )
        .prop_map(|(template, resource, addons, q)| SubSpec {
            template,
            resource,
            addons: addons
                .into_iter()
                .map(|a| (a, if a == "extra-projects" { q } else { 1 }))
                .collect(),
        })
}

const RESOURCES: [&str; 2] = ["ws-1", "ws-2"];

fn build_state(tpl: &Templates, specs: &[(usize, SubSpec)]) -> CustomerState {
    let mut state = CustomerState::new(Customer::new(CustomerId::new("c1")));
    for r in RESOURCES {
        state.resources.insert(ResourceId::new(r));
    }
    for (n, spec) in specs {
        let mut sub = tpl.subs[spec.template].clone();
        sub.id = SubscriptionId::new(format!("s{n}"));
        if sub.resource.is_some() {
            sub.resource = Some(ResourceId::new(RESOURCES[spec.resource]));
        } else {
            sub.config.addons = spec
                .addons
                .iter()
                .map(|(a, q)| tollgate_core::pricing::AddonQuantity {
                    addon: (*a).into(),
                    version: 1,
                    quantity: *q,
                })
                .collect();
        }
        state.subscriptions.push(sub);
    }
    state
}

const ALL_FEATURES: [&str; 10] = [
    "sso",
    "audit-log",
    "priority-support",
    "seats",
    "api-calls",
    "storage-gb",
    "projects",
    "retention-days",
    "region",
    "teleport",
];

/// Every answer of every scope, as JSON.
fn answers(catalog: &Catalog, state: &CustomerState, at: DateTime<Utc>) -> Vec<Value> {
    let mut out = Vec::new();
    for resource in [None, Some("ws-1"), Some("ws-2"), Some("ws-9")] {
        let r = resource.map(ResourceId::new);
        let set = EntitlementSet::for_customer(catalog, state, r.as_ref(), at);
        for f in ALL_FEATURES {
            out.push(set.get(f).to_json());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn removing_a_subscription_gives_exactly_the_merge_without_it(specs in prop::collection::vec(sub_spec(), 1..5), pick in any::<prop::sample::Index>()) {
        let tpl = templates();
        let numbered: Vec<(usize, SubSpec)> = specs.into_iter().enumerate().collect();
        let i = pick.index(numbered.len());
        let mut ended = build_state(&tpl, &numbered);
        ended.subscriptions[i].end(t(JAN1), CancelReason::Immediate);
        let without: Vec<(usize, SubSpec)> = numbered.iter().filter(|(n, _)| *n != i).cloned().collect();
        let never = build_state(&tpl, &without);
        prop_assert_eq!(answers(&tpl.catalog, &ended, t(JAN1)), answers(&tpl.catalog, &never, t(JAN1)));
    }

    #[test]
    fn adding_a_subscription_or_grant_never_reduces_access(specs in prop::collection::vec(sub_spec(), 0..4), extra in sub_spec(), grant in 0usize..3) {
        let tpl = templates();
        let numbered: Vec<(usize, SubSpec)> = specs.into_iter().enumerate().collect();
        let before = build_state(&tpl, &numbered);
        let mut more: Vec<(usize, SubSpec)> = numbered.clone();
        more.push((99, extra));
        let mut after = build_state(&tpl, &more);
        let grant_input = [
            json!({"customerId": "c1", "featureId": "projects", "value": 4}),
            json!({"customerId": "c1", "featureId": "api-calls", "usageLimit": 10, "resetPeriod": "DAY"}),
            json!({"customerId": "c1", "featureId": "region", "values": ["apac"]}),
        ][grant].clone();
        grant_promotional_entitlement(&tpl.catalog, &mut after, &serde_json::from_value(grant_input).unwrap(), t(JAN1)).unwrap();
        for resource in [None, Some("ws-1"), Some("ws-2")] {
            let r = resource.map(ResourceId::new);
            let less = EntitlementSet::for_customer(&tpl.catalog, &before, r.as_ref(), t(JAN1));
            let more = EntitlementSet::for_customer(&tpl.catalog, &after, r.as_ref(), t(JAN1));
            for f in ALL_FEATURES {
                let (a, b) = (less.get(f), more.get(f));
                prop_assert!(!a.has_access() || b.has_access(), "{} lost access in {:?}", f, resource);
                if let (Some(x), Some(y)) = (a.merged(), b.merged()) {
                    prop_assert!(at_least_as_generous(y.value(), x.value()), "{} less generous", f);
                }
            }
        }
    }

    #[test]
    fn usage_of_one_resource_never_changes_another(specs in prop::collection::vec(sub_spec(), 0..4),
            reports in prop::collection::vec((prop::sample::select(vec!["api-calls", "seats", "storage-gb"]), 0i64..2000, any::<bool>()), 1..5)) {
        let tpl = templates();
        let numbered: Vec<(usize, SubSpec)> = specs.into_iter().enumerate().collect();
        let before = build_state(&tpl, &numbered);
        let mut after = before.clone();
        for (feature, value, set) in reports {
            let request: ReportUsageRequest = serde_json::from_value(json!({"customerId": "c1", "featureId": feature, "value": value,
                "updateBehavior": if set { "SET" } else { "DELTA" }, "resourceId": "ws-1"})).unwrap();
            report_usage(&tpl.catalog, &mut after, &request, t(JAN1)).unwrap();
        }
        for resource in [None, Some("ws-2")] {
            let r = resource.map(ResourceId::new);
            for f in ALL_FEATURES {
                prop_assert_eq!(
                    EntitlementSet::for_customer(&tpl.catalog, &before, r.as_ref(), t(JAN1)).get(f).to_json(),
                    EntitlementSet::for_customer(&tpl.catalog, &after, r.as_ref(), t(JAN1)).get(f).to_json()
                );
            }
        }
    }

    #[test]
    fn unknown_customers_features_and_resources_never_grant(specs in prop::collection::vec(sub_spec(), 0..4), fallback in any::<bool>(), feature in prop::sample::select(ALL_FEATURES.to_vec())) {
        let tpl = templates();
        let numbered: Vec<(usize, SubSpec)> = specs.into_iter().enumerate().collect();
        let state = build_state(&tpl, &numbered);
        let fb = if fallback {
            FallbackEntitlements::new(&tpl.catalog, &serde_json::from_value::<Vec<EntitlementFields>>(json!([{"featureId": "sso", "granted": true}])).unwrap()).unwrap()
        } else {
            FallbackEntitlements::none()
        };
        let unknown = EntitlementSet::build(&tpl.catalog, None, None, &fb, t(JAN1));
        let a = unknown.get(feature);
        if a.has_access() {
            prop_assert!(fallback && a.is_fallback());
        } else {
            prop_assert!(a.access_denied_reason() == Some(AccessDeniedReason::CustomerNotFound) || a.is_fallback());
        }
        let known = EntitlementSet::build(&tpl.catalog, Some(&state), None, &fb, t(JAN1));
        prop_assert!(!known.get(feature).is_fallback());
        prop_assert_eq!(known.get("teleport").access_denied_reason(), Some(AccessDeniedReason::FeatureNotFound));
        let nowhere = EntitlementSet::build(&tpl.catalog, Some(&state), Some(&ResourceId::new("ws-9")), &fb, t(JAN1));
        prop_assert_eq!(nowhere.get(feature).access_denied_reason(), Some(AccessDeniedReason::CustomerResourceNotFound));
    }
}

#[test]
fn entitlement_types_name_themselves() {
    let catalog = reference();
    let types: Vec<_> = ["sso", "projects", "seats", "region"]
        .iter()
        .map(|f| EntitlementType::of(catalog.feature(f).unwrap()).as_str())
        .collect();
    assert_eq!(types, vec!["BOOLEAN", "NUMERIC", "METERED", "ENUM"]);
}

// ---- rules of the merge, one by one ----

#[test]
fn an_override_add_on_never_lowers_the_base() {
    let mut value = reference_json();
    value["addons"].as_array_mut().unwrap().push(json!({"id": "short-retention", "productId": "analytics", "version": 1,
        "maxQuantity": 1, "entitlements": [{"featureId": "retention-days", "value": 10, "behavior": "OVERRIDE"}]}));
    for plan in value["plans"].as_array_mut().unwrap() {
        if plan["id"] == "pro" {
            plan["compatibleAddonIds"]
                .as_array_mut()
                .unwrap()
                .push(json!("short-retention"));
        }
    }
    let mut w = World::new(Catalog::from_json_value(&value).unwrap()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "p",
        "addons": [{"addonId": "short-retention", "quantity": 1}]}));
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "retention-days"}), json!({"value": 365, "sources": [
        {"kind": "PLAN", "id": "pro", "isEffective": true}, {"kind": "ADDON", "id": "short-retention", "isEffective": false}]}));
}

#[test]
fn metered_values_compare_whole_by_unlimited_limit_soft_then_reset() {
    let check = |grant: Value, expected: Value| {
        let mut w = World::new(reference()).customer("c1", true);
        w.provision(
            JAN1,
            json!({"customerId": "c1", "planId": "free", "subscriptionId": "f"}),
        );
        let mut input = json!({"customerId": "c1", "featureId": "api-calls"});
        input
            .as_object_mut()
            .unwrap()
            .extend(grant.as_object().unwrap().clone());
        w.grant(JAN1, input).unwrap();
        w.expect(
            JAN1,
            json!({"customerId": "c1", "featureId": "api-calls"}),
            expected,
        );
    };
    // free: 1000 hard, MONTH.
    check(
        json!({"hasUnlimitedUsage": true}),
        json!({"hasUnlimitedUsage": true, "usageLimit": null, "resetPeriod": null}),
    );
    // A larger hard limit beats a smaller soft one (FORMAT.md §6 compares the limit first).
    check(
        json!({"usageLimit": 500, "hasSoftLimit": true}),
        json!({"usageLimit": 1000, "hasSoftLimit": false}),
    );
    check(
        json!({"usageLimit": 1000, "hasSoftLimit": true}),
        json!({"usageLimit": 1000, "hasSoftLimit": true, "resetPeriod": null}),
    );
    check(
        json!({"usageLimit": 1000, "resetPeriod": "DAY"}),
        json!({"usageLimit": 1000, "hasSoftLimit": false, "resetPeriod": "DAY"}),
    );
    check(
        json!({"usageLimit": 1000, "resetPeriod": "YEAR"}),
        json!({"usageLimit": 1000, "resetPeriod": "MONTH",
        "sources": [{"kind": "PLAN", "isEffective": true}, {"kind": "PROMOTIONAL", "isEffective": false}]}),
    );
    // Equal values: both sources are effective.
    check(
        json!({"usageLimit": 1000, "resetPeriod": "MONTH"}),
        json!({"usageLimit": 1000,
        "sources": [{"kind": "PLAN", "isEffective": true}, {"kind": "PROMOTIONAL", "isEffective": true}]}),
    );
}

#[test]
fn a_per_unit_price_on_a_numeric_feature_is_its_value() {
    let mut value = reference_json();
    value["plans"].as_array_mut().unwrap().push(json!({"id": "builder", "productId": "analytics", "version": 1,
        "pricingType": "PAID", "parentPlanId": "starter",
        "prices": [{"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "projects", "unitPrice": 2,
                    "currency": "USD", "minUnitQuantity": 4, "maxUnitQuantity": 100}],
        "compatibleAddonIds": ["extra-projects"]}));
    let mut w = World::new(Catalog::from_json_value(&value).unwrap())
        .customer("c1", true)
        .customer("c2", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "builder", "billingPeriod": "MONTHLY", "subscriptionId": "b",
        "billableFeatures": [{"featureId": "projects", "quantity": 7}], "addons": [{"addonId": "extra-projects", "quantity": 2}]}));
    // The inherited 10 is replaced by the quantity; the add-on still adds.
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "projects"}), json!({"value": 27, "sources": [
        {"kind": "ADDON", "id": "extra-projects", "isEffective": true}, {"kind": "PRICE", "id": "builder", "isEffective": true}]}));
    // Left out of the request: the minimum quantity.
    w.provision(JAN1, json!({"customerId": "c2", "planId": "builder", "billingPeriod": "MONTHLY", "subscriptionId": "b"}));
    w.expect(
        JAN1,
        json!({"customerId": "c2", "featureId": "projects"}),
        json!({"value": 4}),
    );
}

#[test]
fn a_per_unit_quantity_keeps_the_reset_of_the_entitlement_it_replaces() {
    let mut value = reference_json();
    value["plans"].as_array_mut().unwrap().push(json!({"id": "api-metered", "productId": "analytics", "version": 1,
        "pricingType": "PAID", "parentPlanId": "free",
        "prices": [{"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "api-calls", "unitPrice": 1,
                    "currency": "USD", "minUnitQuantity": 1, "maxUnitQuantity": 100000}]}));
    let mut w = World::new(Catalog::from_json_value(&value).unwrap()).customer("c1", true);
    w.provision(JAN1, json!({"customerId": "c1", "planId": "api-metered", "billingPeriod": "MONTHLY", "subscriptionId": "a",
        "billableFeatures": [{"featureId": "api-calls", "quantity": 5000}]}));
    w.expect(JAN1, json!({"customerId": "c1", "featureId": "api-calls"}),
        json!({"usageLimit": 5000, "hasSoftLimit": false, "resetPeriod": "MONTH", "usagePeriodEnd": "2025-02-01T00:00:00Z"}));
}

#[test]
fn typed_answers_expose_every_field() {
    let mut w = World::new(reference()).customer("c1", true);
    w.provision(
        JAN1,
        json!({"customerId": "c1", "planId": "enterprise", "subscriptionId": "e"}),
    );
    let s = set(&w, "c1", None, JAN1);
    let api = s.metered("api-calls", 1_000_000_000);
    assert!(api.has_access());
    assert!(api.has_unlimited_usage());
    assert_eq!(api.usage_limit(), None);
    assert_eq!(api.requested_usage(), 1_000_000_000);
    assert_eq!(api.current_usage(), Some(0));
    assert_eq!(api.entitlement_type(), Some(EntitlementType::Metered));
    assert_eq!(api.feature_id(), "api-calls");
    assert!(!api.is_fallback());
    assert_eq!(s.scope_denial(), None);
    assert!(!s.is_fallback());
    assert_eq!(s.len(), s.entitlements().len());
    assert!(s.merged("projects").is_some());
    assert!(s.merged("teleport").is_none());
}
