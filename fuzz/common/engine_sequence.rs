//! The `engine_sequence` target: operations on two customers run through
//! `tollgate_adapters::Engine` with `MemoryStorage` and `ScriptedBilling`, some billing
//! calls scripted to fail, some customers' charges declined, some operations under
//! idempotency keys.
//!
//! After each operation, for every customer's stored state: every scope holds at most one
//! live trial and one live non-trial subscription, and no invoice has a negative total. An
//! operation that fails leaves every stored state as it was, and one that succeeds changes
//! no other customer. A key already used answers the recorded outcome and changes nothing
//! for the same operation, and fails with `IdempotencyKeyReused` for another. Every invoice
//! the provider keeps charged belongs to a saved state (unless a void failed, which the
//! engine documents as left to the host). Failures carry a code and a message. The whole
//! sequence runs on two engines with separately loaded catalogs and must answer the same.

use crate::catalog::{GenCatalog, reference};
use crate::checks;
use crate::requests::{Cancel, Prov, Upd, Usage, Wait, migrate, transfer};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use tollgate_adapters::memory::BillingCall;
use tollgate_adapters::{Engine, Error, IdempotencyKey, MemoryStorage, ScriptedBilling};
use tollgate_core::Catalog;
use tollgate_core::customer::CustomerState;
use tollgate_core::id::CustomerId;
use tollgate_core::journey::ProvisionCustomerRequest;
use tollgate_core::money::RoundingMode;
use tollgate_core::proration::ProrationPolicy;
use tollgate_core::settings::Settings;

const CUSTOMERS: [&str; 2] = ["c0", "c1"];

fuzz_enum! {
    /// An operation; the first `u8` picks the customer.
    pub enum Op {
        ProvisionCustomer(u8, Option<bool>, Option<Prov>),
        Provision(u8, Prov),
        Update(u8, Upd),
        Cancel(u8, Cancel),
        Migrate(u8, u8, bool),
        Transfer(u8, u8, u8),
        Archive(u8),
        ReportUsage(u8, Usage),
        Advance(u8),
        PaymentMethod(u8, bool),
        /// The provider declines (or accepts again) the customer's charges.
        Decline(u8, bool),
    }
}

fuzz_struct! {
    /// One step: the clock moves, maybe one of the next billing calls is scripted to fail,
    /// then the operation runs, maybe under an idempotency key.
    pub struct Step {
        pub wait: Wait,
        pub fail_call: Option<u8>,
        pub key: Option<u8>,
        pub op: Op,
    }
}

fuzz_struct! {
    /// The whole input.
    pub struct Input {
        pub catalog: Option<GenCatalog>,
        pub billing_integration: bool,
        pub policy: u8,
        pub steps: [Option<Step>; 8],
    }
}

/// Where every timeline starts.
pub fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01 is in range")
}

type TestEngine = Engine<MemoryStorage, ScriptedBilling>;

fn customer(n: u8) -> CustomerId {
    CustomerId::new(CUSTOMERS[usize::from(n) % CUSTOMERS.len()])
}

fn stored(engine: &TestEngine) -> Vec<Option<CustomerState>> {
    CUSTOMERS
        .iter()
        .map(|c| pollster::block_on(engine.customer_state(&CustomerId::new(*c))).ok())
        .collect()
}

/// What an operation was (the request as the engine compares it) and what it answered.
struct Ran {
    operation: String,
    answer: Result<String, Error>,
    customer: usize,
}

fn ran<T: Debug>(operation: String, customer: &CustomerId, answer: Result<T, Error>) -> Ran {
    Ran {
        operation: format!("{customer}: {operation}"),
        answer: answer.map(|a| format!("{a:?}")),
        customer: CUSTOMERS
            .iter()
            .position(|c| *c == customer.as_str())
            .unwrap_or(0),
    }
}

fn run(
    engine: &TestEngine,
    op: &Op,
    now: DateTime<Utc>,
    key: Option<&IdempotencyKey>,
) -> Option<Ran> {
    let state = |c: &CustomerId| {
        pollster::block_on(engine.customer_state(c)).unwrap_or_else(|_| {
            CustomerState::new(tollgate_core::customer::Customer::new(c.clone()))
        })
    };
    Some(match op {
        Op::ProvisionCustomer(c, has_payment_method, first) => {
            let c = customer(*c);
            let mut request = json!({"customerId": c.as_str()});
            if let Some(has) = has_payment_method {
                request["hasPaymentMethod"] = json!(has);
            }
            if let Some(first) = first {
                let mut params = first.json(c.as_str(), now);
                params.remove("customerId");
                request["subscriptionParams"] = Value::Object(params);
            }
            let request: ProvisionCustomerRequest =
                serde_json::from_value(request).expect("a provisionCustomer request");
            let answer = pollster::block_on(engine.provision_customer(&request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Provision(c, p) => {
            let c = customer(*c);
            let request = p.request(c.as_str(), now);
            let answer = pollster::block_on(engine.provision_subscription(&request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Update(c, u) => {
            let c = customer(*c);
            let request = u.request(&state(&c), now);
            let answer = pollster::block_on(engine.update_subscription(&c, &request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Cancel(c, x) => {
            let c = customer(*c);
            let request = x.request(&state(&c), now);
            let answer = pollster::block_on(engine.cancel_subscription(&c, &request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Migrate(c, target, at_end) => {
            let c = customer(*c);
            let request = migrate(&state(&c), *target, *at_end);
            let answer = pollster::block_on(engine.migrate_subscription(&c, &request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Transfer(c, target, resource) => {
            let c = customer(*c);
            let request = transfer(&state(&c), *target, *resource);
            let answer = pollster::block_on(engine.transfer_subscription(&c, &request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Archive(c) => {
            let c = customer(*c);
            let answer = pollster::block_on(engine.archive_customer(&c, now, key));
            ran("archive".to_owned(), &c, answer)
        }
        Op::ReportUsage(c, u) => {
            let c = customer(*c);
            let request = u.request(c.as_str());
            let answer = pollster::block_on(engine.report_usage(&request, now, key));
            ran(format!("{request:?}"), &c, answer)
        }
        Op::Advance(c) => {
            // Advancing takes no key: its operation is not recorded.
            let c = customer(*c);
            let answer = pollster::block_on(engine.advance(&c, now));
            Ran {
                operation: String::new(),
                ..ran(String::new(), &c, answer)
            }
        }
        Op::PaymentMethod(c, has) => {
            engine.billing().set_payment_method(&customer(*c), *has);
            return None;
        }
        Op::Decline(c, declining) => {
            engine.billing().decline_charges(&customer(*c), *declining);
            return None;
        }
    })
}

/// Whether a void the engine asked for failed: the provider may then keep an application
/// of a decision that was not saved, which the engine leaves to the host.
fn void_failed(engine: &TestEngine) -> bool {
    engine
        .billing()
        .calls()
        .iter()
        .any(|c| c.failed && matches!(c.call, BillingCall::Void(..)))
}

/// Plays the input on one engine; answers the transcript of answers and states.
fn play(input: &Input, catalog: Catalog) -> Vec<String> {
    let policy = [
        ProrationPolicy::Stripe,
        ProrationPolicy::KillBill,
        ProrationPolicy::Lago,
        ProrationPolicy::ThirtyDay,
    ][usize::from(input.policy) % 4];
    let settings = Settings::new(input.billing_integration, policy, RoundingMode::HalfUp);
    let engine = Engine::new(
        catalog,
        settings,
        MemoryStorage::new(),
        ScriptedBilling::new(),
    );
    let mut transcript = Vec::new();
    // Operations recorded under each key: (operation, answer).
    let mut recorded: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut now = start();
    for (n, step) in input.steps.iter().flatten().enumerate() {
        now = step.wait.after(now);
        let context = format!("step {n} at {now} ({:?})", step.op);
        let before = stored(&engine);
        if let Some(k) = step.fail_call {
            let next = engine.billing().calls().len() + 1;
            engine.billing().fail_call(next + usize::from(k % 3));
        }
        let key = step.key.map(|k| IdempotencyKey::new(format!("k{}", k % 3)));
        let Some(ran) = run(&engine, &step.op, now, key.as_ref()) else {
            continue;
        };
        let after = stored(&engine);
        transcript.push(format!("{:?}", ran.answer));
        let replayed = key
            .as_ref()
            .filter(|_| !ran.operation.is_empty())
            .and_then(|k| recorded.get(k.as_str()));
        match (&ran.answer, replayed) {
            (answer, Some((operation, outcome))) => {
                if *operation == ran.operation {
                    assert_eq!(
                        answer.as_ref().ok(),
                        Some(outcome),
                        "{context}: a key used again for the same operation must answer as before"
                    );
                } else {
                    let code = answer.as_ref().err().map(|e| e.code().as_str());
                    assert_eq!(
                        code,
                        Some("IdempotencyKeyReused"),
                        "{context}: a key reused"
                    );
                }
                assert!(
                    before == after,
                    "{context}: a replay changed the stored state"
                );
            }
            (Err(e), None) => {
                checks::error(e.code().as_str(), e.message(), &context);
                assert!(
                    before == after,
                    "{context}: the failed operation ({e}) changed the stored state:\nbefore {before:#?}\nafter {after:#?}"
                );
            }
            (Ok(answer), None) => {
                if let Some(k) = key.as_ref().filter(|_| !ran.operation.is_empty()) {
                    recorded.insert(
                        k.as_str().to_owned(),
                        (ran.operation.clone(), answer.clone()),
                    );
                }
                for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                    assert!(
                        i == ran.customer || b == a,
                        "{context}: an operation on `{}` changed `{}`",
                        CUSTOMERS[ran.customer],
                        CUSTOMERS[i]
                    );
                }
            }
        }
        for state in after.iter().flatten() {
            checks::scopes(state, &context);
            checks::invoices(state, &context);
            transcript.push(format!("{state:?}"));
        }
        for invoice in engine.billing().charged() {
            checks::invoice(&invoice, &context);
            if !void_failed(&engine) {
                let saved = after
                    .iter()
                    .flatten()
                    .filter(|s| s.customer.id == invoice.customer)
                    .any(|s| s.invoices.contains(&invoice));
                assert!(
                    saved,
                    "{context}: the provider keeps invoice `{}` charged but no saved state holds it:\n{invoice:#?}",
                    invoice.id
                );
            }
        }
    }
    transcript
}

/// Plays the input on two engines whose catalogs were loaded separately.
pub fn exercise(input: &Input) {
    let generated = input.catalog.as_ref().and_then(GenCatalog::load);
    let (a, b) = match generated {
        Some(pair) => pair,
        None => reference().clone(),
    };
    let first = play(input, a);
    let second = play(input, b);
    assert!(
        first == second,
        "the same operations answered differently on two engines"
    );
}
