//! The engine over the in-memory adapters: conformance, billing failures, idempotency,
//! version conflicts and many threads at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]

use chrono::{DateTime, TimeDelta, Utc};
use pollster::block_on;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tollgate_adapters::conformance::{self, BillingFixture};
use tollgate_adapters::engine::{Operation, Outcome};
use tollgate_adapters::memory::{BillingCall, Call};
use tollgate_adapters::{
    Billing, CheckoutId, Code, Commit, Engine, Error, IdempotencyKey, MemoryStorage, Recorded,
    Saved, ScriptedBilling, Storage, Stored,
};
use tollgate_core::cancellation::CancelRequest;
use tollgate_core::change::ChangeType;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::CustomerState;
use tollgate_core::id::{CustomerId, SubscriptionId};
use tollgate_core::invoice::{Invoice, InvoiceReason};
use tollgate_core::journey::{CustomerFields, ProvisionCustomerRequest};
use tollgate_core::lifecycle::EventKind;
use tollgate_core::provision::{CheckoutRequest, Effects, ProvisionRequest, ProvisionStatus};
use tollgate_core::settings::Settings;
use tollgate_core::subscription::SubscriptionStatus;
use tollgate_core::update::UpdateRequest;
use tollgate_core::{Catalog, ErrorCode};

const CATALOG: &str = r#"{
  "features": [{"id": "projects", "type": "NUMBER"}],
  "products": [{"id": "app"}, {"id": "ws", "multipleSubscriptions": true}],
  "plans": [
    {"id": "free", "productId": "app", "version": 1, "pricingType": "FREE",
     "entitlements": [{"featureId": "projects", "value": 1}]},
    {"id": "basic", "productId": "app", "version": 1, "pricingType": "PAID", "parentPlanId": "free",
     "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"}],
     "defaultTrial": {"duration": 14, "unit": "DAY", "endBehavior": "CONVERT_TO_PAID"},
     "entitlements": [{"featureId": "projects", "value": 10}]},
    {"id": "pro", "productId": "app", "version": 1, "pricingType": "PAID", "parentPlanId": "basic",
     "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 30, "currency": "USD"}],
     "defaultTrial": {"duration": 14, "unit": "DAY", "endBehavior": "CONVERT_TO_PAID"},
     "entitlements": [{"featureId": "projects", "value": 50}]},
    {"id": "ws-basic", "productId": "ws", "version": 1, "pricingType": "PAID",
     "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 5, "currency": "USD"}]}
  ],
  "coupons": [
    {"id": "launch", "type": "PERCENTAGE", "percentOff": 10, "duration": "ONCE",
     "promotionCodes": [{"code": "ONCE", "maxRedemptions": 1}]}
  ]
}"#;

type MemoryEngine = Engine<MemoryStorage, ScriptedBilling>;

fn engine() -> MemoryEngine {
    Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        MemoryStorage::new(),
        ScriptedBilling::new(),
    )
}

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text)
}

fn customer_request(id: &str, has_payment_method: bool) -> ProvisionCustomerRequest {
    serde_json::from_value(json!({"customerId": id, "hasPaymentMethod": has_payment_method}))
        .unwrap()
}

fn request(customer: &str, input: Value) -> ProvisionRequest {
    let mut input = input;
    input["customerId"] = json!(customer);
    serde_json::from_value(input).unwrap()
}

fn stored(engine: &MemoryEngine, customer: &str) -> Option<Stored> {
    block_on(engine.storage().load(&CustomerId::new(customer))).unwrap()
}

// ---- conformance ----

#[test]
fn memory_storage_passes_the_storage_conformance_checks() {
    let storage = MemoryStorage::new();
    block_on(conformance::storage(&storage, "first")).unwrap();
    // A store that already holds data passes too, under another namespace.
    block_on(conformance::storage(&storage, "second")).unwrap();
}

#[test]
fn scripted_billing_passes_the_billing_and_engine_conformance_checks() {
    let fixture = BillingFixture::example();
    let billing = ScriptedBilling::new();
    billing.set_payment_method(&fixture.with_payment_method, true);
    billing.reject_promotion_code(&fixture.refused_code);
    block_on(conformance::billing(&billing, &fixture)).unwrap();
    block_on(conformance::engine(MemoryStorage::new(), billing, &fixture)).unwrap();
}

#[test]
fn conformance_reports_a_storage_that_ignores_versions() {
    /// Saves whatever it is given: the lost-update bug the checks exist for.
    struct Careless(MemoryStorage);
    impl Storage for Careless {
        fn load(
            &self,
            customer: &CustomerId,
        ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
            self.0.load(customer)
        }
        async fn save(&self, commit: Commit) -> Result<Saved, Error> {
            let current = self.0.load(&commit.state.customer.id).await?;
            self.0
                .save(Commit {
                    expected: current.map(|s| s.version),
                    ..commit
                })
                .await
        }
        fn recorded(
            &self,
            key: &IdempotencyKey,
        ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
            self.0.recorded(key)
        }
        fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
            self.0.redemptions()
        }
    }
    let failure = block_on(conformance::storage(&Careless(MemoryStorage::new()), "x")).unwrap_err();
    assert_eq!(failure.check, "create twice");
}

#[test]
fn engine_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let engine = engine();
    let request = request("c1", json!({"planId": "free"}));
    let now = t("2025-01-01T00:00:00Z");
    assert_send(&engine.provision_subscription(&request, now, None));
    assert_send(&engine.customer_state(&CustomerId::new("c1")));
}

// ---- billing failures ----

/// One write of the timeline below.
#[derive(Clone, Copy, Debug)]
enum Step {
    Customer,
    PaidWithCheckout,
    Complete,
    Upgrade,
    Downgrade,
}

const TIMELINE: [Step; 5] = [
    Step::Customer,
    Step::PaidWithCheckout,
    Step::Complete,
    Step::Upgrade,
    Step::Downgrade,
];

fn run_step(engine: &MemoryEngine, step: Step, n: usize) -> Result<Outcome, Error> {
    let k = key(&format!("step-{n}"));
    let now = t("2025-01-01T00:00:00Z") + TimeDelta::days(n as i64);
    let outcome = match step {
        Step::Customer => Outcome::ProvisionCustomer(block_on(engine.provision_customer(
            &customer_request("c1", false),
            now,
            Some(&k),
        ))?),
        Step::PaidWithCheckout => Outcome::Provisioned(block_on(engine.provision_subscription(
            &request(
                "c1",
                json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                       "subscriptionId": "c1-basic",
                       "checkoutOptions": {"successUrl": "https://s", "cancelUrl": "https://c"}}),
            ),
            now,
            Some(&k),
        ))?),
        Step::Complete => Outcome::Provisioned(block_on(engine.complete_checkout(
            &CustomerId::new("c1"),
            &SubscriptionId::new("c1-basic"),
            now,
            Some(&k),
        ))?),
        Step::Upgrade => Outcome::Provisioned(block_on(engine.provision_subscription(
            &request(
                "c1",
                json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true,
                       "subscriptionId": "c1-pro"}),
            ),
            now,
            Some(&k),
        ))?),
        Step::Downgrade => Outcome::Provisioned(block_on(engine.provision_subscription(
            &request(
                "c1",
                json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                       "subscriptionId": "c1-basic-again", "scheduleStrategy": "IMMEDIATE"}),
            ),
            now,
            Some(&k),
        ))?),
    };
    Ok(outcome)
}

#[test]
fn the_timeline_calls_billing_for_checkout_payment_methods_and_charges() {
    let engine = engine();
    let outcomes: Vec<Outcome> = TIMELINE
        .iter()
        .enumerate()
        .map(|(n, step)| run_step(&engine, *step, n).unwrap())
        .collect();
    let Outcome::Provisioned(pending) = &outcomes[1] else {
        panic!("{:?}", outcomes[1])
    };
    assert_eq!(pending.decision.status, ProvisionStatus::PaymentRequired);
    assert_eq!(pending.checkout_id.as_ref().unwrap().as_str(), "checkout-1");
    let kinds: Vec<&str> = engine
        .billing()
        .calls()
        .iter()
        .map(|c| match c.call {
            BillingCall::HasPaymentMethod(_) => "has",
            BillingCall::CreateCheckout(..) => "checkout",
            BillingCall::Apply(..) => "apply",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["has", "checkout", "apply", "apply", "apply"]);
    let charged: Vec<String> = engine
        .billing()
        .charged()
        .iter()
        .map(|i| i.total.to_string())
        .collect();
    assert_eq!(charged.len(), 3, "{charged:?}");
    assert_eq!(stored(&engine, "c1").unwrap().state.invoices.len(), 3);
}

#[test]
fn a_billing_failure_at_any_call_saves_nothing_and_a_retry_with_the_same_key_charges_once() {
    let reference = engine();
    for (n, step) in TIMELINE.iter().enumerate() {
        run_step(&reference, *step, n).unwrap();
    }
    let total_calls = reference.billing().calls().len();
    let expected_state = stored(&reference, "c1").unwrap().state;
    let expected_charges = reference.billing().charged();

    for failing in 1..=total_calls {
        let engine = engine();
        engine.billing().fail_call(failing);
        let mut failures = 0;
        for (n, step) in TIMELINE.iter().enumerate() {
            let before = stored(&engine, "c1");
            match run_step(&engine, *step, n) {
                Ok(_) => {}
                Err(error) => {
                    failures += 1;
                    assert_eq!(error.code(), Code::BillingProviderError, "call {failing}");
                    assert_eq!(
                        stored(&engine, "c1"),
                        before,
                        "call {failing}: state changed"
                    );
                    // The same key again: it runs (nothing was recorded) and succeeds.
                    run_step(&engine, *step, n).unwrap();
                }
            }
        }
        assert_eq!(failures, 1, "call {failing}");
        assert_eq!(stored(&engine, "c1").unwrap().state, expected_state);
        assert_eq!(
            engine.billing().charged(),
            expected_charges,
            "call {failing}"
        );
    }
}

#[test]
fn a_retry_after_success_replays_the_first_result_without_billing() {
    let engine = engine();
    let outcomes: Vec<Outcome> = TIMELINE
        .iter()
        .enumerate()
        .map(|(n, step)| run_step(&engine, *step, n).unwrap())
        .collect();
    let calls = engine.billing().calls().len();
    let state = stored(&engine, "c1");
    for (n, step) in TIMELINE.iter().enumerate() {
        assert_eq!(
            run_step(&engine, *step, n).unwrap(),
            outcomes[n],
            "step {n}"
        );
    }
    assert_eq!(engine.billing().calls().len(), calls);
    assert_eq!(stored(&engine, "c1"), state);
    assert_eq!(engine.billing().charged().len(), 3);
}

#[test]
fn a_key_reused_for_another_operation_is_refused() {
    let engine = engine();
    let now = t("2025-01-01T00:00:00Z");
    let k = key("k");
    block_on(engine.provision_customer(&customer_request("c1", true), now, Some(&k))).unwrap();
    let error = block_on(engine.provision_customer(&customer_request("c2", true), now, Some(&k)))
        .unwrap_err();
    assert_eq!(error.code(), Code::IdempotencyKeyReused);
    assert!(stored(&engine, "c2").is_none());
    let error = block_on(engine.update_customer(
        &CustomerId::new("c1"),
        &CustomerFields::default(),
        now,
        Some(&k),
    ))
    .unwrap_err();
    assert_eq!(error.code(), Code::IdempotencyKeyReused);
}

#[test]
fn a_failed_decision_is_not_recorded_and_changes_nothing() {
    let engine = engine();
    let now = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), now, None)).unwrap();
    let before = stored(&engine, "c1");
    let k = key("paid");
    let paid = request(
        "c1",
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
    );
    let error = block_on(engine.provision_subscription(&paid, now, Some(&k))).unwrap_err();
    assert_eq!(
        error.code(),
        Code::Decision(ErrorCode::PaymentMethodNotFound)
    );
    assert_eq!(stored(&engine, "c1"), before);
    assert!(block_on(engine.storage().recorded(&k)).unwrap().is_none());
    // A payment method added at the provider since counts: the same key now goes through.
    engine
        .billing()
        .set_payment_method(&CustomerId::new("c1"), true);
    let answer = block_on(engine.provision_subscription(&paid, now, Some(&k))).unwrap();
    assert_eq!(answer.decision.status, ProvisionStatus::Success);
    assert!(
        stored(&engine, "c1")
            .unwrap()
            .state
            .customer
            .has_payment_method
    );
}

#[test]
fn unknown_customers_are_not_found_and_nothing_is_billed() {
    let engine = engine();
    let now = t("2025-01-01T00:00:00Z");
    let error = block_on(engine.provision_subscription(
        &request("ghost", json!({"planId": "free"})),
        now,
        None,
    ))
    .unwrap_err();
    assert_eq!(error.code(), Code::Decision(ErrorCode::CustomerNotFound));
    let error = block_on(engine.customer_state(&CustomerId::new("ghost"))).unwrap_err();
    assert_eq!(error.code(), Code::Decision(ErrorCode::CustomerNotFound));
    assert!(engine.billing().calls().is_empty());
}

#[test]
fn without_a_billing_integration_the_provider_is_never_called() {
    let settings = Settings::new(
        false,
        tollgate_core::proration::ProrationPolicy::Stripe,
        tollgate_core::money::RoundingMode::HalfUp,
    );
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        settings,
        MemoryStorage::new(),
        ScriptedBilling::new(),
    );
    let now = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), now, None)).unwrap();
    let answer = block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        ),
        now,
        None,
    ))
    .unwrap();
    assert_eq!(answer.decision.status, ProvisionStatus::Success);
    assert!(engine.billing().calls().is_empty());
}

#[test]
fn advancing_bills_each_issued_invoice_and_a_billing_failure_saves_nothing() {
    let engine = engine();
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", true), jan, None)).unwrap();
    block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        ),
        jan,
        None,
    ))
    .unwrap();
    assert!(
        block_on(engine.advance(&c1, t("2025-01-31T00:00:00Z")))
            .unwrap()
            .is_empty()
    );
    let before = stored(&engine, "c1");
    let calls = engine.billing().calls().len();
    engine.billing().fail_call(calls + 1);
    let error = block_on(engine.advance(&c1, t("2025-03-01T00:00:00Z"))).unwrap_err();
    assert_eq!(error.code(), Code::BillingProviderError);
    assert_eq!(stored(&engine, "c1"), before);
    let events = block_on(engine.advance(&c1, t("2025-03-01T00:00:00Z"))).unwrap();
    let invoices: Vec<_> = events.iter().filter_map(|e| e.invoice.clone()).collect();
    assert_eq!(invoices.len(), 2, "{events:?}");
    assert_eq!(engine.billing().charged()[1..], invoices[..]);
    assert_eq!(stored(&engine, "c1").unwrap().state.invoices.len(), 3);
    let error = block_on(engine.advance(&CustomerId::new("ghost"), jan)).unwrap_err();
    assert_eq!(error.code(), Code::Decision(ErrorCode::CustomerNotFound));
}

#[test]
fn a_payment_method_given_at_an_instant_charges_the_pending_subscription() {
    let engine = engine();
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), jan, None)).unwrap();
    block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                   "subscriptionId": "s", "startDate": "2025-02-01T00:00:00Z"}),
        ),
        jan,
        None,
    ))
    .unwrap();
    block_on(engine.advance(&c1, t("2025-02-01T00:00:00Z"))).unwrap();
    let status =
        |engine: &MemoryEngine| stored(engine, "c1").unwrap().state.subscriptions[0].status;
    assert_eq!(status(&engine), SubscriptionStatus::PaymentPending);
    let fields = CustomerFields {
        has_payment_method: Some(true),
        ..CustomerFields::default()
    };

    // Without a payment method the fields are set and the subscription keeps waiting.
    let other = copy_of(&engine);
    let no_method = CustomerFields {
        has_payment_method: Some(false),
        ..CustomerFields::default()
    };
    block_on(other.update_customer(&c1, &no_method, t("2025-02-10T00:00:00Z"), None)).unwrap();
    assert_eq!(status(&other), SubscriptionStatus::PaymentPending);
    assert!(other.billing().charged().is_empty());

    // A failed charge saves nothing, not even the fields.
    let before = stored(&engine, "c1");
    let feb10 = t("2025-02-10T00:00:00Z");
    engine
        .billing()
        .fail_call(engine.billing().calls().len() + 1);
    let error = block_on(engine.update_customer(&c1, &fields, feb10, None)).unwrap_err();
    assert_eq!(error.code(), Code::BillingProviderError);
    assert_eq!(stored(&engine, "c1"), before);

    let customer = block_on(engine.update_customer(&c1, &fields, feb10, None)).unwrap();
    assert!(customer.has_payment_method);
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(state.subscriptions[0].status, SubscriptionStatus::Active);
    assert_eq!(state.invoices.len(), 1);
    assert_eq!(engine.billing().charged(), state.invoices);
    let Some(Call {
        call: BillingCall::Apply(_, effects),
        ..
    }) = engine.billing().calls().last().cloned()
    else {
        panic!("the charge was not the last call");
    };
    assert_eq!(effects.invoice.as_ref(), Some(&state.invoices[0]));
    assert!(effects.create.is_empty() && effects.replace.is_empty() && effects.end.is_empty());
}

#[test]
fn provisioning_a_customer_with_a_payment_method_charges_its_pending_subscription() {
    let engine = engine();
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), jan, None)).unwrap();
    block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                   "subscriptionId": "s", "startDate": "2025-02-01T00:00:00Z"}),
        ),
        jan,
        None,
    ))
    .unwrap();
    block_on(engine.advance(&c1, t("2025-02-01T00:00:00Z"))).unwrap();
    assert_eq!(
        stored(&engine, "c1").unwrap().state.subscriptions[0].status,
        SubscriptionStatus::PaymentPending
    );

    let answer = block_on(engine.provision_customer(
        &customer_request("c1", true),
        t("2025-02-10T00:00:00Z"),
        None,
    ))
    .unwrap();
    assert!(answer.customer.has_payment_method);
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(state.subscriptions[0].status, SubscriptionStatus::Active);
    assert_eq!(state.invoices.len(), 1);
    assert_eq!(engine.billing().charged(), state.invoices);
}

/// A second engine holding the same customers as `engine`, with a fresh provider.
fn copy_of(engine: &MemoryEngine) -> MemoryEngine {
    let copy = self::engine();
    for id in engine.storage().customer_ids() {
        let state = stored(engine, id.as_str()).unwrap().state;
        let commit = Commit {
            expected: None,
            state,
            idempotency: None,
            redeemed: Vec::new(),
            released: Vec::new(),
        };
        assert!(matches!(
            block_on(copy.storage().save(commit)).unwrap(),
            Saved::Committed(_)
        ));
    }
    copy
}

// ---- version conflicts ----

/// A store where another writer changes the customer right before each of the engine's
/// first `interfere` saves.
struct Interfering {
    inner: MemoryStorage,
    interfere: usize,
    saves: AtomicUsize,
}

impl Interfering {
    fn new(interfere: usize) -> Self {
        Self {
            inner: MemoryStorage::new(),
            interfere,
            saves: AtomicUsize::new(0),
        }
    }
}

impl Storage for Interfering {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        self.inner.load(customer)
    }

    async fn save(&self, commit: Commit) -> Result<Saved, Error> {
        if self.saves.fetch_add(1, Ordering::SeqCst) < self.interfere {
            if let Some(current) = self.inner.load(&commit.state.customer.id).await? {
                let mut state = current.state;
                state.customer.tax_inclusive = !state.customer.tax_inclusive;
                let other = Commit {
                    expected: Some(current.version),
                    state,
                    idempotency: None,
                    redeemed: Vec::new(),
                    released: Vec::new(),
                };
                assert!(matches!(self.inner.save(other).await?, Saved::Committed(_)));
            }
        }
        self.inner.save(commit).await
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

fn seeded(storage: &Interfering) {
    let state = CustomerState::new(tollgate_core::customer::Customer::new(CustomerId::new(
        "c1",
    )));
    let commit = Commit {
        expected: None,
        state,
        idempotency: None,
        redeemed: Vec::new(),
        released: Vec::new(),
    };
    assert!(matches!(
        block_on(storage.inner.save(commit)).unwrap(),
        Saved::Committed(_)
    ));
}

#[test]
fn a_version_conflict_decides_again_and_keeps_both_writes() {
    let storage = Interfering::new(2);
    seeded(&storage);
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        storage,
        ScriptedBilling::new(),
    );
    let now = t("2025-01-01T00:00:00Z");
    let answer = block_on(engine.provision_subscription(
        &request("c1", json!({"planId": "free", "subscriptionId": "c1-free"})),
        now,
        Some(&key("k")),
    ))
    .unwrap();
    assert_eq!(
        answer.subscription.unwrap().status,
        SubscriptionStatus::Active
    );
    let state = block_on(engine.customer_state(&CustomerId::new("c1"))).unwrap();
    assert_eq!(state.subscriptions.len(), 1);
    // Two interfering writes toggled the flag twice; neither was lost.
    assert!(!state.customer.tax_inclusive);
    assert_eq!(engine.storage().saves.load(Ordering::SeqCst), 3);
    // Each conflicted attempt's application was voided before the next decision.
    let kinds: Vec<&str> = engine.billing().calls().iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "has", "apply", "void", "has", "apply", "void", "has", "apply"
        ]
    );
    let (applied, voided) = applications(engine.billing());
    assert_eq!(voided[..], applied[..2]);
    assert_eq!(state.subscriptions[0], applied[2].create[0]);
}

/// The short name of a billing call.
fn kind(call: &Call) -> &'static str {
    match call.call {
        BillingCall::HasPaymentMethod(_) => "has",
        BillingCall::CreateCheckout(..) => "checkout",
        BillingCall::Apply(..) => "apply",
        BillingCall::Void(..) => "void",
        _ => "other",
    }
}

/// The effects of the applications and of the voids that went through, in order.
fn applications(billing: &ScriptedBilling) -> (Vec<Effects>, Vec<Effects>) {
    let (mut applied, mut voided) = (Vec::new(), Vec::new());
    for call in billing.calls().into_iter().filter(|c| !c.failed) {
        match call.call {
            BillingCall::Apply(_, effects) => applied.push(*effects),
            BillingCall::Void(_, effects) => voided.push(*effects),
            _ => {}
        }
    }
    (applied, voided)
}

#[test]
fn conflicts_on_every_attempt_end_in_a_typed_error_and_nothing_of_the_operation_is_saved() {
    let storage = Interfering::new(usize::MAX);
    seeded(&storage);
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        storage,
        ScriptedBilling::new(),
    )
    .with_max_attempts(3);
    let k = key("k");
    let error = block_on(engine.provision_subscription(
        &request("c1", json!({"planId": "free"})),
        t("2025-01-01T00:00:00Z"),
        Some(&k),
    ))
    .unwrap_err();
    assert_eq!(error.code(), Code::ConcurrentModification);
    assert!(error.message().contains("`c1`"), "{error}");
    let state = block_on(engine.customer_state(&CustomerId::new("c1"))).unwrap();
    assert!(state.subscriptions.is_empty());
    assert!(block_on(engine.storage().recorded(&k)).unwrap().is_none());
    let (applied, voided) = applications(engine.billing());
    assert_eq!(applied.len(), 3);
    assert_eq!(voided, applied, "every attempt's application is voided");
}

#[test]
fn a_failing_void_answers_its_error_and_saves_nothing() {
    let storage = Interfering::new(1);
    seeded(&storage);
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        storage,
        ScriptedBilling::new(),
    );
    // hasPaymentMethod, apply, then the void of the conflicted attempt.
    engine.billing().fail_call(3);
    let k = key("k");
    let error = block_on(engine.provision_subscription(
        &request("c1", json!({"planId": "free"})),
        t("2025-01-01T00:00:00Z"),
        Some(&k),
    ))
    .unwrap_err();
    assert_eq!(error.code(), Code::BillingProviderError);
    assert!(error.message().contains("still in force"), "{error}");
    let calls = engine.billing().calls();
    assert_eq!(
        calls.iter().map(kind).collect::<Vec<_>>(),
        ["has", "apply", "void"]
    );
    assert!(calls[2].failed);
    let state = block_on(engine.customer_state(&CustomerId::new("c1"))).unwrap();
    assert!(state.subscriptions.is_empty());
    assert!(
        state.customer.tax_inclusive,
        "the other writer's change stays"
    );
    assert!(block_on(engine.storage().recorded(&k)).unwrap().is_none());
}

#[test]
fn a_failed_later_application_voids_the_earlier_ones_of_the_decision() {
    let engine = engine();
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", true), jan, None)).unwrap();
    block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        ),
        jan,
        None,
    ))
    .unwrap();
    let before = stored(&engine, "c1");
    let charged = engine.billing().charged();
    let calls = engine.billing().calls().len();
    // Two renewals are due: the second's charge fails.
    engine.billing().fail_call(calls + 2);
    let error = block_on(engine.advance(&c1, t("2025-03-01T00:00:00Z"))).unwrap_err();
    assert_eq!(error.code(), Code::BillingProviderError);
    assert_eq!(stored(&engine, "c1"), before);
    let after = engine.billing().calls();
    let Some(
        [
            Call {
                call: BillingCall::Apply(_, renewal),
                failed: false,
                ..
            },
            Call {
                call: BillingCall::Apply(..),
                failed: true,
                ..
            },
            Call {
                call: BillingCall::Void(_, voided),
                failed: false,
                ..
            },
        ],
    ) = after.get(calls..)
    else {
        panic!("{:?}", &after[calls..]);
    };
    assert_eq!(voided, renewal);
    assert_eq!(
        engine.billing().charged(),
        charged,
        "the renewal was taken back"
    );
    // Run again, both renewals are charged once.
    let events = block_on(engine.advance(&c1, t("2025-03-01T00:00:00Z"))).unwrap();
    assert_eq!(events.iter().filter(|e| e.invoice.is_some()).count(), 2);
    assert_eq!(engine.billing().charged().len(), 3);
}

#[test]
fn a_storage_failure_on_save_voids_the_billing_and_answers_the_storage_error() {
    /// Fails every save after the first (which creates the customer).
    struct Failing(MemoryStorage, AtomicUsize);
    impl Storage for Failing {
        fn load(
            &self,
            customer: &CustomerId,
        ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
            self.0.load(customer)
        }
        async fn save(&self, commit: Commit) -> Result<Saved, Error> {
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                self.0.save(commit).await
            } else {
                Err(Error::storage("the disk is full"))
            }
        }
        fn recorded(
            &self,
            key: &IdempotencyKey,
        ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
            self.0.recorded(key)
        }
        fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
            self.0.redemptions()
        }
    }
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        Failing(MemoryStorage::new(), AtomicUsize::new(0)),
        ScriptedBilling::new(),
    );
    let now = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", true), now, None)).unwrap();
    let error = block_on(engine.provision_subscription(
        &request(
            "c1",
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        ),
        now,
        None,
    ))
    .unwrap_err();
    assert_eq!(error.code(), Code::StorageError);
    assert_eq!(error.message(), "the disk is full");
    let (applied, voided) = applications(engine.billing());
    assert_eq!(applied.len(), 1);
    assert_eq!(voided, applied);
    assert!(engine.billing().charged().is_empty());
}

// ---- one engine, one customer at a time ----

/// A provider that, once closed, answers each application only after it is opened again:
/// the application has gone through, the answer is slow.
struct Gated {
    inner: ScriptedBilling,
    closed: AtomicBool,
}

impl Billing for Gated {
    fn has_payment_method(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.inner.has_payment_method(customer)
    }
    fn create_checkout(
        &self,
        customer: &CustomerId,
        checkout: &CheckoutRequest,
    ) -> impl Future<Output = Result<CheckoutId, Error>> + Send {
        self.inner.create_checkout(customer, checkout)
    }
    async fn apply(&self, customer: &CustomerId, effects: &Effects) -> Result<(), Error> {
        self.inner.apply(customer, effects).await?;
        std::future::poll_fn(|cx| {
            if self.closed.load(Ordering::SeqCst) {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        Ok(())
    }
    fn void(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.void(customer, effects)
    }
    fn validate_promotion_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.inner.validate_promotion_code(code)
    }
}

/// An engine over a gated provider, with customers `c1` and `c2` holding payment methods.
fn gated_engine() -> Engine<MemoryStorage, Gated> {
    let engine = Engine::new(
        Catalog::from_json(CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        MemoryStorage::new(),
        Gated {
            inner: ScriptedBilling::new(),
            closed: AtomicBool::new(false),
        },
    );
    let now = t("2025-01-01T00:00:00Z");
    for id in ["c1", "c2"] {
        block_on(engine.provision_customer(&customer_request(id, true), now, None)).unwrap();
    }
    engine.billing().closed.store(true, Ordering::SeqCst);
    engine
}

fn poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `future` until it is ready, at most 1,000 times.
fn drive<F: Future>(mut future: Pin<&mut F>) -> F::Output {
    for _ in 0..1_000 {
        if let Poll::Ready(output) = poll(future.as_mut()) {
            return output;
        }
    }
    panic!("the future did not finish");
}

fn applied_count(billing: &ScriptedBilling) -> usize {
    applications(billing).0.len()
}

#[test]
fn two_concurrent_requests_with_one_key_bill_once_and_answer_alike() {
    let engine = gated_engine();
    let paid = request(
        "c1",
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
    );
    let now = t("2025-01-02T00:00:00Z");
    let k = key("once");
    let mut first = pin!(engine.provision_subscription(&paid, now, Some(&k)));
    let mut second = pin!(engine.provision_subscription(&paid, now, Some(&k)));
    assert!(poll(first.as_mut()).is_pending());
    assert_eq!(applied_count(&engine.billing().inner), 1);
    // The second waits for the first instead of deciding and billing beside it.
    for _ in 0..10 {
        assert!(poll(second.as_mut()).is_pending());
    }
    assert_eq!(applied_count(&engine.billing().inner), 1);
    engine.billing().closed.store(false, Ordering::SeqCst);
    let first = drive(first).unwrap();
    let second = drive(second).unwrap();
    assert_eq!(first, second);
    assert_eq!(applied_count(&engine.billing().inner), 1);
    assert_eq!(engine.billing().inner.charged().len(), 1);
    let state = block_on(engine.customer_state(&CustomerId::new("c1"))).unwrap();
    assert_eq!(state.subscriptions.len(), 1);
    assert_eq!(state.invoices.len(), 1);
}

#[test]
fn a_write_of_another_customer_does_not_wait() {
    let engine = gated_engine();
    let now = t("2025-01-02T00:00:00Z");
    let paid = |customer| {
        request(
            customer,
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        )
    };
    let (paid1, paid2) = (paid("c1"), paid("c2"));
    let mut first = pin!(engine.provision_subscription(&paid1, now, None));
    assert!(poll(first.as_mut()).is_pending());
    // c2's write reaches billing, and with the gate open finishes, while c1's is waiting.
    let mut other = pin!(engine.provision_subscription(&paid2, now, None));
    assert!(poll(other.as_mut()).is_pending());
    assert_eq!(applied_count(&engine.billing().inner), 2);
    engine.billing().closed.store(false, Ordering::SeqCst);
    drive(other).unwrap();
    assert_eq!(stored_in(engine.storage(), "c2").invoices.len(), 1);
    assert!(stored_in(engine.storage(), "c1").invoices.is_empty());
    drive(first).unwrap();
    assert_eq!(stored_in(engine.storage(), "c1").invoices.len(), 1);
}

fn stored_in(storage: &MemoryStorage, customer: &str) -> CustomerState {
    block_on(storage.load(&CustomerId::new(customer)))
        .unwrap()
        .unwrap()
        .state
}

#[test]
fn a_promotion_code_at_its_maximum_is_refused_to_the_later_of_two_customers() {
    let engine = gated_engine();
    let now = t("2025-01-02T00:00:00Z");
    let with_code = |customer| {
        request(
            customer,
            json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                   "promotionCode": "ONCE"}),
        )
    };
    let (first_request, second_request) = (with_code("c1"), with_code("c2"));
    // Both decide while the code has no redemption; c1's provider answers late.
    let mut first = pin!(engine.provision_subscription(&first_request, now, None));
    assert!(poll(first.as_mut()).is_pending());
    engine.billing().closed.store(false, Ordering::SeqCst);
    let second = block_on(engine.provision_subscription(&second_request, now, None)).unwrap();
    assert_eq!(
        second.decision.effects.redeemed_code.as_deref(),
        Some("ONCE")
    );
    let error = drive(first).unwrap_err();
    assert_eq!(
        error.code(),
        Code::Decision(ErrorCode::PromotionCodeMaxRedemptionsReached)
    );
    assert!(error.message().contains("`ONCE`"), "{error}");
    let redemptions = block_on(engine.storage().redemptions()).unwrap();
    assert_eq!(redemptions.count("ONCE"), 1);
    assert!(stored_in(engine.storage(), "c1").subscriptions.is_empty());
    // c1's application was voided: only c2's charge stands.
    let charged = engine.billing().inner.charged();
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0].customer.as_str(), "c2");
    // Decided again, c1's request meets the count and core refuses it the same way.
    let again = block_on(engine.provision_subscription(&first_request, now, None)).unwrap_err();
    assert_eq!(again.code(), error.code());
}

// ---- the clock before every operation ----

/// A catalog with seats, for updates in place.
const SEATS_CATALOG: &str = r#"{
  "features": [{"id": "seats", "type": "NUMBER", "meter": "FLUCTUATING"}],
  "products": [{"id": "app"}],
  "plans": [
    {"id": "team", "productId": "app", "version": 1, "pricingType": "PAID",
     "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"},
                {"billingPeriod": "MONTHLY", "model": "PER_UNIT", "featureId": "seats", "unitPrice": 5, "currency": "USD"}]}
  ]
}"#;

/// An engine whose customer `c1` has paid for subscription `s1` (plan `team`, 1 seat) since
/// January 1; no operation has moved the clock since.
fn subscribed_since_january() -> MemoryEngine {
    let engine = Engine::new(
        Catalog::from_json(SEATS_CATALOG.as_bytes()).unwrap(),
        Settings::default(),
        MemoryStorage::new(),
        ScriptedBilling::new(),
    );
    let start = t("2025-01-01T00:00:00Z");
    engine
        .billing()
        .set_payment_method(&CustomerId::new("c1"), true);
    block_on(engine.provision_customer(&customer_request("c1", true), start, None)).unwrap();
    let paid = request(
        "c1",
        json!({"planId": "team", "billingPeriod": "MONTHLY", "unitQuantity": 1,
               "subscriptionId": "s1"}),
    );
    block_on(engine.provision_subscription(&paid, start, None)).unwrap();
    engine
}

/// The stored invoices as (reason, issued at), and whether the provider charged exactly them.
fn invoices_billed(engine: &MemoryEngine) -> Vec<(InvoiceReason, DateTime<Utc>)> {
    let state = stored(engine, "c1").unwrap().state;
    let ids = |invoices: &[Invoice]| invoices.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&engine.billing().charged()),
        ids(&state.invoices),
        "every invoice saved is charged once, in order"
    );
    state
        .invoices
        .iter()
        .map(|i| (i.reason, i.issued_at))
        .collect()
}

#[test]
fn a_cancellation_first_bills_the_renewal_due_before_it_and_answers_its_own_invoice() {
    let engine = subscribed_since_january();
    let cancel: CancelRequest =
        serde_json::from_value(json!({"subscriptionId": "s1", "cancellationTime": "IMMEDIATE"}))
            .unwrap();
    let now = t("2025-02-15T00:00:00Z");
    let canceled =
        block_on(engine.cancel_subscription(&CustomerId::new("c1"), &cancel, now, None)).unwrap();
    let invoice = canceled.invoice.unwrap();
    assert_eq!(invoice.reason, InvoiceReason::Cancellation);
    assert_eq!(invoice.issued_at, now);
    assert_eq!(
        invoices_billed(&engine),
        vec![
            (
                InvoiceReason::SubscriptionCreation,
                t("2025-01-01T00:00:00Z")
            ),
            (InvoiceReason::BillingCycle, t("2025-02-01T00:00:00Z")),
            (InvoiceReason::Cancellation, now),
        ]
    );
    // The credit is for the unused half of February, which was charged: (10 + 5) × 14/28.
    assert_eq!(invoice.credit_issued, Decimal::new(75, 1));
}

#[test]
fn an_update_first_invoices_the_period_that_renewed_before_it() {
    let engine = subscribed_since_january();
    let more: UpdateRequest =
        serde_json::from_value(json!({"subscriptionId": "s1", "unitQuantity": 3})).unwrap();
    let now = t("2025-02-15T00:00:00Z");
    let updated =
        block_on(engine.update_subscription(&CustomerId::new("c1"), &more, now, None)).unwrap();
    assert_eq!(updated.decision.change_type, ChangeType::Upgrade);
    let invoice = updated.decision.effects.invoice.unwrap();
    assert_eq!(invoice.reason, InvoiceReason::SubscriptionUpdate);
    // Two more seats for the second half of February: 2 × 5 × 14/28.
    assert_eq!(invoice.total, Decimal::from(5));
    assert_eq!(
        invoices_billed(&engine),
        vec![
            (
                InvoiceReason::SubscriptionCreation,
                t("2025-01-01T00:00:00Z")
            ),
            (InvoiceReason::BillingCycle, t("2025-02-01T00:00:00Z")),
            (InvoiceReason::SubscriptionUpdate, now),
        ]
    );
    let sub = updated.subscription.unwrap();
    assert_eq!(sub.current_period.unwrap().start, t("2025-02-01T00:00:00Z"));
}

#[test]
fn reads_answer_for_their_instant_without_saving() {
    let engine = subscribed_since_january();
    let customer = CustomerId::new("c1");
    let now = t("2025-02-15T00:00:00Z");
    let version = stored(&engine, "c1").unwrap().version;
    let state = block_on(engine.customer_state_at(&customer, now)).unwrap();
    let period = state.subscriptions[0].current_period.unwrap();
    assert_eq!(period.start, t("2025-02-01T00:00:00Z"));
    let more: UpdateRequest =
        serde_json::from_value(json!({"subscriptionId": "s1", "unitQuantity": 3})).unwrap();
    let estimate = block_on(engine.estimate_subscription_update(&customer, &more, now)).unwrap();
    assert_eq!(
        estimate.billing_period_range.unwrap().end,
        t("2025-03-01T00:00:00Z")
    );
    assert_eq!(estimate.proration.unwrap().net_amount, Decimal::from(5));
    // Nothing was saved or billed by the reads.
    assert_eq!(stored(&engine, "c1").unwrap().version, version);
    assert_eq!(engine.billing().charged().len(), 1);
}

#[test]
fn a_replay_at_a_later_instant_answers_the_first_result_and_moves_no_clock() {
    let engine = subscribed_since_january();
    let customer = CustomerId::new("c1");
    let more: UpdateRequest =
        serde_json::from_value(json!({"subscriptionId": "s1", "unitQuantity": 3})).unwrap();
    let first = block_on(engine.update_subscription(
        &customer,
        &more,
        t("2025-01-10T00:00:00Z"),
        Some(&key("more")),
    ))
    .unwrap();
    let version = stored(&engine, "c1").unwrap().version;
    let charged = engine.billing().charged().len();
    let replay = block_on(engine.update_subscription(
        &customer,
        &more,
        t("2025-02-15T00:00:00Z"),
        Some(&key("more")),
    ))
    .unwrap();
    assert_eq!(replay, first);
    assert_eq!(stored(&engine, "c1").unwrap().version, version);
    assert_eq!(engine.billing().charged().len(), charged);
}

#[test]
fn a_code_the_provider_refuses_is_refused_before_the_checkout_opens() {
    let engine = engine();
    let jan = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), jan, None)).unwrap();
    engine.billing().reject_promotion_code("ONCE");
    let before = stored(&engine, "c1");
    let calls = engine.billing().calls().len();
    let paid = request(
        "c1",
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
               "subscriptionId": "s1", "promotionCode": "ONCE",
               "checkoutOptions": {"successUrl": "https://s", "cancelUrl": "https://c"}}),
    );
    let error = block_on(engine.provision_subscription(&paid, jan, None)).unwrap_err();
    assert_eq!(
        error.code(),
        Code::Decision(ErrorCode::PromotionCodeNotFound)
    );
    assert_eq!(stored(&engine, "c1"), before);
    let opened = engine.billing().calls()[calls..]
        .iter()
        .any(|c| matches!(c.call, BillingCall::CreateCheckout(..)));
    assert!(!opened);
}

// ---- the clock asks for a payment method ----

/// An engine whose customer `c1` had no payment method when it provisioned `input` on
/// January 1, and has added one at the provider since.
fn payment_method_added_after(input: Value) -> MemoryEngine {
    let engine = engine();
    let start = t("2025-01-01T00:00:00Z");
    block_on(engine.provision_customer(&customer_request("c1", false), start, None)).unwrap();
    block_on(engine.provision_subscription(&request("c1", input), start, None)).unwrap();
    engine
        .billing()
        .set_payment_method(&CustomerId::new("c1"), true);
    engine
}

#[test]
fn a_trial_converts_when_the_provider_has_a_payment_method_by_its_end() {
    let engine = payment_method_added_after(
        json!({"planId": "basic", "billingPeriod": "MONTHLY", "subscriptionId": "s1"}),
    );
    let events =
        block_on(engine.advance(&CustomerId::new("c1"), t("2025-01-20T00:00:00Z"))).unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::TrialConverted), "{kinds:?}");
    assert!(!kinds.contains(&EventKind::TrialExpired), "{kinds:?}");
    let state = stored(&engine, "c1").unwrap().state;
    assert!(state.customer.has_payment_method);
    assert!(
        state
            .subscriptions
            .iter()
            .any(|s| s.status == SubscriptionStatus::Active && s.config.plan.as_str() == "basic")
    );
    let charged = engine.billing().charged();
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0].issued_at, t("2025-01-15T00:00:00Z"));
}

#[test]
fn a_waiting_subscription_starts_paid_when_the_provider_has_a_payment_method() {
    let engine = payment_method_added_after(json!({
        "planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
        "startDate": "2025-02-01T00:00:00Z", "subscriptionId": "s1"
    }));
    let events =
        block_on(engine.advance(&CustomerId::new("c1"), t("2025-02-02T00:00:00Z"))).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::SubscriptionStarted)
    );
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(
        state.subscription("s1").unwrap().status,
        SubscriptionStatus::Active
    );
    let charged = engine.billing().charged();
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0].reason, InvoiceReason::SubscriptionCreation);
}

#[test]
fn the_clock_does_not_ask_for_a_payment_method_when_nothing_due_needs_one() {
    let engine = subscribed_since_january();
    let asked = |engine: &MemoryEngine| {
        engine
            .billing()
            .calls()
            .iter()
            .filter(|c| matches!(c.call, BillingCall::HasPaymentMethod(_)))
            .count()
    };
    let before = asked(&engine);
    // A renewal charges the payment method on file; it does not depend on having one.
    block_on(engine.advance(&CustomerId::new("c1"), t("2025-02-02T00:00:00Z"))).unwrap();
    assert_eq!(asked(&engine), before);
}

#[test]
fn a_scheduled_plan_change_starts_paid_when_the_provider_has_a_payment_method() {
    // `c1` scheduled a downgrade from `pro` to `basic` for February 1, then removed the
    // payment method on record, and has since added one at the provider.
    let engine = engine();
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    engine.billing().set_payment_method(&c1, true);
    block_on(engine.provision_customer(&customer_request("c1", true), jan, None)).unwrap();
    let pro = json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true,
                     "subscriptionId": "s1"});
    block_on(engine.provision_subscription(&request("c1", pro), jan, None)).unwrap();
    let basic = json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
                       "subscriptionId": "s2", "scheduleStrategy": "END_OF_BILLING_PERIOD"});
    let jan10 = t("2025-01-10T00:00:00Z");
    let result =
        block_on(engine.provision_subscription(&request("c1", basic), jan10, None)).unwrap();
    assert!(result.decision.is_scheduled);
    engine.billing().set_payment_method(&c1, false);
    let no_method = CustomerFields {
        has_payment_method: Some(false),
        ..CustomerFields::default()
    };
    block_on(engine.update_customer(&c1, &no_method, jan10, None)).unwrap();
    engine.billing().set_payment_method(&c1, true);

    block_on(engine.advance(&c1, t("2025-02-02T00:00:00Z"))).unwrap();
    let state = stored(&engine, "c1").unwrap().state;
    assert!(state.customer.has_payment_method);
    let live: Vec<_> = state
        .subscriptions
        .iter()
        .filter(|s| !s.status.is_ended())
        .map(|s| (s.config.plan.as_str(), s.status))
        .collect();
    assert_eq!(live, [("basic", SubscriptionStatus::Active)]);
    let charged = engine.billing().charged();
    let last = charged.last().unwrap();
    assert_eq!(last.issued_at, t("2025-02-01T00:00:00Z"));
    assert_eq!(last.total, Decimal::from(10));
}

#[test]
fn a_card_declined_at_a_trial_end_lets_the_trial_expire() {
    // `c1` has a card on file that the provider declines from January 10; the trial of
    // `basic` ends on January 15.
    let c1 = CustomerId::new("c1");
    let jan = t("2025-01-01T00:00:00Z");
    let trial = json!({"planId": "basic", "billingPeriod": "MONTHLY", "subscriptionId": "s1"});
    for updating in [false, true] {
        let engine = engine();
        engine.billing().set_payment_method(&c1, true);
        block_on(engine.provision_customer(&customer_request("c1", true), jan, None)).unwrap();
        block_on(engine.provision_subscription(&request("c1", trial.clone()), jan, None)).unwrap();
        engine.billing().decline_charges(&c1, true);

        let jan20 = t("2025-01-20T00:00:00Z");
        if updating {
            // Another operation goes through too, the trial expiring on the way.
            let fields = CustomerFields {
                timezone: Some("Europe/Paris".to_owned()),
                ..CustomerFields::default()
            };
            block_on(engine.update_customer(&c1, &fields, jan20, None)).unwrap();
        } else {
            let events = block_on(engine.advance(&c1, jan20)).unwrap();
            let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
            assert!(kinds.contains(&EventKind::TrialExpired), "{kinds:?}");
        }
        let state = stored(&engine, "c1").unwrap().state;
        assert_eq!(
            state.subscription("s1").unwrap().status,
            SubscriptionStatus::Expired,
            "updating: {updating}"
        );
        assert!(!state.customer.has_payment_method);
        assert!(state.invoices.is_empty());
        assert!(engine.billing().charged().is_empty());
    }
}

#[test]
fn a_declined_renewal_is_answered_with_the_decline() {
    // A renewal is owed whatever its payment: a provider records its invoice and collects
    // it its own way (README, "Billing providers"), so a decline there is answered.
    let engine = subscribed_since_january();
    let c1 = CustomerId::new("c1");
    engine.billing().decline_charges(&c1, true);
    let before = stored(&engine, "c1");
    let error = block_on(engine.advance(&c1, t("2025-02-02T00:00:00Z"))).unwrap_err();
    assert_eq!(
        error.code(),
        Code::Decision(ErrorCode::PaymentMethodNotFound)
    );
    assert_eq!(stored(&engine, "c1"), before);
}

/// An engine whose customer `c1`, without a payment method, has `s1` waiting for payment
/// since it started on February 1 (first period `[Feb 1, Mar 1)`).
fn pending_since_february() -> MemoryEngine {
    let engine = payment_method_added_after(json!({
        "planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true,
        "startDate": "2025-02-01T00:00:00Z", "subscriptionId": "s1"
    }));
    let c1 = CustomerId::new("c1");
    engine.billing().set_payment_method(&c1, false);
    block_on(engine.advance(&c1, t("2025-02-01T00:00:00Z"))).unwrap();
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(
        state.subscription("s1").unwrap().status,
        SubscriptionStatus::PaymentPending
    );
    engine
}

#[test]
fn the_clock_collects_a_pending_payment_when_the_provider_reports_a_payment_method() {
    let engine = pending_since_february();
    let c1 = CustomerId::new("c1");
    let feb10 = t("2025-02-10T00:00:00Z");
    let given = copy_of(&engine);

    // While the provider has none, the clock moves nothing and saves nothing.
    let version = stored(&engine, "c1").unwrap().version;
    assert!(
        block_on(engine.advance(&c1, t("2025-02-05T00:00:00Z")))
            .unwrap()
            .is_empty()
    );
    assert_eq!(stored(&engine, "c1").unwrap().version, version);

    engine.billing().set_payment_method(&c1, true);
    let events = block_on(engine.advance(&c1, feb10)).unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::SubscriptionStarted, EventKind::InvoiceIssued]
    );
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(
        state.subscription("s1").unwrap().status,
        SubscriptionStatus::Active
    );
    assert_eq!(engine.billing().charged(), state.invoices);
    assert_eq!(state.invoices.len(), 1);
    assert_eq!(
        state.invoices[0].reason,
        InvoiceReason::SubscriptionCreation
    );
    assert_eq!(state.invoices[0].issued_at, feb10);

    // Exactly what `updateCustomer` giving the payment method at that instant does.
    let fields = CustomerFields {
        has_payment_method: Some(true),
        ..CustomerFields::default()
    };
    block_on(given.update_customer(&c1, &fields, feb10, None)).unwrap();
    let expected = stored(&given, "c1").unwrap().state;
    assert_eq!(state, expected);
    assert_eq!(given.billing().charged(), engine.billing().charged());
}

#[test]
fn an_operation_collects_a_pending_payment_the_provider_can_now_charge_before_deciding() {
    let engine = pending_since_february();
    let c1 = CustomerId::new("c1");
    let feb10 = t("2025-02-10T00:00:00Z");
    engine.billing().set_payment_method(&c1, true);

    // A read answers for its instant without saving.
    let read = block_on(engine.customer_state_at(&c1, feb10)).unwrap();
    assert_eq!(
        read.subscription("s1").unwrap().status,
        SubscriptionStatus::Active
    );
    assert!(engine.billing().charged().is_empty());

    // An operation at that instant that brings no payment method (a new time zone)
    // collects first, billing the charge, then decides.
    let fields = CustomerFields {
        timezone: Some("Europe/Paris".to_owned()),
        ..CustomerFields::default()
    };
    let customer = block_on(engine.update_customer(&c1, &fields, feb10, None)).unwrap();
    assert!(customer.has_payment_method);
    assert_eq!(customer.timezone.name(), "Europe/Paris");
    let state = stored(&engine, "c1").unwrap().state;
    assert_eq!(
        state.subscription("s1").unwrap().status,
        SubscriptionStatus::Active
    );
    assert_eq!(engine.billing().charged(), state.invoices);
    assert_eq!(state.invoices[0].issued_at, feb10);
}

#[test]
fn ending_a_pending_subscription_never_collects_it_first() {
    // The provider has a payment method for `c1` by February 10; `s1` still waits for it.
    let c1 = CustomerId::new("c1");
    let feb10 = t("2025-02-10T00:00:00Z");
    let cancel: CancelRequest =
        serde_json::from_value(json!({"subscriptionId": "s1", "cancellationTime": "IMMEDIATE"}))
            .unwrap();
    for archive in [false, true] {
        let engine = pending_since_february();
        engine.billing().set_payment_method(&c1, true);
        if archive {
            block_on(engine.archive_customer(&c1, feb10, None)).unwrap();
        } else {
            block_on(engine.cancel_subscription(&c1, &cancel, feb10, None)).unwrap();
        }
        let state = stored(&engine, "c1").unwrap().state;
        let s1 = state.subscription("s1").unwrap();
        assert_eq!(
            s1.status,
            SubscriptionStatus::Canceled,
            "archive: {archive}"
        );
        assert_eq!(s1.end_date, Some(feb10));
        assert!(engine.billing().charged().is_empty(), "archive: {archive}");
        assert!(state.invoices.is_empty(), "archive: {archive}");
        assert!(
            state.customer.credit_balance.is_empty(),
            "archive: {archive}"
        );
    }
}

#[test]
fn a_payment_method_reported_after_the_pending_window_collects_nothing() {
    let c1 = CustomerId::new("c1");
    for to in ["2025-03-01T00:00:00Z", "2025-03-05T00:00:00Z"] {
        let engine = pending_since_february();
        engine.billing().set_payment_method(&c1, true);
        let events = block_on(engine.advance(&c1, t(to))).unwrap();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::SubscriptionCanceled], "{to}");
        let state = stored(&engine, "c1").unwrap().state;
        let s1 = state.subscription("s1").unwrap();
        assert_eq!(s1.status, SubscriptionStatus::Canceled);
        assert_eq!(
            s1.cancel_reason,
            Some(tollgate_core::subscription::CancelReason::PendingPaymentExpired)
        );
        assert!(state.invoices.is_empty());
        assert!(engine.billing().charged().is_empty());
    }
}

// ---- many threads ----

/// A small deterministic generator (64-bit LCG): the test needs variety, not quality.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const THREADS: usize = 8;
const OPERATIONS: usize = 1_000;
const CUSTOMERS: u64 = 10;

/// A store shared by several engines, as one database is shared by several processes,
/// counting the saves that met a newer version.
struct SharedStorage {
    inner: Arc<MemoryStorage>,
    conflicts: Arc<AtomicUsize>,
}

impl Storage for SharedStorage {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        self.inner.load(customer)
    }

    async fn save(&self, commit: Commit) -> Result<Saved, Error> {
        let saved = self.inner.save(commit).await?;
        if saved == Saved::Conflict {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(saved)
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

/// A provider shared by several engines.
struct SharedBilling(Arc<ScriptedBilling>);

impl Billing for SharedBilling {
    fn has_payment_method(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.0.has_payment_method(customer)
    }
    fn create_checkout(
        &self,
        customer: &CustomerId,
        checkout: &CheckoutRequest,
    ) -> impl Future<Output = Result<CheckoutId, Error>> + Send {
        self.0.create_checkout(customer, checkout)
    }
    fn apply(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.0.apply(customer, effects)
    }
    fn void(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.0.void(customer, effects)
    }
    fn validate_promotion_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.0.validate_promotion_code(code)
    }
}

type SharedEngine = Engine<SharedStorage, SharedBilling>;

fn concurrent_operation(
    engine: &SharedEngine,
    rng: &mut Lcg,
    clock: &AtomicUsize,
    k: &IdempotencyKey,
) -> Result<Outcome, Error> {
    let customer = format!("c{}", rng.below(CUSTOMERS));
    let id = CustomerId::new(customer.as_str());
    let now =
        t("2025-01-01T00:00:00Z") + TimeDelta::minutes(clock.fetch_add(1, Ordering::SeqCst) as i64);
    let checkout = json!({"successUrl": "https://s", "cancelUrl": "https://c"});
    let input = match rng.below(8) {
        0 => json!({"planId": "free"}),
        1 => json!({"planId": "basic", "billingPeriod": "MONTHLY"}),
        2 => json!({"planId": "basic", "billingPeriod": "MONTHLY", "skipTrial": true}),
        3 => json!({"planId": "pro", "billingPeriod": "MONTHLY", "skipTrial": true}),
        4 => json!({"planId": "pro", "billingPeriod": "MONTHLY",
                    "trialOverride": {"isTrial": true}}),
        5 => json!({"planId": "ws-basic", "billingPeriod": "MONTHLY",
                    "resourceId": format!("ws-{}", rng.below(3))}),
        6 => {
            let tax = rng.below(30);
            let fields = CustomerFields {
                tax_percentage: Some(tax.into()),
                ..CustomerFields::default()
            };
            return block_on(engine.update_customer(&id, &fields, now, Some(k)))
                .map(Outcome::UpdateCustomer);
        }
        _ => {
            let state = block_on(engine.customer_state(&id))?;
            let Some(pending) = state.pending_checkouts.first() else {
                return block_on(engine.update_customer(
                    &id,
                    &CustomerFields::default(),
                    now,
                    Some(k),
                ))
                .map(Outcome::UpdateCustomer);
            };
            return block_on(engine.complete_checkout(&id, &pending.subscription_id, now, Some(k)))
                .map(Outcome::Provisioned);
        }
    };
    let mut input = input;
    input["subscriptionId"] = json!(k.as_str());
    input["checkoutOptions"] = checkout;
    block_on(engine.provision_subscription(&request(&customer, input), now, Some(k)))
        .map(Outcome::Provisioned)
}

/// What a concurrent run saw.
struct Run {
    accepted: usize,
    applications: usize,
    voids: usize,
    conflicts: usize,
}

/// Runs `THREADS` threads of `OPERATIONS` operations each over `CUSTOMERS` customers,
/// spread over `engines` engines that share one store and one provider, and checks what
/// must hold however the operations interleave.
fn run_concurrently(engines: usize) -> Run {
    let storage = Arc::new(MemoryStorage::new());
    let billing = Arc::new(ScriptedBilling::new());
    let conflicts = Arc::new(AtomicUsize::new(0));
    let engines: Vec<SharedEngine> = (0..engines)
        .map(|_| {
            Engine::new(
                Catalog::from_json(CATALOG.as_bytes()).unwrap(),
                Settings::default(),
                SharedStorage {
                    inner: Arc::clone(&storage),
                    conflicts: Arc::clone(&conflicts),
                },
                SharedBilling(Arc::clone(&billing)),
            )
        })
        .collect();
    let engine = &engines[0];
    let start = t("2025-01-01T00:00:00Z");
    for c in 0..CUSTOMERS {
        // Half the customers start without a payment method and go through checkouts.
        let request = customer_request(&format!("c{c}"), c % 2 == 0);
        block_on(engine.provision_customer(&request, start, None)).unwrap();
    }
    let clock = AtomicUsize::new(0);
    let accepted: Mutex<Vec<(IdempotencyKey, Outcome)>> = Mutex::new(Vec::new());
    let refused: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let engine = &engines[thread % engines.len()];
            let (clock, accepted, refused) = (&clock, &accepted, &refused);
            scope.spawn(move || {
                let mut rng = Lcg(thread as u64 + 1);
                for n in 0..OPERATIONS {
                    let k = key(&format!("t{thread}-{n}"));
                    match concurrent_operation(engine, &mut rng, clock, &k) {
                        Ok(outcome) => accepted.lock().unwrap().push((k, outcome)),
                        Err(error) => refused.lock().unwrap().push(error),
                    }
                }
            });
        }
    });
    let conflicts = conflicts.load(Ordering::SeqCst);
    let accepted = accepted.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    assert_eq!(accepted.len() + refused.len(), THREADS * OPERATIONS);
    assert!(
        accepted.len() > THREADS * OPERATIONS / 2,
        "only {} accepted; refusals: {:?}",
        accepted.len(),
        refused
            .iter()
            .map(|e| e.code().as_str())
            .collect::<BTreeSet<_>>()
    );
    for error in &refused {
        assert!(
            matches!(
                error.code(),
                Code::Decision(_) | Code::ConcurrentModification
            ),
            "{error}"
        );
    }

    // Every scope holds at most one live trial and one live non-trial subscription.
    for c in 0..CUSTOMERS {
        let state = stored_in(&storage, &format!("c{c}"));
        let mut scopes = BTreeSet::new();
        for sub in state.subscriptions.iter().filter(|s| s.status.is_live()) {
            let trial = sub.status == SubscriptionStatus::InTrial;
            let scope = (sub.product.clone(), sub.resource.clone(), trial);
            assert!(scopes.insert(scope.clone()), "c{c}: two live in {scope:?}");
        }
    }

    // Every accepted operation is recorded and its effects are in the saved state. A
    // pending checkout is gone only when an accepted completion consumed it.
    let mut completed = BTreeSet::new();
    for (k, _) in &accepted {
        let recorded = block_on(engine.storage().recorded(k)).unwrap().unwrap();
        if let Operation::CompleteCheckout { subscription, .. } = recorded.operation {
            completed.insert(subscription);
        }
    }
    for (k, outcome) in &accepted {
        let recorded = block_on(engine.storage().recorded(k)).unwrap().unwrap();
        assert_eq!(&recorded.outcome, outcome, "{k}");
        let Outcome::Provisioned(answer) = outcome else {
            continue;
        };
        let customer = recorded.operation.customer().clone();
        let state = stored_in(&storage, customer.as_str());
        for created in &answer.decision.effects.create {
            assert!(
                state.subscription(created.id.as_str()).is_some(),
                "{k}: lost {}",
                created.id
            );
        }
        if let Some(invoice) = &answer.decision.effects.invoice {
            assert!(
                state.invoices.contains(invoice),
                "{k}: lost invoice {}",
                invoice.id
            );
        }
        if let Some(checkout) = &answer.decision.checkout {
            let id = checkout.subscription_id.as_str();
            assert!(
                completed.contains(&checkout.subscription_id)
                    || state
                        .pending_checkouts
                        .iter()
                        .any(|p| p.subscription_id.as_str() == id),
                "{k}: lost checkout for {id}"
            );
        }
    }
    // Every application the provider keeps is one of a saved decision, and every saved
    // decision's application is kept: the rest were voided.
    let (applied, voided) = applications(&billing);
    let mut in_force = BTreeMap::new();
    for call in billing.calls().into_iter().filter(|c| !c.failed) {
        match call.call {
            BillingCall::Apply(customer, effects) => {
                *in_force
                    .entry(format!("{customer} {effects:?}"))
                    .or_insert(0) += 1;
            }
            BillingCall::Void(customer, effects) => {
                let count = in_force.get_mut(&format!("{customer} {effects:?}"));
                *count.expect("a void of an application never made") -= 1;
            }
            _ => {}
        }
    }
    in_force.retain(|_, count| *count != 0);
    let mut saved = BTreeMap::new();
    for (k, outcome) in &accepted {
        if let Outcome::Provisioned(answer) = outcome {
            let effects = &answer.decision.effects;
            let billable = !effects.create.is_empty()
                || !effects.replace.is_empty()
                || !effects.end.is_empty()
                || !effects.schedule.is_empty()
                || effects.invoice.is_some();
            if billable {
                let customer = block_on(engine.storage().recorded(k)).unwrap().unwrap();
                let customer = customer.operation.customer().clone();
                *saved.entry(format!("{customer} {effects:?}")).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        applied.len() - voided.len(),
        saved.values().sum::<usize>(),
        "applications less voids against committed operations that billed"
    );
    assert!(
        in_force == saved,
        "the applications in force are not the saved ones"
    );
    // And so the provider's charges are exactly the saved invoices.
    let mut charged: Vec<String> = billing.charged().into_iter().map(|i| i.id).collect();
    let mut invoiced: Vec<String> = (0..CUSTOMERS)
        .flat_map(|c| stored_in(&storage, &format!("c{c}")).invoices)
        .map(|i| i.id)
        .collect();
    charged.sort();
    invoiced.sort();
    assert_eq!(charged, invoiced);
    Run {
        accepted: accepted.len(),
        applications: applied.len(),
        voids: voided.len(),
        conflicts,
    }
}

fn report(engines: usize, run: &Run) {
    eprintln!(
        "{engines} engine(s): {} of {} operations accepted, {} billing applications, {} voided, \
         {} save conflicts",
        run.accepted,
        THREADS * OPERATIONS,
        run.applications,
        run.voids,
        run.conflicts
    );
}

#[test]
fn eight_threads_through_one_engine_never_meet_their_own_writes() {
    let run = run_concurrently(1);
    report(1, &run);
    // The per-customer lock leaves no other writer: no save conflicts, nothing to void.
    assert_eq!(run.conflicts, 0);
    assert_eq!(run.voids, 0);
}

#[test]
fn eight_threads_through_two_engines_void_every_application_they_do_not_save() {
    let run = run_concurrently(2);
    report(2, &run);
    // Saves conflict across engines, whose locks cannot see each other; each conflicted
    // attempt's application was voided (checked inside).
    assert!(
        run.voids <= run.conflicts,
        "more voids than unsaved attempts"
    );
}
