//! Idempotency records as a host stores them: JSON that deserializes to an equal record and
//! serializes again to the same bytes, whatever operation made it; one realistic record's
//! JSON as a snapshot; stored JSON that cannot be a record is refused with a serde error,
//! and replaying whatever does deserialize never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use chrono::{DateTime, TimeDelta, Utc};
use pollster::block_on;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::future::{Future, ready};
use std::sync::Mutex;
use tollgate_adapters::{
    Commit, Engine, Error, IdempotencyKey, MemoryStorage, Recorded, Saved, ScriptedBilling,
    Storage, Stored,
};
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::id::{CustomerId, SubscriptionId};
use tollgate_core::journey::CustomerFields;
use tollgate_core::settings::Settings;

/// A memory storage that keeps a copy of every record it is asked to save.
#[derive(Debug, Default)]
struct Capture {
    inner: MemoryStorage,
    records: Mutex<Vec<Recorded>>,
}

impl Storage for Capture {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        self.inner.load(customer)
    }

    fn save(&self, commit: Commit) -> impl Future<Output = Result<Saved, Error>> + Send {
        if let Some((_, recorded)) = &commit.idempotency {
            self.records.lock().unwrap().push(recorded.clone());
        }
        self.inner.save(commit)
    }

    fn recorded(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
        self.inner.recorded(key)
    }

    fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
        self.inner.redemptions()
    }
}

/// A storage that answers one record, whatever the key.
struct Replaying(Recorded);

impl Storage for Replaying {
    fn load(&self, _: &CustomerId) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        ready(Ok(None))
    }

    fn save(&self, _: Commit) -> impl Future<Output = Result<Saved, Error>> + Send {
        ready(Ok(Saved::Conflict))
    }

    fn recorded(
        &self,
        _: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
        ready(Ok(Some(self.0.clone())))
    }

    fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
        ready(Ok(Redemptions::new()))
    }
}

fn catalog() -> Catalog {
    Catalog::from_json(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../core/tests/data/reference-catalog.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn start() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn engine() -> Engine<Capture, ScriptedBilling> {
    let billing = ScriptedBilling::new();
    billing.set_payment_method(&CustomerId::new("c1"), true);
    Engine::new(catalog(), Settings::default(), Capture::default(), billing)
}

fn parse<T: serde::de::DeserializeOwned>(input: Value) -> T {
    serde_json::from_value(input).unwrap()
}

const PLANS: [&str; 6] = [
    "free",
    "starter",
    "pro",
    "enterprise",
    "ws-plus",
    "ws-basic",
];
const CODES: [Option<&str>; 3] = [None, Some("LAUNCH20"), Some("WELCOME10")];

/// Runs operation `op` (its kind and two choices) as the `i`-th, under key `k{i}`; a
/// failed operation records nothing.
fn run(
    engine: &Engine<Capture, ScriptedBilling>,
    op: (u8, usize, usize),
    i: usize,
    now: DateTime<Utc>,
) {
    let (kind, a, b) = op;
    let key = IdempotencyKey::new(format!("k{i}"));
    let key = Some(&key);
    let c1 = CustomerId::new("c1");
    let subs: Vec<SubscriptionId> = block_on(engine.customer_state(&c1))
        .map(|state| state.subscriptions.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    let sub = (!subs.is_empty()).then(|| subs[a % subs.len()].clone());
    let _ = match (kind, sub) {
        (0, _) => {
            let plan = PLANS[a % PLANS.len()];
            let mut input = json!({"customerId": "c1", "planId": plan, "billingPeriod": "MONTHLY",
                "subscriptionId": format!("s{i}"), "metadata": {"crm": format!("acct-{b}")}});
            if plan == "pro" {
                input["billableFeatures"] = json!([{"featureId": "seats", "quantity": b % 9 + 1}]);
                input["addons"] = json!([{"addonId": "priority-support"}]);
            }
            if plan.starts_with("ws-") {
                input["resourceId"] = json!(format!("r{}", b % 2));
            }
            if let Some(code) = CODES[b % CODES.len()] {
                input["promotionCode"] = json!(code);
            }
            if b % 4 == 0 {
                input["checkoutOptions"] = json!({"successUrl": "https://example.com/ok", "cancelUrl": "https://example.com/no"});
            }
            if b % 5 == 1 {
                input["startDate"] = json!((now + TimeDelta::days(10)).to_rfc3339());
            }
            block_on(engine.provision_subscription(&parse(input), now, key)).map(|_| ())
        }
        (1, _) => {
            let fields = CustomerFields {
                has_payment_method: Some(b % 3 != 0),
                timezone: (a % 2 == 0).then(|| "Europe/Berlin".to_owned()),
                billing_country_code: (b % 2 == 0).then(|| "DE".to_owned()),
                tax_percentage: (a % 3 == 0).then(|| "17.50".parse().unwrap()),
                tax_inclusive: Some(a % 2 == 1),
            };
            block_on(engine.update_customer(&c1, &fields, now, key)).map(|_| ())
        }
        (2, Some(sub)) => {
            let input = json!({"subscriptionId": sub.as_str(),
                "billableFeatures": [{"featureId": "seats", "quantity": b % 9 + 1}],
                "scheduleStrategy": (["IMMEDIATE", "END_OF_BILLING_PERIOD"][a % 2]),
                "prorationBehavior": (["INVOICE_IMMEDIATELY", "CREATE_PRORATIONS", "NONE"][b % 3]),
                "metadata": {"note": "changed"}});
            block_on(engine.update_subscription(&c1, &parse(input), now, key)).map(|_| ())
        }
        (3, Some(sub)) => {
            let input = json!({"subscriptionId": sub.as_str(),
                "cancellationTime": (["IMMEDIATE", "END_OF_BILLING_PERIOD"][b % 2])});
            block_on(engine.cancel_subscription(&c1, &parse(input), now, key)).map(|_| ())
        }
        (4, Some(sub)) => {
            let input = json!({"subscriptionId": sub.as_str()});
            block_on(engine.cancel_scheduled_updates(&c1, &parse(input), now, key)).map(|_| ())
        }
        (5, Some(sub)) => block_on(engine.complete_checkout(&c1, &sub, now, key)).map(|_| ()),
        (6, Some(sub)) => {
            let input = json!({"subscriptionId": sub.as_str(), "destinationResourceId": format!("r{}", b % 3)});
            block_on(engine.transfer_subscription(&c1, &parse(input), now, key)).map(|_| ())
        }
        (7, Some(sub)) => {
            let input = json!({"subscriptionId": sub.as_str()});
            block_on(engine.migrate_subscription(&c1, &parse(input), now, key)).map(|_| ())
        }
        (8, _) => {
            let mut input = json!({"customerId": "c1", "featureId": (["api-calls", "storage-gb"][a % 2]), "value": b % 50});
            if b % 3 == 0 {
                input["resourceId"] = json!("r0");
            }
            block_on(engine.report_usage(&parse(input), now, key)).map(|_| ())
        }
        (9, _) => {
            let input = json!({"customerId": "c1", "featureId": "api-calls", "usageLimit": 500 + b,
                "resetPeriod": "MONTH", "endDate": (now + TimeDelta::days(30)).to_rfc3339()});
            block_on(engine.grant_promotional_entitlement(&parse(input), now, key)).map(|_| ())
        }
        (10, _) => {
            let input = json!({"customerId": format!("c{}", a % 3 + 2), "hasPaymentMethod": true,
                "taxPercentage": "7.5",
                "subscriptionParams": ([Value::Null, json!({"planId": "starter", "billingPeriod": "MONTHLY"})][b % 2])});
            block_on(engine.provision_customer(&parse(input), now, key)).map(|_| ())
        }
        (11, _) if a % 7 == 0 => block_on(engine.archive_customer(&c1, now, key)).map(|_| ()),
        _ => Ok(()),
    };
}

/// Serializes `recorded`, deserializes it, and serializes it again.
fn round_trip(recorded: &Recorded) -> Result<(), TestCaseError> {
    let json = serde_json::to_string(recorded).unwrap();
    let back: Recorded =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
    prop_assert_eq!(&back, recorded);
    prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_stored_record_reads_back_equal_and_writes_the_same_bytes(
        ops in prop::collection::vec((0u8..12, 0usize..12, 0usize..12, 0i64..900), 1..24)
    ) {
        let engine = engine();
        block_on(engine.provision_customer(
            &parse(json!({"customerId": "c1", "hasPaymentMethod": true})), start(), None)).unwrap();
        let mut now = start();
        for (i, (kind, a, b, hours)) in ops.into_iter().enumerate() {
            now += TimeDelta::hours(hours);
            run(&engine, (kind, a, b), i, now);
        }
        for recorded in engine.storage().records.lock().unwrap().iter() {
            round_trip(recorded)?;
        }
    }
}

/// A paid subscription with an add-on and a promotion code, replacing a trial: a decision
/// with a charge, an invoice, an ended subscription and a full explanation.
fn realistic_record() -> Recorded {
    let engine = engine();
    block_on(engine.provision_customer(
        &parse(json!({"customerId": "c1", "hasPaymentMethod": true, "timezone": "Europe/Berlin"})),
        start(),
        None,
    ))
    .unwrap();
    let trial = json!({"customerId": "c1", "planId": "starter", "billingPeriod": "MONTHLY", "subscriptionId": "trial"});
    block_on(engine.provision_subscription(&parse(trial), start(), None)).unwrap();
    let now = start() + TimeDelta::days(3);
    let paid = json!({"customerId": "c1", "planId": "pro", "planVersion": 1, "billingPeriod": "MONTHLY",
        "billableFeatures": [{"featureId": "seats", "quantity": 5}], "addons": [{"addonId": "priority-support"}],
        "promotionCode": "LAUNCH20", "subscriptionId": "pro", "skipTrial": true, "metadata": {"crm": "acct-42"}});
    let key = IdempotencyKey::new("order-1");
    block_on(engine.provision_subscription(&parse(paid), now, Some(&key))).unwrap();
    block_on(engine.storage().recorded(&key)).unwrap().unwrap()
}

#[test]
fn a_realistic_stored_record_reads_as_it_is_written() {
    let recorded = realistic_record();
    let json = serde_json::to_string_pretty(&recorded).unwrap();
    insta::assert_snapshot!(json);
    let back: Recorded = serde_json::from_str(&json).unwrap();
    assert_eq!(back, recorded);
}

#[test]
fn stored_json_that_cannot_be_a_record_is_refused() {
    let json = serde_json::to_string(&realistic_record()).unwrap();
    let value: Value = serde_json::from_str(&json).unwrap();
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "unknown key",
            Box::new(|v| v["replayed"] = json!(true)),
            "unknown field `replayed`",
        ),
        (
            "unknown key in the decision",
            Box::new(|v| v["outcome"]["provisioned"]["decision"]["effects"]["refund"] = json!([])),
            "unknown field `refund`",
        ),
        (
            "unknown key in a step",
            Box::new(|v| {
                v["outcome"]["provisioned"]["decision"]["explanation"][0]["VALIDATED"]["name"] =
                    json!("x")
            }),
            "unknown field `name`",
        ),
        (
            "unknown operation",
            Box::new(|v| v["operation"] = json!({"refund": {}})),
            "unknown variant `refund`",
        ),
        (
            "unknown step",
            Box::new(|v| {
                v["outcome"]["provisioned"]["decision"]["explanation"][0] = json!({"GUESSED": {}})
            }),
            "unknown variant `GUESSED`",
        ),
        (
            "two operations in one",
            Box::new(|v| v["operation"]["archiveCustomer"] = json!({"customer": "c1"})),
            "",
        ),
        (
            "missing key",
            Box::new(|v| {
                v["outcome"]["provisioned"]
                    .as_object_mut()
                    .unwrap()
                    .remove("decision");
            }),
            "missing field `decision`",
        ),
        (
            "unknown consequence",
            Box::new(|v| {
                v["outcome"]["provisioned"]["decision"]["explanation"][0] = json!({"SAME_CONFIGURATION": {"subscription": "pro", "consequence": "anything"}})
            }),
            "unknown consequence `anything`",
        ),
    ];
    for (what, change, message) in cases {
        let mut changed = value.clone();
        change(&mut changed);
        match serde_json::from_value::<Recorded>(changed) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.to_string().contains(message), "{what}: {e}"),
        }
    }
}

#[test]
fn a_key_written_twice_is_refused() {
    let json = serde_json::to_string(&realistic_record()).unwrap();
    // The subscription's metadata, last written (the request's comes first).
    let metadata = r#""metadata":{"crm":"acct-42"}"#;
    let at = json.rfind(metadata).unwrap();
    let twice = format!(
        "{}{}{}",
        &json[..at],
        r#""metadata":{"crm":"acct-42","crm":"acct-43"}"#,
        &json[at + metadata.len()..]
    );
    for (written, message) in [
        (twice, "duplicate key `crm`"),
        (
            json.replacen(
                r#"{"operation":"#,
                r#"{"outcome":{"advanced":[]},"operation":"#,
                1,
            ),
            "duplicate field `outcome`",
        ),
    ] {
        assert_ne!(written, json, "{message}");
        let e = serde_json::from_str::<Recorded>(&written).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
    }
    let update = r#"{"subscriptionId": "s", "metadata": {"a": "1", "a": "2"}}"#;
    let e = serde_json::from_str::<tollgate_core::update::UpdateRequest>(update).unwrap_err();
    assert!(e.to_string().contains("duplicate key `a`"), "{e}");
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
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(""),
        json!("pro"),
        json!("c1"),
        json!("c2"),
        json!("USD"),
        json!("ACTIVE"),
        json!("-7.5"),
        json!("2025-02-01T00:00:00Z"),
        json!("9999-12-31T23:59:59Z"),
        json!([]),
        json!({}),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A corrupted record either is refused or replays without a panic: the engine answers
    /// it, or `IdempotencyKeyReused` or a storage error when it does not fit the request.
    #[test]
    fn a_corrupted_record_never_panics(picks in prop::collection::vec((any::<prop::sample::Index>(), wild_leaf()), 1..4)) {
        let mut value = serde_json::to_value(realistic_record()).unwrap();
        let mut paths = Vec::new();
        leaves(&value, String::new(), &mut paths);
        for (index, leaf) in picks {
            let path: &String = index.get(&paths);
            *value.pointer_mut(path).unwrap() = leaf;
        }
        if let Ok(recorded) = serde_json::from_value::<Recorded>(value) {
            let request = match &recorded.operation {
                tollgate_adapters::Operation::ProvisionSubscription(request) => (**request).clone(),
                _ => parse(json!({"customerId": "c1", "planId": "pro"})),
            };
            let engine = Engine::new(catalog(), Settings::default(), Replaying(recorded), ScriptedBilling::new());
            let _ = block_on(engine.provision_subscription(&request, start(), Some(&IdempotencyKey::new("k"))));
            let _ = block_on(engine.archive_customer(&CustomerId::new("c1"), start(), Some(&IdempotencyKey::new("k"))));
        }
    }
}
