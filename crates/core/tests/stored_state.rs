//! A customer's state as a host stores it: JSON that deserializes to an equal state and
//! serializes again to the same bytes, whatever sequence of operations built it; one
//! realistic state's JSON as a snapshot; stored JSON that cannot be a state is refused with
//! a serde error, and no decision panics on whatever does deserialize.
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
use tollgate_core::Catalog;
use tollgate_core::cancellation::{CancelRequest, cancel_subscription};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::entitlement::{
    FallbackEntitlements, GetEntitlementsRequest, GrantPromotionalEntitlementRequest,
    get_entitlements, grant_promotional_entitlement,
};
use tollgate_core::id::{CustomerId, SubscriptionId};
use tollgate_core::lifecycle::advance;
use tollgate_core::provision::{ProvisionRequest, complete_checkout, provision};
use tollgate_core::settings::Settings;
use tollgate_core::update::{UpdateRequest, update_subscription};
use tollgate_core::usage::{ReportUsageRequest, report_usage};

fn start() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn stored(state: &CustomerState) -> String {
    serde_json::to_string(state).unwrap()
}

/// One operation on the customer, every part of the state reachable.
#[derive(Debug, Clone)]
enum Op {
    Provision {
        plan: usize,
        annual: bool,
        seats: u64,
        trial: usize,
        resource: usize,
        code: usize,
        later: bool,
        checkout: bool,
    },
    Update {
        sub: usize,
        seats: u64,
        addons: usize,
        schedule: usize,
        proration: usize,
    },
    Cancel {
        sub: usize,
        timing: usize,
    },
    CompleteCheckout {
        sub: usize,
    },
    Usage {
        feature: usize,
        resource: usize,
        value: i64,
    },
    Grant {
        feature: usize,
        days: Option<i64>,
    },
    PaymentMethod(bool),
    Clock {
        hours: i64,
    },
}

const PLANS: [(&str, Option<u32>); 7] = [
    ("free", None),
    ("starter", None),
    ("pro", Some(1)),
    ("pro", Some(2)),
    ("enterprise", None),
    ("ws-plus", None),
    ("ws-basic", None),
];
const CODES: [Option<&str>; 4] = [
    None,
    Some("LAUNCH20"),
    Some("WELCOME10"),
    Some("NONPROFIT50"),
];
const ADDONS: [&[(&str, i64)]; 4] = [
    &[],
    &[("extra-projects", 2)],
    &[("priority-support", 1)],
    &[("priority-support", 1), ("audit-pack", 1)],
];
const GRANTS: [(&str, &str); 4] = [
    ("sso", r#"{"granted": true}"#),
    ("projects", r#"{"value": 40}"#),
    (
        "api-calls",
        r#"{"usageLimit": 5000, "resetPeriod": "WEEK", "resetAnchor": "EVERY_MONDAY"}"#,
    ),
    ("region", r#"{"values": ["eu", "us"]}"#),
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop_oneof![0..PLANS.len(), Just(2)], any::<bool>(), 1u64..15, 0usize..3, 0usize..3, 0..CODES.len(), any::<bool>(), any::<bool>())
            .prop_map(|(plan, annual, seats, trial, resource, code, later, checkout)| Op::Provision {
                plan, annual, seats, trial, resource, code, later, checkout
            }),
        6 => (0usize..6, 1u64..15, 0..ADDONS.len(), 0usize..3, 0usize..3)
            .prop_map(|(sub, seats, addons, schedule, proration)| Op::Update { sub, seats, addons, schedule, proration }),
        2 => (0usize..6, 0usize..3).prop_map(|(sub, timing)| Op::Cancel { sub, timing }),
        2 => (0usize..6).prop_map(|sub| Op::CompleteCheckout { sub }),
        4 => (0usize..2, prop_oneof![0usize..3, Just(0)], -50i64..500).prop_map(|(feature, resource, value)| Op::Usage { feature, resource, value }),
        2 => (0..GRANTS.len(), prop::option::of(1i64..60)).prop_map(|(feature, days)| Op::Grant { feature, days }),
        3 => any::<bool>().prop_map(Op::PaymentMethod),
        6 => (0i64..1500).prop_map(|hours| Op::Clock { hours }),
    ]
}

/// The id of the `n`-th subscription (modulo their number), if any.
fn nth(state: &CustomerState, n: usize) -> Option<SubscriptionId> {
    let subs = &state.subscriptions;
    (!subs.is_empty()).then(|| subs[n % subs.len()].id.clone())
}

fn parse<T: serde::de::DeserializeOwned>(input: Value) -> T {
    serde_json::from_value(input).unwrap()
}

/// Runs `op` on `state` at `now`; a failed operation leaves the state as it was.
fn step(
    catalog: &Catalog,
    state: &CustomerState,
    op: &Op,
    i: usize,
    now: DateTime<Utc>,
) -> CustomerState {
    let settings = Settings::default();
    let redemptions = Redemptions::new();
    let mut next = state.clone();
    match op {
        Op::Provision {
            plan,
            annual,
            seats,
            trial,
            resource,
            code,
            later,
            checkout,
        } => {
            let (plan, version) = PLANS[*plan];
            let mut input = json!({"customerId": "c1", "planId": plan, "subscriptionId": format!("s{i}"),
                "billingPeriod": if *annual && plan != "ws-plus" { "ANNUALLY" } else { "MONTHLY" }});
            if let Some(v) = version {
                input["planVersion"] = json!(v);
            }
            if plan == "pro" {
                input["billableFeatures"] = json!([{"featureId": "seats", "quantity": seats}]);
            }
            if plan == "ws-plus" {
                input["billableFeatures"] =
                    json!([{"featureId": "storage-gb", "quantity": seats * 10}]);
            }
            if plan.starts_with("ws-") {
                input["resourceId"] = json!(format!("r{resource}"));
            }
            match trial {
                0 => input["skipTrial"] = json!(true),
                1 => {
                    input["trialOverride"] = json!({"isTrial": true, "trialEndDate": (now + TimeDelta::days(20)).to_rfc3339()})
                }
                _ => {}
            }
            if let Some(code) = CODES[*code] {
                input["promotionCode"] = json!(code);
            }
            if *later {
                input["startDate"] = json!((now + TimeDelta::days(10)).to_rfc3339());
            }
            if *checkout {
                input["checkoutOptions"] = json!({"successUrl": "https://example.com/ok", "cancelUrl": "https://example.com/no"});
                input["metadata"] = json!({"source": "checkout"});
            }
            let request: ProvisionRequest = parse(input);
            if let Ok(d) = provision(catalog, state, &request, &redemptions, now, &settings) {
                d.apply(&mut next, now);
            }
        }
        Op::Update {
            sub,
            seats,
            addons,
            schedule,
            proration,
        } => {
            let Some(id) = nth(state, *sub) else {
                return next;
            };
            let mut input = json!({"subscriptionId": id.as_str()});
            if state.subscription(id.as_str()).unwrap().plan_id().as_str() == "pro" {
                input["billableFeatures"] = json!([{"featureId": "seats", "quantity": seats}]);
            }
            let list: Vec<Value> = ADDONS[*addons]
                .iter()
                .map(|(a, q)| json!({"addonId": a, "quantity": q}))
                .collect();
            input["addons"] = json!(list);
            input["scheduleStrategy"] =
                json!(["IMMEDIATE", "END_OF_BILLING_PERIOD", "END_OF_BILLING_MONTH"][*schedule]);
            input["prorationBehavior"] =
                json!(["INVOICE_IMMEDIATELY", "CREATE_PRORATIONS", "NONE"][*proration]);
            let request: UpdateRequest = parse(input);
            if let Ok(d) =
                update_subscription(catalog, state, &request, &redemptions, now, &settings)
            {
                d.apply(&mut next, now);
            }
        }
        Op::Cancel { sub, timing } => {
            let Some(id) = nth(state, *sub) else {
                return next;
            };
            let request: CancelRequest = parse(json!({"subscriptionId": id.as_str(),
                "cancellationTime": (["IMMEDIATE", "END_OF_BILLING_PERIOD", "SPECIFIC_DATE"][*timing]),
                "endDate": (now + TimeDelta::days(5)).to_rfc3339()}));
            if let Ok(d) = cancel_subscription(catalog, state, &request, now, &settings) {
                next = d.state;
            }
        }
        Op::CompleteCheckout { sub } => {
            let pending = &state.pending_checkouts;
            if pending.is_empty() {
                return next;
            }
            let id = pending[sub % pending.len()].subscription_id.clone();
            if let Ok(c) =
                complete_checkout(catalog, state, id.as_str(), &redemptions, now, &settings)
            {
                next = c.state;
                c.decision.apply(&mut next, now);
            }
        }
        Op::Usage {
            feature,
            resource,
            value,
        } => {
            let mut input = json!({"customerId": "c1", "featureId": (["api-calls", "storage-gb"][*feature]), "value": value});
            if *resource > 0 {
                input["resourceId"] = json!(format!("r{resource}"));
            }
            let _ = report_usage(catalog, &mut next, &parse::<ReportUsageRequest>(input), now);
        }
        Op::Grant { feature, days } => {
            let (feature, fields) = GRANTS[*feature];
            let mut input: Value = serde_json::from_str(fields).unwrap();
            input["customerId"] = json!("c1");
            input["featureId"] = json!(feature);
            if let Some(days) = days {
                input["endDate"] = json!((now + TimeDelta::days(*days)).to_rfc3339());
            }
            let request: GrantPromotionalEntitlementRequest = parse(input);
            let _ = grant_promotional_entitlement(catalog, &mut next, &request, now);
        }
        Op::PaymentMethod(has) => next.customer.has_payment_method = *has,
        Op::Clock { .. } => {}
    }
    next
}

/// Serializes `state`, deserializes it, and serializes it again.
fn round_trip(state: &CustomerState) -> Result<(), TestCaseError> {
    let json = stored(state);
    let back: CustomerState =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
    prop_assert_eq!(&back, state);
    prop_assert_eq!(stored(&back), json);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn a_stored_state_reads_back_equal_and_writes_the_same_bytes(ops in prop::collection::vec(op(), 1..40)) {
        let catalog = catalog();
        let mut customer = Customer::new(CustomerId::new("c1"));
        customer.has_payment_method = true;
        let mut state = CustomerState::new(customer);
        let mut now = start();
        for (i, op) in ops.iter().enumerate() {
            if let Op::Clock { hours } = op {
                now += TimeDelta::hours(*hours);
            }
            if let Ok((moved, _)) = advance(&catalog, &state, now, &Settings::default()) {
                state = moved;
            }
            state = step(&catalog, &state, op, i, now);
            round_trip(&state)?;
        }
    }
}

/// A customer in Berlin with a replaced trial, a paid subscription with a promotion code,
/// an add-on, pending proration lines and a scheduled change, a workspace subscription
/// canceled for a later date, a checkout waiting for a payment method, usage (some not
/// billed yet), a promotional grant and a credit balance.
fn realistic_state() -> CustomerState {
    let catalog = catalog();
    let settings = Settings::default();
    let redemptions = Redemptions::new();
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    customer.timezone = "Europe/Berlin".parse().unwrap();
    let mut state = CustomerState::new(customer);
    let mut now = start();
    let provision_at = |state: &mut CustomerState, now, input: Value| {
        let decision =
            provision(&catalog, state, &parse(input), &redemptions, now, &settings).unwrap();
        decision.apply(state, now);
    };
    provision_at(
        &mut state,
        now,
        json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "trial"}),
    );
    now += TimeDelta::days(3);
    provision_at(
        &mut state,
        now,
        json!({"customerId": "c1", "planId": "pro", "planVersion": 1, "billingPeriod": "MONTHLY",
        "billableFeatures": [{"featureId": "seats", "quantity": 5}], "addons": [{"addonId": "priority-support"}],
        "promotionCode": "LAUNCH20", "subscriptionId": "pro", "skipTrial": true, "metadata": {"crm": "acct-42"}}),
    );
    provision_at(
        &mut state,
        now,
        json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "ws-1",
        "billableFeatures": [{"featureId": "storage-gb", "quantity": 20}], "subscriptionId": "ws"}),
    );
    for (feature, value, resource) in [
        ("api-calls", 1200, None),
        ("storage-gb", 35, None),
        ("api-calls", 80, Some("ws-1")),
    ] {
        let mut input = json!({"customerId": "c1", "featureId": feature, "value": value});
        if let Some(r) = resource {
            input["resourceId"] = json!(r);
        }
        report_usage(&catalog, &mut state, &parse(input), now).unwrap();
    }
    let grant = json!({"customerId": "c1", "featureId": "api-calls", "usageLimit": 5000, "resetPeriod": "MONTH",
        "endDate": "2025-03-01T00:00:00Z"});
    grant_promotional_entitlement(&catalog, &mut state, &parse(grant), now).unwrap();
    now += TimeDelta::days(40);
    state = advance(&catalog, &state, now, &settings).unwrap().0;
    let upgrade: UpdateRequest = parse(
        json!({"subscriptionId": "pro", "billableFeatures": [{"featureId": "seats", "quantity": 8}],
        "addons": [{"addonId": "priority-support"}], "prorationBehavior": "CREATE_PRORATIONS"}),
    );
    update_subscription(&catalog, &state, &upgrade, &redemptions, now, &settings)
        .unwrap()
        .apply(&mut state, now);
    let downgrade: UpdateRequest = parse(
        json!({"subscriptionId": "pro", "billableFeatures": [{"featureId": "seats", "quantity": 8}],
        "addons": [], "scheduleStrategy": "END_OF_BILLING_PERIOD"}),
    );
    update_subscription(&catalog, &state, &downgrade, &redemptions, now, &settings)
        .unwrap()
        .apply(&mut state, now);
    report_usage(
        &catalog,
        &mut state,
        &parse(json!({"customerId": "c1", "featureId": "storage-gb", "value": 12})),
        now,
    )
    .unwrap();
    let cancel: CancelRequest = parse(
        json!({"subscriptionId": "ws", "cancellationTime": "SPECIFIC_DATE", "endDate": "2025-05-20T00:00:00Z"}),
    );
    state = cancel_subscription(&catalog, &state, &cancel, now, &settings)
        .unwrap()
        .state;
    state.customer.has_payment_method = false;
    provision_at(
        &mut state,
        now,
        json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "ws-2",
        "subscriptionId": "ws-2-sub", "checkoutOptions": {"successUrl": "https://example.com/ok", "cancelUrl": "https://example.com/back"}}),
    );
    state.customer.credit_balance.insert(
        tollgate_core::money::Currency::parse("USD").unwrap(),
        "12.34".parse().unwrap(),
    );
    state
}

#[test]
fn a_realistic_stored_state_reads_as_it_is_written() {
    let state = realistic_state();
    let json = serde_json::to_string_pretty(&state).unwrap();
    insta::assert_snapshot!(json);
    let back: CustomerState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

/// The realistic state's JSON with `change` made to it.
fn changed(change: impl FnOnce(&mut Value)) -> Result<CustomerState, String> {
    let mut value = serde_json::to_value(realistic_state()).unwrap();
    change(&mut value);
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// A pending checkout's `start` came after the shape was first fixed: a checkout stored
/// without it still reads, its trial keeping the end decided then.
#[test]
fn a_pending_checkout_stored_without_its_start_still_reads() {
    let state = changed(|v| {
        v["pendingCheckouts"][0]
            .as_object_mut()
            .unwrap()
            .remove("start");
    })
    .unwrap();
    assert_eq!(state.pending_checkouts[0].start, None);
}

/// `waiting` (ledger entries) and `creditsWaitingDebit` (invoice lines) came after the first
/// stored shape: a state stored without them reads, with them false.
#[test]
fn a_state_stored_before_the_waiting_marks_reads_with_them_false() {
    let state = realistic_state();
    let mut value = serde_json::to_value(&state).unwrap();
    let strip = |objects: &mut Value, key: &str| {
        for object in objects.as_array_mut().unwrap() {
            object.as_object_mut().unwrap().remove(key);
        }
    };
    for sub in value["subscriptions"].as_array_mut().unwrap() {
        strip(&mut sub["charges"], "waiting");
        strip(&mut sub["pendingLines"], "creditsWaitingDebit");
    }
    for invoice in value["invoices"].as_array_mut().unwrap() {
        strip(&mut invoice["lines"], "creditsWaitingDebit");
    }
    let mut expected = state;
    for sub in &mut expected.subscriptions {
        for charge in &mut sub.charges {
            charge.waiting = false;
        }
    }
    let back: CustomerState = serde_json::from_value(value).unwrap();
    assert_eq!(back, expected);
}

#[test]
fn stored_json_that_cannot_be_a_state_is_refused() {
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "unknown key",
            Box::new(|v| v["customer"]["nickname"] = json!("x")),
            "unknown field `nickname`",
        ),
        (
            "unknown key in a charge's source",
            Box::new(|v| {
                v["subscriptions"][1]["charges"][0]["source"]["PLAN_PRICE"]["price"] = json!(0)
            }),
            "unknown field `price`",
        ),
        (
            "unknown key in a grant's value",
            Box::new(|v| {
                v["promotionalEntitlements"]["api-calls"]["value"]["METERED"]["max"] = json!(1)
            }),
            "unknown field `max`",
        ),
        (
            "unknown kind of charge source",
            Box::new(|v| v["subscriptions"][1]["charges"][0]["source"] = json!({"TAX": {}})),
            "unknown variant `TAX`",
        ),
        (
            "unknown trial reason",
            Box::new(|v| {
                v["pendingCheckouts"][0]["trial"]["reason"] = json!("the plan has no trial")
            }),
            "unknown variant",
        ),
        (
            "unknown status",
            Box::new(|v| v["subscriptions"][0]["status"] = json!("PAUSED")),
            "unknown variant `PAUSED`",
        ),
        (
            "unknown currency",
            Box::new(|v| v["invoices"][0]["currency"] = json!("XYZ")),
            "unknown currency `XYZ`",
        ),
        (
            "unknown time zone",
            Box::new(|v| v["customer"]["timezone"] = json!("Mars/Olympus")),
            "unknown time zone",
        ),
        (
            "bad country",
            Box::new(|v| v["subscriptions"][1]["config"]["country"] = json!("de")),
            "not a country code",
        ),
        (
            "bad amount",
            Box::new(|v| v["invoices"][0]["total"] = json!("ten")),
            "",
        ),
        (
            "negative quantity",
            Box::new(|v| v["invoices"][0]["lines"][0]["quantity"] = json!(-1)),
            "",
        ),
        (
            "bad instant",
            Box::new(|v| v["subscriptions"][0]["startDate"] = json!("yesterday")),
            "",
        ),
        (
            "period ending before its start",
            Box::new(|v| {
                v["invoices"][0]["lines"][0]["period"]["end"] = json!("2000-01-01T00:00:00Z")
            }),
            "before it starts",
        ),
        (
            "missing key",
            Box::new(|v| {
                v["subscriptions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("status");
            }),
            "missing field `status`",
        ),
        (
            "subscription of another customer",
            Box::new(|v| v["subscriptions"][1]["customer"] = json!("c2")),
            "belongs to customer `c2`",
        ),
        (
            "invoice of another customer",
            Box::new(|v| v["invoices"][0]["customer"] = json!("c2")),
            "belongs to customer `c2`",
        ),
        (
            "two subscriptions with one id",
            Box::new(|v| v["subscriptions"][1]["id"] = json!("trial")),
            "two subscriptions have the id `trial`",
        ),
        (
            "two checkouts for one subscription",
            Box::new(|v| {
                let checkout = v["pendingCheckouts"][0].clone();
                v["pendingCheckouts"].as_array_mut().unwrap().push(checkout);
            }),
            "two pending checkouts",
        ),
        (
            "grant under another feature",
            Box::new(|v| v["promotionalEntitlements"]["api-calls"]["feature"] = json!("sso")),
            "filed under `api-calls`",
        ),
        (
            "product listed twice",
            Box::new(|v| v["trialHistory"] = json!(["analytics", "analytics"])),
            "listed twice",
        ),
        (
            "an array for an object",
            Box::new(|v| v["usage"] = json!([])),
            "",
        ),
    ];
    for (what, change, message) in cases {
        match changed(change) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.contains(message), "{what}: {e}"),
        }
    }
}

#[test]
fn a_key_written_twice_is_refused() {
    let json = stored(&realistic_state());
    let twice = json.replacen(
        r#""creditBalance":{"USD":"12.34"}"#,
        r#""creditBalance":{"USD":"12.34","USD":"1.00"}"#,
        1,
    );
    assert_ne!(twice, json);
    let e = serde_json::from_str::<CustomerState>(&twice).unwrap_err();
    assert!(e.to_string().contains("duplicate key `USD`"), "{e}");
    let twice = json.replacen(
        r#""metadata":{"crm":"acct-42"}"#,
        r#""metadata":{"crm":"acct-42","crm":"acct-43"}"#,
        1,
    );
    assert_ne!(twice, json);
    let e = serde_json::from_str::<CustomerState>(&twice).unwrap_err();
    assert!(e.to_string().contains("duplicate key `crm`"), "{e}");
}

#[test]
fn redemptions_are_stored_as_counts_by_code() {
    let mut redemptions = Redemptions::new();
    redemptions.record("LAUNCH20");
    redemptions.record("LAUNCH20");
    redemptions.record("WELCOME10");
    let json = serde_json::to_string(&redemptions).unwrap();
    assert_eq!(json, r#"{"LAUNCH20":2,"WELCOME10":1}"#);
    assert_eq!(
        serde_json::from_str::<Redemptions>(&json).unwrap(),
        redemptions
    );
    assert!(serde_json::from_str::<Redemptions>(r#"{"LAUNCH20":-1}"#).is_err());
    assert!(serde_json::from_str::<Redemptions>(r#"{"A":1,"A":2}"#).is_err());
}

/// Every leaf of `value`, as a JSON pointer.
fn leaves(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            leaves(
                v,
                format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, format!("{path}/{i}"), out)),
        _ => out.push(path),
    }
}

fn wild_leaf() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("0"),
        json!("-7.5"),
        json!("79228162514264337593543950335"),
        json!(""),
        json!("pro"),
        json!("c1"),
        json!("trial"),
        json!("ws-1"),
        json!("USD"),
        json!("JPY"),
        json!("MONTHLY"),
        json!("ACTIVE"),
        json!("IN_TRIAL"),
        json!("NOT_STARTED"),
        json!("PAYMENT_PENDING"),
        json!("CANCELED"),
        json!("1970-01-01T00:00:00Z"),
        json!("2025-02-01T00:00:00Z"),
        json!("9999-12-31T23:59:59Z"),
        json!("+262142-12-31T23:59:59Z"),
        json!({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Stored states with some leaves replaced by odd values: each is read without a panic,
    /// and every decision on one that reads answers without a panic.
    #[test]
    fn no_decision_panics_on_a_stored_state(changes in prop::collection::vec((any::<prop::sample::Index>(), wild_leaf()), 1..6),
                                            hours in 0i64..20_000) {
        let catalog = catalog();
        let settings = Settings::default();
        let mut value = serde_json::to_value(realistic_state()).unwrap();
        for (index, leaf) in changes {
            let mut paths = Vec::new();
            leaves(&value, String::new(), &mut paths);
            if let Some(slot) = value.pointer_mut(&paths[index.index(paths.len())]) {
                *slot = leaf;
            }
        }
        let Ok(state) = serde_json::from_value::<CustomerState>(value) else { return Ok(()) };
        let now = start() + TimeDelta::hours(hours);
        let _ = advance(&catalog, &state, now, &settings);
        let _ = get_entitlements(&catalog, Some(&state), &FallbackEntitlements::default(),
            &parse::<GetEntitlementsRequest>(json!({"customerId": "c1"})), now);
        for (i, op) in [
            Op::Provision { plan: 2, annual: false, seats: 3, trial: 0, resource: 1, code: 1, later: false, checkout: true },
            Op::Provision { plan: 5, annual: false, seats: 2, trial: 2, resource: 1, code: 0, later: false, checkout: false },
            Op::Update { sub: 1, seats: 2, addons: 3, schedule: 0, proration: 0 },
            Op::Update { sub: 2, seats: 9, addons: 0, schedule: 1, proration: 1 },
            Op::Cancel { sub: 1, timing: 0 },
            Op::Cancel { sub: 2, timing: 2 },
            Op::CompleteCheckout { sub: 0 },
            Op::Usage { feature: 0, resource: 1, value: 10 },
            Op::Usage { feature: 1, resource: 0, value: -10 },
            Op::Grant { feature: 2, days: Some(3) },
        ].iter().enumerate() {
            let _ = step(&catalog, &state, op, 100 + i, now);
        }
    }
}

/// The state of paying customer `c1` after each `(instant, request)` of `requests`, decided
/// and applied in turn with the default settings.
fn provisioned(
    catalog: &Catalog,
    requests: impl IntoIterator<Item = (DateTime<Utc>, Value)>,
) -> CustomerState {
    let mut customer = Customer::new(CustomerId::new("c1"));
    customer.has_payment_method = true;
    let mut state = CustomerState::new(customer);
    for (at, request) in requests {
        let request = parse(request);
        provision(
            catalog,
            &state,
            &request,
            &Redemptions::new(),
            at,
            &Settings::default(),
        )
        .unwrap()
        .apply(&mut state, at);
    }
    state
}

/// `state` with its clock moved to `at` under the default settings.
fn advanced_to(catalog: &Catalog, state: &CustomerState, at: &str) -> CustomerState {
    advance(catalog, state, at.parse().unwrap(), &Settings::default())
        .unwrap()
        .0
}

/// `redeemedOn` (the subscription a coupon was redeemed on) came after the first stored
/// shape: a coupon stored without it reads, and its uses are shared within its scope only,
/// as they were then: a trial beside the subscription that spends a `ONCE` coupon has it
/// spent too, and two workspaces that redeemed one code at one instant keep a discount each.
#[test]
fn a_coupon_stored_without_the_subscription_it_was_redeemed_on_shares_its_uses_in_its_scope() {
    let catalog = catalog();
    let now: DateTime<Utc> = "2025-01-15T00:00:00Z".parse().unwrap();
    let requests = [
        json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "r1",
            "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}], "promotionCode": "WELCOME10",
            "subscriptionId": "k-1", "startDate": "2025-01-01T00:00:00Z"}),
        json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "r2",
            "billableFeatures": [{"featureId": "storage-gb", "quantity": 50}], "promotionCode": "WELCOME10",
            "subscriptionId": "k-2", "startDate": "2025-01-01T00:00:00Z"}),
        json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "skipTrial": true,
            "promotionCode": "WELCOME10", "subscriptionId": "s", "startDate": "2025-01-01T00:00:00Z"}),
        json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "subscriptionId": "t",
            "trialOverride": {"isTrial": true, "trialEndDate": "2025-03-20T00:00:00Z"}}),
    ];
    let state = provisioned(&catalog, requests.map(|request| (now, request)));
    let mut value = serde_json::to_value(&state).unwrap();
    for sub in value["subscriptions"].as_array_mut().unwrap() {
        if let Some(coupon) = sub["coupon"].as_object_mut() {
            assert!(coupon.remove("redeemedOn").is_some());
        }
    }
    let state: CustomerState = serde_json::from_value(value).unwrap();
    let coupon =
        |state: &CustomerState, id: &str| state.subscription(id).unwrap().coupon.clone().unwrap();
    assert_eq!(coupon(&state, "t").redeemed_on, None);
    assert_eq!(coupon(&state, "t").invoices_discounted, 0);

    let state = advanced_to(&catalog, &state, "2025-02-02T00:00:00Z");
    let discounts: Vec<_> = state
        .invoices
        .iter()
        .map(|invoice| (invoice.subscription.as_str(), invoice.discount_amount))
        .collect();
    let ten = "10".parse().unwrap();
    assert_eq!(discounts, [("k-1", ten), ("k-2", ten), ("s", ten)]);
    assert_eq!(coupon(&state, "t").invoices_discounted, 1);
}

/// A state stored before scheduled changes reserved their new subscription's id can have
/// given that id to another subscription. The change then applies under a new id, and the
/// redemption its request brought is known by the id the subscription gets.
#[test]
fn a_change_whose_reserved_id_was_given_away_keeps_its_redemption_under_its_new_id() {
    let catalog = catalog();
    let start = start();
    let later = start + TimeDelta::days(9);
    let requests = [
        (
            start,
            json!({"customerId": "c1", "planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true, "subscriptionId": "p"}),
        ),
        (
            later,
            json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "promotionCode": "WELCOME10"}),
        ),
        (
            later,
            json!({"customerId": "c1", "planId": "ws-plus", "billingPeriod": "MONTHLY", "resourceId": "r1", "subscriptionId": "other"}),
        ),
    ];
    let state = provisioned(&catalog, requests);
    let update = &state.subscription("p").unwrap().scheduled_updates[0];
    let reserved = update.new_subscription_id.clone().unwrap();
    assert_eq!(
        update.coupon.as_ref().unwrap().redeemed_on,
        Some(reserved.clone())
    );
    let mut value = serde_json::to_value(&state).unwrap();
    for sub in value["subscriptions"].as_array_mut().unwrap() {
        if sub["id"] == json!("other") {
            sub["id"] = json!(reserved.as_str());
        }
    }
    let state: CustomerState = serde_json::from_value(value).unwrap();

    let state = advanced_to(&catalog, &state, "2025-02-02T00:00:00Z");
    let changed = state
        .subscriptions
        .iter()
        .find(|s| s.plan_id().as_str() == "starter")
        .unwrap();
    assert_ne!(changed.id, reserved);
    assert_eq!(
        changed.coupon.as_ref().unwrap().redeemed_on,
        Some(changed.id.clone())
    );
}
