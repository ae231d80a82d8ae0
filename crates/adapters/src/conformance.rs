//! Conformance checks a host runs against its own [`Storage`] and [`Billing`]
//! implementations, in its own async runtime:
//!
//! ```
//! use tollgate_adapters::conformance::{self, BillingFixture};
//! use tollgate_adapters::{MemoryStorage, ScriptedBilling};
//!
//! # fn main() -> Result<(), conformance::Failure> {
//! pollster::block_on(conformance::storage(&MemoryStorage::new(), "doc"))?;
//! let billing = ScriptedBilling::new();
//! let fixture = BillingFixture::example();
//! billing.set_payment_method(&fixture.with_payment_method, true);
//! billing.reject_promotion_code(&fixture.refused_code);
//! pollster::block_on(conformance::billing(&billing, &fixture))?;
//! pollster::block_on(conformance::engine(MemoryStorage::new(), billing, &fixture))?;
//! # Ok(())
//! # }
//! ```
//!
//! Each function returns the first check that failed.

use crate::billing::Billing;
use crate::engine::{Engine, Operation, Outcome};
use crate::error::Code;
use crate::error::Error;
use crate::storage::{Commit, IdempotencyKey, Recorded, Redemption, Saved, Storage, Stored};
use chrono::{DateTime, Utc};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::{Customer, CustomerState};
use tollgate_core::id::CustomerId;
use tollgate_core::journey::{CustomerFields, ProvisionCustomerRequest};
use tollgate_core::provision::{CheckoutRequest, Effects, ProvisionRequest, provision};
use tollgate_core::settings::Settings;
use tollgate_core::{Catalog, ErrorCode};

/// A check that failed: its name and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct Failure {
    /// The check.
    pub check: &'static str,
    /// What was seen instead.
    pub detail: String,
}

fn ensure(ok: bool, check: &'static str, detail: impl FnOnce() -> String) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure {
            check,
            detail: detail(),
        })
    }
}

fn failed<E: fmt::Display>(check: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure {
        check,
        detail: format!("the call failed: {e}"),
    }
}

/// The catalog the checks decide with: a free plan and a paid one at 10 USD a month.
fn catalog() -> Result<Catalog, Failure> {
    Catalog::from_json(
        br#"{
  "features": [{"id": "projects", "type": "NUMBER"}],
  "products": [{"id": "app"}],
  "plans": [
    {"id": "free", "productId": "app", "version": 1, "pricingType": "FREE",
     "entitlements": [{"featureId": "projects", "value": 1}]},
    {"id": "basic", "productId": "app", "version": 1, "pricingType": "PAID",
     "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"}],
     "entitlements": [{"featureId": "projects", "value": 10}]}
  ]
}"#,
    )
    .map_err(failed("the conformance catalog loads"))
}

/// 2025-01-01T00:00:00Z.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn paid_request(customer: &CustomerId) -> Result<ProvisionRequest, Failure> {
    serde_json::from_value(serde_json::json!({
        "customerId": customer.as_str(),
        "planId": "basic",
        "billingPeriod": "MONTHLY",
        "subscriptionId": format!("{customer}-basic"),
    }))
    .map_err(failed("the conformance request parses"))
}

fn recorded(customer: &CustomerId) -> Recorded {
    Recorded {
        operation: Operation::UpdateCustomer {
            customer: customer.clone(),
            fields: CustomerFields::default(),
        },
        outcome: Outcome::UpdateCustomer(Customer::new(customer.clone())),
    }
}

/// Checks a storage: loading, conditional saves, atomic commits, idempotency records and
/// redemption counts that stop at a code's maximum and go down for a released code. Customer ids, keys and promotion codes start with `namespace`, so the
/// checks run on a store that holds other data, once per namespace.
///
/// # Errors
/// The first check that failed.
pub async fn storage<S: Storage>(storage: &S, namespace: &str) -> Result<(), Failure> {
    let id = CustomerId::new(format!("{namespace}-customer"));
    let key = IdempotencyKey::new(format!("{namespace}-key"));
    let other_key = IdempotencyKey::new(format!("{namespace}-other-key"));
    let code = format!("{namespace}-CODE");
    let fresh = CustomerState::new(Customer::new(id.clone()));
    let mut changed = fresh.clone();
    changed.customer.has_payment_method = true;

    let loaded = storage.load(&id).await.map_err(failed("load unknown"))?;
    ensure(loaded.is_none(), "load unknown", || {
        "a customer never saved was found".to_owned()
    })?;
    let before = storage.redemptions().await.map_err(failed("redemptions"))?;

    let commit = |expected, state: &CustomerState| Commit {
        expected,
        state: state.clone(),
        idempotency: None,
        redeemed: Vec::new(),
        released: Vec::new(),
    };
    let first = match storage
        .save(commit(None, &fresh))
        .await
        .map_err(failed("create"))?
    {
        Saved::Committed(version) => version,
        refused => {
            return Err(Failure {
                check: "create",
                detail: format!("saving a new customer answered {refused:?}"),
            });
        }
    };
    let loaded = storage.load(&id).await.map_err(failed("load saved"))?;
    ensure(
        loaded.as_ref().map(|s| (&s.state, s.version)) == Some((&fresh, first)),
        "load saved",
        || format!("expected the saved state at {first:?}, found {loaded:?}"),
    )?;
    let again = storage
        .save(commit(None, &changed))
        .await
        .map_err(failed("create twice"))?;
    ensure(again == Saved::Conflict, "create twice", || {
        format!("creating an existing customer answered {again:?}")
    })?;

    let update = Commit {
        expected: Some(first),
        state: changed.clone(),
        idempotency: Some((key.clone(), recorded(&id))),
        redeemed: vec![unlimited(&code), unlimited(&code)],
        released: Vec::new(),
    };
    let second = match storage.save(update).await.map_err(failed("update"))? {
        Saved::Committed(version) => version,
        refused => {
            return Err(Failure {
                check: "update",
                detail: format!("saving at the loaded version answered {refused:?}"),
            });
        }
    };
    ensure(second != first, "update", || {
        format!("the new version {second:?} equals the old one")
    })?;

    let stale = Commit {
        expected: Some(first),
        state: fresh.clone(),
        idempotency: Some((other_key.clone(), recorded(&id))),
        redeemed: vec![unlimited(&code)],
        released: Vec::new(),
    };
    let answer = storage.save(stale).await.map_err(failed("stale save"))?;
    ensure(answer == Saved::Conflict, "stale save", || {
        format!("saving at a replaced version answered {answer:?}")
    })?;
    let loaded = storage.load(&id).await.map_err(failed("stale save"))?;
    ensure(
        loaded.as_ref().map(|s| (&s.state, s.version)) == Some((&changed, second)),
        "stale save",
        || format!("a conflicting save changed the state: {loaded:?}"),
    )?;
    let lost = storage
        .recorded(&other_key)
        .await
        .map_err(failed("stale save"))?;
    ensure(lost.is_none(), "stale save", || {
        "a conflicting save recorded its idempotency key".to_owned()
    })?;

    let kept = storage
        .recorded(&key)
        .await
        .map_err(failed("idempotency"))?;
    ensure(kept == Some(recorded(&id)), "idempotency", || {
        format!("the recorded operation came back as {kept:?}")
    })?;
    let reuse = Commit {
        expected: Some(second),
        state: changed.clone(),
        idempotency: Some((key.clone(), recorded(&id))),
        redeemed: Vec::new(),
        released: Vec::new(),
    };
    let answer = storage.save(reuse).await.map_err(failed("idempotency"))?;
    ensure(answer == Saved::Conflict, "idempotency", || {
        format!("a second commit under a recorded key answered {answer:?}")
    })?;

    let after = storage.redemptions().await.map_err(failed("redemptions"))?;
    ensure(
        after.count(&code) == before.count(&code).saturating_add(2),
        "redemptions",
        || {
            format!(
                "two redemptions of `{code}` counted from {} to {}",
                before.count(&code),
                after.count(&code)
            )
        },
    )?;
    redemption_limits(storage, namespace, &id, second).await
}

fn unlimited(code: &str) -> Redemption {
    Redemption {
        code: code.to_owned(),
        max: None,
    }
}

/// A code at its maximum is refused whole; one below it is counted up to it.
async fn redemption_limits<S: Storage>(
    storage: &S,
    namespace: &str,
    id: &CustomerId,
    version: crate::storage::Version,
) -> Result<(), Failure> {
    let check = "redemption limit";
    let limited = format!("{namespace}-LIMITED");
    let key = IdempotencyKey::new(format!("{namespace}-limited-key"));
    let before = storage.redemptions().await.map_err(failed(check))?;
    // Its maximum is one more than its count, so two more redemptions overshoot it.
    let max = before.count(&limited).saturating_add(1);
    let redemption = || Redemption {
        code: limited.clone(),
        max: Some(max),
    };
    let loaded = storage.load(id).await.map_err(failed(check))?;
    let Some(Stored { state, .. }) = loaded else {
        return Err(Failure {
            check,
            detail: "the saved customer is gone".to_owned(),
        });
    };
    let mut changed = state.clone();
    changed.customer.tax_inclusive = !changed.customer.tax_inclusive;
    let over = Commit {
        expected: Some(version),
        state: changed.clone(),
        idempotency: Some((key.clone(), recorded(id))),
        redeemed: vec![redemption(), redemption()],
        released: Vec::new(),
    };
    let answer = storage.save(over).await.map_err(failed(check))?;
    ensure(answer == Saved::Exhausted(limited.clone()), check, || {
        format!("redeeming `{limited}` past its maximum answered {answer:?}")
    })?;
    let loaded = storage.load(id).await.map_err(failed(check))?;
    let counts = storage.redemptions().await.map_err(failed(check))?;
    let kept = storage.recorded(&key).await.map_err(failed(check))?;
    ensure(
        loaded.as_ref().map(|s| (&s.state, s.version)) == Some((&state, version))
            && counts.count(&limited) == before.count(&limited)
            && kept.is_none(),
        check,
        || {
            format!(
                "a refused commit wrote something: state {loaded:?}, count {}, key {kept:?}",
                counts.count(&limited)
            )
        },
    )?;
    let within = Commit {
        expected: Some(version),
        state: changed.clone(),
        idempotency: None,
        redeemed: vec![redemption()],
        released: Vec::new(),
    };
    let answer = storage.save(within).await.map_err(failed(check))?;
    let counts = storage.redemptions().await.map_err(failed(check))?;
    ensure(
        matches!(answer, Saved::Committed(_)) && counts.count(&limited) == max,
        check,
        || {
            format!(
                "redeeming `{limited}` up to its maximum {max} answered {answer:?} and counted {}",
                counts.count(&limited)
            )
        },
    )?;
    let Saved::Committed(version) = answer else {
        return Ok(());
    };
    redemption_release(storage, &limited, max, &changed, version).await
}

/// A released code is counted once less, before the commit's redemptions are counted
/// against the maximum: at its maximum, a code given back and redeemed again in one
/// commit (a scheduled change replaced by one holding the same code) goes through.
async fn redemption_release<S: Storage>(
    storage: &S,
    limited: &str,
    max: u64,
    state: &CustomerState,
    version: crate::storage::Version,
) -> Result<(), Failure> {
    let check = "redemption release";
    let moved = Commit {
        expected: Some(version),
        state: state.clone(),
        idempotency: None,
        redeemed: vec![Redemption {
            code: limited.to_owned(),
            max: Some(max),
        }],
        released: vec![limited.to_owned()],
    };
    let answer = storage.save(moved).await.map_err(failed(check))?;
    let counts = storage.redemptions().await.map_err(failed(check))?;
    ensure(
        matches!(answer, Saved::Committed(_)) && counts.count(limited) == max,
        check,
        || {
            format!(
                "giving `{limited}` back and redeeming it again at its maximum {max} answered \
                 {answer:?} and counted {}",
                counts.count(limited)
            )
        },
    )?;
    let Saved::Committed(version) = answer else {
        return Ok(());
    };
    let given_back = Commit {
        expected: Some(version),
        state: state.clone(),
        idempotency: None,
        redeemed: Vec::new(),
        released: vec![limited.to_owned()],
    };
    let answer = storage.save(given_back).await.map_err(failed(check))?;
    let counts = storage.redemptions().await.map_err(failed(check))?;
    ensure(
        matches!(answer, Saved::Committed(_)) && counts.count(limited) == max.saturating_sub(1),
        check,
        || {
            format!(
                "giving `{limited}` back from {max} answered {answer:?} and counted {}",
                counts.count(limited)
            )
        },
    )
}

/// What a billing provider under test knows: a customer with a payment method on file and
/// one without, a promotion code it accepts and one it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingFixture {
    /// A customer with a payment method on file.
    pub with_payment_method: CustomerId,
    /// A customer without one.
    pub without_payment_method: CustomerId,
    /// A promotion code the provider accepts.
    pub accepted_code: String,
    /// A promotion code the provider refuses.
    pub refused_code: String,
}

impl BillingFixture {
    /// Customers `conformance-paying` and `conformance-new`, codes `WELCOME` and `EXPIRED`.
    #[must_use]
    pub fn example() -> Self {
        Self {
            with_payment_method: CustomerId::new("conformance-paying"),
            without_payment_method: CustomerId::new("conformance-new"),
            accepted_code: "WELCOME".to_owned(),
            refused_code: "EXPIRED".to_owned(),
        }
    }
}

/// Checks a billing provider: payment methods and promotion codes as the fixture says,
/// distinct checkout ids, and a new paid subscription's effects applied, voided, and
/// voided again without failing.
///
/// # Errors
/// The first check that failed.
pub async fn billing<B: Billing>(billing: &B, fixture: &BillingFixture) -> Result<(), Failure> {
    let paying = &fixture.with_payment_method;
    let has = billing
        .has_payment_method(paying)
        .await
        .map_err(failed("payment method"))?;
    ensure(has, "payment method", || {
        format!("customer `{paying}` has no payment method")
    })?;
    let new = &fixture.without_payment_method;
    let has = billing
        .has_payment_method(new)
        .await
        .map_err(failed("no payment method"))?;
    ensure(!has, "no payment method", || {
        format!("customer `{new}` has a payment method")
    })?;

    let checkout = |n: u32| CheckoutRequest {
        subscription_id: format!("{new}-sub-{n}").as_str().into(),
        success_url: "https://example.invalid/success".to_owned(),
        cancel_url: "https://example.invalid/cancel".to_owned(),
    };
    let first = billing
        .create_checkout(new, &checkout(1))
        .await
        .map_err(failed("checkout"))?;
    let second = billing
        .create_checkout(new, &checkout(2))
        .await
        .map_err(failed("checkout"))?;
    ensure(
        !first.as_str().is_empty() && first != second,
        "checkout",
        || format!("two checkouts got ids `{first}` and `{second}`"),
    )?;

    let accepted = billing
        .validate_promotion_code(&fixture.accepted_code)
        .await
        .map_err(failed("promotion code"))?;
    ensure(accepted, "promotion code", || {
        format!("code `{}` was refused", fixture.accepted_code)
    })?;
    let refused = billing
        .validate_promotion_code(&fixture.refused_code)
        .await
        .map_err(failed("promotion code"))?;
    ensure(!refused, "promotion code", || {
        format!("code `{}` was accepted", fixture.refused_code)
    })?;

    let catalog = catalog()?;
    let mut customer = Customer::new(paying.clone());
    customer.has_payment_method = true;
    let decision = provision(
        &catalog,
        &CustomerState::new(customer),
        &paid_request(paying)?,
        &tollgate_core::coupon::Redemptions::new(),
        now(),
        &Settings::default(),
    )
    .map_err(failed("apply"))?;
    billing
        .apply(paying, &decision.effects)
        .await
        .map_err(failed("apply"))?;
    billing
        .void(paying, &decision.effects)
        .await
        .map_err(failed("void"))?;
    billing
        .void(paying, &decision.effects)
        .await
        .map_err(failed("void twice"))
}

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only whole pushes happen under the lock, so a poisoned one is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The host's storage, with another writer that changes the customer right before the
/// next save once armed.
struct Interfering<S> {
    inner: S,
    armed: AtomicBool,
}

impl<S: Storage> Storage for Interfering<S> {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        self.inner.load(customer)
    }

    async fn save(&self, commit: Commit) -> Result<Saved, Error> {
        if self.armed.swap(false, Ordering::SeqCst) {
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
                self.inner.save(other).await?;
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

/// The host's billing provider, with the applications and voids that went through noted.
struct Observed<B> {
    inner: B,
    applied: Mutex<Vec<Effects>>,
    voided: Mutex<Vec<Effects>>,
}

impl<B: Billing> Billing for Observed<B> {
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
    ) -> impl Future<Output = Result<crate::billing::CheckoutId, Error>> + Send {
        self.inner.create_checkout(customer, checkout)
    }

    async fn apply(&self, customer: &CustomerId, effects: &Effects) -> Result<(), Error> {
        self.inner.apply(customer, effects).await?;
        guard(&self.applied).push(effects.clone());
        Ok(())
    }

    async fn void(&self, customer: &CustomerId, effects: &Effects) -> Result<(), Error> {
        self.inner.void(customer, effects).await?;
        guard(&self.voided).push(effects.clone());
        Ok(())
    }

    fn validate_promotion_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.inner.validate_promotion_code(code)
    }
}

/// Checks the engine over a storage and a billing provider: a paid provisioning whose
/// first save meets another writer's change voids its first application, is decided,
/// billed and saved again, keeping both writes; it is replayed under its idempotency key,
/// and the key refused for another operation. The store must not hold
/// `fixture.with_payment_method` yet.
///
/// # Errors
/// The first check that failed.
pub async fn engine<S: Storage, B: Billing>(
    storage: S,
    billing: B,
    fixture: &BillingFixture,
) -> Result<(), Failure> {
    let storage = Interfering {
        inner: storage,
        armed: AtomicBool::new(false),
    };
    let billing = Observed {
        inner: billing,
        applied: Mutex::new(Vec::new()),
        voided: Mutex::new(Vec::new()),
    };
    let engine = Engine::new(catalog()?, Settings::default(), storage, billing);
    let id = &fixture.with_payment_method;
    let customer: ProvisionCustomerRequest = serde_json::from_value(serde_json::json!({
        "customerId": id.as_str(), "hasPaymentMethod": true
    }))
    .map_err(failed("customer"))?;
    engine
        .provision_customer(&customer, now(), None)
        .await
        .map_err(failed("customer"))?;

    let key = IdempotencyKey::new(format!("{id}-conformance-provision"));
    let request = paid_request(id)?;
    engine.storage().armed.store(true, Ordering::SeqCst);
    let first = engine
        .provision_subscription(&request, now(), Some(&key))
        .await
        .map_err(failed("provision"))?;
    ensure(
        first.subscription.is_some() && first.decision.effects.invoice.is_some(),
        "provision",
        || format!("a paid provisioning answered {first:?}"),
    )?;
    let applied = guard(&engine.billing().applied).clone();
    let voided = guard(&engine.billing().voided).clone();
    ensure(
        applied.len() == 2 && applied.get(1) == Some(&first.decision.effects),
        "conflict voids",
        || format!("a provisioning whose first save conflicted applied {applied:?}"),
    )?;
    ensure(
        voided.len() == 1 && voided.first() == applied.first(),
        "conflict voids",
        || format!("of the applications {applied:?} the engine voided {voided:?}"),
    )?;
    let state = engine
        .customer_state(id)
        .await
        .map_err(failed("conflict"))?;
    ensure(state.customer.tax_inclusive, "conflict", || {
        "the other writer's change was lost".to_owned()
    })?;
    let replay = engine
        .provision_subscription(&request, now(), Some(&key))
        .await
        .map_err(failed("replay"))?;
    ensure(replay == first, "replay", || {
        format!("the replay answered {replay:?}")
    })?;
    let state = engine.customer_state(id).await.map_err(failed("replay"))?;
    ensure(
        state.subscriptions.len() == 1 && state.invoices.len() == 1,
        "replay",
        || {
            format!(
                "after a replay the customer has {} subscriptions and {} invoices",
                state.subscriptions.len(),
                state.invoices.len()
            )
        },
    )?;

    let mut other = request.clone();
    other.plan_id = "free".into();
    other.billing_period = None;
    let reused = engine
        .provision_subscription(&other, now(), Some(&key))
        .await;
    ensure(
        reused
            .as_ref()
            .is_err_and(|e| e.code() == Code::IdempotencyKeyReused),
        "key reused",
        || format!("another request under the same key answered {reused:?}"),
    )?;

    let mut unknown = request;
    unknown.customer_id = CustomerId::new(format!("{id}-unknown"));
    let missing = engine.provision_subscription(&unknown, now(), None).await;
    ensure(
        missing
            .as_ref()
            .is_err_and(|e| e.code() == Code::Decision(ErrorCode::CustomerNotFound)),
        "unknown customer",
        || format!("provisioning an unknown customer answered {missing:?}"),
    )
}
